/*
 * test_device.c - the device table and moving tensors between devices. On a build
 * without CUDA only the CPU exists; test_device_cuda covers GPUs.
 */
#include <string.h>

#include "bitnet.h"
#include "check.h"

static void test_table(void)
{
    int n = bn_device_count();
    CHECK(n >= 1, "at least the CPU");
    bn_device *cpu = bn_device_get(0);
    CHECK(cpu == bn_device_cpu(), "device 0 is the CPU");
    CHECK(bn_device_type_of(cpu) == BN_DEVICE_CPU && strcmp(bn_device_name(cpu), "cpu") == 0,
          "cpu named 'cpu'");
    CHECK(bn_device_get(-1) == NULL && bn_device_get(n) == NULL, "out of range is NULL");
    for (int i = 1; i < n; i++) {
        char want[16];
        snprintf(want, sizeof want, "cuda:%d", i - 1);
        CHECK(bn_device_type_of(bn_device_get(i)) == BN_DEVICE_CUDA &&
              strcmp(bn_device_name(bn_device_get(i)), want) == 0, "device %d is %s", i, want);
    }
}

/* Round-trips a tensor of every dtype through every device and back, bit for bit. */
static void test_round_trip(void)
{
    const bn_dtype dtypes[] = {BN_F32, BN_F16, BN_BF16, BN_I8, BN_I32};
    unsigned char pattern[4 * 60];
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)(i * 37 + 11);  /* includes NaN payloads as f32/f16 */
    for (int d = 0; d < bn_device_count(); d++) {
        bn_device *dev = bn_device_get(d);
        for (size_t k = 0; k < 5; k++) {
            bn_tensor *t = NULL, *view = NULL, *on = NULL, *back = NULL;
            CHECK_OK(bn_tensor_from_data(dtypes[k], 3, (int64_t[]){3, 4, 5}, pattern, &t));
            CHECK_OK(bn_tensor_transpose(t, 0, 2, &view));
            CHECK_OK(bn_tensor_to_device(view, dev, &on));
            CHECK(on && bn_tensor_device(on) == dev && bn_tensor_is_contiguous(on) &&
                  bn_tensor_dim(on, 0) == 5, "copy on %s has the view's shape",
                  bn_device_name(dev));
            CHECK_OK(bn_tensor_to_device(on, bn_device_cpu(), &back));
            size_t nb = bn_tensor_nbytes(t);
            unsigned char *want = malloc(nb), *got = malloc(nb);
            CHECK_OK(bn_tensor_read(view, dtypes[k], want, nb));
            CHECK(back && memcmp(bn_tensor_data(back), want, nb) == 0,
                  "%s via %s preserved exactly", bn_dtype_name(dtypes[k]), bn_device_name(dev));
            /* and the copy is independent of the source */
            if (back) {
                memcpy(got, bn_tensor_data(back), nb);
                memset(bn_tensor_data(t), 0, nb);
                CHECK(memcmp(bn_tensor_data(back), got, nb) == 0, "copy is independent");
            }
            free(want);
            free(got);
            bn_tensor_free(back);
            bn_tensor_free(on);
            bn_tensor_free(view);
            bn_tensor_free(t);
        }
    }
    bn_tensor *e = NULL, *c = NULL;
    CHECK_OK(bn_tensor_new(BN_F32, 2, (int64_t[]){0, 4}, &e));
    CHECK_OK(bn_tensor_to_device(e, bn_device_cpu(), &c));
    CHECK(c && bn_tensor_numel(c) == 0 && bn_tensor_dim(c, 1) == 4, "empty tensor moves");
    bn_tensor_free(e);
    bn_tensor_free(c);
}

int main(void)
{
    bn_mem_stats start, end;
    bn_mem_get_stats(&start);
    test_table();
    test_round_trip();
    bn_mem_get_stats(&end);
    CHECK(end.live_blocks == start.live_blocks, "no blocks leaked");
    return check_summary("test_device");
}
