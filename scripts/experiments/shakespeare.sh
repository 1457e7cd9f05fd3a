#!/bin/sh
# shakespeare.sh - the real-text run of docs/TRAINING.md: the same small BitNet b1.58
# model trained on tinyshakespeare (90/10 split, LLaMA 2 tokenizer) in ternary mode and
# in float mode, same data, steps and seed; prints both validation losses and their
# gap, and a few greedy and sampled continuations of each model.
#
#   scripts/experiments/shakespeare.sh [BITNET] [OUT_DIR]
#
# Needs ../shared/data (tinyshakespeare.txt and the LLaMA 2 tokenizer.model; see its
# README). THREADS, STEPS and the shape variables below override the defaults;
# PARALLEL=1 trains the two models at the same time (THREADS each).
set -eu
cd "$(dirname "$0")/../.."
bitnet=${1:-build/bitnet}
out=${2:-build/shakespeare}
data=../shared/data
text=$data/corpus/tinyshakespeare.txt
tok=$data/tokenizer/llama2/tokenizer.model
for f in "$text" "$tok"; do
    [ -r "$f" ] || { echo "shakespeare.sh: $f is missing (../shared/data)" >&2; exit 1; }
done
: "${THREADS:=2}" "${STEPS:=600}" "${DIM:=256}" "${LAYERS:=4}" "${HEADS:=4}" \
  "${FFN:=768}" "${CTX:=128}" "${BATCH:=8}" "${LR:=2e-3}" "${PARALLEL:=0}"
mkdir -p "$out"
run() {
    "$bitnet" train --data "$text" --val-frac 0.1 --tokenizer "$tok" --out "$out/$1" \
        --mode $1 --dim $DIM --layers $LAYERS --heads $HEADS --ffn $FFN \
        --ctx $CTX --batch $BATCH --steps $STEPS --lr $LR --eval-every 100 \
        --val-windows 0 --seed 1 -t $THREADS
}
if [ "$PARALLEL" = 1 ]; then
    run ternary > "$out/ternary.log" 2>&1 &
    run float > "$out/float.log" 2>&1
    wait $!
else
    run ternary
    run float
fi
for mode in ternary float; do
    val=$(awk -F, 'END { print $4 }' "$out/$mode/train.csv")
    echo "$mode: final validation loss $val"
done
for mode in ternary float; do
    echo "== $mode, greedy"
    "$bitnet" generate -m "$out/$mode/model.gguf" -p "ROMEO:" -n 60 --temp 0 2>/dev/null
    echo
    echo "== $mode, sampled (temperature 0.8, seed 7)"
    "$bitnet" generate -m "$out/$mode/model.gguf" -p "ROMEO:" -n 60 --temp 0.8 -s 7 2>/dev/null
    echo
done
