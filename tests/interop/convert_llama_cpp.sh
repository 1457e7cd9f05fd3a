#!/bin/sh
# convert_llama_cpp.sh - a file written by `bitnet convert` read by llama.cpp (npm
# node-llama-cpp, prebuilt CPU binaries): the synthetic LlamaForCausalLM ternary
# checkpoint of scripts/fixtures/make_hf_checkpoints.py (llama_packed) converted with
# float projections (--type f32, act-quant off on both sides), so that llama.cpp runs
# it through its own LLaMA graph and RoPE on adjacent pairs. Its log-probabilities at
# every position must equal ours within 4e-3 (twice what llama.cpp's f16 KV cache
# costs, docs/CONFORMANCE.md) with the same argmax everywhere: the q/k rows permuted
# for that RoPE, the norms, GQA and the metadata mean to llama.cpp what they mean here.
#
#   BITNET=build/bitnet tests/interop/convert_llama_cpp.sh
# Exit 0 passed, 1 failed, 77 skipped (no python3 with NumPy, no node-llama-cpp).
set -u
BITNET=${BITNET:?set BITNET to the bitnet program}
case $BITNET in /*) ;; *) BITNET=$(pwd)/$BITNET ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../..
py=
for c in python3 /usr/bin/python3; do
    if "$c" -c "import numpy" >/dev/null 2>&1; then py=$c; break; fi
done
[ -n "$py" ] || { echo "convert_llama_cpp: no python3 with NumPy: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" "$root/scripts/fixtures/make_hf_checkpoints.py" "$work" --only llama_packed >/dev/null &&
"$BITNET" convert -q "$work/llama_packed" -o "$work/l.gguf" --type f32 --lm-head f32 \
    --embd-type f32 2>"$work/convert.log" || { cat "$work/convert.log"; echo "convert_llama_cpp: 0 passed, 1 failed"; exit 1; }
T=309,5,17,42,100,7,300,12,99,1,2,3,200,150,60,33,250,251,252,10,11,12,13,14
"$BITNET" logits -m "$work/l.gguf" --tokens $T --all --act-quant off -o "$work/ours.f32" \
    >/dev/null 2>&1 || { echo "convert_llama_cpp: 0 passed, 1 failed"; exit 1; }
node "$root/scripts/reference/llama_logits.mjs" "$work/l.gguf" --tokens $T \
    --out "$work/llama.f32" >"$work/log" 2>&1
rc=$?
if [ $rc -eq 77 ]; then echo "convert_llama_cpp: node-llama-cpp not found: skipped"; exit 77; fi
if [ $rc -ne 0 ]; then
    sed 's/^/  | /' "$work/log" | tail -5
    echo "convert_llama_cpp: 0 passed, 1 failed"
    exit 1
fi
"$py" - "$work/ours.f32" "$work/llama.f32" <<'PY'
import sys
import numpy as np
ours = np.fromfile(sys.argv[1], dtype="<f4").reshape(-1, 320).astype(np.float64)
llama = np.fromfile(sys.argv[2], dtype="<f4").reshape(-1, 320).astype(np.float64)
m = ours.max(1, keepdims=True)
lp = ours - m - np.log(np.exp(ours - m).sum(1, keepdims=True))
d = np.abs(lp - llama)
same = int((lp.argmax(1) == llama.argmax(1)).sum())
ok = [d.max() <= 4e-3, same == len(lp)]
print("convert_llama_cpp: llama.cpp on a converted LlamaForCausalLM ternary checkpoint: "
      "max |d logprob| %.2g (mean %.2g), argmax agrees at %d of %d positions"
      % (d.max(), d.mean(), same, len(lp)))
print("convert_llama_cpp: %d passed, %d failed" % (sum(ok), len(ok) - sum(ok)))
sys.exit(0 if all(ok) else 1)
PY
