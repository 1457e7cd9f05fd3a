/*
 * test_linalg.c - the linear-algebra functions of bitnet.h against NumPy references
 * (tests/fixtures/linalg.bnfx, written by scripts/fixtures/make_linalg.py) and against
 * their defining properties, plus their error paths.
 *
 * Values that are unique (determinant, solutions, inverse, eigenvalues, singular
 * values, the Cholesky factor, |R|) are compared with the reference; factors that are
 * unique only up to signs (U, Vt, Q, eigenvectors) are checked through properties:
 * A = Q R with Q^T Q = I and R upper triangular, A = U diag(S) Vt with orthonormal U
 * and Vt, L L^T = A, A V = V diag(W), A inv(A) = I. Then the errors (shapes, dtypes,
 * singular, not positive definite, not symmetric, NaN), strided inputs, and
 * out-of-memory injected into every allocation of every function.
 *
 * Tolerances. The library computes in double from the very f32 values NumPy's float64
 * reference was computed from, so the two double results agree to about
 * cond(A) * 1e-15 (cond <= 77 here); what remains is the final rounding of each output
 * to f32, 2^-24 ~ 6e-8 relative. Hence f32 outputs are compared with rtol 1e-5 plus an
 * atol of 1e-6 of the array's largest magnitude (for elements much smaller than the
 * rest), and det, which stays double, with rtol 1e-9 (its sensitivity is n * cond *
 * eps ~ 1e-12). Properties are recomputed here in double from the f32 factors: an
 * element of Q R sums products each off by ~1.2e-7 relative, bounded by
 * 1.2e-7 * sqrt(n) * max|A|, so 1e-5 * max|A| leaves a wide margin; A inv(A) - I
 * grows with the condition number (|A| |inv| 6e-8 ~ cond * 6e-8), so it gets
 * 1e-6 * cond.
 */
#include <float.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "fixture.h"

#define REF_RTOL 1e-5      /* f32 output vs float64 reference (see the top) */
#define REF_ATOL_REL 1e-6  /* times the reference's largest magnitude */
#define DET_RTOL 1e-9      /* det is returned in double */
#define PROP_TOL 1e-5      /* reconstructions, relative to max|A|; orthogonality */
#define INV_TOL_PER_COND 1e-6

/* ------------------------------------------------------------ double matrices */

/* A row-major double matrix made in the test (a vector is [n, 1]). */
typedef struct dmat {
    int64_t rows, cols;
    double *v;
} dmat;

/* A zero matrix. */
static dmat dmat_zeros(int64_t rows, int64_t cols)
{
    int64_t count = rows * cols > 0 ? rows * cols : 1;
    dmat m = {rows, cols, calloc((size_t)count, sizeof(double))};
    return m;
}

/* The elements of a 1-D or 2-D tensor (any strides), read through the public API. */
static dmat dmat_from_tensor(const bn_tensor *t)
{
    int nd = bn_tensor_ndim(t);
    dmat m = dmat_zeros(bn_tensor_dim(t, 0), nd == 2 ? bn_tensor_dim(t, 1) : 1);
    for (int64_t i = 0; i < m.rows; i++)
        for (int64_t j = 0; j < m.cols; j++) {
            int64_t idx[2] = {i, j};
            m.v[i * m.cols + j] = bn_tensor_get(t, idx);
        }
    return m;
}

/* The elements of a 1-D or 2-D fixture array. */
static dmat dmat_from_fx(const fx_array *a)
{
    dmat m = dmat_zeros(a->shape[0], a->ndim == 2 ? a->shape[1] : 1);
    for (int64_t k = 0; k < a->numel; k++)
        m.v[k] = fx_at(a, k);
    return m;
}

/* op(a) op(b), where op transposes when the flag is set. */
static dmat dmat_mul(dmat a, bool ta, dmat b, bool tb)
{
    int64_t m = ta ? a.cols : a.rows, k = ta ? a.rows : a.cols;
    int64_t n = tb ? b.rows : b.cols;
    dmat c = dmat_zeros(m, n);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t l = 0; l < k; l++)
                s += (ta ? a.v[l * a.cols + i] : a.v[i * a.cols + l]) *
                     (tb ? b.v[j * b.cols + l] : b.v[l * b.cols + j]);
            c.v[i * n + j] = s;
        }
    return c;
}

/* An n x n identity. */
static dmat dmat_eye(int64_t n)
{
    dmat m = dmat_zeros(n, n);
    for (int64_t i = 0; i < n; i++)
        m.v[i * n + i] = 1.0;
    return m;
}

/* m with column j multiplied by d[j]. */
static dmat dmat_scale_cols(dmat m, dmat d)
{
    dmat r = dmat_zeros(m.rows, m.cols);
    for (int64_t i = 0; i < m.rows; i++)
        for (int64_t j = 0; j < m.cols; j++)
            r.v[i * m.cols + j] = m.v[i * m.cols + j] * d.v[j];
    return r;
}

