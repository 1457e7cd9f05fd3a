#!/bin/sh
# test_cli_files.sh - the files the program writes (quantize, synth, logits -o, chat's
# /save): a quantize or synth killed mid-write by SIGKILL, SIGINT, SIGTERM or SIGHUP
# leaves no file at all, and an existing target byte for byte as it was; the same for
# the named-temporary fallback (BITNET_NO_O_TMPFILE=1) on the signals a handler sees;
# modes 0666 less the umask; general.file_type of each type quantize writes;
# --per-channel refused where it cannot apply; `logits -o -`; a missing directory and
# a full disk (played by `ulimit -f`) are errors that name the path and leave nothing.
#
# The kills hit a quantize of a synthetic model with the 2B-4T layer shapes (2 layers,
# an 8,000-token vocabulary; the full 2B-4T file takes ~25 s to make) to f16: a 320 MB
# write that takes a few tenths of a second. Some signals come at fixed
# times after the start (during the conversion, or the write), the others a set time
# after the program opened its output, found in /proc/PID/fd. The process is stopped
# (SIGSTOP) at that moment, checked (still writing? what does the directory show?),
# sent the signal and continued, so that the signal lands where the test looked.
set -u
BITNET=${BITNET:?set BITNET to the program}
passed=0
failed=0
notes=0
tmp=$(mktemp -d)
tmp=$(cd "$tmp" && pwd -P)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out
err=$tmp/err

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# expect CODE DESCRIPTION -- ARGS...: runs `bitnet ARGS`, checks the exit code
expect() {
    code=$1; what=$2; shift 3
    "$BITNET" "$@" >"$out" 2>"$err"
    rc=$?
    if [ "$rc" -eq "$code" ]; then ok; else
        fail "$what: 'bitnet $*' exited $rc, expected $code"
        sed 's/^/  stderr: /' "$err" >&2
    fi
}

grep_in() {
    if grep -q -- "$2" "$1"; then ok; else
        fail "$3: no '$2' in:"
        sed 's/^/  | /' "$1" >&2
    fi
}

# same DESCRIPTION ACTUAL EXPECTED
same() {
    if [ "$2" = "$3" ]; then ok; else fail "$1: '$2', expected '$3'"; fi
}

# empty_dir DIR DESCRIPTION: DIR holds nothing at all
empty_dir() {
    if [ -z "$(ls -A "$1")" ]; then ok; else fail "$2: left $(ls -A "$1" | tr '\n' ' ')"; fi
}

mode() { stat -c %a "$1"; }
file_type() { "$BITNET" info "$1" | awk '$1 == "general.file_type" { print $3 }'; }

# A background job of a non-interactive shell starts with SIGINT ignored, and the
# program keeps an ignored signal ignored; env --default-signal undoes that.
if env --default-signal=INT true 2>/dev/null; then dfl="env --default-signal=INT"; else
    dfl=""; echo "test_cli_files: env has no --default-signal: SIGINT cases skipped"; fi

# --- models
"$BITNET" synth "$tmp/m.gguf" --seed 7 >/dev/null 2>&1 || { echo "synth failed" >&2; exit 1; }
"$BITNET" synth "$tmp/big.gguf" --preset 2b-4t --layers 2 --vocab 8000 >/dev/null 2>&1 ||
    { echo "synth of the big model failed" >&2; exit 1; }

