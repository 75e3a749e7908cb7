/* core/lib/base/corpus.c — the utterance table: append-only while a dataset plugin loads
 * it, read-only afterwards. Ids are indexed by an open-addressing hash table. */
#include <serbench/corpus.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <xxhash.h>

#include "util.h"

typedef struct warning {
    char *utt_id;
    char *msg;
} warning;

typedef struct rating {
    size_t utt;
    char *rater, *label;
} rating;

typedef struct info_kv {
    char *key, *value;
} info_kv;

struct sb_corpus {
    char *name;
    char *space;
    char **classes;
    int n_classes;
    sb_utt *utts;
    size_t n, cap;
    long *index; /* open addressing over utts, -1 = empty; size index_cap (power of 2) */
    size_t index_cap;
    warning *warnings;
    size_t n_warnings, cap_warnings;
    warning *notes; /* same shape: an id and a text */
    size_t n_notes, cap_notes;
    rating *ratings; /* in the order added, grouped per utterance via first/count below */
    size_t n_ratings, cap_ratings;
    size_t *rating_first, *rating_count; /* [n] per utterance, built on first read */
    unsigned char *rated;                /* [rated_cap] utterance has ratings */
    size_t rated_cap;
    info_kv *info;
    size_t n_info;
};

void sb_utt_init(sb_utt *u)
{
    memset(u, 0, sizeof *u);
    u->struct_size = sizeof *u;
    u->turn = -1;
    u->channel = -1;
    u->label = -1;
    u->start = 0.0;
    u->end = -1.0;
    u->value = NAN;
}

sb_status sb_corpus_create(const char *name, sb_corpus **out, sb_error *err)
{
    sb_corpus *c = calloc(1, sizeof *c);
    if (!c || !(c->name = strdup(name ? name : "corpus"))) {
        free(c);
        return sb_error_set(err, SB_ERR_NOMEM, name, "out of memory");
    }
    *out = c;
    return SB_OK;
}

static void utt_free_strings(sb_utt *u)
{
    free((char *)u->id);
    free((char *)u->dialogue);
    free((char *)u->speaker);
    free((char *)u->audio);
    free((char *)u->text);
    free((char *)u->split);
    free((char *)u->meta);
}

void sb_corpus_destroy(sb_corpus **cp)
{
    if (!cp || !*cp)
        return;
    sb_corpus *c = *cp;
    for (size_t i = 0; i < c->n; i++)
        utt_free_strings(&c->utts[i]);
    for (int i = 0; i < c->n_classes; i++)
        free(c->classes[i]);
    for (size_t i = 0; i < c->n_warnings; i++) {
        free(c->warnings[i].utt_id);
        free(c->warnings[i].msg);
    }
    free(c->warnings);
    for (size_t i = 0; i < c->n_notes; i++) {
        free(c->notes[i].utt_id);
        free(c->notes[i].msg);
    }
    free(c->notes);
    for (size_t i = 0; i < c->n_ratings; i++) {
        free(c->ratings[i].rater);
        free(c->ratings[i].label);
    }
    free(c->ratings);
    free(c->rating_first);
    free(c->rating_count);
    free(c->rated);
    for (size_t i = 0; i < c->n_info; i++) {
        free(c->info[i].key);
        free(c->info[i].value);
    }
    free(c->info);
    free(c->classes);
    free(c->utts);
    free(c->index);
    free(c->space);
    free(c->name);
    free(c);
    *cp = NULL;
}

sb_status sb_corpus_set_classes(sb_corpus *c, const char *space_name, const char *const *classes,
                                int n, sb_error *err)
{
    if (c->classes)
        return sb_error_set(err, SB_ERR_INTERNAL, c->name, "label space declared twice");
    if (n < 1)
        return sb_error_set(err, SB_ERR_INVALID, c->name, "a label space needs at least one class");
    c->classes = calloc((size_t)n, sizeof *c->classes);
    c->space = strdup(space_name ? space_name : c->name);
    if (!c->classes || !c->space)
        return sb_error_set(err, SB_ERR_NOMEM, c->name, "out of memory");
    for (int i = 0; i < n; i++) {
        if (!classes[i] || !*classes[i])
            return sb_error_set(err, SB_ERR_INVALID, c->name, "class %d has an empty name", i);
        for (int j = 0; j < i; j++)
            if (strcmp(classes[i], classes[j]) == 0)
                return sb_error_set(err, SB_ERR_INVALID, c->name,
                                    "class '%s' is listed twice in the label space", classes[i]);
        if (!(c->classes[i] = strdup(classes[i])))
            return sb_error_set(err, SB_ERR_NOMEM, c->name, "out of memory");
        c->n_classes = i + 1;
    }
    return SB_OK;
}

