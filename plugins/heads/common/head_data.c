/* plugins/heads/common/head_data.c — see head_data.h. */
#include "head_data.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sb_status hd_check_data(const char *who, int L, int D, int K, const sb_head_data *d,
                        const char *split, sb_error *err)
{
    if (d->n == 0)
        return SB_OK;
    if (d->n_layers != L || d->dim != D)
        return sb_error_set(err, SB_ERR_INVALID, who,
                            "%s features are %d layers x %d dims, but the head was created for "
                            "%d x %d",
                            split, d->n_layers, d->dim, L, D);
    if (!d->x)
        return sb_error_set(err, SB_ERR_INVALID, who, "%s: no features", split);
    if (K == 0 && d->value) {
        for (size_t i = 0; i < d->n; i++)
            if (isinf(d->value[i]))
                return sb_error_set(err, SB_ERR_INVALID,
                                    d->utt_id && d->utt_id[i] ? d->utt_id[i] : split,
                                    "%s target value %g is not finite (NAN marks a row "
                                    "without a target)",
                                    split, d->value[i]);
    } else if (K > 0 && d->y)
        for (size_t i = 0; i < d->n; i++)
            if (d->y[i] >= K)
                return sb_error_set(
                    err, SB_ERR_INVALID, d->utt_id && d->utt_id[i] ? d->utt_id[i] : split,
                    "%s label %d is outside the %d classes", split, (int)d->y[i], K);
    return SB_OK;
}

sb_status hd_labelled_rows(const char *who, const sb_head_data *d, size_t **out, size_t *n,
                           sb_error *err)
{
    *out = NULL;
    *n = 0;
    const int regression = d->n_classes == 0;
    if (d->n == 0 || (regression ? !d->value : !d->y))
        return SB_OK;
    size_t *rows = malloc(d->n * sizeof *rows);
    if (!rows)
        return sb_error_set(err, SB_ERR_NOMEM, who, "out of memory");
    for (size_t i = 0; i < d->n; i++)
        if (regression ? isfinite(d->value[i]) : d->y[i] >= 0)
            rows[(*n)++] = i;
    if (*n == 0) {
        free(rows);
        rows = NULL;
    }
    *out = rows;
    return SB_OK;
}

sb_status hd_check_finite(const char *who, int L, int D, const sb_head_data *d, const size_t *rows,
                          size_t n, const char *split, sb_error *err)
{
    const size_t LD = (size_t)L * (size_t)D;
    for (size_t r = 0; r < n; r++) {
        const float *x_r = d->x + rows[r] * LD;
        for (size_t i = 0; i < LD; i++)
            if (!isfinite(x_r[i]))
                return sb_error_set(err, SB_ERR_INVALID,
                                    d->utt_id && d->utt_id[rows[r]] ? d->utt_id[rows[r]] : who,
                                    "%s%sfeature %zu of layer %zu is not finite (%g); re-extract "
                                    "the features of this utterance",
                                    split ? split : "", split ? " " : "", i % (size_t)D,
                                    i / (size_t)D, (double)x_r[i]);
    }
    return SB_OK;
}

sb_status hd_fit_stats(const char *who, int normalize, int L, int D, const sb_head_data *d,
                       const size_t *rows, size_t n, float *mu, float *inv_sd, sb_error *err)
{
    const size_t LD = (size_t)L * (size_t)D;
    if (!normalize) {
        for (size_t i = 0; i < LD; i++) {
            mu[i] = 0.0f;
            inv_sd[i] = 1.0f;
        }
        return SB_OK;
    }
    double *sum = calloc(LD, sizeof *sum), *ss = calloc(LD, sizeof *ss);
    if (!sum || !ss) {
        free(sum);
        free(ss);
        return sb_error_set(err, SB_ERR_NOMEM, who, "out of memory");
    }
    for (size_t r = 0; r < n; r++) {
        const float *x_r = d->x + rows[r] * LD;
        for (size_t i = 0; i < LD; i++)
            sum[i] += x_r[i];
    }
    for (size_t i = 0; i < LD; i++)
        sum[i] /= (double)n;
    for (size_t r = 0; r < n; r++) {
        const float *x_r = d->x + rows[r] * LD;
        for (size_t i = 0; i < LD; i++) {
            double dv = x_r[i] - sum[i];
            ss[i] += dv * dv;
        }
    }
    for (size_t i = 0; i < LD; i++) {
        double sd = sqrt(ss[i] / (double)n);
        mu[i] = (float)sum[i];
        inv_sd[i] = sd > 1e-8 ? (float)(1.0 / sd) : 1.0f;
    }
    free(sum);
    free(ss);
    return SB_OK;
}

