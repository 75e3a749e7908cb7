#!/usr/bin/env bash
# Heads end to end through the CLI on a generated CMU-MOSI tree: regression
# (experiment.target: value) with MOSI's metrics; a text encoder (tfidf) fitted on the
# training transcripts, its features keyed by text and reused; audio + text as two head inputs
# fused by the hierarchical head; every run's checkpoint, and fine-tuning from another run's
# checkpoint with a new output layer (experiment.init); the bad cases of each.
. "$(dirname "$0")/lib.sh"
export MOSI_GENERATED_DIR=$(gen_once mosi make-mosi-corpus --layout mmsa)
EX=$SB_SOURCE_ROOT/configs/examples
R=$T/r
above() { awk -v x="$1" -v y="$2" 'BEGIN { exit !(x > y) }'; }
metric() { sqlite3 "$R/serbench.db" "SELECT avg(value) FROM metrics m JOIN runs r USING(run_id) WHERE m.metric='$1' AND r.config LIKE '%$2%'"; }

# 1. Regression: the shipped example, one seed. MAE below the spread of the scores, a positive
#    correlation, and predictions stored as values.
run_sb $T/reg run $EX/mosi-regression.yaml --results $R seeds=[1]
expect_exit 0 $T/reg
expect_in $T/reg.out "mae"
mae=$(metric mae '"target":"value"')
corr=$(metric corr '"target":"value"')
above 1.6 "$mae" || fail "regression MAE $mae is not below 1.6 (predicting the mean gives about 1.7)"
above "$corr" 0.3 || fail "regression correlation $corr is not above 0.3"
ok
echo "mosi regression (fbank + linear, l1): mae $mae, corr $corr"
[ "$(sqlite3 $R/serbench.db "SELECT typeof(pred) FROM predictions LIMIT 1")" = real ] || fail "regression predictions are not stored as values"
ok
# a labeller's classes cannot be regression targets; classification metrics are refused
run_sb $T/reg2 validate $EX/mosi-regression.yaml "labellers.gpt={plugin: llm, base_url: 'http://127.0.0.1:9/v1', model: m, prompt: $SB_SOURCE_ROOT/configs/prompts/demo4.txt}" experiment.train.labels=gpt
expect_exit 2 $T/reg2
expect_in $T/reg2.err "target: value trains on the corpus's own values"
run_sb $T/reg3 validate $EX/mosi-regression.yaml 'experiment.metrics=[ua]'
expect_exit 2 $T/reg3
expect_in $T/reg3.err "is scored with mae"

# 2. Text: tfidf fitted on the train transcripts + linear, MOSI 2-class. The transcripts'
#    polarity follows the score, so text alone is far above chance.
cat > $T/text.yaml <<YAML
datasets:
  mosi: {plugin: cmu_mosi, root: "$MOSI_GENERATED_DIR", protocol: mosi-2class, acc2: non0}
encoders:
  tfidf: {plugin: tfidf, features: 1024}
  fbank: {plugin: fbank, n_mels: 40, pool: mean+std}
heads:
  linear: {plugin: linear, epochs: 60, lr: 3.0e-3, batch_size: 16, patience: 15}
  mlp: {plugin: mlp, hidden: [32], epochs: 40, lr: 3.0e-3, batch_size: 16, patience: 10}
experiment:
  train: {dataset: mosi, split: train}
  dev:   {dataset: mosi, split: dev}
  test:  {dataset: mosi, split: test}
  encoder: tfidf
  head: linear
  metrics: [wa, ua]
YAML
run_sb $T/text run $T/text.yaml --results $R
expect_exit 0 $T/text
rid=$(sqlite3 $R/serbench.db "SELECT run_id FROM runs WHERE config LIKE '%\"encoder\":\"tfidf\"%'")
expect_in $T/text.err "transcripts encoded"
wa=$(metric wa '"encoder":"tfidf"')
above "$wa" 0.8 || fail "tfidf + linear accuracy $wa on MOSI 2-class is not above 0.8"
ok
echo "mosi 2-class from text (tfidf + linear): wa $wa"
prov=$(sqlite3 $R/serbench.db "SELECT provenance FROM runs WHERE config LIKE '%\"encoder\":\"tfidf\"%' LIMIT 1")
[ "$(echo "$prov" | jq -r '.inputs[0].modality + " " + .inputs[0].fitted_on')" = "text dataset mosi, split train" ] ||
  fail "the provenance does not say the text encoder was fitted on mosi/train: $(echo "$prov" | jq -c .inputs)"
