/* plugins/labellers/llm/prompt.c — prompt templates for the llm labeller: `{{variable}}`
 * substitution over an utterance, its dialogue context (previous and following turns from
 * the corpus, ordered by turn) and the label words. Templates are parsed once at create,
 * so an unknown variable is reported with its file and line before any request. */
#include "llm.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- label words ------------------------------------------------------------------- */

sb_status llm_labels_build(const sb_corpus *c, const char *map_json, const char *where,
                           llm_labels *out, sb_error *err)
{
    memset(out, 0, sizeof *out);
    int n = sb_corpus_n_classes(c);
    if (n <= 0)
        return sb_error_set(err, SB_ERR_CONFIG, sb_corpus_name(c),
                            "corpus %s has no label space; the llm labeller needs the classes "
                            "to ask for",
                            sb_corpus_name(c));
    json_error_t je;
    json_t *map = json_loads(map_json && *map_json ? map_json : "{}", 0, &je);
    if (!json_is_object(map)) {
        json_decref(map);
        return sb_error_set(err, SB_ERR_CONFIG, where, "label_names must be a mapping");
    }
    sb_status st = SB_OK;
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v)
    {
        if (sb_corpus_class_index(c, k) < 0) {
            st = sb_error_set(err, SB_ERR_CONFIG, where,
                              "label_names: '%s' is not a class of corpus %s (label space %s); "
                              "use the class names `serbench corpus` prints",
                              k, sb_corpus_name(c), sb_corpus_label_space(c));
            break;
        }
        const char *w = json_string_value(v);
        size_t wl = w ? strlen(w) : 0;
        if (!w || !wl || isspace((unsigned char)w[0]) || isspace((unsigned char)w[wl - 1]) ||
            strchr(w, '"') || strchr(w, ',') || strchr(w, '\n')) {
            st = sb_error_set(err, SB_ERR_CONFIG, where,
                              "label_names: the word for '%s' must be a non-empty string without "
                              "quotes, commas, newlines or surrounding spaces",
                              k);
            break;
        }
    }
    out->names = st == SB_OK ? calloc((size_t)n, sizeof *out->names) : NULL;
    if (st == SB_OK && !out->names)
        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    if (st == SB_OK) {
        out->n = n;
        for (int i = 0; i < n && st == SB_OK; i++) {
            const char *cls = sb_corpus_class(c, i);
            const char *w = json_string_value(json_object_get(map, cls));
            out->names[i] = strdup(w ? w : cls);
            if (!out->names[i])
                st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        }
        for (int i = 0; i < n && st == SB_OK; i++)
            for (int j = i + 1; j < n && st == SB_OK; j++)
                if (strcasecmp(out->names[i], out->names[j]) == 0)
                    st = sb_error_set(err, SB_ERR_CONFIG, where,
                                      "label_names: classes '%s' and '%s' would both be shown as "
                                      "'%s'; the model's answer could not tell them apart",
                                      sb_corpus_class(c, i), sb_corpus_class(c, j), out->names[i]);
    }
    json_decref(map);
    if (st != SB_OK)
        llm_labels_free(out);
    return st;
}

