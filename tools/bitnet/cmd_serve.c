/*
 * cmd_serve.c - `bitnet serve`: an HTTP server with OpenAI's API (chat completions,
 * completions, models) and llama.cpp's tokenize/detokenize, health and Prometheus
 * metrics, on libmicrohttpd with a thread per connection. A connection reads and checks
 * its request (serve_request.c), tokenizes the prompt and queues a job for the engine
 * (serve_engine.c), then waits for its text: whole, or as server-sent events as it
 * comes. While it waits it watches its socket, so that a client that goes away frees
 * its slot at once. SIGTERM or SIGINT stops accepting connections, lets the running
 * requests finish for up to --shutdown-timeout seconds, cancels what is left and exits 0.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "run_common.h"
#include "serve_http.h"

const char cmd_serve_help[] =
    "usage: bitnet serve [-m MODEL] [--host ADDR] [--port N] [--parallel N] [options]\n"
    "\n"
    "Serve the model over HTTP with OpenAI's API, so that editors, agents and chat\n"
    "front ends that speak it can use it. Up to N requests are generated at once in one\n"
    "context (continuous batching: a new request's prompt is evaluated in the same step\n"
    "as one token of every running one); more wait in a queue of --queue requests, and\n"
    "beyond that the server answers 503 with Retry-After. Endpoints:\n"
    "  POST /v1/chat/completions, POST /v1/completions, GET /v1/models  (OpenAI's shapes,\n"
    "       \"stream\": true for server-sent events)\n"
    "  POST /tokenize {\"content\": TEXT}, POST /detokenize {\"tokens\": [IDS]}\n"
    "  GET /health, GET /metrics (Prometheus text)\n"
    "  GET /  a chat page for a browser (streams the reply, with a stop button)\n"
    "One line per request goes to stderr (time, method, path, status, prompt and\n"
    "generated tokens, milliseconds). SIGTERM or Ctrl-C stops accepting connections,\n"
    "lets running requests finish for up to --shutdown-timeout seconds, then cancels\n"
    "the rest and exits 0. The sampling options below are the defaults of requests that\n"
    "do not set a field.\n"
    "\n"
    "options:\n"
    "  --host ADDR          address to listen on (default 127.0.0.1: this machine only;\n"
    "                       0.0.0.0 for every IPv4 interface)\n"
    "  --port N             TCP port (default 8080; 0 picks a free one, printed)\n"
    "  --parallel N         requests generated at once (default 4, at most 256); each\n"
    "                       has a context of -c positions\n"
    "  --queue N            requests that may wait for a slot (default 64)\n"
    "  --prefill-chunk N    most prompt tokens evaluated in one step (default 256; 0: no\n"
    "                       limit): a longer prompt is evaluated in parts while the\n"
    "                       running requests go on, instead of holding them back for\n"
    "                       the whole of it. A slot keeps what it evaluated after its\n"
    "                       request, and a prompt that begins the same reuses it\n"
    "                       (\"cache_prompt\": false in a request asks for none)\n"
    "  -n, --n-predict N    default max_tokens of a chat request (default -1: until the\n"
    "                       end of text or a full context); completions default to 16\n"
    "  --api-key KEY        require 'Authorization: Bearer KEY' (else 401); also read\n"
    "                       from $BITNET_API_KEY\n"
    "  --template NAME      chat template: llama3 or bitnet (default: the model's)\n"
    "  --alias NAME         the model's id in responses (default: the file's name)\n"
    "  --ignore-eos         every request goes on after end-of-text tokens (for tests\n"
    "                       and benchmarks; a request can ask with \"ignore_eos\": true)\n"
    "  --max-body N         largest request body in bytes (default 4194304)\n"
    "  --timeout N          seconds a connection may stay idle (default 60)\n"
    "  --shutdown-timeout N seconds running requests get to finish at SIGTERM (default\n"
    "                       10)\n"
    "  --log-format F       access log: text (default) or json (one object per line)\n"
    "  -h, --help           show this help\n"
    "\n";


static volatile sig_atomic_t serve_stop_signal;

/* ------------------------------------------------------------------ helpers */

/* Whether the client closed its end or the connection broke. */
static bool client_gone(MHD_socket fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static const char *finish_reason(const serve_job *job)
{
    switch (job->result.stop) {
    case BN_STOP_MAX_TOKENS:
    case BN_STOP_CONTEXT_FULL:
        return "length";
    case BN_STOP_EOG:
    case BN_STOP_TEXT:
        return "stop";
    case BN_STOP_CANCELLED:
        /* cut by the server (its shutdown): OpenAI's finish reasons have no word for
         * it, and "length" would say a limit was reached; "stop" says the text ended */
        break;
    }
    return "stop";
}

static json_t *usage_object(const serve_job *job)
{
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", job->result.n_prompt,
                     "completion_tokens", job->result.n_generated, "total_tokens",
                     job->result.n_prompt + job->result.n_generated,
                     "prompt_tokens_details", "cached_tokens",
                     job->result.n_prompt_reused);
}

/* ------------------------------------------------------------------ logprobs */

