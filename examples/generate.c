/*
 * generate.c - the smallest complete program that runs a model through libbitnet:
 * load, tokenize, then let bn_generate evaluate the prompt and hand over the text of
 * one token at a time.
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

/* Called with the text of each new token (whole UTF-8 characters only); true: go on. */
static bool print_piece(bn_token id, const char *text, size_t len, void *user)
{
    (void)id;
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT N_TOKENS\n", argv[0]);
        return 2;
    }
    bn_model *model = NULL;
    bn_context *ctx = NULL;
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
    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = atoi(argv[3]);
    gp.sampling.temp = 0.0f;                                  /* greedy */
    gp.on_token = print_piece;
    bn_generate_result result;
    /* evaluates the prompt, then samples and prints until an end-of-generation token,
     * N_TOKENS tokens or a full context */
    if (bn_generate(ctx, ids, (int32_t)n_ids, &gp, &result) != BN_OK) {
        rc = fail("generating");
        goto done;
    }
    fputc('\n', stdout);
    rc = 0;
done:
    bn_free(ids);
    bn_context_free(ctx);
    bn_model_free(model);
    return rc;
}
