/*
 * test_tensor.c - tensors (creation, views, copies, element access), dtype conversion
 * against NumPy/PyTorch (tests/fixtures/dtype.bnfx, made by
 * scripts/fixtures/make_dtype.py), the SIMD conversion kernels against the scalar
 * reference, and failure injection over every tensor allocation.
 */
#include <math.h>
#include <string.h>

#include "bitnet.h"
#include "check.h"
#include "core/internal.h"
#include "fail_alloc.h"
#include "fixture.h"

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static void test_create(void)
{
    bn_tensor *t = NULL;
    CHECK_OK(bn_tensor_new(BN_F32, 3, (int64_t[]){2, 3, 4}, &t));
    if (!t)
        return;
    CHECK(bn_tensor_ndim(t) == 3 && bn_tensor_numel(t) == 24 && bn_tensor_nbytes(t) == 96,
          "shape facts");
    CHECK(bn_tensor_stride(t, 0) == 12 && bn_tensor_stride(t, 1) == 4 &&
          bn_tensor_stride(t, 2) == 1 && bn_tensor_stride(t, -1) == 1, "row-major strides");
    CHECK(bn_tensor_dim(t, -1) == 4 && bn_tensor_dim(t, 0) == 2, "dims");
    CHECK(bn_tensor_is_contiguous(t) && bn_tensor_device(t) == bn_device_cpu(), "cpu, contig");
    CHECK(((uintptr_t)bn_tensor_data(t)) % 64 == 0, "data 64-byte aligned");
    double sum = 0;
    for (int i = 0; i < 24; i++)
        sum += fabs(((float *)bn_tensor_data(t))[i]);
    CHECK(sum == 0, "zero-filled");
    bn_tensor_free(t);

    CHECK(bn_dtype_size(BN_F16) == 2 && bn_dtype_size(BN_BF16) == 2 &&
          bn_dtype_size(BN_I8) == 1 && bn_dtype_size(BN_I32) == 4 &&
          bn_dtype_size(BN_F32) == 4 && bn_dtype_size((bn_dtype)77) == 0, "dtype sizes");
    CHECK(strcmp(bn_dtype_name(BN_BF16), "bf16") == 0 && strcmp(bn_dtype_name(BN_I8), "i8") == 0,
          "dtype names");

    /* scalar (0-d) tensor */
    CHECK_OK(bn_tensor_new(BN_I32, 0, NULL, &t));
    CHECK(t && bn_tensor_numel(t) == 1, "0-d has one element");
    bn_tensor_set(t, NULL, -7.6);
    CHECK(t && bn_tensor_get(t, NULL) == -8.0, "0-d set/get with rounding");
    bn_tensor_free(t);

    t = (bn_tensor *)1;
    CHECK(bn_tensor_new(BN_F32, 5, (int64_t[]){1, 1, 1, 1, 1}, &t) == BN_ERR_SHAPE, "5-D");
    CHECK(bn_tensor_new(BN_F32, 2, (int64_t[]){2, -1}, &t) == BN_ERR_SHAPE, "negative");
    CHECK(strstr(bn_last_error(), "negative") != NULL, "message: %s", bn_last_error());
    CHECK(bn_tensor_new(BN_F32, 3, (int64_t[]){1LL << 30, 1LL << 30, 1LL << 30}, &t) ==
          BN_ERR_SHAPE, "overflowing shape refused");
    CHECK(bn_tensor_new((bn_dtype)9, 1, (int64_t[]){2}, &t) == BN_ERR_DTYPE, "bad dtype");
    CHECK(t == (bn_tensor *)1, "output untouched on failure");
}

static void test_from_data_wrap(void)
{
    float src[6] = {1, 2, 3, 4, 5, 6};
    bn_tensor *a = NULL, *w = NULL;
    CHECK_OK(bn_tensor_from_data(BN_F32, 2, (int64_t[]){2, 3}, src, &a));
    src[0] = 100;
    CHECK(a && bn_tensor_get(a, (int64_t[]){0, 0}) == 1 &&
          bn_tensor_get(a, (int64_t[]){1, 2}) == 6, "from_data copies");
    CHECK_OK(bn_tensor_wrap(BN_F32, 2, (int64_t[]){3, 2}, src, &w));
    CHECK(w && bn_tensor_data(w) == (void *)src && bn_tensor_get(w, (int64_t[]){0, 0}) == 100,
          "wrap shares caller memory");
    bn_tensor_set(w, (int64_t[]){2, 1}, -1);
    CHECK(src[5] == -1, "writes go to the caller's memory");
    bn_tensor_free(w); /* must not free src (ASan/valgrind would report) */
    bn_tensor_free(a);
}

