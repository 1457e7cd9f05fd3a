/*
 * gguf_writer.c - writing GGUF v3 files.
 *
 * Metadata values are encoded as soon as they are set (type + payload, exactly as
 * they go to disk), so writing is one pass: header, metadata, tensor records, padding,
 * then each tensor's bytes at its aligned offset. The bytes go through a bn_out_file
 * (out_file.c), which puts the file at the target only after everything was written
 * and flushed, so a failure, a cancel or a killed process leaves nothing behind and
 * never a half-written target.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "io/gguf_internal.h"

typedef struct bn_wkv {
    char          *key;
    unsigned char *enc;     /* u32 type + payload */
    size_t         len;
} bn_wkv;

typedef struct bn_wtensor {
    char       *name;
    int         type;
    int         n_dims;
    int64_t     ne[BN_GGUF_MAX_DIMS];
    const void *data;
    size_t      nbytes;
    bn_gguf_fill_fn fill;   /* data made at write time, when not NULL */
    void       *fill_user;
} bn_wtensor;

struct bn_gguf_writer {
    bn_wkv     *kv;
    int64_t     n_kv, cap_kv;
    bn_wtensor *tensors;
    int64_t     n_tensors, cap_tensors;
};

/* A growable byte buffer for encoding values. */
typedef struct bn_buf {
    unsigned char *p;
    size_t         len, cap;
    bool           failed;
} bn_buf;

static void bn_buf_put(bn_buf *b, const void *data, size_t n)
{
    if (b->failed)
        return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n)
            cap *= 2;
        unsigned char *grown = bn_malloc(cap, "gguf_writer");
        if (!grown) {
            b->failed = true;
            return;
        }
        if (b->len)
            memcpy(grown, b->p, b->len);
        bn_free(b->p);
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void bn_buf_u32(bn_buf *b, uint32_t v) { bn_buf_put(b, &v, 4); }
static void bn_buf_u64(bn_buf *b, uint64_t v) { bn_buf_put(b, &v, 8); }

static void bn_buf_str(bn_buf *b, const char *s, uint64_t len)
{
    bn_buf_u64(b, len);
    bn_buf_put(b, s, (size_t)len);
}

/* Grows an array of `size`-byte items to hold one more. */
static bool bn_grow(void **items, int64_t n, int64_t *cap, size_t size)
{
    if (n < *cap)
        return true;
    int64_t ncap = *cap ? 2 * *cap : 16;
    void *grown = bn_malloc((size_t)ncap * size, "gguf_writer");
    if (!grown)
        return false;
    if (n)
        memcpy(grown, *items, (size_t)n * size);
    bn_free(*items);
    *items = grown;
    *cap = ncap;
    return true;
}

static char *bn_strdup_tracked(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = bn_malloc(n, "gguf_writer");
    if (c)
        memcpy(c, s, n);
    return c;
}

bn_status bn_gguf_writer_create(bn_gguf_writer **out)
{
    bn_gguf_writer *w = bn_calloc(1, sizeof *w, "gguf_writer");
    if (!w)
        return bn_error_wrap(BN_OK, "creating a GGUF writer");
    *out = w;
    return BN_OK;
}

void bn_gguf_writer_free(bn_gguf_writer *w)
{
    if (!w)
        return;
    for (int64_t i = 0; i < w->n_kv; i++) {
        bn_free(w->kv[i].key);
        bn_free(w->kv[i].enc);
    }
    for (int64_t i = 0; i < w->n_tensors; i++)
        bn_free(w->tensors[i].name);
    bn_free(w->kv);
    bn_free(w->tensors);
    bn_free(w);
}

/* Stores an encoded value under `key`, replacing an earlier one. Takes the buffer. */
static bn_status bn_writer_put(bn_gguf_writer *w, const char *key, bn_buf *b)
{
    if (b->failed) {
        bn_free(b->p);
        return bn_error_wrap(BN_OK, "setting '%s'", key);
    }
    if (!key[0]) {
        bn_free(b->p);
        return bn_error_set(BN_ERR_INVALID_ARG, "a metadata key cannot be empty");
    }
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            bn_free(w->kv[i].enc);
            w->kv[i].enc = b->p;
            w->kv[i].len = b->len;
            return BN_OK;
        }
    }
    char *k = bn_strdup_tracked(key);
    if (!k || !bn_grow((void **)&w->kv, w->n_kv, &w->cap_kv, sizeof *w->kv)) {
        bn_free(k);
        bn_free(b->p);
        return bn_error_wrap(BN_OK, "setting '%s'", key);
    }
    w->kv[w->n_kv++] = (bn_wkv){.key = k, .enc = b->p, .len = b->len};
    return BN_OK;
}

