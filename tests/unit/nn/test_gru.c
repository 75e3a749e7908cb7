/* tests/unit/nn/test_gru.c — the GRU and the bidirectional GRU: forwards against a
 * double-precision loop reference of PyTorch's equations, backpropagation through time
 * against central finite differences of it (both directions, initial state, padding in
 * the middle and at the end), and packed-sequence semantics: a padded sequence gives, at
 * its real steps, what it gives alone. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

#include "nn_testutil.h"

/* ---- double reference ------------------------------------------------------------------ */

typedef struct gru_ctx {
    const double *x, *h0, *w_ih, *w_hh, *b_ih, *b_hh, *G;
    const uint8_t *mask;
    int B, T, C, H, reverse;
} gru_ctx;

static double sig(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* out (B,T,H) */
static void gru_d(double *out, const gru_ctx *c)
{
    const int H = c->H, C = c->C, T = c->T;
    double *h = malloc(sizeof(double) * H), *hn = malloc(sizeof(double) * H);
    for (int b = 0; b < c->B; b++) {
        for (int j = 0; j < H; j++)
            h[j] = c->h0 ? c->h0[b * H + j] : 0.0;
        for (int s = 0; s < T; s++) {
            const int t = c->reverse ? T - 1 - s : s;
            double *o = out + ((size_t)b * T + t) * H;
            if (c->mask && !c->mask[b * T + t]) {
                for (int j = 0; j < H; j++)
                    o[j] = 0.0;
                continue;
            }
            const double *x = c->x + ((size_t)b * T + t) * C;
            for (int j = 0; j < H; j++) {
                double g[3], u[3];
                for (int k = 0; k < 3; k++) {
                    int row = k * H + j;
                    g[k] = c->b_ih ? c->b_ih[row] : 0.0;
                    u[k] = c->b_hh ? c->b_hh[row] : 0.0;
                    for (int i = 0; i < C; i++)
                        g[k] += c->w_ih[(size_t)row * C + i] * x[i];
                    for (int i = 0; i < H; i++)
                        u[k] += c->w_hh[(size_t)row * H + i] * h[i];
                }
                double r = sig(g[0] + u[0]), z = sig(g[1] + u[1]);
                double n = tanh(g[2] + r * u[2]);
                hn[j] = (1 - z) * n + z * h[j];
            }
            for (int j = 0; j < H; j++)
                o[j] = h[j] = hn[j];
        }
    }
    free(h);
    free(hn);
}

static double gru_loss(void *p)
{
    gru_ctx *c = p;
    size_t n = (size_t)c->B * c->T * c->H;
    double *out = malloc(n * 8);
    gru_d(out, c);
    double L = tu_dot(c->G, out, n);
    free(out);
    return L;
}

/* GRU parameters in one allocation: w_ih (3H,C) | w_hh (3H,H) | b_ih (3H) | b_hh (3H). */
typedef struct gru_fixture {
    int C, H;
    size_t n, off[4], len[4];
    float *p, *g;
    double *pd;
    sb_nn_gru_weights w;
    sb_nn_gru_grads gr;
} gru_fixture;

static void gru_fixture_init(gru_fixture *f, int C, int H, int biases, uint64_t seed)
{
    const size_t len[4] = { (size_t)3 * H * C, (size_t)3 * H * H, biases ? 3 * H : 0,
                            biases ? 3 * H : 0 };
    f->C = C, f->H = H, f->n = 0;
    for (int i = 0; i < 4; i++) {
        f->off[i] = f->n;
        f->len[i] = len[i];
        f->n += len[i];
    }
    f->p = malloc(f->n * 4);
    f->g = calloc(f->n, 4);
    tu_fill_uniform(f->p, f->n, seed);
    for (size_t i = 0; i < f->n; i++)
        f->p[i] *= 0.8f;
    f->pd = tu_to_double(f->p, f->n);
    float *P = f->p, *Gp = f->g;
    f->w = (sb_nn_gru_weights){ P + f->off[0], P + f->off[1], biases ? P + f->off[2] : NULL,
                                biases ? P + f->off[3] : NULL };
    f->gr = (sb_nn_gru_grads){ Gp + f->off[0], Gp + f->off[1], biases ? Gp + f->off[2] : NULL,
                               biases ? Gp + f->off[3] : NULL };
}

static void gru_fixture_free(gru_fixture *f)
{
    free(f->p);
    free(f->g);
    free(f->pd);
}

static const char *const gru_param_names[4] = { "w_ih", "w_hh", "b_ih", "b_hh" };

static void check_gru(const char *name, int B, int T, int C, int H, int reverse,
                      const uint8_t *mask, int with_h0, int biases, uint64_t seed)
{
    gru_fixture f;
    gru_fixture_init(&f, C, H, biases, seed);
    const size_t nx = (size_t)B * T * C, nout = (size_t)B * T * H;
    float *x = malloc(nx * 4), *h0 = malloc((size_t)B * H * 4), *G = malloc(nout * 4);
    float *out = malloc(nout * 4), *acts = malloc(sb_nn_gru_acts_size(B, T, H) * 4);
    float *scratch = malloc(sb_nn_gru_scratch_size(B, T, H) * 4);
    float *dx = malloc(nx * 4), *dh0 = malloc((size_t)B * H * 4);
    tu_fill_uniform(x, nx, seed + 1);
    tu_fill_uniform(h0, (size_t)B * H, seed + 2);
    tu_fill_uniform(G, nout, seed + 3);
    sb_nn_gru_forward(out, acts, scratch, x, with_h0 ? h0 : NULL, mask, &f.w, B, T, C, H, reverse);
    for (size_t i = 0; i < nx; i++)
        dx[i] = 0.5f; /* accumulates */
    for (int i = 0; i < B * H; i++)
        dh0[i] = 0.5f;
    for (size_t i = 0; i < f.n; i++)
        f.g[i] = 0.5f;
    sb_nn_gru_backward(dx, with_h0 ? dh0 : NULL, &f.gr, scratch, G, acts, x, mask, &f.w, B, T, C, H,
                       reverse);
    for (size_t i = 0; i < nx; i++)
        dx[i] -= 0.5f;
    for (int i = 0; i < B * H; i++)
        dh0[i] -= 0.5f;
    for (size_t i = 0; i < f.n; i++)
        f.g[i] -= 0.5f;

    double *xd = tu_to_double(x, nx), *h0d = tu_to_double(h0, (size_t)B * H);
    double *Gd = tu_to_double(G, nout), *ref = malloc(nout * 8);
    gru_ctx ctx = { xd,
                    with_h0 ? h0d : NULL,
                    f.pd + f.off[0],
                    f.pd + f.off[1],
                    biases ? f.pd + f.off[2] : NULL,
                    biases ? f.pd + f.off[3] : NULL,
                    Gd,
                    mask,
                    B,
                    T,
                    C,
                    H,
                    reverse };
    gru_d(ref, &ctx);
    char what[128];
    snprintf(what, sizeof what, "%s: out", name);
    tu_check_close(what, out, ref, nout, 1e-6, 1e-5);
    snprintf(what, sizeof what, "%s: dinp", name);
    tu_check_grad(what, dx, xd, nx, gru_loss, &ctx, 1e-5, 3e-5, 1e-3);
    if (with_h0) {
        snprintf(what, sizeof what, "%s: dh0", name);
        tu_check_grad(what, dh0, h0d, (size_t)B * H, gru_loss, &ctx, 1e-5, 3e-5, 1e-3);
    }
    for (int i = 0; i < 4; i++) {
        if (!f.len[i])
            continue;
        snprintf(what, sizeof what, "%s: d%s", name, gru_param_names[i]);
        tu_check_grad(what, f.g + f.off[i], f.pd + f.off[i], f.len[i], gru_loss, &ctx, 1e-5, 3e-5,
                      1e-3);
    }
    for (int bt = 0; mask && bt < B * T; bt++)
        if (!mask[bt]) {
            for (int j = 0; j < H; j++)
                cr_assert_eq(out[(size_t)bt * H + j], 0.0f, "%s: padded out %d", name, bt);
            for (int c = 0; c < C; c++)
                cr_assert_eq(dx[(size_t)bt * C + c], 0.0f, "%s: padded dinp %d", name, bt);
        }
    free(x), free(h0), free(G), free(out), free(acts), free(scratch), free(dx), free(dh0);
    free(xd), free(h0d), free(Gd), free(ref);
    gru_fixture_free(&f);
}

Test(gru, forward_and_bptt_match_double_reference)
{
    /* sequence 0 full, 1 right-padded, 2 with a gap in the middle, 3 only its first step */
    const uint8_t mask[4 * 6] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0,
                                  1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0 };
    for (int rev = 0; rev < 2; rev++) {
        char name[64];
        snprintf(name, sizeof name, "gru one step rev=%d", rev);
        check_gru(name, 1, 1, 3, 2, rev, NULL, 0, 1, 40 + rev);
        snprintf(name, sizeof name, "gru B2 T5 rev=%d", rev);
        check_gru(name, 2, 5, 4, 3, rev, NULL, 0, 1, 50 + rev);
        snprintf(name, sizeof name, "gru h0 rev=%d", rev);
        check_gru(name, 2, 5, 4, 3, rev, NULL, 1, 1, 60 + rev);
        snprintf(name, sizeof name, "gru masked h0 rev=%d", rev);
        check_gru(name, 4, 6, 3, 4, rev, mask, 1, 1, 70 + rev);
        snprintf(name, sizeof name, "gru masked no biases rev=%d", rev);
        check_gru(name, 4, 6, 5, 2, rev, mask, 0, 0, 80 + rev);
    }
    check_gru("gru T9 H7", 1, 9, 2, 7, 0, NULL, 1, 1, 90);
}

