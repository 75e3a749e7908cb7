/* core/lib/nn/layers.c — the element- and row-wise layers of the training library: layer
 * norm, exact GELU, inverted dropout and masked mean pooling, each a forward/backward pair
 * (nn_train.h).
 * Row statistics are accumulated in double in index order, so results do not depend on
 * threads or vector width. */
#include <serbench/nn_train.h>

#include <math.h>
#include <string.h>

/* ---- layer norm ------------------------------------------------------------------------ */

/* inp, out (N,C); weight, bias (C) or NULL; mean, rstd (N). Two passes (mean, then the
 * centred sum of squares) so a row with a large offset keeps its precision. */
void sb_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *weight, const float *bias, int N, int C, float eps)
{
    if (C <= 0)
        return;
    for (int n = 0; n < N; n++) {
        const float *x_n = inp + (size_t)n * C;
        float *out_n = out + (size_t)n * C;
        double s = 0.0;
        for (int c = 0; c < C; c++)
            s += x_n[c];
        double m = s / C, ss = 0.0;
        for (int c = 0; c < C; c++) {
            double d = x_n[c] - m;
            ss += d * d;
        }
        double rs = 1.0 / sqrt(ss / C + (double)eps);
        for (int c = 0; c < C; c++) {
            float xhat = (float)((x_n[c] - m) * rs);
            float w = weight ? weight[c] : 1.0f, b = bias ? bias[c] : 0.0f;
            out_n[c] = xhat * w + b;
        }
        mean[n] = (float)m;
        rstd[n] = (float)rs;
    }
}

/* With xhat = (x - mean)·rstd and g = dout·weight:
 *   dinp = rstd · (g - mean_c(g) - xhat · mean_c(g·xhat)),
 *   dweight = Σ_n dout·xhat, dbias = Σ_n dout. */
void sb_nn_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const float *mean,
                              const float *rstd, int N, int C)
{
    if (C <= 0)
        return;
    for (int n = 0; n < N; n++) {
        const float *x_n = inp + (size_t)n * C, *dout_n = dout + (size_t)n * C;
        const float m = mean[n], rs = rstd[n];
        double sum_g = 0.0, sum_gx = 0.0;
        for (int c = 0; c < C; c++) {
            float xhat = (x_n[c] - m) * rs;
            float g = dout_n[c] * (weight ? weight[c] : 1.0f);
            sum_g += g;
            sum_gx += (double)g * xhat;
            if (dweight)
                dweight[c] += dout_n[c] * xhat;
            if (dbias)
                dbias[c] += dout_n[c];
        }
        if (!dinp)
            continue;
        const float mean_g = (float)(sum_g / C), mean_gx = (float)(sum_gx / C);
        float *dinp_n = dinp + (size_t)n * C;
        for (int c = 0; c < C; c++) {
            float xhat = (x_n[c] - m) * rs;
            float g = dout_n[c] * (weight ? weight[c] : 1.0f);
            dinp_n[c] += rs * (g - mean_g - xhat * mean_gx);
        }
    }
}

/* ---- GELU ------------------------------------------------------------------------------ */

#define SQRT1_2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

void sb_nn_gelu_forward(float *out, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * SQRT1_2));
    }
}

void sb_nn_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * SQRT1_2));
        float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

/* ---- dropout --------------------------------------------------------------------------- */

void sb_nn_dropout_forward(float *out, uint8_t *mask, const float *inp, float p, size_t n,
                           sb_rng *rng)
{
    if (!(p > 0.0f)) { /* p <= 0 (or NaN): identity */
        if (out != inp)
            memmove(out, inp, n * sizeof *out);
        memset(mask, 1, n);
        return;
    }
    if (p >= 1.0f) {
        memset(out, 0, n * sizeof *out);
        memset(mask, 0, n);
        return;
    }
    const float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) {
        int keep = sb_rng_uniform(rng) >= (double)p;
        mask[i] = (uint8_t)keep;
        out[i] = keep ? inp[i] * scale : 0.0f;
    }
}

void sb_nn_dropout_backward(float *dinp, const float *dout, const uint8_t *mask, float p, size_t n)
{
    if (p >= 1.0f)
        return; /* everything was dropped */
    const float scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    for (size_t i = 0; i < n; i++)
        if (mask[i])
            dinp[i] += dout[i] * scale;
}

/* ---- masked mean pooling --------------------------------------------------------------- */

static int real_steps(const uint8_t *mask_b, int T)
{
    int n = 0;
    for (int t = 0; t < T; t++)
        n += !mask_b || mask_b[t];
    return n;
}

/* inp (B,T,C), out (B,C); the sum runs in double over t in order. */
void sb_nn_meanpool_forward(float *out, const float *inp, const uint8_t *mask, int B, int T, int C)
{
    for (int b = 0; b < B; b++) {
        const uint8_t *mask_b = mask ? mask + (size_t)b * T : NULL;
        const int n = real_steps(mask_b, T);
        float *out_b = out + (size_t)b * C;
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int t = 0; t < T; t++)
                if (!mask_b || mask_b[t])
                    s += inp[((size_t)b * T + t) * C + c];
            out_b[c] = n ? (float)(s / n) : 0.0f;
        }
    }
}

void sb_nn_meanpool_backward(float *dinp, const float *dout, const uint8_t *mask, int B, int T,
                             int C)
{
    for (int b = 0; b < B; b++) {
        const uint8_t *mask_b = mask ? mask + (size_t)b * T : NULL;
        const int n = real_steps(mask_b, T);
        if (!n)
            continue;
        const float inv = 1.0f / (float)n;
        const float *dout_b = dout + (size_t)b * C;
        for (int t = 0; t < T; t++) {
            if (mask_b && !mask_b[t])
                continue;
            float *dinp_bt = dinp + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++)
                dinp_bt[c] += dout_b[c] * inv;
        }
    }
}
