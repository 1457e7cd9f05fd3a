/*
 * fuzz_safetensors.c - a libFuzzer target for the safetensors header parser.
 *
 * Each input is parsed with bn_st_open_memory from libFuzzer's buffer (exactly the
 * input's size, so ASan sees any read past it). When the parse succeeds, what the
 * reader promises is checked: every tensor found by its name at its own index, of a
 * known dtype, its bytes equal to its element count times the dtype's size, the
 * tensors tiling the data section in order up to the end of the input, every first
 * and last data byte readable, float tensors convertible. A failed parse must leave a
 * BN_ERR_FORMAT (or BN_ERR_OOM) message and no handle. Either way the live block count
 * must return to where it was. Any broken promise aborts, which libFuzzer reports as a
 * crash.
 *
 * Built with -DBN_FUZZ_SEED_WRITER instead (no -fsanitize=fuzzer), the file is a small
 * program writing the seed corpus: `fuzz_safetensors_seeds DIR` writes a few valid
 * files (every dtype, a scalar, an empty tensor, __metadata__, header padding).
 * scripts/fuzz.sh builds both and runs the fuzzer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned bn_fuzz_sink;

static void bn_fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz_safetensors: %s\n", what);
    abort();
}

/* Walks an opened image and checks the reader's promises. */
static void bn_fuzz_walk(const bn_safetensors *s, const uint8_t *data, size_t size)
{
    const uint8_t *at = NULL;
    for (int64_t i = 0; i < bn_st_n_tensors(s); i++) {
        const bn_st_tensor *t = bn_st_get(s, i);
        if (!t || !t->name[0] || bn_st_find(s, t->name) != t)
            bn_fuzz_fail("tensor name empty or not found at its index");
        if ((unsigned)t->dtype >= BN_ST_DTYPE_COUNT || t->n_dims < 0 ||
            t->n_dims > BN_ST_MAX_DIMS)
            bn_fuzz_fail("dtype or dimension count out of range");
        int64_t numel = 1;
        for (int d = 0; d < t->n_dims; d++)
            if (t->shape[d] < 0 || __builtin_mul_overflow(numel, t->shape[d], &numel))
                bn_fuzz_fail("shape negative or overflowing");
        size_t bytes = (size_t)(t->end - t->begin);
        if (numel != t->numel || (uint64_t)numel * bn_st_dtype_size(t->dtype) != bytes)
            bn_fuzz_fail("byte size differs from the shape and dtype");
        const uint8_t *p = t->data;
        if (p < data + 8 || (size_t)(p - data) > size || bytes > size - (size_t)(p - data))
            bn_fuzz_fail("tensor data outside the image");
        if (at && p != at)
            bn_fuzz_fail("tensors do not tile the data section");
        at = p + bytes;
        if (bytes)
            bn_fuzz_sink += p[0] + p[bytes - 1];
        if (t->dtype == BN_ST_F32 || t->dtype == BN_ST_BF16 || t->dtype == BN_ST_F16) {
            float *f = malloc((size_t)numel * sizeof *f + 1);
            if (f && bn_st_to_f32(t, f) != BN_OK)
                bn_fuzz_fail("a float tensor did not convert");
            free(f);
        }
    }
    if (at && at != data + size)
        bn_fuzz_fail("the last tensor does not end the image");
    if (bn_st_get(s, bn_st_n_tensors(s)) || bn_st_get(s, -1))
        bn_fuzz_fail("accessor past the end answered");
    bn_fuzz_sink += bn_st_metadata(s, "format") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    bn_error_clear();
    bn_safetensors *s = NULL;
    bn_status st = bn_st_open_memory(data, size, &s);
    if (st == BN_OK) {
        if (!s)
            bn_fuzz_fail("success without a handle");
        bn_fuzz_walk(s, data, size);
        bn_st_close(s);
    } else if (s || bn_last_error()[0] == '\0' ||
               (st != BN_ERR_FORMAT && st != BN_ERR_OOM)) {
        fprintf(stderr, "status %s: '%s'\n", bn_status_str(st), bn_last_error());
        bn_fuzz_fail("failure with a handle, without a message or of the wrong status");
    }
    bn_mem_get_stats(&after);
    if (after.live_blocks != before.live_blocks)
        bn_fuzz_fail("live blocks differ after close: a leak");
    return 0;
}

#ifdef BN_FUZZ_SEED_WRITER
/* ------------------------------------------------------------------ seeds */

/* Writes 8-byte length + header (padded with spaces to `pad`) + data bytes. */
static int bn_seed_write(const char *dir, const char *name, const char *header, size_t pad,
                         size_t n_data)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t hl = strlen(header), padded = (hl + pad - 1) / pad * pad;
    FILE *f = fopen(path, "wb");
    if (!f)
        return 1;
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int bad = fwrite(len, 1, 8, f) != 8 || fwrite(header, 1, hl, f) != hl;
    for (size_t i = hl; i < padded; i++)
        bad |= fputc(' ', f) == EOF;
    for (size_t i = 0; i < n_data; i++)
        bad |= fputc((int)((i * 37 + 11) & 0xff), f) == EOF;
    bad |= fclose(f) != 0;
    if (bad)
        fprintf(stderr, "fuzz_safetensors_seeds: cannot write %s\n", path);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_safetensors_seeds DIR\n");
        return 2;
    }
    int bad = 0;
    bad |= bn_seed_write(argv[1], "empty.safetensors", "{}", 8, 0);
    bad |= bn_seed_write(argv[1], "one.safetensors",
                         "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}",
                         8, 12);
    bad |= bn_seed_write(argv[1], "meta.safetensors",
                         "{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"a.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                         "\"a.weight_scale\":{\"dtype\":\"F32\",\"shape\":[],"
                         "\"data_offsets\":[16,20]},"
                         "\"b\":{\"dtype\":\"U8\",\"shape\":[2,0],\"data_offsets\":[20,20]},"
                         "\"c\":{\"dtype\":\"F16\",\"shape\":[1,1,2],\"data_offsets\":[20,24]},"
                         "\"d\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[24,32]},"
                         "\"e\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[32,40]},"
                         "\"f\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[40,43]},"
                         "\"g\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[43,44]}}",
                         8, 44);
    return bad;
}
#endif
