/*
 * test_qformats.c - the quantized formats (src/quant) against the engines that defined
 * them: for every case of tests/fixtures/peer_quant.bnfx (made by
 * scripts/fixtures/make_peer_quant.sh from llama.cpp's ggml and bitnet.cpp), our
 * quantizer writes the peer's bytes exactly, our dequantizer reads the peer's bytes to
 * the peer's own floats exactly, our sizes equal the peer's, and our type table equals
 * the peer's. Then round trips on ternary input, error paths and the table API.
 */
#include <ctype.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "check.h"
#include "fixture.h"
#include "quant/formats.h"

enum { CASE_TYPE, CASE_ROWS, CASE_COLS, CASE_INPUT, CASE_ROW_SIZE, CASE_NBYTES,
       CASE_RETURNED, CASE_PEER, CASE_FIELDS };

/* ------------------------------------------------------------- helpers */

/* Integer element (r, c) of an i64 fixture array of `cols` columns. */
static int64_t fx_i64(const fx_array *a, int64_t r, int64_t cols, int64_t c)
{
    return (int64_t)fx_at(a, r * cols + c);
}

/* A fixture array by printf-formatted name (NULL and a message when absent). */
static const fx_array *fx_getf(const fx_file *f, const char *fmt, int i)
{
    char name[64];
    snprintf(name, sizeof name, fmt, i);
    return fx_get(f, name);
}

/* Print the block where two byte strings first differ, as hex, both sides. */
static void print_first_diff(const char *what, const uint8_t *ours, const uint8_t *peer,
                             size_t n, size_t block_bytes)
{
    size_t i = 0;
    while (i < n && ours[i] == peer[i])
        i++;
    if (i == n)
        return;
    size_t blk = i / block_bytes, start = blk * block_bytes;
    size_t end = start + block_bytes < n ? start + block_bytes : n;
    fprintf(stderr, "  %s: first difference at byte %zu (block %zu)\n  ours:", what, i,
            blk);
    for (size_t k = start; k < end; k++)
        fprintf(stderr, "%s%02x", (k - start) % 32 ? " " : "\n    ", ours[k]);
    fprintf(stderr, "\n  peer:");
    for (size_t k = start; k < end; k++)
        fprintf(stderr, "%s%02x", (k - start) % 32 ? " " : "\n    ", peer[k]);
    fputc('\n', stderr);
}

/* Index of the first float that differs bit for bit, or n. */
static int64_t first_float_diff(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            return i;
    return n;
}

static bool contains(const char *haystack, const char *needle)
{
    return strstr(haystack, needle) != NULL;
}

/* ------------------------------------------------------------- table vs peers */

/* Our table against ggml's (llama.cpp 84f7129) for every id we know, and the fork's
 * (bitnet.cpp) for the ids both define; every type ggml defines below BN_QT_COUNT must
 * be known to us. */
