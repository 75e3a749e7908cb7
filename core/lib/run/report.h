/* core/lib/run/report.h — (internal) result tables from the store, laid out by the config's
 * `report:` block (docs/config.md "report").
 *
 * A report is one or more tables. Each table picks one metric (or has the pseudo-key `metric`
 * among its rows or columns), rows and columns from key paths into the runs' resolved configs
 * plus the pseudo-keys `test` and `metric`, and aggregates the complete runs of each cell:
 * mean ± sample sd (n) over seeds, or with `average:` the mean over the averaged key's values
 * of each value's mean over seeds. The best mean per column is bold; `significance:` marks
 * cells not significantly different from their column's best (paired bootstrap over test
 * items or McNemar, serbench/signif.h); `reported:` adds the paper's numbers and ours minus
 * them. The old single-table keys (report.rows/cols/metric/title) still describe one table. */
#ifndef SBI_REPORT_H
#define SBI_REPORT_H

#include <jansson.h>

#include "plan.h"
#include "store.h"

/* Check the `report:` block of a loaded plan against its runs: unknown keys (with a
 * suggestion), bad names, scales and best directions, a metric no run computes, a key no run's
 * resolved config has, several test sets or metrics in a cell, significance on a metric it
 * cannot test, malformed `reported` entries. Errors are SB_ERR_CONFIG naming file:line:col.
 * sbi_plan_load calls it after resolving the runs; a plan without `report:` passes. */
sb_status sbi_report_check(const sbi_plan *p, sb_error *err);

/* Build the tables as JSON (only runs in the shard; shard_n 0 = all):
 *   {"title", "tables": [TABLE, ...], "warnings": ["...", ...]}
 * TABLE = {"name", "title", "metric" (or null), "row_keys", "col_keys", "average", "scale",
 *          "digits", "best", "columns": [{"label", "keys", "test", "metric", "scale", "best",
 *          "reported"}], "rows": [{"label", "keys", "runs", "complete", "cells": [CELL]}],
 *          "significance", "reported", "notes"}
 * CELL = {"mean", "sd" (the metric's own unit: fractions for wa/ua/...; null when n is 0),
 *         "n", "run_ids", "text", "best", "significant" (null when untested), "test" (the
 *         test's result), "reported", "delta" (in the table's scale; null when unknown),
 *         "groups" (with `average`: per averaged value mean, sd, n, run_ids)}.
 * `only` names one table (NULL: all); an unknown name is SB_ERR_USAGE listing the names.
 * Warnings (a reported value no row or column has, a cell pooling configurations that differ
 * in more than the seed, a significance test without common items) are returned, not
 * printed. */
sb_status sbi_report_build_tables(const sbi_plan *p, sbi_store *s, int shard_i, int shard_n,
                                  const char *only, json_t **out, sb_error *err);
/* All tables (sbi_report_build_tables with only = NULL). */
sb_status sbi_report_build(const sbi_plan *p, sbi_store *s, int shard_i, int shard_n, json_t **out,
                           sb_error *err);

/* Render as "md", "csv", "tex" or "json"; caller frees; NULL for an unknown format. With one
 * table: that table (json: the TABLE object). With several: md and tex give each with its
 * title, csv each preceded by a "# title" line, json {"title", "tables": [...]}. */
char *sbi_report_render(const json_t *report, const char *format);

#endif
