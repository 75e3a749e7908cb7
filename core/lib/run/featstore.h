/* core/lib/run/featstore.h — (internal) encoder features on disk.
 *
 * Layout: RESULTS/features/<enc_key>/<chunk>.safetensors, each file holding a chunk (up to
 * 64 utterances, 64 MB of buffered frames, or what was encoded in the last 2 seconds,
 * whichever comes first) as F32 tensors [n_layers, dim] named by the item key (a hash of the
 * audio file's content, span and channel), and, for an encoder that keeps frames, tensors
 * `<item key>.frames` [n_layers, T, frame_dim] in F16 or F32. Files are written to a temporary
 * name, fsynced and renamed; only then are their items indexed in the `features` table, in one
 * transaction. Python reads the files with safetensors.numpy.load_file.
 *
 * The journal: every writer also appends each item, as it is added, to its own file
 * features/<enc_key>/journal-XXXXXX.bin, on which it holds an exclusive flock(2) while it lives.
 * A new writer first recovers the journals of dead writers (those it can lock without
 * waiting): their valid records, up to the first torn or damaged one, are committed as chunks
 * and the journal is removed. So a process killed at any point (SIGKILL included) loses no
 * item that was added; a power cut can tear the journal's tail, which the records' checksums
 * catch (the torn items are encoded again).
 *
 * Journal file: "SBJRNL01", then int32 n_layers, dim, frame_dim, frame_bits and 8 zero bytes
 * (32 bytes), then records: uint32 0x52424A53 ("SJBR"), the item key (32 hex chars), uint32
 * n = n_layers*dim, uint32 T (frames, 0 without), n floats, n_layers*T*frame_dim floats
 * (always F32 in the journal), and 32 hex chars of XXH3-128 over the record before them.
 * Native byte order: a journal is read back by the same machine. It is truncated to its
 * header once its items are indexed.
 *
 * Threads: a writer or reader is used by one thread at a time, with that thread's store
 * connection. Several writers of one enc_key (threads or processes) may run at once. */
#ifndef SBI_FEATSTORE_H
#define SBI_FEATSTORE_H

#include <serbench/serbench.h>

#include "store.h"

/* What one item holds. */
typedef struct sbi_feat_layout {
    int n_layers, dim; /* pooled: [n_layers, dim] F32 */
    int frame_dim;     /* frames: [n_layers, T, frame_dim]; 0 = none */
    int frame_bits;    /* 16 (stored as F16, round to nearest even) or 32; when frame_dim > 0 */
} sbi_feat_layout;

typedef struct sbi_feat_writer sbi_feat_writer;

/* Create a writer for enc_key (enc_json: the encoder's canonical options, kept in each
 * file's metadata). It first recovers the journals of dead writers of enc_key (see above),
 * then starts its own journal. Errors: SB_ERR_IO naming the folder or journal that cannot
 * be created, read or locked; SB_ERR_STORE naming a journal of another layout or format
 * (delete that file); store errors from committing recovered items. */
sb_status sbi_feat_writer_create(sbi_store *s, const char *enc_key, const char *enc_json,
                                 const sbi_feat_layout *lay, sbi_feat_writer **out, sb_error *err);
/* What creation recovered: items committed from dead writers' journals, journals replayed
 * and removed, and of those the journals cut short at a torn or damaged record (the items
 * from there on are not recovered; they are encoded again). */
typedef struct sbi_feat_recovery {
    size_t items, journals, torn;
} sbi_feat_recovery;
sbi_feat_recovery sbi_feat_writer_recovery(const sbi_feat_writer *w);

/* Add one item: vec [n_layers, dim], and when the layout has frames, frames
 * [n_layers, T, frame_dim] with T >= 1 (else pass NULL, 0). Both are copied and appended to
 * the journal at once (one write(2), no fsync); a chunk is committed by itself when full or
 * 2 s after the last one. An item key already in the chunk in flight is ignored. Errors:
 * SB_ERR_IO naming the journal (disk full), or those of sbi_feat_writer_flush. */
sb_status sbi_feat_writer_add(sbi_feat_writer *w, const char *item_key, const float *vec,
                              const float *frames, size_t T, sb_error *err);
/* Commit the chunk in flight (if any), index it, and truncate the journal. */
sb_status sbi_feat_writer_flush(sbi_feat_writer *w, sb_error *err);
/* Release the writer. Its journal is removed when everything in it is indexed; after a
 * failed flush it stays (unlocked) for the next writer of enc_key to recover. */
void sbi_feat_writer_destroy(sbi_feat_writer **w);

/* Is the item stored? */
int sbi_feat_has(sbi_store *s, const char *enc_key, const char *item_key);

typedef struct sbi_feat_reader sbi_feat_reader;
sb_status sbi_feat_reader_create(sbi_store *s, const char *enc_key, int n_layers, int dim,
                                 sbi_feat_reader **out, sb_error *err);
/* Copy the item's [n_layers, dim] floats into out. SB_ERR_NOT_FOUND if not stored; a file
 * that is missing or damaged is SB_ERR_STORE naming it. */
sb_status sbi_feat_read(sbi_feat_reader *r, const char *item_key, float *out, sb_error *err);
/* The item's frames tensor `<item key>.frames` ([n_layers, T, frame_dim], F16 or F32) in
 * *t, borrowed from the reader's mapping of its file until sbi_feat_reader_destroy; *t =
 * NULL when the item was stored without frames. SB_ERR_NOT_FOUND if the item is not stored;
 * SB_ERR_STORE naming the tensor when its dtype or shape is not that of frame_dim. */
sb_status sbi_feat_read_frames(sbi_feat_reader *r, const char *item_key, int frame_dim,
                               const sb_st_tensor **t, sb_error *err);
void sbi_feat_reader_destroy(sbi_feat_reader **r);

#endif
