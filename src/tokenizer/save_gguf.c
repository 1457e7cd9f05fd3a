/*
 * save_gguf.c - writes a tokenizer as GGUF metadata (tokenizer.ggml.*), the keys that
 * load_gguf.c reads and llama.cpp writes: the family, the vocabulary with scores and
 * types, BPE's merges and pre-tokenizer, the special ids, the flags and the chat
 * template. A tokenizer read from a tokenizer.json or tokenizer.model and written so
 * loads back from the GGUF file as the same tokenizer.
 */
#include <stdio.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* Writes id under key when it is a token (>= 0). */
static bn_status bn_save_id(bn_gguf_writer *w, const char *key, bn_token id)
{
    return id >= 0 ? bn_gguf_writer_set_u32(w, key, (uint32_t)id) : BN_OK;
}

bn_status bn_tokenizer_write_gguf(const bn_tokenizer *t, bn_gguf_writer *w)
{
    return bn_tokenizer_write_gguf_padded(t, t->n_vocab, w);
}

bn_status bn_tokenizer_write_gguf_padded(const bn_tokenizer *t, int32_t n_vocab,
                                         bn_gguf_writer *w)
{
    bool bpe = t->kind == BN_TOKENIZER_BPE;
    if (n_vocab < t->n_vocab)
        return bn_error_set(BN_ERR_INVALID_ARG, "the tokenizer has %d tokens, more than the "
                            "%d of the model", t->n_vocab, n_vocab);
    size_t n = (size_t)n_vocab;
    char *pads = bn_malloc((n - (size_t)t->n_vocab) * 32 + 1, "tokenizer");
    const char **texts = bn_malloc((n + 1) * sizeof *texts, "tokenizer");
    float *scores = bn_malloc((n + 1) * sizeof *scores, "tokenizer");
    int32_t *types = bn_malloc((n + 1) * sizeof *types, "tokenizer");
    bn_status st = texts && scores && types && pads ? BN_OK
                 : bn_error_wrap(BN_OK, "writing a vocabulary of %zu tokens", n);
    for (size_t i = (size_t)t->n_vocab; st == BN_OK && i < n; i++) {
        /* rows of the embedding past the vocabulary, as llama.cpp names them */
        char *p = pads + (i - (size_t)t->n_vocab) * 32;
        snprintf(p, 32, "[PAD%zu]", i);
        texts[i] = p;
        scores[i] = 0.0f;
        types[i] = BN_TOKEN_USER_DEFINED;
    }
    for (size_t i = 0; st == BN_OK && i < (size_t)t->n_vocab; i++) {
        /* a text with a NUL inside cannot go through the C-string array; none of the
         * supported formats makes one */
        if (strlen(t->vocab[i].text) != t->vocab[i].len)
            st = bn_error_set(BN_ERR_UNSUPPORTED, "token %zu holds a NUL byte", i);
        texts[i] = t->vocab[i].text;
        scores[i] = t->vocab[i].score;
        types[i] = t->vocab[i].type;
    }
    if (st == BN_OK)
        st = bn_gguf_writer_set_str(w, "tokenizer.ggml.model", bpe ? "gpt2" : "llama");
    if (st == BN_OK && bpe)
        st = bn_gguf_writer_set_str(w, "tokenizer.ggml.pre",
                                    t->pre && strcmp(t->pre, "gpt2") == 0 ? "gpt2"
                                                                          : "llama-bpe");
    if (st == BN_OK)
        st = bn_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", texts, n);
    if (st == BN_OK)
        st = bn_gguf_writer_set_array(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, scores, n);
    if (st == BN_OK)
        st = bn_gguf_writer_set_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types,
                                      n);
    if (st == BN_OK && bpe)
        st = bn_gguf_writer_set_str_array(w, "tokenizer.ggml.merges",
                                          (const char *const *)t->merges, t->n_merges);
    if (st == BN_OK) st = bn_save_id(w, "tokenizer.ggml.bos_token_id", t->bos);
    if (st == BN_OK) st = bn_save_id(w, "tokenizer.ggml.eos_token_id", t->eos);
    if (st == BN_OK) st = bn_save_id(w, "tokenizer.ggml.eot_token_id", t->eot);
    if (st == BN_OK) st = bn_save_id(w, "tokenizer.ggml.padding_token_id", t->pad);
    if (st == BN_OK) st = bn_save_id(w, "tokenizer.ggml.unknown_token_id", t->unk);
    if (st == BN_OK)
        st = bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos);
    if (st == BN_OK && !bpe)
        st = bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix",
                                     t->add_space_prefix);
    if (st == BN_OK && t->chat_template)
        st = bn_gguf_writer_set_str(w, "tokenizer.chat_template", t->chat_template);
    bn_free(pads);
    bn_free(texts);
    bn_free(scores);
    bn_free(types);
    return st;
}
