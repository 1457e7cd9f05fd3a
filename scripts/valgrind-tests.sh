#!/bin/sh
# valgrind-tests.sh BUILD_DIR - runs every CPU test executable and the program under
# valgrind memcheck; fails on any memory error or definite leak.
set -u
build=${1:?usage: valgrind-tests.sh BUILD_DIR}
status=0
export OPENBLAS_NUM_THREADS=1
# valgrind reports a CPUID of its own, so test_cpu skips its comparison with /proc/cpuinfo
export BITNET_TEST_UNDER_VALGRIND=1
# tests that write models with the program
BITNET=$(cd "$build" && pwd)/bitnet
export BITNET
vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
for t in "$build"/tests/test_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    name=$(basename "$t")
    $vg "$t" > "$build/$name.valgrind.log" 2>&1
    rc=$?
    if [ $rc -eq 77 ]; then
        echo "valgrind: $name: skipped: $(grep -i -m 1 skip "$build/$name.valgrind.log")"
    elif [ $rc -eq 0 ]; then
        echo "valgrind: $name: clean"
    else
        echo "valgrind: $name: FAILED (exit $rc)"
        tail -n 40 "$build/$name.valgrind.log"
        status=1
    fi
done
if $vg "$build/bitnet" info --system > "$build/bitnet.valgrind.log" 2>&1; then
    echo "valgrind: bitnet info --system: clean"
else
    echo "valgrind: bitnet info --system: FAILED"
    tail -n 40 "$build/bitnet.valgrind.log"
    status=1
fi
# the program running a model: load, prefill, sampling, streaming, the report
model=$(mktemp /tmp/bn_vg_XXXXXX.gguf)
if "$build/bitnet" synth "$model" --layers 2 > /dev/null 2>&1 &&
   $vg "$build/bitnet" generate -m "$model" -p "hello world" -n 8 -t 2 \
       > "$build/bitnet-generate.valgrind.log" 2>&1; then
    echo "valgrind: bitnet generate: clean"
else
    echo "valgrind: bitnet generate: FAILED"
    tail -n 40 "$build/bitnet-generate.valgrind.log"
    status=1
fi
rm -f "$model"
exit $status
