/*
 * train.h - quantization-aware training of BitNet b1.58 models (internal API).
 *
 * The model trained is the one the engine runs (arch bitnet-b1.58): token embedding,
 * per layer RMSNorm, q/k/v BitLinear projections, NeoX RoPE, causal GQA attention, the
 * attention sub-norm, the output BitLinear, a residual add, RMSNorm, the gated
 * squared-ReLU FFN (relu(gate)^2 * up) with its sub-norm before the down BitLinear, a
 * residual add; then the final RMSNorm and the tied output (logits = x @ embedding^T)
 * with a softmax cross-entropy loss.
 *
 * Written in the manner of llm.c: every layer is a pair of functions, its forward and
 * its backward, side by side (layers.c); the model's forward and backward call them in
 * order (model.c); parameters, gradients, AdamW moments, the activations kept for the
 * backward and the backward's scratch are carved out of one allocation planned from
 * the config, so nothing is allocated per step. layers.c is the scalar reference:
 * plain loops, one thread, every sum in a fixed order, every dot product accumulated
 * in double and rounded once (docs/TRAINING.md says why); fast.c runs the same steps on
 * the model's threads and the kernels' tiles, with the same bits for any thread count
 * (bn_train_set_threads). scripts/fixtures/train_ref.py (PyTorch autograd) is the judge
 * of every gradient (tests/test_train_grad.c).
 *
 * Quantization strength lambda (per forward): 0 trains a float model; 1 is BitLinear
 * as the engine computes it (absmean ternary weights, per-token int8 activations,
 * exact integer sums), with the straight-through estimator in the backward; between
 * them the effective weights and inputs are W + lambda (Q(W) - W) and
 * x + lambda (Q(x) - x) (progressive quantization), again with the STE.
 *
 * Shapes: E = n_embd, F = n_ff, H = n_head, KV = n_head_kv, hd = E / H,
 * KVD = KV * hd, V = n_vocab, B sequences of T = n_ctx positions, N = B * T rows.
 */
#ifndef BN_TRAIN_H
#define BN_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet.h"

/* The shape of a model. */
typedef struct bn_train_config {
    int32_t n_embd;      /* E */
    int32_t n_layer;
    int32_t n_head;      /* H: E / H = head_dim, even (RoPE rotates pairs) */
    int32_t n_head_kv;   /* KV: divides H */
    int32_t n_ff;        /* F */
    int32_t n_ctx;       /* T: positions of a training sequence */
    int32_t n_vocab;     /* V */
    float   rms_eps;     /* inside the square root */
    float   rope_theta;
} bn_train_config;

/* A small model's shape: E 64, 2 layers, 4 heads, 2 kv heads, F 128, T 16, V 96,
 * eps 1e-5, theta 10000. */
bn_train_config bn_train_default_config(void);

/* BN_OK, or BN_ERR_INVALID_ARG naming the field that cannot be trained. */
bn_status bn_train_config_check(const bn_train_config *c);

/* One parameter tensor: its GGUF name ("blk.0.attn_q"), its shape (matrices
 * [out, in]; a vector is [1, n]) and where it lies in the flat arrays params, grads,
 * adam_m and adam_v, which share one layout. */
typedef struct bn_train_tensor {
    char    name[40];
    int64_t rows, cols;
    size_t  offset;      /* in floats */
    bool    decay;       /* AdamW weight decay applies: the 2-D tensors */
} bn_train_tensor;

/* The tensors of one layer, as pointers into one of the flat arrays. */
typedef struct bn_train_layer {
    float *attn_norm;      /* [E] */
    float *wq;             /* [E, E] */
    float *wk, *wv;        /* [KVD, E] */
    float *attn_sub_norm;  /* [E] */
    float *wo;             /* [E, E] */
    float *ffn_norm;       /* [E] */
    float *gate, *up;      /* [F, E] */
    float *ffn_sub_norm;   /* [F] */
    float *down;           /* [E, F] */
} bn_train_layer;

/* Every tensor of the model in one flat array: the parameters, or their gradients. */
typedef struct bn_train_weights {
    float          *token_embd;   /* [V, E], also the output layer */
    bn_train_layer *layers;       /* [n_layer] */
    float          *output_norm;  /* [E] */
} bn_train_weights;

/* A BitLinear projection: its master weights and gradient, and what the last forward
 * made of them. */
