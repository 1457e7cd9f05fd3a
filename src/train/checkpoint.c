/*
 * checkpoint.c - the whole state of a training run in one file.
 *
 * A checkpoint is a GGUF file (so `bitnet info` shows it) of arch "bitnet-train",
 * sealed: after the GGUF bytes come 16 bytes, "BNSEAL01" and a 64-bit checksum of
 * everything before them (src/io/gguf.h), so that a truncated or damaged file is refused
 * before anything in it is believed. It holds:
 *   train.format_version           1
 *   train.<config>                 the model's shape (n_embd ... rope_theta)
 *   train.<settings>               batch, accumulation, steps, schedule, AdamW, clipping,
 *                                  mode, lambda ramp, seed, and the data's checksums
 *   train.step, train.rng,         where the run stands: optimizer steps taken, the data
 *   train.seconds                  generator's state, training time so far
 *   train.log.*                    the rows of train.csv so far, one array per column
 *   tokenizer.*                    the tokenizer, as a model file carries it
 *   tensors param.NAME, adam_m.NAME, adam_v.NAME (F32): parameters and AdamW moments,
 *                                  NAME as in the model's tensor table ("blk.0.attn_q")
 * Everything a resumed run needs to continue bit for bit as if never stopped.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/gguf.h"
#include "train/run.h"

#define BN_CKPT_ARCH    "bitnet-train"
#define BN_CKPT_VERSION 1

void bn_train_progress_free(bn_train_progress *p)
{
    bn_free(p->log);
    *p = (bn_train_progress){0};
}

bn_status bn_train_log_add(bn_train_progress *p, const bn_train_log_row *row)
{
    if (p->n_log == p->cap_log) {
        int64_t cap = p->cap_log ? 2 * p->cap_log : 64;
        bn_train_log_row *grown = bn_malloc((size_t)cap * sizeof *grown, "train: log");
        if (!grown)
            return bn_error_wrap(BN_OK, "the training log");
        if (p->n_log)
            memcpy(grown, p->log, (size_t)p->n_log * sizeof *grown);
        bn_free(p->log);
        p->log = grown;
        p->cap_log = cap;
    }
    p->log[p->n_log++] = *row;
    return BN_OK;
}

/* ------------------------------------------------------------------ saving */

typedef struct bn_ckpt_w {
    bn_gguf_writer *w;
    bn_status st;
} bn_ckpt_w;

static void put_u32(bn_ckpt_w *c, const char *key, uint32_t v)
{
    if (c->st == BN_OK)
        c->st = bn_gguf_writer_set_u32(c->w, key, v);
}

static void put_u64(bn_ckpt_w *c, const char *key, uint64_t v)
{
    if (c->st == BN_OK)
        c->st = bn_gguf_writer_set_u64(c->w, key, v);
}

static void put_f64(bn_ckpt_w *c, const char *key, double v)
{
    if (c->st == BN_OK)
        c->st = bn_gguf_writer_set_f64(c->w, key, v);
}

static void put_str(bn_ckpt_w *c, const char *key, const char *v)
{
    if (c->st == BN_OK)
        c->st = bn_gguf_writer_set_str(c->w, key, v);
}

/* The log's column of doubles at byte offset `field` of a row. */
static void put_log_column(bn_ckpt_w *c, const char *key, const bn_train_progress *p,
                           size_t field, double *tmp)
{
    for (int64_t i = 0; i < p->n_log; i++)
        memcpy(&tmp[i], (const char *)&p->log[i] + field, sizeof(double));
    if (c->st == BN_OK)
        c->st = bn_gguf_writer_set_array(c->w, key, BN_GGUF_FLOAT64, tmp,
                                         (uint64_t)p->n_log);
}

