/*
 * kernels_avx2.c - the AVX2 (+FMA, F16C) kernel family. Compiled for every x86 build
 * with per-function target attributes, and only called after the CPU was seen to have
 * these features; the rest of the library stays baseline x86-64. The functions the
 * AVX-512 family reuses (those not static) are declared in kernels.h.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/blocks.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define BN_AVX2 __attribute__((target("avx2,fma,f16c")))

/* How far ahead of the weights being read the decode kernels ask for cache lines: the
 * hardware prefetcher alone leaves the core waiting on memory between rows. */
#ifndef BN_PREFETCH_AHEAD
#define BN_PREFETCH_AHEAD 4096
#endif

/* The decode streams: one core reads several far-apart streams faster than one, so the
 * rows kernels split their rows into BN_STREAMS runs and read a turn of each in turn,
 * each row keeping its own accumulators, so every row's sum is the one-row kernel's.
 * The f16 one leaves the fetching ahead to the hardware prefetchers, which follow four
 * streams: software prefetches on top made it slower on the machine measured. (The
 * I2_S decode, heavier in arithmetic per byte, reads one row after the other and asks
 * for its lines ahead: streams, with or without prefetches, were no faster in the
 * forward pass.) */
#define BN_STREAMS 4

/* Four 8-lane accumulators, combined in a fixed order, then a serial tail; x is f32,
 * or f16 (xh) converted on load, with the same operations in the same order. */
BN_AVX2 static inline __attribute__((always_inline)) __m256 bn_ld8(const float *x,
                                                                 const uint16_t *xh,
                                                                 int64_t i)
{
    return xh ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xh + i)))
              : _mm256_loadu_ps(x + i);
}

/* Elements [i0, i1) (a multiple of 32 apart) into the four accumulators; with `ahead`,
 * a row read on its own, the lines BN_PREFETCH_AHEAD bytes on are asked for. */
BN_AVX2 static inline __attribute__((always_inline)) void
bn_dot_avx2_span(const float *x, const uint16_t *xh, const float *y, int64_t i0, int64_t i1,
                 __m256 acc[4], const bool ahead)
{
    __m256 acc0 = acc[0], acc1 = acc[1], acc2 = acc[2], acc3 = acc[3];
    for (int64_t i = i0; i < i1; i += 32) {
        if (ahead)
            _mm_prefetch(xh ? (const char *)(xh + i) + BN_PREFETCH_AHEAD
                            : (const char *)(x + i) + BN_PREFETCH_AHEAD, _MM_HINT_T0);
        acc0 = _mm256_fmadd_ps(bn_ld8(x, xh, i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(bn_ld8(x, xh, i + 8), _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(bn_ld8(x, xh, i + 16), _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(bn_ld8(x, xh, i + 24), _mm256_loadu_ps(y + i + 24), acc3);
    }
    acc[0] = acc0;
    acc[1] = acc1;
    acc[2] = acc2;
    acc[3] = acc3;
}

/* The rest after the multiple of 32: eights into the first accumulator, the fixed
 * reduction, a serial tail. */
BN_AVX2 static inline __attribute__((always_inline)) float
bn_dot_avx2_finish(const float *x, const uint16_t *xh, const float *y, int64_t n, __m256 a[4])
{
    int64_t i = n / 32 * 32;
    __m256 acc0 = a[0];
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(bn_ld8(x, xh, i), _mm256_loadu_ps(y + i), acc0);
    __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, a[1]), _mm256_add_ps(a[2], a[3]));
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_movehdup_ps(half));
    float sum = _mm_cvtss_f32(half);
    for (; i < n; i++)
        sum += (xh ? bn_f16_decode(xh[i]) : x[i]) * y[i];
    return sum;
}

BN_AVX2 static inline __attribute__((always_inline)) float
bn_dot_avx2(const float *x, const uint16_t *xh, const float *y, int64_t n)
{
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    bn_dot_avx2_span(x, xh, y, 0, n / 32 * 32, acc, true);
    return bn_dot_avx2_finish(x, xh, y, n, acc);
}

BN_AVX2 float bn_dot_f32_avx2(const float *x, const float *y, int64_t n)
{
    return bn_dot_avx2(x, NULL, y, n);
}

BN_AVX2 float bn_dot_f16_f32_avx2(const uint16_t *x, const float *y, int64_t n)
{
    return bn_dot_avx2(NULL, x, y, n);
}

#define BN_F16_TURN 128     /* elements of a row per turn: 256 bytes */

BN_AVX2 static void bn_dot_f16_f32_rows_avx2(const uint16_t *x, size_t stride,
                                             int64_t nrows, const float *y, int64_t n,
                                             float *out)
{
    const int64_t per = nrows / BN_STREAMS, n32 = n / 32 * 32;
    for (int64_t k = 0; k < per; k++) {
        const uint16_t *row[BN_STREAMS];
        __m256 acc[BN_STREAMS][4];
        for (int s = 0; s < BN_STREAMS; s++) {
            row[s] = x + (size_t)(s * per + k) * stride;
            for (int j = 0; j < 4; j++)
                acc[s][j] = _mm256_setzero_ps();
        }
        for (int64_t c = 0; c < n32; c += BN_F16_TURN) {
            int64_t ce = c + BN_F16_TURN < n32 ? c + BN_F16_TURN : n32;
            for (int s = 0; s < BN_STREAMS; s++)
                bn_dot_avx2_span(NULL, row[s], y, c, ce, acc[s], false);
        }
        for (int s = 0; s < BN_STREAMS; s++)
            out[s * per + k] = bn_dot_avx2_finish(NULL, row[s], y, n, acc[s]);
    }
    for (int64_t r = per * BN_STREAMS; r < nrows; r++)
        out[r] = bn_dot_avx2(NULL, x + (size_t)r * stride, y, n);
}

BN_AVX2 void bn_f16_to_f32_avx2(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++)
        dst[i] = bn_f16_decode(src[i]);
}

BN_AVX2 void bn_f32_to_f16_avx2(const float *src, uint16_t *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < n; i++)
        dst[i] = bn_f16_encode(src[i]);
}

/* Rows ahead whose lines the attention scores ask for. */
#define BN_ATT_AHEAD 8

/* dot_f16_f32 of nx rows against NY <= 4 vectors. Accumulator a of every (row, vector)
 * takes elements 32k + 8a in k order, as in bn_dot_avx2_span; they are filled one
 * after the other, so that each converted eight of the row serves every vector, and
 * finished as the one-row kernel finishes. */
BN_AVX2 static inline __attribute__((always_inline)) void
bn_dot_f16_multi_body(const uint16_t *x, size_t stride, int64_t nx, const float *const *y,
                      const int NY, int64_t n, float *const *out)
{
    const int64_t n32 = n / 32 * 32;
    for (int64_t i = 0; i < nx; i++) {
        const uint16_t *xr = x + (size_t)i * stride;
        /* cached rows are far apart and cold: ask for a later row's lines now */
        for (int64_t e = 0; e < n; e += 32)
            _mm_prefetch((const char *)(xr + BN_ATT_AHEAD * stride + (size_t)e), _MM_HINT_T0);
        __m256 acc[4][4];
        for (int a = 0; a < 4; a++) {
            __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
            for (int64_t k = 8 * a; k < n32; k += 32) {
                __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xr + k)));
                s0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(y[0] + k), s0);
                if (NY > 1)
                    s1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(y[1] + k), s1);
                if (NY > 2)
                    s2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(y[2] + k), s2);
                if (NY > 3)
                    s3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(y[3] + k), s3);
            }
            acc[0][a] = s0;
            acc[1][a] = s1;
            acc[2][a] = s2;
            acc[3][a] = s3;
        }
        for (int j = 0; j < NY; j++)
            out[j][i] = bn_dot_avx2_finish(NULL, xr, y[j], n, acc[j]);
    }
}

/* The same for long rows (an output layer's against a few tokens): one pass over each
 * row, every 8 converted values multiplied into the accumulators of NY <= 2 queries at
 * once, so that the queries' vectors are read in order and the row converted once.
 * Each accumulator sees the same multiply-adds in the same order as in the one-row
 * kernel, so the floats are its. */
BN_AVX2 static inline __attribute__((always_inline)) void
bn_dot_f16_long_body(const uint16_t *x, size_t stride, int64_t nx, const float *const *y,
                     const int NY, int64_t n, float *const *out)
{
    const int64_t n32 = n / 32 * 32;
    for (int64_t i = 0; i < nx; i++) {
        const uint16_t *xr = x + (size_t)i * stride;
        __m256 acc[2][4];
        for (int j = 0; j < 2; j++)
            for (int a = 0; a < 4; a++)
                acc[j][a] = _mm256_setzero_ps();
        for (int64_t k = 0; k < n32; k += 32) {
            _mm_prefetch((const char *)(xr + k) + BN_PREFETCH_AHEAD, _MM_HINT_T0);
            for (int a = 0; a < 4; a++) {
                const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(
                    (const __m128i *)(xr + k + 8 * a)));
                for (int j = 0; j < NY; j++)
                    acc[j][a] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(y[j] + k + 8 * a),
                                                acc[j][a]);
            }
        }
        for (int j = 0; j < NY; j++)
            out[j][i] = bn_dot_avx2_finish(NULL, xr, y[j], n, acc[j]);
    }
}

/* Rows this long or longer take the one-pass body (attention's rows, head_dim long,
 * keep the four-pass one). */
#define BN_F16_LONG_ROW 512

BN_AVX2 void bn_dot_f16_f32_multi_avx2(const uint16_t *x, size_t stride, int64_t nx,
                                              const float *const *y, int ny, int64_t n,
                                              float *const *out)
{
    if (n >= BN_F16_LONG_ROW) {
        for (int j0 = 0; j0 < ny; j0 += 2) {
            if (ny - j0 >= 2)
                bn_dot_f16_long_body(x, stride, nx, y + j0, 2, n, out + j0);
            else
                bn_dot_f16_long_body(x, stride, nx, y + j0, 1, n, out + j0);
        }
        return;
    }
    for (int j0 = 0; j0 < ny; j0 += 4) {
        switch (ny - j0 < 4 ? ny - j0 : 4) {
        case 4: bn_dot_f16_multi_body(x, stride, nx, y + j0, 4, n, out + j0); break;
        case 3: bn_dot_f16_multi_body(x, stride, nx, y + j0, 3, n, out + j0); break;
        case 2: bn_dot_f16_multi_body(x, stride, nx, y + j0, 2, n, out + j0); break;
        default: bn_dot_f16_multi_body(x, stride, nx, y + j0, 1, n, out + j0); break;
        }
    }
}

