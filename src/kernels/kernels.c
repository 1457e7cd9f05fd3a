/*
 * kernels.c - the scalar reference kernels, the NEON families' tables, and the list of
 * the families this build has with which of them the CPU runs. The choice among them
 * is core/kernel_choice.c's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/blocks.h"

/* Serial sum in index order: the reference every faster dot product approximates. */
static float bn_dot_f32_scalar(const float *x, const float *y, int64_t n)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += x[i] * y[i];
    return sum;
}

static void bn_f16_to_f32_scalar(const uint16_t *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = bn_f16_decode(src[i]);
}

static float bn_dot_f16_f32_scalar(const uint16_t *x, const float *y, int64_t n)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += bn_f16_decode(x[i]) * y[i];
    return sum;
}

static void bn_dot_f16_f32_rows_scalar(const uint16_t *x, size_t stride, int64_t nrows,
                                       const float *y, int64_t n, float *out)
{
    for (int64_t r = 0; r < nrows; r++)
        out[r] = bn_dot_f16_f32_scalar(x + (size_t)r * stride, y, n);
}

static void bn_f32_to_f16_scalar(const float *src, uint16_t *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = bn_f16_encode(src[i]);
}

static void bn_axpy_f16_f32_scalar(float a, const uint16_t *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float p = a * bn_f16_decode(x[i]);
        y[i] = y[i] + p;
    }
}

static void bn_dot_f16_f32_multi_scalar(const uint16_t *x, size_t stride, int64_t nx,
                                        const float *const *y, int ny, int64_t n,
                                        float *const *out)
{
    for (int64_t i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++)
            out[j][i] = bn_dot_f16_f32_scalar(x + (size_t)i * stride, y[j], n);
}

static void bn_axpy_f16_f32_multi_scalar(const float *const *a, int ny, const uint16_t *x,
                                         size_t stride, int64_t nx, float *const *y,
                                         int64_t n)
{
    for (int64_t i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++)
            bn_axpy_f16_f32_scalar(a[j][i], x + (size_t)i * stride, y[j], n);
}

/* The activation quantizer's reference (the numerics contract): s = 127 /
 * max(max|x|, 1e-5), q = clamp(rint(x * s), -128, 127), ties to even. */
void bn_quantize_act_i8_scalar(const float *x, int64_t n, int8_t *q, float *scale)
{
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
    }
    float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
    for (int64_t i = 0; i < n; i++) {
        float r = rintf(x[i] * s);
        q[i] = (int8_t)(r > 127.0f ? 127 : r < -128.0f ? -128 : r);
    }
    *scale = s;
}

static void bn_relu2_mul_scalar(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = g[i] > 0.0f ? g[i] : 0.0f;
        g[i] = v * v * u[i];
    }
}

/* 2^(i/32) rounded to double (computed to 80 digits and rounded once), less i << 47. */
const uint64_t bn_expf_table[32] = {
    0x3ff0000000000000ull, 0x3fefd9b0d3158574ull, 0x3fefb5586cf9890full, 0x3fef9301d0125b51ull,
    0x3fef72b83c7d517bull, 0x3fef54873168b9aaull, 0x3fef387a6e756238ull, 0x3fef1e9df51fdee1ull,
    0x3fef06fe0a31b715ull, 0x3feef1a7373aa9cbull, 0x3feedea64c123422ull, 0x3feece086061892dull,
    0x3feebfdad5362a27ull, 0x3feeb42b569d4f82ull, 0x3feeab07dd485429ull, 0x3feea47eb03a5585ull,
    0x3feea09e667f3bcdull, 0x3fee9f75e8ec5f74ull, 0x3feea11473eb0187ull, 0x3feea589994cce13ull,
    0x3feeace5422aa0dbull, 0x3feeb737b0cdc5e5ull, 0x3feec49182a3f090ull, 0x3feed503b23e255dull,
    0x3feee89f995ad3adull, 0x3feeff76f2fb5e47ull, 0x3fef199bdd85529cull, 0x3fef3720dcef9069ull,
    0x3fef5818dcfba487ull, 0x3fef7c97337b9b5full, 0x3fefa4afa2a490daull, 0x3fefd0765b6e4540ull,
};

