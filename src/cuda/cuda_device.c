/*
 * cuda_device.c - the CUDA device backend: allocation and host<->device copies through
 * the CUDA runtime API, as a bn_device_ops table (device.c adds one bn_device per
 * GPU). Compiled only with BITNET_CUDA; plain C, no kernels.
 *
 * Every runtime call that fails becomes a status with the device, the call, the size
 * and CUDA's own words ("cuda:0: cudaMalloc of 4096 bytes: out of memory"), and the
 * runtime's last-error slot is cleared so that the failure does not resurface from an
 * unrelated later call.
 */
#include <cuda_runtime_api.h>

#include "core/internal.h"

/* Turns a failed CUDA call into a status: BN_ERR_OOM for an allocation failure, else
 * BN_ERR_DEVICE, with "cuda:<ordinal>: <what>: <CUDA's message>". */
static bn_status cuda_fail(const bn_device *dev, cudaError_t err, const char *what,
                           size_t nbytes)
{
    (void)cudaGetLastError();
    bn_status st = err == cudaErrorMemoryAllocation ? BN_ERR_OOM : BN_ERR_DEVICE;
    return bn_error_set(st, "cuda:%d: %s of %zu bytes: %s", dev->ordinal, what, nbytes,
                        cudaGetErrorString(err));
}

/* Makes dev the calling thread's current CUDA device. */
static bn_status cuda_select(const bn_device *dev, const char *what, size_t nbytes)
{
    cudaError_t err = cudaSetDevice(dev->ordinal);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return bn_error_set(BN_ERR_DEVICE, "cuda:%d: cudaSetDevice before %s of %zu "
                            "bytes: %s", dev->ordinal, what, nbytes,
                            cudaGetErrorString(err));
    }
    return BN_OK;
}

/* Allocates nbytes (at least one, so that an empty tensor still has an address) of
 * device memory on dev. */
static bn_status cuda_alloc(bn_device *dev, size_t nbytes, void **out)
{
    bn_status st = cuda_select(dev, "cudaMalloc", nbytes);
    if (st != BN_OK)
        return st;
    void *ptr = NULL;
    cudaError_t err = cudaMalloc(&ptr, nbytes ? nbytes : 1);
    if (err != cudaSuccess)
        return cuda_fail(dev, err, "cudaMalloc", nbytes);
    *out = ptr;
    return BN_OK;
}

/* Frees device memory from cuda_alloc; a failure can only be logged. */
static void cuda_free(bn_device *dev, void *ptr)
{
    if (!ptr)
        return;
    cudaError_t err = cudaSetDevice(dev->ordinal);
    if (err == cudaSuccess)
        err = cudaFree(ptr);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        bn_log(BN_LOG_WARN, "cuda:%d: cudaFree: %s", dev->ordinal,
               cudaGetErrorString(err));
    }
}

/* Copies n bytes in the given direction, synchronously. */
static bn_status cuda_copy(bn_device *dev, void *dst, const void *src, size_t n,
                           enum cudaMemcpyKind kind, const char *what)
{
    if (n == 0)
        return BN_OK;
    bn_status st = cuda_select(dev, what, n);
    if (st != BN_OK)
        return st;
    cudaError_t err = cudaMemcpy(dst, src, n, kind);
    if (err != cudaSuccess)
        return cuda_fail(dev, err, what, n);
    return BN_OK;
}

/* Device to host. */
static bn_status cuda_to_host(bn_device *dev, void *host_dst, const void *dev_src, size_t n)
{
    return cuda_copy(dev, host_dst, dev_src, n, cudaMemcpyDeviceToHost,
                     "cudaMemcpy to host");
}

/* Host to device. */
static bn_status cuda_from_host(bn_device *dev, void *dev_dst, const void *host_src,
                                size_t n)
{
    return cuda_copy(dev, dev_dst, host_src, n, cudaMemcpyHostToDevice,
                     "cudaMemcpy from host");
}

static const bn_device_ops cuda_ops = {
    .alloc = cuda_alloc,
    .free = cuda_free,
    .to_host = cuda_to_host,
    .from_host = cuda_from_host,
};

/* The number of CUDA GPUs; 0 when there is none, no driver, or any error. */
int bn_cuda_device_count(void)
{
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n > 0 ? n : 0;
}

/* The backend's function table. */
const bn_device_ops *bn_cuda_device_ops(void)
{
    return &cuda_ops;
}
