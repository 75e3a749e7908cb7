/* plugins/heads/hierarchical/hier_model.c — the hierarchical head's three stages as
 * forward/backward passes over nn_train.h layers, the parameter table and the work buffers.
 *
 * Stage 1, branch b, one utterance x (L,D):
 *   z = (x - mu) * inv_sd;  hbar = sum_l softmax(a)[l] z[l];  g = gelu(W1 hbar + b1) (C)
 *   e = dropout(g);  logits = Wc e + bc (K')          g is the utterance embedding
 * Stage 2, branch b, a window of turns t with embeddings g_t (frozen stage 1):
 *   x0_t = g_t + PE(t) [+ spk[s_t]];  x = dropout(x0)
 *   transformer: per layer x += MHA(LN1(x)); x += W2 gelu(W1 LN2(x)); o = LNf(x)
 *   bigru:       r = BiGRU(x) (H = C/2 each way); o = LN(r + MHA(r))
 *   logits_t = Wc dropout(o_t) + bc                    o_t is the context output
 * Stage 3 over the branches' context outputs c_b (frozen stage 2):
 *   coattention: f_b = LN_b(c_b + MHA_b(q = c_b, kv = c_{(b+1) mod NB})); concat: f_b = c_b
 *   logits_t = Wc dropout([f_0 | f_1 | ...]_t) + bc */
#include "hier.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5f
#define STREAM_INIT 0x6869722d696e6974ull /* "hir-init" */

/* ---- the parameter table ----------------------------------------------------------------- */

typedef struct cursor {
    hier_head *h;
    size_t off;
    int stage, branch;
} cursor;

/* Adds a tensor of shape (r, c) (c == 0: a vector of r) and points *p / *g into params /
 * grads once they exist. */
static void reg(cursor *cu, float **p, float **g, int64_t r, int64_t c, int decay, int output,
                int init, float scale, const char *fmt, ...) SB_PRINTF(10, 11);
static void reg(cursor *cu, float **p, float **g, int64_t r, int64_t c, int decay, int output,
                int init, float scale, const char *fmt, ...)
{
    hier_head *h = cu->h;
    size_t n = (size_t)r * (size_t)(c ? c : 1);
    if (h->params) {
        hier_tensor *t = &h->tensors[h->n_tensors++];
        va_list ap;
        *t = (hier_tensor){ .off = cu->off,
                            .n = n,
                            .ndim = c ? 2 : 1,
                            .shape = { r, c },
                            .decay = decay,
                            .stage = cu->stage,
                            .branch = cu->branch,
                            .output = output,
                            .init = init,
                            .scale = scale };
        va_start(ap, fmt);
        vsnprintf(t->name, sizeof t->name, fmt, ap);
        va_end(ap);
        *p = h->params + cu->off;
        *g = h->grads + cu->off;
    }
    cu->off += n;
}

/* An attention block's 4 matrices (C,C) and 4 biases, for inputs of width C. */
static void reg_mha(cursor *cu, sb_nn_mha_grads *p, sb_nn_mha_grads *g, int C, const char *pre)
{
    float bound = 1.0f / sqrtf((float)C);
    reg(cu, &p->wq, &g->wq, C, C, 1, 0, HIER_INIT_UNIFORM, bound, "%s.wq", pre);
    reg(cu, &p->bq, &g->bq, C, 0, 0, 0, HIER_INIT_ZERO, 0, "%s.bq", pre);
    reg(cu, &p->wk, &g->wk, C, C, 1, 0, HIER_INIT_UNIFORM, bound, "%s.wk", pre);
    reg(cu, &p->bk, &g->bk, C, 0, 0, 0, HIER_INIT_ZERO, 0, "%s.bk", pre);
    reg(cu, &p->wv, &g->wv, C, C, 1, 0, HIER_INIT_UNIFORM, bound, "%s.wv", pre);
    reg(cu, &p->bv, &g->bv, C, 0, 0, 0, HIER_INIT_ZERO, 0, "%s.bv", pre);
    reg(cu, &p->wo, &g->wo, C, C, 1, 0, HIER_INIT_UNIFORM, bound, "%s.wo", pre);
    reg(cu, &p->bo, &g->bo, C, 0, 0, 0, HIER_INIT_ZERO, 0, "%s.bo", pre);
}

static void reg_gru(cursor *cu, sb_nn_gru_grads *p, sb_nn_gru_grads *g, int C, int H,
                    const char *pre)
{
    float bound = 1.0f / sqrtf((float)H);
    reg(cu, &p->w_ih, &g->w_ih, 3 * H, C, 1, 0, HIER_INIT_UNIFORM, bound, "%s.w_ih", pre);
    reg(cu, &p->w_hh, &g->w_hh, 3 * H, H, 1, 0, HIER_INIT_UNIFORM, bound, "%s.w_hh", pre);
    reg(cu, &p->b_ih, &g->b_ih, 3 * H, 0, 0, 0, HIER_INIT_UNIFORM, bound, "%s.b_ih", pre);
    reg(cu, &p->b_hh, &g->b_hh, 3 * H, 0, 0, 0, HIER_INIT_UNIFORM, bound, "%s.b_hh", pre);
}

