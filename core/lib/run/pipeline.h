/* core/lib/run/pipeline.h — (internal) executing a plan: corpora → labels → features →
 * heads → metrics, each stage keyed by content and skipped when complete.
 *
 * Keys:
 *   corpus   = H(dataset plugin, version, options, the loaded utterance table, label space)
 *   labels   = H(labeller plugin, version, options, corpus key)
 *   encoder  = H(encoder plugin, version, options, the plugin's fingerprint)
 *   item     = H(audio file content hash, start, end, channel, sample rate)
 *   run      = H(canonical resolved config incl. seed)     (= the run id)
 *   inputs   = H(run id, corpus, label and encoder keys, item keys used)
 * A run is skipped when it is complete with the same inputs key (unless --force). */
#ifndef SBI_PIPELINE_H
#define SBI_PIPELINE_H

#include <signal.h>

#include "plan.h"
#include "progress.h"
#include "store.h"

enum { SBI_STAGE_ALL = 0, SBI_STAGE_LABELS = 1, SBI_STAGE_FEATURES = 2 };

typedef struct sbi_exec_opts {
    int force;            /* recompute runs even when complete */
    int jobs;             /* runs trained at once (>= 1) */
    int threads;          /* total thread budget (0 = config or nproc) */
    int shard_i, shard_n; /* run only runs with index % shard_n == shard_i - 1; 0/0 = all */
    /* SBI_STAGE_LABELS / SBI_STAGE_FEATURES only: label and encode only the utterances with
     * sbi_item_in_shard(id, items_i, items_n), and write no stage completion marks (a later
     * unsharded command on the merged store finds every row and marks the stage); 0/0 = all */
    int items_i, items_n;
    int stage;          /* SBI_STAGE_* */
    int label_plan;     /* SBI_STAGE_LABELS only: print each labeller's plan, send nothing */
    int label_readonly; /* SBI_STAGE_LABELS only: read what the store has, label nothing */
    /* Called once per label stage (labeller x corpus) the plan uses, after it is resolved:
     * labels[i] is the class of corpus item i or -1 (none, invalid or not yet labelled). */
    void (*on_labels)(void *user, const sbi_instance *labeller, const sb_corpus *corpus,
                      const char *stage_key, const int32_t *labels);
    void *on_labels_user;
    const sbi_ui *ui;
} sbi_exec_opts;

typedef struct sbi_exec_summary {
    size_t runs_selected, runs_done, runs_skipped, runs_failed;
    size_t item_failures;
} sbi_exec_summary;

/* Set from a signal handler: finish the item in flight and stop. */
extern volatile sig_atomic_t sbi_cancel_requested;

sb_status sbi_execute(sbi_plan *plan, sbi_store *store, const sbi_exec_opts *o,
                      sbi_exec_summary *sum, sb_error *err);

/* Does run r fall in the shard? */
int sbi_in_shard(const sbi_run *r, int shard_i, int shard_n);

/* Does the utterance with id `utt_id` fall in item shard items_i of items_n? Its shard is
 * XXH3-64 (seed 0) of the id's UTF-8 bytes mod items_n, plus 1: deterministic and
 * independent of corpus order. items_n <= 0 means no sharding (always 1). */
int sbi_item_in_shard(const char *utt_id, int items_i, int items_n);

/* `serbench export features`: write the stored features of dataset instance `ds` under
 * encoder instance `enc` to the safetensors file `out` (tmp, fsync, rename): tensor `pooled`
 * [n, n_layers, dim] F32 for the n utterances (corpus order) whose features are stored,
 * `frames.<utt id>` [n_layers, T, frame_dim] (F16 or F32, as stored) for those with frames,
 * and metadata `utt_ids` (a JSON array, row order of `pooled`), `serbench.dataset`,
 * `serbench.corpus_key`, `serbench.encoder_key`, `serbench.encoder`. Loads the corpus and
 * creates the encoder once (for its key); encodes nothing. SB_ERR_NOT_FOUND when no
 * utterance has stored features. */
typedef struct sbi_feat_export_summary {
    size_t n_items;   /* rows of `pooled` */
    size_t n_frames;  /* frames tensors */
    size_t n_missing; /* utterances without stored features (or audio) */
} sbi_feat_export_summary;
sb_status sbi_export_features(sbi_plan *plan, sbi_store *store, const sbi_instance *ds,
                              const sbi_instance *enc, const sbi_ui *ui, int threads,
                              const char *out, sbi_feat_export_summary *sum, sb_error *err);

/* Load one dataset instance (for `serbench corpus`). */
sb_status sbi_load_corpus(const sbi_instance *in, const sbi_ui *ui, const char *cache_root,
                          sb_corpus **out, sb_error *err);

#endif
