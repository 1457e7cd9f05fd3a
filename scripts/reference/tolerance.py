#!/usr/bin/python3
"""tolerance.py - how far two correct implementations of the BitNet b1.58 forward pass
may differ: the reference (bitnet_ref.py) against itself under perturbations as small as
the rounding differences between two float32 implementations.

    /usr/bin/python3 scripts/reference/tolerance.py MODEL.gguf [MODEL2.gguf ...] \
        [--tokens 1,2,3] [--trials 4] [--ffn-act relu2]

For each model and each configuration (act-quant on/off x KV cache f32/f16) it compares
the reference's logits with those of the same reference under:
  embd 1e-6   the embedding rows scaled by (1 + 1e-6 * random sign) per element
  resid 1e-6  the same on the embedding and on the residual stream after every
              sub-block (a rounding difference that appears in every layer)
  f64         the whole pass in float64 (the reference's own float32 rounding error)
  rope f32    RoPE angles pos * theta^(-2i/d) computed in float32, not float64 (what a
              C implementation using powf and float products gets)
and, across configurations, KV f16 against KV f32 (what using the wrong fixture costs).
Per row: max |logit diff|, that divided by the std of the logits, the mean |diff| over
the std, the fraction of positions whose argmax differs, and (act-quant on) how many
int8 activation codes differ out of all codes computed. Random perturbations take the
worst of --trials. With --bugs, a second table: what some plausible bugs change (the
tolerance must stay well below these). Prints markdown. Findings: README.md here.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bitnet_ref import BitNetRef  # noqa: E402

# the 64-token prompt of tests/fixtures/model_ref.bnfx (scripts/fixtures/
# make_model_ref.py): ids < 512, two copies of a 6-token phrase, a run of three 9s
PROMPT = [256, 123, 112, 380, 386, 85, 303, 284, 362, 182, 216, 15, 61, 17, 301, 42, 42,
          5, 388, 68, 158, 58, 229, 391, 379, 23, 381, 418, 463, 131, 56, 379, 111, 134,
          354, 17, 301, 42, 42, 5, 388, 115, 162, 211, 139, 35, 379, 43, 156, 102, 477,
          174, 418, 98, 206, 4, 217, 184, 38, 278, 465, 9, 9, 9]


class CodeRecorder:
    """A forward() hook that keeps every projection's int8 codes (in call order) and,
    when rel > 0, perturbs the embedding (and with resid, the residual stream) by a
    relative rel with random signs."""

    def __init__(self, rel=0.0, resid=False, seed=0):
        self.codes, self.rel, self.resid = [], rel, resid
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, kind, name, x):
        if kind == "codes":
            self.codes.append(x.to(torch.int16))
            return None
        if self.rel > 0 and (kind == "embd" or (kind == "resid" and self.resid)):
            sign = torch.randint(0, 2, x.shape, generator=self.gen).to(x.dtype) * 2 - 1
            return x * (1 + self.rel * sign)
        return None


def run(model, tokens, aq, kv, rec):
    """Logits (T, vocab) as float64 numpy."""
    return model.forward(tokens, aq, kv, hook=rec).to(torch.float64).numpy()


def compare(base, other, n_prompt, base_rec=None, other_rec=None):
    """Metrics of `other` against `base`, logits (T, vocab) of the prompt followed by
    the base's greedy ids: on the prompt's rows, max |diff| ("max"), that and the mean
    |diff| over the std of the base ("max_rel", "mean_rel"), the fraction of rows whose
    argmax differs ("argmax"); on the greedy steps (rows n_prompt-1 .. T-2, teacher
    forced), how many argmaxes differ ("g_steps") and the largest top-2 gap of the base
    at such a step ("g_gap"); "flips"/"codes": int8 codes differing / in all."""
    p, o = base[:n_prompt], other[:n_prompt]
    d = np.abs(p - o)
    std = float(p.std())
    r = dict(max=float(d.max()), max_rel=float(d.max()) / std,
             mean_rel=float(d.mean()) / std,
             argmax=float(np.mean(p.argmax(1) != o.argmax(1))), flips=None, codes=None)
    gb, go = base[n_prompt - 1:-1], other[n_prompt - 1:-1]
    differ = gb.argmax(1) != go.argmax(1)
    top2 = np.sort(gb, axis=1)[:, -2:]
    gaps = top2[:, 1] - top2[:, 0]
    r["g_steps"] = int(differ.sum())
    r["g_gap"] = float(gaps[differ].max()) if differ.any() else 0.0
    if base_rec is not None and other_rec is not None:
        r["flips"] = sum(int((a != b).sum()) for a, b in zip(base_rec.codes,
                                                             other_rec.codes))
        r["codes"] = sum(int(a.numel()) for a in base_rec.codes)
    return r


def worst(results):
    """The largest of each metric over several trials."""
    out = dict(results[0])
    for r in results[1:]:
        for k, v in r.items():
            if v is not None and (out[k] is None or v > out[k]):
                out[k] = v
    return out


def study(path, tokens, trials, ffn_act="relu2", n_greedy=32):
    """The rows of the table for one model: list of dicts (aq, kv, what, res)."""
    m32 = BitNetRef(path, ffn_act, torch.float32)
    m64 = BitNetRef(path, ffn_act, torch.float64)
    mrope = BitNetRef(path, ffn_act, torch.float32)
    mrope.rope_dtype = torch.float32
    rows, n = [], len(tokens)
    for aq in (False, True):
        base_kv = {}
        for kv in ("f32", "f16"):
            ids, _ = m32.greedy(tokens, n_greedy, aq, kv)
            seq = list(tokens) + ids[:-1]      # the greedy steps, teacher forced
            rec0 = CodeRecorder()
            base = run(m32, seq, aq, kv, rec0)
            base_kv[kv] = base
            cases = [("embd 1e-6", m32, dict(rel=1e-6, resid=False), trials),
                     ("resid 1e-6", m32, dict(rel=1e-6, resid=True), trials),
                     ("f64", m64, dict(), 1),
                     ("rope f32", mrope, dict(), 1)]
            for name, model, kw, count in cases:
                res = []
                for t in range(count):
                    rec = CodeRecorder(seed=1000 + t, **kw)
                    res.append(compare(base, run(model, seq, aq, kv, rec), n, rec0, rec))
                rows.append(dict(aq=aq, kv=kv, what=name, res=worst(res)))
        if base_kv["f32"].shape == base_kv["f16"].shape:
            rows.append(dict(aq=aq, kv="f16 vs f32", what="KV rounding",
                             res=compare(base_kv["f32"], base_kv["f16"], n)))
    return rows


def bugs(path, tokens, ffn_act="relu2", n_greedy=32):
    """What plausible bugs change, per act-quant setting (KV f32): list of dicts."""
    rows, n = [], len(tokens)
    for aq in (False, True):
        m = BitNetRef(path, ffn_act)
        ids, _ = m.greedy(tokens, n_greedy, aq, "f32")
        seq = list(tokens) + ids[:-1]
        base = run(m, seq, aq, "f32", None)

        def row(what, other):
            rows.append(dict(aq=aq, kv="f32", what=what,
                             res=compare(base, other, n)))
        m.ffn_act = "silu" if ffn_act == "relu2" else "relu2"
        row("other FFN activation", run(m, seq, aq, "f32", None))
        m.ffn_act = ffn_act
        theta = m.theta
        m.theta = 10000.0
        row("RoPE theta 1e4 (not the file's)", run(m, seq, aq, "f32", None))
        m.theta = theta
        saved = [(L["attn_sub_norm"], L["ffn_sub_norm"]) for L in m.layers]
        for L in m.layers:
            if L["attn_sub_norm"] is not None:
                L["attn_sub_norm"] = torch.ones_like(L["attn_sub_norm"])
        row("attn_sub_norm weight ignored", run(m, seq, aq, "f32", None))
        for L, (a, f) in zip(m.layers, saved):
            L["attn_sub_norm"], L["ffn_sub_norm"] = a, f
        eps = m.eps
        m.eps = 1e-6
        row("RMSNorm eps 1e-6 (not 1e-5)", run(m, seq, aq, "f32", None))
        m.eps = eps
        shifted = m.forward([seq[0]] + seq, aq, "f32")[1:]
        row("positions off by one", shifted.to(torch.float64).numpy())
        row("act-quant %s" % ("on" if not aq else "off"),
            run(m, seq, not aq, "f32", None))
    return rows


def print_rows(path, rows):
    """The markdown rows of one model."""
    for row in rows:
        r = row["res"]
        codes = "-" if r["flips"] is None or not row["aq"] else \
            "%d of %d" % (r["flips"], r["codes"])
        print("| %s | %s | %s | %s | %.3g | %.3g | %.3g | %.1f%% | %d (%.3g) | %s |" % (
            os.path.basename(path), "on" if row["aq"] else "off", row["kv"], row["what"],
            r["max"], r["max_rel"], r["mean_rel"], 100 * r["argmax"], r["g_steps"],
            r["g_gap"], codes))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description="reference against itself, perturbed")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--tokens", default=",".join(map(str, PROMPT)))
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--ffn-act", default="relu2", choices=("relu2", "silu", "auto"))
    ap.add_argument("--bugs", action="store_true", help="also the table of bugs")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    tokens = [int(t) for t in args.tokens.split(",")]
    head = ("| model | act-quant | KV | %s | max abs diff | max / logit std | "
            "mean / logit std | argmax differs | greedy steps differing (largest ref "
            "gap there) | int8 codes differing |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    print(head % "perturbation")
    for path in args.models:
        print_rows(path, study(path, tokens, args.trials, args.ffn_act))
    if args.bugs:
        print()
        print(head % "bug")
        for path in args.models:
            print_rows(path, bugs(path, tokens, args.ffn_act))


if __name__ == "__main__":
    main()