static void put_settings(bn_ckpt_w *c, const bn_train_settings *s)
{
    const bn_train_config *g = &s->cfg;
    put_u32(c, "train.format_version", BN_CKPT_VERSION);
    put_u32(c, "train.n_embd", (uint32_t)g->n_embd);
    put_u32(c, "train.n_layer", (uint32_t)g->n_layer);
    put_u32(c, "train.n_head", (uint32_t)g->n_head);
    put_u32(c, "train.n_head_kv", (uint32_t)g->n_head_kv);
    put_u32(c, "train.n_ff", (uint32_t)g->n_ff);
    put_u32(c, "train.n_ctx", (uint32_t)g->n_ctx);
    put_u32(c, "train.n_vocab", (uint32_t)g->n_vocab);
    put_f64(c, "train.rms_eps", g->rms_eps);
    put_f64(c, "train.rope_theta", g->rope_theta);
    put_u32(c, "train.batch", (uint32_t)s->batch);
    put_u32(c, "train.accum", (uint32_t)s->accum);
    put_u32(c, "train.steps", (uint32_t)s->steps);
    put_str(c, "train.schedule", s->lr.kind == BN_LR_TWO_STAGE ? "two-stage" : "cosine");
    put_u32(c, "train.warmup", (uint32_t)s->lr.warmup);
    put_u32(c, "train.drop_step", (uint32_t)s->lr.drop_step);
    put_f64(c, "train.lr", s->lr.lr_max);
    put_f64(c, "train.lr_min", s->lr.lr_min);
    put_f64(c, "train.lr_stage2", s->lr.lr_stage2);
    put_f64(c, "train.beta1", s->adamw.beta1);
    put_f64(c, "train.beta2", s->adamw.beta2);
    put_f64(c, "train.adam_eps", s->adamw.eps);
    put_f64(c, "train.weight_decay", s->adamw.weight_decay);
    put_f64(c, "train.clip", s->clip);
    put_str(c, "train.mode", s->ternary ? "ternary" : "float");
    put_u32(c, "train.lambda_ramp", (uint32_t)s->lambda_ramp);
    put_u64(c, "train.seed", s->seed);
    put_u64(c, "train.data_hash", s->data_hash);
    put_u64(c, "train.data_bytes", s->data_bytes);
    put_u64(c, "train.val_hash", s->val_hash);
    put_u64(c, "train.val_bytes", s->val_bytes);
}

bn_status bn_train_ckpt_save(const char *path, const bn_train_settings *s,
                             const bn_train_progress *p, const bn_tokenizer *tok,
                             const bn_train_model *m)
{
    bn_ckpt_w c = {0};
    c.st = bn_gguf_writer_create(&c.w);
    if (c.st != BN_OK)
        return bn_error_wrap(c.st, "writing checkpoint %s", path);
    double *col = bn_malloc(((size_t)p->n_log + 1) * sizeof *col, "train: checkpoint");
    int64_t *steps = bn_malloc(((size_t)p->n_log + 1) * sizeof *steps, "train: checkpoint");
    if (!col || !steps)
        c.st = bn_error_wrap(BN_OK, "the log");
    put_str(&c, "general.architecture", BN_CKPT_ARCH);
    put_str(&c, "general.name", "bitnet training checkpoint");
    put_settings(&c, s);
    put_u64(&c, "train.step", (uint64_t)p->step);
    put_u64(&c, "train.rng", p->rng);
    put_f64(&c, "train.seconds", p->seconds);
    if (c.st == BN_OK) {
        for (int64_t i = 0; i < p->n_log; i++)
            steps[i] = p->log[i].step;
        c.st = bn_gguf_writer_set_array(c.w, "train.log.step", BN_GGUF_INT64, steps,
                                        (uint64_t)p->n_log);
    }
#define COLUMN(f) put_log_column(&c, "train.log." #f, p, offsetof(bn_train_log_row, f), col)
    if (c.st == BN_OK) {
        COLUMN(lr);
        COLUMN(lambda);
        COLUMN(train_loss);
        COLUMN(val_loss);
        COLUMN(grad_norm);
        COLUMN(tokens_per_second);
    }
#undef COLUMN
    if (c.st == BN_OK)
        c.st = bn_tokenizer_write_gguf(tok, c.w);
    static const char *const prefix[3] = {"param.", "adam_m.", "adam_v."};
    const float *flat[3] = {m->params, m->adam_m, m->adam_v};
    for (int a = 0; a < 3 && c.st == BN_OK; a++)
        for (int32_t k = 0; k < m->n_tensors && c.st == BN_OK; k++) {
            const bn_train_tensor *t = &m->tensors[k];
            char name[64];
            snprintf(name, sizeof name, "%s%s", prefix[a], t->name);
            const int64_t ne[2] = {t->cols, t->rows};
            c.st = bn_gguf_writer_add_tensor(c.w, name, BN_QT_F32, t->rows == 1 ? 1 : 2, ne,
                                             flat[a] + t->offset,
                                             (size_t)(t->rows * t->cols) * sizeof(float));
        }
    if (c.st == BN_OK)
        c.st = bn_gguf_writer_write_sealed(c.w, path, NULL, NULL);
    bn_gguf_writer_free(c.w);
    bn_free(col);
    bn_free(steps);
    return c.st == BN_OK ? BN_OK : bn_error_wrap(c.st, "writing checkpoint %s", path);
}