static void test_get_set(void)
{
    bn_tensor *t = NULL;
    CHECK_OK(bn_tensor_new(BN_I8, 1, (int64_t[]){6}, &t));
    double in[6] = {2.5, -2.5, 300, -300, 0.49, NAN};
    double want[6] = {3, -3, 127, -128, 0, 0};
    for (int64_t i = 0; i < 6; i++)
        bn_tensor_set(t, &i, in[i]);
    for (int64_t i = 0; i < 6; i++)
        CHECK(bn_tensor_get(t, &i) == want[i], "i8 [%lld] = %g, want %g", (long long)i,
              bn_tensor_get(t, &i), want[i]);
    bn_tensor_free(t);
    CHECK_OK(bn_tensor_new(BN_I32, 1, (int64_t[]){2}, &t));
    bn_tensor_set(t, (int64_t[]){0}, 1e12);
    bn_tensor_set(t, (int64_t[]){1}, -1e12);
    CHECK(bn_tensor_get(t, (int64_t[]){0}) == 2147483647.0 &&
          bn_tensor_get(t, (int64_t[]){1}) == -2147483648.0, "i32 saturates");
    bn_tensor_free(t);
    CHECK_OK(bn_tensor_new(BN_F16, 1, (int64_t[]){1}, &t));
    bn_tensor_set(t, (int64_t[]){0}, 0.1);
    CHECK(bn_tensor_get_f32(t, (int64_t[]){0}) == 0.0999755859375f, "f16 rounding of 0.1");
    CHECK(bn_tensor_fill(t, 70000) == BN_OK && isinf(bn_tensor_get(t, (int64_t[]){0})),
          "fill with f16 overflow gives inf");
    bn_tensor_free(t);
}

/* A [3, 4] f32 tensor holding 0..11. */
static bn_tensor *iota34(void)
{
    float v[12];
    for (int i = 0; i < 12; i++)
        v[i] = (float)i;
    bn_tensor *t = NULL;
    bn_tensor_from_data(BN_F32, 2, (int64_t[]){3, 4}, v, &t);
    return t;
}

