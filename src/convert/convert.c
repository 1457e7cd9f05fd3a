/*
 * convert.c - Hugging Face checkpoints (config.json, safetensors, tokenizer) to GGUF.
 *
 * The layouts, as the transformers modelling and integration code defines them:
 *   BitNetForCausalLM, no quantization_config   microsoft bitnet-b1.58-2B-4T-bf16: float
 *       master weights, ternarized here per tensor with the absmean rule; sub-norms
 *       self_attn.attn_sub_norm and mlp.ffn_sub_norm; arch bitnet-b1.58
 *   BitNetForCausalLM, quant_method "bitnet"     microsoft bitnet-b1.58-2B-4T: uint8
 *       [out/4, in] weights, 4 codes a byte along the output rows (row r in bits
 *       2*(r / (out/4)), code = ternary + 1) and a one-element weight_scale
 *   BitnetForCausalLM                            1bitLLM bitnet_b1_58-*: float latent
 *       weights, ternarized here; sub-norms self_attn.inner_attn_ln and
 *       mlp.ffn_layernorm; arch bitnet with SiLU
 *   LlamaForCausalLM, quant_method "bitnet"      Falcon3-*-1.58bit, Llama3-8B-1.58:
 *       packed as above; arch llama, whose RoPE turns adjacent pairs, so the rows of
 *       q and k are permuted from Hugging Face's half-split order
 * The weight_scale of a packed tensor multiplies the output when the config's
 * linear_class is "autobitlinear" (transformers' AutoBitLinear) and divides it
 * otherwise (BitLinear, the default): the ternary tensor is stored with scale
 * weight_scale or 1 / weight_scale accordingly.
 *
 * Everything is checked before the output file is started: the config's numbers, the
 * presence, dtype and shape of every tensor. The tensors are then made one at a time
 * while the GGUF writer streams them out (bn_gguf_writer_add_tensor_fn), and the source
 * pages of each are released after use, so memory stays near one tensor's worth.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core/internal.h"
#include "io/safetensors.h"
#include "tokenizer/tokenizer_internal.h"

typedef enum bn_cv_layout {
    BN_CV_BITNET_FLOAT = 0,  /* BitNetForCausalLM, float master weights */
    BN_CV_BITNET_PACKED,     /* BitNetForCausalLM, packed 2-bit + weight_scale */
    BN_CV_1BITLLM,           /* BitnetForCausalLM: float latent, inner_attn_ln */
    BN_CV_LLAMA_PACKED       /* LlamaForCausalLM with a bitnet quantization_config */
} bn_cv_layout;

static const char *const bn_cv_layout_names[] = {
    "BitNetForCausalLM (float master weights, ternarized with absmean)",
    "BitNetForCausalLM (packed 2-bit weights with weight_scale)",
    "BitnetForCausalLM (1bitLLM: float latent weights, ternarized with absmean)",
    "LlamaForCausalLM (bitnet quantization: packed 2-bit weights with weight_scale)",
};

/* How one output tensor is made. */
typedef enum bn_cv_kind {
    BN_CV_NORM = 0,   /* a vector, to f32 */
    BN_CV_FLOAT,      /* a float matrix, to the target type in chunks of rows */
    BN_CV_TERNARIZE,  /* a float matrix, absmean-ternarized, to the target type */
    BN_CV_PACKED,     /* packed codes + weight_scale, to the target type */
    BN_CV_ROPE_FREQS  /* LLaMA 3.1 RoPE frequency factors, computed */
} bn_cv_kind;

typedef struct bn_cv_job {
    char                gguf_name[64];
    bn_cv_kind          kind;
    bn_qtype            type;
    int                 n_dims;
    int64_t             ne[2];        /* ne[0]: row length (in), ne[1]: rows (out) */
    const bn_st_tensor *src, *scale;
    int                 permute_heads;/* q/k rows from half-split to pairs: heads, or 0 */
    const struct bn_cv_state *cv;
} bn_cv_job;

/* The config.json numbers that the conversion uses. */
typedef struct bn_cv_config {
    bn_cv_layout layout;
    const char  *arch;           /* GGUF architecture */
    const char  *act;            /* "relu2" or "silu" */
    int64_t      n_embd, n_ff, n_head, n_head_kv, n_layer, n_vocab, n_ctx, head_dim;
    double       rms_eps, rope_theta;
    bool         tied;
    bool         tie_given;      /* tie_word_embeddings is in the config */
    bool         scale_multiplies;  /* linear_class autobitlinear */
    /* LLaMA 3 RoPE scaling, when rope_scaling.rope_type is "llama3" */
    bool         rope_llama3;
    double       rope_factor, rope_low, rope_high, rope_orig_ctx;
    bool         rope_linear;    /* rope_scaling.type "linear" */
} bn_cv_config;

typedef struct bn_cv_state {
    bn_cv_config       cfg;
    bn_st_model       *st;
    bn_cv_job         *jobs;
    int                n_jobs;
    bn_convert_params  params;
    bn_convert_stats  *stats;
} bn_cv_state;

