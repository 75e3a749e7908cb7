/* plugins/datasets/manifest/csv.h — (internal to the manifest plugin) an RFC 4180 record
 * reader over a file already in memory: quoted fields with delimiters, doubled quotes and
 * line breaks inside, CRLF or LF (or lone CR) records, a leading UTF-8 BOM skipped. */
#ifndef SBI_MCSV_H
#define SBI_MCSV_H

#include <serbench/serbench.h>

/* A field longer than this is an error rather than a silent cut (bytes). */
#define SBI_MCSV_MAX_FIELD ((size_t)1 << 20)
/* A record with more fields than this is an error (protects against a file of commas). */
#define SBI_MCSV_MAX_FIELDS ((size_t)1 << 14)

/* Reader state. Zero-initialise through sbi_mcsv_init; release with sbi_mcsv_free. The
 * input buffer is borrowed and must outlive the reader. */
typedef struct sbi_mcsv {
    const char *p, *end; /* unread input */
    char delim;          /* ',' or '\t' */
    long line;           /* 1-based physical line of *p */
    const char *path;    /* for messages; borrowed */
    sb_status status;    /* the code of the last failure (also put in err) */
    /* the current record: n fields, each NUL-terminated, valid until the next call */
    char *buf;
    size_t len, cap;
    size_t *offs; /* [n] offset of field i in buf */
    size_t cap_offs;
    const char **field; /* [n] pointers into buf */
    size_t cap_field;
    size_t n;
    /* optional column names (the header) for messages; borrowed */
    const char *const *names;
    size_t n_names;
} sbi_mcsv;

/* Start reading data[0..size) (not necessarily NUL-terminated); skips a UTF-8 BOM. */
void sbi_mcsv_init(sbi_mcsv *c, const char *data, size_t size, char delim, const char *path);

/* Read the next record into c->field[0..c->n). Lines that are completely empty are
 * skipped (they are not records). *line receives the physical line the record starts on.
 * Returns 1 when a record was read, 0 at the end of the input, or -1 with err set
 * (SB_ERR_FORMAT naming path:line: a NUL byte, an unterminated quoted field, text after a
 * closing quote, a field over SBI_MCSV_MAX_FIELD bytes, too many fields; SB_ERR_NOMEM). */
int sbi_mcsv_next(sbi_mcsv *c, long *line, sb_error *err);

/* Free the record buffers (not the input). Safe on a reader that never read. */
void sbi_mcsv_free(sbi_mcsv *c);

#endif
