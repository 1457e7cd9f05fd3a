#!/bin/sh
# test_convert.sh - `bitnet convert` on synthetic Hugging Face checkpoints in each layout
# it reads (scripts/fixtures/make_hf_checkpoints.py, NumPy, written again here and
# checked byte for byte against the fixture's SHA-256): the logits of every converted
# model (`bitnet logits --all`, KV f32) against the independent PyTorch reference's on
# the safetensors (tests/fixtures/convert_ref.bnfx, scripts/fixtures/make_convert_ref.py)
# within docs/CONFORMANCE.md's act-quant tolerances; the vocabulary and merges written
# against tokenizer.json (by scripts/reference/gguf_reader.py); Llama 3.1's
# rope_freqs.weight against the transformers formula (and the Llama 3.1 checkpoint's
# logits, run with it, against the reference); a malformed rope_freqs.weight and linear
# RoPE scaling refused at load; and the messages for an unknown
# architecture, a missing tensor, a shape that does not fit, a missing tokenizer, a
# broken shard index and a malformed safetensors file, none of which leaves an output.
# With ../shared/data, also a folder with LLaMA 2's SentencePiece tokenizer.model.
# Skipped (77) without python3 and NumPy.
set -u
BITNET=${BITNET:?set BITNET to the program}
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
fixture=$here/fixtures/convert_ref.bnfx
py=
for c in python3 /usr/bin/python3; do
    if "$c" -c "import numpy" >/dev/null 2>&1; then py=$c; break; fi
done
[ -n "$py" ] || { echo "test_convert: no python3 with NumPy: skipped"; exit 77; }
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out
err=$tmp/err

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
same() { if [ "$2" = "$3" ]; then ok; else fail "$1: got '$2', expected '$3'"; fi; }
grep_in() {
    if grep -qF -- "$2" "$1"; then ok; else fail "$3: '$2' not in:"; cat "$1" >&2; fi
}

"$py" "$root/scripts/fixtures/make_hf_checkpoints.py" "$tmp/hf" >/dev/null ||
    { echo "test_convert: the checkpoint generator failed"; exit 1; }
tokens=$("$py" "$here/convert_check.py" tokens "$fixture")

# --- every layout: the checkpoint is the fixture's; convert; logits against the reference
k=0
for name in bitnet_bf16 bitnet_packed onebit llama_packed llama31; do
    if "$py" "$here/convert_check.py" sha "$fixture" $k "$tmp/hf/$name"; then ok; else
        fail "$name: the generated checkpoint is not the fixture's"; fi
    "$BITNET" convert -q "$tmp/hf/$name" -o "$tmp/$name.gguf" >"$out" 2>"$err"
    same "convert $name" "$?" 0
    grep_in "$err" "peak memory:" "$name: the peak memory is reported"
    if [ "$name" = llama31 ]; then
        if "$py" "$here/convert_check.py" rope "$fixture" $k "$tmp/$name.gguf"; then ok; else
            fail "$name: rope_freqs.weight"; fi
    fi
    "$BITNET" logits -m "$tmp/$name.gguf" --tokens "$tokens" --all --kv f32 \
        -o "$tmp/$name.f32" >"$out" 2>"$err"
    same "logits of $name" "$?" 0
    printf '%s: ' "$name"
    if "$py" "$here/convert_check.py" logits "$fixture" $k "$tmp/$name.f32"; then ok; else
        fail "$name: logits differ from the reference"; fi
    k=$((k + 1))
done

# --- a malformed rope_freqs.weight is refused at load, naming the problem
badrope() {   # badrope CHANGE EXPECTED
    "$py" "$here/convert_check.py" break-rope "$tmp/llama31.gguf" "$tmp/br.gguf" "$1" ||
        { fail "break-rope $1"; return; }
    "$BITNET" logits -m "$tmp/br.gguf" --tokens 1,2 -o "$tmp/x.f32" >"$out" 2>"$err"
    same "rope_freqs.weight $1: exit" "$?" 1
    grep_in "$err" "$2" "rope_freqs.weight $1"
}
badrope zero "tensor 'rope_freqs.weight' holds 0 at index 5; RoPE frequency factors must be finite and positive"
badrope nan "tensor 'rope_freqs.weight' holds nan at index 5"
badrope f16 "tensor 'rope_freqs.weight' is f16; RoPE frequency factors must be f32"
badrope short "tensor 'rope_freqs.weight' has shape [16, 1, 1, 1], expected [32, 1]"
rm -f "$tmp/br.gguf"
# linear RoPE scaling converts (as llama.cpp writes it) but is not run
mkdir "$tmp/lin" && cp "$tmp/hf/llama_packed/"* "$tmp/lin/" &&
    sed 's/"rope_theta"/"rope_scaling": {"rope_type": "linear", "factor": 2.0}, "rope_theta"/' \
        "$tmp/hf/llama_packed/config.json" >"$tmp/lin/config.json"
