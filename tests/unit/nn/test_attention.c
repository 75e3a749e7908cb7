/* tests/unit/nn/test_attention.c — scaled dot-product attention and the attention block:
 * forwards against a double-precision loop reference written here (one frame, odd lengths,
 * one head, cross lengths), backwards against central finite differences of it, and the
 * masks' and causal mode's promises checked bit for bit: padded positions neither affect
 * real ones nor receive gradient, a query never sees a later key. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/serbench.h>

#include "nn_testutil.h"

/* ---- double reference ------------------------------------------------------------------ */

static void attn_d(double *out, const double *q, const double *k, const double *v,
                   const uint8_t *qm, const uint8_t *km, int B, int Tq, int Tk, int C, int NH,
                   int causal)
{
    const int hs = C / NH;
    double *p = malloc(sizeof(double) * (Tk ? Tk : 1));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < Tq; i++) {
                double *o = out + ((size_t)b * Tq + i) * C + h * hs;
                for (int d = 0; d < hs; d++)
                    o[d] = 0;
                if (qm && !qm[b * Tq + i])
                    continue;
                double mx = -INFINITY;
                for (int j = 0; j < Tk; j++) {
                    int ok = (!km || km[b * Tk + j]) && (!causal || j <= i);
                    p[j] = -INFINITY;
                    if (!ok)
                        continue;
                    double s = 0;
                    for (int d = 0; d < hs; d++)
                        s += q[((size_t)b * Tq + i) * C + h * hs + d] *
                             k[((size_t)b * Tk + j) * C + h * hs + d];
                    p[j] = s / sqrt((double)hs);
                    mx = p[j] > mx ? p[j] : mx;
                }
                if (mx == -INFINITY)
                    continue;
                double sum = 0;
                for (int j = 0; j < Tk; j++)
                    sum += (p[j] = p[j] == -INFINITY ? 0.0 : exp(p[j] - mx));
                for (int j = 0; j < Tk; j++)
                    for (int d = 0; d < hs; d++)
                        o[d] += p[j] / sum * v[((size_t)b * Tk + j) * C + h * hs + d];
            }
    free(p);
}

typedef struct attn_ctx {
    const double *q, *k, *v, *G;
    const uint8_t *qm, *km;
    int B, Tq, Tk, C, NH, causal;
} attn_ctx;

static double attn_loss(void *p)
{
    attn_ctx *c = p;
    size_t n = (size_t)c->B * c->Tq * c->C;
    double *out = malloc(n * sizeof *out);
    attn_d(out, c->q, c->k, c->v, c->qm, c->km, c->B, c->Tq, c->Tk, c->C, c->NH, c->causal);
    double L = tu_dot(c->G, out, n);
    free(out);
    return L;
}

/* Right padding: sequence b keeps max(1, T - b·step) positions. */
static uint8_t *lengths_mask(int B, int T, int step)
{
    uint8_t *m = malloc((size_t)B * T);
    for (int b = 0; b < B; b++) {
        int len = T - b * step;
        len = len < 1 ? 1 : len;
        for (int t = 0; t < T; t++)
            m[b * T + t] = t < len;
    }
    return m;
}

typedef struct attn_case {
    int B, Tq, Tk, C, NH, causal, masked;
} attn_case;

static const attn_case attn_cases[] = {
    { 1, 1, 1, 4, 1, 0, 0 }, /* one frame */
    { 1, 1, 1, 4, 2, 1, 1 },  { 2, 5, 5, 8, 2, 0, 0 },
    { 2, 5, 5, 8, 2, 1, 0 },  { 3, 7, 7, 6, 3, 0, 1 }, /* odd T, padded */
    { 3, 7, 7, 6, 3, 1, 1 },  { 2, 3, 6, 8, 4, 0, 1 }, /* cross: fewer queries */
    { 2, 6, 3, 4, 1, 0, 1 },                           /* cross: more queries */
    { 1, 9, 9, 16, 4, 1, 0 },
};

