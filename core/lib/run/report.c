/* core/lib/run/report.c — the `report:` block: parsed and checked from the config's nodes
 * (so messages name file:line:col), tables built from the store as JSON, rendered as
 * Markdown, CSV, LaTeX (booktabs) or JSON (report.h). */
#include "report.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <serbench/metrics.h>
#include <serbench/signif.h>

#include "pipeline.h"
#include "util.h"

/* ---- the spec: one table as the config describes it --------------------------------- */

enum { SC_AUTO = -1, SC_PERCENT, SC_FRACTION, SC_RAW };
enum { BEST_AUTO = -1, BEST_NONE, BEST_MAX, BEST_MIN };
enum { SIG_NONE, SIG_BOOTSTRAP, SIG_MCNEMAR };

typedef struct rp_table {
    char name[64];
    char path[48];   /* "report" or "report.tables[i]", for messages */
    char where[256]; /* file:line:col of the table's mapping */
    const char *title;
    const char *metric;        /* NULL: `metric` is a row or column key */
    json_t *rows, *cols, *avg; /* arrays of key paths */
    int cols_given;
    int scale, digits, best;
    int sig;
    double alpha;
    long resamples;
    uint64_t sig_seed;
    const char *source;
    json_t *entries; /* [{"keys": {path: value text}, "value": x, "where": "f:l:c"}] */
} rp_table;

typedef struct rp_spec {
    const char *title;
    rp_table *t;
    size_t n;
} rp_spec;

static const char *const report_top_keys[] = { "title",  "tables", "name",         "metric",
                                               "rows",   "cols",   "average",      "scale",
                                               "digits", "best",   "significance", "reported",
                                               NULL };
static const char *const table_keys[] = { "name", "title",        "metric",   "rows",
                                          "cols", "average",      "scale",    "digits",
                                          "best", "significance", "reported", NULL };
static const char *const sig_keys[] = { "test", "alpha", "resamples", "seed", NULL };
static const char *const reported_keys[] = { "source", "values", NULL };

static const char *where_of(const sbi_node *n, char *buf, size_t size)
{
    if (!n || !n->loc.file) {
        snprintf(buf, size, "report");
        return buf;
    }
    return sbi_loc_str(n->loc, buf, size);
}

static void spec_free(rp_spec *s)
{
    for (size_t i = 0; i < s->n; i++) {
        json_decref(s->t[i].rows);
        json_decref(s->t[i].cols);
        json_decref(s->t[i].avg);
        json_decref(s->t[i].entries);
    }
    free(s->t);
    memset(s, 0, sizeof *s);
}

static sb_status check_keys(const sbi_node *m, const char *const *allowed, const char *what,
                            sb_error *err)
{
    char w[300];
    for (size_t i = 0; m && m->kind == SBI_MAP && i < m->n; i++) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(*a, m->keys[i]);
        if (ok)
            continue;
        const char *best = sbi_did_you_mean(m->keys[i], allowed);
        char hint[128] = "";
        if (best)
            snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
        return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(m->key_locs[i], w, sizeof w),
                            "unknown key '%s' in %s%s", m->keys[i], what, hint);
    }
    return SB_OK;
}

/* A key path or a list of them into a JSON array of strings. */
static sb_status key_list(const sbi_node *n, const char *what, json_t **out, sb_error *err)
{
    char w[300];
    *out = json_array();
    if (!n || n->kind == SBI_NULL)
        return SB_OK;
    size_t cnt = n->kind == SBI_SEQ ? n->n : 1;
    for (size_t i = 0; i < cnt; i++) {
        const sbi_node *it = n->kind == SBI_SEQ ? n->items[i] : n;
        if (it->kind != SBI_SCALAR || !*it->text || it->text[0] == '.' ||
            it->text[strlen(it->text) - 1] == '.') {
            json_decref(*out);
            *out = NULL;
            return sb_error_set(err, SB_ERR_CONFIG, where_of(it, w, sizeof w),
                                "%s must be a key path (experiment.encoder, test, metric, ...) "
                                "or a list of them",
                                what);
        }
        for (size_t k = 0; k < json_array_size(*out); k++)
            if (!strcmp(json_string_value(json_array_get(*out, k)), it->text)) {
                json_decref(*out);
                *out = NULL;
                return sb_error_set(err, SB_ERR_CONFIG, where_of(it, w, sizeof w),
                                    "%s names '%s' twice", what, it->text);
            }
        json_array_append_new(*out, json_string(it->text));
    }
    return SB_OK;
}

static int list_has(const json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach((json_t *)list, i, v) if (!strcmp(json_string_value(v), s)) return 1;
    return 0;
}

static sb_status enum_value(const sbi_node *n, const char *what, const char *const *names, int *out,
                            sb_error *err)
{
    char w[300];
    for (int i = 0; n && n->kind == SBI_SCALAR && names[i]; i++)
        if (!strcmp(n->text, names[i])) {
            *out = i;
            return SB_OK;
        }
    const char *best = n && n->kind == SBI_SCALAR ? sbi_did_you_mean(n->text, names) : NULL;
    sbi_buf b = { 0 };
    for (int i = 0; names[i]; i++)
        sbi_buf_printf(&b, "%s%s", i ? (names[i + 1] ? ", " : " or ") : "", names[i]);
    sb_status st =
        sb_error_set(err, SB_ERR_CONFIG, where_of(n, w, sizeof w), "%s must be %s (got '%s')%s%s%s",
                     what, b.s ? b.s : "", n && n->text ? n->text : "?",
                     best ? " (did you mean '" : "", best ? best : "", best ? "'?)" : "");
    sbi_buf_free(&b);
    return st;
}

/* A scalar as a number (YAML core schema); 0 on success. */
static int node_number(const sbi_node *n, double *v, int *is_int)
{
    json_t *j = n && n->kind == SBI_SCALAR ? sbi_scalar_to_json(n) : NULL;
    int ok = json_is_number(j);
    if (ok) {
        *v = json_number_value(j);
        if (is_int)
            *is_int = json_is_integer(j);
    }
    json_decref(j);
    return ok ? 0 : -1;
}

/* Text of a resolved-config value as cells and `reported` entries compare it: strings as
 * they are, integers in decimal, reals in the shortest %g that round-trips to 15 digits,
 * lists joined by '+'. Caller frees. */
static char *value_text(const json_t *v)
{
    if (!v)
        return strdup("-");
    switch (json_typeof(v)) {
    case JSON_STRING: return strdup(json_string_value(v));
    case JSON_INTEGER: return sbi_asprintf("%lld", (long long)json_integer_value(v));
    case JSON_REAL: return sbi_asprintf("%.15g", json_real_value(v));
    case JSON_TRUE: return strdup("true");
    case JSON_FALSE: return strdup("false");
    case JSON_NULL: return strdup("null");
    case JSON_ARRAY: {
        sbi_buf b = { 0 };
        size_t i;
        json_t *x;
        json_array_foreach((json_t *)v, i, x)
        {
            char *t = value_text(x);
            sbi_buf_printf(&b, "%s%s", i ? "+" : "", t ? t : "?");
            free(t);
        }
        return b.s ? b.s : strdup("");
    }
    default: return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    }
}

static sb_status parse_reported(const sbi_node *n, rp_table *t, sb_error *err)
{
    char w[300];
    if (n->kind != SBI_MAP)
        return sb_error_set(err, SB_ERR_CONFIG, where_of(n, w, sizeof w),
                            "%s.reported must be a mapping {source: TEXT, values: [...]}", t->path);
    char what[96];
    snprintf(what, sizeof what, "%s.reported", t->path);
    sb_status st = check_keys(n, reported_keys, what, err);
    if (st != SB_OK)
        return st;
    const sbi_node *src = sbi_node_get(n, "source");
    if (src && src->kind != SBI_SCALAR)
        return sb_error_set(err, SB_ERR_CONFIG, where_of(src, w, sizeof w),
                            "%s.reported.source must be text (the paper and table)", t->path);
    t->source = src ? src->text : NULL;
    const sbi_node *vals = sbi_node_get(n, "values");
    if (vals && vals->kind != SBI_SEQ && vals->kind != SBI_NULL)
        return sb_error_set(err, SB_ERR_CONFIG, where_of(vals, w, sizeof w),
                            "%s.reported.values must be a list of {KEY: VALUE, ..., value: N}",
                            t->path);
    for (size_t i = 0; vals && vals->kind == SBI_SEQ && i < vals->n; i++) {
        const sbi_node *e = vals->items[i];
        if (e->kind != SBI_MAP)
            return sb_error_set(err, SB_ERR_CONFIG, where_of(e, w, sizeof w),
                                "%s.reported.values[%zu] must be a mapping of row and column "
                                "keys plus value: N",
                                t->path, i);
        const sbi_node *vn = sbi_node_get(e, "value");
        double v = 0;
        if (!vn || node_number(vn, &v, NULL) != 0 || !isfinite(v))
            return sb_error_set(err, SB_ERR_CONFIG, where_of(vn ? vn : e, w, sizeof w),
                                "%s.reported.values[%zu] needs value: a number (in the table's "
                                "scale)",
                                t->path, i);
        json_t *keys = json_object();
        for (size_t k = 0; k < e->n; k++) {
            if (!strcmp(e->keys[k], "value"))
                continue;
            if (e->items[k]->kind == SBI_MAP) {
                json_decref(keys);
                return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(e->key_locs[k], w, sizeof w),
                                    "%s.reported.values[%zu].%s must be a value (a list for a "
                                    "list of encoders)",
                                    t->path, i, e->keys[k]);
            }
            json_t *j = sbi_node_to_json(e->items[k]);
            char *txt = value_text(j);
            json_decref(j);
            json_object_set_new(keys, e->keys[k], json_string(txt ? txt : ""));
            free(txt);
        }
        json_array_append_new(t->entries, json_pack("{s:o, s:f, s:s}", "keys", keys, "value", v,
                                                    "where", where_of(e, w, sizeof w)));
    }
    return SB_OK;
}

