#!/usr/bin/env bash
# Cross-corpus testing through label maps: the demo corpus relabelled into another label
# space. Mapping predictions (train → test classes) or gold labels (test → train classes)
# one to one must give exactly the metrics of testing in the same space; a partial map
# drops the test items it cannot reach and says how many; an undeclared or ill-fitting map
# is a config error.
. "$(dirname "$0")/lib.sh"
DEMO=$(demo_corpus)
# The same corpus under other class names.
sed -e 's/,neutral,/,neu,/; s/,happy,/,hap,/; s/,angry,/,ang,/; s/,sad,/,sad4,/' \
    "$DEMO/manifest.csv" > "$DEMO/manifest-iem.csv.tmp.$$"
mv "$DEMO/manifest-iem.csv.tmp.$$" $T/iem.csv
sed -i "s|,wav/|,$DEMO/wav/|" $T/iem.csv
cat > $T/cfg.yaml <<YAML
datasets:
  demo: {plugin: manifest, path: $DEMO/manifest.csv, classes: [neutral, happy, angry, sad]}
  iem: {plugin: manifest, path: $T/iem.csv, classes: [neu, hap, ang, sad4], label_space: iem4}
label_maps:
  demo-to-iem: {neutral: neu, happy: hap, angry: ang, sad: sad4}
  iem-to-demo: {neu: neutral, hap: happy, ang: angry, sad4: sad}
  two: {neutral: neu, happy: hap}
heads:
  linear: {plugin: linear, epochs: 30}
experiment:
  train: {dataset: demo, split: train}
  dev: {dataset: demo, split: dev}
  test:
    - {dataset: demo, split: test}
    - {dataset: iem, split: test, label_map: demo-to-iem, name: pred-mapped}
    - {dataset: iem, split: test, label_map: iem-to-demo, name: gold-mapped}
    - {dataset: iem, split: test, label_map: two, name: partial}
  encoder: fbank
  head: linear
YAML
run_sb $T/run run $T/cfg.yaml --results $T/r
expect_exit 0 $T/run
q() { sqlite3 $T/r/serbench.db "SELECT printf('%.12f', value) FROM metrics WHERE test='$1' AND metric='$2'"; }
for m in wa ua macro_f1 weighted_f1; do
  [ "$(q demo/test $m)" = "$(q pred-mapped $m)" ] || fail "$m: pred-mapped $(q pred-mapped $m) != $(q demo/test $m)"
  [ "$(q demo/test $m)" = "$(q gold-mapped $m)" ] || fail "$m: gold-mapped $(q gold-mapped $m) != $(q demo/test $m)"
done
ok
# Partial map: 20 of the 40 test items (angry, sad) have no preimage and are dropped.
prov=$(sqlite3 $T/r/serbench.db "SELECT provenance FROM runs")
[ "$(echo "$prov" | jq '.tests.partial.dropped_by_map')" = 20 ] || fail "dropped count"
[ "$(echo "$prov" | jq -c '.tests.partial.classes')" = '["neu","hap","ang","sad4"]' ] || fail "classes"
[ "$(sqlite3 $T/r/serbench.db "SELECT n FROM metrics WHERE test='partial' AND metric='wa'")" = 20 ] || fail "n"
ok
# Predictions of the mapped test carry the test space's names.
run_sb $T/exp export predictions $T/cfg.yaml --results $T/r --out $T/p.csv
expect_exit 0 $T/exp
grep -q ',pred-mapped,.*,neu,\|,pred-mapped,.*,hap,' $T/p.csv || fail "mapped names in export"
ok
# No map between different spaces: a config error naming both spaces.
sed 's/, label_map: demo-to-iem//' $T/cfg.yaml > $T/nomap.yaml
run_sb $T/nomap run $T/nomap.yaml --results $T/r2
expect_exit 2 $T/nomap
expect_in $T/nomap.err "declare a map under label_maps:"
expect_in $T/nomap.err "iem4"
# A map naming unknown classes.
sed 's/two: {neutral: neu, happy: hap}/two: {neutral: neu, joy: hap}/' $T/cfg.yaml > $T/bad.yaml
run_sb $T/bad run $T/bad.yaml --results $T/r3
expect_exit 2 $T/bad
expect_in $T/bad.err "fits neither direction"
expect_in $T/bad.err "'joy'"
# An unknown map name.
sed 's/label_map: two/label_map: tow/' $T/cfg.yaml > $T/unk.yaml
run_sb $T/unk validate $T/unk.yaml
expect_exit 2 $T/unk
expect_in $T/unk.err "no label map 'tow' under label_maps: (did you mean 'two'?)"
ok

