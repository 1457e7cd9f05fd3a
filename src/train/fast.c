/*
 * fast.c - the training model's layers on the model's threads, with the matrix
 * products on the kernels' tiles (gemm_f64_tile, gemm_f32_tile) and the ternary
 * projections on the engine's I2_S x int8 kernel.
 *
 * Every function gives the same bits for any thread count and any kernel family:
 * - a matrix product accumulates each output element in one accumulator, over its sum
 *   index in ascending order, as the reference's loops do. In double (where a quantizer
 *   reads the result, or with m->exact_sums) the products are of widened floats and so
 *   exact, and the tile's fused multiply-adds give the reference's bits; in float (the
 *   backward and the output layer) each product is one fused multiply-add, on every
 *   family. Threads split the output's columns in panels (16 columns in double,
 *   32 in float); each element is computed by one thread. Packing converts (or
 *   transposes) the operands once per product.
 * - the ternary forward sums codes times int8 activations in exact integers.
 * - attention, the norms and the softmax keep the reference's operations per element,
 *   in its order (the softmax's exponentials are a float polynomial unless
 *   m->exact_sums); the loops are only reordered so that the independent elements sit in
 *   the innermost loop, where the compiler vectorizes them, and split across threads
 *   by what they own (a query head, a kv head, a row, a column).
 * m->reference runs the layers.c functions themselves instead (the judge in the tests).
 * docs/TRAINING.md, "Threads and speed", says which sums are in which precision and why.
 */
#include <assert.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "train/train.h"

#define MR BN_GEMM_MR
#define NR BN_GEMM_NR
/* the float products' register tile, and the depth of the chunks of B they take: a
 * chunk of one column panel (32 KB) stays in the first-level cache while the rows of A
 * pass over it */
#define SMR BN_GEMM_MR_F32
#define SNR BN_GEMM_NR_F32
#define SKC 256
#define BN_ATT_NQ 4         /* attention's queries a block */
#define SJB 16              /* column panels of B packed together when k <= SKC */
_Static_assert(SNR <= 2 * NR, "a thread's B buffer (gemm_bpack_k >= SJB * SKC rows of NR "
                               "doubles) holds SJB float chunks");

static int64_t bn_rup(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* ---------------------------------------------------------------- threads */

/* Runs fn(ctx, ith, nth) on every thread of the model (inline for one thread). */
static void bn_train_run(const bn_train_model *m, bn_task_fn fn, void *ctx)
{
    if (m->pool)
        bn_threadpool_run(m->pool, fn, ctx);
    else
        fn(ctx, 0, 1);
}

static void bn_train_barrier(const bn_train_model *m)
{
    if (m->pool)
        bn_threadpool_barrier(m->pool);
}

/* Thread ith's share [*lo, *hi) of n items. */
static void bn_share(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

/* A per-row (or per-item) step: fn over items [lo, hi). */
typedef void (*bn_items_fn)(void *ctx, int64_t lo, int64_t hi);

typedef struct bn_items_run {
    bn_items_fn fn;
    void *ctx;
    int64_t n;
} bn_items_run;

static void bn_items_task(void *ctx, int ith, int nth)
{
    const bn_items_run *r = ctx;
    int64_t lo, hi;
    bn_share(r->n, ith, nth, &lo, &hi);
    if (hi > lo)
        r->fn(r->ctx, lo, hi);
}

/* fn over n items split in contiguous shares, one per thread. */
static void bn_train_items(const bn_train_model *m, int64_t n, bn_items_fn fn, void *ctx)
{
    bn_items_run r = {.fn = fn, .ctx = ctx, .n = n};
    bn_train_run(m, bn_items_task, &r);
}

void bn_train_parallel(const bn_train_model *m, int64_t n, void (*fn)(void *, int64_t, int64_t),
                       void *ctx)
{
    if (m->reference)
        fn(ctx, 0, n);
    else
        bn_train_items(m, n, fn, ctx);
}

/* ---------------------------------------------------------------- scratch */

/* Thread ith's scratch (sizes from bn_train_thread_plan). */
typedef struct bn_thread_scratch {
    double  *bpack;   /* [bpack_k, NR] a packed panel of B (float: [SKC][SNR] floats) */
    double  *tile;    /* [MR, NR] doubles, or [SMR, SNR] floats */
    float   *carry;   /* [rup(carry_rows, SMR)][SNR] a column panel's partial sums */
    double  *kt, *vt; /* [hd, T] a kv head's keys and values, transposed, in double */
    double  *rows;    /* [T, hd] a kv head's values (forward) or keys (backward) in double */
    double  *ds;      /* [T, T] a query head's score gradients, a row per query */
    double  *coef;    /* [BN_ATT_NQ, hd] queries, or their outputs' gradients, in double */
    double  *acc;     /* [BN_ATT_NQ, hd] their weighted sums */
    double  *p;       /* [BN_ATT_NQ, T] a block of queries' weights */
    double  *vec;     /* [max(hd, E, F)] a row of sums */
    double  *exps;    /* [V] a row's exponentials */
    int32_t *isum;    /* [4 + 64] a tile's sums, then 64 rows' sums of codes */
    uint8_t *mw;      /* the matrix kernel's work [BN_MATRIX_WORK(rup(B T, 32))] and */
    int32_t *msums;   /* its sums [BN_MATRIX_ROWS, rup(B T, 32)]; where it exists */
} bn_thread_scratch;

/* Tokens a step, and the matrix kernels' stride of sums for them. */
static int64_t bn_tern_ldo(const bn_train_model *m)
{
    return bn_rup(m->B * m->cfg.n_ctx, 32);
}

/* Carves thread scratch from base (NULL: counts only); returns the bytes. */
static size_t bn_thread_carve(const bn_train_model *m, uint8_t *base, bn_thread_scratch *s)
{
    const int64_t E = m->cfg.n_embd, F = m->cfg.n_ff, T = m->cfg.n_ctx;
    const int64_t hd = E / m->cfg.n_head, V = m->cfg.n_vocab;
    const int64_t maxd = E > F ? E : F;
    size_t off = 0;
#define BN_CARVE(ptr, n, type)                                                      \
    do {                                                                            \
        (ptr) = base ? (type *)(base + off) : NULL;                                 \
        off += ((size_t)(n) * sizeof(type) + 63) & ~(size_t)63;                     \
    } while (0)
    BN_CARVE(s->bpack, (size_t)m->gemm_bpack_k * NR, double);
    BN_CARVE(s->tile, MR * NR > SMR * SNR / 2 ? MR * NR : SMR * SNR / 2, double);
    BN_CARVE(s->carry, (size_t)bn_rup(m->gemm_carry_rows, SMR) * SNR, float);
    BN_CARVE(s->kt, hd * T, double);
    BN_CARVE(s->vt, hd * T, double);
    BN_CARVE(s->rows, hd * T, double);
    BN_CARVE(s->ds, T * T, double);
    BN_CARVE(s->coef, BN_ATT_NQ * hd, double);
    BN_CARVE(s->acc, BN_ATT_NQ * hd, double);
    BN_CARVE(s->p, BN_ATT_NQ * T, double);
    BN_CARVE(s->vec, (maxd > hd ? maxd : hd) > T ? (maxd > hd ? maxd : hd) : T, double);
    BN_CARVE(s->exps, V, double);
    BN_CARVE(s->isum, 4 + 64, int32_t);
    const bool matrix = bn_kernels()->dot_i2s_q8_matrix != NULL;
    BN_CARVE(s->mw, matrix ? BN_MATRIX_WORK(bn_tern_ldo(m)) : 0, uint8_t);
    BN_CARVE(s->msums, matrix ? BN_MATRIX_ROWS * bn_tern_ldo(m) : 0, int32_t);
#undef BN_CARVE
    return off;
}

static bn_thread_scratch bn_scratch(const bn_train_model *m, int ith)
{
    bn_thread_scratch s;
    bn_thread_carve(m, (uint8_t *)m->thread_mem + (size_t)ith * m->thread_bytes, &s);
    return s;
}

bn_status bn_train_set_threads(bn_train_model *m, int n_threads)
{
    if (n_threads < 1 || n_threads > 512)
        return bn_error_set(BN_ERR_INVALID_ARG, "train: %d threads is not in 1..512",
                            n_threads);
    bn_thread_scratch probe;
    const size_t per = bn_thread_carve(m, NULL, &probe);
    /* after the threads' scratch, the matrix kernels' activations, shared */
    const int64_t N = m->B * m->cfg.n_ctx;
    const int64_t maxn = m->cfg.n_embd > m->cfg.n_ff ? m->cfg.n_embd : m->cfg.n_ff;
    const bool matrix = bn_kernels()->dot_i2s_q8_matrix != NULL;
    const size_t qp_bytes = matrix ? ((size_t)bn_rup(N, 16) * (size_t)maxn + 63) & ~(size_t)63 : 0;
    const size_t qsum_bytes = matrix ? (size_t)N * sizeof(int32_t) : 0;
    void *mem = bn_malloc((size_t)n_threads * per + qp_bytes + qsum_bytes, "train threads");
    if (!mem)
        return bn_last_status();
    bn_threadpool *pool = NULL;
    if (n_threads > 1) {
        bn_status st = bn_threadpool_create(n_threads, &pool);
        if (st != BN_OK) {
            bn_free(mem);
            return st;
        }
    }
    if (m->pool)
        bn_threadpool_free(m->pool);
    bn_free(m->thread_mem);
    m->pool = pool;
    m->thread_mem = mem;
    m->thread_bytes = per;
    m->tern_qp = matrix ? (int8_t *)mem + (size_t)n_threads * per : NULL;
    m->tern_qsum = matrix ? (int32_t *)(void *)((uint8_t *)mem + (size_t)n_threads * per +
                                                qp_bytes)
                          : NULL;
    m->n_threads = n_threads;
    return BN_OK;
}

/* ---------------------------------------------------------------- matrix product */

/* C = A B (or C += (float)(A B)) with A(i, k) = a[i a_rs + k a_cs], B(k, j) =
 * b[k b_rs + j b_cs], C(i, j) = c[i c_rs + j c_cs]; each element the double sum over k
 * ascending, rounded to float once. */
typedef struct bn_gemm {
    const bn_train_model *m;
    int64_t M, N, K;
    const float *a;
    int64_t a_rs, a_cs;
    const float *b;
    int64_t b_rs, b_cs;
    float *c;
    int64_t c_rs, c_cs;
    bool add;
    bool f32;   /* the sums in float (the float products below) rather than double */
} bn_gemm;

/* The double products. Panel ip of A, columns k0 .. k0 + kc, into dst [kc][MR] (rows
 * past M zero); and panel jp of B, rows k0 .. k0 + kc, into dst [kc][NR] (columns past N
 * zero). */
#define BN_PACK_FUNCS(type, sfx)                                                         \
    static void bn_pack_a##sfx(const bn_gemm *g, int64_t ip, int64_t k0, int64_t kc,      \
                               type *dst)                                                \
    {                                                                                    \
        for (int64_t ii = 0; ii < MR; ii++) {                                            \
            const int64_t i = ip * MR + ii;                                              \
            if (i >= g->M) {                                                             \
                for (int64_t p = 0; p < kc; p++)                                         \
                    dst[p * MR + ii] = 0;                                                \
                continue;                                                                \
            }                                                                            \
            if (g->a_cs != 1)                                                            \
                continue;                                                                \
            const float *src = g->a + i * g->a_rs + k0;                                  \
            for (int64_t p = 0; p < kc; p++)                                             \
                dst[p * MR + ii] = src[p];                                               \
        }                                                                                \
        if (g->a_cs == 1)                                                                \
            return;                                                                      \
        /* A's columns are its rows in memory (a_rs 1): read them in order */            \
        const int64_t mi = g->M - ip * MR < MR ? g->M - ip * MR : MR;                    \
        for (int64_t p = 0; p < kc; p++) {                                               \
            const float *src = g->a + ip * MR * g->a_rs + (k0 + p) * g->a_cs;            \
            for (int64_t ii = 0; ii < mi; ii++)                                          \
                dst[p * MR + ii] = src[ii * g->a_rs];                                    \
        }                                                                                \
    }                                                                                    \
    static void bn_pack_b##sfx(const bn_gemm *g, int64_t jp, int64_t k0, int64_t kc,      \
                               type *dst)                                                \
    {                                                                                    \
        const int64_t j0 = jp * NR, nj = g->N - j0 < NR ? g->N - j0 : NR;                \
        if (g->b_cs == 1) {                                                              \
            for (int64_t p = 0; p < kc; p++) {                                           \
                const float *src = g->b + (k0 + p) * g->b_rs + j0;                       \
                type *d = dst + p * NR;                                                  \
                for (int64_t jj = 0; jj < nj; jj++)                                      \
                    d[jj] = src[jj];                                                     \
                for (int64_t jj = nj; jj < NR; jj++)                                     \
                    d[jj] = 0;                                                           \
            }                                                                            \
            return;                                                                      \
        }                                                                                \
        for (int64_t jj = 0; jj < NR; jj++) {                                            \
            if (jj >= nj) {                                                              \
                for (int64_t p = 0; p < kc; p++)                                         \
                    dst[p * NR + jj] = 0;                                                \
                continue;                                                                \
            }                                                                            \
            const float *src = g->b + k0 * g->b_rs + (j0 + jj) * g->b_cs;                \
            for (int64_t p = 0; p < kc; p++)                                             \
                dst[p * NR + jj] = src[p * g->b_rs];                                     \
        }                                                                                \
    }

