/*
 * model_internal.h - the loaded model (weights pointing into the mapped GGUF file) and
 * the pieces of the forward pass that model.c, linear.c and context.c share.
 */
#ifndef BN_MODEL_INTERNAL_H
#define BN_MODEL_INTERNAL_H

#include "core/internal.h"
#include "quant/formats.h"

/* A projection y = W x with W [n_out, n_in] as stored in the file (ggml ne = {n_in,
 * n_out}). Ternary types are evaluated on 8-bit activations with integer sums; other
 * types are converted to f32 one row at a time. */
typedef struct bn_linear {
    const char    *name;       /* tensor name (owned by the GGUF file) */
    int            type;       /* bn_qtype */
    const uint8_t *data;       /* into the map */
    int64_t        n_in, n_out;
    size_t         row_bytes;  /* bytes of one row (I2_S: n_in / 4) */
    bool           ternary;    /* I2_S, TQ1_0, TQ2_0 */
    float          scale;      /* I2_S: the tensor's scale; 1 otherwise */
    float          out_scale;  /* an optional "<name>.scale" tensor; 1 when absent */
    bn_row_to_f32_fn to_f32;   /* the row converter of non-ternary types */
    bool           one_scale;  /* TQ2_0: every row has one finite scale in all its blocks
                                * (bn_tq2_rows_one_scale, tested at load) */
    const float   *row_scale;  /* a TQ2_0 / TQ1_0 projection held in I2_S's layout (I2_S):
                                * each row's scale, its sums scaled as TQ2_0's; NULL
                                * otherwise */
} bn_linear;

typedef struct bn_layer {
    const float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm; /* sub NULL: none */
    bn_linear wq, wk, wv, wo, gate, up, down;
} bn_layer;

typedef enum bn_rope_kind { BN_ROPE_NEOX = 0, BN_ROPE_NORM } bn_rope_kind;

struct bn_model {
    bn_gguf      *gguf;
    bn_tokenizer *tok;          /* NULL when the file has no tokenizer */
    char         *path;
    bn_model_info info;
    bn_rope_kind  rope;
    int32_t       n_rot;        /* dimensions of each head that RoPE rotates */
    float        *rope_freqs;   /* [n_rot / 2] divisors of each pair's angle, or NULL */
    bool          act_quant;
    bool          float_proj;   /* a block projection is not ternary-stored */
    bn_ffn_act    ffn_act;
    const bn_gguf_tensor *embd; /* token_embd */
    bn_row_to_f32_fn embd_to_f32;
    size_t        embd_row_bytes;
    const float  *output_norm;
    bn_linear     output;       /* token_embd when tied */
    uint8_t      *output_mem;   /* the output layer converted at load, or NULL */
    uint8_t      *proj_mem;     /* TQ1_0 projections held as TQ2_0, or NULL */
    uint8_t      *hold_mem;     /* TQ2_0 / TQ1_0 projections held in I2_S's layout, or NULL */
    bn_layer     *layers;
    float        *norms;        /* f32 copies of every norm vector */
};

/* Activations entering a group of projections: T rows of n values, their 8-bit codes
 * and per-row scales s (q = round(x * s)) when quantized, and those codes as floats
 * for float-stored weights. */
typedef struct bn_act {
    int32_t      T;
    int64_t      n;
    const float *x;        /* [T, n] */
    const int8_t *q;       /* [T, n] or NULL (not quantized) */
    const float *s;        /* [T] */
    const int32_t *qsum;   /* [T] sum of each row's codes */
    const int32_t *qbsum;  /* [T][n / 256] sums of each block of 256 codes (n % 256 == 0) */
    const float *qf;       /* [T, n] the codes as floats, or NULL */
    const uint8_t *q8;     /* [T][n / 32] Q8_0 blocks of x, for Q8_0 weights, or NULL */
    const int8_t *qp;      /* the codes as the matrix kernels read them (bn_pack_q8_matrix),
                            * or NULL: the ternary prefill then takes the tiles */
} bn_act;

/* The fewest rows a step must have for the ternary prefill to take the matrix kernels
 * (where the kernel family has them): below it the vector tiles are as fast. I2_S from
 * 4, TQ2_0 from 6: on the Intel Xeon measured (2 threads, 2B-4T shapes, 4 and 6
 * sequences decoding together, two rounds) I2_S gave 52.9 and 52.3 tokens/s at 4
 * with the matrix kernels against 47.1 and 46.0 on the tiles, TQ2_0 45.5 and 47.0
 * against 52.7 and 52.3; at 6, 75.6 and 73.4 against 58.6 and 60.5 (I2_S), 63.9 and
 * 64.5 against 56.6 and 56.7 (TQ2_0). */
#define BN_MATRIX_MIN_T 4
#define BN_MATRIX_MIN_T_TQ2 6

/* Rows a decode step hands to one kernel call (the scratch holds their sums). */
#define BN_LINEAR_ROWS 256

/* Per-thread scratch of the projections: a decoded row and its block scales. */
typedef struct bn_linear_scratch {
    int8_t *w;            /* [n_in_max] a ternary row's codes (bn_decode_row_*) */
    float  *d;            /* [n_in_max / 256] its block scales */
    float  *wf;           /* [n_in_max] a row as f32 */
    int32_t *bs;          /* [n_in_max / 256 + 1 + BN_LINEAR_ROWS] I2_S decode row sums */
    uint8_t *mw;          /* [BN_MATRIX_WORK(T rounded up to 32)] the matrix kernels' work,
                           * or NULL */
    void *ms;             /* [BN_MATRIX_ROWS][T rounded up to 32] their sums (int32 or
                           * double), or NULL */
} bn_linear_scratch;

/* Evaluate `count` projections on the same input: out[i] is [T, lin[i]->n_out]. The
 * rows of all of them are split over the default pool's threads; every output value
 * is computed by one thread in a fixed order, so the result does not depend on the
 * thread count. scratch has n_scratch entries (threads beyond it idle). */
void bn_linear_eval(const bn_linear *const *lin, float *const *out, int count,
                    const bn_act *act, bool use_q, bn_linear_scratch *scratch,
                    int n_scratch);

#endif