/* ------------------------------------------------------------------ loading */

typedef struct bn_ckpt_r {
    const bn_gguf *g;
    bn_status st;
} bn_ckpt_r;

static uint64_t get_u64(bn_ckpt_r *c, const char *key, uint64_t max)
{
    uint64_t v = 0;
    if (c->st != BN_OK)
        return 0;
    if (bn_gguf_find_kv(c->g, key) < 0)
        c->st = bn_error_set(BN_ERR_FORMAT, "key %s is missing", key);
    else if ((c->st = bn_gguf_get_u64(c->g, key, &v)) == BN_OK && v > max)
        c->st = bn_error_set(BN_ERR_FORMAT, "key %s is %llu (at most %llu)", key,
                             (unsigned long long)v, (unsigned long long)max);
    return v;
}

static int32_t get_i32(bn_ckpt_r *c, const char *key)
{
    return (int32_t)get_u64(c, key, INT32_MAX);
}

static double get_f64(bn_ckpt_r *c, const char *key)
{
    double v = 0.0;
    if (c->st != BN_OK)
        return 0.0;
    if (bn_gguf_find_kv(c->g, key) < 0)
        c->st = bn_error_set(BN_ERR_FORMAT, "key %s is missing", key);
    else if ((c->st = bn_gguf_get_f64(c->g, key, &v)) == BN_OK && !isfinite(v))
        c->st = bn_error_set(BN_ERR_FORMAT, "key %s is not a finite number", key);
    return v;
}

/* The string key's value, which must be one of a or b: 0 or 1 for which. */
static int get_choice(bn_ckpt_r *c, const char *key, const char *a, const char *b)
{
    const char *v = NULL;
    if (c->st != BN_OK)
        return 0;
    if (bn_gguf_find_kv(c->g, key) < 0) {
        c->st = bn_error_set(BN_ERR_FORMAT, "key %s is missing", key);
        return 0;
    }
    if ((c->st = bn_gguf_get_str(c->g, key, &v)) != BN_OK)
        return 0;
    if (strcmp(v, a) == 0)
        return 0;
    if (strcmp(v, b) == 0)
        return 1;
    c->st = bn_error_set(BN_ERR_FORMAT, "key %s is '%s' (%s or %s)", key, v, a, b);
    return 0;
}

static void get_settings(bn_ckpt_r *c, bn_train_settings *s)
{
    uint64_t version = get_u64(c, "train.format_version", UINT32_MAX);
    if (c->st == BN_OK && version != BN_CKPT_VERSION) {
        c->st = bn_error_set(BN_ERR_FORMAT, "checkpoint format version %llu (this program "
                             "reads version %d)", (unsigned long long)version,
                             BN_CKPT_VERSION);
        return;
    }
    bn_train_config *g = &s->cfg;
    g->n_embd = get_i32(c, "train.n_embd");
    g->n_layer = get_i32(c, "train.n_layer");
    g->n_head = get_i32(c, "train.n_head");
    g->n_head_kv = get_i32(c, "train.n_head_kv");
    g->n_ff = get_i32(c, "train.n_ff");
    g->n_ctx = get_i32(c, "train.n_ctx");
    g->n_vocab = get_i32(c, "train.n_vocab");
    g->rms_eps = (float)get_f64(c, "train.rms_eps");
    g->rope_theta = (float)get_f64(c, "train.rope_theta");
    s->batch = get_i32(c, "train.batch");
    s->accum = get_i32(c, "train.accum");
    s->steps = get_i32(c, "train.steps");
    s->lr.kind = get_choice(c, "train.schedule", "cosine", "two-stage") ? BN_LR_TWO_STAGE
                                                                         : BN_LR_COSINE;
    s->lr.warmup = get_i32(c, "train.warmup");
    s->lr.drop_step = get_i32(c, "train.drop_step");
    s->lr.steps = s->steps;
    s->lr.lr_max = get_f64(c, "train.lr");
    s->lr.lr_min = get_f64(c, "train.lr_min");
    s->lr.lr_stage2 = get_f64(c, "train.lr_stage2");
    s->adamw.beta1 = get_f64(c, "train.beta1");
    s->adamw.beta2 = get_f64(c, "train.beta2");
    s->adamw.eps = get_f64(c, "train.adam_eps");
    s->adamw.weight_decay = get_f64(c, "train.weight_decay");
    s->clip = get_f64(c, "train.clip");
    s->ternary = get_choice(c, "train.mode", "float", "ternary") == 1;
    s->lambda_ramp = get_i32(c, "train.lambda_ramp");
    s->seed = get_u64(c, "train.seed", UINT64_MAX);
    s->data_hash = get_u64(c, "train.data_hash", UINT64_MAX);
    s->data_bytes = get_u64(c, "train.data_bytes", UINT64_MAX);
    s->val_hash = get_u64(c, "train.val_hash", UINT64_MAX);
    s->val_bytes = get_u64(c, "train.val_bytes", UINT64_MAX);
    if (c->st == BN_OK && (s->batch < 1 || s->accum < 1 || s->steps < 1))
        c->st = bn_error_set(BN_ERR_FORMAT, "batch %d, accumulation %d, steps %d",
                             s->batch, s->accum, s->steps);
    if (c->st == BN_OK && (c->st = bn_train_config_check(g)) != BN_OK)
        c->st = bn_error_wrap(BN_ERR_FORMAT, "its model shape");
}

