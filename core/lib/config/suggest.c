/* core/lib/config/suggest.c — "did you mean": the candidate nearest to a misspelt word by
 * edit distance (insert, delete, substitute, and swap of two neighbours, each costing 1:
 * the optimal-string-alignment form of Damerau–Levenshtein). */
#include "config_priv.h"

#include <stdlib.h>
#include <string.h>

static size_t min3(size_t a, size_t b, size_t c)
{
    size_t m = a < b ? a : b;
    return m < c ? m : c;
}

/* Distance between a[0..m) and b[0..n), or (size_t)-1 if out of memory. Three rows of
 * n+1 counts: two back (for swaps), one back, and the current one. */
static size_t osa_distance(const char *a, size_t m, const char *b, size_t n)
{
    size_t *buf = malloc(3 * (n + 1) * sizeof *buf);
    if (!buf)
        return (size_t)-1;
    size_t *prev2 = buf, *prev = buf + (n + 1), *cur = buf + 2 * (n + 1);
    for (size_t j = 0; j <= n; j++)
        prev[j] = j;
    for (size_t i = 1; i <= m; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= n; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t d = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < d)
                d = prev2[j - 2] + 1;
            cur[j] = d;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    size_t d = prev[n];
    free(buf);
    return d;
}

const char *sbi_did_you_mean(const char *word, const char *const *candidates)
{
    if (!word || !candidates)
        return NULL;
    size_t m = strlen(word);
    size_t limit = m / 3 > 1 ? m / 3 : 1;
    const char *best = NULL;
    size_t best_d = limit + 1;
    for (const char *const *c = candidates; *c; c++) {
        size_t n = strlen(*c);
        if ((n > m ? n - m : m - n) >= best_d) /* the length gap alone is too far */
            continue;
        size_t d = osa_distance(word, m, *c, n);
        if (d < best_d) { /* ties keep the earlier candidate */
            best_d = d;
            best = *c;
        }
    }
    return best;
}
