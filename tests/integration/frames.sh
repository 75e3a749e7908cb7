#!/usr/bin/env bash
# Frame-level features end to end: a small random wav2vec2 checkpoint with `frames: f16` and
# a layer list out of order encodes the demo corpus; `serbench export features` writes one
# safetensors file; numpy alone (tests/integration/check_features.py) checks that frames.<utt>
# is `serbench embed`'s hidden states rounded to F16 and that pooled is their mean. Also:
# frames f32, an encoder without frames (no frames tensors, nothing else changes), the
# export's usage errors, an ABI 1.0 encoder plugin next to one that claims frames it cannot
# deliver, and frames out of F16's range or not finite.
. "$(dirname "$0")/lib.sh"
/usr/bin/python3 -c "import torch, numpy" 2>/dev/null || { echo "SKIP: no torch/numpy"; exit 77; }
export SERBENCH_DEMO_DIR=$(demo_corpus)
CK=$T/w2v
/usr/bin/python3 "$SB_SOURCE_ROOT/scripts/ssl-make-checkpoint.py" --arch wav2vec2 --size small \
  "$CK" >$T/mk.log 2>&1 || { cat $T/mk.log; fail "checkpoint"; }
CHECK="/usr/bin/python3 $SB_SOURCE_ROOT/tests/integration/check_features.py"
cat > $T/cfg.yaml <<YAML
include: [$SB_SOURCE_ROOT/configs/demo.yaml]
plugin_path: [$SB_FIXTURE_PLUGINS, $SB_FIXTURE_PLUGINS/abi]
encoders:
  w2v: {plugin: wav2vec2, checkpoint: $CK, layers: [3, 0, 1], frames: f16}
  w2v32: {plugin: wav2vec2, checkpoint: $CK, layers: [2], frames: f32}
  w2v_pooled: {plugin: wav2vec2, checkpoint: $CK, layers: [2]}
  old: {plugin: slowenc10}
  liar: {plugin: slowenc_noframes, frames: f16}
  loud: {plugin: slowenc, frames: f16, frame_gain: 1.0e5}
  inf: {plugin: slowenc, frames: f32, frame_gain: 1.0e38}
experiment: {encoder: w2v}
seeds: [1]
sweep:
  experiment.encoder: [w2v, w2v32, w2v_pooled]
YAML

# 1. Encode (one thread, as embed below, so the floats are the same) and export.
run_sb $T/enc encode $T/cfg.yaml --results $T/r --threads 1
expect_exit 0 $T/enc
run_sb $T/ex export features $T/cfg.yaml --results $T/r --dataset demo --encoder w2v \
  --out $T/w2v.safetensors --threads 1
expect_exit 0 $T/ex
expect_in $T/ex.err "pooled features of 240 utterances of demo under w2v, 240 with frames"
args=()
for u in spk01_000 spk02_007 spk03_019; do
  wav=$(grep "^$u," "$SERBENCH_DEMO_DIR/manifest.csv" | cut -d, -f2)
  run_sb $T/emb_$u embed --checkpoint $CK --threads 1 --out $T/h_$u.safetensors \
    "$SERBENCH_DEMO_DIR/$wav"
  expect_exit 0 $T/emb_$u
  args+=("$u" "$T/h_$u.safetensors" 3,0,1)
done
$CHECK $T/w2v.safetensors 240 3 "${args[@]}" >$T/check.out 2>&1 || { cat $T/check.out; fail "f16 frames"; }
cat $T/check.out
ok

# 2. F32 frames are the hidden states exactly.
run_sb $T/ex32 export features $T/cfg.yaml --results $T/r --dataset demo --encoder w2v32 \
  --out $T/w2v32.safetensors
expect_exit 0 $T/ex32
$CHECK $T/w2v32.safetensors 240 1 spk02_007 $T/h_spk02_007.safetensors 2 >$T/check32.out 2>&1 ||
  { cat $T/check32.out; fail "f32 frames"; }
ok

# 3. Without frames: the chunk files hold only the pooled tensors, and the export has none.
run_sb $T/exp export features $T/cfg.yaml --results $T/r --dataset demo --encoder w2v_pooled \
  --out $T/pooled.safetensors
