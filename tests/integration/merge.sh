#!/usr/bin/env bash
# End to end: configs/demo.yaml's runs in two stores (--shard 1/2 and --shard 2/2, each its
# own --results), merged into a third; its report equals a single-process run's byte for
# byte (md and json), merging again changes nothing, and bad merges exit 2 writing nothing.
. "$(dirname "$0")/lib.sh"
export SERBENCH_DEMO_DIR=$(demo_corpus)
CFG=$SB_SOURCE_ROOT/configs/demo.yaml

run_sb $T/one run "$CFG" --results "$T/one" --quiet
expect_exit 0 $T/one
run_sb $T/s1 run "$CFG" --results "$T/s1" --shard 1/2 --quiet
expect_exit 0 $T/s1
run_sb $T/s2 run "$CFG" --results "$T/s2" --shard 2/2 --quiet
expect_exit 0 $T/s2
n1=$(sqlite3 "$T/s1/serbench.db" "SELECT count(*) FROM runs")
n2=$(sqlite3 "$T/s2/serbench.db" "SELECT count(*) FROM runs")
[ "$n1" -ge 1 ] && [ "$n2" -ge 1 ] && [ $((n1 + n2)) = 3 ] || fail "shards hold $n1 + $n2 runs, want 3 in all"
ok

# A dry run writes nothing, not even the destination folder.
run_sb $T/dry merge "$T/s1" "$T/s2" --into "$T/m" --dry-run
expect_exit 0 $T/dry
expect_in $T/dry.out "dry run: nothing written"
[ ! -e "$T/m" ] || fail "--dry-run created $T/m"
ok

run_sb $T/merge merge "$T/s1" "$T/s2" --into "$T/m" --json
expect_exit 0 $T/merge
[ "$(jq '.tables.runs.added' $T/merge.out)" = 3 ] || fail "want 3 runs added: $(cat $T/merge.out)"
ok
[ "$(jq '.tables.runs.conflicts + .tables.features.conflicts' $T/merge.out)" = 0 ] || fail "conflicts"
ok
# The shards computed the same features: the second's are already there.
[ "$(jq '.tables.features.already_there' $T/merge.out)" -gt 0 ] || fail "no shared features: $(cat $T/merge.out)"
ok

# Each run's checkpoint (the linear head keeps one) came along, byte for byte.
for rel in $(sqlite3 "$T/m/serbench.db" "SELECT json_extract(provenance, '$.checkpoint') FROM runs"); do
  { cmp -s "$T/m/$rel" "$T/s1/$rel" || cmp -s "$T/m/$rel" "$T/s2/$rel"; } || fail "checkpoint $rel not merged"
  ok
done
[ "$(ls "$T/m/checkpoints" | wc -l)" = 3 ] || fail "want 3 checkpoints in the merged store"
ok

for fmt in md json; do
  run_sb $T/rep1.$fmt report "$CFG" --results "$T/one" --format $fmt
  run_sb $T/repm.$fmt report "$CFG" --results "$T/m" --format $fmt
  expect_exit 0 $T/rep1.$fmt
  expect_exit 0 $T/repm.$fmt
  cmp -s $T/rep1.$fmt.out $T/repm.$fmt.out ||
    { diff $T/rep1.$fmt.out $T/repm.$fmt.out >&2; fail "merged report ($fmt) differs from the single-process one"; }
  ok
done
# The merged features are readable there: --force retrains every run from them (on a copy)
# to bitwise the same metrics, without encoding anything again.
metrics() { sqlite3 "$1/serbench.db" "SELECT group_concat(run_id||metric||printf('%.17g',value)) FROM (SELECT * FROM metrics ORDER BY run_id, metric)"; }
cp -r "$T/m" "$T/mf"
run_sb $T/force run "$CFG" --results "$T/mf" --force --quiet
expect_exit 0 $T/force
[ "$(metrics "$T/mf")" = "$(metrics "$T/m")" ] || fail "runs retrained from the merged features differ"
ok
[ "$(find "$T/mf/features" -name '*.safetensors' | wc -l)" = "$(find "$T/m/features" -name '*.safetensors' | wc -l)" ] ||
  fail "the rerun on the merged store encoded features again"
ok

# Merging again changes nothing: counts all 'already there', the folder byte for byte equal.
snap() { (cd "$1" && find . -type f ! -name '*-shm' ! -name '*-wal' | LC_ALL=C sort | xargs sha256sum); }
snap "$T/m" >$T/snap1
run_sb $T/again merge "$T/s1" "$T/s2" --into "$T/m" --json
expect_exit 0 $T/again
[ "$(jq '[.tables[] | .added + .replaced] | add' $T/again.out)" = 0 ] || fail "second merge added rows: $(cat $T/again.out)"
ok
[ "$(jq '.files.copied + .files.linked' $T/again.out)" = 0 ] || fail "second merge copied files"
ok
snap "$T/m" >$T/snap2
cmp -s $T/snap1 $T/snap2 || { diff $T/snap1 $T/snap2 >&2; fail "a second merge changed the store"; }
ok

# A conflict (the same run with another metric value): exit 2, named, nothing written.
cp -r "$T/s1" "$T/bad"
rid=$(sqlite3 "$T/bad/serbench.db" "SELECT run_id FROM runs LIMIT 1")
sqlite3 "$T/bad/serbench.db" "UPDATE metrics SET value = value / 2 WHERE run_id='$rid' AND metric='wa'"
run_sb $T/conf merge "$T/bad" --into "$T/m"
expect_exit 2 $T/conf
expect_in $T/conf.err "conflict: metrics run_id=$rid"
expect_in $T/conf.err "nothing was written"
snap "$T/m" >$T/snap3
cmp -s $T/snap1 $T/snap3 || fail "a conflicting merge changed the store"
ok

