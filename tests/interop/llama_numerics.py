"""llama_numerics.py - explains the differences that llama_compare.mjs measures between
our engine and llama.cpp, with the PyTorch reference (scripts/reference/bitnet_ref.py)
made to round the way each engine does. Not run by the tests (it needs torch); it backs
the numbers in docs/CONFORMANCE.md, section "llama.cpp".

    mkdir /tmp/cmp
    node tests/interop/llama_compare.mjs --bitnet build/bitnet --work /tmp/cmp
    /usr/bin/python3 tests/interop/llama_numerics.py /tmp/cmp

What the reference is told to do (the rest is bitnet_ref.py as written):
  ours      k and v rounded to f16 (the KV cache); q, scores, softmax weights f32;
            int8 activations per token (act-quant on).
  llama.cpp ggml's CPU ops as llama.cpp's bitnet graph uses them:
            - attention without flash attention: q and the softmax weights are turned
              to f16 for the matmuls with the f16 K and V (a matmul converts its second
              operand to the first's vec_dot type);
            - with flash attention: q to f16, and V summed in an f16 accumulator, with
              the online softmax rescaling it (ggml_compute_forward_flash_attn_ext_f16);
            - F16 weights: the activations are turned to f16 too;
            - TQ2_0 weights: activations quantized as q8_K, per block of 256:
              d = max|x_b| / 127, q = round(x / d) (ties to even), y = sum_b d_w d isum_b.
For each case it prints max and mean |dlogprob| over all positions; for the act-quant
cases also per position, to show where a rounding flip of one int8 code sets in.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts", "reference"))
import bitnet_ref  # noqa: E402

QK = 256   # q8_K's block


def f16(t):
    return t.to(torch.float16).to(t.dtype)


class Projection:
    """One projection of the reference, computed the way an engine does."""

    def __init__(self, lin, act, f16_weights):
        self.lin, self.act, self.f16_weights = lin, act, f16_weights

    def forward(self, x, act_quant, hook=None):
        if not act_quant:
            if self.act == "llama" and self.f16_weights:
                x = f16(x)                       # ggml F16 matmul: activations to f16
            return self.lin.forward(x, False, hook)
        if self.act == "ours":
            return self.lin.forward(x, True, hook)
        return self.q8_k(x)

    def q8_k(self, x):
        """(T, n) -> (T, out): x quantized per block of 256 (llama.cpp's q8_K)."""
        T, n = x.shape
        nb = n // QK
        xb = x.view(T, nb, QK)
        amax = xb.abs().amax(dim=2, keepdim=True)                     # (T, nb, 1) f32
        iscale = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
        q = torch.clamp(torch.round(xb * iscale), -128, 127).to(torch.float64)
        d = torch.where(amax > 0, 1.0 / iscale, torch.zeros_like(amax)).to(torch.float64)
        codes = self.lin.codes.view(-1, nb, QK)                      # (out, nb, 256)
        isum = torch.einsum("tbk,obk->tob", q, codes)                # exact integers
        if self.lin.block is None:
            dw = torch.full((codes.shape[0], nb), float(self.lin.scales), dtype=torch.float64)
        else:
            dw = torch.from_numpy(self.lin.scales.astype(np.float64))  # (out, nb)
        return (isum * dw[None] * d.view(T, 1, nb)).sum(dim=2).to(x.dtype)


class EngineRef(bitnet_ref.BitNetRef):
    """bitnet_ref's model with one engine's roundings. act: "ours" (int8 per token) or
    "llama" (q8_K); attn: "ours", "matmul" (llama.cpp, no flash attention) or "flash"."""

    def __init__(self, path, act, attn):
        super().__init__(path, ffn_act="silu")
        self.attn = attn
        f16w = "f16" in os.path.basename(path)
        for layer in self.layers:
            for name in bitnet_ref.PROJECTIONS:
                layer[name] = Projection(layer[name], act, f16w)

    def attention(self, layer, x, pos, aq, kv, hook):
        if self.attn == "ours":
            return super().attention(layer, x, pos, aq, "f16", hook)
        T, hd = x.shape[0], self.head_dim
        q = layer["attn_q"].forward(x, aq, hook).view(T, self.n_head, hd)
        k = layer["attn_k"].forward(x, aq, hook).view(T, self.n_head_kv, hd)
        v = layer["attn_v"].forward(x, aq, hook).view(T, self.n_head_kv, hd)
        q, k = self.rope(q, pos), self.rope(k, pos)
        q, k, v = f16(q), f16(k), f16(v)
        group = self.n_head // self.n_head_kv
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scale = float(np.float32(1.0 / np.sqrt(hd)))
        scores = torch.einsum("thd,shd->hts", q, k) * scale                 # (h, T, T)
        if self.attn == "matmul":
            mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
            p = f16(torch.softmax(scores.masked_fill(mask[None], float("-inf")), dim=-1))
            return torch.einsum("hts,shd->thd", p, v).reshape(T, self.n_embd)
        # flash: per query, keys in order, V summed in f16, online softmax
        out = torch.empty(T, self.n_head, hd, dtype=x.dtype)
        for t in range(T):
            M = torch.full((self.n_head, 1), float("-inf"), dtype=x.dtype)
            S = torch.zeros(self.n_head, 1, dtype=x.dtype)
            acc = torch.zeros(self.n_head, hd, dtype=x.dtype)                # f16 values
            for s in range(t + 1):
                sc = scores[:, t, s:s + 1]
                new = sc > M
                ms = torch.where(new, torch.exp(M - sc), torch.ones_like(M))
                vs = torch.where(new, torch.ones_like(M), torch.exp(sc - M))
                M = torch.maximum(M, sc)
                acc = f16(acc * ms)
                acc = f16(acc + v[s] * vs)
                S = S * ms + vs
            out[t] = acc / S
        return out.reshape(T, self.n_embd)


def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def show(what, a, b, per_position=False):
    d = np.abs(log_softmax(a) - log_softmax(b))
    print("  %-46s max %.3g  mean %.3g" % (what, d.max(), d.mean()))
    if per_position:
        print("    by position: " + " ".join("%.0e" % v for v in d.max(axis=1)))


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    work = argv[1]
    with open(os.path.join(work, "cases.json")) as f:
        cases = json.load(f)
    for c in cases:
        if c["act"] != "silu" or c["kind"] not in ("float", "tq2_0"):
            continue
        load = lambda p: np.fromfile(os.path.join(work, p), dtype="<f4")  # noqa: E731
        ll, ours = load(c["slug"] + ".llama.f32"), load(c["slug"] + ".ours.f32")
        T = len(c["tokens"])
        n_vocab = ll.size // T
        ll, ours = ll.reshape(T, n_vocab), ours.reshape(T, n_vocab)
        aq = c["kind"] == "tq2_0"
        attn = "flash" if c["fa"] else "matmul"
        run = lambda act, at: EngineRef(c["model"], act, at).forward(  # noqa: E731
            c["tokens"], act_quant=aq, kv="f16").numpy()
        print("%s (%s, llama.cpp %s flash attention):" % (
            c["name"], " ".join(c["ours"]) or "act-quant on", "with" if c["fa"] else "without"))
        show("ours vs llama.cpp (measured)", ours, ll)
        as_ours = run("ours", "ours")
        show("ours vs reference rounding as ours", ours, as_ours)
        if aq:
            as_block = run("llama", "ours")
            show("reference: int8 per token vs per 256-block", as_ours, as_block)
        as_llama = run("llama", attn)
        show("llama.cpp vs reference rounding as llama.cpp", ll, as_llama, per_position=aq)
        if aq:
            off = EngineRef(c["model"], "ours", "ours").forward(
                c["tokens"], act_quant=False, kv="f16").numpy()
            show("reference: act-quant on vs off", as_ours, off)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
