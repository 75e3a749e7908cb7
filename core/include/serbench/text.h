/* serbench/text.h — reading the text files corpora ship: RFC 4180 CSV and the repair of
 * the encoding damage found in MELD and MELT label files (reference: docs/datasets.md).
 * Shared by dataset plugins so that none carries its own copy. */
#ifndef SERBENCH_TEXT_H
#define SERBENCH_TEXT_H

#include "common.h"
#include "error.h"

SB_BEGIN_DECLS

/* ---- CSV --------------------------------------------------------------------------- */

/* A CSV reader over a whole file held in memory. RFC 4180: fields separated by `delim`,
 * optionally quoted with '"' (a quote inside doubled), quoted fields may hold delimiters
 * and newlines; records end with LF or CRLF; a UTF-8 BOM at the start is skipped; a final
 * record without a newline is accepted. Fields are returned byte for byte (no encoding
 * repair; see sb_text_repair). Limits: 1 MiB per field, 4096 fields per record. */
typedef struct sb_csv sb_csv;

/* Read `path` (SB_ERR_IO naming it when unreadable). delim is ',' or '\t' (or any byte). */
SB_API sb_status sb_csv_open(const char *path, char delim, sb_csv **out, sb_error *err);
/* Parse `n` bytes (copied); `name` labels messages. */
SB_API sb_status sb_csv_open_mem(const char *data, size_t n, const char *name, char delim,
                                 sb_csv **out, sb_error *err);
/* The next record. On success *fields[0..*n_fields) are NUL-terminated strings borrowed
 * until the next call; at end of input *eof is set and *n_fields is 0. A malformed record
 * (an unclosed quote, text after a closing quote, a field over the limit) is SB_ERR_FORMAT
 * naming "file:line" and the column number. Blank lines are returned as one empty field. */
SB_API sb_status sb_csv_next(sb_csv *c, const char *const **fields, size_t *n_fields, int *eof,
                             sb_error *err);
/* Line number (1-based) where the record last returned starts. */
SB_API long sb_csv_line(const sb_csv *c);
/* The name given at open (the path). */
SB_API const char *sb_csv_name(const sb_csv *c);
SB_API void sb_csv_close(sb_csv **c);

/* ---- text repair ------------------------------------------------------------------- */

/* Nonzero when s[0..n) is valid UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
SB_API int sb_utf8_valid(const char *s, size_t n);

/* Repair text as the MELD/MELT files need (docs/datasets.md, "Encoding repair"):
 *  1. bytes that are not valid UTF-8 are decoded as Windows-1252;
 *  2. C1 control code points U+0080–U+009F are mapped through Windows-1252 (U+0092 → ’),
 *     and U+00A0 becomes a space;
 *  3. mojibake of UTF-8 read as Windows-1252 is undone (â€™ → ’, â€œ → “, â€ + U+009D → ”,
 *     â€” → —, â€“ → –, â€¦ → …, Ã© → é, and the other Ã/Â pairs of Latin-1 letters);
 *  4. the lossy forms seen in MELT (€™ → ’, €¦ → …, €œ → “, €“ → –, €” → —; also
 *     €˜ → ‘ and € + U+009D → ”) are repaired.
 * Steps 2-4 repeat until nothing changes, so text damaged twice is repaired and the repair
 * is idempotent: sb_text_repair of its own output returns it unchanged. The five bytes
 * Windows-1252 leaves undefined (0x81 0x8D 0x8F 0x90 0x9D) stay as their C1 code points.
 * Valid UTF-8 without the sequences above is returned unchanged. Thread-safe.
 * Returns valid UTF-8 in a new string (release with sb_free; NULL on allocation failure)
 * and sets *changed (if not NULL) when the output differs from the input. */
SB_API char *sb_text_repair(const char *s, size_t n, int *changed);

SB_END_DECLS

#endif
