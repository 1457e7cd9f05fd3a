/*
 * model.c - loading a BitNet b1.58 (or LLaMA-architecture) model from a GGUF file.
 *
 * Every hyperparameter comes from the metadata under the architecture's prefix
 * ("<arch>.embedding_length" ...), every tensor is checked for presence, shape and a
 * type the forward pass can use before anything runs, and the weights stay in the
 * read-only image (mapped, or read into memory in huge pages: bn_load_mode). Norm
 * vectors are copied to f32 (they are small).
 *
 * Architectures:
 *   bitnet-b1.58, bitnet-25  microsoft's 2B-4T family: sub-norms, squared ReLU, NeoX RoPE
 *   bitnet                   llama.cpp's name (older 1bitLLM models, upstream-converted
 *                            2B-4T files): sub-norms, NeoX RoPE, activation from
 *                            "bitnet.ffn_activation" or SiLU (with a warning)
 *   llama                    no sub-norms, SiLU, RoPE on adjacent pairs, optional
 *                            untied output.weight
 */
#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"
#include "model/model_internal.h"

typedef struct bn_arch_desc {
    const char  *name;
    bool         sub_norms;
    bn_rope_kind rope;
    bn_ffn_act   ffn_act;     /* AUTO: decided from the metadata */
    bool         bitnet;      /* a BitNet arch: activations quantized by default */
} bn_arch_desc;

static const bn_arch_desc bn_archs[] = {
    {"bitnet-b1.58", true,  BN_ROPE_NEOX, BN_FFN_ACT_RELU2, true},
    {"bitnet-25",    true,  BN_ROPE_NEOX, BN_FFN_ACT_RELU2, true},
    {"bitnet",       true,  BN_ROPE_NEOX, BN_FFN_ACT_AUTO,  true},
    {"llama",        false, BN_ROPE_NORM, BN_FFN_ACT_SILU,  false},
};

bn_model_params bn_model_default_params(void)
{
    bn_model_params p = {
        .ffn_act = BN_FFN_ACT_AUTO, .act_quant = BN_ACT_QUANT_AUTO, .output_type = -1,
        .load = BN_LOAD_AUTO, .keep_tq1_0 = false, .keep_tq2_0 = false, .progress = NULL,
        .progress_user = NULL,
    };
    return p;
}

/* An integer hyperparameter "<arch>.<key>"; `def` < 0 means required. */
static bn_status bn_hp_int(const bn_gguf *g, const char *arch, const char *key,
                           int64_t def, int32_t *out)
{
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (bn_gguf_find_kv(g, full) < 0) {
        if (def < 0)
            return bn_error_set(BN_ERR_FORMAT, "metadata key '%s' is missing", full);
        *out = (int32_t)def;
        return BN_OK;
    }
    uint64_t v = 0;
    bn_status st = bn_gguf_get_u64(g, full, &v);
    if (st != BN_OK)
        return st;
    if (v > (uint64_t)1 << 30)
        return bn_error_set(BN_ERR_FORMAT, "metadata key '%s' = %llu is out of range", full,
                            (unsigned long long)v);
    *out = (int32_t)v;
    return BN_OK;
}

static bn_status bn_hp_float(const bn_gguf *g, const char *arch, const char *key,
                             double def, bool required, float *out)
{
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (bn_gguf_find_kv(g, full) < 0) {
        if (required)
            return bn_error_set(BN_ERR_FORMAT, "metadata key '%s' is missing", full);
        *out = (float)def;
        return BN_OK;
    }
    double v = 0;
    bn_status st = bn_gguf_get_f64(g, full, &v);
    if (st != BN_OK)
        return st;
    if (!(v > 0.0) || v > 1e30)
        return bn_error_set(BN_ERR_FORMAT, "metadata key '%s' = %g is out of range", full, v);
    *out = (float)v;
    return BN_OK;
}

/* The tensor `name` with ne = {ne0, ne1} (ne1 0: a vector of ne0). */
static bn_status bn_get_tensor(const bn_gguf *g, const char *name, int64_t ne0, int64_t ne1,
                               const bn_gguf_tensor **out)
{
    int64_t i = bn_gguf_find_tensor(g, name);
    if (i < 0)
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s' is missing", name);
    const bn_gguf_tensor *t = bn_gguf_get_tensor(g, i);
    int want_dims = ne1 ? 2 : 1;
    bool ok = t->ne[0] == ne0 && t->ne[1] == (ne1 ? ne1 : 1) && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok || t->n_dims > want_dims) {
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld, %lld, %lld], "
                            "expected [%lld, %lld]", name, (long long)t->ne[0],
                            (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                            (long long)ne0, (long long)(ne1 ? ne1 : 1));
    }
    *out = t;
    return BN_OK;
}

/* A norm vector of n values, converted to f32 into dst. */
static bn_status bn_load_norm(const bn_gguf *g, const char *name, int64_t n, float *dst)
{
    const bn_gguf_tensor *t = NULL;
    bn_status st = bn_get_tensor(g, name, n, 0, &t);
    if (st != BN_OK)
        return st;
    bn_row_to_f32_fn f = bn_qtype_row_to_f32(t->type);
    if (t->type != BN_QT_F32 && t->type != BN_QT_F16 && t->type != BN_QT_BF16)
        f = NULL;
    if (!f) {
        const bn_qtype_info *qi = bn_qtype_get(t->type);
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s' is %s; norms must be f32, f16 or bf16",
                            name, qi ? qi->name : "of an unknown type");
    }
    f(t->data, dst, n);
    for (int64_t i = 0; i < n; i++)
        if (!(dst[i] - dst[i] == 0.0f))
            return bn_error_set(BN_ERR_FORMAT, "tensor '%s' holds %g at index %lld", name,
                                dst[i], (long long)i);
    return BN_OK;
}

