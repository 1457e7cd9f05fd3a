/*
 * linear.c - the projections of the forward pass, on the kernels of the chosen family.
 *
 * A ternary projection follows the numerics contract: the input row x is quantized per
 * token (s = 127 / max|x|, q = round(x * s)), the sum over the weight codes is taken
 * in integers, and y = isum / s * g for I2_S (one scale g per tensor), or
 * y = (sum_b d_b * isum_b) / s for TQ1_0 / TQ2_0 (a scale d_b per block of 256, the
 * block sums combined in double). Float-stored weights take x as it is, or the
 * quantized codes (y = dot(W, q) / s) when activation quantization is on; Q8_0 and
 * Q6_K weights given Q8_0 blocks of x (the output layer) use the Q8_0 x Q8_0 and Q6_K x
 * Q8_0 kernels.
 *
 * How a projection is evaluated depends on its weight type only, through one table
 * (bn_linear_types, at the end of the paths): each type names its decode path (one
 * token: the rows streamed by a rows kernel), its prefill path (several tokens: a row
 * read once for a tile of tokens), what of the activations those two need, and its
 * generic path (a row converted to f32, float dots), which takes every other case. The
 * path is chosen once per projection and thread; adding a type is adding an entry.
 *
 * Each thread takes a contiguous range of output rows over all projections of the
 * call; a row is read once for a tile of up to 4 tokens (I2_S) or for every token of
 * the batch. Where the kernel family has matrix kernels (amx) and the step has
 * BN_MATRIX_MIN_T rows or more (TQ2_0: BN_MATRIX_MIN_T_TQ2), the I2_S and TQ2_0
 * prefill paths hand them BN_MATRIX_ROWS rows at a time against every token instead
 * (act->qp set).
 */
#include <assert.h>

#include "model/model_internal.h"

/* A path of the table: rows [r0, r1) of one projection for every token, into out
 * [T, n_out]. */
typedef void (*bn_linear_path)(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                               const bn_act *act, bool use_q, bn_linear_scratch *sc);

/* ------------------------------------------------------------- generic paths */

/* Row r (f32 values wf[n_in]) against every token: y = dot(w, x), or dot(w, q) / s on
 * the codes as floats. */
static void bn_linear_dot_tokens(const bn_linear *lin, float *out, int64_t r,
                                 const float *wf, const bn_act *act, bool use_q)
{
    const int64_t n = lin->n_in;
    const bn_kernel_table *k = bn_kernels();
    for (int32_t t = 0; t < act->T; t++) {
        float y;
        if (use_q)
            y = k->dot_f32(wf, act->qf + (size_t)t * n, n) / act->s[t];
        else
            y = k->dot_f32(wf, act->x + (size_t)t * n, n);
        out[(size_t)t * lin->n_out + r] = y * lin->out_scale;
    }
}

/* f32 rows, read in place. */
static void bn_linear_f32_rows(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                               const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)sc;
    for (int64_t r = r0; r < r1; r++)
        bn_linear_dot_tokens(lin, out, r,
                             (const float *)(lin->data + (size_t)r * lin->row_bytes), act,
                             use_q);
}

/* Rows of any readable type, converted to f32 by the type's row converter. */
static void bn_linear_converted_rows(const bn_linear *lin, float *out, int64_t r0,
                                     int64_t r1, const bn_act *act, bool use_q,
                                     bn_linear_scratch *sc)
{
    for (int64_t r = r0; r < r1; r++) {
        lin->to_f32(lin->data + (size_t)r * lin->row_bytes, sc->wf, lin->n_in);
        bn_linear_dot_tokens(lin, out, r, sc->wf, act, use_q);
    }
}

/* Ternary rows as floats (without activation quantization): the codes from the
 * format's decoder (src/quant) times their block scales, or times the tensor's scale
 * when the decoder gives none. */
