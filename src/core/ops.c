/*
 * ops.c - element-wise, reduction and matrix operations on f32 CPU tensors.
 *
 * Every operand is seen through a 4-D "layout" (shape and strides padded on the left
 * with size-1 axes; a broadcast axis gets stride 0), so one loop nest serves
 * contiguous tensors, strided views and broadcasting alike. Work is split over the
 * default thread pool by output rows; each output element is computed by one thread
 * in a fixed order, so results do not depend on the thread count.
 */
#include <math.h>
#include <string.h>

#include "core/internal.h"

/* Below this many output elements an op runs on the calling thread alone. */
#define BN_OPS_GRAIN 16384

typedef struct bn_layout {
    int64_t      shape[BN_MAX_DIMS];
    int64_t      stride[BN_MAX_DIMS];
    const float *data;
} bn_layout;

/* t's layout padded on the left to 4 axes. */
static bn_layout bn_layout_of(const bn_tensor *t)
{
    bn_layout l;
    int pad = BN_MAX_DIMS - t->ndim;
    for (int i = 0; i < BN_MAX_DIMS; i++) {
        l.shape[i] = i < pad ? 1 : t->shape[i - pad];
        l.stride[i] = i < pad ? 0 : t->stride[i - pad];
    }
    l.data = bn_tensor_data(t);
    return l;
}

/* Offset of row r (the index over the first three axes) in layout l. */
static int64_t bn_row_offset(const bn_layout *l, const int64_t *out_shape, int64_t r)
{
    int64_t i2 = r % out_shape[2];
    int64_t i1 = (r / out_shape[2]) % out_shape[1];
    int64_t i0 = r / (out_shape[2] * out_shape[1]);
    return (l->shape[0] == 1 ? 0 : i0 * l->stride[0]) +
           (l->shape[1] == 1 ? 0 : i1 * l->stride[1]) +
           (l->shape[2] == 1 ? 0 : i2 * l->stride[2]);
}

static char *bn_shape_of(const bn_tensor *t, char *buf, size_t cap)
{
    return bn_shape_str(bn_tensor_shape(t), buf, cap);
}

/* The broadcast shape of a and b, or BN_ERR_SHAPE naming both. */
static bn_status bn_broadcast_shape(const char *op, const bn_tensor *a, const bn_tensor *b,
                                    bn_shape *out)
{
    out->ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < out->ndim; i++) {
        int ia = a->ndim - out->ndim + i, ib = b->ndim - out->ndim + i;
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            return bn_error_set(BN_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", op,
                                bn_shape_of(a, sa, sizeof sa), bn_shape_of(b, sb, sizeof sb));
        }
        out->dim[i] = da == 1 ? db : da;
    }
    return BN_OK;
}

/* Checks every operand is a CPU f32 tensor. */
static bn_status bn_check_operands(const char *op, const bn_tensor *a, const bn_tensor *b)
{
    bn_status st = bn_require_cpu_f32(op, a);
    if (st == BN_OK && b)
        st = bn_require_cpu_f32(op, b);
    return st;
}

/* ------------------------------------------------------------------ binary */

static const char *const bn_binary_names[BN_BINARY_COUNT] = {"add", "sub", "mul", "div"};

typedef struct bn_binary_job {
    bn_binary_op op;
    bn_layout    a, b;
    int64_t      shape[BN_MAX_DIMS];  /* output, padded to 4 axes */
    float       *out;
    float        scalar;              /* for the scalar forms: b is then unused */
    int          scalar_mode;         /* 0 tensor-tensor, 1 a op s, 2 s op a */
} bn_binary_job;

static inline float bn_apply_binary(bn_binary_op op, float x, float y)
{
    switch (op) {
    case BN_ADD: return x + y;
    case BN_SUB: return x - y;
    case BN_MUL: return x * y;
    default:     return x / y;
    }
}

