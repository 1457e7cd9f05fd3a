/*
 * bitnet.h - the public interface of libbitnet.
 *
 * libbitnet is a C11 library for 1.58-bit ("ternary") neural networks. This header is
 * its manual: every function says what it does, who owns what, and what it returns on
 * error. Nothing else is public.
 *
 * A walk-through
 * --------------
 *
 *     #include <bitnet.h>
 *
 *     bn_tensor *a = NULL, *b = NULL, *c = NULL;
 *     int64_t sa[2] = {2, 3}, sb[1] = {3};
 *     if (bn_tensor_new(BN_F32, 2, sa, &a) != BN_OK ||      // zero-filled 2x3 f32
 *         bn_tensor_new(BN_F32, 1, sb, &b) != BN_OK) { ... }
 *     bn_tensor_fill(b, 1.0);                               // b = [1, 1, 1]
 *     if (bn_op_add(a, b, &c) != BN_OK)                     // broadcasts like NumPy
 *         fprintf(stderr, "%s\n", bn_last_error());         // message with its causes
 *     float x = bn_tensor_get_f32(c, (int64_t[]){1, 2});    // 1.0
 *     bn_tensor_free(a); bn_tensor_free(b); bn_tensor_free(c);
 *
 * Running a model (errors unchecked here for brevity; examples/generate.c checks them):
 *
 *     static bool print_piece(bn_token id, const char *text, size_t len, void *user)
 *     { fwrite(text, 1, len, stdout); return true; }        // false stops generating
 *
 *     bn_model *m;  bn_context *ctx;  bn_token *ids;  size_t n;
 *     bn_model_load("model.gguf", NULL, &m);                // weights, tokenizer
 *     bn_context_create(m, NULL, &ctx);                     // KV cache and buffers
 *     bn_tokenize(bn_model_tokenizer(m), "Hello", 5, NULL, &ids, &n);
 *     bn_generate_params gp = bn_generate_default_params();
 *     gp.max_tokens = 32;
 *     gp.on_token = print_piece;
 *     bn_generate_result r;
 *     bn_generate(ctx, ids, (int32_t)n, &gp, &r);           // r.stop: why it ended
 *     bn_free(ids); bn_context_free(ctx); bn_model_free(m);
 *
 * Several users at once: a context with n_seq sequences and a bn_generator (below).
 *
 * Conventions
 * -----------
 * - Functions that can fail return a bn_status. BN_OK is 0. On any other value the
 *   calling thread's error message (bn_last_error) says what went wrong, outermost
 *   context first: "loading m.gguf: tensor 'x': data runs past end of file".
 * - Output parameters (`bn_tensor **out` etc.) are written only on success. On failure
 *   nothing is allocated and nothing the caller owned is changed.
 * - Every object returned through an output parameter is owned by the caller and
 *   released with its `_free` function; `_free(NULL)` is a no-op.
 * - Broken invariants (a NULL where the header says non-NULL, an index out of range in
 *   an accessor) are programming errors and stop at an assert; bad data, I/O failures
 *   and out-of-memory are statuses.
 * - The library never writes to stdout and never exits. It logs through a callback
 *   (bn_log_set), which by default writes warnings and errors to stderr.
 */
#ifndef BITNET_H
#define BITNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define BN_API
#elif defined(__GNUC__)
#  define BN_API __attribute__((visibility("default")))
#else
#  define BN_API
#endif

#if defined(__GNUC__)
#  define BN_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#  define BN_PRINTF(fmt, args)
#endif

/* ===================================================================== version */

#define BITNET_VERSION_MAJOR 0
#define BITNET_VERSION_MINOR 1
#define BITNET_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH". Static string. */
BN_API const char *bn_version(void);

/* ====================================================================== errors */

typedef enum bn_status {
    BN_OK = 0,
    BN_ERR_INVALID_ARG,  /* an argument is out of its documented range */
    BN_ERR_OOM,          /* an allocation failed (or was made to fail) */
    BN_ERR_IO,           /* reading or writing a file failed */
    BN_ERR_FORMAT,       /* a file or buffer is malformed */
    BN_ERR_SHAPE,        /* tensor shapes do not fit the operation */
    BN_ERR_DTYPE,        /* a dtype the operation does not support */
    BN_ERR_NUMERIC,      /* singular, not positive definite, did not converge, NaN */
    BN_ERR_UNSUPPORTED,  /* not available in this build or on this machine */
    BN_ERR_DEVICE,       /* a device (GPU) call failed */
    BN_ERR_INTERNAL,     /* a library bug; the message says where */
    BN_ERR_CONTEXT_FULL, /* the context (KV cache) has no room for more positions */
    BN_ERR_BUSY,         /* every slot is taken: try again when one is free */
    BN_STATUS_COUNT
} bn_status;

/* A short constant name for a status ("out of memory"). Never NULL. */
BN_API const char *bn_status_str(bn_status status);

/* The calling thread's last error message, the whole cause chain joined by ": ",
 * outermost context first. "" when there is none. The string belongs to the library
 * and stays valid until the thread's next failing call or bn_error_clear. */
BN_API const char *bn_last_error(void);

/* The status of the calling thread's last error (BN_OK when none). */
BN_API bn_status bn_last_status(void);

/* Number of frames in the cause chain (0 when no error). Frame 0 is the outermost
 * context, the last frame the root cause. */
BN_API int bn_error_depth(void);

/* Frame i of the cause chain, 0 <= i < bn_error_depth(); NULL when out of range. */
BN_API const char *bn_error_frame(int i);

/* Forget the calling thread's error. */
BN_API void bn_error_clear(void);

/* Record a new error on the calling thread (replacing any earlier one) and return
 * `status`, so that a function can `return bn_error_set(BN_ERR_IO, "...", ...)`. */
BN_API bn_status bn_error_set(bn_status status, const char *fmt, ...) BN_PRINTF(2, 3);

/* Add an outer context frame to the current error and return its status (or
 * `status` when it is not BN_OK, to override it). With no current error this records
 * the context as a new error of `status`. */
BN_API bn_status bn_error_wrap(bn_status status, const char *fmt, ...) BN_PRINTF(2, 3);

/* ========================================================================= log */

typedef enum bn_log_level {
    BN_LOG_DEBUG = 0,
    BN_LOG_INFO,
    BN_LOG_WARN,
    BN_LOG_ERROR,
    BN_LOG_NONE   /* as a threshold: log nothing */
} bn_log_level;

/* A log sink. `msg` has no trailing newline and is valid only during the call. */
typedef void (*bn_log_fn)(bn_log_level level, const char *msg, void *user);

/* Replace the log sink; NULL restores the default (stderr). Not thread-safe against
 * concurrent logging: set it once at start-up. */
BN_API void bn_log_set(bn_log_fn fn, void *user);

/* Messages below `level` are dropped before they reach the sink. Default BN_LOG_WARN.*/
BN_API void bn_log_set_level(bn_log_level level);
BN_API bn_log_level bn_log_get_level(void);

/* Log a message through the current sink. */
BN_API void bn_log(bn_log_level level, const char *fmt, ...) BN_PRINTF(2, 3);

/* ====================================================================== memory */

/* Every buffer of the library comes from one tracking allocator: 64-byte aligned,
 * counted per tag (a string literal naming the owner, e.g. "tensor"), with a
 * failure-injection hook for tests and a leak report. */

typedef struct bn_mem_stats {
    size_t   live_bytes;    /* bytes currently allocated */
    size_t   peak_bytes;    /* the largest live_bytes seen */
    uint64_t live_blocks;   /* blocks currently allocated */
    uint64_t n_allocs;      /* allocations made since start (or the last reset) */
    uint64_t n_frees;       /* frees made since start */
    uint64_t n_failed;      /* allocations that failed (real or injected) */
} bn_mem_stats;

/* Allocate `size` bytes aligned to 64, tagged `tag` (a string that must outlive the
 * block; a literal). Returns NULL and sets BN_ERR_OOM on failure. size 0 allocates a
 * minimal block. Release with bn_free. */
BN_API void *bn_malloc(size_t size, const char *tag);

/* As bn_malloc, zero-filled, with an overflow-checked n * size. */
BN_API void *bn_calloc(size_t n, size_t size, const char *tag);

/* Release a block from bn_malloc/bn_calloc. NULL is a no-op. */
BN_API void bn_free(void *ptr);

/* The size a block was allocated with. */
BN_API size_t bn_mem_size(const void *ptr);

/* Totals over all tags. */
BN_API void bn_mem_get_stats(bn_mem_stats *out);

/* Totals for one tag (matched by string contents); false when the tag was never used.*/
BN_API bool bn_mem_get_tag_stats(const char *tag, bn_mem_stats *out);

/* Reset the peak to the current live bytes and the counters to zero (all tags). */
BN_API void bn_mem_reset_peak(void);

/* Report every live block through the log sink at BN_LOG_WARN, one line each:
 * "leak: 4096 bytes, tag 'tensor'", then a summary line per tag. Returns the number
 * of live blocks (0 = no leaks). Call at teardown. */
BN_API uint64_t bn_mem_leak_report(void);

/* Make the n-th allocation from now fail (n >= 1) as if memory ran out; 0 disables.
 * After it fires, injection is off again. For tests of error paths. */
BN_API void bn_mem_fail_nth(uint64_t n);

/* A pool of reusable buffers for tensors: requests are rounded up to a size class
 * (powers of two from 64 bytes); a released buffer goes back to its class's free list
 * and is handed out again before new memory is taken. */
typedef struct bn_pool bn_pool;

typedef struct bn_pool_stats {
    size_t   live_bytes;     /* bytes handed out and not released (class sizes) */
    size_t   peak_bytes;
    size_t   cached_bytes;   /* released bytes kept for reuse */
    uint64_t n_requests;     /* bn_pool_alloc calls that succeeded */
    uint64_t n_reused;       /* of which served from a free list */
} bn_pool_stats;

/* Create a pool whose blocks carry `tag`. */
BN_API bn_status bn_pool_create(const char *tag, bn_pool **out);

/* A buffer of at least `size` bytes, 64-byte aligned; NULL (+ BN_ERR_OOM) on failure.*/
BN_API void *bn_pool_alloc(bn_pool *pool, size_t size);

/* Give a buffer back to the pool it came from (kept for reuse). NULL is a no-op. */
BN_API void bn_pool_release(bn_pool *pool, void *ptr);

/* Free every cached (released) buffer. */
BN_API void bn_pool_trim(bn_pool *pool);

BN_API void bn_pool_get_stats(const bn_pool *pool, bn_pool_stats *out);

/* Destroy the pool, freeing cached buffers. Buffers still handed out are not freed:
 * they show in bn_mem_leak_report under the pool's tag. */
BN_API void bn_pool_free(bn_pool *pool);

/* An arena for load-time structures: bump allocation from large chunks, everything
 * freed at once. */
typedef struct bn_arena bn_arena;

/* `chunk_size` 0 means 1 MiB. */
BN_API bn_status bn_arena_create(size_t chunk_size, const char *tag, bn_arena **out);

/* `size` bytes aligned to `align` (a power of two up to 64; 0 means 16). Requests
 * larger than the chunk size get a chunk of their own. NULL + BN_ERR_OOM on failure.*/
BN_API void *bn_arena_alloc(bn_arena *arena, size_t size, size_t align);

/* A copy of `s` in the arena. */
BN_API char *bn_arena_strdup(bn_arena *arena, const char *s);

/* Bytes handed out so far (not counting alignment padding or unused chunk space). */
BN_API size_t bn_arena_used(const bn_arena *arena);

/* Forget all allocations, keeping the first chunk. */
BN_API void bn_arena_reset(bn_arena *arena);

BN_API void bn_arena_free(bn_arena *arena);

/* ======================================================================= dtypes */

typedef enum bn_dtype {
    BN_F32 = 0,
    BN_F16,
    BN_BF16,
    BN_I8,
    BN_I32,
    BN_DTYPE_COUNT
} bn_dtype;

/* "f32", "f16", "bf16", "i8", "i32"; "?" for an invalid value. */
BN_API const char *bn_dtype_name(bn_dtype dtype);

/* Bytes per element; 0 for an invalid value. */
BN_API size_t bn_dtype_size(bn_dtype dtype);

/* IEEE binary16 and bfloat16 conversion, round to nearest even; NaN stays NaN (quiet),
 * overflow to f16 gives infinity, f16 subnormals are kept. */
BN_API uint16_t bn_f32_to_f16(float x);
BN_API float    bn_f16_to_f32(uint16_t h);
BN_API uint16_t bn_f32_to_bf16(float x);
BN_API float    bn_bf16_to_f32(uint16_t h);

