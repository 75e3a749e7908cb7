/* core/lib/ssl/digest.c — the identity of a checkpoint's weights for feature-store keys:
 * XXH3-128 over config.json and every safetensors file, remembered in a cache folder under
 * a key made of each file's path, size, mtime and inode, so unchanged multi-GB checkpoints
 * are hashed once. */
#include "ssl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* Files that make up the weights, in a fixed order: config.json, then the shards sorted. */
static char *file_at(const sb_ssl_model *m, size_t i)
{
    return sbi_path_join(m->dir, i == 0 ? "config.json" : m->files[i - 1]);
}

sb_status sb_ssl_weights_digest(const sb_ssl_model *m, const char *cache_dir, char out[SB_HASH_HEX],
                                sb_error *err)
{
    const size_t n = m->n_files + 1;
    sb_hasher *key = sb_hasher_create();
    if (!key)
        return sb_error_set(err, SB_ERR_NOMEM, m->dir, "out of memory");
    sb_status st = SB_OK;
    for (size_t i = 0; i < n && !st; i++) {
        char *path = file_at(m, i);
        struct stat sb;
        if (!path)
            st = sb_error_set(err, SB_ERR_NOMEM, m->dir, "out of memory");
        else if (stat(path, &sb) != 0)
            st = sb_error_set(err, SB_ERR_IO, path, "cannot stat the weights file");
        else {
            char buf[160];
            snprintf(buf, sizeof buf, "%lld:%lld.%09ld:%llu", (long long)sb.st_size,
                     (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec,
                     (unsigned long long)sb.st_ino);
            char *abs = realpath(path, NULL);
            sb_hasher_str(key, abs ? abs : path);
            sb_hasher_str(key, buf);
            free(abs);
        }
        free(path);
    }
    char khex[SB_HASH_HEX];
    sb_hasher_hex(key, khex);
    sb_hasher_destroy(&key);
    if (st)
        return st;

    char *cpath = NULL;
    if (cache_dir) {
        char name[64];
        snprintf(name, sizeof name, "ssl-weights-%s.digest", khex);
        cpath = sbi_path_join(cache_dir, name);
        char *text = NULL;
        size_t len = 0;
        if (cpath && sbi_is_file(cpath) && sbi_read_file(cpath, &text, &len, NULL) == SB_OK &&
            len == SB_HASH_HEX - 1 && strspn(text, "0123456789abcdef") == len) {
            memcpy(out, text, SB_HASH_HEX);
            free(text);
            free(cpath);
            return SB_OK;
        }
        free(text);
    }

    sb_hasher *h = sb_hasher_create();
    if (!h) {
        free(cpath);
        return sb_error_set(err, SB_ERR_NOMEM, m->dir, "out of memory");
    }
    for (size_t i = 0; i < n && !st; i++) {
        char *path = file_at(m, i);
        char fh[SB_HASH_HEX];
        if (!path)
            st = sb_error_set(err, SB_ERR_NOMEM, m->dir, "out of memory");
        else if ((st = sb_hash_file(path, fh, err)) == SB_OK) {
            sb_hasher_str(h, i == 0 ? "config.json" : m->files[i - 1]);
            sb_hasher_str(h, fh);
        }
        free(path);
    }
    if (!st) {
        sb_hasher_hex(h, out);
        /* A failed cache write only costs a re-hash next time. */
        if (cpath)
            (void)sbi_write_file_atomic(cpath, out, SB_HASH_HEX - 1, NULL);
    }
    sb_hasher_destroy(&h);
    free(cpath);
    return st;
}