/* Rows [begin, end) of a binary op. */
static void bn_binary_rows(void *ctx, int64_t begin, int64_t end)
{
    const bn_binary_job *j = ctx;
    int64_t n = j->shape[3];
    int64_t sa = j->a.shape[3] == 1 ? 0 : j->a.stride[3];
    int64_t sb = j->b.shape[3] == 1 ? 0 : j->b.stride[3];
    for (int64_t r = begin; r < end; r++) {
        const float *pa = j->a.data + bn_row_offset(&j->a, j->shape, r);
        float *po = j->out + r * n;
        if (j->scalar_mode == 1) {
            for (int64_t k = 0; k < n; k++)
                po[k] = bn_apply_binary(j->op, pa[k * sa], j->scalar);
        } else if (j->scalar_mode == 2) {
            for (int64_t k = 0; k < n; k++)
                po[k] = bn_apply_binary(j->op, j->scalar, pa[k * sa]);
        } else {
            const float *pb = j->b.data + bn_row_offset(&j->b, j->shape, r);
            for (int64_t k = 0; k < n; k++)
                po[k] = bn_apply_binary(j->op, pa[k * sa], pb[k * sb]);
        }
    }
}

/* Allocates the output of `shape` and runs the job over its rows. */
static bn_status bn_binary_run(bn_binary_job *j, bn_shape shape, bn_tensor **out)
{
    bn_tensor *r = NULL;
    bn_status st = bn_tensor_new(BN_F32, shape.ndim, shape.dim, &r);
    if (st != BN_OK)
        return bn_error_wrap(BN_OK, "%s", bn_binary_names[j->op]);
    int pad = BN_MAX_DIMS - shape.ndim;
    for (int i = 0; i < BN_MAX_DIMS; i++)
        j->shape[i] = i < pad ? 1 : shape.dim[i - pad];
    j->out = bn_tensor_data(r);
    int64_t rows = j->shape[0] * j->shape[1] * j->shape[2];
    int64_t grain = j->shape[3] > 0 ? BN_OPS_GRAIN / j->shape[3] + 1 : rows + 1;
    if (rows > 0 && j->shape[3] > 0)
        bn_parallel_for(NULL, rows, grain, bn_binary_rows, j);
    *out = r;
    return BN_OK;
}

bn_status bn_op_binary(bn_binary_op op, const bn_tensor *a, const bn_tensor *b,
                       bn_tensor **out)
{
    if ((unsigned)op >= BN_BINARY_COUNT)
        return bn_error_set(BN_ERR_INVALID_ARG, "binary op: invalid op %d", (int)op);
    bn_status st = bn_check_operands(bn_binary_names[op], a, b);
    if (st != BN_OK)
        return st;
    bn_shape shape;
    st = bn_broadcast_shape(bn_binary_names[op], a, b, &shape);
    if (st != BN_OK)
        return st;
    bn_binary_job j = {.op = op};
    /* operands are padded to the output's rank, so broadcasting aligns at the right */
    j.a = bn_layout_of(a);
    j.b = bn_layout_of(b);
    return bn_binary_run(&j, shape, out);
}

bn_status bn_op_add(const bn_tensor *a, const bn_tensor *b, bn_tensor **out)
{
    return bn_op_binary(BN_ADD, a, b, out);
}

bn_status bn_op_sub(const bn_tensor *a, const bn_tensor *b, bn_tensor **out)
{
    return bn_op_binary(BN_SUB, a, b, out);
}

bn_status bn_op_mul(const bn_tensor *a, const bn_tensor *b, bn_tensor **out)
{
    return bn_op_binary(BN_MUL, a, b, out);
}

bn_status bn_op_div(const bn_tensor *a, const bn_tensor *b, bn_tensor **out)
{
    return bn_op_binary(BN_DIV, a, b, out);
}