/* LLaMA 3.1's RoPE frequency factors, when the file has them: f32, one finite positive
 * value per rotated pair (n_rot / 2), copied to m->rope_freqs. */
static bn_status bn_load_rope_freqs(const bn_gguf *g, bn_model *m)
{
    const char *name = "rope_freqs.weight";
    if (bn_gguf_find_tensor(g, name) < 0)
        return BN_OK;
    const int64_t half = m->n_rot / 2;
    const bn_gguf_tensor *t = NULL;
    bn_status st = bn_get_tensor(g, name, half, 0, &t);
    if (st != BN_OK)
        return bn_error_wrap(st, "RoPE frequency factors (one per rotated pair, %lld)",
                             (long long)half);
    if (t->type != BN_QT_F32) {
        const bn_qtype_info *qi = bn_qtype_get(t->type);
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s' is %s; RoPE frequency factors must "
                            "be f32", name, qi ? qi->name : "of an unknown type");
    }
    m->rope_freqs = bn_malloc((size_t)half * sizeof(float), "model");
    if (!m->rope_freqs)
        return bn_last_status();
    memcpy(m->rope_freqs, t->data, (size_t)half * sizeof(float));
    for (int64_t i = 0; i < half; i++)
        if (!(m->rope_freqs[i] > 0.0f) || !isfinite(m->rope_freqs[i]))
            return bn_error_set(BN_ERR_FORMAT, "tensor '%s' holds %g at index %lld; RoPE "
                                "frequency factors must be finite and positive", name,
                                (double)m->rope_freqs[i], (long long)i);
    return BN_OK;
}

/* A projection with n_in inputs and n_out outputs. */
static bn_status bn_load_linear(const bn_gguf *g, const char *name, int64_t n_in,
                                int64_t n_out, bn_linear *lin)
{
    const bn_gguf_tensor *t = NULL;
    bn_status st = bn_get_tensor(g, name, n_in, n_out, &t);
    if (st != BN_OK)
        return st;
    const bn_qtype_info *qi = bn_qtype_get(t->type);
    memset(lin, 0, sizeof *lin);
    lin->name = t->name;
    lin->type = t->type;
    lin->data = t->data;
    lin->n_in = n_in;
    lin->n_out = n_out;
    lin->scale = 1.0f;
    lin->out_scale = 1.0f;
    lin->ternary = qi && qi->is_ternary;
    if (t->type == BN_QT_I2_S) {
        if (n_in % BN_I2S_BLOCK != 0)
            return bn_error_set(BN_ERR_FORMAT, "tensor '%s': i2_s rows of %lld weights are "
                                "not a multiple of %d", name, (long long)n_in, BN_I2S_BLOCK);
        lin->row_bytes = (size_t)n_in / 4;
        memcpy(&lin->scale, lin->data + (size_t)(n_in * n_out / 4), sizeof lin->scale);
        if (!(lin->scale - lin->scale == 0.0f))
            return bn_error_set(BN_ERR_FORMAT, "tensor '%s': its i2_s scale is %g", name,
                                lin->scale);
    } else {
        if (!qi || (!lin->ternary && !(lin->to_f32 = bn_qtype_row_to_f32(t->type))))
            return bn_error_set(BN_ERR_UNSUPPORTED, "tensor '%s' has type %s, which the "
                                "forward pass cannot use", name, qi ? qi->name : "unknown");
        st = bn_qtype_tensor_size(t->type, n_in, 1, &lin->row_bytes);
        if (st != BN_OK)
            return bn_error_wrap(st, "tensor '%s'", name);
    }
    /* llama.cpp's bitnet files may carry a one-element "<proj>.scale" per projection */
    char sname[160];
    size_t len = strlen(name);
    if (len > 7 && strcmp(name + len - 7, ".weight") == 0) {
        snprintf(sname, sizeof sname, "%.*s.scale", (int)(len - 7), name);
        int64_t si = bn_gguf_find_tensor(g, sname);
        if (si >= 0) {
            const bn_gguf_tensor *s = bn_gguf_get_tensor(g, si);
            if (s->type != BN_QT_F32 || s->ne[0] * s->ne[1] * s->ne[2] * s->ne[3] != 1)
                return bn_error_set(BN_ERR_FORMAT, "tensor '%s' must be one f32 value", sname);
            memcpy(&lin->out_scale, s->data, sizeof(float));
        }
    }
    return BN_OK;
}

/* The FFN activation in use, from the params, the arch and the metadata. */
static bn_status bn_choose_ffn_act(const bn_gguf *g, const bn_arch_desc *a,
                                   bn_ffn_act requested, bn_ffn_act *out)
{
    if (requested == BN_FFN_ACT_RELU2 || requested == BN_FFN_ACT_SILU) {
        *out = requested;
        return BN_OK;
    }
    char key[160];
    snprintf(key, sizeof key, "%s.ffn_activation", a->name);
    if (bn_gguf_find_kv(g, key) >= 0) {
        const char *v = NULL;
        bn_status st = bn_gguf_get_str(g, key, &v);
        if (st != BN_OK)
            return st;
        if (strcmp(v, "relu2") == 0 || strcmp(v, "relu_squared") == 0)
            *out = BN_FFN_ACT_RELU2;
        else if (strcmp(v, "silu") == 0)
            *out = BN_FFN_ACT_SILU;
        else
            return bn_error_set(BN_ERR_UNSUPPORTED, "metadata %s = '%s': the activations "
                                "known are relu2 and silu", key, v);
        return BN_OK;
    }
    if (a->ffn_act != BN_FFN_ACT_AUTO) {
        *out = a->ffn_act;
        return BN_OK;
    }
    bn_log(BN_LOG_WARN, "arch '%s' without '%s': using SiLU, as llama.cpp and bitnet.cpp "
           "do for this arch; a bitnet-b1.58-2B-4T file converted to this arch needs squared "
           "ReLU (choose it explicitly)", a->name, key);
    *out = BN_FFN_ACT_SILU;
    return BN_OK;
}

