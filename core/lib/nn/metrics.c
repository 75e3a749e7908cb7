/* core/lib/nn/metrics.c — classification metrics with scikit-learn's exact semantics
 * (checked against sklearn fixtures in tests/unit/nn), and mean ± sd over seeds.
 * docs/metrics.md gives the formulas. */
#include <serbench/metrics.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sb_cls_metrics_free(sb_cls_metrics *m)
{
    if (!m)
        return;
    free(m->precision);
    free(m->recall);
    free(m->f1);
    free(m->support);
    free(m->confusion);
    memset(m, 0, sizeof *m);
}

sb_status sb_metrics_classify(const int32_t *y_true, const int32_t *y_pred, size_t n, int n_classes,
                              sb_cls_metrics *out, sb_error *err)
{
    if (!out)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "metrics: NULL output");
    memset(out, 0, sizeof *out);
    if (n_classes < 1)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "metrics: %d classes; need at least 1",
                            n_classes);
    if (n > 0 && (!y_true || !y_pred))
        return sb_error_set(err, SB_ERR_INVALID, NULL, "metrics: NULL labels");
    const int K = n_classes;
    size_t scored = 0;
    for (size_t i = 0; i < n; i++) {
        if (y_true[i] < 0)
            continue;
        if (y_true[i] >= K)
            return sb_error_set(err, SB_ERR_INVALID, NULL,
                                "metrics: gold label %d of item %zu is outside [0, %d)",
                                (int)y_true[i], i, K);
        if (y_pred[i] < 0 || y_pred[i] >= K)
            return sb_error_set(err, SB_ERR_INVALID, NULL,
                                "metrics: prediction %d of item %zu is outside [0, %d)",
                                (int)y_pred[i], i, K);
        scored++;
    }
    if (scored == 0)
        return sb_error_set(err, SB_ERR_INVALID, NULL,
                            "metrics: no item with a gold label (n = %zu); nothing to score", n);

    out->n_classes = K;
    out->n = scored;
    out->precision = calloc((size_t)K, sizeof *out->precision);
    out->recall = calloc((size_t)K, sizeof *out->recall);
    out->f1 = calloc((size_t)K, sizeof *out->f1);
    out->support = calloc((size_t)K, sizeof *out->support);
    out->confusion = calloc((size_t)K * (size_t)K, sizeof *out->confusion);
    if (!out->precision || !out->recall || !out->f1 || !out->support || !out->confusion) {
        sb_cls_metrics_free(out);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "metrics: out of memory");
    }
    int64_t *cm = out->confusion; /* (K,K): row = gold, column = predicted */
    for (size_t i = 0; i < n; i++)
        if (y_true[i] >= 0)
            cm[(size_t)y_true[i] * K + y_pred[i]]++;

    int64_t correct = 0;
    double ua_sum = 0.0, macro_sum = 0.0, weighted_sum = 0.0;
    int n_supported = 0, n_present = 0;
    for (int k = 0; k < K; k++) {
        int64_t tp = cm[(size_t)k * K + k], gold = 0, pred = 0;
        for (int j = 0; j < K; j++) {
            gold += cm[(size_t)k * K + j];
            pred += cm[(size_t)j * K + k];
        }
        correct += tp;
        out->support[k] = gold;
        /* zero_division = 0: an undefined ratio is 0 */
        double p = pred > 0 ? (double)tp / (double)pred : 0.0;
        double r = gold > 0 ? (double)tp / (double)gold : 0.0;
        double f = p + r > 0.0 ? 2.0 * p * r / (p + r) : 0.0;
        out->precision[k] = p;
        out->recall[k] = r;
        out->f1[k] = f;
        if (gold > 0) {
            ua_sum += r; /* balanced accuracy drops classes without support */
            n_supported++;
        }
        if (gold > 0 || pred > 0) {
            macro_sum += f; /* sklearn's labels = classes seen in y_true or y_pred */
            n_present++;
        }
        weighted_sum += f * (double)gold;
    }
    out->wa = (double)correct / (double)scored;
    out->micro_f1 = out->wa;
    out->ua = ua_sum / n_supported; /* n_supported >= 1 because scored >= 1 */
    out->macro_f1 = macro_sum / n_present;
    out->weighted_f1 = weighted_sum / (double)scored;
    return SB_OK;
}

static const char *const metric_names[] = {
    "wa", "ua", "macro_f1", "weighted_f1", "micro_f1", NULL
};

const char *const *sb_metrics_names(void)
{
    return metric_names;
}

int sb_metrics_get(const sb_cls_metrics *m, const char *name, double *value)
{
    if (!m || !name || !value)
        return -1;
    static const struct {
        const char *name;
        size_t offset;
    } table[] = {
        { "wa", offsetof(sb_cls_metrics, wa) },
        { "acc", offsetof(sb_cls_metrics, wa) },
        { "ua", offsetof(sb_cls_metrics, ua) },
        { "macro_f1", offsetof(sb_cls_metrics, macro_f1) },
        { "mf1", offsetof(sb_cls_metrics, macro_f1) },
        { "weighted_f1", offsetof(sb_cls_metrics, weighted_f1) },
        { "wf1", offsetof(sb_cls_metrics, weighted_f1) },
        { "micro_f1", offsetof(sb_cls_metrics, micro_f1) },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0) {
            *value = *(const double *)((const char *)m + table[i].offset);
            return 0;
        }
    return -1;
}

/* Two passes (mean, then squared deviations) for accuracy on values of similar size. */
void sb_mean_sd(const double *x, size_t n, double *mean, double *sd)
{
    double mu = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++)
        mu += x[i];
    mu = n ? mu / (double)n : NAN;
    for (size_t i = 0; n >= 2 && i < n; i++)
        ss += (x[i] - mu) * (x[i] - mu);
    if (mean)
        *mean = mu;
    if (sd)
        *sd = n >= 2 ? sqrt(ss / (double)(n - 1)) : 0.0;
}
