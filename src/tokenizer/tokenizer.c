/*
 * tokenizer.c - what both tokenizer families share: the vocabulary, special tokens,
 * loading from GGUF metadata and dispatch by file contents, encoding around special
 * tokens, decoding (whole and streaming, holding back incomplete UTF-8), and chat
 * templates. The families (tok_bpe.c, tok_spm.c) turn plain text into ids and ids
 * back into bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* ------------------------------------------------------------------ buffers */

bn_status bn_tok_vec_push(bn_tok_vec *v, bn_token id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        bn_token *grown = bn_malloc(cap * sizeof *grown, "tokenizer");
        if (!grown)
            return bn_error_wrap(BN_OK, "growing a token list");
        if (v->n)
            memcpy(grown, v->v, v->n * sizeof *grown);
        bn_free(v->v);
        v->v = grown;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return BN_OK;
}

bn_status bn_bytes_append(bn_bytes *b, const void *data, size_t n)
{
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n + 1)
            cap *= 2;
        char *grown = bn_malloc(cap, "tokenizer");
        if (!grown)
            return bn_error_wrap(BN_OK, "growing a text buffer");
        if (b->n)
            memcpy(grown, b->p, b->n);
        bn_free(b->p);
        b->p = grown;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return BN_OK;
}

/* ------------------------------------------------------------------ building */

bn_status bn_tok_create(bn_tokenizer_kind kind, int32_t n_vocab, bn_tokenizer **out)
{
    if (n_vocab <= 0)
        return bn_error_set(BN_ERR_FORMAT, "a tokenizer needs a vocabulary (got %d entries)",
                            n_vocab);
    bn_tokenizer *t = bn_calloc(1, sizeof *t, "tokenizer");
    if (!t)
        return bn_error_wrap(BN_OK, "creating a tokenizer");
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->bos = t->eos = t->eot = t->pad = t->unk = -1;
    bn_status st = bn_arena_create((size_t)1 << 20, "tokenizer", &t->arena);
    if (st == BN_OK && !(t->vocab = bn_calloc((size_t)n_vocab, sizeof *t->vocab, "tokenizer")))
        st = bn_last_status();
    if (st == BN_OK)
        st = bn_strmap_create((size_t)n_vocab, &t->piece_to_id);
    if (st != BN_OK) {
        bn_tokenizer_free(t);
        return bn_error_wrap(BN_OK, "creating a tokenizer of %d tokens", n_vocab);
    }
    *out = t;
    return BN_OK;
}

bn_status bn_tok_set_entry(bn_tokenizer *t, bn_token id, const char *text, size_t len,
                           float score, int32_t type)
{
    if (id < 0 || id >= t->n_vocab)
        return bn_error_set(BN_ERR_FORMAT, "token id %d is outside the vocabulary of %d",
                            id, t->n_vocab);
    char *copy = bn_arena_alloc(t->arena, len + 1, 1);
    if (!copy)
        return bn_error_wrap(BN_OK, "storing token %d", id);
    memcpy(copy, text, len);
    copy[len] = '\0';
    t->vocab[id] = (bn_tok_entry){.text = copy, .len = (uint32_t)len, .score = score,
                                  .type = type};
    if (bn_strmap_get(t->piece_to_id, copy, len, -1) >= 0)
        return BN_OK;   /* a duplicate text: the first id keeps the index */
    return bn_strmap_put(t->piece_to_id, copy, len, id, NULL);
}

static const bn_tokenizer *bn_sort_ctx;

/* Longer special texts first, so that the longest match wins. */
static int bn_cmp_special(const void *a, const void *b)
{
    uint32_t la = bn_sort_ctx->vocab[*(const bn_token *)a].len;
    uint32_t lb = bn_sort_ctx->vocab[*(const bn_token *)b].len;
    if (la != lb)
        return la < lb ? 1 : -1;
    return *(const bn_token *)a - *(const bn_token *)b;
}