/* max |m_ij|. */
static double dmat_max_abs(dmat m)
{
    double mx = 0.0;
    for (int64_t k = 0; k < m.rows * m.cols; k++)
        mx = fmax(mx, fabs(m.v[k]));
    return mx;
}

/* max |a_ij - b_ij|; infinity when the shapes differ. */
static double dmat_max_diff(dmat a, dmat b)
{
    if (a.rows != b.rows || a.cols != b.cols)
        return INFINITY;
    double mx = 0.0;
    for (int64_t k = 0; k < a.rows * a.cols; k++)
        mx = fmax(mx, fabs(a.v[k] - b.v[k]));
    return mx;
}

static void dmat_free(dmat *m)
{
    free(m->v);
    m->v = NULL;
}

/* ------------------------------------------------------------ fixture access */

static fx_file *g_fx;

/* The fixture array "<name>/<what>" (NULL, printed, when absent). */
static const fx_array *fx_case(const char *name, const char *what)
{
    char key[128];
    snprintf(key, sizeof key, "%s/%s", name, what);
    return fx_get(g_fx, key);
}

/* A new f32 tensor from the fixture array "<name>/<what>". */
static bn_tensor *fx_case_tensor(const char *name, const char *what)
{
    return fx_tensor(fx_case(name, what));
}

/* The scalar "<name>/<what>". */
static double fx_case_scalar(const char *name, const char *what)
{
    const fx_array *a = fx_case(name, what);
    return a ? fx_at(a, 0) : NAN;
}

/* Compares a tensor with a reference array element by element, |got| vs |ref| when
 * `absolute`, within REF_RTOL and REF_ATOL_REL * max|ref|: one CHECK, naming the first
 * mismatch. */
static void check_against_ref(const char *what, const bn_tensor *t, const fx_array *ref,
                              bool absolute)
{
    CHECK(t && ref, "%s: missing tensor or reference", what);
    if (!t || !ref)
        return;
    dmat got = dmat_from_tensor(t), want = dmat_from_fx(ref);
    double atol = REF_ATOL_REL * dmat_max_abs(want);
    int64_t bad = -1;
    bool same_shape = got.rows * got.cols == ref->numel &&
                      bn_tensor_numel(t) == ref->numel && bn_tensor_ndim(t) == ref->ndim;
    for (int64_t k = 0; same_shape && k < ref->numel && bad < 0; k++) {
        double g = absolute ? fabs(got.v[k]) : got.v[k];
        if (!check_close(g, want.v[k], atol, REF_RTOL))
            bad = k;
    }
    CHECK(same_shape && bad < 0, "%s: %s at flat index %lld: got %.9g, want %.9g", what,
          same_shape ? "mismatch" : "shape differs", (long long)bad,
          bad >= 0 ? got.v[bad] : 0.0, bad >= 0 ? want.v[bad] : 0.0);
    dmat_free(&got);
    dmat_free(&want);
}

/* ------------------------------------------------------------ the cases */

enum {
    HAS_SQUARE = 1,   /* det, inv, b1/x1, b3/x3 references */
    HAS_EIG = 2,      /* eigvals */
    HAS_CHOL = 4      /* chol */
};

typedef struct lcase {
    const char *name;
    int         flags;
} lcase;

static const lcase g_cases[] = {
    {"sq1", HAS_SQUARE},  {"sq3", HAS_SQUARE}, {"sq8", HAS_SQUARE}, {"sq33", HAS_SQUARE},
    {"tall", 0},          {"wide", 0},
    {"spd4", HAS_SQUARE | HAS_EIG | HAS_CHOL}, {"spd16", HAS_SQUARE | HAS_EIG | HAS_CHOL},
    {"sym6", HAS_EIG},    {"int4", 0},
};

