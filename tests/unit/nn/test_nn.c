/* tests/unit/nn/test_nn.c — the nn layers: linear (cblas) against its loop reference on
 * awkward shapes, every backward against central finite differences of a double-precision
 * forward written here, weighted cross-entropy against hand-computed values, and AdamW
 * against hand-computed values and PyTorch's update formula. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

#include "nn_testutil.h"

/* ---- linear: fast vs reference ------------------------------------------------------ */

Test(linear, gemm_matches_loops_on_awkward_shapes)
{
    const int shapes[][3] = { { 1, 1, 1 },   { 1, 7, 3 },   { 5, 13, 1 },
                              { 3, 1, 4 },   { 17, 33, 9 }, { 64, 129, 7 },
                              { 1, 768, 4 }, { 2, 5, 768 }, { 31, 2, 2 } };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *inp = malloc(sizeof(float) * B * C), *w = malloc(sizeof(float) * OC * C);
        float *bias = malloc(sizeof(float) * OC), *out = malloc(sizeof(float) * B * OC);
        float *out_ref = malloc(sizeof(float) * B * OC);
        double *ref = malloc(sizeof(double) * B * OC);
        tu_fill_uniform(inp, (size_t)B * C, 1 + s);
        tu_fill_uniform(w, (size_t)OC * C, 100 + s);
        tu_fill_uniform(bias, (size_t)OC, 200 + s);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const float *bb = with_bias ? bias : NULL;
            sb_nn_linear_forward(out, inp, w, bb, B, C, OC);
            sb_nn_linear_forward_ref(out_ref, inp, w, bb, B, C, OC);
            for (int i = 0; i < B * OC; i++)
                ref[i] = out_ref[i];
            char what[96];
            snprintf(what, sizeof what, "linear B=%d C=%d OC=%d bias=%d", B, C, OC, with_bias);
            /* float sums of C products in different orders: ~C·eps·Σ|terms| apart */
            tu_check_close(what, out, ref, (size_t)B * OC, 1e-6 * (C + 1), 1e-5);
        }
        free(inp);
        free(w);
        free(bias);
        free(out);
        free(out_ref);
        free(ref);
    }
}

Test(linear, empty_inner_dimension_gives_bias)
{
    float bias[3] = { 1, 2, 3 }, out[6], out_ref[6];
    float dummy = 0;
    sb_nn_linear_forward(out, &dummy, &dummy, bias, 2, 0, 3);
    sb_nn_linear_forward_ref(out_ref, &dummy, &dummy, bias, 2, 0, 3);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(out[i], bias[i % 3]);
        cr_assert_eq(out_ref[i], bias[i % 3]);
    }
    sb_nn_linear_forward(out, &dummy, &dummy, NULL, 0, 4, 3); /* B = 0: nothing, no crash */
}

/* ---- linear backward vs finite differences ---------------------------------------------- */

/* Scalar loss Σ_{b,o} G[b,o] · out[b,o] with out computed in double. */
static double linear_loss_d(const double *inp, const double *w, const double *bias, const double *G,
                            int B, int C, int OC)
{
    double L = 0.0;
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++) {
            double v = bias[o];
            for (int c = 0; c < C; c++)
                v += inp[b * C + c] * w[o * C + c];
            L += G[b * OC + o] * v;
        }
    return L;
}

/* Central differences of linear_loss_d w.r.t. every entry of x (n entries), step h. */
static void fd_grad(double *x, size_t n, double h, double *out, const double *inp, const double *w,
                    const double *bias, const double *G, int B, int C, int OC)
{
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double lp = linear_loss_d(inp, w, bias, G, B, C, OC);
        x[i] = keep - h;
        double lm = linear_loss_d(inp, w, bias, G, B, C, OC);
        x[i] = keep;
        out[i] = (lp - lm) / (2 * h);
    }
}

