/* tests/unit/nn/test_metrics.c — sb_metrics_classify against scikit-learn on the cases in
 * tests/fixtures/metrics/cases.json (made by scripts/gen-metric-fixtures.py), random and
 * adversarial (K = 1, 2, 7; classes absent from gold, predictions or both; one class; all
 * wrong), to 1e-12; sb_metrics_regress against numpy/scikit-learn on the same file's
 * "regression" cases; the error cases, the name lookup and sb_mean_sd. */
#include <criterion/criterion.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

#define TOL 1e-12

static json_t *load_cases(void)
{
    const char *root = getenv("SB_SOURCE_ROOT");
    char path[2048];
    snprintf(path, sizeof path, "%s/tests/fixtures/metrics/cases.json", root ? root : ".");
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    cr_assert_not_null(doc, "%s: %s (regenerate with scripts/gen-metric-fixtures.py)", path,
                       jerr.text);
    return doc;
}

static double num(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_number(v), "fixture field %s missing", key);
    return json_number_value(v);
}

static void close_to(const char *cname, const char *what, int k, double got, double want)
{
    cr_assert(fabs(got - want) <= TOL, "case %s: %s%s%.0d ours %.17g, sklearn %.17g (diff %.3g)",
              cname, what, k >= 0 ? " class " : "", k >= 0 ? k : 0, got, want, fabs(got - want));
}

Test(metrics, match_sklearn_fixtures)
{
    json_t *doc = load_cases();
    json_t *cases = json_object_get(doc, "cases");
    cr_assert_geq(json_array_size(cases), 50u);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        char cname[64];
        snprintf(cname, sizeof cname, "#%zu %s", i, json_string_value(json_object_get(c, "name")));
        int K = (int)json_integer_value(json_object_get(c, "K"));
        json_t *jy = json_object_get(c, "y"), *jp = json_object_get(c, "p");
        size_t n = json_array_size(jy);
        int32_t *y = malloc((n ? n : 1) * sizeof *y), *p = malloc((n ? n : 1) * sizeof *p);
        for (size_t j = 0; j < n; j++) {
            y[j] = (int32_t)json_integer_value(json_array_get(jy, j));
            p[j] = (int32_t)json_integer_value(json_array_get(jp, j));
        }
        sb_cls_metrics m;
        sb_error err = { 0 };
        cr_assert_eq(sb_metrics_classify(y, p, n, K, &m, &err), SB_OK, "case %s: %s", cname,
                     err.msg);
        cr_assert_eq(m.n_classes, K);
        cr_assert_eq((double)m.n, num(c, "n_scored"), "case %s: n", cname);
        close_to(cname, "wa", -1, m.wa, num(c, "accuracy"));
        close_to(cname, "ua", -1, m.ua, num(c, "balanced_accuracy"));
        close_to(cname, "macro_f1", -1, m.macro_f1, num(c, "f1_macro"));
        close_to(cname, "weighted_f1", -1, m.weighted_f1, num(c, "f1_weighted"));
        close_to(cname, "micro_f1", -1, m.micro_f1, num(c, "f1_micro"));
        for (int k = 0; k < K; k++) {
            close_to(cname, "precision", k, m.precision[k],
                     json_number_value(json_array_get(json_object_get(c, "precision"), k)));
            close_to(cname, "recall", k, m.recall[k],
                     json_number_value(json_array_get(json_object_get(c, "recall"), k)));
            close_to(cname, "f1", k, m.f1[k],
                     json_number_value(json_array_get(json_object_get(c, "f1"), k)));
            cr_assert_eq(m.support[k],
                         json_integer_value(json_array_get(json_object_get(c, "support"), k)),
                         "case %s: support of class %d", cname, k);
            json_t *row = json_array_get(json_object_get(c, "confusion"), k);
            for (int j = 0; j < K; j++)
                cr_assert_eq(m.confusion[k * K + j], json_integer_value(json_array_get(row, j)),
                             "case %s: confusion[%d][%d]", cname, k, j);
        }
        sb_cls_metrics_free(&m);
        cr_assert_null(m.precision);
        free(y);
        free(p);
    }
    json_decref(doc);
}

Test(metrics, errors)
{
    sb_cls_metrics m;
    sb_error err = { 0 };
    int32_t y[3] = { 0, 1, 2 }, p[3] = { 0, 3, 1 };
    cr_assert_eq(sb_metrics_classify(y, p, 3, 3, &m, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "prediction 3") && strstr(err.msg, "item 1"), "%s", err.msg);
    cr_assert_null(m.precision);
    sb_cls_metrics_free(&m); /* safe after failure */
    sb_error_clear(&err);
    int32_t p2[3] = { 0, -1, 1 };
    cr_assert_eq(sb_metrics_classify(y, p2, 3, 3, &m, &err), SB_ERR_INVALID);
    sb_error_clear(&err);
    cr_assert_eq(sb_metrics_classify(y, p, 0, 3, &m, &err), SB_ERR_INVALID, "n = 0");
    sb_error_clear(&err);
    int32_t none[3] = { -1, -1, -1 };
    cr_assert_eq(sb_metrics_classify(none, p, 3, 3, &m, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "nothing to score"), "%s", err.msg);
    sb_error_clear(&err);
    int32_t ybad[3] = { 0, 5, 1 }, pok[3] = { 0, 1, 1 };
    cr_assert_eq(sb_metrics_classify(ybad, pok, 3, 3, &m, &err), SB_ERR_INVALID);
    /* a prediction on an item without gold is not scored, so not checked */
    int32_t ygap[3] = { 0, -1, 1 }, pgap[3] = { 0, 9, 1 };
    sb_error_clear(&err);
    cr_assert_eq(sb_metrics_classify(ygap, pgap, 3, 3, &m, &err), SB_OK);
    cr_assert_eq(m.n, 2u);
    cr_assert_eq(m.wa, 1.0);
    sb_cls_metrics_free(&m);
}

