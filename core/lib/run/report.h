/* core/lib/run/report.h — (internal) result tables from the store.
 *
 * One row per run group (runs that differ only in seed), labelled by the `report.rows`
 * key paths, else by the sweep keys, else by encoder + head + labels. Columns are test
 * set × metric (or test sets only when `report.metric` names one metric). Each cell
 * aggregates the group's complete runs: mean ± sample sd (n), shown in percent. The best
 * mean per column is bold in md/tex when there are two rows or more. */
#ifndef SBI_REPORT_H
#define SBI_REPORT_H

#include <jansson.h>

#include "plan.h"
#include "store.h"

/* Build the table as JSON:
 * {"title", "columns": [{"test","metric"}], "rows": [{"label", "keys": {...},
 *  "runs": N, "complete": N, "cells": [{"mean","sd","n"} | null]}]}. */
sb_status sbi_report_build(const sbi_plan *p, sbi_store *s, int shard_i, int shard_n, json_t **out,
                           sb_error *err);
/* Render as "md", "csv", "tex" or "json"; caller frees. NULL for an unknown format. */
char *sbi_report_render(const json_t *table, const char *format);

#endif