Test(linear, backward_matches_finite_differences)
{
    const int shapes[][3] = { { 1, 1, 1 }, { 1, 5, 3 }, { 4, 7, 1 }, { 6, 11, 5 } };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        size_t nI = (size_t)B * C, nW = (size_t)OC * C, nO = (size_t)B * OC;
        float *inp = malloc(nI * 4), *w = malloc(nW * 4), *bias = malloc(OC * 4);
        float *G = malloc(nO * 4);
        tu_fill_uniform(inp, nI, 3 + s);
        tu_fill_uniform(w, nW, 30 + s);
        tu_fill_uniform(bias, OC, 60 + s);
        tu_fill_uniform(G, nO, 90 + s);
        /* gradients start at 0.5 to check that backward accumulates */
        float *dinp = malloc(nI * 4), *dw = malloc(nW * 4), *db = malloc(OC * 4);
        for (size_t i = 0; i < nI; i++)
            dinp[i] = 0.5f;
        for (size_t i = 0; i < nW; i++)
            dw[i] = 0.5f;
        for (int i = 0; i < OC; i++)
            db[i] = 0.5f;
        sb_nn_linear_backward(dinp, dw, db, G, inp, w, B, C, OC);
        for (size_t i = 0; i < nI; i++)
            dinp[i] -= 0.5f;
        for (size_t i = 0; i < nW; i++)
            dw[i] -= 0.5f;
        for (int i = 0; i < OC; i++)
            db[i] -= 0.5f;

        double *inp_d = malloc(nI * 8), *w_d = malloc(nW * 8), *b_d = malloc(OC * 8);
        double *G_d = malloc(nO * 8);
        for (size_t i = 0; i < nI; i++)
            inp_d[i] = inp[i];
        for (size_t i = 0; i < nW; i++)
            w_d[i] = w[i];
        for (int i = 0; i < OC; i++)
            b_d[i] = bias[i];
        for (size_t i = 0; i < nO; i++)
            G_d[i] = G[i];
        double *ref = malloc((nI + nW + OC) * 8);
        const double h = 1e-4;
        char what[96];
        fd_grad(inp_d, nI, h, ref, inp_d, w_d, b_d, G_d, B, C, OC);
        snprintf(what, sizeof what, "dinp B=%d C=%d OC=%d", B, C, OC);
        tu_check_close(what, dinp, ref, nI, 1e-5, 1e-4);
        fd_grad(w_d, nW, h, ref, inp_d, w_d, b_d, G_d, B, C, OC);
        snprintf(what, sizeof what, "dweight B=%d C=%d OC=%d", B, C, OC);
        tu_check_close(what, dw, ref, nW, 1e-5, 1e-4);
        fd_grad(b_d, (size_t)OC, h, ref, inp_d, w_d, b_d, G_d, B, C, OC);
        snprintf(what, sizeof what, "dbias B=%d C=%d OC=%d", B, C, OC);
        tu_check_close(what, db, ref, (size_t)OC, 1e-5, 1e-4);

        /* optional outputs may be NULL; dweight is unchanged by that */
        float *dw2 = calloc(nW, 4);
        sb_nn_linear_backward(NULL, dw2, NULL, G, inp, w, B, C, OC);
        for (size_t i = 0; i < nW; i++)
            ref[i] = dw[i];
        tu_check_close("dweight with NULL dinp/dbias", dw2, ref, nW, 1e-6, 1e-6);

        free(inp);
        free(w);
        free(bias);
        free(G);
        free(dinp);
        free(dw);
        free(db);
        free(dw2);
        free(inp_d);
        free(w_d);
        free(b_d);
        free(G_d);
        free(ref);
    }
}

/* ---- softmax + cross-entropy ------------------------------------------------------------ */

static void softmax_d(const double *x, double *p, int K)
{
    double mx = x[0], s = 0.0;
    for (int k = 1; k < K; k++)
        mx = x[k] > mx ? x[k] : mx;
    for (int k = 0; k < K; k++)
        s += (p[k] = exp(x[k] - mx));
    for (int k = 0; k < K; k++)
        p[k] /= s;
}

/* The weighted mean cross-entropy of nn.h in double. */
static double xent_d(const double *logits, const int32_t *y, const float *cw, int B, int K)
{
    double num = 0.0, den = 0.0, p[16];
    for (int b = 0; b < B; b++) {
        if (y[b] < 0)
            continue;
        softmax_d(logits + b * K, p, K);
        double w = cw ? cw[y[b]] : 1.0;
        num += -w * log(p[y[b]]);
        den += w;
    }
    return den > 0 ? num / den : 0.0;
}

