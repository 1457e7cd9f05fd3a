#!/bin/sh
# test_cli.sh - drives the bitnet program as a user would: help, version, info,
# and every kind of bad usage (clear message on stderr, exit code 2).
set -u
BITNET=${BITNET:?set BITNET to the program}
passed=0
failed=0
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

# expect CODE DESCRIPTION -- ARGS...: runs the program, checks the exit code
expect() {
    code=$1; what=$2; shift 3
    "$BITNET" "$@" >"$out" 2>"$err" </dev/null
    rc=$?
    if [ "$rc" -eq "$code" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $what: 'bitnet $*' exited $rc, expected $code" >&2
        sed 's/^/  stderr: /' "$err" >&2
    fi
}

# grep_in FILE PATTERN DESCRIPTION
grep_in() {
    if grep -q -- "$2" "$1"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $3: no '$2' in:" >&2
        sed 's/^/  | /' "$1" >&2
    fi
}

expect 0 "--help" -- --help
grep_in "$out" "usage: bitnet" "--help shows usage"
grep_in "$out" "info" "--help lists commands"
expect 0 "help info" -- help info
grep_in "$out" "usage: bitnet info" "help for info"
expect 0 "info --help" -- info --help
grep_in "$out" "--system" "info help names --system"
expect 0 "--version" -- --version
version=$(sed -n 's/^#define BITNET_VERSION_MAJOR \([0-9]*\)$/\1/p' "$(dirname "$0")/../include/bitnet.h")
grep_in "$out" "^bitnet $version\." "version printed"
expect 0 "version command" -- version

expect 0 "info --system" -- info --system
grep_in "$out" "^cpu:" "cpu line"
grep_in "$out" "^kernels:" "kernels line"
grep_in "$out" "^devices:  *cpu" "devices line"
ncpu=$(getconf _NPROCESSORS_ONLN)
grep_in "$out" "^cores: *$ncpu logical" "core count matches getconf"
grep_in "$out" "^threads: *$ncpu\$" "default threads = online CPUs"
expect 0 "-t 3" -- -t 3 info --system
grep_in "$out" "^threads: *3\$" "-t sets the thread count"
BITNET_THREADS=5 "$BITNET" info --system >"$out" 2>"$err"
grep_in "$out" "^threads: *5\$" "BITNET_THREADS sets the thread count"
if grep -q ' avx2' /proc/cpuinfo 2>/dev/null; then
    grep_in "$out" "^features:.* avx2" "avx2 reported where /proc/cpuinfo has it"
fi
BITNET_KERNELS=scalar "$BITNET" info --system >"$out" 2>"$err"
grep_in "$out" "^kernels: *scalar" "BITNET_KERNELS=scalar forces scalar kernels"

expect 2 "no command" --
grep_in "$err" "usage: bitnet" "usage on stderr without a command"
expect 2 "unknown command" -- frobnicate
grep_in "$err" "unknown command 'frobnicate'" "names the unknown command"
expect 2 "unknown global option" -- --frob
grep_in "$err" "unknown option '--frob'" "names the unknown option"
expect 2 "unknown info option" -- info --frob
grep_in "$err" "unknown option '--frob'" "info names the unknown option"
expect 2 "bad thread count" -- -t zero info --system
grep_in "$err" "invalid thread count 'zero'" "names the bad count"
expect 2 "missing thread count" -- -t
expect 2 "thread count too large" -- -t 100000 info --system
expect 2 "info with nothing" -- info
expect 2 "help for unknown command" -- help frobnicate
expect 2 "info FILE not available" -- info model.gguf
grep_in "$err" "model.gguf" "names the file"

echo "test_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