bn_convert_params bn_convert_default_params(void)
{
    bn_convert_params p = {.proj_type = BN_QT_I2_S, .embd_type = BN_QT_F16,
                           .lm_head_type = BN_QT_F16, .progress = NULL,
                           .progress_user = NULL};
    return p;
}

/* ------------------------------------------------------------------ config */

/* An integer member of the config: required when def < 0. */
static bn_status bn_cv_int(const json_t *cfg, const char *key, int64_t def, int64_t lo,
                           int64_t hi, int64_t *out)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        if (def < 0)
            return bn_error_set(BN_ERR_FORMAT, "config.json: '%s' is missing", key);
        *out = def;
        return BN_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bn_error_set(BN_ERR_FORMAT, "config.json: '%s' must be an integer from "
                            "%lld to %lld", key, (long long)lo, (long long)hi);
    *out = (int64_t)json_integer_value(v);
    return BN_OK;
}

/* A number member of the config, `def` when absent. */
static bn_status bn_cv_num(const json_t *obj, const char *where, const char *key, double def,
                           double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return BN_OK;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) <= 0)
        return bn_error_set(BN_ERR_FORMAT, "config.json: '%s%s' must be a positive number",
                            where, key);
    *out = json_number_value(v);
    return BN_OK;
}

/* The layout from architectures[0] and quantization_config. */
static bn_status bn_cv_layout_of(const json_t *cfg, bn_cv_config *c)
{
    const char *arch = json_string_value(json_array_get(json_object_get(cfg,
                                                                        "architectures"), 0));
    if (!arch)
        return bn_error_set(BN_ERR_FORMAT, "config.json: no 'architectures' list");
    const json_t *q = json_object_get(cfg, "quantization_config");
    const char *method = json_string_value(json_object_get(q, "quant_method"));
    if (q && !json_is_null(q) && (!method || strcmp(method, "bitnet") != 0))
        return bn_error_set(BN_ERR_UNSUPPORTED, "config.json: quantization method '%s' is "
                            "not supported (bitnet is)", method ? method : "(none)");
    bool packed = method != NULL;
    const char *lc = json_string_value(json_object_get(q, "linear_class"));
    c->scale_multiplies = lc && strcmp(lc, "autobitlinear") == 0;
    if (lc && !c->scale_multiplies && strcmp(lc, "bitlinear") != 0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "config.json: linear_class '%s' is not "
                            "supported (bitlinear, autobitlinear)", lc);
    const char *mode = json_string_value(json_object_get(q, "quantization_mode"));
    if (mode && strcmp(mode, "offline") != 0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "config.json: quantization_mode '%s' is "
                            "not supported (offline: ternary weights stored packed)", mode);
    if (strcmp(arch, "BitNetForCausalLM") == 0) {
        c->layout = packed ? BN_CV_BITNET_PACKED : BN_CV_BITNET_FLOAT;
        c->arch = "bitnet-b1.58";
    } else if (strcmp(arch, "BitnetForCausalLM") == 0 && !packed) {
        c->layout = BN_CV_1BITLLM;
        c->arch = "bitnet";
    } else if (strcmp(arch, "LlamaForCausalLM") == 0 && packed) {
        c->layout = BN_CV_LLAMA_PACKED;
        c->arch = "llama";
    } else if (strcmp(arch, "LlamaForCausalLM") == 0) {
        return bn_error_set(BN_ERR_UNSUPPORTED, "config.json: a LlamaForCausalLM without a "
                            "quantization_config of method bitnet is not a ternary "
                            "checkpoint");
    } else {
        return bn_error_set(BN_ERR_UNSUPPORTED, "config.json: architecture '%s' is not "
                            "supported (BitNetForCausalLM, BitnetForCausalLM, "
                            "LlamaForCausalLM with bitnet quantization)", arch);
    }
    return BN_OK;
}

/* rope_scaling: none, LLaMA 3's frequency factors or linear; others are refused. */
static bn_status bn_cv_rope_scaling(const json_t *cfg, bn_cv_config *c)
{
    const json_t *rs = json_object_get(cfg, "rope_scaling");
    if (!rs || json_is_null(rs))
        return BN_OK;
    const char *type = json_string_value(json_object_get(rs, "rope_type"));
    if (!type)
        type = json_string_value(json_object_get(rs, "type"));
    if (!type)
        return bn_error_set(BN_ERR_FORMAT, "config.json: rope_scaling has no rope_type");
    bn_status st = bn_cv_num(rs, "rope_scaling.", "factor", 1.0, &c->rope_factor);
    if (st != BN_OK)
        return st;
    if (strcmp(type, "linear") == 0) {
        c->rope_linear = true;
        return BN_OK;
    }
    if (strcmp(type, "llama3") != 0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "config.json: rope_scaling type '%s' is not "
                            "supported (llama3, linear)", type);
    c->rope_llama3 = true;
    if ((st = bn_cv_num(rs, "rope_scaling.", "low_freq_factor", 1.0, &c->rope_low)) != BN_OK ||
        (st = bn_cv_num(rs, "rope_scaling.", "high_freq_factor", 4.0, &c->rope_high)) != BN_OK ||
        (st = bn_cv_num(rs, "rope_scaling.", "original_max_position_embeddings", 8192.0,
                        &c->rope_orig_ctx)) != BN_OK)
        return st;
    if (!(c->rope_high > c->rope_low))
        return bn_error_set(BN_ERR_FORMAT, "config.json: rope_scaling high_freq_factor must "
                            "be larger than low_freq_factor");
    return BN_OK;
}

