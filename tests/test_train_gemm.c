/*
 * test_train_gemm.c - the training's float matrix products (bn_train_gemm_f32,
 * src/train/fast.c) against the definition written out here: each element of C is one
 * float accumulator that starts at zero and takes fmaf(A(i, k), B(k, j), acc) for k
 * ascending, then is stored in C or added to it. Bit for bit, on 1, 2 and 3 threads.
 *
 * The shapes reach every path of the driver: sums of at most one chunk of B (256 rows),
 * sums of several chunks with all of A packed at once, and a sum too long for the
 * packing buffer (as the output layer's d x over the vocabulary), taken in chunks of
 * A; an A of more than one block of row panels (1.5 MiB), and more column panels than
 * are packed together (16) for a short sum; partial register tiles
 * (12 x 32) in both directions; and each operand read along its rows or along its
 * columns, as the model's products read them.
 *
 * And the softmax's normalization (bn_train_softmax_normalize), which multiplies by
 * 1 / sum where that gives the division's float: against (float)((double)e / sum), on
 * random rows and on rows built so that quotients fall within a few ulp of a float's
 * rounding midpoint or below 2^-125, where it must divide.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "check.h"
#include "train/train.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(int32_t)(rng_state >> 32) * 0x1p-31);
}

static int64_t bn_rup12(int64_t x) { return (x + 11) / 12 * 12; }

typedef struct shape {
    int64_t M, N, K;
    const char *what;
} shape;

/* One product on one layout: a, b and c along rows (1) or columns (0). */
static void check_one(bn_train_model *m, const shape *sh, int a_rows, int b_rows,
                      int c_rows, bool add, int threads)
{
    const int64_t M = sh->M, N = sh->N, K = sh->K;
    float *a = malloc((size_t)(M * K + 1) * sizeof *a);
    float *b = malloc((size_t)(K * N + 1) * sizeof *b);
    float *c = malloc((size_t)(M * N + 1) * sizeof *c);
    float *want = malloc((size_t)(M * N + 1) * sizeof *want);
    for (int64_t i = 0; i < M * K; i++)
        a[i] = rnd();
    for (int64_t i = 0; i < K * N; i++)
        b[i] = rnd() * (i % 7 == 0 ? 1024.0f : 1.0f);
    for (int64_t i = 0; i < M * N; i++)
        c[i] = want[i] = rnd();
    const int64_t a_rs = a_rows ? K : 1, a_cs = a_rows ? 1 : M;
    const int64_t b_rs = b_rows ? N : 1, b_cs = b_rows ? 1 : K;
    const int64_t c_rs = c_rows ? N : 1, c_cs = c_rows ? 1 : M;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k++)
                acc = fmaf(a[i * a_rs + k * a_cs], b[k * b_rs + j * b_cs], acc);
            float *w = &want[i * c_rs + j * c_cs];
            *w = add ? *w + acc : acc;
        }
    bn_train_gemm_f32(m, M, N, K, a, a_rs, a_cs, b, b_rs, b_cs, c, c_rs, c_cs, add);
    int64_t bad = 0;
    for (int64_t i = 0; i < M * N; i++)
        bad += memcmp(&c[i], &want[i], sizeof *c) != 0;
    CHECK(bad == 0, "%s (%lld x %lld x %lld) a %s b %s c %s %s, %d threads: %lld of %lld "
          "elements differ", sh->what, (long long)M, (long long)N, (long long)K,
          a_rows ? "rows" : "cols", b_rows ? "rows" : "cols", c_rows ? "rows" : "cols",
          add ? "added" : "stored", threads, (long long)bad, (long long)(M * N));
    free(a);
    free(b);
    free(c);
    free(want);
}

/* Whether the double q lies within 4 ulp of a float's rounding midpoint. */
static bool near_midpoint(double q)
{
    uint64_t bits;
    memcpy(&bits, &q, sizeof bits);
    const int64_t low = (int64_t)(bits & 0x1fffffff) - 0x10000000;
    return low >= -4 && low <= 4;
}

static void check_normalize(void)
{
    enum { V = 1003 };
    static float e[V], pr[V];
    uint64_t state = 12345;
    int near = 0, tiny = 0;
    for (int row = 0; row < 400; row++) {
        double sum = 0.0;
        for (int v = 0; v < V; v++) {
            state = state * 6364136223846793005u + 1442695040888963407u;
            const double u = (double)(state >> 11) * 0x1p-53;
            e[v] = (float)exp(-87.0 * u * u * u);   /* exp(-87) .. 1 */
            sum += e[v];
        }
        if (row % 2 == 1) {
            /* quotients near midpoints: for a float f and its midpoint m = f + ulp / 2,
             * sum = e / m, so that e / sum is m to within an ulp of a double */
            const double m = 0.75 + (double)(row % 97) * 0x1p-24 + 0x1p-25;
            sum = (double)e[0] / m;
            for (int v = 1; v < V; v += 7)
                e[v] = (float)(sum * (0.5 + (double)(v % 89) * 0x1p-23 + 0x1p-24));
            e[3] = 1e-38f;   /* below 2^-125 once divided */
        }
        bn_train_softmax_normalize(pr, e, V, sum);
        int bad = 0;
        for (int v = 0; v < V; v++) {
            const float want = (float)((double)e[v] / sum);
            bad += memcmp(&pr[v], &want, sizeof want) != 0;
            near += near_midpoint((double)e[v] * (1.0 / sum));
            tiny += (double)e[v] / sum < 0x1p-125;
        }
        CHECK(bad == 0, "softmax normalization, row %d: %d floats differ from the division",
              row, bad);
    }
    CHECK(near > 100 && tiny > 100, "the rows reach near-midpoint quotients (%d) and tiny "
          "ones (%d) too rarely", near, tiny);
}

