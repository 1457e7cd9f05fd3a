#!/bin/sh
# test_cli_tokenize.sh - `bitnet tokenize` and `bitnet detokenize` as a user runs them,
# with the reference LLaMA 3 and LLaMA 2 tokenizers of ../shared/data (skipped, saying
# so, when that folder is absent). Expected ids come from Hugging Face tokenizers and
# spm_encode (the cases in ../shared/data/tokenizer/llama3-cases.json and
# tests/fixtures/tokenizer/llama2-cases.json).
set -u
BITNET=${BITNET:?set BITNET to the program}
DATA=${DATA:?set DATA to the shared data folder}
L3="$DATA/tokenizer/llama3/tokenizer.json"
L2="$DATA/tokenizer/llama2/tokenizer.model"
if [ ! -f "$L3" ] || [ ! -f "$L2" ]; then
    echo "test_cli_tokenize: SKIPPED: reference tokenizers not found in $DATA"
    exit 77
fi
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# ids for -p and for standard input (read exactly: the newline is part of the text)
[ "$("$BITNET" tokenize -m "$L3" -p 'Hello, world!')" = "9906 11 1917 0" ] && ok || bad "-p ids"
[ "$(printf 'Hello, world!' | "$BITNET" tokenize -m "$L3")" = "9906 11 1917 0" ] && ok || bad "stdin ids"
[ "$(printf 'Hi\n' | "$BITNET" tokenize -m "$L3" --json)" = "[13347,198]" ] && ok || bad "stdin keeps the newline, --json"
[ "$("$BITNET" tokenize -m "$L3" -p 'a<|eot_id|>' --json)" = "[64,128009]" ] && ok || bad "special parsed"
out=$("$BITNET" tokenize -m "$L3" -p 'a<|eot_id|>' --no-special --json)
case $out in *128009*) bad "--no-special still parsed the special token: $out" ;; *) ok ;; esac
[ "$("$BITNET" tokenize -m "$L3" -p 'x' --bos --json)" = "[128000,87]" ] && ok || bad "--bos"
"$BITNET" tokenize -m "$L3" -p 'naïve' --pieces > "$tmp/p"
grep -q "^38672	'ï'$" "$tmp/p" && ok || bad "--pieces shows ids and texts"
# every reference case through the program, both directions, byte for byte
python3 - "$BITNET" "$L3" "$DATA/tokenizer/llama3-cases.json" "$L2" \
    "$(dirname "$0")/fixtures/tokenizer/llama2-cases.json" <<'PY' && ok || bad "reference cases through the CLI"
import json, subprocess, sys
bitnet, l3, l3cases, l2, l2cases = sys.argv[1:]
def run(args, data):
    return subprocess.run([bitnet] + args, input=data, capture_output=True, check=True).stdout
for model, path, limit in ((l3, l3cases, 8), (l2, l2cases, 30)):
    for case in json.load(open(path))[:limit]:
        text = case["text"].encode()
        ids = json.loads(run(["tokenize", "-m", model, "--json", "--no-special"]
                             if model == l2 else ["tokenize", "-m", model, "--json"], text))
        assert ids == case["ids"], (case["text"], ids, case["ids"])
        back = run(["detokenize", "-m", model], json.dumps(ids).encode())
        assert back == text, (text, back)
PY
# errors
"$BITNET" tokenize -p x 2> "$tmp/e"; [ $? -eq 2 ] && grep -q -- "-m FILE" "$tmp/e" && ok || bad "no model"
"$BITNET" tokenize -m "$tmp/none.json" -p x 2> "$tmp/e"; [ $? -eq 1 ] && grep -q "none.json" "$tmp/e" && ok || bad "missing file named"
printf '{"model": {"type": "Unigram"}}' > "$tmp/u.json"
"$BITNET" tokenize -m "$tmp/u.json" -p x 2> "$tmp/e"; [ $? -eq 1 ] && grep -qi "unigram" "$tmp/e" && ok || bad "unsupported model type named"
"$BITNET" detokenize -m "$L3" --ids 1,x 2> "$tmp/e"; [ $? -eq 2 ] && ok || bad "bad id list"
"$BITNET" detokenize -m "$L3" --ids 128256 2> "$tmp/e"; [ $? -eq 1 ] && grep -q "128256" "$tmp/e" && ok || bad "id out of range"
echo "test_cli_tokenize: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
