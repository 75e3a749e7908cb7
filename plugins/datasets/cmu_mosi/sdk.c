/* plugins/datasets/cmu_mosi/sdk.c — the CMU-MultimodalSDK raw release (CMU_MOSI_Raw/):
 * Labels/OpinionLevelSentiment.csv without a header (start,end,video_id,segment_no,label),
 * the transcripts Transcript/Segmented/<video>.annotprocessed ("<seg>_DELIM_<text>" lines)
 * when present, and splits from a split_file (video_id,split) or, without one, by video in
 * a deterministic hash order — which is not the standard folds (the SDK keeps those in
 * Python, not in the release). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mosi.h"

/* A video and its split; also the deterministic order (hash). */
typedef struct vsplit {
    const char *video; /* borrowed from a clip or owned by the split file's table */
    const char *split;
    long line; /* split_file line, 0 = none */
    char hash[SB_HASH_HEX];
} vsplit;

static int vs_cmp_video(const void *a, const void *b)
{
    return strcmp(((const vsplit *)a)->video, ((const vsplit *)b)->video);
}

static int vs_cmp_hash(const void *a, const void *b)
{
    const vsplit *x = a, *y = b;
    int c = strcmp(x->hash, y->hash);
    return c ? c : strcmp(x->video, y->video);
}

/* A time in seconds (start/end columns): finite and >= 0. */
static sb_status parse_time(mosi_loader *L, long line, const char *col, const char *s, double *out)
{
    char buf[64];
    size_t b = 0, e = s ? strlen(s) : 0;
    while (b < e && isspace((unsigned char)s[b]))
        b++;
    while (e > b && isspace((unsigned char)s[e - 1]))
        e--;
    int ok = e > b && e - b < sizeof buf;
    if (ok) {
        memcpy(buf, s + b, e - b);
        buf[e - b] = '\0';
        char *end = NULL;
        *out = strtod(buf, &end);
        ok = end != buf && *end == '\0' && isfinite(*out) && *out >= 0;
    }
    if (!ok)
        return sbi_mosi_line_error(L, L->label_path, line, SB_ERR_FORMAT,
                                   "column %s: '%.40s' is not a time in seconds (>= 0); rows are "
                                   "start,end,video_id,segment_no,label",
                                   col, s ? s : "");
    return SB_OK;
}

/* The distinct videos of the clips, sorted by id. *out owned by the caller (the strings
 * are the clips'). */
static sb_status distinct_videos(mosi_loader *L, vsplit **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (L->n == 0)
        return SB_OK;
    vsplit *v = calloc(L->n, sizeof *v);
    if (!v)
        return sb_error_set(L->err, SB_ERR_NOMEM, L->label_path, "out of memory");
    for (size_t i = 0; i < L->n; i++)
        v[i].video = L->clips[i].video;
    qsort(v, L->n, sizeof *v, vs_cmp_video);
    size_t u = 0;
    for (size_t i = 0; i < L->n; i++)
        if (u == 0 || strcmp(v[u - 1].video, v[i].video) != 0)
            v[u++] = v[i];
    *out = v;
    *n_out = u;
    return SB_OK;
}

/* ---- split_file -------------------------------------------------------------------- */

/* Read `path` (CSV: video_id,split; a header row "video_id,split" is optional) into a
 * table sorted by video; video strings owned by the table (free with free_table). */
static void free_table(vsplit *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)t[i].video);
    free(t);
}