float bn_expf(float x)
{
    uint32_t ix;
    memcpy(&ix, &x, sizeof ix);
    if (((ix >> 20) & 0x7ffu) > BN_EXPF_ABSTOP_MAX)
        return expf(x);
    const double xd = (double)x;
    /* z = x 32 / ln 2 + shift: its low bits are k = round(x 32 / ln 2) */
    const double z = fma(BN_EXPF_INV_LN2_N, xd, BN_EXPF_SHIFT);
    uint64_t ki;
    memcpy(&ki, &z, sizeof ki);
    const double kd = z - BN_EXPF_SHIFT;
    const double r = fma(BN_EXPF_INV_LN2_N, xd, -kd);
    const uint64_t t = bn_expf_table[ki & 31] + (ki << 47);
    double s;
    memcpy(&s, &t, sizeof s);
    const double p = fma(BN_EXPF_C0, r, BN_EXPF_C1);
    const double r2 = r * r;
    double y = fma(BN_EXPF_C2, r, 1.0);
    y = fma(p, r2, y);
    return (float)(y * s);
}

static void bn_silu_mul_scalar(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + bn_expf(-g[i])) * u[i];
}

static void bn_rms_norm_rows_scalar(const float *x, const float *w, float *y, int64_t nrows,
                                    int64_t n, float eps, float *den_out)
{
    for (int64_t t = 0; t < nrows; t++) {
        const float *xr = x + t * n;
        float *yr = y + t * n;
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)xr[i] * xr[i];
        const float den = sqrtf((float)(ss / (double)n) + eps);
        for (int64_t i = 0; i < n; i++)
            yr[i] = xr[i] / den * w[i];
        if (den_out)
            den_out[t] = den;
    }
}

static void bn_matrix_out_f64_scalar(const double *sums, int ldo, int nr, int T,
                                     const float *s, float k, float *out, size_t ld)
{
    for (int t = 0; t < T; t++)
        for (int r = 0; r < nr; r++)
            out[(size_t)t * ld + (size_t)r] = (float)sums[(size_t)r * (size_t)ldo + (size_t)t] / s[t] * k;
}

static void bn_matrix_out_i32_scalar(const int32_t *sums, int ldo, int nr, int T,
                                     const int32_t *qsum, const float *s, float k1,
                                     float k2, float *out, size_t ld)
{
    for (int t = 0; t < T; t++)
        for (int r = 0; r < nr; r++)
            out[(size_t)t * ld + (size_t)r] =
                (float)(sums[(size_t)r * (size_t)ldo + (size_t)t] - qsum[t]) / s[t] * k1 * k2;
}

static int32_t bn_dot_i2s_q8_scalar(const uint8_t *codes, const int8_t *q, int64_t n)
{
    int32_t sum = 0;
    for (int64_t b = 0; b < n / 128; b++) {
        const uint8_t *p = codes + b * 32;
        const int8_t *qb = q + b * 128;
        for (int j = 0; j < 32; j++) {
            unsigned v = p[j];
            sum += (int32_t)(v >> 6) * qb[j] + (int32_t)((v >> 4) & 3) * qb[32 + j] +
                   (int32_t)((v >> 2) & 3) * qb[64 + j] + (int32_t)(v & 3) * qb[96 + j];
        }
    }
    return sum;
}

static void bn_dot_i2s_q8_tile_scalar(const uint8_t *codes, const int8_t *q, int64_t n,
                                      int nt, int32_t *out)
{
    for (int j = 0; j < nt; j++)
        out[j] = bn_dot_i2s_q8_scalar(codes, q + (size_t)j * (size_t)n, n);
}