BN_PACK_FUNCS(double, _f64)
#undef BN_PACK_FUNCS

/* One tile's sums (zero, or carried from the last chunk) plus this chunk's, in double;
 * written to C on the last chunk, else kept in m->gemm_c. */
static void bn_gemm_tile(const bn_gemm *g, const bn_kernel_table *kern, double *tile,
                         const double *apanel, const double *bpanel, int64_t ip, int64_t jp,
                         int64_t k0, int64_t kc, int64_t ldc)
{
    const bn_train_model *m = g->m;
    double *cd = m->gemm_c + ip * MR * ldc + jp * NR;
    if (k0 == 0) {
        memset(tile, 0, MR * NR * sizeof(double));
    } else {
        for (int ii = 0; ii < MR; ii++)
            memcpy(tile + ii * NR, cd + ii * ldc, NR * sizeof(double));
    }
    kern->gemm_f64_tile(apanel, bpanel, kc, tile);
    if (k0 + kc < g->K) {
        for (int ii = 0; ii < MR; ii++)
            memcpy(cd + ii * ldc, tile + ii * NR, NR * sizeof(double));
        return;
    }
    const int64_t mi = g->M - ip * MR < MR ? g->M - ip * MR : MR;
    const int64_t nj = g->N - jp * NR < NR ? g->N - jp * NR : NR;
    for (int64_t ii = 0; ii < mi; ii++) {
        float *cr = g->c + (ip * MR + ii) * g->c_rs + jp * NR * g->c_cs;
        const double *t = tile + ii * NR;
        if (g->add) {
            for (int64_t jj = 0; jj < nj; jj++)
                cr[jj * g->c_cs] += (float)t[jj];
        } else {
            for (int64_t jj = 0; jj < nj; jj++)
                cr[jj * g->c_cs] = (float)t[jj];
        }
    }
}

/* Shared: A packed by all threads (a panel each), then each thread its columns'
 * panels. A K too long for the packing buffer is taken in chunks, the sums carried in
 * double between them (m->gemm_c), so the order stays k ascending. */
static void bn_gemm_task(void *ctx, int ith, int nth)
{
    const bn_gemm *g = ctx;
    const bn_train_model *m = g->m;
    const bn_kernel_table *kern = bn_kernels();
    bn_thread_scratch s = bn_scratch(m, ith);
    const int64_t PM = (g->M + MR - 1) / MR, PN = (g->N + NR - 1) / NR;
    int64_t Kc = (int64_t)(m->gemm_a_cap / (size_t)(PM * MR));
    if (Kc > m->gemm_bpack_k)
        Kc = m->gemm_bpack_k;
    if (Kc > g->K)
        Kc = g->K;
    assert(Kc >= 1);
    const int64_t ldc = PN * NR;
    assert(Kc == g->K || (size_t)(PM * MR * ldc) <= m->gemm_c_cap);
    int64_t p0, p1, j0, j1;
    bn_share(PM, ith, nth, &p0, &p1);
    bn_share(PN, ith, nth, &j0, &j1);
    for (int64_t k0 = 0; k0 < g->K; k0 += Kc) {
        const int64_t kc = g->K - k0 < Kc ? g->K - k0 : Kc;
        if (k0 > 0)
            bn_train_barrier(m);   /* every thread is done with the last chunk's A */
        for (int64_t ip = p0; ip < p1; ip++)
            bn_pack_a_f64(g, ip, k0, kc, m->gemm_a + ip * MR * kc);
        bn_train_barrier(m);
        for (int64_t jp = j0; jp < j1; jp++) {
            bn_pack_b_f64(g, jp, k0, kc, s.bpack);
            for (int64_t ip = 0; ip < PM; ip++)
                bn_gemm_tile(g, kern, s.tile, m->gemm_a + ip * MR * kc, s.bpack, ip, jp, k0,
                             kc, ldc);
        }
    }
}

/* ---------------------------------------------------------------- float products */

/* The float products (g->f32): each element one float accumulator, zero to start, one
 * fused multiply-add per product over k ascending, then stored (or added to C once).
 * The register tile takes SMR rows of A by SNR columns of B, B in chunks of SKC rows
 * that stay in the first-level cache. How the sum is cut into chunks does not change
 * it: a chunk's tile starts from the floats the last one left.
 *
 * Two orders, by whether all of A (packed, every k) fits the shared buffer:
 * - whole A: all threads pack A's row panels, then each thread takes its column panels
 *   of C one at a time: for each chunk of k it packs the chunk of its panel of B and
 *   runs the row panels over it, keeping the panel's partial sums in its own carry
 *   buffer; at the end it writes the panel to C. The row panels go in blocks of
 *   m->gemm_a_block floats (bn_train_fast_plan); a sum of one chunk (k <= SKC) packs
 *   SJB column panels at once and runs each row panel over all of them, so that C is
 *   written in rows of SJB * SNR floats.
 * - chunks of A (a sum too long for the buffer, the output's d x over the vocabulary):
 *   for each chunk of k, all threads pack the chunk of A, then each runs its column
 *   panels over it, the partial sums of all of C carried in m->gemm_c. */

/* Rows i0 .. i0 + SMR of A, columns k0 .. k0 + kc, into dst [kc][SMR], rows past M zero. */
static void bn_spack_a(const bn_gemm *g, int64_t i0, int64_t k0, int64_t kc, float *dst)
{
    const int64_t mi = g->M - i0 < SMR ? g->M - i0 : SMR;
    if (g->a_cs == 1) {
        bn_kernels()->transpose_f32(g->a + i0 * g->a_rs + k0, g->a_rs, mi, kc, dst, SMR);
        for (int64_t p = 0; p < kc && mi < SMR; p++)
            for (int64_t ii = mi; ii < SMR; ii++)
                dst[p * SMR + ii] = 0.0f;
        return;
    }
    for (int64_t p = 0; p < kc; p++) {
        const float *src = g->a + i0 * g->a_rs + (k0 + p) * g->a_cs;
        float *d = dst + p * SMR;
        if (g->a_rs == 1)
            memcpy(d, src, (size_t)mi * sizeof(float));
        else
            for (int64_t ii = 0; ii < mi; ii++)
                d[ii] = src[ii * g->a_rs];
        for (int64_t ii = mi; ii < SMR; ii++)
            d[ii] = 0.0f;
    }
}

/* Columns j0 .. j0 + SNR of B, rows k0 .. k0 + kc, into dst [kc][SNR], columns past N
 * zero. */
