#!/usr/bin/env bash
# tests/integration/labels.sh — the label stage seen end to end on real label files:
# MELT's GPT-4o labels (imported labeller over ../shared/data/melt) against MELD's human
# labels (../shared/data/meld, text only): invalid answers stored and reported, agreement
# equal to scikit-learn's, exports in serbench's and MELT's layouts; IEMOCAP's raters
# (generated tree): the human labeller's rater option and Fleiss/Krippendorff over raters.
. "$(dirname "$0")/lib.sh"
[ -f "$SB_SHARED_DATA/melt/meld_test.csv" ] || { echo "SKIP: shared data missing"; exit 77; }
PY=/usr/bin/python3

cat >"$T/melt.yaml" <<YAML
results: $T/r
datasets:
  meld: {plugin: meld, root: "$SB_SHARED_DATA/meld", on_missing_audio: skip}
labellers:
  human: {plugin: human}
  melt_test: {plugin: imported, file: "$SB_SHARED_DATA/melt/meld_test.csv",
              id: "test/dia{Dialogue_ID}_utt{Utterance_ID}", label_column: llm_label}
encoders:
  fbank: {plugin: fbank}
heads:
  linear: {plugin: linear}
experiment:
  train: {dataset: meld, split: train, labels: human}
  dev: {dataset: meld, split: dev, labels: human}
  test: [{dataset: meld, split: test},
         {dataset: meld, split: test, labels: melt_test, name: meld-test-melt}]
  encoder: fbank
  head: linear
YAML

# Label: each labeller labels the splits it is named for; MELT's three out-of-schema test
# labels are stored as invalid, with a warning.
run_sb $T/lab label $T/melt.yaml
expect_exit 0 $T/lab
expect_in $T/lab.err "labels melt_test on meld/test"
expect_in $T/lab.err "1791 labelled, 3 invalid, 0 failed"
expect_in $T/lab.err "labels human on meld/train"
expect_not_in $T/lab.err "labels melt_test on meld/train"
expect_in $T/lab.err "3 answers were not a class of the label space"
expect_in $T/lab.err "'frustration'"
# A second pass finds everything in the store.
run_sb $T/lab2 label $T/melt.yaml --verbose
expect_exit 0 $T/lab2
expect_in $T/lab2.err "complete in store (1791 labels, 3 invalid)"

# --plan on labellers that send no requests says so and labels nothing.
run_sb $T/plan label $T/melt.yaml --plan
expect_exit 0 $T/plan
expect_in $T/plan.out "sends no requests"
run_sb $T/planbad run $T/melt.yaml --plan
expect_exit 2 $T/planbad

# A labeller built against ABI 1.0 (vtable without `plan`) loads, labels, and plans.
cat >"$T/old.yaml" <<YAML
include: [$T/melt.yaml]
plugin_path: [$SB_FIXTURE_PLUGINS/abi]
labellers:
  old: {plugin: label10}
experiment: {train: {dataset: meld, split: train, labels: old}}
YAML
run_sb $T/old label $T/old.yaml --results $T/rold
expect_exit 0 $T/old
expect_in $T/old.err "9989 labelled, 0 invalid, 0 failed"
# A labeller named only for train labels train only (an LLM would be paid for nothing else).
run_sb $T/oldexp export labels $T/old.yaml --results $T/rold --labeller old --out $T/old.csv
expect_exit 0 $T/oldexp
[ "$(tail -n +2 $T/old.csv | wc -l)" = 9989 ] || fail "old labels: $(tail -n +2 $T/old.csv | wc -l) rows, want 9989"
[ "$(tail -n +2 $T/old.csv | cut -d, -f4 | sort -u)" = train ] || fail "old labels outside train"
ok
run_sb $T/oldplan label $T/old.yaml --results $T/rold --plan
expect_exit 0 $T/oldplan
expect_in $T/oldplan.out "sends no requests"

# Agreement on the test split equals scikit-learn's on the CSV itself.
run_sb $T/agree agree $T/melt.yaml --split test --json
expect_exit 0 $T/agree
$PY - "$SB_SHARED_DATA/melt/meld_test.csv" "$T/agree.out" <<'PY' || fail "agree differs from sklearn"
import csv, json, sys
from sklearn.metrics import cohen_kappa_score, confusion_matrix
emo = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
rows = [r for r in csv.DictReader(open(sys.argv[1], encoding="utf-8"))]
rows = [r for r in rows if r["llm_label"] in emo]
rep = json.load(open(sys.argv[2]))["meld"]
classes = rep["classes"]
assert sorted(classes) == sorted(emo), classes
pair = rep["pairs"][0]
assert (pair["a"], pair["b"]) == ("human", "melt_test"), pair
a = [r["Emotion"] for r in rows]
b = [r["llm_label"] for r in rows]
k = cohen_kappa_score(a, b)
raw = sum(x == y for x, y in zip(a, b)) / len(a)
cm = confusion_matrix(a, b, labels=classes).tolist()
print("n", len(rows), pair["n"], "kappa", k, pair["cohen_kappa"], "raw", raw, pair["raw"])
assert pair["n"] == len(rows) == 1791, pair["n"]
assert abs(pair["cohen_kappa"] - k) < 1e-9
assert abs(pair["raw"] - raw) < 1e-12
assert pair["confusion"] == cm
PY
ok
run_sb $T/agreet agree $T/melt.yaml --split test
expect_exit 0 $T/agreet
expect_in $T/agreet.out "human vs melt_test"
expect_in $T/agreet.out "confusion: rows human, columns melt_test"

