/*
 * kernels_avx512.c - the AVX-512 family (F, BW, VL and VNNI): the ternary kernels on
 * vpdpbusd, which multiplies 64 unsigned bytes (the 2-bit codes) by 64 signed bytes (the
 * activations) and adds each four products into an int32 lane, exact, in one
 * instruction. The entries it does not improve are the AVX2 family's (kernels.h).
 *
 * The codes come out of the packed bytes in the activations' order with one variable
 * shift: the 32 bytes of an I2_S block (byte j holding weights j, 32+j, 64+j, 96+j in
 * bits 7-6, 5-4, 3-2, 1-0) broadcast to both halves of a zmm and shifted right by 6 in
 * the low half, 4 in the high one, are, masked with 3, the codes of weights 0..63 in
 * order; shifts of 2 and 0 give weights 64..127. A TQ2_0 half block is the same with
 * the fields the other way round.
 *
 * zmm registers for the arithmetic; the rows that stream from memory (the decode) are
 * read 32 bytes a load: on the machine measured (AMD Zen 4) zmm loads stream from
 * memory markedly slower than ymm loads. The I2_S decode, and the TQ2_0 decode of a
 * row with one scale, take 32 code bytes with one broadcast load and the codes with
 * masks instead of shifts (see bn_i2s_row); a TQ2_0 row with mixed scales goes block by
 * block in ymm registers (vpdpbusd of AVX512-VL).
 *
 * Compiled for every x86 build with per-function target attributes and only called
 * after the CPU (and its OS) was seen to have these features. Compiled a second time
 * with BN_KERNELS_SIMDE into the kernel test only: SIMDe (simde/x86/avx512.h) supplies
 * the intrinsics in portable C, so the same code is checked on any machine; that table
 * is bn_kernels_avx512_simde, with the AVX2 entries left NULL.
 */
#include <stddef.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/blocks.h"

#if defined(BN_KERNELS_SIMDE)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>
#define BN_AVX512
#define BN_AVX512_TABLE bn_kernels_avx512_simde
#define BN_AVX512_NAME  "avx512-simde"
/* the entries taken from the AVX2 family: the test fills them from the scalar one */
#define BN_FROM_AVX2(fn) NULL
#define BN_AVX512_BUILD 1
#elif defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BN_AVX512 \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define BN_AVX512_TABLE bn_kernels_avx512
#define BN_AVX512_NAME  "avx512"
#define BN_FROM_AVX2(fn) fn
#define BN_AVX512_BUILD 1
#endif

#ifdef BN_AVX512_BUILD

#define BN_INLINE static inline __attribute__((always_inline))

/* A vector whose value the compiler may no longer assume (an empty asm on the register);
 * nothing under SIMDe, whose vectors are not registers, and where speed does not count. */
#if defined(BN_KERNELS_SIMDE)
#define BN_OPAQUE(v) ((void)0)
#else
#define BN_OPAQUE(v) __asm__("" : "+v"(v))
#endif

/* How far ahead of the weights being read the TQ2_0 block sums (and so the decode of a
 * row with mixed scales) ask for cache lines, as the AVX2 kernels do. */
#ifndef BN_PREFETCH_AHEAD
#define BN_PREFETCH_AHEAD 4096
#endif

/* How far ahead the I2_S decode asks for lines, and into the second-level cache (T1)
 * rather than the first: on the machine measured (AMD Zen 4, rows in huge pages) it
 * streamed 12 to 15 GB/s asking into the first-level cache 4 or 8 KiB ahead, 28 to 30
 * asking into the second 8 to 12 KiB ahead, where a plain read of the same rows took
 * 31 to 34. */
#ifndef BN_DECODE_AHEAD
#define BN_DECODE_AHEAD 8192
#endif

/* How many rows ahead the prefill tiles' loop asks for the weight rows' lines
 * (tile_ahead_rows; one group of rows of model/linear.c). On the machine measured (AMD
 * Zen 4, 2 threads, eight tokens in two tiles against TQ2_0 rows from memory, in a
 * harness) the two-row tiles ran 1.2 to 1.4 times as fast asking 8, 16 or 24 rows
 * ahead as without (207 to 251 GMAC/s): the hardware's prefetchers alone left the
 * tiles waiting on memory while reading it at a fifth of its rate. The amx family's tiles
 * (few tokens; many go to its matrix kernels) were not measured with it and keep 0. */
#ifndef BN_TILE_AHEAD_ROWS
#define BN_TILE_AHEAD_ROWS 16
#endif

/* The shifts of the 64-bit lanes that bring the fields of a broadcast 32-byte group to
 * bits 1-0 of each byte: I2_S weights 0..63 (bits 7-6 below, 5-4 above) and 64..127
 * (3-2, 1-0); TQ2_0 weights 0..63 of a half (1-0, 3-2) and 64..127 (5-4, 7-6). */
BN_AVX512 BN_INLINE __m512i bn_i2s_shift_lo(void)
{
    return _mm512_set_epi64(4, 4, 4, 4, 6, 6, 6, 6);
}
BN_AVX512 BN_INLINE __m512i bn_i2s_shift_hi(void)
{
    return _mm512_set_epi64(0, 0, 0, 0, 2, 2, 2, 2);
}
BN_AVX512 BN_INLINE __m512i bn_tq2_shift_lo(void)
{
    return _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
}
BN_AVX512 BN_INLINE __m512i bn_tq2_shift_hi(void)
{
    return _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4);
}

/* The 32 bytes at p in both halves of a zmm. */
BN_AVX512 BN_INLINE __m512i bn_bcast32(const uint8_t *p)
{
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

/* 64 codes (0..3, one a byte) out of a broadcast group: its lanes shifted, masked. */
BN_AVX512 BN_INLINE __m512i bn_codes64(__m512i group, __m512i shift)
{
    return _mm512_and_si512(_mm512_srlv_epi64(group, shift), _mm512_set1_epi8(3));
}

/* vpdpbusd, acc + the products of the 64 unsigned bytes a with the 64 signed bytes b,
 * four to an int32 lane; bn_dp64 takes b from memory at q. Written as asm in the native
 * build: around the intrinsic GCC 12 copies a loop's accumulator into another register
 * and back each time, 16 of the 35 instructions of the 4-token I2_S tile's loop; Zen 4
 * runs those copies at no cost, but llvm-mca's Ice Lake and Sapphire Rapids models put
 * that loop at 19.5 cycles a block with them and 6.0 without (the AVX2 one: 14.4). */
BN_AVX512 BN_INLINE __m512i bn_dpbusd(__m512i acc, __m512i a, __m512i b)
{
#if defined(BN_KERNELS_SIMDE)
    return _mm512_dpbusd_epi32(acc, a, b);
#else
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
#endif
}

BN_AVX512 BN_INLINE __m512i bn_dp64(__m512i acc, __m512i codes, const int8_t *q)
{
#if defined(BN_KERNELS_SIMDE)
    return _mm512_dpbusd_epi32(acc, codes, _mm512_loadu_si512((const void *)q));
#else
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(codes), "m"(*(const int8_t(*)[64])q));
    return acc;
#endif
}