/* Row conversions, using the fastest kernels this CPU has (F16C where present). */
BN_API void bn_f32_to_f16_row(const float *src, uint16_t *dst, int64_t n);
BN_API void bn_f16_to_f32_row(const uint16_t *src, float *dst, int64_t n);
BN_API void bn_f32_to_bf16_row(const float *src, uint16_t *dst, int64_t n);
BN_API void bn_bf16_to_f32_row(const uint16_t *src, float *dst, int64_t n);

/* ====================================================================== tensors */

#define BN_MAX_DIMS 4

/* A shape: ndim in 0..BN_MAX_DIMS (0 is a scalar with one element), dim[i] >= 0. */
typedef struct bn_shape {
    int     ndim;
    int64_t dim[BN_MAX_DIMS];
} bn_shape;

/* A tensor: a dtype, a shape, strides (in elements, >= 0) and an offset into a
 * reference-counted buffer on some device. Views share their source's buffer; the
 * buffer is freed when its last tensor is. A tensor handle is not thread-safe, but
 * distinct handles sharing a buffer may be used and freed from different threads. */
typedef struct bn_tensor bn_tensor;

typedef struct bn_device bn_device;

/* A new zero-filled contiguous tensor on the CPU. */
BN_API bn_status bn_tensor_new(bn_dtype dtype, int ndim, const int64_t *shape,
                               bn_tensor **out);

/* A new contiguous CPU tensor holding a copy of `data` (numel elements, row-major). */
BN_API bn_status bn_tensor_from_data(bn_dtype dtype, int ndim, const int64_t *shape,
                                     const void *data, bn_tensor **out);

/* A contiguous CPU tensor over memory the caller owns (e.g. a mapped file). The memory
 * must outlive the tensor and every view of it; it is never freed by the library. */
BN_API bn_status bn_tensor_wrap(bn_dtype dtype, int ndim, const int64_t *shape,
                                void *data, bn_tensor **out);

/* Release this handle; the buffer goes when its last handle does. NULL is a no-op. */
BN_API void bn_tensor_free(bn_tensor *t);

BN_API bn_dtype  bn_tensor_dtype(const bn_tensor *t);
BN_API int       bn_tensor_ndim(const bn_tensor *t);
BN_API bn_shape  bn_tensor_shape(const bn_tensor *t);
BN_API int64_t   bn_tensor_dim(const bn_tensor *t, int axis);    /* axis < 0 counts back */
BN_API int64_t   bn_tensor_stride(const bn_tensor *t, int axis); /* in elements */
BN_API int64_t   bn_tensor_numel(const bn_tensor *t);
BN_API size_t    bn_tensor_nbytes(const bn_tensor *t);  /* numel * element size */
BN_API bool      bn_tensor_is_contiguous(const bn_tensor *t);
BN_API bn_device *bn_tensor_device(const bn_tensor *t);

/* Pointer to the tensor's first element (its offset applied) on its device. For a
 * CPU tensor the caller may read and write through it within the strides. */
BN_API void *bn_tensor_data(const bn_tensor *t);

/* Read / write one element of a CPU tensor as double (converted from / to its dtype;
 * writes to i8/i32 round to nearest and saturate). idx has ndim entries. */
BN_API double bn_tensor_get(const bn_tensor *t, const int64_t *idx);
BN_API float  bn_tensor_get_f32(const bn_tensor *t, const int64_t *idx);
BN_API void   bn_tensor_set(bn_tensor *t, const int64_t *idx, double value);

/* Set every element (of the view) to `value`. CPU only. */
BN_API bn_status bn_tensor_fill(bn_tensor *t, double value);

/* Copy the elements of `t` in row-major order into `dst` (capacity `dst_bytes`),
 * converted to `dtype`. CPU only. */
BN_API bn_status bn_tensor_read(const bn_tensor *t, bn_dtype dtype, void *dst,
                                size_t dst_bytes);

/* --- views: no data is copied; the result shares t's buffer --- */

/* Elements start, start+step, ... < stop along `axis` (step >= 1, 0 <= start <= stop
 * <= dim). */
BN_API bn_status bn_tensor_slice(const bn_tensor *t, int axis, int64_t start,
                                 int64_t stop, int64_t step, bn_tensor **out);

/* Same elements, new shape (same numel). One dimension may be -1 (inferred). The
 * tensor must be contiguous (else BN_ERR_SHAPE: make a contiguous copy first). */
BN_API bn_status bn_tensor_reshape(const bn_tensor *t, int ndim, const int64_t *shape,
                                   bn_tensor **out);

/* Swap two axes. */
BN_API bn_status bn_tensor_transpose(const bn_tensor *t, int axis0, int axis1,
                                     bn_tensor **out);

/* Reorder axes: result axis i is t's axis perm[i]; perm is a permutation of 0..ndim-1.*/
BN_API bn_status bn_tensor_permute(const bn_tensor *t, const int *perm, bn_tensor **out);

/* --- copies --- */

/* A new contiguous CPU tensor with t's elements (always a copy). */
BN_API bn_status bn_tensor_contiguous(const bn_tensor *t, bn_tensor **out);

/* A new contiguous CPU tensor with t's elements converted to `dtype` (f32 to f16/bf16
 * round to nearest even; float to integer rounds half away from zero and saturates).*/
BN_API bn_status bn_tensor_convert(const bn_tensor *t, bn_dtype dtype, bn_tensor **out);

/* Copy src's elements into dst (same shape; dtypes converted as bn_tensor_convert).
 * Both on the CPU; dst may be a strided view. */
BN_API bn_status bn_tensor_copy_into(bn_tensor *dst, const bn_tensor *src);

/* Formats a shape as "[2, 3, 4]" into buf (always terminated); returns buf. */
BN_API char *bn_shape_str(bn_shape shape, char *buf, size_t cap);

/* ======================================================================= ops */

/* Element-wise and reduction operations on CPU f32 tensors. Each returns a new
 * contiguous tensor through `out`. Binary operations broadcast like NumPy: shapes
 * are aligned at the right and each pair of dimensions must be equal or one of them
 * 1; otherwise BN_ERR_SHAPE with a message naming both shapes. Other dtypes give
 * BN_ERR_DTYPE. Large operations use the library's thread pool (bn_set_num_threads);
 * the results do not depend on the number of threads. */

typedef enum bn_binary_op { BN_ADD = 0, BN_SUB, BN_MUL, BN_DIV, BN_BINARY_COUNT } bn_binary_op;

typedef enum bn_unary_op {
    BN_NEG = 0, BN_ABS, BN_SQRT, BN_EXP, BN_LOG,
    BN_RELU,
    BN_RELU_SQR,   /* relu(x)^2, BitNet b1.58's FFN activation */
    BN_SILU,       /* x * sigmoid(x) */
    BN_GELU,       /* x * Phi(x), exact (erf) */
    BN_GELU_TANH,  /* the tanh approximation of GELU */
    BN_UNARY_COUNT
} bn_unary_op;

typedef enum bn_reduce_op { BN_SUM = 0, BN_MEAN, BN_MAX, BN_MIN, BN_ARGMAX, BN_REDUCE_COUNT } bn_reduce_op;

BN_API bn_status bn_op_binary(bn_binary_op op, const bn_tensor *a, const bn_tensor *b,
                              bn_tensor **out);
BN_API bn_status bn_op_add(const bn_tensor *a, const bn_tensor *b, bn_tensor **out);
BN_API bn_status bn_op_sub(const bn_tensor *a, const bn_tensor *b, bn_tensor **out);
BN_API bn_status bn_op_mul(const bn_tensor *a, const bn_tensor *b, bn_tensor **out);
BN_API bn_status bn_op_div(const bn_tensor *a, const bn_tensor *b, bn_tensor **out);

/* a (op) scalar, element-wise; with `scalar_first`, scalar (op) a (for sub and div).*/
BN_API bn_status bn_op_scalar(bn_binary_op op, const bn_tensor *a, float scalar,
                              bool scalar_first, bn_tensor **out);

BN_API bn_status bn_op_unary(bn_unary_op op, const bn_tensor *a, bn_tensor **out);

/* Reduce along `axis` (negative counts from the end). The axis is removed, or kept
 * with size 1 when keepdims. Sums accumulate in double. ARGMAX gives an i32 tensor
 * with the first index of the maximum. MAX/MIN/ARGMAX of an empty axis are
 * BN_ERR_SHAPE; a NaN propagates to max/min (and is the argmax). */
BN_API bn_status bn_op_reduce(bn_reduce_op op, const bn_tensor *a, int axis,
                              bool keepdims, bn_tensor **out);

/* Matrix product as numpy.matmul for tensors of 2 to 4 dimensions: the last two axes
 * are [M, K] x [K, N] -> [M, N]; leading (batch) axes broadcast. Accumulates in f32
 * with a fixed order per output element. */
BN_API bn_status bn_op_matmul(const bn_tensor *a, const bn_tensor *b, bn_tensor **out);

/* Softmax along `axis`, computed stably (max subtracted first). */
BN_API bn_status bn_op_softmax(const bn_tensor *a, int axis, bn_tensor **out);

/* RMSNorm over the last axis: y = x / sqrt(mean(x^2) + eps) * weight. `weight` is a
 * 1-D tensor of the last axis' size, or NULL for none. eps > 0. */
BN_API bn_status bn_op_rmsnorm(const bn_tensor *x, const bn_tensor *weight, float eps,
                               bn_tensor **out);

/* ================================================================ linear algebra */

/* Dense linear algebra on 2-D CPU f32 tensors through LAPACK (computed in double,
 * results in f32). Non-square input where a square one is needed, singular and
 * not-positive-definite matrices return BN_ERR_SHAPE / BN_ERR_NUMERIC with a message;
 * NaN or Inf in the input is BN_ERR_NUMERIC. */

/* Thin SVD of an [M, N] matrix, K = min(M, N): U [M, K], S [K] (descending), Vt [K, N],
 * with A = U diag(S) Vt. */
BN_API bn_status bn_linalg_svd(const bn_tensor *a, bn_tensor **u, bn_tensor **s,
                               bn_tensor **vt);

/* Thin QR of an [M, N] matrix, K = min(M, N): Q [M, K] with orthonormal columns,
 * R [K, N] upper triangular, A = Q R. */
BN_API bn_status bn_linalg_qr(const bn_tensor *a, bn_tensor **q, bn_tensor **r);

/* Lower Cholesky factor L of a symmetric positive-definite matrix, A = L L^T. */
BN_API bn_status bn_linalg_cholesky(const bn_tensor *a, bn_tensor **l);

/* Determinant of a square matrix (0 for a singular one; not an error). */
BN_API bn_status bn_linalg_det(const bn_tensor *a, double *det);

/* X with A X = B; A [N, N], B [N] or [N, R]; X has B's shape. */
BN_API bn_status bn_linalg_solve(const bn_tensor *a, const bn_tensor *b, bn_tensor **x);

/* The inverse of a square non-singular matrix. */
BN_API bn_status bn_linalg_inv(const bn_tensor *a, bn_tensor **inv);

/* Eigendecomposition of a symmetric matrix: eigenvalues W [N] ascending, eigenvectors
 * V [N, N] in columns (A V = V diag(W)). A matrix that is not symmetric (to a relative
 * 1e-6) is BN_ERR_NUMERIC. */
BN_API bn_status bn_linalg_eigh(const bn_tensor *a, bn_tensor **w, bn_tensor **v);

/* ====================================================================== threads */

/* A persistent pool of worker threads. The library keeps one default pool for its
 * own operations (bn_set_num_threads); programs may create their own. */
typedef struct bn_threadpool bn_threadpool;

/* Work for bn_threadpool_run: called once on each of the pool's n_threads threads
 * (ith = 0 .. nth-1; the calling thread is ith 0). */
typedef void (*bn_task_fn)(void *ctx, int ith, int nth);

/* Work for bn_parallel_for: process indices [begin, end). */
typedef void (*bn_range_fn)(void *ctx, int64_t begin, int64_t end);

/* A pool of n_threads threads in all (the caller counts as one; 1 means no worker
 * threads). n_threads in 1..512. */
BN_API bn_status bn_threadpool_create(int n_threads, bn_threadpool **out);
BN_API void bn_threadpool_free(bn_threadpool *pool);
BN_API int  bn_threadpool_size(const bn_threadpool *pool);

/* Run fn on every thread of the pool and return when all have returned. Not
 * re-entrant: a task must not call bn_threadpool_run on the same pool. */
BN_API void bn_threadpool_run(bn_threadpool *pool, bn_task_fn fn, void *ctx);

/* Inside a task run by bn_threadpool_run: wait until every thread of the pool has
 * reached the barrier. Every thread must call it the same number of times. */
BN_API void bn_threadpool_barrier(bn_threadpool *pool);

/* Split [0, n) into contiguous chunks of at least `grain` indices (grain >= 1) and run
 * them on the pool. Which thread gets which chunk may vary; fn must write only what
 * its range owns, so the result is the same for any thread count. pool NULL means
 * the library's default pool. Called from inside a task of the same pool it runs
 * inline on the calling thread; calls on one pool from several threads take turns. */
