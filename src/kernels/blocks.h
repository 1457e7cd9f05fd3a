/*
 * blocks.h - the on-disk blocks of the quantized formats: what the kernels read and
 * the quantizers of src/quant write.
 *
 * Every struct here is a file layout: little-endian, no padding, fp16 values kept as
 * raw uint16_t bits, a _Static_assert on every size. The layouts are those of the
 * engines that defined them (ggml for Q8_0 / Q4_0 / Q6_K / TQ1_0 / TQ2_0, bitnet.cpp
 * for I2_S); docs/FORMATS.md describes each in words.
 */
#ifndef BN_KERNELS_BLOCKS_H
#define BN_KERNELS_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bitnet.h"

#define BN_QK4_0 32   /* weights per Q4_0 block */
#define BN_QK8_0 32   /* weights per Q8_0 block */
#define BN_QK_K  256  /* weights per super-block (K-quants, TQ1_0, TQ2_0) */

/* Q4_0: 32 weights, x = d * (q - 8) with q in 0..15. Byte j holds weight j in its low
 * nibble and weight 16 + j in its high nibble. */
typedef struct bn_block_q4_0 {
    uint16_t d;                  /* fp16 scale */
    uint8_t  qs[BN_QK4_0 / 2];   /* nibbles */
} bn_block_q4_0;
_Static_assert(sizeof(bn_block_q4_0) == 18, "Q4_0 block is 18 bytes");

/* Q8_0: 32 weights, x = d * q with q an int8. */
typedef struct bn_block_q8_0 {
    uint16_t d;                  /* fp16 scale */
    int8_t   qs[BN_QK8_0];
} bn_block_q8_0;
_Static_assert(sizeof(bn_block_q8_0) == 34, "Q8_0 block is 34 bytes");

/* Q6_K: 256 weights in 16 groups of 16, x = d * scales[g] * (q - 32) with q a 6-bit
 * code: its low 4 bits in ql, its high 2 bits in qh (layout in formats.c). */
typedef struct bn_block_q6_k {
    uint8_t  ql[BN_QK_K / 2];    /* low nibbles */
    uint8_t  qh[BN_QK_K / 4];    /* high 2-bit pairs */
    int8_t   scales[BN_QK_K / 16]; /* one int8 scale per group of 16 */
    uint16_t d;                  /* fp16 super-block scale */
} bn_block_q6_k;
_Static_assert(sizeof(bn_block_q6_k) == 210, "Q6_K block is 210 bytes");

/* TQ1_0: 256 ternary weights, x = d * (t - 1) with t in {0, 1, 2}. Five trits per byte
 * in qs (240 weights), four in each byte of qh (16 weights), each byte holding the
 * base-3 number t0 t1 t2 t3 t4 scaled to 0..255 (ceil(n * 256 / 243)). */
typedef struct bn_block_tq1_0 {
    uint8_t  qs[(BN_QK_K - 4 * BN_QK_K / 64) / 5];  /* 48 bytes, 5 trits each */
    uint8_t  qh[BN_QK_K / 64];                       /* 4 bytes, 4 trits each */
    uint16_t d;                                      /* fp16 scale */
} bn_block_tq1_0;
_Static_assert(sizeof(bn_block_tq1_0) == 54, "TQ1_0 block is 54 bytes");

/* TQ2_0: 256 ternary weights as 2-bit codes t in {0, 1, 2}, x = d * (t - 1). Byte m of
 * each 32-byte half holds weights m, 32+m, 64+m, 96+m of that half's 128 in bits
 * 1-0, 3-2, 5-4, 7-6. */
typedef struct bn_block_tq2_0 {
    uint8_t  qs[BN_QK_K / 4];    /* 64 bytes */
    uint16_t d;                  /* fp16 scale */
} bn_block_tq2_0;
_Static_assert(sizeof(bn_block_tq2_0) == 66, "TQ2_0 block is 66 bytes");

/* Whether each of nrows rows (nb blocks of block_bytes, an f16 scale at d_off in each;
 * rows row_bytes apart) has one finite scale in all its blocks, as converted BitNet
 * models' rows have: for TQ2_0 the test its kernels make row by row before taking a
 * row's sum in integers, made once for a tensor. */
static inline bool bn_rows_one_scale(const uint8_t *rows, size_t row_bytes, int64_t nb,
                                     size_t block_bytes, size_t d_off, int64_t nrows)
{
    if (nb < 1)
        return false;
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *row = rows + (size_t)r * row_bytes;
        uint16_t h0, h;
        memcpy(&h0, row + d_off, 2);
        if ((h0 & 0x7c00) == 0x7c00)
            return false;
        for (int64_t i = 1; i < nb; i++) {
            memcpy(&h, row + (size_t)i * block_bytes + d_off, 2);
            if (h != h0)
                return false;
        }
    }
    return true;
}

static inline bool bn_tq2_rows_one_scale(const uint8_t *rows, size_t row_bytes, int64_t nb,
                                         int64_t nrows)
{
    return bn_rows_one_scale(rows, row_bytes, nb, sizeof(bn_block_tq2_0),
                             offsetof(bn_block_tq2_0, d), nrows);
}

/* I2_S (bitnet.cpp, x86 layout): the whole tensor is one stream of 2-bit codes w + 1,
 * 128 weights per 32-byte block; byte j of a block holds weights j, 32+j, 64+j, 96+j
 * in bits 7-6, 5-4, 3-2, 1-0. After the n/4 packed bytes comes a 32-byte tail whose
 * first 4 bytes are the one f32 scale of the tensor (the rest is padding, zero when we
 * write it). The element count must be a multiple of 128. */
#define BN_I2S_BLOCK       128   /* weights per 32-byte block */
#define BN_I2S_BLOCK_BYTES 32
#define BN_I2S_TAIL        32    /* bytes after the packed codes */

#endif