/* Sets a scalar of `type` from `size` bytes. */
static bn_status bn_writer_scalar(bn_gguf_writer *w, const char *key, bn_gguf_type type,
                                  const void *v, size_t size)
{
    bn_buf b = {0};
    bn_buf_u32(&b, (uint32_t)type);
    bn_buf_put(&b, v, size);
    return bn_writer_put(w, key, &b);
}

bn_status bn_gguf_writer_set_u32(bn_gguf_writer *w, const char *key, uint32_t v)
{
    return bn_writer_scalar(w, key, BN_GGUF_UINT32, &v, 4);
}

bn_status bn_gguf_writer_set_i32(bn_gguf_writer *w, const char *key, int32_t v)
{
    return bn_writer_scalar(w, key, BN_GGUF_INT32, &v, 4);
}

bn_status bn_gguf_writer_set_u64(bn_gguf_writer *w, const char *key, uint64_t v)
{
    return bn_writer_scalar(w, key, BN_GGUF_UINT64, &v, 8);
}

bn_status bn_gguf_writer_set_f32(bn_gguf_writer *w, const char *key, float v)
{
    return bn_writer_scalar(w, key, BN_GGUF_FLOAT32, &v, 4);
}

bn_status bn_gguf_writer_set_f64(bn_gguf_writer *w, const char *key, double v)
{
    return bn_writer_scalar(w, key, BN_GGUF_FLOAT64, &v, 8);
}

bn_status bn_gguf_writer_set_bool(bn_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    return bn_writer_scalar(w, key, BN_GGUF_BOOL, &b, 1);
}

bn_status bn_gguf_writer_set_str(bn_gguf_writer *w, const char *key, const char *v)
{
    bn_buf b = {0};
    bn_buf_u32(&b, BN_GGUF_STRING);
    bn_buf_str(&b, v, strlen(v));
    return bn_writer_put(w, key, &b);
}

bn_status bn_gguf_writer_set_array(bn_gguf_writer *w, const char *key,
                                   bn_gguf_type elem_type, const void *data, uint64_t n)
{
    size_t esize = bn_gguf_scalar_size(elem_type);
    size_t bytes;
    if (esize == 0)
        return bn_error_set(BN_ERR_INVALID_ARG, "'%s': arrays of %s are set another way",
                            key, bn_gguf_type_name(elem_type));
    if (bn_mul_overflow_size((size_t)n, esize, &bytes))
        return bn_error_set(BN_ERR_INVALID_ARG, "'%s': array too large", key);
    bn_buf b = {0};
    bn_buf_u32(&b, BN_GGUF_ARRAY);
    bn_buf_u32(&b, (uint32_t)elem_type);
    bn_buf_u64(&b, n);
    bn_buf_put(&b, data, bytes);
    return bn_writer_put(w, key, &b);
}

bn_status bn_gguf_writer_set_str_array(bn_gguf_writer *w, const char *key,
                                       const char *const *strs, uint64_t n)
{
    bn_buf b = {0};
    bn_buf_u32(&b, BN_GGUF_ARRAY);
    bn_buf_u32(&b, BN_GGUF_STRING);
    bn_buf_u64(&b, n);
    for (uint64_t i = 0; i < n; i++)
        bn_buf_str(&b, strs[i], strlen(strs[i]));
    return bn_writer_put(w, key, &b);
}

