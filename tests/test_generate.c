/*
 * test_generate.c - bn_generate and the chat session against values found here by
 * other means, on a model written with `bitnet synth` (the program's path comes in
 * $BITNET):
 *   - greedy generation gives the argmax of bn_get_logits taken by hand, token by token
 *     over bn_eval, and its text is bn_detokenize of those tokens;
 *   - sampled generation gives what a hand loop over bn_sampler_sample gives, up to the
 *     end-of-generation token that ends both;
 *   - the stop-text matcher hands out and holds back the bytes written out below; a stop
 *     text cut from the greedy text ends bn_generate right before its first occurrence,
 *     at the token that completes it;
 *   - on_logits gets each token before on_token, with the logits bn_eval gives by hand
 *     and the pieces that join to the text;
 *   - max_tokens, a full context and a cancelling callback stop it with the right
 *     reason, count and context position; n_prompt 0 continues where it stopped;
 *   - the chat session: a reply after reusing the KV cache is the greedy loop by hand
 *     over the rendered conversation in a fresh context; fitting drops the exchanges
 *     the rule picks (worked out here by rendering each candidate) and keeps the system
 *     message; a message too long for the context is refused and not dropped;
 *   - bad params are errors, and every allocation can fail cleanly;
 *   - the generator (many generations in one context) gives every request what
 *     bn_generate gives it alone: tokens, text, stop and counts, greedy and sampled,
 *     with a stop text and a full sequence, requests waiting for a free sequence.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"
#include "model/stop_text.h"

#define MAX_IDS 512
#define N_GREEDY 48

static char tmp_dir[] = "/tmp/bn_test_generate_XXXXXX";

/* ------------------------------------------------------------------ helpers */

/* What the callback saw. */
typedef struct record {
    bn_token ids[MAX_IDS];   /* tokens, in order */
    int      n_ids;
    char     text[16384];    /* every piece, joined */
    size_t   len;
    char     final[64];      /* the piece of the last call (id -1), if any */
    size_t   final_len;
    int      n_final;        /* calls with id -1 */
    int      cancel_after;   /* return false at this many tokens; 0: never */
} record;

static bool on_token(bn_token id, const char *text, size_t len, void *user)
{
    record *r = user;
    if (r->len + len < sizeof r->text) {
        memcpy(r->text + r->len, text, len);
        r->len += len;
    }
    if (id < 0) {
        r->n_final++;
        r->final_len = len < sizeof r->final ? len : 0;
        memcpy(r->final, text, r->final_len);
        return true;
    }
    if (r->n_ids < MAX_IDS)
        r->ids[r->n_ids] = id;
    r->n_ids++;
    return r->cancel_after == 0 || r->n_ids < r->cancel_after;
}

static bn_context *new_context(const bn_model *m, int32_t n_ctx)
{
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = n_ctx;
    bn_context *c = NULL;
    CHECK_OK(bn_context_create(m, &cp, &c));
    return c;
}

/* The greedy loop by hand: evaluate the prompt, then take the argmax of the logits
 * (the lowest id on ties) over the tokenizer's tokens, until an end-of-generation
 * token (unless ignore_eog), max tokens, or a context with no room to evaluate the
 * last one. Returns the count; *eog: an end-of-generation token ended it. */
static int greedy_by_hand(const bn_model *m, bn_context *c, const bn_token *prompt,
                          int n_prompt, int max, bool ignore_eog, bn_token *out, bool *eog)
{
    const bn_tokenizer *tok = bn_model_tokenizer(m);
    int n_vocab = bn_tokenizer_n_vocab(tok);
    *eog = false;
    if (bn_eval(c, prompt, n_prompt) != BN_OK)
        return -1;
    int n = 0;
    while (n < max) {
        const float *l = bn_get_logits(c, -1);
        bn_token best = 0;
        for (bn_token i = 1; i < n_vocab; i++)
            if (l[i] > l[best])
                best = i;
        if (!ignore_eog && bn_tokenizer_is_eog(tok, best)) {
            *eog = true;
            break;
        }
        out[n++] = best;
        if (n == max || bn_context_n_past(c) >= bn_context_n_ctx(c))
            break;
        if (bn_eval(c, &best, 1) != BN_OK)
            return -1;
    }
    return n;
}

/* The same with a sampler drawing each token (the prompt accepted first). */
static int sample_by_hand(const bn_model *m, bn_context *c, const bn_sampler_params *sp,
                          const bn_token *prompt, int n_prompt, int max, bn_token *out,
                          bool *eog)
{
    const bn_tokenizer *tok = bn_model_tokenizer(m);
    bn_sampler *s = NULL;
    *eog = false;
    if (bn_sampler_create(sp, bn_tokenizer_n_vocab(tok), &s) != BN_OK)
        return -1;
    for (int i = 0; i < n_prompt; i++)
        bn_sampler_accept(s, prompt[i]);
    int n = -1;
    if (bn_eval(c, prompt, n_prompt) == BN_OK) {
        n = 0;
        while (n < max) {
            bn_token t = bn_sampler_sample(s, bn_get_logits(c, -1));
            if (bn_tokenizer_is_eog(tok, t)) {
                *eog = true;
                break;
            }
            bn_sampler_accept(s, t);
            out[n++] = t;
            if (n == max || bn_eval(c, &t, 1) != BN_OK)
                break;
        }
    }
    bn_sampler_free(s);
    return n;
}

