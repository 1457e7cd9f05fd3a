/*
 * qtype.c - the type-traits table of the storage types of model tensors, indexed by
 * ggml's type id: name, block size, bytes per block, per-tensor tail, and the
 * converters (formats.c) between each supported type and f32. Adding a type is adding a
 * table entry; bn_qtype_tensor_size, bn_dequantize and bn_quantize only dispatch.
 *
 * Sizes are ggml's (ggml.c type_traits at llama.cpp 84f7129); I2_S is bitnet.cpp's
 * (its llama.cpp fork), described in blocks.h and docs/FORMATS.md.
 */
#include <assert.h>
#include <ctype.h>
#include <string.h>

#include "core/internal.h"
#include "quant/formats.h"

/* Converters of n elements: one row for most types, the whole tensor for I2_S. */
typedef void (*bn_dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*bn_quant_fn)(const float *src, void *dst, int64_t n);

typedef struct bn_qtype_traits {
    bn_qtype_info info;
    bn_dequant_fn to_f32;      /* NULL: cannot be read */
    bn_quant_fn   from_f32;    /* NULL: cannot be written */
    bool          per_tensor;  /* the converters take the whole tensor, not a row */
} bn_qtype_traits;

/* Plain float rows, through the dtype conversions of the core. */
static void bn_f32_copy_row(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void bn_f32_store_row(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void bn_f16_load_row(const void *src, float *dst, int64_t n)
{
    bn_f16_to_f32_row((const uint16_t *)src, dst, n);
}

static void bn_f16_store_row(const float *src, void *dst, int64_t n)
{
    bn_f32_to_f16_row(src, (uint16_t *)dst, n);
}

static void bn_bf16_load_row(const void *src, float *dst, int64_t n)
{
    bn_bf16_to_f32_row((const uint16_t *)src, dst, n);
}

static void bn_bf16_store_row(const float *src, void *dst, int64_t n)
{
    bn_f32_to_bf16_row(src, (uint16_t *)dst, n);
}

#define BN_SIZE_ONLY(nm, blk, sz) {{nm, blk, sz, 0, false, false, false}, NULL, NULL, false}

static const bn_qtype_traits bn_qtype_table[BN_QT_COUNT] = {
    [BN_QT_F32]  = {{"f32", 1, 4, 0, true, true, false}, bn_f32_copy_row, bn_f32_store_row, false},
    [BN_QT_F16]  = {{"f16", 1, 2, 0, true, true, false}, bn_f16_load_row, bn_f16_store_row, false},
    [BN_QT_Q4_0] = {{"q4_0", 32, 18, 0, true, true, false},
                    bn_dequant_row_q4_0, bn_quant_row_q4_0, false},
    [BN_QT_Q4_1]    = BN_SIZE_ONLY("q4_1", 32, 20),
    [BN_QT_Q5_0]    = BN_SIZE_ONLY("q5_0", 32, 22),
    [BN_QT_Q5_1]    = BN_SIZE_ONLY("q5_1", 32, 24),
    [BN_QT_Q8_0] = {{"q8_0", 32, 34, 0, true, true, false},
                    bn_dequant_row_q8_0, bn_quant_row_q8_0, false},
    [BN_QT_Q8_1]    = BN_SIZE_ONLY("q8_1", 32, 36),
    [BN_QT_Q2_K]    = BN_SIZE_ONLY("q2_K", 256, 84),
    [BN_QT_Q3_K]    = BN_SIZE_ONLY("q3_K", 256, 110),
    [BN_QT_Q4_K]    = BN_SIZE_ONLY("q4_K", 256, 144),
    [BN_QT_Q5_K]    = BN_SIZE_ONLY("q5_K", 256, 176),
    [BN_QT_Q6_K] = {{"q6_K", 256, 210, 0, true, true, false},
                    bn_dequant_row_q6_k, bn_quant_row_q6_k, false},
    [BN_QT_Q8_K]    = BN_SIZE_ONLY("q8_K", 256, 292),
    [BN_QT_IQ2_XXS] = BN_SIZE_ONLY("iq2_xxs", 256, 66),
    [BN_QT_IQ2_XS]  = BN_SIZE_ONLY("iq2_xs", 256, 74),
    [BN_QT_IQ3_XXS] = BN_SIZE_ONLY("iq3_xxs", 256, 98),
    [BN_QT_IQ1_S]   = BN_SIZE_ONLY("iq1_s", 256, 50),
    [BN_QT_IQ4_NL]  = BN_SIZE_ONLY("iq4_nl", 32, 18),
    [BN_QT_IQ3_S]   = BN_SIZE_ONLY("iq3_s", 256, 110),
    [BN_QT_IQ2_S]   = BN_SIZE_ONLY("iq2_s", 256, 82),
    [BN_QT_IQ4_XS]  = BN_SIZE_ONLY("iq4_xs", 256, 136),
    [BN_QT_I8]      = BN_SIZE_ONLY("i8", 1, 1),
    [BN_QT_I16]     = BN_SIZE_ONLY("i16", 1, 2),
    [BN_QT_I32]     = BN_SIZE_ONLY("i32", 1, 4),
    [BN_QT_I64]     = BN_SIZE_ONLY("i64", 1, 8),
    [BN_QT_F64]     = BN_SIZE_ONLY("f64", 1, 8),
    [BN_QT_IQ1_M]   = BN_SIZE_ONLY("iq1_m", 256, 56),
    [BN_QT_BF16] = {{"bf16", 1, 2, 0, true, true, false}, bn_bf16_load_row, bn_bf16_store_row, false},
    [BN_QT_TQ1_0] = {{"tq1_0", 256, 54, 0, true, true, true},
                     bn_dequant_row_tq1_0, bn_quant_row_tq1_0, false},
    [BN_QT_TQ2_0] = {{"tq2_0", 256, 66, 0, true, true, true},
                     bn_dequant_row_tq2_0, bn_quant_row_tq2_0, false},
    /* one stream of codes and one scale for the whole tensor: converted per tensor */
    [BN_QT_I2_S] = {{"i2_s", BN_I2S_BLOCK, BN_I2S_BLOCK_BYTES, BN_I2S_TAIL, true, true, true},
                    bn_dequant_i2_s, bn_quant_i2_s, true},
    [BN_QT_MXFP4]   = BN_SIZE_ONLY("mxfp4", 32, 17),
};

/* The table entry of a known type id, else NULL (ids ggml retired, 4, 5, 31..33,
 * 37, 38, have no entry). */
static const bn_qtype_traits *bn_qtype_traits_get(bn_qtype type)
{
    /* unsigned: a negative id from a file is out of range too, whichever integer type
     * the compiler gives the enum */
    if ((unsigned)type >= BN_QT_COUNT || bn_qtype_table[type].info.name == NULL)
        return NULL;
    return &bn_qtype_table[type];
}

/* The public facts of a type id (bitnet.h); NULL when unknown. */
bn_row_to_f32_fn bn_qtype_row_to_f32(bn_qtype type)
{
    const bn_qtype_traits *t = bn_qtype_traits_get(type);
    return t && !t->per_tensor ? t->to_f32 : NULL;
}

const bn_qtype_info *bn_qtype_get(bn_qtype type)
{
    const bn_qtype_traits *t = bn_qtype_traits_get(type);
    return t ? &t->info : NULL;
}

/* The id whose name equals `name` ignoring case; false when none does. */
bool bn_qtype_from_name(const char *name, bn_qtype *out)
{
    assert(name && out);
    for (int i = 0; i < BN_QT_COUNT; i++) {
        const char *known = bn_qtype_table[i].info.name;
        if (known && strlen(known) == strlen(name)) {
            size_t k = 0;
            while (known[k] && tolower((unsigned char)known[k]) ==
                               tolower((unsigned char)name[k]))
                k++;
            if (known[k] == '\0') {
                *out = (bn_qtype)i;
                return true;
            }
        }
    }
    return false;
}

/* LLAMA_FTYPE_MOSTLY_<type> for the types we write. Sources: llama.cpp's
 * include/llama.h, enum llama_ftype (ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2,
 * MOSTLY_Q8_0 7, MOSTLY_Q6_K 18, MOSTLY_BF16 32, MOSTLY_TQ1_0 36, MOSTLY_TQ2_0 37);
 * I2_S: bitnet.cpp's llama.cpp fork adds LLAMA_FTYPE_MOSTLY_I2_S = 40, the value in
 * microsoft's bitnet-b1.58-2B-4T GGUF (tests/test_model_2b4t.sh checks the layout of
 * that file). Newer upstream llama.cpp gives 40 to another type (MOSTLY_Q1_0): a reader
 * cannot trust the number alone, and we never do (the tensor types decide). */
int32_t bn_qtype_file_type(bn_qtype type)
{
    switch (type) {
    case BN_QT_F32:   return 0;
    case BN_QT_F16:   return 1;
    case BN_QT_Q4_0:  return 2;
    case BN_QT_Q8_0:  return 7;
    case BN_QT_Q6_K:  return 18;
    case BN_QT_BF16:  return 32;
    case BN_QT_TQ1_0: return 36;
    case BN_QT_TQ2_0: return 37;
    case BN_QT_I2_S:  return 40;
    default:          return -1;
    }
}

/* Bytes of an I2_S tensor of numel weights: the packed codes plus the tail. */
static bn_status bn_i2s_tensor_size(int64_t numel, int64_t row_len, int64_t n_rows,
                                    size_t *out)
{
    if (numel % BN_I2S_BLOCK != 0)
        return bn_error_set(BN_ERR_SHAPE,
                            "i2_s: %lld elements (%lld rows of %lld) is not a multiple "
                            "of the block size %d", (long long)numel, (long long)n_rows,
                            (long long)row_len, BN_I2S_BLOCK);
    uint64_t bytes = (uint64_t)numel / 4;
    if (bytes > SIZE_MAX - BN_I2S_TAIL)
        return bn_error_set(BN_ERR_SHAPE, "i2_s: %lld elements overflow the size",
                            (long long)numel);
    *out = (size_t)bytes + BN_I2S_TAIL;
    return BN_OK;
}

/* Bytes of n_rows rows of row_len elements: whole blocks per row, plus the tail.
 * BN_ERR_DTYPE for an unknown id, BN_ERR_SHAPE for a partial block or an overflow. */
bn_status bn_qtype_tensor_size(bn_qtype type, int64_t row_len, int64_t n_rows,
                                size_t *out)
{
    assert(out);
    const bn_qtype_traits *t = bn_qtype_traits_get(type);
    if (!t)
        return bn_error_set(BN_ERR_DTYPE, "unknown tensor type id %d", (int)type);
    const bn_qtype_info *in = &t->info;
    if (row_len < 0 || n_rows < 0)
        return bn_error_set(BN_ERR_SHAPE, "%s: negative shape (%lld rows of %lld)",
                            in->name, (long long)n_rows, (long long)row_len);
    int64_t numel;
    if (__builtin_mul_overflow(row_len, n_rows, &numel))
        return bn_error_set(BN_ERR_SHAPE, "%s: %lld rows of %lld elements overflow",
                            in->name, (long long)n_rows, (long long)row_len);
    if (type == BN_QT_I2_S)
        return bn_i2s_tensor_size(numel, row_len, n_rows, out);
    if (row_len % in->block_size != 0)
        return bn_error_set(BN_ERR_SHAPE,
                            "%s: row length %lld is not a multiple of the block size %lld",
                            in->name, (long long)row_len, (long long)in->block_size);
    size_t row_bytes, bytes;
    if (bn_mul_overflow_size((size_t)(row_len / in->block_size), in->type_size,
                             &row_bytes) ||
        bn_mul_overflow_size(row_bytes, (size_t)n_rows, &bytes) ||
        bytes > SIZE_MAX - in->tensor_tail)
        return bn_error_set(BN_ERR_SHAPE, "%s: size of %lld rows of %lld elements "
                            "overflows", in->name, (long long)n_rows, (long long)row_len);
    *out = bytes + in->tensor_tail;
    return BN_OK;
}

/* Shared checks of bn_dequantize / bn_quantize: a known type that can be read (or,
 * `writing`, written), a fitting shape, and a buffer of at least the tensor's size.
 * Gives the traits and the size. */
static bn_status bn_quant_check(const char *op, bn_qtype type, bool writing,
                                int64_t row_len, int64_t n_rows, size_t buf_bytes,
                                const bn_qtype_traits **traits, size_t *size)
{
    const bn_qtype_traits *t = bn_qtype_traits_get(type);
    if (!t)
        return bn_error_set(BN_ERR_DTYPE, "%s: unknown tensor type id %d", op, (int)type);
    if (writing ? !t->from_f32 : !t->to_f32)
        return bn_error_set(BN_ERR_UNSUPPORTED, "%s: converting %s %s f32 is not "
                            "supported", op, writing ? "to" : "from", t->info.name);
    bn_status st = bn_qtype_tensor_size(type, row_len, n_rows, size);
    if (st != BN_OK)
        return bn_error_wrap(st, "%s", op);
    if (buf_bytes < *size)
        return bn_error_set(BN_ERR_INVALID_ARG, "%s: %s buffer of %zu bytes, %lld rows "
                            "of %lld %s elements need %zu", op, writing ? "destination"
                            : "source", buf_bytes, (long long)n_rows, (long long)row_len,
                            t->info.name, *size);
    *traits = t;
    return BN_OK;
}

/* Checks, then converts row by row (or the whole tensor at once for I2_S). */
bn_status bn_dequantize(bn_qtype type, const void *src, size_t src_bytes, int64_t row_len,
                        int64_t n_rows, float *dst)
{
    const bn_qtype_traits *t;
    size_t size;
    bn_status st = bn_quant_check("dequantize", type, false, row_len, n_rows, src_bytes,
                                  &t, &size);
    if (st != BN_OK)
        return st;
    assert(src && dst);
    if (t->per_tensor) {
        t->to_f32(src, dst, row_len * n_rows);
        return BN_OK;
    }
    size_t row_bytes = (size_t)(row_len / t->info.block_size) * t->info.type_size;
    const uint8_t *in = src;
    for (int64_t r = 0; r < n_rows; r++)
        t->to_f32(in + (size_t)r * row_bytes, dst + r * row_len, row_len);
    return BN_OK;
}

/* Checks, then quantizes row by row (or the whole tensor at once for I2_S). */
bn_status bn_quantize(bn_qtype type, const float *src, int64_t row_len, int64_t n_rows,
                      void *dst, size_t dst_bytes)
{
    const bn_qtype_traits *t;
    size_t size;
    bn_status st = bn_quant_check("quantize", type, true, row_len, n_rows, dst_bytes,
                                  &t, &size);
    if (st != BN_OK)
        return st;
    assert(src && dst);
    if (t->per_tensor) {
        t->from_f32(src, dst, row_len * n_rows);
        return BN_OK;
    }
    size_t row_bytes = (size_t)(row_len / t->info.block_size) * t->info.type_size;
    uint8_t *out = dst;
    for (int64_t r = 0; r < n_rows; r++)
        t->from_f32(src + r * row_len, out + (size_t)r * row_bytes, row_len);
    return BN_OK;
}
