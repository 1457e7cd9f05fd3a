/*
 * kernels_neon.c - the ternary x int8 kernels for ARM NEON (AdvSIMD, present on every
 * aarch64 CPU). kernels.c combines them with the scalar float kernels into the "neon"
 * family. The codes (0..3) and the activations are multiplied with widening int8
 * multiplies (products of at most 3 * 128 = 384), summed in int16 lanes (at most 16
 * products per lane per 128 weights: below 6,144) and widened into int32 lanes, so
 * every sum is the exact integer the scalar kernels give.
 */
#include "kernels/kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

/* sum over 16 lanes of c (0..3, as int8) times q, added to an int16 accumulator */
static inline int16x8_t bn_mac16(int16x8_t acc, uint8x16_t c, const int8_t *q)
{
    int8x16_t qv = vld1q_s8(q);
    int8x16_t cv = vreinterpretq_s8_u8(c);
    acc = vmlal_s8(acc, vget_low_s8(cv), vget_low_s8(qv));
    return vmlal_s8(acc, vget_high_s8(cv), vget_high_s8(qv));
}

/* One I2_S block of 128 weights (32 bytes: byte j holds weights j, 32+j, 64+j, 96+j in
 * bits 7-6, 5-4, 3-2, 1-0) against q[0..127]. */
static inline int32x4_t bn_i2s_block(int32x4_t acc, uint8x16_t p0, uint8x16_t p1,
                                     const int8_t *q)
{
    const uint8x16_t m3 = vdupq_n_u8(3);
    int16x8_t s = vdupq_n_s16(0);
    s = bn_mac16(s, vshrq_n_u8(p0, 6), q);
    s = bn_mac16(s, vshrq_n_u8(p1, 6), q + 16);
    s = bn_mac16(s, vandq_u8(vshrq_n_u8(p0, 4), m3), q + 32);
    s = bn_mac16(s, vandq_u8(vshrq_n_u8(p1, 4), m3), q + 48);
    s = bn_mac16(s, vandq_u8(vshrq_n_u8(p0, 2), m3), q + 64);
    s = bn_mac16(s, vandq_u8(vshrq_n_u8(p1, 2), m3), q + 80);
    s = bn_mac16(s, vandq_u8(p0, m3), q + 96);
    s = bn_mac16(s, vandq_u8(p1, m3), q + 112);
    return vpadalq_s16(acc, s);
}

int32_t bn_dot_i2s_q8_neon(const uint8_t *codes, const int8_t *q, int64_t n)
{
    int32x4_t acc = vdupq_n_s32(0);
    for (int64_t b = 0; b < n / 128; b++)
        acc = bn_i2s_block(acc, vld1q_u8(codes + b * 32), vld1q_u8(codes + b * 32 + 16),
                           q + b * 128);
    return vaddvq_s32(acc);
}

void bn_dot_i2s_q8_tile_neon(const uint8_t *codes, const int8_t *q, int64_t n, int nt,
                             int32_t *out)
{
    int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    for (int64_t b = 0; b < n / 128; b++) {
        uint8x16_t p0 = vld1q_u8(codes + b * 32), p1 = vld1q_u8(codes + b * 32 + 16);
        for (int j = 0; j < nt; j++)
            acc[j] = bn_i2s_block(acc[j], p0, p1, q + (size_t)j * (size_t)n + b * 128);
    }
    for (int j = 0; j < nt; j++)
        out[j] = vaddvq_s32(acc[j]);
}

