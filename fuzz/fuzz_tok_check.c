/*
 * fuzz_tok_check.c - the checks that the fuzz targets of the tokenizer file readers
 * share.
 *
 * A file the reader refuses must give BN_ERR_FORMAT, BN_ERR_UNSUPPORTED or BN_ERR_OOM,
 * a message that names the file, and no tokenizer. A file it accepts must give a
 * tokenizer that keeps bitnet.h's promises for any vocabulary, however odd:
 * - every id has a piece, NUL-terminated at its length, that bn_tokenizer_find finds
 *   (as that id, or as another id of the same text), and a known type; no id past the
 *   vocabulary answers; BOS, EOS and EOT are ids or -1;
 * - texts encode to ids inside the vocabulary (fixed texts with special-token strings,
 *   spaces and invalid UTF-8, one made of the vocabulary's own pieces, and the chat
 *   formats' output), with and without special-token parsing and BOS; byte-level BPE
 *   may refuse a byte that has no token (BN_ERR_FORMAT saying so), SentencePiece never
 *   refuses (it has byte tokens or an unknown token);
 * - ids decode, whole and streamed, to the same bytes, with special tokens rendered
 *   and not: those of each text, and every id of the vocabulary once;
 * - the chat formats render (the model's own template may be one this version does
 *   not know: BN_ERR_UNSUPPORTED).
 * Any broken promise aborts, which libFuzzer reports as a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_tok_check.h"

static volatile size_t bn_fuzz_tok_sink;

static void bn_fuzz_tok_fail(const char *target, const char *what, const char *detail)
{
    fprintf(stderr, "%s: %s%s%s\n", target, what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* The log sink: reads the message, prints nothing. */
static void bn_fuzz_tok_drop(bn_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)user;
    bn_fuzz_tok_sink += strlen(msg);
}

void bn_fuzz_tok_quiet_log(void)
{
    bn_log_set(bn_fuzz_tok_drop, NULL);
    bn_log_set_level(BN_LOG_DEBUG);
}

/* Decodes ids whole and as a stream and checks that both give the same bytes. */
static void bn_fuzz_tok_decode(const char *target, const bn_tokenizer *t,
                               const bn_token *ids, size_t n, bool render)
{
    char *whole = NULL;
    size_t len = 0;
    if (bn_detokenize(t, ids, n, render, &whole, &len) != BN_OK)
        bn_fuzz_tok_fail(target, "decoding failed", bn_last_error());
    bn_detok_stream *s = NULL;
    if (bn_detok_stream_create(t, render, &s) != BN_OK)
        bn_fuzz_tok_fail(target, "creating a decoding stream failed", bn_last_error());
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const char *piece;
        size_t plen;
        if (bn_detok_stream_push(s, ids[i], &piece, &plen) != BN_OK)
            bn_fuzz_tok_fail(target, "a stream push failed", bn_last_error());
        if (plen > len - pos || memcmp(whole + pos, piece, plen) != 0)
            bn_fuzz_tok_fail(target, "the stream differs from the whole decoding", NULL);
        pos += plen;
    }
    const char *rest;
    size_t rlen;
    bn_detok_stream_flush(s, &rest, &rlen);
    if (rlen != len - pos || memcmp(whole + pos, rest, rlen) != 0)
        bn_fuzz_tok_fail(target, "the stream ends differently from the whole decoding", NULL);
    bn_detok_stream_free(s);
    bn_free(whole);
}

/* Encodes text in the four modes (special tokens parsed or not, BOS or not) and decodes
 * the ids. */
static void bn_fuzz_tok_encode(const char *target, const bn_tokenizer *t, const char *text,
                               size_t len)
{
    bn_token bos = bn_tokenizer_bos(t);
    for (int mode = 0; mode < 4; mode++) {
        bn_tokenize_params p = bn_tokenize_default_params();
        p.parse_special = mode & 1;
        p.add_bos = mode & 2;
        bn_token *ids = NULL;
        size_t n = 0;
        bn_status st = bn_tokenize(t, text, len, &p, &ids, &n);
        if (p.add_bos && bos < 0) {
            if (st != BN_ERR_INVALID_ARG || ids)
                bn_fuzz_tok_fail(target, "BOS asked of a tokenizer without one, not refused",
                                 NULL);
            continue;
        }
        if (st != BN_OK) {
            bool may_refuse = bn_tokenizer_kind_of(t) == BN_TOKENIZER_BPE &&
                              st == BN_ERR_FORMAT &&
                              strstr(bn_last_error(), "is not in the vocabulary");
            if (!may_refuse || ids)
                bn_fuzz_tok_fail(target, "encoding failed", bn_last_error());
            continue;
        }
        if (!ids)
            bn_fuzz_tok_fail(target, "encoding succeeded without an id array", NULL);
        if (p.add_bos && (n == 0 || ids[0] != bos))
            bn_fuzz_tok_fail(target, "BOS asked for and not first", NULL);
        if (len > 0 && n == (size_t)p.add_bos)
            bn_fuzz_tok_fail(target, "a text that is not empty gave no ids", NULL);
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= bn_tokenizer_n_vocab(t))
                bn_fuzz_tok_fail(target, "an id outside the vocabulary", NULL);
        bn_fuzz_tok_decode(target, t, ids, n, true);
        bn_fuzz_tok_decode(target, t, ids, n, false);
        bn_free(ids);
    }
}

