/* tests/unit/run/test_merge.c — sbi_merge (merge.h) on small stores built with the store
 * API and SQL: disjoint merge with feature files, idempotent re-merge, conflicts leave the
 * destination byte for byte unchanged, complete beats failed, schema and shard.json checks. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "merge.h"
#include "store.h"

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/sbmergeXXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert(d);
    return strdup(d);
}

static void rmtree(char *dir)
{
    char *cmd = NULL;
    cr_assert(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(dir);
}

static char *join(const char *a, const char *b)
{
    char *p = NULL;
    cr_assert(asprintf(&p, "%s/%s", a, b) > 0);
    return p;
}

/* A store at root/name with the given SQL run on it. */
static char *mkstore(const char *root, const char *name, const char *sql)
{
    char *d = join(root, name);
    sbi_store *s = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_store_open(d, &s, &err), SB_OK, "%s", err.msg);
    if (sql)
        cr_assert_eq(sbi_store_exec(s, sql, &err), SB_OK, "%s: %s", sql, err.msg);
    sbi_store_close(&s);
    return d;
}

static void exec_on(const char *dir, const char *sql)
{
    sbi_store *s = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_store_open(dir, &s, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(sbi_store_exec(s, sql, &err), SB_OK, "%s: %s", sql, err.msg);
    sbi_store_close(&s);
}

/* The first column of the first row of sql on dir's store, as text ("" when none). */
static char *query(const char *dir, const char *sql)
{
    char *db = join(dir, "serbench.db");
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &q, NULL), SQLITE_OK, "%s", sqlite3_errmsg(h));
    char *r = strdup("");
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0)) {
        free(r);
        r = strdup((const char *)sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    sqlite3_close(h);
    free(db);
    return r;
}

static long long qint(const char *dir, const char *sql)
{
    char *s = query(dir, sql);
    long long v = atoll(s);
    free(s);
    return v;
}

/* A feature chunk file rel under dir holding tensor `key` = [1, 2] {a, b}. */
static void feature_file(const char *dir, const char *rel, const char *key, float a, float b)
{
    char *path = join(dir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    char *cmd = NULL;
    cr_assert(asprintf(&cmd, "mkdir -p '%s'", path) > 0);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    *slash = '/';
    sb_st_writer *w = sb_st_writer_create();
    const float v[2] = { a, b };
    const int64_t shape[2] = { 1, 2 };
    sb_error err = { 0 };
    cr_assert_eq(sb_st_writer_add(w, key, SB_DT_F32, 2, shape, v, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(sb_st_writer_commit(w, path, &err), SB_OK, "%s", err.msg);
    sb_st_writer_destroy(&w);
    free(path);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *len = 0;
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Every file under dir (recursively), name and bytes, as one string: a fingerprint. */
static void fingerprint_into(const char *dir, char **acc, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char *names[256];
    size_t k = 0;
    while ((e = readdir(d)) && k < 256)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            !strstr(e->d_name, ".db-")) /* -wal/-shm: SQLite's, come and go with readers */
            names[k++] = strdup(e->d_name);
    closedir(d);
    for (size_t i = 0; i < k; i++) /* sorted: readdir order is not stable */
        for (size_t j = i + 1; j < k; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    for (size_t i = 0; i < k; i++) {
        char *p = join(dir, names[i]);
        struct stat st;
        cr_assert_eq(stat(p, &st), 0);
        size_t len = 0;
        char *b = S_ISDIR(st.st_mode) ? NULL : slurp(p, &len);
        *acc = realloc(*acc, *n + strlen(p) + len + 2);
        memcpy(*acc + *n, p, strlen(p) + 1);
        *n += strlen(p) + 1;
        if (b)
            memcpy(*acc + *n, b, len);
        *n += len;
        free(b);
        if (S_ISDIR(st.st_mode))
            fingerprint_into(p, acc, n);
        free(p);
        free(names[i]);
    }
}

static char *fingerprint(const char *dir, size_t *n)
{
    char *acc = NULL;
    *n = 0;
    fingerprint_into(dir, &acc, n);
    return acc;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *p = join(dir, name);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    mkdir(p, 0755); /* one level: checkpoints/ */
    *slash = '/';
    FILE *f = fopen(p, "w");
    cr_assert(f, "%s", p);
    fputs(text, f);
    fclose(f);
    free(p);
}

static sb_status merge(const char *a, const char *b, const char *into, int dry, json_t **rep,
                       sb_error *err)
{
    const char *srcs[2] = { a, b };
    sbi_merge_opts o = { .srcs = srcs, .n_srcs = b ? 2 : 1, .into = into, .dry_run = dry };
    return sbi_merge(&o, rep, err);
}

static long long count(json_t *rep, const char *table, const char *what)
{
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(rep, "tables"), table), what));
}

#define RUN(id, status, value)                                                                     \
    "INSERT INTO runs(run_id, group_id, seed, config, status, created, seconds, inputs_key,"       \
    " provenance) VALUES('" id "', 'g', 1, '{}', '" status "', '2026-01-0" value "', " value       \
    ", 'in', '{\"seconds\": " value ", \"threads\": 1}');"                                         \
    "INSERT INTO metrics VALUES('" id "', 'test', 'wa', 0." value ", 10);"                         \
    "INSERT INTO predictions VALUES('" id "', 'test', 'u1', 1, 2, '[0.1,0.9]');"

Test(merge, disjoint_stores_then_idempotent)
{
    char *root = tmpdir();
    char *a =
        mkstore(root, "a",
                RUN("r1", "complete", "5") "INSERT INTO labels(stage_key, utt_id, label, "
                                           "label_name) VALUES('L', 'u1', 0, 'neutral');"
                                           "INSERT INTO stages VALUES('S', 'labels', 'd', "
                                           "'complete', 't1', 't1', '{\"labels_key\":\"L\"}');"
                                           "INSERT INTO features VALUES('E', 'k1', "
                                           "'features/E/c1.safetensors', 'k1');"
                                           "INSERT INTO plugin_cache VALUES('llm', 'q', "
                                           "X'0102', 't');");
    feature_file(a, "features/E/c1.safetensors", "k1", 1, 2);
    char *b = mkstore(root, "b",
                      RUN("r2", "complete", "6") "INSERT INTO item_failures VALUES('L', 'u2', "
                                                 "'timeout');"
                                                 "INSERT INTO features VALUES('E', 'k2', "
                                                 "'features/E/c2.safetensors', 'k2');"
                                                 "INSERT INTO file_hashes VALUES('/x.wav', 1, 2, "
                                                 "3, 'h');");
    feature_file(b, "features/E/c2.safetensors", "k2", 3, 4);
    char *d = join(root, "merged");
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(a, b, d, 0, &rep, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(count(rep, "runs", "added"), 2);
    cr_assert_eq(count(rep, "metrics", "added"), 2);
    cr_assert_eq(count(rep, "predictions", "added"), 2);
    cr_assert_eq(count(rep, "features", "added"), 2);
    cr_assert_eq(count(rep, "item_failures", "added"), 1);
    cr_assert_eq(count(rep, "file_hashes", "added"), 1);
    json_t *files = json_object_get(rep, "files");
    cr_assert_eq(json_integer_value(json_object_get(files, "copied")) +
                     json_integer_value(json_object_get(files, "linked")),
                 2);
    json_decref(rep);
    cr_assert_eq(qint(d, "SELECT count(*) FROM runs WHERE status='complete'"), 2);
    cr_assert_eq(qint(d, "SELECT count(*) FROM labels"), 1);
    cr_assert_eq(qint(d, "SELECT count(*) FROM stages"), 1);
    cr_assert_eq(qint(d, "SELECT length(value) FROM plugin_cache"), 2);
    char *v = query(d, "SELECT group_concat(run_id || value, ';') FROM "
                       "(SELECT * FROM metrics ORDER BY run_id)");
    cr_assert_str_eq(v, "r10.5;r20.6");
    free(v);
    /* The feature files came along, byte for byte. */
    for (int k = 1; k <= 2; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "features/E/c%d.safetensors", k);
        char *from = join(k == 1 ? a : b, rel), *to = join(d, rel);
        size_t n1, n2;
        char *x = slurp(from, &n1), *y = slurp(to, &n2);
        cr_assert(y, "%s not merged", to);
        cr_assert(n1 == n2 && !memcmp(x, y, n1));
        free(x);
        free(y);
        free(from);
        free(to);
    }

    /* Again: nothing added, the destination unchanged to the byte. */
    size_t n0, n1;
    char *before = fingerprint(d, &n0);
    cr_assert_eq(merge(a, b, d, 0, &rep, &err), SB_OK, "%s", err.msg);
    for (const char *const *t = (const char *const[]){ "runs", "metrics", "predictions", "labels",
                                                       "features", "item_failures", NULL };
         *t; t++)
        cr_assert_eq(count(rep, *t, "added") + count(rep, *t, "replaced"), 0, "%s", *t);
    cr_assert_eq(count(rep, "runs", "already_there"), 2);
    cr_assert_eq(count(rep, "predictions", "already_there"), 2);
    cr_assert_eq(
        json_integer_value(json_object_get(json_object_get(rep, "files"), "already_there")), 2);
    json_decref(rep);
    char *after = fingerprint(d, &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0), "a second merge changed the destination");
    free(before);
    free(after);
    free(a);
    free(b);
    free(d);
    rmtree(root);
}

Test(merge, conflict_writes_nothing)
{
    char *root = tmpdir();
    char *a = mkstore(root, "a", RUN("r1", "complete", "5"));
    char *b = mkstore(root, "b", RUN("r9", "complete", "7"));
    /* b holds r1 too, complete, with another metric value. */
    exec_on(b, "INSERT INTO runs(run_id, group_id, seed, config, status, inputs_key, provenance)"
               " VALUES('r1', 'g', 1, '{}', 'complete', 'in', '{\"seconds\": 5, \"threads\": 1}');"
               "INSERT INTO metrics VALUES('r1', 'test', 'wa', 0.25, 10);"
               "INSERT INTO predictions VALUES('r1', 'test', 'u1', 1, 2, '[0.1,0.9]');");
    char *d = mkstore(root, "d", RUN("r0", "complete", "3"));
    size_t n0, n1;
    char *before = fingerprint(d, &n0);
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(a, b, d, 0, &rep, &err), SB_ERR_STORE);
    cr_assert(strstr(err.msg, "1 conflict"), "%s", err.msg);
    cr_assert(strstr(err.msg, "nothing was written"), "%s", err.msg);
    json_t *c0 = json_array_get(json_object_get(rep, "conflicts"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c0, "table")), "metrics");
    cr_assert(strstr(json_string_value(json_object_get(c0, "key")), "run_id=r1"));
    json_t *holders = json_object_get(c0, "sources");
    cr_assert_eq(json_array_size(holders), 2);
    cr_assert_str_eq(json_string_value(json_array_get(holders, 0)), a);
    cr_assert_str_eq(json_string_value(json_array_get(holders, 1)), b);
    /* r9 would have been added, but nothing was. */
    cr_assert_eq(count(rep, "runs", "added"), 2);
    cr_assert_not(json_is_true(json_object_get(rep, "written")));
    json_decref(rep);
    char *after = fingerprint(d, &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0),
              "a conflicting merge changed the destination");
    free(after);
    free(before);

    /* Into a folder that does not exist: it is not created. */
    char *none = join(root, "none");
    sb_error_clear(&err);
    cr_assert_eq(merge(a, b, none, 0, &rep, &err), SB_ERR_STORE);
    json_decref(rep);
    struct stat st;
    cr_assert_neq(stat(none, &st), 0, "%s was created by a failed merge", none);

    /* A different run row (another inputs key) is a conflict of the runs table. */
    char *e = mkstore(root, "e", NULL);
    exec_on(e, "INSERT INTO runs(run_id, group_id, seed, config, status, inputs_key, provenance)"
               " VALUES('r1', 'g', 1, '{}', 'complete', 'other', '{\"seconds\": 5}');");
    sb_error_clear(&err);
    cr_assert_eq(merge(a, e, none, 1, &rep, &err), SB_ERR_STORE);
    c0 = json_array_get(json_object_get(rep, "conflicts"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c0, "table")), "runs");
    json_decref(rep);
    free(none);
    free(e);
    free(a);
    free(b);
    free(d);
    rmtree(root);
}

