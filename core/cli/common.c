/* core/cli/common.c — argument parsing and error reporting shared by subcommands. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sb_build_config.h"
#include "util.h"

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "serbench: error: %s expects an integer from %d to %d, got '%s'\n", flag,
                lo, hi, s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* "I/N" with 1 <= I <= N (--shard, --items). */
static int parse_slice(const char *flag, const char *s, int *i_out, int *n_out)
{
    int i = 0, n = 0, used = 0;
    if (!s || sscanf(s, "%d/%d%n", &i, &n, &used) != 2 || s[used] || n < 1 || i < 1 || i > n) {
        fprintf(stderr, "serbench: error: %s expects I/N with 1 <= I <= N, got '%s'\n", flag,
                s ? s : "");
        return -1;
    }
    *i_out = i;
    *n_out = n;
    return 0;
}

int cli_parse(int argc, char **argv, int takes_config, cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = argv[1];
    a->jobs = 1;
    a->overrides = calloc((size_t)argc, sizeof *a->overrides);
    a->positional = calloc((size_t)argc, sizeof *a->positional);
    if (!a->overrides || !a->positional)
        return EXIT_USAGE;
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define FLAG(name) (strcmp(s, name) == 0)
        if (FLAG("--dry-run"))
            a->dry_run = 1;
        else if (FLAG("--force"))
            a->force = 1;
        else if (FLAG("--quiet") || FLAG("-q"))
            a->quiet = 1;
        else if (FLAG("--verbose") || FLAG("-v"))
            a->verbose = 1;
        else if (FLAG("--json"))
            a->json = 1;
        else if (FLAG("--plan"))
            a->plan_only = 1;
        else if (FLAG("--jobs") || FLAG("-j")) {
            if (parse_int(s, val, 1, 1024, &a->jobs))
                return EXIT_USAGE;
            i++;
        } else if (FLAG("--threads")) {
            if (parse_int(s, val, 1, 1024, &a->threads))
                return EXIT_USAGE;
            i++;
        } else if (FLAG("--shard")) {
            if (parse_slice(s, val, &a->shard_i, &a->shard_n))
                return EXIT_USAGE;
            i++;
        } else if (FLAG("--items")) {
            if (parse_slice(s, val, &a->items_i, &a->items_n))
                return EXIT_USAGE;
            i++;
        } else if (FLAG("--results") || FLAG("--format") || FLAG("--out") || FLAG("--dataset") ||
                   FLAG("--labeller") || FLAG("--encoder") || FLAG("--split") || FLAG("--base")) {
            if (!val) {
                fprintf(stderr, "serbench: error: %s needs a value\n", s);
                return EXIT_USAGE;
            }
            if (FLAG("--results"))
                a->results = val;
            else if (FLAG("--format"))
                a->format = val;
            else if (FLAG("--dataset"))
                a->dataset = val;
            else if (FLAG("--labeller"))
                a->labeller = val;
            else if (FLAG("--encoder"))
                a->encoder = val;
            else if (FLAG("--split"))
                a->split = val;
            else if (FLAG("--base"))
                a->base = val;
            else
                a->out = val;
            i++;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "serbench: error: unknown option '%s' for '%s'; see 'serbench help'\n",
                    s, a->cmd);
            return EXIT_USAGE;
        } else if (takes_config && !a->config) {
            a->config = s;
        } else if (takes_config && strchr(s, '=') && s[0] != '=') {
            a->overrides[a->n_overrides++] = s;
        } else {
            a->positional[a->n_positional++] = s;
        }
#undef FLAG
    }
    if (takes_config && !a->config) {
        fprintf(stderr, "serbench: error: '%s' needs a CONFIG file; see 'serbench help'\n", a->cmd);
        return EXIT_USAGE;
    }
    return 0;
}

const char *cli_builtin_plugin_dirs(void)
{
    static char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        char build_cli[PATH_MAX];
        snprintf(build_cli, sizeof build_cli, "%s/core/cli", SB_BUILD_ROOT);
        char *real = realpath(build_cli, NULL);
        int in_build = real && strcmp(real, exe) == 0;
        free(real);
        if (in_build)
            return SB_BUILD_PLUGIN_PATH;
    }
    return SB_INSTALL_PLUGIN_DIR;
}

