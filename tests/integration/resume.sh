#!/usr/bin/env bash
# A run killed with SIGKILL part-way (during feature extraction, then during training) and
# started again finishes with the same results as an uninterrupted run and recomputes
# nothing that had completed.
. "$(dirname "$0")/lib.sh"
export SERBENCH_DEMO_DIR=$(demo_corpus)
CFG=$T/slow.yaml
cat > $CFG <<YAML
include: [$SB_SOURCE_ROOT/configs/demo.yaml]
plugin_path: [$SB_FIXTURE_PLUGINS]
encoders:
  slow: {plugin: slowenc, delay_ms: 15}
heads:
  linear: {plugin: linear, epochs: 3000, patience: 3000, lr: 1.0e-3}
experiment: {encoder: slow}
seeds: [1, 2, 3, 4, 5, 6]
YAML
R=$T/r
db() { sqlite3 "$R/serbench.db" "$1" 2>/dev/null || echo 0; }

# 1. Kill during feature extraction, after at least one chunk is stored.
"$SERBENCH" run $CFG --results $R --quiet >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 2000); do
  n=$(db "SELECT count(*) FROM features")
  [ "${n:-0}" -ge 64 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.01
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
stored=$(db "SELECT count(*) FROM features")
echo "killed with $stored feature items stored"
[ "$stored" -ge 64 ] && [ "$stored" -lt 240 ] || fail "kill did not land during extraction ($stored)"
ok
files_before=$(cd $R && find features -type f -name '*.safetensors' | sort | xargs sha256sum)
[ -z "$(find $R/features -name '*.tmp.*')" ] || true   # a temp file may remain; it is ignored

# 2. Resume: only the missing items are encoded; kill again once some runs completed.
"$SERBENCH" run $CFG --results $R >$T/resume.out 2>$T/resume.err &
pid=$!
for _ in $(seq 1 3000); do
  n=$(db "SELECT count(*) FROM runs WHERE status='complete'")
  [ "${n:-0}" -ge 2 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.01
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
computed=$(grep -o '[0-9]* to compute' $T/resume.err | awk '{s += $1} END {print s}')
[ "$computed" = $((240 - stored)) ] || fail "resume computed $computed items, want $((240 - stored))"
ok
# Feature files written before the first kill are untouched.
echo "$files_before" | (cd $R && sha256sum -c --quiet -) || fail "feature files changed"
ok
done_runs=$(db "SELECT count(*) FROM runs WHERE status='complete'")
echo "second kill with $done_runs runs complete"
[ "$done_runs" -ge 2 ] && [ "$done_runs" -lt 6 ] || echo "note: kill landed at $done_runs runs"
finished_before=$(db "SELECT group_concat(run_id||finished) FROM (SELECT * FROM runs WHERE status='complete' ORDER BY run_id)")

# 3. Finish: nothing encoded, completed runs untouched, the rest computed.
run_sb $T/fin run $CFG --results $R
expect_exit 0 $T/fin
expect_not_in $T/fin.err "to compute"
expect_in $T/fin.err "$((6 - done_runs)) complete, 0 failed, $done_runs already complete"
kept=$(db "SELECT group_concat(run_id||finished) FROM (SELECT * FROM runs WHERE status='complete' ORDER BY run_id)")
for x in $(echo "$finished_before" | tr ',' ' '); do
  echo "$kept" | grep -qF "$x" || fail "completed run $x was recomputed"
done
ok

# 4. Same results as an uninterrupted run.
run_sb $T/clean run $CFG --results $T/clean_r --quiet
expect_exit 0 $T/clean
q="SELECT group_concat(run_id||test||metric||printf('%.9g',value)) FROM (SELECT * FROM metrics ORDER BY run_id, test, metric)"
a=$(sqlite3 $R/serbench.db "$q"); b=$(sqlite3 $T/clean_r/serbench.db "$q")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "resumed results differ from an uninterrupted run"
ok
p="SELECT group_concat(run_id||utt_id||pred) FROM (SELECT * FROM predictions ORDER BY run_id, utt_id)"
[ "$(sqlite3 $R/serbench.db "$p")" = "$(sqlite3 $T/clean_r/serbench.db "$p")" ] || fail "predictions differ"
ok
# 5. A slow encoder writes its features every ~2 s, not only every 64 utterances, so an
# interruption loses little: kill as soon as anything is stored.
sed 's/delay_ms: 15/delay_ms: 250/' $CFG > $T/slower.yaml
"$SERBENCH" run $T/slower.yaml --results $T/r5 --quiet >/dev/null 2>&1 &
pid=$!
R=$T/r5
for _ in $(seq 1 1500); do
  n=$(db "SELECT count(*) FROM features")
  [ "${n:-0}" -ge 1 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.01
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
stored=$(db "SELECT count(*) FROM features")
echo "slow encoder killed with $stored items stored"
[ "$stored" -ge 1 ] && [ "$stored" -lt 20 ] || fail "time-based chunks: $stored items in the first chunk"
ok
done_ok
