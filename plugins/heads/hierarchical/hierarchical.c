/* plugins/heads/hierarchical/hierarchical.c — the `hierarchical` head, MERITS-L's staged
 * dialogue model: per input (modality branch) an utterance classifier (stage 1), a context
 * model over each dialogue's stage-1 embeddings (stage 2), and with two or more inputs a
 * fusion of the branches' context outputs (stage 3). Stages are trained in order, each with
 * sb_fit and its own early stopping on dev, the earlier ones frozen. The model itself is in
 * hier_model.c, dialogue batching in hier_data.c; this file holds the options, the training
 * stages, prediction and checkpoints. */
#include "hier.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HIER_VERSION "0.1.0"

static const sb_option hier_options[] = {
    { "stages", SB_OPT_ENUM, "auto", 0, 0, 0, "auto|1|2|3",
      "Train up to this stage (1 utterance, 2 context, 3 fusion); auto = 3 with 2+ inputs, "
      "else 2. Predictions come from the last stage trained." },
    { "d_model", SB_OPT_INT, "256", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 2, 4096, NULL,
      "Width of the utterance embeddings and of the context and fusion models (even)." },
    { "context", SB_OPT_ENUM, "transformer", 0, 0, 0, "transformer|bigru",
      "Stage-2 context model: pre-LN transformer layers, or a BiGRU with one self-attention "
      "layer (MERITS-L)." },
    { "layers", SB_OPT_INT, "2", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, HIER_MAX_LAYERS, NULL,
      "Transformer layers of the context model." },
    { "heads", SB_OPT_INT, "4", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 64, NULL,
      "Attention heads (d_model must be a multiple)." },
    { "ffn", SB_OPT_INT, "512", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 65536, NULL,
      "Hidden width of the transformer layers' GELU feed-forward block." },
    { "causal", SB_OPT_BOOL, "false", 0, 0, 0, NULL,
      "Attention sees only the current and earlier turns (transformer context and "
      "co-attention)." },
    { "speakers", SB_OPT_BOOL, "false", 0, 0, 0, NULL,
      "Add learned speaker embeddings, speakers numbered by first appearance in the dialogue." },
    { "max_speakers", SB_OPT_INT, "9", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 1024, NULL,
      "Speaker embeddings; later speakers of a dialogue share the last one." },
    { "fusion", SB_OPT_ENUM, "coattention", 0, 0, 0, "coattention|concat",
      "Stage 3: each branch attends to the next with cross-attention (residual + layer norm) "
      "then concatenation, or plain concatenation, then a classifier." },
    { "freeze", SB_OPT_BOOL, "true", 0, 0, 0, NULL,
      "Keep earlier stages frozen while training later ones; false fine-tunes them too "
      "(stage 2 with its branch's stage 1, stage 3 with everything)." },
    { "stage1_finetune", SB_OPT_BOOL, "false", 0, 0, 0, NULL,
      "With experiment.init parts: stage1 and stages 2+: fine-tune the taken stage 1 on this "
      "run's data first (a new output layer when the classes differ), then train the later "
      "stages over it (frozen with freeze: true) - MERITS-L's chain. false uses it as taken." },
    { "layer_weights", SB_OPT_BOOL, "true", 0, 0, 0, NULL,
      "Learn softmax-normalised weights over each encoder's layers; false averages them." },
    { "normalize", SB_OPT_BOOL, "true", 0, 0, 0, NULL,
      "Standardise each input's features with the train-set mean and standard deviation." },
    { "dropout", SB_OPT_FLOAT, "0.2", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 0.95, NULL,
      "Dropout after stage 1's GELU, on the context model's input and before every "
      "classifier, in [0, 0.95]." },
    { "class_weights", SB_OPT_ENUM, "balanced", 0, 0, 0, "none|balanced",
      "Weight the cross-entropy per class: none, or balanced = n / (classes * count)." },
    { "loss", SB_OPT_ENUM, "l1", 0, 0, 0, "l1|mse",
      "Regression loss (tasks without classes); the dev criterion is its mean (MAE or MSE)." },
    { "lr", SB_OPT_FLOAT, "0.001", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 10, NULL,
      "Peak AdamW learning rate of every stage, in (0, 10]." },
    { "warmup", SB_OPT_FLOAT, "0.05", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 1, NULL,
      "Fraction of a stage's steps spent warming the learning rate up; cosine decay follows." },
    { "clip", SB_OPT_FLOAT, "1.0", SB_OPT_HAS_MIN, 0, 0, NULL,
      "Clip the global gradient norm to this value; 0 = no clipping." },
    { "weight_decay", SB_OPT_FLOAT, "0.0001", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 0, 10, NULL,
      "AdamW decoupled weight decay on weight matrices." },
    { "batch_size", SB_OPT_INT, "32", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 65536, NULL,
      "Utterances per stage-1 mini-batch." },
    { "batch_dialogues", SB_OPT_INT, "8", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 65536, NULL,
      "Dialogues (windows) per stage-2/3 mini-batch." },
    { "max_batch_utts", SB_OPT_INT, "512", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 1048576, NULL,
      "Padded utterances (dialogues x longest) per stage-2/3 mini-batch." },
    { "max_turns", SB_OPT_INT, "128", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 65536, NULL,
      "Longer dialogues are cut into consecutive windows of this many turns, each its own "
      "context." },
    { "epochs", SB_OPT_INT, "50", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 100000, NULL,
      "Maximum passes over the training set, per stage." },
    { "patience", SB_OPT_INT, "10", SB_OPT_HAS_MIN | SB_OPT_HAS_MAX, 1, 1000000, NULL,
      "Stop a stage after this many epochs without a dev improvement." },
    { "metric", SB_OPT_ENUM, "ua", 0, 0, 0, "ua|wa|macro_f1|weighted_f1|loss",
      "Dev criterion for early stopping (regression always uses the loss)." },
    { NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define ADAM_BETA1 0.9f
#define ADAM_BETA2 0.999f
#define ADAM_EPS 1e-8f
#define STREAM_SHUFFLE 0x6869722d73687566ull /* "hir-shuf" */
#define STREAM_DROPOUT 0x6869722d64726f70ull /* "hir-drop" */

/* ---- a checkpoint kept between load and train --------------------------------------------- */

typedef struct ck_input {
    char name[128];
    int modality, L, D;
} ck_input;

typedef struct ck_tensor {
    char *name;
    size_t n;
    float *data;
} ck_tensor;

typedef struct hier_ckpt {
    int stage1_only, new_output, K, stages, NB;
    ck_input in[HIER_MAX_BRANCHES];
    ck_tensor *t;
    size_t n_t;
} hier_ckpt;

static void ckpt_free(hier_ckpt **c)
{
    if (!*c)
        return;
    for (size_t i = 0; i < (*c)->n_t; i++) {
        free((*c)->t[i].name);
        free((*c)->t[i].data);
    }
    free((*c)->t);
    free(*c);
    *c = NULL;
}

static const ck_tensor *ckpt_find(const hier_ckpt *c, const char *name)
{
    for (size_t i = 0; i < c->n_t; i++)
        if (strcmp(c->t[i].name, name) == 0)
            return &c->t[i];
    return NULL;
}

/* ---- create / destroy ---------------------------------------------------------------------- */

static void hier_destroy(void *inst)
{
    hier_head *h = inst;
    if (!h)
        return;
    hier_free_model(h);
    hier_work1_free(&h->w1);
    hier_work2_free(&h->w2);
    free(h->class_w);
    ckpt_free(&h->ckpt);
    free(h);
}

static int enum_is(const sb_opts *o, const char *name, const char *value)
{
    const char *s = sb_opts_str(o, name);
    return s && strcmp(s, value) == 0;
}

static sb_status hier_create(const sb_host *host, const sb_opts *opts, int n_layers, int dim,
                             int n_classes, void **inst, sb_error *err)
{
    *inst = NULL;
    if (n_classes == 1 || n_classes < 0)
        return sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                            "the task has %d classes: the hierarchical head needs 2 or more, or 0 "
                            "for regression",
                            n_classes);
    if (n_layers < 1 || dim < 1)
        return sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                            "features of %d layers x %d dims: need at least 1 x 1", n_layers, dim);
    int C = (int)sb_opts_int(opts, "d_model"), NH = (int)sb_opts_int(opts, "heads");
    if (C % 2)
        return sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "d_model"),
                            "d_model: %d is odd; it must be even (the BiGRU runs d_model/2 each "
                            "way)",
                            C);
    sb_status st = sb_nn_mha_check(C, C, C, NH, err);
    if (st != SB_OK)
        return sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "heads"),
                            "heads: d_model %d is not a multiple of %d heads", C, NH);
    if (enum_is(opts, "context", "bigru") && sb_opts_bool(opts, "causal"))
        return sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "causal"),
                            "causal: true needs context: transformer (a BiGRU reads the later "
                            "turns too)");
    if (sb_opts_int(opts, "max_turns") > sb_opts_int(opts, "max_batch_utts"))
        return sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "max_turns"),
                            "max_turns (%lld) is larger than max_batch_utts (%lld)",
                            (long long)sb_opts_int(opts, "max_turns"),
                            (long long)sb_opts_int(opts, "max_batch_utts"));
    double lr = sb_opts_float(opts, "lr");
    if (!(lr > 0.0))
        return sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "lr"),
                            "lr: must be > 0 (got %g)", lr);

    hier_head *h = calloc(1, sizeof *h);
    if (!h)
        return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory");
    h->host = host;
    h->L0 = n_layers;
    h->D0 = dim;
    h->K = n_classes;
    h->KO = n_classes > 0 ? n_classes : 1;
    const char *stg = sb_opts_str(opts, "stages");
    h->stages_opt = !stg || strcmp(stg, "auto") == 0 ? 0 : atoi(stg);
    h->C = C;
    h->NH = NH;
    h->n_layers = (int)sb_opts_int(opts, "layers");
    h->F = (int)sb_opts_int(opts, "ffn");
    h->causal = sb_opts_bool(opts, "causal");
    h->speakers = sb_opts_bool(opts, "speakers");
    h->max_speakers = (int)sb_opts_int(opts, "max_speakers");
    h->context = enum_is(opts, "context", "bigru") ? CTX_BIGRU : CTX_TRANSFORMER;
    h->fusion = enum_is(opts, "fusion", "concat") ? FUSE_CONCAT : FUSE_COATTENTION;
    h->freeze = sb_opts_bool(opts, "freeze");
    h->stage1_finetune = sb_opts_bool(opts, "stage1_finetune");
    h->learn_layers = sb_opts_bool(opts, "layer_weights");
    h->normalize = sb_opts_bool(opts, "normalize");
    h->balanced = enum_is(opts, "class_weights", "balanced");
    h->l1 = enum_is(opts, "loss", "l1");
    h->dropout = (float)sb_opts_float(opts, "dropout");
    h->lr = (float)lr;
    h->warmup = (float)sb_opts_float(opts, "warmup");
    h->clip = (float)sb_opts_float(opts, "clip");
    h->weight_decay = (float)sb_opts_float(opts, "weight_decay");
    h->batch_size = (int)sb_opts_int(opts, "batch_size");
    h->batch_dialogues = (int)sb_opts_int(opts, "batch_dialogues");
    h->max_batch_utts = (int)sb_opts_int(opts, "max_batch_utts");
    h->max_turns = (int)sb_opts_int(opts, "max_turns");
    h->epochs = (int)sb_opts_int(opts, "epochs");
    h->patience = (int)sb_opts_int(opts, "patience");
    h->metric = enum_is(opts, "metric", "wa")            ? MET_WA
                : enum_is(opts, "metric", "macro_f1")    ? MET_MACRO_F1
                : enum_is(opts, "metric", "weighted_f1") ? MET_WEIGHTED_F1
                : enum_is(opts, "metric", "loss")        ? MET_LOSS
                                                         : MET_UA;
    if (h->K == 0)
        h->metric = MET_LOSS;
    h->class_w = calloc((size_t)h->KO, sizeof(float));
    if (!h->class_w) {
        free(h);
        return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory");
    }
    for (int k = 0; k < h->KO; k++)
        h->class_w[k] = 1.0f;
    *inst = h;
    return SB_OK;
}

