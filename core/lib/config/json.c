/* core/lib/config/json.c — node trees to jansson values, typing plain scalars by the YAML 1.2
 * core schema: null/~/"" → null, true/false → bool, decimal/0x/0o → int, floats (1.0e-3,
 * .5, .inf, .nan) → real; quoted scalars are always strings. */
#include "config_priv.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int all_of(const char *s, const char *set)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!strchr(set, *s))
            return 0;
    return 1;
}

/* 1: an int that fits; 0: not an int; -1: an int out of long long's range. */
static int core_int(const char *s, long long *out)
{
    errno = 0;
    if ((s[0] == '0' && s[1] == 'x' && all_of(s + 2, "0123456789abcdefABCDEF")) ||
        (s[0] == '0' && s[1] == 'o' && all_of(s + 2, "01234567"))) {
        unsigned long long u = strtoull(s + 2, NULL, s[1] == 'x' ? 16 : 8);
        if (errno == ERANGE || u > (unsigned long long)LLONG_MAX)
            return -1;
        *out = (long long)u;
        return 1;
    }
    const char *p = s + (s[0] == '-' || s[0] == '+');
    if (!all_of(p, "0123456789"))
        return 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return -1;
    *out = v;
    return 1;
}

/* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static int core_float_syntax(const char *s)
{
    const char *p = s + (*s == '-' || *s == '+');
    int digits = 0;
    while (is_digit(*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (is_digit(*p)) {
            p++;
            digits++;
        }
    }
    if (!digits)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        p += (*p == '-' || *p == '+');
        if (!is_digit(*p))
            return 0;
        while (is_digit(*p))
            p++;
    }
    return *p == '\0';
}

static int one_of(const char *s, const char *a, const char *b, const char *c)
{
    return strcmp(s, a) == 0 || strcmp(s, b) == 0 || strcmp(s, c) == 0;
}

/* A JSON string of s; bytes that are not UTF-8 (only possible in trees built by hand) are
 * replaced by '?' rather than failing. */
static json_t *make_string(const char *s)
{
    json_t *j = json_string(s);
    if (j || !s)
        return j;
    size_t n = strlen(s);
    char *c = strdup(s);
    if (!c)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t bad = sbi_utf8_invalid_at((const unsigned char *)c + i, n - i);
        if (bad >= n - i)
            break;
        c[i + bad] = '?';
        i += bad + 1;
    }
    j = json_string(c);
    free(c);
    return j;
}

int sbi_scalar_int(const sbi_node *n, long long *out)
{
    long long v;
    if (!n || n->kind != SBI_SCALAR || n->quoted || !n->text || core_int(n->text, &v) != 1)
        return 0;
    if (out)
        *out = v;
    return 1;
}

json_t *sbi_scalar_to_json(const sbi_node *n)
{
    if (!n || n->kind == SBI_NULL)
        return json_null();
    if (n->kind != SBI_SCALAR)
        return sbi_node_to_json(n);
    const char *s = n->text ? n->text : "";
    if (n->quoted)
        return make_string(s);
    if (!*s || one_of(s, "null", "Null", "NULL") || strcmp(s, "~") == 0)
        return json_null();
    if (one_of(s, "true", "True", "TRUE"))
        return json_true();
    if (one_of(s, "false", "False", "FALSE"))
        return json_false();
    long long iv;
    int ir = core_int(s, &iv);
    if (ir == 1)
        return json_integer(iv);
    if (ir == -1) /* too large to hold exactly: keep the text rather than round it */
        return make_string(s);
    if (core_float_syntax(s)) {
        json_t *r = json_real(strtod(s, NULL));
        return r ? r : make_string(s); /* e.g. 1e999: JSON has no infinity */
    }
    /* Everything else is a string, and so are .inf/-.inf/.nan: the core schema makes them
     * floats but JSON (and jansson) cannot hold them; see docs/config.md. */
    return make_string(s);
}

json_t *sbi_node_to_json(const sbi_node *n)
{
    if (!n || n->kind == SBI_NULL)
        return json_null();
    if (n->kind == SBI_SCALAR)
        return sbi_scalar_to_json(n);
    json_t *out = n->kind == SBI_SEQ ? json_array() : json_object();
    if (!out)
        return NULL;
    for (size_t i = 0; i < n->n; i++) {
        json_t *c = sbi_node_to_json(n->items[i]);
        int bad = !c;
        if (!bad && n->kind == SBI_SEQ) {
            bad = json_array_append_new(out, c) != 0;
        } else if (!bad) {
            const char *key = n->keys[i];
            size_t klen = strlen(key);
            json_t *k = NULL; /* a key that is not UTF-8 is stored with '?' for bad bytes */
            if (sbi_utf8_invalid_at((const unsigned char *)key, klen) < klen) {
                k = make_string(key);
                key = k ? json_string_value(k) : "?";
            }
            bad = json_object_set_new(out, key, c) != 0; /* steals c even on failure */
            json_decref(k);
        }
        if (bad) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
