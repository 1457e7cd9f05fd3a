#!/bin/sh
# test_serve.sh - drives `bitnet serve` with curl on loopback: the endpoints and their
# shapes, the same text as `bitnet generate --temp 0 --no-echo` for the same prompt and
# length, seeded sampling that repeats, stop texts (whole and streamed), streaming
# against the whole reply, errors with their status codes and the field they name,
# the API key, 503 with Retry-After when the queue is full, a client that goes away
# freeing its slot, a corpus of malformed requests after which the server still serves,
# the allocator back at its idle bytes, and SIGTERM ending with exit 0. JSON is read
# with python3's json module; invalid UTF-8 from the CLI is decoded with python3's
# "replace" (one U+FFFD per maximal subpart, as the server promises). The models are
# `bitnet synth` ones. Skipped (77) without curl or python3.
set -u
BITNET=${BITNET:?set BITNET to the program}
command -v curl >/dev/null 2>&1 || { echo "test_serve: no curl: skipped"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "test_serve: no python3: skipped"; exit 77; }
passed=0
failed=0
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
out=$tmp/out
hdr=$tmp/hdr

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# start_server ARGS...: runs `bitnet serve --port 0 ARGS` in the background and waits
# for the line with its port
start_server() {
    : >"$tmp/server.err"    # emptied here: the child truncates it only once it runs
    "$BITNET" serve --port 0 "$@" 2>"$tmp/server.err" &
    pid=$!
    port=""
    i=0
    while [ $i -lt 100 ]; do
        port=$(sed -n 's|^serve: .* on http://[^ ]*:\([0-9][0-9]*\)/ .*|\1|p' "$tmp/server.err")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$port" ]; then
        echo "test_serve: the server did not start:" >&2
        cat "$tmp/server.err" >&2
        exit 1
    fi
    url=http://127.0.0.1:$port
}

# stop_server: SIGTERM, and the server must exit 0
stop_server() {
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    if [ "$rc" -eq 0 ]; then ok; else
        fail "the server exited $rc at SIGTERM"
        tail -n 20 "$tmp/server.err" >&2
    fi
    pid=""
}

