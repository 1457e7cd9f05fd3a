/*
 * test_gguf_bad.c - the GGUF reader against malformed files. Each image is built in
 * memory byte by byte (a small builder below: magic, integers, strings, key-value
 * pairs, tensor records, padding, data), copied into a buffer of exactly its size (so
 * ASan and valgrind see any read past the end) and opened. A bad image must give the
 * right status, a message that names what is wrong, no handle and no leaked block:
 * every strict prefix of a valid file, bad magic and versions, impossible counts and
 * lengths, bad keys and value types, array limits, bad tensor shapes, types, offsets
 * and extents, bad general.alignment. Valid edge cases (empty file body, alignment 64,
 * a tensor ending at EOF, nesting at the limit) must open. A few go through real
 * files: empty, a directory, a missing path, /dev/null.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"
#include "io/gguf_internal.h"

#define P63 ((uint64_t)1 << 63)

/* ------------------------------------------------------------------ builder */

/* A growing byte buffer holding one GGUF image. */
typedef struct image {
    unsigned char *p;
    size_t         len, cap;
} image;

static void put(image *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *grown = realloc(b->p, cap);
        if (!grown) {
            fprintf(stderr, "test_gguf_bad: out of memory\n");
            exit(1);
        }
        b->p = grown;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_u8(image *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(image *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(image *b, uint64_t v) { put(b, &v, 8); }

static void put_zeros(image *b, size_t n)
{
    static const unsigned char zeros[64];
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        put(b, zeros, k);
        n -= k;
    }
}

/* Zeros up to the next multiple of `align`. */
static void put_pad(image *b, size_t align)
{
    put_zeros(b, (align - b->len % align) % align);
}

/* A GGUF string: u64 length, then the bytes. */
static void put_str(image *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void put_header(image *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}

/* A key and its value type; the caller puts the value. */
static void put_key(image *b, const char *key, uint32_t type)
{
    put_str(b, key);
    put_u32(b, type);
}

static void put_kv_u32(image *b, const char *key, uint32_t v)
{
    put_key(b, key, BN_GGUF_UINT32);
    put_u32(b, v);
}

static void put_kv_str(image *b, const char *key, const char *v)
{
    put_key(b, key, BN_GGUF_STRING);
    put_str(b, v);
}

/* A tensor record with n_dims dimensions ne[0..n_dims-1]. */
static void put_tensor(image *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                       uint32_t type, uint64_t offset)
{
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        put_u64(b, ne[d]);
    put_u32(b, type);
    put_u64(b, offset);
}

/* A one-dimensional tensor record. */
static void put_tensor_1d(image *b, const char *name, uint64_t ne0, uint32_t type,
                          uint64_t offset)
{
    put_tensor(b, name, 1, &ne0, type, offset);
}

/* n bytes of recognisable data (i * 7 + 3). */
static void put_data(image *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_u8(b, (uint8_t)(i * 7 + 3));
}

static void image_reset(image *b)
{
    b->len = 0;
}

/* ------------------------------------------------------------------ expectations */

/* Opens the first `len` bytes of b from a buffer of exactly that size. */
static bn_status open_prefix(const image *b, size_t len, bn_gguf **g, unsigned char **copy)
{
    *copy = malloc(len ? len : 1);
    if (len)
        memcpy(*copy, b->p, len);
    return bn_gguf_open_memory(*copy, len, g);
}

/* The image must fail with `want`, a message containing `word`, no handle, no leak. */
static void expect_bad_prefix(const char *what, const image *b, size_t len, bn_status want,
                              const char *word)
{
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    bn_error_clear();
    bn_gguf *g = NULL;
    unsigned char *copy = NULL;
    bn_status st = open_prefix(b, len, &g, &copy);
    bn_mem_get_stats(&after);
    const char *msg = bn_last_error();
    CHECK(st == want, "%s: got %s, expected %s (%s)", what, bn_status_str(st),
          bn_status_str(want), msg);
    CHECK(g == NULL, "%s: the output handle was set on failure", what);
    CHECK(msg[0] != '\0' && strstr(msg, word), "%s: message '%s' lacks '%s'", what, msg,
          word);
    CHECK(after.live_blocks == before.live_blocks, "%s: %lld blocks leaked", what,
          (long long)(after.live_blocks - before.live_blocks));
    bn_gguf_close(st == BN_OK ? g : NULL);
    free(copy);
}

static void expect_bad(const char *what, const image *b, const char *word)
{
    expect_bad_prefix(what, b, b->len, BN_ERR_FORMAT, word);
}

/* The image must open; returns the handle (its bytes in *copy, freed by close_ok). */
static bn_gguf *expect_ok(const char *what, const image *b, unsigned char **copy)
{
    bn_gguf *g = NULL;
    bn_status st = open_prefix(b, b->len, &g, copy);
    CHECK(st == BN_OK && g, "%s: %s: %s", what, bn_status_str(st), bn_last_error());
    return st == BN_OK ? g : NULL;
}

static void close_ok(bn_gguf *g, unsigned char *copy)
{
    bn_gguf_close(g);
    free(copy);
}

/* ------------------------------------------------------------------ truncation */

/* A small valid file with one tensor and keys of every shape (scalar, string, string
 * array, nested array, bool array), so that every strict prefix is invalid: the one
 * tensor's data is the file's last bytes. */
static void build_small_valid(image *b)
{
    image_reset(b);
    put_header(b, 3, 1, 6);
    put_kv_str(b, "general.architecture", "bitnet");
    put_kv_u32(b, "general.alignment", 32);
    put_key(b, "tok", BN_GGUF_ARRAY);
    put_u32(b, BN_GGUF_STRING);
    put_u64(b, 3);
    put_str(b, "a");
    put_str(b, "");
    put_str(b, "xyz");
    put_key(b, "nest", BN_GGUF_ARRAY);       /* [[1, 2], []] of int16 */
    put_u32(b, BN_GGUF_ARRAY);
    put_u64(b, 2);
    put_u32(b, BN_GGUF_INT16);
    put_u64(b, 2);
    put_u32(b, 0x00020001);
    put_u32(b, BN_GGUF_INT16);
    put_u64(b, 0);
    put_key(b, "flags", BN_GGUF_ARRAY);
    put_u32(b, BN_GGUF_BOOL);
    put_u64(b, 3);
    put(b, "\1\0\1", 3);
    put_key(b, "eps", BN_GGUF_FLOAT64);
    double eps = 1e-6;
    put(b, &eps, 8);
    put_tensor(b, "w", 2, (const uint64_t[]){32, 2}, BN_QT_Q8_0, 0);
    put_pad(b, 32);
    put_data(b, 2 * 34);
}

static void test_every_prefix(void)
{
    image b = {0};
    build_small_valid(&b);
    unsigned char *copy;
    bn_gguf *g = expect_ok("small valid file", &b, &copy);
    if (g) {
        const bn_gguf_tensor *t = bn_gguf_get_tensor(g, 0);
        CHECK(bn_gguf_n_kv(g) == 6 && bn_gguf_n_tensors(g) == 1 && t && t->nbytes == 68 &&
              (const unsigned char *)t->data + t->nbytes == copy + b.len,
              "small valid file read back");
        bn_gguf_value nest = bn_gguf_kv_value(g, bn_gguf_find_kv(g, "nest"));
        bn_gguf_value inner = bn_gguf_array_get(g, &nest, 0);
        CHECK(inner.type == BN_GGUF_ARRAY && inner.v.arr.n == 2 &&
              bn_gguf_array_get(g, &inner, 1).v.i64 == 2, "nested array element");
    }
    close_ok(g, copy);
    int bad_word = 0, bad_other = 0;
    for (size_t len = 0; len < b.len; len++) {
        char what[64];
        snprintf(what, sizeof what, "prefix of %zu of %zu bytes", len, b.len);
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_error_clear();
        g = NULL;
        bn_status st = open_prefix(&b, len, &g, &copy);
        bn_mem_get_stats(&after);
        const char *msg = bn_last_error();
        /* the message says the file is too short, in one of these ways */
        bool says_end = strstr(msg, "end") || strstr(msg, "short") || strstr(msg, "fit");
        if (st != BN_ERR_FORMAT || g || after.live_blocks != before.live_blocks)
            bad_other++;
        if (!says_end)
            bad_word++;
        CHECK(st == BN_ERR_FORMAT && g == NULL && after.live_blocks == before.live_blocks,
              "%s: %s (%s)", what, bn_status_str(st), msg);
        CHECK(says_end, "%s: message '%s' does not say the file ends early", what, msg);
        bn_gguf_close(st == BN_OK ? g : NULL);
        free(copy);
    }
    CHECK(bad_other == 0 && bad_word == 0, "%d prefixes misjudged, %d badly explained",
          bad_other, bad_word);
    free(b.p);
}

/* Every single byte of the small file set to 0xff in turn: the reader either accepts
 * the result or rejects it as malformed, never crashes or leaks. */
static void test_every_byte_corrupted(void)
{
    image b = {0};
    build_small_valid(&b);
    int accepted = 0, wrong = 0;
    for (size_t i = 0; i < b.len; i++) {
        unsigned char saved = b.p[i];
        b.p[i] = 0xff;
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_gguf *g = NULL;
        unsigned char *copy;
        bn_status st = open_prefix(&b, b.len, &g, &copy);
        if (st == BN_OK)
            accepted++;
        else if (st != BN_ERR_FORMAT || g != NULL || bn_last_error()[0] == '\0')
            wrong++;
        bn_gguf_close(st == BN_OK ? g : NULL);
        free(copy);
        bn_mem_get_stats(&after);
        if (after.live_blocks != before.live_blocks)
            wrong++;
        b.p[i] = saved;
    }
    CHECK(wrong == 0, "%d corrupted images gave a wrong status or leaked", wrong);
    /* data bytes and some key bytes may change freely */
    CHECK(accepted >= 68 && accepted < (int)b.len, "%d of %zu corruptions accepted",
          accepted, b.len);
    free(b.p);
}

/* ------------------------------------------------------------------ header */

static void test_header(void)
{
    image b = {0};
    put(&b, "GGUX", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, 0);
    expect_bad("bad magic", &b, "magic");

    image_reset(&b);
    put_header(&b, 1, 0, 0);
    expect_bad("version 1", &b, "version 1");
    image_reset(&b);
    put_header(&b, 4, 0, 0);
    expect_bad("version 4", &b, "version 4");

    image_reset(&b);
    put_header(&b, 3, P63, 0);
    put_zeros(&b, 64);
    expect_bad("tensor count 2^63", &b, "tensor count 9223372036854775808");
    image_reset(&b);
    put_header(&b, 3, UINT64_MAX, 0);
    put_zeros(&b, 64);
    expect_bad("tensor count 2^64-1", &b, "tensor count 18446744073709551615");
    image_reset(&b);
    put_header(&b, 3, 0, P63);
    put_zeros(&b, 64);
    expect_bad("kv count 2^63", &b, "metadata count 9223372036854775808");
    free(b.p);
}

/* ------------------------------------------------------------------ metadata */

static void test_strings_and_keys(void)
{
    image b = {0};
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", BN_GGUF_STRING);
    put_u64(&b, P63);
    put(&b, "hello", 5);
    expect_bad("string length 2^63", &b, "length 9223372036854775808");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", BN_GGUF_STRING);
    put_u64(&b, 6);                         /* one more than the bytes that follow */
    put(&b, "hello", 5);
    expect_bad("string one byte past the end", &b, "length 6, past the end");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_u64(&b, P63);                       /* key length */
    put(&b, "key", 3);
    put_u32(&b, BN_GGUF_UINT8);
    put_u8(&b, 0);
    expect_bad("key length 2^63", &b, "metadata key");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_kv_u32(&b, "", 1);
    expect_bad("key length 0", &b, "is empty");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_u64(&b, 5);
    put(&b, "ab\0cd", 5);
    put_u32(&b, BN_GGUF_UINT32);
    put_u32(&b, 1);
    expect_bad("key with a NUL", &b, "NUL");

    image_reset(&b);
    put_header(&b, 3, 0, 2);
    put_kv_u32(&b, "a.b", 1);
    put_kv_u32(&b, "a.b", 2);
    expect_bad("duplicate key", &b, "duplicate metadata key 'a.b'");
    CHECK(strstr(bn_last_error(), "a.b"), "duplicate key named: %s", bn_last_error());
    free(b.p);
}

static void test_value_types(void)
{
    image b = {0};
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", 13);
    put_u64(&b, 0);
    expect_bad("value type 13", &b, "unknown value type 13");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", 0xffffffffu);
    put_u64(&b, 0);
    expect_bad("value type 0xffffffff", &b, "unknown value type 4294967295");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", BN_GGUF_BOOL);
    put_u8(&b, 2);
    expect_bad("bool value 2", &b, "is 2, not 0 or 1");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", BN_GGUF_ARRAY);
    put_u32(&b, BN_GGUF_BOOL);
    put_u64(&b, 3);
    put(&b, "\0\1\7", 3);
    expect_bad("bool array element 7", &b, "element 2");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", BN_GGUF_UINT64);
    put_u32(&b, 0);                         /* half a uint64 */
    expect_bad("truncated uint64", &b, "uint64");
    free(b.p);
}

/* An array value nested `levels` deep: [[[...[7]...]]] with uint8 innermost. */
static void build_nested(image *b, int levels)
{
    image_reset(b);
    put_header(b, 3, 0, 1);
    put_key(b, "deep", BN_GGUF_ARRAY);
    for (int level = 1; level < levels; level++) {
        put_u32(b, BN_GGUF_ARRAY);
        put_u64(b, 1);
    }
    put_u32(b, BN_GGUF_UINT8);
    put_u64(b, 1);
    put_u8(b, 7);
}

static void test_arrays(void)
{
    image b = {0};
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", BN_GGUF_ARRAY);
    put_u32(&b, BN_GGUF_UINT8);
    put_u64(&b, (uint64_t)1 << 62);
    put_zeros(&b, 64);
    expect_bad("array of 2^62 elements", &b, "array of 4611686018427387904");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", BN_GGUF_ARRAY);
    put_u32(&b, BN_GGUF_STRING);
    put_u64(&b, (uint64_t)1 << 62);
    put_zeros(&b, 64);
    expect_bad("array of 2^62 strings", &b, "4611686018427387904 string");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", BN_GGUF_ARRAY);
    put_u32(&b, 13);
    put_u64(&b, 1);
    put_zeros(&b, 8);
    expect_bad("array of element type 13", &b, "element type 13");

    build_nested(&b, BN_GGUF_MAX_NESTING + 1);
    expect_bad("arrays nested past the limit", &b, "nested");

    build_nested(&b, BN_GGUF_MAX_NESTING);
    unsigned char *copy;
    bn_gguf *g = expect_ok("arrays nested exactly to the limit", &b, &copy);
    if (g) {
        bn_gguf_value v = bn_gguf_kv_value(g, 0);
        for (int level = 1; level < BN_GGUF_MAX_NESTING && v.type == BN_GGUF_ARRAY; level++)
            v = bn_gguf_array_get(g, &v, 0);
        bn_gguf_value leaf = bn_gguf_array_get(g, &v, 0);
        CHECK(v.type == BN_GGUF_ARRAY && v.v.arr.elem_type == BN_GGUF_UINT8 &&
              leaf.type == BN_GGUF_UINT8 && leaf.v.u64 == 7, "innermost element read back");
    }
    close_ok(g, copy);
    free(b.p);
}

/* ------------------------------------------------------------------ alignment */

/* A file with general.alignment of the given type and value and no tensors. */
static void test_alignment_values(void)
{
    image b = {0};
    put_header(&b, 3, 0, 1);
    put_kv_u32(&b, "general.alignment", 0);
    expect_bad("alignment 0", &b, "0 is not a power of two");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_kv_u32(&b, "general.alignment", 3);
    expect_bad("alignment 3", &b, "3 is not a power of two");

    image_reset(&b);
    put_header(&b, 3, 0, 1);
    put_kv_str(&b, "general.alignment", "32");
    expect_bad("alignment as a string", &b, "string");
    free(b.p);
}

/* ------------------------------------------------------------------ tensors */

/* One tensor record (given by the caller through `tensor`) and `data` bytes after the
 * header padded to 32. */
static void build_one_tensor(image *b, const char *name, uint32_t n_dims,
                             const uint64_t *ne, uint32_t type, uint64_t offset, size_t data)
{
    image_reset(b);
    put_header(b, 3, 1, 0);
    put_tensor(b, name, n_dims, ne, type, offset);
    put_pad(b, 32);
    put_data(b, data);
}

static void test_tensor_records(void)
{
    image b = {0};
    const uint64_t five[5] = {1, 1, 1, 1, 1};
    build_one_tensor(&b, "t", 0, five, BN_QT_F32, 0, 32);
    expect_bad("n_dims 0", &b, "0 dimensions");
    build_one_tensor(&b, "t", 5, five, BN_QT_F32, 0, 32);
    expect_bad("n_dims 5", &b, "5 dimensions");
    build_one_tensor(&b, "t", 2, (const uint64_t[]){4, 0}, BN_QT_F32, 0, 32);
    expect_bad("a dimension 0", &b, "dimension 1 is 0");
    build_one_tensor(&b, "t", 1, (const uint64_t[]){P63}, BN_QT_F32, 0, 32);
    expect_bad("a dimension 2^63", &b, "dimension 0 is 9223372036854775808");
    build_one_tensor(&b, "t", 3, (const uint64_t[]){32, 1ull << 32, 1ull << 32}, BN_QT_F32,
                     0, 32);
    expect_bad("rows overflow int64", &b, "overflow");
    build_one_tensor(&b, "t", 2, (const uint64_t[]){1ull << 62, 4}, BN_QT_F32, 0, 32);
    expect_bad("elements overflow int64", &b, "overflow");
    build_one_tensor(&b, "t", 1, (const uint64_t[]){(uint64_t)INT64_MAX}, BN_QT_I8, 0, 32);
    expect_bad("a tensor of 2^63-1 bytes", &b, "past the end");
    build_one_tensor(&b, "t", 1, (const uint64_t[]){8}, 33, 0, 32);
    expect_bad("tensor type 33", &b, "unknown tensor type 33");
    build_one_tensor(&b, "t", 1, (const uint64_t[]){8}, 1000, 0, 32);
    expect_bad("tensor type 1000", &b, "unknown tensor type 1000");
    build_one_tensor(&b, "t", 1, (const uint64_t[]){8}, 0x80000000u, 0, 32);
    expect_bad("tensor type 2^31", &b, "unknown tensor type 2147483648");
    build_one_tensor(&b, "t", 2, (const uint64_t[]){33, 2}, BN_QT_Q8_0, 0, 128);
    expect_bad("q8_0 row of 33", &b, "row length 33 is not a multiple of the block size 32");
    build_one_tensor(&b, "t", 1, (const uint64_t[]){4}, BN_QT_F32, 8, 64);
    expect_bad("misaligned offset", &b, "offset 8 is not a multiple of the alignment 32");
    build_one_tensor(&b, "", 1, (const uint64_t[]){4}, BN_QT_F32, 0, 16);
    expect_bad("empty tensor name", &b, "name is empty");

    /* 4 floats need 16 bytes; 15 are there */
    build_one_tensor(&b, "t", 1, (const uint64_t[]){4}, BN_QT_F32, 0, 15);
    expect_bad("data one byte short", &b, "runs past the end");
    /* an offset far past the end */
    build_one_tensor(&b, "t", 1, (const uint64_t[]){4}, BN_QT_F32, 1ull << 40, 16);
    expect_bad("offset past the end", &b, "1099511627776");

    /* no data section at all: the file ends with the (unaligned) tensor records */
    image_reset(&b);
    put_header(&b, 3, 1, 0);
    put_tensor_1d(&b, "t", 4, BN_QT_F32, 0);
    CHECK(b.len % 32 != 0, "records end unaligned (%zu)", b.len);
    expect_bad("data section absent", &b, "data section");
    /* the same with the records ending exactly on the alignment */
    image_reset(&b);
    put_header(&b, 3, 1, 0);
    put_tensor_1d(&b, "01234567", 4, BN_QT_F32, 0);
    CHECK(b.len % 32 == 0, "records end aligned (%zu)", b.len);
    expect_bad("data section empty", &b, "runs past the end");
    free(b.p);
}

static void test_tensor_pairs(void)
{
    image b = {0};
    put_header(&b, 3, 2, 0);
    put_tensor_1d(&b, "a", 8, BN_QT_F32, 0);
    put_tensor_1d(&b, "a", 8, BN_QT_F32, 32);
    put_pad(&b, 32);
    put_data(&b, 64);
    expect_bad("duplicate tensor name", &b, "duplicate tensor name 'a'");

    /* a: bytes [0, 64); b: [32, 64): overlap */
    image_reset(&b);
    put_header(&b, 3, 2, 0);
    put_tensor_1d(&b, "a", 16, BN_QT_F32, 0);
    put_tensor_1d(&b, "b", 8, BN_QT_F32, 32);
    put_pad(&b, 32);
    put_data(&b, 64);
    expect_bad("overlapping tensors", &b, "overlap");

    /* the same two in the other order, and two at the same offset */
    image_reset(&b);
    put_header(&b, 3, 2, 0);
    put_tensor_1d(&b, "b", 8, BN_QT_F32, 32);
    put_tensor_1d(&b, "a", 16, BN_QT_F32, 0);
    put_pad(&b, 32);
    put_data(&b, 64);
    expect_bad("overlapping tensors, reversed", &b, "overlap");
    image_reset(&b);
    put_header(&b, 3, 2, 0);
    put_tensor_1d(&b, "a", 1, BN_QT_F32, 32);
    put_tensor_1d(&b, "b", 1, BN_QT_F32, 32);
    put_pad(&b, 32);
    put_data(&b, 64);
    expect_bad("tensors at the same offset", &b, "overlap");
    free(b.p);
}

/* Many names: duplicates are found by sorting, not by comparing every pair (which took
 * tens of seconds for a file of a few MB). n distinct keys and n distinct tensors open
 * quickly; the same with the last key repeating the first fails and names it. */
static void test_many_names(void)
{
    enum { n = 50000 };
    image b = {0};
    char name[32];
    for (int dup = 0; dup < 2; dup++) {
        image_reset(&b);
        put_header(&b, 3, n, n);
        for (int i = 0; i < n; i++) {
            snprintf(name, sizeof name, "key.%07d", dup && i == n - 1 ? 0 : i);
            put_key(&b, name, BN_GGUF_UINT8);
            put_u8(&b, (uint8_t)i);
        }
        for (int i = 0; i < n; i++) {
            snprintf(name, sizeof name, "t.%07d", i);
            put_tensor_1d(&b, name, 1, BN_QT_I8, (uint64_t)i * 32);
        }
        put_pad(&b, 32);
        put_zeros(&b, (size_t)n * 32);
        clock_t t0 = clock();
        if (dup) {
            expect_bad("a repeated key among many", &b, "duplicate metadata key 'key.0000000'");
        } else {
            unsigned char *copy;
            bn_gguf *g = expect_ok("many distinct keys and tensors", &b, &copy);
            CHECK(g && bn_gguf_n_kv(g) == n && bn_gguf_n_tensors(g) == n &&
                  bn_gguf_find_tensor(g, "t.0049999") == n - 1, "all names read");
            close_ok(g, copy);
        }
        double seconds = (double)(clock() - t0) / CLOCKS_PER_SEC;
        CHECK(seconds < 5.0, "%d keys and tensors took %.1f s to check", n, seconds);
    }
    free(b.p);
}

/* ------------------------------------------------------------------ valid edges */

static void test_valid_edges(void)
{
    image b = {0};
    unsigned char *copy;
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);

    /* header only: no tensors, no keys */
    put_header(&b, 2, 0, 0);
    bn_gguf *g = expect_ok("no tensors, no keys (v2)", &b, &copy);
    if (g)
        CHECK(bn_gguf_version(g) == 2 && bn_gguf_n_kv(g) == 0 && bn_gguf_n_tensors(g) == 0 &&
              bn_gguf_alignment(g) == BN_GGUF_DEFAULT_ALIGNMENT &&
              bn_gguf_data_offset(g) <= b.len && bn_gguf_file_size(g) == b.len,
              "empty file facts");
    close_ok(g, copy);

    /* alignment 64: data section and both tensors on multiples of 64 */
    image_reset(&b);
    put_header(&b, 3, 2, 1);
    put_kv_u32(&b, "general.alignment", 64);
    put_tensor_1d(&b, "x", 4, BN_QT_F32, 0);
    put_tensor_1d(&b, "y", 64, BN_QT_I8, 64);
    put_pad(&b, 64);
    size_t data_at = b.len;
    put_data(&b, 128);
    g = expect_ok("alignment 64", &b, &copy);
    if (g) {
        const bn_gguf_tensor *y = bn_gguf_get_tensor(g, 1);
        CHECK(bn_gguf_alignment(g) == 64 && bn_gguf_data_offset(g) == data_at &&
              data_at % 64 == 0, "alignment 64 honoured (data at %zu)",
              bn_gguf_data_offset(g));
        CHECK(y && y->data == copy + data_at + 64 && y->nbytes == 64 &&
              memcmp(y->data, b.p + data_at + 64, 64) == 0, "second tensor at 64");
    }
    close_ok(g, copy);
    /* with alignment 64 an offset of 32 is misaligned */
    image_reset(&b);
    put_header(&b, 3, 1, 1);
    put_kv_u32(&b, "general.alignment", 64);
    put_tensor_1d(&b, "x", 4, BN_QT_F32, 32);
    put_pad(&b, 64);
    put_data(&b, 64);
    expect_bad("offset 32 under alignment 64", &b, "alignment 64");

    /* the last tensor ends exactly at EOF: no trailing padding */
    image_reset(&b);
    put_header(&b, 3, 2, 0);
    put_tensor_1d(&b, "a", 8, BN_QT_F32, 0);
    put_tensor_1d(&b, "b", 3, BN_QT_F32, 32);
    put_pad(&b, 32);
    put_data(&b, 32 + 12);
    g = expect_ok("last tensor ends at EOF", &b, &copy);
    if (g) {
        const bn_gguf_tensor *t = bn_gguf_get_tensor(g, 1);
        CHECK(t && (const unsigned char *)t->data + t->nbytes == copy + b.len &&
              t->nbytes == 12, "tensor b ends at the last byte");
    }
    close_ok(g, copy);

    bn_mem_get_stats(&after);
    CHECK(after.live_blocks == before.live_blocks, "valid opens leaked %lld blocks",
          (long long)(after.live_blocks - before.live_blocks));
    free(b.p);
}

/* ------------------------------------------------------------------ real files */

static void expect_bad_file(const char *what, const char *path, bn_status want,
                            const char *word)
{
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    bn_error_clear();
    bn_gguf *g = NULL;
    bn_status st = bn_gguf_open(path, &g);
    bn_mem_get_stats(&after);
    const char *msg = bn_last_error();
    CHECK(st == want && g == NULL, "%s: got %s, expected %s (%s)", what, bn_status_str(st),
          bn_status_str(want), msg);
    CHECK(strstr(msg, word) && strstr(msg, path), "%s: message '%s' lacks '%s' or the path",
          what, msg, word);
    CHECK(after.live_blocks == before.live_blocks, "%s: leaked", what);
    bn_gguf_close(st == BN_OK ? g : NULL);
}

static bool write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void test_files(void)
{
    char dir[] = "/tmp/bitnet-test-gguf-bad-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp failed");
        return;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/empty.gguf", dir);
    CHECK(write_file(path, "", 0), "write %s", path);
    expect_bad_file("empty file", path, BN_ERR_FORMAT, "empty");

    image b = {0};
    build_small_valid(&b);
    snprintf(path, sizeof path, "%s/short.gguf", dir);
    CHECK(write_file(path, b.p, b.len - 1), "write %s", path);
    expect_bad_file("file one byte short", path, BN_ERR_FORMAT, "past the end");
    snprintf(path, sizeof path, "%s/magic.gguf", dir);
    b.p[3] = 'X';
    CHECK(write_file(path, b.p, b.len), "write %s", path);
    expect_bad_file("file with bad magic", path, BN_ERR_FORMAT, "magic");
    b.p[3] = 'F';
    snprintf(path, sizeof path, "%s/good.gguf", dir);
    CHECK(write_file(path, b.p, b.len), "write %s", path);
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_open(path, &g));
    CHECK(g && bn_gguf_n_tensors(g) == 1 && bn_gguf_file_size(g) == b.len, "good file");
    bn_gguf_close(g);

    expect_bad_file("a directory", dir, BN_ERR_IO, "directory");
    snprintf(path, sizeof path, "%s/missing.gguf", dir);
    expect_bad_file("a missing file", path, BN_ERR_IO, "No such file");
    expect_bad_file("a character device", "/dev/null", BN_ERR_IO, "not a regular file");

    const char *names[] = {"empty.gguf", "short.gguf", "magic.gguf", "good.gguf"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    free(b.p);
}

int main(void)
{
    bn_mem_stats start, end;
    bn_mem_get_stats(&start);
    test_every_prefix();
    test_every_byte_corrupted();
    test_header();
    test_strings_and_keys();
    test_value_types();
    test_arrays();
    test_alignment_values();
    test_tensor_records();
    test_tensor_pairs();
    test_many_names();
    test_valid_edges();
    test_files();
    bn_mem_get_stats(&end);
    CHECK(end.live_blocks == start.live_blocks, "leaked %lld blocks in all",
          (long long)(end.live_blocks - start.live_blocks));
    return check_summary("test_gguf_bad");
}