bn_status bn_op_scalar(bn_binary_op op, const bn_tensor *a, float scalar,
                       bool scalar_first, bn_tensor **out)
{
    if ((unsigned)op >= BN_BINARY_COUNT)
        return bn_error_set(BN_ERR_INVALID_ARG, "scalar op: invalid op %d", (int)op);
    bn_status st = bn_check_operands(bn_binary_names[op], a, NULL);
    if (st != BN_OK)
        return st;
    bn_binary_job j = {.op = op, .scalar = scalar, .scalar_mode = scalar_first ? 2 : 1};
    j.a = bn_layout_of(a);
    j.b = j.a;
    return bn_binary_run(&j, bn_tensor_shape(a), out);
}

/* ------------------------------------------------------------------ unary */

typedef struct bn_unary_job {
    bn_unary_op op;
    bn_layout   a;
    int64_t     shape[BN_MAX_DIMS];
    float      *out;
} bn_unary_job;

static inline float bn_apply_unary(bn_unary_op op, float x)
{
    switch (op) {
    case BN_NEG:  return -x;
    case BN_ABS:  return fabsf(x);
    case BN_SQRT: return sqrtf(x);
    case BN_EXP:  return expf(x);
    case BN_LOG:  return logf(x);
    case BN_RELU: return x > 0.0f ? x : 0.0f;
    case BN_RELU_SQR: return x > 0.0f ? x * x : 0.0f;
    case BN_SILU: return x / (1.0f + expf(-x));
    case BN_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    default: {
        const float c = 0.79788456080286536f; /* sqrt(2/pi) */
        return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
    }
    }
}

static void bn_unary_rows(void *ctx, int64_t begin, int64_t end)
{
    const bn_unary_job *j = ctx;
    int64_t n = j->shape[3], s = j->a.stride[3];
    for (int64_t r = begin; r < end; r++) {
        const float *pa = j->a.data + bn_row_offset(&j->a, j->shape, r);
        float *po = j->out + r * n;
        for (int64_t k = 0; k < n; k++)
            po[k] = bn_apply_unary(j->op, pa[k * s]);
    }
}

bn_status bn_op_unary(bn_unary_op op, const bn_tensor *a, bn_tensor **out)
{
    if ((unsigned)op >= BN_UNARY_COUNT)
        return bn_error_set(BN_ERR_INVALID_ARG, "unary op: invalid op %d", (int)op);
    bn_status st = bn_check_operands("unary op", a, NULL);
    if (st != BN_OK)
        return st;
    bn_tensor *r = NULL;
    st = bn_tensor_new(BN_F32, a->ndim, a->shape, &r);
    if (st != BN_OK)
        return st;
    bn_unary_job j = {.op = op, .a = bn_layout_of(a), .out = bn_tensor_data(r)};
    memcpy(j.shape, j.a.shape, sizeof j.shape);
    int64_t rows = j.shape[0] * j.shape[1] * j.shape[2];
    if (rows > 0 && j.shape[3] > 0)
        bn_parallel_for(NULL, rows, BN_OPS_GRAIN / j.shape[3] + 1, bn_unary_rows, &j);
    *out = r;
    return BN_OK;
}

/* ------------------------------------------------------------------ reductions */

/* A tensor seen as [outer, n, inner] around one axis. */
typedef struct bn_axis_job {
    const bn_tensor *a;
    int64_t          outer_shape[BN_MAX_DIMS]; /* a's shape with the axis set to 1 */
    int              axis;
    int64_t          n, stride;                /* length and stride of the axis */
    bn_reduce_op     op;
    float           *out;                      /* one value per outer element */
    int32_t         *out_index;                /* for ARGMAX */
    const float     *weight;                   /* rmsnorm */
    float            eps;
} bn_axis_job;

/* Pointer to the first element along the axis for output element e (row-major over
 * outer_shape). */
static const float *bn_axis_base(const bn_axis_job *j, int64_t e)
{
    const bn_tensor *a = j->a;
    int64_t off = 0;
    for (int d = a->ndim - 1; d >= 0; d--) {
        int64_t size = j->outer_shape[d];
        off += (e % size) * a->stride[d];
        e /= size;
    }
    return (const float *)bn_tensor_data(a) + off;
}