static void bn_spack_b(const bn_gemm *g, int64_t j0, int64_t k0, int64_t kc, float *dst)
{
    const int64_t nj = g->N - j0 < SNR ? g->N - j0 : SNR;
    if (g->b_rs == 1 && g->b_cs != 1) {
        bn_kernels()->transpose_f32(g->b + j0 * g->b_cs + k0, g->b_cs, nj, kc, dst, SNR);
        for (int64_t p = 0; p < kc && nj < SNR; p++)
            for (int64_t jj = nj; jj < SNR; jj++)
                dst[p * SNR + jj] = 0.0f;
        return;
    }
    for (int64_t p = 0; p < kc; p++) {
        const float *src = g->b + (k0 + p) * g->b_rs + j0 * g->b_cs;
        float *d = dst + p * SNR;
        if (g->b_cs == 1)
            memcpy(d, src, (size_t)nj * sizeof(float));
        else
            for (int64_t jj = 0; jj < nj; jj++)
                d[jj] = src[jj * g->b_cs];
        for (int64_t jj = nj; jj < SNR; jj++)
            d[jj] = 0.0f;
    }
}

/* A finished tile t [SMR][SNR] (rows from i0, columns from j0) into C. */
static void bn_sgemm_out(const bn_gemm *g, const float *t, int64_t i0, int64_t j0)
{
    const int64_t mi = g->M - i0 < SMR ? g->M - i0 : SMR;
    const int64_t nj = g->N - j0 < SNR ? g->N - j0 : SNR;
    if (g->c_cs == 1) {
        for (int64_t ii = 0; ii < mi; ii++) {
            float *cr = g->c + (i0 + ii) * g->c_rs + j0;
            const float *tr = t + ii * SNR;
            if (g->add)
                for (int64_t jj = 0; jj < nj; jj++)
                    cr[jj] += tr[jj];
            else
                for (int64_t jj = 0; jj < nj; jj++)
                    cr[jj] = tr[jj];
        }
        return;
    }
    if (g->c_rs == 1) {
        /* C's columns are its rows in memory: the tile transposed, then row by row */
        float tt[SNR * SMR];
        bn_kernels()->transpose_f32(t, SNR, mi, nj, tt, SMR);
        for (int64_t jj = 0; jj < nj; jj++) {
            float *cc = g->c + i0 + (j0 + jj) * g->c_cs;
            const float *tr = tt + jj * SMR;
            if (g->add)
                for (int64_t ii = 0; ii < mi; ii++)
                    cc[ii] += tr[ii];
            else
                for (int64_t ii = 0; ii < mi; ii++)
                    cc[ii] = tr[ii];
        }
        return;
    }
    for (int64_t jj = 0; jj < nj; jj++) {
        float *cc = g->c + i0 * g->c_rs + (j0 + jj) * g->c_cs;
        if (g->add)
            for (int64_t ii = 0; ii < mi; ii++)
                cc[ii * g->c_rs] += t[ii * SNR + jj];
        else
            for (int64_t ii = 0; ii < mi; ii++)
                cc[ii * g->c_rs] = t[ii * SNR + jj];
    }
}

typedef struct bn_sgemm_plan {
    const bn_gemm *g;
    int64_t PM, PN;
    bool whole;   /* all of A packed at once (else in chunks of SKC) */
} bn_sgemm_plan;

static void bn_sgemm_task(void *ctx, int ith, int nth)
{
    const bn_sgemm_plan *pl = ctx;
    const bn_gemm *g = pl->g;
    const bn_train_model *m = g->m;
    const bn_kernel_table *kern = bn_kernels();
    bn_thread_scratch s = bn_scratch(m, ith);
    float *apack = (float *)m->gemm_a, *bpack = (float *)s.bpack;
    const int64_t PM = pl->PM, PN = pl->PN, K = g->K;
    int64_t p0, p1, j0, j1;
    bn_share(PM, ith, nth, &p0, &p1);
    bn_share(PN, ith, nth, &j0, &j1);
    if (pl->whole) {
        for (int64_t ip = p0; ip < p1; ip++)
            bn_spack_a(g, ip * SMR, 0, K, apack + ip * SMR * K);
        bn_train_barrier(m);
        /* the row panels in blocks of at most m->gemm_a_block floats of A, which the
         * thread's column panels pass over (each packing its chunks of B again) */
        int64_t blk = K > 0 ? m->gemm_a_block / (SMR * K) : PM;
        blk = blk < 1 ? 1 : blk;
        for (int64_t ib = 0; ib < PM; ib += blk) {
            const int64_t ie = ib + blk < PM ? ib + blk : PM;
            if (K <= SKC) {
                /* up to SJB column panels packed at once, each row panel of A run over
                 * all of them in turn: C is written a row of SJB * SNR floats at a
                 * time, not SNR (the logits: 35 ms of 140 went on scattered writes) */
                const int64_t jb_n = K > 0 ? SJB * SKC / K : SJB;
                for (int64_t jb = j0; jb < j1; jb += jb_n) {
                    const int64_t je = jb + jb_n < j1 ? jb + jb_n : j1;
                    for (int64_t jp = jb; jp < je; jp++)
                        bn_spack_b(g, jp * SNR, 0, K, bpack + (jp - jb) * K * SNR);
                    for (int64_t ip = ib; ip < ie; ip++) {
                        for (int64_t jp = jb; jp < je; jp++) {
                            float *t = (float *)s.tile;
                            memset(t, 0, SMR * SNR * sizeof(float));
                            kern->gemm_f32_tile(apack + ip * SMR * K,
                                                bpack + (jp - jb) * K * SNR, K, t);
                            bn_sgemm_out(g, t, ip * SMR, jp * SNR);
                        }
                    }
                }
                continue;
            }
            for (int64_t jp = j0; jp < j1; jp++) {
                memset(s.carry, 0, (size_t)((ie - ib) * SMR * SNR) * sizeof(float));
                for (int64_t k0 = 0; k0 < K; k0 += SKC) {
                    const int64_t kc = K - k0 < SKC ? K - k0 : SKC;
                    bn_spack_b(g, jp * SNR, k0, kc, bpack);
                    for (int64_t ip = ib; ip < ie; ip++)
                        kern->gemm_f32_tile(apack + ip * SMR * K + k0 * SMR, bpack, kc,
                                            s.carry + (ip - ib) * SMR * SNR);
                }
                for (int64_t ip = ib; ip < ie; ip++)
                    bn_sgemm_out(g, s.carry + (ip - ib) * SMR * SNR, ip * SMR, jp * SNR);
            }
        }
        return;
    }
    float *carry = (float *)m->gemm_c;
    for (int64_t jp = j0; jp < j1; jp++)
        memset(carry + jp * PM * SMR * SNR, 0, (size_t)(PM * SMR * SNR) * sizeof(float));
    for (int64_t k0 = 0; k0 < K; k0 += SKC) {
        const int64_t kc = K - k0 < SKC ? K - k0 : SKC;
        if (k0 > 0)
            bn_train_barrier(m);   /* every thread is done with the last chunk's A */
        for (int64_t ip = p0; ip < p1; ip++)
            bn_spack_a(g, ip * SMR, k0, kc, apack + ip * SMR * kc);
        bn_train_barrier(m);
        for (int64_t jp = j0; jp < j1; jp++) {
            bn_spack_b(g, jp * SNR, k0, kc, bpack);
            for (int64_t ip = 0; ip < PM; ip++)
                kern->gemm_f32_tile(apack + ip * SMR * kc, bpack, kc,
                                    carry + (jp * PM + ip) * SMR * SNR);
        }
    }
    for (int64_t jp = j0; jp < j1; jp++)
        for (int64_t ip = 0; ip < PM; ip++)
            bn_sgemm_out(g, carry + (jp * PM + ip) * SMR * SNR, ip * SMR, jp * SNR);
}

/* Whether all of A fits the shared buffer at once (with a carry buffer of its rows when
 * the sum is taken in chunks); else A is taken in chunks of SKC. */
static bool bn_sgemm_whole(const bn_train_model *m, int64_t M, int64_t K)
{
    const int64_t rows = bn_rup(M, SMR);
    return (size_t)(rows * K) <= 2 * m->gemm_a_cap &&
           (K <= SKC || rows <= bn_rup(m->gemm_carry_rows, SMR));
}

bool bn_train_gemm_f32_fits(const bn_train_model *m, int64_t M, int64_t N, int64_t K)
{
    if (M < 0 || N < 0 || K < 0)
        return false;
    const int64_t rows = bn_rup(M, SMR);
    return bn_sgemm_whole(m, M, K) || ((size_t)(rows * SKC) <= 2 * m->gemm_a_cap &&
                                       (size_t)(rows * bn_rup(N, SNR)) <= 2 * m->gemm_c_cap);
}

static void bn_gemm_run(bn_gemm *g)
{
    if (!g->f32) {
        bn_train_run(g->m, bn_gemm_task, g);
        return;
    }
    assert(bn_train_gemm_f32_fits(g->m, g->M, g->N, g->K));
    bn_sgemm_plan pl = {.g = g, .PM = (g->M + SMR - 1) / SMR, .PN = (g->N + SNR - 1) / SNR,
                        .whole = bn_sgemm_whole(g->m, g->M, g->K)};
    bn_train_run(g->m, bn_sgemm_task, &pl);
}

void bn_train_gemm_f32(bn_train_model *m, int64_t M, int64_t N, int64_t K, const float *a,
                       int64_t a_rs, int64_t a_cs, const float *b, int64_t b_rs,
                       int64_t b_cs, float *c, int64_t c_rs, int64_t c_cs, bool add)
{
    bn_gemm g = {.m = m, .M = M, .N = N, .K = K, .a = a, .a_rs = a_rs, .a_cs = a_cs,
                 .b = b, .b_rs = b_rs, .b_cs = b_cs, .c = c, .c_rs = c_rs, .c_cs = c_cs,
                 .add = add, .f32 = true};
    bn_gemm_run(&g);
}

/* ---------------------------------------------------------------- BitLinear */

/* The I2_S rows of the codes (2-bit code + 1; per 128 weights 32 bytes, byte j holding
 * weights j, 32 + j, 64 + j, 96 + j in bits 7-6, 5-4, 3-2, 1-0) for the engine's
 * ternary kernels; rows of n_in a multiple of 128 only. */
