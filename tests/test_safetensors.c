/*
 * test_safetensors.c - the safetensors reader (src/io/safetensors.c) on images built
 * here byte by byte from the format's definition (8-byte little-endian header length,
 * a JSON header, the data section): a valid file's tensors, shapes, offsets, metadata
 * and values (bf16 0x3f80 = 1.0, f16 0x3c00 = 1.0, f32 bits written as such), then
 * every kind of malformed file refused with BN_ERR_FORMAT and its exact message: a
 * header length past the end or over the limit, a header that is not a JSON object,
 * nesting deeper than the format needs (a JSON bomb), duplicate names, an unknown
 * dtype, a dtype/shape that does not match the offsets, overlapping offsets, gaps,
 * offsets past the data (truncated), negative or overflowing dimensions. Then the
 * folder reader: a shard index naming a missing file, a tensor not in the file named
 * for it, a file name outside the folder. Every call must leave no block allocated.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"
#include "io/safetensors.h"

/* An image: the header text padded with spaces to a multiple of 8, then `data`. */
static unsigned char *image(const char *header, const void *data, size_t n_data,
                            size_t *size)
{
    size_t hl = strlen(header), padded = (hl + 7) / 8 * 8;
    unsigned char *p = malloc(8 + padded + n_data + 1);
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(p + 8, header, hl);
    memset(p + 8 + hl, ' ', padded - hl);
    if (n_data)
        memcpy(p + 8 + padded, data, n_data);
    *size = 8 + padded + n_data;
    return p;
}

/* Parses an image that must be refused with exactly `message`. */
static void refused(const char *what, const unsigned char *p, size_t size,
                    const char *message)
{
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    bn_safetensors *s = (bn_safetensors *)1;
    bn_status st = bn_st_open_memory(p, size, &s);
    CHECK(st == BN_ERR_FORMAT && s == NULL, "%s: status %s", what, bn_status_str(st));
    CHECK(strcmp(bn_last_error(), message) == 0, "%s: message '%s', expected '%s'", what,
          bn_last_error(), message);
    bn_mem_get_stats(&after);
    CHECK(after.live_blocks == before.live_blocks, "%s: %llu blocks left", what,
          (unsigned long long)(after.live_blocks - before.live_blocks));
}

static void refused_header(const char *what, const char *header, size_t n_data,
                           const char *message)
{
    unsigned char data[64] = {0};
    size_t size;
    unsigned char *p = image(header, data, n_data, &size);
    refused(what, p, size, message);
    free(p);
}

