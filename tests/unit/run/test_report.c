/* tests/unit/run/test_report.c — `serbench report` tables: a store built row by row (runs,
 * metrics computed from stored predictions), rendered in every format and compared byte for
 * byte with tests/fixtures/report/golden.{md,csv,tex,json}; the checks of the report: block.
 *
 * After an intended change of the output, rewrite the golden files with
 *     SB_UPDATE_GOLDEN=1 meson test -C build run --print-errorlogs
 * and review the diff (git diff tests/fixtures/report) before committing it. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/metrics.h>

#include "plan.h"
#include "report.h"
#include "store.h"
#include "util.h"

static char builtin[4096];
static char dir[64];

static void setup(void)
{
    const char *root = getenv("SB_BUILD_ROOT");
    cr_assert(root);
    snprintf(builtin, sizeof builtin,
             "%s/plugins/datasets/manifest:%s/plugins/labellers/human:%s/plugins/encoders/fbank:"
             "%s/plugins/heads/linear",
             root, root, root, root);
    snprintf(dir, sizeof dir, "/tmp/sbreportXXXXXX");
    cr_assert(mkdtemp(dir));
}

/* The corpus path is absolute and never read (a report loads no corpus), so run ids do not
 * depend on the temporary folder. */
static const char *BASE = "name: \"report test\"\n"
                          "datasets:\n"
                          "  d: {plugin: manifest, path: /nonexistent/serbench-report-test/m.csv}\n"
                          "heads:\n"
                          "  lin: {plugin: linear, lr: 0.1, epochs: 5}\n"
                          "experiment:\n"
                          "  train: {dataset: d}\n"
                          "  test:\n"
                          "    - {dataset: d, split: test}\n"
                          "    - {dataset: d, split: dev, name: d/dev_2}\n"
                          "  encoder: fbank\n"
                          "  head: lin\n"
                          "sweep:\n"
                          "  heads.lin.lr: [0.1, 0.01, 0.001]\n"
                          "  heads.lin.epochs: [5, 7]\n"
                          "seeds: [1, 2]\n";

static const char *TABLES =
    "report:\n"
    "  title: \"R&D_report #1\"\n"
    "  tables:\n"
    "    - name: ua_folds\n"
    "      title: \"UA (%) over folds & seeds\"\n"
    "      metric: ua\n"
    "      rows: [heads.lin.lr]\n"
    "      cols: [test]\n"
    "      average: [heads.lin.epochs]\n"
    "      digits: 1\n"
    "      reported:\n"
    "        source: \"Paper_X {2025} #3, 50% & more\"\n"
    "        values:\n"
    "          - {heads.lin.lr: 0.1, test: d/test, value: 75.5}\n"
    "          - {heads.lin.lr: 0.001, test: d/dev_2, value: 60}\n"
    "          - {heads.lin.lr: 0.5, test: d/test, value: 1}\n"
    "    - name: wa_sig\n"
    "      metric: wa\n"
    "      rows: [heads.lin.lr, heads.lin.epochs]\n"
    "      significance: {test: bootstrap, alpha: 0.05, resamples: 300, seed: 7}\n"
    "    - name: f1_min\n"
    "      title: \"macro-F1, lowest in bold\"\n"
    "      metric: macro_f1\n"
    "      rows: [heads.lin.lr, heads.lin.epochs]\n"
    "      cols: [test]\n"
    "      best: min\n"
    "      significance: {test: mcnemar, alpha: 0.05}\n"
    "      scale: fraction\n"
    "      digits: 3\n";

static sbi_plan *load(const char *text, sb_error *err)
{
    char path[128];
    snprintf(path, sizeof path, "%s/c.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    sbi_plan *p = NULL;
    sbi_plan_load(path, NULL, 0, builtin, &p, err);
    return p;
}

static const char *run_key(const sbi_run *r, const char *opt)
{
    static char buf[64];
    json_t *o =
        json_object_get(json_object_get(json_object_get(r->config, "heads"), "lin"), "options");
    json_t *v = json_object_get(o, opt);
    if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, sizeof buf, "%g", json_real_value(v));
    return buf;
}

