/* core/lib/config/sweep.c — step 5: expand `sweep:` (key path → list of values) and
 * `seeds:` into the list of runs. Order: the cartesian product with the first sweep key
 * varying slowest, and seeds innermost. Each run is a full config without sweep/seeds and
 * with a top-level `seed:`. */
#include "config_priv.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Suggestions consider at most this many paths of the config. */
#define MAX_SUGGEST_PATHS 20000

const char **sbi_config_sweep_keys(const sbi_node *root)
{
    const sbi_node *sw = sbi_node_get(root, "sweep");
    if (!sw || sw->kind != SBI_MAP || sw->n == 0)
        return NULL;
    const char **keys = malloc((sw->n + 1) * sizeof *keys);
    if (!keys)
        return NULL;
    for (size_t i = 0; i < sw->n; i++)
        keys[i] = sw->keys[i];
    keys[sw->n] = NULL;
    return keys;
}

typedef struct path_list {
    char **v;
    size_t n, cap;
} path_list;

/* Every dotted path in the tree under `prefix` ("a", "a.b", "a.b.0", …), for suggestions. */
static void collect_paths(const sbi_node *n, const char *prefix, path_list *out, int depth)
{
    if (depth > SBI_CONFIG_MAX_DEPTH || (n->kind != SBI_MAP && n->kind != SBI_SEQ))
        return;
    for (size_t i = 0; i < n->n && out->n < MAX_SUGGEST_PATHS; i++) {
        char idx[32];
        const char *part = n->kind == SBI_MAP ? n->keys[i] : idx;
        if (n->kind == SBI_SEQ)
            snprintf(idx, sizeof idx, "%zu", i);
        char *p = *prefix ? sbi_asprintf("%s.%s", prefix, part) : strdup(part);
        if (!p)
            return;
        if (out->n == out->cap) {
            size_t cap = out->cap ? 2 * out->cap : 64;
            char **v = realloc(out->v, (cap + 1) * sizeof *v);
            if (!v) {
                free(p);
                return;
            }
            out->v = v;
            out->cap = cap;
        }
        out->v[out->n++] = p;
        out->v[out->n] = NULL;
        collect_paths(n->items[i], p, out, depth + 1);
    }
}

static sb_status missing_key(const sbi_node *base, const char *key, sbi_loc loc, sb_error *err)
{
    path_list pl = { 0 };
    collect_paths(base, "", &pl, 0);
    const char *best = pl.v ? sbi_did_you_mean(key, (const char *const *)pl.v) : NULL;
    char where[512];
    sb_status st = sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(loc, where, sizeof where),
                                "sweep key '%s' is not in the config%s%s%s", key,
                                best ? "; did you mean '"
                                     : "; a sweep can only vary keys "
                                       "the config sets",
                                best ? best : "", best ? "'?" : "");
    for (size_t i = 0; i < pl.n; i++)
        free(pl.v[i]);
    free(pl.v);
    return st;
}

/* `seeds:` as an array of values: absent → {1}; an int; or a non-empty list of distinct
 * non-negative ints. */
static sb_status read_seeds(const sbi_node *sn, long long **seeds, const sbi_node ***nodes,
                            size_t *n, sb_error *err)
{
    char where[512];
    size_t count = !sn ? 1 : sn->kind == SBI_SEQ ? sn->n : 1;
    if (sn && (sn->kind == SBI_MAP || sn->kind == SBI_NULL || (sn->kind == SBI_SEQ && !sn->n)))
        return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(sn->loc, where, sizeof where),
                            "seeds must be an integer or a non-empty list of integers, e.g. "
                            "seeds: [1, 2, 3]");
    *seeds = malloc(count * sizeof **seeds);
    *nodes = malloc(count * sizeof **nodes);
    if (!*seeds || !*nodes)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    *n = count;
    if (!sn) {
        (*seeds)[0] = 1;
        (*nodes)[0] = NULL;
        return SB_OK;
    }
    for (size_t i = 0; i < count; i++) {
        const sbi_node *it = sn->kind == SBI_SEQ ? sn->items[i] : sn;
        long long v;
        if (!sbi_scalar_int(it, &v) || v < 0)
            return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(it->loc, where, sizeof where),
                                "seeds: '%s' is not a non-negative integer; write seeds: N or "
                                "seeds: [N, M, ...]",
                                it->kind == SBI_SCALAR ? it->text : sbi_node_kind_name(it->kind));
        for (size_t j = 0; j < i; j++)
            if ((*seeds)[j] == v)
                return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(it->loc, where, sizeof where),
                                    "seeds: %lld is listed twice", v);
        (*seeds)[i] = v;
        (*nodes)[i] = it;
    }
    return SB_OK;
}

