/*
 * serve_request.c - the request bodies of `bitnet serve`'s generation endpoints
 * (POST /v1/completions and /v1/chat/completions), read with jansson into a checked
 * serve_request. Each field the server uses is checked for its type and range, and a
 * refusal names it as OpenAI's API does ({"error": {"message", "type", "param",
 * "code"}}); fields it does not know are ignored, as OpenAI clients send many. Needs no
 * model, so that the libFuzzer target fuzz/fuzz_serve_request.c can drive it alone.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

bool serve_fail(serve_error *err, int status, const char *param, const char *fmt, ...)
{
    err->status = status;
    err->type = status == 401 ? "authentication_error"
              : status >= 500 ? "server_error" : "invalid_request_error";
    err->code = NULL;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

void serve_request_free(serve_request *req)
{
    free(req->prompt);
    free(req->prompt_ids);
    for (size_t i = 0; i < req->n_msgs; i++) {
        free(req->msgs[i].role);
        free(req->msgs[i].content);
    }
    free(req->msgs);
    for (int i = 0; i < req->n_stops; i++)
        free(req->stops[i]);
    memset(req, 0, sizeof *req);
}

/* A copy of a JSON string's bytes (NUL-terminated; jansson refuses \u0000 in input). */
static char *dup_string(const json_t *s)
{
    size_t n = json_string_length(s);
    char *p = malloc(n + 1);
    if (p)
        memcpy(p, json_string_value(s), n + 1);
    return p;
}

/* The member `name` of obj, NULL when absent or null. */
static json_t *field(const json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    return json_is_null(v) ? NULL : v;
}

/* A number field into *out when present: in [lo, hi], else an error naming it. */
static bool get_number(const json_t *obj, const char *name, double lo, double hi,
                       float *out, serve_error *err)
{
    json_t *v = field(obj, name);
    if (!v)
        return true;
    if (!json_is_number(v))
        return serve_fail(err, 400, name, "'%s' must be a number", name);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return serve_fail(err, 400, name, "'%s' must be between %g and %g", name, lo, hi);
    *out = (float)x;
    return true;
}

/* An integer field into *out when present, in [lo, hi]. */
static bool get_int(const json_t *obj, const char *name, json_int_t lo, json_int_t hi,
                    json_int_t *out, bool *given, serve_error *err)
{
    json_t *v = field(obj, name);
    if (!v)
        return true;
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
        fabs(json_real_value(v)) < 9e15) {
        json_int_t i = (json_int_t)json_real_value(v);   /* 16.0 is 16 */
        if (i < lo || i > hi)
            return serve_fail(err, 400, name, "'%s' must be between %lld and %lld", name,
                              (long long)lo, (long long)hi);
        *out = i;
    } else if (!json_is_integer(v)) {
        return serve_fail(err, 400, name, "'%s' must be an integer", name);
    } else if (json_integer_value(v) < lo || json_integer_value(v) > hi) {
        return serve_fail(err, 400, name, "'%s' must be between %lld and %lld", name,
                          (long long)lo, (long long)hi);
    } else {
        *out = json_integer_value(v);
    }
    if (given)
        *given = true;
    return true;
}

static bool get_bool(const json_t *obj, const char *name, bool *out, serve_error *err)
{
    json_t *v = field(obj, name);
    if (!v)
        return true;
    if (!json_is_boolean(v))
        return serve_fail(err, 400, name, "'%s' must be true or false", name);
    *out = json_is_true(v);
    return true;
}

/* "stop": a string or an array of up to SERVE_MAX_STOPS non-empty strings. */
static bool get_stops(const json_t *obj, serve_request *req, serve_error *err)
{
    json_t *v = field(obj, "stop");
    if (!v)
        return true;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_array(v) && !json_is_string(v))
        return serve_fail(err, 400, "stop", "'stop' must be a string or an array of strings");
    if (n > SERVE_MAX_STOPS)
        return serve_fail(err, 400, "stop", "'stop' holds %zu strings; at most %d", n,
                          SERVE_MAX_STOPS);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(s))
            return serve_fail(err, 400, "stop", "'stop' must be a string or an array of "
                              "strings");
        if (json_string_length(s) == 0)
            continue;                           /* an empty stop text stops nothing */
        if (!(req->stops[req->n_stops] = dup_string(s)))
            return serve_fail(err, 500, NULL, "out of memory");
        req->n_stops++;
    }
    return true;
}

