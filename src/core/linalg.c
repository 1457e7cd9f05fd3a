/*
 * linalg.c - dense linear algebra on 2-D CPU f32 tensors: SVD, QR, Cholesky,
 * determinant, solve, inverse and the symmetric eigendecomposition (bitnet.h,
 * "linear algebra").
 *
 * Every routine follows the same steps: check the operand (CPU, f32, 2-D, not empty,
 * square where needed), copy it into a column-major double matrix while rejecting NaN
 * and Inf, run LAPACK through the LAPACKE_*_work entry points, and only then build the
 * f32 output tensors, so that a failure leaves the caller's pointers untouched.
 *
 * The layout is LAPACK_COL_MAJOR on purpose: LAPACKE's row-major wrappers transpose
 * into buffers they malloc themselves, while column-major calls go straight to LAPACK.
 * So every buffer of a call - the double copies, the pivots, and the workspace sized
 * by an lwork = -1 query - comes from bn_calloc under the tag "linalg", where the
 * failure-injection hook (bn_mem_fail_nth) reaches it. A call keeps them all in one
 * bn_linalg_scratch and frees them together on every path.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>

#include <lapacke.h>

#include "internal.h"

#define BN_LINALG_TAG "linalg"
#define BN_LINALG_MAX_SCRATCH 8
#define BN_LINALG_MAX_DIM ((int64_t)INT32_MAX)

/* Which part of a matrix bn_linalg_store keeps; the rest is written as zero. */
typedef enum bn_linalg_part {
    BN_LINALG_FULL = 0,
    BN_LINALG_UPPER,   /* j >= i: R of a QR */
    BN_LINALG_LOWER    /* j <= i: a Cholesky factor */
} bn_linalg_part;

/* The host buffers of one call, freed together by bn_linalg_scratch_free. */
typedef struct bn_linalg_scratch {
    void *block[BN_LINALG_MAX_SCRATCH];
    int   count;
} bn_linalg_scratch;

/* ------------------------------------------------------------------ buffers */

/* A zeroed block of n elements of `size` bytes owned by `sc`. NULL, with BN_ERR_OOM
 * set and the operation named, when the allocation fails. */
static void *bn_linalg_scratch_alloc(bn_linalg_scratch *sc, const char *op, size_t n,
                                     size_t size)
{
    assert(sc->count < BN_LINALG_MAX_SCRATCH);
    void *p = bn_calloc(n ? n : 1, size, BN_LINALG_TAG);
    if (!p) {
        bn_error_wrap(BN_ERR_OOM, "%s", op);
        return NULL;
    }
    sc->block[sc->count++] = p;
    return p;
}

/* A zeroed block of `count` doubles owned by `sc`, into *out. */
static bn_status bn_linalg_alloc_doubles(bn_linalg_scratch *sc, const char *op,
                                         size_t count, double **out)
{
    *out = bn_linalg_scratch_alloc(sc, op, count, sizeof **out);
    return *out ? BN_OK : BN_ERR_OOM;
}

/* Frees every block of `sc`. */
static void bn_linalg_scratch_free(bn_linalg_scratch *sc)
{
    for (int i = 0; i < sc->count; i++)
        bn_free(sc->block[i]);
    sc->count = 0;
}

/* Allocates the workspace a LAPACK lwork = -1 query reported (at least one element)
 * and returns its length in *lwork. */
static bn_status bn_linalg_workspace(const char *op, double query, bn_linalg_scratch *sc,
                                     double **work, lapack_int *lwork)
{
    if (!(query < (double)INT32_MAX))
        return bn_error_set(BN_ERR_UNSUPPORTED,
                            "%s: LAPACK asks for a workspace of %.0f doubles, too large",
                            op, query);
    *lwork = query >= 1.0 ? (lapack_int)query : 1;
    return bn_linalg_alloc_doubles(sc, op, (size_t)*lwork, work);
}

/* Frees the first n tensors of `ts` (NULLs allowed). */
static void bn_linalg_free_tensors(bn_tensor **ts, int n)
{
    for (int i = 0; i < n; i++)
        bn_tensor_free(ts[i]);
}

/* ------------------------------------------------------------------ checks */