/* S against the reference, S descending and >= 0, U and Vt orthonormal, A = U S Vt. */
static void test_svd_case(const char *name, const bn_tensor *a, dmat am)
{
    bn_tensor *u = NULL, *s = NULL, *vt = NULL;
    CHECK_OK(bn_linalg_svd(a, &u, &s, &vt));
    if (!u || !s || !vt)
        return;
    char what[64];
    snprintf(what, sizeof what, "%s svd S", name);
    check_against_ref(what, s, fx_case(name, "svd_s"), false);
    dmat um = dmat_from_tensor(u), sm = dmat_from_tensor(s), vm = dmat_from_tensor(vt);
    int64_t k = sm.rows;
    CHECK(um.rows == am.rows && um.cols == k && vm.rows == k && vm.cols == am.cols,
          "%s: svd shapes U [%lld, %lld] Vt [%lld, %lld]", name, (long long)um.rows,
          (long long)um.cols, (long long)vm.rows, (long long)vm.cols);
    bool sorted = true;
    for (int64_t i = 0; i < k; i++)
        sorted = sorted && sm.v[i] >= 0 && (i == 0 || sm.v[i] <= sm.v[i - 1]);
    CHECK(sorted, "%s: singular values not descending and >= 0", name);
    dmat utu = dmat_mul(um, true, um, false), vvt = dmat_mul(vm, false, vm, true);
    dmat eye = dmat_eye(k), us = dmat_scale_cols(um, sm);
    dmat usv = dmat_mul(us, false, vm, false);
    CHECK(dmat_max_diff(utu, eye) <= PROP_TOL, "%s: |U^T U - I| = %g", name,
          dmat_max_diff(utu, eye));
    CHECK(dmat_max_diff(vvt, eye) <= PROP_TOL, "%s: |Vt Vt^T - I| = %g", name,
          dmat_max_diff(vvt, eye));
    CHECK(dmat_max_diff(usv, am) <= PROP_TOL * dmat_max_abs(am), "%s: |U S Vt - A| = %g",
          name, dmat_max_diff(usv, am));
    dmat all[] = {um, sm, vm, utu, vvt, eye, us, usv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        dmat_free(&all[i]);
    bn_tensor_free(u);
    bn_tensor_free(s);
    bn_tensor_free(vt);
}

/* |R| against the reference, R upper triangular, Q^T Q = I, A = Q R. */
static void test_qr_case(const char *name, const bn_tensor *a, dmat am)
{
    bn_tensor *q = NULL, *r = NULL;
    CHECK_OK(bn_linalg_qr(a, &q, &r));
    if (!q || !r)
        return;
    char what[64];
    snprintf(what, sizeof what, "%s qr |R|", name);
    check_against_ref(what, r, fx_case(name, "qr_absr"), true);
    dmat qm = dmat_from_tensor(q), rm = dmat_from_tensor(r);
    int64_t k = am.rows < am.cols ? am.rows : am.cols;
    CHECK(qm.rows == am.rows && qm.cols == k && rm.rows == k && rm.cols == am.cols,
          "%s: qr shapes Q [%lld, %lld] R [%lld, %lld]", name, (long long)qm.rows,
          (long long)qm.cols, (long long)rm.rows, (long long)rm.cols);
    bool upper = true;
    for (int64_t i = 0; i < rm.rows; i++)
        for (int64_t j = 0; j < i && j < rm.cols; j++)
            upper = upper && rm.v[i * rm.cols + j] == 0.0;
    CHECK(upper, "%s: R is not upper triangular", name);
    dmat qtq = dmat_mul(qm, true, qm, false), eye = dmat_eye(k);
    dmat qr = dmat_mul(qm, false, rm, false);
    CHECK(dmat_max_diff(qtq, eye) <= PROP_TOL, "%s: |Q^T Q - I| = %g", name,
          dmat_max_diff(qtq, eye));
    CHECK(dmat_max_diff(qr, am) <= PROP_TOL * dmat_max_abs(am), "%s: |Q R - A| = %g",
          name, dmat_max_diff(qr, am));
    dmat all[] = {qm, rm, qtq, eye, qr};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        dmat_free(&all[i]);
    bn_tensor_free(q);
    bn_tensor_free(r);
}

/* inv against the reference (when there is one) and A inv(A) = I within 1e-6 cond. */
static void test_inv_case(const char *name, const bn_tensor *a, dmat am, bool has_ref)
{
    bn_tensor *inv = NULL;
    CHECK_OK(bn_linalg_inv(a, &inv));
    if (!inv)
        return;
    char what[64];
    snprintf(what, sizeof what, "%s inv", name);
    if (has_ref)
        check_against_ref(what, inv, fx_case(name, "inv"), false);
    dmat im = dmat_from_tensor(inv), prod = dmat_mul(am, false, im, false);
    dmat eye = dmat_eye(am.rows);
    double tol = INV_TOL_PER_COND * fmax(1.0, fx_case_scalar(name, "cond"));
    CHECK(dmat_max_diff(prod, eye) <= tol, "%s: |A inv(A) - I| = %g > %g", name,
          dmat_max_diff(prod, eye), tol);
    dmat_free(&im);
    dmat_free(&prod);
    dmat_free(&eye);
    bn_tensor_free(inv);
}

/* det against the reference; solve for b1 ([n]) and b3 ([n, 3]) against theirs. */
static void test_det_solve_case(const char *name, const bn_tensor *a)
{
    double det = NAN;
    CHECK_OK(bn_linalg_det(a, &det));
    double want = fx_case_scalar(name, "det");
    CHECK(check_close(det, want, 0.0, DET_RTOL), "%s: det %.17g, want %.17g", name, det,
          want);
    const char *rhs[2][2] = {{"b1", "x1"}, {"b3", "x3"}};
    for (int i = 0; i < 2; i++) {
        bn_tensor *b = fx_case_tensor(name, rhs[i][0]), *x = NULL;
        CHECK_OK(bn_linalg_solve(a, b, &x));
        char what[64];
        snprintf(what, sizeof what, "%s solve %s", name, rhs[i][0]);
        check_against_ref(what, x, fx_case(name, rhs[i][1]), false);
        bn_tensor_free(b);
        bn_tensor_free(x);
    }
}

/* W against the reference and ascending, V^T V = I, A V = V diag(W). */
static void test_eigh_case(const char *name, const bn_tensor *a, dmat am)
{
    bn_tensor *w = NULL, *v = NULL;
    CHECK_OK(bn_linalg_eigh(a, &w, &v));
    if (!w || !v)
        return;
    char what[64];
    snprintf(what, sizeof what, "%s eigh W", name);
    check_against_ref(what, w, fx_case(name, "eigvals"), false);
    dmat wm = dmat_from_tensor(w), vm = dmat_from_tensor(v);
    bool ascending = true;
    for (int64_t i = 1; i < wm.rows; i++)
        ascending = ascending && wm.v[i] >= wm.v[i - 1];
    CHECK(ascending, "%s: eigenvalues not ascending", name);
    dmat av = dmat_mul(am, false, vm, false), vw = dmat_scale_cols(vm, wm);
    dmat vtv = dmat_mul(vm, true, vm, false), eye = dmat_eye(am.rows);
    CHECK(dmat_max_diff(av, vw) <= PROP_TOL * dmat_max_abs(am), "%s: |A V - V W| = %g",
          name, dmat_max_diff(av, vw));
    CHECK(dmat_max_diff(vtv, eye) <= PROP_TOL, "%s: |V^T V - I| = %g", name,
          dmat_max_diff(vtv, eye));
    dmat all[] = {wm, vm, av, vw, vtv, eye};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        dmat_free(&all[i]);
    bn_tensor_free(w);
    bn_tensor_free(v);
}

/* L against the reference, L lower triangular, L L^T = A. */
static void test_cholesky_case(const char *name, const bn_tensor *a, dmat am)
{
    bn_tensor *l = NULL;
    CHECK_OK(bn_linalg_cholesky(a, &l));
    if (!l)
        return;
    char what[64];
    snprintf(what, sizeof what, "%s cholesky L", name);
    check_against_ref(what, l, fx_case(name, "chol"), false);
    dmat lm = dmat_from_tensor(l), llt = dmat_mul(lm, false, lm, true);
    bool lower = true;
    for (int64_t i = 0; i < lm.rows; i++)
        for (int64_t j = i + 1; j < lm.cols; j++)
            lower = lower && lm.v[i * lm.cols + j] == 0.0;
    CHECK(lower, "%s: L is not lower triangular", name);
    CHECK(dmat_max_diff(llt, am) <= PROP_TOL * dmat_max_abs(am), "%s: |L L^T - A| = %g",
          name, dmat_max_diff(llt, am));
    dmat_free(&lm);
    dmat_free(&llt);
    bn_tensor_free(l);
}

/* Every check that applies to one fixture case. */
static void test_case(const lcase *c)
{
    bn_tensor *a = fx_case_tensor(c->name, "a");
    CHECK(a != NULL, "%s: no input", c->name);
    if (!a)
        return;
    dmat am = dmat_from_tensor(a);
    test_svd_case(c->name, a, am);
    test_qr_case(c->name, a, am);
    if (am.rows == am.cols)
        test_inv_case(c->name, a, am, c->flags & HAS_SQUARE);
    if (c->flags & HAS_SQUARE)
        test_det_solve_case(c->name, a);
    if (c->flags & HAS_EIG)
        test_eigh_case(c->name, a, am);
    if (c->flags & HAS_CHOL)
        test_cholesky_case(c->name, a, am);
    dmat_free(&am);
    bn_tensor_free(a);
}

/* The integer matrix's determinant is known exactly (-95). */
static void test_known_det(void)
{
    bn_tensor *a = fx_case_tensor("int4", "a");
    double det = NAN, want = fx_case_scalar("int4", "det");
    CHECK_OK(bn_linalg_det(a, &det));
    CHECK(want == -95.0, "int4/det in the fixture is %g, expected -95", want);
    CHECK_NEAR(det, want, 0.0, 1e-12);
    bn_tensor_free(a);
}

/* ------------------------------------------------------------ dispatch */

typedef enum op_id { OP_SVD, OP_QR, OP_CHOLESKY, OP_DET, OP_SOLVE, OP_INV, OP_EIGH,
                     OP_COUNT } op_id;

static const char *const g_op_names[OP_COUNT] = {
    "bn_linalg_svd", "bn_linalg_qr", "bn_linalg_cholesky", "bn_linalg_det",
    "bn_linalg_solve", "bn_linalg_inv", "bn_linalg_eigh",
};

#define DET_UNTOUCHED 12345.0

/* A pointer no function may write: outputs start as this and must stay so on error.*/
static bn_tensor *sentinel(void)
{
    static max_align_t object;
    return (bn_tensor *)(void *)&object;
}

/* Calls operation `op` on a (and b for solve) with outputs in out[0..2] / *det. */
static bn_status run_op(op_id op, const bn_tensor *a, const bn_tensor *b,
                        bn_tensor *out[3], double *det)
{
    switch (op) {
    case OP_SVD:      return bn_linalg_svd(a, &out[0], &out[1], &out[2]);
    case OP_QR:       return bn_linalg_qr(a, &out[0], &out[1]);
    case OP_CHOLESKY: return bn_linalg_cholesky(a, &out[0]);
    case OP_DET:      return bn_linalg_det(a, det);
    case OP_SOLVE:    return bn_linalg_solve(a, b, &out[0]);
    case OP_INV:      return bn_linalg_inv(a, &out[0]);
    default:          return bn_linalg_eigh(a, &out[0], &out[1]);
    }
}

/* Fills the outputs with sentinels. */
static void outs_reset(bn_tensor *out[3], double *det)
{
    for (int i = 0; i < 3; i++)
        out[i] = sentinel();
    *det = DET_UNTOUCHED;
}

/* True when no output was written. */
static bool outs_untouched(bn_tensor *const out[3], double det)
{
    return out[0] == sentinel() && out[1] == sentinel() && out[2] == sentinel() &&
           det == DET_UNTOUCHED;
}

/* Frees the outputs a successful call wrote. */
static void outs_free(bn_tensor *out[3])
{
    for (int i = 0; i < 3; i++)
        if (out[i] != sentinel())
            bn_tensor_free(out[i]);
}

/* Current live block count of the tracking allocator. */
static uint64_t live_blocks(void)
{
    bn_mem_stats s;
    bn_mem_get_stats(&s);
    return s.live_blocks;
}

/* Runs op and checks that it fails with `want`, leaves the outputs alone, leaks
 * nothing, and says something containing `needle` (and `needle2` unless NULL). */
static void expect_fail(op_id op, const bn_tensor *a, const bn_tensor *b, bn_status want,
                        const char *needle, const char *needle2, const char *label)
{
    bn_tensor *out[3];
    double det;
    outs_reset(out, &det);
    uint64_t before = live_blocks();
    bn_error_clear();
    bn_status st = run_op(op, a, b, out, &det);
    const char *msg = bn_last_error();
    CHECK(st == want, "%s %s: got %s, want %s (%s)", g_op_names[op], label,
          bn_status_str(st), bn_status_str(want), msg);
    CHECK(msg[0] != '\0' && strstr(msg, needle) && (!needle2 || strstr(msg, needle2)),
          "%s %s: message '%s' lacks '%s'%s%s", g_op_names[op], label, msg, needle,
          needle2 ? " / " : "", needle2 ? needle2 : "");
    CHECK(outs_untouched(out, det), "%s %s: outputs written on failure", g_op_names[op],
          label);
    CHECK(live_blocks() == before, "%s %s: leaked %lld blocks", g_op_names[op], label,
          (long long)(live_blocks() - before));
    if (st == BN_OK)
        outs_free(out);
}

/* ------------------------------------------------------------ errors */

/* A new f32 matrix from row-major values. */
static bn_tensor *matrix(int64_t rows, int64_t cols, const float *v)
{
    bn_tensor *t = NULL;
    int64_t shape[2] = {rows, cols};
    CHECK_OK(bn_tensor_from_data(BN_F32, 2, shape, v, &t));
    return t;
}

/* A new zero tensor of the given shape and dtype. */
static bn_tensor *zeros(bn_dtype dtype, int ndim, int64_t d0, int64_t d1)
{
    bn_tensor *t = NULL;
    int64_t shape[2] = {d0, d1};
    CHECK_OK(bn_tensor_new(dtype, ndim, shape, &t));
    return t;
}

/* Wrong ranks, non-square matrices, mismatched right-hand sides, empty matrices. */
static void test_shape_errors(void)
{
    bn_tensor *rect = zeros(BN_F32, 2, 2, 3), *vec = zeros(BN_F32, 1, 4, 0);
    bn_tensor *eye3 = matrix(3, 3, (const float[]){1, 0, 0, 0, 1, 0, 0, 0, 1});
    bn_tensor *b3 = zeros(BN_F32, 1, 3, 0), *b4 = zeros(BN_F32, 1, 4, 0);
    bn_tensor *b42 = zeros(BN_F32, 2, 4, 2), *b30 = zeros(BN_F32, 2, 3, 0);
    for (int op = 0; op < OP_COUNT; op++) {
        if (op != OP_SVD && op != OP_QR)
            expect_fail(op, rect, b3, BN_ERR_SHAPE, "[2, 3]", "square", "non-square");
        expect_fail(op, vec, b4, BN_ERR_SHAPE, "[4]", "2-D", "1-D input");
    }
    expect_fail(OP_SOLVE, eye3, b4, BN_ERR_SHAPE, "[3, 3]", "[4]", "b [4]");
    expect_fail(OP_SOLVE, eye3, b42, BN_ERR_SHAPE, "[3, 3]", "[4, 2]", "b [4, 2]");
    expect_fail(OP_SOLVE, eye3, b30, BN_ERR_SHAPE, "[3, 3]", "[3, 0]", "b [3, 0]");
    bn_tensor *e03 = zeros(BN_F32, 2, 0, 3), *e00 = zeros(BN_F32, 2, 0, 0);
    for (int op = 0; op < OP_COUNT; op++) {
        expect_fail(op, e00, b3, BN_ERR_SHAPE, "empty", "[0, 0]", "[0, 0]");
        if (op == OP_SVD || op == OP_QR)
            expect_fail(op, e03, b3, BN_ERR_SHAPE, "empty", "[0, 3]", "[0, 3]");
    }
    bn_tensor *all[] = {rect, vec, eye3, b3, b4, b42, b30, e03, e00};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        bn_tensor_free(all[i]);
}

/* i32 operands are BN_ERR_DTYPE. */
static void test_dtype_errors(void)
{
    bn_tensor *ai = zeros(BN_I32, 2, 3, 3), *bi = zeros(BN_I32, 1, 3, 0);
    bn_tensor *eye3 = matrix(3, 3, (const float[]){1, 0, 0, 0, 1, 0, 0, 0, 1});
    bn_tensor *bf = zeros(BN_F32, 1, 3, 0);
    for (int op = 0; op < OP_COUNT; op++)
        expect_fail(op, ai, bf, BN_ERR_DTYPE, "i32", g_op_names[op], "i32 input");
    expect_fail(OP_SOLVE, eye3, bi, BN_ERR_DTYPE, "i32", NULL, "i32 b");
    bn_tensor_free(ai);
    bn_tensor_free(bi);
    bn_tensor_free(eye3);
    bn_tensor_free(bf);
}

/* Singular, not positive definite, not symmetric, NaN and Inf. */
static void test_numeric_errors(void)
{
    /* Rank 1 with power-of-two ratios, so elimination gives an exactly zero pivot. */
    bn_tensor *rank1 = matrix(3, 3, (const float[]){1, 2, 4, 2, 4, 8, 4, 8, 16});
    bn_tensor *b = matrix(3, 1, (const float[]){1, 2, 3});
    expect_fail(OP_INV, rank1, NULL, BN_ERR_NUMERIC, "singular", "U[", "rank 1");
    expect_fail(OP_SOLVE, rank1, b, BN_ERR_NUMERIC, "singular", "U[", "rank 1");
    double det = NAN;
    CHECK_OK(bn_linalg_det(rank1, &det));
    CHECK_NEAR(det, 0.0, 1e-6, 0.0);

    bn_tensor *indef = matrix(2, 2, (const float[]){1, 2, 2, 1});
    bn_tensor *sym6 = fx_case_tensor("sym6", "a");
    bn_tensor *nonsym = matrix(2, 2, (const float[]){1, 2, 0, 1});
    expect_fail(OP_CHOLESKY, indef, NULL, BN_ERR_NUMERIC, "not positive definite",
                "order 2", "[[1, 2], [2, 1]]");
    expect_fail(OP_CHOLESKY, sym6, NULL, BN_ERR_NUMERIC, "not positive definite", NULL,
                "sym6");
    expect_fail(OP_EIGH, nonsym, NULL, BN_ERR_NUMERIC, "not symmetric", NULL, "nonsym");
    expect_fail(OP_CHOLESKY, nonsym, NULL, BN_ERR_NUMERIC, "not symmetric", NULL,
                "nonsym");

    bn_tensor *withnan = matrix(3, 3, (const float[]){4, 1, 0, 1, 4, NAN, 0, 1, 4});
    bn_tensor *withinf = matrix(2, 2, (const float[]){1, INFINITY, 0, 1});
    bn_tensor *bnan = matrix(3, 1, (const float[]){1, 2, NAN});
    bn_tensor *eye3 = matrix(3, 3, (const float[]){1, 0, 0, 0, 1, 0, 0, 0, 1});
    for (int op = 0; op < OP_COUNT; op++)
        expect_fail(op, withnan, b, BN_ERR_NUMERIC, "non-finite", "[1, 2]", "NaN");
    expect_fail(OP_DET, withinf, NULL, BN_ERR_NUMERIC, "inf", "[0, 1]", "Inf");
    expect_fail(OP_SOLVE, eye3, bnan, BN_ERR_NUMERIC, "b has a non-finite", "[2, 0]",
                "NaN in b");
    /* 1 / 1e-40 is finite in double but beyond f32: an error, not a silent inf. */
    bn_tensor *tiny = matrix(1, 1, (const float[]){1e-40f});
    bn_tensor *one = matrix(1, 1, (const float[]){1});
    expect_fail(OP_INV, tiny, NULL, BN_ERR_NUMERIC, "does not fit in f32", NULL, "1e-40");
    expect_fail(OP_SOLVE, tiny, one, BN_ERR_NUMERIC, "does not fit in f32", NULL,
                "1e-40");
    CHECK_OK(bn_linalg_det(tiny, &det));
    CHECK_NEAR(det, (double)1e-40f, 0.0, 1e-15);
    bn_tensor *all[] = {rank1, b, indef, sym6, nonsym, withnan, withinf, bnan, eye3, tiny,
                        one};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        bn_tensor_free(all[i]);
}

/* ------------------------------------------------------------ strided inputs */

/* True when a and b have the same shape and bit-identical values. */
static bool tensors_equal(const bn_tensor *a, const bn_tensor *b)
{
    if (!a || !b || bn_tensor_numel(a) != bn_tensor_numel(b) ||
        bn_tensor_ndim(a) != bn_tensor_ndim(b))
        return false;
    dmat x = dmat_from_tensor(a), y = dmat_from_tensor(b);
    bool same = x.rows == y.rows && x.cols == y.cols &&
                memcmp(x.v, y.v, (size_t)(x.rows * x.cols) * sizeof(double)) == 0;
    dmat_free(&x);
    dmat_free(&y);
    return same;
}

/* Runs op on the view and on its contiguous copy: the double copies LAPACK sees are
 * identical, so the results must be bit for bit the same. */
static void expect_same_on_copy(op_id op, const bn_tensor *view, const bn_tensor *b,
                                const char *label)
{
    bn_tensor *copy = NULL, *out1[3], *out2[3];
    double det1, det2;
    CHECK_OK(bn_tensor_contiguous(view, &copy));
    outs_reset(out1, &det1);
    outs_reset(out2, &det2);
    CHECK_OK(run_op(op, view, b, out1, &det1));
    CHECK_OK(run_op(op, copy, b, out2, &det2));
    bool same = det1 == det2;
    for (int i = 0; i < 3; i++)
        same = same && (out1[i] == sentinel() ? out2[i] == sentinel()
                                              : tensors_equal(out1[i], out2[i]));
    CHECK(same, "%s %s: view and contiguous copy differ", g_op_names[op], label);
    outs_free(out1);
    outs_free(out2);
    bn_tensor_free(copy);
}

/* Transposed views, an offset sub-block, and a strided right-hand side. */
static void test_strided_inputs(void)
{
    bn_tensor *sq8 = fx_case_tensor("sq8", "a"), *spd16 = fx_case_tensor("spd16", "a");
    bn_tensor *sq33 = fx_case_tensor("sq33", "a"), *b3 = fx_case_tensor("sq8", "b3");
    bn_tensor *b1 = fx_case_tensor("sq8", "b1"), *tall = fx_case_tensor("tall", "a");
    bn_tensor *t8 = NULL, *t16 = NULL, *ttall = NULL;
    bn_tensor *rows = NULL, *block = NULL, *col = NULL;
    CHECK_OK(bn_tensor_transpose(sq8, 0, 1, &t8));
    CHECK_OK(bn_tensor_transpose(spd16, 0, 1, &t16));
    CHECK_OK(bn_tensor_transpose(tall, 0, 1, &ttall));
    CHECK_OK(bn_tensor_slice(sq33, 0, 3, 11, 1, &rows));
    CHECK_OK(bn_tensor_slice(rows, 1, 5, 29, 3, &block));   /* [8, 8], offset, stride 3 */
    CHECK_OK(bn_tensor_slice(b3, 1, 1, 2, 1, &col));        /* [8, 1], stride 3 */
    CHECK(!bn_tensor_is_contiguous(t8) && !bn_tensor_is_contiguous(block) &&
          !bn_tensor_is_contiguous(col), "the views should be strided");
    for (int op = 0; op < OP_COUNT; op++) {
        bool spd = op == OP_CHOLESKY || op == OP_EIGH;
        expect_same_on_copy(op, spd ? t16 : t8, b1, "transposed");
        if (!spd)
            expect_same_on_copy(op, block, b1, "sub-block");
    }
    expect_same_on_copy(OP_SVD, ttall, NULL, "transposed tall");
    expect_same_on_copy(OP_QR, ttall, NULL, "transposed tall");
    bn_tensor *x1 = NULL, *x2 = NULL, *colc = NULL;
    CHECK_OK(bn_tensor_contiguous(col, &colc));
    CHECK_OK(bn_linalg_solve(t8, col, &x1));
    CHECK_OK(bn_linalg_solve(t8, colc, &x2));
    CHECK(tensors_equal(x1, x2), "solve with a strided b differs from a contiguous b");
    bn_tensor *all[] = {sq8, spd16, sq33, b3, b1, tall, t8, t16, ttall, rows, block, col,
                        x1, x2, colc};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        bn_tensor_free(all[i]);
}

/* ------------------------------------------------------------ out of memory */

/* Makes the 1st, 2nd, ... allocation of op fail until a call gets through: each
 * failure must be BN_ERR_OOM with a message, outputs untouched and nothing leaked. */
static void test_oom_op(op_id op, const bn_tensor *a, const bn_tensor *b)
{
    int n_failed = 0;
    bool succeeded = false;
    for (uint64_t n = 1; n <= 64 && !succeeded; n++) {
        bn_tensor *out[3];
        double det;
        outs_reset(out, &det);
        uint64_t before = live_blocks();
        bn_mem_fail_nth(n);
        bn_status st = run_op(op, a, b, out, &det);
        bn_mem_fail_nth(0);
        if (st == BN_OK) {
            outs_free(out);
            succeeded = true;
            break;
        }
        n_failed++;
        CHECK(st == BN_ERR_OOM, "%s fail_nth(%llu): got %s (%s)", g_op_names[op],
              (unsigned long long)n, bn_status_str(st), bn_last_error());
        CHECK(bn_last_error()[0] != '\0', "%s fail_nth(%llu): no message", g_op_names[op],
              (unsigned long long)n);
        CHECK(outs_untouched(out, det), "%s fail_nth(%llu): outputs written",
              g_op_names[op], (unsigned long long)n);
        CHECK(live_blocks() == before, "%s fail_nth(%llu): %lld blocks leaked",
              g_op_names[op], (unsigned long long)n, (long long)(live_blocks() - before));
    }
    CHECK(succeeded && n_failed >= 1, "%s: %d injected failures, then %s", g_op_names[op],
          n_failed, succeeded ? "success" : "no success");
}

/* Out-of-memory injection for all seven functions, on strided inputs too. */
static void test_oom(void)
{
    bn_tensor *tall = fx_case_tensor("tall", "a"), *wide = fx_case_tensor("wide", "a");
    bn_tensor *spd4 = fx_case_tensor("spd4", "a"), *sq8 = fx_case_tensor("sq8", "a");
    bn_tensor *b3 = fx_case_tensor("sq8", "b3");
    test_oom_op(OP_SVD, tall, NULL);
    test_oom_op(OP_SVD, wide, NULL);
    test_oom_op(OP_QR, tall, NULL);
    test_oom_op(OP_QR, wide, NULL);
    test_oom_op(OP_CHOLESKY, spd4, NULL);
    test_oom_op(OP_DET, sq8, NULL);
    test_oom_op(OP_SOLVE, sq8, b3);
    test_oom_op(OP_INV, sq8, NULL);
    test_oom_op(OP_EIGH, spd4, NULL);
    bn_tensor *all[] = {tall, wide, spd4, sq8, b3};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        bn_tensor_free(all[i]);
}

int main(void)
{
    g_fx = fx_open("linalg.bnfx");
    if (!g_fx)
        check_skip("test_linalg",
                   "no fixture linalg.bnfx (run scripts/fixtures/make_linalg.py)");
    uint64_t start_blocks = live_blocks();
    for (size_t i = 0; i < sizeof g_cases / sizeof g_cases[0]; i++)
        test_case(&g_cases[i]);
    test_known_det();
    test_shape_errors();
    test_dtype_errors();
    test_numeric_errors();
    test_strided_inputs();
    test_oom();
    bn_mem_stats tag;
    bool used = bn_mem_get_tag_stats("linalg", &tag);
    CHECK(used && tag.live_blocks == 0 && tag.n_allocs > 0,
          "tag 'linalg': used %d, %llu live blocks", used,
          (unsigned long long)tag.live_blocks);
    CHECK(live_blocks() == start_blocks, "%lld blocks leaked over the test",
          (long long)(live_blocks() - start_blocks));
    fx_close(g_fx);
    return check_summary("test_linalg");
}