typedef struct bn_train_linear {
    int64_t n_out, n_in;
    const float *w;        /* [n_out, n_in] the parameters */
    float  *dw;            /* [n_out, n_in] their gradient */
    int8_t *codes;         /* [n_out, n_in] ternary codes (lambda > 0) */
    float   scale;         /* g = max(mean|W|, 1e-5) */
    float  *w_eff;         /* [n_out, n_in] codes * g (lambda 1) or
                              W + lambda (codes * g - W) */
    const float *w_used;   /* what the last forward multiplied by: w or w_eff */
    uint8_t *i2s;          /* [n_out, n_in / 4] the codes in I2_S rows for the engine's
                              ternary kernels (lambda 1; NULL unless n_in % 128 == 0) */
} bn_train_linear;

/* The input of one or more projections as they saw it. */
typedef struct bn_train_input {
    float  *x;   /* [N, n] the input (lambda 0), codes / s (1), x + lambda (codes / s - x) */
    int8_t *q;   /* [N, n] its int8 codes (lambda > 0) */
    float  *s;   /* [N] their scales, 127 / max|x| */
} bn_train_input;

/* The activations of one layer that the backward reads. */
typedef struct bn_train_layer_acts {
    float *h_in;              /* [N, E] residual stream entering the layer */
    float *attn_rstd;         /* [N] 1 / rms of h_in */
    bn_train_input attn_in;   /* [N, E] rmsnorm(h_in) * attn_norm: q, k, v's input */
    float *q;                 /* [N, E] queries after RoPE */
    float *k;                 /* [N, KVD] keys after RoPE */
    float *v;                 /* [N, KVD] values */
    float *probs;             /* [B, H, T, T] attention weights (row t: 0 .. t) */
    float *att;               /* [N, E] attention output, heads side by side */
    float *att_rstd;          /* [N] */
    bn_train_input attn_out;  /* [N, E] rmsnorm(att) * attn_sub_norm: Wo's input */
    float *h_mid;             /* [N, E] residual stream after attention */
    float *ffn_rstd;          /* [N] */
    bn_train_input ffn_in;    /* [N, E] rmsnorm(h_mid) * ffn_norm: gate's and up's */
    float *gate, *up;         /* [N, F] the two projections */
    float *act;               /* [N, F] relu(gate)^2 * up */
    float *act_rstd;          /* [N] */
    bn_train_input ffn_out;   /* [N, F] rmsnorm(act) * ffn_sub_norm: down's input */
} bn_train_layer_acts;

/* The activation gradients of the backward (scratch, reused layer after layer). */
typedef struct bn_train_grad_bufs {
    float  *dh;       /* [N, E] d loss / d residual stream */
    float  *dx;       /* [N, E] d of a normed input (the projections' input) */
    float  *dq;       /* [N, E] */
    float  *dk, *dv;  /* [N, KVD] */
    float  *datt;     /* [N, E] d attention output */
    float  *dg, *du;  /* [N, F] d gate, d up */
    float  *dff;      /* [N, F] d of down's input */
    float  *dact;     /* [N, F] d relu(gate)^2 * up */
    double *dp;       /* [T] attention: one query's weights (forward) or their d */
    double *acc;      /* [max(E, F)] a row of sums (the projections' backward) */
} bn_train_grad_bufs;

