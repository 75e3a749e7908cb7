/* plugins/encoders/embeddings/wire.c — what the embeddings encoder sends and reads: the
 * /v1/embeddings request body, the list answer (float arrays or base64 float32, data in
 * any order) and the cache key of one text. Pure functions; no I/O. */
#include "embeddings.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *emb_request_body(const char *model, const char *const *texts, size_t n, int dimensions,
                       int base64)
{
    json_t *root = json_object(), *input = json_array();
    int ok = root && input;
    for (size_t i = 0; ok && i < n; i++)
        ok = json_array_append_new(input, json_string(texts[i])) == 0;
    ok = ok && json_object_set_new(root, "model", json_string(model)) == 0;
    ok = ok && json_object_set(root, "input", input) == 0;
    ok = ok && json_object_set_new(root, "encoding_format",
                                   json_string(base64 ? "base64" : "float")) == 0;
    if (ok && dimensions > 0)
        ok = json_object_set_new(root, "dimensions", json_integer(dimensions)) == 0;
    char *body = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(input);
    json_decref(root);
    return body;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long emb_base64_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
    while (len && s[len - 1] == '=')
        len--;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)n;
}

/* Row `row` of vec from one embedding (array or base64 text). Returns the width found
 * (>= 0) and fills the row when it is dim, or -1 with why[] when the value is unusable. */
static int read_vector(json_t *e, int dim, float *row, char *why, size_t why_size, size_t index)
{
    if (json_is_array(e)) {
        size_t w = json_array_size(e);
        if (w != (size_t)dim)
            return (int)(w > INT32_MAX ? INT32_MAX : w);
        for (size_t j = 0; j < w; j++) {
            json_t *v = json_array_get(e, j);
            double x = json_number_value(v);
            if (!json_is_number(v) || !isfinite(x) || fabs(x) > 3.4e38) {
                snprintf(why, why_size, "embedding %zu: value %zu is not a finite float", index, j);
                return -1;
            }
            row[j] = (float)x;
        }
        return dim;
    }
    if (json_is_string(e)) {
        const char *s = json_string_value(e);
        size_t len = json_string_length(e);
        size_t cap = len / 4 * 3 + 3;
        unsigned char *raw = malloc(cap);
        long nb = raw ? emb_base64_decode(s, len, raw, cap) : -1;
        if (nb < 0 || nb % 4) {
            free(raw);
            snprintf(why, why_size, "embedding %zu: not base64 of float32 values", index);
            return -1;
        }
        int w = (int)(nb / 4);
        if (w == dim) {
            for (int j = 0; j < w; j++) {
                /* little-endian float32, as the API sends (numpy's '<f4') */
                uint32_t u = (uint32_t)raw[4 * j] | (uint32_t)raw[4 * j + 1] << 8 |
                             (uint32_t)raw[4 * j + 2] << 16 | (uint32_t)raw[4 * j + 3] << 24;
                float x;
                memcpy(&x, &u, sizeof x);
                if (!isfinite(x)) {
                    free(raw);
                    snprintf(why, why_size, "embedding %zu: value %d is not finite", index, j);
                    return -1;
                }
                row[j] = x;
            }
        }
        free(raw);
        return w;
    }
    snprintf(why, why_size, "embedding %zu is neither an array of numbers nor base64 text", index);
    return -1;
}

emb_parse_status emb_parse(const char *body, size_t len, size_t n, int dim, float *vec, int *width,
                           char *why, size_t why_size)
{
    why[0] = 0;
    *width = dim;
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (!root) {
        snprintf(why, why_size, "not JSON: %s", je.text);
        return EMB_PARSE_MALFORMED;
    }
    emb_parse_status st = EMB_PARSE_OK;
    json_t *data = json_is_object(root) ? json_object_get(root, "data") : NULL;
    unsigned char *seen = calloc(n ? n : 1, 1);
    if (!json_is_array(data)) {
        snprintf(why, why_size, "no data array");
        st = EMB_PARSE_MALFORMED;
    } else if (json_array_size(data) != n) {
        snprintf(why, why_size, "%zu embeddings for %zu texts", json_array_size(data), n);
        st = EMB_PARSE_MALFORMED;
    } else if (!seen) {
        snprintf(why, why_size, "out of memory");
        st = EMB_PARSE_MALFORMED;
    }
    for (size_t k = 0; st == EMB_PARSE_OK && k < n; k++) {
        json_t *item = json_array_get(data, k);
        json_t *ix = json_is_object(item) ? json_object_get(item, "index") : NULL;
        /* A server without indices answers in input order. */
        json_int_t i = ix ? (json_is_integer(ix) ? json_integer_value(ix) : -1) : (json_int_t)k;
        if (i < 0 || (size_t)i >= n || seen[i]) {
            snprintf(why, why_size, "data[%zu] has index %s, not a new index below %zu", k,
                     i < 0 ? "missing or not an integer" : "out of range or repeated", n);
            st = EMB_PARSE_MALFORMED;
            break;
        }
        seen[i] = 1;
        int w = read_vector(json_object_get(item, "embedding"), dim, vec + (size_t)i * dim, why,
                            why_size, (size_t)i);
        if (w < 0) {
            st = EMB_PARSE_MALFORMED;
        } else if (w != dim) {
            *width = w;
            st = EMB_PARSE_WIDTH;
        }
    }
    free(seen);
    json_decref(root);
    return st;
}

void emb_cache_key(const char *model, int dimensions, int dim, const char *text,
                   char out[SB_HASH_HEX])
{
    sb_hasher *h = sb_hasher_create();
    char head[64];
    snprintf(head, sizeof head, "embeddings-v1|dimensions=%d|dim=%d|", dimensions, dim);
    if (!h) {
        out[0] = 0; /* no key: the caller skips the cache */
        return;
    }
    sb_hasher_str(h, head);
    sb_hasher_str(h, model);
    sb_hasher_str(h, text);
    sb_hasher_hex(h, out);
    sb_hasher_destroy(&h);
}
