#!/bin/sh
# default-model-search.sh - the shape search behind models/tiny-en.gguf (docs/TRAINING.md,
# "The model that ships"): candidate shapes trained two at a time, one thread each (as
# the shipped model and its float baseline were), on the corpus, tokenizer and shards
# that scripts/train-default-model.sh makes.
#   1. speed: 12 steps of each of four shapes, tokens/s of steps 4-12;
#   2. the two fastest for equal compute: steps sized so that each runs about 8 and then
#      16 minutes at its measured speed (the full two-stage schedule in each), and the
#      validation loss at the end.
#
#   scripts/experiments/default-model-search.sh [BITNET] [WORK]
# WORK is a folder where scripts/train-default-model.sh has written tokenizer.json and
# shards/ (default build/default-model; run that script first, --smoke is enough).
# Prints "shape tokens/s" lines, then "shape steps tokens/s validation-loss" lines.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bitnet=$(realpath "${1:-$top/build/bitnet}")
work=$(realpath -m "${2:-$top/build/default-model}")
out=$work/search
for f in "$work/tokenizer.json" "$work/shards"; do
    [ -e "$f" ] || { echo "default-model-search.sh: $f is missing (run scripts/train-default-model.sh --smoke -o $work)" >&2; exit 1; }
done
mkdir -p "$out"

# run NAME DIM LAYERS HEADS FFN STEPS [more train options]
run() {
    name=$1 dim=$2 layers=$3 heads=$4 ffn=$5 steps=$6
    shift 6
    "$bitnet" train --data "$work/shards" --tokenizer "$work/tokenizer.json" \
        --out "$out/$name" --dim "$dim" --layers "$layers" --heads "$heads" --ffn "$ffn" \
        --ctx 256 --batch 16 --steps "$steps" -t 1 "$@" > "$out/$name.log" 2>&1
    echo "$name $steps $(awk -F, 'NR > 4 { s += $5; n++ } END { printf "%.0f", s / n }' \
        "$out/$name/train.csv") $(awk -F, 'END { print $4 }' "$out/$name/train.csv")"
}

# pair "ARGS1" "ARGS2": the two runs side by side; fails if either does
pair() {
    # shellcheck disable=SC2086
    run $1 & p=$!
    # shellcheck disable=SC2086
    run $2
    wait $p
}

echo "== speed (12 steps, two shapes at a time)"
q="--warmup 2 --eval-every 1000 --val-windows 1"
pair "speed-256x6 256 6 4 768 12 $q" "speed-384x6 384 6 6 1024 12 $q"
pair "speed-512x6 512 6 8 1408 12 $q" "speed-384x8 384 8 6 1024 12 $q"

echo "== equal compute: about 8 minutes, then about 16 (validation over all windows)"
q="--lr 2e-3 --eval-every 1000 --val-windows 0"
pair "s256x6-8m 256 6 4 768 145 $q" "s384x6-8m 384 6 6 1024 85 $q"
pair "s256x6-16m 256 6 4 768 305 $q" "s384x6-16m 384 6 6 1024 183 $q"
