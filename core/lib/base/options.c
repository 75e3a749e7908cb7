/* core/lib/base/options.c — option tables: validation of config blocks, defaults, typed
 * values, and the getters plugins call. The table is the single source of truth. */
#include "opts.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util.h"

struct sb_opts {
    const sb_option *table;
    json_t *values; /* name → typed value */
    json_t *texts;  /* name → canonical JSON text (MAP rows only) */
    json_t *where;  /* name → "file:line:col" or "default" */
};

const char *sbi_opt_type_name(sb_opt_type t)
{
    switch (t) {
    case SB_OPT_BOOL: return "bool";
    case SB_OPT_INT: return "int";
    case SB_OPT_FLOAT: return "float";
    case SB_OPT_STRING: return "string";
    case SB_OPT_PATH: return "path";
    case SB_OPT_ENUM: return "enum";
    case SB_OPT_LIST: return "list";
    case SB_OPT_MAP: return "map";
    }
    return "?";
}

static const sb_option *find_row(const sb_option *table, const char *name)
{
    for (const sb_option *o = table; o && o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

/* Is `word` one of the '|'-separated choices? */
static int in_choices(const char *choices, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return 1;
        p = bar ? bar + 1 : p + len;
    }
    return 0;
}

/* Suggest the closest choice; writes " (did you mean 'x'?)" or "" into buf. */
/* A scalar's value as a message may show it: quoted, or, when it came from an environment
 * variable (it may be a secret; docs/config.md), not at all. */
static const char *shown(const sbi_node *n, char *buf, size_t size)
{
    if (n->from_env)
        return "a value from an environment variable (not shown)";
    snprintf(buf, size, "'%s'", n->text);
    return buf;
}

static void suggest_choice(const char *choices, const char *word, char *buf, size_t size)
{
    buf[0] = '\0';
    char *copy = strdup(choices ? choices : "");
    if (!copy)
        return;
    const char *cands[64];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(copy, "|", &save); t && n < 63;
         t = strtok_r(NULL, "|", &save))
        cands[n++] = t;
    cands[n] = NULL;
    const char *best = sbi_did_you_mean(word, cands);
    if (best)
        snprintf(buf, size, " (did you mean '%s'?)", best);
    free(copy);
}

static const char *range_text(const sb_option *o, char *buf, size_t size)
{
    if ((o->flags & SB_OPT_HAS_MIN) && (o->flags & SB_OPT_HAS_MAX))
        snprintf(buf, size, "%g..%g", o->min, o->max);
    else if (o->flags & SB_OPT_HAS_MIN)
        snprintf(buf, size, ">= %g", o->min);
    else if (o->flags & SB_OPT_HAS_MAX)
        snprintf(buf, size, "<= %g", o->max);
    else
        snprintf(buf, size, "any");
    return buf;
}

static int out_of_range(const sb_option *o, double v)
{
    return ((o->flags & SB_OPT_HAS_MIN) && v < o->min) ||
           ((o->flags & SB_OPT_HAS_MAX) && v > o->max);
}

