/*
 * generator.c - many generations at once in one context (continuous batching): each
 * generation holds one of the context's sequences from its prompt to its stop; every
 * step evaluates the prompts that arrived and the last token of every running
 * generation in one bn_decode, so that the weights are read once for all of them, then
 * samples each generation's next token by the rules of bn_generate (generate.c).
 * A generation's tokens and text are those bn_generate gives for the same prompt and
 * parameters in a context of its own.
 *
 * Prompt reuse: a sequence keeps its keys and values when its generation is released,
 * and the generator keeps the list of tokens they were computed for. A new prompt goes
 * to the free sequence whose list shares the longest beginning with it, and only the
 * rest of the prompt is evaluated (at least its last token, whose logits are needed).
 * A token's keys and values do not depend on the batch it was evaluated in (the
 * kernels' sums are exact and the rest is per row), so the generation is the same.
 */
#include <assert.h>
#include <string.h>

#include "model/generate_internal.h"

typedef enum bn_slot_state {
    BN_SLOT_FREE = 0,
    BN_SLOT_PREFILL,   /* its prompt waits for the next step */
    BN_SLOT_RUNNING,   /* its next token waits for the next step */
    BN_SLOT_DONE,      /* stopped; the result waits for bn_generator_release */
} bn_slot_state;

/* One generation in sequence `seq` of the context. */
typedef struct bn_gen_slot {
    bn_slot_state state;
    bn_generate_params p;     /* the caller's, copied (its stop texts stay theirs) */
    bn_gen_state g;
    bn_token *prompt;         /* [n_eval] the part of the prompt to evaluate, until the
                                 step that evaluates it */
    int32_t n_prompt, n_generated;
    int32_t n_eval;           /* n_prompt less the tokens reused from the sequence */
    int32_t n_done;           /* of those, evaluated in earlier steps (a prompt in
                                 chunks) */
    int32_t n_step;           /* tokens of the sequence in the current step */
    uint64_t order;           /* when it was added (prompts are taken in this order) */
    bn_token next;            /* the token the next step evaluates (RUNNING) */
    int32_t row;              /* its last token's index in the step's batch, or -1 */
    double t_added, t_prefilled;
    bn_generate_result result;
} bn_gen_slot;

struct bn_generator {
    bn_context *ctx;
    const bn_model *model;
    int32_t n_slots;          /* the context's sequences */
    bn_gen_slot *slots;       /* [n_slots] */
    bn_token *tokens;         /* [cap] a step's batch */
    int32_t *seq;             /* [cap] */
    int32_t cap;
    int32_t n_ctx;
    bn_token *kept;           /* [n_slots * n_ctx]: sequence i's evaluated tokens, in
                                 order, at kept + i * n_ctx */
    int32_t *n_kept;          /* [n_slots] their count (the sequence's positions) */
    uint64_t *last_used;      /* [n_slots] when each was last given a generation */
    uint64_t clock;
    bool *want;               /* [cap] which tokens of a step keep their logits */
    int32_t *pending;         /* [n_slots] the prompts of a step, in the order added */
    int32_t chunk;            /* most prompt tokens a step evaluates; 0: no limit */
};

bn_status bn_generator_create(bn_context *ctx, bn_generator **out)
{
    assert(ctx && out);
    const bn_model *model = bn_context_model(ctx);
    if (!bn_model_tokenizer(model))
        return bn_error_set(BN_ERR_INVALID_ARG, "generator: the model has no tokenizer");
    bn_generator *gen = bn_calloc(1, sizeof *gen, "generator");
    if (!gen)
        return bn_error_wrap(BN_OK, "generator");
    gen->ctx = ctx;
    gen->model = model;
    gen->n_slots = bn_context_n_seq(ctx);
    gen->cap = gen->n_slots;
    gen->n_ctx = bn_context_n_ctx(ctx);
    gen->slots = bn_calloc((size_t)gen->n_slots, sizeof *gen->slots, "generator");
    gen->tokens = bn_malloc((size_t)gen->cap * sizeof *gen->tokens, "generator");
    gen->seq = bn_malloc((size_t)gen->cap * sizeof *gen->seq, "generator");
    gen->kept = bn_malloc((size_t)gen->n_slots * (size_t)gen->n_ctx * sizeof *gen->kept,
                          "generator");
    gen->n_kept = bn_calloc((size_t)gen->n_slots, sizeof *gen->n_kept, "generator");
    gen->last_used = bn_calloc((size_t)gen->n_slots, sizeof *gen->last_used, "generator");
    gen->want = bn_malloc((size_t)gen->cap * sizeof *gen->want, "generator");
    gen->pending = bn_malloc((size_t)gen->n_slots * sizeof *gen->pending, "generator");
    if (!gen->slots || !gen->tokens || !gen->seq || !gen->kept || !gen->n_kept ||
        !gen->last_used || !gen->want || !gen->pending) {
        bn_generator_free(gen);
        return bn_error_wrap(BN_OK, "generator");
    }
    *out = gen;
    return BN_OK;
}

