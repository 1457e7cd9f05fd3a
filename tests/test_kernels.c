/*
 * test_kernels.c - the ternary x int8 dot products of every kernel family give exactly
 * the integer sums of the weights as the format defines them.
 *
 * The reference sum is computed here from the weights that bn_dequantize reads out of
 * the packed row (the dequantizers are byte-checked against llama.cpp and bitnet.cpp in
 * test_qformats): code = w / scale + 1, sum = sum_i code_i * q_i. Every family the CPU
 * can run must return that integer, for random codes (0, 1, 2), for rows of arbitrary
 * bytes (code 3 included) and activations across the whole int8 range (-128 included),
 * for many row lengths. The fused f16 x f32 dot
 * must equal the conversion followed by the f32 dot of the same family, bit for bit.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/internal.h"
#include "quant/formats.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Random ternary weights w in {-1, 0, 1} (scale 1), quantized into `type`; q random
 * int8 with the extremes often. Returns the reference sum of (w + 1) * q per block of
 * `block` weights in sums[]. */
static bool make_case(int type, int64_t n, int pattern, uint8_t *packed, size_t nbytes,
                      int8_t *q, int64_t block, int64_t *sums)
{
    float *w = malloc((size_t)n * sizeof *w);
    float *back = malloc((size_t)n * sizeof *back);
    for (int64_t i = 0; i < n; i++) {
        int c = pattern == 0 ? (int)(rng() % 3) : pattern == 1 ? 2 : 0;   /* code 0..2 */
        w[i] = (float)(c - 1);
        int r = (int)(rng() % 8);
        q[i] = (int8_t)(r == 0 ? -128 : r == 1 ? 127 : (int)(rng() % 256) - 128);
    }
    bool ok = bn_quantize(type, w, n, 1, packed, nbytes) == BN_OK &&
              bn_dequantize(type, packed, nbytes, n, 1, back) == BN_OK;
    for (int64_t b = 0; ok && b < n / block; b++) {
        int64_t s = 0;
        for (int64_t i = b * block; i < (b + 1) * block; i++) {
            ok = ok && back[i] == w[i];
            s += (int64_t)(back[i] + 1.0f) * q[i];
        }
        sums[b] = s;
    }
    free(w);
    free(back);
    return ok;
}

/* dot_f16_f32 is f16_to_f32 followed by dot_f32 of the same table, bit for bit. */
static void test_f16_dot(const bn_kernel_table *k)
{
    static const int64_t lengths[] = {1, 7, 8, 31, 32, 33, 100, 2560, 2567};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int64_t n = lengths[li];
        uint16_t *h = malloc((size_t)n * sizeof *h);
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        for (int64_t i = 0; i < n; i++) {
            h[i] = bn_f32_to_f16(((float)(rng() % 20001) - 10000.0f) / 5000.0f);
            y[i] = ((float)(rng() % 20001) - 10000.0f) / 3000.0f;
        }
        k->f16_to_f32(h, x, n);
        float a = k->dot_f16_f32(h, y, n), b = k->dot_f32(x, y, n);
        CHECK(memcmp(&a, &b, sizeof a) == 0, "%s dot_f16_f32 n=%lld: %.9g vs %.9g", k->name,
              (long long)n, a, b);
        free(h);
        free(x);
        free(y);
    }
}

static void check_tq_tile(const bn_kernel_table *k, int type, const uint8_t *p, size_t nb,
                          const int8_t *q, int64_t n);

/* TQ1_0 blocks of arbitrary bytes (every byte value in every position over the rounds,
 * not only the encodings a quantizer writes): the block sums of the trits that the
 * dequantizer (byte-checked against llama.cpp) reads out. */
static void test_tq1_all_bytes(const bn_kernel_table *k)
{
    enum { nb = 4, n = nb * 256 };
    bn_block_tq1_0 blk[nb];
    int8_t q[n];
    float w[n];
    for (int round = 0; round < 256; round++) {
        uint8_t *raw = (uint8_t *)blk;
        for (size_t i = 0; i < sizeof blk; i++)
            raw[i] = (uint8_t)(i * 7 + (size_t)round * 13);
        for (int b = 0; b < nb; b++)
            blk[b].d = 0x3c00;   /* 1.0 */
        for (int i = 0; i < n; i++) {
            int r = (int)(rng() % 8);
            q[i] = (int8_t)(r == 0 ? -128 : r == 1 ? 127 : (int)(rng() % 256) - 128);
        }
        CHECK(bn_dequantize(BN_QT_TQ1_0, blk, sizeof blk, n, 1, w) == BN_OK, "tq1_0 back");
        int32_t sums[nb];
        k->dot_tq1_q8((const uint8_t *)blk, sizeof(bn_block_tq1_0), q, n, sums);
        for (int b = 0; b < nb; b++) {
            int64_t want = 0;
            for (int i = b * 256; i < (b + 1) * 256; i++)
                want += (int64_t)(w[i] + 1.0f) * q[i];
            CHECK(sums[b] == want, "%s tq1_0 raw bytes, round %d, block %d: %d, reference "
                  "%lld", k->name, round, b, sums[b], (long long)want);
        }
        check_tq_tile(k, BN_QT_TQ1_0, (const uint8_t *)blk, sizeof blk, q, n);  /* prefill */
    }
}

/* I2_S rows and TQ2_0 blocks of arbitrary bytes, so that every 2-bit code meets every
 * kernel, code 3 included (no quantizer writes it; the decoder of src/quant reads it as
 * +2, docs/FORMATS.md): each sum must be that of the codes the dequantizer reads back
 * (code = w / scale + 1), for the one-row, tile and rows kernels. 9 I2_S blocks (an odd
 * count, past BN_I16_BLOCKS) and 5 TQ2_0 blocks (a group of four and one more). */
static void test_two_bit_all_bytes(const bn_kernel_table *k)
{
    enum { rows = 5, ni = 9 * 128, nt = 5 * 256, ntb = nt / 256 };
    static uint8_t i2s[rows * ni / 4 + 32];
    static bn_block_tq2_0 tq2[rows * ntb];
    static float wi[rows * ni], wt[rows * nt];
    static int8_t q4[4 * nt];
    const float one = 1.0f;
    for (int round = 0; round < 256; round++) {
        for (size_t i = 0; i < sizeof i2s - 32; i++)
            i2s[i] = (uint8_t)(i * 7 + (size_t)round * 13);
        memcpy(i2s + sizeof i2s - 32, &one, sizeof one);   /* the tensor's scale */
        uint8_t *raw = (uint8_t *)tq2;
        for (size_t i = 0; i < sizeof tq2; i++)
            raw[i] = (uint8_t)(i * 11 + (size_t)round * 13);
        for (int b = 0; b < rows * ntb; b++)
            tq2[b].d = 0x3c00;   /* 1.0 */
        for (int i = 0; i < 4 * nt; i++) {
            int r = (int)(rng() % 8);
            q4[i] = (int8_t)(r == 0 ? -128 : r == 1 ? 127 : (int)(rng() % 256) - 128);
        }
        CHECK(bn_dequantize(BN_QT_I2_S, i2s, sizeof i2s, ni, rows, wi) == BN_OK, "i2_s back");
        CHECK(bn_dequantize(BN_QT_TQ2_0, tq2, sizeof tq2, nt, rows, wt) == BN_OK, "tq2 back");
        /* I2_S: every row against token 0 (one-row and rows kernels), row 0 as a tile
         * against all four tokens */
        int32_t got[rows], tile[4];
        k->dot_i2s_q8_rows(i2s, ni / 4, rows, q4, ni, got);
        k->dot_i2s_q8_tile(i2s, q4, ni, 4, tile);
        for (int r = 0; r < rows; r++) {
            int64_t want = 0;
            for (int i = 0; i < ni; i++)
                want += (int64_t)(wi[r * ni + i] + 1.0f) * q4[i];
            int32_t single = k->dot_i2s_q8(i2s + r * (ni / 4), q4, ni);
            CHECK(single == want && got[r] == want, "%s i2_s raw bytes, round %d, row %d: "
                  "%d, rows %d, reference %lld", k->name, round, r, single, got[r],
                  (long long)want);
        }
        for (int j = 0; j < 4; j++) {
            int64_t want = 0;
            for (int i = 0; i < ni; i++)
                want += (int64_t)(wi[i] + 1.0f) * q4[j * ni + i];
            CHECK(tile[j] == want, "%s i2_s raw bytes tile, round %d, token %d: %d, "
                  "reference %lld", k->name, round, j, tile[j], (long long)want);
        }
        /* the two-row tile, where the family has one: rows r and r + 1 against 1..4
         * tokens, each sum against the codes read back */
        for (int r = 0; k->dot_i2s_q8_tile2 && r + 1 < rows; r++)
            for (int nt2 = 1; nt2 <= 4; nt2++) {
                int32_t two[8];
                k->dot_i2s_q8_tile2(i2s + r * (ni / 4), ni / 4, q4, ni, nt2, two);
                for (int h = 0; h < 2; h++)
                    for (int j = 0; j < nt2; j++) {
                        int64_t want = 0;
                        for (int i = 0; i < ni; i++)
                            want += (int64_t)(wi[(r + h) * ni + i] + 1.0f) * q4[j * ni + i];
                        CHECK(two[4 * h + j] == want, "%s i2_s raw bytes two-row tile of "
                              "%d, round %d, row %d, token %d: %d, reference %lld", k->name,
                              nt2, round, r + h, j, two[4 * h + j], (long long)want);
                    }
            }
        /* TQ2_0: block sums and decode rows (scales 1: the sums minus the activation
         * sums, exact in double), then the prefill tile under several scales */
        int32_t qbs[ntb];
        for (int b = 0; b < ntb; b++) {
            qbs[b] = 0;
            for (int i = 0; i < 256; i++)
                qbs[b] += q4[b * 256 + i];
        }
        double acc[rows];
        k->dot_tq2_q8_rows((const uint8_t *)tq2, ntb * sizeof(bn_block_tq2_0), rows, q4, qbs,
                           nt, acc);
        for (int r = 0; r < rows; r++) {
            int32_t sums[ntb];
            k->dot_tq2_q8((const uint8_t *)(tq2 + r * ntb), sizeof(bn_block_tq2_0), q4, nt,
                          sums);
            double want_row = 0.0;
            for (int b = 0; b < ntb; b++) {
                int64_t want = 0;
                for (int i = b * 256; i < (b + 1) * 256; i++)
                    want += (int64_t)(wt[r * nt + i] + 1.0f) * q4[i];
                want_row += (double)(want - qbs[b]);
                CHECK(sums[b] == want, "%s tq2_0 raw bytes, round %d, row %d, block %d: "
                      "%d, reference %lld", k->name, round, r, b, sums[b], (long long)want);
            }
            CHECK(acc[r] == want_row, "%s tq2_0 raw bytes rows, round %d, row %d: %.17g, "
                  "want %.17g", k->name, round, r, acc[r], want_row);
        }
        check_tq_tile(k, BN_QT_TQ2_0, (const uint8_t *)tq2, ntb * sizeof(bn_block_tq2_0), q4,
                      nt);
    }
}

