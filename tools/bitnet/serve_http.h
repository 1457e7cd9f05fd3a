/*
 * serve_http.h - what the HTTP side of `bitnet serve` shares (cmd_serve.c: requests,
 * generation and the command; serve_http.c: responses and the endpoints that do not
 * generate): the routes, the server and the per-request state.
 */
#ifndef BN_SERVE_HTTP_H
#define BN_SERVE_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <sys/types.h>
#include <time.h>

#include "serve.h"

/* The routes, for the access log and /metrics. */
typedef enum serve_route {
    ROUTE_CHAT = 0, ROUTE_COMPLETIONS, ROUTE_MODELS, ROUTE_HEALTH, ROUTE_METRICS,
    ROUTE_TOKENIZE, ROUTE_DETOKENIZE, ROUTE_PAGE, ROUTE_OTHER, ROUTE_COUNT
} serve_route;

/* Each route's path (ROUTE_OTHER: "other"). */
extern const char *const route_path[ROUTE_COUNT];

/* The status codes counted per route in /metrics (the last column: any other). */
#define N_COUNTED 8
extern const int counted_status[N_COUNTED];

typedef struct serve_server {
    struct MHD_Daemon *daemon;
    serve_engine      *engine;
    bn_model          *model;
    bn_context        *ctx;
    const bn_tokenizer *tok;
    const char        *model_id;
    const char        *api_key;       /* NULL: none */
    const char        *tmpl;          /* chat template; NULL: the model's */
    bn_sampler_params  sp;            /* request defaults */
    bool               seed_given;
    int32_t            chat_max_tokens;
    int32_t            n_ctx;
    size_t             max_body;
    bool               log_json;
    time_t             started;
    pthread_mutex_t    lock;          /* the counters below */
    uint64_t           requests[ROUTE_COUNT][N_COUNTED + 1];
    uint64_t           next_id;
    int32_t            in_flight;     /* requests begun and not completed */
    bool               ignore_eos;    /* --ignore-eos: for every request */
} serve_server;

/* One request on a connection (MHD's con_cls), from its headers to its end. */
typedef struct serve_conn {
    serve_server  *srv;
    serve_route    route;
    char           method[8];
    char           path[64];
    double         t0;
    int            status;        /* of the response queued */
    char          *body;          /* the upload (owned) */
    size_t         len, cap;
    bool           too_big;
    bool           refused;       /* a response was queued before the body came */
    MHD_socket     fd;
    /* a generation */
    serve_request  req;
    bool           have_req;
    bn_token      *ids;
    size_t         n_ids;
    serve_job      job;
    bool           submitted;
    char           id[48];
    time_t         created;
    /* a stream */
    char          *out;           /* SSE bytes not yet handed to MHD (owned) */
    size_t         out_len, out_pos;
    size_t         framed;        /* bytes of job.text already in events */
    size_t         lp_sent;       /* entries of job.lp already in events */
    size_t         lp_chars;      /* characters of their text */
    int            phase;         /* 0: the opening event, 1: text, 2: closing sent */
} serve_conn;

/* Queues a JSON response (takes the reference to body; NULL: a 500 for out of
 * memory), with Retry-After on a 503 and WWW-Authenticate on a 401. */
enum MHD_Result serve_reply_json(struct MHD_Connection *c, serve_conn *sc, int status,
                                 json_t *body);
/* {"error": {"message", "type", "param", "code"}} of err (a new reference). */
json_t *serve_error_body(const serve_error *err);
enum MHD_Result serve_reply_error(struct MHD_Connection *c, serve_conn *sc,
                                  const serve_error *err);
/* serve_reply_error with a message made here; code NULL or OpenAI's error code. */
enum MHD_Result serve_reply_fail(struct MHD_Connection *c, serve_conn *sc, int status,
                                 const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

enum MHD_Result serve_handle_tokenize(struct MHD_Connection *c, serve_conn *sc);
enum MHD_Result serve_handle_detokenize(struct MHD_Connection *c, serve_conn *sc);
enum MHD_Result serve_handle_metrics(struct MHD_Connection *c, serve_conn *sc);
enum MHD_Result serve_handle_models(struct MHD_Connection *c, serve_conn *sc);
enum MHD_Result serve_handle_page(struct MHD_Connection *c, serve_conn *sc);

#endif