expect_exit 0 $T/exp
expect_in $T/exp.err "240 utterances of demo under w2v_pooled, 0 with frames"
/usr/bin/python3 - $T/pooled.safetensors $T/w2v32.safetensors <<'PY' || fail "pooled-only export"
import json, struct, sys
import numpy as np
def load(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n]); h.pop("__metadata__")
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
                             np.float32 if v["dtype"] == "F32" else np.float16).reshape(v["shape"])
            for k, v in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
assert list(a) == ["pooled"], list(a)[:5]
# Same layer, same pooling: frames on or off does not change the pooled features.
assert np.array_equal(a["pooled"], b["pooled"]), np.abs(a["pooled"] - b["pooled"]).max()
PY
ok
n_frames_files=$(grep -l '\.frames"' $T/r/features/*/*.safetensors | wc -l)
n_files=$(ls $T/r/features/*/*.safetensors | wc -l)
[ "$n_frames_files" -gt 0 ] && [ "$n_frames_files" -lt "$n_files" ] ||
  fail "frames tensors in $n_frames_files of $n_files chunk files"
ok

# 4. Usage errors name what to do.
run_sb $T/u1 export features $T/cfg.yaml --results $T/r --dataset demo --encoder nope --out $T/x
expect_exit 2 $T/u1
expect_in $T/u1.err "no run of the config uses an encoder named 'nope' (its runs use: w2v, w2v32, w2v_pooled)"
run_sb $T/u2 export features $T/cfg.yaml --results $T/r --dataset demo --out $T/x
expect_exit 2 $T/u2
expect_in $T/u2.err "export features needs --encoder NAME"
run_sb $T/u3 export features $T/cfg.yaml --results $T/r --encoder w2v
expect_exit 2 $T/u3
expect_in $T/u3.err "export needs --out FILE.safetensors"
run_sb $T/u4 export predictions $T/cfg.yaml --results $T/r --encoder w2v --out $T/p.csv
expect_exit 2 $T/u4
expect_in $T/u4.err "--dataset and --encoder belong to export features"
# Nothing stored yet for this encoder: a clear error, no file.
run_sb $T/u5 export features $T/cfg.yaml --results $T/r2 --dataset demo --encoder w2v --out $T/none.st
expect_exit 2 $T/u5
expect_in $T/u5.err "no stored features of dataset demo under encoder w2v"
expect_in $T/u5.err "run serbench encode CONFIG first"
[ ! -e $T/none.st ] || fail "a file was written"
ok

# 5. An encoder built against ABI 1.0 (smaller vtable, no frame fields) loads and encodes;
# one whose 1.0-sized vtable hides a frames call while info claims frames is refused.
sed '/^sweep:/,$d' $T/cfg.yaml > $T/one.yaml
# With one dataset and one encoder in the runs, the flags may be left out.
run_sb $T/ex1 export features $T/one.yaml --results $T/r --out $T/one.safetensors
expect_exit 0 $T/ex1
expect_in $T/ex1.err "240 utterances of demo under w2v, 240 with frames"
cmp -s $T/one.safetensors $T/w2v.safetensors || fail "the default export differs"
run_sb $T/old encode $T/one.yaml --results $T/r3 experiment.encoder=old
expect_exit 0 $T/old
expect_in $T/old.err "240 encoded, 0 failed"
run_sb $T/liar encode $T/one.yaml --results $T/r3 experiment.encoder=liar
expect_exit 2 $T/liar
expect_in $T/liar.err "encoder plugin slowenc_noframes reports frame_dim=2 but has no frames call"

# 6. Frame values beyond float16's range are stored as Inf with a warning; NaN/Inf frames
# from the encoder make the item fail (left out, exit 1), like NaN/Inf pooled features.
run_sb $T/loud encode $T/one.yaml --results $T/r3 experiment.encoder=loud
expect_exit 0 $T/loud
expect_in $T/loud.err "240 utterances have frame values beyond float16's range (|x| >= 65520)"
run_sb $T/inf encode $T/one.yaml --results $T/r3 experiment.encoder=inf
expect_exit 1 $T/inf
expect_in $T/inf.err "encoder produced NaN/Inf frames (left out)"
done_ok
