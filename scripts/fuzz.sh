#!/bin/sh
# fuzz.sh [SECONDS] - fuzzes the GGUF reader, the safetensors header parser, the token
# shard reader, the BPE trainer, the request reader of `bitnet serve`, the tokenizers,
# and the readers of tokenizer.json and tokenizer.model files, SECONDS each (default
# 60). The last three
# targets need the reference tokenizers in ../shared/data (or $BITNET_FUZZ_DATA), which
# they load or cut their seeds from, and are skipped, saying so, without them.
#
# Builds each target in fuzz/ with clang's libFuzzer, ASan and UBSan against the library
# sources (no CMake build needed), writes its seed corpus (the GGUF target and the two
# file readers' targets are built a second time as seed writers, -DBN_FUZZ_SEED_WRITER,
# that write small valid files), and runs it. New inputs collect in $FUZZ_DIR/corpus,
# shards-corpus, train-corpus, tok-corpus, json-corpus and model-corpus (default
# FUZZ_DIR: build-fuzz) and are kept
# between runs; a crashing, leaking or slow input is saved under $FUZZ_DIR/artifacts/
# and the script exits non-zero. Reproduce one by running its target on it, e.g.
# build-fuzz/fuzz_gguf build-fuzz/artifacts/crash-...
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
dir=${FUZZ_DIR:-build-fuzz}
if [ -z "${CC:-}" ]; then
    if command -v clang-14 > /dev/null 2>&1; then CC=clang-14; else CC=clang; fi
fi
mkdir -p "$dir/corpus" "$dir/seeds" "$dir/artifacts"