bn_status bn_tok_finish(bn_tokenizer *t)
{
    int32_t n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        n += (t->vocab[i].type == BN_TOKEN_CONTROL || t->vocab[i].type == BN_TOKEN_USER_DEFINED)
             && t->vocab[i].len > 0;
    t->specials = bn_arena_alloc(t->arena, (size_t)n * sizeof *t->specials + 1, 8);
    if (!t->specials)
        return bn_error_wrap(BN_OK, "listing special tokens");
    t->n_specials = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if ((t->vocab[i].type == BN_TOKEN_CONTROL || t->vocab[i].type == BN_TOKEN_USER_DEFINED)
            && t->vocab[i].len > 0)
            t->specials[t->n_specials++] = i;
    /* qsort has no context argument in C11; the tokenizer is built by one thread */
    static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&sort_lock);
    bn_sort_ctx = t;
    qsort(t->specials, (size_t)t->n_specials, sizeof *t->specials, bn_cmp_special);
    pthread_mutex_unlock(&sort_lock);
    if (t->eot < 0) {
        const char *names[] = {"<|eot_id|>", "<|im_end|>", "<end_of_turn>"};
        for (size_t i = 0; i < 3 && t->eot < 0; i++)
            t->eot = bn_strmap_get(t->piece_to_id, names[i], strlen(names[i]), -1);
    }
    bn_token *ids[] = {&t->bos, &t->eos, &t->eot, &t->pad, &t->unk};
    const char *what[] = {"BOS", "EOS", "EOT", "padding", "unknown"};
    for (int i = 0; i < 5; i++) {
        if (*ids[i] >= t->n_vocab) {
            bn_log(BN_LOG_WARN, "tokenizer: the %s token id %d is outside the vocabulary "
                   "of %d; ignored", what[i], *ids[i], t->n_vocab);
            *ids[i] = -1;
        }
    }
    return BN_OK;
}

void bn_tokenizer_free(bn_tokenizer *t)
{
    if (!t)
        return;
    if (t->ops && t->ops->free_impl)
        t->ops->free_impl(t->impl);
    bn_strmap_free(t->piece_to_id);
    bn_free(t->vocab);
    bn_arena_free(t->arena);
    bn_free(t);
}

/* ------------------------------------------------------------------ accessors */

bn_tokenizer_kind bn_tokenizer_kind_of(const bn_tokenizer *t) { return t->kind; }
int32_t bn_tokenizer_n_vocab(const bn_tokenizer *t) { return t->n_vocab; }
bn_token bn_tokenizer_bos(const bn_tokenizer *t) { return t->bos; }
bn_token bn_tokenizer_eos(const bn_tokenizer *t) { return t->eos; }
bn_token bn_tokenizer_eot(const bn_tokenizer *t) { return t->eot; }
bool bn_tokenizer_wants_bos(const bn_tokenizer *t) { return t->add_bos && t->bos >= 0; }

bool bn_tokenizer_is_eog(const bn_tokenizer *t, bn_token id)
{
    return id >= 0 && (id == t->eos || id == t->eot);
}

const char *bn_tokenizer_piece(const bn_tokenizer *t, bn_token id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    if (len)
        *len = t->vocab[id].len;
    return t->vocab[id].text;
}

bn_token_type bn_tokenizer_token_type(const bn_tokenizer *t, bn_token id)
{
    if (id < 0 || id >= t->n_vocab)
        return BN_TOKEN_UNUSED;
    return (bn_token_type)t->vocab[id].type;
}

bn_token bn_tokenizer_find(const bn_tokenizer *t, const char *piece, size_t len)
{
    return bn_strmap_get(t->piece_to_id, piece, len, -1);
}

/* ------------------------------------------------------------------ encoding */

bn_tokenize_params bn_tokenize_default_params(void)
{
    return (bn_tokenize_params){.add_bos = false, .parse_special = true};
}

