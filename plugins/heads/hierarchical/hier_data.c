/* plugins/heads/hierarchical/hier_data.c — a split's dialogues as the context stages see
 * them: rows grouped by dialogue and ordered by turn, cut into windows of at most max_turns,
 * speakers numbered by first appearance, and batches of similar-length windows. */
#include "hier.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct row_key {
    const char *dia; /* NULL: the row is a dialogue of its own */
    int32_t turn;
    size_t row;
} row_key;

static int cmp_key(const void *pa, const void *pb)
{
    const row_key *a = pa, *b = pb;
    if (!a->dia || !b->dia) {
        if (a->dia)
            return -1;
        if (b->dia)
            return 1;
        return a->row < b->row ? -1 : a->row > b->row;
    }
    int c = strcmp(a->dia, b->dia);
    if (c)
        return c;
    if (a->turn != b->turn)
        return a->turn < b->turn ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

/* Windows sorted by length, ties by position: (len, index) pairs. */
typedef struct win_key {
    int len;
    size_t w;
} win_key;

static int cmp_win(const void *pa, const void *pb)
{
    const win_key *a = pa, *b = pb;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->w < b->w ? -1 : a->w > b->w;
}

void hier_plan_free(hier_plan *p)
{
    free(p->rows);
    free(p->spk);
    free(p->first);
    free(p->len);
    free(p->order);
    free(p->b_first);
    free(p->b_n);
    free(p->b_T);
    memset(p, 0, sizeof *p);
}

static int same_dialogue(const row_key *a, const row_key *b)
{
    return a->dia && b->dia && strcmp(a->dia, b->dia) == 0;
}

static int same_speaker(const char *a, const char *b)
{
    if (!a || !b)
        return !a && !b;
    return strcmp(a, b) == 0;
}

sb_status hier_plan_build(hier_plan *p, const sb_head_data *d, const int *has_target,
                          int labelled_only, int max_turns, int max_speakers, int batch_dialogues,
                          int max_batch_utts, sb_error *err)
{
    memset(p, 0, sizeof *p);
    size_t n = d->n;
    if (n == 0)
        return SB_OK;
    row_key *keys = malloc(n * sizeof *keys);
    const char **seen = malloc(n * sizeof *seen);
    win_key *wk = NULL;
    p->rows = malloc(n * sizeof *p->rows);
    p->spk = malloc(n * sizeof *p->spk);
    p->first = malloc(n * sizeof *p->first);
    p->len = malloc(n * sizeof *p->len);
    if (!keys || !seen || !p->rows || !p->spk || !p->first || !p->len)
        goto nomem;
    const char *const *spk_of =
        d->struct_size >= offsetof(sb_head_data, speaker) + sizeof d->speaker ? d->speaker : NULL;
    for (size_t i = 0; i < n; i++)
        keys[i] = (row_key){ d->dialogue ? d->dialogue[i] : NULL, d->turn ? d->turn[i] : -1, i };
    qsort(keys, n, sizeof *keys, cmp_key);

    size_t nw = 0, nr = 0;
    for (size_t s = 0; s < n;) {
        size_t e = s + 1;
        while (e < n && same_dialogue(&keys[s], &keys[e]))
            e++;
        /* speakers of this dialogue by first appearance */
        int n_seen = 0;
        for (size_t i = s; i < e; i++) {
            const char *sp = spk_of ? spk_of[keys[i].row] : NULL;
            int k = 0;
            while (k < n_seen && !same_speaker(seen[k], sp))
                k++;
            if (k == n_seen)
                seen[n_seen++] = sp;
            keys[i].turn = k < max_speakers - 1 ? k : max_speakers - 1; /* reuse: speaker */
        }
        for (size_t w0 = s; w0 < e; w0 += (size_t)max_turns) {
            size_t w1 = w0 + (size_t)max_turns < e ? w0 + (size_t)max_turns : e;
            int any = !labelled_only;
            for (size_t i = w0; i < w1 && !any; i++)
                any = has_target[keys[i].row];
            if (!any)
                continue;
            p->first[nw] = nr;
            p->len[nw] = (int)(w1 - w0);
            for (size_t i = w0; i < w1; i++) {
                p->rows[nr] = keys[i].row;
                p->spk[nr] = keys[i].turn;
                nr++;
            }
            nw++;
        }
        s = e;
    }
    p->n_rows = nr;
    p->n_win = nw;
    free(keys);
    free(seen);
    keys = NULL;
    seen = NULL;
    if (nw == 0)
        return SB_OK;

    wk = malloc(nw * sizeof *wk);
    p->order = malloc(nw * sizeof *p->order);
    p->b_first = malloc(nw * sizeof *p->b_first);
    p->b_n = malloc(nw * sizeof *p->b_n);
    p->b_T = malloc(nw * sizeof *p->b_T);
    if (!wk || !p->order || !p->b_first || !p->b_n || !p->b_T)
        goto nomem;
    for (size_t w = 0; w < nw; w++)
        wk[w] = (win_key){ p->len[w], w };
    qsort(wk, nw, sizeof *wk, cmp_win);
    for (size_t w = 0; w < nw; w++)
        p->order[w] = wk[w].w;
    free(wk);
    wk = NULL;
    /* Greedy packing in length order: a batch's padded size is count x its longest (the
     * last added). A window longer than max_batch_utts goes alone. */
    size_t nb = 0;
    for (size_t w = 0; w < nw;) {
        int T = p->len[p->order[w]], cnt = 1;
        while (w + (size_t)cnt < nw && cnt < batch_dialogues) {
            int T2 = p->len[p->order[w + (size_t)cnt]];
            if ((long)(cnt + 1) * T2 > (long)max_batch_utts)
                break;
            T = T2;
            cnt++;
        }
        p->b_first[nb] = w;
        p->b_n[nb] = cnt;
        p->b_T[nb] = T;
        if (cnt > p->max_B)
            p->max_B = cnt;
        if (T > p->max_T)
            p->max_T = T;
        nb++;
        w += (size_t)cnt;
    }
    p->n_batch = nb;
    return SB_OK;
nomem:
    free(keys);
    free(seen);
    free(wk);
    hier_plan_free(p);
    return sb_error_set(err, SB_ERR_NOMEM, HIER_WHO,
                        "out of memory grouping %zu rows into dialogues", n);
}