/* A message's content: a string, or an array of parts of which the "text" ones are
 * joined (OpenAI's content parts); *out owned. */
static bool get_content(const json_t *c, size_t i, char **out, serve_error *err)
{
    char name[48];
    snprintf(name, sizeof name, "messages[%zu].content", i);
    if (!c) {
        *out = calloc(1, 1);                    /* an assistant turn may have none */
    } else if (json_is_string(c)) {
        *out = dup_string(c);
    } else if (json_is_array(c)) {
        size_t total = 0;
        for (size_t k = 0; k < json_array_size(c); k++) {
            json_t *part = json_array_get(c, k);
            json_t *type = json_object_get(part, "type");
            json_t *text = json_object_get(part, "text");
            if (!json_is_object(part) || !json_is_string(type))
                return serve_fail(err, 400, name, "'%s' parts must be objects with a "
                                  "'type'", name);
            if (strcmp(json_string_value(type), "text") != 0)
                return serve_fail(err, 400, name, "'%s': parts of type '%s' are not "
                                  "supported (text only)", name, json_string_value(type));
            if (!json_is_string(text))
                return serve_fail(err, 400, name, "'%s': a text part needs a 'text' "
                                  "string", name);
            total += json_string_length(text);
        }
        char *p = malloc(total + 1);
        if (p) {
            size_t o = 0;
            for (size_t k = 0; k < json_array_size(c); k++) {
                json_t *text = json_object_get(json_array_get(c, k), "text");
                memcpy(p + o, json_string_value(text), json_string_length(text));
                o += json_string_length(text);
            }
            p[o] = '\0';
        }
        *out = p;
    } else {
        return serve_fail(err, 400, name, "'%s' must be a string or an array of parts",
                          name);
    }
    return *out ? true : serve_fail(err, 500, NULL, "out of memory");
}

static bool get_messages(const json_t *obj, serve_request *req, serve_error *err)
{
    json_t *v = json_object_get(obj, "messages");
    if (!v)
        return serve_fail(err, 400, "messages", "'messages' is required");
    if (!json_is_array(v))
        return serve_fail(err, 400, "messages", "'messages' must be an array");
    size_t n = json_array_size(v);
    if (n == 0)
        return serve_fail(err, 400, "messages", "'messages' is empty");
    if (!(req->msgs = calloc(n, sizeof *req->msgs)))
        return serve_fail(err, 500, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(v, i);
        char name[48];
        snprintf(name, sizeof name, "messages[%zu]", i);
        if (!json_is_object(m))
            return serve_fail(err, 400, name, "'%s' must be an object", name);
        json_t *role = json_object_get(m, "role");
        snprintf(name, sizeof name, "messages[%zu].role", i);
        if (!json_is_string(role))
            return serve_fail(err, 400, name, "'%s' must be a string", name);
        const char *r = json_string_value(role);
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") &&
            strcmp(r, "developer"))
            return serve_fail(err, 400, name, "'%s' must be system, developer, user or "
                              "assistant", name);
        req->n_msgs++;
        /* OpenAI's newer name for the system role; templates know "system" */
        req->msgs[i].role = strdup(strcmp(r, "developer") ? r : "system");
        if (!req->msgs[i].role)
            return serve_fail(err, 500, NULL, "out of memory");
        if (!get_content(field(m, "content"), i, &req->msgs[i].content, err))
            return false;
    }
    return true;
}

