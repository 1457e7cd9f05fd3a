/*
 * export.c - a trained model as a GGUF file of arch bitnet-b1.58, the layout of
 * microsoft's bitnet-b1.58-2B-4T file (tensor names, order, metadata keys), with the
 * run's tokenizer, so that `bitnet info`, `generate`, `chat` and `perplexity` take it as
 * they take that file.
 *
 * A ternary run's projections are ternarized exactly as its forward does it
 * (bn_ternarize: one absmean scale per tensor), so the exported model computes what the
 * training forward at lambda 1 computed; they are then stored in the chosen type
 * (I2_S keeps the scale as an f32, TQ2_0/TQ1_0 as one f16 per block of 256, F16/F32
 * the values codes x scale). A float run's projections are stored as they are in a
 * float type, or ternarized after training when a ternary type is asked for.
 */
#include <stdio.h>
#include <string.h>

#include "train/run.h"

bn_train_export_params bn_train_export_default_params(void)
{
    return (bn_train_export_params){.proj_type = BN_QT_I2_S, .embd_type = BN_QT_F16,
                                     .name = NULL};
}

static bool bn_is_ternary_type(bn_qtype t)
{
    return t == BN_QT_I2_S || t == BN_QT_TQ2_0 || t == BN_QT_TQ1_0;
}

/* The metadata of microsoft's file, with the model's shape. */
static bn_status bn_export_metadata(bn_gguf_writer *w, const bn_train_config *c,
                                    const bn_train_export_params *p)
{
    static const char a[] = "bitnet-b1.58";
    char key[96];
    bn_status st = bn_gguf_writer_set_str(w, "general.architecture", a);
    if (st == BN_OK)
        st = bn_gguf_writer_set_str(w, "general.name", p->name ? p->name : "bitnet trained");
#define SET_U32(suffix, v)                                                             \
    do {                                                                               \
        snprintf(key, sizeof key, "%s.%s", a, suffix);                                 \
        if (st == BN_OK) st = bn_gguf_writer_set_u32(w, key, (uint32_t)(v));           \
    } while (0)
    SET_U32("vocab_size", c->n_vocab);
    SET_U32("context_length", c->n_ctx);
    SET_U32("embedding_length", c->n_embd);
    SET_U32("block_count", c->n_layer);
    SET_U32("feed_forward_length", c->n_ff);
    SET_U32("rope.dimension_count", c->n_embd / c->n_head);
    SET_U32("attention.head_count", c->n_head);
    SET_U32("attention.head_count_kv", c->n_head_kv);
#undef SET_U32
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a);
    if (st == BN_OK) st = bn_gguf_writer_set_f32(w, key, c->rms_eps);
    snprintf(key, sizeof key, "%s.rope.freq_base", a);
    if (st == BN_OK) st = bn_gguf_writer_set_f32(w, key, c->rope_theta);
    if (st == BN_OK)
        st = bn_gguf_writer_set_u32(w, "general.file_type",
                                    (uint32_t)bn_qtype_file_type(p->proj_type));
    if (st == BN_OK) st = bn_gguf_writer_set_u32(w, "general.quantization_version", 2);
    return st;
}

/* One tensor converted to `type` into a new buffer (*data, *nbytes): a projection
 * ternarized first when asked. */
static bn_status bn_export_tensor(const bn_train_tensor *t, const float *src, bn_qtype type,
                                  bool ternarize, void **data, size_t *nbytes)
{
    const size_t n = (size_t)(t->rows * t->cols);
    bn_status st = bn_qtype_tensor_size(type, t->cols, t->rows, nbytes);
    if (st != BN_OK)
        return bn_error_wrap(st, "%s [%lld x %lld] cannot be stored as %s", t->name,
                             (long long)t->rows, (long long)t->cols,
                             bn_qtype_get(type)->name);
    float *vals = NULL;
    int8_t *codes = NULL;
    if (ternarize) {
        vals = bn_malloc(n * sizeof *vals, "train: export");
        codes = bn_malloc(n, "train: export");
        float g = 0.0f;
        st = vals && codes ? bn_ternarize(src, t->cols, t->rows, NULL, codes, &g)
                           : bn_error_wrap(BN_OK, "ternarizing %s", t->name);
        for (size_t i = 0; st == BN_OK && i < n; i++)
            vals[i] = (float)codes[i] * g;
        src = vals;
    }
    void *out = NULL;
    if (st == BN_OK && !(out = bn_malloc(*nbytes ? *nbytes : 1, "train: export")))
        st = bn_error_wrap(BN_OK, "storing %s", t->name);
    if (st == BN_OK)
        st = bn_quantize(type, src, t->cols, t->rows, out, *nbytes);
    bn_free(vals);
    bn_free(codes);
    if (st != BN_OK) {
        bn_free(out);
        return bn_error_wrap(st, "storing %s as %s", t->name, bn_qtype_get(type)->name);
    }
    *data = out;
    return BN_OK;
}

