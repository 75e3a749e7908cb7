#!/usr/bin/env bash
# The llm labeller end to end against the local OpenAI-compatible test server
# (tests/llm-server/llm_server.py) on the real MELD CSVs, text only:
#  - `serbench label --plan` prints requests, tokens, cost and a rendered prompt, sends nothing;
#  - MELD dev with the MELT-style context prompt: labels equal the server's deterministic
#    answers, confidence from logprobs, cost from usage; a second instance sends 0 requests;
#  - an interrupted run (SIGINT, then SIGKILL) resumes and sends only what is not cached;
#  - every fault kind, fallbacks, text mode, self-consistency, pacing and the Batch API as
#    data: plugins/labellers/llm/tests/scenarios/*/*.json, run by scenarios.py;
#  - a restart in the middle of a batch polls the same batch instead of submitting again;
#  - TLS certificates are verified (a self-signed server fails until ca_file names it);
#  - a recognisable fake API key reaches no log line, store row, cache entry or error.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
SERVER=$SB_SOURCE_ROOT/tests/llm-server/llm_server.py
LT=$SB_SOURCE_ROOT/plugins/labellers/llm/tests
PROMPT=$SB_SOURCE_ROOT/configs/prompts/meld7-context.txt
MELD=$SB_SHARED_DATA/meld
if [ ! -f "$MELD/dev_sent_emo.csv" ]; then
  [ -n "${CI:-}" ] && fail "shared data missing: $MELD (CI runs with ../shared beside the clone)"
  echo "SKIP: shared data missing"; exit 77
fi

# ---- servers -------------------------------------------------------------------------
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

# start_server NAME ARGS...: a server on a free port; sets URL_<NAME> and logs to $T/NAME.log
start_server() {
  local name=$1; shift
  "$PY" "$SERVER" --port 0 --port-file "$T/$name.port" --log "$T/$name.log" "$@" \
    2>"$T/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$T/$name.port" ] && break; sleep 0.1; done
  [ -s "$T/$name.port" ] || { cat "$T/$name.err" >&2; fail "server $name did not start"; }
  printf -v "URL_$name" 'http://127.0.0.1:%s/v1' "$(cat "$T/$name.port")"
}
stat_of() { curl -s "${1%/v1}/_admin/stats" | jq -r ".$2"; }
reset_server() { curl -s -X POST "${1%/v1}/_admin/reset" >/dev/null; curl -s -X POST -d '[]' "${1%/v1}/_admin/faults" >/dev/null; }

# ---- corpora: MELD's real CSVs, text only --------------------------------------------
# big: all of dev (1109) + 20 train + 20 test rows = 1149; small: 44 dev + 3 + 3 = 50. The
# labeller is named for all three splits (train: dev, and two test sets), so it labels them
# all: a labeller labels only the splits it is named for.
mkdir -p "$T/big" "$T/small"
cp "$MELD/dev_sent_emo.csv" "$T/big/"
head -n 45 "$MELD/dev_sent_emo.csv" >"$T/small/dev_sent_emo.csv"
for s in train test; do
  head -n 21 "$MELD/${s}_sent_emo.csv" >"$T/big/${s}_sent_emo.csv"
  head -n 4 "$MELD/${s}_sent_emo.csv" >"$T/small/${s}_sent_emo.csv"
done
N_BIG=1149
N_SMALL=50

# config FILE ROOT LABELLER-OPTIONS (YAML flow entries, appended to the labeller block)
config() {
  cat >"$1" <<YAML
datasets:
  meld: {plugin: meld, root: "$2", on_missing_audio: skip}
labellers:
  gpt: {plugin: llm, model: serbench-test, prompt: "$PROMPT", context_before: 2, $3}
encoders:
  fbank: {plugin: fbank}
heads:
  linear: {plugin: linear}
experiment:
  train: {dataset: meld, split: dev, labels: gpt}
  test: [{dataset: meld, split: test, labels: gpt}, {dataset: meld, split: train, labels: gpt, name: meld-train}]
  encoder: fbank
  head: linear
YAML
}
labels_in_as() { sqlite3 "$1/serbench.db" "SELECT count(*) FROM labels WHERE stage_key IN (SELECT json_extract(info, '$.labels_key') FROM stages WHERE description LIKE 'labels $2 on %') AND status='ok'" 2>/dev/null || echo 0; }
labels_in() { sqlite3 "$1/serbench.db" "SELECT count(*) FROM labels WHERE stage_key IN (SELECT json_extract(info, '$.labels_key') FROM stages WHERE description LIKE 'labels gpt on %') AND status='ok'" 2>/dev/null || echo 0; }
cache_rows() { sqlite3 "$1/serbench.db" "SELECT count(*) FROM plugin_cache WHERE plugin='llm' AND key NOT LIKE 'llm-%'"; }