# Export in serbench's layout and in MELT's.
run_sb $T/exp export labels $T/melt.yaml --labeller melt_test --out $T/labels.csv
expect_exit 0 $T/exp
run_sb $T/expm export labels $T/melt.yaml --labeller melt_test --format melt --out $T/melt.csv
expect_exit 0 $T/expm
run_sb $T/expbad export labels $T/melt.yaml --format melt --out $T/x.csv
expect_exit 2 $T/expbad
$PY - "$SB_SHARED_DATA/melt/meld_test.csv" "$T/labels.csv" "$T/melt.csv" <<'PY' || fail "exports"
import csv, sys
orig = {r["filename"]: r for r in csv.DictReader(open(sys.argv[1], encoding="utf-8"))}
ours = list(csv.DictReader(open(sys.argv[2], encoding="utf-8")))
assert len(ours) == 1794, len(ours)
inv = [r for r in ours if r["status"] == "invalid"]
assert sorted(r["raw"] for r in inv) == ["comfort", "frustration", "frustration"], inv
assert all(r["label"] == "" and "not one of the 7 classes" in r["reason"] for r in inv)
assert all(r["dataset"] == "meld" and r["labeller"] == "melt_test" and r["split"] == "test" for r in ours)
melt = list(csv.DictReader(open(sys.argv[3], encoding="utf-8")))
assert list(melt[0].keys()) == list(next(iter(orig.values())).keys()), melt[0].keys()
assert len(melt) == 1794
def secs(t):  # MELD writes both "0:10:44,769" and "00:10:44,769"; the export normalises
    h, m, s = t.replace(",", ".").split(":")
    return round((int(h) * 60 + int(m)) * 60 * 1000 + float(s) * 1000)
for r in melt:
    o = orig[r["filename"]]
    for col in ["llm_label", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
                "Episode", "Sr_No."]:
        assert r[col] == o[col], (r["filename"], col, r[col], o[col])
    for col in ["StartTime", "EndTime"]:
        assert secs(r[col]) == secs(o[col]), (r["filename"], col, r[col], o[col])
PY
ok

# IEMOCAP: one rater's labels as a labeller, agreement with the majority, raters' statistics.
export IEMOCAP_GEN_DIR=$(gen_once iemocap make-iemocap-corpus)
cat >"$T/iem.yaml" <<YAML
results: $T/ri
datasets:
  iemocap: {plugin: iemocap, root: "$IEMOCAP_GEN_DIR/IEMOCAP_full_release", protocol: iemocap-4class-loso}
labellers:
  human: {plugin: human}
  e2: {plugin: human, rater: E2, rater_map: {Neutral: neu, Happiness: hap, Excited: hap, Anger: ang, Sadness: sad}}
  nobody: {plugin: human, rater: X9}
encoders:
  fbank: {plugin: fbank}
heads:
  linear: {plugin: linear}
experiment:
  train: {dataset: iemocap, split: train, labels: human}
  dev: {dataset: iemocap, split: dev, labels: human}
  test: [{dataset: iemocap, split: test}]
  encoder: fbank
  head: linear
sweep: {experiment.train.labels: [human, e2]}
YAML
run_sb $T/ilab label $T/iem.yaml
expect_exit 0 $T/ilab
expect_in $T/ilab.err "rater E2:"
run_sb $T/iagree agree $T/iem.yaml --json
expect_exit 0 $T/iagree
$PY - "$T/iagree.out" <<'PY' || fail "iemocap agree"
import json, sys, math
rep = json.load(open(sys.argv[1]))["iemocap"]
pairs = {(p["a"], p["b"]): p for p in rep["pairs"]}
assert ("e2", "human") in pairs or ("human", "e2") in pairs, pairs.keys()
p = pairs.get(("e2", "human")) or pairs.get(("human", "e2"))
assert p["n"] > 0 and -1 <= p["cohen_kappa"] <= 1, p
r = rep["raters"]
assert r["items_rated"] > 0 and r["fleiss_items"] > 0
assert -1 <= r["krippendorff_alpha"] <= 1 and -1 <= r["fleiss_kappa"] <= 1, r
PY
ok
run_sb $T/inobody label $T/iem.yaml 'sweep={experiment.train.labels: [nobody]}'
expect_exit 2 $T/inobody
expect_in $T/inobody.err "rater 'X9' rated none"
run_sb $T/icorp corpus $T/iem.yaml
expect_in $T/icorp.out "raters ("
expect_in $T/icorp.out "E2="
# Editing a labeller's file changes its labels' key: the edited labels are used, never the
# stored ones of the old file (the options hold only the path).
cp "$SB_SHARED_DATA/melt/meld_test.csv" $T/edit.csv
cat >"$T/edit.yaml" <<YAML
include: [$T/melt.yaml]
labellers:
  melt_test: {file: "$T/edit.csv"}
YAML
run_sb $T/ed1 label $T/edit.yaml --results $T/red
expect_exit 0 $T/ed1
expect_in $T/ed1.err "1791 labelled, 3 invalid, 0 failed"
$PY - $T/edit.csv <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8", newline="")))
col = rows[0].index("llm_label")
for r in rows[1:]:
    if r[col] in ("frustration", "comfort"):
        r[col] = "neutral"
csv.writer(open(sys.argv[1], "w", encoding="utf-8", newline="")).writerows(rows)
PY
run_sb $T/ed2 label $T/edit.yaml --results $T/red
expect_exit 0 $T/ed2
expect_not_in $T/ed2.err "complete in store"
expect_in $T/ed2.err "1794 labelled, 0 invalid, 0 failed"
ok
done_ok