static void test_table_vs_peer(const fx_file *f, const char *peer)
{
    char key[64];
    snprintf(key, sizeof key, "traits.%s", peer);
    const fx_array *ids = fx_get(f, key);
    snprintf(key, sizeof key, "traits.%s.names", peer);
    const fx_array *names = fx_get(f, key);
    CHECK(ids && names, "traits of %s in the fixture", peer);
    if (!ids || !names)
        return;
    int64_t n = ids->shape[0];
    int compared = 0;
    for (int64_t r = 0; r < n; r++) {
        int id = (int)fx_i64(ids, r, 3, 0);
        int64_t blck = fx_i64(ids, r, 3, 1);
        int64_t size = fx_i64(ids, r, 3, 2);
        const char *name = (const char *)names->data + r * 48;
        const bn_qtype_info *in = bn_qtype_get(id);
        bool peer_defines = blck > 0 && strcmp(name, "-") != 0;
        if (id >= BN_QT_COUNT)
            continue;                        /* newer ggml types we do not list */
        if (!in) {
            /* ids ggml retired (4, 5, 31..33 upstream; 36..38 upstream are removed
             * IQ4_NL repacks) or the fork's private 31..33 and 37..39 */
            bool fork_private = strcmp(peer, "bitnet") == 0 && (id >= 31 && id <= 39);
            CHECK(!peer_defines || fork_private,
                  "%s defines type %d '%s' that we do not know", peer, id, name);
            continue;
        }
        if (!peer_defines)
            continue;
        if (strcmp(peer, "bitnet") == 0 && id == BN_QT_MXFP4)
            continue;                        /* the fork's 39 is TL2, upstream's MXFP4 */
        CHECK(strcmp(in->name, name) == 0, "%s id %d: name '%s', ours '%s'", peer, id,
              name, in->name);
        if (id == BN_QT_I2_S) {
            /* The fork calls I2_S 1 element of 1 byte and special-cases its size in
             * ggml_nbytes (n / 4 + 32); our table states the real block instead. The
             * sizes themselves are compared per case. */
            CHECK(blck == 1 && size == 1, "fork's i2_s traits %lld/%lld", (long long)blck,
                  (long long)size);
            CHECK(in->block_size == 128 && in->type_size == 32 && in->tensor_tail == 32,
                  "our i2_s traits");
            compared++;
            continue;
        }
        CHECK(in->block_size == blck && (int64_t)in->type_size == size,
              "%s id %d (%s): block %lld size %lld, ours %lld %zu", peer, id, name,
              (long long)blck, (long long)size, (long long)in->block_size, in->type_size);
        CHECK(in->tensor_tail == 0, "%s has no tail", in->name);
        compared++;
    }
    CHECK(compared >= (strcmp(peer, "ggml") == 0 ? 32 : 30),
          "%d types compared with %s", compared, peer);
}

/* ------------------------------------------------------------- per case */

/* One peer case: sizes, our bytes vs theirs, our dequantization of their bytes vs
 * theirs, and for ternary input the exact round trip. */
static void test_case(const fx_file *f, const fx_array *cases, int i)
{
    int type = (int)fx_i64(cases, i, CASE_FIELDS, CASE_TYPE);
    int64_t rows = fx_i64(cases, i, CASE_FIELDS, CASE_ROWS);
    int64_t cols = fx_i64(cases, i, CASE_FIELDS, CASE_COLS);
    int input = (int)fx_i64(cases, i, CASE_FIELDS, CASE_INPUT);
    size_t peer_row_size = (size_t)fx_i64(cases, i, CASE_FIELDS, CASE_ROW_SIZE);
    size_t peer_nbytes = (size_t)fx_i64(cases, i, CASE_FIELDS, CASE_NBYTES);
    size_t peer_returned = (size_t)fx_i64(cases, i, CASE_FIELDS, CASE_RETURNED);
    const fx_array *x = fx_getf(f, "input.%d", input);
    const fx_array *kind = fx_getf(f, "input.%d.kind", input);
    const fx_array *scale = fx_getf(f, "input.%d.scale", input);
    const fx_array *pq = fx_getf(f, "case.%d.q", i);
    const fx_array *pdeq = fx_getf(f, "case.%d.deq", i);
    CHECK(x && kind && scale && pq && pdeq, "case %d complete", i);
    if (!x || !kind || !scale || !pq || !pdeq)
        return;
    const bn_qtype_info *in = bn_qtype_get(type);
    CHECK(in != NULL, "case %d: type %d known", i, type);
    if (!in)
        return;
    const char *kinds[] = {"ternary", "gaussian", "edges"};
    int k = (int)fx_at(kind, 0);
    char label[96];
    snprintf(label, sizeof label, "case %d: %s %lldx%lld %s", i, in->name,
             (long long)rows, (long long)cols, kinds[k]);
    int64_t n = rows * cols;

    /* sizes */
    size_t size = 0, row = 0;
    CHECK_OK(bn_qtype_tensor_size(type, cols, rows, &size));
    CHECK(size == peer_nbytes && size == peer_returned && size == (size_t)pq->numel,
          "%s: size %zu, peer nbytes %zu, quantize returned %zu", label, size,
          peer_nbytes, peer_returned);
    if (type == BN_QT_I2_S) {
        /* the fork's ggml_row_size counts I2_S as 1 byte per element */
        CHECK(peer_row_size == (size_t)cols, "%s: fork row size %zu", label,
              peer_row_size);
    } else {
        CHECK_OK(bn_qtype_tensor_size(type, cols, 1, &row));
        CHECK(row == peer_row_size, "%s: row size %zu, peer %zu", label, row,
              peer_row_size);
    }

    /* quantize: the peer's bytes exactly */
    uint8_t *q = malloc(size);
    float *deq = malloc((size_t)n * sizeof(float));
    memset(q, 0xa5, size);
    CHECK_OK(bn_quantize(type, x->data, cols, rows, q, size));
    bool same = memcmp(q, pq->data, size) == 0;
    CHECK(same, "%s: quantized bytes differ from the peer's", label);
    if (!same)
        print_first_diff(label, q, pq->data, size,
                         type == BN_QT_I2_S ? 32 : in->type_size);

    /* dequantize the peer's bytes: the peer's floats exactly */
    CHECK_OK(bn_dequantize(type, pq->data, size, cols, rows, deq));
    int64_t d = first_float_diff(deq, pdeq->data, n);
    CHECK(d == n, "%s: dequantized [%lld] = %.9g, peer %.9g", label, (long long)d,
          d < n ? deq[d] : 0.0, d < n ? ((const float *)pdeq->data)[d] : 0.0);

    /* ternary input t * s comes back exactly: I2_S keeps s, TQ1_0 / TQ2_0 keep the f16
     * rounding of s (all-zero blocks give 0) */
    if (k == 0 && in->is_ternary) {
        float s = (float)fx_at(scale, 0);
        float s_back = type == BN_QT_I2_S ? s : bn_f16_to_f32(bn_f32_to_f16(s));
        CHECK_OK(bn_dequantize(type, q, size, cols, rows, deq));
        int64_t bad = -1;
        for (int64_t j = 0; j < n && bad < 0; j++) {
            float w = ((const float *)x->data)[j];
            float expect = w > 0 ? s_back : w < 0 ? -s_back : 0.0f;
            if (deq[j] != expect)
                bad = j;
        }
        CHECK(bad < 0, "%s: round trip [%lld] = %.9g, input %.9g", label,
              (long long)bad, bad >= 0 ? deq[bad] : 0.0,
              bad >= 0 ? ((const float *)x->data)[bad] : 0.0);
    }
    free(q);
    free(deq);
}

