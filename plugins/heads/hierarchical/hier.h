/* plugins/heads/hierarchical/hier.h — (internal) the hierarchical head's model, shared by
 * hierarchical.c (the plugin: options, training stages, checkpoints), hier_model.c (the
 * forward and backward passes of the three stages) and hier_data.c (dialogues and their
 * batches). The test compiles all three and reaches these internals.
 *
 * Shapes: L layers of D dims per input (branch), C = d_model, K' = K classes (1 output for
 * regression), B dialogues per batch, T turns (padded), N = B*T positions, F FFN width,
 * NB branches. */
#ifndef HIER_H
#define HIER_H

#include <serbench/serbench.h>

#include "head_data.h"

#define HIER_WHO "head hierarchical"
#define HIER_MAX_BRANCHES 8
#define HIER_MAX_LAYERS 12
#define HIER_MAX_TENSORS 2048
/* Rows per stage-1 GEMM outside training (embeddings, stage-1 outputs): fixed, so that the
 * rounding of a prediction does not depend on the buffers training reserved (save -> load
 * gives bit-identical predictions); w1 always holds at least this many. */
#define HIER_EVAL_ROWS 256

typedef enum hier_context { CTX_TRANSFORMER, CTX_BIGRU } hier_context;
typedef enum hier_fusion { FUSE_COATTENTION, FUSE_CONCAT } hier_fusion;
typedef enum hier_metric { MET_UA, MET_WA, MET_MACRO_F1, MET_WEIGHTED_F1, MET_LOSS } hier_metric;

/* One named parameter tensor: its place in the parameter buffer and its shape. */
typedef struct hier_tensor {
    char name[160];
    size_t off, n;
    int ndim;
    int64_t shape[2];
    int decay;  /* AdamW weight decay applies (weight matrices) */
    int stage;  /* 1, 2 or 3 */
    int branch; /* branch index, -1 for stage 3 */
    int output; /* a classifier tensor (re-initialised by new_output) */
    int init;   /* HIER_INIT_* */
    float scale;
} hier_tensor;

enum { HIER_INIT_UNIFORM, HIER_INIT_ZERO, HIER_INIT_ONE, HIER_INIT_NORMAL };

/* Stage-1 parameters (or their gradients): layer logits a (L), projection w1 (C,D), b1 (C),
 * classifier wc (K',C), bc (K'). */
typedef struct s1_params {
    float *a, *w1, *b1, *wc, *bc;
} s1_params;

/* One pre-LN transformer layer. */
typedef struct tlayer {
    float *ln1w, *ln1b, *ln2w, *ln2b, *f1w, *f1b, *f2w, *f2b;
    sb_nn_mha_grads att;
} tlayer;

/* Stage-2 parameters: speaker embeddings spk (S,C) (NULL without speakers); transformer
 * layers and the final layer norm, or the BiGRU (H = C/2 each way), its self-attention and
 * layer norm; the classifier wc (K',C), bc (K'). */
typedef struct s2_params {
    float *spk;
    tlayer lay[HIER_MAX_LAYERS];
    float *lnw, *lnb;
    sb_nn_gru_grads gf, gb;
    sb_nn_mha_grads att;
    float *wc, *bc;
} s2_params;

/* Stage-3 parameters: per branch a cross-attention and layer norm (coattention only), the
 * classifier wc (K', NB*C), bc (K'). */
typedef struct s3_params {
    sb_nn_mha_grads att[HIER_MAX_BRANCHES];
    float *lnw[HIER_MAX_BRANCHES], *lnb[HIER_MAX_BRANCHES];
    float *wc, *bc;
} s3_params;

/* One input (modality branch). */
typedef struct branch {
    char name[128];
    int modality, L, D;
    float *mu, *inv_sd; /* (L,D) train-set standardisation */
    s1_params p1, g1;   /* views into params / grads */
    s2_params p2, g2;
    size_t s1_off, s1_end, s2_off, s2_end; /* parameter ranges */
} branch;

/* The dialogues of one split, cut into windows of at most max_turns turns, and their
 * batches. rows[] lists the split's rows by dialogue then turn; window w is
 * rows[first[w] .. first[w]+len[w]) with speaker indices spk[] beside them. Batches hold
 * consecutive windows of the length-sorted order. */
