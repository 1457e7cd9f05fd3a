/*
 * serve_http.c - the HTTP answers of `bitnet serve` that do not generate: JSON
 * responses and OpenAI-shaped errors, /tokenize, /detokenize, /metrics (Prometheus
 * text), /v1/models and the chat page at /.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve_http.h"

const char *const route_path[ROUTE_COUNT] = {
    "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics",
    "/tokenize", "/detokenize", "/", "other"
};

/* The chat page (serve_page.html, embedded by cmake/embed.cmake). */
extern const char serve_page[];
extern const size_t serve_page_len;

/* Status codes counted per route in /metrics. */
const int counted_status[] = {200, 400, 401, 404, 405, 413, 500, 503};

/* ------------------------------------------------------------------ responses */

/* Queues a JSON response (takes the reference to body). */
enum MHD_Result serve_reply_json(struct MHD_Connection *c, serve_conn *sc, int status,
                                 json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!s) {
        status = 500;
        s = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                   "\"param\":null,\"code\":null}}");
        if (!s)
            return MHD_NO;
    }
    size_t n = strlen(s);
    s[n] = '\n';                /* the NUL's place: curl's output ends its line */
    struct MHD_Response *r = MHD_create_response_from_buffer(n + 1, s, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (status == 503)
        MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    sc->status = status;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

json_t *serve_error_body(const serve_error *err)
{
    return json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", err->message,
                     "type", err->type, "param",
                     err->param[0] ? json_string(err->param) : json_null(),
                     "code", err->code ? json_string(err->code) : json_null());
}

enum MHD_Result serve_reply_error(struct MHD_Connection *c, serve_conn *sc,
                                  const serve_error *err)
{
    return serve_reply_json(c, sc, err->status, serve_error_body(err));
}

enum MHD_Result serve_reply_fail(struct MHD_Connection *c, serve_conn *sc, int status,
                                 const char *code, const char *fmt, ...)
{
    serve_error err;
    serve_fail(&err, status, NULL, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.message, sizeof err.message, fmt, ap);
    va_end(ap);
    err.code = code;
    return serve_reply_error(c, sc, &err);
}

/* POST /tokenize {"content": TEXT, "add_special": false, "parse_special": true} */
enum MHD_Result serve_handle_tokenize(struct MHD_Connection *c, serve_conn *sc)
{
    json_error_t jerr;
    json_t *o = json_loadb(sc->body ? sc->body : "", sc->len, 0, &jerr);
    json_t *content = json_object_get(o, "content");
    json_t *add = json_object_get(o, "add_special");
    json_t *special = json_object_get(o, "parse_special");
    serve_error err;
    if (!o)
        serve_fail(&err, 400, NULL, "the body is not valid JSON: %s", jerr.text);
    else if (!json_is_string(content))
        serve_fail(&err, 400, "content", "'content' must be a string");
    else if (add && !json_is_boolean(add))
        serve_fail(&err, 400, "add_special", "'add_special' must be true or false");
    else if (special && !json_is_boolean(special))
        serve_fail(&err, 400, "parse_special", "'parse_special' must be true or false");
    else
        err.status = 0;
    if (err.status) {
        json_decref(o);
        return serve_reply_error(c, sc, &err);
    }
    bn_tokenize_params tp = bn_tokenize_default_params();
    tp.add_bos = json_is_true(add) && bn_tokenizer_bos(sc->srv->tok) >= 0;
    tp.parse_special = !special || json_is_true(special);
    bn_token *ids = NULL;
    size_t n = 0;
    bn_status st = bn_tokenize(sc->srv->tok, json_string_value(content),
                               json_string_length(content), &tp, &ids, &n);
    json_decref(o);
    if (st != BN_OK)
        return serve_reply_fail(c, sc, 500, NULL, "%s", bn_last_error());
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_integer(ids[i]));
    bn_free(ids);
    return serve_reply_json(c, sc, 200, json_pack("{s:o}", "tokens", arr));
}

