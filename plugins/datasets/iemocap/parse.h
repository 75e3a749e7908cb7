/* plugins/datasets/iemocap/parse.h — (internal) parsers for single lines of the IEMOCAP
 * release's text files: EmoEvaluation summary and rating lines, transcription turns.
 * Pure functions over one NUL-terminated line, so the unit test can feed them snippets. */
#ifndef SBI_IEMOCAP_PARSE_H
#define SBI_IEMOCAP_PARSE_H

#include <stddef.h>

/* A span of the line passed in (not NUL-terminated). */
typedef struct sbi_iem_span {
    const char *p;
    size_t n;
} sbi_iem_span;

/* An EmoEvaluation summary line:
 *     [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
 * Fields may be separated by any run of tabs and spaces. Times are seconds into the
 * dialog recording; vad is the mean valence, activation, dominance (1-5 scale). */
typedef struct sbi_iem_summary {
    double start, end;
    sbi_iem_span id, code;
    double vad[3];
} sbi_iem_summary;

/* Parse a summary line. Returns 0, or -1 with *why set to static text saying what was
 * expected where ("expected ']' after the end time", ...). */
int sbi_iem_parse_summary(const char *line, sbi_iem_summary *out, const char **why);

#define SBI_IEM_MAX_CATS 16

/* One rater's categorical line:  C-E2:<TAB>Neutral;<TAB>()  or  C-E1:<TAB>Frustration;
 * Anger;<TAB>(comment). rater is "E2"; cats are the ';'-separated categories, trimmed, in
 * file order (empty items dropped); the parenthesised comment is not returned. */
typedef struct sbi_iem_rating {
    sbi_iem_span rater;
    sbi_iem_span cats[SBI_IEM_MAX_CATS];
    int n_cats;
} sbi_iem_rating;

/* Parse a line that starts with "C-". Returns 0, or -1 with *why set (no rater, no ':',
 * no category, more than SBI_IEM_MAX_CATS categories). */
int sbi_iem_parse_rating(const char *line, sbi_iem_rating *out, const char **why);

/* Nonzero when the line is an attribute line "A-<rater>:" (read no further). */
int sbi_iem_is_attribute(const char *line);

/* A transcription turn:  Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
 * text is the rest of the line after ':' and the spaces that follow it, with trailing
 * white space (and a CR) removed; it may be empty. */
typedef struct sbi_iem_transcript {
    sbi_iem_span id, text;
    double start, end;
} sbi_iem_transcript;

/* Returns 1 when the line is a turn, 0 when it is not (the release's parsers skip such
 * lines; the caller reports them). */
int sbi_iem_parse_transcript(const char *line, sbi_iem_transcript *out);

/* The dialog part of an utterance id: everything before the last '_'
 * ("Ses01F_script02_2_F000" → "Ses01F_script02_2"). Returns its length, 0 if none. */
size_t sbi_iem_dialog_len(const char *id, size_t n);

/* The speaker letter of an utterance id: the first character after the last '_'
 * ("Ses01F_impro01_M013" → 'M'), or 0 when there is none. */
char sbi_iem_speaker_letter(const char *id, size_t n);

#endif
