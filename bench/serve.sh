#!/bin/sh
# bench/serve.sh - `bitnet serve` under 1, 4, 8 and 16 concurrent streaming clients
# (bench/serve_load.mjs) on the 2B-4T-shaped synthetic TQ2_0 file (`bitnet synth --preset
# 2b-4t --type tq2_0 --arch bitnet`, the file llama.cpp also reads), 16 slots, THREADS
# threads; with LLAMA_SERVER set, llama.cpp's `llama-server` on the same file with the
# same slots, context per slot and threads, in the same run. Needs node.
#
#   BITNET=build/bitnet [LLAMA_SERVER=.../llama-server] [THREADS=2] bench/serve.sh
# env: REQUESTS per client per level (2), MAX_TOKENS per request (32), CACHE_PROMPT (0:
# every request's prompt evaluated; 1: both servers may reuse a slot's earlier prompt)
set -eu
BITNET=${BITNET:-build/bitnet}
threads=${THREADS:-2}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
"$BITNET" synth "$tmp/m.gguf" --preset 2b-4t --type tq2_0 --arch bitnet >/dev/null
ctx=256     # positions per slot: the prompt (about 25 tokens) and 32 generated fit

# wait_port URL: until /health answers (a large file takes a while to load)
wait_port() {
    i=0
    until curl -sf "$1/health" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 600 ] && { echo "serve.sh: no server at $1" >&2; exit 1; }
        sleep 0.2
    done
}

"$BITNET" serve -m "$tmp/m.gguf" --port 8091 --parallel 16 -c $ctx -t "$threads" \
    2>"$tmp/bitnet.err" &
pid=$!
wait_port http://127.0.0.1:8091
node "$here/serve_load.mjs" http://127.0.0.1:8091 "bitnet serve" 1 4 8 16
kill "$pid"; wait "$pid" || true; pid=""

if [ -n "${LLAMA_SERVER:-}" ]; then
    # -np slots, -c is the total context (split among the slots)
    "$LLAMA_SERVER" -m "$tmp/m.gguf" --port 8092 -np 16 -c $((ctx * 16)) -t "$threads" \
        -tb "$threads" --no-webui >"$tmp/llama.err" 2>&1 &
    pid=$!
    wait_port http://127.0.0.1:8092
    node "$here/serve_load.mjs" http://127.0.0.1:8092 "llama-server" 1 4 8 16 | tail -n +3
    kill "$pid"; wait "$pid" || true; pid=""
fi