Test(attention, forward_and_backward_match_double_reference)
{
    for (size_t ci = 0; ci < sizeof attn_cases / sizeof attn_cases[0]; ci++) {
        const attn_case *a = &attn_cases[ci];
        const size_t nq = (size_t)a->B * a->Tq * a->C, nk = (size_t)a->B * a->Tk * a->C;
        const size_t natt = (size_t)a->B * a->NH * a->Tq * a->Tk;
        float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *G = malloc(nq * 4);
        float *out = malloc(nq * 4), *att = malloc(natt * 4), *scratch = malloc(a->Tq * a->Tk * 4);
        float *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
        tu_fill_uniform(q, nq, 100 + ci);
        tu_fill_uniform(k, nk, 200 + ci);
        tu_fill_uniform(v, nk, 300 + ci);
        tu_fill_uniform(G, nq, 400 + ci);
        for (size_t i = 0; i < nq; i++)
            q[i] *= 2.0f; /* peakier softmax */
        uint8_t *qm = a->masked ? lengths_mask(a->B, a->Tq, 2) : NULL;
        uint8_t *km = a->masked ? lengths_mask(a->B, a->Tk, 1) : NULL;
        sb_nn_attention_forward(out, att, q, k, v, qm, km, a->B, a->Tq, a->Tk, a->C, a->NH,
                                a->causal);
        double *qd = tu_to_double(q, nq), *kd = tu_to_double(k, nk), *vd = tu_to_double(v, nk);
        double *Gd = tu_to_double(G, nq), *ref = malloc(nq * 8);
        attn_d(ref, qd, kd, vd, qm, km, a->B, a->Tq, a->Tk, a->C, a->NH, a->causal);
        char what[128];
        snprintf(what, sizeof what, "attention out case %zu (B%d Tq%d Tk%d C%d NH%d c%d m%d)", ci,
                 a->B, a->Tq, a->Tk, a->C, a->NH, a->causal, a->masked);
        tu_check_close(what, out, ref, nq, 1e-6, 1e-5);

        for (size_t i = 0; i < nq; i++)
            dq[i] = 0.5f;
        for (size_t i = 0; i < nk; i++)
            dk[i] = dv[i] = 0.5f;
        sb_nn_attention_backward(dq, dk, dv, scratch, G, att, q, k, v, a->B, a->Tq, a->Tk, a->C,
                                 a->NH);
        for (size_t i = 0; i < nq; i++)
            dq[i] -= 0.5f;
        for (size_t i = 0; i < nk; i++) {
            dk[i] -= 0.5f;
            dv[i] -= 0.5f;
        }
        attn_ctx ctx = { qd, kd, vd, Gd, qm, km, a->B, a->Tq, a->Tk, a->C, a->NH, a->causal };
        snprintf(what, sizeof what, "attention dq case %zu", ci);
        tu_check_grad(what, dq, qd, nq, attn_loss, &ctx, 1e-5, 2e-5, 1e-3);
        snprintf(what, sizeof what, "attention dk case %zu", ci);
        tu_check_grad(what, dk, kd, nk, attn_loss, &ctx, 1e-5, 2e-5, 1e-3);
        snprintf(what, sizeof what, "attention dv case %zu", ci);
        tu_check_grad(what, dv, vd, nk, attn_loss, &ctx, 1e-5, 2e-5, 1e-3);
        free(q), free(k), free(v), free(G), free(out), free(att), free(scratch);
        free(dq), free(dk), free(dv), free(qm), free(km);
        free(qd), free(kd), free(vd), free(Gd), free(ref);
    }
}

/* Run forward and backward of self-attention on (q,k,v) = x's three thirds. */
static void self_attn_run(float *out, float *att, float *dq, float *dk, float *dv, const float *q,
                          const float *k, const float *v, const float *G, const uint8_t *mask,
                          int B, int T, int C, int NH, int causal)
{
    size_t n = (size_t)B * T * C;
    float *scratch = malloc((size_t)T * T * 4);
    sb_nn_attention_forward(out, att, q, k, v, mask, mask, B, T, T, C, NH, causal);
    memset(dq, 0, n * 4);
    memset(dk, 0, n * 4);
    memset(dv, 0, n * 4);
    sb_nn_attention_backward(dq, dk, dv, scratch, G, att, q, k, v, B, T, T, C, NH);
    free(scratch);
}