/* "prompt": a string, an array of one string, or an array of token ids. */
static bool get_prompt(const json_t *obj, serve_request *req, serve_error *err)
{
    json_t *v = json_object_get(obj, "prompt");
    if (!v)
        return serve_fail(err, 400, "prompt", "'prompt' is required");
    if (json_is_array(v) && json_array_size(v) == 1 && json_is_string(json_array_get(v, 0)))
        v = json_array_get(v, 0);
    if (json_is_string(v)) {
        req->prompt_len = json_string_length(v);
        if (!(req->prompt = dup_string(v)))
            return serve_fail(err, 500, NULL, "out of memory");
        return true;
    }
    if (!json_is_array(v))
        return serve_fail(err, 400, "prompt", "'prompt' must be a string, or an array of "
                          "token ids");
    size_t n = json_array_size(v);
    if (n == 0)
        return serve_fail(err, 400, "prompt", "'prompt' is empty");
    if (json_is_string(json_array_get(v, 0)))
        return serve_fail(err, 400, "prompt", "one prompt per request: 'prompt' holds %zu "
                          "strings", n);
    if (!(req->prompt_ids = malloc(n * sizeof *req->prompt_ids)))
        return serve_fail(err, 500, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(v, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 ||
            json_integer_value(t) > INT32_MAX)
            return serve_fail(err, 400, "prompt", "'prompt' must be a string, or an array "
                              "of token ids (integers from 0)");
        req->prompt_ids[i] = (bn_token)json_integer_value(t);
    }
    req->n_prompt_ids = n;
    return true;
}

/* Chat: "logprobs" true or false and "top_logprobs" 0 to 20 (with logprobs only);
 * completions: "logprobs" 0 to 5, the alternatives per token. */
static bool get_logprobs(const json_t *o, serve_request *req, serve_error *err)
{
    json_int_t n = -1;
    bool given = false;
    req->logprobs = -1;
    if (req->kind == SERVE_COMPLETION) {
        json_t *v = field(o, "logprobs");
        if (v && !json_is_integer(v) && !json_is_real(v))
            return serve_fail(err, 400, "logprobs", "'logprobs' must be an integer from 0 "
                              "to 5 (the alternatives per token)");
        if (!get_int(o, "logprobs", 0, 5, &n, &given, err))
            return false;
        if (given && json_is_true(json_object_get(o, "echo")))
            return serve_fail(err, 400, "logprobs", "'logprobs' with 'echo' is not "
                              "supported (no log-probabilities of the prompt)");
        req->logprobs = given ? (int32_t)n : -1;
        return true;
    }
    bool on = false;
    if (!get_bool(o, "logprobs", &on, err) ||
        !get_int(o, "top_logprobs", 0, SERVE_MAX_TOP_LOGPROBS, &n, &given, err))
        return false;
    if (given && !on)
        return serve_fail(err, 400, "top_logprobs", "'top_logprobs' needs \"logprobs\": "
                          "true");
    req->logprobs = on ? (given ? (int32_t)n : 0) : -1;
    return true;
}

