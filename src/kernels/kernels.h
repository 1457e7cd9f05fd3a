/*
 * kernels.h - the compute kernels: one table of function pointers per instruction-set
 * family (the scalar reference in kernels.c, AVX2 in kernels_avx2.c, AVX-512 VNNI in
 * kernels_avx512.c, NEON in kernels_neon.c), and the CPU feature detection (cpu.c)
 * that says which can run.
 *
 * This is the bottom layer of the library: the kernels use nothing of it but the
 * types of bitnet.h and the block layouts of blocks.h. They never allocate, log or
 * fail; which family runs is chosen above them (core/kernel_choice.c).
 */
#ifndef BN_KERNELS_KERNELS_H
#define BN_KERNELS_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bitnet.h"

/* ------------------------------------------------------------- f16 scalars */

static inline uint32_t bn_f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static inline float bn_bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* f16 subnormal (or zero) for |x| < 2^-14, given |x|'s bits. */
static inline uint16_t bn_f16_subnormal(uint32_t ax)
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

/* f32 to f16, rounding to nearest even (the F16C conversion's result) */
static inline uint16_t bn_f16_encode(float x)
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

/* f16 to f32, exact */
static inline float bn_f16_decode(uint16_t h)
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

/* ------------------------------------------------------------- the table */

/* Multiply-adds per chunk of the int8 multiply-add probe (mac_i8_peak). */
/* The register tile of gemm_f64_tile: BN_GEMM_MR rows by BN_GEMM_NR columns. */
#define BN_GEMM_MR 6
#define BN_GEMM_NR 16
/* gemm_f32_tile's register tile: twelve rows by 32 columns, so that AVX-512 keeps 24
 * accumulators in flight and loads 14 vectors for 24 multiply-adds */
#define BN_GEMM_MR_F32 12
#define BN_GEMM_NR_F32 32
#define BN_MAC_PEAK_CHUNK (128 * 128)

/* The most queries dot_f16_f32_multi takes in one call. */
#define BN_F16_MULTI_MAX 8

/* The per-ISA kernel table, chosen once at run time (core/kernel_choice.c). Every entry has a
 * scalar reference; fast versions are tested against it. Every entry of a family's table
 * is set; a family may name another family's function for an entry it does not
 * improve (the avx512 family names AVX2 ones, declared below). */
