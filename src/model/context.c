/*
 * context.c - the evaluation context (KV cache and buffers, all allocated once) and
 * the forward pass of a batch of tokens.
 *
 * Per layer, with h the residual stream of the batch ([T, n_embd]):
 *     x = rmsnorm(h) * attn_norm
 *     q, k, v = Wq x, Wk x, Wv x              (one quantization of x for the three)
 *     RoPE on q, k; k, v stored in the cache at their positions
 *     a = softmax(q k^T / sqrt(head_dim), causal) v      (GQA: head h uses kv h / group)
 *     a = rmsnorm(a) * attn_sub_norm          (bitnet archs)
 *     h = h + Wo a
 *     x = rmsnorm(h) * ffn_norm
 *     f = act(Wgate x) * Wup x                (relu(g)^2 or silu(g))
 *     f = rmsnorm(f) * ffn_sub_norm           (bitnet archs)
 *     h = h + Wdown f
 * logits = output(rmsnorm(h) * output_norm), only for the tokens that need them.
 * RMSNorm: x / sqrt(mean(x^2) + eps) * w, the mean taken in double.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model_internal.h"

/* The fixed part of an attention query's cost, in key positions (the softmax pass and
 * the output copy), for balancing the threads' shares. */
#define BN_ATT_ITEM_COST 8
/* Queries that share a kv head are taken together, up to this many, so that each key
 * and value row is read once for all of them. */
#define BN_ATT_QUERIES 4

struct bn_context {
    const bn_model *m;
    int32_t  n_ctx, n_batch, n_past;
    bn_dtype kv_type;
    bool     logits_all;
    size_t   kv_elt;                /* bytes per cached value */
    int64_t  kv_dim;                /* n_head_kv * head_dim */
    uint8_t *k_cache, *v_cache;     /* [layer][n_ctx][kv_dim] */
    size_t   kv_bytes, buf_bytes, scratch_bytes;
    /* batch buffers */
    float   *x, *h, *a, *o, *q, *k, *v, *g, *u, *xf;
    int8_t  *aq;
    float   *as;
    int32_t *aqsum, *aqbsum;
    uint8_t *aq8;                   /* [n_logits] Q8_0 rows for a Q8_0/Q6_K output layer */
    float   *rope;                  /* [n_batch][n_rot / 2][2] cos, sin */
    float   *logits;                /* [n_logits][n_vocab] */
    int32_t  n_logits;              /* rows the buffer holds */
    int32_t  logits_rows;           /* rows valid after the last eval */
    int32_t  logits_first;          /* batch index of row 0 */
    int32_t  last_n;                /* tokens of the last eval */
    /* per-thread scratch */
    int      n_scratch;
    bn_linear_scratch *lsc;
    float   *att;                   /* [n_scratch][n_ctx + head_dim]: scores, then values */
    void    *scratch_mem;
};

bn_context_params bn_context_default_params(void)
{
    bn_context_params p = {0, 512, BN_F16, false};
    return p;
}