/* A model being trained, for batches of B sequences of n_ctx positions. */
typedef struct bn_train_model {
    bn_train_config cfg;
    int32_t B;                   /* sequences per forward */
    int32_t n_tensors;
    bn_train_tensor *tensors;    /* [n_tensors] */
    size_t  n_params;            /* floats in each flat array */
    float  *params, *grads;      /* [n_params] */
    float  *adam_m, *adam_v;     /* [n_params] AdamW moments */
    bn_train_weights w, g;       /* views of params and grads */
    int32_t n_linear;            /* 7 per layer: q, k, v, o, gate, up, down */
    bn_train_linear *linear;     /* [n_linear] */
    float  *rope;                /* [T][hd / 2][2] cos, sin of each position's angles */
    /* activations of the last forward */
    int32_t *tokens, *targets;   /* [N] */
    bn_train_layer_acts *acts;   /* [n_layer] */
    float  *h_out;               /* [N, E] residual stream after the last layer */
    float  *out_rstd;            /* [N] */
    float  *x_out;               /* [N, E] rmsnorm(h_out) * output_norm */
    float  *probs;               /* [N, V] softmax of the logits; the backward turns
                                    them into d logits (or, in a step, the forward's
                                    softmax already has: probs_dl) */
    float  *o;                   /* [N, E] a projection's output before the residual */
    float   lambda;              /* of the last forward */
    float   loss;                /* of the last forward */
    bool    have_forward;        /* a forward ran since the last backward */
    bn_train_grad_bufs d;
    int64_t step;                /* optimizer steps taken */
    void   *mem;                 /* the one allocation */
    size_t  bytes;
    /* the fast path (fast.c): threads and the matrix products' buffers */
    bool    reference;           /* run the scalar reference of layers.c instead (tests) */
    float   dl_scale;            /* set by bn_train_step around a forward: the fast
                                    softmax then leaves in probs the logits' gradient for
                                    a backward of that loss scale (probs_dl), as the
                                    backward would compute it; 0: the probabilities */
    bool    probs_dl;            /* probs holds that gradient, for the scale dl_last */
    float   dl_last;
    bool    exact_sums;          /* every product's sums in double, as the reference:
                                    its bits, at half the speed (else float sums where
                                    no quantizer reads the result: fast.c) */
    int32_t n_threads;           /* bn_train_set_threads; 1 by default */
    bn_threadpool *pool;         /* NULL for one thread */
    void   *thread_mem;          /* [n_threads] scratch of thread_bytes each, then the
                                    matrix kernels' shared activations (below) */
    size_t  thread_bytes;
    int8_t  *tern_qp;            /* where the kernel table has dot_i2s_q8_matrix: a
                                    ternary projection's input codes in its layout
                                    [rup(B T, 16), max(E, F)], in thread_mem; else NULL */
    int32_t *tern_qsum;          /* [B T] their sums */
    double *gemm_a;              /* [gemm_a_cap] a product's left operand, packed */
    size_t  gemm_a_cap;
    double *gemm_c;              /* [gemm_c_cap] the double sums of a product whose sum
                                    index is taken in chunks */
    size_t  gemm_c_cap;
    int64_t gemm_bpack_k;        /* rows of a thread's packed right-hand panel */
    int64_t gemm_carry_rows;     /* rows of a thread's float partial sums of a panel */
    int64_t gemm_a_block;        /* floats of packed A a block of row panels holds */
    double *row_loss;            /* [N] each row's cross-entropy, summed in row order */
} bn_train_model;

/* A model of shape *cfg for B sequences per forward: parameters zero (see
 * bn_train_init_params), gradients and moments zero, one thread. BN_ERR_INVALID_ARG for
 * a config or B that cannot be trained, BN_ERR_OOM. Free with bn_train_model_free. */
bn_status bn_train_model_new(const bn_train_config *cfg, int32_t B, bn_train_model **out);
void bn_train_model_free(bn_train_model *m);

/* Runs the model's forward and backward on n_threads threads (1 .. 512; the calling
 * thread is one of them) from a pool of the model's own, with their scratch allocated
 * here, once. Losses, gradients and parameters are the same bits for every thread
 * count (each value is computed by one thread, every sum in a fixed order) and for
 * every kernel family, and equal to the scalar reference's (m->reference). On error
 * (BN_ERR_INVALID_ARG, BN_ERR_OOM, a thread that cannot start) the model keeps its
 * threads. */
bn_status bn_train_set_threads(bn_train_model *m, int n_threads);

/* The tensor called name ("token_embd", "blk.1.ffn_up", "output_norm"), or NULL. */
const bn_train_tensor *bn_train_tensor_find(const bn_train_model *m, const char *name);

/* Fresh parameters from seed: N(0, 0.02) matrices and embedding, norm weights 1, and
 * the AdamW state and step count reset. The same seed gives the same parameters (the
 * generator is the project's own, not PyTorch's, so not the reference's). */
void bn_train_init_params(bn_train_model *m, uint64_t seed);

/* The forward over B sequences: tokens and targets [B, T], ids below n_vocab. Keeps
 * the activations for bn_train_backward and returns the mean cross-entropy in *loss.
 * lambda in [0, 1]: the quantization strength. BN_ERR_INVALID_ARG for a bad id or
 * lambda, BN_ERR_NUMERIC for a non-finite weight or loss. */
bn_status bn_train_forward(bn_train_model *m, const int32_t *tokens, const int32_t *targets,
                           float lambda, float *loss);

