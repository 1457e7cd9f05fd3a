#!/bin/sh
# test_cli_msgs.sh - the messages of the program for files it cannot use, and for bad
# environment values, word for word: every command that takes a model says what is
# wrong with a missing, empty, too short, foreign or truncated file in one line that
# names the file once ("loading PATH" never twice); an empty or 1-3 byte tokenizer file
# is called so, not a broken SentencePiece model; a bad BITNET_THREADS is refused at
# start (exit 2) with one message; loading a large model shows a progress line on a
# terminal only.
set -u
BITNET=${BITNET:?set BITNET to the program}
passed=0
failed=0
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
out="$t/out"
err="$t/err"

# says CODE EXPECTED -- ARGS...: runs the program (no input; with the environment
# assignment $with when set), checks the exit code and that stderr is the one line
# EXPECTED (a shell pattern: * stands for the numbers of a file's layout), with
# "loading" in it once at most
with=""
says() {
    code=$1; want=$2; shift 3
    if [ -n "$with" ]; then
        env "$with" "$BITNET" "$@" >"$out" 2>"$err" </dev/null
    else
        "$BITNET" "$@" >"$out" 2>"$err" </dev/null
    fi
    rc=$?
    got=$(cat "$err")
    lines=$(wc -l <"$err")
    loadings=$(grep -o loading "$err" | wc -l)
    # shellcheck disable=SC2254
    case $got in $want) matched=1 ;; *) matched=0 ;; esac
    if [ "$rc" -eq "$code" ] && [ "$matched" -eq 1 ] && [ "$lines" -le 1 ] &&
       [ "$loadings" -le 1 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: 'bitnet $*' exited $rc (expected $code)" >&2
        echo "  expected: $want" >&2
        sed 's/^/  stderr:   /' "$err" >&2
    fi
}

# The files: none, a directory, empty, 1 to 3 bytes, text named .gguf, a GGUF file cut
# in its metadata and one cut in its tensor data.
"$BITNET" synth "$t/m.gguf" --layers 1 >/dev/null 2>&1 || { echo "FAIL: synth" >&2; exit 1; }
size=$(wc -c <"$t/m.gguf")
head -c 5000 "$t/m.gguf" >"$t/meta.gguf"
head -c $((size - 1000)) "$t/m.gguf" >"$t/data.gguf"
: >"$t/empty.gguf"
printf 'G' >"$t/one.gguf"
printf 'GG' >"$t/two.gguf"
printf 'GGU' >"$t/three.gguf"
echo "hello, this is text" >"$t/text.gguf"
mkdir "$t/dir.gguf"
echo "The quick brown fox." >"$t/prompt.txt"
p="$t/prompt.txt"

# what each file is refused for, after "bitnet CMD: "
missing="opening /nonexistent/m.gguf: No such file or directory"
directory="opening $t/dir.gguf: is a directory"
empty="loading $t/empty.gguf: the file is empty"
one="loading $t/one.gguf: not a GGUF file: 1 bytes is too short for a header"
two="loading $t/two.gguf: not a GGUF file: 2 bytes is too short for a header"
three="loading $t/three.gguf: not a GGUF file: 3 bytes is too short for a header"
text="loading $t/text.gguf: not a GGUF file (magic 68 65 6c 6c, expected \"GGUF\")"
meta="loading $t/meta.gguf: metadata * needs * bytes but the file ends * bytes later (5000 bytes in all)"
data="loading $t/data.gguf: tensor '*': data (* bytes at offset *) runs past the end of the file"

for f in missing directory empty one two three text meta data; do
    case $f in
        missing) path=/nonexistent/m.gguf ;;
        directory) path="$t/dir.gguf" ;;
        *) path="$t/$f.gguf" ;;
    esac
    eval "msg=\$$f"
    says 1 "bitnet generate: $msg" -- generate -m "$path" -p hi
    says 1 "bitnet generate: $msg" -- generate --mmap -m "$path" -p hi
    says 1 "bitnet generate: $msg" -- generate --no-mmap -m "$path" -p hi
    says 1 "bitnet chat: $msg" -- chat -m "$path"
    says 1 "bitnet perplexity: $msg" -- perplexity -m "$path" -f "$p"
    says 1 "bitnet logits: $msg" -- logits -m "$path" -p hi -o "$t/logits.bin"
    says 1 "bitnet batch: $msg" -- batch -m "$path" -f "$p"
    says 1 "bitnet bench: $msg" -- bench -m "$path"
    says 1 "bitnet tokenize: $msg" -- tokenize -m "$path" -p hi
    says 1 "bitnet detokenize: $msg" -- detokenize -m "$path" --ids 1
    says 1 "bitnet info: $msg" -- info "$path"
    says 1 "bitnet quantize: $msg" -- quantize "$path" "$t/q.gguf" --type tq2_0
done