static bool same_ids(const bn_token *a, const bn_token *b, int n)
{
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* The text of ids[0, n) by bn_detokenize (a new string, freed with bn_free). */
static char *detok(const bn_model *m, const bn_token *ids, int n, size_t *len)
{
    char *text = NULL;
    if (bn_detokenize(bn_model_tokenizer(m), ids, (size_t)n, false, &text, len) != BN_OK)
        return NULL;
    return text;
}

/* ------------------------------------------------------------------ stop texts */

/* One push: checks what comes out and whether a stop text completed. */
static void push_expect(bn_stop_text *s, const char *in, const char *want, bool want_hit)
{
    const char *out;
    size_t out_len;
    bool hit;
    CHECK_OK(bn_stop_text_push(s, in, strlen(in), &out, &out_len, &hit));
    CHECK(out_len == strlen(want) && memcmp(out, want, out_len) == 0 && hit == want_hit,
          "push '%s': got '%.*s' (hit %d), want '%s' (hit %d)", in, (int)out_len, out,
          hit, want, want_hit);
}

static void finish_expect(bn_stop_text *s, const char *in, const char *want)
{
    const char *out;
    size_t out_len;
    CHECK_OK(bn_stop_text_finish(s, in, strlen(in), &out, &out_len));
    CHECK(out_len == strlen(want) && memcmp(out, want, out_len) == 0,
          "finish '%s': got '%.*s', want '%s'", in, (int)out_len, out, want);
}

static void test_stop_text(void)
{
    bn_stop_text s;
    const char *end[] = {"END"};
    CHECK_OK(bn_stop_text_init(&s, end, 1));
    push_expect(&s, "hello E", "hello ", false);   /* "E" may start END: held */
    push_expect(&s, "N", "", false);               /* "EN" held */
    push_expect(&s, "Dless", "", true);            /* END: nothing before it is new */
    bn_stop_text_free(&s);

    CHECK_OK(bn_stop_text_init(&s, end, 1));
    push_expect(&s, "abcEN", "abc", false);
    push_expect(&s, "x", "ENx", false);            /* not END after all: released */
    finish_expect(&s, "E", "E");                   /* the end releases what is held */
    bn_stop_text_free(&s);

    CHECK_OK(bn_stop_text_init(&s, end, 1));
    push_expect(&s, "xEN", "x", false);
    finish_expect(&s, "D", "");                    /* the last piece completes END */
    bn_stop_text_free(&s);

    const char *aab[] = {"aab"};                   /* the longest held tail, not the first */
    CHECK_OK(bn_stop_text_init(&s, aab, 1));
    push_expect(&s, "aaa", "a", false);            /* "aa" held */
    push_expect(&s, "b", "", true);                /* "a" + "aab": the "a" was out already */
    bn_stop_text_free(&s);

    const char *two[] = {"cd", "abcde"};           /* the earliest occurrence wins */
    CHECK_OK(bn_stop_text_init(&s, two, 2));
    push_expect(&s, "xabcdef", "x", true);
    bn_stop_text_free(&s);

    const char *tags[] = {"|>x", "<|e|>"};         /* held: the longest over all texts */
    CHECK_OK(bn_stop_text_init(&s, tags, 2));
    push_expect(&s, "q<|e|", "q", false);
    push_expect(&s, ">", "", true);
    bn_stop_text_free(&s);

    const char *five[] = {"abcde"};
    CHECK_OK(bn_stop_text_init(&s, five, 1));
    push_expect(&s, "xabcd", "x", false);
    push_expect(&s, "f", "abcdf", false);
    /* a piece longer than the buffer's first size: it grows, the tail still held */
    char big[1001];
    memset(big, 'z', 999);
    big[999] = 'a';
    big[1000] = '\0';
    bn_stop_text_free(&s);
    CHECK_OK(bn_stop_text_init(&s, five, 1));
    const char *out;
    size_t out_len;
    bool hit;
    CHECK_OK(bn_stop_text_push(&s, big, 1000, &out, &out_len, &hit));
    CHECK(out_len == 999 && !hit && out[998] == 'z', "long piece: %zu out", out_len);
    finish_expect(&s, "bcd", "abcd");
    bn_stop_text_free(&s);

    CHECK_OK(bn_stop_text_init(&s, NULL, 0));      /* none: pieces pass whole */
    push_expect(&s, "abcE", "abcE", false);
    finish_expect(&s, "xy", "xy");
    bn_stop_text_free(&s);

    const char *empty[] = {"ok", ""};
    CHECK(bn_stop_text_init(&s, empty, 2) == BN_ERR_INVALID_ARG, "an empty stop text");
    bn_stop_text_free(&s);
}

/* ------------------------------------------------------------------ bn_generate */

typedef struct fixture {
    bn_model *m;
    bn_token  prompt[64];
    int       n_prompt;
    bn_token  greedy[N_GREEDY];   /* the greedy continuation, by hand */
    int       n_greedy;
    char     *text;               /* its text, by bn_detokenize */
    size_t    text_len;
} fixture;

static bn_generate_params greedy_params(record *r, int32_t max_tokens)
{
    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = max_tokens;
    gp.sampling.temp = 0.0f;
    gp.on_token = on_token;
    gp.user = r;
    return gp;
}

static void test_greedy(fixture *f)
{
    bn_context *c = new_context(f->m, 256);
    bool eog;
    f->n_greedy = greedy_by_hand(f->m, c, f->prompt, f->n_prompt, N_GREEDY, false,
                                 f->greedy, &eog);
    CHECK(f->n_greedy == N_GREEDY && !eog, "the greedy text runs %d tokens (eog %d): "
          "pick another seed for the model", f->n_greedy, eog);
    f->text = detok(f->m, f->greedy, f->n_greedy, &f->text_len);
    CHECK(f->text != NULL, "detokenizing");
    bn_context_truncate(c, 0);

    record *r = calloc(1, sizeof *r);
    bn_generate_params gp = greedy_params(r, N_GREEDY);
    bn_generate_result res;
    CHECK_OK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res));
    CHECK(res.stop == BN_STOP_MAX_TOKENS, "stop %d", res.stop);
    CHECK(res.n_prompt == f->n_prompt && res.n_generated == N_GREEDY &&
          r->n_ids == N_GREEDY, "counts: %d %d %d", res.n_prompt, res.n_generated, r->n_ids);
    CHECK(same_ids(r->ids, f->greedy, N_GREEDY), "greedy tokens equal the argmax by hand");
    CHECK(r->len == f->text_len && memcmp(r->text, f->text, r->len) == 0,
          "the pieces join to bn_detokenize's text (%zu vs %zu bytes)", r->len, f->text_len);
    /* every token but the last is in the context */
    CHECK(bn_context_n_past(c) == f->n_prompt + N_GREEDY - 1, "n_past %d",
          bn_context_n_past(c));
    CHECK(res.prompt_seconds >= 0 && res.generate_seconds > 0, "timings");

    /* n_prompt 0 continues: evaluate the last token, then 8 more as by hand */
    bn_context_truncate(c, 0);
    memset(r, 0, sizeof *r);
    gp = greedy_params(r, 20);
    CHECK_OK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res));
    CHECK_OK(bn_eval(c, &r->ids[19], 1));
    memset(r, 0, sizeof *r);
    gp = greedy_params(r, 8);
    CHECK_OK(bn_generate(c, NULL, 0, &gp, &res));
    CHECK(res.n_prompt == 0 && r->n_ids == 8 && same_ids(r->ids, f->greedy + 20, 8),
          "n_prompt 0 continues the greedy text");

    /* max_tokens 0: the prompt only */
    bn_context_truncate(c, 0);
    memset(r, 0, sizeof *r);
    gp = greedy_params(r, 0);
    CHECK_OK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res));
    CHECK(res.stop == BN_STOP_MAX_TOKENS && res.n_generated == 0 && r->n_ids == 0 &&
          r->n_final == 0 && bn_context_n_past(c) == f->n_prompt, "max_tokens 0");

    /* a callback that says stop at its third token */
    bn_context_truncate(c, 0);
    memset(r, 0, sizeof *r);
    r->cancel_after = 3;
    gp = greedy_params(r, N_GREEDY);
    CHECK_OK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res));
    CHECK(res.stop == BN_STOP_CANCELLED && res.n_generated == 3 && r->n_ids == 3 &&
          same_ids(r->ids, f->greedy, 3) && bn_context_n_past(c) == f->n_prompt + 2,
          "cancelled at 3: stop %d, %d tokens", res.stop, res.n_generated);
    free(r);
    bn_context_free(c);
}

