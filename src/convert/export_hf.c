/*
 * export_hf.c - a BitNet b1.58 GGUF model to a Hugging Face folder in the
 * BitNetForCausalLM layout of microsoft's bitnet-b1.58-2B-4T, which bn_convert_hf reads
 * back: config.json (quantization_config bitnet, linear_class autobitlinear, offline),
 * model.safetensors (each projection as uint8 [out/4, in], four 2-bit codes a byte
 * along the output rows, code = ternary + 1, and an F32 [1] weight_scale that
 * multiplies; norms and embeddings in their own float type, F32 for the others) and
 * tokenizer.json + tokenizer_config.json (byte-level BPE tokenizers).
 *
 * A projection must hold one scale per tensor: I2_S always does, TQ2_0/TQ1_0 when every
 * block has the same scale, a float type when its non-zero values share one magnitude;
 * other float projections are ternarized with the absmean rule (bn_ternarize), as the
 * model's forward would. The safetensors bytes are made one tensor at a time while the
 * file is written (through a bn_out_file: the file appears whole or not at all).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core/internal.h"
#include "tokenizer/tokenizer_internal.h"

/* One safetensors tensor to write. */
typedef struct bn_ex_tensor {
    char                  name[96];
    const char           *dtype;     /* "U8", "F32", "F16", "BF16" */
    int                   n_dims;
    int64_t               shape[2];  /* row-major */
    size_t                nbytes;
    const bn_gguf_tensor *src;
    int                   kind;      /* 0 copy as is, 1 to F32, 2 packed codes, 3 scale */
    float                 scale;     /* kind 3: filled when its projection is packed */
    struct bn_ex_tensor  *scale_of;  /* kind 2: its weight_scale entry */
} bn_ex_tensor;

bn_export_hf_params bn_export_hf_default_params(void)
{
    bn_export_hf_params p = {.progress = NULL, .progress_user = NULL};
    return p;
}

/* The ternary values and one scale of a projection [rows][cols] into codes (t + 1). */
static bn_status bn_ex_ternary(const bn_gguf_tensor *t, uint8_t *codes, float *scale)
{
    int64_t cols = t->ne[0], rows = t->ne[1], n = rows * cols;
    float *w = bn_malloc((size_t)n * sizeof *w, "export");    /* [rows][cols] */
    if (!w)
        return bn_error_wrap(BN_OK, "tensor '%s'", t->name);
    bn_status st = bn_dequantize((bn_qtype)t->type, t->data, t->nbytes, cols, rows, w);
    const bn_qtype_info *qi = bn_qtype_get((bn_qtype)t->type);
    float s = 0.0f;
    if (st == BN_OK && !bn_ternary_detect(w, n, &s)) {
        if (qi->is_ternary) {
            st = bn_error_set(BN_ERR_UNSUPPORTED, "tensor '%s' (%s) has more than one "
                              "scale; BitNetForCausalLM holds one per tensor", t->name,
                              qi->name);
        } else {
            int8_t *q = bn_malloc((size_t)n, "export");
            st = q ? bn_ternarize(w, cols, rows, NULL, q, &s)
                   : bn_error_wrap(BN_OK, "tensor '%s'", t->name);
            for (int64_t i = 0; st == BN_OK && i < n; i++)
                w[i] = (float)q[i] * s;
            bn_free(q);
        }
    }
    for (int64_t i = 0; st == BN_OK && i < n; i++)
        codes[i] = (uint8_t)(w[i] > 0.0f ? 2 : w[i] < 0.0f ? 0 : 1);
    if (st == BN_OK && s == 0.0f)
        s = 1.0f;   /* an all-zero tensor: any scale */
    *scale = s;
    bn_free(w);
    return st;
}

