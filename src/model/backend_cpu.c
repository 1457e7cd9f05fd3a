/*
 * backend_cpu.c - the CPU backend: the forward pass's operations (forward.h) on the
 * kernels of the family chosen at run time and the default thread pool.
 *
 * Thread split: the per-row steps (norms, codes, adds, the FFN activation) give each
 * thread a range of rows, and run on the calling thread alone for fewer than 4 rows (a
 * decode step's row costs less than waking the workers); the projections split their
 * output rows (linear.c); attention splits the queries by their cost in key positions.
 * Every output value is computed by one thread with the same operations in the same
 * order, so results do not depend on the thread count.
 */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "model/forward.h"

/* The fixed part of an attention query's cost, in key positions (the softmax pass and
 * the output copy), for balancing the threads' shares. */
#define BN_ATT_ITEM_COST 8
/* Queries that share a kv head are taken together, up to this many, so that each key
 * and value row is read once for all of them. */
#define BN_ATT_QUERIES 4

/* Per-thread scratch: the projections' decoded rows, attention's scores and values. */
typedef struct bn_cpu_state {
    int n_threads;
    bn_linear_scratch *lsc;   /* [n_threads] */
    void  *lsc_mem;           /* what lsc points into */
    float *att;               /* [n_threads][BN_ATT_QUERIES][n_ctx + head_dim] */
    int8_t *qp;               /* [n_batch rounded up to 16][max(E, F)] the codes in the
                               * matrix kernels' layout, or NULL where the family has none */
} bn_cpu_state;

static void *bn_cpu_alloc(size_t bytes, const char *tag) { return bn_malloc(bytes, tag); }
static void bn_cpu_release(void *buf) { bn_free(buf); }

static void bn_cpu_free_state(bn_context *c)
{
    bn_cpu_state *s = c->be_state;
    if (!s)
        return;
    bn_free(s->lsc_mem);
    bn_free(s->lsc);
    bn_free(s->att);
    bn_free(s->qp);
    bn_free(s);
    c->be_state = NULL;
}

/* Scratch for the default pool's thread count; kept when it has enough already. */
static bn_status bn_cpu_prepare(bn_context *c)
{
    const int n = bn_get_num_threads();
    bn_cpu_state *old = c->be_state;
    if (old && n <= old->n_threads)
        return BN_OK;
    const bn_model_info *in = &c->m->info;
    const int64_t max_in = in->n_embd > in->n_ff ? in->n_embd : in->n_ff;
    const size_t w_bytes = (size_t)max_in;
    const size_t d_bytes = (size_t)(max_in / BN_QK_K + 1) * sizeof(float);
    const size_t wf_bytes = (size_t)max_in * sizeof(float);
    const size_t bs_bytes = (size_t)(max_in / BN_QK_K + 1 + BN_LINEAR_ROWS) * sizeof(int32_t);
    /* the matrix kernels' rows and sums (doubles: TQ2_0's), where the family has them */
    const bool matrix = bn_kernels()->dot_i2s_q8_matrix != NULL;
    const int64_t T32 = ((int64_t)c->n_batch + 31) / 32 * 32;
    const size_t mw_bytes = matrix ? BN_MATRIX_WORK(T32) : 0;
    const size_t ms_bytes = matrix ? (size_t)BN_MATRIX_ROWS * (size_t)T32 * sizeof(double) : 0;
    const size_t qp_bytes = matrix ? (size_t)(c->n_batch + 15) / 16 * 16 * (size_t)max_in : 0;
#define BN_AL(b) (((size_t)(b) + 63) & ~(size_t)63)
    const size_t per = BN_AL(w_bytes) + BN_AL(d_bytes) + BN_AL(wf_bytes) + BN_AL(bs_bytes) +
                       BN_AL(mw_bytes) + BN_AL(ms_bytes);
    const size_t att_per = BN_ATT_QUERIES * ((size_t)c->n_ctx + (size_t)in->head_dim);
    bn_cpu_state *s = bn_calloc(1, sizeof *s, "context");
    if (s) {
        s->lsc_mem = bn_malloc((size_t)n * per, "context");
        s->lsc = bn_malloc((size_t)n * sizeof *s->lsc, "context");
        s->att = bn_malloc((size_t)n * att_per * sizeof(float), "context");
        s->qp = matrix ? bn_malloc(qp_bytes, "context") : NULL;
    }
    if (!s || !s->lsc_mem || !s->lsc || !s->att || (matrix && !s->qp)) {
        if (s) {
            bn_free(s->lsc_mem);
            bn_free(s->lsc);
            bn_free(s->att);
            bn_free(s->qp);
            bn_free(s);
        }
        return bn_last_status();
    }
    for (int i = 0; i < n; i++) {
        uint8_t *p = (uint8_t *)s->lsc_mem + (size_t)i * per;
        s->lsc[i].w = (int8_t *)p;
        p += BN_AL(w_bytes);
        s->lsc[i].d = (float *)p;
        p += BN_AL(d_bytes);
        s->lsc[i].wf = (float *)p;
        p += BN_AL(wf_bytes);
        s->lsc[i].bs = (int32_t *)p;
        p += BN_AL(bs_bytes);
        s->lsc[i].mw = matrix ? p : NULL;
        p += BN_AL(mw_bytes);
        s->lsc[i].ms = matrix ? (void *)p : NULL;
    }
#undef BN_AL
    s->n_threads = n;
    bn_cpu_free_state(c);
    c->be_state = s;
    c->be_state_bytes = (size_t)n * (per + att_per * sizeof(float)) + qp_bytes;
    return BN_OK;
}

