/*
 * test_device_cuda.c - tensors go to a CUDA GPU and back bit for bit: f32 (with NaN
 * payloads, -0.0, infinities and subnormals), f16, bf16, i8 and i32, several shapes
 * including a scalar, an empty tensor and transposed (strided) views; the GPU copy
 * reports the right device and name; a GPU-to-same-GPU copy is exact too; and every
 * tracked block is released. Skips (exit 77) without a CUDA device in the build or
 * on the machine.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "check.h"

/* The first CUDA device, NULL when none. */
static bn_device *find_cuda(void)
{
    for (int i = 0; i < bn_device_count(); i++) {
        bn_device *d = bn_device_get(i);
        if (d && bn_device_type_of(d) == BN_DEVICE_CUDA)
            return d;
    }
    return NULL;
}

/* The live block count of the tracking allocator. */
static uint64_t live_blocks(void)
{
    bn_mem_stats s;
    bn_mem_get_stats(&s);
    return s.live_blocks;
}

/* A float from its bit pattern. */
static float f32_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Fills `bytes` with n elements of `dtype`: special values first, then a pattern. */
static void make_data(bn_dtype dtype, int64_t n, unsigned char *bytes)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t k = (uint32_t)i * 2654435761u;
        if (dtype == BN_F32) {
            static const uint32_t special[] = {
                0x7fc12345u, /* quiet NaN with a payload */
                0xffc00001u, /* negative NaN */
                0x80000000u, /* -0.0 */
                0x7f800000u, /* +inf */
                0xff800000u, /* -inf */
                0x00000001u, /* smallest subnormal */
                0x807fffffu, /* largest negative subnormal */
                0x7f7fffffu, /* FLT_MAX */
            };
            float v = i < 8 ? f32_bits(special[i]) : (float)((int32_t)k) * 1e-7f;
            memcpy(bytes + 4 * i, &v, 4);
        } else if (dtype == BN_F16 || dtype == BN_BF16) {
            static const uint16_t special[] = {0x7e01, 0x8000, 0x7c00, 0xfc00, 0x0001,
                                               0x03ff, 0x7f81, 0xffff};
            uint16_t v = i < 8 ? special[i] : (uint16_t)(k >> 16);
            memcpy(bytes + 2 * i, &v, 2);
        } else if (dtype == BN_I8) {
            bytes[i] = (unsigned char)(i < 2 ? (i ? 0x80 : 0x7f) : k >> 24);
        } else {
            int32_t v = i == 0 ? INT32_MIN : i == 1 ? INT32_MAX : (int32_t)k;
            memcpy(bytes + 4 * i, &v, 4);
        }
    }
}

/* The row-major bytes of the view of `src` (shape s, ndim nd, contiguous) that swaps
 * axes a0 and a1, computed by index arithmetic. */
static void transposed_bytes(const unsigned char *src, int nd, const int64_t *s, int a0,
                             int a1, size_t esize, unsigned char *dst)
{
    int64_t vs[4], stride[4], n = 1;
    for (int d = nd - 1; d >= 0; d--) {
        stride[d] = n;
        n *= s[d];
    }
    for (int d = 0; d < nd; d++)
        vs[d] = s[d == a0 ? a1 : d == a1 ? a0 : d];
    for (int64_t flat = 0; flat < n; flat++) {
        int64_t rem = flat, off = 0;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t v = rem % vs[d];
            rem /= vs[d];
            int src_axis = d == a0 ? a1 : d == a1 ? a0 : d;
            off += v * stride[src_axis];
        }
        memcpy(dst + flat * esize, src + off * esize, esize);
    }
}

/* Sends t to the GPU and back (and GPU to GPU and back), comparing with `expect`
 * (nbytes row-major bytes of t). */
