/*
 * fuzz_gguf.c - a libFuzzer target for the GGUF reader.
 *
 * Each input is parsed with bn_gguf_open_memory from libFuzzer's buffer (exactly the
 * input's size, so ASan sees any read past it). When the parse succeeds, every key and
 * value is walked (arrays recursively through bn_gguf_array_get, every string byte
 * read), every tensor's first and last data byte read, and what the reader promises is
 * checked: unique keys and names found at their own index, strings NUL-terminated at
 * their length, tensors aligned, inside the image and of the size their type and shape
 * give. A failed parse must leave a message and no handle. Either way the live block
 * count must return to where it was. Any broken promise aborts, which libFuzzer
 * reports as a crash.
 *
 * Built with -DBN_FUZZ_SEED_WRITER instead (no -fsanitize=fuzzer), the file is a small
 * program writing the seed corpus: `fuzz_gguf_seeds DIR` writes a few valid GGUF files
 * (every value type, nested arrays, several tensor types, alignment 64, version 2).
 * scripts/fuzz.sh builds both and runs the fuzzer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned bn_fuzz_sink;

static void bn_fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz_gguf: %s\n", what);
    abort();
}

/* Reads every part of a value; arrays element by element. */
static void bn_fuzz_walk_value(const bn_gguf *g, const bn_gguf_value *v, int depth)
{
    if (depth > 64)
        bn_fuzz_fail("arrays nested deeper than any limit");
    if (v->type == BN_GGUF_STRING) {
        const char *s = v->v.str.ptr;
        if (!s || s[v->v.str.len] != '\0')
            bn_fuzz_fail("string not NUL-terminated at its length");
        for (uint64_t i = 0; i < v->v.str.len; i++)
            bn_fuzz_sink += (unsigned char)s[i];
    } else if (v->type == BN_GGUF_ARRAY) {
        for (uint64_t i = 0; i < v->v.arr.n; i++) {
            bn_gguf_value e = bn_gguf_array_get(g, v, i);
            if (e.type != v->v.arr.elem_type)
                bn_fuzz_fail("array element of another type than the array's");
            bn_fuzz_walk_value(g, &e, depth + 1);
        }
        if (bn_gguf_array_get(g, v, v->v.arr.n).type != BN_GGUF_TYPE_COUNT)
            bn_fuzz_fail("array element past the end returned");
    } else if (v->type == BN_GGUF_BOOL) {
        if (v->v.u64 > 1)
            bn_fuzz_fail("bool that is not 0 or 1");
    } else if ((unsigned)v->type < BN_GGUF_TYPE_COUNT) {
        bn_fuzz_sink += (unsigned)v->v.u64;
    } else {
        bn_fuzz_fail("value of an unknown type");
    }
}

