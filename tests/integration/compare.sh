#!/usr/bin/env bash
# serbench compare end to end: the demo config run with two heads (linear and a small mlp,
# three seeds each), compared as groups, single runs and prefixes. Checks the JSON fields
# against the store's own metrics, a system compared with itself (diff 0, p 1, b = c = 0),
# reproducibility for a seed, and each exit-2 case on doctored copies of the store: unknown,
# short and ambiguous ids, a failed run, a regression run, another label space, no common
# items, and bad flags.
. "$(dirname "$0")/lib.sh"
export SERBENCH_DEMO_DIR=$(demo_corpus)
CFG=$T/compare.yaml
cat >"$CFG" <<YAML
include: $SB_SOURCE_ROOT/configs/demo.yaml
heads:
  mlp: {plugin: mlp, hidden: [32], epochs: 30, lr: 3.0e-3, batch_size: 16, patience: 10}
sweep:
  experiment.head: [linear, mlp]
YAML
R=$T/results
DB=$R/serbench.db

run_sb $T/run run "$CFG" --results "$R" --quiet
expect_exit 0 $T/run
q() { sqlite3 "$DB" "$@"; }
GL=$(q "SELECT DISTINCT group_id FROM runs WHERE json_extract(config,'$.experiment.head')='linear'")
GM=$(q "SELECT DISTINCT group_id FROM runs WHERE json_extract(config,'$.experiment.head')='mlp'")
RL1=$(q "SELECT run_id FROM runs WHERE group_id='$GL' AND seed=1")
RM1=$(q "SELECT run_id FROM runs WHERE group_id='$GM' AND seed=1")
[ ${#GL} = 32 ] && [ ${#GM} = 32 ] && [ ${#RL1} = 32 ] || fail "groups/runs not found: '$GL' '$GM' '$RL1'"
ok

# numeric comparison with a tolerance: close A B [TOL]
close() { awk -v a="$1" -v b="$2" -v t="${3:-1e-12}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }' ||
  fail "$1 != $2 (tolerance ${3:-1e-12}) $4"; ok; }

# ---- groups: linear vs mlp, all three seeds ----------------------------------------------
run_sb $T/g compare "$CFG" "$GL" "$GM" --results "$R" --json --metric wa
expect_exit 0 $T/g
J=$T/g.out
[ "$(jq -r '.metric' $J)" = wa ] || fail "metric"
[ "$(jq -r '.a.kind + "/" + .b.kind' $J)" = group/group ] || fail "kinds: $(jq -c '[.a.kind,.b.kind]' $J)"
[ "$(jq -r '.a.system' $J)" = "fbank + linear" ] || fail "system A: $(jq -r .a.system $J)"
[ "$(jq '.a.runs | length' $J)" = 3 ] && [ "$(jq '.b.runs | length' $J)" = 3 ] || fail "3 runs a side"
[ "$(jq -r '.tests[0].test' $J)" = demo/test ] || fail "test name"
[ "$(jq '.tests | length' $J)" = 1 ] || fail "one test set"
[ "$(jq '.tests[0].n' $J)" = 40 ] && [ "$(jq '.tests[0].classes' $J)" = 4 ] || fail "n 40, 4 classes"
[ "$(jq '.resamples' $J)" = 1000 ] && [ "$(jq '.seed' $J)" = 0 ] || fail "default resamples/seed"
ok
# score_a/score_b are the seeds' mean of the metric the run itself stored
for side in a:$GL b:$GM; do
  s=${side%%:*} g=${side#*:}
  want=$(q "SELECT printf('%.17g', avg(value)) FROM metrics WHERE metric='wa' AND test='demo/test' AND run_id IN (SELECT run_id FROM runs WHERE group_id='$g')")
  close "$(jq ".tests[0].score_$s" $J)" "$want" 1e-12 "score_$s vs the store's metrics"
done
close "$(jq '.tests[0].diff' $J)" "$(jq '.tests[0].score_a - .tests[0].score_b' $J)" 1e-15 "diff"
jq -e '.tests[0] | .ci_lo <= .ci_hi and .p_bootstrap >= 0 and .p_bootstrap <= 1' $J >/dev/null || fail "CI order / p range"
jq -e '.tests[0] | (.significant == (.p_bootstrap < 0.05))' $J >/dev/null || fail "significant flag"
ok
# McNemar: one pair per seed, matched by seed; b + c never exceeds n
[ "$(jq -c '[.tests[0].mcnemar[] | [.seed_a, .seed_b]]' $J)" = "[[1,1],[2,2],[3,3]]" ] ||
  fail "seed pairs: $(jq -c '[.tests[0].mcnemar[] | [.seed_a, .seed_b]]' $J)"
jq -e '[.tests[0].mcnemar[] | (.b + .c <= .n and .p_exact > 0 and .p_exact <= 1)] | all' $J >/dev/null || fail "mcnemar fields"
# b and c recomputed from the predictions table for seed 1
RM1_B=$(q "SELECT count(*) FROM predictions a JOIN predictions b ON a.utt_id=b.utt_id AND a.test=b.test WHERE a.run_id='$RL1' AND b.run_id='$RM1' AND a.pred=a.gold AND b.pred<>b.gold")
RM1_C=$(q "SELECT count(*) FROM predictions a JOIN predictions b ON a.utt_id=b.utt_id AND a.test=b.test WHERE a.run_id='$RL1' AND b.run_id='$RM1' AND a.pred<>a.gold AND b.pred=b.gold")
[ "$(jq '.tests[0].mcnemar[0].b' $J)" = "$RM1_B" ] && [ "$(jq '.tests[0].mcnemar[0].c' $J)" = "$RM1_C" ] ||
  fail "seed 1 McNemar b/c $(jq -c '.tests[0].mcnemar[0] | [.b,.c]' $J), SQL says $RM1_B/$RM1_C"
ok

# the text form says the same
run_sb $T/gt compare "$CFG" "$GL" "$GM" --results "$R" --metric wa
expect_exit 0 $T/gt
expect_in $T/gt.out "demo/test: 40 items both predicted (A 40, B 40), 4 classes"
expect_in $T/gt.out "McNemar    seed 1: b = $RM1_B, c = $RM1_C"
if jq -e '.tests[0].significant' $J >/dev/null; then expect_in $T/gt.out "significant at alpha 0.05"
else expect_in $T/gt.out "not significant at alpha 0.05"; fi

# reproducible for a seed; another seed draws other resamples
run_sb $T/g2 compare "$CFG" "$GL" "$GM" --results "$R" --json --metric wa
cmp -s $T/g.out $T/g2.out || fail "two runs of the same compare differ"
ok
run_sb $T/g3 compare "$CFG" "$GL" "$GM" --results "$R" --json --metric wa --seed 7 --resamples 500 --alpha 0.1
expect_exit 0 $T/g3
[ "$(jq -c '[.seed, .resamples, .alpha]' $T/g3.out)" = "[7,500,0.1]" ] || fail "flags not taken: $(jq -c '[.seed,.resamples,.alpha]' $T/g3.out)"
[ "$(jq '.tests[0].diff' $T/g3.out)" = "$(jq '.tests[0].diff' $J)" ] || fail "the observed diff depends on the seed"
[ "$(jq -c '.tests[0] | [.ci_lo, .ci_hi, .p_bootstrap]' $T/g3.out)" != "$(jq -c '.tests[0] | [.ci_lo, .ci_hi, .p_bootstrap]' $J)" ] ||
  fail "another seed gave the same interval and p"
ok

# the default metric is the first of the config's experiment.metrics (wa)
run_sb $T/gd compare "$CFG" "$GL" "$GM" --results "$R" --json
[ "$(jq -r .metric $T/gd.out)" = wa ] || fail "default metric $(jq -r .metric $T/gd.out)"
ok
run_sb $T/gu compare "$CFG" "$GL" "$GM" --results "$R" --json --metric ua
[ "$(jq -r .metric $T/gu.out)" = ua ] || fail "--metric ua"
ok

# ---- single runs, by prefix; a run and a group against themselves --------------------------
run_sb $T/r compare "$CFG" "${RL1:0:8}" "${RM1:0:10}" --results "$R" --json
expect_exit 0 $T/r
[ "$(jq -r '.a.kind + " " + .a.runs[0].run_id + " " + .b.runs[0].run_id' $T/r.out)" = "run $RL1 $RM1" ] || fail "prefix resolution"
[ "$(jq '.tests[0].mcnemar | length' $T/r.out)" = 1 ] || fail "one McNemar pair for two runs"
ok
for self in "$RL1" "$GM"; do
  run_sb $T/self compare "$CFG" "$self" "$self" --results "$R" --json
  expect_exit 0 $T/self
  jq -e '.tests[0] | .diff == 0 and .p_bootstrap == 1 and .ci_lo == 0 and .ci_hi == 0 and (.significant | not)' $T/self.out >/dev/null ||
    fail "self-compare of $self: $(jq -c '.tests[0] | [.diff,.p_bootstrap,.ci_lo,.ci_hi]' $T/self.out)"
  jq -e '[.tests[0].mcnemar[] | (.b == 0 and .c == 0 and .p_exact == 1)] | all' $T/self.out >/dev/null ||
    fail "self-compare McNemar: $(jq -c '.tests[0].mcnemar' $T/self.out)"
  ok
done

# ---- exit 2 ----------------------------------------------------------------------------
bad() { # bad NAME EXPECTED-TEXT ARGS...
  local name=$1 text=$2; shift 2
  run_sb $T/$name compare "$@"
  expect_exit 2 $T/$name
  expect_in $T/$name.err "$text"
}
bad unknown "no run or group id" "$CFG" 0123abcd "$GM" --results "$R"
bad short "is not a run or group id" "$CFG" abc "$GM" --results "$R"
bad onlyone "two run or group ids" "$CFG" "$GM" --results "$R"
bad metric "is not a classification metric" "$CFG" "$GL" "$GM" --results "$R" --metric mae
bad test "--test meld/test: not a test set both A and B were scored on (common: demo/test)" "$CFG" "$GL" "$GM" --results "$R" --test meld/test
bad alpha "--alpha expects" "$CFG" "$GL" "$GM" --results "$R" --alpha 1.5
bad resamples "--resamples expects" "$CFG" "$GL" "$GM" --results "$R" --resamples 0
bad seed "--seed expects an integer from 0 to 2^53" "$CFG" "$GL" "$GM" --results "$R" --seed 18446744073709551615

# doctored copies: clone RUN NEWID GROUP [SQL SET clause for runs] [SQL WHERE for predictions] [utt suffix]
clone() {
  local src=$1 id=$2 group=$3 set=${4:-} where=${5:-1} suffix=${6:-}
  q "INSERT INTO runs SELECT '$id', '$group', seed, config, status, error, created, started, finished, seconds, inputs_key, provenance FROM runs WHERE run_id='$src';
     INSERT INTO predictions SELECT '$id', test, utt_id || '$suffix', gold, pred, probs FROM predictions WHERE run_id='$src' AND ($where);"
  [ -z "$set" ] || q "UPDATE runs SET $set WHERE run_id='$id'"
}
X=$(printf 'e%.0s' {1..24})
clone "$RL1" "${RL1:0:8}$X" "dddddddd$X"
bad ambiguous "is ambiguous: it starts 2 run ids" "$CFG" "${RL1:0:8}" "$GM" --results "$R"
run_sb $T/longer compare "$CFG" "${RL1:0:12}" "$GM" --results "$R" --json
expect_exit 0 $T/longer
[ "$(jq -r '.a.runs[0].run_id' $T/longer.out)" = "$RL1" ] || fail "12 digits resolve the ambiguity"
ok

clone "$RL1" "aaaaaaaa$X" "aaaaaaaa$X" "status='failed', error='boom'"
bad failed "run aaaaaaaa$X is failed: boom" "$CFG" aaaaaaaa "$GM" --results "$R"
clone "$RL1" "bbbbbbbb$X" "bbbbbbbb$X" "provenance=json_set(provenance, '$.target', 'value')"
bad regression "is a regression run" "$CFG" bbbbbbbb "$GM" --results "$R"
clone "$RL1" "cccccccc$X" "cccccccc$X" "provenance=json_set(provenance, '$.label_space', 'other-4class')"
bad labelspace "runs of different label spaces" "$CFG" cccccccc "$GM" --results "$R"
clone "$RL1" "ffffffff$X" "ffffffff$X" "" 1 "-renamed"
bad nocommon "no common items" "$CFG" ffffffff "$GM" --results "$R"

# a run that predicted only some items: compared on those both predicted
clone "$RL1" "99999999$X" "99999999$X" "" "utt_id IN (SELECT utt_id FROM predictions WHERE run_id='$RL1' ORDER BY utt_id LIMIT 15)"
run_sb $T/part compare "$CFG" 99999999 "$RM1" --results "$R" --json
expect_exit 0 $T/part
[ "$(jq -c '.tests[0] | [.n, .n_a, .n_b]' $T/part.out)" = "[15,15,40]" ] || fail "partial overlap: $(jq -c '.tests[0] | [.n,.n_a,.n_b]' $T/part.out)"
ok

echo "linear vs mlp (wa): $(jq -c '.tests[0] | {score_a, score_b, ci_lo, ci_hi, p_bootstrap}' $J)"
done_ok
