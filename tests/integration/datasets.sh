#!/usr/bin/env bash
# The four corpus plugins end to end on generated trees in their real layouts: each example
# config runs through the CLI, `serbench corpus` reports what each tree holds (protocol,
# notes on its defects), and a model trained on MELD's 7 emotions is tested on IEMOCAP's 4
# classes through the shipped label map.
. "$(dirname "$0")/lib.sh"
export IEMOCAP_GEN_DIR=$(gen_once iemocap make-iemocap-corpus)
export MELD_GEN_DIR=$(gen_once meld make-meld-corpus)
export MOSI_GENERATED_DIR=$(gen_once mosi make-mosi-corpus --layout mmsa)
EX=$SB_SOURCE_ROOT/configs/examples
above() { awk -v x="$1" -v y="$2" 'BEGIN { exit !(x > y) }'; }

# IEMOCAP: two LOSO folds, one seed, fewer epochs (a smoke run of the example).
run_sb $T/iem run $EX/iemocap-generated.yaml --results $T/r seeds=[1] 'sweep={datasets.iemocap.fold: [1, 2]}' heads.linear.epochs=30
expect_exit 0 $T/iem
expect_in $T/iem.out "| fold | "   # report.rows: [datasets.iemocap.fold], a column per row key
expect_in $T/iem.out "| 1 | "
expect_in $T/iem.out "| 2 | "
ua=$(sqlite3 $T/r/serbench.db "SELECT avg(value) FROM metrics WHERE metric='ua'")
above "$ua" 0.4 || fail "IEMOCAP UA $ua not above chance (0.25)"
ok
run_sb $T/iemc corpus $EX/iemocap-generated.yaml
expect_exit 0 $T/iemc
expect_in $T/iemc.out "protocol: iemocap-4class-loso"
expect_in $T/iemc.out "dev_split:"

# MELD: the tree's defects are notes (not failures); the run skips them by policy.
run_sb $T/meldc corpus $EX/meld-generated.yaml
expect_exit 0 $T/meldc
expect_in $T/meldc.out "note: train/dia125_utt3"
expect_in $T/meldc.out "note: dev/dia110_utt7"
run_sb $T/meld run $EX/meld-generated.yaml --results $T/r seeds=[1]
expect_exit 0 $T/meld
expect_in $T/meld.err "skipped (on_missing_audio: skip)"
expect_in $T/meld.out "meld/test"
# Without the policy, the feature stage stops and names the utterances.
run_sb $T/meld2 run $EX/meld-generated.yaml --results $T/r seeds=[1] datasets.meld.on_missing_audio=error
expect_exit 2 $T/meld2
expect_in $T/meld2.err "on_missing_audio: skip"

# MELT: human vs LLM training labels on the same audio.
run_sb $T/melt run $EX/melt-generated.yaml --results $T/r seeds=[1]
expect_exit 0 $T/melt
# MOSI: Acc-2 (non0) classes.
run_sb $T/mosi run $EX/mosi-generated.yaml --results $T/r seeds=[1]
expect_exit 0 $T/mosi
wa=$(sqlite3 $T/r/serbench.db "SELECT avg(value) FROM metrics WHERE metric='wa' AND test LIKE 'mosi%'")
above "$wa" 0.6 || fail "MOSI WA $wa"
ok

# Cross-corpus: train on MELD 7 emotions, test on MELD and on IEMOCAP 4-class (fold 1 test).
cat > $T/cross.yaml <<YAML
include: [$SB_SOURCE_ROOT/configs/base/label_maps.yaml]
datasets:
  meld: {plugin: meld, root: "$MELD_GEN_DIR/MELD.Raw", on_missing_audio: skip}
  iemocap: {plugin: iemocap, root: "$IEMOCAP_GEN_DIR/IEMOCAP_full_release", protocol: iemocap-4class-loso}
heads:
  linear: {plugin: linear, epochs: 30}
experiment:
  train: {dataset: meld, split: train}
  dev: {dataset: meld, split: dev}
  test:
    - {dataset: meld, split: test}
    - {dataset: iemocap, split: test, label_map: meld7-to-iemocap4}
  encoder: fbank
  head: linear
YAML
run_sb $T/cross run $T/cross.yaml --results $T/r
expect_exit 0 $T/cross
expect_in $T/cross.out "iemocap/test ua"
prov=$(sqlite3 $T/r/serbench.db "SELECT provenance FROM runs WHERE config LIKE '%meld7-to-iemocap4%'")
[ "$(echo "$prov" | jq -c '.tests["iemocap/test"].classes')" = '["neu","hap","ang","sad"]' ] || fail "scored in IEMOCAP's classes"
[ "$(echo "$prov" | jq '.tests["iemocap/test"].dropped_by_map')" = 0 ] || fail "every IEMOCAP class is reachable"
ok
# The whole of IEMOCAP as a test set: the reserved split name `all` (MELT tests on every
# session): more items than the fold's test session, and all four classes.
run_sb $T/crossall run $T/cross.yaml --results $T/r 'experiment.test=[{dataset: iemocap, split: all, name: iemocap/all, label_map: meld7-to-iemocap4}]'
expect_exit 0 $T/crossall
n_all=$(sqlite3 $T/r/serbench.db "SELECT max(n) FROM metrics WHERE test='iemocap/all'")
n_test=$(sqlite3 $T/r/serbench.db "SELECT max(n) FROM metrics WHERE test='iemocap/test'")
[ -n "$n_all" ] && [ "$n_all" -gt "$n_test" ] || fail "split: all scored $n_all items, the test fold $n_test"
ok
echo "IEMOCAP as a whole test set (split: all): $n_all items scored, the fold's test session $n_test"
done_ok