static void reg_ln(cursor *cu, float **pw, float **gw, float **pb, float **gb, int C,
                   const char *pre)
{
    reg(cu, pw, gw, C, 0, 0, 0, HIER_INIT_ONE, 0, "%s.w", pre);
    reg(cu, pb, gb, C, 0, 0, 0, HIER_INIT_ZERO, 0, "%s.b", pre);
}

/* Walks the whole model in buffer order: per branch stage 1 then stage 2, then stage 3. */
static void layout(hier_head *h)
{
    cursor cu = { h, 0, 0, 0 };
    int C = h->C, KO = h->KO, F = h->F;
    char pre[256];
    h->n_tensors = 0;
    for (int b = 0; b < h->NB; b++) {
        branch *br = &h->br[b];
        s1_params *p1 = &br->p1, *g1 = &br->g1;
        cu.stage = 1;
        cu.branch = b;
        br->s1_off = cu.off;
        float bd = 1.0f / sqrtf((float)br->D), bc = 1.0f / sqrtf((float)C);
        reg(&cu, &p1->a, &g1->a, br->L, 0, 0, 0, HIER_INIT_ZERO, 0, "s1.%s.layer_logits", br->name);
        reg(&cu, &p1->w1, &g1->w1, C, br->D, 1, 0, HIER_INIT_UNIFORM, bd, "s1.%s.proj.w", br->name);
        reg(&cu, &p1->b1, &g1->b1, C, 0, 0, 0, HIER_INIT_UNIFORM, bd, "s1.%s.proj.b", br->name);
        reg(&cu, &p1->wc, &g1->wc, KO, C, 1, 1, HIER_INIT_UNIFORM, bc, "s1.%s.out.w", br->name);
        reg(&cu, &p1->bc, &g1->bc, KO, 0, 0, 1, HIER_INIT_UNIFORM, bc, "s1.%s.out.b", br->name);
        br->s1_end = cu.off;

        s2_params *p2 = &br->p2, *g2 = &br->g2;
        cu.stage = 2;
        br->s2_off = cu.off;
        if (h->speakers)
            reg(&cu, &p2->spk, &g2->spk, h->max_speakers, C, 0, 0, HIER_INIT_NORMAL, 0.02f,
                "s2.%s.speaker", br->name);
        if (h->context == CTX_TRANSFORMER) {
            float bf = 1.0f / sqrtf((float)F);
            for (int l = 0; l < h->n_layers; l++) {
                tlayer *pl = &p2->lay[l], *gl = &g2->lay[l];
                snprintf(pre, sizeof pre, "s2.%s.l%d.ln1", br->name, l);
                reg_ln(&cu, &pl->ln1w, &gl->ln1w, &pl->ln1b, &gl->ln1b, C, pre);
                snprintf(pre, sizeof pre, "s2.%s.l%d.att", br->name, l);
                reg_mha(&cu, &pl->att, &gl->att, C, pre);
                snprintf(pre, sizeof pre, "s2.%s.l%d.ln2", br->name, l);
                reg_ln(&cu, &pl->ln2w, &gl->ln2w, &pl->ln2b, &gl->ln2b, C, pre);
                reg(&cu, &pl->f1w, &gl->f1w, F, C, 1, 0, HIER_INIT_UNIFORM, bc, "s2.%s.l%d.ffn1.w",
                    br->name, l);
                reg(&cu, &pl->f1b, &gl->f1b, F, 0, 0, 0, HIER_INIT_UNIFORM, bc, "s2.%s.l%d.ffn1.b",
                    br->name, l);
                reg(&cu, &pl->f2w, &gl->f2w, C, F, 1, 0, HIER_INIT_UNIFORM, bf, "s2.%s.l%d.ffn2.w",
                    br->name, l);
                reg(&cu, &pl->f2b, &gl->f2b, C, 0, 0, 0, HIER_INIT_UNIFORM, bf, "s2.%s.l%d.ffn2.b",
                    br->name, l);
            }
        } else {
            snprintf(pre, sizeof pre, "s2.%s.gru_fwd", br->name);
            reg_gru(&cu, &p2->gf, &g2->gf, C, C / 2, pre);
            snprintf(pre, sizeof pre, "s2.%s.gru_bwd", br->name);
            reg_gru(&cu, &p2->gb, &g2->gb, C, C / 2, pre);
            snprintf(pre, sizeof pre, "s2.%s.att", br->name);
            reg_mha(&cu, &p2->att, &g2->att, C, pre);
        }
        snprintf(pre, sizeof pre, "s2.%s.ln", br->name);
        reg_ln(&cu, &p2->lnw, &g2->lnw, &p2->lnb, &g2->lnb, C, pre);
        reg(&cu, &p2->wc, &g2->wc, KO, C, 1, 1, HIER_INIT_UNIFORM, bc, "s2.%s.out.w", br->name);
        reg(&cu, &p2->bc, &g2->bc, KO, 0, 0, 1, HIER_INIT_UNIFORM, bc, "s2.%s.out.b", br->name);
        br->s2_end = cu.off;
    }
    cu.stage = 3;
    cu.branch = -1;
    h->s3_off = cu.off;
    if (h->NB >= 2) {
        if (h->fusion == FUSE_COATTENTION)
            for (int b = 0; b < h->NB; b++) {
                snprintf(pre, sizeof pre, "s3.att%d", b);
                reg_mha(&cu, &h->p3.att[b], &h->g3.att[b], C, pre);
                snprintf(pre, sizeof pre, "s3.ln%d", b);
                reg_ln(&cu, &h->p3.lnw[b], &h->g3.lnw[b], &h->p3.lnb[b], &h->g3.lnb[b], C, pre);
            }
        float bcat = 1.0f / sqrtf((float)(C * h->NB));
        reg(&cu, &h->p3.wc, &h->g3.wc, KO, (int64_t)C * h->NB, 1, 1, HIER_INIT_UNIFORM, bcat,
            "s3.out.w");
        reg(&cu, &h->p3.bc, &h->g3.bc, KO, 0, 0, 1, HIER_INIT_UNIFORM, bcat, "s3.out.b");
    }
    h->s3_end = cu.off;
    h->n_params = cu.off;
}