static void bn_pack_i2s(bn_train_linear *lin)
{
    const int64_t n_in = lin->n_in, rows = lin->n_out;
    for (int64_t o = 0; o < rows; o++) {
        const int8_t *c = lin->codes + o * n_in;
        uint8_t *dst = lin->i2s + o * (n_in / 4);
        for (int64_t b = 0; b < n_in; b += 128)
            for (int j = 0; j < 32; j++)
                dst[b / 4 + j] = (uint8_t)(((c[b + j] + 1) << 6) | ((c[b + 32 + j] + 1) << 4) |
                                           ((c[b + 64 + j] + 1) << 2) | (c[b + 96 + j] + 1));
    }
}

bn_status bn_train_fast_linear_prepare(bn_train_model *m, bn_train_linear *lin, float lambda)
{
    bn_status st = bn_train_linear_prepare(lin, lambda);
    if (st != BN_OK || m->reference || lambda != 1.0f || lin->n_in % 128 != 0)
        return st;
    bn_pack_i2s(lin);
    return BN_OK;
}

typedef struct bn_tern_job {
    const bn_train_model *m;
    float *y;
    const bn_train_linear *lin;
    const bn_train_input *in;
    int64_t N;
    bool matrix;   /* the codes packed in m->tern_qp, their sums in m->tern_qsum */
} bn_tern_job;

/* Ternary projection, output rows [o0, o1): exact integer sums, 64 tokens at a time so
 * that their codes stay in the cache while every weight row passes. The kernel sums
 * (w + 1) q, so each row's sum of q comes off. */
static void bn_tern_task(void *ctx, int ith, int nth)
{
    const bn_tern_job *j = ctx;
    const bn_train_linear *lin = j->lin;
    const bn_kernel_table *kern = bn_kernels();
    const int64_t n_in = lin->n_in, n_out = lin->n_out;
    int32_t *isum = bn_scratch(j->m, ith).isum, *qsum = isum + 4;
    int32_t sums[32 * 64];
    int64_t o0, o1;
    bn_share(n_out, ith, nth, &o0, &o1);
    if (o0 == o1)
        return;
    if (j->matrix) {
        /* the matrix kernel: 32 rows against every token at once (the codes packed by
         * the caller), the same integer sums */
        const bn_thread_scratch s = bn_scratch(j->m, ith);
        const int ldo = (int)bn_tern_ldo(j->m);
        for (int64_t g0 = o0; g0 < o1; g0 += BN_MATRIX_ROWS) {
            const int nr = o1 - g0 < BN_MATRIX_ROWS ? (int)(o1 - g0) : BN_MATRIX_ROWS;
            kern->dot_i2s_q8_matrix(lin->i2s + g0 * (n_in / 4), (size_t)(n_in / 4), nr,
                                    j->m->tern_qp, n_in, (int)j->N, s.msums, ldo, s.mw);
            kern->matrix_out_i32(s.msums, ldo, nr, (int)j->N, j->m->tern_qsum, j->in->s,
                                 lin->scale, 1.0f, j->y + g0, (size_t)n_out);
        }
        return;
    }
    for (int64_t t0 = 0; t0 < j->N; t0 += 64) {
        const int64_t t1 = t0 + 64 < j->N ? t0 + 64 : j->N;
        for (int64_t t = t0; t < t1; t++) {
            const int8_t *q = j->in->q + t * n_in;
            int32_t sq = 0;
            for (int64_t i = 0; i < n_in; i++)
                sq += q[i];
            qsum[t - t0] = sq;
        }
        /* 32 rows' sums at a time, then scaled and written token by token, a run of
         * outputs each (the kernel's matrix_out_i32, its second factor 1: the floats of
         * (float)(sum - qsum) / s * scale) */
        for (int64_t g0 = o0; g0 < o1; g0 += 32) {
            const int nr = o1 - g0 < 32 ? (int)(o1 - g0) : 32;
            for (int r = 0; r < nr; r++) {
                const uint8_t *row = lin->i2s + (g0 + r) * (n_in / 4);
                for (int64_t t = t0; t < t1; t += 4) {
                    const int nt = t1 - t < 4 ? (int)(t1 - t) : 4;
                    kern->dot_i2s_q8_tile(row, j->in->q + t * n_in, n_in, nt, isum);
                    for (int u = 0; u < nt; u++)
                        sums[r * 64 + (t + u - t0)] = isum[u];
                }
            }
            kern->matrix_out_i32(sums, 64, nr, (int)(t1 - t0), qsum, j->in->s + t0,
                                 lin->scale, 1.0f, j->y + t0 * n_out + g0, (size_t)n_out);
        }
    }
}

void bn_train_fast_linear_forward(bn_train_model *m, float *y, const bn_train_linear *lin,
                                  const bn_train_input *in, int64_t N, float lambda)
{
    if (m->reference || (lambda == 1.0f && lin->n_in % 128 != 0)) {
        bn_train_linear_forward(y, lin, in, N, lambda);
        return;
    }
    if (lambda == 1.0f) {
        bn_tern_job j = {.m = m, .y = y, .lin = lin, .in = in, .N = N};
        const int64_t n = lin->n_in;
        if (m->tern_qp && N >= 16 && N <= m->B * m->cfg.n_ctx && n % 64 == 0) {
            bn_pack_q8_matrix_chunks(in->q, n, N, 0, n / 64, m->tern_qp);
            for (int64_t t = 0; t < N; t++) {
                int32_t sq = 0;
                for (int64_t i = 0; i < n; i++)
                    sq += in->q[t * n + i];
                m->tern_qsum[t] = sq;
            }
            j.matrix = true;
        }
        bn_train_run(m, bn_tern_task, &j);
        return;
    }
    /* y[t, o] = sum_i x[t, i] W[o, i], in double always: below lambda 1 quantizers
     * read it (at lambda 0 not, but float sums there moved the fixture's 10-step float
     * run by 1e-5 in the loss and 8e-5 in the gradient norm: docs/TRAINING.md) */
    bn_gemm g = {.m = m, .M = N, .N = lin->n_out, .K = lin->n_in,
                 .a = in->x, .a_rs = lin->n_in, .a_cs = 1,
                 .b = lin->w_used, .b_rs = 1, .b_cs = lin->n_in,
                 .c = y, .c_rs = lin->n_out, .c_cs = 1, .add = false, .f32 = false};
    bn_gemm_run(&g);
}

void bn_train_fast_linear_backward(bn_train_model *m, float *dx, bn_train_linear *lin,
                                   const float *dy, const bn_train_input *in, int64_t N)
{
    if (m->reference) {
        bn_train_linear_backward(dx, lin, dy, in, N, m->d.acc);
        return;
    }
    const int64_t n_in = lin->n_in, n_out = lin->n_out;
    /* dx[t, i] += sum_o dy[t, o] W[o, i] */
    bn_gemm gx = {.m = m, .M = N, .N = n_in, .K = n_out,
                  .a = dy, .a_rs = n_out, .a_cs = 1,
                  .b = lin->w_used, .b_rs = n_in, .b_cs = 1,
                  .c = dx, .c_rs = n_in, .c_cs = 1, .add = true, .f32 = !m->exact_sums};
    bn_gemm_run(&gx);
    /* dW[o, i] += sum_t dy[t, o] x[t, i] */
    bn_gemm gw = {.m = m, .M = n_out, .N = n_in, .K = N,
                  .a = dy, .a_rs = 1, .a_cs = n_out,
                  .b = in->x, .b_rs = n_in, .b_cs = 1,
                  .c = lin->dw, .c_rs = n_in, .c_cs = 1, .add = true,
                  .f32 = !m->exact_sums};
    bn_gemm_run(&gw);
}

/* ---------------------------------------------------------------- per-row steps */

typedef struct bn_rows_job {
    float *y, *rstd, *dw, *dx;
    const float *x, *w, *dy, *rstd_in;
    bn_train_input *in;
    int64_t n;
    float eps, lambda;
    const bn_train_model *m;
} bn_rows_job;

static void bn_rmsnorm_fwd_rows(void *ctx, int64_t lo, int64_t hi)
{
    const bn_rows_job *j = ctx;
    bn_train_rmsnorm_forward(j->y + lo * j->n, j->rstd + lo, j->x + lo * j->n, j->w,
                             hi - lo, j->n, j->eps);
}

/* The same rows on the kernel table's rms_norm_rows (the same floats: its contract is
 * the reference's arithmetic), rstd from its denominators. */
static void bn_rmsnorm_fwd_rows_fast(void *ctx, int64_t lo, int64_t hi)
{
    const bn_rows_job *j = ctx;
    float *rstd = j->rstd + lo;
    bn_kernels()->rms_norm_rows(j->x + lo * j->n, j->w, j->y + lo * j->n, hi - lo, j->n,
                                j->eps, rstd);
    for (int64_t t = 0; t < hi - lo; t++)
        rstd[t] = 1.0f / rstd[t];
}

void bn_train_fast_rmsnorm_forward(bn_train_model *m, float *y, float *rstd, const float *x,
                                   const float *w, int64_t N, int64_t n, float eps)
{
    bn_rows_job j = {.y = y, .rstd = rstd, .x = x, .w = w, .n = n, .eps = eps};
    if (m->reference)
        bn_rmsnorm_fwd_rows(&j, 0, N);
    else
        bn_train_items(m, N, bn_rmsnorm_fwd_rows_fast, &j);
}

/* The reference's dx row: the pointers restrict and the weights' pointer in a local, so
 * that the update loop vectorizes (read through the job, every store to dx might have
 * moved it). */
static inline __attribute__((always_inline)) void
bn_rmsnorm_bwd_row(float *restrict dxr, const float *restrict xr, const float *restrict dyr,
                   const float *restrict w, int64_t n, double r)
{
    double dot = 0.0;
    for (int64_t i = 0; i < n; i++)
        dot += (double)w[i] * dyr[i] * xr[i];
    const double c = r * r * r * dot / (double)n;
    for (int64_t i = 0; i < n; i++)
        dxr[i] += (float)(r * w[i] * dyr[i] - c * xr[i]);
}

