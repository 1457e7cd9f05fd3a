/*
 * test_train_threads.c - the fast training path (src/train/fast.c) against the scalar
 * reference (layers.c, itself checked against PyTorch by test_train_grad and
 * test_train_step), bit for bit, on 1, 2 and 3 threads.
 *
 * A few AdamW steps with two accumulated micro-batches in float mode, ternary mode and
 * at lambda 0.5, from the same seed: every loss, every gradient norm and, at the end,
 * every parameter and AdamW moment must be the same bits as the reference run's, for
 * every thread count. The shape is small (the run takes well under a second under
 * valgrind) but reaches every path of the fast code: n_embd 128 makes the ternary
 * forward of q, k, v, o, gate and up run on the engine's I2_S kernels, n_ff 192 (not a
 * multiple of 128) makes the down projection take the integer loop; 21 rows and a
 * vocabulary of 50 leave partial tiles in both directions of the products; and the
 * output layer's d x, whose sum runs over the vocabulary, is long enough for this
 * shape's packing buffer to take it in chunks.
 *
 * Also: the same seed gives the same bits twice, and a thread count out of range is
 * refused with the model unchanged.
 *
 * Under valgrind (BITNET_TEST_UNDER_VALGRIND=1) only 2 threads are compared, in float
 * and ternary mode, and the repeat is left out: the whole set takes a minute there.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "check.h"
#include "train/train.h"

#define STEPS 3
/* float sums against the reference: as test_train_step's bounds against PyTorch */
#define LOSS_TOL  1e-5
#define NORM_RTOL 1e-5
#define PARAM_TOL 5e-4   /* largest |difference| of a parameter */
#define PARAM_RMS 1e-5   /* root mean square of the differences */

/* What a run leaves: its losses and norms, then the parameters and moments. */
typedef struct run_result {
    float  loss[STEPS];
    double norm[STEPS];
    float *state;   /* params, adam_m, adam_v */
} run_result;

static bn_train_config shape(void)
{
    return (bn_train_config){.n_embd = 128, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                             .n_ff = 192, .n_ctx = 7, .n_vocab = 50, .rms_eps = 1e-5f,
                             .rope_theta = 10000.0f};
}

/* STEPS steps of the model on `threads` threads (0: the reference path), with every
 * sum in double (exact) or the fast path's float sums. */
static bool run(float lambda, int threads, bool exact, run_result *r)
{
    const bn_train_config cfg = shape();
    const int32_t B = 3, micro = 2;
    bn_train_model *m = NULL;
    CHECK_OK(bn_train_model_new(&cfg, B, &m));
    if (!m)
        return false;
    if (threads == 0)
        m->reference = true;
    else
        CHECK_OK(bn_train_set_threads(m, threads));
    m->exact_sums = exact;
    bn_train_init_params(m, 1234);
    const size_t per = (size_t)B * cfg.n_ctx, n = micro * per;
    int32_t *tok = malloc(n * sizeof *tok), *tgt = malloc(n * sizeof *tgt);
    uint64_t s = 99;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)cfg.n_vocab);
        tgt[i] = (int32_t)((s >> 17) % (uint64_t)cfg.n_vocab);
    }
    bn_train_step_params p = {
        .adamw = bn_adamw_default_params(),
        .lr = {.lr_max = 1e-2, .lr_min = 1e-3, .warmup = 1, .steps = STEPS},
        .clip_norm = 1.0, .n_micro = micro, .lambda = lambda,
    };
    bool ok = true;
    for (int k = 0; k < STEPS && ok; k++) {
        bn_train_step_result res;
        bn_status st = bn_train_step(m, &p, tok, tgt, &res);
        CHECK(st == BN_OK, "step %d: %s", k, bn_last_error());
        ok = st == BN_OK;
        r->loss[k] = res.loss;
        r->norm[k] = res.grad_norm;
    }
    r->state = malloc(3 * m->n_params * sizeof(float));
    memcpy(r->state, m->params, m->n_params * sizeof(float));
    memcpy(r->state + m->n_params, m->adam_m, m->n_params * sizeof(float));
    memcpy(r->state + 2 * m->n_params, m->adam_v, m->n_params * sizeof(float));
    bn_train_model_free(m);
    free(tok);
    free(tgt);
    return ok;
}

/* The number of floats in the state of a run of this shape. */
static size_t state_floats(void)
{
    const bn_train_config cfg = shape();
    bn_train_model *m = NULL;
    CHECK_OK(bn_train_model_new(&cfg, 1, &m));
    size_t n = m ? 3 * m->n_params : 0;
    bn_train_model_free(m);
    return n;
}

static bool under_valgrind;

/* Whether two runs left the same bits; the number of state floats that differ. */
static size_t count_differ(const run_result *a, const run_result *b, size_t n_state)
{
    size_t differ = 0;
    for (size_t i = 0; i < n_state; i++)
        differ += memcmp(&a->state[i], &b->state[i], sizeof(float)) != 0;
    return differ;
}

static bool same_bits(const run_result *a, const run_result *b, size_t n_state)
{
    return memcmp(a->loss, b->loss, sizeof a->loss) == 0 &&
           memcmp(a->norm, b->norm, sizeof a->norm) == 0 && count_differ(a, b, n_state) == 0;
}