ok
# Another head over the same text features: nothing is encoded again.
run_sb $T/text2 run $T/text.yaml --results $R experiment.head=mlp
expect_exit 0 $T/text2
expect_not_in $T/text2.err "transcripts encoded"
# A different training split fits a different vocabulary: new features, not the stored ones.
run_sb $T/text3 run $T/text.yaml --results $R experiment.train.split=dev experiment.dev=null
expect_exit 0 $T/text3
expect_in $T/text3.err "transcripts encoded"
# A head that reads one input refuses two.
run_sb $T/two run $T/text.yaml --results $R 'experiment.encoder=[fbank, tfidf]'
expect_exit 2 $T/two
expect_in $T/two.err "use the hierarchical head"

# 2b. Text through an embeddings API (the project's test server, hashed bag-of-words vectors):
#     the host hands the plugin the transcripts in batches, stores the vectors keyed by text,
#     and a second head over the same encoder sends no request.
PY=/usr/bin/python3
"$PY" "$SB_SOURCE_ROOT/tests/llm-server/llm_server.py" --port 0 --port-file $T/emb.port --log $T/emb.log --embedding-dim 64 2>$T/emb.err &
EMB_PID=$!
trap 'kill $EMB_PID 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 100); do [ -s $T/emb.port ] && break; sleep 0.1; done
[ -s $T/emb.port ] || fail "the test server did not start: $(cat $T/emb.err)"
EMB="encoders.emb={plugin: embeddings, base_url: 'http://127.0.0.1:$(cat $T/emb.port)/v1', model: test-embed, dim: 64, batch: 16}"
stat() { curl -s "http://127.0.0.1:$(cat $T/emb.port)/_admin/stats" | jq ".$1"; }
requests() { stat embeddings; }
run_sb $T/emb1 run $T/text.yaml --results $R "$EMB" experiment.encoder=emb
expect_exit 0 $T/emb1
wa=$(metric wa '"encoder":"emb"')
above "$wa" 0.75 || fail "embeddings + linear accuracy $wa on MOSI 2-class is not above 0.75"
ok
n1=$(requests)
# 122 clips, 28 distinct transcripts: each distinct text is asked for once
distinct=$("$PY" -c "import csv,sys; print(len({r['text'] for r in csv.DictReader(open(sys.argv[1]))}))" "$MOSI_GENERATED_DIR/label.csv")
[ "$(stat embedding_inputs)" = "$distinct" ] || fail "the server embedded $(stat embedding_inputs) texts; the corpus has $distinct distinct transcripts"
ok
run_sb $T/emb2 run $T/text.yaml --results $R "$EMB" experiment.encoder=emb experiment.head=mlp
expect_exit 0 $T/emb2
[ "$(requests)" = "$n1" ] || fail "a second head over the stored embeddings sent requests ($n1 -> $(requests))"
ok
echo "mosi 2-class from API embeddings (test server) + linear: wa $wa, $n1 requests, 0 on rerun"

# 3. Audio + text as two inputs of the hierarchical head (MOSI's videos are its dialogues).
#    Stage 2 (each input's context model, outputs averaged) is far above chance; stage 3's
#    fusion classifier runs end to end too, but on 73 training clips its accuracy swings with
#    the settings (0.54-0.79 seen), so only stage 2's is asserted here — the fusion's gain is
#    asserted on a task built for it in the head's unit test (stage 3 0.95 vs 0.41/0.53).
H='heads.hierarchical={plugin: hierarchical, d_model: 32, epochs: 30, layers: 1, heads: 2}'
run_sb $T/fuse2 run $T/text.yaml --results $R 'experiment.encoder=[fbank, tfidf]' experiment.head=hierarchical "$H" heads.hierarchical.stages=2
expect_exit 0 $T/fuse2
wa=$(metric wa '"stages":"2"')
above "$wa" 0.85 || fail "audio + text hierarchical (stage 2) accuracy $wa on MOSI 2-class is not above 0.85"
ok
echo "mosi 2-class, fbank + tfidf, hierarchical stage 2: wa $wa"
run_sb $T/fuse run $T/text.yaml --results $R 'experiment.encoder=[fbank, tfidf]' experiment.head=hierarchical "$H"
expect_exit 0 $T/fuse
prov=$(sqlite3 $R/serbench.db "SELECT provenance FROM runs WHERE config LIKE '%\"stages\":\"auto\"%' LIMIT 1")
[ "$(echo "$prov" | jq -r '[.inputs[].modality] | join(",")')" = "audio,text" ] || fail "fusion inputs: $(echo "$prov" | jq -c .inputs)"
ok
echo "mosi 2-class, fbank + tfidf fused (hierarchical stage 3): wa $(metric wa '"stages":"auto"')"