Test(gru, padded_sequence_equals_the_sequence_alone)
{
    enum { B = 3, T = 7, C = 5, H = 6 };
    const int len[B] = { 7, 4, 1 };
    uint8_t mask[B * T];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            mask[b * T + t] = t < len[b];
    gru_fixture f;
    gru_fixture_init(&f, C, H, 1, 101);
    float x[B * T * C], out[B * T * H], out1[T * H];
    float *acts = malloc(sb_nn_gru_acts_size(B, T, H) * 4);
    float *scratch = malloc(sb_nn_gru_scratch_size(B, T, H) * 4);
    tu_fill_uniform(x, B * T * C, 102);
    for (int rev = 0; rev < 2; rev++) {
        sb_nn_gru_forward(out, acts, scratch, x, NULL, mask, &f.w, B, T, C, H, rev);
        for (int b = 0; b < B; b++) {
            sb_nn_gru_forward(out1, acts, scratch, x + b * T * C, NULL, NULL, &f.w, 1, len[b], C, H,
                              rev);
            double ref[T * H];
            for (int i = 0; i < len[b] * H; i++)
                ref[i] = out1[i];
            char what[64];
            snprintf(what, sizeof what, "sequence %d (length %d) rev=%d", b, len[b], rev);
            /* BLAS may block a 1-row product differently from a 3-row one */
            tu_check_close(what, out + b * T * H, ref, (size_t)len[b] * H, 1e-6, 1e-6);
        }
    }
    free(acts);
    free(scratch);
    gru_fixture_free(&f);
}

