/* core/lib/run/merge.c — `serbench merge` (merge.h): the rows of several results stores and
 * the feature and checkpoint files they name, checked against each other and the
 * destination, then written in one transaction or not at all. */
#include "merge.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

/* The tables, parents before children, labels before item_failures (a failure answered by a
 * merged label is dropped). Key columns come first in each column list. */
enum {
    T_RUNS,
    T_METRICS,
    T_PREDICTIONS,
    T_STAGES,
    T_LABELS,
    T_FAILURES,
    T_CACHE,
    T_FEATURES,
    T_HASHES,
    N_TABLES
};

typedef struct tspec {
    const char *name;
    const char *cols;
    int n_cols, n_key;
    unsigned ignore; /* columns that are not content (timestamps, durations): bit i = column i */
} tspec;

#define BIT(i) (1u << (i))
static const tspec tables[N_TABLES] = {
    [T_RUNS] = { "runs",
                 "run_id, group_id, seed, config, status, error, created, started, finished,"
                 " seconds, inputs_key, provenance",
                 12, 1, BIT(6) | BIT(7) | BIT(8) | BIT(9) },
    [T_METRICS] = { "metrics", "run_id, test, metric, value, n", 5, 3, 0 },
    [T_PREDICTIONS] = { "predictions", "run_id, test, utt_id, gold, pred, probs", 6, 3, 0 },
    [T_STAGES] = { "stages", "key, kind, description, status, created, finished, info", 7, 1,
                   BIT(4) | BIT(5) },
    [T_LABELS] = { "labels",
                   "stage_key, utt_id, label, label_name, confidence, raw, status, reason, dist,"
                   " detail",
                   10, 2, 0 },
    [T_FAILURES] = { "item_failures", "stage_key, utt_id, reason", 3, 2, 0 },
    [T_CACHE] = { "plugin_cache", "plugin, key, value, created", 4, 2, BIT(3) },
    [T_FEATURES] = { "features", "enc_key, item_key, file, tensor", 4, 2, 0 },
    [T_HASHES] = { "file_hashes", "path, size, mtime_ns, inode, hash", 5, 1, 0 },
};
enum { R_STATUS = 4, R_PROVENANCE = 11 };

typedef struct counts {
    size_t added, replaced, same, conflicts;
} counts;

typedef struct src_store {
    char *root; /* as given */
    char *real; /* realpath of the folder */
    sqlite3 *db;
} src_store;

typedef struct planned_file {
    char *rel;
    size_t src;
    int placed; /* PLACED_NEW: the merge made the file; PLACED_OVER: it replaced one */
    dev_t dev;  /* the file the merge made (removed on failure only if still that file) */
    ino_t ino;
    char *old; /* PLACED_OVER: the replaced file, kept under this name until the commit */
} planned_file;
enum { PLACED_NONE, PLACED_NEW, PLACED_OVER };

/* A few mapped feature files, for comparing an item stored in different chunk files. */
#define N_OPEN 8
typedef struct open_st {
    char *path;
    sb_st_file *f;
} open_st;

typedef struct merge_ctx {
    const sbi_merge_opts *o;
    src_store *srcs;
    size_t n_srcs;
    char *into_real; /* realpath of the destination folder, when it exists */
    sbi_store *dst;  /* the destination, in one write transaction */
    sqlite3 *snap;   /* the destination as it was (read-only), for naming a conflict's stores */
    char *work_root; /* no destination database yet: the merge's own store, in a temporary
                      * folder, linked to DST/serbench.db as the commit (never created, so
                      * never removed, under another writer) */
    char **made;     /* folders the merge created, parents first: removed unless it commits */
    size_t n_made;
    char *merge_json_tmp; /* DST/merge.json's new text, renamed into place after the commit */
    counts cnt[N_TABLES];
    size_t files_copied, files_linked, files_same;
    json_t *conflicts, *warnings, *config_ids;
    json_t *held_ids;    /* config_ids the destination held before (its merge.json, shard.json) */
    size_t n_cache_diff; /* plugin_cache keys with another value in a source (kept) */
    char *cache_diff_example; /* the first of them */
    size_t n_conflicts;       /* all of them; the first MAX_LISTED are in `conflicts` */
    const char *config_id; /* the sources' common config_id (borrowed from config_ids), or NULL */
    sqlite3_stmt *get[N_TABLES], *put[N_TABLES];
    sqlite3_stmt *plan_get, *plan_put, *seen_put, *has_label;
    planned_file *plan;
    size_t n_plan;
    char **tmps; /* temporary files written, removed on failure */
    size_t n_tmps;
    open_st open[N_OPEN];
    size_t next_open;
} merge_ctx;

/* ---- small helpers ---------------------------------------------------------------------- */

static sb_status nomem(sb_error *err)
{
    return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
}

static int file_size(const char *path, off_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    *size = st.st_size;
    return 0;
}

/* 1 when both files have the same bytes (or are the same file), 0 when not, -1 on error. */
static int files_equal(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return -1;
    if (sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino)
        return 1;
    if (sa.st_size != sb.st_size)
        return 0;
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb ? 1 : -1;
    static const size_t N = 1 << 16;
    char *ba = malloc(N), *bb = malloc(N);
    if (!ba || !bb)
        eq = -1;
    while (eq == 1) {
        size_t na = fread(ba, 1, N, fa), nb = fread(bb, 1, N, fb);
        if (na != nb || memcmp(ba, bb, na) != 0)
            eq = 0;
        else if (na < N)
            break;
    }
    if (eq == 1 && (ferror(fa) || ferror(fb)))
        eq = -1;
    free(ba);
    free(bb);
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return eq;
}

/* "file:" URI of an absolute path, percent-encoding everything but unreserved bytes and '/'. */
static char *file_uri(const char *path, const char *query)
{
    sbi_buf b = { 0 };
    int bad = sbi_buf_puts(&b, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p && !bad; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p))
            bad = sbi_buf_add(&b, (const char *)p, 1);
        else
            bad = sbi_buf_printf(&b, "%%%02X", *p);
    }
    if (!bad)
        bad = sbi_buf_printf(&b, "?%s", query);
    if (bad) {
        sbi_buf_free(&b);
        return NULL;
    }
    return b.s;
}

/* A stored relative path (features/…, checkpoints/…) that stays inside the results folder. */
static int safe_rel(const char *rel)
{
    if (!rel || !*rel || rel[0] == '/')
        return 0;
    if (strncmp(rel, "features/", 9) != 0 && strncmp(rel, "checkpoints/", 12) != 0)
        return 0;
    for (const char *p = rel; *p; p = strchr(p, '/') ? strchr(p, '/') + 1 : p + strlen(p))
        if (!strncmp(p, "../", 3) || !strcmp(p, "..") || !strncmp(p, "./", 2))
            return 0;
    return 1;
}

