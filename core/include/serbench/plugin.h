/* serbench/plugin.h — the plugin ABI, version 1.
 *
 * A plugin is a shared object that exports exactly one symbol, `serbench_plugin_v1`, a
 * function returning a pointer to a constant descriptor (sb_plugin). The major ABI version
 * is in the symbol's name: a host looks up only the name of its own major, so a plugin of
 * another major is recognised and refused with both versions named. Within a major, the
 * descriptor, the vtables and sb_host grow only by appending fields; each starts with
 * struct_size so either side can tell which fields the other knows.
 *
 * Rules a plugin MUST follow:
 *  - Never exit, abort, or write to stdout; report failure through the returned status and
 *    the sb_error. Log through sb_host.log only.
 *  - Never write the results store; the host owns every persistent write. A plugin may
 *    keep private files under sb_host.cache_dir.
 *  - If the host calls create and it succeeds, the host calls destroy exactly once.
 *    destroy MUST accept an instance whose other calls failed.
 *  - Calls on one instance come from one thread at a time; distinct instances may be used
 *    from different threads at once, so no mutable global state.
 *  - Use at most sb_host.threads threads of its own.
 *  - Work of size zero (an empty corpus, a zero-length split) MUST NOT crash.
 *
 * Lifecycle: dlopen → serbench_plugin_v1() → checks (see docs/plugins.md) → options
 * validated against the table → create/load → calls → destroy → dlclose. */
#ifndef SERBENCH_PLUGIN_H
#define SERBENCH_PLUGIN_H

#include "common.h"
#include "corpus.h"
#include "error.h"
#include "options.h"
#include "safetensors.h"

SB_BEGIN_DECLS

#define SB_ABI_MAJOR 1
#define SB_ABI_MINOR 2
#define SB_PLUGIN_ENTRY serbench_plugin_v1
#define SB_PLUGIN_ENTRY_NAME "serbench_plugin_v1"

typedef enum sb_kind {
    SB_KIND_DATASET = 1,
    SB_KIND_LABELLER = 2,
    SB_KIND_ENCODER = 3,
    SB_KIND_HEAD = 4
} sb_kind;

/* "dataset", "labeller", "encoder", "head", or "?" */
SB_API const char *sb_kind_name(sb_kind kind);

typedef enum sb_log_level {
    SB_LOG_ERROR = 0,
    SB_LOG_WARN = 1,
    SB_LOG_INFO = 2,
    SB_LOG_DEBUG = 3
} sb_log_level;

/* Services the host lends a plugin for the lifetime of an instance (or one call, for a
 * dataset's load). All function pointers are non-NULL. Thread-safe. */
