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
done_ok
