/* tests/unit/nn/test_layers.c — layer norm, GELU, softmax backward and dropout: forwards
 * against double-precision references written here, every backward against central finite
 * differences of those references, and accumulation into pre-filled gradients. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

#include "nn_testutil.h"

/* ---- layer norm ------------------------------------------------------------------------ */

typedef struct ln_ctx {
    const double *x, *w, *b, *G;
    int N, C;
    double eps;
} ln_ctx;

static void layernorm_d(double *out, const double *x, const double *w, const double *b, int N,
                        int C, double eps)
{
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int c = 0; c < C; c++)
            m += x[n * C + c];
        m /= C;
        for (int c = 0; c < C; c++)
            v += (x[n * C + c] - m) * (x[n * C + c] - m);
        v /= C;
        for (int c = 0; c < C; c++)
            out[n * C + c] =
                (x[n * C + c] - m) / sqrt(v + eps) * (w ? w[c] : 1.0) + (b ? b[c] : 0.0);
    }
}

static double ln_loss(void *p)
{
    ln_ctx *c = p;
    double *y = malloc(sizeof(double) * c->N * c->C);
    layernorm_d(y, c->x, c->w, c->b, c->N, c->C, c->eps);
    double L = tu_dot(c->G, y, (size_t)c->N * c->C);
    free(y);
    return L;
}

Test(layernorm, forward_and_backward_match_double_reference)
{
    const int shapes[][2] = { { 1, 2 }, { 3, 7 }, { 4, 33 }, { 2, 256 } };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int affine = 0; affine < 2; affine++) {
            const int N = shapes[s][0], C = shapes[s][1];
            const size_t nx = (size_t)N * C;
            float *x = malloc(nx * 4), *w = malloc(C * 4), *b = malloc(C * 4), *G = malloc(nx * 4);
            float *out = malloc(nx * 4), *mean = malloc(N * 4), *rstd = malloc(N * 4);
            tu_fill_uniform(x, nx, 10 + s);
            tu_fill_uniform(w, C, 20 + s);
            tu_fill_uniform(b, C, 30 + s);
            tu_fill_uniform(G, nx, 40 + s);
            for (size_t i = 0; i < nx; i++)
                x[i] = 2.0f * x[i] + 3.0f; /* an offset: the mean matters */
            const float *wp = affine ? w : NULL, *bp = affine ? b : NULL;
            sb_nn_layernorm_forward(out, mean, rstd, x, wp, bp, N, C, 1e-5f);

            double *xd = tu_to_double(x, nx), *wd = tu_to_double(w, C), *bd = tu_to_double(b, C);
            double *Gd = tu_to_double(G, nx), *ref = malloc(nx * 8);
            layernorm_d(ref, xd, affine ? wd : NULL, affine ? bd : NULL, N, C, 1e-5);
            char what[96];
            snprintf(what, sizeof what, "layernorm N=%d C=%d affine=%d", N, C, affine);
            tu_check_close(what, out, ref, nx, 1e-5, 1e-5);

            float *dx = malloc(nx * 4), *dw = malloc(C * 4), *db = malloc(C * 4);
            for (size_t i = 0; i < nx; i++)
                dx[i] = 0.5f; /* backward accumulates */
            for (int i = 0; i < C; i++)
                dw[i] = db[i] = 0.5f;
            sb_nn_layernorm_backward(dx, affine ? dw : NULL, affine ? db : NULL, G, x, wp, mean,
                                     rstd, N, C);
            for (size_t i = 0; i < nx; i++)
                dx[i] -= 0.5f;
            for (int i = 0; i < C; i++) {
                dw[i] -= 0.5f;
                db[i] -= 0.5f;
            }
            ln_ctx ctx = { xd, affine ? wd : NULL, affine ? bd : NULL, Gd, N, C, 1e-5 };
            snprintf(what, sizeof what, "layernorm dinp N=%d C=%d affine=%d", N, C, affine);
            tu_check_grad(what, dx, xd, nx, ln_loss, &ctx, 1e-5, 3e-5, 1e-3);
            if (affine) {
                snprintf(what, sizeof what, "layernorm dweight N=%d C=%d", N, C);
                tu_check_grad(what, dw, wd, C, ln_loss, &ctx, 1e-5, 3e-5, 1e-3);
                snprintf(what, sizeof what, "layernorm dbias N=%d C=%d", N, C);
                tu_check_grad(what, db, bd, C, ln_loss, &ctx, 1e-5, 3e-5, 1e-3);
            }
            free(x), free(w), free(b), free(G), free(out), free(mean), free(rstd);
            free(xd), free(wd), free(bd), free(Gd), free(ref), free(dx), free(dw), free(db);
        }
}