/* ---- data checks --------------------------------------------------------------------------- */

/* The split's n_inputs and inputs[], or one input made of x when the host is older. */
static int n_inputs_of(const sb_head_data *d)
{
    if (d->struct_size >= offsetof(sb_head_data, inputs) + sizeof d->inputs && d->inputs &&
        d->n_inputs >= 1)
        return d->n_inputs;
    return 1;
}

static sb_head_input input_of(const sb_head_data *d, int i)
{
    if (d->struct_size >= offsetof(sb_head_data, inputs) + sizeof d->inputs && d->inputs &&
        d->n_inputs >= 1)
        return d->inputs[i];
    return (sb_head_input){ "features", SB_INPUT_AUDIO, d->n_layers, d->dim, d->x };
}

/* d seen through input i: x, n_layers and dim of that input (for head_data.c). */
static sb_head_data view_of(const sb_head_data *d, int i)
{
    sb_head_data v = *d;
    sb_head_input in = input_of(d, i);
    v.x = in.x;
    v.n_layers = in.n_layers;
    v.dim = in.dim;
    return v;
}

static int has_target(const hier_head *h, const sb_head_data *d, size_t r)
{
    if (h->K > 0)
        return d->y && d->y[r] >= 0;
    return d->value && isfinite(d->value[r]);
}

/* The split's inputs fit the model's branches: same count, names and shapes. */
static sb_status check_inputs(const hier_head *h, const sb_head_data *d, const char *split,
                              sb_error *err)
{
    if (d->n == 0)
        return SB_OK;
    int ni = n_inputs_of(d);
    if (ni != h->NB)
        return sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                            "the %s split has %d inputs but the model has %d branches", split, ni,
                            h->NB);
    for (int b = 0; b < ni; b++) {
        sb_head_input in = input_of(d, b);
        const branch *br = &h->br[b];
        if (strcmp(in.name ? in.name : "", br->name) != 0)
            return sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                                "the %s split's input %d is '%s' but the model's branch %d is "
                                "'%s'",
                                split, b + 1, in.name ? in.name : "", b + 1, br->name);
        if (in.n_layers != br->L || in.dim != br->D || !in.x)
            return sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                                "the %s split's input '%s' is %d layers x %d dims but the "
                                "branch was built for %d x %d",
                                split, br->name, in.n_layers, in.dim, br->L, br->D);
    }
    if (h->K > 0 && d->y)
        for (size_t i = 0; i < d->n; i++)
            if (d->y[i] >= h->K || d->y[i] < -1)
                return sb_error_set(
                    err, SB_ERR_INVALID, d->utt_id && d->utt_id[i] ? d->utt_id[i] : split,
                    "%s label %d is outside the %d classes", split, (int)d->y[i], h->K);
    return SB_OK;
}

/* Every feature of every row (context rows feed stage 2 too) is finite. */
static sb_status check_finite_all(const hier_head *h, const sb_head_data *d, const size_t *all,
                                  const char *split, sb_error *err)
{
    for (int b = 0; b < h->NB; b++) {
        sb_head_data v = view_of(d, b);
        sb_status st = hd_check_finite(HIER_WHO, v.n_layers, v.dim, &v, all, d->n, split, err);
        if (st != SB_OK)
            return st;
    }
    return SB_OK;
}

