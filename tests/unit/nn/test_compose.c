/* tests/unit/nn/test_compose.c — the layers composed the way a head composes them (the
 * worked example of docs/nn.md): a padded batch of sequences through a BiGRU, a pre-LN
 * transformer layer (masked self-attention, feed-forward with GELU and dropout, residuals),
 * masked mean pooling and a linear classifier with weighted cross-entropy. Parameters live
 * in one allocation with named views; the whole backward is checked against float central
 * differences of the whole forward (eps 1e-3, 1 % relative), and padded steps are shown
 * to be inert. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

#include "nn_testutil.h"

enum { B = 3, T = 5, CIN = 6, H = 4, C = 2 * H, NH = 2, F = 16, K = 3 };

/* ---- parameters: one allocation, named views ------------------------------------------- */

typedef struct params {
    float *gru_f[4], *gru_b[4];                   /* w_ih (3H,CIN), w_hh (3H,H), b_ih, b_hh (3H) */
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;         /* (C) */
    float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo; /* (C,C), (C) */
    float *w1, *b1, *w2, *b2;                     /* (F,C), (F), (C,F), (C) */
    float *wc, *bc;                               /* (K,C), (K) */
} params;

/* Lays the views out over base; returns the count of floats. */
static size_t params_bind(params *p, float *base)
{
    size_t off = 0;
#define TAKE(ptr, n)                                                                               \
    do {                                                                                           \
        (ptr) = base ? base + off : NULL;                                                          \
        off += (size_t)(n);                                                                        \
    } while (0)
    for (int d = 0; d < 2; d++) {
        float **g = d ? p->gru_b : p->gru_f;
        TAKE(g[0], 3 * H * CIN);
        TAKE(g[1], 3 * H * H);
        TAKE(g[2], 3 * H);
        TAKE(g[3], 3 * H);
    }
    TAKE(p->ln1_w, C);
    TAKE(p->ln1_b, C);
    TAKE(p->ln2_w, C);
    TAKE(p->ln2_b, C);
    TAKE(p->wq, C * C);
    TAKE(p->bq, C);
    TAKE(p->wk, C * C);
    TAKE(p->bk, C);
    TAKE(p->wv, C * C);
    TAKE(p->bv, C);
    TAKE(p->wo, C * C);
    TAKE(p->bo, C);
    TAKE(p->w1, F * C);
    TAKE(p->b1, F);
    TAKE(p->w2, C * F);
    TAKE(p->b2, C);
    TAKE(p->wc, K * C);
    TAKE(p->bc, K);
#undef TAKE
    return off;
}

static sb_nn_gru_weights gru_w(float *const v[4])
{
    return (sb_nn_gru_weights){ v[0], v[1], v[2], v[3] };
}

static sb_nn_gru_grads gru_g(float *const v[4])
{
    return (sb_nn_gru_grads){ v[0], v[1], v[2], v[3] };
}

static sb_nn_mha_weights mha_w(const params *p)
{
    return (sb_nn_mha_weights){ p->wq, p->bq, p->wk, p->bk, p->wv, p->bv, p->wo, p->bo };
}

static sb_nn_mha_grads mha_g(const params *p)
{
    return (sb_nn_mha_grads){ p->wq, p->bq, p->wk, p->bk, p->wv, p->bv, p->wo, p->bo };
}

/* ---- activations saved by the forward, and backward buffers ---------------------------- */

#define BTC (B * T * C)
#define BTF (B * T * F)

typedef struct acts {
    float gru[B * T * C], gru_acts[2 * B * T * 5 * H];
    float ln1[BTC], mean1[B * T], rstd1[B * T];
    float mha_out[BTC], mha[2 * BTC + 2 * BTC + B * NH * T * T];
    float x1[BTC], ln2[BTC], mean2[B * T], rstd2[B * T];
    float ff1[BTF], ff1g[BTF], ff1d[BTF];
    uint8_t drop_mask[BTF];
    float ff2[BTC], y[BTC], pooled[B * C], logits[B * K], probs[B * K], losses[B];
} acts;

