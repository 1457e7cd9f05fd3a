#!/bin/sh
# test_cli_train_mpi.sh - data-parallel training: `mpirun -np 2 bitnet train` on this
# machine against one process with the same global batch (--batch 4: two sequences
# on each rank), 20 steps in ternary mode, two-stage schedule:
# - the losses of every step agree within 1e-5 (measured 1e-6: the ranks' gradients are
#   two halves rounded to float and added, where one process sums all the rows before
#   rounding, so a gradient differs in its last bit or so; no quantization decision
#   changes in these 20 steps);
# - a 2-rank run resumed from its checkpoint at step 10 ends with the same model.gguf,
#   byte for byte, as the 2-rank run that was not stopped;
# - a batch the ranks cannot share is refused.
# Skipped (77) without mpirun, or when this bitnet was built without MPI.
set -u
BITNET=${BITNET:?set BITNET to the program}
if ! command -v mpirun > /dev/null 2>&1; then
    echo "SKIP: no mpirun (scripts/install-deps.sh --mpi installs MPICH)"; exit 77; fi
if ! "$BITNET" info --system | grep -q '^mpi: *yes'; then
    echo "SKIP: this bitnet was built without MPI"; exit 77; fi
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

"$BITNET" synth "$tmp/tok.gguf" --layers 1 --seed 3 > /dev/null 2>&1 || {
    echo "FAIL: bitnet synth"; exit 1; }
awk 'BEGIN { split("the a one every old young cat dog king queen house river sat ran saw sang found near under over by", w, " ");
    for (i = 1; i <= 1200; i++) { s = ""; for (j = 0; j < 8; j++) s = s w[(i * 7 + j * j * 3 + int(i / 9)) % 21 + 1] " ";
        printf "%d: %s.\n", i, s } }' > "$tmp/train.txt"
args="--data $tmp/train.txt --tokenizer $tmp/tok.gguf --dim 128 --layers 1 --heads 2 --ffn 256
    --ctx 16 --steps 20 --eval-every 10 --val-windows 4 --save-every 10"
batch4="--batch 4"

if "$BITNET" train $args $batch4 --out "$tmp/one" > "$tmp/one.log" 2>&1; then ok; else
    fail "one process"; cat "$tmp/one.log" >&2; fi
if mpirun -np 2 "$BITNET" train $args $batch4 --out "$tmp/two" > "$tmp/two.log" 2>&1; then ok; else
    fail "2 ranks"; cat "$tmp/two.log" >&2; fi
if grep -q "data parallel: 2 ranks, 2 sequences" "$tmp/two.log"; then ok; else
    fail "2 ranks: not said"; cat "$tmp/two.log" >&2; fi
if [ "$(grep -c '^wrote' "$tmp/two.log")" -eq 1 ]; then ok; else
    fail "2 ranks: model.gguf written $(grep -c '^wrote' "$tmp/two.log") times"; fi
rows=$(paste -d, "$tmp/one/train.csv" "$tmp/two/train.csv" | awk -F, 'NR > 1 {
    d = $3 - $10; if (d < 0) d = -d; if (d > 1e-5) bad++; n++ } END { print n + 0, bad + 0 }')
if [ "$rows" = "20 0" ]; then ok; else
    fail "2 ranks against one process: (steps, losses apart) = ($rows)"
    paste -d, "$tmp/one/train.csv" "$tmp/two/train.csv" | cut -d, -f1,3,10 >&2
fi
if mpirun -np 2 "$BITNET" train --data "$tmp/train.txt" --resume "$tmp/two/ckpt-000010.ckpt" \
    --out "$tmp/res" --eval-every 10 --val-windows 4 > "$tmp/res.log" 2>&1; then ok; else
    fail "2 ranks resumed"; cat "$tmp/res.log" >&2; fi
if cmp -s "$tmp/two/model.gguf" "$tmp/res/model.gguf"; then ok; else
    fail "2 ranks resumed at step 10: model.gguf differs from the run not stopped"; fi
if mpirun -np 2 "$BITNET" train $args --batch 3 --out "$tmp/odd" > "$tmp/odd.log" 2>&1; then
    fail "--batch 3 on 2 ranks: exit 0"; else ok; fi
if grep -q "batch 3 does not divide among 2 ranks" "$tmp/odd.log"; then ok; else
    fail "--batch 3 on 2 ranks: not said"; cat "$tmp/odd.log" >&2; fi

echo "test_cli_train_mpi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