/* Formats t's shape as "[2, 3]" into buf. */
static const char *bn_linalg_shape_str(const bn_tensor *t, char *buf, size_t cap)
{
    bn_shape s = {.ndim = t->ndim};
    for (int i = 0; i < t->ndim; i++)
        s.dim[i] = t->shape[i];
    return bn_shape_str(s, buf, cap);
}

/* Checks that `t` is a non-empty 2-D CPU f32 matrix (square when `square`) whose
 * dimensions fit LAPACK's integers; returns its rows and columns. */
static bn_status bn_linalg_check_matrix(const char *op, const bn_tensor *t, bool square,
                                        lapack_int *rows, lapack_int *cols)
{
    char sh[80];
    bn_status st = bn_require_cpu_f32(op, t);
    if (st != BN_OK)
        return st;
    if (t->ndim != 2)
        return bn_error_set(BN_ERR_SHAPE, "%s: expected a 2-D matrix, got shape %s", op,
                            bn_linalg_shape_str(t, sh, sizeof sh));
    if (t->shape[0] == 0 || t->shape[1] == 0)
        return bn_error_set(BN_ERR_SHAPE, "%s: empty matrix of shape %s", op,
                            bn_linalg_shape_str(t, sh, sizeof sh));
    if (t->shape[0] > BN_LINALG_MAX_DIM || t->shape[1] > BN_LINALG_MAX_DIM)
        return bn_error_set(BN_ERR_SHAPE,
                            "%s: matrix of shape %s is too large for LAPACK", op,
                            bn_linalg_shape_str(t, sh, sizeof sh));
    if (square && t->shape[0] != t->shape[1])
        return bn_error_set(BN_ERR_SHAPE, "%s: expected a square matrix, got shape %s",
                            op, bn_linalg_shape_str(t, sh, sizeof sh));
    *rows = (lapack_int)t->shape[0];
    *cols = (lapack_int)t->shape[1];
    return BN_OK;
}

/* Checks the right-hand side of bn_linalg_solve: a CPU f32 b of shape [n] or [n, R]
 * with R >= 1; returns R (1 for a vector). */
static bn_status bn_linalg_check_rhs(const char *op, const bn_tensor *a,
                                     const bn_tensor *b, lapack_int n, lapack_int *nrhs)
{
    char sa[80], sb[80];
    bn_status st = bn_require_cpu_f32(op, b);
    if (st != BN_OK)
        return st;
    bool fits = (b->ndim == 1 || b->ndim == 2) && b->shape[0] == n;
    int64_t r = b->ndim == 2 ? b->shape[1] : 1;
    if (!fits || r < 1 || r > BN_LINALG_MAX_DIM)
        return bn_error_set(BN_ERR_SHAPE,
                            "%s: a %s and b %s do not fit "
                            "(b must be [%d] or [%d, R], R >= 1)", op,
                            bn_linalg_shape_str(a, sa, sizeof sa),
                            bn_linalg_shape_str(b, sb, sizeof sb), (int)n, (int)n);
    *nrhs = (lapack_int)r;
    return BN_OK;
}

/* BN_ERR_NUMERIC naming the first non-finite element of operand `what`. */
static bn_status bn_linalg_nonfinite(const char *op, const char *what, const bn_tensor *t,
                                     int64_t i, int64_t j, float v)
{
    if (t->ndim == 1)
        return bn_error_set(BN_ERR_NUMERIC,
                            "%s: %s has a non-finite value (%g) at [%lld]", op, what,
                            (double)v, (long long)i);
    return bn_error_set(BN_ERR_NUMERIC,
                        "%s: %s has a non-finite value (%g) at [%lld, %lld]", op, what,
                        (double)v, (long long)i, (long long)j);
}

/* BN_ERR_NUMERIC unless the n x n column-major matrix m is symmetric to a relative
 * 1e-6 of its largest magnitude. */
static bn_status bn_linalg_check_symmetric(const char *op, const double *m, lapack_int n)
{
    double amax = 0.0;
    for (size_t k = 0; k < (size_t)n * (size_t)n; k++)
        amax = fmax(amax, fabs(m[k]));
    double tol = 1e-6 * amax;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            double diff = fabs(m[i + j * n] - m[j + i * n]);
            if (diff > tol)
                return bn_error_set(BN_ERR_NUMERIC,
                                    "%s: matrix is not symmetric (|a[%lld][%lld] - "
                                    "a[%lld][%lld]| = %g > %g)", op, (long long)i,
                                    (long long)j, (long long)j, (long long)i, diff, tol);
        }
    return BN_OK;
}

