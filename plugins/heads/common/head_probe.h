/* plugins/heads/common/head_probe.h — what the two probe heads (linear, mlp) share beyond
 * head_data.h: the options both take, the checks of create, train and predict, and the dev
 * scoring and predict loops, which run the head's own model through a callback.
 *
 * A probe head mixes L layers of D dims and has K outputs: the classes, or 1 for a regression
 * task (`regression`; its head_config and data checks then say 0 classes). */
#ifndef SB_HEAD_PROBE_H
#define SB_HEAD_PROBE_H

#include <serbench/serbench.h>

/* The dev criterion of the `metric` option; a regression head scores MAE for all but loss. */
typedef enum hd_metric { HD_METRIC_UA, HD_METRIC_WA, HD_METRIC_MACRO_F1, HD_METRIC_LOSS } hd_metric;

/* The options the probe heads share, as read by hd_probe_opts_read. */
typedef struct hd_probe_opts {
    int learn_layers, normalize, balanced, loss_l1; /* layer_weights, normalize, class_weights
                                                      balanced, loss l1 */
    float lr, weight_decay;
    int batch_size, epochs, patience; /* patience capped at 1e9 */
    hd_metric metric;
} hd_probe_opts;

/* The checks of a probe head's create, then its shared options into *o: n_classes must be 0
 * or >= 2, n_layers and dim >= 1 with L x D <= 2^28, lr > 0. Errors are SB_ERR_INVALID naming
 * `head` ("linear") or the option's place. */
sb_status hd_probe_opts_read(const char *who, const char *head, const sb_opts *opts, int n_layers,
                             int dim, int n_classes, hd_probe_opts *o, sb_error *err);

/* The metric's name in logs and fit results: "mae" (or "loss") for a regression head. */
const char *hd_metric_name(hd_metric m, int regression);

/* A probe head as the shared loops see it, filled once its buffers exist (they must not move
 * afterwards). `run` gathers rows[0..B) of d (rows first..first+B when rows is NULL, B <= cap)
 * and runs the model in evaluation mode, leaving logits [B, K], probs [B, K] (classification
 * only), the labels in yb [B] and the regression targets in vb [B]. */
typedef struct hd_probe {
    const char *who, *head; /* "head linear", "linear" */
    int L, D, K, regression, cap;
    const hd_probe_opts *o;
    void *ctx;
    void (*run)(void *ctx, const sb_head_data *d, const size_t *rows, size_t first, int B);
    const float *logits, *probs, *vb, *class_w;
    const int32_t *yb;
    float *losses; /* [cap] per-row losses, scratch */
} hd_probe;

/* The checks of a probe head's train, then the rows it trains and stops on: train and dev
 * (which may be NULL) read one input and fit the head, *tr [n_tr] and *dv [n_dv] get their
 * rows with a target (malloc'd, NULL when none). No such train row is SB_ERR_INVALID; a dev
 * split without one is a warning on host->log. On error nothing is left allocated. */
sb_status hd_probe_train_rows(const hd_probe *p, const sb_host *host, const sb_head_data *train,
                              const sb_head_data *dev, size_t **tr, size_t *n_tr, size_t **dv,
                              size_t *n_dv, sb_error *err);

/* One optimisation step of a probe head on rows batch[0..n) of train (see sb_fit_spec.step);
 * ctx is hd_probe.ctx. */
typedef sb_status (*hd_probe_step)(void *ctx, const sb_head_data *train, const size_t *batch,
                                   size_t n, long step, double *loss, sb_error *err);

/* Train with sb_fit (who, epochs, patience and batch size from p): shuffle tr [n_tr] with the
 * stream `stream` of host->seed, step with `step`, score dev rows dv [n_dv] with
 * hd_probe_evaluate after each epoch when n_dv > 0 and keep the best epoch's params
 * [n_params]. res and the errors are sb_fit's. */
sb_status hd_probe_fit(const hd_probe *p, const sb_host *host, const sb_head_data *train,
                       const size_t *tr, size_t n_tr, const sb_head_data *dev, const size_t *dv,
                       size_t n_dv, uint64_t stream, float *params, size_t n_params,
                       hd_probe_step step, sb_fit_result *res, sb_error *err);

/* The regression loss (L1 or MSE, by p->o->loss_l1) of B rows' logits against vb. */
double hd_probe_regression_loss(const hd_probe *p, int B);

/* Score rows[0..n) of d (all with a target, n > 0) by the metric: *shown as reported, *score
 * higher-is-better (a loss or MAE negated). Classification loss is the class-weighted mean. */
sb_status hd_probe_evaluate(const hd_probe *p, const sb_head_data *d, const size_t *rows, size_t n,
                            double *score, double *shown, sb_error *err);

/* The head's predict: data must read one input and fit the head (`trained` set, else
 * SB_ERR_INVALID); probs [n, K] gets the class probabilities or the regression values. */
sb_status hd_probe_predict(const hd_probe *p, int trained, const sb_head_data *data, float *probs,
                           sb_error *err);

#endif
