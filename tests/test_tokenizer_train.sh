#!/bin/sh
# test_tokenizer_train.sh - `bitnet train-tokenizer` as a user runs it:
#  - its errors (no --vocab, a vocabulary too small, an empty or missing file, an output
#    folder that does not exist) and that nothing is left behind;
#  - the merges it learns on tests/fixtures/tokenizer/bpe-train-corpus.txt are exactly
#    those of the independent Python trainer scripts/fixtures/make_bpe_train_ref.py
#    (its output committed as tests/fixtures/tokenizer/bpe-train-ref.json);
#  - the same text gives a byte-identical tokenizer.json, on 1 thread or 3;
#  - the result loads in this program with its BOS and EOS, and any bytes (emoji, CJK,
#    invalid UTF-8, runs of spaces and digits) come back exactly from detokenize.
# Hugging Face's ids on the same tokenizer are test_tokenizer_train_hf.sh's work.
set -u
BITNET=${BITNET:?set BITNET to the program}
SRC=${SRC:?set SRC to the source folder}
if ! command -v python3 >/dev/null 2>&1; then
    echo "test_tokenizer_train: SKIPPED: python3 not found"
    exit 77
fi
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
CORPUS="$SRC/tests/fixtures/tokenizer/bpe-train-corpus.txt"
REF="$SRC/tests/fixtures/tokenizer/bpe-train-ref.json"

# expect CODE PATTERN ARGS...: the program exits with CODE and says PATTERN on stderr
expect() {
    code=$1 pattern=$2
    shift 2
    "$BITNET" train-tokenizer "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne "$code" ] || ! grep -q -- "$pattern" "$tmp/err"; then
        bad "train-tokenizer $*: exit $rc (wanted $code), stderr: $(cat "$tmp/err")"
    else
        ok
    fi
}
: > "$tmp/empty.txt"
expect 2 "give the vocabulary size with --vocab N" -o "$tmp/t.json" "$CORPUS"
expect 2 "too small: byte-level BPE needs at least 261" --vocab 260 -o "$tmp/t.json" "$CORPUS"
expect 2 "wants a positive integer" --vocab lots -o "$tmp/t.json" "$CORPUS"
expect 2 "name the output with -o" --vocab 300 "$CORPUS"
expect 2 "name the text files" --vocab 300 -o "$tmp/t.json"
expect 1 "the input is empty" --vocab 300 -o "$tmp/t.json" "$tmp/empty.txt"
expect 1 "opening $tmp/missing.txt: No such file or directory" --vocab 300 -o "$tmp/t.json" \
    "$tmp/missing.txt"
expect 1 "$tmp/no/such/dir/t.json" --vocab 300 -o "$tmp/no/such/dir/t.json" "$CORPUS"
[ ! -e "$tmp/t.json" ] && [ ! -e "$tmp/tokenizer_config.json" ] && ok ||
    bad "a failed run left a file behind"

# the reference merges
mkdir -p "$tmp/a" "$tmp/b"
vocab=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vocab_size"])' "$REF")
"$BITNET" train-tokenizer -q --vocab "$vocab" -o "$tmp/a/tokenizer.json" "$CORPUS" \
    >/dev/null 2>"$tmp/err" && ok || bad "training on the fixture: $(cat "$tmp/err")"
grep -q "peak memory" "$tmp/err" && ok || bad "no peak memory in the report: $(cat "$tmp/err")"
python3 - "$tmp/a/tokenizer.json" "$REF" "$CORPUS" <<'PY' && ok || bad "merges differ from the reference trainer"
import hashlib, json, sys
ours = json.load(open(sys.argv[1], encoding='utf-8'))
ref = json.load(open(sys.argv[2], encoding='utf-8'))
assert hashlib.sha256(open(sys.argv[3], 'rb').read()).hexdigest() == ref['corpus_sha256'], \
    'the corpus is not the one the reference was made from'
