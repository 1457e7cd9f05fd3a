/*
 * fixture.h - reads the .bnfx reference arrays that scripts/fixtures/ writes with
 * NumPy (format described in scripts/fixtures/bnfx.py).
 */
#ifndef BN_TEST_FIXTURE_H
#define BN_TEST_FIXTURE_H

#include <stdint.h>

#include "bitnet.h"

enum { FX_F32 = 0, FX_F64 = 1, FX_I32 = 2, FX_U16 = 3, FX_I8 = 4, FX_I64 = 5, FX_U8 = 6 };

typedef struct fx_array {
    const char *name;
    int         type;      /* FX_* */
    int         ndim;
    int64_t     shape[8];
    int64_t     numel;
    const void *data;      /* points into the loaded file */
} fx_array;

typedef struct fx_file fx_file;

/* Load BN_FIXTURE_DIR/<name>; prints why and returns NULL on failure. */
fx_file *fx_open(const char *name);
void fx_close(fx_file *f);

/* The array called `name`; prints and returns NULL when absent. */
const fx_array *fx_get(const fx_file *f, const char *name);

/* A new f32 CPU tensor with the array's contents (f32 or f64 arrays); NULL on error. */
bn_tensor *fx_tensor(const fx_array *a);

/* Element i as double, whatever the stored type. */
double fx_at(const fx_array *a, int64_t i);

#endif
