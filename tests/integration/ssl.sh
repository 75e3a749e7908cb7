#!/usr/bin/env bash
# The SSL encoders through the whole pipeline: random-initialised checkpoints in Hugging
# Face layout (scripts/ssl-make-checkpoint.py, Debian's torch), the shipped encoder blocks
# (configs/base/encoders.yaml), a sweep over encoders × heads; features are computed once per
# (corpus, encoder) and an ablation over heads re-encodes nothing.
. "$(dirname "$0")/lib.sh"
/usr/bin/python3 -c "import torch, torchaudio" 2>/dev/null || { echo "SKIP: no torchaudio"; exit 77; }
export SERBENCH_DEMO_DIR=$(demo_corpus)
export MODELS=$T/models
for a in "wav2vec2 wav2vec2-base" "wavlm wavlm-base-plus" "data2vec-audio data2vec-audio-base"; do
  set -- $a
  /usr/bin/python3 "$SB_SOURCE_ROOT/scripts/ssl-make-checkpoint.py" --arch $1 --size small \
    "$MODELS/$2" >$T/mk.log 2>&1 || { cat $T/mk.log; fail "checkpoint $1"; }
done
cat > $T/cfg.yaml <<YAML
include: [$SB_SOURCE_ROOT/configs/demo.yaml, $SB_SOURCE_ROOT/configs/base/encoders.yaml]
heads:
  linear_slow: {plugin: linear, epochs: 20, lr: 1.0e-3}
seeds: [1]
sweep:
  experiment.encoder: [wav2vec2, wavlm, data2vec]
  experiment.head: [linear, linear_slow]
YAML
run_sb $T/run run $T/cfg.yaml --results $T/r
expect_exit 0 $T/run
[ "$(grep -cE '^\| (wav2vec2|wavlm|data2vec) \| linear(_slow)? \|' $T/run.out)" = 6 ] || fail "6 rows expected"
ok
# One feature stage per encoder (3), not per run (6).
[ "$(grep -c 'to compute' $T/run.err)" = 3 ] || fail "features computed more than once per encoder"
ok
# Each plugin's fingerprint is a hash of the weights: changing a checkpoint changes the key.
n1=$(sqlite3 $T/r/serbench.db "SELECT count(DISTINCT enc_key) FROM features")
[ "$n1" = 3 ] || fail "3 encoder keys, got $n1"
/usr/bin/python3 "$SB_SOURCE_ROOT/scripts/ssl-make-checkpoint.py" --arch wavlm --size small --seed 7 \
  "$MODELS/wavlm-base-plus" >$T/mk.log 2>&1 || fail "checkpoint"
run_sb $T/run2 run $T/cfg.yaml --results $T/r
expect_exit 0 $T/run2
[ "$(grep -c 'to compute' $T/run2.err)" = 1 ] || fail "only the changed encoder re-encodes"
expect_in $T/run2.err "2 complete, 0 failed, 4 already complete"
# A model_type that does not match the plugin is refused with the right plugin named.
run_sb $T/bad run $T/cfg.yaml --results $T/r encoders.wavlm.checkpoint=$MODELS/wav2vec2-base
expect_exit 2 $T/bad
expect_in $T/bad.err "wav2vec2"
done_ok