typedef struct bn_kernel_table {
    const char *name;
    /* The prefill tiles' loop (model/linear.c): while the first tile of tokens meets a
     * group of weight rows, the lines of the rows this many rows further on are asked
     * into the second-level cache, so that the next group's rows are there when the
     * tiles reach them. 0: no such requests (the hardware's prefetchers alone). */
    int tile_ahead_rows;
    /* sum_i x[i] * y[i], f32; the order of accumulation is fixed per table */
    float (*dot_f32)(const float *x, const float *y, int64_t n);
    void  (*f16_to_f32)(const uint16_t *src, float *dst, int64_t n);
    /* dot_f32 of the f16 values x (converted) with y: the same result, bit for bit, as
     * f16_to_f32 followed by dot_f32 of the same table */
    float (*dot_f16_f32)(const uint16_t *x, const float *y, int64_t n);
    /* out[r] = dot_f16_f32(x + r * stride, y, n) for nrows rows, bit for bit (the
     * decode of an f16 output layer: the rows may be read in any order) */
    void  (*dot_f16_f32_rows)(const uint16_t *x, size_t stride, int64_t nrows,
                              const float *y, int64_t n, float *out);
    void  (*f32_to_f16)(const float *src, uint16_t *dst, int64_t n);
    /* Attention over an f16 cache, and an f16 output layer against several tokens: each
     * key or value row read once for several queries. Scores (ny <= BN_F16_MULTI_MAX):
     * out[j][i] = dot_f16_f32(x + i * stride, y[j], n) for i < nx, j < ny, bit for bit.
     * Values (ny <= 4): for i = 0 .. nx - 1 in order and each j,
     * y[j][e] = y[j][e] + a[j][i] * x_i[e] for e < n, with x_i = x + i * stride in f16:
     * a multiply then an add per element, never fused, so every table gives the same
     * floats, and a query's floats do not depend on the others sharing its rows. */
    void  (*dot_f16_f32_multi)(const uint16_t *x, size_t stride, int64_t nx,
                               const float *const *y, int ny, int64_t n, float *const *out);
    void  (*axpy_f16_f32_multi)(const float *const *a, int ny, const uint16_t *x,
                                size_t stride, int64_t nx, float *const *y, int64_t n);
    /* g[i] = v * v * u[i] with v = g[i] > 0 ? g[i] : 0 (the squared-ReLU FFN gate), the
     * same floats on every table */
    void  (*relu2_mul)(float *g, const float *u, int64_t n);
    /* g[i] = g[i] / (1 + bn_expf(-g[i])) * u[i] (the SiLU FFN gate), three float
     * operations after the exponential: the same floats on every table */
    void  (*silu_mul)(float *g, const float *u, int64_t n);
    /* RMSNorm of nrows rows of n floats, rows n apart: y = x / den * w with
     * den = sqrtf((float)(ss / n) + eps), ss the sum of (double)x_i * x_i taken in order
     * i = 0, 1, ... in one double (each square is exact in double, so a fused
     * multiply-add gives the same sums): the same floats on every table. With den not
     * NULL, den[t] = row t's den. */
    void  (*rms_norm_rows)(const float *x, const float *w, float *y, int64_t nrows,
                           int64_t n, float eps, float *den);
    /* sum_i c_i * q_i over the n 2-bit codes c_i of an I2_S row (32-byte blocks of 128:
     * byte j holds weights j, 32+j, 64+j, 96+j in bits 7-6, 5-4, 3-2, 1-0) and n int8
     * activations; n a multiple of 128. Exact: every table returns the same integer. */
    int32_t (*dot_i2s_q8)(const uint8_t *codes, const int8_t *q, int64_t n);
    /* dot_i2s_q8 of one row against nt <= 4 activation rows q + j * n (a prefill
     * tile: the codes are read once); out[j] for row j */
    void (*dot_i2s_q8_tile)(const uint8_t *codes, const int8_t *q, int64_t n, int nt,
                            int32_t *out);
    /* dot_i2s_q8_tile for two rows, codes and codes + row_bytes, at once (the
     * activations read once for both): out[j] for the first, out[4 + j] for the
     * second; out has 8 entries, and those past nt may be written too. Optional: NULL
     * where a family has none (one row at a time then). */
    void (*dot_i2s_q8_tile2)(const uint8_t *codes, size_t row_bytes, const int8_t *q,
                             int64_t n, int nt, int32_t *out);
    /* dot_i2s_q8 of nrows consecutive rows (row_bytes apart) against one token: the
     * decode step, which streams the rows in order; out[r] for row r */
    void (*dot_i2s_q8_rows)(const uint8_t *codes, size_t row_bytes, int64_t nrows,
                            const int8_t *q, int64_t n, int32_t *out);
    /* The same per block of a TQ2_0 row (n / 256 blocks of `stride` bytes whose first
     * 64 hold the codes: in each 32-byte half, byte m holds weights m, 32+m, 64+m, 96+m
     * of that half in bits 1-0, 3-2, 5-4, 7-6): sums[b] for block b. Exact. */
    void (*dot_tq2_q8)(const uint8_t *blocks, size_t stride, const int8_t *q, int64_t n,
                       int32_t *sums);
    /* sum of n 64-bit words (wrapping), read as fast as the ISA can: the memory
     * read-bandwidth probe. The eight eighths of x are read side by side, a 64-byte line
     * of each in turn, because one core reads several streams faster than one (and 1 KiB
     * ahead of each is asked for); x 32-byte aligned, n a multiple of 64 */
    uint64_t (*sum_u64)(const uint64_t *x, int64_t n);
    /* The int8 multiply-add probe: the integer multiply-accumulate instructions of the
     * family's ternary kernels (AVX2: maddubs + 16-bit add; AVX-512: vpdpbusd on zmm;
     * NEON: widening multiply-add; dotprod: SDOT; scalar: C), fed from registers,
     * BN_MAC_PEAK_CHUNK multiply-adds a chunk. Returns chunks * 128 * sum over a, b in {0, 1} of the dot product of the
     * 32 codes w[32a..] (0..2) with the 32 activations x[32b..] (-127..127), so that the
     * work cannot be skipped and its result can be checked. */
    int64_t (*mac_i8_peak)(const uint8_t *w, const int8_t *x, int64_t chunks);
    /* Decode of nrows TQ2_0 rows (row_bytes apart) against one token: for each row,
     * acc = sum over blocks b, in block order, of (double)(sums[b] - qbsum[b]) * d_b in
     * double, with sums[b] as dot_tq2_q8 gives them and d_b the block's f16 scale;
     * out[r] = acc. Every product is exact in double, so every table agrees. */
    void (*dot_tq2_q8_rows)(const uint8_t *rows, size_t row_bytes, int64_t nrows,
                            const int8_t *q, const int32_t *qbsum, int64_t n, double *out);
    /* The same for one TQ2_0 row against nt <= 4 activation rows q + j * n with their
     * block sums qbsum + j * (n / 256) (a prefill tile: the codes are read once):
     * out[j] for activation row j */
    void (*dot_tq2_q8_tile)(const uint8_t *row, const int8_t *q, const int32_t *qbsum,
                            int64_t n, int nt, double *out);
    /* dot_tq2_q8_tile for two rows, row and row + row_bytes, at once (the activations
     * read once for both): out[j] for the first, out[4 + j] for the second, each the
     * one-row tile's double bit for bit; out has 8 entries, and those past nt may be
     * written too. one_scale: the caller knows that both rows
     * have one finite scale in all their blocks (bn_tq2_rows_one_scale), which the
     * kernel then need not test. Optional: NULL where a family has none, and the rows
     * then take dot_tq2_q8_tile one at a time. */
    void (*dot_tq2_q8_tile2)(const uint8_t *row, size_t row_bytes, const int8_t *q,
                             const int32_t *qbsum, int64_t n, int nt, bool one_scale,
                             double *out);
    /* The same for TQ1_0 blocks (54 bytes: 48 bytes of five trits each, 4 of four, an
     * f16 scale; trit k of byte v is ((v * 3^k mod 256) * 3) >> 8): sums[b] is the
     * exact sum of trit * q over block b, at `stride` bytes per block. */
    void (*dot_tq1_q8)(const uint8_t *blocks, size_t stride, const int8_t *q, int64_t n,
                       int32_t *sums);
    /* dot_tq2_q8_tile for a TQ1_0 row: out[j] = sum over blocks b, in block order, of
     * (double)(sums[b] - qbsum[j * (n / 256) + b]) * d_b in double, with sums[b] as
     * dot_tq1_q8 gives them for activation row q + j * n (j < nt <= 4) */
    void (*dot_tq1_q8_tile)(const uint8_t *row, const int8_t *q, const int32_t *qbsum,
                            int64_t n, int nt, double *out);
    /* Q8_0 weights w against Q8_0 activations x (n / 32 blocks of an f16 scale and 32
     * int8 values each): per block, the eight exact int32 sums of four consecutive
     * products, each converted to float and multiplied by d_w * d_x (a float product),
     * are added into eight float lanes (lane j takes products 4j..4j+3 of every block, in
     * block order; a multiply then an add, never fused); the lanes are combined as
     * ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). Every table follows this order, so every
     * ISA gives the same float. x must not hold -128 (ggml's Q8_0 quantizer, which
     * makes the activations, never writes it). */
    float (*dot_q8_0_q8_0)(const void *w, const void *x, int64_t n);
    /* out[r] = dot_q8_0_q8_0(w + r * row_bytes, x, n) for nrows rows, bit for bit */
    void  (*dot_q8_0_q8_0_rows)(const uint8_t *w, size_t row_bytes, int64_t nrows,
                                const void *x, int64_t n, float *out);
    /* Q6_K weights w (n / 256 blocks) against Q8_0 activations x: the same lanes and
     * order as dot_q8_0_q8_0, per block of 32 activations, with the int32 lane sum
     * being scale * sum of four (code - 32) * x (the four share a group of 16, so one
     * scale) and the float factor d_w * d_x of the 256-block and the 32-block. */
    float (*dot_q6_k_q8_0)(const void *w, const void *x, int64_t n);
    /* out[r] = dot_q6_k_q8_0(w + r * row_bytes, x, n) for nrows rows, bit for bit */
    void  (*dot_q6_k_q8_0_rows)(const uint8_t *w, size_t row_bytes, int64_t nrows,
                                const void *x, int64_t n, float *out);
    /* bn_quantize_act_i8: s = 127 / max(max|x|, 1e-5), q = clamp(rint(x * s)) with the
     * product rounded to float first; the same bytes and scale on every table */
    void (*quantize_act_i8)(const float *x, int64_t n, int8_t *q, float *scale);
    /* The register tile of training's matrix products (src/train/fast.c):
     * c[i * NR + j] += sum over p = 0 .. k-1, in that order, of a[p * MR + i] *
     * b[p * NR + j] for i < BN_GEMM_MR, j < BN_GEMM_NR, in double, one accumulator per
     * element of c. The caller guarantees every product is exact in double (both factors
     * are floats widened), so that a fused multiply-add and a multiply then an add give
     * the same bits: every table returns the scalar one's doubles. */
    void (*gemm_f64_tile)(const double *a, const double *b, int64_t k, double *c);
    /* The same in float on a tile of BN_GEMM_MR_F32 by BN_GEMM_NR_F32 (a: [k][MR_F32],
     * b: [k][NR_F32], c: [MR_F32][NR_F32]): c[i * NR_F32 + j] = fmaf(a[p * MR_F32 + i],
     * b[p * NR_F32 + j], c[...]) for p = 0 .. k-1 in that order, one fused multiply-add
     * (one rounding) per product, one accumulator per element: every table returns the
     * scalar one's floats. */
    void (*gemm_f32_tile)(const float *a, const float *b, int64_t k, float *c);
    /* dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols: a block of floats
     * transposed (the float products' packing); the same floats on every table */
    void (*transpose_f32)(const float *src, int64_t lds, int64_t rows, int64_t cols,
                          float *dst, int64_t ldd);
    /* A matrix unit's prefill (the amx family; NULL in every other, whose projections
     * take the tiles above). The activations come packed as bn_pack_q8_matrix lays them
     * out (qp, T tokens of n codes, n a multiple of 128); nr <= BN_MATRIX_ROWS rows,
     * row_bytes apart, meet every token. dot_i2s_q8_matrix: out[r * ldo + t] =
     * dot_i2s_q8(row r, token t), the same integers. dot_tq2_q8_matrix: out[r * ldo + t]
     * = dot_tq2_q8_tile's double for row r and token t (q the tokens' codes unpacked,
     * qbsum their block sums), bit for bit; one_scale: the caller knows that every row
     * has one finite scale in all its blocks (bn_tq2_rows_one_scale), which the kernel
     * then does not test again. ldo >= T rounded up to 32; work holds
     * BN_MATRIX_WORK(ldo) bytes, 64-byte aligned. */
    void (*dot_i2s_q8_matrix)(const uint8_t *codes, size_t row_bytes, int nr,
                              const int8_t *qp, int64_t n, int T, int32_t *out, int ldo,
                              uint8_t *work);
    void (*dot_tq2_q8_matrix)(const uint8_t *rows, size_t row_bytes, int nr,
                              const int8_t *qp, const int8_t *q, const int32_t *qbsum,
                              int64_t n, int T, bool one_scale, double *out, int ldo,
                              uint8_t *work);
    /* The matrix kernels' sums (row r of nr, token t of T at sums[r * ldo + t]) to a
     * projection's outputs, token-major (out[t * ld + r]): matrix_out_f64 gives
     * (float)sums / s[t] * k, matrix_out_i32 (float)(sums - qsum[t]) / s[t] * k1 * k2,
     * each operation in float in that order: the same floats on every table. */
    void (*matrix_out_f64)(const double *sums, int ldo, int nr, int T, const float *s,
                           float k, float *out, size_t ld);
    void (*matrix_out_i32)(const int32_t *sums, int ldo, int nr, int T,
                           const int32_t *qsum, const float *s, float k1, float k2,
                           float *out, size_t ld);
} bn_kernel_table;

