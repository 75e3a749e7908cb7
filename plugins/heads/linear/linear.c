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
 *   loss    = weighted mean over rows of -cw[y] log softmax(logits)[y] */
#include <serbench/serbench.h>

#include "head_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LINEAR_VERSION "0.1.0"

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
      "Dev-set criterion for early stopping and choosing the best epoch." },
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

typedef enum stop_metric { STOP_UA, STOP_WA, STOP_MACRO_F1, STOP_LOSS } stop_metric;

typedef struct linear_head {
    const sb_host *host;
    int L, D, K;
    /* options */
    int learn_layers, normalize, balanced;
    float lr, weight_decay;
    int batch_size, epochs, patience;
    stop_metric metric;
    /* parameters, one allocation: a (L) layer logits | W (K,D) | bias (K) */
    size_t n_params;
    float *params, *grads, *m, *v, *best;
    float *a, *W, *bias;    /* views into params */
    float *da, *dW, *dbias; /* views into grads */
    /* train-set standardisation, (L,D) each */
    float *mu, *inv_sd;
    float *class_w; /* (K) */
    int trained;
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
    free(h->best);
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
    free(h->wl);
    free(h->dwl);
    free(h);
}

static sb_status linear_create(const sb_host *host, const sb_opts *opts, int n_layers, int dim,
                               int n_classes, void **inst, sb_error *err)
{
    *inst = NULL;
    if (n_classes < 2)
        return sb_error_set(err, SB_ERR_INVALID, "head linear",
                            "the linear head classifies and needs at least 2 classes, but the "
                            "task has %d%s",
                            n_classes, n_classes == 0 ? " (a regression task?)" : "");
    if (n_layers < 1 || dim < 1)
        return sb_error_set(err, SB_ERR_INVALID, "head linear",
                            "features of %d layers x %d dims: need at least 1 x 1", n_layers, dim);
    if (sb_opts_int(opts, "hidden") != 0)
        return sb_error_set(err, SB_ERR_INVALID, sb_opts_where(opts, "hidden"),
                            "hidden: %lld is not supported by the linear head (only 0); use "
                            "the mlp head for a hidden layer",
                            (long long)sb_opts_int(opts, "hidden"));
    double lr = sb_opts_float(opts, "lr");
    if (!(lr > 0.0))
        return sb_error_set(err, SB_ERR_INVALID, sb_opts_where(opts, "lr"),
                            "lr: must be > 0 (got %g)", lr);
    if ((size_t)n_layers * (size_t)dim > (size_t)1 << 28)
        return sb_error_set(err, SB_ERR_INVALID, "head linear",
                            "features of %d layers x %d dims are too large", n_layers, dim);

    linear_head *h = calloc(1, sizeof *h);
    if (!h)
        return sb_error_set(err, SB_ERR_NOMEM, "head linear", "out of memory");
    h->host = host;
    h->L = n_layers;
    h->D = dim;
    h->K = n_classes;
    h->learn_layers = sb_opts_bool(opts, "layer_weights");
    h->normalize = sb_opts_bool(opts, "normalize");
    const char *cw = sb_opts_str(opts, "class_weights");
    h->balanced = cw && strcmp(cw, "balanced") == 0;
    h->lr = (float)lr;
    h->weight_decay = (float)sb_opts_float(opts, "weight_decay");
    h->batch_size = (int)sb_opts_int(opts, "batch_size");
    h->epochs = (int)sb_opts_int(opts, "epochs");
    int64_t pat = sb_opts_int(opts, "patience");
    h->patience = pat > 1000000000 ? 1000000000 : (int)pat;
    const char *met = sb_opts_str(opts, "metric");
    h->metric = !met || strcmp(met, "ua") == 0 ? STOP_UA
                : strcmp(met, "wa") == 0       ? STOP_WA
                : strcmp(met, "macro_f1") == 0 ? STOP_MACRO_F1
                                               : STOP_LOSS;

    size_t L = (size_t)h->L, D = (size_t)h->D, K = (size_t)h->K;
    h->n_params = L + K * D + K;
    h->cap = h->batch_size > EVAL_ROWS ? h->batch_size : EVAL_ROWS;
    size_t cap = (size_t)h->cap;
    h->params = calloc(h->n_params, sizeof(float));
    h->grads = calloc(h->n_params, sizeof(float));
    h->m = calloc(h->n_params, sizeof(float));
    h->v = calloc(h->n_params, sizeof(float));
    h->best = calloc(h->n_params, sizeof(float));
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
    h->wl = calloc(L, sizeof(float));
    h->dwl = calloc(L, sizeof(double));
    if (!h->dwl || !h->params || !h->grads || !h->m || !h->v || !h->best || !h->mu || !h->inv_sd ||
        !h->class_w || !h->zb || !h->zbar || !h->logits || !h->probs || !h->dlogits || !h->dzbar ||
        !h->losses || !h->yb || !h->wl) {
        linear_destroy(h);
        return sb_error_set(err, SB_ERR_NOMEM, "head linear",
                            "out of memory for %d layers x %d dims, batch %d", h->L, h->D, h->cap);
    }
    h->a = h->params;
    h->W = h->params + L;
    h->bias = h->W + K * D;
    h->da = h->grads;
    h->dW = h->grads + L;
    h->dbias = h->dW + K * D;
    *inst = h;
    return SB_OK;
}