/* Adds loss_scale * d loss / d parameter to m->grads (for gradient accumulation over
 * n micro-batches, loss_scale = 1 / n), for the last forward. */
void bn_train_backward(bn_train_model *m, float loss_scale);

/* grads = 0. */
void bn_train_zero_grad(bn_train_model *m);

/* The global norm of the gradients, sqrt(sum g^2) in double. */
double bn_train_grad_norm(const bn_train_model *m);

/* Scales the gradients by max_norm / (norm + 1e-6) when that is below 1 (as PyTorch's
 * clip_grad_norm_); no-op for max_norm <= 0. Returns the norm before clipping. */
double bn_train_clip_grad(bn_train_model *m, double max_norm);

/* AdamW (decoupled weight decay, on the tensors whose decay flag is set). */
typedef struct bn_adamw_params {
    double beta1, beta2, eps;
    double weight_decay;
} bn_adamw_params;

/* beta 0.9, 0.95; eps 1e-8; weight decay 0.1 */
bn_adamw_params bn_adamw_default_params(void);

/* One AdamW step with learning rate lr from m->grads; counts m->step. */
void bn_train_adamw_step(bn_train_model *m, const bn_adamw_params *p, double lr);

/* The learning rate of step s (counted from 0) in a run of `steps` steps.
 * Both kinds start with a linear warm-up over `warmup` steps, lr(s) = lr_max (s + 1) /
 * warmup. Then:
 *   cosine: a cosine from lr_max to lr_min at step steps - 1 (and lr_min after);
 *   two-stage (the BitNet b1.58 recipe): the same cosine until step drop_step, where
 *     the rate falls to lr_stage2, then a cosine from lr_stage2 to lr_min at step
 *     steps - 1. Weight decay applies in stage one only (bn_wd_at). */
typedef enum bn_lr_kind {
    BN_LR_COSINE = 0,
    BN_LR_TWO_STAGE
} bn_lr_kind;

typedef struct bn_lr_schedule {
    double  lr_max, lr_min;
    int32_t warmup, steps;
    bn_lr_kind kind;
    int32_t drop_step;     /* two-stage: the first step of stage two */
    double  lr_stage2;     /* two-stage: the rate at drop_step */
} bn_lr_schedule;

double bn_lr_at(const bn_lr_schedule *s, int64_t step);

/* The weight decay of step s: wd, except 0 in stage two of a two-stage schedule. */
double bn_wd_at(const bn_lr_schedule *s, int64_t step, double wd);

/* Progressive quantization's strength at step s: s / ramp up to 1 (0 at step 0), or 1
 * from the start when ramp <= 0. */
float bn_lambda_at(int64_t ramp, int64_t step);

/* What one optimizer step does. */
typedef struct bn_train_step_params {
    bn_adamw_params adamw;
    bn_lr_schedule  lr;
    double  clip_norm;     /* global-norm clipping; <= 0: none */
    int32_t n_micro;       /* micro-batches accumulated per step */
    float   lambda;        /* quantization strength */
    /* Called once the micro-batches' gradients are in m->grads, before clipping and
     * the update (data parallelism averages the ranks' gradients here); false stops
     * the step with the error it set. NULL: none. */
    bool  (*reduce_grads)(bn_train_model *m, void *user);
    void   *reduce_user;
} bn_train_step_params;

/* What it gives back. */
typedef struct bn_train_step_result {
    float  loss;           /* mean of the micro-batches' losses, before the update */
    double grad_norm;      /* before clipping */
    double lr;
} bn_train_step_result;

/* One optimizer step: the gradients of n_micro micro-batches of B sequences
 * (tokens and targets [n_micro][B][T]) averaged, clipped, and AdamW at the schedule's
 * rate and weight decay (bn_wd_at of adamw.weight_decay) for m->step. Errors as bn_train_forward; on error the parameters are
 * unchanged. */
bn_status bn_train_step(bn_train_model *m, const bn_train_step_params *p,
                        const int32_t *tokens, const int32_t *targets,
                        bn_train_step_result *res);

/* ------------------------------------------------------------------ layers
 * Each layer's forward and backward (layers.c). Backward functions add (+=) into the
 * gradients they produce, so that a tensor read by several layers (the embedding, a
 * residual stream, an input of three projections) gathers every contribution. */

