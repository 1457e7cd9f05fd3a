#!/bin/sh
# test_tokenizer_train_hf.sh - tokenizers that `bitnet train-tokenizer` writes give the
# same ids in this program as in Hugging Face tokenizers (npm @anush008/tokenizers,
# tokenizers 0.22.2, installed into scripts/fixtures/tokenizer/node_modules when
# missing), on hard cases (emoji, CJK, long runs of spaces and digits, special-token
# strings) and on whole corpora: the fixture corpus, tinyshakespeare
# (../shared/data/corpus/) and Jane Austen's novels (corpus/austen.txt, made by
# scripts/corpus/build.sh), each skipped, saying so, when absent. HF's decode must give
# every text back. (Invalid UTF-8 cannot be handed to the binding: test_tokenizer_train.sh
# checks its round trip here.)
# Exit 77 when node or the package cannot be had.
set -u
BITNET=${BITNET:?set BITNET to the program}
SRC=${SRC:?set SRC to the source folder}
DATA=${DATA:-$SRC/../shared/data}
case $BITNET in /*) ;; *) BITNET=$(pwd)/$BITNET ;; esac
if ! command -v node >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
    echo "test_tokenizer_train_hf: SKIPPED: node or python3 not found"
    exit 77
fi
fx="$SRC/scripts/fixtures/tokenizer"
if [ ! -d "$fx/node_modules/@anush008/tokenizers" ]; then
    echo "test_tokenizer_train_hf: installing @anush008/tokenizers into $fx/node_modules"
    if ! command -v npm >/dev/null 2>&1 ||
       ! (cd "$fx" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error); then
        echo "test_tokenizer_train_hf: SKIPPED: npm could not install @anush008/tokenizers"
        exit 77
    fi
fi
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# check NAME VOCAB FILE: trains on FILE, then compares ids on the cases and on FILE
check() {
    name=$1 vocab=$2 file=$3
    mkdir -p "$tmp/$name"
    if ! "$BITNET" train-tokenizer -q --vocab "$vocab" -o "$tmp/$name/tokenizer.json" "$file" \
        >/dev/null 2>"$tmp/err"; then
        bad "$name: training failed: $(cat "$tmp/err")"
        return
    fi
    python3 - "$BITNET" "$tmp/$name/tokenizer.json" "$file" "$fx/encode_with_hf.mjs" \
        "$tmp/$name" "$name" <<'PY' && ok || bad "$name: ids differ from Hugging Face tokenizers"
import json, subprocess, sys
bitnet, tok, corpus, hf, work, name = sys.argv[1:]
cases = [
    '', ' ', '\n', 'Hello, world!', "It's a truth universally acknowledged.",
    "I'M SURE IT'S WHAT THEY'VE SAID WE'D DO", '\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\u4e2d\u6587\u6587\u672c',
    '\ud55c\uad6d\uc5b4 \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u0420\u0443\u0441\u0441\u043a\u0438\u0439',
    '\U0001f600\U0001f603 \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 \U0001f1eb\U0001f1f7 \u2764\ufe0f',
    ' ' * 1000, 'a' + ' ' * 37 + 'b', '\t\t  \n\n\n   x', '\r\n\r\n',
    '1234567890' * 30, '3.14159 2,718 +1-800-555-0199 12:30:45',
    '<|begin_of_text|>Hi<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nyo',
    '<|eot_id |> <|bogus|>', '\u00a0\u3000\u2028\u2029\u0085', 'caf\u00e9 \u0301e\u0301',
    '\u017fome Kelvin \u212a \u00bd \u00b2 \u2167', 'x' * 5000,
    'def f(x):\n    return x**2  # c\n', '!!!??? ... --- *** ###',
]
with open(work + '/texts.json', 'w', encoding='utf-8') as f:
    json.dump({'texts': cases, 'files': [corpus]}, f)
ref = json.loads(subprocess.run(['node', hf, tok, work + '/texts.json'],
                                capture_output=True, check=True).stdout)
def ours(data):
    out = subprocess.run([bitnet, 'tokenize', '-m', tok, '--json'], input=data,
                         capture_output=True, check=True).stdout
    return json.loads(out)
bad = 0
for text, r in zip(cases, ref['texts']):
    mine = ours(text.encode('utf-8'))
    if mine != r['ids']:
        bad += 1
        print('%s: %r: ours %s, HF %s' % (name, text[:60], mine[:20], r['ids'][:20]))
    if r['decoded'] != text:
        bad += 1
        print('%s: HF decodes %r as %r' % (name, text[:60], r['decoded'][:60]))
raw = open(corpus, 'rb').read()
mine = ours(raw)
r = ref['files'][0]
if mine != r['ids']:
    bad += 1
    k = next((i for i, (a, b) in enumerate(zip(mine, r['ids'])) if a != b),
             min(len(mine), len(r['ids'])))
    print('%s: the corpus: ours and HF part at token %d of %d/%d' % (name, k, len(mine),
                                                                    len(r['ids'])))
if r['decoded'].encode('utf-8') != raw:
    bad += 1
    print('%s: HF does not decode the corpus back' % name)
print('test_tokenizer_train_hf: %s: %d cases and %d corpus tokens (%.2f bytes a token), '
      '%d differences' % (name, len(cases), len(mine), len(raw) / max(len(mine), 1), bad))
sys.exit(1 if bad else 0)
PY
}

check fixture 700 "$SRC/tests/fixtures/tokenizer/bpe-train-corpus.txt"
if [ -f "$DATA/corpus/tinyshakespeare.txt" ]; then
    check tinyshakespeare 4096 "$DATA/corpus/tinyshakespeare.txt"
else
    echo "test_tokenizer_train_hf: tinyshakespeare SKIPPED: $DATA/corpus/tinyshakespeare.txt absent"
fi
austen=${BITNET_CORPUS_DIR:-$SRC/corpus}/austen.txt
if [ -f "$austen" ]; then
    check austen 8192 "$austen"
else
    echo "test_tokenizer_train_hf: austen SKIPPED: $austen absent (scripts/corpus/build.sh makes it)"
fi

echo "test_tokenizer_train_hf: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