void hier_free_model(hier_head *h)
{
    /* the work buffers are sized for this model's branches (L, D, their count): the next
     * model reserves its own */
    hier_work1_free(&h->w1);
    hier_work2_free(&h->w2);
    free(h->params);
    free(h->grads);
    free(h->m);
    free(h->v);
    h->params = h->grads = h->m = h->v = NULL;
    for (int b = 0; b < HIER_MAX_BRANCHES; b++) {
        free(h->br[b].mu);
        free(h->br[b].inv_sd);
        h->br[b].mu = h->br[b].inv_sd = NULL;
    }
    h->built = 0;
    h->n_tensors = 0;
}

sb_status hier_build(hier_head *h, sb_error *err)
{
    hier_free_model(h);
    layout(h); /* counts */
    size_t np = h->n_params;
    h->params = calloc(np ? np : 1, sizeof(float));
    h->grads = calloc(np ? np : 1, sizeof(float));
    h->m = calloc(np ? np : 1, sizeof(float));
    h->v = calloc(np ? np : 1, sizeof(float));
    int ok = h->params && h->grads && h->m && h->v;
    for (int b = 0; b < h->NB && ok; b++) {
        size_t LD = (size_t)h->br[b].L * (size_t)h->br[b].D;
        h->br[b].mu = calloc(LD, sizeof(float));
        h->br[b].inv_sd = malloc(LD * sizeof(float));
        ok = h->br[b].mu && h->br[b].inv_sd;
        for (size_t i = 0; ok && i < LD; i++)
            h->br[b].inv_sd[i] = 1.0f;
    }
    if (!ok) {
        hier_free_model(h);
        return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory for %zu parameters", np);
    }
    layout(h); /* binds the views and fills the table */
    h->built = 1;
    return SB_OK;
}

void hier_init_stage(hier_head *h, int stage, int b, int outputs_only)
{
    sb_rng r;
    sb_rng_seed(&r, h->host->seed, STREAM_INIT + (uint64_t)stage * 64u + (uint64_t)(b + 1));
    for (int i = 0; i < h->n_tensors; i++) {
        const hier_tensor *t = &h->tensors[i];
        if (t->stage != stage || (stage != 3 && t->branch != b))
            continue;
        /* with outputs_only the other tensors' values are drawn and dropped, so the
         * classifier gets the draws it gets in a fresh model */
        int keep = !outputs_only || t->output;
        float *p = h->params + t->off;
        for (size_t j = 0; j < t->n; j++) {
            float v;
            switch (t->init) {
            case HIER_INIT_UNIFORM: v = (float)((2.0 * sb_rng_uniform(&r) - 1.0) * t->scale); break;
            case HIER_INIT_NORMAL: v = (float)(sb_rng_normal(&r) * t->scale); break;
            case HIER_INIT_ONE: v = 1.0f; break;
            default: v = 0.0f; break;
            }
            if (keep)
                p[j] = v;
        }
    }
}

/* ---- work buffers ------------------------------------------------------------------------ */

static void *take(void **allocs, int *n, int *ok, size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size);
    if (!p)
        *ok = 0;
    else
        allocs[(*n)++] = p;
    return p;
}

void hier_work1_free(work1 *w)
{
    for (int i = 0; i < w->n_allocs; i++)
        free(w->allocs[i]);
    memset(w, 0, sizeof *w);
}

