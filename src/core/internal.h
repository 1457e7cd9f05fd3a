/*
 * internal.h - what the core's files share and nothing outside libbitnet sees: the
 * tensor and buffer structs, the device backend table, the kernel dispatch table and
 * small helpers.
 */
#ifndef BN_CORE_INTERNAL_H
#define BN_CORE_INTERNAL_H

#include <stdatomic.h>

#include "bitnet.h"

#define BN_ALIGN 64

/* ------------------------------------------------------------------ devices */

/* A device backend: how to allocate on it and move bytes to and from the host. */
typedef struct bn_device_ops {
    bn_status (*alloc)(bn_device *dev, size_t nbytes, void **out);
    void      (*free)(bn_device *dev, void *ptr);
    bn_status (*to_host)(bn_device *dev, void *host_dst, const void *dev_src, size_t n);
    bn_status (*from_host)(bn_device *dev, void *dev_dst, const void *host_src, size_t n);
} bn_device_ops;

struct bn_device {
    bn_device_type       type;
    int                  ordinal;   /* index among devices of its type */
    char                 name[24];
    const bn_device_ops *ops;
};

#ifdef BITNET_CUDA
/* CUDA backend (src/cuda): number of GPUs (0 when none or no driver) and the table. */
int bn_cuda_device_count(void);
const bn_device_ops *bn_cuda_device_ops(void);
#endif

/* ------------------------------------------------------------------ tensors */

/* Reference-counted storage. `owned` buffers are freed through their device when the
 * count drops to zero; wrapped (caller-owned) memory is not. */
typedef struct bn_buffer {
    void       *data;
    size_t      nbytes;
    bn_device  *device;
    bool        owned;
    atomic_int  refcount;
} bn_buffer;

struct bn_tensor {
    bn_dtype   dtype;
    int        ndim;
    int64_t    shape[BN_MAX_DIMS];
    int64_t    stride[BN_MAX_DIMS];   /* elements */
    int64_t    offset;                /* elements from buf->data */
    bn_buffer *buf;
};

/* A new contiguous, uninitialised (zeroed on the CPU) tensor on `dev`. */
bn_status bn_tensor_new_on(bn_device *dev, bn_dtype dtype, int ndim,
                           const int64_t *shape, bn_tensor **out);

/* Validates ndim and dims and returns their product in *numel (overflow-checked). */
bn_status bn_shape_check(int ndim, const int64_t *shape, int64_t *numel);

/* Element pointer for a multi-index (CPU tensors). */
void *bn_tensor_elem_ptr(const bn_tensor *t, const int64_t *idx);

/* Errors for operand checks: "op: expected f32, got f16" etc. */
bn_status bn_require_cpu_f32(const char *op, const bn_tensor *t);

/* ------------------------------------------------------------------ threads */

/* Runs fn(ctx, ith, nth) on every thread of the default pool, the caller being thread
 * 0 (inline, nth = 1, when the pool cannot be created). */
void bn_run_on_default_pool(bn_task_fn fn, void *ctx);

/* ------------------------------------------------------------------ kernels */

/* Multiply-adds per chunk of the int8 multiply-add probe (mac_i8_peak). */
#define BN_MAC_PEAK_CHUNK (128 * 128)

/* The per-ISA kernel table, chosen once at run time (kernels.c). Every entry has a
 * scalar reference; fast versions are tested against it. */
