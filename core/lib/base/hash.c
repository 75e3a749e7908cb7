/* core/lib/base/hash.c — XXH3-128 content hashes for stage keys. */
#include <serbench/hash.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct sb_hasher {
    XXH3_state_t *st;
};

sb_hasher *sb_hasher_create(void)
{
    sb_hasher *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    h->st = XXH3_createState();
    if (!h->st) {
        free(h);
        return NULL;
    }
    XXH3_128bits_reset(h->st);
    return h;
}

void sb_hasher_update(sb_hasher *h, const void *data, size_t n)
{
    if (n)
        XXH3_128bits_update(h->st, data, n);
}

void sb_hasher_str(sb_hasher *h, const char *s)
{
    if (!s)
        s = "";
    XXH3_128bits_update(h->st, s, strlen(s) + 1);
}

static void hex128(XXH128_hash_t v, char out[SB_HASH_HEX])
{
    snprintf(out, SB_HASH_HEX, "%016llx%016llx", (unsigned long long)v.high64,
             (unsigned long long)v.low64);
}

void sb_hasher_hex(const sb_hasher *h, char out[SB_HASH_HEX])
{
    hex128(XXH3_128bits_digest(h->st), out);
}

void sb_hasher_destroy(sb_hasher **h)
{
    if (!h || !*h)
        return;
    XXH3_freeState((*h)->st);
    free(*h);
    *h = NULL;
}

void sb_hash_hex(const void *data, size_t n, char out[SB_HASH_HEX])
{
    hex128(XXH3_128bits(data, n), out);
}

sb_status sb_hash_file(const char *path, char out[SB_HASH_HEX], sb_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sb_error_set(err, SB_ERR_IO, path, "cannot open: %s", strerror(errno));
    sb_hasher *h = sb_hasher_create();
    char *buf = malloc(1 << 20);
    if (!h || !buf) {
        fclose(f);
        free(buf);
        sb_hasher_destroy(&h);
        return sb_error_set(err, SB_ERR_NOMEM, path, "out of memory");
    }
    size_t n;
    while ((n = fread(buf, 1, 1 << 20, f)) > 0)
        sb_hasher_update(h, buf, n);
    int bad = ferror(f);
    fclose(f);
    free(buf);
    if (bad) {
        sb_hasher_destroy(&h);
        return sb_error_set(err, SB_ERR_IO, path, "read error while hashing");
    }
    sb_hasher_hex(h, out);
    sb_hasher_destroy(&h);
    return SB_OK;
}
