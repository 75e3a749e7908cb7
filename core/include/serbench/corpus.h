/* serbench/corpus.h — the utterance table a dataset plugin builds and every later stage
 * reads.
 *
 * The host creates an empty corpus, hands it to the dataset plugin's `load`, which adds
 * utterances and declares the label space; afterwards the corpus is read-only and may be
 * read from several threads. All strings are copied in; pointers returned by getters are
 * owned by the corpus and live as long as it does. */
#ifndef SERBENCH_CORPUS_H
#define SERBENCH_CORPUS_H

#include "common.h"
#include "error.h"

SB_BEGIN_DECLS

typedef struct sb_corpus sb_corpus;

/* One utterance. When adding, set struct_size = sizeof(sb_utt) and leave unknown fields
 * at the values sb_utt_init gives them; new fields are only ever appended. */
typedef struct sb_utt {
    uint32_t struct_size;
    const char *id;       /* stable, unique in the corpus ("Ses01F_impro01_F000"); required */
    const char *dialogue; /* dialogue id, or NULL */
    int32_t turn;         /* position in the dialogue, or -1 */
    const char *speaker;  /* or NULL */
    const char *audio;    /* absolute path of the audio file, or NULL when the corpus has
                             none for this item (text-only use; the feature stage applies
                             the dataset's on_missing_audio policy) */
    double start, end;    /* seconds into the file; end < 0 means to the end */
    int32_t channel;      /* 0-based channel, or -1 to downmix to mono */
    const char *text;     /* transcript (UTF-8), or NULL */
    const char *split;    /* "train", "dev", "test", "fold3", ...; required */
    int32_t label;        /* gold class index in the corpus's label space, -1 = none */
    double value;         /* gold continuous value (regression), NAN = none */
    const char *meta;     /* extra fields as JSON object text ({"vad": [2.5, 3, 2],
                             "sentiment": "positive"}), or NULL; validated on add */
} sb_utt;

/* Fill u with "unset" values: NULLs, turn/label/channel -1, start 0, end -1, value NAN. */
SB_API void sb_utt_init(sb_utt *u);

/* Create an empty corpus with the given name (the config's instance name). */
SB_API sb_status sb_corpus_create(const char *name, sb_corpus **out, sb_error *err);
SB_API void sb_corpus_destroy(sb_corpus **c);

/* Declare the label space: an ordered list of class names ("neu", "hap", ...). Call once,
 * before adding labelled utterances. `space_name` names it ("iemocap-4class"). */
SB_API sb_status sb_corpus_set_classes(sb_corpus *c, const char *space_name,
                                       const char *const *classes, int n, sb_error *err);
/* Append an utterance (copied). Fails on a duplicate id, a label outside the space or a
 * missing required field, naming the utterance. */
SB_API sb_status sb_corpus_add(sb_corpus *c, const sb_utt *u, sb_error *err);

/* Record one rater's label for utterance `utt_id` (already added): rater is an id ("E2",
 * "F1"), label the rater's own text ("Neutral", "Frustration"), not necessarily a class
 * of the label space. Used for agreement statistics. */
SB_API sb_status sb_corpus_add_rating(sb_corpus *c, const char *utt_id, const char *rater,
                                      const char *label, sb_error *err);

/* Describe the corpus as loaded: key/value text shown by `serbench corpus` and kept in run
 * provenance. Conventional keys: "protocol" (e.g. "iemocap-4class-loso"),
 * "protocol_version", "fold", "dev_split" (how dev was carved), "layout", "notes". A key
 * set twice keeps the last value. */
SB_API sb_status sb_corpus_set_info(sb_corpus *c, const char *key, const char *value,
                                    sb_error *err);

/* Record a note about one item that does NOT exclude it: the item stays for every stage
 * that can use it. For facts a user should see — "no clip dia110_utt7.wav (known missing in
 * MELD)", "llm_label 'comfort' is not one of the 7 emotions (kept unlabelled)". `serbench
 * corpus` lists notes; when an item has no audio, the feature stage quotes its first note.
 * Missing audio is a note, never a warning: the dataset's on_missing_audio policy decides. */
SB_API void sb_corpus_note_item(sb_corpus *c, const char *utt_id, const char *fmt, ...)
    SB_PRINTF(3, 4);

/* Record a per-item problem found while loading (a missing audio file, say) without
 * failing the whole load; the host reports these and excludes the item. */
SB_API void sb_corpus_warn_item(sb_corpus *c, const char *utt_id, const char *fmt, ...)
    SB_PRINTF(3, 4);

SB_API const char *sb_corpus_name(const sb_corpus *c);
SB_API size_t sb_corpus_size(const sb_corpus *c);
SB_API const sb_utt *sb_corpus_utt(const sb_corpus *c, size_t i);
/* Index of an utterance id, or -1. */
SB_API long sb_corpus_find(const sb_corpus *c, const char *id);
SB_API int sb_corpus_n_classes(const sb_corpus *c);
SB_API const char *sb_corpus_class(const sb_corpus *c, int i);
SB_API const char *sb_corpus_label_space(const sb_corpus *c);
/* Index of a class name, or -1. */
SB_API int sb_corpus_class_index(const sb_corpus *c, const char *name);
/* Ratings of utterance i: count, and the k-th (rater id out, label returned). */
SB_API size_t sb_corpus_n_ratings(const sb_corpus *c, size_t i);
SB_API const char *sb_corpus_rating(const sb_corpus *c, size_t i, size_t k, const char **rater);
/* Info set with sb_corpus_set_info: count, the k-th (key out, value returned), or by key
 * (NULL if unset). */
SB_API size_t sb_corpus_n_info(const sb_corpus *c);
SB_API const char *sb_corpus_info_at(const sb_corpus *c, size_t k, const char **key);
SB_API const char *sb_corpus_info(const sb_corpus *c, const char *key);
/* Notes (sb_corpus_note_item): count, the i-th (id out, text returned), and the first note
 * of utterance index u (NULL if none). */
SB_API size_t sb_corpus_n_notes(const sb_corpus *c);
SB_API const char *sb_corpus_note(const sb_corpus *c, size_t i, const char **utt_id);
SB_API const char *sb_corpus_item_note(const sb_corpus *c, size_t u);
/* Items reported with sb_corpus_warn_item: count, and the i-th id and message. */
SB_API size_t sb_corpus_n_warnings(const sb_corpus *c);
SB_API const char *sb_corpus_warning(const sb_corpus *c, size_t i, const char **utt_id);

SB_END_DECLS

#endif
