/*
 * device.c - devices as function tables: the CPU always (device 0), then one per CUDA
 * GPU when the library is built with BITNET_CUDA. Tensors move between devices only
 * through bn_tensor_to_device, which copies bytes exactly.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

#define BN_MAX_DEVICES 17

static bn_status bn_cpu_alloc(bn_device *dev, size_t nbytes, void **out)
{
    void *p = bn_calloc(1, nbytes ? nbytes : 1, "tensor_data");
    if (!p)
        return bn_last_status();
    *out = p;
    return BN_OK;
}

static void bn_cpu_free(bn_device *dev, void *ptr)
{
    bn_free(ptr);
}

static bn_status bn_cpu_copy(bn_device *dev, void *dst, const void *src, size_t n)
{
    if (n)
        memcpy(dst, src, n);
    return BN_OK;
}

static const bn_device_ops bn_cpu_ops = {
    .alloc = bn_cpu_alloc,
    .free = bn_cpu_free,
    .to_host = bn_cpu_copy,
    .from_host = bn_cpu_copy,
};

static bn_device bn_devices[BN_MAX_DEVICES] = {
    {.type = BN_DEVICE_CPU, .ordinal = 0, .name = "cpu", .ops = &bn_cpu_ops},
};
static int bn_n_devices = 1;
static pthread_once_t bn_devices_once = PTHREAD_ONCE_INIT;

/* Adds the GPUs of a CUDA build to the table. */
static void bn_devices_discover(void)
{
#ifdef BITNET_CUDA
    int n = bn_cuda_device_count();
    for (int i = 0; i < n && bn_n_devices < BN_MAX_DEVICES; i++) {
        bn_device *d = &bn_devices[bn_n_devices++];
        d->type = BN_DEVICE_CUDA;
        d->ordinal = i;
        snprintf(d->name, sizeof d->name, "cuda:%d", i);
        d->ops = bn_cuda_device_ops();
    }
#endif
}

int bn_device_count(void)
{
    pthread_once(&bn_devices_once, bn_devices_discover);
    return bn_n_devices;
}

bn_device *bn_device_get(int index)
{
    if (index < 0 || index >= bn_device_count())
        return NULL;
    return &bn_devices[index];
}

bn_device *bn_device_cpu(void)
{
    return &bn_devices[0];
}

bn_device_type bn_device_type_of(const bn_device *dev)
{
    return dev->type;
}

const char *bn_device_name(const bn_device *dev)
{
    return dev->name;
}

/* Host bytes of t in row-major order: t's own buffer when contiguous, else a
 * gathered copy in *scratch (freed by the caller). */
static bn_status bn_host_bytes(const bn_tensor *t, const void **bytes, bn_tensor **scratch)
{
    *scratch = NULL;
    if (bn_tensor_is_contiguous(t)) {
        *bytes = bn_tensor_data(t);
        return BN_OK;
    }
    bn_status st = bn_tensor_contiguous(t, scratch);
    if (st != BN_OK)
        return st;
    *bytes = bn_tensor_data(*scratch);
    return BN_OK;
}

bn_status bn_tensor_to_device(const bn_tensor *t, bn_device *dev, bn_tensor **out)
{
    bn_device *from = t->buf->device;
    if (from->type != BN_DEVICE_CPU && !bn_tensor_is_contiguous(t))
        return bn_error_set(BN_ERR_UNSUPPORTED, "moving a strided view off %s: make it "
                            "contiguous there first", from->name);
    bn_tensor *r = NULL, *scratch = NULL;
    bn_status st = bn_tensor_new_on(dev, t->dtype, t->ndim, t->shape, &r);
    size_t n = bn_tensor_nbytes(t);
    if (st == BN_OK && n > 0) {
        if (from->type == BN_DEVICE_CPU) {
            const void *src;
            st = bn_host_bytes(t, &src, &scratch);
            if (st == BN_OK)
                st = dev->ops->from_host(dev, bn_tensor_data(r), src, n);
        } else if (dev->type == BN_DEVICE_CPU) {
            st = from->ops->to_host(from, bn_tensor_data(r), bn_tensor_data(t), n);
        } else {
            /* between two GPUs: through the host */
            void *host = bn_malloc(n, "device_copy");
            st = host ? from->ops->to_host(from, host, bn_tensor_data(t), n) : BN_ERR_OOM;
            if (st == BN_OK)
                st = dev->ops->from_host(dev, bn_tensor_data(r), host, n);
            bn_free(host);
        }
    }
    bn_tensor_free(scratch);
    if (st != BN_OK) {
        bn_tensor_free(r);
        return bn_error_wrap(st, "moving a %s tensor from %s to %s",
                             bn_dtype_name(t->dtype), from->name, dev->name);
    }
    *out = r;
    return BN_OK;
}
