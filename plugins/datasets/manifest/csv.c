/* plugins/datasets/manifest/csv.c — the manifest plugin's RFC 4180 reader (see csv.h).
 * Strict where leniency would hide damage (text after a closing quote, an unterminated
 * quote, NUL bytes), lenient where files in the wild differ harmlessly (LF vs CRLF, a
 * stray quote inside an unquoted field is kept as text). */
#include "csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbi_mcsv_init(sbi_mcsv *c, const char *data, size_t size, char delim, const char *path)
{
    memset(c, 0, sizeof *c);
    c->p = data;
    c->end = data + size;
    if (size >= 3 && (unsigned char)data[0] == 0xEF && (unsigned char)data[1] == 0xBB &&
        (unsigned char)data[2] == 0xBF)
        c->p += 3;
    c->delim = delim;
    c->line = 1;
    c->path = path ? path : "<manifest>";
}

void sbi_mcsv_free(sbi_mcsv *c)
{
    free(c->buf);
    free(c->offs);
    free(c->field);
    c->buf = NULL;
    c->offs = NULL;
    c->field = NULL;
    c->len = c->cap = c->cap_offs = c->cap_field = c->n = 0;
}

/* Record an error at path:line about column `col` (0-based): "column 3 ('text'): msg". */
static sb_status fail(sbi_mcsv *c, long line, sb_error *err, sb_status code, size_t col,
                      const char *msg)
{
    char where[600];
    snprintf(where, sizeof where, "%s:%ld", c->path, line);
    char colname[160];
    if (c->names && col < c->n_names)
        snprintf(colname, sizeof colname, "column %zu ('%.100s')", col + 1, c->names[col]);
    else
        snprintf(colname, sizeof colname, "column %zu", col + 1);
    c->status = code;
    return sb_error_set(err, code, where, "%s: %s", colname, msg);
}

/* Append one byte to the record buffer. */
static int put(sbi_mcsv *c, char ch)
{
    if (c->len == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        char *b = realloc(c->buf, cap);
        if (!b)
            return -1;
        c->buf = b;
        c->cap = cap;
    }
    c->buf[c->len++] = ch;
    return 0;
}

/* Close the current field, which started at buf offset `start`. */
static int end_field(sbi_mcsv *c, size_t start)
{
    if (put(c, '\0') != 0)
        return -1;
    if (c->n == c->cap_offs) {
        size_t cap = c->cap_offs ? c->cap_offs * 2 : 16;
        size_t *o = realloc(c->offs, cap * sizeof *o);
        if (!o)
            return -1;
        c->offs = o;
        c->cap_offs = cap;
    }
    c->offs[c->n++] = start;
    return 0;
}

int sbi_mcsv_next(sbi_mcsv *c, long *line, sb_error *err)
{
    /* Completely empty lines are not records: a trailing newline, blank separators. */
    while (c->p < c->end && (*c->p == '\n' || *c->p == '\r')) {
        if (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n')
            c->p++;
        c->p++;
        c->line++;
    }
    if (c->p >= c->end)
        return 0;

    long rec_line = c->line;
    *line = rec_line;
    c->len = 0;
    c->n = 0;
    for (;;) {
        size_t start = c->len;
        size_t col = c->n;
        if (col >= SBI_MCSV_MAX_FIELDS) {
            fail(c, rec_line, err, SB_ERR_FORMAT, col,
                 "more than 16384 fields in one record; is this really a CSV file?");
            return -1;
        }
        if (c->p < c->end && *c->p == '"') {
            long qline = c->line;
            c->p++;
            for (;;) {
                if (c->p >= c->end) {
                    fail(c, qline, err, SB_ERR_FORMAT, col,
                         "quoted field never closed; a quote inside a quoted field is "
                         "written as two quotes (\"\")");
                    return -1;
                }
                char ch = *c->p;
                if (ch == '"') {
                    if (c->p + 1 < c->end && c->p[1] == '"') {
                        c->p += 2;
                        if (put(c, '"') != 0)
                            goto nomem;
                    } else {
                        c->p++;
                        break;
                    }
                } else {
                    if (ch == '\0') {
                        fail(c, c->line, err, SB_ERR_FORMAT, col,
                             "NUL byte; the file is binary or UTF-16: save it as UTF-8");
                        return -1;
                    }
                    /* An embedded CRLF becomes LF: the same text whichever line ending the
                     * file was saved with. */
                    if (ch == '\r' && c->p + 1 < c->end && c->p[1] == '\n') {
                        c->p++;
                        ch = '\n';
                    }
                    if (ch == '\n' || ch == '\r')
                        c->line++;
                    c->p++;
                    if (put(c, ch) != 0)
                        goto nomem;
                }
                if (c->len - start > SBI_MCSV_MAX_FIELD) {
                    fail(c, qline, err, SB_ERR_FORMAT, col,
                         "field longer than 1 MiB; is a quote left open?");
                    return -1;
                }
            }
            if (c->p < c->end && *c->p != c->delim && *c->p != '\n' && *c->p != '\r') {
                char what[8];
                unsigned char b = (unsigned char)*c->p;
                if (b >= 0x20 && b < 0x7f)
                    snprintf(what, sizeof what, "'%c'", b);
                else
                    snprintf(what, sizeof what, "0x%02x", b);
                char msg[200];
                snprintf(msg, sizeof msg,
                         "%s after the closing quote; a quote inside a quoted field is written "
                         "as two quotes (\"\")",
                         what);
                fail(c, c->line, err, SB_ERR_FORMAT, col, msg);
                return -1;
            }
        } else {
            while (c->p < c->end && *c->p != c->delim && *c->p != '\n' && *c->p != '\r') {
                if (*c->p == '\0') {
                    fail(c, c->line, err, SB_ERR_FORMAT, col,
                         "NUL byte; the file is binary or UTF-16: save it as UTF-8");
                    return -1;
                }
                if (put(c, *c->p) != 0)
                    goto nomem;
                c->p++;
                if (c->len - start > SBI_MCSV_MAX_FIELD) {
                    fail(c, c->line, err, SB_ERR_FORMAT, col, "field longer than 1 MiB");
                    return -1;
                }
            }
        }
        if (end_field(c, start) != 0)
            goto nomem;
        if (c->p < c->end && *c->p == c->delim) {
            c->p++;
            continue;
        }
        if (c->p < c->end) { /* a line break ends the record */
            if (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n')
                c->p++;
            c->p++;
            c->line++;
        }
        break;
    }

    if (c->n > c->cap_field) {
        const char **f = realloc(c->field, c->n * sizeof *f);
        if (!f)
            goto nomem;
        c->field = f;
        c->cap_field = c->n;
    }
    for (size_t i = 0; i < c->n; i++)
        c->field[i] = c->buf + c->offs[i];
    return 1;

nomem:
    fail(c, rec_line, err, SB_ERR_NOMEM, c->n, "out of memory");
    return -1;
}
