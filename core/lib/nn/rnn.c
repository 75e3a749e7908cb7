/* core/lib/nn/rnn.c — the GRU (one direction, and bidirectional as two of them side by side),
 * forward and backpropagation through time (nn_train.h).
 *
 * Shapes: B sequences, T steps, C input width, H hidden width, G = 3H gate rows (r, z, n).
 * The input projections of all steps are one GEMM before the recurrence (and their gradients
 * one GEMM after it); each step is one (B,H)·(H,3H) GEMM plus the gate arithmetic.
 *
 * acts (B,T,5H), per step: r | z | n | hn = W_hn h + b_hn | h (the state the step started
 * from). Before the recurrence the first 3H hold the input projections W_i· x + b_i·. */
#include <serbench/nn_train.h>

#include <cblas.h>
#include <math.h>
#include <string.h>

size_t sb_nn_gru_acts_size(int B, int T, int H)
{
    return (size_t)B * T * 5 * H;
}

size_t sb_nn_gru_scratch_size(int B, int T, int H)
{
    return (size_t)B * T * 6 * H + (size_t)B * 4 * H;
}

static float sigmoidf(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* rows (n, cols) with row stride ld set to bias (cols) or 0 */
static void fill_rows(float *x, const float *bias, size_t n, int cols, size_t ld)
{
    for (size_t r = 0; r < n; r++) {
        if (bias)
            memcpy(x + r * ld, bias, (size_t)cols * sizeof *x);
        else
            memset(x + r * ld, 0, (size_t)cols * sizeof *x);
    }
}

/* out (B,T,H) with row stride ldo (H alone, 2H inside a bidirectional output). */
static void gru_forward(float *out, int ldo, float *acts, float *scratch, const float *inp,
                        const float *h0, const uint8_t *mask, const sb_nn_gru_weights *w, int B,
                        int T, int C, int H, int reverse)
{
    const int G = 3 * H, A = 5 * H;
    float *h = scratch, *hg = scratch + (size_t)B * H;
    if (B <= 0 || T <= 0 || H <= 0)
        return;
    /* input projections of every step: acts[b,t,0:3H] = x[b,t] · w_ih^T + b_ih */
    fill_rows(acts, w->b_ih, (size_t)B * T, G, A);
    if (C > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B * T, G, C, 1.0f, inp, C, w->w_ih, C,
                    1.0f, acts, A);
    if (h0)
        memcpy(h, h0, (size_t)B * H * sizeof *h);
    else
        memset(h, 0, (size_t)B * H * sizeof *h);
    for (int s = 0; s < T; s++) {
        const int t = reverse ? T - 1 - s : s;
        /* hg (B,3H) = h · w_hh^T + b_hh */
        fill_rows(hg, w->b_hh, (size_t)B, G, G);
        if (B == 1) /* one sequence: a matrix-vector product */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, G, H, 1.0f, w->w_hh, H, h, 1, 1.0f, hg, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, G, H, 1.0f, h, H, w->w_hh, H,
                        1.0f, hg, G);
        for (int b = 0; b < B; b++) {
            const size_t bt = (size_t)b * T + t;
            float *a = acts + bt * A, *out_bt = out + bt * ldo;
            float *h_b = h + (size_t)b * H;
            const float *hg_b = hg + (size_t)b * G;
            memcpy(a + 4 * H, h_b, (size_t)H * sizeof *a);
            if (mask && !mask[bt]) { /* padding: the state carries over */
                memset(a, 0, (size_t)4 * H * sizeof *a);
                memset(out_bt, 0, (size_t)H * sizeof *out_bt);
                continue;
            }
            for (int j = 0; j < H; j++) {
                const float r = sigmoidf(a[j] + hg_b[j]);
                const float z = sigmoidf(a[H + j] + hg_b[H + j]);
                const float hn = hg_b[2 * H + j];
                const float n = tanhf(a[2 * H + j] + r * hn);
                const float hnew = (1.0f - z) * n + z * h_b[j];
                a[j] = r;
                a[H + j] = z;
                a[2 * H + j] = n;
                a[3 * H + j] = hn;
                h_b[j] = hnew;
                out_bt[j] = hnew;
            }
        }
    }
}

/* Per valid step, with g = dout + (gradient reaching the state from later steps):
 *   dn = g(1-z), dz = g(h - n), da_n = dn(1-n²), dr = da_n·hn, dhn = da_n·r,
 *   da_r = dr·r(1-r), da_z = dz·z(1-z);
 *   input-gate gradients dgx = [da_r, da_z, da_n], hidden-gate ones dgh = [da_r, da_z, dhn],
 *   and the state before the step gets g·z + dgh · w_hh.
 * scratch: dgx (B,T,3H) | dgh (B,T,3H) | dh (B,H). */