/* y[j] += a[j][i] * x_i for rows i in order, NY <= 4 vectors: a chunk of each y[j]
 * stays in registers over a run of BN_AXPY_RUN rows. Every element sees the rows in
 * order with a multiply then an add, so the floats are the scalar rule's. */
#define BN_AXPY_RUN 64
BN_AVX2 static inline __attribute__((always_inline)) void
bn_axpy_f16_multi_body(const float *const *a, const int NY, const uint16_t *x, size_t stride,
                       int64_t nx, float *const *y, int64_t n)
{
    for (int64_t i0 = 0; i0 < nx; i0 += BN_AXPY_RUN) {
        const int64_t i1 = i0 + BN_AXPY_RUN < nx ? i0 + BN_AXPY_RUN : nx;
        int64_t d = 0;
        for (; d + 16 <= n; d += 16) {
            __m256 y0[4], y1[4];
            for (int j = 0; j < NY; j++) {
                y0[j] = _mm256_loadu_ps(y[j] + d);
                y1[j] = _mm256_loadu_ps(y[j] + d + 8);
            }
            for (int64_t i = i0; i < i1; i++) {
                const uint16_t *xr = x + (size_t)i * stride + d;
                if (d == 0)   /* cached rows are far apart and cold: the next run's */
                    for (int64_t e = 0; e < n; e += 32)
                        _mm_prefetch((const char *)(xr + BN_AXPY_RUN * stride + (size_t)e),
                                     _MM_HINT_T0);
                __m256 v0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)xr));
                __m256 v1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xr + 8)));
                for (int j = 0; j < NY; j++) {
                    __m256 p = _mm256_broadcast_ss(a[j] + i);
                    y0[j] = _mm256_add_ps(y0[j], _mm256_mul_ps(p, v0));
                    y1[j] = _mm256_add_ps(y1[j], _mm256_mul_ps(p, v1));
                }
            }
            for (int j = 0; j < NY; j++) {
                _mm256_storeu_ps(y[j] + d, y0[j]);
                _mm256_storeu_ps(y[j] + d + 8, y1[j]);
            }
        }
        for (; d + 8 <= n; d += 8) {
            __m256 y0[4];
            for (int j = 0; j < NY; j++)
                y0[j] = _mm256_loadu_ps(y[j] + d);
            for (int64_t i = i0; i < i1; i++) {
                __m256 v0 = _mm256_cvtph_ps(
                    _mm_loadu_si128((const __m128i *)(x + (size_t)i * stride + d)));
                for (int j = 0; j < NY; j++)
                    y0[j] = _mm256_add_ps(y0[j],
                                          _mm256_mul_ps(_mm256_broadcast_ss(a[j] + i), v0));
            }
            for (int j = 0; j < NY; j++)
                _mm256_storeu_ps(y[j] + d, y0[j]);
        }
        for (; d < n; d++)
            for (int64_t i = i0; i < i1; i++) {
                float v = bn_f16_decode(x[(size_t)i * stride + (size_t)d]);
                for (int j = 0; j < NY; j++) {
                    float p = a[j][i] * v;
                    y[j][d] = y[j][d] + p;
                }
            }
    }
}

BN_AVX2 void bn_axpy_f16_f32_multi_avx2(const float *const *a, int ny,
                                               const uint16_t *x, size_t stride, int64_t nx,
                                               float *const *y, int64_t n)
{
    switch (ny) {
    case 4: bn_axpy_f16_multi_body(a, 4, x, stride, nx, y, n); break;
    case 3: bn_axpy_f16_multi_body(a, 3, x, stride, nx, y, n); break;
    case 2: bn_axpy_f16_multi_body(a, 2, x, stride, nx, y, n); break;
    default: bn_axpy_f16_multi_body(a, 1, x, stride, nx, y, n); break;
    }
}

/* max(g, +0) returns the second operand for a NaN or a zero g: exactly the scalar
 * g > 0 ? g : 0 */
/* bn_expf of four lanes in double, the scalar's operations lane by lane. */
BN_AVX2 static inline __attribute__((always_inline)) __m256d bn_expf4_avx2(__m256d xd)
{
    const __m256d inv = _mm256_set1_pd(BN_EXPF_INV_LN2_N), shift = _mm256_set1_pd(BN_EXPF_SHIFT);
    const __m256d z = _mm256_fmadd_pd(inv, xd, shift);
    const __m256i ki = _mm256_castpd_si256(z);
    const __m256d kd = _mm256_sub_pd(z, shift);
    const __m256d r = _mm256_fmsub_pd(inv, xd, kd);
    const __m256i idx = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
    const __m256i tab = _mm256_i64gather_epi64((const long long *)bn_expf_table, idx, 8);
    const __m256d s = _mm256_castsi256_pd(_mm256_add_epi64(tab, _mm256_slli_epi64(ki, 47)));
    const __m256d p = _mm256_fmadd_pd(_mm256_set1_pd(BN_EXPF_C0), r, _mm256_set1_pd(BN_EXPF_C1));
    const __m256d r2 = _mm256_mul_pd(r, r);
    __m256d y = _mm256_fmadd_pd(_mm256_set1_pd(BN_EXPF_C2), r, _mm256_set1_pd(1.0));
    y = _mm256_fmadd_pd(p, r2, y);
    return _mm256_mul_pd(y, s);
}

/* Eight at a time. x = -g is clamped to [-87, 89] first, which changes no result:
 * below -87, expf(x) < 2^-125 and 1 + expf(x) rounds to 1 as it does for the true x;
 * above 89, the C library's expf overflows to infinity, as expf(89) does when the
 * double is rounded to float (between 88 and 88.72 the library takes the same path as
 * below 88). So only a group holding a NaN goes to the scalar. */
BN_AVX2 void bn_silu_mul_avx2(float *g, const float *u, int64_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(89.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(gv, gv, _CMP_UNORD_Q))) {
            for (int j = 0; j < 8; j++)
                g[i + j] = g[i + j] / (1.0f + bn_expf(-g[i + j])) * u[i + j];
            continue;
        }
        const __m256 x = _mm256_min_ps(_mm256_max_ps(_mm256_xor_ps(gv, sign), lo), hi);
        const __m128 e0 = _mm256_cvtpd_ps(bn_expf4_avx2(_mm256_cvtps_pd(_mm256_castps256_ps128(x))));
        const __m128 e1 = _mm256_cvtpd_ps(bn_expf4_avx2(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))));
        const __m256 e = _mm256_insertf128_ps(_mm256_castps128_ps256(e0), e1, 1);
        const __m256 q = _mm256_div_ps(gv, _mm256_add_ps(one, e));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(q, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        g[i] = g[i] / (1.0f + bn_expf(-g[i])) * u[i];
}

/* Four rows' sums of squares in the lanes of a: lane j adds x_j[k]^2, x_j[k+1]^2, ...,
 * x_j[k+3]^2 in that order (a 4 x 4 transpose puts element k of the four rows in one
 * vector). */
BN_AVX2 static inline __attribute__((always_inline)) __m256d
bn_sumsq4_avx2(__m256d a, const float *x0, const float *x1, const float *x2, const float *x3)
{
    __m128 r0 = _mm_loadu_ps(x0), r1 = _mm_loadu_ps(x1), r2 = _mm_loadu_ps(x2),
           r3 = _mm_loadu_ps(x3);
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    __m256d v = _mm256_cvtps_pd(r0);
    a = _mm256_fmadd_pd(v, v, a);
    v = _mm256_cvtps_pd(r1);
    a = _mm256_fmadd_pd(v, v, a);
    v = _mm256_cvtps_pd(r2);
    a = _mm256_fmadd_pd(v, v, a);
    v = _mm256_cvtps_pd(r3);
    return _mm256_fmadd_pd(v, v, a);
}

/* y = x / den * w for one row, den from its sum of squares ss; returns den */
BN_AVX2 static inline float bn_rms_scale_avx2(const float *x, const float *w, float *y,
                                              int64_t n, double ss, float eps)
{
    const float den = sqrtf((float)(ss / (double)n) + eps);
    const __m256 d = _mm256_set1_ps(den);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), d),
                                              _mm256_loadu_ps(w + i)));
    for (; i < n; i++)
        y[i] = x[i] / den * w[i];
    return den;
}

/* Each row's sum is one chain of double additions, as the scalar's; the chains of eight
 * (or four) rows run side by side in the lanes of two (or one) vectors, so that the
 * adds' latency is paid once for all of them. */
BN_AVX2 void bn_rms_norm_rows_avx2(const float *x, const float *w, float *y, int64_t nrows,
                                   int64_t n, float eps, float *den)
{
    const int64_t n4 = n / 4 * 4;
    int64_t t = 0;
    double ss[8];
    for (; t + 4 <= nrows; ) {
        const int rows = t + 8 <= nrows ? 8 : 4;
        const float *r[8];
        for (int j = 0; j < rows; j++)
            r[j] = x + (t + j) * n;
        __m256d a0 = _mm256_setzero_pd(), a1 = a0;
        if (rows == 8) {
            for (int64_t k = 0; k < n4; k += 4) {
                a0 = bn_sumsq4_avx2(a0, r[0] + k, r[1] + k, r[2] + k, r[3] + k);
                a1 = bn_sumsq4_avx2(a1, r[4] + k, r[5] + k, r[6] + k, r[7] + k);
            }
        } else {
            for (int64_t k = 0; k < n4; k += 4)
                a0 = bn_sumsq4_avx2(a0, r[0] + k, r[1] + k, r[2] + k, r[3] + k);
        }
        _mm256_storeu_pd(ss, a0);
        _mm256_storeu_pd(ss + 4, a1);
        for (int j = 0; j < rows; j++) {
            for (int64_t i = n4; i < n; i++)
                ss[j] += (double)r[j][i] * r[j][i];
            const float d = bn_rms_scale_avx2(r[j], w, y + (t + j) * n, n, ss[j], eps);
            if (den)
                den[t + j] = d;
        }
        t += rows;
    }
    for (; t < nrows; t++) {
        const float *xr = x + t * n;
        double s = 0.0;
        for (int64_t i = 0; i < n; i++)
            s += (double)xr[i] * xr[i];
        const float d = bn_rms_scale_avx2(xr, w, y + t * n, n, s, eps);
        if (den)
            den[t] = d;
    }
}

