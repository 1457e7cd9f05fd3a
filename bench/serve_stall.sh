#!/bin/sh
# bench/serve_stall.sh - how long a newcomer's long prompt holds back a running stream
# (bench/serve_stall.mjs), for `bitnet serve` with --prefill-chunk 0 (a prompt whole in
# one step) and with each of CHUNKS, on the 2B-4T-shaped synthetic TQ2_0 file, 2 slots,
# THREADS threads; with LLAMA_SERVER set, llama.cpp's `llama-server` (its defaults) on the
# same file in the same run. Needs node.
#
#   BITNET=build/bitnet [LLAMA_SERVER=.../llama-server] [THREADS=2] bench/serve_stall.sh
# env: LONG prompt tokens (1000), MAX_TOKENS of the stream (64), CHUNKS ("256 64")
set -eu
BITNET=${BITNET:-build/bitnet}
threads=${THREADS:-2}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
"$BITNET" synth "$tmp/m.gguf" --preset 2b-4t --type tq2_0 --arch bitnet >/dev/null
ctx=2048

wait_port() {
    i=0
    until curl -sf "$1/health" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 600 ] && { echo "serve_stall.sh: no server at $1" >&2; exit 1; }
        sleep 0.2
    done
}

echo "| server | long prompt tokens | stream's largest gap ms | median gap ms | long request ms |"
echo "|---|---:|---:|---:|---:|"
for chunk in 0 ${CHUNKS:-256 64}; do
    "$BITNET" serve -m "$tmp/m.gguf" --port 8093 --parallel 2 -c $ctx -t "$threads" \
        --prefill-chunk "$chunk" 2>"$tmp/bitnet.err" &
    pid=$!
    wait_port http://127.0.0.1:8093
    node "$here/serve_stall.mjs" http://127.0.0.1:8093 "bitnet serve --prefill-chunk $chunk"
    kill "$pid"; wait "$pid" || true; pid=""
done
if [ -n "${LLAMA_SERVER:-}" ]; then
    "$LLAMA_SERVER" -m "$tmp/m.gguf" --port 8094 -np 2 -c $((ctx * 2)) -t "$threads" \
        -tb "$threads" --no-webui >"$tmp/llama.err" 2>&1 &
    pid=$!
    wait_port http://127.0.0.1:8094
    node "$here/serve_stall.mjs" http://127.0.0.1:8094 "llama-server"
    kill "$pid"; wait "$pid" || true; pid=""
fi
