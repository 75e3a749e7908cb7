/* core/lib/config/path.c — dotted key paths ("experiment.test.0.dataset"): look a node up,
 * or set one, creating the maps on the way. A component addresses a MAP by key and a SEQ
 * by decimal index. */
#include "config_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The child of `n` named by the component s[0..len). */
static sbi_node *child(const sbi_node *n, const char *s, size_t len, long *seq_index)
{
    *seq_index = -1;
    if (n->kind == SBI_MAP) {
        for (size_t i = 0; i < n->n; i++)
            if (strlen(n->keys[i]) == len && memcmp(n->keys[i], s, len) == 0)
                return n->items[i];
        return NULL;
    }
    if (n->kind == SBI_SEQ) {
        char num[16];
        if (len == 0 || len >= sizeof num)
            return NULL;
        memcpy(num, s, len);
        num[len] = '\0';
        long idx = sbi_parse_index(num);
        if (idx < 0 || (size_t)idx >= n->n)
            return NULL;
        *seq_index = idx;
        return n->items[idx];
    }
    return NULL;
}

sbi_node *sbi_node_path(const sbi_node *root, const char *dotted)
{
    if (!root || !dotted)
        return NULL;
    const sbi_node *cur = root;
    const char *s = dotted;
    while (*s && cur) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        long idx;
        cur = child(cur, s, len, &idx);
        if (!dot)
            break;
        s = dot + 1;
        if (!*s) /* trailing dot names nothing */
            return NULL;
    }
    return (sbi_node *)cur;
}

const char *sbi_node_kind_name(sbi_node_kind k)
{
    switch (k) {
    case SBI_SCALAR: return "a scalar";
    case SBI_SEQ: return "a list";
    case SBI_MAP: return "a mapping";
    default: return "null";
    }
}

/* Report why `dotted` cannot be set, at the value's location, and drop the value. */
static sb_status fail(sbi_node **value, sb_error *err, const char *dotted, const char *detail)
{
    char where[512];
    sbi_loc_str((*value)->loc, where, sizeof where);
    sb_error_set(err, SB_ERR_CONFIG, where, "cannot set '%s': %s", dotted, detail);
    sbi_node_free(value);
    return SB_ERR_CONFIG;
}

sb_status sbi_node_set_path(sbi_node *root, const char *dotted, sbi_node *value, sb_error *err)
{
    if (!value)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "sbi_node_set_path: no value");
    if (!root || !dotted || (root->kind != SBI_MAP && root->kind != SBI_SEQ))
        return fail(&value, err, dotted ? dotted : "(null)", "the root is not a mapping or a list");
    sbi_node *cur = root;
    const char *s = dotted;
    int depth = 0;
    char detail[768];
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        size_t prefix = (size_t)(s - dotted);
        if (len == 0)
            return fail(&value, err, dotted, "the path has an empty component");
        if (++depth > SBI_CONFIG_MAX_DEPTH)
            return fail(&value, err, dotted, "the path is too deep");
        long idx;
        sbi_node *next = child(cur, s, len, &idx);
        if (cur->kind == SBI_SEQ && idx < 0) {
            snprintf(detail, sizeof detail,
                     "'%.*s' is not an index of the list at '%.*s' (it has %zu items)", (int)len, s,
                     (int)(prefix ? prefix - 1 : 0), dotted, cur->n);
            return fail(&value, err, dotted, detail);
        }
        if (!dot) { /* last component: put the value here */
            if (cur->kind == SBI_SEQ) {
                sbi_node_free(&cur->items[idx]);
                cur->items[idx] = value;
            } else {
                char *key = strndup(s, len);
                if (!key)
                    return fail(&value, err, dotted, "out of memory");
                size_t before = cur->n;
                long had = sbi_map_find(cur, key);
                sbi_map_set(cur, key, value->loc, value);
                free(key);
                if (had < 0 && cur->n == before)
                    return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
            }
            return SB_OK;
        }
        if (!next || next->kind == SBI_NULL) {
            /* a missing (or empty) map on the way is created */
            sbi_node *m = sbi_node_new_map(value->loc);
            if (!m)
                return fail(&value, err, dotted, "out of memory");
            if (cur->kind == SBI_SEQ) {
                sbi_node_free(&cur->items[idx]);
                cur->items[idx] = m;
            } else {
                char *key = strndup(s, len);
                if (!key) {
                    sbi_node_free(&m);
                    return fail(&value, err, dotted, "out of memory");
                }
                sbi_map_set(cur, key, value->loc, m);
                long at = sbi_map_find(cur, key);
                free(key);
                if (at < 0 || cur->items[at] != m)
                    return fail(&value, err, dotted, "out of memory");
            }
            next = m;
        } else if (next->kind == SBI_SCALAR) {
            char at[512];
            snprintf(detail, sizeof detail, "'%.*s' is %s (at %s), not a mapping or a list",
                     (int)(prefix + len), dotted, sbi_node_kind_name(next->kind),
                     sbi_loc_str(next->loc, at, sizeof at));
            return fail(&value, err, dotted, detail);
        }
        cur = next;
        s = dot + 1;
    }
}