static void bn_reduce_rows(void *ctx, int64_t begin, int64_t end)
{
    const bn_axis_job *j = ctx;
    for (int64_t e = begin; e < end; e++) {
        const float *p = bn_axis_base(j, e);
        if (j->op == BN_SUM || j->op == BN_MEAN) {
            double sum = 0.0;
            for (int64_t k = 0; k < j->n; k++)
                sum += p[k * j->stride];
            j->out[e] = (float)(j->op == BN_MEAN ? sum / (double)j->n : sum);
            continue;
        }
        int64_t best = 0;
        float bv = p[0];
        for (int64_t k = 1; k < j->n && !isnan(bv); k++) {
            float v = p[k * j->stride];
            bool better = j->op == BN_MIN ? v < bv : v > bv;
            if (better || isnan(v)) {
                best = k;
                bv = v;
            }
        }
        if (j->op == BN_ARGMAX)
            j->out_index[e] = (int32_t)best;
        else
            j->out[e] = bv;
    }
}

/* Prepares an axis job for `a` around `axis` (validated); counts outer elements. */
static bn_status bn_axis_job_init(const char *op, const bn_tensor *a, int axis,
                                  bn_axis_job *j, int64_t *n_outer)
{
    int ax = axis < 0 ? axis + a->ndim : axis;
    if (ax < 0 || ax >= a->ndim)
        return bn_error_set(BN_ERR_INVALID_ARG, "%s: axis %d is out of range for a "
                            "%d-dimensional tensor", op, axis, a->ndim);
    j->a = a;
    j->axis = ax;
    j->n = a->shape[ax];
    j->stride = a->stride[ax];
    *n_outer = 1;
    for (int d = 0; d < a->ndim; d++) {
        j->outer_shape[d] = d == ax ? 1 : a->shape[d];
        *n_outer *= j->outer_shape[d];
    }
    return BN_OK;
}

bn_status bn_op_reduce(bn_reduce_op op, const bn_tensor *a, int axis, bool keepdims,
                       bn_tensor **out)
{
    static const char *const names[BN_REDUCE_COUNT] = {"sum", "mean", "max", "min",
                                                       "argmax"};
    if ((unsigned)op >= BN_REDUCE_COUNT)
        return bn_error_set(BN_ERR_INVALID_ARG, "reduce: invalid op %d", (int)op);
    bn_status st = bn_check_operands(names[op], a, NULL);
    if (st != BN_OK)
        return st;
    bn_axis_job j = {.op = op};
    int64_t n_outer = 0;
    st = bn_axis_job_init(names[op], a, axis, &j, &n_outer);
    if (st != BN_OK)
        return st;
    if (j.n == 0 && op != BN_SUM && op != BN_MEAN) {
        char s[96];
        return bn_error_set(BN_ERR_SHAPE, "%s: axis %d of the %s tensor is empty",
                            names[op], axis, bn_shape_of(a, s, sizeof s));
    }
    bn_shape shape = {0};
    for (int d = 0; d < a->ndim; d++) {
        if (d != j.axis)
            shape.dim[shape.ndim++] = a->shape[d];
        else if (keepdims)
            shape.dim[shape.ndim++] = 1;
    }
    bn_tensor *r = NULL;
    st = bn_tensor_new(op == BN_ARGMAX ? BN_I32 : BN_F32, shape.ndim, shape.dim, &r);
    if (st != BN_OK)
        return st;
    j.out = bn_tensor_data(r);
    j.out_index = bn_tensor_data(r);
    if (n_outer > 0)
        bn_parallel_for(NULL, n_outer, BN_OPS_GRAIN / (j.n + 1) + 1, bn_reduce_rows, &j);
    *out = r;
    return BN_OK;
}

/* ------------------------------------------------------------------ softmax, rmsnorm */