/* ---- the model ---------------------------------------------------------------------- */

/* Layer weights w (L): softmax of a, or uniform. */
static void layer_weights(const linear_head *h, float *w)
{
    hd_layer_weights(h->learn_layers, h->a, h->L, w);
}

/* Copy rows[0..B) of d (or rows first..first+B when rows is NULL) into zb, standardised,
 * and their targets into yb. */
static void gather(linear_head *h, const sb_head_data *d, const size_t *rows, size_t first, int B)
{
    hd_gather(h->L, h->D, h->mu, h->inv_sd, d, rows, first, B, h->zb, h->yb);
}

/* zb (B,L,D) → zbar (B,D) → logits (B,K) → probs (B,K), with wl set. */
static void forward(linear_head *h, int B)
{
    int L = h->L, D = h->D;
    layer_weights(h, h->wl);
    for (int b = 0; b < B; b++) {
        const float *z_b = h->zb + (size_t)b * L * D;
        float *zbar_b = h->zbar + (size_t)b * D;
        for (int d = 0; d < D; d++)
            zbar_b[d] = 0.0f;
        for (int l = 0; l < L; l++) {
            const float *z_bl = z_b + (size_t)l * D;
            float w = h->wl[l];
            for (int d = 0; d < D; d++)
                zbar_b[d] += w * z_bl[d];
        }
    }
    sb_nn_linear_forward(h->logits, h->zbar, h->W, h->bias, B, D, h->K);
    sb_nn_softmax_forward(h->probs, h->logits, B, h->K);
}

/* Loss of the B rows in zb/yb at the current parameters; with `grads`, also sets
 * h->grads (zeroed first) to its gradient. Returns the weighted mean loss. */
static double loss_and_grad(linear_head *h, int B, int grads)
{
    int L = h->L, D = h->D, K = h->K;
    forward(h, B);
    double loss = sb_nn_xent_forward(h->losses, h->probs, h->yb, h->class_w, B, K);
    if (!grads)
        return loss;
    memset(h->grads, 0, h->n_params * sizeof(float));
    memset(h->dlogits, 0, (size_t)B * K * sizeof(float));
    memset(h->dzbar, 0, (size_t)B * D * sizeof(float));
    sb_nn_xent_backward(h->dlogits, h->probs, h->yb, h->class_w, B, K);
    sb_nn_linear_backward(h->dzbar, h->dW, h->dbias, h->dlogits, h->zbar, h->W, B, D, K);
    if (!h->learn_layers)
        return loss;
    /* dw[l] = sum_b sum_d dzbar[b,d] z[b,l,d]; then through the softmax Jacobian:
     * da[j] = w[j] (dw[j] - sum_l w[l] dw[l]). */
    double dw_mean = 0.0, *dw = h->dwl;
    for (int l = 0; l < L; l++)
        dw[l] = 0.0;
    for (int b = 0; b < B; b++) {
        const float *dzbar_b = h->dzbar + (size_t)b * D;
        for (int l = 0; l < L; l++) {
            const float *z_bl = h->zb + ((size_t)b * L + l) * D;
            double s = 0.0;
            for (int d = 0; d < D; d++)
                s += (double)dzbar_b[d] * z_bl[d];
            dw[l] += s;
        }
    }
    for (int l = 0; l < L; l++)
        dw_mean += h->wl[l] * dw[l];
    for (int l = 0; l < L; l++)
        h->da[l] += (float)(h->wl[l] * (dw[l] - dw_mean));
    return loss;
}

