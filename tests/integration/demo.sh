#!/usr/bin/env bash
# End to end: the demo config through runtime-loaded plugins; accuracy far above chance;
# a rerun recomputes nothing; report formats; exports; dry run; shards; jobs.
. "$(dirname "$0")/lib.sh"
export SERBENCH_DEMO_DIR=$(demo_corpus)
CFG=$SB_SOURCE_ROOT/configs/demo.yaml
R=$T/results

run_sb $T/run1 run "$CFG" --results "$R"
expect_exit 0 $T/run1
expect_in $T/run1.out "| fbank + linear (human labels) |"
expect_in $T/run1.out "(3)"

# Accuracy far above chance (4 balanced classes: chance 25 %), from the JSON report.
run_sb $T/rep report "$CFG" --results "$R" --format json
expect_exit 0 $T/rep
wa=$(jq '.rows[0].cells[0].mean' $T/rep.out)
n=$(jq '.rows[0].cells[0].n' $T/rep.out)
[ "$n" = 3 ] || fail "want 3 seeds, got $n"
awk -v w="$wa" 'BEGIN { exit !(w > 0.5) }' || fail "demo accuracy $wa is not far above chance (0.25)"
ok

# Seeds differ (sd > 0 or at least the runs are distinct ids).
[ "$(sqlite3 "$R/serbench.db" "SELECT count(DISTINCT run_id) FROM runs WHERE status='complete'")" = 3 ] || fail "3 runs"
ok

# A rerun recomputes nothing: same finished timestamps, no new feature files, says so.
before=$(sqlite3 "$R/serbench.db" "SELECT group_concat(finished) FROM runs ORDER BY run_id")
files_before=$(find "$R/features" -type f | sort | xargs sha256sum)
run_sb $T/run2 run "$CFG" --results "$R"
expect_exit 0 $T/run2
expect_in $T/run2.err "all 3 selected runs are complete"
expect_not_in $T/run2.err "to compute"
after=$(sqlite3 "$R/serbench.db" "SELECT group_concat(finished) FROM runs ORDER BY run_id")
[ "$before" = "$after" ] || fail "runs were recomputed"
[ "$files_before" = "$(find "$R/features" -type f | sort | xargs sha256sum)" ] || fail "features rewritten"
ok
cmp <(grep '^|' $T/run1.out) <(grep '^|' $T/run2.out) || fail "table changed on rerun"
ok

# Determinism: a fresh store gives bitwise the same metrics.
run_sb $T/run3 run "$CFG" --results "$T/results2" --quiet
expect_exit 0 $T/run3
m1=$(sqlite3 "$R/serbench.db" "SELECT group_concat(run_id||metric||printf('%.17g',value)) FROM (SELECT * FROM metrics ORDER BY run_id, metric)")
m2=$(sqlite3 "$T/results2/serbench.db" "SELECT group_concat(run_id||metric||printf('%.17g',value)) FROM (SELECT * FROM metrics ORDER BY run_id, metric)")
[ "$m1" = "$m2" ] || fail "metrics differ between two fresh runs of the same config"
ok

# --force recomputes the runs (not the features).
run_sb $T/run4 run "$CFG" --results "$R" --force
expect_exit 0 $T/run4
expect_in $T/run4.err "3 complete, 0 failed"
expect_not_in $T/run4.err "to compute"

# Report formats.
for f in md csv tex json; do
  run_sb $T/rep_$f report "$CFG" --results "$R" --format $f
  expect_exit 0 $T/rep_$f
done
expect_in $T/rep_md.out "| run | demo/test wa |"
expect_in $T/rep_csv.out "run,demo/test wa,demo/test ua"
expect_in $T/rep_tex.out "\\toprule"
expect_in $T/rep_tex.out "\$\\pm\$"
jq -e '.columns | length == 4' $T/rep_json.out >/dev/null || fail "json columns"
ok
run_sb $T/rep_bad report "$CFG" --results "$R" --format pdf
expect_exit 2 $T/rep_bad

# Exports.
run_sb $T/exp_p export predictions "$CFG" --results "$R" --out $T/pred.csv
expect_exit 0 $T/exp_p
[ "$(($(wc -l < $T/pred.csv) - 1))" = 120 ] || fail "want 3 seeds x 40 test predictions"
ok
awk -F, 'NR > 1 && $9 != "" && $10 != "" {n++} END {exit !(n == 120)}' $T/pred.csv || fail "class names missing in the export"
ok
run_sb $T/exp_m export metrics "$CFG" --results "$R" --out $T/met.csv
expect_exit 0 $T/exp_m
head -1 $T/met.csv | grep -q "^run_id,group_id,seed,run,test,metric,value,n" || fail "metrics header"
ok