/* Branch names and shapes from the data's inputs. */
static sb_status spec_from_data(const sb_head_data *d, branch *out, int *nb, sb_error *err)
{
    int ni = n_inputs_of(d);
    if (ni > HIER_MAX_BRANCHES)
        return sb_error_set(err, SB_ERR_INVALID, HIER_WHO, "%d inputs; at most %d are supported",
                            ni, HIER_MAX_BRANCHES);
    for (int b = 0; b < ni; b++) {
        sb_head_input in = input_of(d, b);
        if (in.n_layers < 1 || in.dim < 1 || !in.x)
            return sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                                "input %d ('%s') has %d layers x %d dims and %s features", b + 1,
                                in.name ? in.name : "", in.n_layers, in.dim, in.x ? "some" : "no");
        for (int c = 0; c < b; c++)
            if (strcmp(out[c].name, in.name ? in.name : "") == 0)
                return sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                                    "two inputs are named '%s'; branches are told apart by name",
                                    out[c].name);
        memset(&out[b], 0, sizeof out[b]);
        snprintf(out[b].name, sizeof out[b].name, "%s", in.name ? in.name : "");
        out[b].modality = in.modality;
        out[b].L = in.n_layers;
        out[b].D = in.dim;
    }
    *nb = ni;
    return SB_OK;
}

/* ---- optimisation -------------------------------------------------------------------------- */

/* AdamW over the tensors inside [off, end); layer logits only when they are learned. */
static void adamw_range(hier_head *h, size_t off, size_t end, long t, float lr)
{
    for (int i = 0; i < h->n_tensors; i++) {
        const hier_tensor *tn = &h->tensors[i];
        if (tn->off < off || tn->off >= end)
            continue;
        if (tn->stage == 1 && tn->off == h->br[tn->branch].s1_off && !h->learn_layers)
            continue;
        sb_adamw_step(h->params + tn->off, h->grads + tn->off, h->m + tn->off, h->v + tn->off,
                      tn->n, (int)t, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS,
                      tn->decay ? h->weight_decay : 0.0f);
    }
}

/* One stage's training inputs, shared by its sb_fit callbacks. */
typedef struct fit_ctx {
    hier_head *h;
    int stage, b;
    size_t off, end;
    long warmup, total;
    const sb_head_data *tr, *dv;
    const hier_plan *ptr, *pdv; /* train windows with a target; every dev window */
    float *const *Etr, *const *Edv, *const *Ctr, *const *Cdv;
    const size_t *dv_all, *dv_lab;
    size_t n_dv_lab;
    float *dv_out; /* (dev n, KO) */
} fit_ctx;

/* Clip, then step: shared tail of the step callbacks. A non-finite norm becomes the loss, so
 * sb_fit stops with its message. */
static void finish_step(fit_ctx *c, long step, double *loss)
{
    hier_head *h = c->h;
    double norm = sb_nn_clip_grad_norm(h->grads + c->off, c->end - c->off, h->clip);
    if (!isfinite(norm)) {
        *loss = norm;
        return;
    }
    float lr = sb_nn_lr_warmup_cosine(step, c->warmup, c->total, h->lr, 0.0f);
    adamw_range(h, c->off, c->end, step, lr);
}

static sb_status step_s1(void *ctx, const size_t *batch, size_t n, long step, double *loss,
                         sb_error *err)
{
    (void)err;
    fit_ctx *c = ctx;
    hier_head *h = c->h;
    sb_head_input in = input_of(c->tr, c->b);
    hier_s1_forward(h, c->b, in.x, batch, (int)n, 1);
    for (size_t i = 0; i < n; i++) {
        h->w1.yb[i] = c->tr->y && h->K > 0 ? c->tr->y[batch[i]] : -1;
        h->w1.tb[i] = c->tr->value ? (float)c->tr->value[batch[i]] : NAN;
    }
    memset(h->grads + c->off, 0, (c->end - c->off) * sizeof(float));
    *loss = hier_s1_loss(h, (int)n);
    hier_s1_backward(h, c->b, (int)n);
    finish_step(c, step, loss);
    return SB_OK;
}

/* The real positions of the laid-out batch: their rows into w2.rrows, in position order;
 * returns how many. */
static int batch_rows(hier_head *h, int N)
{
    work2 *w = &h->w2;
    int nr = 0;
    for (int i = 0; i < N; i++)
        if (w->row[i] != SIZE_MAX)
            w->rrows[nr++] = w->row[i];
    return nr;
}

/* Stage-1 embeddings (evaluation mode) of the batch's nr rows into Eb (the split's embedding
 * array, used as scratch), for a branch that fine-tunes; w1 keeps the activations. */
static void batch_embed(hier_head *h, int b, const sb_head_data *d, float *Eb, int nr)
{
    size_t C = (size_t)h->C;
    hier_s1_forward(h, b, input_of(d, b).x, h->w2.rrows, nr, 0);
    for (int k = 0; k < nr; k++)
        memcpy(Eb + h->w2.rrows[k] * C, h->w1.g + (size_t)k * C, C * sizeof(float));
}

/* w2.dt (N,C), dL/d(embeddings), into stage 1 of branch b (its forward is in w1). */
static void embed_backward(hier_head *h, int b, int N, int nr)
{
    work2 *w = &h->w2;
    size_t C = (size_t)h->C;
    for (int i = 0, k = 0; i < N; i++)
        if (w->row[i] != SIZE_MAX)
            memcpy(h->w1.dg + (size_t)k++ * C, w->dt + (size_t)i * C, C * sizeof(float));
    hier_s1_backward_embed(h, b, nr);
}

/* Loss of batch bi of plan p (rows of d) at stage 2 (branch b) or 3, forward in training
 * mode; with `grad`, accumulates the gradients of the stage's parameters and, without
 * freeze, of the earlier stages' (stage 2: its branch's stage 1; stage 3: everything). E, Cx:
 * d's stage-1 embeddings and stage-2 outputs (recomputed for the batch when fine-tuning). */
static double ctx_loss(hier_head *h, int stage, int b, const sb_head_data *d, const hier_plan *p,
                       size_t bi, float *const *E, float *const *Cx, int grad)
{
    work2 *w = &h->w2;
    int B, T = hier_batch_layout(h, p, bi, &B), N = B * T;
    const int tune = !h->freeze;
    const size_t C = (size_t)h->C;
    int nr = tune ? batch_rows(h, N) : 0;
    sb_rng saved[HIER_MAX_BRANCHES];
    if (stage == 2) {
        if (tune)
            batch_embed(h, b, d, E[b], nr);
        hier_s2_forward(h, b, E[b], B, T, 1);
    } else {
        for (int br = 0; tune && br < h->NB; br++) {
            batch_embed(h, br, d, E[br], nr);
            saved[br] = h->drop_rng;
            hier_s2_forward(h, br, E[br], B, T, 1);
            for (int i = 0; i < N; i++)
                if (w->row[i] != SIZE_MAX)
                    memcpy(Cx[br] + w->row[i] * C, w->o + (size_t)i * C, C * sizeof(float));
        }
        hier_s3_forward(h, Cx, B, T, 1);
    }
    hier_batch_targets(h, h->K > 0 ? d->y : NULL, d->value, N);
    double loss =
        hier_head_loss(h, N, w->logits, w->probs, w->dlogits, w->losses, w->yb, w->tb, grad);
    if (!grad)
        return loss;
    if (stage == 2) {
        hier_s2_backward(h, b, B, T, NULL, tune);
        if (tune)
            embed_backward(h, b, N, nr);
        return loss;
    }
    hier_s3_backward(h, B, T, tune);
    if (!tune)
        return loss;
    /* each branch again, with the dropout masks of its first pass, back from dL/dc_b */
    sb_rng end = h->drop_rng;
    for (int br = 0; br < h->NB; br++) {
        h->drop_rng = saved[br];
        batch_embed(h, br, d, E[br], nr);
        hier_s2_forward(h, br, E[br], B, T, 1);
        hier_s2_backward(h, br, B, T, w->dc[br], 1);
        embed_backward(h, br, N, nr);
    }
    h->drop_rng = end;
    return loss;
}

