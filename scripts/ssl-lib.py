"""scripts/ssl-lib.py — shared pieces of the SSL parity scripts (loaded by
ssl-make-checkpoint.py and ssl-reference.py through importlib): a minimal safetensors
reader/writer in numpy, torchaudio model builders for the four families from a Hugging Face
config.json, and the HF <-> torchaudio key map. The WavLM attention and the data2vec-audio
positional stack are written here from ../shared/reference/ssl-encoders.md (sections 3, 4).
"""
import json
import math
import os
import struct

import numpy as np

# ---- safetensors (numpy) ---------------------------------------------------------------

_DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
       "I32": np.int32, "U8": np.uint8}


def bf16_bits(a):
    """float32 array -> uint16 bfloat16 bits, round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def st_write(path, tensors, dtype="F32", metadata=None):
    """tensors: {name: np.ndarray}; float arrays are stored as `dtype` (F32, F16, BF16)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        if a.dtype.kind == "f":
            if dtype == "BF16":
                raw, dt = bf16_bits(a).tobytes(), "BF16"
            else:
                raw, dt = np.ascontiguousarray(a, dtype=_DT[dtype]).tobytes(), dtype
        else:
            raw = np.ascontiguousarray(a).tobytes()
            dt = {np.dtype(v): k for k, v in _DT.items()}[a.dtype]
        header[name] = {"dtype": dt, "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def st_read(path):
    """-> {name: float32/other np.ndarray} (BF16/F16 widened to float32)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base, out = 8 + n, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[base + b:base + e]
        if info["dtype"] == "BF16":
            a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, _DT[info["dtype"]])
        out[name] = a.reshape(info["shape"]).astype(
            np.float32 if info["dtype"] in ("BF16", "F16") else a.dtype)
    return out


def read_checkpoint(d):
    """config dict and {name: array} with model prefixes stripped, from a folder."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    files = ["model.safetensors"]
    idx = os.path.join(d, "model.safetensors.index.json")
    if not os.path.exists(os.path.join(d, files[0])) and os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    sd = {}
    for fn in files:
        for k, v in st_read(os.path.join(d, fn)).items():
            for p in ("wav2vec2.", "hubert.", "wavlm.", "data2vec_audio."):
                if k.startswith(p):
                    k = k[len(p):]
                    break
            sd[k] = v
    pre = {}
    pp = os.path.join(d, "preprocessor_config.json")
    if os.path.exists(pp):
        with open(pp) as f:
            pre = json.load(f)
    return cfg, sd, pre


# ---- models ----------------------------------------------------------------------------

def wavlm_bucket(r, num_buckets=320, max_distance=800):
    """Reference section 3 closed form (numpy, elementwise over int array r)."""
    nb = num_buckets // 2
    max_exact = nb // 2
    a = np.abs(r)
    out = np.where(r > 0, nb, 0)
    with np.errstate(divide="ignore"):
        large = max_exact + np.trunc(np.log(np.maximum(a, 1) / max_exact)
                                     / math.log(max_distance / max_exact) * (nb - max_exact))
    large = np.minimum(large, nb - 1).astype(np.int64)
    return out + np.where(a < max_exact, a, large)


def build_model(cfg):
    """A torchaudio Wav2Vec2Model shaped by an HF config.json (eval mode)."""
    import torch
    import torchaudio

    mt = cfg["model_type"]
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    G = cfg.get("num_conv_pos_embedding_groups", 16)
    convs = list(zip(cfg["conv_dim"], cfg["conv_kernel"], cfg["conv_stride"]))
    d2v = mt == "data2vec-audio"
    mode = "layer_norm" if d2v or cfg.get("feat_extract_norm") == "layer" else "group_norm"
    pre_ln = bool(cfg.get("do_stable_layer_norm", False)) and not d2v
    K = cfg.get("conv_pos_kernel_size", 19) if d2v else cfg.get("num_conv_pos_embeddings", 128)
    model = torchaudio.models.wav2vec2_model(
        mode, convs, bool(cfg.get("conv_bias", False)), H, 0.0, K if not d2v else 128, G,
        cfg["num_hidden_layers"], nh, 0.0, cfg["intermediate_size"], 0.0, 0.0, pre_ln, 0.0, None)
    tr = model.encoder.transformer
    if d2v:
        tr.pos_conv_embed = Data2VecPosConv(H, K, G, cfg.get("num_conv_pos_embeddings", 5))
    if mt == "wavlm":
        emb = torch.nn.Embedding(cfg.get("num_buckets", 320), nh)
        for i, layer in enumerate(tr.layers):
            layer.attention = WavLMAttention(H, nh, emb, i == 0, cfg.get("num_buckets", 320),
                                             cfg.get("max_bucket_distance", 800))
    model.eval()
    return model


def _torch_modules():
    import torch
    import torch.nn.functional as F

    class _D2V(torch.nn.Module):
        """data2vec-audio positional stack: n x (Conv1d K, pad K//2, groups G -> LN without
        affine -> GELU), input [B, T, H]; the Transformer adds it to x once."""

        def __init__(self, H, K, G, n):
            super().__init__()
            self.embed_dim = H
            self.layers = torch.nn.ModuleList()
            for _ in range(n):
                m = torch.nn.Module()
                m.conv = torch.nn.Conv1d(H, H, K, padding=K // 2, groups=G)
                self.layers.append(m)

        def forward(self, x):
            x = x.transpose(1, 2)
            for m in self.layers:
                x = m.conv(x)
                x = F.layer_norm(x.transpose(1, 2), (self.embed_dim,)).transpose(1, 2)
                x = F.gelu(x)
            return x.transpose(1, 2)

    class _WavLM(torch.nn.Module):
        """Self-attention with WavLM's gated relative position bias (reference section 3):
        S_h[i,j] = q_i.k_j/sqrt(d) + gate[h,i] * E[bucket(j-i), h], gate from the module
        input split per head through gru_rel_pos_linear (8 outputs) and gru_rel_pos_const."""

        def __init__(self, H, nh, emb, owner, num_buckets, max_distance):
            super().__init__()
            self.embed_dim, self.nh, self.d = H, nh, H // nh
            self.q_proj = torch.nn.Linear(H, H)
            self.k_proj = torch.nn.Linear(H, H)
            self.v_proj = torch.nn.Linear(H, H)
            self.out_proj = torch.nn.Linear(H, H)
            self.gru_rel_pos_linear = torch.nn.Linear(self.d, 8)
            self.gru_rel_pos_const = torch.nn.Parameter(torch.ones(1, nh, 1, 1))
            if owner:
                self.rel_attn_embed = emb
            self._emb = [emb]  # shared, not registered twice
            self.nb, self.md = num_buckets, max_distance

        def forward(self, x, attention_mask=None):
            B, T, H = x.shape
            nh, d = self.nh, self.d
            q = self.q_proj(x).view(B, T, nh, d).transpose(1, 2)
            k = self.k_proj(x).view(B, T, nh, d).transpose(1, 2)
            v = self.v_proj(x).view(B, T, nh, d).transpose(1, 2)
            s = q @ k.transpose(-1, -2) / math.sqrt(d)
            pos = np.arange(T)
            bucket = torch.from_numpy(wavlm_bucket(pos[None, :] - pos[:, None], self.nb, self.md))
            P = self._emb[0].weight[bucket].permute(2, 0, 1)  # nh, T, T
            z = self.gru_rel_pos_linear(x.view(B, T, nh, d))  # B, T, nh, 8
            a = torch.sigmoid(z[..., :4].sum(-1))
            b = torch.sigmoid(z[..., 4:].sum(-1))
            gate = a * (b * self.gru_rel_pos_const.view(nh) - 1.0) + 2.0  # B, T, nh
            s = s + gate.permute(0, 2, 1).unsqueeze(-1) * P.unsqueeze(0)
            o = torch.softmax(s, dim=-1) @ v
            return self.out_proj(o.transpose(1, 2).reshape(B, T, H))

    return _D2V, _WavLM


def Data2VecPosConv(*a):
    return _torch_modules()[0](*a)


def WavLMAttention(*a):
    return _torch_modules()[1](*a)


def ta_to_hf(name):
    """torchaudio state-dict key -> HF key (prefix-free), per reference section 6.5."""
    if name.startswith("encoder.feature_projection."):
        return name[len("encoder."):]
    if name.startswith("encoder.transformer."):
        return "encoder." + name[len("encoder.transformer."):]
    if name.startswith("aux."):
        return "lm_head." + name[len("aux."):]
    return name


def hf_to_ta(name):
    if name.startswith("feature_projection."):
        return "encoder." + name
    if name.startswith("encoder."):
        return "encoder.transformer." + name[len("encoder."):]
    return name


def load_hf_weights(model, sd):
    """Load a prefix-free HF state dict into a build_model() model."""
    import torch

    sd = dict(sd)
    for base in ("encoder.pos_conv_embed.conv.",):
        if base + "parametrizations.weight.original0" in sd:
            sd[base + "weight_g"] = sd.pop(base + "parametrizations.weight.original0")
            sd[base + "weight_v"] = sd.pop(base + "parametrizations.weight.original1")
        elif base + "weight" in sd and base + "weight_v" not in sd:
            w = sd.pop(base + "weight")
            sd[base + "weight_v"] = w
            sd[base + "weight_g"] = np.sqrt((w.astype(np.float64) ** 2).sum(axis=(0, 1),
                                                                            keepdims=True))
    target = model.state_dict()
    new = {}
    for k, v in sd.items():
        tk = hf_to_ta(k)
        if tk in target:
            new[tk] = torch.from_numpy(np.ascontiguousarray(v)).to(target[tk].dtype)
    missing = sorted(set(target) - set(new))
    if missing:
        raise SystemExit("reference: weights missing for %s" % missing[:5])
    model.load_state_dict(new)


def hidden_states(model, wav, cfg):
    """HF output_hidden_states: N+1 arrays [T, H] (reference section 1.7)."""
    import torch

    with torch.no_grad():
        x, _ = model.feature_extractor(wav[None, :], None)
        x = model.encoder.feature_projection(x)
        tr = model.encoder.transformer
        x = tr._preprocess(x)
        out = [x]
        for layer in tr.layers:
            x = layer(x, None)
            out.append(x)
        if not tr.layer_norm_first:  # pre-LN: only the last entry gets the final LN
            out[-1] = tr.layer_norm(out[-1])
    return [o[0].double().numpy() for o in out]