static size_t id_hash(const char *id)
{
    return (size_t)XXH3_64bits(id, strlen(id));
}

static int index_grow(sb_corpus *c)
{
    size_t cap = c->index_cap ? c->index_cap * 2 : 1024;
    long *idx = malloc(cap * sizeof *idx);
    if (!idx)
        return -1;
    for (size_t i = 0; i < cap; i++)
        idx[i] = -1;
    for (size_t k = 0; k < c->n; k++) {
        size_t h = id_hash(c->utts[k].id) & (cap - 1);
        while (idx[h] >= 0)
            h = (h + 1) & (cap - 1);
        idx[h] = (long)k;
    }
    free(c->index);
    c->index = idx;
    c->index_cap = cap;
    return 0;
}

long sb_corpus_find(const sb_corpus *c, const char *id)
{
    if (!c->index_cap || !id)
        return -1;
    size_t h = id_hash(id) & (c->index_cap - 1);
    while (c->index[h] >= 0) {
        if (strcmp(c->utts[c->index[h]].id, id) == 0)
            return c->index[h];
        h = (h + 1) & (c->index_cap - 1);
    }
    return -1;
}

sb_status sb_corpus_add(sb_corpus *c, const sb_utt *u, sb_error *err)
{
    if (!u || u->struct_size < offsetof(sb_utt, value) + sizeof u->value)
        return sb_error_set(err, SB_ERR_INTERNAL, c->name,
                            "sb_corpus_add: sb_utt.struct_size not set (call sb_utt_init)");
    if (!u->id || !*u->id)
        return sb_error_set(err, SB_ERR_INVALID, c->name, "an utterance has no id");
    char where[300];
    snprintf(where, sizeof where, "utterance %s", u->id);
    if (u->audio && !*u->audio)
        return sb_error_set(err, SB_ERR_INVALID, where, "empty audio path (use NULL for none)");
    if (!u->split || !*u->split)
        return sb_error_set(err, SB_ERR_INVALID, where, "no split");
    if (u->label >= 0 && u->label >= c->n_classes)
        return sb_error_set(err, SB_ERR_INVALID, where,
                            "label index %d outside the label space of %d classes", (int)u->label,
                            c->n_classes);
    if (u->end >= 0 && u->end <= u->start)
        return sb_error_set(err, SB_ERR_INVALID, where, "end %.3f s is not after start %.3f s",
                            u->end, u->start);
    int has_meta = u->struct_size >= offsetof(sb_utt, meta) + sizeof u->meta && u->meta;
    if (has_meta) {
        json_error_t je;
        json_t *m = json_loads(u->meta, JSON_REJECT_DUPLICATES, &je);
        int ok = json_is_object(m);
        json_decref(m);
        if (!ok)
            return sb_error_set(err, SB_ERR_INVALID, where, "meta is not a JSON object: %s",
                                m ? "not an object" : je.text);
    }
    if (sb_corpus_find(c, u->id) >= 0)
        return sb_error_set(err, SB_ERR_INVALID, where, "duplicate utterance id");
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        sb_utt *p = realloc(c->utts, cap * sizeof *p);
        if (!p)
            return sb_error_set(err, SB_ERR_NOMEM, where, "out of memory");
        c->utts = p;
        c->cap = cap;
    }
    if ((c->n + 1) * 2 > c->index_cap && index_grow(c) != 0)
        return sb_error_set(err, SB_ERR_NOMEM, where, "out of memory");
    sb_utt *d = &c->utts[c->n];
    sb_utt_init(d);
    d->turn = u->turn;
    d->start = u->start;
    d->end = u->end;
    d->channel = u->channel;
    d->label = u->label < 0 ? -1 : u->label;
    d->value = u->value;
    d->id = strdup(u->id);
    d->audio = sbi_strdup(u->audio);
    d->meta = has_meta ? sbi_strdup(u->meta) : NULL;
    d->split = strdup(u->split);
    d->dialogue = sbi_strdup(u->dialogue);
    d->speaker = sbi_strdup(u->speaker);
    d->text = sbi_strdup(u->text);
    if (!d->id || (u->audio && !d->audio) || (has_meta && !d->meta) || !d->split ||
        (u->dialogue && !d->dialogue) || (u->speaker && !d->speaker) || (u->text && !d->text)) {
        utt_free_strings(d);
        return sb_error_set(err, SB_ERR_NOMEM, where, "out of memory");
    }
    size_t h = id_hash(d->id) & (c->index_cap - 1);
    while (c->index[h] >= 0)
        h = (h + 1) & (c->index_cap - 1);
    c->index[h] = (long)c->n;
    c->n++;
    return SB_OK;
}

