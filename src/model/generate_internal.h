/*
 * generate_internal.h - what the generation loop (generate.c) shares with the chat
 * session (chat.c).
 */
#ifndef BN_MODEL_GENERATE_INTERNAL_H
#define BN_MODEL_GENERATE_INTERNAL_H

#include "core/internal.h"
#include "model/stop_text.h"

/* Monotonic seconds. */
double bn_generate_now(void);

/* The tokens a sampler may draw: the model's rows, less padding rows beyond the
 * tokenizer's vocabulary. */
int32_t bn_generate_n_vocab(const bn_model *model);

/* What one generation holds: made before its first token, freed at its end. */
typedef struct bn_gen_state {
    const bn_generate_params *p;
    const bn_tokenizer *tok;
    bn_context      *ctx;
    bn_sampler      *sampler;      /* p->sampler or own_sampler */
    bn_sampler      *own_sampler;
    bn_detok_stream *detok;
    bn_stop_text     stops;
    int32_t          n_vocab;      /* the tokens a sampler may draw (bn_generate_n_vocab) */
} bn_gen_state;

/* Makes the stop texts, the sampler (unless p->sampler) and the decoder of g, whose p,
 * tok and ctx are set. */
bn_status bn_gen_setup(bn_gen_state *g, const bn_model *model);
void bn_gen_free(bn_gen_state *g);

/* One token from `logits` by the stop rules 1 to 5 of bn_generate (bitnet.h): sampled,
 * counted in *n_generated, accepted, decoded and handed to the callback. *stop says
 * whether the generation ended (*why: the rule); otherwise *next is the token to
 * evaluate (rule 6, a full context, is the caller's). */
bn_status bn_gen_next(bn_gen_state *g, const float *logits, int32_t *n_generated,
                      bn_token *next, bool *stop, bn_stop_reason *why);

/* What the decoder and the stop texts still hold, to the callback, at the end. */
bn_status bn_gen_finish(bn_gen_state *g, bn_stop_reason why);

#endif
