/* plugins/heads/linear/linear.c — the `linear` head: a SUPERB-style probe on pooled
 * encoder features. Softmax-normalised learned weights mix the L layers, features are
 * standardised with train-set statistics, and one linear layer gives the class logits.
 * Trained with weighted cross-entropy and mini-batch AdamW, early-stopped on dev.
 *
 * Model, for one utterance with pooled features x (L,D):
 *   z[l,d]  = (x[l,d] - mu[l,d]) * inv_sd[l,d]        (mu = 0, inv_sd = 1 without normalize)
 *   w       = softmax(a)  (L)                          (w = 1/L without layer_weights)
 *   zbar[d] = sum_l w[l] z[l,d]                        (D)
 *   logits  = W zbar + bias                            (K), W is (K,D)
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

#define LINEAR_VERSION "0.2.0"
#define WHO "head linear"

static const sb_option linear_options[] = {
    { "layer_weights", SB_OPT_BOOL, "true", 0, 0, 0, NULL,
      "Learn softmax-normalised weights over the encoder layers; false averages the layers." },
    { "normalize", SB_OPT_BOOL, "true", 0, 0, 0, NULL,
      "Standardise each layer's features with the train-set mean and standard deviation." },
    { "hidden", SB_OPT_INT, "0", SB_OPT_HAS_MIN, 0, 0, NULL,
      "Hidden width of an MLP before the classifier; 0 = none (only 0 is supported here)." },
    { "class_weights", SB_OPT_ENUM, "none", 0, 0, 0, "none|balanced",
      "Weight the loss per class: none, or balanced = n / (classes * count) as in sklearn." },
    { "lr", SB_OPT_FLOAT, "0.001", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 10, NULL,
      "AdamW learning rate, in (0, 10]." },
    { "batch_size", SB_OPT_INT, "32", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 65536, NULL,
      "Utterances per mini-batch." },
    { "epochs", SB_OPT_INT, "50", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 100000, NULL,
      "Maximum number of passes over the training set." },
    { "weight_decay", SB_OPT_FLOAT, "0.0001", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 10, NULL,
      "AdamW decoupled weight decay on the classifier weights (not biases or layer weights)." },
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
#define STREAM_INIT 0x6c696e2d696e6974ull    /* "lin-init" */
#define STREAM_SHUFFLE 0x6c696e2d73687566ull /* "lin-shuf" */

/* Rows per forward pass when evaluating (dev, predict). */
#define EVAL_ROWS 256

typedef struct linear_head {
    const sb_host *host;
    int L, D, K;     /* K outputs: the classes, or 1 for a regression task */
    int regression;  /* the task has no classes: one output, target d->value */
    hd_probe_opts o; /* options */
    hd_probe probe;  /* what the shared train, dev-scoring and predict code sees */
    /* parameters, one allocation: a (L) layer logits | W (K,D) | bias (K) */
    size_t n_params;
    float *params, *grads, *m, *v;
    float *a, *W, *bias;    /* views into params */
    float *da, *dW, *dbias; /* views into grads */
    /* train-set standardisation, (L,D) each */
    float *mu, *inv_sd;
    float *class_w; /* (K) */
    int trained;
    /* from load: train starts from the checkpoint's parameters and statistics (once), with
     * the output layer drawn afresh when fresh_output */
    int loaded, fresh_output;
    /* work buffers for up to cap rows */
    int cap;
    float *zb;      /* (cap,L,D) standardised inputs */
    float *zbar;    /* (cap,D) mixed features */
    float *logits;  /* (cap,K) */
    float *probs;   /* (cap,K) */
    float *dlogits; /* (cap,K) */
    float *dzbar;   /* (cap,D) */
    float *losses;  /* (cap) */
    int32_t *yb;    /* (cap) */
    float *vb;      /* (cap) regression targets */
    float *wl;      /* (L) current layer weights */
    double *dwl;    /* (L) gradient w.r.t. the layer weights w, before the softmax */
} linear_head;

