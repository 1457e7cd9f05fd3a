/*
 * generate.c - the generation loop, once for every front end (bitnet generate, bitnet
 * chat through the chat session, the examples): evaluate the prompt, then sample,
 * decode, match stop texts, hand the text out and evaluate, until a stop rule ends it.
 * bitnet.h lists the rules in the order they are checked; the loop below reads in that
 * order. Everything the loop needs is made before the first token; decoding and the
 * stop texts grow their buffers only when a piece is longer than any before.
 */
#include <assert.h>
#include <time.h>

#include "model/generate_internal.h"
#include "model/stop_text.h"

bn_generate_params bn_generate_default_params(void)
{
    bn_generate_params p = {0};
    p.max_tokens = -1;
    p.sampling = bn_sampler_default_params();
    p.reuse_prompt = true;
    return p;
}

double bn_generate_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int32_t bn_generate_n_vocab(const bn_model *model)
{
    /* a model may have more embedding rows than tokens (padding): never draw those */
    const bn_tokenizer *tok = bn_model_tokenizer(model);
    int32_t n_vocab = bn_model_n_vocab(model);
    if (tok && bn_tokenizer_n_vocab(tok) < n_vocab)
        n_vocab = bn_tokenizer_n_vocab(tok);
    return n_vocab;
}

static bn_status bn_gen_check(const bn_model *model, const bn_context *ctx,
                              int32_t n_prompt, const bn_generate_params *p)
{
    if (!bn_model_tokenizer(model))
        return bn_error_set(BN_ERR_INVALID_ARG, "generating: the model has no tokenizer");
    if (n_prompt < 0)
        return bn_error_set(BN_ERR_INVALID_ARG, "generating: n_prompt is %d", n_prompt);
    if (p->max_tokens < -1)
        return bn_error_set(BN_ERR_INVALID_ARG, "generating: max_tokens is %d (-1 for no "
                            "limit, or 0 or more)", p->max_tokens);
    if (n_prompt == 0 && !bn_get_logits(ctx, -1))
        return bn_error_set(BN_ERR_INVALID_ARG, "generating: no prompt, and the context "
                            "holds no logits to continue from");
    return BN_OK;
}

bn_status bn_gen_setup(bn_gen_state *g, const bn_model *model)
{
    bn_status st = bn_stop_text_init(&g->stops, g->p->stops, g->p->n_stops);
    g->n_vocab = bn_generate_n_vocab(model);
    if (st == BN_OK && !g->sampler) {
        st = bn_sampler_create(&g->p->sampling, g->n_vocab, &g->own_sampler);
        g->sampler = g->own_sampler;
    }
    if (st == BN_OK)
        st = bn_detok_stream_create(g->tok, g->p->render_special, &g->detok);
    return st == BN_OK ? BN_OK : bn_error_wrap(BN_OK, "generating");
}

void bn_gen_free(bn_gen_state *g)
{
    bn_stop_text_free(&g->stops);
    bn_detok_stream_free(g->detok);
    bn_sampler_free(g->own_sampler);
}

/* Hands text to the caller; the callback's answer, true without one. */
static bool bn_gen_emit(const bn_gen_state *g, bn_token id, const char *text, size_t len)
{
    return g->p->on_token ? g->p->on_token(id, text, len, g->p->user) : true;
}

/* Decodes token t (drawn from logits) and passes its text through the stop texts to
 * the callback, its logits and text first to on_logits when there is one. Sets *stop
 * when a rule ends generation with this token. */
static bn_status bn_gen_deliver(bn_gen_state *g, bn_token t, const float *logits,
                                bool *stop, bn_stop_reason *why)
{
    const char *piece, *out;
    size_t piece_len, out_len;
    bool hit;
    bn_status st = bn_detok_stream_push(g->detok, t, &piece, &piece_len);
    if (st == BN_OK && g->p->on_logits)
        g->p->on_logits(t, logits, g->n_vocab, piece, piece_len, g->p->user);
    if (st == BN_OK)
        st = bn_stop_text_push(&g->stops, piece, piece_len, &out, &out_len, &hit);
    if (st != BN_OK)
        return bn_error_wrap(BN_OK, "generating: decoding token %d", t);
    bool go_on = bn_gen_emit(g, t, out, out_len);
    if (hit) {
        *stop = true;
        *why = BN_STOP_TEXT;
    } else if (!go_on) {
        *stop = true;
        *why = BN_STOP_CANCELLED;
    }
    return BN_OK;
}

/* The end: what the decoder and the stop texts still hold goes to the callback in one
 * last call, unless a stop text ended generation. */
