/*
 * serve.h - the parts of `bitnet serve`: the request reader (serve_request.c: JSON
 * bodies of the OpenAI endpoints into a checked request, no model needed, fuzzed), the
 * engine (serve_engine.c: one thread that runs every admitted request on the slots of
 * one multi-sequence context through the library's generator) and the HTTP side
 * (cmd_serve.c, on libmicrohttpd).
 */
#ifndef BN_SERVE_H
#define BN_SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet.h"

/* ------------------------------------------------------------------ requests */

#define SERVE_MAX_STOPS 16
#define SERVE_MAX_TOP_LOGPROBS 20   /* chat's top_logprobs; completions' logprobs: 5 */

typedef enum serve_kind {
    SERVE_COMPLETION = 0,  /* POST /v1/completions */
    SERVE_CHAT             /* POST /v1/chat/completions */
} serve_kind;

typedef struct serve_msg {
    char *role;            /* owned */
    char *content;         /* owned (the text parts joined) */
} serve_msg;

/* A checked request of either endpoint. Everything is owned; serve_request_free. */
typedef struct serve_request {
    serve_kind kind;
    char      *prompt;         /* completions: the prompt as text, or NULL */
    size_t     prompt_len;
    bn_token  *prompt_ids;     /* completions: the prompt as token ids, or NULL */
    size_t     n_prompt_ids;
    serve_msg *msgs;           /* chat: the messages */
    size_t     n_msgs;
    char      *stops[SERVE_MAX_STOPS];
    int        n_stops;
    bn_sampler_params sp;      /* the server's defaults with the request's fields */
    bool       seed_given;
    int32_t    max_tokens;     /* -1: until a stop rule or a full context */
    bool       stream;
    bool       include_usage;  /* stream_options.include_usage */
    bool       echo;           /* completions: the prompt before the text */
    bool       ignore_eos;     /* go on after an end-of-text token (llama.cpp's field) */
    bool       cache_prompt;   /* reuse a slot's kept tokens for the beginning of the
                                  prompt (llama.cpp's field; default true) */
    int32_t    logprobs;       /* -1: none; else the alternatives per token (chat's
                                  top_logprobs, completions' logprobs) */
} serve_request;

/* What a refused request gets: an HTTP status, an OpenAI error type and code, the
 * field at fault (or none) and a message. */
typedef struct serve_error {
    int         status;        /* 400, 413, ... */
    const char *type;          /* "invalid_request_error" */
    const char *code;          /* NULL or "context_length_exceeded", ... */
    char        param[64];     /* the field, "" when none */
    char        message[256];
} serve_error;

/* Reads a request body of `kind` (any bytes) into *req, the sampling fields on top of
 * `defaults`; max_tokens defaults to default_max_tokens. Unknown fields are ignored,
 * null counts as absent. Returns false with *err filled (nothing owned left in *req)
 * on bad JSON, a field of the wrong type or out of range, or a missing required
 * field. */
bool serve_request_parse(const char *body, size_t len, serve_kind kind,
                         const bn_sampler_params *defaults, int32_t default_max_tokens,
                         serve_request *req, serve_error *err);
void serve_request_free(serve_request *req);

/* Sets *err (printf-style message). Returns false, for `return serve_fail(...)`. */
bool serve_fail(serve_error *err, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Bytes as a JSON string value, each ill-formed UTF-8 subsequence replaced by U+FFFD
 * (one per maximal subpart, as Unicode recommends and WHATWG decoders do). NULL on
 * out of memory. */
struct json_t;
struct json_t *serve_json_text(const char *text, size_t len);

/* Whether two strings are equal, in a time that depends on their lengths only. */
bool serve_secret_equal(const char *a, const char *b);

/* ------------------------------------------------------------------ engine */

/* One generated token's log-probability and its most probable alternatives, and
 * where its text lies in the generated text (the decoder's pieces joined). */
typedef struct serve_logprob {
    size_t   start, len;       /* bytes [start, start + len) of the pieces joined */
    bn_token id;
    float    logprob;
    int32_t  n_top;
    bn_token top_ids[SERVE_MAX_TOP_LOGPROBS];
    float    top_logprobs[SERVE_MAX_TOP_LOGPROBS];
} serve_logprob;

/* One generation, shared by the connection that asked for it and the engine. The
 * fields below `shared` are guarded by the engine's lock. */
typedef struct serve_job {
    bn_token           *ids;          /* the prompt (owned by the job's creator) */
    int32_t             n_ids;
    bn_generate_params  gp;           /* stops point into the request; on_token,
                                         on_logits and user are set by
                                         serve_engine_submit */
    int32_t             logprobs;     /* -1: none; else alternatives per token */
    struct serve_engine *engine;      /* set by serve_engine_submit */
    /* shared */
    char               *text;         /* the generated bytes so far (owned) */
    size_t              len, cap;
    bool                queued;       /* waiting for a slot */
    bool                running;      /* in a slot */
    bool                finished;     /* no more text will come */
    bool                cancelled;    /* the client went away or the server stops */
    bool                oom;          /* the text could not be kept */
    serve_logprob      *lp;           /* [n_lp] the tokens' log-probabilities (owned) */
    size_t              n_lp, cap_lp;
    size_t              pieces_len;   /* the bytes of the tokens' pieces so far */
    int32_t             n_generated;  /* tokens handed out so far */
    char                error[160];   /* why it failed, "" when it did not */
    bn_generate_result  result;       /* valid once finished without error */
    double              t_submit, t_first, t_done;   /* run_now() seconds */
    struct serve_job   *next;         /* in the queue */
} serve_job;

typedef struct serve_engine serve_engine;

/* Counters for /metrics, read under the engine's lock. */
typedef struct serve_stats {
    int32_t  n_slots, slots_busy, queue_len, queue_max;
    uint64_t prompt_tokens, generated_tokens, jobs_done, jobs_cancelled, steps;
    uint64_t prompt_tokens_reused;   /* prompt tokens not evaluated: kept in a slot */
    double   busy_seconds;        /* time spent in steps */
} serve_stats;

/* The engine over ctx (n_seq slots), with a queue of at most queue_max waiting jobs and
 * at most prefill_chunk prompt tokens a step (0: no limit); starts its thread. NULL
 * with a message on stderr on failure. */
serve_engine *serve_engine_start(bn_context *ctx, int32_t queue_max, int32_t prefill_chunk);
/* Queues job (its prompt and params filled in). false when the queue is full or the
 * engine stops (the job is untouched then). */
bool serve_engine_submit(serve_engine *e, serve_job *job);
/* Waits until the job has text past `seen` bytes, has finished, or `ms` passed.
 * Call with the lock held (serve_engine_lock). */
void serve_engine_wait(serve_engine *e, serve_job *job, size_t seen, int ms);
/* Cancels the job (if not finished) and returns once the engine no longer uses it:
 * then its creator may free it. */
void serve_engine_cancel(serve_engine *e, serve_job *job);
void serve_engine_lock(serve_engine *e);
void serve_engine_unlock(serve_engine *e);
void serve_engine_stats(serve_engine *e, serve_stats *s);
/* Jobs queued or running. */
int32_t serve_engine_pending(serve_engine *e);
/* Refuses new jobs from now on; with `cancel`, also cancels every job queued or
 * running. */
void serve_engine_drain(serve_engine *e, bool cancel);
/* Stops the thread and frees the engine (every job must be finished or cancelled). */
void serve_engine_free(serve_engine *e);
/* Frees what the job owns (its text and log-probabilities; not ids). */
void serve_job_free(serve_job *job);

#endif
