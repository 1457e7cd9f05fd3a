/*
 * formats.c - scalar reference conversions between f32 and the block formats of
 * blocks.h: Q8_0, Q4_0, Q6_K, TQ1_0, TQ2_0 (as ggml defines them) and I2_S (as
 * bitnet.cpp defines it), and the one decoder of each ternary format into signed codes
 * and block scales, which its dequantizer and the model's projections both read through.
 *
 * The quantizers reproduce the defining engine's reference algorithm step by step, in
 * the same float operations and order, so that the bytes they write equal the
 * engine's (tests/test_qformats.c checks this against dumps of the engines' own
 * functions). Plain loops; no SIMD here, ever: fast paths live elsewhere and are tested
 * against these.
 */
#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "quant/formats.h"

/* Bytes must not depend on whether the compiler fuses a * b + c: GCC in ISO C mode
 * (CMake's -std=c11) never contracts, clang needs telling. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* ------------------------------------------------------------- helpers */

/* Round to the nearest integer, ties to even, as ggml's nearest_int does (it adds
 * 1.5 * 2^23 and reads the mantissa). Valid for |x| < 2^22, which every caller
 * guarantees by construction. */
static int bn_nearest_int(float x)
{
    float biased = x + 12582912.f;
    int32_t bits;
    memcpy(&bits, &biased, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

/* Largest |x| over n values and the value that has it (the first one on ties). */
static float bn_absmax_signed(const float *x, int n, float *amax_out)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (amax < fabsf(x[i])) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* Largest |x| over n values. */
static float bn_absmax(const float *x, int n)
{
    float amax = 0.0f;
    for (int i = 0; i < n; i++)
        amax = amax > fabsf(x[i]) ? amax : fabsf(x[i]);   /* ggml's MAX() */
    return amax;
}

/* ---------------------------------------------------------------- Q8_0 */

/* Q8_0 -> f32: x = d * q. */
void bn_dequant_row_q8_0(const void *src, float *dst, int64_t n)
{
    const bn_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / BN_QK8_0; i++) {
        float d = bn_f16_to_f32(b[i].d);
        for (int j = 0; j < BN_QK8_0; j++)
            dst[i * BN_QK8_0 + j] = (float)b[i].qs[j] * d;
    }
}

/* f32 -> Q8_0, ggml's quantize_row_q8_0_ref: d = max|x| / 127 per block, q =
 * round-half-away(x / d) (x times the f32 reciprocal of d, before d goes to fp16). */
void bn_quant_row_q8_0(const float *src, void *dst, int64_t n)
{
    bn_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / BN_QK8_0; i++) {
        const float *x = src + i * BN_QK8_0;
        float d = bn_absmax(x, BN_QK8_0) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = bn_f32_to_f16(d);
        for (int j = 0; j < BN_QK8_0; j++)
            b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* ---------------------------------------------------------------- Q4_0 */

/* Q4_0 -> f32: x = d * (q - 8); byte j holds weights j (low nibble) and 16 + j. */
void bn_dequant_row_q4_0(const void *src, float *dst, int64_t n)
{
    const bn_block_q4_0 *b = src;
    for (int64_t i = 0; i < n / BN_QK4_0; i++) {
        float d = bn_f16_to_f32(b[i].d);
        float *y = dst + i * BN_QK4_0;
        for (int j = 0; j < BN_QK4_0 / 2; j++) {
            y[j] = (float)((b[i].qs[j] & 0x0f) - 8) * d;
            y[j + BN_QK4_0 / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

/* f32 -> Q4_0, ggml's quantize_row_q4_0_ref: d = m / -8 where m is the signed value of
 * largest magnitude (so m itself maps to code 0), q = min(15, trunc(x / d + 8.5)). */
void bn_quant_row_q4_0(const float *src, void *dst, int64_t n)
{
    bn_block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / BN_QK4_0; i++) {
        const float *x = src + i * BN_QK4_0;
        float amax;
        float max = bn_absmax_signed(x, BN_QK4_0, &amax);
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = bn_f32_to_f16(d);
        for (int j = 0; j < BN_QK4_0 / 2; j++) {
            int lo = (int8_t)(x[j] * id + 8.5f);
            int hi = (int8_t)(x[j + BN_QK4_0 / 2] * id + 8.5f);
            lo = lo < 15 ? lo : 15;
            hi = hi < 15 ? hi : 15;
            b[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* ---------------------------------------------------------------- Q6_K */

/* Q6_K -> f32. Each half of 128 weights uses 64 bytes of ql and 32 of qh: weights
 * l, 32+l, 64+l, 96+l (l < 32) take the low nibble of ql[l], of ql[32+l], the high
 * nibble of ql[l], of ql[32+l], and bits 1-0, 3-2, 5-4, 7-6 of qh[l] as their top two
 * bits; x = d * scales[group of 16] * (q - 32). */
void bn_dequant_row_q6_k(const void *src, float *dst, int64_t n)
{
    const bn_block_q6_k *b = src;
    for (int64_t i = 0; i < n / BN_QK_K; i++) {
        float d = bn_f16_to_f32(b[i].d);
        float *y = dst + i * BN_QK_K;
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = b[i].ql + 64 * half;
            const uint8_t *qh = b[i].qh + 32 * half;
            const int8_t *sc = b[i].scales + 8 * half;
            float *yh = y + 128 * half;
            for (int l = 0; l < 32; l++) {
                int g = l / 16;
                int q0 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q1 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                yh[l]      = d * (float)sc[g + 0] * (float)q0;
                yh[l + 32] = d * (float)sc[g + 2] * (float)q1;
                yh[l + 64] = d * (float)sc[g + 4] * (float)q2;
                yh[l + 96] = d * (float)sc[g + 6] * (float)q3;
            }
        }
    }
}

/* The weight ggml's make_qx_quants gives x in its least-squares fit (rmse_type 1). */
static float bn_q6_weight(float x)
{
    return x * x;
}

/* Codes for one group of n weights at the inverse scale iscale: l = clamp(round(iscale
 * * x), -nmax, nmax - 1). Accumulates the weighted sums sum w x l and sum w l^2 in
 * order; writes the codes (offset by nmax) when L is not NULL. */
static void bn_q6_fit(const float *x, int n, int nmax, float iscale, int8_t *L,
                      float *sumlx, float *suml2)
{
    float slx = 0.0f, sl2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = bn_nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        if (L)
            L[i] = (int8_t)(l + nmax);
        float w = bn_q6_weight(x[i]);
        slx += w * x[i] * (float)l;
        sl2 += w * (float)l * (float)l;
    }
    *sumlx = slx;
    *suml2 = sl2;
}

/* ggml's make_qx_quants with rmse_type 1 and no importance weights: the scale of one
 * group of n weights for codes in -nmax..nmax-1. Starts from iscale = -nmax / m (m the
 * signed value of largest magnitude), then tries 18 nearby inverse scales
 * -(nmax + 0.1 is) / m and keeps the one with the best weighted least-squares fit
 * (weights x^2). Writes the codes (offset by nmax) to L, returns the scale. */
static float bn_q6_make_quants(const float *x, int n, int nmax, int8_t *L)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < 1e-15f) {                    /* ggml's GROUP_MAX_EPS: all zero */
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float sumlx, suml2;
    float iscale = (float)-nmax / max;
    bn_q6_fit(x, n, nmax, iscale, L, &sumlx, &suml2);
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        bn_q6_fit(x, n, nmax, iscale, NULL, &sumlx, &suml2);
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            bn_q6_fit(x, n, nmax, iscale, L, &sumlx, &suml2);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* f32 -> Q6_K, ggml's quantize_row_q6_K_ref: a scale per group of 16 from
 * bn_q6_make_quants, the 16 scales themselves quantized to int8 against the largest
 * (d = -max_scale / 128), then every weight re-coded against its group's final scale
 * d * scales[g], round to nearest even, clamped to -32..31. */
void bn_quant_row_q6_k(const float *src, void *dst, int64_t n)
{
    bn_block_q6_k *b = dst;
    int8_t L[BN_QK_K];
    float scales[BN_QK_K / 16];
    for (int64_t i = 0; i < n / BN_QK_K; i++) {
        const float *x = src + i * BN_QK_K;
        float max_scale = 0.0f, max_abs_scale = 0.0f;
        for (int g = 0; g < BN_QK_K / 16; g++) {
            scales[g] = bn_q6_make_quants(x + 16 * g, 16, 32, L + 16 * g);
            if (fabsf(scales[g]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        if (max_abs_scale < 1e-15f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float iscale = -128.0f / max_scale;
        b[i].d = bn_f32_to_f16(1.0f / iscale);
        for (int g = 0; g < BN_QK_K / 16; g++) {
            int s = bn_nearest_int(iscale * scales[g]);
            b[i].scales[g] = (int8_t)(s < 127 ? s : 127);
        }
        for (int g = 0; g < BN_QK_K / 16; g++) {
            float d = bn_f16_to_f32(b[i].d) * (float)b[i].scales[g];
            if (d == 0.0f)
                continue;                   /* keeps the codes of the first pass */
            for (int k = 0; k < 16; k++) {
                int l = bn_nearest_int(x[16 * g + k] / d);
                l = l < -32 ? -32 : l > 31 ? 31 : l;
                L[16 * g + k] = (int8_t)(l + 32);
            }
        }
        for (int half = 0; half < 2; half++) {
            const int8_t *Lh = L + 128 * half;
            uint8_t *ql = b[i].ql + 64 * half;
            uint8_t *qh = b[i].qh + 32 * half;
            for (int l = 0; l < 32; l++) {
                ql[l]      = (uint8_t)((Lh[l] & 0x0f) | ((Lh[l + 64] & 0x0f) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0x0f) | ((Lh[l + 96] & 0x0f) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                  ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

/* --------------------------------------------------------------- TQ1_0 */

/* The trit (0, 1, 2) at position k (0 = most significant) of a TQ1_0 byte: multiply by
 * 3^k modulo 256 to bring it to the top, then read the top trit as (b * 3) >> 8. */
static int bn_tq1_trit(uint8_t byte, int k)
{
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    uint8_t shifted = (uint8_t)(byte * pow3[k]);
    return (shifted * 3) >> 8;
}

/* TQ1_0 -> codes and block scales. qs[0..32) holds weights m + 32 k (k < 5, trit k of
 * byte m), qs[32..48) the next 80 as m + 16 k, qh[0..4) the last 16 as j + 4 k (k < 4);
 * w = trit - 1. */
void bn_decode_row_tq1_0(const void *src, int8_t *w, float *d, int64_t n)
{
    const bn_block_tq1_0 *b = src;
    for (int64_t i = 0; i < n / BN_QK_K; i++) {
        int8_t *y = w + i * BN_QK_K;
        d[i] = bn_f16_to_f32(b[i].d);
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 32; m++)
                y[32 * k + m] = (int8_t)(bn_tq1_trit(b[i].qs[m], k) - 1);
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 16; m++)
                y[160 + 16 * k + m] = (int8_t)(bn_tq1_trit(b[i].qs[32 + m], k) - 1);
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++)
                y[240 + 4 * k + j] = (int8_t)(bn_tq1_trit(b[i].qh[j], k) - 1);
    }
}

/* TQ1_0 -> f32: x = d * (trit - 1), a block at a time through the decoder. */
void bn_dequant_row_tq1_0(const void *src, float *dst, int64_t n)
{
    const bn_block_tq1_0 *b = src;
    int8_t w[BN_QK_K];
    float d;
    for (int64_t i = 0; i < n / BN_QK_K; i++) {
        bn_decode_row_tq1_0(&b[i], w, &d, BN_QK_K);
        for (int j = 0; j < BN_QK_K; j++)
            dst[i * BN_QK_K + j] = (float)w[j] * d;
    }
}

/* One TQ1_0 byte from `count` trits x[0], x[stride], ... (count 5, or 4 with a zero
 * trit appended): each trit lroundf(x * id) + 1, most significant first, the base-3
 * number n then stored as ceil(n * 256 / 243). */
static uint8_t bn_tq1_pack(const float *x, int stride, int count, float id)
{
    unsigned q = 0;
    for (int k = 0; k < count; k++)
        q = q * 3 + (unsigned)(lroundf(x[k * stride] * id) + 1);
    for (int k = count; k < 5; k++)
        q *= 3;
    q &= 0xff;                              /* ggml accumulates in a uint8_t */
    return (uint8_t)((q * 256 + 242) / 243);
}

/* f32 -> TQ1_0, ggml's quantize_row_tq1_0_ref: d = max|x| of the block, trit =
 * lroundf(x / d) + 1 (so |x| >= d / 2 becomes +-1, rounding half away from zero). */
void bn_quant_row_tq1_0(const float *src, void *dst, int64_t n)
{
    bn_block_tq1_0 *b = dst;
    for (int64_t i = 0; i < n / BN_QK_K; i++) {
        const float *x = src + i * BN_QK_K;
        float d = bn_absmax(x, BN_QK_K);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = bn_f32_to_f16(d);
        for (int m = 0; m < 32; m++)
            b[i].qs[m] = bn_tq1_pack(x + m, 32, 5, id);
        for (int m = 0; m < 16; m++)
            b[i].qs[32 + m] = bn_tq1_pack(x + 160 + m, 16, 5, id);
        for (int j = 0; j < 4; j++)
            b[i].qh[j] = bn_tq1_pack(x + 240 + j, 4, 4, id);
    }
}

/* --------------------------------------------------------------- TQ2_0 */

/* TQ2_0 -> codes and block scales: in each 32-byte half, byte m holds weights m, 32+m,
 * 64+m, 96+m of the half in bits 1-0, 3-2, 5-4, 7-6; w = code - 1 (code 3 is +2, as in
 * ggml's dequantize_row_tq2_0). */
void bn_decode_row_tq2_0(const void *src, int8_t *w, float *d, int64_t n)
{
    const bn_block_tq2_0 *b = src;
    for (int64_t i = 0; i < n / BN_QK_K; i++) {
        int8_t *y = w + i * BN_QK_K;
        d[i] = bn_f16_to_f32(b[i].d);
        for (int half = 0; half < 2; half++)
            for (int k = 0; k < 4; k++)
                for (int m = 0; m < 32; m++) {
                    int code = (b[i].qs[32 * half + m] >> (2 * k)) & 3;
                    y[128 * half + 32 * k + m] = (int8_t)(code - 1);
                }
    }
}

/* TQ2_0 -> f32: x = d * (code - 1), a block at a time through the decoder. */
void bn_dequant_row_tq2_0(const void *src, float *dst, int64_t n)
{
    const bn_block_tq2_0 *b = src;
    int8_t w[BN_QK_K];
    float d;
    for (int64_t i = 0; i < n / BN_QK_K; i++) {
        bn_decode_row_tq2_0(&b[i], w, &d, BN_QK_K);
        for (int j = 0; j < BN_QK_K; j++)
            dst[i * BN_QK_K + j] = (float)w[j] * d;
    }
}

/* f32 -> TQ2_0, ggml's quantize_row_tq2_0_ref: d = max|x| of the block, code =
 * lroundf(x / d) + 1, as for TQ1_0. */
void bn_quant_row_tq2_0(const float *src, void *dst, int64_t n)
{
    bn_block_tq2_0 *b = dst;
    for (int64_t i = 0; i < n / BN_QK_K; i++) {
        const float *x = src + i * BN_QK_K;
        float d = bn_absmax(x, BN_QK_K);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = bn_f32_to_f16(d);
        for (int half = 0; half < 2; half++)
            for (int m = 0; m < 32; m++) {
                unsigned q = 0;
                for (int k = 0; k < 4; k++) {
                    long code = lroundf(x[128 * half + 32 * k + m] * id) + 1;
                    q |= ((unsigned)code & 3u) << (2 * k);
                }
                b[i].qs[32 * half + m] = (uint8_t)q;
            }
    }
}

/* ---------------------------------------------------------------- I2_S */

/* I2_S -> codes: blocks of 128 weights in 32 bytes, byte j holding weights j, 32+j,
 * 64+j, 96+j in bits 7-6, 5-4, 3-2, 1-0; w = code - 1. Code 3, which no quantizer
 * writes, is +2: bitnet.cpp's kernels (ggml_vec_dot_i2_i8_s) take sum code * q and its
 * matrix product subtracts sum q, so a code c weighs c - 1 there, 3 included. (The fork's
 * dequantize_row_i2_s reads 3 as 0; the kernels are what runs a model.) The scale is the
 * tensor's, in its tail: d is not written. */
void bn_decode_row_i2_s(const void *src, int8_t *w, float *d, int64_t n)
{
    (void)d;
    const uint8_t *codes = src;
    for (int64_t blk = 0; blk < n / BN_I2S_BLOCK; blk++) {
        const uint8_t *p = codes + blk * BN_I2S_BLOCK_BYTES;
        int8_t *y = w + blk * BN_I2S_BLOCK;
        for (int j = 0; j < 32; j++)
            for (int k = 0; k < 4; k++)
                y[32 * k + j] = (int8_t)(((p[j] >> (6 - 2 * k)) & 3) - 1);
    }
}

/* I2_S -> f32 for a whole tensor of n weights (n a multiple of 128): x = scale *
 * (code - 1), a block at a time through the decoder. */
void bn_dequant_i2_s(const void *src, float *dst, int64_t n)
{
    const uint8_t *codes = src;
    float scale;
    memcpy(&scale, codes + n / 4, sizeof scale);
    int8_t w[BN_I2S_BLOCK];
    for (int64_t blk = 0; blk < n / BN_I2S_BLOCK; blk++) {
        bn_decode_row_i2_s(codes + blk * BN_I2S_BLOCK_BYTES, w, NULL, BN_I2S_BLOCK);
        for (int i = 0; i < BN_I2S_BLOCK; i++)
            dst[blk * BN_I2S_BLOCK + i] = scale * (float)w[i];
    }
}

/* f32 -> I2_S, bitnet.cpp's quantize_i2_s (x86 layout): the scale is max|x| over the
 * whole tensor (taken in double, stored as f32); a weight with |x| < 1e-6 becomes code
 * 1 (zero), any other weight code 2 if x * scale > 0, else code 0. Only the sign is
 * kept: the input is expected to be ternary already (w in {-s, 0, s}). The 28 tail
 * bytes after the scale are zeroed (bitnet.cpp leaves them as they were). */
/* bitnet.cpp's code of one weight: 1 (zero) when |x| < 1e-6 (compared in double), else
 * 2 for a positive and 0 for a negative weight. (It tests x * max > 0, which for the
 * max > 0 that any |x| >= 1e-6 implies is the sign of x.) `zero_below` is the smallest
 * float >= 1e-6, which makes the float comparison the same as the double one. */
static inline unsigned bn_i2s_code(float x, float zero_below)
{
    return fabsf(x) < zero_below ? 1u : x > 0.0f ? 2u : 0u;
}

void bn_quant_i2_s(const float *src, void *dst, int64_t n)
{
    uint8_t *codes = dst;
    float zero_below = (float)1e-6;
    if ((double)zero_below < 1e-6)
        zero_below = nextafterf(zero_below, 1.0f);
    /* max |x| as bitnet.cpp takes it in double: the same value as the f32 maximum (the
     * widening is exact), NaN skipped as fmax skips it; eight partial maxima so that
     * the loop is not one long dependency chain */
    float part[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            float a = fabsf(src[i + k]);
            part[k] = a > part[k] ? a : part[k];
        }
    for (; i < n; i++) {
        float a = fabsf(src[i]);
        part[0] = a > part[0] ? a : part[0];
    }
    float maxf = 0.0f;
    for (int k = 0; k < 8; k++)
        maxf = part[k] > maxf ? part[k] : maxf;
    double max = maxf;
    memset(codes + n / 4, 0, BN_I2S_TAIL);
    /* n is a multiple of the 128-weight block: byte j of a block holds weights j,
     * 32 + j, 64 + j, 96 + j in bits 7-6, 5-4, 3-2, 1-0 */
    for (int64_t blk = 0; blk < n / BN_I2S_BLOCK; blk++) {
        const float *x = src + blk * BN_I2S_BLOCK;
        uint8_t *out = codes + blk * BN_I2S_BLOCK_BYTES;
        for (int j = 0; j < 32; j++)
            out[j] = (uint8_t)(bn_i2s_code(x[j], zero_below) << 6 |
                               bn_i2s_code(x[32 + j], zero_below) << 4 |
                               bn_i2s_code(x[64 + j], zero_below) << 2 |
                               bn_i2s_code(x[96 + j], zero_below));
    }
    float scale = (float)max;
    memcpy(codes + n / 4, &scale, sizeof scale);
}