/* Writes one tensor's bytes to f. */
static bn_status bn_ex_emit(bn_out_file *f, bn_ex_tensor *e)
{
    const bn_gguf_tensor *t = e->src;
    if (e->kind == 0)
        return bn_out_file_write(f, t->data, e->nbytes);
    if (e->kind == 3)
        return bn_out_file_write(f, &e->scale, 4);
    unsigned char *buf = bn_malloc(e->nbytes, "export");
    if (!buf)
        return bn_error_wrap(BN_OK, "tensor '%s'", e->name);
    bn_status st = BN_OK;
    if (e->kind == 1) {
        st = bn_dequantize((bn_qtype)t->type, t->data, t->nbytes, t->ne[0],
                           t->n_dims > 1 ? t->ne[1] : 1, (float *)buf);
    } else {
        int64_t cols = t->ne[0], rows = t->ne[1], prow = rows / 4;
        uint8_t *codes = bn_malloc((size_t)(rows * cols), "export");   /* [rows][cols] */
        st = codes ? bn_ex_ternary(t, codes, &e->scale_of->scale)
                   : bn_error_wrap(BN_OK, "tensor '%s'", e->name);
        if (st == BN_OK) {
            memset(buf, 0, e->nbytes);
            for (int64_t r = 0; r < rows; r++) {
                int shift = (int)(2 * (r / prow));
                unsigned char *dst = buf + (r % prow) * cols;
                for (int64_t c = 0; c < cols; c++)
                    dst[c] |= (unsigned char)(codes[r * cols + c] << shift);
            }
        }
        bn_free(codes);
    }
    if (st == BN_OK)
        st = bn_out_file_write(f, buf, e->nbytes);
    bn_free(buf);
    if (st != BN_OK)
        return bn_error_wrap(BN_OK, "tensor '%s'", e->name);
    return BN_OK;
}

/* model.safetensors: the header (json, in tensor order), then every tensor. */
static bn_status bn_ex_safetensors(const char *path, bn_ex_tensor *ts, int n,
                                   const bn_export_hf_params *p)
{
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < ts[i].n_dims; d++)
            json_array_append_new(shape, json_integer(ts[i].shape[d]));
        json_object_set_new(h, ts[i].name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", ts[i].dtype, "shape",
                                      shape, "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + ts[i].nbytes)));
        off += ts[i].nbytes;
    }
    char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!text)
        return bn_error_set(BN_ERR_OOM, "writing %s: encoding the header", path);
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    unsigned char head[8];
    for (int i = 0; i < 8; i++)
        head[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    bn_out_file *f = NULL;
    bn_status st = bn_out_file_open(path, &f);
    if (st == BN_OK) st = bn_out_file_write(f, head, 8);
    if (st == BN_OK) st = bn_out_file_write(f, text, len);
    if (st == BN_OK && padded > len) st = bn_out_file_write(f, "        ", padded - len);
    free(text);
    uint64_t done = 0;
    /* a projection's scale is known once it is packed: scales come after their weights */
    for (int i = 0; i < n && st == BN_OK; i++) {
        st = bn_ex_emit(f, &ts[i]);
        done += ts[i].nbytes;
        if (st == BN_OK && p->progress && !p->progress(done, off, p->progress_user))
            st = bn_error_set(BN_ERR_IO, "writing %s: cancelled", path);
    }
    if (st != BN_OK) {
        bn_out_file_discard(f);
        return st;
    }
    return bn_out_file_commit(f);
}

/* Writes a JSON value to dir/name (whole or not at all). */
static bn_status bn_ex_json(const char *dir, const char *name, json_t *v)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = v ? json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                   JSON_REAL_PRECISION(9)) : NULL;
    json_decref(v);
    if (!text)
        return bn_error_set(BN_ERR_OOM, "writing %s: encoding", path);
    bn_out_file *f = NULL;
    bn_status st = bn_out_file_open(path, &f);
    if (st == BN_OK) st = bn_out_file_write(f, text, strlen(text));
    if (st == BN_OK) st = bn_out_file_write(f, "\n", 1);
    free(text);
    if (st != BN_OK) {
        bn_out_file_discard(f);
        return st;
    }
    return bn_out_file_commit(f);
}

