#!/bin/sh
# bench/tokenize.sh - encode throughput of `bitnet tokenize` beside Hugging Face
# tokenizers (npm, native) on the same text in the same run: the LLaMA 3 tokenizer on
# a few MB of real English text (tinyshakespeare, repeated COPIES times, default 3).
#
#   BITNET=build/bitnet bench/tokenize.sh [DATA_DIR] [COPIES]
# DATA_DIR holds tokenizer/llama3/tokenizer.json and corpus/tinyshakespeare.txt
# (default ../shared/data). bitnet's time includes loading the tokenizer; the command
# is timed as a whole with /usr/bin/time, best of 3, and the load alone (an empty
# input) is subtracted.
set -eu
BITNET=${BITNET:-build/bitnet}
data=$(cd "${1:-../shared/data}" && pwd)
copies=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
json="$data/tokenizer/llama3/tokenizer.json"
i=0
while [ "$i" -lt "$copies" ]; do cat "$data/corpus/tinyshakespeare.txt" >> "$tmp/text"; i=$((i + 1)); done
: > "$tmp/empty"
bytes=$(wc -c < "$tmp/text")
best() {  # best wall seconds of 3 runs of: bitnet tokenize < $1
    b=999999
    for r in 1 2 3; do
        s=$( { /usr/bin/time -f "%e" "$BITNET" tokenize -m "$json" < "$1" > "$tmp/ids"; } 2>&1 | tail -1)
        b=$(echo "$s $b" | awk '{ print ($1 < $2) ? $1 : $2 }')
    done
    echo "$b"
}
load=$(best "$tmp/empty")
total=$(best "$tmp/text")
ids=$(wc -w < "$tmp/ids")
echo "text: $bytes bytes (tinyshakespeare x $copies)"
echo "bitnet: $ids ids, $total s with loading, $load s loading alone," \
     "$(echo "$bytes $total $load" | awk '{ printf "%.2f", $1 / ($2 - $3) / 1e6 }') MB/s"
if command -v node > /dev/null 2>&1; then
    [ -d "$here/node_modules/@anush008/tokenizers" ] ||
        (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error > /dev/null)
    (cd "$here" && node tokenize_hf.mjs "$json" "$tmp/text" 3)
else
    echo "hf: node not found; Hugging Face tokenizers not measured"
fi