static void test_valid(void)
{
    /* a: bf16 [2, 2] = 1, -2, 0.5, 0; b: f16 [1] = 1; c: f32 [] = 3.5; d: u8 [2, 0] */
    unsigned char data[14] = {0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3f, 0x00, 0x00,
                              0x00, 0x3c, 0x00, 0x00, 0x60, 0x40};
    size_t size;
    unsigned char *p = image("{\"__metadata__\":{\"format\":\"pt\"},"
                             "\"b\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[8,10]},"
                             "\"a\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                             "\"d\":{\"dtype\":\"U8\",\"shape\":[2,0],\"data_offsets\":[10,10]},"
                             "\"c\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[10,14]}}",
                             data, sizeof data, &size);
    bn_safetensors *s = NULL;
    CHECK_OK(bn_st_open_memory(p, size, &s));
    if (!s) {
        free(p);
        return;
    }
    CHECK(bn_st_n_tensors(s) == 4, "%lld tensors", (long long)bn_st_n_tensors(s));
    CHECK(strcmp(bn_st_get(s, 0)->name, "a") == 0, "sorted by offset: %s",
          bn_st_get(s, 0)->name);
    const bn_st_tensor *a = bn_st_find(s, "a"), *b = bn_st_find(s, "b");
    const bn_st_tensor *c = bn_st_find(s, "c"), *d = bn_st_find(s, "d");
    CHECK(a && b && c && d && !bn_st_find(s, "__metadata__") && !bn_st_find(s, "e"),
          "lookups");
    if (a && b && c && d) {
        CHECK(a->dtype == BN_ST_BF16 && a->n_dims == 2 && a->shape[0] == 2 &&
              a->shape[1] == 2 && a->numel == 4 && a->begin == 0 && a->end == 8, "a");
        CHECK(c->n_dims == 0 && c->numel == 1 && d->numel == 0, "scalar and empty");
        float fa[4], fb[1], fc[1];
        CHECK_OK(bn_st_to_f32(a, fa));
        CHECK_OK(bn_st_to_f32(b, fb));
        CHECK_OK(bn_st_to_f32(c, fc));
        CHECK(fa[0] == 1.0f && fa[1] == -2.0f && fa[2] == 0.5f && fa[3] == 0.0f &&
              fb[0] == 1.0f && fc[0] == 3.5f, "values %g %g %g %g %g %g", fa[0], fa[1],
              fa[2], fa[3], fb[0], fc[0]);
        CHECK(bn_st_to_f32(d, fa) == BN_ERR_DTYPE &&
              strcmp(bn_last_error(), "tensor 'd': dtype U8 is not a float type") == 0,
              "u8 to f32: %s", bn_last_error());
    }
    CHECK(bn_st_metadata(s, "format") && strcmp(bn_st_metadata(s, "format"), "pt") == 0,
          "metadata");
    bn_st_close(s);
    free(p);
}