/* An 8 x 8 transpose of floats: v[i] lane j becomes v[j] lane i (two rounds of unpacks
 * and a swap of halves). */
BN_AVX2 static inline __attribute__((always_inline)) void bn_transpose8_avx2(__m256 v[8])
{
    const __m256 a0 = _mm256_unpacklo_ps(v[0], v[1]), a1 = _mm256_unpackhi_ps(v[0], v[1]);
    const __m256 a2 = _mm256_unpacklo_ps(v[2], v[3]), a3 = _mm256_unpackhi_ps(v[2], v[3]);
    const __m256 a4 = _mm256_unpacklo_ps(v[4], v[5]), a5 = _mm256_unpackhi_ps(v[4], v[5]);
    const __m256 a6 = _mm256_unpacklo_ps(v[6], v[7]), a7 = _mm256_unpackhi_ps(v[6], v[7]);
    const __m256 b0 = _mm256_shuffle_ps(a0, a2, 0x44), b1 = _mm256_shuffle_ps(a0, a2, 0xee);
    const __m256 b2 = _mm256_shuffle_ps(a1, a3, 0x44), b3 = _mm256_shuffle_ps(a1, a3, 0xee);
    const __m256 b4 = _mm256_shuffle_ps(a4, a6, 0x44), b5 = _mm256_shuffle_ps(a4, a6, 0xee);
    const __m256 b6 = _mm256_shuffle_ps(a5, a7, 0x44), b7 = _mm256_shuffle_ps(a5, a7, 0xee);
    v[0] = _mm256_permute2f128_ps(b0, b4, 0x20), v[4] = _mm256_permute2f128_ps(b0, b4, 0x31);
    v[1] = _mm256_permute2f128_ps(b1, b5, 0x20), v[5] = _mm256_permute2f128_ps(b1, b5, 0x31);
    v[2] = _mm256_permute2f128_ps(b2, b6, 0x20), v[6] = _mm256_permute2f128_ps(b2, b6, 0x31);
    v[3] = _mm256_permute2f128_ps(b3, b7, 0x20), v[7] = _mm256_permute2f128_ps(b3, b7, 0x31);
}

/* Blocks of 8 rows x 8 tokens: each row's eight sums scaled along the tokens (the
 * scalar's operations lane by lane), then transposed into eight tokens' runs of eight
 * outputs; the edges by the scalar expression. The blocks of eight tokens go in turn,
 * all the rows of one before the next, so that each token's run of outputs is written
 * whole (on the Intel Xeon, 2 threads, eight 25-token prompts: 563 to 581 tokens/s
 * against 521 to 563 with the rows outermost). */
BN_AVX2 void bn_matrix_out_f64_avx2(const double *sums, int ldo, int nr, int T, const float *s,
                                    float k, float *out, size_t ld)
{
    const int r8 = nr / 8 * 8, t8 = T / 8 * 8;
    const __m256 kv = _mm256_set1_ps(k);
    for (int t0 = 0; t0 < t8; t0 += 8)
        for (int r0 = 0; r0 < r8; r0 += 8) {
            const __m256 sv = _mm256_loadu_ps(s + t0);
            __m256 v[8];
            for (int i = 0; i < 8; i++) {
                const double *a = sums + (size_t)(r0 + i) * (size_t)ldo + (size_t)t0;
                const __m256 f = _mm256_insertf128_ps(
                    _mm256_castps128_ps256(_mm256_cvtpd_ps(_mm256_loadu_pd(a))),
                    _mm256_cvtpd_ps(_mm256_loadu_pd(a + 4)), 1);
                v[i] = _mm256_mul_ps(_mm256_div_ps(f, sv), kv);
            }
            bn_transpose8_avx2(v);
            for (int j = 0; j < 8; j++)
                _mm256_storeu_ps(out + (size_t)(t0 + j) * ld + (size_t)r0, v[j]);
        }
    for (int t = 0; t < T; t++)
        for (int r = t < t8 ? r8 : 0; r < nr; r++)
            out[(size_t)t * ld + (size_t)r] = (float)sums[(size_t)r * (size_t)ldo + (size_t)t] / s[t] * k;
}

BN_AVX2 void bn_matrix_out_i32_avx2(const int32_t *sums, int ldo, int nr, int T,
                                    const int32_t *qsum, const float *s, float k1, float k2,
                                    float *out, size_t ld)
{
    const int r8 = nr / 8 * 8, t8 = T / 8 * 8;
    const __m256 k1v = _mm256_set1_ps(k1), k2v = _mm256_set1_ps(k2);
    for (int t0 = 0; t0 < t8; t0 += 8)
        for (int r0 = 0; r0 < r8; r0 += 8) {
            const __m256 sv = _mm256_loadu_ps(s + t0);
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(qsum + t0));
            __m256 v[8];
            for (int i = 0; i < 8; i++) {
                const __m256i a = _mm256_loadu_si256(
                    (const __m256i *)(sums + (size_t)(r0 + i) * (size_t)ldo + (size_t)t0));
                const __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(a, qv));
                v[i] = _mm256_mul_ps(_mm256_mul_ps(_mm256_div_ps(f, sv), k1v), k2v);
            }
            bn_transpose8_avx2(v);
            for (int j = 0; j < 8; j++)
                _mm256_storeu_ps(out + (size_t)(t0 + j) * ld + (size_t)r0, v[j]);
        }
    for (int t = 0; t < T; t++)
        for (int r = t < t8 ? r8 : 0; r < nr; r++)
            out[(size_t)t * ld + (size_t)r] =
                (float)(sums[(size_t)r * (size_t)ldo + (size_t)t] - qsum[t]) / s[t] * k1 * k2;
}

BN_AVX2 void bn_relu2_mul_avx2(float *g, const float *u, int64_t n)
{
    const __m256 zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_max_ps(_mm256_loadu_ps(g + i), zero);
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_mul_ps(v, v), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) {
        float v = g[i] > 0.0f ? g[i] : 0.0f;
        g[i] = v * v * u[i];
    }
}

/* Sum of the eight int32 lanes. */
BN_AVX2 static inline int32_t bn_hsum_i32_avx2(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* The lane sums of four vectors at once: element j of the result is the sum of v_j. */
BN_AVX2 static inline __m128i bn_hsum4_i32_avx2(__m256i v0, __m256i v1, __m256i v2,
                                                __m256i v3)
{
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* Codes times activations for 128 weights whose four 2-bit fields of 32 bytes are c0..c3
 * (unsigned 0..3) against q[0..127], in int16 lanes: maddubs gives pairs of products
 * (at most 2 * 3 * 128 = 768 in size), the four of a block stay below 3,072, so up to
 * BN_I16_BLOCKS blocks can be summed in int16 before madd widens them to int32. */
#define BN_I16_BLOCKS 8
BN_AVX2 static inline __m256i bn_block128_avx2(__m256i c0, __m256i c1, __m256i c2,
                                               __m256i c3, const int8_t *q)
{
    __m256i s0 = _mm256_maddubs_epi16(c0, _mm256_loadu_si256((const __m256i *)q));
    __m256i s1 = _mm256_maddubs_epi16(c1, _mm256_loadu_si256((const __m256i *)(q + 32)));
    __m256i s2 = _mm256_maddubs_epi16(c2, _mm256_loadu_si256((const __m256i *)(q + 64)));
    __m256i s3 = _mm256_maddubs_epi16(c3, _mm256_loadu_si256((const __m256i *)(q + 96)));
    return _mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3));
}

/* The 128 codes of one I2_S block (32 bytes at p) against q[0..127], in int16 lanes. */
BN_AVX2 static inline __m256i bn_i2s_block_avx2(const uint8_t *p, const int8_t *q)
{
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    return bn_block128_avx2(_mm256_and_si256(_mm256_srli_epi16(v, 6), m3),
                            _mm256_and_si256(_mm256_srli_epi16(v, 4), m3),
                            _mm256_and_si256(_mm256_srli_epi16(v, 2), m3),
                            _mm256_and_si256(v, m3), q);
}

/* The eight lanes of one row's sum. Decode: two blocks (one 64-byte line) per step,
 * summed in int16, one prefetch per line BN_PREFETCH_AHEAD bytes ahead. */
BN_AVX2 static inline __m256i bn_i2s_row_avx2(const uint8_t *codes, const int8_t *q, int64_t n)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const int64_t nb = n / 128;
    __m256i acc = _mm256_setzero_si256();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const uint8_t *p = codes + b * 32;
        _mm_prefetch((const char *)p + BN_PREFETCH_AHEAD, _MM_HINT_T0);
        __m256i s = _mm256_add_epi16(bn_i2s_block_avx2(p, q + b * 128),
                                     bn_i2s_block_avx2(p + 32, q + b * 128 + 128));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(s, ones));
    }
    if (b < nb)
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(
            bn_i2s_block_avx2(codes + b * 32, q + b * 128), ones));
    return acc;
}

BN_AVX2 static int32_t bn_dot_i2s_q8_avx2(const uint8_t *codes, const int8_t *q, int64_t n)
{
    return bn_hsum_i32_avx2(bn_i2s_row_avx2(codes, q, n));
}

/* Rows in order, four at a time reduced together. */
BN_AVX2 static void bn_dot_i2s_q8_rows_avx2(const uint8_t *codes, size_t row_bytes,
                                           int64_t nrows, const int8_t *q, int64_t n,
                                           int32_t *out)
{
    int64_t r = 0;
    for (; r + 4 <= nrows; r += 4) {
        const uint8_t *p = codes + (size_t)r * row_bytes;
        __m256i v0 = bn_i2s_row_avx2(p, q, n);
        __m256i v1 = bn_i2s_row_avx2(p + row_bytes, q, n);
        __m256i v2 = bn_i2s_row_avx2(p + 2 * row_bytes, q, n);
        __m256i v3 = bn_i2s_row_avx2(p + 3 * row_bytes, q, n);
        __m128i s4 = bn_hsum4_i32_avx2(v0, v1, v2, v3);
        _mm_storeu_si128((__m128i *)(out + r), s4);
    }
    for (; r < nrows; r++)
        out[r] = bn_hsum_i32_avx2(bn_i2s_row_avx2(codes + (size_t)r * row_bytes, q, n));
}