static void add_item_text(warning **arr, size_t *n, size_t *cap, const char *utt_id,
                          const char *fmt, va_list ap) SB_PRINTF(5, 0);
static void add_item_text(warning **arr, size_t *n, size_t *cap, const char *utt_id,
                          const char *fmt, va_list ap)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        warning *p = realloc(*arr, nc * sizeof *p);
        if (!p)
            return;
        *arr = p;
        *cap = nc;
    }
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    warning *w = &(*arr)[*n];
    w->utt_id = sbi_strdup(utt_id ? utt_id : "");
    w->msg = msg;
    if (!w->utt_id || !w->msg) {
        free(w->utt_id);
        free(w->msg);
        return;
    }
    (*n)++;
}

void sb_corpus_warn_item(sb_corpus *c, const char *utt_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_item_text(&c->warnings, &c->n_warnings, &c->cap_warnings, utt_id, fmt, ap);
    va_end(ap);
}

void sb_corpus_note_item(sb_corpus *c, const char *utt_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_item_text(&c->notes, &c->n_notes, &c->cap_notes, utt_id, fmt, ap);
    va_end(ap);
}

size_t sb_corpus_n_notes(const sb_corpus *c)
{
    return c->n_notes;
}

const char *sb_corpus_note(const sb_corpus *c, size_t i, const char **utt_id)
{
    if (i >= c->n_notes)
        return NULL;
    if (utt_id)
        *utt_id = c->notes[i].utt_id;
    return c->notes[i].msg;
}

const char *sb_corpus_item_note(const sb_corpus *c, size_t u)
{
    if (u >= c->n)
        return NULL;
    for (size_t i = 0; i < c->n_notes; i++)
        if (strcmp(c->notes[i].utt_id, c->utts[u].id) == 0)
            return c->notes[i].msg;
    return NULL;
}

sb_status sb_corpus_add_rating(sb_corpus *c, const char *utt_id, const char *rater,
                               const char *label, sb_error *err)
{
    long k = sb_corpus_find(c, utt_id);
    if (k < 0)
        return sb_error_set(err, SB_ERR_NOT_FOUND, utt_id,
                            "rating for an utterance not added (add the utterance first)");
    if (!rater || !label)
        return sb_error_set(err, SB_ERR_INVALID, utt_id, "rating without rater or label");
    /* Ratings of one utterance are added together, as corpus files list them: a flag per
     * utterance that has ratings makes the check constant-time. */
    if (c->rated_cap < c->n) {
        size_t cap = c->n * 2;
        unsigned char *r = realloc(c->rated, cap);
        if (!r)
            return sb_error_set(err, SB_ERR_NOMEM, utt_id, "out of memory");
        memset(r + c->rated_cap, 0, cap - c->rated_cap);
        c->rated = r;
        c->rated_cap = cap;
    }
    if (c->rated[k] && c->ratings[c->n_ratings - 1].utt != (size_t)k)
        return sb_error_set(err, SB_ERR_INTERNAL, utt_id,
                            "ratings of one utterance must be added consecutively");
    c->rated[k] = 1;
    if (c->n_ratings == c->cap_ratings) {
        size_t cap = c->cap_ratings ? c->cap_ratings * 2 : 256;
        rating *p = realloc(c->ratings, cap * sizeof *p);
        if (!p)
            return sb_error_set(err, SB_ERR_NOMEM, utt_id, "out of memory");
        c->ratings = p;
        c->cap_ratings = cap;
    }
    rating *r = &c->ratings[c->n_ratings];
    r->utt = (size_t)k;
    r->rater = strdup(rater);
    r->label = strdup(label);
    if (!r->rater || !r->label) {
        free(r->rater);
        free(r->label);
        return sb_error_set(err, SB_ERR_NOMEM, utt_id, "out of memory");
    }
    c->n_ratings++;
    free(c->rating_first); /* the per-utterance index is rebuilt on the next read */
    free(c->rating_count);
    c->rating_first = c->rating_count = NULL;
    return SB_OK;
}

