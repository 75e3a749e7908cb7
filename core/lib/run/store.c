/* core/lib/run/store.c — the SQLite results store: opening, schema migrations,
 * transactions, the stat-keyed file-hash cache, and shard stores started from a base
 * store (store.h). */
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Migration i brings the schema from version i to i+1. Append only; never edit. */
static const char *const migrations[] = {
    /* 0 → 1 */
    "CREATE TABLE runs(run_id TEXT PRIMARY KEY, group_id TEXT NOT NULL, seed INTEGER,"
    " config TEXT NOT NULL, status TEXT NOT NULL, error TEXT, created TEXT, started TEXT,"
    " finished TEXT, seconds REAL, inputs_key TEXT, provenance TEXT);"
    "CREATE INDEX runs_group ON runs(group_id);"
    "CREATE TABLE metrics(run_id TEXT NOT NULL, test TEXT NOT NULL, metric TEXT NOT NULL,"
    " value REAL, n INTEGER, PRIMARY KEY(run_id, test, metric));"
    "CREATE TABLE predictions(run_id TEXT NOT NULL, test TEXT NOT NULL, utt_id TEXT NOT NULL,"
    " gold INTEGER, pred INTEGER, probs TEXT, PRIMARY KEY(run_id, test, utt_id));"
    "CREATE TABLE stages(key TEXT PRIMARY KEY, kind TEXT NOT NULL, description TEXT,"
    " status TEXT NOT NULL, created TEXT, finished TEXT, info TEXT);"
    "CREATE TABLE labels(stage_key TEXT NOT NULL, utt_id TEXT NOT NULL, label INTEGER,"
    " label_name TEXT, confidence REAL, raw TEXT, PRIMARY KEY(stage_key, utt_id));"
    "CREATE TABLE item_failures(stage_key TEXT NOT NULL, utt_id TEXT NOT NULL, reason TEXT,"
    " PRIMARY KEY(stage_key, utt_id));"
    "CREATE TABLE features(enc_key TEXT NOT NULL, item_key TEXT NOT NULL, file TEXT NOT NULL,"
    " tensor TEXT NOT NULL, PRIMARY KEY(enc_key, item_key));"
    "CREATE TABLE file_hashes(path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
    " inode INTEGER, hash TEXT NOT NULL);",
    /* 1 → 2: label status, distribution and provenance (ABI 1.1 sb_label_deliver); the
     * plugins' key-value cache (sb_host.cache_get/cache_put). */
    "ALTER TABLE labels ADD COLUMN status TEXT NOT NULL DEFAULT 'ok';"
    "ALTER TABLE labels ADD COLUMN reason TEXT;"
    "ALTER TABLE labels ADD COLUMN dist TEXT;"
    "ALTER TABLE labels ADD COLUMN detail TEXT;"
    "CREATE TABLE plugin_cache(plugin TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
    " created TEXT, PRIMARY KEY(plugin, key));",
};
#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])
_Static_assert(N_MIGRATIONS == SBI_SCHEMA_VERSION, "one migration per schema version");

static sb_status sqlerr(sbi_store *s, sb_error *err, const char *what)
{
    return sb_error_set(err, SB_ERR_STORE, s->db_path, "%s: %s", what,
                        s->db ? sqlite3_errmsg(s->db) : "no database");
}

sb_status sbi_store_exec(sbi_store *s, const char *sql, sb_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        sb_status st =
            sb_error_set(err, SB_ERR_STORE, s->db_path, "%s", msg ? msg : "SQLite error");
        sqlite3_free(msg);
        return st;
    }
    return SB_OK;
}

sb_status sbi_store_prepare(sbi_store *s, const char *sql, sqlite3_stmt **st, sb_error *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return sqlerr(s, err, "cannot prepare statement");
    return SB_OK;
}

sb_status sbi_store_step_done(sbi_store *s, sqlite3_stmt *st, sb_error *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sqlerr(s, err, "write failed");
    return SB_OK;
}

sb_status sbi_store_begin(sbi_store *s, sb_error *err)
{
    return sbi_store_exec(s, "BEGIN IMMEDIATE", err);
}

sb_status sbi_store_commit(sbi_store *s, sb_error *err)
{
    return sbi_store_exec(s, "COMMIT", err);
}