/* The seven projections of a layer. */
static void bn_layer_linears(bn_layer *ly, bn_linear *out[7])
{
    bn_linear *all[7] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->gate, &ly->up, &ly->down};
    memcpy(out, all, sizeof all);
}

static bn_status bn_model_read(bn_model *m, const bn_model_params *params)
{
    const bn_gguf *g = m->gguf;
    const char *arch = NULL;
    bn_status st = bn_gguf_get_str(g, "general.architecture", &arch);
    if (st != BN_OK)
        return st;
    const bn_arch_desc *a = NULL;
    for (size_t i = 0; i < sizeof bn_archs / sizeof bn_archs[0]; i++)
        if (strcmp(arch, bn_archs[i].name) == 0)
            a = &bn_archs[i];
    if (!a)
        return bn_error_set(BN_ERR_UNSUPPORTED, "architecture '%s' is not supported (known: "
                            "bitnet-b1.58, bitnet-25, bitnet, llama)", arch);
    bn_model_info *in = &m->info;
    in->arch = a->name;
    in->name = "";
    if (bn_gguf_find_kv(g, "general.name") >= 0)
        bn_gguf_get_str(g, "general.name", &in->name);
    in->sub_norms = a->sub_norms;
    m->rope = a->rope;

    int32_t head_dim = 0;
    if ((st = bn_hp_int(g, arch, "embedding_length", -1, &in->n_embd)) != BN_OK ||
        (st = bn_hp_int(g, arch, "feed_forward_length", -1, &in->n_ff)) != BN_OK ||
        (st = bn_hp_int(g, arch, "block_count", -1, &in->n_layer)) != BN_OK ||
        (st = bn_hp_int(g, arch, "attention.head_count", -1, &in->n_head)) != BN_OK)
        return st;
    if ((st = bn_hp_int(g, arch, "attention.head_count_kv", in->n_head, &in->n_head_kv)) != BN_OK ||
        (st = bn_hp_int(g, arch, "context_length", 0, &in->n_ctx_train)) != BN_OK ||
        (st = bn_hp_float(g, arch, "attention.layer_norm_rms_epsilon", 0, true, &in->rms_eps)) != BN_OK ||
        (st = bn_hp_float(g, arch, "rope.freq_base", 10000.0, false, &in->rope_theta)) != BN_OK)
        return st;
    if (in->n_embd < 1 || in->n_ff < 1 || in->n_layer < 1 || in->n_head < 1 ||
        in->n_head_kv < 1)
        return bn_error_set(BN_ERR_FORMAT, "hyperparameters must be positive (embedding %d, "
                            "FFN %d, layers %d, heads %d/%d)", in->n_embd, in->n_ff,
                            in->n_layer, in->n_head, in->n_head_kv);
    /* every layer has at least nine tensors, and no real width reaches 2^20: this also
     * keeps every size computed from these below 2^63 */
    if ((int64_t)in->n_layer * 9 > bn_gguf_n_tensors(g) || in->n_embd > (1 << 20) ||
        in->n_ff > (1 << 20) || in->n_head > in->n_embd)
        return bn_error_set(BN_ERR_FORMAT, "hyperparameters do not fit the file (%d layers "
                            "for %lld tensors, embedding %d, FFN %d, %d heads)", in->n_layer,
                            (long long)bn_gguf_n_tensors(g), in->n_embd, in->n_ff,
                            in->n_head);
    if (in->n_head % in->n_head_kv != 0)
        return bn_error_set(BN_ERR_FORMAT, "%d attention heads cannot share %d key/value "
                            "heads", in->n_head, in->n_head_kv);
    if ((st = bn_hp_int(g, arch, "attention.key_length", in->n_embd / in->n_head,
                        &head_dim)) != BN_OK)
        return st;
    if (in->n_embd % in->n_head != 0 || head_dim != in->n_embd / in->n_head || head_dim % 2)
        return bn_error_set(BN_ERR_FORMAT, "embedding %d over %d heads (head size %d) is not "
                            "supported", in->n_embd, in->n_head, head_dim);
    in->head_dim = head_dim;
    if ((st = bn_hp_int(g, arch, "rope.dimension_count", head_dim, &m->n_rot)) != BN_OK)
        return st;
    if (m->n_rot > head_dim || m->n_rot % 2)
        return bn_error_set(BN_ERR_FORMAT, "rope.dimension_count %d does not fit head size %d",
                            m->n_rot, head_dim);
    /* RoPE scaling: LLaMA 3.1's frequency factors (the tensor rope_freqs.weight, one
     * divisor of each rotated pair's angle, as llama.cpp applies it) are run; the other
     * kinds (linear, YaRN) are refused rather than computing other logits than the model
     * means */
    char skey[160];
    snprintf(skey, sizeof skey, "%s.rope.scaling.type", arch);
    const char *stype = NULL;
    if (bn_gguf_find_kv(g, skey) >= 0 && bn_gguf_get_str(g, skey, &stype) == BN_OK &&
        strcmp(stype, "none") != 0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "RoPE scaling ('%s' = '%s') is not "
                            "supported; only LLaMA 3.1 frequency factors (tensor "
                            "'rope_freqs.weight') are", skey, stype);
    if ((st = bn_load_rope_freqs(g, m)) != BN_OK)
        return st;

    /* embedding */
    int64_t ie = bn_gguf_find_tensor(g, "token_embd.weight");
    if (ie < 0)
        return bn_error_set(BN_ERR_FORMAT, "tensor 'token_embd.weight' is missing");
    m->embd = bn_gguf_get_tensor(g, ie);
    if (m->embd->ne[0] != in->n_embd || m->embd->ne[1] < 1 || m->embd->ne[1] > INT32_MAX ||
        m->embd->ne[2] != 1 || m->embd->ne[3] != 1)
        return bn_error_set(BN_ERR_FORMAT, "tensor 'token_embd.weight' has shape [%lld, %lld], "
                            "expected [%d, n_vocab]", (long long)m->embd->ne[0],
                            (long long)m->embd->ne[1], in->n_embd);
    in->n_vocab = (int32_t)m->embd->ne[1];
    int32_t vocab_key = 0;
    if ((st = bn_hp_int(g, arch, "vocab_size", in->n_vocab, &vocab_key)) != BN_OK)
        return st;
    if (vocab_key != in->n_vocab)
        return bn_error_set(BN_ERR_FORMAT, "%s.vocab_size is %d but token_embd.weight has %d "
                            "rows", arch, vocab_key, in->n_vocab);
    m->embd_to_f32 = bn_qtype_row_to_f32(m->embd->type);
    if (!m->embd_to_f32) {
        const bn_qtype_info *qi = bn_qtype_get(m->embd->type);
        return bn_error_set(BN_ERR_UNSUPPORTED, "token_embd.weight has type %s, which cannot "
                            "be read by rows", qi ? qi->name : "unknown");
    }
    if ((st = bn_qtype_tensor_size(m->embd->type, in->n_embd, 1, &m->embd_row_bytes)) != BN_OK)
        return bn_error_wrap(st, "token_embd.weight");

    /* norms: attn, attn_sub, ffn, ffn_sub per layer + output */
    int64_t E = in->n_embd, F = in->n_ff, L = in->n_layer;
    int64_t kv = (int64_t)in->n_head_kv * head_dim;
    size_t n_norm = (size_t)(L * (a->sub_norms ? 3 * E + F : 2 * E) + E);
    m->norms = bn_malloc(n_norm * sizeof(float), "model");
    m->layers = bn_calloc((size_t)L, sizeof *m->layers, "model");
    if (!m->norms || !m->layers)
        return bn_last_status();
    float *nv = m->norms;
    if ((st = bn_load_norm(g, "output_norm.weight", E, nv)) != BN_OK)
        return st;
    m->output_norm = nv;
    nv += E;

    char name[96];
    uint64_t n_params = 0;
    for (int64_t il = 0; il < L; il++) {
        bn_layer *ly = &m->layers[il];
#define BN_NORM(field, suffix, n)                                                   \
        snprintf(name, sizeof name, "blk.%lld." suffix ".weight", (long long)il);   \
        if ((st = bn_load_norm(g, name, n, nv)) != BN_OK) return st;               \
        ly->field = nv; nv += n;
#define BN_PROJ(field, suffix, nin, nout)                                           \
        snprintf(name, sizeof name, "blk.%lld." suffix ".weight", (long long)il);   \
        if ((st = bn_load_linear(g, name, nin, nout, &ly->field)) != BN_OK) return st; \
        n_params += (uint64_t)(nin) * (uint64_t)(nout);
        BN_NORM(attn_norm, "attn_norm", E)
        BN_NORM(ffn_norm, "ffn_norm", E)
        if (a->sub_norms) {
            BN_NORM(attn_sub_norm, "attn_sub_norm", E)
            BN_NORM(ffn_sub_norm, "ffn_sub_norm", F)
        }
        BN_PROJ(wq, "attn_q", E, E)
        BN_PROJ(wk, "attn_k", E, kv)
        BN_PROJ(wv, "attn_v", E, kv)
        BN_PROJ(wo, "attn_output", E, E)
        BN_PROJ(gate, "ffn_gate", E, F)
        BN_PROJ(up, "ffn_up", E, F)
        BN_PROJ(down, "ffn_down", F, E)
#undef BN_NORM
#undef BN_PROJ
    }

    /* output layer: output.weight, or the tied embedding */
    if (bn_gguf_find_tensor(g, "output.weight") >= 0) {
        if ((st = bn_load_linear(g, "output.weight", E, in->n_vocab, &m->output)) != BN_OK)
            return st;
        in->tied_output = false;
        n_params += (uint64_t)E * (uint64_t)in->n_vocab;
    } else {
        if ((st = bn_load_linear(g, "token_embd.weight", E, in->n_vocab, &m->output)) != BN_OK)
            return st;
        in->tied_output = true;
    }
    n_params += (uint64_t)E * (uint64_t)in->n_vocab + (uint64_t)n_norm;
    in->n_params = n_params;
    in->proj_type = m->layers[0].wq.type;
    in->proj_held_type = in->proj_type;
    m->float_proj = false;   /* the output layer reads codes only when it is ternary */
    for (int64_t il = 0; il < L; il++) {
        bn_linear *all[7];
        bn_layer_linears(&m->layers[il], all);
        for (int j = 0; j < 7; j++)
            m->float_proj |= !all[j]->ternary;
    }
    in->output_type = m->output.type;
    in->output_file_type = m->output.type;

    if ((st = bn_choose_ffn_act(g, a, params->ffn_act, &m->ffn_act)) != BN_OK)
        return st;
    in->ffn_act = m->ffn_act;
    const bn_qtype_info *pq = bn_qtype_get(in->proj_type);
    if (params->act_quant == BN_ACT_QUANT_ON)
        m->act_quant = true;
    else if (params->act_quant == BN_ACT_QUANT_OFF)
        m->act_quant = false;
    else
        m->act_quant = (pq && pq->is_ternary) || a->bitnet;
    in->act_quant = m->act_quant;

    uint64_t bytes = 0;
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++)
        bytes += bn_gguf_get_tensor(g, i)->nbytes;
    in->weight_bytes = bytes;
    in->file_size = bn_gguf_file_size(g);

    /* the tokenizer, when the file has one */
    if (bn_gguf_find_kv(g, "tokenizer.ggml.model") >= 0) {
        if ((st = bn_tokenizer_load_gguf(g, &m->tok)) != BN_OK)
            return st;
        if (bn_tokenizer_n_vocab(m->tok) > in->n_vocab)
            return bn_error_set(BN_ERR_FORMAT, "the tokenizer has %d tokens but the model only "
                                "%d embeddings", bn_tokenizer_n_vocab(m->tok), in->n_vocab);
    }
    return BN_OK;
}