/* tokenizer.json and tokenizer_config.json of a byte-level BPE tokenizer. */
static bn_status bn_ex_tokenizer(const char *dir, const bn_tokenizer *t)
{
    if (t->kind != BN_TOKENIZER_BPE)
        return bn_error_set(BN_ERR_UNSUPPORTED, "exporting a SentencePiece tokenizer is not "
                            "supported (byte-level BPE is)");
    bool llama3 = !t->pre || strcmp(t->pre, "gpt2") != 0;
    json_t *vocab = json_object(), *added = json_array(), *merges = json_array();
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const bn_tok_entry *e = &t->vocab[i];
        if (e->type == BN_TOKEN_CONTROL || e->type == BN_TOKEN_USER_DEFINED)
            json_array_append_new(added, json_pack("{s:i,s:s%,s:b,s:b,s:b,s:b,s:b}", "id",
                                                   (int)i, "content", e->text,
                                                   (size_t)e->len, "single_word", 0,
                                                   "lstrip", 0, "rstrip", 0, "normalized",
                                                   0, "special",
                                                   e->type == BN_TOKEN_CONTROL));
        else if (e->type != BN_TOKEN_UNUSED)
            json_object_setn_new_nocheck(vocab, e->text, e->len, json_integer(i));
    }
    for (size_t i = 0; i < t->n_merges; i++)
        json_array_append_new(merges, json_string(t->merges[i]));
    static const char llama3_regex[] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
        " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    json_t *byte_level = json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel",
                                   "add_prefix_space", 0, "trim_offsets", 1, "use_regex",
                                   !llama3);
    json_t *pre = llama3
        ? json_pack("{s:s,s:[{s:s,s:{s:s},s:s,s:b},o]}", "type", "Sequence",
                    "pretokenizers", "type", "Split", "pattern", "Regex", llama3_regex,
                    "behavior", "Isolated", "invert", 0, byte_level)
        : byte_level;
    json_t *post = json_null();
    if (t->add_bos && t->bos >= 0)
        post = json_pack("{s:s,s:[{s:{s:s,s:i}},{s:{s:s,s:i}}],s:[],s:{}}", "type",
                         "TemplateProcessing", "single", "SpecialToken", "id",
                         t->vocab[t->bos].text, "type_id", 0, "Sequence", "id", "A",
                         "type_id", 0, "pair", "special_tokens");
    json_t *tok = json_pack("{s:s,s:n,s:n,s:o,s:n,s:o,s:o,s:{s:s,s:b,s:b,s:b},"
                            "s:{s:s,s:n,s:n,s:n,s:n,s:b,s:b,s:b,s:o,s:o}}",
                            "version", "1.0", "truncation", "padding", "added_tokens", added,
                            "normalizer", "pre_tokenizer", pre, "post_processor", post,
                            "decoder", "type", "ByteLevel", "add_prefix_space", 1,
                            "trim_offsets", 1, "use_regex", 1,
                            "model", "type", "BPE", "dropout", "unk_token",
                            "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
                            "byte_fallback", 0, "ignore_merges", llama3, "vocab", vocab,
                            "merges", merges);
    bn_status st = bn_ex_json(dir, "tokenizer.json", tok);
    if (st != BN_OK)
        return st;
    json_t *cfg = json_object();
    if (t->bos >= 0)
        json_object_set_new(cfg, "bos_token", json_string(t->vocab[t->bos].text));
    if (t->eos >= 0)
        json_object_set_new(cfg, "eos_token", json_string(t->vocab[t->eos].text));
    if (t->pad >= 0)
        json_object_set_new(cfg, "pad_token", json_string(t->vocab[t->pad].text));
    json_object_set_new(cfg, "add_bos_token", json_boolean(t->add_bos));
    if (t->chat_template)
        json_object_set_new(cfg, "chat_template", json_string(t->chat_template));
    json_object_set_new(cfg, "tokenizer_class", json_string("PreTrainedTokenizerFast"));
    return bn_ex_json(dir, "tokenizer_config.json", cfg);
}