typedef struct bn_kernel_table {
    const char *name;
    /* sum_i x[i] * y[i], f32; the order of accumulation is fixed per table */
    float (*dot_f32)(const float *x, const float *y, int64_t n);
    void  (*f16_to_f32)(const uint16_t *src, float *dst, int64_t n);
    /* dot_f32 of the f16 values x (converted) with y: the same result, bit for bit, as
     * f16_to_f32 followed by dot_f32 of the same table */
    float (*dot_f16_f32)(const uint16_t *x, const float *y, int64_t n);
    /* out[r] = dot_f16_f32(x + r * stride, y, n) for nrows rows, bit for bit (the
     * decode of an f16 output layer: the rows may be read in any order) */
    void  (*dot_f16_f32_rows)(const uint16_t *x, size_t stride, int64_t nrows,
                              const float *y, int64_t n, float *out);
    void  (*f32_to_f16)(const float *src, uint16_t *dst, int64_t n);
    /* Attention over an f16 cache, each key or value row read once for up to four
     * queries (ny <= 4). Scores: out[j][i] = dot_f16_f32(x + i * stride, y[j], n) for
     * i < nx, j < ny, bit for bit. Values: for i = 0 .. nx - 1 in order and each j,
     * y[j][e] = y[j][e] + a[j][i] * x_i[e] for e < n, with x_i = x + i * stride in f16:
     * a multiply then an add per element, never fused, so every table gives the same
     * floats, and a query's floats do not depend on the others sharing its rows. */
    void  (*dot_f16_f32_multi)(const uint16_t *x, size_t stride, int64_t nx,
                               const float *const *y, int ny, int64_t n, float *const *out);
    void  (*axpy_f16_f32_multi)(const float *const *a, int ny, const uint16_t *x,
                                size_t stride, int64_t nx, float *const *y, int64_t n);
    /* g[i] = v * v * u[i] with v = g[i] > 0 ? g[i] : 0 (the squared-ReLU FFN gate), the
     * same floats on every table */
    void  (*relu2_mul)(float *g, const float *u, int64_t n);
    /* sum_i c_i * q_i over the n 2-bit codes c_i of an I2_S row (32-byte blocks of 128:
     * byte j holds weights j, 32+j, 64+j, 96+j in bits 7-6, 5-4, 3-2, 1-0) and n int8
     * activations; n a multiple of 128. Exact: every table returns the same integer. */
    int32_t (*dot_i2s_q8)(const uint8_t *codes, const int8_t *q, int64_t n);
    /* dot_i2s_q8 of one row against nt <= 4 activation rows q + j * n (a prefill
     * tile: the codes are read once); out[j] for row j */
    void (*dot_i2s_q8_tile)(const uint8_t *codes, const int8_t *q, int64_t n, int nt,
                            int32_t *out);
    /* dot_i2s_q8 of nrows consecutive rows (row_bytes apart) against one token: the
     * decode step, which streams the rows in order; out[r] for row r */
    void (*dot_i2s_q8_rows)(const uint8_t *codes, size_t row_bytes, int64_t nrows,
                            const int8_t *q, int64_t n, int32_t *out);
    /* The same per block of a TQ2_0 row (n / 256 blocks of `stride` bytes whose first
     * 64 hold the codes: in each 32-byte half, byte m holds weights m, 32+m, 64+m, 96+m
     * of that half in bits 1-0, 3-2, 5-4, 7-6): sums[b] for block b. Exact. */
    void (*dot_tq2_q8)(const uint8_t *blocks, size_t stride, const int8_t *q, int64_t n,
                       int32_t *sums);
    /* sum of n 64-bit words (wrapping), read as fast as the ISA can: the memory
     * read-bandwidth probe. The eight eighths of x are read side by side, a 64-byte line
     * of each in turn, because one core reads several streams faster than one (and 1 KiB
     * ahead of each is asked for); x 32-byte aligned, n a multiple of 64 */
    uint64_t (*sum_u64)(const uint64_t *x, int64_t n);
    /* The int8 multiply-add probe: the integer multiply-accumulate instructions of the
     * family's ternary kernels (AVX2: maddubs + 16-bit add; NEON: widening multiply-add;
     * dotprod: SDOT; scalar: C), fed from registers, BN_MAC_PEAK_CHUNK multiply-adds a
     * chunk. Returns chunks * 128 * sum over a, b in {0, 1} of the dot product of the
     * 32 codes w[32a..] (0..2) with the 32 activations x[32b..] (-127..127), so that the
     * work cannot be skipped and its result can be checked. */
    int64_t (*mac_i8_peak)(const uint8_t *w, const int8_t *x, int64_t chunks);
    /* Decode of nrows TQ2_0 rows (row_bytes apart) against one token: for each row,
     * acc = sum over blocks b, in block order, of (double)(sums[b] - qbsum[b]) * d_b in
     * double, with sums[b] as dot_tq2_q8 gives them and d_b the block's f16 scale;
     * out[r] = acc. Every product is exact in double, so every table agrees. */
    void (*dot_tq2_q8_rows)(const uint8_t *rows, size_t row_bytes, int64_t nrows,
                            const int8_t *q, const int32_t *qbsum, int64_t n, double *out);
    /* The same for one TQ2_0 row against nt <= 4 activation rows q + j * n with their
     * block sums qbsum + j * (n / 256) (a prefill tile: the codes are read once):
     * out[j] for activation row j */
    void (*dot_tq2_q8_tile)(const uint8_t *row, const int8_t *q, const int32_t *qbsum,
                            int64_t n, int nt, double *out);
    /* The same for TQ1_0 blocks (54 bytes: 48 bytes of five trits each, 4 of four, an
     * f16 scale; trit k of byte v is ((v * 3^k mod 256) * 3) >> 8): sums[b] is the
     * exact sum of trit * q over block b, at `stride` bytes per block. */
    void (*dot_tq1_q8)(const uint8_t *blocks, size_t stride, const int8_t *q, int64_t n,
                       int32_t *sums);
    /* dot_tq2_q8_tile for a TQ1_0 row: out[j] = sum over blocks b, in block order, of
     * (double)(sums[b] - qbsum[j * (n / 256) + b]) * d_b in double, with sums[b] as
     * dot_tq1_q8 gives them for activation row q + j * n (j < nt <= 4) */
    void (*dot_tq1_q8_tile)(const uint8_t *row, const int8_t *q, const int32_t *qbsum,
                            int64_t n, int nt, double *out);
    /* Q8_0 weights w against Q8_0 activations x (n / 32 blocks of an f16 scale and 32
     * int8 values each): per block, the eight exact int32 sums of four consecutive
     * products, each converted to float and multiplied by d_w * d_x (a float product),
     * are added into eight float lanes (lane j takes products 4j..4j+3 of every block, in
     * block order; a multiply then an add, never fused); the lanes are combined as
     * ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). Every table follows this order, so every
     * ISA gives the same float. x must not hold -128 (ggml's Q8_0 quantizer, which
     * makes the activations, never writes it). */
    float (*dot_q8_0_q8_0)(const void *w, const void *x, int64_t n);
    /* out[r] = dot_q8_0_q8_0(w + r * row_bytes, x, n) for nrows rows, bit for bit */
    void  (*dot_q8_0_q8_0_rows)(const uint8_t *w, size_t row_bytes, int64_t nrows,
                                const void *x, int64_t n, float *out);
    /* Q6_K weights w (n / 256 blocks) against Q8_0 activations x: the same lanes and
     * order as dot_q8_0_q8_0, per block of 32 activations, with the int32 lane sum
     * being scale * sum of four (code - 32) * x (the four share a group of 16, so one
     * scale) and the float factor d_w * d_x of the 256-block and the 32-block. */
    float (*dot_q6_k_q8_0)(const void *w, const void *x, int64_t n);
    /* out[r] = dot_q6_k_q8_0(w + r * row_bytes, x, n) for nrows rows, bit for bit */
    void  (*dot_q6_k_q8_0_rows)(const uint8_t *w, size_t row_bytes, int64_t nrows,
                                const void *x, int64_t n, float *out);
    /* bn_quantize_act_i8: s = 127 / max(max|x|, 1e-5), q = clamp(rint(x * s)) with the
     * product rounded to float first; the same bytes and scale on every table */
    void (*quantize_act_i8)(const float *x, int64_t n, int8_t *q, float *scale);
} bn_kernel_table;