/* The rows kernel gives each row exactly the one-row dot of the same table (and of the
 * scalar reference's serial sum within float rounding), for row counts that are and are
 * not multiples of the kernel's streams, and rows that are not multiples of its width. */
static void test_f16_rows(const bn_kernel_table *k)
{
    static const int64_t lengths[] = {7, 32, 100, 2560, 2567};
    static const int64_t counts[] = {1, 3, 4, 5, 8, 11, 64};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        const int64_t n = lengths[li], stride = n + 9;
        uint16_t *h = malloc((size_t)(stride * 64) * sizeof *h);
        float *y = malloc((size_t)n * sizeof *y), out[64];
        for (int64_t i = 0; i < stride * 64; i++)
            h[i] = bn_f32_to_f16(((float)(rng() % 20001) - 10000.0f) / 5000.0f);
        for (int64_t i = 0; i < n; i++)
            y[i] = ((float)(rng() % 20001) - 10000.0f) / 3000.0f;
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            const int64_t nr = counts[ci];
            for (int64_t r = 0; r < nr; r++)
                out[r] = NAN;
            k->dot_f16_f32_rows(h, (size_t)stride, nr, y, n, out);
            for (int64_t r = 0; r < nr; r++) {
                const uint16_t *row = h + r * stride;
                float one = k->dot_f16_f32(row, y, n);
                double exact = 0.0;
                for (int64_t i = 0; i < n; i++)
                    exact += (double)bn_f16_to_f32(row[i]) * y[i];
                CHECK(memcmp(&out[r], &one, sizeof one) == 0, "%s f16 rows n=%lld, %lld "
                      "rows, row %lld: %.9g vs %.9g", k->name, (long long)n, (long long)nr,
                      (long long)r, out[r], one);
                CHECK(fabs(out[r] - exact) <= 1e-5 * (double)n, "%s f16 rows n=%lld: %.9g "
                      "vs exact %.9g", k->name, (long long)n, out[r], exact);
            }
        }
        free(h);
        free(y);
    }
}

/* The largest sums a row can hold: every code 3 (never written by a quantizer, read as
 * +2 like ggml's TQ2_0) or 2 against every activation -128 or 127, over long rows, so
 * no intermediate int16 sum of a kernel may overflow. */
static void test_extremes(const bn_kernel_table *k)
{
    const int64_t n = 16384;
    uint8_t *p = malloc((size_t)n / 4);
    int8_t *q = malloc((size_t)(4 * n));
    for (int code = 2; code <= 3; code++) {
        for (int qv = -128; qv <= 127; qv += 255) {
            memset(p, code == 3 ? 0xFF : 0xAA, (size_t)n / 4);
            memset(q, qv, (size_t)(4 * n));
            int64_t want = (int64_t)code * qv * n;
            int32_t got = k->dot_i2s_q8(p, q, n), tile[4];
            CHECK(got == want, "%s i2_s extreme code %d q %d: %d, want %lld", k->name, code,
                  qv, got, (long long)want);
            k->dot_i2s_q8_tile(p, q, n, 4, tile);
            for (int j = 0; j < 4; j++)
                CHECK(tile[j] == want, "%s i2_s tile extreme code %d q %d: %d", k->name,
                      code, qv, tile[j]);
            /* decode rows: three rows of n / 4 weights each */
            int32_t rows3[3];
            k->dot_i2s_q8_rows(p, (size_t)n / 16, 3, q, n / 4, rows3);
            for (int r = 0; r < 3; r++)
                CHECK(rows3[r] == want / 4, "%s i2_s rows extreme code %d q %d, row %d: %d",
                      k->name, code, qv, r, rows3[r]);
            /* TQ2_0 blocks: 64 code bytes and an f16 scale */
            uint8_t blk[66 * 4];
            memset(blk, code == 3 ? 0xFF : 0xAA, sizeof blk);
            int32_t sums[4];
            k->dot_tq2_q8(blk, 66, q, 1024, sums);
            for (int b = 0; b < 4; b++)
                CHECK(sums[b] == code * qv * 256, "%s tq2_0 extreme code %d q %d: %d",
                      k->name, code, qv, sums[b]);
            /* and the prefill tile, with scales of 1: four tokens of four blocks */
            int32_t qbs[16];
            double acc[4];
            for (int b = 0; b < 4; b++)
                memcpy(blk + 66 * b + 64, &(uint16_t){0x3c00}, 2);
            for (int b = 0; b < 16; b++)
                qbs[b] = qv * 256;
            k->dot_tq2_q8_tile(blk, q, qbs, 1024, 4, acc);
            for (int j = 0; j < 4; j++)
                CHECK(acc[j] == 4.0 * (code - 1) * qv * 256, "%s tq2_0 tile extreme code %d "
                      "q %d: %g", k->name, code, qv, acc[j]);
        }
    }
    free(p);
    free(q);
    /* one long row at the extremes, code 3 against -128: 3 * 2^20 + 384 weights, beyond any
     * fixed run of blocks a kernel may sum in its lanes before reducing them (the sum,
     * -3 * 128 * n, still fits an int32) */
    const int64_t nl = 3 * (1 << 20) + 384;
    p = malloc((size_t)nl / 4 * 2);
    q = malloc((size_t)nl);
    memset(p, 0xFF, (size_t)nl / 4 * 2);
    memset(q, -128, (size_t)nl);
    int32_t two[2];
    k->dot_i2s_q8_rows(p, (size_t)nl / 4, 2, q, nl, two);
    int32_t one = k->dot_i2s_q8(p, q, nl);
    for (int r = 0; r < 2; r++)
        CHECK(two[r] == -3 * 128 * nl && one == -3 * 128 * nl, "%s i2_s long row %d: rows "
              "%d, one-row %d, want %lld", k->name, r, two[r], one, (long long)(-3 * 128 * nl));
    free(p);
    /* the same for a TQ2_0 decode row of one scale (1.0): sum (3 - 1) * -128 per weight */
    const int64_t nbl = nl / 256 + 1, nt = nbl * 256;
    uint8_t *t = malloc((size_t)nbl * 66);
    int32_t *qbs = malloc((size_t)nbl * sizeof *qbs);
    int8_t *qt = malloc((size_t)nt);
    memset(qt, -128, (size_t)nt);
    for (int64_t b = 0; b < nbl; b++) {
        memset(t + b * 66, 0xFF, 64);
        memcpy(t + b * 66 + 64, &(uint16_t){0x3c00}, 2);
        qbs[b] = -128 * 256;
    }
    double acc;
    k->dot_tq2_q8_rows(t, (size_t)nbl * 66, 1, qt, qbs, nt, &acc);
    CHECK(acc == -2.0 * 128 * (double)nt, "%s tq2_0 long row: %.17g, want %.17g", k->name,
          acc, -2.0 * 128 * (double)nt);
    free(t);
    free(qbs);
    free(qt);
    free(q);
}

/* sum_u64 is the wrapping sum of the words (read as eight streams: every word once). */
static void test_sum_u64(const bn_kernel_table *k)
{
    const int64_t n = 4096;
    uint64_t *x = bn_malloc((size_t)n * sizeof *x, "test");
    for (int64_t len = 64; len <= n; len *= 4) {
        uint64_t want = 0;
        for (int64_t i = 0; i < len; i++) {
            x[i] = ((uint64_t)rng() << 40) ^ ((uint64_t)rng() << 20) ^ rng();
            want += x[i];
        }
        CHECK(k->sum_u64(x, len) == want, "%s sum_u64 n=%lld", k->name, (long long)len);
    }
    bn_free(x);
}

/* The int8 multiply-add probe returns chunks * 128 * (the four 32-long dot products of
 * its operands), written out here; random operands and the extremes the kernels meet. */
static void test_mac_peak(const bn_kernel_table *k)
{
    if (!k->mac_i8_peak) {
        printf("%s: no int8 multiply-add probe\n", k->name);
        return;
    }
    _Alignas(32) uint8_t w[64];
    _Alignas(32) int8_t x[64];
    for (int pattern = 0; pattern < 4; pattern++) {
        for (int i = 0; i < 64; i++) {
            w[i] = pattern == 0 ? (uint8_t)(rng() % 3) : 2;
            x[i] = pattern == 0 ? (int8_t)((int)(rng() % 255) - 127)
                 : pattern == 1 ? 127 : pattern == 2 ? -127 : (int8_t)(i & 1 ? 127 : -127);
        }
        int64_t dots = 0;
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int i = 0; i < 32; i++)
                    dots += (int64_t)w[32 * a + i] * x[32 * b + i];
        for (int64_t chunks = 1; chunks <= 3; chunks += 2)
            CHECK(k->mac_i8_peak(w, x, chunks) == chunks * 128 * dots,
                  "%s mac_i8_peak pattern %d chunks %lld", k->name, pattern,
                  (long long)chunks);
    }
}

/* Q8_0 x Q8_0: the lane order the table promises, computed here from the spec, bit for
 * bit; and within float rounding of the exact sum (in double). */