/* The special token that starts at text[pos], or -1. User-defined tokens always
 * match; control tokens only with parse_special. */
static bn_token bn_match_special(const bn_tokenizer *t, const char *text, size_t len,
                                 size_t pos, bool parse_special)
{
    for (int32_t i = 0; i < t->n_specials; i++) {
        const bn_tok_entry *e = &t->vocab[t->specials[i]];
        if (e->type == BN_TOKEN_CONTROL && !parse_special)
            continue;
        if (e->len <= len - pos && (unsigned char)e->text[0] == (unsigned char)text[pos] &&
            memcmp(text + pos, e->text, e->len) == 0)
            return t->specials[i];
    }
    return -1;
}

/* Encodes text[start, end) of plain text, if not empty. */
static bn_status bn_encode_run(const bn_tokenizer *t, const char *text, size_t start,
                               size_t end, bn_tok_vec *out)
{
    if (end == start)
        return BN_OK;
    return t->ops->encode(t, text + start, end - start, start == 0, out);
}

bn_status bn_tokenize(const bn_tokenizer *t, const char *text, size_t len,
                      const bn_tokenize_params *params, bn_token **ids, size_t *n_ids)
{
    bn_tokenize_params p = params ? *params : bn_tokenize_default_params();
    bn_tok_vec out = {0};
    bn_status st = BN_OK;
    if (p.add_bos) {
        if (t->bos < 0)
            return bn_error_set(BN_ERR_INVALID_ARG, "tokenize: this tokenizer has no BOS");
        st = bn_tok_vec_push(&out, t->bos);
    }
    /* which first bytes can start a special token: skips most positions at once */
    bool first[256] = {false};
    for (int32_t i = 0; i < t->n_specials; i++)
        first[(unsigned char)t->vocab[t->specials[i]].text[0]] = true;
    size_t run = 0;
    for (size_t pos = 0; st == BN_OK && pos < len;) {
        bn_token sp = first[(unsigned char)text[pos]]
                      ? bn_match_special(t, text, len, pos, p.parse_special) : -1;
        if (sp < 0) {
            pos++;
            continue;
        }
        st = bn_encode_run(t, text, run, pos, &out);
        if (st == BN_OK)
            st = bn_tok_vec_push(&out, sp);
        pos += t->vocab[sp].len;
        run = pos;
    }
    if (st == BN_OK)
        st = bn_encode_run(t, text, run, len, &out);
    if (st != BN_OK) {
        bn_free(out.v);
        return bn_error_wrap(BN_OK, "tokenizing %zu bytes", len);
    }
    if (!out.v && !(out.v = bn_malloc(sizeof *out.v, "tokenizer")))
        return bn_error_wrap(BN_OK, "tokenizing");
    *ids = out.v;
    *n_ids = out.n;
    return BN_OK;
}

/* ------------------------------------------------------------------ decoding */

/* Appends the bytes of one token. *first_text: no text has been produced yet (SPM
 * drops the space its encoder put before the first word). */
static bn_status bn_decode_token(const bn_tokenizer *t, bn_token id, bool render_special,
                                 bool *first_text, bn_bytes *out)
{
    if (id < 0 || id >= t->n_vocab)
        return bn_error_set(BN_ERR_INVALID_ARG, "token id %d is outside the vocabulary of "
                            "%d", id, t->n_vocab);
    const bn_tok_entry *e = &t->vocab[id];
    if (e->type == BN_TOKEN_CONTROL || e->type == BN_TOKEN_UNKNOWN ||
        e->type == BN_TOKEN_UNUSED) {
        if (!render_special)
            return BN_OK;
        return bn_bytes_append(out, e->text, e->len);
    }
    size_t before = out->n;
    bn_status st = t->ops->piece_bytes(t, id, out);
    if (st == BN_OK && *first_text && out->n > before) {
        *first_text = false;
        if (t->kind == BN_TOKENIZER_SPM && t->add_space_prefix && out->p[before] == ' ') {
            memmove(out->p + before, out->p + before + 1, out->n - before - 1);
            out->n--;
            out->p[out->n] = '\0';
        }
    }
    return st;
}

