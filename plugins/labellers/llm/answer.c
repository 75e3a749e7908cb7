/* plugins/labellers/llm/answer.c — what the llm labeller makes of a chat completion: the
 * fields it records, whether the answer is one of the label words (never coerced), a
 * distribution over the labels from logprobs, and the message of an error body in the
 * OpenAI or vLLM shape. Pure functions over JSON text; no I/O. */
#include "llm.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *llm_format_name(llm_format f)
{
    switch (f) {
    case LLM_FMT_JSON_SCHEMA: return "json_schema";
    case LLM_FMT_JSON_OBJECT: return "json_object";
    case LLM_FMT_TEXT: return "text";
    }
    return "?";
}

/* ---- chat completion --------------------------------------------------------------- */

static int64_t int_or(json_t *v)
{
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

int llm_answer_from_json(json_t *root, llm_answer *a, char *why, size_t why_size)
{
    memset(a, 0, sizeof *a);
    a->prompt_tokens = a->completion_tokens = a->cached_tokens = -1;
    if (!json_is_object(root)) {
        snprintf(why, why_size, "the body is not a JSON object");
        return 0;
    }
    json_t *choices = json_object_get(root, "choices");
    json_t *c0 = json_array_get(choices, 0);
    json_t *msg = json_object_get(c0, "message");
    if (!json_is_object(c0) || !json_is_object(msg)) {
        json_t *e = json_object_get(root, "error");
        snprintf(why, why_size, "%s",
                 e ? "an error object in a 2xx answer"
                   : "not a chat completion (no choices[0].message)");
        return 0;
    }
    json_t *content = json_object_get(msg, "content");
    if (content && !json_is_string(content) && !json_is_null(content)) {
        snprintf(why, why_size, "choices[0].message.content is neither a string nor null");
        return 0;
    }
    a->root = json_incref(root);
    a->id = json_string_value(json_object_get(root, "id"));
    a->model = json_string_value(json_object_get(root, "model"));
    a->system_fingerprint = json_string_value(json_object_get(root, "system_fingerprint"));
    a->finish_reason = json_string_value(json_object_get(c0, "finish_reason"));
    a->content = json_string_value(content);
    a->refusal = json_string_value(json_object_get(msg, "refusal"));
    json_t *lp = json_object_get(json_object_get(c0, "logprobs"), "content");
    a->logprobs = json_is_array(lp) ? lp : NULL;
    json_t *u = json_object_get(root, "usage");
    a->prompt_tokens = int_or(json_object_get(u, "prompt_tokens"));
    a->completion_tokens = int_or(json_object_get(u, "completion_tokens"));
    a->cached_tokens =
        int_or(json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
    return 1;
}

int llm_answer_parse(const char *body, size_t len, llm_answer *a, char *why, size_t why_size)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (!root) {
        memset(a, 0, sizeof *a);
        snprintf(why, why_size, "the body is not JSON (%s at byte %d)", je.text, je.position);
        return 0;
    }
    int ok = llm_answer_from_json(root, a, why, why_size);
    json_decref(root);
    return ok;
}

void llm_answer_clear(llm_answer *a)
{
    json_decref(a->root);
    memset(a, 0, sizeof *a);
}

/* ---- validation -------------------------------------------------------------------- */

/* Quote s (at most 80 bytes, newlines as spaces) for a reason. */
static void quote(char *out, size_t size, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < size && i < 80; i++)
        out[k++] = s[i] == '\n' || s[i] == '\r' || s[i] == '\t' ? ' ' : s[i];
    if (n > 80 && k + 4 < size) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = 0;
}

static int is_word_byte(unsigned char ch)
{
    return isalnum(ch) || ch >= 0x80 || ch == '_';
}

/* Leading/trailing bytes the text mode strips: whitespace, ASCII quotes and punctuation,
 * and the UTF-8 curly quotes (E2 80 98/99/9C/9D). */
static size_t strip_lead(const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        if (i < n && (isspace((unsigned char)s[i]) || strchr("\"'`.,;:!?()[]{}*<>", s[i]))) {
            if (!s[i])
                break;
            i++;
        } else if (i + 2 < n && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x80 &&
                   strchr("\x98\x99\x9c\x9d", s[i + 2])) {
            i += 3;
        } else {
            break;
        }
    }
    return i;
}

static size_t strip_trail(const char *s, size_t n)
{
    for (;;) {
        if (n > 0 && s[n - 1] &&
            (isspace((unsigned char)s[n - 1]) || strchr("\"'`.,;:!?()[]{}*<>", s[n - 1]))) {
            n--;
        } else if (n >= 3 && (unsigned char)s[n - 3] == 0xE2 && (unsigned char)s[n - 2] == 0x80 &&
                   strchr("\x98\x99\x9c\x9d", s[n - 1])) {
            n -= 3;
        } else {
            return n;
        }
    }
}

