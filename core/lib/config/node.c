/* core/lib/config/node.c — the config node tree: constructors, append/replace, lookup,
 * removal, clone and free. Storage for SEQ/MAP items grows by doubling; the capacity is
 * implied by n (4, 8, 16, …), so the public struct needs no capacity field. */
#include "config_priv.h"

#include <stdlib.h>
#include <string.h>

static sbi_node *node_new(sbi_node_kind kind, sbi_loc loc)
{
    sbi_node *n = calloc(1, sizeof *n);
    if (n) {
        n->kind = kind;
        n->loc = loc;
    }
    return n;
}

sbi_node *sbi_node_new_scalar(const char *text, int quoted, sbi_loc loc)
{
    sbi_node *n = node_new(SBI_SCALAR, loc);
    if (!n)
        return NULL;
    n->text = strdup(text ? text : "");
    if (!n->text) {
        free(n);
        return NULL;
    }
    n->quoted = quoted ? 1 : 0;
    return n;
}

sbi_node *sbi_node_new_map(sbi_loc loc)
{
    return node_new(SBI_MAP, loc);
}

sbi_node *sbi_node_new_seq(sbi_loc loc)
{
    return node_new(SBI_SEQ, loc);
}

/* Make room for item n (0-based). Arrays hold 4 when n < 4, else the next power of two
 * >= n; so they must grow exactly when n is 0 or a power of two >= 4. */
static int grow(sbi_node *c)
{
    size_t n = c->n, cap;
    if (n == 0)
        cap = 4;
    else if (n >= 4 && (n & (n - 1)) == 0)
        cap = 2 * n;
    else
        return 0;
    sbi_node **items = realloc(c->items, cap * sizeof *items);
    if (!items)
        return -1;
    c->items = items;
    if (c->kind == SBI_MAP) {
        char **keys = realloc(c->keys, cap * sizeof *keys);
        if (!keys)
            return -1;
        c->keys = keys;
        sbi_loc *kl = realloc(c->key_locs, cap * sizeof *kl);
        if (!kl)
            return -1;
        c->key_locs = kl;
    }
    return 0;
}

void sbi_seq_push(sbi_node *seq, sbi_node *item)
{
    if (!item)
        return;
    if (!seq || seq->kind != SBI_SEQ || grow(seq) != 0) {
        sbi_node_free(&item); /* ownership was ours either way */
        return;
    }
    seq->items[seq->n++] = item;
}

long sbi_map_find(const sbi_node *map, const char *key)
{
    if (!map || map->kind != SBI_MAP || !key)
        return -1;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return (long)i;
    return -1;
}

void sbi_map_set(sbi_node *map, const char *key, sbi_loc key_loc, sbi_node *item)
{
    if (!item)
        return;
    if (!map || map->kind != SBI_MAP || !key) {
        sbi_node_free(&item);
        return;
    }
    long i = sbi_map_find(map, key);
    if (i >= 0) {
        sbi_node_free(&map->items[i]);
        map->items[i] = item;
        map->key_locs[i] = key_loc;
        return;
    }
    char *k = strdup(key);
    if (!k || grow(map) != 0) {
        free(k);
        sbi_node_free(&item);
        return;
    }
    map->keys[map->n] = k;
    map->key_locs[map->n] = key_loc;
    map->items[map->n] = item;
    map->n++;
}

sbi_node *sbi_node_get(const sbi_node *map, const char *key)
{
    long i = sbi_map_find(map, key);
    return i >= 0 ? map->items[i] : NULL;
}

void sbi_node_remove(sbi_node *map, const char *key)
{
    long i = sbi_map_find(map, key);
    if (i < 0)
        return;
    free(map->keys[i]);
    sbi_node_free(&map->items[i]);
    size_t tail = map->n - (size_t)i - 1;
    memmove(&map->keys[i], &map->keys[i + 1], tail * sizeof *map->keys);
    memmove(&map->key_locs[i], &map->key_locs[i + 1], tail * sizeof *map->key_locs);
    memmove(&map->items[i], &map->items[i + 1], tail * sizeof *map->items);
    if (--map->n == 0) { /* keep the "capacity implied by n" rule true */
        free(map->keys);
        free(map->key_locs);
        free(map->items);
        map->keys = NULL;
        map->key_locs = NULL;
        map->items = NULL;
    }
}

sbi_node *sbi_node_clone(const sbi_node *src)
{
    if (!src)
        return NULL;
    sbi_node *n;
    switch (src->kind) {
    case SBI_SCALAR:
        n = sbi_node_new_scalar(src->text, src->quoted, src->loc);
        if (n)
            n->from_env = src->from_env;
        return n;
    case SBI_SEQ:
        n = sbi_node_new_seq(src->loc);
        for (size_t i = 0; n && i < src->n; i++) {
            sbi_node *c = sbi_node_clone(src->items[i]);
            size_t before = n->n;
            sbi_seq_push(n, c);
            if (n->n == before)
                sbi_node_free(&n);
        }
        return n;
    case SBI_MAP:
        n = sbi_node_new_map(src->loc);
        for (size_t i = 0; n && i < src->n; i++) {
            sbi_node *c = sbi_node_clone(src->items[i]);
            size_t before = n->n;
            sbi_map_set(n, src->keys[i], src->key_locs[i], c);
            if (n->n == before)
                sbi_node_free(&n);
        }
        return n;
    case SBI_NULL:
    default: n = node_new(SBI_NULL, src->loc); return n;
    }
}

void sbi_node_free(sbi_node **np)
{
    if (!np || !*np)
        return;
    sbi_node *n = *np;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            free(n->keys[i]);
        sbi_node_free(&n->items[i]);
    }
    free(n->keys);
    free(n->key_locs);
    free(n->items);
    free(n->text);
    free(n);
    *np = NULL;
}

size_t sbi_node_count(const sbi_node *n)
{
    if (!n)
        return 0;
    size_t c = 1;
    for (size_t i = 0; i < n->n; i++)
        c += sbi_node_count(n->items[i]);
    return c;
}

sbi_node *sbi_node_merge(sbi_node *base, sbi_node *over)
{
    if (!base)
        return over;
    if (!over)
        return base;
    if (base->kind != SBI_MAP || over->kind != SBI_MAP) {
        sbi_node_free(&base);
        return over;
    }
    for (size_t i = 0; i < over->n; i++) {
        sbi_node *item = over->items[i];
        over->items[i] = NULL;
        long j = sbi_map_find(base, over->keys[i]);
        if (j >= 0) {
            base->items[j] = sbi_node_merge(base->items[j], item);
            base->key_locs[j] = over->key_locs[i];
        } else {
            sbi_map_set(base, over->keys[i], over->key_locs[i], item);
        }
    }
    /* The merged map answers to where the later file wrote it. */
    base->loc = over->loc;
    sbi_node_free(&over);
    return base;
}