/* The tile body for a constant number of token rows NT: inlined into one function per
 * NT so that the accumulators stay in registers. */
BN_AVX2 static inline __attribute__((always_inline)) void
bn_i2s_tile_body(const uint8_t *codes, const int8_t *q, int64_t n, const int NT, int32_t *out)
{
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    const int64_t nb = n / 128;
    __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    for (int64_t b0 = 0; b0 < nb; b0 += BN_I16_BLOCKS) {
        int64_t b1 = b0 + BN_I16_BLOCKS < nb ? b0 + BN_I16_BLOCKS : nb;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t b = b0; b < b1; b++) {
            __m256i p = _mm256_loadu_si256((const __m256i *)(codes + b * 32));
            __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(p, 6), m3);
            __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(p, 4), m3);
            __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(p, 2), m3);
            __m256i c3 = _mm256_and_si256(p, m3);
            const int8_t *qb = q + b * 128;
            a0 = _mm256_add_epi16(a0, bn_block128_avx2(c0, c1, c2, c3, qb));
            if (NT > 1)
                a1 = _mm256_add_epi16(a1, bn_block128_avx2(c0, c1, c2, c3, qb + n));
            if (NT > 2)
                a2 = _mm256_add_epi16(a2, bn_block128_avx2(c0, c1, c2, c3, qb + 2 * n));
            if (NT > 3)
                a3 = _mm256_add_epi16(a3, bn_block128_avx2(c0, c1, c2, c3, qb + 3 * n));
        }
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(a0, ones));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(a1, ones));
        acc2 = _mm256_add_epi32(acc2, _mm256_madd_epi16(a2, ones));
        acc3 = _mm256_add_epi32(acc3, _mm256_madd_epi16(a3, ones));
    }
    /* the four sums reduced together (the unused accumulators are zero) */
    __m128i s4 = bn_hsum4_i32_avx2(acc0, acc1, acc2, acc3);
    if (NT == 4) {
        _mm_storeu_si128((__m128i *)out, s4);
    } else {
        int32_t t[4];
        _mm_storeu_si128((__m128i *)t, s4);
        for (int j = 0; j < NT; j++)
            out[j] = t[j];
    }
}

BN_AVX2 static void bn_dot_i2s_q8_tile_avx2(const uint8_t *codes, const int8_t *q,
                                            int64_t n, int nt, int32_t *out)
{
    switch (nt) {
    case 4: bn_i2s_tile_body(codes, q, n, 4, out); break;
    case 3: bn_i2s_tile_body(codes, q, n, 3, out); break;
    case 2: bn_i2s_tile_body(codes, q, n, 2, out); break;
    default: bn_i2s_tile_body(codes, q, n, 1, out); break;
    }
}

/* One TQ2_0 block (two 32-byte halves of codes: byte m holds weights m, 32+m, 64+m, 96+m
 * of the half in bits 1-0, 3-2, 5-4, 7-6) against q[0..255]: eight int32 lanes. */
BN_AVX2 static inline __m256i bn_tq2_block_avx2(const uint8_t *qs, const int8_t *q)
{
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i a16 = _mm256_setzero_si256();
    for (int half = 0; half < 2; half++) {
        __m256i p = _mm256_loadu_si256((const __m256i *)(qs + 32 * half));
        __m256i c0 = _mm256_and_si256(p, m3);
        __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(p, 2), m3);
        __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(p, 4), m3);
        __m256i c3 = _mm256_and_si256(_mm256_srli_epi16(p, 6), m3);
        a16 = _mm256_add_epi16(a16, bn_block128_avx2(c0, c1, c2, c3, q + 128 * half));
    }
    return _mm256_madd_epi16(a16, _mm256_set1_epi16(1));
}

/* Asks for the four cache lines BN_PREFETCH_AHEAD bytes past p (256 bytes: a Q6_K
 * block, or four TQ blocks' worth of codes). */
BN_AVX2 static inline void bn_prefetch4_avx2(const void *p)
{
    for (int l = 0; l < 4; l++)
        _mm_prefetch((const char *)p + BN_PREFETCH_AHEAD + 64 * l, _MM_HINT_T0);
}

/* Four consecutive TQ2_0 blocks (`stride` bytes apart) against q[0..1023]: their four
 * sums; the lines 4 KiB ahead are requested first. */
BN_AVX2 static inline __m128i bn_tq2_blocks4_avx2(const uint8_t *p, size_t stride,
                                                  const int8_t *q)
{
    bn_prefetch4_avx2(p);
    return bn_hsum4_i32_avx2(bn_tq2_block_avx2(p, q), bn_tq2_block_avx2(p + stride, q + 256),
                             bn_tq2_block_avx2(p + 2 * stride, q + 512),
                             bn_tq2_block_avx2(p + 3 * stride, q + 768));
}

BN_AVX2 static void bn_dot_tq2_q8_avx2(const uint8_t *blocks, size_t stride, const int8_t *q,
                                       int64_t n, int32_t *sums)
{
    const int64_t nb = n / 256;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {   /* four blocks, reduced together */
        const uint8_t *p = blocks + (size_t)b * stride;
        __m128i s4 = bn_tq2_blocks4_avx2(p, stride, q + b * 256);
        _mm_storeu_si128((__m128i *)(sums + b), s4);
    }
    for (; b < nb; b++)
        sums[b] = bn_hsum_i32_avx2(bn_tq2_block_avx2(blocks + (size_t)b * stride, q + b * 256));
}

/* Trits of 16 bytes held in the high byte of 16-bit lanes (v << 8): multiplying by
 * 3^k keeps (v * 3^k mod 256) << 8, and the high half of that times 3 is the trit. */
BN_AVX2 static inline __m256i bn_trits16(__m256i v8, int16_t pow3)
{
    return _mm256_mulhi_epu16(_mm256_mullo_epi16(v8, _mm256_set1_epi16(pow3)),
                              _mm256_set1_epi16(3));
}

/* One TQ1_0 block against q[0..255]: eight int32 lanes. */
BN_AVX2 static inline __m256i bn_tq1_block_avx2(const bn_block_tq1_0 *blk, const int8_t *q)
{
    static const int16_t pow3[5] = {1, 3, 9, 27, 81};
    const __m256i zero = _mm256_setzero_si256(), ones = _mm256_set1_epi16(1);
    /* bytes 0..31, trit k: weights 32k + m, in order after packus */
    __m256i x = _mm256_loadu_si256((const __m256i *)blk->qs);
    __m256i lo = _mm256_unpacklo_epi8(zero, x), hi = _mm256_unpackhi_epi8(zero, x);
    __m256i a16 = _mm256_setzero_si256();
    for (int k = 0; k < 5; k++) {
        __m256i t = _mm256_packus_epi16(bn_trits16(lo, pow3[k]), bn_trits16(hi, pow3[k]));
        a16 = _mm256_add_epi16(a16, _mm256_maddubs_epi16(
            t, _mm256_loadu_si256((const __m256i *)(q + 32 * k))));
    }
    __m256i acc = _mm256_madd_epi16(a16, ones);
    /* bytes 32..47, trit k: weights 160 + 16k + m */
    __m256i y = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(
        (const __m128i *)(blk->qs + 32))), 8);
    for (int k = 0; k < 5; k++)
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(bn_trits16(y, pow3[k]),
            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + 160 + 16 * k)))));
    /* qh[0..3], trit k: weights 240 + 4k + j; lane 4k + j holds qh[j], times 3^k */
    uint32_t h4;
    memcpy(&h4, blk->qh, 4);
    __m256i h = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_set1_epi32((int)h4)), 8);
    h = _mm256_mullo_epi16(h, _mm256_setr_epi16(1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9,
                                                27, 27, 27, 27));
    h = _mm256_mulhi_epu16(h, _mm256_set1_epi16(3));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(h, _mm256_cvtepi8_epi16(
        _mm_loadu_si128((const __m128i *)(q + 240)))));
    return acc;
}

/* Four block sums minus their activation sums, times the blocks' scales, in double,
 * added to acc in block order. */
BN_AVX2 static inline double bn_tq_combine4(double acc, __m128i s4, const int32_t *qbsum,
                                            const uint8_t *p, size_t stride, size_t doff)
{
    s4 = _mm_sub_epi32(s4, _mm_loadu_si128((const __m128i *)qbsum));
    uint16_t h[4];
    for (int j = 0; j < 4; j++)
        memcpy(&h[j], p + (size_t)j * stride + doff, 2);
    uint64_t h64;
    memcpy(&h64, h, 8);
    __m256d d = _mm256_cvtps_pd(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)h64)));
    __m256d t = _mm256_mul_pd(_mm256_cvtepi32_pd(s4), d);
    double v[4];
    _mm256_storeu_pd(v, t);
    acc += v[0];
    acc += v[1];
    acc += v[2];
    acc += v[3];
    return acc;
}

BN_AVX2 static void bn_dot_tq2_q8_rows_avx2(const uint8_t *rows, size_t row_bytes,
                                            int64_t nrows, const int8_t *q,
                                            const int32_t *qbsum, int64_t n, double *out)
{
    const size_t stride = sizeof(bn_block_tq2_0);
    const size_t doff = offsetof(bn_block_tq2_0, d);
    const int64_t nb = n / 256;
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *row = rows + (size_t)r * row_bytes;
        double acc = 0.0;
        int64_t b = 0;
        for (; b + 4 <= nb; b += 4) {
            const uint8_t *p = row + (size_t)b * stride;
            __m128i s4 = bn_tq2_blocks4_avx2(p, stride, q + b * 256);
            acc = bn_tq_combine4(acc, s4, qbsum + b, p, stride, doff);
        }
        for (; b < nb; b++) {
            const bn_block_tq2_0 *blk = (const bn_block_tq2_0 *)(row + (size_t)b * stride);
            int32_t s = bn_hsum_i32_avx2(bn_tq2_block_avx2(blk->qs, q + b * 256));
            acc += (double)(s - qbsum[b]) * (double)bn_f16_decode(blk->d);
        }
        out[r] = acc;
    }
}

