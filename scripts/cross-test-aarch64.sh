#!/bin/sh
# cross-test-aarch64.sh [OUT_DIR] - builds the kernel test for aarch64 with Debian's
# cross compiler (gcc-aarch64-linux-gnu) and runs it under qemu-aarch64 (qemu-user):
# the NEON kernels (with and without dotprod) must give the scalar reference's exact
# integer sums there, and so must the avx512 kernels built on SIMDe (kernels_avx512.c
# with BN_KERNELS_SIMDE: SIMDe's aarch64 code paths; the native build of that file is
# empty on aarch64, as kernels_avx2.c is). The test
# links only the part of the library it needs (errors, memory, dtypes, CPU features,
# kernels, quantized formats), statically, so no aarch64 libraries are needed.
#   scripts/install-deps.sh --cross && scripts/cross-test-aarch64.sh
set -eu
out=${1:-build-aarch64}
cc=${CC_AARCH64:-aarch64-linux-gnu-gcc}
# the folder that holds simde/ (the host's headers: SIMDe is header-only); the cross
# compiler is shown only that folder of them
simde=${SIMDE_INCLUDE:-/usr/include}
mkdir -p "$out/simde-include"
ln -sfn "$simde/simde" "$out/simde-include/simde"
version=$(sed -n 's/^project(bitnet VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
flags="-std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes
    -Wmissing-prototypes -Wno-unused-parameter -Werror -Iinclude -Isrc -Itests"
$cc $flags -DBN_KERNELS_SIMDE -isystem "$out/simde-include" -c \
    src/kernels/kernels_avx512.c -o "$out/kernels_avx512_simde.o"
$cc $flags -static "-DBITNET_VERSION_STRING=\"$version\"" -DBN_TEST_SIMDE \
    src/core/status.c src/core/log.c src/core/mem.c src/core/dtype.c \
    src/core/kernel_choice.c src/kernels/cpu.c \
    src/kernels/kernels.c src/kernels/kernels_avx2.c src/kernels/kernels_avx512.c \
    src/kernels/kernels_neon.c \
    src/quant/qtype.c src/quant/formats.c src/quant/ternary.c tests/test_kernels.c \
    "$out/kernels_avx512_simde.o" -o "$out/test_kernels" -lm -lpthread
# -cpu max has the dotprod extension (both NEON families are checked), cortex-a57 has
# not (the plain NEON family is chosen)
status=0
qemu-aarch64 -cpu max "$out/test_kernels" > "$out/test_kernels.log" || status=$?
cat "$out/test_kernels.log"
[ "$status" -eq 0 ]
grep -q "neon-dotprod kernels checked" "$out/test_kernels.log"
grep -q "avx512 kernels checked (SIMDe)" "$out/test_kernels.log"
qemu-aarch64 -cpu cortex-a57 "$out/test_kernels" | grep -q "kernels in use: neon$"
BITNET_KERNELS=scalar qemu-aarch64 "$out/test_kernels" | tail -1