/* ------------------------------------------------------------ per-row steps */

/* A per-row step: fn over rows [t0, t1) of job. */
typedef void (*bn_rows_fn)(const void *job, int64_t t0, int64_t t1);

typedef struct bn_rows_run {
    bn_rows_fn fn;
    const void *job;
    int64_t T;
} bn_rows_run;

static void bn_rows_task(void *ctx, int ith, int nth)
{
    const bn_rows_run *run = ctx;
    run->fn(run->job, run->T * ith / nth, run->T * (ith + 1) / nth);
}

/* Runs fn over T rows: split over the pool for 4 rows or more, else on this thread. */
static void bn_rows_parallel(bn_rows_fn fn, const void *job, int64_t T)
{
    if (T >= 4) {
        bn_rows_run run = {.fn = fn, .job = job, .T = T};
        bn_run_on_default_pool(bn_rows_task, &run);
    } else {
        fn(job, 0, T);
    }
}

static void bn_cpu_embed(const bn_model *m, const bn_rows *r, float *h)
{
    const int64_t E = m->info.n_embd;
    const uint8_t *embd = m->embd->data;
    for (int64_t t = 0; t < r->T; t++)
        m->embd_to_f32(embd + (size_t)r->token[t] * m->embd_row_bytes, h + t * E, E);
}

static void bn_cpu_rope_angles(const bn_model *m, const bn_rows *r, float *rope)
{
    const int64_t half = m->n_rot / 2;
    for (int64_t t = 0; t < r->T; t++)
        for (int64_t i = 0; i < half; i++) {
            double ang = (double)r->pos[t] * pow((double)m->info.rope_theta,
                                                 -2.0 * (double)i / (double)m->n_rot);
            if (m->rope_freqs)
                ang /= (double)m->rope_freqs[i];
            rope[(t * half + i) * 2] = (float)cos(ang);
            rope[(t * half + i) * 2 + 1] = (float)sin(ang);
        }
}

typedef struct bn_norm_job {
    int64_t n;
    const float *x, *w;
    float *y;
    float eps;
} bn_norm_job;

