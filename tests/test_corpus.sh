#!/bin/sh
# test_corpus.sh - `bitnet corpus` as a user runs it, with a tokenizer trained on the
# fixture corpus:
#  - the same files and seed give byte-identical shards; another seed another split;
#  - a reader written here from docs/FORMATS.md (Python) finds the headers as specified,
#    the tokenizer's checksum in every file, the split the documented draw (SplitMix64
#    of the seed and the document number) gives, and each document, decoded through the
#    tokenizer.json's own vocabulary, equal to its paragraph of the input, BOS first and
#    EOS last;
#  - a tokenizer change changes the checksum; bad usage and unreadable input fail with
#    clear messages.
# The reader API itself (bn_shards: truncated and foreign files) is test_shards.c's.
set -u
BITNET=${BITNET:?set BITNET to the program}
SRC=${SRC:?set SRC to the source folder}
if ! command -v python3 >/dev/null 2>&1; then
    echo "test_corpus: SKIPPED: python3 not found"
    exit 77
fi
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
CORPUS="$SRC/tests/fixtures/tokenizer/bpe-train-corpus.txt"
mkdir -p "$tmp/tok" "$tmp/tok2"
"$BITNET" train-tokenizer -q --vocab 700 -o "$tmp/tok/tokenizer.json" "$CORPUS" >/dev/null 2>&1 ||
    bad "training the tokenizer"
"$BITNET" train-tokenizer -q --vocab 600 -o "$tmp/tok2/tokenizer.json" "$CORPUS" >/dev/null 2>&1 ||
    bad "training the second tokenizer"
# a second input file: paragraphs with blank lines of spaces, CRLF, no final newline
printf 'First para\r\nline two\r\n  \t \r\nSecond\n\n\n\nThird, last, no newline' > "$tmp/two.txt"

run() { "$BITNET" corpus -q --tokenizer "$tmp/tok/tokenizer.json" "$@"; }
run -o "$tmp/a" --val-frac 0.2 --seed 7 --shard-tokens 1000 "$CORPUS" "$tmp/two.txt" \
    >"$tmp/out" 2>"$tmp/err" && ok || bad "corpus: $(cat "$tmp/err")"
run -o "$tmp/b" --val-frac 0.2 --seed 7 --shard-tokens 1000 "$CORPUS" "$tmp/two.txt" \
    >/dev/null 2>&1
run -o "$tmp/c" --val-frac 0.2 --seed 8 --shard-tokens 1000 "$CORPUS" "$tmp/two.txt" \
    >/dev/null 2>&1
diff -r "$tmp/a" "$tmp/b" >/dev/null && ok || bad "the same seed gave different shards"
cmp -s "$tmp/a/val-00000.bin" "$tmp/c/val-00000.bin" && bad "another seed gave the same split" || ok
ls "$tmp/a/train-00001.bin" >/dev/null 2>&1 && ok || bad "--shard-tokens 1000 made one file"
"$BITNET" corpus -q --tokenizer "$tmp/tok2/tokenizer.json" -o "$tmp/d" "$CORPUS" >/dev/null 2>&1

python3 - "$tmp" "$CORPUS" "$tmp/two.txt" <<'PY' && ok || bad "the shards are not what the format and the split rule say"
import glob, json, os, re, struct, sys
tmp, *inputs = sys.argv[1:]
tok = json.load(open(tmp + '/tok/tokenizer.json', encoding='utf-8'))
# the byte-level alphabet, from its definition
printable = list(range(33, 127)) + list(range(0xa1, 0xad)) + list(range(0xae, 0x100))
cp, nxt = {}, 256
for b in range(256):
    if b in printable:
        cp[b] = b
    else:
        cp[b] = nxt
        nxt += 1
byte_of = {chr(v): k for k, v in cp.items()}
text_of = {i: bytes(byte_of[c] for c in t) for t, i in tok['model']['vocab'].items()}
n_vocab = len(tok['model']['vocab']) + len(tok['added_tokens'])
bos, eos = n_vocab - 5, n_vocab - 4
# the documents: paragraphs of every file, in order
docs = []
for path in inputs:
    cur = b''
    for line in open(path, 'rb').read().splitlines(keepends=True):
        if line.strip(b' \t\r\n') == b'' and b'\0' not in line:
            if cur:
                docs.append(cur)
            cur = b''
        else:
            cur += line
    if cur:
        docs.append(cur)
M = (1 << 64) - 1
def is_val(seed, d, frac):
    z = (seed + (d + 1) * 0x9e3779b97f4a7c15) & M
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
    z ^= z >> 31
    return (z >> 11) * 2.0 ** -53 < frac
def read_split(folder, split, vocab=n_vocab):
    toks, ndocs, sums = [], 0, set()
    for f in sorted(glob.glob('%s/%s-*.bin' % (folder, split))):
        raw = open(f, 'rb').read()
        magic, ver, width, nv, zero, csum, n, nd = struct.unpack('<8sIIIIQQQ', raw[:48])
        assert magic == b'BNTOKSHD' and ver == 1 and width == 2 and nv == vocab, f
        assert zero == 0 and raw[48:64] == bytes(16), f
        assert len(raw) == 64 + 2 * n, f
        toks += struct.unpack('<%dH' % n, raw[64:])
        ndocs += nd
        sums.add(csum)
    return toks, ndocs, sums
summary = open(tmp + '/out').read()
printed = int(re.search(r'tokenizer checksum ([0-9a-f]{16})', summary).group(1), 16)
for split in ('train', 'val'):
    toks, ndocs, sums = read_split(tmp + '/a', split)
    assert sums == {printed}, (split, sums, printed)
    want = [d for i, d in enumerate(docs) if is_val(7, i, 0.2) == (split == 'val')]
    assert ndocs == len(want), (split, ndocs, len(want))
    got, cur = [], None
    for t in toks:
        if t == bos:
            cur = b''
        elif t == eos:
            got.append(cur)
            cur = None
        else:
            cur += text_of[t]
    assert got == want, '%s: the documents differ' % split
    print('test_corpus: %s: %d documents, %d tokens as specified' % (split, len(got), len(toks)))
_, _, other = read_split(tmp + '/d', 'train', 600)
assert other and other != {printed}, 'another tokenizer, the same checksum'
PY

# usage and input errors
"$BITNET" corpus -o "$tmp/e" "$CORPUS" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "name the tokenizer with --tokenizer" "$tmp/err" && ok || bad "no --tokenizer"
run -o "$tmp/e" --val-frac 1.5 "$CORPUS" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "from 0 to 1" "$tmp/err" && ok || bad "--val-frac 1.5"
run -o "$tmp/e" "$tmp/missing.txt" >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "missing.txt: No such file" "$tmp/err" && ok || bad "missing input: $(cat "$tmp/err")"
printf '\n  \n\n' > "$tmp/blank.txt"
run -o "$tmp/e" "$tmp/blank.txt" >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "holds no text" "$tmp/err" && ok || bad "blank input: $(cat "$tmp/err")"
[ ! -e "$tmp/e/train-00000.bin" ] && ok || bad "a failed run left a shard"

echo "test_corpus: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
