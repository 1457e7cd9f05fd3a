#!/bin/sh
# run-tests.sh - runs the test suite of a build folder with CTest, showing the output of
# every test that fails, then names each test that was skipped with the reason it
# gave (CTest itself shows a skipped test's output only under -V). Exits with CTest's
# code.
#
#   scripts/run-tests.sh BUILD [ctest options...]     e.g. scripts/run-tests.sh build -j2
#
# A test skips by exiting with 77 after printing why, in a line with "skip" in it
# ("test_x: SKIPPED: no CUDA device"); for a test that printed no such line, its last
# lines are shown.
set -u
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: run-tests.sh BUILD [ctest options...]" >&2
    exit 2
fi
build=$1
shift
log=$(mktemp)
trap 'rm -f "$log" "$log.rc"' EXIT

# ctest's own output goes through as it comes; a copy is kept to find the skipped tests
{ (cd "$build" && ctest --output-on-failure "$@"); echo $? >"$log.rc"; } | tee "$log"
rc=$(cat "$log.rc")

# "  9 - test_device_cuda (Skipped)" in the list of tests that did not run
skipped=$(sed -n 's/^[[:space:]]*[0-9][0-9]* - \([^ ]*\) (Skipped)$/\1/p' "$log")
[ -n "$skipped" ] || exit "$rc"

# a test's output, as CTest recorded it in Testing/Temporary/LastTest.log
output_of() {
    awk -v name="$1" '
        $2 == "Test:" && $3 == name && NF == 3 { inside = 1; next }
        inside && $0 == "Output:"             { getline; printing = 1; next }
        printing && $0 == "<end of output>"   { exit }
        printing                              { print }
    ' "$build/Testing/Temporary/LastTest.log" 2>/dev/null
}

echo
echo "Skipped tests, and why:"
for name in $skipped; do
    out=$(output_of "$name")
    why=$(printf '%s\n' "$out" | grep -i 'skip')
    [ -n "$why" ] || why=$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n 3)
    [ -n "$why" ] || why="(it printed no reason)"
    printf '%s\n' "$why" | awk -v name="$name" '
        { if (index($0, name ": ") == 1) $0 = substr($0, length(name) + 3)
          print "  " name ": " $0 }'

done
exit "$rc"