/* The log arrays: all n rows long. */
static void get_log(bn_ckpt_r *c, bn_train_progress *p)
{
    static const char *const cols[] = {"train.log.step", "train.log.lr", "train.log.lambda",
                                       "train.log.train_loss", "train.log.val_loss",
                                       "train.log.grad_norm",
                                       "train.log.tokens_per_second"};
    static const size_t field[] = {0, offsetof(bn_train_log_row, lr),
                                   offsetof(bn_train_log_row, lambda),
                                   offsetof(bn_train_log_row, train_loss),
                                   offsetof(bn_train_log_row, val_loss),
                                   offsetof(bn_train_log_row, grad_norm),
                                   offsetof(bn_train_log_row, tokens_per_second)};
    bn_gguf_value v[7];
    for (int k = 0; k < 7 && c->st == BN_OK; k++) {
        int64_t i = bn_gguf_find_kv(c->g, cols[k]);
        bn_gguf_type want = k == 0 ? BN_GGUF_INT64 : BN_GGUF_FLOAT64;
        if (i < 0) {
            c->st = bn_error_set(BN_ERR_FORMAT, "key %s is missing", cols[k]);
            break;
        }
        v[k] = bn_gguf_kv_value(c->g, i);
        if (v[k].type != BN_GGUF_ARRAY || v[k].v.arr.elem_type != want ||
            v[k].v.arr.n != v[0].v.arr.n || v[k].v.arr.n > (uint64_t)INT32_MAX)
            c->st = bn_error_set(BN_ERR_FORMAT, "key %s is not an array of the log's "
                                 "length and type", cols[k]);
    }
    if (c->st != BN_OK)
        return;
    const int64_t n = (int64_t)v[0].v.arr.n;
    for (int64_t i = 0; i < n && c->st == BN_OK; i++) {
        bn_train_log_row row = {.step = bn_gguf_array_get(c->g, &v[0], (uint64_t)i).v.i64};
        for (int k = 1; k < 7; k++) {
            double x = bn_gguf_array_get(c->g, &v[k], (uint64_t)i).v.f64;
            memcpy((char *)&row + field[k], &x, sizeof x);
        }
        c->st = bn_train_log_add(p, &row);
    }
}

/* Copies the F32 tensor prefix+name of the model's shape into dst. */
static void get_tensor(bn_ckpt_r *c, const char *prefix, const bn_train_tensor *t, float *dst)
{
    if (c->st != BN_OK)
        return;
    char name[64];
    snprintf(name, sizeof name, "%s%s", prefix, t->name);
    int64_t i = bn_gguf_find_tensor(c->g, name);
    if (i < 0) {
        c->st = bn_error_set(BN_ERR_FORMAT, "tensor %s is missing", name);
        return;
    }
    const bn_gguf_tensor *gt = bn_gguf_get_tensor(c->g, i);
    int64_t rows = gt->n_dims >= 2 ? gt->ne[1] : 1;
    if (gt->type != BN_QT_F32 || gt->ne[0] != t->cols || rows != t->rows ||
        gt->ne[2] != 1 || gt->ne[3] != 1 ||
        gt->nbytes != (size_t)(t->rows * t->cols) * sizeof(float)) {
        c->st = bn_error_set(BN_ERR_FORMAT, "tensor %s is not F32 [%lld, %lld] as the "
                             "model's shape makes it", name, (long long)t->rows,
                             (long long)t->cols);
        return;
    }
    memcpy(dst, gt->data, gt->nbytes);
}

