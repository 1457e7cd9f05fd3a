"""convert_check.py - helpers of test_convert.sh (NumPy only).

    convert_check.py sha FIXTURE K FOLDER         the folder's files have the SHA-256 the
                                                  fixture's case K lists (the generator
                                                  made the checkpoint the logits are of)
    convert_check.py logits FIXTURE K FILE.f32    FILE (bitnet logits --all) against case
                                                  K's reference logits: max and mean |diff|
                                                  within the fixture's tolerances
    convert_check.py rope FIXTURE K FILE.gguf     rope_freqs.weight of FILE equals case K's
                                                  factors (to f32 rounding)
    convert_check.py vocab TOKENIZER.json FILE.gguf   the GGUF's tokens and merges are the
                                                  tokenizer.json's (ids, texts, order)
    convert_check.py tokens FIXTURE               print the fixture's prompt ("1,2,...")
    convert_check.py break-rope FILE.gguf OUT.gguf zero|nan|f16|short
                                                  a copy of FILE whose rope_freqs.weight
                                                  has a 0 or a NaN at index 5, type f16,
                                                  or half the length
Exit 0 when it holds; otherwise 1, saying what differs.
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts", "reference"))
from gguf_reader import GGUFReader  # noqa: E402

TYPES = {0: "<f4", 1: "<f8", 2: "<i4", 3: "<u2", 4: "i1", 5: "<i8", 6: "u1"}


def read_bnfx(path):
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:4] != b"BNFX":
        sys.exit("%s: not a BNFX file" % path)
    version, n = struct.unpack_from("<II", blob, 4)
    at, out = 12, {}
    for _ in range(n):
        (ln,) = struct.unpack_from("<I", blob, at)
        name = blob[at + 4:at + 4 + ln].decode()
        at += 4 + ln
        code, ndim = struct.unpack_from("<II", blob, at)
        at += 8
        shape = struct.unpack_from("<%dq" % ndim, blob, at)
        at += 8 * ndim
        dt = np.dtype(TYPES[code])
        count = int(np.prod(shape)) if ndim else 1
        out[name] = np.frombuffer(blob, dtype=dt, count=count, offset=at).reshape(shape)
        at += count * dt.itemsize
    return out


def main(a):
    cmd = a[1]
    if cmd == "break-rope":
        t = GGUFReader(a[2]).tensors["rope_freqs.weight"]
        with open(a[2], "rb") as f:
            buf = bytearray(f.read())
        name = b"rope_freqs.weight"
        at = buf.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
        # tensor info: u32 n_dims, u64 ne[n_dims], u32 type, u64 offset
        if struct.unpack_from("<IQI", buf, at) != (1, t.ne[0], 0):
            sys.exit("convert_check.py: rope_freqs.weight is not a 1-d f32 tensor")
        what = a[4]
        if what in ("zero", "nan"):
            struct.pack_into("<f", buf, t.data_offset + 5 * 4,
                             0.0 if what == "zero" else float("nan"))
        elif what == "f16":
            struct.pack_into("<I", buf, at + 12, 1)
        elif what == "short":
            struct.pack_into("<Q", buf, at + 4, t.ne[0] // 2)
        else:
            sys.exit("convert_check.py: break-rope: unknown change " + what)
        with open(a[3], "wb") as f:
            f.write(buf)
        return 0
    if cmd == "tokens":
        fx = read_bnfx(a[2])
        print(",".join(str(int(t)) for t in fx["tokens"]))
        return 0
    if cmd == "vocab":
        with open(a[2]) as f:
            tj = json.load(f)
        r = GGUFReader(a[3])
        toks = r.metadata["tokenizer.ggml.tokens"]
        want = {i: s for s, i in tj["model"]["vocab"].items()}
        for t in tj["added_tokens"]:
            want[t["id"]] = t["content"]
        bad = [i for i in want if toks[i] != want[i]]
        extra = [i for i in range(len(toks)) if i not in want and toks[i] != "[PAD%d]" % i]
        merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
        if bad or extra or list(r.metadata["tokenizer.ggml.merges"]) != merges:
            print("vocab differs: ids %s, extra %s, merges %s" % (bad[:5], extra[:5],
                  list(r.metadata["tokenizer.ggml.merges"]) == merges))
            return 1
        print("vocab: %d tokens (%d past the tokenizer), %d merges as in %s" % (
            len(toks), len(toks) - len(want), len(merges), a[2]))
        return 0
    fx = read_bnfx(a[2])
    k = int(a[3])
    if cmd == "sha":
        want = bytes(fx["case.%d.sha256" % k]).decode().split("\n")
        got = []
        for name in sorted(os.listdir(a[4])):
            with open(os.path.join(a[4], name), "rb") as f:
                got.append("%s %s" % (name, hashlib.sha256(f.read()).hexdigest()))
        if got != [w for w in want if w]:
            print("the generated files differ from the fixture's:\n  %s\nvs\n  %s" % (
                "\n  ".join(got), "\n  ".join(w for w in want if w)))
            return 1
        return 0
    if cmd == "logits":
        ref = fx["case.%d.logits" % k]
        got = np.fromfile(a[4], dtype="<f4")
        if got.size != ref.size:
            print("%d logits, the reference has %d" % (got.size, ref.size))
            return 1
        d = np.abs(got.reshape(ref.shape) - ref)
        tmax, tmean = float(fx["tol"][0]), float(fx["tol"][1])
        ok = d.max() <= tmax and d.mean() <= tmean
        print("max |diff| %.3g (tolerance %g), mean %.3g (%g), logit std %.3f, argmax "
              "agrees at %d of %d positions" % (d.max(), tmax, d.mean(), tmean, ref.std(),
              int((got.reshape(ref.shape).argmax(1) == ref.argmax(1)).sum()),
              ref.shape[0]))
        return 0 if ok else 1
    if cmd == "rope":
        want = fx["case.%d.rope_factors" % k]
        got = GGUFReader(a[4]).tensor("rope_freqs.weight")
        if got.shape != want.shape or np.abs(got - want).max() > 1e-6 * np.abs(want).max():
            print("rope_freqs.weight %s differs from %s" % (got, want))
            return 1
        print("rope_freqs.weight: %d factors as the reference (%.3f to %.3f)" % (
            got.size, got.min(), got.max()))
        return 0
    sys.exit("convert_check.py: unknown command " + cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