/* Per-thread scratch for n threads. */
static bn_status bn_context_scratch(bn_context *c, int n)
{
    if (n <= c->n_scratch)
        return BN_OK;
    const bn_model_info *in = &c->m->info;
    int64_t max_in = in->n_embd > in->n_ff ? in->n_embd : in->n_ff;
#define BN_AL(b) (((size_t)(b) + 63) & ~(size_t)63)
    size_t per = BN_AL(max_in) + BN_AL((size_t)(max_in / BN_QK_K + 1) * sizeof(float)) +
                 BN_AL((size_t)max_in * sizeof(float)) +
                 BN_AL((size_t)(max_in / BN_QK_K + 1 + BN_LINEAR_ROWS) * sizeof(int32_t));
#undef BN_AL
    void *mem = bn_malloc((size_t)n * per, "context");
    bn_linear_scratch *lsc = bn_malloc((size_t)n * sizeof *lsc, "context");
    if (!mem || !lsc) {
        bn_free(mem);
        bn_free(lsc);
        return bn_last_status();
    }
    uint8_t *p = mem;
    for (int i = 0; i < n; i++) {
        uint8_t *base = p + (size_t)i * per;
        size_t off = 0;
#define BN_TAKE(ptr, type, count)                                                   \
        ptr = (type *)(base + off);                                                 \
        off += ((size_t)(count) * sizeof(type) + 63) & ~(size_t)63;
        BN_TAKE(lsc[i].w, int8_t, max_in)
        BN_TAKE(lsc[i].d, float, max_in / BN_QK_K + 1)
        BN_TAKE(lsc[i].wf, float, max_in)
        BN_TAKE(lsc[i].bs, int32_t, max_in / BN_QK_K + 1 + BN_LINEAR_ROWS)
#undef BN_TAKE
    }
    /* attention scratch after the linear scratch of each thread */
    float *att = bn_malloc((size_t)n * BN_ATT_QUERIES *
                           ((size_t)c->n_ctx + (size_t)in->head_dim) * sizeof(float), "context");
    if (!att) {
        bn_free(mem);
        bn_free(lsc);
        return bn_last_status();
    }
    bn_free(c->scratch_mem);
    bn_free(c->lsc);
    bn_free(c->att);
    c->scratch_mem = mem;
    c->lsc = lsc;
    c->att = att;
    c->n_scratch = n;
    c->scratch_bytes = (size_t)n * (per + BN_ATT_QUERIES *
                                    ((size_t)c->n_ctx + (size_t)in->head_dim) * sizeof(float));
    return BN_OK;
}

