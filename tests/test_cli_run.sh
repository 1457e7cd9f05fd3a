#!/bin/sh
# test_cli_run.sh - generate, perplexity and logits driven as a user would, on small
# synthetic models: what they print, reproducibility, stop texts, and every kind of bad
# input (a clear message and a non-zero exit, no partial output file).
set -u
BITNET=${BITNET:?set BITNET to the program}
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out
err=$tmp/err

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# expect CODE DESCRIPTION -- ARGS...: runs the program, checks the exit code
expect() {
    code=$1; what=$2; shift 3
    "$BITNET" "$@" >"$out" 2>"$err" </dev/null
    rc=$?
    if [ "$rc" -eq "$code" ]; then ok; else
        fail "$what: 'bitnet $*' exited $rc, expected $code"
        sed 's/^/  stderr: /' "$err" >&2
    fi
}

# grep_in FILE PATTERN DESCRIPTION (the text of a random model is not text: -a)
grep_in() {
    if grep -a -q -- "$2" "$1"; then ok; else
        fail "$3: no '$2' in:"
        sed 's/^/  | /' "$1" >&2
    fi
}

same_files() {
    if cmp -s "$1" "$2"; then ok; else fail "$3: $1 and $2 differ"; fi
}

m=$tmp/m.gguf
"$BITNET" synth "$m" --layers 2 --seed 5 --proj-scale 0.0625 >/dev/null 2>&1 ||
    { echo "synth failed" >&2; exit 1; }

# --- generate
expect 0 "generate greedy" -- generate -m "$m" -p "hello world" -n 24 --temp 0
cp "$out" "$tmp/g1"
cp "$err" "$tmp/g1.err"
grep_in "$out" "^hello world" "the prompt is echoed"
grep_in "$err" "prompt: [0-9]* tokens in .* tokens/s" "prompt speed reported"
grep_in "$err" "generation: 24 tokens in .* tokens/s" "generation speed reported"
grep_in "$err" "memory: peak RSS .*KV cache" "memory reported"
expect 0 "generate greedy again, 2 threads" -- generate -m "$m" -p "hello world" -n 24 --temp 0 -t 2
same_files "$tmp/g1" "$out" "greedy text is the same for 1 and 2 threads and across runs"
expect 0 "generate with a seed" -- generate -m "$m" -p "hello world" -n 24 --temp 1.0 --seed 42 --top-k 0 --top-p 1 --min-p 0
cp "$out" "$tmp/s1"
expect 0 "the same seed" -- generate -m "$m" -p "hello world" -n 24 --temp 1.0 --seed 42 --top-k 0 --top-p 1 --min-p 0
same_files "$tmp/s1" "$out" "a seed makes sampling reproducible"
expect 0 "another seed" -- generate -m "$m" -p "hello world" -n 24 --temp 1.0 --seed 43 --top-k 0 --top-p 1 --min-p 0
if cmp -s "$tmp/s1" "$out"; then fail "another seed gives another text"; else ok; fi
expect 0 "--no-echo" -- generate -m "$m" -p "hello world" -n 24 --temp 0 --no-echo
if grep -a -q "^hello world" "$out"; then fail "--no-echo prints the prompt"; else ok; fi

# a stop text taken from the middle of the greedy continuation: the output ends right
# before its first occurrence, and the stop text itself is not printed
cont=$(tail -c +12 "$tmp/g1" | head -c 40 | tr -d '\n')
stop=$(printf '%s' "$cont" | cut -c 9-11)
if [ -n "$stop" ]; then
    expect 0 "--stop" -- generate -m "$m" -p "hello world" -n 24 --temp 0 --stop "$stop"
    grep_in "$err" "stopped at a stop text" "stops at the stop text"
    full=$(tail -c +12 "$tmp/g1")
    got=$(tail -c +12 "$out" | head -c -1)
    want=${full%%"$stop"*}
    if [ "$got" = "$want" ]; then ok; else fail "--stop: got '$got', want '$want'"; fi
fi

