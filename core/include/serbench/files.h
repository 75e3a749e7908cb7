/* serbench/files.h — finding a corpus's media files in the folder trees users have on disk.
 * Shared by dataset plugins (MELD and MELT both index MELD's clips) so that none carries
 * its own walker. */
#ifndef SERBENCH_FILES_H
#define SERBENCH_FILES_H

#include "common.h"
#include "error.h"

SB_BEGIN_DECLS

/* One clip found by sb_walk_clips. All pointers are borrowed for the duration of the
 * callback only. */
typedef struct sb_clip {
    uint32_t struct_size;
    const char *path;  /* root + "/" + rel */
    const char *rel;   /* path below root, '/'-separated ("train/train_splits/dia0_utt0.wav") */
    const char *name;  /* the file name (last component of rel) */
    const char *ext;   /* the matched extension, lower case, no dot ("wav") */
    int rank;          /* position of ext in the caller's extension list (0 = preferred) */
    long dialogue;     /* D of the last "dia<D>_utt<U>" in the name */
    long utterance;    /* U */
    const char *split; /* "train", "dev", "test" from the folder names, or NULL; see below */
    int64_t bytes;     /* file size in bytes (a 0-byte or header-only clip is damaged) */
} sb_clip;

/* Called once per clip. Return 0 to go on, nonzero to stop the walk (sb_walk_clips then
 * returns SB_ERR_CANCELLED without touching err, unless the callback set it). */
typedef int (*sb_clip_fn)(void *ctx, const sb_clip *clip, sb_error *err);

/* Walk `root` recursively, once, and call fn for every regular file whose name matches
 * `dia(\d+)_utt(\d+)\.EXT$` without anchoring the start (MELD's test clips carry prefixes
 * such as "final_videos_testdia101_utt0.mp4"), where EXT is one of the comma-separated,
 * case-insensitive extensions in `exts` ("wav,flac,mp4"; its order gives sb_clip.rank).
 *  - Order: entries are visited sorted by byte value, depth first, so the call sequence is
 *    the same on every machine for the same tree.
 *  - Symbolic links are followed; a folder reached twice (a link loop) is walked once.
 *  - Names starting with "." are skipped (".git", macOS "._dia0_utt0.mp4" resource forks).
 *  - Numbers with more than 9 digits do not match.
 *  - split: the folder components of rel, from the deepest up, are cut into words at any
 *    character that is not a letter or digit; the first component holding the word
 *    "train" gives "train", "dev", "val", "valid" or "validation" gives "dev", "test"
 *    gives "test" (so train_splits, dev_splits_complete, output_repeated_splits_test and
 *    plain train/dev/test all decide; "latest" does not). NULL when none does.
 * Errors: SB_ERR_NOT_FOUND when root does not exist, SB_ERR_IO when root or a folder
 * below it cannot be read (naming the folder), SB_ERR_INVALID for an empty `exts`. */
SB_API sb_status sb_walk_clips(const char *root, const char *exts, sb_clip_fn fn, void *ctx,
                               sb_error *err);

/* Parse a clip file name: nonzero when `name` ends in "dia<D>_utt<U>.<ext>" (any prefix,
 * any extension of letters and digits), with D and U stored (each may be NULL). */
SB_API int sb_clip_dia_utt(const char *name, long *dialogue, long *utterance);

/* ---- an index of clips by (split, dialogue, utterance) ------------------------------ */

/* The clips of one tree, walked once, for lookups by key. Read-only after build; may be
 * read from several threads. */
typedef struct sb_clip_index sb_clip_index;

/* Walk `root` with sb_walk_clips(root, exts, ...) and keep every clip found. For each key
 * (split, dialogue, utterance) the clip with the lowest rank (the extension earliest in
 * `exts`) is the one sb_clip_index_find returns; between clips of equal rank the first in
 * walk order wins. Clips whose folders name no split are kept (split NULL) but are found
 * only by a lookup with split NULL. Errors as sb_walk_clips. Free with
 * sb_clip_index_destroy. */
SB_API sb_status sb_clip_index_build(const char *root, const char *exts, sb_clip_index **out,
                                     sb_error *err);
/* Position of the chosen clip for the key, or -1. `split` may be NULL (see above). */
SB_API long sb_clip_index_find(const sb_clip_index *ix, const char *split, long dialogue,
                               long utterance);
/* Number of clips kept (every clip found, chosen or not), and the i-th in walk order. The
 * sb_clip and its strings are owned by the index and live as long as it does. */
SB_API size_t sb_clip_index_size(const sb_clip_index *ix);
SB_API const sb_clip *sb_clip_index_at(const sb_clip_index *ix, size_t i);
/* Nonzero when clip i is the one sb_clip_index_find returns for its key (0 for a clip
 * shadowed by a better-ranked or earlier one). */
SB_API int sb_clip_index_chosen(const sb_clip_index *ix, size_t i);
SB_API void sb_clip_index_destroy(sb_clip_index **ix);

/* A note on a clip that MELD's own release gets wrong, for messages about it ("known
 * corrupt in MELD.Raw (declare-lab/MELD issues #39, #52)"), or NULL. split is "train",
 * "dev" or "test"; the list is in docs/datasets.md ("meld"). Static storage. */
SB_API const char *sb_meld_clip_note(const char *split, long dialogue, long utterance);

SB_END_DECLS

#endif