/* The sixteen lanes folded to eight. */
BN_AVX512 BN_INLINE __m256i bn_fold256(__m512i v)
{
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* Sum of the sixteen int32 lanes. */
BN_AVX512 BN_INLINE int32_t bn_hsum_i32_avx512(__m512i v)
{
    __m256i y = bn_fold256(v);
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* Sum of the eight int32 lanes. */
BN_AVX512 BN_INLINE int32_t bn_hsum_i32_256(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* The lane sums of four vectors at once: element j of the result is the sum of v_j. */
BN_AVX512 BN_INLINE __m128i bn_hsum4_i32_avx512(__m512i v0, __m512i v1, __m512i v2,
                                                __m512i v3)
{
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(bn_fold256(v0), bn_fold256(v1)),
                                  _mm256_hadd_epi32(bn_fold256(v2), bn_fold256(v3)));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* ------------------------------------------------------------- I2_S */

/* One row against one token (the decode, and the lone token of a prefill) takes the
 * codes without shifts: a code byte masked in place with 0xC0, 0x30, 0x0C or 0x03 is
 * 64, 16, 4 or 1 times one of its codes, still an unsigned byte. A block broadcast to
 * both halves of a zmm and masked with 0xC0 below and 0x30 above holds weights 0..63
 * of the block, times 64 and 16; with 0x0C and 0x03, weights 64..127, times 4 and 1.
 * Each lane's sum is divided exactly (an arithmetic shift) at the end. Per block: one
 * load, two ANDs and two vpdpbusd (the tiles' shifting form needs two shifts more). A
 * product is at most 192 * 128 in magnitude and a lane takes four a block, so the
 * lanes of a run of BN_I2S_RUN blocks stay below 2^31; longer rows are summed run by
 * run. */
#define BN_I2S_RUN 8192

/* A mask of bytes lo in the low half and hi in the high one. */
BN_AVX512 BN_INLINE __m512i bn_halves8(int lo, int hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8((char)lo)),
                              _mm256_set1_epi8((char)hi), 1);
}

/* The lanes of v (an accumulator of masked codes) divided by 2^lo below and 2^hi
 * above (exact), folded to eight. */
BN_AVX512 BN_INLINE __m256i bn_unmask(__m512i v, int lo, int hi)
{
    return _mm256_add_epi32(_mm256_srai_epi32(_mm512_castsi512_si256(v), lo),
                            _mm256_srai_epi32(_mm512_extracti64x4_epi64(v, 1), hi));
}

/* The lanes of one row's sum: two blocks (one 64-byte line) a step into four
 * accumulators, the lines BN_DECODE_AHEAD bytes ahead asked into the second-level
 * cache. */
BN_AVX512 BN_INLINE __m256i bn_i2s_row(const uint8_t *codes, const int8_t *q, int64_t n)
{
    const __m512i m01 = bn_halves8(0xC0, 0x30), m23 = bn_halves8(0x0C, 0x03);
    const int64_t nb = n / 128;
    __m256i t = _mm256_setzero_si256();
    for (int64_t b0 = 0; b0 < nb; b0 += BN_I2S_RUN) {
        const int64_t b1 = nb - b0 < BN_I2S_RUN ? nb : b0 + BN_I2S_RUN;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        int64_t b = b0;
        for (; b + 2 <= b1; b += 2) {
            const uint8_t *p = codes + b * 32;
            const int8_t *qb = q + b * 128;
            _mm_prefetch((const char *)p + BN_DECODE_AHEAD, _MM_HINT_T1);
            __m512i g = bn_bcast32(p), h = bn_bcast32(p + 32);
            a0 = bn_dp64(a0, _mm512_and_si512(g, m01), qb);
            a1 = bn_dp64(a1, _mm512_and_si512(g, m23), qb + 64);
            a2 = bn_dp64(a2, _mm512_and_si512(h, m01), qb + 128);
            a3 = bn_dp64(a3, _mm512_and_si512(h, m23), qb + 192);
        }
        if (b < b1) {
            __m512i g = bn_bcast32(codes + b * 32);
            a0 = bn_dp64(a0, _mm512_and_si512(g, m01), q + b * 128);
            a1 = bn_dp64(a1, _mm512_and_si512(g, m23), q + b * 128 + 64);
        }
        t = _mm256_add_epi32(t, _mm256_add_epi32(bn_unmask(_mm512_add_epi32(a0, a2), 6, 4),
                                                 bn_unmask(_mm512_add_epi32(a1, a3), 2, 0)));
    }
    return t;
}

BN_AVX512 static int32_t bn_dot_i2s_q8_avx512(const uint8_t *codes, const int8_t *q, int64_t n)
{
    return bn_hsum_i32_256(bn_i2s_row(codes, q, n));
}

/* The decode: one row after the other (on the machine measured, AMD Zen 4, two rows
 * read side by side streamed from memory at half the rate of one). */
BN_AVX512 static void bn_dot_i2s_q8_rows_avx512(const uint8_t *codes, size_t row_bytes,
                                                int64_t nrows, const int8_t *q, int64_t n,
                                                int32_t *out)
{
    for (int64_t r = 0; r < nrows; r++)
        out[r] = bn_hsum_i32_256(bn_i2s_row(codes + (size_t)r * row_bytes, q, n));
}

/* The lane sums of NT tokens' accumulator pairs into out[0..NT-1], reduced together
 * (the unused ones are zero). */
BN_AVX512 BN_INLINE void bn_store_sums(__m512i acc[4][2], const int NT, int32_t *out)
{
    __m128i s4 = bn_hsum4_i32_avx512(_mm512_add_epi32(acc[0][0], acc[0][1]),
                                     _mm512_add_epi32(acc[1][0], acc[1][1]),
                                     _mm512_add_epi32(acc[2][0], acc[2][1]),
                                     _mm512_add_epi32(acc[3][0], acc[3][1]));
    if (NT == 4) {
        _mm_storeu_si128((__m128i *)out, s4);
    } else {
        int32_t t[4];
        _mm_storeu_si128((__m128i *)t, s4);
        for (int j = 0; j < NT; j++)
            out[j] = t[j];
    }
}

/* The tile body for a constant number of token rows NT (2..4): each block's codes are
 * extracted once for all tokens; two accumulators a token, so that no chain of
 * dependent multiply-adds sets the pace. */
BN_AVX512 BN_INLINE void bn_i2s_tile_body(const uint8_t *codes, const int8_t *q, int64_t n,
                                          const int NT, int32_t *out)
{
    const int64_t nb = n / 128;
    __m512i acc[4][2];
    for (int t = 0; t < 4; t++)
        acc[t][0] = acc[t][1] = _mm512_setzero_si512();
    for (int64_t b = 0; b < nb; b++) {
        __m512i g = bn_bcast32(codes + b * 32);
        __m512i c0 = bn_codes64(g, bn_i2s_shift_lo()), c1 = bn_codes64(g, bn_i2s_shift_hi());
        const int8_t *qb = q + b * 128;
        for (int t = 0; t < NT; t++) {
            acc[t][0] = bn_dp64(acc[t][0], c0, qb + (size_t)t * (size_t)n);
            acc[t][1] = bn_dp64(acc[t][1], c1, qb + (size_t)t * (size_t)n + 64);
        }
    }
    bn_store_sums(acc, NT, out);
}

BN_AVX512 static void bn_dot_i2s_q8_tile_avx512(const uint8_t *codes, const int8_t *q,
                                                int64_t n, int nt, int32_t *out)
{
    switch (nt) {
    case 4: bn_i2s_tile_body(codes, q, n, 4, out); break;
    case 3: bn_i2s_tile_body(codes, q, n, 3, out); break;
    case 2: bn_i2s_tile_body(codes, q, n, 2, out); break;
    default: out[0] = bn_dot_i2s_q8_avx512(codes, q, n); break;
    }
}

/* Two rows (codes0, codes1) against NT token rows: each block's activations loaded
 * into registers once for both rows, one accumulator a row and token. out[j] for the
 * first row, out[4 + j] for the second: the exact integer sums of bn_i2s_tile_body. */
BN_AVX512 BN_INLINE void bn_i2s_tile2_body(const uint8_t *codes0, const uint8_t *codes1,
                                           const int8_t *q, int64_t n, const int NT,
                                           int32_t *out)
{
    const int64_t nb = n / 128;
    __m512i acc[2][4];
    for (int t = 0; t < 4; t++)
        acc[0][t] = acc[1][t] = _mm512_setzero_si512();
    for (int64_t b = 0; b < nb; b++) {
        __m512i g0 = bn_bcast32(codes0 + b * 32), g1 = bn_bcast32(codes1 + b * 32);
        __m512i c00 = bn_codes64(g0, bn_i2s_shift_lo()), c01 = bn_codes64(g0, bn_i2s_shift_hi());
        __m512i c10 = bn_codes64(g1, bn_i2s_shift_lo()), c11 = bn_codes64(g1, bn_i2s_shift_hi());
        const int8_t *qb = q + b * 128;
        for (int t = 0; t < NT; t++) {
            const int8_t *qt = qb + (size_t)t * (size_t)n;
            __m512i a0 = _mm512_loadu_si512((const void *)qt);
            __m512i a1 = _mm512_loadu_si512((const void *)(qt + 64));
            BN_OPAQUE(a0);   /* loaded once for both rows: GCC would load again */
            BN_OPAQUE(a1);
            acc[0][t] = bn_dpbusd(bn_dpbusd(acc[0][t], c00, a0), c01, a1);
            acc[1][t] = bn_dpbusd(bn_dpbusd(acc[1][t], c10, a0), c11, a1);
        }
    }
    /* stored whole (the lanes past NT are 0), so that the caller's vector loads of out
     * are forwarded from these stores */
    _mm_storeu_si128((__m128i *)out,
                     bn_hsum4_i32_avx512(acc[0][0], acc[0][1], acc[0][2], acc[0][3]));
    _mm_storeu_si128((__m128i *)(out + 4),
                     bn_hsum4_i32_avx512(acc[1][0], acc[1][1], acc[1][2], acc[1][3]));
}

BN_AVX512 static void bn_dot_i2s_q8_tile2_avx512(const uint8_t *codes, size_t row_bytes,
                                                 const int8_t *q, int64_t n, int nt,
                                                 int32_t *out)
{
    const uint8_t *codes1 = codes + row_bytes;
    switch (nt) {
    case 4: bn_i2s_tile2_body(codes, codes1, q, n, 4, out); break;
    case 3: bn_i2s_tile2_body(codes, codes1, q, n, 3, out); break;
    case 2: bn_i2s_tile2_body(codes, codes1, q, n, 2, out); break;
    default: bn_i2s_tile2_body(codes, codes1, q, n, 1, out); break;
    }
}

/* ------------------------------------------------------------- TQ2_0 */

/* The block sums, and the decode of a TQ2_0 row whose blocks have mixed scales, work in
 * ymm registers (vpdpbusd of AVX512-VL): on the machine measured (AMD Zen 4) a loop of
 * zmm loads streamed from memory at 0.67 to 0.93 of the rate of the same loop with ymm
 * loads (three runs), and the zmm form of this kernel was no faster than the AVX2 one
 * where the ymm form is. Rows with one scale take bn_tq2_row_codes below. */

/* One TQ2_0 block (its 64 code bytes at qs; in each 32-byte half, byte m holds weights
 * m, 32+m, 64+m, 96+m of the half in bits 1-0, 3-2, 5-4, 7-6) against q[0..255]: eight
 * int32 lanes. */
BN_AVX512 BN_INLINE __m256i bn_tq2_block(const uint8_t *qs, const int8_t *q)
{
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i a = _mm256_setzero_si256(), e = a;
    for (int h = 0; h < 2; h++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
        const int8_t *qh = q + 128 * h;
        a = _mm256_dpbusd_epi32(a, _mm256_and_si256(v, m3),
                                _mm256_loadu_si256((const __m256i *)qh));
        e = _mm256_dpbusd_epi32(e, _mm256_and_si256(_mm256_srli_epi16(v, 2), m3),
                                _mm256_loadu_si256((const __m256i *)(qh + 32)));
        a = _mm256_dpbusd_epi32(a, _mm256_and_si256(_mm256_srli_epi16(v, 4), m3),
                                _mm256_loadu_si256((const __m256i *)(qh + 64)));
        e = _mm256_dpbusd_epi32(e, _mm256_and_si256(_mm256_srli_epi16(v, 6), m3),
                                _mm256_loadu_si256((const __m256i *)(qh + 96)));
    }
    return _mm256_add_epi32(a, e);
}


/* Four consecutive TQ2_0 blocks (`stride` bytes apart) against q[0..1023]: their four
 * sums; the four lines BN_PREFETCH_AHEAD bytes on are asked for first. */
BN_AVX512 BN_INLINE __m128i bn_tq2_blocks4(const uint8_t *p, size_t stride, const int8_t *q)
{
    for (int l = 0; l < 4; l++)
        _mm_prefetch((const char *)p + BN_PREFETCH_AHEAD + 64 * l, _MM_HINT_T0);
    __m256i h = _mm256_hadd_epi32(
        _mm256_hadd_epi32(bn_tq2_block(p, q), bn_tq2_block(p + stride, q + 256)),
        _mm256_hadd_epi32(bn_tq2_block(p + 2 * stride, q + 512),
                          bn_tq2_block(p + 3 * stride, q + 768)));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

BN_AVX512 static void bn_dot_tq2_q8_avx512(const uint8_t *blocks, size_t stride,
                                           const int8_t *q, int64_t n, int32_t *sums)
{
    const int64_t nb = n / 256;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4)
        _mm_storeu_si128((__m128i *)(sums + b),
                         bn_tq2_blocks4(blocks + (size_t)b * stride, stride, q + b * 256));
    for (; b < nb; b++)
        sums[b] = bn_hsum_i32_256(bn_tq2_block(blocks + (size_t)b * stride, q + b * 256));
}

/* An f16 scale as a double (exact). */
BN_AVX512 BN_INLINE double bn_f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/* Four block sums minus their activation sums, times the blocks' scales, in double,
 * added to acc in block order (the products are exact: an int32 times an f16). */
BN_AVX512 BN_INLINE double bn_tq_combine4(double acc, __m128i s4, const int32_t *qbsum,
                                          const uint8_t *p, size_t stride, size_t doff)
{
    s4 = _mm_sub_epi32(s4, _mm_loadu_si128((const __m128i *)qbsum));
    uint16_t h[4];
    for (int j = 0; j < 4; j++)
        memcpy(&h[j], p + (size_t)j * stride + doff, 2);
    uint64_t h64;
    memcpy(&h64, h, 8);
    __m256d d = _mm256_cvtps_pd(_mm_cvtph_ps(_mm_set_epi64x(0, (long long)h64)));
    double v[4];
    _mm256_storeu_pd(v, _mm256_mul_pd(_mm256_cvtepi32_pd(s4), d));
    acc += v[0];
    acc += v[1];
    acc += v[2];
    acc += v[3];
    return acc;
}

/* The decode of a row whose blocks have different scales: its blocks in order, four
 * at a time, each sum minus its activation sum times its scale added in double. */
BN_AVX512 BN_INLINE double bn_tq2_row_mixed(const uint8_t *row, const int8_t *q,
                                            const int32_t *qbsum, int64_t nb)
{
    const size_t stride = sizeof(bn_block_tq2_0);
    const size_t doff = offsetof(bn_block_tq2_0, d);
    double acc = 0.0;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        const uint8_t *p = row + (size_t)b * stride;
        acc = bn_tq_combine4(acc, bn_tq2_blocks4(p, stride, q + b * 256), qbsum + b, p,
                             stride, doff);
    }
    for (; b < nb; b++) {
        const uint8_t *p = row + (size_t)b * stride;
        int32_t sum = bn_hsum_i32_256(bn_tq2_block(p, q + b * 256));
        acc += (double)(sum - qbsum[b]) * bn_f16_at(p + doff);
    }
    return acc;
}