typedef struct bn_convert_job {
    const bn_linear *src;
    uint8_t *dst;
    size_t dst_row;
    int type;
    float *tmp;          /* [threads][n_in] */
    int64_t r0, r1;      /* the rows of this pass */
    _Atomic int failed;
} bn_convert_job;

/* Rows converted per pass: the source rows of a pass are given back to the file after
 * it, so that a file read into memory never holds the whole layer twice. */
#define BN_CONVERT_ROWS 4096

static void bn_convert_task(void *ctx, int ith, int nth)
{
    bn_convert_job *j = ctx;
    const bn_linear *l = j->src;
    float *row = j->tmp + (size_t)ith * (size_t)l->n_in;
    const int64_t n = j->r1 - j->r0;
    for (int64_t r = j->r0 + n * ith / nth; r < j->r0 + n * (ith + 1) / nth; r++) {
        l->to_f32(l->data + (size_t)r * l->row_bytes, row, l->n_in);
        if (bn_quantize(j->type, row, l->n_in, 1, j->dst + (size_t)r * j->dst_row,
                        j->dst_row) != BN_OK)
            j->failed = 1;
    }
}

/* Convert the output layer to `type` in memory (bn_model_params.output_type). The
 * memory of the file's copy is given back as the conversion goes (only the few rows of
 * the token lookups come back, from the file, when it is the tied embedding). */