bn_status bn_detokenize(const bn_tokenizer *t, const bn_token *ids, size_t n_ids,
                        bool render_special, char **text, size_t *len)
{
    bn_bytes out = {0};
    bool first_text = true;
    bn_status st = bn_bytes_append(&out, "", 0);
    for (size_t i = 0; st == BN_OK && i < n_ids; i++)
        st = bn_decode_token(t, ids[i], render_special, &first_text, &out);
    if (st != BN_OK) {
        bn_free(out.p);
        return bn_error_wrap(BN_OK, "detokenizing %zu tokens", n_ids);
    }
    *text = out.p;
    *len = out.n;
    return BN_OK;
}

struct bn_detok_stream {
    const bn_tokenizer *t;
    bool                render_special;
    bool                first_text;
    bn_bytes            pending;   /* decoded bytes not handed out yet */
    bn_bytes            ready;     /* what the last push handed out */
};

bn_status bn_detok_stream_create(const bn_tokenizer *t, bool render_special,
                                 bn_detok_stream **out)
{
    bn_detok_stream *s = bn_calloc(1, sizeof *s, "tokenizer");
    if (!s)
        return bn_error_wrap(BN_OK, "creating a decoding stream");
    s->t = t;
    s->render_special = render_special;
    s->first_text = true;
    *out = s;
    return BN_OK;
}

/* Length of the prefix of p[0, n) that ends on a character boundary: a trailing lead
 * byte whose continuation bytes have not all arrived is held back. */
static size_t bn_utf8_complete(const unsigned char *p, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = p[n - back];
        if ((c & 0xc0) == 0x80)
            continue;                       /* a continuation byte: look further back */
        size_t need = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 1;
        if (c >= 0xf5 || need == 1)
            return n;                       /* ASCII or invalid lead: nothing to wait for */
        return back < need ? n - back : n;
    }
    return n;
}

bn_status bn_detok_stream_push(bn_detok_stream *s, bn_token id, const char **text,
                               size_t *len)
{
    bn_status st = bn_decode_token(s->t, id, s->render_special, &s->first_text, &s->pending);
    if (st != BN_OK)
        return st;
    size_t n = s->pending.n ? bn_utf8_complete((const unsigned char *)s->pending.p,
                                               s->pending.n) : 0;
    s->ready.n = 0;
    st = bn_bytes_append(&s->ready, s->pending.p, n);
    if (st != BN_OK)
        return st;
    if (n > 0) {   /* pending.p stays NULL while the tokens give no bytes */
        memmove(s->pending.p, s->pending.p + n, s->pending.n - n + 1);   /* and its NUL */
        s->pending.n -= n;
    }
    *text = s->ready.p;
    *len = s->ready.n;
    return BN_OK;
}

void bn_detok_stream_flush(bn_detok_stream *s, const char **text, size_t *len)
{
    s->ready.n = 0;
    if (bn_bytes_append(&s->ready, s->pending.p, s->pending.n) == BN_OK)
        s->pending.n = 0;
    *text = s->ready.p ? s->ready.p : "";
    *len = s->ready.n;
}

void bn_detok_stream_free(bn_detok_stream *s)
{
    if (!s)
        return;
    bn_free(s->pending.p);
    bn_free(s->ready.p);
    bn_free(s);
}

/* ------------------------------------------------------------------ GGUF */

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

/* ------------------------------------------------------------------ files */

