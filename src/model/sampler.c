/*
 * sampler.c - the token sampler: llama.cpp's default chain (penalties, top-k, top-p,
 * min-p, temperature, a seeded draw), with every buffer allocated once in
 * bn_sampler_create so that sampling a token allocates nothing.
 *
 * The exact semantics (tests/test_sampler.c checks them against an independent NumPy
 * reference, scripts/fixtures/make_sampler.py):
 *
 * - NaN logits count as -inf. Logits are copied; the caller's array is not changed.
 * - Penalties (skipped when penalty_last_n is 0 or they are 1 / 0 / 0), in float as
 *   llama.cpp does, once per distinct token among the last penalty_last_n accepted
 *   ones (all of them for -1), with c its count there:
 *       l = l > 0 ? l / repeat_penalty : l * repeat_penalty
 *       l = l - ((float)c * frequency_penalty + presence_penalty)
 * - temp <= 0: greedy, the argmax of the penalized logits, the lowest id on ties (id 0
 *   when every logit is -inf); it draws no random number.
 * - Otherwise the candidates are put in one total order, logit descending then id
 *   ascending, and every later stage keeps a prefix of that order, so ties at any
 *   boundary go to the lower ids:
 *     top-k   (top_k > 0): the first top_k;
 *     top-p   (top_p < 1): with p the softmax of the candidates, the shortest prefix
 *             whose sum of p reaches top_p (at least one token);
 *     min-p   (min_p > 0): the tokens with p >= min_p * p_max over the candidates
 *             left, i.e. exp(l - l_max) >= min_p;
 *     then the softmax of l / temp over what is left, and one draw.
 *   Softmaxes are taken in double of (l - l_max) / t. When l_max is infinite (+inf
 *   logits, or all candidates -inf) the softmax is its limit: uniform over the
 *   candidates equal to l_max.
 * - The draw: u in [0, 1) from the top 53 bits of xoshiro256** (seeded by splitmix64
 *   from params.seed), then the first candidate, in the order above, whose running
 *   sum of weights exceeds u times their total. One number per non-greedy sample.
 * - bn_sampler_probs runs the same code up to the draw and writes weight / total.
 * - bn_sampler_accept ignores ids outside [0, n_vocab) (a release build cannot
 *   assert, and a stray id must not corrupt the history).
 *
 * A sampler is used by one thread at a time (its scratch buffers are shared by calls).
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/internal.h"

/* One candidate token: its (penalized) logit and id. */
typedef struct bn_sampler_cand {
    float   logit;
    int32_t id;
} bn_sampler_cand;

struct bn_sampler {
    bn_sampler_params params;
    int32_t  n_vocab;
    uint64_t rng[4];            /* xoshiro256** state */

    /* Penalty history. penalty_last_n > 0: a ring of the last accepted tokens, and
     * counts used as zeroed scratch while the penalties are applied. -1: counts of
     * every accepted token, and the distinct ones in first-seen order. */
    int32_t *ring;              /* [penalty_last_n] */
    int32_t  ring_len;          /* tokens in the ring (<= penalty_last_n) */
    int32_t  ring_next;         /* where the next one goes */
    int32_t *counts;            /* [n_vocab] */
    int32_t *seen;              /* [n_vocab] (penalty_last_n = -1 only) */
    int32_t  n_seen;

    /* Scratch for one call. */
    float           *logits;    /* [n_vocab] NaN-cleaned, penalized logits */
    bn_sampler_cand *cand;      /* [n_vocab] candidates, best first */
    bn_sampler_cand *sort_tmp;  /* [n_vocab] the radix sort's other half */
    double          *weight;    /* [n_vocab] unnormalized probability of cand[i] */
    int32_t          n_cand;
    double           total;     /* sum of weight[0 .. n_cand) */
};

bn_sampler_params bn_sampler_default_params(void)
{
    return (bn_sampler_params){
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .penalty_last_n = 64,
        .seed = 0xB17,
    };
}

/* ------------------------------------------------------------------ random numbers */

static uint64_t bn_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void bn_sampler_seed(bn_sampler *s)
{
    uint64_t x = s->params.seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = bn_splitmix64(&x);
}

static uint64_t bn_rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna). */
static uint64_t bn_sampler_next(bn_sampler *s)
{
    uint64_t *r = s->rng;
    uint64_t out = bn_rotl64(r[1] * 5, 7) * 9;
    uint64_t t = r[1] << 17;
    r[2] ^= r[0];
    r[3] ^= r[1];
    r[1] ^= r[2];
    r[0] ^= r[3];
    r[2] ^= t;
    r[3] = bn_rotl64(r[3], 45);
    return out;
}

