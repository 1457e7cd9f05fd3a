#!/bin/sh
# page.sh - the chat page of `bitnet serve` in a real browser: headless Chromium (Debian
# `chromium`, found as chromium or $CHROMIUM) driven by puppeteer-core (npm, pinned in
# package.json) runs browser.mjs against a server on a `bitnet synth` model. The
# screenshot goes to serve_page.png in the current folder (the build's tests folder
# under CTest), or $SHOT.
#
#   BITNET=build/bitnet tests/serve/page.sh
# Exit 0 all passed, 1 a check failed, 77 skipped (no node, npm or chromium).
set -u
BITNET=${BITNET:?set BITNET to the bitnet program}
case $BITNET in /*) ;; *) BITNET=$(pwd)/$BITNET ;; esac
shot=${SHOT:-$(pwd)/serve_page.png}
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$chromium" ]; then
    echo "serve page: chromium not found: skipped (Debian: apt-get install chromium)"
    exit 77
fi
if ! command -v node >/dev/null 2>&1; then
    echo "serve page: node not found: skipped (Debian: apt-get install nodejs npm)"
    exit 77
fi
cd "$here" || exit 1
sh "$here/npm-install.sh"
rc=$?
if [ $rc -ne 0 ]; then
    [ $rc -eq 77 ] && echo "serve page: skipped"
    exit $rc
fi

tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
# a model slow enough (a few hundred tokens/s) that Stop comes while it streams
"$BITNET" synth "$tmp/big.gguf" --layers 4 --embd 2048 --ff 2048 --heads 8 --heads-kv 2 \
    --vocab 512 --type tq2_0 --seed 2 >/dev/null 2>&1 || { echo "synth failed" >&2; exit 1; }
: >"$tmp/server.err"
"$BITNET" serve -m "$tmp/big.gguf" --port 0 --parallel 2 -c 2048 -t 1 --ignore-eos \
    2>"$tmp/server.err" &
pid=$!
port=""
i=0
while [ -z "$port" ] && [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.1
    port=$(sed -n 's|^serve: .* on http://[^ ]*:\([0-9][0-9]*\)/ .*|\1|p' "$tmp/server.err")
    i=$((i + 1))
done
if [ -z "$port" ]; then
    echo "serve page: the server did not start:" >&2
    cat "$tmp/server.err" >&2
    exit 1
fi
BASE_URL=http://127.0.0.1:$port CHROMIUM=$chromium SHOT=$shot node browser.mjs
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