static sb_status step_ctx(void *ctx, const size_t *batch, size_t n, long step, double *loss,
                          sb_error *err)
{
    (void)err;
    (void)n;
    fit_ctx *c = ctx;
    hier_head *h = c->h;
    memset(h->grads + c->off, 0, (c->end - c->off) * sizeof(float));
    *loss = ctx_loss(h, c->stage, c->b, c->tr, c->ptr, batch[0], c->Etr, c->Ctr, 1);
    finish_step(c, step, loss);
    return SB_OK;
}

/* ---- outputs and scores -------------------------------------------------------------------- */

/* The outputs (probabilities, or values) of stage `stage` (branch b for 1 and 2) for every
 * row of d into out (d->n, KO). E / Cx: d's stage-1 embeddings / stage-2 outputs. */
static void stage_outputs(hier_head *h, int stage, int b, const sb_head_data *d, const size_t *all,
                          const hier_plan *p, float *const *E, float *const *Cx, float *out)
{
    size_t KO = (size_t)h->KO;
    if (stage == 1) {
        sb_head_input in = input_of(d, b);
        assert(h->w1.cap >= HIER_EVAL_ROWS);
        for (size_t s = 0; s < d->n; s += HIER_EVAL_ROWS) {
            int m = (int)(d->n - s < HIER_EVAL_ROWS ? d->n - s : HIER_EVAL_ROWS);
            hier_s1_forward(h, b, in.x, all + s, m, 0);
            memcpy(out + s * KO, h->K > 0 ? h->w1.probs : h->w1.logits,
                   (size_t)m * KO * sizeof(float));
        }
        return;
    }
    work2 *w = &h->w2;
    for (size_t bi = 0; bi < p->n_batch; bi++) {
        int B, T = hier_batch_layout(h, p, bi, &B);
        if (stage == 2)
            hier_s2_forward(h, b, E[b], B, T, 0);
        else
            hier_s3_forward(h, Cx, B, T, 0);
        const float *src = h->K > 0 ? w->probs : w->logits;
        for (int i = 0; i < B * T; i++)
            if (w->row[i] != SIZE_MAX)
                memcpy(out + w->row[i] * KO, src + (size_t)i * KO, KO * sizeof(float));
    }
}

/* The stage-2 context outputs of every row of d, branch b, into Cx (d->n, C). */
static void context_outputs(hier_head *h, int b, const hier_plan *p, float *const *E, float *Cx)
{
    work2 *w = &h->w2;
    size_t C = (size_t)h->C;
    for (size_t bi = 0; bi < p->n_batch; bi++) {
        int B, T = hier_batch_layout(h, p, bi, &B);
        hier_s2_forward(h, b, E[b], B, T, 0);
        for (int i = 0; i < B * T; i++)
            if (w->row[i] != SIZE_MAX)
                memcpy(Cx + w->row[i] * C, w->o + (size_t)i * C, C * sizeof(float));
    }
}

/* Score of outputs out (d->n, KO) on rows[0..n): higher is better; *shown as printed. */
static sb_status score_rows(const hier_head *h, const sb_head_data *d, const size_t *rows, size_t n,
                            const float *out, double *score, double *shown, sb_error *err)
{
    size_t KO = (size_t)h->KO;
    if (h->K == 0 || h->metric == MET_LOSS) {
        double sum = 0.0, wsum = 0.0;
        for (size_t i = 0; i < n; i++) {
            size_t r = rows[i];
            if (h->K == 0) {
                double e = (double)out[r] - d->value[r];
                sum += h->l1 ? fabs(e) : e * e;
                wsum += 1.0;
            } else {
                float w = h->class_w[d->y[r]];
                float p = out[r * KO + (size_t)d->y[r]];
                sum += -w * log(p > 1e-30f ? p : 1e-30f);
                wsum += w;
            }
        }
        *shown = wsum > 0.0 ? sum / wsum : 0.0;
        *score = -*shown;
        return SB_OK;
    }
    int32_t *gold = malloc((n ? n : 1) * sizeof *gold), *pred = malloc((n ? n : 1) * sizeof *pred);
    if (!gold || !pred) {
        free(gold);
        free(pred);
        return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        gold[i] = d->y[rows[i]];
        pred[i] = hd_argmax(out + rows[i] * KO, h->K);
    }
    sb_cls_metrics met;
    sb_status st = sb_metrics_classify(gold, pred, n, h->K, &met, err);
    if (st == SB_OK) {
        *shown = h->metric == MET_WA            ? met.wa
                 : h->metric == MET_MACRO_F1    ? met.macro_f1
                 : h->metric == MET_WEIGHTED_F1 ? met.weighted_f1
                                                : met.ua;
        *score = *shown;
        sb_cls_metrics_free(&met);
    }
    free(gold);
    free(pred);
    return st;
}

static sb_status eval_dev(void *ctx, double *score, double *shown, sb_error *err)
{
    fit_ctx *c = ctx;
    hier_head *h = c->h;
    if (!h->freeze && c->stage >= 2 && c->dv->n > 0)
        for (int b = 0; b < h->NB; b++) {
            if (c->stage == 2 && b != c->b)
                continue;
            hier_s1_embed(h, b, input_of(c->dv, b).x, c->dv_all, c->dv->n, c->Edv[b]);
            if (c->stage == 3)
                context_outputs(h, b, c->pdv, c->Edv, c->Cdv[b]);
        }
    stage_outputs(c->h, c->stage, c->b, c->dv, c->dv_all, c->pdv, c->Edv, c->Cdv, c->dv_out);
    return score_rows(c->h, c->dv, c->dv_lab, c->n_dv_lab, c->dv_out, score, shown, err);
}

static const char *metric_name(const hier_head *h)
{
    static const char *names[] = { "ua", "wa", "macro_f1", "weighted_f1", "loss" };
    return h->K == 0 ? (h->l1 ? "mae" : "mse") : names[h->metric];
}

/* ---- checkpoint application ------------------------------------------------------------------ */

static const ck_input *ckpt_input(const hier_ckpt *c, const char *name)
{
    for (int i = 0; i < c->NB; i++)
        if (strcmp(c->in[i].name, name) == 0)
            return &c->in[i];
    return NULL;
}

/* Checks the built model's branches against the checkpoint and copies its tensors in:
 * stage 1 (and the standardisation) only, or every stage the checkpoint trained. loaded[s]
 * is set for the stages taken. */
static sb_status ckpt_apply(hier_head *h, int loaded[4], sb_error *err)
{
    const hier_ckpt *c = h->ckpt;
    if (!c->stage1_only && c->NB != h->NB)
        return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                            "inputs: the checkpoint has %d inputs, the data %d (parts: all needs "
                            "the same inputs; parts: stage1 takes branches by name)",
                            c->NB, h->NB);
    for (int b = 0; b < h->NB; b++) {
        const branch *br = &h->br[b];
        const ck_input *ci = ckpt_input(c, br->name);
        if (!ci)
            return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                                "inputs: the checkpoint has no branch for input '%s'", br->name);
        if (ci->L != br->L)
            return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                                "inputs.%s.n_layers: the checkpoint has %d, the data %d", br->name,
                                ci->L, br->L);
        if (ci->D != br->D)
            return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                                "inputs.%s.dim: the checkpoint has %d, the data %d", br->name,
                                ci->D, br->D);
    }
    int top = c->stage1_only ? 1 : c->stages;
    for (int i = 0; i < h->n_tensors; i++) {
        const hier_tensor *t = &h->tensors[i];
        if (t->stage > top || (c->new_output && t->output))
            continue;
        const ck_tensor *ct = ckpt_find(c, t->name);
        if (!ct || ct->n != t->n)
            return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                                "checkpoint tensor '%s': %s (expected %zu values)", t->name,
                                ct ? "a different size" : "missing", t->n);
        memcpy(h->params + t->off, ct->data, t->n * sizeof(float));
    }
    for (int b = 0; b < h->NB; b++) {
        branch *br = &h->br[b];
        char name[192];
        size_t LD = (size_t)br->L * (size_t)br->D;
        const ck_tensor *mu, *isd;
        snprintf(name, sizeof name, "s1.%s.mu", br->name);
        mu = ckpt_find(c, name);
        snprintf(name, sizeof name, "s1.%s.inv_sd", br->name);
        isd = ckpt_find(c, name);
        if (!mu || !isd || mu->n != LD || isd->n != LD)
            return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                                "checkpoint: the standardisation of input '%s' is missing or "
                                "the wrong size",
                                br->name);
        memcpy(br->mu, mu->data, LD * sizeof(float));
        memcpy(br->inv_sd, isd->data, LD * sizeof(float));
    }
    for (int s = 1; s <= 3; s++)
        loaded[s] = s <= top;
    return SB_OK;
}

