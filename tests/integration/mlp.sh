#!/usr/bin/env bash
# End to end: the demo config with the mlp head (experiment.head=mlp, a heads.mlp block from
# a small config that includes demo.yaml); accuracy far above chance, and a rerun of the same
# config in a fresh store gives bitwise the same metrics.
. "$(dirname "$0")/lib.sh"
export SERBENCH_DEMO_DIR=$(demo_corpus)
CFG=$T/mlp.yaml
cat >"$CFG" <<YAML
include: $SB_SOURCE_ROOT/configs/demo.yaml
heads:
  mlp: {plugin: mlp, hidden: [64], dropout: 0.1, epochs: 60, lr: 3.0e-3, batch_size: 16,
        patience: 15, warmup: 0.05, clip: 1.0}
YAML
R=$T/results

run_sb $T/run1 run "$CFG" --results "$R" experiment.head=mlp
expect_exit 0 $T/run1
expect_in $T/run1.out "| fbank + mlp (human labels) |"

# Accuracy far above chance (4 balanced classes: chance 25 %), from the JSON report.
run_sb $T/rep report "$CFG" --results "$R" --format json experiment.head=mlp
expect_exit 0 $T/rep
wa=$(jq '.rows[0].cells[0].mean' $T/rep.out)
n=$(jq '.rows[0].cells[0].n' $T/rep.out)
[ "$n" = 3 ] || fail "want 3 seeds, got $n"
awk -v w="$wa" 'BEGIN { exit !(w > 0.5) }' || fail "mlp demo accuracy $wa is not far above chance (0.25)"
ok
echo "mlp demo accuracy (wa, mean of 3 seeds): $wa"

# Three complete runs, and the head that ran is the mlp plugin (in each run's provenance).
[ "$(sqlite3 "$R/serbench.db" "SELECT count(*) FROM runs WHERE status='complete'")" = 3 ] || fail "3 complete runs"
ok
sqlite3 "$R/serbench.db" "SELECT provenance FROM runs LIMIT 1" | jq -e '.plugins.mlp.file_hash' >/dev/null ||
  fail "the mlp plugin is not in the provenance"
ok

# Determinism: a fresh store gives bitwise the same metrics.
run_sb $T/run2 run "$CFG" --results "$T/results2" --quiet experiment.head=mlp
expect_exit 0 $T/run2
m1=$(sqlite3 "$R/serbench.db" "SELECT group_concat(run_id||metric||printf('%.17g',value)) FROM (SELECT * FROM metrics ORDER BY run_id, metric)")
m2=$(sqlite3 "$T/results2/serbench.db" "SELECT group_concat(run_id||metric||printf('%.17g',value)) FROM (SELECT * FROM metrics ORDER BY run_id, metric)")
[ "$m1" = "$m2" ] || fail "metrics differ between two fresh runs of the same config"
ok

# The same with 2 BLAS threads, twice: bitwise the same metrics for that thread count too.
metrics() { sqlite3 "$1/serbench.db" "SELECT group_concat(run_id||metric||printf('%.17g',value)) FROM (SELECT * FROM metrics ORDER BY run_id, metric)"; }
run_sb $T/t2a run "$CFG" --results "$T/t2a" --threads 2 --quiet experiment.head=mlp
run_sb $T/t2b run "$CFG" --results "$T/t2b" --threads 2 --quiet experiment.head=mlp
expect_exit 0 $T/t2a
expect_exit 0 $T/t2b
[ "$(metrics $T/t2a)" = "$(metrics $T/t2b)" ] || fail "metrics differ between two runs with 2 threads"
ok

# A bad hidden width is reported with the place it was set.
run_sb $T/bad run "$CFG" --results "$T/results3" experiment.head=mlp 'heads.mlp.hidden=[64,0]'
[ "$(cat $T/bad.rc)" != 0 ] || fail "hidden: [64, 0] accepted"
expect_in $T/bad.err "hidden: item 2"
done_ok