/* How many of the job's log-probability entries belong to the text (lock held).
 * Before the job finished: those whose text is all out (the text of a later one may
 * still be held for a stop text). After: every one whose text starts before the end
 * of the text; the tokens of a stop text are left out. */
static size_t lp_ready(const serve_job *job)
{
    size_t n = 0;
    for (; n < job->n_lp; n++) {
        const serve_logprob *l = &job->lp[n];
        if (job->finished ? l->start > job->len || (l->start == job->len && l->len > 0)
                          : l->start + l->len > job->len)
            break;
    }
    return n;
}

/* Where entry i of the n ready ones lies in the text: [*from, *to). Once the job
 * finished, the last one ends where the text ends: a token that a stop text cuts
 * keeps its text before the stop text, and the last token takes the bytes the
 * decoder still held at the end (an incomplete UTF-8 sequence). */
static void lp_span(const serve_job *job, size_t i, size_t n, size_t *from, size_t *to)
{
    *from = job->lp[i].start;
    *to = job->lp[i].start + job->lp[i].len;
    if (job->finished && i + 1 == n)
        *to = job->len;
}

/* A log-probability as JSON (-9999 for an impossible token: JSON has no -inf). */
static json_t *lp_value(float lp)
{
    return json_real(isfinite(lp) ? (double)lp : -9999.0);
}

static json_t *lp_bytes(const char *p, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer((unsigned char)p[i]));
    return a;
}

/* {"token", "logprob", "bytes"}: token text[n], bytes b[nb]. */
static json_t *lp_chat_item(const char *text, size_t n, const char *b, size_t nb, float lp)
{
    return json_pack("{s:o?, s:o?, s:o?}", "token", serve_json_text(text, n), "logprob",
                     lp_value(lp), "bytes", lp_bytes(b, nb));
}

/* The text of an alternative token: its bytes inside a text, special tokens shown. */
static char *lp_alt_text(const serve_server *srv, bn_token id, size_t *n)
{
    char *t = NULL;
    if (bn_token_bytes(srv->tok, id, true, &t, n) != BN_OK) {
        *n = 0;
        return NULL;
    }
    return t;
}

/* Characters (code points) of a JSON string. */
static size_t lp_chars(const json_t *s)
{
    const unsigned char *p = (const unsigned char *)json_string_value(s);
    size_t n = 0;
    for (size_t i = 0; i < json_string_length(s); i++)
        n += (p[i] & 0xC0) != 0x80;
    return n;
}

/* The entries [first, last) of the n ready ones: chat's "content" list, or the
 * completions' legacy object {tokens, token_logprobs, top_logprobs, text_offset}, whose
 * offsets count characters from *chars (the characters before entry `first`; moved
 * past the entries). */
static json_t *lp_json(serve_conn *sc, size_t first, size_t last, size_t n, size_t *chars)
{
    const serve_job *job = &sc->job;
    const char *text = job->text ? job->text : "";
    bool chat = sc->req.kind == SERVE_CHAT;
    json_t *content = json_array(), *tokens = json_array(), *lps = json_array();
    json_t *tops = json_array(), *offsets = json_array();
    bool ok = content && tokens && lps && tops && offsets;
    for (size_t i = first; ok && i < last; i++) {
        const serve_logprob *l = &job->lp[i];
        size_t from, to;
        lp_span(job, i, n, &from, &to);
        json_t *top = chat ? json_array() : json_object();
        ok = top != NULL;
        bool have_chosen = false;
        for (int32_t k = 0; ok && k < l->n_top; k++) {
            size_t len = 0;
            char *alt = lp_alt_text(sc->srv, l->top_ids[k], &len);
            if (chat) {
                ok = json_array_append_new(top, lp_chat_item(alt ? alt : "", len,
                                                             alt ? alt : "", len,
                                                             l->top_logprobs[k])) == 0;
            } else {
                json_t *key = serve_json_text(alt ? alt : "", len);
                ok = key != NULL;
                if (ok && !json_object_get(top, json_string_value(key)))
                    ok = json_object_set_new(top, json_string_value(key),
                                             lp_value(l->top_logprobs[k])) == 0;
                json_decref(key);
            }
            have_chosen |= l->top_ids[k] == l->id;
            bn_free(alt);
        }
        if (chat) {
            /* token: the text it added to the reply; bytes: its own bytes, as OpenAI
             * has them (joined, they rebuild a character split across tokens) */
            size_t own_n = 0;
            char *own = NULL;
            if (bn_token_bytes(sc->srv->tok, l->id, false, &own, &own_n) != BN_OK)
                own_n = 0;
            json_t *item = ok ? lp_chat_item(text + from, to - from, own ? own : "", own_n,
                                             l->logprob) : NULL;
            bn_free(own);
            if (item && json_object_set(item, "top_logprobs", top) == 0)
                ok = json_array_append_new(content, item) == 0;
            else
                ok = false, json_decref(item);
        } else if (ok) {
            json_t *tok = serve_json_text(text + from, to - from);
            /* as OpenAI does: the chosen token is among its alternatives, even when
             * it is not one of the most probable */
            if (tok && !have_chosen && !json_object_get(top, json_string_value(tok)))
                json_object_set_new(top, json_string_value(tok), lp_value(l->logprob));
            ok = tok && json_array_append_new(tokens, tok) == 0 &&
                 json_array_append_new(lps, lp_value(l->logprob)) == 0 &&
                 json_array_append(tops, top) == 0 &&
                 json_array_append_new(offsets, json_integer((json_int_t)*chars)) == 0;
            if (ok)
                *chars += lp_chars(tok);
        }
        json_decref(top);
    }
    json_t *r = NULL;
    if (ok && chat) {
        r = json_pack("{s:O, s:n}", "content", content, "refusal");
    } else if (ok) {
        r = json_pack("{s:O, s:O, s:O, s:O}", "tokens", tokens, "token_logprobs", lps,
                      "top_logprobs", tops, "text_offset", offsets);
    }
    json_decref(content);
    json_decref(tokens);
    json_decref(lps);
    json_decref(tops);
    json_decref(offsets);
    return r;
}