BN_TRAIN_CLONES static void bn_rmsnorm_bwd_rows(void *ctx, int64_t lo, int64_t hi)
{
    const bn_rows_job *j = ctx;
    const int64_t n = j->n;
    for (int64_t t = lo; t < hi; t++)
        bn_rmsnorm_bwd_row(j->dx + t * n, j->x + t * n, j->dy + t * n, j->w, n,
                           j->rstd_in[t]);
}

/* The reference's dw, columns [lo, hi): each column's sum over rows in row order, the
 * rows walked in the outer loop so that memory is read in order. */
typedef struct bn_colsum_run {
    const bn_rows_job *j;
    int64_t N;
} bn_colsum_run;

BN_TRAIN_CLONES static void bn_rmsnorm_dw_task(void *ctx, int ith, int nth)
{
    const bn_colsum_run *r = ctx;
    const bn_rows_job *j = r->j;
    int64_t lo, hi;
    bn_share(j->n, ith, nth, &lo, &hi);
    double *acc = bn_scratch(j->m, ith).vec;
    for (int64_t i = lo; i < hi; i++)
        acc[i - lo] = 0.0;
    for (int64_t t = 0; t < r->N; t++) {
        const float *dyr = j->dy + t * j->n, *xr = j->x + t * j->n;
        const float rs = j->rstd_in[t];
        for (int64_t i = lo; i < hi; i++)
            acc[i - lo] += (double)dyr[i] * xr[i] * rs;
    }
    for (int64_t i = lo; i < hi; i++)
        j->dw[i] += (float)acc[i - lo];
}

void bn_train_fast_rmsnorm_backward(bn_train_model *m, float *dx, float *dw, const float *dy,
                                    const float *x, const float *w, const float *rstd,
                                    int64_t N, int64_t n)
{
    if (m->reference) {
        bn_train_rmsnorm_backward(dx, dw, dy, x, w, rstd, N, n);
        return;
    }
    bn_rows_job j = {.dx = dx, .dw = dw, .dy = dy, .x = x, .w = w, .rstd_in = rstd, .n = n,
                     .m = m};
    bn_train_items(m, N, bn_rmsnorm_bwd_rows, &j);
    bn_colsum_run r = {.j = &j, .N = N};
    bn_train_run(m, bn_rmsnorm_dw_task, &r);
}

static void bn_quantize_rows(void *ctx, int64_t lo, int64_t hi)
{
    const bn_rows_job *j = ctx;
    bn_train_input part = {j->in->x + lo * j->n, j->in->q + lo * j->n, j->in->s + lo};
    bn_train_input_quantize(&part, hi - lo, j->n, j->lambda);
}

void bn_train_fast_input_quantize(bn_train_model *m, bn_train_input *in, int64_t N,
                                  int64_t n, float lambda)
{
    if (lambda == 0.0f)
        return;
    bn_rows_job j = {.in = in, .n = n, .lambda = lambda};
    if (m->reference)
        bn_quantize_rows(&j, 0, N);
    else
        bn_train_items(m, N, bn_quantize_rows, &j);
}

/* Element-wise steps, in shares of the n elements. */
typedef struct bn_elt_job {
    float *out, *out2;
    const float *a, *b, *c;
} bn_elt_job;

static void bn_relu2_fwd_items(void *ctx, int64_t lo, int64_t hi)
{
    const bn_elt_job *j = ctx;
    bn_train_relu2_forward(j->out + lo, j->a + lo, j->b + lo, hi - lo);
}

static void bn_relu2_bwd_items(void *ctx, int64_t lo, int64_t hi)
{
    const bn_elt_job *j = ctx;
    bn_train_relu2_backward(j->out + lo, j->out2 + lo, j->a + lo, j->b + lo, j->c + lo,
                            hi - lo);
}

static void bn_residual_items(void *ctx, int64_t lo, int64_t hi)
{
    const bn_elt_job *j = ctx;
    bn_train_residual_forward(j->out + lo, j->a + lo, j->b + lo, hi - lo);
}

void bn_train_fast_relu2_forward(bn_train_model *m, float *out, const float *g,
                                 const float *u, int64_t n)
{
    bn_elt_job j = {.out = out, .a = g, .b = u};
    if (m->reference)
        bn_relu2_fwd_items(&j, 0, n);
    else
        bn_train_items(m, n, bn_relu2_fwd_items, &j);
}

void bn_train_fast_relu2_backward(bn_train_model *m, float *dg, float *du, const float *dout,
                                  const float *g, const float *u, int64_t n)
{
    bn_elt_job j = {.out = dg, .out2 = du, .a = dout, .b = g, .c = u};
    if (m->reference)
        bn_relu2_bwd_items(&j, 0, n);
    else
        bn_train_items(m, n, bn_relu2_bwd_items, &j);
}

void bn_train_fast_residual_forward(bn_train_model *m, float *h, const float *a,
                                    const float *b, int64_t n)
{
    bn_elt_job j = {.out = h, .a = a, .b = b};
    if (m->reference)
        bn_residual_items(&j, 0, n);
    else
        bn_train_items(m, n, bn_residual_items, &j);
}

/* RoPE, a share of the sequences each. */
typedef struct bn_rope_job {
    float *x;
    const float *rope;
    int64_t T, heads, hd;
    bool backward;
} bn_rope_job;

static void bn_rope_items(void *ctx, int64_t lo, int64_t hi)
{
    const bn_rope_job *j = ctx;
    float *x = j->x + lo * j->T * j->heads * j->hd;
    if (j->backward)
        bn_train_rope_backward(x, j->rope, hi - lo, j->T, j->heads, j->hd);
    else
        bn_train_rope_forward(x, j->rope, hi - lo, j->T, j->heads, j->hd);
}

void bn_train_fast_rope(bn_train_model *m, float *x, int64_t B, int64_t heads, bool backward)
{
    const int64_t hd = m->cfg.n_embd / m->cfg.n_head;
    bn_rope_job j = {.x = x, .rope = m->rope, .T = m->cfg.n_ctx, .heads = heads, .hd = hd,
                     .backward = backward};
    if (m->reference)
        bn_rope_items(&j, 0, B);
    else
        bn_train_items(m, B, bn_rope_items, &j);
}

/* The embedding's gradient: each thread a share of the columns, the positions in
 * order, as the reference adds them. */
typedef struct bn_embed_job {
    float *dembd;
    const float *dh;
    const int32_t *tokens;
    int64_t N, E;
} bn_embed_job;

static void bn_embed_bwd_cols(void *ctx, int64_t lo, int64_t hi)
{
    const bn_embed_job *j = ctx;
    for (int64_t i = 0; i < j->N; i++) {
        float *d = j->dembd + (int64_t)j->tokens[i] * j->E;
        const float *g = j->dh + i * j->E;
        for (int64_t e = lo; e < hi; e++)
            d[e] += g[e];
    }
}

void bn_train_fast_embed_backward(bn_train_model *m, float *dembd, const float *dh,
                                  const int32_t *tokens, int64_t N, int64_t E)
{
    bn_embed_job j = {.dembd = dembd, .dh = dh, .tokens = tokens, .N = N, .E = E};
    if (m->reference)
        bn_embed_bwd_cols(&j, 0, E);
    else
        bn_train_items(m, E, bn_embed_bwd_cols, &j);
}

/* ---------------------------------------------------------------- attention */

typedef struct bn_att_job {
    const bn_train_model *m;
    float *out, *probs, *dq, *dk, *dv;
    const float *dout, *cprobs, *q, *k, *v;
    int64_t B, T, H, KV, hd;
} bn_att_job;

/* x [T rows of stride ld] of one head, transposed into xt [hd][T] in double. */
static void bn_transpose_head(double *xt, const float *x, int64_t ld, int64_t T, int64_t hd)
{
    for (int64_t s = 0; s < T; s++)
        for (int64_t d = 0; d < hd; d++)
            xt[d * T + s] = x[s * ld + d];
}

/* Eight doubles and eight floats (GCC's and Clang's vector extension). */
typedef double bn_att_v8d __attribute__((vector_size(64)));
typedef float bn_att_v8f __attribute__((vector_size(32)));

/* x[0 .. n) widened to double (exact). */
static inline __attribute__((always_inline)) void
bn_att_widen(double *restrict xd, const float *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        xd[i] = x[i];
}

/* For the NQ queries q of a block (1 or BN_ATT_NQ), over the same rows r:
 * out[q][j] = the sum over i < m, i ascending from 0.0, of c[q][i] * r[i ld + j], for
 * j < n, and past n up to a multiple of 8 that is at most nmax (the caller does not read
 * those values; r has them). NB * 8 values of j of each query in registers, so that each
 * i adds to them without a load and a store of out: the same operations per element as
 * the reference's loop (a multiply and an add, i ascending). One query keeps eight
 * chains of additions, which hide an addition's latency; a block of queries reads each
 * row of r once for all of them (one query at a time, each read every row from the
 * second-level cache, and the loads, not the arithmetic, set the pace). A query's scores
 * are this with c the query widened to double and r the keys transposed (j a key), its
 * weighted sum with c its weights and r the values (j a dimension). */
static inline __attribute__((always_inline)) int64_t
bn_att_sums_blocks(double *const *out, const double *const *c, const double *restrict r,
                   int64_t ld, int64_t m, int64_t j0, int64_t n, const int NQ, const int NB)
{
    for (; j0 + 8 * NB <= n; j0 += 8 * NB) {
        bn_att_v8d a[BN_ATT_NQ][8] = {{{0}}};
        for (int64_t i = 0; i < m; i++) {
            bn_att_v8d rv[8];
#pragma GCC unroll 8
            for (int k = 0; k < NB; k++) {
                bn_att_v8d x;
                memcpy(&x, r + i * ld + j0 + 8 * k, sizeof x);
                rv[k] = x;
            }
#pragma GCC unroll 4
            for (int q = 0; q < NQ; q++) {
                const double cq = c[q][i];
#pragma GCC unroll 8
                for (int k = 0; k < NB; k++)
                    a[q][k] = a[q][k] + cq * rv[k];
            }
        }
#pragma GCC unroll 4
        for (int q = 0; q < NQ; q++)
#pragma GCC unroll 8
            for (int k = 0; k < NB; k++) {
                const bn_att_v8d x = a[q][k];
                memcpy(out[q] + j0 + 8 * k, &x, sizeof x);
            }
    }
    return j0;
}