static void bn_dot_tq2_q8_scalar(const uint8_t *blocks, size_t stride, const int8_t *q,
                                 int64_t n, int32_t *sums)
{
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *qs = blocks + (size_t)b * stride;
        const int8_t *qb = q + b * 256;
        int32_t s = 0;
        for (int half = 0; half < 2; half++) {
            const uint8_t *p = qs + 32 * half;
            const int8_t *qh = qb + 128 * half;
            for (int m = 0; m < 32; m++) {
                unsigned v = p[m];
                s += (int32_t)(v & 3) * qh[m] + (int32_t)((v >> 2) & 3) * qh[32 + m] +
                     (int32_t)((v >> 4) & 3) * qh[64 + m] + (int32_t)(v >> 6) * qh[96 + m];
            }
        }
        sums[b] = s;
    }
}

/* Row after row with the table's own single-row kernel (for the families that have no
 * faster way). */
#define BN_ROWS_FROM_DOT(name, dot)                                                  \
    static void name(const uint8_t *codes, size_t row_bytes, int64_t nrows,          \
                     const int8_t *q, int64_t n, int32_t *out)                      \
    {                                                                               \
        for (int64_t r = 0; r < nrows; r++)                                         \
            out[r] = dot(codes + (size_t)r * row_bytes, q, n);                      \
    }
BN_ROWS_FROM_DOT(bn_dot_i2s_q8_rows_scalar, bn_dot_i2s_q8_scalar)
#if defined(__aarch64__)
BN_ROWS_FROM_DOT(bn_dot_i2s_q8_rows_neon, bn_dot_i2s_q8_neon)
BN_ROWS_FROM_DOT(bn_dot_i2s_q8_rows_neon_dot, bn_dot_i2s_q8_neon_dot)
#endif

/* TQ2_0 (or TQ1_0, block type blk_t) decode rows from the table's block kernel: the
 * reference order. */
#define BN_TQ_ROWS_FROM_DOT(name, dot, blk_t)                                        \
    static void name(const uint8_t *rows, size_t row_bytes, int64_t nrows,           \
                     const int8_t *q, const int32_t *qbsum, int64_t n, double *out)  \
    {                                                                               \
        int32_t sums[64];                                                           \
        for (int64_t r = 0; r < nrows; r++) {                                       \
            const blk_t *blk = (const blk_t *)(rows + (size_t)r * row_bytes);       \
            double acc = 0.0;                                                       \
            for (int64_t b0 = 0; b0 < n / 256; b0 += 64) {                          \
                int64_t nb = n / 256 - b0 < 64 ? n / 256 - b0 : 64;                 \
                dot((const uint8_t *)(blk + b0), sizeof *blk, q + b0 * 256, nb * 256,\
                    sums);                                                          \
                for (int64_t b = 0; b < nb; b++)                                    \
                    acc += (double)(sums[b] - qbsum[b0 + b]) *                      \
                           (double)bn_f16_decode(blk[b0 + b].d);                    \
            }                                                                       \
            out[r] = acc;                                                           \
        }                                                                           \
    }
BN_TQ_ROWS_FROM_DOT(bn_dot_tq2_q8_rows_scalar, bn_dot_tq2_q8_scalar, bn_block_tq2_0)
#if defined(__aarch64__)
BN_TQ_ROWS_FROM_DOT(bn_dot_tq2_q8_rows_neon, bn_dot_tq2_q8_neon, bn_block_tq2_0)
BN_TQ_ROWS_FROM_DOT(bn_dot_tq2_q8_rows_neon_dot, bn_dot_tq2_q8_neon_dot, bn_block_tq2_0)
#endif

/* A TQ2_0 / TQ1_0 prefill tile from decode rows, one token after the other (the same
 * row, nt activation rows). */