/* ------------------------------------------------------------------ generation */

/* Tokenizes the request's prompt (completions) or its messages through the chat
 * template (chat) into sc->ids; false after queuing an error response. */
static bool prepare_prompt(struct MHD_Connection *c, serve_conn *sc)
{
    serve_server *srv = sc->srv;
    serve_request *req = &sc->req;
    bn_status st = BN_OK;
    if (req->kind == SERVE_COMPLETION && req->prompt_ids) {
        int32_t nv = bn_tokenizer_n_vocab(srv->tok);
        for (size_t i = 0; i < req->n_prompt_ids; i++)
            if (req->prompt_ids[i] >= nv) {
                serve_reply_fail(c, sc, 400, NULL, "token id %d of 'prompt' is out of the "
                                 "vocabulary (%d tokens)", req->prompt_ids[i], nv);
                return false;
            }
        sc->ids = bn_malloc(req->n_prompt_ids * sizeof *sc->ids, "serve");
        if (!sc->ids) {
            serve_reply_fail(c, sc, 500, NULL, "out of memory");
            return false;
        }
        memcpy(sc->ids, req->prompt_ids, req->n_prompt_ids * sizeof *sc->ids);
        sc->n_ids = req->n_prompt_ids;
    } else if (req->kind == SERVE_COMPLETION) {
        bn_tokenize_params tp = bn_tokenize_default_params();
        tp.add_bos = bn_tokenizer_wants_bos(srv->tok) && bn_tokenizer_bos(srv->tok) >= 0;
        st = bn_tokenize(srv->tok, req->prompt, req->prompt_len, &tp, &sc->ids, &sc->n_ids);
    } else {
        bn_chat_message *m = malloc(req->n_msgs * sizeof *m);
        char *text = NULL;
        size_t len = 0;
        if (!m) {
            serve_reply_fail(c, sc, 500, NULL, "out of memory");
            return false;
        }
        for (size_t i = 0; i < req->n_msgs; i++)
            m[i] = (bn_chat_message){.role = req->msgs[i].role,
                                     .content = req->msgs[i].content};
        st = bn_chat_format(srv->tok, srv->tmpl, m, req->n_msgs, true, &text, &len);
        free(m);
        if (st == BN_OK) {
            bn_tokenize_params tp = bn_tokenize_default_params();
            st = bn_tokenize(srv->tok, text, len, &tp, &sc->ids, &sc->n_ids);
            bn_free(text);
        }
    }
    if (st != BN_OK) {
        serve_reply_fail(c, sc, st == BN_ERR_OOM ? 500 : 400, NULL, "%s", bn_last_error());
        return false;
    }
    if (sc->n_ids == 0) {
        serve_reply_fail(c, sc, 400, NULL, "the prompt is empty");
        return false;
    }
    if ((int64_t)sc->n_ids >= srv->n_ctx) {
        serve_reply_fail(c, sc, 400, "context_length_exceeded", "the prompt is %zu tokens "
                         "but the context holds %d positions (leaving none to generate)",
                         sc->n_ids, srv->n_ctx);
        return false;
    }
    return true;
}

/* Waits for the job to finish, watching the client; a client that goes away cancels
 * it. Returns false when it went away. */
static bool wait_job(serve_conn *sc)
{
    serve_engine *e = sc->srv->engine;
    serve_engine_lock(e);
    while (!sc->job.finished) {
        serve_engine_wait(e, &sc->job, SIZE_MAX, 100);
        if (sc->job.finished)
            break;
        serve_engine_unlock(e);
        if (client_gone(sc->fd)) {
            serve_engine_cancel(e, &sc->job);
            return false;
        }
        serve_engine_lock(e);
    }
    serve_engine_unlock(e);
    return true;
}

