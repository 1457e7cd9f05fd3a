#!/bin/sh
# test_frontdoor.sh - the front door of the README: scripts/install-deps.sh, and
# `make test` / `make run` of the Makefile.
#   - install-deps.sh (with apt-get, dpkg-query, sudo and sleep replaced by stand-ins
#     on PATH): installs nothing when nothing is missing; otherwise passes
#     -o DPkg::Lock::Timeout=600 to every apt-get call, says that it may wait, tries
#     `apt-get update` again while another apt-get holds the package lists' lock (and
#     gives up after 600 s of waiting), and stops at any other update error;
#   - the Makefile, copied beside a small CMake project whose tests pass, fail and skip
#     (with the real cmake, make, ctest and scripts/run-tests.sh): `make test` and
#     `make run` print no "Entering directory" lines; `make test` names each skipped
#     test with its reason, shows a failing test's output and fails with it.
set -u
SRC=${SRC:?set SRC to the source folder}
passed=0
failed=0
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

# check STATUS DESCRIPTION [FILE]: STATUS 0 passes; else the FILE is shown
check() {
    if [ "$1" -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $2" >&2
        [ $# -lt 3 ] || sed 's/^/  | /' "$3" >&2
    fi
}

# ------------------------------------------------------------ install-deps.sh

stubs="$t/stubs"
mkdir "$stubs"
# dpkg-query: every package installed but those in $MISSING
cat >"$stubs/dpkg-query" <<'EOF'
#!/bin/sh
for p; do :; done
case " $MISSING " in *" $p "*) exit 1 ;; esac
echo "install ok installed"
EOF
# apt-get: logs its arguments and DEBIAN_FRONTEND; `update` fails with the lock
# message the first $LOCKED times (a count kept in $STATE), or with another error when
# $UPDATE_ERROR is set
cat >"$stubs/apt-get" <<'EOF'
#!/bin/sh
echo "DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-} $*" >>"$APT_LOG"
case " $* " in
    *" update "*)
        if [ -n "${UPDATE_ERROR:-}" ]; then echo "E: $UPDATE_ERROR" >&2; exit 100; fi
        n=$(cat "$STATE" 2>/dev/null || echo 0)
        if [ "$n" -lt "$LOCKED" ]; then
            echo $((n + 1)) >"$STATE"
            echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)" >&2
            echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
            exit 100
        fi ;;
