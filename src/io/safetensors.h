/*
 * safetensors.h - reading Hugging Face safetensors files, single or sharded.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of JSON (an
 * object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]}, plus an
 * optional "__metadata__" object of strings), then the data section, which the
 * tensors' offsets (relative to its start) must cover exactly, without gaps or
 * overlaps. Files are mapped read-only; every length, dtype, shape and offset is
 * validated before a tensor is handed out, and a bad file is BN_ERR_FORMAT with a
 * message saying what and where. Tensor data is row-major, little-endian, and may be
 * unaligned: read it with memcpy or bn_st_to_f32.
 */
#ifndef BN_IO_SAFETENSORS_H
#define BN_IO_SAFETENSORS_H

#include "core/internal.h"

#define BN_ST_MAX_DIMS     8
#define BN_ST_MAX_HEADER   ((uint64_t)100 << 20) /* as the reference reader's limit */
#define BN_ST_MAX_NESTING  4                     /* {"t": {"shape": [..]}} is 3 deep */

/* The element types of the format, by the names the files use. */
typedef enum bn_st_dtype {
    BN_ST_BOOL = 0, BN_ST_U8, BN_ST_I8, BN_ST_F8_E4M3, BN_ST_F8_E5M2, BN_ST_I16,
    BN_ST_U16, BN_ST_F16, BN_ST_BF16, BN_ST_I32, BN_ST_U32, BN_ST_F32, BN_ST_I64,
    BN_ST_U64, BN_ST_F64, BN_ST_DTYPE_COUNT
} bn_st_dtype;

typedef struct bn_st_tensor {
    const char *name;
    bn_st_dtype dtype;
    int         n_dims;                  /* 0 (a scalar) .. BN_ST_MAX_DIMS */
    int64_t     shape[BN_ST_MAX_DIMS];   /* row-major: shape[n_dims-1] varies fastest */
    int64_t     numel;
    uint64_t    begin, end;              /* offsets in the data section */
    const void *data;                    /* into the map; end - begin bytes */
    int         file;                    /* index of its file in a bn_st_model */
} bn_st_tensor;

typedef struct bn_safetensors bn_safetensors;

/* Name ("F32", "BF16"...) and bytes per element of a dtype. */
const char *bn_st_dtype_name(bn_st_dtype dt);
size_t bn_st_dtype_size(bn_st_dtype dt);

/* Parse a safetensors image in memory (not copied: it must outlive the handle). */
bn_status bn_st_open_memory(const void *data, size_t size, bn_safetensors **out);

/* Map and validate a file. Messages name the path. */
bn_status bn_st_open(const char *path, bn_safetensors **out);

void bn_st_close(bn_safetensors *s);

int64_t bn_st_n_tensors(const bn_safetensors *s);
/* Tensor i in the order of their offsets; NULL out of range. */
const bn_st_tensor *bn_st_get(const bn_safetensors *s, int64_t i);
/* The tensor called `name`, or NULL. */
const bn_st_tensor *bn_st_find(const bn_safetensors *s, const char *name);
/* The value of a __metadata__ key, or NULL. */
const char *bn_st_metadata(const bn_safetensors *s, const char *key);

/* Give back the resident pages of a tensor's data once it has been used (a mapped
 * file only): the bytes stay readable, read again from the file if touched. */
void bn_st_release(const bn_safetensors *s, const bn_st_tensor *t);

/* Convert a float tensor (F32, F16, BF16, F64) to f32, numel values into dst; other
 * dtypes are BN_ERR_DTYPE naming the tensor. */
bn_status bn_st_to_f32(const bn_st_tensor *t, float *dst);

/* A checkpoint folder: model.safetensors, or the shards that
 * model.safetensors.index.json's weight_map names (each file opened once; every
 * tensor of the map must be in the file it names, and no name may be in two files). */
typedef struct bn_st_model bn_st_model;

bn_status bn_st_model_open(const char *dir, bn_st_model **out);
void bn_st_model_close(bn_st_model *m);
int bn_st_model_n_files(const bn_st_model *m);
const bn_safetensors *bn_st_model_file(const bn_st_model *m, int i);
/* The tensor called `name` in any of the files, or NULL. */
const bn_st_tensor *bn_st_model_find(const bn_st_model *m, const char *name);
/* Release a tensor's pages (bn_st_release on its file). */
void bn_st_model_release(const bn_st_model *m, const bn_st_tensor *t);

#endif