static inline __attribute__((always_inline)) void
bn_att_msums(double *const *out, const double *const *c, const double *restrict r,
             int64_t ld, int64_t m, int64_t n, int64_t nmax, const int NQ)
{
    int64_t j0 = bn_att_sums_blocks(out, c, r, ld, m, 0, n, NQ, NQ == 1 ? 8 : 4);
    if (NQ == 1)
        j0 = bn_att_sums_blocks(out, c, r, ld, m, j0, n, NQ, 4);
    const int64_t n8 = (n + 7) / 8 * 8;
    j0 = bn_att_sums_blocks(out, c, r, ld, m, j0, n8 < nmax ? n8 : nmax, NQ, 1);
    for (int q = 0; q < NQ; q++) {
        for (int64_t j = j0; j < n; j++)
            out[q][j] = 0.0;
        for (int64_t i = 0; i < m; i++) {
            const double ci = c[q][i];
            for (int64_t j = j0; j < n; j++)
                out[q][j] += ci * r[i * ld + j];
        }
    }
}

/* The sums of one query. */
static inline __attribute__((always_inline)) void
bn_att_sums(double *out, const double *c, const double *restrict r, int64_t ld, int64_t m,
            int64_t n, int64_t nmax)
{
    bn_att_msums(&out, &c, r, ld, m, n, nmax, 1);
}

/* out[j] += c[i] * r[i ld + j] for i0 <= i < i1 ascending, j < n: a sum taken on from
 * where bn_att_msums left it, for a query whose sum is longer than its block's. */
static inline __attribute__((always_inline)) void
bn_att_sums_more(double *restrict out, const double *restrict c, const double *restrict r,
                 int64_t ld, int64_t i0, int64_t i1, int64_t n)
{
    for (int64_t i = i0; i < i1; i++) {
        const double ci = c[i];
        for (int64_t j = 0; j < n; j++)
            out[j] += ci * r[i * ld + j];
    }
}

/* x [T rows of stride ld] of one head into xd [T][hd] in double (exact). */
static inline __attribute__((always_inline)) void
bn_widen_head(double *xd, const float *x, int64_t ld, int64_t T, int64_t hd)
{
    for (int64_t t = 0; t < T; t++)
        bn_att_widen(xd + t * hd, x + t * ld, hd);
}

/* The scores (into sc[q], stride ldo) of queries t0 .. t0 + nq (rows of x at stride ldx,
 * widened into coef) against a head's transposed keys or values kt [hd][T]. */
static inline __attribute__((always_inline)) void
bn_att_block_scores(double *sc, int64_t ldo, double *coef, const float *x, int64_t ldx,
                    const double *kt, int64_t T, int64_t hd, int64_t t0, int64_t nq)
{
    if (nq < BN_ATT_NQ) {
        for (int64_t q = 0; q < nq; q++) {
            bn_att_widen(coef, x + (t0 + q) * ldx, hd);
            bn_att_sums(sc + q * ldo, coef, kt, T, hd, t0 + q + 1, T);
        }
        return;
    }
    double *out[BN_ATT_NQ];
    const double *c[BN_ATT_NQ];
    for (int q = 0; q < BN_ATT_NQ; q++) {
        bn_att_widen(coef + q * hd, x + (t0 + q) * ldx, hd);
        out[q] = sc + q * ldo;
        c[q] = coef + q * hd;
    }
    bn_att_msums(out, c, kt, T, hd, t0 + BN_ATT_NQ, T, BN_ATT_NQ);
}

/* acc[q][d] = the sum over u <= t0 + q of w[q][u] * rows[u][d] for the queries of a
 * block (weights at stride ldw, rows [T][hd] in double): the keys all of them see in
 * one pass, then each query's own last ones. */
static inline __attribute__((always_inline)) void
bn_att_block_mix(double *acc, const double *w, int64_t ldw, const double *rows, int64_t hd,
                 int64_t t0, int64_t nq)
{
    if (nq < BN_ATT_NQ) {
        for (int64_t q = 0; q < nq; q++)
            bn_att_sums(acc + q * hd, w + q * ldw, rows, hd, t0 + q + 1, hd, hd);
        return;
    }
    double *out[BN_ATT_NQ];
    const double *c[BN_ATT_NQ];
    for (int q = 0; q < BN_ATT_NQ; q++) {
        out[q] = acc + q * hd;
        c[q] = w + q * ldw;
    }
    bn_att_msums(out, c, rows, hd, t0 + 1, hd, hd, BN_ATT_NQ);
    for (int q = 1; q < BN_ATT_NQ; q++)
        bn_att_sums_more(out[q], c[q], rows, hd, t0 + 1, t0 + q + 1, hd);
}

/* Queries (b, h) for the items [lo, hi) of B * H: the reference's arithmetic, with the
 * scores of a block of queries computed for all their keys at once (keys in the inner
 * loop), then each one's softmax, then the block's weighted sums. */
BN_TRAIN_CLONES static void bn_att_fwd_task(void *ctx, int ith, int nth)
{
    const bn_att_job *j = ctx;
    const int64_t T = j->T, H = j->H, hd = j->hd, group = H / j->KV;
    const int64_t E = H * hd, KVD = j->KV * hd;
    const double inv = 1.0 / sqrt((double)hd);
    bn_thread_scratch s = bn_scratch(j->m, ith);
    double *p = s.p, *acc = s.acc;
    int64_t lo, hi;
    bn_share(j->B * H, ith, nth, &lo, &hi);
    for (int64_t bh = lo; bh < hi; bh++) {
        const int64_t b = bh / H, h = bh % H, kvh = h / group;
        const float *kb = j->k + b * T * KVD + kvh * hd;
        const float *vb = j->v + b * T * KVD + kvh * hd;
        bn_transpose_head(s.kt, kb, KVD, T, hd);
        bn_widen_head(s.rows, vb, KVD, T, hd);
        for (int64_t t0 = 0; t0 < T; t0 += BN_ATT_NQ) {
            const int64_t nq = T - t0 < BN_ATT_NQ ? T - t0 : BN_ATT_NQ;
            bn_att_block_scores(p, T, s.coef, j->q + (b * T) * E + h * hd, E, s.kt, T, hd,
                                t0, nq);
            for (int64_t q = 0; q < nq; q++) {
                const int64_t t = t0 + q;
                double *pq = p + q * T;
                double mx = -INFINITY;
                for (int64_t u = 0; u <= t; u++) {
                    pq[u] = pq[u] * inv;
                    mx = pq[u] > mx ? pq[u] : mx;
                }
                double sum = 0.0;
                for (int64_t u = 0; u <= t; u++) {
                    pq[u] = exp(pq[u] - mx);
                    sum += pq[u];
                }
                float *pr = j->probs + ((b * H + h) * T + t) * T;
                for (int64_t u = 0; u < T; u++) {
                    pq[u] = u <= t ? pq[u] / sum : 0.0;
                    pr[u] = (float)pq[u];
                }
            }
            bn_att_block_mix(acc, p, T, s.rows, hd, t0, nq);
            for (int64_t q = 0; q < nq; q++) {
                float *o = j->out + (b * T + t0 + q) * E + h * hd;
                for (int64_t d = 0; d < hd; d++)
                    o[d] = (float)acc[q * hd + d];
            }
        }
    }
}

void bn_train_fast_attention_forward(bn_train_model *m, float *out, float *probs,
                                     const float *q, const float *k, const float *v,
                                     int64_t B)
{
    const bn_train_config *c = &m->cfg;
    const int64_t T = c->n_ctx, H = c->n_head, KV = c->n_head_kv, hd = c->n_embd / H;
    if (m->reference) {
        bn_train_attention_forward(out, probs, m->d.dp, q, k, v, B, T, H, KV, hd);
        return;
    }
    bn_att_job j = {.m = m, .out = out, .probs = probs, .q = q, .k = k, .v = v, .B = B,
                    .T = T, .H = H, .KV = KV, .hd = hd};
    bn_train_run(m, bn_att_fwd_task, &j);
}

/* The key and value gradients of one query head, rows u0 .. u0 + BN_ATT_NU of a kv head
 * (dk, dv at stride ld), columns d0 .. d0 + BN_ATT_ND, over the queries t0 .. T - 1
 * (t0 >= u0 + BN_ATT_NU - 1, so that every query sees every row; the queries before are
 * the caller's): the rows' values in registers while the queries pass, where the
 * reference adds to them in memory query by query. Per element the reference's
 * operations in its order (queries ascending): dv += pr[t][u] * dout_t (a float product
 * and a float sum), dk += (float)(ds[t][u] * (double)q_t) (a double product rounded to
 * float). */
