#!/bin/sh
# test_cli_chat.sh - drives `bitnet chat` through scripted sessions on standard input:
# turns, the commands (/history, /save, /clear, /load, /stats, /help, unknown ones),
# multi-line input, dropping old turns when the context is full, a message too long for
# the context, bad files for /load, the template choice, and that a greedy session
# gives the same output twice. The model is `bitnet synth` with a small byte-level
# vocabulary put in by the Python below (synth's own vocabulary cannot spell text).
# Skipped (77) without python3.
set -u
BITNET=${BITNET:?set BITNET to the program}
command -v python3 >/dev/null 2>&1 || { echo "test_cli_chat: no python3: skipped"; exit 77; }
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out
err=$tmp/err

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# chat CODE DESCRIPTION INPUT -- ARGS...: runs `bitnet chat ARGS` on the text INPUT
chat() {
    code=$1; what=$2; input=$3; shift 4
    printf '%s' "$input" | "$BITNET" chat "$@" >"$out" 2>"$err"
    rc=$?
    if [ "$rc" -eq "$code" ]; then ok; else
        fail "$what: 'bitnet chat $*' exited $rc, expected $code"
        sed 's/^/  stderr: /' "$err" >&2
    fi
}

# grep_in FILE PATTERN DESCRIPTION (the replies of a random model are not text: -a)
grep_in() {
    if grep -a -q -- "$2" "$1"; then ok; else
        fail "$3: no '$2' in:"
        sed 's/^/  | /' "$1" >&2
    fi
}

# count_in FILE PATTERN N DESCRIPTION: PATTERN is on exactly N lines
count_in() {
    n=$(grep -a -c -- "$2" "$1")
    if [ "$n" -eq "$3" ]; then ok; else
        fail "$4: '$2' on $n lines, expected $3:"
        sed 's/^/  | /' "$1" >&2
    fi
}

# --- the model: synth's weights, a byte-level BPE vocabulary with LLaMA 3's special
# tokens, and a chat template that names <|start_header_id|> (llama3) or none
"$BITNET" synth "$tmp/s.gguf" --layers 2 --seed 3 >/dev/null || { echo "synth failed" >&2; exit 1; }
cat >"$tmp/vocab.py" <<'PY'
import struct, sys
src, dst, template = sys.argv[1:4]
d = open(src, "rb").read()
p = 0
def rd(fmt):
    global p
    v = struct.unpack_from(fmt, d, p)[0]
    p += struct.calcsize(fmt)
    return v
def rstr():
    global p
    n = rd("<Q")
    p += n
    return d[p - n:p]
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip(t):
    global p
    if t == 8:
        rstr()
    elif t == 9:
        et = rd("<I")
        for _ in range(rd("<Q")):
            skip(et)
    else:
        p += SIZES[t]
assert d[:4] == b"GGUF"
p = 4
ver, n_tensors, n_kv = rd("<I"), rd("<Q"), rd("<Q")
kvs, align, n_vocab = [], 32, 0
for _ in range(n_kv):
    start = p
    key = rstr()
    t = rd("<I")
    if key == b"general.alignment":
        align = struct.unpack_from("<I", d, p)[0]
    if key == b"tokenizer.ggml.tokens":
        n_vocab = struct.unpack_from("<Q", d, p + 4)[0]
    skip(t)
    if not key.startswith(b"tokenizer."):
        kvs.append(d[start:p])
infos_start = p
for _ in range(n_tensors):
    rstr()
    n_dims = rd("<I")
    p += 8 * n_dims + 12
