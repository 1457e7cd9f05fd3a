/*
 * test_ops.c - tensor operations against NumPy (tests/fixtures/ops.bnfx, made by
 * scripts/fixtures/make_ops.py), plus broadcasting errors, strided inputs, thread-count
 * independence and failure injection.
 *
 * Tolerances: the references are float64 computed from the same float32 inputs.
 * - element-wise add/sub/mul/div: one f32 rounding, so |err| <= 2^-24 |ref|; we allow
 *   rtol 1e-6 (about 16 ulp) plus atol 1e-7 for results near zero.
 * - transcendental ops (exp, log, erf, tanh inside silu/gelu): libm's f32 functions are
 *   within a few ulp, compounded over 2-3 steps: rtol 1e-5, atol 1e-6.
 * - reductions sum in double and round once: rtol 1e-6.
 * - matmul accumulates K products in f32 (K <= 64, |values| <= 3): the error bound is
 *   about K * 2^-24 * sum|a||b| <= 64 * 6e-8 * 576 ~ 2e-3 worst case; typical ~1e-5.
 *   We allow atol 1e-4 + rtol 1e-5.
 * - softmax and rmsnorm: a handful of f32 roundings per element: rtol 1e-5, atol 1e-7.
 */
#include <string.h>

#include "bitnet.h"
#include "check.h"
#include "fail_alloc.h"
#include "fixture.h"

static fx_file *fx;

static const fx_array *get(const char *name)
{
    const fx_array *a = fx_get(fx, name);
    if (!a) {
        fprintf(stderr, "missing fixture array %s\n", name);
        exit(1);
    }
    return a;
}

static bn_tensor *tensor(const char *name)
{
    bn_tensor *t = fx_tensor(get(name));
    if (!t) {
        fprintf(stderr, "cannot make tensor from %s: %s\n", name, bn_last_error());
        exit(1);
    }
    return t;
}

/* Compares an f32 (or i32) tensor element by element with a fixture array. */
static void expect(const char *what, const bn_tensor *t, const char *ref_name, double atol,
                   double rtol)
{
    const fx_array *r = get(ref_name);
    bn_shape s = bn_tensor_shape(t);
    int same = s.ndim == r->ndim;
    for (int i = 0; same && i < s.ndim; i++)
        same = s.dim[i] == r->shape[i];
    CHECK(same, "%s: shape differs from %s", what, ref_name);
    if (!same)
        return;
    int64_t n = bn_tensor_numel(t);
    double *vals = malloc((size_t)(n ? n : 1) * sizeof(double));
    float *tmp = malloc((size_t)(n ? n : 1) * sizeof(float));
    int32_t *itmp = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (bn_tensor_dtype(t) == BN_I32) {
        CHECK_OK(bn_tensor_read(t, BN_I32, itmp, (size_t)n * 4));
        for (int64_t i = 0; i < n; i++)
            vals[i] = itmp[i];
    } else {
        CHECK_OK(bn_tensor_read(t, BN_F32, tmp, (size_t)n * 4));
        for (int64_t i = 0; i < n; i++)
            vals[i] = tmp[i];
    }
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!check_close(vals[i], fx_at(r, i), atol, rtol)) {
            if (bad++ < 5)
                fprintf(stderr, "%s: [%lld] = %.9g, numpy %.9g\n", what, (long long)i,
                        vals[i], fx_at(r, i));
        }
    }
    CHECK(bad == 0, "%s: %d of %lld elements differ from %s", what, bad, (long long)n,
          ref_name);
    free(vals);
    free(tmp);
    free(itmp);
}