static void test_q8_0(const bn_kernel_table *k)
{
    static const int64_t lengths[] = {32, 64, 96, 256, 2560, 6912};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int64_t n = lengths[li], nb = n / 32;
        bn_block_q8_0 *w = malloc((size_t)nb * sizeof *w), *x = malloc((size_t)nb * sizeof *x);
        for (int64_t b = 0; b < nb; b++) {
            w[b].d = bn_f32_to_f16((float)(rng() % 1000 + 1) / 65536.0f);
            x[b].d = bn_f32_to_f16((float)(rng() % 1000 + 1) / 4096.0f);
            for (int i = 0; i < 32; i++) {
                int r = (int)(rng() % 8);
                w[b].qs[i] = (int8_t)(r == 0 ? -128 : r == 1 ? 127 : (int)(rng() % 256) - 128);
                x[b].qs[i] = (int8_t)(r == 2 ? -127 : r == 3 ? 127 : (int)(rng() % 255) - 127);
            }
        }
        float lane[8] = {0};
        double exact = 0.0;
        for (int64_t b = 0; b < nb; b++) {
            float d = bn_f16_to_f32(w[b].d) * bn_f16_to_f32(x[b].d);
            for (int j = 0; j < 8; j++) {
                int32_t s = 0;
                for (int i = 4 * j; i < 4 * j + 4; i++) {
                    s += w[b].qs[i] * x[b].qs[i];
                    exact += (double)bn_f16_to_f32(w[b].d) * bn_f16_to_f32(x[b].d) *
                             w[b].qs[i] * x[b].qs[i];
                }
                float p = (float)s * d;
                lane[j] = lane[j] + p;
            }
        }
        float want = ((lane[0] + lane[4]) + (lane[2] + lane[6])) +
                     ((lane[1] + lane[5]) + (lane[3] + lane[7]));
        float got = k->dot_q8_0_q8_0(w, x, n);
        CHECK(memcmp(&got, &want, sizeof got) == 0, "%s q8_0 n=%lld: %.9g, want %.9g",
              k->name, (long long)n, got, want);
        CHECK(fabs(got - exact) <= 1e-5 * (fabs(exact) + 1.0), "%s q8_0 n=%lld: %.9g vs "
              "exact %.9g", k->name, (long long)n, got, exact);
        free(w);
        free(x);
    }
}

/* Random Q8_0 activation blocks (the input of a Q8_0 or Q6_K output layer). */
static void fill_q8_0_x(bn_block_q8_0 *x, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++) {
        x[b].d = bn_f32_to_f16((float)(rng() % 1000 + 1) / 4096.0f);
        for (int i = 0; i < 32; i++)
            x[b].qs[i] = (int8_t)((int)(rng() % 255) - 127);
    }
}

/* A rows kernel against its table's one-row kernel and the scalar one-row reference, bit
 * for bit, for each row count in counts (rows of row_bytes at w, at most 33). */
static void check_rows_vs_one(const bn_kernel_table *k, const char *what,
                              void (*rows)(const uint8_t *, size_t, int64_t, const void *,
                                           int64_t, float *),
                              float (*one)(const void *, const void *, int64_t),
                              float (*ref)(const void *, const void *, int64_t),
                              const uint8_t *w, size_t row_bytes, const int64_t *counts,
                              size_t n_counts, const void *x, int64_t n)
{
    for (size_t ci = 0; ci < n_counts; ci++) {
        const int64_t nr = counts[ci];
        float out[33];
        rows(w, row_bytes, nr, x, n, out);
        for (int64_t r = 0; r < nr; r++) {
            const uint8_t *row = w + (size_t)r * row_bytes;
            float o = one(row, x, n), f = ref(row, x, n);
            CHECK(memcmp(&out[r], &o, sizeof o) == 0 && memcmp(&o, &f, sizeof o) == 0,
                  "%s %s rows n=%lld, %lld rows, row %lld: %.9g, one row %.9g, scalar %.9g",
                  k->name, what, (long long)n, (long long)nr, (long long)r, out[r], o, f);
        }
    }
}

/* The Q8_0 rows kernel gives each row the one-row dot of the same table, which is the
 * scalar reference's float (the order is part of the contract). */
static void test_q8_0_rows(const bn_kernel_table *k)
{
    static const int64_t lengths[] = {32, 96, 2560, 16384};   /* the last past 8192 */
    static const int64_t counts[] = {1, 3, 4, 6, 9, 33};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        const int64_t n = lengths[li], nb = n / 32;
        const size_t row_bytes = (size_t)nb * sizeof(bn_block_q8_0);
        bn_block_q8_0 *w = malloc(row_bytes * 33), *x = malloc(row_bytes);
        for (int64_t b = 0; b < nb * 33; b++) {
            w[b].d = bn_f32_to_f16((float)(rng() % 1000 + 1) / 65536.0f);
            for (int i = 0; i < 32; i++)
                w[b].qs[i] = (int8_t)((int)(rng() % 256) - 128);
        }
        fill_q8_0_x(x, nb);
        check_rows_vs_one(k, "q8_0", k->dot_q8_0_q8_0_rows, k->dot_q8_0_q8_0,
                          bn_kernels_scalar.dot_q8_0_q8_0, (const uint8_t *)w, row_bytes,
                          counts, sizeof counts / sizeof counts[0], x, n);
        free(w);
        free(x);
    }
}

/* quantize_act_i8 follows the rule as written here: the same scale and codes, ties
 * (x * s exactly halfway) to even. */
static void test_quantize_act(const bn_kernel_table *k)
{
    static const int64_t lengths[] = {1, 7, 8, 31, 32, 33, 100, 2560, 6913};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int64_t n = lengths[li];
        float *x = malloc((size_t)n * sizeof *x);
        int8_t *q = malloc((size_t)n), *want = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++)
            x[i] = ((float)(rng() % 20001) - 10000.0f) / 777.0f;
        if (n > 4) {            /* a maximum of 127 makes s = 1: halves are ties */
            x[n / 2] = -127.0f;
            x[1] = 2.5f;
            x[2] = -3.5f;
            x[3] = 0.5f;
        }
        float amax = 0.0f;
        for (int64_t i = 0; i < n; i++)
            amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f), got_s = 0.0f;
        for (int64_t i = 0; i < n; i++) {
            float r = rintf(x[i] * s);
            want[i] = (int8_t)(r > 127.0f ? 127 : r < -128.0f ? -128 : r);
        }
        k->quantize_act_i8(x, n, q, &got_s);
        CHECK(got_s == s && memcmp(q, want, (size_t)n) == 0, "%s quantize_act_i8 n=%lld",
              k->name, (long long)n);
        if (n > 4 && s == 1.0f)
            CHECK(q[1] == 2 && q[2] == -4 && q[3] == 0, "%s quantize_act_i8: ties to even",
                  k->name);
        free(x);
        free(q);
        free(want);
    }
}

/* Q6_K x Q8_0: the weights read back by bn_dequantize (byte-checked against ggml in
 * test_qformats) give the codes and scales; the lane order the table promises is then
 * computed here, bit for bit, and the result is within float rounding of the exact
 * sum. */
static void test_q6_k(const bn_kernel_table *k)
{
    static const int64_t lengths[] = {256, 512, 2560, 6912};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int64_t n = lengths[li], nb = n / 32;
        float *src = malloc((size_t)n * sizeof *src), *deq = malloc((size_t)n * sizeof *deq);
        for (int64_t i = 0; i < n; i++)
            src[i] = ((float)(rng() % 20001) - 10000.0f) / 10000.0f * (float)(1 + i % 7);
        size_t wb = 0;
        bn_qtype_tensor_size(BN_QT_Q6_K, n, 1, &wb);
        uint8_t *w = malloc(wb);
        CHECK(bn_quantize(BN_QT_Q6_K, src, n, 1, w, wb) == BN_OK &&
              bn_dequantize(BN_QT_Q6_K, w, wb, n, 1, deq) == BN_OK, "q6_K round trip");
        bn_block_q8_0 *x = malloc((size_t)nb * sizeof *x);
        fill_q8_0_x(x, nb);
        /* code - 32 and the group scale of every weight, from deq = d * sc * (code - 32):
         * the block's d and scales are at the end of each 210-byte block */
        float lane[8] = {0};
        double exact = 0.0;
        for (int64_t b = 0; b < nb; b++) {
            const bn_block_q6_k *blk = (const bn_block_q6_k *)w + b / 8;
            float dw = bn_f16_to_f32(blk->d);
            float d = dw * bn_f16_to_f32(x[b].d);
            for (int j = 0; j < 8; j++) {
                int e0 = (int)(b % 8) * 32 + 4 * j;
                int sc = blk->scales[e0 / 16];
                int32_t s = 0;
                for (int i = 0; i < 4; i++) {
                    float v = deq[b * 32 + 4 * j + i];
                    int c = sc ? (int)lrintf(v / (dw * (float)sc)) : 0;
                    s += c * x[b].qs[4 * j + i];
                    exact += (double)v * bn_f16_to_f32(x[b].d) * x[b].qs[4 * j + i];
                }
                s *= sc;
                float p = (float)s * d;
                lane[j] = lane[j] + p;
            }
        }
        float want = ((lane[0] + lane[4]) + (lane[2] + lane[6])) +
                     ((lane[1] + lane[5]) + (lane[3] + lane[7]));
        float got = k->dot_q6_k_q8_0(w, x, n);
        CHECK(memcmp(&got, &want, sizeof got) == 0, "%s q6_K n=%lld: %.9g, want %.9g",
              k->name, (long long)n, got, want);
        CHECK(fabs(got - exact) <= 1e-4 * (fabs(exact) + 1.0), "%s q6_K n=%lld: %.9g vs "
              "exact %.9g", k->name, (long long)n, got, exact);
        free(src);
        free(deq);
        free(w);
        free(x);
    }
}

/* The Q6_K rows kernel gives each row the one-row dot of the same table, which test_q6_k
 * checks against the order the table promises (bit for bit); 16384 is past the length
 * the AVX2 kernel prepares for (it then takes the one-row kernel). */
static void test_q6_k_rows(const bn_kernel_table *k)
{
    static const int64_t lengths[] = {256, 2560, 6912, 16384};
    static const int64_t counts[] = {1, 3, 4, 9, 13};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        const int64_t n = lengths[li], nb = n / 32;
        size_t row_bytes = 0;
        bn_qtype_tensor_size(BN_QT_Q6_K, n, 1, &row_bytes);
        float *src = malloc((size_t)(n * 13) * sizeof *src);
        for (int64_t i = 0; i < n * 13; i++)
            src[i] = ((float)(rng() % 20001) - 10000.0f) / 10000.0f * (float)(1 + i % 5);
        uint8_t *w = malloc(row_bytes * 13);
        CHECK(bn_quantize(BN_QT_Q6_K, src, n, 13, w, row_bytes * 13) == BN_OK, "q6_K rows");
        bn_block_q8_0 *x = malloc((size_t)nb * sizeof *x);
        fill_q8_0_x(x, nb);
        check_rows_vs_one(k, "q6_K", k->dot_q6_k_q8_0_rows, k->dot_q6_k_q8_0,
                          bn_kernels_scalar.dot_q6_k_q8_0, w, row_bytes, counts,
                          sizeof counts / sizeof counts[0], x, n);
        free(src);
        free(w);
        free(x);
    }
}

