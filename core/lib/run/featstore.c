/* core/lib/run/featstore.c — chunked safetensors feature files indexed in SQLite, and the
 * per-writer journal that makes every added item survive a killed process (featstore.h). */
#include "featstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define CHUNK_ITEMS 64
/* A chunk is also written once this much time has passed since the last write, so the
 * journal a later writer may have to replay stays short (seconds). */
#define CHUNK_SECONDS 2.0
/* ... and once this many bytes of frames (held as F32) are buffered. */
#define CHUNK_FRAME_BYTES ((size_t)64 << 20)

/* ---- the journal format ------------------------------------------------------------ */

#define J_MAGIC "SBJRNL01"
#define J_HEADER 32
#define J_REC_MAGIC 0x52424A53u /* "SJBR" in a little-endian file */
#define J_KEY 32                /* hex chars of an item key */
#define J_FIXED (4 + J_KEY + 4 + 4)
#define J_SUM 32 /* hex chars of the record's XXH3-128 */

static void j_header(const sbi_feat_layout *lay, unsigned char out[J_HEADER])
{
    memset(out, 0, J_HEADER);
    memcpy(out, J_MAGIC, 8);
    const int32_t v[4] = { lay->n_layers, lay->dim, lay->frame_dim, lay->frame_bits };
    memcpy(out + 8, v, sizeof v);
}