int main(void)
{
    check_normalize();
    /* a small model (27 rows a step): its buffers hold A whole for a projection's
     * products, and for 12 rows of A by 700 of k, but the output's d x (40 rows by
     * k = 700) only in chunks of 256 */
    const bn_train_config cfg = {.n_embd = 40, .n_layer = 1, .n_head = 4, .n_head_kv = 2,
                                 .n_ff = 56, .n_ctx = 9, .n_vocab = 700, .rms_eps = 1e-5f,
                                 .rope_theta = 10000.0f};
    bn_train_model *m = NULL;
    CHECK_OK(bn_train_model_new(&cfg, 3, &m));
    if (!m)
        return check_summary("test_train_gemm");
    const shape shapes[] = {
        {27, 56, 40, "a projection's d x (one chunk)"},
        {56, 40, 27, "a projection's d W"},
        {27, 700, 40, "the logits"},
        {27, 700, 256, "column panels in two blocks (one thread)"},
        {40, 700, 27, "the output's d embedding"},
        {40, 27, 700, "the output's d x (A in chunks)"},
        {7, 27, 700, "several chunks of B, all of A at once"},
        {1, 1, 1, "one element"},
        {5, 3, 0, "an empty sum"},
    };
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    /* the two long sums take the two orders */
    CHECK(48 * 700 > 2 * (int64_t)m->gemm_a_cap,
          "the output's d x fits A whole: the test no longer reaches the chunked order");
    CHECK(12 * 700 <= 2 * (int64_t)m->gemm_a_cap, "7 x 700 no longer fits A whole");
    for (int threads = 1; threads <= 3; threads++) {
        CHECK_OK(bn_train_set_threads(m, threads));
        for (int s = 0; s < nshapes; s++) {
            CHECK(bn_train_gemm_f32_fits(m, shapes[s].M, shapes[s].N, shapes[s].K),
                  "%s does not fit the model's buffers", shapes[s].what);
            for (int layout = 0; layout < 8; layout++)
                check_one(m, &shapes[s], layout & 1, (layout >> 1) & 1, (layout >> 2) & 1,
                          (layout + s + threads) % 2 == 0, threads);
        }
    }
    bn_train_model_free(m);

    /* a larger model (768 rows a step, n_ff 600): A of 480 rows by k = 900, or 1700
     * rows by 250, is more than one block of row panels of 1.5 MiB of floats (the
     * block where the second-level cache is 2 MiB or more), and of 37 K floats, many blocks;
     * the host's own block (6 MiB where that cache is smaller) takes them whole */
    const bn_train_config big = {.n_embd = 64, .n_layer = 1, .n_head = 4, .n_head_kv = 2,
                                 .n_ff = 600, .n_ctx = 64, .n_vocab = 100, .rms_eps = 1e-5f,
                                 .rope_theta = 10000.0f};
    CHECK_OK(bn_train_model_new(&big, 12, &m));
    if (!m)
        return check_summary("test_train_gemm");
    const shape blocks[] = {
        {480, 33, 900, "row panels in two blocks, several chunks of B"},
        {1700, 33, 250, "row panels in two blocks, one chunk of B"},
    };
    const int64_t planned = m->gemm_a_block;
    const int64_t block_sizes[] = {384 * 1024, 37 * 1024, planned};
    for (int bs = 0; bs < 3; bs++) {
        m->gemm_a_block = block_sizes[bs];
        for (int threads = 1; threads <= 2; threads++) {
            CHECK_OK(bn_train_set_threads(m, threads));
            for (int s = 0; s < 2; s++) {
                CHECK(bn_train_gemm_f32_fits(m, blocks[s].M, blocks[s].N, blocks[s].K) &&
                          (bs == 2 || bn_rup12(blocks[s].M) * blocks[s].K > m->gemm_a_block),
                      "%s: the shape no longer takes two blocks", blocks[s].what);
                check_one(m, &blocks[s], 1, 1, 1, threads == 1, threads);
                check_one(m, &blocks[s], 0, 0, 0, threads == 2, threads);
            }
        }
    }
    CHECK(planned == 384 * 1024 || planned == 1536 * 1024, "the planned block is %lld floats",
          (long long)planned);
    bn_train_model_free(m);
    CHECK(bn_mem_leak_report() == 0, "blocks left at the end");
    return check_summary("test_train_gemm");
}
