/*
 * tensor.c - tensors: creation, views, element access and copies with dtype
 * conversion.
 *
 * A tensor is a dtype, a shape, strides in elements and an offset into a
 * reference-counted buffer that lives on one device. Views (slice, reshape,
 * transpose, permute) make a new handle on the same buffer; copies always produce a
 * new contiguous CPU tensor. Element-wise loops walk the tensor in row-major order
 * with a multi-index, so every layout a view can produce is handled by one path.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

/* ------------------------------------------------------------------ shapes */

bn_status bn_shape_check(int ndim, const int64_t *shape, int64_t *numel)
{
    if (ndim < 0 || ndim > BN_MAX_DIMS)
        return bn_error_set(BN_ERR_SHAPE, "a tensor has 0 to %d dimensions, not %d",
                            BN_MAX_DIMS, ndim);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return bn_error_set(BN_ERR_SHAPE, "dimension %d is negative (%lld)", i,
                                (long long)shape[i]);
        if (__builtin_mul_overflow(n, shape[i], &n) || n > ((int64_t)1 << 56))
            return bn_error_set(BN_ERR_SHAPE, "tensor of that shape is too large");
    }
    *numel = n;
    return BN_OK;
}

char *bn_shape_str(bn_shape shape, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    len += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < shape.ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "",
                                (long long)shape.dim[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, "]");
    return buf;
}

/* Row-major strides for `shape`. */
static void bn_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

/* ------------------------------------------------------------------ lifetime */

/* A handle and a buffer record around `data` (owned: freed through dev when the last
 * handle goes). On failure nothing is kept; `data` stays the caller's. */
static bn_status bn_tensor_make(bn_device *dev, bn_dtype dtype, int ndim,
                                const int64_t *shape, void *data, size_t nbytes, bool owned,
                                bn_tensor **out)
{
    bn_tensor *t = bn_calloc(1, sizeof *t, "tensor");
    bn_buffer *buf = t ? bn_calloc(1, sizeof *buf, "tensor") : NULL;
    if (!buf) {
        bn_free(t);
        return bn_error_wrap(BN_OK, "creating a %s tensor", bn_dtype_name(dtype));
    }
    buf->data = data;
    buf->nbytes = nbytes;
    buf->device = dev;
    buf->owned = owned;
    atomic_init(&buf->refcount, 1);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    bn_contiguous_strides(ndim, shape, t->stride);
    t->buf = buf;
    *out = t;
    return BN_OK;
}

/* Validates dtype and shape; the byte size in *nbytes. */
static bn_status bn_tensor_check(bn_dtype dtype, int ndim, const int64_t *shape,
                                 size_t *nbytes)
{
    if ((unsigned)dtype >= BN_DTYPE_COUNT)
        return bn_error_set(BN_ERR_DTYPE, "invalid dtype %d", (int)dtype);
    int64_t numel = 0;
    bn_status st = bn_shape_check(ndim, shape, &numel);
    *nbytes = (size_t)numel * bn_dtype_size(dtype);
    return st;
}

bn_status bn_tensor_new_on(bn_device *dev, bn_dtype dtype, int ndim,
                           const int64_t *shape, bn_tensor **out)
{
    size_t nbytes = 0;
    void *data = NULL;
    bn_status st = bn_tensor_check(dtype, ndim, shape, &nbytes);
    if (st == BN_OK)
        st = dev->ops->alloc(dev, nbytes, &data);
    if (st == BN_OK) {
        st = bn_tensor_make(dev, dtype, ndim, shape, data, nbytes, true, out);
        if (st != BN_OK)
            dev->ops->free(dev, data);
    }
    if (st == BN_ERR_OOM || st == BN_ERR_DEVICE)
        bn_error_wrap(BN_OK, "creating a %s tensor of %zu bytes on %s",
                      bn_dtype_name(dtype), nbytes, dev->name);
    return st;
}

bn_status bn_tensor_new(bn_dtype dtype, int ndim, const int64_t *shape, bn_tensor **out)
{
    return bn_tensor_new_on(bn_device_cpu(), dtype, ndim, shape, out);
}

