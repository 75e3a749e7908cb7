/* core/lib/nn/attention.c — multi-head scaled dot-product attention with padding masks and
 * a causal mode, and the attention block around it (query/key/value/output projections),
 * forward and backward (nn_train.h). Self- and cross-attention are the same code: the block
 * takes queries from one sequence and keys/values from another, which may be the same.
 *
 * Shapes: B sequences, Tq queries, Tk keys, C model width, NH heads of hs = C / NH. A head's
 * slice of q (B,Tq,C) is a (Tq,hs) matrix with row stride C, so every product below is one
 * cblas_sgemm per (sequence, head) with no copies. */
#include <serbench/nn.h>
#include <serbench/nn_train.h>

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- scaled dot-product attention ------------------------------------------------------ */

/* Masked softmax of one score row (Tk) in place for query i: keys that the query may not see
 * get probability 0; a query that sees none gets an all-zero row. */
static void masked_softmax_row(float *row, const uint8_t *kmask_b, int Tk, int i, int causal)
{
    const int jmax = causal && i + 1 < Tk ? i + 1 : Tk; /* keys [0, jmax) pass causality */
    float maxv = -INFINITY;
    for (int j = 0; j < jmax; j++)
        if ((!kmask_b || kmask_b[j]) && row[j] > maxv)
            maxv = row[j];
    if (maxv == -INFINITY) {
        memset(row, 0, (size_t)Tk * sizeof *row);
        return;
    }
    double sum = 0.0;
    for (int j = 0; j < Tk; j++) {
        if (j < jmax && (!kmask_b || kmask_b[j])) {
            row[j] = expf(row[j] - maxv);
            sum += row[j];
        } else {
            row[j] = 0.0f;
        }
    }
    const float inv = (float)(1.0 / sum);
    for (int j = 0; j < jmax; j++)
        row[j] *= inv;
}

/* out (B,Tq,C), att (B,NH,Tq,Tk); q (B,Tq,C); k, v (B,Tk,C); qmask (B,Tq), kmask (B,Tk). */
void sb_nn_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                             const uint8_t *qmask, const uint8_t *kmask, int B, int Tq, int Tk,
                             int C, int NH, int causal)
{
    assert(NH > 0 && C % NH == 0);
    if (B <= 0 || Tq <= 0 || C <= 0)
        return;
    if (Tk <= 0) { /* nothing to attend to */
        memset(out, 0, (size_t)B * Tq * C * sizeof *out);
        return;
    }
    const int hs = C / NH;
    const float scale = (float)(1.0 / sqrt((double)hs));
    for (int b = 0; b < B; b++) {
        const uint8_t *qmask_b = qmask ? qmask + (size_t)b * Tq : NULL;
        const uint8_t *kmask_b = kmask ? kmask + (size_t)b * Tk : NULL;
        for (int h = 0; h < NH; h++) {
            const float *q_bh = q + (size_t)b * Tq * C + (size_t)h * hs;
            const float *k_bh = k + (size_t)b * Tk * C + (size_t)h * hs;
            const float *v_bh = v + (size_t)b * Tk * C + (size_t)h * hs;
            float *att_bh = att + ((size_t)b * NH + h) * Tq * Tk;
            float *out_bh = out + (size_t)b * Tq * C + (size_t)h * hs;
            /* scores (Tq,Tk) = q_bh · k_bh^T / √hs */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, hs, scale, q_bh, C, k_bh,
                        C, 0.0f, att_bh, Tk);
            for (int i = 0; i < Tq; i++) {
                float *att_bhi = att_bh + (size_t)i * Tk;
                if (qmask_b && !qmask_b[i])
                    memset(att_bhi, 0, (size_t)Tk * sizeof *att_bhi);
                else
                    masked_softmax_row(att_bhi, kmask_b, Tk, i, causal);
            }
            /* out_bh (Tq,hs) = att_bh (Tq,Tk) · v_bh (Tk,hs) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hs, Tk, 1.0f, att_bh, Tk,
                        v_bh, C, 0.0f, out_bh, C);
        }
    }
}

/* With P = att_bh and S the scaled scores:
 *   dP = dout_bh · v_bh^T,  dv_bh += P^T · dout_bh,
 *   dS = P ⊙ (dP - rowsum(P ⊙ dP)),
 *   dq_bh += dS · k_bh / √hs,  dk_bh += dS^T · q_bh / √hs.
 * scratch holds dP, then dS, for one (b,h): Tq·Tk floats. */
void sb_nn_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                              const float *att, const float *q, const float *k, const float *v,
                              int B, int Tq, int Tk, int C, int NH)
{
    assert(NH > 0 && C % NH == 0);
    if (B <= 0 || Tq <= 0 || Tk <= 0 || C <= 0)
        return;
    const int hs = C / NH;
    const float scale = (float)(1.0 / sqrt((double)hs));
    float *dp = scratch;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t qoff = (size_t)b * Tq * C + (size_t)h * hs;
            const size_t koff = (size_t)b * Tk * C + (size_t)h * hs;
            const float *att_bh = att + ((size_t)b * NH + h) * Tq * Tk;
            const float *dout_bh = dout + qoff;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, hs, 1.0f, dout_bh, C,
                        v + koff, C, 0.0f, dp, Tk);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, hs, Tq, 1.0f, att_bh, Tk,
                        dout_bh, C, 1.0f, dv + koff, C);
            for (int i = 0; i < Tq; i++) {
                const float *p_i = att_bh + (size_t)i * Tk;
                float *dp_i = dp + (size_t)i * Tk;
                double dot = 0.0;
                for (int j = 0; j < Tk; j++)
                    dot += (double)p_i[j] * dp_i[j];
                for (int j = 0; j < Tk; j++)
                    dp_i[j] = p_i[j] * (dp_i[j] - (float)dot);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hs, Tk, scale, dp, Tk,
                        k + koff, C, 1.0f, dq + qoff, C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, hs, Tq, scale, dp, Tk,
                        q + qoff, C, 1.0f, dk + koff, C);
        }
}

