/* plugins/heads/common/head_testutil.h — what the heads' unit tests share (linked into each
 * test executable, never into a plugin): a host that records the per-epoch log lines,
 * building sb_head_data splits (Gaussian blobs, regression targets), running a head through
 * its vtable with Criterion asserts, and a checkpoint round trip through a real file. */
#ifndef SB_HEAD_TESTUTIL_H
#define SB_HEAD_TESTUTIL_H

#include <serbench/serbench.h>

#define HT_MAX_EPOCHS 1000

/* What ht_host's log saw since ht_reset. */
typedef struct ht_capture {
    int n;                     /* "epoch ..." debug lines seen */
    double dev[HT_MAX_EPOCHS]; /* the dev metric of each, NAN without a dev set */
    int best[HT_MAX_EPOCHS];   /* the line says "(best)" */
    char info[1024];           /* last INFO line */
    char warn[1024];           /* last WARN line */
    int cancel_after; /* cancelled() says yes from its (cancel_after+1)-th call; <0 never */
    int cancel_calls;
} ht_capture;

extern ht_capture ht_cap;
/* A host logging into ht_cap (and with HT_TEST_LOG set, INFO and above to stderr); its seed
 * may be changed by a test. */
extern sb_host ht_host;

/* Clears ht_cap (cancel_after = -1) and sets ht_host.seed. */
void ht_reset(uint64_t seed);

/* A split of n rows, x [n, L, D] zeroed, y zeroed, K classes; for K == 0 (regression) also
 * value [n] zeroed. Owned buffers; free with ht_free_split. */
typedef struct ht_split {
    sb_head_data d;
    float *x;
    int32_t *y;
    double *value;
} ht_split;

ht_split ht_alloc_split(size_t n, int L, int D, int K);
/* Gaussian blobs: class means (spread `sep`, drawn from mseed) in layer `info` only; every
 * layer has unit noise times (1 + l) plus an offset 3 l. Labels uniform in [0, K). */
ht_split ht_make_blobs(size_t n, int L, int D, int K, int info, double sep, uint64_t mseed,
                       uint64_t seed);
/* Regression: x as the blobs' noise (one layer `info` carries the signal), target
 * value = f(z) + noise · N(0,1) with z = the informative layer's first two features;
 * f(z) = 1.5 z0 - z1 + 0.5 (linear), or with `nonlinear` 2 |z0| - 1 + sin(2 z1). */
ht_split ht_make_regression(size_t n, int L, int D, int info, int nonlinear, double noise,
                            uint64_t seed);
void ht_free_split(ht_split *s);

/* Standard deviation (population) of s's target values. */
double ht_value_sd(const ht_split *s);

/* Options parsed against a table as the host would, asserting success. */
sb_opts *ht_opts(const sb_option *table, const char *yaml);

void *ht_create(const sb_head_vtable *vt, const sb_host *host, sb_opts *o, int L, int D, int K);
void ht_train(const sb_head_vtable *vt, void *inst, const sb_head_data *tr, const sb_head_data *dv);
/* predictions [n, width] (width = K, or 1 for regression); malloc'd */
float *ht_predict(const sb_head_vtable *vt, void *inst, const sb_head_data *d, int width);

/* Accuracy of probs [n,K] on rows with y >= 0; mean absolute error of pred [n] on rows
 * with a finite value. */
double ht_accuracy(const float *probs, const int32_t *y, size_t n, int K);
double ht_mae(const float *pred, const double *value, size_t n);

/* inst's save into a safetensors file at path (committed). */
void ht_save(const sb_head_vtable *vt, void *inst, const char *path);
/* Open path and call load with (parts, new_output, n_classes); returns load's status (err
 * filled). */
sb_status ht_load(const sb_head_vtable *vt, void *inst, const char *path, const char *parts,
                  int new_output, int n_classes, sb_error *err);

/* A path for a temporary file named after `tag`, unique to this process; a static buffer
 * that the next call overwrites. */
const char *ht_tmp_path(const char *tag);

/* An empty split. */
extern const sb_head_data ht_empty;

#endif

/* ---- test bodies both heads run (each with its vtable, option table and options) ------- */

/* save → load into a fresh instance → predict gives bit-identical output, for a classifier
 * and a regression head; the loaded instance predicts without training. */
void ht_test_checkpoint_round_trip(const sb_head_vtable *vt, const sb_option *table,
                                   const char *yaml);
/* A 4-class model fine-tuned on a 3-class task with a new output layer: the load keeps the
 * layer logits and the standardisation (train does not recompute it), the new instance
 * cannot predict before train, and it learns the new task. */
void ht_test_fine_tune(const sb_head_vtable *vt, const sb_option *table, const char *yaml);
/* Loading what does not fit: another dim or class count (SB_ERR_CONFIG naming the field
 * and both values), another part (SB_ERR_CONFIG naming "all"), a file with a missing or
 * mis-shaped tensor or without head_config (SB_ERR_FORMAT naming it). */
void ht_test_checkpoint_errors(const sb_head_vtable *vt, const sb_option *table, const char *yaml);
/* ABI 1.2 data with two inputs is an SB_ERR_CONFIG error naming both and the hierarchical
 * head; one input trains; a 1.1-sized struct is not read past its end. `head` = "linear". */
void ht_test_inputs(const sb_head_vtable *vt, const sb_option *table, const char *yaml,
                    const char *head);
/* The host's cancel during train gives SB_ERR_CANCELLED. */
void ht_test_cancel(const sb_head_vtable *vt, const sb_option *table, const char *yaml);
/* The dev score a head logs is its `metric` option's: ua and wa on blobs, MAE for a
 * regression task trained on MSE, each recomputed from the predictions after one epoch. */
void ht_test_dev_metric(const sb_head_vtable *vt, const sb_option *table, const char *yaml);
