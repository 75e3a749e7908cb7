/* core/lib/nn/signif.c — the paired bootstrap over test items and McNemar's test
 * (serbench/signif.h; docs/metrics.md "Significance"). The bootstrap counts one confusion
 * matrix per seed and resample into buffers allocated once, and scores it with the same
 * formulas as sb_metrics_classify (metrics_priv.h). */
#include <serbench/rng.h>
#include <serbench/signif.h>

#include "metrics_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Check labels of one prediction set: seed row `row` of system `sys`. */
static sb_status check_preds(const int32_t *pred, size_t n, int K, char sys, int row, sb_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (pred[i] < 0 || pred[i] >= K)
            return sb_error_set(err, SB_ERR_INVALID, NULL,
                                "paired bootstrap: prediction %d of system %c (seed row %d) for "
                                "item %zu is outside [0, %d)",
                                (int)pred[i], sys, row, i, K);
    return SB_OK;
}

/* The metric of one prediction set on the items idx[0..n) (all items when idx is NULL).
 * cm is (K,K) scratch. */
static double score_items(const int32_t *gold, const int32_t *pred, const size_t *idx, size_t n,
                          int K, const char *metric, int64_t *cm)
{
    memset(cm, 0, (size_t)K * (size_t)K * sizeof *cm);
    if (idx)
        for (size_t i = 0; i < n; i++)
            cm[(size_t)gold[idx[i]] * K + pred[idx[i]]]++;
    else
        for (size_t i = 0; i < n; i++)
            cm[(size_t)gold[i] * K + pred[i]]++;
    sb_cls_metrics m = { 0 };
    sbi_metrics_from_confusion(cm, K, &m);
    double v = NAN;
    sb_metrics_get(&m, metric, &v); /* the name was checked by the caller */
    return v;
}

/* Mean over a system's seed rows pred[seeds][n]. */
static double score_system(const int32_t *gold, const int32_t *pred, int seeds, const size_t *idx,
                           size_t n, int K, const char *metric, int64_t *cm)
{
    double sum = 0.0;
    for (int s = 0; s < seeds; s++)
        sum += score_items(gold, pred + (size_t)s * n, idx, n, K, metric, cm);
    return sum / seeds;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.quantile's default (linear interpolation between order statistics) on sorted x. */
static double quantile_sorted(const double *x, size_t m, double q)
{
    double h = (double)(m - 1) * q;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= m)
        return x[m - 1];
    return x[lo] + (h - (double)lo) * (x[lo + 1] - x[lo]);
}

