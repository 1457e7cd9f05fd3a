/*
 * safetensors.c - the safetensors reader (format in safetensors.h).
 *
 * The rules are those of the format's reference reader: a header of at most 100 MiB
 * that is a JSON object (padding spaces allowed after it), unique keys, known dtypes,
 * shapes whose byte size equals their data_offsets' extent, and offsets that tile the
 * data section exactly (sorted, no gap, no overlap, ending at the end of the file).
 * Before jansson sees the header, a scan refuses nesting deeper than the format ever
 * needs, so that a crafted header cannot make the JSON parser recurse or allocate
 * without bound; jansson is then asked to refuse duplicate keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "io/safetensors.h"

struct bn_safetensors {
    const unsigned char *base;       /* the image */
    size_t               size;
    bool                 mapped;     /* base is our map, unmapped at close */
    size_t               data_start; /* 8 + header length */
    bn_st_tensor        *tensors;    /* sorted by offset */
    int64_t              n_tensors;
    char               **meta_keys, **meta_values;
    int64_t              n_meta;
    bn_strmap           *by_name;    /* name -> index */
};

static const struct {
    const char *name;
    size_t      size;
} bn_st_dtypes[BN_ST_DTYPE_COUNT] = {
    [BN_ST_BOOL] = {"BOOL", 1},       [BN_ST_U8] = {"U8", 1},
    [BN_ST_I8] = {"I8", 1},           [BN_ST_F8_E4M3] = {"F8_E4M3", 1},
    [BN_ST_F8_E5M2] = {"F8_E5M2", 1}, [BN_ST_I16] = {"I16", 2},
    [BN_ST_U16] = {"U16", 2},         [BN_ST_F16] = {"F16", 2},
    [BN_ST_BF16] = {"BF16", 2},       [BN_ST_I32] = {"I32", 4},
    [BN_ST_U32] = {"U32", 4},         [BN_ST_F32] = {"F32", 4},
    [BN_ST_I64] = {"I64", 8},         [BN_ST_U64] = {"U64", 8},
    [BN_ST_F64] = {"F64", 8},
};

const char *bn_st_dtype_name(bn_st_dtype dt)
{
    return (unsigned)dt < BN_ST_DTYPE_COUNT ? bn_st_dtypes[dt].name : "?";
}

size_t bn_st_dtype_size(bn_st_dtype dt)
{
    return (unsigned)dt < BN_ST_DTYPE_COUNT ? bn_st_dtypes[dt].size : 0;
}

/* The nesting depth of a JSON text, strings skipped; stops early past `limit`. */
static int bn_st_json_depth(const unsigned char *p, size_t n, int limit)
{
    int depth = 0, most = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > most && (most = depth) > limit)
                return most;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return most;
}

/* A non-negative integer that fits int64 (JSON integers only). */
static bool bn_st_json_uint(const json_t *v, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* Fills t from the header's entry `name`. */
static bn_status bn_st_parse_entry(const char *name, const json_t *e, bn_st_tensor *t)
{
    if (!json_is_object(e))
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s': its entry is not an object", name);
    const char *dt = json_string_value(json_object_get(e, "dtype"));
    const json_t *shape = json_object_get(e, "shape");
    const json_t *offs = json_object_get(e, "data_offsets");
    if (!dt)
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s': no dtype string", name);
    if (!json_is_array(shape))
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s': no shape array", name);
    if (!json_is_array(offs) || json_array_size(offs) != 2)
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s': data_offsets is not an array of "
                            "two offsets", name);
    if (json_object_size(e) != 3)
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s': %zu members (dtype, shape and "
                            "data_offsets expected)", name, json_object_size(e));
    t->dtype = BN_ST_DTYPE_COUNT;
    for (int i = 0; i < BN_ST_DTYPE_COUNT; i++)
        if (strcmp(dt, bn_st_dtypes[i].name) == 0)
            t->dtype = (bn_st_dtype)i;
    if (t->dtype == BN_ST_DTYPE_COUNT)
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s': unknown dtype '%.40s'", name, dt);
    if (json_array_size(shape) > BN_ST_MAX_DIMS)
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s': %zu dimensions (at most %d)",
                            name, json_array_size(shape), BN_ST_MAX_DIMS);
    t->n_dims = (int)json_array_size(shape);
    int64_t numel = 1;
    for (int d = 0; d < t->n_dims; d++) {
        if (!bn_st_json_uint(json_array_get(shape, (size_t)d), &t->shape[d]))
            return bn_error_set(BN_ERR_FORMAT, "tensor '%s': dimension %d is not a "
                                "non-negative integer", name, d);
        if (__builtin_mul_overflow(numel, t->shape[d], &numel))
            return bn_error_set(BN_ERR_FORMAT, "tensor '%s': the shape's element count "
                                "overflows", name);
    }
    t->numel = numel;
    int64_t begin, end;
    if (!bn_st_json_uint(json_array_get(offs, 0), &begin) ||
        !bn_st_json_uint(json_array_get(offs, 1), &end) || end < begin)
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s': data_offsets must be two "
                            "integers 0 <= begin <= end", name);
    t->begin = (uint64_t)begin;
    t->end = (uint64_t)end;
    size_t bytes;
    if (bn_mul_overflow_size((size_t)numel, bn_st_dtype_size(t->dtype), &bytes))
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s': the shape's byte size overflows",
                            name);
    if (bytes != t->end - t->begin)
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s': a %s tensor of %lld elements "
                            "takes %zu bytes, its data_offsets [%llu, %llu] hold %llu",
                            name, bn_st_dtype_name(t->dtype), (long long)numel, bytes,
                            (unsigned long long)t->begin, (unsigned long long)t->end,
                            (unsigned long long)(t->end - t->begin));
    return BN_OK;
}