/* h[i] = embd[tokens[i]]. h: [N, E]; embd: [V, E]. */
void bn_train_embed_forward(float *h, const int32_t *tokens, const float *embd,
                            int64_t N, int64_t E);
void bn_train_embed_backward(float *dembd, const float *dh, const int32_t *tokens,
                             int64_t N, int64_t E);

/* y = x / sqrt(mean(x^2) + eps) * w per row (the mean in double); rstd[i] = the
 * 1 / sqrt(...) of row i. x, y: [N, n]. */
void bn_train_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w,
                              int64_t N, int64_t n, float eps);
void bn_train_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x,
                               const float *w, const float *rstd, int64_t N, int64_t n);

/* The weights of a projection for this forward: codes, g and w_eff from lin->w. */
bn_status bn_train_linear_prepare(bn_train_linear *lin, float lambda);
/* The input x [N, n] as the projections see it, in place in in->x, codes in in->q. */
void bn_train_input_quantize(bn_train_input *in, int64_t N, int64_t n, float lambda);
/* y = in W_eff^T; exact integer sums / s * g for lambda 1. y: [N, n_out]. */
void bn_train_linear_forward(float *y, const bn_train_linear *lin, const bn_train_input *in,
                             int64_t N, float lambda);
/* dx += dy W_eff, dW += dy^T x_eff (the straight-through estimator); acc: scratch
 * [max(n_in, n_out)]. */
void bn_train_linear_backward(float *dx, bn_train_linear *lin, const float *dy,
                              const bn_train_input *in, int64_t N, double *acc);

/* NeoX RoPE in place on the heads of x [B * T, heads * hd]: pairs (i, i + hd / 2) of
 * each head rotated by position t's angles. The backward rotates back. */
void bn_train_rope_forward(float *x, const float *rope, int64_t B, int64_t T,
                           int64_t heads, int64_t hd);
void bn_train_rope_backward(float *dx, const float *rope, int64_t B, int64_t T,
                            int64_t heads, int64_t hd);

/* Causal GQA attention: out[b, t, head h] = softmax_s(q . k_s / sqrt(hd)) v_s over
 * s <= t, with kv head h / (H / KV); scores, softmax and sums in double. q, out:
 * [B * T, H * hd]; k, v: [B * T, KV * hd]; probs: [B, H, T, T]; p, dp: scratch [T]. */
void bn_train_attention_forward(float *out, float *probs, double *p, const float *q,
                                const float *k, const float *v, int64_t B, int64_t T,
                                int64_t H, int64_t KV, int64_t hd);
void bn_train_attention_backward(float *dq, float *dk, float *dv, double *dp,
                                 const float *dout, const float *probs, const float *q,
                                 const float *k, const float *v, int64_t B, int64_t T,
                                 int64_t H, int64_t KV, int64_t hd);

/* out = relu(g)^2 * u; the backward adds to dg and du. The arrays must not overlap. */
void bn_train_relu2_forward(float *out, const float *g, const float *u, int64_t n);
void bn_train_relu2_backward(float *dg, float *du, const float *dout, const float *g,
                             const float *u, int64_t n);

/* h = a + b. Its backward hands dh to both inputs unchanged: the model keeps dh as
 * the gradient of a and gives it to b's producer as its output gradient. */
void bn_train_residual_forward(float *h, const float *a, const float *b, int64_t n);

/* Tied output and loss: logits = x embd^T into probs [N, V], then softmax in place;
 * returns the mean over rows of -log p(target). */
double bn_train_output_forward(float *probs, const float *x, const float *embd,
                               const int32_t *targets, int64_t N, int64_t E, int64_t V);
/* With dlogits = (probs - onehot(target)) * scale / N (in place in probs):
 * dx += dlogits embd, dembd += dlogits^T x. acc: scratch [E]. */
void bn_train_output_backward(float *dx, float *dembd, float *probs, const float *x,
                              const float *embd, const int32_t *targets, int64_t N,
                              int64_t E, int64_t V, float scale, double *acc);

/* The element-wise loops of the fast path compiled for AVX-512 and AVX2 beside the
 * baseline, chosen at run time by the CPU (GCC's and clang's function clones): wider
 * vectors only, the same operations per element (no contraction: -ffp-contract=off),
 * so the same bits on each. */
#if defined(__x86_64__) && !defined(BITNET_FORCE_SCALAR) && !defined(__SANITIZE_ADDRESS__)
#define BN_TRAIN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BN_TRAIN_CLONES
#endif