static sb_status parse_significance(const sbi_node *n, rp_table *t, sb_error *err)
{
    char w[300], what[96];
    if (n->kind != SBI_MAP)
        return sb_error_set(err, SB_ERR_CONFIG, where_of(n, w, sizeof w),
                            "%s.significance must be a mapping {test: bootstrap|mcnemar, alpha, "
                            "resamples, seed}",
                            t->path);
    snprintf(what, sizeof what, "%s.significance", t->path);
    sb_status st = check_keys(n, sig_keys, what, err);
    if (st != SB_OK)
        return st;
    static const char *const tests[] = { "bootstrap", "mcnemar", NULL };
    const sbi_node *tn = sbi_node_get(n, "test");
    int k = 0;
    if (tn) {
        snprintf(what, sizeof what, "%s.significance.test", t->path);
        if ((st = enum_value(tn, what, tests, &k, err)) != SB_OK)
            return st;
    }
    t->sig = k == 0 ? SIG_BOOTSTRAP : SIG_MCNEMAR;
    t->alpha = 0.05;
    t->resamples = 1000;
    t->sig_seed = 0;
    const sbi_node *a = sbi_node_get(n, "alpha");
    if (a && (node_number(a, &t->alpha, NULL) != 0 || !(t->alpha > 0 && t->alpha < 1)))
        return sb_error_set(err, SB_ERR_CONFIG, where_of(a, w, sizeof w),
                            "%s.significance.alpha must be a number in (0, 1), e.g. 0.05", t->path);
    const sbi_node *r = sbi_node_get(n, "resamples");
    double v;
    int is_int = 0;
    if (r) {
        if (node_number(r, &v, &is_int) != 0 || !is_int || v < 1 || v > 1e7)
            return sb_error_set(err, SB_ERR_CONFIG, where_of(r, w, sizeof w),
                                "%s.significance.resamples must be an integer from 1 to "
                                "10000000",
                                t->path);
        t->resamples = (long)v;
    }
    const sbi_node *sd = sbi_node_get(n, "seed");
    if (sd) {
        if (node_number(sd, &v, &is_int) != 0 || !is_int || v < 0 || v > 9007199254740992.0)
            return sb_error_set(err, SB_ERR_CONFIG, where_of(sd, w, sizeof w),
                                "%s.significance.seed must be a non-negative integer", t->path);
        t->sig_seed = (uint64_t)v;
    }
    return SB_OK;
}

/* One table from mapping `n` (a `tables:` item, or the `report:` block itself when legacy). */
static sb_status parse_table(const sbi_node *n, size_t index, int legacy, rp_table *t,
                             sb_error *err)
{
    char w[300], what[96];
    memset(t, 0, sizeof *t);
    t->scale = SC_AUTO;
    t->digits = -1;
    t->best = BEST_AUTO;
    t->entries = json_array();
    if (legacy)
        snprintf(t->path, sizeof t->path, "report");
    else
        snprintf(t->path, sizeof t->path, "report.tables[%zu]", index);
    where_of(n, t->where, sizeof t->where);
    if (n->kind != SBI_MAP)
        return sb_error_set(err, SB_ERR_CONFIG, t->where,
                            "%s must be a mapping (name, metric, rows, cols, ...)", t->path);
    sb_status st = legacy ? SB_OK : check_keys(n, table_keys, t->path, err);
    if (st != SB_OK)
        return st;
    const sbi_node *nm = sbi_node_get(n, "name");
    if (nm) {
        int ok = nm->kind == SBI_SCALAR && *nm->text && strlen(nm->text) < sizeof t->name;
        for (const char *c = ok ? nm->text : ""; *c; c++)
            ok &= (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
        if (!ok)
            return sb_error_set(err, SB_ERR_CONFIG, where_of(nm, w, sizeof w),
                                "%s.name must be 1 to 63 of a-z 0-9 _ - (it names files and "
                                "--table), got '%s'",
                                t->path, nm->text ? nm->text : "");
        snprintf(t->name, sizeof t->name, "%s", nm->text);
    } else {
        snprintf(t->name, sizeof t->name, legacy ? "main" : "table%zu", index + 1);
    }
    const sbi_node *ti = sbi_node_get(n, "title");
    if (ti && ti->kind != SBI_SCALAR)
        return sb_error_set(err, SB_ERR_CONFIG, where_of(ti, w, sizeof w), "%s.title must be text",
                            t->path);
    t->title = ti ? ti->text : NULL;
    const sbi_node *me = sbi_node_get(n, "metric");
    if (me && me->kind != SBI_SCALAR)
        return sb_error_set(err, SB_ERR_CONFIG, where_of(me, w, sizeof w),
                            "%s.metric must be one metric name (one table per metric)", t->path);
    t->metric = me ? me->text : NULL;
    snprintf(what, sizeof what, "%s.rows", t->path);
    if ((st = key_list(sbi_node_get(n, "rows"), what, &t->rows, err)) != SB_OK)
        return st;
    snprintf(what, sizeof what, "%s.cols", t->path);
    t->cols_given = sbi_node_get(n, "cols") != NULL;
    if ((st = key_list(sbi_node_get(n, "cols"), what, &t->cols, err)) != SB_OK)
        return st;
    snprintf(what, sizeof what, "%s.average", t->path);
    if ((st = key_list(sbi_node_get(n, "average"), what, &t->avg, err)) != SB_OK)
        return st;
    static const char *const scales[] = { "percent", "fraction", "raw", NULL };
    static const char *const bests[] = { "none", "max", "min", NULL };
    const sbi_node *sc = sbi_node_get(n, "scale");
    snprintf(what, sizeof what, "%s.scale", t->path);
    if (sc && (st = enum_value(sc, what, scales, &t->scale, err)) != SB_OK)
        return st;
    const sbi_node *be = sbi_node_get(n, "best");
    snprintf(what, sizeof what, "%s.best", t->path);
    if (be && (st = enum_value(be, what, bests, &t->best, err)) != SB_OK)
        return st;
    const sbi_node *dg = sbi_node_get(n, "digits");
    if (dg) {
        double v;
        int is_int = 0;
        if (node_number(dg, &v, &is_int) != 0 || !is_int || v < 0 || v > 6)
            return sb_error_set(err, SB_ERR_CONFIG, where_of(dg, w, sizeof w),
                                "%s.digits must be an integer from 0 to 6", t->path);
        t->digits = (int)v;
    }
    const sbi_node *sg = sbi_node_get(n, "significance");
    if (sg && sg->kind != SBI_NULL && (st = parse_significance(sg, t, err)) != SB_OK)
        return st;
    const sbi_node *rp = sbi_node_get(n, "reported");
    if (rp && rp->kind != SBI_NULL && (st = parse_reported(rp, t, err)) != SB_OK)
        return st;
    return SB_OK;
}

static sb_status spec_parse(const sbi_plan *p, rp_spec *s, sb_error *err)
{
    char w[300];
    memset(s, 0, sizeof *s);
    const sbi_node *rep = sbi_node_get(p->root, "report");
    const sbi_node *nm = sbi_node_get(p->root, "name");
    s->title = nm && nm->kind == SBI_SCALAR ? nm->text : p->config_path;
    if (rep && rep->kind != SBI_NULL && rep->kind != SBI_MAP)
        return sb_error_set(err, SB_ERR_CONFIG, where_of(rep, w, sizeof w),
                            "report: must be a mapping (title, tables, ...)");
    sb_status st =
        rep && rep->kind == SBI_MAP ? check_keys(rep, report_top_keys, "report", err) : SB_OK;
    if (st != SB_OK)
        return st;
    const sbi_node *ti = rep ? sbi_node_get(rep, "title") : NULL;
    if (ti && ti->kind != SBI_SCALAR)
        return sb_error_set(err, SB_ERR_CONFIG, where_of(ti, w, sizeof w),
                            "report.title must be text");
    if (ti)
        s->title = ti->text;
    const sbi_node *tables = rep ? sbi_node_get(rep, "tables") : NULL;
    if (!tables || tables->kind == SBI_NULL) {
        /* The single-table form: report.rows/cols/metric/... (or no report block at all). */
        s->t = calloc(1, sizeof *s->t);
        if (!s->t)
            return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
        s->n = 1;
        sbi_node empty = { .kind = SBI_MAP };
        st = parse_table(rep && rep->kind == SBI_MAP ? rep : &empty, 0, 1, &s->t[0], err);
        if (st == SB_OK && !s->t[0].title)
            s->t[0].title = s->title;
        return st;
    }
    if (tables->kind != SBI_SEQ || tables->n == 0)
        return sb_error_set(err, SB_ERR_CONFIG, where_of(tables, w, sizeof w),
                            "report.tables must be a non-empty list of tables");
    for (size_t i = 0; i < rep->n; i++)
        if (strcmp(rep->keys[i], "title") && strcmp(rep->keys[i], "tables"))
            return sb_error_set(err, SB_ERR_CONFIG, sbi_loc_str(rep->key_locs[i], w, sizeof w),
                                "report.%s belongs in a table: with report.tables, put it in "
                                "each table's mapping",
                                rep->keys[i]);
    s->t = calloc(tables->n, sizeof *s->t);
    if (!s->t)
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < tables->n; i++) {
        s->n = i + 1;
        if ((st = parse_table(tables->items[i], i, 0, &s->t[i], err)) != SB_OK)
            return st;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(s->t[k].name, s->t[i].name))
                return sb_error_set(err, SB_ERR_CONFIG, s->t[i].where,
                                    "%s: table name '%s' is already used by report.tables[%zu]",
                                    s->t[i].path, s->t[i].name, k);
        if (!s->t[i].title)
            s->t[i].title = tables->n == 1 ? s->title : s->t[i].name;
    }
    return SB_OK;
}