/* Convert one node to the typed JSON value of row `o`, or fail with a message at `where`. */
static sb_status typed_value(const sb_option *o, const char *plugin, const sbi_node *n,
                             const char *where, json_t **out, sb_error *err)
{
    char rbuf[64], sbuf[128], vbuf[1100];
    *out = NULL;
    switch (o->type) {
    case SB_OPT_BOOL:
    case SB_OPT_INT:
    case SB_OPT_FLOAT: {
        if (n->kind != SBI_SCALAR)
            return sb_error_set(err, SB_ERR_CONFIG, where,
                                "option '%s' of plugin %s expects a %s, got a %s", o->name, plugin,
                                sbi_opt_type_name(o->type),
                                n->kind == SBI_MAP ? "mapping" : "list");
        json_t *v = n->quoted ? NULL : sbi_scalar_to_json(n);
        int ok = v && ((o->type == SB_OPT_BOOL && json_is_boolean(v)) ||
                       (o->type == SB_OPT_INT && json_is_integer(v)) ||
                       (o->type == SB_OPT_FLOAT && json_is_number(v)));
        if (!ok) {
            json_decref(v);
            return sb_error_set(err, SB_ERR_CONFIG, where,
                                "option '%s' of plugin %s expects %s, got %s%s", o->name, plugin,
                                o->type == SB_OPT_BOOL  ? "true or false"
                                : o->type == SB_OPT_INT ? "an integer"
                                                        : "a number",
                                n->quoted && !n->from_env ? "the quoted string " : "",
                                shown(n, vbuf, sizeof vbuf));
        }
        if (o->type == SB_OPT_FLOAT && json_is_integer(v)) {
            json_t *r = json_real((double)json_integer_value(v));
            json_decref(v);
            v = r;
        }
        if (o->type != SB_OPT_BOOL) {
            double d = json_number_value(v);
            if (!isfinite(d) || out_of_range(o, d)) {
                json_decref(v);
                return sb_error_set(err, SB_ERR_CONFIG, where,
                                    "option '%s' of plugin %s is %s, outside its range %s", o->name,
                                    plugin, n->from_env ? shown(n, vbuf, sizeof vbuf) : n->text,
                                    range_text(o, rbuf, sizeof rbuf));
            }
        }
        *out = v;
        return SB_OK;
    }
    case SB_OPT_STRING:
    case SB_OPT_PATH:
    case SB_OPT_ENUM:
        if (n->kind != SBI_SCALAR)
            return sb_error_set(err, SB_ERR_CONFIG, where,
                                "option '%s' of plugin %s expects a %s, got a %s", o->name, plugin,
                                o->type == SB_OPT_PATH ? "path" : "string",
                                n->kind == SBI_MAP ? "mapping" : "list");
        if (o->type == SB_OPT_ENUM && !in_choices(o->choices, n->text)) {
            if (n->from_env)
                sbuf[0] = '\0';
            else
                suggest_choice(o->choices, n->text, sbuf, sizeof sbuf);
            return sb_error_set(err, SB_ERR_CONFIG, where,
                                "option '%s' of plugin %s is %s%s; allowed: %s", o->name, plugin,
                                shown(n, vbuf, sizeof vbuf), sbuf, o->choices);
        }
        if (o->type == SB_OPT_PATH) {
            if (!*n->text)
                return sb_error_set(err, SB_ERR_CONFIG, where,
                                    "option '%s' of plugin %s is an empty path", o->name, plugin);
            char *dir = n->loc.line > 0 && n->loc.file ? sbi_path_dirname(n->loc.file) : NULL;
            char *p = sbi_path_join(dir, n->text);
            free(dir);
            if (!p)
                return sb_error_set(err, SB_ERR_NOMEM, where, "out of memory");
            char *real = realpath(p, NULL); /* tidy when it exists; keep as written otherwise */
            if (real || !sbi_path_is_abs(p)) {
                char *abs = real ? real : realpath(".", NULL);
                if (!real && abs) {
                    char *j = sbi_path_join(abs, p);
                    free(abs);
                    abs = j;
                }
                free(p);
                p = abs;
            }
            *out = p ? json_string(p) : NULL;
            free(p);
            return *out ? SB_OK : sb_error_set(err, SB_ERR_NOMEM, where, "out of memory");
        }
        *out = json_string(n->text);
        return *out ? SB_OK : sb_error_set(err, SB_ERR_CONFIG, where, "value is not valid UTF-8");
    case SB_OPT_LIST: {
        json_t *arr = json_array();
        if (n->kind == SBI_SCALAR) {
            json_array_append_new(arr, json_string(n->text));
        } else if (n->kind == SBI_SEQ) {
            for (size_t i = 0; i < n->n; i++) {
                const sbi_node *it = n->items[i];
                if (it->kind != SBI_SCALAR) {
                    json_decref(arr);
                    char w[600];
                    return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(it->loc, w, sizeof w),
                                        "option '%s' of plugin %s: list items must be scalars",
                                        o->name, plugin);
                }
                json_array_append_new(arr, json_string(it->text));
            }
        } else {
            json_decref(arr);
            return sb_error_set(err, SB_ERR_CONFIG, where,
                                "option '%s' of plugin %s expects a list, got a mapping", o->name,
                                plugin);
        }
        for (size_t i = 0; o->choices && i < json_array_size(arr); i++) {
            const char *s = json_string_value(json_array_get(arr, i));
            if (!s || !in_choices(o->choices, s)) {
                suggest_choice(o->choices, s ? s : "", sbuf, sizeof sbuf);
                sb_status st = sb_error_set(err, SB_ERR_CONFIG, where,
                                            "option '%s' of plugin %s: item '%s' not allowed%s; "
                                            "allowed: %s",
                                            o->name, plugin, s ? s : "?", sbuf, o->choices);
                json_decref(arr);
                return st;
            }
        }
        double len = (double)json_array_size(arr);
        if (out_of_range(o, len)) {
            json_decref(arr);
            return sb_error_set(err, SB_ERR_CONFIG, where,
                                "option '%s' of plugin %s has %g items; allowed: %s", o->name,
                                plugin, len, range_text(o, rbuf, sizeof rbuf));
        }
        *out = arr;
        return SB_OK;
    }
    case SB_OPT_MAP:
        if (n->kind != SBI_MAP)
            return sb_error_set(err, SB_ERR_CONFIG, where,
                                "option '%s' of plugin %s expects a mapping", o->name, plugin);
        *out = sbi_node_to_json(n);
        return *out ? SB_OK : sb_error_set(err, SB_ERR_NOMEM, where, "out of memory");
    }
    return sb_error_set(err, SB_ERR_PLUGIN, plugin, "option '%s' has an unknown type", o->name);
}