static sb_status read_split_file(mosi_loader *L, const char *path, vsplit **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    sb_csv *csv = NULL;
    sb_status st = sb_csv_open(path, ',', &csv, L->err);
    if (st != SB_OK)
        return st;
    vsplit *t = NULL;
    size_t n = 0, cap = 0;
    int first = 1;
    for (;;) {
        const char *const *f = NULL;
        size_t nf = 0;
        int eof = 0;
        if ((st = sb_csv_next(csv, &f, &nf, &eof, L->err)) != SB_OK || eof)
            break;
        long line = sb_csv_line(csv);
        if (nf == 1 && f[0][0] == '\0')
            continue;
        char *video = NULL, *split = NULL;
        if (nf != 2) {
            st =
                sbi_mosi_line_error(L, path, line, SB_ERR_FORMAT,
                                    "%zu fields; a split file has two columns, video_id,split", nf);
            break;
        }
        if (sbi_mosi_dup(f[0], 1, &video) != 0 || sbi_mosi_dup(f[1], 1, &split) != 0) {
            free(video);
            free(split);
            st = sbi_mosi_line_error(L, path, line, SB_ERR_NOMEM, "out of memory");
            break;
        }
        int header = first && video && split && strcmp(video, "video_id") == 0 &&
                     strcmp(split, "split") == 0;
        first = 0;
        const char *s = sbi_mosi_split(split);
        free(split);
        if (header) {
            free(video);
            continue;
        }
        if (!video || !s) {
            free(video);
            st = sbi_mosi_line_error(L, path, line, SB_ERR_FORMAT,
                                     "%s; rows are video_id,split with split train, valid "
                                     "(or validation, dev) or test",
                                     video ? "the split is not train, valid or test"
                                           : "the video_id is empty");
            break;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 128;
            vsplit *p = realloc(t, nc * sizeof *p);
            if (!p) {
                free(video);
                st = sbi_mosi_line_error(L, path, line, SB_ERR_NOMEM, "out of memory");
                break;
            }
            t = p;
            cap = nc;
        }
        t[n++] = (vsplit){ .video = video, .split = s, .line = line };
    }
    sb_csv_close(&csv);
    if (st != SB_OK) {
        free_table(t, n);
        return st;
    }
    if (n)
        qsort(t, n, sizeof *t, vs_cmp_video);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(t[i - 1].video, t[i].video) != 0 || t[i - 1].split == t[i].split)
            continue;
        const vsplit *a = t[i - 1].line < t[i].line ? &t[i - 1] : &t[i];
        const vsplit *b = a == &t[i] ? &t[i - 1] : &t[i];
        st = sbi_mosi_line_error(L, path, b->line, SB_ERR_FORMAT,
                                 "video '%.200s' is put in %s here and in %s at line %ld; keep one",
                                 b->video, b->split, a->split, a->line);
        free_table(t, n);
        return st;
    }
    *out = t;
    *n_out = n;
    return SB_OK;
}

static sb_status splits_from_file(mosi_loader *L, const char *path)
{
    vsplit *t = NULL;
    size_t nt = 0;
    sb_status st = read_split_file(L, path, &t, &nt);
    if (st != SB_OK)
        return st;
    size_t missing = 0;
    const mosi_clip *first = NULL;
    for (size_t i = 0; i < L->n; i++) {
        vsplit key = { .video = L->clips[i].video };
        const vsplit *hit = nt ? bsearch(&key, t, nt, sizeof *t, vs_cmp_video) : NULL;
        if (hit) {
            L->clips[i].split = hit->split;
        } else {
            missing++;
            if (!first)
                first = &L->clips[i];
        }
    }
    if (missing) {
        st = sbi_mosi_line_error(L, L->label_path, first->line, SB_ERR_FORMAT,
                                 "the split_file %s gives no split for video '%.200s' (%zu clips "
                                 "in all lack one); add a row video_id,split for every video",
                                 path, first->video, missing);
        free_table(t, nt);
        return st;
    }
    /* Videos the split file names but the labels do not: harmless, but say so. */
    size_t unused = 0;
    for (size_t k = 0; k < nt; k++) {
        size_t i = 0;
        while (i < L->n && strcmp(L->clips[i].video, t[k].video) != 0)
            i++;
        unused += i == L->n;
    }
    if (unused)
        sbi_mosi_log(L, SB_LOG_INFO, "%s: %zu of its %zu videos have no clip in %s", path, unused,
                     nt, L->label_path);
    free_table(t, nt);
    snprintf(L->split_note_buf, sizeof L->split_note_buf, "split_file %s (video_id,split)", path);
    L->split_note = L->split_note_buf;
    L->own_splits = 1;
    return SB_OK;
}

/* Without a split file: videos in the order of a content hash of their ids, cut at about
 * 56 % / 11 % / 33 % (the standard split's shares), so the split is by video (speaker),
 * reproducible, and independent of the file's row order. */
