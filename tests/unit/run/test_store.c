/* tests/unit/run/test_store.c — the results store: schema creation and versioning, refusal of
 * newer or foreign databases, unwritable folders, the file-hash cache. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/sbstoreXXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert(d);
    return strdup(d);
}

Test(store, creates_schema_and_reopens)
{
    char *d = tmpdir();
    sbi_store *s = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_store_open(d, &s, &err), SB_OK, "%s", err.msg);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sbi_store_prepare(s, "PRAGMA user_version", &q, &err), SB_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(q, 0), SBI_SCHEMA_VERSION);
    sqlite3_finalize(q);
    cr_assert_eq(sbi_store_prepare(s, "PRAGMA journal_mode", &q, &err), SB_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    cr_assert_eq(sbi_store_stage_mark(s, "k1", "labels", "d", "complete", NULL, &err), SB_OK);
    sbi_store_close(&s);
    cr_assert_eq(sbi_store_open(d, &s, &err), SB_OK, "%s", err.msg);
    cr_assert(sbi_store_stage_complete(s, "k1"));
    cr_assert_not(sbi_store_stage_complete(s, "k2"));
    sbi_store_close(&s);
    free(d);
}

Test(store, refuses_newer_schema)
{
    char *d = tmpdir();
    char *db = NULL;
    cr_assert(asprintf(&db, "%s/serbench.db", d) > 0);
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    sbi_store *s = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_store_open(d, &s, &err), SB_ERR_SCHEMA);
    cr_assert(strstr(err.msg, "schema version 99, newer than"), "%s", err.msg);
    cr_assert(strstr(err.where, "serbench.db"), "%s", err.where);
    cr_assert_null(s);
    free(db);
    free(d);
}

Test(store, refuses_non_database)
{
    char *d = tmpdir();
    char *db = NULL;
    cr_assert(asprintf(&db, "%s/serbench.db", d) > 0);
    FILE *f = fopen(db, "w");
    fputs("this is not a database, just text that is long enough to have a header......", f);
    fclose(f);
    sbi_store *s = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_store_open(d, &s, &err), SB_ERR_SCHEMA, "%d %s", err.code, err.msg);
    cr_assert(strstr(err.msg, "--results"), "%s", err.msg);
    free(db);
    free(d);
}

Test(store, unwritable_folder)
{
    if (geteuid() == 0) {
        /* root writes anywhere: use a path under a regular file instead. */
        char *d = tmpdir();
        char *file = NULL, *sub = NULL;
        cr_assert(asprintf(&file, "%s/plain", d) > 0);
        cr_assert(asprintf(&sub, "%s/plain/results", d) > 0);
        FILE *f = fopen(file, "w");
        fclose(f);
        sbi_store *s = NULL;
        sb_error err = { 0 };
        cr_assert_eq(sbi_store_open(sub, &s, &err), SB_ERR_IO);
        cr_assert(strstr(err.where, "plain"), "%s", err.where);
        free(file);
        free(sub);
        free(d);
        return;
    }
    char *d = tmpdir();
    chmod(d, 0500);
    char *sub = NULL;
    cr_assert(asprintf(&sub, "%s/results", d) > 0);
    sbi_store *s = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_store_open(sub, &s, &err), SB_ERR_IO);
    chmod(d, 0700);
    free(sub);
    free(d);
}

Test(store, file_hash_cache_follows_content)
{
    char *d = tmpdir();
    sbi_store *s = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_store_open(d, &s, &err), SB_OK);
    char *p = NULL;
    cr_assert(asprintf(&p, "%s/a.bin", d) > 0);
    FILE *f = fopen(p, "w");
    fputs("one", f);
    fclose(f);
    char h1[SB_HASH_HEX], h2[SB_HASH_HEX], h3[SB_HASH_HEX];
    cr_assert_eq(sbi_store_file_hash(s, p, h1, &err), SB_OK);
    cr_assert_eq(sbi_store_file_hash(s, p, h2, &err), SB_OK);
    cr_assert_str_eq(h1, h2);
    sleep(0); /* mtime granularity is ns; a rewrite with other content changes size too */
    f = fopen(p, "w");
    fputs("other", f);
    fclose(f);
    cr_assert_eq(sbi_store_file_hash(s, p, h3, &err), SB_OK);
    cr_assert_str_neq(h1, h3);
    char direct[SB_HASH_HEX];
    cr_assert_eq(sb_hash_file(p, direct, &err), SB_OK);
    cr_assert_str_eq(h3, direct);
    sbi_store_close(&s);
    free(p);
    free(d);
}

/* A schema-1 store (serbench before the labeller ABI 1.1) opens, migrates to the current
 * schema, and keeps its labels: they read as status 'ok'. The plugin cache table exists. */
Test(store, migrates_schema_1_and_keeps_labels)
{
    char *d = tmpdir();
    char *db = NULL;
    cr_assert(asprintf(&db, "%s/serbench.db", d) > 0);
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h,
                              "CREATE TABLE runs(run_id TEXT PRIMARY KEY, group_id TEXT NOT NULL,"
                              " seed INTEGER, config TEXT NOT NULL, status TEXT NOT NULL, error"
                              " TEXT, created TEXT, started TEXT, finished TEXT, seconds REAL,"
                              " inputs_key TEXT, provenance TEXT);"
                              "CREATE TABLE labels(stage_key TEXT NOT NULL, utt_id TEXT NOT NULL,"
                              " label INTEGER, label_name TEXT, confidence REAL, raw TEXT,"
                              " PRIMARY KEY(stage_key, utt_id));"
                              "INSERT INTO labels VALUES('k', 'u1', 2, 'ang', 1.0, NULL);"
                              "PRAGMA user_version = 1;",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(h);
    sbi_store *s = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_store_open(d, &s, &err), SB_OK, "%s", err.msg);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sbi_store_prepare(s, "SELECT label, status, dist, detail FROM labels", &q, &err),
                 SB_OK, "%s", err.msg);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(q, 0), 2);
    cr_assert_str_eq((const char *)sqlite3_column_text(q, 1), "ok");
    cr_assert_eq(sqlite3_column_type(q, 2), SQLITE_NULL);
    sqlite3_finalize(q);
    cr_assert_eq(
        sbi_store_exec(s, "INSERT INTO plugin_cache VALUES('llm', 'k', x'00', NULL)", &err), SB_OK,
        "%s", err.msg);
    cr_assert_eq(sbi_store_prepare(s, "PRAGMA user_version", &q, &err), SB_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(q, 0), SBI_SCHEMA_VERSION);
    sqlite3_finalize(q);
    sbi_store_close(&s);
    free(db);
    free(d);
}