static void bn_softmax_rows(void *ctx, int64_t begin, int64_t end)
{
    const bn_axis_job *j = ctx;
    const bn_tensor *a = j->a;
    /* output is contiguous with a's shape: axis stride and outer offset */
    int64_t ostride[BN_MAX_DIMS];
    int64_t s = 1;
    for (int d = a->ndim - 1; d >= 0; d--) {
        ostride[d] = s;
        s *= a->shape[d];
    }
    for (int64_t e = begin; e < end; e++) {
        const float *p = bn_axis_base(j, e);
        int64_t rem = e, ooff = 0;
        for (int d = a->ndim - 1; d >= 0; d--) {
            ooff += (rem % j->outer_shape[d]) * ostride[d];
            rem /= j->outer_shape[d];
        }
        float *o = j->out + ooff;
        int64_t os = ostride[j->axis];
        float mx = -INFINITY;
        for (int64_t k = 0; k < j->n; k++)
            mx = p[k * j->stride] > mx ? p[k * j->stride] : mx;
        double sum = 0.0;
        for (int64_t k = 0; k < j->n; k++) {
            float ev = expf(p[k * j->stride] - mx);
            o[k * os] = ev;
            sum += ev;
        }
        float inv = (float)(1.0 / sum);
        for (int64_t k = 0; k < j->n; k++)
            o[k * os] *= inv;
    }
}

bn_status bn_op_softmax(const bn_tensor *a, int axis, bn_tensor **out)
{
    bn_status st = bn_check_operands("softmax", a, NULL);
    if (st != BN_OK)
        return st;
    bn_axis_job j = {0};
    int64_t n_outer = 0;
    st = bn_axis_job_init("softmax", a, axis, &j, &n_outer);
    if (st != BN_OK)
        return st;
    bn_tensor *r = NULL;
    st = bn_tensor_new(BN_F32, a->ndim, a->shape, &r);
    if (st != BN_OK)
        return st;
    j.out = bn_tensor_data(r);
    if (n_outer > 0 && j.n > 0)
        bn_parallel_for(NULL, n_outer, BN_OPS_GRAIN / (j.n + 1) + 1, bn_softmax_rows, &j);
    *out = r;
    return BN_OK;
}

static void bn_rmsnorm_rows(void *ctx, int64_t begin, int64_t end)
{
    const bn_axis_job *j = ctx;
    for (int64_t e = begin; e < end; e++) {
        const float *p = bn_axis_base(j, e);
        float *o = j->out + e * j->n;
        double ss = 0.0;
        for (int64_t k = 0; k < j->n; k++)
            ss += (double)p[k * j->stride] * p[k * j->stride];
        float scale = (float)(1.0 / sqrt(ss / (double)j->n + (double)j->eps));
        for (int64_t k = 0; k < j->n; k++)
            o[k] = p[k * j->stride] * scale * (j->weight ? j->weight[k] : 1.0f);
    }
}

bn_status bn_op_rmsnorm(const bn_tensor *x, const bn_tensor *weight, float eps,
                        bn_tensor **out)
{
    bn_status st = bn_check_operands("rmsnorm", x, weight);
    if (st != BN_OK)
        return st;
    if (x->ndim < 1)
        return bn_error_set(BN_ERR_SHAPE, "rmsnorm: needs at least one axis");
    if (!(eps > 0.0f))
        return bn_error_set(BN_ERR_INVALID_ARG, "rmsnorm: eps must be > 0, got %g",
                            (double)eps);
    int64_t n = x->shape[x->ndim - 1];
    if (weight && (weight->ndim != 1 || weight->shape[0] != n)) {
        char sx[96], sw[96];
        return bn_error_set(BN_ERR_SHAPE, "rmsnorm: weight of shape %s does not fit "
                            "input of shape %s", bn_shape_of(weight, sw, sizeof sw),
                            bn_shape_of(x, sx, sizeof sx));
    }
    bn_tensor *wc = NULL, *r = NULL;
    if (weight && !bn_tensor_is_contiguous(weight) &&
        (st = bn_tensor_contiguous(weight, &wc)) != BN_OK)
        return st;
    bn_axis_job j = {.eps = eps};
    int64_t n_outer = 0;
    bn_axis_job_init("rmsnorm", x, -1, &j, &n_outer);
    st = bn_tensor_new(BN_F32, x->ndim, x->shape, &r);
    if (st == BN_OK) {
        j.out = bn_tensor_data(r);
        j.weight = wc ? bn_tensor_data(wc) : weight ? bn_tensor_data(weight) : NULL;
        if (n_outer > 0 && n > 0)
            bn_parallel_for(NULL, n_outer, BN_OPS_GRAIN / (n + 1) + 1, bn_rmsnorm_rows, &j);
        *out = r;
    }
    bn_tensor_free(wc);
    return st;
}