/* Copies the __metadata__ object (strings only). */
static bn_status bn_st_parse_meta(bn_safetensors *s, const json_t *meta)
{
    if (!json_is_object(meta))
        return bn_error_set(BN_ERR_FORMAT, "__metadata__ is not an object");
    size_t n = json_object_size(meta);
    s->meta_keys = bn_calloc(n + 1, sizeof *s->meta_keys, "safetensors");
    s->meta_values = bn_calloc(n + 1, sizeof *s->meta_values, "safetensors");
    if (!s->meta_keys || !s->meta_values)
        return bn_error_wrap(BN_OK, "reading __metadata__");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)meta, key, v) {
        if (!json_is_string(v))
            return bn_error_set(BN_ERR_FORMAT, "__metadata__ '%.80s' is not a string", key);
        size_t kl = strlen(key) + 1, vl = json_string_length(v) + 1;
        char *k = bn_malloc(kl, "safetensors"), *val = bn_malloc(vl, "safetensors");
        s->meta_keys[s->n_meta] = k;
        s->meta_values[s->n_meta++] = val;
        if (!k || !val)
            return bn_error_wrap(BN_OK, "reading __metadata__");
        memcpy(k, key, kl);
        memcpy(val, json_string_value(v), vl);
    }
    return BN_OK;
}