/* The whole response of a finished job. */
static json_t *full_response(serve_conn *sc)
{
    serve_server *srv = sc->srv;
    const serve_job *job = &sc->job;
    json_t *text = NULL;
    if (sc->req.kind == SERVE_COMPLETION && sc->req.echo && sc->req.prompt) {
        size_t n = sc->req.prompt_len + job->len;
        char *both = malloc(n + 1);
        if (both) {
            memcpy(both, sc->req.prompt, sc->req.prompt_len);
            memcpy(both + sc->req.prompt_len, job->text ? job->text : "", job->len);
            text = serve_json_text(both, n);
            free(both);
        }
    } else {
        text = serve_json_text(job->text ? job->text : "", job->len);
    }
    if (!text)
        return NULL;
    json_t *lp = json_null();
    if (sc->req.logprobs >= 0) {
        size_t n = lp_ready(job);
        json_decref(lp);
        size_t chars = 0;
        if (!(lp = lp_json(sc, 0, n, n, &chars))) {
            json_decref(text);
            return NULL;
        }
    }
    json_t *choice;
    if (sc->req.kind == SERVE_CHAT)
        choice = json_pack("{s:i, s:{s:s, s:o}, s:o, s:s}", "index", 0, "message", "role",
                           "assistant", "content", text, "logprobs", lp, "finish_reason",
                           finish_reason(job));
    else
        choice = json_pack("{s:i, s:o, s:o, s:s}", "index", 0, "text", text, "logprobs",
                           lp, "finish_reason", finish_reason(job));
    return json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", sc->id, "object",
                     sc->req.kind == SERVE_CHAT ? "chat.completion" : "text_completion",
                     "created", (json_int_t)sc->created, "model", srv->model_id,
                     "choices", choice, "usage", usage_object(job));
}

/* Appends one "data: JSON\n\n" event (takes the reference) to sc->out. */
static bool sse_event(serve_conn *sc, json_t *data)
{
    char *s = data ? json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(data);
    if (!s)
        return false;
    size_t n = strlen(s);
    char *p = realloc(sc->out, sc->out_len + n + 9);
    if (!p) {
        free(s);
        return false;
    }
    sc->out = p;
    memcpy(p + sc->out_len, "data: ", 6);
    memcpy(p + sc->out_len + 6, s, n);
    memcpy(p + sc->out_len + 6 + n, "\n\n", 3);
    sc->out_len += n + 8;
    free(s);
    return true;
}

/* A chunk event: delta text (NULL: none), a finish reason (NULL: null), the role;
 * the log-probabilities of its tokens (NULL: null; the reference is taken). */
static json_t *chunk_lp(serve_conn *sc, json_t *text, const char *finish, bool role,
                        json_t *lp)
{
    json_t *choice;
    if (sc->req.kind == SERVE_CHAT) {
        json_t *delta = json_object();
        if (role)
            json_object_set_new(delta, "role", json_string("assistant"));
        if (text)
            json_object_set_new(delta, "content", text);
        choice = json_pack("{s:i, s:o, s:o, s:o}", "index", 0, "delta", delta, "logprobs",
                           lp ? lp : json_null(), "finish_reason",
                           finish ? json_string(finish) : json_null());
    } else {
        choice = json_pack("{s:i, s:o, s:o, s:o}", "index", 0, "text",
                           text ? text : json_string(""), "logprobs",
                           lp ? lp : json_null(), "finish_reason",
                           finish ? json_string(finish) : json_null());
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", sc->id, "object",
                     sc->req.kind == SERVE_CHAT ? "chat.completion.chunk" : "text_completion",
                     "created", (json_int_t)sc->created, "model", sc->srv->model_id,
                     "choices", choice);
}

static json_t *chunk(serve_conn *sc, json_t *text, const char *finish, bool role)
{
    return chunk_lp(sc, text, finish, role, NULL);
}

/* Fills sc->out with the next events (lock held); false on out of memory. */
static bool stream_next(serve_conn *sc)
{
    serve_job *job = &sc->job;
    if (sc->phase == 0) {
        sc->phase = 1;
        if (sc->req.kind == SERVE_CHAT)
            return sse_event(sc, chunk(sc, json_string(""), NULL, true));
        if (sc->req.echo && sc->req.prompt)
            return sse_event(sc, chunk(sc, serve_json_text(sc->req.prompt,
                                                           sc->req.prompt_len), NULL, false));
        return true;
    }
    bool failed = job->finished && (job->error[0] || job->oom);
    if (sc->req.logprobs >= 0 && !failed) {
        /* the text goes out with its tokens' entries: up to the end of the last
         * entry whose text is all out, everything once the job finished. The newest
         * token waits for the next one: if it is the last, it takes the bytes the
         * decoder still holds at the end */
        size_t n = lp_ready(job), upto = sc->framed;
        if (!job->finished && n > 0 && n == job->n_lp)
            n--;
        if (job->finished)
            upto = job->len;
        else if (n > 0 && job->lp[n - 1].start + job->lp[n - 1].len > upto)
            upto = job->lp[n - 1].start + job->lp[n - 1].len;
        if (upto > sc->framed || n > sc->lp_sent) {
            json_t *lp = lp_json(sc, sc->lp_sent, n, n, &sc->lp_chars);
            json_t *t = serve_json_text(job->text ? job->text + sc->framed : "",
                                        upto - sc->framed);
            sc->framed = upto;
            sc->lp_sent = n;
            if (!lp || !t) {
                json_decref(lp);
                json_decref(t);
                return false;
            }
            return sse_event(sc, chunk_lp(sc, t, NULL, false, lp));
        }
    } else if (job->len > sc->framed) {
        json_t *t = serve_json_text(job->text + sc->framed, job->len - sc->framed);
        sc->framed = job->len;
        return sse_event(sc, chunk(sc, t, NULL, false));
    }
    if (job->finished && sc->phase == 1) {
        sc->phase = 2;
        bool ok;
        if (failed) {
            serve_error err;
            serve_fail(&err, 500, NULL, "%s", job->oom ? "out of memory" : job->error);
            ok = sse_event(sc, serve_error_body(&err));
        } else {
            ok = sse_event(sc, chunk(sc, NULL, finish_reason(job), false));
            if (ok && sc->req.include_usage) {
                json_t *u = chunk(sc, NULL, NULL, false);
                json_object_set_new(u, "choices", json_array());
                json_object_set_new(u, "usage", usage_object(job));
                ok = sse_event(sc, u);
            }
        }
        char *p = ok ? realloc(sc->out, sc->out_len + 15) : NULL;
        if (!p)
            return false;
        sc->out = p;
        memcpy(p + sc->out_len, "data: [DONE]\n\n", 14);
        sc->out_len += 14;
    }
    return true;
}

