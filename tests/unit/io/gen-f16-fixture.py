#!/usr/bin/python3
"""Write tests/unit/io/numpy-ref.safetensors: numpy's own float16/float32 conversions of
hard cases (ties, subnormals, overflow, NaN/inf), plus one tensor of every integer dtype,
as a safetensors file laid out the way the reference writer does it (tensors sorted by
alignment then name, header padded with spaces to 8 bytes). The C test reads it with
sb_st_open, so it is also the "a file Python wrote, we read" check.

Run with Debian's interpreter: /usr/bin/python3 tests/unit/io/gen-f16-fixture.py
"""
import json
import os
import struct
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "numpy-ref.safetensors")
rng = np.random.default_rng(20240611)


def f32(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def f32_inputs():
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1.0, -1.0, 0.1, 1 / 3, 65504.0, 65505.0,
                        65519.0, 65519.996, 65520.0, 65536.0, 1e10, -1e10,
                        2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 2.0 ** -26, 3 * 2.0 ** -26,
                        1.5 * 2.0 ** -24, 2.5 * 2.0 ** -24, 1e-30, -1e-30],
                       dtype=np.float32)
    nans = f32([0x7FC00000, 0xFFC00000])
    # Exact midpoints between consecutive finite halves (ties, both parities) and the float
    # on either side of each midpoint.
    h = rng.integers(0, 0x7BFF, size=600, dtype=np.uint16)
    h = np.concatenate([h, h | 0x8000]).astype(np.uint16)
    lo = h.view(np.float16).astype(np.float32)
    hi = (h + 1).astype(np.uint16).view(np.float16).astype(np.float32)
    mid = ((lo.astype(np.float64) + hi.astype(np.float64)) / 2).astype(np.float32)
    assert np.all((mid.astype(np.float64) * 2) == (lo.astype(np.float64) + hi.astype(np.float64)))
    up = np.nextafter(mid, np.float32(np.inf))
    down = np.nextafter(mid, np.float32(-np.inf))
    # Random floats over the exponents that matter for half (subnormal..overflow) and
    # some float32 subnormals.
    e = rng.integers(95, 146, size=800, dtype=np.uint32)
    m = rng.integers(0, 1 << 23, size=800, dtype=np.uint32)
    s = rng.integers(0, 2, size=800, dtype=np.uint32)
    rnd = f32((s << 31) | (e << 23) | m)
    sub = f32(rng.integers(1, 1 << 23, size=20, dtype=np.uint32))
    return np.concatenate([special, nans, mid, up, down, rnd, sub]).astype(np.float32)


def f16_inputs():
    subnormals = np.arange(0, 0x400, dtype=np.uint16)
    edges = np.array([0x0400, 0x03FF, 0x3C00, 0x7BFF, 0x7C00, 0x7E00, 0x7C01, 0xFC00,
                      0x8000, 0x8001, 0xFBFF], dtype=np.uint16)
    rnd = rng.integers(0, 0x10000, size=1000, dtype=np.uint32).astype(np.uint16)
    h = np.concatenate([subnormals, subnormals | 0x8000, edges, rnd]).astype(np.uint16)
    return h.view(np.float16)


def main():
    np.seterr(over="ignore")  # overflow to inf is one of the cases under test
    x = f32_inputs()
    h = f16_inputs()
    bf = rng.integers(0, 0x10000, size=500, dtype=np.uint32).astype(np.uint16)
    bf = np.concatenate([bf, np.array([0x3F80, 0x7F80, 0xFF80, 0x7FC0, 0x0001, 0x8000],
                                      dtype=np.uint16)])
    d = np.concatenate([rng.standard_normal(300) * 10.0 ** rng.integers(-40, 40, 300),
                        [0.0, -0.0, 1e300, -1e300, 1e-300, np.inf, -np.inf,
                         3.4028235677973366e38, 3.4028235e38 * (1 + 2 ** -25)]])
    tensors = {
        "f32_in": x,
        "f16_of_f32": x.astype(np.float16),
        "f16_in": h,
        "f32_of_f16": h.astype(np.float32),
        "bf16_in": bf,  # written with dtype BF16 below
        "f32_of_bf16": (bf.astype(np.uint32) << 16).view(np.float32),
        "f64_in": d.astype(np.float64),
        "f32_of_f64": d.astype(np.float32),
        # element i of the i32/i16/i8 tensors is (i * 37 % 251) - 100 cast to the type,
        # of u8 it is i * 37 % 251; i64 and bool hold the literal values below
        "ints.i64": np.array([[-(2 ** 62), 2 ** 62 + 5, -1]], dtype=np.int64),
        "ints.i32": (np.arange(12, dtype=np.int64) * 37 % 251 - 100).astype(np.int32).reshape(3, 4),
        "ints.i16": (np.arange(5, dtype=np.int64) * 37 % 251 - 100).astype(np.int16),
        "ints.i8": (np.arange(7, dtype=np.int64) * 37 % 251 - 100).astype(np.int8),
        "ints.u8": (np.arange(9, dtype=np.int64) * 37 % 251).astype(np.uint8),
        "ints.bool": np.array([True, False, False, True], dtype=np.bool_),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    dtype_name = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
                  np.dtype(np.float64): "F64", np.dtype(np.int64): "I64",
                  np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
                  np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8",
                  np.dtype(np.bool_): "BOOL"}
    # The reference writer's order: larger alignment first, then by name.
    names = sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n))
    header = {"__metadata__": {"generator": "gen-f16-fixture.py", "numpy": np.__version__}}
    blobs, at = [], 0
    for n in names:
        a = np.ascontiguousarray(tensors[n])
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        dt = "BF16" if n == "bf16_in" else dtype_name[a.dtype]
        header[n] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(OUT, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    print(f"wrote {OUT}: {len(names)} tensors, {8 + len(text) + at} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