/* A uniform double in [0, 1) with 53 random bits. */
static double bn_sampler_uniform(bn_sampler *s)
{
    return (double)(bn_sampler_next(s) >> 11) * 0x1.0p-53;
}

/* ------------------------------------------------------------------ create / free */

/* BN_ERR_INVALID_ARG naming the first parameter that makes no sense, else BN_OK. */
static bn_status bn_sampler_check_params(const bn_sampler_params *p, int32_t n_vocab)
{
    if (n_vocab < 1)
        return bn_error_set(BN_ERR_INVALID_ARG, "sampler: n_vocab must be at least 1 (got %d)",
                            n_vocab);
    const struct { const char *name; float v; } floats[] = {
        {"temp", p->temp},
        {"top_p", p->top_p},
        {"min_p", p->min_p},
        {"repeat_penalty", p->repeat_penalty},
        {"presence_penalty", p->presence_penalty},
        {"frequency_penalty", p->frequency_penalty},
    };
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
        if (!isfinite(floats[i].v))
            return bn_error_set(BN_ERR_INVALID_ARG, "sampler: %s must be a finite number (got %g)",
                                floats[i].name, (double)floats[i].v);
    if (p->top_p < 0.0f || p->top_p > 1.0f)
        return bn_error_set(BN_ERR_INVALID_ARG, "sampler: top_p must be in [0, 1] (got %g)",
                            (double)p->top_p);
    if (p->min_p < 0.0f || p->min_p > 1.0f)
        return bn_error_set(BN_ERR_INVALID_ARG, "sampler: min_p must be in [0, 1] (got %g)",
                            (double)p->min_p);
    if (p->repeat_penalty <= 0.0f)
        return bn_error_set(BN_ERR_INVALID_ARG,
                            "sampler: repeat_penalty must be positive (got %g; 1 is off)",
                            (double)p->repeat_penalty);
    if (p->penalty_last_n < -1)
        return bn_error_set(BN_ERR_INVALID_ARG,
                            "sampler: penalty_last_n must be -1 (all), 0 (off) or positive "
                            "(got %d)", p->penalty_last_n);
    return BN_OK;
}

/* params NULL means the defaults. */
bn_status bn_sampler_create(const bn_sampler_params *params, int32_t n_vocab,
                            bn_sampler **out)
{
    if (!out)
        return bn_error_set(BN_ERR_INVALID_ARG, "sampler: out is NULL");
    *out = NULL;
    bn_sampler_params p = params ? *params : bn_sampler_default_params();
    bn_status st = bn_sampler_check_params(&p, n_vocab);
    if (st != BN_OK)
        return st;

    bn_sampler *s = bn_calloc(1, sizeof *s, "sampler");
    if (!s)
        return bn_error_wrap(BN_OK, "creating a sampler");
    s->params = p;
    s->n_vocab = n_vocab;
    size_t nv = (size_t)n_vocab;
    bool ok = (s->logits = bn_malloc(nv * sizeof *s->logits, "sampler")) &&
              (s->cand = bn_malloc(nv * sizeof *s->cand, "sampler")) &&
              (s->sort_tmp = bn_malloc(nv * sizeof *s->sort_tmp, "sampler")) &&
              (s->weight = bn_malloc(nv * sizeof *s->weight, "sampler"));
    if (ok && p.penalty_last_n != 0)
        ok = (s->counts = bn_calloc(nv, sizeof *s->counts, "sampler")) != NULL;
    if (ok && p.penalty_last_n > 0)
        ok = (s->ring = bn_malloc((size_t)p.penalty_last_n * sizeof *s->ring, "sampler")) != NULL;
    if (ok && p.penalty_last_n < 0)
        ok = (s->seen = bn_malloc(nv * sizeof *s->seen, "sampler")) != NULL;
    if (!ok) {
        bn_sampler_free(s);
        return bn_error_wrap(BN_OK, "creating a sampler of %d tokens", n_vocab);
    }
    bn_sampler_seed(s);
    *out = s;
    return BN_OK;
}

void bn_sampler_free(bn_sampler *s)
{
    if (!s)
        return;
    bn_free(s->logits);
    bn_free(s->cand);
    bn_free(s->sort_tmp);
    bn_free(s->weight);
    bn_free(s->counts);
    bn_free(s->ring);
    bn_free(s->seen);
    bn_free(s);
}