static sb_opts *opts_new(const sb_option *table)
{
    sb_opts *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->table = table;
    o->values = json_object();
    o->texts = json_object();
    o->where = json_object();
    if (!o->values || !o->texts || !o->where) {
        sbi_opts_destroy(&o);
        return NULL;
    }
    return o;
}

void sbi_opts_destroy(sb_opts **op)
{
    if (!op || !*op)
        return;
    json_decref((*op)->values);
    json_decref((*op)->texts);
    json_decref((*op)->where);
    free(*op);
    *op = NULL;
}

static sb_status store_value(sb_opts *o, const sb_option *row, json_t *v, const char *where)
{
    json_object_set_new(o->values, row->name, v);
    json_object_set_new(o->where, row->name, json_string(where));
    if (row->type == SB_OPT_MAP) {
        char *t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        json_object_set_new(o->texts, row->name, json_string(t ? t : "{}"));
        free(t);
    }
    return SB_OK;
}

/* The default of row `o` as a typed value (NULL when it has none). */
static sb_status default_value(const sb_option *o, const char *plugin, json_t **out, sb_error *err)
{
    *out = NULL;
    if (!o->def || (o->flags & SB_OPT_REQUIRED))
        return SB_OK;
    char name[256];
    snprintf(name, sizeof name, "<default of %s.%s>", plugin, o->name);
    sb_error e = { 0 };
    sbi_node *n = sbi_config_parse_string(o->def, strlen(o->def), name, &e);
    if (!n)
        return sb_error_set(err, SB_ERR_PLUGIN, plugin,
                            "default of option '%s' is not valid YAML: %s", o->name, e.msg);
    sb_status st = SB_OK;
    if (n->kind != SBI_NULL) {
        /* A default path has no file to be relative to: it is taken as written. */
        n->loc.line = 0;
        st = typed_value(o, plugin, n, "default", out, &e);
        if (st != SB_OK)
            st = sb_error_set(err, SB_ERR_PLUGIN, plugin, "default of option '%s' is invalid: %s",
                              o->name, e.msg);
    }
    sbi_node_free(&n);
    return st;
}

sb_status sbi_opts_check_table(const sb_option *table, const char *plugin, sb_error *err)
{
    for (const sb_option *o = table; o && o->name; o++) {
        const char *p = o->name;
        int ok = *p >= 'a' && *p <= 'z';
        for (; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
        if (!ok)
            return sb_error_set(err, SB_ERR_PLUGIN, plugin,
                                "option name '%s' is not of the form [a-z][a-z0-9_]*", o->name);
        if (o->type < SB_OPT_BOOL || o->type > SB_OPT_MAP)
            return sb_error_set(err, SB_ERR_PLUGIN, plugin, "option '%s' has unknown type %d",
                                o->name, (int)o->type);
        if (o->type == SB_OPT_ENUM && (!o->choices || !*o->choices))
            return sb_error_set(err, SB_ERR_PLUGIN, plugin, "enum option '%s' lists no choices",
                                o->name);
        for (const sb_option *q = table; q < o; q++)
            if (strcmp(q->name, o->name) == 0)
                return sb_error_set(err, SB_ERR_PLUGIN, plugin, "option '%s' is declared twice",
                                    o->name);
        json_t *v = NULL;
        sb_status st = default_value(o, plugin, &v, err);
        json_decref(v);
        if (st != SB_OK)
            return st;
    }
    return SB_OK;
}

sb_status sbi_opts_validate(const sb_option *table, const char *plugin, const sbi_node *block,
                            const char *const *reserved, sb_opts **out, sb_error *err)
{
    char where[600];
    *out = NULL;
    if (block && block->kind != SBI_MAP && block->kind != SBI_NULL)
        return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(block->loc, where, sizeof where),
                            "the block for plugin %s must be a mapping of options", plugin);
    sb_opts *o = opts_new(table);
    if (!o)
        return sb_error_set(err, SB_ERR_NOMEM, plugin, "out of memory");

    /* 1. every key written must be an option (or the host's) */
    size_t n_keys = block && block->kind == SBI_MAP ? block->n : 0;
    for (size_t i = 0; i < n_keys; i++) {
        const char *key = block->keys[i];
        int host_key = 0;
        for (const char *const *r = reserved; r && *r; r++)
            host_key |= strcmp(*r, key) == 0;
        if (host_key || find_row(table, key))
            continue;
        const char *cands[256];
        size_t nc = 0;
        for (const sb_option *row = table; row && row->name && nc < 255; row++)
            cands[nc++] = row->name;
        cands[nc] = NULL;
        const char *best = sbi_did_you_mean(key, cands);
        char hint[200];
        if (best)
            snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
        else
            snprintf(hint, sizeof hint, "; `serbench plugins %s` lists its options", plugin);
        sbi_opts_destroy(&o);
        return sb_error_set(err, SB_ERR_CONFIG,
                            sbi_loc_str(block->key_locs[i], where, sizeof where),
                            "unknown option '%s' for plugin %s%s", key, plugin, hint);
    }
    /* 2. each row: the written value, else its default, else required/unset */
    for (const sb_option *row = table; row && row->name; row++) {
        const sbi_node *n = block && block->kind == SBI_MAP ? sbi_node_get(block, row->name) : NULL;
        json_t *v = NULL;
        sb_status st;
        if (n && n->kind != SBI_NULL) {
            sbi_loc_str(n->loc, where, sizeof where);
            st = typed_value(row, plugin, n, where, &v, err);
        } else {
            snprintf(where, sizeof where, "default");
            st = default_value(row, plugin, &v, err);
            if (st == SB_OK && !v && (row->flags & SB_OPT_REQUIRED)) {
                char w[600] = "";
                if (block)
                    sbi_loc_str(block->loc, w, sizeof w);
                st = sb_error_set(err, SB_ERR_CONFIG, w[0] ? w : plugin,
                                  "plugin %s needs option '%s' (%s): %s", plugin, row->name,
                                  sbi_opt_type_name(row->type), row->help ? row->help : "");
            }
        }
        if (st != SB_OK) {
            sbi_opts_destroy(&o);
            return st;
        }
        if (v)
            store_value(o, row, v, where);
    }
    *out = o;
    return SB_OK;
}