/* ---- the attention block --------------------------------------------------------------- */

sb_status sb_nn_mha_check(int Cq, int Ckv, int C, int NH, sb_error *err)
{
    if (Cq <= 0 || Ckv <= 0 || C <= 0)
        return sb_error_set(err, SB_ERR_INVALID, "attention",
                            "widths must be positive (query input %d, key/value input %d, "
                            "model %d)",
                            Cq, Ckv, C);
    if (NH <= 0 || C % NH != 0)
        return sb_error_set(err, SB_ERR_INVALID, "attention",
                            "model width %d is not a multiple of the %d heads; choose a head "
                            "count that divides it",
                            C, NH);
    return SB_OK;
}

size_t sb_nn_mha_acts_size(int B, int Tq, int Tk, int C, int NH)
{
    return (size_t)B * (2 * (size_t)Tq * C + 2 * (size_t)Tk * C + (size_t)NH * Tq * Tk);
}

size_t sb_nn_mha_scratch_size(int B, int Tq, int Tk, int C)
{
    return (size_t)B * (3 * (size_t)Tq * C + 2 * (size_t)Tk * C) + (size_t)Tq * Tk;
}

/* The saved activations' layout in `acts`: q | ctx | k | v | att. */
typedef struct mha_acts {
    float *q, *ctx, *k, *v, *att;
} mha_acts;

static mha_acts mha_bind(const float *acts, int B, int Tq, int Tk, int C)
{
    mha_acts a;
    a.q = (float *)acts;
    a.ctx = a.q + (size_t)B * Tq * C;
    a.k = a.ctx + (size_t)B * Tq * C;
    a.v = a.k + (size_t)B * Tk * C;
    a.att = a.v + (size_t)B * Tk * C;
    return a;
}

/* Zero the C-wide rows of x (B,T,C) at padded positions. */
static void zero_padded_rows(float *x, const uint8_t *mask, int B, int T, int C)
{
    if (!mask)
        return;
    for (size_t bt = 0; bt < (size_t)B * T; bt++)
        if (!mask[bt])
            memset(x + bt * C, 0, (size_t)C * sizeof *x);
}

void sb_nn_mha_forward(float *out, float *acts, const float *xq, const float *xkv,
                       const uint8_t *qmask, const uint8_t *kmask, const sb_nn_mha_weights *w,
                       int B, int Tq, int Tk, int Cq, int Ckv, int C, int NH, int causal)
{
    if (B <= 0 || Tq <= 0)
        return;
    mha_acts a = mha_bind(acts, B, Tq, Tk, C);
    sb_nn_linear_forward(a.q, xq, w->wq, w->bq, B * Tq, Cq, C);
    sb_nn_linear_forward(a.k, xkv, w->wk, w->bk, B * Tk, Ckv, C);
    sb_nn_linear_forward(a.v, xkv, w->wv, w->bv, B * Tk, Ckv, C);
    sb_nn_attention_forward(a.ctx, a.att, a.q, a.k, a.v, qmask, kmask, B, Tq, Tk, C, NH, causal);
    sb_nn_linear_forward(out, a.ctx, w->wo, w->bo, B * Tq, C, C);
    zero_padded_rows(out, qmask, B, Tq, C);
}

void sb_nn_mha_backward(float *dxq, float *dxkv, const sb_nn_mha_grads *g, float *scratch,
                        const float *dout, const float *acts, const float *xq, const float *xkv,
                        const uint8_t *qmask, const sb_nn_mha_weights *w, int B, int Tq, int Tk,
                        int Cq, int Ckv, int C, int NH)
{
    if (B <= 0 || Tq <= 0)
        return;
    mha_acts a = mha_bind(acts, B, Tq, Tk, C);
    const size_t nq = (size_t)B * Tq * C, nk = (size_t)B * Tk * C;
    float *dq = scratch, *dctx = dq + nq, *dm = dctx + nq, *dk = dm + nq, *dv = dk + nk;
    float *dp = dv + nk;
    /* padded query rows were zeroed in the forward: they pass no gradient back */
    memcpy(dm, dout, nq * sizeof *dm);
    zero_padded_rows(dm, qmask, B, Tq, C);
    memset(dq, 0, 2 * nq * sizeof *dq); /* dq and dctx */
    memset(dk, 0, 2 * nk * sizeof *dk); /* dk and dv */
    const sb_nn_mha_grads none = { 0 };
    if (!g)
        g = &none;
    sb_nn_linear_backward(dctx, g->wo, g->bo, dm, a.ctx, w->wo, B * Tq, C, C);
    sb_nn_attention_backward(dq, dk, dv, dp, dctx, a.att, a.q, a.k, a.v, B, Tq, Tk, C, NH);
    sb_nn_linear_backward(dxq, g->wq, g->bq, dq, xq, w->wq, B * Tq, Cq, C);
    sb_nn_linear_backward(dxkv, g->wk, g->bk, dk, xkv, w->wk, B * Tk, Ckv, C);
    sb_nn_linear_backward(dxkv, g->wv, g->bv, dv, xkv, w->wv, B * Tk, Ckv, C);
}
