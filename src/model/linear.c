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
 * Each thread takes a contiguous range of output rows over all projections of the
 * call; a row is read once for a tile of up to 4 tokens (I2_S) or for every token of
 * the batch.
 */
#include <assert.h>
#include <string.h>

#include "model/model_internal.h"

void bn_tq1_codes(const bn_block_tq1_0 *blk, int8_t *t)
{
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    /* trit k of a byte: multiply by 3^k (mod 256), the top trit is (v*3) >> 8 */
    for (int k = 0; k < 5; k++)
        for (int m = 0; m < 32; m++)
            t[32 * k + m] = (int8_t)(((uint8_t)(blk->qs[m] * pow3[k]) * 3) >> 8);
    for (int k = 0; k < 5; k++)
        for (int m = 0; m < 16; m++)
            t[160 + 16 * k + m] = (int8_t)(((uint8_t)(blk->qs[32 + m] * pow3[k]) * 3) >> 8);
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++)
            t[240 + 4 * k + j] = (int8_t)(((uint8_t)(blk->qh[j] * pow3[k]) * 3) >> 8);
}

bool bn_linear_decode_row(const bn_linear *lin, int64_t r, int8_t *w, float *d)
{
    const uint8_t *row = lin->data + (size_t)r * lin->row_bytes;
    int64_t n = lin->n_in;
    switch (lin->type) {
    case BN_QT_I2_S:
        /* 128 weights per 32 bytes; byte j: weights j, 32+j, 64+j, 96+j in bits
         * 7-6, 5-4, 3-2, 1-0; code c means c - 1 (code 3, never written, means +2, as
         * in the integer kernels and in ggml's TQ2_0) */
        for (int64_t b = 0; b < n / BN_I2S_BLOCK; b++) {
            const uint8_t *p = row + b * BN_I2S_BLOCK_BYTES;
            int8_t *y = w + b * BN_I2S_BLOCK;
            for (int j = 0; j < 32; j++) {
                for (int k = 0; k < 4; k++) {
                    int c = (p[j] >> (6 - 2 * k)) & 3;
                    y[32 * k + j] = (int8_t)(c - 1);
                }
            }
        }
        return false;
    case BN_QT_TQ2_0: {
        const bn_block_tq2_0 *blk = (const bn_block_tq2_0 *)row;
        for (int64_t b = 0; b < n / BN_QK_K; b++) {
            d[b] = bn_f16_to_f32(blk[b].d);
            int8_t *y = w + b * BN_QK_K;
            for (int half = 0; half < 2; half++)
                for (int k = 0; k < 4; k++)
                    for (int m = 0; m < 32; m++) {
                        int c = (blk[b].qs[32 * half + m] >> (2 * k)) & 3;
                        y[128 * half + 32 * k + m] = (int8_t)(c - 1);
                    }
        }
        return true;
    }
    case BN_QT_TQ1_0: {
        const bn_block_tq1_0 *blk = (const bn_block_tq1_0 *)row;
        for (int64_t b = 0; b < n / BN_QK_K; b++) {
            d[b] = bn_f16_to_f32(blk[b].d);
            int8_t *y = w + b * BN_QK_K;
            bn_tq1_codes(&blk[b], y);
            for (int i = 0; i < BN_QK_K; i++)
                y[i] = (int8_t)(y[i] - 1);
        }
        return true;
    }
    default:
        assert(!"not a ternary type");
        return false;
    }
}