static void round_trip(const bn_tensor *t, bn_device *cuda, const unsigned char *expect,
                       size_t nbytes, const char *what)
{
    bn_dtype dt = bn_tensor_dtype(t);
    bn_tensor *g = NULL, *g2 = NULL, *back = NULL, *back2 = NULL;
    CHECK_OK(bn_tensor_to_device(t, cuda, &g));
    if (!g)
        return;
    CHECK(bn_tensor_device(g) == cuda, "%s: GPU copy is on %s", what,
          bn_device_name(bn_tensor_device(g)));
    CHECK(strcmp(bn_device_name(bn_tensor_device(g)), "cuda:0") == 0, "%s: name %s",
          what, bn_device_name(bn_tensor_device(g)));
    CHECK(bn_tensor_dtype(g) == dt && bn_tensor_numel(g) == bn_tensor_numel(t) &&
          bn_tensor_ndim(g) == bn_tensor_ndim(t), "%s: GPU copy changed dtype/shape", what);
    for (int d = 0; d < bn_tensor_ndim(t); d++)
        CHECK(bn_tensor_dim(g, d) == bn_tensor_dim(t, d), "%s: dim %d differs", what, d);
    CHECK(bn_tensor_is_contiguous(g), "%s: GPU copy not contiguous", what);

    CHECK_OK(bn_tensor_to_device(g, bn_device_cpu(), &back));
    CHECK_OK(bn_tensor_to_device(g, cuda, &g2));
    if (g2)
        CHECK_OK(bn_tensor_to_device(g2, bn_device_cpu(), &back2));
    unsigned char *want = malloc(nbytes + 1), *got = malloc(nbytes + 1);
    CHECK_OK(bn_tensor_read(t, dt, want, nbytes));
    CHECK(memcmp(want, expect, nbytes) == 0, "%s: source reads back wrong", what);
    bn_tensor *outs[2] = {back, back2};
    for (int k = 0; k < 2; k++) {
        if (!outs[k])
            continue;
        CHECK(bn_tensor_device(outs[k]) == bn_device_cpu(), "%s: not back on the CPU", what);
        CHECK(bn_tensor_nbytes(outs[k]) == nbytes, "%s: %zu bytes back, sent %zu", what,
              bn_tensor_nbytes(outs[k]), nbytes);
        memset(got, 0xa5, nbytes + 1);
        CHECK_OK(bn_tensor_read(outs[k], dt, got, nbytes));
        CHECK(memcmp(got, want, nbytes) == 0, "%s (%s): bytes differ after the trip",
              what, k ? "via GPU-to-GPU" : "direct");
        CHECK(nbytes == 0 || memcmp(bn_tensor_data(outs[k]), expect, nbytes) == 0,
              "%s: raw buffer differs", what);
    }
    free(want);
    free(got);
    bn_tensor_free(back2);
    bn_tensor_free(g2);
    bn_tensor_free(back);
    bn_tensor_free(g);
}

/* One dtype, one shape: the tensor itself, then (2-D and up) a transposed view. */
static void test_shape(bn_device *cuda, bn_dtype dt, int nd, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= shape[d];
    size_t esize = bn_dtype_size(dt), nbytes = (size_t)n * esize;
    unsigned char *data = malloc(nbytes + 1), *view_bytes = malloc(nbytes + 1);
    make_data(dt, n, data);
    char what[96], sbuf[48];
    bn_shape sh = {nd, {0}};
    for (int d = 0; d < nd; d++)
        sh.dim[d] = shape[d];
    snprintf(what, sizeof what, "%s %s", bn_dtype_name(dt), bn_shape_str(sh, sbuf,
             sizeof sbuf));

    bn_tensor *t = NULL;
    CHECK_OK(bn_tensor_from_data(dt, nd, shape, data, &t));
    if (t) {
        round_trip(t, cuda, data, nbytes, what);
        if (nd >= 2) {
            bn_tensor *v = NULL;
            CHECK_OK(bn_tensor_transpose(t, 0, nd - 1, &v));
            if (v) {
                CHECK(n <= 1 || !bn_tensor_is_contiguous(v) || shape[0] == 1 ||
                      shape[nd - 1] == 1, "%s: transpose is contiguous", what);
                transposed_bytes(data, nd, shape, 0, nd - 1, esize, view_bytes);
                strncat(what, " transposed", sizeof what - strlen(what) - 1);
                round_trip(v, cuda, view_bytes, nbytes, what);
                bn_tensor_free(v);
            }
        }
        bn_tensor_free(t);
    }
    free(data);
    free(view_bytes);
}

int main(void)
{
    bn_device *cuda = find_cuda();
    if (!cuda)
        check_skip("test_device_cuda", "no CUDA device in this build or machine");
    uint64_t base = live_blocks();

    static const struct { int nd; int64_t dim[4]; } shapes[] = {
        {0, {0}}, {1, {1}}, {1, {1000}}, {2, {3, 5}}, {2, {0, 3}},
        {3, {2, 3, 4}}, {4, {2, 1, 3, 5}}, {2, {257, 129}},
    };
    static const bn_dtype dtypes[] = {BN_F32, BN_F16, BN_BF16, BN_I8, BN_I32};
    for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            test_shape(cuda, dtypes[d], shapes[s].nd, shapes[s].dim);

    CHECK(live_blocks() == base, "%lld tracked blocks leaked",
          (long long)(live_blocks() - base));
    return check_summary("test_device_cuda");
}