bn_status bn_context_create(const bn_model *m, const bn_context_params *params,
                            bn_context **out)
{
    assert(m && out);
    bn_context_params p = params ? *params : bn_context_default_params();
    const bn_model_info *in = &m->info;
    if (p.n_ctx < 0 || p.n_batch < 0 || (p.kv_type != BN_F16 && p.kv_type != BN_F32))
        return bn_error_set(BN_ERR_INVALID_ARG, "context: n_ctx %d, n_batch %d and a KV "
                            "type of %s are not valid (f16 or f32)", p.n_ctx, p.n_batch,
                            bn_dtype_name(p.kv_type));
    int64_t kv_dim = (int64_t)in->n_head_kv * in->head_dim;
    size_t kv_elt = bn_dtype_size(p.kv_type);
    size_t per_pos = 2 * (size_t)in->n_layer * (size_t)kv_dim * kv_elt;
    int32_t n_ctx = p.n_ctx;
    if (n_ctx == 0) {
        n_ctx = in->n_ctx_train > 0 ? in->n_ctx_train : 2048;
        if (n_ctx > 1 << 24)
            n_ctx = 1 << 24;
        uint64_t avail = bn_mem_available();
        if (avail && (uint64_t)n_ctx * per_pos > avail / 2) {
            int32_t fit = (int32_t)(avail / 2 / per_pos);
            fit = fit < 256 ? 256 : fit;
            if (fit < n_ctx) {
                bn_log(BN_LOG_WARN, "context of %d positions (%.0f MiB of KV cache) does not "
                       "fit in half of the available memory; using %d", n_ctx,
                       (double)n_ctx * (double)per_pos / 1048576.0, fit);
                n_ctx = fit;
            }
        }
    } else if (in->n_ctx_train > 0 && n_ctx > in->n_ctx_train) {
        bn_log(BN_LOG_WARN, "a context of %d positions is longer than the %d the model was "
               "trained on; text beyond that may degrade", n_ctx, in->n_ctx_train);
    }
    if ((uint64_t)n_ctx > (uint64_t)1 << 24)
        return bn_error_set(BN_ERR_INVALID_ARG, "context: %d positions is too many", n_ctx);
    int32_t n_batch = p.n_batch ? p.n_batch : 512;
    if (n_batch > n_ctx)
        n_batch = n_ctx;

    bn_context *c = bn_calloc(1, sizeof *c, "context");
    if (!c)
        return bn_error_wrap(BN_OK, "creating a context");
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->kv_type = p.kv_type;
    c->kv_elt = kv_elt;
    c->kv_dim = kv_dim;
    c->logits_all = p.logits_all;
    c->n_logits = p.logits_all ? n_batch : 1;
    c->kv_bytes = (size_t)n_ctx * per_pos;

    int64_t T = n_batch, E = in->n_embd, F = in->n_ff, V = in->n_vocab;
    int64_t max_in = E > F ? E : F;
    bn_status st = BN_OK;
    c->k_cache = bn_malloc(c->kv_bytes / 2, "kv-cache");
    c->v_cache = bn_malloc(c->kv_bytes / 2, "kv-cache");
    if (!c->k_cache || !c->v_cache)
        st = bn_error_wrap(BN_OK, "a KV cache of %d positions (%.1f MiB)", n_ctx,
                           (double)c->kv_bytes / 1048576.0);
#define BN_BUF(ptr, type, count)                                                    \
    if (st == BN_OK) {                                                              \
        size_t nb_ = (size_t)(count) * sizeof(type);                                \
        if (!(ptr = bn_malloc(nb_, "context")))                                     \
            st = bn_last_status();                                                  \
        c->buf_bytes += nb_;                                                        \
    }
    BN_BUF(c->x, float, T * E)
    BN_BUF(c->h, float, T * E)
    BN_BUF(c->a, float, T * E)
    BN_BUF(c->o, float, T * E)
    BN_BUF(c->q, float, T * E)
    BN_BUF(c->k, float, T * kv_dim)
    BN_BUF(c->v, float, T * kv_dim)
    BN_BUF(c->g, float, T * F)
    BN_BUF(c->u, float, T * F)
    BN_BUF(c->xf, float, T * max_in)
    BN_BUF(c->aq, int8_t, T * max_in)
    BN_BUF(c->as, float, T)
    BN_BUF(c->aqsum, int32_t, T)
    BN_BUF(c->aqbsum, int32_t, T * (max_in / BN_QK_K + 1))
    BN_BUF(c->rope, float, T * (m->n_rot / 2) * 2 + 1)
    BN_BUF(c->logits, float, (int64_t)c->n_logits * V)
    const size_t q8row = (size_t)(E / 32) * sizeof(bn_block_q8_0);
    if (m->output.type == BN_QT_Q8_0 || m->output.type == BN_QT_Q6_K)
        BN_BUF(c->aq8, uint8_t, (int64_t)c->n_logits * (int64_t)q8row)
#undef BN_BUF
    if (st == BN_OK)
        st = bn_context_scratch(c, bn_get_num_threads());
    if (st != BN_OK) {
        bn_context_free(c);
        return bn_error_wrap(BN_OK, "creating a context");
    }
    *out = c;
    return BN_OK;
}

void bn_context_free(bn_context *c)
{
    if (!c)
        return;
    bn_free(c->k_cache);
    bn_free(c->v_cache);
    float *bufs[] = {c->x, c->h, c->a, c->o, c->q, c->k, c->v, c->g, c->u, c->xf, c->as,
                     c->rope, c->logits, c->att};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        bn_free(bufs[i]);
    bn_free(c->aq);
    bn_free(c->aqsum);
    bn_free(c->aqbsum);
    bn_free(c->aq8);
    bn_free(c->scratch_mem);
    bn_free(c->lsc);
    bn_free(c);
}

int32_t bn_context_n_ctx(const bn_context *c) { assert(c); return c->n_ctx; }
int32_t bn_context_n_batch(const bn_context *c) { assert(c); return c->n_batch; }
int32_t bn_context_n_past(const bn_context *c) { assert(c); return c->n_past; }
size_t bn_context_kv_bytes(const bn_context *c) { assert(c); return c->kv_bytes; }

size_t bn_context_buffer_bytes(const bn_context *c)
{
    assert(c);
    return c->buf_bytes + c->scratch_bytes;
}

