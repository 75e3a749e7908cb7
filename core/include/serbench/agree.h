/* serbench/agree.h — inter-annotator agreement on nominal labels: raw agreement, Cohen's
 * kappa with its standard error and the confusion matrix for two raters; Fleiss' kappa and
 * Krippendorff's alpha (nominal) for any number of raters.
 *
 * Labels are class indices 0 … k−1 of one label space; SB_AGREE_MISSING (−1) marks an item a
 * rater did not label. The values equal scikit-learn's cohen_kappa_score / confusion_matrix,
 * statsmodels' cohens_kappa (standard error) and fleiss_kappa, and nltk's AnnotationTask.alpha
 * (tests/unit/nn/test_agree.c, fixtures from scripts/gen-agree-fixtures.py). A statistic
 * that is undefined for the data (no items, or no variation: the chance agreement is 1) is
 * NAN, not an error: callers print it as "n/a". All functions are pure (no global state)
 * and may be called from any thread. */
#ifndef SERBENCH_AGREE_H
#define SERBENCH_AGREE_H

#include "common.h"
#include "error.h"

SB_BEGIN_DECLS

/* The label of an item a rater did not label. Any other label outside [0, k) is an error. */
#define SB_AGREE_MISSING (-1)

/* Two raters a and b over the same n items. */
typedef struct sb_agree_pair {
    int k;            /* number of classes */
    size_t n;         /* items both raters labelled: the items every statistic below uses */
    size_t n_missing; /* items skipped because a, b or both are SB_AGREE_MISSING */
    double raw;       /* observed agreement p_o = #(a == b) / n; NAN when n == 0 */
    /* Cohen's kappa (unweighted), (p_o − p_e) / (1 − p_e) with the chance agreement
     * p_e = Σ_c (row_c / n)(col_c / n). NAN when n == 0 or p_e == 1 (both raters used one
     * and the same class for every item). */
    double kappa;
    /* Asymptotic (large-sample, non-null) standard error of kappa from Fleiss, Cohen and
     * Everitt (1969), as statsmodels' cohens_kappa(...).std_kappa; kappa ± 1.96·kappa_se is
     * an approximate 95 % confidence interval. NAN where kappa is NAN; 0 when the raters agree
     * on every item. */
    double kappa_se;
    /* [k*k] counts, row = rater a's class, column = rater b's class, over the n items
     * (scikit-learn's confusion_matrix(a, b, labels=range(k))). Owned by the struct. */
    uint64_t *confusion;
} sb_agree_pair;

/* Compare raters a[0..n) and b[0..n) (n may be 0; a and b may then be NULL). Fills *out,
 * whose confusion array the caller releases with sb_agree_pair_free. k must be at least 1.
 * Errors (SB_ERR_INVALID, *out left zeroed with confusion NULL): k < 1, NULL a/b/out, or a
 * label outside [0, k) other than SB_AGREE_MISSING — the message names the rater, the item
 * index and the label. SB_ERR_NOMEM when the confusion matrix cannot be allocated. */
SB_API sb_status sb_agree_pair_compute(const int32_t *a, const int32_t *b, size_t n, int k,
                                       sb_agree_pair *out, sb_error *err);

/* Free the confusion matrix and zero *p. Safe on a zeroed struct, after a failed compute,
 * twice, and on NULL. */
SB_API void sb_agree_pair_free(sb_agree_pair *p);

/* Many raters, as a table of counts: counts[i*k + c] (shape (n_items, k)) is how many raters
 * put item i in class c. Build it from per-rater labels with sb_agree_count_ratings. */

/* Turn an (n_items, n_raters) label matrix (labels[i*n_raters + r] = rater r's class for
 * item i, or SB_AGREE_MISSING) into counts[n_items*k], which the caller allocates; it is
 * overwritten. SB_ERR_INVALID naming the item, the rater and the label when a label is
 * outside [0, k) and not SB_AGREE_MISSING (counts is then unspecified), or when k < 1 or a
 * pointer is NULL while n_items > 0. */
SB_API sb_status sb_agree_count_ratings(const int32_t *labels, size_t n_items, size_t n_raters,
                                        int k, uint32_t *counts, sb_error *err);

/* Fleiss' kappa (Fleiss 1971) over the N items with at least 2 ratings; items with 0 or 1
 * rating cannot show agreement and are skipped. With m ratings per item and n_ic of them in
 * class c: P_i = (Σ_c n_ic² − m) / (m(m − 1)), p_c = Σ_i n_ic / (N m) and
 * kappa = (mean P_i − Σ_c p_c²) / (1 − Σ_c p_c²), as statsmodels' fleiss_kappa.
 * Every item used must have the same number of ratings m: Fleiss' chance model assumes it.
 * When an item differs, this returns SB_ERR_INVALID naming the first such item, its count and
 * that of the first item used. It does not fall back to the items with the most common count:
 * silently dropping items changes the sample being described. Krippendorff's alpha
 * (sb_agree_krippendorff_nominal) is the statistic for varying numbers of raters.
 * *kappa is NAN when no item has 2 or more ratings, or when every rating is the same class
 * (chance agreement 1). Other errors (SB_ERR_INVALID): k < 1, NULL kappa, NULL counts with
 * n_items > 0. On error *kappa is NAN. */
SB_API sb_status sb_agree_fleiss(const uint32_t *counts, size_t n_items, int k, double *kappa,
                                 sb_error *err);

/* Krippendorff's alpha for nominal data, from the coincidence matrix (Krippendorff 2011,
 * "Computing Krippendorff's Alpha-Reliability"): items may have any number of ratings; those
 * with fewer than 2 are not pairable and are skipped. With m_i ratings on item i, the
 * coincidences o_cc' = Σ_i n_ic (n_ic' − [c = c']) / (m_i − 1), n_c = Σ_c' o_cc' and
 * n = Σ_c n_c pairable values: alpha = 1 − D_o / D_e =
 * ((n − 1) Σ_c o_cc − Σ_c n_c (n_c − 1)) / (n (n − 1) − Σ_c n_c (n_c − 1)); *alpha is NAN when
 * fewer than 2 pairable ratings exist or all of them are one class (D_e = 0). Errors as for
 * sb_agree_fleiss; on error *alpha is NAN. */
SB_API sb_status sb_agree_krippendorff_nominal(const uint32_t *counts, size_t n_items, int k,
                                               double *alpha, sb_error *err);

SB_END_DECLS

#endif
