/*
 * fuzz_tokenizer.c - a libFuzzer target for both tokenizer families.
 *
 * Loads the LLaMA 3 byte-level BPE tokenizer (tokenizer.json) and the LLaMA 2
 * SentencePiece tokenizer (tokenizer.model) once, from $BITNET_FUZZ_DATA (the folder
 * holding tokenizer/llama3 and tokenizer/llama2). Each input's first byte chooses the
 * options (special-token parsing, BOS); the rest is encoded by both, then decoded
 * whole and streamed token by token. What must hold for any bytes at all: encoding
 * succeeds, every id is in the vocabulary, decoding gives back exactly the input
 * (both families are lossless: byte-level BPE by construction, SentencePiece through
 * byte fallback, except for U+2581, its own space mark), the stream gives the same
 * bytes, and nothing leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bn_tokenizer *bn_fuzz_tok[2];

static void bn_fuzz_fail(const char *what, int which)
{
    fprintf(stderr, "fuzz_tokenizer (%s): %s\n", which ? "spm" : "bpe", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("BITNET_FUZZ_DATA");
    const char *names[2] = {"tokenizer/llama3/tokenizer.json", "tokenizer/llama2/tokenizer.model"};
    for (int i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir ? dir : "../shared/data", names[i]);
        if (bn_tokenizer_load_file(path, &bn_fuzz_tok[i]) != BN_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", bn_last_error());
            exit(1);
        }
    }
    return 0;
}

/* Decodes ids as a stream and checks it gives `want`. */
static void bn_fuzz_stream(const bn_tokenizer *t, const bn_token *ids, size_t n,
                           const char *want, size_t want_len, int which)
{
    bn_detok_stream *s = NULL;
    if (bn_detok_stream_create(t, true, &s) != BN_OK)
        bn_fuzz_fail("stream create", which);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const char *piece;
        size_t len;
        if (bn_detok_stream_push(s, ids[i], &piece, &len) != BN_OK)
            bn_fuzz_fail("stream push", which);
        if (pos + len > want_len || memcmp(want + pos, piece, len) != 0)
            bn_fuzz_fail("stream differs from the whole decoding", which);
        pos += len;
    }
    const char *rest;
    size_t len;
    bn_detok_stream_flush(s, &rest, &len);
    if (pos + len != want_len || memcmp(want + pos, rest, len) != 0)
        bn_fuzz_fail("stream ends differently", which);
    bn_detok_stream_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    bn_tokenize_params p = bn_tokenize_default_params();
    p.parse_special = data[0] & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    for (int which = 0; which < 2; which++) {
        const bn_tokenizer *t = bn_fuzz_tok[which];
        bn_token *ids = NULL;
        size_t n = 0;
        if (bn_tokenize(t, text, len, &p, &ids, &n) != BN_OK)
            bn_fuzz_fail(bn_last_error(), which);
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= bn_tokenizer_n_vocab(t))
                bn_fuzz_fail("id outside the vocabulary", which);
        char *back = NULL;
        size_t blen = 0;
        if (bn_detokenize(t, ids, n, true, &back, &blen) != BN_OK)
            bn_fuzz_fail(bn_last_error(), which);
        /* with parse_special off, special strings are text and come back as text;
         * SentencePiece writes spaces as U+2581, so a U+2581 already in the text
         * comes back as a space (as sentencepiece itself does) */
        bool lossless = !p.parse_special &&
                        !(which == 1 && memmem(text, len, "\xe2\x96\x81", 3));
        if (lossless && (blen != len || memcmp(back, text, len) != 0))
            bn_fuzz_fail("decode(encode(x)) != x", which);
        bn_fuzz_stream(t, ids, n, back, blen, which);
        bn_free(back);
        bn_free(ids);
    }
    bn_mem_get_stats(&after);
    if (after.live_blocks != before.live_blocks)
        bn_fuzz_fail("leaked blocks", 0);
    return 0;
}