# a tokenizer file of another name: empty or too short is said so; a broken one names
# the file once
: >"$t/empty.model"
printf 'ab' >"$t/two.model"
printf '{' >"$t/tokenizer.json"
says 1 "bitnet tokenize: loading a tokenizer from $t/empty.model: the file is empty" -- \
    tokenize -m "$t/empty.model" -p hi
says 1 "bitnet detokenize: loading a tokenizer from $t/empty.model: the file is empty" -- \
    detokenize -m "$t/empty.model" --ids 1
says 1 "bitnet tokenize: loading a tokenizer from $t/two.model: too short for a tokenizer (a GGUF model, a tokenizer.json or a tokenizer.model)" -- \
    tokenize -m "$t/two.model" -p hi
says 1 "bitnet tokenize: loading the Hugging Face tokenizer $t/tokenizer.json: line 1: string or '}' expected near end of file" -- \
    tokenize -m "$t/tokenizer.json" -p hi
echo '{"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}' >"$t/tokenizer.json"
says 1 "bitnet tokenize: loading the Hugging Face tokenizer $t/tokenizer.json: a BPE tokenizer without a pre_tokenizer is not supported" -- \
    tokenize -m "$t/tokenizer.json" -p hi
# (a tokenizer_config.json next to it is named in its errors)
echo '{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}}' >"$t/tokenizer.json"
echo '{' >"$t/tokenizer_config.json"
says 1 "bitnet tokenize: loading the Hugging Face tokenizer $t/tokenizer.json: $t/tokenizer_config.json: line 2: string or '}' expected near end of file" -- \
    tokenize -m "$t/tokenizer.json" -p hi

# BITNET_THREADS: a bad value is refused before anything runs, in one message
for v in 0 -1 abc 99999 3x 513 " 4"; do
    with="BITNET_THREADS=$v"
    says 2 "bitnet: BITNET_THREADS='$v' is not an integer in 1..512" -- \
        generate -m "$t/m.gguf" -p hi -n 1
    says 2 "bitnet: BITNET_THREADS='$v' is not an integer in 1..512" -- info --system
    says 0 "" -- --version
    says 0 "" -- help info
done
# a good or empty value runs, without a word about it
for v in 2 ""; do
    if env "BITNET_THREADS=$v" "$BITNET" generate -m "$t/m.gguf" -p hi -n 1 --temp 0 \
           >"$out" 2>"$err" </dev/null && ! grep -q BITNET_THREADS "$err"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: BITNET_THREADS='$v' generate:" >&2
        sed 's/^/  stderr: /' "$err" >&2
    fi
done

# The progress line of a model of more than 256 MiB read into memory: on a terminal
# (made with script(1)) it counts up from 0% and is cleared at the end; with stderr
# not a terminal, and for a mapped file, there is none.
check() {   # check CONDITION-STATUS DESCRIPTION FILE
    if [ "$1" -eq 0 ]; then passed=$((passed + 1)); else
        failed=$((failed + 1)); echo "FAIL: $2:" >&2; od -c "$3" | head -20 >&2; fi
}
"$BITNET" synth "$t/big.gguf" --layers 1 --vocab 32768 --embd 2560 --ff 256 --heads 20 \
    --heads-kv 5 --embd-type f32 >/dev/null 2>&1 || { echo "FAIL: synth big" >&2; exit 1; }
run="'$BITNET' generate -m '$t/big.gguf' -p hi -n 1 --temp 0 >/dev/null"
sh -c "$run --no-mmap" 2>"$err"
grep -q "loading\|%" "$err"
check $((1 - $?)) "no progress line when stderr is not a terminal" "$err"
if script -qec "true" /dev/null >/dev/null 2>&1; then
    script -qec "$run --no-mmap" /dev/null >"$out" 2>&1 </dev/null
    tr '\r' '\n' <"$out" | sed -n 's/^loading big\.gguf: *\([0-9]*\)% ([0-9]* of [0-9]* MB)$/\1/p' \
        >"$t/percents"
    [ "$(head -1 "$t/percents")" = 0 ] && [ "$(wc -l <"$t/percents")" -ge 3 ] &&
        sort -n -c "$t/percents" && ! grep -q '^100$' "$t/percents"
    check $? "the progress line counts up from 0% on a terminal" "$out"
    # cleared: after the last percentage, spaces over the whole line and a return
    tr '\r' '\n' <"$out" | sed -n '/^loading big/{n;p;}' | tail -1 | grep -q '^ *$'
    check $? "the progress line is cleared" "$out"
    script -qec "$run --mmap" /dev/null >"$out" 2>&1 </dev/null
    grep -q "loading\|%" "$out"
    check $((1 - $?)) "no progress line for a mapped file" "$out"
else
    echo "test_cli_msgs: note: no script(1) for a terminal; progress line on one not checked"
fi
rm -f "$t/big.gguf"

echo "test_cli_msgs: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