Test(attention, padded_positions_neither_affect_nor_receive)
{
    enum { B = 3, T = 6, C = 8, NH = 2, N = B * T * C };
    const uint8_t mask[B * T] = { 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 };
    static float q[N], k[N], v[N], G[N], out[N], att[B * NH * T * T], dq[N], dk[N], dv[N];
    static float out2[N], att2[B * NH * T * T], dq2[N], dk2[N], dv2[N];
    tu_fill_uniform(q, N, 1);
    tu_fill_uniform(k, N, 2);
    tu_fill_uniform(v, N, 3);
    tu_fill_uniform(G, N, 4);
    for (int causal = 0; causal < 2; causal++) {
        self_attn_run(out, att, dq, dk, dv, q, k, v, G, mask, B, T, C, NH, causal);
        for (int bt = 0; bt < B * T; bt++)
            if (!mask[bt])
                for (int c = 0; c < C; c++) {
                    cr_assert_eq(out[bt * C + c], 0.0f, "padded out row %d", bt);
                    cr_assert_eq(dq[bt * C + c], 0.0f, "padded dq row %d", bt);
                    cr_assert_eq(dk[bt * C + c], 0.0f, "padded dk row %d", bt);
                    cr_assert_eq(dv[bt * C + c], 0.0f, "padded dv row %d", bt);
                }
        /* new values (and gradients of the loss) at padded positions change nothing else */
        float q2[N], k2[N], v2[N], G2[N];
        memcpy(q2, q, sizeof q2);
        memcpy(k2, k, sizeof k2);
        memcpy(v2, v, sizeof v2);
        memcpy(G2, G, sizeof G2);
        for (int bt = 0; bt < B * T; bt++)
            if (!mask[bt])
                for (int c = 0; c < C; c++) {
                    q2[bt * C + c] = 50.0f + c;
                    k2[bt * C + c] = -30.0f * c;
                    v2[bt * C + c] = 1e3f;
                    G2[bt * C + c] = 7.0f;
                }
        self_attn_run(out2, att2, dq2, dk2, dv2, q2, k2, v2, G2, mask, B, T, C, NH, causal);
        cr_assert(memcmp(out, out2, sizeof out) == 0, "padding changed the output (causal %d)",
                  causal);
        cr_assert(memcmp(att, att2, sizeof att) == 0, "padding changed att");
        cr_assert(memcmp(dq, dq2, sizeof dq) == 0, "padding changed dq");
        cr_assert(memcmp(dk, dk2, sizeof dk) == 0, "padding changed dk");
        cr_assert(memcmp(dv, dv2, sizeof dv) == 0, "padding changed dv");
    }
    /* the last sequence's one real position attends to itself only */
    for (int h = 0; h < NH; h++)
        cr_assert_eq(att[((2 * NH + h) * T + 0) * T + 0], 1.0f);
}

Test(attention, causal_query_never_sees_a_later_key)
{
    enum { B = 2, T = 7, C = 6, NH = 3, N = B * T * C };
    static float q[N], k[N], v[N], G[N], out[N], att[B * NH * T * T], dq[N], dk[N], dv[N];
    static float out2[N], att2[B * NH * T * T], dq2[N], dk2[N], dv2[N];
    tu_fill_uniform(q, N, 5);
    tu_fill_uniform(k, N, 6);
    tu_fill_uniform(v, N, 7);
    tu_fill_uniform(G, N, 8);
    self_attn_run(out, att, dq, dk, dv, q, k, v, G, NULL, B, T, C, NH, 1);
    for (int bh = 0; bh < B * NH; bh++)
        for (int i = 0; i < T; i++) {
            double sum = 0;
            for (int j = 0; j < T; j++) {
                float p = att[((size_t)bh * T + i) * T + j];
                if (j > i)
                    cr_assert_eq(p, 0.0f, "att[%d,%d,%d] = %g above the diagonal", bh, i, j, p);
                sum += p;
            }
            cr_assert(fabs(sum - 1.0) < 1e-6, "row sums to %g", sum);
        }
    /* change k and v at step 4: outputs before step 4 are bit-identical, later ones move */
    float k2[N], v2[N];
    memcpy(k2, k, sizeof k2);
    memcpy(v2, v, sizeof v2);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            k2[(b * T + 4) * C + c] += 0.5f;
            v2[(b * T + 4) * C + c] -= 0.5f;
        }
    self_attn_run(out2, att2, dq2, dk2, dv2, q, k2, v2, G, NULL, B, T, C, NH, 1);
    for (int b = 0; b < B; b++) {
        cr_assert(memcmp(out + b * T * C, out2 + b * T * C, 4 * C * sizeof(float)) == 0,
                  "sequence %d: a later key changed earlier outputs", b);
        cr_assert(memcmp(out + (b * T + 4) * C, out2 + (b * T + 4) * C, C * sizeof(float)) != 0);
    }
    /* the last query's gradient reaches no other query */
    memset(G, 0, sizeof G);
    for (int c = 0; c < C; c++)
        G[(T - 1) * C + c] = 1.0f;
    self_attn_run(out, att, dq, dk, dv, q, k, v, G, NULL, B, T, C, NH, 1);
    for (int t = 0; t < T - 1; t++)
        for (int c = 0; c < C; c++)
            cr_assert_eq(dq[t * C + c], 0.0f);
}