BN_API void bn_parallel_for(bn_threadpool *pool, int64_t n, int64_t grain,
                            bn_range_fn fn, void *ctx);

/* The default pool's thread count. Set it with bn_set_num_threads (n >= 1; 0 means
 * the default: $BITNET_THREADS if set, else the number of online CPUs). Changing the
 * count replaces the default pool: a pointer from bn_default_threadpool() is then no
 * longer valid. bn_get_num_threads does not create the pool. */
BN_API bn_status bn_set_num_threads(int n);
BN_API int bn_get_num_threads(void);

/* BN_OK when $BITNET_THREADS is unset, empty or an integer in 1..512; otherwise
 * BN_ERR_INVALID_ARG with a message naming the value. Programs call it first to refuse
 * a bad value; without the check, the library logs a warning (once for each bad value)
 * and uses one thread per online CPU. */
BN_API bn_status bn_threads_check_env(void);

/* The library's default pool (created on first use). */
BN_API bn_threadpool *bn_default_threadpool(void);

/* ==================================================================== CPU info */

typedef struct bn_cpu_info {
    char arch[16];        /* "x86_64", "aarch64", ... */
    char brand[64];       /* processor name, "" when unknown */
    int  n_logical;       /* online logical CPUs */
    bool sse3, ssse3, avx, avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512vnni, avx512vbmi, avx512bf16, avx_vnni;
    bool amx_int8;        /* AMX tiles with int8 dot products, their state enabled by the
                           * OS and granted to this process (asked for at detection) */
    bool neon, dotprod;   /* ARM */
    bool gfni;            /* x86: the Galois-field byte instructions (the amx family's
                           * unpacking needs them with AVX-512) */
} bn_cpu_info;

/* The features of the CPU this runs on, detected once (CPUID and the OS's enabled
 * register state on x86; hwcaps on ARM). */
BN_API const bn_cpu_info *bn_cpu_get_info(void);

/* Which kernel family the library dispatches to: "scalar", "avx2", ... It is the best
 * the CPU has unless the build forces scalar (BITNET_FORCE_SCALAR) or $BITNET_KERNELS
 * names one (scalar|avx2|avx512|amx|neon|neon-dotprod, in any case). */
BN_API const char *bn_kernels_name(void);

/* BN_OK when $BITNET_KERNELS is unset, empty or names a family of this build that this
 * CPU runs; otherwise BN_ERR_INVALID_ARG (no such family: the message lists the valid
 * names) or BN_ERR_UNSUPPORTED (this CPU cannot run it: the message lists those it
 * can). Programs call it first to refuse a bad value; without the check, the library
 * logs the same message and runs the fastest family. */
BN_API bn_status bn_kernels_check_env(void);

/* ============================================================ quantized types */

/* Storage types of model tensors, numbered as ggml numbers them in GGUF files. Every
 * type listed here is known by size (so files holding it can be read and described);
 * bn_qtype_info says which ones can be converted to and from f32. */
typedef enum bn_qtype {
    BN_QT_F32 = 0,    BN_QT_F16 = 1,     BN_QT_Q4_0 = 2,    BN_QT_Q4_1 = 3,
    BN_QT_Q5_0 = 6,   BN_QT_Q5_1 = 7,    BN_QT_Q8_0 = 8,    BN_QT_Q8_1 = 9,
    BN_QT_Q2_K = 10,  BN_QT_Q3_K = 11,   BN_QT_Q4_K = 12,   BN_QT_Q5_K = 13,
    BN_QT_Q6_K = 14,  BN_QT_Q8_K = 15,   BN_QT_IQ2_XXS = 16, BN_QT_IQ2_XS = 17,
    BN_QT_IQ3_XXS = 18, BN_QT_IQ1_S = 19, BN_QT_IQ4_NL = 20, BN_QT_IQ3_S = 21,
    BN_QT_IQ2_S = 22, BN_QT_IQ4_XS = 23, BN_QT_I8 = 24,     BN_QT_I16 = 25,
    BN_QT_I32 = 26,   BN_QT_I64 = 27,    BN_QT_F64 = 28,    BN_QT_IQ1_M = 29,
    BN_QT_BF16 = 30,  BN_QT_TQ1_0 = 34,  BN_QT_TQ2_0 = 35,
    BN_QT_I2_S = 36,  /* bitnet.cpp: 2-bit ternary codes + one f32 scale per tensor */
    BN_QT_MXFP4 = 39,
    BN_QT_COUNT = 40  /* one past the largest id */
} bn_qtype;

typedef struct bn_qtype_info {
    const char *name;        /* lower case, as ggml names it: "q8_0", "tq2_0", "i2_s" */
    int64_t     block_size;  /* elements per block (1 for plain types) */
    size_t      type_size;   /* bytes per block */
    size_t      tensor_tail; /* bytes after the blocks, per tensor (32 for I2_S) */
    bool        can_read;    /* bn_dequantize supports it */
    bool        can_write;   /* bn_quantize supports it */
    bool        is_ternary;  /* I2_S, TQ1_0, TQ2_0 */
} bn_qtype_info;

/* The facts of a type; NULL for a value that is not a known type. The functions that
 * take a bn_qtype check it, so an id read from a file can be passed as it is. */
BN_API const bn_qtype_info *bn_qtype_get(bn_qtype type);

/* The type called `name` (case-insensitive, as bn_qtype_info.name); false if none. */
BN_API bool bn_qtype_from_name(const char *name, bn_qtype *out);

/* The value of GGUF's general.file_type (llama.cpp's LLAMA_FTYPE_*, "mostly TYPE") for
 * a model whose weights are mostly `type`: 0 f32, 1 f16, 2 q4_0, 7 q8_0, 18 q6_K,
 * 32 bf16, 36 tq1_0, 37 tq2_0, 40 i2_s (bitnet.cpp's number); -1 for a type without
 * one. */
BN_API int32_t bn_qtype_file_type(bn_qtype type);

/* Bytes of a tensor of n_rows rows of row_len elements. BN_ERR_SHAPE when row_len is
 * not a multiple of the type's block size (I2_S: of 128 over the whole tensor) or the
 * size overflows; BN_ERR_DTYPE for an unknown type. */
BN_API bn_status bn_qtype_tensor_size(bn_qtype type, int64_t row_len, int64_t n_rows,
                                      size_t *out);

/* Convert a whole tensor (n_rows x row_len, row-major, src_bytes from
 * bn_qtype_tensor_size) to f32. */
BN_API bn_status bn_dequantize(bn_qtype type, const void *src, size_t src_bytes,
                               int64_t row_len, int64_t n_rows, float *dst);

/* Store an f32 tensor in `type` with that format's reference quantizer, the same
 * algorithm as the engine that defined it (ggml for Q8_0/Q4_0/Q6_K/TQ1_0/TQ2_0,
 * bitnet.cpp for I2_S), so the bytes match theirs. For the ternary types the input is
 * expected to be ternary already (see bn_ternarize). dst_bytes must be at least
 * bn_qtype_tensor_size. */
BN_API bn_status bn_quantize(bn_qtype type, const float *src, int64_t row_len,
                             int64_t n_rows, void *dst, size_t dst_bytes);

/* ================================================================= benchmarks */

/* One way of reading memory and the bandwidth it reached. */
#define BN_READ_METHODS 6
typedef struct bn_read_method {
    char   name[48];   /* e.g. "one stream, huge pages" */
    double gb_per_s;   /* its best pass, 10^9 bytes per second */
} bn_read_method;

/* The memory read bandwidth by each read method: a buffer of `bytes` (at least 1 MiB),
 * in huge pages and then in 4 KiB pages, written first, then summed `repeat` times on
 * the default pool by each method in turn: each thread reading its part front to back
 * as one stream, as four streams side by side, and as the chosen kernel family's eight
 * streams with lines asked ahead. Up to `max` results (BN_READ_METHODS in all) in
 * methods[], their number in *count. */
BN_API bn_status bn_bench_read_methods(size_t bytes, int repeat, bn_read_method *methods,
                                       int max, int *count);

/* The memory read bandwidth: the best of bn_bench_read_methods, in GB/s. The reference
 * figure beside which benchmarks report their own throughput (a probe that under-reads
 * would flatter them). */
BN_API bn_status bn_bench_read_bandwidth(size_t bytes, int repeat, double *gb_per_s);

/* The int8 multiply-add peak: the integer multiply-accumulate instructions of the
 * chosen kernel family's ternary kernels (AVX2: maddubs + 16-bit add; NEON: widening
 * multiply-add; dotprod: SDOT), fed from registers on every thread of the default
 * pool, the best of `repeat` passes, in GMAC/s (10^9 int8 multiply-adds per second).
 * The ceiling of a compute-bound prefill, as the read bandwidth is that of a decode.
 * Each thread's result is checked against its closed form: BN_ERR_INTERNAL if not. */
BN_API bn_status bn_bench_int8_peak(int repeat, double *gmac_per_s);

/* One projection: a rows x cols matrix of weights of `type` (random values valid for
 * the type) applied to n_tokens random activation rows, on the default pool
 * by the forward pass's own code (act_quant: int8 activations, as bn_model_params
 * says), `repeat` timed passes after one untimed one. *seconds: the best pass;
 * *weight_bytes (may be NULL): the weight bytes one pass reads. Make rows x cols
 * larger than the caches to measure a kernel fed from memory. */
BN_API bn_status bn_bench_projection(bn_qtype type, int64_t rows, int64_t cols,
                                     int32_t n_tokens, bool act_quant, int repeat,
                                     double *seconds, size_t *weight_bytes);

/* ================================================================= quantizers */

/* How bn_ternarize groups weights under one scale. */
typedef enum bn_ternary_granularity {
    BN_TERNARY_PER_TENSOR = 0,  /* BitNet b1.58: one absmean scale for the matrix */
    BN_TERNARY_PER_CHANNEL,     /* one scale per output row */
    BN_TERNARY_PER_GROUP        /* one scale per group_size consecutive weights of a row */
} bn_ternary_granularity;

typedef struct bn_ternary_params {
    bn_ternary_granularity granularity;
    int64_t                group_size;   /* PER_GROUP only; must divide row_len */
} bn_ternary_params;

BN_API bn_ternary_params bn_ternary_default_params(void);

/* Number of scales bn_ternarize writes for that shape and those params (1, n_rows,
 * or n_rows * row_len / group_size); 0 when the params do not fit the shape. */
BN_API int64_t bn_ternary_n_scales(const bn_ternary_params *params, int64_t row_len,
                                   int64_t n_rows);

/* The BitNet b1.58 weight quantizer: for each group of weights g = mean(|W|)
 * (accumulated in double), g = max(g, 1e-5), q = clamp(round_half_even(W / g), -1, 1).
 * Writes q (n_rows * row_len values in {-1, 0, 1}) and the scales g
 * (bn_ternary_n_scales of them). NaN or Inf is BN_ERR_NUMERIC naming the first bad
 * index. params NULL means the defaults (per tensor). */
BN_API bn_status bn_ternarize(const float *w, int64_t row_len, int64_t n_rows,
                              const bn_ternary_params *params, int8_t *q, float *scales);

/* True when w (n values) is ternary already: every non-zero |w| equal (as in
 * checkpoints that store sign * scale). Then *scale is that magnitude (0 when all are
 * zero). Quantizing such a tensor keeps its scale instead of recomputing an absmean. */
BN_API bool bn_ternary_detect(const float *w, int64_t n, float *scale);

/* The BitNet b1.58 activation quantizer for one token (row) of n values:
 * s = 127 / max(max|x|, 1e-5), q = clamp(round_half_even(x * s), -128, 127). Writes q
 * and returns s through *scale (x = q / s). */
BN_API void bn_quantize_act_i8(const float *x, int64_t n, int8_t *q, float *scale);

/* Error of a quantized tensor against its source. */
typedef struct bn_quant_error {
    int64_t n;
    double  mse;            /* mean squared error */
    double  sqnr_db;        /* 10 log10(sum x^2 / sum (x - y)^2); +inf when exact */
    double  zero_fraction;  /* fraction of quantized values that are exactly 0 */
    double  max_abs_error;
} bn_quant_error;

BN_API void bn_quant_error_measure(const float *orig, const float *deq, int64_t n,
                                   bn_quant_error *out);

/* ================================================================ output files */

/* A file written whole or not at all, which an interrupted process does not leave
 * behind. The bytes go to an unnamed file in the target's directory (Linux O_TMPFILE)
 * that bn_out_file_commit links into place only after every write and the flush
 * succeeded; a process killed before that, even by SIGKILL, leaves nothing, and an
 * existing file at the path is replaced by one rename or not at all. Where the
 * filesystem has no unnamed files (or not on Linux) a named temporary beside the
 * target, "PATH.tmp.XXXXXX", is used instead and renamed over the target at the end;
 * bn_out_file_cleanup_signal removes it from a signal handler. The environment
 * variable BITNET_NO_O_TMPFILE=1 forces the named temporary (for tests). The file is
 * created with mode 0666 less the process's umask (0644 under umask 022), as any new
 * file. One bn_out_file is used by one thread at a time. */