start_server main --answers "$LT/scenarios/answers.json" --batch-delay-s 0.6

# ---- plan: nothing sent --------------------------------------------------------------
config "$T/plan.yaml" "$T/big" "base_url: \"$URL_main\", prices: {serbench-test: {input: 2.5, output: 10}}"
run_sb "$T/plan" label "$T/plan.yaml" --results "$T/rplan" --plan
expect_exit 0 "$T/plan"
expect_in "$T/plan.out" "requests to send:   $N_BIG"
expect_in "$T/plan.out" "from the cache:     0"
expect_in "$T/plan.out" "prompt tokens:      ~"
expect_in "$T/plan.out" "completion tokens:  ~$((N_BIG * 20)) (at most)"
expect_in "$T/plan.out" "cost:               ~\$"
expect_in "$T/plan.out" "note: temperature 0: answers are deterministic only where the server honours seed"
expect_in "$T/plan.out" "one request, fully rendered:"
expect_in "$T/plan.out" '"temperature": 0.0'
expect_in "$T/plan.out" '"seed": 0'   # the labeller's, not the run's seed
expect_in "$T/plan.out" "Labels: neutral, surprise, fear, sadness, joy, disgust, anger"
expect_in "$T/plan.out" "<<<"
[ "$(stat_of "$URL_main" requests)" = 0 ] || fail "--plan sent requests"
ok
# Prompt tokens: the estimate is chars/4 of the messages, the server's usage counts the same.
pt=$(sed -n 's/.*prompt tokens: *~\([0-9]*\).*/\1/p' "$T/plan.out")
[ "$pt" -gt $((N_BIG * 100)) ] || fail "prompt token estimate $pt"
ok