static int bn_st_cmp_offset(const void *a, const void *b)
{
    const bn_st_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Checks that the sorted tensors tile the data section of data_size bytes. */
static bn_status bn_st_check_tiling(const bn_safetensors *s, uint64_t data_size)
{
    uint64_t at = 0;
    for (int64_t i = 0; i < s->n_tensors; i++) {
        const bn_st_tensor *t = &s->tensors[i];
        if (t->begin < at)
            return bn_error_set(BN_ERR_FORMAT, "tensor '%s' (data bytes %llu..%llu) "
                                "overlaps tensor '%s' (bytes %llu..%llu)", t->name,
                                (unsigned long long)t->begin, (unsigned long long)t->end,
                                s->tensors[i - 1].name,
                                (unsigned long long)s->tensors[i - 1].begin,
                                (unsigned long long)s->tensors[i - 1].end);
        if (t->begin > at)
            return bn_error_set(BN_ERR_FORMAT, "data bytes %llu..%llu belong to no tensor "
                                "(a gap before tensor '%s')", (unsigned long long)at,
                                (unsigned long long)t->begin, t->name);
        if (t->end > data_size)
            return bn_error_set(BN_ERR_FORMAT, "truncated: tensor '%s' ends at data byte "
                                "%llu, the data section has %llu bytes", t->name,
                                (unsigned long long)t->end,
                                (unsigned long long)data_size);
        at = t->end;
    }
    if (at != data_size)
        return bn_error_set(BN_ERR_FORMAT, "data bytes %llu..%llu after the last tensor "
                            "belong to no tensor", (unsigned long long)at,
                            (unsigned long long)data_size);
    return BN_OK;
}

/* Parses the JSON header of s (already bounded by the caller) into its tensors. */
static bn_status bn_st_parse_header(bn_safetensors *s, const unsigned char *hdr, size_t len)
{
    if (len == 0 || hdr[0] != '{')
        return bn_error_set(BN_ERR_FORMAT, "the header is not a JSON object");
    if (bn_st_json_depth(hdr, len, BN_ST_MAX_NESTING) > BN_ST_MAX_NESTING)
        return bn_error_set(BN_ERR_FORMAT, "the header nests deeper than %d levels",
                            BN_ST_MAX_NESTING);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)hdr, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return bn_error_set(BN_ERR_FORMAT, "the header is not valid JSON: %s (byte %d)",
                            jerr.text, jerr.position);
    bn_status st = json_is_object(root) ? BN_OK
                 : bn_error_set(BN_ERR_FORMAT, "the header is not a JSON object");
    size_t n = st == BN_OK ? json_object_size(root) : 0;
    if (st == BN_OK && !(s->tensors = bn_calloc(n + 1, sizeof *s->tensors, "safetensors")))
        st = bn_error_wrap(BN_OK, "reading the header");
    if (st == BN_OK)
        st = bn_strmap_create(n + 1, &s->by_name);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (st != BN_OK)
            break;
        if (strcmp(key, "__metadata__") == 0) {
            st = bn_st_parse_meta(s, v);
            continue;
        }
        if (!key[0]) {
            st = bn_error_set(BN_ERR_FORMAT, "a tensor with an empty name");
            break;
        }
        bn_st_tensor *t = &s->tensors[s->n_tensors];
        size_t kl = strlen(key) + 1;
        char *name = bn_malloc(kl, "safetensors");
        if (!name) {
            st = bn_error_wrap(BN_OK, "reading the header");
            break;
        }
        memcpy(name, key, kl);
        t->name = name;
        s->n_tensors++;
        st = bn_st_parse_entry(name, v, t);
    }
    json_decref(root);
    if (st != BN_OK)
        return st;
    qsort(s->tensors, (size_t)s->n_tensors, sizeof *s->tensors, bn_st_cmp_offset);
    st = bn_st_check_tiling(s, s->size - s->data_start);
    for (int64_t i = 0; st == BN_OK && i < s->n_tensors; i++) {
        bn_st_tensor *t = &s->tensors[i];
        t->data = s->base + s->data_start + t->begin;
        st = bn_strmap_put(s->by_name, t->name, strlen(t->name), (int32_t)i, NULL);
    }
    return st;
}

/* Validates s->base / s->size. */
static bn_status bn_st_parse(bn_safetensors *s)
{
    if (s->size < 8)
        return bn_error_set(BN_ERR_FORMAT, "%zu bytes: too short for a safetensors "
                            "header length (8 bytes)", s->size);
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--)
        len = len << 8 | s->base[i];
    if (len > BN_ST_MAX_HEADER)
        return bn_error_set(BN_ERR_FORMAT, "header length %llu is larger than the %llu "
                            "bytes allowed", (unsigned long long)len,
                            (unsigned long long)BN_ST_MAX_HEADER);
    if (len > s->size - 8)
        return bn_error_set(BN_ERR_FORMAT, "header length %llu runs past the end of the "
                            "file (%zu bytes)", (unsigned long long)len, s->size);
    s->data_start = 8 + (size_t)len;
    return bn_st_parse_header(s, s->base + 8, (size_t)len);
}

void bn_st_close(bn_safetensors *s)
{
    if (!s)
        return;
    for (int64_t i = 0; i < s->n_tensors; i++)
        bn_free((void *)s->tensors[i].name);
    for (int64_t i = 0; i < s->n_meta; i++) {
        bn_free(s->meta_keys[i]);
        bn_free(s->meta_values[i]);
    }
    bn_free(s->meta_keys);
    bn_free(s->meta_values);
    bn_free(s->tensors);
    bn_strmap_free(s->by_name);
    if (s->mapped && s->size)
        munmap((void *)s->base, s->size);
    bn_free(s);
}

bn_status bn_st_open_memory(const void *data, size_t size, bn_safetensors **out)
{
    *out = NULL;
    bn_safetensors *s = bn_calloc(1, sizeof *s, "safetensors");
    if (!s)
        return bn_error_wrap(BN_OK, "reading safetensors");
    s->base = data;
    s->size = size;
    bn_status st = bn_st_parse(s);
    if (st != BN_OK) {
        bn_st_close(s);
        return st;
    }
    *out = s;
    return BN_OK;
}

