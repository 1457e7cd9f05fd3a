#!/bin/sh
# test_cli_habits.sh - what a careful user of the program relies on: one help text per
# command, output that cannot be written is an error, Ctrl-C says so (exit 130),
# llama.cpp's option habits (--opt=value, -s, -r, -sys, --seed -1, bench -o, -v after
# the command), and info --system --json.
set -u
BITNET=${BITNET:?set BITNET to the program}
passed=0
failed=0
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
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

grep_in() {
    if grep -a -q -- "$2" "$1"; then ok; else
        fail "$3: no '$2' in:"
        sed 's/^/  | /' "$1" >&2
    fi
}

grep_not() {
    if grep -a -q -- "$2" "$1"; then
        fail "$3: '$2' in:"
        sed 's/^/  | /' "$1" >&2
    else ok; fi
}

same_files() {
    if cmp -s "$1" "$2"; then ok; else fail "$3: $1 and $2 differ"; fi
}

m=$tmp/m.gguf
"$BITNET" synth "$m" --layers 2 --seed 5 --proj-scale 0.0625 >/dev/null 2>&1 ||
    { echo "synth failed" >&2; exit 1; }

# --- one help text per command: 'bitnet help CMD' is 'bitnet CMD --help', for every
# command 'bitnet help' lists (the tools for tests and benchmarks included)
"$BITNET" help >"$tmp/list" 2>"$err" || fail "bitnet help"
cmds=$(sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p' "$tmp/list")
n_cmds=$(echo "$cmds" | wc -w)
[ "$n_cmds" -ge 14 ] && ok || fail "bitnet help lists $n_cmds commands: $cmds"
for c in synth membw generate chat perplexity logits bench quantize; do
    echo "$cmds" | grep -qx "$c" && ok || fail "bitnet help does not list $c"
done
for c in $cmds; do
    "$BITNET" help "$c" >"$tmp/h1" 2>&1
    rc1=$?
    case $c in
        help) "$BITNET" help help >"$tmp/h2" 2>&1 ;;
        version) cp "$tmp/h1" "$tmp/h2" ;;
        *) "$BITNET" "$c" --help >"$tmp/h2" 2>&1 ;;
    esac
    rc2=$?
    if [ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] && cmp -s "$tmp/h1" "$tmp/h2" &&
        grep -q "^usage: bitnet $c" "$tmp/h1"; then ok; else
        fail "help for $c: 'bitnet help $c' ($rc1) and 'bitnet $c --help' ($rc2) differ"
        diff "$tmp/h1" "$tmp/h2" | head -5 >&2
    fi
done
"$BITNET" help generate >"$out"
for o in "-m, --model" "-c, --ctx-size" "--temp" "--top-k" "--lm-head" "--mmap" \
         "-s, --seed" "-r, --reverse-prompt"; do
    grep_in "$out" "^  $o" "help generate shows $o"
done
"$BITNET" help chat >"$out"
grep_in "$out" "^  -sys, --system-prompt" "help chat shows -sys"
grep_in "$out" "^  /save" "help chat shows the chat commands"
grep_in "$tmp/list" "run, train and quantize" "the tagline says what the program does"
grep_in "$tmp/list" "^  train  " "train is listed"

# --- output that cannot be written is an error (exit 1, the cause on stderr)
if [ -w /dev/full ]; then
    full() {
        what=$1; shift
        "$BITNET" "$@" >/dev/full 2>"$err" </dev/null
        rc=$?
        if [ "$rc" -eq 1 ] && grep -q "writing standard output: No space left" "$err"
        then ok; else
            fail "$what > /dev/full exited $rc"
            sed 's/^/  stderr: /' "$err" >&2
        fi
    }
    full "--help" --help
    full "help generate" help generate
    full "version" version
    full "info --system" info --system
    full "info --system --json" info --system --json
    full "info FILE" info "$m"
    full "generate" generate -m "$m" -p "hello world" -n 8 --temp 0
    full "generate --no-echo" generate -m "$m" -p "hello world" -n 8 --temp 0 --no-echo
    full "tokenize" tokenize -m "$m" -p "hello world"
    full "detokenize" detokenize -m "$m" --ids 1,2,3
    full "bench" bench -m "$m" -p 4 -n 2 -r 1 -t 1
    printf 'hello\n/exit\n' | "$BITNET" chat -m "$m" -n 4 --temp 0 >/dev/full 2>"$err"
    rc=$?
    if [ "$rc" -eq 1 ] && grep -q "writing standard output" "$err"; then ok; else
        fail "chat > /dev/full exited $rc"; sed 's/^/  stderr: /' "$err" >&2; fi