/* POST /detokenize {"tokens": [IDS]} */
enum MHD_Result serve_handle_detokenize(struct MHD_Connection *c, serve_conn *sc)
{
    json_error_t jerr;
    json_t *o = json_loadb(sc->body ? sc->body : "", sc->len, 0, &jerr);
    json_t *tokens = json_object_get(o, "tokens");
    if (!o)
        return serve_reply_fail(c, sc, 400, NULL, "the body is not valid JSON: %s", jerr.text);
    size_t n = json_array_size(tokens);
    bn_token *ids = malloc((n ? n : 1) * sizeof *ids);
    int32_t nv = bn_tokenizer_n_vocab(sc->srv->tok);
    bool ok = json_is_array(tokens) && ids;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *t = json_array_get(tokens, i);
        ok = json_is_integer(t) && json_integer_value(t) >= 0 && json_integer_value(t) < nv;
        if (ok)
            ids[i] = (bn_token)json_integer_value(t);
    }
    json_decref(o);
    if (!ok) {
        free(ids);
        serve_error err;
        serve_fail(&err, 400, "tokens", "'tokens' must be an array of token ids (0 to %d)",
                   nv - 1);
        return serve_reply_error(c, sc, &err);
    }
    char *text = NULL;
    size_t len = 0;
    bn_status st = bn_detokenize(sc->srv->tok, ids, n, false, &text, &len);
    free(ids);
    if (st != BN_OK)
        return serve_reply_fail(c, sc, 500, NULL, "%s", bn_last_error());
    json_t *s = serve_json_text(text, len);
    bn_free(text);
    return serve_reply_json(c, sc, 200, s ? json_pack("{s:o}", "content", s) : NULL);
}