static void bn_norm_rows(const void *ctx, int64_t t0, int64_t t1)
{
    const bn_norm_job *job = ctx;
    const int64_t n = job->n;
    bn_kernels()->rms_norm_rows(job->x + t0 * n, job->w, job->y + t0 * n, t1 - t0, n,
                                job->eps, NULL);
}

static void bn_cpu_rmsnorm(const bn_model *m, int64_t T, int64_t n, const float *x,
                           const float *w, float *y)
{
    bn_norm_job job = {.n = n, .x = x, .w = w, .y = y, .eps = m->info.rms_eps};
    bn_rows_parallel(bn_norm_rows, &job, T);
}

typedef struct bn_quant_job {
    int64_t n;
    const float *x;
    const bn_fwd_bufs *b;
    bool want_qf;
} bn_quant_job;

/* The codes of each row, their scale, their sum and the sums of each block of 256,
 * and the codes as floats when a float-stored projection reads them. */
static void bn_quant_rows(const void *ctx, int64_t t0, int64_t t1)
{
    const bn_quant_job *job = ctx;
    const bn_fwd_bufs *b = job->b;
    const int64_t n = job->n, nb = n / BN_QK_K;
    for (int64_t t = t0; t < t1; t++) {
        int8_t *q = b->aq + t * n;
        bn_quantize_act_i8(job->x + t * n, n, q, &b->as[t]);
        if (job->want_qf) {
            float *qf = b->aqf + t * n;
            for (int64_t i = 0; i < n; i++)
                qf[i] = (float)q[i];
        }
        int32_t sum = 0;
        for (int64_t k = 0; k < nb; k++) {
            int32_t bs = 0;
            for (int64_t i = k * BN_QK_K; i < (k + 1) * BN_QK_K; i++)
                bs += q[i];
            b->aqbsum[t * nb + k] = bs;
            sum += bs;
        }
        for (int64_t i = nb * BN_QK_K; i < n; i++)
            sum += q[i];
        b->aqsum[t] = sum;
    }
}

typedef struct bn_pack_job {
    const int8_t *q;
    int64_t n, T;
    int8_t *qp;
} bn_pack_job;

/* Chunks c0 .. c1 - 1 of the codes in the matrix kernels' layout, spare places zero. */
static void bn_pack_chunks(const void *ctx, int64_t c0, int64_t c1)
{
    const bn_pack_job *job = ctx;
    bn_pack_q8_matrix_chunks(job->q, job->n, job->T, c0, c1, job->qp);
}

static void bn_cpu_quantize(bn_context *c, int64_t T, int64_t n, const float *x, bn_act *act)
{
    const bn_fwd_bufs *b = &c->b;
    const bn_cpu_state *s = c->be_state;
    /* the matrix layout for steps of enough rows (its last tile's spare places zero) */
    int8_t *qp = s->qp && T >= BN_MATRIX_MIN_T && n % 64 == 0 ? s->qp : NULL;
    bn_quant_job job = {.n = n, .x = x, .b = b, .want_qf = c->m->float_proj};
    bn_rows_parallel(bn_quant_rows, &job, T);
    if (qp) {   /* split by chunks, so that no two threads write one cache line */
        bn_pack_job pack = {.q = b->aq, .n = n, .T = T, .qp = qp};
        bn_rows_parallel(bn_pack_chunks, &pack, n / 64);
    }
    *act = (bn_act){
        .T = (int32_t)T, .n = n, .x = x,
        .q = b->aq, .s = b->as, .qsum = b->aqsum, .qbsum = b->aqbsum,
        .qf = c->m->float_proj ? b->aqf : NULL, .qp = qp,
    };
}

static void bn_cpu_quantize_q8(int64_t T, int64_t n, const float *x, uint8_t *aq8)
{
    const size_t row_bytes = (size_t)(n / 32) * sizeof(bn_block_q8_0);
    for (int64_t t = 0; t < T; t++)
        bn_quantize(BN_QT_Q8_0, x + t * n, n, 1, aq8 + (size_t)t * row_bytes, row_bytes);
}