bn_status bn_st_open(const char *path, bn_safetensors **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bn_error_set(BN_ERR_IO, "opening %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return bn_error_set(BN_ERR_IO, "opening %s: not a regular file", path);
    }
    void *map = NULL;
    if (sb.st_size > 0) {
        map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int err = errno;
            close(fd);
            return bn_error_set(BN_ERR_IO, "mapping %s: %s", path, strerror(err));
        }
    }
    close(fd);
    bn_safetensors *s = bn_calloc(1, sizeof *s, "safetensors");
    if (!s) {
        if (map)
            munmap(map, (size_t)sb.st_size);
        return bn_error_wrap(BN_OK, "reading %s", path);
    }
    s->base = map;
    s->size = (size_t)sb.st_size;
    s->mapped = map != NULL;
    bn_status st = bn_st_parse(s);
    if (st != BN_OK) {
        bn_st_close(s);
        return bn_error_wrap(BN_OK, "reading %s", path);
    }
    *out = s;
    return BN_OK;
}

int64_t bn_st_n_tensors(const bn_safetensors *s)
{
    return s->n_tensors;
}

const bn_st_tensor *bn_st_get(const bn_safetensors *s, int64_t i)
{
    return i >= 0 && i < s->n_tensors ? &s->tensors[i] : NULL;
}

const bn_st_tensor *bn_st_find(const bn_safetensors *s, const char *name)
{
    int32_t i = bn_strmap_get(s->by_name, name, strlen(name), -1);
    return i >= 0 ? &s->tensors[i] : NULL;
}

const char *bn_st_metadata(const bn_safetensors *s, const char *key)
{
    for (int64_t i = 0; i < s->n_meta; i++)
        if (strcmp(s->meta_keys[i], key) == 0)
            return s->meta_values[i];
    return NULL;
}

void bn_st_release(const bn_safetensors *s, const bn_st_tensor *t)
{
    if (!s->mapped)
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)t->data, b = a + (t->end - t->begin);
    a = (a + page - 1) / page * page;
    b = b / page * page;
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
}

bn_status bn_st_to_f32(const bn_st_tensor *t, float *dst)
{
    const unsigned char *p = t->data;
    int64_t n = t->numel;
    switch (t->dtype) {
    case BN_ST_F32:
        memcpy(dst, p, (size_t)n * 4);
        return BN_OK;
    case BN_ST_F16:
    case BN_ST_BF16:
        if ((uintptr_t)p % 2 == 0) {   /* the row converters take aligned halves */
            if (t->dtype == BN_ST_F16)
                bn_f16_to_f32_row((const uint16_t *)(const void *)p, dst, n);
            else
                bn_bf16_to_f32_row((const uint16_t *)(const void *)p, dst, n);
            return BN_OK;
        }
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = t->dtype == BN_ST_F16 ? bn_f16_to_f32(h) : bn_bf16_to_f32(h);
        }
        return BN_OK;
    case BN_ST_F64:
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        return BN_OK;
    default:
        return bn_error_set(BN_ERR_DTYPE, "tensor '%s': dtype %s is not a float type",
                            t->name, bn_st_dtype_name(t->dtype));
    }
}

/* ------------------------------------------------------------------ sharded */

struct bn_st_model {
    bn_safetensors **files;
    char           **names;      /* file names, for messages */
    int              n_files;
    bn_strmap       *by_name;    /* tensor name -> file index */
};

void bn_st_model_close(bn_st_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_files; i++) {
        bn_st_close(m->files[i]);
        bn_free(m->names[i]);
    }
    bn_free(m->files);
    bn_free(m->names);
    bn_strmap_free(m->by_name);
    bn_free(m);
}

/* Opens dir/name as file m->n_files and indexes its tensors (a name already in
 * another file is an error). */
static bn_status bn_st_model_add(bn_st_model *m, const char *dir, const char *name)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return bn_error_set(BN_ERR_INVALID_ARG, "path too long: %s/%s", dir, name);
    size_t nl = strlen(name) + 1;
    char *copy = bn_malloc(nl, "safetensors");
    if (!copy)
        return bn_error_wrap(BN_OK, "opening %s", path);
    memcpy(copy, name, nl);
    int f = m->n_files++;     /* counted at once, so that close frees the name */
    m->names[f] = copy;
    bn_status st = bn_st_open(path, &m->files[f]);
    if (st != BN_OK)
        return st;
    bn_safetensors *s = m->files[f];
    for (int64_t i = 0; i < s->n_tensors; i++) {
        const char *tn = s->tensors[i].name;
        int32_t other = bn_strmap_get(m->by_name, tn, strlen(tn), -1);
        if (other >= 0)
            return bn_error_set(BN_ERR_FORMAT, "tensor '%s' is in both %s and %s", tn,
                                m->names[other], name);
        s->tensors[i].file = f;
        st = bn_strmap_put(m->by_name, tn, strlen(tn), f, NULL);
        if (st != BN_OK)
            return st;
    }
    return BN_OK;
}