/* Encodes a value read from a file (payload only, no type tag). */
static void bn_encode_payload(bn_buf *b, const bn_gguf *g, const bn_gguf_value *v)
{
    if (v->type == BN_GGUF_STRING) {
        bn_buf_str(b, v->v.str.ptr, v->v.str.len);
    } else if (v->type == BN_GGUF_ARRAY) {
        bn_buf_u32(b, (uint32_t)v->v.arr.elem_type);
        bn_buf_u64(b, v->v.arr.n);
        const bn_gguf_array *arr = v->v.arr.handle;
        if (arr->items) {
            for (uint64_t i = 0; i < arr->n; i++)
                bn_encode_payload(b, g, &arr->items[i]);
        } else {
            bn_buf_put(b, arr->raw, (size_t)arr->n * bn_gguf_scalar_size(arr->elem_type));
        }
    } else {
        /* scalars: the little-endian bytes of the stored width */
        unsigned char tmp[8];
        size_t size = bn_gguf_scalar_size(v->type);
        if (v->type == BN_GGUF_FLOAT32) {
            float f = (float)v->v.f64;
            memcpy(tmp, &f, 4);
        } else if (v->type == BN_GGUF_FLOAT64) {
            memcpy(tmp, &v->v.f64, 8);
        } else {
            uint64_t u = v->v.u64; /* i64 shares the bits; the low bytes are the value */
            memcpy(tmp, &u, 8);
        }
        bn_buf_put(b, tmp, size);
    }
}

bn_status bn_gguf_writer_copy_kv(bn_gguf_writer *w, const bn_gguf *g, int64_t i)
{
    const char *key = bn_gguf_kv_key(g, i);
    if (!key)
        return bn_error_set(BN_ERR_INVALID_ARG, "copy_kv: no metadata key %lld",
                            (long long)i);
    bn_gguf_value v = bn_gguf_kv_value(g, i);
    bn_buf b = {0};
    bn_buf_u32(&b, (uint32_t)v.type);
    bn_encode_payload(&b, g, &v);
    return bn_writer_put(w, key, &b);
}

bn_status bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name, bn_qtype type,
                                    int n_dims, const int64_t *ne, const void *data,
                                    size_t nbytes)
{
    if (!name[0])
        return bn_error_set(BN_ERR_INVALID_ARG, "a tensor name cannot be empty");
    if (n_dims < 1 || n_dims > BN_GGUF_MAX_DIMS)
        return bn_error_set(BN_ERR_SHAPE, "tensor '%s': %d dimensions (1 to %d allowed)",
                            name, n_dims, BN_GGUF_MAX_DIMS);
    int64_t rows = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1)
            return bn_error_set(BN_ERR_SHAPE, "tensor '%s': dimension %d is %lld", name, d,
                                (long long)ne[d]);
        if (d > 0 && __builtin_mul_overflow(rows, ne[d], &rows))
            return bn_error_set(BN_ERR_SHAPE, "tensor '%s': too many elements", name);
    }
    size_t want;
    bn_status st = bn_qtype_tensor_size(type, ne[0], rows, &want);
    if (st != BN_OK)
        return bn_error_wrap(BN_OK, "tensor '%s'", name);
    if (want != nbytes)
        return bn_error_set(BN_ERR_INVALID_ARG, "tensor '%s': %zu bytes given, a %s tensor "
                            "of that shape has %zu", name, nbytes,
                            bn_qtype_get(type)->name, want);
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return bn_error_set(BN_ERR_INVALID_ARG, "tensor '%s' added twice", name);
    if (!data && nbytes)
        return bn_error_set(BN_ERR_INVALID_ARG, "tensor '%s': no data", name);
    char *n = bn_strdup_tracked(name);
    if (!n || !bn_grow((void **)&w->tensors, w->n_tensors, &w->cap_tensors,
                       sizeof *w->tensors)) {
        bn_free(n);
        return bn_error_wrap(BN_OK, "adding tensor '%s'", name);
    }
    bn_wtensor *t = &w->tensors[w->n_tensors++];
    *t = (bn_wtensor){.name = n, .type = type, .n_dims = n_dims, .data = data,
                      .nbytes = nbytes};
    for (int d = 0; d < BN_GGUF_MAX_DIMS; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    return BN_OK;
}

bn_status bn_gguf_writer_add_tensor_fn(bn_gguf_writer *w, const char *name, bn_qtype type,
                                       int n_dims, const int64_t *ne, size_t nbytes,
                                       bn_gguf_fill_fn fill, void *user)
{
    /* checked and recorded as a tensor with data, then marked as filled at write time */
    static const unsigned char none;
    bn_status st = bn_gguf_writer_add_tensor(w, name, type, n_dims, ne, &none, nbytes);
    if (st != BN_OK)
        return st;
    bn_wtensor *t = &w->tensors[w->n_tensors - 1];
    t->data = NULL;
    t->fill = fill;
    t->fill_user = user;
    return BN_OK;
}

