/* core/lib/config/config.h — (internal) YAML configs as a node tree that remembers where
 * every node came from, with includes, interpolation, overrides and sweep expansion.
 *
 * Pipeline, in order (sbi_config_load does 1–4):
 *   1. parse each file with libyaml into nodes carrying file:line:col;
 *   2. `include:` (a string or a list of strings, paths relative to the including file):
 *      included files are loaded first, in order, deep-merged into one base, and the
 *      including file is deep-merged over that base (maps merge key by key, anything else
 *      is replaced; later wins). Missing files and include cycles are errors that name
 *      the chain ("a.yaml:1:10 includes b.yaml:2:3 includes a.yaml");
 *   3. `${VAR}` and `${VAR:-default}` in scalar values are replaced from the environment
 *      (`$$` is a literal `$`); an undefined variable without default is an error naming the
 *      node's location and the variable;
 *   4. overrides `key.path=value` (value parsed as a YAML flow scalar/sequence/mapping, so
 *      `seeds=[1,2]` works) are applied; a path through a missing map creates it; the node's
 *      location becomes "<command line>:0:N" (N = the override's position, 1-based).
 * Then, separately:
 *   5. sbi_config_expand: `sweep:` maps key paths to lists; the run set is their cartesian
 *      product (first key varies slowest). Each swept key must already exist in the config
 *      (error otherwise, with the sweep entry's location and a did-you-mean). `seeds:` (an
 *      int or a list of ints, default [1]) multiplies the set: each run gets a top-level
 *      `seed:` scalar. The `sweep` and `seeds` keys are removed from the expanded runs.
 *
 * Scalars keep their text and whether they were quoted; typing happens later, against a
 * schema (YAML 1.2 core schema for untyped use: null/~, true/false, ints, floats).
 * Duplicate keys in one mapping are an error. Anchors/aliases are resolved by copying. */
#ifndef SBI_CONFIG_H
#define SBI_CONFIG_H

#include <serbench/error.h>
#include <jansson.h>

typedef enum sbi_node_kind {
    SBI_NULL = 0, /* empty value or ~ / null (plain) */
    SBI_SCALAR,
    SBI_SEQ,
    SBI_MAP
} sbi_node_kind;

typedef struct sbi_loc {
    const char *file; /* interned; lives until sbi_config_free_all / process end */
    int line, col;    /* 1-based; 0 when synthetic */
} sbi_loc;

typedef struct sbi_node sbi_node;
struct sbi_node {
    sbi_node_kind kind;
    sbi_loc loc;
    char *text;        /* SCALAR: the value (after interpolation); NULL for NULL/SEQ/MAP */
    int quoted;        /* SCALAR: written quoted ('...' or "...") or as a block scalar */
    int from_env;      /* SCALAR: its text came through ${VAR}: never shown in a message */
    size_t n;          /* SEQ/MAP: number of items */
    char **keys;       /* MAP: keys[n] */
    sbi_loc *key_locs; /* MAP: where each key was written */
    sbi_node **items;  /* SEQ/MAP: items[n] */
};

/* Load a config file through steps 1–4. Returns the root (a MAP; an empty file gives an
 * empty MAP) or NULL with err set (SB_ERR_CONFIG, SB_ERR_IO, or SB_ERR_USAGE for a malformed
 * override), naming file:line:col. */
sbi_node *sbi_config_load(const char *path, const char *const *overrides, size_t n_overrides,
                          sb_error *err);

/* Parse YAML text (not a file) through steps 1 and 3 only; `name` labels locations.
 * Includes are an error here. Any root kind is returned; empty text gives an SBI_NULL node.
 * For tests, defaults and override values. */
sbi_node *sbi_config_parse_string(const char *text, size_t len, const char *name, sb_error *err);

/* Step 5. On success *runs holds *n_runs new roots (caller frees each and the array with
 * free). */
sb_status sbi_config_expand(const sbi_node *root, sbi_node ***runs, size_t *n_runs, sb_error *err);

/* Sweep keys in order (for report rows and `--dry-run`), as NULL-terminated array of
 * borrowed strings into `root` (free the array, not the strings), or NULL if no sweep. */
const char **sbi_config_sweep_keys(const sbi_node *root);

/* Tree access. `sbi_node_get` looks up a key in a MAP (NULL if absent or not a MAP);
 * `sbi_node_path` follows a dotted path ("experiment.train.labels"); sequence items are
 * addressed by index ("experiment.test.0.dataset"). */
sbi_node *sbi_node_get(const sbi_node *map, const char *key);
sbi_node *sbi_node_path(const sbi_node *root, const char *dotted);
/* Replace (or create, making missing maps on the way) the node at a dotted path; takes
 * ownership of `value`. */
sb_status sbi_node_set_path(sbi_node *root, const char *dotted, sbi_node *value, sb_error *err);
/* Remove a key from a MAP; no-op if absent. */
void sbi_node_remove(sbi_node *map, const char *key);

sbi_node *sbi_node_new_scalar(const char *text, int quoted, sbi_loc loc);
sbi_node *sbi_node_new_map(sbi_loc loc);
sbi_node *sbi_node_new_seq(sbi_loc loc);
/* Append to a SEQ, or add/replace key in a MAP (takes ownership of item). */
void sbi_seq_push(sbi_node *seq, sbi_node *item);
void sbi_map_set(sbi_node *map, const char *key, sbi_loc key_loc, sbi_node *item);
sbi_node *sbi_node_clone(const sbi_node *n);
void sbi_node_free(sbi_node **n);

/* "file:line:col" into buf (or "file" when line and col are both 0); returns buf. */
const char *sbi_loc_str(sbi_loc loc, char *buf, size_t size);
/* Interned copy of a file name for sbi_loc.file. */
const char *sbi_intern(const char *s);

/* Scalar typing by the YAML 1.2 core schema: for a plain scalar, "true"/"false" → bool,
 * decimal/0x/0o ints → int, floats (1e-3, .5) → real, .inf/.nan → string (JSON has no
 * infinities), "null"/"~"/"" → null;
 * quoted scalars are always strings. Returns a new jansson value. */
json_t *sbi_scalar_to_json(const sbi_node *n);
/* Whole tree to JSON with core-schema typing (keys keep insertion order). */
json_t *sbi_node_to_json(const sbi_node *n);

/* Levenshtein-based suggestion: the candidate closest to `word` if close enough
 * (distance <= max(1, strlen(word)/3)), else NULL. Candidates NULL-terminated. */
const char *sbi_did_you_mean(const char *word, const char *const *candidates);

#endif