/* ------------------------------------------------------------- without fixtures */

/* Size rules and their messages. */
static void test_sizes_and_errors(void)
{
    size_t size = 0;
    CHECK_OK(bn_qtype_tensor_size(BN_QT_Q8_0, 4096, 3, &size));
    CHECK(size == 3 * 128 * 34, "q8_0 size %zu", size);
    CHECK_OK(bn_qtype_tensor_size(BN_QT_TQ2_0, 2560, 6912, &size));
    CHECK(size == (size_t)6912 * 10 * 66, "tq2_0 size %zu", size);
    CHECK_OK(bn_qtype_tensor_size(BN_QT_I2_S, 2560, 6912, &size));
    CHECK(size == (size_t)2560 * 6912 / 4 + 32, "i2_s size %zu", size);
    CHECK_OK(bn_qtype_tensor_size(BN_QT_F16, 7, 3, &size));
    CHECK(size == 42, "f16 size %zu", size);
    CHECK_OK(bn_qtype_tensor_size(BN_QT_Q4_0, 0, 5, &size));
    CHECK(size == 0, "empty q4_0 %zu", size);

    /* a row length that is not a multiple of the block names both numbers */
    CHECK(bn_qtype_tensor_size(BN_QT_Q4_0, 33, 1, &size) == BN_ERR_SHAPE, "q4_0 x33");
    CHECK(contains(bn_last_error(), "33") && contains(bn_last_error(), "32") &&
          contains(bn_last_error(), "q4_0"), "message: %s", bn_last_error());
    CHECK(bn_qtype_tensor_size(BN_QT_TQ1_0, 2500, 2, &size) == BN_ERR_SHAPE, "tq1_0");
    CHECK(contains(bn_last_error(), "2500") && contains(bn_last_error(), "256"),
          "message: %s", bn_last_error());
    /* I2_S counts over the whole tensor */
    CHECK_OK(bn_qtype_tensor_size(BN_QT_I2_S, 64, 2, &size));
    CHECK(size == 32 + 32, "i2_s 2x64 size %zu", size);
    CHECK(bn_qtype_tensor_size(BN_QT_I2_S, 100, 3, &size) == BN_ERR_SHAPE, "i2_s 300");
    CHECK(contains(bn_last_error(), "300") && contains(bn_last_error(), "128"),
          "message: %s", bn_last_error());
    /* overflow and negative shapes */
    CHECK(bn_qtype_tensor_size(BN_QT_F32, INT64_MAX / 2, 4, &size) == BN_ERR_SHAPE,
          "overflow");
    CHECK(bn_qtype_tensor_size(BN_QT_Q8_0, (int64_t)1 << 62, 4, &size) == BN_ERR_SHAPE,
          "q8_0 bytes overflow");     /* 2^57 blocks of 34 bytes, 4 rows: > 2^64 */
    CHECK(bn_qtype_tensor_size(BN_QT_I2_S, (int64_t)1 << 62, 4, &size) == BN_ERR_SHAPE,
          "i2_s element count overflow");
    CHECK(bn_qtype_tensor_size(BN_QT_F32, -4, 1, &size) == BN_ERR_SHAPE, "negative");

    /* unknown ids (the enum takes any int, as an id read from a file can be) */
    const int unknown[] = {-1, 4, 5, 31, 32, 33, 37, 38, BN_QT_COUNT, 1000, INT32_MIN,
                           INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK(bn_qtype_get(unknown[i]) == NULL, "id %d unknown", unknown[i]);
        CHECK(bn_qtype_tensor_size(unknown[i], 256, 1, &size) == BN_ERR_DTYPE,
              "size of id %d", unknown[i]);
        char id[16];
        snprintf(id, sizeof id, "%d", unknown[i]);
        CHECK(contains(bn_last_error(), id), "message: %s", bn_last_error());
        float x[256] = {0};
        uint8_t buf[1024];
        CHECK(bn_dequantize(unknown[i], buf, sizeof buf, 256, 1, x) == BN_ERR_DTYPE,
              "dequantize id %d", unknown[i]);
        CHECK(bn_quantize(unknown[i], x, 256, 1, buf, sizeof buf) == BN_ERR_DTYPE,
              "quantize id %d", unknown[i]);
    }

    /* buffers too small */
    float x[512] = {0};
    uint8_t buf[2 * 66];
    CHECK(bn_quantize(BN_QT_TQ2_0, x, 256, 2, buf, sizeof buf - 1) == BN_ERR_INVALID_ARG,
          "dst one byte short");
    CHECK(contains(bn_last_error(), "131") && contains(bn_last_error(), "132"),
          "message: %s", bn_last_error());
    CHECK(bn_dequantize(BN_QT_TQ2_0, buf, 65, 256, 1, x) == BN_ERR_INVALID_ARG,
          "src short");
    CHECK(bn_quantize(BN_QT_I2_S, x, 128, 1, buf, 32 + 31) == BN_ERR_INVALID_ARG,
          "i2_s without its full tail");
    CHECK(bn_quantize(BN_QT_Q8_0, x, 30, 1, buf, sizeof buf) == BN_ERR_SHAPE,
          "q8_0 row of 30");

    /* types known by size only */
    CHECK(bn_quantize(BN_QT_Q4_K, x, 256, 1, buf, sizeof buf) == BN_ERR_UNSUPPORTED,
          "quantize q4_K");
    CHECK(contains(bn_last_error(), "q4_K"), "message: %s", bn_last_error());
    CHECK(bn_dequantize(BN_QT_IQ2_XXS, buf, sizeof buf, 256, 1, x) == BN_ERR_UNSUPPORTED,
          "dequantize iq2_xxs");
    CHECK(contains(bn_last_error(), "iq2_xxs"), "message: %s", bn_last_error());
}

