/*
 * test_sampler.c - the token sampler against an independent NumPy reference
 * (tests/fixtures/sampler.bnfx, made by scripts/fixtures/make_sampler.py), and the
 * properties a reference file cannot show:
 *
 * - every case: after accepting the case's history, bn_sampler_probs equals the
 *   reference distribution within 1e-6 with exactly its support; a greedy sampler draws
 *   the reference's argmax;
 * - ties (lower ids first at every cut), NaN as -inf, +inf logits, the penalty window;
 * - reproducibility: a seed gives one sequence of draws, reset restarts it (and forgets
 *   the history), another seed gives another, and bn_sampler_probs draws nothing;
 * - 20000 draws from a small distribution fit bn_sampler_probs (a chi-square bound;
 *   the seed is fixed, so the outcome is too);
 * - bn_logprobs against closed-form log-softmax values (ties, -inf, NaN, large logits);
 * - bad parameters are BN_ERR_INVALID_ARG naming the parameter; out-of-range ids given
 *   to bn_sampler_accept are ignored; every allocation failure in bn_sampler_create is
 *   BN_ERR_OOM and leaks nothing.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "bitnet.h"
#include "check.h"
#include "fixture.h"

static fx_file *fx;

static const fx_array *get(const char *fmt, int n, int m)
{
    char name[64];
    snprintf(name, sizeof name, fmt, n, m);
    const fx_array *a = fx_get(fx, name);
    if (!a)
        exit(1);
    return a;
}

/* The fixture's parameter set m. */
static bn_sampler_params fixture_params(int m)
{
    const fx_array *f = get("param.%d.f", m, 0), *i = get("param.%d.i", m, 0);
    bn_sampler_params p = bn_sampler_default_params();
    p.temp = (float)fx_at(f, 0);
    p.top_p = (float)fx_at(f, 1);
    p.min_p = (float)fx_at(f, 2);
    p.repeat_penalty = (float)fx_at(f, 3);
    p.presence_penalty = (float)fx_at(f, 4);
    p.frequency_penalty = (float)fx_at(f, 5);
    p.top_k = (int32_t)fx_at(i, 0);
    p.penalty_last_n = (int32_t)fx_at(i, 1);
    return p;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_fixture_cases(void)
{
    int n_cases = (int)fx_at(get("n_cases", 0, 0), 0);
    for (int n = 0; n < n_cases; n++) {
        const fx_array *lg = get("case.%d.logits", n, 0), *hist = get("case.%d.history", n, 0);
        const fx_array *which = get("case.%d.params", n, 0);
        int32_t n_vocab = (int32_t)lg->numel;
        const float *logits = lg->data;
        float *probs = malloc((size_t)n_vocab * sizeof *probs);
        double *ref = malloc((size_t)n_vocab * sizeof *ref);
        for (int64_t w = 0; w < which->numel; w++) {
            int m = (int)fx_at(which, w);
            const fx_array *ids = get("case.%d.%d.ids", n, m), *rp = get("case.%d.%d.probs", n, m);
            bn_sampler_params p = fixture_params(m);
            bn_sampler *s = NULL;
            CHECK_OK(bn_sampler_create(&p, n_vocab, &s));
            if (!s)
                continue;
            for (int64_t j = 0; j < hist->numel; j++)
                bn_sampler_accept(s, (bn_token)fx_at(hist, j));
            double t0 = now_ms();
            bn_sampler_probs(s, logits, probs);
            double ms = now_ms() - t0;
            if (n_vocab > 100000)
                printf("case %d params %d: probs over %d tokens in %.2f ms\n", n, m, n_vocab, ms);

            memset(ref, 0, (size_t)n_vocab * sizeof *ref);
            for (int64_t j = 0; j < ids->numel; j++)
                ref[(int64_t)fx_at(ids, j)] = fx_at(rp, j);
            int wrong_support = 0, wrong_value = 0;
            double worst = 0.0, sum = 0.0;
            for (int32_t i = 0; i < n_vocab; i++) {
                sum += probs[i];
                wrong_support += (probs[i] > 0.0f) != (ref[i] > 0.0);
                double err = fabs((double)probs[i] - ref[i]);
                wrong_value += !(err <= 1e-6);
                worst = err > worst ? err : worst;
            }
            CHECK(wrong_support == 0, "case %d params %d: %d tokens differ in support (%lld in "
                  "the reference's)", n, m, wrong_support, (long long)ids->numel);
            CHECK(wrong_value == 0, "case %d params %d: %d probabilities off by > 1e-6 "
                  "(worst %.3g)", n, m, wrong_value, worst);
            CHECK_NEAR(sum, 1.0, 1e-5, 0);

            if (p.temp <= 0.0f) {
                bn_token t = bn_sampler_sample(s, logits);
                CHECK(ids->numel == 1 && t == (bn_token)fx_at(ids, 0),
                      "case %d params %d: greedy drew %d, reference argmax %d", n, m, t,
                      (int)fx_at(ids, 0));
            } else {
                bn_token t = bn_sampler_sample(s, logits);
                CHECK(t >= 0 && t < n_vocab && ref[t] > 0.0,
                      "case %d params %d: drew %d, outside the support", n, m, t);
            }
            bn_sampler_free(s);
        }
        free(probs);
        free(ref);
    }
}

/* Probabilities for logits under params (after accepting hist[0 .. n_hist)). */
static void probs_of(const bn_sampler_params *p, const float *logits, int32_t n_vocab,
                     const bn_token *hist, int n_hist, float *probs)
{
    bn_sampler *s = NULL;
    CHECK_OK(bn_sampler_create(p, n_vocab, &s));
    if (!s) {
        memset(probs, 0, (size_t)n_vocab * sizeof *probs);
        return;
    }
    for (int i = 0; i < n_hist; i++)
        bn_sampler_accept(s, hist[i]);
    bn_sampler_probs(s, logits, probs);
    bn_sampler_free(s);
}

static bn_sampler_params plain_params(float temp)
{
    bn_sampler_params p = bn_sampler_default_params();
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    return p;
}

static void test_ties_and_specials(void)
{
    float probs[8];
    /* greedy: the lowest id among equal maxima */
    const float tied[5] = {1.0f, 3.0f, 0.5f, 3.0f, 3.0f};
    bn_sampler_params p = plain_params(0.0f);
    probs_of(&p, tied, 5, NULL, 0, probs);
    CHECK(probs[1] == 1.0f && probs[3] == 0.0f && probs[4] == 0.0f, "greedy tie -> id 1");
    /* top-k cuts a run of ties: the lower ids stay */
    p = plain_params(1.0f);
    p.top_k = 2;
    probs_of(&p, tied, 5, NULL, 0, probs);
    CHECK(probs[1] == 0.5f && probs[3] == 0.5f && probs[4] == 0.0f,
          "top-2 of three ties: ids 1 and 3 (%g %g %g)", probs[1], probs[3], probs[4]);
    /* top-p inside a run of ties: 2 of 3 equal tokens reach 0.6 */
    p = plain_params(1.0f);
    p.top_p = 0.6f;
    const float three[4] = {-INFINITY, 2.0f, 2.0f, 2.0f};
    probs_of(&p, three, 4, NULL, 0, probs);
    CHECK(probs[0] == 0.0f && probs[1] == 0.5f && probs[2] == 0.5f && probs[3] == 0.0f,
          "top-p 0.6 of three ties keeps ids 1 and 2 (%g %g %g)", probs[1], probs[2], probs[3]);
    /* -0 and +0 are one value: the lower id first */
    const float zeros[3] = {-1.0f, 0.0f, -0.0f};
    p = plain_params(1.0f);
    p.top_k = 1;
    probs_of(&p, zeros, 3, NULL, 0, probs);
    CHECK(probs[1] == 1.0f, "top-1 of +0 (id 1) and -0 (id 2): id 1");
    const float zeros2[3] = {-1.0f, -0.0f, 0.0f};
    probs_of(&p, zeros2, 3, NULL, 0, probs);
    CHECK(probs[1] == 1.0f, "top-1 of -0 (id 1) and +0 (id 2): id 1");
    p.top_k = 0;
    p.top_p = 0.1f;
    probs_of(&p, zeros2, 3, NULL, 0, probs);
    CHECK(probs[1] == 1.0f, "top-p of -0 (id 1) and +0 (id 2): id 1");
    /* NaN is -inf: never chosen while a number is there */
    const float nan_first[4] = {NAN, -5.0f, NAN, -7.0f};
    p = plain_params(0.0f);
    probs_of(&p, nan_first, 4, NULL, 0, probs);
    CHECK(probs[1] == 1.0f, "greedy skips NaN");
    p = plain_params(1.0f);
    probs_of(&p, nan_first, 4, NULL, 0, probs);
    CHECK(probs[0] == 0.0f && probs[2] == 0.0f && probs[1] > probs[3] && probs[3] > 0.0f,
          "NaN has probability 0");
    /* all NaN: uniform over every token (limit of the softmax); greedy takes id 0 */
    const float all_nan[4] = {NAN, NAN, NAN, NAN};
    probs_of(&p, all_nan, 4, NULL, 0, probs);
    CHECK(probs[0] == 0.25f && probs[1] == 0.25f && probs[2] == 0.25f && probs[3] == 0.25f,
          "all NaN: uniform");
    p.top_k = 3;
    probs_of(&p, all_nan, 4, NULL, 0, probs);
    CHECK(fabsf(probs[0] - 1.0f / 3) < 1e-7f && probs[3] == 0.0f, "all NaN, top-3: ids 0-2");
    /* +inf logits share the mass */
    const float infs[4] = {1.0f, INFINITY, 0.0f, INFINITY};
    p = plain_params(0.7f);
    probs_of(&p, infs, 4, NULL, 0, probs);
    CHECK(probs[1] == 0.5f && probs[3] == 0.5f && probs[0] == 0.0f, "two +inf: half each");
    /* min_p = 1 keeps exactly the maxima; top_p = 0 keeps one */
    p = plain_params(1.0f);
    p.min_p = 1.0f;
    probs_of(&p, tied, 5, NULL, 0, probs);
    CHECK(fabsf(probs[1] - 1.0f / 3) < 1e-7f && fabsf(probs[4] - 1.0f / 3) < 1e-7f &&
          probs[0] == 0.0f, "min_p 1: the three maxima");
    p = plain_params(1.0f);
    p.top_p = 0.0f;
    probs_of(&p, tied, 5, NULL, 0, probs);
    CHECK(probs[1] == 1.0f, "top_p 0: the first in order");
}

static void test_penalty_window(void)
{
    const float logits[4] = {2.0f, 2.0f, -1.0f, 0.0f};
    float probs[4], base[4];
    bn_sampler_params p = plain_params(1.0f);
    p.repeat_penalty = 2.0f;
    p.penalty_last_n = 2;
    const bn_token hist[3] = {0, 1, 2};
    probs_of(&p, logits, 4, NULL, 0, base);
    probs_of(&p, logits, 4, hist, 3, probs);
    /* the window holds ids 1 and 2 only: 1 becomes 1.0, 2 becomes -2.0 */
    double z = exp(2.0) + exp(1.0) + exp(-2.0) + exp(0.0);
    CHECK_NEAR(probs[0], exp(2.0) / z, 1e-7, 0);
    CHECK_NEAR(probs[1], exp(1.0) / z, 1e-7, 0);
    CHECK_NEAR(probs[2], exp(-2.0) / z, 1e-7, 0);
    CHECK(base[0] == base[1], "without history, ids 0 and 1 are equal");
    /* penalties 1 / 0 / 0 change nothing whatever the history */
    p.repeat_penalty = 1.0f;
    probs_of(&p, logits, 4, hist, 3, probs);
    CHECK(memcmp(probs, base, sizeof probs) == 0, "neutral penalties");
    /* presence and frequency: -1 once, -0.5 per occurrence, unbounded window */
    p.presence_penalty = 1.0f;
    p.frequency_penalty = 0.5f;
    p.penalty_last_n = -1;
    const bn_token rep[5] = {3, 0, 3, 3, 0};
    probs_of(&p, logits, 4, rep, 5, probs);
    z = exp(2.0 - 2.0) + exp(2.0) + exp(-1.0) + exp(0.0 - 2.5);
    CHECK_NEAR(probs[0], exp(0.0) / z, 1e-7, 0);
    CHECK_NEAR(probs[3], exp(-2.5) / z, 1e-7, 0);
    /* penalty_last_n = 0: off */
    p.penalty_last_n = 0;
    probs_of(&p, logits, 4, rep, 5, probs);
    CHECK(memcmp(probs, base, sizeof probs) == 0, "penalty_last_n 0 is off");
}

/* Draws n tokens; with probs_between, calls bn_sampler_probs before each draw. */
static void draw(bn_sampler *s, const float *logits, int n, bn_token *out, bool probs_between,
                 float *scratch)
{
    for (int i = 0; i < n; i++) {
        if (probs_between)
            bn_sampler_probs(s, logits, scratch);
        out[i] = bn_sampler_sample(s, logits);
    }
}

static const float g_small[8] = {2.0f, 1.6f, 1.5f, 1.0f, 0.3f, 0.0f, -1.0f, -4.0f};

static void test_reproducible(void)
{
    bn_sampler_params p = bn_sampler_default_params();
    p.top_k = 0;
    p.min_p = 0.0f;
    p.temp = 1.0f;
    bn_sampler *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(bn_sampler_create(&p, 8, &a));
    CHECK_OK(bn_sampler_create(&p, 8, &b));
    p.seed = 12345;
    CHECK_OK(bn_sampler_create(&p, 8, &c));
    if (!a || !b || !c)
        return;
    bn_token da[200], db[200], dc[200], dr[200];
    float scratch[8];
    draw(a, g_small, 200, da, false, scratch);
    draw(b, g_small, 200, db, true, scratch);
    draw(c, g_small, 200, dc, false, scratch);
    CHECK(memcmp(da, db, sizeof da) == 0, "same seed, same draws (probs draws nothing)");
    int differ = 0, distinct = 0;
    for (int i = 0; i < 200; i++)
        differ += da[i] != dc[i];
    for (int t = 0; t < 8; t++)
        for (int i = 0; i < 200; i++)
            if (da[i] == t) {
                distinct++;
                break;
            }
    CHECK(differ > 50, "another seed, other draws (%d of 200 differ)", differ);
    CHECK(distinct >= 4, "the draws vary (%d distinct tokens)", distinct);
    bn_sampler_reset(a);
    draw(a, g_small, 200, dr, false, scratch);
    CHECK(memcmp(da, dr, sizeof da) == 0, "reset restarts the sequence");
    bn_sampler_free(a);
    bn_sampler_free(b);
    bn_sampler_free(c);

    /* reset also forgets the accepted tokens */
    p = bn_sampler_default_params();
    p.repeat_penalty = 1.5f;
    bn_sampler *s = NULL;
    CHECK_OK(bn_sampler_create(&p, 8, &s));
    if (!s)
        return;
    float fresh[8], penalized[8], after[8];
    bn_sampler_probs(s, g_small, fresh);
    bn_sampler_accept(s, 0);
    bn_sampler_accept(s, 1);
    bn_sampler_probs(s, g_small, penalized);
    bn_sampler_reset(s);
    bn_sampler_probs(s, g_small, after);
    CHECK(memcmp(fresh, penalized, sizeof fresh) != 0, "accept changed the distribution");
    CHECK(memcmp(fresh, after, sizeof fresh) == 0, "reset forgot the history");
    /* ids out of range are ignored */
    bn_sampler_accept(s, -1);
    bn_sampler_accept(s, 8);
    bn_sampler_accept(s, INT32_MIN);
    bn_sampler_probs(s, g_small, after);
    CHECK(memcmp(fresh, after, sizeof fresh) == 0, "out-of-range ids are ignored");
    bn_sampler_free(s);
}

static void test_frequencies(void)
{
    /* 0.999 quantiles of chi-square for 1 .. 8 degrees of freedom */
    static const double chi2_999[9] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12};
    bn_sampler_params p = bn_sampler_default_params();
    p.temp = 0.9f;
    p.top_k = 7;
    p.top_p = 0.97f;
    p.min_p = 0.02f;
    p.seed = 2024;
    bn_sampler *s = NULL;
    CHECK_OK(bn_sampler_create(&p, 8, &s));
    if (!s)
        return;
    float probs[8];
    bn_sampler_probs(s, g_small, probs);
    int counts[8] = {0}, n_draws = 20000;
    for (int i = 0; i < n_draws; i++) {
        bn_token t = bn_sampler_sample(s, g_small);
        if (t >= 0 && t < 8)
            counts[t]++;
    }
    double chi2 = 0.0;
    int support = 0, outside = 0;
    for (int t = 0; t < 8; t++) {
        if (probs[t] > 0.0f) {
            double expect = n_draws * (double)probs[t];
            chi2 += (counts[t] - expect) * (counts[t] - expect) / expect;
            support++;
        } else {
            outside += counts[t];
        }
    }
    CHECK(support >= 3 && support <= 7, "the filters cut the tail (support %d)", support);
    CHECK(outside == 0, "%d draws of filtered tokens", outside);
    CHECK(support >= 2 && chi2 < chi2_999[support - 1],
          "chi-square %.2f over %d tokens (bound %.2f)", chi2, support,
          chi2_999[support > 1 ? support - 1 : 1]);
    bn_sampler_free(s);
}