void bn_dot_tq2_q8_neon(const uint8_t *blocks, size_t stride, const int8_t *q, int64_t n,
                        int32_t *sums)
{
    const uint8x16_t m3 = vdupq_n_u8(3);
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *qs = blocks + (size_t)b * stride;
        int32x4_t acc = vdupq_n_s32(0);
        for (int half = 0; half < 2; half++) {
            /* byte m of the half: weights m, 32+m, 64+m, 96+m in bits 1-0 .. 7-6 */
            uint8x16_t p0 = vld1q_u8(qs + 32 * half), p1 = vld1q_u8(qs + 32 * half + 16);
            const int8_t *qh = q + b * 256 + 128 * half;
            int16x8_t s = vdupq_n_s16(0);
            s = bn_mac16(s, vandq_u8(p0, m3), qh);
            s = bn_mac16(s, vandq_u8(p1, m3), qh + 16);
            s = bn_mac16(s, vandq_u8(vshrq_n_u8(p0, 2), m3), qh + 32);
            s = bn_mac16(s, vandq_u8(vshrq_n_u8(p1, 2), m3), qh + 48);
            s = bn_mac16(s, vandq_u8(vshrq_n_u8(p0, 4), m3), qh + 64);
            s = bn_mac16(s, vandq_u8(vshrq_n_u8(p1, 4), m3), qh + 80);
            s = bn_mac16(s, vshrq_n_u8(p0, 6), qh + 96);
            s = bn_mac16(s, vshrq_n_u8(p1, 6), qh + 112);
            acc = vpadalq_s16(acc, s);
        }
        sums[b] = vaddvq_s32(acc);
    }
}

uint64_t bn_sum_u64_neon(const uint64_t *x, int64_t n)
{
    const int64_t seg = n / 8;
    uint64x2_t a0 = vdupq_n_u64(0), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i + 8 <= seg; i += 8) {
        for (int k = 0; k < 8; k++) {   /* a line of each eighth in turn, 1 KiB asked ahead */
            const uint64_t *p = x + k * seg + i;
            __builtin_prefetch((const char *)p + 1024);
            a0 = vaddq_u64(a0, vld1q_u64(p));
            a1 = vaddq_u64(a1, vld1q_u64(p + 2));
            a2 = vaddq_u64(a2, vld1q_u64(p + 4));
            a3 = vaddq_u64(a3, vld1q_u64(p + 6));
        }
    }
    a0 = vaddq_u64(vaddq_u64(a0, a1), vaddq_u64(a2, a3));
    return vgetq_lane_u64(a0, 0) + vgetq_lane_u64(a0, 1);
}

/* The int8 multiply-add probe with the widening multiply-adds of the kernels above:
 * eight int16 accumulators (two products a lane per round: at most 64 * 2 * 2 * 127 =
 * 32512 after the 64 rounds of a half chunk), widened pairwise into int32. */
int64_t bn_mac_i8_peak_neon(const uint8_t *w, const int8_t *x, int64_t chunks)
{
    int64_t total = 0;
    for (int64_t c = 0; c < chunks; c++) {
        int32x4_t wide = vdupq_n_s32(0);
        for (int half = 0; half < 2; half++) {
            int16x8_t s[8];
            for (int k = 0; k < 8; k++)
                s[k] = vdupq_n_s16(0);
            for (int r = 0; r < 64; r++) {
                __asm__("" : "+r"(w), "+r"(x));   /* the operands anew each round */
                for (int k = 0; k < 8; k++) {   /* pair (k >> 2, (k >> 1) & 1), half k & 1 */
                    const int wo = 32 * (k >> 2) + 16 * (k & 1);
                    const int xo = 32 * ((k >> 1) & 1) + 16 * (k & 1);
                    int8x16_t wv = vreinterpretq_s8_u8(vld1q_u8(w + wo));
                    int8x16_t xv = vld1q_s8(x + xo);
                    s[k] = vmlal_s8(s[k], vget_low_s8(wv), vget_low_s8(xv));
                    s[k] = vmlal_s8(s[k], vget_high_s8(wv), vget_high_s8(xv));
                }
            }
            for (int k = 0; k < 8; k++)
                wide = vpadalq_s16(wide, s[k]);
        }
        total += vaddvq_s32(wide);
    }
    return total;
}

/* ------------------------------------------------------------ with dotprod (SDOT)
 * Armv8.2's dot product sums four int8 products into each int32 lane; the codes (0..3)
 * and activations go in as int8 and the sums stay exact. Compiled for that extension
 * only here, and called only when the CPU reports it (HWCAP_ASIMDDP). */
#define BN_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))

