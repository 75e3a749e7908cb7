/* plugins/heads/common/head_data.h — what the heads built on pooled per-layer features share
 * (compiled into each head plugin, like meld_common for the MELD plugins): checking the data
 * the host hands over, the labelled rows, the train-set standardisation, balanced class
 * weights, SUPERB layer weights and the standardised mini-batch gather.
 *
 * `who` names the head in messages ("head linear"). Shapes: L layers of D dims, K classes
 * (0 for a regression task: the target is d->value, NAN = none); features are d->x [n, L, D].
 * Also: the one-input check, regression targets, and what the probe heads (linear, mlp) share
 * of option reading and the train and predict checks. Checkpoints: head_ckpt.h. */
#ifndef SB_HEAD_DATA_H
#define SB_HEAD_DATA_H

#include <serbench/serbench.h>

/* d fits a head of L x D inputs and K classes (no check when d->n == 0); with K == 0, the
 * target values are finite or NAN. */
sb_status hd_check_data(const char *who, int L, int D, int K, const sb_head_data *d,
                        const char *split, sb_error *err);

/* Indices of the rows with a target: y >= 0, or for a regression split (d->n_classes == 0)
 * a finite value; *out is malloc'd (NULL when none). */
sb_status hd_labelled_rows(const char *who, const sb_head_data *d, size_t **out, size_t *n,
                           sb_error *err);

/* Non-finite features among rows[0..n) are an error naming the item; `split` prefixes the
 * message when not NULL. */
sb_status hd_check_finite(const char *who, int L, int D, const sb_head_data *d, const size_t *rows,
                          size_t n, const char *split, sb_error *err);

/* Per-(layer, dim) mean and 1/sd (population) over rows[0..n), in double, into mu and
 * inv_sd [L*D]; a constant feature gets 1/sd = 1. Without `normalize`: 0 and 1. */
sb_status hd_fit_stats(const char *who, int normalize, int L, int D, const sb_head_data *d,
                       const size_t *rows, size_t n, float *mu, float *inv_sd, sb_error *err);

/* Class weights w[K]: 1, or with `balanced` sklearn's n / (n_present * count[k]) (0 for
 * classes absent from rows). */
void hd_class_weights(int balanced, int K, const sb_head_data *d, const size_t *rows, size_t n,
                      float *w);

/* Layer weights w[L]: softmax of the logits a when learned, else uniform. */
void hd_layer_weights(int learn, const float *a, int L, float *w);

/* The layer mixing: zbar [B, D] = sum_l w[l] z[b, l, :] for z [B, L, D] and w [L]. */
void hd_mix_forward(float *zbar, const float *z, const float *w, int B, int L, int D);

/* Its backward into the layer logits a (w = softmax(a)): dw[l] = sum_b sum_d dzbar[b,d]
 * z[b,l,d] in double (dw [L] is scratch), then through the softmax Jacobian
 * da[j] += w[j] (dw[j] - sum_l w[l] dw[l]). */
void hd_mix_backward(float *da, double *dw, const float *dzbar, const float *z, const float *w,
                     int B, int L, int D);

/* Copy rows[0..B) of d (rows first..first+B when rows is NULL) into zb [B, L, D],
 * standardised with mu / inv_sd, and their targets (or -1) into yb [B]. */
void hd_gather(int L, int D, const float *mu, const float *inv_sd, const sb_head_data *d,
               const size_t *rows, size_t first, int B, float *zb, int32_t *yb);

/* The regression targets of rows[0..B) of d (rows first..first+B when rows is NULL) into
 * vb [B], NAN where there is none. */
void hd_gather_values(const sb_head_data *d, const size_t *rows, size_t first, int B, float *vb);

/* The median (with `median`) or mean of the targets of rows[0..n); 0 when n == 0. */
double hd_target_center(int median, const sb_head_data *d, const size_t *rows, size_t n);

/* For a head that reads one encoder (`head` = "linear"): ABI 1.2 data with n_inputs > 1 is
 * an SB_ERR_CONFIG error naming the inputs and pointing to the hierarchical head. */
sb_status hd_check_one_input(const char *head, const sb_head_data *d, sb_error *err);

/* Index of the largest of p[0..K) (the first on ties). */
int hd_argmax(const float *p, int K);

#endif