bn_status bn_tensor_from_data(bn_dtype dtype, int ndim, const int64_t *shape,
                              const void *data, bn_tensor **out)
{
    bn_tensor *t = NULL;
    bn_status st = bn_tensor_new(dtype, ndim, shape, &t);
    if (st != BN_OK)
        return st;
    if (t->buf->nbytes)
        memcpy(t->buf->data, data, t->buf->nbytes);
    *out = t;
    return BN_OK;
}

bn_status bn_tensor_wrap(bn_dtype dtype, int ndim, const int64_t *shape, void *data,
                         bn_tensor **out)
{
    size_t nbytes = 0;
    bn_status st = bn_tensor_check(dtype, ndim, shape, &nbytes);
    if (st != BN_OK)
        return st;
    return bn_tensor_make(bn_device_cpu(), dtype, ndim, shape, data, nbytes, false, out);
}

void bn_tensor_free(bn_tensor *t)
{
    if (!t)
        return;
    bn_buffer *buf = t->buf;
    if (atomic_fetch_sub(&buf->refcount, 1) == 1) {
        if (buf->owned)
            buf->device->ops->free(buf->device, buf->data);
        bn_free(buf);
    }
    bn_free(t);
}

/* ------------------------------------------------------------------ accessors */

bn_dtype bn_tensor_dtype(const bn_tensor *t) { return t->dtype; }
int bn_tensor_ndim(const bn_tensor *t) { return t->ndim; }
bn_device *bn_tensor_device(const bn_tensor *t) { return t->buf->device; }

bn_shape bn_tensor_shape(const bn_tensor *t)
{
    bn_shape s = {.ndim = t->ndim};
    for (int i = 0; i < t->ndim; i++)
        s.dim[i] = t->shape[i];
    return s;
}

/* An axis index, negative counting from the end; asserts it is in range. */
static int bn_axis(const bn_tensor *t, int axis)
{
    if (axis < 0)
        axis += t->ndim;
    assert(axis >= 0 && axis < t->ndim && "axis out of range");
    return axis;
}

int64_t bn_tensor_dim(const bn_tensor *t, int axis) { return t->shape[bn_axis(t, axis)]; }
int64_t bn_tensor_stride(const bn_tensor *t, int axis) { return t->stride[bn_axis(t, axis)]; }

int64_t bn_tensor_numel(const bn_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t bn_tensor_nbytes(const bn_tensor *t)
{
    return (size_t)bn_tensor_numel(t) * bn_dtype_size(t->dtype);
}

bool bn_tensor_is_contiguous(const bn_tensor *t)
{
    int64_t expected = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 0)
            return true;
        if (t->shape[i] != 1 && t->stride[i] != expected)
            return false;
        expected *= t->shape[i];
    }
    return true;
}

void *bn_tensor_data(const bn_tensor *t)
{
    return (char *)t->buf->data + (size_t)t->offset * bn_dtype_size(t->dtype);
}

void *bn_tensor_elem_ptr(const bn_tensor *t, const int64_t *idx)
{
    int64_t off = t->offset;
    for (int i = 0; i < t->ndim; i++) {
        assert(idx[i] >= 0 && idx[i] < t->shape[i] && "index out of range");
        off += idx[i] * t->stride[i];
    }
    return (char *)t->buf->data + (size_t)off * bn_dtype_size(t->dtype);
}

bn_status bn_require_cpu_f32(const char *op, const bn_tensor *t)
{
    if (t->buf->device->type != BN_DEVICE_CPU)
        return bn_error_set(BN_ERR_DEVICE, "%s: the tensor is on %s; move it to the CPU "
                            "first", op, t->buf->device->name);
    if (t->dtype != BN_F32)
        return bn_error_set(BN_ERR_DTYPE, "%s: expected an f32 tensor, got %s", op,
                            bn_dtype_name(t->dtype));
    return BN_OK;
}

/* ------------------------------------------------------------------ elements */

/* One element as double. */
static double bn_load(bn_dtype dtype, const void *p)
{
    float f; int32_t i32; uint16_t h;
    switch (dtype) {
    case BN_F32:  memcpy(&f, p, 4); return f;
    case BN_F16:  memcpy(&h, p, 2); return bn_f16_to_f32(h);
    case BN_BF16: memcpy(&h, p, 2); return bn_bf16_to_f32(h);
    case BN_I8:   return *(const int8_t *)p;
    case BN_I32:  memcpy(&i32, p, 4); return i32;
    default:      assert(!"bad dtype"); return 0;
    }
}