# the embedding example (examples/generate.c) prints the same greedy text
if [ -n "${EXAMPLE:-}" ]; then
    expect 0 "--no-echo, 16 tokens" -- generate -m "$m" -p "hello world" -n 16 --temp 0 --no-echo
    if "$EXAMPLE" "$m" "hello world" 16 > "$tmp/ex" 2> "$err"; then ok; else fail "example failed"; fi
    same_files "$out" "$tmp/ex" "examples/generate.c prints what bitnet generate prints"
fi

# errors
expect 1 "empty prompt" -- generate -m "$m" -p ""
grep_in "$err" "the prompt is empty" "empty prompt message"
long=$(yes "hello world" | head -n 40 | tr '\n' ' ')
expect 1 "prompt longer than the context" -- generate -m "$m" -p "$long" -c 32
grep_in "$err" "tokens but the context holds 32 positions" "context message"
BITNET_MODEL=$tmp/none.gguf; export BITNET_MODEL     # without -m: this, not the shipped model
expect 1 "a BITNET_MODEL that does not exist" -- generate -p hi
unset BITNET_MODEL
grep_in "$err" "none.gguf" "names the missing BITNET_MODEL"
expect 2 "no prompt" -- generate -m "$m"
expect 2 "bad temperature" -- generate -m "$m" -p hi --temp -1
expect 2 "bad top-p" -- generate -m "$m" -p hi --top-p 2
expect 2 "bad kv type" -- generate -m "$m" -p hi --kv q8
expect 2 "unknown option" -- generate -m "$m" -p hi --frobnicate
expect 1 "missing model file" -- generate -m "$tmp/none.gguf" -p hi
grep_in "$err" "none.gguf" "names the missing file"
head -c 100000 "$m" > "$tmp/trunc.gguf"
expect 1 "truncated model" -- generate -m "$tmp/trunc.gguf" -p hi
grep_in "$err" "trunc.gguf" "names the truncated file"
"$BITNET" synth "$tmp/llama.gguf" --layers 1 --arch llama >/dev/null 2>&1
sed 's/llama\.embedding_length/llama.embedding_lengtX/' "$tmp/llama.gguf" > "$tmp/nokey.gguf"
expect 1 "missing hyperparameter" -- generate -m "$tmp/nokey.gguf" -p hi
grep_in "$err" "metadata key 'llama.embedding_length' is missing" "names the missing key"
sed 's/general\.architecture\(.\{12\}\)llama/general.architecture\1gpt-j/' "$tmp/llama.gguf" > "$tmp/arch.gguf"
expect 1 "unknown architecture" -- generate -m "$tmp/arch.gguf" -p hi
grep_in "$err" "architecture 'gpt-j' is not supported" "names the architecture"
sed 's/blk\.0\.ffn_up\.weight/blk.0.ffn_uq.weight/' "$tmp/llama.gguf" > "$tmp/notensor.gguf"
expect 1 "missing tensor" -- generate -m "$tmp/notensor.gguf" -p hi
grep_in "$err" "tensor 'blk.0.ffn_up.weight' is missing" "names the missing tensor"

# --- logits
expect 0 "logits --all" -- logits -m "$m" --tokens 1,2,3,300,4 --all -o "$tmp/l.f32"
size=$(wc -c < "$tmp/l.f32")
if [ "$size" -eq $((5 * 512 * 4)) ]; then ok; else fail "logits --all: $size bytes, want 10240"; fi
expect 0 "logits last" -- logits -m "$m" --tokens 1,2,3,300,4 -o "$tmp/l1.f32"
tail -c 2048 "$tmp/l.f32" > "$tmp/l_last.f32"
same_files "$tmp/l_last.f32" "$tmp/l1.f32" "the last row of --all is the last-position logits"
expect 0 "logits of text" -- logits -m "$m" -p "hello world" -o "$tmp/lt.f32" --greedy 4
grep_in "$out" "^argmax_last [0-9]*$" "argmax printed"
grep_in "$out" "^greedy [0-9]*,[0-9]*,[0-9]*,[0-9]*$" "greedy ids printed"
expect 1 "token out of range" -- logits -m "$m" --tokens 1,512 -o "$tmp/bad.f32"
grep_in "$err" "token 512 (at 1) is not in the vocabulary of 512" "names the token"
if [ ! -e "$tmp/bad.f32" ]; then ok; else fail "no output after an error"; fi
expect 2 "bad token list" -- logits -m "$m" --tokens 1,x -o "$tmp/bad.f32"
expect 1 "logits onto a device" -- logits -m "$m" --tokens 1 -o /dev/null
if [ -c /dev/null ]; then ok; else fail "/dev/null is no longer a device"; fi
expect 1 "synth onto a device" -- synth /dev/null
if [ -c /dev/null ]; then ok; else fail "/dev/null is no longer a device"; fi