/* Four by four int32 (m[i] element j) transposed: element i of t[j] is m[i]'s
 * element j. */
BN_AVX512 BN_INLINE void bn_transpose4_i32(const __m128i m[4], __m128i t[4])
{
    __m128i lo01 = _mm_unpacklo_epi32(m[0], m[1]), hi01 = _mm_unpackhi_epi32(m[0], m[1]);
    __m128i lo23 = _mm_unpacklo_epi32(m[2], m[3]), hi23 = _mm_unpackhi_epi32(m[2], m[3]);
    t[0] = _mm_unpacklo_epi64(lo01, lo23);
    t[1] = _mm_unpackhi_epi64(lo01, lo23);
    t[2] = _mm_unpacklo_epi64(hi01, hi23);
    t[3] = _mm_unpackhi_epi64(hi01, hi23);
}

/* The prefill tiles below read rows that the caches hold (a group of rows meets one
 * tile after the other) and work in zmm registers: two vpdpbusd per 128 weights and
 * token. */

/* The TQ2_0 tile body for a row whose blocks have different scales: NT token rows, each
 * block's codes extracted once for all of them. The block sums minus the activation
 * sums are transposed to one vector per block (a lane per token), so that a vector of
 * four double accumulators adds every token's blocks in block order, as the decode
 * does. */
BN_AVX512 BN_INLINE void bn_tq2_tile_body(const uint8_t *row, const int8_t *q,
                                          const int32_t *qbsum, int64_t n, const int NT,
                                          double *out)
{
    const size_t stride = sizeof(bn_block_tq2_0), doff = offsetof(bn_block_tq2_0, d);
    const int64_t nb = n / 256;
    __m256d acc = _mm256_setzero_pd();
    for (int64_t b0 = 0; b0 < nb; b0 += 4) {
        const int nj = nb - b0 < 4 ? (int)(nb - b0) : 4;
        const uint8_t *p = row + (size_t)b0 * stride;
        __m512i l[4][4];   /* token, block; the blocks past the row's end add nothing */
        for (int t = 0; t < 4; t++)
            for (int j = 0; j < 4; j++)
                l[t][j] = _mm512_setzero_si512();
        for (int j = 0; j < nj; j++) {
            const uint8_t *blk = p + (size_t)j * stride;
            __m512i g0 = bn_bcast32(blk), g1 = bn_bcast32(blk + 32);
            __m512i c[4] = {bn_codes64(g0, bn_tq2_shift_lo()),
                            bn_codes64(g0, bn_tq2_shift_hi()),
                            bn_codes64(g1, bn_tq2_shift_lo()),
                            bn_codes64(g1, bn_tq2_shift_hi())};
            for (int t = 0; t < NT; t++) {
                const int8_t *qt = q + (size_t)t * (size_t)n + (b0 + j) * 256;
                __m512i a = bn_dp64(_mm512_setzero_si512(), c[0], qt);
                __m512i e = bn_dp64(_mm512_setzero_si512(), c[1], qt + 64);
                a = bn_dp64(a, c[2], qt + 128);
                e = bn_dp64(e, c[3], qt + 192);
                l[t][j] = _mm512_add_epi32(a, e);
            }
        }
        /* per token: its four block sums minus the activation sums of those blocks */
        __m128i st[4];
        for (int t = 0; t < 4; t++) {
            if (t >= NT) {
                st[t] = _mm_setzero_si128();
                continue;
            }
            __m128i s4 = bn_hsum4_i32_avx512(l[t][0], l[t][1], l[t][2], l[t][3]);
            const int32_t *qb = qbsum + t * nb + b0;
            __m128i q4 = nj == 4 ? _mm_loadu_si128((const __m128i *)qb)
                                 : _mm_setr_epi32(qb[0], nj > 1 ? qb[1] : 0,
                                                  nj > 2 ? qb[2] : 0, 0);
            st[t] = _mm_sub_epi32(s4, q4);
        }
        __m128i col[4];   /* col[j] holds block j of every token */
        bn_transpose4_i32(st, col);
        for (int j = 0; j < nj; j++) {
            __m256d d = _mm256_set1_pd(bn_f16_at(p + (size_t)j * stride + doff));
            acc = _mm256_add_pd(acc, _mm256_mul_pd(_mm256_cvtepi32_pd(col[j]), d));
        }
    }
    double v[4];
    _mm256_storeu_pd(v, acc);
    for (int t = 0; t < NT; t++)
        out[t] = v[t];
}

/* The tile body for a row whose blocks all have the same finite scale d: every partial
 * sum of the block-order double sum is then d times an int32, exact, so that sum is d
 * times the row's integer sum, taken here in int32 lanes over the whole row (half a
 * block at a time, as the I2_S tile goes) and reduced once per token. The same doubles
 * as bn_tq2_tile_body, bit for bit. */
BN_AVX512 BN_INLINE void bn_tq2_tile_uniform_body(const uint8_t *row, const int8_t *q,
                                                  const int32_t *qbsum, int64_t n,
                                                  const int NT, double d, double *out)
{
    const size_t stride = sizeof(bn_block_tq2_0);
    const int64_t nb = n / 256;
    __m512i acc[4][2];
    for (int t = 0; t < 4; t++)
        acc[t][0] = acc[t][1] = _mm512_setzero_si512();
    for (int64_t u = 0; u < 2 * nb; u++) {
        __m512i g = bn_bcast32(row + (size_t)(u / 2) * stride + 32 * (u & 1));
        __m512i c0 = bn_codes64(g, bn_tq2_shift_lo()), c1 = bn_codes64(g, bn_tq2_shift_hi());
        const int8_t *qu = q + u * 128;
        for (int t = 0; t < NT; t++) {
            acc[t][0] = bn_dp64(acc[t][0], c0, qu + (size_t)t * (size_t)n);
            acc[t][1] = bn_dp64(acc[t][1], c1, qu + (size_t)t * (size_t)n + 64);
        }
    }
    int32_t s[4];
    bn_store_sums(acc, 4, s);
    for (int t = 0; t < NT; t++) {
        int32_t qs = 0;
        for (int64_t b = 0; b < nb; b++)
            qs += qbsum[t * nb + b];
        /* 0.0 + : an all-zero sum gives +0.0, as the block-order sum does */
        out[t] = 0.0 + (double)(s[t] - qs) * d;
    }
}

/* The scale shared by every block of the row, finite, in *d; false when the blocks'
 * scales differ (or are infinite or NaN), or the row has no blocks. */
BN_AVX512 BN_INLINE bool bn_tq2_uniform_scale(const uint8_t *row, int64_t nb, double *d)
{
    if (!bn_tq2_rows_one_scale(row, 0, nb, 1))
        return false;
    *d = bn_f16_at(row + offsetof(bn_block_tq2_0, d));
    return true;
}

/* The integer sum of a TQ2_0 row's codes times the activations, for the decode of a
 * row whose blocks share one scale: the codes masked in place as in bn_i2s_row (a half
 * block broadcast to both halves of a zmm: masks 0x03 below and 0x0C above give
 * weights 0..63 of the half, times 1 and 4; 0x30 and 0xC0, weights 64..127, times 16
 * and 64), each run of BN_I2S_RUN blocks reduced on its own (two accumulators are
 * added before the division, so a lane stays below 2^31 for a run). No software
 * prefetch: in a harness on the machine measured (AMD Zen 4, 256 MiB of 2,560-wide rows
 * in huge pages) this loop streamed 25 to 28 GB/s without, 15 to 17 asking 8 KiB ahead
 * into the second-level cache (the I2_S decode, whose blocks fill whole lines, is the
 * other way round), and the block-by-block form below 18. */
BN_AVX512 BN_INLINE int64_t bn_tq2_row_codes(const uint8_t *row, const int8_t *q, int64_t nb,
                                              const bool PREFETCH, uint32_t *differ)
{
    const size_t stride = sizeof(bn_block_tq2_0), doff = offsetof(bn_block_tq2_0, d);
    const __m512i mlo = bn_halves8(0x03, 0x0C), mhi = bn_halves8(0x30, 0xC0);
    uint16_t h0, h;
    memcpy(&h0, row + doff, 2);
    uint32_t diff = 0;
    int64_t total = 0;
    for (int64_t b0 = 0; b0 < nb; b0 += BN_I2S_RUN) {
        const int64_t b1 = nb - b0 < BN_I2S_RUN ? nb : b0 + BN_I2S_RUN;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t b = b0; b < b1; b++) {
            const uint8_t *p = row + (size_t)b * stride;
            const int8_t *qb = q + b * 256;
            memcpy(&h, p + doff, 2);
            diff |= (uint32_t)(h ^ h0);
            if (PREFETCH)
                _mm_prefetch((const char *)p + BN_DECODE_AHEAD, _MM_HINT_T1);
            __m512i g = bn_bcast32(p), e = bn_bcast32(p + 32);
            a0 = bn_dp64(a0, _mm512_and_si512(g, mlo), qb);
            a1 = bn_dp64(a1, _mm512_and_si512(g, mhi), qb + 64);
            a2 = bn_dp64(a2, _mm512_and_si512(e, mlo), qb + 128);
            a3 = bn_dp64(a3, _mm512_and_si512(e, mhi), qb + 192);
        }
        total += bn_hsum_i32_256(_mm256_add_epi32(bn_unmask(_mm512_add_epi32(a0, a2), 0, 2),
                                                  bn_unmask(_mm512_add_epi32(a1, a3), 4, 6)));
    }
    /* an infinite or NaN scale counts as differing */
    *differ = diff | ((h0 & 0x7c00u) == 0x7c00u);
    return total;
}

/* Decode: one row after the other (several rows side by side were slower from memory).
 * A row whose blocks share one finite scale d (as converted BitNet models' rows do)
 * takes its sum in integers and multiplies once: every partial sum of the block-order
 * double sum is then d times an integer, exact, so the result is the same double (as
 * the uniform tile argues). The scales are compared as the codes are read (a pass over
 * the scales first made the rows stream at half the rate); a row whose scales differ
 * is then read again block by block. */
BN_AVX512 BN_INLINE void bn_tq2_rows_body(const uint8_t *rows, size_t row_bytes,
                                          int64_t nrows, const int8_t *q,
                                          const int32_t *qbsum, int64_t n, const bool PREFETCH,
                                          double *out)
{
    const size_t doff = offsetof(bn_block_tq2_0, d);
    const int64_t nb = n / 256;
    int64_t qs = 0;
    for (int64_t b = 0; b < nb; b++)
        qs += qbsum[b];
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *row = rows + (size_t)r * row_bytes;
        uint32_t differ = 1;
        const int64_t s = nb > 0 ? bn_tq2_row_codes(row, q, nb, PREFETCH, &differ) : 0;
        /* 0.0 + : an all-zero sum gives +0.0, as the block-order sum does */
        out[r] = !differ ? 0.0 + (double)(s - qs) * bn_f16_at(row + doff)
                         : bn_tq2_row_mixed(row, q, qbsum, nb);
    }
}