/* BN_ERR_INTERNAL for a LAPACK routine that rejected one of its arguments: a bug here.*/
static bn_status bn_linalg_lapack_error(const char *op, const char *routine,
                                        lapack_int info)
{
    return bn_error_set(BN_ERR_INTERNAL, "%s: %s rejected its argument %d (library bug)",
                        op, routine, (int)-info);
}

/* BN_ERR_NUMERIC for a singular matrix whose 0-based pivot i is zero. */
static bn_status bn_linalg_singular(const char *op, lapack_int i)
{
    return bn_error_set(BN_ERR_NUMERIC, "%s: matrix is singular (U[%d][%d] = 0)", op,
                        (int)i, (int)i);
}

/* ------------------------------------------------------------------ copies */

/* Copies the elements of `t` (any strides; a 1-D t is one column) into a new
 * [rows, cols] column-major double matrix owned by `sc`. A NaN or an infinity is
 * BN_ERR_NUMERIC naming its index in operand `what`. */
static bn_status bn_linalg_load(const char *op, const char *what, const bn_tensor *t,
                                lapack_int rows, lapack_int cols, bn_linalg_scratch *sc,
                                double **out)
{
    double *m = NULL;
    if (bn_linalg_alloc_doubles(sc, op, (size_t)rows * (size_t)cols, &m) != BN_OK)
        return BN_ERR_OOM;
    const float *base = (const float *)t->buf->data + t->offset;
    int64_t s0 = t->stride[0], s1 = t->ndim == 2 ? t->stride[1] : 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            float v = base[i * s0 + j * s1];
            if (!isfinite(v))
                return bn_linalg_nonfinite(op, what, t, i, j, v);
            m[i + j * rows] = v;
        }
    *out = m;
    return BN_OK;
}

/* A new f32 tensor of shape (ndim, shape) holding the [rows, cols] column-major matrix
 * m with leading dimension ld; elements outside `part` are zero. A value beyond f32's
 * range (an inverse of a nearly singular matrix, say) is BN_ERR_NUMERIC rather than a
 * silent infinity. */
static bn_status bn_linalg_store(const char *op, const double *m, lapack_int ld,
                                 lapack_int rows, lapack_int cols, bn_linalg_part part,
                                 int ndim, const int64_t *shape, bn_tensor **out)
{
    bn_tensor *t = NULL;
    bn_status st = bn_tensor_new(BN_F32, ndim, shape, &t);
    if (st != BN_OK)
        return st;
    float *dst = bn_tensor_data(t);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            bool keep = part == BN_LINALG_FULL || (part == BN_LINALG_UPPER && j >= i) ||
                        (part == BN_LINALG_LOWER && j <= i);
            double v = keep ? m[i + j * ld] : 0.0;
            dst[i * cols + j] = (float)v;
            if (!isfinite(dst[i * cols + j])) {
                bn_tensor_free(t);
                return bn_error_set(BN_ERR_NUMERIC, "%s: result element [%lld, %lld] = "
                                    "%g does not fit in f32", op, (long long)i,
                                    (long long)j, v);
            }
        }
    *out = t;
    return BN_OK;
}

/* A new f32 vector [n] holding v[0..n). */
static bn_status bn_linalg_store_vector(const char *op, const double *v, lapack_int n,
                                        bn_tensor **out)
{
    int64_t shape[1] = {n};
    return bn_linalg_store(op, v, n, n, 1, BN_LINALG_FULL, 1, shape, out);
}

/* A new f32 matrix [rows, cols] from column-major m with leading dimension ld. */
static bn_status bn_linalg_store_matrix(const char *op, const double *m, lapack_int ld,
                                        lapack_int rows, lapack_int cols,
                                        bn_linalg_part part, bn_tensor **out)
{
    int64_t shape[2] = {rows, cols};
    return bn_linalg_store(op, m, ld, rows, cols, part, 2, shape, out);
}

/* ------------------------------------------------------------------ LU */

/* LU-factors the n x n column-major matrix m in place (dgetrf), with the pivots in a
 * new block of `sc`. *zero gets the 0-based index of the first zero pivot, -1 when
 * there is none: dgetrf's info > 0 names one, and an exactly zero U[i][i] counts too. */