/* Build the per-utterance index of ratings (first position, count). Reads happen after
 * loading, single-threaded in the host, before the corpus is shared. */
static int index_ratings(sb_corpus *c)
{
    if (c->rating_first)
        return 0;
    c->rating_first = calloc(c->n + 1, sizeof *c->rating_first);
    c->rating_count = calloc(c->n + 1, sizeof *c->rating_count);
    if (!c->rating_first || !c->rating_count)
        return -1;
    for (size_t i = c->n_ratings; i-- > 0;) {
        c->rating_first[c->ratings[i].utt] = i;
        c->rating_count[c->ratings[i].utt]++;
    }
    return 0;
}

size_t sb_corpus_n_ratings(const sb_corpus *c, size_t i)
{
    if (i >= c->n || !c->n_ratings || index_ratings((sb_corpus *)c) != 0)
        return 0;
    return c->rating_count[i];
}

const char *sb_corpus_rating(const sb_corpus *c, size_t i, size_t k, const char **rater)
{
    if (k >= sb_corpus_n_ratings(c, i))
        return NULL;
    const rating *r = &c->ratings[c->rating_first[i] + k];
    if (rater)
        *rater = r->rater;
    return r->label;
}

sb_status sb_corpus_set_info(sb_corpus *c, const char *key, const char *value, sb_error *err)
{
    if (!key || !value)
        return sb_error_set(err, SB_ERR_INVALID, c->name, "info needs a key and a value");
    for (size_t i = 0; i < c->n_info; i++)
        if (strcmp(c->info[i].key, key) == 0) {
            char *v = strdup(value);
            if (!v)
                return sb_error_set(err, SB_ERR_NOMEM, c->name, "out of memory");
            free(c->info[i].value);
            c->info[i].value = v;
            return SB_OK;
        }
    info_kv *p = realloc(c->info, (c->n_info + 1) * sizeof *p);
    if (!p)
        return sb_error_set(err, SB_ERR_NOMEM, c->name, "out of memory");
    c->info = p;
    p[c->n_info].key = strdup(key);
    p[c->n_info].value = strdup(value);
    if (!p[c->n_info].key || !p[c->n_info].value) {
        free(p[c->n_info].key);
        free(p[c->n_info].value);
        return sb_error_set(err, SB_ERR_NOMEM, c->name, "out of memory");
    }
    c->n_info++;
    return SB_OK;
}

size_t sb_corpus_n_info(const sb_corpus *c)
{
    return c->n_info;
}

const char *sb_corpus_info_at(const sb_corpus *c, size_t k, const char **key)
{
    if (k >= c->n_info)
        return NULL;
    if (key)
        *key = c->info[k].key;
    return c->info[k].value;
}

const char *sb_corpus_info(const sb_corpus *c, const char *key)
{
    for (size_t i = 0; key && i < c->n_info; i++)
        if (strcmp(c->info[i].key, key) == 0)
            return c->info[i].value;
    return NULL;
}

const char *sb_corpus_name(const sb_corpus *c)
{
    return c->name;
}
size_t sb_corpus_size(const sb_corpus *c)
{
    return c->n;
}
const sb_utt *sb_corpus_utt(const sb_corpus *c, size_t i)
{
    return i < c->n ? &c->utts[i] : NULL;
}
int sb_corpus_n_classes(const sb_corpus *c)
{
    return c->n_classes;
}
const char *sb_corpus_class(const sb_corpus *c, int i)
{
    return (i >= 0 && i < c->n_classes) ? c->classes[i] : NULL;
}
const char *sb_corpus_label_space(const sb_corpus *c)
{
    return c->space;
}

int sb_corpus_class_index(const sb_corpus *c, const char *name)
{
    for (int i = 0; i < c->n_classes; i++)
        if (strcmp(c->classes[i], name) == 0)
            return i;
    return -1;
}

size_t sb_corpus_n_warnings(const sb_corpus *c)
{
    return c->n_warnings;
}

const char *sb_corpus_warning(const sb_corpus *c, size_t i, const char **utt_id)
{
    if (i >= c->n_warnings)
        return NULL;
    if (utt_id)
        *utt_id = c->warnings[i].utt_id;
    return c->warnings[i].msg;
}