/* ---- train ------------------------------------------------------------------------------------
 */

typedef struct split_state {
    size_t *all, *lab;
    size_t n_lab;
    int *has;
    hier_plan p_lab, p_all;
    float *E[HIER_MAX_BRANCHES], *Cx[HIER_MAX_BRANCHES];
} split_state;

static void split_free(split_state *s)
{
    free(s->all);
    free(s->lab);
    free(s->has);
    hier_plan_free(&s->p_lab);
    hier_plan_free(&s->p_all);
    for (int b = 0; b < HIER_MAX_BRANCHES; b++) {
        free(s->E[b]);
        free(s->Cx[b]);
    }
    memset(s, 0, sizeof *s);
}

/* Row lists, dialogue plans (labelled windows only when `train`) and room for E and Cx. */
static sb_status split_prepare(hier_head *h, const sb_head_data *d, split_state *s, int train,
                               sb_error *err)
{
    memset(s, 0, sizeof *s);
    size_t n = d->n ? d->n : 1;
    s->all = malloc(n * sizeof *s->all);
    s->lab = malloc(n * sizeof *s->lab);
    s->has = calloc(n, sizeof *s->has);
    if (!s->all || !s->lab || !s->has)
        return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory");
    for (size_t i = 0; i < d->n; i++) {
        s->all[i] = i;
        s->has[i] = has_target(h, d, i);
        if (s->has[i])
            s->lab[s->n_lab++] = i;
    }
    sb_status st;
    if (train && (st = hier_plan_build(&s->p_lab, d, s->has, 1, h->max_turns, h->max_speakers,
                                       h->batch_dialogues, h->max_batch_utts, err)) != SB_OK)
        return st;
    if ((st = hier_plan_build(&s->p_all, d, s->has, 0, h->max_turns, h->max_speakers,
                              h->batch_dialogues, h->max_batch_utts, err)) != SB_OK)
        return st;
    for (int b = 0; b < h->NB; b++) {
        s->E[b] = malloc(n * (size_t)h->C * sizeof(float));
        s->Cx[b] = malloc(n * (size_t)h->C * sizeof(float));
        if (!s->E[b] || !s->Cx[b])
            return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO,
                                "out of memory for the embeddings of %zu rows", d->n);
    }
    return SB_OK;
}

static sb_status reserve_plans(hier_head *h, const hier_plan *a, const hier_plan *b, sb_error *err)
{
    int B = a->max_B, T = a->max_T;
    if (b && b->max_B > B)
        B = b->max_B;
    if (b && b->max_T > T)
        T = b->max_T;
    return hier_work2_reserve(h, B > 0 ? B : 1, T > 0 ? T : 1, err);
}

/* Fit one stage (branch b for stages 1 and 2) with sb_fit. */
static sb_status fit_stage(hier_head *h, int stage, int b, const sb_head_data *train,
                           const sb_head_data *dev, split_state *st_tr, split_state *st_dv,
                           float *dv_out, sb_error *err)
{
    fit_ctx c = { .h = h, .stage = stage, .b = b, .tr = train, .dv = dev };
    c.off = stage == 1 ? h->br[b].s1_off : stage == 2 ? h->br[b].s2_off : h->s3_off;
    if (!h->freeze) /* the earlier stages learn too: stage 2 with its branch's stage 1 (they
                       are contiguous), stage 3 with everything */
        c.off = stage == 1 ? c.off : stage == 2 ? h->br[b].s1_off : 0;
    c.end = stage == 1 ? h->br[b].s1_end : stage == 2 ? h->br[b].s2_end : h->s3_end;
    c.ptr = &st_tr->p_lab;
    c.pdv = &st_dv->p_all;
    c.Etr = st_tr->E;
    c.Edv = st_dv->E;
    c.Ctr = st_tr->Cx;
    c.Cdv = st_dv->Cx;
    c.dv_all = st_dv->all;
    c.dv_lab = st_dv->lab;
    c.n_dv_lab = st_dv->n_lab;
    c.dv_out = dv_out;
    memset(h->m + c.off, 0, (c.end - c.off) * sizeof(float));
    memset(h->v + c.off, 0, (c.end - c.off) * sizeof(float));
    char who[256];
    if (stage == 3)
        snprintf(who, sizeof who, "%s stage 3", HIER_WHO);
    else
        snprintf(who, sizeof who, "%s stage %d (%s)", HIER_WHO, stage, h->br[b].name);
    sb_fit_spec spec = {
        .who = who,
        .epochs = h->epochs,
        .patience = h->patience,
        .batch_size = stage == 1 ? (size_t)h->batch_size : 1,
        .n_items = stage == 1 ? st_tr->n_lab : st_tr->p_lab.n_batch,
        .items = stage == 1 ? st_tr->lab : NULL,
        .seed = h->host->seed,
        .stream = STREAM_SHUFFLE + (uint64_t)stage * 64u + (uint64_t)(b + 1),
        .params = h->params + c.off,
        .n_params = c.end - c.off,
        .ctx = &c,
        .step = stage == 1 ? step_s1 : step_ctx,
        .evaluate = eval_dev,
        .has_dev = st_dv->n_lab > 0,
        .metric = metric_name(h),
        .host = h->host,
    };
    c.total = sb_fit_steps(&spec);
    c.warmup = lround(h->warmup * (double)c.total);
    sb_fit_result res;
    sb_status st = sb_fit(&spec, &res, err);
    if (st != SB_OK)
        return st;
    if (res.best_epoch > 0)
        h->host->log(h->host, SB_LOG_INFO,
                     "%s: %zu parameters, %d epochs run, best epoch %d with dev %s %.4f", who,
                     c.end - c.off, res.epochs_run, res.best_epoch, metric_name(h), res.best_shown);
    else
        h->host->log(h->host, SB_LOG_INFO, "%s: %zu parameters, %d epochs (no dev set)", who,
                     c.end - c.off, res.epochs_run);
    return SB_OK;
}

/* The stage to stop at for nb inputs: the option, or auto. */
static sb_status resolve_stages(const hier_head *h, int nb, int *out, sb_error *err)
{
    int s = h->stages_opt ? h->stages_opt : nb >= 2 ? 3 : 2;
    if (s == 3 && nb < 2)
        return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                            "stages: 3 fuses two or more inputs, but the experiment has one "
                            "encoder; use stages: 2 or add an encoder");
    *out = s;
    return SB_OK;
}

