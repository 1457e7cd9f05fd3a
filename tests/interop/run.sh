#!/bin/sh
# run.sh - checks that GGUF files written by `bitnet synth` are read correctly by two
# independent implementations installed from the npm registry, as a user gets them:
# Hugging Face's parser (@huggingface/gguf) and llama.cpp (node-llama-cpp's prebuilt
# CPU binaries), and that our forward pass agrees with llama.cpp's (llama_compare.sh),
# also on a file written by `bitnet convert` (convert_llama_cpp.sh).
# Installs the pinned packages into tests/interop/node_modules when missing (npm ci
# without the optional GPU builds, then the CPU build for this machine; no install
# scripts, so nothing but the registry is fetched).
#
#   BITNET=build/bitnet tests/interop/run.sh       (BITNET_SLOW=1: also the 2b-4t
#                                                   preset, a 1.2 GB file)
# Exit 0 all passed, 1 a check failed, 77 skipped (no node, or no npm to install).
set -u
BITNET=${BITNET:?set BITNET to the bitnet program}
case $BITNET in /*) ;; *) BITNET=$(pwd)/$BITNET ;; esac
here=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0

if ! command -v node >/dev/null 2>&1; then
    echo "interop: node not found: skipped (Debian: apt-get install nodejs npm)"
    exit 77
fi
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true   # never fetch llama.cpp sources or builds
# node-llama-cpp needs node 20 or later (Debian 12 has 18: then only the parser checks)
node_major=$(node -p 'process.versions.node.split(".")[0]')

# The name of node-llama-cpp's prebuilt CPU package for this machine, if it has one.
platform_package() {
    node -e '
        const os = { linux: "linux", darwin: "mac", win32: "win" }[process.platform];
        const cpu = { x64: "x64", arm64: "arm64", arm: "armv7l" }[process.arch];
        const name = os && cpu && `${os}-${cpu}${os === "mac" && cpu === "arm64" ? "-metal" : ""}`;
        if (name) console.log(`@node-llama-cpp/${name}`);'
}

install_packages() {
    if ! command -v npm >/dev/null 2>&1; then
        echo "interop: npm not found to install the packages: skipped"
        exit 77
    fi
    version=$(node -p 'require("./package.json").dependencies["node-llama-cpp"]')
    pkg=$(platform_package)
    echo "interop: installing the pinned npm packages into $here/node_modules"
    npm ci --ignore-scripts --omit=optional --no-audit --no-fund --loglevel=error &&
    if [ -n "$pkg" ]; then
        npm install --no-save --ignore-scripts --omit=optional --no-audit --no-fund \
            --loglevel=error "$pkg@$version"
    fi
}

cd "$here" || exit 1
pkg=$(platform_package)
if [ ! -d node_modules/@huggingface/gguf ] || [ ! -d node_modules/node-llama-cpp ] ||
   { [ -n "$pkg" ] && [ ! -d "node_modules/$pkg" ]; }; then
    if ! install_packages; then
        echo "interop: npm could not install the packages"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# tally OUTPUT_FILE: adds a checker's closing "NAME: N passed, M failed" to the sums;
# a checker that died before it counts as one failure.
tally() {
    line=$(grep -E '^[^:]+: [0-9]+ passed, [0-9]+ failed$' "$1" | tail -1)
    if [ -z "$line" ]; then
        failed=$((failed + 1))
        echo "FAIL a checker stopped without its summary:"
        sed 's/^/  | /' "$1"
        return
    fi
    cat "$1"
    p=$(echo "$line" | sed 's/.*: \([0-9]*\) passed.*/\1/')
    f=$(echo "$line" | sed 's/.*passed, \([0-9]*\) failed/\1/')
    passed=$((passed + p))
    failed=$((failed + f))
}

# run_check NODE_ARGS...: runs a checker and adds its counts.
run_check() {
    node "$@" >"$work/out" 2>&1
    tally "$work/out"
}

# synth NAME ARGS...: writes $work/NAME.gguf with the bitnet program.
synth() {
    out="$work/$1.gguf"
    shift
    if "$BITNET" synth "$out" "$@" >"$work/synth.log" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL bitnet synth $*:"
        sed 's/^/  | /' "$work/synth.log"
    fi
}

