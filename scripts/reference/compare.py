"""compare.py - compares bitnet_ref.py's logits with llama_logits.mjs's log-probabilities.

    /usr/bin/python3 scripts/reference/compare.py REF_LOGITS.f32 LLAMA_LOGPROBS.f32 N_VOCAB

Both files are raw little-endian float32 [n_tokens, n_vocab]. The reference's logits are
turned into log-softmax (llama.cpp's side only gives probabilities), then it prints the
max absolute difference of the log-probabilities, that difference relative to the
reference's logit scale (the standard deviation of its logits over the vocabulary,
averaged over positions, and its max |logit|), and the positions whose argmax differs.
"""
import sys

import numpy as np


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    n_vocab = int(argv[3])
    ref = np.fromfile(argv[1], dtype="<f4").reshape(-1, n_vocab)
    other = np.fromfile(argv[2], dtype="<f4").reshape(-1, n_vocab).astype(np.float64)
    if ref.shape != other.shape:
        print("shapes differ: %s vs %s" % (ref.shape, other.shape))
        return 1
    lp = log_softmax(ref)
    diff = np.abs(lp - other)
    scale = float(ref.astype(np.float64).std(axis=1).mean())
    print("positions %d, vocab %d" % ref.shape)
    print("max |dlogprob| = %.3g (mean %.3g)" % (diff.max(), diff.mean()))
    print("logit scale: mean std %.4g, max |logit| %.4g; max diff / std = %.3g" %
          (scale, np.abs(ref).max(), diff.max() / scale))
    same = (ref.argmax(axis=1) == other.argmax(axis=1))
    print("argmax agrees at %d of %d positions" % (same.sum(), len(same)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