# --- perplexity
yes "the cat sat on the mat and the dog ate the hat" | head -n 60 > "$tmp/text.txt"
expect 0 "perplexity" -- perplexity -m "$m" -f "$tmp/text.txt" -c 64
grep_in "$out" "^\[1\][0-9.]*,\[2\][0-9.]*," "running estimates per window"
grep_in "$out" "^Final estimate: PPL = [0-9.]* +/- [0-9.]*$" "final estimate with its error"
expect 1 "text too short" -- perplexity -m "$m" -f "$tmp/text.txt" -c 4096
grep_in "$err" "needs at least 8192" "says how many tokens are needed"
expect 1 "missing text" -- perplexity -m "$m" -f "$tmp/none.txt"

# --- batch: every completion is what generate prints alone for its prompt
here=$(cd "$(dirname "$0")" && pwd)
printf 'The capital of France is\nOnce upon a time\n\n  \nhello world\nA B C D\nthe quick brown fox jumps\n' \
    > "$tmp/prompts.txt"
expect 0 "batch greedy" -- batch -m "$m" -f "$tmp/prompts.txt" --parallel 2 -n 12 --temp 0
if python3 "$here/batch_check.py" "$BITNET" "$m" "$out" 5 -n 12 --temp 0
then ok; else fail "batch greedy: completions differ from generate's"; fi
grep_in "$err" "^batch: 5 prompts, 2 at a time: .* tokens/s generated" "batch summary"
expect 0 "batch sampled" -- batch -m "$m" -f "$tmp/prompts.txt" --parallel 8 -n 16 \
    --temp 0.9 --top-k 30 --seed 11 --stop e
if python3 "$here/batch_check.py" "$BITNET" "$m" "$out" 5 -n 16 --temp 0.9 --top-k 30 \
    --seed 11 --stop e
then ok; else fail "batch sampled with a stop text: completions differ from generate's"; fi
grep_in "$err" "^batch: 5 prompts, 5 at a time" "batch: --parallel capped at the prompts"
printf '{"prompt": "two\\nlines"}\n{"prompt": "x", "other": 1}\n' > "$tmp/prompts.jsonl"
expect 0 "batch --jsonl" -- batch -m "$m" -f "$tmp/prompts.jsonl" --jsonl -n 4 --temp 0
grep_in "$out" '"index":0,"prompt":"two\\nlines"' "batch --jsonl: a prompt with a newline"
grep_in "$out" '"index":1,"prompt":"x",.*"n_generated":4,"stop":"length"' "batch --jsonl: fields"
printf '{"prompt": 3}\n' > "$tmp/bad.jsonl"
expect 1 "batch bad json line" -- batch -m "$m" -f "$tmp/bad.jsonl" --jsonl
grep_in "$err" 'bad.jsonl:1: no "prompt" string' "batch: the bad line named"
printf '\n \n' > "$tmp/empty.txt"
expect 1 "batch without prompts" -- batch -m "$m" -f "$tmp/empty.txt"
grep_in "$err" "holds no prompt" "batch: no prompt"
expect 2 "batch without -f" -- batch -m "$m"
expect 2 "batch bad parallel" -- batch -m "$m" -f "$tmp/prompts.txt" --parallel 0
expect 1 "batch missing file" -- batch -m "$m" -f "$tmp/nope.txt"