#define BN_ATT_NU 4               /* rows a block */
#define BN_ATT_NC 2               /* eight-float columns of each */
#define BN_ATT_ND (8 * BN_ATT_NC)
static inline __attribute__((always_inline)) void
bn_att_kv_rows(float *restrict dk, float *restrict dv, int64_t ld, const float *restrict pr,
               const double *restrict ds, const float *restrict dout, const float *restrict q,
               int64_t E, int64_t T, int64_t u0, int64_t d0, int64_t t0)
{
    bn_att_v8f ak[BN_ATT_NU][BN_ATT_NC], av[BN_ATT_NU][BN_ATT_NC];
    /* loaded and stored through a copy: an array whose address is taken stays in memory */
#pragma GCC unroll 4
    for (int i = 0; i < BN_ATT_NU; i++)
#pragma GCC unroll 4
        for (int c = 0; c < BN_ATT_NC; c++) {
            bn_att_v8f x;
            memcpy(&x, dk + (u0 + i) * ld + d0 + 8 * c, sizeof x);
            ak[i][c] = x;
            memcpy(&x, dv + (u0 + i) * ld + d0 + 8 * c, sizeof x);
            av[i][c] = x;
        }
    for (int64_t t = t0; t < T; t++) {
        bn_att_v8f o[BN_ATT_NC];
        bn_att_v8d qd[BN_ATT_NC];
#pragma GCC unroll 4
        for (int c = 0; c < BN_ATT_NC; c++) {
            bn_att_v8f x;
            memcpy(&x, dout + t * E + d0 + 8 * c, sizeof x);
            o[c] = x;
            memcpy(&x, q + t * E + d0 + 8 * c, sizeof x);
            qd[c] = __builtin_convertvector(x, bn_att_v8d);
        }
#pragma GCC unroll 4
        for (int i = 0; i < BN_ATT_NU; i++) {
            const float pu = pr[t * T + u0 + i];
            const double du = ds[t * T + u0 + i];
#pragma GCC unroll 4
            for (int c = 0; c < BN_ATT_NC; c++) {
                av[i][c] = av[i][c] + pu * o[c];
                ak[i][c] = ak[i][c] + __builtin_convertvector(du * qd[c], bn_att_v8f);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < BN_ATT_NU; i++)
#pragma GCC unroll 4
        for (int c = 0; c < BN_ATT_NC; c++) {
            bn_att_v8f x = ak[i][c];
            memcpy(dk + (u0 + i) * ld + d0 + 8 * c, &x, sizeof x);
            x = av[i][c];
            memcpy(dv + (u0 + i) * ld + d0 + 8 * c, &x, sizeof x);
        }
}

/* The same for one element (row u, column d) over the queries t0 .. T - 1. */
static inline __attribute__((always_inline)) void
bn_att_kv_one(float *restrict dk, float *restrict dv, int64_t ld, const float *restrict pr,
              const double *restrict ds, const float *restrict dout, const float *restrict q,
              int64_t E, int64_t T, int64_t u, int64_t d, int64_t t0)
{
    float k = dk[u * ld + d], v = dv[u * ld + d];
    for (int64_t t = t0; t < T; t++) {
        v += pr[t * T + u] * dout[t * E + d];
        k += (float)(ds[t * T + u] * q[t * E + d]);
    }
    dk[u * ld + d] = k;
    dv[u * ld + d] = v;
}

/* Kv heads (b, kvh) for the items of B * KV: a kv head's dk and dv gather its query
 * heads in head order, then position order, as the reference does. For each query head,
 * first every query's score gradients (into s.ds, a row per query; a block of queries at
 * a time, as in the forward) and its dq; then dk and dv, a block of rows at a time held
 * in registers over the queries. */
BN_TRAIN_CLONES static void bn_att_bwd_task(void *ctx, int ith, int nth)
{
    const bn_att_job *j = ctx;
    const int64_t T = j->T, H = j->H, hd = j->hd, KV = j->KV, group = H / KV;
    const int64_t E = H * hd, KVD = KV * hd;
    const double inv = 1.0 / sqrt((double)hd);
    bn_thread_scratch s = bn_scratch(j->m, ith);
    double *acc = s.acc;
    const int64_t dnd = hd / BN_ATT_ND * BN_ATT_ND;
    int64_t lo, hi;
    bn_share(j->B * KV, ith, nth, &lo, &hi);
    for (int64_t bk = lo; bk < hi; bk++) {
        const int64_t b = bk / KV, kvh = bk % KV;
        const float *kb = j->k + b * T * KVD + kvh * hd;
        const float *vb = j->v + b * T * KVD + kvh * hd;
        float *dkb = j->dk + b * T * KVD + kvh * hd;
        float *dvb = j->dv + b * T * KVD + kvh * hd;
        bn_transpose_head(s.vt, vb, KVD, T, hd);
        bn_widen_head(s.rows, kb, KVD, T, hd);
        for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
            const float *prh = j->cprobs + (b * H + h) * T * T;
            const float *douth = j->dout + b * T * E + h * hd;
            const float *qh = j->q + b * T * E + h * hd;
            for (int64_t t0 = 0; t0 < T; t0 += BN_ATT_NQ) {
                const int64_t nq = T - t0 < BN_ATT_NQ ? T - t0 : BN_ATT_NQ;
                bn_att_block_scores(s.ds + t0 * T, T, s.coef, douth, E, s.vt, T, hd, t0, nq);
                for (int64_t t = t0; t < t0 + nq; t++) {
                    const float *pr = prh + t * T;
                    double *dp = s.ds + t * T;
                    double pdp = 0.0;
                    for (int64_t u = 0; u <= t; u++)
                        pdp += pr[u] * dp[u];
                    for (int64_t u = 0; u <= t; u++)
                        dp[u] = pr[u] * (dp[u] - pdp) * inv;
                }
                bn_att_block_mix(acc, s.ds + t0 * T, T, s.rows, hd, t0, nq);
                for (int64_t q = 0; q < nq; q++) {
                    float *dqt = j->dq + (b * T + t0 + q) * E + h * hd;
                    for (int64_t d = 0; d < hd; d++)
                        dqt[d] += (float)acc[q * hd + d];
                }
            }
            /* dk, dv: row u gathers the queries t >= u in order */
            int64_t u0 = 0;
            for (; u0 + BN_ATT_NU <= T; u0 += BN_ATT_NU) {
                /* the first queries, which see only some of the block's rows */
                for (int64_t t = u0; t < u0 + BN_ATT_NU - 1; t++)
                    for (int64_t u = u0; u <= t; u++)
                        for (int64_t d = 0; d < hd; d++) {
                            dvb[u * KVD + d] += prh[t * T + u] * douth[t * E + d];
                            dkb[u * KVD + d] += (float)(s.ds[t * T + u] * qh[t * E + d]);
                        }
                for (int64_t d0 = 0; d0 < dnd; d0 += BN_ATT_ND)
                    bn_att_kv_rows(dkb, dvb, KVD, prh, s.ds, douth, qh, E, T, u0, d0,
                                   u0 + BN_ATT_NU - 1);
                for (int64_t u = u0; u < u0 + BN_ATT_NU; u++)
                    for (int64_t d = dnd; d < hd; d++)
                        bn_att_kv_one(dkb, dvb, KVD, prh, s.ds, douth, qh, E, T, u, d,
                                      u0 + BN_ATT_NU - 1);
            }
            for (int64_t u = u0; u < T; u++)
                for (int64_t d = 0; d < hd; d++)
                    bn_att_kv_one(dkb, dvb, KVD, prh, s.ds, douth, qh, E, T, u, d, u);
        }
    }
}

void bn_train_fast_attention_backward(bn_train_model *m, float *dq, float *dk, float *dv,
                                      const float *dout, const float *probs, const float *q,
                                      const float *k, const float *v, int64_t B)
{
    const bn_train_config *c = &m->cfg;
    const int64_t T = c->n_ctx, H = c->n_head, KV = c->n_head_kv, hd = c->n_embd / H;
    if (m->reference) {
        bn_train_attention_backward(dq, dk, dv, m->d.dp, dout, probs, q, k, v, B, T, H, KV,
                                    hd);
        return;
    }
    bn_att_job j = {.m = m, .dq = dq, .dk = dk, .dv = dv, .dout = dout, .cprobs = probs,
                    .q = q, .k = k, .v = v, .B = B, .T = T, .H = H, .KV = KV, .hd = hd};
    bn_train_run(m, bn_att_bwd_task, &j);
}

/* ---------------------------------------------------------------- output and loss */

typedef struct bn_softmax_job {
    const bn_train_model *m;
    float *probs;
    const int32_t *targets;
    double *row_loss;
    int64_t N, V;
    double k;
    bool dl;   /* the softmax: leave (p - [v = target]) k, the logits' gradient */
} bn_softmax_job;

/* Sixteen floats, and sixteen lanes of a comparison's result (GCC's and Clang's vector
 * extension: AVX-512, two AVX2 vectors or four SSE ones, as the clone is built); eight
 * doubles and eight 64-bit lanes likewise. */
typedef float bn_v16f __attribute__((vector_size(64)));
typedef int32_t bn_v16i __attribute__((vector_size(64)));
typedef float bn_v8f __attribute__((vector_size(32)));
typedef double bn_v8d __attribute__((vector_size(64)));
typedef int64_t bn_v8l __attribute__((vector_size(64)));

/* exp(x) for x <= 0 (or NaN) in float, in operations the compiler vectorizes: x =
 * n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts), exp(r) by its Taylor polynomial of
 * degree 7 (relative error below 2e-7 before the float roundings), times 2^n built in
 * the exponent bits; below -87 the result is clamped to exp(-87) (1.6e-38, which a
 * probability of a row's softmax never notices). NaN stays NaN. */

static inline float bn_exp_neg(float x)
{
    x = x < -87.0f ? -87.0f : x;
    const float t = x * 1.44269504f + 12582912.0f;   /* round(x / ln2), + 1.5 2^23 */
    const float n = t - 12582912.0f;
    const float r = (x - n * 0.693145752f) - n * 1.42860677e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4b400000 + 127) << 23;   /* n + 127 in the exponent field */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* A row of probabilities to the logits' gradient: (p - [v = target]) k, in double,
 * rounded to float. */
static inline __attribute__((always_inline)) void bn_dlogits_row(float *pr, int64_t V,
                                                                int32_t target, double k)
{
    for (int64_t v = 0; v < V; v++)
        pr[v] = (float)(((double)pr[v] - (v == target)) * k);
}

/* pr[v] = (float)((double)e[v] / sum), the division's bits, by a multiplication with
 * 1 / sum where that gives them: the product q is within 2.5 ulp (of a double) of the
 * correctly rounded quotient d, so the two round to the same float unless a float's
 * rounding midpoint lies within 4 ulp of q (one time in 2^26) or q is below 2^-125
 * (a float of fewer bits). A row where any q is such is divided again, all of it. */
BN_TRAIN_CLONES static void bn_softmax_normalize(float *pr, const float *e, int64_t V,
                                                 double sum)
{
    const double inv = 1.0 / sum;
    bn_v8l bad = {0};   /* lanes of all ones where a q is such */
    int64_t v = 0;
    for (; v + 8 <= V; v += 8) {
        bn_v8f ev;
        memcpy(&ev, e + v, sizeof ev);
        const bn_v8d q = __builtin_convertvector(ev, bn_v8d) * inv;
        bn_v8l bits;
        memcpy(&bits, &q, sizeof bits);
        /* in arithmetic only (shifts of the sign, which vectorize where comparisons of
         * 64-bit lanes may not): q below 2^-125 (its bits, signed, below those of
         * 2^-125: a zero or a NaN with its sign set too, which the division takes as
         * well), or x = low 29 bits - (2^28 - 4) in 0..8 (within 4 ulp of a midpoint) */
        const bn_v8l x = (bits & 0x1fffffff) - 0x0ffffffc;
        bad |= ((bits - 0x3820000000000000) >> 63) | ~((x | (8 - x)) >> 63);
        const bn_v8f f = __builtin_convertvector(q, bn_v8f);
        memcpy(pr + v, &f, sizeof f);
    }
    int64_t any = 0;
    for (int u = 0; u < 8; u++)
        any |= bad[u];
    for (v = any ? 0 : v; v < V; v++)
        pr[v] = (float)((double)e[v] / sum);
}

void bn_train_softmax_normalize(float *pr, const float *e, int64_t V, double sum)
{
    bn_softmax_normalize(pr, e, V, sum);
}

/* A row's softmax: with exact sums, the reference's (each exponential in double, once,
 * and kept); otherwise the exponentials in float (bn_exp_neg) summed in double in eight
 * lanes (lane v % 8, combined in a fixed order), the same bits on every thread count and
 * every machine. */
BN_TRAIN_CLONES static void bn_softmax_task(void *ctx, int ith, int nth)
{
    const bn_softmax_job *j = ctx;
    double *ex = bn_scratch(j->m, ith).exps;
    float *exf = (float *)ex;
    const int64_t V = j->V;
    int64_t lo, hi;
    bn_share(j->N, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        float *pr = j->probs + t * V;
        /* the row's largest logit in 16 lanes (a maximum does not depend on the order
         * it is taken in): a compare and a select per vector of lanes */
        bn_v16f lane_mx;
        bn_v16i lane_sel;
        for (int u = 0; u < 16; u++)
            lane_mx[u] = -INFINITY;
        int64_t v16 = 0;
        for (; v16 + 16 <= V; v16 += 16) {
            bn_v16f x;
            memcpy(&x, pr + v16, sizeof x);
            lane_sel = x > lane_mx;
            lane_mx = (bn_v16f)(((bn_v16i)x & lane_sel) | ((bn_v16i)lane_mx & ~lane_sel));
        }
        float mx = -INFINITY;
        for (int u = 0; u < 16; u++)
            mx = lane_mx[u] > mx ? lane_mx[u] : mx;
        for (int64_t v = v16; v < V; v++)
            mx = pr[v] > mx ? pr[v] : mx;
        double sum = 0.0;
        if (j->m->exact_sums) {
            for (int64_t v = 0; v < V; v++) {
                ex[v] = exp((double)pr[v] - mx);
                sum += ex[v];
            }
            j->row_loss[t] = log(sum) - ((double)pr[j->targets[t]] - mx);
            for (int64_t v = 0; v < V; v++)
                pr[v] = (float)(ex[v] / sum);
            continue;
        }
        for (int64_t v = 0; v < V; v++)
            exf[v] = bn_exp_neg(pr[v] - mx);
        double lane[8] = {0};
        int64_t v = 0;
        for (; v + 8 <= V; v += 8)
            for (int u = 0; u < 8; u++)
                lane[u] += exf[v + u];
        for (int u = 0; v < V; v++, u++)
            lane[u] += exf[v];
        sum = ((lane[0] + lane[4]) + (lane[2] + lane[6])) +
              ((lane[1] + lane[5]) + (lane[3] + lane[7]));
        j->row_loss[t] = log(sum) - ((double)pr[j->targets[t]] - mx);
        bn_softmax_normalize(pr, exf, V, sum);
        if (j->dl)   /* while the row is in the cache: bn_dlogits_task's floats */
            bn_dlogits_row(pr, V, j->targets[t], j->k);
    }
}

double bn_train_fast_output_forward(bn_train_model *m, float *probs, const float *x,
                                    const float *embd, const int32_t *targets, int64_t N)
{
    const int64_t E = m->cfg.n_embd, V = m->cfg.n_vocab;
    if (m->reference)
        return bn_train_output_forward(probs, x, embd, targets, N, E, V);
    /* logits[t, v] = sum_e x[t, e] embd[v, e] */
    bn_gemm g = {.m = m, .M = N, .N = V, .K = E, .a = x, .a_rs = E, .a_cs = 1,
                 .b = embd, .b_rs = 1, .b_cs = E, .c = probs, .c_rs = V, .c_cs = 1,
                 .add = false, .f32 = !m->exact_sums};
    bn_gemm_run(&g);
    /* with dl_scale (a step's forward, a backward to follow), the gradient at once */
    const bool dl = m->dl_scale > 0.0f && !m->exact_sums;
    bn_softmax_job j = {.m = m, .probs = probs, .targets = targets, .row_loss = m->row_loss,
                        .N = N, .V = V, .k = (double)m->dl_scale / (double)N, .dl = dl};
    m->probs_dl = dl;
    m->dl_last = m->dl_scale;
    bn_train_run(m, bn_softmax_task, &j);
    double loss = 0.0;
    for (int64_t t = 0; t < N; t++)
        loss += m->row_loss[t];
    return loss / (double)N;
}

BN_TRAIN_CLONES static void bn_dlogits_task(void *ctx, int ith, int nth)
{
    const bn_softmax_job *j = ctx;
    int64_t lo, hi;
    bn_share(j->N, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++)
        bn_dlogits_row(j->probs + t * j->V, j->V, j->targets[t], j->k);
}

void bn_train_fast_output_backward(bn_train_model *m, float *dx, float *dembd, float *probs,
                                   const float *x, const float *embd,
                                   const int32_t *targets, int64_t N, float scale)
{
    const int64_t E = m->cfg.n_embd, V = m->cfg.n_vocab;
    if (m->reference) {
        bn_train_output_backward(dx, dembd, probs, x, embd, targets, N, E, V, scale,
                                 m->d.acc);
        return;
    }
    bn_softmax_job j = {.m = m, .probs = probs, .targets = targets, .N = N, .V = V,
                        .k = (double)scale / (double)N};
    if (!(m->probs_dl && scale == m->dl_last))   /* else the forward's softmax did it */
        bn_train_run(m, bn_dlogits_task, &j);
    m->probs_dl = false;
    /* dx[t, e] += sum_v dl[t, v] embd[v, e], as dx^T = embd^T dl^T: the long sum over
     * the vocabulary is the product's K, taken in chunks */
    bn_gemm gx = {.m = m, .M = E, .N = N, .K = V, .a = embd, .a_rs = 1, .a_cs = E,
                  .b = probs, .b_rs = 1, .b_cs = V, .c = dx, .c_rs = 1, .c_cs = E,
                  .add = true, .f32 = !m->exact_sums};
    bn_gemm_run(&gx);
    /* dembd[v, e] += sum_t dl[t, v] x[t, e], as dembd^T = x^T dl */
    bn_gemm gw = {.m = m, .M = E, .N = V, .K = N, .a = x, .a_rs = 1, .a_cs = E,
                  .b = probs, .b_rs = V, .b_cs = 1, .c = dembd, .c_rs = 1, .c_cs = E,
                  .add = true, .f32 = !m->exact_sums};
    bn_gemm_run(&gw);
}

/* ---------------------------------------------------------------- plan */

void bn_train_fast_plan(bn_train_model *m)
{
    const int64_t E = m->cfg.n_embd, F = m->cfg.n_ff, V = m->cfg.n_vocab;
    const int64_t N = (int64_t)m->B * m->cfg.n_ctx;
    const int64_t maxd = E > F ? E : F;
    /* double products: A whole (rows by k of a projection) */
    const int64_t a1 = bn_rup(N, MR) * maxd, a2 = bn_rup(maxd, MR) * N;
    int64_t acap = a1 > a2 ? a1 : a2;
    /* float products, counted in floats: A whole for every product but the output's
     * d x (sum over V), which takes chunks of SKC when it does not fit */
    const int64_t fa[] = {bn_rup(N, SMR) * maxd, bn_rup(maxd, SMR) * N,
                          bn_rup(E, SMR) * SKC};
    for (size_t i = 0; i < sizeof fa / sizeof fa[0]; i++)
        if ((fa[i] + 1) / 2 > acap)
            acap = (fa[i] + 1) / 2;
    m->gemm_a_cap = (size_t)acap;
    /* the double output's dx: M = E rows, K = V in chunks of what A's buffer holds */
    int64_t kc = acap / bn_rup(E, MR);
    if (kc > V)
        kc = V;
    int64_t bk = N > maxd ? N : maxd;
    if (bk < SJB * SKC)
        bk = SJB * SKC;
    m->gemm_bpack_k = bk > kc ? bk : kc;
    const int64_t c64 = bn_rup(E, MR) * bn_rup(N, NR);
    const int64_t c32 = (bn_rup(E, SMR) * bn_rup(N, SNR) + 1) / 2;
    m->gemm_c_cap = (size_t)(c64 > c32 ? c64 : c32);
    m->gemm_carry_rows = N > maxd ? N : maxd;
    /* A's block: where the second-level cache holds 1.5 MiB of it with room to spare
     * (2 MiB or more, Intel's server cores), that much, which stays there while the
     * column panels pass; where it does not (1 MiB on AMD Zen 4, 512 KiB on Zen 3), A
     * streams from the third level whatever the block, and a larger one packs each
     * chunk of B fewer times: 6 MiB (on Zen 4 the tile ran as fast over it, and a
     * 2-thread ternary step of the default model's shape took 0.94 of the time). Where
     * the size is not known, the first. The sums do not depend on it. */
    long l2 = -1;
#ifdef _SC_LEVEL2_CACHE_SIZE
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    m->gemm_a_block = l2 > 0 && l2 < 2 * 1024 * 1024 ? 1536 * 1024 : 384 * 1024;
}
