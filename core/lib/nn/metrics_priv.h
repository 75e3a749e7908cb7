/* core/lib/nn/metrics_priv.h — (internal) the classification formulas on a confusion matrix,
 * shared by sb_metrics_classify and the paired bootstrap (signif.c). */
#ifndef SBI_METRICS_PRIV_H
#define SBI_METRICS_PRIV_H

#include <serbench/metrics.h>

/* From cm (K,K), row = gold, column = predicted, holding at least one item: sets out->wa,
 * ua, macro_f1, weighted_f1, micro_f1, n and n_classes exactly as sb_metrics_classify
 * does; fills out->support, precision, recall and f1 ([K] each) too when out->support is
 * non-NULL (then all four must be). Allocates nothing; out->confusion is not touched. */
void sbi_metrics_from_confusion(const int64_t *cm, int K, sb_cls_metrics *out);

#endif