# --- bench
expect 0 "bench table" -- bench -m "$m" -p 16 -n 8 -t 1,2 -r 2
grep_in "$out" "| 1 | pp16 | [0-9.]* ± [0-9.]* |" "pp row at 1 thread"
grep_in "$out" "| 2 | tg8 | [0-9.]* ± [0-9.]* |" "tg row at 2 threads"
expect 0 "bench --json" -- bench -m "$m" -p 0 -n 8 -t 2 -r 2 --json
if python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d) == 1, d
r = d[0]
assert r["test"] == "tg8" and r["n_prompt"] == 0 and r["n_gen"] == 8 and r["threads"] == 2
assert r["tokens_per_second"] > 0 and r["stddev"] >= 0 and len(r["samples_ts"]) == 2
PY
then ok; else fail "bench --json: fields"; fi
expect 0 "bench -d" -- bench -m "$m" -p 8 -n 4 -d 0,16 -t 1 -r 1 --json
if python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
got = [(r["test"], r["n_prompt"], r["n_gen"], r["n_depth"]) for r in d]
assert got == [("pp8", 8, 0, 0), ("tg4", 0, 4, 0), ("pp8 @ d16", 8, 0, 16),
               ("tg4 @ d16", 0, 4, 16)], got
PY
then ok; else fail "bench -d: tests named and counted as llama-bench does"; fi
expect 0 "bench -d table" -- bench -m "$m" -p 0 -n 4 -d 24 -t 1 -r 1
grep_in "$out" "| 1 | tg4 @ d24 | [0-9.]* ± [0-9.]* |" "depth row"
expect 2 "bench bad depth list" -- bench -m "$m" -d 8,-1
expect 2 "bench with nothing to do" -- bench -m "$m" -p 0 -n 0
expect 2 "bench bad thread list" -- bench -m "$m" -t 1,x
expect 0 "bench --parallel" -- bench -m "$m" -p 4 -n 3 -d 0,8 --parallel 1,3 -t 2 -r 1 --json
if python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
got = [(r["test"], r["n_parallel"], r["n_depth"]) for r in d]
assert got == [("pp4", 1, 0), ("tg3", 1, 0), ("pp4 @ d8", 1, 8), ("tg3 @ d8", 1, 8),
               ("pp4", 3, 0), ("tg3", 3, 0), ("pp4 @ d8", 3, 8), ("tg3 @ d8", 3, 8)], got
assert all(r["tokens_per_second"] > 0 for r in d)
PY
then ok; else fail "bench --parallel: one record per sequence count, n_parallel in each"; fi
expect 0 "bench --parallel table" -- bench -m "$m" -p 0 -n 2 --parallel 2 -t 1 -r 1
grep_in "$out" "| threads | parallel | test | t/s |" "parallel column"
grep_in "$out" "| 1 | 2 | tg2 | [0-9.]* ± [0-9.]* |" "parallel row"
expect 2 "bench bad parallel list" -- bench -m "$m" --parallel 0
expect 2 "bench parallel over the limit" -- bench -m "$m" --parallel 257

# --- membw: six read methods, each named and measured; the headline is the best of them
expect 0 "membw" -- membw --mib 8 --repeat 1 -t 2
if python3 - "$out" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
head = re.match(r"read bandwidth: ([0-9.]+) GB/s \(2 threads, 8 MiB, best of 1; (.+)\)$", lines[0])
rows = [re.match(r"  (.+?) +([0-9.]+) GB/s$", l) for l in lines[1:]]
assert head and len(rows) == 6 and all(rows), lines
names = [r.group(1) for r in rows]
assert len(set(names)) == 6 and sum("huge pages" in n for n in names) == 3, names
best = max(rows, key=lambda r: float(r.group(2)))
assert head.group(1) == best.group(2) and head.group(2) == best.group(1), (head.groups(), best.groups())
PY
then ok; else fail "membw: six methods, the headline their best"; fi
expect 2 "membw below 1 MiB" -- membw --mib 0

