/* core/lib/config/override.c — step 4: command-line overrides "key.path=value". The value
 * is one YAML flow node (a scalar, [list] or {map}; empty means null) and every node of it
 * is located at "<command line>:0:N", N being the override's 1-based position. `include`
 * cannot be overridden: includes are read with the files, before this step. */
#include "config_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_locs(sbi_node *n, sbi_loc loc)
{
    n->loc = loc;
    for (size_t i = 0; i < n->n; i++) {
        if (n->kind == SBI_MAP)
            n->key_locs[i] = loc;
        set_locs(n->items[i], loc);
    }
}

/* The value after '=' as a node, or NULL with err set. */
static sbi_node *parse_value(const char *ov, const char *text, sbi_loc loc, sb_error *err)
{
    char where[512];
    sbi_loc_str(loc, where, sizeof where);
    sb_error tmp = { 0 };
    sbi_node *v = sbi_yaml_parse(text, strlen(text), loc.file, &tmp);
    if (!v) {
        /* the parser's hint about indentation means nothing for a one-line value */
        char *hint = strstr(tmp.msg, "; check the indentation");
        if (hint)
            *hint = '\0';
        sb_error_set(err, tmp.code == SB_ERR_NOMEM ? SB_ERR_NOMEM : SB_ERR_CONFIG, where,
                     "override '%s': the value is not valid YAML (%s); quote it", ov, tmp.msg);
        return NULL;
    }
    const char *p = text + strspn(text, " ");
    if ((v->kind == SBI_MAP || v->kind == SBI_SEQ) && *p != '[' && *p != '{') {
        sb_error_set(err, SB_ERR_CONFIG, where,
                     "override '%s': the value reads as a YAML block %s; write it in flow "
                     "style ([a, b] or {k: v}) or quote it",
                     ov, v->kind == SBI_MAP ? "mapping" : "list");
        sbi_node_free(&v);
        return NULL;
    }
    set_locs(v, loc);
    return v;
}

/* `sweep:` keys are dotted paths themselves, so "sweep.a.b=[1,2]" sets the sweep entry
 * "a.b" rather than nested maps. */
static sb_status set_sweep_entry(sbi_node *root, const char *ov, const char *key, sbi_node *v,
                                 sbi_loc loc, sb_error *err)
{
    char where[512];
    sbi_node *sw = sbi_node_get(root, "sweep");
    if (!sw || sw->kind == SBI_NULL) {
        sbi_node *m = sbi_node_new_map(loc);
        if (!m) {
            sbi_node_free(&v);
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        }
        sbi_map_set(root, "sweep", loc, m);
        sw = sbi_node_get(root, "sweep");
    }
    if (!sw || sw->kind != SBI_MAP) {
        sbi_node_free(&v);
        return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(loc, where, sizeof where),
                            "override '%s': sweep is not a mapping", ov);
    }
    sbi_map_set(sw, key, loc, v);
    return SB_OK;
}

sb_status sbi_overrides_apply(sbi_node *root, const char *const *overrides, size_t n, sb_error *err)
{
    const char *cmdline = sbi_intern("<command line>");
    char where[512];
    for (size_t i = 0; i < n; i++) {
        const char *ov = overrides[i];
        sbi_loc loc = { cmdline, 0, (int)(i + 1) };
        sbi_loc_str(loc, where, sizeof where);
        if (!ov)
            return sb_error_set(err, SB_ERR_USAGE, where, "override %zu is missing", i + 1);
        const char *eq = strchr(ov, '=');
        if (!eq)
            return sb_error_set(err, SB_ERR_USAGE, where,
                                "override '%s' has no '='; write key.path=value", ov);
        if (eq == ov)
            return sb_error_set(err, SB_ERR_USAGE, where,
                                "override '%s' has no key before '='; write key.path=value", ov);
        if (!root || root->kind != SBI_MAP)
            return sb_error_set(err, SB_ERR_CONFIG, where,
                                "override '%s': the config is not a mapping", ov);
        /* Includes are resolved while the files are read, before any override. */
        if (strncmp(ov, "include", 7) == 0 && (ov[7] == '=' || ov[7] == '.'))
            return sb_error_set(err, SB_ERR_USAGE, where,
                                "override '%s': include cannot be set on the command line; "
                                "put include: in the config file",
                                ov);
        char *path = strndup(ov, (size_t)(eq - ov));
        if (!path)
            return sb_error_set(err, SB_ERR_NOMEM, where, "out of memory");
        sbi_node *v = parse_value(ov, eq + 1, loc, err);
        if (!v) {
            free(path);
            return err && err->code != SB_OK ? err->code : SB_ERR_CONFIG;
        }
        sb_status st;
        if (strncmp(path, "sweep.", 6) == 0 && path[6]) {
            st = set_sweep_entry(root, ov, path + 6, v, loc, err);
        } else {
            sb_error tmp = { 0 };
            st = sbi_node_set_path(root, path, v, &tmp);
            if (st != SB_OK)
                sb_error_set(err, st, where, "override '%s': %s", ov, tmp.msg);
        }
        free(path);
        if (st != SB_OK)
            return st;
    }
    return SB_OK;
}