/* The rows one call of a matrix kernel takes (two tiles of 16), the codes of each it
 * unpacks at a time, and the bytes of work it needs for sums ldo tokens apart. */
#define BN_MATRIX_ROWS 32
#define BN_MATRIX_KC 512
#define BN_MATRIX_WORK(ldo) \
    ((size_t)BN_MATRIX_ROWS * (BN_MATRIX_KC + 4 * (size_t)(ldo)) + 4 * (size_t)(ldo))

/* The activation layout of the matrix kernels: tokens in tiles of 16, each tile n / 64
 * chunks of 16 lines of 64 bytes, line i of chunk c holding codes 64c + 4i .. 64c + 4i + 3
 * of the tile's 16 tokens side by side (token j at bytes 4j .. 4j + 3). Token t's codes
 * q (n of them, n a multiple of 64) go to their places in qp, which holds the tiles of
 * ceil(T / 16) * 16 tokens; the places of tokens past T must hold zeros. */
static inline void bn_pack_q8_matrix(const int8_t *q, int64_t n, int64_t t, int8_t *qp)
{
    int8_t *tile = qp + (size_t)(t / 16) * (size_t)n * 16 + (size_t)(t % 16) * 4;
    for (int64_t c = 0; c < n / 64; c++)
        for (int i = 0; i < 16; i++)
            memcpy(tile + (size_t)c * 1024 + (size_t)i * 64, q + 64 * c + 4 * i, 4);
}