static bn_status bn_model_convert_output(bn_model *m, int type)
{
    bn_linear *l = &m->output;
    const bn_qtype_info *from = bn_qtype_get(l->type), *to = bn_qtype_get(type);
    if (l->ternary || !l->to_f32 || (l->type != BN_QT_F32 && l->type != BN_QT_F16 &&
                                     l->type != BN_QT_BF16))
        return bn_error_set(BN_ERR_UNSUPPORTED, "the output layer is %s: only a float "
                            "(f32/f16/bf16) one can be converted to %s",
                            from ? from->name : "?", to ? to->name : "?");
    size_t row = 0;
    bn_status st = bn_qtype_tensor_size(type, l->n_in, 1, &row);
    if (st != BN_OK)
        return bn_error_wrap(st, "converting the output layer");
    int nth = bn_get_num_threads();
    bn_convert_job job = {l, bn_malloc(row * (size_t)l->n_out, "output-layer"), row, type,
                          bn_malloc((size_t)nth * (size_t)l->n_in * sizeof(float), "model"),
                          0, 0, 0};
    if (!job.dst || !job.tmp) {
        bn_free(job.dst);
        bn_free(job.tmp);
        return bn_error_wrap(BN_OK, "converting the output layer to %s", to->name);
    }
    bn_advise_huge(job.dst, row * (size_t)l->n_out);
    const uint8_t *released = l->data;     /* given back up to here */
    for (job.r0 = 0; job.r0 < l->n_out && !job.failed; job.r0 = job.r1) {
        job.r1 = l->n_out - job.r0 < BN_CONVERT_ROWS ? l->n_out : job.r0 + BN_CONVERT_ROWS;
        bn_run_on_default_pool(bn_convert_task, &job);
        const uint8_t *end = l->data + (size_t)job.r1 * l->row_bytes;
        bn_gguf_release_pages(m->gguf, released, (size_t)(end - released));
        released = bn_gguf_release_mark(m->gguf, released, end);
    }
    bn_free(job.tmp);
    if (job.failed) {
        bn_free(job.dst);
        return bn_error_wrap(BN_OK, "converting the output layer to %s", to->name);
    }
    m->output_mem = job.dst;
    l->data = job.dst;
    l->type = type;
    l->row_bytes = row;
    l->to_f32 = bn_qtype_row_to_f32(type);
    m->info.output_type = type;
    m->info.converted_bytes = row * (size_t)l->n_out;
    return BN_OK;
}

/* TQ1_0 projections held as TQ2_0 (bn_model_params.keep_tq1_0): the same codes (t in
 * {0, 1, 2}, read by the format's decoder as t - 1) and the same f16 block scales,
 * repacked two bits a code. */
typedef struct bn_tq1_job {
    const bn_linear *src;
    uint8_t *dst;
} bn_tq1_job;

static void bn_tq1_task(void *ctx, int ith, int nth)
{
    bn_tq1_job *j = ctx;
    const bn_linear *l = j->src;
    const int64_t nb = l->n_in / BN_QK_K;
    int8_t w[BN_QK_K];
    float d;   /* unused: the f16 scale is copied as it is */
    for (int64_t r = l->n_out * ith / nth; r < l->n_out * (ith + 1) / nth; r++) {
        const bn_block_tq1_0 *in =
            (const bn_block_tq1_0 *)(l->data + (size_t)r * l->row_bytes);
        bn_block_tq2_0 *out = (bn_block_tq2_0 *)(j->dst + (size_t)(r * nb) * sizeof *out);
        for (int64_t b = 0; b < nb; b++) {
            bn_decode_row_tq1_0(&in[b], w, &d, BN_QK_K);
            for (int half = 0; half < 2; half++)
                for (int m = 0; m < 32; m++) {
                    const int8_t *y = w + 128 * half + m;
                    out[b].qs[32 * half + m] = (uint8_t)((y[0] + 1) | (y[32] + 1) << 2 |
                                                         (y[64] + 1) << 4 |
                                                         (y[96] + 1) << 6);
                }
            out[b].d = in[b].d;
        }
    }
}

