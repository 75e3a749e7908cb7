/* core/cli/cmd_plot.c — `serbench plot CONFIG --out DIR [--format png|svg|both] [--dpi N]`:
 * confusion matrices and per-class F1 bars (regression: predicted vs gold) of every group
 * of a config with a complete run, from the store (runs nothing). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plot.h"
#include "util.h"

/* Take `--dpi N` out of argv (cli_parse does not know it). Returns 0, or EXIT_USAGE. */
static int take_dpi(int *argc, char **argv, double *dpi)
{
    for (int i = 2; i < *argc; i++) {
        if (strcmp(argv[i], "--dpi") != 0)
            continue;
        const char *v = i + 1 < *argc ? argv[i + 1] : NULL;
        char *end = NULL;
        errno = 0;
        double d = v ? strtod(v, &end) : 0;
        if (!v || !*v || *end || errno || !(d >= SBI_PLOT_DPI_MIN && d <= SBI_PLOT_DPI_MAX)) {
            fprintf(stderr, "serbench: error: --dpi expects a number from %d to %d, got '%s'\n",
                    SBI_PLOT_DPI_MIN, SBI_PLOT_DPI_MAX, v ? v : "");
            return EXIT_USAGE;
        }
        *dpi = d;
        for (int j = i; j + 2 <= *argc; j++)
            argv[j] = argv[j + 2];
        *argc -= 2;
        i--;
    }
    return 0;
}

int cmd_plot(int argc, char **argv)
{
    sbi_plot_opts o = { 1, 1, 96.0 };
    cli_args a = { 0 };
    int rc = take_dpi(&argc, argv, &o.dpi);
    if (!rc)
        rc = cli_parse(argc, argv, 1, &a);
    sbi_plan *plan = NULL;
    sbi_store *store = NULL;
    const char *fmt = a.format ? a.format : "both";
    if (!rc && strcmp(fmt, "png") && strcmp(fmt, "svg") && strcmp(fmt, "both")) {
        fprintf(stderr, "serbench: error: --format must be png, svg or both (got '%s')\n", fmt);
        rc = EXIT_USAGE;
    }
    if (!rc && (!a.out || !*a.out)) {
        fprintf(stderr, "serbench: error: plot needs --out DIR (the folder for the figures)\n");
        rc = EXIT_USAGE;
    }
    if (!rc && sbi_is_file(a.out)) {
        fprintf(stderr, "serbench: error: --out %s: is a file; give a folder for the figures\n",
                a.out);
        rc = EXIT_USAGE;
    }
    o.png = !strcmp(fmt, "png") || !strcmp(fmt, "both");
    o.svg = !strcmp(fmt, "svg") || !strcmp(fmt, "both");
    if (!rc)
        rc = cli_load_plan(&a, &plan);
    if (!rc)
        rc = cli_open_existing_store(&a, plan, EXIT_ITEMS, &store);
    if (!rc) {
        sb_error err = { 0 };
        sbi_plot_summary sum;
        sb_status st = sbi_plot_all(plan, store, a.shard_i, a.shard_n, a.out, &o, &sum, &err);
        if (st == SB_ERR_NOT_FOUND) {
            char buf[2200];
            fprintf(stderr, "serbench: error: %s\n", sb_error_format(&err, buf, sizeof buf));
            rc = EXIT_ITEMS; /* nothing to plot yet, like a run with failed items */
        } else if (st != SB_OK) {
            rc = cli_fail(&err);
        } else if (!a.quiet) {
            printf("wrote %zu figure%s for %zu group%s to %s (index.md lists them)\n", sum.files,
                   sum.files == 1 ? "" : "s", sum.groups, sum.groups == 1 ? "" : "s", a.out);
            if (sum.partial)
                printf("%zu group%s not complete: plotted from the complete runs only\n",
                       sum.partial, sum.partial == 1 ? " is" : "s are");
        }
    }
    sbi_plot_release();
    sbi_store_close(&store);
    sbi_plan_destroy(&plan);
    free(a.overrides);
    free(a.positional);
    return rc;
}