/* ---- bidirectional --------------------------------------------------------------------- */

typedef struct bigru_ctx {
    gru_ctx f, b;
    const double *G; /* (B,T,2H) */
} bigru_ctx;

static double bigru_loss(void *p)
{
    bigru_ctx *c = p;
    const int B = c->f.B, T = c->f.T, H = c->f.H;
    size_t n = (size_t)B * T * H;
    double *of = malloc(n * 8), *ob = malloc(n * 8);
    gru_d(of, &c->f);
    gru_d(ob, &c->b);
    double L = 0;
    for (size_t bt = 0; bt < (size_t)B * T; bt++)
        for (int j = 0; j < H; j++)
            L += c->G[bt * 2 * H + j] * of[bt * H + j] + c->G[bt * 2 * H + H + j] * ob[bt * H + j];
    free(of);
    free(ob);
    return L;
}

Test(gru, bidirectional_is_two_grus_concatenated)
{
    enum { B = 3, T = 5, C = 4, H = 3 };
    const uint8_t mask[B * T] = { 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0 };
    gru_fixture ff, fb;
    gru_fixture_init(&ff, C, H, 1, 201);
    gru_fixture_init(&fb, C, H, 1, 202);
    float x[B * T * C], G[B * T * 2 * H], out[B * T * 2 * H], dx[B * T * C] = { 0 };
    float *acts = malloc(2 * sb_nn_gru_acts_size(B, T, H) * 4);
    float *scratch = malloc(sb_nn_gru_scratch_size(B, T, H) * 4);
    tu_fill_uniform(x, B * T * C, 203);
    tu_fill_uniform(G, B * T * 2 * H, 204);
    sb_nn_bigru_forward(out, acts, scratch, x, mask, &ff.w, &fb.w, B, T, C, H);
    sb_nn_bigru_backward(dx, &ff.gr, &fb.gr, scratch, G, acts, x, mask, &ff.w, &fb.w, B, T, C, H);

    double *xd = tu_to_double(x, B * T * C), *Gd = tu_to_double(G, B * T * 2 * H);
    bigru_ctx ctx = {
        { xd, NULL, ff.pd + ff.off[0], ff.pd + ff.off[1], ff.pd + ff.off[2], ff.pd + ff.off[3],
          NULL, mask, B, T, C, H, 0 },
        { xd, NULL, fb.pd + fb.off[0], fb.pd + fb.off[1], fb.pd + fb.off[2], fb.pd + fb.off[3],
          NULL, mask, B, T, C, H, 1 },
        Gd,
    };
    double of[B * T * H], ob[B * T * H], ref[B * T * 2 * H];
    gru_d(of, &ctx.f);
    gru_d(ob, &ctx.b);
    for (int bt = 0; bt < B * T; bt++)
        for (int j = 0; j < H; j++) {
            ref[bt * 2 * H + j] = of[bt * H + j];
            ref[bt * 2 * H + H + j] = ob[bt * H + j];
        }
    tu_check_close("bigru out", out, ref, B * T * 2 * H, 1e-6, 1e-5);
    tu_check_grad("bigru dinp", dx, xd, B * T * C, bigru_loss, &ctx, 1e-5, 3e-5, 1e-3);
    for (int i = 0; i < 4; i++) {
        char what[64];
        snprintf(what, sizeof what, "bigru forward d%s", gru_param_names[i]);
        tu_check_grad(what, ff.g + ff.off[i], ff.pd + ff.off[i], ff.len[i], bigru_loss, &ctx, 1e-5,
                      3e-5, 1e-3);
        snprintf(what, sizeof what, "bigru reverse d%s", gru_param_names[i]);
        tu_check_grad(what, fb.g + fb.off[i], fb.pd + fb.off[i], fb.len[i], bigru_loss, &ctx, 1e-5,
                      3e-5, 1e-3);
    }
    free(xd);
    free(Gd);
    free(acts);
    free(scratch);
    gru_fixture_free(&ff);
    gru_fixture_free(&fb);
}
