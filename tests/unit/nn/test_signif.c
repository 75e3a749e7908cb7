/* tests/unit/nn/test_signif.c — McNemar against statsmodels (tests/fixtures/signif/mcnemar.json,
 * made by scripts/gen-signif-fixtures.py); the paired bootstrap against a slow reference that
 * scores each resample with sb_metrics_classify, its reproducibility per seed, its CI's
 * coverage and its p under the null on synthetic systems with known accuracies, and the
 * errors. */
#include <criterion/criterion.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

/* ---- McNemar ------------------------------------------------------------------------- */

static double num_or_nan(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* |got - want| <= rtol·|want| (+ a tiny atol for exact zeros), with a message that says by
 * how much it missed. */
static void rel_close(const char *what, int i, double got, double want, double rtol)
{
    double tol = rtol * fabs(want) + 1e-300;
    cr_assert(fabs(got - want) <= tol, "case %d: %s ours %.17g, statsmodels %.17g (rel err %.3g)",
              i, what, got, want, fabs(got - want) / fabs(want));
}

Test(signif, mcnemar_matches_statsmodels)
{
    const char *root = getenv("SB_SOURCE_ROOT");
    char path[2048];
    snprintf(path, sizeof path, "%s/tests/fixtures/signif/mcnemar.json", root ? root : ".");
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    cr_assert_not_null(doc, "%s: %s (regenerate with scripts/gen-signif-fixtures.py)", path,
                       jerr.text);
    json_t *cases = json_object_get(doc, "cases");
    cr_assert_geq(json_array_size(cases), 15u);
    size_t ci;
    json_t *c;
    int undefined_seen = 0;
    json_array_foreach(cases, ci, c)
    {
        long counts[4] = { (long)json_integer_value(json_object_get(c, "both_right")),
                           (long)json_integer_value(json_object_get(c, "b")),
                           (long)json_integer_value(json_object_get(c, "c")),
                           (long)json_integer_value(json_object_get(c, "both_wrong")) };
        size_t n = (size_t)(counts[0] + counts[1] + counts[2] + counts[3]);
        int32_t *g = malloc(n * sizeof *g), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        /* 3 classes; the four kinds of item interleaved; "both wrong" items are wrong in
         * different ways, which McNemar must not care about */
        size_t i = 0;
        long left[4] = { counts[0], counts[1], counts[2], counts[3] };
        while (i < n)
            for (int kind = 0; kind < 4 && i < n; kind++) {
                if (left[kind] == 0)
                    continue;
                left[kind]--;
                int32_t y = (int32_t)(i % 3);
                g[i] = y;
                a[i] = kind == 0 || kind == 1 ? y : (y + 1) % 3;
                b[i] = kind == 0 || kind == 2 ? y : (kind == 3 ? (y + 2) % 3 : (y + 1) % 3);
                i++;
            }
        sb_mcnemar m;
        sb_error err = { 0 };
        cr_assert_eq(sb_mcnemar_test(g, a, b, n, &m, &err), SB_OK, "case %zu: %s", ci, err.msg);
        cr_assert_eq(m.n, n);
        cr_assert_eq(m.b, counts[1], "case %zu: b %ld, want %ld", ci, m.b, counts[1]);
        cr_assert_eq(m.c, counts[2], "case %zu: c %ld, want %ld", ci, m.c, counts[2]);
        /* the binomial tail goes through lgamma of numbers up to 1e5: 1e-9 relative */
        rel_close("p_exact", (int)ci, m.p_exact, num_or_nan(c, "p_exact"), 1e-9);
        if (json_is_true(json_object_get(c, "chi2_undefined"))) {
            /* statsmodels divides 0 by 0 here; serbench's definition */
            cr_assert_eq(m.statistic, 0.0);
            cr_assert_eq(m.p_chi2, 1.0);
            undefined_seen++;
        } else {
            rel_close("statistic", (int)ci, m.statistic, num_or_nan(c, "statistic"), 1e-12);
            rel_close("p_chi2", (int)ci, m.p_chi2, num_or_nan(c, "p_chi2"), 1e-9);
        }
        free(g);
        free(a);
        free(b);
    }
    cr_assert_geq(undefined_seen, 1, "the fixture has a b + c == 0 case");
    json_decref(doc);
}

Test(signif, mcnemar_errors)
{
    int32_t g[2] = { 0, 1 }, p[2] = { 0, 0 };
    sb_mcnemar m;
    sb_error err = { 0 };
    cr_assert_eq(sb_mcnemar_test(g, p, p, 0, &m, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "n = 0"), "%s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(sb_mcnemar_test(g, NULL, p, 2, &m, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "NULL"), "%s", err.msg);
    cr_assert_eq(sb_mcnemar_test(g, p, p, 2, NULL, NULL), SB_ERR_INVALID);
    /* labels are only compared with gold: negative or large values are fine */
    int32_t g2[3] = { -1, 70000, 5 }, a2[3] = { -1, 3, 5 }, b2[3] = { 2, 70000, 5 };
    cr_assert_eq(sb_mcnemar_test(g2, a2, b2, 3, &m, NULL), SB_OK);
    cr_assert_eq(m.b, 1);
    cr_assert_eq(m.c, 1);
}

/* ---- paired bootstrap ---------------------------------------------------------------- */

/* Synthetic systems: gold uniform over K classes; a prediction set is right with probability
 * acc (independently per item and seed), else a uniformly chosen wrong class. */
static void make_gold(int32_t *g, size_t n, int K, sb_rng *r)
{
    for (size_t i = 0; i < n; i++)
        g[i] = (int32_t)sb_rng_below(r, (uint64_t)K);
}

static void make_preds(int32_t *p, const int32_t *g, size_t n, int K, double acc, sb_rng *r)
{
    for (size_t i = 0; i < n; i++)
        p[i] = sb_rng_uniform(r) < acc
                   ? g[i]
                   : (int32_t)((g[i] + 1 + (int32_t)sb_rng_below(r, (uint64_t)(K - 1))) % K);
}

static double classify(const int32_t *g, const int32_t *p, size_t n, int K, const char *metric)
{
    sb_cls_metrics m;
    sb_error err = { 0 };
    cr_assert_eq(sb_metrics_classify(g, p, n, K, &m, &err), SB_OK, "%s", err.msg);
    double v;
    cr_assert_eq(sb_metrics_get(&m, metric, &v), 0);
    sb_cls_metrics_free(&m);
    return v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The documented procedure written out slowly: per resample, copy the drawn items and score
 * every seed row with sb_metrics_classify. */
static void reference_bootstrap(const int32_t *g, const int32_t *pa, int sa, const int32_t *pb,
                                int sb, size_t n, int K, const char *metric, long R, double alpha,
                                uint64_t seed, double *lo, double *hi, double *p)
{
    sb_rng rng;
    sb_rng_seed(&rng, seed, 0);
    int32_t *gg = malloc(n * sizeof *gg), *pp = malloc(n * sizeof *pp);
    size_t *idx = malloc(n * sizeof *idx);
    double *d = malloc((size_t)R * sizeof *d);
    long le = 0, ge = 0;
    for (long r = 0; r < R; r++) {
        for (size_t i = 0; i < n; i++) {
            idx[i] = (size_t)sb_rng_below(&rng, n);
            gg[i] = g[idx[i]];
        }
        double ma = 0, mb = 0;
        for (int s = 0; s < sa; s++) {
            for (size_t i = 0; i < n; i++)
                pp[i] = pa[(size_t)s * n + idx[i]];
            ma += classify(gg, pp, n, K, metric);
        }
        for (int s = 0; s < sb; s++) {
            for (size_t i = 0; i < n; i++)
                pp[i] = pb[(size_t)s * n + idx[i]];
            mb += classify(gg, pp, n, K, metric);
        }
        d[r] = ma / sa - mb / sb;
        le += d[r] <= 0;
        ge += d[r] >= 0;
    }
    qsort(d, (size_t)R, sizeof *d, cmp_double);
    double q[2] = { alpha / 2, 1 - alpha / 2 }, v[2];
    for (int k = 0; k < 2; k++) { /* numpy.quantile, method 'linear' */
        double h = (double)(R - 1) * q[k];
        long j = (long)floor(h);
        v[k] = j + 1 < R ? d[j] + (h - (double)j) * (d[j + 1] - d[j]) : d[R - 1];
    }
    *lo = v[0];
    *hi = v[1];
    *p = fmin(1.0, 2.0 * (double)(le < ge ? le : ge) / (double)R);
    free(gg);
    free(pp);
    free(idx);
    free(d);
}

Test(signif, bootstrap_matches_slow_reference)
{
    /* K = 5 with n = 40: classes drop out of some resamples' gold, which ua and macro_f1
     * must handle as sb_metrics_classify does */
    const size_t n = 40;
    const int K = 5, sa = 3, sb = 2;
    sb_rng r;
    sb_rng_seed(&r, 11, 0);
    int32_t g[40], pa[3 * 40], pb[2 * 40];
    make_gold(g, n, K, &r);
    for (int s = 0; s < sa; s++)
        make_preds(pa + s * n, g, n, K, 0.6, &r);
    for (int s = 0; s < sb; s++)
        make_preds(pb + s * n, g, n, K, 0.5, &r);
    const char *metrics[] = { "wa", "ua", "macro_f1", "weighted_f1", "micro_f1", "wf1" };
    for (size_t k = 0; k < sizeof metrics / sizeof metrics[0]; k++) {
        sb_paired_test t;
        sb_error err = { 0 };
        cr_assert_eq(
            sb_paired_bootstrap(g, pa, sa, pb, sb, n, K, metrics[k], 300, 0.1, 5, &t, &err), SB_OK,
            "%s", err.msg);
        double lo, hi, p;
        reference_bootstrap(g, pa, sa, pb, sb, n, K, metrics[k], 300, 0.1, 5, &lo, &hi, &p);
        cr_assert_eq(t.ci_lo, lo, "%s: ci_lo %.17g, reference %.17g", metrics[k], t.ci_lo, lo);
        cr_assert_eq(t.ci_hi, hi, "%s: ci_hi %.17g, reference %.17g", metrics[k], t.ci_hi, hi);
        cr_assert_eq(t.p_bootstrap, p, "%s: p %.17g, reference %.17g", metrics[k], t.p_bootstrap,
                     p);
        /* the full-sample scores: the mean over seed rows of sb_metrics_classify's values */
        double ma = 0, mb = 0;
        for (int s = 0; s < sa; s++)
            ma += classify(g, pa + s * n, n, K, metrics[k]);
        for (int s = 0; s < sb; s++)
            mb += classify(g, pb + s * n, n, K, metrics[k]);
        cr_assert_eq(t.score_a, ma / sa, "%s: score_a %.17g, want %.17g", metrics[k], t.score_a,
                     ma / sa);
        cr_assert_eq(t.score_b, mb / sb, "%s: score_b", metrics[k]);
        cr_assert_eq(t.diff, t.score_a - t.score_b);
        cr_assert_eq(t.n, n);
        cr_assert_eq(t.seeds_a, sa);
        cr_assert_eq(t.seeds_b, sb);
        cr_assert_eq(t.resamples, 300);
        cr_assert(t.ci_lo <= t.ci_hi);
    }
}

Test(signif, bootstrap_reproducible_per_seed)
{
    const size_t n = 200;
    const int K = 4;
    sb_rng r;
    sb_rng_seed(&r, 3, 0);
    int32_t g[200], pa[200], pb[200];
    make_gold(g, n, K, &r);
    make_preds(pa, g, n, K, 0.7, &r);
    make_preds(pb, g, n, K, 0.65, &r);
    sb_paired_test t1, t2, t3;
    cr_assert_eq(sb_paired_bootstrap(g, pa, 1, pb, 1, n, K, "ua", 500, 0.05, 42, &t1, NULL), SB_OK);
    cr_assert_eq(sb_paired_bootstrap(g, pa, 1, pb, 1, n, K, "ua", 500, 0.05, 42, &t2, NULL), SB_OK);
    cr_assert_eq(memcmp(&t1, &t2, sizeof t1), 0, "same seed, same bits");
    cr_assert_eq(sb_paired_bootstrap(g, pa, 1, pb, 1, n, K, "ua", 500, 0.05, 43, &t3, NULL), SB_OK);
    cr_assert_eq(t3.diff, t1.diff, "the observed difference does not depend on the seed");
    cr_assert(t3.ci_lo != t1.ci_lo || t3.ci_hi != t1.ci_hi || t3.p_bootstrap != t1.p_bootstrap,
              "another seed, other draws");
}

Test(signif, identical_and_clearly_different_systems)
{
    const size_t n = 300;
    const int K = 4;
    sb_rng r;
    sb_rng_seed(&r, 8, 0);
    int32_t g[300], pa[2 * 300], pb[300];
    make_gold(g, n, K, &r);
    make_preds(pa, g, n, K, 0.6, &r);
    make_preds(pa + n, g, n, K, 0.6, &r);
    sb_paired_test t;
    /* a system against itself: every resampled difference is exactly 0 */
    cr_assert_eq(sb_paired_bootstrap(g, pa, 2, pa, 2, n, K, "weighted_f1", 400, 0.05, 1, &t, NULL),
                 SB_OK);
    cr_assert_eq(t.diff, 0.0);
    cr_assert_eq(t.ci_lo, 0.0);
    cr_assert_eq(t.ci_hi, 0.0);
    cr_assert_eq(t.p_bootstrap, 1.0);
    /* 0.9 against 0.6 on 300 items: about 11 standard errors apart */
    make_preds(pb, g, n, K, 0.9, &r);
    cr_assert_eq(sb_paired_bootstrap(g, pb, 1, pa, 2, n, K, "wa", 1000, 0.05, 1, &t, NULL), SB_OK);
    cr_assert_gt(t.diff, 0.2);
    cr_assert_gt(t.ci_lo, 0.0);
    cr_assert_lt(t.p_bootstrap, 0.002, "p %g", t.p_bootstrap);
    /* swapping the systems mirrors the difference and the interval */
    sb_paired_test s;
    cr_assert_eq(sb_paired_bootstrap(g, pa, 2, pb, 1, n, K, "wa", 1000, 0.05, 1, &s, NULL), SB_OK);
    cr_assert_eq(s.diff, -t.diff);
    cr_assert_float_eq(s.ci_lo, -t.ci_hi, 1e-15);
    cr_assert_float_eq(s.ci_hi, -t.ci_lo, 1e-15);
}

/* Coverage and size on synthetic populations whose true accuracies are known: A right with
 * probability 0.75, B with 0.70, independently, so the true wa difference is 0.05. Over 200
 * test sets the 90 % CI should contain 0.05 about 180 times (binomial sd 4.2), and for two
 * systems of equal accuracy p < 0.1 about 20 times. The CI width should match the normal
 * approximation 2·1.645·sqrt((0.75·0.25 + 0.7·0.3)/n). */
Test(signif, coverage_and_null_rejection_rate)
{
    enum { N = 400, SETS = 200 };
    const int K = 4;
    int32_t g[N], pa[N], pb[N], pc[N];
    sb_rng r;
    sb_rng_seed(&r, 2024, 0);
    int covered = 0, rejected_null = 0;
    double width_sum = 0;
    for (int set = 0; set < SETS; set++) {
        make_gold(g, N, K, &r);
        make_preds(pa, g, N, K, 0.75, &r);
        make_preds(pb, g, N, K, 0.70, &r);
        make_preds(pc, g, N, K, 0.75, &r);
        sb_paired_test t;
        cr_assert_eq(
            sb_paired_bootstrap(g, pa, 1, pb, 1, N, K, "wa", 400, 0.1, (uint64_t)set, &t, NULL),
            SB_OK);
        covered += t.ci_lo <= 0.05 && 0.05 <= t.ci_hi;
        width_sum += t.ci_hi - t.ci_lo;
        cr_assert_eq(
            sb_paired_bootstrap(g, pa, 1, pc, 1, N, K, "wa", 400, 0.1, (uint64_t)set, &t, NULL),
            SB_OK);
        rejected_null += t.p_bootstrap < 0.1;
    }
    double want_width = 2 * 1.6449 * sqrt((0.75 * 0.25 + 0.7 * 0.3) / N);
    double width = width_sum / SETS;
    cr_log_info("90%% CI covered the true difference in %d of %d sets; p < 0.1 in %d of %d null "
                "sets; mean CI width %.4f (normal approximation %.4f)",
                covered, SETS, rejected_null, SETS, width, want_width);
    cr_assert(covered >= 165 && covered <= 195, "90%% CI covered the truth in %d of %d sets",
              covered, SETS);
    cr_assert(rejected_null >= 6 && rejected_null <= 36,
              "p < 0.1 in %d of %d sets of equal systems", rejected_null, SETS);
    cr_assert(fabs(width - want_width) < 0.1 * want_width, "mean CI width %.4f, normal approx %.4f",
              width, want_width);
}

Test(signif, bootstrap_errors)
{
    int32_t g[3] = { 0, 1, 2 }, a[3] = { 0, 1, 1 }, b[3] = { 0, 2, 2 }, bad[3] = { 0, 3, 1 };
    sb_paired_test t;
    sb_error err = { 0 };
#define EXPECT(call, text)                                                                         \
    do {                                                                                           \
        sb_error_clear(&err);                                                                      \
        cr_assert_eq((call), SB_ERR_INVALID, "%s", #call);                                         \
        cr_assert(strstr(err.msg, text), "want '%s' in: %s", text, err.msg);                       \
        cr_assert_eq(t.n, 0u, "output zeroed on error");                                           \
    } while (0)
    EXPECT(sb_paired_bootstrap(g, a, 1, b, 1, 0, 3, "wa", 10, 0.05, 0, &t, &err), "n = 0");
    EXPECT(sb_paired_bootstrap(g, a, 1, b, 1, 3, 0, "wa", 10, 0.05, 0, &t, &err), "0 classes");
    EXPECT(sb_paired_bootstrap(g, bad, 1, b, 1, 3, 3, "wa", 10, 0.05, 0, &t, &err),
           "prediction 3 of system A (seed row 0) for item 1");
    EXPECT(sb_paired_bootstrap(g, a, 1, bad, 1, 3, 3, "wa", 10, 0.05, 0, &t, &err), "system B");
    EXPECT(sb_paired_bootstrap(bad, a, 1, b, 1, 3, 3, "wa", 10, 0.05, 0, &t, &err),
           "gold label 3 of item 1");
    EXPECT(sb_paired_bootstrap(g, a, 1, b, 1, 3, 2, "wa", 10, 0.05, 0, &t, &err), "outside [0, 2)");
    EXPECT(sb_paired_bootstrap(g, a, 1, b, 1, 3, 3, "f1", 10, 0.05, 0, &t, &err),
           "unknown metric 'f1'");
    EXPECT(sb_paired_bootstrap(g, a, 1, b, 1, 3, 3, "wa", 0, 0.05, 0, &t, &err), "resamples = 0");
    EXPECT(sb_paired_bootstrap(g, a, 1, b, 1, 3, 3, "wa", 10, 0.0, 0, &t, &err), "alpha = 0");
    EXPECT(sb_paired_bootstrap(g, a, 1, b, 1, 3, 3, "wa", 10, 1.0, 0, &t, &err), "alpha = 1");
    EXPECT(sb_paired_bootstrap(g, a, 1, b, 1, 3, 3, "wa", 10, NAN, 0, &t, &err), "alpha = nan");
    EXPECT(sb_paired_bootstrap(g, a, 0, b, 1, 3, 3, "wa", 10, 0.05, 0, &t, &err),
           "0 prediction sets for system A");
    EXPECT(sb_paired_bootstrap(g, NULL, 1, b, 1, 3, 3, "wa", 10, 0.05, 0, &t, &err), "NULL");
#undef EXPECT
    /* one resample: the interval collapses onto its one difference */
    cr_assert_eq(sb_paired_bootstrap(g, a, 1, b, 1, 3, 3, "wa", 1, 0.05, 0, &t, &err), SB_OK);
    cr_assert_eq(t.ci_lo, t.ci_hi);
}
