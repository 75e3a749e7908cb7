/* core/lib/run/store.h — (internal) the results store: RESULTS/serbench.db (SQLite, WAL)
 * and RESULTS/features/.
 *
 * Tables (schema version SBI_SCHEMA_VERSION, kept in PRAGMA user_version; migrations run
 * forward only, each in a transaction; a database from a newer serbench is refused):
 *   runs(run_id, group_id, seed, config, status, error, created, started, finished,
 *        seconds, inputs_key, provenance) one row per run; status running|complete|failed;
 *                                        inputs_key hashes the content the run read
 *                                        (corpus, label and feature keys)
 *   metrics(run_id, test, metric, value) one row per run × test set × metric
 *   predictions(run_id, test, utt_id, gold, pred, probs)
 *   stages(key, kind, description, status, created, finished, info)
 *                                        label and feature stages; status running|complete
 *   labels(stage_key, utt_id, label, label_name, confidence, raw, status, reason, dist,
 *          detail)                       status ok|invalid; dist a JSON array over the
 *                                        label space; detail the labeller's provenance JSON
 *   plugin_cache(plugin, key, value, created)  sb_host.cache_get/cache_put (schema 2)
 *   item_failures(stage_key, utt_id, reason)
 *   features(enc_key, item_key, file, tensor) index of pooled features in features/ files
 *   file_hashes(path, size, mtime_ns, inode, hash)  content-hash cache keyed by stat()
 * One connection per thread; every write is a transaction. */
#ifndef SBI_STORE_H
#define SBI_STORE_H

#include <sqlite3.h>
#include <serbench/serbench.h>

#define SBI_SCHEMA_VERSION 2

typedef struct sbi_store {
    char *root; /* results folder */
    char *db_path;
    sqlite3 *db;
} sbi_store;

/* Open (creating folder and schema as needed) the store under `root`. Errors: the folder
 * can't be created or written (SB_ERR_IO), the database is damaged or from a newer schema
 * (SB_ERR_SCHEMA), each naming the path and what to do. */
sb_status sbi_store_open(const char *root, sbi_store **out, sb_error *err);
void sbi_store_close(sbi_store **s);

/* `--base BASE`: when `root` has no serbench.db yet, make it start as a copy of
 * BASE/serbench.db (SQLite's online backup API, so a consistent snapshot even while BASE is
 * being written; written under a temporary name and renamed) with root/features a symbolic
 * link to BASE/features (feature files are immutable once renamed into place; each store
 * indexes its own). A root that already has a serbench.db is left as it is (a rerun), and
 * so is BASE, always. *created says whether the copy was made. Call before sbi_store_open.
 * Errors: BASE has no serbench.db or features folder (SB_ERR_NOT_FOUND, SB_ERR_IO);
 * root/features is a folder with files or a link elsewhere, or the copy fails (SB_ERR_IO,
 * SB_ERR_STORE); each names the path. */
sb_status sbi_store_create_from_base(const char *root, const char *base, int *created,
                                     sb_error *err);

/* Transactions (BEGIN IMMEDIATE so writers queue on the busy timeout). */
sb_status sbi_store_begin(sbi_store *s, sb_error *err);
sb_status sbi_store_commit(sbi_store *s, sb_error *err);
void sbi_store_rollback(sbi_store *s);

/* Run one statement with no result rows; `sql` may contain several statements. */
sb_status sbi_store_exec(sbi_store *s, const char *sql, sb_error *err);
/* Prepare, or fail with the SQLite message. */
sb_status sbi_store_prepare(sbi_store *s, const char *sql, sqlite3_stmt **st, sb_error *err);
/* Step a statement expected to finish (SQLITE_DONE); resets it. */
sb_status sbi_store_step_done(sbi_store *s, sqlite3_stmt *st, sb_error *err);

/* Content hash of a file, cached by (path, size, mtime_ns, inode). */
sb_status sbi_store_file_hash(sbi_store *s, const char *path, char out[SB_HASH_HEX], sb_error *err);

/* The predictions of one run on one test set, ordered by utterance id: gold and pred as
 * stored (class indices, or the values of a regression run; NAN where NULL) and, when
 * with_ids, the utterance ids (malloc'ed). Release with sbi_preds_free. */
typedef struct sbi_preds {
    size_t n;
    char **ids; /* [n] or NULL */
    double *gold, *pred;
} sbi_preds;
sb_status sbi_store_load_preds(sbi_store *s, const char *run_id, const char *test, int with_ids,
                               sbi_preds *out, sb_error *err);
void sbi_preds_free(sbi_preds *p);

/* Stage bookkeeping. */
int sbi_store_stage_complete(sbi_store *s, const char *key);
sb_status sbi_store_stage_mark(sbi_store *s, const char *key, const char *kind, const char *desc,
                               const char *status, const char *info, sb_error *err);

/* Run status ("complete", "failed", ...) or NULL if absent; caller frees. */
char *sbi_store_run_status(sbi_store *s, const char *run_id);

#endif