static void test_views(void)
{
    bn_tensor *t = iota34(), *s = NULL, *r = NULL, *tr = NULL, *c = NULL, *p = NULL;
    CHECK_OK(bn_tensor_slice(t, 1, 1, 4, 2, &s));   /* columns 1, 3 */
    CHECK(s && bn_tensor_dim(s, 0) == 3 && bn_tensor_dim(s, 1) == 2, "slice shape");
    CHECK(s && bn_tensor_get(s, (int64_t[]){2, 1}) == 11 && bn_tensor_get(s, (int64_t[]){1, 0}) == 5,
          "slice values");
    CHECK(s && !bn_tensor_is_contiguous(s), "stepped slice is strided");
    bn_tensor_set(s, (int64_t[]){0, 0}, 42);
    CHECK(bn_tensor_get(t, (int64_t[]){0, 1}) == 42, "a view shares data");
    bn_tensor_set(s, (int64_t[]){0, 0}, 1);
    CHECK(bn_tensor_slice(t, 0, 2, 4, 1, &r) == BN_ERR_INVALID_ARG, "slice past the end");
    CHECK(bn_tensor_slice(t, 2, 0, 1, 1, &r) == BN_ERR_INVALID_ARG, "slice bad axis");
    CHECK(bn_tensor_slice(t, 0, 0, 1, 0, &r) == BN_ERR_INVALID_ARG, "slice step 0");
    bn_tensor *e = NULL;
    CHECK_OK(bn_tensor_slice(t, 0, 3, 3, 1, &e));
    CHECK(e && bn_tensor_numel(e) == 0, "empty slice");
    bn_tensor_free(e);

    CHECK_OK(bn_tensor_reshape(t, 3, (int64_t[]){2, -1, 3}, &r));
    CHECK(r && bn_tensor_dim(r, 1) == 2 && bn_tensor_get(r, (int64_t[]){1, 1, 2}) == 11,
          "reshape with -1");
    CHECK(bn_tensor_reshape(t, 2, (int64_t[]){5, -1}, &e) == BN_ERR_SHAPE, "12 into 5x?");
    CHECK(strstr(bn_last_error(), "[3, 4]") != NULL, "message names shape: %s", bn_last_error());
    CHECK(bn_tensor_reshape(s, 1, (int64_t[]){6}, &e) == BN_ERR_SHAPE, "strided reshape");
    CHECK(strstr(bn_last_error(), "contiguous") != NULL, "says why: %s", bn_last_error());

    CHECK_OK(bn_tensor_transpose(t, 0, 1, &tr));
    CHECK(tr && bn_tensor_dim(tr, 0) == 4 && bn_tensor_stride(tr, 0) == 1 &&
          bn_tensor_stride(tr, 1) == 4 && bn_tensor_get(tr, (int64_t[]){3, 2}) == 11 &&
          bn_tensor_get(tr, (int64_t[]){1, 2}) == 9, "transpose");
    CHECK_OK(bn_tensor_contiguous(tr, &c));
    float want[12] = {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11};
    CHECK(c && bn_tensor_is_contiguous(c) &&
          memcmp(bn_tensor_data(c), want, sizeof want) == 0, "contiguous copy of transpose");

    bn_tensor *t4 = NULL;
    CHECK_OK(bn_tensor_new(BN_F32, 4, (int64_t[]){2, 3, 4, 5}, &t4));
    for (int i = 0; i < 120; i++)
        ((float *)bn_tensor_data(t4))[i] = (float)i;
    CHECK_OK(bn_tensor_permute(t4, (int[]){2, 0, 3, 1}, &p));
    CHECK(p && bn_tensor_dim(p, 0) == 4 && bn_tensor_dim(p, 1) == 2 &&
          bn_tensor_dim(p, 2) == 5 && bn_tensor_dim(p, 3) == 3, "permuted shape");
    /* p[a][b][c][d] = t4[b][d][a][c] = b*60 + d*20 + a*5 + c */
    CHECK(p && bn_tensor_get(p, (int64_t[]){3, 1, 4, 2}) == 60 + 40 + 15 + 4, "permuted value");
    bn_tensor *bad = NULL;
    CHECK(bn_tensor_permute(t4, (int[]){0, 0, 1, 2}, &bad) == BN_ERR_INVALID_ARG,
          "permute needs a permutation");

    /* a view outlives its source handle */
    bn_tensor_free(t);
    CHECK(bn_tensor_get(tr, (int64_t[]){2, 1}) == 6, "view valid after source freed");
    bn_tensor *objs[] = {s, r, tr, c, t4, p};
    for (int i = 0; i < 6; i++)
        bn_tensor_free(objs[i]);
}

static void test_copies(void)
{
    bn_tensor *t = iota34(), *tr = NULL, *dst = NULL, *col = NULL, *h = NULL, *i8 = NULL;
    CHECK_OK(bn_tensor_transpose(t, 0, 1, &tr));
    CHECK_OK(bn_tensor_new(BN_F32, 2, (int64_t[]){4, 6}, &dst));
    CHECK_OK(bn_tensor_slice(dst, 1, 0, 6, 2, &col)); /* [4, 3], stride 2 */
    CHECK_OK(bn_tensor_copy_into(col, tr));
    CHECK(bn_tensor_get(dst, (int64_t[]){3, 4}) == 11 && bn_tensor_get(dst, (int64_t[]){3, 3}) == 0 &&
          bn_tensor_get(dst, (int64_t[]){1, 2}) == 5, "copy into a strided view");
    CHECK(bn_tensor_copy_into(dst, t) == BN_ERR_SHAPE, "shape mismatch refused");
    CHECK(strstr(bn_last_error(), "[4, 6]") && strstr(bn_last_error(), "[3, 4]"),
          "both shapes named: %s", bn_last_error());
    CHECK_OK(bn_tensor_convert(tr, BN_F16, &h));
    CHECK(h && bn_tensor_dtype(h) == BN_F16 && bn_tensor_get(h, (int64_t[]){3, 2}) == 11,
          "convert a view to f16");
    CHECK_OK(bn_tensor_convert(h, BN_I8, &i8));
    CHECK(i8 && bn_tensor_get(i8, (int64_t[]){1, 1}) == 5, "f16 to i8");
    int8_t buf[12];
    CHECK_OK(bn_tensor_read(i8, BN_I8, buf, sizeof buf));
    CHECK(buf[1] == 4 && buf[11] == 11, "read row-major");
    CHECK(bn_tensor_read(i8, BN_F32, buf, sizeof buf) == BN_ERR_INVALID_ARG, "small buffer");
    CHECK_OK(bn_tensor_fill(col, 2.5));
    CHECK(bn_tensor_get(dst, (int64_t[]){0, 2}) == 2.5 && bn_tensor_get(dst, (int64_t[]){0, 1}) == 0,
          "fill touches only the view");
    bn_tensor *objs[] = {t, tr, dst, col, h, i8};
    for (int i = 0; i < 6; i++)
        bn_tensor_free(objs[i]);
}

