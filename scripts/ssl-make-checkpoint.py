#!/usr/bin/python3
"""scripts/ssl-make-checkpoint.py — write a random-initialised SSL encoder as a Hugging Face
checkpoint folder (config.json, model.safetensors or shards, preprocessor_config.json), for
parity tests of serbench's C encoders against torchaudio.

    ssl-make-checkpoint.py OUT_DIR [--arch wav2vec2|hubert|wavlm|data2vec-audio]
        [--size small|base] [--pre-ln] [--norm group|layer] [--conv-bias] [--seed N]
        [--dtype F32|F16|BF16] [--shards N] [--wn legacy|parametrizations|folded]
        [--prefix] [--normalize none|true|false] [--layers N]

Every norm weight and bias, every bias, weight_g and gru_rel_pos_const is perturbed away
from its default init so that a missing affine or weight-norm step cannot hide. Needs
python3-torchaudio (Debian: torch 1.13 / torchaudio 0.13)."""
import argparse
import importlib.util
import json
import os
import sys

import numpy as np

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("ssl_lib", os.path.join(_here, "ssl-lib.py"))
lib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lib)


def make_config(a):
    small = a.size == "small"
    d2v = a.arch == "data2vec-audio"
    C = 32 if small else 512
    cfg = {
        "model_type": a.arch,
        "architectures": [{"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel",
                           "wavlm": "WavLMModel", "data2vec-audio": "Data2VecAudioModel"}[a.arch]],
        "conv_dim": [C] * 7,
        "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
        "conv_stride": [5, 2, 2, 2, 2, 2, 2],
        "conv_bias": bool(a.conv_bias),
        "feat_extract_activation": "gelu",
        "hidden_act": "gelu",
        "hidden_size": 48 if small else 768,
        "num_hidden_layers": a.layers if a.layers is not None else (3 if small else 12),
        "num_attention_heads": 4 if small else 12,
        "intermediate_size": 96 if small else 3072,
        "num_conv_pos_embedding_groups": 4 if small else 16,
        "layer_norm_eps": 1e-5,
        "torch_dtype": "float32",
    }
    if d2v:
        cfg["num_conv_pos_embeddings"] = 5
        cfg["conv_pos_kernel_size"] = 5 if small else 19
    else:
        cfg["feat_extract_norm"] = a.norm or ("layer" if a.pre_ln else "group")
        cfg["do_stable_layer_norm"] = bool(a.pre_ln)
        cfg["num_conv_pos_embeddings"] = 16 if small else 128
    if a.arch == "wavlm":
        cfg["num_buckets"] = 320
        cfg["max_bucket_distance"] = 800
    return cfg


def perturb(model, seed):
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if name.endswith("weight_g"):
                p.mul_(1.0 + 0.3 * torch.rand(p.shape, generator=g))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * r)
            elif name.endswith("bias"):
                p.add_(0.1 * r)
            elif name.endswith("gru_rel_pos_const"):
                p.copy_(1.0 + 0.5 * r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--arch", default="wav2vec2",
                    choices=["wav2vec2", "hubert", "wavlm", "data2vec-audio"])
    ap.add_argument("--size", default="small", choices=["small", "base"])
    ap.add_argument("--pre-ln", action="store_true")
    ap.add_argument("--norm", choices=["group", "layer"])
    ap.add_argument("--conv-bias", action="store_true")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--wn", default="legacy", choices=["legacy", "parametrizations", "folded"])
    ap.add_argument("--prefix", action="store_true",
                    help="save under the *ForCTC prefix with ignorable extra keys")
    ap.add_argument("--normalize", default="none", choices=["none", "true", "false"])
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("ssl-make-checkpoint: python3-torchaudio is not installed", file=sys.stderr)
        return 77
    torch.manual_seed(a.seed)
    cfg = make_config(a)
    model = lib.build_model(cfg)
    perturb(model, a.seed)

    sd = {}
    for k, v in model.state_dict().items():
        sd[lib.ta_to_hf(k)] = v.detach().double().numpy().astype(np.float32)
    base = "encoder.pos_conv_embed.conv."
    if base + "weight_g" in sd:
        g, v = sd.pop(base + "weight_g"), sd.pop(base + "weight_v")
        if a.wn == "legacy":
            sd[base + "weight_g"], sd[base + "weight_v"] = g, v
        elif a.wn == "parametrizations":
            sd[base + "parametrizations.weight.original0"] = g
            sd[base + "parametrizations.weight.original1"] = v
        else:
            norm = np.sqrt((v.astype(np.float64) ** 2).sum(axis=(0, 1), keepdims=True))
            sd[base + "weight"] = (g * v / norm).astype(np.float32)
    if a.prefix:
        p = {"wav2vec2": "wav2vec2.", "hubert": "hubert.", "wavlm": "wavlm.",
             "data2vec-audio": "data2vec_audio."}[a.arch]
        sd = {p + k: v for k, v in sd.items()}
        sd[p + "masked_spec_embed"] = np.zeros(cfg["hidden_size"], np.float32)
        sd["lm_head.weight"] = np.ones((32, cfg["hidden_size"]), np.float32)
        sd["lm_head.bias"] = np.zeros(32, np.float32)

    os.makedirs(a.out, exist_ok=True)
    for fn in os.listdir(a.out):
        if fn.endswith(".safetensors") or fn.endswith(".json"):
            os.remove(os.path.join(a.out, fn))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if a.normalize != "none":
        with open(os.path.join(a.out, "preprocessor_config.json"), "w") as f:
            json.dump({"do_normalize": a.normalize == "true", "feature_size": 1,
                       "padding_value": 0.0, "sampling_rate": 16000,
                       "return_attention_mask": False}, f, indent=2)
    meta = {"format": "pt"}
    if a.shards <= 1:
        lib.st_write(os.path.join(a.out, "model.safetensors"), sd, a.dtype, meta)
    else:
        names = sorted(sd)
        wmap = {}
        for s in range(a.shards):
            fn = "model-%05d-of-%05d.safetensors" % (s + 1, a.shards)
            part = {k: sd[k] for k in names[s::a.shards]}
            lib.st_write(os.path.join(a.out, fn), part, a.dtype, meta)
            wmap.update({k: fn for k in part})
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": wmap}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