static bn_status bn_linalg_lu(const char *op, double *m, lapack_int n,
                              bn_linalg_scratch *sc, lapack_int **ipiv, lapack_int *zero)
{
    *ipiv = bn_linalg_scratch_alloc(sc, op, (size_t)n, sizeof **ipiv);
    if (!*ipiv)
        return BN_ERR_OOM;
    lapack_int info = LAPACKE_dgetrf_work(LAPACK_COL_MAJOR, n, n, m, n, *ipiv);
    if (info < 0)
        return bn_linalg_lapack_error(op, "dgetrf", info);
    *zero = info > 0 ? info - 1 : -1;
    for (lapack_int i = 0; i < n && *zero < 0; i++)
        if (m[(size_t)i + (size_t)i * (size_t)n] == 0.0)
            *zero = i;
    return BN_OK;
}

/* The determinant from non-singular LU factors: the product of U's diagonal, negated
 * once per row interchange. */
static double bn_linalg_lu_det(const double *lu, const lapack_int *ipiv, lapack_int n)
{
    double det = 1.0;
    for (lapack_int i = 0; i < n; i++) {
        det *= lu[(size_t)i + (size_t)i * (size_t)n];
        if (ipiv[i] != i + 1)
            det = -det;
    }
    return det;
}

/* ------------------------------------------------------------------ public */

/* Determinant through dgetrf; a singular matrix gives 0, not an error. */
bn_status bn_linalg_det(const bn_tensor *a, double *det)
{
    static const char op[] = "bn_linalg_det";
    assert(a && det);
    bn_linalg_scratch sc = {0};
    lapack_int n = 0, zero = -1, *ipiv = NULL;
    double *lu = NULL;
    bn_status st = bn_linalg_check_matrix(op, a, true, &n, &n);
    if (st == BN_OK)
        st = bn_linalg_load(op, "a", a, n, n, &sc, &lu);
    if (st == BN_OK)
        st = bn_linalg_lu(op, lu, n, &sc, &ipiv, &zero);
    if (st == BN_OK)
        *det = zero >= 0 ? 0.0 : bn_linalg_lu_det(lu, ipiv, n);
    bn_linalg_scratch_free(&sc);
    return st;
}

/* Solves A X = B with dgetrf + dgetrs; X takes b's shape. */
bn_status bn_linalg_solve(const bn_tensor *a, const bn_tensor *b, bn_tensor **x)
{
    static const char op[] = "bn_linalg_solve";
    assert(a && b && x);
    bn_linalg_scratch sc = {0};
    lapack_int n = 0, nrhs = 0, zero = -1, *ipiv = NULL;
    double *lu = NULL, *rhs = NULL;
    bn_tensor *res = NULL;
    bn_status st = bn_linalg_check_matrix(op, a, true, &n, &n);
    if (st == BN_OK)
        st = bn_linalg_check_rhs(op, a, b, n, &nrhs);
    if (st == BN_OK)
        st = bn_linalg_load(op, "a", a, n, n, &sc, &lu);
    if (st == BN_OK)
        st = bn_linalg_load(op, "b", b, n, nrhs, &sc, &rhs);
    if (st == BN_OK)
        st = bn_linalg_lu(op, lu, n, &sc, &ipiv, &zero);
    if (st == BN_OK && zero >= 0)
        st = bn_linalg_singular(op, zero);
    if (st == BN_OK) {
        lapack_int info = LAPACKE_dgetrs_work(LAPACK_COL_MAJOR, 'N', n, nrhs, lu, n, ipiv,
                                              rhs, n);
        if (info != 0)
            st = bn_linalg_lapack_error(op, "dgetrs", info);
    }
    if (st == BN_OK)
        st = bn_linalg_store(op, rhs, n, n, nrhs, BN_LINALG_FULL, b->ndim, b->shape,
                             &res);
    bn_linalg_scratch_free(&sc);
    if (st == BN_OK)
        *x = res;
    return st;
}

