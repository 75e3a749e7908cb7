/* plugins/heads/mlp/mlp.c — the `mlp` head: the linear head's SUPERB layer mixing and
 * train-set standardisation, then 1–4 hidden layers (linear → GELU → dropout) and a linear
 * classifier. Weighted cross-entropy, mini-batch AdamW with warmup + cosine decay and global
 * gradient clipping, early stopping on dev with the best epoch restored.
 *
 * Model, for one utterance with pooled features x (L,D), hidden widths H_1..H_n:
 *   z[l,d]  = (x[l,d] - mu[l,d]) * inv_sd[l,d]        (mu = 0, inv_sd = 1 without normalize)
 *   w       = softmax(a)  (L)                          (w = 1/L without layer_weights)
 *   h_0     = sum_l w[l] z[l,:]                        (D)
 *   u_i     = W_i h_{i-1} + b_i                        (H_i), W_i is (H_i, H_{i-1}), H_0 = D
 *   h_i     = dropout(gelu(u_i))                       (training only; identity at predict)
 *   logits  = Wc h_n + bc                              (K), Wc is (K, H_n)
 *   loss    = weighted mean over rows of -cw[y] log softmax(logits)[y]
 * For a regression task (no classes) the output is one value, K = 1 above, trained with L1
 * or MSE against d->value. The epochs, batches and early stopping are sb_fit's. */
#include <serbench/serbench.h>

#include "head_ckpt.h"
#include "head_data.h"
#include "head_probe.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define MLP_VERSION "0.2.0"
#define WHO "head mlp"

#define MAX_HIDDEN 4
#define MAX_WIDTH 65536

