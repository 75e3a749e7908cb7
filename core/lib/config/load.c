/* core/lib/config/load.c — sbi_config_load: read a config file, resolve `include:` (paths
 * relative to the including file; cycles found by real path; depth at most 32), deep-merge
 * included bases under the file, then interpolate (step 3) and apply overrides (step 4). */
#include "config_priv.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct frame {
    const char *path; /* as the user or the including file gave it (interned) */
    char *real;       /* canonical path, for cycle detection */
    sbi_loc inc_loc;  /* where this file includes the next one on the stack */
} frame;

typedef struct loader {
    frame stack[SBI_CONFIG_MAX_INCLUDE_DEPTH + 1];
    int depth; /* frames in use */
    sb_error *err;
} loader;

/* "a.yaml:1:10 includes b.yaml:2:3 includes <last>" for the current stack. */
static void chain_str(const loader *L, const char *last, char *buf, size_t size)
{
    sbi_buf b = { 0 };
    char at[512];
    for (int i = 0; i < L->depth; i++) {
        sbi_buf_puts(&b, sbi_loc_str(L->stack[i].inc_loc, at, sizeof at));
        sbi_buf_puts(&b, " includes ");
    }
    sbi_buf_puts(&b, last);
    snprintf(buf, size, "%s", b.s ? b.s : last);
    sbi_buf_free(&b);
}

/* An error about a file reached through includes: located at the include entry `from`,
 * with the chain. For the top-level file (depth 0) it is located at the path itself. */
static sb_status file_error(const loader *L, sb_status code, sbi_loc from, const char *path,
                            const char *what)
{
    if (L->depth == 0)
        return sb_error_set(L->err, code, path, "%s", what);
    char where[512], chain[1024];
    sbi_loc_str(from, where, sizeof where);
    chain_str(L, path, chain, sizeof chain);
    return sb_error_set(L->err, code, where, "%s; include chain: %s", what, chain);
}

static sbi_node *load_file(loader *L, const char *given, sbi_loc from);

/* Load the files named by `inc` (the value of an include: key in `path`) and merge them,
 * in order, into one base. *base is NULL when the list is empty. */
static sb_status load_includes(loader *L, const char *path, const sbi_node *inc, sbi_node **base)
{
    char where[512];
    *base = NULL;
    const sbi_node *const *items = &inc;
    size_t n = 1;
    if (inc->kind == SBI_SEQ) {
        items = (const sbi_node *const *)inc->items;
        n = inc->n;
    } else if (inc->kind == SBI_NULL) {
        n = 0;
    } else if (inc->kind != SBI_SCALAR) {
        return sb_error_set(L->err, SB_ERR_CONFIG, sbi_loc_str(inc->loc, where, sizeof where),
                            "include: takes a file name or a list of file names, not a "
                            "mapping");
    }
    char *dir = sbi_path_dirname(path);
    if (!dir)
        return sb_error_set(L->err, SB_ERR_NOMEM, path, "out of memory");
    sb_status st = SB_OK;
    for (size_t i = 0; i < n && st == SB_OK; i++) {
        const sbi_node *it = items[i];
        if (it->kind != SBI_SCALAR || !*it->text) {
            st = sb_error_set(L->err, SB_ERR_CONFIG, sbi_loc_str(it->loc, where, sizeof where),
                              "include: entries must be file names (got %s)",
                              it->kind == SBI_SCALAR ? "an empty string"
                                                     : sbi_node_kind_name(it->kind));
            break;
        }
        char *rel = NULL;
        st = sbi_interp_string(it->text, it->loc, &rel, L->err);
        if (st != SB_OK)
            break;
        char *joined = sbi_path_join(strcmp(dir, ".") == 0 ? NULL : dir, rel);
        free(rel);
        if (!joined) {
            st = sb_error_set(L->err, SB_ERR_NOMEM, path, "out of memory");
            break;
        }
        L->stack[L->depth - 1].inc_loc = it->loc;
        sbi_node *sub = load_file(L, joined, it->loc);
        free(joined);
        if (!sub) {
            st = L->err && L->err->code != SB_OK ? L->err->code : SB_ERR_CONFIG;
            break;
        }
        *base = sbi_node_merge(*base, sub);
    }
    free(dir);
    if (st != SB_OK)
        sbi_node_free(base);
    return st;
}