/* One I2_S block of 128 weights into acc. */
BN_DOTPROD static inline int32x4_t bn_i2s_block_dot(int32x4_t acc, uint8x16_t p0,
                                                    uint8x16_t p1, const int8_t *q)
{
    const uint8x16_t m3 = vdupq_n_u8(3);
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vshrq_n_u8(p0, 6)), vld1q_s8(q));
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vshrq_n_u8(p1, 6)), vld1q_s8(q + 16));
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(p0, 4), m3)), vld1q_s8(q + 32));
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(p1, 4), m3)), vld1q_s8(q + 48));
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(p0, 2), m3)), vld1q_s8(q + 64));
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(p1, 2), m3)), vld1q_s8(q + 80));
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vandq_u8(p0, m3)), vld1q_s8(q + 96));
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vandq_u8(p1, m3)), vld1q_s8(q + 112));
    return acc;
}

BN_DOTPROD int32_t bn_dot_i2s_q8_neon_dot(const uint8_t *codes, const int8_t *q, int64_t n)
{
    int32x4_t acc = vdupq_n_s32(0);
    for (int64_t b = 0; b < n / 128; b++)
        acc = bn_i2s_block_dot(acc, vld1q_u8(codes + b * 32), vld1q_u8(codes + b * 32 + 16),
                               q + b * 128);
    return vaddvq_s32(acc);
}

BN_DOTPROD void bn_dot_i2s_q8_tile_neon_dot(const uint8_t *codes, const int8_t *q, int64_t n,
                                            int nt, int32_t *out)
{
    int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    for (int64_t b = 0; b < n / 128; b++) {
        uint8x16_t p0 = vld1q_u8(codes + b * 32), p1 = vld1q_u8(codes + b * 32 + 16);
        for (int j = 0; j < nt; j++)
            acc[j] = bn_i2s_block_dot(acc[j], p0, p1, q + (size_t)j * (size_t)n + b * 128);
    }
    for (int j = 0; j < nt; j++)
        out[j] = vaddvq_s32(acc[j]);
}

BN_DOTPROD void bn_dot_tq2_q8_neon_dot(const uint8_t *blocks, size_t stride, const int8_t *q,
                                       int64_t n, int32_t *sums)
{
    const uint8x16_t m3 = vdupq_n_u8(3);
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *qs = blocks + (size_t)b * stride;
        int32x4_t acc = vdupq_n_s32(0);
        for (int half = 0; half < 2; half++) {
            uint8x16_t p0 = vld1q_u8(qs + 32 * half), p1 = vld1q_u8(qs + 32 * half + 16);
            const int8_t *qh = q + b * 256 + 128 * half;
            for (int k = 0; k < 4; k++) {
                uint8x16_t c0 = vandq_u8(vshlq_u8(p0, vdupq_n_s8((int8_t)(-2 * k))), m3);
                uint8x16_t c1 = vandq_u8(vshlq_u8(p1, vdupq_n_s8((int8_t)(-2 * k))), m3);
                acc = vdotq_s32(acc, vreinterpretq_s8_u8(c0), vld1q_s8(qh + 32 * k));
                acc = vdotq_s32(acc, vreinterpretq_s8_u8(c1), vld1q_s8(qh + 32 * k + 16));
            }
        }
        sums[b] = vaddvq_s32(acc);
    }
}

/* The int8 multiply-add probe with SDOT: eight int32 accumulators. */
BN_DOTPROD int64_t bn_mac_i8_peak_neon_dot(const uint8_t *w, const int8_t *x, int64_t chunks)
{
    int64_t total = 0;
    for (int64_t c = 0; c < chunks; c++) {
        int32x4_t acc[8];
        for (int k = 0; k < 8; k++)
            acc[k] = vdupq_n_s32(0);
        for (int r = 0; r < 128; r++) {
            __asm__("" : "+r"(w), "+r"(x));   /* the operands anew each round */
            for (int k = 0; k < 8; k++) {   /* pair (k >> 2, (k >> 1) & 1), half k & 1 */
                const int wo = 32 * (k >> 2) + 16 * (k & 1);
                const int xo = 32 * ((k >> 1) & 1) + 16 * (k & 1);
                acc[k] = vdotq_s32(acc[k], vreinterpretq_s8_u8(vld1q_u8(w + wo)),
                                   vld1q_s8(x + xo));
            }
        }
        for (int k = 0; k < 8; k++)
            total += vaddvq_s32(acc[k]);
    }
    return total;
}

#endif