void bn_context_truncate(bn_context *c, int32_t n_past)
{
    assert(c);
    if (n_past < 0)
        n_past = 0;
    if (n_past < c->n_past) {
        c->n_past = n_past;
        c->logits_rows = 0;
    }
}

/* ------------------------------------------------------------- forward pass */

/* RMSNorm of one row of n values: y = x / sqrt(mean(x^2) + eps) * w, the mean in double. */
static void bn_rmsnorm_row(const float *restrict x, const float *restrict w, float *restrict y,
                           int64_t n, float eps)
{
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float den = sqrtf((float)(ss / (double)n) + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] / den * w[i];
}

/* The work on the rows of a batch between two projections, as one job: per token row,
 * in this order and each step only when asked,
 *   h += o                          (the residual; `res`, `res_add`)
 *   g = act(g) * u                  (the gate; `gate`, `up`, relu^2 or silu)
 *   dst = rmsnorm(src) * norm_w     (else the codes are taken of src)
 *   the activation codes of the row (when `quant`): q, s, the sum of q and its block
 *   sums, and q as floats when a float-stored projection will read them.
 * A batch's rows are split over the pool; every row is computed by one thread with the
 * same operations, so nothing depends on the thread count. */
typedef struct bn_prep_job {
    bn_context *c;
    int64_t T, n;
    float *res;
    const float *res_add;
    float *gate;
    const float *up;
    const float *src, *norm_w;
    float *dst;
    bool quant;
} bn_prep_job;

/* h += o; local restrict pointers, so the loop is a vector loop. */
static void bn_add_row(float *restrict h, const float *restrict o, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        h[i] += o[i];
}

static void bn_prep_rows(const bn_prep_job *job, int64_t t0, int64_t t1)
{
    bn_context *c = job->c;
    const int64_t n = job->n, nb = n / BN_QK_K;
    const bool want_qf = c->m->float_proj;
    for (int64_t t = t0; t < t1; t++) {
        if (job->res)
            bn_add_row(job->res + t * n, job->res_add + t * n, n);
        if (job->gate) {
            float *restrict g = job->gate + t * n;
            const float *restrict u = job->up + t * n;
            if (c->m->ffn_act == BN_FFN_ACT_RELU2)
                bn_kernels()->relu2_mul(g, u, n);
            else
                for (int64_t i = 0; i < n; i++)
                    g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        }
        const float *x = job->src + t * n;
        if (job->norm_w) {
            bn_rmsnorm_row(x, job->norm_w, job->dst + t * n, n, c->m->info.rms_eps);
            x = job->dst + t * n;
        }
        if (!job->quant)
            continue;
        int8_t *q = c->aq + t * n;
        bn_quantize_act_i8(x, n, q, &c->as[t]);
        if (want_qf) {
            float *qf = c->xf + t * n;
            for (int64_t i = 0; i < n; i++)
                qf[i] = (float)q[i];
        }
        int32_t sum = 0;
        for (int64_t b = 0; b < nb; b++) {
            int32_t bs = 0;
            for (int64_t i = b * BN_QK_K; i < (b + 1) * BN_QK_K; i++)
                bs += q[i];
            c->aqbsum[t * nb + b] = bs;
            sum += bs;
        }
        for (int64_t i = nb * BN_QK_K; i < n; i++)
            sum += q[i];
        c->aqsum[t] = sum;
    }
}

static void bn_prep_task(void *ctx, int ith, int nth)
{
    const bn_prep_job *job = ctx;
    bn_prep_rows(job, job->T * ith / nth, job->T * (ith + 1) / nth);
}

/* Runs the job (over the pool for a batch of several tokens; a decode step's one row
 * costs less than waking the workers) and returns the activations the next projection
 * reads: the normed rows (or src), quantized when asked. */