/* Predictions of a fake classifier (3 classes, 60 items per test set): wrong on an item when
 * a hash of (item, seed, test) falls under the configuration's error rate; lr 0.1 errs
 * 15 %, 0.01 18 % (close to it: not significant), 0.001 45 % (far). Metrics are computed
 * from these predictions, as a run would store them. */
static void fill_store(const sbi_plan *p, sbi_store *s)
{
    enum { N = 60, K = 3 };
    sqlite3_stmt *qr = NULL, *qm = NULL, *qp = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_store_prepare(s,
                                   "INSERT INTO runs(run_id, group_id, seed, config, status)"
                                   " VALUES(?1, ?2, ?3, '{}', ?4)",
                                   &qr, &err),
                 SB_OK);
    cr_assert_eq(sbi_store_prepare(s, "INSERT INTO metrics VALUES(?1, ?2, ?3, ?4, ?5)", &qm, &err),
                 SB_OK);
    cr_assert_eq(
        sbi_store_prepare(s, "INSERT INTO predictions VALUES(?1, ?2, ?3, ?4, ?5, '[]')", &qp, &err),
        SB_OK);
    cr_assert_eq(sbi_store_begin(s, &err), SB_OK);
    for (size_t i = 0; i < p->n_runs; i++) {
        const sbi_run *r = &p->runs[i];
        double lr = atof(run_key(r, "lr"));
        int epochs = atoi(run_key(r, "epochs"));
        /* A missing group: lr 0.001 with 7 epochs never ran. */
        if (lr < 0.005 && epochs == 7)
            continue;
        /* lr 0.01, 7 epochs, seed 2 failed: its metrics must not count. */
        int failed = lr > 0.005 && lr < 0.05 && epochs == 7 && r->seed == 2;
        int rate = lr > 0.05 ? 15 : lr > 0.005 ? 18 : 45;
        sqlite3_bind_text(qr, 1, r->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(qr, 2, r->group_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(qr, 3, r->seed);
        sqlite3_bind_text(qr, 4, failed ? "failed" : "complete", -1, SQLITE_STATIC);
        cr_assert_eq(sbi_store_step_done(s, qr, &err), SB_OK, "%s", err.msg);
        for (size_t t = 0; t < r->n_tests; t++) {
            int32_t gold[N], pred[N];
            for (int k = 0; k < N; k++) {
                unsigned h = (unsigned)(k * 7919 + (int)r->seed * 104729 + (int)t * 1299709 +
                                        epochs * 15485863);
                h = (h ^ (h >> 13)) * 2654435761u;
                gold[k] = k % K;
                pred[k] = (int)((h >> 8) % 100) < rate ? (gold[k] + 1 + (int)(h % 2)) % K : gold[k];
                char id[32];
                snprintf(id, sizeof id, "utt%03d", k);
                sqlite3_bind_text(qp, 1, r->run_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(qp, 2, r->tests[t].name, -1, SQLITE_STATIC);
                sqlite3_bind_text(qp, 3, id, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int(qp, 4, gold[k]);
                sqlite3_bind_int(qp, 5, pred[k]);
                cr_assert_eq(sbi_store_step_done(s, qp, &err), SB_OK, "%s", err.msg);
            }
            sb_cls_metrics m;
            cr_assert_eq(sb_metrics_classify(gold, pred, N, K, &m, &err), SB_OK);
            for (size_t mi = 0; mi < r->n_metrics; mi++) {
                double v;
                cr_assert_eq(sb_metrics_get(&m, r->metrics[mi], &v), 0);
                sqlite3_bind_text(qm, 1, r->run_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(qm, 2, r->tests[t].name, -1, SQLITE_STATIC);
                sqlite3_bind_text(qm, 3, r->metrics[mi], -1, SQLITE_STATIC);
                sqlite3_bind_double(qm, 4, v);
                sqlite3_bind_int(qm, 5, N);
                cr_assert_eq(sbi_store_step_done(s, qm, &err), SB_OK, "%s", err.msg);
            }
            sb_cls_metrics_free(&m);
        }
    }
    cr_assert_eq(sbi_store_commit(s, &err), SB_OK);
    sqlite3_finalize(qr);
    sqlite3_finalize(qm);
    sqlite3_finalize(qp);
}

static char *replace_all(const char *s, const char *from, const char *to)
{
    sbi_buf b = { 0 };
    sbi_buf_puts(&b, "");
    for (const char *at; (at = strstr(s, from)) != NULL; s = at + strlen(from)) {
        sbi_buf_add(&b, s, (size_t)(at - s));
        sbi_buf_puts(&b, to);
    }
    sbi_buf_puts(&b, s);
    return b.s;
}

/* Compare text with tests/fixtures/report/NAME, or rewrite it under SB_UPDATE_GOLDEN=1. */
static void golden(const char *name, const char *text)
{
    const char *src = getenv("SB_SOURCE_ROOT");
    cr_assert(src);
    char *path = sbi_asprintf("%s/tests/fixtures/report/%s", src, name);
    const char *upd = getenv("SB_UPDATE_GOLDEN");
    if (upd && !strcmp(upd, "1")) {
        sb_error err = { 0 };
        cr_assert_eq(sbi_write_file_atomic(path, text, strlen(text), &err), SB_OK, "%s", err.msg);
        free(path);
        return;
    }
    char *want = NULL;
    size_t len = 0;
    sb_error err = { 0 };
    cr_assert_eq(sbi_read_file(path, &want, &len, &err), SB_OK,
                 "%s (create it with SB_UPDATE_GOLDEN=1)", err.msg);
    size_t at = 0, line = 1;
    while (want[at] && text[at] && want[at] == text[at]) {
        line += want[at] == '\n';
        at++;
    }
    if (len != strlen(text) || at < len) {
        char out[128];
        snprintf(out, sizeof out, "%s/%s", dir, name);
        FILE *f = fopen(out, "w");
        if (f) {
            fputs(text, f);
            fclose(f);
        }
        cr_assert_fail("%s differs from the golden file at line %zu (byte %zu); this run's "
                       "output is in %s (SB_UPDATE_GOLDEN=1 rewrites the golden files)",
                       path, line, at, out);
    }
    free(want);
    free(path);
}

static json_t *build(const char *text, sbi_plan **pp, sbi_store **sp, const char *only)
{
    sb_error err = { 0 };
    char *cfg = sbi_asprintf("%s%s", BASE, text);
    sbi_plan *p = load(cfg, &err);
    free(cfg);
    cr_assert(p, "%s: %s", err.where, err.msg);
    static int calls;
    char *res = sbi_asprintf("%s/results%d", dir, calls++);
    sbi_store *s = NULL;
    cr_assert_eq(sbi_store_open(res, &s, &err), SB_OK, "%s", err.msg);
    free(res);
    fill_store(p, s);
    json_t *rep = NULL;
    cr_assert_eq(sbi_report_build_tables(p, s, 0, 0, only, &rep, &err), SB_OK, "%s: %s", err.where,
                 err.msg);
    *pp = p;
    *sp = s;
    return rep;
}

static const json_t *cell(const json_t *table, size_t row, size_t col)
{
    return json_array_get(
        json_object_get(json_array_get(json_object_get(table, "rows"), row), "cells"), col);
}

Test(report, golden_all_formats, .init = setup)
{
    sbi_plan *p = NULL;
    sbi_store *s = NULL;
    json_t *rep = build(TABLES, &p, &s, NULL);
    const char *const fmts[] = { "md", "csv", "tex", "json" };
    for (int f = 0; f < 4; f++) {
        char *text = sbi_report_render(rep, fmts[f]);
        cr_assert(text);
        /* Run ids hash the plugins' versions too: name them by their index in the plan so
         * a plugin's new version does not change the golden JSON. */
        for (size_t i = 0; i < p->n_runs; i++) {
            char idx[32];
            snprintf(idx, sizeof idx, "run-%02zu", i);
            char *t2 = replace_all(text, p->runs[i].run_id, idx);
            free(text);
            text = t2;
        }
        char name[32];
        snprintf(name, sizeof name, "golden.%s", fmts[f]);
        golden(name, text);
        free(text);
    }
    cr_assert_null(sbi_report_render(rep, "pdf"));

    /* The facts behind the golden text, checked directly. */
    const json_t *tables = json_object_get(rep, "tables");
    cr_assert_eq(json_array_size(tables), 3);
    const json_t *ua = json_array_get(tables, 0);
    /* lr 0.1: two folds (epochs 5, 7), each the mean over 2 seeds. */
    const json_t *c = cell(ua, 0, 0);
    cr_assert_eq(json_integer_value(json_object_get(c, "n")), 2);
    const json_t *groups = json_object_get(c, "groups");
    cr_assert_eq(json_array_size(groups), 2);
    double g0 = json_real_value(json_object_get(json_array_get(groups, 0), "mean"));
    double g1 = json_real_value(json_object_get(json_array_get(groups, 1), "mean"));
    cr_assert_float_eq(json_real_value(json_object_get(c, "mean")), (g0 + g1) / 2, 1e-15);
    cr_assert_float_eq(json_real_value(json_object_get(c, "sd")), fabs(g0 - g1) / sqrt(2.0), 1e-15);
    /* Reported 75.5 beside it, delta in percent points. */
    cr_assert_float_eq(json_real_value(json_object_get(c, "reported")), 75.5, 0);
    cr_assert_float_eq(json_real_value(json_object_get(c, "delta")),
                       100 * json_real_value(json_object_get(c, "mean")) - 75.5, 1e-12);
    /* lr 0.01, 7 epochs: seed 2 failed, so that fold is one seed. */
    const json_t *c01 = json_array_get(json_object_get(cell(ua, 1, 0), "groups"), 1);
    cr_assert_eq(json_integer_value(json_object_get(c01, "n")), 1);
    /* lr 0.001: one fold only, reported on dev with no delta (no... the cell has data). */
    cr_assert_eq(json_integer_value(json_object_get(cell(ua, 2, 1), "n")), 1);
    cr_assert_float_eq(json_real_value(json_object_get(cell(ua, 2, 1), "reported")), 60.0, 0);
    /* The unknown reported value is a warning naming it, never a cell. */
    const json_t *w = json_object_get(rep, "warnings");
    cr_assert_eq(json_array_size(w), 1);
    cr_assert(strstr(json_string_value(json_array_get(w, 0)), "no row has heads.lin.lr = 0.5"),
              "%s", json_string_value(json_array_get(w, 0)));

    const json_t *wa = json_array_get(tables, 1);
    /* Missing group (lr 0.001, 7 epochs): a row with n 0 and no text. */
    cr_assert_eq(json_array_size(json_object_get(wa, "rows")), 6);
    cr_assert_eq(json_integer_value(json_object_get(cell(wa, 5, 0), "n")), 0);
    cr_assert(json_is_null(json_object_get(cell(wa, 5, 0), "text")));
    /* Best is lr 0.1; lr 0.01 is close (not significant: dagger), 0.001 far (significant). */
    size_t nbest = 0, ndag = 0, nsig = 0;
    for (size_t r = 0; r < 6; r++)
        for (size_t k = 0; k < 2; k++) {
            const json_t *x = cell(wa, r, k);
            nbest += json_is_true(json_object_get(x, "best"));
            ndag += json_is_false(json_object_get(x, "significant"));
            nsig += json_is_true(json_object_get(x, "significant"));
        }
    cr_assert_eq(nbest, 2);
    cr_assert_geq(ndag, 1);
    cr_assert_geq(nsig, 1);
    cr_assert(json_is_true(json_object_get(cell(wa, 4, 0), "significant")),
              "lr 0.001 (45 %% errors) differs from the best");

    /* best: min bolds the lowest mean: lr 0.001's. */
    const json_t *f1 = json_array_get(tables, 2);
    cr_assert(json_is_true(json_object_get(cell(f1, 4, 0), "best")));
    cr_assert(json_is_false(json_object_get(cell(f1, 0, 0), "best")));
    /* McNemar pairs the runs by seed: lr 0.1, 5 epochs has seeds 1 and 2 against the best's;
     * lr 0.01, 7 epochs only seed 1 (seed 2 failed). */
    const json_t *mc = json_object_get(cell(f1, 0, 0), "test");
    cr_assert_str_eq(json_string_value(json_object_get(mc, "kind")), "mcnemar");
    cr_assert_eq(json_array_size(json_object_get(mc, "pairs")), 2);
    cr_assert(json_is_true(json_object_get(cell(f1, 0, 0), "significant")));
    mc = json_object_get(cell(f1, 3, 0), "test");
    cr_assert_eq(json_array_size(json_object_get(mc, "pairs")), 1);
    cr_assert_eq(json_integer_value(
                     json_object_get(json_array_get(json_object_get(mc, "pairs"), 0), "seed")),
                 1);
    json_decref(rep);

    /* --table: one table; json renders that table alone. */
    rep = NULL;
    sb_error err = { 0 };
    cr_assert_eq(sbi_report_build_tables(p, s, 0, 0, "wa_sig", &rep, &err), SB_OK);
    cr_assert_eq(json_array_size(json_object_get(rep, "tables")), 1);
    char *js = sbi_report_render(rep, "json");
    json_t *one = json_loads(js, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(one, "name")), "wa_sig");
    json_decref(one);
    free(js);
    json_decref(rep);
    cr_assert_eq(sbi_report_build_tables(p, s, 0, 0, "nope", &rep, &err), SB_ERR_USAGE);
    cr_assert(strstr(err.msg, "ua_folds, wa_sig, f1_min"), "%s", err.msg);
    sbi_store_close(&s);
    sbi_plan_destroy(&p);
}

/* The single-table keys of before: report.rows + report.metric, or no report block at all
 * (columns test x metric, one row per sweep point), with the JSON fields scripts read. */
Test(report, legacy_single_table, .init = setup)
{
    sbi_plan *p = NULL;
    sbi_store *s = NULL;
    json_t *rep = build("report: {rows: [heads.lin.lr], metric: ua, title: Old}\n", &p, &s, NULL);
    const json_t *t = json_array_get(json_object_get(rep, "tables"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(t, "title")), "Old");
    cr_assert_eq(json_array_size(json_object_get(t, "columns")), 2);
    const json_t *row0 = json_array_get(json_object_get(t, "rows"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(row0, "label")), "lr=0.1");
    /* Both epochs pooled (a warning says the cell mixes configurations). */
    cr_assert_eq(json_integer_value(json_object_get(cell(t, 0, 0), "n")), 4);
    cr_assert_geq(json_array_size(json_object_get(rep, "warnings")), 1);
    char *md = sbi_report_render(rep, "md");
    cr_assert(strstr(md, "Old\n\n| lr | d/test | d/dev_2 |\n"), "%s", md);
    free(md);
    json_decref(rep);
    sbi_store_close(&s);
    sbi_plan_destroy(&p);

    rep = build("", &p, &s, NULL);
    t = json_array_get(json_object_get(rep, "tables"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(t, "title")), "report test");
    cr_assert_eq(json_array_size(json_object_get(t, "columns")), 8, "2 tests x 4 metrics");
    cr_assert_eq(json_array_size(json_object_get(t, "rows")), 6);
    row0 = json_array_get(json_object_get(t, "rows"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(row0, "label")), "lr=0.1, epochs=5");
    cr_assert_eq(json_integer_value(json_object_get(cell(t, 0, 0), "n")), 2);
    cr_assert_gt(json_real_value(json_object_get(cell(t, 0, 0), "mean")), 0.5);
    char *csv = sbi_report_render(rep, "csv");
    cr_assert(strstr(csv, "lr,epochs,d/test wa,d/test ua,"), "%s", csv);
    free(csv);
    json_decref(rep);
    sbi_store_close(&s);
    sbi_plan_destroy(&p);
}

static void expect_error(const char *report, const char *where, const char *msg)
{
    sb_error err = { 0 };
    char *cfg = sbi_asprintf("%s%s", BASE, report);
    sbi_plan *p = load(cfg, &err);
    free(cfg);
    cr_assert_null(p, "accepted: %s", report);
    cr_assert_eq(err.code, SB_ERR_CONFIG, "%s", err.msg);
    cr_assert(strstr(err.where, where), "where '%s' lacks '%s' (%s)", err.where, where, err.msg);
    cr_assert(strstr(err.msg, msg), "message '%s' lacks '%s'", err.msg, msg);
}

Test(report, config_errors, .init = setup)
{
    /* Line 17 is the report: line (BASE has 16 lines). */
    expect_error("report: {rowz: [test], metric: ua}\n",
                 "c.yaml:17:", "unknown key 'rowz' in report (did you mean 'rows'?)");
    expect_error("report:\n  tables:\n    - {name: a, metric: ua, scael: raw}\n",
                 "c.yaml:19:", "unknown key 'scael' in report.tables[0] (did you mean 'scale'?)");
    expect_error("report:\n  tables:\n    - {name: a, metric: ua}\n    - {name: a, metric: wa}\n",
                 "c.yaml:20:", "table name 'a' is already used by report.tables[0]");
    expect_error("report: {metric: uaa}\n", "c.yaml:17:",
                 "the runs do not compute 'uaa' (they compute wa, ua, macro_f1, weighted_f1; "
                 "experiment.metrics chooses) (did you mean 'ua'?)");
    expect_error("report: {metric: ua, scale: pct}\n",
                 "c.yaml:17:", "report.scale must be percent, fraction or raw (got 'pct')");
    expect_error("report: {metric: ua, best: biggest}\n",
                 "c.yaml:17:", "report.best must be none, max or min (got 'biggest')");
    expect_error("report: {metric: ua, rows: [heads.lin.lrr]}\n",
                 "c.yaml:17:", "no run's resolved config has 'heads.lin.lrr'");
    expect_error("report: {metric: ua, cols: []}\n",
                 "c.yaml:17:", "the runs have several test sets ('d/test', 'd/dev_2')");
    expect_error("report:\n  tables:\n    - {name: Bad Name, metric: ua}\n",
                 "c.yaml:19:", "report.tables[0].name must be 1 to 63 of a-z 0-9 _ -");
    expect_error("report: {title: x, tables: [{metric: ua}], rows: [test]}\n",
                 "c.yaml:17:", "report.rows belongs in a table");
    expect_error("report: {metric: ua, rows: [heads.lin.lr], average: [heads.lin.lr]}\n",
                 "c.yaml:17:", "'heads.lin.lr' is in both rows and average");
    expect_error("report: {metric: ua, average: [heads.lin.epochs], significance: {}}\n",
                 "c.yaml:17:", "significance cannot be combined with average");
    expect_error("report: {metric: ua, rows: [test], cols: [heads.lin.lr], significance: {}}\n",
                 "c.yaml:17:", "with 'test' in rows a column mixes test sets (put 'test' in cols)");
    expect_error("report: {metric: ua, significance: {test: t-test}}\n", "c.yaml:17:",
                 "report.significance.test must be bootstrap or mcnemar (got 't-test')");
    expect_error("report: {metric: ua, significance: {alpha: 2}}\n",
                 "c.yaml:17:", "alpha must be a number in (0, 1)");
    expect_error("report:\n  metric: ua\n  rows: [heads.lin.lr]\n  reported:\n    values:\n"
                 "      - {heads.lin.lr: 0.1, value: 3}\n",
                 "c.yaml:22:", "does not say its column key 'test'");
    expect_error("report:\n  metric: ua\n  rows: [heads.lin.lr]\n  reported:\n    values:\n"
                 "      - {heads.lin.lr: 0.1, test: d/test}\n",
                 "c.yaml:22:", "needs value: a number");
    expect_error("report: {metric: ua, digits: 9}\n",
                 "c.yaml:17:", "report.digits must be an integer from 0 to 6");
    expect_error("report: [ua]\n", "c.yaml:17:", "report: must be a mapping");
    expect_error("report: {cols: [test]}\n", "c.yaml:17:",
                 "name one metric (metric: ua) or put the pseudo-key 'metric' in rows or cols");
}

/* Regression runs (experiment.target: value): mae and corr raw, the accuracies in percent,
 * the lowest mae in bold. */
Test(report, regression_scales, .init = setup)
{
    sb_error err = { 0 };
    sbi_plan *p = load("datasets:\n"
                       "  d: {plugin: manifest, path: /nonexistent/serbench-report-test/m.csv}\n"
                       "experiment:\n"
                       "  train: {dataset: d}\n"
                       "  test: {dataset: d}\n"
                       "  encoder: fbank\n"
                       "  head: linear\n"
                       "  target: value\n"
                       "  metrics: [mae, corr, acc2_non0]\n"
                       "sweep:\n"
                       "  heads.linear.lr: [0.1, 0.01]\n"
                       "heads:\n"
                       "  linear: {lr: 0.1}\n"
                       "seeds: [1, 2]\n",
                       &err);
    cr_assert(p, "%s: %s", err.where, err.msg);
    char *res = sbi_asprintf("%s/results", dir);
    sbi_store *s = NULL;
    cr_assert_eq(sbi_store_open(res, &s, &err), SB_OK, "%s", err.msg);
    free(res);
    char *sql = NULL;
    for (size_t i = 0; i < p->n_runs; i++) {
        const sbi_run *r = &p->runs[i];
        /* lr 0.1 (runs 0, 1): mae 0.5/0.7, corr 0.8/0.9, acc2 0.75/0.85; lr 0.01 worse. */
        double k = i < 2 ? 0.0 : 0.25;
        double j = (double)(i % 2);
        sql = sbi_asprintf(
            "INSERT INTO runs(run_id, group_id, seed, config, status) VALUES('%s','%s',%lld,"
            "'{}','complete');"
            "INSERT INTO metrics VALUES('%s','d/test','mae',%.17g,10);"
            "INSERT INTO metrics VALUES('%s','d/test','corr',%.17g,10);"
            "INSERT INTO metrics VALUES('%s','d/test','acc2_non0',%.17g,10);",
            r->run_id, r->group_id, (long long)r->seed, r->run_id, 0.5 + 0.2 * j + k, r->run_id,
            0.8 + 0.1 * j - k, r->run_id, 0.75 + 0.1 * j - k);
        cr_assert_eq(sbi_store_exec(s, sql, &err), SB_OK, "%s", err.msg);
        free(sql);
    }
    json_t *rep = NULL;
    cr_assert_eq(sbi_report_build(p, s, 0, 0, &rep, &err), SB_OK, "%s", err.msg);
    char *md = sbi_report_render(rep, "md");
    cr_assert(strstr(md, "| lr | d/test mae | d/test corr | d/test acc2_non0 |\n"), "%s", md);
    cr_assert(strstr(md, "| 0.1 | **0.600 ± 0.141 (2)** | **0.850 ± 0.071 (2)** | "
                         "**80.00 ± 7.07 (2)** |\n"),
              "%s", md);
    cr_assert(strstr(md, "| 0.01 | 0.850 ± 0.141 (2) | 0.600 ± 0.071 (2) | 55.00 ± 7.07 (2) |\n"),
              "%s", md);
    cr_assert(strstr(md, "in percent (mae and corr as they are); best per column in bold."), "%s",
              md);
    free(md);
    json_decref(rep);
    sbi_store_close(&s);
    sbi_plan_destroy(&p);
}

/* Cells that print the same are tied: all bold, none tested against the others. lr 0.1 and
 * 0.01 have the same per-seed accuracies in another seed order (means one ulp apart); lr
 * 0.001 differs from them by less than the table's digits show. */
Test(report, cells_printed_the_same_are_tied, .init = setup)
{
    sb_error err = { 0 };
    sbi_plan *p = load("datasets:\n"
                       "  d: {plugin: manifest, path: /nonexistent/serbench-report-test/m.csv}\n"
                       "experiment: {train: {dataset: d}, test: {dataset: d}, encoder: fbank,"
                       " head: linear, metrics: [wa]}\n"
                       "sweep:\n"
                       "  heads.linear.lr: [0.1, 0.01, 0.001, 0.0001]\n"
                       "heads:\n"
                       "  linear: {lr: 0.1}\n"
                       "seeds: [1, 2, 3]\n"
                       "report: {metric: wa, rows: [heads.linear.lr], digits: 2}\n",
                       &err);
    cr_assert(p, "%s: %s", err.where, err.msg);
    cr_assert_eq(p->n_runs, 12);
    char *res = sbi_asprintf("%s/results", dir);
    sbi_store *s = NULL;
    cr_assert_eq(sbi_store_open(res, &s, &err), SB_OK, "%s", err.msg);
    free(res);
    static const double wa[4][3] = { { 30 / 60.0, 31 / 60.0, 32 / 60.0 },
                                     { 32 / 60.0, 31 / 60.0, 30 / 60.0 },
                                     { 0.516667, 0.516667, 0.516667 },
                                     { 0.4, 0.4, 0.4 } };
    for (size_t i = 0; i < p->n_runs; i++) {
        const sbi_run *r = &p->runs[i];
        char *sql = sbi_asprintf(
            "INSERT INTO runs(run_id, group_id, seed, config, status) VALUES('%s','%s',%lld,"
            "'{}','complete');"
            "INSERT INTO metrics VALUES('%s','d/test','wa',%.17g,60);",
            r->run_id, r->group_id, (long long)r->seed, r->run_id, wa[i / 3][i % 3]);
        cr_assert_eq(sbi_store_exec(s, sql, &err), SB_OK, "%s", err.msg);
        free(sql);
    }
    json_t *rep = NULL;
    cr_assert_eq(sbi_report_build(p, s, 0, 0, &rep, &err), SB_OK, "%s", err.msg);
    const json_t *t = json_array_get(json_object_get(rep, "tables"), 0);
    double m0 = json_real_value(json_object_get(cell(t, 0, 0), "mean"));
    double m1 = json_real_value(json_object_get(cell(t, 1, 0), "mean"));
    cr_assert_neq(m0, m1, "the premise: the two means differ in their last bits");
    for (size_t r = 0; r < 3; r++)
        cr_assert(json_is_true(json_object_get(cell(t, r, 0), "best")), "row %zu is not bold", r);
    cr_assert(json_is_false(json_object_get(cell(t, 3, 0), "best")));
    json_decref(rep);
    sbi_store_close(&s);
    sbi_plan_destroy(&p);
}