static void bn_cpu_project(bn_context *c, int count, const bn_linear *const *w,
                           const bn_act *act, bool use_q, float *const *y)
{
    bn_cpu_state *s = c->be_state;
    bn_linear_eval(w, y, count, act, use_q, s->lsc, s->n_threads);
}

/* NeoX rotates pairs (i, i + n_rot/2), NORM the adjacent pairs (2i, 2i + 1). */
static void bn_cpu_rope(const bn_model *m, int64_t T, int64_t n_heads, const float *rope,
                        float *x)
{
    const int64_t hd = m->info.head_dim, half = m->n_rot / 2;
    const bool neox = m->rope == BN_ROPE_NEOX;
    for (int64_t t = 0; t < T; t++) {
        const float *cs = rope + t * half * 2;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + t * n_heads * hd + h * hd;
            for (int64_t i = 0; i < half; i++) {
                const int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
                float x0 = v[i0], x1 = v[i1];
                v[i0] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
                v[i1] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
            }
        }
    }
}

/* Byte offset of (sequence, layer, KV head, position) in the cache. With the heads side
 * by side in each position's row instead, a head's keys were 256 bytes every 1,280 (the
 * 2B-4T shapes), which the hardware's prefetchers do not follow: eight sequences holding
 * 128 tokens spent about a tenth of a step in attention, reading the cache at a third of
 * the kernels' rate with it in the caches. */
static size_t bn_kv_offset(const bn_kv_cache *kv, int64_t seq, int64_t layer, int64_t kvh,
                           int64_t pos)
{
    const size_t n_kv = (size_t)(kv->dim / kv->head_dim);
    return ((((size_t)seq * (size_t)kv->n_layer + (size_t)layer) * n_kv + (size_t)kvh) *
                (size_t)kv->n_ctx + (size_t)pos) * (size_t)kv->head_dim * kv->elt;
}

static void bn_cpu_kv_store(bn_context *c, int64_t layer, const bn_rows *r, const float *k,
                            const float *v)
{
    const bn_kernel_table *kt = bn_kernels();
    const bn_kv_cache *kv = &c->kv;
    const int64_t hd = kv->head_dim;
    for (int64_t t = 0; t < r->T; t++)
        for (int64_t h = 0; h < kv->dim / hd; h++) {
            const size_t off = bn_kv_offset(kv, r->seq[t], layer, h, r->pos[t]);
            const float *kt_row = k + t * kv->dim + h * hd, *vt_row = v + t * kv->dim + h * hd;
            if (kv->type == BN_F16) {
                kt->f32_to_f16(kt_row, (uint16_t *)(kv->k + off), hd);
                kt->f32_to_f16(vt_row, (uint16_t *)(kv->v + off), hd);
            } else {
                memcpy(kv->k + off, kt_row, (size_t)hd * sizeof(float));
                memcpy(kv->v + off, vt_row, (size_t)hd * sizeof(float));
            }
        }
}

typedef struct bn_add_job {
    int64_t n;
    float *h;
    const float *o;
} bn_add_job;

static void bn_cpu_add_rows(const void *ctx, int64_t t0, int64_t t1)
{
    const bn_add_job *job = ctx;
    float *restrict h = job->h + t0 * job->n;
    const float *restrict o = job->o + t0 * job->n;
    const int64_t count = (t1 - t0) * job->n;
    for (int64_t i = 0; i < count; i++)
        h[i] += o[i];
}

static void bn_cpu_add(int64_t T, int64_t n, float *h, const float *o)
{
    bn_add_job job = {.n = n, .h = h, .o = o};
    bn_rows_parallel(bn_cpu_add_rows, &job, T);
}

typedef struct bn_act_job {
    int64_t n;
    float *g;
    const float *u;
    bool relu2;
} bn_act_job;