/* The numbers of the config: sizes, heads, norms, RoPE, activation, tying. */
static bn_status bn_cv_shape(const json_t *cfg, bn_cv_config *c)
{
    bn_status st;
    if ((st = bn_cv_int(cfg, "hidden_size", -1, 1, 1 << 20, &c->n_embd)) != BN_OK ||
        (st = bn_cv_int(cfg, "intermediate_size", -1, 1, 1 << 20, &c->n_ff)) != BN_OK ||
        (st = bn_cv_int(cfg, "num_attention_heads", -1, 1, 1 << 14, &c->n_head)) != BN_OK ||
        (st = bn_cv_int(cfg, "num_hidden_layers", -1, 1, 1 << 12, &c->n_layer)) != BN_OK ||
        (st = bn_cv_int(cfg, "vocab_size", -1, 1, INT32_MAX, &c->n_vocab)) != BN_OK ||
        (st = bn_cv_int(cfg, "num_key_value_heads", c->n_head, 1, 1 << 14,
                        &c->n_head_kv)) != BN_OK ||
        (st = bn_cv_int(cfg, "max_position_embeddings", 2048, 1, INT32_MAX,
                        &c->n_ctx)) != BN_OK ||
        (st = bn_cv_num(cfg, "", "rms_norm_eps", 1e-6, &c->rms_eps)) != BN_OK ||
        (st = bn_cv_num(cfg, "", "rope_theta", 10000.0, &c->rope_theta)) != BN_OK)
        return st;
    if (c->n_embd % c->n_head != 0 || (c->n_embd / c->n_head) % 2 != 0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "config.json: hidden_size %lld over %lld "
                            "heads is not an even head size", (long long)c->n_embd,
                            (long long)c->n_head);
    c->head_dim = c->n_embd / c->n_head;
    int64_t hd = 0;
    if ((st = bn_cv_int(cfg, "head_dim", c->head_dim, 1, 1 << 16, &hd)) != BN_OK)
        return st;
    if (hd != c->head_dim)
        return bn_error_set(BN_ERR_UNSUPPORTED, "config.json: head_dim %lld is not "
                            "hidden_size / num_attention_heads (%lld)", (long long)hd,
                            (long long)c->head_dim);
    if (c->n_head % c->n_head_kv != 0)
        return bn_error_set(BN_ERR_FORMAT, "config.json: %lld heads cannot share %lld "
                            "key/value heads", (long long)c->n_head,
                            (long long)c->n_head_kv);
    const char *act = json_string_value(json_object_get(cfg, "hidden_act"));
    if (!act)
        act = c->layout <= BN_CV_BITNET_PACKED ? "relu2" : "silu";
    if (strcmp(act, "relu2") == 0)
        c->act = "relu2";
    else if (strcmp(act, "silu") == 0)
        c->act = "silu";
    else
        return bn_error_set(BN_ERR_UNSUPPORTED, "config.json: hidden_act '%s' is not "
                            "supported (relu2, silu)", act);
    const json_t *tie = json_object_get(cfg, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie))
        return bn_error_set(BN_ERR_FORMAT, "config.json: tie_word_embeddings is not a "
                            "boolean");
    c->tied = tie && json_is_true(tie);
    c->tie_given = tie != NULL;
    if (json_object_get(cfg, "attention_bias") == json_true() ||
        json_object_get(cfg, "mlp_bias") == json_true())
        return bn_error_set(BN_ERR_UNSUPPORTED, "config.json: biases (attention_bias, "
                            "mlp_bias) are not supported");
    return bn_cv_rope_scaling(cfg, c);
}

/* Reads DIR/config.json. */
static bn_status bn_cv_read_config(const char *dir, bn_cv_config *c)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!cfg) {
        struct stat sb;
        if (stat(path, &sb) != 0)
            return bn_error_set(BN_ERR_IO, "%s: no config.json (is it a Hugging Face model "
                                "folder?)", dir);
        return bn_error_set(BN_ERR_FORMAT, "%s: not valid JSON: %s (line %d)", path,
                            jerr.text, jerr.line);
    }
    bn_status st = json_is_object(cfg) ? bn_cv_layout_of(cfg, c)
                 : bn_error_set(BN_ERR_FORMAT, "config.json is not a JSON object");
    if (st == BN_OK)
        st = bn_cv_shape(cfg, c);
    json_decref(cfg);
    return st;
}