/* ---- keys against the runs ---------------------------------------------------------- */

/* The node at a dotted path of a resolved config: experiment.* directly, instance options as
 * <block>.<name>.<option> (the `options` level may be left out), list items by index. */
static const json_t *lookup(const json_t *config, const char *path)
{
    const json_t *v = config;
    char *copy = strdup(path);
    char *save = NULL;
    for (char *t = copy ? strtok_r(copy, ".", &save) : NULL; t && v;
         t = strtok_r(NULL, ".", &save)) {
        const json_t *next = NULL;
        if (json_is_object(v)) {
            next = json_object_get(v, t);
            if (!next && json_object_get(v, "options"))
                next = json_object_get(json_object_get(v, "options"), t);
        } else if (json_is_array(v)) {
            char *end = NULL;
            unsigned long i = strtoul(t, &end, 10);
            if (end && !*end && isdigit((unsigned char)*t))
                next = json_array_get(v, i);
        }
        v = next;
    }
    free(copy);
    return v;
}

static int is_pseudo(const char *k)
{
    return !strcmp(k, "test") || !strcmp(k, "metric");
}

static int run_has_metric(const sbi_run *r, const char *m)
{
    for (size_t i = 0; i < r->n_metrics; i++)
        if (!strcmp(r->metrics[i], m))
            return 1;
    return 0;
}

static int is_classification_metric(const char *m)
{
    sb_cls_metrics z;
    memset(&z, 0, sizeof z);
    double v;
    return sb_metrics_get(&z, m, &v) == 0;
}

/* Default rows/cols and the checks that need the runs. */
static sb_status table_resolve(const sbi_plan *p, rp_table *t, sb_error *err)
{
    if (!t->cols_given) {
        if (!list_has(t->rows, "test"))
            json_array_append_new(t->cols, json_string("test"));
        if (!t->metric && !list_has(t->rows, "metric"))
            json_array_append_new(t->cols, json_string("metric"));
    }
    if (json_array_size(t->rows) == 0 && p->sweep_keys)
        for (char **k = p->sweep_keys; *k; k++)
            if (!list_has(t->cols, *k) && !list_has(t->avg, *k))
                json_array_append_new(t->rows, json_string(*k));
    int metric_key = list_has(t->rows, "metric") || list_has(t->cols, "metric");
    if (!t->metric && !metric_key)
        return sb_error_set(err, SB_ERR_CONFIG, t->where,
                            "%s: name one metric (metric: ua) or put the pseudo-key 'metric' in "
                            "rows or cols",
                            t->path);
    if (t->metric && metric_key)
        return sb_error_set(err, SB_ERR_CONFIG, t->where,
                            "%s: metric: %s names one metric, so 'metric' cannot also be a row or "
                            "column key",
                            t->path, t->metric);
    json_t *lists[3] = { t->rows, t->cols, t->avg };
    const char *names[3] = { "rows", "cols", "average" };
    for (int a = 0; a < 3; a++) {
        size_t i;
        json_t *k;
        json_array_foreach(lists[a], i, k)
        {
            const char *key = json_string_value(k);
            for (int b = a + 1; b < 3; b++)
                if (list_has(lists[b], key))
                    return sb_error_set(err, SB_ERR_CONFIG, t->where,
                                        "%s: '%s' is in both %s and %s", t->path, key, names[a],
                                        names[b]);
            if (a == 2 && is_pseudo(key))
                return sb_error_set(err, SB_ERR_CONFIG, t->where,
                                    "%s.average: '%s' cannot be averaged over; average pools the "
                                    "runs of a config key (a fold)",
                                    t->path, key);
            if (is_pseudo(key))
                continue;
            int found = 0;
            for (size_t r = 0; r < p->n_runs && !found; r++)
                found = lookup(p->runs[r].config, key) != NULL;
            if (!found && p->n_runs)
                return sb_error_set(err, SB_ERR_CONFIG, t->where,
                                    "%s.%s: no run's resolved config has '%s' (key paths look "
                                    "like experiment.encoder, heads.NAME.lr, datasets.NAME.fold; "
                                    "serbench validate CONFIG --json shows them)",
                                    t->path, names[a], key);
        }
    }
    /* The metric(s): computed by some run. */
    if (t->metric) {
        int found = 0;
        for (size_t r = 0; r < p->n_runs && !found; r++)
            found = run_has_metric(&p->runs[r], t->metric);
        if (!found && p->n_runs) {
            const sbi_run *r0 = &p->runs[0];
            const char *cands[64];
            size_t nc = 0;
            sbi_buf b = { 0 };
            for (size_t m = 0; m < r0->n_metrics && nc < 63; m++) {
                cands[nc++] = r0->metrics[m];
                sbi_buf_printf(&b, "%s%s", m ? ", " : "", r0->metrics[m]);
            }
            cands[nc] = NULL;
            const char *best = sbi_did_you_mean(t->metric, cands);
            sb_status st = sb_error_set(
                err, SB_ERR_CONFIG, t->where,
                "%s.metric: the runs do not compute '%s' (they compute %s; experiment.metrics "
                "chooses)%s%s%s",
                t->path, t->metric, b.s ? b.s : "nothing", best ? " (did you mean '" : "",
                best ? best : "", best ? "'?)" : "");
            sbi_buf_free(&b);
            return st;
        }
    }
    /* One test set per cell unless `test` is a key. */
    if (!list_has(t->rows, "test") && !list_has(t->cols, "test")) {
        const char *first = NULL;
        for (size_t r = 0; r < p->n_runs; r++)
            for (size_t k = 0; k < p->runs[r].n_tests; k++) {
                const char *nm = p->runs[r].tests[k].name;
                if (!first)
                    first = nm;
                else if (strcmp(first, nm))
                    return sb_error_set(err, SB_ERR_CONFIG, t->where,
                                        "%s: the runs have several test sets ('%s', '%s'); add "
                                        "'test' to rows or cols so a cell holds one",
                                        t->path, first, nm);
            }
    }
    int metric_in_rows = list_has(t->rows, "metric");
    if (metric_in_rows && t->best != BEST_AUTO && t->best != BEST_NONE)
        return sb_error_set(err, SB_ERR_CONFIG, t->where,
                            "%s.best: with 'metric' in rows a column mixes metrics; use best: "
                            "none or put 'metric' in cols",
                            t->path);
    if (t->sig) {
        if (list_has(t->rows, "test"))
            return sb_error_set(err, SB_ERR_CONFIG, t->where,
                                "%s.significance compares a column's cells with its best on the "
                                "same test items; with 'test' in rows a column mixes test sets "
                                "(put 'test' in cols)",
                                t->path);
        if (metric_in_rows)
            return sb_error_set(err, SB_ERR_CONFIG, t->where,
                                "%s.significance compares a column's cells with its best; with "
                                "'metric' in rows a column mixes metrics",
                                t->path);
        if (json_array_size(t->avg))
            return sb_error_set(err, SB_ERR_CONFIG, t->where,
                                "%s.significance cannot be combined with average: the test "
                                "pairs the runs of one test set (use a table without average)",
                                t->path);
        if (t->best == BEST_NONE)
            return sb_error_set(err, SB_ERR_CONFIG, t->where,
                                "%s.significance compares each cell with its column's best; "
                                "best: none leaves nothing to compare with",
                                t->path);
        for (size_t r = 0; r < p->n_runs; r++) {
            const sbi_run *run = &p->runs[r];
            if (run->regression)
                return sb_error_set(err, SB_ERR_CONFIG, t->where,
                                    "%s.significance tests class predictions; run %zu is a "
                                    "regression (experiment.target: value)",
                                    t->path, r);
            for (size_t m = 0; !t->metric && m < run->n_metrics; m++)
                if (!is_classification_metric(run->metrics[m]))
                    return sb_error_set(err, SB_ERR_CONFIG, t->where,
                                        "%s.significance cannot test metric '%s' (wa, ua, "
                                        "macro_f1, weighted_f1, micro_f1)",
                                        t->path, run->metrics[m]);
        }
        if (t->metric && !is_classification_metric(t->metric))
            return sb_error_set(err, SB_ERR_CONFIG, t->where,
                                "%s.significance cannot test metric '%s' (wa, ua, macro_f1, "
                                "weighted_f1, micro_f1)",
                                t->path, t->metric);
    }
    /* Each reported entry names every row and column key once. */
    size_t i;
    json_t *e;
    json_array_foreach(t->entries, i, e)
    {
        json_t *keys = json_object_get(e, "keys");
        const char *where = json_string_value(json_object_get(e, "where"));
        for (int a = 0; a < 2; a++) {
            size_t k;
            json_t *key;
            json_array_foreach(a ? t->cols : t->rows, k, key)
            {
                if (!json_object_get(keys, json_string_value(key)))
                    return sb_error_set(err, SB_ERR_CONFIG, where,
                                        "%s.reported.values[%zu] does not say its %s key '%s' "
                                        "(each entry names every row and column key)",
                                        t->path, i, a ? "column" : "row", json_string_value(key));
            }
        }
        for (size_t k = 0; k < i; k++)
            if (json_equal(keys, json_object_get(json_array_get(t->entries, k), "keys")))
                return sb_error_set(err, SB_ERR_CONFIG, where,
                                    "%s.reported.values[%zu] names the same cell as "
                                    "values[%zu]",
                                    t->path, i, k);
    }
    return SB_OK;
}

