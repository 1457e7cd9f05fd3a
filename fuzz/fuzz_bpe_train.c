/*
 * fuzz_bpe_train.c - a libFuzzer target for the byte-level BPE trainer: any bytes are
 * training text. The first byte chooses the vocabulary size (261 to 516 tokens); the
 * rest is the text. Training must succeed (or, for no text, be refused with
 * BN_ERR_INVALID_ARG); the written tokenizer.json must load; the text must encode to
 * ids inside the vocabulary and decode back to the same bytes; two trainings of the
 * same text must write the same file. The live block count must return to where it
 * was. Any broken promise aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void bn_fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz_bpe_train: %s: %s\n", what, bn_last_error());
    abort();
}

static char bn_fuzz_dir[64], bn_fuzz_path[128];

static bn_status bn_fuzz_train(const char *text, size_t len, int32_t vocab, const char *path)
{
    bn_bpe_train_params p = bn_bpe_train_default_params();
    p.vocab_size = vocab;
    bn_bpe_trainer *tr = NULL;
    bn_status st = bn_bpe_trainer_create(&p, &tr);
    if (st == BN_OK)
        st = bn_bpe_trainer_add_text(tr, text, len);
    if (st == BN_OK)
        st = bn_bpe_trainer_train(tr);
    if (st == BN_OK)
        st = bn_bpe_trainer_save(tr, path, false);
    bn_bpe_trainer_free(tr);
    return st;
}

static char *bn_fuzz_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096)
        return 0;
    if (!bn_fuzz_dir[0]) {
        snprintf(bn_fuzz_dir, sizeof bn_fuzz_dir, "/tmp/fuzz_bpe_train.XXXXXX");
        if (!mkdtemp(bn_fuzz_dir))
            bn_fuzz_fail("cannot make a temporary folder");
        snprintf(bn_fuzz_path, sizeof bn_fuzz_path, "%s/tokenizer.json", bn_fuzz_dir);
    }
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    int32_t vocab = 261 + data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    bn_status st = bn_fuzz_train(text, len, vocab, bn_fuzz_path);
    if (len == 0) {
        if (st != BN_ERR_INVALID_ARG)
            bn_fuzz_fail("no text was not refused");
    } else {
        if (st != BN_OK)
            bn_fuzz_fail("training failed");
        size_t n1 = 0, n2 = 0;
        char *first = bn_fuzz_slurp(bn_fuzz_path, &n1);
        if (bn_fuzz_train(text, len, vocab, bn_fuzz_path) != BN_OK)
            bn_fuzz_fail("the second training failed");
        char *second = bn_fuzz_slurp(bn_fuzz_path, &n2);
        if (!first || !second || n1 != n2 || memcmp(first, second, n1) != 0)
            bn_fuzz_fail("two trainings wrote different files");
        free(first);
        free(second);
        bn_tokenizer *t = NULL;
        if (bn_tokenizer_load_file(bn_fuzz_path, &t) != BN_OK)
            bn_fuzz_fail("the written tokenizer does not load");
        if (bn_tokenizer_n_vocab(t) > vocab)
            bn_fuzz_fail("more tokens than asked for");
        bn_tokenize_params tp = bn_tokenize_default_params();
        tp.parse_special = false;
        bn_token *ids = NULL;
        size_t n_ids = 0;
        if (bn_tokenize(t, text, len, &tp, &ids, &n_ids) != BN_OK)
            bn_fuzz_fail("encoding the training text failed");
        for (size_t i = 0; i < n_ids; i++)
            if (ids[i] < 0 || ids[i] >= bn_tokenizer_n_vocab(t))
                bn_fuzz_fail("an id outside the vocabulary");
        char *back = NULL;
        size_t back_len = 0;
        if (bn_detokenize(t, ids, n_ids, true, &back, &back_len) != BN_OK ||
            back_len != len || memcmp(back, text, len) != 0)
            bn_fuzz_fail("the text does not come back");
        bn_free(back);
        bn_free(ids);
        bn_tokenizer_free(t);
    }
    bn_mem_get_stats(&after);
    if (after.live_blocks != before.live_blocks)
        bn_fuzz_fail("blocks leaked");
    return 0;
}