static void bn_linear_ternary_rows(const bn_linear *lin, float *out, int64_t r0,
                                   int64_t r1, const bn_act *act, bool use_q,
                                   bn_linear_scratch *sc, bn_row_to_codes_fn decode,
                                   bool block_scales)
{
    const int64_t n = lin->n_in;
    for (int64_t r = r0; r < r1; r++) {
        decode(lin->data + (size_t)r * lin->row_bytes, sc->w, sc->d, n);
        for (int64_t i = 0; i < n; i++)
            sc->wf[i] = (float)sc->w[i] * (block_scales ? sc->d[i / BN_QK_K] : lin->scale);
        bn_linear_dot_tokens(lin, out, r, sc->wf, act, use_q);
    }
}

/* The generic path of each ternary type: its decoder, its kind of scale. */
static void bn_linear_i2s_rows(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                               const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    if (!lin->row_scale) {
        bn_linear_ternary_rows(lin, out, r0, r1, act, use_q, sc, bn_decode_row_i2_s, false);
        return;
    }
    /* TQ2_0 held in I2_S's layout: each row's one scale, as TQ2_0's blocks have it */
    const int64_t n = lin->n_in;
    for (int64_t r = r0; r < r1; r++) {
        bn_decode_row_i2_s(lin->data + (size_t)r * lin->row_bytes, sc->w, NULL, n);
        for (int64_t i = 0; i < n; i++)
            sc->wf[i] = (float)sc->w[i] * lin->row_scale[r];
        bn_linear_dot_tokens(lin, out, r, sc->wf, act, use_q);
    }
}

static void bn_linear_tq1_rows(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                               const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    bn_linear_ternary_rows(lin, out, r0, r1, act, use_q, sc, bn_decode_row_tq1_0, true);
}

static void bn_linear_tq2_rows(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                               const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    bn_linear_ternary_rows(lin, out, r0, r1, act, use_q, sc, bn_decode_row_tq2_0, true);
}

/* ------------------------------------------------------------- float output layers */

/* f16 decode (the tied output layer): the rows kernel reads the rows as several
 * streams; every row's value is the one-row kernel's, scaled after. */
static void bn_linear_f16_decode(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                 const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)sc;
    const uint16_t *rows = (const uint16_t *)(lin->data + (size_t)r0 * lin->row_bytes);
    float *o = out + r0;
    bn_kernels()->dot_f16_f32_rows(rows, lin->row_bytes / 2, r1 - r0,
                                   use_q ? act->qf : act->x, lin->n_in, o);
    for (int64_t r = 0; r < r1 - r0; r++)
        o[r] = (use_q ? o[r] / act->s[0] : o[r]) * lin->out_scale;
}

/* f16 rows against several tokens, read in place: a group of rows meets one tile of up
 * to BN_F16_MULTI_MAX tokens after the other (the multi-query kernel converts each row
 * once or once for two tokens of the tile), so the rows are read from memory once for
 * all tokens. Every value is the
 * one-row kernel's, bit for bit. */
static void bn_linear_f16_prefill(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                  const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)sc;
    enum { group = 16 };
    const int64_t n = lin->n_in;
    const size_t stride = lin->row_bytes / 2;
    const float *x = use_q ? act->qf : act->x;
    const bn_kernel_table *k = bn_kernels();
    for (int64_t g0 = r0; g0 < r1; g0 += group) {
        const int64_t g1 = g0 + group < r1 ? g0 + group : r1;
        const uint16_t *rows = (const uint16_t *)(lin->data + (size_t)g0 * lin->row_bytes);
        for (int32_t t0 = 0; t0 < act->T; t0 += BN_F16_MULTI_MAX) {
            const int nt = act->T - t0 < BN_F16_MULTI_MAX ? act->T - t0 : BN_F16_MULTI_MAX;
            const float *y[BN_F16_MULTI_MAX];
            float *o[BN_F16_MULTI_MAX];
            for (int j = 0; j < nt; j++) {
                y[j] = x + (size_t)(t0 + j) * n;
                o[j] = out + (size_t)(t0 + j) * lin->n_out + g0;
            }
            k->dot_f16_f32_multi(rows, stride, g1 - g0, y, nt, n, o);
            for (int j = 0; j < nt; j++)
                for (int64_t r = 0; r < g1 - g0; r++)
                    o[j][r] = (use_q ? o[j][r] / act->s[t0 + j] : o[j][r]) * lin->out_scale;
        }
    }
}