# The predictions agree with the stored WA of each run.
for run in $(sqlite3 "$R/serbench.db" "SELECT run_id FROM runs"); do
  acc=$(sqlite3 "$R/serbench.db" "SELECT printf('%.6f', avg(gold = pred)) FROM predictions WHERE run_id='$run'")
  wa=$(sqlite3 "$R/serbench.db" "SELECT printf('%.6f', value) FROM metrics WHERE run_id='$run' AND metric='wa'")
  [ "$acc" = "$wa" ] || fail "run $run: predictions give $acc, stored wa $wa"
done
ok

# Dry run lists runs with their status and writes nothing.
run_sb $T/dry run "$CFG" --results "$T/none" --dry-run seeds=[1,2,3,4,5]
expect_exit 0 $T/dry
expect_in $T/dry.out "5 of 5 runs"
[ ! -e "$T/none" ] || fail "dry run created the results folder"
ok

# Shards: 2 shards of 5 seeds take 3 + 2 runs, together all 5, in one store.
run_sb $T/sh1 run "$CFG" --results "$T/sh" --shard 1/2 seeds=[1,2,3,4,5] --quiet
run_sb $T/sh2 run "$CFG" --results "$T/sh" --shard 2/2 seeds=[1,2,3,4,5] --quiet
expect_exit 0 $T/sh1
expect_exit 0 $T/sh2
[ "$(sqlite3 "$T/sh/serbench.db" "SELECT count(*) FROM runs WHERE status='complete'")" = 5 ] || fail "shards"
ok
run_sb $T/shbad run "$CFG" --shard 3/2
expect_exit 2 $T/shbad

# --jobs 2 gives the same metrics as one job.
run_sb $T/j2 run "$CFG" --results "$T/results3" --jobs 2 --threads 2 --quiet
expect_exit 0 $T/j2
m3=$(sqlite3 "$T/results3/serbench.db" "SELECT group_concat(run_id||metric||printf('%.6f',value)) FROM (SELECT * FROM metrics ORDER BY run_id, metric)")
m1b=$(sqlite3 "$R/serbench.db" "SELECT group_concat(run_id||metric||printf('%.6f',value)) FROM (SELECT * FROM metrics ORDER BY run_id, metric)")
[ "$m3" = "$m1b" ] || fail "--jobs 2 changed the results"
ok

# Provenance is stored with each run.
sqlite3 "$R/serbench.db" "SELECT provenance FROM runs LIMIT 1" | jq -e '.plugins.fbank.file_hash and .serbench and .blas and .host' >/dev/null || fail "provenance"
ok
# The corpus command.
run_sb $T/corpus corpus "$CFG"
expect_exit 0 $T/corpus
expect_in $T/corpus.out "demo (manifest, label space demo-4class): 240 utterances"

# The demo as scripts/demo runs it: human labels against LLM labels written from the
# transcripts, here through the local test server (as when no endpoint is configured).
/usr/bin/python3 "$SB_SOURCE_ROOT/tests/llm-server/llm_server.py" --port 0 \
  --port-file "$T/llm.port" 2>"$T/llm.err" &
llm_pid=$!
trap 'kill $llm_pid 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 100); do [ -s "$T/llm.port" ] && break; sleep 0.1; done
[ -s "$T/llm.port" ] || fail "test server did not start"
export SERBENCH_LLM_BASE_URL="http://127.0.0.1:$(cat "$T/llm.port")/v1"
run_sb $T/llmdemo run "$SB_SOURCE_ROOT/configs/demo-llm.yaml" --results "$T/rl"
expect_exit 0 $T/llmdemo
expect_in $T/llmdemo.out "| labels | demo/test wa |"   # a column per row key (the sweep key)
expect_in $T/llmdemo.out "| human | "
expect_in $T/llmdemo.out "| llm | "
# The LLM labels the training split only (160 utterances), each with the server's model
# recorded in its provenance.
expect_in $T/llmdemo.err "labels llm on demo/train"
expect_in $T/llmdemo.err "160 labelled, 0 invalid, 0 failed"
[ "$(sqlite3 "$T/rl/serbench.db" "SELECT count(*) FROM labels WHERE json_extract(detail, '$.model') = 'serbench-test'")" = 160 ] ||
  fail "160 LLM labels with provenance"
ok
grep -q "no LLM endpoint configured" "$SB_SOURCE_ROOT/scripts/demo" || fail "scripts/demo must say when it uses the test server"
ok
done_ok