json_t *sbi_opts_values(const sb_opts *o)
{
    return o->values;
}

sb_status sbi_opts_parse(const sb_option *table, const char *yaml_text, const char *name,
                         sb_opts **out, sb_error *err)
{
    sbi_node *n = sbi_config_parse_string(yaml_text, strlen(yaml_text), name, err);
    if (!n)
        return err ? err->code : SB_ERR_CONFIG;
    sb_status st = sbi_opts_check_table(table, name, err);
    if (st == SB_OK)
        st = sbi_opts_validate(table, name, n, NULL, out, err);
    sbi_node_free(&n);
    return st;
}

/* ---- getters ----------------------------------------------------------------------- */

static json_t *get(const sb_opts *o, const char *name, sb_opt_type want1, sb_opt_type want2)
{
    if (!o)
        return NULL;
    const sb_option *row = find_row(o->table, name);
    if (!row || (row->type != want1 && row->type != want2))
        return NULL;
    return json_object_get(o->values, name);
}

int sb_opts_has(const sb_opts *o, const char *name)
{
    return o && json_object_get(o->values, name) != NULL;
}

int sb_opts_bool(const sb_opts *o, const char *name)
{
    return json_is_true(get(o, name, SB_OPT_BOOL, SB_OPT_BOOL));
}

int64_t sb_opts_int(const sb_opts *o, const char *name)
{
    return (int64_t)json_integer_value(get(o, name, SB_OPT_INT, SB_OPT_INT));
}

double sb_opts_float(const sb_opts *o, const char *name)
{
    return json_number_value(get(o, name, SB_OPT_FLOAT, SB_OPT_INT));
}

const char *sb_opts_str(const sb_opts *o, const char *name)
{
    json_t *v = get(o, name, SB_OPT_STRING, SB_OPT_PATH);
    if (!v)
        v = get(o, name, SB_OPT_ENUM, SB_OPT_ENUM);
    return json_string_value(v);
}

size_t sb_opts_list_len(const sb_opts *o, const char *name)
{
    return json_array_size(get(o, name, SB_OPT_LIST, SB_OPT_LIST));
}

const char *sb_opts_list_item(const sb_opts *o, const char *name, size_t i)
{
    return json_string_value(json_array_get(get(o, name, SB_OPT_LIST, SB_OPT_LIST), i));
}

const char *sb_opts_json(const sb_opts *o, const char *name)
{
    if (!get(o, name, SB_OPT_MAP, SB_OPT_MAP))
        return "{}";
    const char *t = json_string_value(json_object_get(o->texts, name));
    return t ? t : "{}";
}

const char *sb_opts_where(const sb_opts *o, const char *name)
{
    const char *w = o ? json_string_value(json_object_get(o->where, name)) : NULL;
    return w ? w : "default";
}