/* The same layout built chunk by chunk: chunks c0 .. c1 - 1 of every tile of T tokens
 * (their codes q, a token every n bytes), the places past T zero. Each 1 KiB chunk of a
 * tile is written whole by one caller, so that threads given separate ranges of chunks
 * never write to the same cache line (packed token by token, two threads write into
 * every line). */
static inline void bn_pack_q8_matrix_chunks(const int8_t *q, int64_t n, int64_t T,
                                            int64_t c0, int64_t c1, int8_t *qp)
{
    for (int64_t tile = 0; tile < (T + 15) / 16; tile++)
        for (int64_t c = c0; c < c1; c++) {
            int8_t *blk = qp + (size_t)tile * (size_t)n * 16 + (size_t)c * 1024;
            for (int i = 0; i < 16; i++)
                for (int j = 0; j < 16; j++) {
                    const int64_t t = tile * 16 + j;
                    if (t < T)
                        memcpy(blk + i * 64 + j * 4, q + (size_t)t * (size_t)n + 64 * c + 4 * i,
                               4);
                    else
                        memset(blk + i * 64 + j * 4, 0, 4);
                }
        }
}

const bn_kernel_table *bn_kernels(void);
extern const bn_kernel_table bn_kernels_scalar;
/* the scalar activation quantizer, the reference of quantize_act_i8 */
void bn_quantize_act_i8_scalar(const float *x, int64_t n, int8_t *q, float *scale);
#if defined(__x86_64__) || defined(__i386__)
extern const bn_kernel_table bn_kernels_avx2;
/* AVX-512 F/BW/VL + VNNI (kernels_avx512.c): its own I2_S and TQ2_0 kernels and int8
 * probe, on vpdpbusd; its own f16 decode rows, f16 rows against several queries (an
 * output layer's, and attention's scores and values); every other entry is the AVX2
 * family's function, declared below.
 * A family may reuse another's functions in this way (its table names them, so every
 * table stays complete); the functions shared are those declared here. */