# A merge that fails (a conflict) or a --dry-run, racing a merge that creates and commits the
# destination's database meanwhile, leaves that database alone (strace holds the loser back
# 2 s at its first mkdir, after it has seen no database there).
if command -v strace >/dev/null && strace -f -o /dev/null -e inject=mkdir:delay_enter=1 true 2>/dev/null; then
  for race in conflict dry; do
    src=$T/bad extra=
    [ $race = dry ] && src=$T/s1 extra=--dry-run
    # LeakSanitizer cannot run under ptrace: the sanitizer build turns it off for this one
    ( ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        strace -f -o /dev/null -e trace=mkdir -e inject=mkdir:delay_enter=2000000 \
        "$SERBENCH" merge "$src" --into "$T/race-$race" $extra -q >$T/race-$race.out 2>$T/race-$race.err
      echo $? >$T/race-$race.rc ) &
    sleep 0.5
    run_sb $T/win-$race merge "$T/s1" "$T/s2" --into "$T/race-$race" -q
    expect_exit 0 $T/win-$race
    wait
    expect_exit $([ $race = dry ] && echo 0 || echo 2) $T/race-$race
    [ -f "$T/race-$race/serbench.db" ] &&
      [ "$(sqlite3 "$T/race-$race/serbench.db" "SELECT count(*) FROM runs")" = 3 ] ||
      fail "the racing $race merge deleted the database another merge committed: $(ls "$T/race-$race")"
    ok
  done
fi

# Shards of different configs (shard.json config_id), and an incomplete shard.
echo '{"config_id": "aaa", "kind": "runs", "index": 1, "count": 2, "complete": true}' >"$T/s1/shard.json"
echo '{"config_id": "bbb", "kind": "runs", "index": 2, "count": 2, "complete": true}' >"$T/s2/shard.json"
run_sb $T/mixed merge "$T/s1" "$T/s2" --into "$T/m2"
expect_exit 2 $T/mixed
expect_in $T/mixed.err "--allow-mixed"
[ ! -e "$T/m2" ] || fail "a refused merge created its destination"
ok
echo '{"config_id": "aaa", "kind": "runs", "index": 2, "count": 2, "complete": false}' >"$T/s2/shard.json"
run_sb $T/part merge "$T/s1" "$T/s2" --into "$T/m2"
expect_exit 2 $T/part
expect_in $T/part.err "incomplete shard"
expect_in $T/part.err "$T/s2"
run_sb $T/part2 merge "$T/s1" "$T/s2" --into "$T/m2" --partial
expect_exit 0 $T/part2

# The cluster recipe: label and encode sharded by utterance (--items), merged; an unsharded
# label + encode on the merged store marks the stages (nothing left to compute); runs sharded
# on stores started from it (--base: its database copied, features/ a symlink to its own),
# merged back. The report equals the single-process one.
R=$T/cluster
for i in 1 2; do
  run_sb $T/it$i label "$CFG" --items $i/2 --results "$T/items$i" --quiet
  expect_exit 0 $T/it$i
  run_sb $T/ie$i encode "$CFG" --items $i/2 --results "$T/items$i" --quiet
  expect_exit 0 $T/ie$i
done
run_sb $T/mi merge "$T/items1" "$T/items2" --into "$R" --json
expect_exit 0 $T/mi
[ "$(jq '.tables.features.added' $T/mi.out)" = 240 ] || fail "want the 240 items' features: $(cat $T/mi.out)"
ok
[ "$(jq '.tables.labels.added' $T/mi.out)" = 240 ] || fail "want 240 labels: $(cat $T/mi.out)"
ok
n_files=$(find "$R/features" -name '*.safetensors' | wc -l)
run_sb $T/ml label "$CFG" --results "$R" --quiet
expect_exit 0 $T/ml
run_sb $T/me encode "$CFG" --results "$R" --quiet
expect_exit 0 $T/me
[ "$(find "$R/features" -name '*.safetensors' | wc -l)" = "$n_files" ] || fail "encode after the items merge computed features"
ok
for i in 1 2; do
  run_sb $T/rs$i run "$CFG" --shard $i/2 --results "$T/runs$i" --base "$R" --quiet
  expect_exit 0 $T/rs$i
done
run_sb $T/mr merge "$T/runs1" "$T/runs2" --into "$R" --json
expect_exit 0 $T/mr
[ "$(jq '.tables.runs.added' $T/mr.out)" = 3 ] || fail "want 3 runs: $(cat $T/mr.out)"
ok
[ "$(jq '.files.copied' $T/mr.out)" = 0 ] || fail "features shared through --base were copied: $(cat $T/mr.out)"
ok
for fmt in md json; do
  run_sb $T/repc.$fmt report "$CFG" --results "$R" --format $fmt
  cmp -s $T/rep1.$fmt.out $T/repc.$fmt.out ||
    { diff $T/rep1.$fmt.out $T/repc.$fmt.out >&2; fail "cluster-recipe report ($fmt) differs from the single-process one"; }
  ok
done

# Usage errors.
run_sb $T/u1 merge "$T/s1"
expect_exit 2 $T/u1
expect_in $T/u1.err "--into"
run_sb $T/u2 merge "$T/nothing" --into "$T/m3"
expect_exit 2 $T/u2
expect_in $T/u2.err "no results store"
done_ok
