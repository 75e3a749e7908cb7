/* serbench/nn_train.h — the training library: forward and backward passes of the layers a
 * head is built from (layer norm, GELU, dropout, multi-head self- and cross-attention, GRU),
 * the regression losses, and the optimiser's schedule and gradient clipping. The linear
 * layer, softmax, cross-entropy and the AdamW step are in nn.h. docs/nn.md shows how a head
 * puts them together.
 *
 * Conventions (as in nn.h, after llm.c):
 *   - Arguments run outputs, buffers saved for backward, scratch, inputs, weights, dimensions.
 *   - Tensors are contiguous row-major float arrays; a shape line names each one, e.g.
 *     "inp (B,T,C)" is B·T·C floats with C varying fastest.
 *   - Backward ACCUMULATES (+=) into every gradient it is given, parameter gradients and
 *     input gradients alike, so a caller zeroes its gradient buffers once per step and
 *     several paths into one tensor simply add up. Gradient pointers documented "may be
 *     NULL" are skipped.
 *   - No function allocates: buffers saved for backward (`acts`) and scratch come from the
 *     caller, sized by the *_size functions. Scratch holds nothing between calls.
 *   - Products run as cblas_sgemm; every reduction the library does itself runs in a fixed
 *     order on the calling thread, so results are bit-identical for a given BLAS thread count.
 *   - A function is reentrant: different threads may call it on different buffers.
 *
 * Shapes:
 *   N  rows (leading dimensions flattened)    C  channels (model width)
 *   B  sequences in a batch                   T  time steps; Tq, Tk query / key lengths
 *   NH attention heads, hs = C / NH           H  GRU hidden width
 *
 * Padding masks are uint8_t (B,T) arrays: nonzero marks a real position, 0 a padded one;
 * NULL means every position is real. Padded positions never influence real ones, and get
 * zero gradient. */
#ifndef SERBENCH_NN_TRAIN_H
#define SERBENCH_NN_TRAIN_H

#include "common.h"
#include "error.h"
#include "rng.h"

SB_BEGIN_DECLS

/* ---- layer norm ------------------------------------------------------------------------ */

/* out (N,C) = (inp - mean) * rstd * weight + bias, per row over C; mean (N) and rstd (N) =
 * 1/sqrt(var + eps) (biased variance) are saved for backward. weight, bias (C) may be NULL
 * (1 and 0). Row statistics are accumulated in double. out may not alias inp. */
SB_API void sb_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                    const float *weight, const float *bias, int N, int C,
                                    float eps);
/* dinp (N,C) += dL/dinp; dweight, dbias (C) += their gradients (each may be NULL); dout
 * (N,C); inp, weight, mean, rstd as given to (and saved by) the forward. */
SB_API void sb_nn_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                     const float *inp, const float *weight, const float *mean,
                                     const float *rstd, int N, int C);

/* ---- GELU ------------------------------------------------------------------------------ */

/* Exact GELU: out (n) = 0.5 · inp · (1 + erf(inp / √2)). out may alias inp only if the
 * backward is not needed (it reads inp). */
SB_API void sb_nn_gelu_forward(float *out, const float *inp, size_t n);
/* dinp (n) += dout · (Φ(inp) + inp · φ(inp)), Φ and φ the standard normal cdf and pdf. */
SB_API void sb_nn_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* ---- dropout --------------------------------------------------------------------------- */

/* Inverted dropout: each element is kept with probability 1 - p and scaled by 1 / (1 - p),
 * else zeroed; mask (n) records 1 for kept, 0 for dropped. One sb_rng_uniform draw per
 * element in index order, so the mask is a function of the generator's state. p <= 0 copies
 * inp (mask all 1, no draws); p >= 1 zeroes everything (mask all 0, no draws). At evaluation
 * a head skips dropout (or calls it with p = 0). out may alias inp. */
SB_API void sb_nn_dropout_forward(float *out, uint8_t *mask, const float *inp, float p, size_t n,
                                  sb_rng *rng);
/* dinp (n) += dout · mask / (1 - p), with the p and mask of the forward. */
SB_API void sb_nn_dropout_backward(float *dinp, const float *dout, const uint8_t *mask, float p,
                                   size_t n);

/* ---- masked mean pooling -------------------------------------------------------------- */

/* out (B,C) = the mean of inp (B,T,C) over each sequence's real steps (mask (B,T) or NULL);
 * a sequence with no real step gives a zero row. */
SB_API void sb_nn_meanpool_forward(float *out, const float *inp, const uint8_t *mask, int B, int T,
                                   int C);