#define BN_TQ_TILE_FROM_ROWS(name, rows)                                            \
    static void name(const uint8_t *row, const int8_t *q, const int32_t *qbsum,      \
                     int64_t n, int nt, double *out)                                \
    {                                                                               \
        for (int j = 0; j < nt; j++)                                                \
            rows(row, 0, 1, q + (size_t)j * (size_t)n, qbsum + j * (n / 256), n,    \
                 out + j);                                                          \
    }
BN_TQ_TILE_FROM_ROWS(bn_dot_tq2_q8_tile_scalar, bn_dot_tq2_q8_rows_scalar)
#if defined(__aarch64__)
BN_TQ_TILE_FROM_ROWS(bn_dot_tq2_q8_tile_neon, bn_dot_tq2_q8_rows_neon)
BN_TQ_TILE_FROM_ROWS(bn_dot_tq2_q8_tile_neon_dot, bn_dot_tq2_q8_rows_neon_dot)
#endif

/* Trit k (0..4) of a TQ1_0 byte. */
static inline int bn_trit(uint8_t v, int k)
{
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    return (((uint8_t)(v * pow3[k])) * 3) >> 8;
}

static void bn_dot_tq1_q8_scalar(const uint8_t *blocks, size_t stride, const int8_t *q,
                                 int64_t n, int32_t *sums)
{
    for (int64_t b = 0; b < n / 256; b++) {
        const bn_block_tq1_0 *blk = (const bn_block_tq1_0 *)(blocks + (size_t)b * stride);
        const int8_t *qb = q + b * 256;
        int32_t s = 0;
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 32; m++)
                s += bn_trit(blk->qs[m], k) * qb[32 * k + m];
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 16; m++)
                s += bn_trit(blk->qs[32 + m], k) * qb[160 + 16 * k + m];
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++)
                s += bn_trit(blk->qh[j], k) * qb[240 + 4 * k + j];
        sums[b] = s;
    }
}

/* TQ1_0 rows and tiles from the scalar block kernel (every family's). */
BN_TQ_ROWS_FROM_DOT(bn_dot_tq1_q8_rows_scalar, bn_dot_tq1_q8_scalar, bn_block_tq1_0)
BN_TQ_TILE_FROM_ROWS(bn_dot_tq1_q8_tile_scalar, bn_dot_tq1_q8_rows_scalar)

/* The int8 multiply-add probe in C: the four 32-long dot products, 128 times a chunk,
 * the operands read anew each time. */
static int64_t bn_mac_i8_peak_scalar(const uint8_t *w, const int8_t *x, int64_t chunks)
{
    int64_t total = 0;
    for (int64_t c = 0; c < chunks; c++) {
        int32_t acc = 0;
        for (int r = 0; r < 128; r++) {
            __asm__("" : "+r"(w), "+r"(x));
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++)
                    for (int i = 0; i < 32; i++)
                        acc += w[32 * a + i] * x[32 * b + i];
        }
        total += acc;
    }
    return total;
}

/* Four independent sums, so that the loads, not one chain of adds, set the pace. */
static uint64_t bn_sum_u64_scalar(const uint64_t *x, int64_t n)
{
    const int64_t seg = n / 8;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t i = 0; i + 8 <= seg; i += 8) {
        for (int k = 0; k < 8; k++) {   /* a line of each eighth in turn */
            const uint64_t *p = x + k * seg + i;
            s0 += p[0] + p[4];
            s1 += p[1] + p[5];
            s2 += p[2] + p[6];
            s3 += p[3] + p[7];
        }
    }
    return s0 + s1 + s2 + s3;
}

/* The reduction the Q8_0 and Q6_K dots promise: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)),
 * the order of the AVX2 horizontal sum. */
static float bn_lanes8_sum(const float lane[8])
{
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) +
           ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