/* The kernels of a weight type against Q8_0 blocks of x: one row, and rows in order. */
typedef float (*bn_q8_dot_fn)(const void *w, const void *x, int64_t n);
typedef void (*bn_q8_rows_fn)(const uint8_t *w, size_t row_bytes, int64_t nrows,
                              const void *x, int64_t n, float *out);

/* Decode of a Q8_0 or Q6_K layer (the output layer) by its rows kernel, scaled after. */
static void bn_linear_q8_decode(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                const bn_act *act, bn_q8_rows_fn rows)
{
    float *o = out + r0;
    rows(lin->data + (size_t)r0 * lin->row_bytes, lin->row_bytes, r1 - r0, act->q8,
         lin->n_in, o);
    for (int64_t r = 0; r < r1 - r0; r++)
        o[r] = o[r] * lin->out_scale;
}

/* Q8_0 or Q6_K rows against the Q8_0 blocks of several tokens, one dot each. */
static void bn_linear_q8_prefill(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                 const bn_act *act, bn_q8_dot_fn dot)
{
    const int64_t n = lin->n_in;
    const size_t xrow = (size_t)(n / 32) * sizeof(bn_block_q8_0);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = lin->data + (size_t)r * lin->row_bytes;
        for (int32_t t = 0; t < act->T; t++)
            out[(size_t)t * lin->n_out + r] =
                dot(row, act->q8 + (size_t)t * xrow, n) * lin->out_scale;
    }
}

/* The Q8_0 and Q6_K paths: the shared ones above with the type's kernels. */
static void bn_linear_q8_0_decode(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                  const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)use_q, (void)sc;
    bn_linear_q8_decode(lin, out, r0, r1, act, bn_kernels()->dot_q8_0_q8_0_rows);
}

static void bn_linear_q8_0_prefill(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                   const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)use_q, (void)sc;
    bn_linear_q8_prefill(lin, out, r0, r1, act, bn_kernels()->dot_q8_0_q8_0);
}

static void bn_linear_q6_k_decode(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                  const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)use_q, (void)sc;
    bn_linear_q8_decode(lin, out, r0, r1, act, bn_kernels()->dot_q6_k_q8_0_rows);
}

static void bn_linear_q6_k_prefill(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                   const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)use_q, (void)sc;
    bn_linear_q8_prefill(lin, out, r0, r1, act, bn_kernels()->dot_q6_k_q8_0);
}

/* ------------------------------------------------------------- ternary fast paths */

/* The value of a TQ2_0 row with one scale d for all its blocks (TQ2_0 held in I2_S's
 * layout): its block-order sum of d * (block sum) in double is d * k exactly (every
 * partial sum is d times an integer below 2^53 / 2^11), plus 0.0 so that k = 0 gives
 * +0.0 as the block-order sum does; then scaled as bn_linear_tq2_decode scales it. */
static inline float bn_tq2_value(int32_t k, float d, float s, float out_scale)
{
    return (float)(0.0 + (double)k * (double)d) / s * out_scale;
}

/* I2_S decode: the rows streamed in order by one kernel call per BN_LINEAR_ROWS, sums
 * scaled after. */
static void bn_linear_i2s_decode(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                 const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)use_q;
    const bn_kernel_table *k = bn_kernels();
    for (int64_t g0 = r0; g0 < r1; g0 += BN_LINEAR_ROWS) {
        int64_t g1 = g0 + BN_LINEAR_ROWS < r1 ? g0 + BN_LINEAR_ROWS : r1;
        int32_t *sums = sc->bs;
        k->dot_i2s_q8_rows(lin->data + (size_t)g0 * lin->row_bytes, lin->row_bytes,
                           g1 - g0, act->q, lin->n_in, sums);
        if (lin->row_scale)
            for (int64_t r = g0; r < g1; r++)
                out[r] = bn_tq2_value(sums[r - g0] - act->qsum[0], lin->row_scale[r],
                                      act->s[0], lin->out_scale);
        else
            for (int64_t r = g0; r < g1; r++)
                out[r] = (float)(sums[r - g0] - act->qsum[0]) / act->s[0] * lin->scale *
                         lin->out_scale;
    }
}