Test(metrics, names_and_aliases)
{
    int32_t y[4] = { 0, 0, 1, 1 }, p[4] = { 0, 1, 1, 1 };
    sb_cls_metrics m;
    cr_assert_eq(sb_metrics_classify(y, p, 4, 2, &m, NULL), SB_OK);
    double v;
    const char *const *names = sb_metrics_names();
    const char *want[] = { "wa", "ua", "macro_f1", "weighted_f1", "micro_f1" };
    for (int i = 0; i < 5; i++) {
        cr_assert_str_eq(names[i], want[i]);
        cr_assert_eq(sb_metrics_get(&m, names[i], &v), 0);
    }
    cr_assert_null(names[5]);
    cr_assert_eq(sb_metrics_get(&m, "wa", &v), 0);
    cr_assert_eq(v, 0.75);
    cr_assert_eq(sb_metrics_get(&m, "acc", &v), 0);
    cr_assert_eq(v, 0.75);
    /* recall: class 0 = 1/2, class 1 = 1 → ua 0.75; F1: 2/3 and 0.8 */
    cr_assert_eq(sb_metrics_get(&m, "ua", &v), 0);
    cr_assert_eq(v, 0.75);
    cr_assert_eq(sb_metrics_get(&m, "mf1", &v), 0);
    cr_assert(fabs(v - (2.0 / 3.0 + 0.8) / 2) < 1e-15, "mf1 %.17g", v);
    cr_assert_eq(sb_metrics_get(&m, "wf1", &v), 0);
    cr_assert(fabs(v - (2.0 / 3.0 + 0.8) / 2) < 1e-15, "wf1 %.17g", v);
    cr_assert_eq(sb_metrics_get(&m, "micro_f1", &v), 0);
    cr_assert_eq(v, 0.75);
    cr_assert_eq(sb_metrics_get(&m, "f1", &v), -1);
    cr_assert_eq(sb_metrics_get(&m, "UA", &v), -1);
    sb_cls_metrics_free(&m);
}

Test(metrics, mean_sd)
{
    double x[5] = { 0.61, 0.64, 0.58, 0.66, 0.6 };
    double mean, sd;
    sb_mean_sd(x, 5, &mean, &sd);
    /* numpy: np.mean(x) = 0.618, np.std(x, ddof=1) = 0.031937438845342656 */
    cr_assert(fabs(mean - 0.618) < 1e-15, "mean %.17g", mean);
    cr_assert(fabs(sd - 0.031937438845342656) < 1e-15, "sd %.17g", sd);
    sb_mean_sd(x, 1, &mean, &sd);
    cr_assert_eq(mean, 0.61);
    cr_assert_eq(sd, 0.0);
    sb_mean_sd(x, 0, &mean, &sd);
    cr_assert(isnan(mean));
    cr_assert_eq(sd, 0.0);
    double c[3] = { 1e9 + 1, 1e9 + 2, 1e9 + 3 }; /* large offset: two-pass keeps sd exact */
    sb_mean_sd(c, 3, &mean, &sd);
    cr_assert_eq(sd, 1.0);
}

/* MOSI's regression metrics on a hand-checked example (docs/metrics.md): the golds hold
 * both zeros and x.5 values, so the two Acc-2 conventions differ and the half-to-even
 * rounding of Acc-7/Acc-5 decides four items (-2.5 → -2, -1.5 → -2, 1.5 → 2, 2.5 → 2).
 * By hand: |errors| sum to 5.5 over 9 items; has-0 splits at >= 0 (7 of 9 agree), non-0
 * drops the two zero golds (6 of 7); weighted F1 = (2/3·3 + 5/6·6)/9 and
 * (4/5·3 + 8/9·4)/7; Acc-7 and Acc-5 miss only gold 3 vs 1.4. The tenth item has no gold
 * (NAN) and is skipped whatever its prediction. numpy/sklearn agree to the last digit. */