typedef struct hier_plan {
    size_t n_rows;
    size_t *rows;
    int *spk;
    size_t n_win;
    size_t *first;
    int *len;
    size_t *order; /* windows sorted by length (stable) */
    size_t n_batch;
    size_t *b_first; /* index into order */
    int *b_n;        /* windows in the batch */
    int *b_T;        /* longest window */
    int max_B, max_T;
} hier_plan;

/* Buffers of stage 1 for up to cap rows. */
typedef struct work1 {
    int cap;
    void *allocs[32];
    int n_allocs;
    float *zb, *hbar, *u, *g, *e, *logits, *probs, *dlogits, *de, *dg, *du, *dhbar, *losses, *tb;
    uint8_t *mask;
    int32_t *yb;
    float *wl;
    double *dwl;
} work1;

/* Buffers of stages 2 and 3 for batches up to B x T. */
typedef struct work2 {
    int B, T;
    void *allocs[256];
    int n_allocs;
    uint8_t *mask; /* (B,T) */
    size_t *row;   /* (N) row of each position, SIZE_MAX for padding */
    size_t *rrows; /* (N) the real positions' rows, in position order (fine-tuning) */
    int *spk, *pos;
    float *x0;
    uint8_t *m_in;
    float *xl[HIER_MAX_LAYERS + 1], *y1[HIER_MAX_LAYERS], *mean1[HIER_MAX_LAYERS],
        *rstd1[HIER_MAX_LAYERS], *acts[HIER_MAX_LAYERS], *xm[HIER_MAX_LAYERS], *y2[HIER_MAX_LAYERS],
        *mean2[HIER_MAX_LAYERS], *rstd2[HIER_MAX_LAYERS], *f1[HIER_MAX_LAYERS],
        *f1g[HIER_MAX_LAYERS];
    float *g, *gacts, *gscratch, *gacts_att, *s; /* BiGRU */
    float *o, *meanf, *rstdf, *od;
    uint8_t *m_o;
    float *logits, *probs, *dlogits, *losses, *tb;
    int32_t *yb;
    float *dx, *dy, *dt, *df, *df1g, *mscratch;
    /* stage 3 */
    float *c[HIER_MAX_BRANCHES], *a3[HIER_MAX_BRANCHES], *s3[HIER_MAX_BRANCHES],
        *f3[HIER_MAX_BRANCHES], *mean3[HIER_MAX_BRANCHES], *rstd3[HIER_MAX_BRANCHES],
        *acts3[HIER_MAX_BRANCHES];
    float *dc[HIER_MAX_BRANCHES]; /* (N,C) dL/dc_b when the branches fine-tune */
    float *cat, *catd, *dcat;
    uint8_t *m_cat;
} work2;

typedef struct hier_head {
    const sb_host *host;
    int L0, D0, K, KO; /* create's inputs[0] shape, classes, outputs (K or 1) */
    /* options */
    int stages_opt; /* 0 = auto */
    int C, n_layers, NH, F, causal, speakers, max_speakers;
    hier_context context;
    hier_fusion fusion;
    int freeze, learn_layers, normalize, balanced, l1;
    int stage1_finetune; /* a stage 1 from a "stage1" checkpoint is fine-tuned first */
    float dropout, lr, weight_decay, clip, warmup;
    int batch_size, batch_dialogues, max_batch_utts, max_turns, epochs, patience;
    hier_metric metric;
    /* the model, built once the inputs are known */
    int built, NB, stages, trained_stage;
    branch br[HIER_MAX_BRANCHES];
    s3_params p3, g3;
    size_t s3_off, s3_end;
    hier_tensor tensors[HIER_MAX_TENSORS];
    int n_tensors;
    size_t n_params;
    float *params, *grads, *m, *v;
    float *class_w; /* (K) */
    /* training state */
    sb_rng drop_rng;
    work1 w1;
    work2 w2;
    /* a checkpoint taken by load, applied by train (see hierarchical.c) */
    struct hier_ckpt *ckpt;
} hier_head;

/* ---- hier_model.c ---------------------------------------------------------------------- */

