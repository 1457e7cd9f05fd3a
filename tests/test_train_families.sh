#!/bin/sh
# test_train_families.sh - the training step gives the same bits on every kernel family
# this build and CPU run (scalar, avx2, avx512, amx) and on 1 and 2 threads: bench's
# train_speed, on a small shape that reaches every path of src/train/fast.c (n_embd 128
# for the I2_S kernel, n_ff 192 for the integer loop, partial tiles, a chunked sum),
# prints a hash of the parameters and AdamW moments after 3 steps; every run of a mode
# must print the same hash. Float and ternary mode. TRAIN_SPEED: the harness.
set -u
passed=0
failed=0
shape="--dim 128 --layers 2 --heads 4 --kv-heads 2 --ffn 192 --ctx 7 --vocab 50 --batch 3"
for mode in float ternary; do
    want=""
    runs=""
    for fam in scalar avx2 avx512 amx; do
        for t in 1 2; do
            # shellcheck disable=SC2086
            out=$(BITNET_KERNELS=$fam "$TRAIN_SPEED" $shape --mode $mode --threads $t \
                  --steps 3 --warmup 0 2>/dev/null) || continue
            # a family this CPU cannot run falls back to another: not that family's run
            echo "$out" | grep -q "^kernels $fam," || continue
            hash=$(echo "$out" | sed -n 's/.*state fnv1a64 \([0-9a-f]*\).*/\1/p')
            runs="$runs $fam/$t"
            if [ -z "$want" ]; then
                want=$hash
            elif [ "$hash" = "$want" ]; then
                passed=$((passed + 1))
            else
                failed=$((failed + 1))
                echo "FAIL: $mode on $fam, $t threads: state $hash, first run's $want" >&2
            fi
        done
    done
    if [ -z "$want" ]; then
        failed=$((failed + 1))
        echo "FAIL: $mode: no run of $TRAIN_SPEED printed a hash" >&2
    fi
    echo "$mode: the same state on$runs"
done
echo "test_train_families: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
