#!/usr/bin/env bash
# Bad input end to end: each case exits 2 (or 1 for per-item failures) with a message that
# names the file:line:col, key, plugin or utterance, and loses no finished work.
. "$(dirname "$0")/lib.sh"
DEMO=$(demo_corpus)

# A small working corpus of our own: 4 utterances per split copied from the demo.
mk_corpus() {  # DIR
  mkdir -p "$1/wav"
  head -1 "$DEMO/manifest.csv" > "$1/manifest.csv"
  for split in train dev test; do
    grep ",$split," "$DEMO/manifest.csv" | head -24 | while IFS=, read -r id audio rest; do
      cp "$DEMO/$audio" "$1/wav/$id.wav"
      echo "$id,wav/$id.wav,$rest" >> "$1/manifest.csv"
    done
  done
}
C=$T/corpus
mk_corpus $C

base() {  # FILE [extra yaml appended]
  cat > "$1" <<YAML
datasets:
  small: {plugin: manifest, path: $C/manifest.csv, classes: [neutral, happy, angry, sad]}
heads:
  linear: {plugin: linear, epochs: 5}
experiment:
  train: {dataset: small, split: train, labels: human}
  dev: {dataset: small, split: dev}
  test: {dataset: small, split: test}
  encoder: fbank
  head: linear
YAML
}

# 1. malformed YAML
printf 'datasets:\n  small: {plugin: manifest\nexperiment: [\n' > $T/bad.yaml
run_sb $T/e1 validate $T/bad.yaml
expect_exit 2 $T/e1
expect_in $T/e1.err "bad.yaml:"

# 2. wrong type
base $T/c2.yaml; sed -i 's/epochs: 5/epochs: many/' $T/c2.yaml
run_sb $T/e2 validate $T/c2.yaml
expect_exit 2 $T/e2
expect_in $T/e2.err "c2.yaml:4:"
expect_in $T/e2.err "option 'epochs' of plugin linear expects an integer, got 'many'"

# 3. unknown key, with a suggestion
base $T/c3.yaml; sed -i 's/epochs: 5/epoch: 5/' $T/c3.yaml
run_sb $T/e3 validate $T/c3.yaml
expect_exit 2 $T/e3
expect_in $T/e3.err "c3.yaml:4:"
expect_in $T/e3.err "unknown option 'epoch' for plugin linear (did you mean 'epochs'?)"

# 3b. unknown top-level and experiment keys, unknown metric
base $T/c3b.yaml; echo "sedes: [1, 2]" >> $T/c3b.yaml
run_sb $T/e3b validate $T/c3b.yaml
expect_exit 2 $T/e3b
expect_in $T/e3b.err "unknown key 'sedes' in the config's top level (did you mean 'seeds'?)"
base $T/c3c.yaml; sed -i 's/  head: linear/  head: linear\n  metrics: [wa, uaa]/' $T/c3c.yaml
run_sb $T/e3c validate $T/c3c.yaml
expect_exit 2 $T/e3c
expect_in $T/e3c.err "unknown metric 'uaa' (did you mean 'ua'?)"

# 4. missing include
base $T/c4.yaml; sed -i '1i include: [nowhere.yaml]' $T/c4.yaml
run_sb $T/e4 validate $T/c4.yaml
expect_exit 2 $T/e4
expect_in $T/e4.err "c4.yaml:1:"
expect_in $T/e4.err "nowhere.yaml"

# 5. include cycle
printf 'include: [b.yaml]\n' > $T/a.yaml; printf 'include: [a.yaml]\n' > $T/b.yaml
run_sb $T/e5 validate $T/a.yaml
expect_exit 2 $T/e5
expect_in $T/e5.err "a.yaml"
expect_in $T/e5.err "b.yaml"

# 6. undefined variable
base $T/c6.yaml; sed -i 's|path: [^,]*,|path: "${SB_NOT_SET_ANYWHERE}/m.csv",|' $T/c6.yaml
run_sb $T/e6 validate $T/c6.yaml
expect_exit 2 $T/e6
expect_in $T/e6.err "SB_NOT_SET_ANYWHERE"
expect_in $T/e6.err "c6.yaml:2:"