/* dinp (B,T,C) += dout (B,C) / (real steps) at real steps; padded steps get nothing. */
SB_API void sb_nn_meanpool_backward(float *dinp, const float *dout, const uint8_t *mask, int B,
                                    int T, int C);

/* ---- scaled dot-product attention ------------------------------------------------------ */

/* Multi-head attention on projected queries, keys and values, head h owning channels
 * [h·hs, (h+1)·hs):
 *   att[b,h,i,:] = softmax_j(q[b,i]·k[b,j] / √hs) over the keys j that query i may see,
 *   out[b,i,h·hs:(h+1)·hs] = Σ_j att[b,h,i,j] · v[b,j,h·hs:(h+1)·hs].
 * Query i sees key j when kmask[b,j] is set and, if causal, j <= i. A query that sees no key
 * (and every query with qmask[b,i] == 0) has an all-zero att row and a zero out row.
 *   out (B,Tq,C), att (B,NH,Tq,Tk) saved for backward; q (B,Tq,C); k, v (B,Tk,C);
 *   qmask (B,Tq), kmask (B,Tk) or NULL. Self-attention passes the same sequence's
 *   projections with Tq == Tk; cross-attention takes k and v from another sequence.
 * Requires NH > 0 and C % NH == 0 (sb_nn_mha_check). */
SB_API void sb_nn_attention_forward(float *out, float *att, const float *q, const float *k,
                                    const float *v, const uint8_t *qmask, const uint8_t *kmask,
                                    int B, int Tq, int Tk, int C, int NH, int causal);
/* dq (B,Tq,C), dk, dv (B,Tk,C) += gradients, given dout (B,Tq,C) and the forward's att.
 * The masks live on in att's zeros: masked pairs and padded rows get no gradient.
 * scratch: Tq·Tk floats. */
SB_API void sb_nn_attention_backward(float *dq, float *dk, float *dv, float *scratch,
                                     const float *dout, const float *att, const float *q,
                                     const float *k, const float *v, int B, int Tq, int Tk, int C,
                                     int NH);

/* ---- multi-head attention block (projections + attention) ------------------------------ */

/* The weights of one attention block: queries from an input of width Cq, keys and values
 * from one of width Ckv, model width C. wq (C,Cq), wk (C,Ckv), wv (C,Ckv), wo (C,C); the
 * biases bq, bk, bv, bo (C) may each be NULL (no bias). Pointers are borrowed. */
typedef struct sb_nn_mha_weights {
    const float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
} sb_nn_mha_weights;

/* Their gradients, same shapes; a bias gradient is NULL exactly when its bias is. */
typedef struct sb_nn_mha_grads {
    float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
} sb_nn_mha_grads;

/* SB_OK when C is a positive multiple of NH and all widths are positive; else
 * SB_ERR_INVALID with a message naming the numbers. Call where a head reads its config. */
SB_API sb_status sb_nn_mha_check(int Cq, int Ckv, int C, int NH, sb_error *err);

/* Floats the forward saves in `acts`: q, ctx (B,Tq,C), k, v (B,Tk,C), att (B,NH,Tq,Tk). */
SB_API size_t sb_nn_mha_acts_size(int B, int Tq, int Tk, int C, int NH);
/* Floats of backward scratch: dq, dctx, masked dout (B,Tq,C), dk, dv (B,Tk,C), Tq·Tk. */
SB_API size_t sb_nn_mha_scratch_size(int B, int Tq, int Tk, int C);

/* out (B,Tq,C) = (attention(xq·wq^T + bq, xkv·wk^T + bk, xkv·wv^T + bv)) · wo^T + bo, with
 * the masks and causal mode of sb_nn_attention_forward; out rows of padded queries are 0.
 *   acts: sb_nn_mha_acts_size floats, kept unchanged for the backward;
 *   xq (B,Tq,Cq), xkv (B,Tk,Ckv); self-attention passes the same pointer twice. */
SB_API void sb_nn_mha_forward(float *out, float *acts, const float *xq, const float *xkv,
                              const uint8_t *qmask, const uint8_t *kmask,
                              const sb_nn_mha_weights *w, int B, int Tq, int Tk, int Cq, int Ckv,
                              int C, int NH, int causal);
/* dxq (B,Tq,Cq), dxkv (B,Tk,Ckv) += input gradients (either may be NULL; for
 * self-attention they may be the same buffer, and then receive the sum); g's tensors +=
 * parameter gradients (g NULL, or any of its tensors NULL: not needed, e.g. frozen). dout (B,Tq,C):
 * rows of padded queries are ignored. scratch: sb_nn_mha_scratch_size floats. */