/* The attention values kernel for one row and one query: y + a * x per element, a
 * multiply then an add, bit for bit. */
static void test_axpy(const bn_kernel_table *k)
{
    static const int64_t lengths[] = {1, 7, 8, 9, 64, 128, 131};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int64_t n = lengths[li];
        uint16_t *x = malloc((size_t)n * sizeof *x);
        float *y = malloc((size_t)n * sizeof *y), *want = malloc((size_t)n * sizeof *want);
        float a = 0.3712f;
        for (int64_t i = 0; i < n; i++) {
            x[i] = bn_f32_to_f16(((float)(rng() % 20001) - 10000.0f) / 3000.0f);
            y[i] = ((float)(rng() % 20001) - 10000.0f) / 7000.0f;
            volatile float p = a * bn_f16_to_f32(x[i]);
            want[i] = y[i] + p;
        }
        const float *ap = &a;
        k->axpy_f16_f32_multi(&ap, 1, x, (size_t)n, 1, &y, n);
        CHECK(memcmp(y, want, (size_t)n * sizeof *y) == 0, "%s axpy n=%lld", k->name,
              (long long)n);
        free(x);
        free(y);
        free(want);
    }
}

/* The attention kernels, each row read once for several queries (up to
 * BN_F16_MULTI_MAX scores, four values): every score is the one-row dot_f16_f32 of
 * the same table bit for bit (and the exact sum within float
 * rounding); the values follow the rule y = y + a * x (a multiply, then an add), row
 * after row in order, bit for bit. Row counts around the kernel's runs of rows, lengths
 * that are and are not multiples of its widths (and rows as long as an output layer's,
 * which take the one-pass body), one to eight queries. */
static void test_attention_multi(const bn_kernel_table *k)
{
    static const int64_t lengths[] = {1, 7, 8, 9, 16, 17, 64, 100, 128, 131, 512, 519, 2560};
    static const int64_t counts[] = {0, 1, 5, 63, 64, 65, 130};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        enum { M = BN_F16_MULTI_MAX };
        const int64_t n = lengths[li], stride = n + 5, maxr = 130;
        uint16_t *x = malloc((size_t)(stride * maxr) * sizeof *x);
        float *yv = malloc((size_t)(M * n) * sizeof *yv), *av = malloc(4 * maxr * sizeof *av);
        float *acc = malloc((size_t)(4 * n) * sizeof *acc);
        float *want = malloc((size_t)(4 * n) * sizeof *want), *sc = malloc(M * maxr * sizeof *sc);
        for (int64_t i = 0; i < stride * maxr; i++)
            x[i] = bn_f32_to_f16(((float)(rng() % 20001) - 10000.0f) / 4000.0f);
        for (int64_t i = 0; i < M * n; i++)
            yv[i] = ((float)(rng() % 20001) - 10000.0f) / 3000.0f;
        for (int64_t i = 0; i < 4 * maxr; i++)   /* softmax-like weights, some zero */
            av[i] = rng() % 7 == 0 ? 0.0f : (float)(rng() % 10001) / 10000.0f;
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            const int64_t nx = counts[ci];
            for (int ny = 1; ny <= M; ny++) {
                const float *y[M], *a[4];
                float *out[M], *accp[4];
                for (int j = 0; j < M; j++) {
                    y[j] = yv + j * n;
                    out[j] = sc + j * maxr;
                }
                for (int j = 0; j < 4; j++) {
                    a[j] = av + j * maxr;
                    accp[j] = acc + j * n;
                }
                for (int64_t i = 0; i < M * maxr; i++)
                    sc[i] = NAN;
                k->dot_f16_f32_multi(x, (size_t)stride, nx, y, ny, n, out);
                for (int j = 0; j < ny; j++)
                    for (int64_t i = 0; i < nx; i++) {
                        const uint16_t *row = x + i * stride;
                        float one = k->dot_f16_f32(row, y[j], n);
                        double exact = 0.0;
                        for (int64_t e = 0; e < n; e++)
                            exact += (double)bn_f16_to_f32(row[e]) * y[j][e];
                        CHECK(memcmp(&out[j][i], &one, sizeof one) == 0, "%s scores n=%lld "
                              "nx=%lld ny=%d (%d, %lld): %.9g vs %.9g", k->name, (long long)n,
                              (long long)nx, ny, j, (long long)i, out[j][i], one);
                        CHECK(fabs(out[j][i] - exact) <= 1e-5 * (double)n, "%s scores n=%lld:"
                              " %.9g vs exact %.9g", k->name, (long long)n, out[j][i], exact);
                    }
                if (ny > 4)   /* the values take up to four queries */
                    continue;
                for (int64_t i = 0; i < 4 * n; i++)
                    acc[i] = want[i] = ((float)(rng() % 2001) - 1000.0f) / 1000.0f;
                for (int j = 0; j < ny; j++)
                    for (int64_t i = 0; i < nx; i++)
                        for (int64_t e = 0; e < n; e++) {
                            volatile float p = a[j][i] * bn_f16_to_f32(x[i * stride + e]);
                            want[j * n + e] = want[j * n + e] + p;
                        }
                k->axpy_f16_f32_multi(a, ny, x, (size_t)stride, nx, accp, n);
                CHECK(memcmp(acc, want, (size_t)(4 * n) * sizeof *acc) == 0, "%s values "
                      "n=%lld nx=%lld ny=%d", k->name, (long long)n, (long long)nx, ny);
            }
        }
        free(x);
        free(yv);
        free(av);
        free(acc);
        free(want);
        free(sc);
    }
}

/* relu2_mul: v * v * u with v = g > 0 ? g : 0, bit for bit, zeros of both signs and
 * NaN included. */
static void test_relu2(const bn_kernel_table *k)
{
    const int64_t n = 37;
    float g[37], u[37], want[37];
    for (int64_t i = 0; i < n; i++) {
        g[i] = ((float)(rng() % 20001) - 10000.0f) / 999.0f;
        u[i] = ((float)(rng() % 20001) - 10000.0f) / 777.0f;
    }
    g[3] = -0.0f;
    g[4] = 0.0f;
    g[5] = NAN;
    g[30] = -NAN;
    for (int64_t i = 0; i < n; i++) {
        float v = g[i] > 0.0f ? g[i] : 0.0f;
        want[i] = v * v * u[i];
    }
    k->relu2_mul(g, u, n);
    CHECK(memcmp(g, want, sizeof g) == 0, "%s relu2_mul", k->name);
}

/* silu_mul: g / (1 + bn_expf(-g)) * u, bit for bit the scalar expression on bn_expf,
 * across the vector groups' paths: ordinary values, |x| of 88 or more (the C library's
 * expf in the scalar; clamped in the vector kernels), the overflow edge, infinities, a
 * group holding a NaN, zeros of both signs, the tail. */
static void test_silu(const bn_kernel_table *k)
{
    enum { N = 83 };
    float g[N], u[N], want[N];
    for (int rep = 0; rep < 50; rep++) {
        for (int64_t i = 0; i < N; i++) {
            g[i] = ((float)(rng() % 200001) - 100000.0f) / (rep < 25 ? 9999.0f : 999.0f);
            u[i] = ((float)(rng() % 20001) - 10000.0f) / 777.0f;
        }
        if (rep == 1) {
            g[3] = -0.0f, g[4] = 0.0f, g[5] = NAN, g[13] = -88.0f, g[21] = 87.99999f;
            g[22] = -87.99999f, g[30] = 88.0f, g[40] = INFINITY, g[48] = -INFINITY;
            g[56] = 103.5f, g[64] = -1e30f, g[72] = 1e-40f, g[80] = -1e-40f;
        }
        if (rep >= 40)   /* |g| from 80 to 112: the clamped lanes, few groups of 88 */
            for (int64_t i = 0; i < N; i++)
                g[i] = (rng() % 2 ? -1.0f : 1.0f) * (80.0f + (float)(rng() % 32001) / 1000.0f);
        if (rep == 2) {   /* the overflow edge of expf(-g) and values far past it */
            g[0] = -0x1.62e42ep6f, g[1] = -0x1.62e430p6f, g[2] = -0x1.62e42cp6f;
            g[3] = -88.0f, g[4] = -88.5f, g[5] = -89.0f, g[6] = -89.00001f, g[7] = -150.0f;
            g[8] = -1e30f, g[9] = -FLT_MAX, g[10] = 87.0f, g[11] = 87.00001f, g[12] = 86.99999f;
            g[13] = 104.0f, g[14] = FLT_MAX, g[15] = -INFINITY, g[16] = INFINITY;
        }
        for (int64_t i = 0; i < N; i++)
            want[i] = g[i] / (1.0f + bn_expf(-g[i])) * u[i];
        k->silu_mul(g, u, N);
        CHECK(memcmp(g, want, sizeof g) == 0, "%s silu_mul (round %d)", k->name, rep);
    }
}

/* rms_norm_rows against the contract written out: per row one double chain of exact
 * squares in index order, then x / den * w in float. The values span 2^-60 to 2^60 so
 * that the order of the additions shows in the sums' low bits; every row count from 0
 * to 19 (groups of eight and four and single rows) and lengths with and without a tail
 * of the vector step, rows with an infinity, a NaN and zeros. */