# 7. sweep over a key that does not exist
base $T/c7.yaml; printf 'sweep:\n  heads.linear.lrate: [0.1, 0.01]\n' >> $T/c7.yaml
run_sb $T/e7 validate $T/c7.yaml
expect_exit 2 $T/e7
expect_in $T/e7.err "heads.linear.lrate"
expect_in $T/e7.err "c7.yaml:12:"

# 8. missing plugin, with suggestion
base $T/c8.yaml; sed -i 's/plugin: linear/plugin: lineer/' $T/c8.yaml
run_sb $T/e8 validate $T/c8.yaml
expect_exit 2 $T/e8
expect_in $T/e8.err "c8.yaml:4:"
expect_in $T/e8.err "no head plugin 'lineer'"
expect_in $T/e8.err "Did you mean 'linear'?"

# 9. plugin built for another ABI major (through plugin_path)
base $T/c9.yaml; sed -i "1i plugin_path: [$SB_FIXTURE_PLUGINS]" $T/c9.yaml
sed -i 's/plugin: linear, epochs: 5/plugin: badmajor/' $T/c9.yaml
run_sb $T/e9 validate $T/c9.yaml
expect_exit 2 $T/e9
expect_in $T/e9.err "badmajor.so"
expect_in $T/e9.err "built for serbench plugin ABI major 2"

# 10. a plugin that fails to load shows dlerror's text
sed 's/plugin: badmajor/plugin: unresolved/' $T/c9.yaml > $T/c10.yaml
run_sb $T/e10 validate $T/c10.yaml
expect_exit 2 $T/e10
expect_in $T/e10.err "undefined symbol: sb_fixture_missing_symbol"

# 11. a missing audio file: by default (on_missing_audio: error) the run stops with exit 2,
# naming the utterance and the policy; what was encoded is kept. With skip, the run finishes
# (exit 0) and the run's record counts the item left out.
C2=$T/corpus2; mkdir -p $C2; cp -r $C/wav $C2/; cp $C/manifest.csv $C2/
missing=$(grep ',test,' $C2/manifest.csv | head -1 | cut -d, -f1)
rm $C2/wav/$missing.wav
base $T/c11.yaml; sed -i "s|$C/manifest.csv|$C2/manifest.csv|" $T/c11.yaml
run_sb $T/e11 run $T/c11.yaml --results $T/r11
expect_exit 2 $T/e11
expect_in $T/e11.err "$missing"
expect_in $T/e11.err "on_missing_audio: skip"
[ "$(sqlite3 $T/r11/serbench.db 'SELECT count(*) FROM features')" -gt 0 ] || fail "encoded items lost"
ok
sed -i "s|plugin: manifest,|plugin: manifest, on_missing_audio: skip,|" $T/c11.yaml
run_sb $T/e11b run $T/c11.yaml --results $T/r11
expect_exit 0 $T/e11b
expect_in $T/e11b.err "utterance $missing: skipped (on_missing_audio: skip)"
expect_in $T/e11b.out "(1)"
expect_not_in $T/e11b.err "to compute"   # nothing re-encoded after the stop
lo=$(sqlite3 $T/r11/serbench.db "SELECT provenance FROM runs" | jq '.tests["small/test"].left_out')
[ "$lo" = 1 ] || fail "the run's record should count 1 test item left out, got $lo"
ok