void bn_sampler_reset(bn_sampler *s)
{
    assert(s);
    s->ring_len = s->ring_next = 0;
    s->n_seen = 0;
    if (s->counts)
        memset(s->counts, 0, (size_t)s->n_vocab * sizeof *s->counts);
    bn_sampler_seed(s);
}

void bn_sampler_accept(bn_sampler *s, bn_token id)
{
    assert(s);
    if (id < 0 || id >= s->n_vocab)
        return;
    int32_t last_n = s->params.penalty_last_n;
    if (last_n > 0) {
        s->ring[s->ring_next] = id;
        s->ring_next = (s->ring_next + 1) % last_n;
        if (s->ring_len < last_n)
            s->ring_len++;
    } else if (last_n < 0) {
        if (s->counts[id] == 0)
            s->seen[s->n_seen++] = id;
        if (s->counts[id] < INT32_MAX)
            s->counts[id]++;
    }
}

/* ------------------------------------------------------------------ the chain */

/* The repeat, frequency and presence penalties for a token seen `count` times. */
static float bn_sampler_penalize(const bn_sampler_params *p, float logit, int32_t count)
{
    logit = logit > 0.0f ? logit / p->repeat_penalty : logit * p->repeat_penalty;
    logit -= (float)count * p->frequency_penalty + p->presence_penalty;
    return isnan(logit) ? -INFINITY : logit;   /* inf - inf, only with absurd penalties */
}

/* s->logits = logits with NaN as -inf, penalized by the history. */
static void bn_sampler_apply_penalties(bn_sampler *s, const float *logits)
{
    for (int32_t i = 0; i < s->n_vocab; i++)
        s->logits[i] = isnan(logits[i]) ? -INFINITY : logits[i];

    const bn_sampler_params *p = &s->params;
    if (p->penalty_last_n == 0 || (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f &&
                                   p->frequency_penalty == 0.0f))
        return;
    if (p->penalty_last_n < 0) {
        for (int32_t j = 0; j < s->n_seen; j++) {
            int32_t id = s->seen[j];
            s->logits[id] = bn_sampler_penalize(p, s->logits[id], s->counts[id]);
        }
        return;
    }
    /* Count the window into the zeroed scratch, then penalize each distinct token once
     * and zero its count again. */
    for (int32_t j = 0; j < s->ring_len; j++)
        s->counts[s->ring[j]]++;
    for (int32_t j = 0; j < s->ring_len; j++) {
        int32_t id = s->ring[j];
        if (s->counts[id] > 0) {
            s->logits[id] = bn_sampler_penalize(p, s->logits[id], s->counts[id]);
            s->counts[id] = 0;
        }
    }
}