/* MHD's reader of a stream: the next bytes of events, waiting for the engine's text. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    serve_conn *sc = cls;
    serve_engine *e = sc->srv->engine;
    for (;;) {
        if (sc->out_pos < sc->out_len) {
            size_t n = sc->out_len - sc->out_pos;
            n = n < max ? n : max;
            memcpy(buf, sc->out + sc->out_pos, n);
            sc->out_pos += n;
            return (ssize_t)n;
        }
        sc->out_len = sc->out_pos = 0;
        if (sc->phase == 2)
            return MHD_CONTENT_READER_END_OF_STREAM;
        serve_engine_lock(e);
        size_t had = sc->out_len;
        if (!stream_next(sc)) {
            serve_engine_unlock(e);
            serve_engine_cancel(e, &sc->job);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (sc->out_len == had && sc->phase != 2) {
            serve_engine_wait(e, &sc->job, sc->job.len, 100);   /* for more text */
            serve_engine_unlock(e);
            if (client_gone(sc->fd)) {
                serve_engine_cancel(e, &sc->job);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            continue;
        }
        serve_engine_unlock(e);
    }
}

/* POST /v1/completions and /v1/chat/completions. */
static enum MHD_Result handle_generate(struct MHD_Connection *c, serve_conn *sc,
                                       serve_kind kind)
{
    serve_server *srv = sc->srv;
    serve_error err;
    if (!serve_request_parse(sc->body ? sc->body : "", sc->len, kind, &srv->sp,
                             kind == SERVE_CHAT ? srv->chat_max_tokens : 16, &sc->req, &err))
        return serve_reply_error(c, sc, &err);
    sc->have_req = true;
    if (!prepare_prompt(c, sc))
        return MHD_YES;
    serve_job *job = &sc->job;
    job->ids = sc->ids;
    job->n_ids = (int32_t)sc->n_ids;
    job->gp = bn_generate_default_params();
    job->gp.max_tokens = sc->req.max_tokens;
    job->gp.sampling = sc->req.sp;
    if (!sc->req.seed_given && !srv->seed_given) {
        uint64_t r = (uint64_t)time(NULL) * 6364136223846793005ULL;
        pthread_mutex_lock(&srv->lock);
        r ^= ++srv->next_id * 0x9E3779B97F4A7C15ULL;
        pthread_mutex_unlock(&srv->lock);
        job->gp.sampling.seed = r ^ (uint64_t)(run_now() * 1e9);
    }
    job->gp.stops = (const char *const *)sc->req.stops;
    job->gp.n_stops = sc->req.n_stops;
    job->gp.ignore_eog = sc->req.ignore_eos || srv->ignore_eos;
    job->gp.reuse_prompt = sc->req.cache_prompt;
    job->logprobs = sc->req.logprobs;
    pthread_mutex_lock(&srv->lock);
    snprintf(sc->id, sizeof sc->id, "%s-%llx%06llx", kind == SERVE_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)srv->started, (unsigned long long)++srv->next_id);
    pthread_mutex_unlock(&srv->lock);
    sc->created = time(NULL);
    if (!serve_engine_submit(srv->engine, job))
        return serve_reply_fail(c, sc, 503, NULL, "the server is busy: every slot is taken "
                                "and the queue is full; try again");
    sc->submitted = true;
    if (sc->req.stream) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
                                                                   stream_read, sc, NULL);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        sc->status = 200;
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (!wait_job(sc))
        return MHD_NO;                   /* the client went away: close */
    if (job->oom || job->error[0])
        return serve_reply_fail(c, sc, 500, NULL, "%s", job->oom ? "out of memory" : job->error);
    if (job->result.stop == BN_STOP_CANCELLED)
        return serve_reply_fail(c, sc, 503, NULL, "the server is shutting down");
    return serve_reply_json(c, sc, 200, full_response(sc));
}

/* ------------------------------------------------------------------ requests */

static serve_route route_of(const char *url)
{
    for (int r = 0; r < ROUTE_OTHER; r++)
        if (!strcmp(url, route_path[r]))
            return (serve_route)r;
    if (!strcmp(url, "/v1/health"))
        return ROUTE_HEALTH;
    if (!strcmp(url, "/index.html"))
        return ROUTE_PAGE;
    return ROUTE_OTHER;
}

