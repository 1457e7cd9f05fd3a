#!/bin/sh
# train-default-model.sh - makes the model that ships with the project
# (models/tiny-en.gguf) from nothing: the public-domain corpus rebuilt from Debian
# packages, a byte-level BPE tokenizer trained on it, token shards, ternary training
# with the BitNet b1.58 two-stage schedule, export to I2_S GGUF, and its sha256 checked
# against models/tiny-en.gguf.sha256. docs/TRAINING.md tells the recipe and its result.
#
#   scripts/train-default-model.sh [options]
#     -o DIR        the work folder (default build/default-model); the model is
#                   DIR/tiny-en.gguf, the training run DIR/ternary
#     --bitnet BIN  the program (default build/bitnet, built first when missing)
#     --float       also train the same shape in float mode (no quantization) on the
#                   same data, steps and seed, into DIR/float, at the same time as
#                   the ternary run when the machine has two or more CPUs
#     -t N          threads of each training run (default: every CPU, or half of
#                   them each with --float); the results do not depend on it
#     --root DIR    read the corpus packages unpacked under DIR (see
#                   scripts/corpus/build.sh) instead of installing them
#     --steps N     optimizer steps (default: the shipped model's); with another
#                   count the result is a different model and is not checked
#     --smoke       a few steps of a small batch: every stage runs, in a minute or two
#     --resume      continue the runs from their newest checkpoints in DIR (after an
#                   interruption), keeping DIR's corpus, tokenizer and shards; the
#                   result is the same as an uninterrupted run
# Exit 0 when the model is written (and, for the full recipe, matches the shipped
# checksum), 1 otherwise.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
out="$top/build/default-model"
bitnet=""
float=0
threads=""
root=""
smoke=0
resume=0

# The recipe of models/tiny-en.gguf. Changing any of these makes another model.
VOCAB=8192
DIM=384
LAYERS=6
HEADS=6
FFN=1024
CTX=256
BATCH=16
STEPS=800
LR=2e-3
SEED=1
VAL_FRAC=0.01
VAL_WINDOWS=0
NAME="bitnet tiny-en (Austen + World English Bible)"

while [ $# -gt 0 ]; do
    case $1 in
        -o) out=${2:?-o needs a folder}; shift 2 ;;
        --bitnet) bitnet=${2:?--bitnet needs a program}; shift 2 ;;
        --float) float=1; shift ;;
        -t) threads=${2:?-t needs a count}; shift 2 ;;
        --root) root=${2:?--root needs a folder}; shift 2 ;;
        --steps) STEPS=${2:?--steps needs a count}; shift 2 ;;
        --smoke) smoke=1; shift ;;
        --resume) resume=1; shift ;;
        -h|--help) sed -n '2,/^set/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "train-default-model.sh: unknown option '$1' (--help)" >&2; exit 2 ;;
    esac
done
full=1
[ "$STEPS" = 800 ] || full=0
if [ "$smoke" = 1 ]; then
    STEPS=3
    BATCH=2
    VAL_WINDOWS=4
    full=0
fi
case $STEPS in ''|*[!0-9]*) echo "train-default-model.sh: --steps '$STEPS' is not a count" >&2; exit 2 ;; esac

if [ -z "$bitnet" ]; then
    bitnet="$top/build/bitnet"
    if [ ! -x "$bitnet" ]; then
        echo "== building $bitnet"
        make -C "$top" build >/dev/null
    fi
fi
[ -x "$bitnet" ] || { echo "train-default-model.sh: $bitnet is not a program" >&2; exit 1; }
ncpu=$(nproc 2>/dev/null || echo 1)
if [ -z "$threads" ]; then
    threads=$ncpu
    if [ "$float" = 1 ] && [ "$ncpu" -ge 2 ]; then threads=$((ncpu / 2)); fi
fi
mkdir -p "$out"
t0=$(date +%s)