# --- bench --kernels: the rows, and the bytes per token worked out here from the shapes
# (2B-4T: 30 layers of 2560x2560 q/o, 2560x640 k/v, three 2560x6912 FFN matrices, each
# i2_s: n/4 bytes + a 32-byte tail; a 128256 x 2560 f16 output layer)
expect 0 "bench --kernels" -- bench --kernels --mib 16 -r 1 -t 1
mb=$(python3 -c "print('%.1f' % ((30 * (((2560*2560*2 + 2560*640*2 + 3*2560*6912) // 4) + 7*32) + 128256*2560*2) / 1e6))")
grep_in "$out" "2B-4T shapes, i2_s projections, f16 output, $mb MB read per token" "kernels: bytes"
for k in i2_s tq2_0 tq1_0 f16 q8_0 q6_K; do
    grep_in "$out" "^| 1 | $k | [0-9][0-9.]* | [0-9][0-9.]* | [0-9][0-9.]* |" "kernels: $k row"
done
grep_in "$out" "^| 1 | (memory read) | [0-9][0-9.]* | 1.00 |" "kernels: read bandwidth row"
grep_in "$out" "^| 1 | decode limit of the model | [0-9][0-9.]* tok/s | kernels alone" "kernels: limit"
# the prefill rates beside the int8 multiply-add peak: each int8 kernel's share is its
# GMAC/s over the peak's (worked out here from the printed figures); f16 has none
# (the amx family names it the vector units' peak: its prefill runs on AMX tiles)
grep_in "$out" "^| 1 | (int8 multiply-add peak[^)]*) | | | [0-9][0-9.]* | 1.00 |" "kernels: int8 peak row"
if python3 - "$out" <<'PY'
import sys
rows = [[c.strip() for c in l.strip().strip('|').split('|')] for l in open(sys.argv[1])
        if l.startswith('| 1 |')]
peak = [float(r[4]) for r in rows if r[1].startswith('(int8 multiply-add peak')][0]
shares = {r[1]: (float(r[4]), r[5]) for r in rows
          if r[1] in ('i2_s', 'tq2_0', 'tq1_0', 'f16', 'q8_0', 'q6_K')}
assert len(shares) == 6, shares
assert shares['f16'][1] == '', shares
for k, (gmac, share) in shares.items():
    if k != 'f16':
        # the share is printed to 0.005, the rates to 0.05 each: the quotient of the
        # printed rates is off by up to (0.05 + 0.05 * gmac / peak) / peak (and more
        # than the share's rounding where the share is large, as on AMX tiles)
        tol = 0.005 + (0.06 + 0.06 * gmac / peak) / peak
        assert abs(float(share) - gmac / peak) <= tol, (k, gmac, peak, share)
# the prefill limit: the 2B-4T projections' weights, one multiply-add each per token, at
# the peak; the kernels alone: all of them at the i2_s rate
macs = 30 * (2 * 2560 * 2560 + 2 * 2560 * 640 + 3 * 2560 * 6912)
lim = [r for r in rows if r[1] == 'prefill limit of the model'][0]
want = peak * 1e9 / macs
got = float(lim[2].split()[0])
assert abs(got - want) <= 0.051 + 0.05e9 / macs, (got, want)   # both printed rounded
alone = float(lim[3].split(':')[1].split()[0])
want_alone = shares['i2_s'][0] * 1e9 / macs
assert abs(alone - want_alone) <= 0.051 + 0.05e9 / macs, (alone, want_alone)
PY
then ok; else fail "kernels: each int8 kernel's share of the int8 peak, the prefill limit"; fi
expect 0 "bench --kernels -m" -- bench --kernels -m "$m" --mib 16 -r 1 -t 1
"$BITNET" info --json "$m" > "$tmp/info.json"
mb=$(python3 -c "import json,sys; print('%.1f' % (sum(t['bytes'] for t in json.load(open(sys.argv[1]))['tensors'] if len(t['shape']) > 1) / 1e6))" "$tmp/info.json")
grep_in "$out" "$m, $mb MB read per token" "kernels: the model's bytes"
expect 2 "bench --kernels --json" -- bench --kernels --json

# --- the output layer kept in q8_0
expect 0 "generate --lm-head q8_0" -- -v generate -m "$m" -p "hello" -n 4 --temp 0 --lm-head q8_0
grep_in "$err" "q8_0 output (converted from f16 at load" "lm-head: reported at load"
grep_in "$err" "converted at load" "lm-head: in the memory line"
expect 2 "generate --lm-head q4_0" -- generate -m "$m" -p "hello" --lm-head q4_0
"$BITNET" synth "$tmp/q6.gguf" --embd-type q6_k > /dev/null
expect 1 "--lm-head q8_0 of a q6_K layer" -- generate -m "$tmp/q6.gguf" -p "hello" --lm-head q8_0
grep_in "$err" "only a float" "lm-head: why not"