static void test_dtype_reference(void)
{
    fx_file *fx = fx_open("dtype.bnfx");
    CHECK(fx != NULL, "dtype fixture");
    if (!fx)
        return;
    const fx_array *vals = fx_get(fx, "f32.values"), *f16 = fx_get(fx, "f16.bits");
    const fx_array *bf16 = fx_get(fx, "bf16.bits"), *f16all = fx_get(fx, "f16.all.f32");
    const fx_array *bfall = fx_get(fx, "bf16.all.f32");
    const float *v = vals->data;
    const uint16_t *hb = f16->data, *bb = bf16->data;
    int64_t n = vals->numel;
    int bad16 = 0, badbf = 0, badrow = 0;
    uint16_t *row = malloc((size_t)n * 2);
    bn_f32_to_f16_row(v, row, n);
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = bn_f32_to_f16(v[i]);
        /* NaN payloads may differ; a NaN must stay a NaN of the same sign */
        bool nan = isnan(v[i]);
        bool ok16 = nan ? (h & 0x7c00) == 0x7c00 && (h & 0x3ff) && (h >> 15) == (hb[i] >> 15)
                        : h == hb[i];
        bool okrow = nan ? (row[i] & 0x7c00) == 0x7c00 && (row[i] & 0x3ff) : row[i] == hb[i];
        uint16_t b = bn_f32_to_bf16(v[i]);
        bool okbf = nan ? (b & 0x7f80) == 0x7f80 && (b & 0x7f) : b == bb[i];
        if (!ok16 && bad16++ < 5)
            fprintf(stderr, "f16(%.9g = 0x%08x): 0x%04x, numpy 0x%04x\n", v[i], f32_bits(v[i]),
                    h, hb[i]);
        if (!okbf && badbf++ < 5)
            fprintf(stderr, "bf16(%.9g = 0x%08x): 0x%04x, torch 0x%04x\n", v[i],
                    f32_bits(v[i]), b, bb[i]);
        badrow += !okrow;
    }
    CHECK(bad16 == 0, "%d of %lld f32->f16 differ from numpy", bad16, (long long)n);
    CHECK(badbf == 0, "%d of %lld f32->bf16 differ from torch", badbf, (long long)n);
    CHECK(badrow == 0, "%d f32->f16 row conversions (%s) differ from numpy", badrow,
          bn_kernels_name());
    free(row);
    int bad_h = 0, bad_b = 0;
    const float *fa = f16all->data, *ba = bfall->data;
    float *rowf = malloc(65536 * sizeof(float));
    uint16_t *all = malloc(65536 * 2);
    for (int i = 0; i < 65536; i++)
        all[i] = (uint16_t)i;
    bn_f16_to_f32_row(all, rowf, 65536);
    for (int i = 0; i < 65536; i++) {
        float h = bn_f16_to_f32((uint16_t)i), b = bn_bf16_to_f32((uint16_t)i);
        bool okh = isnan(fa[i]) ? isnan(h) && isnan(rowf[i])
                                : f32_bits(h) == f32_bits(fa[i]) && f32_bits(rowf[i]) == f32_bits(fa[i]);
        bool okb = isnan(ba[i]) ? isnan(b) : f32_bits(b) == f32_bits(ba[i]);
        bad_h += !okh;
        bad_b += !okb;
    }
    CHECK(bad_h == 0, "%d of 65536 f16->f32 differ from numpy", bad_h);
    CHECK(bad_b == 0, "%d of 65536 bf16->f32 differ from torch", bad_b);
    free(rowf);
    free(all);
    fx_close(fx);
}