esac
exit 0
EOF
printf '#!/bin/sh\nexec "$@"\n' >"$stubs/sudo"
printf '#!/bin/sh\necho "$*" >>"$SLEEP_LOG"\n' >"$stubs/sleep"
chmod +x "$stubs"/*

# deps MISSING LOCKED [UPDATE_ERROR]: runs install-deps.sh; output in $t/deps.out
deps() {
    rm -f "$t/apt.log" "$t/state" "$t/sleep.log"
    : >"$t/apt.log"
    : >"$t/sleep.log"
    env PATH="$stubs:$PATH" MISSING="$1" LOCKED="$2" UPDATE_ERROR="${3:-}" \
        APT_LOG="$t/apt.log" STATE="$t/state" SLEEP_LOG="$t/sleep.log" \
        sh "$SRC/scripts/install-deps.sh" >"$t/deps.out" 2>&1
}

deps "" 0
check $? "install-deps.sh with nothing missing" "$t/deps.out"
[ ! -s "$t/apt.log" ]
check $? "nothing missing: apt-get not run" "$t/apt.log"

deps "cmake valgrind" 2
check $? "install-deps.sh waits for another update, then installs" "$t/deps.out"
[ "$(grep -c ' update' "$t/apt.log")" -eq 3 ] && [ "$(grep -c ' install' "$t/apt.log")" -eq 1 ]
check $? "update tried 3 times (locked twice), then one install" "$t/apt.log"
[ "$(grep -c -v -- '-o DPkg::Lock::Timeout=600 ' "$t/apt.log")" -eq 0 ]
check $? "every apt-get call has -o DPkg::Lock::Timeout=600" "$t/apt.log"
grep -q '^DEBIAN_FRONTEND=noninteractive .* install -y .*--no-install-recommends cmake valgrind$' \
    "$t/apt.log"
check $? "the missing packages installed non-interactively" "$t/apt.log"
grep -q "waiting up to 10 minutes" "$t/deps.out" &&
    grep -q "another apt-get is updating the package lists; waiting" "$t/deps.out"
check $? "install-deps.sh says that it may wait, and that it waits" "$t/deps.out"
[ "$(grep -c '^5$' "$t/sleep.log")" -eq 2 ]
check $? "5 s between the tries" "$t/sleep.log"

deps "cmake" 0 "Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease"
[ $? -eq 1 ] && ! grep -q ' install' "$t/apt.log" && grep -q "Failed to fetch" "$t/deps.out"
check $? "another update error: shown, exit 1, nothing installed" "$t/deps.out"

deps "cmake" 100000
[ $? -eq 1 ] && ! grep -q ' install' "$t/apt.log" && grep -q "gave up after 600 s" "$t/deps.out"
check $? "a lock held for good: gives up after 600 s" "$t/deps.out"
[ "$(grep -c ' update' "$t/apt.log")" -eq 121 ]
check $? "a lock held for good: 121 tries over 600 s" "$t/apt.log"

# ------------------------------------------------------------ make test, make run

# make reads its flags from the environment; the outer make (make test of this very
# project) must not leak into these runs, nor the variables given on its command line
# (make test-asan runs `make test BUILD=build-asan CMAKE_FLAGS=...`, and make exports
# command-line variables to the environment of its recipes)
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS
unset BUILD WERROR PREFIX JOBS CMAKE_FLAGS DESTDIR
p="$t/project"
mkdir -p "$p/scripts" "$p/build"
cp "$SRC/Makefile" "$p/"
cp "$SRC/scripts/run-tests.sh" "$p/scripts/"
printf '#!/bin/sh\nexit 0\n' >"$p/scripts/install-deps.sh"
printf '#!/bin/sh\necho "bitnet $*"\n' >"$p/build/bitnet"
chmod +x "$p/scripts/install-deps.sh" "$p/build/bitnet"
cat >"$p/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(frontdoor NONE)
add_custom_target(stamp ALL COMMAND ${CMAKE_COMMAND} -E touch stamp)
enable_testing()
add_test(NAME passes COMMAND sh -c "echo fine")
add_test(NAME breaks COMMAND sh -c "echo 'breaks: it broke'; test -z \"$FRONTDOOR_FAIL\"")
add_test(NAME skips COMMAND sh -c "echo 'skips: SKIPPED: no widget on this machine'; exit 77")
add_test(NAME skips_quietly COMMAND sh -c "echo first words; echo last words; exit 77")
set_tests_properties(skips skips_quietly PROPERTIES SKIP_RETURN_CODE 77)
EOF

(cd "$p" && make test) >"$t/make.out" 2>&1
check $? "make test in a project whose tests pass or skip" "$t/make.out"
! grep -q "Entering directory\|Leaving directory" "$t/make.out"
check $? "make test prints no Entering/Leaving directory lines" "$t/make.out"
grep -q "^  skips: SKIPPED: no widget on this machine$" "$t/make.out"
check $? "make test names a skipped test with its reason" "$t/make.out"
grep -q "^  skips_quietly: last words$" "$t/make.out"
check $? "make test shows the last words of a test that skips without a reason line" \
    "$t/make.out"

(cd "$p" && FRONTDOOR_FAIL=1 make test) >"$t/make.out" 2>&1
[ $? -ne 0 ]
check $? "make test fails when a test fails" "$t/make.out"
grep -q "^breaks: it broke$" "$t/make.out" && grep -q "^  skips: SKIPPED" "$t/make.out"
check $? "a failing test's output, and the skipped ones, in make test's output" \
    "$t/make.out"

(cd "$p" && make run) >"$t/make.out" 2>&1
check $? "make run" "$t/make.out"
! grep -q "Entering directory\|Leaving directory" "$t/make.out"
check $? "make run prints no Entering/Leaving directory lines" "$t/make.out"
grep -q "^bitnet generate -p Elizabeth looked at her sister, and said -n 64 --temp 0 --repeat-penalty 1.15$" \
    "$t/make.out" &&
    grep -q "^bitnet generate -p .* --temp 0.8 --seed 1$" "$t/make.out"
check $? "make run generates from the default model, greedy and sampled" "$t/make.out"

echo "test_frontdoor: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