typedef struct grads_tmp { /* input gradients of each stage, zeroed per backward */
    float dlogits[B * K], dpooled[B * C], dy[BTC], dff1d[BTF], dff1g[BTF], dff1[BTF];
    float dln2[BTC], dx1[BTC], dln1[BTC], dgru[BTC], dx[B * T * CIN];
} grads_tmp;

static const float DROP = 0.1f;
static const float CLASS_W[K] = { 1.0f, 2.0f, 0.5f };

/* scratch big enough for the GRU's and the attention block's */
static float scratch[6 * B * T * H + 4 * B * H + 3 * BTC + 2 * BTC + T * T];

/* The forward; returns the mean weighted cross-entropy. The dropout stream is reseeded
 * each call so the mask is the same in every call (what finite differences need). */
static double forward(acts *a, const params *p, const float *x, const uint8_t *mask,
                      const int32_t *y)
{
    sb_rng rng;
    sb_rng_seed(&rng, 99, 3);
    sb_nn_gru_weights wf = gru_w(p->gru_f), wb = gru_w(p->gru_b);
    sb_nn_mha_weights wm = mha_w(p);
    sb_nn_bigru_forward(a->gru, a->gru_acts, scratch, x, mask, &wf, &wb, B, T, CIN, H);
    /* pre-LN transformer layer: x1 = g + MHA(LN(g)); y = x1 + FFN(LN(x1)) */
    sb_nn_layernorm_forward(a->ln1, a->mean1, a->rstd1, a->gru, p->ln1_w, p->ln1_b, B * T, C,
                            1e-5f);
    sb_nn_mha_forward(a->mha_out, a->mha, a->ln1, a->ln1, mask, mask, &wm, B, T, T, C, C, C, NH, 0);
    for (int i = 0; i < BTC; i++)
        a->x1[i] = a->gru[i] + a->mha_out[i];
    sb_nn_layernorm_forward(a->ln2, a->mean2, a->rstd2, a->x1, p->ln2_w, p->ln2_b, B * T, C, 1e-5f);
    sb_nn_linear_forward(a->ff1, a->ln2, p->w1, p->b1, B * T, C, F);
    sb_nn_gelu_forward(a->ff1g, a->ff1, BTF);
    sb_nn_dropout_forward(a->ff1d, a->drop_mask, a->ff1g, DROP, BTF, &rng);
    sb_nn_linear_forward(a->ff2, a->ff1d, p->w2, p->b2, B * T, F, C);
    for (int i = 0; i < BTC; i++)
        a->y[i] = a->x1[i] + a->ff2[i];
    sb_nn_meanpool_forward(a->pooled, a->y, mask, B, T, C);
    sb_nn_linear_forward(a->logits, a->pooled, p->wc, p->bc, B, C, K);
    sb_nn_softmax_forward(a->probs, a->logits, B, K);
    return sb_nn_xent_forward(a->losses, a->probs, y, CLASS_W, B, K);
}

/* The backward, stage by stage in reverse; g accumulates, d holds the input gradients. */
static void backward(const params *g, grads_tmp *d, const acts *a, const params *p, const float *x,
                     const uint8_t *mask, const int32_t *y)
{
    memset(d, 0, sizeof *d);
    sb_nn_gru_weights wf = gru_w(p->gru_f), wb = gru_w(p->gru_b);
    sb_nn_gru_grads gf = gru_g(g->gru_f), gb = gru_g(g->gru_b);
    sb_nn_mha_weights wm = mha_w(p);
    sb_nn_mha_grads gm = mha_g(g);
    sb_nn_xent_backward(d->dlogits, a->probs, y, CLASS_W, B, K);
    sb_nn_linear_backward(d->dpooled, g->wc, g->bc, d->dlogits, a->pooled, p->wc, B, C, K);
    sb_nn_meanpool_backward(d->dy, d->dpooled, mask, B, T, C);
    /* y = x1 + ff2: dy flows to both */
    sb_nn_linear_backward(d->dff1d, g->w2, g->b2, d->dy, a->ff1d, p->w2, B * T, F, C);
    sb_nn_dropout_backward(d->dff1g, d->dff1d, a->drop_mask, DROP, BTF);
    sb_nn_gelu_backward(d->dff1, d->dff1g, a->ff1, BTF);
    sb_nn_linear_backward(d->dln2, g->w1, g->b1, d->dff1, a->ln2, p->w1, B * T, C, F);
    memcpy(d->dx1, d->dy, sizeof d->dx1);
    sb_nn_layernorm_backward(d->dx1, g->ln2_w, g->ln2_b, d->dln2, a->x1, p->ln2_w, a->mean2,
                             a->rstd2, B * T, C);
    /* x1 = gru + mha(ln1): dx1 flows to both; self-attention: one input gradient buffer */
    sb_nn_mha_backward(d->dln1, d->dln1, &gm, scratch, d->dx1, a->mha, a->ln1, a->ln1, mask, &wm, B,
                       T, T, C, C, C, NH);
    memcpy(d->dgru, d->dx1, sizeof d->dgru);
    sb_nn_layernorm_backward(d->dgru, g->ln1_w, g->ln1_b, d->dln1, a->gru, p->ln1_w, a->mean1,
                             a->rstd1, B * T, C);
    sb_nn_bigru_backward(d->dx, &gf, &gb, scratch, d->dgru, a->gru_acts, x, mask, &wf, &wb, B, T,
                         CIN, H);
}

