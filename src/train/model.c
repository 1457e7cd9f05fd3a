/*
 * model.c - the training model: its memory, planned once from the config, and its
 * forward and backward as named steps over the layers of layers.c.
 *
 * Per layer, with h the residual stream [N, E] (N = B * T rows):
 *     x = rmsnorm(h) * attn_norm;  x quantized (lambda > 0)
 *     q, k, v = x Wq^T, x Wk^T, x Wv^T;  RoPE on q and k
 *     a = causal GQA attention(q, k, v)
 *     a = rmsnorm(a) * attn_sub_norm;  quantized;  h = h + a Wo^T
 *     x = rmsnorm(h) * ffn_norm;  quantized
 *     f = relu(x Wgate^T)^2 * (x Wup^T)
 *     f = rmsnorm(f) * ffn_sub_norm;  quantized;  h = h + f Wdown^T
 * loss = cross-entropy(rmsnorm(h) * output_norm @ token_embd^T, targets).
 * The backward walks the same steps in reverse. Every buffer is carved from one
 * allocation (bn_train_model_new); the structs that point into it come from a second,
 * small one.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "train/train.h"

/* The projections of a layer, in the order of bn_train_model.linear. */
enum { BN_LIN_Q, BN_LIN_K, BN_LIN_V, BN_LIN_O, BN_LIN_GATE, BN_LIN_UP, BN_LIN_DOWN,
       BN_LIN_PER_LAYER };

/* The largest dimension and batch accepted: every size below stays far from
 * overflowing a size_t. */
#define BN_TRAIN_MAX_DIM (1 << 20)

bn_train_config bn_train_default_config(void)
{
    return (bn_train_config){.n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                             .n_ff = 128, .n_ctx = 16, .n_vocab = 96, .rms_eps = 1e-5f,
                             .rope_theta = 10000.0f};
}

bn_status bn_train_config_check(const bn_train_config *c)
{
    const struct { const char *name; int32_t v; } dims[] = {
        {"n_embd", c->n_embd}, {"n_layer", c->n_layer}, {"n_head", c->n_head},
        {"n_head_kv", c->n_head_kv}, {"n_ff", c->n_ff}, {"n_ctx", c->n_ctx},
        {"n_vocab", c->n_vocab},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v <= 0 || dims[i].v > BN_TRAIN_MAX_DIM)
            return bn_error_set(BN_ERR_INVALID_ARG, "train config: %s = %d is not in "
                                "1..%d", dims[i].name, dims[i].v, BN_TRAIN_MAX_DIM);
    if (c->n_embd % c->n_head != 0 || (c->n_embd / c->n_head) % 2 != 0)
        return bn_error_set(BN_ERR_INVALID_ARG, "train config: n_embd %d is not n_head "
                            "%d times an even head size", c->n_embd, c->n_head);
    if (c->n_head % c->n_head_kv != 0)
        return bn_error_set(BN_ERR_INVALID_ARG, "train config: n_head_kv %d does not "
                            "divide n_head %d", c->n_head_kv, c->n_head);
    if (!(c->rms_eps > 0.0f) || !isfinite(c->rms_eps))
        return bn_error_set(BN_ERR_INVALID_ARG, "train config: rms_eps %g is not a "
                            "positive number", (double)c->rms_eps);
    if (!(c->rope_theta > 0.0f) || !isfinite(c->rope_theta))
        return bn_error_set(BN_ERR_INVALID_ARG, "train config: rope_theta %g is not a "
                            "positive number", (double)c->rope_theta);
    return BN_OK;
}

/* ---------------------------------------------------------------- memory plan */

/* Hands out 64-byte aligned pieces of one block; with no block it only counts. */
typedef struct bn_carver {
    uint8_t *base;
    size_t   off;
} bn_carver;

static void *bn_carve(bn_carver *c, size_t n, size_t elt)
{
    void *p = c->base ? c->base + c->off : NULL;
    c->off += (n * elt + 63) & ~(size_t)63;
    return p;
}

