#!/usr/bin/python3
"""scripts/ssl-reference.py — the PyTorch reference for serbench's SSL encoders: build the
torchaudio model a Hugging Face checkpoint folder describes (WavLM and data2vec-audio with
the modules of ssl-lib.py), load its weights, run a 16 kHz mono WAV through it and write
every hidden state (HF output_hidden_states semantics) as F32 tensors hidden_states.0..N,
each [T, H], to a safetensors file — the same layout as `serbench embed`.

    ssl-reference.py CHECKPOINT_DIR IN.wav OUT.safetensors [--normalize auto|on|off]
        [--double] [--threads N]
"""
import argparse
import importlib.util
import os
import sys
import wave

import numpy as np

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("ssl_lib", os.path.join(_here, "ssl-lib.py"))
lib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lib)


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getframerate() != 16000:
            raise SystemExit("ssl-reference: %s: need 16-bit PCM at 16 kHz" % path)
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
        ch = w.getnchannels()
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1, dtype=np.float32)
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("wav")
    ap.add_argument("out")
    ap.add_argument("--normalize", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--double", action="store_true", help="run the model in float64")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("ssl-reference: python3-torchaudio is not installed", file=sys.stderr)
        return 77
    torch.set_num_threads(a.threads)
    cfg, sd, pre = lib.read_checkpoint(a.ckpt)
    model = lib.build_model(cfg)
    lib.load_hf_weights(model, sd)
    x = read_wav(a.wav)
    norm = a.normalize == "on"
    if a.normalize == "auto":
        if "do_normalize" in pre:
            norm = bool(pre["do_normalize"])
        else:
            norm = cfg["model_type"] == "data2vec-audio" or cfg.get("feat_extract_norm") == "layer"
    if norm:  # HF Wav2Vec2FeatureExtractor, statistics in float64
        xd = x.astype(np.float64)
        x = ((xd - xd.mean()) / np.sqrt(xd.var() + 1e-7)).astype(np.float32)
    wav = torch.from_numpy(x)
    if a.double:
        model = model.double()
        wav = wav.double()
    hs = lib.hidden_states(model, wav, cfg)
    lib.st_write(a.out, {"hidden_states.%d" % i: h.astype(np.float32) for i, h in enumerate(hs)},
                 "F32", {"normalize": "on" if norm else "off"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
