/*
 * load_gguf.c - a tokenizer from a model's GGUF metadata (llama.cpp's tokenizer.* keys):
 * tokenizer.ggml.model chooses the family (gpt2: byte-level BPE; llama: SentencePiece),
 * then come the vocabulary with its scores and types, the special ids and flags, the
 * chat template and, for BPE, the merges and the pre-tokenizer. Every key is checked for
 * its type and, for the per-token arrays, its length.
 */
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* An optional u32 token id key: *id unchanged when the key is absent. */
static bn_status bn_gguf_token_id(const bn_gguf *g, const char *key, bn_token *id)
{
    if (bn_gguf_find_kv(g, key) < 0)
        return BN_OK;
    uint64_t v;
    bn_status st = bn_gguf_get_u64(g, key, &v);
    if (st == BN_OK)
        *id = v > INT32_MAX ? INT32_MAX : (bn_token)v;
    return st;
}

/* An optional bool key. */
static bool bn_gguf_flag(const bn_gguf *g, const char *key, bool def)
{
    int64_t i = bn_gguf_find_kv(g, key);
    if (i < 0)
        return def;
    bn_gguf_value v = bn_gguf_kv_value(g, i);
    return v.type == BN_GGUF_BOOL ? v.v.u64 != 0 : def;
}

/* An array key of `type` elements with n entries (n = 0: any length). */
static bn_status bn_gguf_array_of(const bn_gguf *g, const char *key, bn_gguf_type type,
                                  uint64_t n, bn_gguf_value *out)
{
    int64_t i = bn_gguf_find_kv(g, key);
    if (i < 0)
        return bn_error_set(BN_ERR_FORMAT, "metadata key '%s' is missing", key);
    *out = bn_gguf_kv_value(g, i);
    if (out->type != BN_GGUF_ARRAY || out->v.arr.elem_type != type)
        return bn_error_set(BN_ERR_FORMAT, "metadata key '%s' is not an array of the "
                            "expected type", key);
    if (n && out->v.arr.n != n)
        return bn_error_set(BN_ERR_FORMAT, "metadata key '%s' has %llu entries, the "
                            "vocabulary %llu", key, (unsigned long long)out->v.arr.n,
                            (unsigned long long)n);
    return BN_OK;
}

/* The vocabulary: tokens, and scores and types when present. */
static bn_status bn_gguf_vocab(const bn_gguf *g, bn_tokenizer *t, const bn_gguf_value *tok)
{
    bn_gguf_value scores = {0}, types = {0};
    bool has_scores = bn_gguf_find_kv(g, "tokenizer.ggml.scores") >= 0;
    bool has_types = bn_gguf_find_kv(g, "tokenizer.ggml.token_type") >= 0;
    bn_status st = BN_OK;
    if (has_scores)
        st = bn_gguf_array_of(g, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, tok->v.arr.n,
                              &scores);
    if (st == BN_OK && has_types)
        st = bn_gguf_array_of(g, "tokenizer.ggml.token_type", BN_GGUF_INT32, tok->v.arr.n,
                              &types);
    for (uint64_t i = 0; st == BN_OK && i < tok->v.arr.n; i++) {
        bn_gguf_value s = bn_gguf_array_get(g, tok, i);
        float score = has_scores ? (float)bn_gguf_array_get(g, &scores, i).v.f64 : 0.0f;
        int32_t type = has_types ? (int32_t)bn_gguf_array_get(g, &types, i).v.i64
                                 : BN_TOKEN_NORMAL;
        if (type < BN_TOKEN_NORMAL || type > BN_TOKEN_BYTE)
            type = BN_TOKEN_NORMAL;
        st = bn_tok_set_entry(t, (bn_token)i, s.v.str.ptr, (size_t)s.v.str.len, score, type);
    }
    return st;
}

/* The pre-tokenizer of a gpt2-style model; a missing one on a bitnet model is LLaMA 3. */
static const char *bn_gguf_pre(const bn_gguf *g)
{
    const char *pre = NULL, *arch = "";
    if (bn_gguf_find_kv(g, "tokenizer.ggml.pre") >= 0 &&
        bn_gguf_get_str(g, "tokenizer.ggml.pre", &pre) == BN_OK)
        return pre;
    bn_error_clear();
    if (bn_gguf_find_kv(g, "general.architecture") >= 0)
        bn_gguf_get_str(g, "general.architecture", &arch);
    if (strncmp(arch, "bitnet", 6) == 0) {
        bn_log(BN_LOG_INFO, "tokenizer: no tokenizer.ggml.pre in a %s model: using the "
               "LLaMA 3 pre-tokenizer", arch);
        return "llama3";
    }
    bn_log(BN_LOG_WARN, "tokenizer: no tokenizer.ggml.pre: using the GPT-2 pre-tokenizer");
    return "gpt2";
}