/* The shortest decimal that reads back as the float x (1e-05, not 9.99999975e-06). */
static double bn_ex_short(float x)
{
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)x);
        if ((float)strtod(buf, NULL) == x)
            break;
    }
    return strtod(buf, NULL);
}

/* config.json. */
static json_t *bn_ex_config(const bn_model_info *in, const bn_tokenizer *t)
{
    json_t *c = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:s,s:b,s:s}",
                          "architectures", "BitNetForCausalLM", "model_type", "bitnet",
                          "hidden_size", (int)in->n_embd, "intermediate_size", (int)in->n_ff,
                          "num_attention_heads", (int)in->n_head, "num_key_value_heads",
                          (int)in->n_head_kv, "num_hidden_layers", (int)in->n_layer,
                          "vocab_size", (int)in->n_vocab, "max_position_embeddings",
                          (int)(in->n_ctx_train > 0 ? in->n_ctx_train : 2048),
                          "rms_norm_eps", bn_ex_short(in->rms_eps), "rope_theta",
                          bn_ex_short(in->rope_theta), "hidden_act",
                          in->ffn_act == BN_FFN_ACT_SILU ? "silu" : "relu2",
                          "tie_word_embeddings", in->tied_output, "torch_dtype", "bfloat16");
    if (t && t->bos >= 0)
        json_object_set_new(c, "bos_token_id", json_integer(t->bos));
    if (t && t->eos >= 0)
        json_object_set_new(c, "eos_token_id", json_integer(t->eos));
    json_object_set_new(c, "quantization_config",
                        json_pack("{s:s,s:s,s:s}", "quant_method", "bitnet", "linear_class",
                                  "autobitlinear", "quantization_mode", "offline"));
    return c;
}