/* Whether a ranks before b: larger logit first, then lower id. */
static bool bn_cand_before(const bn_sampler_cand *a, const bn_sampler_cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* A key whose ascending order is descending logits (-0 and +0 share one). */
static uint32_t bn_logit_rank_key(float logit)
{
    if (logit == 0.0f)
        logit = 0.0f;
    uint32_t u;
    memcpy(&u, &logit, sizeof u);
    uint32_t flip = (uint32_t)-(int32_t)(u >> 31) | 0x80000000u;   /* all bits, or the sign */
    return ~(u ^ flip);   /* u ^ flip ascends with the float */
}

/* Digit d (11 bits) of a candidate's sort key: digits 0-2 of its id, then 3-5 of its
 * logit's rank key. */
static uint32_t bn_cand_digit(const bn_sampler_cand *c, int d)
{
    uint32_t word = d < 3 ? (uint32_t)c->id : bn_logit_rank_key(c->logit);
    return (word >> (11 * (d % 3))) & 0x7FFu;
}

/* Sorts cand[0 .. n) into rank order (logit descending, then id ascending) with a
 * stable LSD radix sort, 11 bits a pass, in O(n) and without allocating (glibc's qsort
 * may malloc). Candidates already in id order need only the logit's digits; a digit
 * that every key shares is skipped. tmp holds n. */
static void bn_sampler_sort(bn_sampler_cand *cand, bn_sampler_cand *tmp, int32_t n,
                            bool in_id_order)
{
    bn_sampler_cand *src = cand, *dst = tmp;
    for (int d = in_id_order ? 3 : 0; d < 6 && n > 1; d++) {
        int32_t count[2048] = {0};
        for (int32_t i = 0; i < n; i++)
            count[bn_cand_digit(&src[i], d)]++;
        if (count[bn_cand_digit(&src[0], d)] == n)
            continue;
        int32_t start = 0;
        for (int v = 0; v < 2048; v++) {
            int32_t c = count[v];
            count[v] = start;
            start += c;
        }
        for (int32_t i = 0; i < n; i++)
            dst[count[bn_cand_digit(&src[i], d)]++] = src[i];
        bn_sampler_cand *t = src;
        src = dst;
        dst = t;
    }
    if (src != cand)
        memcpy(cand, src, (size_t)n * sizeof *cand);
}

/* Restores the heap below node i: every node ranks after its children, so the root is
 * the candidate that ranks last. */
static void bn_heap_sift_down(bn_sampler_cand *h, int32_t n, int32_t i)
{
    for (;;) {
        int32_t last = i, l = 2 * i + 1, r = l + 1;
        if (l < n && bn_cand_before(&h[last], &h[l]))
            last = l;
        if (r < n && bn_cand_before(&h[last], &h[r]))
            last = r;
        if (last == i)
            return;
        bn_sampler_cand t = h[i];
        h[i] = h[last];
        h[last] = t;
        i = last;
    }
}

/* s->cand = the top k of s->logits in rank order, k < n_vocab: a heap of the k best so
 * far (O(n log k)), then a sort of those k. */
static void bn_sampler_select_top_k(bn_sampler *s, int32_t k)
{
    bn_sampler_cand *h = s->cand;
    for (int32_t i = 0; i < k; i++)
        h[i] = (bn_sampler_cand){s->logits[i], i};
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        bn_heap_sift_down(h, k, i);
    for (int32_t i = k; i < s->n_vocab; i++) {
        bn_sampler_cand c = {s->logits[i], i};
        if (bn_cand_before(&c, &h[0])) {
            h[0] = c;
            bn_heap_sift_down(h, k, 0);
        }
    }
    bn_sampler_sort(h, s->sort_tmp, k, false);
    s->n_cand = k;
}

/* The softmax weight exp((l - l_max) / temp) of a candidate, or its limit when l_max
 * is infinite: 1 for the candidates equal to l_max, 0 for the others. */
static double bn_sampler_rel_weight(float logit, float max_logit, double temp)
{
    if (isinf(max_logit))
        return logit == max_logit ? 1.0 : 0.0;
    return exp(((double)logit - (double)max_logit) / temp);
}

/* s->weight[0 .. n_cand) and s->total for the softmax of the candidates at `temp`. */
static void bn_sampler_softmax(bn_sampler *s, double temp)
{
    float max_logit = s->cand[0].logit;
    double total = 0.0;
    for (int32_t i = 0; i < s->n_cand; i++) {
        s->weight[i] = bn_sampler_rel_weight(s->cand[i].logit, max_logit, temp);
        total += s->weight[i];
    }
    s->total = total;
}

/* s->cand = every token in rank order (top-k off), less those that top-p or min-p
 * drop wherever they rank, so that fewer are sorted and weighed again. With w = exp(l - l_max) and W the sum of w over all n
 * tokens: min-p drops w < min_p (the very test of its stage); top-p drops
 * w <= (1 - top_p) W / (2n): that token and those ranked after it weigh at most
 * n w <= (1 - top_p) W / 2, so the ones before it already hold more than top_p W (the
 * factor 2 keeps the bound clear of rounding). The stages then cut where they would
 * after a full sort. Returns W, or 0 when neither filter is on. */
static double bn_sampler_gather_all(bn_sampler *s)
{
    const bn_sampler_params *p = &s->params;
    int32_t n = s->n_vocab, kept = 0;
    double total = 0.0;
    if (p->top_p < 1.0f || p->min_p > 0.0f) {
        float max_logit = s->logits[0];
        for (int32_t i = 1; i < n; i++)
            max_logit = s->logits[i] > max_logit ? s->logits[i] : max_logit;
        for (int32_t i = 0; i < n; i++) {
            s->weight[i] = bn_sampler_rel_weight(s->logits[i], max_logit, 1.0);
            total += s->weight[i];
        }
        /* the largest token (w = 1) always passes: min_p <= 1, and W <= n */
        double min_p_floor = p->min_p > 0.0f ? (double)p->min_p : 0.0;
        double top_p_floor = p->top_p < 1.0f ? 0.5 * (1.0 - (double)p->top_p) * total / n
                                             : -1.0;
        for (int32_t i = 0; i < n; i++)
            if (s->weight[i] >= min_p_floor && s->weight[i] > top_p_floor)
                s->cand[kept++] = (bn_sampler_cand){s->logits[i], i};
    } else {
        for (int32_t i = 0; i < n; i++)
            s->cand[kept++] = (bn_sampler_cand){s->logits[i], i};
    }
    bn_sampler_sort(s->cand, s->sort_tmp, kept, true);
    s->n_cand = kept;
    return total;
}

/* Runs the chain on logits: s->cand[0 .. n_cand) with s->weight and s->total are the
 * distribution the next draw uses (one candidate of weight 1 when greedy). */
static void bn_sampler_prepare(bn_sampler *s, const float *logits)
{
    const bn_sampler_params *p = &s->params;
    bn_sampler_apply_penalties(s, logits);

    if (p->temp <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < s->n_vocab; i++)
            if (s->logits[i] > s->logits[best])
                best = i;
        s->cand[0] = (bn_sampler_cand){s->logits[best], best};
        s->weight[0] = 1.0;
        s->n_cand = 1;
        s->total = 1.0;
        return;
    }

    double norm = 0.0;   /* top-p's softmax total; 0: that of the candidates */
    if (p->top_k > 0 && p->top_k < s->n_vocab)
        bn_sampler_select_top_k(s, p->top_k);
    else
        norm = bn_sampler_gather_all(s);

    if (p->top_p < 1.0f) {
        bn_sampler_softmax(s, 1.0);
        if (norm == 0.0)
            norm = s->total;
        double cum = 0.0;
        for (int32_t i = 0; i < s->n_cand; i++) {
            cum += s->weight[i] / norm;
            if (cum >= (double)p->top_p) {
                s->n_cand = i + 1;
                break;
            }
        }
    }

    if (p->min_p > 0.0f) {
        float max_logit = s->cand[0].logit;
        int32_t n = 1;   /* the first candidate has p = p_max */
        while (n < s->n_cand &&
               bn_sampler_rel_weight(s->cand[n].logit, max_logit, 1.0) >= (double)p->min_p)
            n++;
        s->n_cand = n;
    }

    bn_sampler_softmax(s, (double)p->temp);
}

