/* core/lib/run/featstore.h — (internal) pooled features on disk.
 *
 * Layout: RESULTS/features/<enc_key>/<chunk>.safetensors, each file holding a chunk (up to
 * 64 utterances, or what was encoded in the last 2 seconds, whichever comes first) as F32 tensors
 * [n_layers, dim] named by the item key (a hash of the audio file's content, span and channel).
 * Files are written to a temporary name, fsynced and renamed; only then are their items indexed in
 * the `features` table, in one transaction. So an interrupted extraction loses at most the chunk in
 * flight (about 2 s of encoding for a slow encoder), and a rerun encodes only items not indexed.
 * Python reads the files with safetensors.numpy.load_file. */
#ifndef SBI_FEATSTORE_H
#define SBI_FEATSTORE_H

#include <serbench/serbench.h>

#include "store.h"

typedef struct sbi_feat_writer sbi_feat_writer;

sb_status sbi_feat_writer_create(sbi_store *s, const char *enc_key, const char *enc_json,
                                 int n_layers, int dim, sbi_feat_writer **out, sb_error *err);
/* Queue one item's features (copied). Flushes by itself every `chunk` items. */
sb_status sbi_feat_writer_add(sbi_feat_writer *w, const char *item_key, const float *vec,
                              sb_error *err);
sb_status sbi_feat_writer_flush(sbi_feat_writer *w, sb_error *err);
void sbi_feat_writer_destroy(sbi_feat_writer **w); /* drops unflushed items */

/* Is the item stored? */
int sbi_feat_has(sbi_store *s, const char *enc_key, const char *item_key);

typedef struct sbi_feat_reader sbi_feat_reader;
sb_status sbi_feat_reader_create(sbi_store *s, const char *enc_key, int n_layers, int dim,
                                 sbi_feat_reader **out, sb_error *err);
/* Copy the item's [n_layers, dim] floats into out. SB_ERR_NOT_FOUND if not stored; a file
 * that is missing or damaged is SB_ERR_STORE naming it. */
sb_status sbi_feat_read(sbi_feat_reader *r, const char *item_key, float *out, sb_error *err);
void sbi_feat_reader_destroy(sbi_feat_reader **r);

#endif