static sb_status hier_train(void *inst, const sb_head_data *train, const sb_head_data *dev,
                            sb_error *err)
{
    hier_head *h = inst;
    sb_status st;
    split_state tr, dv;
    memset(&tr, 0, sizeof tr);
    memset(&dv, 0, sizeof dv);
    float *dv_out = NULL;
    sb_head_data no_dev = { .struct_size = sizeof no_dev };
    if (!dev)
        dev = &no_dev;
    if (train->n == 0)
        return sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                            "the train split is empty; nothing to train on");
    if (n_inputs_of(train) >= 1 &&
        (input_of(train, 0).n_layers != h->L0 || input_of(train, 0).dim != h->D0))
        return sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                            "train features are %d layers x %d dims, but the head was created "
                            "for %d x %d",
                            input_of(train, 0).n_layers, input_of(train, 0).dim, h->L0, h->D0);
    /* the model's branches follow the train split's inputs */
    branch spec[HIER_MAX_BRANCHES];
    int nb = 0, stages = 0;
    if ((st = spec_from_data(train, spec, &nb, err)) != SB_OK)
        return st;
    if ((st = resolve_stages(h, nb, &stages, err)) != SB_OK)
        return st;
    hier_free_model(h);
    memcpy(h->br, spec, (size_t)nb * sizeof *spec);
    h->NB = nb;
    h->stages = stages;
    h->trained_stage = 0;
    if ((st = hier_build(h, err)) != SB_OK)
        return st;
    if ((st = check_inputs(h, train, "train", err)) != SB_OK ||
        (st = check_inputs(h, dev, "dev", err)) != SB_OK)
        return st;
    if ((st = split_prepare(h, train, &tr, 1, err)) != SB_OK ||
        (st = split_prepare(h, dev, &dv, 0, err)) != SB_OK)
        goto out;
    if (tr.n_lab == 0) {
        st = sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                          "the train split has no utterance with a %s (%zu rows); nothing to "
                          "train on",
                          h->K > 0 ? "label" : "target value", train->n);
        goto out;
    }
    if (h->K > 0) {
        int present = 0;
        int *seen = calloc((size_t)h->K, sizeof *seen);
        if (!seen) {
            st = sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < tr.n_lab; i++)
            present += !seen[train->y[tr.lab[i]]]++;
        free(seen);
        if (present < 2) {
            st = sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                              "the train split's %zu labels are all one class (%d); a classifier "
                              "needs at least 2 of the %d classes",
                              tr.n_lab, (int)train->y[tr.lab[0]], h->K);
            goto out;
        }
        if (dv.n_lab > 0) {
            seen = calloc((size_t)h->K, sizeof *seen);
            int dv_present = 0;
            for (size_t i = 0; seen && i < dv.n_lab; i++)
                dv_present += !seen[dev->y[dv.lab[i]]]++;
            free(seen);
            if (dv_present < h->K)
                h->host->log(h->host, SB_LOG_WARN,
                             "the dev split has labels of %d of the %d classes; dev scores "
                             "cover those classes only (ua averages the recall of classes "
                             "present)",
                             dv_present, h->K);
        }
    }
    if (dev->n > 0 && dv.n_lab == 0)
        h->host->log(h->host, SB_LOG_WARN,
                     "the dev split has %zu rows but none with a target; every stage runs all %d "
                     "epochs without early stopping",
                     dev->n, h->epochs);
    if ((st = check_finite_all(h, train, tr.all, "train", err)) != SB_OK ||
        (st = check_finite_all(h, dev, dv.all, "dev", err)) != SB_OK)
        goto out;

    int loaded[4] = { 0, 0, 0, 0 };
    if (h->ckpt && (st = ckpt_apply(h, loaded, err)) != SB_OK)
        goto out;
    for (int b = 0; b < h->NB && !loaded[1]; b++) {
        sb_head_data v = view_of(train, b);
        if ((st = hd_fit_stats(HIER_WHO, h->normalize, h->br[b].L, h->br[b].D, &v, tr.lab, tr.n_lab,
                               h->br[b].mu, h->br[b].inv_sd, err)) != SB_OK)
            goto out;
    }
    if (h->K > 0)
        hd_class_weights(h->balanced, h->K, train, tr.lab, tr.n_lab, h->class_w);
    sb_rng_seed(&h->drop_rng, h->host->seed, STREAM_DROPOUT);
    dv_out = malloc((dev->n ? dev->n : 1) * (size_t)h->KO * sizeof(float));
    int cap = h->batch_size > HIER_EVAL_ROWS ? h->batch_size : HIER_EVAL_ROWS;
    if (!dv_out) {
        st = sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory");
        goto out;
    }
    if ((st = reserve_plans(h, &tr.p_all, &dv.p_all, err)) != SB_OK ||
        (st = hier_work1_reserve(h, cap > h->w2.B * h->w2.T ? cap : h->w2.B * h->w2.T, err)) !=
            SB_OK)
        goto out;

    /* A stage 1 taken from a "stage1" checkpoint is not trained on its own (it is the
     * pre-trained utterance model; without freeze the later stages still fine-tune it)
     * unless it is the only stage or stage1_finetune asks for it; taken with "all", every
     * stage is fine-tuned. */
    int keep1 = h->ckpt && h->ckpt->stage1_only && stages >= 2 && !h->stage1_finetune;
    if (h->stage1_finetune && !(h->ckpt && h->ckpt->stage1_only && stages >= 2))
        h->host->log(h->host, SB_LOG_WARN,
                     "%s: stage1_finetune applies to a stage 1 taken with experiment.init "
                     "parts: stage1 under stages 2 or 3; here it changes nothing",
                     HIER_WHO);
    for (int stage = 1; stage <= stages; stage++) {
        int nbr = stage == 3 ? 1 : h->NB;
        for (int b = 0; b < nbr; b++) {
            if (stage == 1 && keep1) {
                h->host->log(h->host, SB_LOG_INFO, "%s stage 1 (%s): taken from the checkpoint%s",
                             HIER_WHO, h->br[b].name,
                             h->freeze ? ", frozen" : "; fine-tuned with the later stages");
                continue;
            }
            if (stage == 1 && h->stage1_finetune && h->ckpt && h->ckpt->stage1_only && stages >= 2)
                h->host->log(h->host, SB_LOG_INFO,
                             "%s stage 1 (%s): taken from the checkpoint, fine-tuned on this "
                             "data first (stage1_finetune)%s",
                             HIER_WHO, h->br[b].name, h->freeze ? ", then frozen" : "");
            if (!loaded[stage])
                hier_init_stage(h, stage, b, 0);
            else if (h->ckpt->new_output)
                hier_init_stage(h, stage, b, 1);
            if ((st = fit_stage(h, stage, b, train, dev, &tr, &dv, dv_out, err)) != SB_OK)
                goto out;
        }
        if (stage == 1 && stages >= 2)
            for (int b = 0; b < h->NB; b++) {
                hier_s1_embed(h, b, input_of(train, b).x, tr.all, train->n, tr.E[b]);
                if (dev->n)
                    hier_s1_embed(h, b, input_of(dev, b).x, dv.all, dev->n, dv.E[b]);
            }
        if (stage == 2 && stages >= 3)
            for (int b = 0; b < h->NB; b++) {
                if (!h->freeze) { /* stage 1 fine-tuned with stage 2 */
                    hier_s1_embed(h, b, input_of(train, b).x, tr.all, train->n, tr.E[b]);
                    if (dev->n)
                        hier_s1_embed(h, b, input_of(dev, b).x, dv.all, dev->n, dv.E[b]);
                }
                context_outputs(h, b, &tr.p_all, tr.E, tr.Cx[b]);
                if (dev->n)
                    context_outputs(h, b, &dv.p_all, dv.E, dv.Cx[b]);
            }
        h->trained_stage = stage;
    }
out:
    free(dv_out);
    split_free(&tr);
    split_free(&dv);
    if (st != SB_OK)
        h->trained_stage = 0;
    return st;
}

/* ---- predict ----------------------------------------------------------------------------------
 */

/* probs (d->n, KO) = the mean over the branches of their stage-1 or stage-2 outputs. */
static sb_status average_branches(hier_head *h, int stage, const sb_head_data *data,
                                  const split_state *ps, float *probs, sb_error *err)
{
    size_t nk = data->n * (size_t)h->KO;
    float *tmp = malloc(nk * sizeof(float));
    if (!tmp)
        return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory");
    memset(probs, 0, nk * sizeof(float));
    for (int b = 0; b < h->NB; b++) {
        if (stage == 1)
            stage_outputs(h, 1, b, data, ps->all, NULL, NULL, NULL, tmp);
        else
            stage_outputs(h, 2, b, data, ps->all, &ps->p_all, ps->E, NULL, tmp);
        for (size_t i = 0; i < nk; i++)
            probs[i] += tmp[i] / (float)h->NB;
    }
    free(tmp);
    return SB_OK;
}