Test(xent, softmax_matches_double_and_survives_large_logits)
{
    float logits[12] = { 0.1f, -2, 3, 0.5f, 1000, 999, -1000, 0, -80, -80, -80, -80 };
    float probs[12];
    sb_nn_softmax_forward(probs, logits, 3, 4);
    double x[12], ref[12];
    for (int i = 0; i < 12; i++)
        x[i] = logits[i];
    for (int b = 0; b < 3; b++)
        softmax_d(x + 4 * b, ref + 4 * b, 4);
    tu_check_close("softmax", probs, ref, 12, 1e-7, 1e-6);
}

Test(xent, weighted_loss_hand_computed)
{
    /* logits are logs of exact probabilities, so softmax gives them back:
     *   row 0: (1/2, 1/4, 1/4), y = 0, w = 2   → 2·ln 2
     *   row 1: (1/4, 1/4, 1/2), y = 1, w = 1   → 1·ln 4
     *   row 2: (1/8, 3/8, 1/2), y = 2, w = 0.5 → 0.5·ln 2
     *   row 3: any,             y = -1         → ignored
     * mean = (2 ln2 + 2 ln2 + 0.5 ln2) / (2 + 1 + 0.5) = 4.5 ln2 / 3.5 = (9/7) ln 2 */
    float logits[12] = {
        logf(0.5f),   logf(0.25f),  logf(0.25f), logf(0.25f), logf(0.25f), logf(0.5f),
        logf(0.125f), logf(0.375f), logf(0.5f),  5,           6,           7
    };
    int32_t y[4] = { 0, 1, 2, -1 };
    float cw[3] = { 2.0f, 1.0f, 0.5f };
    float probs[12], losses[4];
    sb_nn_softmax_forward(probs, logits, 4, 3);
    double mean = sb_nn_xent_forward(losses, probs, y, cw, 4, 3);
    double want = 9.0 / 7.0 * log(2.0);
    cr_assert(fabs(mean - want) < 1e-6, "weighted mean %.9f, hand %.9f", mean, want);
    double row[4] = { 2 * log(2.0), log(4.0), 0.5 * log(2.0), 0.0 };
    tu_check_close("per-row losses", losses, row, 4, 1e-6, 1e-6);
    /* unweighted: (ln2 + ln4 + ln2) / 3 = (4/3) ln 2 */
    mean = sb_nn_xent_forward(losses, probs, y, NULL, 4, 3);
    cr_assert(fabs(mean - 4.0 / 3.0 * log(2.0)) < 1e-6, "unweighted mean %.9f", mean);
    /* no row with a target: 0, and backward adds nothing */
    int32_t none[4] = { -1, -1, -1, -1 };
    cr_assert_eq(sb_nn_xent_forward(losses, probs, none, cw, 4, 3), 0.0);
    float d[12] = { 0 };
    sb_nn_xent_backward(d, probs, none, cw, 4, 3);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(d[i], 0.0f);
}

Test(xent, backward_matches_finite_differences)
{
    enum { B = 5, K = 4 };
    float logits[B * K];
    tu_fill_uniform(logits, B * K, 77);
    for (int i = 0; i < B * K; i++)
        logits[i] *= 3.0f;
    int32_t y[B] = { 0, 3, -1, 2, 3 };
    float cw[K] = { 0.7f, 1.0f, 2.5f, 1.3f };
    for (int weighted = 0; weighted < 2; weighted++) {
        const float *w = weighted ? cw : NULL;
        float probs[B * K], d[B * K];
        sb_nn_softmax_forward(probs, logits, B, K);
        for (int i = 0; i < B * K; i++)
            d[i] = 0.25f; /* accumulates */
        sb_nn_xent_backward(d, probs, y, w, B, K);
        for (int i = 0; i < B * K; i++)
            d[i] -= 0.25f;
        double x[B * K], ref[B * K];
        for (int i = 0; i < B * K; i++)
            x[i] = logits[i];
        for (int i = 0; i < B * K; i++) {
            const double h = 1e-5;
            double keep = x[i];
            x[i] = keep + h;
            double lp = xent_d(x, y, w, B, K);
            x[i] = keep - h;
            double lm = xent_d(x, y, w, B, K);
            x[i] = keep;
            ref[i] = (lp - lm) / (2 * h);
        }
        tu_check_close(weighted ? "dlogits weighted" : "dlogits", d, ref, B * K, 2e-6, 1e-4);
        /* the row without a target has zero gradient */
        for (int k = 0; k < K; k++)
            cr_assert_eq(d[2 * K + k], 0.0f);
    }
}