static void test_rms_norm(const bn_kernel_table *k)
{
    static const int64_t lens[] = {1, 3, 4, 5, 8, 13, 64, 101, 2560};
    enum { MAXR = 19, MAXN = 2560 };
    float *x = malloc(sizeof(float) * MAXR * MAXN), *w = malloc(sizeof(float) * MAXN);
    float *y = malloc(sizeof(float) * (MAXR * MAXN + 1)), /* and a canary */
          *want = malloc(sizeof(float) * MAXR * MAXN);
    if (!x || !w || !y || !want) {
        CHECK(false, "out of memory");
        return;
    }
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        for (int64_t i = 0; i < n; i++)
            w[i] = ((float)(rng() % 20001) - 10000.0f) / 3333.0f;
        for (int64_t nrows = 0; nrows <= MAXR; nrows++) {
            for (int64_t i = 0; i < nrows * n; i++)
                x[i] = ldexpf(((float)(rng() % 2000001) - 1000000.0f) / 999983.0f,
                              (int)(rng() % 121) - 60);
            if (nrows > 5 && n > 3) {
                x[5 * n + 1] = INFINITY;
                x[2 * n] = NAN;
                for (int64_t i = 0; i < n; i++)
                    x[3 * n + i] = i % 2 ? 0.0f : -0.0f;
            }
            for (int64_t t = 0; t < nrows; t++) {
                double ss = 0.0;
                for (int64_t i = 0; i < n; i++)
                    ss = ss + (double)x[t * n + i] * (double)x[t * n + i];
                const float den = sqrtf((float)(ss / (double)n) + 1e-5f);
                for (int64_t i = 0; i < n; i++)
                    want[t * n + i] = x[t * n + i] / den * w[i];
            }
            memset(y, 0x55, sizeof(float) * (size_t)(nrows * n + 1));
            float den[MAXR], want_den[MAXR];
            for (int64_t t = 0; t < nrows; t++) {
                double ss = 0.0;
                for (int64_t i = 0; i < n; i++)
                    ss = ss + (double)x[t * n + i] * (double)x[t * n + i];
                want_den[t] = sqrtf((float)(ss / (double)n) + 1e-5f);
            }
            k->rms_norm_rows(x, w, y, nrows, n, 1e-5f, nrows % 2 ? den : NULL);
            CHECK(nrows % 2 == 0 || memcmp(den, want_den, sizeof(float) * (size_t)nrows) == 0,
                  "%s rms_norm_rows: the denominators (%lld rows of %lld)", k->name,
                  (long long)nrows, (long long)n);
            CHECK(memcmp(y, want, sizeof(float) * (size_t)(nrows * n)) == 0,
                  "%s rms_norm_rows (%lld rows of %lld)", k->name, (long long)nrows,
                  (long long)n);
            uint32_t canary;
            memcpy(&canary, y + nrows * n, sizeof canary);
            CHECK(canary == 0x55555555u, "%s rms_norm_rows wrote past %lld rows of %lld",
                  k->name, (long long)nrows, (long long)n);
        }
    }
    /* Rows where the order shows: 1.5^2 + 2^-24 + 2^-24 is a tie between two floats
     * (after / 64), and the 61 squares of 2^-54 that follow are each lost against 2.25
     * in one chain, but summed apart from it (as lanes would) they tip the tie: the
     * denominators then differ (checked here, so the rows keep their teeth). One such
     * row at each place of an 8-row and a 4-row group and of a single row. */
    for (int64_t nrows = 1; nrows <= 13; nrows++)
        for (int64_t at = 0; at < nrows; at++) {
            const int64_t n = 64;
            for (int64_t i = 0; i < nrows * n; i++)
                x[i] = ldexpf((float)(rng() % 1001) / 1000.0f, -(int)(rng() % 30));
            float *r = x + at * n;
            r[0] = 1.5f, r[1] = 0x1p-12f, r[2] = 0x1p-12f;
            for (int64_t i = 3; i < n; i++)
                r[i] = 0x1p-27f;
            double chain = 0.0, lanes[4] = {0};
            for (int64_t i = 0; i < n; i++) {
                chain += (double)r[i] * r[i];
                lanes[i % 4] += (double)r[i] * r[i];
            }
            const double split = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
            CHECK(sqrtf((float)(chain / 64.0)) != sqrtf((float)(split / 64.0)),
                  "rms_norm_rows: the order-sensitive row does not tell the orders apart");
            for (int64_t t = 0; t < nrows; t++) {
                double ss = 0.0;
                for (int64_t i = 0; i < n; i++)
                    ss = ss + (double)x[t * n + i] * (double)x[t * n + i];
                const float den = sqrtf((float)(ss / (double)n));
                for (int64_t i = 0; i < n; i++)
                    want[t * n + i] = x[t * n + i] / den * w[i];
            }
            k->rms_norm_rows(x, w, y, nrows, n, 0.0f, NULL);
            CHECK(memcmp(y, want, sizeof(float) * (size_t)(nrows * n)) == 0,
                  "%s rms_norm_rows: the order of a row's additions (row %lld of %lld)",
                  k->name, (long long)at, (long long)nrows);
        }
    free(x), free(w), free(y), free(want);
}

/* matrix_out_f64 / matrix_out_i32 against their expressions written out, every nr from
 * 0 to 33 (BN_MATRIX_ROWS and past the blocks of eight) with token counts that do and
 * do not fill blocks of eight, the output rows wider than nr with canaries between
 * them; the sums span large and small magnitudes and both signs. */
static void test_matrix_out(const bn_kernel_table *k)
{
    static const int Ts[] = {0, 1, 7, 8, 9, 16, 23, 40};
    enum { MAXR = 33, MAXT = 40, LDO = 64, LD = 37 };
    static double sd[MAXR * LDO];
    static int32_t si[MAXR * LDO];
    static float out[MAXT * LD], want[MAXT * LD];
    float sc[MAXT];
    int32_t qsum[MAXT];
    for (int i = 0; i < MAXR * LDO; i++) {
        sd[i] = ldexp(((double)(rng() % 2000001) - 1000000.0) / 999983.0, (int)(rng() % 61) - 20);
        si[i] = (int32_t)(rng() % 2000001) - 1000000;
    }
    for (int t = 0; t < MAXT; t++) {
        sc[t] = (float)(1 + rng() % 1000) / 7.0f;
        qsum[t] = (int32_t)(rng() % 20001) - 10000;
    }
    const float k1 = 0.7310586f, k2 = 1.3f;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (int nr = 0; nr <= MAXR; nr++) {
            const int T = Ts[ti];
            for (int f = 0; f < 2; f++) {
                for (int i = 0; i < MAXT * LD; i++)
                    out[i] = want[i] = -12345.0f;
                for (int t = 0; t < T; t++)
                    for (int r = 0; r < nr; r++)
                        want[t * LD + r] =
                            f == 0 ? (float)sd[r * LDO + t] / sc[t] * k1
                                   : (float)(si[r * LDO + t] - qsum[t]) / sc[t] * k1 * k2;
                if (f == 0)
                    k->matrix_out_f64(sd, LDO, nr, T, sc, k1, out, LD);
                else
                    k->matrix_out_i32(si, LDO, nr, T, qsum, sc, k1, k2, out, LD);
                CHECK(memcmp(out, want, sizeof out) == 0, "%s matrix_out_%s (%d rows, %d tokens)",
                      k->name, f == 0 ? "f64" : "i32", nr, T);
            }
        }
}

/* bn_expf against the C library's expf. The algorithm is GNU libc's since 2.28 (on a
 * CPU with fused multiply-add, which every x86-64 family here has), so with such a
 * library the bits must agree; with another C library only the ulp distance is
 * checked. Every 61st float of |x| < 88 (every 4099th under valgrind) and the edges;
 * BITNET_TEST_EXHAUSTIVE=1 takes all 2.2 billion. */
static void test_expf(void)
{
    bool same_lib = false;
#if defined(__GLIBC__) && defined(__x86_64__)
    same_lib = __GLIBC__ == 2 && __GLIBC_MINOR__ >= 28 && __GLIBC_MINOR__ <= 40 &&
               __builtin_cpu_supports("fma");
#endif
    const char *ex = getenv("BITNET_TEST_EXHAUSTIVE"), *vg = getenv("BITNET_TEST_UNDER_VALGRIND");
    const uint32_t step = ex && strcmp(ex, "1") == 0 ? 1 : vg && strcmp(vg, "1") == 0 ? 4099 : 61;
    uint64_t bad = 0, far = 0, n = 0;
    for (int sgn = 0; sgn < 2; sgn++) {
        for (uint32_t b = 0; b < 0x42b00000u + 4096; b += b < 4096 || b > 0x42b00000u - 4096 ? 1 : step) {
            const uint32_t bits = b | (sgn ? 0x80000000u : 0);
            float x, got, want;
            memcpy(&x, &bits, sizeof x);
            got = bn_expf(x);
            want = expf(x);
            n++;
            if (memcmp(&got, &want, sizeof got) != 0) {
                bad++;
                int32_t a, w;
                memcpy(&a, &got, sizeof a);
                memcpy(&w, &want, sizeof w);
                if (a - w > 1 || w - a > 1)
                    far++;
            }
        }
    }
    if (same_lib)
        CHECK(bad == 0, "bn_expf differs from this C library's expf at %llu of %llu floats",
              (unsigned long long)bad, (unsigned long long)n);
    CHECK(far == 0, "bn_expf is more than 1 ulp from expf at %llu of %llu floats",
          (unsigned long long)far, (unsigned long long)n);
    if (step == 1)
        printf("bn_expf: %llu floats, %llu differ from expf\n", (unsigned long long)n,
               (unsigned long long)bad);
}

/* The TQ2_0 / TQ1_0 prefill tile of one row p (nb bytes) against 1..4 token rows (rows
 * j > 0 are q reversed and negated): each token's value is its block sums against the
 * weights the dequantizer reads back, minus the activation sums, times the block scales,
 * added in block order in double. Checked for the row's own scales and for the same
 * codes under others: one scale per block, and uniform large, negative zero, subnormal
 * and infinite ones (a row with one finite scale for all its blocks takes a faster path
 * that must give the same doubles). Bit for bit, the sign of a zero included; NaN only
 * against NaN. */