"$BITNET" convert -q "$tmp/lin" -o "$tmp/lin.gguf" >"$out" 2>"$err"
same "convert with linear RoPE scaling" "$?" 0
"$BITNET" logits -m "$tmp/lin.gguf" --tokens 1,2 -o "$tmp/x.f32" >"$out" 2>"$err"
same "logits with linear RoPE scaling: exit" "$?" 1
grep_in "$err" "RoPE scaling ('llama.rope.scaling.type' = 'linear') is not supported" \
    "linear RoPE scaling is refused"
rm -rf "$tmp/lin" "$tmp/lin.gguf"

# --- other projection types hold the same ternary weights (tq2_0's scales are f16)
"$BITNET" convert -q "$tmp/hf/bitnet_bf16" -o "$tmp/tq2.gguf" --type tq2_0 2>"$err"
same "convert --type tq2_0" "$?" 0
"$BITNET" logits -m "$tmp/tq2.gguf" --tokens "$tokens" --all --kv f32 -o "$tmp/tq2.f32" \
    >"$out" 2>&1
printf 'bitnet_bf16 as tq2_0: '
if "$py" "$here/convert_check.py" logits "$fixture" 0 "$tmp/tq2.f32"; then ok; else
    fail "tq2_0 logits"; fi
"$BITNET" convert -q "$tmp/hf/onebit" -o "$tmp/f32.gguf" --type f32 --lm-head f32 2>"$err"
same "convert --type f32 --lm-head f32" "$?" 0
"$BITNET" logits -m "$tmp/f32.gguf" --tokens "$tokens" --all --kv f32 -o "$tmp/f32.f32" \
    >"$out" 2>&1
printf 'onebit as f32: '
if "$py" "$here/convert_check.py" logits "$fixture" 2 "$tmp/f32.f32"; then ok; else
    fail "f32 logits"; fi

# a config without tie_word_embeddings and a checkpoint without lm_head: tied
mkdir "$tmp/notie" && cp "$tmp/hf/bitnet_bf16/"* "$tmp/notie/" &&
    grep -v tie_word_embeddings "$tmp/hf/bitnet_bf16/config.json" >"$tmp/notie/config.json"
"$BITNET" convert -q "$tmp/notie" -o "$tmp/notie.gguf" 2>"$err"
same "convert without tie_word_embeddings" "$?" 0
"$BITNET" logits -m "$tmp/notie.gguf" --tokens "$tokens" --all --kv f32 -o "$tmp/notie.f32" \
    >"$out" 2>&1
printf 'bitnet_bf16 without tie_word_embeddings: '
if "$py" "$here/convert_check.py" logits "$fixture" 0 "$tmp/notie.f32"; then ok; else
    fail "untied logits"; fi

# --- the tokenizer: vocabulary and merges as tokenizer.json has them (onebit: padded)
for name in bitnet_bf16 onebit; do
    if "$py" "$here/convert_check.py" vocab "$tmp/hf/$name/tokenizer.json" "$tmp/$name.gguf"
    then ok; else fail "$name: vocabulary"; fi
done
# the same ids from the GGUF as from the tokenizer.json, and the chat template kept
"$BITNET" tokenize -m "$tmp/hf/bitnet_bf16/tokenizer.json" -p "the cat sat on the mat" \
    >"$tmp/ids.json" 2>&1
"$BITNET" tokenize -m "$tmp/bitnet_bf16.gguf" -p "the cat sat on the mat" >"$out" 2>&1
same "ids from the GGUF" "$(cat "$out")" "$(cat "$tmp/ids.json")"
"$BITNET" info "$tmp/bitnet_bf16.gguf" >"$out" 2>&1
grep_in "$out" "tokenizer.chat_template" "the chat template is written"

# a SentencePiece tokenizer.model (LLaMA 2's, from ../shared/data when it is there) in a
# 1bitLLM folder with an embedding of its 32,000 rows
spm=${DATA:-$root/../shared/data}/tokenizer/llama2/tokenizer.model
if [ -f "$spm" ]; then
    "$py" -c "