/* Lays out the tensors of h->NB branches (their names, L, D set) and allocates params,
 * grads, m, v and the standardisation arrays. */
sb_status hier_build(hier_head *h, sb_error *err);
/* Frees the model and the work buffers w1 / w2 sized for it (hier_build calls it first, so a
 * rebuilt model reserves buffers for its own branches). */
void hier_free_model(hier_head *h);
/* Initialise stage `stage` of branch b (b ignored for stage 3), PyTorch-style, from the
 * init stream; `outputs_only` re-initialises only its classifier. */
void hier_init_stage(hier_head *h, int stage, int b, int outputs_only);

sb_status hier_work1_reserve(hier_head *h, int cap, sb_error *err);
void hier_work1_free(work1 *w);
sb_status hier_work2_reserve(hier_head *h, int B, int T, sb_error *err);
void hier_work2_free(work2 *w);

/* Stage 1 of branch b on rows[0..n) of input x [*, L, D] (n <= w1.cap): standardised
 * gather, forward (dropout when train), logits and probs in w1; with y/value, targets in
 * w1.yb / w1.tb. */
void hier_s1_forward(hier_head *h, int b, const float *x, const size_t *rows, int n, int train);
/* Loss of the last forward (targets from yb / tb); with grads, accumulates into g1. */
double hier_s1_loss(hier_head *h, int n);
void hier_s1_backward(hier_head *h, int b, int n);
/* The backward from w1.dg (dL/dg, the embedding's gradient) to the projection and layer
 * weights; hier_s1_backward ends with it. */
void hier_s1_backward_embed(hier_head *h, int b, int n);
/* The utterance embeddings (eval mode) of rows[0..n): out (n, C), in chunks of
 * HIER_EVAL_ROWS rows (w1.cap >= HIER_EVAL_ROWS). */
void hier_s1_embed(hier_head *h, int b, const float *x, const size_t *rows, size_t n, float *out);

/* Fill w2's mask, row, spk, pos for batch `bi` of plan p. Returns T. */
int hier_batch_layout(hier_head *h, const hier_plan *p, size_t bi, int *B);
/* Stage 2 of branch b: E (n_rows, C) the split's stage-1 embeddings; forward for the
 * laid-out batch (B,T), logits/probs in w2, the context output in w2.o (N,C). */
void hier_s2_forward(hier_head *h, int b, const float *E, int B, int T, int train);
/* From d_o (N,C), the gradient w.r.t. the context output w2.o, or NULL: from w2.dlogits
 * through the classifier. With want_dx0, w2.dt ends as dL/d(embeddings) (N,C). */
void hier_s2_backward(hier_head *h, int b, int B, int T, const float *d_o, int want_dx0);
/* Stage 3 over the branches' context outputs Cx[b] (n_rows, C). */
void hier_s3_forward(hier_head *h, float *const *Cx, int B, int T, int train);
/* With want_dc, w2.dc[b] = dL/dc_b (N,C) for every branch. */
void hier_s3_backward(hier_head *h, int B, int T, int want_dc);
/* Targets of the laid-out positions into w2.yb / w2.tb from y / value (either NULL). */
void hier_batch_targets(hier_head *h, const int32_t *y, const double *value, int N);
/* Mean loss of w2.logits/probs over positions with a target; dlogits set when `grad`. */
double hier_head_loss(hier_head *h, int N, const float *logits, const float *probs, float *dlogits,
                      float *losses, const int32_t *yb, const float *tb, int grad);

/* ---- hier_data.c ----------------------------------------------------------------------- */

/* Dialogues of d (rows with NULL dialogue alone), ordered by turn (then row), windows of
 * at most max_turns, speakers by first appearance capped at max_speakers (the rest share
 * the last index); only windows with a target when `labelled_only`; batches of at most
 * batch_dialogues windows and max_batch_utts padded positions. */
sb_status hier_plan_build(hier_plan *p, const sb_head_data *d, const int *has_target,
                          int labelled_only, int max_turns, int max_speakers, int batch_dialogues,
                          int max_batch_utts, sb_error *err);
void hier_plan_free(hier_plan *p);

#endif