/* What on_logits saw, after what on_token saw (user points at both). */
typedef struct logit_record {
    record   r;              /* first: on_token's */
    bn_token ids[16];
    float    chosen[16];     /* the logit of the token drawn */
    float    other[16];      /* the logit of id 1 (any fixed one) */
    int      tokens_seen[16];/* on_token's count at each call */
    int32_t  n_vocab;
    int      n;
    char     pieces[1024];
    size_t   len;
} logit_record;

static void on_logits(bn_token id, const float *logits, int32_t n_vocab, const char *piece,
                      size_t piece_len, void *user)
{
    logit_record *lr = user;
    if (lr->n >= 16)
        return;
    lr->ids[lr->n] = id;
    lr->chosen[lr->n] = logits[id];
    lr->other[lr->n] = logits[1];
    lr->tokens_seen[lr->n] = lr->r.n_ids;
    lr->n_vocab = n_vocab;
    lr->n++;
    if (lr->len + piece_len < sizeof lr->pieces) {
        memcpy(lr->pieces + lr->len, piece, piece_len);
        lr->len += piece_len;
    }
}

/* on_logits: each token's raw logits (those of bn_eval by hand) and its piece, before
 * on_token; the tokens drawn are those drawn without it. */
static void test_on_logits(const fixture *f)
{
    bn_context *c = new_context(f->m, 256);
    logit_record *lr = calloc(1, sizeof *lr);
    bn_generate_params gp = greedy_params(&lr->r, 12);
    gp.on_logits = on_logits;
    gp.user = lr;
    bn_generate_result res;
    CHECK_OK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res));
    CHECK(lr->n == 12 && lr->r.n_ids == 12 && same_ids(lr->ids, f->greedy, 12) &&
          same_ids(lr->r.ids, f->greedy, 12), "on_logits saw the 12 greedy tokens (%d)",
          lr->n);
    CHECK(lr->n_vocab == bn_tokenizer_n_vocab(bn_model_tokenizer(f->m)), "n_vocab %d",
          lr->n_vocab);
    int before = 0;
    for (int i = 0; i < lr->n; i++)
        before += lr->tokens_seen[i] == i;
    CHECK(before == 12, "on_logits comes before on_token: %d of 12", before);
    size_t want_len = 0;
    char *want = detok(f->m, f->greedy, 12, &want_len);
    CHECK(want && lr->len <= want_len && memcmp(lr->pieces, want, lr->len) == 0 &&
          lr->r.len == want_len, "the pieces are the text (%zu of %zu bytes)", lr->len,
          want_len);
    bn_free(want);
    /* the same logits by hand */
    bn_context_truncate(c, 0);
    CHECK_OK(bn_eval(c, f->prompt, f->n_prompt));
    int same = 0;
    for (int i = 0; i < 12; i++) {
        const float *l = bn_get_logits(c, -1);
        same += l[f->greedy[i]] == lr->chosen[i] && l[1] == lr->other[i];
        CHECK_OK(bn_eval(c, &f->greedy[i], 1));
    }
    CHECK(same == 12, "the logits of bn_eval by hand: %d of 12 steps", same);
    free(lr);
    bn_context_free(c);
}

/* A context of 16 positions: the prompt, then tokens until the 16th is evaluated and
 * one more sampled from its logits: 16 - n_prompt + 1 of them. */
static void test_context_full(const fixture *f)
{
    const int n_ctx = 16;
    bn_context *c = new_context(f->m, n_ctx);
    bn_token ref[MAX_IDS];
    bool eog;
    int n_ref = greedy_by_hand(f->m, c, f->prompt, f->n_prompt, MAX_IDS, true, ref, &eog);
    CHECK(n_ref == n_ctx - f->n_prompt + 1, "by hand: %d tokens", n_ref);
    bn_context_truncate(c, 0);
    record *r = calloc(1, sizeof *r);
    bn_generate_params gp = greedy_params(r, -1);
    gp.ignore_eog = true;
    bn_generate_result res;
    CHECK_OK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res));
    CHECK(res.stop == BN_STOP_CONTEXT_FULL, "stop %d", res.stop);
    CHECK(res.n_generated == n_ctx - f->n_prompt + 1 && r->n_ids == res.n_generated &&
          same_ids(r->ids, ref, r->n_ids), "%d tokens, the greedy ones",
          res.n_generated);
    CHECK(bn_context_n_past(c) == n_ctx, "n_past %d", bn_context_n_past(c));

    /* a prompt that does not fit: an error, the context unchanged */
    bn_context_truncate(c, 0);
    bn_token longer[20];
    for (int i = 0; i < 20; i++)
        longer[i] = f->prompt[i % f->n_prompt];
    memset(r, 0, sizeof *r);
    CHECK(bn_generate(c, longer, 20, &gp, &res) == BN_ERR_CONTEXT_FULL &&
          bn_context_n_past(c) == 0 && r->n_ids == 0, "a prompt past the context");
    free(r);
    bn_context_free(c);
}

/* Stop texts cut from the greedy text. */
static void test_stops(const fixture *f)
{
    /* three printable ASCII bytes after the first 8 (ASCII is never held back as part
     * of an unfinished character, so the stop is seen in the token that ends it) */
    size_t at = 0;
    for (size_t i = 8; !at && i + 3 <= f->text_len; i++) {
        const unsigned char *p = (const unsigned char *)f->text + i;
        if (p[0] >= 0x21 && p[0] < 0x7f && p[1] >= 0x21 && p[1] < 0x7f && p[2] >= 0x21 &&
            p[2] < 0x7f)
            at = i;
    }
    CHECK(at > 0, "no ASCII run in the greedy text: pick another seed for the model");
    if (!at)
        return;
    char stop[4] = {f->text[at], f->text[at + 1], f->text[at + 2], '\0'};
    size_t first = (size_t)((const char *)memmem(f->text, f->text_len, stop, 3) - f->text);
    /* the token that completes it: the first prefix of the greedy tokens whose text
     * holds it */
    int n_want = 0;
    for (int n = 1; n <= f->n_greedy && !n_want; n++) {
        size_t len;
        char *t = detok(f->m, f->greedy, n, &len);
        if (t && memmem(t, len, stop, 3))
            n_want = n;
        bn_free(t);
    }
    bn_context *c = new_context(f->m, 256);
    record *r = calloc(1, sizeof *r);
    bn_generate_params gp = greedy_params(r, N_GREEDY);
    const char *stops[] = {"\x01\x02never", stop};
    gp.stops = stops;
    gp.n_stops = 2;
    bn_generate_result res;
    CHECK_OK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res));
    CHECK(res.stop == BN_STOP_TEXT, "stop %d", res.stop);
    CHECK(r->len == first && memcmp(r->text, f->text, first) == 0,
          "the text ends before '%s' at byte %zu: got %zu bytes", stop, first, r->len);
    CHECK(res.n_generated == n_want && r->n_ids == n_want && r->n_final == 0,
          "stopped at token %d, want %d", res.n_generated, n_want);

    /* a stop text that starts with a byte of the text but never completes: every byte
     * comes out, the held ones at the latest in the last call */
    char never[3] = {f->text[f->text_len - 1], '\x01', '\0'};
    const char *stops2[] = {never};
    bn_context_truncate(c, 0);
    memset(r, 0, sizeof *r);
    gp.stops = stops2;
    gp.n_stops = 1;
    CHECK_OK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res));
    CHECK(res.stop == BN_STOP_MAX_TOKENS && r->len == f->text_len &&
          memcmp(r->text, f->text, r->len) == 0, "a stop text never completed");
    CHECK(r->n_final == 1 && r->final_len >= 1 &&
          r->final[r->final_len - 1] == f->text[f->text_len - 1],
          "the last byte, a possible stop start, came in the last call");
    free(r);
    bn_context_free(c);
}