/* Runs dgetri on non-singular LU factors, with a workspace from a size query. */
static bn_status bn_linalg_getri(const char *op, double *lu, lapack_int n,
                                 const lapack_int *ipiv, bn_linalg_scratch *sc)
{
    double query = 0.0, *work = NULL;
    lapack_int lwork = 0;
    lapack_int info = LAPACKE_dgetri_work(LAPACK_COL_MAJOR, n, lu, n, ipiv, &query, -1);
    if (info < 0)
        return bn_linalg_lapack_error(op, "dgetri", info);
    bn_status st = bn_linalg_workspace(op, query, sc, &work, &lwork);
    if (st != BN_OK)
        return st;
    info = LAPACKE_dgetri_work(LAPACK_COL_MAJOR, n, lu, n, ipiv, work, lwork);
    if (info < 0)
        return bn_linalg_lapack_error(op, "dgetri", info);
    return info > 0 ? bn_linalg_singular(op, info - 1) : BN_OK;
}

/* The inverse through dgetrf + dgetri. */
bn_status bn_linalg_inv(const bn_tensor *a, bn_tensor **inv)
{
    static const char op[] = "bn_linalg_inv";
    assert(a && inv);
    bn_linalg_scratch sc = {0};
    lapack_int n = 0, zero = -1, *ipiv = NULL;
    double *lu = NULL;
    bn_tensor *res = NULL;
    bn_status st = bn_linalg_check_matrix(op, a, true, &n, &n);
    if (st == BN_OK)
        st = bn_linalg_load(op, "a", a, n, n, &sc, &lu);
    if (st == BN_OK)
        st = bn_linalg_lu(op, lu, n, &sc, &ipiv, &zero);
    if (st == BN_OK && zero >= 0)
        st = bn_linalg_singular(op, zero);
    if (st == BN_OK)
        st = bn_linalg_getri(op, lu, n, ipiv, &sc);
    if (st == BN_OK)
        st = bn_linalg_store_matrix(op, lu, n, n, n, BN_LINALG_FULL, &res);
    bn_linalg_scratch_free(&sc);
    if (st == BN_OK)
        *inv = res;
    return st;
}

/* Lower Cholesky factor through dpotrf. The matrix must be symmetric (as for eigh):
 * dpotrf reads only one triangle and would silently ignore the other. */
bn_status bn_linalg_cholesky(const bn_tensor *a, bn_tensor **l)
{
    static const char op[] = "bn_linalg_cholesky";
    assert(a && l);
    bn_linalg_scratch sc = {0};
    lapack_int n = 0;
    double *m = NULL;
    bn_tensor *res = NULL;
    bn_status st = bn_linalg_check_matrix(op, a, true, &n, &n);
    if (st == BN_OK)
        st = bn_linalg_load(op, "a", a, n, n, &sc, &m);
    if (st == BN_OK)
        st = bn_linalg_check_symmetric(op, m, n);
    if (st == BN_OK) {
        lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', n, m, n);
        if (info < 0)
            st = bn_linalg_lapack_error(op, "dpotrf", info);
        else if (info > 0)
            st = bn_error_set(BN_ERR_NUMERIC, "%s: matrix is not positive definite "
                              "(leading minor of order %d)", op, (int)info);
    }
    if (st == BN_OK)
        st = bn_linalg_store_matrix(op, m, n, n, n, BN_LINALG_LOWER, &res);
    bn_linalg_scratch_free(&sc);
    if (st == BN_OK)
        *l = res;
    return st;
}

/* Runs dsyevd (eigenvalues ascending into w, eigenvectors over m) with workspaces
 * from a size query. */
static bn_status bn_linalg_syevd(const char *op, double *m, lapack_int n, double *w,
                                 bn_linalg_scratch *sc)
{
    double query = 0.0, *work = NULL;
    lapack_int iquery = 0, lwork = 0, *iwork = NULL;
    lapack_int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'L', n, m, n, w, &query,
                                          -1, &iquery, -1);
    if (info < 0)
        return bn_linalg_lapack_error(op, "dsyevd", info);
    bn_status st = bn_linalg_workspace(op, query, sc, &work, &lwork);
    if (st != BN_OK)
        return st;
    lapack_int liwork = iquery > 1 ? iquery : 1;
    iwork = bn_linalg_scratch_alloc(sc, op, (size_t)liwork, sizeof *iwork);
    if (!iwork)
        return BN_ERR_OOM;
    info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'L', n, m, n, w, work, lwork, iwork,
                               liwork);
    if (info < 0)
        return bn_linalg_lapack_error(op, "dsyevd", info);
    if (info > 0)
        return bn_error_set(BN_ERR_NUMERIC, "%s: eigenvalues did not converge (dsyevd "
                            "info %d)", op, (int)info);
    return BN_OK;
}