/* Walks an opened file and checks the reader's promises. */
static void bn_fuzz_walk(const bn_gguf *g, const uint8_t *data, size_t size)
{
    size_t align = bn_gguf_alignment(g);
    if (align == 0 || (align & (align - 1)) != 0)
        bn_fuzz_fail("alignment not a power of two");
    if (bn_gguf_file_size(g) != size || bn_gguf_data_offset(g) > size)
        bn_fuzz_fail("file size or data offset wrong");
    for (int64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        const char *key = bn_gguf_kv_key(g, i);
        if (!key || !key[0] || bn_gguf_find_kv(g, key) != i)
            bn_fuzz_fail("key empty or not unique");
        bn_gguf_value v = bn_gguf_kv_value(g, i);
        bn_fuzz_walk_value(g, &v, 0);
        /* the typed lookups must answer, whatever the type */
        uint64_t u;
        double d;
        const char *s;
        bn_fuzz_sink += bn_gguf_get_u64(g, key, &u) + bn_gguf_get_f64(g, key, &d) +
                        bn_gguf_get_str(g, key, &s);
    }
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_get_tensor(g, i);
        if (!t || !t->name[0] || bn_gguf_find_tensor(g, t->name) != i)
            bn_fuzz_fail("tensor name empty or not unique");
        if (t->n_dims < 1 || t->n_dims > 4 || !bn_qtype_get(t->type))
            bn_fuzz_fail("tensor dims or type out of range");
        int64_t rows = 1;
        for (int d = 0; d < 4; d++) {
            if (t->ne[d] < 1 || (d >= t->n_dims && t->ne[d] != 1))
                bn_fuzz_fail("tensor dimension out of range");
            if (d > 0 && __builtin_mul_overflow(rows, t->ne[d], &rows))
                bn_fuzz_fail("tensor element count overflows");
        }
        size_t want = 0;
        if (bn_qtype_tensor_size(t->type, t->ne[0], rows, &want) != BN_OK ||
            want != t->nbytes || t->nbytes == 0)
            bn_fuzz_fail("tensor size differs from its type and shape");
        const uint8_t *p = t->data;
        if (t->offset % align != 0 || p < data + bn_gguf_data_offset(g) ||
            (size_t)(p - data) > size || t->nbytes > size - (size_t)(p - data))
            bn_fuzz_fail("tensor misaligned or outside the image");
        bn_fuzz_sink += p[0] + p[t->nbytes - 1];
    }
    if (bn_gguf_kv_key(g, bn_gguf_n_kv(g)) || bn_gguf_get_tensor(g, bn_gguf_n_tensors(g)))
        bn_fuzz_fail("accessor past the end answered");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    bn_error_clear();
    bn_gguf *g = NULL;
    bn_status st = bn_gguf_open_memory(data, size, &g);
    if (st == BN_OK) {
        if (!g)
            bn_fuzz_fail("success without a handle");
        bn_fuzz_walk(g, data, size);
        bn_gguf_close(g);
    } else if (g || bn_last_error()[0] == '\0' ||
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

#include <sys/stat.h>

/* Payload bytes for seed tensors (their values do not matter to the reader). */
static unsigned char bn_seed_payload[4096];

static int bn_seed_check(bn_status st, const char *what)
{
    if (st != BN_OK)
        fprintf(stderr, "fuzz_gguf_seeds: %s: %s\n", what, bn_last_error());
    return st != BN_OK;
}

/* Adds a tensor of `type` with one row of ne0 elements (n_rows rows). */
static int bn_seed_tensor(bn_gguf_writer *w, const char *name, bn_qtype type, int64_t ne0,
                          int64_t n_rows)
{
    size_t n = 0;
    if (bn_seed_check(bn_qtype_tensor_size(type, ne0, n_rows, &n), name))
        return 1;
    int n_dims = n_rows > 1 ? 2 : 1;
    return bn_seed_check(bn_gguf_writer_add_tensor(w, name, type, n_dims,
                                                   (int64_t[]){ne0, n_rows},
                                                   bn_seed_payload, n), name);
}

/* Every metadata type, arrays of every scalar type, a string array; tensors of the
 * common types. `alignment` 0 leaves general.alignment out. */
static int bn_seed_write_full(const char *path, uint32_t alignment, int n_tensors)
{
    bn_gguf_writer *w = NULL;
    int bad = bn_seed_check(bn_gguf_writer_create(&w), "create");
    if (bad)
        return 1;
    bad |= bn_seed_check(bn_gguf_writer_set_str(w, "general.architecture", "bitnet"), "s");
    if (alignment)
        bad |= bn_seed_check(bn_gguf_writer_set_u32(w, "general.alignment", alignment),
                             "alignment");
    bad |= bn_seed_check(bn_gguf_writer_set_u32(w, "bitnet.block_count", 2), "u32");
    bad |= bn_seed_check(bn_gguf_writer_set_i32(w, "t.i32", -7), "i32");
    bad |= bn_seed_check(bn_gguf_writer_set_u64(w, "t.u64", 1ull << 40), "u64");
    bad |= bn_seed_check(bn_gguf_writer_set_f32(w, "t.f32", 1e-5f), "f32");
    bad |= bn_seed_check(bn_gguf_writer_set_bool(w, "t.bool", true), "bool");
    static const unsigned char raw[16] = {1, 0, 1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static const char *const arrays[] = {"a.u8", "a.i8", "a.u16", "a.i16", "a.u32",
                                         "a.i32", "a.f32", "a.bool", "", "", "a.u64",
                                         "a.i64", "a.f64"};
    for (int type = 0; type < BN_GGUF_TYPE_COUNT; type++) {
        if (type == BN_GGUF_STRING || type == BN_GGUF_ARRAY)
            continue;
        uint64_t n = type == BN_GGUF_BOOL ? 4 : 2;
        bad |= bn_seed_check(bn_gguf_writer_set_array(w, arrays[type], (bn_gguf_type)type,
                                                      raw, n), arrays[type]);
    }
    const char *tokens[] = {"<s>", "</s>", "", "\xe2\x96\x81the", "a b"};
    bad |= bn_seed_check(bn_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", tokens,
                                                      5), "tokens");
    static const struct { const char *name; bn_qtype type; int64_t ne0, rows; } tensors[] = {
        {"f32", BN_QT_F32, 4, 2},     {"f16", BN_QT_F16, 8, 1},
        {"q8_0", BN_QT_Q8_0, 32, 2},  {"q4_0", BN_QT_Q4_0, 32, 1},
        {"tq2_0", BN_QT_TQ2_0, 256, 1}, {"tq1_0", BN_QT_TQ1_0, 256, 1},
        {"i2_s", BN_QT_I2_S, 128, 1}, {"q6_k", BN_QT_Q6_K, 256, 1},
        {"bf16", BN_QT_BF16, 4, 1},   {"i32", BN_QT_I32, 3, 1},
    };
    for (int i = 0; i < n_tensors && i < (int)(sizeof tensors / sizeof tensors[0]); i++)
        bad |= bn_seed_tensor(w, tensors[i].name, tensors[i].type, tensors[i].ne0,
                              tensors[i].rows);
    if (!bad)
        bad |= bn_seed_check(bn_gguf_writer_write(w, path, NULL, NULL), path);
    bn_gguf_writer_free(w);
    return bad;
}

/* Raw little-endian bytes for the hand-made seeds. */
typedef struct bn_seed_buf {
    unsigned char p[1024];
    size_t        len;
} bn_seed_buf;

static void bn_seed_put(bn_seed_buf *b, const void *v, size_t n)
{
    memcpy(b->p + b->len, v, n);
    b->len += n;
}

static void bn_seed_u32(bn_seed_buf *b, uint32_t v) { bn_seed_put(b, &v, 4); }
static void bn_seed_u64(bn_seed_buf *b, uint64_t v) { bn_seed_put(b, &v, 8); }

static void bn_seed_str(bn_seed_buf *b, const char *s)
{
    bn_seed_u64(b, strlen(s));
    bn_seed_put(b, s, strlen(s));
}

static int bn_seed_save(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    int bad = !f || fwrite(p, 1, n, f) != n;
    if (f && fclose(f) != 0)
        bad = 1;
    if (bad)
        fprintf(stderr, "fuzz_gguf_seeds: cannot write %s\n", path);
    return bad;
}

/* Version 2, nested arrays three deep (one of strings) and eight deep (the reader's
 * limit), one tensor ending at EOF. */
static int bn_seed_write_nested(const char *path)
{
    bn_seed_buf b = {.len = 0};
    bn_seed_put(&b, "GGUF", 4);
    bn_seed_u32(&b, 2);
    bn_seed_u64(&b, 1);
    bn_seed_u64(&b, 3);
    bn_seed_str(&b, "nested");
    bn_seed_u32(&b, BN_GGUF_ARRAY);
    bn_seed_u32(&b, BN_GGUF_ARRAY);   /* [[[1, 2]], [["x"]]] */
    bn_seed_u64(&b, 2);
    bn_seed_u32(&b, BN_GGUF_ARRAY);
    bn_seed_u64(&b, 1);
    bn_seed_u32(&b, BN_GGUF_UINT16);
    bn_seed_u64(&b, 2);
    bn_seed_u32(&b, 0x00020001);
    bn_seed_u32(&b, BN_GGUF_ARRAY);
    bn_seed_u64(&b, 1);
    bn_seed_u32(&b, BN_GGUF_STRING);
    bn_seed_u64(&b, 1);
    bn_seed_str(&b, "x");
    bn_seed_str(&b, "deep");
    bn_seed_u32(&b, BN_GGUF_ARRAY);
    for (int level = 1; level < 8; level++) {
        bn_seed_u32(&b, BN_GGUF_ARRAY);
        bn_seed_u64(&b, 1);
    }
    bn_seed_u32(&b, BN_GGUF_INT8);
    bn_seed_u64(&b, 1);
    bn_seed_put(&b, "\x7f", 1);
    bn_seed_str(&b, "t.f64");
    bn_seed_u32(&b, BN_GGUF_FLOAT64);
    double d = 0.5;
    bn_seed_put(&b, &d, 8);
    bn_seed_str(&b, "w");
    bn_seed_u32(&b, 1);
    bn_seed_u64(&b, 3);
    bn_seed_u32(&b, BN_QT_F32);
    bn_seed_u64(&b, 0);
    while (b.len % 32)
        b.p[b.len++] = 0;
    bn_seed_put(&b, bn_seed_payload, 12);
    return bn_seed_save(path, b.p, b.len);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gguf_seeds DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof bn_seed_payload; i++)
        bn_seed_payload[i] = (unsigned char)(i * 37 + 11);
    char path[4096];
    int bad = 0;
    snprintf(path, sizeof path, "%s/empty.gguf", argv[1]);
    bad |= bn_seed_write_full(path, 0, 0);
    snprintf(path, sizeof path, "%s/full.gguf", argv[1]);
    bad |= bn_seed_write_full(path, 0, 10);
    snprintf(path, sizeof path, "%s/align64.gguf", argv[1]);
    bad |= bn_seed_write_full(path, 64, 3);
    snprintf(path, sizeof path, "%s/one_tensor.gguf", argv[1]);
    bad |= bn_seed_write_full(path, 0, 1);
    snprintf(path, sizeof path, "%s/nested_v2.gguf", argv[1]);
    bad |= bn_seed_write_nested(path);
    /* every seed must itself be valid */
    const char *names[] = {"empty", "full", "align64", "one_tensor", "nested_v2"};
    for (int i = 0; i < 5 && !bad; i++) {
        snprintf(path, sizeof path, "%s/%s.gguf", argv[1], names[i]);
        bn_gguf *g = NULL;
        bad |= bn_seed_check(bn_gguf_open(path, &g), path);
        bn_gguf_close(g);
    }
    return bad;
}
#endif
