/* core/cli/cmd_export.c — `serbench export predictions|metrics CONFIG --out FILE.csv`:
 * the config's runs' rows from the store as CSV (RFC 4180). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static void field(sbi_buf *b, const char *s, int last)
{
    sbi_buf_csv_field(b, s);
    sbi_buf_puts(b, last ? "\r\n" : ",");
}

int cmd_export(int argc, char **argv)
{
    /* `serbench export KIND CONFIG`: move KIND out of the way so CONFIG parses as usual. */
    if (argc < 4) {
        fprintf(
            stderr,
            "serbench: error: usage: serbench export predictions|metrics CONFIG --out FILE.csv\n");
        return EXIT_USAGE;
    }
    const char *kind = argv[2];
    if (strcmp(kind, "predictions") && strcmp(kind, "metrics")) {
        fprintf(stderr, "serbench: error: export what? 'predictions' or 'metrics' (got '%s')\n",
                kind);
        return EXIT_USAGE;
    }
    char **args = calloc((size_t)argc, sizeof *args);
    args[0] = argv[0];
    args[1] = argv[1];
    for (int i = 3; i < argc; i++)
        args[i - 1] = argv[i];
    cli_args a;
    int rc = cli_parse(argc - 1, args, 1, &a);
    if (!rc && !a.out) {
        fprintf(stderr, "serbench: error: export needs --out FILE.csv\n");
        rc = EXIT_USAGE;
    }
    sbi_plan *plan = NULL;
    sbi_store *store = NULL;
    if (!rc)
        rc = cli_load_plan(&a, &plan);
    if (!rc)
        rc = cli_open_store(&a, plan, &store);
    if (rc)
        goto out;
    int preds = !strcmp(kind, "predictions");
    sbi_buf b = { 0 };
    if (preds)
        sbi_buf_puts(
            &b, "run_id,group_id,seed,run,test,utt_id,gold,pred,gold_label,pred_label,probs\r\n");
    else
        sbi_buf_puts(&b, "run_id,group_id,seed,run,test,metric,value,n\r\n");
    sqlite3_stmt *q = NULL;
    sb_error err = { 0 };
    const char *sql =
        preds ? "SELECT test, utt_id, gold, pred, probs FROM predictions WHERE run_id=?1"
                " ORDER BY test, rowid"
              : "SELECT test, metric, value, n FROM metrics WHERE run_id=?1"
                " ORDER BY test, metric";
    if (sbi_store_prepare(store, sql, &q, &err) != SB_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    size_t rows = 0;
    for (size_t i = 0; i < plan->n_runs; i++) {
        const sbi_run *r = &plan->runs[i];
        char *label = sbi_run_label(plan, r);
        char seed[32];
        snprintf(seed, sizeof seed, "%lld", (long long)r->seed);
        /* Class names: the run's label space, kept in its provenance. */
        json_t *classes = NULL;
        char *prov = NULL;
        sqlite3_stmt *pq = NULL;
        if (sbi_store_prepare(store, "SELECT provenance FROM runs WHERE run_id=?1", &pq, NULL) ==
            SB_OK) {
            sqlite3_bind_text(pq, 1, r->run_id, -1, SQLITE_STATIC);
            if (sqlite3_step(pq) == SQLITE_ROW && sqlite3_column_text(pq, 0))
                prov = strdup((const char *)sqlite3_column_text(pq, 0));
            sqlite3_finalize(pq);
        }
        json_t *pj = prov ? json_loads(prov, 0, NULL) : NULL;
        classes = json_object_get(pj, "classes");
        free(prov);
        sqlite3_bind_text(q, 1, r->run_id, -1, SQLITE_STATIC);
        while (sqlite3_step(q) == SQLITE_ROW) {
            field(&b, r->run_id, 0);
            field(&b, r->group_id, 0);
            field(&b, seed, 0);
            field(&b, label, 0);
            field(&b, (const char *)sqlite3_column_text(q, 0), 0);
            if (preds) {
                field(&b, (const char *)sqlite3_column_text(q, 1), 0);
                field(&b, (const char *)sqlite3_column_text(q, 2), 0);
                field(&b, (const char *)sqlite3_column_text(q, 3), 0);
                /* The test set's scoring space (a label map may differ from training's). */
                json_t *cls =
                    json_object_get(json_object_get(json_object_get(pj, "tests"),
                                                    (const char *)sqlite3_column_text(q, 0)),
                                    "classes");
                if (!json_is_array(cls))
                    cls = classes;
                field(&b, json_string_value(json_array_get(cls, (size_t)sqlite3_column_int(q, 2))),
                      0);
                field(&b, json_string_value(json_array_get(cls, (size_t)sqlite3_column_int(q, 3))),
                      0);
                field(&b, (const char *)sqlite3_column_text(q, 4), 1);
            } else {
                char v[64];
                snprintf(v, sizeof v, "%.17g", sqlite3_column_double(q, 2));
                field(&b, (const char *)sqlite3_column_text(q, 1), 0);
                field(&b, v, 0);
                field(&b, (const char *)sqlite3_column_text(q, 3), 1);
            }
            rows++;
        }
        sqlite3_reset(q);
        json_decref(pj);
        free(label);
    }
    sqlite3_finalize(q);
    if (sbi_write_file_atomic(a.out, b.s, b.len, &err) != SB_OK)
        rc = cli_fail(&err);
    else if (!a.quiet)
        fprintf(stderr, "wrote %zu rows to %s\n", rows, a.out);
    sbi_buf_free(&b);
out:
    sbi_store_close(&store);
    sbi_plan_destroy(&plan);
    free(a.overrides);
    free(a.positional);
    free(args);
    return rc;
}
