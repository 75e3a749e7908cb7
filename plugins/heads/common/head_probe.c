/* plugins/heads/common/head_probe.c — see head_probe.h. */
#include "head_probe.h"

#include "head_data.h"

#include <stdlib.h>
#include <string.h>

sb_status hd_probe_opts_read(const char *who, const char *head, const sb_opts *opts, int n_layers,
                             int dim, int n_classes, hd_probe_opts *o, sb_error *err)
{
    if (n_classes == 1 || n_classes < 0)
        return sb_error_set(err, SB_ERR_INVALID, who,
                            "the task has %d classes: the %s head needs at least 2 classes to "
                            "classify, or 0 for a regression task",
                            n_classes, head);
    if (n_layers < 1 || dim < 1)
        return sb_error_set(err, SB_ERR_INVALID, who,
                            "features of %d layers x %d dims: need at least 1 x 1", n_layers, dim);
    double lr = sb_opts_float(opts, "lr");
    if (!(lr > 0.0))
        return sb_error_set(err, SB_ERR_INVALID, sb_opts_where(opts, "lr"),
                            "lr: must be > 0 (got %g)", lr);
    if ((size_t)n_layers * (size_t)dim > (size_t)1 << 28)
        return sb_error_set(err, SB_ERR_INVALID, who,
                            "features of %d layers x %d dims are too large", n_layers, dim);
    const char *loss = sb_opts_str(opts, "loss");
    o->loss_l1 = !loss || strcmp(loss, "mse") != 0;
    o->learn_layers = sb_opts_bool(opts, "layer_weights");
    o->normalize = sb_opts_bool(opts, "normalize");
    const char *cw = sb_opts_str(opts, "class_weights");
    o->balanced = cw && strcmp(cw, "balanced") == 0;
    o->lr = (float)lr;
    o->weight_decay = (float)sb_opts_float(opts, "weight_decay");
    o->batch_size = (int)sb_opts_int(opts, "batch_size");
    o->epochs = (int)sb_opts_int(opts, "epochs");
    int64_t pat = sb_opts_int(opts, "patience");
    o->patience = pat > 1000000000 ? 1000000000 : (int)pat;
    const char *met = sb_opts_str(opts, "metric");
    o->metric = !met || strcmp(met, "ua") == 0 ? HD_METRIC_UA
                : strcmp(met, "wa") == 0       ? HD_METRIC_WA
                : strcmp(met, "macro_f1") == 0 ? HD_METRIC_MACRO_F1
                                               : HD_METRIC_LOSS;
    return SB_OK;
}

const char *hd_metric_name(hd_metric m, int regression)
{
    if (regression)
        return m == HD_METRIC_LOSS ? "loss" : "mae";
    return m == HD_METRIC_UA         ? "ua"
           : m == HD_METRIC_WA       ? "wa"
           : m == HD_METRIC_MACRO_F1 ? "macro_f1"
                                     : "loss";
}

sb_status hd_probe_train_rows(const hd_probe *p, const sb_host *host, const sb_head_data *train,
                              const sb_head_data *dev, size_t **tr, size_t *n_tr, size_t **dv,
                              size_t *n_dv, sb_error *err)
{
    int K0 = p->regression ? 0 : p->K;
    sb_status st;
    *tr = *dv = NULL;
    *n_tr = *n_dv = 0;
    if ((st = hd_check_one_input(p->head, train, err)) != SB_OK ||
        (dev && (st = hd_check_one_input(p->head, dev, err)) != SB_OK) ||
        (st = hd_check_data(p->who, p->L, p->D, K0, train, "train", err)) != SB_OK ||
        (dev && (st = hd_check_data(p->who, p->L, p->D, K0, dev, "dev", err)) != SB_OK) ||
        (st = hd_labelled_rows(p->who, train, tr, n_tr, err)) != SB_OK)
        return st;
    const char *target = p->regression ? "target value" : "label";
    if (*n_tr == 0)
        return sb_error_set(err, SB_ERR_INVALID, p->who,
                            "the train split has no utterance with a %s (%zu rows); "
                            "nothing to train on",
                            target, train->n);
    if (dev && (st = hd_labelled_rows(p->who, dev, dv, n_dv, err)) != SB_OK) {
        free(*tr);
        *tr = NULL;
        *n_tr = 0;
        return st;
    }
    if (dev && dev->n > 0 && *n_dv == 0)
        host->log(host, SB_LOG_WARN,
                  "the dev split has %zu rows but none with a %s; training all %d epochs "
                  "without early stopping",
                  dev->n, target, p->o->epochs);
    return SB_OK;
}

/* What sb_fit's callbacks see during hd_probe_fit. */
typedef struct fit_ctx {
    const hd_probe *p;
    hd_probe_step step;
    const sb_head_data *train, *dev;
    const size_t *dv;
    size_t n_dv;
} fit_ctx;

static sb_status fit_step(void *ctx, const size_t *batch, size_t n, long step, double *loss,
                          sb_error *err)
{
    const fit_ctx *c = ctx;
    return c->step(c->p->ctx, c->train, batch, n, step, loss, err);
}