SB_API void sb_nn_mha_backward(float *dxq, float *dxkv, const sb_nn_mha_grads *g, float *scratch,
                               const float *dout, const float *acts, const float *xq,
                               const float *xkv, const uint8_t *qmask, const sb_nn_mha_weights *w,
                               int B, int Tq, int Tk, int Cq, int Ckv, int C, int NH);

/* ---- GRU ------------------------------------------------------------------------------- */

/* One GRU direction, PyTorch's equations and gate order (r, z, n):
 *   r = σ(W_ir x + b_ir + W_hr h + b_hr)       z = σ(W_iz x + b_iz + W_hz h + b_hz)
 *   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))      h' = (1 - z) ⊙ n + z ⊙ h
 * w_ih (3H,C), w_hh (3H,H), b_ih, b_hh (3H) (biases may be NULL); rows [0,H) are r,
 * [H,2H) z, [2H,3H) n. Borrowed pointers. */
typedef struct sb_nn_gru_weights {
    const float *w_ih, *w_hh, *b_ih, *b_hh;
} sb_nn_gru_weights;

/* Their gradients, same shapes; a bias gradient is NULL exactly when its bias is. */
typedef struct sb_nn_gru_grads {
    float *w_ih, *w_hh, *b_ih, *b_hh;
} sb_nn_gru_grads;

/* Floats the forward saves in `acts` per direction: (B,T,5H). */
SB_API size_t sb_nn_gru_acts_size(int B, int T, int H);
/* Floats of scratch per direction, for forward and backward: 6·B·T·H + 4·B·H. */
SB_API size_t sb_nn_gru_scratch_size(int B, int T, int H);

/* Runs the recurrence over inp (B,T,C) from h0 (B,H) (NULL: zeros), t = 0..T-1, or
 * T-1..0 when `reverse`. out (B,T,H) gets each step's state. At a padded step the state
 * carries over unchanged and out is 0, so a right-padded sequence gives what PyTorch's
 * packed sequences give, in both directions. acts: sb_nn_gru_acts_size floats, saved for
 * backward; scratch: sb_nn_gru_scratch_size floats. */
SB_API void sb_nn_gru_forward(float *out, float *acts, float *scratch, const float *inp,
                              const float *h0, const uint8_t *mask, const sb_nn_gru_weights *w,
                              int B, int T, int C, int H, int reverse);
/* dinp (B,T,C) and dh0 (B,H) += input gradients (either may be NULL); g += parameter
 * gradients (g NULL, or any of its tensors NULL: not needed). dout (B,T,H); its padded rows are
 * ignored. Backpropagation through time. */
SB_API void sb_nn_gru_backward(float *dinp, float *dh0, const sb_nn_gru_grads *g, float *scratch,
                               const float *dout, const float *acts, const float *inp,
                               const uint8_t *mask, const sb_nn_gru_weights *w, int B, int T, int C,
                               int H, int reverse);

/* Bidirectional GRU: a forward GRU (wf) and a reverse one (wb) over the same input, both from
 * zero state, their outputs concatenated: out (B,T,2H) = [forward | reverse].
 * acts: 2 · sb_nn_gru_acts_size floats; scratch: sb_nn_gru_scratch_size floats. */
SB_API void sb_nn_bigru_forward(float *out, float *acts, float *scratch, const float *inp,
                                const uint8_t *mask, const sb_nn_gru_weights *wf,
                                const sb_nn_gru_weights *wb, int B, int T, int C, int H);
/* dinp (B,T,C) += (may be NULL); gf, gb += parameter gradients; dout (B,T,2H). */
SB_API void sb_nn_bigru_backward(float *dinp, const sb_nn_gru_grads *gf, const sb_nn_gru_grads *gb,
                                 float *scratch, const float *dout, const float *acts,
                                 const float *inp, const uint8_t *mask, const sb_nn_gru_weights *wf,
                                 const sb_nn_gru_weights *wb, int B, int T, int C, int H);

/* ---- regression losses ----------------------------------------------------------------- */

/* Mean squared error over the elements whose target is not NaN: Σ (pred - target)² / m,
 * m the count of such elements; 0 when m = 0. pred, target (n). Accumulated in double. */
SB_API double sb_nn_mse_forward(const float *pred, const float *target, size_t n);
/* dpred (n) += 2 (pred - target) / m at non-NaN targets (nothing when m = 0). */
SB_API void sb_nn_mse_backward(float *dpred, const float *pred, const float *target, size_t n);
/* Mean absolute error over non-NaN targets: Σ |pred - target| / m; 0 when m = 0. */
SB_API double sb_nn_l1_forward(const float *pred, const float *target, size_t n);
/* dpred (n) += sign(pred - target) / m at non-NaN targets, sign(0) = 0 as in PyTorch. */
SB_API void sb_nn_l1_backward(float *dpred, const float *pred, const float *target, size_t n);