static bn_status bn_model_repack_tq1(bn_model *m)
{
    const bn_model_info *in = &m->info;
    size_t total = 0;
    for (int32_t i = 0; i < in->n_layer; i++) {
        bn_linear *ls[7];
        bn_layer_linears(&m->layers[i], ls);
        for (int k = 0; k < 7; k++)
            if (ls[k]->type == BN_QT_TQ1_0)
                total += (size_t)(ls[k]->n_out * (ls[k]->n_in / BN_QK_K)) *
                         sizeof(bn_block_tq2_0);
    }
    if (total == 0)
        return BN_OK;
    uint8_t *mem = bn_malloc(total, "projections");
    if (!mem)
        return bn_error_wrap(BN_OK, "holding the tq1_0 projections as tq2_0");
    bn_advise_huge(mem, total);
    size_t at = 0;
    for (int32_t i = 0; i < in->n_layer; i++) {
        bn_linear *ls[7];
        bn_layer_linears(&m->layers[i], ls);
        for (int k = 0; k < 7; k++) {
            bn_linear *l = ls[k];
            if (l->type != BN_QT_TQ1_0)
                continue;
            bn_tq1_job job = {l, mem + at};
            bn_run_on_default_pool(bn_tq1_task, &job);
            bn_gguf_release_pages(m->gguf, l->data, l->row_bytes * (size_t)l->n_out);
            l->data = mem + at;
            l->type = BN_QT_TQ2_0;
            l->row_bytes = (size_t)(l->n_in / BN_QK_K) * sizeof(bn_block_tq2_0);
            at += l->row_bytes * (size_t)l->n_out;
        }
    }
    m->proj_mem = mem;
    m->info.proj_held_type = m->layers[0].wq.type;
    m->info.converted_bytes += total;
    return BN_OK;
}

/* Gives back the pages of the file that no weight in use points into any more (the
 * projections held in another form, the norms and scales copied at load), a run of
 * such tensors at a time: one tensor at a time, the small projections (a 2B-4T layer's
 * q, k, v and o are 0.4 to 1.7 MB in TQ2_0) would give back no whole 2 MiB page of a
 * read-in image. The bytes stay readable (bn_gguf_release_pages). */
