/*
 * ggml_quant.c - a peer harness (not part of libbitnet): runs ggml's own quantizers and
 * dequantizers on raw f32 files, so that tests/test_qformats.c can compare libbitnet
 * with ggml byte for byte. Built against llama.cpp's ggml-base library by
 * scripts/fixtures/make_peer_quant.sh.
 *
 *   ggml_quant traits
 *       one line per type id: "id<TAB>blck_size<TAB>type_size<TAB>name" (name "-"
 *       for ids ggml leaves empty; some names contain spaces)
 *   ggml_quant quant TYPE_ID ROWS COLS IN.f32 OUT.bin DEQ.f32
 *       quantizes ROWS x COLS f32 values with ggml_quantize_chunk (no importance
 *       matrix: each type's reference quantizer), writes the bytes, dequantizes them
 *       back with the type's to_float, writes the floats, and prints
 *       "row_size nbytes returned" (ggml_row_size, ggml_nbytes of a ROWS x COLS tensor,
 *       and what ggml_quantize_chunk returned).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"

/* Read exactly n bytes of a file into a new buffer; exits on failure. */
static void *read_file(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    void *buf = malloc(n ? n : 1);
    if (!f || !buf || fread(buf, 1, n, f) != n) {
        fprintf(stderr, "ggml_quant: cannot read %zu bytes from %s\n", n, path);
        exit(1);
    }
    fclose(f);
    return buf;
}

/* Write n bytes to a file; exits on failure. */
static void write_file(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "ggml_quant: cannot write %s\n", path);
        exit(1);
    }
}

/* ggml_nbytes of a rows x cols tensor of `type`, through a no-alloc context. */
static size_t tensor_nbytes(enum ggml_type type, int64_t rows, int64_t cols)
{
    struct ggml_init_params params = {16 * 1024, NULL, true};
    struct ggml_context *ctx = ggml_init(params);
    struct ggml_tensor *t = ggml_new_tensor_2d(ctx, type, cols, rows);
    size_t n = ggml_nbytes(t);
    ggml_free(ctx);
    return n;
}

/* Print the type table. */
static int cmd_traits(void)
{
    for (int id = 0; id < GGML_TYPE_COUNT; id++) {
        const struct ggml_type_traits *tt = ggml_get_type_traits((enum ggml_type)id);
        printf("%d\t%lld\t%zu\t%s\n", id, (long long)tt->blck_size, tt->type_size,
               tt->type_name ? tt->type_name : "-");
    }
    return 0;
}

/* Quantize, dequantize, report sizes. */
static int cmd_quant(char **argv)
{
    enum ggml_type type = (enum ggml_type)atoi(argv[0]);
    int64_t rows = atoll(argv[1]), cols = atoll(argv[2]);
    size_t n = (size_t)(rows * cols);
    float *src = read_file(argv[3], n * sizeof(float));
    size_t row_size = ggml_row_size(type, cols);
    size_t nbytes = tensor_nbytes(type, rows, cols);
    unsigned char *dst = calloc(1, nbytes);
    size_t ret = ggml_quantize_chunk(type, src, dst, 0, rows, cols, NULL);
    write_file(argv[4], dst, nbytes);
    float *deq = malloc(n * sizeof(float));
    const struct ggml_type_traits *tt = ggml_get_type_traits(type);
    for (int64_t r = 0; r < rows; r++)
        tt->to_float(dst + (size_t)r * row_size, deq + (size_t)r * (size_t)cols, cols);
    write_file(argv[5], deq, n * sizeof(float));
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
    if (argc == 8 && strcmp(argv[1], "quant") == 0)
        return cmd_quant(argv + 2);
    fprintf(stderr, "usage: ggml_quant traits | quant TYPE ROWS COLS IN OUT DEQ\n");
    return 2;
}