bn_status bn_gen_finish(bn_gen_state *g, bn_stop_reason why)
{
    if (why == BN_STOP_TEXT)
        return BN_OK;
    const char *rest, *out;
    size_t rest_len, out_len;
    bn_detok_stream_flush(g->detok, &rest, &rest_len);
    if (bn_stop_text_finish(&g->stops, rest, rest_len, &out, &out_len) != BN_OK)
        return bn_error_wrap(BN_OK, "generating: the end of the text");
    if (out_len)
        bn_gen_emit(g, -1, out, out_len);
    return BN_OK;
}

bn_status bn_gen_next(bn_gen_state *g, const float *logits, int32_t *n_generated,
                      bn_token *next, bool *stop, bn_stop_reason *why)
{
    const bn_generate_params *p = g->p;
    *stop = true;
    if (p->max_tokens >= 0 && *n_generated >= p->max_tokens) {         /* rule 1 */
        *why = BN_STOP_MAX_TOKENS;
        return BN_OK;
    }
    bn_token t = bn_sampler_sample(g->sampler, logits);
    if (!p->ignore_eog && bn_tokenizer_is_eog(g->tok, t)) {             /* rule 2 */
        *why = BN_STOP_EOG;
        return BN_OK;
    }
    ++*n_generated;
    bn_sampler_accept(g->sampler, t);
    bool ended = false;                                                 /* rules 3 and 4 */
    bn_status st = bn_gen_deliver(g, t, logits, &ended, why);
    if (st != BN_OK || ended)
        return st;
    if (p->max_tokens >= 0 && *n_generated >= p->max_tokens) {          /* rule 5 */
        *why = BN_STOP_MAX_TOKENS;
        return BN_OK;
    }
    *stop = false;
    *next = t;
    return BN_OK;
}

/* Samples, delivers and evaluates tokens until a stop rule; *n_generated counts them. */
static bn_status bn_gen_loop(bn_gen_state *g, bn_stop_reason *why, int32_t *n_generated)
{
    int32_t n_ctx = bn_context_n_ctx(g->ctx), n_gen = 0;
    for (;;) {
        bn_token t = -1;
        bool stop;
        bn_status st = bn_gen_next(g, bn_get_logits(g->ctx, -1), &n_gen, &t, &stop, why);
        if (st != BN_OK)
            return st;
        if (stop)
            break;
        if (bn_context_n_past(g->ctx) >= n_ctx) {                       /* rule 6 */
            *why = BN_STOP_CONTEXT_FULL;
            break;
        }
        st = bn_eval(g->ctx, &t, 1);
        if (st != BN_OK)
            return bn_error_wrap(BN_OK, "generating: evaluating token %d", n_gen);
    }
    *n_generated = n_gen;
    return BN_OK;
}

bn_status bn_generate(bn_context *ctx, const bn_token *prompt, int32_t n_prompt,
                      const bn_generate_params *params, bn_generate_result *result)
{
    assert(ctx);
    const bn_model *model = bn_context_model(ctx);
    bn_generate_params defaults = bn_generate_default_params();
    const bn_generate_params *p = params ? params : &defaults;
    assert(result && (prompt || n_prompt <= 0));
    bn_status st = bn_gen_check(model, ctx, n_prompt, p);
    if (st != BN_OK)
        return st;
    bn_gen_state g = {.p = p, .tok = bn_model_tokenizer(model), .ctx = ctx,
                      .sampler = p->sampler};
    st = bn_gen_setup(&g, model);
    if (st != BN_OK) {
        bn_gen_free(&g);
        return st;
    }
    for (int32_t i = 0; i < n_prompt; i++)
        bn_sampler_accept(g.sampler, prompt[i]);
    double t0 = bn_generate_now();
    if (n_prompt > 0 && (st = bn_eval(ctx, prompt, n_prompt)) != BN_OK) {
        bn_gen_free(&g);
        return bn_error_wrap(BN_OK, "generating: evaluating the prompt (%d tokens)",
                             n_prompt);
    }
    double t1 = bn_generate_now();
    bn_stop_reason why = BN_STOP_MAX_TOKENS;
    int32_t n_gen = 0;
    st = bn_gen_loop(&g, &why, &n_gen);
    if (st == BN_OK)
        st = bn_gen_finish(&g, why);
    double t2 = bn_generate_now();
    bn_gen_free(&g);
    if (st != BN_OK)
        return st;
    result->stop = why;
    result->n_prompt = n_prompt;
    result->n_generated = n_gen;
    result->prompt_seconds = t1 - t0;
    result->generate_seconds = t2 - t1;
    return BN_OK;
}