# --- the files: one per projection type, one seed, and all-float ones for the bytes
for t in i2_s tq2_0 tq1_0 f16 f32; do
    synth "tiny_$t" --preset tiny --type "$t" --seed 7
done
synth tiny_f32_f32 --preset tiny --type f32 --embd-type f32 --seed 11
synth tiny_f16_f16 --preset tiny --type f16 --embd-type f16 --seed 12
synth tiny_tq2_0_q8_0 --preset tiny --type tq2_0 --embd-type q8_0 --seed 13
synth tiny_tq1_0_q6_k --preset tiny --type tq1_0 --embd-type q6_k --seed 14

# --- (a) Hugging Face's parser: metadata, tensor table, offsets; bytes of float files
for t in i2_s tq2_0 tq1_0 f16 f32; do
    run_check check_hf_gguf.mjs "$work/tiny_$t.gguf" --preset tiny --type "$t" --embd-type f16
done
run_check check_hf_gguf.mjs "$work/tiny_f32_f32.gguf" --preset tiny --type f32 \
    --embd-type f32 --seed 11 --values yes
run_check check_hf_gguf.mjs "$work/tiny_f16_f16.gguf" --preset tiny --type f16 \
    --embd-type f16 --seed 12 --values yes
run_check check_hf_gguf.mjs "$work/tiny_tq2_0_q8_0.gguf" --preset tiny --type tq2_0 \
    --embd-type q8_0
run_check check_hf_gguf.mjs "$work/tiny_tq1_0_q6_k.gguf" --preset tiny --type tq1_0 \
    --embd-type q6_k

# the control: one flipped exponent bit in output_norm.weight must fail the byte check
cp "$work/tiny_f32_f32.gguf" "$work/flipped.gguf"
size=$(wc -c <"$work/flipped.gguf")
node -e '
    const fs = require("fs"), [path, at] = process.argv.slice(1);
    const fd = fs.openSync(path, "r+"), b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, +at); b[0] ^= 0x40; fs.writeSync(fd, b, 0, 1, +at);' \
    "$work/flipped.gguf" $((size - 61))
if node check_hf_gguf.mjs "$work/flipped.gguf" --preset tiny --type f32 --embd-type f32 \
        --seed 11 --values yes 2>&1 | grep -q "FAIL.*tensor bytes.*output_norm"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL the byte check did not see one flipped bit in output_norm.weight"
fi

# --- (b) llama.cpp: parses, loads after the arch rename, agrees across formats
if [ "$node_major" -lt 20 ]; then
    echo "interop: node $(node --version) is older than node-llama-cpp needs (20):" \
         "llama.cpp skipped"
elif [ -n "$pkg" ]; then
    run_check check_llama_cpp.mjs --preset tiny --embd-type f16 \
        f32="$work/tiny_f32.gguf" f16="$work/tiny_f16.gguf" tq1_0="$work/tiny_tq1_0.gguf" \
        tq2_0="$work/tiny_tq2_0.gguf" i2_s="$work/tiny_i2_s.gguf"
    # (c) the forward pass against llama.cpp's (llama_compare.sh; exit 77: skipped)
    BITNET=$BITNET sh llama_compare.sh >"$work/out" 2>&1
    if [ $? -eq 77 ]; then cat "$work/out"; else tally "$work/out"; fi
    # (d) a file written by `bitnet convert` from a LLaMA ternary checkpoint
    BITNET=$BITNET sh convert_llama_cpp.sh >"$work/out" 2>&1
    if [ $? -eq 77 ]; then cat "$work/out"; else tally "$work/out"; fi
else
    echo "interop: node-llama-cpp has no prebuilt CPU build for this machine: llama.cpp skipped"
fi

# --- slow: the real shapes of bitnet-b1.58-2B-4T (128,256 tokens, 280,147 merges)
if [ "${BITNET_SLOW:-0}" = 1 ]; then
    synth big_tq2_0 --preset 2b-4t --type tq2_0 --seed 3
    run_check check_hf_gguf.mjs "$work/big_tq2_0.gguf" --preset 2b-4t --type tq2_0 \
        --embd-type f16
    if [ "$node_major" -ge 20 ] && [ -n "$pkg" ]; then
        run_check check_llama_cpp.mjs --preset 2b-4t --embd-type f16 \
            tq2_0="$work/big_tq2_0.gguf"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