/* The AVX2 kernels against the scalar references on the same inputs. */
static void test_kernels_match_scalar(void)
{
#if defined(__x86_64__) || defined(__i386__)
    const bn_cpu_info *cpu = bn_cpu_get_info();
    if (!(cpu->avx2 && cpu->fma && cpu->f16c)) {
        printf("test_tensor: no AVX2 on this CPU; the AVX2 kernels are not exercised\n");
        return;
    }
    const bn_kernel_table *s = &bn_kernels_scalar, *f = &bn_kernels_avx2;
    enum { N = 4099 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint16_t *hs = malloc(N * 2), *hf = malloc(N * 2);
    uint32_t seed = 12345;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t bits = seed;
        memcpy(&x[i], &bits, 4);
        if (!isfinite(x[i]) || fabsf(x[i]) > 1e6f || fabsf(x[i]) < 1e-9f)
            x[i] = (float)(int32_t)seed * 1e-6f;
        y[i] = (float)((seed >> 9) & 0xff) / 64.0f - 2.0f;
    }
    s->f32_to_f16(x, hs, N);
    f->f32_to_f16(x, hf, N);
    CHECK(memcmp(hs, hf, N * 2) == 0, "avx2 f32->f16 bit-exact with scalar");
    float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
    s->f16_to_f32(hs, a, N);
    f->f16_to_f32(hs, b, N);
    CHECK(memcmp(a, b, N * sizeof(float)) == 0, "avx2 f16->f32 bit-exact with scalar");
    /* dot products: different summation order, so within float rounding:
     * |diff| <= n * 2^-23 * sum|x*y| */
    for (int n = 0; n <= 100; n++) {
        int len = n < 70 ? n : (n - 69) * 131;
        double mag = 0;
        for (int i = 0; i < len; i++)
            mag += fabs((double)y[i] * y[(i * 7) % N]);
        float ds = s->dot_f32(y, y + 7, len), df = f->dot_f32(y, y + 7, len);
        CHECK(fabs((double)ds - df) <= (len + 1) * 1.2e-7 * mag, "dot n=%d: %g vs %g", len,
              ds, df);
    }
    free(x); free(y); free(hs); free(hf); free(a); free(b);
#endif
}


static void test_failure_injection(void)
{
    bn_tensor *t = iota34(), *tr = NULL, *r = NULL;
    float data[12] = {0};
    bn_tensor_transpose(t, 0, 1, &tr);
    FAIL_EACH_ALLOC("new", bn_tensor_new(BN_F32, 2, (int64_t[]){5, 5}, &r), &r);
    FAIL_EACH_ALLOC("from_data", bn_tensor_from_data(BN_F32, 1, (int64_t[]){12}, data, &r), &r);
    FAIL_EACH_ALLOC("wrap", bn_tensor_wrap(BN_F32, 1, (int64_t[]){12}, data, &r), &r);
    FAIL_EACH_ALLOC("slice", bn_tensor_slice(t, 0, 0, 2, 1, &r), &r);
    FAIL_EACH_ALLOC("reshape", bn_tensor_reshape(t, 1, (int64_t[]){12}, &r), &r);
    FAIL_EACH_ALLOC("transpose", bn_tensor_transpose(t, 0, 1, &r), &r);
    FAIL_EACH_ALLOC("permute", bn_tensor_permute(t, (int[]){1, 0}, &r), &r);
    FAIL_EACH_ALLOC("contiguous", bn_tensor_contiguous(tr, &r), &r);
    FAIL_EACH_ALLOC("convert", bn_tensor_convert(tr, BN_BF16, &r), &r);
    FAIL_EACH_ALLOC("to_device", bn_tensor_to_device(tr, bn_device_cpu(), &r), &r);
    bn_tensor_free(tr);
    bn_tensor_free(t);
}

int main(void)
{
    bn_mem_stats start, end;
    bn_mem_get_stats(&start);
    test_create();
    test_from_data_wrap();
    test_get_set();
    test_views();
    test_copies();
    test_dtype_reference();
    test_kernels_match_scalar();
    test_failure_injection();
    bn_mem_get_stats(&end);
    CHECK(end.live_blocks == start.live_blocks, "leaked %lld blocks",
          (long long)(end.live_blocks - start.live_blocks));
    return check_summary("test_tensor");
}