sb_status hier_work1_reserve(hier_head *h, int cap, sb_error *err)
{
    work1 *w = &h->w1;
    if (w->cap >= cap)
        return SB_OK;
    hier_work1_free(w);
    size_t LD = 0, Dm = 0, Lm = 0, n = (size_t)cap, C = (size_t)h->C, KO = (size_t)h->KO;
    for (int b = 0; b < h->NB; b++) {
        size_t ld = (size_t)h->br[b].L * (size_t)h->br[b].D;
        LD = ld > LD ? ld : LD;
        Dm = (size_t)h->br[b].D > Dm ? (size_t)h->br[b].D : Dm;
        Lm = (size_t)h->br[b].L > Lm ? (size_t)h->br[b].L : Lm;
    }
    int ok = 1;
#define T1(field, count, type) w->field = take(w->allocs, &w->n_allocs, &ok, (count), sizeof(type))
    T1(zb, n * LD, float);
    T1(hbar, n * Dm, float);
    T1(dhbar, n * Dm, float);
    T1(u, n * C, float);
    T1(g, n * C, float);
    T1(e, n * C, float);
    T1(de, n * C, float);
    T1(dg, n * C, float);
    T1(du, n * C, float);
    T1(mask, n * C, uint8_t);
    T1(logits, n * KO, float);
    T1(probs, n * KO, float);
    T1(dlogits, n * KO, float);
    T1(losses, n, float);
    T1(tb, n, float);
    T1(yb, n, int32_t);
    T1(wl, Lm, float);
    T1(dwl, Lm, double);
#undef T1
    if (!ok) {
        hier_work1_free(w);
        return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory for a batch of %d rows",
                            cap);
    }
    w->cap = cap;
    return SB_OK;
}

void hier_work2_free(work2 *w)
{
    for (int i = 0; i < w->n_allocs; i++)
        free(w->allocs[i]);
    memset(w, 0, sizeof *w);
}

sb_status hier_work2_reserve(hier_head *h, int B, int T, sb_error *err)
{
    work2 *w = &h->w2;
    if (w->B >= B && w->T >= T)
        return SB_OK;
    if (w->B > B)
        B = w->B;
    if (w->T > T)
        T = w->T;
    hier_work2_free(w);
    size_t N = (size_t)B * (size_t)T, C = (size_t)h->C, F = (size_t)h->F, KO = (size_t)h->KO;
    size_t NBC = N * C * (size_t)(h->NB > 0 ? h->NB : 1);
    size_t macts = sb_nn_mha_acts_size(B, T, T, h->C, h->NH);
    int ok = 1;
#define T2(field, count, type) w->field = take(w->allocs, &w->n_allocs, &ok, (count), sizeof(type))
    T2(mask, N, uint8_t);
    T2(row, N, size_t);
    T2(rrows, N, size_t);
    T2(spk, N, int);
    T2(pos, N, int);
    T2(x0, N * C, float);
    T2(m_in, N * C, uint8_t);
    T2(xl[0], N * C, float);
    if (h->context == CTX_TRANSFORMER) {
        for (int l = 0; l < h->n_layers; l++) {
            T2(xl[l + 1], N * C, float);
            T2(y1[l], N * C, float);
            T2(mean1[l], N, float);
            T2(rstd1[l], N, float);
            T2(acts[l], macts, float);
            T2(xm[l], N * C, float);
            T2(y2[l], N * C, float);
            T2(mean2[l], N, float);
            T2(rstd2[l], N, float);
            T2(f1[l], N * F, float);
            T2(f1g[l], N * F, float);
        }
        T2(df, N * F, float);
        T2(df1g, N * F, float);
    } else {
        int H = h->C / 2;
        T2(g, N * C, float);
        T2(gacts, 2 * sb_nn_gru_acts_size(B, T, H), float);
        T2(gscratch, sb_nn_gru_scratch_size(B, T, H), float);
        T2(gacts_att, macts, float);
        T2(s, N * C, float);
    }
    T2(o, N * C, float);
    T2(meanf, N, float);
    T2(rstdf, N, float);
    T2(od, N * C, float);
    T2(m_o, N * C, uint8_t);
    T2(logits, N * KO, float);
    T2(probs, N * KO, float);
    T2(dlogits, N * KO, float);
    T2(losses, N, float);
    T2(tb, N, float);
    T2(yb, N, int32_t);
    T2(dx, N * C, float);
    T2(dy, N * C, float);
    T2(dt, N * C, float);
    T2(mscratch, sb_nn_mha_scratch_size(B, T, T, h->C), float);
    if (h->NB >= 2) {
        for (int b = 0; b < h->NB; b++) {
            T2(c[b], N * C, float);
            if (h->fusion == FUSE_COATTENTION) {
                T2(a3[b], N * C, float);
                T2(s3[b], N * C, float);
                T2(f3[b], N * C, float);
                T2(mean3[b], N, float);
                T2(rstd3[b], N, float);
                T2(acts3[b], macts, float);
            }
        }
        if (!h->freeze)
            for (int b = 0; b < h->NB; b++)
                T2(dc[b], N * C, float);
        T2(cat, NBC, float);
        T2(catd, NBC, float);
        T2(dcat, NBC, float);
        T2(m_cat, NBC, uint8_t);
    }
#undef T2
    if (!ok) {
        hier_work2_free(w);
        return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO,
                            "out of memory for a batch of %d dialogues x %d turns", B, T);
    }
    w->B = B;
    w->T = T;
    return SB_OK;
}

/* ---- losses ------------------------------------------------------------------------------ */