# A test corpus with more classes than training (train 4, test 5 with an unmapped 'fru'):
# the head predicts without seeing the test labels, the 'fru' items are dropped by the map.
awk -F, 'BEGIN{OFS=","} NR>1 && /,test,/ && n<5 && /,neu,/ {sub(/,neu,/, ",fru,"); n++} {print}' \
  $T/iem.csv > $T/iem5.csv
[ "$(grep -c ',fru,' $T/iem5.csv)" = 5 ] || fail "iem5.csv has no 5 fru items"
cat > $T/five.yaml <<YAML
datasets:
  demo: {plugin: manifest, path: $DEMO/manifest.csv, classes: [neutral, happy, angry, sad]}
  iem5: {plugin: manifest, path: $T/iem5.csv, classes: [neu, hap, ang, sad4, fru], label_space: iem5}
label_maps:
  iem-to-demo: {neu: neutral, hap: happy, ang: angry, sad4: sad}
heads:
  linear: {plugin: linear, epochs: 30}
experiment:
  train: {dataset: demo, split: train}
  dev: {dataset: demo, split: dev}
  test: {dataset: iem5, split: test, label_map: iem-to-demo, name: five}
  encoder: fbank
  head: linear
YAML
run_sb $T/five run $T/five.yaml --results $T/r5
expect_exit 0 $T/five
prov=$(sqlite3 $T/r5/serbench.db "SELECT provenance FROM runs")
[ "$(echo "$prov" | jq '.tests.five.dropped_by_map')" = 5 ] || fail "five: dropped $(echo "$prov" | jq '.tests.five.dropped_by_map'), want 5"
[ "$(sqlite3 $T/r5/serbench.db "SELECT n FROM metrics WHERE test='five' AND metric='wa'")" = 35 ] || fail "five: n"
ok

# A dev split in another label space: without a map a config error; with a map from its
# classes to the training classes, early stopping sees exactly what the demo dev gives it
# (the same metrics to the bit); a map the other way round is an error.
sed 's/^  dev: {dataset: demo, split: dev}/  dev: {dataset: iem, split: dev}/' $T/cfg.yaml > $T/dev.yaml
grep -q 'dataset: iem, split: dev' $T/dev.yaml || fail "dev.yaml"
run_sb $T/devnomap run $T/dev.yaml --results $T/rd0
expect_exit 2 $T/devnomap
expect_in $T/devnomap.err "the dev split is in label space iem4"
expect_in $T/devnomap.err "label_map: NAME"
sed 's/dev: {dataset: iem, split: dev}/dev: {dataset: iem, split: dev, label_map: iem-to-demo}/' \
  $T/dev.yaml > $T/devmap.yaml
run_sb $T/devmap run $T/devmap.yaml --results $T/rd1
expect_exit 0 $T/devmap
qd() { sqlite3 $1/serbench.db "SELECT group_concat(test||metric||printf('%.12f', value)) FROM (SELECT * FROM metrics ORDER BY test, metric)"; }
[ -n "$(qd $T/r)" ] && [ "$(qd $T/r)" = "$(qd $T/rd1)" ] || fail "a mapped dev split trained differently from the demo dev"
ok
sed 's/label_map: iem-to-demo}/label_map: demo-to-iem}/' $T/devmap.yaml > $T/devrev.yaml
run_sb $T/devrev run $T/devrev.yaml --results $T/rd2
expect_exit 2 $T/devrev
expect_in $T/devrev.err "does not map the dev classes to the training classes"
# The training corpus defines the space: a map on train is an error.
sed 's/train: {dataset: demo, split: train}/train: {dataset: demo, split: train, label_map: two}/' \
  $T/cfg.yaml > $T/trmap.yaml
run_sb $T/trmap validate $T/trmap.yaml
expect_exit 2 $T/trmap
expect_in $T/trmap.err "experiment.train takes no label_map"
done_ok