extern const bn_kernel_table bn_kernels_avx512;
/* The avx512 family with the AMX matrix kernels for the ternary prefill, and f16 and
 * TQ2_0 decode rows that ask for lines ahead (AMX cores are Intel's, which stream
 * faster so); built where the compiler knows AMX, runs where bn_cpu_info's amx_int8 and
 * gfni are true. */
extern const bn_kernel_table bn_kernels_amx;
float bn_dot_f32_avx2(const float *x, const float *y, int64_t n);
void bn_f16_to_f32_avx2(const uint16_t *src, float *dst, int64_t n);
float bn_dot_f16_f32_avx2(const uint16_t *x, const float *y, int64_t n);
void bn_f32_to_f16_avx2(const float *src, uint16_t *dst, int64_t n);
void bn_dot_f16_f32_multi_avx2(const uint16_t *x, size_t stride, int64_t nx,
                               const float *const *y, int ny, int64_t n, float *const *out);
void bn_axpy_f16_f32_multi_avx2(const float *const *a, int ny, const uint16_t *x,
                                size_t stride, int64_t nx, float *const *y, int64_t n);
void bn_relu2_mul_avx2(float *g, const float *u, int64_t n);
void bn_silu_mul_avx2(float *g, const float *u, int64_t n);
void bn_matrix_out_f64_avx2(const double *sums, int ldo, int nr, int T, const float *s,
                            float k, float *out, size_t ld);