/* Rows [r0, r1) of one projection for every token. */
static void bn_linear_rows(const bn_linear *lin, float *out, int64_t r0, int64_t r1,
                           const bn_act *act, bool use_q, bn_linear_scratch *sc)
{
    const int64_t n = lin->n_in;
    const bn_kernel_table *k = bn_kernels();
    if (act->T == 1 && (lin->type == BN_QT_F16 ||
                        ((lin->type == BN_QT_Q8_0 || lin->type == BN_QT_Q6_K) && act->q8))) {
        /* decode of a float layer (the output layer) by a rows kernel (f16 and Q8_0
         * read the rows as several streams); every row's value is the one-row
         * kernel's, scaled after */
        const uint8_t *rows = lin->data + (size_t)r0 * lin->row_bytes;
        float *o = out + r0;
        if (lin->type == BN_QT_F16)
            k->dot_f16_f32_rows((const uint16_t *)rows, lin->row_bytes / 2, r1 - r0,
                                use_q ? act->qf : act->x, n, o);
        else if (lin->type == BN_QT_Q8_0)
            k->dot_q8_0_q8_0_rows(rows, lin->row_bytes, r1 - r0, act->q8, n, o);
        else
            k->dot_q6_k_q8_0_rows(rows, lin->row_bytes, r1 - r0, act->q8, n, o);
        const bool div = lin->type == BN_QT_F16 && use_q;
        for (int64_t r = 0; r < r1 - r0; r++)
            o[r] = (div ? o[r] / act->s[0] : o[r]) * lin->out_scale;
        return;
    }
    if (lin->type == BN_QT_I2_S && use_q && act->T == 1) {
        /* decode: the rows streamed in order by one kernel call, sums scaled after */
        for (int64_t g0 = r0; g0 < r1; g0 += BN_LINEAR_ROWS) {
            int64_t g1 = g0 + BN_LINEAR_ROWS < r1 ? g0 + BN_LINEAR_ROWS : r1;
            int32_t *sums = sc->bs;
            k->dot_i2s_q8_rows(lin->data + (size_t)g0 * lin->row_bytes, lin->row_bytes,
                               g1 - g0, act->q, n, sums);
            for (int64_t r = g0; r < g1; r++)
                out[r] = (float)(sums[r - g0] - act->qsum[0]) / act->s[0] * lin->scale *
                         lin->out_scale;
        }
        return;
    }
    if (lin->type == BN_QT_I2_S && use_q) {
        /* sum (c - 1) q = sum c q - sum q, in tiles of up to 4 tokens; a group of rows
         * meets one tile after the other, so that the tile's activations and the rows'
         * codes stay in the first-level cache */
        enum { group = 16 };
        for (int64_t g0 = r0; g0 < r1; g0 += group) {
            int64_t g1 = g0 + group < r1 ? g0 + group : r1;
            for (int32_t t0 = 0; t0 < act->T; t0 += 4) {
                int nt = act->T - t0 < 4 ? act->T - t0 : 4;
                const int8_t *qt = act->q + (size_t)t0 * n;
                int32_t sums[4][group];
                for (int64_t r = g0; r < g1; r++) {
                    const uint8_t *row = lin->data + (size_t)r * lin->row_bytes;
                    int32_t s4[4];
                    if (nt == 1)
                        s4[0] = k->dot_i2s_q8(row, qt, n);
                    else
                        k->dot_i2s_q8_tile(row, qt, n, nt, s4);
                    for (int j = 0; j < nt; j++)
                        sums[j][r - g0] = s4[j];
                }
                /* scaled a token at a time: contiguous outputs, a vector loop */
                for (int j = 0; j < nt; j++) {
                    const int32_t t = t0 + j, qs = act->qsum[t];
                    const float st = act->s[t];
                    float *o = out + (size_t)t * lin->n_out;
                    for (int64_t r = g0; r < g1; r++)
                        o[r] = (float)(sums[j][r - g0] - qs) / st * lin->scale *
                               lin->out_scale;
                }
            }
        }
        return;
    }
    if (lin->type == BN_QT_TQ2_0 && use_q && act->T == 1) {
        /* decode: rows streamed in order, each combined in double by the kernel */
        double acc[64];
        for (int64_t g0 = r0; g0 < r1; g0 += 64) {
            int64_t g1 = g0 + 64 < r1 ? g0 + 64 : r1;
            k->dot_tq2_q8_rows(lin->data + (size_t)g0 * lin->row_bytes, lin->row_bytes,
                               g1 - g0, act->q, act->qbsum, n, acc);
            for (int64_t r = g0; r < g1; r++)
                out[r] = (float)acc[r - g0] / act->s[0] * lin->out_scale;
        }
        return;
    }
    if ((lin->type == BN_QT_TQ2_0 || lin->type == BN_QT_TQ1_0) && use_q) {
        /* tiles of up to 4 tokens (the codes extracted once per tile), each combined in
         * double by the kernel; a group of rows meets one tile after the other, so that
         * codes and activations stay in the first-level cache. (A TQ2_0 decode took
         * the rows kernel above.) */
        enum { group = 16 };
        const int64_t nb = n / BN_QK_K;
        void (*tile)(const uint8_t *, const int8_t *, const int32_t *, int64_t, int,
                     double *) = lin->type == BN_QT_TQ2_0 ? k->dot_tq2_q8_tile
                                                          : k->dot_tq1_q8_tile;
        for (int64_t g0 = r0; g0 < r1; g0 += group) {
            int64_t g1 = g0 + group < r1 ? g0 + group : r1;
            for (int32_t t0 = 0; t0 < act->T; t0 += 4) {
                const int nt = act->T - t0 < 4 ? act->T - t0 : 4;
                double acc[4];
                for (int64_t r = g0; r < g1; r++) {
                    tile(lin->data + (size_t)r * lin->row_bytes, act->q + (size_t)t0 * n,
                         act->qbsum + (size_t)t0 * (size_t)nb, n, nt, acc);
                    for (int j = 0; j < nt; j++)
                        out[(size_t)(t0 + j) * lin->n_out + r] =
                            (float)acc[j] / act->s[t0 + j] * lin->out_scale;
                }
            }
        }
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = lin->data + (size_t)r * lin->row_bytes;
        if ((lin->type == BN_QT_Q8_0 || lin->type == BN_QT_Q6_K) && act->q8) {
            const size_t xrow = (size_t)(n / 32) * sizeof(bn_block_q8_0);
            for (int32_t t = 0; t < act->T; t++) {
                const uint8_t *xq = act->q8 + (size_t)t * xrow;
                float y = lin->type == BN_QT_Q8_0 ? k->dot_q8_0_q8_0(row, xq, n)
                                                  : k->dot_q6_k_q8_0(row, xq, n);
                out[(size_t)t * lin->n_out + r] = y * lin->out_scale;
            }
            continue;
        }
        if (lin->type == BN_QT_F16) {   /* f16 rows (the tied output layer) in place */
            const uint16_t *h = (const uint16_t *)row;
            for (int32_t t = 0; t < act->T; t++) {
                float y = use_q ? k->dot_f16_f32(h, act->qf + (size_t)t * n, n) / act->s[t]
                                : k->dot_f16_f32(h, act->x + (size_t)t * n, n);
                out[(size_t)t * lin->n_out + r] = y * lin->out_scale;
            }
            continue;
        }
        /* a float row: converted here, or ternary codes times their scales */
        const float *wf = sc->wf;
        if (lin->type == BN_QT_F32) {
            wf = (const float *)(lin->data + (size_t)r * lin->row_bytes);
        } else if (lin->ternary) {
            bool blocks = bn_linear_decode_row(lin, r, sc->w, sc->d);
            for (int64_t i = 0; i < n; i++)
                sc->wf[i] = (float)sc->w[i] * (blocks ? sc->d[i / BN_QK_K] : lin->scale);
        } else {
            lin->to_f32(lin->data + (size_t)r * lin->row_bytes, sc->wf, n);
        }
        for (int32_t t = 0; t < act->T; t++) {
            float y;
            if (use_q)
                y = k->dot_f32(wf, act->qf + (size_t)t * n, n) / act->s[t];
            else
                y = k->dot_f32(wf, act->x + (size_t)t * n, n);
            out[(size_t)t * lin->n_out + r] = y * lin->out_scale;
        }
    }
}

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
        int64_t rows = job->lin[i]->n_out;
        if (begin < base + rows) {
            int64_t r0 = begin - base, r1 = (end < base + rows ? end : base + rows) - base;
            bn_linear_rows(job->lin[i], job->out[i], r0, r1, job->act, job->use_q,
                           &job->scratch[ith]);
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