/* Appends the safetensors entry of a GGUF tensor; kind 2 (packed) adds its scale. */
static bn_status bn_ex_add(bn_ex_tensor *ts, int *n, const bn_gguf *g, const char *gguf,
                           const char *hf, bool packed)
{
    int64_t i = bn_gguf_find_tensor(g, gguf);
    if (i < 0)
        return bn_error_set(BN_ERR_FORMAT, "tensor '%s' is missing", gguf);
    const bn_gguf_tensor *t = bn_gguf_get_tensor(g, i);
    bn_ex_tensor *e = &ts[(*n)++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", hf);
    e->src = t;
    e->n_dims = t->n_dims > 1 ? 2 : 1;
    e->shape[0] = e->n_dims == 2 ? t->ne[1] : t->ne[0];
    e->shape[1] = t->ne[0];
    int64_t numel = e->n_dims == 2 ? t->ne[0] * t->ne[1] : t->ne[0];
    if (packed) {
        if (t->n_dims != 2 || t->ne[1] % 4 != 0)
            return bn_error_set(BN_ERR_SHAPE, "tensor '%s': %lld rows do not pack 4 to a "
                                "byte", gguf, (long long)t->ne[1]);
        e->dtype = "U8";
        e->kind = 2;
        e->shape[0] = t->ne[1] / 4;
        e->nbytes = (size_t)(e->shape[0] * e->shape[1]);
        bn_ex_tensor *s = &ts[(*n)++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%.*s_scale", (int)strlen(hf), hf);
        s->dtype = "F32";
        s->n_dims = 1;
        s->shape[0] = 1;
        s->nbytes = 4;
        s->kind = 3;
        e->scale_of = s;
        return BN_OK;
    }
    if (t->type == BN_QT_F32 || t->type == BN_QT_F16 || t->type == BN_QT_BF16) {
        e->dtype = t->type == BN_QT_F32 ? "F32" : t->type == BN_QT_F16 ? "F16" : "BF16";
        e->kind = 0;
        e->nbytes = t->nbytes;
    } else {
        e->dtype = "F32";
        e->kind = 1;
        e->nbytes = (size_t)numel * 4;
    }
    return BN_OK;
}

/* The tensor list in the order of the 2B-4T checkpoint's names. */
static bn_status bn_ex_plan(const bn_gguf *g, const bn_model_info *in, bn_ex_tensor *ts,
                            int *n)
{
    bn_status st = bn_ex_add(ts, n, g, "token_embd.weight", "model.embed_tokens.weight",
                             false);
    for (int l = 0; st == BN_OK && l < in->n_layer; l++) {
        static const struct { const char *gguf, *hf; bool packed; } parts[] = {
            {"attn_norm", "input_layernorm", false},
            {"attn_q", "self_attn.q_proj", true},   {"attn_k", "self_attn.k_proj", true},
            {"attn_v", "self_attn.v_proj", true},   {"attn_output", "self_attn.o_proj", true},
            {"attn_sub_norm", "self_attn.attn_sub_norm", false},
            {"ffn_norm", "post_attention_layernorm", false},
            {"ffn_gate", "mlp.gate_proj", true},    {"ffn_up", "mlp.up_proj", true},
            {"ffn_down", "mlp.down_proj", true},
            {"ffn_sub_norm", "mlp.ffn_sub_norm", false},
        };
        for (size_t p = 0; st == BN_OK && p < sizeof parts / sizeof parts[0]; p++) {
            char gn[96], hn[96];
            snprintf(gn, sizeof gn, "blk.%d.%s.weight", l, parts[p].gguf);
            snprintf(hn, sizeof hn, "model.layers.%d.%s.weight", l, parts[p].hf);
            st = bn_ex_add(ts, n, g, gn, hn, parts[p].packed);
        }
    }
    if (st == BN_OK)
        st = bn_ex_add(ts, n, g, "output_norm.weight", "model.norm.weight", false);
    if (st == BN_OK && !in->tied_output)
        st = bn_ex_add(ts, n, g, "output.weight", "lm_head.weight", false);
    return st;
}

bn_status bn_export_hf(const char *gguf_path, const char *out_dir,
                       const bn_export_hf_params *params)
{
    bn_export_hf_params p = params ? *params : bn_export_hf_default_params();
    bn_model_params mp = bn_model_default_params();
    mp.load = BN_LOAD_MMAP;
    mp.keep_tq1_0 = true;
    mp.keep_tq2_0 = true;
    bn_model *m = NULL;
    bn_status st = bn_model_load(gguf_path, &mp, &m);
    if (st != BN_OK)
        return st;
    bn_model_info in;
    bn_model_get_info(m, &in);
    const bn_gguf *g = bn_model_gguf(m);
    const bn_tokenizer *tok = bn_model_tokenizer(m);
    bn_ex_tensor *ts = NULL;
    int n = 0;
    if (!in.sub_norms)
        st = bn_error_set(BN_ERR_UNSUPPORTED, "architecture '%s' has no sub-norms: only "
                          "BitNet b1.58 models (bitnet-b1.58, bitnet-25, bitnet) export to "
                          "BitNetForCausalLM", in.arch);
    else if (!tok)
        st = bn_error_set(BN_ERR_FORMAT, "the model has no tokenizer to export");
    if (st == BN_OK && mkdir(out_dir, 0777) != 0 && errno != EEXIST)
        st = bn_error_set(BN_ERR_IO, "creating %s: %s", out_dir, strerror(errno));
    if (st == BN_OK && !(ts = bn_calloc((size_t)in.n_layer * 18 + 4, sizeof *ts, "export")))
        st = bn_error_wrap(BN_OK, "exporting");
    if (st == BN_OK)
        st = bn_ex_plan(g, &in, ts, &n);
    if (st == BN_OK)
        st = bn_ex_tokenizer(out_dir, tok);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    if (st == BN_OK)
        st = bn_ex_safetensors(path, ts, n, &p);
    if (st == BN_OK)
        st = bn_ex_json(out_dir, "config.json", bn_ex_config(&in, tok));
    bn_free(ts);
    bn_model_free(m);
    if (st != BN_OK)
        return bn_error_wrap(BN_OK, "exporting %s to %s", gguf_path, out_dir);
    return BN_OK;
}