/* ------------------------------------------------------------------ tensors */

static bool bn_cv_is_float(bn_st_dtype dt)
{
    return dt == BN_ST_F32 || dt == BN_ST_F16 || dt == BN_ST_BF16 || dt == BN_ST_F64;
}

/* Looks a tensor up and checks its dtype class and shape (rows, cols; cols 0 for a
 * vector). */
static bn_status bn_cv_find(const bn_st_model *m, const char *name, bool packed,
                            int64_t rows, int64_t cols, const bn_st_tensor **out)
{
    const bn_st_tensor *t = bn_st_model_find(m, name);
    if (!t)
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s' is missing", name);
    if (packed ? t->dtype != BN_ST_U8 : !bn_cv_is_float(t->dtype))
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s' has dtype %s, expected %s", name,
                            bn_st_dtype_name(t->dtype), packed ? "U8 (packed ternary)"
                                                               : "a float type");
    int64_t want_rows = packed ? rows / 4 : rows;
    bool ok = cols ? t->n_dims == 2 && t->shape[0] == want_rows && t->shape[1] == cols
                   : t->n_dims == 1 && t->shape[0] == rows;
    if (!ok) {
        char got[96] = "[";
        for (int d = 0; d < t->n_dims && d < 4; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                     (long long)t->shape[d]);
        strcat(got, "]");
        if (cols)
            return bn_error_set(BN_ERR_SHAPE, "tensor '%s' has shape %s, expected [%lld, "
                                "%lld]", name, got, (long long)want_rows, (long long)cols);
        return bn_error_set(BN_ERR_SHAPE, "tensor '%s' has shape %s, expected [%lld]",
                            name, got, (long long)rows);
    }
    *out = t;
    return BN_OK;
}

/* Appends a job for a HF tensor. `rows` x `cols` is the logical [out, in] shape; cols
 * 0 for a norm vector. */
static bn_status bn_cv_add(bn_cv_state *cv, const char *gguf, const char *hf,
                           bn_cv_kind kind, bn_qtype type, int64_t rows, int64_t cols,
                           int permute_heads)
{
    bn_cv_job *j = &cv->jobs[cv->n_jobs];
    memset(j, 0, sizeof *j);
    snprintf(j->gguf_name, sizeof j->gguf_name, "%s", gguf);
    j->kind = kind;
    j->type = type;
    j->cv = cv;
    j->permute_heads = permute_heads;
    j->n_dims = cols ? 2 : 1;
    j->ne[0] = cols ? cols : rows;
    j->ne[1] = cols ? rows : 1;
    bn_status st = bn_cv_find(cv->st, hf, kind == BN_CV_PACKED, rows, cols, &j->src);
    if (st == BN_OK && kind == BN_CV_PACKED) {
        if (rows % 4 != 0)
            return bn_error_set(BN_ERR_SHAPE, "tensor '%s': %lld output rows do not pack 4 "
                                "to a byte", hf, (long long)rows);
        char sname[160];
        snprintf(sname, sizeof sname, "%.*s_scale", (int)(strlen(hf)), hf);
        j->scale = bn_st_model_find(cv->st, sname);
        if (!j->scale)
            return bn_error_set(BN_ERR_FORMAT, "tensor '%s' is missing (the scale of a "
                                "packed tensor)", sname);
        if (!bn_cv_is_float(j->scale->dtype) || j->scale->numel != 1)
            return bn_error_set(BN_ERR_FORMAT, "tensor '%s' must be one float value (it "
                                "has dtype %s and %lld elements)", sname,
                                bn_st_dtype_name(j->scale->dtype),
                                (long long)j->scale->numel);
    }
    if (st == BN_OK) {
        size_t bytes;
        st = bn_qtype_tensor_size(type, j->ne[0], j->ne[1], &bytes);
        if (st != BN_OK)
            return bn_error_wrap(BN_OK, "tensor '%s' as %s", hf, bn_qtype_get(type)->name);
    }
    if (st == BN_OK)
        cv->n_jobs++;
    return st;
}