Test(attention, query_without_visible_keys_gives_zeros)
{
    enum { B = 2, T = 3, C = 4, NH = 2, N = B * T * C };
    const uint8_t km[B * T] = { 1, 1, 1, 0, 0, 0 }; /* sequence 1: all keys padded */
    /* causal with left padding: query 0 of sequence 0 sees only key 0, which is padded */
    const uint8_t km2[B * T] = { 0, 1, 1, 1, 1, 1 };
    float q[N], k[N], v[N], G[N], out[N], att[B * NH * T * T], dq[N] = { 0 }, dk[N] = { 0 },
                                                               dv[N] = { 0 }, scratch[T * T];
    tu_fill_uniform(q, N, 9);
    tu_fill_uniform(k, N, 10);
    tu_fill_uniform(v, N, 11);
    tu_fill_uniform(G, N, 12);
    sb_nn_attention_forward(out, att, q, k, v, NULL, km, B, T, T, C, NH, 0);
    sb_nn_attention_backward(dq, dk, dv, scratch, G, att, q, k, v, B, T, T, C, NH);
    for (int i = T * C; i < N; i++) {
        cr_assert_eq(out[i], 0.0f);
        cr_assert_eq(dq[i], 0.0f);
    }
    for (int i = 0; i < N; i++)
        cr_assert(isfinite(out[i]) && isfinite(dq[i]) && isfinite(dk[i]) && isfinite(dv[i]));
    sb_nn_attention_forward(out, att, q, k, v, NULL, km2, B, T, T, C, NH, 1);
    for (int c = 0; c < C; c++)
        cr_assert_eq(out[c], 0.0f);
    for (int i = 0; i < N; i++)
        cr_assert(isfinite(out[i]));
}

/* ---- the attention block --------------------------------------------------------------- */

typedef struct mha_d {
    double *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
} mha_d;

static void linear_d(double *out, const double *x, const double *w, const double *b, int N, int Cin,
                     int Cout)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < Cout; o++) {
            double s = b ? b[o] : 0.0;
            for (int c = 0; c < Cin; c++)
                s += x[(size_t)n * Cin + c] * w[(size_t)o * Cin + c];
            out[(size_t)n * Cout + o] = s;
        }
}

typedef struct mha_ctx {
    const double *xq, *xkv, *G;
    const mha_d *w;
    const uint8_t *qm, *km;
    int B, Tq, Tk, Cq, Ckv, C, NH, causal;
} mha_ctx;