/* Every field of the request but the prompt or messages. */
static bool get_options(const json_t *o, serve_request *req, serve_error *err)
{
    json_int_t i = 0;
    bool given = false;
    if (!get_number(o, "temperature", 0.0, 2.0, &req->sp.temp, err) ||
        !get_number(o, "top_p", 0.0, 1.0, &req->sp.top_p, err) ||
        !get_number(o, "min_p", 0.0, 1.0, &req->sp.min_p, err) ||
        !get_number(o, "presence_penalty", -2.0, 2.0, &req->sp.presence_penalty, err) ||
        !get_number(o, "frequency_penalty", -2.0, 2.0, &req->sp.frequency_penalty, err) ||
        !get_number(o, "repeat_penalty", 1e-3, 1e3, &req->sp.repeat_penalty, err))
        return false;
    i = req->sp.top_k;
    if (!get_int(o, "top_k", 0, INT32_MAX, &i, NULL, err))
        return false;
    req->sp.top_k = (int32_t)i;
    i = 0;
    if (!get_int(o, "seed", INT64_MIN, INT64_MAX, &i, &req->seed_given, err))
        return false;
    if (req->seed_given)
        req->sp.seed = (uint64_t)i;
    /* max_completion_tokens is chat's newer name; either wins over the default */
    const char *names[2] = {"max_tokens", "max_completion_tokens"};
    for (int k = 0; k < 2; k++) {
        given = false;
        i = 0;
        if (!get_int(o, names[k], -1, INT32_MAX, &i, &given, err))
            return false;
        if (given)
            req->max_tokens = (int32_t)i;
    }
    i = 1;
    if (!get_int(o, "n", 1, INT32_MAX, &i, NULL, err))
        return false;
    if (i != 1)
        return serve_fail(err, 400, "n", "'n' must be 1 (one choice per request)");
    if (!get_logprobs(o, req, err))
        return false;
    if (!get_bool(o, "stream", &req->stream, err) ||
        !get_bool(o, "ignore_eos", &req->ignore_eos, err) ||
        !get_bool(o, "cache_prompt", &req->cache_prompt, err) ||
        (req->kind == SERVE_COMPLETION && !get_bool(o, "echo", &req->echo, err)) ||
        !get_stops(o, req, err))
        return false;
    json_t *so = field(o, "stream_options");
    if (so && !json_is_object(so))
        return serve_fail(err, 400, "stream_options", "'stream_options' must be an object");
    if (so && !get_bool(so, "include_usage", &req->include_usage, err)) {
        snprintf(err->param, sizeof err->param, "stream_options.include_usage");
        return false;
    }
    json_t *fmt = field(o, "response_format");
    if (fmt) {
        json_t *type = json_is_object(fmt) ? json_object_get(fmt, "type") : NULL;
        if (!json_is_string(type))
            return serve_fail(err, 400, "response_format", "'response_format' must be an "
                              "object with a 'type'");
        if (strcmp(json_string_value(type), "text") != 0)
            return serve_fail(err, 400, "response_format", "response_format '%s' is not "
                              "supported (text only)", json_string_value(type));
    }
    json_t *tools = field(o, "tools");
    if (tools && (!json_is_array(tools) || json_array_size(tools) > 0))
        return serve_fail(err, 400, "tools", "'tools' is not supported");
    return true;
}

bool serve_request_parse(const char *body, size_t len, serve_kind kind,
                         const bn_sampler_params *defaults, int32_t default_max_tokens,
                         serve_request *req, serve_error *err)
{
    memset(req, 0, sizeof *req);
    req->kind = kind;
    req->sp = *defaults;
    req->max_tokens = default_max_tokens;
    req->cache_prompt = true;
    json_error_t jerr;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    bool ok;
    if (!o)
        ok = serve_fail(err, 400, NULL, "the body is not valid JSON: %s (line %d, column "
                        "%d)", jerr.text, jerr.line, jerr.column);
    else if (!json_is_object(o))
        ok = serve_fail(err, 400, NULL, "the body must be a JSON object");
    else if (kind == SERVE_CHAT)
        ok = get_messages(o, req, err) && get_options(o, req, err);
    else
        ok = get_prompt(o, req, err) && get_options(o, req, err);
    json_decref(o);
    if (!ok)
        serve_request_free(req);
    return ok;
}

/* The length of the well-formed UTF-8 sequence at p, or 0 when it is ill-formed; then
 * *bad gets the length of its maximal subpart (1 to 3 bytes: the longest prefix that
 * could have begun a well-formed sequence), which one U+FFFD replaces. */
static size_t utf8_take(const unsigned char *p, size_t left, size_t *bad)
{
    const unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;        /* the second byte's range */
    *bad = 1;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (i >= left || p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xBF)) {
            *bad = i;
            return 0;
        }
    }
    return n;
}

json_t *serve_json_text(const char *text, size_t len)
{
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *buf = malloc(3 * len + 1);
    if (!buf)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t bad;
        size_t n = utf8_take((const unsigned char *)text + i, len - i, &bad);
        if (n == 0) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += bad;
        } else {
            memcpy(buf + o, text + i, n);
            o += n;
            i += n;
        }
    }
    json_t *s = json_stringn(buf, o);
    free(buf);
    return s;
}

bool serve_secret_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned diff = la != lb;
    /* walk the expected secret (b) whole, whatever a's length */
    for (size_t i = 0; i < lb; i++)
        diff |= (unsigned char)b[i] ^ (unsigned char)(i < la ? a[i] : 0);
    return diff == 0;
}