/* ------------------------------------------------------------------ writing */

/* The alignment general.alignment asks for (a u32 power of two), else 32. */
static size_t bn_writer_alignment(const bn_gguf_writer *w)
{
    for (int64_t i = 0; i < w->n_kv; i++) {
        uint32_t type, v;
        memcpy(&type, w->kv[i].enc, 4);
        if (strcmp(w->kv[i].key, "general.alignment") == 0 && type == BN_GGUF_UINT32) {
            memcpy(&v, w->kv[i].enc + 4, 4);
            if (v && (v & (v - 1)) == 0)
                return v;
        }
    }
    return BN_GGUF_DEFAULT_ALIGNMENT;
}

/* Encodes everything before the data section, offsets assigned, padded. */
static bn_status bn_writer_header(const bn_gguf_writer *w, size_t align, bn_buf *b,
                                  uint64_t *data_size)
{
    bn_buf_put(b, BN_GGUF_MAGIC, 4);
    bn_buf_u32(b, 3);
    bn_buf_u64(b, (uint64_t)w->n_tensors);
    bn_buf_u64(b, (uint64_t)w->n_kv);
    for (int64_t i = 0; i < w->n_kv; i++) {
        bn_buf_str(b, w->kv[i].key, strlen(w->kv[i].key));
        bn_buf_put(b, w->kv[i].enc, w->kv[i].len);
    }
    uint64_t offset = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        const bn_wtensor *t = &w->tensors[i];
        bn_buf_str(b, t->name, strlen(t->name));
        bn_buf_u32(b, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++)
            bn_buf_u64(b, (uint64_t)t->ne[d]);
        bn_buf_u32(b, (uint32_t)t->type);
        bn_buf_u64(b, offset);
        offset += (t->nbytes + align - 1) / align * align;
    }
    static const unsigned char zeros[64] = {0};
    size_t pad = (align - b->len % align) % align;
    while (pad > 0) {
        size_t n = pad < sizeof zeros ? pad : sizeof zeros;
        bn_buf_put(b, zeros, n);
        pad -= n;
    }
    *data_size = offset;
    return b->failed ? bn_error_wrap(BN_OK, "encoding the GGUF header") : BN_OK;
}

/* The seal's checksum: FNV-1a over 64-bit little-endian words (a last partial word
 * zero-padded), the state carried across calls in h, and the bytes of a partial word
 * between calls in carry. */
typedef struct bn_seal {
    uint64_t h;
    uint8_t  carry[8];
    size_t   n_carry;
} bn_seal;

#define BN_SEAL_FNV_OFFSET 0xcbf29ce484222325ULL
#define BN_SEAL_FNV_PRIME  0x100000001b3ULL

static inline uint64_t bn_seal_word(uint64_t h, const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return (h ^ v) * BN_SEAL_FNV_PRIME;
}

static void bn_seal_add(bn_seal *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n && s->n_carry) {
        s->carry[s->n_carry++] = *p++;
        n--;
        if (s->n_carry == 8) {
            s->h = bn_seal_word(s->h, s->carry);
            s->n_carry = 0;
        }
    }
    for (; n >= 8; p += 8, n -= 8)
        s->h = bn_seal_word(s->h, p);
    memcpy(s->carry, p, n);
    s->n_carry = n;
}

static uint64_t bn_seal_end(bn_seal *s)
{
    if (s->n_carry) {
        memset(s->carry + s->n_carry, 0, 8 - s->n_carry);
        s->h = bn_seal_word(s->h, s->carry);
        s->n_carry = 0;
    }
    return s->h;
}

uint64_t bn_seal_hash(const void *data, size_t n)
{
    bn_seal s = {.h = BN_SEAL_FNV_OFFSET};
    bn_seal_add(&s, data, n);
    return bn_seal_end(&s);
}

/* bn_out_file_write, adding the bytes to the seal when there is one. */
static bn_status bn_emit_write(bn_out_file *f, bn_seal *seal, const void *data, size_t n)
{
    if (seal)
        bn_seal_add(seal, data, n);
    return bn_out_file_write(f, data, n);
}