void sbi_store_rollback(sbi_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int user_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static sb_status migrate(sbi_store *s, sb_error *err)
{
    int v = user_version(s->db);
    if (v < 0)
        return sb_error_set(err, SB_ERR_SCHEMA, s->db_path,
                            "not a readable SQLite database (%s); move it away or choose another "
                            "--results folder",
                            sqlite3_errmsg(s->db));
    if (v > SBI_SCHEMA_VERSION)
        return sb_error_set(err, SB_ERR_SCHEMA, s->db_path,
                            "results database has schema version %d, newer than this serbench "
                            "(%s) understands (%d); use a newer serbench or another --results "
                            "folder",
                            v, sb_version(), SBI_SCHEMA_VERSION);
    for (int i = v; i < SBI_SCHEMA_VERSION; i++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", i + 1);
        sb_status st = sbi_store_begin(s, err);
        if (st == SB_OK)
            st = sbi_store_exec(s, migrations[i], err);
        if (st == SB_OK)
            st = sbi_store_exec(s, pragma, err);
        if (st == SB_OK)
            st = sbi_store_commit(s, err);
        if (st != SB_OK) {
            sbi_store_rollback(s);
            return st;
        }
    }
    return SB_OK;
}

sb_status sbi_store_open(const char *root, sbi_store **out, sb_error *err)
{
    *out = NULL;
    sb_status st = sbi_mkdir_p(root, err);
    if (st != SB_OK)
        return st;
    char *featdir = sbi_path_join(root, "features");
    st = featdir ? sbi_mkdir_p(featdir, err) : SB_ERR_NOMEM;
    free(featdir);
    if (st != SB_OK)
        return st;
    if (access(root, W_OK) != 0)
        return sb_error_set(err, SB_ERR_IO, root,
                            "results folder is not writable (%s); fix its permissions or pass "
                            "--results DIR",
                            strerror(errno));
    sbi_store *s = calloc(1, sizeof *s);
    if (!s)
        return sb_error_set(err, SB_ERR_NOMEM, root, "out of memory");
    s->root = strdup(root);
    s->db_path = sbi_path_join(root, "serbench.db");
    if (!s->root || !s->db_path) {
        sbi_store_close(&s);
        return sb_error_set(err, SB_ERR_NOMEM, root, "out of memory");
    }
    if (sqlite3_open_v2(s->db_path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        st = sb_error_set(err, SB_ERR_IO, s->db_path, "cannot open results database: %s",
                          s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sbi_store_close(&s);
        return st;
    }
    sqlite3_busy_timeout(s->db, 60000);
    st = sbi_store_exec(s,
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                        " PRAGMA foreign_keys=ON;",
                        err);
    if (st != SB_OK) {
        sb_error e = { 0 };
        sb_error_set(&e, SB_ERR_SCHEMA, s->db_path,
                     "cannot use results database (%s); if it is not a serbench store, move it "
                     "away or pass --results DIR",
                     err ? err->msg : "?");
        if (err)
            *err = e;
        sbi_store_close(&s);
        return SB_ERR_SCHEMA;
    }
    st = migrate(s, err);
    if (st != SB_OK) {
        sbi_store_close(&s);
        return st;
    }
    *out = s;
    return SB_OK;
}

/* root/features as a link to the folder `target` (absolute, resolved): made if absent,
 * replacing an empty folder; accepted if it already resolves to target. */
static sb_status link_features(const char *root, const char *target, sb_error *err)
{
    char *feat = sbi_path_join(root, "features");
    if (!feat)
        return sb_error_set(err, SB_ERR_NOMEM, root, "out of memory");
    sb_status st = SB_OK;
    struct stat lst;
    if (lstat(feat, &lst) == 0) {
        char *real = realpath(feat, NULL);
        if (real && strcmp(real, target) == 0) {
            free(real);
            free(feat);
            return SB_OK;
        }
        free(real);
        if (S_ISDIR(lst.st_mode) && rmdir(feat) == 0) {
            /* an empty folder, e.g. left by an earlier attempt that failed before the copy */
        } else {
            st = sb_error_set(err, SB_ERR_IO, feat,
                              "--base: the results folder has no serbench.db but already has "
                              "a features %s; it must become a link to %s: remove it or choose "
                              "an empty --results folder",
                              S_ISLNK(lst.st_mode) ? "link to another folder" : "folder", target);
            free(feat);
            return st;
        }
    }
    if (symlink(target, feat) != 0)
        st = sb_error_set(err, SB_ERR_IO, feat, "--base: cannot link to %s: %s", target,
                          strerror(errno));
    free(feat);
    return st;
}

/* Copy database `from` to the new file `to` with the online backup API. */
static sb_status backup_db(const char *from, const char *to, sb_error *err)
{
    sqlite3 *src = NULL, *dst = NULL;
    sb_status st = SB_OK;
    if (sqlite3_open_v2(from, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        st = sb_error_set(err, SB_ERR_STORE, from, "--base: cannot open the base store: %s",
                          src ? sqlite3_errmsg(src) : "out of memory");
        sqlite3_close(src);
        return st;
    }
    sqlite3_busy_timeout(src, 60000);
    if (sqlite3_open_v2(to, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        st = sb_error_set(err, SB_ERR_IO, to, "--base: cannot create the database: %s",
                          dst ? sqlite3_errmsg(dst) : "out of memory");
        sqlite3_close(dst);
        sqlite3_close(src);
        return st;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    int rc = SQLITE_ERROR;
    if (b) {
        /* Busy or locked: a writer holds the base; wait for it as a connection would. */
        for (int tries = 0; tries < 600; tries++) {
            rc = sqlite3_backup_step(b, -1);
            if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
                break;
            sqlite3_sleep(100);
        }
        sqlite3_backup_finish(b);
    }
    if (rc != SQLITE_DONE)
        st = sb_error_set(err, SB_ERR_STORE, from, "--base: cannot copy the base store to %s: %s",
                          to, sqlite3_errmsg(dst));
    if (sqlite3_close(dst) != SQLITE_OK && st == SB_OK)
        st = sb_error_set(err, SB_ERR_IO, to, "--base: cannot finish the copy");
    sqlite3_close(src);
    return st;
}

sb_status sbi_store_create_from_base(const char *root, const char *base, int *created,
                                     sb_error *err)
{
    *created = 0;
    char *db = sbi_path_join(root, "serbench.db");
    char *base_db = sbi_path_join(base, "serbench.db");
    char *base_feat = sbi_path_join(base, "features");
    char *tmp = sbi_asprintf("%s/serbench.db.base-%ld.tmp", root, (long)getpid());
    char *target = NULL;
    sb_status st = db && base_db && base_feat && tmp
                       ? SB_OK
                       : sb_error_set(err, SB_ERR_NOMEM, root, "out of memory");
    if (st != SB_OK || sbi_is_file(db))
        goto out; /* a store of its own already: --base is for its first command only */
    if (!sbi_is_file(base_db)) {
        st = sb_error_set(err, SB_ERR_NOT_FOUND, base,
                          "--base: no serbench.db in this folder; run the label and feature "
                          "stages there first, or check the path");
        goto out;
    }
    if (!sbi_is_dir(base_feat) || !(target = realpath(base_feat, NULL)))
        st = sb_error_set(err, SB_ERR_IO, base_feat,
                          "--base: the base store has no features folder (is it a "
                          "serbench results folder?)");
    if (st == SB_OK)
        st = sbi_mkdir_p(root, err);
    if (st == SB_OK)
        st = link_features(root, target, err);
    if (st == SB_OK) {
        unlink(tmp);
        st = backup_db(base_db, tmp, err);
    }
    if (st == SB_OK && rename(tmp, db) != 0)
        st = sb_error_set(err, SB_ERR_IO, db, "--base: cannot rename the copy into place: %s",
                          strerror(errno));
    if (st != SB_OK && tmp)
        unlink(tmp);
    *created = st == SB_OK;
out:
    free(db);
    free(base_db);
    free(base_feat);
    free(tmp);
    free(target);
    return st;
}

void sbi_store_close(sbi_store **sp)
{
    if (!sp || !*sp)
        return;
    sbi_store *s = *sp;
    if (s->db)
        sqlite3_close(s->db);
    free(s->root);
    free(s->db_path);
    free(s);
    *sp = NULL;
}

sb_status sbi_store_file_hash(sbi_store *s, const char *path, char out[SB_HASH_HEX], sb_error *err)
{
    struct stat stt;
    if (stat(path, &stt) != 0)
        return sb_error_set(err, SB_ERR_IO, path, "cannot read: %s", strerror(errno));
    long long mtime = (long long)stt.st_mtim.tv_sec * 1000000000LL + stt.st_mtim.tv_nsec;
    sqlite3_stmt *q = NULL;
    sb_status st = sbi_store_prepare(
        s, "SELECT hash FROM file_hashes WHERE path=?1 AND size=?2 AND mtime_ns=?3 AND inode=?4",
        &q, err);
    if (st != SB_OK)
        return st;
    sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)stt.st_size);
    sqlite3_bind_int64(q, 3, mtime);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)stt.st_ino);
    int found = 0;
    if (sqlite3_step(q) == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(q, 0);
        if (h && strlen((const char *)h) == SB_HASH_HEX - 1) {
            memcpy(out, h, SB_HASH_HEX);
            found = 1;
        }
    }
    sqlite3_finalize(q);
    if (found)
        return SB_OK;
    st = sb_hash_file(path, out, err);
    if (st != SB_OK)
        return st;
    st = sbi_store_prepare(s, "INSERT OR REPLACE INTO file_hashes VALUES(?1, ?2, ?3, ?4, ?5)", &q,
                           err);
    if (st != SB_OK)
        return st;
    sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)stt.st_size);
    sqlite3_bind_int64(q, 3, mtime);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)stt.st_ino);
    sqlite3_bind_text(q, 5, out, -1, SQLITE_STATIC);
    st = sbi_store_step_done(s, q, err);
    sqlite3_finalize(q);
    return st;
}