void llm_labels_free(llm_labels *l)
{
    if (l->names)
        for (int i = 0; i < l->n; i++)
            free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

/* ---- templates --------------------------------------------------------------------- */

enum {
    V_UTTERANCE,
    V_SPEAKER,
    V_DIALOGUE,
    V_TURN,
    V_LABELS,
    V_LABELS_LIST,
    V_CONTEXT,
    V_NEXT_CONTEXT,
    V_SPLIT,
    V_META, /* meta.KEY */
    V_N
};

static const char *const var_names[V_N] = {
    "utterance",   "speaker", "dialogue",     "turn",  "labels",
    "labels_list", "context", "next_context", "split", "meta.KEY",
};

typedef struct seg {
    int var;    /* -1 = literal */
    char *text; /* literal text, or the meta key */
} seg;

struct llm_template {
    seg *segs;
    size_t n;
};

static int push_seg(llm_template *t, int var, const char *s, size_t n)
{
    seg *g = realloc(t->segs, (t->n + 1) * sizeof *g);
    if (!g)
        return 0;
    t->segs = g;
    char *text = malloc(n + 1);
    if (!text)
        return 0;
    memcpy(text, s, n);
    text[n] = 0;
    t->segs[t->n++] = (seg){ var, text };
    return 1;
}

sb_status llm_template_parse(const char *text, const char *file, llm_template **out, sb_error *err)
{
    *out = NULL;
    llm_template *t = calloc(1, sizeof *t);
    if (!t)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    sb_status st = SB_OK;
    const char *p = text, *lit = text;
    long line = 1;
    char where[1100];
    while (*p && st == SB_OK) {
        if (p[0] == '\n') {
            line++;
            p++;
            continue;
        }
        if (p[0] != '{' || p[1] != '{') {
            p++;
            continue;
        }
        if (p > lit && !push_seg(t, -1, lit, (size_t)(p - lit))) {
            st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
            break;
        }
        const char *close = strstr(p + 2, "}}");
        const char *nl = strchr(p + 2, '\n');
        snprintf(where, sizeof where, "%s:%ld", file, line);
        if (!close || (nl && nl < close)) {
            st = sb_error_set(err, SB_ERR_CONFIG, where,
                              "'{{' is not closed by '}}' on the same line; variables are "
                              "written {{name}}");
            break;
        }
        const char *a = p + 2, *b = close;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        size_t len = (size_t)(b - a);
        int var = -1;
        for (int v = 0; v < V_META; v++)
            if (strlen(var_names[v]) == len && strncmp(var_names[v], a, len) == 0)
                var = v;
        const char *key = a;
        size_t key_len = 0;
        if (var < 0 && len > 5 && strncmp(a, "meta.", 5) == 0) {
            key = a + 5;
            key_len = len - 5;
            int good = 1;
            for (size_t i = 0; i < key_len; i++)
                good &= key[i] != '{' && key[i] != '}' && !isspace((unsigned char)key[i]);
            if (good)
                var = V_META;
        }
        if (var < 0) {
            st = sb_error_set(err, SB_ERR_CONFIG, where,
                              "unknown template variable '{{%.*s}}'; known: utterance, speaker, "
                              "dialogue, turn, labels, labels_list, context, next_context, "
                              "split, meta.KEY (a field of the utterance's meta)",
                              (int)(len > 80 ? 80 : len), a);
            break;
        }
        if (!push_seg(t, var, var == V_META ? key : "", var == V_META ? key_len : 0)) {
            st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
            break;
        }
        p = close + 2;
        lit = p;
    }
    if (st == SB_OK && p > lit && !push_seg(t, -1, lit, (size_t)(p - lit)))
        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    if (st == SB_OK && !llm_template_uses(t, "utterance"))
        st = sb_error_set(err, SB_ERR_CONFIG, file,
                          "the template never uses {{utterance}}: the model would not see the "
                          "utterance to label (quote it as <<<{{utterance}}>>>)");
    if (st != SB_OK) {
        llm_template_destroy(&t);
        return st;
    }
    *out = t;
    return SB_OK;
}

sb_status llm_template_load(const char *path, llm_template **out, sb_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sb_error_set(err, SB_ERR_IO, path, "cannot read the prompt template: %s",
                            strerror(errno));
    oai_buf b = { 0 };
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        oai_buf_add(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad || b.oom) {
        oai_buf_free(&b);
        return sb_error_set(err, bad ? SB_ERR_IO : SB_ERR_NOMEM, path,
                            "cannot read the prompt template");
    }
    size_t len = b.n;
    char *text = oai_buf_take(&b);
    if (!text)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    sb_status st = SB_OK;
    if (strlen(text) != len || !sb_utf8_valid(text, len))
        st = sb_error_set(err, SB_ERR_FORMAT, path,
                          "the prompt template is not UTF-8 text (or holds a NUL byte)");
    if (st == SB_OK)
        st = llm_template_parse(text, path, out, err);
    free(text);
    return st;
}

void llm_template_destroy(llm_template **t)
{
    if (!t || !*t)
        return;
    for (size_t i = 0; i < (*t)->n; i++)
        free((*t)->segs[i].text);
    free((*t)->segs);
    free(*t);
    *t = NULL;
}

int llm_template_uses(const llm_template *t, const char *var)
{
    for (size_t i = 0; i < t->n; i++) {
        int v = t->segs[i].var;
        if (v >= 0 && v < V_META && strcmp(var_names[v], var) == 0)
            return 1;
    }
    return 0;
}

/* ---- dialogue order ---------------------------------------------------------------- */

struct llm_dialogues {
    size_t n;
    size_t *order; /* corpus indices grouped by dialogue, by turn within one */
    size_t *pos;   /* pos[u]: u's position in order */
    size_t *start; /* start[u], end[u]: u's dialogue's range in order */
    size_t *end;
};

typedef struct dkey {
    const char *dialogue;
    int32_t turn;
    size_t idx;
} dkey;

static int dkey_cmp(const void *pa, const void *pb)
{
    const dkey *a = pa, *b = pb;
    int c = strcmp(a->dialogue, b->dialogue);
    if (c)
        return c;
    if (a->turn != b->turn)
        return a->turn < b->turn ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

sb_status llm_dialogues_build(const sb_corpus *c, llm_dialogues **out, sb_error *err)
{
    *out = NULL;
    size_t n = sb_corpus_size(c);
    llm_dialogues *d = calloc(1, sizeof *d);
    dkey *keys = malloc((n + 1) * sizeof *keys);
    if (d) {
        d->n = n;
        d->order = malloc((n + 1) * sizeof *d->order);
        d->pos = malloc((n + 1) * sizeof *d->pos);
        d->start = malloc((n + 1) * sizeof *d->start);
        d->end = malloc((n + 1) * sizeof *d->end);
    }
    if (!d || !keys || !d->order || !d->pos || !d->start || !d->end) {
        free(keys);
        llm_dialogues_destroy(&d);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    /* Utterances without a dialogue id form a dialogue of their own (the empty key would
     * join them all), so their window is empty. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const sb_utt *u = sb_corpus_utt(c, i);
        if (u->dialogue)
            keys[m++] = (dkey){ u->dialogue, u->turn, i };
        else
            d->pos[i] = SIZE_MAX;
    }
    qsort(keys, m, sizeof *keys, dkey_cmp);
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        d->order[k++] = keys[i].idx;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && strcmp(keys[j].dialogue, keys[i].dialogue) == 0)
            j++;
        for (size_t q = i; q < j; q++) {
            d->pos[keys[q].idx] = q;
            d->start[keys[q].idx] = i;
            d->end[keys[q].idx] = j;
        }
        i = j;
    }
    free(keys);
    *out = d;
    return SB_OK;
}

void llm_dialogues_destroy(llm_dialogues **d)
{
    if (!d || !*d)
        return;
    free((*d)->order);
    free((*d)->pos);
    free((*d)->start);
    free((*d)->end);
    free(*d);
    *d = NULL;
}

void llm_dialogues_window(const llm_dialogues *d, const sb_corpus *c, size_t u, int before,
                          int after, size_t *idx, size_t *n_prev, size_t *n_next)
{
    *n_prev = *n_next = 0;
    if (u >= d->n || d->pos[u] == SIZE_MAX)
        return;
    size_t p = d->pos[u], lo = d->start[u], hi = d->end[u];
    /* Walk back collecting turns with a transcript, then reverse to oldest first. */
    size_t np = 0;
    for (size_t q = p; q > lo && np < (size_t)before;) {
        q--;
        const sb_utt *x = sb_corpus_utt(c, d->order[q]);
        if (x->text && *x->text)
            idx[np++] = d->order[q];
    }
    for (size_t i = 0; i < np / 2; i++) {
        size_t t = idx[i];
        idx[i] = idx[np - 1 - i];
        idx[np - 1 - i] = t;
    }
    size_t nn = 0;
    for (size_t q = p + 1; q < hi && nn < (size_t)after; q++) {
        const sb_utt *x = sb_corpus_utt(c, d->order[q]);
        if (x->text && *x->text)
            idx[np + nn++] = d->order[q];
    }
    *n_prev = np;
    *n_next = nn;
}

/* ---- rendering --------------------------------------------------------------------- */

static void add_turns(oai_buf *b, const sb_corpus *c, const size_t *idx, size_t n)
{
    if (!n) {
        oai_buf_str(b, "(none)");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const sb_utt *x = sb_corpus_utt(c, idx[i]);
        oai_buf_printf(b, "%s%s: %s", i ? "\n" : "", x->speaker && *x->speaker ? x->speaker : "?",
                       x->text);
    }
}

/* A meta field as text: strings as they are, numbers and booleans printed; 0 when the
 * field is missing, null, or an array/object. */
static int add_meta(oai_buf *b, json_t *meta, const char *key)
{
    json_t *v = json_object_get(meta, key);
    if (json_is_string(v))
        oai_buf_str(b, json_string_value(v));
    else if (json_is_integer(v))
        oai_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        oai_buf_printf(b, "%g", json_real_value(v));
    else if (json_is_boolean(v))
        oai_buf_str(b, json_is_true(v) ? "true" : "false");
    else
        return 0;
    return 1;
}

char *llm_render(const llm_template *t, const sb_corpus *c, const llm_dialogues *d, size_t u,
                 const llm_labels *l, int before, int after, char *why, size_t why_size)
{
    const sb_utt *x = sb_corpus_utt(c, u);
    if (!x->text || !*x->text) {
        snprintf(why, why_size,
                 "the utterance has no transcript; the llm labeller labels from text");
        return NULL;
    }
    size_t *win = malloc(((size_t)before + (size_t)after + 1) * sizeof *win);
    if (!win) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    size_t np = 0, nn = 0;
    if (d)
        llm_dialogues_window(d, c, u, before, after, win, &np, &nn);
    json_t *meta = NULL;
    oai_buf b = { 0 };
    int bad = 0;
    for (size_t i = 0; i < t->n && !bad; i++) {
        const seg *s = &t->segs[i];
        switch (s->var) {
        case -1: oai_buf_str(&b, s->text); break;
        case V_UTTERANCE: oai_buf_str(&b, x->text); break;
        case V_SPEAKER: oai_buf_str(&b, x->speaker && *x->speaker ? x->speaker : "?"); break;
        case V_DIALOGUE: oai_buf_str(&b, x->dialogue ? x->dialogue : ""); break;
        case V_TURN:
            if (x->turn >= 0)
                oai_buf_printf(&b, "%ld", (long)x->turn);
            break;
        case V_SPLIT: oai_buf_str(&b, x->split ? x->split : ""); break;
        case V_LABELS:
            for (int k = 0; k < l->n; k++)
                oai_buf_printf(&b, "%s%s", k ? ", " : "", l->names[k]);
            break;
        case V_LABELS_LIST:
            for (int k = 0; k < l->n; k++)
                oai_buf_printf(&b, "%s%s", k ? "\n" : "", l->names[k]);
            break;
        case V_CONTEXT: add_turns(&b, c, win, np); break;
        case V_NEXT_CONTEXT: add_turns(&b, c, win + np, nn); break;
        case V_META:
            if (!meta && x->meta)
                meta = json_loads(x->meta, 0, NULL);
            if (!add_meta(&b, meta, s->text)) {
                snprintf(why, why_size,
                         "the template uses {{meta.%s}} but this utterance's meta has no such "
                         "string or number field",
                         s->text);
                bad = 1;
            }
            break;
        default: break;
        }
    }
    json_decref(meta);
    free(win);
    if (bad) {
        oai_buf_free(&b);
        return NULL;
    }
    char *out = oai_buf_take(&b);
    if (!out)
        snprintf(why, why_size, "out of memory");
    return out;
}