static void check_tq_tile(const bn_kernel_table *k, int type, const uint8_t *p, size_t nb,
                          const int8_t *q, int64_t n)
{
    static const uint16_t mixed[7] = {0x3c00, 0x4248, 0xb800, 0x0000, 0x7bff, 0x0001,
                                      0x3555};
    static const uint16_t uniform[5] = {0, 0x7bff, 0x8000, 0x0001, 0x7c00};
    const size_t stride = type == BN_QT_TQ2_0 ? 66 : 54, doff = stride - 2;
    float *wb = malloc((size_t)n * sizeof *wb);
    int8_t *qt4 = malloc((size_t)(4 * n));
    uint8_t *pv = malloc(nb);
    int32_t qbs4[4 * 32];
    for (int j = 0; j < 4; j++) {
        for (int64_t i = 0; i < n; i++)
            qt4[j * n + i] = j == 0 ? q[i] : (int8_t)(q[n - 1 - i] == -128 ? 127
                                                                      : -q[n - 1 - i] + j - 1);
        for (int64_t b = 0; b < n / 256; b++) {
            qbs4[j * (n / 256) + b] = 0;
            for (int i = 0; i < 256; i++)
                qbs4[j * (n / 256) + b] += qt4[j * n + b * 256 + i];
        }
    }
    for (int v = 0; v < 7; v++) {   /* the row's scales, mixed ones, then uniform[v - 2] */
        memcpy(pv, p, nb);
        for (int64_t b = 0; v > 0 && b < n / 256; b++) {
            uint16_t h = v == 1 ? mixed[b % 7] : uniform[v - 2];
            memcpy(pv + b * stride + doff, &h, 2);
        }
        /* the codes are the row's whatever the scales: read back under scale 1 */
        uint8_t *p1 = malloc(nb);
        memcpy(p1, p, nb);
        for (int64_t b = 0; b < n / 256; b++)
            memcpy(p1 + b * stride + doff, &(uint16_t){0x3c00}, 2);
        CHECK(bn_dequantize(type, p1, nb, n, 1, wb) == BN_OK, "tile: weights back");
        free(p1);
        /* each token's reference: the block-order double sum */
        double want4[4];
        for (int j = 0; j < 4; j++) {
            want4[j] = 0.0;
            for (int64_t b = 0; b < n / 256; b++) {
                int64_t s4 = 0;
                for (int64_t i = b * 256; i < (b + 1) * 256; i++)
                    s4 += (int64_t)(wb[i] + 1.0f) * qt4[j * n + i];
                uint16_t d16;
                memcpy(&d16, pv + b * stride + doff, 2);
                want4[j] += (double)(s4 - qbs4[j * (n / 256) + b]) *
                            (double)bn_f16_to_f32(d16);
            }
        }
        for (int nt = 1; nt <= 4; nt++) {
            double tile[4];
            if (type == BN_QT_TQ2_0)
                k->dot_tq2_q8_tile(pv, qt4, qbs4, n, nt, tile);
            else
                k->dot_tq1_q8_tile(pv, qt4, qbs4, n, nt, tile);
            for (int j = 0; j < nt; j++) {
                const double want = want4[j];
                bool same = isnan(want) ? isnan(tile[j])
                                        : memcmp(&tile[j], &want, sizeof want) == 0;
                CHECK(same, "%s %s tile of %d, row %d, n=%lld, scales %d: %.17g, want %.17g",
                      k->name, type == BN_QT_TQ2_0 ? "tq2_0" : "tq1_0", nt, j, (long long)n,
                      v, tile[j], want);
            }
        }
        /* the decode rows kernel under the same scales: this row twice, against each
         * token, the same doubles as the reference's block-order sum */
        if (type == BN_QT_TQ2_0) {
            uint8_t *twice = malloc(2 * nb);
            memcpy(twice, pv, nb);
            memcpy(twice + nb, pv, nb);
            for (int j = 0; j < 4; j++) {
                double got[2];
                const double want = want4[j];
                k->dot_tq2_q8_rows(twice, nb, 2, qt4 + j * n, qbs4 + j * (n / 256), n, got);
                for (int r = 0; r < 2; r++) {
                    bool same = isnan(want) ? isnan(got[r])
                                            : memcmp(&got[r], &want, sizeof want) == 0;
                    CHECK(same, "%s tq2_0 decode rows, row %d, token %d, n=%lld, scales %d: "
                          "%.17g, want %.17g", k->name, r, j, (long long)n, v, got[r], want);
                }
            }
            free(twice);
        }
        /* the two-row tile: this row, then its blocks in reverse order under the scales
         * of another variant; each row's doubles the one-row tile's */
        if (type == BN_QT_TQ2_0 && k->dot_tq2_q8_tile2) {
            const int64_t nblk = n / 256;
            uint8_t *pair = malloc(2 * nb);
            memcpy(pair, pv, nb);
            for (int64_t b = 0; b < nblk; b++)
                memcpy(pair + nb + b * stride, p + (nblk - 1 - b) * stride, stride);
            const int w = (v + 3) % 7;
            for (int64_t b = 0; w > 0 && b < nblk; b++) {
                uint16_t h = w == 1 ? mixed[(b + 2) % 7] : uniform[w - 2];
                memcpy(pair + nb + b * stride + doff, &h, 2);
            }
            /* told one_scale where both rows have it (the predicate's own test is
             * test_tq2_one_scale): the same doubles */
            const bool one = bn_tq2_rows_one_scale(pair, nb, nblk, 2);
            for (int nt = 1; nt <= 4; nt++)
                for (int told = 0; told <= (int)one; told++) {
                    double two[8], want1[2][4];
                    k->dot_tq2_q8_tile2(pair, nb, qt4, qbs4, n, nt, told, two);
                    k->dot_tq2_q8_tile(pair, qt4, qbs4, n, nt, want1[0]);
                    k->dot_tq2_q8_tile(pair + nb, qt4, qbs4, n, nt, want1[1]);
                    for (int r = 0; r < 2; r++)
                        for (int j = 0; j < nt; j++) {
                            double got = two[4 * r + j], want = want1[r][j];
                            bool same = isnan(want) ? isnan(got)
                                                    : memcmp(&got, &want, sizeof want) == 0;
                            CHECK(same, "%s tq2_0 two-row tile of %d (one_scale %d), row %d "
                                  "token %d, n=%lld, scales %d/%d: %.17g, want %.17g",
                                  k->name, nt, told, r, j, (long long)n, v, w, got, want);
                        }
                }
            free(pair);
        }
    }
    free(pv);
    free(qt4);
    free(wb);
}

/* gemm_f64_tile: every element the sum, p ascending, of products of widened floats,
 * written out here, bit for bit, on top of the tile's earlier contents; k = 0 leaves
 * them; products of large and small magnitudes make the order of the sum count. */
static void test_gemm_tile(const bn_kernel_table *k)
{
    static const int64_t ks[] = {0, 1, 7, 64, 301};
    enum { MR = BN_GEMM_MR, NR = BN_GEMM_NR, KMAX = 301 };
    static double a[KMAX * MR], b[KMAX * NR];
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        const int64_t kk = ks[ki];
        for (int64_t i = 0; i < kk * MR; i++)
            a[i] = (double)(float)(((double)rng() - 2147483648.0) * 0x1p-20 *
                                   (rng() % 4 == 0 ? 4096.0 : 1.0));
        for (int64_t i = 0; i < kk * NR; i++)
            b[i] = (double)(float)(((double)rng() - 2147483648.0) * 0x1p-24);
        double c[MR * NR], want[MR * NR];
        for (int i = 0; i < MR * NR; i++)
            c[i] = want[i] = (double)(float)(((double)rng() - 2147483648.0) * 0x1p-26);
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                for (int64_t p = 0; p < kk; p++)
                    want[i * NR + j] = want[i * NR + j] + a[p * MR + i] * b[p * NR + j];
        k->gemm_f64_tile(a, b, kk, c);
        CHECK(memcmp(c, want, sizeof c) == 0, "%s gemm_f64_tile k=%lld", k->name,
              (long long)kk);
    }
}

/* gemm_f32_tile: every element fmaf over p ascending, written out here, bit for bit. */
static void test_gemm_tile_f32(const bn_kernel_table *k)
{
    static const int64_t ks[] = {0, 1, 7, 64, 301};
    enum { MR = BN_GEMM_MR_F32, NR = BN_GEMM_NR_F32, KMAX = 301 };
    static float a[KMAX * MR], b[KMAX * NR];
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        const int64_t kk = ks[ki];
        for (int64_t i = 0; i < kk * MR; i++)
            a[i] = (float)(((double)rng() - 2147483648.0) * 0x1p-20 *
                           (rng() % 4 == 0 ? 4096.0 : 1.0));
        for (int64_t i = 0; i < kk * NR; i++)
            b[i] = (float)(((double)rng() - 2147483648.0) * 0x1p-24);
        float c[MR * NR], want[MR * NR];
        for (int i = 0; i < MR * NR; i++)
            c[i] = want[i] = (float)(((double)rng() - 2147483648.0) * 0x1p-26);
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                for (int64_t p = 0; p < kk; p++)
                    want[i * NR + j] = fmaf(a[p * MR + i], b[p * NR + j], want[i * NR + j]);
        k->gemm_f32_tile(a, b, kk, c);
        CHECK(memcmp(c, want, sizeof c) == 0, "%s gemm_f32_tile k=%lld", k->name,
              (long long)kk);
    }
}

/* transpose_f32: every block shape around the 8 x 8 register blocks, with strides wider
 * than the block; what lies outside the block in dst stays as it was. */
static void test_transpose_f32(const bn_kernel_table *k)
{
    enum { LDS = 37, LDD = 41, MAXN = 33 };
    static float src[MAXN * LDS], dst[MAXN * LDD], want[MAXN * LDD];
    for (int64_t i = 0; i < MAXN * LDS; i++)
        src[i] = (float)(((double)rng() - 2147483648.0) * 0x1p-20);
    for (int64_t rows = 0; rows <= MAXN; rows++) {
        for (int64_t cols = 0; cols <= MAXN; cols += cols < 17 ? 1 : 8) {
            for (int64_t i = 0; i < MAXN * LDD; i++)
                dst[i] = want[i] = (float)i;
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < cols; j++)
                    want[j * LDD + i] = src[i * LDS + j];
            k->transpose_f32(src, LDS, rows, cols, dst, LDD);
            CHECK(memcmp(dst, want, sizeof dst) == 0, "%s transpose_f32 %lld x %lld",
                  k->name, (long long)rows, (long long)cols);
        }
    }
}

/* I2_S code i of a row, as the format defines it: block i / 128 of 32 bytes, byte
 * i % 32 of it, bits 7-6, 5-4, 3-2 or 1-0 for weights 0-31, 32-63, 64-95, 96-127. */
static int i2s_code(const uint8_t *row, int64_t i)
{
    const int64_t k = i % 128;
    return (row[i / 128 * 32 + k % 32] >> (6 - 2 * (k / 32))) & 3;
}

/* The matrix kernels (the amx family): nr rows against T tokens packed by
 * bn_pack_q8_matrix. I2_S: rows of arbitrary bytes (code 3 included) against
 * activations across the int8 range, each sum against the format's definition. TQ2_0:
 * rows of arbitrary bytes under every scale variant of the tiles (rows of one scale and
 * of mixed ones side by side in a call), each double against the scalar family's
 * one-row tile, bit for bit; and rows that each have one finite scale, told so
 * (one_scale), the same. Row and token counts cross the 16-line tiles' edges. */
