/*
 * formats.h - the row kernels of the quantized formats (formats.c) that qtype.c
 * dispatches to, and the decoders of the ternary formats into codes that the
 * dequantizers and the model's projections share. The block layouts are in
 * kernels/blocks.h.
 */
#ifndef BN_QUANT_FORMATS_H
#define BN_QUANT_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet.h"
#include "kernels/blocks.h"

/* ------------------------------------------------------------- row kernels */

/* Each converts one row of n weights (n a multiple of the block size); quantizers are
 * the defining engine's reference algorithms, so their bytes match. */
void bn_dequant_row_q4_0(const void *src, float *dst, int64_t n);
void bn_dequant_row_q8_0(const void *src, float *dst, int64_t n);
void bn_dequant_row_q6_k(const void *src, float *dst, int64_t n);
void bn_dequant_row_tq1_0(const void *src, float *dst, int64_t n);
void bn_dequant_row_tq2_0(const void *src, float *dst, int64_t n);

void bn_quant_row_q4_0(const float *src, void *dst, int64_t n);
void bn_quant_row_q8_0(const float *src, void *dst, int64_t n);
void bn_quant_row_q6_k(const float *src, void *dst, int64_t n);
void bn_quant_row_tq1_0(const float *src, void *dst, int64_t n);
void bn_quant_row_tq2_0(const float *src, void *dst, int64_t n);

/* I2_S works on the whole tensor of n weights (n a multiple of 128), n / 4 + 32 bytes.*/
void bn_dequant_i2_s(const void *src, float *dst, int64_t n);
void bn_quant_i2_s(const float *src, void *dst, int64_t n);

/* The converter of one row of n elements of `type` to f32 (n a multiple of its block
 * size), or NULL when the type cannot be read or is only read whole (I2_S). */
typedef void (*bn_row_to_f32_fn)(const void *src, float *dst, int64_t n);
bn_row_to_f32_fn bn_qtype_row_to_f32(bn_qtype type);

/* ----------------------------------------------------------- code decoders */

/* The one decoder of each ternary format: n stored weights at src (n a multiple of the
 * block size) into their signed codes w[n] = code - 1, and for the block-scaled types
 * (TQ1_0, TQ2_0) the block scales d[n / 256] as f32. I2_S rows carry no scale (the
 * tensor's one is in its tail): its decoder leaves d alone (NULL is fine). The 2-bit code
 * 3 of I2_S and TQ2_0, which no quantizer writes, decodes as +2: the value the integer
 * kernels give it, and bitnet.cpp's (docs/FORMATS.md). The dequantizers above and the
 * projections of the model both read the codes through these. */
typedef void (*bn_row_to_codes_fn)(const void *src, int8_t *w, float *d, int64_t n);
void bn_decode_row_i2_s(const void *src, int8_t *w, float *d, int64_t n);
void bn_decode_row_tq1_0(const void *src, int8_t *w, float *d, int64_t n);
void bn_decode_row_tq2_0(const void *src, int8_t *w, float *d, int64_t n);

#endif
