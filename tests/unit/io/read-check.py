#!/usr/bin/python3
"""Check that a safetensors file written by serbench's test (test_safetensors.c,
"python_reads_our_file") is readable from Python with plain numpy, parsing the header the
way the format describes it. python3-safetensors is not packaged for Debian bookworm, so
this is an independent reader.

Expected content: for each dtype X, a tensor "t.X" of shape [2, 3, 4] whose element i is
  F32/F16/BF16/F64: (i - 7) * 0.25      I64/I32/I16/I8: i - 7
  U8: i * 9 % 256                       BOOL: i % 3 == 0
plus a scalar F32 "scalar" = 2.5, an empty F32 "empty" of shape [0, 4], and metadata
{"producer": "serbench-test", "ünïcode": "✓"}. Tensor data must follow the header in the
order listed in the header. Exit 0 when everything matches, 1 with a message otherwise,
77 when numpy is missing (the test then skips).
"""
import json
import struct
import sys

try:
    import numpy as np
except ImportError:
    sys.exit(77)


def fail(msg):
    print(f"read-check: {msg}", file=sys.stderr)
    sys.exit(1)


def main(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8 != 0:
        fail(f"header length {n} is not a multiple of 8")
    text = raw[8:8 + n].decode("utf-8")
    if not text.rstrip(" ").endswith("}"):
        fail("header is not a JSON object followed only by space padding")
    header = json.loads(text)
    meta = header.pop("__metadata__", None)
    if meta != {"producer": "serbench-test", "ünïcode": "✓"}:
        fail(f"metadata {meta!r}")
    data = raw[8 + n:]
    types = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4",
             "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?", "BF16": "<u2"}
    at = 0
    got = {}
    for name, info in header.items():  # json keeps file order
        b, e = info["data_offsets"]
        if b != at:
            fail(f"{name}: begins at {b}, expected {at} (data not in header order)")
        at = e
        a = np.frombuffer(data[b:e], dtype=types[info["dtype"]])
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        got[name] = (info["dtype"], a.reshape(info["shape"]))
    if at != len(data):
        fail(f"data area is {len(data)} bytes, tensors cover {at}")
    i = np.arange(24)
    want = {
        "F32": (i - 7) * 0.25, "F16": (i - 7) * 0.25, "BF16": (i - 7) * 0.25,
        "F64": (i - 7) * 0.25, "I64": i - 7, "I32": i - 7, "I16": i - 7, "I8": i - 7,
        "U8": i * 9 % 256, "BOOL": i % 3 == 0,
    }
    for dt, values in want.items():
        name = f"t.{dt}"
        if name not in got:
            fail(f"missing tensor {name}")
        gdt, a = got[name]
        if gdt != dt or a.shape != (2, 3, 4):
            fail(f"{name}: dtype {gdt} shape {a.shape}")
        if not np.array_equal(a.reshape(-1), values):
            fail(f"{name}: values {a.reshape(-1)} != {values}")
    if got.get("scalar", (None, None))[0] != "F32" or got["scalar"][1].shape != () or \
            float(got["scalar"][1]) != 2.5:
        fail(f"scalar: {got.get('scalar')}")
    if got.get("empty", (None, None))[0] != "F32" or got["empty"][1].shape != (0, 4):
        fail(f"empty: {got.get('empty')}")
    names = list(header)
    if names[:2] != ["t.F32", "t.F16"] or names[-2:] != ["scalar", "empty"]:
        fail(f"tensor order {names}")


if __name__ == "__main__":
    main(sys.argv[1])