# req METHOD PATH [BODY [CURL ARGS...]]: the response body to $out, headers to $hdr,
# the status to $code
req() {
    method=$1; path=$2; body=${3-}
    shift 2; [ $# -gt 0 ] && shift
    if [ -n "$body" ]; then
        code=$(curl -s -o "$out" -D "$hdr" -w '%{http_code}' -X "$method" \
               -H 'Content-Type: application/json' --data-binary "$body" "$@" "$url$path")
    else
        code=$(curl -s -o "$out" -D "$hdr" -w '%{http_code}' -X "$method" "$@" "$url$path")
    fi
}

# expect_code CODE WHAT
expect_code() {
    if [ "$code" = "$1" ]; then ok; else
        fail "$2: status $code, expected $1: $(head -c 300 "$out")"
    fi
}

# py EXPR [FILE]: prints EXPR evaluated with d = the JSON of FILE (default $out)
py() {
    python3 -c 'import json, sys
d = json.load(open(sys.argv[2], encoding="utf-8"))
v = eval(sys.argv[1])
sys.stdout.write(v if isinstance(v, str) else json.dumps(v))' "$1" "${2:-$out}"
}

# same WHAT GOT EXPECTED
same() {
    if [ "$2" = "$3" ]; then ok; else fail "$1: got '$2', expected '$3'"; fi
}

# sse_text FILE: the text of a stream's chunks joined, then a line with the finish
# reason, then "done" when it ended with data: [DONE]
sse_text() {
    python3 -c 'import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l]
assert all(l.startswith("data: ") for l in lines), lines
done = lines[-1] == "data: [DONE]"
text, finish, usage = "", None, None
for l in lines[:-1] if done else lines:
    d = json.loads(l[6:])
    if d.get("usage"): usage = d["usage"]
    for c in d["choices"]:
        text += c.get("delta", {}).get("content", "") if "delta" in c else c["text"]
        finish = c["finish_reason"] or finish
sys.stdout.write(json.dumps([text, finish, done, usage]))' "$1"
}

"$BITNET" synth "$tmp/m.gguf" --layers 2 --seed 5 >/dev/null 2>&1 ||
    { echo "synth failed" >&2; exit 1; }

# --- the endpoints
start_server -m "$tmp/m.gguf" --parallel 4 -c 256 -t 1
req GET /health
expect_code 200 "/health"
same "/health" "$(py 'd["status"]')" ok
req GET /v1/models
expect_code 200 "/v1/models"
same "/v1/models id" "$(py 'd["data"][0]["id"]')" m.gguf
same "/v1/models object" "$(py 'd["object"]')" list

# tokenize / detokenize against the CLI's tokenize
req POST /tokenize '{"content": "Hello world"}'
expect_code 200 "/tokenize"
"$BITNET" tokenize -m "$tmp/m.gguf" -p "Hello world" --json >"$tmp/ids.json" 2>/dev/null
same "/tokenize ids as bitnet tokenize" "$(py 'd["tokens"]')" "$(py 'd' "$tmp/ids.json")"
ids=$(py 'd["tokens"]')
req POST /detokenize "{\"tokens\": $ids}"
expect_code 200 "/detokenize"
same "/detokenize gives the text back" "$(py 'd["content"]')" "Hello world"

# --- the same text as the CLI, greedy
for case in "Hello world|16" "The quick brown fox|40" "a|3"; do
    prompt=${case%|*}
    n=${case#*|}
    "$BITNET" generate -m "$tmp/m.gguf" -p "$prompt" -n "$n" --temp 0 --no-echo -c 256 \
        -t 1 >"$tmp/cli.txt" 2>/dev/null
    # the CLI ends its text with a newline; one U+FFFD per maximal ill-formed subpart
    want=$(python3 -c 'import sys; b = open(sys.argv[1], "rb").read()[:-1]
sys.stdout.write(b.decode("utf-8", "replace"))' "$tmp/cli.txt")
    [ "$prompt" = "Hello world" ] && printf '%s' "$want" >"$tmp/hello.txt"
    req POST /v1/completions "{\"prompt\": \"$prompt\", \"max_tokens\": $n, \"temperature\": 0}"
    expect_code 200 "completion of '$prompt'"
    same "completion of '$prompt' as bitnet generate" "$(py 'd["choices"][0]["text"]')" "$want"
    same "usage of '$prompt'" "$(py 'd["usage"]["completion_tokens"]')" "$n"
    same "object" "$(py 'd["object"]')" text_completion
    # streamed: the same text, then [DONE]
    req POST /v1/completions "{\"prompt\": \"$prompt\", \"max_tokens\": $n, \"temperature\": 0, \"stream\": true}" -N
    expect_code 200 "streamed completion of '$prompt'"
    same "streamed completion of '$prompt'" "$(sse_text "$out")" \
         "$(python3 -c 'import json, sys; print(json.dumps([sys.argv[1], "length", True, None]), end="")' "$want")"
done

# --- logprobs whose last token ends in bytes the decoder holds (this prompt's 5th
# token is an incomplete UTF-8 sequence): they go to the last token, streamed or not,
# and the tokens join to the text
lp5='{"prompt": "Hello world", "max_tokens": 5, "temperature": 0, "logprobs": 1'
req POST /v1/completions "$lp5}"
py 'json.dumps([d["choices"][0]["text"], d["choices"][0]["logprobs"]["tokens"]])' >"$tmp/lp5.json"
req POST /v1/completions "$lp5, \"stream\": true}" -N
same "logprobs with bytes held at the end, streamed and not" "$(python3 -c 'import json, sys
ev = [json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("data: {")]
c = [x["choices"][0] for x in ev]
text = "".join(x["text"] for x in c)
toks = sum([x["logprobs"]["tokens"] for x in c if x["logprobs"]], [])
whole = json.load(open(sys.argv[2]))
ok = [text, toks] == whole and "".join(toks) == text and text.endswith("\ufffd")
print("ok" if ok else json.dumps([text, toks, whole]), end="")' "$out" "$tmp/lp5.json")" ok

# --- seeded sampling repeats; another seed gives another text
body='{"prompt": "Once upon", "max_tokens": 24, "temperature": 1.0, "seed": 42, "top_k": 0, "top_p": 1, "min_p": 0}'
req POST /v1/completions "$body"
first=$(py 'd["choices"][0]["text"]')
req POST /v1/completions "$body"
same "seed 42 twice" "$(py 'd["choices"][0]["text"]')" "$first"
req POST /v1/completions "$(echo "$body" | sed 's/"seed": 42/"seed": 43/')"
if [ "$(py 'd["choices"][0]["text"]')" != "$first" ]; then ok; else
    fail "seeds 42 and 43 gave the same text"; fi
"$BITNET" generate -m "$tmp/m.gguf" -p "Once upon" -n 24 --temp 1 --seed 42 --top-k 0 \
    --top-p 1 --min-p 0 --no-echo -c 256 -t 1 >"$tmp/cli.txt" 2>/dev/null
same "seed 42 as bitnet generate --seed 42" "$first" "$(python3 -c 'import sys
sys.stdout.write(open(sys.argv[1], "rb").read()[:-1].decode("utf-8", "replace"))' "$tmp/cli.txt")"

# --- chat: the shape, streamed the same, usage at the end
chat='{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}], "max_tokens": 12, "temperature": 0'
req POST /v1/chat/completions "$chat}"
expect_code 200 "chat"
same "chat object" "$(py 'd["object"]')" chat.completion
same "chat role" "$(py 'd["choices"][0]["message"]["role"]')" assistant
chat_text=$(py 'd["choices"][0]["message"]["content"]')
chat_prompt=$(py 'd["usage"]["prompt_tokens"]')
# the prompt is the template's rendering: System: ...<|eot_id|>User: ...<|eot_id|>Assistant:
req POST /tokenize '{"content": "<|begin_of_text|>System: Be brief.<|eot_id|>User: Hi there<|eot_id|>Assistant:"}'
same "chat prompt tokens (the template's text)" "$chat_prompt" "$(py 'len(d["tokens"])')"
req POST /v1/chat/completions "$chat, \"stream\": true, \"stream_options\": {\"include_usage\": true}}" -N
same "streamed chat" "$(sse_text "$out" | python3 -c 'import json, sys; t = json.load(sys.stdin); print(json.dumps([t[0], t[2], t[3]["completion_tokens"]]), end="")')" \
     "$(python3 -c 'import json, sys; print(json.dumps([sys.argv[1], True, 12]), end="")' "$chat_text")"
if grep -q '"role":"assistant"' "$out"; then ok; else fail "no role in the first chunk"; fi
grep -q '^Content-Type: text/event-stream' "$hdr" && ok || fail "stream content type"
# content as parts, and max_completion_tokens
req POST /v1/chat/completions '{"messages": [{"role": "system", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]}, {"role": "user", "content": "Hi there"}], "max_completion_tokens": 12, "temperature": 0}'
same "chat with content parts" "$(py 'd["choices"][0]["message"]["content"]')" "$chat_text"

# --- stop texts: the text before the first occurrence, never a part of one
req POST /v1/completions '{"prompt": "The quick brown fox", "max_tokens": 40, "temperature": 0}'
long=$(py 'd["choices"][0]["text"]')
stop=$(python3 -c 'import sys; t = sys.argv[1]; print(t[10:13], end="")' "$long")
want=$(python3 -c 'import sys; t, s = sys.argv[1:3]; print(t[:t.index(s)], end="")' "$long" "$stop")
sbody=$(python3 -c 'import json, sys; print(json.dumps({"prompt": "The quick brown fox", "max_tokens": 40, "temperature": 0, "stop": [sys.argv[1], "\u0001never"]}), end="")' "$stop")
req POST /v1/completions "$sbody"
same "stop text" "$(py 'd["choices"][0]["text"]')" "$want"
same "stop text finish_reason" "$(py 'd["choices"][0]["finish_reason"]')" stop
req POST /v1/completions "$(echo "$sbody" | sed 's/^{/{"stream": true, /')" -N
same "streamed stop text" "$(sse_text "$out" | py 'd[0] + "|" + d[1]' /dev/stdin)" "$want|stop"

# --- errors: status, type and the field named
req POST /v1/completions '{"prompt": "x", "max_tokens": "many"}'
expect_code 400 "max_tokens as a string"
same "max_tokens named" "$(py 'd["error"]["param"] + "|" + d["error"]["type"]')" \
     "max_tokens|invalid_request_error"
req POST /v1/chat/completions '{"messages": [{"role": "user", "content": 5}]}'
expect_code 400 "content as a number"
same "content named" "$(py 'd["error"]["param"]')" "messages[0].content"
req POST /v1/chat/completions '{"messages": "hi"}'
expect_code 400 "messages as a string"
req POST /v1/chat/completions '{"model": "x"}'
expect_code 400 "no messages"
same "messages required" "$(py 'd["error"]["param"]')" messages
req POST /v1/completions '{"prompt": "x", "temperature": 7}'
expect_code 400 "temperature out of range"
req POST /v1/completions '{"prompt": "x", "unknown_field": {"a": [1]}, "user": "u", "max_tokens": 2}'
expect_code 200 "unknown fields are ignored"
req POST /v1/completions '{"prompt": "x", "max_tokens": 2, "temperature": null}'
expect_code 200 "null is absent"
req POST /v1/completions '{"prompt": [1, 2, 999999], "max_tokens": 2}'
expect_code 400 "token id out of the vocabulary"
req POST /v1/completions "{\"prompt\": \"$(python3 -c 'print("word " * 400, end="")')\", \"max_tokens\": 4}"
expect_code 400 "prompt longer than the context"
same "context_length_exceeded" "$(py 'd["error"]["code"]')" context_length_exceeded
req POST /v1/completions '{"prompt": "Hi", "max_tokens": 100000, "temperature": 0, "ignore_eos": true}'
expect_code 200 "max_tokens beyond the context"
same "a full context ends as length" "$(py 'd["choices"][0]["finish_reason"]')" length
req GET /v1/nothing
expect_code 404 "unknown path"
same "404 shape" "$(py 'd["error"]["type"]')" invalid_request_error
req GET /v1/completions
expect_code 405 "GET of a POST endpoint"

# --- the malformed corpus: 4xx or a clean close, and the server goes on
for body in '{' '[1,2,3]' '"str"' 'null' '{"prompt": "a", "max_tokens": 1e999}' \
            '{"prompt": "a", "max_tokens": 99999999999999999999999}' \
            '{"prompt": "a", "seed": 1.5}' '{"prompt": "a", "stop": [1]}' \
            '{"prompt": "a", "stop": ["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]}' \
            '{"prompt": "a", "n": 2}' '{"prompt": "a", "logprobs": true}' \
            '{"prompt": "a", "stream_options": 3}' '{"prompt": "a", "prompt": "b"}' \
            '{"prompt": "\u0000"}' '{"prompt": {"a": 1}}' '{"prompt": []}' \
            '{"messages": [{"role": "wizard", "content": "x"}]}'; do
    req POST /v1/completions "$body"
    case $code in 4??) ok ;; *) fail "malformed body '$body': status $code" ;; esac
done
printf '{"prompt": "\377\376"}' >"$tmp/bad_utf8"
code=$(curl -s -o "$out" -w '%{http_code}' --data-binary @"$tmp/bad_utf8" "$url/v1/completions")
expect_code 400 "invalid UTF-8 in the JSON"
python3 -c 'print("[" * 100000)' >"$tmp/deep"
code=$(curl -s -o "$out" -w '%{http_code}' --data-binary @"$tmp/deep" "$url/v1/chat/completions")
expect_code 400 "nesting 100000 deep"
head -c 10000000 /dev/zero | tr '\0' 'a' >"$tmp/big"
code=$(curl -s -o "$out" -w '%{http_code}' --data-binary @"$tmp/big" "$url/v1/completions")
expect_code 413 "a 10 MB body"
code=$(curl -s -o "$out" -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
       --data-binary @"$tmp/big" "$url/v1/completions")
expect_code 413 "a 10 MB chunked body"
# clients that vanish: half a request line, headers without the body, mid-stream
python3 - "$port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
for data in [b"POST /v1/comp", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro",
             b"GET /health HTTP/1.1\r\nHost: x\r\n", b"\x00\xff\x16\x03\x01garbage\r\n\r\n"]:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(data)
    s.close()
# a stream whose client reads the first event and goes away
s = socket.create_connection(("127.0.0.1", port))
body = b'{"prompt": "a", "max_tokens": 200, "stream": true, "ignore_eos": true}'
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
s.recv(100)
s.close()
PY
sleep 0.3
req POST /v1/completions '{"prompt": "Hello world", "max_tokens": 16, "temperature": 0}'
expect_code 200 "a completion after the malformed corpus"
same "the same text after the malformed corpus" "$(py 'd["choices"][0]["text"]')" \
     "$(cat "$tmp/hello.txt")"

# --- metrics, and the allocator back at its idle bytes after all that
req GET /metrics
expect_code 200 "/metrics"
grep -q '^bitnet_requests_total{route="/v1/completions",status="200"} [1-9]' "$out" && ok ||
    fail "/metrics counts the completions"
grep -q '^bitnet_slots 4$' "$out" && ok || fail "/metrics slots"
grep -q '^bitnet_slots_busy 0$' "$out" && ok || fail "/metrics: a slot still busy"
live_bytes() {   # the allocator's, less the generator's batch buffer (a high-water mark)
    echo $(($(sed -n 's/^bitnet_memory_live_bytes //p' "$out") - \
            $(sed -n 's/^bitnet_memory_generator_bytes //p' "$out")))
}
# idle_bytes: live_bytes once two reads 0.1 s apart agree (a request's memory is freed
# just after its answer went out)
idle_bytes() {
    req GET /metrics
    prev=$(live_bytes)
    i=0
    while [ $i -lt 50 ]; do
        sleep 0.1
        req GET /metrics
        [ "$(live_bytes)" = "$prev" ] && break
        prev=$(live_bytes)
        i=$((i + 1))
    done
    echo "$prev"
}
live1=$(idle_bytes)
pids=""
for i in 1 2 3 4 5 6 7 8; do
    curl -s -o /dev/null "$url/v1/completions" -d '{"prompt": "Hello", "max_tokens": 8}' &
    pids="$pids $!"
done
wait $pids
same "the allocator's live bytes after 8 more requests" "$(idle_bytes)" "$live1"
stop_server
grep -q '^20[0-9-]*T[0-9:]*Z POST /v1/completions 200 prompt=[0-9]* generated=[0-9]* [0-9.]*ms$' \
    "$tmp/server.err" && ok || fail "access log line"

# --- logprobs against the PyTorch reference: tests/fixtures/serve_logprobs.json
# (scripts/fixtures/make_serve_logprobs.py: greedy ids, their log-softmax and the top
# alternatives of scripts/reference/bitnet_ref.py with act-quant off and k/v rounded to
# f16, as the engine's f16 KV cache does; tolerance 4e-3, twice the reference's
# recommended logit tolerance for that configuration, see the script)
fx=$(cd "$(dirname "$0")" && pwd)/fixtures/serve_logprobs.json
"$BITNET" synth "$tmp/ref.gguf" $(py '" ".join(d["synth_args"])' "$fx") >/dev/null 2>&1 ||
    { echo "synth failed" >&2; exit 1; }
start_server -m "$tmp/ref.gguf" $(py '" ".join(d["serve_args"])' "$fx") --parallel 2 \
    -c 128 -t 1
cat >"$tmp/lp.py" <<'PY'
import json, sys
fx = json.load(open(sys.argv[1]))
tol, k = fx["tol"], fx["top_k"]
what = sys.argv[2]
case = [c for c in fx["cases"] if c["endpoint"] == what.split("-")[0]][0]
steps = case["steps"]
def events(path):   # the data of a stream's events, [DONE] last
    ev = [l[6:] for l in open(path, encoding="utf-8").read().split("\n") if l.startswith("data: ")]
    assert ev[-1] == "[DONE]", ev[-1]
    return [json.loads(e) for e in ev[:-1]]
def check_chat(content, text):
    assert len(content) == len(steps), len(content)
    assert "".join(c["token"] for c in content) == text
    for i, (c, s) in enumerate(zip(content, steps)):
        assert c["token"] == s["token"] and c["bytes"] == s["bytes"], (i, c, s["token"])
        assert abs(c["logprob"] - s["logprob"]) <= tol, (i, c["logprob"], s["logprob"])
        top, ref = c["top_logprobs"], {bytes(t["bytes"]): t["logprob"] for t in s["top"]}
        assert len(top) == k and [t["logprob"] for t in top] == sorted(
            (t["logprob"] for t in top), reverse=True), (i, top)
        for t in top:   # among the reference's best, with its value, ties allowed
            b = bytes(t["bytes"])
            assert b in ref and abs(t["logprob"] - ref[b]) <= tol, (i, t)
            assert ref[b] >= s["top"][k - 1]["logprob"] - 2 * tol, (i, t)
            assert t["token"] == b.decode("utf-8", "replace"), (i, t)
        got = {bytes(t["bytes"]) for t in top}
        for t in s["top"][:k]:   # every clear member of the reference's top k
            assert bytes(t["bytes"]) in got or t["logprob"] < s["top"][k]["logprob"] + 2 * tol, (i, t)
        assert bytes(top[0]["bytes"]) == bytes(s["top"][0]["bytes"])   # greedy: the best
def check_completion(lp, text):
    assert lp["tokens"] == [s["token"] for s in steps], lp["tokens"]
    assert "".join(lp["tokens"]) == text
    for i, (v, s) in enumerate(zip(lp["token_logprobs"], steps)):
        assert abs(v - s["logprob"]) <= tol, (i, v, s["logprob"])
    offs, o = [], 0
    for t in lp["tokens"]:
        offs.append(o)
        o += len(t)
    assert lp["text_offset"] == offs, lp["text_offset"]
    for i, (top, s) in enumerate(zip(lp["top_logprobs"], steps)):
        assert 1 <= len(top) <= k, (i, top)
        for key, v in top.items():   # a token of that text, with the reference's value
            assert any(bytes(t["bytes"]).decode("utf-8", "replace") == key and
                       abs(v - t["logprob"]) <= tol for t in s["top"]), (i, key, v)
if what == "chat":
    d = json.load(open(sys.argv[3]))
    c = d["choices"][0]
    check_chat(c["logprobs"]["content"], c["message"]["content"])
    assert c["finish_reason"] == "length" and d["usage"]["completion_tokens"] == len(steps)
    assert d["usage"]["prompt_tokens"] == len(case["prompt"])
elif what == "chat-stream":
    content, text = [], ""
    for e in events(sys.argv[3]):
        for c in e["choices"]:
            part = (c["logprobs"] or {}).get("content") or []
            delta = c["delta"].get("content", "")
            assert "".join(t["token"] for t in part) == delta, (part, delta)
            content += part
            text += delta
    check_chat(content, text)
    whole = json.load(open(sys.argv[4]))["choices"][0]["logprobs"]["content"]
    assert content == whole   # the same values as the whole reply
elif what == "completions":
    d = json.load(open(sys.argv[3]))
    check_completion(d["choices"][0]["logprobs"], d["choices"][0]["text"])
elif what == "completions-stream":
    lp = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    text = ""
    for e in events(sys.argv[3]):
        for c in e["choices"]:
            if c["logprobs"]:
                assert "".join(c["logprobs"]["tokens"]) == c["text"]
                for f in lp:
                    lp[f] += c["logprobs"][f]
            else:
                assert c["text"] == ""
            text += c["text"]
    check_completion(lp, text)
PY
lp_check() {
    if python3 "$tmp/lp.py" "$fx" "$@" 2>"$tmp/lp.err"; then ok; else
        fail "logprobs ($1) against the reference: $(tail -n 3 "$tmp/lp.err")"; fi
}
prompt=$(py '[c for c in d["cases"] if c["endpoint"] == "completions"][0]["prompt"]' "$fx")
content=$(py '[c for c in d["cases"] if c["endpoint"] == "chat"][0]["content"]' "$fx")
lp_body="{\"prompt\": $prompt, \"max_tokens\": 16, \"temperature\": 0, \"logprobs\": 5"
req POST /v1/completions "$lp_body}"
expect_code 200 "completion with logprobs 5"
lp_check completions "$out"
req POST /v1/completions "$lp_body, \"stream\": true}" -N
lp_check completions-stream "$out"
lp_body="{\"messages\": [{\"role\": \"user\", \"content\": \"$content\"}], \"max_tokens\": 16, \"temperature\": 0, \"logprobs\": true, \"top_logprobs\": 5"
req POST /v1/chat/completions "$lp_body}"
expect_code 200 "chat with top_logprobs 5"
lp_check chat "$out"
cp "$out" "$tmp/lp_chat.json"
req POST /v1/chat/completions "$lp_body, \"stream\": true}" -N
lp_check chat-stream "$out" "$tmp/lp_chat.json"
# a stop text that begins inside a token: the token keeps its text before the stop
# text, the tokens after it are left out, and the tokens join to the text (expected:
# the fixture's tokens, cut where "dcdf" begins in their text)
cut_py='import json, sys
steps = [c for c in json.load(open(sys.argv[1]))["cases"] if c["endpoint"] == "completions"][0]["steps"]
text = "".join(s["token"] for s in steps)
cut = text.index("dcdf")
toks, o = [], 0
for s in steps:
    if o < cut:
        toks.append(s["token"][:cut - o])
    o += len(s["token"])
print(json.dumps([text[:cut], toks] + sys.argv[2:]), end="")'
req POST /v1/completions "{\"prompt\": $prompt, \"max_tokens\": 16, \"temperature\": 0, \"logprobs\": 0, \"stop\": \"dcdf\"}"
same "logprobs cut by a stop text" "$(py 'json.dumps([d["choices"][0]["text"], d["choices"][0]["logprobs"]["tokens"], d["choices"][0]["finish_reason"]])')" \
     "$(python3 -c "$cut_py" "$fx" stop)"
req POST /v1/completions "{\"prompt\": $prompt, \"max_tokens\": 16, \"temperature\": 0, \"logprobs\": 0, \"stop\": \"dcdf\", \"stream\": true}" -N
same "streamed logprobs cut by a stop text" "$(python3 -c 'import json, sys
ev = [json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("data: {")]
c = [x["choices"][0] for x in ev]
print(json.dumps(["".join(x["text"] for x in c), sum([x["logprobs"]["tokens"] for x in c if x["logprobs"]], [])]), end="")' "$out")" \
     "$(python3 -c "$cut_py" "$fx")"
# asking for logprobs changes nothing that is drawn
lp_body="{\"prompt\": $prompt, \"max_tokens\": 24, \"temperature\": 1.0, \"seed\": 7, \"top_k\": 0, \"top_p\": 1, \"min_p\": 0"
req POST /v1/completions "$lp_body}"
plain=$(py 'd["choices"][0]["text"]')
req POST /v1/completions "$lp_body, \"logprobs\": 3}"
same "a seeded sample with logprobs" "$(py 'd["choices"][0]["text"]')" "$plain"
same "a seeded sample's tokens join to its text" "$(py '"".join(d["choices"][0]["logprobs"]["tokens"])')" "$plain"
# bad values: 400 naming the field
for case in '/v1/chat/completions|"logprobs": true, "top_logprobs": 21|top_logprobs' \
            '/v1/chat/completions|"logprobs": true, "top_logprobs": -1|top_logprobs' \
            '/v1/chat/completions|"logprobs": true, "top_logprobs": "2"|top_logprobs' \
            '/v1/chat/completions|"top_logprobs": 2|top_logprobs' \
            '/v1/chat/completions|"logprobs": false, "top_logprobs": 2|top_logprobs' \
            '/v1/chat/completions|"logprobs": 1|logprobs' \
            '/v1/completions|"logprobs": 6|logprobs' \
            '/v1/completions|"logprobs": -1|logprobs' \
            '/v1/completions|"logprobs": true|logprobs' \
            '/v1/completions|"logprobs": 1.5|logprobs'; do
    path=${case%%|*}; rest=${case#*|}; field=${rest#*|}; extra=${rest%|*}
    req POST "$path" "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"prompt\": \"x\", $extra}"
    expect_code 400 "$path with $extra"
    same "$path with $extra names" "$(py 'd["error"]["param"]')" "$field"
done
stop_server

# --- the API key, JSON log lines
start_server -m "$tmp/m.gguf" --parallel 1 -c 128 -t 1 --api-key s3cret --log-format json \
    --timeout 1
# a slow sender: half the headers, then nothing; --timeout 1 closes it
if python3 - "$port" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
s.settimeout(10)
t0 = time.monotonic()
data = s.recv(1000)
sys.exit(0 if (data == b"" or data.startswith(b"HTTP/1.1 4")) and time.monotonic() - t0 < 5 else 1)
PY
then ok; else fail "a slow sender was not closed after --timeout 1"; fi
req POST /v1/completions '{"prompt": "a", "max_tokens": 2}'
expect_code 401 "no key"
same "401 type" "$(py 'd["error"]["type"]')" authentication_error
grep -qi '^WWW-Authenticate: Bearer' "$hdr" && ok || fail "401 without WWW-Authenticate"
req POST /v1/completions '{"prompt": "a", "max_tokens": 2}' -H 'Authorization: Bearer s3cre'
expect_code 401 "a wrong key"
req POST /v1/completions '{"prompt": "a", "max_tokens": 2}' -H 'Authorization: Bearer s3cret'
expect_code 200 "the right key"
req GET /v1/models '' -H 'Authorization: Bearer s3cret'
expect_code 200 "models with the key"
req GET /health
expect_code 200 "/health needs no key"
stop_server
python3 -c 'import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert any(l["path"] == "/v1/completions" and l["status"] == 401 for l in lines)
assert any(l["path"] == "/v1/completions" and l["status"] == 200 and l["completion_tokens"] == 2 for l in lines)' \
    "$tmp/server.err" && ok || fail "JSON access log lines"

# --- 503 when the queue is full; a client that goes away frees its slot
"$BITNET" synth "$tmp/big.gguf" --layers 4 --embd 2048 --ff 2048 --heads 8 --heads-kv 2 \
    --vocab 512 --type tq2_0 --seed 2 >/dev/null 2>&1 || { echo "synth failed" >&2; exit 1; }
start_server -m "$tmp/big.gguf" --parallel 1 --queue 1 -c 2048 -t 1 --shutdown-timeout 1
long='{"prompt": "a", "max_tokens": 2000, "stream": true, "ignore_eos": true}'
curl -s -N "$url/v1/completions" -d "$long" >"$tmp/long.out" &
long_pid=$!
i=0
until grep -q '^bitnet_slots_busy 1$' "$tmp/m1" 2>/dev/null || [ $i -ge 100 ]; do
    curl -s "$url/metrics" >"$tmp/m1"; sleep 0.05; i=$((i + 1)); done
t0=$(date +%s.%N)
curl -s -o "$tmp/queued.out" -w '%{http_code}' "$url/v1/completions" \
    -d '{"prompt": "b", "max_tokens": 4, "temperature": 0}' >"$tmp/queued.code" &
queued_pid=$!
i=0
until grep -q '^bitnet_queue_length 1$' "$tmp/m2" 2>/dev/null || [ $i -ge 100 ]; do
    curl -s "$url/metrics" >"$tmp/m2"; sleep 0.05; i=$((i + 1)); done
req POST /v1/completions '{"prompt": "c", "max_tokens": 4}'
expect_code 503 "a full queue"
grep -qi '^Retry-After: [0-9]' "$hdr" && ok || fail "503 without Retry-After"
kill "$long_pid" 2>/dev/null      # the long stream's client goes away
wait "$queued_pid"
t1=$(date +%s.%N)
same "the queued request, once the slot was freed" "$(cat "$tmp/queued.code")" 200
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) < 10 else 1)' "$t0" "$t1"; then
    ok; else fail "the queued request waited $(python3 -c "print($t1 - $t0)") s"; fi
