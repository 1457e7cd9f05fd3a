/*
 * test_ternary.c - the BitNet b1.58 weight and activation quantizers against a PyTorch
 * reference written from the paper (tests/fixtures/ternary.bnfx, made by
 * scripts/fixtures/make_ternary.py). Codes must match exactly and scales bit for bit:
 * both sides do the same float32 arithmetic, with the mean accumulated in double.
 */
#include <math.h>
#include <string.h>

#include "bitnet.h"
#include "check.h"
#include "fixture.h"

static fx_file *fx;

static const fx_array *get(const char *fmt, int n)
{
    char name[64];
    snprintf(name, sizeof name, fmt, n);
    const fx_array *a = fx_get(fx, name);
    if (!a)
        exit(1);
    return a;
}

static void test_weights(void)
{
    for (int n = 0; n < 8; n++) {
        const fx_array *w = get("w.%d", n), *wq = get("w.%d.q", n), *ws = get("w.%d.scale", n);
        bn_ternary_params p = bn_ternary_default_params();
        p.granularity = (bn_ternary_granularity)fx_at(get("w.%d.mode", n), 0);
        p.group_size = (int64_t)fx_at(get("w.%d.group", n), 0);
        int64_t rows = w->shape[0], cols = w->shape[1];
        int64_t ns = bn_ternary_n_scales(&p, cols, rows);
        CHECK(ns == ws->numel, "case %d: %lld scales, torch has %lld", n, (long long)ns,
              (long long)ws->numel);
        int8_t *q = malloc((size_t)(rows * cols));
        float *s = malloc((size_t)(ns > 0 ? ns : 1) * sizeof(float));
        CHECK_OK(bn_ternarize(w->data, cols, rows, &p, q, s));
        int bad = 0;
        for (int64_t i = 0; i < rows * cols; i++)
            bad += q[i] != (int8_t)fx_at(wq, i);
        CHECK(bad == 0, "case %d: %d codes differ from torch", n, bad);
        for (int64_t i = 0; i < ns && i < ws->numel; i++)
            CHECK(s[i] == (float)fx_at(ws, i), "case %d: scale %lld = %.9g, torch %.9g", n,
                  (long long)i, s[i], fx_at(ws, i));
        free(q);
        free(s);
    }
    /* the contract's details, stated directly */
    float ties[4] = {0.5f, -0.5f, 1.5f, 1.5f};
    int8_t q[8];
    float g;
    CHECK_OK(bn_ternarize(ties, 4, 1, NULL, q, &g));
    CHECK(g == 1.0f && q[0] == 0 && q[1] == 0 && q[2] == 1 && q[3] == 1,
          "half to even: 0.5 -> 0, 1.5 -> 2 -> clamp 1");
    /* quotients at the rounding edges (the last value makes the mean exactly 1), and
     * outliers thousands of times the mean, against the contract with libm's rintf */
    float edges[2][16] = {{0.49999997f, -0.49999997f, 0.50000006f, -0.50000006f, -1.5f, 2.5f,
                           -2.5f, -0.0f, 1.0f, -1.0f, 0.5f, 1.49999988f, -1.50000012f,
                           0.25f, 0.0f, 0.0f},
                          {4096.0f, -3e5f, 1e-3f, -1e-3f, 2e-3f, -2e-3f, 7e-4f, 0.0f, 1e-4f,
                           -1e-4f, 3e-3f, -3e-3f, 5e-3f, -5e-3f, 1e-3f, 1e-3f}};
    double abs_sum = 0.0;
    for (int i = 0; i < 15; i++)
        abs_sum += fabs((double)edges[0][i]);
    edges[0][15] = (float)(16.0 - abs_sum);
    for (int e = 0; e < 2; e++) {
        int8_t eq[16];
        float eg;
        CHECK_OK(bn_ternarize(edges[e], 16, 1, NULL, eq, &eg));
        CHECK(e != 0 || eg == 1.0f, "edge rows: the mean is %.9g, not 1", eg);
        for (int i = 0; i < 16; i++) {
            float r = rintf(edges[e][i] / eg);
            int8_t want = (int8_t)(r > 1.0f ? 1 : r < -1.0f ? -1 : r);
            CHECK(eq[i] == want, "edge row %d, value %d: code %d, rintf gives %d", e, i,
                  eq[i], want);
        }
    }
    float zeros[8] = {0};
    CHECK_OK(bn_ternarize(zeros, 8, 1, NULL, q, &g));
    CHECK(g == 1e-5f && !isnan(g), "all-zero tensor: scale floored at 1e-5, not NaN");
}

