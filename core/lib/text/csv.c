/* core/lib/text/csv.c — the RFC 4180 CSV reader of serbench/text.h: the whole file in
 * memory, one record per call, quoted fields unescaped into a scratch buffer whose
 * pointers the caller borrows until the next call. */
#include <serbench/text.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define CSV_MAX_FIELD ((size_t)1 << 20) /* bytes per field */
#define CSV_MAX_FIELDS 4096             /* fields per record */

struct sb_csv {
    char *name;
    char *data; /* the input, NUL-terminated (not relied on: parsing uses n) */
    size_t n, pos;
    char delim;
    long line;       /* physical line of data[pos] (1-based) */
    size_t line_off; /* offset of the first byte of that line, for column numbers */
    long rec_line;   /* line where the record last returned starts */
    char *scratch;   /* unescaped fields, each NUL-terminated */
    size_t scratch_cap;
    size_t *offs; /* offset of each field in scratch */
    const char **fields;
    size_t fields_cap;
};

static sb_status csv_error(const sb_csv *c, long line, size_t off_in_line, sb_error *err,
                           const char *fmt, ...) SB_PRINTF(5, 6);
static sb_status csv_error(const sb_csv *c, long line, size_t off_in_line, sb_error *err,
                           const char *fmt, ...)
{
    char where[512], msg[1024];
    snprintf(where, sizeof where, "%.480s:%ld:%zu", c->name, line, off_in_line + 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sb_error_set(err, SB_ERR_FORMAT, where, "%s", msg);
}

static sb_status csv_init(char *data, size_t n, const char *name, char delim, sb_csv **out,
                          sb_error *err)
{
    sb_csv *c = calloc(1, sizeof *c);
    if (!c || !(c->name = sbi_strdup(name ? name : "(memory)"))) {
        free(c);
        free(data);
        return sb_error_set(err, SB_ERR_NOMEM, name, "out of memory opening a CSV");
    }
    c->data = data;
    c->n = n;
    c->delim = delim;
    c->line = 1;
    c->rec_line = 0;
    if (n >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        c->pos = c->line_off = 3; /* a BOM is not part of the first field */
    *out = c;
    return SB_OK;
}

sb_status sb_csv_open(const char *path, char delim, sb_csv **out, sb_error *err)
{
    *out = NULL;
    if (!path)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "sb_csv_open: no path given");
    struct stat st_path;
    if (stat(path, &st_path) == 0 && S_ISDIR(st_path.st_mode))
        return sb_error_set(err, SB_ERR_IO, path, "is a folder, not a CSV file");
    char *data = NULL;
    size_t n = 0;
    sb_status st = sbi_read_file(path, &data, &n, err);
    if (st != SB_OK)
        return st;
    return csv_init(data, n, path, delim, out, err);
}

sb_status sb_csv_open_mem(const char *data, size_t n, const char *name, char delim, sb_csv **out,
                          sb_error *err)
{
    *out = NULL;
    char *copy = malloc(n + 1);
    if (!copy)
        return sb_error_set(err, SB_ERR_NOMEM, name, "out of memory copying %zu bytes of CSV", n);
    if (n)
        memcpy(copy, data, n);
    copy[n] = '\0';
    return csv_init(copy, n, name, delim, out, err);
}

/* Room for `more` bytes in scratch beyond `len`. */
static int scratch_reserve(sb_csv *c, size_t len, size_t more)
{
    if (len + more <= c->scratch_cap)
        return 0;
    size_t cap = c->scratch_cap ? c->scratch_cap : 256;
    while (cap < len + more)
        cap *= 2;
    char *s = realloc(c->scratch, cap);
    if (!s)
        return -1;
    c->scratch = s;
    c->scratch_cap = cap;
    return 0;
}

static int fields_reserve(sb_csv *c, size_t k)
{
    if (k < c->fields_cap)
        return 0;
    size_t cap = c->fields_cap ? c->fields_cap * 2 : 16;
    size_t *o = realloc(c->offs, cap * sizeof *o);
    if (!o)
        return -1;
    c->offs = o;
    const char **f = realloc(c->fields, cap * sizeof *f);
    if (!f)
        return -1;
    c->fields = f;
    c->fields_cap = cap;
    return 0;
}

sb_status sb_csv_next(sb_csv *c, const char *const **fields, size_t *n_fields, int *eof,
                      sb_error *err)
{
    *n_fields = 0;
    *eof = 0;
    *fields = NULL;
    if (c->pos >= c->n) {
        *eof = 1;
        return SB_OK;
    }
    const char *d = c->data;
    const size_t n = c->n;
    size_t p = c->pos, len = 0, k = 0;
    c->rec_line = c->line;
    for (;;) { /* one field per iteration */
        if (k >= CSV_MAX_FIELDS)
            return csv_error(c, c->line, p - c->line_off, err,
                             "record has more than %d fields (the limit); is the delimiter "
                             "right?",
                             CSV_MAX_FIELDS);
        if (fields_reserve(c, k) != 0)
            return sb_error_set(err, SB_ERR_NOMEM, c->name, "out of memory reading a CSV");
        c->offs[k] = len;
        size_t start = len;
        if (p < n && d[p] == '"') {
            long q_line = c->line;
            size_t q_col = p - c->line_off;
            p++;
            for (;;) {
                if (p >= n)
                    return csv_error(c, q_line, q_col, err,
                                     "field %zu: quoted field is never closed (the file ends "
                                     "inside it); check for a stray '\"'",
                                     k + 1);
                char ch = d[p];
                if (ch == '"') {
                    if (p + 1 < n && d[p + 1] == '"') {
                        ch = '"';
                        p += 2;
                    } else {
                        p++;
                        break;
                    }
                } else {
                    p++;
                    if (ch == '\n') {
                        c->line++;
                        c->line_off = p;
                    }
                }
                if (len - start >= CSV_MAX_FIELD)
                    return csv_error(c, q_line, q_col, err,
                                     "field %zu is longer than %zu bytes (the limit); an "
                                     "unclosed quote?",
                                     k + 1, CSV_MAX_FIELD);
                if (scratch_reserve(c, len, 2) != 0)
                    return sb_error_set(err, SB_ERR_NOMEM, c->name, "out of memory reading a CSV");
                c->scratch[len++] = ch;
            }
            /* after the closing quote: a delimiter, a record end, or the end of input */
            if (p < n && d[p] != c->delim && d[p] != '\n' &&
                !(d[p] == '\r' && (p + 1 >= n || d[p + 1] == '\n')))
                return csv_error(c, c->line, p - c->line_off, err,
                                 "field %zu: text after the closing quote (a quote inside a "
                                 "quoted field must be doubled: \"\")",
                                 k + 1);
        } else {
            /* unquoted: up to the delimiter or the end of the line; bytes kept as they are */
            size_t b = p;
            while (p < n && d[p] != c->delim && d[p] != '\n')
                p++;
            size_t e = p;
            if (e > b && d[e - 1] == '\r' && (e >= n || d[e] == '\n'))
                e--; /* the CR of CRLF */
            if (e - b > CSV_MAX_FIELD)
                return csv_error(c, c->line, b - c->line_off, err,
                                 "field %zu is longer than %zu bytes (the limit)", k + 1,
                                 CSV_MAX_FIELD);
            if (scratch_reserve(c, len, e - b + 1) != 0)
                return sb_error_set(err, SB_ERR_NOMEM, c->name, "out of memory reading a CSV");
            memcpy(c->scratch + len, d + b, e - b);
            len += e - b;
        }
        if (scratch_reserve(c, len, 1) != 0)
            return sb_error_set(err, SB_ERR_NOMEM, c->name, "out of memory reading a CSV");
        c->scratch[len++] = '\0';
        k++;
        if (p < n && d[p] == c->delim) {
            p++;
            continue;
        }
        /* end of record: CRLF, LF or end of input */
        if (p < n && d[p] == '\r')
            p++;
        if (p < n && d[p] == '\n') {
            p++;
            c->line++;
            c->line_off = p;
        }
        break;
    }
    c->pos = p;
    for (size_t i = 0; i < k; i++)
        c->fields[i] = c->scratch + c->offs[i];
    *fields = c->fields;
    *n_fields = k;
    return SB_OK;
}

long sb_csv_line(const sb_csv *c)
{
    return c ? c->rec_line : 0;
}

const char *sb_csv_name(const sb_csv *c)
{
    return c ? c->name : NULL;
}

void sb_csv_close(sb_csv **c)
{
    if (!c || !*c)
        return;
    free((*c)->name);
    free((*c)->data);
    free((*c)->scratch);
    free((*c)->offs);
    free((*c)->fields);
    free(*c);
    *c = NULL;
}