/* Whether the request carries the API key (or none is needed). */
static bool authorized(struct MHD_Connection *c, const serve_server *srv)
{
    if (!srv->api_key)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    return serve_secret_equal(h, srv->api_key);
}

/* The first call of a request: its route, method, key and size. Returns MHD_YES with
 * a response queued when it is refused now. */
static enum MHD_Result check_request(struct MHD_Connection *c, serve_conn *sc,
                                     const char *method)
{
    serve_server *srv = sc->srv;
    bool post = sc->route == ROUTE_CHAT || sc->route == ROUTE_COMPLETIONS ||
                sc->route == ROUTE_TOKENIZE || sc->route == ROUTE_DETOKENIZE;
    sc->refused = true;
    if (sc->route == ROUTE_OTHER)
        return serve_reply_fail(c, sc, 404, NULL, "no such endpoint: %s %s", method, sc->path);
    if (strcmp(method, post ? "POST" : "GET") != 0 &&
        !(strcmp(method, "HEAD") == 0 && !post))
        return serve_reply_fail(c, sc, 405, NULL, "%s needs %s, not %s", route_path[sc->route],
                                post ? "POST" : "GET", method);
    if (sc->route != ROUTE_HEALTH && sc->route != ROUTE_PAGE && !authorized(c, srv))
        return serve_reply_fail(c, sc, 401, "invalid_api_key", "a valid API key is needed: "
                                "'Authorization: Bearer KEY'");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > srv->max_body)
        return serve_reply_fail(c, sc, 413, NULL, "the body is larger than %zu bytes",
                                srv->max_body);
    sc->refused = false;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    serve_server *srv = cls;
    serve_conn *sc = *con_cls;
    if (!sc) {
        if (!(sc = calloc(1, sizeof *sc)))
            return MHD_NO;
        *con_cls = sc;
        sc->srv = srv;
        pthread_mutex_lock(&srv->lock);
        srv->in_flight++;
        pthread_mutex_unlock(&srv->lock);
        sc->t0 = run_now();
        sc->route = route_of(url);
        snprintf(sc->method, sizeof sc->method, "%s", method);
        snprintf(sc->path, sizeof sc->path, "%s", url);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        sc->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
        return check_request(c, sc, method);
    }
    if (sc->refused)
        return MHD_YES;
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (sc->too_big || sc->len + n > srv->max_body) {
            sc->too_big = true;
            return MHD_YES;
        }
        if (sc->len + n + 1 > sc->cap) {
            size_t cap = (sc->len + n + 1) * 2;
            cap = cap > srv->max_body + 1 ? srv->max_body + 1 : cap;
            char *p = realloc(sc->body, cap);
            if (!p)
                return MHD_NO;
            sc->body = p;
            sc->cap = cap;
        }
        memcpy(sc->body + sc->len, upload, n);
        sc->len += n;
        sc->body[sc->len] = '\0';
        return MHD_YES;
    }
    if (sc->too_big)
        return serve_reply_fail(c, sc, 413, NULL, "the body is larger than %zu bytes",
                                srv->max_body);
    switch (sc->route) {
    case ROUTE_CHAT:
        return handle_generate(c, sc, SERVE_CHAT);
    case ROUTE_COMPLETIONS:
        return handle_generate(c, sc, SERVE_COMPLETION);
    case ROUTE_TOKENIZE:
        return serve_handle_tokenize(c, sc);
    case ROUTE_DETOKENIZE:
        return serve_handle_detokenize(c, sc);
    case ROUTE_METRICS:
        return serve_handle_metrics(c, sc);
    case ROUTE_HEALTH:
        return serve_reply_json(c, sc, 200, json_pack("{s:s}", "status", "ok"));
    case ROUTE_PAGE:
        return serve_handle_page(c, sc);
    case ROUTE_MODELS:
        return serve_handle_models(c, sc);
    case ROUTE_OTHER:
    case ROUTE_COUNT:
        break;
    }
    return MHD_NO;
}

/* The end of a request (answered, failed or abandoned): the generation is cancelled
 * if it still runs, the access log line written and the request's memory freed. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    serve_server *srv = cls;
    serve_conn *sc = *con_cls;
    if (!sc)
        return;
    *con_cls = NULL;
    if (sc->submitted)
        serve_engine_cancel(srv->engine, &sc->job);
    int status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? sc->status : 499;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && sc->status == 0)
        status = 499;                    /* nginx's "client closed the request" */
    size_t k = 0;
    while (k < N_COUNTED && counted_status[k] != status)
        k++;
    pthread_mutex_lock(&srv->lock);
    srv->requests[sc->route][k]++;
    srv->in_flight--;
    pthread_mutex_unlock(&srv->lock);
    double ms = (run_now() - sc->t0) * 1e3;
    int n_prompt = sc->submitted ? sc->job.result.n_prompt : 0;
    int n_gen = sc->submitted ? sc->job.result.n_generated : 0;
    if (sc->submitted && sc->job.result.stop == BN_STOP_CANCELLED && n_prompt == 0)
        n_prompt = (int)sc->n_ids;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (srv->log_json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:f}", "time", when,
                              "method", sc->method, "path", sc->path, "status", status,
                              "prompt_tokens", n_prompt, "completion_tokens", n_gen,
                              "ms", ms);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (s)
            fprintf(stderr, "%s\n", s);
        free(s);
        json_decref(o);
    } else {
        fprintf(stderr, "%s %s %s %d prompt=%d generated=%d %.1fms\n", when, sc->method,
                sc->path, status, n_prompt, n_gen, ms);
    }
    serve_request_free(&sc->req);
    serve_job_free(&sc->job);
    bn_free(sc->ids);
    free(sc->body);
    free(sc->out);
    free(sc);
}

