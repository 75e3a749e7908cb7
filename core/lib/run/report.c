/* core/lib/run/report.c — tables of mean ± sd (n) over seeds (report.h). */
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "util.h"

static json_t *row_keys(const sbi_plan *p, const sbi_run *r)
{
    json_t *rows = p->report ? json_object_get(p->report, "rows") : NULL;
    if (json_is_string(rows) || json_is_array(rows)) {
        json_t *k = json_object();
        size_t n = json_is_array(rows) ? json_array_size(rows) : 1;
        for (size_t i = 0; i < n; i++) {
            const char *path =
                json_string_value(json_is_array(rows) ? json_array_get(rows, i) : rows);
            if (!path)
                continue;
            /* Look the path up in the resolved config: experiment.* directly, instance
             * options as <block>.<name>.<option>. */
            json_t *v = r->config;
            char *copy = strdup(path);
            char *save = NULL;
            for (char *t = strtok_r(copy, ".", &save); t && v; t = strtok_r(NULL, ".", &save)) {
                json_t *next = json_is_object(v) ? json_object_get(v, t) : NULL;
                if (!next && json_is_object(v) && json_object_get(v, "options"))
                    next = json_object_get(json_object_get(v, "options"), t);
                v = next;
            }
            free(copy);
            json_object_set(k, path, v ? v : json_null());
        }
        return k;
    }
    return json_deep_copy(r->sweep_values);
}

static char *keys_label(const json_t *keys)
{
    sbi_buf b = { 0 };
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)keys, k, v)
    {
        char *t = json_is_string(v) ? strdup(json_string_value(v))
                                    : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        const char *dot = strrchr(k, '.');
        sbi_buf_printf(&b, "%s%s=%s", b.len ? ", " : "", dot ? dot + 1 : k, t ? t : "?");
        free(t);
    }
    return b.s ? b.s : strdup("");
}

sb_status sbi_report_build(const sbi_plan *p, sbi_store *s, int shard_i, int shard_n, json_t **out,
                           sb_error *err)
{
    *out = NULL;
    json_t *columns = json_array();
    json_t *rows = json_array();
    const char *only_metric =
        p->report ? json_string_value(json_object_get(p->report, "metric")) : NULL;
    /* Columns from the first run (all runs of a config share tests and metrics unless swept). */
    for (size_t i = 0; i < p->n_runs; i++) {
        const sbi_run *r = &p->runs[i];
        for (size_t t = 0; t < r->n_tests; t++) {
            for (size_t m = 0; m < (only_metric ? 1 : r->n_metrics); m++) {
                const char *metric = only_metric ? only_metric : r->metrics[m];
                int seen = 0;
                size_t ci;
                json_t *col;
                json_array_foreach(columns, ci, col) seen |=
                    !strcmp(json_string_value(json_object_get(col, "test")), r->tests[t].name) &&
                    !strcmp(json_string_value(json_object_get(col, "metric")), metric);
                if (!seen)
                    json_array_append_new(columns, json_pack("{s:s, s:s}", "test", r->tests[t].name,
                                                             "metric", metric));
            }
        }
    }
    sqlite3_stmt *q = NULL;
    sb_status st = sbi_store_prepare(
        s,
        "SELECT m.value FROM metrics m JOIN runs r ON r.run_id = m.run_id"
        " WHERE m.run_id=?1 AND m.test=?2 AND m.metric=?3 AND r.status='complete'",
        &q, err);
    if (st != SB_OK) {
        json_decref(columns);
        json_decref(rows);
        return st;
    }
    size_t nc = json_array_size(columns);
    char *done_groups = calloc(p->n_runs + 1, 1);
    for (size_t i = 0; i < p->n_runs; i++) {
        const sbi_run *r = &p->runs[i];
        if (done_groups[i] || !sbi_in_shard(r, shard_i, shard_n))
            continue;
        json_t *keys = row_keys(p, r);
        char *label = json_object_size(keys) ? keys_label(keys) : sbi_run_label(p, r);
        double *vals = calloc((p->n_runs + 1) * (nc ? nc : 1), sizeof *vals);
        size_t *cnt = calloc(nc + 1, sizeof *cnt);
        size_t runs = 0, complete = 0;
        for (size_t j = i; j < p->n_runs; j++) {
            const sbi_run *g = &p->runs[j];
            if (strcmp(g->group_id, r->group_id) != 0 || !sbi_in_shard(g, shard_i, shard_n))
                continue;
            done_groups[j] = 1;
            runs++;
            int any = 0;
            for (size_t c = 0; c < nc; c++) {
                json_t *col = json_array_get(columns, c);
                sqlite3_bind_text(q, 1, g->run_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 2, json_string_value(json_object_get(col, "test")), -1,
                                  SQLITE_STATIC);
                sqlite3_bind_text(q, 3, json_string_value(json_object_get(col, "metric")), -1,
                                  SQLITE_STATIC);
                if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
                    vals[c * (p->n_runs + 1) + cnt[c]++] = sqlite3_column_double(q, 0);
                    any = 1;
                }
                sqlite3_reset(q);
            }
            complete += any;
        }
        json_t *cells = json_array();
        for (size_t c = 0; c < nc; c++) {
            if (cnt[c] == 0) {
                json_array_append_new(cells, json_null());
                continue;
            }
            double mean, sd;
            sb_mean_sd(vals + c * (p->n_runs + 1), cnt[c], &mean, &sd);
            json_array_append_new(cells, json_pack("{s:f, s:f, s:I}", "mean", mean, "sd", sd, "n",
                                                   (json_int_t)cnt[c]));
        }
        json_array_append_new(rows, json_pack("{s:s, s:o, s:I, s:I, s:o}", "label", label, "keys",
                                              keys, "runs", (json_int_t)runs, "complete",
                                              (json_int_t)complete, "cells", cells));
        free(label);
        free(vals);
        free(cnt);
    }
    free(done_groups);
    sqlite3_finalize(q);
    const char *title = p->report ? json_string_value(json_object_get(p->report, "title")) : NULL;
    const sbi_node *nm = sbi_node_get(p->root, "name");
    if (!title && nm && nm->kind == SBI_SCALAR)
        title = nm->text;
    *out = json_pack("{s:s, s:s, s:o, s:o}", "title", title ? title : p->config_path, "unit",
                     "percent in md/csv/tex; fraction in json", "columns", columns, "rows", rows);
    return SB_OK;
}

