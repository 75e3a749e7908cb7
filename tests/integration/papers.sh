#!/usr/bin/env bash
# The paper configs (configs/papers/) end to end on the generated corpora, with tiny
# random-initialised checkpoints of the four SSL backbones and the local LLM test server:
#  - every config under configs/papers/ validates (exit 0); include-only fragments are
#    included by one of them;
#  - melt/labels.yaml: `label --plan` sends nothing; `label` labels MELD train + test with the
#    server's deterministic answers; `export labels --format melt` writes MELT's layout with
#    them; `run` trains on them;
#  - melt/ser.yaml: 4 backbones x 2 training targets, 3 test sets, 3 tables (no reported
#    values: none are known);
#  - merits-l/merits-l.yaml: 3 corpora x {text, audio, audio+text} x {stage I, context}; the
#    table carries exactly papers.md's 9 reported numbers, every other reported cell empty;
#  - merits-l/pretrain.yaml then finetune.yaml: LLM pseudo-label pre-training, then the text
#    model started from that run's stage I (provenance init), with its 6 reported numbers.
# One seed and a few epochs: the numbers are meaningless, the layout is what is checked.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
$PY -c "import torch" 2>/dev/null || { echo "SKIP: no torch for the checkpoints"; exit 77; }
P=$SB_SOURCE_ROOT/configs/papers
t0=$(date +%s)

# ---- corpora, checkpoints, LLM server ----------------------------------------------------
MELD_GEN=$(gen_once meld make-meld-corpus)
IEMOCAP_GEN=$(gen_once iemocap make-iemocap-corpus)
MOSI_GEN=$(gen_once mosi make-mosi-corpus --layout mmsa)
DEMO=$(demo_corpus)
export MELD_ROOT=$MELD_GEN/MELD.Raw MELT_ROOT=$MELD_GEN/melt
export IEMOCAP_ROOT=$IEMOCAP_GEN/IEMOCAP_full_release MOSI_ROOT=$MOSI_GEN
unset MELD_AUDIO
export MODELS=$T/models
seed=1
for a in "wav2vec2 wav2vec2-base" "hubert hubert-base-ls960" "wavlm wavlm-base-plus" \
  "data2vec-audio data2vec-audio-base"; do
  set -- $a
  $PY "$SB_SOURCE_ROOT/scripts/ssl-make-checkpoint.py" --arch $1 --size small --layers 2 \
    --seed $seed "$MODELS/$2" >$T/mk.log 2>&1 || { cat $T/mk.log >&2; fail "checkpoint $1"; }
  seed=$((seed + 1))
done

pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
$PY "$SB_SOURCE_ROOT/tests/llm-server/llm_server.py" --port 0 --port-file $T/llm.port \
  --log $T/llm.log 2>$T/llm.err &
pid=$!
for _ in $(seq 100); do [ -s $T/llm.port ] && break; sleep 0.1; done
[ -s $T/llm.port ] || { cat $T/llm.err >&2; fail "llm server did not start"; }
URL=http://127.0.0.1:$(cat $T/llm.port)
export LLM_BASE_URL=$URL/v1 OPENAI_API_KEY=sk-papers-test-not-a-key
requests() { curl -s "$URL/_admin/stats" | jq -r .requests; }

# The pre-training corpus: the demo corpus's audio and transcripts, without its labels.
$PY - "$DEMO" >$T/pretrain.csv <<'PY' || fail "pretrain manifest"
import csv, sys
root = sys.argv[1]
w = csv.writer(sys.stdout, lineterminator="\n")
w.writerow(["audio", "split", "speaker", "dialogue", "turn", "text"])
for r in csv.DictReader(open(f"{root}/manifest.csv")):
    w.writerow([f"{root}/{r['audio']}", r["split"], r["speaker"], r["dialogue"], r["turn"], r["text"]])
PY
export PRETRAIN_MANIFEST=$T/pretrain.csv
R=$T/results

# Small runs: one seed, few epochs, a narrow hierarchical head (the pre-training and the
# fine-tuning need the same d_model, so both take HIER).
SER=(seeds=[1] heads.linear.epochs=5)
HIER=(seeds=[1] heads.utterance.epochs=3 heads.context.epochs=3 heads.utterance.d_model=32
  heads.context.d_model=32 heads.context.max_turns=32 heads.context.max_batch_utts=64)