static int bn_tensor_by_offset(const void *a, const void *b)
{
    const bn_gguf_tensor *x = *(const bn_gguf_tensor *const *)a;
    const bn_gguf_tensor *y = *(const bn_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static bool bn_tensor_in_use(const bn_model *m, const bn_gguf_tensor *t)
{
    if (t->data == m->embd->data || t->data == m->output.data)
        return true;
    for (int32_t i = 0; i < m->info.n_layer; i++) {
        bn_linear *ls[7];
        bn_layer_linears(&m->layers[i], ls);
        for (int k = 0; k < 7; k++)
            if (t->data == ls[k]->data)
                return true;
    }
    return false;
}

static void bn_model_release_unused(bn_model *m)
{
    const int64_t n = bn_gguf_n_tensors(m->gguf);
    const bn_gguf_tensor **ts = n > 0 ? bn_malloc((size_t)n * sizeof *ts, "model") : NULL;
    if (!ts) {
        bn_error_clear();   /* nothing is given back: the load goes on */
        return;
    }
    for (int64_t i = 0; i < n; i++)
        ts[i] = bn_gguf_get_tensor(m->gguf, i);
    qsort(ts, (size_t)n, sizeof *ts, bn_tensor_by_offset);
    const uint8_t *run = NULL;   /* the start of the run of unused tensors, or NULL */
    for (int64_t i = 0; i <= n; i++) {
        const bool used = i == n || bn_tensor_in_use(m, ts[i]);
        if (!used && !run)
            run = ts[i]->data;
        if (used && run) {
            const uint8_t *end = i < n ? (const uint8_t *)ts[i]->data
                                       : (const uint8_t *)ts[n - 1]->data + ts[n - 1]->nbytes;
            bn_gguf_release_pages(m->gguf, run, (size_t)(end - run));
            run = NULL;
        }
    }
    bn_free(ts);
}

/* TQ2_0 and TQ1_0 projections whose every row has one finite scale in all its blocks
 * (converted BitNet models have: one scale per tensor) held in I2_S's code layout, each
 * row's scale beside (bn_model_params.keep_tq2_0). All three formats store a weight w
 * as the code w + 1, and code 3 weighs +2 in both 2-bit ones; a TQ2_0 block's 64 bytes
 * are two I2_S blocks of 32, byte j of each holding weights j, 32 + j, 64 + j, 96 + j
 * in bits 1-0, 3-2, 5-4, 7-6 where I2_S has them in bits 7-6, 5-4, 3-2, 1-0. So a byte
 * of TQ2_0 codes is its four bit pairs in reverse order (a TQ1_0 block goes through its
 * decoder), and the scale moves out of the rows: the rows stream at I2_S's rate (no
 * 2-byte scale between blocks of 64) on I2_S's kernels. The sums are the same
 * integers, and linear.c scales them as TQ2_0's (row_scale). */
typedef struct bn_hold_job {
    const bn_linear *src;
    uint8_t *dst;      /* [n_out][n_in / 4] */
    float *scale;      /* [n_out] */
    uint8_t lut[256];  /* a byte of TQ2_0 codes -> the byte of I2_S codes */
} bn_hold_job;

static void bn_hold_task(void *ctx, int ith, int nth)
{
    bn_hold_job *j = ctx;
    const bn_linear *l = j->src;
    const int64_t nb = l->n_in / BN_QK_K;
    for (int64_t r = l->n_out * ith / nth; r < l->n_out * (ith + 1) / nth; r++) {
        const uint8_t *row = l->data + (size_t)r * l->row_bytes;
        uint8_t *out = j->dst + (size_t)r * (size_t)(l->n_in / 4);
        uint16_t h;
        if (l->type == BN_QT_TQ2_0) {
            const bn_block_tq2_0 *in = (const bn_block_tq2_0 *)(const void *)row;
            for (int64_t b = 0; b < nb; b++)
                for (int i = 0; i < BN_QK_K / 4; i++)
                    out[b * (BN_QK_K / 4) + i] = j->lut[in[b].qs[i]];
            memcpy(&h, &in[0].d, sizeof h);
        } else {
            const bn_block_tq1_0 *in = (const bn_block_tq1_0 *)(const void *)row;
            int8_t w[BN_QK_K];
            float d;   /* unused: the f16 scale is read as it is */
            for (int64_t b = 0; b < nb; b++) {
                bn_decode_row_tq1_0(&in[b], w, &d, BN_QK_K);
                for (int i = 0; i < BN_QK_K / 4; i++) {
                    const int8_t *y = w + 128 * (i / 32) + i % 32;
                    out[b * (BN_QK_K / 4) + i] = (uint8_t)((y[0] + 1) << 6 | (y[32] + 1) << 4 |
                                                           (y[64] + 1) << 2 | (y[96] + 1));
                }
            }
            memcpy(&h, &in[0].d, sizeof h);
        }
        j->scale[r] = bn_f16_to_f32(h);
    }
}

/* Whether every row of TQ2_0 or TQ1_0 projection l has one finite scale in all its
 * blocks, tested on the pool's threads (a mapped file's pages of it are read in here). */
typedef struct bn_scale_job {
    const bn_linear *l;
    atomic_int differ;
} bn_scale_job;

static void bn_scale_task(void *ctx, int ith, int nth)
{
    bn_scale_job *j = ctx;
    const bn_linear *l = j->l;
    const int64_t r0 = l->n_out * ith / nth, r1 = l->n_out * (ith + 1) / nth;
    const uint8_t *rows = l->data + (size_t)r0 * l->row_bytes;
    const int64_t nb = l->n_in / BN_QK_K;
    const bool tq2 = l->type == BN_QT_TQ2_0;
    if (r1 > r0 && !bn_rows_one_scale(rows, l->row_bytes, nb,
                                      tq2 ? sizeof(bn_block_tq2_0) : sizeof(bn_block_tq1_0),
                                      tq2 ? offsetof(bn_block_tq2_0, d)
                                          : offsetof(bn_block_tq1_0, d), r1 - r0))
        atomic_store(&j->differ, 1);
}

static bool bn_tq_one_scale(const bn_linear *l)
{
    bn_scale_job job = {.l = l};
    atomic_init(&job.differ, 0);
    bn_run_on_default_pool(bn_scale_task, &job);
    return !atomic_load(&job.differ);
}

/* The bytes projection l takes held in I2_S's layout: the codes, then the row scales
 * from the next 64-byte boundary. */
static size_t bn_held_codes_bytes(const bn_linear *l)
{
    return ((size_t)l->n_out * (size_t)(l->n_in / 4) + 63) & ~(size_t)63;
}

/* Holds the TQ2_0 projections (and the TQ1_0 ones with tq1) that qualify. */
static bn_status bn_model_hold_i2s(bn_model *m, bool tq1)
{
    const bn_model_info *in = &m->info;
    size_t total = 0;
    for (int32_t i = 0; i < in->n_layer; i++) {
        bn_linear *ls[7];
        bn_layer_linears(&m->layers[i], ls);
        for (int k = 0; k < 7; k++) {
            bn_linear *l = ls[k];
            l->one_scale = (l->type == BN_QT_TQ2_0 || (tq1 && l->type == BN_QT_TQ1_0)) &&
                           bn_tq_one_scale(l);
            if (l->one_scale)
                total += bn_held_codes_bytes(l) + (size_t)l->n_out * sizeof(float);
        }
    }
    if (total == 0)
        return BN_OK;
    uint8_t *mem = bn_malloc(total, "projections");
    if (!mem)
        return bn_error_wrap(BN_OK, "holding the ternary projections in i2_s's layout");
    bn_advise_huge(mem, total);
    bn_hold_job job;
    for (int v = 0; v < 256; v++)
        job.lut[v] = (uint8_t)((v & 3) << 6 | (v >> 2 & 3) << 4 | (v >> 4 & 3) << 2 | v >> 6);
    size_t at = 0;
    for (int32_t i = 0; i < in->n_layer; i++) {
        bn_linear *ls[7];
        bn_layer_linears(&m->layers[i], ls);
        for (int k = 0; k < 7; k++) {
            bn_linear *l = ls[k];
            if (!l->one_scale)
                continue;
            job.src = l;
            job.dst = mem + at;
            job.scale = (float *)(void *)(mem + at + bn_held_codes_bytes(l));
            bn_run_on_default_pool(bn_hold_task, &job);
            l->data = job.dst;
            l->row_scale = job.scale;
            l->type = BN_QT_I2_S;
            l->row_bytes = (size_t)(l->n_in / 4);
            l->one_scale = false;
            at += bn_held_codes_bytes(l) + (size_t)l->n_out * sizeof(float);
        }
        bn_model_release_unused(m);   /* a layer at a time: the peak stays near the file */
    }
    m->hold_mem = mem;
    m->info.proj_held_type = m->layers[0].wq.type;
    m->info.converted_bytes += total;
    return BN_OK;
}

/* BN_LOAD_AUTO's rule (bitnet.h). */
static bool bn_model_wants_read(const char *path, bn_load_mode mode)
{
    if (mode != BN_LOAD_AUTO)
        return mode == BN_LOAD_READ;
    struct stat sb;
    if (bn_thp_size() == 0 || stat(path, &sb) != 0 || sb.st_size < ((off_t)64 << 20))
        return false;
    return (uint64_t)sb.st_size <= bn_mem_available() / 2;
}

/* Whether every row of a TQ2_0 projection still held as such has one finite scale in
 * all its blocks, tested once here where the kernels have a matrix kernel or a two-row
 * tile for TQ2_0, which would otherwise test every row they are given at every call
 * (eight sequences decoded 6% faster without that on the Intel Xeon measured). */
static void bn_model_test_scales(bn_model *m)
{
    if (!bn_kernels()->dot_tq2_q8_matrix && !bn_kernels()->dot_tq2_q8_tile2)
        return;
    for (int32_t i = 0; i < m->info.n_layer; i++) {
        bn_linear *ls[7];
        bn_layer_linears(&m->layers[i], ls);
        for (int k = 0; k < 7; k++) {
            if (ls[k]->type != BN_QT_TQ2_0)
                continue;
            ls[k]->one_scale = bn_tq_one_scale(ls[k]);
        }
    }
}

bn_status bn_model_load(const char *path, const bn_model_params *params, bn_model **out)
{
    assert(path && out);
    bn_model_params def = bn_model_default_params();
    if (!params)
        params = &def;
    if (params->ffn_act < BN_FFN_ACT_AUTO || params->ffn_act > BN_FFN_ACT_SILU ||
        params->act_quant < BN_ACT_QUANT_AUTO || params->act_quant > BN_ACT_QUANT_OFF ||
        params->load < BN_LOAD_AUTO || params->load > BN_LOAD_READ)
        return bn_error_set(BN_ERR_INVALID_ARG, "bn_model_load: bad parameters");
    if (params->output_type != -1 && params->output_type != BN_QT_Q8_0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "bn_model_load: the output layer can be "
                            "kept in q8_0 only (asked for type %d)", params->output_type);
    bn_model *m = bn_calloc(1, sizeof *m, "model");
    if (!m)
        return bn_error_wrap(BN_OK, "loading %s", path);
    size_t len = strlen(path);
    m->path = bn_malloc(len + 1, "model");
    if (!m->path) {
        bn_model_free(m);
        return bn_error_wrap(BN_OK, "loading %s", path);
    }
    memcpy(m->path, path, len + 1);
    bn_status st;
    if (bn_model_wants_read(path, params->load)) {
        st = bn_gguf_open_read(path, params->progress, params->progress_user, &m->gguf);
    } else {
        /* mapped: nothing is read now, the pages come in when first used */
        st = bn_gguf_open(path, &m->gguf);
        uint64_t size = st == BN_OK ? bn_gguf_file_size(m->gguf) : 0;
        if (st == BN_OK && params->progress &&
            !params->progress(size, size, params->progress_user))
            st = bn_error_set(BN_ERR_IO, "loading %s: cancelled", path);
    }
    if (st != BN_OK) {
        /* the reader's messages name the file already ("opening m.gguf: ...",
         * "loading m.gguf: ..."): a second "loading m.gguf" would repeat it */
        bn_model_free(m);
        return st;
    }
    st = bn_model_read(m, params);
    if (st == BN_OK && params->output_type >= 0 && params->output_type != m->output.type)
        st = bn_model_convert_output(m, params->output_type);
    /* I2_S's layout first, so that TQ1_0 projections that go there take no TQ2_0 copy */
    if (st == BN_OK && !params->keep_tq2_0)
        st = bn_model_hold_i2s(m, !params->keep_tq1_0);
    if (st == BN_OK && !params->keep_tq1_0)
        st = bn_model_repack_tq1(m);
    /* the hold tested every TQ2_0 projection of the file already (those left failed);
     * the TQ1_0 ones just repacked, or all when kept, are tested here */
    if (st == BN_OK && (params->keep_tq2_0 || m->proj_mem))
        bn_model_test_scales(m);
    if (st != BN_OK) {
        bn_model_free(m);
        return bn_error_wrap(BN_OK, "loading %s", path);
    }
    m->info.weights_read = bn_gguf_is_read(m->gguf);
    m->info.weights_huge_bytes = bn_gguf_huge_bytes(m->gguf);
    *out = m;
    return BN_OK;
}

void bn_model_free(bn_model *m)
{
    if (!m)
        return;
    bn_tokenizer_free(m->tok);
    bn_gguf_close(m->gguf);
    bn_free(m->output_mem);
    bn_free(m->proj_mem);
    bn_free(m->hold_mem);
    bn_free(m->norms);
    bn_free(m->rope_freqs);
    bn_free(m->layers);
    bn_free(m->path);
    bn_free(m);
}

void bn_model_get_info(const bn_model *m, bn_model_info *out)
{
    assert(m && out);
    *out = m->info;
}

int32_t bn_model_n_vocab(const bn_model *m)
{
    assert(m);
    return m->info.n_vocab;
}

const bn_tokenizer *bn_model_tokenizer(const bn_model *m)
{
    assert(m);
    return m->tok;
}

const bn_gguf *bn_model_gguf(const bn_model *m)
{
    assert(m);
    return m->gguf;
}