static bn_act bn_prep(bn_prep_job *job)
{
    if (job->T >= 4)
        bn_run_on_default_pool(bn_prep_task, job);
    else
        bn_prep_rows(job, 0, job->T);
    bn_context *c = job->c;
    const float *x = job->norm_w ? job->dst : job->src;
    bn_act act = {(int32_t)job->T, job->n, x, NULL, NULL, NULL, NULL, NULL, NULL};
    if (!job->quant)
        return act;
    act.q = c->aq;
    act.s = c->as;
    act.qsum = c->aqsum;
    act.qbsum = c->aqbsum;
    act.qf = c->m->float_proj ? c->xf : NULL;
    return act;
}

/* RoPE on T rows of n_heads heads: NeoX rotates pairs (i, i + n_rot/2), NORM the
 * adjacent pairs (2i, 2i + 1), by the angle pos * theta^(-2i / n_rot). */
static void bn_rope_rows(const bn_context *c, float *x, int64_t T, int64_t n_heads)
{
    const bn_model *m = c->m;
    int64_t hd = m->info.head_dim, half = m->n_rot / 2;
    for (int64_t t = 0; t < T; t++) {
        const float *cs = c->rope + t * half * 2;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + t * n_heads * hd + h * hd;
            for (int64_t i = 0; i < half; i++) {
                int64_t i0 = m->rope == BN_ROPE_NEOX ? i : 2 * i;
                int64_t i1 = m->rope == BN_ROPE_NEOX ? i + half : 2 * i + 1;
                float x0 = v[i0], x1 = v[i1];
                v[i0] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
                v[i1] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
            }
        }
    }
}

typedef struct bn_att_job {
    bn_context *c;
    int64_t layer, T, pos0;
} bn_att_job;

/* y += a * x, a multiply then an add per element (as axpy_f16_f32_multi does). */
static void bn_axpy_f32(float a, const float *restrict x, float *restrict y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float p = a * x[i];
        y[i] = y[i] + p;
    }
}

/* softmax(scores[0 .. n_pos) * inv) in place, each weight then times 1 / (sum of the
 * exponentials, taken in double): the weights the values are summed with. */
static void bn_att_softmax(float *scores, int64_t n_pos, float inv)
{
    float mx = -INFINITY;
    for (int64_t s = 0; s < n_pos; s++) {
        float sc = scores[s] * inv;
        scores[s] = sc;
        mx = sc > mx ? sc : mx;
    }
    double sum = 0.0;
    for (int64_t s = 0; s < n_pos; s++) {
        /* below -104, expf is 0 (under half the least subnormal), but the C library
         * takes its slow underflow path (and sets errno) to say so */
        float d = scores[s] - mx;
        scores[s] = d < -104.0f ? 0.0f : expf(d);
        sum += scores[s];
    }
    float norm = (float)(1.0 / sum);
    for (int64_t s = 0; s < n_pos; s++)
        scores[s] = scores[s] * norm;
}

/* Attention of ny <= BN_ATT_QUERIES queries q[j] of kv head kvh, query j seeing key
 * positions [0, n_pos[j]); out[j] gets its weighted sum of values. Every query's floats
 * are those of taking it alone: an f16 cache goes through the kernels that read a row
 * once for several queries, bit for bit the one-query kernels. */