static void linear_destroy(void *inst)
{
    linear_head *h = inst;
    if (!h)
        return;
    free(h->params);
    free(h->grads);
    free(h->m);
    free(h->v);
    free(h->mu);
    free(h->inv_sd);
    free(h->class_w);
    free(h->zb);
    free(h->zbar);
    free(h->logits);
    free(h->probs);
    free(h->dlogits);
    free(h->dzbar);
    free(h->losses);
    free(h->yb);
    free(h->vb);
    free(h->wl);
    free(h->dwl);
    free(h);
}

static void run_eval(void *ctx, const sb_head_data *d, const size_t *rows, size_t first, int B);

static sb_status linear_create(const sb_host *host, const sb_opts *opts, int n_layers, int dim,
                               int n_classes, void **inst, sb_error *err)
{
    *inst = NULL;
    hd_probe_opts o;
    sb_status st = hd_probe_opts_read(WHO, "linear", opts, n_layers, dim, n_classes, &o, err);
    if (st != SB_OK)
        return st;
    if (sb_opts_int(opts, "hidden") != 0)
        return sb_error_set(err, SB_ERR_INVALID, sb_opts_where(opts, "hidden"),
                            "hidden: %lld is not supported by the linear head (only 0); use "
                            "the mlp head for a hidden layer",
                            (long long)sb_opts_int(opts, "hidden"));

    linear_head *h = calloc(1, sizeof *h);
    if (!h)
        return sb_error_set(err, SB_ERR_NOMEM, WHO, "out of memory");
    h->host = host;
    h->L = n_layers;
    h->D = dim;
    h->regression = n_classes == 0;
    h->K = h->regression ? 1 : n_classes;
    h->o = o;

    size_t L = (size_t)h->L, D = (size_t)h->D, K = (size_t)h->K;
    h->n_params = L + K * D + K;
    h->cap = h->o.batch_size > EVAL_ROWS ? h->o.batch_size : EVAL_ROWS;
    size_t cap = (size_t)h->cap;
    h->params = calloc(h->n_params, sizeof(float));
    h->grads = calloc(h->n_params, sizeof(float));
    h->m = calloc(h->n_params, sizeof(float));
    h->v = calloc(h->n_params, sizeof(float));
    h->mu = calloc(L * D, sizeof(float));
    h->inv_sd = calloc(L * D, sizeof(float));
    h->class_w = calloc(K, sizeof(float));
    h->zb = calloc(cap * L * D, sizeof(float));
    h->zbar = calloc(cap * D, sizeof(float));
    h->logits = calloc(cap * K, sizeof(float));
    h->probs = calloc(cap * K, sizeof(float));
    h->dlogits = calloc(cap * K, sizeof(float));
    h->dzbar = calloc(cap * D, sizeof(float));
    h->losses = calloc(cap, sizeof(float));
    h->yb = calloc(cap, sizeof(int32_t));
    h->vb = calloc(cap, sizeof(float));
    h->wl = calloc(L, sizeof(float));
    h->dwl = calloc(L, sizeof(double));
    if (!h->dwl || !h->params || !h->grads || !h->m || !h->v || !h->mu || !h->inv_sd ||
        !h->class_w || !h->zb || !h->zbar || !h->logits || !h->probs || !h->dlogits || !h->dzbar ||
        !h->losses || !h->yb || !h->vb || !h->wl) {
        linear_destroy(h);
        return sb_error_set(err, SB_ERR_NOMEM, WHO,
                            "out of memory for %d layers x %d dims, batch %d", h->L, h->D, h->cap);
    }
    h->a = h->params;
    h->W = h->params + L;
    h->bias = h->W + K * D;
    h->da = h->grads;
    h->dW = h->grads + L;
    h->dbias = h->dW + K * D;
    h->probe = (hd_probe){ .who = WHO,
                           .head = "linear",
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
static void layer_weights(const linear_head *h, float *w)
{
    hd_layer_weights(h->o.learn_layers, h->a, h->L, w);
}

/* Copy rows[0..B) of d (or rows first..first+B when rows is NULL) into zb, standardised,
 * and their targets into yb. */
static void gather(linear_head *h, const sb_head_data *d, const size_t *rows, size_t first, int B)
{
    hd_gather(h->L, h->D, h->mu, h->inv_sd, d, rows, first, B, h->zb, h->yb);
    if (h->regression)
        hd_gather_values(d, rows, first, B, h->vb);
}

/* zb (B,L,D) → zbar (B,D) → logits (B,K) → probs (B,K), with wl set. A regression head's
 * prediction is logits (B,1); probs is not computed. */
static void forward(linear_head *h, int B)
{
    int L = h->L, D = h->D;
    layer_weights(h, h->wl);
    hd_mix_forward(h->zbar, h->zb, h->wl, B, L, D);
    sb_nn_linear_forward(h->logits, h->zbar, h->W, h->bias, B, D, h->K);
    if (!h->regression)
        sb_nn_softmax_forward(h->probs, h->logits, B, h->K);
}

/* Loss of the B rows in zb/yb at the current parameters; with `grads`, also sets
 * h->grads (zeroed first) to its gradient. Returns the weighted mean loss. */
static double loss_and_grad(linear_head *h, int B, int grads)
{
    int L = h->L, D = h->D, K = h->K;
    forward(h, B);
    double loss = h->regression ? hd_probe_regression_loss(&h->probe, B)
                                : sb_nn_xent_forward(h->losses, h->probs, h->yb, h->class_w, B, K);
    if (!grads)
        return loss;
    memset(h->grads, 0, h->n_params * sizeof(float));
    memset(h->dlogits, 0, (size_t)B * K * sizeof(float));
    memset(h->dzbar, 0, (size_t)B * D * sizeof(float));
    if (!h->regression)
        sb_nn_xent_backward(h->dlogits, h->probs, h->yb, h->class_w, B, K);
    else if (h->o.loss_l1)
        sb_nn_l1_backward(h->dlogits, h->logits, h->vb, (size_t)B);
    else
        sb_nn_mse_backward(h->dlogits, h->logits, h->vb, (size_t)B);
    sb_nn_linear_backward(h->dzbar, h->dW, h->dbias, h->dlogits, h->zbar, h->W, B, D, K);
    if (!h->o.learn_layers)
        return loss;
    hd_mix_backward(h->da, h->dwl, h->dzbar, h->zb, h->wl, B, L, D);
    return loss;
}

/* One AdamW step; decay applies to W only. */
static void adamw(linear_head *h, int t)
{
    size_t L = (size_t)h->L, KD = (size_t)h->K * (size_t)h->D, K = (size_t)h->K;
    if (h->o.learn_layers)
        sb_adamw_step(h->a, h->da, h->m, h->v, L, t, h->o.lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS,
                      0.0f);
    sb_adamw_step(h->W, h->dW, h->m + L, h->v + L, KD, t, h->o.lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS,
                  h->o.weight_decay);
    sb_adamw_step(h->bias, h->dbias, h->m + L + KD, h->v + L + KD, K, t, h->o.lr, ADAM_BETA1,
                  ADAM_BETA2, ADAM_EPS, 0.0f);
}

/* hd_probe's run: rows of d through the model (evaluation and predict). */
static void run_eval(void *ctx, const sb_head_data *d, const size_t *rows, size_t first, int B)
{
    linear_head *h = ctx;
    gather(h, d, rows, first, B);
    forward(h, B);
}

/* ---- training ----------------------------------------------------------------------- */

/* Per-(layer,dim) mean and 1/sd (population) over the labelled train rows, in double. A
 * constant feature gets 1/sd = 1. The rows' features are finite (linear_train checks). */
static sb_status fit_stats(linear_head *h, const sb_head_data *d, const size_t *rows, size_t n,
                           sb_error *err)
{
    return hd_fit_stats(WHO, h->o.normalize, h->L, h->D, d, rows, n, h->mu, h->inv_sd, err);
}

/* sklearn's 'balanced': n / (n_present_classes * count[k]); 0 for classes absent from
 * train (they contribute no rows anyway). */
static void fit_class_weights(linear_head *h, const sb_head_data *d, const size_t *rows, size_t n)
{
    hd_class_weights(h->o.balanced, h->K, d, rows, n, h->class_w);
}

/* W and bias ~ U(-1/sqrt(D), 1/sqrt(D)) like nn.Linear, from the init stream. */
static void init_output(linear_head *h)
{
    sb_rng r;
    sb_rng_seed(&r, h->host->seed, STREAM_INIT);
    size_t KD = (size_t)h->K * (size_t)h->D;
    float bound = 1.0f / sqrtf((float)h->D);
    for (size_t i = 0; i < KD + (size_t)h->K; i++) /* W then bias: contiguous */
        h->W[i] = (float)((2.0 * sb_rng_uniform(&r) - 1.0) * bound);
}

/* a = 0 (uniform layer weights), then the output layer. */
static void init_params(linear_head *h)
{
    for (int l = 0; l < h->L; l++)
        h->a[l] = 0.0f;
    init_output(h);
}

/* sb_fit's step: one AdamW step on the batch; a non-finite loss leaves the parameters alone
 * (sb_fit then stops with an error naming the epoch). */
static sb_status fit_step(void *ctx, const sb_head_data *train, const size_t *batch, size_t n,
                          long step, double *loss, sb_error *err)
{
    (void)err;
    linear_head *h = ctx;
    gather(h, train, batch, 0, (int)n);
    *loss = loss_and_grad(h, (int)n, 1);
    if (isfinite(*loss))
        adamw(h, (int)step);
    return SB_OK;
}

static sb_status linear_train(void *inst, const sb_head_data *train, const sb_head_data *dev,
                              sb_error *err)
{
    linear_head *h = inst;
    const sb_host *host = h->host;
    sb_status st;
    size_t *tr, *dv, n_tr, n_dv;
    if ((st = hd_probe_train_rows(&h->probe, host, train, dev, &tr, &n_tr, &dv, &n_dv, err)) !=
        SB_OK)
        return st;
    /* labelled train and dev rows must be finite (dev rows feed early stopping) */
    if ((st = hd_check_finite(WHO, h->L, h->D, train, tr, n_tr, "train", err)) != SB_OK)
        goto out;
    if (n_dv > 0 && (st = hd_check_finite(WHO, h->L, h->D, dev, dv, n_dv, "dev", err)) != SB_OK)
        goto out;
    if (!h->loaded && (st = fit_stats(h, train, tr, n_tr, err)) != SB_OK)
        goto out; /* a checkpoint's statistics are kept */
    if (!h->regression)
        fit_class_weights(h, train, tr, n_tr);
    if (!h->loaded)
        init_params(h);
    else if (h->fresh_output)
        init_output(h);
    /* a fresh regression output starts at the targets' centre: the median for L1, the mean
     * for MSE (what each loss is minimised by with zero weights) */
    if (h->regression && (!h->loaded || h->fresh_output))
        h->bias[0] = (float)hd_target_center(h->o.loss_l1, train, tr, n_tr);
    memset(h->m, 0, h->n_params * sizeof(float));
    memset(h->v, 0, h->n_params * sizeof(float));
    int from_checkpoint = h->loaded;
    h->loaded = h->fresh_output = 0;
    h->trained = 0;

    sb_fit_result res;
    if ((st = hd_probe_fit(&h->probe, host, train, tr, n_tr, dev, dv, n_dv, STREAM_SHUFFLE,
                           h->params, h->n_params, fit_step, &res, err)) != SB_OK)
        goto out;
    h->trained = 1;

    layer_weights(h, h->wl);
    int top = hd_argmax(h->wl, h->L);
    if (res.best_epoch > 0)
        host->log(host, SB_LOG_INFO,
                  "linear head: %zu train rows%s, %d epochs run, best epoch %d with dev %s "
                  "%.4f; top layer %d (weight %.3f)",
                  n_tr, from_checkpoint ? " (from a checkpoint)" : "", res.epochs_run,
                  res.best_epoch, hd_metric_name(h->o.metric, h->regression), res.best_shown, top,
                  (double)h->wl[top]);
    else
        host->log(host, SB_LOG_INFO,
                  "linear head: %zu train rows%s, %d epochs (no dev set); top layer %d (weight "
                  "%.3f)",
                  n_tr, from_checkpoint ? " (from a checkpoint)" : "", res.epochs_run, top,
                  (double)h->wl[top]);
out:
    free(tr);
    free(dv);
    return st;
}

static sb_status linear_predict(void *inst, const sb_head_data *data, float *probs, sb_error *err)
{
    const linear_head *h = inst;
    return hd_probe_predict(&h->probe, h->trained, data, probs, err);
}

/* ---- checkpoints ------------------------------------------------------------------------ */

/* What fixes the shapes of the saved tensors. n_classes is 0 for a regression head. */
static void head_config(const linear_head *h, char *buf, size_t cap)
{
    hd_probe_config(buf, cap, h->L, h->D, h->regression ? 0 : h->K, NULL, 0);
}

/* Tensors: layer_logits (L), mu, inv_sd (L,D), W (K,D), b (K); K = 1 for regression. */
static sb_status linear_save(void *inst, sb_st_writer *w, sb_error *err)
{
    linear_head *h = inst;
    if (!h->trained)
        return sb_error_set(err, SB_ERR_INVALID, WHO, "save called before train");
    const int64_t s_kd[2] = { h->K, h->D }, s_k[1] = { h->K };
    char cfg[160];
    head_config(h, cfg, sizeof cfg);
    sb_status st;
    if ((st = hd_probe_save_stats(w, h->L, h->D, h->a, h->mu, h->inv_sd, err)) != SB_OK ||
        (st = sb_st_writer_add(w, "W", SB_DT_F32, 2, s_kd, h->W, err)) != SB_OK ||
        (st = sb_st_writer_add(w, "b", SB_DT_F32, 1, s_k, h->bias, err)) != SB_OK)
        return st;
    return sb_st_writer_meta(w, "head_config", cfg, err);
}

static sb_status linear_load(void *inst, const sb_st_file *f, const sb_head_init *init,
                             sb_error *err)
{
    linear_head *h = inst;
    int fresh;
    char cfg[160];
    head_config(h, cfg, sizeof cfg);
    sb_status st = hd_probe_load_check(WHO, "linear", f, init, cfg, &fresh, err);
    hd_stage s;
    if (st != SB_OK ||
        (st = hd_stage_read_stats(WHO, f, h->L, h->D, h->n_params, &s, err)) != SB_OK)
        return st;
    /* the copy is laid out as params: a (L) | W (K,D) | b (K); a fresh output is not read */
    float *W = s.params + h->L, *b = W + (size_t)h->K * (size_t)h->D;
    const int64_t s_kd[2] = { h->K, h->D }, s_k[1] = { h->K };
    if (!fresh && (st = hd_st_read(WHO, f, "W", 2, s_kd, W, err)) == SB_OK)
        st = hd_st_read(WHO, f, "b", 1, s_k, b, err);
    if (st != SB_OK) {
        hd_stage_free(&s);
        return st;
    }
    hd_stage_commit(&s, fresh ? (size_t)h->L : h->n_params, h->params, h->mu, h->inv_sd);
    h->loaded = 1;
    h->fresh_output = fresh;
    h->trained = !fresh; /* a whole model predicts as it is */
    return SB_OK;
}

static const sb_head_vtable linear_vtable = {
    .struct_size = sizeof(sb_head_vtable),
    .create = linear_create,
    .train = linear_train,
    .predict = linear_predict,
    .destroy = linear_destroy,
    .save = linear_save,
    .load = linear_load,
};

static const sb_plugin linear_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_HEAD,
    .name = "linear",
    .version = LINEAR_VERSION,
    .summary = "SUPERB-style probe: softmax layer weights, standardised features, linear "
               "classifier or regressor (AdamW, early stopping on dev, checkpoints)",
    .options = linear_options,
    .vtable = &linear_vtable,
};

SB_PLUGIN_DEFINE(linear_plugin)