/* Reads path whole into bn_malloc'd memory. */
static bn_status bn_ckpt_read(const char *path, void **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bn_error_set(BN_ERR_IO, "%s", strerror(errno));
    bn_status st = BN_OK;
    long end = -1;
    if (fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        st = bn_error_set(BN_ERR_IO, "cannot tell its size: %s", strerror(errno));
    void *buf = NULL;
    if (st == BN_OK && !(buf = bn_malloc(end ? (size_t)end : 1, "train: checkpoint")))
        st = bn_error_wrap(BN_OK, "%ld bytes", end);
    if (st == BN_OK && fread(buf, 1, (size_t)end, f) != (size_t)end)
        st = bn_error_set(BN_ERR_IO, "reading: %s", ferror(f) ? strerror(errno)
                                                              : "shorter than its size");
    fclose(f);
    if (st != BN_OK) {
        bn_free(buf);
        return st;
    }
    *data = buf;
    *size = (size_t)end;
    return BN_OK;
}

bn_status bn_train_ckpt_load(const char *path, int32_t batch, bn_train_settings *s,
                             bn_train_progress *p, bn_tokenizer **tok,
                             bn_train_model **out)
{
    *s = (bn_train_settings){0};
    *p = (bn_train_progress){0};
    *tok = NULL;
    *out = NULL;
    void *data = NULL;
    size_t size = 0, payload = 0;
    bn_gguf *g = NULL;
    bn_train_model *m = NULL;
    bn_status st = bn_ckpt_read(path, &data, &size);
    if (st == BN_OK)
        st = bn_gguf_seal_check(data, size, &payload);
    if (st == BN_OK && (st = bn_gguf_open_memory(data, payload, &g)) != BN_OK)
        st = bn_error_wrap(BN_ERR_FORMAT, "not a GGUF file");
    bn_ckpt_r c = {.g = g, .st = st};
    if (c.st == BN_OK) {
        const char *arch = NULL;
        if (bn_gguf_find_kv(g, "general.architecture") < 0 ||
            bn_gguf_get_str(g, "general.architecture", &arch) != BN_OK ||
            strcmp(arch, BN_CKPT_ARCH) != 0)
            c.st = bn_error_set(BN_ERR_FORMAT, "not a training checkpoint (architecture "
                                "'%s', not '%s')", arch ? arch : "none", BN_CKPT_ARCH);
    }
    get_settings(&c, s);
    p->step = (int64_t)get_u64(&c, "train.step", INT32_MAX);
    p->rng = get_u64(&c, "train.rng", UINT64_MAX);
    p->seconds = get_f64(&c, "train.seconds");
    get_log(&c, p);
    if (c.st == BN_OK && (c.st = bn_tokenizer_load_gguf(g, tok)) != BN_OK)
        c.st = bn_error_wrap(BN_ERR_FORMAT, "its tokenizer");
    if (c.st == BN_OK && bn_tokenizer_n_vocab(*tok) != s->cfg.n_vocab)
        c.st = bn_error_set(BN_ERR_FORMAT, "its tokenizer has %d tokens, its model %d",
                            bn_tokenizer_n_vocab(*tok), s->cfg.n_vocab);
    if (c.st == BN_OK)
        c.st = bn_train_model_new(&s->cfg, batch > 0 ? batch : s->batch, &m);
    for (int32_t k = 0; c.st == BN_OK && k < m->n_tensors; k++) {
        const bn_train_tensor *t = &m->tensors[k];
        get_tensor(&c, "param.", t, m->params + t->offset);
        get_tensor(&c, "adam_m.", t, m->adam_m + t->offset);
        get_tensor(&c, "adam_v.", t, m->adam_v + t->offset);
    }
    if (c.st == BN_OK)
        m->step = p->step;
    bn_gguf_close(g);
    bn_free(data);
    if (c.st != BN_OK) {
        bn_train_model_free(m);
        bn_tokenizer_free(*tok);
        *tok = NULL;
        bn_train_progress_free(p);
        return bn_error_wrap(c.st, "checkpoint %s", path);
    }
    *out = m;
    return BN_OK;
}