static sb_status hier_predict(void *inst, const sb_head_data *data, float *probs, sb_error *err)
{
    hier_head *h = inst;
    if (!h->built || h->trained_stage == 0)
        return sb_error_set(err, SB_ERR_INVALID, HIER_WHO, "predict called before train");
    if (data->n == 0)
        return SB_OK;
    sb_status st = check_inputs(h, data, "predict", err);
    if (st != SB_OK)
        return st;
    split_state ps;
    if ((st = split_prepare(h, data, &ps, 0, err)) != SB_OK)
        goto out;
    if ((st = check_finite_all(h, data, ps.all, "predict", err)) != SB_OK)
        goto out;
    int cap = h->batch_size > HIER_EVAL_ROWS ? h->batch_size : HIER_EVAL_ROWS;
    if ((st = hier_work1_reserve(h, cap, err)) != SB_OK ||
        (st = reserve_plans(h, &ps.p_all, NULL, err)) != SB_OK)
        goto out;
    int stage = h->trained_stage;
    if (stage >= 2)
        for (int b = 0; b < h->NB; b++)
            hier_s1_embed(h, b, input_of(data, b).x, ps.all, data->n, ps.E[b]);
    if (stage >= 3)
        for (int b = 0; b < h->NB; b++)
            context_outputs(h, b, &ps.p_all, ps.E, ps.Cx[b]);
    /* one utterance model per branch at stage 1, and stages: 2 with several inputs: their
     * probabilities averaged (values for regression); else the one model of the stage */
    if (stage == 1 || (stage == 2 && h->NB > 1))
        st = average_branches(h, stage, data, &ps, probs, err);
    else
        stage_outputs(h, stage, 0, data, ps.all, &ps.p_all, ps.E, ps.Cx, probs);
out:
    split_free(&ps);
    return st;
}

/* ---- checkpoints ------------------------------------------------------------------------------
 */

static const char *modality_name(int m)
{
    return m == SB_INPUT_TEXT ? "text" : "audio";
}

static sb_status hier_save(void *inst, sb_st_writer *w, sb_error *err)
{
    hier_head *h = inst;
    if (!h->built || h->trained_stage == 0)
        return sb_error_set(err, SB_ERR_INVALID, HIER_WHO, "save called before train");
    sb_status st;
    for (int i = 0; i < h->n_tensors; i++) {
        const hier_tensor *t = &h->tensors[i];
        if (t->stage > h->trained_stage)
            continue;
        if ((st = sb_st_writer_add(w, t->name, SB_DT_F32, t->ndim, t->shape, h->params + t->off,
                                   err)) != SB_OK)
            return st;
    }
    char cfg[8192];
    int len = snprintf(cfg, sizeof cfg,
                       "{\"n_classes\":%d,\"d_model\":%d,\"context\":\"%s\",\"layers\":%d,"
                       "\"heads\":%d,\"ffn\":%d,\"speakers\":%d,\"max_speakers\":%d,"
                       "\"fusion\":\"%s\",\"stages\":%d,\"inputs\":[",
                       h->K, h->C, h->context == CTX_BIGRU ? "bigru" : "transformer", h->n_layers,
                       h->NH, h->F, h->speakers, h->max_speakers,
                       h->fusion == FUSE_CONCAT ? "concat" : "coattention", h->trained_stage);
    for (int b = 0; b < h->NB; b++) {
        const branch *br = &h->br[b];
        int64_t shape[2] = { br->L, br->D };
        char name[192];
        if (strpbrk(br->name, "\"\\{}[],:"))
            return sb_error_set(err, SB_ERR_INVALID, HIER_WHO,
                                "input name '%s' cannot be written to a checkpoint (it holds "
                                "JSON punctuation)",
                                br->name);
        snprintf(name, sizeof name, "s1.%s.mu", br->name);
        if ((st = sb_st_writer_add(w, name, SB_DT_F32, 2, shape, br->mu, err)) != SB_OK)
            return st;
        snprintf(name, sizeof name, "s1.%s.inv_sd", br->name);
        if ((st = sb_st_writer_add(w, name, SB_DT_F32, 2, shape, br->inv_sd, err)) != SB_OK)
            return st;
        len += snprintf(cfg + len, sizeof cfg - (size_t)len,
                        "%s{\"name\":\"%s\",\"modality\":\"%s\",\"n_layers\":%d,\"dim\":%d}",
                        b ? "," : "", br->name, modality_name(br->modality), br->L, br->D);
        if (len >= (int)sizeof cfg)
            return sb_error_set(err, SB_ERR_INTERNAL, HIER_WHO, "head_config too long");
    }
    snprintf(cfg + len, sizeof cfg - (size_t)len, "]}");
    return sb_st_writer_meta(w, "head_config", cfg, err);
}

/* A tiny reader for the head_config this plugin writes: the value after "key": inside
 * [s, end). */
static const char *json_at(const char *s, const char *end, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    size_t lp = strlen(pat);
    for (const char *p = s; p + lp <= end; p++)
        if (memcmp(p, pat, lp) == 0)
            return p + lp;
    return NULL;
}

static int json_int(const char *s, const char *end, const char *key, int *out)
{
    const char *v = json_at(s, end, key);
    char *e;
    if (!v)
        return 0;
    long x = strtol(v, &e, 10);
    if (e == v)
        return 0;
    *out = (int)x;
    return 1;
}

static int json_str(const char *s, const char *end, const char *key, char *out, size_t size)
{
    const char *v = json_at(s, end, key);
    if (!v || *v != '"')
        return 0;
    const char *q = memchr(v + 1, '"', (size_t)(end - v - 1));
    if (!q || (size_t)(q - v - 1) >= size)
        return 0;
    memcpy(out, v + 1, (size_t)(q - v - 1));
    out[q - v - 1] = '\0';
    return 1;
}