Test(layernorm, constant_row_is_finite)
{
    float x[4] = { 7, 7, 7, 7 }, out[4], mean, rstd, dx[4] = { 0 }, G[4] = { 1, -2, 3, 0.5f };
    sb_nn_layernorm_forward(out, &mean, &rstd, x, NULL, NULL, 1, 4, 1e-5f);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(out[i], 0.0f, "out[%d] = %g", i, out[i]);
    sb_nn_layernorm_backward(dx, NULL, NULL, G, x, NULL, &mean, &rstd, 1, 4);
    for (int i = 0; i < 4; i++)
        cr_assert(isfinite(dx[i]));
}

/* ---- GELU ------------------------------------------------------------------------------ */

typedef struct ew_ctx {
    const double *x, *G;
    size_t n;
} ew_ctx;

static double gelu_d(double x)
{
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

static double gelu_loss(void *p)
{
    ew_ctx *c = p;
    double L = 0;
    for (size_t i = 0; i < c->n; i++)
        L += c->G[i] * gelu_d(c->x[i]);
    return L;
}

Test(gelu, exact_erf_forward_and_backward)
{
    enum { N = 64 };
    float x[N], G[N], out[N], dx[N];
    tu_fill_uniform(x, N, 5);
    tu_fill_uniform(G, N, 6);
    for (int i = 0; i < N; i++)
        x[i] *= 6.0f; /* [-6, 6): both tails */
    x[0] = 0.0f;
    sb_nn_gelu_forward(out, x, N);
    double ref[N];
    for (int i = 0; i < N; i++)
        ref[i] = gelu_d(x[i]);
    tu_check_close("gelu", out, ref, N, 1e-7, 1e-6);
    /* the exact form, not the tanh approximation: at x = 1 they differ by ~1.4e-4 */
    float one = 1.0f, g1;
    sb_nn_gelu_forward(&g1, &one, 1);
    cr_assert(fabs(g1 - 0.8413447460685429) < 1e-7, "gelu(1) = %.9g", g1);

    for (int i = 0; i < N; i++)
        dx[i] = 0.25f;
    sb_nn_gelu_backward(dx, G, x, N);
    for (int i = 0; i < N; i++)
        dx[i] -= 0.25f;
    double *xd = tu_to_double(x, N), *Gd = tu_to_double(G, N);
    ew_ctx ctx = { xd, Gd, N };
    tu_check_grad("gelu dinp", dx, xd, N, gelu_loss, &ctx, 1e-5, 1e-6, 1e-4);
    free(xd);
    free(Gd);
}

/* ---- softmax backward ------------------------------------------------------------------ */

typedef struct sm_ctx {
    const double *x, *G;
    int B, K;
} sm_ctx;

static double softmax_loss(void *p)
{
    sm_ctx *c = p;
    double L = 0;
    for (int b = 0; b < c->B; b++) {
        const double *x = c->x + b * c->K;
        double mx = x[0], s = 0;
        for (int k = 1; k < c->K; k++)
            mx = x[k] > mx ? x[k] : mx;
        for (int k = 0; k < c->K; k++)
            s += exp(x[k] - mx);
        for (int k = 0; k < c->K; k++)
            L += c->G[b * c->K + k] * exp(x[k] - mx) / s;
    }
    return L;
}

Test(softmax, backward_matches_finite_differences)
{
    const int shapes[][2] = { { 1, 1 }, { 1, 5 }, { 4, 3 }, { 3, 30 } };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int B = shapes[s][0], K = shapes[s][1];
        const size_t n = (size_t)B * K;
        float *x = malloc(n * 4), *G = malloc(n * 4), *p = malloc(n * 4), *dx = calloc(n, 4);
        tu_fill_uniform(x, n, 50 + s);
        tu_fill_uniform(G, n, 60 + s);
        for (size_t i = 0; i < n; i++)
            x[i] *= 4.0f;
        sb_nn_softmax_forward(p, x, B, K);
        sb_nn_softmax_backward(dx, G, p, B, K);
        double *xd = tu_to_double(x, n), *Gd = tu_to_double(G, n);
        sm_ctx ctx = { xd, Gd, B, K };
        char what[64];
        snprintf(what, sizeof what, "softmax dlogits B=%d K=%d", B, K);
        tu_check_grad(what, dx, xd, n, softmax_loss, &ctx, 1e-5, 1e-6, 1e-4);
        free(x), free(G), free(p), free(dx), free(xd), free(Gd);
    }
}

