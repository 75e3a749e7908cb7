/* core/cli/cmd_report.c — `serbench report CONFIG [--format md|csv|tex|json] [--out FILE]`:
 * the result table of a config's runs, from the store (runs nothing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report.h"
#include "util.h"

int cmd_report(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, 1, &a);
    sbi_plan *plan = NULL;
    sbi_store *store = NULL;
    const char *fmt = a.format ? a.format : "md";
    if (!rc && strcmp(fmt, "md") && strcmp(fmt, "csv") && strcmp(fmt, "tex") &&
        strcmp(fmt, "json")) {
        fprintf(stderr, "serbench: error: --format must be md, csv, tex or json (got '%s')\n", fmt);
        rc = EXIT_USAGE;
    }
    if (!rc)
        rc = cli_load_plan(&a, &plan);
    if (!rc) {
        char *db = sbi_path_join(cli_results_dir(&a, plan), "serbench.db");
        if (!db || !sbi_is_file(db)) {
            fprintf(stderr, "serbench: error: %s: no results store; run 'serbench run %s' first\n",
                    db ? db : "?", a.config);
            rc = EXIT_USAGE;
        }
        free(db);
    }
    if (!rc)
        rc = cli_open_store(&a, plan, &store);
    if (!rc) {
        json_t *table = NULL;
        sb_error err = { 0 };
        if (sbi_report_build(plan, store, a.shard_i, a.shard_n, &table, &err) != SB_OK) {
            rc = cli_fail(&err);
        } else {
            char *text = sbi_report_render(table, fmt);
            json_decref(table);
            if (a.out) {
                if (sbi_write_file_atomic(a.out, text, strlen(text), &err) != SB_OK)
                    rc = cli_fail(&err);
            } else {
                fputs(text, stdout);
                if (!strcmp(fmt, "json"))
                    fputc('\n', stdout);
            }
            free(text);
        }
    }
    sbi_store_close(&store);
    sbi_plan_destroy(&plan);
    free(a.overrides);
    free(a.positional);
    return rc;
}