/* Symmetric eigendecomposition through dsyevd. */
bn_status bn_linalg_eigh(const bn_tensor *a, bn_tensor **w, bn_tensor **v)
{
    static const char op[] = "bn_linalg_eigh";
    assert(a && w && v);
    bn_linalg_scratch sc = {0};
    lapack_int n = 0;
    double *m = NULL, *vals = NULL;
    bn_tensor *res[2] = {NULL, NULL};
    bn_status st = bn_linalg_check_matrix(op, a, true, &n, &n);
    if (st == BN_OK)
        st = bn_linalg_load(op, "a", a, n, n, &sc, &m);
    if (st == BN_OK)
        st = bn_linalg_check_symmetric(op, m, n);
    if (st == BN_OK)
        st = bn_linalg_alloc_doubles(&sc, op, (size_t)n, &vals);
    if (st == BN_OK)
        st = bn_linalg_syevd(op, m, n, vals, &sc);
    if (st == BN_OK)
        st = bn_linalg_store_vector(op, vals, n, &res[0]);
    if (st == BN_OK)
        st = bn_linalg_store_matrix(op, m, n, n, n, BN_LINALG_FULL, &res[1]);
    bn_linalg_scratch_free(&sc);
    if (st != BN_OK) {
        bn_linalg_free_tensors(res, 2);
        return st;
    }
    *w = res[0];
    *v = res[1];
    return BN_OK;
}

/* Runs dgesdd with jobz 'S' on the [rows, cols] matrix m (destroyed), k = min(rows,
 * cols): s [k], u [rows, k] (ld rows) and vt [k, cols] (ld k), with workspaces from a
 * size query. */
static bn_status bn_linalg_gesdd(const char *op, double *m, lapack_int rows,
                                 lapack_int cols, double *s, double *u, double *vt,
                                 bn_linalg_scratch *sc)
{
    lapack_int k = rows < cols ? rows : cols, lwork = 0;
    double query = 0.0, *work = NULL;
    lapack_int *iwork = bn_linalg_scratch_alloc(sc, op, 8 * (size_t)k, sizeof *iwork);
    if (!iwork)
        return BN_ERR_OOM;
    lapack_int info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'S', rows, cols, m, rows, s,
                                          u, rows, vt, k, &query, -1, iwork);
    if (info < 0)
        return bn_linalg_lapack_error(op, "dgesdd", info);
    bn_status st = bn_linalg_workspace(op, query, sc, &work, &lwork);
    if (st != BN_OK)
        return st;
    info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'S', rows, cols, m, rows, s, u, rows, vt,
                               k, work, lwork, iwork);
    if (info < 0)
        return bn_linalg_lapack_error(op, "dgesdd", info);
    if (info > 0)
        return bn_error_set(BN_ERR_NUMERIC, "%s: SVD did not converge (dgesdd info %d)",
                            op, (int)info);
    return BN_OK;
}

/* Thin SVD through dgesdd. */
bn_status bn_linalg_svd(const bn_tensor *a, bn_tensor **u, bn_tensor **s, bn_tensor **vt)
{
    static const char op[] = "bn_linalg_svd";
    assert(a && u && s && vt);
    bn_linalg_scratch sc = {0};
    lapack_int rows = 0, cols = 0, k = 0;
    double *m = NULL, *sv = NULL, *um = NULL, *vtm = NULL;
    bn_tensor *res[3] = {NULL, NULL, NULL};
    bn_status st = bn_linalg_check_matrix(op, a, false, &rows, &cols);
    k = rows < cols ? rows : cols;
    if (st == BN_OK)
        st = bn_linalg_load(op, "a", a, rows, cols, &sc, &m);
    if (st == BN_OK)   /* S [k], U [rows, k], Vt [k, cols] */
        st = bn_linalg_alloc_doubles(&sc, op, (size_t)k, &sv);
    if (st == BN_OK)
        st = bn_linalg_alloc_doubles(&sc, op, (size_t)rows * (size_t)k, &um);
    if (st == BN_OK)
        st = bn_linalg_alloc_doubles(&sc, op, (size_t)k * (size_t)cols, &vtm);
    if (st == BN_OK)
        st = bn_linalg_gesdd(op, m, rows, cols, sv, um, vtm, &sc);
    if (st == BN_OK)
        st = bn_linalg_store_matrix(op, um, rows, rows, k, BN_LINALG_FULL, &res[0]);
    if (st == BN_OK)
        st = bn_linalg_store_vector(op, sv, k, &res[1]);
    if (st == BN_OK)
        st = bn_linalg_store_matrix(op, vtm, k, k, cols, BN_LINALG_FULL, &res[2]);
    bn_linalg_scratch_free(&sc);
    if (st != BN_OK) {
        bn_linalg_free_tensors(res, 3);
        return st;
    }
    *u = res[0];
    *s = res[1];
    *vt = res[2];
    return BN_OK;
}

