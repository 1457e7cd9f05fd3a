/*
 * dtype.c - element types: names, sizes, and the scalar reference conversions between
 * f32 and the 16-bit float formats (IEEE binary16, bfloat16), all rounding to nearest
 * even. The SIMD row conversions in kernels_*.c must match these bit for bit.
 */
#include <string.h>

#include "core/internal.h"

static const struct {
    const char *name;
    size_t      size;
} bn_dtype_info[BN_DTYPE_COUNT] = {
    [BN_F32]  = {"f32", 4},
    [BN_F16]  = {"f16", 2},
    [BN_BF16] = {"bf16", 2},
    [BN_I8]   = {"i8", 1},
    [BN_I32]  = {"i32", 4},
};

const char *bn_dtype_name(bn_dtype dtype)
{
    return (unsigned)dtype < BN_DTYPE_COUNT ? bn_dtype_info[dtype].name : "?";
}

size_t bn_dtype_size(bn_dtype dtype)
{
    return (unsigned)dtype < BN_DTYPE_COUNT ? bn_dtype_info[dtype].size : 0;
}

uint16_t bn_f32_to_f16(float x)
{
    return bn_f16_encode(x);
}

float bn_f16_to_f32(uint16_t h)
{
    return bn_f16_decode(h);
}

uint16_t bn_f32_to_bf16(float x)
{
    uint32_t u = bn_f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u)           /* NaN: keep it a quiet NaN */
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float bn_bf16_to_f32(uint16_t h)
{
    return bn_bits_f32((uint32_t)h << 16);
}

void bn_f32_to_f16_row(const float *src, uint16_t *dst, int64_t n)
{
    bn_kernels()->f32_to_f16(src, dst, n);
}

void bn_f16_to_f32_row(const uint16_t *src, float *dst, int64_t n)
{
    bn_kernels()->f16_to_f32(src, dst, n);
}

void bn_f32_to_bf16_row(const float *src, uint16_t *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = bn_f32_to_bf16(src[i]);
}

void bn_bf16_to_f32_row(const uint16_t *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = bn_bf16_to_f32(src[i]);
}
