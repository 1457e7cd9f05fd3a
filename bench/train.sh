#!/bin/sh
# bench/train.sh - training speed: one step of bn_train_step (bench/train_speed.c) beside
# the same step in eager PyTorch (bench/train_torch.py, torch from /usr/bin/python3), in
# the same run, on the same shape, batch, context and thread count; float and ternary
# mode at 1 and 2 threads. Each figure is the best of REPEAT runs (default 3), the C and
# the PyTorch run taking turns, each run timing STEPS steps (default 3) after one
# untimed step. Prints a markdown table of tokens/s and the ratio C / PyTorch.
#
#   bench/train.sh [REPEAT] [STEPS]
#   TRAIN_SPEED=build/train_speed SHAPE="--dim 256 --layers 4 ..." bench/train.sh
#   BASELINE=old/train_speed bench/train.sh   # also another build, in the same turns
#
# Default shape: E 256, 4 layers, 4 heads, 2 kv heads, FFN 640, context 128, vocabulary
# 32000 (the LLaMA 2 tokenizer's), batch 8 (1024 tokens a step). The shipped model's
# shape (models/tiny-en.gguf): SHAPE="--dim 384 --layers 6 --heads 6 --kv-heads 6
# --ffn 1024 --ctx 256 --vocab 8192 --batch 16".
set -eu
TRAIN_SPEED=${TRAIN_SPEED:-build/train_speed}
PYTHON=${PYTHON:-/usr/bin/python3}
SHAPE=${SHAPE:---dim 256 --layers 4 --heads 4 --kv-heads 2 --ffn 640 --ctx 128 --vocab 32000 --batch 8}
repeat=${1:-3}
steps=${2:-3}
here=$(dirname "$0")
if [ ! -x "$TRAIN_SPEED" ]; then
    echo "bench/train.sh: $TRAIN_SPEED not found (cmake --build build --target train_speed)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import torch' 2> /dev/null; then
    echo "bench/train.sh: $PYTHON has no torch (Debian python3-torch)" >&2
    exit 1
fi
# the tokens/s figure of a line "... X tokens/s ..."
tps() { sed -n 's/.* \([0-9.]*\) tokens\/s.*/\1/p'; }
BASELINE=${BASELINE:-}
if [ -n "$BASELINE" ] && [ ! -x "$BASELINE" ]; then
    echo "bench/train.sh: BASELINE $BASELINE is not an executable" >&2
    exit 1
fi
echo "shape: $SHAPE"
if [ -n "$BASELINE" ]; then
    echo "baseline: $BASELINE"
    echo "| mode | threads | baseline tokens/s | bitnet tokens/s | PyTorch tokens/s | bitnet / baseline | bitnet / PyTorch |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
else
    echo "| mode | threads | bitnet tokens/s | PyTorch tokens/s | bitnet / PyTorch |"
    echo "|---|---:|---:|---:|---:|"
fi
for mode in float ternary; do
    for t in 1 2; do
        best_c=0
        best_py=0
        best_b=0
        for r in $(seq "$repeat"); do
            if [ -n "$BASELINE" ]; then
                # shellcheck disable=SC2086
                b=$("$BASELINE" $SHAPE --threads "$t" --mode "$mode" --steps "$steps" | tps)
                best_b=$("$PYTHON" -c "print(max($best_b, $b))")
            fi
            # shellcheck disable=SC2086
            c=$("$TRAIN_SPEED" $SHAPE --threads "$t" --mode "$mode" --steps "$steps" | tps)
            # shellcheck disable=SC2086
            py=$(OMP_NUM_THREADS=$t "$PYTHON" "$here/train_torch.py" $SHAPE --threads "$t" \
                 --mode "$mode" --steps "$steps" | tps)
            best_c=$("$PYTHON" -c "print(max($best_c, $c))")
            best_py=$("$PYTHON" -c "print(max($best_py, $py))")
        done
        if [ -n "$BASELINE" ]; then
            "$PYTHON" -c "print('| $mode | $t | %.0f | %.0f | %.0f | %.2f | %.2f |' % ($best_b, $best_c, $best_py, $best_c / $best_b, $best_c / $best_py))"
        else
            "$PYTHON" -c "print('| $mode | $t | %.0f | %.0f | %.2f |' % ($best_c, $best_py, $best_c / $best_py))"
        fi
    done
done