/* Reads a whole file into a bn_malloc'd buffer. */
static bn_status bn_read_file(const char *path, char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bn_error_set(BN_ERR_IO, "opening %s: %s", path, strerror(errno));
    bn_status st = BN_OK;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0)
        st = bn_error_set(BN_ERR_IO, "reading %s: not a regular file", path);
    char *buf = st == BN_OK ? bn_malloc((size_t)n + 1, "tokenizer") : NULL;
    if (st == BN_OK && !buf)
        st = bn_error_wrap(BN_OK, "reading %s", path);
    if (st == BN_OK && fread(buf, 1, (size_t)n, f) != (size_t)n)
        st = bn_error_set(BN_ERR_IO, "reading %s: short read", path);
    fclose(f);
    if (st != BN_OK) {
        bn_free(buf);
        return st;
    }
    buf[n] = '\0';
    *data = buf;
    *size = (size_t)n;
    return BN_OK;
}

/* The first bytes of a file, to tell its format. */
static bn_status bn_read_head(const char *path, char *head, size_t cap, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bn_error_set(BN_ERR_IO, "opening %s: %s", path, strerror(errno));
    *n = fread(head, 1, cap, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed)
        return bn_error_set(BN_ERR_IO, "reading %s: %s", path, strerror(errno));
    return BN_OK;
}

bn_status bn_tokenizer_load_file(const char *path, bn_tokenizer **out)
{
    char head[64];
    size_t n = 0;
    bn_status st = bn_read_head(path, head, sizeof head, &n);
    if (st != BN_OK)
        return st;
    size_t i = 0;
    while (i < n && (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t'))
        i++;
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0) {
        bn_gguf *g = NULL;
        st = bn_gguf_open(path, &g);
        if (st == BN_OK)
            st = bn_tokenizer_load_gguf(g, out);
        bn_gguf_close(g);
    } else if (i < n && head[i] == '{') {
        st = bn_tok_load_hf_json(path, out);
    } else {
        char *data = NULL;
        size_t size = 0;
        st = bn_read_file(path, &data, &size);
        if (st == BN_OK)
            st = bn_tok_load_spm_model(data, size, out);
        bn_free(data);
    }
    if (st != BN_OK)
        return bn_error_wrap(BN_OK, "loading a tokenizer from %s", path);
    return BN_OK;
}

/* ------------------------------------------------------------------ chat */

/* Bytes of the white-space character (as Python's str.strip and JavaScript's trim both
 * see it) that p[0, n) starts with (from_end: ends with); 0 when it is none. */
static size_t bn_space_len(const unsigned char *p, size_t n, bool from_end)
{
    static const char *const wide[] = {
        "\xc2\xa0", "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82",
        "\xe2\x80\x83", "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87",
        "\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9",
        "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80",
    };
    if (n == 0)
        return 0;
    unsigned char c = from_end ? p[n - 1] : p[0];
    if (c == ' ' || (c >= '\t' && c <= '\r'))
        return 1;
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) {
        size_t k = strlen(wide[i]);
        if (k <= n && memcmp(from_end ? p + n - k : p, wide[i], k) == 0)
            return k;
    }
    return 0;
}

/* Appends s without leading and trailing white space (the templates' `trim`). */
static bn_status bn_append_trimmed(bn_bytes *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), k;
    while ((k = bn_space_len(p, n, false)) > 0) {
        p += k;
        n -= k;
    }
    while ((k = bn_space_len(p, n, true)) > 0)
        n -= k;
    return bn_bytes_append(b, p, n);
}

static bn_status bn_append_str(bn_bytes *b, const char *s)
{
    return bn_bytes_append(b, s, strlen(s));
}

/* The LLaMA 3 format: BOS, then per message a role header, the trimmed content and
 * <|eot_id|>; optionally the assistant header. */