void bn_matrix_out_i32_avx2(const int32_t *sums, int ldo, int nr, int T,
                            const int32_t *qsum, const float *s, float k1, float k2,
                            float *out, size_t ld);
void bn_rms_norm_rows_avx2(const float *x, const float *w, float *y, int64_t nrows,
                           int64_t n, float eps, float *den);
uint64_t bn_sum_u64_avx2(const uint64_t *x, int64_t n);
void bn_dot_tq1_q8_avx2(const uint8_t *blocks, size_t stride, const int8_t *q, int64_t n,
                        int32_t *sums);
void bn_dot_tq1_q8_tile_avx2(const uint8_t *row, const int8_t *q, const int32_t *qbsum,
                             int64_t n, int nt, double *out);
float bn_dot_q8_0_q8_0_avx2(const void *w, const void *x, int64_t n);
void bn_dot_q8_0_q8_0_rows_avx2(const uint8_t *w, size_t row_bytes, int64_t nrows,
                                const void *x, int64_t n, float *out);
float bn_dot_q6_k_q8_0_avx2(const void *w, const void *x, int64_t n);
void bn_dot_q6_k_q8_0_rows_avx2(const uint8_t *w, size_t row_bytes, int64_t nrows,
                                const void *x, int64_t n, float *out);
void bn_quantize_act_i8_avx2(const float *x, int64_t n, int8_t *q, float *scale);
void bn_gemm_f32_tile_avx2(const float *a, const float *b, int64_t k, float *c);
void bn_transpose_f32_avx2(const float *src, int64_t lds, int64_t rows, int64_t cols,
                           float *dst, int64_t ldd);
#endif
/* the scalar training tile, the reference of gemm_f64_tile */
void bn_gemm_f64_tile_scalar(const double *a, const double *b, int64_t k, double *c);
void bn_gemm_f32_tile_scalar(const float *a, const float *b, int64_t k, float *c);
void bn_transpose_f32_scalar(const float *src, int64_t lds, int64_t rows, int64_t cols,
                             float *dst, int64_t ldd);

