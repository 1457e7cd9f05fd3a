/*
 * data.c - the token streams a run trains and validates on, and the batches drawn from
 * them.
 *
 * Training windows are drawn at random offsets of the training stream, from a splitmix64
 * generator whose 64-bit state is the run's whole data position (saved in checkpoints,
 * so that a resumed run draws what the uninterrupted one would have). A window starts
 * with BOS when the tokenizer wants one, as every prompt does at inference, so the
 * model learns to read from BOS at position 0.
 *
 * Validation follows `bitnet perplexity` (llama.cpp's protocol) exactly, so that the
 * validation loss of a run is the log of the perplexity that `bitnet perplexity -c T`
 * reports for the exported model on the same text (tests/test_cli_train.sh checks it).
 */
#include <math.h>
#include <string.h>

#include "train/run.h"

bn_status bn_train_stream_text(const bn_tokenizer *t, const char *text, size_t len,
                               bn_train_stream *out)
{
    bn_tokenize_params p = bn_tokenize_default_params();
    p.add_bos = false;
    p.parse_special = false;
    *out = (bn_train_stream){0};
    bn_status st = bn_tokenize(t, text, len, &p, &out->ids, &out->n);
    return st == BN_OK ? BN_OK : bn_error_wrap(st, "tokenizing the training text");
}

void bn_train_stream_free(bn_train_stream *s)
{
    bn_free(s->ids);
    *s = (bn_train_stream){0};
}

bn_token bn_train_bos(const bn_tokenizer *t)
{
    bn_token bos = bn_tokenizer_bos(t);
    return bn_tokenizer_wants_bos(t) && bos >= 0 ? bos : -1;
}

size_t bn_train_min_tokens(int32_t T, bn_token bos)
{
    return (size_t)T + (bos >= 0 ? 0 : 1);
}

/* splitmix64: the next value of the generator. */
static uint64_t bn_data_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void bn_train_sample_batch(const bn_train_stream *s, int32_t B, int32_t T, bn_token bos,
                           uint64_t *rng, int32_t *tokens, int32_t *targets)
{
    /* offsets o in [0, n - min + 1): with BOS the targets d[o .. o + T - 1] must exist,
     * without it d[o + T] too */
    const uint64_t range = (uint64_t)(s->n - bn_train_min_tokens(T, bos)) + 1;
    for (int32_t b = 0; b < B; b++) {
        /* the high half of a 64 x 64 product: an offset in [0, range) */
        const uint64_t o = (uint64_t)(((unsigned __int128)bn_data_next(rng) * range) >> 64);
        int32_t *tk = tokens + (size_t)b * T, *tg = targets + (size_t)b * T;
        const bn_token *d = s->ids + o;
        if (bos >= 0) {
            tk[0] = bos;
            memcpy(tk + 1, d, (size_t)(T - 1) * sizeof *tk);
            memcpy(tg, d, (size_t)T * sizeof *tg);
        } else {
            memcpy(tk, d, (size_t)T * sizeof *tk);
            memcpy(tg, d + 1, (size_t)T * sizeof *tg);
        }
    }
}

bn_status bn_train_val_text(const bn_tokenizer *t, const char *text, size_t len, int32_t T,
                            int64_t max_windows, bn_train_val *out)
{
    *out = (bn_train_val){.bos = bn_train_bos(t)};
    bn_tokenize_params p = bn_tokenize_default_params();
    p.add_bos = out->bos >= 0;
    p.parse_special = false;
    bn_status st = bn_tokenize(t, text, len, &p, &out->s.ids, &out->s.n);
    if (st != BN_OK)
        return bn_error_wrap(st, "tokenizing the validation text");
    if (out->s.n < 2 * (size_t)T) {
        size_t n = out->s.n;
        bn_train_stream_free(&out->s);
        return bn_error_set(BN_ERR_INVALID_ARG, "the validation text is %zu tokens; a "
                            "context of %d needs at least %d", n, (int)T, 2 * (int)T);
    }
    out->n_windows = (int64_t)(out->s.n / (size_t)T);
    if (max_windows > 0 && max_windows < out->n_windows)
        out->n_windows = max_windows;
    return BN_OK;
}

bn_status bn_train_val_tokens(bn_train_stream *s, int32_t T, bn_token bos,
                              int64_t max_windows, bn_train_val *out)
{
    *out = (bn_train_val){.s = *s, .bos = bos};
    *s = (bn_train_stream){0};
    if (out->s.n < 2 * (size_t)T)
        return bn_error_set(BN_ERR_INVALID_ARG, "the validation tokens are %zu; a context "
                            "of %d needs at least %d", out->s.n, (int)T, 2 * (int)T);
    out->n_windows = (int64_t)(out->s.n / (size_t)T);
    if (max_windows > 0 && max_windows < out->n_windows)
        out->n_windows = max_windows;
    return BN_OK;
}

bn_status bn_train_val_loss(bn_train_model *m, const bn_train_val *v, float lambda,
                            double *loss)
{
    const int32_t B = m->B, T = m->cfg.n_ctx, V = m->cfg.n_vocab;
    const size_t N = (size_t)B * (size_t)T;
    /* one batch of windows, made once per evaluation (not per step) */
    int32_t *tokens = bn_malloc(2 * N * sizeof *tokens, "train: validation batch");
    if (!tokens)
        return bn_error_wrap(BN_OK, "validation");
    int32_t *targets = tokens + N;
    double sum = 0.0;
    int64_t count = 0;
    bn_status st = BN_OK;
    const int32_t first = T / 2;
    for (int64_t w0 = 0; w0 < v->n_windows && st == BN_OK; w0 += B) {
        for (int32_t b = 0; b < B; b++) {
            int64_t w = w0 + b < v->n_windows ? w0 + b : w0;   /* padding: a repeat */
            const bn_token *src = v->s.ids + (size_t)w * (size_t)T;
            int32_t *tk = tokens + (size_t)b * T, *tg = targets + (size_t)b * T;
            memcpy(tk, src, (size_t)T * sizeof *tk);
            if (v->bos >= 0)
                tk[0] = v->bos;
            memcpy(tg, src + 1, (size_t)(T - 1) * sizeof *tg);
            tg[T - 1] = src[T - 1];                           /* not scored */
        }
        float l;
        st = bn_train_forward(m, tokens, targets, lambda, &l);
        m->have_forward = false;                 /* nothing for a backward to use */
        for (int32_t b = 0; st == BN_OK && b < B && w0 + b < v->n_windows; b++)
            for (int32_t j = first; j < T - 1; j++) {
                const size_t row = (size_t)b * T + (size_t)j;
                sum += -log((double)m->probs[row * (size_t)V + (size_t)targets[row]]);
                count++;
            }
    }
    bn_free(tokens);
    if (st != BN_OK)
        return bn_error_wrap(st, "validation");
    *loss = sum / (double)count;
    return BN_OK;
}
