/* plugins/datasets/cmu_mosi/mosi.h — (internal) what the parts of the cmu_mosi plugin
 * share: one clip as read from a label file, the loader state, small helpers, and the
 * readers of the two layouts (mmsa.c: MMSA label.csv; sdk.c: the SDK's raw release). */
#ifndef SB_MOSI_H
#define SB_MOSI_H

#include <serbench/serbench.h>

typedef enum mosi_layout { MOSI_MMSA = 1, MOSI_SDK = 2 } mosi_layout;

/* One clip as read, before labels and audio are worked out. Strings are owned. */
typedef struct mosi_clip {
    long line;         /* 1-based line of the label file the clip comes from */
    char *video;       /* video id, trimmed */
    char *clip;        /* clip (segment) id as written, trimmed: "1" and "01" differ */
    char *text;        /* transcript, or NULL */
    char *annotation;  /* MMSA's Negative/Neutral/Positive, or NULL (SDK: derived later) */
    const char *split; /* "train", "dev" or "test" (static storage), NULL until assigned */
    double score;      /* sentiment in [-3, 3] */
    double start, end; /* SDK: the clip's span in the full video, seconds; NAN if unknown */
} mosi_clip;

typedef struct mosi_loader {
    const sb_host *host;
    const sb_opts *opts;
    sb_corpus *corpus;
    sb_error *err;
    mosi_layout layout;
    const char *root;       /* absolute (a PATH option); borrowed */
    const char *audio_root; /* or NULL; borrowed */
    char *label_path;       /* the label file read */
    mosi_clip *clips;
    size_t n, cap;
    /* How the splits were set, for sb_corpus_set_info("dev_split"); static or owned by
     * split_note_buf. own_splits: the corpus's own split (MMSA mode column, split_file). */
    const char *split_note;
    char split_note_buf[1200];
    int own_splits;
    size_t n_text_repaired; /* transcripts that needed sb_text_repair */
} mosi_loader;

/* A message to the host log (no-op without one). */
void sbi_mosi_log(const mosi_loader *L, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);

/* An error about line `line` of `file` (where = "file:line"); returns code. */
sb_status sbi_mosi_line_error(mosi_loader *L, const char *file, long line, sb_status code,
                              const char *fmt, ...) SB_PRINTF(5, 6);

/* Copy of s into *out, trimmed of surrounding white space when `trim`; *out = NULL when s
 * is NULL or blank. Returns -1 only when out of memory. */
int sbi_mosi_dup(const char *s, int trim, char **out);

/* A transcript as corpus text: NULL when blank; repaired with sb_text_repair when it is not
 * valid UTF-8 (counted in L->n_text_repaired). -1 when out of memory. */
int sbi_mosi_text(mosi_loader *L, const char *s, char **out);

/* "train" | "valid" | "validation" | "dev" | "test" (any case, trimmed) → "train", "dev",
 * "test" (static); NULL for anything else. */
const char *sbi_mosi_split(const char *s);

/* The sentiment score in field `s` (column `col`) of file:line: a finite number in
 * [-3, 3], else SB_ERR_FORMAT naming file:line, the column and the text. */
sb_status sbi_mosi_score(mosi_loader *L, const char *file, long line, const char *col,
                         const char *s, double *out);

/* "a/b/c" from the NULL-terminated list of parts (malloc'd; NULL when out of memory). */
char *sbi_mosi_join(const char *first, ...) __attribute__((sentinel));

/* Nonzero when `path` names a regular file (stat, no open). */
int sbi_mosi_is_file(const char *path);

/* Append a clip, taking ownership of its strings (freed on failure too). */
sb_status sbi_mosi_push(mosi_loader *L, mosi_clip *c);
void sbi_mosi_clip_free(mosi_clip *c);

/* Readers: fill L->clips (with splits) from the layout's label file L->label_path. */
sb_status sbi_mosi_read_mmsa(mosi_loader *L);
sb_status sbi_mosi_read_sdk(mosi_loader *L);

#endif
