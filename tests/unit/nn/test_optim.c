/* tests/unit/nn/test_optim.c — regression losses (hand-computed values, NaN targets ignored,
 * finite differences), the warmup/cosine schedule at chosen steps, global gradient-norm
 * clipping, two AdamW steps driven by the schedule against hand-computed values, and a
 * small training loop (2-layer MLP with layer norm, GELU, dropout, weighted cross-entropy,
 * clipping, AdamW) run twice to bit-identical parameters. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

#include "nn_testutil.h"

/* ---- MSE and L1 ------------------------------------------------------------------------ */

Test(loss, mse_and_l1_hand_computed_ignore_nan_targets)
{
    const float pred[5] = { 1, 2, 3, 4, -1 };
    const float target[5] = { 1.5f, NAN, 1, 4, -3 };
    /* pred - target = -0.5, (ignored), 2, 0, 2 */
    double mse = sb_nn_mse_forward(pred, target, 5);
    cr_assert(fabs(mse - (0.25 + 4 + 0 + 4) / 4.0) < 1e-12, "mse %.17g", mse);
    double l1 = sb_nn_l1_forward(pred, target, 5);
    cr_assert(fabs(l1 - (0.5 + 2 + 0 + 2) / 4.0) < 1e-12, "l1 %.17g", l1);

    float d[5] = { 0 };
    sb_nn_mse_backward(d, pred, target, 5);
    const double dmse[5] = { 2 * -0.5 / 4, 0, 2 * 2.0 / 4, 0, 2 * 2.0 / 4 };
    tu_check_close("mse dpred", d, dmse, 5, 1e-7, 1e-7);
    memset(d, 0, sizeof d);
    sb_nn_l1_backward(d, pred, target, 5);
    const double dl1[5] = { -0.25, 0, 0.25, 0 /* sign(0) = 0 */, 0.25 };
    tu_check_close("l1 dpred", d, dl1, 5, 1e-7, 1e-7);

    /* no target at all: 0, and no gradient */
    const float none[3] = { NAN, NAN, NAN };
    float d3[3] = { 1, 2, 3 };
    cr_assert_eq(sb_nn_mse_forward(pred, none, 3), 0.0);
    cr_assert_eq(sb_nn_l1_forward(pred, none, 3), 0.0);
    sb_nn_mse_backward(d3, pred, none, 3);
    sb_nn_l1_backward(d3, pred, none, 3);
    cr_assert(d3[0] == 1 && d3[1] == 2 && d3[2] == 3);
}

typedef struct reg_ctx {
    const double *pred;
    const float *target;
    int n, l1;
} reg_ctx;

static double reg_loss(void *p)
{
    reg_ctx *c = p;
    double s = 0;
    int m = 0;
    for (int i = 0; i < c->n; i++) {
        if (isnan(c->target[i]))
            continue;
        double e = c->pred[i] - c->target[i];
        s += c->l1 ? fabs(e) : e * e;
        m++;
    }
    return m ? s / m : 0;
}

Test(loss, mse_and_l1_backward_match_finite_differences)
{
    enum { N = 40 };
    float pred[N], target[N];
    tu_fill_uniform(pred, N, 1);
    tu_fill_uniform(target, N, 2);
    for (int i = 0; i < N; i += 7)
        target[i] = NAN;
    for (int l1 = 0; l1 < 2; l1++) {
        float d[N];
        for (int i = 0; i < N; i++)
            d[i] = 0.5f; /* accumulates */
        if (l1)
            sb_nn_l1_backward(d, pred, target, N);
        else
            sb_nn_mse_backward(d, pred, target, N);
        for (int i = 0; i < N; i++)
            d[i] -= 0.5f;
        double *pd = tu_to_double(pred, N);
        reg_ctx ctx = { pd, target, N, l1 };
        tu_check_grad(l1 ? "l1 dpred" : "mse dpred", d, pd, N, reg_loss, &ctx, 1e-6, 1e-7, 1e-5);
        free(pd);
    }
}

/* ---- schedule -------------------------------------------------------------------------- */

static void expect_lr(long t, long warmup, long total, float want)
{
    float lr = sb_nn_lr_warmup_cosine(t, warmup, total, 1e-3f, 1e-5f);
    cr_assert(fabs(lr - want) <= 1e-6 * fabs(want),
              "lr(t=%ld, warmup=%ld, total=%ld) = %.9g, want %.9g", t, warmup, total, lr, want);
}