static void test_binary(void)
{
    const char *names[] = {"add", "sub", "mul", "div"};
    for (int n = 0; n < 8; n++) {
        char an[64], bnm[64], rn[64], what[64];
        snprintf(an, sizeof an, "bin.%d.a", n);
        snprintf(bnm, sizeof bnm, "bin.%d.b", n);
        bn_tensor *a = tensor(an), *b = tensor(bnm);
        for (int op = 0; op < 4; op++) {
            bn_tensor *r = NULL;
            CHECK_OK(bn_op_binary((bn_binary_op)op, a, b, &r));
            snprintf(rn, sizeof rn, "bin.%d.%s", n, names[op]);
            snprintf(what, sizeof what, "%s case %d", names[op], n);
            if (r)
                expect(what, r, rn, 1e-7, 1e-6);
            bn_tensor_free(r);
        }
        bn_tensor_free(a);
        bn_tensor_free(b);
    }
    /* the named wrappers are the same ops */
    bn_tensor *a = tensor("bin.0.a"), *b = tensor("bin.0.b"), *r = NULL;
    CHECK_OK(bn_op_add(a, b, &r)); expect("bn_op_add", r, "bin.0.add", 1e-7, 1e-6); bn_tensor_free(r);
    CHECK_OK(bn_op_sub(a, b, &r)); expect("bn_op_sub", r, "bin.0.sub", 1e-7, 1e-6); bn_tensor_free(r);
    CHECK_OK(bn_op_mul(a, b, &r)); expect("bn_op_mul", r, "bin.0.mul", 1e-7, 1e-6); bn_tensor_free(r);
    CHECK_OK(bn_op_div(a, b, &r)); expect("bn_op_div", r, "bin.0.div", 1e-7, 1e-6); bn_tensor_free(r);
    bn_tensor_free(a);
    bn_tensor_free(b);
}

static void test_broadcast_errors(void)
{
    bn_tensor *a = NULL, *b = NULL, *r = NULL;
    CHECK_OK(bn_tensor_new(BN_F32, 2, (int64_t[]){2, 3}, &a));
    CHECK_OK(bn_tensor_new(BN_F32, 1, (int64_t[]){4}, &b));
    CHECK(bn_op_add(a, b, &r) == BN_ERR_SHAPE, "[2,3] + [4] must fail");
    CHECK(r == NULL, "no output on failure");
    CHECK(strstr(bn_last_error(), "[2, 3]") && strstr(bn_last_error(), "[4]"),
          "message names both shapes: %s", bn_last_error());
    bn_tensor *i8 = NULL;
    CHECK_OK(bn_tensor_new(BN_I8, 1, (int64_t[]){3}, &i8));
    CHECK(bn_op_mul(a, i8, &r) == BN_ERR_DTYPE, "i8 operand must fail");
    CHECK(strstr(bn_last_error(), "i8") != NULL, "message names the dtype: %s",
          bn_last_error());
    CHECK(bn_op_matmul(a, a, &r) == BN_ERR_SHAPE, "[2,3] x [2,3] must fail");
    CHECK(strstr(bn_last_error(), "[2, 3]") != NULL, "matmul message: %s", bn_last_error());
    CHECK(bn_op_reduce(BN_SUM, a, 2, false, &r) == BN_ERR_INVALID_ARG, "axis 2 of 2-D");
    CHECK(bn_op_rmsnorm(a, b, 1e-5f, &r) == BN_ERR_SHAPE, "rmsnorm weight mismatch");
    CHECK(bn_op_rmsnorm(a, NULL, 0.0f, &r) == BN_ERR_INVALID_ARG, "rmsnorm eps 0");
    bn_tensor *empty = NULL;
    CHECK_OK(bn_tensor_new(BN_F32, 2, (int64_t[]){3, 0}, &empty));
    CHECK(bn_op_reduce(BN_MAX, empty, 1, false, &r) == BN_ERR_SHAPE, "max of empty axis");
    CHECK_OK(bn_op_reduce(BN_SUM, empty, 1, false, &r));
    if (r) {
        CHECK(bn_tensor_numel(r) == 3 && bn_tensor_get(r, (int64_t[]){1}) == 0.0,
              "sum over an empty axis is 0");
        bn_tensor_free(r);
    }
    bn_tensor_free(empty);
    bn_tensor_free(i8);
    bn_tensor_free(a);
    bn_tensor_free(b);
}

static void test_scalar_ops(void)
{
    const char *names[] = {"add", "sub", "mul", "div"};
    bn_tensor *a = tensor("sc.a");
    float s = (float)fx_at(get("sc.s"), 0);
    for (int op = 0; op < 4; op++) {
        for (int rev = 0; rev < 2; rev++) {
            bn_tensor *r = NULL;
            char rn[64];
            snprintf(rn, sizeof rn, "sc.%s%s", names[op], rev ? ".rev" : "");
            CHECK_OK(bn_op_scalar((bn_binary_op)op, a, s, rev, &r));
            if (r)
                expect(rn, r, rn, 1e-7, 1e-6);
            bn_tensor_free(r);
        }
    }
    bn_tensor_free(a);
}