infos, data = d[infos_start:p], d[(p + align - 1) // align * align:]

# GPT-2's byte-level alphabet: printable bytes stand for themselves, the others for
# U+0100 and up in byte order
byte_char, k = {}, 0
for b in range(256):
    if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255:
        byte_char[b] = chr(b)
    else:
        byte_char[b] = chr(256 + k)
        k += 1
specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|eot_id|>"]
space, letters = byte_char[32], "etaoinshrdlu"
pairs = [(space, c) for c in "abcdefghijklmnopqrstuvwxyz"]
pairs += [(a, b) for a in letters for b in letters]
pairs += [(space + a, b) for a in letters for b in letters]
pairs = pairs[:n_vocab - 256 - len(specials)]
tokens = [byte_char[b] for b in range(256)] + [a + b for a, b in pairs] + specials
merges = [a + " " + b for a, b in pairs]
types = [1] * (len(tokens) - len(specials)) + [3] * len(specials)
assert len(tokens) == n_vocab, (len(tokens), n_vocab)

def wstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b
def kv(key, t, payload):
    return wstr(key) + struct.pack("<I", t) + payload
def arr(key, et, items):
    body = b"".join(wstr(x) if et == 8 else struct.pack("<i", x) for x in items)
    return kv(key, 9, struct.pack("<IQ", et, len(items)) + body)
kvs += [kv("tokenizer.ggml.model", 8, wstr("gpt2")),
        kv("tokenizer.ggml.pre", 8, wstr("llama-bpe")),
        arr("tokenizer.ggml.tokens", 8, tokens),
        arr("tokenizer.ggml.token_type", 5, types),
        arr("tokenizer.ggml.merges", 8, merges),
        kv("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", tokens.index(specials[0]))),
        kv("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", tokens.index(specials[1]))),
        kv("tokenizer.ggml.add_bos_token", 7, b"\x01")]
if template == "llama3":
    kvs.append(kv("tokenizer.chat_template", 8, wstr(
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
        "<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}")))
head = b"GGUF" + struct.pack("<IQQ", ver, n_tensors, len(kvs)) + b"".join(kvs) + infos
head += b"\0" * (-len(head) % align)
open(dst, "wb").write(head + data)
PY
python3 "$tmp/vocab.py" "$tmp/s.gguf" "$tmp/m.gguf" llama3 &&
    python3 "$tmp/vocab.py" "$tmp/s.gguf" "$tmp/plain.gguf" none ||
    { echo "could not write the test models" >&2; exit 1; }
m=$tmp/m.gguf
"$BITNET" generate -m "$m" -p "hello there" -n 4 --temp 0 >"$out" 2>"$err" &&
    ok || { fail "generate on the test model"; cat "$err" >&2; }

# --- usage
chat 0 "--help" "" -- --help
grep_in "$out" "usage: bitnet chat" "help shows usage"
grep_in "$out" "/save FILE" "help lists the commands"
export BITNET_MODEL="$tmp/missing.gguf"     # without -m: this, not the shipped model
chat 1 "BITNET_MODEL names a missing file" "" --
unset BITNET_MODEL
grep_in "$err" "missing.gguf" "names the missing model"
chat 2 "bad -n" "" -- -m "$m" -n 0
chat 2 "unknown template" "" -- -m "$m" --template chatml
grep_in "$err" "unknown chat template 'chatml'" "names the unknown template"

# --- a whole session: two turns (the second on two lines), the commands, /exit
session='hello there
how are\
you today
/history
/save '"$tmp"'/c.json
/clear
/history
/load '"$tmp"'/c.json
/history
/stats
/exit
/history
'
chat 0 "scripted session" "$session" -- -m "$m" --temp 0 -n 8 --system "be brief"
cp "$out" "$tmp/first.out"
count_in "$out" "^user: hello there\$" 2 "both histories show the first message"
count_in "$out" "^user: how are\$" 2 "both histories show the second message"
count_in "$out" "^you today\$" 2 "the continued line is part of the second message"
count_in "$out" "^assistant: " 4 "both histories show the replies"
count_in "$out" "^system: be brief\$" 3 "the system message survives /clear and /load"
grep_in "$err" "^context: [0-9][0-9]* / 1024 tokens (5 messages)" "/stats shows the context use"
grep_in "$err" "tokens/s" "/stats shows the speed"
grep_in "$err" "^memory: peak RSS" "/stats shows memory"
grep_in "$err" "saved 5 messages" "/save reports"
grep_in "$err" "loaded 5 messages" "/load reports"
if python3 - "$tmp/c.json" <<'PY'
import json, sys
msgs = json.load(open(sys.argv[1], encoding="utf-8"))
assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"], msgs
assert msgs[0]["content"] == "be brief" and msgs[1]["content"] == "hello there", msgs
assert msgs[3]["content"] == "how are\nyou today", msgs
assert all(sorted(m) == ["content", "role"] for m in msgs), msgs
PY
then ok; else fail "/save wrote the conversation as JSON"; fi
if [ -z "$(ls "$tmp" | grep 'c.json.tmp')" ]; then ok; else fail "/save left a temporary file"; fi