static float *bn_carve_f(bn_carver *c, size_t n) { return bn_carve(c, n, sizeof(float)); }

/* Points the tensors of one flat array (params or grads) into it. */
static void bn_train_point(const bn_train_model *m, float *flat, bn_train_weights *w)
{
    const bn_train_tensor *t = m->tensors;
    w->token_embd = flat + (t++)->offset;
    for (int32_t l = 0; l < m->cfg.n_layer; l++) {
        bn_train_layer *ly = &w->layers[l];
        float **slot[] = {&ly->attn_norm, &ly->wq, &ly->wk, &ly->wv, &ly->attn_sub_norm,
                          &ly->wo, &ly->ffn_norm, &ly->gate, &ly->up, &ly->ffn_sub_norm,
                          &ly->down};
        for (size_t i = 0; i < sizeof slot / sizeof slot[0]; i++)
            *slot[i] = flat + (t++)->offset;
    }
    w->output_norm = flat + t->offset;
}

/* Appends a tensor [rows, cols] to the table, after those already in it. */
static void bn_train_add_tensor(bn_train_model *m, const char *name, int64_t rows,
                                int64_t cols)
{
    bn_train_tensor *t = &m->tensors[m->n_tensors];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->offset = m->n_params;
    t->decay = rows > 1;    /* the matrices and the embedding, not the norm weights */
    m->n_params += (size_t)(rows * cols);
    m->n_tensors++;
}

/* The tensor table: names, shapes and offsets in the order of train_ref.py. */
static void bn_train_table(bn_train_model *m)
{
    const bn_train_config *c = &m->cfg;
    const int64_t E = c->n_embd, F = c->n_ff, KVD = (int64_t)c->n_head_kv * (E / c->n_head);
    static const char *const names[] = {"attn_norm", "attn_q", "attn_k", "attn_v",
                                        "attn_sub_norm", "attn_output", "ffn_norm",
                                        "ffn_gate", "ffn_up", "ffn_sub_norm", "ffn_down"};
    const int64_t shapes[][2] = {{1, E}, {E, E}, {KVD, E}, {KVD, E}, {1, E}, {E, E},
                                 {1, E}, {F, E}, {F, E}, {1, F}, {E, F}};
    m->n_tensors = 0;
    m->n_params = 0;
    bn_train_add_tensor(m, "token_embd", c->n_vocab, E);
    for (int32_t l = 0; l < c->n_layer; l++)
        for (int i = 0; i < 11; i++) {
            char name[40];
            snprintf(name, sizeof name, "blk.%d.%s", (int)l, names[i]);
            bn_train_add_tensor(m, name, shapes[i][0], shapes[i][1]);
        }
    bn_train_add_tensor(m, "output_norm", 1, E);
}