Test(schedule, warmup_then_cosine_to_the_floor)
{
    /* warmup 10, total 110: lr_max/10 per warmup step, then cos over the 100 steps 11..110 */
    expect_lr(1, 10, 110, 1e-4f);
    expect_lr(5, 10, 110, 5e-4f);
    expect_lr(10, 10, 110, 1e-3f);
    expect_lr(11, 10, 110, 1e-3f);                   /* progress 0 */
    expect_lr(12, 10, 110, 9.997557473810372e-4f);   /* progress 0.01 */
    expect_lr(36, 10, 110, 8.55017856687341e-4f);    /* 1e-5 + 9.9e-4·(1 + cos(π/4))/2 */
    expect_lr(61, 10, 110, 5.05e-4f);                /* halfway: the mean of max and min */
    expect_lr(86, 10, 110, 1.54982143312659e-4f);    /* 1e-5 + 9.9e-4·(1 − cos(π/4))/2 */
    expect_lr(110, 10, 110, 1.0244252618962858e-5f); /* the last step: progress 0.99 */
    expect_lr(111, 10, 110, 1e-5f);
    expect_lr(500, 10, 110, 1e-5f); /* after the end: the floor */
    expect_lr(0, 10, 110, 1e-4f);   /* t < 1 reads as 1 */
    /* no warmup: cosine from the first step */
    expect_lr(1, 0, 100, 1e-3f);
    expect_lr(51, 0, 100, 5.05e-4f);
    expect_lr(100, 0, 100, 1.0244252618962858e-5f);
    /* every step of a fit trains: a one-step fit, the last step of a short one */
    expect_lr(1, 0, 1, 1e-3f);
    cr_assert_gt(sb_nn_lr_warmup_cosine(2, 0, 2, 1e-3f, 0.0f), 0.0f);
    cr_assert_gt(sb_nn_lr_warmup_cosine(3, 1, 3, 1e-3f, 0.0f), 0.0f);
    /* total within the warmup: hold lr_max after it */
    expect_lr(20, 10, 5, 1e-3f);
}

/* ---- clipping -------------------------------------------------------------------------- */

Test(clip, global_norm_clipping)
{
    float g[2] = { 3, 4 };
    cr_assert_eq(sb_nn_grad_norm(g, 2), 5.0);
    cr_assert_eq(sb_nn_clip_grad_norm(g, 2, 10.0), 5.0); /* under the limit: untouched */
    cr_assert(g[0] == 3 && g[1] == 4);
    cr_assert_eq(sb_nn_clip_grad_norm(g, 2, 0.0), 5.0); /* 0: measure only */
    cr_assert(g[0] == 3 && g[1] == 4);
    cr_assert_eq(sb_nn_clip_grad_norm(g, 2, 1.0), 5.0);
    const double want[2] = { 3.0 / (5.0 + 1e-6), 4.0 / (5.0 + 1e-6) }; /* torch's coefficient */
    tu_check_close("clipped", g, want, 2, 0, 1e-7);

    enum { N = 1000 };
    float big[N];
    for (int i = 0; i < N; i++)
        big[i] = i % 2 ? 1.0f : -1.0f;
    double n0 = sb_nn_clip_grad_norm(big, N, 2.0);
    cr_assert(fabs(n0 - sqrt(1000.0)) < 1e-9);
    cr_assert(fabs(sb_nn_grad_norm(big, N) - 2.0) < 1e-5);

    float bad[3] = { 1, NAN, 2 };
    cr_assert(isnan(sb_nn_clip_grad_norm(bad, 3, 1.0)));
    cr_assert(bad[0] == 1 && bad[2] == 2); /* left for the caller to skip the step */
    float inf[2] = { INFINITY, 1 };
    cr_assert(isinf(sb_nn_clip_grad_norm(inf, 2, 1.0)));
    cr_assert(inf[1] == 1);
}

/* ---- AdamW driven by the schedule ------------------------------------------------------ */