static void mha_forward_d(double *out, const mha_ctx *c)
{
    const size_t nq = (size_t)c->B * c->Tq * c->C, nk = (size_t)c->B * c->Tk * c->C;
    double *q = malloc(nq * 8), *k = malloc(nk * 8), *v = malloc(nk * 8), *ctx = malloc(nq * 8);
    linear_d(q, c->xq, c->w->wq, c->w->bq, c->B * c->Tq, c->Cq, c->C);
    linear_d(k, c->xkv, c->w->wk, c->w->bk, c->B * c->Tk, c->Ckv, c->C);
    linear_d(v, c->xkv, c->w->wv, c->w->bv, c->B * c->Tk, c->Ckv, c->C);
    attn_d(ctx, q, k, v, c->qm, c->km, c->B, c->Tq, c->Tk, c->C, c->NH, c->causal);
    linear_d(out, ctx, c->w->wo, c->w->bo, c->B * c->Tq, c->C, c->C);
    for (int bt = 0; c->qm && bt < c->B * c->Tq; bt++)
        if (!c->qm[bt])
            for (int j = 0; j < c->C; j++)
                out[(size_t)bt * c->C + j] = 0.0;
    free(q), free(k), free(v), free(ctx);
}

static double mha_loss(void *p)
{
    mha_ctx *c = p;
    size_t n = (size_t)c->B * c->Tq * c->C;
    double *out = malloc(n * 8);
    mha_forward_d(out, c);
    double L = tu_dot(c->G, out, n);
    free(out);
    return L;
}

/* One attention block's parameters in one allocation, float and double, with gradients. */
typedef struct mha_fixture {
    int Cq, Ckv, C;
    size_t n; /* parameter count */
    float *p, *g;
    double *pd;
    sb_nn_mha_weights w;
    sb_nn_mha_grads gr;
    mha_d wd;
    size_t off[8], len[8];
} mha_fixture;

/* no_bias: bitmask over (bq, bk, bv, bo) of biases left out */
static void mha_fixture_init(mha_fixture *f, int Cq, int Ckv, int C, unsigned no_bias,
                             uint64_t seed)
{
    f->Cq = Cq, f->Ckv = Ckv, f->C = C;
    const size_t len[8] = { (size_t)C * Cq,      no_bias & 1 ? 0 : C, (size_t)C * Ckv,
                            no_bias & 2 ? 0 : C, (size_t)C * Ckv,     no_bias & 4 ? 0 : C,
                            (size_t)C * C,       no_bias & 8 ? 0 : C };
    f->n = 0;
    for (int i = 0; i < 8; i++) {
        f->off[i] = f->n;
        f->len[i] = len[i];
        f->n += len[i];
    }
    f->p = malloc(f->n * 4);
    f->g = calloc(f->n, 4);
    tu_fill_uniform(f->p, f->n, seed);
    f->pd = tu_to_double(f->p, f->n);
    const float *P[8];
    float *Gp[8];
    double *D[8];
    for (int i = 0; i < 8; i++) {
        P[i] = f->len[i] ? f->p + f->off[i] : NULL;
        Gp[i] = f->len[i] ? f->g + f->off[i] : NULL;
        D[i] = f->len[i] ? f->pd + f->off[i] : NULL;
    }
    f->w = (sb_nn_mha_weights){ P[0], P[1], P[2], P[3], P[4], P[5], P[6], P[7] };
    f->gr = (sb_nn_mha_grads){ Gp[0], Gp[1], Gp[2], Gp[3], Gp[4], Gp[5], Gp[6], Gp[7] };
    f->wd = (mha_d){ D[0], D[1], D[2], D[3], D[4], D[5], D[6], D[7] };
}

static void mha_fixture_free(mha_fixture *f)
{
    free(f->p);
    free(f->g);
    free(f->pd);
}

static const char *const mha_param_names[8] = { "wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo" };

/* Forward and backward of the block against the reference; self-attention when xkv is
 * NULL (then xq is both inputs and dxq == dxkv). */
