#!/bin/sh
# run.sh - drives `bitnet serve` with OpenAI's official client (client.mjs, npm `openai`
# pinned in package.json), on a `bitnet synth` model, with an API key: chat and
# completions streamed and not, the CLI's text, stop texts, errors, and a load of
# 16 concurrent clients x 20 requests checked answer by answer. Installs the pinned
# package into tests/serve/node_modules when missing (npm ci, no install scripts).
#
#   BITNET=build/bitnet tests/serve/run.sh
# Exit 0 all passed, 1 a check failed, 77 skipped (no node, or no npm to install).
set -u
BITNET=${BITNET:?set BITNET to the bitnet program}
case $BITNET in /*) ;; *) BITNET=$(pwd)/$BITNET ;; esac
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null 2>&1; then
    echo "serve client: node not found: skipped (Debian: apt-get install nodejs npm)"
    exit 77
fi
cd "$here" || exit 1
sh "$here/npm-install.sh"
rc=$?
if [ $rc -ne 0 ]; then
    [ $rc -eq 77 ] && echo "serve client: skipped"
    exit $rc
fi

tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
"$BITNET" synth "$tmp/m.gguf" --layers 2 --seed 5 >/dev/null 2>&1 ||
    { echo "synth failed" >&2; exit 1; }
"$BITNET" generate -m "$tmp/m.gguf" -p "Hello world" -n 16 --temp 0 --no-echo -c 256 \
    -t 1 >"$tmp/expect.txt" 2>/dev/null || { echo "generate failed" >&2; exit 1; }

: >"$tmp/server.err"
# prompts in parts of at most 5 tokens a step, so that the load's answers are checked
# with prompts evaluated over several steps beside running generations
"$BITNET" serve -m "$tmp/m.gguf" --port 0 --parallel 4 -c 256 -t 1 --api-key k3y \
    --prefill-chunk 5 2>"$tmp/server.err" &
pid=$!
port=""
i=0
while [ -z "$port" ] && [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.1
    port=$(sed -n 's|^serve: .* on http://[^ ]*:\([0-9][0-9]*\)/ .*|\1|p' "$tmp/server.err")
    i=$((i + 1))
done
if [ -z "$port" ]; then
    echo "serve client: the server did not start:" >&2
    cat "$tmp/server.err" >&2
    exit 1
fi
# under AddressSanitizer freed memory sits in its quarantine: the RSS check (and the
# second load it needs) is left out
sanitized=""
grep -qa __asan_init "$BITNET" && sanitized=1
BASE_URL=http://127.0.0.1:$port/v1 API_KEY=k3y EXPECT=$tmp/expect.txt SANITIZED=$sanitized \
    node client.mjs
rc=$?
kill -TERM "$pid"
wait "$pid"
src=$?
pid=""
if [ "$src" -ne 0 ]; then
    echo "FAIL: the server exited $src at SIGTERM" >&2
    tail -n 20 "$tmp/server.err" >&2
    rc=1
fi
exit $rc