Test(adamw, two_scheduled_steps_hand_computed)
{
    /* warmup 2: lr 0.005 at t = 1, 0.01 at t = 2; wd 0.1; one parameter from 1.0:
     *   t=1, g= 0.5:  m = 0.05,  v = 2.5e-4,    p = 1 − 0.005·(0.5/(0.5+1e-8) + 0.1)
     *                                             = 0.9945000001
     *   t=2, g=−0.25: m = 0.02,  v = 3.1225e-4, m̂ = 0.02/0.19, v̂ = 3.1225e-4/0.001999,
     *                 p = p − 0.01·(m̂/(√v̂ + 1e-8) + 0.1·p) = 0.9908421297706845 */
    float p = 1.0f, m = 0, v = 0;
    const float g[2] = { 0.5f, -0.25f };
    const double want_p[2] = { 0.9945000001, 0.9908421297706845 };
    const double want_m[2] = { 0.05, 0.02 }, want_v[2] = { 2.5e-4, 3.1225e-4 };
    for (int t = 1; t <= 2; t++) {
        float lr = sb_nn_lr_warmup_cosine(t, 2, 100, 0.01f, 0.0f);
        sb_adamw_step(&p, &g[t - 1], &m, &v, 1, t, lr, 0.9f, 0.999f, 1e-8f, 0.1f);
        char what[32];
        snprintf(what, sizeof what, "p after step %d", t);
        tu_check_close(what, &p, &want_p[t - 1], 1, 0, 2e-7);
        tu_check_close("m", &m, &want_m[t - 1], 1, 0, 1e-6);
        tu_check_close("v", &v, &want_v[t - 1], 1, 0, 2e-5); /* 0.999f is not 0.999 */
    }
}

/* ---- a small training loop, twice ------------------------------------------------------ */

enum { DATA_N = 96, DATA_D = 12, HID = 24, NCLS = 4, BATCH = 16, STEPS = 50 };

/* The MLP's parameters in one allocation:
 *   W1 (HID,D) | b1 (HID) | ln_w (HID) | ln_b (HID) | W2 (K,HID) | b2 (K) */
typedef struct mlp {
    size_t n;
    float *p, *g, *m, *v;
    float *W1, *b1, *lnw, *lnb, *W2, *b2;
    float *dW1, *db1, *dlnw, *dlnb, *dW2, *db2;
} mlp;

static void mlp_bind(float *base, float **W1, float **b1, float **lnw, float **lnb, float **W2,
                     float **b2)
{
    *W1 = base;
    *b1 = *W1 + HID * DATA_D;
    *lnw = *b1 + HID;
    *lnb = *lnw + HID;
    *W2 = *lnb + HID;
    *b2 = *W2 + NCLS * HID;
}

/* Data from a fixed generator (the same for every run): labels from a random linear teacher
 * plus a quadratic term, so the task needs the hidden layer. Row 5 has no label (-1). */
static void make_data(float *x, int32_t *y)
{
    float teacher[NCLS * DATA_D];
    tu_fill_uniform(x, DATA_N * DATA_D, 1234);
    tu_fill_uniform(teacher, NCLS * DATA_D, 5678);
    for (int i = 0; i < DATA_N; i++) {
        int best = 0;
        double bestv = -1e30;
        for (int k = 0; k < NCLS; k++) {
            double s = 0;
            for (int d = 0; d < DATA_D; d++)
                s += teacher[k * DATA_D + d] * x[i * DATA_D + d];
            s += k == 0 ? x[i * DATA_D] * x[i * DATA_D + 1] : 0.0;
            if (s > bestv)
                bestv = s, best = k;
        }
        y[i] = best;
    }
    y[5] = -1;
}

/* Train for STEPS steps from `seed`; params (n) gets the final parameters; returns the mean
 * loss over the last 10 steps, and *first the first step's loss. */