/* Carves every buffer of the model from c (counting only, when c has no block). */
static void bn_train_layout(bn_train_model *m, bn_carver *c)
{
    const bn_train_config *cf = &m->cfg;
    const size_t E = (size_t)cf->n_embd, F = (size_t)cf->n_ff, T = (size_t)cf->n_ctx;
    const size_t H = (size_t)cf->n_head, hd = E / H;
    const size_t KVD = (size_t)cf->n_head_kv * hd, V = (size_t)cf->n_vocab;
    const size_t B = (size_t)m->B, N = B * T, P = m->n_params;

    m->params = bn_carve_f(c, P);
    m->grads = bn_carve_f(c, P);
    m->adam_m = bn_carve_f(c, P);
    m->adam_v = bn_carve_f(c, P);
    for (int32_t i = 0; i < m->n_linear; i++) {
        bn_train_linear *lin = &m->linear[i];
        lin->codes = bn_carve(c, (size_t)(lin->n_out * lin->n_in), 1);
        lin->w_eff = bn_carve_f(c, (size_t)(lin->n_out * lin->n_in));
        lin->i2s = lin->n_in % 128 == 0 ? bn_carve(c, (size_t)(lin->n_out * lin->n_in / 4), 1)
                                        : NULL;
    }
    m->rope = bn_carve_f(c, T * hd);
    m->tokens = bn_carve(c, N, sizeof(int32_t));
    m->targets = bn_carve(c, N, sizeof(int32_t));
    for (int32_t l = 0; l < cf->n_layer; l++) {
        bn_train_layer_acts *a = &m->acts[l];
        a->h_in = bn_carve_f(c, N * E);
        a->attn_rstd = bn_carve_f(c, N);
        a->attn_in = (bn_train_input){bn_carve_f(c, N * E), bn_carve(c, N * E, 1),
                                      bn_carve_f(c, N)};
        a->q = bn_carve_f(c, N * E);
        a->k = bn_carve_f(c, N * KVD);
        a->v = bn_carve_f(c, N * KVD);
        a->probs = bn_carve_f(c, B * H * T * T);
        a->att = bn_carve_f(c, N * E);
        a->att_rstd = bn_carve_f(c, N);
        a->attn_out = (bn_train_input){bn_carve_f(c, N * E), bn_carve(c, N * E, 1),
                                       bn_carve_f(c, N)};
        a->h_mid = bn_carve_f(c, N * E);
        a->ffn_rstd = bn_carve_f(c, N);
        a->ffn_in = (bn_train_input){bn_carve_f(c, N * E), bn_carve(c, N * E, 1),
                                     bn_carve_f(c, N)};
        a->gate = bn_carve_f(c, N * F);
        a->up = bn_carve_f(c, N * F);
        a->act = bn_carve_f(c, N * F);
        a->act_rstd = bn_carve_f(c, N);
        a->ffn_out = (bn_train_input){bn_carve_f(c, N * F), bn_carve(c, N * F, 1),
                                      bn_carve_f(c, N)};
    }
    m->h_out = bn_carve_f(c, N * E);
    m->out_rstd = bn_carve_f(c, N);
    m->x_out = bn_carve_f(c, N * E);
    m->probs = bn_carve_f(c, N * V);
    m->o = bn_carve_f(c, N * E);
    bn_train_grad_bufs *d = &m->d;
    d->dh = bn_carve_f(c, N * E);
    d->dx = bn_carve_f(c, N * E);
    d->dq = bn_carve_f(c, N * E);
    d->dk = bn_carve_f(c, N * KVD);
    d->dv = bn_carve_f(c, N * KVD);
    d->datt = bn_carve_f(c, N * E);
    d->dg = bn_carve_f(c, N * F);
    d->du = bn_carve_f(c, N * F);
    d->dff = bn_carve_f(c, N * F);
    d->dact = bn_carve_f(c, N * F);
    d->dp = bn_carve(c, T, sizeof(double));
    d->acc = bn_carve(c, E > F ? E : F, sizeof(double));
    m->gemm_a = bn_carve(c, m->gemm_a_cap, sizeof(double));
    m->gemm_c = bn_carve(c, m->gemm_c_cap, sizeof(double));
    m->row_loss = bn_carve(c, N, sizeof(double));
}

/* Points each projection at its weights and gradient. */
static void bn_train_link(bn_train_model *m)
{
    for (int32_t l = 0; l < m->cfg.n_layer; l++) {
        const bn_train_layer *w = &m->w.layers[l], *g = &m->g.layers[l];
        const float *ws[] = {w->wq, w->wk, w->wv, w->wo, w->gate, w->up, w->down};
        float *gs[] = {g->wq, g->wk, g->wv, g->wo, g->gate, g->up, g->down};
        for (int i = 0; i < BN_LIN_PER_LAYER; i++) {
            bn_train_linear *lin = &m->linear[l * BN_LIN_PER_LAYER + i];
            lin->w = ws[i];
            lin->dw = gs[i];
            lin->w_used = ws[i];
        }
    }
}