# ---- MELD dev: labels, confidence, cost, then a second instance from the cache --------
"$PY" "$LT/scenarios.py" --serbench "$SERBENCH" --url "$URL_main" --log "$T/main.log" \
  --root "$T/big" --prompt "$PROMPT" --answers "$LT/scenarios/answers.json" \
  --work "$T/sc-dev" "$LT"/scenarios/dev/*.json || fail "MELD dev scenario"
ok
# The plan after the run: everything cached, nothing to send.
cp -r "$T/sc-dev/01-full/r" "$T/rplan2"
config "$T/plan2.yaml" "$T/big" "base_url: \"$URL_main\", prices: {serbench-test: {input: 2.5, output: 10}}, concurrency: 5"
run_sb "$T/plan2" label "$T/plan2.yaml" --results "$T/rplan2" --plan
expect_exit 0 "$T/plan2"
expect_in "$T/plan2.out" "requests to send:   0"
expect_in "$T/plan2.out" "from the cache:     $N_BIG"

# ---- interrupted runs resume and send only the rest ----------------------------------
start_server slow --latency-ms 10
for sig in INT KILL; do
  reset_server "$URL_slow"
  R=$T/r-$sig
  config "$T/int.yaml" "$T/big" "base_url: \"$URL_slow\", concurrency: 2"
  "$SERBENCH" label "$T/int.yaml" --results "$R" >"$T/int-$sig.out" 2>"$T/int-$sig.err" &
  pid=$!
  for _ in $(seq 300); do
    [ "$(labels_in "$R")" -ge 60 ] && break
    sleep 0.1
  done
  kill -s "$sig" "$pid"
  { wait "$pid"; } 2>/dev/null
  rc=$?
  if [ "$sig" = INT ]; then
    [ "$rc" = 130 ] || { cat "$T/int-$sig.err" >&2; fail "SIGINT: exit $rc, want 130"; }
    expect_in "$T/int-$sig.err" "cancelled by the user"
  else
    [ "$rc" = 137 ] || fail "SIGKILL: exit $rc"
  fi
  have=$(labels_in "$R")
  k=$(cache_rows "$R")
  [ "$have" -ge 60 ] && [ "$have" -lt $N_BIG ] || fail "$sig: $have labels stored when interrupted"
  [ "$k" -ge "$have" ] || fail "$sig: $k cached answers < $have labels"
  reset_server "$URL_slow"
  run_sb "$T/resume-$sig" label "$T/int.yaml" --results "$R"
  expect_exit 0 "$T/resume-$sig"
  sent=$(stat_of "$URL_slow" requests)
  # Every cached answer is reused; identical prompts (2 in MELD dev) may be sent once more
  # when their twin is in flight at the same time.
  want=$(( $(cache_rows "$R") - k ))
  [ "$sent" -ge "$want" ] && [ "$sent" -le $((want + 2)) ] ||
    fail "$sig: resumed run sent $sent requests, $want answers were missing ($k cached of $N_BIG)"
  [ "$(labels_in "$R")" = $N_BIG ] || fail "$sig: $(labels_in "$R") labels after resuming"
  ok
done

# ---- faults and modes, one scenario file each ----------------------------------------
reset_server "$URL_main"
"$PY" "$LT/scenarios.py" --serbench "$SERBENCH" --url "$URL_main" --log "$T/main.log" \
  --root "$T/small" --prompt "$PROMPT" --answers "$LT/scenarios/answers.json" \
  --work "$T/sc-small" "$LT"/scenarios/small/*.json "$LT"/scenarios/batch/*.json ||
  fail "fault scenarios"
ok
start_server nojs --no-json-schema
"$PY" "$LT/scenarios.py" --serbench "$SERBENCH" --url "$URL_nojs" --log "$T/nojs.log" \
  --root "$T/small" --prompt "$PROMPT" --work "$T/sc-nojs" "$LT"/scenarios/nojs/*.json ||
  fail "fallback scenarios"
ok

# ---- a restart in the middle of a batch collects the same batch -----------------------
start_server batch --batch-delay-s 4
R=$T/r-batch
config "$T/batch.yaml" "$T/small" "base_url: \"$URL_batch\", mode: batch, batch_poll_s: 0.2"
"$SERBENCH" label "$T/batch.yaml" --results "$R" >"$T/b1.out" 2>"$T/b1.err" &
pid=$!
for _ in $(seq 100); do [ "$(stat_of "$URL_batch" batches)" = 1 ] && break; sleep 0.1; done
[ "$(stat_of "$URL_batch" batches)" = 1 ] || fail "no batch submitted"
sleep 0.5
kill -KILL "$pid"
{ wait "$pid"; } 2>/dev/null
[ "$(labels_in "$R")" = 0 ] || fail "labels before the batch completed"
run_sb "$T/b2" label "$T/batch.yaml" --results "$R" --verbose
expect_exit 0 "$T/b2"
expect_in "$T/b2.err" "resuming batch batch_"
expect_in "$T/b2.err" "submitted by an earlier run"
[ "$(stat_of "$URL_batch" batches)" = 1 ] || fail "the restart submitted another batch"
[ "$(stat_of "$URL_batch" files)" = 1 ] || fail "the restart uploaded another file"
[ "$(stat_of "$URL_batch" requests)" = 0 ] || fail "batch mode sent sync requests"
[ "$(labels_in "$R")" = $N_SMALL ] || fail "$(labels_in "$R") labels after the batch"
ok

# ---- a batch that is over is not collected again: what it left unanswered goes anew ---
start_server batch2 --batch-delay-s 0.3
R=$T/r-batch2
config "$T/batch2.yaml" "$T/small" "base_url: \"$URL_batch2\", mode: batch, batch_poll_s: 0.1, batch_max_rounds: 1"
curl -s -X POST "${URL_batch2%/v1}/_admin/faults" -d '[{"kind": "server_error", "count": 100000}]' >/dev/null
run_sb "$T/b3" label "$T/batch2.yaml" --results "$R" --verbose
expect_exit 1 "$T/b3"
[ "$(labels_in "$R")" = 0 ] || fail "labels from a batch whose lines all failed"
reset_server "$URL_batch2"
run_sb "$T/b4" label "$T/batch2.yaml" --results "$R" --verbose
expect_exit 0 "$T/b4"
expect_not_in "$T/b4.err" "resuming batch"
expect_in "$T/b4.err" "submitted batch"
[ "$(stat_of "$URL_batch2" batches)" = 1 ] || fail "the rerun did not submit a new batch"
[ "$(labels_in "$R")" = $N_SMALL ] || fail "$(labels_in "$R") labels after the rerun"
ok

# ---- the shipped blocks (configs/base/llm.yaml) ---------------------------------------
cat >"$T/base.yaml" <<YAML
include: [$SB_SOURCE_ROOT/configs/base/llm.yaml]
datasets:
  meld: {plugin: meld, root: "$T/small", on_missing_audio: skip}
encoders:
  fbank: {plugin: fbank}
heads:
  linear: {plugin: linear}
experiment:
  train: {dataset: meld, split: dev, labels: vllm_local}
  test: {dataset: meld, split: test, labels: vllm_local}
  encoder: fbank
  head: linear
YAML
reset_server "$URL_main"
N_DEVTEST=47 # this experiment names the labeller for dev (44) and test (3), not train
VLLM_URL=$URL_main VLLM_MODEL=serbench-test run_sb "$T/base" label "$T/base.yaml" --results "$T/r-base"
expect_exit 0 "$T/base"
[ "$(labels_in_as "$T/r-base" vllm_local)" = $N_DEVTEST ] || fail "vllm_local block: $(labels_in_as "$T/r-base" vllm_local) labels"
[ "$(stat_of "$URL_main" requests)" = $N_DEVTEST ] || fail "vllm_local block: $(stat_of "$URL_main" requests) requests"
for b in gpt4o gpt4o_batch gpt4o_iemocap4 ollama_local llamacpp_local gpt35_sentiment; do
  env -u OPENAI_API_KEY "$SERBENCH" validate "$T/base.yaml" "experiment.train.labels=$b" "experiment.test.labels=$b" >"$T/v.out" 2>&1 ||
    { cat "$T/v.out" >&2; fail "block $b does not validate"; }
done
env -u OPENAI_API_KEY "$SERBENCH" label "$T/base.yaml" --results "$T/r-base" --plan \
  experiment.train.labels=gpt4o experiment.test.labels=gpt4o >"$T/bp.out" 2>&1 || fail "gpt4o plan"
expect_in "$T/bp.out" "POST https://api.openai.com/v1/chat/completions, model gpt-4o-2024-08-06"
expect_in "$T/bp.out" "cost:               ~\$"
expect_in "$T/bp.out" "OPENAI_API_KEY (api_key_env) is not set"
[ "$(stat_of "$URL_main" requests)" = $N_DEVTEST ] || fail "the plan sent requests"
ok

# ---- TLS: certificates are verified; ca_file says whom to trust ------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$T/tls.key" -out "$T/tls.pem" 2>/dev/null ||
  fail "openssl could not make a certificate"
"$PY" "$LT/tls_proxy.py" --cert "$T/tls.pem" --key "$T/tls.key" \
  --upstream "$(cat "$T/main.port")" --port-file "$T/tls.port" 2>"$T/tls.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$T/tls.port" ] && break; sleep 0.1; done
URL_tls="https://127.0.0.1:$(cat "$T/tls.port")/v1"
reset_server "$URL_main"
config "$T/tls1.yaml" "$T/small" "base_url: \"$URL_tls\""
run_sb "$T/tls1" label "$T/tls1.yaml" --results "$T/r-tls1"
expect_exit 1 "$T/tls1"
expect_in "$T/tls1.err" "SSL certificate problem: self-signed certificate"
expect_in "$T/tls1.err" "set ca_file to the CA certificate that signed it"
expect_not_in "$T/tls1.err" "retry"
[ "$(labels_in "$T/r-tls1")" = 0 ] || fail "labels through an unverified certificate"
[ "$(stat_of "$URL_main" requests)" = 0 ] || fail "requests passed an unverified certificate"
config "$T/tls2.yaml" "$T/small" "base_url: \"$URL_tls\", ca_file: \"$T/tls.pem\""
run_sb "$T/tls2" label "$T/tls2.yaml" --results "$T/r-tls2"
expect_exit 0 "$T/tls2"
[ "$(labels_in "$T/r-tls2")" = $N_SMALL ] || fail "$(labels_in "$T/r-tls2") labels over TLS with ca_file"

# ---- the headers sent: Authorization only with a key, the organization when named ------
"$PY" "$LT/header_capture.py" --port-file "$T/hdr.port" --out "$T/hdr.jsonl" 2>"$T/hdr.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$T/hdr.port" ] && break; sleep 0.1; done
URL_hdr="http://127.0.0.1:$(cat "$T/hdr.port")/v1"
config "$T/hdr1.yaml" "$T/small" "base_url: \"$URL_hdr\", concurrency: 2"
run_sb "$T/hdr1" label "$T/hdr1.yaml" --results "$T/r-hdr1"
expect_exit 0 "$T/hdr1"
config "$T/hdr2.yaml" "$T/small" "base_url: \"$URL_hdr\", concurrency: 3, api_key_env: SB_LLM_HDR_KEY, organization_env: SB_LLM_HDR_ORG"
SB_LLM_HDR_KEY=sk-hdr-test SB_LLM_HDR_ORG=org-hdr-test run_sb "$T/hdr2" label "$T/hdr2.yaml" --results "$T/r-hdr2"
expect_exit 0 "$T/hdr2"
"$PY" - "$T/hdr.jsonl" <<'PYEOF' || fail "headers"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert len(reqs) == 100, len(reqs)
for i, r in enumerate(reqs):
    h = {k.lower(): v for k, v in r["headers"]}
    assert r["path"] == "/v1/chat/completions", r["path"]
    assert h.get("content-type") == "application/json", h
    if i < 50:
        assert "authorization" not in h and "openai-organization" not in h, h
    else:
        assert h.get("authorization") == "Bearer sk-hdr-test", h
        assert h.get("openai-organization") == "org-hdr-test", h
PYEOF
ok

# ---- the API key stays secret ---------------------------------------------------------
KEY="sk-serbench-FAKE-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')-KEY"
start_server auth --api-key "$KEY"
export SB_LLM_TEST_KEY=$KEY
R=$T/r-secret
config "$T/secret.yaml" "$T/small" "base_url: \"$URL_auth\", api_key_env: SB_LLM_TEST_KEY, backoff_base_s: 0.05, max_retries: 2, prices: {serbench-test: {input: 2.5, output: 10}}"
# Faults on the way, so retry, re-ask, failure and invalid paths all log.
curl -s -X POST "${URL_auth%/v1}/_admin/faults" -d '[
  {"kind": "rate_limit", "match": "touchy", "count": 1, "retry_after_ms": 50},
  {"kind": "server_error", "match": "Smiledon", "count": 5},
  {"kind": "malformed_json", "match": "nighttime", "count": 1},
  {"kind": "out_of_schema", "match": "no harm", "count": 2},
  {"kind": "refusal", "match": "brush up", "count": 1}]' >/dev/null
run_sb "$T/s1" label "$T/secret.yaml" --results "$R" --verbose
expect_exit 1 "$T/s1"
expect_in "$T/s1.err" "retry 1"
expect_in "$T/s1.err" "gave up after 3 attempts"
[ "$(labels_in "$R")" = 47 ] || fail "$(labels_in "$R") labels with the key"
run_sb "$T/s2" label "$T/secret.yaml" --results "$R" --plan
expect_exit 0 "$T/s2"
# A wrong key: 401, the message names the variable, not the value.
WRONG="sk-serbench-WRONG-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
reset_server "$URL_auth"
SB_LLM_TEST_KEY=$WRONG run_sb "$T/s3" label "$T/secret.yaml" --results "$T/r-wrong" --verbose
expect_exit 1 "$T/s3"
expect_in "$T/s3.err" "HTTP 401"
expect_in "$T/s3.err" "check the API key in the environment variable SB_LLM_TEST_KEY"
# No key at all: a configuration error naming the variable.
env -u SB_LLM_TEST_KEY "$SERBENCH" label "$T/secret.yaml" --results "$T/r-nokey" >"$T/s4.out" 2>"$T/s4.err"
echo $? >"$T/s4.rc"
expect_exit 2 "$T/s4"
expect_in "$T/s4.err" "SB_LLM_TEST_KEY named by api_key_env is not set"
# A server that echoes the key in its error text (a misconfigured proxy): the --verbose retry
# lines and the final error show *** instead.
reset_server "$URL_auth"
curl -s -X POST "${URL_auth%/v1}/_admin/faults" -d "[
  {\"kind\": \"server_error\", \"match\": \"Smiledon\", \"count\": 5,
   \"message\": \"proxy error for key $KEY\"}]" >/dev/null
run_sb "$T/s5" label "$T/secret.yaml" --results "$T/r-echo" --verbose
expect_exit 1 "$T/s5"
expect_in "$T/s5.err" "proxy error for key ***"
expect_in "$T/s5.err" "retry 1"
for f in "$T"/s[1-5].out "$T"/s[1-5].err; do
  expect_not_in "$f" "$KEY"
  expect_not_in "$f" "$WRONG"
  expect_not_in "$f" "Bearer"
done
for d in "$R" "$T/r-wrong" "$T/r-echo"; do
  if grep -r -a -q -F -e "$KEY" -e "$WRONG" "$d"; then fail "a key is stored under $d"; fi
  for db in "$d/serbench.db"; do
    sqlite3 "$db" .dump | grep -q -F -e "$KEY" -e "$WRONG" && fail "a key is in $db"
  done
  ok
done
if grep -q -F -e "$KEY" -e "$WRONG" "$T/auth.log" "$T/auth.err"; then fail "a key went into a request body"; fi
ok
# The check can fail: a planted key in the store is found.
sqlite3 "$R/serbench.db" "INSERT INTO plugin_cache VALUES('llm','planted','$KEY',NULL)"
sqlite3 "$R/serbench.db" .dump | grep -q -F "$KEY" || fail "the secret check cannot see a stored key"
ok
done_ok