# greedy: the same session gives the same output
chat 0 "the session again" "$session" -- -m "$m" --temp 0 -n 8 --system "be brief"
if cmp -s "$out" "$tmp/first.out"; then ok; else fail "a greedy session differs between runs"; fi

# the end of the input ends the session like /exit
chat 0 "end of input" "hello there
" -- -m "$m" --temp 0 -n 4
# without a template this version knows: llama3, with a notice
chat 0 "no template" "hello there
/history
" -- -m "$tmp/plain.gguf" --temp 0 -n 4
grep_in "$err" "using the llama3 template" "falls back to llama3"
grep_in "$out" "^user: hello there\$" "the fallback chats"

# --- commands and messages that fail: a message, the session goes on, exit status 1
printf '[{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}]' >"$tmp/role.json"
printf '{"role": "user", "content": "x"}' >"$tmp/object.json"
printf '[{"role": "user", "content": "x"' >"$tmp/broken.json"
printf '[{"role": "user", "content": 3}]' >"$tmp/number.json"
printf '[{"role": "user", "content": "x"}, {"role": "system", "content": "y"}]' >"$tmp/sys.json"
chat 1 "bad commands" "hello there
/load $tmp/role.json
/load $tmp/object.json
/load $tmp/broken.json
/load $tmp/number.json
/load $tmp/sys.json
/load $tmp/none.json
/load
/bogus
/history extra
//slash
/history
" -- -m "$m" --temp 0 -n 4
grep_in "$err" "role.json: message 2 has a role that is not system, user or assistant" \
    "names the bad message"
grep_in "$err" "object.json: not a JSON array" "refuses an object"
grep_in "$err" "broken.json: line 1" "refuses bad JSON with its place"
grep_in "$err" "number.json: message 1 needs the strings" "refuses a number content"
grep_in "$err" "sys.json: message 2 is a system message after the first" "system only first"
grep_in "$err" "none.json" "names a missing file"
grep_in "$err" "/load needs a file name" "/load without a file"
grep_in "$err" "unknown command '/bogus'; /help lists the commands" "unknown command hint"
grep_in "$err" "/history takes no argument" "extra argument"
count_in "$out" "^user: hello there\$" 1 "the conversation stays after bad /loads"
grep_in "$out" "^user: /slash\$" "// sends a message starting with /"

# --- a context too small for the message: refused, the session goes on
chat 1 "message longer than the context" "hello there, how are you doing today?
/history
hi
hello there, how are you doing today?
/history
" -- -m "$m" --temp 0 -n 2 -c 24
grep_in "$err" "the message does not fit: with the template it is [0-9]* tokens, and the context holds 24" \
    "says the message does not fit"
grep_in "$out" "(the conversation is empty)" "the refused message is not kept"
grep_in "$out" "^user: hi\$" "a short message still gets a reply"
count_in "$out" "^assistant: " 1 "a refused message leaves the earlier turns alone"
count_in "$out" "^user: hello there, how" 0 "a refused message is not kept"

# --- the conversation outgrows the context: the oldest turns go, the system stays
chat 0 "old turns dropped" "one two three four
five six seven eight
nine ten eleven twelve
thirteen fourteen
/history
/stats
" -- -m "$m" --temp 0 -n 8 -c 64 --system "be brief"
grep_in "$err" "dropped the oldest [0-9]* messages" "notice about dropped turns"
grep_in "$out" "^system: be brief\$" "the system message stays"
count_in "$out" "^user: one two three four\$" 0 "the oldest turn is gone"
grep_in "$out" "^user: thirteen fourteen\$" "the newest turn stays"

echo "test_cli_chat: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