/* Allocates one workspace large enough for both dgeqrf on [rows, cols] and dorgqr
 * forming the first k columns of Q, sized by two queries. */
static bn_status bn_linalg_qr_workspace(const char *op, double *m, lapack_int rows,
                                        lapack_int cols, double *tau,
                                        bn_linalg_scratch *sc, double **work,
                                        lapack_int *lwork)
{
    lapack_int k = rows < cols ? rows : cols;
    double q1 = 0.0, q2 = 0.0;
    lapack_int info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, rows, cols, m, rows, tau, &q1,
                                          -1);
    if (info < 0)
        return bn_linalg_lapack_error(op, "dgeqrf", info);
    info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, rows, k, k, m, rows, tau, &q2, -1);
    if (info < 0)
        return bn_linalg_lapack_error(op, "dorgqr", info);
    return bn_linalg_workspace(op, q1 > q2 ? q1 : q2, sc, work, lwork);
}

/* Factors m in place (dgeqrf), stores R [k, cols] into *r, then overwrites m's first k
 * columns with Q (dorgqr). */
static bn_status bn_linalg_geqrf_orgqr(const char *op, double *m, lapack_int rows,
                                       lapack_int cols, bn_linalg_scratch *sc,
                                       bn_tensor **r)
{
    lapack_int k = rows < cols ? rows : cols, lwork = 0;
    double *work = NULL, *tau = bn_linalg_scratch_alloc(sc, op, (size_t)k, sizeof *tau);
    if (!tau)
        return BN_ERR_OOM;
    bn_status st = bn_linalg_qr_workspace(op, m, rows, cols, tau, sc, &work, &lwork);
    if (st != BN_OK)
        return st;
    lapack_int info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, rows, cols, m, rows, tau,
                                          work, lwork);
    if (info != 0)
        return bn_linalg_lapack_error(op, "dgeqrf", info);
    st = bn_linalg_store_matrix(op, m, rows, k, cols, BN_LINALG_UPPER, r);
    if (st != BN_OK)
        return st;
    info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, rows, k, k, m, rows, tau, work, lwork);
    if (info != 0)
        return bn_linalg_lapack_error(op, "dorgqr", info);
    return BN_OK;
}

/* Thin QR through dgeqrf + dorgqr. */
bn_status bn_linalg_qr(const bn_tensor *a, bn_tensor **q, bn_tensor **r)
{
    static const char op[] = "bn_linalg_qr";
    assert(a && q && r);
    bn_linalg_scratch sc = {0};
    lapack_int rows = 0, cols = 0;
    double *m = NULL;
    bn_tensor *res[2] = {NULL, NULL};   /* Q, R */
    bn_status st = bn_linalg_check_matrix(op, a, false, &rows, &cols);
    if (st == BN_OK)
        st = bn_linalg_load(op, "a", a, rows, cols, &sc, &m);
    if (st == BN_OK)
        st = bn_linalg_geqrf_orgqr(op, m, rows, cols, &sc, &res[1]);
    if (st == BN_OK)
        st = bn_linalg_store_matrix(op, m, rows, rows, rows < cols ? rows : cols,
                                    BN_LINALG_FULL, &res[0]);
    bn_linalg_scratch_free(&sc);
    if (st != BN_OK) {
        bn_linalg_free_tensors(res, 2);
        return st;
    }
    *q = res[0];
    *r = res[1];
    return BN_OK;
}
