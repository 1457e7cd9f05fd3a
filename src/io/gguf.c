/*
 * gguf.c - the GGUF reader.
 *
 * The file is mapped read-only (or read into memory, in huge pages where the kernel
 * has them) and parsed once, front to back, by a cursor that checks every read
 * against the end of the file. Counts are checked against the bytes left before
 * anything is allocated for them (a count of 2^63 fails at once, it does not exhaust
 * memory), array nesting is bounded, and each tensor's type, shape, alignment and
 * extent are checked, and no two tensors may overlap. What the parse builds (keys,
 * values, tensor records) lives in one arena freed with the handle; tensor data stays
 * in the image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf.h"
#include "io/gguf_internal.h"

typedef struct bn_gguf_kv {
    const char   *key;
    bn_gguf_value value;
} bn_gguf_kv;

struct bn_gguf {
    const unsigned char *base;
    size_t               size;
    bool                 mapped;       /* base is our mmap of the file, unmapped at close */
    int                  fd;           /* read in: the file (for release), else -1 */
    size_t               mem_size;     /* read in: bytes of our anonymous mapping at base */
    uint32_t             version;
    size_t               alignment;
    size_t               data_offset;
    int64_t              n_kv;
    bn_gguf_kv          *kv;
    int64_t              n_tensors;
    bn_gguf_tensor      *tensors;
    bn_arena            *arena;
};

/* A bounds-checked read position in the image. */
typedef struct bn_cursor {
    const unsigned char *base;
    size_t               size;
    size_t               pos;
} bn_cursor;

static const struct {
    const char *name;
    size_t      size;
} bn_gguf_types[BN_GGUF_TYPE_COUNT] = {
    [BN_GGUF_UINT8] = {"uint8", 1},     [BN_GGUF_INT8] = {"int8", 1},
    [BN_GGUF_UINT16] = {"uint16", 2},   [BN_GGUF_INT16] = {"int16", 2},
    [BN_GGUF_UINT32] = {"uint32", 4},   [BN_GGUF_INT32] = {"int32", 4},
    [BN_GGUF_FLOAT32] = {"float32", 4}, [BN_GGUF_BOOL] = {"bool", 1},
    [BN_GGUF_STRING] = {"string", 0},   [BN_GGUF_ARRAY] = {"array", 0},
    [BN_GGUF_UINT64] = {"uint64", 8},   [BN_GGUF_INT64] = {"int64", 8},
    [BN_GGUF_FLOAT64] = {"float64", 8},
};

size_t bn_gguf_scalar_size(bn_gguf_type type)
{
    return (unsigned)type < BN_GGUF_TYPE_COUNT ? bn_gguf_types[type].size : 0;
}

const char *bn_gguf_type_name(bn_gguf_type type)
{
    return (unsigned)type < BN_GGUF_TYPE_COUNT ? bn_gguf_types[type].name : "invalid";
}

/* ------------------------------------------------------------------ cursor */

static size_t bn_left(const bn_cursor *c)
{
    return c->size - c->pos;
}

/* Error for a read of `need` bytes at the cursor that runs past the end. */
static bn_status bn_truncated(const bn_cursor *c, const char *what, uint64_t need)
{
    return bn_error_set(BN_ERR_FORMAT, "%s at offset %zu needs %llu bytes but the file "
                        "ends %zu bytes later (%zu bytes in all)", what, c->pos,
                        (unsigned long long)need, bn_left(c), c->size);
}

static bn_status bn_read(bn_cursor *c, void *dst, size_t n, const char *what)
{
    if (bn_left(c) < n)
        return bn_truncated(c, what, n);
    memcpy(dst, c->base + c->pos, n);
    c->pos += n;
    return BN_OK;
}

static bn_status bn_read_u32(bn_cursor *c, uint32_t *v, const char *what)
{
    return bn_read(c, v, 4, what);
}

static bn_status bn_read_u64(bn_cursor *c, uint64_t *v, const char *what)
{
    return bn_read(c, v, 8, what);
}

/* A string (u64 length + bytes) copied NUL-terminated into the arena. */
static bn_status bn_read_string(bn_cursor *c, bn_arena *arena, const char *what,
                                const char **out, uint64_t *len_out)
{
    uint64_t len = 0;
    bn_status st = bn_read_u64(c, &len, what);
    if (st != BN_OK)
        return st;
    if (len > bn_left(c))
        return bn_error_set(BN_ERR_FORMAT, "%s at offset %zu has length %llu, past the end "
                            "of the file (%zu bytes left)", what, c->pos - 8,
                            (unsigned long long)len, bn_left(c));
    char *s = bn_arena_alloc(arena, (size_t)len + 1, 1);
    if (!s)
        return bn_error_wrap(BN_OK, "reading %s", what);
    memcpy(s, c->base + c->pos, (size_t)len);
    s[len] = '\0';
    c->pos += (size_t)len;
    *out = s;
    if (len_out)
        *len_out = len;
    return BN_OK;
}