/* The shapes of the projections: [n_out, n_in]. */
static void bn_train_linear_shapes(bn_train_model *m)
{
    const int64_t E = m->cfg.n_embd, F = m->cfg.n_ff;
    const int64_t KVD = (int64_t)m->cfg.n_head_kv * (E / m->cfg.n_head);
    const int64_t shape[BN_LIN_PER_LAYER][2] = {{E, E}, {KVD, E}, {KVD, E}, {E, E},
                                                {F, E}, {F, E}, {E, F}};
    for (int32_t i = 0; i < m->n_linear; i++) {
        m->linear[i].n_out = shape[i % BN_LIN_PER_LAYER][0];
        m->linear[i].n_in = shape[i % BN_LIN_PER_LAYER][1];
    }
}

/* cos and sin of t * theta^(-2i / hd), the angle in double (as the engine). */
static void bn_train_rope_table(bn_train_model *m)
{
    const int64_t hd = m->cfg.n_embd / m->cfg.n_head, half = hd / 2;
    for (int64_t t = 0; t < m->cfg.n_ctx; t++)
        for (int64_t i = 0; i < half; i++) {
            double ang = (double)t * pow((double)m->cfg.rope_theta,
                                         -2.0 * (double)i / (double)hd);
            m->rope[(t * half + i) * 2] = (float)cos(ang);
            m->rope[(t * half + i) * 2 + 1] = (float)sin(ang);
        }
}

bn_status bn_train_model_new(const bn_train_config *cfg, int32_t B, bn_train_model **out)
{
    *out = NULL;
    bn_status st = bn_train_config_check(cfg);
    if (st != BN_OK)
        return st;
    if (B <= 0 || B > BN_TRAIN_MAX_DIM)
        return bn_error_set(BN_ERR_INVALID_ARG, "train: batch of %d sequences is not in "
                            "1..%d", B, BN_TRAIN_MAX_DIM);
    /* the largest buffers, in double: refuse what no machine holds before any size_t
     * product could wrap */
    const double N = (double)B * cfg->n_ctx, E = cfg->n_embd;
    const double big = N * (cfg->n_vocab + 16.0 * cfg->n_ff + 16.0 * E) * cfg->n_layer +
                       (double)B * cfg->n_head * cfg->n_ctx * cfg->n_ctx * cfg->n_layer +
                       20.0 * (E * cfg->n_vocab + 4.0 * E * E * cfg->n_layer +
                               3.0 * E * cfg->n_ff * cfg->n_layer);
    if (big * sizeof(float) > 0x1p46)
        return bn_error_set(BN_ERR_OOM, "train: a model of this shape and batch needs "
                            "about %.0f GB", big * sizeof(float) / 1e9);

    const int32_t L = cfg->n_layer, n_tensors = 2 + 11 * L, n_linear = BN_LIN_PER_LAYER * L;
    const size_t head = sizeof(bn_train_model) + (size_t)n_tensors * sizeof(bn_train_tensor) +
                        2 * (size_t)L * sizeof(bn_train_layer) +
                        (size_t)n_linear * sizeof(bn_train_linear) +
                        (size_t)L * sizeof(bn_train_layer_acts);
    uint8_t *h = bn_calloc(1, head, "train");
    if (!h)
        return bn_last_status();
    bn_train_model *m = (bn_train_model *)h;
    h += sizeof *m;
    m->tensors = (bn_train_tensor *)h;
    h += (size_t)n_tensors * sizeof(bn_train_tensor);
    m->w.layers = (bn_train_layer *)h;
    h += (size_t)L * sizeof(bn_train_layer);
    m->g.layers = (bn_train_layer *)h;
    h += (size_t)L * sizeof(bn_train_layer);
    m->linear = (bn_train_linear *)h;
    h += (size_t)n_linear * sizeof(bn_train_linear);
    m->acts = (bn_train_layer_acts *)h;

    m->cfg = *cfg;
    m->B = B;
    m->n_linear = n_linear;
    bn_train_table(m);
    bn_train_linear_shapes(m);
    bn_train_fast_plan(m);
    bn_carver count = {NULL, 0};
    bn_train_layout(m, &count);
    m->mem = bn_malloc(count.off, "train");
    if (!m->mem) {
        bn_free(m);
        return bn_last_status();
    }
    /* huge pages where the system grants them (asked before the memory is first
     * written): the products read the logits' rows, 128 KB apart at a vocabulary of
     * 32000, a few floats at a time */
    bn_advise_huge(m->mem, count.off);
    memset(m->mem, 0, count.off);
    m->bytes = count.off;
    bn_carver carve = {m->mem, 0};
    bn_train_layout(m, &carve);
    assert(carve.off == count.off);
    bn_train_point(m, m->params, &m->w);
    bn_train_point(m, m->grads, &m->g);
    bn_train_link(m);
    bn_train_rope_table(m);
    st = bn_train_set_threads(m, 1);
    if (st != BN_OK) {
        bn_train_model_free(m);
        return st;
    }
    *out = m;
    return BN_OK;
}