else
    echo "SKIP: /dev/full checks (no writable /dev/full)"
fi

# --- info --system --json: one JSON object that agrees with the text form
expect 0 "info --system --json" -- info --system --json
kern=$("$BITNET" info --system | sed -n 's/^kernels: *//p')
if python3 -c '
import json, sys, os
d = json.load(open(sys.argv[1]))
assert d["kernels"] == sys.argv[2], d["kernels"]
assert d["logical_cpus"] == os.cpu_count(), d["logical_cpus"]
assert d["threads"] >= 1 and d["memory_bytes"] > 0
assert "cpu" in d["devices"] and isinstance(d["features"], list)
' "$out" "$kern"; then ok; else fail "info --system --json fields"; fi
expect 2 "info --system --all" -- info --system --all

# --- --opt=value, -v after the command
expect 0 "greedy" -- generate -m "$m" -p "hello world" -n 12 --temp 0
cp "$out" "$tmp/g1"
expect 0 "--opt=value" -- generate --model="$m" --prompt="hello world" --n-predict=12 --temp=0
same_files "$tmp/g1" "$out" "--opt=value is --opt value"
expect 0 "a prompt that looks like an option" -- generate -m "$m" -p "--temp=5" -n 4 --temp 0 --no-echo
expect 0 "the same, split" -- generate -m "$m" -p "--temp=5" -n 4 --temp 0 --no-echo
expect 0 "-v after the command" -- info --system -v
grep_in "$out" "^kernels:" "-v after the command runs it"
expect 2 "--flag=value of a flag" -- generate -m "$m" -p hi --no-echo=1
expect 0 "plural" -- generate -m "$m" -p "hello world" -n 1 --temp 0
grep_in "$err" "^generation: 1 token in" "one token, singular"

# --- seeds: without --seed (or with -1) a random one, printed, which repeats the run
expect 0 "random seed" -- generate -m "$m" -p "hello world" -n 16 --temp 1 --top-k 0 --top-p 1 --min-p 0
seed=$(sed -n 's/^seed: \([0-9]*\) .*/\1/p' "$err")
if [ -n "$seed" ]; then ok; else fail "no 'seed: N' on stderr"; sed 's/^/  | /' "$err" >&2; fi
cp "$out" "$tmp/r1"
expect 0 "-s repeats it" -- generate -m "$m" -p "hello world" -n 16 --temp 1 --top-k 0 --top-p 1 --min-p 0 -s "${seed:-0}"
same_files "$tmp/r1" "$out" "the printed seed repeats the run"
grep_not "$err" "^seed:" "a given seed is not printed"
expect 0 "--seed -1" -- generate -m "$m" -p "hello world" -n 16 --temp 1 --seed -1
grep_in "$err" "^seed: [0-9]" "--seed -1 is random, printed"
expect 0 "greedy prints no seed" -- generate -m "$m" -p "hello world" -n 4 --temp 0
grep_not "$err" "^seed:" "greedy decoding prints no seed"
expect 2 "--seed -2" -- generate -m "$m" -p hi --seed -2