static void test_mode(const char *mode, float lambda, size_t n_state)
{
    run_result ref = {0}, got = {0}, fast1 = {0};
    if (!run(lambda, 0, true, &ref))
        return;
    /* exact sums: the reference's bits on any thread count */
    for (int threads = 1; threads <= 3; threads++) {
        if (under_valgrind && threads != 2)
            continue;
        if (run(lambda, threads, true, &got))
            CHECK(same_bits(&ref, &got, n_state), "%s, exact sums, %d threads: %zu of %zu "
                  "parameters and moments, or a loss (%.9g, %.9g) or norm, differ from the "
                  "reference's", mode, threads, count_differ(&ref, &got, n_state), n_state,
                  (double)ref.loss[STEPS - 1], (double)got.loss[STEPS - 1]);
        free(got.state);
    }
    /* float sums: the same bits on any thread count, and near the reference */
    if (run(lambda, 1, false, &fast1)) {
        /* the first step's loss and gradient norm; the parameters after the steps
         * only in float mode: with quantizers, a code that a last-bit difference moves
         * at step k changes everything after it (test_train_step compares whole
         * ternary trajectories with PyTorch, where the codes are checked) */
        const double loss_diff = fabs((double)fast1.loss[0] - ref.loss[0]);
        const double norm_diff = fabs(fast1.norm[0] - ref.norm[0]) / ref.norm[0];
        double param_diff = 0.0, rms = 0.0;
        const size_t n_params = n_state / 3;
        for (size_t i = 0; i < n_params && lambda == 0.0f; i++) {
            const double d = (double)fast1.state[i] - ref.state[i];
            param_diff = fmax(param_diff, fabs(d));
            rms += d * d;
        }
        rms = sqrt(rms / (double)n_params);
        CHECK(loss_diff <= LOSS_TOL && norm_diff <= NORM_RTOL && param_diff <= PARAM_TOL &&
              rms <= PARAM_RMS, "%s, float sums: first loss %.2g, gradient norm %.2g "
              "(relative), parameters %.2g (max), %.2g (rms) from the reference", mode,
              loss_diff, norm_diff, param_diff, rms);
        printf("%-8s float sums: first loss %.2g, gradient norm %.2g (relative)", mode,
               loss_diff, norm_diff);
        if (lambda == 0.0f)
            printf(", parameters after %d steps %.2g (max), %.2g (rms)", STEPS, param_diff,
                   rms);
        printf(" from the reference\n");
        for (int threads = 2; threads <= 3; threads++) {
            if (under_valgrind && threads != 2)
                continue;
            if (run(lambda, threads, false, &got))
                CHECK(same_bits(&fast1, &got, n_state), "%s, float sums, %d threads: "
                      "%zu of %zu parameters and moments, or a loss or norm, differ from "
                      "1 thread's", mode, threads, count_differ(&fast1, &got, n_state),
                      n_state);
            free(got.state);
        }
    }
    /* the losses moved: the steps trained something */
    CHECK(ref.loss[STEPS - 1] < ref.loss[0], "%s: loss %.6g -> %.6g", mode,
          (double)ref.loss[0], (double)ref.loss[STEPS - 1]);
    printf("%-8s losses %.7f .. %.7f: the same bits on the reference and on %s with "
           "exact sums; float sums the same bits on %s\n", mode, (double)ref.loss[0],
           (double)ref.loss[STEPS - 1], under_valgrind ? "2 threads" : "1, 2, 3 threads",
           under_valgrind ? "1 and 2 threads" : "1, 2, 3 threads");
    free(ref.state);
    free(fast1.state);
}

static void test_repeat_and_errors(size_t n_state)
{
    run_result a = {0}, b = {0};
    if (!under_valgrind && run(1.0f, 2, false, &a) && run(1.0f, 2, false, &b))
        CHECK(memcmp(a.state, b.state, n_state * sizeof(float)) == 0 &&
              memcmp(a.loss, b.loss, sizeof a.loss) == 0,
              "the same seed twice gives different bits");
    free(a.state);
    free(b.state);

    const bn_train_config cfg = shape();
    bn_train_model *m = NULL;
    CHECK_OK(bn_train_model_new(&cfg, 1, &m));
    if (!m)
        return;
    CHECK(m->n_threads == 1 && !m->pool, "a new model runs on one thread");
    CHECK(bn_train_set_threads(m, 0) == BN_ERR_INVALID_ARG && m->n_threads == 1,
          "0 threads is refused");
    CHECK(bn_train_set_threads(m, 513) == BN_ERR_INVALID_ARG && m->n_threads == 1,
          "513 threads is refused");
    CHECK_OK(bn_train_set_threads(m, 2));
    CHECK(m->n_threads == 2 && m->pool, "2 threads");
    bn_mem_fail_nth(1);
    CHECK(bn_train_set_threads(m, 3) == BN_ERR_OOM && m->n_threads == 2,
          "an allocation failing leaves the threads as they were");
    bn_mem_fail_nth(0);
    bn_train_model_free(m);
}

int main(void)
{
    const char *vg = getenv("BITNET_TEST_UNDER_VALGRIND");
    under_valgrind = vg && strcmp(vg, "1") == 0;
    const size_t n_state = state_floats();
    if (!under_valgrind)
        test_mode("float", 0.0f, n_state);
    test_mode("ternary", 1.0f, n_state);
    if (!under_valgrind)
        test_mode("lambda", 0.5f, n_state);
    test_repeat_and_errors(n_state);
    CHECK(bn_mem_leak_report() == 0, "blocks left at the end");
    return check_summary("test_train_threads");
}