Test(merge, same_name_feature_file_with_other_bytes_is_a_conflict)
{
    char *root = tmpdir();
    char *a = mkstore(root, "a",
                      "INSERT INTO features VALUES('E', 'k1', 'features/E/c1.safetensors', 'k1');");
    feature_file(a, "features/E/c1.safetensors", "k1", 1, 2);
    char *d = mkstore(root, "d", NULL);
    feature_file(d, "features/E/c1.safetensors", "k1", 1, 2.5f); /* an unindexed leftover */
    size_t n0, n1;
    char *before = fingerprint(d, &n0);
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(a, NULL, d, 0, &rep, &err), SB_ERR_STORE);
    json_t *c0 = json_array_get(json_object_get(rep, "conflicts"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c0, "table")), "files");
    cr_assert_str_eq(json_string_value(json_object_get(c0, "key")), "features/E/c1.safetensors");
    json_decref(rep);
    char *after = fingerprint(d, &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0));
    free(before);
    free(after);
    free(a);
    free(d);
    rmtree(root);
}

/* A file that cannot be put in place (here a folder of its name) after others were: the
 * destination is left as it was, without the files placed before it or the folders made. */
Test(merge, failed_placement_undoes_placed_files_and_folders)
{
    char *root = tmpdir();
    char *a = mkstore(root, "a",
                      "INSERT INTO features VALUES('E', 'k1', 'features/E/a.safetensors', 'k1');"
                      "INSERT INTO features VALUES('E', 'k2', 'features/E/b.safetensors', 'k2');"
                      "INSERT INTO features VALUES('F', 'k3', 'features/F/c.safetensors', 'k3');");
    feature_file(a, "features/E/a.safetensors", "k1", 1, 2);
    feature_file(a, "features/E/b.safetensors", "k2", 3, 4);
    feature_file(a, "features/F/c.safetensors", "k3", 5, 6);
    char *d = mkstore(root, "d", NULL);
    char *blocker = join(d, "features/E/b.safetensors/x");
    char *cmd = NULL;
    cr_assert(asprintf(&cmd, "mkdir -p '%s'", blocker) > 0);
    cr_assert_eq(system(cmd), 0);
    size_t n0, n1;
    char *before = fingerprint(d, &n0);
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_neq(merge(a, NULL, d, 0, &rep, &err), SB_OK);
    cr_assert(strstr(err.where, "b.safetensors"), "%s: %s", err.where, err.msg);
    cr_assert_not(json_is_true(json_object_get(rep, "written")));
    json_decref(rep);
    char *after = fingerprint(d, &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0),
              "a merge that failed placing a file left files or folders behind");
    cr_assert_eq(qint(d, "SELECT count(*) FROM features"), 0);
    free(cmd);
    free(blocker);
    free(before);
    free(after);
    free(a);
    free(d);
    rmtree(root);
}