bn_status bn_train_export_check(const bn_train_config *c, bn_qtype proj_type)
{
    const int64_t row = proj_type == BN_QT_I2_S ? 128
                      : proj_type == BN_QT_TQ2_0 || proj_type == BN_QT_TQ1_0 ? 256 : 1;
    if (c->n_embd % row == 0 && c->n_ff % row == 0)
        return BN_OK;
    return bn_error_set(BN_ERR_SHAPE, "%s projections need rows of a multiple of %lld "
                        "weights, and this model's are %d (width) and %d (FFN): choose "
                        "such sizes, or f16 projections", bn_qtype_get(proj_type)->name,
                        (long long)row, (int)c->n_embd, (int)c->n_ff);
}

bn_status bn_train_export(const char *path, const bn_train_model *m, bool ternary,
                          const bn_tokenizer *tok, const bn_train_export_params *p)
{
    if (bn_is_ternary_type(p->embd_type))
        return bn_error_set(BN_ERR_INVALID_ARG, "the token embedding cannot be stored as "
                            "%s (it is the output layer too, never ternary)",
                            bn_qtype_get(p->embd_type)->name);
    if (!ternary && bn_is_ternary_type(p->proj_type))
        bn_log(BN_LOG_WARN, "export: a float run's projections are ternarized after "
               "training (post-training quantization)");
    bn_status chk = bn_train_export_check(&m->cfg, p->proj_type);
    if (chk != BN_OK)
        return bn_error_wrap(chk, "exporting to %s", path);
    if (bn_tokenizer_n_vocab(tok) != m->cfg.n_vocab)
        return bn_error_set(BN_ERR_INVALID_ARG, "the tokenizer has %d tokens, the model %d",
                            bn_tokenizer_n_vocab(tok), m->cfg.n_vocab);
    bn_gguf_writer *w = NULL;
    bn_status st = bn_gguf_writer_create(&w);
    if (st != BN_OK)
        return bn_error_wrap(st, "exporting to %s", path);
    st = bn_export_metadata(w, &m->cfg, p);
    if (st == BN_OK)
        st = bn_tokenizer_write_gguf(tok, w);
    /* the buffers live until the file is written */
    void **bufs = bn_calloc((size_t)m->n_tensors, sizeof *bufs, "train: export");
    if (!bufs && st == BN_OK)
        st = bn_error_wrap(BN_OK, "exporting");
    /* microsoft's order: token_embd, per layer attn_norm q k v output sub_norm,
     * ffn_norm gate up down sub_norm, then output_norm */
    static const char *const order[] = {"attn_norm", "attn_q", "attn_k", "attn_v",
                                        "attn_output", "attn_sub_norm", "ffn_norm",
                                        "ffn_gate", "ffn_up", "ffn_down", "ffn_sub_norm"};
    const int32_t n_names = 2 + 11 * m->cfg.n_layer;
    for (int32_t k = 0; k < n_names && st == BN_OK; k++) {
        char name[48];
        if (k == 0)
            snprintf(name, sizeof name, "token_embd");
        else if (k == n_names - 1)
            snprintf(name, sizeof name, "output_norm");
        else
            snprintf(name, sizeof name, "blk.%d.%s", (int)((k - 1) / 11),
                     order[(k - 1) % 11]);
        const bn_train_tensor *t = bn_train_tensor_find(m, name);
        if (!t) {
            st = bn_error_set(BN_ERR_INTERNAL, "export: no tensor %s", name);
            break;
        }
        const bool vec = t->rows == 1;
        const bool proj = !vec && k != 0;
        const bn_qtype type = vec ? BN_QT_F32 : proj ? p->proj_type : p->embd_type;
        const bool ternarize = proj && (ternary || bn_is_ternary_type(type));
        size_t nbytes = 0;
        st = bn_export_tensor(t, m->params + t->offset, type, ternarize, &bufs[k], &nbytes);
        if (st != BN_OK)
            break;
        char gname[64];
        snprintf(gname, sizeof gname, "%s.weight", name);
        const int64_t ne[2] = {t->cols, t->rows};
        st = bn_gguf_writer_add_tensor(w, gname, type, vec ? 1 : 2, ne, bufs[k], nbytes);
    }
    if (st == BN_OK)
        st = bn_gguf_writer_write(w, path, NULL, NULL);
    for (int32_t k = 0; bufs && k < m->n_tensors; k++)
        bn_free(bufs[k]);
    bn_free(bufs);
    bn_gguf_writer_free(w);
    return st == BN_OK ? BN_OK : bn_error_wrap(st, "exporting to %s", path);
}