# --- -r is --stop, -sys is --system
expect 0 "--stop" -- generate -m "$m" -p "hello world" -n 64 --temp 0.9 --seed 11 --stop e
cp "$out" "$tmp/st"
expect 0 "-r" -- generate -m "$m" -p "hello world" -n 64 --temp 0.9 --seed 11 -r e
same_files "$tmp/st" "$out" "-r stops as --stop does"
printf 'hello\n/exit\n' | "$BITNET" chat -m "$m" -n 8 --temp 0 --system "be brief" >"$tmp/c1" 2>&1
printf 'hello\n/exit\n' | "$BITNET" chat -m "$m" -n 8 --temp 0 -sys "be brief" >"$tmp/c2" 2>&1
same_files "$tmp/c1" "$tmp/c2" "-sys is --system"
printf '/history\n/exit\n' | "$BITNET" chat -m "$m" --system-prompt="be brief" >"$tmp/c3" 2>&1
grep_in "$tmp/c3" "be brief" "--system-prompt=TEXT sets the system message"

# --- bench -o md|json|csv
expect 0 "bench -o csv" -- bench -m "$m" -p 4 -n 2 -r 1 -t 1,2 -o csv
head -1 "$out" | grep -q "^model,model_type,model_name,model_size,.*,threads,test,.*avg_ts,stddev_ts$" &&
    ok || fail "bench csv header: $(head -1 "$out")"
[ "$(wc -l <"$out")" -eq 5 ] && ok || fail "bench csv: $(wc -l <"$out") lines, expected 1 + 4"
if python3 -c '
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["test"] for r in rows] == ["pp4", "tg2", "pp4", "tg2"], rows
assert [r["threads"] for r in rows] == ["1", "1", "2", "2"]
assert all(float(r["avg_ts"]) > 0 for r in rows)
' "$out"; then ok; else fail "bench csv rows"; fi
expect 0 "bench -o json" -- bench -m "$m" -p 0 -n 2 -r 1 -t 1 -o json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[0]["test"]=="tg2"' "$out" &&
    ok || fail "bench -o json"
expect 0 "bench -o md" -- bench -m "$m" -p 0 -n 2 -r 1 -t 1 -o md
grep_in "$out" "^| model |" "bench -o md is the table"
expect 2 "bench -o xml" -- bench -m "$m" -o xml

# --- Ctrl-C: generate and perplexity stop, say so, and exit 130
slow=$tmp/slow.gguf
"$BITNET" synth "$slow" --layers 8 --embd 1024 --ff 2048 --heads 8 --heads-kv 4 \
    --ctx 8192 --vocab 2048 --proj-scale 0.0625 >/dev/null 2>&1 || fail "synth slow"
# wait_for FILE PATTERN: up to 60 s until FILE has PATTERN
wait_for() {
    i=0
    while ! grep -a -q -- "$2" "$1" 2>/dev/null && [ $i -lt 600 ]; do
        sleep 0.1; i=$((i + 1))
    done
}
"$BITNET" generate -m "$slow" -p "hello" -n -1 --ignore-eos --temp 0 -t 1 \
    >"$out" 2>"$err" </dev/null &
pid=$!
# the prompt is echoed before generation starts: wait for more than it
i=0
while [ "$(wc -c <"$out")" -lt 64 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
kill -INT "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 130 ] && ok || fail "generate after Ctrl-C exited $rc, expected 130"
grep_in "$err" "stopped at Ctrl-C" "generate says it was interrupted"
grep_in "$err" "^generation: [0-9]* tokens" "and reports what it did"

seq 1 4000 | sed 's/.*/the quick brown fox jumps over the lazy dog &/' >"$tmp/long.txt"
"$BITNET" perplexity -m "$slow" -f "$tmp/long.txt" -c 256 -t 1 >"$out" 2>"$err" </dev/null &
pid=$!
wait_for "$err" "per window"
kill -INT "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 130 ] && ok || fail "perplexity after Ctrl-C exited $rc, expected 130"
grep_in "$err" "interrupted after [0-9]* of [0-9]* windows" "perplexity says where it stopped"
grep_not "$out" "Final estimate" "no final estimate from a partial run"

echo "test_cli_habits: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