/* The resident set size of the process now (/proc/self/statm), 0 when unknown. */
static uint64_t resident_bytes(void)
{
    unsigned long long pages_total = 0, pages_resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    int n = fscanf(f, "%llu %llu", &pages_total, &pages_resident);
    fclose(f);
    return n == 2 ? (uint64_t)pages_resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

/* GET /metrics: Prometheus' text format. */
enum MHD_Result serve_handle_metrics(struct MHD_Connection *c, serve_conn *sc)
{
    serve_server *srv = sc->srv;
    serve_stats st;
    serve_engine_stats(srv->engine, &st);
    bn_mem_stats mem;
    bn_mem_get_stats(&mem);
    bn_mem_stats gen_mem = {0};
    bn_mem_get_tag_stats("generator", &gen_mem);
    size_t cap = 16384, n = 0;
    char *s = malloc(cap);
    if (!s)
        return serve_reply_fail(c, sc, 500, NULL, "out of memory");
#define OUT(...) (n += (size_t)snprintf(s + n, n < cap ? cap - n : 0, __VA_ARGS__))
    OUT("# HELP bitnet_requests_total HTTP requests answered, by route and status.\n"
        "# TYPE bitnet_requests_total counter\n");
    pthread_mutex_lock(&srv->lock);
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (size_t k = 0; k <= N_COUNTED; k++)
            if (srv->requests[r][k]) {
                if (k < N_COUNTED)
                    OUT("bitnet_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                        route_path[r], counted_status[k],
                        (unsigned long long)srv->requests[r][k]);
                else
                    OUT("bitnet_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                        route_path[r], (unsigned long long)srv->requests[r][k]);
            }
    pthread_mutex_unlock(&srv->lock);
    OUT("# HELP bitnet_prompt_tokens_total Prompt tokens evaluated.\n"
        "# TYPE bitnet_prompt_tokens_total counter\n"
        "bitnet_prompt_tokens_total %llu\n"
        "# HELP bitnet_prompt_tokens_reused_total Prompt tokens not evaluated again: a\n"
        "# slot still held them from an earlier request.\n"
        "# TYPE bitnet_prompt_tokens_reused_total counter\n"
        "bitnet_prompt_tokens_reused_total %llu\n"
        "# HELP bitnet_generated_tokens_total Tokens generated.\n"
        "# TYPE bitnet_generated_tokens_total counter\n"
        "bitnet_generated_tokens_total %llu\n"
        "# HELP bitnet_generations_total Generations finished, by how.\n"
        "# TYPE bitnet_generations_total counter\n"
        "bitnet_generations_total{end=\"done\"} %llu\n"
        "bitnet_generations_total{end=\"cancelled\"} %llu\n"
        "# HELP bitnet_decode_steps_total Steps of the batched decode.\n"
        "# TYPE bitnet_decode_steps_total counter\n"
        "bitnet_decode_steps_total %llu\n"
        "# HELP bitnet_busy_seconds_total Seconds spent in decode steps.\n"
        "# TYPE bitnet_busy_seconds_total counter\n"
        "bitnet_busy_seconds_total %.6f\n"
        "# HELP bitnet_tokens_per_second Generated tokens per second of decoding.\n"
        "# TYPE bitnet_tokens_per_second gauge\n"
        "bitnet_tokens_per_second %.3f\n"
        "# HELP bitnet_slots Slots (sequences generated at once).\n"
        "# TYPE bitnet_slots gauge\n"
        "bitnet_slots %d\n"
        "# HELP bitnet_slots_busy Slots generating now.\n"
        "# TYPE bitnet_slots_busy gauge\n"
        "bitnet_slots_busy %d\n"
        "# HELP bitnet_queue_length Requests waiting for a slot.\n"
        "# TYPE bitnet_queue_length gauge\n"
        "bitnet_queue_length %d\n"
        "# HELP bitnet_queue_capacity Requests that may wait before 503.\n"
        "# TYPE bitnet_queue_capacity gauge\n"
        "bitnet_queue_capacity %d\n"
        "# HELP bitnet_memory_live_bytes Bytes the library's allocator holds now.\n"
        "# TYPE bitnet_memory_live_bytes gauge\n"
        "bitnet_memory_live_bytes %zu\n"
        "# HELP bitnet_memory_generator_bytes Of those, the generator's (its batch buffer\n"
        "# keeps the size of the largest step so far).\n"
        "# TYPE bitnet_memory_generator_bytes gauge\n"
        "bitnet_memory_generator_bytes %zu\n"
        "# HELP bitnet_resident_bytes Resident memory of the process.\n"
        "# TYPE bitnet_resident_bytes gauge\n"
        "bitnet_resident_bytes %llu\n",
        (unsigned long long)st.prompt_tokens, (unsigned long long)st.prompt_tokens_reused,
        (unsigned long long)st.generated_tokens,
        (unsigned long long)st.jobs_done, (unsigned long long)st.jobs_cancelled,
        (unsigned long long)st.steps, st.busy_seconds,
        st.busy_seconds > 0 ? (double)st.generated_tokens / st.busy_seconds : 0.0,
        st.n_slots, st.slots_busy, st.queue_len, st.queue_max, mem.live_bytes,
        gen_mem.live_bytes,
        (unsigned long long)resident_bytes());
#undef OUT
    if (n >= cap) {
        free(s);
        return serve_reply_fail(c, sc, 500, NULL, "metrics too long");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    sc->status = 200;
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* GET /: the chat page. */
enum MHD_Result serve_handle_page(struct MHD_Connection *c, serve_conn *sc)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        serve_page_len, (void *)serve_page, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Content-Security-Policy", "default-src 'self'; "
                            "script-src 'unsafe-inline'; style-src 'unsafe-inline'");
    sc->status = 200;
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* GET /v1/models: the one model. */
enum MHD_Result serve_handle_models(struct MHD_Connection *c, serve_conn *sc)
{
    const serve_server *srv = sc->srv;
    bn_model_info in;
    bn_model_get_info(srv->model, &in);
    json_t *m = json_pack("{s:s, s:s, s:I, s:s, s:{s:s, s:i, s:i, s:I}}", "id",
                          srv->model_id, "object", "model", "created",
                          (json_int_t)srv->started, "owned_by", "bitnet", "meta",
                          "arch", in.arch, "n_ctx", srv->n_ctx, "n_vocab",
                          bn_tokenizer_n_vocab(srv->tok), "size", (json_int_t)in.file_size);
    return serve_reply_json(c, sc, 200, json_pack("{s:s, s:[o]}", "object", "list", "data",
                            m));
}