typedef struct bn_out_file bn_out_file;

/* Start writing `path`. BN_ERR_IO naming the path when it exists and is not a regular
 * file (a device, a pipe, a directory: never replaced) or when no file can be created
 * in its directory (missing, read-only). Nothing is created at `path` itself. */
BN_API bn_status bn_out_file_open(const char *path, bn_out_file **out);

/* Append n bytes. A failed write (a full disk) is BN_ERR_IO naming the path, and is
 * remembered: every later write and the commit fail too. */
BN_API bn_status bn_out_file_write(bn_out_file *f, const void *data, size_t n);

/* The file's descriptor, for calls such as fstat. Bytes written through it are not
 * checked by the library: check them yourself. */
BN_API int bn_out_file_fd(const bn_out_file *f);

/* Flush the file to the disk (fsync), close it and put it at its path, replacing what
 * was there. On any failure (a write that failed earlier, the flush, the close, the
 * link or the rename) BN_ERR_IO naming the path, nothing is put at the path and a file
 * already there is untouched. Frees f in every case. */
BN_API bn_status bn_out_file_commit(bn_out_file *f);

/* Abandon the file: nothing appears at its path. Frees f; NULL is a no-op. */
BN_API void bn_out_file_discard(bn_out_file *f);

/* Remove the named temporaries of the files being written (there are none where
 * unnamed files are used). Async-signal-safe: for a program's SIGINT, SIGTERM and
 * SIGHUP handlers, before the process ends; the library installs no handler. It frees
 * nothing, and a bn_out_file whose temporary it removed can only be discarded. */
BN_API void bn_out_file_cleanup_signal(void);

/* ======================================================================= GGUF */

/* GGUF files (versions 2 and 3), read through a read-only memory map. Every count,
 * length, offset and extent is validated against the file size before use; a bad
 * file is BN_ERR_FORMAT with a message saying what and where. Strings are stored
 * NUL-terminated copies; tensor data points into the map. */
typedef struct bn_gguf bn_gguf;

typedef enum bn_gguf_type {
    BN_GGUF_UINT8 = 0, BN_GGUF_INT8 = 1, BN_GGUF_UINT16 = 2, BN_GGUF_INT16 = 3,
    BN_GGUF_UINT32 = 4, BN_GGUF_INT32 = 5, BN_GGUF_FLOAT32 = 6, BN_GGUF_BOOL = 7,
    BN_GGUF_STRING = 8, BN_GGUF_ARRAY = 9, BN_GGUF_UINT64 = 10, BN_GGUF_INT64 = 11,
    BN_GGUF_FLOAT64 = 12, BN_GGUF_TYPE_COUNT
} bn_gguf_type;

/* A metadata value. Scalars are in the union; a string is ptr/len (NUL-terminated,
 * may contain NULs); an array has an element type, a count and an opaque handle read
 * with bn_gguf_array_get. */
typedef struct bn_gguf_value {
    bn_gguf_type type;
    union {
        uint64_t u64;     /* UINT8/16/32/64 and BOOL (0/1) */
        int64_t  i64;     /* INT8/16/32/64 */
        double   f64;     /* FLOAT32/64 */
        struct { const char *ptr; uint64_t len; } str;
        struct { bn_gguf_type elem_type; uint64_t n; const void *handle; } arr;
    } v;
} bn_gguf_value;

typedef struct bn_gguf_tensor {
    const char *name;
    int         type;        /* bn_qtype id */
    int         n_dims;      /* 1..4 */
    int64_t     ne[4];       /* ggml order: ne[0] is the row length; unused dims = 1 */
    uint64_t    offset;      /* from the start of the data section */
    size_t      nbytes;
    const void *data;        /* into the map */
} bn_gguf_tensor;

/* Open and validate a GGUF file. */
BN_API bn_status bn_gguf_open(const char *path, bn_gguf **out);

/* Parse a GGUF image in memory (not copied: it must outlive the handle). */
BN_API bn_status bn_gguf_open_memory(const void *data, size_t size, bn_gguf **out);

BN_API void bn_gguf_close(bn_gguf *g);

BN_API uint32_t bn_gguf_version(const bn_gguf *g);
BN_API size_t   bn_gguf_alignment(const bn_gguf *g);     /* general.alignment or 32 */
BN_API size_t   bn_gguf_data_offset(const bn_gguf *g);   /* file offset of tensor data */
BN_API size_t   bn_gguf_file_size(const bn_gguf *g);

BN_API int64_t bn_gguf_n_kv(const bn_gguf *g);
BN_API const char *bn_gguf_kv_key(const bn_gguf *g, int64_t i);
BN_API bn_gguf_value bn_gguf_kv_value(const bn_gguf *g, int64_t i);
BN_API int64_t bn_gguf_find_kv(const bn_gguf *g, const char *key);   /* -1 if absent */

/* Element i of an array value (0 <= i < n). */
BN_API bn_gguf_value bn_gguf_array_get(const bn_gguf *g, const bn_gguf_value *array,
                                       uint64_t i);

/* Typed lookups: BN_ERR_FORMAT naming the key when it is absent or of another type
 * (any integer type is accepted for integers when the value fits). */
BN_API bn_status bn_gguf_get_u64(const bn_gguf *g, const char *key, uint64_t *out);
BN_API bn_status bn_gguf_get_f64(const bn_gguf *g, const char *key, double *out);
BN_API bn_status bn_gguf_get_str(const bn_gguf *g, const char *key, const char **out);

BN_API int64_t bn_gguf_n_tensors(const bn_gguf *g);
BN_API const bn_gguf_tensor *bn_gguf_get_tensor(const bn_gguf *g, int64_t i);
BN_API int64_t bn_gguf_find_tensor(const bn_gguf *g, const char *name); /* -1 if absent*/

/* Building a GGUF file: metadata and tensors are added in order, then written in one
 * pass through a bn_out_file (above): the file appears at the target only when
 * everything was written, and an interrupted write leaves nothing. Tensor data is not
 * copied: it must stay valid until bn_gguf_writer_write returns. */
typedef struct bn_gguf_writer bn_gguf_writer;

/* Called during writing with bytes done and bytes in all; return false to cancel. */
typedef bool (*bn_progress_fn)(uint64_t done, uint64_t total, void *user);

BN_API bn_status bn_gguf_writer_create(bn_gguf_writer **out);
BN_API void bn_gguf_writer_free(bn_gguf_writer *w);

/* Add a key (replacing an earlier value of the same key). */
BN_API bn_status bn_gguf_writer_set_u32(bn_gguf_writer *w, const char *key, uint32_t v);
BN_API bn_status bn_gguf_writer_set_i32(bn_gguf_writer *w, const char *key, int32_t v);
BN_API bn_status bn_gguf_writer_set_u64(bn_gguf_writer *w, const char *key, uint64_t v);
BN_API bn_status bn_gguf_writer_set_f32(bn_gguf_writer *w, const char *key, float v);
BN_API bn_status bn_gguf_writer_set_f64(bn_gguf_writer *w, const char *key, double v);
BN_API bn_status bn_gguf_writer_set_bool(bn_gguf_writer *w, const char *key, bool v);
BN_API bn_status bn_gguf_writer_set_str(bn_gguf_writer *w, const char *key, const char *v);
/* An array of n scalars of elem_type (not STRING/ARRAY), copied from data. */
BN_API bn_status bn_gguf_writer_set_array(bn_gguf_writer *w, const char *key,
                                          bn_gguf_type elem_type, const void *data,
                                          uint64_t n);
BN_API bn_status bn_gguf_writer_set_str_array(bn_gguf_writer *w, const char *key,
                                              const char *const *strs, uint64_t n);
/* Copy key i of an open file, whatever its type (nested arrays included). */
BN_API bn_status bn_gguf_writer_copy_kv(bn_gguf_writer *w, const bn_gguf *g, int64_t i);

/* Add a tensor; nbytes must equal bn_qtype_tensor_size for its type and shape. */
BN_API bn_status bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name,
                                           bn_qtype type, int n_dims, const int64_t *ne,
                                           const void *data, size_t nbytes);

/* Produces a tensor's nbytes bytes into dst when the file is written. */
typedef bn_status (*bn_gguf_fill_fn)(void *user, void *dst, size_t nbytes);

/* Add a tensor whose bytes are made only while the file is written: fill is called
 * once, in file order, with a buffer of nbytes (bn_qtype_tensor_size of the type and
 * shape) that is written and freed before the next tensor's, so that a file of many
 * tensors is written holding one at a time. A failure from fill stops the write (no
 * file appears) with its status, the message naming the tensor. */
BN_API bn_status bn_gguf_writer_add_tensor_fn(bn_gguf_writer *w, const char *name,
                                              bn_qtype type, int n_dims, const int64_t *ne,
                                              size_t nbytes, bn_gguf_fill_fn fill,
                                              void *user);

/* Write the file (GGUF v3, alignment from general.alignment or 32). */
BN_API bn_status bn_gguf_writer_write(bn_gguf_writer *w, const char *path,
                                      bn_progress_fn progress, void *user);

/* ======================================================= Hugging Face conversion */

/* Converting a Hugging Face checkpoint folder (config.json, model.safetensors or the
 * shards of model.safetensors.index.json, tokenizer.json + tokenizer_config.json or
 * tokenizer.model) to a GGUF model. The layouts (docs/CONVERT.md):
 * BitNetForCausalLM with float master weights (microsoft bitnet-b1.58-2B-4T-bf16) or
 * packed 2-bit weights (bitnet-b1.58-2B-4T), 1bitLLM's BitnetForCausalLM (float latent
 * weights) and LlamaForCausalLM with a bitnet quantization_config (Falcon3-1.58bit,
 * Llama3-8B-1.58). Float weights are ternarized per tensor with the absmean rule
 * (bn_ternarize). */
typedef struct bn_convert_params {
    bn_qtype       proj_type;     /* the ternary projections: default I2_S */
    bn_qtype       embd_type;     /* token_embd when not tied: default F16 */
    bn_qtype       lm_head_type;  /* output.weight, or token_embd when tied: default F16 */
    bn_progress_fn progress;      /* called while the file is written; may be NULL */
    void          *progress_user;
} bn_convert_params;

typedef struct bn_convert_stats {
    char     layout[96];          /* the layout recognised, in words */
    char     arch[32];            /* the GGUF architecture written */
    int64_t  n_tensors;           /* tensors converted */
    uint64_t bytes_written;       /* tensor bytes */
    size_t   peak_heap_bytes;     /* the library's peak allocation during the run */
} bn_convert_stats;

BN_API bn_convert_params bn_convert_default_params(void);

/* Convert the checkpoint in hf_dir to a GGUF file at out_path (written whole or not
 * at all, bn_out_file). Everything (config, tensor names, dtypes, shapes, tokenizer)
 * is checked before the file is started; then the tensors are made one at a time as
 * the file is written, so memory stays near the largest tensor. An unknown
 * architecture, a missing tensor or a shape that does not fit is an error naming it.
 * params NULL means the defaults; stats (may be NULL) is filled as far as the run got. */
BN_API bn_status bn_convert_hf(const char *hf_dir, const char *out_path,
                               const bn_convert_params *params, bn_convert_stats *stats);

/* Writing a BitNet b1.58 GGUF model (arch bitnet-b1.58, bitnet-25 or bitnet: the ones
 * with sub-norms) as a Hugging Face folder in the BitNetForCausalLM layout of
 * microsoft/bitnet-b1.58-2B-4T, which transformers loads and bn_convert_hf reads back:
 * config.json (quantization_config: bitnet, linear_class autobitlinear, offline),
 * model.safetensors (projections as uint8 [out/4, in], four 2-bit codes a byte along
 * the output rows, code = ternary + 1, with an F32 [1] weight_scale that multiplies;
 * norms and embeddings in their own float type, F32 for quantized ones), tokenizer.json
 * and tokenizer_config.json (byte-level BPE tokenizers only). */
typedef struct bn_export_hf_params {
    bn_progress_fn progress;      /* called while model.safetensors is written */
    void          *progress_user;
} bn_export_hf_params;

BN_API bn_export_hf_params bn_export_hf_default_params(void);

/* Export the model at gguf_path into the folder out_dir (created when missing; the
 * four files in it replaced, each written whole or not at all). A projection must
 * hold one scale per tensor: I2_S always does, TQ2_0 / TQ1_0 when all their block
 * scales are equal (else BN_ERR_UNSUPPORTED naming the tensor); float projections
 * that are not ternary already are ternarized with the absmean rule. An arch without
 * sub-norms (llama), a model without a tokenizer or a SentencePiece one is an error
 * saying so. Converting the folder back with bn_convert_hf (I2_S projections, the
 * embedding's own type) gives the same tensors. params NULL means the defaults. */