/* ---- the checks ------------------------------------------------------------------------ */

static const uint8_t MASK[B * T] = { 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0 };
static const int32_t Y[B] = { 2, 0, 1 };

static void init(float *pbuf, size_t n, params *p, float *x)
{
    tu_fill_uniform(pbuf, n, 7);
    for (size_t i = 0; i < n; i++)
        pbuf[i] *= 0.5f;
    for (int c = 0; c < C; c++)
        p->ln1_w[c] = p->ln2_w[c] = 1.0f + 0.1f * pbuf[c];
    tu_fill_uniform(x, B * T * CIN, 8);
}

Test(compose, whole_model_backward_matches_float_finite_differences)
{
    params p, g;
    const size_t n = params_bind(&p, NULL);
    float *pbuf = malloc(n * 4), *gbuf = calloc(n, 4);
    params_bind(&p, pbuf);
    params_bind(&g, gbuf);
    float x[B * T * CIN];
    init(pbuf, n, &p, x);
    static acts a;
    static grads_tmp d;
    forward(&a, &p, x, MASK, Y);
    backward(&g, &d, &a, &p, x, MASK, Y);

    /* every parameter and every input, by float central differences of the whole forward */
    const float eps = 1e-3f;
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n + B * T * CIN; i++) {
        float *v = i < n ? &pbuf[i] : &x[i - n];
        const float keep = *v;
        *v = keep + eps;
        double lp = forward(&a, &p, x, MASK, Y);
        *v = keep - eps;
        double lm = forward(&a, &p, x, MASK, Y);
        *v = keep;
        double fd = (lp - lm) / (2.0 * eps), an = i < n ? gbuf[i] : d.dx[i - n];
        double err = fabs(an - fd);
        if (err > 2e-4 + 1e-2 * fabs(fd)) {
            if (bad++ < 5)
                cr_log_error("%s %zu: analytic %.6g, finite differences %.6g",
                             i < n ? "param" : "input", i < n ? i : i - n, an, fd);
        }
        worst = err > worst ? err : worst;
    }
    cr_assert_eq(bad, 0, "%d of %zu gradients off (worst abs error %.3g)", bad, n + B * T * CIN,
                 worst);

    /* padded steps: zero input gradient, and other values there change nothing */
    for (int bt = 0; bt < B * T; bt++)
        if (!MASK[bt])
            for (int c = 0; c < CIN; c++)
                cr_assert_eq(d.dx[bt * CIN + c], 0.0f, "padded step %d has a gradient", bt);
    double l0 = forward(&a, &p, x, MASK, Y);
    for (int bt = 0; bt < B * T; bt++)
        if (!MASK[bt])
            for (int c = 0; c < CIN; c++)
                x[bt * CIN + c] = 100.0f;
    cr_assert_eq(forward(&a, &p, x, MASK, Y), l0);
    free(pbuf);
    free(gbuf);
}
