/*
 * run.h - a training run around the model of train.h: its settings, the data it
 * samples, its checkpoints and the export of what it trained (internal API; `bitnet
 * train` and `bitnet export` are its users).
 *
 * data.c        the token streams of the training and validation text, and the batches
 *               drawn from them (deterministic from a 64-bit generator state);
 * checkpoint.c  the whole state of a run in one file, written whole or not at all;
 * export.c      a trained model as a GGUF file that the engine runs.
 */
#ifndef BN_TRAIN_RUN_H
#define BN_TRAIN_RUN_H

#include "train/train.h"

/* ------------------------------------------------------------------ settings */

/* Everything that decides what a run computes, saved in its checkpoints. */
typedef struct bn_train_settings {
    bn_train_config cfg;
    int32_t  batch;          /* sequences per micro-batch (B) */
    int32_t  accum;          /* micro-batches per optimizer step */
    int32_t  steps;          /* optimizer steps in all */
    bn_lr_schedule lr;       /* warm-up, kind, drop step, rates (steps as above) */
    bn_adamw_params adamw;   /* weight_decay: stage one's */
    double   clip;           /* global-norm clipping; 0: none */
    bool     ternary;        /* ternary (QAT) or float training */
    int32_t  lambda_ramp;    /* ternary: steps from lambda 0 to 1; 0: 1 from the start */
    uint64_t seed;           /* initial parameters and the data generator */
    uint64_t data_hash;      /* bn_seal_hash of the training text, and its length */
    uint64_t data_bytes;
    uint64_t val_hash;       /* of the validation text (0 when none) */
    uint64_t val_bytes;
} bn_train_settings;

/* One row of a run's log (train.csv): val_loss is NaN on steps without evaluation. */
typedef struct bn_train_log_row {
    int64_t step;            /* counted from 1: the row of the step just taken */
    double  lr, lambda, train_loss, val_loss, grad_norm, tokens_per_second;
} bn_train_log_row;

/* Where a run stands: what a checkpoint holds beside the settings and weights. */
typedef struct bn_train_progress {
    int64_t  step;           /* optimizer steps taken (= m->step) */
    uint64_t rng;            /* the data generator's state */
    int64_t  n_log, cap_log; /* rows of the log so far, and room for */
    bn_train_log_row *log;   /* bn_malloc'd, [n_log] */
    double   seconds;        /* training time so far (not counting evaluation) */
} bn_train_progress;

/* ------------------------------------------------------------------ data */

/* One token stream. */
typedef struct bn_train_stream {
    bn_token *ids;
    size_t    n;
} bn_train_stream;

/* The training text as tokens: tokenized whole, plain text (special-token texts are not
 * parsed), no BOS (bn_train_sample_batch puts BOS at each window's start). */
bn_status bn_train_stream_text(const bn_tokenizer *t, const char *text, size_t len,
                               bn_train_stream *out);
void bn_train_stream_free(bn_train_stream *s);

/* Whether windows start with BOS: when the tokenizer wants BOS and has one, as
 * `bitnet generate` and `bitnet perplexity` do (returns the id, or -1). */
bn_token bn_train_bos(const bn_tokenizer *t);

/* The smallest stream a window of T positions can be cut from. */
size_t bn_train_min_tokens(int32_t T, bn_token bos);

/* B windows of T positions at offsets drawn from *rng (advanced): with BOS, tokens
 * [BOS, d[o] .. d[o + T - 2]] and targets d[o] .. d[o + T - 1]; without, tokens
 * d[o] .. d[o + T - 1] and targets one further. s->n must be at least
 * bn_train_min_tokens. */
void bn_train_sample_batch(const bn_train_stream *s, int32_t B, int32_t T, bn_token bos,
                           uint64_t *rng, int32_t *tokens, int32_t *targets);

/* The validation set, as `bitnet perplexity -c T` evaluates a text: the text
 * tokenized with BOS (when the tokenizer wants it), cut into windows of T tokens, the
 * first of each replaced by BOS, scoring positions T/2 .. T-2 (each predicting the
 * next token of its window). */
typedef struct bn_train_val {
    bn_train_stream s;
    int64_t n_windows;       /* s.n / T, or fewer (max_windows) */
    bn_token bos;
} bn_train_val;

/* BN_ERR_INVALID_ARG when the text gives fewer than 2 T tokens (the least perplexity
 * takes). max_windows > 0 caps the windows. */
bn_status bn_train_val_text(const bn_tokenizer *t, const char *text, size_t len, int32_t T,
                            int64_t max_windows, bn_train_val *out);

/* The validation set from tokens already (token shards): s is taken over (freed by
 * the caller through out->s); the same windows and scoring as bn_train_val_text. */
bn_status bn_train_val_tokens(bn_train_stream *s, int32_t T, bn_token bos,
                              int64_t max_windows, bn_train_val *out);

/* The mean negative log-likelihood of the scored positions of every validation window
 * (m's batch at a time, the last batch padded with repeats that are not scored), with
 * the forward at strength lambda. Errors as bn_train_forward. */
bn_status bn_train_val_loss(bn_train_model *m, const bn_train_val *v, float lambda,
                            double *loss);

/* ------------------------------------------------------------------ checkpoints */

/* Writes the run (settings, progress, tokenizer, parameters and AdamW moments) to path
 * as a sealed GGUF (docs/TRAINING.md lists its keys and tensors), through a temporary
 * file that appears at path only once complete. */
bn_status bn_train_ckpt_save(const char *path, const bn_train_settings *s,
                             const bn_train_progress *p, const bn_tokenizer *tok,
                             const bn_train_model *m);

/* Reads a checkpoint: checks the seal, the format version, every key and tensor (name,
 * type, shape); makes the model (for `batch` sequences per forward; <= 0: the
 * checkpoint's) with the parameters, moments and step, the tokenizer, the settings and
 * the progress. BN_ERR_FORMAT with what is wrong. */
bn_status bn_train_ckpt_load(const char *path, int32_t batch, bn_train_settings *s,
                             bn_train_progress *p, bn_tokenizer **tok,
                             bn_train_model **m);

void bn_train_progress_free(bn_train_progress *p);

/* Appends a row to the log. */
bn_status bn_train_log_add(bn_train_progress *p, const bn_train_log_row *row);

/* ------------------------------------------------------------------ export */

typedef struct bn_train_export_params {
    bn_qtype proj_type;      /* the projections: I2_S (default), TQ2_0, TQ1_0, F16, F32 */
    bn_qtype embd_type;      /* the token embedding (the output layer too): F16 default */
    const char *name;        /* general.name; NULL: "bitnet trained" */
} bn_train_export_params;

bn_train_export_params bn_train_export_default_params(void);

/* BN_OK when the engine runs the model's projections in proj_type (I2_S needs rows of
 * a multiple of 128 weights, TQ2_0 and TQ1_0 of 256); else BN_ERR_SHAPE saying so. */
bn_status bn_train_export_check(const bn_train_config *c, bn_qtype proj_type);

/* Writes the model as a GGUF of arch bitnet-b1.58 with the tokenizer. The projections
 * of a ternary run are ternarized as its forward does (absmean per tensor) and stored
 * in proj_type; a float run's are stored as they are (a float type only). */
bn_status bn_train_export(const char *path, const bn_train_model *m, bool ternary,
                          const bn_tokenizer *tok, const bn_train_export_params *p);

#endif