/* Same type and bytes (REAL compared bit for bit). */
static int col_eq(sqlite3_stmt *a, int ia, sqlite3_stmt *b, int ib)
{
    int t = sqlite3_column_type(a, ia);
    if (t != sqlite3_column_type(b, ib))
        return 0;
    switch (t) {
    case SQLITE_NULL: return 1;
    case SQLITE_INTEGER: return sqlite3_column_int64(a, ia) == sqlite3_column_int64(b, ib);
    case SQLITE_FLOAT: {
        double x = sqlite3_column_double(a, ia), y = sqlite3_column_double(b, ib);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    default: {
        const void *x = sqlite3_column_blob(a, ia), *y = sqlite3_column_blob(b, ib);
        int nx = sqlite3_column_bytes(a, ia), ny = sqlite3_column_bytes(b, ib);
        return nx == ny && (nx == 0 || memcmp(x, y, (size_t)nx) == 0);
    }
    }
}

static int rows_eq(const tspec *t, sqlite3_stmt *a, sqlite3_stmt *b)
{
    for (int c = 0; c < t->n_cols; c++)
        if (!(t->ignore & BIT(c)) && !col_eq(a, c, b, c))
            return 0;
    return 1;
}

static const char *col_text(sqlite3_stmt *q, int i)
{
    const unsigned char *s = sqlite3_column_text(q, i);
    return s ? (const char *)s : "";
}

/* A JSON object column, or NULL when it is NULL or not a JSON object. */
static json_t *col_json(sqlite3_stmt *q, int i)
{
    if (sqlite3_column_type(q, i) == SQLITE_NULL)
        return NULL;
    json_t *j = json_loads(col_text(q, i), 0, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Provenance is content except its "seconds" (a duration, like the runs.seconds column). */
static int provenance_eq(sqlite3_stmt *a, sqlite3_stmt *b)
{
    if (col_eq(a, R_PROVENANCE, b, R_PROVENANCE))
        return 1;
    json_t *x = col_json(a, R_PROVENANCE), *y = col_json(b, R_PROVENANCE);
    int eq = 0;
    if (x && y) {
        json_object_del(x, "seconds");
        json_object_del(y, "seconds");
        eq = json_equal(x, y);
    }
    json_decref(x);
    json_decref(y);
    return eq;
}

static int status_rank(sqlite3_stmt *q)
{
    const char *s = col_text(q, R_STATUS);
    return !strcmp(s, "complete") ? 2 : !strcmp(s, "failed") ? 1 : 0;
}

/* ---- conflicts ------------------------------------------------------------------------------ */

/* "run_id=…, test=…" from the key columns of q (starting at column 0). */
static char *key_text(const tspec *t, sqlite3_stmt *q)
{
    sbi_buf b = { 0 };
    const char *p = t->cols;
    for (int k = 0; k < t->n_key; k++) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        sbi_buf_printf(&b, "%s%.*s=%s", k ? ", " : "", (int)n, p, col_text(q, k));
        p = e ? e + 2 : p + n;
    }
    return b.s ? b.s : sbi_strdup("");
}

/* Does db hold table t's key taken from q's first columns? */
static int holds_key(sqlite3 *db, const tspec *t, sqlite3_stmt *q)
{
    sbi_buf sql = { 0 };
    sbi_buf_printf(&sql, "SELECT 1 FROM %s WHERE ", t->name);
    const char *p = t->cols;
    for (int k = 0; k < t->n_key; k++) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        sbi_buf_printf(&sql, "%s%.*s=?%d", k ? " AND " : "", (int)n, p, k + 1);
        p = e ? e + 2 : p + n;
    }
    sqlite3_stmt *h = NULL;
    int found = 0;
    if (sql.s && sqlite3_prepare_v2(db, sql.s, -1, &h, NULL) == SQLITE_OK) {
        for (int k = 0; k < t->n_key; k++)
            sqlite3_bind_value(h, k + 1, sqlite3_column_value(q, k));
        found = sqlite3_step(h) == SQLITE_ROW;
    }
    sqlite3_finalize(h);
    sbi_buf_free(&sql);
    return found;
}

/* The report lists the first MAX_LISTED conflicts (all are counted). */
#define MAX_LISTED 1000

static void add_conflict(merge_ctx *c, int table, const char *tname, const char *key,
                         json_t *holders)
{
    if (table >= 0)
        c->cnt[table].conflicts++;
    if (c->n_conflicts++ >= MAX_LISTED) {
        json_decref(holders);
        return;
    }
    json_array_append_new(c->conflicts, json_pack("{s:s, s:s, s:o}", "table", tname, "key", key,
                                                  "sources", holders ? holders : json_array()));
}

/* A row of table t (key in q's first columns) conflicts: name every store holding the key
 * (the destination as it was before the merge, and each source). */
static void row_conflict(merge_ctx *c, int t, sqlite3_stmt *q)
{
    if (c->n_conflicts >= MAX_LISTED) {
        add_conflict(c, t, tables[t].name, "", NULL);
        return;
    }
    json_t *holders = json_array();
    if (c->snap && holds_key(c->snap, &tables[t], q))
        json_array_append_new(holders, json_string(c->o->into));
    for (size_t i = 0; i < c->n_srcs; i++)
        if (holds_key(c->srcs[i].db, &tables[t], q))
            json_array_append_new(holders, json_string(c->srcs[i].root));
    char *key = key_text(&tables[t], q);
    add_conflict(c, t, tables[t].name, key ? key : "?", holders);
    free(key);
}

static void file_conflict(merge_ctx *c, const char *rel, const char *a, const char *b)
{
    add_conflict(c, -1, "files", rel, json_pack("[s, s]", a, b));
}

/* ---- files -------------------------------------------------------------------------------- */

/* Where the merge will take rel from: the planned source's path, or NULL. */
static char *planned_path(merge_ctx *c, const char *rel)
{
    sqlite3_bind_text(c->plan_get, 1, rel, -1, SQLITE_STATIC);
    char *path = NULL;
    if (sqlite3_step(c->plan_get) == SQLITE_ROW)
        path = sbi_path_join(c->srcs[sqlite3_column_int(c->plan_get, 0)].root, rel);
    sqlite3_reset(c->plan_get);
    return path;
}

enum { NEED_FEATURE, NEED_CKPT_SAME, NEED_CKPT_NEW };

/* Source i's row needs file rel in the destination: plan its copy, or find it there (same
 * bytes), or record a conflict. A checkpoint of a run the merge adds or replaces replaces the
 * destination's file; a missing checkpoint is a warning (the run's metrics do not need it). */
static sb_status need_file(merge_ctx *c, size_t i, const char *rel, int mode, sb_error *err)
{
    const src_store *s = &c->srcs[i];
    if (!safe_rel(rel))
        return sb_error_set(err, SB_ERR_STORE, s->root,
                            "a row names the file '%s', which is not under features/ or "
                            "checkpoints/ of the results folder; this store is damaged",
                            rel ? rel : "");
    sqlite3_bind_int64(c->seen_put, 1, (sqlite3_int64)i);
    sqlite3_bind_text(c->seen_put, 2, rel, -1, SQLITE_STATIC);
    sb_status st = sbi_store_step_done(c->dst, c->seen_put, err);
    if (st != SB_OK || sqlite3_changes(c->dst->db) == 0)
        return st; /* handled for this source already */
    char *spath = sbi_path_join(s->root, rel);
    char *dpath = sbi_path_join(c->o->into, rel);
    char *ppath = spath && dpath ? planned_path(c, rel) : NULL;
    if (!spath || !dpath) {
        st = nomem(err);
    } else if (!sbi_is_file(spath)) {
        if (mode == NEED_FEATURE)
            st = sb_error_set(err, SB_ERR_STORE, spath,
                              "the features table of %s names this file, which is missing; the "
                              "store is damaged (rerun its encode to rewrite it)",
                              s->root);
        else if (mode == NEED_CKPT_NEW)
            json_array_append_new(c->warnings,
                                  json_sprintf("%s: the checkpoint of a merged run is missing; "
                                               "the run's results are merged without it",
                                               spath));
    } else if (ppath) {
        int eq = files_equal(ppath, spath);
        if (eq < 0)
            st = sb_error_set(err, SB_ERR_IO, spath, "cannot compare with %s: %s", ppath,
                              strerror(errno));
        else if (!eq)
            file_conflict(c, rel, ppath, spath);
    } else {
        int eq = sbi_is_file(dpath) ? files_equal(dpath, spath) : 2;
        if (eq < 0) {
            st = sb_error_set(err, SB_ERR_IO, spath, "cannot compare with %s: %s", dpath,
                              strerror(errno));
        } else if (eq == 1) {
            c->files_same++;
        } else if (eq == 0 && mode != NEED_CKPT_NEW) {
            file_conflict(c, rel, dpath, spath);
        } else {
            sqlite3_bind_text(c->plan_put, 1, rel, -1, SQLITE_STATIC);
            sqlite3_bind_int64(c->plan_put, 2, (sqlite3_int64)i);
            st = sbi_store_step_done(c->dst, c->plan_put, err);
        }
    }
    free(spath);
    free(dpath);
    free(ppath);
    return st;
}

static sb_st_file *open_cached(merge_ctx *c, const char *path, sb_error *err)
{
    for (size_t k = 0; k < N_OPEN; k++)
        if (c->open[k].path && !strcmp(c->open[k].path, path))
            return c->open[k].f;
    open_st *o = &c->open[c->next_open++ % N_OPEN];
    free(o->path);
    sb_st_close(&o->f);
    o->path = NULL;
    if (sb_st_open(path, &o->f, err) != SB_OK)
        return NULL;
    o->path = sbi_strdup(path);
    return o->f;
}

static int tensors_eq(const sb_st_tensor *a, const sb_st_tensor *b)
{
    if (!a || !b)
        return a == b;
    if (a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

/* The same feature item indexed in two different chunk files (or under two tensor names): the
 * same when its pooled tensor and its frames have the same dtype, shape and bytes. */
static sb_status same_feature(merge_ctx *c, size_t i, sqlite3_stmt *e, sqlite3_stmt *r, int *same,
                              sb_error *err)
{
    *same = 0;
    const char *erel = col_text(e, 2), *rrel = col_text(r, 2);
    if (!safe_rel(erel) || !safe_rel(rrel))
        return sb_error_set(err, SB_ERR_STORE, safe_rel(rrel) ? c->o->into : c->srcs[i].root,
                            "a features row names the file '%s', which is not under features/",
                            safe_rel(rrel) ? erel : rrel);
    char *epath = planned_path(c, erel);
    if (!epath)
        epath = sbi_path_join(c->o->into, erel);
    char *rpath = sbi_path_join(c->srcs[i].root, rrel);
    char *ename = sbi_asprintf("%s.frames", col_text(e, 3));
    char *rname = sbi_asprintf("%s.frames", col_text(r, 3));
    sb_status st = epath && rpath && ename && rname ? SB_OK : nomem(err);
    sb_st_file *ef = st == SB_OK ? open_cached(c, epath, err) : NULL;
    sb_st_file *rf = ef ? open_cached(c, rpath, err) : NULL;
    ef = rf ? open_cached(c, epath, err) : NULL; /* the second open may have evicted it */
    if (st == SB_OK && (!ef || !rf))
        st = err && err->code ? err->code : SB_ERR_STORE;
    if (st == SB_OK) {
        const sb_st_tensor *ep = sb_st_find(ef, col_text(e, 3));
        *same = ep && tensors_eq(ep, sb_st_find(rf, col_text(r, 3))) &&
                tensors_eq(sb_st_find(ef, ename), sb_st_find(rf, rname));
    }
    free(epath);
    free(rpath);
    free(ename);
    free(rname);
    return st;
}

/* ---- rows --------------------------------------------------------------------------------- */

static sb_status put_row(merge_ctx *c, int t, sqlite3_stmt *r, sb_error *err)
{
    for (int k = 0; k < tables[t].n_cols; k++)
        sqlite3_bind_value(c->put[t], k + 1, sqlite3_column_value(r, k));
    sb_status st = sbi_store_step_done(c->dst, c->put[t], err);
    sqlite3_clear_bindings(c->put[t]);
    return st;
}

/* Look r's key up in the destination: 1 with c->get[t] on the row (reset it after), 0 if
 * absent, -1 on error. */
static int get_row(merge_ctx *c, int t, sqlite3_stmt *r)
{
    sqlite3_stmt *g = c->get[t];
    sqlite3_reset(g);
    for (int k = 0; k < tables[t].n_key; k++)
        sqlite3_bind_value(g, k + 1, sqlite3_column_value(r, k));
    int rc = sqlite3_step(g);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static sb_status src_query(merge_ctx *c, size_t i, const char *sql, sqlite3_stmt **q, sb_error *err)
{
    if (sqlite3_prepare_v2(c->srcs[i].db, sql, -1, q, NULL) != SQLITE_OK)
        return sb_error_set(err, SB_ERR_STORE, c->srcs[i].root, "cannot read the store: %s",
                            sqlite3_errmsg(c->srcs[i].db));
    return SB_OK;
}

/* A run's metrics and predictions: copied with the run (replacing the destination's), or,
 * for a run already there, compared row for row (a difference is a conflict). */
static sb_status run_children(merge_ctx *c, size_t i, const char *run_id, int copy, int *conflict,
                              sb_error *err)
{
    sb_status st = SB_OK;
    for (int t = T_METRICS; st == SB_OK && t <= T_PREDICTIONS; t++) {
        char *sql = sbi_asprintf("SELECT %s FROM %s WHERE run_id=?1 ORDER BY %s", tables[t].cols,
                                 tables[t].name, t == T_METRICS ? "test, metric" : "test, utt_id");
        sqlite3_stmt *q = NULL;
        st = sql ? src_query(c, i, sql, &q, err) : nomem(err);
        free(sql);
        if (st == SB_OK && copy) {
            sql = sbi_asprintf("DELETE FROM %s WHERE run_id=?1", tables[t].name);
            sqlite3_stmt *d = NULL;
            st = sql ? sbi_store_prepare(c->dst, sql, &d, err) : nomem(err);
            free(sql);
            if (st == SB_OK) {
                sqlite3_bind_text(d, 1, run_id, -1, SQLITE_STATIC);
                st = sbi_store_step_done(c->dst, d, err);
            }
            sqlite3_finalize(d);
        }
        size_t n_src = 0, n_same = 0;
        if (st == SB_OK)
            sqlite3_bind_text(q, 1, run_id, -1, SQLITE_STATIC);
        int rc = SQLITE_DONE, differs = 0;
        while (st == SB_OK && !differs && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            n_src++;
            if (copy) {
                st = put_row(c, t, q, err);
                c->cnt[t].added += st == SB_OK;
                continue;
            }
            int found = get_row(c, t, q);
            if (found == 1 && rows_eq(&tables[t], c->get[t], q)) {
                n_same++;
            } else {
                differs = 1;
                row_conflict(c, t, q);
            }
            sqlite3_reset(c->get[t]);
        }
        if (st == SB_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
            st = sb_error_set(err, SB_ERR_STORE, c->srcs[i].root, "cannot read %s: %s",
                              tables[t].name, sqlite3_errmsg(c->srcs[i].db));
        sqlite3_finalize(q);
        if (st != SB_OK || copy)
            continue;
        if (!differs) {
            /* Rows only the destination has differ too. */
            sql = sbi_asprintf("SELECT count(*) FROM %s WHERE run_id=?1", tables[t].name);
            sqlite3_stmt *n = NULL;
            st = sql ? sbi_store_prepare(c->dst, sql, &n, err) : nomem(err);
            free(sql);
            if (st == SB_OK) {
                sqlite3_bind_text(n, 1, run_id, -1, SQLITE_STATIC);
                if (sqlite3_step(n) == SQLITE_ROW && (size_t)sqlite3_column_int64(n, 0) != n_src) {
                    differs = 1;
                    char *key = sbi_asprintf("run_id=%s (the destination has other rows)", run_id);
                    json_t *h = json_pack("[s, s]", c->o->into, c->srcs[i].root);
                    add_conflict(c, t, tables[t].name, key ? key : run_id, h);
                    free(key);
                }
            }
            sqlite3_finalize(n);
        }
        if (differs)
            *conflict = 1;
        else
            c->cnt[t].same += n_same;
    }
    return st;
}

/* The checkpoint a run's provenance names, or NULL (caller frees). */
static char *run_checkpoint(sqlite3_stmt *r)
{
    json_t *p = col_json(r, R_PROVENANCE);
    char *rel = p ? sbi_strdup(json_string_value(json_object_get(p, "checkpoint"))) : NULL;
    json_decref(p);
    return rel;
}

enum { ACT_ADD, ACT_REPLACE, ACT_SAME, ACT_CONFLICT };

static sb_status merge_run(merge_ctx *c, size_t i, sqlite3_stmt *r, sb_error *err)
{
    sqlite3_stmt *e = c->get[T_RUNS];
    int found = get_row(c, T_RUNS, r);
    if (found < 0)
        return sb_error_set(err, SB_ERR_STORE, c->o->into, "cannot read runs: %s",
                            sqlite3_errmsg(c->dst->db));
    int act = ACT_ADD;
    if (found) {
        int re = status_rank(e), rr = status_rank(r);
        if (re == 2 && rr == 2) {
            int same = 1;
            for (int k = 1; k <= 10 && same; k++)
                same = (tables[T_RUNS].ignore & BIT(k)) || col_eq(e, k, r, k);
            act = same && provenance_eq(e, r) ? ACT_SAME : ACT_CONFLICT;
        } else {
            act = rr > re ? ACT_REPLACE : ACT_SAME; /* a better row is there: keep it */
        }
    }
    sqlite3_reset(e);
    char *run_id = sbi_strdup(col_text(r, 0));
    char *ckpt = run_checkpoint(r);
    sb_status st = run_id ? SB_OK : nomem(err);
    if (st == SB_OK && act == ACT_CONFLICT) {
        row_conflict(c, T_RUNS, r);
    } else if (st == SB_OK && (act == ACT_ADD || act == ACT_REPLACE)) {
        st = put_row(c, T_RUNS, r, err);
        int dummy = 0;
        if (st == SB_OK)
            st = run_children(c, i, run_id, 1, &dummy, err);
        if (st == SB_OK && ckpt)
            st = need_file(c, i, ckpt, NEED_CKPT_NEW, err);
        if (act == ACT_ADD)
            c->cnt[T_RUNS].added++;
        else
            c->cnt[T_RUNS].replaced++;
    } else if (st == SB_OK) {
        int conflict = 0;
        if (found && status_rank(r) == 2) {
            st = run_children(c, i, run_id, 0, &conflict, err);
            if (st == SB_OK && !conflict && ckpt)
                st = need_file(c, i, ckpt, NEED_CKPT_SAME, err);
        }
        if (conflict)
            c->cnt[T_RUNS].conflicts++;
        else
            c->cnt[T_RUNS].same++;
    }
    free(run_id);
    free(ckpt);
    return st;
}

static char *labels_key(sqlite3_stmt *q)
{
    json_t *j = col_json(q, 6);
    char *k = j ? sbi_strdup(json_string_value(json_object_get(j, "labels_key"))) : NULL;
    json_decref(j);
    return k;
}

/* What to do with source row r of table t (not runs) given the destination's row e. */
static sb_status decide(merge_ctx *c, size_t i, int t, sqlite3_stmt *e, sqlite3_stmt *r, int *act,
                        sb_error *err)
{
    *act = rows_eq(&tables[t], e, r) ? ACT_SAME : ACT_CONFLICT;
    if (t == T_STAGES) {
        /* Same stage when kind, description and the label rows it covers agree; its other
         * info counts describe the execution that marked it. Complete beats running. */
        char *ke = labels_key(e), *kr = labels_key(r);
        int same = col_eq(e, 1, r, 1) && col_eq(e, 2, r, 2) && sbi_streq(ke, kr);
        free(ke);
        free(kr);
        int ce = !strcmp(col_text(e, 3), "complete"), cr = !strcmp(col_text(r, 3), "complete");
        *act = !same ? ACT_CONFLICT : (cr && !ce) ? ACT_REPLACE : ACT_SAME;
    } else if (t == T_FAILURES) {
        *act = ACT_SAME; /* a failure is retried, not a result: keep the one there */
    } else if (t == T_CACHE && *act == ACT_CONFLICT) {
        /* Two answers cached for one request (e.g. the llm labeller's response to the same
         * prompt, asked by two item shards): each is a valid value for the key and the labels
         * made from them are compared on their own. Keep the one there; say so. */
        if (c->n_cache_diff++ == 0) {
            char *key = key_text(&tables[t], r);
            c->cache_diff_example = sbi_asprintf("%s (from %s)", key ? key : "?", c->srcs[i].root);
            free(key);
        }
        *act = ACT_SAME;
    } else if (t == T_HASHES && *act == ACT_CONFLICT) {
        /* Another stat of the same path is a stale cache entry (looked up by stat), not a
         * conflict; the same stat with another hash is. */
        if (!(col_eq(e, 1, r, 1) && col_eq(e, 2, r, 2) && col_eq(e, 3, r, 3)))
            *act = ACT_SAME;
    } else if (t == T_FEATURES && *act == ACT_CONFLICT) {
        int same = 0;
        sb_status st = same_feature(c, i, e, r, &same, err);
        if (st != SB_OK)
            return st;
        if (same)
            *act = ACT_SAME;
    }
    return SB_OK;
}

static sb_status merge_table(merge_ctx *c, size_t i, int t, sb_error *err)
{
    char *sql = sbi_asprintf("SELECT %s FROM %s", tables[t].cols, tables[t].name);
    sqlite3_stmt *r = NULL;
    sb_status st = sql ? src_query(c, i, sql, &r, err) : nomem(err);
    free(sql);
    int rc = SQLITE_DONE;
    while (st == SB_OK && (rc = sqlite3_step(r)) == SQLITE_ROW) {
        if (t == T_RUNS) {
            st = merge_run(c, i, r, err);
            continue;
        }
        int found = get_row(c, t, r), act = ACT_ADD;
        if (found < 0)
            st = sb_error_set(err, SB_ERR_STORE, c->o->into, "cannot read %s: %s", tables[t].name,
                              sqlite3_errmsg(c->dst->db));
        else if (found)
            st = decide(c, i, t, c->get[t], r, &act, err);
        int same_file = found == 1 && t == T_FEATURES && col_eq(c->get[t], 2, r, 2);
        sqlite3_reset(c->get[t]);
        if (st != SB_OK)
            break;
        if (act == ACT_ADD && t == T_FAILURES) {
            /* A failure some merged label answers is not added. */
            sqlite3_reset(c->has_label);
            sqlite3_bind_value(c->has_label, 1, sqlite3_column_value(r, 0));
            sqlite3_bind_value(c->has_label, 2, sqlite3_column_value(r, 1));
            if (sqlite3_step(c->has_label) == SQLITE_ROW)
                act = ACT_SAME;
            sqlite3_reset(c->has_label);
        }
        switch (act) {
        case ACT_ADD:
        case ACT_REPLACE:
            st = put_row(c, t, r, err);
            if (act == ACT_ADD)
                c->cnt[t].added++;
            else
                c->cnt[t].replaced++;
            break;
        case ACT_SAME: c->cnt[t].same++; break;
        default: row_conflict(c, t, r); break;
        }
        /* A feature row needs its chunk file: a new row, or one already there in a file of
         * the same name (which must then hold the same bytes). */
        if (st == SB_OK && t == T_FEATURES && (act == ACT_ADD || same_file))
            st = need_file(c, i, col_text(r, 2), NEED_FEATURE, err);
    }
    if (st == SB_OK && rc != SQLITE_DONE)
        st = sb_error_set(err, SB_ERR_STORE, c->srcs[i].root, "cannot read %s: %s", tables[t].name,
                          sqlite3_errmsg(c->srcs[i].db));
    sqlite3_finalize(r);
    return st;
}

/* ---- shard.json, merge.json --------------------------------------------------------------- */

/* A JSON object from folder/name: *out NULL when the file does not exist. */
static sb_status read_json(const char *folder, const char *name, json_t **out, sb_error *err)
{
    *out = NULL;
    char *path = sbi_path_join(folder, name);
    if (!path)
        return nomem(err);
    sb_status st = SB_OK;
    if (sbi_is_file(path)) {
        json_error_t je;
        *out = json_load_file(path, 0, &je);
        if (!*out || !json_is_object(*out)) {
            st = sb_error_set(err, SB_ERR_FORMAT, path, "not a JSON object%s%s", *out ? "" : ": ",
                              *out ? "" : je.text);
            json_decref(*out);
            *out = NULL;
        }
    }
    free(path);
    return st;
}

static int id_in(json_t *ids, const char *id)
{
    size_t k;
    json_t *v;
    json_array_foreach(ids, k, v)
    {
        if (id && sbi_streq(json_string_value(v), id))
            return 1;
    }
    return 0;
}

/* The sources' shard.json: complete (unless partial), one config_id (unless allow_mixed),
 * the same as the destination's shard.json and last merge.json. */
static sb_status check_shards(merge_ctx *c, sb_error *err)
{
    const sbi_merge_opts *o = c->o;
    const char *first_id = NULL, *first_src = NULL;
    sb_status st = SB_OK;
    for (size_t i = 0; st == SB_OK && i < o->n_srcs; i++) {
        json_t *sh = NULL;
        st = read_json(o->srcs[i], "shard.json", &sh, err);
        if (st != SB_OK || !sh)
            continue;
        if (!json_is_true(json_object_get(sh, "complete")) && !o->partial)
            st = sb_error_set(err, SB_ERR_INVALID, o->srcs[i],
                              "incomplete shard (its shard.json says complete: false: the %s "
                              "shard %lld/%lld did not finish); rerun it (serbench slurm "
                              "--resubmit-failed) or pass --partial to merge what it holds",
                              json_string_value(json_object_get(sh, "kind"))
                                  ? json_string_value(json_object_get(sh, "kind"))
                                  : "?",
                              (long long)json_integer_value(json_object_get(sh, "index")),
                              (long long)json_integer_value(json_object_get(sh, "count")));
        const char *id = json_string_value(json_object_get(sh, "config_id"));
        if (st == SB_OK && id) {
            if (!id_in(c->config_ids, id))
                json_array_append_new(c->config_ids, json_string(id));
            if (!first_id) {
                first_id = json_string_value(json_array_get(c->config_ids, 0));
                first_src = o->srcs[i];
            } else if (strcmp(first_id, id) && !o->allow_mixed) {
                st = sb_error_set(err, SB_ERR_CONFIG, o->srcs[i],
                                  "shard of another config: config_id %s, but %s has %s; merge "
                                  "the shards of one config, or pass --allow-mixed",
                                  id, first_src, first_id);
            }
        }
        json_decref(sh);
    }
    if (json_array_size(c->config_ids) == 1)
        c->config_id = json_string_value(json_array_get(c->config_ids, 0));
    /* What the destination holds: every config_id it has ever merged (merge.json's
     * config_ids, and config_id of a merge.json written before there was a list) and its own
     * shard.json's. The destination keeps them all (held_ids), so a merge of unsharded
     * stores or an --allow-mixed merge cannot make it forget a config. */
    static const char *const dst_files[] = { "shard.json", "merge.json" };
    const char *held_in = NULL;
    for (size_t k = 0; st == SB_OK && k < 2; k++) {
        json_t *j = NULL;
        st = read_json(o->into, dst_files[k], &j, err);
        json_t *list = json_array(), *v;
        size_t n;
        if (!list) {
            json_decref(j);
            return nomem(err);
        }
        if (json_string_value(json_object_get(j, "config_id")))
            json_array_append(list, json_object_get(j, "config_id"));
        json_array_foreach(json_object_get(j, "config_ids"), n, v)
        {
            if (json_is_string(v))
                json_array_append(list, v);
        }
        json_array_foreach(list, n, v)
        {
            if (!id_in(c->held_ids, json_string_value(v))) {
                json_array_append(c->held_ids, v);
                held_in = dst_files[k];
            }
        }
        json_decref(list);
        json_decref(j);
    }
    if (st != SB_OK || o->allow_mixed || json_array_size(c->config_ids) == 0)
        return st;
    /* Without --allow-mixed, the destination and the sources together hold one config. */
    size_t n;
    json_t *v;
    int other = json_array_size(c->held_ids) > 1;
    json_array_foreach(c->config_ids, n, v)
    {
        other |= json_array_size(c->held_ids) && !id_in(c->held_ids, json_string_value(v));
    }
    if (other) {
        char *held = json_dumps(c->held_ids, JSON_COMPACT);
        st = sb_error_set(err, SB_ERR_CONFIG, o->into,
                          "the destination holds config_id%s %s (its %s%s), the sources %s; "
                          "merge into another folder, or pass --allow-mixed",
                          json_array_size(c->held_ids) > 1 ? "s" : "", held ? held : "?",
                          held_in ? held_in : "merge.json",
                          json_array_size(c->held_ids) > 1 ? ", merged with --allow-mixed" : "",
                          c->config_id ? c->config_id : "several");
        free(held);
    }
    return st;
}

/* The text of DST/merge.json after this merge: every config_id the destination now holds
 * (config_id when that is one, else null) and the sources of this merge; NULL when out of
 * memory. */
static char *merge_json_text(merge_ctx *c)
{
    json_t *ids = json_copy(c->held_ids), *v;
    size_t n;
    json_array_foreach(c->config_ids, n, v)
    {
        if (ids && !id_in(ids, json_string_value(v)))
            json_array_append(ids, v);
    }
    json_t *srcs = json_array();
    for (size_t i = 0; srcs && i < c->n_srcs; i++)
        json_array_append_new(srcs, json_string(c->srcs[i].real));
    json_t *m = ids && srcs ? json_pack("{s:s?, s:O, s:O, s:s, s:i}", "config_id",
                                        json_array_size(ids) == 1
                                            ? json_string_value(json_array_get(ids, 0))
                                            : NULL,
                                        "config_ids", ids, "sources", srcs, "serbench",
                                        sb_version(), "schema", SBI_SCHEMA_VERSION)
                            : NULL;
    char *text = m ? json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    char *line = text ? sbi_asprintf("%s\n", text) : NULL;
    json_decref(ids);
    json_decref(srcs);
    json_decref(m);
    free(text);
    return line;
}

/* Before the commit: DST/merge.json's new text in a temporary file (c->merge_json_tmp), or
 * nothing when it is unchanged (merging again leaves the folder as it was). A failure here
 * leaves the merge uncommitted. */
static sb_status stage_merge_json(merge_ctx *c, sb_error *err)
{
    char *text = merge_json_text(c);
    char *path = sbi_path_join(c->o->into, "merge.json");
    sb_status st = text && path ? SB_OK : nomem(err);
    char *old = NULL;
    size_t len = 0;
    if (st == SB_OK && sbi_is_file(path) && sbi_read_file(path, &old, &len, NULL) == SB_OK &&
        len == strlen(text) && !memcmp(old, text, len)) {
        /* unchanged */
    } else if (st == SB_OK) {
        c->merge_json_tmp = sbi_asprintf("%s.merge-%ld.tmp", path, (long)getpid());
        st = c->merge_json_tmp ? sbi_write_file_atomic(c->merge_json_tmp, text, strlen(text), err)
                               : nomem(err);
    }
    free(old);
    free(text);
    free(path);
    return st;
}

/* After the commit: rename the staged merge.json into place. The rows are in, so a failure
 * is a warning saying what to do, not an error. */
static void place_merge_json(merge_ctx *c)
{
    if (!c->merge_json_tmp)
        return;
    char *path = sbi_path_join(c->o->into, "merge.json");
    if (!path || rename(c->merge_json_tmp, path) != 0) {
        json_array_append_new(c->warnings,
                              json_sprintf("%s/merge.json: cannot write (%s); the rows and files "
                                           "were merged, but the destination does not record "
                                           "this merge's config_ids: fix the cause and rerun the "
                                           "same merge (it adds nothing and writes merge.json)",
                                           c->o->into, path ? strerror(errno) : "out of memory"));
        unlink(c->merge_json_tmp);
    }
    free(path);
    free(c->merge_json_tmp);
    c->merge_json_tmp = NULL;
}

/* ---- stores ------------------------------------------------------------------------------- */

static int schema_version(sqlite3 *db)
{
    sqlite3_stmt *q = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* Open root/serbench.db read-only (immutable when no write-ahead log is pending: nothing
 * else is writing it and no lock or -shm file is needed) and check its schema version. */
static sb_status open_ro(const char *root, sqlite3 **db, char **real, sb_error *err)
{
    *db = NULL;
    char *path = sbi_path_join(root, "serbench.db");
    char *abs = path ? realpath(path, NULL) : NULL;
    if (!path) {
        return nomem(err);
    } else if (!abs || !sbi_is_file(abs)) {
        sb_status st =
            sb_error_set(err, SB_ERR_IO, root, "no results store here (no serbench.db): %s",
                         abs ? "not a file" : strerror(errno));
        free(path);
        free(abs);
        return st;
    }
    char *wal = sbi_asprintf("%s-wal", abs);
    off_t wsize = 0;
    int quiet = wal && (file_size(wal, &wsize) != 0 || wsize == 0);
    char *uri = file_uri(abs, quiet ? "immutable=1" : "mode=ro");
    sb_status st = uri && wal ? SB_OK : nomem(err);
    if (st == SB_OK &&
        sqlite3_open_v2(uri, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK)
        st = sb_error_set(err, SB_ERR_STORE, path, "cannot open read-only: %s",
                          *db ? sqlite3_errmsg(*db) : "out of memory");
    if (st == SB_OK) {
        sqlite3_busy_timeout(*db, 60000);
        /* One read transaction: every table is read from the same snapshot. */
        if (sqlite3_exec(*db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
            st = sb_error_set(err, SB_ERR_STORE, path, "cannot read: %s", sqlite3_errmsg(*db));
    }
    if (st == SB_OK) {
        int v = schema_version(*db);
        if (v < 0)
            st = sb_error_set(err, SB_ERR_SCHEMA, path, "not a readable SQLite database (%s)",
                              sqlite3_errmsg(*db));
        else if (v != SBI_SCHEMA_VERSION)
            st = sb_error_set(err, SB_ERR_SCHEMA, path,
                              "store of schema version %d; this serbench (%s) merges stores of "
                              "schema version %d only. %s",
                              v, sb_version(), SBI_SCHEMA_VERSION,
                              v < SBI_SCHEMA_VERSION
                                  ? "Any serbench command of this version on it (e.g. 'serbench "
                                    "report CONFIG --results DIR') migrates it"
                                  : "Merge with the newer serbench that wrote it");
    }
    if (st != SB_OK) {
        sqlite3_close(*db);
        *db = NULL;
    }
    if (real && st == SB_OK) {
        *real = realpath(root, NULL);
        if (!*real)
            st = nomem(err);
    }
    free(uri);
    free(wal);
    free(path);
    free(abs);
    return st;
}

static sb_status open_sources(merge_ctx *c, sb_error *err)
{
    c->srcs = calloc(c->o->n_srcs, sizeof *c->srcs);
    if (!c->srcs)
        return nomem(err);
    sb_status st = SB_OK;
    for (size_t i = 0; st == SB_OK && i < c->o->n_srcs; i++) {
        src_store *s = &c->srcs[i];
        s->root = sbi_strdup(c->o->srcs[i]);
        c->n_srcs++;
        st = s->root ? open_ro(s->root, &s->db, &s->real, err) : nomem(err);
        if (st == SB_OK && c->into_real && !strcmp(s->real, c->into_real))
            st = sb_error_set(err, SB_ERR_USAGE, s->root,
                              "this source is the destination (--into) itself");
    }
    return st;
}

/* mkdir -p dir, remembering each folder it creates (in c->made, parents first). */
static sb_status make_dirs(merge_ctx *c, const char *dir, sb_error *err)
{
    if (sbi_is_dir(dir))
        return SB_OK;
    char *parent = sbi_path_dirname(dir);
    sb_status st = parent ? SB_OK : nomem(err);
    if (st == SB_OK && strcmp(parent, dir) && strcmp(parent, ".") && strcmp(parent, "/"))
        st = make_dirs(c, parent, err);
    free(parent);
    char **nm = st == SB_OK ? realloc(c->made, (c->n_made + 1) * sizeof *nm) : NULL;
    if (st == SB_OK && !nm)
        st = nomem(err);
    if (st == SB_OK) {
        c->made = nm;
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            st = sb_error_set(err, SB_ERR_IO, dir, "cannot create folder: %s", strerror(errno));
        else if (!(c->made[c->n_made] = sbi_strdup(dir)))
            st = nomem(err);
        else
            c->n_made++;
    }
    return st;
}

/* Open the destination and begin its transaction (taking its write lock), and prepare
 * statements. Without a database there, the merge works in a store of its own in a
 * temporary folder (in DST, or for a dry run in TMPDIR) that the commit links into place. */
static sb_status open_dst(merge_ctx *c, sb_error *err)
{
    const char *into = c->o->into;
    char *db = sbi_path_join(into, "serbench.db");
    char *feat = sbi_path_join(into, "features");
    sb_status st = db && feat ? SB_OK : nomem(err);
    if (st == SB_OK && sbi_is_file(db)) {
        st = open_ro(into, &c->snap, NULL, err); /* the schema check, and naming conflicts */
        if (st == SB_OK)
            st = make_dirs(c, feat, err);
        if (st == SB_OK)
            st = sbi_store_open(into, &c->dst, err);
    } else if (st == SB_OK) {
        const char *tmpdir = getenv("TMPDIR");
        char *tmpl = c->o->dry_run ? sbi_asprintf("%s/serbench-merge-XXXXXX",
                                                  tmpdir && *tmpdir ? tmpdir : "/tmp")
                                   : sbi_path_join(into, ".merge-XXXXXX");
        st = tmpl ? SB_OK : nomem(err);
        if (st == SB_OK && !c->o->dry_run)
            st = make_dirs(c, into, err);
        if (st == SB_OK && !mkdtemp(tmpl))
            st = sb_error_set(err, SB_ERR_IO, tmpl, "cannot create a temporary folder: %s",
                              strerror(errno));
        if (st == SB_OK) {
            c->work_root = tmpl;
            tmpl = NULL;
            st = sbi_store_open(c->work_root, &c->dst, err);
        }
        free(tmpl);
    }
    free(db);
    free(feat);
    if (st == SB_OK)
        st = sbi_store_begin(c->dst, err);
    if (st == SB_OK)
        st = sbi_store_exec(c->dst,
                            "CREATE TEMP TABLE merge_plan(rel TEXT PRIMARY KEY, src INTEGER);"
                            "CREATE TEMP TABLE merge_seen(src INTEGER, rel TEXT,"
                            " PRIMARY KEY(src, rel));",
                            err);
    for (int t = 0; st == SB_OK && t < N_TABLES; t++) {
        sbi_buf g = { 0 }, p = { 0 };
        sbi_buf_printf(&g, "SELECT %s FROM main.%s WHERE ", tables[t].cols, tables[t].name);
        sbi_buf_printf(&p, "INSERT OR REPLACE INTO main.%s(%s) VALUES(", tables[t].name,
                       tables[t].cols);
        const char *q = tables[t].cols;
        for (int k = 0; k < tables[t].n_cols; k++) {
            const char *e = strchr(q, ',');
            size_t n = e ? (size_t)(e - q) : strlen(q);
            if (k < tables[t].n_key)
                sbi_buf_printf(&g, "%s%.*s=?%d", k ? " AND " : "", (int)n, q, k + 1);
            sbi_buf_printf(&p, "%s?%d", k ? ", " : "", k + 1);
            q = e ? e + 2 : q + n;
        }
        sbi_buf_puts(&p, ")");
        st = g.s && p.s ? sbi_store_prepare(c->dst, g.s, &c->get[t], err) : nomem(err);
        if (st == SB_OK)
            st = sbi_store_prepare(c->dst, p.s, &c->put[t], err);
        sbi_buf_free(&g);
        sbi_buf_free(&p);
    }
    if (st == SB_OK)
        st = sbi_store_prepare(c->dst, "SELECT src FROM temp.merge_plan WHERE rel=?1", &c->plan_get,
                               err);
    if (st == SB_OK)
        st = sbi_store_prepare(c->dst, "INSERT INTO temp.merge_plan VALUES(?1, ?2)", &c->plan_put,
                               err);
    if (st == SB_OK)
        st = sbi_store_prepare(c->dst, "INSERT OR IGNORE INTO temp.merge_seen VALUES(?1, ?2)",
                               &c->seen_put, err);
    if (st == SB_OK)
        st = sbi_store_prepare(c->dst, "SELECT 1 FROM main.labels WHERE stage_key=?1 AND utt_id=?2",
                               &c->has_label, err);
    return st;
}

/* Copy (or hard-link) every planned file to a temporary name beside its final one. */
static sb_status stage_files(merge_ctx *c, sb_error *err)
{
    sqlite3_stmt *q = NULL;
    sb_status st =
        sbi_store_prepare(c->dst, "SELECT rel, src FROM temp.merge_plan ORDER BY rel", &q, err);
    while (st == SB_OK && sqlite3_step(q) == SQLITE_ROW) {
        planned_file *np = realloc(c->plan, (c->n_plan + 1) * sizeof *np);
        char **nt = realloc(c->tmps, (c->n_plan + 1) * sizeof *nt);
        if (np)
            c->plan = np;
        if (nt)
            c->tmps = nt;
        if (!np || !nt) {
            st = nomem(err);
            break;
        }
        planned_file *f = &c->plan[c->n_plan];
        *f = (planned_file){ .rel = sbi_strdup(col_text(q, 0)),
                             .src = (size_t)sqlite3_column_int64(q, 1) };
        c->n_plan++;
        st = f->rel ? SB_OK : nomem(err);
    }
    sqlite3_finalize(q);
    for (size_t k = 0; st == SB_OK && k < c->n_plan; k++) {
        char *from = sbi_path_join(c->srcs[c->plan[k].src].root, c->plan[k].rel);
        char *to = sbi_path_join(c->o->into, c->plan[k].rel);
        char *dir = to ? sbi_path_dirname(to) : NULL;
        char *tmp = to ? sbi_asprintf("%s.merge-%ld.tmp", to, (long)getpid()) : NULL;
        st = from && to && dir && tmp ? make_dirs(c, dir, err) : nomem(err);
        if (st == SB_OK) {
            c->tmps[c->n_tmps++] = tmp;
            tmp = NULL;
            const char *t = c->tmps[c->n_tmps - 1];
            unlink(t);
            if (link(from, t) == 0) {
                c->files_linked++;
            } else {
                /* Another file system (EXDEV) or no hard links there: copy and fsync. */
                int in = open(from, O_RDONLY | O_CLOEXEC);
                int out = in >= 0 ? open(t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644) : -1;
                char buf[1 << 16];
                ssize_t n = 0;
                while (out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
                    if (sbi_write_all(out, buf, (size_t)n) != 0) {
                        n = -1;
                        break;
                    }
                if (in < 0 || out < 0 || n < 0 || fsync(out) != 0)
                    st = sb_error_set(err, SB_ERR_IO, to, "cannot copy from %s: %s", from,
                                      strerror(errno));
                if (in >= 0)
                    close(in);
                if (out >= 0 && close(out) != 0 && st == SB_OK)
                    st = sb_error_set(err, SB_ERR_IO, to, "cannot write: %s", strerror(errno));
                c->files_copied += st == SB_OK;
            }
        }
        free(from);
        free(to);
        free(dir);
        free(tmp);
    }
    return st;
}

/* Put the staged file k in place: linked to its final name when none is there (never
 * replacing a file another writer put there meanwhile: the same bytes are then already
 * there); a checkpoint with other bytes there (a replaced run's) is replaced, the old one kept
 * under another name until the commit. */
static sb_status place_file(merge_ctx *c, size_t k, sb_error *err)
{
    planned_file *f = &c->plan[k];
    const char *tmp = c->tmps[k];
    char *to = sbi_path_join(c->o->into, f->rel);
    if (!to)
        return nomem(err);
    struct stat st_tmp;
    sb_status st = SB_OK;
    int e = stat(tmp, &st_tmp) == 0 && link(tmp, to) == 0 ? 0 : errno;
    if (e && e != EEXIST && !sbi_is_file(to) && !sbi_is_dir(to)) {
        /* no hard links on this file system */
        e = rename(tmp, to) == 0 ? 0 : errno;
        if (!e) {
            free(c->tmps[k]);
            c->tmps[k] = NULL;
        }
    }
    if (!e) {
        f->placed = PLACED_NEW;
        f->dev = st_tmp.st_dev;
        f->ino = st_tmp.st_ino;
    } else if (e == EEXIST || sbi_is_file(to)) {
        int eq = files_equal(to, tmp);
        if (eq == 1) {
            /* already there */
        } else if (eq == 0 && !strncmp(f->rel, "checkpoints/", 12)) {
            f->old = sbi_asprintf("%s.merge-%ld.old", to, (long)getpid());
            if (!f->old) {
                st = nomem(err);
            } else {
                unlink(f->old);
                if (link(to, f->old) != 0 || rename(tmp, to) != 0) {
                    st = sb_error_set(err, SB_ERR_IO, to, "cannot replace it with %s: %s", tmp,
                                      strerror(errno));
                    unlink(f->old);
                    free(f->old);
                    f->old = NULL;
                } else {
                    f->placed = PLACED_OVER;
                    f->dev = st_tmp.st_dev;
                    f->ino = st_tmp.st_ino;
                    free(c->tmps[k]);
                    c->tmps[k] = NULL;
                }
            }
        } else {
            st = sb_error_set(err, SB_ERR_IO, to,
                              eq == 0 ? "another writer put this file here during the merge, "
                                        "with other bytes than %s; rerun the merge"
                                      : "cannot compare with %s: %s",
                              tmp, strerror(errno));
        }
    } else {
        st = sb_error_set(err, SB_ERR_IO, to, "cannot put %s into place: %s", tmp, strerror(e));
    }
    free(to);
    return st;
}

/* Put every staged file into place; on a failure, undo the ones placed before it. */
static void unplace_files(merge_ctx *c);
static sb_status place_files(merge_ctx *c, sb_error *err)
{
    sb_status st = SB_OK;
    for (size_t k = 0; st == SB_OK && k < c->n_plan; k++)
        st = place_file(c, k, err);
    if (st != SB_OK)
        unplace_files(c);
    return st;
}

/* Undo place_files: remove each file the merge made (if it is still the merge's) and put
 * each replaced checkpoint back. */
static void unplace_files(merge_ctx *c)
{
    for (size_t k = c->n_plan; k-- > 0;) {
        planned_file *f = &c->plan[k];
        char *to = f->placed ? sbi_path_join(c->o->into, f->rel) : NULL;
        struct stat st;
        int ours = to && stat(to, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino;
        if (f->placed == PLACED_NEW && ours)
            unlink(to);
        else if (f->placed == PLACED_OVER && ours && f->old)
            rename(f->old, to);
        f->placed = PLACED_NONE;
        free(to);
    }
}

/* After the commit: drop the temporary names (staged copies, replaced checkpoints). */
static void files_committed(merge_ctx *c)
{
    for (size_t k = 0; k < c->n_plan; k++) {
        if (c->tmps[k])
            unlink(c->tmps[k]);
        if (c->plan[k].old)
            unlink(c->plan[k].old);
        c->plan[k].placed = PLACED_NONE;
    }
}

static json_t *build_report(merge_ctx *c, int written)
{
    json_t *srcs = json_array(), *tabs = json_object();
    for (size_t i = 0; i < c->o->n_srcs; i++)
        json_array_append_new(srcs, json_string(c->o->srcs[i]));
    for (int t = 0; t < N_TABLES; t++)
        json_object_set_new(tabs, tables[t].name,
                            json_pack("{s:I, s:I, s:I, s:I}", "added", (json_int_t)c->cnt[t].added,
                                      "replaced", (json_int_t)c->cnt[t].replaced, "already_there",
                                      (json_int_t)c->cnt[t].same, "conflicts",
                                      (json_int_t)c->cnt[t].conflicts));
    return json_pack("{s:s, s:o, s:s?, s:b, s:b, s:o, s:{s:I, s:I, s:I}, s:O, s:I, s:O}", "into",
                     c->o->into, "sources", srcs, "config_id", c->config_id, "dry_run",
                     c->o->dry_run, "written", written, "tables", tabs, "files", "copied",
                     (json_int_t)c->files_copied, "linked", (json_int_t)c->files_linked,
                     "already_there", (json_int_t)c->files_same, "conflicts", c->conflicts,
                     "n_conflicts", (json_int_t)c->n_conflicts, "warnings", c->warnings);
}

/* Remove the merge's own store (work_root: nobody else knows that folder). */
static void remove_work_root(merge_ctx *c)
{
    if (!c->work_root)
        return;
    static const char *const names[] = { "serbench.db", "serbench.db-wal", "serbench.db-shm",
                                         "serbench.db-journal" };
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char *p = sbi_path_join(c->work_root, names[k]);
        if (p)
            unlink(p);
        free(p);
    }
    char *feat = sbi_path_join(c->work_root, "features");
    if (feat)
        rmdir(feat);
    free(feat);
    rmdir(c->work_root);
    free(c->work_root);
    c->work_root = NULL;
}

/* Remove what a merge that does not commit made in the destination: the files it put in
 * place (putting replaced checkpoints back), its temporary files, the folders it created
 * (only when empty). An existing database is never touched: its transaction is rolled back. */
static void undo_created(merge_ctx *c)
{
    unplace_files(c);
    for (size_t k = 0; k < c->n_tmps; k++)
        if (c->tmps[k])
            unlink(c->tmps[k]);
    for (size_t k = 0; k < c->n_plan; k++)
        if (c->plan[k].old)
            unlink(c->plan[k].old);
    if (c->merge_json_tmp)
        unlink(c->merge_json_tmp);
    remove_work_root(c);
    for (size_t k = c->n_made; k-- > 0;)
        rmdir(c->made[k]); /* only when empty */
}

static void finalize_stmts(merge_ctx *c)
{
    for (int t = 0; t < N_TABLES; t++) {
        sqlite3_finalize(c->get[t]);
        sqlite3_finalize(c->put[t]);
        c->get[t] = c->put[t] = NULL;
    }
    sqlite3_finalize(c->plan_get);
    sqlite3_finalize(c->plan_put);
    sqlite3_finalize(c->seen_put);
    sqlite3_finalize(c->has_label);
    c->plan_get = c->plan_put = c->seen_put = c->has_label = NULL;
}

/* The commit of a merge into a folder without a database: the merge's own store, closed
 * (its log checkpointed into the file), linked to DST/serbench.db, which fails if another
 * writer created one meanwhile (*raced: merge again, into that one). */
static sb_status publish_work_db(merge_ctx *c, int *raced, sb_error *err)
{
    char *from = sbi_path_join(c->work_root, "serbench.db");
    char *wal = sbi_path_join(c->work_root, "serbench.db-wal");
    char *to = sbi_path_join(c->o->into, "serbench.db");
    sb_status st = from && wal && to ? SB_OK : nomem(err);
    off_t wsize = 0;
    if (st == SB_OK)
        st = sbi_store_exec(c->dst, "PRAGMA wal_checkpoint(TRUNCATE)", err);
    finalize_stmts(c); /* else the close fails (SQLITE_BUSY) and the connection stays open */
    sbi_store_close(&c->dst);
    if (st == SB_OK && file_size(wal, &wsize) == 0 && wsize > 0)
        st = sb_error_set(err, SB_ERR_STORE, from, "cannot checkpoint the merged store's log");
    if (st == SB_OK && link(from, to) != 0) {
        if (errno == EEXIST)
            *raced = 1;
        st = sb_error_set(err, SB_ERR_IO, to, "cannot create: %s", strerror(errno));
    }
    free(from);
    free(wal);
    free(to);
    return st;
}

/* One attempt; *raced when the destination's database appeared while it ran. */
static sb_status merge_once(const sbi_merge_opts *o, json_t **report, int *raced, sb_error *err)
{
    merge_ctx c = { .o = o };
    c.conflicts = json_array();
    c.warnings = json_array();
    c.config_ids = json_array();
    c.held_ids = json_array();
    c.into_real = realpath(o->into, NULL);
    sb_status st = c.conflicts && c.warnings && c.config_ids && c.held_ids ? SB_OK : nomem(err);
    if (st == SB_OK)
        st = check_shards(&c, err);
    if (st == SB_OK)
        st = open_sources(&c, err);
    int opened = 0;
    if (st == SB_OK) {
        st = open_dst(&c, err);
        opened = 1;
    }
    /* Per source, the tables in order (parents first), each against the destination as the
     * earlier sources left it. */
    for (size_t i = 0; st == SB_OK && i < c.n_srcs; i++)
        for (int t = 0; st == SB_OK && t < N_TABLES; t++)
            if (t != T_METRICS && t != T_PREDICTIONS) /* merged with their run */
                st = merge_table(&c, i, t, err);
    if (c.n_cache_diff)
        json_array_append_new(c.warnings,
                              json_sprintf("plugin_cache: another store holds a different "
                                           "value for %zu key%s (first: %s); the value already "
                                           "there is kept (a cache entry is one valid answer "
                                           "for its key)",
                                           c.n_cache_diff, c.n_cache_diff == 1 ? "" : "s",
                                           c.cache_diff_example ? c.cache_diff_example : "?"));
    if (st == SB_OK) {
        /* Failures of the destination answered by a merged label. */
        st = sbi_store_exec(c.dst,
                            "DELETE FROM main.item_failures WHERE EXISTS(SELECT 1 FROM main.labels"
                            " l WHERE l.stage_key=item_failures.stage_key AND"
                            " l.utt_id=item_failures.utt_id)",
                            err);
        if (st == SB_OK)
            c.cnt[T_FAILURES].replaced += (size_t)sqlite3_changes(c.dst->db);
    }
    size_t n_conf = c.n_conflicts;
    if (st == SB_OK && n_conf)
        st = sb_error_set(err, SB_ERR_STORE, o->into,
                          "%zu conflict%s: the same key with different content (listed above); "
                          "nothing was written",
                          n_conf, n_conf == 1 ? "" : "s");
    int written = 0;
    if (st == SB_OK && !o->dry_run) {
        /* Files first (a committed row never names a missing file), merge.json staged, then
         * the commit; after it nothing can fail the merge. */
        st = stage_files(&c, err);
        if (st == SB_OK)
            st = place_files(&c, err);
        if (st == SB_OK)
            st = stage_merge_json(&c, err);
        if (st == SB_OK)
            st = sbi_store_commit(c.dst, err);
        if (st == SB_OK && c.work_root)
            st = publish_work_db(&c, raced, err);
        written = st == SB_OK;
        if (written || *raced) /* the placed files may be in use: keep them */
            files_committed(&c);
        if (written)
            place_merge_json(&c);
    } else if (st == SB_OK) {
        /* dry run: count the files a real merge would copy */
        sqlite3_stmt *q = NULL;
        if (sbi_store_prepare(c.dst, "SELECT count(*) FROM temp.merge_plan", &q, NULL) == SB_OK &&
            sqlite3_step(q) == SQLITE_ROW)
            c.files_copied = (size_t)sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    if (c.dst)
        sbi_store_rollback(c.dst);
    finalize_stmts(&c);
    if (c.snap) /* before the destination, whose close then checkpoints its log */
        sqlite3_close(c.snap);
    c.snap = NULL;
    sbi_store_close(&c.dst);
    if (opened && !written)
        undo_created(&c);
    remove_work_root(&c);
    *report = build_report(&c, written);
    for (size_t k = 0; k < N_OPEN; k++) {
        free(c.open[k].path);
        sb_st_close(&c.open[k].f);
    }
    for (size_t k = 0; k < c.n_plan; k++) {
        free(c.plan[k].rel);
        free(c.plan[k].old);
    }
    for (size_t k = 0; k < c.n_tmps; k++)
        free(c.tmps[k]);
    free(c.plan);
    free(c.tmps);
    for (size_t i = 0; i < c.n_srcs; i++) {
        sqlite3_close(c.srcs[i].db);
        free(c.srcs[i].root);
        free(c.srcs[i].real);
    }
    free(c.srcs);
    free(c.into_real);
    free(c.cache_diff_example);
    json_decref(c.conflicts);
    json_decref(c.warnings);
    json_decref(c.config_ids);
    json_decref(c.held_ids);
    for (size_t k = 0; k < c.n_made; k++)
        free(c.made[k]);
    free(c.made);
    free(c.merge_json_tmp);
    return st;
}

sb_status sbi_merge(const sbi_merge_opts *o, json_t **report, sb_error *err)
{
    *report = NULL;
    if (!o->into || !*o->into)
        return sb_error_set(err, SB_ERR_USAGE, NULL, "merge needs a destination (--into DIR)");
    if (o->n_srcs == 0)
        return sb_error_set(err, SB_ERR_USAGE, NULL,
                            "merge needs at least one source results folder");
    /* A database that appeared in the destination while a merge into a folder without one
     * ran (another merge or run created it) is merged into, under its lock, by a new attempt. */
    sb_status st = SB_OK;
    for (int attempt = 0; attempt < 3; attempt++) {
        int raced = 0;
        json_decref(*report);
        *report = NULL;
        if (attempt && err)
            sb_error_clear(err);
        st = merge_once(o, report, &raced, err);
        if (!raced)
            break;
    }
    return st;
}
