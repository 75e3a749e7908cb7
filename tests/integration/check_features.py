#!/usr/bin/python3
"""tests/integration/check_features.py — checks a file from `serbench export features` with
numpy alone (the safetensors header parsed by hand, as a user without the safetensors
module would).

    check_features.py EXPORT N_UTTS N_LAYERS [UTT_ID EMBED.safetensors LAYERS...] ...

Checks: the header is the safetensors layout (8-byte length, JSON, contiguous offsets);
`pooled` is F32 [N_UTTS, N_LAYERS, dim]; metadata utt_ids has N_UTTS ids; every utterance
has a frames tensor [N_LAYERS, T, H]. For each UTT_ID given with an embed file: frames.UTT
equals the embed's hidden_states.<layer> (layer list given as comma-separated indices, in
slot order) rounded to F16 (or equal, for F32 frames), and pooled[UTT] equals their mean over
time within 1e-6 + 1e-5 |ref|. Prints the largest errors; exits 1 on any failure."""
import json
import struct
import sys

import numpy as np

DT = {"F32": np.float32, "F16": np.float16}


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, f"{path}: header length {n} not padded to 8"
    hdr = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = hdr.pop("__metadata__", {})
    data = raw[8 + n:]
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in hdr.items())
    pos = 0
    for b, e, k in spans:
        assert b == pos, f"{path}: tensor {k} starts at {b}, expected {pos} (gap or overlap)"
        pos = e
    assert pos == len(data), f"{path}: data area {len(data)} bytes, tensors cover {pos}"
    out = {}
    for k, v in hdr.items():
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[b:e], dtype=DT[v["dtype"]]).reshape(v["shape"])
    return out, meta


def main(argv):
    path, n_utts, n_layers = argv[1], int(argv[2]), int(argv[3])
    t, meta = load(path)
    bad = 0
    ids = json.loads(meta["utt_ids"])
    pooled = t["pooled"]
    if pooled.dtype != np.float32 or pooled.shape[:2] != (n_utts, n_layers) or len(ids) != n_utts:
        print(f"FAIL pooled {pooled.dtype} {pooled.shape}, {len(ids)} ids; want "
              f"({n_utts}, {n_layers}, dim)")
        return 1
    missing = [u for u in ids if f"frames.{u}" not in t]
    if missing:
        print(f"FAIL {len(missing)} utterances without frames, e.g. {missing[:3]}")
        bad += 1
    for u in ids:
        fr = t.get(f"frames.{u}")
        if fr is not None and (fr.ndim != 3 or fr.shape[0] != n_layers):
            print(f"FAIL frames.{u} has shape {fr.shape}")
            bad += 1
    rest = argv[4:]
    for i in range(0, len(rest), 3):
        utt, emb, layers = rest[i], rest[i + 1], [int(x) for x in rest[i + 2].split(",")]
        h, _ = load(emb)
        fr = t[f"frames.{utt}"]
        row = pooled[ids.index(utt)]
        for k, layer in enumerate(layers):
            ref = h[f"hidden_states.{layer}"]
            want = ref.astype(fr.dtype)  # numpy rounds to nearest even
            if fr[k].shape != ref.shape:
                print(f"FAIL {utt} layer {layer}: frames {fr[k].shape} vs embed {ref.shape}")
                bad += 1
                continue
            diff = int(np.sum(fr[k].view(np.uint16 if fr.dtype == np.float16 else np.uint32)
                              != want.view(np.uint16 if fr.dtype == np.float16 else np.uint32)))
            mean = ref.astype(np.float64).mean(axis=0)
            err = np.abs(row[k][: ref.shape[1]].astype(np.float64) - mean)
            tol = 1e-6 + 1e-5 * np.abs(mean)
            worst = int(np.argmax(err - tol))
            print(f"{utt} layer {layer}: T {ref.shape[0]}, {diff} of {want.size} frame values "
                  f"differ from {fr.dtype} rounding; pooled vs mean max |diff| "
                  f"{err.max():.3g} (at {worst})")
            if diff:
                bad += 1
            if np.any(err > tol):
                print(f"FAIL {utt} layer {layer}: pooled[{worst}] = {row[k][worst]:.9g}, "
                      f"mean = {mean[worst]:.9g}")
                bad += 1
    print("ok" if not bad else f"{bad} failures")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
