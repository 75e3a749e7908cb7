/* core/cli/cmd_validate.c — `serbench validate CONFIG`: parse, resolve and check every
 * plugin block without running anything; prints the run count and run ids (with --json:
 * {"config_id", "runs": [{run_id, group_id, config}, ...]}). */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int cmd_validate(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argc, argv, 1, &a);
    sbi_plan *plan = NULL;
    if (!rc)
        rc = cli_load_plan(&a, &plan);
    if (!rc) {
        sb_error err = { 0 };
        if (sbi_plan_validate_all(plan, &err) != SB_OK) {
            rc = cli_fail(&err);
        } else if (a.json) {
            char config_id[SB_HASH_HEX];
            if (sbi_plan_config_id(plan, config_id, &err) != SB_OK) {
                rc = cli_fail(&err);
                goto out;
            }
            json_t *runs = json_array();
            for (size_t i = 0; i < plan->n_runs; i++)
                json_array_append_new(
                    runs, json_pack("{s:s, s:s, s:O}", "run_id", plan->runs[i].run_id, "group_id",
                                    plan->runs[i].group_id, "config", plan->runs[i].config));
            json_t *doc = json_pack("{s:s, s:o}", "config_id", config_id, "runs", runs);
            char *s = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
            printf("%s\n", s ? s : "{}");
            free(s);
            json_decref(doc);
        } else {
            printf("%s: valid; %zu run%s\n", a.config, plan->n_runs, plan->n_runs == 1 ? "" : "s");
            for (size_t i = 0; i < plan->n_runs; i++)
                printf("  %s seed=%lld\n", plan->runs[i].run_id, (long long)plan->runs[i].seed);
        }
    }
out:
    sbi_plan_destroy(&plan);
    free(a.overrides);
    free(a.positional);
    return rc;
}