/* The shards of an index file: weight_map's distinct file names, each opened once;
 * every mapped tensor must be in the file named for it. */
static bn_status bn_st_model_shards(bn_st_model *m, const char *dir, const char *ipath)
{
    json_error_t jerr;
    json_t *root = json_load_file(ipath, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return bn_error_set(BN_ERR_FORMAT, "%s: not valid JSON: %s (line %d)", ipath,
                            jerr.text, jerr.line);
    const json_t *map = json_object_get(root, "weight_map");
    bn_status st = json_is_object(map) && json_object_size(map) > 0 ? BN_OK
                 : bn_error_set(BN_ERR_FORMAT, "%s: no weight_map object", ipath);
    size_t most = st == BN_OK ? json_object_size(map) : 0;
    if (st == BN_OK && (!(m->files = bn_calloc(most, sizeof *m->files, "safetensors")) ||
                        !(m->names = bn_calloc(most, sizeof *m->names, "safetensors"))))
        st = bn_error_wrap(BN_OK, "reading %s", ipath);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)map, key, v) {
        if (st != BN_OK)
            break;
        const char *file = json_string_value(v);
        if (!file || !file[0] || strchr(file, '/') || file[0] == '.') {
            st = bn_error_set(BN_ERR_FORMAT, "%s: tensor '%s' maps to '%s', not a file "
                              "name in the folder", ipath, key, file ? file : "(not a string)");
            break;
        }
        bool seen = false;
        for (int i = 0; i < m->n_files && !seen; i++)
            seen = strcmp(m->names[i], file) == 0;
        if (!seen)
            st = bn_st_model_add(m, dir, file);
    }
    json_object_foreach((json_t *)map, key, v) {
        if (st != BN_OK)
            break;
        int32_t f = bn_strmap_get(m->by_name, key, strlen(key), -1);
        if (f < 0 || strcmp(m->names[f], json_string_value(v)) != 0)
            st = bn_error_set(BN_ERR_FORMAT, "%s: tensor '%s' is not in %s", ipath, key,
                              json_string_value(v));
    }
    json_decref(root);
    return st;
}

bn_status bn_st_model_open(const char *dir, bn_st_model **out)
{
    *out = NULL;
    bn_st_model *m = bn_calloc(1, sizeof *m, "safetensors");
    if (!m)
        return bn_error_wrap(BN_OK, "opening %s", dir);
    bn_status st = bn_strmap_create(1024, &m->by_name);
    char ipath[4096];
    snprintf(ipath, sizeof ipath, "%s/model.safetensors.index.json", dir);
    struct stat sb;
    if (st == BN_OK && stat(ipath, &sb) == 0) {
        st = bn_st_model_shards(m, dir, ipath);
    } else if (st == BN_OK) {
        snprintf(ipath, sizeof ipath, "%s/model.safetensors", dir);
        if (stat(ipath, &sb) != 0)
            st = bn_error_set(BN_ERR_IO, "%s: neither model.safetensors nor "
                              "model.safetensors.index.json is there", dir);
        else if (!(m->files = bn_calloc(1, sizeof *m->files, "safetensors")) ||
                 !(m->names = bn_calloc(1, sizeof *m->names, "safetensors")))
            st = bn_error_wrap(BN_OK, "opening %s", dir);
        else
            st = bn_st_model_add(m, dir, "model.safetensors");
    }
    if (st != BN_OK) {
        bn_st_model_close(m);
        return st;
    }
    *out = m;
    return BN_OK;
}

int bn_st_model_n_files(const bn_st_model *m)
{
    return m->n_files;
}

const bn_safetensors *bn_st_model_file(const bn_st_model *m, int i)
{
    return i >= 0 && i < m->n_files ? m->files[i] : NULL;
}

const bn_st_tensor *bn_st_model_find(const bn_st_model *m, const char *name)
{
    int32_t f = bn_strmap_get(m->by_name, name, strlen(name), -1);
    return f >= 0 && m->files[f] ? bn_st_find(m->files[f], name) : NULL;
}

void bn_st_model_release(const bn_st_model *m, const bn_st_tensor *t)
{
    if (t->file >= 0 && t->file < m->n_files)
        bn_st_release(m->files[t->file], t);
}
