/*
 * kernels_avx2.c - the AVX2 (+FMA, F16C) kernel family. Compiled for every x86 build
 * with per-function target attributes, and only called after the CPU was seen to have
 * these features; the rest of the library stays baseline x86-64.
 */
#include "core/internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define BN_AVX2 __attribute__((target("avx2,fma,f16c")))

/* Four 8-lane accumulators, combined in a fixed order, then a serial tail. */
BN_AVX2 static float bn_dot_f32_avx2(const float *x, const float *y, int64_t n)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
    __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_movehdup_ps(half));
    float sum = _mm_cvtss_f32(half);
    for (; i < n; i++)
        sum += x[i] * y[i];
    return sum;
}

BN_AVX2 static void bn_f16_to_f32_avx2(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++)
        dst[i] = bn_f16_to_f32(src[i]);
}

BN_AVX2 static void bn_f32_to_f16_avx2(const float *src, uint16_t *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < n; i++)
        dst[i] = bn_f32_to_f16(src[i]);
}

const bn_kernel_table bn_kernels_avx2 = {
    .name       = "avx2",
    .dot_f32    = bn_dot_f32_avx2,
    .f16_to_f32 = bn_f16_to_f32_avx2,
    .f32_to_f16 = bn_f32_to_f16_avx2,
};

#endif