/* ------------------------------------------------------------------ values */

static bn_status bn_read_value(bn_cursor *c, bn_arena *arena, bn_gguf_type type,
                               int depth, bn_gguf_value *out);

/* Decodes one scalar of `type` at p. */
static bn_gguf_value bn_decode_scalar(bn_gguf_type type, const unsigned char *p)
{
    bn_gguf_value v = {.type = type};
    uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64; float f; double d;
    switch (type) {
    case BN_GGUF_UINT8: case BN_GGUF_BOOL: memcpy(&u8, p, 1); v.v.u64 = u8; break;
    case BN_GGUF_INT8: v.v.i64 = (int8_t)p[0]; break;
    case BN_GGUF_UINT16: memcpy(&u16, p, 2); v.v.u64 = u16; break;
    case BN_GGUF_INT16: memcpy(&u16, p, 2); v.v.i64 = (int16_t)u16; break;
    case BN_GGUF_UINT32: memcpy(&u32, p, 4); v.v.u64 = u32; break;
    case BN_GGUF_INT32: memcpy(&u32, p, 4); v.v.i64 = (int32_t)u32; break;
    case BN_GGUF_FLOAT32: memcpy(&f, p, 4); v.v.f64 = f; break;
    case BN_GGUF_UINT64: memcpy(&u64, p, 8); v.v.u64 = u64; break;
    case BN_GGUF_INT64: memcpy(&u64, p, 8); v.v.i64 = (int64_t)u64; break;
    case BN_GGUF_FLOAT64: memcpy(&d, p, 8); v.v.f64 = d; break;
    default: break;
    }
    return v;
}

/* An array: element type, count, elements. Scalars stay in the file; strings and
 * nested arrays are decoded one by one. */