/* Index of the best mean in column c, or -1 when fewer than two rows have a value. */
static long best_row(const json_t *rows, size_t c)
{
    long best = -1;
    double bv = -INFINITY;
    size_t have = 0, i;
    json_t *row;
    json_array_foreach((json_t *)rows, i, row)
    {
        json_t *cell = json_array_get(json_object_get(row, "cells"), c);
        if (!json_is_object(cell))
            continue;
        have++;
        double m = json_real_value(json_object_get(cell, "mean"));
        if (m > bv) {
            bv = m;
            best = (long)i;
        }
    }
    return have >= 2 ? best : -1;
}

static void cell_text(const json_t *cell, char *buf, size_t n)
{
    if (!json_is_object(cell)) {
        snprintf(buf, n, "—");
        return;
    }
    double m = json_real_value(json_object_get(cell, "mean")) * 100.0;
    double sd = json_real_value(json_object_get(cell, "sd")) * 100.0;
    long long k = (long long)json_integer_value(json_object_get(cell, "n"));
    snprintf(buf, n, "%.2f ± %.2f (%lld)", m, sd, k);
}

static void tex_escape(sbi_buf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
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

char *sbi_report_render(const json_t *t, const char *format)
{
    if (strcmp(format, "json") == 0)
        return json_dumps(t, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    int md = !strcmp(format, "md"), csv = !strcmp(format, "csv"), tex = !strcmp(format, "tex");
    if (!md && !csv && !tex)
        return NULL;
    const json_t *cols = json_object_get(t, "columns");
    const json_t *rows = json_object_get(t, "rows");
    size_t nc = json_array_size(cols);
    long *best = calloc(nc + 1, sizeof *best);
    for (size_t c = 0; c < nc; c++)
        best[c] = best_row(rows, c);
    sbi_buf b = { 0 };
    char cell[128];
    /* header */
    if (md)
        sbi_buf_printf(&b, "%s\n\n| run |", json_string_value(json_object_get(t, "title")));
    if (csv)
        sbi_buf_puts(&b, "run");
    if (tex) {
        sbi_buf_puts(&b, "\\begin{tabular}{l");
        for (size_t c = 0; c < nc; c++)
            sbi_buf_puts(&b, "r");
        sbi_buf_puts(&b, "}\n\\toprule\nrun");
    }
    for (size_t c = 0; c < nc; c++) {
        const json_t *col = json_array_get(cols, c);
        char *h = sbi_asprintf("%s %s", json_string_value(json_object_get(col, "test")),
                               json_string_value(json_object_get(col, "metric")));
        if (md)
            sbi_buf_printf(&b, " %s |", h);
        if (csv) {
            sbi_buf_puts(&b, ",");
            sbi_buf_csv_field(&b, h);
        }
        if (tex) {
            sbi_buf_puts(&b, " & ");
            tex_escape(&b, h);
        }
        free(h);
    }
    if (md) {
        sbi_buf_puts(&b, "\n|---|");
        for (size_t c = 0; c < nc; c++)
            sbi_buf_puts(&b, "---:|");
    }
    sbi_buf_puts(&b, tex ? " \\\\\n\\midrule\n" : "\n");
    size_t i;
    json_t *row;
    json_array_foreach((json_t *)rows, i, row)
    {
        const char *label = json_string_value(json_object_get(row, "label"));
        if (md)
            sbi_buf_printf(&b, "| %s |", label);
        if (csv)
            sbi_buf_csv_field(&b, label);
        if (tex)
            tex_escape(&b, label);
        for (size_t c = 0; c < nc; c++) {
            cell_text(json_array_get(json_object_get(row, "cells"), c), cell, sizeof cell);
            int bold = best[c] == (long)i;
            if (md)
                sbi_buf_printf(&b, bold ? " **%s** |" : " %s |", cell);
            if (csv) {
                sbi_buf_puts(&b, ",");
                sbi_buf_csv_field(&b, cell);
            }
            if (tex) {
                /* ± as $\pm$ in LaTeX. */
                char *pm = strstr(cell, "±");
                sbi_buf_puts(&b, " & ");
                if (bold)
                    sbi_buf_puts(&b, "\\textbf{");
                if (pm) {
                    sbi_buf_add(&b, cell, (size_t)(pm - cell));
                    sbi_buf_puts(&b, "$\\pm$");
                    sbi_buf_puts(&b, pm + strlen("±"));
                } else {
                    sbi_buf_puts(&b, strcmp(cell, "—") ? cell : "--");
                }
                if (bold)
                    sbi_buf_puts(&b, "}");
            }
        }
        sbi_buf_puts(&b, tex ? " \\\\\n" : "\n");
    }
    if (tex)
        sbi_buf_puts(&b, "\\bottomrule\n\\end{tabular}\n");
    if (md)
        sbi_buf_puts(&b, "\nCells: mean ± sd (n seeds), in percent; best per column in bold.\n");
    free(best);
    return b.s ? b.s : strdup("");
}
