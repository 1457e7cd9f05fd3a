/*
 * strmap.c - a hash map from byte strings to int32 values (open addressing, linear
 * probing, FNV-1a). Keys are not copied: they must outlive the map (the tokenizers
 * keep them in their arena). Used for vocabulary and merge lookups.
 */
#include <string.h>

#include "core/internal.h"

struct bn_strmap {
    const char **keys;
    uint32_t    *lens;
    int32_t     *values;
    size_t       cap;      /* a power of two */
    size_t       count;
};

static uint64_t bn_strmap_hash(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    return h;
}

bn_status bn_strmap_create(size_t expected, bn_strmap **out)
{
    size_t cap = 16;
    while (cap < expected * 2 + 1)
        cap *= 2;
    bn_strmap *m = bn_calloc(1, sizeof *m, "strmap");
    if (m) {
        m->cap = cap;
        m->keys = bn_calloc(cap, sizeof *m->keys, "strmap");
        m->lens = bn_calloc(cap, sizeof *m->lens, "strmap");
        m->values = bn_calloc(cap, sizeof *m->values, "strmap");
    }
    if (!m || !m->keys || !m->lens || !m->values) {
        bn_strmap_free(m);
        return bn_error_wrap(BN_OK, "creating a map of %zu entries", expected);
    }
    *out = m;
    return BN_OK;
}

void bn_strmap_free(bn_strmap *m)
{
    if (!m)
        return;
    bn_free(m->keys);
    bn_free(m->lens);
    bn_free(m->values);
    bn_free(m);
}

/* The slot of key, or of the empty slot where it would go. */
static size_t bn_strmap_slot(const bn_strmap *m, const char *key, size_t len)
{
    size_t i = (size_t)bn_strmap_hash(key, len) & (m->cap - 1);
    while (m->keys[i] && (m->lens[i] != len || memcmp(m->keys[i], key, len) != 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

/* Doubles the table. */
static bn_status bn_strmap_grow(bn_strmap *m)
{
    bn_strmap bigger = {.cap = m->cap * 2};
    bigger.keys = bn_calloc(bigger.cap, sizeof *bigger.keys, "strmap");
    bigger.lens = bn_calloc(bigger.cap, sizeof *bigger.lens, "strmap");
    bigger.values = bn_calloc(bigger.cap, sizeof *bigger.values, "strmap");
    if (!bigger.keys || !bigger.lens || !bigger.values) {
        bn_free(bigger.keys);
        bn_free(bigger.lens);
        bn_free(bigger.values);
        return bn_error_wrap(BN_OK, "growing a map");
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = bn_strmap_slot(&bigger, m->keys[i], m->lens[i]);
        bigger.keys[j] = m->keys[i];
        bigger.lens[j] = m->lens[i];
        bigger.values[j] = m->values[i];
    }
    bn_free(m->keys);
    bn_free(m->lens);
    bn_free(m->values);
    m->keys = bigger.keys;
    m->lens = bigger.lens;
    m->values = bigger.values;
    m->cap = bigger.cap;
    return BN_OK;
}

bn_status bn_strmap_put(bn_strmap *m, const char *key, size_t len, int32_t value,
                        bool *replaced)
{
    if ((m->count + 1) * 2 > m->cap) {
        bn_status st = bn_strmap_grow(m);
        if (st != BN_OK)
            return st;
    }
    size_t i = bn_strmap_slot(m, key, len);
    bool existed = m->keys[i] != NULL;
    if (!existed) {
        m->keys[i] = key;
        m->lens[i] = (uint32_t)len;
        m->count++;
    }
    m->values[i] = value;
    if (replaced)
        *replaced = existed;
    return BN_OK;
}

int32_t bn_strmap_get(const bn_strmap *m, const char *key, size_t len, int32_t missing)
{
    size_t i = bn_strmap_slot(m, key, len);
    return m->keys[i] ? m->values[i] : missing;
}

size_t bn_strmap_count(const bn_strmap *m)
{
    return m->count;
}
