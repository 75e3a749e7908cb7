/* core/lib/run/merge.h — (internal) `serbench merge`: combine the results stores of shards
 * (their serbench.db rows and the feature and checkpoint files those rows name) into one.
 *
 * Rules (docs/store.md, "Merging stores"):
 *   - Every store (each source, and the destination when it exists) must have this
 *     serbench's schema version; sources are opened read-only (immutable when they have no
 *     write-ahead log) and never changed.
 *   - A source's shard.json (written by --shard/--items) must say complete: true, unless
 *     `partial`; the config_ids of the sources' shard.json, the destination's shard.json and
 *     every config_id its merge.json records (all it has ever merged) must be one, unless
 *     `allow_mixed`; merge.json keeps their union.
 *   - A row whose key is new to the destination is added. A row whose key is there compares
 *     its content columns (timestamps and durations are not content): equal → already there;
 *     different → a conflict, except for the documented precedence rules (a complete run
 *     beats a failed or running one, with its metrics and predictions; a complete stage
 *     beats a running one; a different cached file hash for the same path is a stale cache
 *     entry, not a conflict; a feature item stored in another chunk file with the same
 *     tensor bytes is already there).
 *   - Sources are merged in the order given, each against the destination as the earlier
 *     ones left it, in one destination transaction: with any conflict, error (or `dry_run`) it is
 *     rolled back, the files put in place are removed and the folders the merge created too.
 *     An existing destination database is locked (BEGIN IMMEDIATE) before it is read and is
 *     never deleted; without one, the merge builds its own in a temporary folder and links
 *     it to DST/serbench.db as the commit (if one appeared meanwhile, it merges again into it).
 *   - Feature chunk and checkpoint files the merged rows need are hard-linked (same file
 *     system) or copied under temporary names, put in place, merge.json is staged, and only
 *     then is the transaction committed (merge.json is renamed after it: a failure there is
 *     a warning). A file of the same name with different bytes is a conflict (a replaced
 *     run's checkpoint is replaced with it).
 * Merging the same sources again adds nothing (idempotent). Not thread-safe with another
 * merge into the same destination (it takes the destination's write lock for its duration). */
#ifndef SBI_MERGE_H
#define SBI_MERGE_H

#include <jansson.h>
#include <serbench/serbench.h>

typedef struct sbi_merge_opts {
    const char *const *srcs; /* results folders to merge from, in order */
    size_t n_srcs;
    const char *into; /* destination results folder (created if absent) */
    int dry_run;      /* check and count everything, write nothing */
    int allow_mixed;  /* accept sources (and destination) of different config_ids */
    int partial;      /* accept shards whose shard.json says complete: false */
} sbi_merge_opts;

/* Merge o->srcs into o->into. *report (caller frees with json_decref; set whenever the
 * stores could be read, also on a conflict) is
 *   {"into", "sources": [...], "config_id" (or null), "dry_run", "written",
 *    "tables": {TABLE: {"added", "replaced", "already_there", "conflicts"}},
 *    "files": {"copied", "linked", "already_there"},
 *    "conflicts": [{"table", "key", "sources": [folders holding the key]}] (the first 1000),
 *    "n_conflicts" (all of them),
 *    "warnings": [text]}
 * ("replaced": rows that lost to a precedence rule — a failed run to a complete one — and,
 * for item_failures, destination failures deleted because a merged label answers them; a
 * source failure a label answers is not added and counts "already_there").
 * Errors (nothing merged in every case; a merge.json that cannot be renamed into place after
 * the commit is a warning, not an error): SB_ERR_USAGE (no source, a source that is the
 * destination), SB_ERR_IO/SB_ERR_STORE naming a source without a store or with a row naming
 * a missing file, SB_ERR_SCHEMA naming a store of another schema version, SB_ERR_CONFIG
 * naming the shards of different config_ids, SB_ERR_INVALID naming an incomplete shard,
 * SB_ERR_STORE "N conflicts" (listed in the report). */
sb_status sbi_merge(const sbi_merge_opts *o, json_t **report, sb_error *err);

#endif