int cli_exit_code(sb_status st)
{
    switch (st) {
    case SB_OK: return EXIT_OK;
    case SB_ERR_CANCELLED: return EXIT_INTERRUPTED;
    case SB_ERR_USAGE:
    case SB_ERR_CONFIG:
    case SB_ERR_PLUGIN:
    case SB_ERR_IO:
    case SB_ERR_FORMAT:
    case SB_ERR_AUDIO:
    case SB_ERR_NOT_FOUND:
    case SB_ERR_INVALID:
    case SB_ERR_STORE:
    case SB_ERR_SCHEMA: return EXIT_USAGE;
    default: return EXIT_ITEMS;
    }
}

int cli_fail(const sb_error *err)
{
    char buf[2200];
    fprintf(stderr, "serbench: error: %s\n", sb_error_format(err, buf, sizeof buf));
    return cli_exit_code(err->code ? err->code : SB_ERR_INTERNAL);
}

int cli_load_plan(const cli_args *a, sbi_plan **plan)
{
    sb_error err = { 0 };
    if (sbi_plan_load(a->config, a->overrides, a->n_overrides, cli_builtin_plugin_dirs(), plan,
                      &err) != SB_OK)
        return cli_fail(&err);
    return 0;
}

const char *cli_results_dir(const cli_args *a, const sbi_plan *plan)
{
    if (a->results)
        return a->results;
    if (plan && plan->results_dir)
        return plan->results_dir;
    return "results";
}

int cli_open_store(const cli_args *a, const sbi_plan *plan, sbi_store **store)
{
    sb_error err = { 0 };
    const char *root = cli_results_dir(a, plan);
    int created = 0;
    if (a->base && sbi_store_create_from_base(root, a->base, &created, &err) != SB_OK)
        return cli_fail(&err);
    if (created && !a->quiet)
        fprintf(stderr,
                "serbench: %s: a new store, copied from %s/serbench.db; its features folder is "
                "a link to %s/features\n",
                root, a->base, a->base);
    if (sbi_store_open(root, store, &err) != SB_OK)
        return cli_fail(&err);
    return 0;
}

int cli_write_shard_json(const cli_args *a, const sbi_plan *plan, int complete)
{
    const int items = a->items_n > 0;
    if (!items && a->shard_n <= 0)
        return 0;
    sb_error err = { 0 };
    char config_id[SB_HASH_HEX];
    if (sbi_plan_config_id(plan, config_id, &err) != SB_OK)
        return cli_fail(&err);
    char *config = realpath(a->config, NULL);
    char *path = sbi_path_join(cli_results_dir(a, plan), "shard.json");
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:i, s:b}", "config_id", config_id,
                          "config", config ? config : a->config, "command", a->cmd, "kind",
                          items ? "items" : "runs", "index", items ? a->items_i : a->shard_i,
                          "count", items ? a->items_n : a->shard_n, "serbench", sb_version(),
                          "schema", SBI_SCHEMA_VERSION, "complete", complete);
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    char *full = text ? sbi_asprintf("%s\n", text) : NULL;
    sb_status st = path && full ? sbi_write_file_atomic(path, full, strlen(full), &err)
                                : sb_error_set(&err, SB_ERR_NOMEM, NULL, "out of memory");
    free(full);
    free(text);
    json_decref(j);
    free(path);
    free(config);
    return st == SB_OK ? 0 : cli_fail(&err);
}

int cli_open_existing_store(const cli_args *a, const sbi_plan *plan, int missing_rc,
                            sbi_store **store)
{
    char *db = sbi_path_join(cli_results_dir(a, plan), "serbench.db");
    if (!db || !sbi_is_file(db)) {
        fprintf(stderr, "serbench: error: %s: no results store; run 'serbench run %s' first\n",
                db ? db : "?", a->config);
        free(db);
        return missing_rc;
    }
    free(db);
    return cli_open_store(a, plan, store);
}