/* Frees what a slot's generation holds and marks it free. */
static void bn_slot_clear(bn_gen_slot *s)
{
    bn_gen_free(&s->g);
    bn_free(s->prompt);
    memset(s, 0, sizeof *s);
}

void bn_generator_free(bn_generator *gen)
{
    if (!gen)
        return;
    for (int32_t i = 0; gen->slots && i < gen->n_slots; i++)
        bn_slot_clear(&gen->slots[i]);
    bn_free(gen->slots);
    bn_free(gen->tokens);
    bn_free(gen->seq);
    bn_free(gen->kept);
    bn_free(gen->n_kept);
    bn_free(gen->last_used);
    bn_free(gen->want);
    bn_free(gen->pending);
    bn_free(gen);
}

void bn_generator_set_prefill_chunk(bn_generator *gen, int32_t n_tokens)
{
    assert(gen);
    gen->chunk = n_tokens > 0 ? n_tokens : 0;
}

int32_t bn_generator_n_free(const bn_generator *gen)
{
    assert(gen);
    int32_t n = 0;
    for (int32_t i = 0; i < gen->n_slots; i++)
        n += gen->slots[i].state == BN_SLOT_FREE;
    return n;
}

/* Room in the batch buffers for n tokens. */
static bn_status bn_generator_reserve(bn_generator *gen, int64_t n)
{
    if (n <= gen->cap)
        return BN_OK;
    if (n > INT32_MAX)
        return bn_error_set(BN_ERR_INVALID_ARG, "generator: a step of %lld tokens",
                            (long long)n);
    bn_token *t = bn_malloc((size_t)n * sizeof *t, "generator");
    int32_t *s = bn_malloc((size_t)n * sizeof *s, "generator");
    bool *w = bn_malloc((size_t)n * sizeof *w, "generator");
    if (!t || !s || !w) {
        bn_free(t);
        bn_free(s);
        bn_free(w);
        return bn_last_status();
    }
    bn_free(gen->tokens);
    bn_free(gen->seq);
    bn_free(gen->want);
    gen->tokens = t;
    gen->seq = s;
    gen->want = w;
    gen->cap = (int32_t)n;
    return BN_OK;
}

