#!/bin/sh
# llama_compare.sh - our forward pass against llama.cpp's (npm node-llama-cpp, prebuilt
# CPU binaries) on small `bitnet synth` files of arch "bitnet": log-probabilities at
# every position and 32 greedy steps, for F32 and F16 files with act-quant off (float
# rounding apart), TQ2_0 files with int8 activations (per token here, per block of 256
# in llama.cpp), and a relu2 file as the control (llama.cpp runs it with SiLU).
# llama_compare.mjs does the work and prints the table; docs/CONFORMANCE.md explains it.
#
#   BITNET=build/bitnet tests/interop/llama_compare.sh
# Needs node 20+ and the packages that run.sh installs into tests/interop/node_modules.
# Exit 0 all passed, 1 a check failed, 77 skipped (no node 20+, or llama.cpp not loadable).
set -u
BITNET=${BITNET:?set BITNET to the bitnet program}
case $BITNET in /*) ;; *) BITNET=$(pwd)/$BITNET ;; esac
here=$(cd "$(dirname "$0")" && pwd)
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true   # never fetch llama.cpp sources or builds

if ! command -v node >/dev/null 2>&1; then
    echo "llama_compare: node not found: skipped"
    exit 77
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "llama_compare: node $(node --version) is older than node-llama-cpp needs (20): skipped"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# (the .mjs exits 77 when node-llama-cpp or its prebuilt llama.cpp cannot be loaded)
node "$here/llama_compare.mjs" --bitnet "$BITNET" --work "$work"