/* The table API: names, flags, plain float types. */
static void test_table_api(void)
{
    bn_qtype t;
    CHECK(bn_qtype_from_name("TQ2_0", &t) && t == BN_QT_TQ2_0, "TQ2_0");
    CHECK(bn_qtype_from_name("q6_k", &t) && t == BN_QT_Q6_K, "q6_k");
    CHECK(bn_qtype_from_name("I2_S", &t) && t == BN_QT_I2_S, "I2_S");
    CHECK(bn_qtype_from_name("bf16", &t) && t == BN_QT_BF16, "bf16");
    CHECK(!bn_qtype_from_name("q4_2", &t), "q4_2");
    CHECK(!bn_qtype_from_name("", &t), "empty");
    CHECK(!bn_qtype_from_name("tq2_00", &t), "tq2_00");
    CHECK(!bn_qtype_from_name("tq2", &t), "tq2");

    int n_known = 0, n_rw = 0;
    for (int id = 0; id < BN_QT_COUNT; id++) {
        const bn_qtype_info *in = bn_qtype_get(id);
        if (!in)
            continue;
        n_known++;
        CHECK(bn_qtype_from_name(in->name, &t) && (int)t == id, "round trip %s",
              in->name);
        CHECK(in->block_size >= 1 && in->type_size >= 1, "%s sizes", in->name);
        CHECK(in->can_read == in->can_write, "%s: read and write together", in->name);
        bool tern = id == BN_QT_I2_S || id == BN_QT_TQ1_0 || id == BN_QT_TQ2_0;
        CHECK(in->is_ternary == tern, "%s ternary flag", in->name);
        if (in->can_read)
            n_rw++;
    }
    CHECK(n_known == 33, "%d known types", n_known);
    CHECK(n_rw == 9, "%d convertible types", n_rw);

    /* plain float types go through the dtype conversions */
    float x[6] = {1.0f, -2.5f, 65504.0f, 1e-8f, 3.14159265f, 0.0f}, y[6];
    uint16_t h[6];
    CHECK_OK(bn_quantize(BN_QT_F16, x, 3, 2, h, sizeof h));
    CHECK_OK(bn_dequantize(BN_QT_F16, h, sizeof h, 3, 2, y));
    for (int i = 0; i < 6; i++)
        CHECK(y[i] == bn_f16_to_f32(bn_f32_to_f16(x[i])), "f16 [%d]", i);
    CHECK_OK(bn_quantize(BN_QT_BF16, x, 6, 1, h, sizeof h));
    CHECK_OK(bn_dequantize(BN_QT_BF16, h, sizeof h, 6, 1, y));
    for (int i = 0; i < 6; i++)
        CHECK(y[i] == bn_bf16_to_f32(bn_f32_to_bf16(x[i])), "bf16 [%d]", i);
    float z[6];
    CHECK_OK(bn_quantize(BN_QT_F32, x, 6, 1, z, sizeof z));
    CHECK_OK(bn_dequantize(BN_QT_F32, z, sizeof z, 6, 1, y));
    CHECK(memcmp(x, y, sizeof x) == 0, "f32 copy");
}