/* ---- optimisation ---------------------------------------------------------------------- */

/* The learning rate of step t (1-based, as sb_adamw_step counts) of a fit of `total`
 * steps: linear warmup from lr_max / warmup at t = 1 to lr_max at t = warmup, then cosine
 * decay over the total - warmup remaining steps, from lr_max at t = warmup + 1 to one step
 * short of lr_min at t = total (so the last step still trains), lr_min after:
 *   t <= warmup:  lr_max · t / warmup
 *   otherwise:    lr_min + (lr_max - lr_min) · (1 + cos(π · min(1, (t - warmup - 1) /
 *                 (total - warmup)))) / 2
 * warmup <= 0 skips the warmup; total <= warmup holds lr_max after the warmup. t < 1 is
 * read as 1. */
SB_API float sb_nn_lr_warmup_cosine(long t, long warmup, long total, float lr_max, float lr_min);

/* The L2 norm of grads (n), accumulated in double in index order. */
SB_API double sb_nn_grad_norm(const float *grads, size_t n);
/* Global gradient-norm clipping over one gradient buffer (all parameters of a model in one
 * allocation): when the norm exceeds max_norm, scales grads by max_norm / (norm + 1e-6), as
 * torch.nn.utils.clip_grad_norm_ does. Returns the norm before clipping. A non-finite norm
 * leaves grads unchanged and is returned, for the caller to skip the step and report it.
 * max_norm <= 0 only measures. */
SB_API double sb_nn_clip_grad_norm(float *grads, size_t n, double max_norm);

/* ---- the training loop ----------------------------------------------------------------- */

/* What sb_fit runs: epochs of shuffled mini-batches over n_items training items (rows, or
 * whole dialogues for a dialogue model), a dev evaluation after each epoch, early stopping
 * after `patience` epochs without a better dev score, and at the end the parameters of the
 * best epoch restored. The head owns the model; the loop owns the order, the bookkeeping
 * and the snapshot. Deterministic: the order comes only from (seed, stream). */
typedef struct sb_fit_spec {
    const char *who;       /* names the head in messages ("head linear") */
    int epochs;            /* >= 1 */
    int patience;          /* >= 1; epochs without a better dev score before stopping */
    size_t batch_size;     /* items per step, >= 1 */
    size_t n_items;        /* training items, >= 1 */
    const size_t *items;   /* the item ids to shuffle, or NULL for 0 .. n_items-1 */
    uint64_t seed, stream; /* the shuffling stream: sb_rng_seed(seed, stream) */
    float *params;         /* all trainable parameters, one allocation (snapshot/restore) */
    size_t n_params;
    void *ctx; /* passed to the callbacks */
    /* One optimisation step on items batch[0..n) (ids from `items`): forward, backward,
     * update. *loss = the batch's mean loss. `step` counts from 1 over the whole fit
     * (sb_fit_steps gives the total, for a schedule). A non-finite loss stops the fit with
     * an error that names the epoch and suggests a lower lr. */
    sb_status (*step)(void *ctx, const size_t *batch, size_t n, long step, double *loss,
                      sb_error *err);
    /* Score the current parameters on the dev set: *score, higher is better (a loss is
     * returned negated), and *shown, the value to print. NULL, or has_dev == 0: no dev set,
     * every epoch runs and the last one is kept. */
    sb_status (*evaluate)(void *ctx, double *score, double *shown, sb_error *err);
    int has_dev;
    const char *metric; /* name of the dev metric, for the log ("ua", "loss") */
    /* Optional: cancellation, progress (epochs) and per-epoch debug lines; may be NULL. */
    const struct sb_host *host;
} sb_fit_spec;

typedef struct sb_fit_result {
    int epochs_run;    /* epochs completed */
    int best_epoch;    /* 1-based epoch whose parameters are kept; 0 without a dev set */
    double best_score; /* its dev score (NAN without a dev set) */
    double best_shown; /* ... as shown */
    double train_loss; /* mean training loss of the last epoch run */
    long steps;        /* optimisation steps taken */
} sb_fit_result;

/* Steps per epoch × epochs: the schedule's total for spec. */
SB_API long sb_fit_steps(const sb_fit_spec *spec);

/* Run the loop. On an error (a callback's, a non-finite loss, SB_ERR_CANCELLED when the
 * host says so between steps) the parameters are left as they are and res says how far it
 * got. */
SB_API sb_status sb_fit(const sb_fit_spec *spec, sb_fit_result *res, sb_error *err);

SB_END_DECLS

#endif