/* ---- dropout --------------------------------------------------------------------------- */

Test(dropout, keeps_the_expected_fraction_scaled)
{
    enum { N = 100000 };
    float *x = malloc(N * 4), *out = malloc(N * 4);
    uint8_t *mask = malloc(N);
    tu_fill_uniform(x, N, 7);
    sb_rng rng;
    sb_rng_seed(&rng, 42, 1);
    const float p = 0.3f;
    sb_nn_dropout_forward(out, mask, x, p, N, &rng);
    size_t kept = 0;
    for (int i = 0; i < N; i++) {
        if (mask[i]) {
            kept++;
            cr_assert_eq(out[i], x[i] * (1.0f / (1.0f - p)), "kept [%d] scaled", i);
        } else {
            cr_assert_eq(out[i], 0.0f);
        }
    }
    /* Binomial(1e5, 0.7): sd ≈ 145; 6 sd */
    cr_assert(fabs((double)kept - 0.7 * N) < 870, "kept %zu of %d at p = 0.3", kept, N);
    free(x);
    free(out);
    free(mask);
}

Test(dropout, same_seed_same_mask_and_edge_probabilities)
{
    enum { N = 1000 };
    float x[N], a[N], b[N];
    uint8_t ma[N], mb[N];
    tu_fill_uniform(x, N, 8);
    sb_rng r1, r2;
    sb_rng_seed(&r1, 9, 3);
    sb_rng_seed(&r2, 9, 3);
    sb_nn_dropout_forward(a, ma, x, 0.5f, N, &r1);
    sb_nn_dropout_forward(b, mb, x, 0.5f, N, &r2);
    cr_assert(memcmp(a, b, sizeof a) == 0 && memcmp(ma, mb, sizeof ma) == 0);
    /* the next call draws new numbers: a different mask */
    sb_nn_dropout_forward(b, mb, x, 0.5f, N, &r2);
    cr_assert(memcmp(ma, mb, sizeof ma) != 0);
    /* another seed: a different mask */
    sb_rng_seed(&r2, 10, 3);
    sb_nn_dropout_forward(b, mb, x, 0.5f, N, &r2);
    cr_assert(memcmp(ma, mb, sizeof ma) != 0);

    /* p = 0 is the identity and draws nothing; in place works */
    sb_rng_seed(&r1, 1, 1);
    sb_rng_seed(&r2, 1, 1);
    memcpy(a, x, sizeof a);
    sb_nn_dropout_forward(a, ma, a, 0.0f, N, &r1);
    cr_assert(memcmp(a, x, sizeof a) == 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(ma[i], 1);
    cr_assert_eq(sb_rng_u64(&r1), sb_rng_u64(&r2));
    /* p = 1 drops everything, and the backward passes nothing */
    sb_nn_dropout_forward(a, ma, x, 1.0f, N, &r1);
    float d[N];
    memset(d, 0, sizeof d);
    sb_nn_dropout_backward(d, x, ma, 1.0f, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(a[i], 0.0f);
        cr_assert_eq(ma[i], 0);
        cr_assert_eq(d[i], 0.0f);
    }
}

typedef struct drop_ctx {
    const double *x, *G;
    const uint8_t *mask;
    double p;
    size_t n;
} drop_ctx;

static double dropout_loss(void *pv)
{
    drop_ctx *c = pv;
    double L = 0;
    for (size_t i = 0; i < c->n; i++)
        L += c->G[i] * (c->mask[i] ? c->x[i] / (1.0 - c->p) : 0.0);
    return L;
}

Test(dropout, backward_matches_finite_differences_for_its_mask)
{
    enum { N = 50 };
    float x[N], out[N], G[N], dx[N];
    uint8_t mask[N];
    tu_fill_uniform(x, N, 11);
    tu_fill_uniform(G, N, 12);
    sb_rng rng;
    sb_rng_seed(&rng, 5, 0);
    sb_nn_dropout_forward(out, mask, x, 0.4f, N, &rng);
    for (int i = 0; i < N; i++)
        dx[i] = 1.0f;
    sb_nn_dropout_backward(dx, G, mask, 0.4f, N);
    for (int i = 0; i < N; i++)
        dx[i] -= 1.0f;
    double *xd = tu_to_double(x, N), *Gd = tu_to_double(G, N);
    drop_ctx ctx = { xd, Gd, mask, 0.4f, N };
    tu_check_grad("dropout dinp", dx, xd, N, dropout_loss, &ctx, 1e-4, 1e-6, 1e-5);
    free(xd);
    free(Gd);
}

/* ---- masked mean pooling --------------------------------------------------------------- */

typedef struct pool_ctx {
    const double *x, *G;
    const uint8_t *mask;
    int B, T, C;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *c = p;
    double L = 0;
    for (int b = 0; b < c->B; b++) {
        int n = 0;
        for (int t = 0; t < c->T; t++)
            n += c->mask[b * c->T + t] != 0;
        for (int k = 0; k < c->C && n; k++) {
            double s = 0;
            for (int t = 0; t < c->T; t++)
                if (c->mask[b * c->T + t])
                    s += c->x[(b * c->T + t) * c->C + k];
            L += c->G[b * c->C + k] * s / n;
        }
    }
    return L;
}

Test(meanpool, masked_mean_forward_and_backward)
{
    enum { B = 3, T = 4, C = 5 };
    const uint8_t mask[B * T] = { 1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0 };
    float x[B * T * C], G[B * C], out[B * C], dx[B * T * C] = { 0 };
    tu_fill_uniform(x, B * T * C, 21);
    tu_fill_uniform(G, B * C, 22);
    sb_nn_meanpool_forward(out, x, mask, B, T, C);
    double ref[B * C];
    for (int k = 0; k < C; k++) {
        ref[k] = ((double)x[k] + x[C + k] + x[2 * C + k] + x[3 * C + k]) / 4;
        ref[C + k] = ((double)x[(T + 0) * C + k] + x[(T + 2) * C + k]) / 2; /* steps 0 and 2 */
        ref[2 * C + k] = 0.0;                                               /* no real step */
    }
    tu_check_close("meanpool", out, ref, B * C, 1e-7, 1e-6);
    sb_nn_meanpool_backward(dx, G, mask, B, T, C);
    double *xd = tu_to_double(x, B * T * C), *Gd = tu_to_double(G, B * C);
    pool_ctx ctx = { xd, Gd, mask, B, T, C };
    tu_check_grad("meanpool dinp", dx, xd, B * T * C, pool_loss, &ctx, 1e-5, 1e-7, 1e-5);
    /* no mask: the plain mean */
    sb_nn_meanpool_forward(out, x, NULL, B, T, C);
    cr_assert(fabs(out[C] - ((double)x[T * C] + x[(T + 1) * C] + x[(T + 2) * C] + x[(T + 3) * C]) /
                                4) < 1e-6);
    free(xd);
    free(Gd);
}