/* I2_S prefill on the matrix kernels: BN_MATRIX_ROWS rows at a time against every
 * token, the same sums as the tiles, scaled as they are. */
static void bn_linear_i2s_matrix(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                 const bn_act *act, bn_linear_scratch *sc)
{
    const int64_t n = lin->n_in;
    const int ldo = (act->T + 31) / 32 * 32;
    int32_t *sums = sc->ms;
    for (int64_t g0 = r0; g0 < r1; g0 += BN_MATRIX_ROWS) {
        const int nr = (int)(r1 - g0 < BN_MATRIX_ROWS ? r1 - g0 : BN_MATRIX_ROWS);
        bn_kernels()->dot_i2s_q8_matrix(lin->data + (size_t)g0 * lin->row_bytes,
                                        lin->row_bytes, nr, act->qp, n, act->T, sums, ldo,
                                        sc->mw);
        if (!lin->row_scale) {
            bn_kernels()->matrix_out_i32(sums, ldo, nr, act->T, act->qsum, act->s,
                                         lin->scale, lin->out_scale, out + g0,
                                         (size_t)lin->n_out);
            continue;
        }
        /* TQ2_0 held in I2_S's layout: bn_tq2_value, token-major as matrix_out writes */
        for (int t = 0; t < act->T; t++)
            for (int r = 0; r < nr; r++)
                out[(size_t)t * (size_t)lin->n_out + (size_t)(g0 + r)] =
                    bn_tq2_value(sums[(size_t)r * (size_t)ldo + (size_t)t] - act->qsum[t],
                                 lin->row_scale[g0 + r], act->s[t], lin->out_scale);
    }
}

/* Asks the lines of rows r + ahead .. r + ahead + nr - 1 (those below r1) into the
 * second-level cache: the tile loops call it for the rows they are about to take in
 * their first tile of tokens, the family's tile_ahead_rows ahead (0: nothing). */
static inline void bn_tile_ahead(const bn_linear *lin, int64_t r, int nr, int64_t r1,
                                 int ahead)
{
    if (ahead <= 0 || r + ahead >= r1)
        return;
    const int64_t rows = r + ahead + nr <= r1 ? nr : r1 - r - ahead;
    const char *p = (const char *)lin->data + (size_t)(r + ahead) * lin->row_bytes;
    for (size_t o = 0; o < (size_t)rows * lin->row_bytes; o += 64)
        __builtin_prefetch(p + o, 0, 2);
}

/* I2_S prefill: sum (c - 1) q = sum c q - sum q, in tiles of up to 4 tokens; a group of
 * rows meets one tile after the other, so that the tile's activations and the rows'
 * codes stay in the first-level cache. Where the family has a two-row tile, rows go two
 * at a time, the activations read once for both. */