static int text_match(const llm_labels *l, const char *content, char *why, size_t why_size)
{
    size_t n = strlen(content);
    size_t a = strip_lead(content, n);
    size_t b = a < n ? strip_trail(content + a, n - a) + a : a;
    for (int k = 0; k < l->n; k++)
        if (strlen(l->names[k]) == b - a && strncasecmp(l->names[k], content + a, b - a) == 0)
            return k;
    /* Whole-word occurrences; an occurrence inside a longer label's occurrence
     * ("positive" in "very positive") does not count. */
    int found = -1, n_found = 0;
    char names[200] = "";
    for (int k = 0; k < l->n; k++) {
        size_t wl = strlen(l->names[k]);
        int here = 0;
        for (size_t i = 0; i + wl <= n && !here; i++) {
            if (strncasecmp(content + i, l->names[k], wl) != 0)
                continue;
            if ((i > 0 && is_word_byte((unsigned char)content[i - 1])) ||
                (i + wl < n && is_word_byte((unsigned char)content[i + wl])))
                continue;
            int inside = 0;
            for (int j = 0; j < l->n && !inside; j++) {
                size_t jl = strlen(l->names[j]);
                if (j == k || jl <= wl)
                    continue;
                for (size_t s = i + wl >= jl ? i + wl - jl : 0; s <= i && s + jl <= n; s++)
                    if (strncasecmp(content + s, l->names[j], jl) == 0) {
                        inside = 1;
                        break;
                    }
            }
            here = !inside;
        }
        if (here) {
            found = k;
            size_t len = strlen(names);
            snprintf(names + len, sizeof names - len, "%s%s", n_found ? ", " : "", l->names[k]);
            n_found++;
        }
    }
    if (n_found == 1)
        return found;
    char q[100];
    quote(q, sizeof q, content, n);
    if (n_found > 1)
        snprintf(why, why_size, "answer '%s' names %d labels (%s), not exactly one", q, n_found,
                 names);
    else
        snprintf(why, why_size, "answer '%s' is not one of the %d labels", q, l->n);
    return -1;
}

int llm_validate(llm_format f, const llm_labels *l, const char *content, char *why, size_t why_size)
{
    if (!content) {
        snprintf(why, why_size, "the answer has no content");
        return -1;
    }
    if (f == LLM_FMT_TEXT)
        return text_match(l, content, why, why_size);
    json_error_t je;
    json_t *o = json_loads(content, JSON_DECODE_ANY, &je);
    char q[100];
    json_t *lab = json_object_get(o, "label");
    if (!json_is_object(o) || !json_is_string(lab)) {
        quote(q, sizeof q, content, strlen(content));
        snprintf(why, why_size, "answer '%s' is not a JSON object with a string \"label\"", q);
        json_decref(o);
        return -1;
    }
    const char *v = json_string_value(lab);
    size_t n = json_string_length(lab), a = 0;
    while (a < n && isspace((unsigned char)v[a]))
        a++;
    while (n > a && isspace((unsigned char)v[n - 1]))
        n--;
    int k = -1;
    for (int i = 0; i < l->n && k < 0; i++)
        if (strlen(l->names[i]) == n - a && memcmp(l->names[i], v + a, n - a) == 0)
            k = i;
    if (k < 0) {
        quote(q, sizeof q, v, json_string_length(lab));
        snprintf(why, why_size, "answer '%s' is not one of the %d labels", q, l->n);
    }
    json_decref(o);
    return k;
}

/* ---- logprob confidence ------------------------------------------------------------ */

/* A token's bytes: "bytes" when it is an array of 0..255, else the "token" string. */
static int token_text(json_t *tok, char *out, size_t size, size_t *len)
{
    json_t *bytes = json_object_get(tok, "bytes");
    if (json_is_array(bytes)) {
        size_t n = json_array_size(bytes);
        if (n + 1 > size)
            return 0;
        for (size_t i = 0; i < n; i++) {
            json_int_t v = json_integer_value(json_array_get(bytes, i));
            if (!json_is_integer(json_array_get(bytes, i)) || v < 0 || v > 255)
                return 0;
            out[i] = (char)v;
        }
        out[n] = 0;
        *len = n;
        return 1;
    }
    const char *t = json_string_value(json_object_get(tok, "token"));
    if (!t || strlen(t) + 1 > size)
        return 0;
    *len = strlen(t);
    memcpy(out, t, *len + 1);
    return 1;
}

typedef struct conf_ctx {
    llm_format f;
    const llm_labels *l;
    json_t *toks;
    size_t n_toks;
    double *mass;
} conf_ctx;

static int name_cmp_prefix(const conf_ctx *x, const char *name, const char *p, size_t n)
{
    return x->f == LLM_FMT_TEXT ? strncasecmp(name, p, n) : strncmp(name, p, n);
}

/* Labels consistent with the label text `cand` (n bytes) read so far. In the JSON modes a
 * '"' ends the value: the text before it must equal a label. In text mode a byte that is
 * not part of a word ends it the same way. Without an end, labels starting with cand. */