/* Writes header and tensors to f, reporting progress. */
static bn_status bn_writer_emit(const bn_gguf_writer *w, bn_out_file *f, const char *path,
                                bn_progress_fn progress, void *user, bn_seal *seal)
{
    size_t align = bn_writer_alignment(w);
    bn_buf header = {0};
    uint64_t data_size;
    bn_status st = bn_writer_header(w, align, &header, &data_size);
    if (st != BN_OK)
        st = bn_error_wrap(BN_OK, "writing %s", path);
    else
        st = bn_emit_write(f, seal, header.p, header.len);
    uint64_t total = header.len + data_size, done = header.len;
    bn_free(header.p);
    static const unsigned char zeros[64] = {0};
    const size_t chunk = (size_t)16 << 20;
    for (int64_t i = 0; st == BN_OK && i < w->n_tensors; i++) {
        const bn_wtensor *t = &w->tensors[i];
        const unsigned char *bytes = t->data;
        unsigned char *made = NULL;
        if (t->fill) {
            made = bn_malloc(t->nbytes, "gguf_writer");
            st = made ? t->fill(t->fill_user, made, t->nbytes)
                      : bn_error_wrap(BN_OK, "tensor '%s'", t->name);
            if (st != BN_OK)
                st = bn_error_wrap(BN_OK, "tensor '%s'", t->name);
            bytes = made;
        }
        for (size_t off = 0; st == BN_OK && off < t->nbytes; off += chunk) {
            size_t n = t->nbytes - off < chunk ? t->nbytes - off : chunk;
            st = bn_emit_write(f, seal, bytes + off, n);
            done += n;
            if (st == BN_OK && progress && !progress(done, total, user))
                st = bn_error_set(BN_ERR_IO, "writing %s: cancelled", path);
        }
        bn_free(made);
        size_t pad = (align - t->nbytes % align) % align;
        if (st == BN_OK && pad)
            st = bn_emit_write(f, seal, zeros, pad);
        done += pad;
    }
    if (st == BN_OK && progress && !progress(total, total, user))
        st = bn_error_set(BN_ERR_IO, "writing %s: cancelled", path);
    return st;
}

bn_status bn_gguf_writer_write(bn_gguf_writer *w, const char *path,
                               bn_progress_fn progress, void *user)
{
    bn_out_file *f = NULL;
    bn_status st = bn_out_file_open(path, &f);
    if (st != BN_OK)
        return st;
    st = bn_writer_emit(w, f, path, progress, user, NULL);
    if (st == BN_OK)
        return bn_out_file_commit(f);
    bn_out_file_discard(f);
    return st;
}

bn_status bn_gguf_writer_write_sealed(bn_gguf_writer *w, const char *path,
                                      bn_progress_fn progress, void *user)
{
    bn_out_file *f = NULL;
    bn_status st = bn_out_file_open(path, &f);
    if (st != BN_OK)
        return st;
    bn_seal seal = {.h = BN_SEAL_FNV_OFFSET};
    st = bn_writer_emit(w, f, path, progress, user, &seal);
    if (st == BN_OK) {
        uint8_t trailer[BN_SEAL_BYTES];
        memcpy(trailer, BN_SEAL_MAGIC, 8);
        uint64_t h = bn_seal_end(&seal);
        memcpy(trailer + 8, &h, 8);
        st = bn_out_file_write(f, trailer, sizeof trailer);
    }
    if (st == BN_OK)
        return bn_out_file_commit(f);
    bn_out_file_discard(f);
    return st;
}

bn_status bn_gguf_seal_check(const void *data, size_t size, size_t *payload)
{
    if (size < BN_SEAL_BYTES || memcmp((const uint8_t *)data + size - BN_SEAL_BYTES,
                                       BN_SEAL_MAGIC, 8) != 0)
        return bn_error_set(BN_ERR_FORMAT, "no checksum at its end (truncated, or not "
                            "written by this program)");
    uint64_t want;
    memcpy(&want, (const uint8_t *)data + size - 8, 8);
    uint64_t got = bn_seal_hash(data, size - BN_SEAL_BYTES);
    if (got != want)
        return bn_error_set(BN_ERR_FORMAT, "checksum mismatch (%016llx, the file says "
                            "%016llx): the file is damaged", (unsigned long long)got,
                            (unsigned long long)want);
    *payload = size - BN_SEAL_BYTES;
    return BN_OK;
}
