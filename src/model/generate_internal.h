/*
 * generate_internal.h - what the generation loop (generate.c) shares with the chat
 * session (chat.c).
 */
#ifndef BN_MODEL_GENERATE_INTERNAL_H
#define BN_MODEL_GENERATE_INTERNAL_H

#include "core/internal.h"

/* Monotonic seconds. */
double bn_generate_now(void);

/* The tokens a sampler may draw: the model's rows, less padding rows beyond the
 * tokenizer's vocabulary. */
int32_t bn_generate_n_vocab(const bn_model *model);

#endif