/* ------------------------------------------------------------------ matmul */

typedef struct bn_matmul_job {
    bn_layout    a;              /* [B0, B1, M, K] */
    const float *bt;             /* packed B^T per b-batch: [Bb0, Bb1, N, K] */
    int64_t      bb_shape[2];    /* b's batch dims (1 where broadcast) */
    int64_t      batch[2];       /* output batch dims */
    int64_t      m, n, k;
    float       *out;            /* [batch0, batch1, M, N] */
    float      (*dot)(const float *, const float *, int64_t);
    const float *a_rows;         /* a expanded to [rows, K] when its last axis is strided;
                                    NULL when a's rows can be read in place */
} bn_matmul_job;

/* Output rows [begin, end) over (batch0, batch1, i). */
static void bn_matmul_rows(void *ctx, int64_t begin, int64_t end)
{
    const bn_matmul_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        int64_t i = r % j->m;
        int64_t b1 = (r / j->m) % j->batch[1];
        int64_t b0 = r / (j->m * j->batch[1]);
        const float *arow;
        if (j->a_rows) {
            arow = j->a_rows + r * j->k;
        } else {
            arow = j->a.data + (j->a.shape[0] == 1 ? 0 : b0 * j->a.stride[0]) +
                   (j->a.shape[1] == 1 ? 0 : b1 * j->a.stride[1]) + i * j->a.stride[2];
        }
        int64_t bb = (j->bb_shape[0] == 1 ? 0 : b0) * j->bb_shape[1] +
                     (j->bb_shape[1] == 1 ? 0 : b1);
        const float *bt = j->bt + bb * j->n * j->k;
        float *o = j->out + r * j->n;
        for (int64_t c = 0; c < j->n; c++)
            o[c] = j->dot(arow, bt + c * j->k, j->k);
    }
}

/* Packs b ([.., K, N], any strides) as B^T rows: [b-batches, N, K]. */
static void bn_pack_bt(const bn_tensor *b, float *bt, int64_t nb)
{
    bn_layout l = bn_layout_of(b);
    int64_t k = l.shape[2], n = l.shape[3];
    for (int64_t batch = 0; batch < nb; batch++) {
        int64_t b0 = batch / l.shape[1], b1 = batch % l.shape[1];
        const float *src = l.data + b0 * l.stride[0] + b1 * l.stride[1];
        float *dst = bt + batch * n * k;
        for (int64_t c = 0; c < n; c++)
            for (int64_t r = 0; r < k; r++)
                dst[c * k + r] = src[r * l.stride[2] + c * l.stride[3]];
    }
}