/* Walks the vocabulary and the special ids. */
static void bn_fuzz_tok_vocab(const char *target, const bn_tokenizer *t)
{
    int32_t n = bn_tokenizer_n_vocab(t);
    if (n <= 0)
        bn_fuzz_tok_fail(target, "a tokenizer without a vocabulary", NULL);
    for (bn_token id = 0; id < n; id++) {
        size_t len = 0, found_len = 0;
        const char *piece = bn_tokenizer_piece(t, id, &len);
        if (!piece || piece[len] != '\0')
            bn_fuzz_tok_fail(target, "a piece not NUL-terminated at its length", NULL);
        bn_token found = bn_tokenizer_find(t, piece, len);
        const char *found_piece = bn_tokenizer_piece(t, found, &found_len);
        if (!found_piece || found_len != len || memcmp(found_piece, piece, len) != 0)
            bn_fuzz_tok_fail(target, "a piece that bn_tokenizer_find does not find", NULL);
        bn_token_type type = bn_tokenizer_token_type(t, id);
        if (type < BN_TOKEN_NORMAL || type > BN_TOKEN_BYTE)
            bn_fuzz_tok_fail(target, "a token of an unknown type", NULL);
    }
    if (bn_tokenizer_piece(t, n, NULL) || bn_tokenizer_piece(t, -1, NULL))
        bn_fuzz_tok_fail(target, "a piece past the vocabulary answered", NULL);
    bn_token special[3] = {bn_tokenizer_bos(t), bn_tokenizer_eos(t), bn_tokenizer_eot(t)};
    for (int i = 0; i < 3; i++)
        if (special[i] < -1 || special[i] >= n)
            bn_fuzz_tok_fail(target, "BOS, EOS or EOT outside the vocabulary", NULL);
    if (bn_tokenizer_is_eog(t, -1))
        bn_fuzz_tok_fail(target, "id -1 ends generation", NULL);
}

/* A text of pieces from across the vocabulary (and BOS, EOS, EOT), at most 1 KiB. */
static void bn_fuzz_tok_pieces_text(const bn_tokenizer *t, char *text, size_t cap,
                                    size_t *len)
{
    int32_t n = bn_tokenizer_n_vocab(t);
    bn_token ids[19] = {bn_tokenizer_bos(t), bn_tokenizer_eos(t), bn_tokenizer_eot(t)};
    for (int k = 0; k < 16; k++)
        ids[3 + k] = (bn_token)((int64_t)k * n / 16 + (n > 16 ? k % 3 : 0));
    *len = 0;
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        size_t plen = 0;
        const char *piece = bn_tokenizer_piece(t, ids[k], &plen);
        if (piece && plen <= cap - *len) {
            memcpy(text + *len, piece, plen);
            *len += plen;
        }
    }
}

/* The chat formats: the model's own template (when this version knows it) and both
 * named ones; each output is encoded too. */
static void bn_fuzz_tok_chat(const char *target, const bn_tokenizer *t)
{
    const bn_chat_message msgs[2] = {{"system", " Be brief.\n"},
                                     {"user", "\xc2\xa0Hi <|eot_id|> there\xe3\x80\x80"}};
    const char *const names[3] = {NULL, "llama3", "bitnet"};
    for (int i = 0; i < 3; i++) {
        char *text = NULL;
        size_t len = 0;
        bn_status st = bn_chat_format(t, names[i], msgs, 2, true, &text, &len);
        if (st == BN_ERR_UNSUPPORTED && names[i] == NULL)
            continue;
        if (st != BN_OK)
            bn_fuzz_tok_fail(target, "formatting a chat failed", bn_last_error());
        bn_fuzz_tok_encode(target, t, text, len);
        bn_free(text);
    }
}

void bn_fuzz_tok_check_load(const char *target, bn_tokenizer_kind kind, bn_status st,
                            bn_tokenizer *t, const char *needle)
{
    if (st != BN_OK) {
        if (t)
            bn_fuzz_tok_fail(target, "a refused file left a tokenizer", NULL);
        if (st != BN_ERR_FORMAT && st != BN_ERR_UNSUPPORTED && st != BN_ERR_OOM)
            bn_fuzz_tok_fail(target, "a file refused with an unexpected status",
                             bn_last_error());
        if (!strstr(bn_last_error(), needle))
            bn_fuzz_tok_fail(target, "the message of a refusal does not name the file",
                             bn_last_error());
        return;
    }
    if (!t)
        bn_fuzz_tok_fail(target, "a load succeeded without a tokenizer", NULL);
    if (bn_tokenizer_kind_of(t) != kind)
        bn_fuzz_tok_fail(target, "a tokenizer of the other family", NULL);
    bn_fuzz_tok_vocab(target, t);

    static const char *const texts[] = {
        "Hello, world! <|eot_id|> na\xc3\xafve \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd 12345",
        "  def f(x):\n\treturn x**2  # \xe2\x96\x81<s></s><unk><|begin_of_text|>",
        "\xff\xfe inv\xc3lid \xed\xa0\x80 <0x41> \xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d",
        "",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        bn_fuzz_tok_encode(target, t, texts[i], strlen(texts[i]));
    char text[1024];
    size_t len = 0;
    bn_fuzz_tok_pieces_text(t, text, sizeof text, &len);
    bn_fuzz_tok_encode(target, t, text, len);
    bn_fuzz_tok_chat(target, t);

    /* every id once */
    int32_t n = bn_tokenizer_n_vocab(t);
    bn_token *all = malloc((size_t)n * sizeof *all);
    if (!all)
        bn_fuzz_tok_fail(target, "out of memory for the list of ids", NULL);
    for (bn_token id = 0; id < n; id++)
        all[id] = id;
    bn_fuzz_tok_decode(target, t, all, (size_t)n, true);
    bn_fuzz_tok_decode(target, t, all, (size_t)n, false);
    free(all);
    bn_tokenizer_free(t);
}