static bn_status bn_read_array(bn_cursor *c, bn_arena *arena, int depth,
                               bn_gguf_value *out)
{
    uint32_t et = 0;
    uint64_t n = 0;
    bn_status st = bn_read_u32(c, &et, "array element type");
    if (st == BN_OK)
        st = bn_read_u64(c, &n, "array length");
    if (st != BN_OK)
        return st;
    if (et >= BN_GGUF_TYPE_COUNT)
        return bn_error_set(BN_ERR_FORMAT, "array at offset %zu has unknown element type "
                            "%u", c->pos - 12, et);
    if (et == BN_GGUF_ARRAY && depth + 1 >= BN_GGUF_MAX_NESTING)
        return bn_error_set(BN_ERR_FORMAT, "arrays nested more than %d deep at offset %zu",
                            BN_GGUF_MAX_NESTING, c->pos);
    size_t esize = bn_gguf_scalar_size((bn_gguf_type)et);
    /* every element takes at least one byte (a string at least 8): a count larger
     * than the bytes left is impossible, whatever it claims */
    uint64_t min_elem = esize ? esize : et == BN_GGUF_STRING ? 8 : 12;
    if (n > bn_left(c) / min_elem)
        return bn_error_set(BN_ERR_FORMAT, "array of %llu %s at offset %zu does not fit in "
                            "the %zu bytes left", (unsigned long long)n,
                            bn_gguf_type_name((bn_gguf_type)et), c->pos - 12, bn_left(c));
    bn_gguf_array *arr = bn_arena_alloc(arena, sizeof *arr, 8);
    if (!arr)
        return bn_error_wrap(BN_OK, "reading an array");
    arr->elem_type = (bn_gguf_type)et;
    arr->n = n;
    arr->raw = c->base + c->pos;
    arr->items = NULL;
    if (esize) {
        for (uint64_t i = 0; et == BN_GGUF_BOOL && i < n; i++)
            if (arr->raw[i] > 1)
                return bn_error_set(BN_ERR_FORMAT, "bool array element %llu at offset %zu "
                                    "is %u, not 0 or 1", (unsigned long long)i,
                                    c->pos + (size_t)i, arr->raw[i]);
        c->pos += (size_t)(n * esize);
    } else {
        arr->items = bn_arena_alloc(arena, (size_t)n * sizeof *arr->items + 1, 8);
        if (!arr->items)
            return bn_error_wrap(BN_OK, "reading an array of %llu items",
                                 (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            st = bn_read_value(c, arena, (bn_gguf_type)et, depth + 1, &arr->items[i]);
            if (st != BN_OK)
                return bn_error_wrap(BN_OK, "array element %llu", (unsigned long long)i);
        }
    }
    out->type = BN_GGUF_ARRAY;
    out->v.arr.elem_type = arr->elem_type;
    out->v.arr.n = n;
    out->v.arr.handle = arr;
    return BN_OK;
}

/* One value of `type` at the cursor. */
static bn_status bn_read_value(bn_cursor *c, bn_arena *arena, bn_gguf_type type,
                               int depth, bn_gguf_value *out)
{
    if (type == BN_GGUF_STRING) {
        out->type = type;
        return bn_read_string(c, arena, "string", &out->v.str.ptr, &out->v.str.len);
    }
    if (type == BN_GGUF_ARRAY)
        return bn_read_array(c, arena, depth, out);
    size_t size = bn_gguf_scalar_size(type);
    if (size == 0)
        return bn_error_set(BN_ERR_FORMAT, "unknown value type %u at offset %zu",
                            (unsigned)type, c->pos);
    if (bn_left(c) < size)
        return bn_truncated(c, bn_gguf_type_name(type), size);
    *out = bn_decode_scalar(type, c->base + c->pos);
    if (type == BN_GGUF_BOOL && out->v.u64 > 1)
        return bn_error_set(BN_ERR_FORMAT, "bool at offset %zu is %llu, not 0 or 1", c->pos,
                            (unsigned long long)out->v.u64);
    c->pos += size;
    return BN_OK;
}

/* ------------------------------------------------------------------ header */

/* Header: magic, version, tensor and metadata counts. */
static bn_status bn_parse_header(bn_gguf *g, bn_cursor *c, uint64_t *n_tensors,
                                 uint64_t *n_kv)
{
    char magic[4];
    bn_status st = bn_read(c, magic, 4, "magic");
    if (st != BN_OK)
        return bn_error_set(BN_ERR_FORMAT, "not a GGUF file: %zu bytes is too short for "
                            "a header", c->size);
    if (memcmp(magic, BN_GGUF_MAGIC, 4) != 0)
        return bn_error_set(BN_ERR_FORMAT, "not a GGUF file (magic %02x %02x %02x %02x, "
                            "expected \"GGUF\")", (unsigned char)magic[0],
                            (unsigned char)magic[1], (unsigned char)magic[2],
                            (unsigned char)magic[3]);
    st = bn_read_u32(c, &g->version, "version");
    if (st != BN_OK)
        return st;
    if (g->version != 2 && g->version != 3)
        return bn_error_set(BN_ERR_FORMAT, "GGUF version %u is not supported (2 and 3 "
                            "are)", g->version);
    st = bn_read_u64(c, n_tensors, "tensor count");
    if (st == BN_OK)
        st = bn_read_u64(c, n_kv, "metadata count");
    if (st != BN_OK)
        return st;
    /* a key-value pair takes at least 8 (key length) + 1 + 4 (type) + 1 bytes, a
     * tensor record at least 8 + 1 + 4 + 8 + 4 + 8 */
    if (*n_kv > bn_left(c) / 14)
        return bn_error_set(BN_ERR_FORMAT, "metadata count %llu cannot fit in a file of "
                            "%zu bytes", (unsigned long long)*n_kv, c->size);
    if (*n_tensors > bn_left(c) / 33)
        return bn_error_set(BN_ERR_FORMAT, "tensor count %llu cannot fit in a file of "
                            "%zu bytes", (unsigned long long)*n_tensors, c->size);
    return BN_OK;
}

static int bn_cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Error naming the first of `n` names (keys or tensor names, `what`) that occurs
 * twice. Sorted copies of the pointers are compared, O(n log n): comparing every pair
 * would let a file of a few MB of short names take minutes to open. */
static bn_status bn_check_unique(const char *const *names, size_t stride, int64_t n,
                                 const char *what)
{
    if (n < 2)
        return BN_OK;
    const char **sorted = bn_malloc((size_t)n * sizeof *sorted, "gguf");
    if (!sorted)
        return bn_error_wrap(BN_OK, "checking %s", what);
    for (int64_t i = 0; i < n; i++)
        sorted[i] = *(const char *const *)((const char *)names + (size_t)i * stride);
    qsort(sorted, (size_t)n, sizeof *sorted, bn_cmp_name);
    bn_status st = BN_OK;
    for (int64_t i = 1; i < n && st == BN_OK; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            st = bn_error_set(BN_ERR_FORMAT, "duplicate %s '%s'", what, sorted[i]);
    bn_free(sorted);
    return st;
}

/* The key-value section. Keys must be non-empty and unique. */
static bn_status bn_parse_metadata(bn_gguf *g, bn_cursor *c, uint64_t n_kv)
{
    g->kv = bn_arena_alloc(g->arena, (size_t)n_kv * sizeof *g->kv + 1, 8);
    if (!g->kv)
        return bn_error_wrap(BN_OK, "reading %llu metadata keys", (unsigned long long)n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        bn_gguf_kv *kv = &g->kv[i];
        kv->key = NULL;
        size_t at = c->pos;
        uint64_t klen = 0;
        uint32_t type = 0;
        bn_status st = bn_read_string(c, g->arena, "metadata key", &kv->key, &klen);
        if (st == BN_OK && klen == 0)
            st = bn_error_set(BN_ERR_FORMAT, "metadata key %llu at offset %zu is empty",
                              (unsigned long long)i, at);
        if (st == BN_OK && strlen(kv->key) != klen)
            st = bn_error_set(BN_ERR_FORMAT, "metadata key %llu at offset %zu contains a "
                              "NUL byte", (unsigned long long)i, at);
        if (st == BN_OK)
            st = bn_read_u32(c, &type, "metadata value type");
        if (st == BN_OK && type >= BN_GGUF_TYPE_COUNT)
            st = bn_error_set(BN_ERR_FORMAT, "unknown value type %u", type);
        if (st == BN_OK)
            st = bn_read_value(c, g->arena, (bn_gguf_type)type, 0, &kv->value);
        if (st != BN_OK)
            return bn_error_wrap(BN_OK, "metadata %llu ('%s')", (unsigned long long)i,
                                 kv->key ? kv->key : "?");
        g->n_kv = (int64_t)i + 1;
    }
    return bn_check_unique(&g->kv[0].key, sizeof *g->kv, g->n_kv, "metadata key");
}

/* general.alignment: a u32 power of two, or the default. */
static bn_status bn_read_alignment(bn_gguf *g)
{
    g->alignment = BN_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = bn_gguf_find_kv(g, "general.alignment");
    if (i < 0)
        return BN_OK;
    bn_gguf_value v = g->kv[i].value;
    if (v.type != BN_GGUF_UINT32)
        return bn_error_set(BN_ERR_FORMAT, "general.alignment is a %s, expected uint32",
                            bn_gguf_type_name(v.type));
    if (v.v.u64 == 0 || (v.v.u64 & (v.v.u64 - 1)) != 0)
        return bn_error_set(BN_ERR_FORMAT, "general.alignment %llu is not a power of two",
                            (unsigned long long)v.v.u64);
    g->alignment = (size_t)v.v.u64;
    return BN_OK;
}

/* One tensor record: name, dims, type, offset; shape and size validated. */
static bn_status bn_parse_tensor_info(bn_gguf *g, bn_cursor *c, bn_gguf_tensor *t)
{
    uint32_t n_dims = 0, type = 0;
    uint64_t nlen = 0;
    bn_status st = bn_read_string(c, g->arena, "tensor name", &t->name, &nlen);
    if (st == BN_OK && (nlen == 0 || strlen(t->name) != nlen))
        st = bn_error_set(BN_ERR_FORMAT, "tensor name is empty or contains a NUL byte");
    if (st == BN_OK)
        st = bn_read_u32(c, &n_dims, "tensor dimension count");
    if (st != BN_OK)
        return st;
    if (n_dims == 0 || n_dims > BN_GGUF_MAX_DIMS)
        return bn_error_set(BN_ERR_FORMAT, "%u dimensions (1 to %d allowed)", n_dims,
                            BN_GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    int64_t rows = 1;
    for (int d = 0; d < BN_GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < (int)n_dims && (st = bn_read_u64(c, &ne, "tensor dimension")) != BN_OK)
            return st;
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return bn_error_set(BN_ERR_FORMAT, "dimension %d is %llu", d,
                                (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        if (d > 0 && __builtin_mul_overflow(rows, t->ne[d], &rows))
            return bn_error_set(BN_ERR_FORMAT, "element count overflows");
    }
    if ((st = bn_read_u32(c, &type, "tensor type")) != BN_OK ||
        (st = bn_read_u64(c, &t->offset, "tensor offset")) != BN_OK)
        return st;
    t->type = (int)type;
    if (!bn_qtype_get((bn_qtype)type))
        return bn_error_set(BN_ERR_FORMAT, "unknown tensor type %u", type);
    st = bn_qtype_tensor_size((bn_qtype)type, t->ne[0], rows, &t->nbytes);
    if (st != BN_OK)
        return bn_error_set(BN_ERR_FORMAT, "%s", bn_last_error());
    if (t->offset % g->alignment != 0)
        return bn_error_set(BN_ERR_FORMAT, "data offset %llu is not a multiple of the "
                            "alignment %zu", (unsigned long long)t->offset, g->alignment);
    return BN_OK;
}

static int bn_cmp_offset(const void *a, const void *b)
{
    const bn_gguf_tensor *x = *(bn_gguf_tensor *const *)a, *y = *(bn_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Tensors lie inside the data section and do not overlap; names are unique. */
static bn_status bn_check_extents(bn_gguf *g)
{
    size_t data_size = g->size - g->data_offset;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        bn_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return bn_error_set(BN_ERR_FORMAT, "tensor '%s': data (%zu bytes at offset "
                                "%llu) runs past the end of the file", t->name, t->nbytes,
                                (unsigned long long)t->offset);
        t->data = g->base + g->data_offset + t->offset;
    }
    if (g->n_tensors < 2)
        return BN_OK;
    bn_gguf_tensor **order = bn_malloc((size_t)g->n_tensors * sizeof *order, "gguf");
    if (!order)
        return bn_error_wrap(BN_OK, "checking tensor extents");
    for (int64_t i = 0; i < g->n_tensors; i++)
        order[i] = &g->tensors[i];
    qsort(order, (size_t)g->n_tensors, sizeof *order, bn_cmp_offset);
    bn_status st = BN_OK;
    for (int64_t i = 1; i < g->n_tensors && st == BN_OK; i++) {
        const bn_gguf_tensor *a = order[i - 1], *b = order[i];
        if (a->offset + a->nbytes > b->offset)
            st = bn_error_set(BN_ERR_FORMAT, "tensors '%s' and '%s' overlap", a->name,
                              b->name);
    }
    bn_free(order);
    return st;
}

/* Tensor records, then the start of the data section. */
static bn_status bn_parse_tensors(bn_gguf *g, bn_cursor *c, uint64_t n_tensors)
{
    g->tensors = bn_arena_alloc(g->arena, (size_t)n_tensors * sizeof *g->tensors + 1, 8);
    if (!g->tensors)
        return bn_error_wrap(BN_OK, "reading %llu tensor records",
                             (unsigned long long)n_tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        bn_gguf_tensor *t = &g->tensors[i];
        memset(t, 0, sizeof *t);
        bn_status st = bn_parse_tensor_info(g, c, t);
        if (st != BN_OK)
            return bn_error_wrap(BN_OK, "tensor %llu ('%s')", (unsigned long long)i,
                                 t->name ? t->name : "?");
        g->n_tensors = (int64_t)i + 1;
    }
    bn_status st = bn_check_unique(&g->tensors[0].name, sizeof *g->tensors, g->n_tensors,
                                   "tensor name");
    if (st != BN_OK)
        return st;
    size_t pad = (g->alignment - c->pos % g->alignment) % g->alignment;
    g->data_offset = c->pos + pad;
    if (g->data_offset > g->size) {
        if (n_tensors > 0)
            return bn_error_set(BN_ERR_FORMAT, "the file ends before its data section "
                                "(offset %zu, file %zu bytes)", g->data_offset, g->size);
        g->data_offset = g->size;
    }
    return bn_check_extents(g);
}

/* Parses the whole image into g (whose base/size are set). */
static bn_status bn_gguf_parse(bn_gguf *g)
{
    bn_cursor c = {.base = g->base, .size = g->size};
    uint64_t n_tensors = 0, n_kv = 0;
    /* 256 KiB chunks: small files stay small, the vocabulary of a big one takes a
     * few dozen chunks */
    bn_status st = bn_arena_create((size_t)256 << 10, "gguf", &g->arena);
    if (st == BN_OK)
        st = bn_parse_header(g, &c, &n_tensors, &n_kv);
    if (st == BN_OK)
        st = bn_parse_metadata(g, &c, n_kv);
    if (st == BN_OK)
        st = bn_read_alignment(g);
    if (st == BN_OK)
        st = bn_parse_tensors(g, &c, n_tensors);
    return st;
}

bn_status bn_gguf_open_memory(const void *data, size_t size, bn_gguf **out)
{
    bn_gguf *g = bn_calloc(1, sizeof *g, "gguf");
    if (!g)
        return bn_error_wrap(BN_OK, "opening a GGUF image");
    g->base = data;
    g->size = size;
    g->fd = -1;
    bn_status st = bn_gguf_parse(g);
    if (st != BN_OK) {
        bn_gguf_close(g);
        return st;
    }
    *out = g;
    return BN_OK;
}

/* The threads of the default pool read one slice each of the bytes [from, to) of the
 * file (the page faults of the fresh memory, which zero it, are the larger part of the
 * time). */
typedef struct bn_read_job {
    int fd;
    unsigned char *mem;
    size_t from, to;      /* this pass: from is a multiple of unit */
    size_t unit;
    _Atomic int err;      /* the first errno (-1: the file got shorter), 0 if none */
} bn_read_job;

static void bn_read_task(void *ctx, int ith, int nth)
{
    bn_read_job *j = ctx;
    size_t units = (j->to - j->from + j->unit - 1) / j->unit;
    size_t at = j->from + units * (size_t)ith / (size_t)nth * j->unit;
    size_t end = j->from + units * (size_t)(ith + 1) / (size_t)nth * j->unit;
    end = end < j->to ? end : j->to;
    while (at < end && !j->err) {
        size_t want = end - at < ((size_t)64 << 20) ? end - at : (size_t)64 << 20;
        ssize_t r = pread(j->fd, j->mem + at, want, (off_t)at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int expected = 0, e = r == 0 ? -1 : errno;
            atomic_compare_exchange_strong(&j->err, &expected, e);
            return;
        }
        at += (size_t)r;
    }
}

/* Bytes read in one pass of the pool, between two progress reports: a sixteenth of
 * the file in whole units, at least one unit and at most 64 MiB (a pass of the pool
 * costs microseconds, reading 64 MiB tens of milliseconds). */
static size_t bn_read_pass_bytes(size_t size, size_t unit)
{
    size_t pass = (size / 16 + unit - 1) / unit * unit;
    size_t most = ((size_t)64 << 20) / unit * unit;
    if (most < unit)
        most = unit;
    return pass < unit ? unit : pass > most ? most : pass;
}

/* Read the fd's `size` bytes into fresh anonymous memory at a huge-page boundary, in
 * huge pages where the kernel has them; *mem_size: the bytes mapped there. progress
 * (may be NULL) hears of the bytes read, after each pass; false from it cancels. */
static bn_status bn_gguf_read_image(int fd, size_t size, const char *path,
                                    bn_progress_fn progress, void *user,
                                    unsigned char **out, size_t *mem_size)
{
    size_t huge = bn_thp_size(), page = (size_t)sysconf(_SC_PAGESIZE);
    size_t unit = huge > page ? huge : page;
    if (size > SIZE_MAX - 2 * unit)
        return bn_error_set(BN_ERR_OOM, "reading %s into memory: too large", path);
    size_t len = (size + unit - 1) & ~(unit - 1), total = len + (huge > page ? unit : 0);
    unsigned char *raw = mmap(NULL, total, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return bn_error_set(BN_ERR_OOM, "reading %s into memory (%zu bytes): %s", path,
                            size, strerror(errno));
    /* keep the huge-page-aligned part only */
    unsigned char *mem =
        (unsigned char *)(((uintptr_t)raw + unit - 1) & ~(uintptr_t)(unit - 1));
    if (mem > raw)
        munmap(raw, (size_t)(mem - raw));
    if (raw + total > mem + len)
        munmap(mem + len, (size_t)(raw + total - (mem + len)));
#ifdef MADV_HUGEPAGE
    if (huge > page)
        madvise(mem, len, MADV_HUGEPAGE);
#endif
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    bn_read_job job = {.fd = fd, .mem = mem, .unit = unit};
    size_t pass = bn_read_pass_bytes(size, unit);
    bool cancelled = progress && !progress(0, size, user);
    for (job.from = 0; job.from < size && !cancelled && !job.err; job.from = job.to) {
        job.to = size - job.from < pass ? size : job.from + pass;
        bn_run_on_default_pool(bn_read_task, &job);
        if (!job.err && progress && !progress(job.to, size, user))
            cancelled = true;
    }
    if (job.err || cancelled) {
        munmap(mem, len);
        return bn_error_set(BN_ERR_IO, "reading %s: %s", path,
                            cancelled ? "cancelled"
                            : job.err < 0 ? "the file got shorter while it was read"
                                          : strerror(job.err));
    }
    mprotect(mem, len, PROT_READ);
    *out = mem;
    *mem_size = len;
    return BN_OK;
}

static bn_status bn_gguf_open_file(const char *path, bool read_in, bn_progress_fn progress,
                                   void *user, bn_gguf **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bn_error_set(BN_ERR_IO, "opening %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        return bn_error_set(BN_ERR_IO, "opening %s: %s", path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return bn_error_set(BN_ERR_IO, "opening %s: %s", path,
                            S_ISDIR(sb.st_mode) ? "is a directory" : "not a regular file");
    }
    if (sb.st_size == 0) {
        close(fd);
        return bn_error_set(BN_ERR_FORMAT, "loading %s: the file is empty", path);
    }
    unsigned char *image = NULL;
    size_t mem_size = 0;
    if (read_in) {
        bn_status st = bn_gguf_read_image(fd, (size_t)sb.st_size, path, progress, user,
                                          &image, &mem_size);
        if (st != BN_OK) {
            close(fd);
            return st;
        }
    } else {
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        int err = errno;
        close(fd);
        fd = -1;
        if (map == MAP_FAILED)
            return bn_error_set(BN_ERR_IO, "mapping %s: %s", path, strerror(err));
        image = map;
    }
    bn_gguf *g = bn_calloc(1, sizeof *g, "gguf");
    if (!g) {
        munmap(image, read_in ? mem_size : (size_t)sb.st_size);
        if (fd >= 0)
            close(fd);
        return bn_error_wrap(BN_OK, "loading %s", path);
    }
    g->base = image;
    g->size = (size_t)sb.st_size;
    g->mapped = true;
    g->fd = fd;
    g->mem_size = mem_size;
    bn_status st = bn_gguf_parse(g);
    if (st != BN_OK) {
        bn_gguf_close(g);
        return bn_error_wrap(BN_OK, "loading %s", path);
    }
    *out = g;
    return BN_OK;
}

bn_status bn_gguf_open(const char *path, bn_gguf **out)
{
    return bn_gguf_open_file(path, false, NULL, NULL, out);
}

bn_status bn_gguf_open_read(const char *path, bn_progress_fn progress, void *user,
                            bn_gguf **out)
{
    return bn_gguf_open_file(path, true, progress, user, out);
}

bool bn_gguf_is_read(const bn_gguf *g)
{
    return g->mem_size != 0;
}

uint64_t bn_gguf_huge_bytes(const bn_gguf *g)
{
    if (!g->mem_size)
        return 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return 0;
    uintptr_t lo = (uintptr_t)g->base, hi = lo + g->mem_size;
    bool inside = false;
    uint64_t total = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long long a, b, kb;
        if (sscanf(line, "%llx-%llx ", &a, &b) == 2)
            inside = a < hi && b > lo;
        else if (inside && sscanf(line, "AnonHugePages: %llu kB", &kb) == 1)
            total += kb * 1024;
    }
    fclose(f);
    return total;
}

void bn_gguf_close(bn_gguf *g)
{
    if (!g)
        return;
    if (g->mapped)
        munmap((void *)g->base, g->mem_size ? g->mem_size : g->size);
    if (g->mem_size)
        close(g->fd);
    bn_arena_free(g->arena);
    bn_free(g);
}

/* ------------------------------------------------------------------ accessors */

uint32_t bn_gguf_version(const bn_gguf *g) { return g->version; }
size_t bn_gguf_alignment(const bn_gguf *g) { return g->alignment; }
size_t bn_gguf_data_offset(const bn_gguf *g) { return g->data_offset; }
size_t bn_gguf_file_size(const bn_gguf *g) { return g->size; }
int64_t bn_gguf_n_kv(const bn_gguf *g) { return g->n_kv; }
int64_t bn_gguf_n_tensors(const bn_gguf *g) { return g->n_tensors; }

const char *bn_gguf_kv_key(const bn_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_kv ? g->kv[i].key : NULL;
}

bn_gguf_value bn_gguf_kv_value(const bn_gguf *g, int64_t i)
{
    if (i < 0 || i >= g->n_kv)
        return (bn_gguf_value){.type = BN_GGUF_TYPE_COUNT};
    return g->kv[i].value;
}

int64_t bn_gguf_find_kv(const bn_gguf *g, const char *key)
{
    for (int64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0)
            return i;
    return -1;
}

bn_gguf_value bn_gguf_array_get(const bn_gguf *g, const bn_gguf_value *array, uint64_t i)
{
    (void)g;
    const bn_gguf_array *arr = array->v.arr.handle;
    if (array->type != BN_GGUF_ARRAY || i >= arr->n)
        return (bn_gguf_value){.type = BN_GGUF_TYPE_COUNT};
    if (arr->items)
        return arr->items[i];
    return bn_decode_scalar(arr->elem_type, arr->raw + i * bn_gguf_scalar_size(arr->elem_type));
}

const bn_gguf_tensor *bn_gguf_get_tensor(const bn_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

int64_t bn_gguf_find_tensor(const bn_gguf *g, const char *name)
{
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0)
            return i;
    return -1;
}

/* The value of `key`, or an error naming it. */
static bn_status bn_gguf_lookup(const bn_gguf *g, const char *key, bn_gguf_value *v)
{
    int64_t i = bn_gguf_find_kv(g, key);
    if (i < 0)
        return bn_error_set(BN_ERR_FORMAT, "metadata key '%s' is missing", key);
    *v = g->kv[i].value;
    return BN_OK;
}

static bool bn_gguf_is_unsigned(bn_gguf_type t)
{
    return t == BN_GGUF_UINT8 || t == BN_GGUF_UINT16 || t == BN_GGUF_UINT32 ||
           t == BN_GGUF_UINT64;
}

static bool bn_gguf_is_signed(bn_gguf_type t)
{
    return t == BN_GGUF_INT8 || t == BN_GGUF_INT16 || t == BN_GGUF_INT32 ||
           t == BN_GGUF_INT64;
}

bn_status bn_gguf_get_u64(const bn_gguf *g, const char *key, uint64_t *out)
{
    bn_gguf_value v = {.type = BN_GGUF_TYPE_COUNT};
    bn_status st = bn_gguf_lookup(g, key, &v);
    if (st != BN_OK)
        return st;
    if (bn_gguf_is_unsigned(v.type)) {
        *out = v.v.u64;
        return BN_OK;
    }
    if (bn_gguf_is_signed(v.type) && v.v.i64 >= 0) {
        *out = (uint64_t)v.v.i64;
        return BN_OK;
    }
    return bn_error_set(BN_ERR_FORMAT, "metadata key '%s' is a %s, expected a "
                        "non-negative integer", key, bn_gguf_type_name(v.type));
}

bn_status bn_gguf_get_f64(const bn_gguf *g, const char *key, double *out)
{
    bn_gguf_value v = {.type = BN_GGUF_TYPE_COUNT};
    bn_status st = bn_gguf_lookup(g, key, &v);
    if (st != BN_OK)
        return st;
    if (v.type == BN_GGUF_FLOAT32 || v.type == BN_GGUF_FLOAT64)
        *out = v.v.f64;
    else if (bn_gguf_is_unsigned(v.type))
        *out = (double)v.v.u64;
    else if (bn_gguf_is_signed(v.type))
        *out = (double)v.v.i64;
    else
        return bn_error_set(BN_ERR_FORMAT, "metadata key '%s' is a %s, expected a number",
                            key, bn_gguf_type_name(v.type));
    return BN_OK;
}

bn_status bn_gguf_get_str(const bn_gguf *g, const char *key, const char **out)
{
    bn_gguf_value v = {.type = BN_GGUF_TYPE_COUNT};
    bn_status st = bn_gguf_lookup(g, key, &v);
    if (st != BN_OK)
        return st;
    if (v.type != BN_GGUF_STRING)
        return bn_error_set(BN_ERR_FORMAT, "metadata key '%s' is a %s, expected a string",
                            key, bn_gguf_type_name(v.type));
    *out = v.v.str.ptr;
    return BN_OK;
}

static uintptr_t bn_release_unit(const bn_gguf *g)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    if (g->mem_size && bn_thp_size() > page)
        page = (uintptr_t)bn_thp_size();
    return page;
}

const void *bn_gguf_release_mark(const bn_gguf *g, const void *data, const void *end)
{
    uintptr_t unit = bn_release_unit(g), e = (uintptr_t)end & ~(unit - 1);
    return e > (uintptr_t)data ? (const void *)e : data;
}

void bn_gguf_release_pages(const bn_gguf *g, const void *data, size_t size)
{
    if (!g->mapped || size == 0)
        return;
    /* a read-in image may sit in transparent huge pages: a part of one given back
     * stays charged to the process until the kernel gets round to splitting it, so
     * only whole huge pages are given back there */
    uintptr_t page = bn_release_unit(g);
    uintptr_t a = ((uintptr_t)data + page - 1) & ~(page - 1);
    uintptr_t b = ((uintptr_t)data + size) & ~(page - 1);
    if (!(a < b && a >= (uintptr_t)g->base && b <= (uintptr_t)g->base + g->size))
        return;
    if (!g->mem_size) {
        madvise((void *)a, b - a, MADV_DONTNEED);
        return;
    }
    /* read in: map the same bytes of the file over the range (MAP_FIXED replaces the
     * memory there in one step, which frees it); when that fails, the range keeps its
     * memory, and the bytes are the same either way */
    (void)mmap((void *)a, b - a, PROT_READ, MAP_PRIVATE | MAP_FIXED, g->fd,
               (off_t)(a - (uintptr_t)g->base));
}
