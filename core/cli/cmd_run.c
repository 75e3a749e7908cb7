/* core/cli/cmd_run.c — `serbench run|label|encode CONFIG`: execute the plan (or list it
 * with --dry-run), then print the result table; with --shard or --items, keep
 * RESULTS/shard.json up to date for merge and the Slurm driver. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report.h"
#include "util.h"

static void on_signal(int sig)
{
    (void)sig;
    sbi_cancel_requested = 1;
}

static void dry_run(const sbi_plan *p, const cli_args *a, sbi_store *store)
{
    size_t sel = 0;
    printf("%-4s %-12s %-12s %-6s %-9s %s\n", "#", "run", "group", "seed", "status", "what");
    for (size_t i = 0; i < p->n_runs; i++) {
        const sbi_run *r = &p->runs[i];
        if (!sbi_in_shard(r, a->shard_i, a->shard_n))
            continue;
        sel++;
        char *status = store ? sbi_store_run_status(store, r->run_id) : NULL;
        char *label = sbi_run_label(p, r);
        printf("%-4zu %.12s %.12s %-6lld %-9s %s\n", i + 1, r->run_id, r->group_id,
               (long long)r->seed, status ? status : "pending", label);
        free(label);
        free(status);
    }
    printf("%zu of %zu runs%s\n", sel, p->n_runs, a->shard_n ? " in this shard" : "");
}

int cmd_run(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, 1, &a);
    sbi_plan *plan = NULL;
    sbi_store *store = NULL;
    int shard_json = 0;
    if (!rc && a.plan_only && strcmp(a.cmd, "label") != 0) {
        fprintf(stderr,
                "serbench: error: --plan belongs to serbench label (use --dry-run to "
                "list the runs of serbench %s)\n",
                a.cmd);
        rc = EXIT_USAGE;
    }
    if (!rc && a.items_n && strcmp(a.cmd, "run") == 0) {
        fprintf(stderr, "serbench: error: --items shards the label and feature stages; runs are "
                        "sharded with --shard\n");
        rc = EXIT_USAGE;
    }
    if (!rc && a.items_n && a.shard_n) {
        fprintf(stderr, "serbench: error: --items and --shard do not combine: an item shard "
                        "computes its utterances for every run of the config\n");
        rc = EXIT_USAGE;
    }
    if (!rc)
        rc = cli_load_plan(&a, &plan);
    if (!rc && a.dry_run) {
        /* Only read the store if it exists: a dry run writes nothing. */
        char *db = sbi_path_join(cli_results_dir(&a, plan), "serbench.db");
        if (db && sbi_is_file(db))
            cli_open_store(&a, plan, &store);
        free(db);
        dry_run(plan, &a, store);
        goto out;
    }
    if (!rc)
        rc = cli_open_store(&a, plan, &store);
    /* shard.json says "complete": false until this command has finished with exit 0. */
    shard_json = !a.plan_only && (a.items_n || a.shard_n);
    if (!rc && shard_json)
        rc = cli_write_shard_json(&a, plan, 0);
    if (rc)
        goto out;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    sbi_ui ui;
    sbi_ui_init(&ui, a.quiet, a.verbose);
    sbi_exec_opts o = { .force = a.force,
                        .jobs = a.jobs,
                        .threads = a.threads,
                        .shard_i = a.shard_i,
                        .shard_n = a.shard_n,
                        .items_i = a.items_i,
                        .items_n = a.items_n,
                        .label_plan = a.plan_only,
                        .ui = &ui };
    o.stage = !strcmp(a.cmd, "label")    ? SBI_STAGE_LABELS
              : !strcmp(a.cmd, "encode") ? SBI_STAGE_FEATURES
                                         : SBI_STAGE_ALL;
    sbi_exec_summary sum;
    sb_error err = { 0 };
    sb_status st = sbi_execute(plan, store, &o, &sum, &err);
    if (st != SB_OK) {
        rc = cli_fail(&err);
        if (sum.item_failures)
            fprintf(stderr, "serbench: %zu items failed; see the warnings above\n",
                    sum.item_failures);
        goto out;
    }
    if (o.stage == SBI_STAGE_ALL) {
        json_t *table = NULL;
        if (sbi_report_build(plan, store, a.shard_i, a.shard_n, &table, &err) == SB_OK) {
            size_t wi;
            json_t *w;
            json_array_foreach(json_object_get(table, "warnings"), wi, w)
                fprintf(stderr, "serbench: warning: %s\n", json_string_value(w));
            char *text = sbi_report_render(table, "md");
            printf("%s", text ? text : "");
            free(text);
            json_decref(table);
        }
    }
    if (sum.item_failures || sum.runs_failed) {
        fprintf(stderr,
                "serbench: finished with %zu failed item%s and %zu failed run%s (details above; "
                "the store keeps them in item_failures and runs.error)\n",
                sum.item_failures, sum.item_failures == 1 ? "" : "s", sum.runs_failed,
                sum.runs_failed == 1 ? "" : "s");
        rc = EXIT_ITEMS;
    }
    if (!rc && shard_json)
        rc = cli_write_shard_json(&a, plan, 1);
out:
    sbi_store_close(&store);
    sbi_plan_destroy(&plan);
    free(a.overrides);
    free(a.positional);
    return rc;
}