static sb_status spec_load(const sbi_plan *p, rp_spec *s, sb_error *err)
{
    sb_status st = spec_parse(p, s, err);
    for (size_t i = 0; st == SB_OK && i < s->n; i++)
        st = table_resolve(p, &s->t[i], err);
    if (st != SB_OK)
        spec_free(s);
    return st;
}

sb_status sbi_report_check(const sbi_plan *p, sb_error *err)
{
    rp_spec s;
    sb_status st = spec_load(p, &s, err);
    if (st == SB_OK)
        spec_free(&s);
    return st;
}

/* ---- building a table --------------------------------------------------------------- */

static int metric_scale(const rp_table *t, const char *metric)
{
    if (t->scale != SC_AUTO)
        return t->scale;
    return !strcmp(metric, "mae") || !strcmp(metric, "corr") ? SC_RAW : SC_PERCENT;
}

static int metric_best(const rp_table *t, const char *metric)
{
    if (t->best != BEST_AUTO)
        return t->best;
    return !strcmp(metric, "mae") ? BEST_MIN : BEST_MAX;
}

static int table_digits(const rp_table *t, int scale)
{
    return t->digits >= 0 ? t->digits : scale == SC_PERCENT ? 2 : 3;
}

static double scaled(double v, int scale)
{
    return scale == SC_PERCENT ? v * 100.0 : v;
}

/* v as the table prints it: scaled, then rounded to `digits` the way printf rounds. */
static double shown_value(double v, int scale, int digits)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.*f", digits, scaled(v, scale));
    return strtod(buf, NULL);
}

/* %+.*f without "-0.00". */
static char *signed_text(double v, int digits)
{
    if (fabs(v) < 0.5 * pow(10.0, -digits))
        v = 0.0;
    return sbi_asprintf("%+.*f", digits, v);
}

/* One (run, test set, metric) with its key values. */
typedef struct rp_point {
    const sbi_run *run;
    const char *test, *metric;
    char *row, *col, *avg; /* key values joined by \x1f */
    int has;
    double v;
    int complete;
} rp_point;

static char *point_key(const sbi_run *r, const char *test, const char *metric, const char *key)
{
    if (!strcmp(key, "test"))
        return strdup(test);
    if (!strcmp(key, "metric"))
        return strdup(metric);
    return value_text(lookup(r->config, key));
}

static char *joined(const sbi_run *r, const char *test, const char *metric, const json_t *keys,
                    json_t *vals_out)
{
    sbi_buf b = { 0 };
    sbi_buf_puts(&b, "");
    size_t i;
    json_t *k;
    json_array_foreach((json_t *)keys, i, k)
    {
        char *v = point_key(r, test, metric, json_string_value(k));
        if (i)
            sbi_buf_puts(&b, "\x1f");
        sbi_buf_puts(&b, v ? v : "?");
        if (vals_out)
            json_object_set_new(vals_out, json_string_value(k), json_string(v ? v : "?"));
        free(v);
    }
    return b.s ? b.s : strdup("");
}

/* Short header of a key path: its last component, or the whole path when two keys of the
 * table share a last component. */
static const char *short_key(const json_t *keys, const char *k)
{
    const char *dot = strrchr(k, '.');
    const char *s = dot ? dot + 1 : k;
    size_t i;
    json_t *o;
    json_array_foreach((json_t *)keys, i, o)
    {
        const char *ok = json_string_value(o);
        const char *od = strrchr(ok, '.');
        if (strcmp(ok, k) && !strcmp(od ? od + 1 : ok, s))
            return k;
    }
    return s;
}

typedef struct rp_preds {
    size_t n;
    char **ids;
    int32_t *gold, *pred;
} rp_preds;

static void preds_free(rp_preds *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->ids[i]);
    free(p->ids);
    free(p->gold);
    free(p->pred);
    memset(p, 0, sizeof *p);
}

/* The run's classified items on the test (gold and prediction both class indices), by id. */
static sb_status preds_load(sbi_store *s, const char *run_id, const char *test, rp_preds *out,
                            sb_error *err)
{
    memset(out, 0, sizeof *out);
    sbi_preds all;
    sb_status st = sbi_store_load_preds(s, run_id, test, 1, &all, err);
    if (st != SB_OK)
        return st;
    out->ids = malloc((all.n + 1) * sizeof *out->ids);
    out->gold = malloc((all.n + 1) * sizeof *out->gold);
    out->pred = malloc((all.n + 1) * sizeof *out->pred);
    if (!out->ids || !out->gold || !out->pred) {
        sbi_preds_free(&all);
        preds_free(out);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < all.n; i++) {
        if (!(all.gold[i] >= 0 && all.pred[i] >= 0)) /* NAN (no value) fails too */
            continue;
        out->ids[out->n] = all.ids[i];
        all.ids[i] = NULL; /* moved */
        out->gold[out->n] = (int32_t)all.gold[i];
        out->pred[out->n] = (int32_t)all.pred[i];
        out->n++;
    }
    sbi_preds_free(&all);
    return SB_OK;
}

static long preds_find(const rp_preds *p, const char *id)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(p->ids[mid], id);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Items present in every prediction set with the same gold: gold[n] and, per set, pred rows
 * (set-major). n_classes = the largest index seen + 1. Caller frees *gold and *pred. */
static sb_status preds_match(const rp_preds *sets, size_t n_sets, int32_t **gold, int32_t **pred,
                             size_t *n, int *n_classes, sb_error *err)
{
    *n = 0;
    *n_classes = 0;
    size_t cap = sets[0].n ? sets[0].n : 1;
    *gold = malloc(cap * sizeof **gold);
    *pred = malloc(cap * n_sets * sizeof **pred);
    long *at = malloc(n_sets * sizeof *at);
    if (!*gold || !*pred || !at) {
        free(at);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < sets[0].n; i++) {
        int ok = 1;
        for (size_t k = 0; k < n_sets && ok; k++) {
            at[k] = k ? preds_find(&sets[k], sets[0].ids[i]) : (long)i;
            ok = at[k] >= 0 && sets[k].gold[at[k]] == sets[0].gold[i];
        }
        if (!ok)
            continue;
        (*gold)[m] = sets[0].gold[i];
        if ((*gold)[m] + 1 > *n_classes)
            *n_classes = (*gold)[m] + 1;
        for (size_t k = 0; k < n_sets; k++) {
            int32_t v = sets[k].pred[at[k]];
            (*pred)[k * cap + m] = v;
            if (v + 1 > *n_classes)
                *n_classes = v + 1;
        }
        m++;
    }
    /* Compact the rows to stride m. */
    for (size_t k = 1; k < n_sets; k++)
        memmove(*pred + k * m, *pred + k * cap, m * sizeof **pred);
    free(at);
    *n = m;
    return SB_OK;
}

/* The run ids of a cell as an array of C strings (borrowed from the JSON). */
static size_t cell_runs(const json_t *cell, const char **ids, size_t max)
{
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(json_object_get(cell, "run_ids"), i, v) if (n < max) ids[n++] =
        json_string_value(v);
    return n;
}

static int64_t run_seed(const sbi_plan *p, const char *run_id)
{
    for (size_t i = 0; i < p->n_runs; i++)
        if (!strcmp(p->runs[i].run_id, run_id))
            return p->runs[i].seed;
    return -1;
}

/* Test cell x against the column's best cell b; sets x's "significant" and "test". A test
 * without common items leaves "significant" null and adds a warning. */
static sb_status significance_cell(const sbi_plan *p, sbi_store *s, const rp_table *t, json_t *x,
                                   const json_t *b, const char *test, const char *metric,
                                   const char *what, json_t *warnings, sb_error *err)
{
    size_t max_a = json_array_size(json_object_get(x, "run_ids"));
    size_t max_b = json_array_size(json_object_get(b, "run_ids"));
    const char **ia = calloc(max_a + max_b + 1, sizeof *ia);
    rp_preds *sets = calloc(max_a + max_b + 1, sizeof *sets);
    if (!ia || !sets) {
        free(ia);
        free(sets);
        return sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    }
    const char **ib = ia + max_a;
    size_t na = cell_runs(x, ia, max_a), nb = cell_runs(b, ib, max_b);
    sb_status st = SB_OK;
    size_t loaded = 0;
    for (size_t k = 0; k < na + nb && st == SB_OK; k++, loaded++)
        st = preds_load(s, k < na ? ia[k] : ib[k - na], test, &sets[k], err);
    json_t *res = NULL;
    if (st == SB_OK && t->sig == SIG_BOOTSTRAP) {
        int32_t *gold = NULL, *pred = NULL;
        size_t n = 0;
        int K = 0;
        st = preds_match(sets, na + nb, &gold, &pred, &n, &K, err);
        if (st == SB_OK && n > 0) {
            sb_paired_test r;
            st = sb_paired_bootstrap(gold, pred, (int)na, pred + na * n, (int)nb, n, K, metric,
                                     t->resamples, t->alpha, t->sig_seed, &r, err);
            if (st == SB_OK)
                res = json_pack("{s:s, s:I, s:f, s:[f,f], s:f, s:I, s:f, s:I}", "kind", "bootstrap",
                                "items", (json_int_t)n, "diff", r.diff, "ci", r.ci_lo, r.ci_hi, "p",
                                r.p_bootstrap, "resamples", (json_int_t)r.resamples, "alpha",
                                t->alpha, "seed", (json_int_t)t->sig_seed);
        }
        free(gold);
        free(pred);
        if (res)
            json_object_set_new(
                x, "significant",
                json_boolean(json_real_value(json_object_get(res, "p")) < t->alpha));
    } else if (st == SB_OK) {
        /* McNemar per seed present in both cells; significant only if every pair is. */
        json_t *pairs = json_array();
        double pmax = -1;
        for (size_t i = 0; i < na && st == SB_OK; i++) {
            int64_t seed = run_seed(p, ia[i]);
            for (size_t j = 0; j < nb && st == SB_OK; j++) {
                if (run_seed(p, ib[j]) != seed)
                    continue;
                rp_preds two[2] = { sets[i], sets[na + j] };
                int32_t *gold = NULL, *pred = NULL;
                size_t n = 0;
                int K = 0;
                st = preds_match(two, 2, &gold, &pred, &n, &K, err);
                if (st == SB_OK && n > 0) {
                    sb_mcnemar m;
                    st = sb_mcnemar_test(gold, pred, pred + n, n, &m, err);
                    if (st == SB_OK) {
                        json_array_append_new(
                            pairs, json_pack("{s:I, s:I, s:I, s:I, s:f}", "seed", (json_int_t)seed,
                                             "items", (json_int_t)n, "b", (json_int_t)m.b, "c",
                                             (json_int_t)m.c, "p_exact", m.p_exact));
                        if (m.p_exact > pmax)
                            pmax = m.p_exact;
                    }
                }
                free(gold);
                free(pred);
                break;
            }
        }
        if (st == SB_OK && json_array_size(pairs)) {
            res = json_pack("{s:s, s:O, s:f, s:f}", "kind", "mcnemar", "pairs", pairs, "p", pmax,
                            "alpha", t->alpha);
            json_object_set_new(x, "significant", json_boolean(pmax < t->alpha));
        }
        json_decref(pairs);
    }
    for (size_t k = 0; k < loaded; k++)
        preds_free(&sets[k]);
    free(sets);
    free(ia);
    if (st != SB_OK) {
        json_decref(res);
        return st;
    }
    if (res)
        json_object_set_new(x, "test", res);
    else
        json_array_append_new(
            warnings, json_sprintf("%s: no significance test: no %s shared by the two cells' "
                                   "predictions on %s",
                                   what, t->sig == SIG_MCNEMAR ? "seed with items" : "item", test));
    return SB_OK;
}