/* Steps 1–2 for one file: parse it, then load and merge what it includes beneath it. */
static sbi_node *load_file(loader *L, const char *given, sbi_loc from)
{
    char msg[1024], chain[1024];
    const char *path = sbi_intern(given);
    if (!path) {
        sb_error_set(L->err, SB_ERR_NOMEM, given, "out of memory");
        return NULL;
    }
    char *real = realpath(path, NULL);
    if (!real) {
        snprintf(msg, sizeof msg, "cannot open %s '%s': %s",
                 L->depth ? "included file" : "config file", path, strerror(errno));
        file_error(L, L->depth ? SB_ERR_CONFIG : SB_ERR_IO, from, path, msg);
        return NULL;
    }
    for (int i = 0; i < L->depth; i++) {
        if (strcmp(L->stack[i].real, real) == 0) {
            char where[512];
            chain_str(L, path, chain, sizeof chain);
            sb_error_set(L->err, SB_ERR_CONFIG, sbi_loc_str(from, where, sizeof where),
                         "include cycle: %s; remove one of these includes", chain);
            free(real);
            return NULL;
        }
    }
    if (L->depth >= SBI_CONFIG_MAX_INCLUDE_DEPTH) {
        snprintf(msg, sizeof msg, "includes nest deeper than %d files",
                 SBI_CONFIG_MAX_INCLUDE_DEPTH);
        file_error(L, SB_ERR_CONFIG, from, path, msg);
        free(real);
        return NULL;
    }

    char *text = NULL;
    size_t len = 0;
    sb_error tmp = { 0 };
    sbi_node *root = NULL;
    if (sbi_read_file(path, &text, &len, &tmp) != SB_OK) {
        snprintf(msg, sizeof msg, "cannot read %s '%s': %.400s",
                 L->depth ? "included file" : "config file", path, tmp.msg);
        file_error(L, L->depth ? SB_ERR_CONFIG : SB_ERR_IO, from, path, msg);
        goto out;
    }
    root = sbi_yaml_parse(text, len, path, &tmp);
    free(text);
    if (!root) {
        if (L->depth == 0) {
            sb_error_set(L->err, tmp.code, tmp.where, "%s", tmp.msg);
        } else {
            chain_str(L, path, chain, sizeof chain);
            sb_error_set(L->err, tmp.code, tmp.where, "%s (include chain: %s)", tmp.msg, chain);
        }
        goto out;
    }
    if (root->kind == SBI_NULL) { /* an empty file is an empty config */
        root->kind = SBI_MAP;
    } else if (root->kind != SBI_MAP) {
        char where[512];
        sb_error_set(L->err, SB_ERR_CONFIG, sbi_loc_str(root->loc, where, sizeof where),
                     "the top level of a config must be a mapping of keys (key: value), not %s",
                     sbi_node_kind_name(root->kind));
        sbi_node_free(&root);
        goto out;
    }

    const sbi_node *inc = sbi_node_get(root, "include");
    if (inc) {
        L->stack[L->depth].path = path;
        L->stack[L->depth].real = real;
        L->depth++;
        sbi_node *base = NULL;
        sb_status st = load_includes(L, path, inc, &base);
        L->depth--;
        sbi_node_remove(root, "include");
        if (st != SB_OK)
            sbi_node_free(&root);
        else
            root = sbi_node_merge(base, root);
    }
out:
    free(real);
    return root;
}

sbi_node *sbi_config_load(const char *path, const char *const *overrides, size_t n_overrides,
                          sb_error *err)
{
    if (!path || !*path) {
        sb_error_set(err, SB_ERR_USAGE, NULL, "no config file given");
        return NULL;
    }
    loader L;
    memset(&L, 0, sizeof L);
    L.err = err;
    sbi_loc none = { NULL, 0, 0 };
    sbi_node *root = load_file(&L, path, none);
    if (!root)
        return NULL;
    if (sbi_interp_tree(root, err) != SB_OK ||
        sbi_overrides_apply(root, overrides, n_overrides, err) != SB_OK)
        sbi_node_free(&root);
    return root;
}