/* I2_S details that the peer cases do not pin: the zeroed tail, code 3, and that the
 * codes follow the stream across rows. */
static void test_i2s_layout(void)
{
    float x[256];
    for (int i = 0; i < 256; i++)
        x[i] = (i % 3 - 1) * 0.25f;          /* -s, 0, s, -s, ... */
    uint8_t q[256 / 4 + 32];
    memset(q, 0xff, sizeof q);
    CHECK_OK(bn_quantize(BN_QT_I2_S, x, 64, 4, q, sizeof q));
    /* byte j of block 0 holds weights j, 32+j, 64+j, 96+j in bits 7-6 .. 1-0 */
    for (int j = 0; j < 32; j++) {
        unsigned expect = 0;
        for (int k = 0; k < 4; k++)
            expect |= (unsigned)((32 * k + j) % 3) << (6 - 2 * k);
        CHECK(q[j] == expect, "byte %d = %02x, expected %02x", j, q[j], expect);
    }
    float s;
    memcpy(&s, q + 64, 4);
    CHECK(s == 0.25f, "scale %g", s);
    int nonzero = 0;
    for (int i = 68; i < 96; i++)
        nonzero += q[i] != 0;
    CHECK(nonzero == 0, "tail padding zeroed");
    q[0] = 0xff;                              /* code 3 reads as +2 (test_code3) */
    float y[256];
    CHECK_OK(bn_dequantize(BN_QT_I2_S, q, sizeof q, 64, 4, y));
    CHECK(y[0] == 0.5f && y[32] == 0.5f && y[64] == 0.5f && y[96] == 0.5f, "code 3");
    CHECK(y[1] == x[1] && y[200] == x[200], "other values");
}