double hier_head_loss(hier_head *h, int N, const float *logits, const float *probs, float *dlogits,
                      float *losses, const int32_t *yb, const float *tb, int grad)
{
    if (h->K > 0) {
        double loss = sb_nn_xent_forward(losses, probs, yb, h->class_w, N, h->K);
        if (grad) {
            memset(dlogits, 0, (size_t)N * (size_t)h->K * sizeof(float));
            sb_nn_xent_backward(dlogits, probs, yb, h->class_w, N, h->K);
        }
        return loss;
    }
    double loss =
        h->l1 ? sb_nn_l1_forward(logits, tb, (size_t)N) : sb_nn_mse_forward(logits, tb, (size_t)N);
    if (grad) {
        memset(dlogits, 0, (size_t)N * sizeof(float));
        if (h->l1)
            sb_nn_l1_backward(dlogits, logits, tb, (size_t)N);
        else
            sb_nn_mse_backward(dlogits, logits, tb, (size_t)N);
    }
    return loss;
}

/* ---- stage 1 ----------------------------------------------------------------------------- */

void hier_s1_forward(hier_head *h, int b, const float *x, const size_t *rows, int n, int train)
{
    const branch *br = &h->br[b];
    work1 *w = &h->w1;
    const int L = br->L, D = br->D, C = h->C;
    const size_t LD = (size_t)L * (size_t)D;
    for (int i = 0; i < n; i++) {
        const float *x_r = x + rows[i] * LD;
        float *z_i = w->zb + (size_t)i * LD;
        for (size_t j = 0; j < LD; j++)
            z_i[j] = (x_r[j] - br->mu[j]) * br->inv_sd[j];
    }
    hd_layer_weights(h->learn_layers, br->p1.a, L, w->wl);
    for (int i = 0; i < n; i++) {
        float *hb = w->hbar + (size_t)i * D;
        const float *z_i = w->zb + (size_t)i * LD;
        memset(hb, 0, (size_t)D * sizeof(float));
        for (int l = 0; l < L; l++) {
            float wl = w->wl[l];
            const float *z_il = z_i + (size_t)l * D;
            for (int d = 0; d < D; d++)
                hb[d] += wl * z_il[d];
        }
    }
    size_t nc = (size_t)n * (size_t)C;
    sb_nn_linear_forward(w->u, w->hbar, br->p1.w1, br->p1.b1, n, D, C);
    sb_nn_gelu_forward(w->g, w->u, nc);
    if (train)
        sb_nn_dropout_forward(w->e, w->mask, w->g, h->dropout, nc, &h->drop_rng);
    else
        memcpy(w->e, w->g, nc * sizeof(float));
    sb_nn_linear_forward(w->logits, w->e, br->p1.wc, br->p1.bc, n, C, h->KO);
    if (h->K > 0)
        sb_nn_softmax_forward(w->probs, w->logits, n, h->K);
}

double hier_s1_loss(hier_head *h, int n)
{
    work1 *w = &h->w1;
    return hier_head_loss(h, n, w->logits, w->probs, w->dlogits, w->losses, w->yb, w->tb, 1);
}

void hier_s1_backward(hier_head *h, int b, int n)
{
    branch *br = &h->br[b];
    work1 *w = &h->w1;
    const int C = h->C;
    size_t nc = (size_t)n * (size_t)C;
    memset(w->de, 0, nc * sizeof(float));
    sb_nn_linear_backward(w->de, br->g1.wc, br->g1.bc, w->dlogits, w->e, br->p1.wc, n, C, h->KO);
    memset(w->dg, 0, nc * sizeof(float));
    sb_nn_dropout_backward(w->dg, w->de, w->mask, h->dropout, nc);
    hier_s1_backward_embed(h, b, n);
}

void hier_s1_backward_embed(hier_head *h, int b, int n)
{
    branch *br = &h->br[b];
    work1 *w = &h->w1;
    const int L = br->L, D = br->D, C = h->C;
    size_t nc = (size_t)n * (size_t)C;
    memset(w->du, 0, nc * sizeof(float));
    sb_nn_gelu_backward(w->du, w->dg, w->u, nc);
    if (h->learn_layers)
        memset(w->dhbar, 0, (size_t)n * (size_t)D * sizeof(float));
    sb_nn_linear_backward(h->learn_layers ? w->dhbar : NULL, br->g1.w1, br->g1.b1, w->du, w->hbar,
                          br->p1.w1, n, D, C);
    if (!h->learn_layers)
        return;
    /* dw[l] = sum_i sum_d dhbar[i,d] z[i,l,d]; through the softmax:
     * da[j] = w[j] (dw[j] - sum_l w[l] dw[l]) */
    const size_t LD = (size_t)L * (size_t)D;
    double *dw = w->dwl, mean = 0.0;
    for (int l = 0; l < L; l++)
        dw[l] = 0.0;
    for (int i = 0; i < n; i++) {
        const float *dh_i = w->dhbar + (size_t)i * D;
        for (int l = 0; l < L; l++) {
            const float *z_il = w->zb + (size_t)i * LD + (size_t)l * D;
            double s = 0.0;
            for (int d = 0; d < D; d++)
                s += (double)dh_i[d] * z_il[d];
            dw[l] += s;
        }
    }
    for (int l = 0; l < L; l++)
        mean += w->wl[l] * dw[l];
    for (int l = 0; l < L; l++)
        br->g1.a[l] += (float)(w->wl[l] * (dw[l] - mean));
}