sb_status sb_paired_bootstrap(const int32_t *gold, const int32_t *pred_a, int seeds_a,
                              const int32_t *pred_b, int seeds_b, size_t n, int n_classes,
                              const char *metric, long resamples, double alpha, uint64_t seed,
                              sb_paired_test *out, sb_error *err)
{
    if (!out)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "paired bootstrap: NULL output");
    memset(out, 0, sizeof *out);
    if (!gold || !pred_a || !pred_b || !metric)
        return sb_error_set(err, SB_ERR_INVALID, NULL,
                            "paired bootstrap: NULL gold, predictions or metric name");
    if (n == 0)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "paired bootstrap: no items (n = 0)");
    if (n_classes < 1)
        return sb_error_set(err, SB_ERR_INVALID, NULL,
                            "paired bootstrap: %d classes; need at least 1", n_classes);
    if (seeds_a < 1 || seeds_b < 1)
        return sb_error_set(err, SB_ERR_INVALID, NULL,
                            "paired bootstrap: %d prediction sets for system A and %d for B; "
                            "each needs at least 1",
                            seeds_a, seeds_b);
    if (resamples < 1)
        return sb_error_set(err, SB_ERR_INVALID, NULL,
                            "paired bootstrap: resamples = %ld; need at least 1", resamples);
    if (!(alpha > 0.0 && alpha < 1.0))
        return sb_error_set(err, SB_ERR_INVALID, NULL,
                            "paired bootstrap: alpha = %g is outside (0, 1)", alpha);
    sb_cls_metrics probe = { 0 };
    double unused;
    if (sb_metrics_get(&probe, metric, &unused) != 0)
        return sb_error_set(err, SB_ERR_INVALID, NULL,
                            "paired bootstrap: unknown metric '%s' (known: wa, ua, macro_f1, "
                            "weighted_f1, micro_f1)",
                            metric);
    const int K = n_classes;
    for (size_t i = 0; i < n; i++)
        if (gold[i] < 0 || gold[i] >= K)
            return sb_error_set(err, SB_ERR_INVALID, NULL,
                                "paired bootstrap: gold label %d of item %zu is outside [0, %d)",
                                (int)gold[i], i, K);
    for (int s = 0; s < seeds_a; s++) {
        sb_status st = check_preds(pred_a + (size_t)s * n, n, K, 'A', s, err);
        if (st != SB_OK)
            return st;
    }
    for (int s = 0; s < seeds_b; s++) {
        sb_status st = check_preds(pred_b + (size_t)s * n, n, K, 'B', s, err);
        if (st != SB_OK)
            return st;
    }

    size_t *idx = malloc(n * sizeof *idx);
    int64_t *cm = malloc((size_t)K * (size_t)K * sizeof *cm);
    double *diffs = malloc((size_t)resamples * sizeof *diffs);
    if (!idx || !cm || !diffs) {
        free(idx);
        free(cm);
        free(diffs);
        return sb_error_set(err, SB_ERR_NOMEM, NULL,
                            "paired bootstrap: out of memory (%zu items, %ld resamples)", n,
                            resamples);
    }

    out->n = n;
    out->seeds_a = seeds_a;
    out->seeds_b = seeds_b;
    out->resamples = resamples;
    out->score_a = score_system(gold, pred_a, seeds_a, NULL, n, K, metric, cm);
    out->score_b = score_system(gold, pred_b, seeds_b, NULL, n, K, metric, cm);
    out->diff = out->score_a - out->score_b;

    sb_rng rng;
    sb_rng_seed(&rng, seed, 0);
    long at_most_0 = 0, at_least_0 = 0;
    for (long r = 0; r < resamples; r++) {
        for (size_t i = 0; i < n; i++)
            idx[i] = (size_t)sb_rng_below(&rng, n);
        double d = score_system(gold, pred_a, seeds_a, idx, n, K, metric, cm) -
                   score_system(gold, pred_b, seeds_b, idx, n, K, metric, cm);
        diffs[r] = d;
        at_most_0 += d <= 0.0;
        at_least_0 += d >= 0.0;
    }
    long tail = at_most_0 < at_least_0 ? at_most_0 : at_least_0;
    double p = 2.0 * (double)tail / (double)resamples;
    out->p_bootstrap = p < 1.0 ? p : 1.0;
    qsort(diffs, (size_t)resamples, sizeof *diffs, cmp_double);
    out->ci_lo = quantile_sorted(diffs, (size_t)resamples, alpha / 2.0);
    out->ci_hi = quantile_sorted(diffs, (size_t)resamples, 1.0 - alpha / 2.0);

    free(idx);
    free(cm);
    free(diffs);
    return SB_OK;
}

/* P(X <= k) for X ~ Binomial(m, 1/2), k <= m/2. Summed downwards from the largest term
 * (C(m,k) 2^-m, in logs so that m in the millions neither overflows nor underflows); the
 * terms shrink by i/(m-i+1) per step, and the loop stops once they no longer add. */
static double binom_half_cdf(long k, long m)
{
    double log_top = lgamma((double)m + 1.0) - lgamma((double)k + 1.0) -
                     lgamma((double)(m - k) + 1.0) - (double)m * log(2.0);
    double sum = 1.0, term = 1.0;
    for (long i = k; i > 0; i--) {
        term *= (double)i / (double)(m - i + 1);
        sum += term;
        if (term < sum * 1e-17)
            break;
    }
    return exp(log_top + log(sum));
}

sb_status sb_mcnemar_test(const int32_t *gold, const int32_t *pred_a, const int32_t *pred_b,
                          size_t n, sb_mcnemar *out, sb_error *err)
{
    if (!out)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "McNemar: NULL output");
    memset(out, 0, sizeof *out);
    if (!gold || !pred_a || !pred_b)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "McNemar: NULL gold or predictions");
    if (n == 0)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "McNemar: no items (n = 0)");
    long b = 0, c = 0;
    for (size_t i = 0; i < n; i++) {
        int ra = pred_a[i] == gold[i], rb = pred_b[i] == gold[i];
        b += ra && !rb;
        c += !ra && rb;
    }
    out->n = n;
    out->b = b;
    out->c = c;
    long m = b + c;
    if (m == 0) {
        /* the systems disagree on no item: no evidence of a difference */
        out->statistic = 0.0;
        out->p_exact = 1.0;
        out->p_chi2 = 1.0;
        return SB_OK;
    }
    double dev = fabs((double)(b - c)) - 1.0;
    out->statistic = dev * dev / (double)m;
    out->p_chi2 = erfc(sqrt(out->statistic / 2.0)); /* chi-square, 1 df, upper tail */
    double p = 2.0 * binom_half_cdf(b < c ? b : c, m);
    out->p_exact = p < 1.0 ? p : 1.0;
    return SB_OK;
}
