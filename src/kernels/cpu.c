/*
 * cpu.c - what the processor this runs on can do, detected once.
 *
 * On x86 a feature counts only when CPUID reports it *and* the operating system has
 * enabled the register state it needs (XCR0, read with XGETBV once CPUID says OSXSAVE):
 * the YMM halves for AVX and the VEX extensions, the opmask and ZMM state for AVX-512.
 * A feature also needs the ones its instructions build on (AVX2 needs AVX, every
 * AVX-512 extension needs AVX512F), as the Linux kernel applies it. On aarch64 Linux
 * the kernel's hwcaps say it directly. Elsewhere every flag stays false. The result is
 * computed on first use under pthread_once and never changes.
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#  include <sys/syscall.h>
#endif

#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#  include <cpuid.h>
#  define BN_CPU_X86 1
#elif defined(__aarch64__) && defined(__linux__)
#  include <sys/auxv.h>
#  define BN_CPU_ARM64_LINUX 1
#endif

static bn_cpu_info cpu_info;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

/* The architecture this library was compiled for, as uname -m spells it. */
static const char *cpu_arch_name(void)
{
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__i386__)
    return "i686";
#elif defined(__aarch64__)
    return "aarch64";
#elif defined(__arm__)
    return "arm";
#elif defined(__riscv) && __riscv_xlen == 64
    return "riscv64";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
    return "ppc64le";
#elif defined(__powerpc64__)
    return "ppc64";
#elif defined(__s390x__)
    return "s390x";
#else
    return "unknown";
#endif
}

/* Copies s into dst (capacity cap) without its leading and trailing spaces. */
static void cpu_copy_trimmed(char *dst, size_t cap, const char *s)
{
    while (*s == ' ')
        s++;
    size_t len = strlen(s);
    while (len > 0 && s[len - 1] == ' ')
        len--;
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, s, len);
    dst[len] = '\0';
}

#ifdef BN_CPU_X86

/* Bits of XCR0: the register state the OS saves and restores. */
#define BN_XCR0_SSE       (1u << 1)
#define BN_XCR0_AVX       (1u << 2)
#define BN_XCR0_OPMASK    (1u << 5)
#define BN_XCR0_ZMM_HI256 (1u << 6)
#define BN_XCR0_HI16_ZMM  (1u << 7)
#define BN_XCR0_XTILECFG  (1u << 17)
#define BN_XCR0_XTILEDATA (1u << 18)

/* Linux's arch_prctl request for an extended state component (5.16 and later): the
 * AMX tile data must be asked for once per process before any thread touches it. */
#define BN_ARCH_REQ_XCOMP_PERM 0x1023
#define BN_XFEATURE_XTILEDATA  18

/* True when this process may use the AMX tile registers: asked of the kernel once;
 * false where it refuses (an older kernel, a sandbox, a tool that emulates the CPU). */
static bool cpu_x86_amx_granted(void)
{
#if defined(__linux__) && defined(__x86_64__)
    return syscall(SYS_arch_prctl, BN_ARCH_REQ_XCOMP_PERM, BN_XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

/* Extended control register `index`. Written as bytes rather than the _xgetbv
 * intrinsic, which needs -mxsave, or the mnemonic, which old assemblers lack. */
static uint64_t cpu_xgetbv(uint32_t index)
{
    uint32_t eax, edx;
    __asm__ __volatile__(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(index));
    return ((uint64_t)edx << 32) | eax;
}

/* The 48-byte brand string of leaves 0x80000002-4, trimmed; "" when absent. */
static void cpu_x86_brand(char *dst, size_t cap)
{
    unsigned max_ext = __get_cpuid_max(0x80000000u, NULL);
    dst[0] = '\0';
    if (max_ext < 0x80000004u)
        return;
    unsigned regs[12];
    for (unsigned i = 0; i < 3; i++)
        __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
                    &regs[4 * i + 3]);
    char raw[49];
    memcpy(raw, regs, 48);
    raw[48] = '\0';
    cpu_copy_trimmed(dst, cap, raw);
}

/* Fills the x86 feature flags from CPUID and XCR0. */
static void cpu_x86_features(bn_cpu_info *info)
{
    unsigned eax, ebx, ecx, edx;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 1 || !__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return;
    bool osxsave = ecx & (1u << 27);
    uint64_t xcr0 = osxsave ? cpu_xgetbv(0) : 0;
    const uint64_t ymm_state = BN_XCR0_SSE | BN_XCR0_AVX;
    const uint64_t zmm_state = ymm_state | BN_XCR0_OPMASK | BN_XCR0_ZMM_HI256 |
                               BN_XCR0_HI16_ZMM;
    bool ymm_ok = (xcr0 & ymm_state) == ymm_state;
    bool zmm_ok = (xcr0 & zmm_state) == zmm_state;

    info->sse3 = ecx & (1u << 0);
    info->ssse3 = ecx & (1u << 9);
    info->avx = ymm_ok && (ecx & (1u << 28));
    info->fma = info->avx && (ecx & (1u << 12));
    info->f16c = info->avx && (ecx & (1u << 29));
    if (max_leaf < 7)
        return;

    unsigned max_sub7 = 0;
    __get_cpuid_count(7, 0, &max_sub7, &ebx, &ecx, &edx);
    info->avx2 = info->avx && (ebx & (1u << 5));
    info->avx512f = zmm_ok && info->avx && (ebx & (1u << 16));
    info->avx512bw = info->avx512f && (ebx & (1u << 30));
    info->avx512vl = info->avx512f && (ebx & (1u << 31));
    info->avx512vbmi = info->avx512f && (ecx & (1u << 1));
    info->avx512vnni = info->avx512f && (ecx & (1u << 11));
    info->gfni = info->avx && (ecx & (1u << 8));
    const uint64_t tile_state = BN_XCR0_XTILECFG | BN_XCR0_XTILEDATA;
    info->amx_int8 = info->avx512f && (edx & (1u << 24)) && (edx & (1u << 25)) &&
                     (xcr0 & tile_state) == tile_state && cpu_x86_amx_granted();
    if (max_sub7 < 1)
        return;
    __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx);
    info->avx_vnni = info->avx2 && (eax & (1u << 4));
    info->avx512bf16 = info->avx512f && (eax & (1u << 5));
}

#endif /* BN_CPU_X86 */

#ifdef BN_CPU_ARM64_LINUX

#ifndef HWCAP_ASIMD
#  define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDDP
#  define HWCAP_ASIMDDP (1UL << 20)
#endif

/* Fills the ARM flags from the kernel's hwcaps. */
static void cpu_arm64_features(bn_cpu_info *info)
{
    unsigned long hwcap = getauxval(AT_HWCAP);
    info->neon = hwcap & HWCAP_ASIMD;
    info->dotprod = hwcap & HWCAP_ASIMDDP;
}

#endif /* BN_CPU_ARM64_LINUX */

/* Detects everything once (run under pthread_once). */
static void cpu_detect(void)
{
    bn_cpu_info *info = &cpu_info;
    cpu_copy_trimmed(info->arch, sizeof info->arch, cpu_arch_name());
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    info->n_logical = n > 0 ? (int)n : 1;
#if defined(BN_CPU_X86)
    cpu_x86_brand(info->brand, sizeof info->brand);
    cpu_x86_features(info);
#elif defined(BN_CPU_ARM64_LINUX)
    cpu_arm64_features(info);
#endif
}

/* The features of this CPU, detected on the first call. */
const bn_cpu_info *bn_cpu_get_info(void)
{
    pthread_once(&cpu_once, cpu_detect);
    return &cpu_info;
}
