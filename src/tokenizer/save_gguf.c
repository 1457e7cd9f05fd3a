/*
 * save_gguf.c - a tokenizer written as a model's GGUF metadata (llama.cpp's tokenizer.*
 * keys), the inverse of load_gguf.c: whatever a tokenizer was loaded from
 * (tokenizer.json, tokenizer.model or GGUF), the keys written here load back into a
 * tokenizer that gives the same ids (tests/test_tokenizer.c checks it against the
 * reference ids of both families).
 */
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* A token id key, when the id exists. */
static bn_status bn_put_id(bn_gguf_writer *w, const char *key, bn_token id)
{
    return id >= 0 ? bn_gguf_writer_set_u32(w, key, (uint32_t)id) : BN_OK;
}

/* The vocabulary: texts (NUL-terminated copies: GGUF strings carry lengths, but the
 * writer takes C strings, so a text holding a NUL byte is refused), scores, types. */
static bn_status bn_put_vocab(const bn_tokenizer *t, bn_gguf_writer *w)
{
    const size_t n = (size_t)t->n_vocab;
    const char **texts = bn_calloc(n, sizeof *texts, "tokenizer");
    float *scores = bn_malloc(n * sizeof *scores, "tokenizer");
    int32_t *types = bn_malloc(n * sizeof *types, "tokenizer");
    bn_status st = texts && scores && types ? BN_OK
                                            : bn_error_wrap(BN_OK, "writing %zu tokens", n);
    for (size_t i = 0; i < n && st == BN_OK; i++) {
        const bn_tok_entry *e = &t->vocab[i];
        if (e->text && memchr(e->text, 0, e->len))
            st = bn_error_set(BN_ERR_UNSUPPORTED, "token %zu holds a NUL byte, which GGUF "
                              "metadata cannot carry here", i);
        texts[i] = e->text ? e->text : "";
        scores[i] = e->score;
        types[i] = e->type;
    }
    if (st == BN_OK)
        st = bn_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", texts, n);
    if (st == BN_OK)
        st = bn_gguf_writer_set_array(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, scores,
                                      n);
    if (st == BN_OK)
        st = bn_gguf_writer_set_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types,
                                      n);
    bn_free(texts);
    bn_free(scores);
    bn_free(types);
    return st;
}

/* BPE: the merges as "left right" texts in rank order, and the pre-tokenizer. */
static bn_status bn_put_bpe(const bn_tokenizer *t, bn_gguf_writer *w)
{
    bn_tok_bpe_info info;
    bn_status st = bn_tok_bpe_describe(t, &info);
    if (st != BN_OK)
        return st;
    if (!info.ignore_merges && strcmp(info.pre, "llama-bpe") == 0)
        bn_log(BN_LOG_WARN, "tokenizer: a LLaMA 3 pre-tokenizer without ignore_merges is "
               "written as llama-bpe, which loads with ignore_merges");
    size_t bytes = 0;
    for (size_t i = 0; i < info.n_merges; i++)
        bytes += t->vocab[info.pairs[2 * i]].len + t->vocab[info.pairs[2 * i + 1]].len + 2;
    char *buf = bn_malloc(bytes ? bytes : 1, "tokenizer");
    const char **strs = bn_malloc((info.n_merges ? info.n_merges : 1) * sizeof *strs,
                                  "tokenizer");
    if (!buf || !strs)
        st = bn_error_wrap(BN_OK, "writing %zu merges", info.n_merges);
    size_t at = 0;
    for (size_t i = 0; i < info.n_merges && st == BN_OK; i++) {
        const bn_tok_entry *l = &t->vocab[info.pairs[2 * i]];
        const bn_tok_entry *r = &t->vocab[info.pairs[2 * i + 1]];
        strs[i] = buf + at;
        memcpy(buf + at, l->text, l->len);
        at += l->len;
        buf[at++] = ' ';
        memcpy(buf + at, r->text, r->len);
        at += r->len;
        buf[at++] = '\0';
    }
    if (st == BN_OK)
        st = bn_gguf_writer_set_str_array(w, "tokenizer.ggml.merges", strs, info.n_merges);
    if (st == BN_OK)
        st = bn_gguf_writer_set_str(w, "tokenizer.ggml.pre", info.pre);
    bn_free(strs);
    bn_free(buf);
    bn_free(info.pairs);
    return st;
}

bn_status bn_tokenizer_write_gguf(const bn_tokenizer *t, bn_gguf_writer *w)
{
    if (!t || !w)
        return bn_error_set(BN_ERR_INVALID_ARG, "writing a tokenizer: no %s",
                            !t ? "tokenizer" : "writer");
    const bool bpe = t->kind == BN_TOKENIZER_BPE;
    bn_status st = bn_gguf_writer_set_str(w, "tokenizer.ggml.model", bpe ? "gpt2" : "llama");
    if (st == BN_OK) st = bn_put_vocab(t, w);
    if (st == BN_OK && bpe) st = bn_put_bpe(t, w);
    if (st == BN_OK) st = bn_put_id(w, "tokenizer.ggml.bos_token_id", t->bos);
    if (st == BN_OK) st = bn_put_id(w, "tokenizer.ggml.eos_token_id", t->eos);
    if (st == BN_OK) st = bn_put_id(w, "tokenizer.ggml.eot_token_id", t->eot);
    if (st == BN_OK) st = bn_put_id(w, "tokenizer.ggml.padding_token_id", t->pad);
    if (st == BN_OK) st = bn_put_id(w, "tokenizer.ggml.unknown_token_id", t->unk);
    if (st == BN_OK) st = bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos);
    if (st == BN_OK)
        st = bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix",
                                     t->add_space_prefix);
    if (st == BN_OK && t->chat_template)
        st = bn_gguf_writer_set_str(w, "tokenizer.chat_template", t->chat_template);
    return st == BN_OK ? BN_OK : bn_error_wrap(BN_OK, "writing the tokenizer");
}
