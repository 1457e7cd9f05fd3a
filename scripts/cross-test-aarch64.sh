#!/bin/sh
# cross-test-aarch64.sh [OUT_DIR] - builds the kernel test for aarch64 with Debian's
# cross compiler (gcc-aarch64-linux-gnu) and runs it under qemu-aarch64 (qemu-user):
# the NEON kernels (with and without dotprod) must give the scalar reference's exact
# integer sums there. The test
# links only the part of the library it needs (errors, memory, dtypes, CPU features,
# kernels, quantized formats), statically, so no aarch64 libraries are needed.
#   scripts/install-deps.sh --cross && scripts/cross-test-aarch64.sh
set -eu
out=${1:-build-aarch64}
cc=${CC_AARCH64:-aarch64-linux-gnu-gcc}
mkdir -p "$out"
version=$(sed -n 's/^project(bitnet VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
$cc -std=c11 -O2 -static -D_GNU_SOURCE "-DBITNET_VERSION_STRING=\"$version\"" \
    -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
    -Werror -Iinclude -Isrc -Itests \
    src/core/status.c src/core/log.c src/core/mem.c src/core/dtype.c \
    src/core/kernel_choice.c src/kernels/cpu.c \
    src/kernels/kernels.c src/kernels/kernels_avx2.c src/kernels/kernels_neon.c \
    src/quant/qtype.c src/quant/formats.c src/quant/ternary.c tests/test_kernels.c \
    -o "$out/test_kernels" -lm -lpthread
# -cpu max has the dotprod extension (both NEON families are checked), cortex-a57 has
# not (the plain NEON family is chosen)
qemu-aarch64 -cpu max "$out/test_kernels"
qemu-aarch64 -cpu max "$out/test_kernels" | grep -q "neon-dotprod kernels checked"
qemu-aarch64 -cpu cortex-a57 "$out/test_kernels" | grep -q "kernels in use: neon$"
BITNET_KERNELS=scalar qemu-aarch64 "$out/test_kernels" | tail -1