/* Sampling at a high temperature until a seed gives an end-of-generation token by
 * hand; bn_generate must give the same tokens and stop there. */
static void test_sampled_eog(const fixture *f)
{
    bn_context *c = new_context(f->m, 256);
    bn_sampler_params sp = bn_sampler_default_params();
    sp.temp = 1.5f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.repeat_penalty = 1.1f;
    bn_token ref[96];
    int found = 0;
    for (uint64_t seed = 1; seed <= 64 && !found; seed++) {
        sp.seed = seed;
        bool eog;
        bn_context_truncate(c, 0);
        int n = sample_by_hand(f->m, c, &sp, f->prompt, f->n_prompt, 96, ref, &eog);
        if (!eog)
            continue;
        found = 1;
        bn_context_truncate(c, 0);
        record *r = calloc(1, sizeof *r);
        bn_generate_params gp = bn_generate_default_params();
        gp.max_tokens = 96;
        gp.sampling = sp;
        gp.on_token = on_token;
        gp.user = r;
        bn_generate_result res;
        CHECK_OK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res));
        CHECK(res.stop == BN_STOP_EOG && res.n_generated == n && r->n_ids == n &&
              same_ids(r->ids, ref, n), "seed %llu: stop %d after %d tokens, by hand %d",
              (unsigned long long)seed, res.stop, res.n_generated, n);
        CHECK(bn_context_n_past(c) == f->n_prompt + n, "every token before the eog is "
              "evaluated: n_past %d", bn_context_n_past(c));
        /* ignore_eog: the same tokens, the eog among them, and on */
        bn_context_truncate(c, 0);
        memset(r, 0, sizeof *r);
        gp.ignore_eog = true;
        CHECK_OK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res));
        CHECK(res.n_generated > n && same_ids(r->ids, ref, n) &&
              bn_tokenizer_is_eog(bn_model_tokenizer(f->m), r->ids[n]),
              "ignore_eog goes past the eog token");
        free(r);
    }
    CHECK(found, "no seed in 1..64 ends with an end-of-generation token");
    bn_context_free(c);
}

static void test_errors(const fixture *f)
{
    bn_context *c = new_context(f->m, 64);
    bn_generate_result res;
    bn_generate_params gp = bn_generate_default_params();
    CHECK(bn_generate(c, NULL, 0, &gp, &res) == BN_ERR_INVALID_ARG,
          "nothing to continue from");
    gp.max_tokens = -2;
    CHECK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res) == BN_ERR_INVALID_ARG,
          "max_tokens -2");
    gp = bn_generate_default_params();
    const char *stops[] = {""};
    gp.stops = stops;
    gp.n_stops = 1;
    CHECK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res) == BN_ERR_INVALID_ARG,
          "an empty stop text");
    gp = bn_generate_default_params();
    gp.sampling.top_p = 2.0f;
    CHECK(bn_generate(c, f->prompt, f->n_prompt, &gp, &res) == BN_ERR_INVALID_ARG,
          "bad sampling params");
    CHECK(bn_context_n_past(c) == 0, "errors before the prompt evaluate nothing");

    /* every allocation of a call with stop texts can fail cleanly */
    const char *stops2[] = {"zz", "q"};
    gp = bn_generate_default_params();
    gp.max_tokens = 8;
    gp.stops = stops2;
    gp.n_stops = 2;
    int failures = 0;
    for (uint64_t k = 1; k < 100; k++) {
        bn_mem_stats before, after;
        bn_context_truncate(c, 0);
        bn_mem_get_stats(&before);
        bn_mem_fail_nth(k);
        bn_status st = bn_generate(c, f->prompt, f->n_prompt, &gp, &res);
        bn_mem_fail_nth(0);
        bn_mem_get_stats(&after);
        CHECK((st == BN_OK || st == BN_ERR_OOM) && after.live_blocks == before.live_blocks,
              "generate alloc fail #%llu: %s, leaked %lld", (unsigned long long)k,
              bn_status_str(st), (long long)(after.live_blocks - before.live_blocks));
        if (st == BN_OK)
            break;
        failures++;
    }
    CHECK(failures >= 3, "generate allocations covered: %d", failures);
    bn_context_free(c);
}

/* ------------------------------------------------------------------ chat */

/* The conversation rendered with the model's template and the assistant's header, then
 * tokenized, as a reply would start from; the count, ids into out. */
static int render(const bn_model *m, const bn_chat_message *msgs, size_t n, bn_token *out,
                  int cap)
{
    const bn_tokenizer *tok = bn_model_tokenizer(m);
    char *text = NULL;
    size_t len;
    bn_token *ids = NULL;
    size_t n_ids = 0;
    if (bn_chat_format(tok, NULL, msgs, n, true, &text, &len) != BN_OK)
        return -1;
    bn_tokenize_params tp = bn_tokenize_default_params();
    bn_status st = bn_tokenize(tok, text, len, &tp, &ids, &n_ids);
    bn_free(text);
    if (st != BN_OK || (int)n_ids > cap) {
        bn_free(ids);
        return -1;
    }
    if (out)
        memcpy(out, ids, n_ids * sizeof *ids);
    bn_free(ids);
    return (int)n_ids;
}

/* Two turns in one session: the second reuses the cache and gives what the greedy loop
 * by hand gives over the whole conversation in a fresh context. */