void hier_s1_embed(hier_head *h, int b, const float *x, const size_t *rows, size_t n, float *out)
{
    work1 *w = &h->w1;
    size_t C = (size_t)h->C;
    assert(w->cap >= HIER_EVAL_ROWS);
    for (size_t s = 0; s < n; s += HIER_EVAL_ROWS) {
        int m = (int)(n - s < HIER_EVAL_ROWS ? n - s : HIER_EVAL_ROWS);
        hier_s1_forward(h, b, x, rows + s, m, 0);
        memcpy(out + s * C, w->g, (size_t)m * C * sizeof(float));
    }
}

/* ---- batches ----------------------------------------------------------------------------- */

int hier_batch_layout(hier_head *h, const hier_plan *p, size_t bi, int *B)
{
    work2 *w = &h->w2;
    int cnt = p->b_n[bi], T = p->b_T[bi];
    for (int k = 0; k < cnt; k++) {
        size_t win = p->order[p->b_first[bi] + (size_t)k];
        int len = p->len[win];
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)k * (size_t)T + (size_t)t;
            int real = t < len;
            w->mask[i] = (uint8_t)real;
            w->row[i] = real ? p->rows[p->first[win] + (size_t)t] : SIZE_MAX;
            w->spk[i] = real ? p->spk[p->first[win] + (size_t)t] : 0;
            w->pos[i] = real ? t : 0;
        }
    }
    *B = cnt;
    return T;
}

void hier_batch_targets(hier_head *h, const int32_t *y, const double *value, int N)
{
    work2 *w = &h->w2;
    for (int i = 0; i < N; i++) {
        size_t r = w->row[i];
        int real = r != SIZE_MAX;
        w->yb[i] = real && y ? y[r] : -1;
        w->tb[i] = real && value && isfinite(value[r]) ? (float)value[r] : NAN;
    }
}

/* Rows of src (n_rows, C) at the laid-out positions into dst (N, C); padding gets zeros. */
static void gather_rows(const work2 *w, const float *src, float *dst, int N, int C)
{
    for (int i = 0; i < N; i++) {
        float *d_i = dst + (size_t)i * (size_t)C;
        if (w->row[i] == SIZE_MAX)
            memset(d_i, 0, (size_t)C * sizeof(float));
        else
            memcpy(d_i, src + w->row[i] * (size_t)C, (size_t)C * sizeof(float));
    }
}

static sb_nn_mha_weights mhw(const sb_nn_mha_grads *p)
{
    return (sb_nn_mha_weights){ p->wq, p->bq, p->wk, p->bk, p->wv, p->bv, p->wo, p->bo };
}

