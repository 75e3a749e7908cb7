/* core/lib/run/stage.h — (internal) what the stages of one invocation share: the plugin
 * host, the in-memory caches of corpora, labels, features and encoders, and the execution
 * context. pipeline.c runs the plan; labels.c is the label stage; host.c lends services
 * to plugins. */
#ifndef SBI_STAGE_H
#define SBI_STAGE_H

#include <pthread.h>

#include "pipeline.h"

/* ---- the host lent to plugins ------------------------------------------------------ */

typedef struct host_priv {
    const sbi_ui *ui;
    char who[160];
    sbi_progress *prog;
    sbi_store *store;   /* for cache_get/cache_put; NULL outside a store */
    const char *plugin; /* the plugin's name: the cache namespace */
} host_priv;

/* Fill host + priv for a plugin instance; cache_dir = ROOT/cache/<plugin> (created).
 * store may be NULL (the plugin's cache_get then finds nothing and cache_put fails). */
sb_status sbi_host_init(sb_host *h, host_priv *hp, const sbi_ui *ui, sbi_store *store,
                        const char *cache_root, const sbi_instance *in, uint64_t seed, int threads,
                        char *cache_buf, size_t cache_size, sb_error *err);

/* ---- in-memory caches for one invocation ------------------------------------------- */

typedef struct corpus_entry {
    char inst_key[SB_HASH_HEX];
    char key[SB_HASH_HEX];
    sb_corpus *c;
    unsigned char *excluded;        /* [n] items the dataset plugin warned about */
    char (*item_keys)[SB_HASH_HEX]; /* [n] computed on demand */
    unsigned char *item_state;      /* [n] 0 = not computed, 1 = ok, 2 = failed */
    int skip_missing_audio;         /* the dataset's on_missing_audio policy is skip */
} corpus_entry;

/* One labeller's labels on one corpus (one stage key, one set of rows in the store). A
 * labeller labels only the splits the plan names it for, all of them in one pass; each split
 * has its own completion mark (a stage key of the labels key and the split). */
typedef struct labels_entry {
    char key[SB_HASH_HEX];
    const corpus_entry *ce;
    int32_t *labels;         /* [n] -1 = none */
    unsigned char *answered; /* [n] the store holds a final answer (a label or invalid) */
    char **splits;           /* splits resolved in this invocation */
    size_t n_splits;
} labels_entry;

typedef struct feat_entry {
    char enc_key[SB_HASH_HEX];
    const corpus_entry *ce;
    int n_layers, dim;
    int modality;        /* SB_INPUT_AUDIO or SB_INPUT_TEXT */
    float *x;            /* [n, n_layers, dim] */
    unsigned char *have; /* [n] */
    /* [n] per-item content keys: the corpus's audio keys (ce->item_keys) for an audio
     * encoder, keys of the transcripts (owned here) for a text encoder */
    char (*keys)[SB_HASH_HEX];
    char (*text_keys)[SB_HASH_HEX];
    char fit_what[200]; /* a fitted text encoder: the split it was fitted on, else "" */
} feat_entry;

/* The transcripts a text encoder is fitted on (sb_encoder_vtable.fit): the run's training
 * split, in corpus order. */
typedef struct fit_set {
    const char **texts;
    size_t n;
    char key[SB_HASH_HEX]; /* hash of the texts */
    char what[200];        /* "dataset meld, split train" */
} fit_set;

typedef struct enc_entry {
    char inst_key[SB_HASH_HEX];
    char key[SB_HASH_HEX];
    sb_encoder_info info;
    int fitted;                /* a text encoder with fit: key covers fit_key */
    char fit_key[SB_HASH_HEX]; /* the fit_set's key when fitted */
    char fit_what[200];
} enc_entry;

typedef struct ctx {
    sbi_plan *plan;
    const sbi_exec_opts *o;
    const sbi_ui *ui;
    sbi_store *store;
    int threads, blas_threads;
    /* Entries are allocated one by one: run inputs keep pointers to them. */
    corpus_entry **corpora;
    size_t n_corpora;
    labels_entry **labels;
    size_t n_labels;
    feat_entry **feats;
    size_t n_feats;
    enc_entry **encs;
    size_t n_encs;
    size_t item_failures; /* items that failed (exit 1) */
    size_t skipped;       /* items left out under on_missing_audio: skip */
    pthread_mutex_t lock; /* guards run-level counters when jobs > 1 */
} ctx;

/* Does the experiment's split name `wanted` select an utterance of split `split`? The
 * reserved name "all" selects every utterance of the corpus (a whole corpus as a test set). */
int sbi_split_matches(const char *wanted, const char *split);

/* The labels of labeller ref->labels on corpus ce: from the store, labelling what is
 * missing first (the label stage). */
sb_status sbi_get_labels(ctx *c, const sbi_run *r, const sbi_split_ref *ref, corpus_entry *ce,
                         labels_entry **out, sb_error *err);

#endif