libs=$(pkg-config --libs lapacke openblas jansson libpcre2-8)
sources=$(echo src/kernels/*.c src/core/*.c src/quant/*.c src/io/*.c src/tokenizer/*.c src/model/*.c)

# build TARGET OUTPUT FLAGS...: fuzz/TARGET.c and the library sources into OUTPUT
build() {
    target=$1
    output=$2
    shift 2
    # shellcheck disable=SC2086 # the source and library lists split on purpose
    "$CC" -std=c11 -g -O1 -fno-omit-frame-pointer -Wall -I include -I src \
        -D_GNU_SOURCE '-DBITNET_VERSION_STRING="fuzz"' "$@" \
        "fuzz/$target.c" $sources $libs -lpthread -lm -o "$output"
}

echo "fuzz.sh: building the targets in $dir with $CC"
build fuzz_gguf "$dir/fuzz_gguf" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
build fuzz_gguf "$dir/fuzz_gguf_seeds" -fsanitize=address,undefined -DBN_FUZZ_SEED_WRITER
build fuzz_safetensors "$dir/fuzz_safetensors" -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined
build fuzz_safetensors "$dir/fuzz_safetensors_seeds" -fsanitize=address,undefined \
    -DBN_FUZZ_SEED_WRITER
build fuzz_tokenizer "$dir/fuzz_tokenizer" -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined
for target in fuzz_shards fuzz_bpe_train; do
    build "$target" "$dir/$target" -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined
done
# the server's request reader needs jansson alone, not the library
"$CC" -std=c11 -g -O1 -fno-omit-frame-pointer -Wall -I include -I tools/bitnet -D_GNU_SOURCE \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    fuzz/fuzz_serve_request.c tools/bitnet/serve_request.c $(pkg-config --libs jansson) -lm \
    -o "$dir/fuzz_serve_request"
for target in fuzz_tokenizer_json fuzz_tokenizer_model; do
    build "$target" "$dir/$target" -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined fuzz/fuzz_tok_check.c
    build "$target" "$dir/${target}_seeds" -fsanitize=address,undefined \
        -DBN_FUZZ_SEED_WRITER fuzz/fuzz_tok_check.c
done

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OPENBLAS_NUM_THREADS=1
"$dir/fuzz_gguf_seeds" "$dir/seeds"
ls -l "$dir/seeds"

# Tokens the reader looks for, so that mutations find them sooner.
cat > "$dir/gguf.dict" << 'EOF'
"GGUF"
"general.alignment"
"general.architecture"
"\x02\x00\x00\x00"
"\x03\x00\x00\x00"
"\x08\x00\x00\x00"
"\x09\x00\x00\x00"
"\x0c\x00\x00\x00"
"\x20\x00\x00\x00"
"\x40\x00\x00\x00"
"\x00\x00\x00\x00\x00\x00\x00\x80"
"\xff\xff\xff\xff\xff\xff\xff\xff"
EOF

echo "fuzz.sh: fuzzing the GGUF reader for $seconds s"
"$dir/fuzz_gguf" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -error_exitcode=1 \
    -dict="$dir/gguf.dict" -artifact_prefix="$dir/artifacts/" -print_final_stats=1 \
    "$dir/corpus" "$dir/seeds"

# Token shards: a valid file of 3 two-byte tokens (vocabulary 700) and one of 2
# four-byte tokens (vocabulary 128256) as seeds.
mkdir -p "$dir/shards-seeds" "$dir/shards-corpus" "$dir/train-seeds" "$dir/train-corpus"
z8='\000\000\000\000\000\000\000\000'
printf "BNTOKSHD\001\000\000\000\002\000\000\000\274\002\000\000\000\000\000\000\021\042\063\104\125\146\167\210\003\000\000\000\000\000\000\000\001\000\000\000\000\000\000\000$z8$z8\001\000\002\000\273\002" \
    > "$dir/shards-seeds/two-byte.bin"
printf "BNTOKSHD\001\000\000\000\004\000\000\000\000\365\001\000\000\000\000\000\021\042\063\104\125\146\167\210\002\000\000\000\000\000\000\000\001\000\000\000\000\000\000\000$z8$z8\000\364\001\000\377\364\001\000" \
    > "$dir/shards-seeds/four-byte.bin"
echo "fuzz.sh: fuzzing the token shard reader for $seconds s"
"$dir/fuzz_shards" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -error_exitcode=1 \
    -artifact_prefix="$dir/artifacts/" -print_final_stats=1 \
    "$dir/shards-corpus" "$dir/shards-seeds"
# The BPE trainer: the first byte picks the vocabulary size, the rest is the text.
printf '\040Hello, hello world! 123 4567\n\n  x' > "$dir/train-seeds/a"
{ printf '\100'; head -c 3000 tests/fixtures/tokenizer/bpe-train-corpus.txt; } > "$dir/train-seeds/b"
{ printf '\020'; tail -c 1200 tests/fixtures/tokenizer/bpe-train-corpus.txt; } > "$dir/train-seeds/c"
echo "fuzz.sh: fuzzing the BPE trainer for $seconds s"
"$dir/fuzz_bpe_train" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -error_exitcode=1 \
    -max_len=4096 -artifact_prefix="$dir/artifacts/" -print_final_stats=1 \
    "$dir/train-corpus" "$dir/train-seeds"
# The safetensors header parser: seeds written by its seed writer, and a dictionary of
# the member names, dtypes and the JSON that the parser must bound.
mkdir -p "$dir/st-corpus" "$dir/st-seeds"
"$dir/fuzz_safetensors_seeds" "$dir/st-seeds"
cat > "$dir/st.dict" << 'EOF'
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"F32\""
"\"F16\""
"\"BF16\""
"\"U8\""
"\"I8\""
"\"F64\""
"\"I64\""
"[[[[[["
"18446744073709551615"
"9223372036854775807"
"\x00\x00\x00\x00\x00\x00\x00"
EOF
echo "fuzz.sh: fuzzing the safetensors header parser for $seconds s"
"$dir/fuzz_safetensors" -max_total_time="$seconds" -error_exitcode=1 -rss_limit_mb=2048 \
    -timeout=10 -max_len=16384 -dict="$dir/st.dict" -artifact_prefix="$dir/artifacts/" \
    -print_final_stats=1 "$dir/st-corpus" "$dir/st-seeds"
# The server's request bodies: seeds for both endpoints (first byte: 0 completions,
# 1 chat), and the member names the reader looks for.
mkdir -p "$dir/serve-corpus" "$dir/serve-seeds"
printf '\000{"prompt": "Hello", "max_tokens": 16, "temperature": 0.5, "stop": ["a", "b"], "seed": 7, "stream": true, "stream_options": {"include_usage": true}}' > "$dir/serve-seeds/completion"
printf '\000{"prompt": [1, 2, 3], "top_k": 4, "top_p": 0.9, "min_p": 0.1, "echo": true, "n": 1, "logprobs": null}' > "$dir/serve-seeds/ids"
printf '\001{"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi \\u00e9"}]}], "max_completion_tokens": 8, "presence_penalty": 1.5, "frequency_penalty": -1, "response_format": {"type": "text"}, "tools": []}' > "$dir/serve-seeds/chat"
cat > "$dir/serve.dict" << 'EOF'
"\"prompt\""
"\"messages\""
"\"role\""
"\"content\""
"\"type\""
"\"text\""
"\"temperature\""
"\"top_p\""
"\"top_k\""
"\"min_p\""
"\"seed\""
"\"max_tokens\""
"\"max_completion_tokens\""
"\"stop\""
"\"stream\""
"\"stream_options\""
"\"include_usage\""
"\"presence_penalty\""
"\"frequency_penalty\""
"\"repeat_penalty\""
"\"logprobs\""
"\"top_logprobs\""
"\"echo\""
"\"ignore_eos\""
"\"response_format\""
"\"tools\""
"\"n\""
"\"user\""
"\"assistant\""
"\"system\""
"\"developer\""
"null"
"true"
"false"
"1e400"
"-1"
"9223372036854775807"
"\\u0000"
"\xff"
EOF
echo "fuzz.sh: fuzzing the server's request reader for $seconds s"
"$dir/fuzz_serve_request" -max_total_time="$seconds" -error_exitcode=1 -rss_limit_mb=2048 \
    -timeout=10 -max_len=8192 -dict="$dir/serve.dict" -artifact_prefix="$dir/artifacts/" \
    -print_final_stats=1 "$dir/serve-corpus" "$dir/serve-seeds"

data=${BITNET_FUZZ_DATA:-../shared/data}
if [ ! -f "$data/tokenizer/llama3/tokenizer.json" ] || [ ! -f "$data/tokenizer/llama2/tokenizer.model" ]; then
    echo "fuzz.sh: SKIPPED the tokenizer targets: no reference tokenizers in $data"
    exit 0
fi
data=$(cd "$data" && pwd)
mkdir -p "$dir/tok-corpus" "$dir/tok-seeds"
printf '\001Hello, world! <|eot_id|> na\303\257ve \360\237\221\215\360\237\217\275' > "$dir/tok-seeds/a"
printf '\000  def f(x):\n\treturn x**2  # 12345 \342\226\201<s>' > "$dir/tok-seeds/b"
head -c 2000 "$data/corpus/tinyshakespeare.txt" > "$dir/tok-seeds/c" 2>/dev/null || true
echo "fuzz.sh: fuzzing the tokenizers for $seconds s"
BITNET_FUZZ_DATA=$data "$dir/fuzz_tokenizer" -max_total_time="$seconds" -error_exitcode=1 \
    -rss_limit_mb=2048 -timeout=10 -max_len=4096 -artifact_prefix="$dir/artifacts/" \
    -print_final_stats=1 "$dir/tok-corpus" "$dir/tok-seeds"

# The tokenizer.json reader. An input is a tokenizer.json, then optionally a NUL and a
# tokenizer_config.json; the seeds are cut from LLaMA 3's two files. The dictionary
# holds the member names and values the reader looks for.
mkdir -p "$dir/json-corpus" "$dir/json-seeds"
"$dir/fuzz_tokenizer_json_seeds" "$data" "$dir/json-seeds"
cat > "$dir/json.dict" << 'EOF'
"\"type\""
"\"BPE\""
"\"model\""
"\"vocab\""
"\"merges\""
"\"ignore_merges\""
"\"unk_token\""
"\"dropout\""
"\"continuing_subword_prefix\""
"\"added_tokens\""
"\"content\""
"\"special\""
"\"id\""
"\"normalizer\""
"\"pre_tokenizer\""
"\"Sequence\""
"\"pretokenizers\""
"\"Split\""
"\"pattern\""
"\"Regex\""
"\"behavior\""
"\"Isolated\""
"\"invert\""
"\"ByteLevel\""
"\"use_regex\""
"\"add_prefix_space\""
"\"post_processor\""
"\"processors\""
"\"TemplateProcessing\""
"\"single\""
"\"SpecialToken\""
"\"bos_token\""
"\"eos_token\""
"\"pad_token\""
"\"add_bos_token\""
"\"chat_template\""
"\"name\""
"\"default\""
"\"template\""
"\"<|eot_id|>\""
"\"<|start_header_id|>\""
"\"\\u0000\""
"\"\\u0120\""
"true"
"false"
"null"
"-1"
"2147483647"
"1e30"
"\x00"
EOF
echo "fuzz.sh: fuzzing the tokenizer.json reader for $seconds s"
"$dir/fuzz_tokenizer_json" -max_total_time="$seconds" -error_exitcode=1 -rss_limit_mb=2048 \
    -timeout=10 -max_len=32768 -dict="$dir/json.dict" -artifact_prefix="$dir/artifacts/" \
    -print_final_stats=1 "$dir/json-corpus" "$dir/json-seeds"

# The tokenizer.model reader; the seeds are cut from LLaMA 2's file. The dictionary
# holds the field keys the reader looks for (pieces and their score and types, the
# specs, trainer_spec's flags and ids, a group's start and end), negative and NaN
# values, and the texts of special pieces.
mkdir -p "$dir/model-corpus" "$dir/model-seeds"
"$dir/fuzz_tokenizer_model_seeds" "$data" "$dir/model-seeds"
cat > "$dir/model.dict" << 'EOF'
"\x0a"
"\x12"
"\x1a"
"\x2a"
"\x15"
"\x18\x01"
"\x18\x02"
"\x18\x03"
"\x18\x04"
"\x18\x05"
"\x18\x06"
"\x98\x02\x01"
"\xc0\x01\x01"
"\xc8\x02"
"\xd0\x02"
"\xd8\x02"
"\x20\x01"
"\x28\x00"
"\x0b"
"\x0c"
"\xff\xff\xff\xff\x0f"
"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
"\x00\x00\xc0\x7f"
"<0x41>"
"<unk>"
"\xe2\x96\x81"
EOF
echo "fuzz.sh: fuzzing the tokenizer.model reader for $seconds s"
"$dir/fuzz_tokenizer_model" -max_total_time="$seconds" -error_exitcode=1 -rss_limit_mb=2048 \
    -timeout=10 -max_len=32768 -dict="$dir/model.dict" -artifact_prefix="$dir/artifacts/" \
    -print_final_stats=1 "$dir/model-corpus" "$dir/model-seeds"