/* The codes of one half (32 bytes) of a TQ2_0 block as bytes, c[i] holding its weights
 * 32i..32i+31. */
BN_AVX2 static inline __attribute__((always_inline)) void
bn_tq2_half_codes_avx2(const uint8_t *qs, __m256i c[4])
{
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i p = _mm256_loadu_si256((const __m256i *)qs);
    c[0] = _mm256_and_si256(p, m3);
    c[1] = _mm256_and_si256(_mm256_srli_epi16(p, 2), m3);
    c[2] = _mm256_and_si256(_mm256_srli_epi16(p, 4), m3);
    c[3] = _mm256_and_si256(_mm256_srli_epi16(p, 6), m3);
}

/* The codes of one TQ2_0 block, c[i] holding weights 32i..32i+31. */
BN_AVX2 static inline __attribute__((always_inline)) void
bn_tq2_codes_avx2(const uint8_t *qs, __m256i c[8])
{
    bn_tq2_half_codes_avx2(qs, c);
    bn_tq2_half_codes_avx2(qs + 32, c + 4);
}

/* The trits of one TQ1_0 block as bytes, c[i] holding weights 32i..32i+31: the five
 * trits of bytes 0..31 are weights 32k + m; those of bytes 32..47 weights 160 + 16k + m;
 * the four of qh[j] weights 240 + 4k + j. */
BN_AVX2 static inline __attribute__((always_inline)) void
bn_tq1_codes_avx2(const bn_block_tq1_0 *blk, __m256i c[8])
{
    static const int16_t pow3[5] = {1, 3, 9, 27, 81};
    const __m256i zero = _mm256_setzero_si256();
    __m256i x = _mm256_loadu_si256((const __m256i *)blk->qs);
    __m256i lo = _mm256_unpacklo_epi8(zero, x), hi = _mm256_unpackhi_epi8(zero, x);
    for (int k = 0; k < 5; k++)
        c[k] = _mm256_packus_epi16(bn_trits16(lo, pow3[k]), bn_trits16(hi, pow3[k]));
    __m256i y = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(
        (const __m128i *)(blk->qs + 32))), 8);
    __m256i u[5];
    for (int k = 0; k < 5; k++)
        u[k] = bn_trits16(y, pow3[k]);
    uint32_t h4;
    memcpy(&h4, blk->qh, 4);
    __m256i h = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_set1_epi32((int)h4)), 8);
    h = _mm256_mullo_epi16(h, _mm256_setr_epi16(1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9,
                                                27, 27, 27, 27));
    h = _mm256_mulhi_epu16(h, _mm256_set1_epi16(3));
    /* packus interleaves the two operands by 64-bit quarters; 0xd8 puts them in order */
    c[5] = _mm256_permute4x64_epi64(_mm256_packus_epi16(u[0], u[1]), 0xd8);
    c[6] = _mm256_permute4x64_epi64(_mm256_packus_epi16(u[2], u[3]), 0xd8);
    c[7] = _mm256_permute4x64_epi64(_mm256_packus_epi16(u[4], h), 0xd8);
}

/* The TQ2_0 / TQ1_0 tile body for a constant number of token rows NT: each block's codes
 * are extracted once for all NT tokens. The block sums minus the activation sums are
 * transposed to one vector per block (a lane per token), so that a vector of four double
 * accumulators adds every token's blocks in block order, as the decode does, without a
 * chain of scalar adds. */
BN_AVX2 static inline __attribute__((always_inline)) void
bn_tq_tile_body(const uint8_t *row, const int8_t *q, const int32_t *qbsum, int64_t n,
                const int NT, const bool tq1, double *out)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const size_t stride = tq1 ? sizeof(bn_block_tq1_0) : sizeof(bn_block_tq2_0);
    const size_t doff = tq1 ? offsetof(bn_block_tq1_0, d) : offsetof(bn_block_tq2_0, d);
    const int64_t nb = n / 256;
    __m256d acc = _mm256_setzero_pd();
    /* the lanes of four blocks per token (of the first NT tokens) */
    __attribute__((aligned(32))) int32_t lanes[4][4][8];
    for (int64_t b0 = 0; b0 < nb; b0 += 4) {
        const int nj = nb - b0 < 4 ? (int)(nb - b0) : 4;
        const uint8_t *p = row + (size_t)b0 * stride;
        for (int j = 0; j < nj; j++) {
            __m256i c[8];
            if (tq1)
                bn_tq1_codes_avx2((const bn_block_tq1_0 *)(p + (size_t)j * stride), c);
            else
                bn_tq2_codes_avx2(p + (size_t)j * stride, c);
            for (int t = 0; t < NT; t++) {
                const int8_t *qt = q + (size_t)t * (size_t)n + (b0 + j) * 256;
                __m256i a16 = _mm256_add_epi16(bn_block128_avx2(c[0], c[1], c[2], c[3], qt),
                                               bn_block128_avx2(c[4], c[5], c[6], c[7],
                                                                qt + 128));
                _mm256_store_si256((__m256i *)lanes[t][j], _mm256_madd_epi16(a16, ones));
            }
        }
        /* per token: its four block sums minus the activation sums of those blocks */
        __m128i st[4];
        for (int t = 0; t < 4; t++) {
            if (t >= NT) {
                st[t] = _mm_setzero_si128();
                continue;
            }
            __m256i l[4];   /* the blocks past the row's end add nothing */
            for (int j = 0; j < 4; j++)
                l[j] = j < nj ? _mm256_load_si256((const __m256i *)lanes[t][j])
                              : _mm256_setzero_si256();
            __m128i s4 = bn_hsum4_i32_avx2(l[0], l[1], l[2], l[3]);
            const int32_t *qb = qbsum + t * nb + b0;
            __m128i q4 = nj == 4 ? _mm_loadu_si128((const __m128i *)qb)
                                 : _mm_setr_epi32(qb[0], nj > 1 ? qb[1] : 0,
                                                  nj > 2 ? qb[2] : 0, 0);
            st[t] = _mm_sub_epi32(s4, q4);
        }
        /* transposed: col[j] holds block j of every token */
        __m128i lo01 = _mm_unpacklo_epi32(st[0], st[1]), hi01 = _mm_unpackhi_epi32(st[0], st[1]);
        __m128i lo23 = _mm_unpacklo_epi32(st[2], st[3]), hi23 = _mm_unpackhi_epi32(st[2], st[3]);
        __m128i col[4] = {_mm_unpacklo_epi64(lo01, lo23), _mm_unpackhi_epi64(lo01, lo23),
                          _mm_unpacklo_epi64(hi01, hi23), _mm_unpackhi_epi64(hi01, hi23)};
        for (int j = 0; j < nj; j++) {
            uint16_t h;
            memcpy(&h, p + (size_t)j * stride + doff, 2);
            double d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
            acc = _mm256_add_pd(acc, _mm256_mul_pd(_mm256_cvtepi32_pd(col[j]),
                                                   _mm256_set1_pd(d)));
        }
    }
    double v[4];
    _mm256_storeu_pd(v, acc);
    for (int t = 0; t < NT; t++)
        out[t] = v[t];
}

/* The tile body for a row whose blocks all have the same finite scale d: then every
 * partial sum of the block products d * (sums[b] - qbsum[b]) is d (11 significant bits)
 * times an int32, exact in double, so the block-order sum in double is exactly d times
 * the row's integer sum. That sum is taken as the I2_S tile takes its own: in int16
 * lanes over four blocks at a time (at most 4 * 2 * 4 * 768 = 24,576), widened to int32,
 * one reduction per token at the end. The same doubles as bn_tq_tile_body, bit for bit. */
BN_AVX2 static inline __attribute__((always_inline)) void
bn_tq_tile_uniform_body(const uint8_t *row, const int8_t *q, const int32_t *qbsum, int64_t n,
                        const int NT, const bool tq1, double d, double *out)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const size_t stride = tq1 ? sizeof(bn_block_tq1_0) : sizeof(bn_block_tq2_0);
    const int64_t nb = n / 256;
    __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    for (int64_t b0 = 0; b0 < nb; b0 += 4) {
        const int64_t b1 = b0 + 4 < nb ? b0 + 4 : nb;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        /* half blocks (128 weights, four code vectors) one after the other, as the I2_S
         * tile goes: the accumulators and all eight code vectors of a block would not
         * fit in the registers (TQ1_0's trits come eight vectors at a time) */
        for (int64_t u = 2 * b0; u < 2 * b1; u++) {
            __m256i c8[8], *h = c8;
            if (tq1) {
                if (u & 1)
                    continue;
                bn_tq1_codes_avx2((const bn_block_tq1_0 *)(row + (size_t)(u / 2) * stride),
                                  c8);
            } else {
                bn_tq2_half_codes_avx2(row + (size_t)(u / 2) * stride + 32 * (u & 1), h);
            }
            for (int part = 0; part < (tq1 ? 2 : 1); part++, h += 4) {
                const int8_t *qb = q + (u + part) * 128;
                a0 = _mm256_add_epi16(a0, bn_block128_avx2(h[0], h[1], h[2], h[3], qb));
                if (NT > 1)
                    a1 = _mm256_add_epi16(a1, bn_block128_avx2(h[0], h[1], h[2], h[3],
                                                               qb + n));
                if (NT > 2)
                    a2 = _mm256_add_epi16(a2, bn_block128_avx2(h[0], h[1], h[2], h[3],
                                                               qb + 2 * n));
                if (NT > 3)
                    a3 = _mm256_add_epi16(a3, bn_block128_avx2(h[0], h[1], h[2], h[3],
                                                               qb + 3 * n));
            }
        }
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(a0, ones));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(a1, ones));
        acc2 = _mm256_add_epi32(acc2, _mm256_madd_epi16(a2, ones));
        acc3 = _mm256_add_epi32(acc3, _mm256_madd_epi16(a3, ones));
    }
    int32_t s[4];
    _mm_storeu_si128((__m128i *)s, bn_hsum4_i32_avx2(acc0, acc1, acc2, acc3));
    for (int t = 0; t < NT; t++) {
        int32_t qs = 0;
        for (int64_t b = 0; b < nb; b++)
            qs += qbsum[t * nb + b];
        /* 0.0 + : an all-zero sum gives +0.0, as the block-order sum does */
        out[t] = 0.0 + (double)(s[t] - qs) * d;
    }
}