static sb_status build_table(const sbi_plan *p, sbi_store *s, int shard_i, int shard_n,
                             const rp_table *t, json_t *warnings, json_t **out, sb_error *err)
{
    *out = NULL;
    /* The table's metrics: the one named, else every metric of the runs in order. */
    json_t *metrics = json_array();
    if (t->metric)
        json_array_append_new(metrics, json_string(t->metric));
    for (size_t i = 0; !t->metric && i < p->n_runs; i++)
        for (size_t m = 0; m < p->runs[i].n_metrics; m++)
            if (!list_has(metrics, p->runs[i].metrics[m]))
                json_array_append_new(metrics, json_string(p->runs[i].metrics[m]));
    sqlite3_stmt *qv = NULL, *qs = NULL;
    sb_status st = sbi_store_prepare(
        s, "SELECT value FROM metrics WHERE run_id=?1 AND test=?2 AND metric=?3", &qv, err);
    if (st == SB_OK)
        st = sbi_store_prepare(s, "SELECT status FROM runs WHERE run_id=?1", &qs, err);
    size_t cap = 0, np = 0;
    rp_point *pts = NULL;
    json_t *row_vals = json_object(), *col_vals = json_object(), *avg_vals = json_object();
    json_t *row_order = json_array(), *col_order = json_array();
    for (size_t i = 0; st == SB_OK && i < p->n_runs; i++) {
        const sbi_run *r = &p->runs[i];
        if (!sbi_in_shard(r, shard_i, shard_n))
            continue;
        sqlite3_bind_text(qs, 1, r->run_id, -1, SQLITE_STATIC);
        int complete = sqlite3_step(qs) == SQLITE_ROW &&
                       sbi_streq((const char *)sqlite3_column_text(qs, 0), "complete");
        sqlite3_reset(qs);
        for (size_t k = 0; k < r->n_tests; k++) {
            size_t mi;
            json_t *mj;
            json_array_foreach(metrics, mi, mj)
            {
                const char *m = json_string_value(mj);
                if (!t->metric && !run_has_metric(r, m))
                    continue;
                if (np == cap) {
                    cap = cap ? 2 * cap : 64;
                    rp_point *n2 = realloc(pts, cap * sizeof *n2);
                    if (!n2) {
                        st = sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
                        break;
                    }
                    pts = n2;
                }
                rp_point *pt = &pts[np++];
                memset(pt, 0, sizeof *pt);
                pt->run = r;
                pt->test = r->tests[k].name;
                pt->metric = m;
                pt->complete = complete;
                json_t *rv = json_object(), *cv = json_object(), *av = json_object();
                pt->row = joined(r, pt->test, m, t->rows, rv);
                pt->col = joined(r, pt->test, m, t->cols, cv);
                pt->avg = joined(r, pt->test, m, t->avg, av);
                if (!json_object_get(row_vals, pt->row)) {
                    json_object_set(row_vals, pt->row, rv);
                    json_array_append_new(row_order, json_string(pt->row));
                }
                if (!json_object_get(col_vals, pt->col)) {
                    json_object_set(col_vals, pt->col, cv);
                    json_array_append_new(col_order, json_string(pt->col));
                }
                if (!json_object_get(avg_vals, pt->avg))
                    json_object_set(avg_vals, pt->avg, av);
                json_decref(rv);
                json_decref(cv);
                json_decref(av);
                if (complete) {
                    sqlite3_bind_text(qv, 1, r->run_id, -1, SQLITE_STATIC);
                    sqlite3_bind_text(qv, 2, pt->test, -1, SQLITE_STATIC);
                    sqlite3_bind_text(qv, 3, m, -1, SQLITE_STATIC);
                    if (sqlite3_step(qv) == SQLITE_ROW &&
                        sqlite3_column_type(qv, 0) != SQLITE_NULL) {
                        pt->v = sqlite3_column_double(qv, 0);
                        pt->has = isfinite(pt->v);
                    }
                    sqlite3_reset(qv);
                }
            }
        }
    }
    sqlite3_finalize(qv);
    sqlite3_finalize(qs);

    size_t nr = json_array_size(row_order), nc = json_array_size(col_order);
    int metric_in_cols = list_has(t->cols, "metric");
    /* Columns. */
    json_t *columns = json_array();
    for (size_t c = 0; st == SB_OK && c < nc; c++) {
        const char *ck = json_string_value(json_array_get(col_order, c));
        json_t *keys = json_object_get(col_vals, ck);
        sbi_buf lb = { 0 };
        size_t i;
        json_t *k;
        json_array_foreach(t->cols, i, k)
        {
            sbi_buf_printf(&lb, "%s%s", i ? " " : "",
                           json_string_value(json_object_get(keys, json_string_value(k))));
        }
        const char *cm = t->metric        ? t->metric
                         : metric_in_cols ? json_string_value(json_object_get(keys, "metric"))
                                          : NULL;
        const char *test = json_string_value(json_object_get(keys, "test"));
        json_t *col = json_pack("{s:s, s:O}", "label",
                                lb.s ? lb.s : (t->metric ? t->metric : "value"), "keys", keys);
        sbi_buf_free(&lb);
        json_object_set_new(col, "test", test ? json_string(test) : json_null());
        json_object_set_new(col, "metric", cm ? json_string(cm) : json_null());
        json_object_set_new(col, "best",
                            json_string(!cm                              ? "none"
                                        : metric_best(t, cm) == BEST_MAX ? "max"
                                        : metric_best(t, cm) == BEST_MIN ? "min"
                                                                         : "none"));
        json_array_append_new(columns, col);
    }
    /* Rows and cells. */
    json_t *rows = json_array();
    for (size_t ri = 0; st == SB_OK && ri < nr; ri++) {
        const char *rk = json_string_value(json_array_get(row_order, ri));
        json_t *keys = json_object_get(row_vals, rk);
        char *label = NULL;
        const sbi_run *first = NULL;
        size_t runs = 0, complete = 0;
        json_t *seen = json_object();
        for (size_t i = 0; i < np; i++)
            if (!strcmp(pts[i].row, rk)) {
                if (!first)
                    first = pts[i].run;
                if (!json_object_get(seen, pts[i].run->run_id)) {
                    json_object_set_new(seen, pts[i].run->run_id, json_true());
                    runs++;
                    complete += (size_t)pts[i].complete;
                }
            }
        json_decref(seen);
        if (json_array_size(t->rows) == 0) {
            label = sbi_run_label(p, first);
        } else {
            sbi_buf lb = { 0 };
            size_t i;
            json_t *k;
            json_array_foreach(t->rows, i, k)
            {
                const char *kp = json_string_value(k);
                sbi_buf_printf(&lb, "%s%s=%s", i ? ", " : "", short_key(t->rows, kp),
                               json_string_value(json_object_get(keys, kp)));
            }
            label = lb.s ? lb.s : strdup("");
        }
        json_t *cells = json_array();
        for (size_t c = 0; c < nc; c++) {
            const char *ck = json_string_value(json_array_get(col_order, c));
            json_t *run_ids = json_array();
            json_t *groups = json_array(); /* per averaged value: {"key", values, run_ids} */
            json_t *gidx = json_object();
            const char *metric = NULL, *test = NULL;
            json_t *group_ids = json_object();
            for (size_t i = 0; i < np; i++) {
                const rp_point *pt = &pts[i];
                if (strcmp(pt->row, rk) || strcmp(pt->col, ck))
                    continue;
                metric = pt->metric;
                test = pt->test;
                if (!pt->has)
                    continue;
                json_array_append_new(run_ids, json_string(pt->run->run_id));
                json_t *g = json_object_get(gidx, pt->avg);
                if (!g) {
                    g = json_pack("{s:s, s:[], s:[], s:{}}", "key", pt->avg, "values", "run_ids",
                                  "group_ids");
                    json_object_set_new(gidx, pt->avg, g);
                    json_array_append(groups, g);
                }
                json_array_append_new(json_object_get(g, "values"), json_real(pt->v));
                json_array_append_new(json_object_get(g, "run_ids"), json_string(pt->run->run_id));
                json_object_set_new(json_object_get(g, "group_ids"), pt->run->group_id,
                                    json_true());
                json_object_set_new(group_ids, pt->run->group_id, json_true());
            }
            json_decref(group_ids);
            json_t *cell = json_object();
            int scale = metric_scale(t, metric ? metric : "");
            int digits = table_digits(t, scale);
            size_t ng = json_array_size(groups);
            double mean = 0, sd = 0;
            size_t n = 0;
            json_t *gout = json_array();
            double *gm = calloc(ng + 1, sizeof *gm);
            for (size_t g = 0; g < ng; g++) {
                json_t *gj = json_array_get(groups, g);
                json_t *vals = json_object_get(gj, "values");
                size_t nv = json_array_size(vals);
                double *x = calloc(nv + 1, sizeof *x);
                for (size_t v = 0; x && v < nv; v++)
                    x[v] = json_real_value(json_array_get(vals, v));
                double m = 0, d = 0;
                if (x)
                    sb_mean_sd(x, nv, &m, &d);
                free(x);
                if (gm)
                    gm[g] = m;
                if (json_object_size(json_object_get(gj, "group_ids")) > 1) {
                    char *rl = strdup(label), *cl = strdup(ck);
                    for (char *q = cl; q && *q; q++)
                        if (*q == '\x1f')
                            *q = ' ';
                    json_array_append_new(
                        warnings,
                        json_sprintf("table %s, row '%s', column '%s': the cell pools %zu "
                                     "configurations that differ in more than the seed; add the "
                                     "key that differs to rows, cols or average",
                                     t->name, rl ? rl : "", cl ? cl : "",
                                     json_object_size(json_object_get(gj, "group_ids"))));
                    free(rl);
                    free(cl);
                }
                if (json_array_size(t->avg)) {
                    json_t *ak = json_deep_copy(
                        json_object_get(avg_vals, json_string_value(json_object_get(gj, "key"))));
                    json_array_append_new(gout,
                                          json_pack("{s:o, s:f, s:f, s:I, s:O}", "average", ak,
                                                    "mean", m, "sd", d, "n", (json_int_t)nv,
                                                    "run_ids", json_object_get(gj, "run_ids")));
                }
            }
            if (ng && gm) {
                if (json_array_size(t->avg)) {
                    sb_mean_sd(gm, ng, &mean, &sd);
                    n = ng;
                } else {
                    json_t *vals = json_object_get(json_array_get(groups, 0), "values");
                    n = json_array_size(vals);
                    double *x = calloc(n + 1, sizeof *x);
                    for (size_t v = 0; x && v < n; v++)
                        x[v] = json_real_value(json_array_get(vals, v));
                    if (x)
                        sb_mean_sd(x, n, &mean, &sd);
                    free(x);
                }
            }
            free(gm);
            if (n) {
                json_object_set_new(cell, "mean", json_real(mean));
                json_object_set_new(cell, "sd", json_real(sd));
                json_object_set_new(cell, "n", json_integer((json_int_t)n));
                json_object_set_new(cell, "text",
                                    json_sprintf("%.*f ± %.*f (%zu)", digits, scaled(mean, scale),
                                                 digits, scaled(sd, scale), n));
            } else {
                json_object_set_new(cell, "mean", json_null());
                json_object_set_new(cell, "sd", json_null());
                json_object_set_new(cell, "n", json_integer(0));
                json_object_set_new(cell, "text", json_null());
            }
            json_object_set_new(cell, "run_ids", run_ids);
            json_object_set_new(cell, "metric", metric ? json_string(metric) : json_null());
            json_object_set_new(cell, "test_set", test ? json_string(test) : json_null());
            json_object_set_new(cell, "scale",
                                json_string(scale == SC_PERCENT    ? "percent"
                                            : scale == SC_FRACTION ? "fraction"
                                                                   : "raw"));
            json_object_set_new(cell, "best", json_false());
            json_object_set_new(cell, "significant", json_null());
            json_object_set_new(cell, "reported", json_null());
            json_object_set_new(cell, "delta", json_null());
            if (json_array_size(t->avg))
                json_object_set_new(cell, "groups", gout);
            else
                json_decref(gout);
            json_decref(groups);
            json_decref(gidx);
            json_array_append_new(cells, cell);
        }
        json_array_append_new(rows, json_pack("{s:s, s:O, s:I, s:I, s:o}", "label", label, "keys",
                                              keys, "runs", (json_int_t)runs, "complete",
                                              (json_int_t)complete, "cells", cells));
        free(label);
    }

    /* Best per column (two rows with a value or more), then significance against it. */
    for (size_t c = 0; st == SB_OK && c < nc; c++) {
        json_t *col = json_array_get(columns, c);
        const char *dir = json_string_value(json_object_get(col, "best"));
        if (!strcmp(dir, "none"))
            continue;
        int want_max = !strcmp(dir, "max");
        long best = -1;
        double bv = 0;
        size_t have = 0;
        for (size_t ri = 0; ri < nr; ri++) {
            json_t *cell = json_array_get(json_object_get(json_array_get(rows, ri), "cells"), c);
            if (!json_integer_value(json_object_get(cell, "n")))
                continue;
            double m = json_real_value(json_object_get(cell, "mean"));
            have++;
            if (best < 0 || (want_max ? m > bv : m < bv)) {
                bv = m;
                best = (long)ri;
            }
        }
        if (have < 2)
            continue;
        json_t *bcell =
            json_array_get(json_object_get(json_array_get(rows, (size_t)best), "cells"), c);
        /* Tied = printed the same: means one ulp apart (the same seeds summed in another
         * order) or closer than the table's digits are one result to the reader. */
        const char *bm = json_string_value(json_object_get(bcell, "metric"));
        int bscale = metric_scale(t, bm ? bm : "");
        int bdigits = table_digits(t, bscale);
        double bshown = shown_value(bv, bscale, bdigits);
        for (size_t ri = 0; ri < nr; ri++) {
            json_t *cell = json_array_get(json_object_get(json_array_get(rows, ri), "cells"), c);
            if (json_integer_value(json_object_get(cell, "n")) &&
                shown_value(json_real_value(json_object_get(cell, "mean")), bscale, bdigits) ==
                    bshown)
                json_object_set_new(cell, "best", json_true());
        }
        json_object_set_new(col, "best_row", json_integer(best));
        for (size_t ri = 0; t->sig && st == SB_OK && ri < nr; ri++) {
            json_t *row = json_array_get(rows, ri);
            json_t *cell = json_array_get(json_object_get(row, "cells"), c);
            /* Cells tied with the best are best too: nothing to test. */
            if (json_is_true(json_object_get(cell, "best")) ||
                !json_integer_value(json_object_get(cell, "n")))
                continue;
            char *what = sbi_asprintf("table %s, row '%s', column '%s'", t->name,
                                      json_string_value(json_object_get(row, "label")),
                                      json_string_value(json_object_get(col, "label")));
            st = significance_cell(p, s, t, cell, bcell,
                                   json_string_value(json_object_get(cell, "test_set")),
                                   json_string_value(json_object_get(cell, "metric")),
                                   what ? what : "", warnings, err);
            free(what);
        }
    }

    /* Reported values beside ours. */
    size_t ei;
    json_t *e;
    json_array_foreach(st == SB_OK ? t->entries : NULL, ei, e)
    {
        json_t *ek = json_object_get(e, "keys");
        const char *where = json_string_value(json_object_get(e, "where"));
        const char *k;
        json_t *v;
        json_object_foreach(ek, k, v)
        {
            if (!list_has(t->rows, k) && !list_has(t->cols, k))
                json_array_append_new(
                    warnings, json_sprintf("%s: %s.reported.values[%zu]: '%s' is not a row or "
                                           "column key of table %s; ignored",
                                           where, t->path, ei, k, t->name));
        }
        long hit_r = -1, hit_c = -1;
        for (size_t ri = 0; ri < nr && hit_r < 0; ri++) {
            json_t *keys = json_object_get(json_array_get(rows, ri), "keys");
            int ok = 1;
            json_object_foreach(keys, k, v) ok &=
                sbi_streq(json_string_value(json_object_get(ek, k)), json_string_value(v));
            if (ok)
                hit_r = (long)ri;
        }
        for (size_t c = 0; c < nc && hit_c < 0; c++) {
            json_t *keys = json_object_get(json_array_get(columns, c), "keys");
            int ok = 1;
            json_object_foreach(keys, k, v) ok &=
                sbi_streq(json_string_value(json_object_get(ek, k)), json_string_value(v));
            if (ok)
                hit_c = (long)c;
        }
        if (hit_r < 0 || hit_c < 0) {
            /* Name the key whose value no row or column has. */
            json_t *list = hit_r < 0 ? t->rows : t->cols;
            json_t *vals = hit_r < 0 ? row_vals : col_vals;
            const char *bad = NULL, *badv = NULL;
            size_t i;
            json_t *kk;
            json_array_foreach(list, i, kk)
            {
                const char *kp = json_string_value(kk);
                const char *want = json_string_value(json_object_get(ek, kp));
                int any = 0;
                const char *vk;
                json_t *vv;
                json_object_foreach(vals, vk, vv) any |=
                    sbi_streq(json_string_value(json_object_get(vv, kp)), want);
                if (!any && !bad) {
                    bad = kp;
                    badv = want;
                }
            }
            if (bad)
                json_array_append_new(warnings,
                                      json_sprintf("%s: %s.reported.values[%zu]: no %s has "
                                                   "%s = %s; the value is not shown",
                                                   where, t->path, ei, hit_r < 0 ? "row" : "column",
                                                   bad, badv ? badv : "?"));
            else
                json_array_append_new(
                    warnings, json_sprintf("%s: %s.reported.values[%zu]: no %s has this "
                                           "combination of keys; the value is not shown",
                                           where, t->path, ei, hit_r < 0 ? "row" : "column"));
            continue;
        }
        json_t *cell = json_array_get(json_object_get(json_array_get(rows, (size_t)hit_r), "cells"),
                                      (size_t)hit_c);
        json_t *col = json_array_get(columns, (size_t)hit_c);
        double rv = json_real_value(json_object_get(e, "value"));
        const char *cm = json_string_value(json_object_get(cell, "metric"));
        int scale = metric_scale(t, cm ? cm : "");
        int digits = table_digits(t, scale);
        json_object_set_new(cell, "reported", json_real(rv));
        json_object_set_new(cell, "reported_text", json_sprintf("%.*f", digits, rv));
        if (json_integer_value(json_object_get(cell, "n"))) {
            double mean = json_real_value(json_object_get(cell, "mean"));
            double d = scaled(mean, scale) - rv;
            /* The text is the difference of the two numbers as printed, so a reader can
             * check it (86.2 and 75.5 give +10.7, not the +10.8 of 86.25 - 75.5). */
            char *dt = signed_text(
                shown_value(mean, scale, digits) - shown_value(rv, SC_RAW, digits), digits);
            json_object_set_new(cell, "delta", json_real(d));
            json_object_set_new(cell, "delta_text", json_string(dt ? dt : ""));
            free(dt);
        }
        json_object_set_new(col, "reported", json_true());
    }

    if (st == SB_OK) {
        json_t *cols_out = columns;
        size_t c;
        json_t *col;
        json_array_foreach(cols_out, c, col) if (!json_object_get(col, "reported"))
            json_object_set_new(col, "reported", json_false());
        /* Table-level facts the renderers turn into notes. */
        size_t nmin = 0, nmax = 0;
        json_t *row;
        size_t ri;
        json_array_foreach(rows, ri, row)
        {
            json_array_foreach(json_object_get(row, "cells"), c, col)
            {
                size_t n = (size_t)json_integer_value(json_object_get(col, "n"));
                if (!n)
                    continue;
                if (!nmin || n < nmin)
                    nmin = n;
                if (n > nmax)
                    nmax = n;
            }
        }
        const char *scale_name = t->scale == SC_PERCENT    ? "percent"
                                 : t->scale == SC_FRACTION ? "fraction"
                                 : t->scale == SC_RAW      ? "raw"
                                                           : "auto";
        *out = json_pack("{s:s, s:s, s:s?, s:O, s:O, s:O, s:s, s:o, s:o, s:o}", "name", t->name,
                         "title", t->title, "metric", t->metric, "row_keys", t->rows, "col_keys",
                         t->cols, "average", t->avg, "scale", scale_name, "digits",
                         t->digits >= 0 ? json_integer(t->digits) : json_null(), "columns", columns,
                         "rows", rows);
        json_object_set_new(*out, "n_min", json_integer((json_int_t)nmin));
        json_object_set_new(*out, "n_max", json_integer((json_int_t)nmax));
        if (t->sig)
            json_object_set_new(*out, "significance",
                                json_pack("{s:s, s:f, s:I, s:I}", "test",
                                          t->sig == SIG_BOOTSTRAP ? "bootstrap" : "mcnemar",
                                          "alpha", t->alpha, "resamples", (json_int_t)t->resamples,
                                          "seed", (json_int_t)t->sig_seed));
        else
            json_object_set_new(*out, "significance", json_null());
        if (json_array_size(t->entries))
            json_object_set_new(*out, "reported",
                                json_pack("{s:s?, s:I}", "source", t->source, "values",
                                          (json_int_t)json_array_size(t->entries)));
        else
            json_object_set_new(*out, "reported", json_null());
    } else {
        json_decref(columns);
        json_decref(rows);
    }
    for (size_t i = 0; i < np; i++) {
        free(pts[i].row);
        free(pts[i].col);
        free(pts[i].avg);
    }
    free(pts);
    json_decref(metrics);
    json_decref(row_vals);
    json_decref(col_vals);
    json_decref(avg_vals);
    json_decref(row_order);
    json_decref(col_order);
    return st;
}

