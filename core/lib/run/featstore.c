/* core/lib/run/featstore.c — chunked safetensors feature files indexed in SQLite
 * (featstore.h). */
#include "featstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define CHUNK_ITEMS 64
/* A chunk is also written once this much time has passed since the last write, so a slow
 * encoder loses at most about this much work to an interruption (seconds). */
#define CHUNK_SECONDS 2.0

struct sbi_feat_writer {
    sbi_store *s;
    char enc_key[SB_HASH_HEX];
    char *dir;
    char *enc_json;
    int n_layers, dim;
    char (*keys)[SB_HASH_HEX];
    float *data; /* [CHUNK_ITEMS, n_layers, dim] */
    size_t n;
    double last_write; /* sbi_now() of creation or the last flush */
};

sb_status sbi_feat_writer_create(sbi_store *s, const char *enc_key, const char *enc_json,
                                 int n_layers, int dim, sbi_feat_writer **out, sb_error *err)
{
    *out = NULL;
    sbi_feat_writer *w = calloc(1, sizeof *w);
    if (!w)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    w->s = s;
    snprintf(w->enc_key, sizeof w->enc_key, "%s", enc_key);
    w->dir = sbi_asprintf("%s/features/%s", s->root, enc_key);
    w->enc_json = sbi_strdup(enc_json);
    w->n_layers = n_layers;
    w->dim = dim;
    w->keys = calloc(CHUNK_ITEMS, sizeof *w->keys);
    w->data = malloc((size_t)CHUNK_ITEMS * (size_t)n_layers * (size_t)dim * sizeof(float));
    if (!w->dir || !w->enc_json || !w->keys || !w->data) {
        sbi_feat_writer_destroy(&w);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    sb_status st = sbi_mkdir_p(w->dir, err);
    if (st != SB_OK) {
        sbi_feat_writer_destroy(&w);
        return st;
    }
    w->last_write = sbi_now();
    *out = w;
    return SB_OK;
}

sb_status sbi_feat_writer_add(sbi_feat_writer *w, const char *item_key, const float *vec,
                              sb_error *err)
{
    size_t width = (size_t)w->n_layers * (size_t)w->dim;
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->keys[i], item_key) == 0)
            return SB_OK; /* two utterances with the same audio span */
    snprintf(w->keys[w->n], SB_HASH_HEX, "%s", item_key);
    memcpy(w->data + w->n * width, vec, width * sizeof(float));
    w->n++;
    if (w->n == CHUNK_ITEMS || sbi_now() - w->last_write >= CHUNK_SECONDS)
        return sbi_feat_writer_flush(w, err);
    return SB_OK;
}

sb_status sbi_feat_writer_flush(sbi_feat_writer *w, sb_error *err)
{
    if (w->n == 0)
        return SB_OK;
    size_t width = (size_t)w->n_layers * (size_t)w->dim;
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
    int64_t shape[2] = { w->n_layers, w->dim };
    for (size_t i = 0; st == SB_OK && i < w->n; i++)
        st = sb_st_writer_add(sw, w->keys[i], SB_DT_F32, 2, shape, w->data + i * width, err);
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
    if (st == SB_OK)
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
    free(file);
    free(rel);
    if (st == SB_OK) {
        w->n = 0;
        w->last_write = sbi_now();
    }
    return st;
}

void sbi_feat_writer_destroy(sbi_feat_writer **wp)
{
    if (!wp || !*wp)
        return;
    free((*wp)->dir);
    free((*wp)->enc_json);
    free((*wp)->keys);
    free((*wp)->data);
    free(*wp);
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

sb_status sbi_feat_read(sbi_feat_reader *r, const char *item_key, float *out, sb_error *err)
{
    sqlite3_bind_text(r->q, 1, r->enc_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(r->q, 2, item_key, -1, SQLITE_STATIC);
    if (sqlite3_step(r->q) != SQLITE_ROW) {
        sqlite3_reset(r->q);
        return sb_error_set(err, SB_ERR_NOT_FOUND, item_key, "features not stored");
    }
    char *rel = sbi_strdup((const char *)sqlite3_column_text(r->q, 0));
    char *tensor = sbi_strdup((const char *)sqlite3_column_text(r->q, 1));
    sqlite3_reset(r->q);
    sb_status st = rel && tensor ? SB_OK : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
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
    if (st == SB_OK) {
        const sb_st_tensor *t = sb_st_find(f, tensor);
        if (!t || t->dtype != SB_DT_F32 || t->ndim != 2 || t->shape[0] != r->n_layers ||
            t->shape[1] != r->dim)
            st = sb_error_set(err, SB_ERR_STORE, tensor,
                              "feature tensor missing or of the wrong shape (want [%d, %d])",
                              r->n_layers, r->dim);
        else
            memcpy(out, t->data, t->nbytes);
    }
    free(rel);
    free(tensor);
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
