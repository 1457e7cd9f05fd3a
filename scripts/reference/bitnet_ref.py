"""bitnet_ref.py - a PyTorch reference forward pass of BitNet b1.58 (the
bitnet-b1.58-2B-4T block), written from the paper and /work/shared/DESIGN.md's numerics
contract, for testing libbitnet's C forward pass against. CPU, float32 (or float64
with --dtype f64), no KV cache: every call runs the whole token list from scratch, so
it is slow but plain.

    /usr/bin/python3 scripts/reference/bitnet_ref.py MODEL.gguf --tokens 1,2,3 \
        [--act-quant on|off] [--ffn-act relu2|silu|auto] [--kv f32|f16] \
        [--dtype f32|f64] [--out logits.f32] [--greedy N]

Block (per layer, h the residual stream, all RMSNorms eps from metadata inside the sqrt):
    x = rmsnorm(h) * attn_norm
    q, k, v = Wq x, Wk x, Wv x                (GQA: n_head query, n_head_kv kv heads)
    q, k = rope_neox(q), rope_neox(k)         (theta from metadata; pairs (i, i + d/2))
    a = softmax(q k^T / sqrt(d) + causal mask) v
    h = h + Wo (rmsnorm(a) * attn_sub_norm)    (sub-norm over the embedding width)
    x = rmsnorm(h) * ffn_norm
    h = h + Wdown (rmsnorm(relu(Wgate x)^2 * Wup x) * ffn_sub_norm)   (FFN width)
logits = (rmsnorm(h) * output_norm) @ token_embd^T   (tied embeddings; output.weight
                                                     when the file has one)
Arch llama (llama.cpp's convention): no sub-norm tensors, so those two RMSNorms are
skipped, and "normal" RoPE, rotating adjacent pairs (2i, 2i + 1) instead of NeoX's
(i, i + d/2) (llama.cpp's llama_model_rope_type: LLAMA is NORM, BITNET is NEOX).
--ffn-act silu uses silu(gate) * up; auto takes it from the file as include/bitnet.h says
(bitnet-b1.58, bitnet-25: relu2; llama: silu; bitnet: <arch>.ffn_activation, else silu).
--kv f16 rounds k (after RoPE) and v to float16 before the attention, as an f16 KV
cache does; q stays float32.

Ternary projections (q, k, v, output, gate, up, down), with --act-quant on (default):
the input row x of each is quantized per token, s = 127 / max(max|x|, 1e-5),
q = clamp(round_half_even(x * s), -128, 127), and y = (Wcodes @ q) / s * g with the
integer sum exact (float64 holds it exactly), then the two scalings in float32. With
--act-quant off, y = x @ W^T in float32 with W the dequantized weights.

Output: logits of every position, raw little-endian float32 [n_tokens, n_vocab], to
--out; the argmax of the last position on stdout; with --greedy N, N greedy steps and
the gap between the top two logits at each step.

forward() takes a `hook(kind, name, x)` for tools/tolerance studies: kind "embd" (the
embedding rows, (T, embd)) and "resid" (the residual stream after each sub-block) may
return a replacement tensor; kind "codes" gets each projection's int8 input codes.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_reader import GGUFReader, I2_S, TQ1_0, TQ2_0  # noqa: E402

PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
               "ffn_down")


def ternarize_absmean(w):
    """The contract's weight ternarization: g = max(mean|W|, 1e-5) in double,
    codes = clamp(round_half_even(W / g), -1, 1). Returns (codes int8, g float32)."""
    g = max(float(np.abs(w.astype(np.float64)).mean()), 1e-5)
    g32 = np.float32(g)
    codes = np.clip(np.rint(w / g32), -1, 1).astype(np.int8)
    return codes, g32


class TernaryLinear:
    """One projection: float weights (out, in) for the float path, and ternary codes
    with their scale(s) for the quantized-activation path."""

    def __init__(self, reader, name):
        t = reader.tensors[name]
        w = reader.tensor(name)                                   # (out, in)
        self.name = name
        self.weight = torch.from_numpy(np.ascontiguousarray(w))
        self.block = None
        if t.type in (I2_S, TQ1_0, TQ2_0):
            codes, scales, block = reader.ternary_codes(name)
            if block is not None and np.all(scales == scales.flat[0]):
                scales, block = np.float32(scales.flat[0]), None   # one scale per tensor
            self.block = block
        else:
            # float file: weights are expected to be ternary * one scale already
            nz = np.abs(w[w != 0])
            g = np.float32(nz.max()) if nz.size else np.float32(1.0)
            codes = np.rint(w / g).astype(np.int8)
            scales = g
            if nz.size == 0 or not np.array_equal(codes.astype(np.float32) * g, w) or \
                    np.abs(codes).max() > 1:
                print("warning: %s is not ternary * one scale; ternarizing it (absmean)"
                      % name, file=sys.stderr)
                codes, scales = ternarize_absmean(w)
        self.codes = torch.from_numpy(codes.astype(np.float64))   # (out, in), exact ints
        self.scales = scales   # scalar float32, or (out, in/256) float32 with block 256

    def to(self, dtype):
        """Computes in `dtype` (float32 or float64) from now on."""
        self.weight = self.weight.to(dtype)
        return self

    def forward(self, x, act_quant, hook=None):
        """x: (T, in) float32 (or float64) -> (T, out) of the same type."""
        if not act_quant:
            return x @ self.weight.t()
        dt = x.dtype
        amax = x.abs().amax(dim=1, keepdim=True).clamp(min=1e-5)   # (T, 1)
        s = torch.tensor(127.0, dtype=dt) / amax                     # f32, as in C
        q = torch.clamp(torch.round(x * s), -128, 127).to(torch.float64)  # (T, in)
        if hook is not None:
            hook("codes", self.name, q)
        if self.block is None:
            isum = q @ self.codes.t()                      # (T, out), exact integers
            return (isum.to(dt) / s) * torch.tensor(self.scales).to(dt)
        # per-block scales (a TQ file whose blocks differ): y = sum_b d_b * isum_b / s
        T, n_in = q.shape
        nb = n_in // self.block
        qb = q.view(T, nb, self.block)
        cb = self.codes.view(-1, nb, self.block)           # (out, nb, block)
        isum = torch.einsum("tbk,obk->tob", qb, cb)        # (T, out, nb), exact
        d = torch.from_numpy(self.scales.astype(np.float64))  # (out, nb)
        return ((isum * d[None]).sum(dim=2).to(dt)) / s


class BitNetRef:
    """The model: hyperparameters from metadata, tensors from the GGUF file."""

    def __init__(self, path, ffn_act="relu2", dtype=torch.float32):
        r = GGUFReader(path)
        md = r.metadata
        arch = md["general.architecture"]

        def hp(key, default=None):
            v = md.get("%s.%s" % (arch, key), default)
            if v is None:
                raise KeyError("metadata %s.%s missing" % (arch, key))
            return v

        self.arch = arch
        self.n_embd = int(hp("embedding_length"))
        self.n_ff = int(hp("feed_forward_length"))
        self.n_layer = int(hp("block_count"))
        self.n_head = int(hp("attention.head_count"))
        self.n_head_kv = int(hp("attention.head_count_kv", self.n_head))
        self.eps = float(np.float32(hp("attention.layer_norm_rms_epsilon")))
        self.theta = float(hp("rope.freq_base", 10000.0))
        self.head_dim = self.n_embd // self.n_head
        self.n_rot = int(hp("rope.dimension_count", self.head_dim))
        if ffn_act == "auto":   # include/bitnet.h, bn_ffn_act
            if arch in ("bitnet-b1.58", "bitnet-25"):
                ffn_act = "relu2"
            elif arch == "bitnet":
                ffn_act = md.get("bitnet.ffn_activation", "silu")
            else:
                ffn_act = "silu"
        if ffn_act not in ("relu2", "silu"):
            raise ValueError("unknown FFN activation %r" % ffn_act)
        self.ffn_act = ffn_act
        self.dtype = dtype
        self.rope_dtype = torch.float64   # the type RoPE angles are computed in
        self.rope_neox = arch != "llama"  # llama: adjacent pairs; bitnet archs: NeoX

        def t(name):
            return torch.from_numpy(np.ascontiguousarray(r.tensor(name))).to(dtype)

        self.tok_embd = t("token_embd.weight")                    # (vocab, embd)
        self.n_vocab = self.tok_embd.shape[0]
        self.output_norm = t("output_norm.weight")
        if "output.weight" in r.tensors:                          # untied head, if any
            self.output = t("output.weight")
        else:
            self.output = self.tok_embd
        self.layers = []
        for il in range(self.n_layer):
            p = "blk.%d." % il
            layer = {n: t(p + n + ".weight") for n in ("attn_norm", "ffn_norm")}
            for n in ("attn_sub_norm", "ffn_sub_norm"):     # absent in arch llama
                name = p + n + ".weight"
                layer[n] = t(name) if name in r.tensors else None
            for n in PROJECTIONS:
                layer[n] = TernaryLinear(r, p + n + ".weight").to(dtype)
            self.layers.append(layer)

    def rmsnorm(self, x, w):
        """x: (T, n) -> x / sqrt(mean(x^2) + eps) * w, float32; x when w is None."""
        if w is None:
            return x
        ms = (x * x).mean(dim=-1, keepdim=True)
        return x / torch.sqrt(ms + self.eps) * w

    def rope(self, x, pos):
        """RoPE on x (T, heads, head_dim): rotates pairs (i, i + n_rot/2) (NeoX) or
        (2i, 2i + 1) (arch llama) of the first n_rot dims by pos * theta^(-2i/n_rot)."""
        half = self.n_rot // 2
        dt = self.rope_dtype          # float64; tolerance.py tries float32 angles
        i = torch.arange(half, dtype=dt)
        freq = torch.tensor(self.theta, dtype=dt) ** (-2.0 * i / self.n_rot)  # (half,)
        ang = pos.to(dt)[:, None] * freq[None, :]                         # (T, half)
        cos = torch.cos(ang).to(x.dtype)[:, None, :]                      # (T, 1, half)
        sin = torch.sin(ang).to(x.dtype)[:, None, :]
        if self.rope_neox:
            x0, x1 = x[..., :half], x[..., half:self.n_rot]
            rot = torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
        else:
            x0, x1 = x[..., 0:self.n_rot:2], x[..., 1:self.n_rot:2]
            rot = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
            rot = rot.flatten(-2)                             # back to x0 x1 x0 x1 ...
        return torch.cat([rot, x[..., self.n_rot:]], dim=-1)

    def attention(self, layer, x, pos, aq, kv, hook):
        """x: (T, embd) normed -> (T, embd) attention output before the sub-norm."""
        T, hd = x.shape[0], self.head_dim
        q = layer["attn_q"].forward(x, aq, hook).view(T, self.n_head, hd)
        k = layer["attn_k"].forward(x, aq, hook).view(T, self.n_head_kv, hd)
        v = layer["attn_v"].forward(x, aq, hook).view(T, self.n_head_kv, hd)
        q, k = self.rope(q, pos), self.rope(k, pos)
        if kv == "f16":   # what an f16 KV cache stores
            k = k.to(torch.float16).to(x.dtype)
            v = v.to(torch.float16).to(x.dtype)
        group = self.n_head // self.n_head_kv     # query heads h uses kv head h // group
        k = k.repeat_interleave(group, dim=1)     # (T, n_head, hd)
        v = v.repeat_interleave(group, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / float(np.float32(np.sqrt(hd)))
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(mask[None], float("-inf"))
        probs = torch.softmax(scores, dim=-1)                             # (h, T, T)
        return torch.einsum("hts,shd->thd", probs, v).reshape(T, self.n_embd)

    def ffn(self, layer, x, aq, hook):
        """x: (T, embd) normed -> (T, n_ff) input of the ffn sub-norm."""
        gate = layer["ffn_gate"].forward(x, aq, hook)
        up = layer["ffn_up"].forward(x, aq, hook)
        if self.ffn_act == "relu2":
            act = torch.relu(gate) ** 2
        else:
            act = torch.nn.functional.silu(gate)
        return act * up

    @torch.no_grad()
    def forward(self, tokens, act_quant=True, kv="f32", hook=None):
        """tokens: list of ids -> logits (T, vocab) float32 (float64 with dtype f64).
        kv "f16" rounds k and v as an f16 cache does; hook: see the file's comment."""
        ids = torch.tensor(tokens, dtype=torch.long)
        pos = torch.arange(len(tokens))
        h = self.tok_embd[ids].clone()                                     # (T, embd)
        h = _hooked(hook, "embd", "token_embd", h)
        for il, layer in enumerate(self.layers):
            x = self.rmsnorm(h, layer["attn_norm"])
            a = self.attention(layer, x, pos, act_quant, kv, hook)
            a = self.rmsnorm(a, layer["attn_sub_norm"])
            h = h + layer["attn_output"].forward(a, act_quant, hook)
            h = _hooked(hook, "resid", "blk.%d.attn" % il, h)
            x = self.rmsnorm(h, layer["ffn_norm"])
            f = self.rmsnorm(self.ffn(layer, x, act_quant, hook), layer["ffn_sub_norm"])
            h = h + layer["ffn_down"].forward(f, act_quant, hook)
            h = _hooked(hook, "resid", "blk.%d.ffn" % il, h)
        h = self.rmsnorm(h, self.output_norm)
        return h @ self.output.t()                                         # (T, vocab)

    def greedy(self, tokens, n, act_quant=True, kv="f32"):
        """n greedy steps after `tokens`: (ids, gaps), gaps[i] = top-1 minus top-2 logit
        at step i. One forward of the whole sequence per step (no cache)."""
        seq, ids, gaps = list(tokens), [], []
        for _ in range(n):
            last = self.forward(seq, act_quant, kv)[-1]
            top = torch.topk(last, 2).values
            nxt = int(torch.argmax(last))
            ids.append(nxt)
            gaps.append(float(top[0] - top[1]))
            seq.append(nxt)
        return ids, gaps