static void bn_linear_i2s_prefill(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                  const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)use_q;
    enum { group = 16 };
    const int64_t n = lin->n_in;
    const bn_kernel_table *k = bn_kernels();
    if (act->qp && k->dot_i2s_q8_matrix) {
        bn_linear_i2s_matrix(lin, out, r0, r1, act, sc);
        return;
    }
    for (int64_t g0 = r0; g0 < r1; g0 += group) {
        int64_t g1 = g0 + group < r1 ? g0 + group : r1;
        for (int32_t t0 = 0; t0 < act->T; t0 += 4) {
            int nt = act->T - t0 < 4 ? act->T - t0 : 4;
            const int8_t *qt = act->q + (size_t)t0 * n;
            int32_t sums[4][group];
            for (int64_t r = g0; r < g1;) {
                const uint8_t *row = lin->data + (size_t)r * lin->row_bytes;
                int32_t s8[8];
                const int nr = k->dot_i2s_q8_tile2 && r + 1 < g1 ? 2 : 1;
                if (t0 == 0)
                    bn_tile_ahead(lin, r, nr, r1, k->tile_ahead_rows);
                if (nr == 2)
                    k->dot_i2s_q8_tile2(row, lin->row_bytes, qt, n, nt, s8);
                else if (nt == 1)
                    s8[0] = k->dot_i2s_q8(row, qt, n);
                else
                    k->dot_i2s_q8_tile(row, qt, n, nt, s8);
                for (int i = 0; i < nr; i++, r++)
                    for (int j = 0; j < nt; j++)
                        sums[j][r - g0] = s8[4 * i + j];
            }
            /* scaled a token at a time: contiguous outputs, a vector loop */
            for (int j = 0; j < nt; j++) {
                const int32_t t = t0 + j, qs = act->qsum[t];
                const float st = act->s[t];
                float *o = out + (size_t)t * lin->n_out;
                if (lin->row_scale)
                    for (int64_t r = g0; r < g1; r++)
                        o[r] = bn_tq2_value(sums[j][r - g0] - qs, lin->row_scale[r], st,
                                            lin->out_scale);
                else
                    for (int64_t r = g0; r < g1; r++)
                        o[r] = (float)(sums[j][r - g0] - qs) / st * lin->scale *
                               lin->out_scale;
            }
        }
    }
}

/* TQ2_0 decode: rows streamed in order, each combined in double by the kernel. */
static void bn_linear_tq2_decode(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                 const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)use_q, (void)sc;
    const bn_kernel_table *k = bn_kernels();
    double acc[64];
    for (int64_t g0 = r0; g0 < r1; g0 += 64) {
        int64_t g1 = g0 + 64 < r1 ? g0 + 64 : r1;
        k->dot_tq2_q8_rows(lin->data + (size_t)g0 * lin->row_bytes, lin->row_bytes,
                           g1 - g0, act->q, act->qbsum, lin->n_in, acc);
        for (int64_t r = g0; r < g1; r++)
            out[r] = (float)acc[r - g0] / act->s[0] * lin->out_scale;
    }
}

/* A TQ prefill tile kernel (the table's dot_tq2_q8_tile or dot_tq1_q8_tile), and one
 * for two rows at once (dot_tq2_q8_tile2). */
typedef void (*bn_tq_tile_fn)(const uint8_t *row, const int8_t *q, const int32_t *qbsum,
                              int64_t n, int nt, double *out);
typedef void (*bn_tq_tile2_fn)(const uint8_t *row, size_t row_bytes, const int8_t *q,
                               const int32_t *qbsum, int64_t n, int nt, bool one_scale,
                               double *out);

/* TQ2_0 / TQ1_0 prefill: tiles of up to 4 tokens (the codes extracted once per tile),
 * each combined in double by the kernel; a group of rows meets one tile after the
 * other, so that codes and activations stay in the first-level cache. Where the family
 * has a two-row tile (tile2, else NULL), rows go two at a time, the activations read
 * once for both. */
static void bn_linear_tq_tiles(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                               const bn_act *act, bn_tq_tile_fn tile, bn_tq_tile2_fn tile2)
{
    enum { group = 16 };
    const int64_t n = lin->n_in, nb = n / BN_QK_K;
    const int ahead = bn_kernels()->tile_ahead_rows;
    for (int64_t g0 = r0; g0 < r1; g0 += group) {
        int64_t g1 = g0 + group < r1 ? g0 + group : r1;
        for (int32_t t0 = 0; t0 < act->T; t0 += 4) {
            const int nt = act->T - t0 < 4 ? act->T - t0 : 4;
            const int8_t *q = act->q + (size_t)t0 * n;
            const int32_t *qbsum = act->qbsum + (size_t)t0 * (size_t)nb;
            double acc[8];
            for (int64_t r = g0; r < g1;) {
                const uint8_t *row = lin->data + (size_t)r * lin->row_bytes;
                const int nr = tile2 && r + 1 < g1 ? 2 : 1;
                if (t0 == 0)
                    bn_tile_ahead(lin, r, nr, r1, ahead);
                if (nr == 2)
                    tile2(row, lin->row_bytes, q, qbsum, n, nt, lin->one_scale, acc);
                else
                    tile(row, q, qbsum, n, nt, acc);
                for (int i = 0; i < nr; i++, r++)
                    for (int j = 0; j < nt; j++)
                        out[(size_t)(t0 + j) * lin->n_out + r] =
                            (float)acc[4 * i + j] / act->s[t0 + j] * lin->out_scale;
            }
        }
    }
}

