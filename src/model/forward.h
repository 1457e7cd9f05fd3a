/*
 * forward.h - the pieces the forward pass is made of: the rows of one step, the KV
 * cache, the context's buffers (each with its shape), and the backend table whose
 * operations the forward calls one after the other.
 *
 * Shapes use E = n_embd, F = n_ff, KVD = n_head_kv * head_dim, V = n_vocab,
 * T = the rows of one step (at most n_batch), N = the rows that want logits.
 *
 * A backend implements every operation of bn_backend on buffers it allocated itself
 * (bn_backend.alloc), so that a device backend can keep activations and the KV cache in
 * device memory. The CPU backend (backend_cpu.c) is the reference: its results are the
 * ones every test checks, and they do not depend on the thread count, because each
 * output value is computed by one thread in a fixed order.
 */
#ifndef BN_FORWARD_H
#define BN_FORWARD_H

#include "model/model_internal.h"

/* The rows of one forward step: T tokens, row t appended to sequence seq[t] at
 * position pos[t]. Rows of one sequence come in position order and follow the
 * sequence's cached positions without a gap; rows of different sequences interleave
 * freely. want[t] says whether row t's logits are computed. */
typedef struct bn_rows {
    int32_t         T;
    const bn_token *token;   /* [T] */
    const int32_t  *pos;     /* [T] */
    const int32_t  *seq;     /* [T] */
    const bool     *want;    /* [T] */
    int32_t         n_want;  /* rows with want[t] set */
} bn_rows;

/* The KV cache: the keys and values of every sequence, layer and position, rounded to
 * `type` (f16 or f32) when stored. Sequence s, layer l, position p, kv head h: element
 * ((s * n_layer + l) * n_ctx + p) * dim + h * head_dim. */
typedef struct bn_kv_cache {
    bn_dtype type;
    size_t   elt;                 /* bytes per value */
    int64_t  dim;                 /* KVD = n_head_kv * head_dim */
    int64_t  head_dim;
    int32_t  n_ctx, n_layer, n_seq;
    uint8_t *k, *v;               /* [n_seq][n_layer][n_head_kv][n_ctx][head_dim]: a
                                   * head's rows of a layer lie together, position after
                                   * position, and attention reads them as one run */
    size_t   bytes;               /* of k and v together */
} bn_kv_cache;

/* The buffers of one step, allocated once by the backend for T = n_batch rows. */
typedef struct bn_fwd_bufs {
    float   *h;       /* [T, E]  the residual stream */
    float   *x;       /* [T, E]  a norm's output: the input of the next projections */
    float   *q;       /* [T, E]  queries (n_head * head_dim = E) */
    float   *k, *v;   /* [T, KVD] this step's keys and values, before the cache */
    float   *a;       /* [T, E]  attention output (the heads side by side) */
    float   *o;       /* [T, E]  the output of Wo, then of Wdown: added to h */
    float   *g, *u;   /* [T, F]  gate and up; then act(g) * u in g, its sub-norm in u */
    float   *rope;    /* [T][n_rot / 2][2] cos and sin of each row's angles */
    /* the activation codes of the rows entering a projection (bn_act) */
    int8_t  *aq;      /* [T, max(E, F)] int8 codes */
    float   *as;      /* [T] their scales */
    int32_t *aqsum;   /* [T] the sum of each row's codes */
    int32_t *aqbsum;  /* [T][max(E, F) / 256 + 1] sums per block of 256 codes */
    float   *aqf;     /* [T, max(E, F)] the codes as floats (float-stored projections) */
    uint8_t *aq8;     /* [N][E / 32] Q8_0 blocks for a Q8_0/Q6_K output layer, or NULL */
    float   *logits;  /* [n_logits, V] */
    size_t   bytes;   /* all of the above */
} bn_fwd_bufs;

struct bn_context;

/* A backend: the operations of the forward pass. Every operation works on T rows
 * (given as an argument or by `r`); "in place" is said where an argument is both read
 * and written; otherwise input and output buffers do not overlap. */