/* ------------------------------------------------------------------ the command */

/* The template to use: the one named (checked), else the model's, else llama3 with a
 * notice. */
static bool serve_pick_template(const bn_tokenizer *tok, const char *name, const char **tmpl)
{
    char *text = NULL;
    size_t len;
    *tmpl = name;
    if (bn_chat_format(tok, name, NULL, 0, false, &text, &len) == BN_OK) {
        bn_free(text);
        return true;
    }
    if (name) {
        fprintf(stderr, "bitnet serve: %s\n", bn_last_error());
        return false;
    }
    fprintf(stderr, "bitnet serve: %s; chat requests use the llama3 template (choose one "
            "with --template)\n", bn_last_error());
    *tmpl = "llama3";
    return true;
}

/* libmicrohttpd's messages (a client that went away, a malformed request line):
 * informational, shown with -v. */
static void on_http_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    bn_log(BN_LOG_INFO, "serve: http: %s", msg);
}

/* Requests begun and not completed. */
static int32_t serve_in_flight(serve_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    int32_t n = srv->in_flight;
    pthread_mutex_unlock(&srv->lock);
    return n;
}

static void on_stop_signal(int sig)
{
    (void)sig;
    serve_stop_signal = 1;
}

/* Starts the daemon on host:port; NULL with a message on failure. */
static struct MHD_Daemon *serve_listen(serve_server *srv, const char *host, int port,
                                       unsigned conn_limit, unsigned timeout)
{
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *addr;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)port);
        addr = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)port);
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        fprintf(stderr, "bitnet serve: --host '%s' is not an IPv4 or IPv6 address\n", host);
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, srv,
        MHD_OPTION_SOCK_ADDR, addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_CONNECTION_LIMIT, conn_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_EXTERNAL_LOGGER, on_http_log, NULL,
        MHD_OPTION_END);
    if (!d)
        fprintf(stderr, "bitnet serve: cannot listen on %s port %d: %s\n", host, port,
                errno ? strerror(errno) : "libmicrohttpd refused the settings");
    return d;
}