static const sb_option mlp_options[] = {
    { "layer_weights", SB_OPT_BOOL, "true", 0, 0, 0, NULL,
      "Learn softmax-normalised weights over the encoder layers; false averages the layers." },
    { "normalize", SB_OPT_BOOL, "true", 0, 0, 0, NULL,
      "Standardise each layer's features with the train-set mean and standard deviation." },
    { "hidden", SB_OPT_LIST, "[256]", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, MAX_HIDDEN, NULL,
      "Widths of the hidden layers (1 to 4 of them, each 1..65536), e.g. [256] or [512, 128]." },
    { "dropout", SB_OPT_FLOAT, "0.1", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 0.95, NULL,
      "Dropout probability after each hidden layer's GELU during training, in [0, 0.95]." },
    { "class_weights", SB_OPT_ENUM, "none", 0, 0, 0, "none|balanced",
      "Weight the loss per class: none, or balanced = n / (classes * count) as in sklearn." },
    { "lr", SB_OPT_FLOAT, "0.001", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 10, NULL,
      "Peak AdamW learning rate, in (0, 10]." },
    { "warmup", SB_OPT_FLOAT, "0.05", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 1, NULL,
      "Fraction of all training steps (epochs x batches) spent warming the learning rate up "
      "linearly; cosine decay to 0 follows." },
    { "clip", SB_OPT_FLOAT, "1.0", SB_OPT_HAS_MIN, 0, 0, NULL,
      "Clip the global gradient norm to this value; 0 = no clipping." },
    { "batch_size", SB_OPT_INT, "32", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 65536, NULL,
      "Utterances per mini-batch." },
    { "epochs", SB_OPT_INT, "50", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 100000, NULL,
      "Maximum number of passes over the training set." },
    { "weight_decay", SB_OPT_FLOAT, "0.0001", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 10, NULL,
      "AdamW decoupled weight decay on the weight matrices (not biases or layer weights)." },
    { "metric", SB_OPT_ENUM, "ua", 0, 0, 0, "ua|wa|macro_f1|loss",
      "Dev-set criterion for early stopping and choosing the best epoch; for a regression task "
      "ua, wa and macro_f1 all mean dev MAE, loss the dev training loss." },
    { "loss", SB_OPT_ENUM, "l1", 0, 0, 0, "l1|mse",
      "Regression tasks only: train on l1 (mean absolute error) or mse (mean squared error)." },
    { "patience", SB_OPT_INT, "10", SB_OPT_HAS_MIN, 1, 0, NULL,
      "Stop after this many epochs without a dev improvement." },
    { NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

/* Fixed AdamW constants (PyTorch defaults). */
#define ADAM_BETA1 0.9f
#define ADAM_BETA2 0.999f
#define ADAM_EPS 1e-8f

/* Independent random streams derived from host->seed. */
#define STREAM_INIT 0x6d6c702d696e6974ull    /* "mlp-init" */
#define STREAM_SHUFFLE 0x6d6c702d73687566ull /* "mlp-shuf" */
#define STREAM_DROPOUT 0x6d6c702d64726f70ull /* "mlp-drop" */

/* Rows per forward pass when evaluating (dev, predict). */
#define EVAL_ROWS 256

/* One weight tensor of the parameter buffer: its offset, size and whether AdamW decays it. */
typedef struct tensor {
    size_t off, n;
    int decay;
} tensor;

/* Layer i of the stack, i = 0..n_hidden (the last one is the classifier). */
typedef struct layer {
    int in, out;
    float *W, *b;   /* (out,in), (out): views into params */
    float *dW, *db; /* views into grads */
    /* activations for up to cap rows (hidden layers only) */
    float *u;       /* (cap,out) pre-activation */
    float *g;       /* (cap,out) GELU output */
    float *h;       /* (cap,out) after dropout: the next layer's input */
    uint8_t *mask;  /* (cap,out) dropout mask */
    float *dh, *dg; /* (cap,out) gradients w.r.t. h and g */
    float *du;      /* (cap,out) gradient w.r.t. u */
} layer;

typedef struct mlp_head {
    const sb_host *host;
    int L, D, K, n_hidden; /* K outputs: the classes, or 1 for a regression task */
    int regression;        /* the task has no classes: one output, target d->value */
    int hidden[MAX_HIDDEN];
    hd_probe_opts o; /* options but the mlp's own below */
    float dropout, clip;
    double warmup;  /* fraction of all steps */
    hd_probe probe; /* what the shared train, dev-scoring and predict code sees */
    /* parameters, one allocation: a (L) | W_1, b_1 | ... | W_n, b_n | Wc, bc */
    size_t n_params;
    float *params, *grads, *m, *v;
    float *a, *da;
    layer layers[MAX_HIDDEN + 1];
    tensor tensors[2 * MAX_HIDDEN + 3];
    int n_tensors;
    /* train-set standardisation, (L,D) each */
    float *mu, *inv_sd;
    float *class_w; /* (K) */
    sb_rng drop_rng;
    int trained;
    /* from load: train starts from the checkpoint's parameters and statistics (once), with
     * the output layer drawn afresh when fresh_output */
    int loaded, fresh_output;
    long warmup_steps, total_steps, clipped;
    /* work buffers for up to cap rows */
    int cap;
    float *zb;      /* (cap,L,D) standardised inputs */
    float *zbar;    /* (cap,D) mixed features */
    float *dzbar;   /* (cap,D) */
    float *logits;  /* (cap,K) */
    float *probs;   /* (cap,K) */
    float *dlogits; /* (cap,K) */
    float *losses;  /* (cap) */
    int32_t *yb;    /* (cap) */
    float *vb;      /* (cap) regression targets */
    float *wl;      /* (L) current layer weights */
    double *dwl;    /* (L) gradient w.r.t. the layer weights w, before the softmax */
} mlp_head;

static void mlp_destroy(void *inst)
{
    mlp_head *h = inst;
    if (!h)
        return;
    free(h->params);
    free(h->grads);
    free(h->m);
    free(h->v);
    free(h->mu);
    free(h->inv_sd);
    free(h->class_w);
    for (int i = 0; i < h->n_hidden; i++) {
        layer *ly = &h->layers[i];
        free(ly->u);
        free(ly->g);
        free(ly->h);
        free(ly->mask);
        free(ly->dh);
        free(ly->dg);
        free(ly->du);
    }
    free(h->zb);
    free(h->zbar);
    free(h->dzbar);
    free(h->logits);
    free(h->probs);
    free(h->dlogits);
    free(h->losses);
    free(h->yb);
    free(h->vb);
    free(h->wl);
    free(h->dwl);
    free(h);
}

/* Reads `hidden` into h->hidden; an error names the item and where it was set. */
static sb_status parse_hidden(mlp_head *h, const sb_opts *opts, sb_error *err)
{
    size_t n = sb_opts_list_len(opts, "hidden");
    if (n < 1 || n > MAX_HIDDEN)
        return sb_error_set(err, SB_ERR_INVALID, sb_opts_where(opts, "hidden"),
                            "hidden: %zu layers given; the mlp head takes 1 to %d widths, "
                            "e.g. [256]",
                            n, MAX_HIDDEN);
    for (size_t i = 0; i < n; i++) {
        const char *s = sb_opts_list_item(opts, "hidden", i);
        char *end = NULL;
        long v = s ? strtol(s, &end, 10) : 0;
        if (!s || end == s || *end != '\0' || v < 1 || v > MAX_WIDTH)
            return sb_error_set(err, SB_ERR_INVALID, sb_opts_where(opts, "hidden"),
                                "hidden: item %zu ('%s') is not a width; each item must be an "
                                "integer from 1 to %d",
                                i + 1, s ? s : "", MAX_WIDTH);
        h->hidden[i] = (int)v;
    }
    h->n_hidden = (int)n;
    return SB_OK;
}

/* Lays out the AdamW tensor table and counts n_params; once params and grads are
 * allocated, also points the views into them. */
static void bind_params(mlp_head *h)
{
    size_t off = 0;
    int nt = 0;
    int views = h->params && h->grads;
    h->a = h->params;
    h->da = h->grads;
    h->tensors[nt++] = (tensor){ 0, (size_t)h->L, 0 };
    off = (size_t)h->L;
    int in = h->D;
    for (int i = 0; i <= h->n_hidden; i++) {
        layer *ly = &h->layers[i];
        ly->in = in;
        ly->out = i < h->n_hidden ? h->hidden[i] : h->K;
        size_t nw = (size_t)ly->out * (size_t)ly->in;
        if (views) {
            ly->W = h->params + off;
            ly->dW = h->grads + off;
            ly->b = h->params + off + nw;
            ly->db = h->grads + off + nw;
        }
        h->tensors[nt++] = (tensor){ off, nw, 1 };
        off += nw;
        h->tensors[nt++] = (tensor){ off, (size_t)ly->out, 0 };
        off += (size_t)ly->out;
        in = ly->out;
    }
    h->n_tensors = nt;
    h->n_params = off;
}

static void run_eval(void *ctx, const sb_head_data *d, const size_t *rows, size_t first, int B);

static sb_status mlp_create(const sb_host *host, const sb_opts *opts, int n_layers, int dim,
                            int n_classes, void **inst, sb_error *err)
{
    *inst = NULL;
    hd_probe_opts o;
    sb_status st = hd_probe_opts_read(WHO, "mlp", opts, n_layers, dim, n_classes, &o, err);
    if (st != SB_OK)
        return st;

    mlp_head *h = calloc(1, sizeof *h);
    if (!h)
        return sb_error_set(err, SB_ERR_NOMEM, WHO, "out of memory");
    if ((st = parse_hidden(h, opts, err)) != SB_OK) {
        free(h);
        return st;
    }
    h->host = host;
    h->L = n_layers;
    h->D = dim;
    h->regression = n_classes == 0;
    h->K = h->regression ? 1 : n_classes;
    h->o = o;
    h->dropout = (float)sb_opts_float(opts, "dropout");
    h->warmup = sb_opts_float(opts, "warmup");
    h->clip = (float)sb_opts_float(opts, "clip");

    bind_params(h); /* params is still NULL: counts only */
    size_t L = (size_t)h->L, D = (size_t)h->D, K = (size_t)h->K, np = h->n_params;
    h->cap = h->o.batch_size > EVAL_ROWS ? h->o.batch_size : EVAL_ROWS;
    size_t cap = (size_t)h->cap;
    h->params = calloc(np, sizeof(float));
    h->grads = calloc(np, sizeof(float));
    h->m = calloc(np, sizeof(float));
    h->v = calloc(np, sizeof(float));
    h->mu = calloc(L * D, sizeof(float));
    h->inv_sd = calloc(L * D, sizeof(float));
    h->class_w = calloc(K, sizeof(float));
    h->zb = calloc(cap * L * D, sizeof(float));
    h->zbar = calloc(cap * D, sizeof(float));
    h->dzbar = calloc(cap * D, sizeof(float));
    h->logits = calloc(cap * K, sizeof(float));
    h->probs = calloc(cap * K, sizeof(float));
    h->dlogits = calloc(cap * K, sizeof(float));
    h->losses = calloc(cap, sizeof(float));
    h->yb = calloc(cap, sizeof(int32_t));
    h->vb = calloc(cap, sizeof(float));
    h->wl = calloc(L, sizeof(float));
    h->dwl = calloc(L, sizeof(double));
    int ok = h->params && h->grads && h->m && h->v && h->mu && h->inv_sd && h->class_w && h->zb &&
             h->zbar && h->dzbar && h->logits && h->probs && h->dlogits && h->losses && h->yb &&
             h->vb && h->wl && h->dwl;
    for (int i = 0; i < h->n_hidden; i++) {
        layer *ly = &h->layers[i];
        size_t n = cap * (size_t)h->hidden[i];
        ly->u = calloc(n, sizeof(float));
        ly->g = calloc(n, sizeof(float));
        ly->h = calloc(n, sizeof(float));
        ly->mask = calloc(n, 1);
        ly->dh = calloc(n, sizeof(float));
        ly->dg = calloc(n, sizeof(float));
        ly->du = calloc(n, sizeof(float));
        ok = ok && ly->u && ly->g && ly->h && ly->mask && ly->dh && ly->dg && ly->du;
    }
    if (!ok) {
        mlp_destroy(h);
        return sb_error_set(err, SB_ERR_NOMEM, WHO,
                            "out of memory for %d layers x %d dims, %zu parameters, batch %d",
                            n_layers, dim, np, (int)cap);
    }
    bind_params(h);
    h->probe = (hd_probe){ .who = WHO,
                           .head = "mlp",
                           .L = h->L,
                           .D = h->D,
                           .K = h->K,
                           .regression = h->regression,
                           .cap = h->cap,
                           .o = &h->o,
                           .ctx = h,
                           .run = run_eval,
                           .logits = h->logits,
                           .probs = h->probs,
                           .vb = h->vb,
                           .class_w = h->class_w,
                           .yb = h->yb,
                           .losses = h->losses };
    *inst = h;
    return SB_OK;
}

/* ---- the model ---------------------------------------------------------------------- */

/* Layer weights w (L): softmax of a, or uniform. */
static void layer_weights(const mlp_head *h, float *w)
{
    hd_layer_weights(h->o.learn_layers, h->a, h->L, w);
}

/* Copy rows[0..B) of d (or rows first..first+B when rows is NULL) into zb, standardised,
 * and their targets into yb. */
static void gather(mlp_head *h, const sb_head_data *d, const size_t *rows, size_t first, int B)
{
    hd_gather(h->L, h->D, h->mu, h->inv_sd, d, rows, first, B, h->zb, h->yb);
    if (h->regression)
        hd_gather_values(d, rows, first, B, h->vb);
}

/* zb (B,L,D) → zbar (B,D) → hidden layers → logits (B,K) → probs (B,K), with wl set.
 * `train` applies dropout (masks drawn from h->drop_rng); otherwise h_i = g_i. A regression
 * head's prediction is logits (B,1); probs is not computed. */
static void forward(mlp_head *h, int B, int train)
{
    int L = h->L, D = h->D;
    layer_weights(h, h->wl);
    hd_mix_forward(h->zbar, h->zb, h->wl, B, L, D);
    const float *in = h->zbar;
    for (int i = 0; i < h->n_hidden; i++) {
        layer *ly = &h->layers[i];
        size_t n = (size_t)B * (size_t)ly->out;
        sb_nn_linear_forward(ly->u, in, ly->W, ly->b, B, ly->in, ly->out);
        sb_nn_gelu_forward(ly->g, ly->u, n);
        if (train)
            sb_nn_dropout_forward(ly->h, ly->mask, ly->g, h->dropout, n, &h->drop_rng);
        else
            memcpy(ly->h, ly->g, n * sizeof(float));
        in = ly->h;
    }
    layer *cl = &h->layers[h->n_hidden];
    sb_nn_linear_forward(h->logits, in, cl->W, cl->b, B, cl->in, h->K);
    if (!h->regression)
        sb_nn_softmax_forward(h->probs, h->logits, B, h->K);
}

/* Loss of the B rows in zb/yb at the current parameters, forward in training mode (with
 * dropout); with `grads`, also sets h->grads (zeroed first) to its gradient. Returns the
 * weighted mean loss. */
static double loss_and_grad(mlp_head *h, int B, int grads)
{
    int L = h->L, D = h->D, K = h->K, nh = h->n_hidden;
    forward(h, B, 1);
    double loss = h->regression ? hd_probe_regression_loss(&h->probe, B)
                                : sb_nn_xent_forward(h->losses, h->probs, h->yb, h->class_w, B, K);
    if (!grads)
        return loss;
    memset(h->grads, 0, h->n_params * sizeof(float));
    memset(h->dlogits, 0, (size_t)B * K * sizeof(float));
    if (!h->regression)
        sb_nn_xent_backward(h->dlogits, h->probs, h->yb, h->class_w, B, K);
    else if (h->o.loss_l1)
        sb_nn_l1_backward(h->dlogits, h->logits, h->vb, (size_t)B);
    else
        sb_nn_mse_backward(h->dlogits, h->logits, h->vb, (size_t)B);
    /* classifier, then each hidden layer from the top: dout is the gradient w.r.t. the
     * layer's output h_i, din the one w.r.t. its input (h_{i-1}, or zbar for i = 0) */
    layer *cl = &h->layers[nh];
    float *din = nh > 0 ? h->layers[nh - 1].dh : h->dzbar;
    const float *inp = nh > 0 ? h->layers[nh - 1].h : h->zbar;
    memset(din, 0, (size_t)B * cl->in * sizeof(float));
    sb_nn_linear_backward(din, cl->dW, cl->db, h->dlogits, inp, cl->W, B, cl->in, K);
    for (int i = nh - 1; i >= 0; i--) {
        layer *ly = &h->layers[i];
        size_t n = (size_t)B * (size_t)ly->out;
        memset(ly->dg, 0, n * sizeof(float));
        sb_nn_dropout_backward(ly->dg, ly->dh, ly->mask, h->dropout, n);
        memset(ly->du, 0, n * sizeof(float));
        sb_nn_gelu_backward(ly->du, ly->dg, ly->u, n);
        din = i > 0 ? h->layers[i - 1].dh : h->dzbar;
        inp = i > 0 ? h->layers[i - 1].h : h->zbar;
        memset(din, 0, (size_t)B * ly->in * sizeof(float));
        sb_nn_linear_backward(din, ly->dW, ly->db, ly->du, inp, ly->W, B, ly->in, ly->out);
    }
    if (!h->o.learn_layers)
        return loss;
    hd_mix_backward(h->da, h->dwl, h->dzbar, h->zb, h->wl, B, L, D);
    return loss;
}

/* One AdamW step at learning rate lr; decay applies to the weight matrices only, and the
 * layer logits are left alone when they are not learned. */
static void adamw(mlp_head *h, int t, float lr)
{
    for (int i = 0; i < h->n_tensors; i++) {
        const tensor *tn = &h->tensors[i];
        if (i == 0 && !h->o.learn_layers)
            continue;
        sb_adamw_step(h->params + tn->off, h->grads + tn->off, h->m + tn->off, h->v + tn->off,
                      tn->n, t, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS,
                      tn->decay ? h->o.weight_decay : 0.0f);
    }
}

/* hd_probe's run: rows of d through the model in evaluation mode (evaluation and predict). */
static void run_eval(void *ctx, const sb_head_data *d, const size_t *rows, size_t first, int B)
{
    mlp_head *h = ctx;
    gather(h, d, rows, first, B);
    forward(h, B, 0);
}

/* ---- training ----------------------------------------------------------------------- */

/* Non-finite features among the given rows are an error naming the item. */
static sb_status check_finite(const mlp_head *h, const sb_head_data *d, const size_t *rows,
                              size_t n, const char *split, sb_error *err)
{
    return hd_check_finite(WHO, h->L, h->D, d, rows, n, split, err);
}

/* Per-(layer,dim) mean and 1/sd (population) over the labelled train rows, in double. A
 * constant feature gets 1/sd = 1. */
static sb_status fit_stats(mlp_head *h, const sb_head_data *d, const size_t *rows, size_t n,
                           sb_error *err)
{
    return hd_fit_stats(WHO, h->o.normalize, h->L, h->D, d, rows, n, h->mu, h->inv_sd, err);
}

/* sklearn's 'balanced': n / (n_present_classes * count[k]); 0 for classes absent from
 * train (they contribute no rows anyway). */
static void fit_class_weights(mlp_head *h, const sb_head_data *d, const size_t *rows, size_t n)
{
    hd_class_weights(h->o.balanced, h->K, d, rows, n, h->class_w);
}

/* Every W and b ~ U(-1/sqrt(in), 1/sqrt(in)) like nn.Linear, drawn layer by layer from the
 * init stream; with `output_only` the same draws are made but only the output layer's are
 * kept (a fresh output layer on loaded hidden layers). */
static void init_layers(mlp_head *h, int output_only)
{
    sb_rng r;
    sb_rng_seed(&r, h->host->seed, STREAM_INIT);
    for (int i = 0; i <= h->n_hidden; i++) {
        layer *ly = &h->layers[i];
        double bound = 1.0 / sqrt((double)ly->in);
        size_t n = (size_t)ly->out * ((size_t)ly->in + 1); /* W then b: contiguous */
        int keep = !output_only || i == h->n_hidden;
        for (size_t j = 0; j < n; j++) {
            float v = (float)((2.0 * sb_rng_uniform(&r) - 1.0) * bound);
            if (keep)
                ly->W[j] = v;
        }
    }
}

/* a = 0 (uniform layer weights), then every layer. */
static void init_params(mlp_head *h)
{
    for (int l = 0; l < h->L; l++)
        h->a[l] = 0.0f;
    init_layers(h, 0);
}

/* The learning-rate schedule's length in AdamW steps: *total = epochs x batches per epoch
 * (sb_fit_steps; an early stop leaves the tail unused), *warmup = warmup fraction x total,
 * rounded to the nearest step. */
static void schedule_steps(const mlp_head *h, size_t n_tr, long *warmup, long *total)
{
    sb_fit_spec spec = { .epochs = h->o.epochs,
                         .batch_size = (size_t)h->o.batch_size,
                         .n_items = n_tr };
    *total = sb_fit_steps(&spec);
    *warmup = lround(h->warmup * (double)*total);
}

/* sb_fit's step: forward and backward with dropout, global-norm clipping, one AdamW step at
 * the schedule's rate. A non-finite loss or gradient norm leaves the parameters alone. */
static sb_status fit_step(void *ctx, const sb_head_data *train, const size_t *batch, size_t n,
                          long step, double *loss, sb_error *err)
{
    mlp_head *h = ctx;
    gather(h, train, batch, 0, (int)n);
    *loss = loss_and_grad(h, (int)n, 1);
    double norm = sb_nn_clip_grad_norm(h->grads, h->n_params, h->clip);
    if (!isfinite(*loss))
        return SB_OK; /* sb_fit reports it with the epoch */
    if (!isfinite(norm))
        return sb_error_set(err, SB_ERR_INVALID, WHO,
                            "the gradient norm became %g at step %ld (loss %g); lower lr (now "
                            "%g) or set clip",
                            norm, step, *loss, (double)h->o.lr);
    h->clipped += h->clip > 0.0f && norm > h->clip;
    float lr = sb_nn_lr_warmup_cosine(step, h->warmup_steps, h->total_steps, h->o.lr, 0.0f);
    adamw(h, (int)step, lr);
    return SB_OK;
}

static sb_status mlp_train(void *inst, const sb_head_data *train, const sb_head_data *dev,
                           sb_error *err)
{
    mlp_head *h = inst;
    const sb_host *host = h->host;
    sb_status st;
    size_t *tr, *dv, n_tr, n_dv;
    if ((st = hd_probe_train_rows(&h->probe, host, train, dev, &tr, &n_tr, &dv, &n_dv, err)) !=
        SB_OK)
        return st;
    if ((st = check_finite(h, train, tr, n_tr, "train", err)) != SB_OK)
        goto out;
    if (n_dv > 0 && (st = check_finite(h, dev, dv, n_dv, "dev", err)) != SB_OK)
        goto out;
    if (!h->loaded && (st = fit_stats(h, train, tr, n_tr, err)) != SB_OK)
        goto out; /* a checkpoint's statistics are kept */
    if (!h->regression)
        fit_class_weights(h, train, tr, n_tr);
    if (!h->loaded)
        init_params(h);
    else if (h->fresh_output)
        init_layers(h, 1);
    /* a fresh regression output starts at the targets' centre: the median for L1, the mean
     * for MSE */
    if (h->regression && (!h->loaded || h->fresh_output))
        h->layers[h->n_hidden].b[0] = (float)hd_target_center(h->o.loss_l1, train, tr, n_tr);
    memset(h->m, 0, h->n_params * sizeof(float));
    memset(h->v, 0, h->n_params * sizeof(float));
    int from_checkpoint = h->loaded;
    h->loaded = h->fresh_output = 0;
    sb_rng_seed(&h->drop_rng, host->seed, STREAM_DROPOUT);
    h->trained = 0;

    schedule_steps(h, n_tr, &h->warmup_steps, &h->total_steps);
    h->clipped = 0;
    sb_fit_result res;
    if ((st = hd_probe_fit(&h->probe, host, train, tr, n_tr, dev, dv, n_dv, STREAM_SHUFFLE,
                           h->params, h->n_params, fit_step, &res, err)) != SB_OK)
        goto out;
    h->trained = 1;

    layer_weights(h, h->wl);
    int top = hd_argmax(h->wl, h->L);
    if (res.best_epoch > 0)
        host->log(host, SB_LOG_INFO,
                  "mlp head: %zu train rows%s, %zu parameters, %d epochs run, best epoch %d with "
                  "dev %s %.4f; top layer %d (weight %.3f); %ld of %ld steps clipped",
                  n_tr, from_checkpoint ? " (from a checkpoint)" : "", h->n_params, res.epochs_run,
                  res.best_epoch, hd_metric_name(h->o.metric, h->regression), res.best_shown, top,
                  (double)h->wl[top], h->clipped, res.steps);
    else
        host->log(host, SB_LOG_INFO,
                  "mlp head: %zu train rows%s, %zu parameters, %d epochs (no dev set); top layer "
                  "%d (weight %.3f); %ld of %ld steps clipped",
                  n_tr, from_checkpoint ? " (from a checkpoint)" : "", h->n_params, res.epochs_run,
                  top, (double)h->wl[top], h->clipped, res.steps);
out:
    free(tr);
    free(dv);
    return st;
}

static sb_status mlp_predict(void *inst, const sb_head_data *data, float *probs, sb_error *err)
{
    const mlp_head *h = inst;
    return hd_probe_predict(&h->probe, h->trained, data, probs, err);
}

/* ---- checkpoints ------------------------------------------------------------------------ */

/* What fixes the shapes of the saved tensors. n_classes is 0 for a regression head. */
static void head_config(const mlp_head *h, char *buf, size_t cap)
{
    hd_probe_config(buf, cap, h->L, h->D, h->regression ? 0 : h->K, h->hidden, h->n_hidden);
}

/* The tensor of layer i (0..n_hidden, the last the output layer): "hidden.<i>.W" / ".b", or
 * "W" / "b" for the output layer. */
static void layer_names(const mlp_head *h, int i, char *w, char *b, size_t cap)
{
    if (i == h->n_hidden) {
        snprintf(w, cap, "W");
        snprintf(b, cap, "b");
    } else {
        snprintf(w, cap, "hidden.%d.W", i);
        snprintf(b, cap, "hidden.%d.b", i);
    }
}

/* Tensors: layer_logits (L), mu, inv_sd (L,D), hidden.<i>.W (H_i, H_{i-1}), hidden.<i>.b
 * (H_i), W (K, H_n), b (K); K = 1 for regression. */
static sb_status mlp_save(void *inst, sb_st_writer *w, sb_error *err)
{
    mlp_head *h = inst;
    if (!h->trained)
        return sb_error_set(err, SB_ERR_INVALID, WHO, "save called before train");
    sb_status st = hd_probe_save_stats(w, h->L, h->D, h->a, h->mu, h->inv_sd, err);
    if (st != SB_OK)
        return st;
    for (int i = 0; i <= h->n_hidden; i++) {
        const layer *ly = &h->layers[i];
        char wn[32], bn[32];
        layer_names(h, i, wn, bn, sizeof wn);
        const int64_t s_w[2] = { ly->out, ly->in }, s_b[1] = { ly->out };
        if ((st = sb_st_writer_add(w, wn, SB_DT_F32, 2, s_w, ly->W, err)) != SB_OK ||
            (st = sb_st_writer_add(w, bn, SB_DT_F32, 1, s_b, ly->b, err)) != SB_OK)
            return st;
    }
    char cfg[256];
    head_config(h, cfg, sizeof cfg);
    return sb_st_writer_meta(w, "head_config", cfg, err);
}

static sb_status mlp_load(void *inst, const sb_st_file *f, const sb_head_init *init, sb_error *err)
{
    mlp_head *h = inst;
    int fresh;
    char cfg[256];
    head_config(h, cfg, sizeof cfg);
    sb_status st = hd_probe_load_check(WHO, "mlp", f, init, cfg, &fresh, err);
    hd_stage s;
    if (st != SB_OK ||
        (st = hd_stage_read_stats(WHO, f, h->L, h->D, h->n_params, &s, err)) != SB_OK)
        return st;
    /* the copy is laid out as params; a fresh output layer is not read */
    int n_read = fresh ? h->n_hidden : h->n_hidden + 1;
    for (int i = 0; st == SB_OK && i < n_read; i++) {
        const layer *ly = &h->layers[i];
        char wn[32], bn[32];
        layer_names(h, i, wn, bn, sizeof wn);
        const int64_t s_w[2] = { ly->out, ly->in }, s_b[1] = { ly->out };
        if ((st = hd_st_read(WHO, f, wn, 2, s_w, s.params + (ly->W - h->params), err)) == SB_OK)
            st = hd_st_read(WHO, f, bn, 1, s_b, s.params + (ly->b - h->params), err);
    }
    if (st != SB_OK) {
        hd_stage_free(&s);
        return st;
    }
    size_t keep = fresh ? (size_t)(h->layers[h->n_hidden].W - h->params) : h->n_params;
    hd_stage_commit(&s, keep, h->params, h->mu, h->inv_sd);
    h->loaded = 1;
    h->fresh_output = fresh;
    h->trained = !fresh; /* a whole model predicts as it is */
    return SB_OK;
}

static const sb_head_vtable mlp_vtable = {
    .struct_size = sizeof(sb_head_vtable),
    .create = mlp_create,
    .train = mlp_train,
    .predict = mlp_predict,
    .destroy = mlp_destroy,
    .save = mlp_save,
    .load = mlp_load,
};

static const sb_plugin mlp_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_HEAD,
    .name = "mlp",
    .version = MLP_VERSION,
    .summary = "MLP probe: softmax layer weights, standardised features, 1-4 GELU hidden "
               "layers with dropout, classifier or regressor (AdamW, warmup + cosine, clipping, "
               "early stopping on dev, checkpoints)",
    .options = mlp_options,
    .vtable = &mlp_vtable,
};

SB_PLUGIN_DEFINE(mlp_plugin)