curl -s "$url/metrics" >"$out"
grep -q '^bitnet_generations_total{end="cancelled"} 1$' "$out" && ok ||
    fail "the stream whose client went away was not cancelled"

# --- SIGTERM with a stream running: cancelled within --shutdown-timeout, it ends as
# OpenAI clients expect a server-side cut to: a last chunk with a finish_reason
# ("stop"), then data: [DONE]; its tokens' logprobs join to its text; exit 0
curl -s -N "$url/v1/completions" -d '{"prompt": "a", "max_tokens": 2000, "stream": true, "ignore_eos": true, "logprobs": 1}' >"$tmp/long.out" &
long_pid=$!
sleep 0.5
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=""
same "exit status at SIGTERM with a running request" "$rc" 0
wait "$long_pid"
same "the stream cut at SIGTERM" "$(python3 -c 'import json, sys
ev = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l]
last = json.loads(ev[-2])["choices"][0]
body = [json.loads(e)["choices"][0] for e in ev[:-2]]
text = "".join(c["text"] for c in body)
toks = "".join("".join(c["logprobs"]["tokens"]) for c in body if c["logprobs"])
print(json.dumps([ev[-1], last["finish_reason"], last["text"], len(text) > 0, toks == text]), end="")' "$tmp/long.out")" \
     '["[DONE]", "stop", "", true, true]'
if grep -q '"error"' "$tmp/long.out"; then fail "an error event in the stream cut at SIGTERM"; else ok; fi
grep -q 'serve: stopped' "$tmp/server.err" && ok || fail "no 'serve: stopped'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
