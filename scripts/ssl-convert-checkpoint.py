#!/usr/bin/python3
"""scripts/ssl-convert-checkpoint.py — convert a Hugging Face checkpoint folder's
pytorch_model.bin (a torch pickle) into model.safetensors beside it, so serbench's SSL
encoders can read it. Tensors keep their names; float32 stays F32, float16 F16, bfloat16
BF16 (via float32). Needs python3-torch. Only open checkpoints you trust: torch.load runs a
pickle.

    ssl-convert-checkpoint.py CHECKPOINT_DIR [--force]
"""
import argparse
import importlib.util
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("ssl_lib", os.path.join(_here, "ssl-lib.py"))
lib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lib)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("--force", action="store_true", help="overwrite model.safetensors")
    a = ap.parse_args()
    import torch

    src = os.path.join(a.ckpt, "pytorch_model.bin")
    dst = os.path.join(a.ckpt, "model.safetensors")
    if not os.path.exists(src):
        sys.exit("ssl-convert-checkpoint: no %s" % src)
    if os.path.exists(dst) and not a.force:
        sys.exit("ssl-convert-checkpoint: %s exists (use --force)" % dst)
    sd = torch.load(src, map_location="cpu")
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    groups = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            continue
        dt = {torch.float16: "F16", torch.bfloat16: "BF16"}.get(v.dtype, "F32")
        arr = v.detach().float().numpy() if v.is_floating_point() else v.numpy()
        groups.setdefault(dt, {})[k] = arr
    if len(groups) > 1:
        # one dtype per file in this writer: keep everything in F32
        merged = {k: v for g in groups.values() for k, v in g.items()}
        groups = {"F32": merged}
    (dt, tensors), = groups.items()
    lib.st_write(dst, tensors, dt, {"format": "pt"})
    print("ssl-convert-checkpoint: wrote %s (%d tensors, %s)" % (dst, len(tensors), dt))


if __name__ == "__main__":
    main()