static void test_matrix(const bn_kernel_table *k)
{
    static const int64_t ns[] = {128, 384, 2560};
    static const int nrs[] = {1, 5, 16, 17, 31, 32};
    static const int Ts[] = {1, 4, 15, 16, 17, 31, 32, 33, 50};
    static const uint16_t scales[] = {0x3c00, 0x0000, 0x8000, 0x0001, 0x7bff, 0x7c00, 0x3555};
    enum { TMAX = 50, RMAX = BN_MATRIX_ROWS };
    const bn_kernel_table *ref = &bn_kernels_scalar;
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const int64_t n = ns[ni], nb = n / 256;
        const size_t i2s_bytes = (size_t)n / 4, tq2_bytes = (size_t)nb * 66;
        uint8_t *i2s = malloc(RMAX * i2s_bytes), *tq2 = malloc(RMAX * tq2_bytes + 1);
        uint8_t *tq2u = malloc(RMAX * tq2_bytes + 1);
        int8_t *q = malloc((size_t)TMAX * (size_t)n);
        int8_t *qp = calloc((TMAX + 15) / 16 * 16, (size_t)n);
        int8_t *qp2 = malloc((TMAX + 15) / 16 * 16 * (size_t)n);
        int32_t *qbsum = malloc((size_t)TMAX * (size_t)(nb + 1) * sizeof *qbsum);
        int32_t *isum = malloc((size_t)RMAX * 64 * sizeof *isum);
        double *dsum = malloc((size_t)RMAX * 64 * sizeof *dsum);
        uint8_t *work = aligned_alloc(64, BN_MATRIX_WORK(64));
        for (size_t i = 0; i < RMAX * i2s_bytes; i++)
            i2s[i] = (uint8_t)rng();
        for (size_t i = 0; i < RMAX * tq2_bytes; i++)
            tq2[i] = (uint8_t)rng();
        /* TQ2_0 row r: one scale scales[r % 7] over its blocks for r % 3 != 2, else a
         * different one for each block */
        for (int r = 0; r < RMAX; r++)
            for (int64_t b = 0; b < nb; b++) {
                uint16_t h = r % 3 != 2 ? scales[r % 7] : scales[(r + b) % 7];
                memcpy(tq2 + (size_t)r * tq2_bytes + (size_t)b * 66 + 64, &h, 2);
            }
        /* the same codes, every row one finite scale (scales[r % 7], the infinite one
         * replaced) */
        memcpy(tq2u, tq2, RMAX * tq2_bytes);
        for (int r = 0; r < RMAX; r++)
            for (int64_t b = 0; b < nb; b++) {
                uint16_t h = scales[r % 7] == 0x7c00 ? 0x3555 : scales[r % 7];
                memcpy(tq2u + (size_t)r * tq2_bytes + (size_t)b * 66 + 64, &h, 2);
            }
        for (int t = 0; t < TMAX; t++) {
            for (int64_t i = 0; i < n; i++) {
                int v = (int)(rng() % 8);
                q[(size_t)t * (size_t)n + (size_t)i] =
                    (int8_t)(v == 0 ? -128 : v == 1 ? 127 : (int)(rng() % 256) - 128);
            }
            for (int64_t b = 0; b < nb; b++) {
                int32_t s = 0;
                for (int i = 0; i < 256; i++)
                    s += q[(size_t)t * (size_t)n + (size_t)(b * 256 + i)];
                qbsum[t * nb + b] = s;
            }
        }
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
            const int T = Ts[ti], ldo = (T + 31) / 32 * 32;
            memset(qp, 0, (size_t)(TMAX + 15) / 16 * 16 * (size_t)n);
            for (int t = 0; t < T; t++)
                bn_pack_q8_matrix(q + (size_t)t * (size_t)n, n, t, qp);
            /* the chunk by chunk packing, in two ranges over stale bytes: the same
             * layout, the places past T zero */
            const size_t qp_bytes = (size_t)(T + 15) / 16 * 16 * (size_t)n;
            memset(qp2, 0x5a, qp_bytes);
            bn_pack_q8_matrix_chunks(q, n, T, 0, n / 64 / 3, qp2);
            bn_pack_q8_matrix_chunks(q, n, T, n / 64 / 3, n / 64, qp2);
            CHECK(memcmp(qp, qp2, qp_bytes) == 0, "matrix packing by chunks n=%lld T=%d",
                  (long long)n, T);
            for (size_t ri = 0; ri < sizeof nrs / sizeof nrs[0]; ri++) {
                const int nr = nrs[ri];
                k->dot_i2s_q8_matrix(i2s, i2s_bytes, nr, qp, n, T, isum, ldo, work);
                for (int r = 0; r < nr; r++)
                    for (int t = 0; t < T; t++) {
                        int64_t want = 0;
                        for (int64_t i = 0; i < n; i++)
                            want += (int64_t)i2s_code(i2s + (size_t)r * i2s_bytes, i) *
                                    q[(size_t)t * (size_t)n + (size_t)i];
                        CHECK(isum[r * ldo + t] == want,
                              "%s i2_s matrix n=%lld, %d rows, %d tokens: row %d token %d "
                              "%d, want %lld", k->name, (long long)n, nr, T, r, t,
                              isum[r * ldo + t], (long long)want);
                    }
                if (n % 256)   /* TQ2_0 rows are whole blocks of 256 */
                    continue;
                for (int one = 0; one < 2; one++) {
                    const uint8_t *rows = one ? tq2u : tq2;
                    k->dot_tq2_q8_matrix(rows, tq2_bytes, nr, qp, q, qbsum, n, T, one, dsum,
                                         ldo, work);
                    for (int r = 0; r < nr; r++)
                        for (int t0 = 0; t0 < T; t0 += 4) {
                            const int nt = T - t0 < 4 ? T - t0 : 4;
                            double want[4];
                            ref->dot_tq2_q8_tile(rows + (size_t)r * tq2_bytes,
                                                 q + (size_t)t0 * (size_t)n, qbsum + t0 * nb,
                                                 n, nt, want);
                            for (int j = 0; j < nt; j++) {
                                const double got = dsum[r * ldo + t0 + j];
                                bool same = isnan(want[j]) ? isnan(got)
                                                           : memcmp(&got, &want[j], 8) == 0;
                                CHECK(same, "%s tq2_0 matrix n=%lld, %d rows, %d tokens, "
                                      "one_scale %d: row %d token %d %.17g, want %.17g",
                                      k->name, (long long)n, nr, T, one, r, t0 + j, got,
                                      want[j]);
                            }
                        }
                }
            }
        }
        free(i2s);
        free(tq2);
        free(tq2u);
        free(q);
        free(qp);
        free(qp2);
        free(qbsum);
        free(isum);
        free(dsum);
        free(work);
    }
}

static void test_family(const bn_kernel_table *k)
{
    if (k->dot_i2s_q8_matrix)
        test_matrix(k);
    test_gemm_tile(k);
    test_gemm_tile_f32(k);
    test_transpose_f32(k);
    test_silu(k);
    test_rms_norm(k);
    test_matrix_out(k);
    test_mac_peak(k);
    test_relu2(k);
    test_axpy(k);
    test_attention_multi(k);
    test_q6_k(k);
    test_q6_k_rows(k);
    test_quantize_act(k);
    test_q8_0(k);
    test_q8_0_rows(k);
    test_f16_dot(k);
    test_f16_rows(k);
    test_tq1_all_bytes(k);
    test_two_bit_all_bytes(k);
    test_extremes(k);
    test_sum_u64(k);
    static const int64_t lengths[] = {128, 256, 384, 512, 640, 1024, 2560, 6912, 8192};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int64_t n = lengths[li];
        for (int pattern = 0; pattern < 3; pattern++) {
            int8_t *q = malloc((size_t)n);
            int64_t ref[64] = {0};
            /* I2_S: one sum over the row */
            size_t nb = 0;
            bn_qtype_tensor_size(BN_QT_I2_S, n, 1, &nb);
            uint8_t *p = malloc(nb);
            CHECK(make_case(BN_QT_I2_S, n, pattern, p, nb, q, n, ref), "i2_s case %lld",
                  (long long)n);
            int32_t got = k->dot_i2s_q8(p, q, n);
            CHECK(got == ref[0], "%s i2_s n=%lld pattern %d: %d, reference %lld", k->name,
                  (long long)n, pattern, got, (long long)ref[0]);
            /* tiles of 2..4 token rows: rows j > 0 are q reversed and negated, checked
             * against the single-row kernel */
            int8_t *q4 = malloc((size_t)(4 * n));
            for (int j = 0; j < 4; j++)
                for (int64_t i = 0; i < n; i++)
                    q4[j * n + i] = j == 0 ? q[i] : (int8_t)(q[n - 1 - i] == -128 ? 127
                                                    : -q[n - 1 - i] + j - 1);
            for (int nt = 1; nt <= 4; nt++) {
                int32_t tile[4];
                k->dot_i2s_q8_tile(p, q4, n, nt, tile);
                for (int j = 0; j < nt; j++) {
                    int32_t one = k->dot_i2s_q8(p, q4 + j * n, n);
                    CHECK(tile[j] == one && (j > 0 || one == ref[0]), "%s i2_s tile of %d, "
                          "row %d, n=%lld: %d vs %d", k->name, nt, j, (long long)n, tile[j],
                          one);
                }
            }
            free(q4);
            /* several rows in one call: each row's own sum (rows are p with its bytes
             * rotated, so that they differ) */
            int8_t *qq = q;
            uint8_t *rowsbuf = malloc(nb * 9);
            for (int r = 0; r < 9; r++)
                for (size_t i = 0; i < nb - 32; i++)
                    rowsbuf[(size_t)r * (nb - 32) + i] = p[(i + (size_t)r * 7) % (nb - 32)];
            for (int nr = 1; nr <= 9; nr++) {
                int32_t got9[9];
                k->dot_i2s_q8_rows(rowsbuf, nb - 32, nr, qq, n, got9);
                for (int r = 0; r < nr; r++) {
                    int32_t one = k->dot_i2s_q8(rowsbuf + (size_t)r * (nb - 32), qq, n);
                    int32_t ref1 = bn_kernels_scalar.dot_i2s_q8(rowsbuf + (size_t)r * (nb - 32),
                                                                 qq, n);
                    CHECK(got9[r] == one && one == ref1, "%s i2_s rows: %d rows, row %d, "
                          "n=%lld: %d vs %d (scalar %d)", k->name, nr, r, (long long)n,
                          got9[r], one, ref1);
                }
            }
            free(rowsbuf);
            free(p);
            /* TQ1_0: one sum per block of 256 */
            if (n % 256 == 0) {
                bn_qtype_tensor_size(BN_QT_TQ1_0, n, 1, &nb);
                p = malloc(nb);
                CHECK(make_case(BN_QT_TQ1_0, n, pattern, p, nb, q, 256, ref), "tq1_0 case");
                int32_t sums[64];
                k->dot_tq1_q8(p, 54, q, n, sums);
                for (int64_t b = 0; b < n / 256; b++)
                    CHECK(sums[b] == ref[b], "%s tq1_0 n=%lld block %lld: %d, reference "
                          "%lld", k->name, (long long)n, (long long)b, sums[b],
                          (long long)ref[b]);
                check_tq_tile(k, BN_QT_TQ1_0, p, nb, q, n);
                free(p);
            }
            /* TQ2_0: one sum per block of 256 */
            if (n % 256 == 0) {
                bn_qtype_tensor_size(BN_QT_TQ2_0, n, 1, &nb);
                p = malloc(nb);
                CHECK(make_case(BN_QT_TQ2_0, n, pattern, p, nb, q, 256, ref), "tq2_0 case");
                int32_t sums[64];
                k->dot_tq2_q8(p, 66, q, n, sums);
                /* the decode rows kernel: 3 copies of the row, each combined in
                 * double in block order from the reference sums and the f16 scales */
                int32_t qbs[64];
                for (int64_t b = 0; b < n / 256; b++) {
                    qbs[b] = 0;
                    for (int i = 0; i < 256; i++)
                        qbs[b] += q[b * 256 + i];
                }
                uint8_t *p3 = malloc(nb * 3);
                for (int r = 0; r < 3; r++)
                    memcpy(p3 + (size_t)r * nb, p, nb);
                double acc3[3], want = 0.0;
                for (int64_t b = 0; b < n / 256; b++) {
                    uint16_t d16;
                    memcpy(&d16, p + b * 66 + 64, 2);
                    want += (double)(ref[b] - qbs[b]) * (double)bn_f16_to_f32(d16);
                }
                k->dot_tq2_q8_rows(p3, nb, 3, q, qbs, n, acc3);
                for (int r = 0; r < 3; r++)
                    CHECK(acc3[r] == want, "%s tq2_0 rows n=%lld row %d: %.17g, want %.17g",
                          k->name, (long long)n, r, acc3[r], want);
                free(p3);
                for (int64_t b = 0; b < n / 256; b++)
                    CHECK(sums[b] == ref[b], "%s tq2_0 n=%lld block %lld: %d, reference "
                          "%lld", k->name, (long long)n, (long long)b, sums[b],
                          (long long)ref[b]);
                check_tq_tile(k, BN_QT_TQ2_0, p, nb, q, n);
                free(p);
            }
            free(q);
        }
    }
}