static void bn_act_rows(const void *ctx, int64_t t0, int64_t t1)
{
    const bn_act_job *job = ctx;
    for (int64_t t = t0; t < t1; t++) {
        float *restrict g = job->g + t * job->n;
        const float *restrict u = job->u + t * job->n;
        if (job->relu2)
            bn_kernels()->relu2_mul(g, u, job->n);
        else
            bn_kernels()->silu_mul(g, u, job->n);
    }
}

static void bn_cpu_ffn_act(const bn_model *m, int64_t T, int64_t n, float *g, const float *u)
{
    bn_act_job job = {.n = n, .g = g, .u = u, .relu2 = m->ffn_act == BN_FFN_ACT_RELU2};
    bn_rows_parallel(bn_act_rows, &job, T);
}

static void bn_cpu_gather(const bn_rows *r, int64_t n, const float *src, float *dst)
{
    int64_t j = 0;
    for (int64_t t = 0; t < r->T; t++)
        if (r->want[t])
            memcpy(dst + (j++) * n, src + t * n, (size_t)n * sizeof(float));
}

/* ---------------------------------------------------------------- attention */

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

/* Attention of ny <= BN_ATT_QUERIES queries q[j] of kv head kvh of one sequence, query
 * j seeing key positions [0, n_pos[j]); out[j] gets its weighted sum of values. Every
 * query's floats are those of taking it alone: an f16 cache goes through the kernels
 * that read a row once for several queries, bit for bit the one-query kernels. */
