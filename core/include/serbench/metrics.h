/* serbench/metrics.h — classification metrics with scikit-learn's definitions.
 *
 * For K classes and n items with gold y and prediction p (docs/metrics.md has the
 * formulas):
 *   wa          accuracy = #(p == y) / n
 *   ua          mean recall over classes with support > 0 (sklearn balanced_accuracy_score)
 *   macro_f1    mean F1 over classes present in y or p (sklearn f1_score average='macro',
 *               zero_division=0)
 *   weighted_f1 F1 averaged with weights = support (sklearn average='weighted')
 *   micro_f1    equals wa for single-label classification
 * Per-class precision/recall/F1 are 0 where undefined (zero_division=0). Items with y < 0
 * are skipped. */
#ifndef SERBENCH_METRICS_H
#define SERBENCH_METRICS_H

#include "common.h"
#include "error.h"

SB_BEGIN_DECLS

typedef struct sb_cls_metrics {
    int n_classes;
    size_t n; /* items scored */
    double wa, ua, macro_f1, weighted_f1, micro_f1;
    double *precision;  /* [K] */
    double *recall;     /* [K] */
    double *f1;         /* [K] */
    int64_t *support;   /* [K] gold count per class */
    int64_t *confusion; /* [K*K], row = gold, column = predicted */
} sb_cls_metrics;

/* Compute all of the above. Predictions outside [0,K) are an error (SB_ERR_INVALID).
 * n == 0 (or no item with a gold label) gives SB_ERR_INVALID: nothing to score.
 * Free the arrays with sb_cls_metrics_free. */
SB_API sb_status sb_metrics_classify(const int32_t *y_true, const int32_t *y_pred, size_t n,
                                     int n_classes, sb_cls_metrics *out, sb_error *err);
SB_API void sb_cls_metrics_free(sb_cls_metrics *m);

/* Look a summary metric up by name ("wa", "ua", "macro_f1", "weighted_f1", "micro_f1"; the
 * aliases "acc" = wa, "wf1" = weighted_f1, "mf1" = macro_f1). Returns 0 and sets *value, or
 * -1 for an unknown name. */
SB_API int sb_metrics_get(const sb_cls_metrics *m, const char *name, double *value);
/* The canonical names, NULL-terminated. */
SB_API const char *const *sb_metrics_names(void);

/* Regression metrics for a continuous target in [-3, 3] (CMU-MOSI sentiment), with the
 * definitions of the MOSI literature's reference code (MMSA), docs/metrics.md:
 *   mae        mean |pred - gold|
 *   corr       Pearson r (NAN when either side is constant)
 *   acc2_has0  binary accuracy, negative (< 0) vs non-negative (>= 0), over all items
 *   f1_has0    weighted F1 of the same binary split
 *   acc2_non0  binary accuracy, negative (< 0) vs positive (> 0), over items with gold != 0
 *              (predictions of exactly 0 count as negative)
 *   f1_non0    weighted F1 of that split
 *   acc7       accuracy of round-half-to-even(clip(x, -3, 3)) (7 classes)
 *   acc5       accuracy of round-half-to-even(clip(x, -2, 2)) (5 classes)
 * Items with a NAN gold are skipped; n counts the rest. */
typedef struct sb_reg_metrics {
    size_t n, n_non0;
    double mae, corr, acc2_has0, f1_has0, acc2_non0, f1_non0, acc7, acc5;
} sb_reg_metrics;

/* n == 0 (no item with a finite gold) or a non-finite prediction: SB_ERR_INVALID. */
SB_API sb_status sb_metrics_regress(const double *gold, const double *pred, size_t n,
                                    sb_reg_metrics *out, sb_error *err);
/* By name (the names above); 0 and *value, or -1 for an unknown name. */
SB_API int sb_metrics_regress_get(const sb_reg_metrics *m, const char *name, double *value);
/* The canonical regression metric names, NULL-terminated. */
SB_API const char *const *sb_metrics_regress_names(void);

/* Mean and sample standard deviation (n-1; 0 when n < 2) of x[0..n). */
SB_API void sb_mean_sd(const double *x, size_t n, double *mean, double *sd);

SB_END_DECLS

#endif
