/* plugins/datasets/cmu_mosi/mmsa.c — the MMSA / MMSA-FET layout: label.csv with the
 * columns video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode, clip ids
 * read as strings (pandas dtype=str there), mode train/valid/test giving the splits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mosi.h"

enum { C_VIDEO, C_CLIP, C_LABEL, C_MODE, C_TEXT, C_ANNOTATION, C_COUNT };
static const char *const col_name[C_COUNT] = { "video_id", "clip_id", "label",
                                               "mode",     "text",    "annotation" };
#define C_REQUIRED 4 /* the first four columns must be in the header */

/* Find our columns in the header row; a missing required one is an error listing the
 * header's names. */
static sb_status map_header(mosi_loader *L, long line, const char *const *f, size_t n, int *idx)
{
    for (int k = 0; k < C_COUNT; k++) {
        idx[k] = -1;
        for (size_t j = 0; j < n; j++) {
            char *name = NULL;
            if (sbi_mosi_dup(f[j], 1, &name) != 0)
                return sbi_mosi_line_error(L, L->label_path, line, SB_ERR_NOMEM, "out of memory");
            int same = name && strcmp(name, col_name[k]) == 0;
            free(name);
            if (!same)
                continue;
            if (idx[k] >= 0)
                return sbi_mosi_line_error(L, L->label_path, line, SB_ERR_FORMAT,
                                           "column '%s' appears twice in the header (columns "
                                           "%d and %zu)",
                                           col_name[k], idx[k] + 1, j + 1);
            idx[k] = (int)j;
        }
    }
    for (int k = 0; k < C_REQUIRED; k++) {
        if (idx[k] >= 0)
            continue;
        char have[600] = "";
        size_t used = 0;
        for (size_t j = 0; j < n && used + 70 < sizeof have; j++)
            used +=
                (size_t)snprintf(have + used, sizeof have - used, "%s'%.60s'", j ? ", " : "", f[j]);
        return sbi_mosi_line_error(L, L->label_path, line, SB_ERR_FORMAT,
                                   "no column '%s' in the header (it has %s); an MMSA label.csv "
                                   "has video_id,clip_id,text,label,label_T,label_A,label_V,"
                                   "annotation,mode",
                                   col_name[k], have);
    }
    return SB_OK;
}

/* One data row → a clip. */
static sb_status take_row(mosi_loader *L, long line, const char *const *f, size_t n, const int *idx)
{
    mosi_clip c;
    memset(&c, 0, sizeof c);
    c.line = line;
    c.start = c.end = (double)NAN;
    sb_status st;
    const char *cell[C_COUNT];
    for (int k = 0; k < C_COUNT; k++)
        cell[k] = (idx[k] >= 0 && (size_t)idx[k] < n) ? f[idx[k]] : NULL;

    if (sbi_mosi_dup(cell[C_VIDEO], 1, &c.video) != 0 ||
        sbi_mosi_dup(cell[C_CLIP], 1, &c.clip) != 0 ||
        sbi_mosi_dup(cell[C_ANNOTATION], 1, &c.annotation) != 0 ||
        sbi_mosi_text(L, cell[C_TEXT], &c.text) != 0) {
        st = sbi_mosi_line_error(L, L->label_path, line, SB_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!c.video || !c.clip) {
        st = sbi_mosi_line_error(L, L->label_path, line, SB_ERR_FORMAT,
                                 "column '%s' is empty; every row needs a video_id and a clip_id",
                                 c.video ? "clip_id" : "video_id");
        goto fail;
    }
    if ((st = sbi_mosi_score(L, L->label_path, line, "label", cell[C_LABEL], &c.score)) != SB_OK)
        goto fail;
    c.split = sbi_mosi_split(cell[C_MODE]);
    if (!c.split) {
        st = sbi_mosi_line_error(L, L->label_path, line, SB_ERR_FORMAT,
                                 "column 'mode': '%.60s' is not a split; MMSA writes train, "
                                 "valid or test (validation and dev are accepted too)",
                                 cell[C_MODE] ? cell[C_MODE] : "");
        goto fail;
    }
    return sbi_mosi_push(L, &c);

fail:
    sbi_mosi_clip_free(&c);
    return st;
}

sb_status sbi_mosi_read_mmsa(mosi_loader *L)
{
    sb_csv *csv = NULL;
    sb_status st = sb_csv_open(L->label_path, ',', &csv, L->err);
    if (st != SB_OK)
        return st;
    int idx[C_COUNT];
    size_t n_header = 0;
    int have_header = 0;
    for (;;) {
        const char *const *f = NULL;
        size_t n = 0;
        int eof = 0;
        if ((st = sb_csv_next(csv, &f, &n, &eof, L->err)) != SB_OK)
            break;
        if (eof)
            break;
        long line = sb_csv_line(csv);
        if (n == 1 && f[0][0] == '\0')
            continue; /* a blank line */
        if (!have_header) {
            if ((st = map_header(L, line, f, n, idx)) != SB_OK)
                break;
            have_header = 1;
            n_header = n;
            continue;
        }
        if (n != n_header) {
            st = sbi_mosi_line_error(L, L->label_path, line, SB_ERR_FORMAT,
                                     "%zu fields, but the header has %zu; is a text with a comma "
                                     "not quoted?",
                                     n, n_header);
            break;
        }
        if ((st = take_row(L, line, f, n, idx)) != SB_OK)
            break;
        if ((L->n & 4095) == 0 && L->host && L->host->cancelled(L->host)) {
            st = sb_error_set(L->err, SB_ERR_CANCELLED, L->label_path, "cancelled while reading");
            break;
        }
    }
    sb_csv_close(&csv);
    if (st == SB_OK && !have_header)
        st = sb_error_set(L->err, SB_ERR_FORMAT, L->label_path,
                          "the file is empty; an MMSA label.csv starts with the header "
                          "video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode");
    if (st == SB_OK) {
        L->split_note = "the MMSA mode column (train / valid / test)";
        L->own_splits = 1;
    }
    return st;
}