import sys; sys.path.insert(0, '$root/scripts/fixtures')
import make_hf_checkpoints as mk, numpy as np
s = dict(mk.PRESETS['tiny'], V=32000, L=1)
mk.write_layout('$tmp/spm', 'onebit', s, np.random.default_rng(1))" &&
    rm "$tmp/spm/onebit/tokenizer.json" "$tmp/spm/onebit/tokenizer_config.json" &&
    cp "$spm" "$tmp/spm/onebit/"
    "$BITNET" convert -q "$tmp/spm/onebit" -o "$tmp/spm.gguf" >"$out" 2>"$err"
    same "convert with a tokenizer.model" "$?" 0
    text="Hello world, this is a test of the <s> tokenizer"
    "$BITNET" tokenize -m "$spm" -p "$text" --bos >"$tmp/ids" 2>&1
    "$BITNET" tokenize -m "$tmp/spm.gguf" -p "$text" --bos >"$out" 2>&1
    same "SentencePiece ids from the GGUF" "$(cat "$out")" "$(cat "$tmp/ids")"
    "$BITNET" info "$tmp/spm.gguf" >"$out" 2>&1
    grep_in "$out" 'tokenizer.ggml.model                           string         "llama"' \
        "the SentencePiece family is written"
    rm -rf "$tmp/spm" "$tmp/spm.gguf"
else
    echo "test_convert: no $spm: the tokenizer.model case is skipped"
fi

# --- refused inputs: a message naming the problem, exit 1, no output file
bad() {   # bad WHAT FOLDER EXPECTED
    rm -f "$tmp/bad.gguf"
    "$BITNET" convert -q "$2" -o "$tmp/bad.gguf" >"$out" 2>"$err"
    same "$1: exit" "$?" 1
    grep_in "$err" "$3" "$1"
    if [ -e "$tmp/bad.gguf" ]; then fail "$1: an output was left"; else ok; fi
}
mk() { rm -rf "$tmp/b"; cp -r "$tmp/hf/$1" "$tmp/b"; }

mk bitnet_bf16
sed 's/"BitNetForCausalLM"/"MambaForCausalLM"/' "$tmp/hf/bitnet_bf16/config.json" >"$tmp/b/config.json"
bad "unknown architecture" "$tmp/b" "architecture 'MambaForCausalLM' is not supported"
mk bitnet_bf16
LC_ALL=C sed 's/"model.norm.weight"/"model.nrom.weight"/' "$tmp/hf/bitnet_bf16/model.safetensors" \
    >"$tmp/b/model.safetensors"
bad "missing tensor" "$tmp/b" "tensor 'model.norm.weight' is missing"
mk bitnet_bf16
sed 's/"intermediate_size": 512/"intermediate_size": 768/' "$tmp/hf/bitnet_bf16/config.json" \
    >"$tmp/b/config.json"
bad "shape" "$tmp/b" \
    "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [512, 256], expected [768, 256]"
mk bitnet_packed
LC_ALL=C sed 's/"U8","shape":\[64,256\]/"I8","shape":[64,256]/' \
    "$tmp/hf/bitnet_packed/model-00001-of-00002.safetensors" >"$tmp/b/model-00001-of-00002.safetensors"
bad "dtype" "$tmp/b" "has dtype I8, expected U8 (packed ternary)"
mk bitnet_packed
rm "$tmp/b/model-00002-of-00002.safetensors"
bad "missing shard" "$tmp/b" "opening $tmp/b/model-00002-of-00002.safetensors: No such file"
mk bitnet_packed
sed 's/"model.norm.weight": "model-00002-of-00002.safetensors"/"model.norm.weight": "..\/x.safetensors"/' \
    "$tmp/hf/bitnet_packed/model.safetensors.index.json" >"$tmp/b/model.safetensors.index.json"
bad "shard outside the folder" "$tmp/b" \
    "tensor 'model.norm.weight' maps to '../x.safetensors', not a file name in the folder"
mk bitnet_bf16
head -c 100000 "$tmp/hf/bitnet_bf16/model.safetensors" >"$tmp/b/model.safetensors"
bad "truncated" "$tmp/b" "reading $tmp/b/model.safetensors: truncated: tensor '"
mk onebit
rm "$tmp/b/tokenizer.json"
bad "no tokenizer" "$tmp/b" "$tmp/b: no tokenizer.json or tokenizer.model"
rm -rf "$tmp/b"
bad "no folder" "$tmp/b" "$tmp/b: no config.json (is it a Hugging Face model folder?)"

# --- usage
"$BITNET" convert "$tmp/hf/onebit" >"$out" 2>"$err"
same "no -o" "$?" 2
grep_in "$err" "name the output file: -o OUT.gguf" "no -o: says so"
"$BITNET" convert "$tmp/hf/onebit" -o "$tmp/x.gguf" --lm-head i2_s >"$out" 2>"$err"
same "--lm-head i2_s" "$?" 2
"$BITNET" convert --help >"$out" 2>&1
grep_in "$out" "usage: bitnet convert HF_DIR -o OUT.gguf" "--help"

echo "test_convert: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