static void bn_att_queries(const bn_context *c, int64_t seq, int64_t layer, int64_t kvh,
                           int ny, const float *const *q, const int64_t *n_pos,
                           float *const *scores, float *const *out)
{
    const bn_kernel_table *k = bn_kernels();
    const bn_kv_cache *kv = &c->kv;
    const int64_t hd = c->m->info.head_dim;
    const float inv = 1.0f / sqrtf((float)hd);
    const size_t stride = (size_t)hd;
    const size_t off = bn_kv_offset(kv, seq, layer, kvh, 0);
    int64_t n_min = n_pos[0], n_max = n_pos[0];
    for (int j = 1; j < ny; j++) {
        n_min = n_pos[j] < n_min ? n_pos[j] : n_min;
        n_max = n_pos[j] > n_max ? n_pos[j] : n_max;
    }
    if (kv->type == BN_F16) {
        const uint16_t *kc = (const uint16_t *)(kv->k + off);
        const uint16_t *vc = (const uint16_t *)(kv->v + off);
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
    const float *kc = (const float *)(kv->k + off);
    const float *vc = (const float *)(kv->v + off);
    for (int j = 0; j < ny; j++) {
        for (int64_t s = 0; s < n_pos[j]; s++)
            scores[j][s] = k->dot_f32(q[j], kc + (size_t)s * stride, hd);
        bn_att_softmax(scores[j], n_pos[j], inv);
        memset(out[j], 0, (size_t)hd * sizeof(float));
        for (int64_t s = 0; s < n_pos[j]; s++)
            bn_axpy_f32(scores[j][s], vc + (size_t)s * stride, out[j], hd);
    }
}

typedef struct bn_att_job {
    const bn_context *c;
    const bn_rows *r;
    int64_t layer;
    const float *q;
    float *a;
} bn_att_job;

/* The tile of rows starting at t: up to tt rows of t's sequence. Returns its end. */
static int64_t bn_att_tile_end(const bn_rows *r, int64_t t, int64_t tt)
{
    int64_t e = t + 1;
    while (e < r->T && e - t < tt && r->seq[e] == r->seq[t])
        e++;
    return e;
}

/* Attention of the step, split over threads in units of the queries that share a kv
 * head: a tile of up to max(1, BN_ATT_QUERIES / group) rows of one sequence times the
 * group's heads, tile major. A query of row t costs about pos[t] + 1 key positions (and
 * a fixed part): each thread takes the units whose cumulative cost starts in its share,
 * so that the threads of a causal prefill get equal work, not equal counts. */
static void bn_att_task(void *ctx, int ith, int nth)
{
    const bn_att_job *job = ctx;
    const bn_context *c = job->c;
    const bn_rows *r = job->r;
    const bn_cpu_state *st = c->be_state;
    const bn_model_info *in = &c->m->info;
    const int workers = nth < st->n_threads ? nth : st->n_threads;
    if (ith >= workers)
        return;
    const int64_t hd = in->head_dim, KV = in->n_head_kv, group = in->n_head / KV;
    const int64_t E = in->n_embd, fixed = BN_ATT_ITEM_COST;
    const int64_t TT = group >= BN_ATT_QUERIES ? 1 : BN_ATT_QUERIES / group;
    int64_t total = 0;
    for (int64_t t = 0; t < r->T; t++)
        total += in->n_head * (r->pos[t] + 1 + fixed);
    const int64_t lo = total * ith / workers, hi = total * (ith + 1) / workers;
    float *scores[BN_ATT_QUERIES], *out[BN_ATT_QUERIES];
    for (int j = 0; j < BN_ATT_QUERIES; j++) {
        scores[j] = st->att + ((size_t)ith * BN_ATT_QUERIES + (size_t)j) *
                                  ((size_t)c->n_ctx + (size_t)hd);
        out[j] = scores[j] + c->n_ctx;
    }
    int64_t cum = 0;
    for (int64_t t0 = 0; t0 < r->T && cum < hi;) {
        const int64_t t1 = bn_att_tile_end(r, t0, TT);
        int64_t tile_cost = 0;
        for (int64_t t = t0; t < t1; t++)
            tile_cost += group * (r->pos[t] + 1 + fixed);
        for (int64_t kvh = 0; kvh < KV && cum < hi; kvh++, cum += tile_cost) {
            if (cum < lo)
                continue;
            const int64_t n_items = (t1 - t0) * group;
            for (int64_t i0 = 0; i0 < n_items; i0 += BN_ATT_QUERIES) {
                const int ny = (int)(n_items - i0 < BN_ATT_QUERIES ? n_items - i0
                                                                    : BN_ATT_QUERIES);
                const float *q[BN_ATT_QUERIES];
                int64_t n_pos[BN_ATT_QUERIES], dst[BN_ATT_QUERIES];
                for (int j = 0; j < ny; j++) {
                    const int64_t t = t0 + (i0 + j) / group, h = kvh * group + (i0 + j) % group;
                    q[j] = job->q + t * E + h * hd;
                    n_pos[j] = r->pos[t] + 1;
                    dst[j] = t * E + h * hd;
                }
                bn_att_queries(c, r->seq[t0], job->layer, kvh, ny, q, n_pos, scores, out);
                for (int j = 0; j < ny; j++)
                    memcpy(job->a + dst[j], out[j], (size_t)hd * sizeof(float));
            }
        }
        t0 = t1;
    }
}

static void bn_cpu_attention(bn_context *c, int64_t layer, const bn_rows *r, const float *q,
                             float *a)
{
    bn_att_job job = {.c = c, .r = r, .layer = layer, .q = q, .a = a};
    bn_run_on_default_pool(bn_att_task, &job);
}

const bn_backend bn_backend_cpu = {
    .name        = "cpu",
    .alloc       = bn_cpu_alloc,
    .release     = bn_cpu_release,
    .prepare     = bn_cpu_prepare,
    .free_state  = bn_cpu_free_state,
    .embed       = bn_cpu_embed,
    .rope_angles = bn_cpu_rope_angles,
    .rmsnorm     = bn_cpu_rmsnorm,
    .quantize    = bn_cpu_quantize,
    .quantize_q8 = bn_cpu_quantize_q8,
    .project     = bn_cpu_project,
    .rope        = bn_cpu_rope,
    .kv_store    = bn_cpu_kv_store,
    .attention   = bn_cpu_attention,
    .add         = bn_cpu_add,
    .ffn_act     = bn_cpu_ffn_act,
    .gather      = bn_cpu_gather,
};