/* The scale shared by every block of the row, finite, in *d; false when the blocks'
 * scales differ (or are infinite or NaN). */
BN_AVX2 static inline bool bn_tq_uniform_scale(const uint8_t *row, int64_t nb, size_t stride,
                                               size_t doff, double *d)
{
    uint16_t h0, h;
    memcpy(&h0, row + doff, 2);
    if ((h0 & 0x7c00) == 0x7c00)
        return false;
    for (int64_t b = 1; b < nb; b++) {
        memcpy(&h, row + (size_t)b * stride + doff, 2);
        if (h != h0)
            return false;
    }
    *d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h0)));
    return true;
}

/* The tile for a run-time nt, each size its own inlined body; rows with one scale for
 * all their blocks (as converted BitNet models have) take the uniform body. */
BN_AVX2 static inline __attribute__((always_inline)) void
bn_tq_tile_avx2(const uint8_t *row, const int8_t *q, const int32_t *qbsum, int64_t n, int nt,
                const bool tq1, double *out)
{
    const size_t stride = tq1 ? sizeof(bn_block_tq1_0) : sizeof(bn_block_tq2_0);
    const size_t doff = tq1 ? offsetof(bn_block_tq1_0, d) : offsetof(bn_block_tq2_0, d);
    double d;
    if (bn_tq_uniform_scale(row, n / 256, stride, doff, &d)) {
        switch (nt) {
        case 4: bn_tq_tile_uniform_body(row, q, qbsum, n, 4, tq1, d, out); break;
        case 3: bn_tq_tile_uniform_body(row, q, qbsum, n, 3, tq1, d, out); break;
        case 2: bn_tq_tile_uniform_body(row, q, qbsum, n, 2, tq1, d, out); break;
        default: bn_tq_tile_uniform_body(row, q, qbsum, n, 1, tq1, d, out); break;
        }
        return;
    }
    switch (nt) {
    case 4: bn_tq_tile_body(row, q, qbsum, n, 4, tq1, out); break;
    case 3: bn_tq_tile_body(row, q, qbsum, n, 3, tq1, out); break;
    case 2: bn_tq_tile_body(row, q, qbsum, n, 2, tq1, out); break;
    default: bn_tq_tile_body(row, q, qbsum, n, 1, tq1, out); break;
    }
}

BN_AVX2 static void bn_dot_tq2_q8_tile_avx2(const uint8_t *row, const int8_t *q,
                                            const int32_t *qbsum, int64_t n, int nt,
                                            double *out)
{
    bn_tq_tile_avx2(row, q, qbsum, n, nt, false, out);
}

BN_AVX2 void bn_dot_tq1_q8_tile_avx2(const uint8_t *row, const int8_t *q,
                                            const int32_t *qbsum, int64_t n, int nt,
                                            double *out)
{
    bn_tq_tile_avx2(row, q, qbsum, n, nt, true, out);
}

BN_AVX2 void bn_dot_tq1_q8_avx2(const uint8_t *blocks, size_t stride, const int8_t *q,
                                       int64_t n, int32_t *sums)
{
    const int64_t nb = n / 256;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        const uint8_t *p = blocks + (size_t)b * stride;
        bn_prefetch4_avx2(p);
        __m256i v0 = bn_tq1_block_avx2((const bn_block_tq1_0 *)p, q + b * 256);
        __m256i v1 = bn_tq1_block_avx2((const bn_block_tq1_0 *)(p + stride), q + b * 256 + 256);
        __m256i v2 = bn_tq1_block_avx2((const bn_block_tq1_0 *)(p + 2 * stride),
                                       q + b * 256 + 512);
        __m256i v3 = bn_tq1_block_avx2((const bn_block_tq1_0 *)(p + 3 * stride),
                                       q + b * 256 + 768);
        __m128i s4 = bn_hsum4_i32_avx2(v0, v1, v2, v3);
        _mm_storeu_si128((__m128i *)(sums + b), s4);
    }
    for (; b < nb; b++)
        sums[b] = bn_hsum_i32_avx2(bn_tq1_block_avx2(
            (const bn_block_tq1_0 *)(blocks + (size_t)b * stride), q + b * 256));
}

BN_AVX2 uint64_t bn_sum_u64_avx2(const uint64_t *x, int64_t n)
{
    const int64_t seg = n / 8;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0;
    for (int64_t i = 0; i + 8 <= seg; i += 8) {
        for (int k = 0; k < 8; k++) {   /* a line of each eighth in turn, 1 KiB asked ahead */
            const uint64_t *p = x + k * seg + i;
            _mm_prefetch((const char *)p + 1024, _MM_HINT_T0);
            a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)p));
            a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + 4)));
        }
    }
    a0 = _mm256_add_epi64(a0, a1);
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1));
    return (uint64_t)_mm_cvtsi128_si64(s) + (uint64_t)_mm_extract_epi64(s, 1);
}

#if defined(__x86_64__)
/* The int8 multiply-add probe: 64 rounds of eight maddubs + 16-bit adds (each of the
 * four operand pairs twice, one accumulator each: at most 64 * 2 * 2 * 127 = 32512 a
 * lane), then the accumulators widened to 32 bits as the kernels widen theirs. Written
 * in assembly so that the accumulators stay in registers whatever the compiler. */
BN_AVX2 static int64_t bn_mac_i8_peak_avx2(const uint8_t *w, const int8_t *x, int64_t chunks)
{
    int64_t total = 0;
    for (int64_t c = 0; c < chunks; c++) {
        int32_t lane[8];
        __asm__ volatile(
            "vmovdqu (%[w]), %%ymm8\n\t"
            "vmovdqu 32(%[w]), %%ymm9\n\t"
            "vmovdqu (%[x]), %%ymm10\n\t"
            "vmovdqu 32(%[x]), %%ymm11\n\t"
            "vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
            "vpxor %%ymm1, %%ymm1, %%ymm1\n\t"
            "vpxor %%ymm2, %%ymm2, %%ymm2\n\t"
            "vpxor %%ymm3, %%ymm3, %%ymm3\n\t"
            "vpxor %%ymm4, %%ymm4, %%ymm4\n\t"
            "vpxor %%ymm5, %%ymm5, %%ymm5\n\t"
            "vpxor %%ymm6, %%ymm6, %%ymm6\n\t"
            "vpxor %%ymm7, %%ymm7, %%ymm7\n\t"
            "movl $64, %%eax\n"
            "1:\n\t"
            "vpmaddubsw %%ymm10, %%ymm8, %%ymm12\n\t"
            "vpaddw %%ymm12, %%ymm0, %%ymm0\n\t"
            "vpmaddubsw %%ymm11, %%ymm8, %%ymm13\n\t"
            "vpaddw %%ymm13, %%ymm1, %%ymm1\n\t"
            "vpmaddubsw %%ymm10, %%ymm9, %%ymm14\n\t"
            "vpaddw %%ymm14, %%ymm2, %%ymm2\n\t"
            "vpmaddubsw %%ymm11, %%ymm9, %%ymm15\n\t"
            "vpaddw %%ymm15, %%ymm3, %%ymm3\n\t"
            "vpmaddubsw %%ymm10, %%ymm8, %%ymm12\n\t"
            "vpaddw %%ymm12, %%ymm4, %%ymm4\n\t"
            "vpmaddubsw %%ymm11, %%ymm8, %%ymm13\n\t"
            "vpaddw %%ymm13, %%ymm5, %%ymm5\n\t"
            "vpmaddubsw %%ymm10, %%ymm9, %%ymm14\n\t"
            "vpaddw %%ymm14, %%ymm6, %%ymm6\n\t"
            "vpmaddubsw %%ymm11, %%ymm9, %%ymm15\n\t"
            "vpaddw %%ymm15, %%ymm7, %%ymm7\n\t"
            "decl %%eax\n\t"
            "jnz 1b\n\t"
            "vpcmpeqw %%ymm12, %%ymm12, %%ymm12\n\t"
            "vpsrlw $15, %%ymm12, %%ymm12\n\t"
            "vpmaddwd %%ymm12, %%ymm0, %%ymm0\n\t"
            "vpmaddwd %%ymm12, %%ymm1, %%ymm1\n\t"
            "vpmaddwd %%ymm12, %%ymm2, %%ymm2\n\t"
            "vpmaddwd %%ymm12, %%ymm3, %%ymm3\n\t"
            "vpmaddwd %%ymm12, %%ymm4, %%ymm4\n\t"
            "vpmaddwd %%ymm12, %%ymm5, %%ymm5\n\t"
            "vpmaddwd %%ymm12, %%ymm6, %%ymm6\n\t"
            "vpmaddwd %%ymm12, %%ymm7, %%ymm7\n\t"
            "vpaddd %%ymm1, %%ymm0, %%ymm0\n\t"
            "vpaddd %%ymm3, %%ymm2, %%ymm2\n\t"
            "vpaddd %%ymm5, %%ymm4, %%ymm4\n\t"
            "vpaddd %%ymm7, %%ymm6, %%ymm6\n\t"
            "vpaddd %%ymm2, %%ymm0, %%ymm0\n\t"
            "vpaddd %%ymm6, %%ymm4, %%ymm4\n\t"
            "vpaddd %%ymm4, %%ymm0, %%ymm0\n\t"
            "vmovdqu %%ymm0, (%[l])\n\t"
            "vzeroupper"
            :
            : [w] "r"(w), [x] "r"(x), [l] "r"(lane)
            : "rax", "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
              "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
        for (int i = 0; i < 8; i++)
            total += lane[i];
    }
    return total;
}
#endif

/* Blocks [k0, k1) of a Q8_0 row against x into the float lanes acc; dx, when not NULL,
 * holds x's block scales as floats already. */
BN_AVX2 static inline __attribute__((always_inline)) __m256
bn_q8_0_span_avx2(const bn_block_q8_0 *a, const bn_block_q8_0 *b, const float *dx,
                  int64_t k0, int64_t k1, __m256 acc)
{
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t k = k0; k < k1; k++) {
        if (k & 1)
            _mm_prefetch((const char *)(a + k) + BN_PREFETCH_AHEAD, _MM_HINT_T0);
        float d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(a[k].d))) *
                  (dx ? dx[k] : _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(b[k].d))));
        __m256i wq = _mm256_loadu_si256((const __m256i *)a[k].qs);
        __m256i xq = _mm256_loadu_si256((const __m256i *)b[k].qs);
        /* |w| * (x with w's sign): pairs of products, at most 2 * 128 * 127 */
        __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq),
                                           _mm256_sign_epi8(xq, wq));
        __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(p, _mm256_set1_ps(d)));
    }
    return acc;
}