static void test_chat_turns(const fixture *f)
{
    bn_context *c = new_context(f->m, 256), *fresh = new_context(f->m, 256);
    bn_chat *chat = NULL;
    CHECK_OK(bn_chat_create(c, NULL, &chat));
    if (!chat)
        return;
    record *r = calloc(1, sizeof *r);
    bn_generate_params gp = greedy_params(r, 12);
    bn_generate_result res;
    CHECK_OK(bn_chat_add_message(chat, "system", "be brief"));
    CHECK_OK(bn_chat_add_message(chat, "user", "hello there"));
    CHECK_OK(bn_chat_reply(chat, &gp, &res));
    CHECK(bn_chat_n_messages(chat) == 3, "the reply is added: %zu messages",
          bn_chat_n_messages(chat));
    bn_chat_message last = bn_chat_get_message(chat, 2);
    CHECK(strcmp(last.role, "assistant") == 0 && strlen(last.content) == r->len &&
          memcmp(last.content, r->text, r->len) == 0, "the reply's text is kept");
    CHECK(res.n_prompt > 0 && res.n_generated == r->n_ids, "the first reply prefilled");

    /* the same reply by hand */
    bn_chat_message msgs[4] = {{"system", "be brief"}, {"user", "hello there"}};
    bn_token ids[256], ref[64];
    int n = render(f->m, msgs, 2, ids, 256);
    bool eog;
    int n_ref = greedy_by_hand(f->m, fresh, ids, n, 12, false, ref, &eog);
    CHECK(n == res.n_prompt && n_ref == r->n_ids && same_ids(ref, r->ids, n_ref),
          "turn 1 equals greedy by hand: %d tokens vs %d", r->n_ids, n_ref);

    /* turn 2: at least turn 1's prompt is in the cache (the reply too where its text
     * tokenizes as it was generated) */
    int n_turn1 = n;
    char reply1[4096];
    snprintf(reply1, sizeof reply1, "%s", last.content);
    CHECK_OK(bn_chat_add_message(chat, "user", "and how are you today"));
    bn_chat_prefill_info info;
    CHECK_OK(bn_chat_prefill(chat, 12, &info));
    msgs[2] = (bn_chat_message){"assistant", reply1};
    msgs[3] = (bn_chat_message){"user", "and how are you today"};
    n = render(f->m, msgs, 4, ids, 256);
    CHECK(info.n_tokens == n && info.n_reused >= n_turn1 && info.n_evaluated >= 1 &&
          info.n_reused + info.n_evaluated == n && info.n_dropped == 0 &&
          info.n_reserved == 12, "prefill: %d tokens, %d reused, %d evaluated",
          info.n_tokens, info.n_reused, info.n_evaluated);
    CHECK(bn_context_n_past(c) == n, "the context holds the conversation");
    memset(r, 0, sizeof *r);
    CHECK_OK(bn_chat_reply(chat, &gp, &res));
    CHECK(res.n_prompt == 0, "prefilled before: the reply evaluates no prompt");
    bn_context_truncate(fresh, 0);
    n_ref = greedy_by_hand(f->m, fresh, ids, n, 12, false, ref, &eog);
    CHECK(n_ref == r->n_ids && same_ids(ref, r->ids, n_ref),
          "turn 2 after reusing the cache equals greedy by hand from scratch");

    /* something else empties the context: the session starts over */
    bn_context_truncate(c, 0);
    CHECK_OK(bn_chat_add_message(chat, "user", "bye"));
    CHECK_OK(bn_chat_prefill(chat, 12, &info));
    CHECK(info.n_reused == 0 && info.n_evaluated == info.n_tokens, "nothing reused after "
          "the context was cleared: %d", info.n_reused);

    /* set_messages may take the session's own strings */
    bn_chat_message keep[2] = {bn_chat_get_message(chat, 0), bn_chat_get_message(chat, 1)};
    CHECK_OK(bn_chat_set_messages(chat, keep, 2));
    CHECK(bn_chat_n_messages(chat) == 2 &&
          strcmp(bn_chat_get_message(chat, 0).content, "be brief") == 0 &&
          strcmp(bn_chat_get_message(chat, 1).content, "hello there") == 0,
          "set_messages from the conversation itself");
    free(r);
    bn_chat_free(chat);
    bn_context_free(fresh);
    bn_context_free(c);
}

/* A context of 96 positions and replies of 8: the conversation is cut to the newest
 * exchanges that fit with 8 to spare, the system message kept. */
static void test_chat_fit(const fixture *f)
{
    bn_chat_message msgs[] = {
        {"system", "be brief"},
        {"user", "one two three four five six"},
        {"assistant", "seven eight nine ten"},
        {"user", "eleven twelve thirteen"},
        {"assistant", "fourteen fifteen"},
        {"user", "sixteen seventeen eighteen"},
        {"assistant", "nineteen twenty"},
        {"user", "twenty one"},
    };
    const size_t n_msgs = sizeof msgs / sizeof msgs[0];
    const int n_ctx = 96, reserve = 8;
    /* by hand: the first start among the user messages whose rendering fits */
    size_t want_start = 0;
    int want_tokens = 0;
    for (size_t start = 1; start < n_msgs && !want_start; start += 2) {
        bn_chat_message view[16];
        size_t n_view = 0;
        view[n_view++] = msgs[0];
        for (size_t i = start; i < n_msgs; i++)
            view[n_view++] = msgs[i];
        int n = render(f->m, view, n_view, NULL, 4096);
        if (n + reserve <= n_ctx) {
            want_start = start;
            want_tokens = n;
        }
    }
    CHECK(want_start > 1 && want_start < n_msgs - 1, "the case drops some but not all "
          "exchanges (start %zu): change the messages", want_start);

    bn_context *c = new_context(f->m, n_ctx);
    bn_chat *chat = NULL;
    CHECK_OK(bn_chat_create(c, NULL, &chat));
    if (!chat)
        return;
    CHECK_OK(bn_chat_set_messages(chat, msgs, n_msgs));
    bn_chat_prefill_info info;
    CHECK_OK(bn_chat_prefill(chat, reserve, &info));
    CHECK(info.n_dropped == want_start - 1 && info.n_tokens == want_tokens &&
          info.n_reserved == reserve, "dropped %zu messages (want %zu), %d tokens (want %d)",
          info.n_dropped, want_start - 1, info.n_tokens, want_tokens);
    CHECK(bn_chat_n_messages(chat) == n_msgs - (want_start - 1), "%zu messages left",
          bn_chat_n_messages(chat));
    CHECK(strcmp(bn_chat_get_message(chat, 0).content, "be brief") == 0 &&
          strcmp(bn_chat_get_message(chat, 1).content, msgs[want_start].content) == 0,
          "the system message, then the first kept exchange");

    /* no limit: a quarter of the context is kept free, at most half */
    CHECK_OK(bn_chat_prefill(chat, -1, &info));
    CHECK(info.n_reserved == n_ctx / 4, "reserve without a limit: %d", info.n_reserved);
    CHECK_OK(bn_chat_prefill(chat, 1000, &info));
    CHECK(info.n_reserved == n_ctx / 2, "reserve at most half: %d", info.n_reserved);

    /* a message that does not fit even alone: refused, nothing dropped */
    char long_msg[800];
    for (size_t i = 0; i + 1 < sizeof long_msg; i++)
        long_msg[i] = "abcdefghij "[i % 11];
    long_msg[sizeof long_msg - 1] = '\0';
    CHECK_OK(bn_chat_add_message(chat, "user", long_msg));
    size_t before = bn_chat_n_messages(chat);
    bn_generate_result res;
    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = 4;
    CHECK(bn_chat_reply(chat, &gp, &res) == BN_ERR_CONTEXT_FULL &&
          strstr(bn_last_error(), "does not fit") != NULL, "a message past the context: %s",
          bn_last_error());
    CHECK(bn_chat_n_messages(chat) == before, "nothing dropped for it");
    bn_chat_remove_messages(chat, before - 1, 1);
    CHECK_OK(bn_chat_reply(chat, &gp, &res));
    CHECK(bn_chat_n_messages(chat) == before, "the session goes on");
    bn_chat_free(chat);

    /* a template the library does not know */
    bn_chat_params cp = bn_chat_default_params();
    cp.template_name = "chatml";
    chat = NULL;
    CHECK(bn_chat_create(c, &cp, &chat) == BN_ERR_UNSUPPORTED && !chat,
          "an unknown template");
    bn_context_free(c);
}

