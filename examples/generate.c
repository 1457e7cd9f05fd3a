/*
 * generate.c - the smallest complete program that runs a model through libbitnet:
 * load, tokenize, evaluate the prompt, then sample and print one token at a time.
 *
 *     cc -std=c11 generate.c $(pkg-config --cflags --libs bitnet) -o generate
 *     ./generate model.gguf "The capital of France is" 32
 *
 * Greedy decoding (temperature 0), so the same model and prompt always print the same
 * text: the text `bitnet generate -m MODEL -p PROMPT -n N --temp 0 --no-echo` prints.
 */
#include <bitnet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, bn_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT N_TOKENS\n", argv[0]);
        return 2;
    }
    int n_predict = atoi(argv[3]);
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    bn_sampler *sampler = NULL;
    bn_detok_stream *stream = NULL;
    bn_token *ids = NULL;
    size_t n_ids = 0;
    int rc = 1;

    if (bn_model_load(argv[1], NULL, &model) != BN_OK)    /* NULL: default params */
        return fail("loading the model");
    const bn_tokenizer *tok = bn_model_tokenizer(model);
    if (!tok) {
        fprintf(stderr, "the model has no tokenizer\n");
        goto done;
    }
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 512;
    if (bn_context_create(model, &cp, &ctx) != BN_OK) {
        rc = fail("creating a context");
        goto done;
    }
    bn_tokenize_params tp = bn_tokenize_default_params();
    tp.add_bos = bn_tokenizer_wants_bos(tok);
    if (bn_tokenize(tok, argv[2], strlen(argv[2]), &tp, &ids, &n_ids) != BN_OK) {
        rc = fail("tokenizing");
        goto done;
    }
    bn_sampler_params sp = bn_sampler_default_params();
    sp.temp = 0.0f;                                          /* greedy */
    int32_t n_vocab = bn_tokenizer_n_vocab(tok);              /* not padding rows */
    if (n_vocab > bn_model_n_vocab(model))
        n_vocab = bn_model_n_vocab(model);
    if (bn_sampler_create(&sp, n_vocab, &sampler) != BN_OK ||
        bn_detok_stream_create(tok, false, &stream) != BN_OK) {
        rc = fail("setting up");
        goto done;
    }
    if (bn_eval(ctx, ids, (int32_t)n_ids) != BN_OK) {         /* the prompt, in one batch */
        rc = fail("evaluating the prompt");
        goto done;
    }
    for (int i = 0; i < n_predict; i++) {
        bn_token t = bn_sampler_sample(sampler, bn_get_logits(ctx, -1));
        if (bn_tokenizer_is_eog(tok, t))
            break;
        bn_sampler_accept(sampler, t);
        const char *text;
        size_t len;
        if (bn_detok_stream_push(stream, t, &text, &len) == BN_OK)
            fwrite(text, 1, len, stdout);
        fflush(stdout);
        if (i + 1 < n_predict && bn_eval(ctx, &t, 1) != BN_OK) {   /* one more position */
            rc = fail("evaluating");
            goto done;
        }
    }
    const char *rest;
    size_t rest_len;
    bn_detok_stream_flush(stream, &rest, &rest_len);
    fwrite(rest, 1, rest_len, stdout);
    fputc('\n', stdout);
    rc = 0;
done:
    bn_free(ids);
    bn_detok_stream_free(stream);
    bn_sampler_free(sampler);
    bn_context_free(ctx);
    bn_model_free(model);
    return rc;
}