# 4. Checkpoints: every run keeps its head; fine-tuning starts from one with a new output layer
#    (pre-train on MOSI's 7 classes, fine-tune on its 2 classes: the label spaces differ).
ck=$R/checkpoints/$rid.safetensors
[ -f "$ck" ] || fail "no checkpoint $ck"
ok
/usr/bin/python3 - "$ck" <<'PY' || fail "the checkpoint is not a readable safetensors file with serbench's metadata"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
m = h["__metadata__"]
assert m["serbench_head"] == "linear", m
assert json.loads(m["classes"]) == ["negative", "positive"], m["classes"]
json.loads(m["head_config"])
assert len(h) > 1
PY
ok
run_sb $T/pre run $T/text.yaml --results $R datasets.mosi.protocol=mosi-7class 'experiment.metrics=[wa]'
expect_exit 0 $T/pre
pre=$(sqlite3 $R/serbench.db "SELECT run_id FROM runs WHERE config LIKE '%mosi-7class%' AND config LIKE '%\"head\":\"linear\"%'")
[ -n "$pre" ] || fail "no pre-training run"
run_sb $T/ft run $T/text.yaml --results $R "experiment.init={from: 'run:${pre:0:12}'}" heads.linear.epochs=20
expect_exit 0 $T/ft
prov=$(sqlite3 $R/serbench.db "SELECT provenance FROM runs WHERE config LIKE '%run:${pre:0:12}%'")
[ "$(echo "$prov" | jq -r '.init.run_id + " " + (.init.new_output|tostring)')" = "$pre true" ] ||
  fail "the fine-tuned run does not record its start: $(echo "$prov" | jq -c .init)"
ok
wa=$(metric wa "run:${pre:0:12}")
above "$wa" 0.7 || fail "fine-tuned accuracy $wa"
ok
# from the checkpoint file, keeping the output layer across different classes: refused
run_sb $T/ft2 run $T/text.yaml --results $R "experiment.init={from: '$R/checkpoints/$pre.safetensors', new_output: no}"
expect_exit 2 $T/ft2
expect_in $T/ft2.err "classes differ"
# a checkpoint of another head plugin
mlp=$(sqlite3 $R/serbench.db "SELECT run_id FROM runs WHERE config LIKE '%\"head\":\"mlp\"%' LIMIT 1")
run_sb $T/ft3 run $T/text.yaml --results $R "experiment.init={from: 'run:$mlp'}"
expect_exit 2 $T/ft3
expect_in $T/ft3.err "checkpoint of head plugin mlp"
# a checkpoint of another shape (the same plugin over 40-mel fbank features, not 1024 tfidf ones)
run_sb $T/fbk run $T/text.yaml --results $R experiment.encoder=fbank
expect_exit 0 $T/fbk
fbrun=$(sqlite3 $R/serbench.db "SELECT run_id FROM runs WHERE config LIKE '%\"encoder\":\"fbank\"%' AND config LIKE '%\"n_mels\":40%' AND config LIKE '%\"head\":\"linear\"%' LIMIT 1")
run_sb $T/ft4 run $T/text.yaml --results $R "experiment.init={from: 'run:$fbrun'}"
expect_exit 2 $T/ft4
expect_in $T/ft4.err "dim"
# unknown runs, files and keys
run_sb $T/ft5 run $T/text.yaml --results $R "experiment.init={from: 'run:0123456789ab'}"
expect_exit 2 $T/ft5
expect_in $T/ft5.err "no run in"
run_sb $T/ft6 run $T/text.yaml --results $R "experiment.init={from: nothere.safetensors}"
expect_exit 2 $T/ft6
expect_in $T/ft6.err "nothere.safetensors"
# a file that is not a checkpoint stops the plan before any work (exit 2)
echo "not a checkpoint" > $T/junk.safetensors
run_sb $T/ft8 run $T/text.yaml --results $R "experiment.init={from: $T/junk.safetensors}"
expect_exit 2 $T/ft8
expect_in $T/ft8.err "junk.safetensors"
run_sb $T/ft7 validate $T/text.yaml "experiment.init={from: x.safetensors, part: all}"
expect_exit 2 $T/ft7
expect_in $T/ft7.err "parts"
done_ok