static void bn_att_queries(bn_context *c, int64_t layer, int64_t kvh, int ny,
                           const float *const *q, const int64_t *n_pos, float *const *scores,
                           float *const *out)
{
    const bn_kernel_table *k = bn_kernels();
    const int64_t hd = c->m->info.head_dim;
    const float inv = 1.0f / sqrtf((float)hd);
    const size_t stride = (size_t)c->kv_dim;
    const size_t off = ((size_t)layer * (size_t)c->n_ctx * stride + (size_t)(kvh * hd)) *
                       c->kv_elt;
    int64_t n_min = n_pos[0], n_max = n_pos[0];
    for (int j = 1; j < ny; j++) {
        n_min = n_pos[j] < n_min ? n_pos[j] : n_min;
        n_max = n_pos[j] > n_max ? n_pos[j] : n_max;
    }
    if (c->kv_type == BN_F16) {
        const uint16_t *kc = (const uint16_t *)(c->k_cache + off);
        const uint16_t *vc = (const uint16_t *)(c->v_cache + off);
        k->dot_f16_f32_multi(kc, stride, n_max, q, ny, hd, scores);
        for (int j = 0; j < ny; j++) {
            bn_att_softmax(scores[j], n_pos[j], inv);
            memset(out[j], 0, (size_t)hd * sizeof(float));
        }
        k->axpy_f16_f32_multi((const float *const *)scores, ny, vc, stride, n_min, out, hd);
        for (int j = 0; j < ny; j++)     /* the later positions of the later tokens */
            if (n_pos[j] > n_min) {
                const float *a = scores[j] + n_min;
                k->axpy_f16_f32_multi(&a, 1, vc + (size_t)n_min * stride, stride,
                                      n_pos[j] - n_min, &out[j], hd);
            }
        return;
    }
    const float *kc = (const float *)(c->k_cache + off);
    const float *vc = (const float *)(c->v_cache + off);
    for (int j = 0; j < ny; j++) {
        for (int64_t s = 0; s < n_pos[j]; s++)
            scores[j][s] = k->dot_f32(q[j], kc + (size_t)s * stride, hd);
        bn_att_softmax(scores[j], n_pos[j], inv);
        memset(out[j], 0, (size_t)hd * sizeof(float));
        for (int64_t s = 0; s < n_pos[j]; s++)
            bn_axpy_f32(scores[j][s], vc + (size_t)s * stride, out[j], hd);
    }
}

/* Attention of the batch, split over threads in units of the queries that share a kv
 * head: a tile of max(1, BN_ATT_QUERIES / group) tokens times the group's heads, tile
 * major. A query of token t costs about pos0 + t + 1 key positions (and a fixed part):
 * each thread takes the units whose cumulative cost starts in its share, so that the
 * threads of a causal prefill get equal work, not equal counts. */
static void bn_att_task(void *ctx, int ith, int nth)
{
    const bn_att_job *job = ctx;
    bn_context *c = job->c;
    const bn_model_info *in = &c->m->info;
    int workers = nth < c->n_scratch ? nth : c->n_scratch;
    if (ith >= workers)
        return;
    const int64_t hd = in->head_dim, KV = in->n_head_kv, group = in->n_head / KV;
    const int64_t T = job->T, pos0 = job->pos0, fixed = BN_ATT_ITEM_COST;
    const int64_t TT = group >= BN_ATT_QUERIES ? 1 : BN_ATT_QUERIES / group;
    const int64_t units = (T + TT - 1) / TT * KV;
    const int64_t total = in->n_head * (T * (pos0 + 1 + fixed) + T * (T - 1) / 2);
    const int64_t lo = total * ith / workers, hi = total * (ith + 1) / workers;
    int64_t u0 = -1, u1 = units, cum = 0;
    for (int64_t u = 0; u < units; u++) {
        if (u0 < 0 && cum >= lo)
            u0 = u;
        if (cum >= hi) {
            u1 = u;
            break;
        }
        const int64_t t0 = u / KV * TT, t1 = t0 + TT < T ? t0 + TT : T;
        for (int64_t t = t0; t < t1; t++)
            cum += group * (pos0 + t + 1 + fixed);
    }
    if (u0 < 0)
        u0 = u1;
    float *scores[BN_ATT_QUERIES], *out[BN_ATT_QUERIES];
    for (int j = 0; j < BN_ATT_QUERIES; j++) {
        scores[j] = c->att + ((size_t)ith * BN_ATT_QUERIES + (size_t)j) *
                                 ((size_t)c->n_ctx + (size_t)hd);
        out[j] = scores[j] + c->n_ctx;
    }
    for (int64_t u = u0; u < u1; u++) {
        const int64_t kvh = u % KV, t0 = u / KV * TT, t1 = t0 + TT < T ? t0 + TT : T;
        const int64_t n_items = (t1 - t0) * group;
        for (int64_t i0 = 0; i0 < n_items; i0 += BN_ATT_QUERIES) {
            const int ny = (int)(n_items - i0 < BN_ATT_QUERIES ? n_items - i0 : BN_ATT_QUERIES);
            const float *q[BN_ATT_QUERIES];
            int64_t n_pos[BN_ATT_QUERIES], dst[BN_ATT_QUERIES];
            for (int j = 0; j < ny; j++) {
                const int64_t t = t0 + (i0 + j) / group, h = kvh * group + (i0 + j) % group;
                q[j] = c->q + t * in->n_embd + h * hd;
                n_pos[j] = pos0 + t + 1;
                dst[j] = t * in->n_embd + h * hd;
            }
            bn_att_queries(c, job->layer, kvh, ny, q, n_pos, scores, out);
            for (int j = 0; j < ny; j++)
                memcpy(c->a + dst[j], out[j], (size_t)hd * sizeof(float));
        }
    }
}