def _hooked(hook, kind, name, x):
    """x, or what hook(kind, name, x) returns in its place when it returns something."""
    if hook is None:
        return x
    y = hook(kind, name, x)
    return x if y is None else y


def main():
    ap = argparse.ArgumentParser(description="BitNet b1.58 PyTorch reference forward pass")
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--act-quant", choices=("on", "off"), default="on")
    ap.add_argument("--ffn-act", choices=("relu2", "silu", "auto"), default="relu2",
                    help="FFN activation: relu2 (BitNet b1.58 2B-4T), silu, or auto "
                         "(from the file's arch and metadata)")
    ap.add_argument("--kv", choices=("f32", "f16"), default="f32",
                    help="f16: round k and v to float16 as an f16 KV cache does")
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32",
                    help="compute in float32 (default) or float64")
    ap.add_argument("--out", help="write logits [n_tokens, n_vocab] as raw f32 LE")
    ap.add_argument("--greedy", type=int, default=0, help="greedy steps to generate")
    args = ap.parse_args()

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    dtype = torch.float64 if args.dtype == "f64" else torch.float32
    model = BitNetRef(args.model, args.ffn_act, dtype)
    tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    if not tokens or min(tokens) < 0 or max(tokens) >= model.n_vocab:
        sys.exit("tokens must be ids in [0, %d)" % model.n_vocab)
    aq = args.act_quant == "on"
    logits = model.forward(tokens, aq, args.kv)
    if args.out:
        logits.numpy().astype("<f4").tofile(args.out)
    print("argmax_last %d" % int(torch.argmax(logits[-1])))
    if args.greedy > 0:
        gen, gaps = model.greedy(tokens, args.greedy, aq, args.kv)
        print("greedy " + ",".join(str(g) for g in gen))
        print("gaps " + ",".join("%.4g" % g for g in gaps))


if __name__ == "__main__":
    main()