sb_status sbi_report_build_tables(const sbi_plan *p, sbi_store *s, int shard_i, int shard_n,
                                  const char *only, json_t **out, sb_error *err)
{
    *out = NULL;
    rp_spec spec;
    sb_status st = spec_load(p, &spec, err);
    if (st != SB_OK)
        return st;
    int found = !only;
    for (size_t i = 0; i < spec.n && !found; i++)
        found = !strcmp(spec.t[i].name, only);
    if (!found) {
        sbi_buf b = { 0 };
        for (size_t i = 0; i < spec.n; i++)
            sbi_buf_printf(&b, "%s%s", i ? ", " : "", spec.t[i].name);
        st = sb_error_set(err, SB_ERR_USAGE, p->config_path,
                          "--table %s: the report has no table of that name (it has %s)", only,
                          b.s ? b.s : "none");
        sbi_buf_free(&b);
        spec_free(&spec);
        return st;
    }
    json_t *tables = json_array(), *warnings = json_array();
    for (size_t i = 0; i < spec.n && st == SB_OK; i++) {
        if (only && strcmp(spec.t[i].name, only))
            continue;
        json_t *t = NULL;
        st = build_table(p, s, shard_i, shard_n, &spec.t[i], warnings, &t, err);
        if (st == SB_OK)
            json_array_append_new(tables, t);
    }
    if (st == SB_OK)
        *out = json_pack("{s:s, s:o, s:o}", "title", spec.title, "tables", tables, "warnings",
                         warnings);
    else {
        json_decref(tables);
        json_decref(warnings);
    }
    spec_free(&spec);
    return st;
}

