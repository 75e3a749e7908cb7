/* serbench/signif.h — significance of the difference between two classifiers scored on the
 * same test items: a paired bootstrap over items (confidence interval of the difference and
 * a two-sided p) and McNemar's test on one pair of prediction sets. docs/metrics.md
 * ("Significance") has the definitions. All functions are pure (no global state) and may be
 * called from any thread. */
#ifndef SERBENCH_SIGNIF_H
#define SERBENCH_SIGNIF_H

#include "common.h"
#include "error.h"

SB_BEGIN_DECLS

/* The result of sb_paired_bootstrap. */
typedef struct sb_paired_test {
    size_t n;                /* items */
    int seeds_a, seeds_b;    /* prediction sets per system */
    double score_a, score_b; /* the metric on all items (mean over each system's seeds) */
    double diff;             /* score_a - score_b */
    double ci_lo, ci_hi;     /* (1-alpha) percentile CI of diff over resamples */
    /* two-sided: 2*min(P(d*<=0), P(d*>=0)) from the resampled diffs, capped at 1 */
    double p_bootstrap;
    long resamples;
} sb_paired_test;

/* Paired bootstrap over items: gold[n]; pred_a[seeds_a][n], pred_b[seeds_b][n] class indices
 * (rows of seeds; each resample draws n item indices with replacement from sb_rng(seed), the
 * same draw for both systems, and computes the metric per seed, averaged over seeds).
 * metric: any name sb_metrics_get knows ("wa", "ua", "macro_f1", "weighted_f1", "micro_f1").
 *
 * The metric of a resample is computed as sb_metrics_classify would on the drawn items (a
 * class absent from the draw's gold drops out of ua as scikit-learn's does). The CI ends are
 * the alpha/2 and 1-alpha/2 quantiles of the resampled diffs with linear interpolation
 * between order statistics (numpy.quantile's default). The draws come from
 * sb_rng_seed(seed, 0) through sb_rng_below, so a seed gives the same result bit for bit on
 * every build and thread count.
 *
 * Errors (SB_ERR_INVALID, message naming the argument and, for a label, the item and the
 * seed row): n == 0, n_classes < 1, seeds_a or seeds_b < 1, a gold or predicted index
 * outside [0, n_classes), an unknown metric, resamples < 1, alpha outside (0, 1); NULL
 * pointers; SB_ERR_NOMEM. On error *out is zeroed. */
SB_API sb_status sb_paired_bootstrap(const int32_t *gold, const int32_t *pred_a, int seeds_a,
                                     const int32_t *pred_b, int seeds_b, size_t n, int n_classes,
                                     const char *metric, long resamples, double alpha,
                                     uint64_t seed, sb_paired_test *out, sb_error *err);

/* The result of sb_mcnemar_test. */
typedef struct sb_mcnemar {
    size_t n;
    long b, c; /* a right & b wrong, a wrong & b right */
    /* chi-square with continuity correction, (|b-c|-1)^2/(b+c); 0 when b + c == 0 */
    double statistic;
    double p_exact; /* two-sided exact binomial p: min(1, 2 P(X <= min(b,c))), X ~ Bin(b+c, 1/2) */
    double p_chi2;  /* P(chi2_1 >= statistic); 1 when b + c == 0 */
} sb_mcnemar;

/* McNemar on one pair of prediction sets: exact two-sided binomial p (statsmodels
 * mcnemar(exact=True)) and the chi-square with continuity correction (exact=False,
 * correction=True). gold, pred_a and pred_b are n class indices; only equality with gold
 * matters, so any int32 values are accepted. Errors: n == 0 or a NULL pointer
 * (SB_ERR_INVALID). */
SB_API sb_status sb_mcnemar_test(const int32_t *gold, const int32_t *pred_a, const int32_t *pred_b,
                                 size_t n, sb_mcnemar *out, sb_error *err);

SB_END_DECLS

#endif
