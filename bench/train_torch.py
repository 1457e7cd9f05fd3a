#!/usr/bin/python3
"""train_torch.py - the PyTorch side of bench/train.sh: one training step of a BitNet
b1.58 model (docs/TRAINING.md) in eager PyTorch on the CPU, timed the way
bench/train_speed.c times bn_train_step.

Written from the model description of docs/TRAINING.md, sharing no code with src/:
token embedding; per layer RMSNorm, BitLinear q/k/v, NeoX RoPE, causal GQA attention,
the attention sub-norm, BitLinear output, residual; RMSNorm, BitLinear gate and up,
relu(gate)^2 * up, the FFN sub-norm, BitLinear down, residual; the final RMSNorm and the
tied output with the cross-entropy loss. In ternary mode BitLinear quantizes its weights
(absmean per tensor) and its input rows (absmax, int8) with the straight-through
estimator (x + (q(x) - x).detach()); in float mode it is a plain linear layer. A step
is forward, backward, clipping to global norm 1 and AdamW (beta 0.9 / 0.95, weight decay
0.1 on the 2-D tensors), as in bench/train_speed.c. Everything float32.

    /usr/bin/python3 bench/train_torch.py [--dim E] [--layers L] [--heads H]
        [--kv-heads K] [--ffn F] [--ctx T] [--vocab V] [--batch B] [--threads N]
        [--mode float|ternary] [--steps S] [--warmup W]

Prints "torch <mode> threads N: S s/step, X tokens/s".
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def weight_quant(w):
    g = w.abs().mean().clamp(min=1e-5)
    return (w / g).round().clamp(-1, 1) * g


def act_quant(x):
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-128, 127) / s


def bitlinear(x, w, ternary):
    if ternary:
        x = x + (act_quant(x) - x).detach()
        w = w + (weight_quant(w) - w).detach()
    return F.linear(x, w)


class Model(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        E, Fd, V = a.dim, a.ffn, a.vocab
        hd = E // a.heads
        kvd = a.kv_heads * hd
        self.a = a
        def mat(o, i):
            return torch.nn.Parameter(torch.randn(o, i) * 0.02)
        def vec(n):
            return torch.nn.Parameter(torch.ones(n))
        self.embd = mat(V, E)
        self.layers = torch.nn.ModuleList()
        for _ in range(a.layers):
            ly = torch.nn.Module()
            ly.attn_norm, ly.attn_sub_norm, ly.ffn_norm = vec(E), vec(E), vec(E)
            ly.ffn_sub_norm = vec(Fd)
            ly.wq, ly.wk, ly.wv, ly.wo = mat(E, E), mat(kvd, E), mat(kvd, E), mat(E, E)
            ly.gate, ly.up, ly.down = mat(Fd, E), mat(Fd, E), mat(E, Fd)
            self.layers.append(ly)
        self.out_norm = vec(E)
        inv = a.theta ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2.0 / hd)
        ang = torch.arange(a.ctx, dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", torch.cos(ang).float())
        self.register_buffer("sin", torch.sin(ang).float())
        mask = torch.full((a.ctx, a.ctx), float("-inf")).triu(1)
        self.register_buffer("mask", mask)

    def rope(self, x):   # x [B, heads, T, hd], NeoX: pairs (i, i + hd / 2)
        half = x.shape[-1] // 2
        x0, x1 = x[..., :half], x[..., half:]
        c, s = self.cos, self.sin
        return torch.cat((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1)

    def forward(self, tokens, targets, ternary):
        a = self.a
        B, T = tokens.shape
        H, KV = a.heads, a.kv_heads
        hd = a.dim // H
        eps = 1e-5
        h = self.embd[tokens]
        for ly in self.layers:
            x = rmsnorm(h, ly.attn_norm, eps)
            q = bitlinear(x, ly.wq, ternary).view(B, T, H, hd).transpose(1, 2)
            k = bitlinear(x, ly.wk, ternary).view(B, T, KV, hd).transpose(1, 2)
            v = bitlinear(x, ly.wv, ternary).view(B, T, KV, hd).transpose(1, 2)
            q, k = self.rope(q), self.rope(k)
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + self.mask
            o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, a.dim)
            h = h + bitlinear(rmsnorm(o, ly.attn_sub_norm, eps), ly.wo, ternary)
            x = rmsnorm(h, ly.ffn_norm, eps)
            f = F.relu(bitlinear(x, ly.gate, ternary)).square() * bitlinear(x, ly.up, ternary)
            h = h + bitlinear(rmsnorm(f, ly.ffn_sub_norm, eps), ly.down, ternary)
        logits = rmsnorm(h, self.out_norm, eps) @ self.embd.t()
        return F.cross_entropy(logits.view(B * T, -1), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=640)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", choices=("float", "ternary"), default="float")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--theta", type=float, default=10000.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = Model(a)
    decay = [p for p in model.parameters() if p.dim() == 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    tokens = torch.randint(0, a.vocab, (a.batch, a.ctx))
    targets = torch.roll(tokens, -1, dims=1)
    ternary = a.mode == "ternary"
    t0 = 0.0
    for k in range(a.warmup + a.steps):
        if k == a.warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(tokens, targets, ternary)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    dt = (time.perf_counter() - t0) / a.steps
    n = a.batch * a.ctx
    print("torch %s threads %d: %.4f s/step, %.1f tokens/s (loss %.4f)"
          % (a.mode, a.threads, dt, n / dt, loss.item()))


if __name__ == "__main__":
    main()