/* The whole tensor list, checked against the config. */
static bn_status bn_cv_plan(bn_cv_state *cv)
{
    const bn_cv_config *c = &cv->cfg;
    int64_t E = c->n_embd, F = c->n_ff, KV = c->n_head_kv * c->head_dim;
    bool packed = c->layout == BN_CV_BITNET_PACKED || c->layout == BN_CV_LLAMA_PACKED;
    bool sub = c->layout != BN_CV_LLAMA_PACKED;
    bool llama = c->layout == BN_CV_LLAMA_PACKED;
    const char *attn_sub = c->layout == BN_CV_1BITLLM ? "self_attn.inner_attn_ln"
                                                      : "self_attn.attn_sub_norm";
    const char *ffn_sub = c->layout == BN_CV_1BITLLM ? "mlp.ffn_layernorm" : "mlp.ffn_sub_norm";
    bn_cv_kind proj = packed ? BN_CV_PACKED : BN_CV_TERNARIZE;
    bn_qtype pt = cv->params.proj_type;
    cv->jobs = bn_calloc((size_t)(c->n_layer * 11 + 4), sizeof *cv->jobs, "convert");
    if (!cv->jobs)
        return bn_error_wrap(BN_OK, "planning the conversion");
    bn_status st = bn_cv_add(cv, "token_embd.weight", "model.embed_tokens.weight",
                             BN_CV_FLOAT, c->tied ? cv->params.lm_head_type
                                                  : cv->params.embd_type, c->n_vocab, E, 0);
    for (int64_t l = 0; st == BN_OK && l < c->n_layer; l++) {
        const struct {
            const char *gguf, *hf;
            bn_cv_kind  kind;
            int64_t     rows, cols;
            int         permute;
        } parts[] = {
            {"attn_norm", "input_layernorm", BN_CV_NORM, E, 0, 0},
            {"attn_q", "self_attn.q_proj", proj, E, E, llama ? (int)c->n_head : 0},
            {"attn_k", "self_attn.k_proj", proj, KV, E, llama ? (int)c->n_head_kv : 0},
            {"attn_v", "self_attn.v_proj", proj, KV, E, 0},
            {"attn_output", "self_attn.o_proj", proj, E, E, 0},
            {"attn_sub_norm", attn_sub, BN_CV_NORM, E, 0, 0},
            {"ffn_norm", "post_attention_layernorm", BN_CV_NORM, E, 0, 0},
            {"ffn_gate", "mlp.gate_proj", proj, F, E, 0},
            {"ffn_up", "mlp.up_proj", proj, F, E, 0},
            {"ffn_down", "mlp.down_proj", proj, E, F, 0},
            {"ffn_sub_norm", ffn_sub, BN_CV_NORM, F, 0, 0},
        };
        for (size_t p = 0; st == BN_OK && p < sizeof parts / sizeof parts[0]; p++) {
            if (!sub && strstr(parts[p].gguf, "_sub_norm"))
                continue;
            char gname[64], hname[128];
            snprintf(gname, sizeof gname, "blk.%lld.%s.weight", (long long)l, parts[p].gguf);
            snprintf(hname, sizeof hname, "model.layers.%lld.%s.weight", (long long)l,
                     parts[p].hf);
            st = bn_cv_add(cv, gname, hname, parts[p].kind,
                           parts[p].kind == BN_CV_NORM ? BN_QT_F32 : pt, parts[p].rows,
                           parts[p].cols, parts[p].permute);
        }
    }
    if (st == BN_OK)
        st = bn_cv_add(cv, "output_norm.weight", "model.norm.weight", BN_CV_NORM,
                       BN_QT_F32, E, 0, 0);
    if (st == BN_OK && !c->tied && !c->tie_given &&
        !bn_st_model_find(cv->st, "lm_head.weight")) {
        /* no key and no lm_head: the output layer can only be the embedding */
        bn_log(BN_LOG_INFO, "convert: no tie_word_embeddings and no lm_head.weight: the "
               "output layer is the embedding");
        cv->cfg.tied = true;
        cv->jobs[0].type = cv->params.lm_head_type;
    }
    if (st == BN_OK && !cv->cfg.tied)
        st = bn_cv_add(cv, "output.weight", "lm_head.weight", BN_CV_FLOAT,
                       cv->params.lm_head_type, c->n_vocab, E, 0);
    if (st == BN_OK && c->rope_llama3) {
        bn_cv_job *j = &cv->jobs[cv->n_jobs++];
        memset(j, 0, sizeof *j);
        snprintf(j->gguf_name, sizeof j->gguf_name, "rope_freqs.weight");
        j->kind = BN_CV_ROPE_FREQS;
        j->type = BN_QT_F32;
        j->cv = cv;
        j->n_dims = 1;
        j->ne[0] = c->head_dim / 2;
        j->ne[1] = 1;
    }
    return st;
}

/* Logs the checkpoint's tensors that the conversion does not use (rotary inv_freq
 * buffers, a tied lm_head...). */
static void bn_cv_report_unused(const bn_cv_state *cv)
{
    int64_t unused = 0;
    const char *first = NULL;
    for (int f = 0; f < bn_st_model_n_files(cv->st); f++) {
        const bn_safetensors *s = bn_st_model_file(cv->st, f);
        for (int64_t i = 0; i < bn_st_n_tensors(s); i++) {
            const bn_st_tensor *t = bn_st_get(s, i);
            bool used = false;
            for (int j = 0; j < cv->n_jobs && !used; j++)
                used = cv->jobs[j].src == t || cv->jobs[j].scale == t;
            if (!used && unused++ == 0)
                first = t->name;
        }
    }
    if (unused)
        bn_log(BN_LOG_INFO, "convert: %lld tensors of the checkpoint are not used (the "
               "first: '%s')", (long long)unused, first);
}