static void test_malformed(void)
{
    const char *e8 = "\"e\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
    char h[512];
    unsigned char small[4] = {1, 2, 3, 4};
    refused("too short", small, 4, "4 bytes: too short for a safetensors header length "
            "(8 bytes)");
    unsigned char len[16] = {0xf0, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    refused("header past the end", len, 10, "header length 240 runs past the end of the "
            "file (10 bytes)");
    unsigned char huge[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
    refused("header length 2^63", huge, 10, "header length 9223372036854775808 is larger "
            "than the 104857600 bytes allowed");
    refused_header("not an object", "[1, 2]", 0, "the header is not a JSON object");
    refused_header("not JSON", "{\"a\": ", 0, "the header is not valid JSON: unexpected token "
                   "near end of file (byte 8)");
    refused_header("JSON bomb", "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
                   0, "the header nests deeper than 4 levels");
    snprintf(h, sizeof h, "{%s,%s}", e8, e8);
    refused_header("duplicate", h, 8, "the header is not valid JSON: duplicate object key "
                   "near '\"e\"' (byte 57)");
    refused_header("unknown dtype",
                   "{\"e\":{\"dtype\":\"F12\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                   "tensor 'e': unknown dtype 'F12'");
    refused_header("dtype/shape mismatch",
                   "{\"e\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                   "tensor 'e': a BF16 tensor of 2 elements takes 4 bytes, its "
                   "data_offsets [0, 8] hold 8");
    refused_header("negative dimension",
                   "{\"e\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
                   "tensor 'e': dimension 0 is not a non-negative integer");
    refused_header("overflowing shape",
                   "{\"e\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                   "\"data_offsets\":[0,8]}}", 8,
                   "tensor 'e': the shape's element count overflows");
    refused_header("offsets reversed",
                   "{\"e\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
                   "tensor 'e': data_offsets must be two integers 0 <= begin <= end");
    refused_header("overlap",
                   "{\"e\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                   "tensor 'f' (data bytes 4..12) overlaps tensor 'e' (bytes 0..8)");
    refused_header("gap",
                   "{\"e\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                   "data bytes 0..4 belong to no tensor (a gap before tensor 'e')");
    refused_header("trailing bytes", "{\"e\":{\"dtype\":\"F32\",\"shape\":[1],"
                   "\"data_offsets\":[0,4]}}", 8,
                   "data bytes 4..8 after the last tensor belong to no tensor");
    refused_header("truncated", "{\"e\":{\"dtype\":\"F32\",\"shape\":[4],"
                   "\"data_offsets\":[0,16]}}", 8,
                   "truncated: tensor 'e' ends at data byte 16, the data section has 8 "
                   "bytes");
    refused_header("offset past 2^63", "{\"e\":{\"dtype\":\"U8\",\"shape\":[1],"
                   "\"data_offsets\":[0,18446744073709551615]}}", 8,
                   "the header is not valid JSON: too big integer near "
                   "'18446744073709551615' (byte 69)");
    refused_header("entry not an object", "{\"e\":[1]}", 0,
                   "tensor 'e': its entry is not an object");
    refused_header("extra member", "{\"e\":{\"dtype\":\"F32\",\"shape\":[2],"
                   "\"data_offsets\":[0,8],\"x\":1}}", 8,
                   "tensor 'e': 4 members (dtype, shape and data_offsets expected)");
    refused_header("metadata value", "{\"__metadata__\":{\"k\":1}}", 0,
                   "__metadata__ 'k' is not a string");
    refused_header("nine dimensions", "{\"e\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                   "\"data_offsets\":[0,1]}}", 1, "tensor 'e': 9 dimensions (at most 8)");
}

/* Writes a file of `n` bytes. */
static void save(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(p, 1, n, f) == n, "writing %s", path);
    if (f)
        fclose(f);
}

static void test_sharded(void)
{
    char dir[] = "/tmp/test_safetensors_XXXXXX", path[256];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    float one = 1.0f;
    size_t size;
    unsigned char *p = image("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                             &one, 4, &size);
    snprintf(path, sizeof path, "%s/s1.safetensors", dir);
    save(path, p, size);
    free(p);
    const char *cases[][2] = {
        {"{\"weight_map\":{\"a\":\"s1.safetensors\"}}", NULL},
        {"{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\"}}",
         "%s/model.safetensors.index.json: tensor 'b' is not in s1.safetensors"},
        {"{\"weight_map\":{\"a\":\"s2.safetensors\"}}",
         "opening %s/s2.safetensors: No such file or directory"},
        {"{\"weight_map\":{\"a\":\"/etc/passwd\"}}",
         "%s/model.safetensors.index.json: tensor 'a' maps to '/etc/passwd', not a file "
         "name in the folder"},
        {"{\"weights\":{}}", "%s/model.safetensors.index.json: no weight_map object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        save(path, cases[i][0], strlen(cases[i][0]));
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_st_model *m = NULL;
        bn_status st = bn_st_model_open(dir, &m);
        if (!cases[i][1]) {
            CHECK(st == BN_OK && m, "case %zu: %s", i, bn_last_error());
            const bn_st_tensor *t = m ? bn_st_model_find(m, "a") : NULL;
            float v = 0;
            CHECK(t && bn_st_to_f32(t, &v) == BN_OK && v == 1.0f, "case %zu: value", i);
        } else {
            char want[512];
            snprintf(want, sizeof want, cases[i][1], dir);
            const char *msg = bn_last_error();
            CHECK(st != BN_OK && !m && strcmp(msg, want) == 0, "case %zu: '%s', expected "
                  "'%s'", i, msg, want);
        }
        bn_st_model_close(m);
        bn_mem_get_stats(&after);
        CHECK(after.live_blocks == before.live_blocks, "case %zu: %llu blocks left", i,
              (unsigned long long)(after.live_blocks - before.live_blocks));
    }
    unlink(path);
    snprintf(path, sizeof path, "%s/s1.safetensors", dir);
    unlink(path);
    bn_st_model *m = NULL;
    CHECK(bn_st_model_open(dir, &m) == BN_ERR_IO, "an empty folder");
    rmdir(dir);
}

int main(void)
{
    test_valid();
    test_malformed();
    test_sharded();
    return check_summary("test_safetensors");
}