BN_AVX512 static void bn_dot_tq2_q8_rows_avx512(const uint8_t *rows, size_t row_bytes,
                                                int64_t nrows, const int8_t *q,
                                                const int32_t *qbsum, int64_t n, double *out)
{
    bn_tq2_rows_body(rows, row_bytes, nrows, q, qbsum, n, false, out);
}

/* The same, the lines BN_DECODE_AHEAD bytes ahead asked into the second-level cache, as
 * the I2_S decode does: the amx family's (Intel cores), where it streamed faster. On
 * the Intel Xeon measured (1 thread, TQ2_0 2B-4T-shaped model, tg32, two rounds) the
 * model decoded 10.5 and 10.7 tokens/s with it, 9.3 and 9.9 without, 10.7 asking 4
 * KiB ahead into the first-level cache; the AMD Zen 4 above was 25% slower with it. */
__attribute__((unused))   /* the amx family's, not built everywhere */
BN_AVX512 static void bn_dot_tq2_q8_rows_ahead_avx512(const uint8_t *rows, size_t row_bytes,
                                                      int64_t nrows, const int8_t *q,
                                                      const int32_t *qbsum, int64_t n,
                                                      double *out)
{
    bn_tq2_rows_body(rows, row_bytes, nrows, q, qbsum, n, true, out);
}

/* The tile for a run-time nt, each size its own inlined body; rows with one scale for
 * all their blocks (as converted BitNet models have) take the uniform body. */
BN_AVX512 static void bn_dot_tq2_q8_tile_avx512(const uint8_t *row, const int8_t *q,
                                                const int32_t *qbsum, int64_t n, int nt,
                                                double *out)
{
    double d;
    if (bn_tq2_uniform_scale(row, n / 256, &d)) {
        switch (nt) {
        case 4: bn_tq2_tile_uniform_body(row, q, qbsum, n, 4, d, out); break;
        case 3: bn_tq2_tile_uniform_body(row, q, qbsum, n, 3, d, out); break;
        case 2: bn_tq2_tile_uniform_body(row, q, qbsum, n, 2, d, out); break;
        default: bn_tq2_tile_uniform_body(row, q, qbsum, n, 1, d, out); break;
        }
        return;
    }
    switch (nt) {
    case 4: bn_tq2_tile_body(row, q, qbsum, n, 4, out); break;
    case 3: bn_tq2_tile_body(row, q, qbsum, n, 3, out); break;
    case 2: bn_tq2_tile_body(row, q, qbsum, n, 2, out); break;
    default: bn_tq2_tile_body(row, q, qbsum, n, 1, out); break;
    }
}

/* Two rows with one scale each (d0, d1) against NT token rows: the uniform body for both
 * at once, each half block's activations loaded into registers once for the two rows
 * (one accumulator a row and token, the two halves of a half block added into it in
 * turn). Each row's doubles are bn_tq2_tile_uniform_body's, bit for bit. */
BN_AVX512 BN_INLINE void bn_tq2_tile2_uniform_body(const uint8_t *row0, const uint8_t *row1,
                                                   const int8_t *q, const int32_t *qbsum,
                                                   int64_t n, const int NT, double d0,
                                                   double d1, double *out)
{
    const size_t stride = sizeof(bn_block_tq2_0);
    const int64_t nb = n / 256;
    __m512i acc[2][4];
    for (int t = 0; t < 4; t++)
        acc[0][t] = acc[1][t] = _mm512_setzero_si512();
    for (int64_t u = 0; u < 2 * nb; u++) {
        const size_t off = (size_t)(u / 2) * stride + 32 * (u & 1);
        __m512i g0 = bn_bcast32(row0 + off), g1 = bn_bcast32(row1 + off);
        __m512i c00 = bn_codes64(g0, bn_tq2_shift_lo()), c01 = bn_codes64(g0, bn_tq2_shift_hi());
        __m512i c10 = bn_codes64(g1, bn_tq2_shift_lo()), c11 = bn_codes64(g1, bn_tq2_shift_hi());
        const int8_t *qu = q + u * 128;
        for (int t = 0; t < NT; t++) {
            const int8_t *qt = qu + (size_t)t * (size_t)n;
            __m512i a0 = _mm512_loadu_si512((const void *)qt);
            __m512i a1 = _mm512_loadu_si512((const void *)(qt + 64));
            BN_OPAQUE(a0);   /* loaded once for both rows: GCC would load again */
            BN_OPAQUE(a1);
            acc[0][t] = bn_dpbusd(bn_dpbusd(acc[0][t], c00, a0), c01, a1);
            acc[1][t] = bn_dpbusd(bn_dpbusd(acc[1][t], c10, a0), c11, a1);
        }
    }
    const __m128i s0 = bn_hsum4_i32_avx512(acc[0][0], acc[0][1], acc[0][2], acc[0][3]);
    const __m128i s1 = bn_hsum4_i32_avx512(acc[1][0], acc[1][1], acc[1][2], acc[1][3]);
    int32_t qs[4] = {0, 0, 0, 0};
    for (int t = 0; t < NT; t++)
        for (int64_t b = 0; b < nb; b++)
            qs[t] += qbsum[t * nb + b];
    /* out[t] = 0.0 + (double)(s - qs) * d for the four lanes at once (0.0 + : an
     * all-zero sum gives +0.0, as the block-order sum does); the lanes past NT are
     * +0.0. Stored whole, so that the caller's vector loads of out are forwarded from
     * these stores rather than waiting for four scalar ones to retire. */
    const __m128i qv = _mm_loadu_si128((const __m128i *)qs);
    const __m256d z = _mm256_setzero_pd();
    _mm256_storeu_pd(out, _mm256_add_pd(z, _mm256_mul_pd(
        _mm256_cvtepi32_pd(_mm_sub_epi32(s0, qv)), _mm256_set1_pd(d0))));
    _mm256_storeu_pd(out + 4, _mm256_add_pd(z, _mm256_mul_pd(
        _mm256_cvtepi32_pd(_mm_sub_epi32(s1, qv)), _mm256_set1_pd(d1))));
}

/* Two TQ2_0 rows (row and row + row_bytes) against nt <= 4 token rows: out[j] for the
 * first row, out[4 + j] for the second. Rows that each have one scale (known to the
 * caller, or tested here) take the two-row body; any other pair the one-row tile
 * twice. */
BN_AVX512 static void bn_dot_tq2_q8_tile2_avx512(const uint8_t *row, size_t row_bytes,
                                                 const int8_t *q, const int32_t *qbsum,
                                                 int64_t n, int nt, bool one_scale,
                                                 double *out)
{
    const size_t doff = offsetof(bn_block_tq2_0, d);
    double d0, d1;
    const uint8_t *row1 = row + row_bytes;
    if (one_scale)
        d0 = bn_f16_at(row + doff), d1 = bn_f16_at(row1 + doff);
    if (one_scale ||
        (bn_tq2_uniform_scale(row, n / 256, &d0) && bn_tq2_uniform_scale(row1, n / 256, &d1))) {
        switch (nt) {
        case 4: bn_tq2_tile2_uniform_body(row, row1, q, qbsum, n, 4, d0, d1, out); break;
        case 3: bn_tq2_tile2_uniform_body(row, row1, q, qbsum, n, 3, d0, d1, out); break;
        case 2: bn_tq2_tile2_uniform_body(row, row1, q, qbsum, n, 2, d0, d1, out); break;
        default: bn_tq2_tile2_uniform_body(row, row1, q, qbsum, n, 1, d0, d1, out); break;
        }
        return;
    }
    bn_dot_tq2_q8_tile_avx512(row, q, qbsum, n, nt, out);
    bn_dot_tq2_q8_tile_avx512(row1, q, qbsum, n, nt, out + 4);
}

/* ------------------------------------------------------------- the probe */

/* The int8 multiply-add probe on vpdpbusd: per chunk, 32 rounds of eight multiply-adds
 * of 64 byte pairs into eight accumulators, half of them w against x and half against x
 * with its halves swapped, so that every round of two covers the four 32-long dot
 * products once (128 times a chunk: BN_MAC_PEAK_CHUNK products). The operands are
 * reloaded behind a compiler barrier each chunk, so that no chunk's work can be
 * hoisted out of the loop. */
BN_AVX512 static int64_t bn_mac_i8_peak_avx512(const uint8_t *w, const int8_t *x,
                                               int64_t chunks)
{
    int64_t total = 0;
    for (int64_t c = 0; c < chunks; c++) {
        __asm__ volatile("" ::: "memory");
        const __m512i wv = _mm512_loadu_si512((const void *)w);
        const __m512i xv = _mm512_loadu_si512((const void *)x);
        const __m512i xs = _mm512_inserti64x4(   /* x[32..63], x[0..31] */
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(x + 32))),
            _mm256_loadu_si256((const __m256i *)x), 1);
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        __m512i a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        /* the accumulators made opaque, so that the compiler cannot see that the four
         * chains of each kind compute the same and do one of them */
        BN_OPAQUE(a0);
        BN_OPAQUE(a1);
        BN_OPAQUE(a2);
        BN_OPAQUE(a3);
        BN_OPAQUE(a4);
        BN_OPAQUE(a5);
        BN_OPAQUE(a6);
        BN_OPAQUE(a7);
        for (int r = 0; r < 32; r++) {
            a0 = bn_dpbusd(a0, wv, xv);
            a1 = bn_dpbusd(a1, wv, xs);
            a2 = bn_dpbusd(a2, wv, xv);
            a3 = bn_dpbusd(a3, wv, xs);
            a4 = bn_dpbusd(a4, wv, xv);
            a5 = bn_dpbusd(a5, wv, xs);
            a6 = bn_dpbusd(a6, wv, xv);
            a7 = bn_dpbusd(a7, wv, xs);
        }
        __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1),
                                                      _mm512_add_epi32(a2, a3)),
                                     _mm512_add_epi32(_mm512_add_epi32(a4, a5),
                                                      _mm512_add_epi32(a6, a7)));
        total += bn_hsum_i32_avx512(s);   /* at most 128 * 4 * 32 * 2 * 127 in size */
    }
    return total;
}

/* The training tile on twelve zmm accumulators: six rows by the two vectors of eight
 * doubles of a 16-column panel, p ascending per element as in the scalar tile; each
 * product is exact, so the fused form gives its bits. */
#define BN_TILE_ROW(r)                                                         \
    do {                                                                       \
        const __m512d x = _mm512_set1_pd(ap[r]);                               \
        c##r##0 = _mm512_fmadd_pd(x, b0, c##r##0);                              \
        c##r##1 = _mm512_fmadd_pd(x, b1, c##r##1);                              \
    } while (0)

