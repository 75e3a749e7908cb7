/* plugins/datasets/cmu_mosi/cmu_mosi.c — the `cmu_mosi` dataset plugin: CMU-MOSI from the
 * MMSA layout (label.csv + Raw/<video>/<clip>.mp4 and extracted WAVs) or the SDK's raw
 * release, with the protocols mosi-2class (Acc-2 has0 / non0), mosi-7class and
 * mosi-regression. Shared helpers live here; the readers are in mmsa.c and sdk.c.
 * See docs/datasets.md, "cmu_mosi". */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "mosi.h"

#define PROTOCOL_VERSION "1"

/* ---- helpers shared with the readers ----------------------------------------------- */

void sbi_mosi_log(const mosi_loader *L, sb_log_level level, const char *fmt, ...)
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

sb_status sbi_mosi_line_error(mosi_loader *L, const char *file, long line, sb_status code,
                              const char *fmt, ...)
{
    char where[600], msg[1400];
    snprintf(where, sizeof where, "%s:%ld", file, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sb_error_set(L->err, code, where, "%s", msg);
}

int sbi_mosi_dup(const char *s, int trim, char **out)
{
    *out = NULL;
    if (!s)
        return 0;
    size_t b = 0, e = strlen(s);
    if (trim) {
        while (b < e && isspace((unsigned char)s[b]))
            b++;
        while (e > b && isspace((unsigned char)s[e - 1]))
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

int sbi_mosi_text(mosi_loader *L, const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return 0;
    size_t n = strlen(s), k = 0;
    while (k < n && isspace((unsigned char)s[k]))
        k++;
    if (k == n)
        return 0;
    if (sb_utf8_valid(s, n))
        return sbi_mosi_dup(s, 0, out);
    char *fixed = sb_text_repair(s, n, NULL);
    if (!fixed)
        return -1;
    /* sb_text_repair's string is released with sb_free; ours with free. */
    int rc = sbi_mosi_dup(fixed, 0, out);
    sb_free(fixed);
    L->n_text_repaired++;
    return rc;
}

const char *sbi_mosi_split(const char *s)
{
    char buf[32];
    size_t b = 0, e = s ? strlen(s) : 0;
    while (b < e && isspace((unsigned char)s[b]))
        b++;
    while (e > b && isspace((unsigned char)s[e - 1]))
        e--;
    if (e == b || e - b >= sizeof buf)
        return NULL;
    memcpy(buf, s + b, e - b);
    buf[e - b] = '\0';
    if (strcasecmp(buf, "train") == 0)
        return "train";
    if (strcasecmp(buf, "valid") == 0 || strcasecmp(buf, "validation") == 0 ||
        strcasecmp(buf, "dev") == 0)
        return "dev";
    if (strcasecmp(buf, "test") == 0)
        return "test";
    return NULL;
}

sb_status sbi_mosi_score(mosi_loader *L, const char *file, long line, const char *col,
                         const char *s, double *out)
{
    char buf[128];
    size_t b = 0, e = s ? strlen(s) : 0;
    while (b < e && isspace((unsigned char)s[b]))
        b++;
    while (e > b && isspace((unsigned char)s[e - 1]))
        e--;
    if (e == b)
        return sbi_mosi_line_error(L, file, line, SB_ERR_FORMAT,
                                   "column %s is empty; every clip needs its sentiment score "
                                   "(a number in [-3, 3])",
                                   col);
    int ok = e - b < sizeof buf;
    double v = 0;
    if (ok) {
        memcpy(buf, s + b, e - b);
        buf[e - b] = '\0';
        char *end = NULL;
        errno = 0;
        v = strtod(buf, &end);
        ok = end != buf && *end == '\0' && isfinite(v);
    }
    if (!ok)
        return sbi_mosi_line_error(L, file, line, SB_ERR_FORMAT,
                                   "column %s: '%.40s' is not a number; the sentiment score is a "
                                   "number in [-3, 3]",
                                   col, s + b);
    if (v < -3.0 || v > 3.0)
        return sbi_mosi_line_error(L, file, line, SB_ERR_FORMAT,
                                   "column %s: score %.17g is outside [-3, 3], the range of MOSI "
                                   "sentiment; the file is not a MOSI label file or the row is "
                                   "damaged",
                                   col, v);
    *out = v;
    return SB_OK;
}

char *sbi_mosi_join(const char *first, ...)
{
    va_list ap;
    size_t len = 0;
    va_start(ap, first);
    for (const char *p = first; p; p = va_arg(ap, const char *))
        len += strlen(p) + 1;
    va_end(ap);
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    va_start(ap, first);
    for (const char *p = first; p; p = va_arg(ap, const char *)) {
        size_t n = strlen(p);
        if (k && out[k - 1] != '/')
            out[k++] = '/';
        memcpy(out + k, p, n);
        k += n;
    }
    va_end(ap);
    out[k] = '\0';
    return out;
}

int sbi_mosi_is_file(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

void sbi_mosi_clip_free(mosi_clip *c)
{
    free(c->video);
    free(c->clip);
    free(c->text);
    free(c->annotation);
    memset(c, 0, sizeof *c);
}

sb_status sbi_mosi_push(mosi_loader *L, mosi_clip *c)
{
    long line = c->line;
    /* Ids and the annotation go into JSON (meta) and file names: they must be text. */
    if (!sb_utf8_valid(c->video, strlen(c->video)) || !sb_utf8_valid(c->clip, strlen(c->clip)) ||
        (c->annotation && !sb_utf8_valid(c->annotation, strlen(c->annotation)))) {
        sbi_mosi_clip_free(c);
        return sbi_mosi_line_error(L, L->label_path, line, SB_ERR_FORMAT,
                                   "the video id, clip id or annotation is not valid UTF-8; fix "
                                   "the row (or convert the file to UTF-8)");
    }
    if (L->n == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 1024;
        mosi_clip *p = realloc(L->clips, cap * sizeof *p);
        if (!p) {
            sbi_mosi_clip_free(c);
            return sbi_mosi_line_error(L, L->label_path, line, SB_ERR_NOMEM, "out of memory");
        }
        L->clips = p;
        L->cap = cap;
    }
    L->clips[L->n++] = *c;
    memset(c, 0, sizeof *c);
    return SB_OK;
}

/* ---- a growable string, for ids, paths and meta ------------------------------------ */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sbuf_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (b->n + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sbuf_adds(sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

static void sbuf_reset(sbuf *b)
{
    b->n = 0;
    if (b->s)
        b->s[0] = '\0';
}

/* s as a JSON string literal. */
static void sbuf_json_str(sbuf *b, const char *s)
{
    sbuf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sbuf_add(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sbuf_adds(b, esc);
        } else {
            sbuf_add(b, (const char *)p, 1);
        }
    }
    sbuf_add(b, "\"", 1);
}

/* The shortest decimal that reads back as exactly x (x finite): 0.6, not
 * 0.59999999999999998. */
static void sbuf_json_num(sbuf *b, double x)
{
    char num[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(num, sizeof num, "%.*g", prec, x);
        if (strtod(num, NULL) == x)
            break;
    }
    sbuf_adds(b, num);
}

/* ---- labels ------------------------------------------------------------------------ */

typedef enum protocol { P_2CLASS, P_7CLASS, P_REGRESSION } protocol;

static const char *const classes_non0[] = { "negative", "positive" };
static const char *const classes_has0[] = { "negative", "non-negative" };
static const char *const classes_7[] = { "-3", "-2", "-1", "0", "1", "2", "3" };

/* The 7-class bin of a score: rint(clip(score, -3, 3)), i.e. round half to even as numpy's
 * round that MMSA's Acc-7 uses (C rint in the default rounding mode, FE_TONEAREST). Index 0
 * is "-3". */
static int bin7(double score)
{
    double x = score < -3.0 ? -3.0 : score > 3.0 ? 3.0 : score;
    return (int)rint(x) + 3;
}

/* Class index of a score under the protocol, or -1 (unlabelled: score 0 under non0). */
static int label_of(protocol p, int has0, double score)
{
    switch (p) {
    case P_2CLASS:
        if (score < 0)
            return 0;
        if (has0 || score > 0)
            return 1;
        return -1;
    case P_7CLASS:
    case P_REGRESSION: return bin7(score);
    }
    return -1;
}

/* ---- audio ------------------------------------------------------------------------- */

/* Where a clip's audio is, or why there is none. On success *path is malloc'd (NULL when
 * not found, with `why` saying what was looked for) and *start, *end the span. *mp4_only is
 * set when the clip's video (Raw/<video>/<clip>.mp4) exists but no WAV does. Returns -1
 * when out of memory. */
static int find_audio(const mosi_loader *L, const mosi_clip *c, char **path, double *start,
                      double *end, int *mp4_only, char *why, size_t why_size)
{
    *path = NULL;
    *start = 0.0;
    *end = -1.0;
    *mp4_only = 0;
    char *cand[3] = { NULL, NULL, NULL };
    int n = 0, rc = 0;
    sbuf name = { 0 };
    if (L->layout == MOSI_MMSA) {
        sbuf_adds(&name, c->clip);
        sbuf_adds(&name, ".wav");
        if (name.oom)
            return -1;
        if (L->audio_root) {
            cand[n++] = sbi_mosi_join(L->audio_root, c->video, name.s, NULL);
        } else {
            cand[n++] = sbi_mosi_join(L->root, "Raw", c->video, name.s, NULL);
            cand[n++] = sbi_mosi_join(L->root, "Audio", c->video, name.s, NULL);
            cand[n++] = sbi_mosi_join(L->root, "wav", c->video, name.s, NULL);
        }
    } else {
        sbuf_adds(&name, c->video);
        sbuf_adds(&name, "_");
        sbuf_adds(&name, c->clip);
        sbuf_adds(&name, ".wav");
        if (name.oom)
            return -1;
        if (L->audio_root)
            cand[n++] = sbi_mosi_join(L->audio_root, name.s, NULL);
        else
            cand[n++] = sbi_mosi_join(L->root, "Audio", "WAV_16000", "Segmented", name.s, NULL);
    }
    for (int k = 0; k < n; k++)
        if (!cand[k])
            rc = -1;
    for (int k = 0; rc == 0 && k < n && !*path; k++)
        if (sbi_mosi_is_file(cand[k]))
            *path = cand[k], cand[k] = NULL;

    if (rc == 0 && !*path && L->layout == MOSI_SDK && !L->audio_root) {
        /* The full recording, with the clip's span from the label file. */
        sbuf_reset(&name);
        sbuf_adds(&name, c->video);
        sbuf_adds(&name, ".wav");
        char *full =
            name.oom ? NULL : sbi_mosi_join(L->root, "Audio", "WAV_16000", "Full", name.s, NULL);
        if (!full) {
            rc = -1;
        } else if (sbi_mosi_is_file(full) && isfinite(c->start) && c->end > c->start) {
            *path = full;
            *start = c->start;
            *end = c->end;
        } else {
            free(full);
        }
    }
    if (rc == 0 && !*path) {
        size_t k = 0;
        k += (size_t)snprintf(why + k, why_size - k, "no audio file: looked for ");
        for (int j = 0; j < n && k < why_size; j++)
            k += (size_t)snprintf(why + k, why_size - k, "%s%s", j ? ", " : "", cand[j]);
        if (L->layout == MOSI_SDK && !L->audio_root && k < why_size)
            k +=
                (size_t)snprintf(why + k, why_size - k,
                                 " and Audio/WAV_16000/Full/%s.wav with the clip's span", c->video);
        if (L->layout == MOSI_MMSA) {
            sbuf_reset(&name);
            sbuf_adds(&name, c->clip);
            sbuf_adds(&name, ".mp4");
            char *mp4 = name.oom ? NULL : sbi_mosi_join(L->root, "Raw", c->video, name.s, NULL);
            if (!mp4) {
                rc = -1;
            } else if (sbi_mosi_is_file(mp4)) {
                *mp4_only = 1;
                if (k < why_size)
                    snprintf(why + k, why_size - k,
                             "; only the video %s exists: extract its audio to a WAV beside it "
                             "(ffmpeg, see docs/datasets.md, cmu_mosi)",
                             mp4);
            }
            free(mp4);
        }
    }
    for (int k = 0; k < n; k++)
        free(cand[k]);
    free(name.s);
    if (rc != 0) {
        free(*path);
        *path = NULL;
    }
    return rc;
}

/* ---- layout detection -------------------------------------------------------------- */

static sb_status detect_layout(mosi_loader *L, const char *want)
{
    struct stat st;
    if (stat(L->root, &st) != 0)
        return sb_error_set(L->err, SB_ERR_IO, sb_opts_where(L->opts, "root"),
                            "root %s: %s; set root to the MOSI folder (the one holding "
                            "label.csv, or Labels/OpinionLevelSentiment.csv)",
                            L->root, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sb_error_set(L->err, SB_ERR_IO, sb_opts_where(L->opts, "root"),
                            "root %s is not a folder; set root to the MOSI folder (the one "
                            "holding label.csv, or Labels/OpinionLevelSentiment.csv)",
                            L->root);
    char *mmsa = sbi_mosi_join(L->root, "label.csv", NULL);
    char *sdk1 = sbi_mosi_join(L->root, "Labels", "OpinionLevelSentiment.csv", NULL);
    char *sdk2 = sbi_mosi_join(L->root, "OpinionLevelSentiment.csv", NULL);
    sb_status rc = SB_OK;
    if (!mmsa || !sdk1 || !sdk2) {
        rc = sb_error_set(L->err, SB_ERR_NOMEM, L->root, "out of memory");
        goto done;
    }
    int is_auto = strcmp(want, "auto") == 0;
    if ((is_auto || strcmp(want, "mmsa") == 0) && sbi_mosi_is_file(mmsa)) {
        L->layout = MOSI_MMSA;
        L->label_path = mmsa, mmsa = NULL;
    } else if ((is_auto || strcmp(want, "sdk") == 0) &&
               (sbi_mosi_is_file(sdk1) || sbi_mosi_is_file(sdk2))) {
        L->layout = MOSI_SDK;
        if (sbi_mosi_is_file(sdk1))
            L->label_path = sdk1, sdk1 = NULL;
        else
            L->label_path = sdk2, sdk2 = NULL;
    } else if (is_auto) {
        rc = sb_error_set(L->err, SB_ERR_NOT_FOUND, sb_opts_where(L->opts, "root"),
                          "no MOSI label file under %s: looked for %s (MMSA layout), %s and %s "
                          "(SDK raw layout); set root to the folder that holds one of them",
                          L->root, mmsa, sdk1, sdk2);
    } else if (strcmp(want, "mmsa") == 0) {
        rc = sb_error_set(L->err, SB_ERR_NOT_FOUND, sb_opts_where(L->opts, "layout"),
                          "layout is mmsa but there is no %s%s; fix root or set layout: auto", mmsa,
                          sbi_mosi_is_file(sdk1) || sbi_mosi_is_file(sdk2)
                              ? " (the folder has the SDK's OpinionLevelSentiment.csv: "
                                "layout: sdk)"
                              : "");
    } else {
        rc = sb_error_set(L->err, SB_ERR_NOT_FOUND, sb_opts_where(L->opts, "layout"),
                          "layout is sdk but there is neither %s nor %s; fix root or set "
                          "layout: auto%s",
                          sdk1, sdk2,
                          sbi_mosi_is_file(mmsa) ? " (the folder has an MMSA label.csv: "
                                                   "layout: mmsa)"
                                                 : "");
    }
done:
    free(mmsa);
    free(sdk1);
    free(sdk2);
    return rc;
}

/* ---- counts ------------------------------------------------------------------------ */

/* The standard split has 2199 clips, 1284 / 229 / 686; say so when a full-size file
 * differs (some copies have 1281 / 229 / 685). */
static void check_counts(mosi_loader *L, const size_t split_n[3], char *note, size_t note_size)
{
    size_t total = split_n[0] + split_n[1] + split_n[2];
    int standard = split_n[0] == 1284 && split_n[1] == 229 && split_n[2] == 686;
    if (!L->own_splits) {
        snprintf(note, note_size, "%zu clips; splits not the standard folds", total);
    } else if (standard) {
        snprintf(note, note_size, "2199 clips, 1284 / 229 / 686: the standard split");
    } else if (split_n[0] == 1281 && split_n[1] == 229 && split_n[2] == 685) {
        snprintf(note, note_size,
                 "%zu clips, 1281 / 229 / 685: a derived copy, not the standard 1284 / 229 / 686",
                 total);
        sbi_mosi_log(L, SB_LOG_WARN,
                     "%s: train/dev/test = 1281 / 229 / 685, as in some derived copies of MOSI; "
                     "the standard split (MMSA, published numbers) has 1284 / 229 / 686 of 2199 "
                     "clips",
                     L->label_path);
    } else if (total == 2199) {
        snprintf(note, note_size,
                 "2199 clips but %zu / %zu / %zu, not the standard 1284 / 229 / 686", split_n[0],
                 split_n[1], split_n[2]);
        sbi_mosi_log(L, SB_LOG_WARN,
                     "%s: 2199 clips (all of MOSI) but train/dev/test = %zu / %zu / %zu, not the "
                     "standard 1284 / 229 / 686; results will not be comparable with published "
                     "numbers",
                     L->label_path, split_n[0], split_n[1], split_n[2]);
    } else {
        snprintf(note, note_size, "%zu clips (%zu / %zu / %zu); full MOSI has 2199", total,
                 split_n[0], split_n[1], split_n[2]);
        if (total > 2199)
            sbi_mosi_log(L, SB_LOG_WARN, "%s: %zu clips, more than MOSI's 2199", L->label_path,
                         total);
    }
}

/* ---- load -------------------------------------------------------------------------- */

static int split_index(const char *s)
{
    return strcmp(s, "train") == 0 ? 0 : strcmp(s, "dev") == 0 ? 1 : 2;
}

/* Whole number clip ids become the turn (MOSI numbers segments from 1). */
static int32_t turn_of(const char *clip)
{
    size_t n = strlen(clip);
    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)clip[i]))
            return -1;
    return (int32_t)atol(clip);
}

static void loader_free(mosi_loader *L)
{
    for (size_t i = 0; i < L->n; i++)
        sbi_mosi_clip_free(&L->clips[i]);
    free(L->clips);
    free(L->label_path);
}

static sb_status mosi_load(const sb_host *host, const sb_opts *opts, sb_corpus *corpus,
                           sb_error *err)
{
    mosi_loader L;
    memset(&L, 0, sizeof L);
    L.host = host;
    L.opts = opts;
    L.corpus = corpus;
    L.err = err;
    L.root = sb_opts_str(opts, "root");
    L.audio_root = sb_opts_has(opts, "audio_root") ? sb_opts_str(opts, "audio_root") : NULL;
    if (L.audio_root && !*L.audio_root)
        L.audio_root = NULL;
    if (!L.root || !*L.root)
        return sb_error_set(err, SB_ERR_CONFIG, NULL, "cmu_mosi: the root option is required");
    const char *pname = sb_opts_str(opts, "protocol");
    protocol proto = P_2CLASS;
    if (pname && strcmp(pname, "mosi-7class") == 0)
        proto = P_7CLASS;
    else if (pname && strcmp(pname, "mosi-regression") == 0)
        proto = P_REGRESSION;
    else
        pname = "mosi-2class";
    const char *acc2 = sb_opts_str(opts, "acc2");
    int has0 = acc2 && strcmp(acc2, "has0") == 0;
    const char *layout = sb_opts_str(opts, "layout");

    sb_status st;
    sbuf id = { 0 }, meta = { 0 };
    char why[2048], note[400], buf[600];
    size_t base = sb_corpus_size(corpus);
    size_t split_n[3] = { 0, 0, 0 }, n_zero = 0, n_unlabelled = 0, n_noaudio = 0, n_mp4 = 0;
    const char *first_noaudio = NULL;
    char first_why[8192] = "";

    if ((st = detect_layout(&L, layout ? layout : "auto")) != SB_OK)
        goto done;
    if (L.layout == MOSI_MMSA && sb_opts_has(opts, "split_file") &&
        *sb_opts_str(opts, "split_file")) {
        st = sb_error_set(err, SB_ERR_CONFIG, sb_opts_where(opts, "split_file"),
                          "split_file is for the SDK layout; %s has its own splits in the mode "
                          "column (remove split_file)",
                          L.label_path);
        goto done;
    }
    st = L.layout == MOSI_MMSA ? sbi_mosi_read_mmsa(&L) : sbi_mosi_read_sdk(&L);
    if (st != SB_OK)
        goto done;

    /* The label space. */
    if (proto == P_2CLASS)
        st = sb_corpus_set_classes(corpus, has0 ? "mosi-2class-has0" : "mosi-2class-non0",
                                   has0 ? classes_has0 : classes_non0, 2, err);
    else
        st = sb_corpus_set_classes(corpus, "mosi-7class", classes_7, 7, err);
    if (st != SB_OK)
        goto done;

    for (size_t i = 0; i < L.n; i++) {
        const mosi_clip *c = &L.clips[i];
        if ((i & 1023) == 0 && host && host->cancelled(host)) {
            st = sb_error_set(err, SB_ERR_CANCELLED, L.label_path, "cancelled while loading");
            goto done;
        }
        sbuf_reset(&id);
        sbuf_adds(&id, c->video);
        sbuf_adds(&id, "$_$");
        sbuf_adds(&id, c->clip);
        if (id.oom) {
            st = sb_error_set(err, SB_ERR_NOMEM, L.label_path, "out of memory");
            goto done;
        }
        long other = sb_corpus_find(corpus, id.s);
        if (other >= 0) {
            if ((size_t)other >= base)
                st = sbi_mosi_line_error(&L, L.label_path, c->line, SB_ERR_FORMAT,
                                         "duplicate clip: video '%.200s' clip '%.100s' is also "
                                         "at line %ld; each clip must appear once",
                                         c->video, c->clip, L.clips[(size_t)other - base].line);
            else
                st = sbi_mosi_line_error(&L, L.label_path, c->line, SB_ERR_FORMAT,
                                         "duplicate id '%.200s': already in the corpus", id.s);
            goto done;
        }

        char *audio = NULL;
        double start, end;
        int mp4_only;
        if (find_audio(&L, c, &audio, &start, &end, &mp4_only, why, sizeof why) != 0) {
            st = sb_error_set(err, SB_ERR_NOMEM, L.label_path, "out of memory");
            goto done;
        }

        /* MMSA's annotation column, or for the SDK the same three-way reading of the
         * score's sign. */
        const char *annotation = c->annotation ? c->annotation
                                               : (c->score < 0   ? "Negative"
                                                  : c->score > 0 ? "Positive"
                                                                 : "Neutral");
        sbuf_reset(&meta);
        sbuf_adds(&meta, "{\"score\":");
        sbuf_json_num(&meta, c->score);
        sbuf_adds(&meta, ",\"annotation\":");
        sbuf_json_str(&meta, annotation);
        sbuf_adds(&meta, ",\"video\":");
        sbuf_json_str(&meta, c->video);
        sbuf_adds(&meta, ",\"clip\":");
        sbuf_json_str(&meta, c->clip);
        if (L.layout == MOSI_SDK) {
            sbuf_adds(&meta, ",\"start\":");
            sbuf_json_num(&meta, c->start);
            sbuf_adds(&meta, ",\"end\":");
            sbuf_json_num(&meta, c->end);
        }
        sbuf_adds(&meta, "}");
        if (meta.oom) {
            free(audio);
            st = sb_error_set(err, SB_ERR_NOMEM, L.label_path, "out of memory");
            goto done;
        }

        sb_utt u;
        sb_utt_init(&u);
        u.id = id.s;
        u.dialogue = c->video;
        u.speaker = c->video; /* MOSI ships no speaker map; each video is one speaker */
        u.turn = turn_of(c->clip);
        u.audio = audio;
        u.start = start;
        u.end = end;
        u.text = c->text;
        u.split = c->split;
        u.label = label_of(proto, has0, c->score);
        u.value = c->score;
        u.meta = meta.s;
        st = sb_corpus_add(corpus, &u, err);
        free(audio);
        if (st != SB_OK)
            goto done;
        if (!u.audio) {
            /* Not an item problem: the clip stays for text stages, and the feature stage
             * applies the dataset's on_missing_audio policy. The first is described. */
            if (!first_noaudio) {
                first_noaudio = sb_corpus_utt(corpus, sb_corpus_size(corpus) - 1)->id;
                snprintf(first_why, sizeof first_why, "%s: %s (%s:%ld)", id.s, why, L.label_path,
                         c->line);
            }
            n_noaudio++;
            n_mp4 += (size_t)mp4_only;
        }
        split_n[split_index(c->split)]++;
        n_zero += c->score == 0.0;
        n_unlabelled += u.label < 0;
        if (host && ((i + 1) % 1024 == 0 || i + 1 == L.n))
            host->progress(host, i + 1, L.n);
    }

    /* What was loaded, for `serbench corpus` and provenance. */
    check_counts(&L, split_n, note, sizeof note);
#define INFO(k, v)                                                                                 \
    do {                                                                                           \
        if ((st = sb_corpus_set_info(corpus, (k), (v), err)) != SB_OK)                             \
            goto done;                                                                             \
    } while (0)
    INFO("protocol", pname);
    INFO("protocol_version", PROTOCOL_VERSION);
    snprintf(buf, sizeof buf, "%s (%s)", L.layout == MOSI_MMSA ? "mmsa" : "sdk", L.label_path);
    INFO("layout", buf);
    INFO("dev_split", L.split_note ? L.split_note : "?");
    INFO("counts", note);
    snprintf(buf, sizeof buf, "%zu", n_zero);
    INFO("zero_scores", buf);
    if (proto == P_2CLASS) {
        if (has0)
            snprintf(buf, sizeof buf,
                     "has0: negative (score < 0) vs non-negative (score >= 0) over all clips");
        else
            snprintf(buf, sizeof buf,
                     "non0: negative (score < 0) vs positive (score > 0); the %zu clips with "
                     "score 0 are kept unlabelled",
                     n_unlabelled);
        INFO("acc2", buf);
    } else if (proto == P_REGRESSION) {
        INFO("target", "value: the sentiment score in [-3, 3]; class labels are its 7-class bins "
                       "(rint), declared because the pipeline needs a label space");
    } else {
        INFO("target", "rint(clip(score, -3, 3)), round half to even as MMSA's Acc-7");
    }
    snprintf(
        buf, sizeof buf, "%zu of %zu clips have an audio file (%s)", L.n - n_noaudio, L.n,
        L.audio_root ? "under audio_root"
        : L.layout == MOSI_MMSA
            ? "looked for <video>/<clip>.wav under Raw/, Audio/ and wav/"
            : "looked for Audio/WAV_16000/Segmented/<video>_<clip>.wav, then Full/<video>.wav");
    INFO("audio", buf);
    if (n_noaudio)
        INFO("audio_first_missing", first_why);
#undef INFO

    if (n_noaudio)
        sbi_mosi_log(&L, SB_LOG_WARN,
                     "%zu of %zu clips have no audio file (first: %s)%s; they stay for text stages "
                     "and the feature stage applies on_missing_audio. %s",
                     n_noaudio, L.n, first_noaudio, n_mp4 ? " — some have only the .mp4 video" : "",
                     L.layout == MOSI_MMSA
                         ? "Extract the WAVs beside the videos (docs/datasets.md, cmu_mosi) or "
                           "set audio_root to a tree <video>/<clip>.wav"
                         : "Check Audio/WAV_16000/Segmented or set audio_root");
    if (L.n_text_repaired)
        sbi_mosi_log(&L, SB_LOG_INFO, "%zu transcripts were not valid UTF-8 and were repaired",
                     L.n_text_repaired);
    sbi_mosi_log(&L, SB_LOG_INFO, "%s: %zu clips (train %zu, dev %zu, test %zu), protocol %s%s%s",
                 L.label_path, L.n, split_n[0], split_n[1], split_n[2], pname,
                 proto == P_2CLASS ? ", acc2 " : "",
                 proto == P_2CLASS ? (has0 ? "has0" : "non0") : "");
    st = SB_OK;

done:
    free(id.s);
    free(meta.s);
    loader_free(&L);
    return st;
}

/* ---- the descriptor ---------------------------------------------------------------- */

static const sb_option mosi_options[] = {
    { "root", SB_OPT_PATH, NULL, SB_OPT_REQUIRED, 0, 0, NULL,
      "the MOSI folder: it holds label.csv (MMSA) or Labels/OpinionLevelSentiment.csv (SDK)" },
    { "layout", SB_OPT_ENUM, "auto", 0, 0, 0, "auto|mmsa|sdk",
      "auto: label.csv means mmsa, (Labels/)OpinionLevelSentiment.csv means sdk" },
    { "protocol", SB_OPT_ENUM, "mosi-2class", 0, 0, 0, "mosi-2class|mosi-7class|mosi-regression",
      "label set: 2 classes by the score's sign, 7 rounded scores, or the score itself" },
    { "acc2", SB_OPT_ENUM, "non0", 0, 0, 0, "non0|has0",
      "mosi-2class: non0 = negative vs positive with score-0 clips unlabelled; has0 = negative "
      "vs non-negative" },
    { "audio_root", SB_OPT_PATH, NULL, 0, 0, 0, NULL,
      "extracted WAVs: mmsa <audio_root>/<video>/<clip>.wav, sdk <audio_root>/<video>_<clip>.wav" },
    { "split_file", SB_OPT_PATH, NULL, 0, 0, 0, NULL,
      "sdk layout: CSV video_id,split (train/valid/test) with the standard folds" },
    { NULL, 0, NULL, 0, 0, 0, NULL, NULL }
};

static const sb_dataset_vtable mosi_vtable = {
    .struct_size = sizeof(sb_dataset_vtable),
    .load = mosi_load,
};

static const sb_plugin mosi_plugin = {
    .abi_minor = SB_ABI_MINOR,
    .struct_size = sizeof(sb_plugin),
    .kind = SB_KIND_DATASET,
    .name = "cmu_mosi",
    .version = "1.0.0",
    .summary = "CMU-MOSI sentiment (MMSA label.csv or the SDK raw release)",
    .options = mosi_options,
    .vtable = &mosi_vtable,
};

SB_PLUGIN_DEFINE(mosi_plugin)