static double train_mlp(float *params_out, size_t *n_out, uint64_t seed, double *first)
{
    static float x[DATA_N * DATA_D];
    static int32_t y[DATA_N];
    make_data(x, y);
    mlp M;
    M.n = (size_t)HID * DATA_D + 3 * HID + NCLS * HID + NCLS;
    M.p = malloc(M.n * 4), M.g = malloc(M.n * 4);
    M.m = calloc(M.n, 4), M.v = calloc(M.n, 4);
    mlp_bind(M.p, &M.W1, &M.b1, &M.lnw, &M.lnb, &M.W2, &M.b2);
    mlp_bind(M.g, &M.dW1, &M.db1, &M.dlnw, &M.dlnb, &M.dW2, &M.db2);
    sb_rng init, shuf, drop;
    sb_rng_seed(&init, seed, 1);
    sb_rng_seed(&shuf, seed, 2);
    sb_rng_seed(&drop, seed, 3);
    for (size_t i = 0; i < M.n; i++)
        M.p[i] = (float)(0.3 * sb_rng_normal(&init));
    for (int i = 0; i < HID; i++)
        M.lnw[i] = 1.0f, M.lnb[i] = 0.0f;
    const float class_w[NCLS] = { 1.0f, 1.5f, 0.8f, 1.2f };

    /* activations and their gradients for one batch */
    float xb[BATCH * DATA_D], h1[BATCH * HID], mean[BATCH], rstd[BATCH], ln[BATCH * HID];
    float a[BATCH * HID], dr[BATCH * HID], logits[BATCH * NCLS], probs[BATCH * NCLS];
    float losses[BATCH], dlogits[BATCH * NCLS], ddr[BATCH * HID], da[BATCH * HID];
    float dln[BATCH * HID], dh1[BATCH * HID];
    uint8_t mask[BATCH * HID];
    int32_t yb[BATCH];
    size_t order[DATA_N];
    for (int i = 0; i < DATA_N; i++)
        order[i] = (size_t)i;

    double tail = 0;
    int pos = DATA_N;
    for (int t = 1; t <= STEPS; t++) {
        if (pos + BATCH > DATA_N) {
            sb_rng_shuffle(&shuf, order, DATA_N);
            pos = 0;
        }
        for (int b = 0; b < BATCH; b++) {
            memcpy(xb + b * DATA_D, x + order[pos + b] * DATA_D, sizeof(float) * DATA_D);
            yb[b] = y[order[pos + b]];
        }
        pos += BATCH;
        /* forward */
        sb_nn_linear_forward(h1, xb, M.W1, M.b1, BATCH, DATA_D, HID);
        sb_nn_layernorm_forward(ln, mean, rstd, h1, M.lnw, M.lnb, BATCH, HID, 1e-5f);
        sb_nn_gelu_forward(a, ln, BATCH * HID);
        sb_nn_dropout_forward(dr, mask, a, 0.2f, BATCH * HID, &drop);
        sb_nn_linear_forward(logits, dr, M.W2, M.b2, BATCH, HID, NCLS);
        sb_nn_softmax_forward(probs, logits, BATCH, NCLS);
        double loss = sb_nn_xent_forward(losses, probs, yb, class_w, BATCH, NCLS);
        if (t == 1)
            *first = loss;
        if (t > STEPS - 10)
            tail += loss / 10;
        /* backward */
        memset(M.g, 0, M.n * 4);
        memset(dlogits, 0, sizeof dlogits);
        memset(ddr, 0, sizeof ddr);
        memset(da, 0, sizeof da);
        memset(dln, 0, sizeof dln);
        memset(dh1, 0, sizeof dh1);
        sb_nn_xent_backward(dlogits, probs, yb, class_w, BATCH, NCLS);
        sb_nn_linear_backward(ddr, M.dW2, M.db2, dlogits, dr, M.W2, BATCH, HID, NCLS);
        sb_nn_dropout_backward(da, ddr, mask, 0.2f, BATCH * HID);
        sb_nn_gelu_backward(dln, da, ln, BATCH * HID);
        sb_nn_layernorm_backward(dh1, M.dlnw, M.dlnb, dln, h1, M.lnw, mean, rstd, BATCH, HID);
        sb_nn_linear_backward(NULL, M.dW1, M.db1, dh1, xb, M.W1, BATCH, DATA_D, HID);
        /* update */
        double norm = sb_nn_clip_grad_norm(M.g, M.n, 1.0);
        cr_assert(isfinite(norm), "step %d: gradient norm %g", t, norm);
        float lr = sb_nn_lr_warmup_cosine(t, 5, STEPS, 3e-2f, 1e-3f);
        sb_adamw_step(M.p, M.g, M.m, M.v, M.n, t, lr, 0.9f, 0.999f, 1e-8f, 0.01f);
    }
    memcpy(params_out, M.p, M.n * 4);
    *n_out = M.n;
    free(M.p), free(M.g), free(M.m), free(M.v);
    return tail;
}

Test(train, two_runs_give_bit_identical_parameters)
{
    enum { NP = HID * DATA_D + 3 * HID + NCLS * HID + NCLS };
    static float p1[NP], p2[NP], p3[NP];
    size_t n1, n2, n3;
    double first1, first2, first3;
    double last1 = train_mlp(p1, &n1, 7, &first1);
    double last2 = train_mlp(p2, &n2, 7, &first2);
    cr_assert_eq(n1, (size_t)NP);
    cr_assert(memcmp(p1, p2, sizeof p1) == 0, "same seed, different parameters");
    cr_assert(last1 == last2 && first1 == first2);
    /* it trains: the loss falls well below its start (and below chance, ln 4 ≈ 1.39) */
    cr_assert(last1 < 0.6 * first1 && last1 < 0.9, "loss %.4f -> %.4f", first1, last1);
    /* and the seed matters (init, shuffling, dropout masks) */
    train_mlp(p3, &n3, 8, &first3);
    cr_assert(memcmp(p1, p3, sizeof p1) != 0, "another seed gave the same parameters");
}
