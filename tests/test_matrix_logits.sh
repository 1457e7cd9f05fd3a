#!/bin/sh
# test_matrix_logits.sh - the amx family's matrix kernels change no logit: the family
# shares every float kernel with avx512 and its integer sums are the tiles', so its
# logits must equal the avx512 family's bit for bit. On synthetic I2_S and TQ2_0
# models: the logits of every position of prompts of 1 to 100 tokens (steps below and
# above the matrix kernels' 8 rows, across their 16- and 32-row tiles), and eight
# greedy completions batched in one context (steps mixing prefill and decode rows).
# Skips, saying so, where this CPU or build has no amx family. BITNET: the program.
set -u
passed=0
failed=0
if ! BITNET_KERNELS=amx "$BITNET" info --system 2>/dev/null | grep -q "^kernels: *amx"; then
    echo "test_matrix_logits: skipped: no amx family on this CPU or in this build"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
text="one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
for type in i2_s tq2_0; do
    m="$tmp/$type.gguf"
    "$BITNET" synth "$m" --type "$type" --ffn-act relu2 --proj-scale 0.0625 \
        --seed 3 >/dev/null || { echo "FAIL: synth $type" >&2; exit 1; }
    for words in 1 3 4 9 17 33 60 100; do
        prompt=$(i=0; while [ $i -lt "$words" ]; do printf '%s ' "$text"; i=$((i + 1)); \
                 done | cut -d' ' -f1-"$words")
        for fam in avx512 amx; do
            BITNET_KERNELS=$fam "$BITNET" logits -m "$m" -p "$prompt" --all \
                -o "$tmp/$fam.bin" >/dev/null 2>&1 || echo "FAIL: logits on $fam" >&2
        done
        if cmp -s "$tmp/avx512.bin" "$tmp/amx.bin" && [ -s "$tmp/amx.bin" ]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            echo "FAIL: $type, $words words: amx logits differ from avx512's" >&2
        fi
    done
    i=0
    : >"$tmp/prompts"
    while [ $i -lt 8 ]; do
        echo "$text" | cut -d' ' -f1-$((i * 5 + 1)) >>"$tmp/prompts"
        i=$((i + 1))
    done
    for fam in avx512 amx; do
        BITNET_KERNELS=$fam "$BITNET" batch -m "$m" -f "$tmp/prompts" --parallel 8 -n 12 \
            --temp 0 >"$tmp/$fam.jsonl" 2>/dev/null || echo "FAIL: batch on $fam" >&2
    done
    if cmp -s "$tmp/avx512.jsonl" "$tmp/amx.jsonl" && [ "$(wc -l <"$tmp/amx.jsonl")" -eq 8 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $type: amx batched completions differ from avx512's" >&2
    fi
done
echo "test_matrix_logits: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
