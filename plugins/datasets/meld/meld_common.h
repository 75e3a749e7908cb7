/* plugins/datasets/meld/meld_common.h — what the meld and melt plugins share (MELT's files
 * are MELD rows plus a GPT-4o label): a reader of MELD-style CSV rows (header check, the
 * two time formats, duplicate keys, text repair) and the join of rows to extracted clips
 * (the clip index of serbench/files.h, with per-item warnings). Compiled into both
 * plugins; nothing here is exported. */
#ifndef MELD_COMMON_H
#define MELD_COMMON_H

#include <serbench/serbench.h>

/* ---- rows ------------------------------------------------------------------------------ */

typedef struct mc_rows mc_rows;

/* One row. Strings are borrowed until the next mc_rows_next call. */
typedef struct mc_row {
    long line;                   /* where the record starts in the file */
    long dialogue, utterance;    /* Dialogue_ID, Utterance_ID */
    long season, episode;        /* Season, Episode */
    long sr_no;                  /* "Sr No." / "Sr_No.", or -1 when the file has no such column */
    double start_time, end_time; /* seconds into the episode */
    const char *text;            /* Utterance, repaired when asked */
    const char *speaker;         /* Speaker, repaired when asked */
    const char *emotion;         /* Emotion, lower case, trimmed */
    const char *sentiment;       /* Sentiment, lower case, trimmed */
    int repaired;                /* the repair changed text or speaker */
    const char *const *extra;    /* the extra columns asked for at open, in that order */
} mc_row;

/* Open a MELD-style CSV. `split` names the split in messages ("train"). `extra_cols`
 * (NULL-terminated, may be NULL) are further required columns, returned in mc_row.extra.
 * A header without a required column is SB_ERR_FORMAT at "path:1" naming the missing
 * columns and those found. */
sb_status mc_rows_open(const char *path, const char *split, int repair,
                       const char *const *extra_cols, mc_rows **out, sb_error *err);
/* The next row; *eof at the end. Blank lines are skipped. Errors name "path:line": a
 * wrong field count, a field that does not parse (naming the column), a (Dialogue_ID,
 * Utterance_ID) seen before in the file (naming both lines). */
sb_status mc_rows_next(mc_rows *r, mc_row *row, int *eof, sb_error *err);
const char *mc_rows_path(const mc_rows *r);
void mc_rows_close(mc_rows **r);

/* ---- clips ----------------------------------------------------------------------------- */

typedef struct mc_audio mc_audio;

/* Index the clips under `root` (wav, flac, and mp4 only to advise extraction) and log
 * what was found: clips in folders that name no split, mp4 without extracted audio, or
 * nothing. `what` names the option in messages ("audio_root"). */
sb_status mc_audio_open(const sb_host *host, const char *root, const char *what, mc_audio **out,
                        sb_error *err);
/* The audio path of row (split, d, u), owned by the index, or NULL. When the tree holds
 * extracted audio but not this row's usable clip (none, only an mp4, a truncated WAV), the
 * problem goes to sb_corpus_warn_item for `id`, with MELD's own known defect if any. */
const char *mc_audio_find(mc_audio *a, sb_corpus *corpus, const char *id, const char *split, long d,
                          long u);
/* Log (INFO) the clips that no row asked for. */
void mc_audio_report_extras(mc_audio *a);
/* Clips below a split folder: readable audio (wav, flac), and mp4. */
size_t mc_audio_n_usable(const mc_audio *a);
size_t mc_audio_n_mp4(const mc_audio *a);
void mc_audio_close(mc_audio **a);

/* ---- small helpers --------------------------------------------------------------------- */

/* A new formatted string (free with free), or NULL when out of memory. */
char *mc_printf(const char *fmt, ...) SB_PRINTF(1, 2);
/* The JSON string body of s (no quotes) into out, truncated to fit. */
void mc_json_str(const char *s, char *out, size_t size);
int mc_is_dir(const char *path);
int mc_is_file(const char *path);

#endif