static bn_status bn_chat_llama3(const bn_tokenizer *t, const bn_chat_message *msgs,
                                size_t n, bool add_assistant, bn_bytes *out)
{
    bn_status st = bn_bytes_append(out, "", 0);
    if (st == BN_OK && t->bos >= 0)
        st = bn_bytes_append(out, t->vocab[t->bos].text, t->vocab[t->bos].len);
    for (size_t i = 0; st == BN_OK && i < n; i++) {
        st = bn_append_str(out, "<|start_header_id|>");
        if (st == BN_OK) st = bn_append_str(out, msgs[i].role);
        if (st == BN_OK) st = bn_append_str(out, "<|end_header_id|>\n\n");
        if (st == BN_OK) st = bn_append_trimmed(out, msgs[i].content);
        if (st == BN_OK) st = bn_append_str(out, "<|eot_id|>");
    }
    if (st == BN_OK && add_assistant)
        st = bn_append_str(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return st;
}

/* The bitnet-b1.58-2B-4T format: BOS, then per message "System: ", "User: " or
 * "Assistant: ", the trimmed content and <|eot_id|>; optionally "Assistant:" (as the
 * model's published example prompt ends). */
static bn_status bn_chat_bitnet(const bn_tokenizer *t, const bn_chat_message *msgs,
                                size_t n, bool add_assistant, bn_bytes *out)
{
    bn_status st = bn_bytes_append(out, "", 0);
    if (st == BN_OK && t->bos >= 0)
        st = bn_bytes_append(out, t->vocab[t->bos].text, t->vocab[t->bos].len);
    for (size_t i = 0; st == BN_OK && i < n; i++) {
        const char *r = msgs[i].role;
        st = bn_append_str(out, !strcmp(r, "system") ? "System: "
                                : !strcmp(r, "user") ? "User: " : "Assistant: ");
        if (st == BN_OK) st = bn_append_trimmed(out, msgs[i].content);
        if (st == BN_OK) st = bn_append_str(out, "<|eot_id|>");
    }
    if (st == BN_OK && add_assistant)
        st = bn_append_str(out, "Assistant:");
    return st;
}

bn_status bn_chat_format(const bn_tokenizer *t, const char *template_name,
                         const bn_chat_message *msgs, size_t n_msgs, bool add_assistant,
                         char **text, size_t *len)
{
    const char *name = template_name;
    if (!name) {
        if (!t->chat_template)
            return bn_error_set(BN_ERR_UNSUPPORTED, "the model has no chat template; name "
                                "one (llama3)");
        if (strstr(t->chat_template, "<|start_header_id|>"))
            name = "llama3";
        else if (strstr(t->chat_template, "User: ") &&
                 strstr(t->chat_template, "Assistant: ") &&
                 strstr(t->chat_template, "<|eot_id|>"))
            name = "bitnet";
        else
            return bn_error_set(BN_ERR_UNSUPPORTED, "the model's chat template (\"%.40s...\") "
                                "is not one this version knows; name one (llama3, bitnet)",
                                t->chat_template);
    }
    if (strcmp(name, "llama3") != 0 && strcmp(name, "bitnet") != 0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "unknown chat template '%s' (llama3 and "
                            "bitnet are known)", name);
    for (size_t i = 0; i < n_msgs; i++)
        if (msgs[i].role && strcmp(msgs[i].role, "system") && strcmp(msgs[i].role, "user") &&
            strcmp(msgs[i].role, "assistant") && strcmp(name, "bitnet") == 0)
            return bn_error_set(BN_ERR_INVALID_ARG, "chat message %zu: the bitnet template "
                                "knows the roles system, user and assistant, not '%s'", i,
                                msgs[i].role);
    for (size_t i = 0; i < n_msgs; i++)
        if (!msgs[i].role || !msgs[i].content)
            return bn_error_set(BN_ERR_INVALID_ARG, "chat message %zu has no role or content",
                                i);
    bn_bytes out = {0};
    bn_status st = strcmp(name, "bitnet") == 0
                   ? bn_chat_bitnet(t, msgs, n_msgs, add_assistant, &out)
                   : bn_chat_llama3(t, msgs, n_msgs, add_assistant, &out);
    if (st != BN_OK) {
        bn_free(out.p);
        return bn_error_wrap(BN_OK, "formatting a chat");
    }
    *text = out.p;
    *len = out.n;
    return BN_OK;
}