/* One AdamW step; decay applies to W only. */
static void adamw(linear_head *h, int t)
{
    size_t L = (size_t)h->L, KD = (size_t)h->K * (size_t)h->D, K = (size_t)h->K;
    if (h->learn_layers)
        sb_adamw_step(h->a, h->da, h->m, h->v, L, t, h->lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, 0.0f);
    sb_adamw_step(h->W, h->dW, h->m + L, h->v + L, KD, t, h->lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS,
                  h->weight_decay);
    sb_adamw_step(h->bias, h->dbias, h->m + L + KD, h->v + L + KD, K, t, h->lr, ADAM_BETA1,
                  ADAM_BETA2, ADAM_EPS, 0.0f);
}

/* ---- training ----------------------------------------------------------------------- */

static sb_status check_data(const linear_head *h, const sb_head_data *d, const char *split,
                            sb_error *err)
{
    return hd_check_data("head linear", h->L, h->D, h->K, d, split, err);
}

/* Indices of rows with a target; *out is malloc'd (NULL when none). */
static sb_status labelled_rows(const sb_head_data *d, size_t **out, size_t *n, sb_error *err)
{
    return hd_labelled_rows("head linear", d, out, n, err);
}

/* Per-(layer,dim) mean and 1/sd (population) over the labelled train rows, in double. A
 * constant feature gets 1/sd = 1. Non-finite features are an error naming the item. */
static sb_status fit_stats(linear_head *h, const sb_head_data *d, const size_t *rows, size_t n,
                           sb_error *err)
{
    sb_status st = hd_check_finite("head linear", h->L, h->D, d, rows, n, NULL, err);
    return st ? st
              : hd_fit_stats("head linear", h->normalize, h->L, h->D, d, rows, n, h->mu, h->inv_sd,
                             err);
}

/* sklearn's 'balanced': n / (n_present_classes * count[k]); 0 for classes absent from
 * train (they contribute no rows anyway). */
static void fit_class_weights(linear_head *h, const sb_head_data *d, const size_t *rows, size_t n)
{
    hd_class_weights(h->balanced, h->K, d, rows, n, h->class_w);
}

static void init_params(linear_head *h)
{
    sb_rng r;
    sb_rng_seed(&r, h->host->seed, STREAM_INIT);
    size_t L = (size_t)h->L, KD = (size_t)h->K * (size_t)h->D;
    /* a = 0: uniform layer weights; W, bias ~ U(-1/sqrt(D), 1/sqrt(D)) like nn.Linear */
    float bound = 1.0f / sqrtf((float)h->D);
    for (size_t i = 0; i < L; i++)
        h->a[i] = 0.0f;
    for (size_t i = 0; i < KD + (size_t)h->K; i++) /* W then bias: contiguous */
        h->W[i] = (float)((2.0 * sb_rng_uniform(&r) - 1.0) * bound);
    memset(h->m, 0, h->n_params * sizeof(float));
    memset(h->v, 0, h->n_params * sizeof(float));
}

static int argmax(const float *p, int K)
{
    return hd_argmax(p, K);
}

