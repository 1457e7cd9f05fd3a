#!/usr/bin/python3
"""An independent PyTorch reference for Hugging Face BitNet checkpoints, reading the
safetensors files directly (its own reader below) and running each layout the way its
own modelling code does, written from transformers' models/bitnet, models/llama and
integrations/bitnet.py and from 1bitLLM's BitLinear. Shares no code with src/ or with
the GGUF reference (bitnet_ref.py).

    /usr/bin/python3 scripts/reference/hf_ref.py HF_DIR --tokens 1,2,3 [--out F.f32]
        [--scale-rule auto|multiply|divide] [--no-permute]

Layouts (from config.json):
  BitNetForCausalLM without quantization_config: bf16 master weights; BitLinear
      fake-quantizes them per tensor (absmean: s = 1 / mean|W| clamped at 1e-5,
      round(W s) clamped to [-1, 1], divided by s) and the activations per token
      (absmax: 127 / max|x| clamped at 1e-5, round, clamp to [-128, 127], divide back)
  BitNetForCausalLM / LlamaForCausalLM with quantization_config bitnet: packed uint8
      [out/4, in] (integrations/bitnet.py unpack_weights: rows i*out/4 .. from bits 2i,
      minus 1); AutoBitLinear (linear_class autobitlinear) multiplies the output by
      weight_scale, BitLinear divides it by input_scale * weight_scale
  BitnetForCausalLM (1bitLLM): fp16 latent weights, the same fake quantization; sub-norms
      inner_attn_ln (before o_proj) and ffn_layernorm (before down_proj), SiLU
The blocks: RMSNorm (float32, eps inside the square root), rotate_half RoPE (theta from
the config; llama3 rope_scaling divides the inverse frequencies by Llama 3.1's
factors), GQA, causal softmax attention; BitNet: attn_sub_norm before o_proj,
down(ffn_sub_norm(relu(gate)^2 * up)); LLaMA: down(silu(gate) * up). Float32 throughout.

--scale-rule and --no-permute exist for the negative controls of the fixture script:
the wrong weight_scale rule, or a llama file whose q/k rows were not permuted for
RoPE on adjacent pairs (this reference computes the half-split RoPE; the permutation is
only in the GGUF); forward(..., rope_scaling=False) runs a model as if its config had
no rope_scaling. Writes the logits of every position as raw float32 [T, vocab].
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2), "U8": ("u1", 1),
          "I8": ("i1", 1), "F64": ("<f8", 8)}


class SafeTensors:
    """One safetensors file: header parsed, tensors read on demand as numpy arrays."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.blob = f.read()
        (n,) = struct.unpack("<Q", self.blob[:8])
        self.header = json.loads(self.blob[8:8 + n].decode())
        self.header.pop("__metadata__", None)
        self.base = 8 + n

    def get(self, name):
        e = self.header[name]
        dt, size = DTYPES[e["dtype"]]
        b, end = e["data_offsets"]
        a = np.frombuffer(self.blob, dtype=dt, count=(end - b) // size,
                          offset=self.base + b)
        if e["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return a.reshape(e["shape"])


class Checkpoint:
    def __init__(self, folder):
        idx = os.path.join(folder, "model.safetensors.index.json")
        self.where = {}
        if os.path.exists(idx):
            with open(idx) as f:
                wmap = json.load(f)["weight_map"]
            files = {fn: SafeTensors(os.path.join(folder, fn)) for fn in set(wmap.values())}
            self.where = {k: files[v] for k, v in wmap.items()}
        else:
            st = SafeTensors(os.path.join(folder, "model.safetensors"))
            self.where = {k: st for k in st.header}

    def has(self, name):
        return name in self.where

    def f32(self, name):
        return torch.from_numpy(np.array(self.where[name].get(name), dtype=np.float32))

    def raw(self, name):
        return self.where[name].get(name)


def unpack(packed):
    """uint8 [out/4, in] -> float ternary [out, in] (transformers' unpack_weights)."""
    rows = packed.shape[0]
    out = np.zeros((rows * 4,) + packed.shape[1:], dtype=np.float32)
    for i in range(4):
        out[i * rows:(i + 1) * rows] = ((packed >> (2 * i)) & 3).astype(np.float32) - 1
    return torch.from_numpy(out)


def act_quant(x):
    """Per-token absmax int8 fake quantization; returns (q as float, scale)."""
    s = 127.0 / x.abs().max(dim=-1, keepdim=True).values.clamp(min=1e-5)
    return torch.round(x * s).clamp(-128, 127), s


class Linear:
    """One projection as its layout's forward computes it."""

    def __init__(self, ck, name, kind, scale_rule):
        self.kind = kind
        if kind == "packed":
            self.w = unpack(ck.raw(name + ".weight"))
            self.ws = float(ck.f32(name + ".weight_scale").reshape(-1)[0])
            self.rule = scale_rule
        else:
            w = ck.f32(name + ".weight")
            s = 1.0 / w.abs().mean().clamp(min=1e-5)
            self.w = torch.round(w * s).clamp(-1, 1) / s

    def __call__(self, x):
        q, s = act_quant(x)
        if self.kind == "packed":
            y = q @ self.w.T
            if self.rule == "multiply":      # AutoBitLinear: ActQuant(x) W^T * weight_scale
                return (y / s) * self.ws
            return y / (s * self.ws)         # BitLinear: y / (input_scale * weight_scale)
        return (q / s) @ self.w.T


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def inv_freqs(cfg, d):
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        out = []
        for f in inv.tolist():
            wl = 2 * math.pi / f
            if wl < old / high:
                out.append(f)
            elif wl > old / low:
                out.append(f / factor)
            else:
                sm = (old / wl - low) / (high - low)
                out.append((1 - sm) * f / factor + sm * f)
        inv = torch.tensor(out, dtype=torch.float64)
    return inv


def forward(folder, tokens, scale_rule="auto", permute=True, rope_scaling=True):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    if not rope_scaling:
        cfg.pop("rope_scaling", None)
    arch = cfg["architectures"][0]
    q = cfg.get("quantization_config")
    packed = bool(q) and q.get("quant_method") == "bitnet"
    if scale_rule == "auto":
        scale_rule = "multiply" if q and q.get("linear_class") == "autobitlinear" else "divide"
    ck = Checkpoint(folder)
    E, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    d = E // H
    eps = cfg["rms_norm_eps"]
    kind = "packed" if packed else "latent"
    if arch == "BitNetForCausalLM":
        subs = ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm")
    elif arch == "BitnetForCausalLM":
        subs = ("self_attn.inner_attn_ln", "mlp.ffn_layernorm")
    else:
        subs = None
    act = cfg.get("hidden_act", "relu2" if arch == "BitNetForCausalLM" else "silu")
    T = len(tokens)
    x = ck.f32("model.embed_tokens.weight")[torch.tensor(tokens)]
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    ang = pos * inv_freqs(cfg, d)[None, :]
    ang = torch.cat((ang, ang), dim=-1)
    cos, sin = torch.cos(ang).float(), torch.sin(ang).float()
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        lin = {n: Linear(ck, p + n, kind, scale_rule)
               for n in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                         "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                         "mlp.down_proj"]}
        if not permute:
            # a llama file converted without the q/k permutation computes RoPE on
            # adjacent pairs of HF's half-split rows: the same as permuting them back
            for n, heads in (("self_attn.q_proj", H), ("self_attn.k_proj", KV)):
                w = lin[n].w
                rows = w.shape[0]
                idx = []
                for r in range(rows):
                    h, i = divmod(r, d)
                    j, k = divmod(i, d // 2)
                    idx.append(h * d + 2 * k + j)
                lin[n].w = w[torch.tensor(idx)]
        h = rms_norm(x, ck.f32(p + "input_layernorm.weight"), eps)
        qh = lin["self_attn.q_proj"](h).view(T, H, d).transpose(0, 1)
        kh = lin["self_attn.k_proj"](h).view(T, KV, d).transpose(0, 1)
        vh = lin["self_attn.v_proj"](h).view(T, KV, d).transpose(0, 1)
        qh = qh * cos + rotate_half(qh) * sin
        kh = kh * cos + rotate_half(kh) * sin
        rep = H // KV
        kh = kh.repeat_interleave(rep, dim=0)
        vh = vh.repeat_interleave(rep, dim=0)
        att = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d) + mask, dim=-1)
        o = (att @ vh).transpose(0, 1).reshape(T, E)
        if subs:
            o = rms_norm(o, ck.f32(p + subs[0] + ".weight"), eps)
        x = x + lin["self_attn.o_proj"](o)
        h = rms_norm(x, ck.f32(p + "post_attention_layernorm.weight"), eps)
        g = lin["mlp.gate_proj"](h)
        g = torch.relu(g) ** 2 if act == "relu2" else torch.nn.functional.silu(g)
        m = g * lin["mlp.up_proj"](h)
        if subs:
            m = rms_norm(m, ck.f32(p + subs[1] + ".weight"), eps)
        x = x + lin["mlp.down_proj"](m)
    x = rms_norm(x, ck.f32("model.norm.weight"), eps)
    head = "lm_head.weight" if not cfg.get("tie_word_embeddings") else "model.embed_tokens.weight"
    return (x @ ck.f32(head).T).numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out")
    ap.add_argument("--scale-rule", default="auto", choices=["auto", "multiply", "divide"])
    ap.add_argument("--no-permute", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    logits = forward(a.folder, [int(t) for t in a.tokens.split(",")], a.scale_rule,
                     not a.no_permute)
    if a.out:
        logits.astype("<f4").tofile(a.out)
    print("logits", logits.shape, "argmax_last", int(logits[-1].argmax()),
          "std %.4f" % float(logits.std()))


if __name__ == "__main__":
    sys.exit(main())