/* Checks matmul operand ranks and inner dimensions, and computes the output shape. */
static bn_status bn_matmul_shape(const bn_tensor *a, const bn_tensor *b, bn_shape *shape)
{
    char sa[96], sb[96];
    if (a->ndim < 2 || b->ndim < 2 || a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
        return bn_error_set(BN_ERR_SHAPE, "matmul: shapes %s and %s do not fit "
                            "([..., M, K] x [..., K, N])", bn_shape_of(a, sa, sizeof sa),
                            bn_shape_of(b, sb, sizeof sb));
    bn_layout la = bn_layout_of(a), lb = bn_layout_of(b);
    shape->ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t batch[2];
    for (int d = 0; d < 2; d++) {
        if (la.shape[d] != lb.shape[d] && la.shape[d] != 1 && lb.shape[d] != 1)
            return bn_error_set(BN_ERR_SHAPE, "matmul: batch dimensions of %s and %s do "
                                "not broadcast", bn_shape_of(a, sa, sizeof sa),
                                bn_shape_of(b, sb, sizeof sb));
        batch[d] = la.shape[d] == 1 ? lb.shape[d] : la.shape[d];
    }
    int pad = BN_MAX_DIMS - shape->ndim;
    for (int d = 0; d < shape->ndim; d++) {
        int full = d + pad;
        shape->dim[d] = full < 2 ? batch[full] : full == 2 ? la.shape[2] : lb.shape[3];
    }
    return BN_OK;
}

bn_status bn_op_matmul(const bn_tensor *a, const bn_tensor *b, bn_tensor **out)
{
    bn_status st = bn_check_operands("matmul", a, b);
    if (st != BN_OK)
        return st;
    bn_shape shape;
    st = bn_matmul_shape(a, b, &shape);
    if (st != BN_OK)
        return st;
    bn_matmul_job j = {.a = bn_layout_of(a), .dot = bn_kernels()->dot_f32};
    bn_layout lb = bn_layout_of(b);
    j.m = j.a.shape[2];
    j.k = j.a.shape[3];
    j.n = lb.shape[3];
    j.bb_shape[0] = lb.shape[0];
    j.bb_shape[1] = lb.shape[1];
    j.batch[0] = j.a.shape[0] == 1 ? lb.shape[0] : j.a.shape[0];
    j.batch[1] = j.a.shape[1] == 1 ? lb.shape[1] : j.a.shape[1];
    int64_t nb = lb.shape[0] * lb.shape[1];
    int64_t rows = j.batch[0] * j.batch[1] * j.m;
    bn_tensor *r = NULL, *a_copy = NULL;
    float *bt = bn_malloc((size_t)(nb * j.n * j.k) * sizeof(float), "matmul");
    if (!bt)
        return bn_error_wrap(BN_OK, "matmul");
    st = bn_tensor_new(BN_F32, shape.ndim, shape.dim, &r);
    if (st == BN_OK && j.a.stride[3] != 1 && j.k > 1) {
        /* rows of a must be contiguous for the dot kernel: broadcast-expand a */
        bn_tensor *tmp = NULL;
        int64_t full[BN_MAX_DIMS] = {j.batch[0], j.batch[1], j.m, j.k};
        st = bn_tensor_new(BN_F32, 4, full, &tmp);
        if (st == BN_OK) {
            float *dst = bn_tensor_data(tmp);
            for (int64_t row = 0; row < rows; row++) {
                int64_t i = row % j.m, b1 = (row / j.m) % j.batch[1];
                int64_t b0 = row / (j.m * j.batch[1]);
                const float *src = j.a.data + (j.a.shape[0] == 1 ? 0 : b0 * j.a.stride[0]) +
                                   (j.a.shape[1] == 1 ? 0 : b1 * j.a.stride[1]) +
                                   i * j.a.stride[2];
                for (int64_t c = 0; c < j.k; c++)
                    dst[row * j.k + c] = src[c * j.a.stride[3]];
            }
            a_copy = tmp;
            j.a_rows = dst;
        }
    }
    if (st == BN_OK) {
        bn_pack_bt(b, bt, nb);
        j.bt = bt;
        j.out = bn_tensor_data(r);
        int64_t work = j.n * (j.k + 1);
        if (rows > 0 && j.n > 0)
            bn_parallel_for(NULL, rows, BN_OPS_GRAIN / (work + 1) + 1, bn_matmul_rows, &j);
        *out = r;
    } else {
        bn_tensor_free(r);
        bn_error_wrap(BN_OK, "matmul");
    }
    bn_tensor_free(a_copy);
    bn_free(bt);
    return st;
}