bn_status bn_generator_add(bn_generator *gen, const bn_token *prompt, int32_t n_prompt,
                           const bn_generate_params *params, int32_t *seq)
{
    assert(gen && seq);
    bn_generate_params defaults = bn_generate_default_params();
    const bn_generate_params *p = params ? params : &defaults;
    *seq = -1;
    if (n_prompt < 1 || !prompt)
        return bn_error_set(BN_ERR_INVALID_ARG, "generator: a generation needs a prompt");
    if (p->max_tokens < -1)
        return bn_error_set(BN_ERR_INVALID_ARG, "generator: max_tokens is %d (-1 for no "
                            "limit, or 0 or more)", p->max_tokens);
    if (p->sampler)
        return bn_error_set(BN_ERR_INVALID_ARG, "generator: each generation makes its own "
                            "sampler (params->sampler must be NULL)");
    const int32_t n_ctx = bn_context_n_ctx(gen->ctx), n_vocab = bn_model_n_vocab(gen->model);
    if (n_prompt > n_ctx)
        return bn_error_set(BN_ERR_CONTEXT_FULL, "generator: a prompt of %d tokens does not "
                            "fit in a sequence of %d positions", n_prompt, n_ctx);
    for (int32_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= n_vocab)
            return bn_error_set(BN_ERR_INVALID_ARG, "generator: token %d (at %d) is not in "
                                "the vocabulary of %d", prompt[i], i, n_vocab);
    /* the free sequence that shares the longest beginning with the prompt (with reuse),
     * else the one given a generation least recently, so that the others keep theirs */
    int32_t free_slot = -1, reuse = 0;
    for (int32_t i = 0; i < gen->n_slots; i++) {
        if (gen->slots[i].state != BN_SLOT_FREE)
            continue;
        int32_t common = 0;
        const bn_token *k = gen->kept + (size_t)i * (size_t)gen->n_ctx;
        if (p->reuse_prompt && gen->n_kept[i] == bn_context_seq_n_past(gen->ctx, i))
            while (common < gen->n_kept[i] && common < n_prompt - 1 &&
                   k[common] == prompt[common])
                common++;
        if (free_slot < 0 || common > reuse ||
            (common == reuse && gen->last_used[i] < gen->last_used[free_slot])) {
            free_slot = i;
            reuse = common;
        }
    }
    if (free_slot < 0)
        return bn_error_set(BN_ERR_BUSY, "generator: all %d sequences are generating",
                            gen->n_slots);
    int64_t pending = n_prompt - reuse;
    for (int32_t i = 0; i < gen->n_slots; i++)
        pending += gen->slots[i].state == BN_SLOT_PREFILL
                       ? gen->slots[i].n_eval - gen->slots[i].n_done
                       : gen->slots[i].state != 0;
    bn_status st = bn_generator_reserve(gen, pending);
    if (st != BN_OK)
        return bn_error_wrap(st, "generator");
    bn_gen_slot *s = &gen->slots[free_slot];
    s->p = *p;
    s->g = (bn_gen_state){.p = &s->p, .tok = bn_model_tokenizer(gen->model),
                          .ctx = gen->ctx};
    s->prompt = bn_malloc((size_t)(n_prompt - reuse) * sizeof *s->prompt, "generator");
    st = s->prompt ? bn_gen_setup(&s->g, gen->model) : bn_last_status();
    if (st != BN_OK) {
        bn_slot_clear(s);
        return bn_error_wrap(st, "generator");
    }
    memcpy(s->prompt, prompt + reuse, (size_t)(n_prompt - reuse) * sizeof *prompt);
    for (int32_t i = 0; i < n_prompt; i++)   /* the penalties see the whole prompt */
        bn_sampler_accept(s->g.sampler, prompt[i]);
    s->n_prompt = n_prompt;
    s->n_eval = n_prompt - reuse;
    s->order = ++gen->clock;
    s->state = BN_SLOT_PREFILL;
    s->t_added = bn_generate_now();
    bn_context_seq_truncate(gen->ctx, free_slot, reuse);
    gen->n_kept[free_slot] = reuse;
    gen->last_used[free_slot] = gen->clock;
    *seq = free_slot;
    return BN_OK;
}

/* Ends a slot's generation for `why`: the text still held goes out, the result is
 * kept for bn_generator_done. */
static bn_status bn_slot_stop(bn_gen_slot *s, bn_stop_reason why)
{
    bn_status st = bn_gen_finish(&s->g, why);
    s->state = BN_SLOT_DONE;
    s->result = (bn_generate_result){
        .stop = why, .n_prompt = s->n_prompt, .n_generated = s->n_generated,
        .n_prompt_reused = s->n_prompt - s->n_eval,
        .prompt_seconds = s->t_prefilled - s->t_added,
        .generate_seconds = bn_generate_now() - s->t_prefilled,
    };
    return st;
}