void hd_class_weights(int balanced, int K, const sb_head_data *d, const size_t *rows, size_t n,
                      float *w)
{
    for (int k = 0; k < K; k++)
        w[k] = 1.0f;
    if (!balanced)
        return;
    size_t *count = calloc((size_t)K, sizeof *count);
    if (!count)
        return; /* keeps uniform weights; not worth failing the run over */
    for (size_t r = 0; r < n; r++)
        count[d->y[rows[r]]]++;
    int present = 0;
    for (int k = 0; k < K; k++)
        present += count[k] > 0;
    for (int k = 0; k < K; k++)
        w[k] = count[k] ? (float)((double)n / ((double)present * (double)count[k])) : 0.0f;
    free(count);
}

void hd_layer_weights(int learn, const float *a, int L, float *w)
{
    if (learn)
        sb_nn_softmax_forward(w, a, 1, L);
    else
        for (int l = 0; l < L; l++)
            w[l] = 1.0f / (float)L;
}

void hd_mix_forward(float *zbar, const float *z, const float *w, int B, int L, int D)
{
    for (int b = 0; b < B; b++) {
        const float *z_b = z + (size_t)b * L * D;
        float *zbar_b = zbar + (size_t)b * D;
        for (int d = 0; d < D; d++)
            zbar_b[d] = 0.0f;
        for (int l = 0; l < L; l++) {
            const float *z_bl = z_b + (size_t)l * D;
            float w_l = w[l];
            for (int d = 0; d < D; d++)
                zbar_b[d] += w_l * z_bl[d];
        }
    }
}

void hd_mix_backward(float *da, double *dw, const float *dzbar, const float *z, const float *w,
                     int B, int L, int D)
{
    double dw_mean = 0.0;
    for (int l = 0; l < L; l++)
        dw[l] = 0.0;
    for (int b = 0; b < B; b++) {
        const float *dzbar_b = dzbar + (size_t)b * D;
        for (int l = 0; l < L; l++) {
            const float *z_bl = z + ((size_t)b * L + l) * D;
            double s = 0.0;
            for (int d = 0; d < D; d++)
                s += (double)dzbar_b[d] * z_bl[d];
            dw[l] += s;
        }
    }
    for (int l = 0; l < L; l++)
        dw_mean += w[l] * dw[l];
    for (int l = 0; l < L; l++)
        da[l] += (float)(w[l] * (dw[l] - dw_mean));
}

void hd_gather(int L, int D, const float *mu, const float *inv_sd, const sb_head_data *d,
               const size_t *rows, size_t first, int B, float *zb, int32_t *yb)
{
    const size_t LD = (size_t)L * (size_t)D;
    for (int b = 0; b < B; b++) {
        size_t r = rows ? rows[b] : first + (size_t)b;
        const float *x_r = d->x + r * LD;
        float *z_b = zb + (size_t)b * LD;
        for (size_t i = 0; i < LD; i++)
            z_b[i] = (x_r[i] - mu[i]) * inv_sd[i];
        yb[b] = d->y ? d->y[r] : -1;
    }
}

int hd_argmax(const float *p, int K)
{
    int best = 0;
    for (int k = 1; k < K; k++)
        if (p[k] > p[best])
            best = k;
    return best;
}

sb_status hd_check_one_input(const char *head, const sb_head_data *d, sb_error *err)
{
    if (d->struct_size < offsetof(sb_head_data, inputs) + sizeof d->inputs || d->n_inputs <= 1 ||
        !d->inputs)
        return SB_OK;
    char names[256] = "";
    size_t used = 0;
    for (int i = 0; i < d->n_inputs && used + 1 < sizeof names; i++) {
        const char *nm = d->inputs[i].name ? d->inputs[i].name : "?";
        int w = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", nm);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return sb_error_set(err, SB_ERR_CONFIG, "experiment.encoder",
                        "the %s head reads one encoder; experiment.encoder lists %d (%s): use "
                        "the hierarchical head to fuse them, or list one",
                        head, d->n_inputs, names);
}

void hd_gather_values(const sb_head_data *d, const size_t *rows, size_t first, int B, float *vb)
{
    for (int b = 0; b < B; b++) {
        size_t r = rows ? rows[b] : first + (size_t)b;
        vb[b] = d->value ? (float)d->value[r] : NAN;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double hd_target_center(int median, const sb_head_data *d, const size_t *rows, size_t n)
{
    if (n == 0 || !d->value)
        return 0.0;
    if (!median) {
        double s = 0.0;
        for (size_t r = 0; r < n; r++)
            s += d->value[rows[r]];
        return s / (double)n;
    }
    double *v = malloc(n * sizeof *v);
    if (!v)
        return hd_target_center(0, d, rows, n);
    for (size_t r = 0; r < n; r++)
        v[r] = d->value[rows[r]];
    qsort(v, n, sizeof *v, cmp_double);
    double m = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    free(v);
    return m;
}