Test(metrics, regression_hand_checked)
{
    const double g[] = { -3, -2.5, -0.5, 0, 0, 0.5, 1.5, 2.5, 3, NAN };
    const double p[] = { -2.6, -1.5, 0.4, 0.2, -0.3, 0.5, 2.5, 2.4, 1.4, 7 };
    sb_reg_metrics m;
    sb_error err = { 0 };
    cr_assert_eq(sb_metrics_regress(g, p, 10, &m, &err), SB_OK, "%s", err.msg);
    cr_assert_eq(m.n, 9);
    cr_assert_eq(m.n_non0, 7);
    cr_assert_float_eq(m.mae, 5.5 / 9, 1e-12);
    cr_assert_float_eq(m.corr, 0.9188964361793217, 1e-12);
    cr_assert_float_eq(m.acc2_has0, 7.0 / 9, 1e-12);
    cr_assert_float_eq(m.f1_has0, (2.0 / 3 * 3 + 5.0 / 6 * 6) / 9, 1e-12);
    cr_assert_float_eq(m.acc2_non0, 6.0 / 7, 1e-12);
    cr_assert_float_eq(m.f1_non0, (4.0 / 5 * 3 + 8.0 / 9 * 4) / 7, 1e-12);
    cr_assert_float_eq(m.acc7, 8.0 / 9, 1e-12);
    cr_assert_float_eq(m.acc5, 8.0 / 9, 1e-12);
    double v = 0;
    cr_assert_eq(sb_metrics_regress_get(&m, "acc2_non0", &v), 0);
    cr_assert_float_eq(v, 6.0 / 7, 1e-12);
    cr_assert_eq(sb_metrics_regress_get(&m, "wa", &v), -1);
    size_t k = 0;
    for (const char *const *n = sb_metrics_regress_names(); *n; n++)
        k++;
    cr_assert_eq(k, 8);
}

Test(metrics, regression_errors)
{
    const double g[] = { NAN, NAN }, p[] = { 0, 1 };
    sb_reg_metrics m;
    sb_error err = { 0 };
    cr_assert_eq(sb_metrics_regress(g, p, 2, &m, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "no item"));
    const double g2[] = { 1, 2 }, p2[] = { 0, NAN };
    err = (sb_error){ 0 };
    cr_assert_eq(sb_metrics_regress(g2, p2, 2, &m, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "item 1"));
    /* a constant side has no correlation */
    const double g3[] = { 1, 2, 3 }, p3[] = { 0.5, 0.5, 0.5 };
    cr_assert_eq(sb_metrics_regress(g3, p3, 3, &m, &err), SB_OK);
    cr_assert(isnan(m.corr));
}

/* MOSI's metrics against numpy and scikit-learn (MMSA's definitions: numpy.round, sklearn's
 * weighted F1) on the fixture's regression cases: random MOSI-like golds, zeros and x.5
 * values, predictions beyond [-3, 3] or exactly 0, a constant prediction (Pearson undefined:
 * null, NAN here), NaN golds (null: skipped) and all golds 0 (no non-0 items: null, NAN). */
Test(metrics, regression_match_numpy_sklearn_fixtures)
{
    json_t *doc = load_cases();
    json_t *cases = json_object_get(doc, "regression");
    cr_assert_geq(json_array_size(cases), 10u, "regenerate with scripts/gen-metric-fixtures.py");
    size_t i;
    json_t *c;
    int undefined_corr = 0, undefined_non0 = 0;
    json_array_foreach(cases, i, c)
    {
        char cname[64];
        snprintf(cname, sizeof cname, "regression #%zu %s", i,
                 json_string_value(json_object_get(c, "name")));
        json_t *jg = json_object_get(c, "gold"), *jp = json_object_get(c, "pred");
        size_t n = json_array_size(jg);
        cr_assert_eq(json_array_size(jp), n);
        double *g = malloc(n * sizeof *g), *p = malloc(n * sizeof *p);
        for (size_t j = 0; j < n; j++) {
            json_t *v = json_array_get(jg, j);
            g[j] = json_is_number(v) ? json_number_value(v) : NAN; /* null = no gold */
            p[j] = json_number_value(json_array_get(jp, j));
        }
        sb_reg_metrics m;
        sb_error err = { 0 };
        cr_assert_eq(sb_metrics_regress(g, p, n, &m, &err), SB_OK, "case %s: %s", cname, err.msg);
        cr_assert_eq((double)m.n, num(c, "n"), "case %s: n", cname);
        cr_assert_eq((double)m.n_non0, num(c, "n_non0"), "case %s: n_non0", cname);
        static const char *const names[] = { "mae",       "corr",    "acc2_has0", "f1_has0",
                                             "acc2_non0", "f1_non0", "acc7",      "acc5" };
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            double got;
            cr_assert_eq(sb_metrics_regress_get(&m, names[k], &got), 0);
            json_t *want = json_object_get(c, names[k]);
            if (json_is_null(want)) {
                cr_assert(isnan(got), "case %s: %s is %.17g; undefined there (NAN)", cname,
                          names[k], got);
                undefined_corr += k == 1;
                undefined_non0 += k == 4;
                continue;
            }
            close_to(cname, names[k], -1, got, num(c, names[k]));
        }
        free(g);
        free(p);
    }
    cr_assert_geq(undefined_corr, 1, "a case with a constant side");
    cr_assert_geq(undefined_non0, 1, "a case without non-0 golds");
    json_decref(doc);
}