/* Store T rows of k and v at positions pos0.. of a layer. */
static void bn_kv_store(bn_context *c, int64_t layer, int64_t T, int64_t pos0)
{
    const bn_kernel_table *k = bn_kernels();
    for (int64_t t = 0; t < T; t++) {
        size_t off = ((size_t)layer * (size_t)c->n_ctx + (size_t)(pos0 + t)) *
                     (size_t)c->kv_dim * c->kv_elt;
        if (c->kv_type == BN_F16) {
            k->f32_to_f16(c->k + t * c->kv_dim, (uint16_t *)(c->k_cache + off), c->kv_dim);
            k->f32_to_f16(c->v + t * c->kv_dim, (uint16_t *)(c->v_cache + off), c->kv_dim);
        } else {
            memcpy(c->k_cache + off, c->k + t * c->kv_dim, (size_t)c->kv_dim * sizeof(float));
            memcpy(c->v_cache + off, c->v + t * c->kv_dim, (size_t)c->kv_dim * sizeof(float));
        }
    }
}

/* One batch of T tokens at positions n_past..; logits for the last `n_out` tokens. */
static void bn_forward(bn_context *c, const bn_token *tokens, int64_t T, int64_t n_out)
{
    const bn_model *m = c->m;
    const bn_model_info *in = &m->info;
    const int64_t E = in->n_embd, F = in->n_ff, pos0 = c->n_past;
    const bool aq = m->act_quant;

    for (int64_t t = 0; t < T; t++)
        m->embd_to_f32((const uint8_t *)m->embd->data + (size_t)tokens[t] * m->embd_row_bytes,
                       c->h + t * E, E);
    int64_t half = m->n_rot / 2;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < half; i++) {
            double ang = (double)(pos0 + t) * pow((double)in->rope_theta,
                                                  -2.0 * (double)i / (double)m->n_rot);
            c->rope[(t * half + i) * 2] = (float)cos(ang);
            c->rope[(t * half + i) * 2 + 1] = (float)sin(ang);
        }

    /* h += o of a layer's down projection waits for the next step that reads h: the
     * next layer's attention norm, or the output norm of the rows that need logits */
    bool pending = false;
    for (int64_t il = 0; il < in->n_layer; il++) {
        const bn_layer *ly = &m->layers[il];
        /* attention */
        bn_prep_job pj = {c, T, E, pending ? c->h : NULL, c->o, NULL, NULL, c->h,
                          ly->attn_norm, c->x, aq};
        bn_act act = bn_prep(&pj);
        const bn_linear *qkv[3] = {&ly->wq, &ly->wk, &ly->wv};
        float *qkv_out[3] = {c->q, c->k, c->v};
        bn_linear_eval(qkv, qkv_out, 3, &act, aq, c->lsc, c->n_scratch);
        bn_rope_rows(c, c->q, T, in->n_head);
        bn_rope_rows(c, c->k, T, in->n_head_kv);
        bn_kv_store(c, il, T, pos0);
        bn_att_job job = {c, il, T, pos0};
        bn_run_on_default_pool(bn_att_task, &job);
        pj = (bn_prep_job){c, T, E, NULL, NULL, NULL, NULL, c->a, ly->attn_sub_norm, c->x, aq};
        act = bn_prep(&pj);
        const bn_linear *wo[1] = {&ly->wo};
        float *o_out[1] = {c->o};
        bn_linear_eval(wo, o_out, 1, &act, aq, c->lsc, c->n_scratch);

        /* feed-forward */
        pj = (bn_prep_job){c, T, E, c->h, c->o, NULL, NULL, c->h, ly->ffn_norm, c->x, aq};
        act = bn_prep(&pj);
        const bn_linear *gu[2] = {&ly->gate, &ly->up};
        float *gu_out[2] = {c->g, c->u};
        bn_linear_eval(gu, gu_out, 2, &act, aq, c->lsc, c->n_scratch);
        pj = (bn_prep_job){c, T, F, NULL, NULL, c->g, c->u, c->g, ly->ffn_sub_norm, c->u, aq};
        act = bn_prep(&pj);
        const bn_linear *dn[1] = {&ly->down};
        float *d_out[1] = {c->o};
        bn_linear_eval(dn, d_out, 1, &act, aq, c->lsc, c->n_scratch);
        pending = true;
    }

    if (n_out > 0) {
        const int64_t last = (T - n_out) * E;
        bool oq = m->output.ternary && aq;
        bn_prep_job pj = {c, n_out, E, pending ? c->h + last : NULL, c->o + last, NULL, NULL,
                          c->h + last, m->output_norm, c->x, oq};
        bn_act act = bn_prep(&pj);
        if (c->aq8) {   /* a Q8_0 or Q6_K output layer reads Q8_0 blocks of its input */
            size_t rb = (size_t)(E / 32) * sizeof(bn_block_q8_0);
            for (int64_t t = 0; t < n_out; t++)
                bn_quantize(BN_QT_Q8_0, c->x + t * E, E, 1, c->aq8 + (size_t)t * rb, rb);
            act.q8 = c->aq8;
        }
        const bn_linear *outl[1] = {&m->output};
        float *l_out[1] = {c->logits};
        bn_linear_eval(outl, l_out, 1, &act, oq, c->lsc, c->n_scratch);
    }
    c->n_past += (int32_t)T;
}

