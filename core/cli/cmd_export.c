/* core/cli/cmd_export.c — `serbench export predictions|metrics CONFIG --out FILE.csv`: the
 * config's runs' rows from the store as CSV (RFC 4180); `serbench export features CONFIG
 * --dataset NAME --encoder NAME --out FILE.safetensors`: one dataset's stored features. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

/* The instance of `kind` named `name` that some run of the plan uses; with name NULL, the
 * only such instance. NULL when there is none (or several), with the names the runs use
 * listed in *names. */
static const sbi_instance *find_instance(const sbi_plan *plan, sb_kind kind, const char *name,
                                         sbi_buf *names)
{
    const sbi_instance *first = NULL;
    size_t distinct = 0;
    for (size_t i = 0; i < plan->n_runs; i++)
        for (size_t j = 0; j < plan->runs[i].n_inst; j++) {
            const sbi_instance *in = &plan->runs[i].inst[j];
            if (in->kind != kind)
                continue;
            if (name && !strcmp(in->name, name))
                return in;
            if (first && !strcmp(first->name, in->name))
                continue;
            /* ", a, b, " lookup: names are [a-z0-9_.-] and never contain ", " */
            char *tag = sbi_asprintf(", %s, ", in->name);
            char *list = sbi_asprintf(", %s, ", names->s ? names->s : "");
            int seen = tag && list && strstr(list, tag);
            free(tag);
            free(list);
            if (seen)
                continue;
            sbi_buf_printf(names, "%s%s", distinct ? ", " : "", in->name);
            if (!distinct++)
                first = in;
        }
    return !name && distinct == 1 ? first : NULL;
}

static int export_features(const cli_args *a, sbi_plan *plan, sbi_store *store)
{
    const struct {
        sb_kind kind;
        const char *flag, *name, *what;
    } want[2] = { { SB_KIND_DATASET, "--dataset", a->dataset, "a dataset" },
                  { SB_KIND_ENCODER, "--encoder", a->encoder, "an encoder" } };
    const sbi_instance *in[2] = { NULL, NULL };
    for (int k = 0; k < 2; k++) {
        sbi_buf names = { 0 };
        in[k] = find_instance(plan, want[k].kind, want[k].name, &names);
        if (!in[k]) {
            if (want[k].name)
                fprintf(stderr,
                        "serbench: error: %s: no run of the config uses %s named '%s' (its "
                        "runs use: %s)\n",
                        a->config, want[k].what, want[k].name, names.s ? names.s : "none");
            else
                fprintf(stderr,
                        "serbench: error: export features needs %s NAME (the config's runs "
                        "use: %s)\n",
                        want[k].flag, names.s ? names.s : "none");
            sbi_buf_free(&names);
            return EXIT_USAGE;
        }
        sbi_buf_free(&names);
    }
    sbi_ui ui;
    sbi_ui_init(&ui, a->quiet, a->verbose);
    sbi_feat_export_summary sum;
    sb_error err = { 0 };
    if (sbi_export_features(plan, store, in[0], in[1], &ui, a->threads, a->out, &sum, &err) !=
        SB_OK)
        return cli_fail(&err);
    if (!a->quiet)
        fprintf(
            stderr, "wrote %s: pooled features of %zu utterances of %s under %s, %zu with frames%s",
            a->out, sum.n_items, in[0]->name, in[1]->name, sum.n_frames, sum.n_missing ? "" : "\n");
    if (!a->quiet && sum.n_missing)
        fprintf(stderr,
                "; %zu utterances have no stored features (serbench encode computes them)\n",
                sum.n_missing);
    return EXIT_OK;
}

static void field(sbi_buf *b, const char *s, int last)
{
    sbi_buf_csv_field(b, s);
    sbi_buf_puts(b, last ? "\r\n" : ",");
}

int cmd_export(int argc, char **argv)
{
    /* `serbench export KIND CONFIG`: move KIND out of the way so CONFIG parses as usual. */
    if (argc < 4) {
        fprintf(stderr,
                "serbench: error: usage: serbench export predictions|metrics CONFIG --out "
                "FILE.csv\n"
                "       serbench export features CONFIG --dataset NAME --encoder NAME --out "
                "FILE.safetensors\n");
        return EXIT_USAGE;
    }
    const char *kind = argv[2];
    if (strcmp(kind, "predictions") && strcmp(kind, "metrics") && strcmp(kind, "features")) {
        fprintf(stderr,
                "serbench: error: export what? 'predictions', 'metrics' or 'features' (got "
                "'%s')\n",
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
    const int feats = !strcmp(kind, "features");
    if (!rc && !a.out) {
        fprintf(stderr, "serbench: error: export needs --out %s\n",
                feats ? "FILE.safetensors" : "FILE.csv");
        rc = EXIT_USAGE;
    }
    if (!rc && !feats && (a.dataset || a.encoder)) {
        fprintf(stderr, "serbench: error: --dataset and --encoder belong to export features\n");
        rc = EXIT_USAGE;
    }
    sbi_plan *plan = NULL;
    sbi_store *store = NULL;
    if (!rc)
        rc = cli_load_plan(&a, &plan);
    if (!rc)
        rc = cli_open_store(&a, plan, &store);
    if (!rc && feats)
        rc = export_features(&a, plan, store);
    if (rc || feats)
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