/* Score the labelled dev rows: the chosen metric (higher is better; loss is negated). */
static sb_status evaluate(linear_head *h, const sb_head_data *d, const size_t *rows, size_t n,
                          double *score, double *shown, sb_error *err)
{
    int32_t *gold = malloc(n * sizeof *gold), *pred = malloc(n * sizeof *pred);
    if (!gold || !pred) {
        free(gold);
        free(pred);
        return sb_error_set(err, SB_ERR_NOMEM, "head linear", "out of memory");
    }
    double lsum = 0.0, wsum = 0.0;
    for (size_t s = 0; s < n; s += (size_t)h->cap) {
        int B = (int)(n - s < (size_t)h->cap ? n - s : (size_t)h->cap);
        gather(h, d, rows + s, 0, B);
        forward(h, B);
        sb_nn_xent_forward(h->losses, h->probs, h->yb, h->class_w, B, h->K);
        for (int b = 0; b < B; b++) {
            lsum += h->losses[b];
            wsum += h->class_w[h->yb[b]];
            gold[s + (size_t)b] = h->yb[b];
            pred[s + (size_t)b] = argmax(h->probs + (size_t)b * h->K, h->K);
        }
    }
    sb_status st = SB_OK;
    if (h->metric == STOP_LOSS) {
        /* all-zero class weights on dev's classes leave no loss to compare: use 0 */
        double loss = wsum > 0.0 ? lsum / wsum : 0.0;
        *shown = loss;
        *score = -loss;
    } else {
        sb_cls_metrics met;
        st = sb_metrics_classify(gold, pred, n, h->K, &met, err);
        if (st == SB_OK) {
            *shown = h->metric == STOP_UA ? met.ua : h->metric == STOP_WA ? met.wa : met.macro_f1;
            *score = *shown;
            sb_cls_metrics_free(&met);
        }
    }
    free(gold);
    free(pred);
    return st;
}

static const char *metric_name(stop_metric m)
{
    return m == STOP_UA ? "ua" : m == STOP_WA ? "wa" : m == STOP_MACRO_F1 ? "macro_f1" : "loss";
}