/* Round half away from zero and saturate to [lo, hi]; NaN gives 0. */
static double bn_round_saturate(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    v = round(v);
    return v < lo ? lo : v > hi ? hi : v;
}

/* Store a double into one element, converting to the dtype. */
static void bn_store(bn_dtype dtype, void *p, double v)
{
    float f = (float)v;
    uint16_t h;
    int32_t i32;
    switch (dtype) {
    case BN_F32:  memcpy(p, &f, 4); break;
    case BN_F16:  h = bn_f32_to_f16(f); memcpy(p, &h, 2); break;
    case BN_BF16: h = bn_f32_to_bf16(f); memcpy(p, &h, 2); break;
    case BN_I8:   *(int8_t *)p = (int8_t)bn_round_saturate(v, -128, 127); break;
    case BN_I32:
        i32 = (int32_t)bn_round_saturate(v, -2147483648.0, 2147483647.0);
        memcpy(p, &i32, 4);
        break;
    default: assert(!"bad dtype");
    }
}

/* Asserts a CPU tensor, for the accessors that hand out host pointers. */
static void bn_assert_cpu(const bn_tensor *t)
{
    assert(t->buf->device->type == BN_DEVICE_CPU && "element access needs a CPU tensor");
    (void)t;
}

double bn_tensor_get(const bn_tensor *t, const int64_t *idx)
{
    bn_assert_cpu(t);
    return bn_load(t->dtype, bn_tensor_elem_ptr(t, idx));
}

float bn_tensor_get_f32(const bn_tensor *t, const int64_t *idx)
{
    return (float)bn_tensor_get(t, idx);
}

void bn_tensor_set(bn_tensor *t, const int64_t *idx, double value)
{
    bn_assert_cpu(t);
    bn_store(t->dtype, bn_tensor_elem_ptr(t, idx), value);
}

/* Advance a row-major multi-index; false after the last element. */
static bool bn_index_next(int ndim, const int64_t *shape, int64_t *idx)
{
    for (int i = ndim - 1; i >= 0; i--) {
        if (++idx[i] < shape[i])
            return true;
        idx[i] = 0;
    }
    return false;
}

static bn_status bn_require_cpu(const char *op, const bn_tensor *t)
{
    if (t->buf->device->type != BN_DEVICE_CPU)
        return bn_error_set(BN_ERR_DEVICE, "%s: the tensor is on %s; move it to the CPU "
                            "first", op, t->buf->device->name);
    return BN_OK;
}

bn_status bn_tensor_fill(bn_tensor *t, double value)
{
    bn_status st = bn_require_cpu("fill", t);
    if (st != BN_OK)
        return st;
    if (bn_tensor_numel(t) == 0)
        return BN_OK;
    unsigned char elem[8];
    bn_store(t->dtype, elem, value);
    size_t esize = bn_dtype_size(t->dtype);
    int64_t idx[BN_MAX_DIMS] = {0};
    do {
        memcpy(bn_tensor_elem_ptr(t, idx), elem, esize);
    } while (bn_index_next(t->ndim, t->shape, idx));
    return BN_OK;
}

/* Copy `src`'s elements in row-major order to contiguous `dst` of `dtype`. */
static void bn_gather(const bn_tensor *src, bn_dtype dtype, void *dst)
{
    int64_t numel = bn_tensor_numel(src);
    if (numel == 0)
        return;
    if (bn_tensor_is_contiguous(src)) {
        const void *s = bn_tensor_data(src);
        if (src->dtype == dtype) {
            memcpy(dst, s, (size_t)numel * bn_dtype_size(dtype));
            return;
        }
        if (src->dtype == BN_F32 && dtype == BN_F16) {
            bn_f32_to_f16_row(s, dst, numel);
            return;
        }
        if (src->dtype == BN_F16 && dtype == BN_F32) {
            bn_f16_to_f32_row(s, dst, numel);
            return;
        }
    }
    size_t in_size = bn_dtype_size(src->dtype), out_size = bn_dtype_size(dtype);
    unsigned char *d = dst;
    int64_t idx[BN_MAX_DIMS] = {0};
    do {
        const void *p = bn_tensor_elem_ptr(src, idx);
        if (src->dtype == dtype)
            memcpy(d, p, in_size);
        else
            bn_store(dtype, d, bn_load(src->dtype, p));
        d += out_size;
    } while (bn_index_next(src->ndim, src->shape, idx));
}