static void expect_invalid(const bn_sampler_params *p, int32_t n_vocab, const char *word)
{
    static char sentinel;
    bn_sampler *s = (bn_sampler *)&sentinel;   /* not NULL: create must clear it */
    bn_status st = bn_sampler_create(p, n_vocab, &s);
    CHECK(st == BN_ERR_INVALID_ARG && s == NULL && strstr(bn_last_error(), word),
          "%s: %s, %s", word, bn_status_str(st), bn_last_error());
    if (st == BN_OK)
        bn_sampler_free(s);
}

static void test_invalid_params(void)
{
    bn_sampler_params d = bn_sampler_default_params(), p;
    expect_invalid(&d, 0, "n_vocab");
    expect_invalid(&d, -5, "n_vocab");
    p = d; p.temp = NAN;                 expect_invalid(&p, 10, "temp");
    p = d; p.temp = INFINITY;            expect_invalid(&p, 10, "temp");
    p = d; p.top_p = -0.1f;              expect_invalid(&p, 10, "top_p");
    p = d; p.top_p = 1.5f;               expect_invalid(&p, 10, "top_p");
    p = d; p.top_p = NAN;                expect_invalid(&p, 10, "top_p");
    p = d; p.min_p = -0.01f;             expect_invalid(&p, 10, "min_p");
    p = d; p.min_p = 2.0f;               expect_invalid(&p, 10, "min_p");
    p = d; p.repeat_penalty = 0.0f;      expect_invalid(&p, 10, "repeat_penalty");
    p = d; p.repeat_penalty = -1.1f;     expect_invalid(&p, 10, "repeat_penalty");
    p = d; p.presence_penalty = NAN;     expect_invalid(&p, 10, "presence_penalty");
    p = d; p.frequency_penalty = -INFINITY; expect_invalid(&p, 10, "frequency_penalty");
    p = d; p.penalty_last_n = -2;        expect_invalid(&p, 10, "penalty_last_n");
    CHECK(bn_sampler_create(&d, 10, NULL) == BN_ERR_INVALID_ARG, "out NULL");

    /* what is allowed: negative temp (greedy), negative presence/frequency (they favour
     * repeats), any top_k, the ends of the ranges, NULL params (the defaults) */
    bn_sampler *s = NULL;
    p = d;
    p.temp = -1.0f;
    p.presence_penalty = -0.5f;
    p.frequency_penalty = -0.5f;
    p.top_k = -7;
    p.top_p = 0.0f;
    p.min_p = 1.0f;
    p.penalty_last_n = -1;
    CHECK_OK(bn_sampler_create(&p, 1, &s));
    if (s) {
        float one = 3.0f, pr = 0.0f;
        CHECK(bn_sampler_sample(s, &one) == 0, "a vocabulary of one");
        bn_sampler_probs(s, &one, &pr);
        CHECK(pr == 1.0f, "probability 1");
    }
    bn_sampler_free(s);
    s = NULL;
    CHECK_OK(bn_sampler_create(NULL, 10, &s));
    bn_sampler_free(s);
    bn_sampler_free(NULL);
}