sb_status sbi_report_build(const sbi_plan *p, sbi_store *s, int shard_i, int shard_n, json_t **out,
                           sb_error *err)
{
    return sbi_report_build_tables(p, s, shard_i, shard_n, NULL, out, err);
}

/* ---- rendering ---------------------------------------------------------------------- */

enum { FMT_MD, FMT_CSV, FMT_TEX };

static void tex_escape(sbi_buf *b, const char *s)
{
    for (const char *p = s ? s : ""; *p; p++) {
        switch (*p) {
        case '_':
        case '%':
        case '&':
        case '#':
        case '$':
        case '{':
        case '}': sbi_buf_printf(b, "\\%c", *p); break;
        case '\\': sbi_buf_puts(b, "\\textbackslash{}"); break;
        case '~': sbi_buf_puts(b, "\\textasciitilde{}"); break;
        case '^': sbi_buf_puts(b, "\\textasciicircum{}"); break;
        default: sbi_buf_add(b, p, 1);
        }
    }
}

/* Markdown table cells: a '|' would end the cell. */
static void md_escape(sbi_buf *b, const char *s)
{
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '|')
            sbi_buf_puts(b, "\\|");
        else if (*p == '\n')
            sbi_buf_puts(b, " ");
        else
            sbi_buf_add(b, p, 1);
    }
}

static void put_text(sbi_buf *b, int fmt, const char *s)
{
    if (fmt == FMT_TEX)
        tex_escape(b, s);
    else if (fmt == FMT_MD)
        md_escape(b, s);
    else
        sbi_buf_csv_field(b, s);
}

/* Start a cell: the separator before it. */
static void sep(sbi_buf *b, int fmt, int first)
{
    if (fmt == FMT_MD)
        sbi_buf_puts(b, first ? "| " : " | ");
    else if (fmt == FMT_CSV)
        sbi_buf_puts(b, first ? "" : ",");
    else
        sbi_buf_puts(b, first ? "" : " & ");
}

static void end_row(sbi_buf *b, int fmt)
{
    sbi_buf_puts(b, fmt == FMT_MD ? " |\n" : fmt == FMT_TEX ? " \\\\\n" : "\n");
}

static void cell_value(sbi_buf *b, int fmt, const json_t *cell)
{
    const char *text = json_string_value(json_object_get(cell, "text"));
    int bold = json_is_true(json_object_get(cell, "best"));
    int dag = json_is_false(json_object_get(cell, "significant"));
    if (!text) {
        sbi_buf_puts(b, fmt == FMT_MD ? "—" : fmt == FMT_TEX ? "--" : "");
        return;
    }
    if (fmt == FMT_CSV) {
        char *t = sbi_asprintf("%s%s", text, dag ? " †" : "");
        sbi_buf_csv_field(b, t);
        free(t);
        return;
    }
    if (fmt == FMT_MD) {
        sbi_buf_printf(b, bold ? "**%s**" : "%s", text);
        if (dag)
            sbi_buf_puts(b, " †");
        return;
    }
    const char *pm = strstr(text, " ± ");
    if (bold)
        sbi_buf_puts(b, "\\textbf{");
    if (pm) {
        sbi_buf_add(b, text, (size_t)(pm - text));
        sbi_buf_puts(b, " $\\pm$ ");
        sbi_buf_puts(b, pm + strlen(" ± "));
    } else {
        sbi_buf_puts(b, text);
    }
    if (bold)
        sbi_buf_puts(b, "}");
    if (dag)
        sbi_buf_puts(b, "\\textsuperscript{\\dag}");
}

static void delta_value(sbi_buf *b, int fmt, const char *t)
{
    if (!t)
        return;
    if (fmt == FMT_TEX && t[0] == '-')
        sbi_buf_printf(b, "$-$%s", t + 1);
    else if (fmt == FMT_TEX && t[0] == '+')
        sbi_buf_printf(b, "$+$%s", t + 1);
    else if (fmt == FMT_CSV)
        sbi_buf_csv_field(b, t);
    else
        sbi_buf_puts(b, t);
}

