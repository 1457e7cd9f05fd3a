#!/bin/sh
# fuzz.sh [SECONDS] - fuzzes the GGUF reader, then the tokenizers, SECONDS each
# (default 60). The tokenizer target needs the reference tokenizers in ../shared/data
# (or $BITNET_FUZZ_DATA) and is skipped, saying so, without them.
#
# Builds fuzz/fuzz_gguf.c with clang's libFuzzer, ASan and UBSan against the library
# sources (no CMake build needed), writes a seed corpus of small valid GGUF files with
# the same file built as a seed writer, and runs the fuzzer. New inputs collect in
# $FUZZ_DIR/corpus (default build-fuzz/corpus) and are kept between runs; a crashing,
# leaking or slow input is saved under $FUZZ_DIR/artifacts/ and the script exits
# non-zero. Reproduce one with: build-fuzz/fuzz_gguf build-fuzz/artifacts/crash-...
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
dir=${FUZZ_DIR:-build-fuzz}
if [ -z "${CC:-}" ]; then
    if command -v clang-14 > /dev/null 2>&1; then CC=clang-14; else CC=clang; fi
fi
mkdir -p "$dir/corpus" "$dir/seeds" "$dir/artifacts"

libs=$(pkg-config --libs lapacke openblas jansson libpcre2-8)
sources=$(echo src/core/*.c src/quant/*.c src/io/*.c src/model/*.c)

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

echo "fuzz.sh: building $dir/fuzz_gguf with $CC"
build fuzz_gguf "$dir/fuzz_gguf" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
build fuzz_gguf "$dir/fuzz_gguf_seeds" -fsanitize=address,undefined -DBN_FUZZ_SEED_WRITER
build fuzz_tokenizer "$dir/fuzz_tokenizer" -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined

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

echo "fuzz.sh: fuzzing for $seconds s"
"$dir/fuzz_gguf" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -error_exitcode=1 \
    -dict="$dir/gguf.dict" -artifact_prefix="$dir/artifacts/" -print_final_stats=1 \
    "$dir/corpus" "$dir/seeds"

data=${BITNET_FUZZ_DATA:-../shared/data}
if [ ! -f "$data/tokenizer/llama3/tokenizer.json" ] || [ ! -f "$data/tokenizer/llama2/tokenizer.model" ]; then
    echo "fuzz.sh: SKIPPED the tokenizer target: no reference tokenizers in $data"
    exit 0
fi
mkdir -p "$dir/tok-corpus" "$dir/tok-seeds"
printf '\001Hello, world! <|eot_id|> na\303\257ve \360\237\221\215\360\237\217\275' > "$dir/tok-seeds/a"
printf '\000  def f(x):\n\treturn x**2  # 12345 \342\226\201<s>' > "$dir/tok-seeds/b"
head -c 2000 "$data/corpus/tinyshakespeare.txt" > "$dir/tok-seeds/c" 2>/dev/null || true
echo "fuzz.sh: fuzzing the tokenizers for $seconds s"
BITNET_FUZZ_DATA=$(cd "$data" && pwd) "$dir/fuzz_tokenizer" -max_total_time="$seconds" -error_exitcode=1 \
    -rss_limit_mb=2048 -timeout=10 -max_len=4096 -artifact_prefix="$dir/artifacts/" \
    -print_final_stats=1 "$dir/tok-corpus" "$dir/tok-seeds"