# --- the file mapped or read into memory: the same text, each reported as such
grep_in "$tmp/g1.err" "model file .* (mapped)" "a small file is mapped by default"
expect 0 "generate --no-mmap" -- generate -m "$m" -p "hello world" -n 24 --temp 0 --no-mmap
same_files "$tmp/g1" "$out" "--no-mmap gives the same text"
grep_in "$err" "model file .* (read into memory, " "--no-mmap: reported"
expect 0 "generate --mmap" -- generate -m "$m" -p "hello world" -n 24 --temp 0 --mmap
same_files "$tmp/g1" "$out" "--mmap gives the same text"
grep_in "$err" "model file .* (mapped)" "--mmap: reported"
expect 0 "bench --no-mmap --json" -- bench -m "$m" -p 0 -n 2 -r 1 -t 1 --no-mmap --json
grep_in "$out" '"use_mmap": false' "bench --no-mmap: use_mmap false"
expect 0 "bench --mmap --json" -- bench -m "$m" -p 0 -n 2 -r 1 -t 1 --mmap --json
grep_in "$out" '"use_mmap": true' "bench --mmap: use_mmap true"

# --- tq1_0 projections held as tq2_0 and then in i2_s's layout (the default), as tq2_0
# (--keep-tq2) or kept: the same text
"$BITNET" synth "$tmp/tq1.gguf" --layers 2 --seed 5 --type tq1_0 >/dev/null 2>&1
expect 0 "generate a tq1_0 model" -- -v generate -m "$tmp/tq1.gguf" -p "hello" -n 12 --temp 0
cp "$out" "$tmp/tq1a"
grep_in "$err" "tq1_0 projections (held as i2_s)" "tq1_0: held as i2_s, reported"
grep_in "$err" "converted at load" "tq1_0: the converted memory reported"
expect 0 "generate a tq1_0 model --keep-tq2" -- -v generate -m "$tmp/tq1.gguf" -p "hello" -n 12 --temp 0 --keep-tq2
same_files "$tmp/tq1a" "$out" "--keep-tq2 gives the same text"
grep_in "$err" "tq1_0 projections (held as tq2_0)" "tq1_0 --keep-tq2: held as tq2_0, reported"
expect 0 "generate a tq1_0 model --keep-tq1" -- -v generate -m "$tmp/tq1.gguf" -p "hello" -n 12 --temp 0 --keep-tq1
same_files "$tmp/tq1a" "$out" "--keep-tq1 gives the same text"
if grep -q "held as" "$err"; then fail "--keep-tq1: still held as i2_s"; else ok; fi

# --- tq2_0 projections with one scale a row held in i2_s's layout, or kept
"$BITNET" synth "$tmp/tq2.gguf" --layers 2 --seed 6 --type tq2_0 >/dev/null 2>&1
expect 0 "generate a tq2_0 model" -- -v generate -m "$tmp/tq2.gguf" -p "hello" -n 12 --temp 0
cp "$out" "$tmp/tq2a"
grep_in "$err" "tq2_0 projections (held as i2_s)" "tq2_0: held as i2_s, reported"
expect 0 "generate a tq2_0 model --keep-tq2" -- -v generate -m "$tmp/tq2.gguf" -p "hello" -n 12 --temp 0 --keep-tq2
same_files "$tmp/tq2a" "$out" "--keep-tq2 gives the same text"
if grep -q "held as" "$err"; then fail "--keep-tq2: still held as i2_s"; else ok; fi
expect 0 "bench --kernels -m a tq2_0 model" -- bench --kernels -m "$tmp/tq2.gguf" --mib 16 -r 1 -t 1
grep_in "$out" "$tmp/tq2.gguf (tq2_0 projections held as i2_s)" "kernels: the projections read as held"

echo "test_cli_run: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