/* TQ2_0 prefill on the matrix kernels: BN_MATRIX_ROWS rows at a time against every
 * token, the tiles' doubles, scaled as they are. */
static void bn_linear_tq2_matrix(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                 const bn_act *act, bn_linear_scratch *sc)
{
    const int64_t n = lin->n_in;
    const int ldo = (act->T + 31) / 32 * 32;
    double *acc = sc->ms;
    for (int64_t g0 = r0; g0 < r1; g0 += BN_MATRIX_ROWS) {
        const int nr = (int)(r1 - g0 < BN_MATRIX_ROWS ? r1 - g0 : BN_MATRIX_ROWS);
        bn_kernels()->dot_tq2_q8_matrix(lin->data + (size_t)g0 * lin->row_bytes,
                                        lin->row_bytes, nr, act->qp, act->q, act->qbsum, n,
                                        act->T, lin->one_scale, acc, ldo, sc->mw);
        bn_kernels()->matrix_out_f64(acc, ldo, nr, act->T, act->s, lin->out_scale, out + g0,
                                     (size_t)lin->n_out);
    }
}

/* The TQ prefill paths: the tiles above with the type's kernel (TQ2_0: the matrix
 * kernels where the family has them). TQ1_0 has no decode path: one token takes its
 * tile of one. */
static void bn_linear_tq2_prefill(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                  const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)use_q;
    if (act->qp && act->T >= BN_MATRIX_MIN_T_TQ2 && bn_kernels()->dot_tq2_q8_matrix) {
        bn_linear_tq2_matrix(lin, out, r0, r1, act, sc);
        return;
    }
    bn_linear_tq_tiles(lin, out, r0, r1, act, bn_kernels()->dot_tq2_q8_tile,
                       bn_kernels()->dot_tq2_q8_tile2);
}

static void bn_linear_tq1_prefill(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                                  const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    (void)use_q, (void)sc;
    bn_linear_tq_tiles(lin, out, r0, r1, act, bn_kernels()->dot_tq1_q8_tile, NULL);
}

/* ------------------------------------------------------------- the table */

/* What a type's decode and prefill paths need of the activations; without it the
 * generic path runs. */
typedef enum bn_linear_needs {
    BN_LINEAR_NEEDS_NOTHING = 0,  /* x, or its codes as floats when use_q */
    BN_LINEAR_NEEDS_CODES,        /* the 8-bit codes and their sums (use_q) */
    BN_LINEAR_NEEDS_Q8_0,         /* Q8_0 blocks of x (act->q8) */
} bn_linear_needs;

/* The paths of one weight type. */
typedef struct bn_linear_type {
    bn_linear_path  decode;   /* one token; NULL: the prefill path takes it */
    bn_linear_path  prefill;  /* several tokens; NULL: the generic path takes them */
    bn_linear_needs needs;    /* of decode and prefill */
    bn_linear_path  generic;  /* everything else; NULL: no entry for the type */
} bn_linear_type;