static float bn_dot_q8_0_q8_0_scalar(const void *w, const void *x, int64_t n)
{
    const bn_block_q8_0 *a = w, *b = x;
    float lane[8] = {0};
    for (int64_t k = 0; k < n / 32; k++) {
        float d = bn_f16_decode(a[k].d) * bn_f16_decode(b[k].d);
        for (int j = 0; j < 8; j++) {
            int32_t s = 0;
            for (int i = 4 * j; i < 4 * j + 4; i++)
                s += (int32_t)a[k].qs[i] * (int32_t)b[k].qs[i];
            float p = (float)s * d;
            lane[j] = lane[j] + p;
        }
    }
    return bn_lanes8_sum(lane);
}

static void bn_dot_q8_0_q8_0_rows_scalar(const uint8_t *w, size_t row_bytes, int64_t nrows,
                                         const void *x, int64_t n, float *out)
{
    for (int64_t r = 0; r < nrows; r++)
        out[r] = bn_dot_q8_0_q8_0_scalar(w + (size_t)r * row_bytes, x, n);
}

/* The 6-bit code of weight e (0..255) of a Q6_K block, as ggml lays them out: in each
 * half of 128, weights l, 32+l, 64+l, 96+l (l < 32) take the low or high nibble of
 * ql[l] or ql[32+l] and bit pairs 1-0, 3-2, 5-4, 7-6 of qh[l]. */
static int bn_q6_k_code(const bn_block_q6_k *b, int e)
{
    int h = e / 128, g = (e % 128) / 32, l = e % 32;
    const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
    int lo = (g & 1) ? ql[32 + l] : ql[l];
    lo = g >= 2 ? lo >> 4 : lo & 15;
    return lo | (((qh[l] >> (2 * g)) & 3) << 4);
}

static float bn_dot_q6_k_q8_0_scalar(const void *w, const void *x, int64_t n)
{
    const bn_block_q6_k *a = w;
    const bn_block_q8_0 *b = x;
    float lane[8] = {0};
    for (int64_t k = 0; k < n / 32; k++) {
        const bn_block_q6_k *blk = a + k / 8;
        int base = (int)(k % 8) * 32;
        float d = bn_f16_decode(blk->d) * bn_f16_decode(b[k].d);
        for (int j = 0; j < 8; j++) {
            int32_t s = 0;
            for (int i = 4 * j; i < 4 * j + 4; i++)
                s += (bn_q6_k_code(blk, base + i) - 32) * (int32_t)b[k].qs[i];
            s *= blk->scales[(base + 4 * j) / 16];
            float p = (float)s * d;
            lane[j] = lane[j] + p;
        }
    }
    return bn_lanes8_sum(lane);
}

static void bn_dot_q6_k_q8_0_rows_scalar(const uint8_t *w, size_t row_bytes, int64_t nrows,
                                         const void *x, int64_t n, float *out)
{
    for (int64_t r = 0; r < nrows; r++)
        out[r] = bn_dot_q6_k_q8_0_scalar(w + (size_t)r * row_bytes, x, n);
}

/* Products of widened floats are exact in double, so the order of the sum is the only
 * thing that fixes the result: p ascending, one accumulator per element. */
void bn_gemm_f64_tile_scalar(const double *a, const double *b, int64_t k, double *c)
{
    for (int i = 0; i < BN_GEMM_MR; i++) {
        double acc[BN_GEMM_NR];
        for (int j = 0; j < BN_GEMM_NR; j++)
            acc[j] = c[i * BN_GEMM_NR + j];
        for (int64_t p = 0; p < k; p++) {
            const double ai = a[p * BN_GEMM_MR + i];
            const double *bp = b + p * BN_GEMM_NR;
            for (int j = 0; j < BN_GEMM_NR; j++)
                acc[j] += ai * bp[j];
        }
        for (int j = 0; j < BN_GEMM_NR; j++)
            c[i * BN_GEMM_NR + j] = acc[j];
    }
}