int cmd_serve(int argc, char **argv)
{
    const char *cmd = "serve";
    run_opts o;
    run_opts_init(&o);
    const char *host = "127.0.0.1", *api_key = getenv("BITNET_API_KEY"), *tmpl_name = NULL;
    const char *alias = NULL;
    int64_t port = 8080, parallel = 4, queue = 64, n_predict = -1, max_body = 4 << 20;
    int64_t prefill_chunk = 256;
    int64_t timeout = 60, shutdown_timeout = 10;
    bool log_json = false, ignore_eos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = run_parse_opt(cmd, argc, argv, &i, &o, true);
        if (r == 1)
            continue;
        if (r != 0)
            return EXIT_USAGE;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            return cli_help("serve");
        } else if (!strcmp(a, "--host") && v) {
            host = argv[++i];
        } else if (!strcmp(a, "--port") && v) {
            if (!cli_parse_int(argv[++i], 0, 65535, &port))
                return cli_usage_error(cmd, "invalid --port '%s' (0 to 65535)", v);
        } else if (!strcmp(a, "--parallel") && v) {
            if (!cli_parse_int(argv[++i], 1, BN_MAX_SEQ, &parallel))
                return cli_usage_error(cmd, "invalid --parallel '%s' (1 to %d)", v,
                                       BN_MAX_SEQ);
        } else if (!strcmp(a, "--prefill-chunk") && v) {
            if (!cli_parse_int(argv[++i], 0, INT32_MAX, &prefill_chunk))
                return cli_usage_error(cmd, "invalid --prefill-chunk '%s' (0 for no limit, "
                                       "or a count of tokens)", v);
        } else if (!strcmp(a, "--queue") && v) {
            if (!cli_parse_int(argv[++i], 0, 4096, &queue))
                return cli_usage_error(cmd, "invalid --queue '%s' (0 to 4096)", v);
        } else if ((!strcmp(a, "-n") || !strcmp(a, "--n-predict")) && v) {
            if (!cli_parse_int(argv[++i], -1, INT32_MAX, &n_predict))
                return cli_usage_error(cmd, "invalid token count '%s'", v);
        } else if (!strcmp(a, "--api-key") && v) {
            api_key = argv[++i];
        } else if (!strcmp(a, "--template") && v) {
            tmpl_name = argv[++i];
        } else if (!strcmp(a, "--alias") && v) {
            alias = argv[++i];
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = true;
        } else if (!strcmp(a, "--max-body") && v) {
            if (!cli_parse_int(argv[++i], 1024, (int64_t)1 << 30, &max_body))
                return cli_usage_error(cmd, "invalid --max-body '%s' (1024 to 2^30)", v);
        } else if (!strcmp(a, "--timeout") && v) {
            if (!cli_parse_int(argv[++i], 1, 86400, &timeout))
                return cli_usage_error(cmd, "invalid --timeout '%s' (1 to 86400)", v);
        } else if (!strcmp(a, "--shutdown-timeout") && v) {
            if (!cli_parse_int(argv[++i], 0, 86400, &shutdown_timeout))
                return cli_usage_error(cmd, "invalid --shutdown-timeout '%s' (0 to 86400)",
                                       v);
        } else if (!strcmp(a, "--log-format") && v) {
            i++;
            if (!strcmp(v, "json"))
                log_json = true;
            else if (strcmp(v, "text") != 0)
                return cli_usage_error(cmd, "invalid --log-format '%s' (text or json)", v);
        } else if (a[0] == '-') {
            return cli_usage_error(cmd, "unknown option '%s' (or it needs a value)", a);
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
    }
    if (!run_model_or_default(cmd, &o))
        return EXIT_USAGE;
    if (api_key && !*api_key)
        api_key = NULL;

    /* SIGTERM and SIGINT only set a flag from now on; the threads started below
     * inherit a mask that blocks them, so that the main thread alone takes them */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigset_t stop_set, old_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);

    int rc = 1;
    serve_server srv;
    memset(&srv, 0, sizeof srv);
    pthread_mutex_init(&srv.lock, NULL);
    o.n_seq = (int32_t)parallel;
    double t_load = 0;
    if (!run_load(cmd, &o, false, &srv.model, &srv.ctx, &t_load))
        goto done;
    srv.tok = bn_model_tokenizer(srv.model);
    if (!srv.tok) {
        fprintf(stderr, "bitnet serve: the model has no tokenizer (no tokenizer.ggml.* "
                "metadata)\n");
        goto done;
    }
    if (!serve_pick_template(srv.tok, tmpl_name, &srv.tmpl))
        goto done;
    const char *slash = strrchr(o.model, '/');
    srv.model_id = alias ? alias : slash ? slash + 1 : o.model;
    srv.api_key = api_key;
    srv.sp = o.sp;
    srv.seed_given = o.seed_given;
    srv.chat_max_tokens = (int32_t)n_predict;
    srv.n_ctx = bn_context_n_ctx(srv.ctx);
    srv.max_body = (size_t)max_body;
    srv.log_json = log_json;
    srv.ignore_eos = ignore_eos;
    srv.started = time(NULL);
    if (!(srv.engine = serve_engine_start(srv.ctx, (int32_t)queue, (int32_t)prefill_chunk)))
        goto done;
    /* room for every slot and queued request, and as many more to be refused */
    unsigned conn_limit = (unsigned)(2 * (parallel + queue) + 16);
    if (!(srv.daemon = serve_listen(&srv, host, (int)port, conn_limit, (unsigned)timeout)))
        goto done;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv.daemon,
                                                         MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "serve: %s on http://%s%s%s:%u/ (%d slot%s of %d positions, queue "
            "%d%s)\n", srv.model_id, strchr(host, ':') ? "[" : "", host,
            strchr(host, ':') ? "]" : "", di ? di->port : (unsigned)port, (int)parallel,
            CLI_S(parallel), srv.n_ctx, (int)queue, api_key ? ", API key required" : "");
    fflush(stderr);

    sigset_t wait_set = old_set;            /* the stop signals let through */
    sigdelset(&wait_set, SIGTERM);
    sigdelset(&wait_set, SIGINT);
    while (!serve_stop_signal)
        sigsuspend(&wait_set);              /* returns after the handler ran */
    fprintf(stderr, "serve: stopping: %d request%s running or queued\n",
            serve_engine_pending(srv.engine), CLI_S(serve_engine_pending(srv.engine)));
    MHD_quiesce_daemon(srv.daemon);        /* no new connections */
    serve_engine_drain(srv.engine, false);
    double deadline = run_now() + (double)shutdown_timeout;
    while (serve_engine_pending(srv.engine) > 0 && run_now() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (serve_engine_pending(srv.engine) > 0)
        fprintf(stderr, "serve: cancelling %d request%s after %lld s\n",
                serve_engine_pending(srv.engine), CLI_S(serve_engine_pending(srv.engine)),
                (long long)shutdown_timeout);
    serve_engine_drain(srv.engine, true);
    /* the responses of the requests that ended get out before the sockets close
     * (a second at most: a client that does not read is not waited for) */
    deadline = run_now() + 1.0;
    while (serve_in_flight(&srv) > 0 && run_now() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(srv.daemon);           /* waits for the connections' threads */
    srv.daemon = NULL;
    fprintf(stderr, "serve: stopped\n");
    rc = 0;
done:
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    if (srv.daemon)
        MHD_stop_daemon(srv.daemon);
    serve_engine_free(srv.engine);
    bn_context_free(srv.ctx);
    bn_model_free(srv.model);
    pthread_mutex_destroy(&srv.lock);
    return rc;
}