void bn_train_model_free(bn_train_model *m)
{
    if (!m)
        return;
    if (m->pool)
        bn_threadpool_free(m->pool);
    bn_free(m->thread_mem);
    bn_free(m->mem);
    bn_free(m);
}

const bn_train_tensor *bn_train_tensor_find(const bn_train_model *m, const char *name)
{
    for (int32_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

/* ---------------------------------------------------------------- initialization */

/* splitmix64: a small generator whose stream is the same everywhere. */
static uint64_t bn_train_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A standard normal value by Box-Muller, from two uniforms in (0, 1]. */
static double bn_train_randn(uint64_t *s)
{
    double u1 = ((double)(bn_train_rand(s) >> 11) + 1.0) * 0x1p-53;
    double u2 = (double)(bn_train_rand(s) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void bn_train_init_params(bn_train_model *m, uint64_t seed)
{
    uint64_t s = seed;
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const bn_train_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const int64_t n = t->rows * t->cols;
        for (int64_t j = 0; j < n; j++)
            p[j] = t->rows > 1 ? (float)(0.02 * bn_train_randn(&s)) : 1.0f;
    }
    memset(m->adam_m, 0, m->n_params * sizeof(float));
    memset(m->adam_v, 0, m->n_params * sizeof(float));
    memset(m->grads, 0, m->n_params * sizeof(float));
    m->step = 0;
}

/* ---------------------------------------------------------------- forward */

bn_status bn_train_forward(bn_train_model *m, const int32_t *tokens, const int32_t *targets,
                           float lambda, float *loss)
{
    const bn_train_config *c = &m->cfg;
    const int64_t B = m->B, T = c->n_ctx, N = B * T, E = c->n_embd, F = c->n_ff;
    const int64_t H = c->n_head, KV = c->n_head_kv, V = c->n_vocab;
    const float eps = c->rms_eps;
    if (!(lambda >= 0.0f && lambda <= 1.0f))
        return bn_error_set(BN_ERR_INVALID_ARG, "train: quantization strength %g is not "
                            "in [0, 1]", (double)lambda);
    for (int64_t i = 0; i < N; i++)
        if (tokens[i] < 0 || tokens[i] >= V || targets[i] < 0 || targets[i] >= V)
            return bn_error_set(BN_ERR_INVALID_ARG, "train: token %d or target %d at "
                                "position %lld is not in 0..%lld", tokens[i], targets[i],
                                (long long)i, (long long)(V - 1));
    for (int32_t i = 0; i < m->n_linear; i++) {
        bn_status st = bn_train_fast_linear_prepare(m, &m->linear[i], lambda);
        if (st != BN_OK)
            return bn_error_wrap(st, "train: projection %d of layer %d", (int)(i % 7),
                                 (int)(i / 7));
    }
    memcpy(m->tokens, tokens, (size_t)N * sizeof(int32_t));
    memcpy(m->targets, targets, (size_t)N * sizeof(int32_t));
    m->lambda = lambda;

    bn_train_embed_forward(m->acts[0].h_in, m->tokens, m->w.token_embd, N, E);
    for (int32_t l = 0; l < c->n_layer; l++) {
        bn_train_layer_acts *a = &m->acts[l];
        const bn_train_layer *ly = &m->w.layers[l];
        const bn_train_linear *lin = &m->linear[l * BN_LIN_PER_LAYER];

        /* attention */
        bn_train_fast_rmsnorm_forward(m, a->attn_in.x, a->attn_rstd, a->h_in, ly->attn_norm,
                                      N, E, eps);
        bn_train_fast_input_quantize(m, &a->attn_in, N, E, lambda);
        bn_train_fast_linear_forward(m, a->q, &lin[BN_LIN_Q], &a->attn_in, N, lambda);
        bn_train_fast_linear_forward(m, a->k, &lin[BN_LIN_K], &a->attn_in, N, lambda);
        bn_train_fast_linear_forward(m, a->v, &lin[BN_LIN_V], &a->attn_in, N, lambda);
        bn_train_fast_rope(m, a->q, B, H, false);
        bn_train_fast_rope(m, a->k, B, KV, false);
        bn_train_fast_attention_forward(m, a->att, a->probs, a->q, a->k, a->v, B);
        bn_train_fast_rmsnorm_forward(m, a->attn_out.x, a->att_rstd, a->att,
                                      ly->attn_sub_norm, N, E, eps);
        bn_train_fast_input_quantize(m, &a->attn_out, N, E, lambda);
        bn_train_fast_linear_forward(m, m->o, &lin[BN_LIN_O], &a->attn_out, N, lambda);
        bn_train_fast_residual_forward(m, a->h_mid, a->h_in, m->o, N * E);

        /* feed-forward */
        bn_train_fast_rmsnorm_forward(m, a->ffn_in.x, a->ffn_rstd, a->h_mid, ly->ffn_norm,
                                      N, E, eps);
        bn_train_fast_input_quantize(m, &a->ffn_in, N, E, lambda);
        bn_train_fast_linear_forward(m, a->gate, &lin[BN_LIN_GATE], &a->ffn_in, N, lambda);
        bn_train_fast_linear_forward(m, a->up, &lin[BN_LIN_UP], &a->ffn_in, N, lambda);
        bn_train_fast_relu2_forward(m, a->act, a->gate, a->up, N * F);
        bn_train_fast_rmsnorm_forward(m, a->ffn_out.x, a->act_rstd, a->act,
                                      ly->ffn_sub_norm, N, F, eps);
        bn_train_fast_input_quantize(m, &a->ffn_out, N, F, lambda);
        bn_train_fast_linear_forward(m, m->o, &lin[BN_LIN_DOWN], &a->ffn_out, N, lambda);
        float *h_next = l + 1 < c->n_layer ? m->acts[l + 1].h_in : m->h_out;
        bn_train_fast_residual_forward(m, h_next, a->h_mid, m->o, N * E);
    }

    /* tied output and loss */
    bn_train_fast_rmsnorm_forward(m, m->x_out, m->out_rstd, m->h_out, m->w.output_norm, N,
                                  E, eps);
    double l = bn_train_fast_output_forward(m, m->probs, m->x_out, m->w.token_embd,
                                            m->targets, N);
    m->loss = (float)l;
    m->have_forward = true;
    *loss = m->loss;
    if (!isfinite(l))
        return bn_error_set(BN_ERR_NUMERIC, "train: the loss is %g", l);
    return BN_OK;
}

/* ---------------------------------------------------------------- backward */

static void bn_zero(float *x, int64_t n) { memset(x, 0, (size_t)n * sizeof(float)); }

void bn_train_backward(bn_train_model *m, float loss_scale)
{
    assert(m->have_forward);   /* once per forward: it consumes the probabilities */
    m->have_forward = false;
    const bn_train_config *c = &m->cfg;
    const int64_t B = m->B, T = c->n_ctx, N = B * T, E = c->n_embd, F = c->n_ff;
    const int64_t H = c->n_head, KV = c->n_head_kv, hd = E / H;
    const int64_t KVD = KV * hd;
    bn_train_grad_bufs *d = &m->d;

    /* tied output and the final norm: dh = d loss / d h_out */
    bn_zero(d->dx, N * E);
    bn_zero(d->dh, N * E);
    bn_train_fast_output_backward(m, d->dx, m->g.token_embd, m->probs, m->x_out,
                                  m->w.token_embd, m->targets, N, loss_scale);
    bn_train_fast_rmsnorm_backward(m, d->dh, m->g.output_norm, d->dx, m->h_out,
                                   m->w.output_norm, m->out_rstd, N, E);

    for (int32_t l = c->n_layer - 1; l >= 0; l--) {
        const bn_train_layer_acts *a = &m->acts[l];
        const bn_train_layer *ly = &m->w.layers[l];
        bn_train_layer *gl = &m->g.layers[l];
        bn_train_linear *lin = &m->linear[l * BN_LIN_PER_LAYER];

        /* feed-forward: h_out = h_mid + down(...); dh reaches both unchanged */
        bn_zero(d->dff, N * F);
        bn_zero(d->dact, N * F);
        bn_zero(d->dg, N * F);
        bn_zero(d->du, N * F);
        bn_zero(d->dx, N * E);
        bn_train_fast_linear_backward(m, d->dff, &lin[BN_LIN_DOWN], d->dh, &a->ffn_out, N);
        bn_train_fast_rmsnorm_backward(m, d->dact, gl->ffn_sub_norm, d->dff, a->act,
                                       ly->ffn_sub_norm, a->act_rstd, N, F);
        bn_train_fast_relu2_backward(m, d->dg, d->du, d->dact, a->gate, a->up, N * F);
        bn_train_fast_linear_backward(m, d->dx, &lin[BN_LIN_GATE], d->dg, &a->ffn_in, N);
        bn_train_fast_linear_backward(m, d->dx, &lin[BN_LIN_UP], d->du, &a->ffn_in, N);
        bn_train_fast_rmsnorm_backward(m, d->dh, gl->ffn_norm, d->dx, a->h_mid, ly->ffn_norm,
                                       a->ffn_rstd, N, E);   /* dh = d h_mid */

        /* attention: h_mid = h_in + o(...) */
        bn_zero(d->dx, N * E);
        bn_zero(d->datt, N * E);
        bn_zero(d->dq, N * E);
        bn_zero(d->dk, N * KVD);
        bn_zero(d->dv, N * KVD);
        bn_train_fast_linear_backward(m, d->dx, &lin[BN_LIN_O], d->dh, &a->attn_out, N);
        bn_train_fast_rmsnorm_backward(m, d->datt, gl->attn_sub_norm, d->dx, a->att,
                                       ly->attn_sub_norm, a->att_rstd, N, E);
        bn_train_fast_attention_backward(m, d->dq, d->dk, d->dv, d->datt, a->probs, a->q,
                                         a->k, a->v, B);
        bn_train_fast_rope(m, d->dq, B, H, true);
        bn_train_fast_rope(m, d->dk, B, KV, true);
        bn_zero(d->dx, N * E);
        bn_train_fast_linear_backward(m, d->dx, &lin[BN_LIN_Q], d->dq, &a->attn_in, N);
        bn_train_fast_linear_backward(m, d->dx, &lin[BN_LIN_K], d->dk, &a->attn_in, N);
        bn_train_fast_linear_backward(m, d->dx, &lin[BN_LIN_V], d->dv, &a->attn_in, N);
        bn_train_fast_rmsnorm_backward(m, d->dh, gl->attn_norm, d->dx, a->h_in, ly->attn_norm,
                                       a->attn_rstd, N, E);  /* dh = d h_in */
    }
    bn_train_fast_embed_backward(m, m->g.token_embd, d->dh, m->tokens, N, E);
}