BN_AVX2 static inline float bn_lanes8_sum_avx2(__m256 acc)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

BN_AVX2 float bn_dot_q8_0_q8_0_avx2(const void *w, const void *x, int64_t n)
{
    return bn_lanes8_sum_avx2(
        bn_q8_0_span_avx2(w, x, NULL, 0, n / 32, _mm256_setzero_ps()));
}

#define BN_Q8_TURN 8        /* blocks of a row per turn: 272 bytes */

BN_AVX2 void bn_dot_q8_0_q8_0_rows_avx2(const uint8_t *w, size_t row_bytes,
                                               int64_t nrows, const void *x, int64_t n,
                                               float *out)
{
    const int64_t per = nrows / BN_STREAMS, nb = n / 32;
    /* x's block scales as floats, once per call (rows up to 8192 long) */
    const bn_block_q8_0 *xb = x;
    float dxs[256];
    const float *dx = nb <= 256 ? dxs : NULL;
    for (int64_t k = 0; dx && k < nb; k++)
        dxs[k] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(xb[k].d)));
    for (int64_t k = 0; k < per; k++) {
        const bn_block_q8_0 *row[BN_STREAMS];
        __m256 acc[BN_STREAMS];
        for (int s = 0; s < BN_STREAMS; s++) {
            row[s] = (const bn_block_q8_0 *)(w + (size_t)(s * per + k) * row_bytes);
            acc[s] = _mm256_setzero_ps();
        }
        for (int64_t c = 0; c < nb; c += BN_Q8_TURN) {
            int64_t ce = c + BN_Q8_TURN < nb ? c + BN_Q8_TURN : nb;
            for (int s = 0; s < BN_STREAMS; s++)
                acc[s] = dx ? bn_q8_0_span_avx2(row[s], x, dx, c, ce, acc[s])
                            : bn_q8_0_span_avx2(row[s], x, NULL, c, ce, acc[s]);
        }
        for (int s = 0; s < BN_STREAMS; s++)
            out[s * per + k] = bn_lanes8_sum_avx2(acc[s]);
    }
    for (int64_t r = per * BN_STREAMS; r < nrows; r++)
        out[r] = bn_dot_q8_0_q8_0_avx2(w + (size_t)r * row_bytes, x, n);
}

/* 32 codes times 32 activations with the group scales of their two halves: eight
 * int32 lanes of scale * sum of four (code - 32) * x. */
BN_AVX2 static inline __m256i bn_q6_group_avx2(__m256i codes, const int8_t *xq, int sa, int sb)
{
    __m256i xv = _mm256_loadu_si256((const __m256i *)xq);
    __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(codes, xv),
                                 _mm256_maddubs_epi16(_mm256_set1_epi8(32), xv));
    __m256i sc = _mm256_setr_m128i(_mm_set1_epi16((short)sa), _mm_set1_epi16((short)sb));
    return _mm256_madd_epi16(p, sc);
}

/* The 6-bit codes of half h (128 weights) of a Q6_K block: c[g] holds weights
 * 32 g .. 32 g + 31 of the half. */
BN_AVX2 static inline __attribute__((always_inline)) void
bn_q6_codes_avx2(const bn_block_q6_k *blk, int h, __m256i c[4])
{
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    __m256i qla = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h));
    __m256i qlb = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h + 32));
    __m256i qh = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
    c[0] = _mm256_or_si256(_mm256_and_si256(qla, m4),
                           _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
    c[1] = _mm256_or_si256(_mm256_and_si256(qlb, m4),
                           _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
    c[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qla, 4), m4),
                           _mm256_and_si256(qh, m30));
    c[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qlb, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
}

BN_AVX2 float bn_dot_q6_k_q8_0_avx2(const void *w, const void *x, int64_t n)
{
    const bn_block_q6_k *a = w;
    const bn_block_q8_0 *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t k = 0; k < n / 256; k++) {
        const bn_block_q6_k *blk = a + k;
        bn_prefetch4_avx2(blk);
        float dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(blk->d)));
        for (int h = 0; h < 2; h++) {
            __m256i c[4];
            bn_q6_codes_avx2(blk, h, c);
            const int8_t *sc = blk->scales + 8 * h;
            for (int g = 0; g < 4; g++) {
                const bn_block_q8_0 *xb = b + k * 8 + h * 4 + g;
                float d = dw * _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(xb->d)));
                __m256i s = bn_q6_group_avx2(c[g], xb->qs, sc[2 * g], sc[2 * g + 1]);
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(s),
                                                       _mm256_set1_ps(d)));
            }
        }
    }
    return bn_lanes8_sum_avx2(acc);
}

/* Rows of the same activations: what every row would compute from x alone is computed
 * once per call, for rows up to BN_Q6_ROWS_MAX_N long (longer ones take the one-row
 * kernel): 32 * x in pairs (the code offset), and x's block scales as floats. The codes'
 * group scales come from one vector per block by a permute and a shuffle. The integers
 * and floats are the one-row kernel's, so every row's float is too. */
#define BN_Q6_ROWS_MAX_N 8192

BN_AVX2 void bn_dot_q6_k_q8_0_rows_avx2(const uint8_t *w, size_t row_bytes,
                                               int64_t nrows, const void *x, int64_t n,
                                               float *out)
{
    const bn_block_q8_0 *xb = x;
    if (n > BN_Q6_ROWS_MAX_N) {
        for (int64_t r = 0; r < nrows; r++)
            out[r] = bn_dot_q6_k_q8_0_avx2(w + (size_t)r * row_bytes, x, n);
        return;
    }
    __m256i off[BN_Q6_ROWS_MAX_N / 32];
    float dx[BN_Q6_ROWS_MAX_N / 32];
    for (int64_t g = 0; g < n / 32; g++) {
        off[g] = _mm256_maddubs_epi16(_mm256_set1_epi8(32),
                                      _mm256_loadu_si256((const __m256i *)xb[g].qs));
        dx[g] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(xb[g].d)));
    }
    /* group j's scales sit in 16-bit lanes 2j, 2j + 1 (32-bit unit j): spread the first
     * over the low 128 bits, the second over the high */
    const __m256i spread = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                            2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    for (int64_t r = 0; r < nrows; r++) {
        const bn_block_q6_k *a = (const bn_block_q6_k *)(w + (size_t)r * row_bytes);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t k = 0; k < n / 256; k++) {
            const bn_block_q6_k *blk = a + k;
            bn_prefetch4_avx2(blk);
            float dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(blk->d)));
            __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales));
            for (int h = 0; h < 2; h++) {
                __m256i c[4];
                bn_q6_codes_avx2(blk, h, c);
                for (int g = 0; g < 4; g++) {
                    const int64_t gi = k * 8 + h * 4 + g;
                    __m256i sc = _mm256_shuffle_epi8(
                        _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(h * 4 + g)),
                        spread);
                    __m256i p = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(c[g], _mm256_loadu_si256(
                                                       (const __m256i *)xb[gi].qs)),
                        off[gi]);
                    __m256i s = _mm256_madd_epi16(p, sc);
                    acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(s),
                                                           _mm256_set1_ps(dw * dx[gi])));
                }
            }
        }
        out[r] = bn_lanes8_sum_avx2(acc);
    }
}

/* The scalar rule in 8 lanes: the maximum is order-free, x * s is one float product,
 * and cvtps rounds half to even under the default rounding mode, as rintf does. */
BN_AVX2 void bn_quantize_act_i8_avx2(const float *x, int64_t n, int8_t *q, float *scale)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), absmask));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float amax = _mm_cvtss_f32(h);
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
    }
    float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
    const __m256 vs = _mm256_set1_ps(s), hi = _mm256_set1_ps(127.0f),
                 lo = _mm256_set1_ps(-128.0f);
    for (i = 0; i + 32 <= n; i += 32) {
        __m256i v[4];
        for (int k = 0; k < 4; k++) {
            __m256 y = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vs);
            y = _mm256_min_ps(_mm256_max_ps(_mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT |
                                                               _MM_FROUND_NO_EXC), lo), hi);
            v[k] = _mm256_cvtps_epi32(y);
        }
        /* packs work within 128-bit lanes: put the 32 bytes back in order */
        __m256i w01 = _mm256_packs_epi32(v[0], v[1]), w23 = _mm256_packs_epi32(v[2], v[3]);
        __m256i b = _mm256_packs_epi16(w01, w23);
        b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + i), b);
    }
    for (; i < n; i++) {
        float r = rintf(x[i] * s);
        q[i] = (int8_t)(r > 127.0f ? 127 : r < -128.0f ? -128 : r);
    }
    *scale = s;
}

/* The training tile as two 6 x 8 halves, each on twelve ymm accumulators (six rows by
 * two vectors of four doubles) that the four-cycle latency of two FMA ports keeps busy;
 * the sum runs p ascending per element, as the scalar tile's, and each product is exact,
 * so the fused form gives its bits. */