BN_AVX512 static void bn_gemm_f64_tile_avx512(const double *a, const double *b, int64_t k,
                                              double *c)
{
    __m512d c00 = _mm512_loadu_pd(c + 0 * BN_GEMM_NR), c01 = _mm512_loadu_pd(c + 0 * BN_GEMM_NR + 8);
    __m512d c10 = _mm512_loadu_pd(c + 1 * BN_GEMM_NR), c11 = _mm512_loadu_pd(c + 1 * BN_GEMM_NR + 8);
    __m512d c20 = _mm512_loadu_pd(c + 2 * BN_GEMM_NR), c21 = _mm512_loadu_pd(c + 2 * BN_GEMM_NR + 8);
    __m512d c30 = _mm512_loadu_pd(c + 3 * BN_GEMM_NR), c31 = _mm512_loadu_pd(c + 3 * BN_GEMM_NR + 8);
    __m512d c40 = _mm512_loadu_pd(c + 4 * BN_GEMM_NR), c41 = _mm512_loadu_pd(c + 4 * BN_GEMM_NR + 8);
    __m512d c50 = _mm512_loadu_pd(c + 5 * BN_GEMM_NR), c51 = _mm512_loadu_pd(c + 5 * BN_GEMM_NR + 8);
    for (int64_t p = 0; p < k; p++) {
        const double *ap = a + p * BN_GEMM_MR;
        const __m512d b0 = _mm512_loadu_pd(b + p * BN_GEMM_NR);
        const __m512d b1 = _mm512_loadu_pd(b + p * BN_GEMM_NR + 8);
        BN_TILE_ROW(0);
        BN_TILE_ROW(1);
        BN_TILE_ROW(2);
        BN_TILE_ROW(3);
        BN_TILE_ROW(4);
        BN_TILE_ROW(5);
    }
    _mm512_storeu_pd(c + 0 * BN_GEMM_NR, c00), _mm512_storeu_pd(c + 0 * BN_GEMM_NR + 8, c01);
    _mm512_storeu_pd(c + 1 * BN_GEMM_NR, c10), _mm512_storeu_pd(c + 1 * BN_GEMM_NR + 8, c11);
    _mm512_storeu_pd(c + 2 * BN_GEMM_NR, c20), _mm512_storeu_pd(c + 2 * BN_GEMM_NR + 8, c21);
    _mm512_storeu_pd(c + 3 * BN_GEMM_NR, c30), _mm512_storeu_pd(c + 3 * BN_GEMM_NR + 8, c31);
    _mm512_storeu_pd(c + 4 * BN_GEMM_NR, c40), _mm512_storeu_pd(c + 4 * BN_GEMM_NR + 8, c41);
    _mm512_storeu_pd(c + 5 * BN_GEMM_NR, c50), _mm512_storeu_pd(c + 5 * BN_GEMM_NR + 8, c51);
}
#undef BN_TILE_ROW

/* The float tile: a row of 32 floats is two zmm, twelve rows 24 accumulators, enough to
 * keep two 512-bit FMA pipes busy through their latency; each step loads two vectors of
 * B and broadcasts twelve floats of A for 24 multiply-adds. p ascending, one fused
 * multiply-add per product, as the scalar tile. */
#if !defined(BN_KERNELS_SIMDE)
#define BN_TILE_ROW(r)                                                                   \
    do {                                                                                 \
        const __m512 x = _mm512_set1_ps(ap[r]);                                          \
        c##r##a = _mm512_fmadd_ps(x, b0, c##r##a);                                       \
        c##r##b = _mm512_fmadd_ps(x, b1, c##r##b);                                       \
    } while (0)
#define BN_TILE_LOAD(r)                                                                  \
    __m512 c##r##a = _mm512_loadu_ps(c + r * C), c##r##b = _mm512_loadu_ps(c + r * C + 16)
#define BN_TILE_STORE(r)                                                                 \
    _mm512_storeu_ps(c + r * C, c##r##a), _mm512_storeu_ps(c + r * C + 16, c##r##b)
BN_AVX512 static void bn_gemm_f32_tile_avx512(const float *a, const float *b, int64_t k,
                                              float *c)
{
    enum { R = BN_GEMM_MR_F32, C = BN_GEMM_NR_F32 };
    BN_TILE_LOAD(0); BN_TILE_LOAD(1); BN_TILE_LOAD(2); BN_TILE_LOAD(3);
    BN_TILE_LOAD(4); BN_TILE_LOAD(5); BN_TILE_LOAD(6); BN_TILE_LOAD(7);
    BN_TILE_LOAD(8); BN_TILE_LOAD(9); BN_TILE_LOAD(10); BN_TILE_LOAD(11);
    for (int64_t p = 0; p < k; p++) {
        const float *ap = a + p * R;
        const __m512 b0 = _mm512_loadu_ps(b + p * C), b1 = _mm512_loadu_ps(b + p * C + 16);
        BN_TILE_ROW(0);
        BN_TILE_ROW(1);
        BN_TILE_ROW(2);
        BN_TILE_ROW(3);
        BN_TILE_ROW(4);
        BN_TILE_ROW(5);
        BN_TILE_ROW(6);
        BN_TILE_ROW(7);
        BN_TILE_ROW(8);
        BN_TILE_ROW(9);
        BN_TILE_ROW(10);
        BN_TILE_ROW(11);
    }
    BN_TILE_STORE(0); BN_TILE_STORE(1); BN_TILE_STORE(2); BN_TILE_STORE(3);
    BN_TILE_STORE(4); BN_TILE_STORE(5); BN_TILE_STORE(6); BN_TILE_STORE(7);
    BN_TILE_STORE(8); BN_TILE_STORE(9); BN_TILE_STORE(10); BN_TILE_STORE(11);
}
#undef BN_TILE_LOAD
#undef BN_TILE_STORE
#undef BN_TILE_ROW
#endif

/* The f16 rows of an output layer against up to eight tokens (a step of several
 * sequences, the last tokens of prompts): each row is read and converted once for all of
 * them, where the AVX2 kernel reads it again for every two tokens. The floats are the
 * AVX2 one-row kernel's (bn_dot_f16_f32_avx2): its four 8-lane accumulators take
 * elements 32k + 8a; here a zmm holds two of them side by side (lanes 0-7 accumulator
 * 0 and 8-15 accumulator 1, the second zmm 2 and 3), and each lane sees the same fused
 * multiply-adds in the same order. The rest after the multiple of 32 and the reduction
 * are that kernel's, on the four halves. Not built under SIMDe, whose portable fmadd
 * rounds twice: there the AVX2 entry's place is the scalar one. */
#if !defined(BN_KERNELS_SIMDE)
#define BN_F16_LONG_ROW_AVX512 512

BN_AVX512 BN_INLINE float bn_f16_finish_avx512(const uint16_t *x, const float *y, int64_t n,
                                               __m512 lo, __m512 hi)
{
    int64_t i = n / 32 * 32;
    __m256 a0 = _mm512_castps512_ps256(lo);
    const __m256 a1 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(lo), 1));
    const __m256 a2 = _mm512_castps512_ps256(hi);
    const __m256 a3 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(hi), 1));
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
                             _mm256_loadu_ps(y + i), a0);
    __m256 acc = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_movehdup_ps(half));
    float sum = _mm_cvtss_f32(half);
    for (; i < n; i++)
        sum += bn_f16_decode(x[i]) * y[i];
    return sum;
}

#define BN_F16_RB 8
#define BN_F16_KC 256

/* The multi-token kernel for long rows. Rows in blocks of BN_F16_RB, each block's
 * columns in chunks of BN_F16_KC: the queries' chunks (8 KB for eight) stay in the
 * first-level cache while the block's rows pass over them, every (row, query) keeping
 * its two accumulators in acc[] between chunks (read straight through, eight queries of
 * 2,560 floats came from the second-level cache at every row). Each pair of rows is met
 * by up to eight queries at once, the lanes of the first zmm accumulator (elements
 * 32k .. 32k + 15) in one pass over the chunk and those of the second (32k + 16 ..
 * 32k + 31) in a second pass, each lane holding the AVX2 one-row kernel's accumulator
 * as said above, so every float is that kernel's. Each query's vector is held in a register for both rows (GCC would
 * load it again for the second; these cores load fewer zmm vectors a cycle than they
 * multiply), and the next block's lines are asked for one in each step of 32 columns
 * rather than in a burst at the start of a chunk, which stalled the loads behind it.
 * Measured 1 thread, 8 queries against rows of 2,560: on the Intel Xeon (300,000 rows,
 * far larger than the caches) 46.8 GMAC/s against 27.7 for the kernel it replaced; on
 * the AMD Zen 4 (65,536 rows, best of 3 alternating runs) 38.1 against 31.2, and
 * 44.5 against 37.1 with the rows in the second-level cache. */
BN_AVX512 BN_INLINE void bn_f16_half_pass(const uint16_t *x0, const uint16_t *x1,
                                          const float *const *y, const int NY, const int NR,
                                          int64_t k0, int64_t ce, __m512 (*acc0)[2],
                                          __m512 (*acc1)[2], int h, const char *ahead)
{
    __m512 a0[BN_F16_MULTI_MAX], a1[BN_F16_MULTI_MAX];
#pragma GCC unroll 8
    for (int j = 0; j < NY; j++) {
        a0[j] = acc0[j][h];
        a1[j] = NR == 2 ? acc1[j][h] : a0[j];
    }
    for (int64_t k = k0; k < ce; k += 32, ahead += 64) {
        _mm_prefetch(ahead, _MM_HINT_T1);   /* never faults */
        const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x0 + k)));
        const __m512 w1 =
            NR == 2 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x1 + k))) : w0;