/* head_config of the checkpoint against this instance: every shape-determining option. */
static sb_status config_check(const hier_head *h, const char *cfg, const sb_head_init *init,
                              hier_ckpt *c, sb_error *err)
{
    const char *end = cfg + strlen(cfg);
    int K = 0, C = 0, layers = 0, heads = 0, ffn = 0, speakers = 0, max_spk = 0, stages = 0;
    char context[32], fusion[32];
    if (!json_int(cfg, end, "n_classes", &K) || !json_int(cfg, end, "d_model", &C) ||
        !json_int(cfg, end, "layers", &layers) || !json_int(cfg, end, "heads", &heads) ||
        !json_int(cfg, end, "ffn", &ffn) || !json_int(cfg, end, "speakers", &speakers) ||
        !json_int(cfg, end, "max_speakers", &max_spk) || !json_int(cfg, end, "stages", &stages) ||
        !json_str(cfg, end, "context", context, sizeof context) ||
        !json_str(cfg, end, "fusion", fusion, sizeof fusion) || stages < 1 || stages > 3)
        return sb_error_set(err, SB_ERR_FORMAT, HIER_WHO,
                            "the checkpoint's head_config is malformed: %.200s", cfg);
    if (C != h->C)
        return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                            "d_model: the checkpoint has %d, the config %d", C, h->C);
    if (!init->new_output && K != h->K)
        return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                            "n_classes: the checkpoint has %d, the task %d (start with a new "
                            "output layer)",
                            K, h->K);
    if ((K == 0) != (h->K == 0))
        return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                            "n_classes: the checkpoint has %d, the task %d (classification and "
                            "regression do not mix)",
                            K, h->K);
    if (!c->stage1_only && stages >= 2) {
        const char *want_ctx = h->context == CTX_BIGRU ? "bigru" : "transformer";
        if (strcmp(context, want_ctx) != 0)
            return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                                "context: the checkpoint has %s, the config %s", context, want_ctx);
        if (h->context == CTX_TRANSFORMER && layers != h->n_layers)
            return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                                "layers: the checkpoint has %d, the config %d", layers,
                                h->n_layers);
        if (h->context == CTX_TRANSFORMER && ffn != h->F)
            return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                                "ffn: the checkpoint has %d, the config %d", ffn, h->F);
        if (heads != h->NH)
            return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                                "heads: the checkpoint has %d, the config %d", heads, h->NH);
        if (speakers != h->speakers)
            return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                                "speakers: the checkpoint has %s, the config %s",
                                speakers ? "true" : "false", h->speakers ? "true" : "false");
        if (speakers && max_spk != h->max_speakers)
            return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                                "max_speakers: the checkpoint has %d, the config %d", max_spk,
                                h->max_speakers);
    }
    if (!c->stage1_only && stages >= 3 &&
        strcmp(fusion, h->fusion == FUSE_CONCAT ? "concat" : "coattention") != 0)
        return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                            "fusion: the checkpoint has %s, the config %s", fusion,
                            h->fusion == FUSE_CONCAT ? "concat" : "coattention");
    c->K = K;
    c->stages = stages;
    const char *in = json_at(cfg, end, "inputs");
    if (!in || *in != '[')
        return sb_error_set(err, SB_ERR_FORMAT, HIER_WHO,
                            "the checkpoint's head_config has no "
                            "inputs");
    c->NB = 0;
    for (const char *p = in + 1; p < end && *p == '{';) {
        const char *q = memchr(p, '}', (size_t)(end - p));
        if (!q || c->NB >= HIER_MAX_BRANCHES)
            return sb_error_set(err, SB_ERR_FORMAT, HIER_WHO,
                                "the checkpoint's head_config inputs are malformed");
        ck_input *ci = &c->in[c->NB];
        char mod[16];
        if (!json_str(p, q, "name", ci->name, sizeof ci->name) ||
            !json_str(p, q, "modality", mod, sizeof mod) || !json_int(p, q, "n_layers", &ci->L) ||
            !json_int(p, q, "dim", &ci->D) || ci->L < 1 || ci->D < 1)
            return sb_error_set(err, SB_ERR_FORMAT, HIER_WHO,
                                "the checkpoint's head_config input %d is malformed", c->NB + 1);
        ci->modality = strcmp(mod, "text") == 0 ? SB_INPUT_TEXT : SB_INPUT_AUDIO;
        c->NB++;
        p = q + 1;
        if (p < end && *p == ',')
            p++;
    }
    if (c->NB == 0)
        return sb_error_set(err, SB_ERR_FORMAT, HIER_WHO, "the checkpoint has no inputs");
    return SB_OK;
}

/* Builds the model of checkpoint c (parts: all) and fills it, in a copy of h's options, and
 * only once every tensor fits replaces h's model (and work buffers, and checkpoint) with
 * it: a failed load leaves h as it was. Takes c. */
static sb_status load_model(hier_head *h, hier_ckpt *c, sb_error *err)
{
    hier_head *n = malloc(sizeof *n);
    if (!n) {
        ckpt_free(&c);
        return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory");
    }
    *n = *h; /* the options; the model's pointers are h's and are dropped here */
    n->params = n->grads = n->m = n->v = NULL;
    memset(n->br, 0, sizeof n->br);
    memset(&n->p3, 0, sizeof n->p3);
    memset(&n->g3, 0, sizeof n->g3);
    memset(&n->w1, 0, sizeof n->w1);
    memset(&n->w2, 0, sizeof n->w2);
    n->built = n->n_tensors = 0;
    n->ckpt = c;
    n->NB = c->NB;
    for (int b = 0; b < c->NB; b++) {
        snprintf(n->br[b].name, sizeof n->br[b].name, "%s", c->in[b].name);
        n->br[b].modality = c->in[b].modality;
        n->br[b].L = c->in[b].L;
        n->br[b].D = c->in[b].D;
    }
    int loaded[4];
    sb_status st;
    if ((st = hier_build(n, err)) != SB_OK || (st = ckpt_apply(n, loaded, err)) != SB_OK) {
        hier_free_model(n);
        ckpt_free(&n->ckpt);
        free(n);
        return st;
    }
    n->stages = c->stages;
    n->trained_stage = c->new_output ? 0 : c->stages;
    hier_free_model(h);
    ckpt_free(&h->ckpt);
    *h = *n; /* the views into params move with the buffers */
    free(n);
    return SB_OK;
}

static sb_status hier_load(void *inst, const sb_st_file *f, const sb_head_init *init, sb_error *err)
{
    hier_head *h = inst;
    const char *parts = init && init->parts ? init->parts : "all";
    int stage1_only = strcmp(parts, "stage1") == 0;
    if (!stage1_only && strcmp(parts, "all") != 0)
        return sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                            "init parts '%s': the hierarchical head takes 'all' or 'stage1'",
                            parts);
    const char *cfg = sb_st_metadata(f, "head_config");
    if (!cfg)
        return sb_error_set(err, SB_ERR_FORMAT, HIER_WHO, "the checkpoint has no head_config");
    hier_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory");
    c->stage1_only = stage1_only;
    c->new_output = init ? init->new_output : 0;
    sb_status st = config_check(h, cfg, init ? init : &(sb_head_init){ 0 }, c, err);
    size_t nt = sb_st_count(f);
    if (st == SB_OK && !(c->t = calloc(nt ? nt : 1, sizeof *c->t)))
        st = sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory");
    for (size_t i = 0; st == SB_OK && i < nt; i++) {
        const sb_st_tensor *t = sb_st_at(f, i);
        if (stage1_only && strncmp(t->name, "s1.", 3) != 0)
            continue;
        ck_tensor *ct = &c->t[c->n_t];
        ct->name = malloc(strlen(t->name) + 1);
        ct->data = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
        if (!ct->name || !ct->data) {
            free(ct->name);
            free(ct->data);
            st = sb_error_set(err, SB_ERR_NOMEM, HIER_WHO, "out of memory");
            break;
        }
        strcpy(ct->name, t->name);
        ct->n = (size_t)t->numel;
        c->n_t++;
        st = sb_st_to_f32(t, ct->data, err);
    }
    if (st != SB_OK) {
        ckpt_free(&c);
        return st;
    }
    if (stage1_only) {
        ckpt_free(&h->ckpt);
        h->ckpt = c;
        return SB_OK;
    }
    /* a whole model: usable for predict at once, with the checkpoint's inputs, the first of
     * which is the one the host created the head for (as at train) */
    if (c->in[0].L != h->L0 || c->in[0].D != h->D0) {
        st = sb_error_set(err, SB_ERR_CONFIG, HIER_WHO,
                          "inputs.%s: the checkpoint's first input is %d layers x %d dims, but "
                          "the head was created for %d x %d (n_layers, dim)",
                          c->in[0].name, c->in[0].L, c->in[0].D, h->L0, h->D0);
        ckpt_free(&c);
        return st;
    }
    return load_model(h, c, err);
}

static const sb_head_vtable hier_vtable = {
    .struct_size = sizeof(sb_head_vtable),
    .create = hier_create,
    .train = hier_train,
    .predict = hier_predict,
    .destroy = hier_destroy,
    .save = hier_save,
    .load = hier_load,
};

static const sb_plugin hier_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_HEAD,
    .name = "hierarchical",
    .version = HIER_VERSION,
    .summary = "MERITS-L's staged dialogue model: per input an utterance classifier, a "
               "context model over each dialogue (transformer or BiGRU + attention), and "
               "co-attention fusion of the inputs",
    .options = hier_options,
    .vtable = &hier_vtable,
};

SB_PLUGIN_DEFINE(hier_plugin)