/* Every allocation of a session's reply can fail cleanly. */
static void test_chat_oom(const fixture *f)
{
    bn_context *c = new_context(f->m, 128);
    const char *stops[] = {"zz"};
    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = 6;
    gp.stops = stops;
    gp.n_stops = 1;
    int failures = 0;
    for (uint64_t k = 1; k < 100; k++) {
        bn_mem_stats before, after;
        bn_context_truncate(c, 0);
        bn_mem_get_stats(&before);
        bn_chat *chat = NULL;
        bn_status st = bn_chat_create(c, NULL, &chat);
        st = st == BN_OK ? bn_chat_add_message(chat, "user", "hello there") : st;
        CHECK(st == BN_OK, "setting up");
        bn_generate_result res;
        bn_mem_fail_nth(k);
        st = bn_chat_reply(chat, &gp, &res);
        bn_mem_fail_nth(0);
        bn_chat_free(chat);
        bn_mem_get_stats(&after);
        CHECK((st == BN_OK || st == BN_ERR_OOM) && after.live_blocks == before.live_blocks,
              "chat reply alloc fail #%llu: %s, leaked %lld", (unsigned long long)k,
              bn_status_str(st), (long long)(after.live_blocks - before.live_blocks));
        if (st == BN_OK)
            break;
        failures++;
    }
    CHECK(failures >= 5, "chat reply allocations covered: %d", failures);
    bn_context_free(c);
}

/* ------------------------------------------------------------------ main */

/* ------------------------------------------------------------------ generator */

#define GEN_N 7
#define GEN_SEQ 3
#define GEN_CTX 64

/* Generation i's prompt and params: prompts of several lengths (one that nearly fills
 * a sequence, so that the context-full rule ends it), greedy and sampled, budgets,
 * and a stop text cut from the generation's own text when `stop` is given. */
static int gen_case(const fixture *f, int i, bn_token *prompt, bn_generate_params *gp,
                    record *r, const char *const *stop)
{
    int n = i == 5 ? GEN_CTX - 4 : f->n_prompt + 3 * i;
    for (int k = 0; k < n; k++)
        prompt[k] = k < f->n_prompt ? f->prompt[k] : (bn_token)(f->greedy[(k * 7 + i) % 40]);
    *gp = bn_generate_default_params();
    gp->max_tokens = i == 5 ? -1 : 6 + 3 * i;
    if (i % 2) {
        gp->sampling.temp = 0.9f;
        gp->sampling.top_k = 40;
        gp->sampling.seed = 100 + (uint32_t)i;
    } else {
        gp->sampling.temp = 0.0f;
    }
    gp->on_token = on_token;
    gp->user = r;
    if (stop) {
        gp->stops = stop;
        gp->n_stops = 1;
    }
    return n;
}

/* One generation through gen to its end: its record, result and sequence. */
static int32_t gen_run(bn_generator *gen, const bn_token *prompt, int n,
                       const bn_generate_params *gp, bn_generate_result *res)
{
    int32_t seq = -1;
    CHECK_OK(bn_generator_add(gen, prompt, n, gp, &seq));
    for (int step = 0; seq >= 0 && step < 200 && !bn_generator_done(gen, seq, res); step++)
        CHECK_OK(bn_generator_step(gen, NULL));
    CHECK(seq >= 0 && bn_generator_done(gen, seq, res), "generation done");
    bn_generator_release(gen, seq);
    return seq;
}

/* Prompt reuse: a request whose prompt begins with what a released sequence evaluated
 * (an earlier prompt and its generated tokens but the last) reuses exactly that many
 * tokens, goes to that sequence, and gets what bn_generate gives alone; with
 * reuse_prompt off, or a prompt that shares nothing, nothing is reused and the
 * generation is the same. */
