/* plugins/datasets/manifest/manifest.c — the `manifest` dataset plugin: any corpus listed
 * in a CSV/TSV or JSON Lines file, one utterance per row, with optional column renames,
 * declared or inferred classes, and spans into longer recordings. See docs/datasets.md. */
#include <serbench/serbench.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Our fields, in the order of field_name. */
enum {
    F_ID,
    F_AUDIO,
    F_START,
    F_END,
    F_CHANNEL,
    F_LABEL,
    F_VALUE,
    F_SPLIT,
    F_SPEAKER,
    F_DIALOGUE,
    F_TURN,
    F_TEXT,
    F_COUNT
};

static const char *const field_name[F_COUNT] = { "id",      "audio",    "start", "end",
                                                 "channel", "label",    "value", "split",
                                                 "speaker", "dialogue", "turn",  "text" };

/* How many distinct unknown JSONL keys are remembered (so each is logged once). */
#define MAX_UNKNOWN_KEYS 256

/* One row, parsed and checked, before the label space is known. Strings are owned;
 * NULL = not given. */
typedef struct rec {
    long line;
    int id_derived; /* id came from the audio file name, not an id column */
    char *id, *audio, *label, *split, *speaker, *dialogue, *text;
    double start, end, value; /* seconds, seconds (-1 = to the end), NAN = none */
    int32_t channel, turn;    /* -1 = none */
} rec;

typedef struct loader {
    const sb_host *host;
    sb_corpus *corpus;
    sb_error *err;
    const char *path;          /* the manifest, absolute; borrowed from opts */
    char *dir;                 /* its folder, for relative audio paths */
    const char *col[F_COUNT];  /* the file's column (key) for each field; borrowed */
    json_t *colmap;            /* the parsed `columns` option, owner of renamed col[] */
    char colnum[F_COUNT][32];  /* a column name YAML typed as an integer, as text */
    const char *split_default; /* or NULL */
    rec *recs;
    size_t n, cap;
    char *unknown[MAX_UNKNOWN_KEYS];
    size_t n_unknown;
} loader;

/* ---- small helpers ----------------------------------------------------------------- */