BN_API bn_status bn_export_hf(const char *gguf_path, const char *out_dir,
                              const bn_export_hf_params *params);

/* =================================================================== tokenizers */

/* Two tokenizer families: byte-level BPE as GPT-2 and LLaMA 3 use it (the tokenizer of
 * bitnet-b1.58-2B-4T; GGUF tokenizer.ggml.model "gpt2") and SentencePiece BPE with
 * byte fallback (LLaMA 1/2; "llama"). Both give the same ids as the reference
 * implementations (Hugging Face tokenizers, sentencepiece). */
typedef int32_t bn_token;
typedef struct bn_tokenizer bn_tokenizer;

typedef enum bn_tokenizer_kind {
    BN_TOKENIZER_BPE = 0,   /* byte-level BPE with a pre-tokenizer regex */
    BN_TOKENIZER_SPM        /* SentencePiece BPE: scores, "\xe2\x96\x81" for spaces, byte fallback */
} bn_tokenizer_kind;

/* Token types, as GGUF's tokenizer.ggml.token_type numbers them. */
typedef enum bn_token_type {
    BN_TOKEN_NORMAL = 1, BN_TOKEN_UNKNOWN = 2, BN_TOKEN_CONTROL = 3,
    BN_TOKEN_USER_DEFINED = 4, BN_TOKEN_UNUSED = 5, BN_TOKEN_BYTE = 6
} bn_token_type;

/* The tokenizer of a GGUF model (tokenizer.ggml.* metadata). A "gpt2" model without
 * tokenizer.ggml.pre, as in microsoft's bitnet files, gets the LLaMA 3 pre-tokenizer
 * (with a warning through the log). */
BN_API bn_status bn_tokenizer_load_gguf(const bn_gguf *g, bn_tokenizer **out);

/* A tokenizer from a file: a .gguf model, a Hugging Face tokenizer.json (with the
 * tokenizer_config.json next to it, when present, for the BOS and chat template), or a
 * SentencePiece tokenizer.model. The kind of file is told from its contents, except
 * that a file named *.gguf is always read as GGUF. An empty or 1-3 byte file is
 * BN_ERR_FORMAT saying so. Messages name the file once. */
BN_API bn_status bn_tokenizer_load_file(const char *path, bn_tokenizer **out);

BN_API void bn_tokenizer_free(bn_tokenizer *t);

/* Add the tokenizer to a GGUF file being written, as the tokenizer.ggml.* keys (and
 * tokenizer.chat_template) that bn_tokenizer_load_gguf and llama.cpp read: the family
 * ("gpt2" or "llama"), tokens, scores, types, BPE merges and pre-tokenizer, the special
 * ids, add_bos_token (SPM: add_space_prefix) and the chat template. */
BN_API bn_status bn_tokenizer_write_gguf(const bn_tokenizer *t, bn_gguf_writer *w);

BN_API bn_tokenizer_kind bn_tokenizer_kind_of(const bn_tokenizer *t);
BN_API int32_t bn_tokenizer_n_vocab(const bn_tokenizer *t);
BN_API bn_token bn_tokenizer_bos(const bn_tokenizer *t);   /* -1 when none */
BN_API bn_token bn_tokenizer_eos(const bn_tokenizer *t);   /* -1 when none */
BN_API bn_token bn_tokenizer_eot(const bn_tokenizer *t);   /* end of turn; -1 when none */
BN_API bool bn_tokenizer_wants_bos(const bn_tokenizer *t); /* the model adds BOS */
BN_API bool bn_tokenizer_is_eog(const bn_tokenizer *t, bn_token id); /* EOS, EOT... */

/* The vocabulary entry of a token as stored (byte-level form for BPE, with U+2581 for
 * spaces for SPM); NULL for an id out of range. *len gets its length. */
BN_API const char *bn_tokenizer_piece(const bn_tokenizer *t, bn_token id, size_t *len);
BN_API bn_token_type bn_tokenizer_token_type(const bn_tokenizer *t, bn_token id);

/* The id of a vocabulary entry (as stored), or -1. */
BN_API bn_token bn_tokenizer_find(const bn_tokenizer *t, const char *piece, size_t len);

typedef struct bn_tokenize_params {
    bool add_bos;        /* prepend BOS (default false) */
    bool parse_special;  /* match special-token strings in the text (default true, as
                            Hugging Face does); false treats them as plain text */
} bn_tokenize_params;

BN_API bn_tokenize_params bn_tokenize_default_params(void);

/* Encode len bytes of text (any bytes: invalid UTF-8 and NUL are handled) into a new
 * array *ids of *n_ids tokens, freed with bn_free. params NULL means the defaults. */
BN_API bn_status bn_tokenize(const bn_tokenizer *t, const char *text, size_t len,
                             const bn_tokenize_params *params, bn_token **ids,
                             size_t *n_ids);

/* Decode tokens back to the exact bytes (a new NUL-terminated *text of *len bytes,
 * freed with bn_free). Special tokens are rendered as their text when render_special,
 * else skipped. For SPM the leading space that encoding added is removed. An id out
 * of range is BN_ERR_INVALID_ARG. */
BN_API bn_status bn_detokenize(const bn_tokenizer *t, const bn_token *ids, size_t n_ids,
                               bool render_special, char **text, size_t *len);

/* The bytes of one token as it decodes inside a text (a new NUL-terminated *text of
 * *len bytes, freed with bn_free): bn_detokenize's bytes for it, except that SPM's
 * leading space is kept (bn_detokenize drops it only at the start of a text). A byte
 * token gives its byte alone, which may be part of a UTF-8 sequence. Special tokens:
 * their text when render_special, else nothing. An id out of range is
 * BN_ERR_INVALID_ARG. */
BN_API bn_status bn_token_bytes(const bn_tokenizer *t, bn_token id, bool render_special,
                                char **text, size_t *len);

/* Streaming decoding: tokens go in one at a time and bytes come out as soon as they
 * form complete UTF-8 characters, so a multi-byte character split across tokens is
 * never printed in halves. */
typedef struct bn_detok_stream bn_detok_stream;

BN_API bn_status bn_detok_stream_create(const bn_tokenizer *t, bool render_special,
                                        bn_detok_stream **out);
/* The bytes that became complete with this token (*text valid until the next call;
 * *len may be 0). */
BN_API bn_status bn_detok_stream_push(bn_detok_stream *s, bn_token id, const char **text,
                                      size_t *len);
/* The bytes still held (an incomplete or invalid sequence at the end), as they are. */
BN_API void bn_detok_stream_flush(bn_detok_stream *s, const char **text, size_t *len);
BN_API void bn_detok_stream_free(bn_detok_stream *s);

/* One message of a conversation. */
typedef struct bn_chat_message {
    const char *role;      /* "system", "user", "assistant" */
    const char *content;
} bn_chat_message;

/* Render a conversation with a chat template into text that contains the special
 * tokens' strings (tokenize it with parse_special). template_name NULL chooses from
 * the model's tokenizer.chat_template; "llama3" names the LLaMA 3 format
 * (<|start_header_id|>role<|end_header_id|>\n\n content <|eot_id|>, BOS first);
 * "bitnet" the bitnet-b1.58-2B-4T format (BOS, then "System: ", "User: " or
 * "Assistant: " + content + <|eot_id|> per message, and "Assistant:" to start a reply;
 * chosen for a model template that writes "User: " and <|eot_id|>).
 * add_assistant appends what starts the assistant's reply. An unknown
 * template is BN_ERR_UNSUPPORTED. *text is freed with bn_free. */
BN_API bn_status bn_chat_format(const bn_tokenizer *t, const char *template_name,
                                const bn_chat_message *msgs, size_t n_msgs,
                                bool add_assistant, char **text, size_t *len);

/* A checksum of what decides a tokenizer's ids: 64-bit FNV-1a over, in order, the
 * family (BPE or SPM), the vocabulary size, every entry (in id order: its type, its
 * text's length and text, its score's bits), the BOS and EOS ids, add_space_prefix and
 * the family's own rules (BPE: the pre-tokenizer's name, ignore_merges, the number of
 * merges and the sum of the FNV-1a hashes of each merge's rank, left id, right id and
 * result id); numbers as 4 little-endian bytes (8 for the pair key and the sum). Two
 * loads of one file, or of files that tokenize alike (a tokenizer.json whose merges
 * are "a b" strings or [a, b] pairs) give the same value. Token shards record it. */
BN_API uint64_t bn_tokenizer_checksum(const bn_tokenizer *t);

/* ====================================================== training a tokenizer */
/* Byte-level BPE as LLaMA 3 has it, learned from text:
 *
 *     bn_bpe_train_params p = bn_bpe_train_default_params();
 *     p.vocab_size = 8192;
 *     bn_bpe_trainer *tr;
 *     bn_bpe_trainer_create(&p, &tr);
 *     bn_bpe_trainer_add_file(tr, "corpus.txt");           // as many as wanted
 *     bn_bpe_trainer_train(tr);
 *     bn_bpe_trainer_save(tr, "out/tokenizer.json", true);
 *     bn_bpe_trainer_free(tr);
 *
 * The text is split by LLaMA 3's pre-tokenizer (the same split that encoding makes)
 * and each distinct piece ("word") is counted; memory grows with the number of
 * distinct words, not with the text. Merging starts from the 256 bytes (ids 0..255 in
 * the order of GPT-2's byte-level alphabet, as LLaMA 3 numbers them) and repeatedly
 * merges the adjacent pair of symbols with the largest count summed over the words
 * (weighted by how often each occurs). Ties go to the pair with the smaller left id,
 * then the smaller right id. A merge whose text is already a token (two merges can
 * spell one text) keeps that token's id, as Hugging Face's trainer does; every other
 * merge adds the next id. Training stops when the vocabulary holds vocab_size tokens
 * or when the best pair occurs fewer than min_count times. After the merges come the
 * special tokens <|begin_of_text|> (BOS), <|end_of_text|> (EOS), <|start_header_id|>,
 * <|end_header_id|> and <|eot_id|> (LLaMA 3's chat markers). */
typedef struct bn_bpe_trainer bn_bpe_trainer;

typedef struct bn_bpe_train_params {
    int32_t vocab_size;  /* every token: 256 bytes, the merges, 5 special tokens
                            (default 32000; at least bn_bpe_train_min_vocab()) */
    int64_t min_count;   /* stop when the best pair occurs fewer times (default 2) */
    /* called now and then: while counting (n_tokens 0: n_bytes read so far) and while
     * merging (n_tokens of n_target made); may be NULL */
    void (*on_progress)(void *user, int32_t n_tokens, int32_t n_target, uint64_t n_bytes);
    void *progress_user;
} bn_bpe_train_params;

typedef struct bn_bpe_train_stats {
    uint64_t n_bytes;      /* text read */
    uint64_t n_pretokens;  /* pieces the pre-tokenizer made */
    uint64_t n_words;      /* distinct pieces */
    int32_t  n_merges;     /* merges learned */
    int32_t  vocab_size;   /* tokens in the result (0 before training) */
    int64_t  last_count;   /* the count of the last merge */
} bn_bpe_train_stats;

BN_API bn_bpe_train_params bn_bpe_train_default_params(void);
/* The smallest vocab_size: 256 bytes and the 5 special tokens. */
BN_API int32_t bn_bpe_train_min_vocab(void);

/* A trainer. params NULL means the defaults; a vocab_size below the minimum is
 * BN_ERR_INVALID_ARG saying so. Free with bn_bpe_trainer_free. */
BN_API bn_status bn_bpe_trainer_create(const bn_bpe_train_params *params,
                                       bn_bpe_trainer **out);
/* Counts the words of text (any bytes). Each call is pre-tokenized on its own: a piece
 * never spans two calls, so cut text only where pieces end (between lines that start
 * with a letter or digit, as add_file does). A text of 512 KiB or more is counted on
 * the threads of the library's default pool (bn_set_num_threads), with the same
 * result as on one. */
BN_API bn_status bn_bpe_trainer_add_text(bn_bpe_trainer *tr, const char *text, size_t len);
/* Counts the words of a file, read in chunks. BN_ERR_IO naming the file when it cannot
 * be opened or read. */
BN_API bn_status bn_bpe_trainer_add_file(bn_bpe_trainer *tr, const char *path);
/* Learns the merges. No text at all is BN_ERR_INVALID_ARG. A text too small for the
 * vocabulary gives fewer tokens (see the stats). */