/* fmaf: the one rounding per product that the SIMD tiles' fused multiply-adds make. */
void bn_gemm_f32_tile_scalar(const float *a, const float *b, int64_t k, float *c)
{
    enum { R = BN_GEMM_MR_F32, C = BN_GEMM_NR_F32 };
    for (int i = 0; i < R; i++) {
        float acc[C];
        for (int j = 0; j < C; j++)
            acc[j] = c[i * C + j];
        for (int64_t p = 0; p < k; p++) {
            const float ai = a[p * R + i];
            const float *bp = b + p * C;
            for (int j = 0; j < C; j++)
                acc[j] = fmaf(ai, bp[j], acc[j]);
        }
        for (int j = 0; j < C; j++)
            c[i * C + j] = acc[j];
    }
}

void bn_transpose_f32_scalar(const float *src, int64_t lds, int64_t rows, int64_t cols,
                             float *dst, int64_t ldd)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * ldd + i] = src[i * lds + j];
}

const bn_kernel_table bn_kernels_scalar = {
    .name       = "scalar",
    .dot_f32    = bn_dot_f32_scalar,
    .f16_to_f32 = bn_f16_to_f32_scalar,
    .dot_f16_f32 = bn_dot_f16_f32_scalar,
    .dot_f16_f32_rows = bn_dot_f16_f32_rows_scalar,
    .f32_to_f16 = bn_f32_to_f16_scalar,
    .dot_f16_f32_multi = bn_dot_f16_f32_multi_scalar,
    .axpy_f16_f32_multi = bn_axpy_f16_f32_multi_scalar,
    .relu2_mul  = bn_relu2_mul_scalar,
    .silu_mul   = bn_silu_mul_scalar,
    .matrix_out_f64 = bn_matrix_out_f64_scalar,
    .matrix_out_i32 = bn_matrix_out_i32_scalar,
    .rms_norm_rows = bn_rms_norm_rows_scalar,
    .dot_i2s_q8 = bn_dot_i2s_q8_scalar,
    .dot_i2s_q8_tile = bn_dot_i2s_q8_tile_scalar,
    .dot_i2s_q8_rows = bn_dot_i2s_q8_rows_scalar,
    .dot_tq2_q8 = bn_dot_tq2_q8_scalar,
    .dot_tq2_q8_tile = bn_dot_tq2_q8_tile_scalar,
    .dot_tq2_q8_rows = bn_dot_tq2_q8_rows_scalar,
    .sum_u64    = bn_sum_u64_scalar,
    .mac_i8_peak = bn_mac_i8_peak_scalar,
    .dot_tq1_q8 = bn_dot_tq1_q8_scalar,
    .dot_tq1_q8_tile = bn_dot_tq1_q8_tile_scalar,
    .dot_q8_0_q8_0 = bn_dot_q8_0_q8_0_scalar,
    .dot_q8_0_q8_0_rows = bn_dot_q8_0_q8_0_rows_scalar,
    .dot_q6_k_q8_0 = bn_dot_q6_k_q8_0_scalar,
    .dot_q6_k_q8_0_rows = bn_dot_q6_k_q8_0_rows_scalar,
    .quantize_act_i8 = bn_quantize_act_i8_scalar,
    .gemm_f64_tile = bn_gemm_f64_tile_scalar,
    .gemm_f32_tile = bn_gemm_f32_tile_scalar,
    .transpose_f32 = bn_transpose_f32_scalar,
};

#if defined(__aarch64__)
/* The float kernels stay the scalar ones, so a "neon" run gives the scalar run's
 * results bit for bit. */