static void mlog(const loader *L, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void mlog(const loader *L, sb_log_level level, const char *fmt, ...)
{
    if (!L->host || !L->host->log)
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    L->host->log(L->host, level, "%s", buf);
}

/* An error about line `line` of the manifest: where = "path:line". */
static sb_status row_error(loader *L, long line, sb_status code, const char *fmt, ...)
    SB_PRINTF(4, 5);
static sb_status row_error(loader *L, long line, sb_status code, const char *fmt, ...)
{
    char where[600], msg[1400];
    snprintf(where, sizeof where, "%s:%ld", L->path, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sb_error_set(L->err, code, where, "%s", msg);
}

/* "column 'start'", or "column 'onset' (field start)" when renamed. */
static const char *colref(const loader *L, int f, char *buf, size_t size)
{
    if (strcmp(L->col[f], field_name[f]) == 0)
        snprintf(buf, size, "column '%.100s'", L->col[f]);
    else
        snprintf(buf, size, "column '%.100s' (field %s)", L->col[f], field_name[f]);
    return buf;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Trimmed copy of s into *out, or *out = NULL when s is NULL or blank. Returns -1 only
 * when out of memory. `trim` = 0 keeps the text exactly (transcripts). */
static int dup_field(const char *s, int trim, char **out)
{
    *out = NULL;
    if (!s)
        return 0;
    size_t b = 0, e = strlen(s);
    if (trim) {
        while (b < e && is_space(s[b]))
            b++;
        while (e > b && is_space(s[e - 1]))
            e--;
    }
    if (e == b)
        return 0;
    char *d = malloc(e - b + 1);
    if (!d)
        return -1;
    memcpy(d, s + b, e - b);
    d[e - b] = '\0';
    *out = d;
    return 0;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
static int utf8_valid(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            min = 0x80;
            c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            min = 0x800;
            c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            min = 0x10000;
            c &= 0x07;
        } else {
            return 0;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return 0; /* also stops at the terminating NUL */
            c = (c << 6) | (s[i] & 0x3Fu);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return 0;
        s += n + 1;
    }
    return 1;
}

/* Parse a number of field f on `line`. Blank → *has = 0. Returns SB_OK or an error
 * naming file:line and the column. */
static sb_status parse_double(loader *L, long line, int f, const char *s, double *out, int *has)
{
    char ref[160], buf[128];
    *has = 0;
    if (!s)
        return SB_OK;
    size_t b = 0, e = strlen(s);
    while (b < e && is_space(s[b]))
        b++;
    while (e > b && is_space(s[e - 1]))
        e--;
    if (e == b)
        return SB_OK;
    if (e - b >= sizeof buf)
        return row_error(L, line, SB_ERR_FORMAT, "%s: '%.40s...' is not a number",
                         colref(L, f, ref, sizeof ref), s + b);
    memcpy(buf, s + b, e - b);
    buf[e - b] = '\0';
    char *end = NULL;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end != '\0' || errno == ERANGE || !isfinite(v))
        return row_error(L, line, SB_ERR_FORMAT, "%s: '%s' is not a finite number",
                         colref(L, f, ref, sizeof ref), buf);
    *out = v;
    *has = 1;
    return SB_OK;
}

/* An integer in [-1, INT32_MAX] (-1 = none); blank → *out untouched. */
static sb_status parse_int(loader *L, long line, int f, const char *s, int32_t *out)
{
    char ref[160];
    double v;
    int has;
    sb_status st = parse_double(L, line, f, s, &v, &has);
    if (st != SB_OK || !has)
        return st;
    if (v != floor(v) || v < -1 || v > 2147483647.0)
        return row_error(L, line, SB_ERR_FORMAT,
                         "%s: '%.40s' is not a whole number between -1 and 2147483647",
                         colref(L, f, ref, sizeof ref), s);
    *out = (int32_t)v;
    return SB_OK;
}

/* Seconds as short text for derived ids: 1.5 → "1.5", 12 → "12", 0.25 → "0.25"
 * (millisecond resolution). */
static void fmt_seconds(double s, char *buf, size_t size)
{
    snprintf(buf, size, "%.3f", s);
    char *dot = strchr(buf, '.');
    if (!dot)
        return;
    char *e = buf + strlen(buf);
    while (e > dot + 1 && e[-1] == '0')
        *--e = '\0';
    if (e == dot + 1)
        *dot = '\0';
}

static void rec_free(rec *r)
{
    free(r->id);
    free(r->audio);
    free(r->label);
    free(r->split);
    free(r->speaker);
    free(r->dialogue);
    free(r->text);
}

static void loader_free(loader *L)
{
    for (size_t i = 0; i < L->n; i++)
        rec_free(&L->recs[i]);
    free(L->recs);
    free(L->dir);
    for (size_t i = 0; i < L->n_unknown; i++)
        free(L->unknown[i]);
    if (L->colmap)
        json_decref(L->colmap);
}

/* ---- one row ----------------------------------------------------------------------- */

/* Check and store one row. v[f] is field f's text as found in the file, or NULL when the
 * row has no such column/key. */
static sb_status take_row(loader *L, long line, const char *const v[F_COUNT])
{
    char ref[160];
    for (int f = 0; f < F_COUNT; f++)
        if (v[f] && !utf8_valid((const unsigned char *)v[f]))
            return row_error(L, line, SB_ERR_FORMAT,
                             "%s is not valid UTF-8; convert the file to UTF-8 "
                             "(e.g. iconv -f latin1 -t utf-8)",
                             colref(L, f, ref, sizeof ref));

    rec r;
    memset(&r, 0, sizeof r);
    r.line = line;
    r.start = 0.0;
    r.end = -1.0;
    r.value = (double)NAN;
    r.channel = -1;
    r.turn = -1;
    sb_status st = SB_OK;
    int span = 0, has;

    if (dup_field(v[F_AUDIO], 1, &r.audio) != 0 || dup_field(v[F_ID], 1, &r.id) != 0 ||
        dup_field(v[F_LABEL], 1, &r.label) != 0 || dup_field(v[F_SPLIT], 1, &r.split) != 0 ||
        dup_field(v[F_SPEAKER], 1, &r.speaker) != 0 ||
        dup_field(v[F_DIALOGUE], 1, &r.dialogue) != 0 || dup_field(v[F_TEXT], 0, &r.text) != 0)
        goto nomem;
    if (!r.audio) {
        st = row_error(L, line, SB_ERR_FORMAT, "%s is empty; every row needs an audio file",
                       colref(L, F_AUDIO, ref, sizeof ref));
        goto fail;
    }
    if ((st = parse_double(L, line, F_START, v[F_START], &r.start, &has)) != SB_OK)
        goto fail;
    span |= has;
    if (has && r.start < 0) {
        st = row_error(L, line, SB_ERR_FORMAT, "%s: start %g s is negative",
                       colref(L, F_START, ref, sizeof ref), r.start);
        goto fail;
    }
    if ((st = parse_double(L, line, F_END, v[F_END], &r.end, &has)) != SB_OK)
        goto fail;
    span |= has;
    if (has && r.end <= r.start) {
        st = row_error(L, line, SB_ERR_FORMAT, "%s: end %g s is not after start %g s",
                       colref(L, F_END, ref, sizeof ref), r.end, r.start);
        goto fail;
    }
    if ((st = parse_double(L, line, F_VALUE, v[F_VALUE], &r.value, &has)) != SB_OK)
        goto fail;
    if ((st = parse_int(L, line, F_CHANNEL, v[F_CHANNEL], &r.channel)) != SB_OK ||
        (st = parse_int(L, line, F_TURN, v[F_TURN], &r.turn)) != SB_OK)
        goto fail;

    if (!r.split) {
        if (!L->split_default) {
            st = row_error(L, line, SB_ERR_FORMAT,
                           "%s is empty and the split_default option is not set",
                           colref(L, F_SPLIT, ref, sizeof ref));
            goto fail;
        }
        if (!(r.split = strdup(L->split_default)))
            goto nomem;
    }

    if (!r.id) {
        /* The audio file's stem, plus the start time when the row is a span of it, so
         * several spans of one recording get distinct ids. */
        const char *base = strrchr(r.audio, '/');
        base = base ? base + 1 : r.audio;
        const char *dot = strrchr(base, '.');
        size_t len = (dot && dot != base) ? (size_t)(dot - base) : strlen(base);
        if (len == 0) {
            st = row_error(L, line, SB_ERR_FORMAT,
                           "cannot make an id from the audio path '%.200s'; add an id column",
                           r.audio);
            goto fail;
        }
        char sec[64] = "";
        if (span) {
            sec[0] = '_';
            fmt_seconds(r.start, sec + 1, sizeof sec - 1);
        }
        if (!(r.id = malloc(len + strlen(sec) + 1)))
            goto nomem;
        memcpy(r.id, base, len);
        strcpy(r.id + len, sec);
        r.id_derived = 1;
    }

    if (r.audio[0] != '/') {
        const char *rel = r.audio;
        while (rel[0] == '.' && rel[1] == '/')
            rel += 2;
        size_t nd = strlen(L->dir), nr = strlen(rel);
        char *abs = malloc(nd + 1 + nr + 1);
        if (!abs)
            goto nomem;
        memcpy(abs, L->dir, nd);
        abs[nd] = '/';
        memcpy(abs + nd + 1, rel, nr + 1);
        free(r.audio);
        r.audio = abs;
    }

    if (L->n == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        rec *p = realloc(L->recs, cap * sizeof *p);
        if (!p)
            goto nomem;
        L->recs = p;
        L->cap = cap;
    }
    L->recs[L->n++] = r;
    return SB_OK;

nomem:
    st = row_error(L, line, SB_ERR_NOMEM, "out of memory");
fail:
    rec_free(&r);
    return st;
}

static sb_status check_cancel(loader *L, size_t i)
{
    if ((i & 4095) == 0 && L->host && L->host->cancelled && L->host->cancelled(L->host))
        return sb_error_set(L->err, SB_ERR_CANCELLED, L->path, "cancelled while reading");
    return SB_OK;
}

/* A field longer than this is an error, as sb_csv does for CSV fields (bytes). */
#define MAX_FIELD_BYTES ((size_t)1 << 20)

/* ---- CSV --------------------------------------------------------------------------- */

/* The next record that is not a blank line; *line is where it starts. */
static sb_status next_record(sb_csv *c, const char *const **field, size_t *nf, int *eof, long *line,
                             sb_error *err)
{
    for (;;) {
        sb_status st = sb_csv_next(c, field, nf, eof, err);
        if (st != SB_OK || *eof)
            return st;
        *line = sb_csv_line(c);
        if (!(*nf == 1 && (*field)[0][0] == '\0'))
            return SB_OK;
    }
}

static sb_status read_csv(loader *L, const char *data, size_t size, char delim)
{
    /* The SDK's RFC 4180 reader (serbench/text.h); blank lines are not records here. */
    sb_csv *c = NULL;
    const char *const *field = NULL;
    size_t nf = 0;
    int eof = 0;
    char **hdr = NULL;
    size_t n_cols = 0;
    sb_status st = SB_OK;
    long line = 0;
    int idx[F_COUNT];

    /* A NUL byte would silently cut a field short: refuse the file, naming the line. */
    const char *nul = memchr(data, '\0', size);
    if (nul) {
        long nl = 1;
        for (const char *q = data; q < nul; q++)
            nl += *q == '\n';
        st = row_error(L, nl, SB_ERR_FORMAT,
                       "a NUL byte: this is not a text file (or it is UTF-16; save it as UTF-8)");
        goto done;
    }
    if ((st = sb_csv_open_mem(data, size, L->path, delim, &c, L->err)) != SB_OK)
        goto done;
    if ((st = next_record(c, &field, &nf, &eof, &line, L->err)) != SB_OK)
        goto done;
    if (eof) {
        st = sb_error_set(L->err, SB_ERR_FORMAT, L->path,
                          "the file is empty; a CSV manifest starts with a header row naming "
                          "its columns (at least 'audio')");
        goto done;
    }

    /* The header: column names, trimmed. */
    n_cols = nf;
    if (!(hdr = calloc(n_cols, sizeof *hdr))) {
        st = row_error(L, line, SB_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t j = 0; j < n_cols; j++) {
        if (dup_field(field[j], 1, &hdr[j]) != 0) {
            st = row_error(L, line, SB_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (!hdr[j] && !(hdr[j] = strdup(""))) {
            st = row_error(L, line, SB_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    long hdr_line = line;
    for (int f = 0; f < F_COUNT; f++) {
        idx[f] = -1;
        for (size_t j = 0; j < n_cols; j++) {
            if (strcmp(hdr[j], L->col[f]) != 0)
                continue;
            if (idx[f] >= 0) {
                st = row_error(L, line, SB_ERR_FORMAT,
                               "column '%.100s' appears twice in the header (columns %d and "
                               "%zu); rename one",
                               hdr[j], idx[f] + 1, j + 1);
                goto done;
            }
            idx[f] = (int)j;
        }
    }

    /* Missing required columns; the message lists what the header does have. */
    if (idx[F_AUDIO] < 0 || (idx[F_SPLIT] < 0 && !L->split_default)) {
        char have[700] = "";
        size_t k = 0;
        for (size_t j = 0; j < n_cols && k < sizeof have - 8; j++)
            k += (size_t)snprintf(have + k, sizeof have - k, "%s'%.60s'", j ? ", " : "", hdr[j]);
        if (k >= sizeof have - 8)
            strcpy(have + sizeof have - 8, ", ...");
        if (idx[F_AUDIO] < 0)
            st = row_error(L, hdr_line, SB_ERR_FORMAT,
                           "no column '%.100s' in the header (it has %s); name the audio "
                           "column '%s' or map it with the columns option, e.g. "
                           "columns: {audio: wav_path}",
                           L->col[F_AUDIO], have, field_name[F_AUDIO]);
        else
            st = row_error(L, hdr_line, SB_ERR_FORMAT,
                           "no column '%.100s' in the header (it has %s); add one, map it "
                           "with the columns option, or set split_default",
                           L->col[F_SPLIT], have);
        goto done;
    }

    /* Columns we do not read, once, for the curious. */
    {
        char unused[1024] = "";
        size_t k = 0, n_unused = 0;
        for (size_t j = 0; j < n_cols; j++) {
            int used = 0;
            for (int f = 0; f < F_COUNT; f++)
                used |= idx[f] == (int)j;
            if (used)
                continue;
            n_unused++;
            if (k < sizeof unused - 8)
                k += (size_t)snprintf(unused + k, sizeof unused - k, "%s'%.60s'",
                                      n_unused > 1 ? ", " : "", hdr[j]);
        }
        if (n_unused)
            mlog(L, SB_LOG_DEBUG, "%s: ignoring %zu column%s: %s", L->path, n_unused,
                 n_unused == 1 ? "" : "s", unused);
    }

    for (size_t i = 1;; i++) {
        if ((st = check_cancel(L, i)) != SB_OK)
            goto done;
        if ((st = next_record(c, &field, &nf, &eof, &line, L->err)) != SB_OK)
            goto done;
        if (eof)
            break;
        if (nf != n_cols) {
            st = row_error(L, line, SB_ERR_FORMAT,
                           "row has %zu field%s but the header (line %ld) has %zu; a field "
                           "holding the delimiter must be quoted",
                           nf, nf == 1 ? "" : "s", hdr_line, n_cols);
            goto done;
        }
        const char *v[F_COUNT];
        for (int f = 0; f < F_COUNT; f++)
            v[f] = idx[f] >= 0 ? field[idx[f]] : NULL;
        if ((st = take_row(L, line, v)) != SB_OK)
            goto done;
    }

done:
    if (hdr)
        for (size_t j = 0; j < n_cols; j++)
            free(hdr[j]);
    free(hdr);
    sb_csv_close(&c);
    return st;
}

/* ---- JSON Lines -------------------------------------------------------------------- */

static const char *json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Log a key no field reads, the first time it is seen. */
static void note_unknown_key(loader *L, const char *key, long line)
{
    for (size_t i = 0; i < L->n_unknown; i++)
        if (strcmp(L->unknown[i], key) == 0)
            return;
    if (L->n_unknown == MAX_UNKNOWN_KEYS)
        return;
    char *k = strdup(key);
    if (!k)
        return;
    L->unknown[L->n_unknown++] = k;
    mlog(L, SB_LOG_DEBUG, "%s:%ld: ignoring key '%.100s'", L->path, line, key);
}

static sb_status jsonl_row(loader *L, long line, json_t *o)
{
    char ref[160];
    char num[F_COUNT][48];
    const char *v[F_COUNT];
    for (int f = 0; f < F_COUNT; f++) {
        json_t *j = json_object_get(o, L->col[f]);
        v[f] = NULL;
        if (!j || json_is_null(j))
            continue;
        if (json_is_string(j)) {
            if (json_string_length(j) > MAX_FIELD_BYTES)
                return row_error(L, line, SB_ERR_FORMAT, "%s is longer than 1 MiB",
                                 colref(L, f, ref, sizeof ref));
            v[f] = json_string_value(j);
        } else if (json_is_integer(j)) {
            snprintf(num[f], sizeof num[f], "%" JSON_INTEGER_FORMAT, json_integer_value(j));
            v[f] = num[f];
        } else if (json_is_real(j)) {
            /* %.17g round-trips a double exactly, so CSV "1.25" and JSON 1.25 agree. */
            snprintf(num[f], sizeof num[f], "%.17g", json_real_value(j));
            v[f] = num[f];
        } else {
            return row_error(L, line, SB_ERR_FORMAT, "%s holds %s; expected a string or a number",
                             colref(L, f, ref, sizeof ref), json_kind(j));
        }
    }
    if (!v[F_AUDIO])
        return row_error(L, line, SB_ERR_FORMAT,
                         "no key '%.100s'; every line needs an audio path (rename the key with "
                         "the columns option, e.g. columns: {audio: wav_path})",
                         L->col[F_AUDIO]);

    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        int used = 0;
        for (int f = 0; f < F_COUNT && !used; f++)
            used = strcmp(key, L->col[f]) == 0;
        if (!used)
            note_unknown_key(L, key, line);
    }
    return take_row(L, line, v);
}

static sb_status read_jsonl(loader *L, const char *data, size_t size)
{
    const char *p = data, *end = data + size;
    if (size >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF)
        p += 3;
    long line = 0;
    int seen_content = 0;
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        const char *s = p;
        p = nl ? nl + 1 : end;
        while (s < e && is_space(*s))
            s++;
        while (e > s && is_space(e[-1]))
            e--;
        if (s == e)
            continue; /* blank line */

        sb_status st = check_cancel(L, (size_t)line);
        if (st != SB_OK)
            return st;
        json_error_t je;
        json_t *o = json_loadb(s, (size_t)(e - s), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
        /* A whole JSON array (one line or pretty-printed) is a common mix-up. */
        if (!seen_content && *s == '[' && (!o || json_is_array(o))) {
            json_decref(o);
            return row_error(L, line, SB_ERR_FORMAT,
                             "this is a JSON array; a JSONL manifest has one JSON object per "
                             "line (convert with: jq -c '.[]' FILE)");
        }
        if (!o)
            return row_error(L, line, SB_ERR_FORMAT, "malformed JSON at column %d: %s", je.column,
                             je.text);
        seen_content = 1;
        if (!json_is_object(o)) {
            st = row_error(L, line, SB_ERR_FORMAT,
                           "the line holds %s; each line must be one JSON object", json_kind(o));
        } else {
            st = jsonl_row(L, line, o);
        }
        json_decref(o);
        if (st != SB_OK)
            return st;
    }
    return SB_OK;
}

/* ---- loading ----------------------------------------------------------------------- */

/* Read a whole file into a malloc'd buffer (not NUL-terminated). */
static sb_status read_all(loader *L, const sb_opts *opts, char **out, size_t *size)
{
    *out = NULL;
    *size = 0;
    FILE *fp = fopen(L->path, "rb");
    struct stat sta;
    if (!fp)
        return sb_error_set(L->err, SB_ERR_IO, L->path,
                            "cannot open the manifest: %s (path set at %s)", strerror(errno),
                            sb_opts_where(opts, "path"));
    if (fstat(fileno(fp), &sta) == 0 && S_ISDIR(sta.st_mode)) {
        fclose(fp);
        return sb_error_set(L->err, SB_ERR_IO, L->path,
                            "is a folder; path must name a CSV or JSONL file (set at %s)",
                            sb_opts_where(opts, "path"));
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(fp);
            return sb_error_set(L->err, SB_ERR_NOMEM, L->path, "out of memory reading the file");
        }
        n += fread(buf + n, 1, cap - n, fp);
        if (n < cap)
            break;
        char *b = realloc(buf, cap * 2);
        if (!b)
            free(buf);
        buf = b;
        cap *= 2;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return sb_error_set(L->err, SB_ERR_IO, L->path, "read error");
    }
    /* Trim to the content: less memory, and an overrun is caught by sanitizers. */
    char *fit = realloc(buf, n ? n : 1);
    *out = fit ? fit : buf;
    *size = n;
    return SB_OK;
}

static int has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), k = strlen(ext);
    return n > k && strcasecmp(path + n - k, ext) == 0;
}

/* The `columns` option: {our_field: file_column, ...}. */
static sb_status apply_columns(loader *L, const sb_opts *opts)
{
    for (int f = 0; f < F_COUNT; f++)
        L->col[f] = field_name[f];
    const char *text = sb_opts_json(opts, "columns");
    if (!text || !*text)
        return SB_OK;
    const char *where = sb_opts_where(opts, "columns");
    json_error_t je;
    L->colmap = json_loads(text, 0, &je);
    if (!L->colmap || !json_is_object(L->colmap))
        return sb_error_set(L->err, SB_ERR_CONFIG, where,
                            "columns must be a mapping from field names to column names, e.g. "
                            "{audio: wav_path, label: emotion}");
    const char *key;
    json_t *val;
    json_object_foreach(L->colmap, key, val)
    {
        int f = 0;
        while (f < F_COUNT && strcmp(key, field_name[f]) != 0)
            f++;
        if (f == F_COUNT)
            return sb_error_set(L->err, SB_ERR_CONFIG, where,
                                "columns: '%.100s' is not a field; the fields are id, audio, "
                                "start, end, channel, label, value, split, speaker, dialogue, "
                                "turn, text",
                                key);
        if (json_is_integer(val)) { /* `label: 2024` names a column "2024" */
            snprintf(L->colnum[f], sizeof L->colnum[f], "%" JSON_INTEGER_FORMAT,
                     json_integer_value(val));
            L->col[f] = L->colnum[f];
            continue;
        }
        if (!json_is_string(val) || json_string_length(val) == 0)
            return sb_error_set(L->err, SB_ERR_CONFIG, where,
                                "columns: the value of '%s' must be a column name (a non-empty "
                                "string; quote it if YAML reads it as something else)",
                                key);
        L->col[f] = json_string_value(val);
    }
    return SB_OK;
}

/* A class name with its index in the label space, for bsearch. */
typedef struct cls {
    const char *name;
    int idx;
} cls;

static int cls_cmp(const void *a, const void *b)
{
    return strcmp(((const cls *)a)->name, ((const cls *)b)->name);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "'a', 'b', 'c'" from names[0..n), cut to fit. */
static void join_names(const char *const *names, int n, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (k + 80 > size) {
            snprintf(buf + k, size - k, ", ... (%d in all)", n);
            return;
        }
        k += (size_t)snprintf(buf + k, size - k, "%s'%.60s'", i ? ", " : "", names[i]);
    }
}

/* Declare the label space (given or inferred) and give each record its class index in
 * labels[]. */
static sb_status resolve_classes(loader *L, const sb_opts *opts, int32_t *labels)
{
    sb_status st = SB_OK;
    const char **names = NULL;
    cls *sorted = NULL;
    int n = 0;
    const char *space = sb_opts_str(opts, "label_space");
    if (!space || !*space)
        space = "manifest";

    if (sb_opts_has(opts, "classes")) {
        size_t m = sb_opts_list_len(opts, "classes");
        const char *where = sb_opts_where(opts, "classes");
        if (m == 0 || m > 100000)
            return sb_error_set(L->err, SB_ERR_CONFIG, where,
                                "classes must list between 1 and 100000 class names");
        if (!(names = calloc(m, sizeof *names)))
            return sb_error_set(L->err, SB_ERR_NOMEM, L->path, "out of memory");
        n = (int)m;
        for (int i = 0; i < n; i++) {
            names[i] = sb_opts_list_item(opts, "classes", (size_t)i);
            if (!names[i] || !*names[i]) {
                st = sb_error_set(L->err, SB_ERR_CONFIG, where, "classes: item %d is empty", i + 1);
                goto done;
            }
        }
    } else {
        size_t m = 0;
        for (size_t i = 0; i < L->n; i++)
            m += L->recs[i].label != NULL;
        if (m == 0) {
            if (L->n)
                mlog(L, SB_LOG_INFO,
                     "%s: no labels and no classes option: every utterance "
                     "is unlabelled",
                     L->path);
            for (size_t i = 0; i < L->n; i++)
                labels[i] = -1;
            return SB_OK;
        }
        char **all = malloc(m * sizeof *all);
        if (!all)
            return sb_error_set(L->err, SB_ERR_NOMEM, L->path, "out of memory");
        m = 0;
        for (size_t i = 0; i < L->n; i++)
            if (L->recs[i].label)
                all[m++] = L->recs[i].label;
        qsort(all, m, sizeof *all, str_cmp);
        size_t u = 0;
        for (size_t i = 0; i < m; i++)
            if (u == 0 || strcmp(all[u - 1], all[i]) != 0)
                all[u++] = all[i];
        if (u > 100000) {
            free(all);
            return sb_error_set(L->err, SB_ERR_FORMAT, L->path,
                                "more than 100000 distinct labels; is the label column a "
                                "continuous value? (map it to 'value')");
        }
        names = (const char **)all;
        n = (int)u;
        char list[1024];
        join_names(names, n, list, sizeof list);
        mlog(L, SB_LOG_INFO,
             "%s: classes not set; using the %d labels found, sorted: %s (set classes to fix "
             "their order)",
             L->path, n, list);
    }

    if (!(sorted = malloc((size_t)n * sizeof *sorted))) {
        st = sb_error_set(L->err, SB_ERR_NOMEM, L->path, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        sorted[i] = (cls){ names[i], i };
    qsort(sorted, (size_t)n, sizeof *sorted, cls_cmp);
    for (int i = 1; i < n; i++)
        if (strcmp(sorted[i - 1].name, sorted[i].name) == 0) {
            st = sb_error_set(L->err, SB_ERR_CONFIG, sb_opts_where(opts, "classes"),
                              "classes: '%.100s' is listed twice", sorted[i].name);
            goto done;
        }

    for (size_t i = 0; i < L->n; i++) {
        const rec *r = &L->recs[i];
        labels[i] = -1;
        if (!r->label)
            continue;
        cls key = { r->label, 0 };
        const cls *hit = bsearch(&key, sorted, (size_t)n, sizeof *sorted, cls_cmp);
        if (!hit) {
            char ref[160], list[1000];
            join_names(names, n, list, sizeof list);
            st = row_error(L, r->line, SB_ERR_FORMAT,
                           "%s: label '%.100s' is not one of the %d classes [%s]; fix the row or "
                           "add the label to classes",
                           colref(L, F_LABEL, ref, sizeof ref), r->label, n, list);
            goto done;
        }
        labels[i] = hit->idx;
    }
    st = sb_corpus_set_classes(L->corpus, space, names, n, L->err);

done:
    free(sorted);
    free(names); /* the array only: strings belong to opts or to the records */
    return st;
}

static sb_status manifest_load(const sb_host *host, const sb_opts *opts, sb_corpus *corpus,
                               sb_error *err)
{
    loader L;
    memset(&L, 0, sizeof L);
    L.host = host;
    L.corpus = corpus;
    L.err = err;
    L.path = sb_opts_str(opts, "path");
    if (!L.path || !*L.path)
        return sb_error_set(err, SB_ERR_CONFIG, NULL, "manifest: the path option is required");
    L.split_default =
        sb_opts_has(opts, "split_default") ? sb_opts_str(opts, "split_default") : NULL;
    if (L.split_default && !*L.split_default)
        L.split_default = NULL;
    int check_audio = sb_opts_bool(opts, "check_audio");

    char *data = NULL;
    size_t size = 0;
    int32_t *labels = NULL;
    size_t base = sb_corpus_size(corpus);
    size_t n_missing = 0;
    sb_status st;

    const char *slash = strrchr(L.path, '/');
    if (!slash)
        L.dir = strdup(".");
    else if (slash == L.path)
        L.dir = strdup("/");
    else
        L.dir = strndup(L.path, (size_t)(slash - L.path));
    if (!L.dir) {
        st = sb_error_set(err, SB_ERR_NOMEM, L.path, "out of memory");
        goto done;
    }
    if (strcmp(L.dir, "/") == 0)
        L.dir[0] = '\0'; /* joined as "" + "/" + rel */

    if ((st = apply_columns(&L, opts)) != SB_OK)
        goto done;

    /* Format: the option, else the extension. TSV is CSV with tabs. */
    const char *format = sb_opts_str(opts, "format");
    int jsonl;
    char delim = (has_ext(L.path, ".tsv") || has_ext(L.path, ".tab")) ? '\t' : ',';
    if (format && strcmp(format, "csv") == 0) {
        jsonl = 0;
    } else if (format && strcmp(format, "jsonl") == 0) {
        jsonl = 1;
    } else if (has_ext(L.path, ".csv") || delim == '\t') {
        jsonl = 0;
    } else if (has_ext(L.path, ".jsonl") || has_ext(L.path, ".json") ||
               has_ext(L.path, ".ndjson")) {
        jsonl = 1;
    } else {
        st = sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "path"),
                          "cannot tell the format of %s from its extension (.csv, .tsv, "
                          ".jsonl, .json); set format: csv or format: jsonl",
                          L.path);
        goto done;
    }

    if ((st = read_all(&L, opts, &data, &size)) != SB_OK)
        goto done;
    st = jsonl ? read_jsonl(&L, data, size) : read_csv(&L, data, size, delim);
    free(data);
    data = NULL;
    if (st != SB_OK)
        goto done;

    if (L.n && !(labels = malloc(L.n * sizeof *labels))) {
        st = sb_error_set(err, SB_ERR_NOMEM, L.path, "out of memory");
        goto done;
    }
    if ((st = resolve_classes(&L, opts, labels)) != SB_OK)
        goto done;

    for (size_t i = 0; i < L.n; i++) {
        const rec *r = &L.recs[i];
        if ((st = check_cancel(&L, i + 1)) != SB_OK)
            goto done;
        long other = sb_corpus_find(corpus, r->id);
        if (other >= 0) {
            if ((size_t)other >= base)
                st = row_error(&L, r->line, SB_ERR_FORMAT,
                               "duplicate id '%.200s': line %ld has it too%s", r->id,
                               L.recs[(size_t)other - base].line,
                               r->id_derived ? " (ids come from the audio file names here; add "
                                               "an id column)"
                                             : "");
            else
                st = row_error(&L, r->line, SB_ERR_FORMAT,
                               "duplicate id '%.200s': already in the corpus", r->id);
            goto done;
        }
        sb_utt u;
        sb_utt_init(&u);
        u.id = r->id;
        u.dialogue = r->dialogue;
        u.turn = r->turn;
        u.speaker = r->speaker;
        u.audio = r->audio;
        u.start = r->start;
        u.end = r->end;
        u.channel = r->channel;
        u.text = r->text;
        u.split = r->split;
        u.label = labels[i];
        u.value = r->value;
        if ((st = sb_corpus_add(corpus, &u, err)) != SB_OK)
            goto done;
        if (check_audio) {
            struct stat sa;
            if (stat(r->audio, &sa) != 0) {
                sb_corpus_warn_item(corpus, r->id, "audio file %s: %s (%s:%ld)", r->audio,
                                    strerror(errno), L.path, r->line);
                n_missing++;
            } else if (!S_ISREG(sa.st_mode)) {
                sb_corpus_warn_item(corpus, r->id, "audio path %s is not a regular file (%s:%ld)",
                                    r->audio, L.path, r->line);
                n_missing++;
            }
        }
        if (host && host->progress && ((i + 1) % 4096 == 0 || i + 1 == L.n))
            host->progress(host, i + 1, L.n);
    }
    if (n_missing)
        mlog(&L, SB_LOG_WARN, "%s: %zu of %zu audio files are missing or unreadable", L.path,
             n_missing, L.n);
    mlog(&L, SB_LOG_INFO, "%s: %zu utterances (%s)", L.path, L.n, jsonl ? "JSONL" : "CSV");
    st = SB_OK;

done:
    free(data);
    free(labels);
    loader_free(&L);
    return st;
}

/* ---- the descriptor ---------------------------------------------------------------- */

static const sb_option manifest_options[] = {
    { "path", SB_OPT_PATH, NULL, SB_OPT_REQUIRED, 0, 0, NULL,
      "the manifest: a CSV/TSV or JSON Lines file, one utterance per row" },
    { "format", SB_OPT_ENUM, "auto", 0, 0, 0, "auto|csv|jsonl",
      "file format; auto decides by extension (.csv, .tsv, .jsonl, .json)" },
    { "classes", SB_OPT_LIST, NULL, SB_OPT_HAS_MIN, 1, 0, NULL,
      "the ordered label space; unset: the sorted distinct labels found in the file" },
    { "label_space", SB_OPT_STRING, "manifest", 0, 0, 0, NULL, "name of the label space" },
    { "columns", SB_OPT_MAP, NULL, 0, 0, 0, NULL,
      "renames from field to the file's column, e.g. {audio: wav_path, label: emotion}" },
    { "split_default", SB_OPT_STRING, NULL, 0, 0, 0, NULL,
      "split of rows that have none (no split column, or an empty cell)" },
    { "check_audio", SB_OPT_BOOL, "false", 0, 0, 0, NULL,
      "check at load that each audio file exists and leave missing ones out (default: the "
      "feature stage checks audio under the dataset's on_missing_audio policy)" },
    { NULL, 0, NULL, 0, 0, 0, NULL, NULL }
};

static const sb_dataset_vtable manifest_vtable = {
    .struct_size = sizeof(sb_dataset_vtable),
    .load = manifest_load,
};

static const sb_plugin manifest_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_DATASET,
    .name = "manifest",
    .version = "1.0.0",
    .summary = "any corpus listed in a CSV/TSV or JSON Lines file",
    .options = manifest_options,
    .vtable = &manifest_vtable,
};

SB_PLUGIN_DEFINE(manifest_plugin)
