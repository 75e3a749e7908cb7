/* core/cli/cmd_report.c — `serbench report CONFIG [--format md|csv|tex|json] [--out FILE]
 * [--table NAME]`: the config's result tables from the store (runs nothing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report.h"
#include "util.h"

int cmd_report(int argc, char **argv)
{
    /* --table is report's own flag: take it out before the shared parser sees argv. */
    const char *table = NULL;
    int rc = 0;
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int n = 0;
    if (!args)
        return EXIT_USAGE;
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && !strcmp(argv[i], "--table")) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                fprintf(stderr, "serbench: error: --table needs a table name\n");
                free(args);
                return EXIT_USAGE;
            }
            table = argv[++i];
            continue;
        }
        args[n++] = argv[i];
    }
    cli_args a;
    rc = cli_parse(n, args, 1, &a);
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
    if (!rc)
        rc = cli_open_existing_store(&a, plan, EXIT_USAGE, &store);
    if (!rc) {
        json_t *report = NULL;
        sb_error err = { 0 };
        if (sbi_report_build_tables(plan, store, a.shard_i, a.shard_n, table, &report, &err) !=
            SB_OK) {
            rc = cli_fail(&err);
        } else {
            size_t i;
            json_t *w;
            json_array_foreach(json_object_get(report, "warnings"), i, w)
                fprintf(stderr, "serbench: warning: %s\n", json_string_value(w));
            char *text = sbi_report_render(report, fmt);
            json_decref(report);
            if (!text) {
                fprintf(stderr, "serbench: error: out of memory\n");
                rc = EXIT_USAGE;
            } else if (a.out) {
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
    free(args);
    return rc;
}