bn_status bn_tensor_read(const bn_tensor *t, bn_dtype dtype, void *dst, size_t dst_bytes)
{
    bn_status st = bn_require_cpu("read", t);
    if (st != BN_OK)
        return st;
    if ((unsigned)dtype >= BN_DTYPE_COUNT)
        return bn_error_set(BN_ERR_DTYPE, "read: invalid dtype %d", (int)dtype);
    size_t need = (size_t)bn_tensor_numel(t) * bn_dtype_size(dtype);
    if (dst_bytes < need)
        return bn_error_set(BN_ERR_INVALID_ARG, "read: destination holds %zu bytes, "
                            "the tensor needs %zu", dst_bytes, need);
    bn_gather(t, dtype, dst);
    return BN_OK;
}

bn_status bn_tensor_convert(const bn_tensor *t, bn_dtype dtype, bn_tensor **out)
{
    bn_status st = bn_require_cpu("convert", t);
    if (st != BN_OK)
        return st;
    bn_tensor *r = NULL;
    st = bn_tensor_new(dtype, t->ndim, t->shape, &r);
    if (st != BN_OK)
        return st;
    bn_gather(t, dtype, bn_tensor_data(r));
    *out = r;
    return BN_OK;
}

bn_status bn_tensor_contiguous(const bn_tensor *t, bn_tensor **out)
{
    return bn_tensor_convert(t, t->dtype, out);
}

bn_status bn_tensor_copy_into(bn_tensor *dst, const bn_tensor *src)
{
    bn_status st = bn_require_cpu("copy", dst);
    if (st == BN_OK)
        st = bn_require_cpu("copy", src);
    if (st != BN_OK)
        return st;
    bool same = dst->ndim == src->ndim;
    for (int i = 0; same && i < dst->ndim; i++)
        same = dst->shape[i] == src->shape[i];
    if (!same) {
        char a[96], b[96];
        return bn_error_set(BN_ERR_SHAPE, "copy: destination shape %s differs from "
                            "source shape %s", bn_shape_str(bn_tensor_shape(dst), a, sizeof a),
                            bn_shape_str(bn_tensor_shape(src), b, sizeof b));
    }
    if (bn_tensor_numel(src) == 0)
        return BN_OK;
    int64_t idx[BN_MAX_DIMS] = {0};
    do {
        bn_store(dst->dtype, bn_tensor_elem_ptr(dst, idx),
                 bn_load(src->dtype, bn_tensor_elem_ptr(src, idx)));
    } while (bn_index_next(src->ndim, src->shape, idx));
    return BN_OK;
}

/* ------------------------------------------------------------------ views */

/* A new handle on t's buffer with t's layout, for a view to adjust. */
static bn_status bn_tensor_view(const bn_tensor *t, bn_tensor **out)
{
    bn_tensor *v = bn_malloc(sizeof *v, "tensor");
    if (!v)
        return bn_error_wrap(BN_ERR_OOM, "creating a view");
    *v = *t;
    atomic_fetch_add(&t->buf->refcount, 1);
    *out = v;
    return BN_OK;
}

/* Normalises a possibly negative axis; an error naming the op when out of range. */
static bn_status bn_axis_check(const char *op, const bn_tensor *t, int *axis)
{
    int a = *axis < 0 ? *axis + t->ndim : *axis;
    if (a < 0 || a >= t->ndim)
        return bn_error_set(BN_ERR_INVALID_ARG, "%s: axis %d is out of range for a "
                            "%d-dimensional tensor", op, *axis, t->ndim);
    *axis = a;
    return BN_OK;
}