typedef struct sb_host {
    uint32_t struct_size;
    void *priv; /* host-private */
    /* A message to the user's log (stderr and the run's log), prefixed with the plugin's
     * instance name. No trailing newline needed. */
    void (*log)(const struct sb_host *h, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
    /* Progress of the current long call: `done` of `total` items. */
    void (*progress)(const struct sb_host *h, uint64_t done, uint64_t total);
    /* Nonzero once the user asked to stop (SIGINT/SIGTERM): finish the item in flight and
     * return SB_ERR_CANCELLED. */
    int (*cancelled)(const struct sb_host *h);
    const char *cache_dir; /* an existing folder private to this plugin */
    uint64_t seed;         /* the run's seed (0 for labellers: labels belong to the
                              labeller, not the run); derive every random stream from it */
    int threads;           /* thread budget for this instance, >= 1 */
    /* Since ABI 1.1 (check struct_size before use). A persistent key-value cache in the
     * results store, shared by every instance of the same plugin (keys are namespaced by
     * the plugin's name, not its version or options), for work that costs money or time:
     * the llm labeller's responses, a Batch job's id. Keys are text (use a hash of the
     * canonical request); values are bytes. Never put secrets in either.
     * cache_get: 1 and *value a malloc'ed copy (NUL-terminated beyond *len; release with
     * free) when present, 0 when absent, -1 when the store cannot be read. */
    int (*cache_get)(const struct sb_host *h, const char *key, char **value, size_t *len);
    /* Insert or replace; durable when it returns SB_OK. */
    sb_status (*cache_put)(const struct sb_host *h, const char *key, const void *value, size_t len,
                           sb_error *err);
} sb_host;

/* ---- datasets ---------------------------------------------------------------------- */

typedef struct sb_dataset_vtable {
    uint32_t struct_size;
    /* Read the corpus described by `opts` into `corpus` (created empty by the host):
     * declare the label space, add every utterance. Problems with single items (a missing
     * clip) go to sb_corpus_warn_item; problems that make the corpus unusable (no label
     * file) are returned as errors naming the file. */
    sb_status (*load)(const sb_host *host, const sb_opts *opts, sb_corpus *corpus, sb_error *err);
} sb_dataset_vtable;

/* ---- labellers --------------------------------------------------------------------- */

/* Where a labeller delivers labels; the host stores them as they arrive (committed in
 * small batches), so finished items survive an interrupted run. */
typedef struct sb_label_sink sb_label_sink;

/* Deliver the label of utterance `utt` (index in the corpus): a class index of the
 * corpus's label space, a confidence in [0,1] (or a negative number when unknown), and
 * the raw answer text (may be NULL). Thread-safe. */
SB_API sb_status sb_label_put(sb_label_sink *sink, size_t utt, int32_t label, double confidence,
                              const char *raw);
/* Report that utterance `utt` could not be labelled this time (the server failed, the
 * answer was cut at max tokens, a refusal), with the reason. Nothing is stored as its
 * label, so the next run asks again; this run finishes and exits 1. Thread-safe. */
SB_API sb_status sb_label_fail(sb_label_sink *sink, size_t utt, const char *reason);

/* Since ABI 1.1: the full result of labelling one utterance. */
typedef enum sb_label_status {
    SB_LABEL_OK = 0,     /* label is a class of the label space */
    SB_LABEL_INVALID = 1 /* a final answer that is not a class of the label space (after any
                            re-ask): stored with its raw text and reason, never coerced,
                            never used as a training target, not asked again */
} sb_label_status;

typedef struct sb_label_result {
    uint32_t struct_size; /* sizeof(sb_label_result) */
    sb_label_status status;
    int32_t label;      /* class index (SB_LABEL_OK) */
    double confidence;  /* in [0,1], or negative when unknown */
    const double *dist; /* [n_classes] distribution over the label space, or NULL */
    const char *raw;    /* the answer text as received, or NULL */
    const char *reason; /* why it is invalid (SB_LABEL_INVALID), or NULL */
    const char *detail; /* a JSON object with provenance, or NULL: for the llm labeller
                           {"model", "request_id", "attempts", "cached",
                           "usage": {"prompt_tokens", "completion_tokens",
                           "cached_tokens"}, "cost_usd"}; the host sums usage and cost
                           over a stage from these keys */
} sb_label_result;

/* Deliver a label with its distribution and provenance. The host commits deliveries in
 * batches (256 rows or 50 ms) and at the end of the stage, so a killed run loses at most
 * the last 50 ms; a plugin's cache_put commits at once. Thread-safe. */
SB_API sb_status sb_label_deliver(sb_label_sink *sink, size_t utt, const sb_label_result *r);

typedef struct sb_labeller_vtable {
    uint32_t struct_size;
    sb_status (*create)(const sb_host *host, const sb_opts *opts, void **inst, sb_error *err);
    /* Label the utterances whose indices are in todo[0..n_todo) (the host leaves out those
     * already stored). Deliver each through the sink as soon as it is known. Return an
     * error only for failures that stop the whole stage (bad credentials). */
    sb_status (*label)(void *inst, const sb_corpus *corpus, const size_t *todo, size_t n_todo,
                       sb_label_sink *sink, sb_error *err);
    void (*destroy)(void *inst);
    /* Since ABI 1.1, may be NULL. Say what label() would do for todo without doing any of
     * it (nothing sent, nothing charged): *json a malloc'ed JSON object (release with free)
     * with any of "requests" (to send), "cached" (answered from the cache),
     * "prompt_tokens", "completion_tokens" (estimates), "cost_usd" (estimate, or null
     * without a price), "example" (one fully rendered request, as text) and "notes" (an
     * array of strings). `serbench label --plan` prints it. */
    sb_status (*plan)(void *inst, const sb_corpus *corpus, const size_t *todo, size_t n_todo,
                      char **json, sb_error *err);
} sb_labeller_vtable;

/* ---- encoders ---------------------------------------------------------------------- */

typedef struct sb_encoder_info {
    uint32_t struct_size;
    int sample_rate; /* input rate the encoder wants (the host resamples to it) */
    int n_layers;    /* number of feature layers returned (after `layers` selection) */
    int dim;         /* width of one layer's pooled vector (e.g. 2*H for mean+std) */
    /* Since ABI 1.1. The host sets struct_size to the size it knows and zeroes the struct;
     * a plugin writes these two fields only when struct_size covers them. */
    int frame_dim;  /* width of one frame of the frame-level output that encode keeps for
                       the frames call (e.g. H); 0 = this instance keeps no frames */
    int frame_bits; /* when frame_dim > 0: how the host stores the frames, 16 (F16, rounded
                       to nearest even) or 32 (F32) */
    /* Since ABI 1.2 (written only when struct_size covers it; 0 otherwise). */
    int input; /* what encode reads: SB_INPUT_AUDIO (encode) or SB_INPUT_TEXT (encode_text) */
} sb_encoder_info;

/* The modality an encoder reads (sb_encoder_info.input) and a head input carries. */
typedef enum sb_input { SB_INPUT_AUDIO = 0, SB_INPUT_TEXT = 1 } sb_input;

typedef struct sb_encoder_vtable {
    uint32_t struct_size;
    sb_status (*create)(const sb_host *host, const sb_opts *opts, void **inst, sb_error *err);
    sb_status (*info)(void *inst, sb_encoder_info *info, sb_error *err);
    /* Optional (may be NULL): identity of what the encoder computes beyond its options,
     * e.g. a hash of checkpoint weights, as a NUL-terminated string of at most 127 chars.
     * It goes into the feature store key. */
    sb_status (*fingerprint)(void *inst, char out[128], sb_error *err);
    /* audio: n mono samples in [-1,1] at info.sample_rate (n may be 0 only if the encoder
     * says so with an error). out: [n_layers, dim] floats, written fully. */
    sb_status (*encode)(void *inst, const float *audio, size_t n, float *out, sb_error *err);
    void (*destroy)(void *inst);
    /* Since ABI 1.1, may be NULL (check struct_size first: an ABI 1.0 vtable ends before
     * it). After a successful encode on an instance whose info has frame_dim > 0: that
     * utterance's frame-level output as *out = [n_layers, T, frame_dim] floats (the layers
     * in the order of the pooled output) and *T = frames. *out is owned by the instance and
     * valid until its next encode or destroy. The host calls it after every successful
     * encode of such an instance, and stores the frames beside the pooled vector. */
    sb_status (*frames)(void *inst, const float **out, size_t *T, sb_error *err);
    /* Since ABI 1.2, both may be NULL; a text encoder (info.input == SB_INPUT_TEXT) MUST
     * have encode_text, and its encode is never called (it may be NULL).
     *
     * fit: learn what the encoder needs from the run's training split before any
     * encode_text (a vocabulary, IDF weights): texts[0..n) are the transcripts of the
     * training split's utterances that have one, in corpus order. Called at most once per
     * instance, before fingerprint; the fingerprint MUST then identify the fitted state
     * (e.g. a hash of the vocabulary and weights), because it keys the feature store. An
     * encoder without fit is the same for every corpus. */
    sb_status (*fit)(void *inst, const char *const *texts, size_t n, sb_error *err);
    /* Encode n transcripts (UTF-8, never NULL; may be empty strings) into
     * out [n, n_layers, dim], written fully. The host passes up to 256 at a time so an
     * encoder can batch requests; it stores each batch before the next call. An item-level
     * problem fails the call with the item's index in err->where ("text 3"). */
    sb_status (*encode_text)(void *inst, const char *const *texts, size_t n, float *out,
                             sb_error *err);
} sb_encoder_vtable;

/* ---- heads ------------------------------------------------------------------------- */

/* Since ABI 1.2: one feature input of a head — the pooled output of one of the
 * experiment's encoders (`experiment.encoder: [wavlm, tfidf]` gives two). */
typedef struct sb_head_input {
    const char *name; /* the encoder instance's name in the config */
    int modality;     /* SB_INPUT_AUDIO or SB_INPUT_TEXT */
    int n_layers, dim;
    const float *x; /* [n, n_layers, dim] */
} sb_head_input;

/* One split as a head sees it: pooled features and targets of n utterances, in corpus
 * order grouped by dialogue then turn. Built by the host; read-only; valid during the call.
 *
 * Which rows: every utterance of the split that has features from all inputs. Rows with
 * no target (y == -1 and value NAN: unlabelled, or an invalid LLM answer) are still there
 * as dialogue context; a head trains and scores only on rows with a target, and predicts
 * every row. */
typedef struct sb_head_data {
    uint32_t struct_size;
    size_t n;          /* utterances */
    int n_layers, dim; /* x is [n, n_layers, dim] */
    const float *x;
    int n_classes;               /* 0 for a regression task */
    const int32_t *y;            /* [n] class index, -1 = no target (context only) */
    const double *value;         /* [n] regression target (NAN = none), or NULL */
    const char *const *utt_id;   /* [n] */
    const char *const *dialogue; /* [n], entries may be NULL */
    const int32_t *turn;         /* [n], -1 = unknown */
    /* Since ABI 1.2 (check struct_size before use). */
    const char *const *speaker;  /* [n], entries may be NULL */
    int n_inputs;                /* >= 1 */
    const sb_head_input *inputs; /* [n_inputs]; inputs[0] is x above */
} sb_head_data;

/* Since ABI 1.2: how a head starts from a checkpoint (experiment.init_from), passed to
 * load before train. */
typedef struct sb_head_init {
    uint32_t struct_size;
    const char *parts; /* which parameters to take: "all", or a part the head documents
                          (the hierarchical head's "stage1") */
    int new_output;    /* 1: initialise the output layer afresh (the label spaces differ, or
                          the config asks); 0: take it from the checkpoint */
    int n_classes;     /* the checkpoint's class count (0 for regression) */
} sb_head_init;

typedef struct sb_head_vtable {
    uint32_t struct_size;
    sb_status (*create)(const sb_host *host, const sb_opts *opts, int n_layers, int dim,
                        int n_classes, void **inst, sb_error *err);
    /* Fit on `train`, using `dev` (may have n == 0) for early stopping / model selection.
     * Deterministic for a given host->seed and host->threads. */
    sb_status (*train)(void *inst, const sb_head_data *train, const sb_head_data *dev,
                       sb_error *err);
    /* probs: [data->n, n_classes] class probabilities, written fully; for a regression
     * head (n_classes == 0), [data->n] predicted values. The host shows no targets here:
     * every y is -1 and value is NULL (test labels may be in another label space). */
    sb_status (*predict)(void *inst, const sb_head_data *data, float *probs, sb_error *err);
    void (*destroy)(void *inst);
    /* Since ABI 1.2, both may be NULL (then the run keeps no checkpoint / cannot start
     * from one). save: after train, add the trained parameters to w as tensors, and as
     * metadata "head_config" a JSON object of everything that fixes their shapes (layer
     * counts, widths, input dims, n_classes). The host has already put its own metadata
     * ("serbench_head" = plugin name, "head_version", "head_options", "classes",
     * "label_space", "run_id") and commits the file as RESULTS/checkpoints/<run_id>.safetensors.
     * Keys the host writes MUST NOT be reused. */
    sb_status (*save)(void *inst, sb_st_writer *w, sb_error *err);
    /* load: before train, take parameters from f, a checkpoint this plugin saved (the host
     * has checked "serbench_head"), as init says; train then starts from them (its
     * standardisation statistics too, when the checkpoint's are taken) instead of a random
     * initialisation. A checkpoint whose head_config does not fit this instance's options
     * and inputs is an SB_ERR_CONFIG error naming the first difference. f is valid
     * during the call only: copy what train needs. */
    sb_status (*load)(void *inst, const sb_st_file *f, const sb_head_init *init, sb_error *err);
} sb_head_vtable;

/* ---- the descriptor ---------------------------------------------------------------- */

typedef struct sb_plugin {
    uint32_t abi_minor;   /* SB_ABI_MINOR the plugin was built with */
    uint32_t struct_size; /* sizeof(sb_plugin) the plugin was built with */
    sb_kind kind;
    const char *name;         /* [a-z][a-z0-9_]*, unique among installed plugins */
    const char *version;      /* the plugin's own version; part of every stage key */
    const char *summary;      /* one line */
    const sb_option *options; /* terminated by a row with name == NULL; may be NULL */
    const void *vtable;       /* sb_dataset_vtable / sb_labeller_vtable / ... per kind */
} sb_plugin;

/* Define the entry point of a plugin whose descriptor is the static object `desc`:
 *     static const sb_plugin desc = { ... };
 *     SB_PLUGIN_DEFINE(desc)
 */
#define SB_PLUGIN_DEFINE(desc)                                                                     \
    SB_EXPORT const sb_plugin *serbench_plugin_v1(void);                                           \
    SB_EXPORT const sb_plugin *serbench_plugin_v1(void)                                            \
    {                                                                                              \
        return &(desc);                                                                            \
    }

SB_END_DECLS

#endif
