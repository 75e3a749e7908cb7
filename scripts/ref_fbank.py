#!/usr/bin/python3
"""Reference log-mel filterbank in numpy (float64), written independently of
core/lib/audio/fbank.c from the definition in docs/encoders.md "## fbank".

Used by scripts/make-fbank-fixtures (expected outputs for the C tests) and by
scripts/bench-fbank (the same computation timed in numpy).

    /usr/bin/python3 scripts/ref_fbank.py --bench [--repeat R] FILE.wav ...
"""
import argparse
import math
import sys
import time
import wave

import numpy as np

FLOOR = 1e-10

DEFAULTS = dict(sample_rate=16000, n_mels=80, frame_ms=25.0, hop_ms=10.0,
                f_min=20.0, f_max=0.0, preemph=0.97, n_fft=0)


def _round_half_up(x):
    return int(math.floor(x + 0.5))


def sizes(cfg):
    """Frame length L, hop H and FFT size N in samples."""
    sr = cfg["sample_rate"]
    L = _round_half_up(cfg["frame_ms"] * 1e-3 * sr)
    H = _round_half_up(cfg["hop_ms"] * 1e-3 * sr)
    N = cfg["n_fft"] or 1 << (L - 1).bit_length()
    return L, H, N


def mel_matrix(cfg):
    """[n_mels, N/2+1] triangular HTK-mel weights, linear in Hz between edges."""
    sr = cfg["sample_rate"]
    _, _, N = sizes(cfg)
    f_max = cfg["f_max"] if cfg["f_max"] > 0 else sr / 2.0
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    M = cfg["n_mels"]
    edges = hz(np.linspace(mel(cfg["f_min"]), mel(f_max), M + 2))
    freqs = np.arange(N // 2 + 1) * sr / N
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - left) / (centre - left)
    down = (right - freqs[None, :]) / (right - centre)
    return np.maximum(0.0, np.minimum(up, down))


def frames(x, cfg):
    """[T, L] frames of x (no centre padding, last partial frame dropped; a signal
    shorter than one frame becomes one zero-padded frame)."""
    L, H, _ = sizes(cfg)
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("empty signal")
    if len(x) < L:
        x = np.concatenate([x, np.zeros(L - len(x))])
    T = 1 + (len(x) - L) // H
    idx = np.arange(T)[:, None] * H + np.arange(L)[None, :]
    return x[idx]


def fbank(x, cfg=None, mel=None):
    """[T, n_mels] natural-log mel energies of the float signal x."""
    cfg = dict(DEFAULTS, **(cfg or {}))
    L, _, N = sizes(cfg)
    fr = frames(x, cfg)
    fr = fr - fr.mean(axis=1, keepdims=True)
    a = cfg["preemph"]
    fr = np.concatenate([fr[:, :1] * (1.0 - a), fr[:, 1:] - a * fr[:, :-1]], axis=1)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(L) / L)
    spec = np.fft.rfft(fr * window, n=N, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    if mel is None:
        mel = mel_matrix(cfg)
    return np.log(np.maximum(power @ mel.T, FLOOR))


def pool(feats, mode="mean+std"):
    """Mean (and population std) over frames: [n_mels] or [2*n_mels]."""
    mu = feats.mean(axis=0)
    if mode == "mean":
        return mu
    return np.concatenate([mu, feats.std(axis=0)])


def read_wav(path):
    """16-bit PCM mono WAV as float in [-1, 1) (same scaling as libsndfile) and its rate."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: need 16-bit mono PCM WAV")
        data = w.readframes(w.getnframes())
        return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0, w.getframerate()


def _bench(paths, repeat):
    sigs = []
    for p in paths:
        x, sr = read_wav(p)
        if sr != DEFAULTS["sample_rate"]:
            raise SystemExit(f"{p}: {sr} Hz, bench needs {DEFAULTS['sample_rate']} Hz")
        sigs.append(x)
    total = sum(len(x) for x in sigs) / DEFAULTS["sample_rate"]
    mel = mel_matrix(DEFAULTS)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in sigs:
            pool(fbank(x, mel=mel))
        best = min(best, time.perf_counter() - t0)
    print(f"numpy: {total:.1f} s audio in {best:.2f} s = {total / best:.0f}× real time (1 thread)")
    print(f"numpy_seconds={best:.6f} audio_seconds={total:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", action="store_true", help="time fbank+pool over WAV files")
    ap.add_argument("--repeat", type=int, default=3, help="bench repeats (best is kept)")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if not a.bench or not a.files:
        ap.print_help()
        return 2
    _bench(a.files, a.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