static int read_at(int fd, void *p, size_t n, off_t off)
{
    char *c = p;
    while (n > 0) {
        ssize_t k = pread(fd, c, n, off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
        off += k;
    }
    return 0;
}

static int is_hex_key(const char *s)
{
    for (int i = 0; i < J_KEY; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* ---- the writer -------------------------------------------------------------------- */

struct sbi_feat_writer {
    sbi_store *s;
    char enc_key[SB_HASH_HEX];
    char *dir;
    char *enc_json;
    sbi_feat_layout lay;
    size_t width;     /* n_layers * dim */
    size_t frame_row; /* n_layers * frame_dim: floats per frame over all layers */
    /* The chunk in flight. */
    char (*keys)[SB_HASH_HEX];
    float *data;         /* [CHUNK_ITEMS, n_layers, dim] */
    size_t *f_off;       /* [CHUNK_ITEMS] start of the item's frames in frames, floats */
    size_t *f_T;         /* [CHUNK_ITEMS] */
    float *frames;       /* the chunk's frames, one [n_layers, T, frame_dim] block per item */
    size_t f_len, f_cap; /* floats */
    size_t n;
    double last_write; /* sbi_now() of creation or the last flush */
    /* The journal: locked for the writer's lifetime; -1 while recovering. */
    int jfd;
    char *jpath;
    size_t j_pending; /* records in the journal not yet indexed */
    unsigned char *rec;
    size_t rec_cap;
    sbi_feat_recovery rcv;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Put an item in the chunk in flight (no journal write); 1 if it was already there. */
static int chunk_put(sbi_feat_writer *w, const char *item_key, const float *vec,
                     const float *frames, size_t T, sb_error *err, sb_status *st)
{
    *st = SB_OK;
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->keys[i], item_key) == 0)
            return 1; /* two utterances with the same audio span */
    size_t nf = w->lay.frame_dim > 0 ? T * w->frame_row : 0;
    if (grow((void **)&w->frames, &w->f_cap, w->f_len + nf, sizeof(float)) != 0) {
        *st = sb_error_set(err, SB_ERR_NOMEM, item_key, "out of memory for %zu frames", T);
        return 0;
    }
    snprintf(w->keys[w->n], SB_HASH_HEX, "%s", item_key);
    memcpy(w->data + w->n * w->width, vec, w->width * sizeof(float));
    w->f_off[w->n] = w->f_len;
    w->f_T[w->n] = nf ? T : 0;
    if (nf)
        memcpy(w->frames + w->f_len, frames, nf * sizeof(float));
    w->f_len += nf;
    w->n++;
    return 0;
}

static int chunk_full(const sbi_feat_writer *w)
{
    return w->n == CHUNK_ITEMS || w->f_len * sizeof(float) >= CHUNK_FRAME_BYTES ||
           sbi_now() - w->last_write >= CHUNK_SECONDS;
}

/* Write the chunk in flight as one file and index its items (no journal handling). */
static sb_status chunk_commit(sbi_feat_writer *w, sb_error *err)
{
    if (w->n == 0)
        return SB_OK;
    sb_hasher *h = sb_hasher_create();
    if (!h)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < w->n; i++)
        sb_hasher_str(h, w->keys[i]);
    char chunk[SB_HASH_HEX];
    sb_hasher_hex(h, chunk);
    sb_hasher_destroy(&h);
    char *file = sbi_asprintf("%s/%s.safetensors", w->dir, chunk);
    char *rel = sbi_asprintf("features/%s/%s.safetensors", w->enc_key, chunk);
    sb_st_writer *sw = sb_st_writer_create();
    sb_status st =
        (file && rel && sw) ? SB_OK : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    const int64_t shape[2] = { w->lay.n_layers, w->lay.dim };
    for (size_t i = 0; st == SB_OK && i < w->n; i++) {
        st = sb_st_writer_add(sw, w->keys[i], SB_DT_F32, 2, shape, w->data + i * w->width, err);
        if (st != SB_OK || w->f_T[i] == 0)
            continue;
        char name[SB_HASH_HEX + 8];
        snprintf(name, sizeof name, "%s.frames", w->keys[i]);
        const int64_t fshape[3] = { w->lay.n_layers, (int64_t)w->f_T[i], w->lay.frame_dim };
        const float *fr = w->frames + w->f_off[i];
        st = w->lay.frame_bits == 16 ? sb_st_writer_add_f32_as_f16(sw, name, 3, fshape, fr, err)
                                     : sb_st_writer_add(sw, name, SB_DT_F32, 3, fshape, fr, err);
    }
    if (st == SB_OK)
        st = sb_st_writer_meta(sw, "serbench.encoder_key", w->enc_key, err);
    if (st == SB_OK)
        st = sb_st_writer_meta(sw, "serbench.encoder", w->enc_json, err);
    if (st == SB_OK)
        st = sb_st_writer_commit(sw, file, err);
    sb_st_writer_destroy(&sw);
    sqlite3_stmt *q = NULL;
    if (st == SB_OK)
        st = sbi_store_begin(w->s, err);
    if (st == SB_OK) {
        st = sbi_store_prepare(w->s, "INSERT OR REPLACE INTO features VALUES(?1, ?2, ?3, ?2)", &q,
                               err);
        for (size_t i = 0; st == SB_OK && i < w->n; i++) {
            sqlite3_bind_text(q, 1, w->enc_key, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, w->keys[i], -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, rel, -1, SQLITE_STATIC);
            st = sbi_store_step_done(w->s, q, err);
        }
        sqlite3_finalize(q);
        if (st == SB_OK)
            st = sbi_store_commit(w->s, err);
        else
            sbi_store_rollback(w->s);
    }
    free(file);
    free(rel);
    if (st == SB_OK) {
        w->n = 0;
        w->f_len = 0;
        w->last_write = sbi_now();
    }
    return st;
}

sb_status sbi_feat_writer_flush(sbi_feat_writer *w, sb_error *err)
{
    sb_status st = chunk_commit(w, err);
    if (st != SB_OK || w->jfd < 0 || w->j_pending == 0)
        return st;
    /* Everything journalled is indexed now. If the truncation fails, a later recovery finds
     * the items indexed and skips them; only the file's size is at stake. */
    if (ftruncate(w->jfd, J_HEADER) == 0)
        w->j_pending = 0;
    return SB_OK;
}

/* Build one journal record for the item in w->rec; returns its length, 0 when out of memory. */
static size_t j_record(sbi_feat_writer *w, const char *item_key, const float *vec,
                       const float *frames, size_t T)
{
    size_t nf = w->lay.frame_dim > 0 ? T * w->frame_row : 0;
    size_t len = J_FIXED + (w->width + nf) * sizeof(float) + J_SUM;
    if (grow((void **)&w->rec, &w->rec_cap, len, 1) != 0)
        return 0;
    unsigned char *p = w->rec;
    const uint32_t magic = J_REC_MAGIC, n = (uint32_t)w->width, t = (uint32_t)(nf ? T : 0);
    memcpy(p, &magic, 4);
    memcpy(p + 4, item_key, J_KEY);
    memcpy(p + 4 + J_KEY, &n, 4);
    memcpy(p + 8 + J_KEY, &t, 4);
    memcpy(p + J_FIXED, vec, w->width * sizeof(float));
    if (nf)
        memcpy(p + J_FIXED + w->width * sizeof(float), frames, nf * sizeof(float));
    char sum[SB_HASH_HEX];
    sb_hash_hex(p, len - J_SUM, sum);
    memcpy(p + len - J_SUM, sum, J_SUM);
    return len;
}

sb_status sbi_feat_writer_add(sbi_feat_writer *w, const char *item_key, const float *vec,
                              const float *frames, size_t T, sb_error *err)
{
    if (strlen(item_key) != J_KEY || !is_hex_key(item_key))
        return sb_error_set(err, SB_ERR_INVALID, item_key, "not an item key");
    if (w->lay.frame_dim > 0 && (!frames || T == 0 || T > UINT32_MAX))
        return sb_error_set(err, SB_ERR_INVALID, item_key,
                            "this encoder keeps frames, but the item has %zu", T);
    sb_status st;
    if (chunk_put(w, item_key, vec, frames, T, err, &st) || st != SB_OK)
        return st;
    if (w->jfd >= 0) {
        size_t len = j_record(w, item_key, vec, frames, T);
        if (len == 0)
            return sb_error_set(err, SB_ERR_NOMEM, item_key, "out of memory for the journal");
        if (sbi_write_all(w->jfd, w->rec, len) != 0)
            return sb_error_set(err, SB_ERR_IO, w->jpath,
                                "cannot append to the feature journal: %s", strerror(errno));
        w->j_pending++;
    }
    return chunk_full(w) ? sbi_feat_writer_flush(w, err) : SB_OK;
}

/* Replay one journal if no live writer holds it: commit its valid records (items not yet
 * indexed) and remove it. */
static sb_status recover_one(sbi_feat_writer *w, const char *path, sb_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? SB_OK /* another writer finished it */
                               : sb_error_set(err, SB_ERR_IO, path,
                                              "cannot open the feature journal: %s; check the "
                                              "folder's permissions",
                                              strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? SB_OK /* a live writer's */
                                : sb_error_set(err, SB_ERR_IO, path,
                                               "cannot lock the feature journal: %s", strerror(e));
    }
    /* Between our open and our lock, its recoverer may have removed it. */
    struct stat fs, ps;
    if (fstat(fd, &fs) != 0 || stat(path, &ps) != 0 || fs.st_ino != ps.st_ino ||
        fs.st_dev != ps.st_dev) {
        close(fd);
        return SB_OK;
    }
    sb_status st = SB_OK;
    unsigned char hdr[J_HEADER], want[J_HEADER];
    j_header(&w->lay, want);
    if (fs.st_size < J_HEADER) {
        /* Died while writing its header: holds no record. */
    } else if (read_at(fd, hdr, J_HEADER, 0) != 0) {
        st = sb_error_set(err, SB_ERR_IO, path, "cannot read the feature journal: %s",
                          strerror(errno));
    } else if (memcmp(hdr, want, J_HEADER) != 0) {
        int32_t got[4];
        memcpy(got, hdr + 8, sizeof got);
        st = sb_error_set(err, SB_ERR_STORE, path,
                          memcmp(hdr, J_MAGIC, 8)
                              ? "not a serbench feature journal; delete the file"
                              : "feature journal of another layout (n_layers %d, dim %d, "
                                "frame_dim %d, frame_bits %d; this encoder has %d, %d, %d, %d); "
                                "delete the file",
                          got[0], got[1], got[2], got[3], w->lay.n_layers, w->lay.dim,
                          w->lay.frame_dim, w->lay.frame_bits);
    }
    const off_t size = fs.st_size;
    off_t off = J_HEADER;
    size_t added = 0;
    while (st == SB_OK && off < size) {
        unsigned char fix[J_FIXED];
        if (size - off < (off_t)J_FIXED || read_at(fd, fix, J_FIXED, off) != 0)
            break;
        uint32_t magic, n, T;
        memcpy(&magic, fix, 4);
        memcpy(&n, fix + 4 + J_KEY, 4);
        memcpy(&T, fix + 8 + J_KEY, 4);
        if (magic != J_REC_MAGIC || n != w->width || (w->lay.frame_dim > 0) != (T > 0) ||
            !is_hex_key((const char *)fix + 4))
            break;
        size_t nf = (size_t)T * w->frame_row;
        if (T && nf / T != w->frame_row)
            break;
        size_t len = J_FIXED + (w->width + nf) * sizeof(float) + J_SUM;
        if ((off_t)len > size - off)
            break; /* torn */
        if (grow((void **)&w->rec, &w->rec_cap, len, 1) != 0) {
            st = sb_error_set(err, SB_ERR_NOMEM, path, "out of memory for a %zu-byte record", len);
            break;
        }
        if (read_at(fd, w->rec, len, off) != 0)
            break;
        char sum[SB_HASH_HEX];
        sb_hash_hex(w->rec, len - J_SUM, sum);
        if (memcmp(sum, w->rec + len - J_SUM, J_SUM) != 0)
            break; /* damaged */
        off += (off_t)len;
        char key[SB_HASH_HEX];
        memcpy(key, w->rec + 4, J_KEY);
        key[J_KEY] = '\0';
        if (sbi_feat_has(w->s, w->enc_key, key))
            continue; /* committed before the writer died */
        /* chunk_put copies out of w->rec, so the next read may reuse it. */
        const float *vec = (const float *)(void *)(w->rec + J_FIXED);
        int dup = chunk_put(w, key, vec, T ? vec + w->width : NULL, T, err, &st);
        if (st == SB_OK && !dup)
            added++;
        if (st == SB_OK && (w->n == CHUNK_ITEMS || w->f_len * sizeof(float) >= CHUNK_FRAME_BYTES))
            st = chunk_commit(w, err);
    }
    if (st == SB_OK)
        st = chunk_commit(w, err);
    if (st == SB_OK) {
        if (off < size)
            w->rcv.torn++;
        w->rcv.items += added;
        w->rcv.journals++;
        if (unlink(path) != 0 && errno != ENOENT)
            st = sb_error_set(err, SB_ERR_IO, path,
                              "cannot remove the replayed feature journal: %s", strerror(errno));
    } else {
        /* Leave the journal for the next writer; what was committed is skipped then. */
        w->n = 0;
        w->f_len = 0;
    }
    close(fd);
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Recover every journal of a dead writer in w->dir. */
static sb_status recover_all(sbi_feat_writer *w, sb_error *err)
{
    DIR *d = opendir(w->dir);
    if (!d)
        return sb_error_set(err, SB_ERR_IO, w->dir, "cannot list the feature folder: %s",
                            strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    sb_status st = SB_OK;
    struct dirent *de;
    while (st == SB_OK && (de = readdir(d)) != NULL) {
        const char *s = de->d_name;
        int journal = !strncmp(s, "journal-", 8) && sbi_has_suffix(s, ".bin");
        int stillborn = !strncmp(s, ".journal-", 9) && sbi_has_suffix(s, ".new");
        if (!journal && !stillborn)
            continue;
        if (grow((void **)&names, &cap, n + 1, sizeof *names) != 0 || !(names[n] = sbi_strdup(s))) {
            st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *path = st == SB_OK ? sbi_asprintf("%s/%s", w->dir, names[i]) : NULL;
        if (st == SB_OK && !path)
            st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        if (st == SB_OK && names[i][0] == '.') {
            /* A writer that died before renaming its journal into place wrote no record. */
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
                unlink(path);
            if (fd >= 0)
                close(fd);
        } else if (st == SB_OK) {
            st = recover_one(w, path, err);
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return st;
}

/* Create, lock and name this writer's journal. It is created under a name recovery ignores
 * and renamed only once locked, so no other writer can take it for a dead one. */
static sb_status journal_start(sbi_feat_writer *w, sb_error *err)
{
    char *tmp = sbi_asprintf("%s/.journal-XXXXXX.new", w->dir);
    if (!tmp)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    int fd = mkostemps(tmp, 4, O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        sb_status st =
            sb_error_set(err, SB_ERR_IO, w->dir,
                         "cannot create a feature journal in the folder: %s", strerror(errno));
        free(tmp);
        return st;
    }
    unsigned char hdr[J_HEADER];
    j_header(&w->lay, hdr);
    sb_status st = SB_OK;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || sbi_write_all(fd, hdr, J_HEADER) != 0)
        st = sb_error_set(err, SB_ERR_IO, tmp, "cannot lock or write the feature journal: %s",
                          strerror(errno));
    /* "DIR/.journal-XXXXXX.new" → "DIR/journal-XXXXXX.bin" */
    char *path = st == SB_OK ? sbi_strdup(tmp) : NULL;
    if (st == SB_OK && !path)
        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    if (st == SB_OK) {
        char *base = path + strlen(w->dir) + 1;
        memmove(base, base + 1, strlen(base)); /* drop the dot */
        memcpy(path + strlen(path) - 4, ".bin", 4);
        if (rename(tmp, path) != 0)
            st = sb_error_set(err, SB_ERR_IO, path, "cannot name the feature journal: %s",
                              strerror(errno));
    }
    if (st != SB_OK) {
        unlink(tmp);
        close(fd);
        free(path);
    } else {
        w->jfd = fd;
        w->jpath = path;
    }
    free(tmp);
    return st;
}

sb_status sbi_feat_writer_create(sbi_store *s, const char *enc_key, const char *enc_json,
                                 const sbi_feat_layout *lay, sbi_feat_writer **out, sb_error *err)
{
    *out = NULL;
    if (lay->n_layers < 1 || lay->dim < 1 || lay->frame_dim < 0 ||
        (lay->frame_dim > 0 && lay->frame_bits != 16 && lay->frame_bits != 32))
        return sb_error_set(err, SB_ERR_INVALID, enc_key,
                            "feature layout n_layers %d, dim %d, frame_dim %d, frame_bits %d",
                            lay->n_layers, lay->dim, lay->frame_dim, lay->frame_bits);
    sbi_feat_writer *w = calloc(1, sizeof *w);
    if (!w)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    w->s = s;
    w->jfd = -1;
    snprintf(w->enc_key, sizeof w->enc_key, "%s", enc_key);
    w->dir = sbi_asprintf("%s/features/%s", s->root, enc_key);
    w->enc_json = sbi_strdup(enc_json);
    w->lay = *lay;
    if (w->lay.frame_dim == 0)
        w->lay.frame_bits = 0;
    w->width = (size_t)lay->n_layers * (size_t)lay->dim;
    w->frame_row = (size_t)lay->n_layers * (size_t)lay->frame_dim;
    w->keys = calloc(CHUNK_ITEMS, sizeof *w->keys);
    w->data = malloc(CHUNK_ITEMS * w->width * sizeof(float));
    w->f_off = calloc(CHUNK_ITEMS, sizeof *w->f_off);
    w->f_T = calloc(CHUNK_ITEMS, sizeof *w->f_T);
    if (!w->dir || !w->enc_json || !w->keys || !w->data || !w->f_off || !w->f_T) {
        sbi_feat_writer_destroy(&w);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    w->last_write = sbi_now();
    sb_status st = sbi_mkdir_p(w->dir, err);
    if (st == SB_OK)
        st = recover_all(w, err);
    if (st == SB_OK)
        st = journal_start(w, err);
    if (st != SB_OK) {
        sbi_feat_writer_destroy(&w);
        return st;
    }
    w->last_write = sbi_now();
    *out = w;
    return SB_OK;
}

sbi_feat_recovery sbi_feat_writer_recovery(const sbi_feat_writer *w)
{
    return w->rcv;
}

void sbi_feat_writer_destroy(sbi_feat_writer **wp)
{
    if (!wp || !*wp)
        return;
    sbi_feat_writer *w = *wp;
    if (w->jfd >= 0) {
        /* Unlink before unlocking, so no recoverer replays what is already indexed. */
        if (w->j_pending == 0)
            unlink(w->jpath);
        close(w->jfd);
    }
    free(w->jpath);
    free(w->rec);
    free(w->dir);
    free(w->enc_json);
    free(w->keys);
    free(w->data);
    free(w->f_off);
    free(w->f_T);
    free(w->frames);
    free(w);
    *wp = NULL;
}

int sbi_feat_has(sbi_store *s, const char *enc_key, const char *item_key)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM features WHERE enc_key=?1 AND item_key=?2", -1, &q,
                           NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(q, 1, enc_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, item_key, -1, SQLITE_STATIC);
    int r = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return r;
}

/* ---- the reader -------------------------------------------------------------------- */

typedef struct open_file {
    char *rel;
    sb_st_file *f;
} open_file;

struct sbi_feat_reader {
    sbi_store *s;
    char enc_key[SB_HASH_HEX];
    int n_layers, dim;
    sqlite3_stmt *q;
    open_file *files;
    size_t n_files;
};

sb_status sbi_feat_reader_create(sbi_store *s, const char *enc_key, int n_layers, int dim,
                                 sbi_feat_reader **out, sb_error *err)
{
    sbi_feat_reader *r = calloc(1, sizeof *r);
    if (!r)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    r->s = s;
    snprintf(r->enc_key, sizeof r->enc_key, "%s", enc_key);
    r->n_layers = n_layers;
    r->dim = dim;
    sb_status st = sbi_store_prepare(
        s, "SELECT file, tensor FROM features WHERE enc_key=?1 AND item_key=?2", &r->q, err);
    if (st != SB_OK) {
        free(r);
        return st;
    }
    *out = r;
    return SB_OK;
}

/* The item's file (opened once per reader) and tensor name (caller frees). */
static sb_status locate(sbi_feat_reader *r, const char *item_key, sb_st_file **fp, char **tensor,
                        sb_error *err)
{
    *fp = NULL;
    *tensor = NULL;
    sqlite3_bind_text(r->q, 1, r->enc_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(r->q, 2, item_key, -1, SQLITE_STATIC);
    if (sqlite3_step(r->q) != SQLITE_ROW) {
        sqlite3_reset(r->q);
        return sb_error_set(err, SB_ERR_NOT_FOUND, item_key, "features not stored");
    }
    char *rel = sbi_strdup((const char *)sqlite3_column_text(r->q, 0));
    char *name = sbi_strdup((const char *)sqlite3_column_text(r->q, 1));
    sqlite3_reset(r->q);
    sb_status st = rel && name ? SB_OK : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    sb_st_file *f = NULL;
    for (size_t i = 0; st == SB_OK && i < r->n_files && !f; i++)
        if (strcmp(r->files[i].rel, rel) == 0)
            f = r->files[i].f;
    if (st == SB_OK && !f) {
        char *path = sbi_path_join(r->s->root, rel);
        sb_error e = { 0 };
        if (sb_st_open(path, &f, &e) != SB_OK)
            st = sb_error_set(err, SB_ERR_STORE, path,
                              "feature file is missing or damaged (%s); delete the store's "
                              "features/ folder and serbench.db rows, or rerun with --force",
                              e.msg);
        free(path);
        open_file *nf = st == SB_OK ? realloc(r->files, (r->n_files + 1) * sizeof *nf) : NULL;
        if (st == SB_OK && !nf) {
            sb_st_close(&f);
            st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        }
        if (st == SB_OK) {
            r->files = nf;
            r->files[r->n_files].rel = rel;
            r->files[r->n_files].f = f;
            r->n_files++;
            rel = NULL;
        }
    }
    free(rel);
    if (st != SB_OK) {
        free(name);
        return st;
    }
    *fp = f;
    *tensor = name;
    return SB_OK;
}

sb_status sbi_feat_read(sbi_feat_reader *r, const char *item_key, float *out, sb_error *err)
{
    sb_st_file *f;
    char *tensor;
    sb_status st = locate(r, item_key, &f, &tensor, err);
    if (st != SB_OK)
        return st;
    const sb_st_tensor *t = sb_st_find(f, tensor);
    if (!t || t->dtype != SB_DT_F32 || t->ndim != 2 || t->shape[0] != r->n_layers ||
        t->shape[1] != r->dim)
        st = sb_error_set(err, SB_ERR_STORE, tensor,
                          "feature tensor missing or of the wrong shape (want [%d, %d])",
                          r->n_layers, r->dim);
    else
        memcpy(out, t->data, t->nbytes);
    free(tensor);
    return st;
}

sb_status sbi_feat_read_frames(sbi_feat_reader *r, const char *item_key, int frame_dim,
                               const sb_st_tensor **out, sb_error *err)
{
    *out = NULL;
    sb_st_file *f;
    char *tensor;
    sb_status st = locate(r, item_key, &f, &tensor, err);
    if (st != SB_OK)
        return st;
    char *name = sbi_asprintf("%s.frames", tensor);
    free(tensor);
    if (!name)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    const sb_st_tensor *t = sb_st_find(f, name);
    if (t && ((t->dtype != SB_DT_F16 && t->dtype != SB_DT_F32) || t->ndim != 3 ||
              t->shape[0] != r->n_layers || t->shape[1] < 1 || t->shape[2] != frame_dim))
        st = sb_error_set(err, SB_ERR_STORE, name,
                          "frames tensor of the wrong dtype or shape (want F16 or F32 [%d, T, %d])",
                          r->n_layers, frame_dim);
    else
        *out = t;
    free(name);
    return st;
}

void sbi_feat_reader_destroy(sbi_feat_reader **rp)
{
    if (!rp || !*rp)
        return;
    sbi_feat_reader *r = *rp;
    sqlite3_finalize(r->q);
    for (size_t i = 0; i < r->n_files; i++) {
        free(r->files[i].rel);
        sb_st_close(&r->files[i].f);
    }
    free(r->files);
    free(r);
    *rp = NULL;
}
