#!/bin/sh
# install-deps.sh - installs the Debian packages that building and testing bitnet
# need. Idempotent: does nothing when everything is there already. Runs apt-get
# through sudo when not root.
#
#   scripts/install-deps.sh             build + test dependencies
#   scripts/install-deps.sh --fixtures  also NumPy and PyTorch, to regenerate the
#                                       reference fixtures under tests/fixtures
#   scripts/install-deps.sh --interop   also node and npm, for tests/interop and
#                                       tests/serve, and chromium for the chat page's
#                                       test (tests/serve/page.sh)
#   scripts/install-deps.sh --cross     also the aarch64 cross compiler and qemu-user,
#                                       for scripts/cross-test-aarch64.sh
#   scripts/install-deps.sh --mpi       also MPICH, for data-parallel training over MPI
#                                       (mpirun -np N bitnet train ...)
#   scripts/install-deps.sh --corpus    also the Debian packages of public-domain books
#                                       that scripts/corpus/build.sh extracts (apt adds
#                                       R itself as a dependency of janeaustenr; the
#                                       extraction does not use it)
#   scripts/install-deps.sh --bench     also sentencepiece (spm_train), for
#                                       bench/tokenizer_train.sh
set -eu

packages="build-essential cmake pkg-config liblapacke-dev libopenblas-dev libjansson-dev libpcre2-dev libedit-dev libmicrohttpd-dev libsimde-dev valgrind python3 time clang-14 libclang-rt-14-dev"
for arg in "$@"; do
    case "$arg" in
        --fixtures) packages="$packages python3-numpy python3-torch" ;;
        --numpy) packages="$packages python3-numpy" ;;
        --interop) command -v npm >/dev/null 2>&1 || packages="$packages nodejs npm"
                   packages="$packages chromium" ;;
        --cross) packages="$packages gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user" ;;
        --mpi) packages="$packages libmpich-dev mpich" ;;
        --corpus) packages="$packages r-cran-janeaustenr sword-text-web" ;;
        --bench) packages="$packages sentencepiece" ;;
        -h|--help) sed -n '2,/^set/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-deps.sh: unknown option '$arg'" >&2; exit 2 ;;
    esac
done

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps.sh: apt-get not found; install these packages by hand:$missing" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
fi
# Another apt-get or dpkg may be running (on a fresh cloud machine, cloud-init or
# unattended-upgrades often is): wait for it to finish, up to this many seconds,
# rather than fail at once. apt-get install waits by itself with DPkg::Lock::Timeout;
# apt-get update (apt 2.6) does not wait for the lock of the package lists, so it is
# tried again every 5 seconds while that lock is held.
lock_wait=600
apt_get() {
    $sudo env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
        apt-get -o DPkg::Lock::Timeout=$lock_wait "$@"
}
echo "install-deps.sh: installing$missing"
echo "install-deps.sh: (if another apt-get or dpkg is running, waiting up to $((lock_wait / 60)) minutes for it to finish)"
waited=0
until out=$(apt_get update -qq 2>&1); do
    case $out in
        *"Could not get lock"*) ;;
        *) printf '%s\n' "$out" >&2; exit 1 ;;
    esac
    if [ "$waited" -ge "$lock_wait" ]; then
        printf '%s\n' "$out" >&2
        echo "install-deps.sh: gave up after $lock_wait s waiting for the package lists' lock" >&2
        exit 1
    fi
    [ "$waited" -eq 0 ] && echo "install-deps.sh: another apt-get is updating the package lists; waiting"
    sleep 5
    waited=$((waited + 5))
done
[ -z "$out" ] || printf '%s\n' "$out"
apt_get install -y -qq --no-install-recommends $missing