BN_API bn_status bn_bpe_trainer_train(bn_bpe_trainer *tr);
BN_API void bn_bpe_trainer_stats(const bn_bpe_trainer *tr, bn_bpe_train_stats *out);
/* Writes the trained tokenizer as a Hugging Face tokenizer.json at path (LLaMA 3's
 * pre-tokenizer, byte-level decoder, BOS added by the post-processor) and, with
 * with_config, tokenizer_config.json in the same folder (bos_token, eos_token and a
 * LLaMA 3 chat template). Files are written whole or not at all (bn_out_file). */
BN_API bn_status bn_bpe_trainer_save(const bn_bpe_trainer *tr, const char *path,
                                     bool with_config);
BN_API void bn_bpe_trainer_free(bn_bpe_trainer *tr);

/* ================================================================ token shards */
/* A tokenized corpus, as `bitnet corpus` writes it (docs/FORMATS.md, "Token shards"):
 * files of token ids with a 64-byte header (magic "BNTOKSHD", version 1, token width 2
 * or 4 bytes, the vocabulary size, the tokenizer's bn_tokenizer_checksum, the token and
 * document counts). Reading:
 *
 *     bn_shards *s;
 *     bn_shards_open("data/", "train", &s);                // or one .bin file, NULL
 *     if (bn_shards_tokenizer_checksum(s) != bn_tokenizer_checksum(tok)) ... refuse
 *     int32_t buf[4096];
 *     bn_shards_read(s, offset, 4096, buf);                 // tokens [offset, +4096)
 *     bn_shards_close(s);
 *
 * The shards of a directory read as one sequence of tokens, in file order. */
typedef struct bn_shards bn_shards;

/* Opens path: a shard file (split ignored, may be NULL), or a directory: then the files
 * SPLIT-00000.bin, SPLIT-00001.bin, ... in it (split "train" or "val"), numbered from
 * 0 without gaps. Each file is mapped read-only and checked: the magic (else "not a
 * token shard"), the version, the token width, a size that matches the header's count
 * (else "truncated": a shorter file, or "has N bytes after its tokens"), and, across
 * the files of a directory, one tokenizer checksum, width and vocabulary size. Errors
 * are BN_ERR_IO (cannot open) or BN_ERR_FORMAT, naming the file. */
BN_API bn_status bn_shards_open(const char *path, const char *split, bn_shards **out);
BN_API void bn_shards_close(bn_shards *s);

BN_API uint64_t bn_shards_n_tokens(const bn_shards *s);     /* all files together */
BN_API uint64_t bn_shards_n_docs(const bn_shards *s);
BN_API uint64_t bn_shards_tokenizer_checksum(const bn_shards *s);
BN_API int32_t bn_shards_n_vocab(const bn_shards *s);       /* of the tokenizer */
BN_API int32_t bn_shards_n_files(const bn_shards *s);

/* Copies tokens [offset, offset + n) into out (n int32 values), across files as
 * needed. A range past the end is BN_ERR_INVALID_ARG; a stored id not below the
 * vocabulary size is BN_ERR_FORMAT naming the file and position. Safe to call from
 * several threads at once. */
BN_API bn_status bn_shards_read(const bn_shards *s, uint64_t offset, size_t n, int32_t *out);

/* Writing shards: tokens are appended document by document; a shard file is written
 * (whole, through bn_out_file) each time max_tokens are held and at the end, as
 * DIR/SPLIT-NNNNN.bin. A document never spans two files unless it alone is longer
 * than max_tokens. */
typedef struct bn_shard_writer bn_shard_writer;

typedef struct bn_shard_writer_params {
    const char *dir;            /* an existing directory */
    const char *split;          /* file name prefix: "train", "val" */
    uint64_t    tokenizer_checksum;
    int32_t     n_vocab;        /* ids must be below it; the width is 2 bytes when it
                                   is at most 65536, else 4 */
    uint64_t    max_tokens;     /* per file (default 1 << 26) */
} bn_shard_writer_params;

BN_API bn_status bn_shard_writer_create(const bn_shard_writer_params *params,
                                        bn_shard_writer **out);
/* Appends one document's tokens (ids checked against n_vocab: BN_ERR_INVALID_ARG). */
BN_API bn_status bn_shard_writer_add_doc(bn_shard_writer *w, const int32_t *ids, size_t n);
/* Writes what is held; *n_files (may be NULL) gets the number of files written. */
BN_API bn_status bn_shard_writer_finish(bn_shard_writer *w, int32_t *n_files);
/* Frees w; files not yet written are not written. NULL is a no-op. */
BN_API void bn_shard_writer_free(bn_shard_writer *w);

/* ==================================================================== inference */
/* Running a BitNet b1.58 (or LLaMA-architecture ternary) GGUF model:
 *
 *     bn_model *m = NULL; bn_context *ctx = NULL; bn_sampler *smp = NULL;
 *     bn_model_params mp = bn_model_default_params();
 *     if (bn_model_load("model.gguf", &mp, &m) != BN_OK) { ... bn_last_error() ... }
 *     bn_context_params cp = bn_context_default_params();
 *     cp.n_ctx = 2048;
 *     bn_context_create(m, &cp, &ctx);
 *     bn_token *ids; size_t n;
 *     bn_tokenize_params tp = bn_tokenize_default_params();
 *     tp.add_bos = bn_tokenizer_wants_bos(bn_model_tokenizer(m));
 *     bn_tokenize(bn_model_tokenizer(m), text, strlen(text), &tp, &ids, &n);
 *     bn_eval(ctx, ids, (int32_t)n);                       // prefill
 *     bn_sampler_params sp = bn_sampler_default_params();
 *     bn_sampler_create(&sp, bn_model_n_vocab(m), &smp);
 *     for (;;) {
 *         bn_token t = bn_sampler_sample(smp, bn_get_logits(ctx, -1));
 *         if (bn_tokenizer_is_eog(bn_model_tokenizer(m), t)) break;
 *         bn_sampler_accept(smp, t);
 *         ... print bn_detok_stream_push(...) ...
 *         if (bn_eval(ctx, &t, 1) != BN_OK) break;         // e.g. context full
 *     }
 *     bn_sampler_free(smp); bn_context_free(ctx); bn_model_free(m);
 *
 * bn_generate (section "generation") is this loop with stop texts, the context-full
 * rule and cancellation, and bn_chat (section "chat") a conversation on top of it.
 *
 * A model is read-only once loaded and may be shared by several contexts; one context
 * is used by one thread at a time (its evaluation uses the default thread pool). */
typedef struct bn_model bn_model;
typedef struct bn_context bn_context;
typedef struct bn_sampler bn_sampler;

/* The FFN activation: squared ReLU (BitNet b1.58 2B-4T) or SiLU (LLaMA, and what
 * llama.cpp and bitnet.cpp use for the arch "bitnet"). AUTO decides from the file: the
 * metadata key <arch>.ffn_activation ("relu2" or "silu") when present; else arch
 * bitnet-b1.58 and bitnet-25 -> RELU2, llama -> SILU, and bitnet -> SILU with a warning
 * that says so. */
typedef enum bn_ffn_act { BN_FFN_ACT_AUTO = 0, BN_FFN_ACT_RELU2, BN_FFN_ACT_SILU } bn_ffn_act;

/* 8-bit activation quantization of the inputs of the ternary projections (per token
 * absmax, as the BitNet b1.58 numerics contract says). AUTO: on when the projections
 * are stored in a ternary type (I2_S, TQ1_0, TQ2_0) or the arch is a bitnet one; off
 * for float-stored projections of other archs (llama). */
typedef enum bn_act_quant { BN_ACT_QUANT_AUTO = 0, BN_ACT_QUANT_ON, BN_ACT_QUANT_OFF } bn_act_quant;

/* How the weights are held. MMAP: the file is mapped; its pages are the page cache's,
 * shared with other processes that map it, and read from disk when first touched. READ:
 * the file is read into the process's own memory at load, asked of the kernel in
 * transparent huge pages (2 MiB on x86-64) where it has them: streaming the weights
 * then takes a TLB miss per huge page rather than per 4 KiB page, which makes decoding
 * faster (see docs/PERFORMANCE.md). AUTO (the default): READ when the kernel gives huge
 * pages for the asking (transparent_hugepage "always" or "madvise"), the file is at
 * least 64 MiB and it fits in half the available memory; MMAP otherwise. The results
 * are the same either way. */
typedef enum bn_load_mode { BN_LOAD_AUTO = 0, BN_LOAD_MMAP, BN_LOAD_READ } bn_load_mode;

typedef struct bn_model_params {
    bn_ffn_act   ffn_act;    /* default AUTO */
    bn_act_quant act_quant;  /* default AUTO */
    /* The type to keep the output layer in, converted at load time from the file's
     * float (F32/F16/BF16) output weights: BN_QT_Q8_0, or -1 (the default) for the type
     * the file stores. A Q8_0 output layer (converted or stored) reads its input
     * quantized to Q8_0 blocks, as llama.cpp does: the logits change slightly (about
     * 1e-3 relative) and the layer reads about half the bytes of F16. A tied
     * embedding keeps its file type for the token lookups. */
    int          output_type;
    bn_load_mode load;       /* default AUTO */
    /* Ternary projections stored as TQ1_0 (1.69 bits per weight, five trits a byte) are
     * held in memory as TQ2_0 (2.06 bits, 2-bit codes), converted at load: the same
     * codes and block scales, so the same logits, about 22% more memory for them, and
     * a decode that reads 2-bit codes at memory speed instead of unpacking trits
     * (docs/INFERENCE.md); where each row has one scale they go to I2_S's layout
     * instead (keep_tq2_0). true keeps them as TQ1_0. Default false. */
    bool         keep_tq1_0;
    /* TQ2_0 projections (and TQ1_0 ones, unless keep_tq1_0) whose every row has one
     * scale in all its blocks, as converted BitNet models have, are held in memory in
     * I2_S's code layout with each row's scale beside it, repacked at load: the same
     * codes and scales, so the same logits, 2% less memory than TQ2_0, and the rows
     * stream as fast as I2_S's (docs/INFERENCE.md). Other TQ2_0 projections stay as
     * they are. true keeps every TQ2_0 projection as TQ2_0 (and TQ1_0 ones go to TQ2_0
     * only). Default false. */
    bool         keep_tq2_0;
    /* Told how far loading has got, on the loading thread: progress(done, total,
     * progress_user) with total the file's size and done the bytes of it read so far.
     * Read into memory (BN_LOAD_READ), the calls go (0, total), then after each pass
     * of at most 64 MiB, the last (total, total) once the whole file is in memory;
     * mapped, there is one call, (total, total), as nothing is read at load. Return
     * false to cancel: the load then fails with BN_ERR_IO ("cancelled"). Default
     * NULL: no calls. */
    bn_progress_fn progress;
    void          *progress_user;
} bn_model_params;

BN_API bn_model_params bn_model_default_params(void);

/* Load a GGUF model: hyperparameters from its metadata, weights mapped or read into
 * memory as params->load says (validated first), the tokenizer from tokenizer.ggml.*.
 * A missing key or tensor, a tensor of the wrong shape or an unsupported type is
 * BN_ERR_FORMAT naming it; an unknown architecture is BN_ERR_UNSUPPORTED. params NULL
 * means the defaults. */
BN_API bn_status bn_model_load(const char *path, const bn_model_params *params,
                               bn_model **out);
BN_API void bn_model_free(bn_model *m);

/* What a loaded model is. Strings are owned by the model. */
typedef struct bn_model_info {
    const char *arch;            /* general.architecture */
    const char *name;            /* general.name, or "" */
    int32_t  n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim;
    int32_t  n_ctx_train;        /* <arch>.context_length, 0 when absent */
    float    rope_theta, rms_eps;
    bn_ffn_act ffn_act;          /* the one in use: RELU2 or SILU */
    bool     act_quant;          /* in use */
    bool     sub_norms;          /* attn_sub_norm / ffn_sub_norm present (bitnet archs) */
    int      proj_type;          /* bn_qtype of the projections (of blk.0.attn_q) */
    int      output_type;        /* bn_qtype of the output layer in use (token_embd when
                                  * tied), after any conversion at load */
    int      output_file_type;   /* the output layer's type in the file */
    bool     tied_output;        /* logits from token_embd */
    uint64_t n_params;           /* number of weights */
    uint64_t weight_bytes;       /* bytes of all tensors in the file */
    uint64_t converted_bytes;    /* memory held by weights converted at load (0: none) */
    int      proj_held_type;     /* bn_qtype the projections are held in: proj_type,
                                  * TQ2_0 for TQ1_0 ones converted at load, or I2_S
                                  * for TQ2_0 ones held in its layout (keep_tq2_0) */
    uint64_t file_size;
    bool     weights_read;       /* the file was read into memory (else it is mapped) */
    uint64_t weights_huge_bytes; /* of those, bytes in huge pages just after the load */
} bn_model_info;