static void gru_backward(float *dinp, float *dh0, const sb_nn_gru_grads *g, float *scratch,
                         const float *dout, int ldo, const float *acts, const float *inp,
                         const uint8_t *mask, const sb_nn_gru_weights *w, int B, int T, int C,
                         int H, int reverse)
{
    const int G = 3 * H, A = 5 * H;
    if (B <= 0 || T <= 0 || H <= 0)
        return;
    const size_t BT = (size_t)B * T;
    float *dgx = scratch, *dgh = dgx + BT * G, *dh = dgh + BT * G;
    memset(dh, 0, (size_t)B * H * sizeof *dh);
    for (int s = T - 1; s >= 0; s--) {
        const int t = reverse ? T - 1 - s : s;
        for (int b = 0; b < B; b++) {
            const size_t bt = (size_t)b * T + t;
            const float *a = acts + bt * A, *dout_bt = dout + bt * ldo;
            float *dgx_bt = dgx + bt * G, *dgh_bt = dgh + bt * G, *dh_b = dh + (size_t)b * H;
            if (mask && !mask[bt]) {
                memset(dgx_bt, 0, (size_t)G * sizeof *dgx_bt);
                memset(dgh_bt, 0, (size_t)G * sizeof *dgh_bt);
                continue;
            }
            for (int j = 0; j < H; j++) {
                const float r = a[j], z = a[H + j], n = a[2 * H + j], hn = a[3 * H + j];
                const float hp = a[4 * H + j];
                const float gs = dout_bt[j] + dh_b[j];
                const float dn = gs * (1.0f - z), dz = gs * (hp - n);
                const float dan = dn * (1.0f - n * n);
                const float dar = dan * hn * r * (1.0f - r), daz = dz * z * (1.0f - z);
                dgx_bt[j] = dar;
                dgx_bt[H + j] = daz;
                dgx_bt[2 * H + j] = dan;
                dgh_bt[j] = dar;
                dgh_bt[H + j] = daz;
                dgh_bt[2 * H + j] = dan * r;
                dh_b[j] = gs * z;
            }
        }
        /* dh (B,H) += dgh[:,t,:] (B,3H; row stride T·3H) · w_hh (3H,H) */
        if (B == 1)
            cblas_sgemv(CblasRowMajor, CblasTrans, G, H, 1.0f, w->w_hh, H, dgh + (size_t)t * G, 1,
                        1.0f, dh, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, G, 1.0f,
                        dgh + (size_t)t * G, T * G, w->w_hh, H, 1.0f, dh, H);
    }
    if (dh0)
        for (size_t i = 0; i < (size_t)B * H; i++)
            dh0[i] += dh[i];
    if (!g)
        return;
    /* dw_hh (3H,H) += dgh^T · h_prev, h_prev read from acts with row stride 5H */
    if (g->w_hh)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, H, (int)BT, 1.0f, dgh, G,
                    acts + 4 * H, A, 1.0f, g->w_hh, H);
    for (size_t bt = 0; bt < BT; bt++)
        for (int j = 0; j < G; j++) {
            if (g->b_hh)
                g->b_hh[j] += dgh[bt * G + j];
            if (g->b_ih)
                g->b_ih[j] += dgx[bt * G + j];
        }
    if (C <= 0)
        return;
    if (g->w_ih) /* dw_ih (3H,C) += dgx^T · x */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, C, (int)BT, 1.0f, dgx, G, inp, C,
                    1.0f, g->w_ih, C);
}

/* dinp (B,T,C) += dgx · w_ih; apart so that the bidirectional backward can reuse it */
static void gru_backward_dinp(float *dinp, const float *dgx, const sb_nn_gru_weights *w, int B,
                              int T, int C, int H)
{
    if (!dinp || B <= 0 || T <= 0 || C <= 0 || H <= 0)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B * T, C, 3 * H, 1.0f, dgx, 3 * H,
                w->w_ih, C, 1.0f, dinp, C);
}

void sb_nn_gru_forward(float *out, float *acts, float *scratch, const float *inp, const float *h0,
                       const uint8_t *mask, const sb_nn_gru_weights *w, int B, int T, int C, int H,
                       int reverse)
{
    gru_forward(out, H, acts, scratch, inp, h0, mask, w, B, T, C, H, reverse);
}

void sb_nn_gru_backward(float *dinp, float *dh0, const sb_nn_gru_grads *g, float *scratch,
                        const float *dout, const float *acts, const float *inp, const uint8_t *mask,
                        const sb_nn_gru_weights *w, int B, int T, int C, int H, int reverse)
{
    gru_backward(dinp, dh0, g, scratch, dout, H, acts, inp, mask, w, B, T, C, H, reverse);
    gru_backward_dinp(dinp, scratch, w, B, T, C, H);
}

void sb_nn_bigru_forward(float *out, float *acts, float *scratch, const float *inp,
                         const uint8_t *mask, const sb_nn_gru_weights *wf,
                         const sb_nn_gru_weights *wb, int B, int T, int C, int H)
{
    gru_forward(out, 2 * H, acts, scratch, inp, NULL, mask, wf, B, T, C, H, 0);
    gru_forward(out + H, 2 * H, acts + sb_nn_gru_acts_size(B, T, H), scratch, inp, NULL, mask, wb,
                B, T, C, H, 1);
}

void sb_nn_bigru_backward(float *dinp, const sb_nn_gru_grads *gf, const sb_nn_gru_grads *gb,
                          float *scratch, const float *dout, const float *acts, const float *inp,
                          const uint8_t *mask, const sb_nn_gru_weights *wf,
                          const sb_nn_gru_weights *wb, int B, int T, int C, int H)
{
    gru_backward(dinp, NULL, gf, scratch, dout, 2 * H, acts, inp, mask, wf, B, T, C, H, 0);
    gru_backward_dinp(dinp, scratch, wf, B, T, C, H);
    gru_backward(dinp, NULL, gb, scratch, dout + H, 2 * H, acts + sb_nn_gru_acts_size(B, T, H), inp,
                 mask, wb, B, T, C, H, 1);
    gru_backward_dinp(dinp, scratch, wb, B, T, C, H);
}
