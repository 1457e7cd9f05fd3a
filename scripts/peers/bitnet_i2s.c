/*
 * bitnet_i2s.c - a peer harness (not part of libbitnet): runs bitnet.cpp's I2_S
 * quantizer (quantize_i2_s in src/ggml-bitnet-mad.cpp, x86 build, reached through its
 * ggml fork's ggml_quantize_chunk as llama-quantize does) and its dequantize_row_i2_s
 * on raw f32 files. Built against the fork's ggml library by
 * scripts/fixtures/make_peer_quant.sh.
 *
 *   bitnet_i2s traits
 *       one line per type id of the fork: "id<TAB>blck_size<TAB>type_size<TAB>name"
 *   bitnet_i2s quant ROWS COLS IN.f32 OUT.bin DEQ.f32
 *       quantizes ROWS x COLS values to I2_S into a zero-filled buffer, writes
 *       ggml_nbytes bytes, dequantizes the whole tensor with dequantize_row_i2_s and
 *       the scale read from the tail, and prints "row_size nbytes returned".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"

/* In the fork's ggml-quants.h, which is not an installed header. */
void dequantize_row_i2_s(const uint8_t *x, float *y, int64_t n, const float i2_scale);

static void *read_file(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    void *buf = malloc(n ? n : 1);
    if (!f || !buf || fread(buf, 1, n, f) != n) {
        fprintf(stderr, "bitnet_i2s: cannot read %zu bytes from %s\n", n, path);
        exit(1);
    }
    fclose(f);
    return buf;
}

static void write_file(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "bitnet_i2s: cannot write %s\n", path);
        exit(1);
    }
}

/* ggml_nbytes of a rows x cols I2_S tensor (the fork special-cases it: n / 4 + 32). */
static size_t tensor_nbytes(int64_t rows, int64_t cols)
{
    struct ggml_init_params params = {16 * 1024, NULL, true};
    struct ggml_context *ctx = ggml_init(params);
    struct ggml_tensor *t = ggml_new_tensor_2d(ctx, GGML_TYPE_I2_S, cols, rows);
    size_t n = ggml_nbytes(t);
    ggml_free(ctx);
    return n;
}

/* Print the fork's type table (ids it does not define have a NULL name). */
static int cmd_traits(void)
{
    for (int id = 0; id < GGML_TYPE_COUNT; id++)
    {
        const char *name = ggml_type_name((enum ggml_type)id);
        printf("%d\t%lld\t%zu\t%s\n", id, (long long)ggml_blck_size((enum ggml_type)id),
               ggml_type_size((enum ggml_type)id), name ? name : "-");
    }
    return 0;
}

static int cmd_quant(char **argv)
{
    int64_t rows = atoll(argv[0]), cols = atoll(argv[1]);
    size_t n = (size_t)(rows * cols);
    float *src = read_file(argv[2], n * sizeof(float));
    size_t row_size = ggml_row_size(GGML_TYPE_I2_S, cols);
    size_t nbytes = tensor_nbytes(rows, cols);
    unsigned char *dst = calloc(1, nbytes);  /* the tail's padding stays zero */
    size_t ret = ggml_quantize_chunk(GGML_TYPE_I2_S, src, dst, 0, rows, cols, NULL);
    write_file(argv[3], dst, nbytes);
    float scale;
    memcpy(&scale, dst + n / 4, sizeof scale);
    float *deq = malloc(n * sizeof(float));
    dequantize_row_i2_s(dst, deq, (int64_t)n, scale);
    write_file(argv[4], deq, n * sizeof(float));
    printf("%zu %zu %zu\n", row_size, nbytes, ret);
    free(src);
    free(dst);
    free(deq);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "traits") == 0)
        return cmd_traits();
    if (argc == 7 && strcmp(argv[1], "quant") == 0)
        return cmd_quant(argv + 2);
    fprintf(stderr, "usage: bitnet_i2s traits | quant ROWS COLS IN OUT DEQ\n");
    return 2;
}