bn_token bn_sampler_sample(bn_sampler *s, const float *logits)
{
    assert(s && logits);
    bn_sampler_prepare(s, logits);
    if (s->params.temp <= 0.0f)
        return s->cand[0].id;
    double target = bn_sampler_uniform(s) * s->total;
    double cum = 0.0;
    int32_t last_positive = 0;
    for (int32_t i = 0; i < s->n_cand; i++) {
        if (s->weight[i] > 0.0)
            last_positive = i;
        cum += s->weight[i];
        if (cum > target)
            return s->cand[i].id;
    }
    /* u * total rounded up to total: the last token that can be drawn */
    return s->cand[last_positive].id;
}

void bn_sampler_probs(bn_sampler *s, const float *logits, float *probs)
{
    assert(s && logits && probs);
    bn_sampler_prepare(s, logits);
    memset(probs, 0, (size_t)s->n_vocab * sizeof *probs);
    for (int32_t i = 0; i < s->n_cand; i++)
        probs[s->cand[i].id] = (float)(s->weight[i] / s->total);
}

/* ------------------------------------------------------------------ log-probabilities */

int32_t bn_logprobs(const float *logits, int32_t n_vocab, bn_token id, int32_t k,
                    float *logprob, bn_token *top_ids, float *top_logprobs)
{
    assert(logits || n_vocab <= 0);
    /* log(sum exp(l)) = max + log(sum exp(l - max)); a NaN counts as -inf */
    double max = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++)
        if (logits[i] > max)
            max = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab && isfinite(max); i++)
        if (logits[i] > -INFINITY)
            sum += exp((double)logits[i] - max);
    const double lse = isfinite(max) ? max + log(sum) : max;
    if (logprob)
        *logprob = id >= 0 && id < n_vocab && logits[id] > -INFINITY
                   ? (float)((double)logits[id] - lse) : -INFINITY;
    if (k <= 0 || n_vocab <= 0)
        return 0;
    k = k < n_vocab ? k : n_vocab;
    /* the k best so far, best first: a token enters when it beats the last (a later id
     * with an equal logit does not), so ties keep the lower id first */
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        float l = logits[i] > -INFINITY ? logits[i] : -INFINITY;
        if (n == k && !(l > top_logprobs[n - 1]))
            continue;
        int32_t j = n < k ? n++ : n - 1;
        while (j > 0 && l > top_logprobs[j - 1]) {
            top_logprobs[j] = top_logprobs[j - 1];
            top_ids[j] = top_ids[j - 1];
            j--;
        }
        top_logprobs[j] = l;
        top_ids[j] = i;
    }
    for (int32_t j = 0; j < n; j++)
        top_logprobs[j] = top_logprobs[j] > -INFINITY ? (float)(top_logprobs[j] - lse)
                                                      : -INFINITY;
    return n;
}