int sbi_store_stage_complete(sbi_store *s, const char *key)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM stages WHERE key=?1 AND status='complete'", -1, &q,
                           NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int done = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return done;
}

sb_status sbi_store_stage_mark(sbi_store *s, const char *key, const char *kind, const char *desc,
                               const char *status, const char *info, sb_error *err)
{
    char now[32];
    sbi_utc_now(now);
    sqlite3_stmt *q = NULL;
    sb_status st = sbi_store_prepare(
        s,
        "INSERT INTO stages(key, kind, description, status, created, finished, info)"
        " VALUES(?1, ?2, ?3, ?4, ?5, CASE WHEN ?4='complete' THEN ?5 END, ?6)"
        " ON CONFLICT(key) DO UPDATE SET status=?4, info=coalesce(?6, info),"
        " finished=CASE WHEN ?4='complete' THEN ?5 ELSE finished END",
        &q, err);
    if (st != SB_OK)
        return st;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, desc, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, status, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, now, -1, SQLITE_TRANSIENT);
    if (info)
        sqlite3_bind_text(q, 6, info, -1, SQLITE_STATIC);
    st = sbi_store_step_done(s, q, err);
    sqlite3_finalize(q);
    return st;
}

char *sbi_store_run_status(sbi_store *s, const char *run_id)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT status FROM runs WHERE run_id=?1", -1, &q, NULL) !=
        SQLITE_OK)
        return NULL;
    sqlite3_bind_text(q, 1, run_id, -1, SQLITE_STATIC);
    char *r = NULL;
    if (sqlite3_step(q) == SQLITE_ROW)
        r = sbi_strdup((const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    return r;
}

void sbi_preds_free(sbi_preds *p)
{
    for (size_t i = 0; p->ids && i < p->n; i++)
        free(p->ids[i]);
    free(p->ids);
    free(p->gold);
    free(p->pred);
    memset(p, 0, sizeof *p);
}

sb_status sbi_store_load_preds(sbi_store *s, const char *run_id, const char *test, int with_ids,
                               sbi_preds *out, sb_error *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *q = NULL;
    sb_status st = sbi_store_prepare(s,
                                     "SELECT gold, pred, utt_id FROM predictions WHERE run_id=?1 "
                                     "AND test=?2 ORDER BY utt_id",
                                     &q, err);
    if (st != SB_OK)
        return st;
    sqlite3_bind_text(q, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, test, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? 2 * cap : 256;
            double *g = realloc(out->gold, cap * sizeof *g);
            if (g)
                out->gold = g;
            double *p = g ? realloc(out->pred, cap * sizeof *p) : NULL;
            if (p)
                out->pred = p;
            char **ids = p && with_ids ? realloc(out->ids, cap * sizeof *ids) : NULL;
            if (ids)
                out->ids = ids;
            if (!p || (with_ids && !ids)) {
                sqlite3_finalize(q);
                sbi_preds_free(out);
                return sb_error_set(err, SB_ERR_NOMEM, run_id, "out of memory");
            }
        }
        int null =
            sqlite3_column_type(q, 0) == SQLITE_NULL || sqlite3_column_type(q, 1) == SQLITE_NULL;
        out->gold[out->n] = null ? NAN : sqlite3_column_double(q, 0);
        out->pred[out->n] = null ? NAN : sqlite3_column_double(q, 1);
        if (with_ids) {
            const unsigned char *id = sqlite3_column_text(q, 2);
            out->ids[out->n] = id ? strdup((const char *)id) : NULL;
            if (!out->ids[out->n]) {
                out->n++;
                sqlite3_finalize(q);
                sbi_preds_free(out);
                return sb_error_set(err, SB_ERR_NOMEM, run_id, "out of memory");
            }
        }
        out->n++;
    }
    if (rc != SQLITE_DONE)
        st = sb_error_set(err, SB_ERR_STORE, run_id, "reading predictions of test '%s': %s", test,
                          sqlite3_errmsg(s->db));
    sqlite3_finalize(q);
    if (st != SB_OK)
        sbi_preds_free(out);
    return st;
}
