/* plugins/datasets/meld/meld_common.c — the MELD row reader and the row-to-clip join
 * shared by the meld and melt plugins (meld_common.h). */
#include "meld_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- small helpers ----------------------------------------------------------------------- */

char *mc_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void mc_json_str(const char *s, char *out, size_t size)
{
    size_t n = 0;
    for (; *s && n + 8 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)snprintf(out + n, size - n, "\\u%04x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = '\0';
}

int mc_is_dir(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int mc_is_file(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- rows ---------------------------------------------------------------------------------- */

enum { C_SR, C_UTT, C_SPK, C_EMO, C_SENT, C_DIA, C_UID, C_SEASON, C_EPISODE, C_START, C_END, C_N };
static const char *const col_names[C_N] = { "Sr No.",    "Utterance",   "Speaker",      "Emotion",
                                            "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
                                            "Episode",   "StartTime",   "EndTime" };
#define MAX_EXTRA 4

struct mc_rows {
    sb_csv *csv;
    char *path, *split;
    int repair;
    int col[C_N];
    int n_extra, extra_col[MAX_EXTRA];
    const char *extra[MAX_EXTRA + 1];
    size_t n_cols;
    char emo[32], sen[32];
    char *text, *speaker; /* the repaired strings of the current row */
    /* (dialogue, utterance) -> first line, open addressing */
    uint64_t *key;
    long *key_line;
    size_t key_cap, key_n;
};

static void lower_trim(const char *s, char *out, size_t size)
{
    while (*s == ' ')
        s++;
    size_t n = 0;
    for (; *s && n + 1 < size; s++)
        out[n++] = (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

/* Header cell equality: case, surrounding spaces, and ' ' vs '_' do not matter
 * ("Sr No." is "Sr_No." in MELT). */
static int same_col(const char *a, const char *b)
{
    char x[64], y[64];
    lower_trim(a, x, sizeof x);
    lower_trim(b, y, sizeof y);
    for (char *p = x; *p; p++)
        *p = *p == ' ' ? '_' : *p;
    for (char *p = y; *p; p++)
        *p = *p == ' ' ? '_' : *p;
    return strcmp(x, y) == 0;
}

sb_status mc_rows_open(const char *path, const char *split, int repair,
                       const char *const *extra_cols, mc_rows **out, sb_error *err)
{
    *out = NULL;
    mc_rows *r = calloc(1, sizeof *r);
    if (!r || !(r->path = mc_printf("%s", path)) || !(r->split = mc_printf("%s", split))) {
        if (r)
            free(r->path);
        free(r);
        return sb_error_set(err, SB_ERR_NOMEM, path, "out of memory");
    }
    r->repair = repair;
    sb_status st = sb_csv_open(path, ',', &r->csv, err);
    const char *const *f = NULL;
    size_t nf = 0;
    int eof = 0;
    if (st == SB_OK)
        st = sb_csv_next(r->csv, &f, &nf, &eof, err);
    if (st == SB_OK && eof)
        st =
            sb_error_set(err, SB_ERR_FORMAT, path, "empty file; expected a header line (%s,%s,...)",
                         col_names[0], col_names[1]);
    if (st != SB_OK) {
        mc_rows_close(&r);
        return st;
    }
    char missing[600] = "";
    for (int k = 0; k < C_N; k++) {
        r->col[k] = -1;
        for (size_t j = 0; j < nf && r->col[k] < 0; j++)
            if (same_col(f[j], col_names[k]))
                r->col[k] = (int)j;
        if (r->col[k] < 0 && k != C_SR) /* Sr No. is optional: it only goes to meta */
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", col_names[k]);
    }
    for (; extra_cols && extra_cols[r->n_extra] && r->n_extra < MAX_EXTRA; r->n_extra++) {
        int k = r->n_extra;
        r->extra_col[k] = -1;
        for (size_t j = 0; j < nf && r->extra_col[k] < 0; j++)
            if (same_col(f[j], extra_cols[k]))
                r->extra_col[k] = (int)j;
        if (r->extra_col[k] < 0)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", extra_cols[k]);
    }
    if (missing[0]) {
        char found[800] = "", where[600];
        for (size_t j = 0; j < nf && strlen(found) + 80 < sizeof found; j++)
            snprintf(found + strlen(found), sizeof found - strlen(found), "%s%.60s", j ? ", " : "",
                     f[j]);
        snprintf(where, sizeof where, "%.580s:1", path);
        st = sb_error_set(err, SB_ERR_FORMAT, where, "the header lacks column%s %s (found: %s)",
                          strchr(missing, ',') ? "s" : "", missing, found);
        mc_rows_close(&r);
        return st;
    }
    r->n_cols = nf;
    *out = r;
    return SB_OK;
}

const char *mc_rows_path(const mc_rows *r)
{
    return r->path;
}

void mc_rows_close(mc_rows **rp)
{
    if (!rp || !*rp)
        return;
    mc_rows *r = *rp;
    sb_csv_close(&r->csv);
    sb_free(r->text);
    sb_free(r->speaker);
    free(r->key);
    free(r->key_line);
    free(r->path);
    free(r->split);
    free(r);
    *rp = NULL;
}

static sb_status row_error(mc_rows *r, sb_error *err, const char *fmt, ...) SB_PRINTF(3, 4);
static sb_status row_error(mc_rows *r, sb_error *err, const char *fmt, ...)
{
    char where[600], msg[1400];
    snprintf(where, sizeof where, "%.560s:%ld", r->path, sb_csv_line(r->csv));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sb_error_set(err, SB_ERR_FORMAT, where, "%s", msg);
}

/* A non-negative integer of at most 9 digits, spaces around allowed. */
static int parse_nat(const char *s, long *out)
{
    while (*s == ' ')
        s++;
    long v = 0;
    int k = 0;
    for (; *s >= '0' && *s <= '9'; s++, k++) {
        if (k == 9)
            return 0;
        v = v * 10 + (*s - '0');
    }
    while (*s == ' ')
        s++;
    if (!k || *s)
        return 0;
    *out = v;
    return 1;
}

/* "hh:mm:ss,mmm" with or without the leading zero (0:13:42,477), '.' also accepted before
 * the milliseconds; seconds into the episode. */
static int parse_time(const char *s, double *out)
{
    long part[4] = { 0, 0, 0, 0 };
    int digits[4] = { 0, 0, 0, 0 };
    int k = 0;
    while (*s == ' ')
        s++;
    for (; *s && *s != ' '; s++) {
        if (*s >= '0' && *s <= '9') {
            if (++digits[k] > 3)
                return 0;
            part[k] = part[k] * 10 + (*s - '0');
        } else if ((k < 2 && *s == ':') || (k == 2 && (*s == ',' || *s == '.'))) {
            if (!digits[k])
                return 0;
            k++;
        } else {
            return 0;
        }
    }
    while (*s == ' ')
        s++;
    if (*s || k != 3 || !digits[3] || part[1] > 59 || part[2] > 59)
        return 0;
    double ms = (double)part[3];
    for (int i = digits[3]; i < 3; i++)
        ms *= 10; /* ",5" is 500 ms */
    *out = (double)part[0] * 3600 + (double)part[1] * 60 + (double)part[2] + ms / 1000.0;
    return 1;
}

static size_t key_slot(const uint64_t *key, size_t cap, uint64_t k)
{
    size_t h = (size_t)((k * 0x9E3779B97F4A7C15ULL) >> 20) & (cap - 1);
    while (key[h] != UINT64_MAX && key[h] != k)
        h = (h + 1) & (cap - 1);
    return h;
}

/* The line where (d, u) was first seen, or 0 (and remember it); -1 when out of memory. */
static long seen_key(mc_rows *r, long d, long u, long line)
{
    if ((r->key_n + 1) * 2 > r->key_cap) {
        size_t cap = r->key_cap ? r->key_cap * 2 : 4096;
        uint64_t *key = malloc(cap * sizeof *key);
        long *ln = malloc(cap * sizeof *ln);
        if (!key || !ln) {
            free(key);
            free(ln);
            return -1;
        }
        memset(key, 0xFF, cap * sizeof *key);
        for (size_t i = 0; i < r->key_cap; i++)
            if (r->key[i] != UINT64_MAX) {
                size_t h = key_slot(key, cap, r->key[i]);
                key[h] = r->key[i];
                ln[h] = r->key_line[i];
            }
        free(r->key);
        free(r->key_line);
        r->key = key;
        r->key_line = ln;
        r->key_cap = cap;
    }
    uint64_t k = ((uint64_t)d << 32) | (uint64_t)u;
    size_t h = key_slot(r->key, r->key_cap, k);
    if (r->key[h] == k)
        return r->key_line[h];
    r->key[h] = k;
    r->key_line[h] = line;
    r->key_n++;
    return 0;
}

sb_status mc_rows_next(mc_rows *r, mc_row *row, int *eof, sb_error *err)
{
    const char *const *f;
    size_t nf;
    memset(row, 0, sizeof *row);
    sb_free(r->text);
    sb_free(r->speaker);
    r->text = r->speaker = NULL;
    for (;;) {
        sb_status st = sb_csv_next(r->csv, &f, &nf, eof, err);
        if (st != SB_OK || *eof)
            return st;
        if (!(nf == 1 && !f[0][0]))
            break; /* a blank line holds no row */
    }
    if (nf != r->n_cols)
        return row_error(r, err,
                         "%zu fields, but the header has %zu; a quote missing around a text "
                         "with commas?",
                         nf, r->n_cols);
    const int *col = r->col;
    int bad = -1;
    row->sr_no = -1;
    if (!parse_nat(f[col[C_DIA]], &row->dialogue))
        bad = C_DIA;
    else if (!parse_nat(f[col[C_UID]], &row->utterance))
        bad = C_UID;
    else if (!parse_nat(f[col[C_SEASON]], &row->season))
        bad = C_SEASON;
    else if (!parse_nat(f[col[C_EPISODE]], &row->episode))
        bad = C_EPISODE;
    else if (!parse_time(f[col[C_START]], &row->start_time))
        bad = C_START;
    else if (!parse_time(f[col[C_END]], &row->end_time))
        bad = C_END;
    else if (col[C_SR] >= 0 && !parse_nat(f[col[C_SR]], &row->sr_no))
        bad = C_SR;
    if (bad >= 0)
        return row_error(r, err, "column %s: '%.60s' is not %s", col_names[bad], f[col[bad]],
                         bad == C_START || bad == C_END ? "a time like 0:13:42,477"
                                                        : "a non-negative integer");
    row->line = sb_csv_line(r->csv);
    long first = seen_key(r, row->dialogue, row->utterance, row->line);
    if (first < 0)
        return sb_error_set(err, SB_ERR_NOMEM, r->path, "out of memory");
    if (first > 0)
        return row_error(r, err,
                         "Dialogue_ID %ld, Utterance_ID %ld appears twice in %s: at line %ld "
                         "and here; each (dialogue, utterance) must be unique in a split",
                         row->dialogue, row->utterance, r->split, first);
    lower_trim(f[col[C_EMO]], r->emo, sizeof r->emo);
    lower_trim(f[col[C_SENT]], r->sen, sizeof r->sen);
    row->emotion = r->emo;
    row->sentiment = r->sen;
    if (r->repair) {
        int ct = 0, cs = 0;
        r->text = sb_text_repair(f[col[C_UTT]], strlen(f[col[C_UTT]]), &ct);
        r->speaker = sb_text_repair(f[col[C_SPK]], strlen(f[col[C_SPK]]), &cs);
        if (!r->text || !r->speaker)
            return sb_error_set(err, SB_ERR_NOMEM, r->path, "out of memory");
        row->text = r->text;
        row->speaker = r->speaker;
        row->repaired = ct || cs;
    } else {
        row->text = f[col[C_UTT]];
        row->speaker = f[col[C_SPK]];
    }
    for (int k = 0; k < r->n_extra; k++)
        r->extra[k] = f[r->extra_col[k]];
    r->extra[r->n_extra] = NULL;
    row->extra = r->extra;
    return SB_OK;
}

/* ---- clips ------------------------------------------------------------------------------- */

/* Clip extensions in order of preference. mp4 is indexed only to tell the user to run the
 * extraction: libsndfile cannot read it, so it is never given as audio. */
#define CLIP_EXTS "wav,flac,mp4"
#define WAV_HEADER_BYTES 44

struct mc_audio {
    const sb_host *host;
    char *root;
    sb_clip_index *ix;
    unsigned char *used; /* per clip: joined to a row */
    size_t n_usable;     /* wav/flac below a split folder */
    size_t n_mp4;        /* mp4 below a split folder */
};

static void alog(const mc_audio *a, sb_log_level level, const char *fmt, ...) SB_PRINTF(3, 4);
static void alog(const mc_audio *a, sb_log_level level, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    a->host->log(a->host, level, "%s", buf);
}

sb_status mc_audio_open(const sb_host *host, const char *root, const char *what, mc_audio **out,
                        sb_error *err)
{
    *out = NULL;
    mc_audio *a = calloc(1, sizeof *a);
    if (!a || !(a->root = mc_printf("%s", root))) {
        free(a);
        return sb_error_set(err, SB_ERR_NOMEM, root, "out of memory");
    }
    a->host = host;
    sb_status st = sb_clip_index_build(root, CLIP_EXTS, &a->ix, err);
    size_t n = sb_clip_index_size(a->ix);
    if (st == SB_OK && !(a->used = calloc(n ? n : 1, 1)))
        st = sb_error_set(err, SB_ERR_NOMEM, root, "out of memory");
    if (st != SB_OK) {
        mc_audio_close(&a);
        return st;
    }
    size_t unsplit = 0;
    const char *unsplit_eg = NULL;
    for (size_t i = 0; i < n; i++) {
        const sb_clip *c = sb_clip_index_at(a->ix, i);
        if (!c->split) {
            if (!unsplit++)
                unsplit_eg = c->rel;
        } else if (strcmp(c->ext, "mp4") == 0) {
            a->n_mp4++;
        } else {
            a->n_usable++;
        }
    }
    if (unsplit)
        alog(a, SB_LOG_WARN,
             "%zu clips under %s (%s) sit in folders that name no split (e.g. %s) and are not "
             "used: dialogue and utterance numbers repeat between MELD's splits, so each "
             "split's clips must be below a folder named train/dev/test (or train_splits, "
             "dev_splits_complete, output_repeated_splits_test)",
             unsplit, root, what, unsplit_eg);
    if (!a->n_usable && a->n_mp4)
        alog(a, SB_LOG_WARN,
             "found %zu mp4 clips under %s (%s) but no extracted audio: run "
             "scripts/meld-extract-audio %s OUT and set %s: OUT. Loading text only; an audio "
             "encoder will report every utterance under on_missing_audio",
             a->n_mp4, root, what, root, what);
    else if (!a->n_usable)
        alog(a, SB_LOG_INFO,
             "no clips (dia<D>_utt<U>.wav/.flac) under %s (%s): loading text only; an audio "
             "encoder will report every utterance under on_missing_audio",
             root, what);
    *out = a;
    return SB_OK;
}

const char *mc_audio_find(mc_audio *a, sb_corpus *corpus, const char *id, const char *split, long d,
                          long u)
{
    long k = sb_clip_index_find(a->ix, split, d, u);
    const sb_clip *c = k >= 0 ? sb_clip_index_at(a->ix, (size_t)k) : NULL;
    if (c)
        a->used[k] = 1;
    if (!a->n_usable)
        return NULL; /* a text-only load: said once at open */
    const char *note = sb_meld_clip_note(split, d, u);
    const char *sep = note ? "; " : "";
    note = note ? note : "";
    if (!c) {
        sb_corpus_note_item(corpus, id,
                            "no clip dia%ld_utt%ld.wav (or .flac) below a %s folder of %s%s%s", d,
                            u, split, a->root, sep, note);
        return NULL;
    }
    if (strcmp(c->ext, "mp4") == 0) {
        sb_corpus_note_item(corpus, id,
                            "only %s exists, which cannot be read as audio: extract it with "
                            "scripts/meld-extract-audio%s%s",
                            c->rel, sep, note);
        return NULL;
    }
    if (c->bytes <= WAV_HEADER_BYTES && strcmp(c->ext, "wav") == 0) {
        sb_corpus_note_item(corpus, id, "clip %s is %lld bytes: truncated or corrupt%s%s", c->path,
                            (long long)c->bytes, sep, note);
        return NULL;
    }
    return c->path;
}

void mc_audio_report_extras(mc_audio *a)
{
    size_t n = sb_clip_index_size(a->ix), extra = 0;
    char eg[600] = "";
    for (size_t i = 0; i < n; i++) {
        const sb_clip *c = sb_clip_index_at(a->ix, i);
        if (a->used[i] || !c->split || !sb_clip_index_chosen(a->ix, i))
            continue;
        if (extra++ < 6)
            snprintf(eg + strlen(eg), sizeof eg - strlen(eg), "%s%s/%s", extra > 1 ? ", " : "",
                     c->split, c->name);
    }
    if (extra)
        alog(a, SB_LOG_INFO,
             "%zu clip%s under %s match%s no row and %s not used (%s%s); MELD.Raw ships a few "
             "such extras (dev dia66_utt9, test dia108_utt2, ...), safe to ignore",
             extra, extra == 1 ? "" : "s", a->root, extra == 1 ? "es" : "",
             extra == 1 ? "is" : "are", eg, extra > 6 ? ", ..." : "");
}

size_t mc_audio_n_usable(const mc_audio *a)
{
    return a->n_usable;
}

size_t mc_audio_n_mp4(const mc_audio *a)
{
    return a->n_mp4;
}

void mc_audio_close(mc_audio **ap)
{
    if (!ap || !*ap)
        return;
    mc_audio *a = *ap;
    sb_clip_index_destroy(&a->ix);
    free(a->used);
    free(a->root);
    free(a);
    *ap = NULL;
}
