#!/bin/sh
# bench/tokenizer_train.sh - `bitnet train-tokenizer` beside SentencePiece's BPE trainer
# (Debian's spm_train; scripts/install-deps.sh --bench installs it) on the same text,
# vocabulary size and thread count: training time, peak resident memory, and the
# compression (bytes of held-out text per token) of each result.
#
#   BITNET=build/bitnet bench/tokenizer_train.sh [VOCAB] [THREADS] [CORPUS_DIR]
# Defaults: 8192 tokens, 1 thread, corpus/ (scripts/corpus/build.sh makes it); THREADS
# goes to both programs (ours counts words on that many threads and merges on one). The
# text:
# web.txt and the first 90% of austen.txt (cut at a blank line) to train on, the rest of
# austen.txt (the end of Persuasion and Emma... whatever follows the cut) held out.
# spm_train runs as a BPE model with byte fallback, every character kept
# (--character_coverage=1), no sampling of the input, and longer lines allowed
# (--max_sentence_length 1000000) so that both see all the text. SentencePiece encodes
# each line alone and drops the line feeds (and runs of spaces) that our tokenizer
# encodes, so on the held-out text as it is (Austen's lines are wrapped at about 70
# characters) its count leaves out a token a line. The second compression column is
# therefore measured on the held-out text unwrapped: each paragraph one line, white
# space runs made one space, where both encode the same characters but the line feeds
# between paragraphs.
set -eu
BITNET=${BITNET:-build/bitnet}
vocab=${1:-8192}
threads=${2:-1}
corpus=${3:-corpus}
for f in "$corpus/austen.txt" "$corpus/web.txt"; do
    [ -f "$f" ] || { echo "tokenizer_train.sh: $f not found (scripts/corpus/build.sh)" >&2; exit 1; }
done
command -v spm_train >/dev/null 2>&1 ||
    { echo "tokenizer_train.sh: spm_train not found (scripts/install-deps.sh --bench)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$corpus" "$tmp" <<'PY'
import re, sys
corpus, tmp = sys.argv[1:]
a = open(corpus + '/austen.txt', 'rb').read()
cut = a.rindex(b'\n\n', 0, len(a) * 9 // 10) + 2
open(tmp + '/train.txt', 'wb').write(open(corpus + '/web.txt', 'rb').read() + b'\n' + a[:cut])
held = a[cut:]
open(tmp + '/heldout.txt', 'wb').write(held)
paras = [b' '.join(p.split()) for p in re.split(rb'\n\s*\n', held)]
open(tmp + '/unwrapped.txt', 'wb').write(b'\n'.join(p for p in paras if p) + b'\n')
PY
train_bytes=$(wc -c < "$tmp/train.txt")
held_bytes=$(wc -c < "$tmp/heldout.txt")
mkdir -p "$tmp/ours"
/usr/bin/time -f '%e %M' -o "$tmp/t_ours" "$BITNET" -t "$threads" train-tokenizer -q \
    --vocab "$vocab" -o "$tmp/ours/tokenizer.json" "$tmp/train.txt" > /dev/null 2> "$tmp/log_ours"
/usr/bin/time -f '%e %M' -o "$tmp/t_spm" spm_train --input="$tmp/train.txt" \
    --model_prefix="$tmp/spm" --vocab_size="$vocab" --model_type=bpe --byte_fallback=true \
    --character_coverage=1.0 --num_threads="$threads" --max_sentence_length=1000000 \
    --input_sentence_size=0 > "$tmp/log_spm" 2>&1
unwrapped_bytes=$(wc -c < "$tmp/unwrapped.txt")
ours() { "$BITNET" tokenize -m "$tmp/ours/tokenizer.json" --no-special < "$1" | wc -w; }
spm() { spm_encode --model="$tmp/spm.model" --output_format=id < "$1" | wc -w; }
ours_tokens=$(ours "$tmp/heldout.txt")
spm_tokens=$(spm "$tmp/heldout.txt")
ours_unwrapped=$(ours "$tmp/unwrapped.txt")
spm_unwrapped=$(spm "$tmp/unwrapped.txt")
echo "text: $train_bytes bytes to train on; held out: $held_bytes bytes as they are," \
     "$unwrapped_bytes unwrapped; vocabulary $vocab; $threads thread(s)"
echo "| trainer | time s | peak RSS MB | bytes/token held out | bytes/token unwrapped |"
echo "|---|---:|---:|---:|---:|"
row() {
    read -r secs kb < "$2"
    awk -v n="$1" -v s="$secs" -v k="$kb" -v t="$3" -v b="$held_bytes" -v u="$4" \
        -v ub="$unwrapped_bytes" \
        'BEGIN { printf "| %s | %.2f | %.1f | %.3f | %.3f |\n", n, s, k / 1024, b / t, ub / u }'
}
row "bitnet train-tokenizer" "$tmp/t_ours" "$ours_tokens" "$ours_unwrapped"
row "spm_train (BPE)" "$tmp/t_spm" "$spm_tokens" "$spm_unwrapped"
awk -v a="$(cut -d' ' -f1 "$tmp/t_ours")" -v b="$(cut -d' ' -f1 "$tmp/t_spm")" \
    -v x="$ours_tokens" -v y="$spm_tokens" -v xu="$ours_unwrapped" -v yu="$spm_unwrapped" \
    'BEGIN { printf "time: spm_train / bitnet = %.1fx; tokens bitnet / spm: %.3f as is, %.3f unwrapped\n", b / a, x / y, xu / yu }'