static void test_unary(void)
{
    static const struct {
        bn_unary_op op;
        const char *name;
        const char *input;
    } cases[] = {
        {BN_NEG, "un.neg", "un.x"},     {BN_ABS, "un.abs", "un.x"},
        {BN_SQRT, "un.sqrt", "un.pos"}, {BN_EXP, "un.exp", "un.x"},
        {BN_LOG, "un.log", "un.pos"},   {BN_RELU, "un.relu", "un.x"},
        {BN_RELU_SQR, "un.relu_sqr", "un.x"}, {BN_SILU, "un.silu", "un.x"},
        {BN_GELU, "un.gelu", "un.x"},   {BN_GELU_TANH, "un.gelu_tanh", "un.x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bn_tensor *x = tensor(cases[i].input), *r = NULL;
        CHECK_OK(bn_op_unary(cases[i].op, x, &r));
        if (r)
            expect(cases[i].name, r, cases[i].name, 1e-6, 1e-5);
        bn_tensor_free(r);
        bn_tensor_free(x);
    }
    /* squared ReLU is not SiLU: a regression guard for the FFN activation */
    bn_tensor *x = NULL, *r1 = NULL, *r2 = NULL;
    CHECK_OK(bn_tensor_from_data(BN_F32, 1, (int64_t[]){3}, (float[]){-1.0f, 0.5f, 2.0f}, &x));
    CHECK_OK(bn_op_unary(BN_RELU_SQR, x, &r1));
    CHECK_OK(bn_op_unary(BN_SILU, x, &r2));
    CHECK(bn_tensor_get(r1, (int64_t[]){0}) == 0.0 && bn_tensor_get(r1, (int64_t[]){2}) == 4.0,
          "relu^2(-1) = 0, relu^2(2) = 4");
    CHECK(bn_tensor_get(r2, (int64_t[]){0}) < 0.0, "silu(-1) < 0");
    bn_tensor_free(x);
    bn_tensor_free(r1);
    bn_tensor_free(r2);
}

static void test_reduce(void)
{
    const char *names[] = {"sum", "mean", "max", "min", "argmax"};
    bn_tensor *a = tensor("red.a");
    for (int op = 0; op < 5; op++) {
        for (int axis = 0; axis < 3; axis++) {
            char rn[64];
            snprintf(rn, sizeof rn, "red.%s.%d", names[op], axis);
            bn_tensor *r = NULL;
            CHECK_OK(bn_op_reduce((bn_reduce_op)op, a, axis, false, &r));
            if (r) {
                CHECK(bn_tensor_dtype(r) == (op == BN_ARGMAX ? BN_I32 : BN_F32), "%s dtype", rn);
                expect(rn, r, rn, 1e-6, 1e-6);
            }
            bn_tensor_free(r);
            /* keepdims keeps the axis with size 1; negative axes count back */
            CHECK_OK(bn_op_reduce((bn_reduce_op)op, a, axis - 3, true, &r));
            if (r) {
                CHECK(bn_tensor_ndim(r) == 3 && bn_tensor_dim(r, axis) == 1,
                      "%s keepdims shape", rn);
                CHECK(bn_tensor_numel(r) == 60 / bn_tensor_dim(a, axis), "%s numel", rn);
            }
            bn_tensor_free(r);
        }
    }
    bn_tensor_free(a);
    bn_tensor *n = tensor("red.nan"), *r = NULL;
    CHECK_OK(bn_op_reduce(BN_MAX, n, 1, false, &r));
    if (r)
        expect("max with NaN", r, "red.nan.max.1", 0, 0);
    bn_tensor_free(r);
    CHECK_OK(bn_op_reduce(BN_ARGMAX, n, 1, false, &r));
    if (r)
        expect("argmax with NaN", r, "red.nan.argmax.1", 0, 0);
    bn_tensor_free(r);
    bn_tensor_free(n);
}

static void test_matmul(void)
{
    for (int n = 0; n < 6; n++) {
        char an[32], bnm[32], rn[32];
        snprintf(an, sizeof an, "mm.%d.a", n);
        snprintf(bnm, sizeof bnm, "mm.%d.b", n);
        snprintf(rn, sizeof rn, "mm.%d.out", n);
        bn_tensor *a = tensor(an), *b = tensor(bnm), *r = NULL;
        CHECK_OK(bn_op_matmul(a, b, &r));
        if (r)
            expect(rn, r, rn, 1e-4, 1e-5);
        bn_tensor_free(r);
        bn_tensor_free(a);
        bn_tensor_free(b);
    }
    /* strided operands: a^T^T and b given as a transposed view of b^T */
    bn_tensor *a = tensor("mm.0.a"), *b = tensor("mm.0.b");
    bn_tensor *bt = NULL, *btc = NULL, *bview = NULL, *at = NULL, *atc = NULL, *aview = NULL;
    bn_tensor *r = NULL;
    CHECK_OK(bn_tensor_transpose(b, 0, 1, &bt));
    CHECK_OK(bn_tensor_contiguous(bt, &btc));
    CHECK_OK(bn_tensor_transpose(btc, 0, 1, &bview));
    CHECK_OK(bn_tensor_transpose(a, 0, 1, &at));
    CHECK_OK(bn_tensor_contiguous(at, &atc));
    CHECK_OK(bn_tensor_transpose(atc, 0, 1, &aview));
    CHECK(!bn_tensor_is_contiguous(aview) && !bn_tensor_is_contiguous(bview), "views");
    CHECK_OK(bn_op_matmul(aview, bview, &r));
    if (r)
        expect("matmul of strided views", r, "mm.0.out", 1e-4, 1e-5);
    bn_tensor_free(r);
    bn_tensor *objs[] = {a, b, bt, btc, bview, at, atc, aview};
    for (size_t i = 0; i < 8; i++)
        bn_tensor_free(objs[i]);
}

static void test_softmax_rmsnorm(void)
{
    for (int n = 0; n < 4; n++) {
        char xn[32], an[32], rn[32];
        snprintf(xn, sizeof xn, "sm.%d.x", n);
        snprintf(an, sizeof an, "sm.%d.axis", n);
        snprintf(rn, sizeof rn, "sm.%d.out", n);
        bn_tensor *x = tensor(xn), *r = NULL;
        CHECK_OK(bn_op_softmax(x, (int)fx_at(get(an), 0), &r));
        if (r)
            expect(rn, r, rn, 1e-7, 1e-5);
        bn_tensor_free(r);
        bn_tensor_free(x);
    }
    for (int n = 0; n < 3; n++) {
        char xn[32], wn[32], en[32], rn[32];
        snprintf(xn, sizeof xn, "rms.%d.x", n);
        snprintf(wn, sizeof wn, "rms.%d.w", n);
        snprintf(en, sizeof en, "rms.%d.eps", n);
        snprintf(rn, sizeof rn, "rms.%d.out", n);
        bn_tensor *x = tensor(xn), *w = n == 1 ? NULL : tensor(wn), *r = NULL;
        CHECK_OK(bn_op_rmsnorm(x, w, (float)fx_at(get(en), 0), &r));
        if (r)
            expect(rn, r, rn, 1e-7, 1e-5);
        bn_tensor_free(r);
        bn_tensor_free(x);
        bn_tensor_free(w);
    }
}

/* Fills t with a deterministic pseudo-random pattern. */
static void fill_pattern(bn_tensor *t, uint32_t seed)
{
    float *p = bn_tensor_data(t);
    for (int64_t i = 0; i < bn_tensor_numel(t); i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

/* Runs every op at the current thread count into outs[]. */
static int run_all(bn_tensor *a, bn_tensor *b, bn_tensor *m1, bn_tensor *m2,
                   bn_tensor **outs)
{
    int k = 0;
    CHECK_OK(bn_op_add(a, b, &outs[k++]));
    CHECK_OK(bn_op_unary(BN_GELU, a, &outs[k++]));
    CHECK_OK(bn_op_reduce(BN_SUM, a, 0, false, &outs[k++]));
    CHECK_OK(bn_op_softmax(a, 1, &outs[k++]));
    CHECK_OK(bn_op_rmsnorm(a, NULL, 1e-5f, &outs[k++]));
    CHECK_OK(bn_op_matmul(m1, m2, &outs[k++]));
    return k;
}

static void test_thread_independence(void)
{
    bn_tensor *a = NULL, *b = NULL, *m1 = NULL, *m2 = NULL;
    CHECK_OK(bn_tensor_new(BN_F32, 2, (int64_t[]){300, 301}, &a));
    CHECK_OK(bn_tensor_new(BN_F32, 1, (int64_t[]){301}, &b));
    CHECK_OK(bn_tensor_new(BN_F32, 2, (int64_t[]){123, 257}, &m1));
    CHECK_OK(bn_tensor_new(BN_F32, 2, (int64_t[]){257, 99}, &m2));
    fill_pattern(a, 1);
    fill_pattern(b, 2);
    fill_pattern(m1, 3);
    fill_pattern(m2, 4);
    bn_tensor *ref[8] = {0}, *got[8] = {0};
    CHECK_OK(bn_set_num_threads(1));
    int k = run_all(a, b, m1, m2, ref);
    int counts[] = {2, 3, 5};
    for (int c = 0; c < 3; c++) {
        CHECK_OK(bn_set_num_threads(counts[c]));
        run_all(a, b, m1, m2, got);
        for (int i = 0; i < k; i++) {
            CHECK(ref[i] && got[i] &&
                  memcmp(bn_tensor_data(ref[i]), bn_tensor_data(got[i]),
                         bn_tensor_nbytes(ref[i])) == 0,
                  "op %d differs between 1 and %d threads", i, counts[c]);
            bn_tensor_free(got[i]);
            got[i] = NULL;
        }
    }
    for (int i = 0; i < k; i++)
        bn_tensor_free(ref[i]);
    bn_tensor_free(a);
    bn_tensor_free(b);
    bn_tensor_free(m1);
    bn_tensor_free(m2);
    CHECK_OK(bn_set_num_threads(0));
}


static void test_failure_injection(void)
{
    bn_tensor *a = tensor("mm.1.a"), *b = tensor("mm.1.b"), *r = NULL;
    bn_tensor *x = tensor("bin.2.a"), *y = tensor("bin.2.b"), *w = tensor("rms.0.w");
    bn_tensor *xr = tensor("rms.0.x"), *at = NULL;
    CHECK_OK(bn_tensor_transpose(a, 1, 2, &at));
    bn_set_num_threads(1); /* the pool's own allocations are tested in test_threads */
    FAIL_EACH_ALLOC("binary", bn_op_add(x, y, &r), &r);
    FAIL_EACH_ALLOC("scalar", bn_op_scalar(BN_MUL, x, 2.0f, false, &r), &r);
    FAIL_EACH_ALLOC("unary", bn_op_unary(BN_EXP, x, &r), &r);
    FAIL_EACH_ALLOC("reduce", bn_op_reduce(BN_ARGMAX, x, 1, true, &r), &r);
    FAIL_EACH_ALLOC("softmax", bn_op_softmax(x, -1, &r), &r);
    FAIL_EACH_ALLOC("rmsnorm", bn_op_rmsnorm(xr, w, 1e-5f, &r), &r);
    FAIL_EACH_ALLOC("matmul", bn_op_matmul(a, b, &r), &r);
    /* a strided a takes the gather path, with one more allocation */
    bn_tensor *bt = NULL;
    CHECK_OK(bn_tensor_transpose(b, 0, 1, &bt));
    FAIL_EACH_ALLOC("matmul strided", bn_op_matmul(at, a, &r), &r);
    bn_tensor_free(bt);
    bn_tensor *objs[] = {a, b, x, y, w, xr, at};
    for (size_t i = 0; i < 7; i++)
        bn_tensor_free(objs[i]);
    bn_set_num_threads(0);
}

int main(void)
{
    fx = fx_open("ops.bnfx");
    if (!fx)
        return 1;
    bn_mem_stats start;
    bn_mem_get_stats(&start);
    test_binary();
    test_broadcast_errors();
    test_scalar_ops();
    test_unary();
    test_reduce();
    test_matmul();
    test_softmax_rmsnorm();
    test_thread_independence();
    test_failure_injection();
    fx_close(fx);
    bn_mem_stats end;
    bn_mem_get_stats(&end);
    CHECK(end.live_blocks == start.live_blocks, "blocks leaked: %lld",
          (long long)(end.live_blocks - start.live_blocks));
    return check_summary("test_ops");
}