/* The 2-bit code 3, which no quantizer writes, as bitnet.cpp's kernels read it
 * (docs/FORMATS.md, I2_S): a code c weighs c - 1, so 3 is +2. Hand-made bytes, the
 * values they must give written out from that rule: 0xE4 holds the codes 3, 2, 1, 0 from
 * the top bits down, 0x1B the codes 0, 1, 2, 3. Both the public dequantizer and the
 * decoder that the projections use are checked, for I2_S and for TQ2_0 (whose fields run
 * from the low bits up, so the same byte gives its weights in the other order). */
static void test_code3(void)
{
    /* weights j, 32+j, 64+j, 96+j of a block (I2_S) or half block (TQ2_0), for byte j
     * 0xE4 (even j) and 0x1B (odd j) */
    static const float i2s_even[4] = {+2, +1, 0, -1}, i2s_odd[4] = {-1, 0, +1, +2};
    static const float tq2_even[4] = {-1, 0, +1, +2}, tq2_odd[4] = {+2, +1, 0, -1};
    const float s = 0.375f;
    uint8_t q[256 / 4 + 32] = {0};
    for (int j = 0; j < 64; j++)
        q[j] = j % 2 == 0 ? 0xE4 : 0x1B;
    memcpy(q + 64, &s, sizeof s);
    float y[256];
    int8_t w[256];
    CHECK_OK(bn_dequantize(BN_QT_I2_S, q, sizeof q, 128, 2, y));
    bn_decode_row_i2_s(q, w, NULL, 256);
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 32; j++)
            for (int k = 0; k < 4; k++) {
                const int i = 128 * b + 32 * k + j;
                const float v = j % 2 == 0 ? i2s_even[k] : i2s_odd[k];
                CHECK(y[i] == s * v, "i2_s weight %d: %g, want %g", i, y[i], s * v);
                CHECK(w[i] == (int8_t)v, "i2_s code of weight %d: %d, want %g", i, w[i], v);
            }
    bn_block_tq2_0 t;
    memcpy(t.qs, q, sizeof t.qs);
    t.d = 0x3e00;                               /* 1.5 */
    float d = 0.0f;
    CHECK_OK(bn_dequantize(BN_QT_TQ2_0, &t, sizeof t, 256, 1, y));
    bn_decode_row_tq2_0(&t, w, &d, 256);
    CHECK(d == 1.5f, "tq2_0 block scale %g", d);
    for (int h = 0; h < 2; h++)
        for (int m = 0; m < 32; m++)
            for (int k = 0; k < 4; k++) {
                const int i = 128 * h + 32 * k + m;
                const float v = m % 2 == 0 ? tq2_even[k] : tq2_odd[k];
                CHECK(y[i] == 1.5f * v, "tq2_0 weight %d: %g, want %g", i, y[i], 1.5f * v);
                CHECK(w[i] == (int8_t)v, "tq2_0 code of weight %d: %d, want %g", i, w[i], v);
            }
}

int main(void)
{
    test_sizes_and_errors();
    test_table_api();
    test_i2s_layout();
    test_code3();

    fx_file *f = fx_open("peer_quant.bnfx");
    CHECK(f != NULL, "peer_quant.bnfx loads");
    if (f) {
        test_table_vs_peer(f, "ggml");
        test_table_vs_peer(f, "bitnet");
        const fx_array *cases = fx_get(f, "cases");
        CHECK(cases && cases->ndim == 2 && cases->shape[1] == CASE_FIELDS, "case table");
        if (cases) {
            int counts[BN_QT_COUNT] = {0};
            for (int i = 0; i < (int)cases->shape[0]; i++) {
                test_case(f, cases, i);
                int type = (int)fx_i64(cases, i, CASE_FIELDS, CASE_TYPE);
                if (type >= 0 && type < BN_QT_COUNT)
                    counts[type]++;
            }
            const int want[] = {BN_QT_Q8_0, BN_QT_Q4_0, BN_QT_Q6_K, BN_QT_TQ1_0,
                                BN_QT_TQ2_0, BN_QT_I2_S};
            for (int i = 0; i < 6; i++)
                CHECK(counts[want[i]] >= 6, "%d cases of %s", counts[want[i]],
                      bn_qtype_get(want[i])->name);
        }
        fx_close(f);
    }
    return check_summary("test_qformats");
}