static const bn_linear_type bn_linear_types[BN_QT_COUNT] = {
    [BN_QT_F32]   = {.generic = bn_linear_f32_rows},
    [BN_QT_F16]   = {.decode = bn_linear_f16_decode, .prefill = bn_linear_f16_prefill,
                     .needs = BN_LINEAR_NEEDS_NOTHING, .generic = bn_linear_converted_rows},
    [BN_QT_Q8_0]  = {.decode = bn_linear_q8_0_decode, .prefill = bn_linear_q8_0_prefill,
                     .needs = BN_LINEAR_NEEDS_Q8_0, .generic = bn_linear_converted_rows},
    [BN_QT_Q6_K]  = {.decode = bn_linear_q6_k_decode, .prefill = bn_linear_q6_k_prefill,
                     .needs = BN_LINEAR_NEEDS_Q8_0, .generic = bn_linear_converted_rows},
    [BN_QT_I2_S]  = {.decode = bn_linear_i2s_decode, .prefill = bn_linear_i2s_prefill,
                     .needs = BN_LINEAR_NEEDS_CODES, .generic = bn_linear_i2s_rows},
    [BN_QT_TQ2_0] = {.decode = bn_linear_tq2_decode, .prefill = bn_linear_tq2_prefill,
                     .needs = BN_LINEAR_NEEDS_CODES, .generic = bn_linear_tq2_rows},
    [BN_QT_TQ1_0] = {.prefill = bn_linear_tq1_prefill,
                     .needs = BN_LINEAR_NEEDS_CODES, .generic = bn_linear_tq1_rows},
};

/* Every other type a projection can hold (bf16, Q4_0, ...): rows converted to f32. */
static const bn_linear_type bn_linear_converted = {.generic = bn_linear_converted_rows};

/* The path that evaluates a projection of `type` on act: the type's decode path for one
 * token, else its prefill path, when act has what they need; else its generic path. */
static bn_linear_path bn_linear_path_for(int type, const bn_act *act, bool use_q)
{
    const bool listed = type >= 0 && type < BN_QT_COUNT && bn_linear_types[type].generic;
    const bn_linear_type *t = listed ? &bn_linear_types[type] : &bn_linear_converted;
    bool ready = t->needs == BN_LINEAR_NEEDS_NOTHING ||
                 (t->needs == BN_LINEAR_NEEDS_CODES && use_q) ||
                 (t->needs == BN_LINEAR_NEEDS_Q8_0 && act->q8 != NULL);
    if (ready && act->T == 1 && t->decode)
        return t->decode;
    if (ready && t->prefill)
        return t->prefill;
    return t->generic;
}

/* ------------------------------------------------------------- the threads */

typedef struct bn_linear_job {
    const bn_linear *const *lin;
    float *const *out;
    int count;
    int64_t total_rows;
    const bn_act *act;
    bool use_q;
    bn_linear_scratch *scratch;
    int n_scratch;
} bn_linear_job;

/* Thread ith's share of the rows of all projections, each range by its type's path. */
static void bn_linear_task(void *ctx, int ith, int nth)
{
    const bn_linear_job *job = ctx;
    int workers = nth < job->n_scratch ? nth : job->n_scratch;
    if (ith >= workers)
        return;
    int64_t begin = job->total_rows * ith / workers;
    int64_t end = job->total_rows * (ith + 1) / workers;
    int64_t base = 0;
    for (int i = 0; i < job->count && begin < end; i++) {
        const bn_linear *lin = job->lin[i];
        int64_t rows = lin->n_out;
        if (begin < base + rows) {
            int64_t r0 = begin - base, r1 = (end < base + rows ? end : base + rows) - base;
            bn_linear_path path = bn_linear_path_for(lin->type, job->act, job->use_q);
            path(lin, job->out[i], r0, r1, job->act, job->use_q, &job->scratch[ith]);
            begin = base + r1;
        }
        base += rows;
    }
}

void bn_linear_eval(const bn_linear *const *lin, float *const *out, int count,
                    const bn_act *act, bool use_q, bn_linear_scratch *scratch,
                    int n_scratch)
{
    bn_linear_job job = {lin, out, count, 0, act, use_q, scratch, n_scratch};
    for (int i = 0; i < count; i++) {
        assert(lin[i]->n_in == act->n);
        job.total_rows += lin[i]->n_out;
    }
    bn_run_on_default_pool(bn_linear_task, &job);
}