static void test_generator_reuse(const fixture *f)
{
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = GEN_CTX;
    cp.n_seq = 2;
    bn_context *c = NULL;
    bn_generator *gen = NULL;
    CHECK_OK(bn_context_create(f->m, &cp, &c));
    CHECK_OK(bn_generator_create(c, &gen));
    if (!gen) {
        bn_context_free(c);
        return;
    }
    bn_token a[GEN_CTX], b[GEN_CTX];
    bn_generate_params gp;
    record ra = {0};
    bn_generate_result res;
    const int na = gen_case(f, 0, a, &gp, &ra, NULL);   /* greedy, 6 tokens */
    const int32_t sa = gen_run(gen, a, na, &gp, &res);
    CHECK(res.n_prompt == na && res.n_prompt_reused == 0 && ra.n_ids == 6,
          "first request: %d prompt tokens, %d reused, %d generated", res.n_prompt,
          res.n_prompt_reused, ra.n_ids);
    CHECK(bn_context_seq_n_past(c, sa) == na + 5, "its sequence keeps prompt and 5 "
          "evaluated tokens: %d", bn_context_seq_n_past(c, sa));
    /* b: a's prompt, its first 3 generated tokens, then 4 tokens of its own */
    int nb = 0;
    for (int k = 0; k < na; k++)
        b[nb++] = a[k];
    for (int k = 0; k < 3; k++)
        b[nb++] = ra.ids[k];
    b[nb] = ra.ids[3] == f->prompt[1] ? f->prompt[2] : f->prompt[1];   /* not ra.ids[3] */
    nb++;
    for (int k = 0; k < 3; k++)
        b[nb++] = f->greedy[k];
    for (int mode = 0; mode < 3; mode++) {   /* reuse; reuse off; a prompt sharing nothing */
        bn_token pr[GEN_CTX];
        int n = nb;
        memcpy(pr, b, sizeof b);
        if (mode == 2)
            pr[0] = pr[0] == f->greedy[5] ? f->greedy[6] : f->greedy[5];
        record want = {0}, got = {0};
        bn_generate_result wres, gres;
        bn_context *alone = new_context(f->m, GEN_CTX);
        gp = bn_generate_default_params();
        gp.max_tokens = 7;
        gp.sampling.temp = 0.8f;
        gp.sampling.seed = 7 + (uint32_t)mode;
        gp.on_token = on_token;
        gp.user = &want;
        CHECK_OK(bn_generate(alone, pr, n, &gp, &wres));
        bn_context_free(alone);
        gp.user = &got;
        gp.reuse_prompt = mode != 1;
        if (mode > 0) {   /* the kept tokens are a's again: run a first */
            record scratch = {0};
            bn_generate_params ga;
            gen_case(f, 0, a, &ga, &scratch, NULL);
            gen_run(gen, a, na, &ga, &res);
        }
        const int32_t sb = gen_run(gen, pr, n, &gp, &gres);
        const int want_reused = mode == 0 ? na + 3 : 0;
        CHECK(gres.n_prompt == n && gres.n_prompt_reused == want_reused,
              "mode %d: %d prompt tokens, %d reused (want %d)", mode, gres.n_prompt,
              gres.n_prompt_reused, want_reused);
        CHECK(mode != 0 || sb == sa, "reuse takes the sequence that holds the beginning");
        CHECK(gres.stop == wres.stop && gres.n_generated == wres.n_generated &&
              got.n_ids == want.n_ids && same_ids(got.ids, want.ids, got.n_ids < MAX_IDS ?
                                                                     got.n_ids : MAX_IDS) &&
              got.len == want.len && memcmp(got.text, want.text, got.len) == 0,
              "mode %d: the generation is what bn_generate gives alone", mode);
    }
    /* a prompt equal to what a sequence holds still evaluates its last token */
    gp = bn_generate_default_params();
    gp.max_tokens = 2;
    const int32_t s1 = gen_run(gen, a, na, &gp, &res);
    gen_run(gen, a, na, &gp, &res);
    CHECK(res.n_prompt_reused == na - 1, "the same prompt twice: %d of %d reused",
          res.n_prompt_reused, na);
    (void)s1;
    /* a prompt in parts, 3 tokens a step, until its last token is sampled */
    bn_generator_set_prefill_chunk(gen, 3);
    gp.reuse_prompt = false;
    int32_t sq = -1;
    CHECK(na > 6, "a prompt of more than two parts (%d tokens)", na);
    CHECK_OK(bn_generator_add(gen, a, na, &gp, &sq));
    for (int step = 1; sq >= 0 && step * 3 < na; step++) {
        int32_t act = 0;
        CHECK_OK(bn_generator_step(gen, &act));
        CHECK(bn_context_seq_n_past(c, sq) == step * 3 && act == 1 &&
              !bn_generator_done(gen, sq, NULL), "step %d: %d positions, %d active", step,
              bn_context_seq_n_past(c, sq), act);
    }
    CHECK_OK(bn_generator_step(gen, NULL));
    CHECK(sq >= 0 && bn_context_seq_n_past(c, sq) == na, "the prompt's last part");
    bn_generator_free(gen);
    bn_context_free(c);
}

/* Every generation of the generator (three sequences for seven requests: requests
 * wait, sequences are reused) gives the tokens, text, stop and counts that bn_generate
 * gives for its prompt and params in a context of its own. */