#pragma GCC unroll 8
        for (int j = 0; j < NY; j++) {
            __m512 yv = _mm512_loadu_ps(y[j] + k);
            __asm__("" : "+v"(yv));   /* one load for both rows' multiply-adds */
            a0[j] = _mm512_fmadd_ps(w0, yv, a0[j]);
            if (NR == 2)
                a1[j] = _mm512_fmadd_ps(w1, yv, a1[j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NY; j++) {
        acc0[j][h] = a0[j];
        if (NR == 2)
            acc1[j][h] = a1[j];
    }
}

#define BN_F16_HALF_PASS(NR, xa, xb, aa, ab) \
    switch (ny) { \
    case 8: bn_f16_half_pass(xa, xb, y, 8, NR, k0, ce, aa, ab, h, ahead); break; \
    case 7: bn_f16_half_pass(xa, xb, y, 7, NR, k0, ce, aa, ab, h, ahead); break; \
    case 6: bn_f16_half_pass(xa, xb, y, 6, NR, k0, ce, aa, ab, h, ahead); break; \
    case 5: bn_f16_half_pass(xa, xb, y, 5, NR, k0, ce, aa, ab, h, ahead); break; \
    case 4: bn_f16_half_pass(xa, xb, y, 4, NR, k0, ce, aa, ab, h, ahead); break; \
    case 3: bn_f16_half_pass(xa, xb, y, 3, NR, k0, ce, aa, ab, h, ahead); break; \
    case 2: bn_f16_half_pass(xa, xb, y, 2, NR, k0, ce, aa, ab, h, ahead); break; \
    default: bn_f16_half_pass(xa, xb, y, 1, NR, k0, ce, aa, ab, h, ahead); break; \
    }

BN_AVX512 static void bn_dot_f16_long_avx512(const uint16_t *x, size_t stride, int64_t nx,
                                             const float *const *y, int ny, int64_t n,
                                             float *const *out)
{
    const int64_t n32 = n / 32 * 32, chunks = (n32 + BN_F16_KC - 1) / BN_F16_KC;
    __m512 acc[BN_F16_RB][BN_F16_MULTI_MAX][2];
    for (int64_t i0 = 0; i0 < nx; i0 += BN_F16_RB) {
        const int rb = nx - i0 < BN_F16_RB ? (int)(nx - i0) : BN_F16_RB;
        for (int r = 0; r < rb; r++)
            for (int j = 0; j < ny; j++)
                acc[r][j][0] = acc[r][j][1] = _mm512_setzero_ps();
        /* the next block, a share each chunk, a line each step of its passes */
        const uintptr_t next = (uintptr_t)(x + (size_t)(i0 + BN_F16_RB) * stride);
        const size_t next_bytes = (size_t)BN_F16_RB * stride * sizeof(uint16_t);
        for (int64_t c = 0; c < n32; c += BN_F16_KC) {
            const int64_t ce = c + BN_F16_KC < n32 ? c + BN_F16_KC : n32, steps = (ce - c) / 32;
            const char *share =
                (const char *)(next + (next_bytes * (size_t)(c / BN_F16_KC) / (size_t)chunks &
                                       ~(size_t)63));
            for (int r = 0; r < rb; r += 2) {
                const uint16_t *x0 = x + (size_t)(i0 + r) * stride, *x1 = x0 + stride;
                for (int h = 0; h < 2; h++) {
                    const int64_t k0 = c + 16 * h;
                    const char *ahead = share + 64 * steps * (r + h);
                    if (r + 1 < rb) {
                        BN_F16_HALF_PASS(2, x0, x1, acc[r], acc[r + 1])
                    } else {
                        BN_F16_HALF_PASS(1, x0, x0, acc[r], acc[r])
                    }
                }
            }
        }
        for (int r = 0; r < rb; r++)
            for (int j = 0; j < ny; j++)
                out[j][i0 + r] = bn_f16_finish_avx512(x + (size_t)(i0 + r) * stride, y[j], n,
                                                      acc[r][j][0], acc[r][j][1]);
    }
}
#undef BN_F16_HALF_PASS

/* The f16 decode (the output layer against one token): one row after the other, 32
 * elements a step into two zmm accumulators (the AVX2 one-row kernel's four side by
 * side, so every float is that kernel's); PREFETCH: each line asked for
 * BN_DECODE_AHEAD bytes ahead into the second-level cache. */
BN_AVX512 BN_INLINE void bn_f16_rows_body(const uint16_t *x, size_t stride, int64_t nrows,
                                          const float *y, int64_t n, const bool PREFETCH,
                                          float *out)
{
    const int64_t n32 = n / 32 * 32;
    for (int64_t r = 0; r < nrows; r++) {
        const uint16_t *row = x + (size_t)r * stride;
        __m512 lo = _mm512_setzero_ps(), hi = lo;
        for (int64_t i = 0; i < n32; i += 32) {
            if (PREFETCH)
                _mm_prefetch((const char *)(row + i) + BN_DECODE_AHEAD, _MM_HINT_T1);
            lo = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + i))),
                                 _mm512_loadu_ps(y + i), lo);
            hi = _mm512_fmadd_ps(
                _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + i + 16))),
                _mm512_loadu_ps(y + i + 16), hi);
        }
        out[r] = bn_f16_finish_avx512(row, y, n, lo, hi);
    }
}

/* No software prefetch in the avx512 family: in a harness on the machine measured (AMD
 * Zen 4, 256 MiB of rows in huge pages, best of seven) this loop streamed 21 to 30 GB/s
 * without, 22 to 24 asking 8 KiB ahead into the second-level cache, and the AVX2
 * kernel's four runs of rows side by side 10 to 26. */
BN_AVX512 static void bn_dot_f16_f32_rows_avx512(const uint16_t *x, size_t stride,
                                                 int64_t nrows, const float *y, int64_t n,
                                                 float *out)
{
    bn_f16_rows_body(x, stride, nrows, y, n, false, out);
}

/* The amx family's (Intel cores) asks ahead: on the Intel Xeon measured (1 thread, the
 * I2_S 2B-4T-shaped model, tg32, two rounds) the model decoded 13.5 and 13.2 tokens/s
 * with it, 10.9 and 11.7 without, 12.9 and 13.0 asking 4 KiB ahead into the first-level
 * cache. */
__attribute__((unused))   /* the amx family's, not built everywhere */
BN_AVX512 static void bn_dot_f16_f32_rows_ahead_avx512(const uint16_t *x, size_t stride,
                                                       int64_t nrows, const float *y,
                                                       int64_t n, float *out)
{
    bn_f16_rows_body(x, stride, nrows, y, n, true, out);
}

/* Attention's scores over an f16 cache (rows shorter than BN_F16_LONG_ROW_AVX512, a
 * head's width): every key row against NY <= 4 queries, the row converted 32 values
 * at a time into two zmm, each multiplied into the two accumulators of every query,
 * which hold the AVX2 one-row kernel's four side by side as in bn_f16_half_pass; the
 * reduction is that kernel's (bn_f16_finish_avx512). Where the AVX2 kernel passes over
 * a row four times, one accumulator at a time, this takes half the instructions for the
 * multiply-adds and conversions. A later row's lines are asked for as there: the cache's
 * rows are far apart and cold. */
#define BN_F16_SHORT_AHEAD 8

BN_AVX512 BN_INLINE void bn_f16_short_body(const uint16_t *x, size_t stride, int64_t nx,
                                           const float *const *y, const int NY, int64_t n,
                                           float *const *out)
{
    const int64_t n32 = n / 32 * 32;
    for (int64_t i = 0; i < nx; i++) {
        const uint16_t *xr = x + (size_t)i * stride;
        for (int64_t e = 0; e < n; e += 32)   /* never faults */
            _mm_prefetch((const char *)(xr + BN_F16_SHORT_AHEAD * stride + (size_t)e),
                         _MM_HINT_T0);
        __m512 lo[4], hi[4];
        for (int j = 0; j < NY; j++)
            lo[j] = hi[j] = _mm512_setzero_ps();
        for (int64_t k = 0; k < n32; k += 32) {
            const __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(xr + k)));
            const __m512 b =
                _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(xr + k + 16)));
            for (int j = 0; j < NY; j++) {
                lo[j] = _mm512_fmadd_ps(a, _mm512_loadu_ps(y[j] + k), lo[j]);
                hi[j] = _mm512_fmadd_ps(b, _mm512_loadu_ps(y[j] + k + 16), hi[j]);
            }
        }
        for (int j = 0; j < NY; j++)
            out[j][i] = bn_f16_finish_avx512(xr, y[j], n, lo[j], hi[j]);
    }
}

BN_AVX512 BN_INLINE void bn_f16_short_rows(const uint16_t *x, size_t stride, int64_t nx,
                                           const float *const *y, int ny, int64_t n,
                                           float *const *out)
{
    for (int j0 = 0; j0 < ny; j0 += 4) {
        switch (ny - j0 < 4 ? ny - j0 : 4) {
        case 4: bn_f16_short_body(x, stride, nx, y + j0, 4, n, out + j0); break;
        case 3: bn_f16_short_body(x, stride, nx, y + j0, 3, n, out + j0); break;
        case 2: bn_f16_short_body(x, stride, nx, y + j0, 2, n, out + j0); break;
        default: bn_f16_short_body(x, stride, nx, y + j0, 1, n, out + j0); break;
        }
    }
}

/* Attention's values over an f16 cache: y[j] += a[j][i] * x_i for rows i in order,
 * NY <= 4 queries, a multiply then an add per element (never fused), so the floats are
 * the scalar rule's as in the AVX2 kernel; here 32 values of each y[j] stay in two zmm
 * over a run of rows, each row's 32 values converted once for all queries. */
#define BN_AXPY_RUN_AVX512 64

BN_AVX512 BN_INLINE void bn_axpy_f16_body_avx512(const float *const *a, const int NY,
                                                 const uint16_t *x, size_t stride,
                                                 int64_t nx, float *const *y, int64_t n)
{
    const int64_t n32 = n / 32 * 32;
    for (int64_t i0 = 0; i0 < nx; i0 += BN_AXPY_RUN_AVX512) {
        const int64_t i1 = i0 + BN_AXPY_RUN_AVX512 < nx ? i0 + BN_AXPY_RUN_AVX512 : nx;
        for (int64_t d = 0; d < n32; d += 32) {
            __m512 y0[4], y1[4];
            for (int j = 0; j < NY; j++) {
                y0[j] = _mm512_loadu_ps(y[j] + d);
                y1[j] = _mm512_loadu_ps(y[j] + d + 16);
            }
            for (int64_t i = i0; i < i1; i++) {
                const uint16_t *xr = x + (size_t)i * stride + d;
                if (d == 0)   /* the next run's rows, far apart and cold */
                    for (int64_t e = 0; e < n; e += 32)
                        _mm_prefetch((const char *)(xr + BN_AXPY_RUN_AVX512 * stride +
                                                    (size_t)e), _MM_HINT_T0);
                const __m512 v0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)xr));
                const __m512 v1 =
                    _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(xr + 16)));
                for (int j = 0; j < NY; j++) {
                    const __m512 p = _mm512_set1_ps(a[j][i]);
                    y0[j] = _mm512_add_ps(y0[j], _mm512_mul_ps(p, v0));
                    y1[j] = _mm512_add_ps(y1[j], _mm512_mul_ps(p, v1));
                }
            }
            for (int j = 0; j < NY; j++) {
                _mm512_storeu_ps(y[j] + d, y0[j]);
                _mm512_storeu_ps(y[j] + d + 16, y1[j]);
            }
        }
    }
    if (n32 < n) {   /* the rest of each y[j] by the AVX2 kernel: the same rule */
        const uint16_t *xt = x + n32;
        float *yt[4];
        for (int j = 0; j < NY; j++)
            yt[j] = y[j] + n32;
        bn_axpy_f16_f32_multi_avx2(a, NY, xt, stride, nx, yt, n - n32);
    }
}

BN_AVX512 static void bn_axpy_f16_f32_multi_avx512(const float *const *a, int ny,
                                                   const uint16_t *x, size_t stride,
                                                   int64_t nx, float *const *y, int64_t n)
{
    switch (ny) {
    case 4: bn_axpy_f16_body_avx512(a, 4, x, stride, nx, y, n); break;
    case 3: bn_axpy_f16_body_avx512(a, 3, x, stride, nx, y, n); break;
    case 2: bn_axpy_f16_body_avx512(a, 2, x, stride, nx, y, n); break;
    default: bn_axpy_f16_body_avx512(a, 1, x, stride, nx, y, n); break;
    }
}

/* Rows of BN_F16_LONG_ROW_AVX512 values or more by the long-row kernel, the queries
 * BN_F16_MULTI_MAX at a time; attention's shorter rows by the short-row kernel. */