bn_status bn_tensor_slice(const bn_tensor *t, int axis, int64_t start, int64_t stop,
                          int64_t step, bn_tensor **out)
{
    bn_status st = bn_axis_check("slice", t, &axis);
    if (st != BN_OK)
        return st;
    if (step < 1 || start < 0 || start > stop || stop > t->shape[axis])
        return bn_error_set(BN_ERR_INVALID_ARG, "slice: [%lld:%lld:%lld] does not fit "
                            "axis %d of size %lld", (long long)start, (long long)stop,
                            (long long)step, axis, (long long)t->shape[axis]);
    bn_tensor *v = NULL;
    st = bn_tensor_view(t, &v);
    if (st != BN_OK)
        return st;
    v->shape[axis] = (stop - start + step - 1) / step;
    if (v->shape[axis] > 0)
        v->offset += start * t->stride[axis];
    v->stride[axis] *= step;
    *out = v;
    return BN_OK;
}

bn_status bn_tensor_reshape(const bn_tensor *t, int ndim, const int64_t *shape,
                            bn_tensor **out)
{
    char a[96], b[96];
    if (ndim < 0 || ndim > BN_MAX_DIMS)
        return bn_error_set(BN_ERR_SHAPE, "reshape: %d dimensions (at most %d)", ndim,
                            BN_MAX_DIMS);
    bn_shape want = {.ndim = ndim};
    int infer = -1;
    int64_t known = 1, numel = bn_tensor_numel(t);
    for (int i = 0; i < ndim; i++) {
        want.dim[i] = shape[i];
        if (shape[i] == -1 && infer < 0) {
            infer = i;
            continue;
        }
        if (shape[i] < 0 || __builtin_mul_overflow(known, shape[i], &known))
            return bn_error_set(BN_ERR_SHAPE, "reshape: invalid shape %s",
                                bn_shape_str(want, a, sizeof a));
    }
    if (infer >= 0)
        want.dim[infer] = known ? numel / known : 0;
    int64_t total = 1;
    for (int i = 0; i < ndim; i++)
        total *= want.dim[i];
    if (total != numel || (infer >= 0 && known == 0))
        return bn_error_set(BN_ERR_SHAPE, "reshape: cannot view %s as %s",
                            bn_shape_str(bn_tensor_shape(t), a, sizeof a),
                            bn_shape_str(want, b, sizeof b));
    if (!bn_tensor_is_contiguous(t))
        return bn_error_set(BN_ERR_SHAPE, "reshape: the %s tensor is not contiguous; "
                            "make a contiguous copy first",
                            bn_shape_str(bn_tensor_shape(t), a, sizeof a));
    bn_tensor *v = NULL;
    bn_status st = bn_tensor_view(t, &v);
    if (st != BN_OK)
        return st;
    v->ndim = ndim;
    memcpy(v->shape, want.dim, sizeof v->shape);
    bn_contiguous_strides(ndim, v->shape, v->stride);
    *out = v;
    return BN_OK;
}

bn_status bn_tensor_permute(const bn_tensor *t, const int *perm, bn_tensor **out)
{
    bool seen[BN_MAX_DIMS] = {false};
    for (int i = 0; i < t->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= t->ndim || seen[perm[i]])
            return bn_error_set(BN_ERR_INVALID_ARG, "permute: axis list is not a "
                                "permutation of 0..%d", t->ndim - 1);
        seen[perm[i]] = true;
    }
    bn_tensor *v = NULL;
    bn_status st = bn_tensor_view(t, &v);
    if (st != BN_OK)
        return st;
    for (int i = 0; i < t->ndim; i++) {
        v->shape[i] = t->shape[perm[i]];
        v->stride[i] = t->stride[perm[i]];
    }
    *out = v;
    return BN_OK;
}

bn_status bn_tensor_transpose(const bn_tensor *t, int axis0, int axis1, bn_tensor **out)
{
    bn_status st = bn_axis_check("transpose", t, &axis0);
    if (st == BN_OK)
        st = bn_axis_check("transpose", t, &axis1);
    if (st != BN_OK)
        return st;
    int perm[BN_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++)
        perm[i] = i;
    perm[axis0] = axis1;
    perm[axis1] = axis0;
    return bn_tensor_permute(t, perm, out);
}