const bn_kernel_table *bn_kernels(void);
extern const bn_kernel_table bn_kernels_scalar;
/* the scalar activation quantizer, the reference of quantize_act_i8 */
void bn_quantize_act_i8_scalar(const float *x, int64_t n, int8_t *q, float *scale);
#if defined(__x86_64__) || defined(__i386__)
extern const bn_kernel_table bn_kernels_avx2;
#endif
#if defined(__aarch64__)
/* AdvSIMD integer kernels (kernels_neon.c); the "neon" family uses them with the
 * scalar float kernels */
extern const bn_kernel_table bn_kernels_neon;
int32_t bn_dot_i2s_q8_neon(const uint8_t *codes, const int8_t *q, int64_t n);
void bn_dot_i2s_q8_tile_neon(const uint8_t *codes, const int8_t *q, int64_t n, int nt,
                             int32_t *out);
void bn_dot_tq2_q8_neon(const uint8_t *blocks, size_t stride, const int8_t *q, int64_t n,
                        int32_t *sums);
uint64_t bn_sum_u64_neon(const uint64_t *x, int64_t n);
int64_t bn_mac_i8_peak_neon(const uint8_t *w, const int8_t *x, int64_t chunks);
/* the same with the dotprod extension (SDOT), for CPUs that report it */
extern const bn_kernel_table bn_kernels_neon_dotprod;
int32_t bn_dot_i2s_q8_neon_dot(const uint8_t *codes, const int8_t *q, int64_t n);
void bn_dot_i2s_q8_tile_neon_dot(const uint8_t *codes, const int8_t *q, int64_t n, int nt,
                                 int32_t *out);
void bn_dot_tq2_q8_neon_dot(const uint8_t *blocks, size_t stride, const int8_t *q,
                            int64_t n, int32_t *sums);
int64_t bn_mac_i8_peak_neon_dot(const uint8_t *w, const int8_t *x, int64_t chunks);
#endif

/* ------------------------------------------------------------------ string map */

/* Byte-string keys (not copied: they must outlive the map) to int32 values. */
typedef struct bn_strmap bn_strmap;

bn_status bn_strmap_create(size_t expected, bn_strmap **out);
void bn_strmap_free(bn_strmap *m);
/* Insert or replace; *replaced (may be NULL) says whether the key was there. */
bn_status bn_strmap_put(bn_strmap *m, const char *key, size_t len, int32_t value,
                        bool *replaced);
/* The value of key, or `missing`. */
int32_t bn_strmap_get(const bn_strmap *m, const char *key, size_t len, int32_t missing);
size_t bn_strmap_count(const bn_strmap *m);

/* ------------------------------------------------------------------ helpers */

/* a * b into *out; false on overflow. */
static inline bool bn_mul_overflow_size(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

/* ---------------------------------------------------------------- machine memory */

/* Bytes of memory available to allocate (MemAvailable), 0 when unknown. */
uint64_t bn_mem_available(void);

/* The size of the kernel's transparent huge pages (2 MiB on x86-64) when a program may
 * ask for them (THP "always" or "madvise"), 0 when it may not or nothing says. */
size_t bn_thp_size(void);

/* Ask the kernel for huge pages behind the whole huge pages inside [p, p + size) (a
 * large block not touched yet, which weights streamed per token will fill); nothing
 * when it has none to give. */
void bn_advise_huge(void *p, size_t size);

#endif