PRE_ID=$("$SERBENCH" validate $P/merits-l/pretrain.yaml "${HIER[@]}" --json | jq -r '.runs[0].run_id')
[ -n "$PRE_ID" ] && [ "$PRE_ID" != null ] || fail "pretrain.yaml: no run id"
export MERITS_PRETRAINED=run:$PRE_ID

# ---- every config validates ----------------------------------------------------------------
n_cfg=0
while IFS= read -r f; do
  if grep -q '^experiment:' "$f"; then
    run_sb $T/val validate "$f"
    expect_exit 0 $T/val
    expect_in $T/val.out "valid;"
    n_cfg=$((n_cfg + 1))
  else # an include-only fragment: some config of its folder must include it
    grep -lq "^include:.*$(basename "$f")" "$(dirname "$f")"/*.yaml || fail "$f: neither a config nor included"
    ok
  fi
done < <(find "$P" -name '*.yaml' | sort)
[ "$n_cfg" = 5 ] || fail "5 configs under configs/papers expected, validated $n_cfg"
ok

# ---- melt/labels.yaml: MELT's labels re-created by the llm labeller -----------------------
L=$P/melt/labels.yaml
r0=$(requests)
run_sb $T/plan label $L --plan --results $R
expect_exit 0 $T/plan
expect_in $T/plan.out "labels gpt4o_melt on meld/train,test: 119 utterances to label"
expect_in $T/plan.out "Friends (season"                # the MELT prompt, rendered
expect_in $T/plan.out '"model": "gpt-4o-2024-08-06"'
[ "$(requests)" = "$r0" ] || fail "label --plan sent requests"
ok
run_sb $T/label label $L --results $R
expect_exit 0 $T/label
expect_in $T/label.err "labels gpt4o_melt on meld/train,test: 119 labelled, 0 invalid, 0 failed"
run_sb $T/exp export labels $L --format melt --labeller gpt4o_melt --out $T/melt-ours.csv --results $R
expect_exit 0 $T/exp
# MELT's header; 84 train + 35 test rows; every llm_label is the server's answer for the row's
# utterance (sha256 of the target text over the schema's labels, tests/llm-server/README.md),
# Emotion is MELD's own label.
$PY - $T/melt-ours.csv "$MELD_ROOT" >$T/exp.check 2>&1 <<'PY' || { cat $T/exp.check >&2; fail "export --format melt"; }
import csv, hashlib, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8")))
want = "filename,Sr_No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime,llm_label"
head = open(sys.argv[1], encoding="utf-8").readline().strip()
assert head == want, head
assert len(rows) == 119, len(rows)
labels = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
for r in rows:
    h = int.from_bytes(hashlib.sha256(r["Utterance"].encode()).digest(), "big")
    assert r["llm_label"] == labels[h % 7], (r["filename"], r["Utterance"], r["llm_label"])
    assert r["Emotion"] in labels, r["Emotion"]
    assert r["filename"] == f"dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}.wav", r["filename"]
print("ok", len(rows))
PY
ok
r1=$(requests)
run_sb $T/lrun run $L "${SER[@]}" --results $R
expect_exit 0 $T/lrun
[ "$(requests)" = "$r1" ] || fail "run asked the LLM again for stored labels"
expect_in $T/lrun.out "| meld/test ua |"
expect_in $T/lrun.out "(gpt4o_melt labels)"

# ---- melt/ser.yaml: 4 backbones x {human, GPT-4o} labels, 3 test sets, 3 tables -------------
S=$P/melt/ser.yaml
run_sb $T/ser run $S "${SER[@]}" --results $R
expect_exit 0 $T/ser
expect_in $T/ser.err "8 complete, 0 failed"
for title in "Unweighted accuracy (%)" "Weighted accuracy (%)" "Weighted F1 (%)"; do
  expect_in $T/ser.out "$title"
done
expect_in $T/ser.out "| encoder | dataset | meld/test | melt/test | iemocap4/all |"
expect_not_in $T/ser.out "reported"
run_sb $T/serj report $S "${SER[@]}" --results $R --format json
expect_exit 0 $T/serj
jq -e '[.tables[].name] == ["ua", "wa", "weighted_f1"]
  and all(.tables[]; (.rows | length) == 8 and .reported == null
    and all(.rows[].cells[]; .n == 1 and .mean != null and .reported == null))' \
  $T/serj.out >/dev/null || fail "melt/ser.yaml: 3 tables of 8 rows x 3 filled cells, no reported values"
ok
for fmt in csv tex; do
  run_sb $T/ser-$fmt report $S "${SER[@]}" --results $R --format $fmt
  expect_exit 0 $T/ser-$fmt
done
expect_in $T/ser-tex.out '\label{tab:weighted_f1}'

# ---- merits-l/merits-l.yaml: stages I-III with the paper's reported numbers ----------------
M=$P/merits-l/merits-l.yaml
run_sb $T/mer run $M "${HIER[@]}" --results $R
expect_exit 0 $T/mer
expect_in $T/mer.err "18 complete, 0 failed"
expect_in $T/mer.out "| encoder | head | iemocap/test | reported | Δ | meld/test | reported | Δ | mosi/test | reported | Δ |"
expect_in $T/mer.out "[unverified]"
run_sb $T/merj report $M "${HIER[@]}" --results $R --format json
expect_exit 0 $T/merj
# Every cell filled; the reported values exactly papers.md's, keyed by row; nothing else.
jq -c '[.rows[] | .keys as $k | .cells[] | select(.reported != null)
        | [$k["experiment.encoder"], $k["experiment.head"], .test_set, .reported]] | sort' \
  $T/merj.out >$T/rep.json
want='[["audio","context","iemocap/test",77.95],["audio","utterance","iemocap/test",66.93],["audio+text","context","iemocap/test",86.48],["text","context","iemocap/test",83.85],["text","context","meld/test",65.24],["text","context","mosi/test",86.02],["text","utterance","iemocap/test",69.84],["text","utterance","meld/test",63.81],["text","utterance","mosi/test",85.41]]'
[ "$(cat $T/rep.json)" = "$want" ] || fail "merits-l reported cells: $(cat $T/rep.json)"
ok
jq -e '(.rows | length) == 6 and all(.rows[].cells[]; .n == 1 and .mean != null)
  and all(.columns[]; .reported == true)
  and all(.rows[].cells[] | select(.reported != null); .delta != null)' $T/merj.out >/dev/null ||
  fail "merits-l: 6 rows of filled cells, a reported column per test set, a delta per reported value"
ok
expect_not_in $T/mer.err "reported.values"     # every reported value found its cell

# The text encoder swapped for an embeddings model (README: a pre-trained text model through
# an API), here the test server's /v1/embeddings: the text rows keep their reported values.
run_sb $T/emb run $M "${HIER[@]}" 'sweep.experiment.train.dataset=[iemocap]' \
  'sweep.experiment.encoder=[text]' \
  "encoders.text={plugin: embeddings, base_url: '$LLM_BASE_URL', model: test-embed, dim: 64, encoding_format: float}" \
  --results $R
expect_exit 0 $T/emb
expect_in $T/emb.err "2 complete, 0 failed"
expect_in $T/emb.out "| text | utterance |"
expect_in $T/emb.out "| 69.84 |"
[ "$(curl -s "$URL/_admin/stats" | jq -r .embeddings)" -ge 1 ] || fail "no embeddings request"
ok

# ---- merits-l pre-training, then fine-tuning from it ------------------------------------
run_sb $T/pre run $P/merits-l/pretrain.yaml "${HIER[@]}" --results $R
expect_exit 0 $T/pre
expect_in $T/pre.err "labels gpt35_sentiment on pretrain/train,dev: 200 labelled"
[ -f $R/checkpoints/$PRE_ID.safetensors ] || fail "no pre-trained checkpoint $PRE_ID"
ok
F=$P/merits-l/finetune.yaml
run_sb $T/ft run $F "${HIER[@]}" --results $R
expect_exit 0 $T/ft
expect_in $T/ft.err "6 complete, 0 failed"
expect_in $T/ft.err "taken from the checkpoint, fine-tuned on this data first (stage1_finetune), then frozen"
n_init=$(sqlite3 $R/serbench.db "SELECT count(*) FROM runs WHERE json_extract(provenance, '$.init.run_id') = '$PRE_ID' AND json_extract(provenance, '$.init.parts') = 'stage1' AND status = 'complete'")
[ "$n_init" = 6 ] || fail "6 fine-tuned runs should start from $PRE_ID, found $n_init"
ok
run_sb $T/ftj report $F "${HIER[@]}" --results $R --format json
expect_exit 0 $T/ftj
jq -e '(.rows | length) == 2 and ([.rows[].cells[] | select(.reported != null)] | length) == 6
  and all(.rows[].cells[]; .n == 1)' $T/ftj.out >/dev/null || fail "finetune.yaml: 2 rows, 6 reported values"
ok
expect_not_in $T/ftj.err "reported.values"

echo "papers: $(($(date +%s) - t0)) s" >&2
done_ok