static sb_status splits_by_hash(mosi_loader *L)
{
    vsplit *v = NULL;
    size_t nv = 0;
    sb_status st = distinct_videos(L, &v, &nv);
    if (st != SB_OK)
        return st;
    for (size_t k = 0; k < nv; k++) {
        sb_hasher *h = sb_hasher_create();
        if (!h) {
            free(v);
            return sb_error_set(L->err, SB_ERR_NOMEM, L->label_path, "out of memory");
        }
        sb_hasher_str(h, "cmu_mosi/video-split/1");
        sb_hasher_str(h, v[k].video);
        sb_hasher_hex(h, v[k].hash);
        sb_hasher_destroy(&h);
    }
    if (nv)
        qsort(v, nv, sizeof *v, vs_cmp_hash);
    size_t n_dev = 0, n_test = 0;
    if (nv >= 3) {
        n_dev = (size_t)lround((double)nv * 229.0 / 2199.0);
        n_test = (size_t)lround((double)nv * 686.0 / 2199.0);
        n_dev = n_dev ? n_dev : 1;
        n_test = n_test ? n_test : 1;
    } else if (nv == 2) {
        n_test = 1;
    }
    size_t n_train = nv - n_dev - n_test;
    for (size_t k = 0; k < nv; k++)
        v[k].split = k < n_train ? "train" : k < n_train + n_dev ? "dev" : "test";
    if (nv)
        qsort(v, nv, sizeof *v, vs_cmp_video);
    for (size_t i = 0; i < L->n; i++) {
        vsplit key = { .video = L->clips[i].video };
        const vsplit *hit = bsearch(&key, v, nv, sizeof *v, vs_cmp_video);
        L->clips[i].split = hit->split; /* every clip's video is in v */
    }
    free(v);
    snprintf(L->split_note_buf, sizeof L->split_note_buf,
             "by video, in a hash order of the video ids: %zu / %zu / %zu videos for train / dev "
             "/ test. NOT the standard MOSI folds: set split_file for comparable numbers",
             n_train, n_dev, n_test);
    L->split_note = L->split_note_buf;
    L->own_splits = 0;
    sbi_mosi_log(L, SB_LOG_WARN,
                 "%s: the SDK release has no split column and split_file is not set, so the "
                 "splits are made by video (%zu / %zu / %zu videos) in a fixed hash order; they "
                 "are not the standard folds, so results are not comparable with published "
                 "numbers (give the standard folds as split_file: video_id,split)",
                 L->label_path, n_train, n_dev, n_test);
    return SB_OK;
}

/* ---- transcripts ------------------------------------------------------------------- */

/* Text of the clips of `video` from Transcript/Segmented/<video>.annotprocessed, if that
 * file exists. Lines are "<segment>_DELIM_<text>"; other non-blank lines are counted and
 * reported once per file. */
static sb_status read_transcript(mosi_loader *L, const char *video, size_t *n_files)
{
    size_t nv = strlen(video);
    char *name = malloc(nv + sizeof ".annotprocessed");
    char *path = NULL;
    if (name) {
        memcpy(name, video, nv);
        memcpy(name + nv, ".annotprocessed", sizeof ".annotprocessed");
        path = sbi_mosi_join(L->root, "Transcript", "Segmented", name, NULL);
    }
    free(name);
    if (!path)
        return sb_error_set(L->err, SB_ERR_NOMEM, L->root, "out of memory");
    if (!sbi_mosi_is_file(path)) {
        free(path);
        return SB_OK;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        sbi_mosi_log(L, SB_LOG_WARN, "%s: cannot open; its clips get no transcript", path);
        free(path);
        return SB_OK;
    }
    (*n_files)++;
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0, first_bad = 0;
    size_t n_bad = 0;
    sb_status st = SB_OK;
    ssize_t len;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char *sep = strstr(line, "_DELIM_");
        if (!sep) {
            size_t b = 0;
            while (line[b] && isspace((unsigned char)line[b]))
                b++;
            if (line[b]) {
                n_bad++;
                first_bad = first_bad ? first_bad : lineno;
            }
            continue;
        }
        *sep = '\0';
        char *seg = NULL;
        if (sbi_mosi_dup(line, 1, &seg) != 0) {
            st = sbi_mosi_line_error(L, path, lineno, SB_ERR_NOMEM, "out of memory");
            break;
        }
        for (size_t i = 0; seg && i < L->n; i++) {
            mosi_clip *c = &L->clips[i];
            if (c->text || strcmp(c->clip, seg) != 0 || strcmp(c->video, video) != 0)
                continue;
            char *text = NULL;
            if (sbi_mosi_dup(sep + 7, 1, &text) != 0 || sbi_mosi_text(L, text, &c->text) != 0) {
                free(text);
                st = sbi_mosi_line_error(L, path, lineno, SB_ERR_NOMEM, "out of memory");
                break;
            }
            free(text);
        }
        free(seg);
        if (st != SB_OK)
            break;
    }
    free(line);
    fclose(fp);
    if (n_bad && st == SB_OK)
        sbi_mosi_log(L, SB_LOG_WARN,
                     "%s:%ld: %zu non-blank line(s) without '_DELIM_' ignored (expected "
                     "<segment>_DELIM_<text>)",
                     path, first_bad, n_bad);
    free(path);
    return st;
}