bn_status bn_eval(bn_context *c, const bn_token *tokens, int32_t n)
{
    assert(c);
    const bn_model_info *in = &c->m->info;
    if (n < 1 || !tokens)
        return bn_error_set(BN_ERR_INVALID_ARG, "evaluate: no tokens given");
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= in->n_vocab)
            return bn_error_set(BN_ERR_INVALID_ARG, "evaluate: token %d (at %d) is not in "
                                "the vocabulary of %d", tokens[i], i, in->n_vocab);
    if ((int64_t)c->n_past + n > c->n_ctx)
        return bn_error_set(BN_ERR_CONTEXT_FULL, "evaluate: %d tokens do not fit in the "
                            "context: %d of its %d positions are used, %d are left", n,
                            c->n_past, c->n_ctx, c->n_ctx - c->n_past);
    bn_status st = bn_context_scratch(c, bn_get_num_threads());
    if (st != BN_OK)
        return bn_error_wrap(st, "evaluate");
    bool all = c->logits_all && n <= c->n_batch;
    for (int32_t done = 0; done < n;) {
        int32_t T = n - done < c->n_batch ? n - done : c->n_batch;
        bool last = done + T == n;
        bn_forward(c, tokens + done, T, last ? (all ? T : 1) : 0);
        done += T;
    }
    c->last_n = n;
    c->logits_rows = all ? n : 1;
    c->logits_first = all ? 0 : n - 1;
    return BN_OK;
}

const float *bn_get_logits(const bn_context *c, int32_t i)
{
    assert(c);
    if (c->logits_rows == 0)
        return NULL;
    if (i < 0)
        i = c->last_n + i;
    int32_t row = i - c->logits_first;
    if (row < 0 || row >= c->logits_rows)
        return NULL;
    return c->logits + (size_t)row * (size_t)c->m->info.n_vocab;
}