/* ------------------------------------------------------------------ fast path
 * The model's steps on its threads (fast.c): the same bits as the layer functions
 * above, which they run instead when m->reference is set. */
bn_status bn_train_fast_linear_prepare(bn_train_model *m, bn_train_linear *lin, float lambda);
void bn_train_fast_linear_forward(bn_train_model *m, float *y, const bn_train_linear *lin,
                                  const bn_train_input *in, int64_t N, float lambda);
void bn_train_fast_linear_backward(bn_train_model *m, float *dx, bn_train_linear *lin,
                                   const float *dy, const bn_train_input *in, int64_t N);
void bn_train_fast_rmsnorm_forward(bn_train_model *m, float *y, float *rstd, const float *x,
                                   const float *w, int64_t N, int64_t n, float eps);
void bn_train_fast_rmsnorm_backward(bn_train_model *m, float *dx, float *dw, const float *dy,
                                    const float *x, const float *w, const float *rstd,
                                    int64_t N, int64_t n);
void bn_train_fast_input_quantize(bn_train_model *m, bn_train_input *in, int64_t N,
                                  int64_t n, float lambda);
void bn_train_fast_relu2_forward(bn_train_model *m, float *out, const float *g,
                                 const float *u, int64_t n);
void bn_train_fast_relu2_backward(bn_train_model *m, float *dg, float *du, const float *dout,
                                  const float *g, const float *u, int64_t n);
void bn_train_fast_residual_forward(bn_train_model *m, float *h, const float *a,
                                    const float *b, int64_t n);
/* RoPE on B sequences of x with `heads` heads; its transpose when backward. */
void bn_train_fast_rope(bn_train_model *m, float *x, int64_t B, int64_t heads, bool backward);
void bn_train_fast_embed_backward(bn_train_model *m, float *dembd, const float *dh,
                                  const int32_t *tokens, int64_t N, int64_t E);
void bn_train_fast_attention_forward(bn_train_model *m, float *out, float *probs,
                                     const float *q, const float *k, const float *v,
                                     int64_t B);
void bn_train_fast_attention_backward(bn_train_model *m, float *dq, float *dk, float *dv,
                                      const float *dout, const float *probs, const float *q,
                                      const float *k, const float *v, int64_t B);
double bn_train_fast_output_forward(bn_train_model *m, float *probs, const float *x,
                                    const float *embd, const int32_t *targets, int64_t N);
void bn_train_fast_output_backward(bn_train_model *m, float *dx, float *dembd, float *probs,
                                   const float *x, const float *embd,
                                   const int32_t *targets, int64_t N, float scale);
/* fn(ctx, lo, hi) over [0, n) in one contiguous share per thread of the model (fn must
 * write only what its range owns). */
void bn_train_parallel(const bn_train_model *m, int64_t n, void (*fn)(void *, int64_t, int64_t),
                       void *ctx);
/* C = A B, or C += A B, in float: A(i, k) = a[i a_rs + k a_cs] (M x K), B(k, j) =
 * b[k b_rs + j b_cs] (K x N), C(i, j) = c[i c_rs + j c_cs]; each element one float
 * accumulator from zero, one fused multiply-add per product over k ascending, then
 * stored or added to C, on the model's threads. The shapes must fit the buffers that
 * bn_train_fast_plan sized (those of the model's own products); fast.c's float
 * products, exposed for tests. */
void bn_train_gemm_f32(bn_train_model *m, int64_t M, int64_t N, int64_t K, const float *a,
                       int64_t a_rs, int64_t a_cs, const float *b, int64_t b_rs,
                       int64_t b_cs, float *c, int64_t c_rs, int64_t c_cs, bool add);
/* Whether bn_train_gemm_f32 can take that shape on m's buffers. */
bool bn_train_gemm_f32_fits(const bn_train_model *m, int64_t M, int64_t N, int64_t K);
/* pr[v] = (float)((double)e[v] / sum) for v < V, bit for bit (a row of the softmax,
 * e[v] > 0 its exponentials and sum >= 1 their sum); fast.c's, exposed for tests. */
void bn_train_softmax_normalize(float *pr, const float *e, int64_t V, double sum);
/* Sizes the products' buffers (gemm_a_cap, gemm_c_cap, gemm_bpack_k) from the shape. */
void bn_train_fast_plan(bn_train_model *m);

#endif
