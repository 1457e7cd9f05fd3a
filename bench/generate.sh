#!/bin/sh
# bench/generate.sh - `bitnet generate` speed on a synthetic model with exactly the
# 2B-4T shapes (I2_S projections, tied F16 embedding) at 1 and 2 threads, beside the
# decode limit of the same run: bytes read per token (every weight once) divided by the
# read bandwidth that `bitnet membw` measures just before. Prompt: 100 tokens in one
# batch (pp); generation: 32 tokens one at a time (tg). Best of REPEAT runs (default 3).
#
#   BITNET=build/bitnet bench/generate.sh [REPEAT]
set -eu
BITNET=${BITNET:-build/bitnet}
repeat=${1:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BITNET" synth "$tmp/m.gguf" --preset 2b-4t > /dev/null
bytes=$("$BITNET" info --json "$tmp/m.gguf" | python3 -c \
    'import json,sys; print(sum(t["bytes"] for t in json.load(sys.stdin)["tensors"]))')
prompt="the quick brown fox jumps over the lazy dog and then the cat sat on the mat while\
 the bird sang in the tree over the hill and far away there was a castle made of stone\
 where a king lived"
echo "model: 2B-4T shapes, i2_s + f16 embedding; $bytes bytes read per token"
echo "| threads | read GB/s | decode limit tok/s | pp100 tok/s | tg32 tok/s | tg / limit |"
echo "|---:|---:|---:|---:|---:|---:|"
for t in 1 2; do
    bw=$("$BITNET" membw -t "$t" --mib 2048 | sed -n 's/read bandwidth: \([0-9.]*\) GB\/s.*/\1/p')
    best_pp=0
    best_tg=0
    for r in $(seq "$repeat"); do
        "$BITNET" generate -m "$tmp/m.gguf" -p "$prompt" -n 32 --temp 0 --ignore-eos \
            -c 512 -t "$t" --no-echo > /dev/null 2> "$tmp/err"
        pp=$(sed -n 's/^prompt: .*(\([0-9.]*\) tokens\/s)/\1/p' "$tmp/err")
        tg=$(sed -n 's/^generation: .*(\([0-9.]*\) tokens\/s)/\1/p' "$tmp/err")
        best_pp=$(python3 -c "print(max($best_pp, $pp))")
        best_tg=$(python3 -c "print(max($best_tg, $tg))")
    done
    python3 -c "
bw, b, pp, tg = $bw, $bytes, $best_pp, $best_tg
lim = bw * 1e9 / b
print('| $t | %.1f | %.2f | %.2f | %.2f | %.2f |' % (bw, lim, pp, tg, tg / lim))"
done