static void test_alloc_failures(void)
{
    const int32_t windows[3] = {64, -1, 0};
    for (int w = 0; w < 3; w++) {
        bn_sampler_params p = bn_sampler_default_params();
        p.penalty_last_n = windows[w];
        int failures = 0;
        for (uint64_t n = 1; n < 50; n++) {
            bn_mem_stats before, after;
            bn_mem_get_stats(&before);
            bn_sampler *s = NULL;
            bn_mem_fail_nth(n);
            bn_status st = bn_sampler_create(&p, 1000, &s);
            bn_mem_fail_nth(0);
            if (st == BN_OK) {
                bn_sampler_free(s);
                break;
            }
            failures++;
            bn_mem_get_stats(&after);
            CHECK(st == BN_ERR_OOM && s == NULL && after.live_blocks == before.live_blocks &&
                  strstr(bn_last_error(), "sampler"),
                  "last_n %d, fail #%llu: %s (%s), %lld blocks leaked", windows[w],
                  (unsigned long long)n, bn_status_str(st), bn_last_error(),
                  (long long)(after.live_blocks - before.live_blocks));
        }
        CHECK(failures >= 4, "last_n %d: %d allocations covered", windows[w], failures);
    }
}

/* bn_logprobs on rows whose log-softmax is known in closed form. */
static void test_logprobs(void)
{
    /* exp: 1, 2, 2, 0, 0 -> probabilities 1/5, 2/5, 2/5, 0, 0 */
    const float l[5] = {0.0f, logf(2.0f), logf(2.0f), -INFINITY, NAN};
    bn_token ids[5];
    float lps[5], lp = 0.0f;
    int32_t n = bn_logprobs(l, 5, 0, 3, &lp, ids, lps);
    CHECK(n == 3 && ids[0] == 1 && ids[1] == 2 && ids[2] == 0, "top-3 order: %d (%d %d %d)",
          n, ids[0], ids[1], ids[2]);
    CHECK_NEAR(lp, -log(5.0), 1e-6, 0);
    CHECK_NEAR(lps[0], log(0.4), 1e-6, 0);
    CHECK_NEAR(lps[1], log(0.4), 1e-6, 0);
    CHECK_NEAR(lps[2], -log(5.0), 1e-6, 0);
    n = bn_logprobs(l, 5, 4, 5, &lp, ids, lps);
    CHECK(n == 5 && ids[3] == 3 && ids[4] == 4 && isinf(lps[3]) && lps[3] < 0 &&
          isinf(lps[4]) && isinf(lp) && lp < 0, "-inf and NaN last, as -inf");
    CHECK(bn_logprobs(l, 5, 9, 0, &lp, NULL, NULL) == 0 && isinf(lp) && lp < 0,
          "an id out of range: -inf; k 0: none");
    CHECK(bn_logprobs(l, 5, 1, 9, NULL, ids, lps) == 5, "k beyond the vocabulary");
    /* large logits: exp would overflow without the max taken out */
    const float big[3] = {1000.0f, 1000.0f, 990.0f};
    n = bn_logprobs(big, 3, 2, 1, &lp, ids, lps);
    double z = log(2.0 + exp(-10.0));
    CHECK(n == 1 && ids[0] == 0, "ties: the lower id");
    CHECK_NEAR(lps[0], -z, 1e-6, 0);
    CHECK_NEAR(lp, -10.0 - z, 1e-5, 0);
}

int main(void)
{
    fx = fx_open("sampler.bnfx");
    if (!fx)
        return 1;
    test_fixture_cases();
    test_ties_and_specials();
    test_penalty_window();
    test_reproducible();
    test_frequencies();
    test_invalid_params();
    test_alloc_failures();
    test_logprobs();
    fx_close(fx);
    return check_summary("test_sampler");
}