BN_API void bn_model_get_info(const bn_model *m, bn_model_info *out);
BN_API int32_t bn_model_n_vocab(const bn_model *m);
/* The model's tokenizer (owned by the model); NULL when the file has none (its
 * tokenizer.ggml.* keys are absent): such a model takes token ids only. */
BN_API const bn_tokenizer *bn_model_tokenizer(const bn_model *m);
/* The GGUF file behind the model (owned by the model): for its other metadata. */
BN_API const bn_gguf *bn_model_gguf(const bn_model *m);

/* Sequences (slots) a context holds at most. */
#define BN_MAX_SEQ 256

typedef struct bn_context_params {
    int32_t  n_ctx;        /* positions the KV cache holds for each sequence; 0 = the
                              model's training context (2048 when unknown, at most 2^24),
                              lowered to what fits in half of the machine's available
                              memory (with a warning, never below 256) */
    int32_t  n_batch;      /* most tokens evaluated in one pass (default 512, capped at
                              n_ctx * n_seq); bn_eval and bn_decode split longer inputs */
    bn_dtype kv_type;      /* BN_F16 (default) or BN_F32 */
    bool     logits_all;   /* keep the logits of every token of a batch (default false:
                              the last one only, or one per sequence) */
    int32_t  n_seq;        /* sequences the context holds, each with its own KV cache of
                              n_ctx positions (default 1, at most BN_MAX_SEQ; 0 = 1) */
} bn_context_params;

BN_API bn_context_params bn_context_default_params(void);

/* A context: KV cache and every buffer one evaluation needs, allocated here once. */
BN_API bn_status bn_context_create(const bn_model *m, const bn_context_params *params,
                                   bn_context **out);
BN_API void bn_context_free(bn_context *ctx);
BN_API int32_t bn_context_n_ctx(const bn_context *ctx);
BN_API int32_t bn_context_n_batch(const bn_context *ctx);
BN_API int32_t bn_context_n_seq(const bn_context *ctx);
/* The model the context evaluates. */
BN_API const bn_model *bn_context_model(const bn_context *ctx);
/* Positions used in the KV cache of sequence 0 so far. */
BN_API int32_t bn_context_n_past(const bn_context *ctx);
/* Positions used by sequence seq; -1 when seq is not one of the context's. */
BN_API int32_t bn_context_seq_n_past(const bn_context *ctx, int32_t seq);
/* Bytes of the KV cache (all sequences) and of the other buffers of the context. */
BN_API size_t bn_context_kv_bytes(const bn_context *ctx);
BN_API size_t bn_context_buffer_bytes(const bn_context *ctx);
/* Forget positions n_past.. of sequence 0 (0 clears it). n_past larger than the current
 * count changes nothing. */
BN_API void bn_context_truncate(bn_context *ctx, int32_t n_past);
/* The same for sequence seq (a seq out of range changes nothing); the logits of the
 * last evaluation that belong to seq are dropped when positions are forgotten. */
BN_API void bn_context_seq_truncate(bn_context *ctx, int32_t seq, int32_t n_past);

/* Evaluate n tokens of sequence 0 at positions n_past .. n_past+n-1 (a prefill when
 * n > 1, a decode step when n == 1), adding them to the KV cache. n may exceed n_batch
 * (it is split). Logits: of the last token, or of all n when the context keeps them
 * (logits_all and n <= n_batch). Errors: n < 1, a token id out of range
 * (BN_ERR_INVALID_ARG), more positions than n_ctx (BN_ERR_CONTEXT_FULL, saying how many
 * fit); the context is unchanged then. Uses the default thread pool
 * (bn_set_num_threads); results do not depend on the thread count. */
BN_API bn_status bn_eval(bn_context *ctx, const bn_token *tokens, int32_t n);

/* A batch for bn_decode: n tokens, token i appended to sequence seq[i]. */
typedef struct bn_batch {
    int32_t         n;
    const bn_token *tokens;   /* [n] */
    const int32_t  *seq;      /* [n] sequence of each token; NULL: all in sequence 0 */
    const bool     *logits;   /* [n] keep token i's logits; NULL: the last token of each
                                 sequence the batch names */
} bn_batch;

/* Evaluate a batch of tokens of any of the context's sequences in one pass: the
 * tokens of each sequence go to its next positions in batch order, so one call can
 * prefill some sequences and advance others by one token (continuous batching). The
 * projections run once over all the batch's tokens, so a weight read from memory
 * serves every sequence; attention is per sequence. Each token gets exactly the
 * logits it gets when its sequence is evaluated alone. Errors (the context unchanged):
 * n < 1, a token or a sequence out of range, logits asked for more tokens than the
 * context keeps (n_seq, or n_batch with logits_all) (BN_ERR_INVALID_ARG), a sequence
 * that would pass n_ctx (BN_ERR_CONTEXT_FULL). */
BN_API bn_status bn_decode(bn_context *ctx, const bn_batch *batch);

/* The logits (n_vocab floats) of token i of the last bn_eval or bn_decode (i = -1: its
 * last token). NULL when they were not kept, when nothing was evaluated, or after
 * bn_context_truncate of the token's sequence. Valid until the next evaluation. */
BN_API const float *bn_get_logits(const bn_context *ctx, int32_t i);

/* Sampling. The chain, as llama.cpp applies it: penalties over the last penalty_last_n
 * accepted tokens (repeat: a positive logit is divided by repeat_penalty, a negative one
 * multiplied; presence: minus presence_penalty once a token occurred; frequency: minus
 * frequency_penalty times its count), then top-k, top-p (the smallest set whose
 * probability reaches top_p), min-p (drop tokens below min_p times the top
 * probability), then temperature and a draw from the softmax. temp <= 0 is greedy
 * (the argmax after penalties; ties go to the lowest id). A value that disables a stage:
 * top_k <= 0, top_p = 1, min_p = 0, penalties 1 / 0 / 0. */
typedef struct bn_sampler_params {
    float    temp;               /* default 0.8 */
    int32_t  top_k;              /* default 40 */
    float    top_p;              /* default 0.95 */
    float    min_p;              /* default 0.05 */
    float    repeat_penalty;     /* default 1.0 (off) */
    float    presence_penalty;   /* default 0.0 */
    float    frequency_penalty;  /* default 0.0 */
    int32_t  penalty_last_n;     /* default 64; 0 = off, -1 = every accepted token */
    uint64_t seed;               /* default 0xB17 (runs are reproducible) */
} bn_sampler_params;

BN_API bn_sampler_params bn_sampler_default_params(void);
/* A sampler over n_vocab tokens; its buffers are allocated here once. A NaN or infinite
 * parameter, top_p or min_p outside [0, 1], repeat_penalty <= 0, penalty_last_n < -1 or
 * n_vocab < 1 is BN_ERR_INVALID_ARG. */
BN_API bn_status bn_sampler_create(const bn_sampler_params *params, int32_t n_vocab,
                                   bn_sampler **out);
BN_API void bn_sampler_free(bn_sampler *s);
/* Draw the next token from logits (n_vocab floats, not changed). */
BN_API bn_token bn_sampler_sample(bn_sampler *s, const float *logits);
/* The distribution the next draw uses: probs[n_vocab] with zeros for filtered tokens
 * (greedy: 1 at the argmax). Does not advance the random state. */
BN_API void bn_sampler_probs(bn_sampler *s, const float *logits, float *probs);
/* Log-probabilities of the softmax of logits[n_vocab] (computed in double precision:
 * logit - log(sum of exp(logits))). *logprob gets token id's (id out of range: -inf;
 * logprob may be NULL), and the k most probable tokens go to top_ids[k] and
 * top_logprobs[k], most probable first (equal logits: the lower id first; either may be
 * NULL when k is 0). Returns how many were written: min(k, n_vocab), 0 for k <= 0.
 * Reads logits only: calling it changes nothing a sampler does. O(n_vocab * k) at
 * worst, O(n_vocab) for typical logits. */
BN_API int32_t bn_logprobs(const float *logits, int32_t n_vocab, bn_token id, int32_t k,
                           float *logprob, bn_token *top_ids, float *top_logprobs);
/* Record a token as part of the text (for the penalties). */
BN_API void bn_sampler_accept(bn_sampler *s, bn_token id);
/* Forget accepted tokens and restart the random sequence from the seed. */
BN_API void bn_sampler_reset(bn_sampler *s);

/* =================================================================== generation */
/* The loop every front end runs, as one call: evaluate a prompt, then sample a token,
 * decode it, look for stop texts, hand the text to the caller and evaluate the token,
 * until one of the stop rules says enough:
 *
 *     static bool print_piece(bn_token id, const char *text, size_t len, void *user)
 *     {
 *         fwrite(text, 1, len, stdout);
 *         return !interrupted;                      // false stops after this token
 *     }
 *     ...
 *     bn_generate_params gp = bn_generate_default_params();
 *     gp.max_tokens = 128;
 *     gp.sampling.temp = 0.0f;                      // greedy
 *     gp.on_token = print_piece;
 *     bn_generate_result r;
 *     if (bn_generate(m, ctx, ids, (int32_t)n, &gp, &r) != BN_OK) { ... }
 *     // r.stop says why it ended, r.n_generated how many tokens came
 *
 * The stop rules, checked in this order for each token:
 *   1. max_tokens tokens were generated (checked before sampling, so 0 generates none);
 *   2. the sampled token ends generation (bn_tokenizer_is_eog), unless ignore_eog: it is
 *      not counted, not decoded and not evaluated;
 *   3. the decoded text completes a stop text: the text before it is handed out, the
 *      stop text is not;
 *   4. the callback returned false;
 *   5. max_tokens is reached with this token;
 *   6. the context has no room to evaluate this token.
 * A token that ends generation by rules 3 to 6 is counted and was handed to the
 * callback; it is not evaluated (nothing is evaluated that no later token needs). */

typedef enum bn_stop_reason {
    BN_STOP_EOG = 0,         /* the model produced an end-of-generation token */
    BN_STOP_TEXT,            /* the text completed one of the stop texts */
    BN_STOP_MAX_TOKENS,      /* max_tokens tokens were generated */
    BN_STOP_CONTEXT_FULL,    /* the context has no room for another token */
    BN_STOP_CANCELLED        /* the callback returned false */
} bn_stop_reason;

/* Called for each generated token with the text that became complete with it: the
 * decoder's bytes (whole UTF-8 characters; special tokens give their text only with
 * render_special) less any tail that may still turn out to start a stop text, which is
 * held back until the next tokens decide it. len may be 0; text is valid during the
 * call only. Return true to go on, false to stop after this token (BN_STOP_CANCELLED).
 * When generation ends, the text still held (an incomplete UTF-8 sequence, or the
 * start of a stop text that never completed) comes in one last call with id -1 when
 * there is any (not after a stop text); that call's return value is ignored. */
typedef bool (*bn_token_fn)(bn_token id, const char *text, size_t len, void *user);

/* Called for each generated token that is counted (not for an end-of-generation token
 * that ends it by rule 2), after it was drawn and before its text goes to on_token,
 * with the logits it was drawn from: the model's raw output at that position, n_vocab
 * floats (the tokenizer's vocabulary), before the sampler's penalties, filters and
 * temperature, valid during the call only (bn_logprobs turns them into
 * log-probabilities). piece[piece_len] is the token's own text as the decoder gives it
 * (whole UTF-8 characters: a token that ends a character split across tokens carries
 * the whole character, the ones before it nothing; special tokens only with
 * render_special), before any of it is held back for a stop text; joined, the pieces
 * are the generated text (up to a stop text, and without the incomplete UTF-8 sequence
 * that the last call of on_token may carry at the end). It does not change what is
 * drawn; with on_logits NULL (default) nothing of this is computed. */
typedef void (*bn_logits_fn)(bn_token id, const float *logits, int32_t n_vocab,
                             const char *piece, size_t piece_len, void *user);

typedef struct bn_generate_params {
    int32_t            max_tokens;   /* most tokens to generate; -1 (default): no limit
                                        (until a stop rule or a full context) */
    bn_sampler_params  sampling;     /* for the sampler made for the call (default
                                        bn_sampler_default_params()) */
    bn_sampler        *sampler;      /* a caller's sampler to use instead (default NULL):
                                        not reset and not freed by bn_generate */
    const char *const *stops;        /* stop texts, none empty (default NULL); they must
                                        live until bn_generate returns */
    int32_t            n_stops;      /* default 0 */
    bool               ignore_eog;   /* go on after an end-of-generation token, treating
                                        it as any other (default false) */
    bool               render_special; /* special tokens' text in the pieces (default
                                        false: they decode to nothing) */
    bn_token_fn        on_token;     /* default NULL: the text goes nowhere */
    void              *user;         /* passed to on_token and on_logits */
    bn_logits_fn       on_logits;    /* default NULL: each token's logits and text
                                        before on_token (for log-probabilities) */
    bool               reuse_prompt; /* bn_generator only (bn_generate ignores it):
                                        reuse what a sequence holds from an earlier
                                        generation for the beginning of the prompt that
                                        is the same (default true) */
} bn_generate_params;