BN_AVX512 static void bn_dot_f16_f32_multi_avx512(const uint16_t *x, size_t stride,
                                                  int64_t nx, const float *const *y, int ny,
                                                  int64_t n, float *const *out)
{
    if (n < BN_F16_LONG_ROW_AVX512) {
        bn_f16_short_rows(x, stride, nx, y, ny, n, out);
        return;
    }
    for (int j0 = 0; j0 < ny; j0 += BN_F16_MULTI_MAX)
        bn_dot_f16_long_avx512(x, stride, nx, y + j0,
                               ny - j0 < BN_F16_MULTI_MAX ? ny - j0 : BN_F16_MULTI_MAX, n,
                               out + j0);
}
#define BN_F16_MULTI_AVX512 bn_dot_f16_f32_multi_avx512
#define BN_F16_ROWS_AVX512 bn_dot_f16_f32_rows_avx512
#define BN_AXPY_F16_AVX512 bn_axpy_f16_f32_multi_avx512
#else
#define BN_AXPY_F16_AVX512 BN_FROM_AVX2(bn_axpy_f16_f32_multi_avx2)
#define BN_F16_ROWS_AVX512 NULL
#define BN_F16_MULTI_AVX512 NULL
#endif


/* ------------------------------------------------------------- the matrix unit (AMX) */

/* AMX is built natively only (SIMDe has no tiles), by compilers that know it. */
#if !defined(BN_KERNELS_SIMDE) && defined(__x86_64__) && \
    ((defined(__clang__) && __clang_major__ >= 12) || \
     (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define BN_AMX_BUILD 1
#define BN_AMX \
    __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni,gfni,avx2,fma,f16c")))

/* The tile configuration (palette 1): eight tiles of 16 lines of 64 bytes. Tiles 0-3
 * hold the sums (rows 0-15 and 16-31 against tokens 0-15 and 16-31 of a pair of token
 * tiles), 4-5 the two 16-row slices of the weights' codes, 6-7 the two token tiles. */
typedef struct bn_tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} bn_tile_config;

BN_AMX BN_INLINE void bn_amx_begin(void)
{
    bn_tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.rows[i] = 16;
        c.colsb[i] = 64;
    }
    _tile_loadconfig(&c);
}

/* The affine bit matrices (GFNI) that bring bits 2s + 1 and 2s of every byte to bits 1
 * and 0 and clear the others, one instruction where a shift and a mask were two: pair
 * s0 in the low four 64-bit lanes, s1 in the high four (row 7 - i of a lane's matrix
 * gives bit i of each of its bytes). */
BN_AMX BN_INLINE __m512i bn_gf_pairs(int s0, int s1)
{
    const uint64_t a0 = ((uint64_t)(1u << 2 * s0) << 56) | ((uint64_t)(2u << 2 * s0) << 48);
    const uint64_t a1 = ((uint64_t)(1u << 2 * s1) << 56) | ((uint64_t)(2u << 2 * s1) << 48);
    return _mm512_set_epi64((long long)a1, (long long)a1, (long long)a1, (long long)a1,
                            (long long)a0, (long long)a0, (long long)a0, (long long)a0);
}

/* 64 codes (0..3, one a byte) out of a broadcast group: bn_codes64's bytes. */
BN_AMX BN_INLINE __m512i bn_gf_codes(__m512i group, __m512i m)
{
    return _mm512_gf2p8affine_epi64_epi8(group, m, 0);
}

/* The codes (0..3, a byte each) of units u0 .. u1 - 1 (128 weights each) of nr rows
 * into w, a row every ws bytes: an I2_S unit is a 32-byte block; a TQ2_0 one is half
 * of a block's codes (blocks of 256 weights with their scale after; u0 and u1 even,
 * whole blocks). The lines from pf0 to pf1 are asked for into the second-level cache
 * meanwhile, a share before each piece. Two units of every row in turn, then the next
 * two: the tile products start on the first columns, stored longest ago. Row after row
 * (each row's units together), the first tile loads of the second 16 rows read lines
 * the last stores had just written and waited for them: one thread, eight tokens, 32
 * rows of 2,560 codes a call, 38 to 48 against 50 to 52 G codes a second with the rows
 * in the second-level cache, 26.0 to 27.7 against 30.2 to 33.8 from memory. Each
 * piece's addresses from u and r: walking pointers instead ran 44 to 47 and 27.6 to
 * 28.3. */
BN_AMX BN_INLINE void bn_amx_unpack(const uint8_t *rows, size_t row_bytes, int nr,
                                    const bool TQ2, int64_t u0, int64_t u1, uint8_t *w,
                                    size_t ws, uintptr_t pf0, uintptr_t pf1)
{
    const __m512i lo = TQ2 ? bn_gf_pairs(0, 1) : bn_gf_pairs(3, 2);
    const __m512i hi = TQ2 ? bn_gf_pairs(2, 3) : bn_gf_pairs(1, 0);
    uintptr_t a = pf0 & ~(uintptr_t)63;
    const uintptr_t parts = (uintptr_t)nr * (uintptr_t)((u1 - u0 + 1) / 2);
    const uintptr_t share = ((pf1 - a + 63) / 64 + parts - 1) / parts * 64;
    for (int64_t u = u0; u < u1; u += 2) {
        for (int r = 0; r < nr; r++) {
            const uintptr_t end = a + share < pf1 ? a + share : pf1;
            for (; a < end; a += 64)
                _mm_prefetch((const char *)a, _MM_HINT_T1);   /* never faults */
            const uint8_t *row = rows + (size_t)r * row_bytes;
            uint8_t *o = w + (size_t)r * ws + (size_t)(u - u0) * 128;
            if (TQ2) {
                const uint8_t *p = row + (size_t)(u / 2) * sizeof(bn_block_tq2_0);
                const __m512i g = bn_bcast32(p), h = bn_bcast32(p + 32);
                _mm512_storeu_si512(o, bn_gf_codes(g, lo));
                _mm512_storeu_si512(o + 64, bn_gf_codes(g, hi));
                _mm512_storeu_si512(o + 128, bn_gf_codes(h, lo));
                _mm512_storeu_si512(o + 192, bn_gf_codes(h, hi));
            } else {
                const uint8_t *p = row + 32 * (size_t)u;
                const __m512i g = bn_bcast32(p);
                _mm512_storeu_si512(o, bn_gf_codes(g, lo));
                _mm512_storeu_si512(o + 64, bn_gf_codes(g, hi));
                if (u + 1 < u1) {
                    const __m512i h = bn_bcast32(p + 32);
                    _mm512_storeu_si512(o + 128, bn_gf_codes(h, lo));
                    _mm512_storeu_si512(o + 192, bn_gf_codes(h, hi));
                }
            }
        }
    }
}

/* One chunk of codes (ncs steps of 64, unpacked in w, a row every ws bytes: ROWS2, 32
 * rows, else 16) against one token tile of qp at b0 (and TOK2, the next at b1), the
 * chunk's part of those tiles: the sums at out (row r, token j at out[r * ldo + j])
 * taken up (LOAD) or started from zero, and stored back (STORE) or kept in the tiles
 * for the next chunk. Exact: int32 sums of byte products. */
BN_AMX BN_INLINE void bn_amx_chunk(const uint8_t *w, size_t ws, int64_t ncs,
                                   const int8_t *b0, const int8_t *b1, const bool ROWS2,
                                   const bool TOK2, bool load, bool store, int32_t *out,
                                   int ldo)
{
    const size_t os = (size_t)ldo * 4;
    int32_t *out1 = out + 16 * (size_t)ldo;
    if (load) {
        _tile_loadd(0, out, os);
        if (TOK2)
            _tile_loadd(1, out + 16, os);
        if (ROWS2) {
            _tile_loadd(2, out1, os);
            if (TOK2)
                _tile_loadd(3, out1 + 16, os);
        }
    }
    for (int64_t c = 0; c < ncs; c++) {
        _tile_loadd(4, w + 64 * c, ws);
        _tile_loadd(6, b0 + 1024 * c, 64);
        _tile_dpbusd(0, 4, 6);
        if (TOK2) {
            _tile_loadd(7, b1 + 1024 * c, 64);
            _tile_dpbusd(1, 4, 7);
        }
        if (ROWS2) {
            _tile_loadd(5, w + 16 * ws + 64 * c, ws);
            _tile_dpbusd(2, 5, 6);
            if (TOK2)
                _tile_dpbusd(3, 5, 7);
        }
    }
    if (store) {
        _tile_stored(0, out, os);
        if (TOK2)
            _tile_stored(1, out + 16, os);
        if (ROWS2) {
            _tile_stored(2, out1, os);
            if (TOK2)
                _tile_stored(3, out1 + 16, os);
        }
    }
}

/* One chunk against a single token tile (T <= 16, the batched decode): the steps of
 * 64 codes take turns between two sets of sums, tiles 0 and 2 (rows 0-15, 16-31) and
 * tiles 1 and 3, which stay in the tiles for the next chunk. Two chains of dependent
 * multiplies instead of one for each tile of rows, as the unit takes several steps to
 * finish one; the integer sums of the two sets are added at the end (exact in any
 * order). */
BN_AMX BN_INLINE void bn_amx_chunk_one(const uint8_t *w, size_t ws, int64_t ncs,
                                       const int8_t *b0, const bool ROWS2)
{
    int64_t c = 0;
    for (; c + 2 <= ncs; c += 2) {
        _tile_loadd(4, w + 64 * c, ws);
        _tile_loadd(6, b0 + 1024 * c, 64);
        _tile_dpbusd(0, 4, 6);
        if (ROWS2) {
            _tile_loadd(5, w + 16 * ws + 64 * c, ws);
            _tile_dpbusd(2, 5, 6);
        }
        _tile_loadd(4, w + 64 * (c + 1), ws);
        _tile_loadd(7, b0 + 1024 * (c + 1), 64);
        _tile_dpbusd(1, 4, 7);
        if (ROWS2) {
            _tile_loadd(5, w + 16 * ws + 64 * (c + 1), ws);
            _tile_dpbusd(3, 5, 7);
        }
    }
    if (c < ncs) {
        _tile_loadd(4, w + 64 * c, ws);
        _tile_loadd(6, b0 + 1024 * c, 64);
        _tile_dpbusd(0, 4, 6);
        if (ROWS2) {
            _tile_loadd(5, w + 16 * ws + 64 * c, ws);
            _tile_dpbusd(2, 5, 6);
        }
    }
}

/* The sums of bn_amx_chunk_one's two sets into out (tmp: 2 KiB of 64-byte aligned
 * scratch). */
BN_AMX BN_INLINE void bn_amx_store_one(int32_t *out, int ldo, const bool ROWS2,
                                       int32_t *tmp)
{
    const size_t os = (size_t)ldo * 4;
    _tile_stored(0, out, os);
    _tile_stored(1, tmp, 64);
    if (ROWS2) {
        _tile_stored(2, out + 16 * (size_t)ldo, os);
        _tile_stored(3, tmp + 256, 64);
    }
    for (int r = 0; r < (ROWS2 ? 32 : 16); r++) {
        int32_t *o = out + (size_t)r * (size_t)ldo;
        _mm512_storeu_si512(o, _mm512_add_epi32(_mm512_loadu_si512(o),
                                                _mm512_load_si512(tmp + 16 * r)));
    }
}

/* The integer sums of nr (<= 32) rows against T tokens, into out[r * ldo + t]
 * (ldo >= T rounded up to 32): the rows' codes unpacked BN_MATRIX_KC at a time into
 * work (in the first-level cache), each chunk met by every pair of token tiles. (Two
 * buffers in turn, so that unpacking need not wait for the last chunk's tile loads,
 * were no faster on the machine measured: 60 to 61 tokens/s for eight sequences at
 * 2 threads against 63 to 65, and 64 to 66 with chunks of 256.) With one
 * pair (T <= 32, the batched decode) its sums stay in the tiles from chunk to chunk;
 * with more they go to out and back. */
