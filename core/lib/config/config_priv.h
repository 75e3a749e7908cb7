/* core/lib/config/config_priv.h — (private to core/lib/config) the pieces the config files
 * share: the libyaml front end, interpolation and override steps, deep merge, and the
 * limits that keep hostile input from exhausting stack or memory. */
#ifndef SBI_CONFIG_PRIV_H
#define SBI_CONFIG_PRIV_H

#include "config.h"

/* Nesting deeper than this (maps/lists, or dotted path components) is refused, so every
 * recursive walk over a tree is bounded. Real configs nest 4–6 deep. */
#define SBI_CONFIG_MAX_DEPTH 256
/* Aliases are expanded by copying; a document may not grow past this many nodes
 * ("billion laughs"). */
#define SBI_CONFIG_MAX_NODES 1000000
/* Include chains longer than this are refused. */
#define SBI_CONFIG_MAX_INCLUDE_DEPTH 32
/* sbi_config_expand refuses more runs than this, or copies of more nodes than
 * SBI_CONFIG_MAX_EXPAND_NODES in total. */
#define SBI_CONFIG_MAX_RUNS 100000
#define SBI_CONFIG_MAX_EXPAND_NODES 4000000

/* Step 1: parse YAML text into a tree whose nodes are labelled with `name` (interned by
 * the caller). Any root kind is returned (an empty stream gives an SBI_NULL node); no
 * include handling, no interpolation. NULL with err set (SB_ERR_CONFIG, or SB_ERR_NOMEM)
 * on failure. */
sbi_node *sbi_yaml_parse(const char *text, size_t len, const char *name, sb_error *err);

/* Offset of the first byte that is not valid UTF-8 (overlong forms and surrogates count
 * as invalid), or len when all of s[0..len) is valid. */
size_t sbi_utf8_invalid_at(const unsigned char *s, size_t len);

/* Step 3 on one string: expand ${VAR}, ${VAR:-default} and $$ in `in`. On success *out is
 * a new string (free it); `loc` names the node in error messages. */
sb_status sbi_interp_string(const char *in, sbi_loc loc, char **out, sb_error *err);
/* Step 3 on a whole tree: every scalar value (not keys) in place. */
sb_status sbi_interp_tree(sbi_node *root, sb_error *err);

/* Step 4: apply "key.path=value" overrides in order to a MAP root. A malformed override
 * (no '=', empty path) or one that sets `include` (read with the files, before overrides)
 * is SB_ERR_USAGE; a value that is not YAML or a path that cannot be set is SB_ERR_CONFIG. */
sb_status sbi_overrides_apply(sbi_node *root, const char *const *overrides, size_t n,
                              sb_error *err);

/* Deep merge: `over` onto `base`, consuming both; maps merge key by key (keys new to
 * `base` are appended in `over`'s order), anything else is replaced by `over`. */
sbi_node *sbi_node_merge(sbi_node *base, sbi_node *over);

/* Number of nodes in a tree (1 for a scalar). */
size_t sbi_node_count(const sbi_node *n);

/* Index of `key` in a MAP, or -1. */
long sbi_map_find(const sbi_node *map, const char *key);

/* Core-schema integer test for a plain scalar: 1 and *out set if it is one that fits in
 * long long, else 0. */
int sbi_scalar_int(const sbi_node *n, long long *out);

/* "a scalar", "a list", "a mapping" or "null", for messages. */
const char *sbi_node_kind_name(sbi_node_kind k);

/* Parse a non-negative decimal sequence index ("0", "12"); -1 if `s` is not one. */
long sbi_parse_index(const char *s);

#endif