bn_status bn_generator_step(bn_generator *gen, int32_t *n_active)
{
    assert(gen);
    bn_context *ctx = gen->ctx;
    int32_t n = 0, n_pending = 0;
    /* the next token of every running generation */
    for (int32_t i = 0; i < gen->n_slots; i++) {
        bn_gen_slot *s = &gen->slots[i];
        s->row = -1;
        s->n_step = 0;
        if (s->state == BN_SLOT_RUNNING) {
            gen->tokens[n] = s->next;
            gen->want[n] = true;
            gen->seq[n++] = i;
            s->row = n - 1;
            s->n_step = 1;
        } else if (s->state == BN_SLOT_PREFILL) {   /* in the order added */
            int32_t k = n_pending++;
            for (; k > 0 && gen->slots[gen->pending[k - 1]].order > s->order; k--)
                gen->pending[k] = gen->pending[k - 1];
            gen->pending[k] = i;
        }
    }
    /* then the prompts, each whole or, past the step's budget, in part */
    int32_t budget = gen->chunk > 0 ? gen->chunk : INT32_MAX;
    for (int32_t k = 0; k < n_pending && budget > 0; k++) {
        const int32_t i = gen->pending[k];
        bn_gen_slot *s = &gen->slots[i];
        const int32_t left = s->n_eval - s->n_done, take = left < budget ? left : budget;
        memcpy(gen->tokens + n, s->prompt + s->n_done, (size_t)take * sizeof *s->prompt);
        for (int32_t t = 0; t < take; t++) {
            gen->seq[n + t] = i;
            gen->want[n + t] = false;
        }
        n += take;
        budget -= take;
        s->n_step = take;
        if (take == left) {   /* the prompt's last token: its logits are sampled */
            gen->want[n - 1] = true;
            s->row = n - 1;
        }
    }
    bn_status st = BN_OK;
    if (n > 0) {
        bn_batch bt = {.n = n, .tokens = gen->tokens, .seq = gen->seq, .logits = gen->want};
        st = bn_decode(ctx, &bt);
        if (st != BN_OK) {
            /* what the sequences of the step hold is not known: none is reused */
            for (int32_t k = 0; k < n; k++)
                gen->n_kept[gen->seq[k]] = -1;
            return bn_error_wrap(st, "generator: a step of %d tokens", n);
        }
    }
    const double now = bn_generate_now();
    const int32_t n_ctx = bn_context_n_ctx(ctx);
    int32_t active = 0;
    bn_status first = BN_OK;   /* a generation that fails is stopped; the others go on */
    for (int32_t i = 0; i < gen->n_slots; i++) {
        bn_gen_slot *s = &gen->slots[i];
        if (s->n_step == 0) {
            active += s->state == BN_SLOT_RUNNING || s->state == BN_SLOT_PREFILL;
            continue;
        }
        /* the tokens just evaluated join the sequence's list */
        bn_token *kept = gen->kept + (size_t)i * (size_t)gen->n_ctx;
        const bool prefill = s->state == BN_SLOT_PREFILL;
        if (gen->n_kept[i] >= 0 && gen->n_kept[i] + s->n_step <= gen->n_ctx) {
            memcpy(kept + gen->n_kept[i], prefill ? s->prompt + s->n_done : &s->next,
                   (size_t)s->n_step * sizeof *kept);
            gen->n_kept[i] += s->n_step;
        } else {
            gen->n_kept[i] = -1;
        }
        if (prefill) {
            s->n_done += s->n_step;
            if (s->n_done < s->n_eval) {   /* the rest of its prompt at the next steps */
                active++;
                continue;
            }
            bn_free(s->prompt);
            s->prompt = NULL;
            s->t_prefilled = now;
            s->state = BN_SLOT_RUNNING;
        }
        bool stop;
        bn_stop_reason why = BN_STOP_MAX_TOKENS;
        st = bn_gen_next(&s->g, bn_get_logits(ctx, s->row), &s->n_generated, &s->next,
                         &stop, &why);
        if (st != BN_OK) {          /* its token is in the cache but not sampled: end it */
            stop = true;
            why = BN_STOP_CANCELLED;
            first = first != BN_OK ? first : bn_error_wrap(st, "generator: sequence %d", i);
        } else if (!stop && bn_context_seq_n_past(ctx, i) >= n_ctx) {        /* rule 6 */
            stop = true;
            why = BN_STOP_CONTEXT_FULL;
        }
        if (stop && (st = bn_slot_stop(s, why)) != BN_OK && first == BN_OK)
            first = bn_error_wrap(st, "generator: sequence %d", i);
        active += s->state == BN_SLOT_RUNNING;
    }
    if (n_active)
        *n_active = active;
    return first;
}

bool bn_generator_done(const bn_generator *gen, int32_t seq, bn_generate_result *result)
{
    assert(gen);
    if (seq < 0 || seq >= gen->n_slots || gen->slots[seq].state != BN_SLOT_DONE)
        return false;
    if (result)
        *result = gen->slots[seq].result;
    return true;
}

void bn_generator_release(bn_generator *gen, int32_t seq)
{
    assert(gen);
    if (seq < 0 || seq >= gen->n_slots)
        return;
    bn_slot_clear(&gen->slots[seq]);
    /* the sequence keeps its keys and values for a later prompt that begins the same */
    if (gen->n_kept[seq] < 0) {
        bn_context_seq_truncate(gen->ctx, seq, 0);
        gen->n_kept[seq] = 0;
    }
}
