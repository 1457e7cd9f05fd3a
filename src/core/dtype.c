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

static uint32_t bn_f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float bn_bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* f16 subnormal (or zero) for |x| < 2^-14, given |x|'s bits. */
static uint16_t bn_f16_subnormal(uint32_t ax)
{
    if (ax < 0x33000000u)            /* below 2^-25: rounds to zero */
        return 0;
    uint32_t exp = ax >> 23;         /* 102 .. 112 */
    uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;      /* to units of 2^-24 */
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++;                         /* may carry into the smallest normal: correct */
    return (uint16_t)q;
}

uint16_t bn_f32_to_f16(float x)
{
    uint32_t u = bn_f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t ax = u & 0x7fffffffu;
    if (ax >= 0x7f800000u) {                       /* Inf or NaN */
        if (ax == 0x7f800000u)
            return sign | 0x7c00u;
        return sign | 0x7e00u | (uint16_t)((ax >> 13) & 0x3ffu);
    }
    if (ax >= 0x477ff000u)                         /* >= 65520 rounds to infinity */
        return sign | 0x7c00u;
    if (ax < 0x38800000u)                          /* below 2^-14 */
        return sign | bn_f16_subnormal(ax);
    uint32_t rounded = ax + 0xfffu + ((ax >> 13) & 1u);
    return sign | (uint16_t)((rounded - (112u << 23)) >> 13);
}

float bn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f)                               /* Inf / NaN */
        return bn_bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0)
            return bn_bits_f32(sign);
        float v = (float)mant * 0x1p-24f;          /* exact: subnormal */
        return sign ? -v : v;
    }
    return bn_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
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
