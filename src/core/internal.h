/*
 * internal.h - what the core's files share and nothing outside libbitnet sees: the
 * tensor and buffer structs, the device backend table and small helpers. The kernel
 * table is in kernels/kernels.h.
 */
#ifndef BN_CORE_INTERNAL_H
#define BN_CORE_INTERNAL_H

#include <stdatomic.h>

#include "bitnet.h"
#include "kernels/kernels.h"

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