BN_API bn_generate_params bn_generate_default_params(void);

typedef struct bn_generate_result {
    bn_stop_reason stop;             /* which stop rule ended it */
    int32_t  n_prompt;               /* prompt tokens */
    int32_t  n_prompt_reused;        /* of those, how many were not evaluated again:
                                        their keys and values were kept in the sequence
                                        from an earlier generation (bn_generator) */
    int32_t  n_generated;            /* tokens generated (handed to on_token) */
    double   prompt_seconds;         /* evaluating the prompt */
    double   generate_seconds;       /* from the first sampling to the end, the
                                        callbacks' time included */
} bn_generate_result;

/* Continue the context `ctx` (its model's tokenizer is needed) with up to
 * max_tokens tokens after evaluating n_prompt tokens of `prompt` at its current end.
 * n_prompt may be 0 when the context's last evaluation left its logits (bn_get_logits
 * non-NULL): generation then continues from there. The prompt's tokens are accepted
 * into the sampler first (the penalties see them), whichever sampler it is. The
 * generated tokens stay in the context except the last one, so that a caller can go on
 * by evaluating it (or truncate).
 * Errors: a model without a tokenizer, a negative n_prompt or n_stops, max_tokens < -1,
 * an empty stop text, invalid sampling params, n_prompt 0 with no logits to continue
 * from (BN_ERR_INVALID_ARG); a prompt that does not fit in the context
 * (BN_ERR_CONTEXT_FULL, the context unchanged); failures of evaluation or
 * out-of-memory. After an error the callback may already have received text, and
 * *result is not written. Allocates its decoder, stop-text buffer and (without
 * params->sampler) sampler once per call; params NULL means the defaults. */
BN_API bn_status bn_generate(bn_context *ctx, const bn_token *prompt, int32_t n_prompt,
                             const bn_generate_params *params, bn_generate_result *result);

/* Many generations at once (continuous batching). A generator drives the sequences of a
 * context made with n_seq > 1: each generation holds one sequence from its prompt to
 * its stop. bn_generator_step evaluates, in one bn_decode, the prompts added since the
 * last step and the last token of every running generation, so that the weights are
 * read from memory once for all of them; then it samples each one's next token and
 * hands its text to its callback, by the same rules as bn_generate. A generation gets
 * the tokens and text bn_generate gives for the same prompt and parameters in a
 * context of its own.
 *
 * A released sequence keeps what it evaluated (its prompt and generated tokens): a new
 * prompt goes to the free sequence that shares the longest beginning with it, and only
 * the rest is evaluated (params->reuse_prompt, on by default; the result's
 * n_prompt_reused says how many were not). The generation is the same either way.
 *
 *     bn_generator *gen;  bn_generator_create(ctx, &gen);
 *     bn_generator_add(gen, ids, n_ids, &params, &seq);      (as requests arrive)
 *     while (bn_generator_step(gen, &n_active) == BN_OK) {
 *         for each seq: if (bn_generator_done(gen, seq, &result)) {
 *             ...; bn_generator_release(gen, seq); }
 *         if (n_active == 0 && no request waits) break;
 *     }
 *     bn_generator_free(gen);
 *
 * The generator uses the context alone while it lives (no bn_eval or bn_decode by the
 * caller). Nothing of it is thread-safe: call it from one thread. */
typedef struct bn_generator bn_generator;

/* A generator over every sequence of ctx. Errors: a model without a tokenizer
 * (BN_ERR_INVALID_ARG), out of memory. */
BN_API bn_status bn_generator_create(bn_context *ctx, bn_generator **out);
/* Frees it and every generation it holds (their callbacks are not called). */
BN_API void bn_generator_free(bn_generator *gen);
/* Sequences free for a new generation. */
BN_API int32_t bn_generator_n_free(const bn_generator *gen);
/* At most n_tokens prompt tokens in one step (0, the default: no limit). Prompts are
 * taken in the order they were added; one that does not fit is evaluated in parts over
 * the next steps while the running generations go on, so that a long prompt does not
 * hold back their next tokens for the whole of its evaluation. The generations are the
 * same whatever the limit. */
BN_API void bn_generator_set_prefill_chunk(bn_generator *gen, int32_t n_tokens);
/* Starts a generation of n_prompt >= 1 tokens in a free sequence, whose number goes to
 * *seq: with params->reuse_prompt, the one whose kept tokens share the longest
 * beginning with the prompt (at most n_prompt - 1 of them), cleared past that; else, or
 * when none shares any, the one given a generation least recently, cleared. The prompt
 * is copied and what is not reused is evaluated at the next step.
 * params (NULL: the defaults) is copied, but its stop texts and user pointer are the
 * caller's and must live until the generation is released; params->sampler must be
 * NULL (each generation makes its own from params->sampling). Errors: every sequence
 * taken (BN_ERR_BUSY), a prompt longer than a sequence (BN_ERR_CONTEXT_FULL), an empty
 * prompt, a token out of range or invalid params (BN_ERR_INVALID_ARG), out of memory;
 * *seq is -1 then and nothing changed. */
BN_API bn_status bn_generator_add(bn_generator *gen, const bn_token *prompt,
                                  int32_t n_prompt, const bn_generate_params *params,
                                  int32_t *seq);
/* One step of every generation (see above); a generation that meets a stop rule in it
 * is done: its callback has had the last of its text. *n_active (may be NULL) gets the
 * number still running. A step with nothing to do returns BN_OK at once. Errors:
 * those of evaluation (nothing changed then: the step can be tried again) and of
 * decoding a token's text (that generation is done, stopped as BN_STOP_CANCELLED; the
 * others went on). */
BN_API bn_status bn_generator_step(bn_generator *gen, int32_t *n_active);
/* Whether the generation in seq is done; its result goes to *result (may be NULL). */
BN_API bool bn_generator_done(const bn_generator *gen, int32_t seq,
                              bn_generate_result *result);
/* Ends the generation in seq, done or not (a running one is dropped without a last
 * callback), and frees the sequence; its positions stay in the KV cache for a later
 * prompt to reuse (bn_generator_add clears them when it gives the sequence to another
 * prompt). A free or out-of-range seq changes nothing. */
BN_API void bn_generator_release(bn_generator *gen, int32_t seq);

/* ========================================================================= chat */
/* A conversation held beside a context: the messages, rendered with the model's chat
 * template (bn_chat_format) before each reply, and the token ids the KV cache holds,
 * so that a reply evaluates only what the cache does not hold yet (the new message, and
 * the previous reply where its text tokenizes differently from the tokens generated):
 *
 *     bn_chat *chat = NULL;
 *     bn_chat_create(m, ctx, NULL, &chat);
 *     bn_chat_add_message(chat, "system", "Be brief.");
 *     bn_chat_add_message(chat, "user", "Hello!");
 *     bn_generate_params gp = bn_generate_default_params();
 *     gp.on_token = print_piece;
 *     bn_generate_result r;
 *     bn_chat_reply(chat, &gp, &r);   // streams the reply, then adds it as "assistant"
 *     bn_chat_add_message(chat, "user", "And then?");
 *     bn_chat_reply(chat, &gp, &r);   // evaluates about the new message only
 *     bn_chat_free(chat);
 *
 * Fitting the conversation in the context: a reply needs room, max_tokens positions
 * when max_tokens >= 0, else a quarter of the context; at most half of it. While the
 * rendered conversation and that room do not fit, the oldest exchange is dropped: the
 * oldest message after the system message and those after it up to the next user
 * message (a user message and its replies); the system message (a first message with
 * role "system") and the last message always stay. When even that does not fit, nothing is dropped and the reply
 * fails. A reply that fills the context stops (BN_STOP_CONTEXT_FULL); the next one
 * drops old exchanges.
 *
 * The session uses its context alone: it tracks what the cache holds, and starts over
 * from what is still there when something else truncated the context. One session per
 * context; the context must have been made from the model. */
typedef struct bn_chat bn_chat;

typedef struct bn_chat_params {
    const char *template_name;  /* as for bn_chat_format: NULL (default) chooses from
                                   the model's tokenizer.chat_template; copied */
} bn_chat_params;

BN_API bn_chat_params bn_chat_default_params(void);

/* A session with an empty conversation over `ctx` (which it does not own and which must
 * outlive it). A template that bn_chat_format does not know is BN_ERR_UNSUPPORTED, with
 * bn_chat_format's message; a model without a tokenizer is BN_ERR_INVALID_ARG. params
 * NULL means the defaults. */
BN_API bn_status bn_chat_create(bn_context *ctx, const bn_chat_params *params,
                                bn_chat **out);
/* Frees the session and its messages; the context stays as it is. */
BN_API void bn_chat_free(bn_chat *chat);

/* The conversation, oldest message first. Message i's strings belong to the session and
 * stay valid until that message is removed or the session freed. i < n_messages. */
BN_API size_t bn_chat_n_messages(const bn_chat *chat);
BN_API bn_chat_message bn_chat_get_message(const bn_chat *chat, size_t i);
/* Append a message (role and content copied; roles are those of the template:
 * "system", "user", "assistant"). BN_ERR_OOM leaves the conversation as it was. */
BN_API bn_status bn_chat_add_message(bn_chat *chat, const char *role, const char *content);
/* Remove messages [first, first + count), first + count <= n_messages. */
BN_API void bn_chat_remove_messages(bn_chat *chat, size_t first, size_t count);
/* Replace the whole conversation by copies of n messages, which may point into the
 * conversation being replaced. BN_ERR_OOM leaves it as it was. */
BN_API bn_status bn_chat_set_messages(bn_chat *chat, const bn_chat_message *msgs, size_t n);

/* What bn_chat_prefill did. */
typedef struct bn_chat_prefill_info {
    int32_t n_tokens;      /* the rendered conversation, with the assistant's header */
    int32_t n_reused;      /* of those, kept from the KV cache */
    int32_t n_evaluated;   /* evaluated now (at least 1: the reply starts from its logits) */
    int32_t n_reserved;    /* positions kept free for the reply */
    size_t  n_dropped;     /* oldest messages dropped to fit */
    double  seconds;       /* rendering, tokenizing and evaluating */
} bn_chat_prefill_info;

/* Bring the context up to the conversation ahead of a reply of up to max_tokens (-1:
 * no limit): render it with the assistant's header, tokenize it, drop the oldest
 * exchanges while it does not fit with room for the reply (see above), keep the part
 * the cache already holds and evaluate the rest. bn_chat_reply does this itself when
 * the conversation changed since; calling it first lets a front end report what was
 * dropped before the reply streams. info may be NULL.
 * Errors: a conversation too long for the context even alone (BN_ERR_CONTEXT_FULL;
 * the message says how many tokens it is and how many the context holds; nothing is
 * dropped), one that renders to no tokens (BN_ERR_INVALID_ARG), failures of the
 * template, the tokenizer or the evaluation. */
BN_API bn_status bn_chat_prefill(bn_chat *chat, int32_t max_tokens,
                                 bn_chat_prefill_info *info);

/* Generate the assistant's reply to the conversation with bn_generate (params as
 * there: max_tokens, sampling, stop texts, callback; NULL means the defaults) and
 * append it to the conversation as an "assistant" message: the text handed to the
 * callback, so also a reply cut short by a stop rule, or by an error after its first
 * token. Prefills first (bn_chat_prefill with params->max_tokens) unless the
 * conversation is prefilled as it is; result->n_prompt and prompt_seconds count that
 * evaluation (0 when prefilled before). The sampler (params->sampler, which is reset,
 * or one made from params->sampling) sees the whole rendered conversation before the
 * first draw, and restarts its random sequence: one conversation and one seed give one
 * reply. Errors: those of bn_chat_prefill and bn_generate, and BN_ERR_OOM when the
 * reply cannot be kept; *result is not written then. */
BN_API bn_status bn_chat_reply(bn_chat *chat, const bn_generate_params *params,
                               bn_generate_result *result);

/* ====================================================================== devices */

typedef enum bn_device_type { BN_DEVICE_CPU = 0, BN_DEVICE_CUDA } bn_device_type;

/* The devices this build and machine have: the CPU is always device 0, then one per
 * CUDA GPU when built with CUDA. */
BN_API int bn_device_count(void);
BN_API bn_device *bn_device_get(int index);     /* NULL when out of range */
BN_API bn_device *bn_device_cpu(void);
BN_API bn_device_type bn_device_type_of(const bn_device *dev);
BN_API const char *bn_device_name(const bn_device *dev); /* "cpu", "cuda:0" */

/* A copy of t on `dev` (contiguous, same dtype and shape). Copying to the same device
 * gives a contiguous copy. The data is preserved bit for bit. */
BN_API bn_status bn_tensor_to_device(const bn_tensor *t, bn_device *dev, bn_tensor **out);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_H */