static void test_weight_errors(void)
{
    float w[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    int8_t q[12];
    float s[12];
    w[7] = NAN;
    CHECK(bn_ternarize(w, 4, 3, NULL, q, s) == BN_ERR_NUMERIC, "NaN refused");
    CHECK(strstr(bn_last_error(), "NaN at index 7") && strstr(bn_last_error(), "row 1"),
          "names the first bad index: %s", bn_last_error());
    w[7] = 8;
    w[10] = -INFINITY;
    CHECK(bn_ternarize(w, 4, 3, NULL, q, s) == BN_ERR_NUMERIC &&
          strstr(bn_last_error(), "infinity at index 10"), "Inf refused: %s", bn_last_error());
    w[10] = 11;
    bn_ternary_params p = {.granularity = BN_TERNARY_PER_GROUP, .group_size = 3};
    CHECK(bn_ternarize(w, 4, 3, &p, q, s) == BN_ERR_INVALID_ARG, "group 3 of row 4");
    CHECK(strstr(bn_last_error(), "3") && strstr(bn_last_error(), "4"), "%s", bn_last_error());
    CHECK(bn_ternary_n_scales(&p, 4, 3) == 0, "no scales for a bad group");
    p.group_size = 2;
    CHECK(bn_ternary_n_scales(&p, 4, 3) == 6, "6 groups of 2");
    p.granularity = BN_TERNARY_PER_CHANNEL;
    CHECK(bn_ternary_n_scales(&p, 4, 3) == 3, "3 channels");
    CHECK(bn_ternary_n_scales(NULL, 4, 3) == 1, "1 scale per tensor");
    CHECK(bn_ternarize(w, 0, 3, NULL, q, s) == BN_ERR_SHAPE, "empty shape");
}

static void test_detect(void)
{
    float s = 0.7f, scale = -1;
    float t1[6] = {0, s, -s, s, 0, -s}, t2[3] = {s, 2 * s, 0}, t3[3] = {0, 0, 0};
    float t4[3] = {s, NAN, s}, t5[2] = {INFINITY, INFINITY}, t6[3] = {-0.0f, -s, 0};
    CHECK(bn_ternary_detect(t1, 6, &scale) && scale == s, "sign * scale is ternary");
    CHECK(!bn_ternary_detect(t2, 3, &scale), "two magnitudes are not");
    CHECK(bn_ternary_detect(t3, 3, &scale) && scale == 0.0f, "all zero: scale 0");
    CHECK(!bn_ternary_detect(t4, 3, &scale), "NaN is not");
    CHECK(!bn_ternary_detect(t5, 2, &scale), "infinities are not");
    CHECK(bn_ternary_detect(t6, 3, &scale) && scale == s, "-0 counts as zero");
}

static void test_activations(void)
{
    for (int n = 0; n < 5; n++) {
        const fx_array *x = get("x.%d", n), *xq = get("x.%d.q", n), *xs = get("x.%d.scale", n);
        int64_t rows = x->shape[0], cols = x->shape[1];
        int8_t *q = malloc((size_t)cols);
        int bad = 0;
        for (int64_t r = 0; r < rows; r++) {
            float s;
            bn_quantize_act_i8((const float *)x->data + r * cols, cols, q, &s);
            CHECK(s == (float)fx_at(xs, r), "x.%d row %lld: scale %.9g, torch %.9g", n,
                  (long long)r, s, fx_at(xs, r));
            for (int64_t i = 0; i < cols; i++)
                bad += q[i] != (int8_t)fx_at(xq, r * cols + i);
        }
        CHECK(bad == 0, "x.%d: %d codes differ from torch", n, bad);
        free(q);
    }
}

static void test_error_measure(void)
{
    float a[4] = {1, -2, 3, 0}, b[4] = {1, -1, 3, 0};
    bn_quant_error e;
    bn_quant_error_measure(a, b, 4, &e);
    CHECK(e.n == 4 && e.mse == 0.25 && e.max_abs_error == 1.0, "mse of one unit error");
    CHECK_NEAR(e.sqnr_db, 10.0 * log10(14.0 / 1.0), 1e-12, 0);
    CHECK(e.zero_fraction == 0.25, "one zero in four");
    bn_quant_error_measure(a, a, 4, &e);
    CHECK(isinf(e.sqnr_db) && e.mse == 0, "exact copy: infinite SQNR");
}

int main(void)
{
    fx = fx_open("ternary.bnfx");
    if (!fx)
        return 1;
    test_weights();
    test_weight_errors();
    test_detect();
    test_activations();
    test_error_measure();
    fx_close(fx);
    return check_summary("test_ternary");
}