BN_AMX BN_INLINE void bn_amx_sums(const uint8_t *rows, size_t row_bytes, int nr,
                                  const bool TQ2, const int8_t *qp, int64_t n, int T,
                                  int32_t *out, int ldo, uint8_t *work)
{
    const size_t tile_bytes = (size_t)n * 16;
    const bool one_pair = T <= 32, rows2 = nr > 16;
    /* the rows of the next call (the next BN_MATRIX_ROWS rows, one block of memory) are
     * asked for into the second-level cache, a share each chunk: the chunks read 32 rows
     * side by side, which the hardware's prefetcher follows badly. On the machine
     * measured (Intel Xeon with AMX, 2 threads, eight sequences decoding together) this
     * gave 64 to 67 tokens/s against 60 to 61 without; asking two calls ahead, 64 to 66.
     * The chunk's share is asked for a little before each row is unpacked, not all at
     * once: a burst of 66 requests held the core until the memory answered (a third of
     * this kernel's samples fell on it); spread, 70.6 and 72.9 tokens/s against 66.8 and
     * 69.1 (two pairs, the same binary otherwise). */
    const uintptr_t next = (uintptr_t)rows + (size_t)BN_MATRIX_ROWS * row_bytes;
    const size_t next_bytes = (size_t)BN_MATRIX_ROWS * row_bytes;
    const int64_t chunks = (n + BN_MATRIX_KC - 1) / BN_MATRIX_KC;
    if (rows2 && nr < BN_MATRIX_ROWS)   /* the second slice's spare rows: zero codes */
        memset(work + (size_t)nr * BN_MATRIX_KC, 0,
               (size_t)(BN_MATRIX_ROWS - nr) * BN_MATRIX_KC);
    for (int64_t k0 = 0; k0 < n; k0 += BN_MATRIX_KC) {
        const int64_t k1 = k0 + BN_MATRIX_KC < n ? k0 + BN_MATRIX_KC : n;
        const bool first = k0 == 0, last = k1 == n;
        const int64_t ci = k0 / BN_MATRIX_KC;
        bn_amx_unpack(rows, row_bytes, nr, TQ2, k0 / 128, k1 / 128, work, BN_MATRIX_KC,
                      next + next_bytes * (size_t)ci / (size_t)chunks,
                      next + next_bytes * (size_t)(ci + 1) / (size_t)chunks);
        if (T <= 16) {
            if (first) {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
            }
            const int8_t *b0 = qp + (size_t)(k0 / 64) * 1024;
            if (rows2)
                bn_amx_chunk_one(work, BN_MATRIX_KC, (k1 - k0) / 64, b0, true);
            else
                bn_amx_chunk_one(work, BN_MATRIX_KC, (k1 - k0) / 64, b0, false);
            if (last)   /* the codes are no longer needed: their room takes the sums */
                bn_amx_store_one(out, ldo, rows2, (int32_t *)(void *)work);
            continue;
        }
        for (int tt = 0; 16 * tt < T; tt += 2) {
            const int8_t *b0 = qp + (size_t)tt * tile_bytes + (size_t)(k0 / 64) * 1024;
            const int8_t *b1 = b0 + tile_bytes;
            const bool tok2 = 16 * (tt + 1) < T;
            const bool load = !first && !one_pair, store = last || !one_pair;
            int32_t *o = out + 16 * tt;
            if (first) {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
            }
            const int64_t ncs = (k1 - k0) / 64;
            if (rows2 && tok2)
                bn_amx_chunk(work, BN_MATRIX_KC, ncs, b0, b1, true, true, load, store, o, ldo);
            else if (rows2)
                bn_amx_chunk(work, BN_MATRIX_KC, ncs, b0, b1, true, false, load, store, o, ldo);
            else if (tok2)
                bn_amx_chunk(work, BN_MATRIX_KC, ncs, b0, b1, false, true, load, store, o, ldo);
            else
                bn_amx_chunk(work, BN_MATRIX_KC, ncs, b0, b1, false, false, load, store, o, ldo);
        }
    }
}

/* I2_S rows against T tokens: the tiles' dot products of unsigned code bytes with
 * signed activations, four to an int32. */
BN_AMX static void bn_dot_i2s_q8_matrix_amx(const uint8_t *codes, size_t row_bytes, int nr,
                                            const int8_t *qp, int64_t n, int T,
                                            int32_t *out, int ldo, uint8_t *work)
{
    bn_amx_begin();
    bn_amx_sums(codes, row_bytes, nr, false, qp, n, T, out, ldo, work);
    _tile_release();
}

/* TQ2_0 rows against T tokens. A row whose blocks share one scale d (as converted
 * BitNet models' rows do) gets 0.0 + (double)(S - Q) * d from its integer sum S and the
 * token's code sum Q, the uniform tile's doubles (bn_tq2_tile_uniform_body argues they
 * are the block-order sum's); a row with mixed scales takes the avx512 tile. */
BN_AMX static void bn_dot_tq2_q8_matrix_amx(const uint8_t *rows, size_t row_bytes, int nr,
                                            const int8_t *qp, const int8_t *q,
                                            const int32_t *qbsum, int64_t n, int T,
                                            bool one_scale, double *out, int ldo,
                                            uint8_t *work)
{
    const int64_t nb = n / 256;
    int32_t *sums = (int32_t *)(void *)(work + BN_MATRIX_ROWS * BN_MATRIX_KC);
    int32_t *qs = sums + BN_MATRIX_ROWS * ldo;   /* each token's code sum */
    bn_amx_begin();
    bn_amx_sums(rows, row_bytes, nr, true, qp, n, T, sums, ldo, work);
    _tile_release();
    for (int t = 0; t < T; t++) {
        qs[t] = 0;
        for (int64_t b = 0; b < nb; b++)
            qs[t] += qbsum[(size_t)t * (size_t)nb + (size_t)b];
    }
    for (int r = 0; r < nr; r++) {
        const uint8_t *row = rows + (size_t)r * row_bytes;
        double *o = out + (size_t)r * (size_t)ldo;
        double d;
        if (one_scale ? (d = bn_f16_at(row + offsetof(bn_block_tq2_0, d)), true)
                      : bn_tq2_uniform_scale(row, nb, &d)) {
            for (int t = 0; t < T; t++)
                o[t] = 0.0 + (double)(sums[r * ldo + t] - qs[t]) * d;
            continue;
        }
        for (int t0 = 0; t0 < T; t0 += 4) {
            const int nt = T - t0 < 4 ? T - t0 : 4;
            bn_dot_tq2_q8_tile_avx512(row, q + (size_t)t0 * (size_t)n,
                                      qbsum + (size_t)t0 * (size_t)nb, n, nt, o + t0);
        }
    }
}
#endif /* AMX */

/* SIMDe's portable fmadd rounds twice: no fused result, no f32 training tile */
#if defined(BN_KERNELS_SIMDE)
#define BN_GEMM_F32_AVX512 NULL
#else
#define BN_GEMM_F32_AVX512 bn_gemm_f32_tile_avx512
#endif

/* The entries of the avx512 family that the amx family shares. */
#define BN_AVX512_ENTRIES \
    .dot_f32    = BN_FROM_AVX2(bn_dot_f32_avx2), \
    .f16_to_f32 = BN_FROM_AVX2(bn_f16_to_f32_avx2), \
    .dot_f16_f32 = BN_FROM_AVX2(bn_dot_f16_f32_avx2), \
    .f32_to_f16 = BN_FROM_AVX2(bn_f32_to_f16_avx2), \
    .axpy_f16_f32_multi = BN_AXPY_F16_AVX512, \
    .relu2_mul  = BN_FROM_AVX2(bn_relu2_mul_avx2), \
    .silu_mul   = BN_FROM_AVX2(bn_silu_mul_avx2), \
    .matrix_out_f64 = BN_FROM_AVX2(bn_matrix_out_f64_avx2), \
    .matrix_out_i32 = BN_FROM_AVX2(bn_matrix_out_i32_avx2), \
    .rms_norm_rows = BN_FROM_AVX2(bn_rms_norm_rows_avx2), \
    .dot_i2s_q8 = bn_dot_i2s_q8_avx512, \
    .dot_i2s_q8_tile = bn_dot_i2s_q8_tile_avx512, \
    .dot_i2s_q8_tile2 = bn_dot_i2s_q8_tile2_avx512, \
    .dot_i2s_q8_rows = bn_dot_i2s_q8_rows_avx512, \
    .dot_tq2_q8 = bn_dot_tq2_q8_avx512, \
    .dot_tq2_q8_tile = bn_dot_tq2_q8_tile_avx512, \
    .dot_tq2_q8_tile2 = bn_dot_tq2_q8_tile2_avx512, \
    .sum_u64    = BN_FROM_AVX2(bn_sum_u64_avx2), \
    .mac_i8_peak = bn_mac_i8_peak_avx512, \
    .dot_tq1_q8 = BN_FROM_AVX2(bn_dot_tq1_q8_avx2), \
    .dot_tq1_q8_tile = BN_FROM_AVX2(bn_dot_tq1_q8_tile_avx2), \
    .dot_q8_0_q8_0 = BN_FROM_AVX2(bn_dot_q8_0_q8_0_avx2), \
    .dot_q8_0_q8_0_rows = BN_FROM_AVX2(bn_dot_q8_0_q8_0_rows_avx2), \
    .dot_q6_k_q8_0 = BN_FROM_AVX2(bn_dot_q6_k_q8_0_avx2), \
    .dot_q6_k_q8_0_rows = BN_FROM_AVX2(bn_dot_q6_k_q8_0_rows_avx2), \
    .quantize_act_i8 = BN_FROM_AVX2(bn_quantize_act_i8_avx2), \
    .gemm_f64_tile = bn_gemm_f64_tile_avx512, \
    .gemm_f32_tile = BN_GEMM_F32_AVX512, \
    .transpose_f32 = BN_FROM_AVX2(bn_transpose_f32_avx2),

const bn_kernel_table BN_AVX512_TABLE = {
    .name       = BN_AVX512_NAME,
    .tile_ahead_rows = BN_TILE_AHEAD_ROWS,
    BN_AVX512_ENTRIES
    .dot_f16_f32_multi = BN_F16_MULTI_AVX512,
    .dot_f16_f32_rows = BN_F16_ROWS_AVX512,
    .dot_tq2_q8_rows = bn_dot_tq2_q8_rows_avx512,
};

#ifdef BN_AMX_BUILD
const bn_kernel_table bn_kernels_amx = {
    .name       = "amx",
    BN_AVX512_ENTRIES
    .dot_f16_f32_multi = bn_dot_f16_f32_multi_avx512,
    .dot_f16_f32_rows = bn_dot_f16_f32_rows_ahead_avx512,
    .dot_tq2_q8_rows = bn_dot_tq2_q8_rows_ahead_avx512,
    .dot_i2s_q8_matrix = bn_dot_i2s_q8_matrix_amx,
    .dot_tq2_q8_matrix = bn_dot_tq2_q8_matrix_amx,
};
#endif

#endif /* BN_AVX512_BUILD */
