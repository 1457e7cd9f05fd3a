/*
 * gguf_internal.h - what the GGUF reader and writer share: the on-disk constants and
 * the array node behind bn_gguf_value.v.arr.handle.
 */
#ifndef BN_IO_GGUF_INTERNAL_H
#define BN_IO_GGUF_INTERNAL_H

#include "core/internal.h"

#define BN_GGUF_MAGIC             "GGUF"
#define BN_GGUF_DEFAULT_ALIGNMENT 32
#define BN_GGUF_MAX_DIMS          4
#define BN_GGUF_MAX_NESTING       8    /* arrays of arrays, at most this deep */

/* An array value. Scalar elements are read from `raw` (in the file, little-endian,
 * possibly unaligned); string and array elements were decoded into `items`. */
typedef struct bn_gguf_array {
    bn_gguf_type         elem_type;
    uint64_t             n;
    const unsigned char *raw;
    bn_gguf_value       *items;
} bn_gguf_array;

/* Bytes of one scalar element of `type`; 0 for STRING, ARRAY and invalid types. */
size_t bn_gguf_scalar_size(bn_gguf_type type);

/* Name of a value type ("uint32", "string", ...). */
const char *bn_gguf_type_name(bn_gguf_type type);

#endif