static sb_status linear_train(void *inst, const sb_head_data *train, const sb_head_data *dev,
                              sb_error *err)
{
    linear_head *h = inst;
    const sb_host *host = h->host;
    sb_status st;
    if ((st = check_data(h, train, "train", err)) != SB_OK)
        return st;
    if (dev && (st = check_data(h, dev, "dev", err)) != SB_OK)
        return st;
    size_t *tr = NULL, *dv = NULL, n_tr = 0, n_dv = 0;
    if ((st = labelled_rows(train, &tr, &n_tr, err)) != SB_OK)
        return st;
    if (n_tr == 0)
        return sb_error_set(err, SB_ERR_INVALID, "head linear",
                            "the train split has no utterance with a label (%zu rows); "
                            "nothing to train on",
                            train->n);
    if (dev && (st = labelled_rows(dev, &dv, &n_dv, err)) != SB_OK)
        goto out;
    if (dev && dev->n > 0 && n_dv == 0)
        host->log(host, SB_LOG_WARN,
                  "the dev split has %zu rows but none with a label; training all %d epochs "
                  "without early stopping",
                  dev->n, h->epochs);
    if ((st = fit_stats(h, train, tr, n_tr, err)) != SB_OK)
        goto out;
    fit_class_weights(h, train, tr, n_tr);
    init_params(h);
    h->trained = 0;

    sb_rng shuf;
    sb_rng_seed(&shuf, host->seed, STREAM_SHUFFLE);
    double best_score = -INFINITY, best_shown = NAN;
    int best_epoch = 0, since_best = 0, ran = 0, t = 0;
    for (int epoch = 1; epoch <= h->epochs; epoch++) {
        if (host->cancelled(host)) {
            st = sb_error_set(err, SB_ERR_CANCELLED, "head linear",
                              "training interrupted at epoch %d", epoch);
            goto out;
        }
        sb_rng_shuffle(&shuf, tr, n_tr);
        double loss_sum = 0.0;
        for (size_t s = 0; s < n_tr; s += (size_t)h->batch_size) {
            int B = (int)(n_tr - s < (size_t)h->batch_size ? n_tr - s : (size_t)h->batch_size);
            gather(h, train, tr + s, 0, B);
            double loss = loss_and_grad(h, B, 1);
            if (!isfinite(loss)) {
                st = sb_error_set(err, SB_ERR_INVALID, "head linear",
                                  "the training loss became %g at epoch %d; lower lr (now %g)",
                                  loss, epoch, (double)h->lr);
                goto out;
            }
            adamw(h, ++t);
            loss_sum += loss * B;
        }
        double train_loss = loss_sum / (double)n_tr;
        if (n_dv == 0) {
            host->log(host, SB_LOG_DEBUG, "epoch %d/%d: train loss %.5f", epoch, h->epochs,
                      train_loss);
            host->progress(host, (uint64_t)epoch, (uint64_t)h->epochs);
            ran = epoch;
            continue;
        }
        double score = -INFINITY, shown = NAN;
        if ((st = evaluate(h, dev, dv, n_dv, &score, &shown, err)) != SB_OK)
            goto out;
        int better = score > best_score;
        if (better) {
            best_score = score;
            best_shown = shown;
            best_epoch = epoch;
            since_best = 0;
            memcpy(h->best, h->params, h->n_params * sizeof(float));
        } else {
            since_best++;
        }
        host->log(host, SB_LOG_DEBUG, "epoch %d/%d: train loss %.5f, dev %s %.5f%s", epoch,
                  h->epochs, train_loss, metric_name(h->metric), shown, better ? " (best)" : "");
        host->progress(host, (uint64_t)epoch, (uint64_t)h->epochs);
        ran = epoch;
        if (since_best >= h->patience)
            break;
    }
    if (best_epoch > 0)
        memcpy(h->params, h->best, h->n_params * sizeof(float));
    h->trained = 1;

    layer_weights(h, h->wl);
    int top = argmax(h->wl, h->L);
    if (best_epoch > 0)
        host->log(host, SB_LOG_INFO,
                  "linear head: %zu train rows, %d epochs run, best epoch %d with dev %s "
                  "%.4f; top layer %d (weight %.3f)",
                  n_tr, ran, best_epoch, metric_name(h->metric), best_shown, top,
                  (double)h->wl[top]);
    else
        host->log(host, SB_LOG_INFO,
                  "linear head: %zu train rows, %d epochs (no dev set); top layer %d (weight "
                  "%.3f)",
                  n_tr, ran, top, (double)h->wl[top]);
out:
    free(tr);
    free(dv);
    return st;
}

static sb_status linear_predict(void *inst, const sb_head_data *data, float *probs, sb_error *err)
{
    linear_head *h = inst;
    if (!h->trained)
        return sb_error_set(err, SB_ERR_INVALID, "head linear", "predict called before train");
    sb_status st = check_data(h, data, "predict", err);
    if (st != SB_OK)
        return st;
    for (size_t s = 0; s < data->n; s += (size_t)h->cap) {
        int B = (int)(data->n - s < (size_t)h->cap ? data->n - s : (size_t)h->cap);
        gather(h, data, NULL, s, B);
        forward(h, B);
        memcpy(probs + s * (size_t)h->K, h->probs, (size_t)B * h->K * sizeof(float));
    }
    return SB_OK;
}

static const sb_head_vtable linear_vtable = {
    .struct_size = sizeof(sb_head_vtable),
    .create = linear_create,
    .train = linear_train,
    .predict = linear_predict,
    .destroy = linear_destroy,
};

static const sb_plugin linear_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_HEAD,
    .name = "linear",
    .version = LINEAR_VERSION,
    .summary = "SUPERB-style probe: softmax layer weights, standardised features, linear "
               "classifier (AdamW, early stopping on dev)",
    .options = linear_options,
    .vtable = &linear_vtable,
};

SB_PLUGIN_DEFINE(linear_plugin)
