#!/bin/sh
# bench/quantize.sh - `bitnet quantize` throughput (GB of source weights converted per
# second) at 1 and 2 threads, beside the machine's read bandwidth measured in the same
# run. Source: a synthetic model with the 2B-4T shapes and F16 projections (LAYERS
# layers, default 10, to keep the file near 2 GB), converted to i2_s and to tq2_0.
#
#   BITNET=build/bitnet bench/quantize.sh [LAYERS]
set -eu
BITNET=${BITNET:-build/bitnet}
layers=${1:-10}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BITNET" synth "$tmp/f16.gguf" --preset 2b-4t --layers "$layers" --type f16
echo "source: $(du -h "$tmp/f16.gguf" | cut -f1) (2B-4T shapes, $layers layers, f16 projections)"
for t in 1 2; do
    "$BITNET" membw -t "$t" --mib 2048
    for type in i2_s tq2_0; do
        for rep in 1 2 3; do
            "$BITNET" quantize -q -t "$t" "$tmp/f16.gguf" "$tmp/out.gguf" --type "$type" 2>&1 |
                sed -n "s/.*(\(.*\) in \(.*\) s, \(.*\) GB\/s on \(.*\) threads).*/quantize $type: \3 GB\/s (\1 in \2 s, \4 threads, run $rep)/p"
        done
    done
done
