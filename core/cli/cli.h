/* core/cli/cli.h — shared pieces of the serbench subcommands: argument parsing, plugin
 * folders, results folder, error reporting and exit codes. */
#ifndef SB_CLI_H
#define SB_CLI_H

#include <serbench/serbench.h>

#include "pipeline.h"
#include "plan.h"
#include "progress.h"
#include "store.h"

/* Exit statuses (docs/cli.md). */
enum { EXIT_OK = 0, EXIT_ITEMS = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

typedef struct cli_args {
    const char *cmd;
    const char *config;
    const char **overrides;
    size_t n_overrides;
    const char **positional; /* after the config (e.g. export's kind, compare's run ids) */
    size_t n_positional;
    int dry_run, force, quiet, verbose, json, plan_only;
    int jobs, threads;
    int shard_i, shard_n; /* --shard I/N: runs */
    int items_i, items_n; /* --items I/N: utterances of the label and feature stages */
    const char *results;
    const char *base; /* --base DIR: a new results store starts as a copy of DIR's */
    const char *format;
    const char *out;
    const char *dataset, *labeller, *encoder, *split; /* --dataset NAME etc. (instance names) */
} cli_args;

/* Parse argv[2..]; `takes_config` says whether the first positional is a config file.
 * Returns 0, or prints the problem and returns EXIT_USAGE. */
int cli_parse(int argc, char **argv, int takes_config, cli_args *a);

/* The built-in plugin folders: the build tree's when this binary runs from it, else the
 * install folder. */
const char *cli_builtin_plugin_dirs(void);

/* Print "serbench: error: where: message" (+ a hint for the code) to stderr and return the
 * exit status for the error's class. */
int cli_fail(const sb_error *err);
int cli_exit_code(sb_status st);

/* Load the plan for a, reporting errors (returns exit status or 0). */
int cli_load_plan(const cli_args *a, sbi_plan **plan);
/* Results folder: --results, else the config's `results:`, else ./results. */
const char *cli_results_dir(const cli_args *a, const sbi_plan *plan);
/* Open the results store; with --base, a results folder without serbench.db first becomes
 * a copy of the base store (sbi_store_create_from_base). */
int cli_open_store(const cli_args *a, const sbi_plan *plan, sbi_store **store);
/* Open a store that must already exist (report, plot, compare read results): without one,
 * say to run the config first and return missing_rc. */
int cli_open_existing_store(const cli_args *a, const sbi_plan *plan, int missing_rc,
                            sbi_store **store);
/* With --shard or --items: write RESULTS/shard.json (docs/store.md) — config_id, config
 * (absolute path), command, kind (items|runs), index, count, serbench, schema, complete —
 * under a temporary name, renamed into place. Nothing without those flags. Returns 0, or
 * prints the problem and returns the exit status. */
int cli_write_shard_json(const cli_args *a, const sbi_plan *plan, int complete);

int cmd_run(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_plugins(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_corpus(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_agree(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_slurm(int argc, char **argv);
int cmd_merge(int argc, char **argv);
/* `serbench export labels`: argv as cmd_export got it. */
int cmd_export_labels(int argc, char **argv);

#endif