/* ---- the label file ---------------------------------------------------------------- */

static sb_status take_row(mosi_loader *L, long line, const char *const *f)
{
    mosi_clip c;
    memset(&c, 0, sizeof c);
    c.line = line;
    sb_status st;
    if ((st = parse_time(L, line, "1 (start)", f[0], &c.start)) != SB_OK ||
        (st = parse_time(L, line, "2 (end)", f[1], &c.end)) != SB_OK)
        return st;
    if (sbi_mosi_dup(f[2], 1, &c.video) != 0 || sbi_mosi_dup(f[3], 1, &c.clip) != 0) {
        sbi_mosi_clip_free(&c);
        return sbi_mosi_line_error(L, L->label_path, line, SB_ERR_NOMEM, "out of memory");
    }
    if (!c.video || !c.clip) {
        sbi_mosi_clip_free(&c);
        return sbi_mosi_line_error(L, L->label_path, line, SB_ERR_FORMAT,
                                   "column %s is empty; rows are start,end,video_id,segment_no,"
                                   "label",
                                   c.video ? "4 (segment_no)" : "3 (video_id)");
    }
    if ((st = sbi_mosi_score(L, L->label_path, line, "5 (label)", f[4], &c.score)) != SB_OK) {
        sbi_mosi_clip_free(&c);
        return st;
    }
    return sbi_mosi_push(L, &c);
}

sb_status sbi_mosi_read_sdk(mosi_loader *L)
{
    sb_csv *csv = NULL;
    sb_status st = sb_csv_open(L->label_path, ',', &csv, L->err);
    if (st != SB_OK)
        return st;
    int first = 1;
    for (;;) {
        const char *const *f = NULL;
        size_t n = 0;
        int eof = 0;
        if ((st = sb_csv_next(csv, &f, &n, &eof, L->err)) != SB_OK || eof)
            break;
        long line = sb_csv_line(csv);
        if (n == 1 && f[0][0] == '\0')
            continue;
        if (first) {
            first = 0;
            char *h = NULL;
            if (sbi_mosi_dup(f[0], 1, &h) != 0) {
                st = sbi_mosi_line_error(L, L->label_path, line, SB_ERR_NOMEM, "out of memory");
                break;
            }
            int header = h && strcasecmp(h, "start") == 0;
            free(h);
            if (header) { /* not in the release, but some copies add one */
                sbi_mosi_log(L, SB_LOG_DEBUG, "%s:%ld: header row skipped", L->label_path, line);
                continue;
            }
        }
        if (n != 5) {
            st = sbi_mosi_line_error(L, L->label_path, line, SB_ERR_FORMAT,
                                     "%zu fields; rows of OpinionLevelSentiment.csv are "
                                     "start,end,video_id,segment_no,label",
                                     n);
            break;
        }
        if ((st = take_row(L, line, f)) != SB_OK)
            break;
        if ((L->n & 4095) == 0 && L->host && L->host->cancelled(L->host)) {
            st = sb_error_set(L->err, SB_ERR_CANCELLED, L->label_path, "cancelled while reading");
            break;
        }
    }
    sb_csv_close(&csv);
    if (st != SB_OK)
        return st;

    const char *split_file =
        sb_opts_has(L->opts, "split_file") ? sb_opts_str(L->opts, "split_file") : NULL;
    if (split_file && *split_file)
        st = splits_from_file(L, split_file);
    else
        st = splits_by_hash(L);
    if (st != SB_OK)
        return st;

    vsplit *v = NULL;
    size_t nv = 0, n_files = 0;
    if ((st = distinct_videos(L, &v, &nv)) != SB_OK)
        return st;
    for (size_t k = 0; k < nv && st == SB_OK; k++)
        st = read_transcript(L, v[k].video, &n_files);
    free(v);
    if (st == SB_OK) {
        size_t with_text = 0;
        for (size_t i = 0; i < L->n; i++)
            with_text += L->clips[i].text != NULL;
        sbi_mosi_log(L, SB_LOG_INFO,
                     "transcripts: %zu of %zu clips from %zu files under "
                     "%s/Transcript/Segmented",
                     with_text, L->n, n_files, L->root);
    }
    return st;
}