BN_AVX2 static void bn_gemm_f64_tile_avx2(const double *a, const double *b, int64_t k,
                                          double *c)
{
    for (int h = 0; h < BN_GEMM_NR; h += 8) {
        __m256d c00 = _mm256_loadu_pd(c + 0 * BN_GEMM_NR + h);
        __m256d c01 = _mm256_loadu_pd(c + 0 * BN_GEMM_NR + h + 4);
        __m256d c10 = _mm256_loadu_pd(c + 1 * BN_GEMM_NR + h);
        __m256d c11 = _mm256_loadu_pd(c + 1 * BN_GEMM_NR + h + 4);
        __m256d c20 = _mm256_loadu_pd(c + 2 * BN_GEMM_NR + h);
        __m256d c21 = _mm256_loadu_pd(c + 2 * BN_GEMM_NR + h + 4);
        __m256d c30 = _mm256_loadu_pd(c + 3 * BN_GEMM_NR + h);
        __m256d c31 = _mm256_loadu_pd(c + 3 * BN_GEMM_NR + h + 4);
        __m256d c40 = _mm256_loadu_pd(c + 4 * BN_GEMM_NR + h);
        __m256d c41 = _mm256_loadu_pd(c + 4 * BN_GEMM_NR + h + 4);
        __m256d c50 = _mm256_loadu_pd(c + 5 * BN_GEMM_NR + h);
        __m256d c51 = _mm256_loadu_pd(c + 5 * BN_GEMM_NR + h + 4);
        for (int64_t p = 0; p < k; p++) {
            const double *ap = a + p * BN_GEMM_MR;
            const __m256d b0 = _mm256_loadu_pd(b + p * BN_GEMM_NR + h);
            const __m256d b1 = _mm256_loadu_pd(b + p * BN_GEMM_NR + h + 4);
            __m256d x = _mm256_broadcast_sd(ap + 0);
            c00 = _mm256_fmadd_pd(x, b0, c00);
            c01 = _mm256_fmadd_pd(x, b1, c01);
            x = _mm256_broadcast_sd(ap + 1);
            c10 = _mm256_fmadd_pd(x, b0, c10);
            c11 = _mm256_fmadd_pd(x, b1, c11);
            x = _mm256_broadcast_sd(ap + 2);
            c20 = _mm256_fmadd_pd(x, b0, c20);
            c21 = _mm256_fmadd_pd(x, b1, c21);
            x = _mm256_broadcast_sd(ap + 3);
            c30 = _mm256_fmadd_pd(x, b0, c30);
            c31 = _mm256_fmadd_pd(x, b1, c31);
            x = _mm256_broadcast_sd(ap + 4);
            c40 = _mm256_fmadd_pd(x, b0, c40);
            c41 = _mm256_fmadd_pd(x, b1, c41);
            x = _mm256_broadcast_sd(ap + 5);
            c50 = _mm256_fmadd_pd(x, b0, c50);
            c51 = _mm256_fmadd_pd(x, b1, c51);
        }
        _mm256_storeu_pd(c + 0 * BN_GEMM_NR + h, c00);
        _mm256_storeu_pd(c + 0 * BN_GEMM_NR + h + 4, c01);
        _mm256_storeu_pd(c + 1 * BN_GEMM_NR + h, c10);
        _mm256_storeu_pd(c + 1 * BN_GEMM_NR + h + 4, c11);
        _mm256_storeu_pd(c + 2 * BN_GEMM_NR + h, c20);
        _mm256_storeu_pd(c + 2 * BN_GEMM_NR + h + 4, c21);
        _mm256_storeu_pd(c + 3 * BN_GEMM_NR + h, c30);
        _mm256_storeu_pd(c + 3 * BN_GEMM_NR + h + 4, c31);
        _mm256_storeu_pd(c + 4 * BN_GEMM_NR + h, c40);
        _mm256_storeu_pd(c + 4 * BN_GEMM_NR + h + 4, c41);
        _mm256_storeu_pd(c + 5 * BN_GEMM_NR + h, c50);
        _mm256_storeu_pd(c + 5 * BN_GEMM_NR + h + 4, c51);
    }
}

/* The float tile in four passes of six rows by sixteen columns, each two ymm of eight
 * floats: twelve accumulators, p ascending with one fused multiply-add per product (the
 * scalar tile's fmaf). */
BN_AVX2 void bn_gemm_f32_tile_avx2(const float *a, const float *b, int64_t k, float *c)
{
    enum { R = BN_GEMM_MR_F32, C = BN_GEMM_NR_F32 };
    for (int pass = 0; pass < 4; pass++) {
        const int h = pass / 2 * 6, w = pass % 2 * 16;
        float *ch = c + h * C + w;
        __m256 c00 = _mm256_loadu_ps(ch + 0 * C), c01 = _mm256_loadu_ps(ch + 0 * C + 8);
        __m256 c10 = _mm256_loadu_ps(ch + 1 * C), c11 = _mm256_loadu_ps(ch + 1 * C + 8);
        __m256 c20 = _mm256_loadu_ps(ch + 2 * C), c21 = _mm256_loadu_ps(ch + 2 * C + 8);
        __m256 c30 = _mm256_loadu_ps(ch + 3 * C), c31 = _mm256_loadu_ps(ch + 3 * C + 8);
        __m256 c40 = _mm256_loadu_ps(ch + 4 * C), c41 = _mm256_loadu_ps(ch + 4 * C + 8);
        __m256 c50 = _mm256_loadu_ps(ch + 5 * C), c51 = _mm256_loadu_ps(ch + 5 * C + 8);
        for (int64_t p = 0; p < k; p++) {
            const float *ap = a + p * R + h;
            const __m256 b0 = _mm256_loadu_ps(b + p * C + w);
            const __m256 b1 = _mm256_loadu_ps(b + p * C + w + 8);
            __m256 x = _mm256_broadcast_ss(ap + 0);
            c00 = _mm256_fmadd_ps(x, b0, c00);
            c01 = _mm256_fmadd_ps(x, b1, c01);
            x = _mm256_broadcast_ss(ap + 1);
            c10 = _mm256_fmadd_ps(x, b0, c10);
            c11 = _mm256_fmadd_ps(x, b1, c11);
            x = _mm256_broadcast_ss(ap + 2);
            c20 = _mm256_fmadd_ps(x, b0, c20);
            c21 = _mm256_fmadd_ps(x, b1, c21);
            x = _mm256_broadcast_ss(ap + 3);
            c30 = _mm256_fmadd_ps(x, b0, c30);
            c31 = _mm256_fmadd_ps(x, b1, c31);
            x = _mm256_broadcast_ss(ap + 4);
            c40 = _mm256_fmadd_ps(x, b0, c40);
            c41 = _mm256_fmadd_ps(x, b1, c41);
            x = _mm256_broadcast_ss(ap + 5);
            c50 = _mm256_fmadd_ps(x, b0, c50);
            c51 = _mm256_fmadd_ps(x, b1, c51);
        }
        _mm256_storeu_ps(ch + 0 * C, c00), _mm256_storeu_ps(ch + 0 * C + 8, c01);
        _mm256_storeu_ps(ch + 1 * C, c10), _mm256_storeu_ps(ch + 1 * C + 8, c11);
        _mm256_storeu_ps(ch + 2 * C, c20), _mm256_storeu_ps(ch + 2 * C + 8, c21);
        _mm256_storeu_ps(ch + 3 * C, c30), _mm256_storeu_ps(ch + 3 * C + 8, c31);
        _mm256_storeu_ps(ch + 4 * C, c40), _mm256_storeu_ps(ch + 4 * C + 8, c41);
        _mm256_storeu_ps(ch + 5 * C, c50), _mm256_storeu_ps(ch + 5 * C + 8, c51);
    }
}

/* Blocks of 8 x 8 in registers (bn_transpose8_avx2); the edges one float at a time. */
BN_AVX2 void bn_transpose_f32_avx2(const float *src, int64_t lds, int64_t rows, int64_t cols,
                                   float *dst, int64_t ldd)
{
    const int64_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
    for (int64_t i = 0; i < r8; i += 8) {
        for (int64_t j = 0; j < c8; j += 8) {
            const float *s = src + i * lds + j;
            __m256 v[8];
            for (int k = 0; k < 8; k++)
                v[k] = _mm256_loadu_ps(s + k * lds);
            bn_transpose8_avx2(v);
            float *d = dst + j * ldd + i;
            for (int k = 0; k < 8; k++)
                _mm256_storeu_ps(d + k * ldd, v[k]);
        }
        for (int64_t ii = i; ii < i + 8; ii++)
            for (int64_t j = c8; j < cols; j++)
                dst[j * ldd + ii] = src[ii * lds + j];
    }
    for (int64_t i = r8; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * ldd + i] = src[i * lds + j];
}

const bn_kernel_table bn_kernels_avx2 = {
    .name       = "avx2",
    .dot_f32    = bn_dot_f32_avx2,
    .f16_to_f32 = bn_f16_to_f32_avx2,
    .dot_f16_f32 = bn_dot_f16_f32_avx2,
    .dot_f16_f32_rows = bn_dot_f16_f32_rows_avx2,
    .f32_to_f16 = bn_f32_to_f16_avx2,
    .dot_f16_f32_multi = bn_dot_f16_f32_multi_avx2,
    .axpy_f16_f32_multi = bn_axpy_f16_f32_multi_avx2,
    .relu2_mul  = bn_relu2_mul_avx2,
    .silu_mul   = bn_silu_mul_avx2,
    .matrix_out_f64 = bn_matrix_out_f64_avx2,
    .matrix_out_i32 = bn_matrix_out_i32_avx2,
    .rms_norm_rows = bn_rms_norm_rows_avx2,
    .dot_i2s_q8 = bn_dot_i2s_q8_avx2,
    .dot_i2s_q8_tile = bn_dot_i2s_q8_tile_avx2,
    .dot_i2s_q8_rows = bn_dot_i2s_q8_rows_avx2,
    .dot_tq2_q8 = bn_dot_tq2_q8_avx2,
    .dot_tq2_q8_tile = bn_dot_tq2_q8_tile_avx2,
    .dot_tq2_q8_rows = bn_dot_tq2_q8_rows_avx2,
    .sum_u64    = bn_sum_u64_avx2,
#if defined(__x86_64__)
    .mac_i8_peak = bn_mac_i8_peak_avx2,
#endif
    .dot_tq1_q8 = bn_dot_tq1_q8_avx2,
    .dot_tq1_q8_tile = bn_dot_tq1_q8_tile_avx2,
    .dot_q8_0_q8_0 = bn_dot_q8_0_q8_0_avx2,
    .dot_q8_0_q8_0_rows = bn_dot_q8_0_q8_0_rows_avx2,
    .dot_q6_k_q8_0 = bn_dot_q6_k_q8_0_avx2,
    .dot_q6_k_q8_0_rows = bn_dot_q6_k_q8_0_rows_avx2,
    .quantize_act_i8 = bn_quantize_act_i8_avx2,
    .gemm_f64_tile = bn_gemm_f64_tile_avx2,
    .gemm_f32_tile = bn_gemm_f32_tile_avx2,
    .transpose_f32 = bn_transpose_f32_avx2,
};

#endif