# --- killed while writing
# open_in PID DIR: PID has a file open in DIR (its output, being written)
open_in() {
    for fd in /proc/$1/fd/*; do
        case $(readlink "$fd" 2>/dev/null) in "$2"/*) return 0 ;; esac
    done
    return 1
}

# writing_in PID DIR: waits until open_in; false when PID ended first
writing_in() {
    i=0
    while [ $i -lt 3000 ]; do
        open_in "$1" "$2" && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.01
        i=$((i + 1))
    done
    return 1
}

mid_write=0
tried=0
# kill_run SIG WHEN DIR SEEN CMD...: runs CMD in the background, stops it at WHEN
# ("S": S seconds after the start; "write+S": S seconds after it opened its output),
# sends SIG, continues it and waits. SEEN: what DIR must show while the output is being
# written ("" nothing but an existing target, "named": also one named temporary).
# Then DIR must hold nothing but an existing target, unchanged, unless the signal
# came after the writing was over (noted, not checked).
kill_run() {
    sig=$1; when=$2; dir=$3; seen=$4; shift 4
    [ "$sig" = INT ] && [ -z "$dfl" ] && return
    tried=$((tried + 1))
    [ -e "$dir/o.gguf" ] && cp "$dir/o.gguf" "$tmp/before"
    $dfl "$@" >/dev/null 2>"$err" &
    pid=$!
    case $when in
        write+*) writing_in $pid "$dir" && sleep "${when#write+}" ;;
        *) sleep "$when" ;;
    esac
    writing=
    if kill -STOP $pid 2>/dev/null; then
        if open_in $pid "$dir"; then
            writing=yes
            mid_write=$((mid_write + 1))
            names=$(ls -A "$dir" | grep -v '^o\.gguf$' | tr '\n' ' ')
            case $seen in
                named) case $names in "o.gguf.tmp."*) ok ;;
                           *) fail "SIG$sig at $when: no named temporary while writing: '$names'" ;;
                       esac ;;
                *) same "SIG$sig at $when: names visible while writing" "$names" "" ;;
            esac
        fi
        kill -"$sig" $pid
        kill -CONT $pid
    fi
    wait $pid 2>/dev/null
    status=$?
    case $sig in INT) signum=2 ;; HUP) signum=1 ;; KILL) signum=9 ;; TERM) signum=15 ;; esac
    if [ -e "$tmp/before" ]; then
        cmp -s "$tmp/before" "$dir/o.gguf" && changed= || changed=yes
    else
        [ -e "$dir/o.gguf" ] && changed=yes || changed=
    fi
    if [ -z "$writing" ] && [ -n "$changed" ]; then
        notes=$((notes + 1))
        echo "note: SIG$sig at $when came after the output was written"
    else
        same "SIG$sig at $when: exit status" "$status" $((128 + signum))
        if [ -e "$tmp/before" ]; then
            if [ -z "$changed" ]; then ok; else
                fail "SIG$sig at $when: the existing target changed"; fi
            same "SIG$sig at $when: what is left" "$(ls -A "$dir" | tr '\n' ' ')" "o.gguf "
        else
            empty_dir "$dir" "SIG$sig at $when"
        fi
    fi
    # the next run starts from the same state, whatever this one left
    rm -rf "$dir" && mkdir "$dir"
    if [ -e "$tmp/before" ]; then mv "$tmp/before" "$dir/o.gguf"; fi
}

k=$tmp/k
mkdir "$k"
quantize_big() { kill_run "$1" "$2" "$k" "$3" "$BITNET" quantize -q "$tmp/big.gguf" "$k/o.gguf" --type f16; }
for when in 0.1 0.25 0.4 write+0 write+0.1; do quantize_big KILL $when ""; done
for sig in INT TERM HUP; do quantize_big $sig write+0.05 ""; done
# an existing target stays as it was
printf 'the user'"'"'s old model\n' >"$k/o.gguf"
quantize_big KILL write+0.05 keep
quantize_big TERM write+0.1 keep
rm -f "$k/o.gguf"
# synth writes through the same writer
kill_run KILL write+0 "$k" "" "$BITNET" synth "$k/o.gguf" --preset 2b-4t --layers 2 --vocab 8000 \
    --type f16
# the named fallback: removed by the program's handler on SIGINT, SIGTERM, SIGHUP
export BITNET_NO_O_TMPFILE=1
for sig in INT TERM HUP; do quantize_big $sig write+0.05 named; done
printf 'the user'"'"'s old model\n' >"$k/o.gguf"
quantize_big TERM write+0.05 named
rm -f "$k/o.gguf"
unset BITNET_NO_O_TMPFILE
if [ $((mid_write * 2)) -ge "$tried" ]; then ok; else
    fail "only $mid_write of $tried signals came while the output was being written"; fi
echo "test_cli_files: $mid_write of $tried signals came while the output was being written"

# --- modes: 0666 less the umask
(umask 022; "$BITNET" quantize -q "$tmp/m.gguf" "$tmp/q.gguf" --type tq2_0 2>"$err")
same "quantize under umask 022" "$(mode "$tmp/q.gguf")" 644
rm -f "$tmp/q.gguf"
(umask 077; "$BITNET" quantize -q "$tmp/m.gguf" "$tmp/q.gguf" --type tq2_0 2>"$err")
same "quantize under umask 077" "$(mode "$tmp/q.gguf")" 600
(umask 022; "$BITNET" quantize -q "$tmp/m.gguf" "$tmp/q.gguf" --type tq1_0 2>"$err")
same "quantize over an existing file under umask 022" "$(mode "$tmp/q.gguf")" 644
(umask 022; "$BITNET" logits -m "$tmp/m.gguf" --tokens 1,2,3 -o "$tmp/l.f32" >"$out" 2>"$err")
same "logits -o under umask 022" "$(mode "$tmp/l.f32")" 644
(umask 022; printf '/save %s\n' "$tmp/c.json" |
    "$BITNET" chat -m "$tmp/m.gguf" --system "be brief" >"$out" 2>"$err")
same "chat /save under umask 022" "$(mode "$tmp/c.json")" 644
grep_in "$err" "saved 1 messages" "/save reports"

# --- general.file_type: llama.cpp's LLAMA_FTYPE of the type written
for pair in tq2_0:37 tq1_0:36 f16:1 f32:0 bf16:32 q8_0:7 q4_0:2 q6_k:18; do
    t=${pair%%:*}
    expect 0 "quantize to $t" -- quantize -q "$tmp/m.gguf" "$tmp/ft.gguf" --type "$t"
    same "file_type of $t" "$(file_type "$tmp/ft.gguf")" "${pair#*:}"
    [ "$t" = f16 ] && cp "$tmp/ft.gguf" "$tmp/f16.gguf"
done
expect 0 "quantize f16 to i2_s" -- quantize -q "$tmp/f16.gguf" "$tmp/ft.gguf" --type i2_s
same "file_type of i2_s (from an f16 file)" "$(file_type "$tmp/ft.gguf")" 40
expect 0 "quantize with rules only" -- quantize -q "$tmp/m.gguf" "$tmp/ft.gguf" \
    --tensor-type 'blk.*=q8_0'
same "file_type with rules only: the projections' type" "$(file_type "$tmp/ft.gguf")" 7
expect 0 "quantize the embedding only" -- quantize -q "$tmp/f16.gguf" "$tmp/ft.gguf" \
    --tensor-type 'token_embd.weight=q8_0'
same "file_type when the projections are kept" "$(file_type "$tmp/ft.gguf")" 1

# --- --per-channel where it cannot apply: a usage error, nothing written
expect 2 "--per-channel with i2_s" -- quantize -q "$tmp/f16.gguf" "$tmp/pc.gguf" --type i2_s \
    --per-channel
grep_in "$err" "i2_s (--type) holds one scale per tensor" "says why"
expect 2 "--per-channel with an i2_s rule" -- quantize -q "$tmp/f16.gguf" "$tmp/pc.gguf" \
    --type tq2_0 --tensor-type 'token_embd.weight=i2_s' --per-channel
grep_in "$err" "i2_s (token_embd.weight) holds one scale per tensor" "names the rule"
expect 2 "--per-channel with f16" -- quantize -q "$tmp/m.gguf" "$tmp/pc.gguf" --type f16 \
    --per-channel
grep_in "$err" "applies to tq2_0 and tq1_0 only" "says where it applies"
if [ ! -e "$tmp/pc.gguf" ]; then ok; else fail "a refused --per-channel wrote a file"; fi
expect 0 "--per-channel with tq1_0" -- quantize -q "$tmp/f16.gguf" "$tmp/pc.gguf" \
    --type tq1_0 --per-channel

# --- logits -o -: the same bytes on standard output, the ids on stderr
expect 0 "logits -o FILE" -- logits -m "$tmp/m.gguf" --tokens 1,2,3,300 --all --greedy 3 \
    -o "$tmp/l.f32"
cp "$out" "$tmp/ids"
expect 0 "logits -o -" -- logits -m "$tmp/m.gguf" --tokens 1,2,3,300 --all --greedy 3 -o -
if cmp -s "$out" "$tmp/l.f32"; then ok; else fail "logits -o - differs from -o FILE"; fi
grep_in "$err" "^argmax_last $(awk '/argmax_last/ { print $2 }' "$tmp/ids")$" \
    "the ids go to stderr"
grep_in "$err" "^greedy " "the greedy ids go to stderr"
"$BITNET" logits -m "$tmp/m.gguf" --tokens 1,2,3 -o - >/dev/full 2>"$err"
same "logits -o - onto a full device" "$?" 1
grep_in "$err" "standard output" "names standard output"

# --- a missing directory: an error naming the path, nothing created
expect 1 "quantize into a missing directory" -- quantize -q "$tmp/m.gguf" "$tmp/no/x.gguf" \
    --type tq2_0
grep_in "$err" "$tmp/no/x.gguf" "names the path"
expect 1 "logits into a missing directory" -- logits -m "$tmp/m.gguf" --tokens 1 \
    -o "$tmp/no/l.f32"
grep_in "$err" "$tmp/no/l.f32" "names the path"
printf '/save %s\n' "$tmp/no/c.json" | "$BITNET" chat -m "$tmp/m.gguf" >"$out" 2>"$err"
grep_in "$err" "/save: writing $tmp/no/c.json: .*No such file or directory" "/save names the path"
if [ ! -e "$tmp/no" ]; then ok; else fail "the missing directory was created"; fi
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$tmp/ro" && chmod 555 "$tmp/ro"
    expect 1 "quantize into a read-only directory" -- quantize -q "$tmp/m.gguf" \
        "$tmp/ro/x.gguf" --type tq2_0
    grep_in "$err" "$tmp/ro/x.gguf" "names the path"
    empty_dir "$tmp/ro" "read-only directory"
else
    echo "test_cli_files: running as root: the read-only directory case skipped"
fi

# --- a full disk (the file size limit): the error, the old file untouched, nothing left
d=$tmp/full
mkdir "$d"
printf 'the user'"'"'s old model\n' >"$d/o.gguf"
cp "$d/o.gguf" "$tmp/before"
(ulimit -f 64; trap '' XFSZ; "$BITNET" quantize -q "$tmp/m.gguf" "$d/o.gguf" --type f32 \
    >"$out" 2>"$err")
same "quantize onto a full disk" "$?" 1
grep_in "$err" "writing $d/o.gguf: File too large" "says what and why"
if cmp -s "$tmp/before" "$d/o.gguf"; then ok; else fail "a failed write changed the file"; fi
same "after a failed write" "$(ls -A "$d")" "o.gguf"

echo "test_cli_files: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