static void check_mha(const char *name, int B, int Tq, int Tk, int Cq, int Ckv, int C, int NH,
                      int causal, const uint8_t *qm, const uint8_t *km, unsigned no_bias,
                      uint64_t seed)
{
    const int self = Ckv == 0;
    if (self) {
        Ckv = Cq;
        Tk = Tq;
        km = qm;
    }
    mha_fixture f;
    mha_fixture_init(&f, Cq, Ckv, C, no_bias, seed);
    const size_t nxq = (size_t)B * Tq * Cq, nxkv = (size_t)B * Tk * Ckv, nout = (size_t)B * Tq * C;
    float *xq = malloc(nxq * 4), *xkv = self ? xq : malloc(nxkv * 4), *G = malloc(nout * 4);
    float *out = malloc(nout * 4), *acts = malloc(sb_nn_mha_acts_size(B, Tq, Tk, C, NH) * 4);
    float *scratch = malloc(sb_nn_mha_scratch_size(B, Tq, Tk, C) * 4);
    float *dxq = calloc(nxq, 4), *dxkv = self ? dxq : calloc(nxkv, 4);
    tu_fill_uniform(xq, nxq, seed + 1);
    if (!self)
        tu_fill_uniform(xkv, nxkv, seed + 2);
    tu_fill_uniform(G, nout, seed + 3);
    sb_nn_mha_forward(out, acts, xq, xkv, qm, km, &f.w, B, Tq, Tk, Cq, Ckv, C, NH, causal);
    sb_nn_mha_backward(dxq, dxkv, &f.gr, scratch, G, acts, xq, xkv, qm, &f.w, B, Tq, Tk, Cq, Ckv, C,
                       NH);

    double *xqd = tu_to_double(xq, nxq), *xkvd = self ? xqd : tu_to_double(xkv, nxkv);
    double *Gd = tu_to_double(G, nout), *ref = malloc(nout * 8);
    mha_ctx ctx = { xqd, xkvd, Gd, &f.wd, qm, km, B, Tq, Tk, Cq, Ckv, C, NH, causal };
    mha_forward_d(ref, &ctx);
    char what[128];
    snprintf(what, sizeof what, "%s: out", name);
    tu_check_close(what, out, ref, nout, 1e-5, 1e-4);
    snprintf(what, sizeof what, "%s: dxq%s", name, self ? " (= dxkv)" : "");
    tu_check_grad(what, dxq, xqd, nxq, mha_loss, &ctx, 1e-5, 5e-5, 1e-3);
    if (!self) {
        snprintf(what, sizeof what, "%s: dxkv", name);
        tu_check_grad(what, dxkv, xkvd, nxkv, mha_loss, &ctx, 1e-5, 5e-5, 1e-3);
    }
    for (int i = 0; i < 8; i++) {
        if (!f.len[i])
            continue;
        snprintf(what, sizeof what, "%s: d%s", name, mha_param_names[i]);
        tu_check_grad(what, f.g + f.off[i], f.pd + f.off[i], f.len[i], mha_loss, &ctx, 1e-5, 5e-5,
                      1e-3);
    }

    /* without parameter gradients the input gradients are the same */
    float *dxq2 = calloc(nxq, 4), *dxkv2 = self ? dxq2 : calloc(nxkv, 4);
    sb_nn_mha_backward(dxq2, dxkv2, NULL, scratch, G, acts, xq, xkv, qm, &f.w, B, Tq, Tk, Cq, Ckv,
                       C, NH);
    cr_assert(memcmp(dxq, dxq2, nxq * 4) == 0, "%s: dxq differs with g = NULL", name);
    cr_assert(self || memcmp(dxkv, dxkv2, nxkv * 4) == 0, "%s: dxkv differs with g = NULL", name);

    /* padded positions: zero output rows, zero input gradient */
    for (int bt = 0; qm && bt < B * Tq; bt++)
        if (!qm[bt])
            for (int c = 0; c < C; c++)
                cr_assert_eq(out[(size_t)bt * C + c], 0.0f, "%s: padded out row %d", name, bt);
    for (int bt = 0; qm && km && bt < B * Tq; bt++)
        if (!qm[bt] && (!self || !km[bt]))
            for (int c = 0; c < Cq; c++)
                cr_assert_eq(dxq[(size_t)bt * Cq + c], 0.0f, "%s: padded dxq row %d", name, bt);
    for (int bt = 0; !self && km && bt < B * Tk; bt++)
        if (!km[bt])
            for (int c = 0; c < Ckv; c++)
                cr_assert_eq(dxkv[(size_t)bt * Ckv + c], 0.0f, "%s: padded dxkv row %d", name, bt);

    if (!self)
        free(xkv), free(dxkv), free(xkvd), free(dxkv2);
    free(xq), free(G), free(out), free(acts), free(scratch), free(dxq), free(dxq2);
    free(xqd), free(Gd), free(ref);
    mha_fixture_free(&f);
}

