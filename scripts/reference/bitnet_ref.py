"""bitnet_ref.py - a PyTorch reference forward pass of BitNet b1.58 (the
bitnet-b1.58-2B-4T block), written from the paper and /work/shared/DESIGN.md's numerics
contract, for testing libbitnet's C forward pass against. CPU, float32, no KV cache:
every call runs the whole token list from scratch, so it is slow but plain.

    /usr/bin/python3 scripts/reference/bitnet_ref.py MODEL.gguf --tokens 1,2,3 \
        [--act-quant on|off] [--ffn-act relu2|silu] [--out logits.f32] [--greedy N]

Block (per layer, h the residual stream, all RMSNorms eps from metadata inside the sqrt):
    x = rmsnorm(h) * attn_norm
    q, k, v = Wq x, Wk x, Wv x                (GQA: n_head query, n_head_kv kv heads)
    q, k = rope_neox(q), rope_neox(k)         (theta from metadata; pairs (i, i + d/2))
    a = softmax(q k^T / sqrt(d) + causal mask) v
    h = h + Wo (rmsnorm(a) * attn_sub_norm)    (sub-norm over the embedding width)
    x = rmsnorm(h) * ffn_norm
    h = h + Wdown (rmsnorm(relu(Wgate x)^2 * Wup x) * ffn_sub_norm)   (FFN width)
logits = (rmsnorm(h) * output_norm) @ token_embd^T   (tied embeddings)

Ternary projections (q, k, v, output, gate, up, down), with --act-quant on (default):
the input row x of each is quantized per token, s = 127 / max(max|x|, 1e-5),
q = clamp(round_half_even(x * s), -128, 127), and y = (Wcodes @ q) / s * g with the
integer sum exact (float64 holds it exactly), then the two scalings in float32. With
--act-quant off, y = x @ W^T in float32 with W the dequantized weights.

Output: logits of every position, raw little-endian float32 [n_tokens, n_vocab], to
--out; the argmax of the last position on stdout; with --greedy N, N greedy steps.
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

    def forward(self, x, act_quant):
        """x: (T, in) float32 -> (T, out) float32."""
        if not act_quant:
            return x @ self.weight.t()
        amax = x.abs().amax(dim=1, keepdim=True).clamp(min=1e-5)   # (T, 1)
        s = torch.tensor(127.0, dtype=torch.float32) / amax          # f32, as in C
        q = torch.clamp(torch.round(x * s), -128, 127).to(torch.float64)  # (T, in)
        if self.block is None:
            isum = q @ self.codes.t()                      # (T, out), exact integers
            return (isum.to(torch.float32) / s) * torch.tensor(self.scales)
        # per-block scales (a TQ file whose blocks differ): y = sum_b d_b * isum_b / s
        T, n_in = q.shape
        nb = n_in // self.block
        qb = q.view(T, nb, self.block)
        cb = self.codes.view(-1, nb, self.block)           # (out, nb, block)
        isum = torch.einsum("tbk,obk->tob", qb, cb)        # (T, out, nb), exact
        d = torch.from_numpy(self.scales.astype(np.float64))  # (out, nb)
        return ((isum * d[None]).sum(dim=2).to(torch.float32)) / s


class BitNetRef:
    """The model: hyperparameters from metadata, tensors from the GGUF file."""

    def __init__(self, path, ffn_act="relu2"):
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
        self.ffn_act = ffn_act

        def t(name):
            return torch.from_numpy(np.ascontiguousarray(r.tensor(name)))

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
            layer = {n: t(p + n + ".weight") for n in
                     ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm")}
            for n in PROJECTIONS:
                layer[n] = TernaryLinear(r, p + n + ".weight")
            self.layers.append(layer)

    def rmsnorm(self, x, w):
        """x: (T, n) -> x / sqrt(mean(x^2) + eps) * w, float32."""
        ms = (x * x).mean(dim=-1, keepdim=True)
        return x / torch.sqrt(ms + self.eps) * w

    def rope(self, x, pos):
        """NeoX RoPE on x (T, heads, head_dim): rotates pairs (i, i + n_rot/2) of the
        first n_rot dims by pos * theta^(-2i/n_rot)."""
        half = self.n_rot // 2
        i = torch.arange(half, dtype=torch.float64)
        freq = self.theta ** (-2.0 * i / self.n_rot)                      # (half,)
        ang = pos.to(torch.float64)[:, None] * freq[None, :]              # (T, half)
        cos = torch.cos(ang).to(torch.float32)[:, None, :]                # (T, 1, half)
        sin = torch.sin(ang).to(torch.float32)[:, None, :]
        x0, x1 = x[..., :half], x[..., half:self.n_rot]
        rot = torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
        return torch.cat([rot, x[..., self.n_rot:]], dim=-1)

    def attention(self, layer, x, pos, aq):
        """x: (T, embd) normed -> (T, embd) attention output before the sub-norm."""
        T, hd = x.shape[0], self.head_dim
        q = layer["attn_q"].forward(x, aq).view(T, self.n_head, hd)
        k = layer["attn_k"].forward(x, aq).view(T, self.n_head_kv, hd)
        v = layer["attn_v"].forward(x, aq).view(T, self.n_head_kv, hd)
        q, k = self.rope(q, pos), self.rope(k, pos)
        group = self.n_head // self.n_head_kv     # query heads h uses kv head h // group
        k = k.repeat_interleave(group, dim=1)     # (T, n_head, hd)
        v = v.repeat_interleave(group, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / np.float32(np.sqrt(hd))
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(mask[None], float("-inf"))
        probs = torch.softmax(scores, dim=-1)                             # (h, T, T)
        return torch.einsum("hts,shd->thd", probs, v).reshape(T, self.n_embd)

    def ffn(self, layer, x, aq):
        """x: (T, embd) normed -> (T, n_ff) input of the ffn sub-norm."""
        gate = layer["ffn_gate"].forward(x, aq)
        up = layer["ffn_up"].forward(x, aq)
        if self.ffn_act == "relu2":
            act = torch.relu(gate) ** 2
        else:
            act = torch.nn.functional.silu(gate)
        return act * up

    @torch.no_grad()
    def forward(self, tokens, act_quant=True):
        """tokens: list of ids -> logits (T, vocab) float32."""
        ids = torch.tensor(tokens, dtype=torch.long)
        pos = torch.arange(len(tokens))
        h = self.tok_embd[ids].clone()                                     # (T, embd)
        for layer in self.layers:
            x = self.rmsnorm(h, layer["attn_norm"])
            a = self.attention(layer, x, pos, act_quant)
            a = self.rmsnorm(a, layer["attn_sub_norm"])
            h = h + layer["attn_output"].forward(a, act_quant)
            x = self.rmsnorm(h, layer["ffn_norm"])
            f = self.rmsnorm(self.ffn(layer, x, act_quant), layer["ffn_sub_norm"])
            h = h + layer["ffn_down"].forward(f, act_quant)
        h = self.rmsnorm(h, self.output_norm)
        return h @ self.output.t()                                         # (T, vocab)


def main():
    ap = argparse.ArgumentParser(description="BitNet b1.58 PyTorch reference forward pass")
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--act-quant", choices=("on", "off"), default="on")
    ap.add_argument("--ffn-act", choices=("relu2", "silu"), default="relu2",
                    help="FFN activation: relu2 (BitNet b1.58 2B-4T) or silu")
    ap.add_argument("--out", help="write logits [n_tokens, n_vocab] as raw f32 LE")
    ap.add_argument("--greedy", type=int, default=0, help="greedy steps to generate")
    args = ap.parse_args()

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = BitNetRef(args.model, args.ffn_act)
    tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    if not tokens or min(tokens) < 0 or max(tokens) >= model.n_vocab:
        sys.exit("tokens must be ids in [0, %d)" % model.n_vocab)
    aq = args.act_quant == "on"
    logits = model.forward(tokens, aq)
    if args.out:
        logits.numpy().astype("<f4").tofile(args.out)
    print("argmax_last %d" % int(torch.argmax(logits[-1])))
    if args.greedy > 0:
        seq, gen = list(tokens), []
        for _ in range(args.greedy):
            nxt = int(torch.argmax(model.forward(seq, aq)[-1]))
            gen.append(nxt)
            seq.append(nxt)
        print("greedy " + ",".join(str(g) for g in gen))


if __name__ == "__main__":
    main()