m = ours['model']['merges']
for i, (a, b) in enumerate(zip(m, ref['merges'])):
    if a != b:
        sys.exit('merge %d: ours %r, reference %r' % (i, a, b))
assert len(m) == len(ref['merges']), (len(m), len(ref['merges']))
n = len(ours['model']['vocab']) + len(ours['added_tokens'])
assert n == ref['n_tokens'] == ref['vocab_size'], (n, ref['n_tokens'])
print('test_tokenizer_train: %d merges equal to the reference' % len(m))
PY

# determinism
"$BITNET" train-tokenizer -q --vocab "$vocab" -o "$tmp/b/tokenizer.json" "$CORPUS" >/dev/null 2>&1
cmp -s "$tmp/a/tokenizer.json" "$tmp/b/tokenizer.json" && ok || bad "two runs differ"
cmp -s "$tmp/a/tokenizer_config.json" "$tmp/b/tokenizer_config.json" && ok ||
    bad "two runs differ (config)"
# standard input gives the same tokenizer as the file
"$BITNET" train-tokenizer -q --vocab "$vocab" --no-config -o "$tmp/stdin.json" - \
    <"$CORPUS" >/dev/null 2>&1
cmp -s "$tmp/a/tokenizer.json" "$tmp/stdin.json" && ok || bad "standard input differs"

# counting on several threads (texts of 512 KiB and more are cut into one segment a
# thread) gives the same tokenizer as one thread
i=0
while [ $i -lt 40 ]; do cat "$CORPUS"; i=$((i + 1)); done > "$tmp/long.txt"
"$BITNET" -t 1 train-tokenizer -q --vocab 1000 --no-config -o "$tmp/t1.json" "$tmp/long.txt" \
    >/dev/null 2>&1
"$BITNET" -t 3 train-tokenizer -q --vocab 1000 --no-config -o "$tmp/t3.json" "$tmp/long.txt" \
    >/dev/null 2>&1
[ -s "$tmp/t1.json" ] && cmp -s "$tmp/t1.json" "$tmp/t3.json" && ok ||
    bad "1 and 3 threads give different tokenizers"

# loads here: BOS and EOS from the post-processor and tokenizer_config.json
bos=$((vocab - 5))
[ "$("$BITNET" tokenize -m "$tmp/a/tokenizer.json" -p 'x' --bos --json)" = "[$bos,87]" ] &&
    ok || bad "--bos is not <|begin_of_text|> ($bos) then 'x' (87)"
[ "$("$BITNET" tokenize -m "$tmp/a/tokenizer.json" -p '<|eot_id|>' --json)" = "[$((vocab - 1))]" ] &&
    ok || bad "<|eot_id|> is not the last id"

# any bytes round-trip
python3 - "$BITNET" "$tmp/a/tokenizer.json" <<'PY' && ok || bad "round trip"
import subprocess, sys
bitnet, tok = sys.argv[1:]
cases = [
    b'', b' ', b'\n\n\n', b'Hello, world!', 'caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \u4e2d\u6587 \ud55c\uad6d\uc5b4'.encode(),
    '\U0001f600\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7'.encode(),
    b'\xff\xfe\x80 invalid \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 end\xe2\x82',
    b' ' * 300 + b'x' + b'\t' * 50, b'1234567890' * 40, b'\x00\x01\x02\x7f',
    b"I'M don't 's 'S", b'a\r\nb\rc\n\n  \n', '\u00a0\u3000\u2028'.encode(),
]
for c in cases:
    ids = subprocess.run([bitnet, 'tokenize', '-m', tok, '--no-special'], input=c,
                         capture_output=True, check=True).stdout
    back = subprocess.run([bitnet, 'detokenize', '-m', tok], input=ids,
                          capture_output=True, check=True).stdout
    if back != c:
        sys.exit('round trip of %r gave %r' % (c, back))
print('test_tokenizer_train: %d texts round-trip' % len(cases))
PY

echo "test_tokenizer_train: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