static sb_status fit_evaluate(void *ctx, double *score, double *shown, sb_error *err)
{
    const fit_ctx *c = ctx;
    return hd_probe_evaluate(c->p, c->dev, c->dv, c->n_dv, score, shown, err);
}

sb_status hd_probe_fit(const hd_probe *p, const sb_host *host, const sb_head_data *train,
                       const size_t *tr, size_t n_tr, const sb_head_data *dev, const size_t *dv,
                       size_t n_dv, uint64_t stream, float *params, size_t n_params,
                       hd_probe_step step, sb_fit_result *res, sb_error *err)
{
    fit_ctx c = { .p = p, .step = step, .train = train, .dev = dev, .dv = dv, .n_dv = n_dv };
    sb_fit_spec spec = {
        .who = p->who,
        .epochs = p->o->epochs,
        .patience = p->o->patience,
        .batch_size = (size_t)p->o->batch_size,
        .n_items = n_tr,
        .items = tr,
        .seed = host->seed,
        .stream = stream,
        .params = params,
        .n_params = n_params,
        .ctx = &c,
        .step = fit_step,
        .evaluate = fit_evaluate,
        .has_dev = n_dv > 0,
        .metric = hd_metric_name(p->o->metric, p->regression),
        .host = host,
    };
    return sb_fit(&spec, res, err);
}

double hd_probe_regression_loss(const hd_probe *p, int B)
{
    return p->o->loss_l1 ? sb_nn_l1_forward(p->logits, p->vb, (size_t)B)
                         : sb_nn_mse_forward(p->logits, p->vb, (size_t)B);
}

/* A regression head's dev score: MAE, or with metric loss the training loss. */
static void evaluate_regression(const hd_probe *p, const sb_head_data *d, const size_t *rows,
                                size_t n, double *score, double *shown)
{
    double abs_sum = 0.0, loss_sum = 0.0;
    for (size_t s = 0; s < n; s += (size_t)p->cap) {
        int B = (int)(n - s < (size_t)p->cap ? n - s : (size_t)p->cap);
        p->run(p->ctx, d, rows + s, 0, B);
        abs_sum += sb_nn_l1_forward(p->logits, p->vb, (size_t)B) * B;
        loss_sum += hd_probe_regression_loss(p, B) * B;
    }
    *shown = (p->o->metric == HD_METRIC_LOSS ? loss_sum : abs_sum) / (double)n;
    *score = -*shown;
}

sb_status hd_probe_evaluate(const hd_probe *p, const sb_head_data *d, const size_t *rows, size_t n,
                            double *score, double *shown, sb_error *err)
{
    if (p->regression) {
        evaluate_regression(p, d, rows, n, score, shown);
        return SB_OK;
    }
    int K = p->K;
    int32_t *gold = malloc(n * sizeof *gold), *pred = malloc(n * sizeof *pred);
    if (!gold || !pred) {
        free(gold);
        free(pred);
        return sb_error_set(err, SB_ERR_NOMEM, p->who, "out of memory");
    }
    double lsum = 0.0, wsum = 0.0;
    for (size_t s = 0; s < n; s += (size_t)p->cap) {
        int B = (int)(n - s < (size_t)p->cap ? n - s : (size_t)p->cap);
        p->run(p->ctx, d, rows + s, 0, B);
        sb_nn_xent_forward(p->losses, p->probs, p->yb, p->class_w, B, K);
        for (int b = 0; b < B; b++) {
            lsum += p->losses[b];
            wsum += p->class_w[p->yb[b]];
            gold[s + (size_t)b] = p->yb[b];
            pred[s + (size_t)b] = hd_argmax(p->probs + (size_t)b * K, K);
        }
    }
    sb_status st = SB_OK;
    hd_metric m = p->o->metric;
    if (m == HD_METRIC_LOSS) {
        /* all-zero class weights on dev's classes leave no loss to compare: use 0 */
        double loss = wsum > 0.0 ? lsum / wsum : 0.0;
        *shown = loss;
        *score = -loss;
    } else {
        sb_cls_metrics met;
        st = sb_metrics_classify(gold, pred, n, K, &met, err);
        if (st == SB_OK) {
            *shown = m == HD_METRIC_UA ? met.ua : m == HD_METRIC_WA ? met.wa : met.macro_f1;
            *score = *shown;
            sb_cls_metrics_free(&met);
        }
    }
    free(gold);
    free(pred);
    return st;
}

sb_status hd_probe_predict(const hd_probe *p, int trained, const sb_head_data *data, float *probs,
                           sb_error *err)
{
    if (!trained)
        return sb_error_set(err, SB_ERR_INVALID, p->who, "predict called before train");
    sb_status st = hd_check_one_input(p->head, data, err);
    if (st == SB_OK)
        st = hd_check_data(p->who, p->L, p->D, p->regression ? 0 : p->K, data, "predict", err);
    if (st != SB_OK)
        return st;
    for (size_t s = 0; s < data->n; s += (size_t)p->cap) {
        int B = (int)(data->n - s < (size_t)p->cap ? data->n - s : (size_t)p->cap);
        p->run(p->ctx, data, NULL, s, B);
        memcpy(probs + s * (size_t)p->K, p->regression ? p->logits : p->probs,
               (size_t)B * p->K * sizeof(float));
    }
    return SB_OK;
}