/* Notes under a table: what a cell is, the reported source, what a dagger means. */
static void notes(sbi_buf *b, int fmt, const json_t *t)
{
    int tex = fmt == FMT_TEX;
    const char *pm = tex ? "$\\pm$" : "±";
    const json_t *avg = json_object_get(t, "average");
    long long nmin = json_integer_value(json_object_get(t, "n_min"));
    long long nmax = json_integer_value(json_object_get(t, "n_max"));
    int any_best = 0, any_dag = 0;
    size_t i, c;
    json_t *row, *cell;
    json_array_foreach(json_object_get(t, "rows"), i, row)
    {
        json_array_foreach(json_object_get(row, "cells"), c, cell)
        {
            any_best |= json_is_true(json_object_get(cell, "best"));
            any_dag |= json_is_false(json_object_get(cell, "significant"));
        }
    }
    sbi_buf keys = { 0 };
    json_t *k;
    json_array_foreach((json_t *)avg, i, k)
    {
        if (i)
            sbi_buf_puts(&keys, ", ");
        if (tex)
            tex_escape(&keys, json_string_value(k));
        else
            sbi_buf_puts(&keys, json_string_value(k));
    }
    const char *last = json_array_size(avg) == 1 ? json_string_value(json_array_get(avg, 0)) : "";
    const char *unit = strstr(last, "fold") ? "folds" : "values";
    char count[64];
    if (nmin == nmax)
        snprintf(count, sizeof count, "%lld", nmax);
    else
        snprintf(count, sizeof count, "%lld%s%lld", nmin, tex ? "--" : "–", nmax);
    if (json_array_size(avg))
        sbi_buf_printf(b,
                       "Cells: mean over %s %s (%s) of the mean over seeds %s sd over %s "
                       "(n %s)",
                       count, unit, keys.s ? keys.s : "", pm, unit, unit);
    else
        sbi_buf_printf(b, "Cells: mean %s sd over seeds (n seeds)", pm);
    /* With scale auto a table may mix percent metrics with raw ones (mae, corr). */
    int pct = 0, raw = 0;
    json_array_foreach(json_object_get(t, "rows"), i, row)
    {
        json_array_foreach(json_object_get(row, "cells"), c, cell)
        {
            const char *sc = json_string_value(json_object_get(cell, "scale"));
            pct |= sc && !strcmp(sc, "percent");
            raw |= sc && !strcmp(sc, "raw");
        }
    }
    if (pct)
        sbi_buf_puts(b, tex ? ", in \\%" : ", in percent");
    else if (!raw)
        sbi_buf_puts(b, ", as fractions");
    if (pct && raw)
        sbi_buf_puts(b, " (mae and corr as they are)");
    sbi_buf_puts(b, any_best ? "; best per column in bold.\n" : ".\n");
    sbi_buf_free(&keys);
    const json_t *rep = json_object_get(t, "reported");
    if (json_is_object(rep)) {
        const char *src = json_string_value(json_object_get(rep, "source"));
        sbi_buf_puts(b, tex ? "\\\\ Reported: " : "Reported: ");
        if (tex)
            tex_escape(b, src ? src : "the paper");
        else
            sbi_buf_puts(b, src ? src : "the paper");
        sbi_buf_puts(b, tex ? "; $\\Delta$ = ours $-$ reported.\n" : "; Δ = ours − reported.\n");
    }
    const json_t *sig = json_object_get(t, "significance");
    if (json_is_object(sig) && any_dag) {
        double alpha = json_real_value(json_object_get(sig, "alpha"));
        int boot = !strcmp(json_string_value(json_object_get(sig, "test")), "bootstrap");
        sbi_buf_printf(b, "%s not significantly different from the best in its column (",
                       tex ? "\\\\ \\dag{}" : "†");
        if (boot)
            sbi_buf_printf(b, "paired bootstrap over the test items, %lld resamples, seed %lld",
                           (long long)json_integer_value(json_object_get(sig, "resamples")),
                           (long long)json_integer_value(json_object_get(sig, "seed")));
        else
            sbi_buf_puts(b, "McNemar's exact test on each seed-matched pair of runs");
        sbi_buf_printf(b, ", %s = %g).\n", tex ? "$\\alpha$" : "α", alpha);
    }
}

static void render_table(sbi_buf *b, int fmt, const json_t *t, int several)
{
    const char *title = json_string_value(json_object_get(t, "title"));
    const json_t *rk = json_object_get(t, "row_keys");
    const json_t *cols = json_object_get(t, "columns");
    const json_t *rows = json_object_get(t, "rows");
    size_t nrk = json_array_size(rk) ? json_array_size(rk) : 1;
    size_t i, c;
    json_t *col, *row, *k;
    if (fmt == FMT_MD)
        sbi_buf_printf(b, "%s\n\n", title ? title : "");
    if (fmt == FMT_CSV && several) {
        sbi_buf_puts(b, "# ");
        sbi_buf_puts(b, title ? title : "");
        sbi_buf_puts(b, "\n");
    }
    if (fmt == FMT_TEX) {
        sbi_buf_puts(b, "\\begin{table}[t]\n\\centering\n\\caption{");
        tex_escape(b, title);
        /* Table names are [a-z0-9_-]+, which \label takes as they are. */
        sbi_buf_printf(b, "}\n\\label{tab:%s", json_string_value(json_object_get(t, "name")));
        sbi_buf_puts(b, "}\n\\begin{tabular}{");
        for (i = 0; i < nrk; i++)
            sbi_buf_puts(b, "l");
        json_array_foreach((json_t *)cols, c, col)
            sbi_buf_puts(b, json_is_true(json_object_get(col, "reported")) ? "rrr" : "r");
        sbi_buf_puts(b, "}\n\\toprule\n");
    }
    /* Header. */
    if (!json_array_size(rk)) {
        sep(b, fmt, 1);
        put_text(b, fmt, "run");
    }
    json_array_foreach((json_t *)rk, i, k)
    {
        sep(b, fmt, i == 0);
        put_text(b, fmt, short_key(rk, json_string_value(k)));
    }
    json_array_foreach((json_t *)cols, c, col)
    {
        sep(b, fmt, 0);
        put_text(b, fmt, json_string_value(json_object_get(col, "label")));
        if (json_is_true(json_object_get(col, "reported"))) {
            sep(b, fmt, 0);
            put_text(b, fmt, "reported");
            sep(b, fmt, 0);
            sbi_buf_puts(b, fmt == FMT_TEX ? "$\\Delta$" : "Δ");
        }
    }
    end_row(b, fmt);
    if (fmt == FMT_MD) {
        for (i = 0; i < nrk; i++)
            sbi_buf_puts(b, i ? "---|" : "|---|");
        json_array_foreach((json_t *)cols, c, col) sbi_buf_puts(
            b, json_is_true(json_object_get(col, "reported")) ? "---:|---:|---:|" : "---:|");
        sbi_buf_puts(b, "\n");
    }
    if (fmt == FMT_TEX)
        sbi_buf_puts(b, "\\midrule\n");
    /* Body. */
    json_array_foreach((json_t *)rows, i, row)
    {
        const json_t *keys = json_object_get(row, "keys");
        if (!json_array_size(rk)) {
            sep(b, fmt, 1);
            put_text(b, fmt, json_string_value(json_object_get(row, "label")));
        }
        size_t j;
        json_array_foreach((json_t *)rk, j, k)
        {
            sep(b, fmt, j == 0);
            put_text(b, fmt, json_string_value(json_object_get(keys, json_string_value(k))));
        }
        json_array_foreach((json_t *)cols, c, col)
        {
            const json_t *cell = json_array_get(json_object_get(row, "cells"), c);
            sep(b, fmt, 0);
            cell_value(b, fmt, cell);
            if (json_is_true(json_object_get(col, "reported"))) {
                const char *rt = json_string_value(json_object_get(cell, "reported_text"));
                sep(b, fmt, 0);
                if (rt && fmt == FMT_CSV)
                    sbi_buf_csv_field(b, rt);
                else if (rt)
                    sbi_buf_puts(b, rt);
                sep(b, fmt, 0);
                delta_value(b, fmt, json_string_value(json_object_get(cell, "delta_text")));
            }
        }
        end_row(b, fmt);
    }
    if (fmt == FMT_TEX) {
        sbi_buf_puts(b, "\\bottomrule\n\\end{tabular}\n\\par\\smallskip\\footnotesize\n");
        notes(b, fmt, t);
        sbi_buf_puts(b, "\\end{table}\n");
    }
    if (fmt == FMT_MD) {
        sbi_buf_puts(b, "\n");
        notes(b, fmt, t);
    }
}

char *sbi_report_render(const json_t *report, const char *format)
{
    const json_t *tables = json_object_get(report, "tables");
    size_t n = json_array_size(tables);
    if (!strcmp(format, "json")) {
        if (n == 1)
            return json_dumps(json_array_get(tables, 0), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_t *o =
            json_pack("{s:O, s:O}", "title", json_object_get(report, "title"), "tables", tables);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(o);
        return s;
    }
    int fmt = !strcmp(format, "md")    ? FMT_MD
              : !strcmp(format, "csv") ? FMT_CSV
              : !strcmp(format, "tex") ? FMT_TEX
                                       : -1;
    if (fmt < 0)
        return NULL;
    sbi_buf b = { 0 };
    size_t i;
    json_t *t;
    json_array_foreach((json_t *)tables, i, t)
    {
        if (i)
            sbi_buf_puts(&b, "\n");
        render_table(&b, fmt, t, n > 1);
    }
    return b.s ? b.s : strdup("");
}