/* ---- AdamW ---------------------------------------------------------------------------- */

Test(adamw, one_step_hand_computed)
{
    /* At t = 1, m̂ = g and v̂ = g², so the step is lr·g/(|g| + eps) plus lr·wd·p:
     *   p = 0.5,  g = 0.1:  0.5 − 0.01·0.1·0.5 − 0.01·0.1/(0.1 + 1e-8) = 0.48950000099999990
     *   p = −1,   g = −0.2: −1 + 0.001 + 0.01·0.2/(0.2 + 1e-8)           = −0.9890000005000000
     *   p = 2,    g = 0:    2 − 0.002                                    = 1.998
     *   p = 0,    g = 3:    0 − 0.01·3/(3 + 1e-8)                        = −0.0099999999666667 */
    float p[4] = { 0.5f, -1.0f, 2.0f, 0.0f }, g[4] = { 0.1f, -0.2f, 0.0f, 3.0f };
    float m[4] = { 0 }, v[4] = { 0 };
    sb_adamw_step(p, g, m, v, 4, 1, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f);
    double want[4] = { 0.4895000009999999, -0.9890000005, 1.998, -0.0099999999666667 };
    tu_check_close("adamw t=1 params", p, want, 4, 1e-7, 1e-6);
    double mw[4] = { 0.01, -0.02, 0.0, 0.3 }, vw[4] = { 1e-5, 4e-5, 0.0, 9e-3 };
    tu_check_close("adamw t=1 m", m, mw, 4, 1e-9, 1e-6);
    /* 1 − 0.999f is 0.001 to 1.3e-5 relative (0.999 is not exact in float) */
    tu_check_close("adamw t=1 v", v, vw, 4, 1e-12, 2e-5);
}

/* PyTorch's _single_tensor_adamw, transcribed in double. */
static void adamw_torch_d(double *p, const double *g, double *m, double *v, int n, int step,
                          double lr, double b1, double b2, double eps, double wd)
{
    double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
    double step_size = lr / bc1, bc2_sqrt = sqrt(bc2);
    for (int i = 0; i < n; i++) {
        p[i] *= 1 - lr * wd;
        m[i] += (g[i] - m[i]) * (1 - b1); /* exp_avg.lerp_(grad, 1 - beta1) */
        v[i] = v[i] * b2 + (1 - b2) * g[i] * g[i];
        double denom = sqrt(v[i]) / bc2_sqrt + eps;
        p[i] += -step_size * m[i] / denom;
    }
}

Test(adamw, several_steps_match_pytorch_formula)
{
    enum { N = 9, STEPS = 25 };
    float p[N], m[N] = { 0 }, v[N] = { 0 }, g[N];
    double pd[N], md[N] = { 0 }, vd[N] = { 0 }, gd[N];
    tu_fill_uniform(p, N, 5);
    for (int i = 0; i < N; i++)
        pd[i] = p[i];
    for (int t = 1; t <= STEPS; t++) {
        for (int i = 0; i < N; i++) {
            g[i] = (float)(sin(0.7 * i + 0.3 * t) * pow(10.0, (i % 3) - 1)); /* mixed scales */
            gd[i] = g[i];
        }
        sb_adamw_step(p, g, m, v, N, t, 3e-3f, 0.9f, 0.999f, 1e-8f, 0.05f);
        adamw_torch_d(pd, gd, md, vd, N, t, 3e-3, 0.9f, 0.999f, 1e-8f, 0.05);
    }
    tu_check_close("adamw params after 25 steps", p, pd, N, 1e-6, 1e-5);
    tu_check_close("adamw m after 25 steps", m, md, N, 1e-7, 1e-5);
    tu_check_close("adamw v after 25 steps", v, vd, N, 1e-9, 1e-5);
}
