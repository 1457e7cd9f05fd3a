/* fixture.c - loader for .bnfx files (see fixture.h). */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BN_FIXTURE_DIR
#error "BN_FIXTURE_DIR must be defined by the build"
#endif

struct fx_file {
    unsigned char *bytes;
    size_t         size;
    int            count;
    fx_array      *arrays;
    char         **names;
    void         **datas;   /* each array copied out so its elements are aligned */
};

static const size_t fx_type_size[] = {4, 8, 4, 2, 1, 8, 1};

static int fx_read_u32(const fx_file *f, size_t *pos, uint32_t *v)
{
    if (f->size - *pos < 4)
        return 0;
    memcpy(v, f->bytes + *pos, 4);
    *pos += 4;
    return 1;
}

fx_file *fx_open(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", BN_FIXTURE_DIR, name);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "fixture %s: cannot open\n", path);
        return NULL;
    }
    fx_file *f = calloc(1, sizeof *f);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->size = len > 0 ? (size_t)len : 0;
    f->bytes = malloc(f->size ? f->size : 1);
    if (fread(f->bytes, 1, f->size, fp) != f->size || f->size < 12 ||
        memcmp(f->bytes, "BNFX", 4) != 0) {
        fprintf(stderr, "fixture %s: not a BNFX file\n", path);
        fclose(fp);
        fx_close(f);
        return NULL;
    }
    fclose(fp);
    size_t pos = 4;
    uint32_t version = 0, count = 0;
    fx_read_u32(f, &pos, &version);
    fx_read_u32(f, &pos, &count);
    if (version != 1) {
        fprintf(stderr, "fixture %s: version %u, expected 1\n", path, version);
        fx_close(f);
        return NULL;
    }
    f->arrays = calloc(count ? count : 1, sizeof *f->arrays);
    f->names = calloc((size_t)count + 1, sizeof *f->names);
    f->datas = calloc((size_t)count + 1, sizeof *f->datas);
    for (uint32_t i = 0; i < count; i++) {
        fx_array *a = &f->arrays[i];
        uint32_t namelen, type, ndim;
        if (!fx_read_u32(f, &pos, &namelen) || f->size - pos < namelen)
            goto bad;
        f->names[i] = malloc(namelen + 1);
        memcpy(f->names[i], f->bytes + pos, namelen);
        f->names[i][namelen] = 0;
        a->name = f->names[i];
        pos += namelen;
        if (!fx_read_u32(f, &pos, &type) || !fx_read_u32(f, &pos, &ndim) || type > 6 ||
            ndim > 8 || f->size - pos < 8 * (size_t)ndim)
            goto bad;
        a->type = (int)type;
        a->ndim = (int)ndim;
        a->numel = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            memcpy(&a->shape[d], f->bytes + pos, 8);
            pos += 8;
            a->numel *= a->shape[d];
        }
        size_t nbytes = (size_t)a->numel * fx_type_size[type];
        if (f->size - pos < nbytes)
            goto bad;
        f->datas[i] = malloc(nbytes ? nbytes : 1);
        memcpy(f->datas[i], f->bytes + pos, nbytes);
        a->data = f->datas[i];
        pos += nbytes;
        f->count = (int)i + 1;
    }
    return f;
bad:
    fprintf(stderr, "fixture %s: truncated or malformed\n", path);
    fx_close(f);
    return NULL;
}

void fx_close(fx_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->count; i++) {
        free(f->names[i]);
        free(f->datas[i]);
    }
    if (f->names) /* the name of an entry that failed half way, if any */
        free(f->names[f->count]);
    free(f->names);
    free(f->datas);
    free(f->arrays);
    free(f->bytes);
    free(f);
}

const fx_array *fx_get(const fx_file *f, const char *name)
{
    for (int i = 0; f && i < f->count; i++)
        if (strcmp(f->arrays[i].name, name) == 0)
            return &f->arrays[i];
    fprintf(stderr, "fixture: no array named '%s'\n", name);
    return NULL;
}

double fx_at(const fx_array *a, int64_t i)
{
    const unsigned char *p = (const unsigned char *)a->data + (size_t)i * fx_type_size[a->type];
    float f; double d; int32_t i32; uint16_t u16; int8_t i8; uint8_t u8; int64_t i64;
    switch (a->type) {
    case FX_F32: memcpy(&f, p, 4); return f;
    case FX_F64: memcpy(&d, p, 8); return d;
    case FX_I32: memcpy(&i32, p, 4); return i32;
    case FX_U16: memcpy(&u16, p, 2); return u16;
    case FX_I8:  memcpy(&i8, p, 1); return i8;
    case FX_U8:  memcpy(&u8, p, 1); return u8;
    default:     memcpy(&i64, p, 8); return (double)i64;
    }
}

bn_tensor *fx_tensor(const fx_array *a)
{
    if (!a || (a->type != FX_F32 && a->type != FX_F64) || a->ndim > BN_MAX_DIMS)
        return NULL;
    float *tmp = malloc((size_t)(a->numel ? a->numel : 1) * sizeof(float));
    for (int64_t i = 0; i < a->numel; i++)
        tmp[i] = (float)fx_at(a, i);
    bn_tensor *t = NULL;
    if (bn_tensor_from_data(BN_F32, a->ndim, a->shape, tmp, &t) != BN_OK)
        t = NULL;
    free(tmp);
    return t;
}