/* Moves row r of a q/k matrix of `heads` heads from Hugging Face's order (each head's
 * rotated halves one after the other) to the order of a RoPE on adjacent pairs. */
static int64_t bn_cv_permuted_row(int64_t r, int64_t rows, int heads)
{
    if (!heads)
        return r;
    int64_t d = rows / heads, half = d / 2;
    int64_t h = r / d, in = r % d;
    return h * d + (in % half) * 2 + in / half;
}

/* The f32 value of a one-element tensor. */
static float bn_cv_scalar(const bn_st_tensor *t)
{
    float v = 0.0f;
    bn_st_to_f32(t, &v);
    return v;
}

/* A matrix of ternary values times one scale (rows already in the output order) into
 * the job's type. */
static bn_status bn_cv_store(const bn_cv_job *j, const float *w, void *dst, size_t nbytes)
{
    return bn_quantize(j->type, w, j->ne[0], j->ne[1], dst, nbytes);
}

/* A float matrix, absmean-ternarized as a whole, then stored. */
static bn_status bn_cv_fill_ternarize(const bn_cv_job *j, void *dst, size_t nbytes)
{
    int64_t cols = j->ne[0], rows = j->ne[1], n = rows * cols;
    float *w = bn_malloc((size_t)n * sizeof *w, "convert");     /* [rows][cols] */
    int8_t *q = bn_malloc((size_t)n, "convert");                /* [rows][cols] */
    bn_status st = w && q ? bn_st_to_f32(j->src, w) : bn_error_wrap(BN_OK, "converting");
    float g = 0.0f;
    if (st == BN_OK)
        st = bn_ternarize(w, cols, rows, NULL, q, &g);
    for (int64_t r = 0; st == BN_OK && r < rows; r++) {
        float *out = w + bn_cv_permuted_row(r, rows, j->permute_heads) * cols;
        for (int64_t c = 0; c < cols; c++)
            out[c] = (float)q[r * cols + c] * g;
    }
    if (st == BN_OK)
        st = bn_cv_store(j, w, dst, nbytes);
    bn_free(q);
    bn_free(w);
    return st;
}

/* Packed 2-bit codes and weight_scale, stored. */
static bn_status bn_cv_fill_packed(const bn_cv_job *j, void *dst, size_t nbytes)
{
    int64_t cols = j->ne[0], rows = j->ne[1], prow = rows / 4;
    float s = bn_cv_scalar(j->scale);
    if (!isfinite(s) || s == 0.0f)
        return bn_error_set(BN_ERR_NUMERIC, "tensor '%s': weight_scale %g is not a usable "
                            "scale", j->src->name, (double)s);
    float g = j->cv->cfg.scale_multiplies ? s : 1.0f / s;
    float *w = bn_malloc((size_t)(rows * cols) * sizeof *w, "convert");   /* [rows][cols] */
    if (!w)
        return bn_error_wrap(BN_OK, "converting");
    const unsigned char *p = j->src->data;
    bn_status st = BN_OK;
    for (int64_t r = 0; r < rows && st == BN_OK; r++) {
        int shift = (int)(2 * (r / prow));
        const unsigned char *src = p + (r % prow) * cols;
        float *out = w + bn_cv_permuted_row(r, rows, j->permute_heads) * cols;
        for (int64_t c = 0; c < cols; c++) {
            int code = (src[c] >> shift) & 3;
            if (code == 3) {
                st = bn_error_set(BN_ERR_FORMAT, "tensor '%s': code 3 (not a ternary "
                                  "value) for row %lld, column %lld", j->src->name,
                                  (long long)r, (long long)c);
                break;
            }
            out[c] = (float)(code - 1) * g;
        }
    }
    if (st == BN_OK)
        st = bn_cv_store(j, w, dst, nbytes);
    bn_free(w);
    return st;
}

/* A float matrix to a row-blocked type, converted a chunk of rows at a time. */
static bn_status bn_cv_fill_float(const bn_cv_job *j, void *dst, size_t nbytes)
{
    int64_t cols = j->ne[0], rows = j->ne[1];
    int64_t chunk = ((int64_t)1 << 22) / cols;
    if (chunk < 1)
        chunk = 1;
    size_t row_bytes;
    bn_status st = bn_qtype_tensor_size(j->type, cols, 1, &row_bytes);
    if (st == BN_OK && bn_qtype_get(j->type)->tensor_tail)
        chunk = rows;   /* a per-tensor tail: the whole tensor at once */
    float *w = st == BN_OK ? bn_malloc((size_t)((chunk < rows ? chunk : rows) * cols) *
                                       sizeof *w, "convert") : NULL;    /* [chunk][cols] */
    if (st == BN_OK && !w)
        st = bn_error_wrap(BN_OK, "converting");
    size_t elem = bn_st_dtype_size(j->src->dtype);
    for (int64_t r0 = 0; st == BN_OK && r0 < rows; r0 += chunk) {
        int64_t n = rows - r0 < chunk ? rows - r0 : chunk;
        bn_st_tensor part = *j->src;
        part.data = (const unsigned char *)j->src->data + (size_t)(r0 * cols) * elem;
        part.numel = n * cols;
        part.begin = j->src->begin + (uint64_t)(r0 * cols) * elem;
        part.end = part.begin + (uint64_t)(n * cols) * elem;
        st = bn_st_to_f32(&part, w);
        size_t at = (size_t)r0 * row_bytes;
        if (st == BN_OK)
            st = bn_quantize(j->type, w, cols, n, (unsigned char *)dst + at,
                             chunk == rows ? nbytes : (size_t)n * row_bytes);
        bn_st_model_release(j->cv->st, &part);   /* done with these source pages */
    }
    bn_free(w);
    return st;
}