austen="$out/corpus/austen.txt"
web="$out/corpus/web.txt"
if [ "$resume" = 1 ] && [ -f "$out/shards/val-00000.bin" ] && [ -f "$out/tokenizer.json" ]; then
    echo "== 1-3/5 --resume: the corpus, tokenizer and shards in $out as they are"
else
echo "== 1/5 corpus: Jane Austen's novels and the World English Bible, from Debian packages"
if [ -n "$root" ]; then
    "$top/scripts/corpus/build.sh" -o "$out/corpus" --root "$root"
else
    "$top/scripts/corpus/build.sh" -o "$out/corpus"
fi
echo "== 2/5 tokenizer: byte-level BPE, $VOCAB tokens"
"$bitnet" -t "$ncpu" train-tokenizer -q --vocab $VOCAB -o "$out/tokenizer.json" \
    "$austen" "$web"

echo "== 3/5 token shards (validation: $VAL_FRAC of the paragraphs)"
"$bitnet" corpus -q --tokenizer "$out/tokenizer.json" -o "$out/shards" \
    --val-frac $VAL_FRAC --seed 0 "$austen" "$web"
fi

# The newest checkpoint of a run's folder, or nothing.
newest() {
    ls "$1"/ckpt-*.ckpt 2>/dev/null | sed 's/.*ckpt-\([0-9]*\)\.ckpt$/\1 &/' |
        sort -n | tail -1 | cut -d' ' -f2-
}
train() {   # train MODE
    mode=$1
    shift
    ck=""
    [ "$resume" = 1 ] && ck=$(newest "$out/$mode")
    if [ -n "$ck" ]; then
        set -- --resume "$ck"
    else
        rm -rf "${out:?}/$mode"
    fi
    # shellcheck disable=SC2086
    "$bitnet" train --data "$out/shards" --tokenizer "$out/tokenizer.json" \
        --out "$out/$mode" --mode $mode --dim $DIM --layers $LAYERS --heads $HEADS \
        --ffn $FFN --ctx $CTX --batch $BATCH --steps $STEPS --lr $LR --seed $SEED \
        --schedule two-stage --val-windows $VAL_WINDOWS --save-every 100 \
        -t "$threads" "$@"
}
echo "== 4/5 training: ternary, dim $DIM, $LAYERS layers, $STEPS steps of $BATCH x $CTX tokens, $threads thread(s)"
if [ "$float" = 1 ] && [ "$ncpu" -ge 2 ]; then
    echo "   (and the float baseline beside it: $out/float.log)"
    train float > "$out/float.log" 2>&1 &
    fpid=$!
    trap 'kill $fpid 2>/dev/null' EXIT
    trap 'exit 130' INT TERM
    train ternary
    wait $fpid || { echo "train-default-model.sh: the float run failed; see $out/float.log" >&2; exit 1; }
    trap - EXIT INT TERM
else
    train ternary
    [ "$float" = 1 ] && train float
fi

echo "== 5/5 export and checksum"
"$bitnet" export "$out/ternary/$(printf "ckpt-%06d.ckpt" "$STEPS")" "$out/tiny-en.gguf" --name "$NAME"
(cd "$out" && sha256sum tiny-en.gguf > tiny-en.gguf.sha256)
cat "$out/tiny-en.gguf.sha256"
for mode in ternary float; do
    [ -f "$out/$mode/train.csv" ] || continue
    awk -F, -v m=$mode 'END { printf "%s: validation loss %s (perplexity %.2f)\n", m, $4, exp($4) }' \
        "$out/$mode/train.csv"
done
echo "time: $(( $(date +%s) - t0 )) s"
if [ "$full" = 1 ]; then
    if [ ! -f "$top/models/tiny-en.gguf.sha256" ]; then
        echo "no models/tiny-en.gguf.sha256 to compare with"
    elif (cd "$out" && sha256sum -c --quiet "$top/models/tiny-en.gguf.sha256" 2>/dev/null); then
        echo "the result is models/tiny-en.gguf, bit for bit"
    else
        echo "train-default-model.sh: $out/tiny-en.gguf differs from models/tiny-en.gguf" >&2
        exit 1
    fi
fi
