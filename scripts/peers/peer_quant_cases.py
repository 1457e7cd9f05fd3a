#!/usr/bin/python3
"""Inputs for the peer quantizer harnesses, and the packing of their outputs.

Driven by scripts/fixtures/make_peer_quant.sh (read that first):
    peer_quant_cases.py gen  WORKDIR            writes WORKDIR/in*.f32 and cases.txt
    peer_quant_cases.py pack WORKDIR FIXTURE    reads the harness outputs, writes FIXTURE

Inputs (NumPy, seed 20261126):
  ternary   t * s with t in {-1, 0, +1} (about a third zeros) and s = 0.0371 (not an
            f16 value, so the f16 block scales of TQ1_0/TQ2_0 round it); row 1 (when
            there is one) all zero, and one 256-weight stretch of row 0 all zero
  gaussian  N(0, 1) floats times 0.02, with a few exact zeros: pins down how each peer
            rounds arbitrary input
  edges     boundary values: +-1e-6 and neighbours (I2_S's zero threshold), exact
            halves of a block maximum (TQ ties), exact halves of d for Q8_0, tiny
            values, large values

Fixture arrays (tests/test_qformats.c reads them):
  cases                 i64 [n, 8]: type id, rows, cols, input index, ggml_row_size,
                        ggml_nbytes, what ggml_quantize_chunk returned, peer (0 llama.cpp
                        ggml, 1 bitnet.cpp)
  input.<j>             f32 [rows, cols]; input.<j>.kind i64 [1]: 0 ternary, 1 gaussian,
                        2 edges; input.<j>.scale f32 [1]: s for ternary inputs, else 0
  case.<i>.q            u8: the peer's quantized bytes (ggml_nbytes of them)
  case.<i>.deq          f32 [rows, cols]: the peer's own dequantization of those bytes
  traits.ggml           i64 [n, 3]: id, blck_size, type_size from llama.cpp's ggml
  traits.ggml.names     u8 [n, 48]: type names, NUL padded
  traits.bitnet         i64 [n, 3] and traits.bitnet.names: the same from bitnet.cpp's
                        ggml fork
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
import bnfx  # noqa: E402

SEED = 20261126
TERNARY_SCALE = np.float32(0.0371)
KINDS = {"ternary": 0, "gaussian": 1, "edges": 2}

# (type id, name, peer): peer 0 = llama.cpp's ggml, 1 = bitnet.cpp
Q8_0, Q4_0, Q6_K, TQ1_0, TQ2_0, I2_S = 8, 2, 14, 34, 35, 36
# shapes (rows, cols) per kind; every cols a multiple of 256 so that every type fits
SHAPES = {
    "ternary": [(1, 256), (3, 512), (6, 768), (4, 2560), (5, 256), (3, 1024)],
    "gaussian": [(1, 256), (3, 512), (6, 768), (4, 2560), (5, 256), (3, 1024)],
    "edges": [(2, 256)],
}
TYPES = {
    "ternary": [TQ1_0, TQ2_0, I2_S, Q6_K],
    "gaussian": [TQ1_0, TQ2_0, I2_S, Q8_0, Q4_0, Q6_K],
    "edges": [TQ1_0, TQ2_0, I2_S, Q8_0, Q4_0, Q6_K],
}
# Keep the fixture small: the widest shape only for the ternary formats and Q6_K.
WIDE_ONLY = {TQ1_0, TQ2_0, I2_S, Q6_K}


def make_ternary(rng, rows, cols):
    t = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(rows, cols))
    if rows > 1:
        t[1, :] = 0
    if cols >= 512:
        t[0, 256:512] = 0
    return (t.astype(np.float32) * TERNARY_SCALE).astype(np.float32)


def make_gaussian(rng, rows, cols):
    x = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
    x.flat[rng.integers(0, x.size, size=max(1, x.size // 97))] = 0.0
    return x


def make_edges(rows, cols):
    x = np.zeros((rows, cols), dtype=np.float32)
    one_e6 = np.float32(1e-6)
    near = [one_e6, -one_e6, np.nextafter(one_e6, np.float32(1)),
            np.nextafter(one_e6, np.float32(0)), np.float32(9.9e-7), np.float32(1.01e-6),
            np.float32(-5e-7), np.float32(2e-6), np.float32(1e-30), np.float32(-1e-30)]
    # row 0: the I2_S threshold region, then exact halves of a block maximum of 1
    x[0, :len(near)] = near
    halves = np.array([k / 8 for k in range(-8, 9)], dtype=np.float32)  # -1 .. 1
    x[0, 128:128 + len(halves)] = halves
    x[0, 255] = 1.0
    # row 1: large and mixed magnitudes, negative block maximum
    x[1, :8] = [-3.0e4, 1.5e4, -7.5e3, 7.5e3, 2.0e4, 1e-3, -1e-3, 0.5]
    # a Q8_0 block (weights 32..63) of maximum 127, so that d = 1 and x / d has exact
    # halves: roundf rounds them away from zero
    x[1, 32:40] = [127.0, 0.5, 1.5, 2.5, -0.5, -2.5, 126.5, -126.5]
    x[1, 100:132] = np.linspace(-1.0, 1.0, 32, dtype=np.float32) * np.float32(0.37)
    x[1, 200] = np.float32(-0.75)
    return x


def gen(workdir):
    rng = np.random.default_rng(SEED)
    os.makedirs(workdir, exist_ok=True)
    lines = []
    inputs = []
    for kind, shapes in SHAPES.items():
        for rows, cols in shapes:
            if kind == "ternary":
                x = make_ternary(rng, rows, cols)
            elif kind == "gaussian":
                x = make_gaussian(rng, rows, cols)
            else:
                x = make_edges(rows, cols)
            j = len(inputs)
            inputs.append((kind, rows, cols))
            x.astype("<f4").tofile(os.path.join(workdir, f"in{j}.f32"))
            for t in TYPES[kind]:
                if cols == 2560 and t not in WIDE_ONLY:
                    continue
                i = len(lines)
                peer = 1 if t == I2_S else 0
                lines.append(f"{i} {t} {rows} {cols} {j} {peer}")
    with open(os.path.join(workdir, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(workdir, "inputs.txt"), "w") as f:
        for j, (kind, rows, cols) in enumerate(inputs):
            f.write(f"{j} {kind} {rows} {cols}\n")


def read_traits(path):
    ids, names = [], []
    with open(path) as f:
        for line in f:
            idx, blck, size, name = line.rstrip("\n").split("\t", 3)
            ids.append([int(idx), int(blck), int(size)])
            raw = name.encode()[:47]
            names.append(raw + b"\0" * (48 - len(raw)))
    return (np.array(ids, dtype=np.int64),
            np.frombuffer(b"".join(names), dtype=np.uint8).reshape(len(names), 48))


def pack(workdir, fixture):
    arrays = {}
    with open(os.path.join(workdir, "inputs.txt")) as f:
        for line in f:
            j, kind, rows, cols = line.split()
            j, rows, cols = int(j), int(rows), int(cols)
            x = np.fromfile(os.path.join(workdir, f"in{j}.f32"), dtype="<f4")
            arrays[f"input.{j}"] = x.reshape(rows, cols)
            arrays[f"input.{j}.kind"] = np.array([KINDS[kind]], dtype=np.int64)
            scale = TERNARY_SCALE if kind == "ternary" else np.float32(0)
            arrays[f"input.{j}.scale"] = np.array([scale], dtype=np.float32)
    cases = []
    with open(os.path.join(workdir, "cases.txt")) as f:
        for line in f:
            i, t, rows, cols, j, peer = (int(v) for v in line.split())
            with open(os.path.join(workdir, f"case{i}.sizes")) as s:
                row_size, nbytes, ret = (int(v) for v in s.read().split())
            q = np.fromfile(os.path.join(workdir, f"case{i}.q"), dtype=np.uint8)
            assert q.size == nbytes, (i, q.size, nbytes)
            deq = np.fromfile(os.path.join(workdir, f"case{i}.deq"), dtype="<f4")
            arrays[f"case.{i}.q"] = q
            arrays[f"case.{i}.deq"] = deq.reshape(rows, cols)
            cases.append([t, rows, cols, j, row_size, nbytes, ret, peer])
    arrays["cases"] = np.array(cases, dtype=np.int64)
    for peer in ("ggml", "bitnet"):
        ids, names = read_traits(os.path.join(workdir, f"traits.{peer}.txt"))
        arrays[f"traits.{peer}"] = ids
        arrays[f"traits.{peer}.names"] = names
    bnfx.write(fixture, arrays)
    print(f"{fixture}: {len(cases)} cases, {os.path.getsize(fixture)} bytes")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "gen":
        gen(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "pack":
        pack(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: peer_quant_cases.py gen WORKDIR | pack WORKDIR FIXTURE")