/* LLaMA 3.1's RoPE frequency factors, as llama.cpp stores them (one per rotated pair):
 * 1 for short wavelengths, `factor` for long ones, smoothly between. */
static bn_status bn_cv_fill_rope(const bn_cv_job *j, void *dst)
{
    const bn_cv_config *c = &j->cv->cfg;
    float *out = dst;
    double low_wl = c->rope_orig_ctx / c->rope_low, high_wl = c->rope_orig_ctx / c->rope_high;
    for (int64_t i = 0; i < j->ne[0]; i++) {
        double freq = 1.0 / pow(c->rope_theta, (double)(2 * i) / (double)c->head_dim);
        double wl = 2.0 * M_PI / freq;
        double f;
        if (wl < high_wl)
            f = 1.0;
        else if (wl > low_wl)
            f = c->rope_factor;
        else {
            double smooth = (c->rope_orig_ctx / wl - c->rope_low) / (c->rope_high - c->rope_low);
            f = 1.0 / ((1.0 - smooth) / c->rope_factor + smooth);
        }
        out[i] = (float)f;
    }
    return BN_OK;
}

/* The writer's callback: makes one tensor, then gives back its source pages. */
static bn_status bn_cv_fill(void *user, void *dst, size_t nbytes)
{
    const bn_cv_job *j = user;
    bn_status st;
    switch (j->kind) {
    case BN_CV_NORM:
        st = bn_st_to_f32(j->src, dst);
        break;
    case BN_CV_FLOAT:
        st = bn_cv_fill_float(j, dst, nbytes);
        break;
    case BN_CV_TERNARIZE:
        st = bn_cv_fill_ternarize(j, dst, nbytes);
        break;
    case BN_CV_PACKED:
        st = bn_cv_fill_packed(j, dst, nbytes);
        break;
    default:
        st = bn_cv_fill_rope(j, dst);
        break;
    }
    if (j->src)
        bn_st_model_release(j->cv->st, j->src);
    if (st == BN_OK && j->cv->stats)
        j->cv->stats->n_tensors++;
    return st;
}

/* ------------------------------------------------------------------ metadata */

static bn_status bn_cv_metadata(bn_gguf_writer *w, const bn_cv_state *cv, const char *name)
{
    const bn_cv_config *c = &cv->cfg;
    char key[96];
    bn_status st = bn_gguf_writer_set_str(w, "general.architecture", c->arch);
    if (st == BN_OK) st = bn_gguf_writer_set_str(w, "general.name", name);
#define BN_CV_U32(suffix, v)                                                           \
    do {                                                                               \
        snprintf(key, sizeof key, "%s.%s", c->arch, suffix);                           \
        if (st == BN_OK) st = bn_gguf_writer_set_u32(w, key, (uint32_t)(v));           \
    } while (0)
#define BN_CV_F32(suffix, v)                                                           \
    do {                                                                               \
        snprintf(key, sizeof key, "%s.%s", c->arch, suffix);                           \
        if (st == BN_OK) st = bn_gguf_writer_set_f32(w, key, (float)(v));              \
    } while (0)
    BN_CV_U32("vocab_size", c->n_vocab);
    BN_CV_U32("context_length", c->n_ctx);
    BN_CV_U32("embedding_length", c->n_embd);
    BN_CV_U32("block_count", c->n_layer);
    BN_CV_U32("feed_forward_length", c->n_ff);
    BN_CV_U32("rope.dimension_count", c->head_dim);
    BN_CV_U32("attention.head_count", c->n_head);
    BN_CV_U32("attention.head_count_kv", c->n_head_kv);
    BN_CV_F32("attention.layer_norm_rms_epsilon", c->rms_eps);
    BN_CV_F32("rope.freq_base", c->rope_theta);
    if (c->rope_linear) {
        snprintf(key, sizeof key, "%s.rope.scaling.type", c->arch);
        if (st == BN_OK) st = bn_gguf_writer_set_str(w, key, "linear");
        BN_CV_F32("rope.scaling.factor", c->rope_factor);
    }
#undef BN_CV_U32
#undef BN_CV_F32
    if (strcmp(c->arch, "llama") != 0) {
        snprintf(key, sizeof key, "%s.ffn_activation", c->arch);
        if (st == BN_OK) st = bn_gguf_writer_set_str(w, key, c->act);
    }
    if (st == BN_OK)
        st = bn_gguf_writer_set_u32(w, "general.file_type",
                                    (uint32_t)bn_qtype_file_type(cv->params.proj_type));
    if (st == BN_OK)
        st = bn_gguf_writer_set_u32(w, "general.quantization_version", 2);
    return st;
}

