/* core/lib/run/plan.h — (internal) from a config file to the resolved set of runs.
 *
 * sbi_plan_load reads the config (includes, ${VAR}, overrides), finds the plugins, expands
 * `sweep:` × `seeds:` into runs, and resolves each run: every instance the run uses is
 * validated against its plugin's option table, references in `experiment:` are checked,
 * and the run's canonical JSON (sorted keys, defaults filled, plugin versions included) is
 * hashed into its run id. Runs that differ only in `seed` share a group id. Of runs with the
 * same run id (sweep values that resolve alike, or a swept key the run does not use) only the
 * first is kept, and the plan logs one warning (also in `warnings`).
 *
 * Top-level keys: include, plugin_path, results, threads, name, description, datasets,
 * labellers, encoders, heads, label_maps, experiment, sweep, seeds, report, slurm. docs/config.md
 * documents each. Dataset blocks also take the host's `on_missing_audio: error|skip`. An instance's
 * `plugin:` defaults to its name; an experiment reference that names no defined instance falls back
 * to the installed plugin of that name with its defaults. */
#ifndef SBI_PLAN_H
#define SBI_PLAN_H

#include <jansson.h>
#include <serbench/serbench.h>

#include "config.h"
#include "loader.h"

typedef struct sbi_instance {
    char *name; /* instance name in the config (or the plugin name) */
    sb_kind kind;
    const sbi_plugin *plugin;
    sb_opts *opts;
    json_t *canon;          /* {"plugin", "version", "options"} */
    char key[SB_HASH_HEX];  /* hash of canon */
    char where[256];        /* where the block was defined, or "(defaults)" */
    int skip_missing_audio; /* datasets: on_missing_audio is "skip" (default "error") */
} sbi_instance;

typedef struct sbi_split_ref {
    char *name;    /* display name of a test set ("meld/test"); NULL for train/dev */
    char *dataset; /* instance name */
    char *split;
    char *labels;    /* labeller instance name */
    char *label_map; /* dev and test sets: name of a map under label_maps:, or NULL */
    json_t *map;     /* that map: {"source class": "target class", ...}, or NULL */
} sbi_split_ref;

typedef struct sbi_run {
    size_t index;   /* position in runs[]: expansion order, duplicates dropped; --shard uses it */
    json_t *config; /* canonical resolved config */
    char run_id[SB_HASH_HEX];
    char group_id[SB_HASH_HEX];
    int64_t seed;
    sbi_split_ref train, dev;
    int has_dev;
    sbi_split_ref *tests;
    size_t n_tests;
    char *encoder, *head; /* instance names; encoder = encoders[0] */
    char **encoders;      /* experiment.encoder: one name or a list (a head input each) */
    size_t n_encoders;
    int regression;      /* experiment.target: value — targets are the corpus's values */
    char *init_from;     /* experiment.init.from: a checkpoint path, or "run:ID", or NULL */
    char *init_parts;    /* experiment.init.parts (default "all") */
    int init_new_output; /* experiment.init.new_output: -1 auto, 0 no, 1 yes */
    char **metrics;
    size_t n_metrics;
    json_t *sweep_values; /* {"key.path": value, ...} in sweep order */
    sbi_instance *inst;
    size_t n_inst;
} sbi_run;

/* The `slurm:` block (docs/cluster.md): how `serbench slurm` splits the config into job
 * arrays. It changes no run id. Strings are owned by the plan; NULL when not given (sbatch's
 * or the cluster's default applies). */
typedef struct sbi_slurm {
    int item_shards;              /* tasks of the label + feature array (default 1) */
    int run_shards;               /* tasks of the runs array (default 1) */
    int cpus_per_task;            /* also each serbench call's --threads (default: threads:, 1) */
    char *partition, *time, *mem; /* sbatch --partition, --time, --mem */
    char **extra;                 /* NULL-terminated lines written after the #SBATCH header */
    int stage_items, stage_runs;  /* `stages:` holds items / runs (default both) */
    char *serbench;               /* the executable the jobs call (absolute), or NULL */
} sbi_slurm;

typedef struct sbi_plan {
    char *config_path;
    sbi_node *root; /* the loaded config before expansion */
    sbi_registry *reg;
    sbi_run *runs;
    size_t n_runs;
    char **sweep_keys; /* NULL-terminated; empty when no sweep */
    char *results_dir; /* from `results:` (absolute) or NULL */
    int threads;       /* from `threads:` or 0 */
    json_t *report;    /* the `report:` block as JSON, or NULL */
    sbi_slurm slurm;   /* the `slurm:` block, defaults filled in */
    char **warnings;   /* NULL-terminated notes for the user (already logged), or NULL */
} sbi_plan;

/* builtin_dirs: colon-separated plugin folders compiled into the CLI. */
sb_status sbi_plan_load(const char *config_path, const char *const *overrides, size_t n_overrides,
                        const char *builtin_dirs, sbi_plan **out, sb_error *err);
void sbi_plan_destroy(sbi_plan **p);

/* Validate every instance defined in the config (not only those runs use). */
sb_status sbi_plan_validate_all(sbi_plan *p, sb_error *err);

/* The config id: a hash of the sorted run ids of all the plan's runs (so every shard of a
 * config, whatever its --shard or --items, computes the same id, and any change to a run's
 * resolved config or the run set changes it). Written to shard.json; merge compares it.
 * Errors: SB_ERR_NOMEM only. */
sb_status sbi_plan_config_id(const sbi_plan *p, char out[SB_HASH_HEX], sb_error *err);

/* The instance of `kind` named `name` in run r. */
const sbi_instance *sbi_run_instance(const sbi_run *r, sb_kind kind, const char *name);

/* "a.b=1, c=x" from sweep values (or "-" without a sweep), and a short human label of the
 * run: encoder + head + train labels. Caller frees. */
char *sbi_run_label(const sbi_plan *p, const sbi_run *r);

#endif