static void add_into(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

/* ---- stage 2 ----------------------------------------------------------------------------- */

void hier_s2_forward(hier_head *h, int b, const float *E, int B, int T, int train)
{
    const s2_params *p = &h->br[b].p2;
    work2 *w = &h->w2;
    const int C = h->C, N = B * T, F = h->F;
    const size_t NC = (size_t)N * (size_t)C;
    gather_rows(w, E, w->x0, N, C);
    for (int i = 0; i < N; i++) {
        if (!w->mask[i])
            continue;
        float *x_i = w->x0 + (size_t)i * C;
        if (h->context == CTX_TRANSFORMER)
            for (int c = 0; c < C; c++) {
                double freq = pow(10000.0, -(double)(c - (c & 1)) / (double)C);
                double ang = (double)w->pos[i] * freq;
                x_i[c] += (float)((c & 1) ? cos(ang) : sin(ang));
            }
        if (p->spk)
            add_into(x_i, p->spk + (size_t)w->spk[i] * C, (size_t)C);
    }
    if (train)
        sb_nn_dropout_forward(w->xl[0], w->m_in, w->x0, h->dropout, NC, &h->drop_rng);
    else
        memcpy(w->xl[0], w->x0, NC * sizeof(float));
    const float *top;
    if (h->context == CTX_TRANSFORMER) {
        for (int l = 0; l < h->n_layers; l++) {
            const tlayer *pl = &p->lay[l];
            sb_nn_mha_weights aw = mhw(&pl->att);
            sb_nn_layernorm_forward(w->y1[l], w->mean1[l], w->rstd1[l], w->xl[l], pl->ln1w,
                                    pl->ln1b, N, C, LN_EPS);
            sb_nn_mha_forward(w->xm[l], w->acts[l], w->y1[l], w->y1[l], w->mask, w->mask, &aw, B, T,
                              T, C, C, C, h->NH, h->causal);
            add_into(w->xm[l], w->xl[l], NC);
            sb_nn_layernorm_forward(w->y2[l], w->mean2[l], w->rstd2[l], w->xm[l], pl->ln2w,
                                    pl->ln2b, N, C, LN_EPS);
            sb_nn_linear_forward(w->f1[l], w->y2[l], pl->f1w, pl->f1b, N, C, F);
            sb_nn_gelu_forward(w->f1g[l], w->f1[l], (size_t)N * F);
            sb_nn_linear_forward(w->xl[l + 1], w->f1g[l], pl->f2w, pl->f2b, N, F, C);
            add_into(w->xl[l + 1], w->xm[l], NC);
        }
        top = w->xl[h->n_layers];
    } else {
        sb_nn_gru_weights wf = { p->gf.w_ih, p->gf.w_hh, p->gf.b_ih, p->gf.b_hh };
        sb_nn_gru_weights wb = { p->gb.w_ih, p->gb.w_hh, p->gb.b_ih, p->gb.b_hh };
        sb_nn_mha_weights aw = mhw(&p->att);
        sb_nn_bigru_forward(w->g, w->gacts, w->gscratch, w->xl[0], w->mask, &wf, &wb, B, T, C,
                            C / 2);
        sb_nn_mha_forward(w->s, w->gacts_att, w->g, w->g, w->mask, w->mask, &aw, B, T, T, C, C, C,
                          h->NH, h->causal);
        add_into(w->s, w->g, NC);
        top = w->s;
    }
    sb_nn_layernorm_forward(w->o, w->meanf, w->rstdf, top, p->lnw, p->lnb, N, C, LN_EPS);
    if (train)
        sb_nn_dropout_forward(w->od, w->m_o, w->o, h->dropout, NC, &h->drop_rng);
    else
        memcpy(w->od, w->o, NC * sizeof(float));
    sb_nn_linear_forward(w->logits, w->od, p->wc, p->bc, N, C, h->KO);
    if (h->K > 0)
        sb_nn_softmax_forward(w->probs, w->logits, N, h->K);
}

void hier_s2_backward(hier_head *h, int b, int B, int T, const float *d_o, int want_dx0)
{
    const s2_params *p = &h->br[b].p2;
    const s2_params *g = &h->br[b].g2;
    work2 *w = &h->w2;
    const int C = h->C, N = B * T, F = h->F;
    const size_t NC = (size_t)N * (size_t)C, bytes = NC * sizeof(float);
    if (d_o) {
        memcpy(w->dt, d_o, bytes);
    } else {
        memset(w->dy, 0, bytes);
        sb_nn_linear_backward(w->dy, g->wc, g->bc, w->dlogits, w->od, p->wc, N, C, h->KO);
        memset(w->dt, 0, bytes);
        sb_nn_dropout_backward(w->dt, w->dy, w->m_o, h->dropout, NC);
    }
    memset(w->dx, 0, bytes);
    const float *top = h->context == CTX_TRANSFORMER ? w->xl[h->n_layers] : w->s;
    sb_nn_layernorm_backward(w->dx, g->lnw, g->lnb, w->dt, top, p->lnw, w->meanf, w->rstdf, N, C);
    if (h->context == CTX_TRANSFORMER) {
        for (int l = h->n_layers - 1; l >= 0; l--) {
            const tlayer *pl = &p->lay[l], *gl = &g->lay[l];
            sb_nn_mha_weights aw = mhw(&pl->att);
            /* dx = dL/dx_{l+1}; x_{l+1} = xm + ffn(LN2(xm)) */
            memset(w->df1g, 0, (size_t)N * F * sizeof(float));
            sb_nn_linear_backward(w->df1g, gl->f2w, gl->f2b, w->dx, w->f1g[l], pl->f2w, N, F, C);
            memset(w->df, 0, (size_t)N * F * sizeof(float));
            sb_nn_gelu_backward(w->df, w->df1g, w->f1[l], (size_t)N * F);
            memset(w->dy, 0, bytes);
            sb_nn_linear_backward(w->dy, gl->f1w, gl->f1b, w->df, w->y2[l], pl->f1w, N, C, F);
            sb_nn_layernorm_backward(w->dx, gl->ln2w, gl->ln2b, w->dy, w->xm[l], pl->ln2w,
                                     w->mean2[l], w->rstd2[l], N, C);
            /* dx = dL/dxm; xm = x_l + mha(LN1(x_l)) */
            memset(w->dy, 0, bytes);
            sb_nn_mha_backward(w->dy, w->dy, &gl->att, w->mscratch, w->dx, w->acts[l], w->y1[l],
                               w->y1[l], w->mask, &aw, B, T, T, C, C, C, h->NH);
            sb_nn_layernorm_backward(w->dx, gl->ln1w, gl->ln1b, w->dy, w->xl[l], pl->ln1w,
                                     w->mean1[l], w->rstd1[l], N, C);
        }
    } else {
        sb_nn_gru_weights wf = { p->gf.w_ih, p->gf.w_hh, p->gf.b_ih, p->gf.b_hh };
        sb_nn_gru_weights wb = { p->gb.w_ih, p->gb.w_hh, p->gb.b_ih, p->gb.b_hh };
        sb_nn_mha_weights aw = mhw(&p->att);
        /* dx = dL/ds; s = r + mha(r) */
        memcpy(w->dy, w->dx, bytes);
        sb_nn_mha_backward(w->dy, w->dy, &g->att, w->mscratch, w->dx, w->gacts_att, w->g, w->g,
                           w->mask, &aw, B, T, T, C, C, C, h->NH);
        memset(w->dx, 0, bytes);
        sb_nn_bigru_backward(w->dx, &g->gf, &g->gb, w->gscratch, w->dy, w->gacts, w->xl[0], w->mask,
                             &wf, &wb, B, T, C, C / 2);
    }
    if (!g->spk && !want_dx0)
        return;
    /* dx = dL/dxl[0]; x0 = emb + PE + spk: dt = dL/dx0 = dL/demb */
    memset(w->dt, 0, bytes);
    sb_nn_dropout_backward(w->dt, w->dx, w->m_in, h->dropout, NC);
    for (int i = 0; g->spk && i < N; i++)
        if (w->mask[i])
            add_into(g->spk + (size_t)w->spk[i] * C, w->dt + (size_t)i * C, (size_t)C);
}

/* ---- stage 3 ----------------------------------------------------------------------------- */

void hier_s3_forward(hier_head *h, float *const *Cx, int B, int T, int train)
{
    work2 *w = &h->w2;
    const int C = h->C, N = B * T, NB = h->NB, W = C * NB;
    const size_t NC = (size_t)N * (size_t)C;
    for (int b = 0; b < NB; b++)
        gather_rows(w, Cx[b], w->c[b], N, C);
    for (int b = 0; b < NB; b++) {
        const float *f = w->c[b];
        if (h->fusion == FUSE_COATTENTION) {
            int j = (b + 1) % NB;
            sb_nn_mha_weights aw = mhw(&h->p3.att[b]);
            sb_nn_mha_forward(w->s3[b], w->acts3[b], w->c[b], w->c[j], w->mask, w->mask, &aw, B, T,
                              T, C, C, C, h->NH, h->causal);
            add_into(w->s3[b], w->c[b], NC);
            sb_nn_layernorm_forward(w->f3[b], w->mean3[b], w->rstd3[b], w->s3[b], h->p3.lnw[b],
                                    h->p3.lnb[b], N, C, LN_EPS);
            f = w->f3[b];
        }
        for (int i = 0; i < N; i++)
            memcpy(w->cat + (size_t)i * W + (size_t)b * C, f + (size_t)i * C,
                   (size_t)C * sizeof(float));
    }
    size_t nw = (size_t)N * (size_t)W;
    if (train)
        sb_nn_dropout_forward(w->catd, w->m_cat, w->cat, h->dropout, nw, &h->drop_rng);
    else
        memcpy(w->catd, w->cat, nw * sizeof(float));
    sb_nn_linear_forward(w->logits, w->catd, h->p3.wc, h->p3.bc, N, W, h->KO);
    if (h->K > 0)
        sb_nn_softmax_forward(w->probs, w->logits, N, h->K);
}

void hier_s3_backward(hier_head *h, int B, int T, int want_dc)
{
    work2 *w = &h->w2;
    const int C = h->C, N = B * T, NB = h->NB, W = C * NB;
    const size_t nw = (size_t)N * (size_t)W, bytes = (size_t)N * (size_t)C * sizeof(float);
    memset(w->dcat, 0, nw * sizeof(float));
    sb_nn_linear_backward(w->dcat, h->g3.wc, h->g3.bc, w->dlogits, w->catd, h->p3.wc, N, W, h->KO);
    if (h->fusion != FUSE_COATTENTION && !want_dc)
        return; /* the branches are frozen: nothing below the classifier learns */
    memset(w->catd, 0, nw * sizeof(float)); /* now dL/dcat */
    sb_nn_dropout_backward(w->catd, w->dcat, w->m_cat, h->dropout, nw);
    for (int b = 0; want_dc && b < NB; b++)
        memset(w->dc[b], 0, bytes);
    for (int b = 0; b < NB; b++) {
        int j = (b + 1) % NB;
        float *df = h->fusion == FUSE_COATTENTION ? w->dy : w->dc[b];
        for (int i = 0; i < N; i++)
            memcpy(df + (size_t)i * C, w->catd + (size_t)i * W + (size_t)b * C,
                   (size_t)C * sizeof(float));
        if (h->fusion != FUSE_COATTENTION)
            continue;
        sb_nn_mha_weights aw = mhw(&h->p3.att[b]);
        memset(w->dx, 0, bytes); /* dL/ds_b; s_b = c_b + mha(c_b, c_j) */
        sb_nn_layernorm_backward(w->dx, h->g3.lnw[b], h->g3.lnb[b], w->dy, w->s3[b], h->p3.lnw[b],
                                 w->mean3[b], w->rstd3[b], N, C);
        if (want_dc)
            add_into(w->dc[b], w->dx, (size_t)N * (size_t)C);
        sb_nn_mha_backward(want_dc ? w->dc[b] : NULL, want_dc ? w->dc[j] : NULL, &h->g3.att[b],
                           w->mscratch, w->dx, w->acts3[b], w->c[b], w->c[j], w->mask, &aw, B, T, T,
                           C, C, C, h->NH);
    }
}
