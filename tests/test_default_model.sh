#!/bin/sh
# test_default_model.sh - the model that ships with the project (models/tiny-en.gguf):
# - its bytes match models/tiny-en.gguf.sha256, and the reference fixture
#   (tests/fixtures/tiny_en, scripts/fixtures/make_tiny_en_ref.py) was made from them;
# - `bitnet generate` without -m runs it and says so on stderr, and its greedy
#   continuation of the fixture's prompt is the PyTorch reference's
#   (scripts/reference/bitnet_ref.py), byte for byte, at 1 and 2 threads;
# - `bitnet chat` without -m runs it too;
# - BITNET_MODEL overrides the default and -m overrides BITNET_MODEL; a BITNET_MODEL that
#   does not exist is an error that names it; the program copied out of its build tree
#   does not find the source tree's model (it looks beside itself, PREFIX/share/bitnet),
#   and says so.
set -u
BITNET=${BITNET:?set BITNET to the program}
SRC=${SRC:?set SRC to the source tree}
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
check() { if [ "$1" -eq 0 ]; then ok; else fail "$2"; [ -n "${3:-}" ] && head -c 2000 "$3" >&2; fi; }
unset BITNET_MODEL

model=$SRC/models/tiny-en.gguf
fx=$SRC/tests/fixtures/tiny_en
(cd "$SRC/models" && sha256sum -c --quiet tiny-en.gguf.sha256) >"$tmp/sum" 2>&1
check $? "models/tiny-en.gguf matches models/tiny-en.gguf.sha256" "$tmp/sum"
[ "$(sha256sum <"$model" | cut -d' ' -f1)" = "$(cat "$fx/model.sha256")" ]
check $? "the fixture tests/fixtures/tiny_en was made from the shipped model"

# greedy, no -m: the reference's continuation, at 1 and 2 threads
prompt=$(cat "$fx/prompt.txt")
# generate ends its output with a line end
{ cat "$fx/greedy.txt"; printf '\n'; } >"$tmp/want"
n=$(sed -n 's/^greedy //p' "$fx/greedy.ids" | tr ',' '\n' | grep -c .)
for t in 1 2; do
    "$BITNET" -t $t generate -p "$prompt" -n "$n" --temp 0 --no-echo >"$tmp/gen" 2>"$tmp/err"
    check $? "generate without -m (-t $t)" "$tmp/err"
    cmp -s "$tmp/gen" "$tmp/want"
    check $? "generate -t $t --temp 0: the PyTorch reference's greedy text" "$tmp/gen"
done
grep -q "the default model, .*models/tiny-en.gguf" "$tmp/err"
check $? "generate says on stderr that it runs the default model" "$tmp/err"

printf 'Who was Elizabeth?\n' | "$BITNET" chat -n 8 --temp 0 >"$tmp/chat" 2>"$tmp/err"
check $? "chat without -m" "$tmp/err"
grep -q "the default model, .*models/tiny-en.gguf" "$tmp/err" &&
    grep -q '[^[:space:]]' "$tmp/chat"
check $? "chat runs the default model and answers" "$tmp/err"

# BITNET_MODEL and -m
"$BITNET" synth "$tmp/other.gguf" --layers 1 --seed 3 >/dev/null 2>&1
BITNET_MODEL=$tmp/other.gguf "$BITNET" generate -p "$prompt" -n 4 --temp 0 \
    >/dev/null 2>"$tmp/err"
check $? "BITNET_MODEL names another model" "$tmp/err"
grep -q "the model of BITNET_MODEL, $tmp/other.gguf" "$tmp/err" &&
    ! grep -q "the default model" "$tmp/err"
check $? "BITNET_MODEL is the model run, not the default" "$tmp/err"
BITNET_MODEL=$tmp/missing.gguf "$BITNET" generate -p "$prompt" -n 4 >/dev/null 2>"$tmp/err"
rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q "missing.gguf" "$tmp/err"
check $? "a BITNET_MODEL that does not exist: an error naming it (exit $rc)" "$tmp/err"
BITNET_MODEL=$tmp/missing.gguf "$BITNET" generate -m "$model" -p "$prompt" -n "$n" \
    --temp 0 --no-echo >"$tmp/gen" 2>"$tmp/err"
check $? "-m wins over BITNET_MODEL" "$tmp/err"
cmp -s "$tmp/gen" "$tmp/want"
check $? "-m models/tiny-en.gguf: the same greedy text" "$tmp/gen"

# out of its build tree, the program looks beside itself and in the configured folder
mkdir -p "$tmp/bin"
cp "$BITNET" "$tmp/bin/bitnet"
"$tmp/bin/bitnet" generate -p "$prompt" -n 4 >/dev/null 2>"$tmp/err"
rc=$?
if ls /usr/local/share/bitnet/tiny-en.gguf >/dev/null 2>&1; then
    echo "test_default_model: /usr/local/share/bitnet/tiny-en.gguf is installed here:" \
         "the program out of its build tree finds it (not checked)"
else
    [ $rc -eq 2 ] && grep -q "no model given" "$tmp/err" &&
        grep -q "share/bitnet/tiny-en.gguf" "$tmp/err"
    check $? "out of the build tree and not installed: a usage error (exit $rc)" "$tmp/err"
fi
mkdir -p "$tmp/share/bitnet"
cp "$model" "$tmp/share/bitnet/tiny-en.gguf"
"$tmp/bin/bitnet" generate -p "$prompt" -n "$n" --temp 0 --no-echo >"$tmp/gen" 2>"$tmp/err"
check $? "an installed tree: PREFIX/bin/bitnet runs PREFIX/share/bitnet/tiny-en.gguf" "$tmp/err"
grep -q "the default model, $tmp/share/bitnet/tiny-en.gguf" "$tmp/err" &&
    cmp -s "$tmp/gen" "$tmp/want"
check $? "an installed tree: that model, the same greedy text" "$tmp/err"

echo "test_default_model: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