/* BPE merges from tokenizer.ggml.merges. */
static bn_status bn_gguf_bpe(const bn_gguf *g, bn_tokenizer *t)
{
    bn_gguf_value merges;
    bn_status st = bn_gguf_array_of(g, "tokenizer.ggml.merges", BN_GGUF_STRING, 0, &merges);
    if (st != BN_OK)
        return st;
    size_t n = (size_t)merges.v.arr.n;
    const char **strs = bn_malloc((n + 1) * sizeof *strs, "tokenizer");
    uint32_t *lens = bn_malloc((n + 1) * sizeof *lens, "tokenizer");
    if (!strs || !lens) {
        bn_free(strs);
        bn_free(lens);
        return bn_error_wrap(BN_OK, "reading %zu merges", n);
    }
    for (size_t i = 0; i < n; i++) {
        bn_gguf_value m = bn_gguf_array_get(g, &merges, i);
        strs[i] = m.v.str.ptr;
        lens[i] = (uint32_t)m.v.str.len;
    }
    const char *pre = bn_gguf_pre(g);
    bool llama3 = strcmp(pre, "llama3") == 0 || strcmp(pre, "llama-bpe") == 0;
    st = bn_tok_bpe_init(t, strs, lens, n, pre, llama3);
    bn_free(strs);
    bn_free(lens);
    return st;
}

/* Special ids, flags and the chat template. */
static bn_status bn_gguf_specials(const bn_gguf *g, bn_tokenizer *t)
{
    bn_status st = bn_gguf_token_id(g, "tokenizer.ggml.bos_token_id", &t->bos);
    if (st == BN_OK) st = bn_gguf_token_id(g, "tokenizer.ggml.eos_token_id", &t->eos);
    if (st == BN_OK) st = bn_gguf_token_id(g, "tokenizer.ggml.eot_token_id", &t->eot);
    if (st == BN_OK) st = bn_gguf_token_id(g, "tokenizer.ggml.padding_token_id", &t->pad);
    if (st == BN_OK) st = bn_gguf_token_id(g, "tokenizer.ggml.unknown_token_id", &t->unk);
    if (st != BN_OK)
        return st;
    t->add_bos = bn_gguf_flag(g, "tokenizer.ggml.add_bos_token", t->kind == BN_TOKENIZER_SPM);
    t->add_space_prefix = bn_gguf_flag(g, "tokenizer.ggml.add_space_prefix",
                                       t->kind == BN_TOKENIZER_SPM);
    int64_t i = bn_gguf_find_kv(g, "tokenizer.chat_template");
    if (i >= 0) {
        bn_gguf_value v = bn_gguf_kv_value(g, i);
        if (v.type == BN_GGUF_STRING && !(t->chat_template = bn_arena_strdup(t->arena,
                                                                              v.v.str.ptr)))
            return bn_error_wrap(BN_OK, "copying the chat template");
    }
    return BN_OK;
}

bn_status bn_tokenizer_load_gguf(const bn_gguf *g, bn_tokenizer **out)
{
    const char *model = NULL;
    bn_gguf_value tok;
    bn_status st = bn_gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (st == BN_OK)
        st = bn_gguf_array_of(g, "tokenizer.ggml.tokens", BN_GGUF_STRING, 0, &tok);
    if (st != BN_OK)
        return bn_error_wrap(BN_OK, "loading the tokenizer");
    bn_tokenizer_kind kind;
    if (strcmp(model, "gpt2") == 0)
        kind = BN_TOKENIZER_BPE;
    else if (strcmp(model, "llama") == 0)
        kind = BN_TOKENIZER_SPM;
    else
        return bn_error_set(BN_ERR_UNSUPPORTED, "loading the tokenizer: tokenizer model '%s' "
                            "is not supported (gpt2 and llama are)", model);
    if (tok.v.arr.n > INT32_MAX)
        return bn_error_set(BN_ERR_FORMAT, "loading the tokenizer: %llu tokens",
                            (unsigned long long)tok.v.arr.n);
    bn_tokenizer *t = NULL;
    st = bn_tok_create(kind, (int32_t)tok.v.arr.n, &t);
    if (st == BN_OK) st = bn_gguf_vocab(g, t, &tok);
    if (st == BN_OK) st = bn_gguf_specials(g, t);
    if (st == BN_OK) st = kind == BN_TOKENIZER_BPE ? bn_gguf_bpe(g, t) : bn_tok_spm_init(t);
    if (st == BN_OK) st = bn_tok_finish(t);
    if (st != BN_OK) {
        bn_tokenizer_free(t);
        return bn_error_wrap(BN_OK, "loading the tokenizer");
    }
    *out = t;
    return BN_OK;
}