Test(mha, self_attention_block_matches_reference)
{
    uint8_t *m = lengths_mask(2, 5, 2);
    check_mha("self B2 T5 C8/2", 2, 5, 0, 6, 0, 8, 2, 0, NULL, NULL, 0, 11);
    check_mha("self causal", 2, 5, 0, 6, 0, 8, 2, 1, NULL, NULL, 0, 12);
    check_mha("self masked", 2, 5, 0, 6, 0, 8, 2, 0, m, NULL, 0, 13);
    check_mha("self masked causal no biases", 2, 5, 0, 6, 0, 8, 4, 1, m, NULL, 15, 14);
    check_mha("self one frame", 1, 1, 0, 3, 0, 4, 1, 0, NULL, NULL, 0, 15);
    free(m);
}

Test(mha, cross_attention_block_matches_reference)
{
    uint8_t *qm = lengths_mask(3, 4, 1), *km = lengths_mask(3, 6, 2);
    check_mha("cross", 2, 4, 6, 5, 7, 6, 3, 0, NULL, NULL, 0, 21);
    check_mha("cross both masked", 3, 4, 6, 5, 7, 6, 3, 0, qm, km, 0, 22);
    check_mha("cross masked, no bk/bo", 3, 4, 6, 5, 7, 6, 2, 0, qm, km, 2 | 8, 23);
    check_mha("cross one key", 2, 3, 1, 4, 2, 4, 2, 0, NULL, NULL, 0, 24);
    free(qm);
    free(km);
}

Test(mha, padded_inputs_do_not_affect_real_outputs)
{
    enum { B = 2, Tq = 4, Tk = 5, Cq = 3, Ckv = 5, C = 4, NH = 2 };
    const uint8_t qm[B * Tq] = { 1, 1, 1, 0, 1, 1, 0, 0 };
    const uint8_t km[B * Tk] = { 1, 1, 1, 1, 0, 1, 0, 0, 0, 0 };
    mha_fixture f;
    mha_fixture_init(&f, Cq, Ckv, C, 0, 31);
    float xq[B * Tq * Cq], xkv[B * Tk * Ckv], out[B * Tq * C], out2[B * Tq * C];
    float *acts = malloc(sb_nn_mha_acts_size(B, Tq, Tk, C, NH) * 4);
    tu_fill_uniform(xq, sizeof xq / 4, 32);
    tu_fill_uniform(xkv, sizeof xkv / 4, 33);
    sb_nn_mha_forward(out, acts, xq, xkv, qm, km, &f.w, B, Tq, Tk, Cq, Ckv, C, NH, 0);
    for (int bt = 0; bt < B * Tq; bt++)
        if (!qm[bt])
            for (int c = 0; c < Cq; c++)
                xq[bt * Cq + c] = 9.0f;
    for (int bt = 0; bt < B * Tk; bt++)
        if (!km[bt])
            for (int c = 0; c < Ckv; c++)
                xkv[bt * Ckv + c] = -9.0f;
    sb_nn_mha_forward(out2, acts, xq, xkv, qm, km, &f.w, B, Tq, Tk, Cq, Ckv, C, NH, 0);
    cr_assert(memcmp(out, out2, sizeof out) == 0);
    free(acts);
    mha_fixture_free(&f);
}

Test(mha, check_rejects_bad_widths)
{
    sb_error err = { 0 };
    cr_assert_eq(sb_nn_mha_check(768, 384, 256, 4, &err), SB_OK);
    cr_assert_eq(sb_nn_mha_check(768, 384, 250, 4, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "250") && strstr(err.msg, "4 heads"), "message: %s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(sb_nn_mha_check(0, 384, 256, 4, &err), SB_ERR_INVALID);
    cr_assert(strstr(err.msg, "query input 0"), "message: %s", err.msg);
    sb_error_clear(&err);
    cr_assert_eq(sb_nn_mha_check(8, 8, 8, 0, &err), SB_ERR_INVALID);
}