static int match_labels(const conf_ctx *x, const char *cand, size_t n, int *out)
{
    size_t end = n;
    for (size_t i = 0; i < n; i++) {
        int stop = x->f == LLM_FMT_TEXT
                       ? !is_word_byte((unsigned char)cand[i]) && cand[i] != ' ' && cand[i] != '-'
                       : cand[i] == '"';
        if (stop) {
            end = i;
            break;
        }
    }
    int m = 0;
    for (int k = 0; k < x->l->n; k++) {
        size_t wl = strlen(x->l->names[k]);
        if (end < n) {
            if (wl == end && name_cmp_prefix(x, x->l->names[k], cand, end) == 0)
                out[m++] = k;
        } else if (wl >= n && name_cmp_prefix(x, x->l->names[k], cand, n) == 0) {
            out[m++] = k;
        }
    }
    return m;
}

#define TOKMAX 512

/* Spread `mass` over the labels continuing label text prefix[0..np) at token i, whose
 * first `skip` bytes belong to the text before the label. */
static void spread(const conf_ctx *x, size_t i, const char *prefix, size_t np, size_t skip,
                   double mass, int depth)
{
    json_t *tok = json_array_get(x->toks, i);
    char chosen[TOKMAX];
    size_t chosen_len;
    if (!json_is_object(tok) || !token_text(tok, chosen, sizeof chosen, &chosen_len) ||
        chosen_len < skip)
        return;
    json_t *alts = json_object_get(tok, "top_logprobs");
    size_t n_alts = json_is_array(alts) ? json_array_size(alts) : 0;
    int chosen_seen = 0;
    int *m = malloc(((size_t)x->l->n + 1) * sizeof *m);
    char *cand = malloc(np + TOKMAX + 1);
    if (!m || !cand) {
        free(m);
        free(cand);
        return;
    }
    memcpy(cand, prefix, np);
    /* The alternatives, then the chosen token itself if top_logprobs left it out. */
    for (size_t a = 0; a <= n_alts; a++) {
        json_t *alt = a < n_alts ? json_array_get(alts, a) : tok;
        char s[TOKMAX];
        size_t sl;
        if (!token_text(alt, s, sizeof s, &sl))
            continue;
        int is_chosen = sl == chosen_len && memcmp(s, chosen, sl) == 0;
        if (a == n_alts && chosen_seen)
            break;
        chosen_seen |= is_chosen;
        json_t *lpv = json_object_get(alt, "logprob");
        if (!json_is_number(lpv))
            continue;
        double lp = json_number_value(lpv);
        if (!(lp > -9000.0))
            continue; /* "very unlikely" */
        /* The bytes before the label must be the chosen token's. */
        if (sl < skip || memcmp(s, chosen, skip) != 0)
            continue;
        size_t off = skip;
        if (np == 0 && x->f == LLM_FMT_TEXT)
            while (off < sl && (s[off] == ' ' || s[off] == '"' || s[off] == '\'' ||
                                s[off] == '\n' || s[off] == '*'))
                off++;
        size_t cl = sl - off;
        if (cl == 0)
            continue;
        memcpy(cand + np, s + off, cl);
        int nm = match_labels(x, cand, np + cl, m);
        double p = mass * exp(lp);
        if (nm == 1) {
            x->mass[m[0]] += p;
        } else if (nm > 1) {
            if (is_chosen && i + 1 < x->n_toks && depth < 16)
                spread(x, i + 1, cand, np + cl, 0, p, depth + 1);
            else
                for (int k = 0; k < nm; k++)
                    x->mass[m[k]] += p / nm;
        }
    }
    free(m);
    free(cand);
}

/* Offset in content where the label's text starts, or -1. */
static long label_start(llm_format f, const char *content)
{
    const char *s = content;
    if (f == LLM_FMT_TEXT) {
        size_t n = strlen(s);
        size_t a = strip_lead(s, n);
        return a < n ? (long)a : -1;
    }
    const char *k = strstr(s, "\"label\"");
    if (!k)
        return -1;
    const char *p = k + 7;
    while (isspace((unsigned char)*p))
        p++;
    if (*p != ':')
        return -1;
    p++;
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '"')
        return -1;
    return (long)(p + 1 - s);
}

int llm_confidence(llm_format f, const llm_labels *l, const char *content, json_t *logprobs,
                   double *dist)
{
    if (!content || !json_is_array(logprobs) || l->n <= 0)
        return 0;
    long start = label_start(f, content);
    if (start < 0)
        return 0;
    size_t n_toks = json_array_size(logprobs), cum = 0, clen = strlen(content);
    size_t i;
    for (i = 0; i < n_toks; i++) {
        char t[TOKMAX];
        size_t tl;
        if (!token_text(json_array_get(logprobs, i), t, sizeof t, &tl))
            return 0;
        /* The tokens must spell the content. */
        if (cum + tl > clen || memcmp(content + cum, t, tl) != 0)
            return 0;
        if (cum + tl > (size_t)start)
            break;
        cum += tl;
    }
    if (i == n_toks)
        return 0;
    conf_ctx x = { f, l, logprobs, n_toks, dist };
    for (int k = 0; k < l->n; k++)
        dist[k] = 0;
    spread(&x, i, "", 0, (size_t)start - cum, 1.0, 0);
    double total = 0;
    for (int k = 0; k < l->n; k++)
        total += dist[k];
    if (!(total > 0))
        return 0;
    for (int k = 0; k < l->n; k++)
        dist[k] /= total;
    return 1;
}