const bn_kernel_table bn_kernels_neon = {
    .name       = "neon",
    .dot_f32    = bn_dot_f32_scalar,
    .f16_to_f32 = bn_f16_to_f32_scalar,
    .dot_f16_f32 = bn_dot_f16_f32_scalar,
    .dot_f16_f32_rows = bn_dot_f16_f32_rows_scalar,
    .f32_to_f16 = bn_f32_to_f16_scalar,
    .dot_f16_f32_multi = bn_dot_f16_f32_multi_scalar,
    .axpy_f16_f32_multi = bn_axpy_f16_f32_multi_scalar,
    .relu2_mul  = bn_relu2_mul_scalar,
    .silu_mul   = bn_silu_mul_scalar,
    .matrix_out_f64 = bn_matrix_out_f64_scalar,
    .matrix_out_i32 = bn_matrix_out_i32_scalar,
    .rms_norm_rows = bn_rms_norm_rows_scalar,
    .dot_i2s_q8 = bn_dot_i2s_q8_neon,
    .dot_i2s_q8_tile = bn_dot_i2s_q8_tile_neon,
    .dot_i2s_q8_rows = bn_dot_i2s_q8_rows_neon,
    .dot_tq2_q8 = bn_dot_tq2_q8_neon,
    .dot_tq2_q8_tile = bn_dot_tq2_q8_tile_neon,
    .dot_tq2_q8_rows = bn_dot_tq2_q8_rows_neon,
    .sum_u64    = bn_sum_u64_neon,
    .mac_i8_peak = bn_mac_i8_peak_neon,
    .dot_tq1_q8 = bn_dot_tq1_q8_scalar,
    .dot_tq1_q8_tile = bn_dot_tq1_q8_tile_scalar,
    .dot_q8_0_q8_0 = bn_dot_q8_0_q8_0_scalar,
    .dot_q8_0_q8_0_rows = bn_dot_q8_0_q8_0_rows_scalar,
    .dot_q6_k_q8_0 = bn_dot_q6_k_q8_0_scalar,
    .dot_q6_k_q8_0_rows = bn_dot_q6_k_q8_0_rows_scalar,
    .quantize_act_i8 = bn_quantize_act_i8_scalar,
    .gemm_f64_tile = bn_gemm_f64_tile_scalar,
    .gemm_f32_tile = bn_gemm_f32_tile_scalar,
    .transpose_f32 = bn_transpose_f32_scalar,
};

/* The same with the dotprod integer kernels (Armv8.2 SDOT), where the CPU has them. */
const bn_kernel_table bn_kernels_neon_dotprod = {
    .name       = "neon-dotprod",
    .dot_f32    = bn_dot_f32_scalar,
    .f16_to_f32 = bn_f16_to_f32_scalar,
    .dot_f16_f32 = bn_dot_f16_f32_scalar,
    .dot_f16_f32_rows = bn_dot_f16_f32_rows_scalar,
    .f32_to_f16 = bn_f32_to_f16_scalar,
    .dot_f16_f32_multi = bn_dot_f16_f32_multi_scalar,
    .axpy_f16_f32_multi = bn_axpy_f16_f32_multi_scalar,
    .relu2_mul  = bn_relu2_mul_scalar,
    .silu_mul   = bn_silu_mul_scalar,
    .matrix_out_f64 = bn_matrix_out_f64_scalar,
    .matrix_out_i32 = bn_matrix_out_i32_scalar,
    .rms_norm_rows = bn_rms_norm_rows_scalar,
    .dot_i2s_q8 = bn_dot_i2s_q8_neon_dot,
    .dot_i2s_q8_tile = bn_dot_i2s_q8_tile_neon_dot,
    .dot_i2s_q8_rows = bn_dot_i2s_q8_rows_neon_dot,
    .dot_tq2_q8 = bn_dot_tq2_q8_neon_dot,
    .dot_tq2_q8_tile = bn_dot_tq2_q8_tile_neon_dot,
    .dot_tq2_q8_rows = bn_dot_tq2_q8_rows_neon_dot,
    .sum_u64    = bn_sum_u64_neon,
    .mac_i8_peak = bn_mac_i8_peak_neon_dot,
    .dot_tq1_q8 = bn_dot_tq1_q8_scalar,
    .dot_tq1_q8_tile = bn_dot_tq1_q8_tile_scalar,
    .dot_q8_0_q8_0 = bn_dot_q8_0_q8_0_scalar,
    .dot_q8_0_q8_0_rows = bn_dot_q8_0_q8_0_rows_scalar,
    .dot_q6_k_q8_0 = bn_dot_q6_k_q8_0_scalar,
    .dot_q6_k_q8_0_rows = bn_dot_q6_k_q8_0_rows_scalar,
    .quantize_act_i8 = bn_quantize_act_i8_scalar,
    .gemm_f64_tile = bn_gemm_f64_tile_scalar,
    .gemm_f32_tile = bn_gemm_f32_tile_scalar,
    .transpose_f32 = bn_transpose_f32_scalar,
};
#endif

