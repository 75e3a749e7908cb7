/* core/lib/nn/metrics.c — classification metrics with scikit-learn's exact semantics
 * (checked against sklearn fixtures in tests/unit/nn), and mean ± sd over seeds.
 * docs/metrics.md gives the formulas. */
#include <serbench/metrics.h>

#include "metrics_priv.h"

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

/* The formulas, shared with the paired bootstrap (signif.c), which scores thousands of
 * resampled confusion matrices and must agree with sb_metrics_classify to the bit. */
void sbi_metrics_from_confusion(const int64_t *cm, int K, sb_cls_metrics *out)
{
    int64_t correct = 0, scored = 0;
    double ua_sum = 0.0, macro_sum = 0.0, weighted_sum = 0.0;
    int n_supported = 0, n_present = 0;
    for (int k = 0; k < K; k++) {
        int64_t tp = cm[(size_t)k * K + k], gold = 0, pred = 0;
        for (int j = 0; j < K; j++) {
            gold += cm[(size_t)k * K + j];
            pred += cm[(size_t)j * K + k];
        }
        correct += tp;
        scored += gold;
        /* zero_division = 0: an undefined ratio is 0 */
        double p = pred > 0 ? (double)tp / (double)pred : 0.0;
        double r = gold > 0 ? (double)tp / (double)gold : 0.0;
        double f = p + r > 0.0 ? 2.0 * p * r / (p + r) : 0.0;
        if (out->support) {
            out->support[k] = gold;
            out->precision[k] = p;
            out->recall[k] = r;
            out->f1[k] = f;
        }
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
    out->n_classes = K;
    out->n = (size_t)scored;
    out->wa = (double)correct / (double)scored;
    out->micro_f1 = out->wa;
    out->ua = ua_sum / n_supported; /* n_supported >= 1 because scored >= 1 */
    out->macro_f1 = macro_sum / n_present;
    out->weighted_f1 = weighted_sum / (double)scored;
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
    sbi_metrics_from_confusion(cm, K, out);
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

/* ---- regression ---------------------------------------------------------------------- */

/* Weighted F1 of a binary split (sklearn average='weighted', zero_division=0); t, p in {0,1}. */
static double binary_weighted_f1(int64_t c[2][2], size_t n)
{
    double f = 0.0;
    for (int k = 0; k < 2; k++) {
        int64_t tp = c[k][k], support = c[k][0] + c[k][1], predicted = c[0][k] + c[1][k];
        double f1 =
            support + predicted > 0 ? 2.0 * (double)tp / (double)(support + predicted) : 0.0;
        f += f1 * (double)support;
    }
    return n ? f / (double)n : 0.0;
}

sb_status sb_metrics_regress(const double *gold, const double *pred, size_t n, sb_reg_metrics *out,
                             sb_error *err)
{
    memset(out, 0, sizeof *out);
    double sg = 0, sp = 0, g_first = 0, p_first = 0;
    size_t m = 0;
    /* constancy is decided exactly: the rounding of a constant's computed mean leaves a
     * variance of ~1e-33, and so a meaningless r of ~1e-17 */
    int g_const = 1, p_const = 1;
    for (size_t i = 0; i < n; i++) {
        if (isnan(gold[i]))
            continue;
        if (!isfinite(pred[i]) || !isfinite(gold[i]))
            return sb_error_set(err, SB_ERR_INVALID, NULL,
                                "item %zu: prediction %g for gold %g is not a finite number", i,
                                pred[i], gold[i]);
        if (m == 0) {
            g_first = gold[i];
            p_first = pred[i];
        }
        g_const &= gold[i] == g_first;
        p_const &= pred[i] == p_first;
        sg += gold[i];
        sp += pred[i];
        m++;
    }
    if (m == 0)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "no item with a target value to score");
    double mg = sg / (double)m, mp = sp / (double)m;
    double abs_sum = 0, cov = 0, vg = 0, vp = 0;
    int64_t has0[2][2] = { { 0 } }, non0[2][2] = { { 0 } };
    size_t ok7 = 0, ok5 = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(gold[i]))
            continue;
        double g = gold[i], p = pred[i];
        abs_sum += fabs(p - g);
        cov += (g - mg) * (p - mp);
        vg += (g - mg) * (g - mg);
        vp += (p - mp) * (p - mp);
        has0[g >= 0][p >= 0]++;
        if (g != 0) {
            non0[g > 0][p > 0]++;
            out->n_non0++;
        }
        /* nearbyint rounds half to even in the default rounding mode, as numpy.round */
        ok7 += nearbyint(fmin(3.0, fmax(-3.0, g))) == nearbyint(fmin(3.0, fmax(-3.0, p)));
        ok5 += nearbyint(fmin(2.0, fmax(-2.0, g))) == nearbyint(fmin(2.0, fmax(-2.0, p)));
    }
    out->n = m;
    out->mae = abs_sum / (double)m;
    out->corr = !g_const && !p_const && vg > 0 && vp > 0 ? cov / sqrt(vg * vp) : NAN;
    out->acc2_has0 = (double)(has0[0][0] + has0[1][1]) / (double)m;
    out->f1_has0 = binary_weighted_f1(has0, m);
    out->acc2_non0 = out->n_non0 ? (double)(non0[0][0] + non0[1][1]) / (double)out->n_non0 : NAN;
    out->f1_non0 = out->n_non0 ? binary_weighted_f1(non0, out->n_non0) : NAN;
    out->acc7 = (double)ok7 / (double)m;
    out->acc5 = (double)ok5 / (double)m;
    return SB_OK;
}

static const char *const regress_names[] = { "mae",     "corr", "acc2_has0", "f1_has0", "acc2_non0",
                                             "f1_non0", "acc7", "acc5",      NULL };

const char *const *sb_metrics_regress_names(void)
{
    return regress_names;
}

int sb_metrics_regress_get(const sb_reg_metrics *m, const char *name, double *value)
{
    if (!m || !name || !value)
        return -1;
    const double v[] = { m->mae,       m->corr,    m->acc2_has0, m->f1_has0,
                         m->acc2_non0, m->f1_non0, m->acc7,      m->acc5 };
    for (size_t i = 0; regress_names[i]; i++)
        if (strcmp(regress_names[i], name) == 0) {
            *value = v[i];
            return 0;
        }
    return -1;
}