sb_status sbi_config_expand(const sbi_node *root, sbi_node ***runs, size_t *n_runs, sb_error *err)
{
    char where[512];
    if (runs)
        *runs = NULL;
    if (n_runs)
        *n_runs = 0;
    if (!runs || !n_runs)
        return sb_error_set(err, SB_ERR_INVALID, NULL, "sbi_config_expand: no output");
    if (!root || root->kind != SBI_MAP)
        return sb_error_set(err, SB_ERR_CONFIG,
                            root ? sbi_loc_str(root->loc, where, sizeof where) : NULL,
                            "the config must be a mapping of keys to expand into runs");

    const sbi_node *sweep = sbi_node_get(root, "sweep");
    if (sweep && sweep->kind == SBI_NULL)
        sweep = NULL;
    if (sweep && sweep->kind != SBI_MAP)
        return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(sweep->loc, where, sizeof where),
                            "sweep must map key paths to lists of values, e.g. "
                            "sweep: {experiment.encoder: [hubert, wavlm]}");
    size_t n_keys = sweep ? sweep->n : 0;

    sb_status st = SB_OK;
    long long *seeds = NULL;
    const sbi_node **seed_nodes = NULL;
    size_t n_seeds = 0, *idx = NULL, total = 0, made = 0;
    sbi_node **out = NULL;
    sbi_node *base = sbi_node_clone(root);
    if (!base) {
        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    sbi_node_remove(base, "sweep");
    sbi_node_remove(base, "seeds");

    for (size_t k = 0; k < n_keys; k++) {
        const sbi_node *vals = sweep->items[k];
        if (vals->kind != SBI_SEQ || vals->n == 0) {
            st = sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(vals->loc, where, sizeof where),
                              "sweep entry '%s' must be a non-empty list of values, e.g. "
                              "%s: [a, b]",
                              sweep->keys[k], sweep->keys[k]);
            goto done;
        }
        if (!sbi_node_path(base, sweep->keys[k])) {
            st = missing_key(base, sweep->keys[k], sweep->key_locs[k], err);
            goto done;
        }
    }
    st = read_seeds(sbi_node_get(root, "seeds"), &seeds, &seed_nodes, &n_seeds, err);
    if (st != SB_OK)
        goto done;

    total = n_seeds;
    for (size_t k = 0; k < n_keys; k++) {
        if (total > SBI_CONFIG_MAX_RUNS / sweep->items[k]->n) {
            total = SBI_CONFIG_MAX_RUNS + 1;
            break;
        }
        total *= sweep->items[k]->n;
    }
    size_t per_run = sbi_node_count(base) + 2;
    if (total > SBI_CONFIG_MAX_RUNS || total * per_run > SBI_CONFIG_MAX_EXPAND_NODES) {
        st = sb_error_set(err, SB_ERR_CONFIG,
                          sbi_loc_str(sweep ? sweep->loc : root->loc, where, sizeof where),
                          "sweep and seeds expand to too many runs (limit %d runs, %d config "
                          "nodes in all); split the sweep into several configs",
                          SBI_CONFIG_MAX_RUNS, SBI_CONFIG_MAX_EXPAND_NODES);
        goto done;
    }

    out = calloc(total, sizeof *out);
    idx = calloc(n_keys + 1, sizeof *idx);
    if (!out || !idx) {
        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    /* idx is an odometer over the sweep lists; the last key turns fastest */
    for (;;) {
        for (size_t s = 0; s < n_seeds; s++) {
            sbi_node *run = sbi_node_clone(base);
            if (!run) {
                st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
                goto done;
            }
            out[made++] = run;
            for (size_t k = 0; k < n_keys; k++) {
                sbi_node *v = sbi_node_clone(sweep->items[k]->items[idx[k]]);
                if (!v) {
                    st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
                    goto done;
                }
                st = sbi_node_set_path(run, sweep->keys[k], v, err);
                if (st != SB_OK)
                    goto done;
            }
            char text[32];
            snprintf(text, sizeof text, "%lld", seeds[s]);
            sbi_loc sl = seed_nodes[s] ? seed_nodes[s]->loc : (sbi_loc){ root->loc.file, 0, 0 };
            sbi_node *sv = sbi_node_new_scalar(text, 0, sl);
            size_t before = run->n;
            long had = sbi_map_find(run, "seed");
            sbi_map_set(run, "seed", sl, sv);
            if (!sv || (had < 0 && run->n == before)) {
                st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
                goto done;
            }
        }
        size_t k = n_keys;
        while (k > 0) {
            k--;
            if (++idx[k] < sweep->items[k]->n)
                break;
            idx[k] = 0;
            if (k == 0) {
                k = (size_t)-1;
                break;
            }
        }
        if (n_keys == 0 || k == (size_t)-1)
            break;
    }

done:
    if (st != SB_OK) {
        for (size_t i = 0; i < made; i++)
            sbi_node_free(&out[i]);
        free(out);
        out = NULL;
        made = 0;
    }
    sbi_node_free(&base);
    free(seeds);
    free(seed_nodes);
    free(idx);
    *runs = out;
    *n_runs = made;
    return st;
}