#if !defined(BITNET_FORCE_SCALAR) && (defined(__x86_64__) || defined(__i386__))
/* True when this CPU can run the AVX2 family (AVX2 + FMA + F16C, OS-enabled). */
static bool bn_cpu_has_avx2_family(void)
{
    const bn_cpu_info *cpu = bn_cpu_get_info();
    return cpu->avx2 && cpu->fma && cpu->f16c;
}

/* True when this CPU can run the AVX-512 family: AVX-512 F, BW, VL and VNNI with the
 * OS saving the zmm state (cpu.c checks it), and the AVX2 family it reuses. */
static bool bn_cpu_has_avx512_family(void)
{
    const bn_cpu_info *cpu = bn_cpu_get_info();
    return bn_cpu_has_avx2_family() && cpu->avx512f && cpu->avx512bw && cpu->avx512vl &&
           cpu->avx512vnni;
}

/* The AMX family is built where the compiler knows AMX (kernels_avx512.c says which). */
#if defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 12) || \
                            (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define BN_HAVE_AMX_FAMILY 1
#endif
#endif

const bn_kernel_table *const bn_kernel_families[] = {
    &bn_kernels_scalar,
#if !defined(BITNET_FORCE_SCALAR) && (defined(__x86_64__) || defined(__i386__))
    &bn_kernels_avx2,
    &bn_kernels_avx512,
#ifdef BN_HAVE_AMX_FAMILY
    &bn_kernels_amx,
#endif
#endif
#if defined(__aarch64__) && !defined(BITNET_FORCE_SCALAR)
    &bn_kernels_neon,
    &bn_kernels_neon_dotprod,
#endif
};
const int bn_kernel_family_count =
    (int)(sizeof bn_kernel_families / sizeof bn_kernel_families[0]);

bool bn_kernel_family_runs(const bn_kernel_table *k)
{
#if !defined(BITNET_FORCE_SCALAR) && (defined(__x86_64__) || defined(__i386__))
    if (k == &bn_kernels_avx2)
        return bn_cpu_has_avx2_family();
    if (k == &bn_kernels_avx512)
        return bn_cpu_has_avx512_family();
#ifdef BN_HAVE_AMX_FAMILY
    if (k == &bn_kernels_amx)
        return bn_cpu_has_avx512_family() && bn_cpu_get_info()->amx_int8 &&
               bn_cpu_get_info()->gfni;
#endif
#endif
#if defined(__aarch64__) && !defined(BITNET_FORCE_SCALAR)
    if (k == &bn_kernels_neon)
        return true;                      /* AdvSIMD: every aarch64 CPU */
    if (k == &bn_kernels_neon_dotprod)
        return bn_cpu_get_info()->dotprod;
#endif
    return k == &bn_kernels_scalar;
}

const bn_kernel_table *bn_kernel_family_best(void)
{
    /* the families are listed slowest first */
    for (int i = bn_kernel_family_count - 1; i > 0; i--)
        if (bn_kernel_family_runs(bn_kernel_families[i]))
            return bn_kernel_families[i];
    return &bn_kernels_scalar;
}