typedef struct bn_backend {
    const char *name;

    /* Lifetime. alloc/release: a buffer of `bytes` that the operations may read and
     * write (tag names it in memory reports); NULL when out of memory. prepare: make
     * the backend's own state (per-thread scratch on the CPU) fit the current thread
     * count; called before each step, a no-op when nothing changed. free_state: the
     * state prepare made. */
    void     *(*alloc)(size_t bytes, const char *tag);
    void      (*release)(void *buf);
    bn_status (*prepare)(struct bn_context *c);
    void      (*free_state)(struct bn_context *c);

    /* h[t] = the embedding row of token[t]. h: [T, E]. */
    void (*embed)(const bn_model *m, const bn_rows *r, float *h);
    /* The RoPE angles of each row's position: rope[t][i] = cos, sin of
     * pos[t] * theta^(-2i / n_rot) (divided by rope_freqs[i] when the model has
     * frequency factors), taken in double. rope: [T][n_rot / 2][2]. */
    void (*rope_angles)(const bn_model *m, const bn_rows *r, float *rope);
    /* y = x / sqrt(mean(x^2) + eps) * w per row, the mean in double. x, y: [T, n];
     * w: [n]. */
    void (*rmsnorm)(const bn_model *m, int64_t T, int64_t n, const float *x,
                    const float *w, float *y);
    /* The int8 codes of x per row (numerics contract: s = 127 / max|x|), their sums,
     * block sums and float copies, into the buffers of bn_fwd_bufs; act describes
     * them for bn_linear_eval. x: [T, n]. */
    void (*quantize)(struct bn_context *c, int64_t T, int64_t n, const float *x,
                     bn_act *act);
    /* Q8_0 blocks of x for a Q8_0 or Q6_K output layer: aq8 [T][n / 32]. */
    void (*quantize_q8)(int64_t T, int64_t n, const float *x, uint8_t *aq8);
    /* y[i] = w[i] x for `count` projections that read the same input: y[i] is
     * [T, w[i]->n_out]. use_q: from the codes of act (ternary, act-quant on). */
    void (*project)(struct bn_context *c, int count, const bn_linear *const *w,
                    const bn_act *act, bool use_q, float *const *y);
    /* RoPE in place on the n_heads heads of each row of x: [T, n_heads * head_dim]. */
    void (*rope)(const bn_model *m, int64_t T, int64_t n_heads, const float *rope,
                 float *x);
    /* Stores each row's k and v ([T, KVD]) in the cache of its sequence, layer and
     * position. */
    void (*kv_store)(struct bn_context *c, int64_t layer, const bn_rows *r,
                     const float *k, const float *v);
    /* Causal attention of each row's queries over its sequence's cached positions
     * 0 .. pos[t] of the layer (GQA: head h reads kv head h / (n_head / n_head_kv)):
     * a[t] = softmax(q k^T / sqrt(head_dim)) v. q, a: [T, E]. */
    void (*attention)(struct bn_context *c, int64_t layer, const bn_rows *r,
                      const float *q, float *a);
    /* h += o in place. h, o: [T, n]. */
    void (*add)(int64_t T, int64_t n, float *h, const float *o);
    /* g = act(g) * u in place, act relu(g)^2 or silu(g). g, u: [T, n]. */
    void (*ffn_act)(const bn_model *m, int64_t T, int64_t n, float *g, const float *u);
    /* dst[j] = src[row j of the rows that want logits]. src: [T, n]; dst: [N, n]. */
    void (*gather)(const bn_rows *r, int64_t n, const float *src, float *dst);
} bn_backend;

extern const bn_backend bn_backend_cpu;

/* The context: a model, its KV cache, the step buffers and the sequences' state. */
struct bn_context {
    const bn_model   *m;
    const bn_backend *be;
    void             *be_state;        /* the backend's own (CPU: per-thread scratch) */
    size_t            be_state_bytes;  /* its size, for bn_context_buffer_bytes */
    int32_t  n_ctx, n_batch, n_seq;
    bool     logits_all;
    bn_kv_cache kv;
    bn_fwd_bufs b;
    int32_t  n_logits;            /* rows the logits buffer holds */
    int32_t *n_past;              /* [n_seq] positions each sequence uses */
    /* a batch being evaluated */
    int32_t *seq_next;            /* [n_seq] the next position of each sequence */
    int32_t *seq_last;            /* [n_seq] its last token in the batch, -1: none */
    int32_t *row_pos, *row_seq;   /* [n_batch] the rows of one step */
    bool    *row_want;            /* [n_batch] */
    /* the logits of the last evaluation: row j holds those of its token logits_tok[j]
     * (-1 once its sequence was truncated), of sequence logits_seq[j] */
    int32_t *logits_tok;          /* [n_logits], ascending */
    int32_t *logits_seq;          /* [n_logits] */
    int32_t  logits_valid;        /* rows of logits written by the last evaluation */
    int32_t  last_n;              /* tokens of the last evaluation */
};

/* One forward step over the rows r (T <= n_batch); the logits of the rows that want
 * them go to b.logits from row `logits0` on. */
void bn_forward(struct bn_context *c, const bn_rows *r, int32_t logits0);

#endif