#if defined(BN_TEST_SIMDE)
/* The avx512 family built on SIMDe (kernels_avx512.c compiled with BN_KERNELS_SIMDE, no
 * -march flags: every intrinsic is SIMDe's portable code). Its own entries are
 * checked; those it takes from the AVX2 family are NULL there and come from the scalar
 * table here, so this runs on any machine. */
static void test_avx512_simde(void)
{
    bn_kernel_table k = bn_kernels_avx512_simde;
    const bn_kernel_table *s = &bn_kernels_scalar;
    /* its own entries */
    CHECK(k.dot_i2s_q8 && k.dot_i2s_q8_tile && k.dot_i2s_q8_tile2 && k.dot_tq2_q8 &&
          k.dot_tq2_q8_tile && k.dot_tq2_q8_tile2 && k.dot_tq2_q8_rows && k.mac_i8_peak && k.gemm_f64_tile,
          "avx512-simde: an entry of its own is missing");
    /* the AVX2 family's, left NULL there */
    CHECK(!k.dot_f32 && !k.f16_to_f32 && !k.dot_f16_f32 && !k.dot_f16_f32_rows &&
          !k.f32_to_f16 && !k.dot_f16_f32_multi && !k.axpy_f16_f32_multi && !k.relu2_mul &&
          !k.silu_mul && !k.rms_norm_rows && !k.matrix_out_f64 && !k.matrix_out_i32 &&
          !k.sum_u64 && !k.dot_tq1_q8 && !k.dot_tq1_q8_tile &&
          !k.dot_q8_0_q8_0 && !k.dot_q8_0_q8_0_rows && !k.dot_q6_k_q8_0 &&
          !k.dot_q6_k_q8_0_rows && !k.quantize_act_i8 && !k.gemm_f32_tile &&
          !k.transpose_f32,
          "avx512-simde: an AVX2 entry is set (update this test)");
    k.dot_f32 = s->dot_f32;
    k.f16_to_f32 = s->f16_to_f32;
    k.dot_f16_f32 = s->dot_f16_f32;
    k.dot_f16_f32_rows = s->dot_f16_f32_rows;
    k.f32_to_f16 = s->f32_to_f16;
    k.dot_f16_f32_multi = s->dot_f16_f32_multi;
    k.axpy_f16_f32_multi = s->axpy_f16_f32_multi;
    k.relu2_mul = s->relu2_mul;
    k.silu_mul = s->silu_mul;
    k.rms_norm_rows = s->rms_norm_rows;
    k.matrix_out_f64 = s->matrix_out_f64;
    k.matrix_out_i32 = s->matrix_out_i32;
    k.sum_u64 = s->sum_u64;
    k.dot_tq1_q8 = s->dot_tq1_q8;
    k.dot_tq1_q8_tile = s->dot_tq1_q8_tile;
    k.dot_q8_0_q8_0 = s->dot_q8_0_q8_0;
    k.dot_q8_0_q8_0_rows = s->dot_q8_0_q8_0_rows;
    k.dot_q6_k_q8_0 = s->dot_q6_k_q8_0;
    k.dot_q6_k_q8_0_rows = s->dot_q6_k_q8_0_rows;
    k.quantize_act_i8 = s->quantize_act_i8;
    k.gemm_f32_tile = s->gemm_f32_tile;   /* not built under SIMDe (no fused fmadd) */
    k.transpose_f32 = s->transpose_f32;
    test_family(&k);
    printf("avx512 kernels checked (SIMDe)\n");
}
#endif

/* bn_tq2_rows_one_scale on rows built with known scales: true only where every block of
 * every row carries its row's first scale and that scale is finite (the bits compared,
 * so +0 and -0 differ). */
static void test_tq2_one_scale(void)
{
    enum { NB = 3, R = 4 };
    uint8_t rows[R * NB * 66];
    struct { uint16_t first, other; int row, block; bool want; const char *what; } cases[] = {
        {0x3c00, 0x3c00, 0, 0, true, "one scale everywhere"},
        {0x8000, 0x8000, 0, 0, true, "-0 everywhere"},
        {0x3c00, 0x3c01, R - 1, NB - 1, false, "the last block of the last row differs"},
        {0x3c00, 0x3800, 1, 1, false, "a middle block differs"},
        {0x0000, 0x8000, 2, 2, false, "+0 and -0"},
        {0x7c00, 0x7c00, 0, 0, false, "infinite everywhere"},
        {0x7e01, 0x7e01, 0, 0, false, "NaN everywhere"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t i = 0; i < sizeof rows; i++)
            rows[i] = (uint8_t)rng();
        for (int r = 0; r < R; r++)
            for (int b = 0; b < NB; b++) {
                uint16_t h = r == cases[c].row && b == cases[c].block ? cases[c].other
                                                                        : cases[c].first;
                memcpy(rows + (size_t)(r * NB + b) * 66 + 64, &h, 2);
            }
        CHECK(bn_tq2_rows_one_scale(rows, NB * 66, NB, R) == cases[c].want,
              "bn_tq2_rows_one_scale: %s", cases[c].what);
    }
    CHECK(!bn_tq2_rows_one_scale(rows, 0, 0, 1), "bn_tq2_rows_one_scale: rows of no blocks");
}

int main(void)
{
    test_expf();
    test_tq2_one_scale();
    test_family(&bn_kernels_scalar);
    printf("scalar kernels checked\n");
#if !defined(BITNET_FORCE_SCALAR) && (defined(__x86_64__) || defined(__i386__))
    const bn_cpu_info *cpu = bn_cpu_get_info();
    if (cpu->avx2 && cpu->fma && cpu->f16c) {
        test_family(&bn_kernels_avx2);
        printf("avx2 kernels checked\n");
    } else {
        printf("avx2 kernels: not on this CPU\n");
    }
    if (cpu->avx2 && cpu->fma && cpu->f16c && cpu->avx512f && cpu->avx512bw &&
        cpu->avx512vl && cpu->avx512vnni) {
        test_family(&bn_kernels_avx512);
        printf("avx512 kernels checked (native)\n");
    } else {
        printf("avx512 kernels: not on this CPU\n");
    }
    /* the amx family: the avx512 one with its matrix kernels and decode rows */
    bool amx_built = false;
    for (int i = 0; i < bn_kernel_family_count; i++)
        if (strcmp(bn_kernel_families[i]->name, "amx") == 0) {
            amx_built = true;
            if (bn_kernel_family_runs(bn_kernel_families[i])) {
                test_family(bn_kernel_families[i]);
                printf("amx kernels checked (native)\n");
            } else {
                printf("amx kernels: not on this CPU (or not granted by the OS): "
                       "not checked\n");
            }
        }
    if (!amx_built)
        printf("amx kernels: not built by this compiler\n");
#endif
#if defined(__aarch64__)
    test_family(&bn_kernels_neon);
    printf("neon kernels checked\n");
    if (bn_cpu_get_info()->dotprod) {
        test_family(&bn_kernels_neon_dotprod);
        printf("neon-dotprod kernels checked\n");
    } else {
        printf("neon-dotprod kernels not checked: this CPU has no dotprod\n");
    }
#endif
#if defined(BN_TEST_SIMDE)
    test_avx512_simde();
#endif
    printf("kernels in use: %s\n", bn_kernels_name());
    return check_summary("test_kernels");
}