/* The tokenizer of the folder: tokenizer.json (+ tokenizer_config.json), else
 * tokenizer.model. */
static bn_status bn_cv_tokenizer(const char *dir, bn_tokenizer **out)
{
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (stat(path, &sb) != 0)
        snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    if (stat(path, &sb) != 0)
        return bn_error_set(BN_ERR_IO, "%s: no tokenizer.json or tokenizer.model", dir);
    return bn_tokenizer_load_file(path, out);
}

/* The model's name: the folder's last component. */
static void bn_cv_name(const char *dir, char *out, size_t cap)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/')
        b--;
    snprintf(out, cap, "%.*s", (int)(n - b), dir + b);
}

bn_status bn_convert_hf(const char *hf_dir, const char *out_path,
                        const bn_convert_params *params, bn_convert_stats *stats)
{
    bn_cv_state cv;
    memset(&cv, 0, sizeof cv);
    cv.params = params ? *params : bn_convert_default_params();
    cv.stats = stats;
    if (stats)
        memset(stats, 0, sizeof *stats);
    const bn_qtype_info *pq = bn_qtype_get(cv.params.proj_type);
    const bn_qtype_info *eq = bn_qtype_get(cv.params.embd_type);
    const bn_qtype_info *lq = bn_qtype_get(cv.params.lm_head_type);
    if (!pq || !pq->can_write || !eq || !eq->can_write || eq->is_ternary || !lq ||
        !lq->can_write || lq->is_ternary)
        return bn_error_set(BN_ERR_INVALID_ARG, "convert: the projection type must be one "
                            "that can be written, the embedding and output types also not "
                            "ternary");
    bn_mem_reset_peak();
    bn_status st = bn_cv_read_config(hf_dir, &cv.cfg);
    if (st == BN_OK)
        st = bn_st_model_open(hf_dir, &cv.st);
    if (st == BN_OK)
        st = bn_cv_plan(&cv);
    if (st == BN_OK)
        bn_cv_report_unused(&cv);
    if (st == BN_OK && cv.cfg.layout == BN_CV_LLAMA_PACKED && !pq->is_ternary)
        bn_log(BN_LOG_WARN, "convert: a llama model with %s projections runs with float "
               "activations by default; the checkpoint's BitLinear quantizes them to 8 "
               "bits: run it with --act-quant on", pq->name);
    bn_tokenizer *tok = NULL;
    if (st == BN_OK)
        st = bn_cv_tokenizer(hf_dir, &tok);
    bn_gguf_writer *w = NULL;
    if (st == BN_OK)
        st = bn_gguf_writer_create(&w);
    char name[256];
    bn_cv_name(hf_dir, name, sizeof name);
    if (st == BN_OK)
        st = bn_cv_metadata(w, &cv, name);
    if (st == BN_OK)
        st = bn_tokenizer_write_gguf_padded(tok, (int32_t)cv.cfg.n_vocab, w);
    for (int i = 0; st == BN_OK && i < cv.n_jobs; i++) {
        bn_cv_job *j = &cv.jobs[i];
        size_t bytes;
        st = bn_qtype_tensor_size(j->type, j->ne[0], j->ne[1], &bytes);
        if (st == BN_OK)
            st = bn_gguf_writer_add_tensor_fn(w, j->gguf_name, j->type, j->n_dims, j->ne,
                                              bytes, bn_cv_fill, j);
        if (st == BN_OK && stats)
            stats->bytes_written += bytes;
    }
    if (stats) {
        snprintf(stats->layout, sizeof stats->layout, "%s",
                 bn_cv_layout_names[cv.cfg.layout]);
        snprintf(stats->arch, sizeof stats->arch, "%s", cv.cfg.arch ? cv.cfg.arch : "");
    }
    if (st == BN_OK)
        st = bn_gguf_writer_write(w, out_path, cv.params.progress, cv.params.progress_user);
    if (stats) {
        bn_mem_stats ms;
        bn_mem_get_stats(&ms);
        stats->peak_heap_bytes = ms.peak_bytes;
    }
    bn_gguf_writer_free(w);
    bn_tokenizer_free(tok);
    bn_free(cv.jobs);
    bn_st_model_close(cv.st);
    if (st != BN_OK)
        return bn_error_wrap(BN_OK, "converting %s", hf_dir);
    return BN_OK;
}