/* The rows are committed before DST/merge.json is renamed into place: a failure there is a
 * warning (rerun the merge), not an error after a merge that is in. */
Test(merge, merge_json_failure_after_commit_is_a_warning)
{
    char *root = tmpdir();
    char *a = mkstore(root, "a", RUN("r1", "complete", "5"));
    write_text(a, "shard.json", "{\"config_id\": \"X\", \"complete\": true}");
    char *d = join(root, "d");
    char *blocker = join(d, "merge.json/x");
    char *cmd = NULL;
    cr_assert(asprintf(&cmd, "mkdir -p '%s'", blocker) > 0);
    cr_assert_eq(system(cmd), 0);
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(a, NULL, d, 0, &rep, &err), SB_OK, "%s", err.msg);
    cr_assert(json_is_true(json_object_get(rep, "written")));
    const char *w = json_string_value(json_array_get(json_object_get(rep, "warnings"), 0));
    cr_assert(w && strstr(w, "merge.json") && strstr(w, "rerun"), "%s", w ? w : "no warning");
    json_decref(rep);
    cr_assert_eq(qint(d, "SELECT count(*) FROM runs"), 1);
    free(cmd);
    free(blocker);
    free(a);
    free(d);
    rmtree(root);
}

Test(merge, item_in_another_chunk_compares_tensors)
{
    char *root = tmpdir();
    char *a = mkstore(root, "a",
                      "INSERT INTO features VALUES('E', 'k1', 'features/E/c1.safetensors', 'k1');");
    feature_file(a, "features/E/c1.safetensors", "k1", 1, 2);
    /* b encoded the same item into another chunk: same tensor → already there. */
    char *b = mkstore(root, "b",
                      "INSERT INTO features VALUES('E', 'k1', 'features/E/c7.safetensors', 'k1');");
    feature_file(b, "features/E/c7.safetensors", "k1", 1, 2);
    /* c did too, with other values → a conflict. */
    char *c = mkstore(root, "c",
                      "INSERT INTO features VALUES('E', 'k1', 'features/E/c8.safetensors', 'k1');");
    feature_file(c, "features/E/c8.safetensors", "k1", 1, 3);
    char *d = join(root, "d");
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(a, b, d, 0, &rep, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(count(rep, "features", "added"), 1);
    cr_assert_eq(count(rep, "features", "already_there"), 1);
    json_decref(rep);
    char *f = query(d, "SELECT file FROM features");
    cr_assert_str_eq(f, "features/E/c1.safetensors");
    free(f);
    char *c7 = join(d, "features/E/c7.safetensors");
    struct stat st;
    cr_assert_neq(stat(c7, &st), 0, "a chunk no merged row needs was copied");
    free(c7);
    sb_error_clear(&err);
    cr_assert_eq(merge(c, NULL, d, 0, &rep, &err), SB_ERR_STORE);
    cr_assert_eq(count(rep, "features", "conflicts"), 1);
    json_decref(rep);
    free(a);
    free(b);
    free(c);
    free(d);
    rmtree(root);
}

Test(merge, complete_beats_failed_and_running)
{
    char *root = tmpdir();
    char *d = mkstore(root, "d",
                      "INSERT INTO runs(run_id, group_id, seed, config, status, error) VALUES("
                      "'r1', 'g', 1, '{}', 'failed', 'boom');"
                      "INSERT INTO stages VALUES('S', 'labels', 'd', 'running', 't', NULL,"
                      " '{\"labels_key\":\"L\"}');");
    char *a = mkstore(root, "a",
                      RUN("r1", "complete", "5") "INSERT INTO stages VALUES('S', 'labels', 'd',"
                                                 " 'complete', 't2', 't3', '{\"labels_key\":\"L\","
                                                 "\"labelled\":3}');");
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(a, NULL, d, 0, &rep, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(count(rep, "runs", "replaced"), 1);
    cr_assert_eq(count(rep, "stages", "replaced"), 1);
    json_decref(rep);
    char *s = query(d, "SELECT status || coalesce(error, '-') FROM runs WHERE run_id='r1'");
    cr_assert_str_eq(s, "complete-");
    free(s);
    cr_assert_eq(qint(d, "SELECT count(*) FROM metrics WHERE run_id='r1'"), 1);
    s = query(d, "SELECT status FROM stages WHERE key='S'");
    cr_assert_str_eq(s, "complete");
    free(s);

    /* A failed (or running) row never replaces a complete one. */
    char *b = mkstore(root, "b",
                      "INSERT INTO runs(run_id, group_id, seed, config, status, error) VALUES("
                      "'r1', 'g', 1, '{}', 'failed', 'later boom');"
                      "INSERT INTO stages VALUES('S', 'labels', 'd', 'running', 't', NULL,"
                      " '{\"labels_key\":\"L\"}');");
    cr_assert_eq(merge(b, NULL, d, 0, &rep, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(count(rep, "runs", "replaced"), 0);
    cr_assert_eq(count(rep, "runs", "already_there"), 1);
    json_decref(rep);
    s = query(d, "SELECT status FROM runs WHERE run_id='r1'");
    cr_assert_str_eq(s, "complete");
    free(s);
    s = query(d, "SELECT status FROM stages WHERE key='S'");
    cr_assert_str_eq(s, "complete");
    free(s);

    /* Two complete rows differing only in timestamps and seconds are the same run. */
    char *c = mkstore(root, "c", RUN("r1", "complete", "5"));
    exec_on(c, "UPDATE runs SET created='2027', seconds=99, provenance='{\"seconds\": 99, "
               "\"threads\": 1}'");
    cr_assert_eq(merge(c, NULL, d, 0, &rep, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(count(rep, "runs", "already_there"), 1);
    json_decref(rep);
    /* … but another thread count in the provenance is another run. */
    exec_on(c, "UPDATE runs SET provenance='{\"seconds\": 99, \"threads\": 2}'");
    cr_assert_eq(merge(c, NULL, d, 0, &rep, &err), SB_ERR_STORE);
    json_decref(rep);
    free(a);
    free(b);
    free(c);
    free(d);
    rmtree(root);
}

#define CK_RUN(status)                                                                             \
    "INSERT INTO runs(run_id, group_id, seed, config, status, provenance) VALUES('r1', 'g', 1,"    \
    " '{}', '" status "', '{\"checkpoint\": \"checkpoints/r1.safetensors\"}');"

Test(merge, checkpoints_follow_their_runs)
{
    char *root = tmpdir();
    char *d = mkstore(root, "d", CK_RUN("failed"));
    write_text(d, "checkpoints/r1.safetensors", "old head");
    char *a = mkstore(root, "a", CK_RUN("complete"));
    write_text(a, "checkpoints/r1.safetensors", "new head");
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(a, NULL, d, 0, &rep, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(count(rep, "runs", "replaced"), 1);
    json_decref(rep);
    char *p = join(d, "checkpoints/r1.safetensors");
    size_t n = 0;
    char *b = slurp(p, &n);
    cr_assert(n == 8 && !memcmp(b, "new head", 8), "the replaced run's checkpoint was kept");
    free(b);
    /* The same complete run with another checkpoint file is a conflict. */
    char *c = mkstore(root, "c", CK_RUN("complete"));
    write_text(c, "checkpoints/r1.safetensors", "odd head");
    cr_assert_eq(merge(c, NULL, d, 0, &rep, &err), SB_ERR_STORE);
    json_t *c0 = json_array_get(json_object_get(rep, "conflicts"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c0, "table")), "files");
    json_decref(rep);
    /* A merged run whose checkpoint is missing is merged, with a warning. */
    char *e = mkstore(root, "e", NULL);
    exec_on(e,
            "INSERT INTO runs(run_id, group_id, seed, config, status, provenance) VALUES("
            "'r2', 'g', 1, '{}', 'complete', '{\"checkpoint\": \"checkpoints/r2.safetensors\"}');");
    sb_error_clear(&err);
    cr_assert_eq(merge(e, NULL, d, 0, &rep, &err), SB_OK, "%s", err.msg);
    cr_assert(strstr(json_string_value(json_array_get(json_object_get(rep, "warnings"), 0)),
                     "checkpoint of a merged run is missing"));
    json_decref(rep);
    free(p);
    free(a);
    free(c);
    free(d);
    free(e);
    rmtree(root);
}

Test(merge, differing_cache_values_keep_the_first_with_a_warning)
{
    char *root = tmpdir();
    char *a = mkstore(root, "a", "INSERT INTO plugin_cache VALUES('llm', 'q1', 'answer A', 't');");
    char *b = mkstore(root, "b", "INSERT INTO plugin_cache VALUES('llm', 'q1', 'answer B', 't');");
    char *d = join(root, "d");
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(a, b, d, 0, &rep, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(count(rep, "plugin_cache", "conflicts"), 0);
    const char *w = json_string_value(json_array_get(json_object_get(rep, "warnings"), 0));
    cr_assert(w && strstr(w, "plugin=llm, key=q1") && strstr(w, "kept"), "%s", w ? w : "none");
    json_decref(rep);
    char *v = query(d, "SELECT CAST(value AS TEXT) FROM plugin_cache");
    cr_assert_str_eq(v, "answer A");
    free(v);
    free(a);
    free(b);
    free(d);
    rmtree(root);
}

Test(merge, label_answers_a_failure)
{
    char *root = tmpdir();
    char *a = mkstore(root, "a", "INSERT INTO item_failures VALUES('L', 'u1', 'timeout');");
    char *b = mkstore(root, "b",
                      "INSERT INTO labels(stage_key, utt_id, label, label_name) VALUES('L', 'u1',"
                      " 2, 'angry');");
    char *d = join(root, "d");
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(a, b, d, 0, &rep, &err), SB_OK, "%s", err.msg);
    json_decref(rep);
    cr_assert_eq(qint(d, "SELECT count(*) FROM item_failures"), 0);
    cr_assert_eq(qint(d, "SELECT count(*) FROM labels"), 1);
    free(a);
    free(b);
    free(d);
    rmtree(root);
}

Test(merge, refuses_other_schema_version)
{
    char *root = tmpdir();
    char *a = mkstore(root, "a", NULL);
    char *b = mkstore(root, "b", NULL);
    exec_on(b, "PRAGMA user_version = 1");
    char *d = join(root, "d");
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(a, b, d, 0, &rep, &err), SB_ERR_SCHEMA);
    cr_assert(strstr(err.msg, "schema version 1"), "%s", err.msg);
    cr_assert(strstr(err.where, "/b/serbench.db"), "%s", err.where);
    json_decref(rep);
    struct stat st;
    cr_assert_neq(stat(d, &st), 0);
    free(a);
    free(b);
    free(d);
    rmtree(root);
}

Test(merge, shard_json_config_ids_and_completion)
{
    char *root = tmpdir();
    char *a = mkstore(root, "a", RUN("r1", "complete", "5"));
    char *b = mkstore(root, "b", RUN("r2", "complete", "6"));
    write_text(a, "shard.json",
               "{\"config_id\": \"X\", \"kind\": \"runs\", \"index\": 1, "
               "\"count\": 2, \"complete\": true}");
    write_text(b, "shard.json",
               "{\"config_id\": \"Y\", \"kind\": \"runs\", \"index\": 2, "
               "\"count\": 2, \"complete\": true}");
    char *d = join(root, "d");
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(a, b, d, 0, &rep, &err), SB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "--allow-mixed"), "%s", err.msg);
    cr_assert(strstr(err.msg, "config_id Y") && strstr(err.msg, "has X"), "%s", err.msg);
    json_decref(rep);
    const char *srcs[2] = { a, b };
    sbi_merge_opts o = { .srcs = srcs, .n_srcs = 2, .into = d, .allow_mixed = 1 };
    sb_error_clear(&err);
    cr_assert_eq(sbi_merge(&o, &rep, &err), SB_OK, "%s", err.msg);
    json_decref(rep);

    /* Same config: fine, and the destination remembers it in merge.json … */
    write_text(b, "shard.json",
               "{\"config_id\": \"X\", \"kind\": \"runs\", \"index\": 2, "
               "\"count\": 2, \"complete\": true}");
    char *d2 = join(root, "d2");
    sb_error_clear(&err);
    cr_assert_eq(merge(a, b, d2, 0, &rep, &err), SB_OK, "%s", err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(rep, "config_id")), "X");
    json_decref(rep);
    /* … so shards of another config are refused there. */
    char *c = mkstore(root, "c", NULL);
    write_text(c, "shard.json", "{\"config_id\": \"Z\", \"complete\": true}");
    sb_error_clear(&err);
    cr_assert_eq(merge(c, NULL, d2, 0, &rep, &err), SB_ERR_CONFIG);
    cr_assert(strstr(err.msg, "merge.json"), "%s", err.msg);
    json_decref(rep);
    /* A merge of an unsharded store (no shard.json: not checked) keeps X in merge.json … */
    char *p = mkstore(root, "p", RUN("r7", "complete", "7"));
    sb_error_clear(&err);
    cr_assert_eq(merge(p, NULL, d2, 0, &rep, &err), SB_OK, "%s", err.msg);
    json_decref(rep);
    char *mj = join(d2, "merge.json");
    json_t *m = json_load_file(mj, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(m, "config_id")), "X");
    json_decref(m);
    sb_error_clear(&err);
    cr_assert_eq(merge(c, NULL, d2, 0, &rep, &err), SB_ERR_CONFIG, "%s", err.msg);
    json_decref(rep);
    /* … an --allow-mixed merge of Z adds Z to X (config_id null: mixed) … */
    const char *zs[1] = { c };
    sbi_merge_opts oz = { .srcs = zs, .n_srcs = 1, .into = d2, .allow_mixed = 1 };
    sb_error_clear(&err);
    cr_assert_eq(sbi_merge(&oz, &rep, &err), SB_OK, "%s", err.msg);
    json_decref(rep);
    m = json_load_file(mj, 0, NULL);
    cr_assert(json_is_null(json_object_get(m, "config_id")));
    cr_assert_eq(json_array_size(json_object_get(m, "config_ids")), 2);
    json_decref(m);
    /* … and then neither Z again, nor X, nor a third config gets in without --allow-mixed. */
    sb_error_clear(&err);
    cr_assert_eq(merge(c, NULL, d2, 0, &rep, &err), SB_ERR_CONFIG, "%s", err.msg);
    cr_assert(strstr(err.msg, "--allow-mixed"), "%s", err.msg);
    json_decref(rep);
    sb_error_clear(&err);
    cr_assert_eq(merge(a, NULL, d2, 0, &rep, &err), SB_ERR_CONFIG, "%s", err.msg);
    json_decref(rep);
    write_text(c, "shard.json", "{\"config_id\": \"W\", \"complete\": true}");
    sb_error_clear(&err);
    cr_assert_eq(merge(c, NULL, d2, 0, &rep, &err), SB_ERR_CONFIG, "%s", err.msg);
    json_decref(rep);
    free(mj);
    free(p);

    /* An incomplete shard is named, and merged only with partial. */
    write_text(b, "shard.json",
               "{\"config_id\": \"X\", \"kind\": \"runs\", \"index\": 2, "
               "\"count\": 2, \"complete\": false}");
    char *d3 = join(root, "d3");
    sb_error_clear(&err);
    cr_assert_eq(merge(a, b, d3, 0, &rep, &err), SB_ERR_INVALID);
    cr_assert_str_eq(err.where, b);
    cr_assert(strstr(err.msg, "incomplete shard") && strstr(err.msg, "2/2"), "%s", err.msg);
    json_decref(rep);
    o = (sbi_merge_opts){ .srcs = srcs, .n_srcs = 2, .into = d3, .partial = 1 };
    sb_error_clear(&err);
    cr_assert_eq(sbi_merge(&o, &rep, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(count(rep, "runs", "added"), 2);
    json_decref(rep);
    free(a);
    free(b);
    free(c);
    free(d);
    free(d2);
    free(d3);
    rmtree(root);
}

Test(merge, bad_sources)
{
    char *root = tmpdir();
    char *a = mkstore(root, "a", NULL);
    char *empty = join(root, "empty");
    mkdir(empty, 0755);
    json_t *rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(merge(empty, NULL, a, 0, &rep, &err), SB_ERR_IO);
    cr_assert_str_eq(err.where, empty);
    cr_assert(strstr(err.msg, "no results store"), "%s", err.msg);
    json_decref(rep);
    sb_error_clear(&err);
    cr_assert_eq(merge(a, NULL, a, 0, &rep, &err), SB_ERR_USAGE);
    cr_assert(strstr(err.msg, "destination"), "%s", err.msg);
    json_decref(rep);
    /* A features row naming a missing file, or a path outside the store. */
    char *b = mkstore(root, "b",
                      "INSERT INTO features VALUES('E', 'k1', 'features/E/gone.safetensors', "
                      "'k1');");
    char *d = join(root, "d");
    sb_error_clear(&err);
    cr_assert_eq(merge(b, NULL, d, 0, &rep, &err), SB_ERR_STORE);
    cr_assert(strstr(err.msg, "missing"), "%s", err.msg);
    json_decref(rep);
    exec_on(b, "UPDATE features SET file='features/../../etc/passwd'");
    sb_error_clear(&err);
    cr_assert_eq(merge(b, NULL, d, 0, &rep, &err), SB_ERR_STORE);
    cr_assert(strstr(err.msg, "damaged"), "%s", err.msg);
    json_decref(rep);
    free(a);
    free(b);
    free(d);
    free(empty);
    rmtree(root);
}
