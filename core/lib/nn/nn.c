/* core/lib/nn/nn.c — the first layers of serbench's numeric core: linear (GEMM through
 * cblas, with a loop reference beside it), softmax (forward and backward), weighted
 * cross-entropy and AdamW. The rest of the training library is in nn_train.h.
 * Conventions are those of nn.h: outputs first, backward accumulates into d*. */
#include <serbench/nn.h>

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* ---- linear -------------------------------------------------------------------------- */

/* inp is (B,C), weight is (OC,C), bias is (OC) or NULL; out is (B,OC). */
void sb_nn_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                          int B, int C, int OC)
{
    if (B <= 0 || OC <= 0)
        return;
    for (int b = 0; b < B; b++) {
        float *out_b = out + (size_t)b * OC;
        if (bias)
            memcpy(out_b, bias, (size_t)OC * sizeof *out_b);
        else
            memset(out_b, 0, (size_t)OC * sizeof *out_b);
    }
    if (C <= 0)
        return; /* BLAS rejects lda = 0; the product of empty rows is 0 */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, C, 1.0f, inp, C, weight, C, 1.0f,
                out, OC);
}

/* The same with loops, accumulating each dot product in float in index order. */
void sb_nn_linear_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                              int B, int C, int OC)
{
    for (int b = 0; b < B; b++) {
        const float *inp_b = inp + (size_t)b * C;
        float *out_b = out + (size_t)b * OC;
        for (int o = 0; o < OC; o++) {
            const float *w_o = weight + (size_t)o * C;
            float val = bias ? bias[o] : 0.0f;
            for (int c = 0; c < C; c++)
                val += inp_b[c] * w_o[c];
            out_b[o] = val;
        }
    }
}

/* dout is (B,OC), inp is (B,C), weight is (OC,C); dinp (B,C), dweight (OC,C), dbias (OC). */
void sb_nn_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int B, int C, int OC)
{
    if (B <= 0 || OC <= 0)
        return;
    if (dbias)
        for (int b = 0; b < B; b++) {
            const float *dout_b = dout + (size_t)b * OC;
            for (int o = 0; o < OC; o++)
                dbias[o] += dout_b[o];
        }
    if (C <= 0)
        return;
    if (dinp) /* dinp (B,C) += dout (B,OC) · weight (OC,C) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC, 1.0f, dout, OC, weight, C,
                    1.0f, dinp, C);
    /* dweight (OC,C) += dout^T (OC,B) · inp (B,C) */
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B, 1.0f, dout, OC, inp, C, 1.0f,
                    dweight, C);
}

/* ---- softmax ------------------------------------------------------------------------- */

/* logits is (B,K), probs is (B,K). The max is subtracted first so exp never overflows. */
void sb_nn_softmax_forward(float *probs, const float *logits, int B, int K)
{
    for (int b = 0; b < B; b++) {
        const float *x_b = logits + (size_t)b * K;
        float *p_b = probs + (size_t)b * K;
        float maxv = -INFINITY;
        for (int k = 0; k < K; k++)
            if (x_b[k] > maxv)
                maxv = x_b[k];
        double sum = 0.0;
        for (int k = 0; k < K; k++) {
            p_b[k] = expf(x_b[k] - maxv);
            sum += p_b[k];
        }
        float inv = (float)(1.0 / sum);
        for (int k = 0; k < K; k++)
            p_b[k] *= inv;
    }
}

/* probs, dprobs, dlogits are (B,K); the row's dot product is accumulated in double. */
void sb_nn_softmax_backward(float *dlogits, const float *dprobs, const float *probs, int B, int K)
{
    for (int b = 0; b < B; b++) {
        const float *p_b = probs + (size_t)b * K, *dp_b = dprobs + (size_t)b * K;
        float *d_b = dlogits + (size_t)b * K;
        double dot = 0.0;
        for (int k = 0; k < K; k++)
            dot += (double)p_b[k] * dp_b[k];
        for (int k = 0; k < K; k++)
            d_b[k] += p_b[k] * (dp_b[k] - (float)dot);
    }
}

/* ---- cross-entropy ------------------------------------------------------------------- */

/* A target outside [0,K) would index past the row: like y < 0, it counts as "no target".
 * Callers validate labels before training, so this only keeps a bug from reading wild. */
static int has_target(int32_t y, int K)
{
    return y >= 0 && y < K;
}

/* probs is (B,K), y is (B), class_w is (K) or NULL; losses is (B). */
double sb_nn_xent_forward(float *losses, const float *probs, const int32_t *y, const float *class_w,
                          int B, int K)
{
    double sum = 0.0, wsum = 0.0;
    for (int b = 0; b < B; b++) {
        if (!has_target(y[b], K)) {
            losses[b] = 0.0f;
            continue;
        }
        float w = class_w ? class_w[y[b]] : 1.0f;
        /* probs can underflow to 0 for a confident wrong answer; clamp so the loss stays
         * finite (at most -log(FLT_MIN) ≈ 87.3 per row). */
        float p = probs[(size_t)b * K + y[b]];
        losses[b] = -w * logf(p > FLT_MIN ? p : FLT_MIN);
        sum += losses[b];
        wsum += w;
    }
    return wsum > 0.0 ? sum / wsum : 0.0;
}

/* dlogits is (B,K): d(mean loss)/d logits = w[y_b] / W · (probs[b,:] - onehot(y_b)), with
 * W = Σ_b w[y_b] over rows with a target (PyTorch's weighted 'mean' reduction). */
void sb_nn_xent_backward(float *dlogits, const float *probs, const int32_t *y, const float *class_w,
                         int B, int K)
{
    double wsum = 0.0;
    for (int b = 0; b < B; b++)
        if (has_target(y[b], K))
            wsum += class_w ? class_w[y[b]] : 1.0f;
    if (wsum <= 0.0)
        return;
    for (int b = 0; b < B; b++) {
        if (!has_target(y[b], K))
            continue;
        float scale = (float)((class_w ? class_w[y[b]] : 1.0f) / wsum);
        const float *p_b = probs + (size_t)b * K;
        float *d_b = dlogits + (size_t)b * K;
        for (int k = 0; k < K; k++) {
            float indicator = k == y[b] ? 1.0f : 0.0f;
            d_b[k] += scale * (p_b[k] - indicator);
        }
    }
}

/* ---- AdamW --------------------------------------------------------------------------- */

/* PyTorch's AdamW: p ← p − lr·wd·p − lr · m̂ / (√v̂ + eps), with m̂ = m / (1 − β1^t) and
 * v̂ = v / (1 − β2^t); the decay uses the parameter before this step's update. */
void sb_adamw_step(float *params, const float *grads, float *m, float *v, size_t n, int t, float lr,
                   float beta1, float beta2, float eps, float weight_decay)
{
    float bc1 = (float)(1.0 - pow((double)beta1, (double)t));
    float bc2 = (float)(1.0 - pow((double)beta2, (double)t));
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1;
        float vhat = vi / bc2;
        params[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * params[i]);
    }
}