# 12. a corrupt audio file (text named .wav): the same policy, with the file named
C3=$T/corpus3; mkdir -p $C3; cp -r $C/wav $C3/; cp $C/manifest.csv $C3/
bad=$(grep ',train,' $C3/manifest.csv | sed -n 3p | cut -d, -f1)
echo "not audio at all" > $C3/wav/$bad.wav
base $T/c12.yaml; sed -i "s|$C/manifest.csv|$C3/manifest.csv|" $T/c12.yaml
run_sb $T/e12 run $T/c12.yaml --results $T/r12
expect_exit 2 $T/e12
expect_in $T/e12.err "$bad"
expect_in $T/e12.err "$bad.wav"
# Fixing the file and rerunning: only that item is encoded.
cp $C/wav/$bad.wav $C3/wav/$bad.wav
run_sb $T/e12b run $T/c12.yaml --results $T/r12
expect_exit 0 $T/e12b
expect_in $T/e12b.err "1 encoded"

# 12b. an encoder that fails on one item (too short for slowenc's frame): exit 1, reported
base $T/c12c.yaml
sed -i "1i plugin_path: [$SB_FIXTURE_PLUGINS]" $T/c12c.yaml
sed -i 's/  encoder: fbank/  encoder: slowenc/' $T/c12c.yaml
C4=$T/corpus4; mkdir -p $C4; cp -r $C/wav $C4/; cp $C/manifest.csv $C4/
short=$(grep ',train,' $C4/manifest.csv | sed -n 2p | cut -d, -f1)
sox $C/wav/$short.wav $C4/wav/$short.wav trim 0 0.01
sed -i "s|$C/manifest.csv|$C4/manifest.csv|" $T/c12c.yaml
run_sb $T/e12c run $T/c12c.yaml --results $T/r12c
expect_exit 1 $T/e12c
expect_in $T/e12c.err "utterance $short: shorter than one frame"
expect_in $T/e12c.err "1 failed item"

# 12d. an unexpected sample rate and channel count: resampled and downmixed, and noted
C5=$T/corpus5; mkdir -p $C5; cp -r $C/wav $C5/; cp $C/manifest.csv $C5/
odd=$(grep ',dev,' $C5/manifest.csv | sed -n 2p | cut -d, -f1)
sox $C/wav/$odd.wav -r 44100 -c 2 $C5/wav/$odd.wav
base $T/c12d.yaml; sed -i "s|$C/manifest.csv|$C5/manifest.csv|" $T/c12d.yaml
run_sb $T/e12d run $T/c12d.yaml --results $T/r12d
expect_exit 0 $T/e12d
expect_in $T/e12d.err "note: resampled 1 file to 16000 Hz (44100 Hz: 1); averaged the channels of 1 multi-channel file"

# 13. an unwritable results folder
base $T/c13.yaml
touch $T/plainfile
run_sb $T/e13 run $T/c13.yaml --results $T/plainfile/results
expect_exit 2 $T/e13
expect_in $T/e13.err "plainfile"

# 14. a results database from a newer schema: refused, untouched
mkdir -p $T/r14
sqlite3 $T/r14/serbench.db "PRAGMA user_version = 42; CREATE TABLE keep(x); INSERT INTO keep VALUES (7);"
run_sb $T/e14 run $T/c13.yaml --results $T/r14
expect_exit 2 $T/e14
expect_in $T/e14.err "schema version 42, newer than this serbench"
[ "$(sqlite3 $T/r14/serbench.db 'SELECT x FROM keep')" = 7 ] || fail "newer store was modified"
ok

# 15. a split that does not exist
base $T/c15.yaml; sed -i 's/split: train, labels/split: trian, labels/' $T/c15.yaml
run_sb $T/e15 run $T/c15.yaml --results $T/r15
expect_exit 2 $T/e15
expect_in $T/e15.err "no utterances in split 'trian' (its splits: train, dev, test)"

# 16. usage errors
run_sb $T/e16 run
expect_exit 2 $T/e16
run_sb $T/e17 frobnicate
expect_exit 2 $T/e17
run_sb $T/e18 run $T/c13.yaml --jobs zero
expect_exit 2 $T/e18
run_sb $T/e19 run $T/c13.yaml heads.linear.epochs=0
expect_exit 2 $T/e19
expect_in $T/e19.err "<command line>"
expect_in $T/e19.err "outside its range"
done_ok