static void test_generator(const fixture *f)
{
    static record want[GEN_N], got[GEN_N];
    bn_generate_result want_res[GEN_N], got_res[GEN_N];
    char stop_text[GEN_N][8];
    const char *stops[GEN_N][1];
    bn_token prompt[GEN_CTX];
    bn_generate_params gp;
    memset(want, 0, sizeof want);
    memset(got, 0, sizeof got);
    /* the references, alone; request 2 then gets a stop text from the middle of its
     * own text */
    for (int i = 0; i < GEN_N; i++) {
        const bool with_stop = i == 2;
        if (with_stop) {
            bn_context *c0 = new_context(f->m, GEN_CTX);
            record probe = {0};
            int n0 = gen_case(f, i, prompt, &gp, &probe, NULL);
            bn_generate_result r0;
            CHECK_OK(bn_generate(c0, prompt, n0, &gp, &r0));
            bn_context_free(c0);
            CHECK(probe.len > 6, "request 2's text is long enough to cut a stop from");
            memcpy(stop_text[i], probe.text + probe.len / 2, 3);
            stop_text[i][3] = '\0';
            stops[i][0] = stop_text[i];
        }
        bn_context *c = new_context(f->m, GEN_CTX);
        int n = gen_case(f, i, prompt, &gp, &want[i], with_stop ? stops[i] : NULL);
        CHECK_OK(bn_generate(c, prompt, n, &gp, &want_res[i]));
        bn_context_free(c);
    }
    CHECK(want_res[2].stop == BN_STOP_TEXT && want_res[5].stop == BN_STOP_CONTEXT_FULL,
          "the cases stop as meant: %d %d", want_res[2].stop, want_res[5].stop);

    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = GEN_CTX;
    cp.n_seq = GEN_SEQ;
    bn_context *c = NULL;
    bn_generator *gen = NULL;
    CHECK_OK(bn_context_create(f->m, &cp, &c));
    CHECK_OK(bn_generator_create(c, &gen));
    if (!gen) {
        bn_context_free(c);
        return;
    }
    /* pass 0: prompts whole, beginnings reused where requests share them; pass 1: no
     * reuse, at most 3 prompt tokens a step (prompts in parts over several steps) */
    for (int pass = 0; pass < 2; pass++) {
        bn_generator_set_prefill_chunk(gen, pass == 0 ? 0 : 3);
        memset(got, 0, sizeof got);
        int owner[GEN_SEQ] = {-1, -1, -1}, next = 0, finished = 0, steps = 0, busy_seen = 0;
        while (finished < GEN_N && steps < 500) {
            while (next < GEN_N) {
                int n = gen_case(f, next, prompt, &gp, &got[next], next == 2 ? stops[2] : NULL);
                gp.reuse_prompt = pass == 0;
                int32_t seq = -1;
                bn_status st = bn_generator_add(gen, prompt, n, &gp, &seq);
                if (st == BN_ERR_BUSY) {
                    busy_seen++;
                    CHECK(seq == -1 && bn_generator_n_free(gen) == 0, "busy: no sequence free");
                    break;
                }
                CHECK(st == BN_OK && seq >= 0 && seq < GEN_SEQ && owner[seq] < 0,
                      "request %d into a free sequence (%d): %s", next, seq, bn_last_error());
                if (st != BN_OK || seq < 0)
                    break;
                owner[seq] = next++;
            }
            int32_t active = -1;
            CHECK_OK(bn_generator_step(gen, &active));
            steps++;
            for (int32_t s = 0; s < GEN_SEQ; s++) {
                bn_generate_result res;
                if (owner[s] < 0 || !bn_generator_done(gen, s, &res))
                    continue;
                got_res[owner[s]] = res;
                bn_generator_release(gen, s);
                CHECK(!bn_generator_done(gen, s, NULL), "released");
                owner[s] = -1;
                finished++;
            }
        }
        CHECK(finished == GEN_N && busy_seen > 0, "all %d requests finished (%d), some "
              "waited (%d)", GEN_N, finished, busy_seen);
        for (int i = 0; i < GEN_N; i++) {
            CHECK(got_res[i].stop == want_res[i].stop &&
                  got_res[i].n_prompt == want_res[i].n_prompt &&
                  got_res[i].n_generated == want_res[i].n_generated,
                  "request %d: stop %d, %d + %d tokens (alone: %d, %d + %d)", i, got_res[i].stop,
                  got_res[i].n_prompt, got_res[i].n_generated, want_res[i].stop,
                  want_res[i].n_prompt, want_res[i].n_generated);
            CHECK(got[i].n_ids == want[i].n_ids && same_ids(got[i].ids, want[i].ids,
                  got[i].n_ids < MAX_IDS ? got[i].n_ids : MAX_IDS), "request %d: tokens", i);
            CHECK(got[i].len == want[i].len && memcmp(got[i].text, want[i].text, got[i].len) == 0 &&
                  got[i].n_final == want[i].n_final, "request %d: text (%zu vs %zu bytes)", i,
                  got[i].len, want[i].len);
        }
    }
    bn_generator_set_prefill_chunk(gen, 0);

    /* errors change nothing; a generation released while running frees its sequence */
    int32_t seq = 7;
    CHECK(bn_generator_add(gen, prompt, 0, NULL, &seq) == BN_ERR_INVALID_ARG && seq == -1,
          "an empty prompt");
    bn_token too_long[GEN_CTX + 1];
    for (int k = 0; k <= GEN_CTX; k++)
        too_long[k] = f->prompt[k % f->n_prompt];
    CHECK(bn_generator_add(gen, too_long, GEN_CTX + 1, NULL, &seq) == BN_ERR_CONTEXT_FULL,
          "a prompt longer than a sequence: %s", bn_last_error());
    bn_token bad = 1 << 30;
    CHECK(bn_generator_add(gen, &bad, 1, NULL, &seq) == BN_ERR_INVALID_ARG,
          "a token out of range");
    CHECK(bn_generator_n_free(gen) == GEN_SEQ, "every sequence free again");
    record scratch = {0};
    int n = gen_case(f, 0, prompt, &gp, &scratch, NULL);
    CHECK_OK(bn_generator_add(gen, prompt, n, &gp, &seq));
    CHECK_OK(bn_generator_step(gen, NULL));
    CHECK(!bn_generator_done(gen, seq, NULL) && bn_context_seq_n_past(c, seq) == n,
          "running after its prefill");
    bn_generator_release(gen, seq);
    CHECK(bn_generator_n_free(gen) == GEN_SEQ && bn_context_seq_n_past(c, seq) == n,
          "a running generation released, its positions kept for reuse");
    int32_t active = -1;
    CHECK_OK(bn_generator_step(gen, &active));
    CHECK(active == 0, "a step with nothing to do");
    bn_generator_free(gen);
    bn_context_free(c);

    test_generator_reuse(f);

    /* every allocation of creating a generator, adding requests and stepping them can
     * fail: an error, nothing leaked, and the generator still usable until freed */
    cp.n_seq = 2;
    CHECK_OK(bn_context_create(f->m, &cp, &c));
    int failures = 0;
    for (uint64_t k = 1; c && k < 200; k++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_mem_fail_nth(k);
        gen = NULL;
        bn_status st = bn_generator_create(c, &gen);
        for (int i = 0; st == BN_OK && i < 2; i++) {
            memset(&scratch, 0, sizeof scratch);
            n = gen_case(f, i, prompt, &gp, &scratch, NULL);
            st = bn_generator_add(gen, prompt, n, &gp, &seq);
        }
        for (int step = 0; st == BN_OK && step < 4; step++)
            st = bn_generator_step(gen, NULL);
        bn_mem_fail_nth(0);
        bn_generator_free(gen);
        bn_mem_get_stats(&after);
        CHECK((st == BN_OK || st == BN_ERR_OOM) && after.live_blocks == before.live_blocks,
              "generator alloc fail #%llu: %s, leaked %lld", (unsigned long long)k,
              bn_status_str(st), (long long)(after.live_blocks - before.live_blocks));
        if (st == BN_OK)
            break;
        failures++;
    }
    CHECK(failures >= 5, "generator allocations covered: %d", failures);
    bn_context_free(c);
}

int main(void)
{
    const char *bitnet = getenv("BITNET");
    if (!bitnet || access(bitnet, X_OK) != 0) {
        fprintf(stderr, "SKIPPED: $BITNET must name the bitnet program\n");
        return 77;
    }
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    bn_log_set_level(BN_LOG_ERROR);
    test_stop_text();

    char path[256], cmd[1024];
    snprintf(path, sizeof path, "%s/m.gguf", tmp_dir);
    snprintf(cmd, sizeof cmd, "'%s' synth '%s' --layers 2 --seed 5 --proj-scale 0.0625 "
             "> /dev/null", bitnet, path);
    fixture f = {0};
    if (system(cmd) != 0 || bn_model_load(path, NULL, &f.m) != BN_OK) {
        fprintf(stderr, "could not write or load the model: %s\n", bn_last_error());
        return 1;
    }
    const bn_tokenizer *tok = bn_model_tokenizer(f.m);
    bn_tokenize_params tp = bn_tokenize_default_params();
    tp.add_bos = bn_tokenizer_wants_bos(tok);
    bn_token *ids = NULL;
    size_t n_ids = 0;
    CHECK_OK(bn_tokenize(tok, "hello world", 11, &tp, &ids, &n_ids));
    CHECK(n_ids > 0 && n_ids < 16, "prompt of %zu tokens", n_ids);
    f.n_prompt = (int)n_ids;
    memcpy(f.prompt, ids, n_ids * sizeof *ids);
    bn_free(ids);

    test_greedy(&f);
    test_on_logits(&f);
    test_context_full(&f);
    test_stops(&f);
    test_sampled_eog(&f);
    test_errors(&f);
    test_chat_turns(&f);
    test_chat_fit(&f);
    test_chat_oom(&f);
    test_generator(&f);

    bn_free(f.text);
    bn_model_free(f.m);
    unlink(path);
    rmdir(tmp_dir);
    return check_summary("test_generate");
}