/* e^x in float: for |x| < 88 the algorithm of the GNU C library's expf since 2.28 as it
 * runs on a CPU with fused multiply-add (x / ln 2 split into k / 32 + r, a table of the
 * 32 values 2^(i/32), a cubic in r, all in double, rounded to float once), so that on
 * such a system the bits are the library's; beyond that (overflow, underflow, infinities,
 * NaN) the C library's expf itself. The vector silu_mul entries compute the same. */
float bn_expf(float x);
/* The algorithm's constants (kernels.c): the table holds the bits of 2^(i/32) less
 * i << 47, so that adding k << 47 to entry k % 32 gives the bits of 2^(k/32). */
extern const uint64_t bn_expf_table[32];
#define BN_EXPF_INV_LN2_N 0x1.71547652b82fep+5   /* 32 / ln 2 */
#define BN_EXPF_SHIFT     0x1.8p+52              /* rounds to an integer when added */
#define BN_EXPF_C0        0x1.c6af84b912394p-20  /* the cubic's coefficients, scaled */
#define BN_EXPF_C1        0x1.ebfce50fac4f3p-13  /* to r in units of 1/32 */
#define BN_EXPF_C2        0x1.62e42ff0c52d6p-6
/* |x| at or past which bn_expf leaves x to the C library: the top 12 bits of 88.0f */
#define BN_EXPF_ABSTOP_MAX 0x42au
/* Not in the library: kernels_avx512.c compiled a second time with SIMDe's portable
 * intrinsics (BN_KERNELS_SIMDE) into the kernel test, so that its code is checked on
 * any machine. Only the avx512 family's own entries are set; those it takes from the
 * AVX2 family are NULL (the test fills them from the scalar table). */
extern const bn_kernel_table bn_kernels_avx512_simde;
#if defined(__aarch64__)
/* AdvSIMD integer kernels (kernels_neon.c); the "neon" family uses them with the
 * scalar float kernels */
extern const bn_kernel_table bn_kernels_neon;
int32_t bn_dot_i2s_q8_neon(const uint8_t *codes, const int8_t *q, int64_t n);
void bn_dot_i2s_q8_tile_neon(const uint8_t *codes, const int8_t *q, int64_t n, int nt,
                             int32_t *out);
void bn_dot_tq2_q8_neon(const uint8_t *blocks, size_t stride, const int8_t *q, int64_t n,
                        int32_t *sums);
uint64_t bn_sum_u64_neon(const uint64_t *x, int64_t n);
int64_t bn_mac_i8_peak_neon(const uint8_t *w, const int8_t *x, int64_t chunks);
/* the same with the dotprod extension (SDOT), for CPUs that report it */
extern const bn_kernel_table bn_kernels_neon_dotprod;
int32_t bn_dot_i2s_q8_neon_dot(const uint8_t *codes, const int8_t *q, int64_t n);
void bn_dot_i2s_q8_tile_neon_dot(const uint8_t *codes, const int8_t *q, int64_t n, int nt,
                                 int32_t *out);
void bn_dot_tq2_q8_neon_dot(const uint8_t *blocks, size_t stride, const int8_t *q,
                            int64_t n, int32_t *sums);
int64_t bn_mac_i8_peak_neon_dot(const uint8_t *w, const int8_t *x, int64_t chunks);
#endif

/* Every family compiled into this build, the scalar one first, and whether this CPU
 * (and its operating system) can run a family. */
extern const bn_kernel_table *const bn_kernel_families[];
extern const int bn_kernel_family_count;
bool bn_kernel_family_runs(const bn_kernel_table *k);
/* The fastest family this CPU can run (the scalar one under BITNET_FORCE_SCALAR). */
const bn_kernel_table *bn_kernel_family_best(void);

#endif
