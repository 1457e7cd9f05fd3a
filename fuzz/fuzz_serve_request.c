/*
 * fuzz_serve_request.c - a libFuzzer target for the request reader of `bitnet serve`
 * (tools/bitnet/serve_request.c): the bodies of POST /v1/completions and
 * /v1/chat/completions, which come from any client on the network. The input's first
 * byte chooses the endpoint; the rest is the body. What must hold for any bytes: the
 * reader accepts or refuses without crashing or leaking; a refusal has a 4xx or 500
 * status, an error type and a message; an accepted request is complete for its
 * endpoint (a prompt or messages, every string NUL-terminated) with every sampling
 * field in its documented range and at most SERVE_MAX_STOPS stop texts, none empty.
 * The body's bytes also go through serve_json_text, whose result must be a JSON string
 * (jansson refuses ill-formed UTF-8, so a result at all proves the replacement
 * worked), and the constant-time comparison must agree with strcmp.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz_serve_request: %s\n", what);
    abort();
}

/* A string of an accepted request: present and NUL-terminated inside its block. */
static void check_string(const char *s)
{
    if (!s)
        fuzz_fail("a NULL string in an accepted request");
    (void)strlen(s);   /* ASan reports a read past the block */
}

static void check_request(const serve_request *r, serve_kind kind)
{
    if (r->kind != kind)
        fuzz_fail("the request's kind changed");
    if (kind == SERVE_CHAT) {
        if (r->n_msgs == 0 || !r->msgs)
            fuzz_fail("a chat request without messages");
        for (size_t i = 0; i < r->n_msgs; i++) {
            check_string(r->msgs[i].role);
            check_string(r->msgs[i].content);
            if (strcmp(r->msgs[i].role, "system") && strcmp(r->msgs[i].role, "user") &&
                strcmp(r->msgs[i].role, "assistant"))
                fuzz_fail("a role outside system, user, assistant");
        }
    } else {
        if (!r->prompt == !r->prompt_ids)
            fuzz_fail("a completion without exactly one of text and ids");
        if (r->prompt && strlen(r->prompt) > r->prompt_len)
            fuzz_fail("the prompt's length is wrong");
        if (r->prompt_ids && r->n_prompt_ids == 0)
            fuzz_fail("an empty id prompt accepted");
        for (size_t i = 0; r->prompt_ids && i < r->n_prompt_ids; i++)
            if (r->prompt_ids[i] < 0)
                fuzz_fail("a negative token id accepted");
    }
    if (r->n_stops < 0 || r->n_stops > SERVE_MAX_STOPS)
        fuzz_fail("stop count out of range");
    for (int i = 0; i < r->n_stops; i++) {
        check_string(r->stops[i]);
        if (!r->stops[i][0])
            fuzz_fail("an empty stop text");
    }
    if (!(r->sp.temp >= 0 && r->sp.temp <= 2) || !(r->sp.top_p >= 0 && r->sp.top_p <= 1) ||
        !(r->sp.min_p >= 0 && r->sp.min_p <= 1) || r->sp.top_k < 0 ||
        !(r->sp.presence_penalty >= -2 && r->sp.presence_penalty <= 2) ||
        !(r->sp.frequency_penalty >= -2 && r->sp.frequency_penalty <= 2) ||
        !(r->sp.repeat_penalty > 0))
        fuzz_fail("a sampling field out of range");
    if (r->max_tokens < -1)
        fuzz_fail("max_tokens below -1");
    if (r->logprobs < -1 ||
        r->logprobs > (kind == SERVE_CHAT ? SERVE_MAX_TOP_LOGPROBS : 5))
        fuzz_fail("logprobs out of range");
    if (r->logprobs >= 0 && r->echo)
        fuzz_fail("logprobs with echo accepted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    serve_kind kind = data[0] & 1 ? SERVE_CHAT : SERVE_COMPLETION;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    bn_sampler_params defaults = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f,
                                  .min_p = 0.05f, .repeat_penalty = 1.0f,
                                  .penalty_last_n = 64, .seed = 0xB17};
    serve_request req;
    serve_error err;
    memset(&err, 0, sizeof err);
    if (serve_request_parse(body, len, kind, &defaults, 16, &req, &err)) {
        check_request(&req, kind);
        serve_request_free(&req);
    } else {
        if (err.status < 400 || err.status > 599 || !err.type || !err.message[0])
            fuzz_fail("a refusal without a status, type or message");
        if (req.prompt || req.msgs || req.prompt_ids || req.n_stops)
            fuzz_fail("a refused request still owns memory");
    }

    json_t *s = serve_json_text(body, len);
    if (!s)
        fuzz_fail("serve_json_text gave no string");
    if (json_string_length(s) < len)
        fuzz_fail("serve_json_text lost bytes");   /* each byte gives 1 or 3 */
    json_decref(s);

    /* the secret comparison: the body split at its first NUL-free half */
    char *a = malloc(len / 2 + 1), *b = malloc(len - len / 2 + 1);
    if (!a || !b)
        fuzz_fail("out of memory");
    memcpy(a, body, len / 2);
    a[len / 2] = '\0';
    memcpy(b, body + len / 2, len - len / 2);
    b[len - len / 2] = '\0';
    if (serve_secret_equal(a, b) != (strcmp(a, b) == 0))
        fuzz_fail("serve_secret_equal disagrees with strcmp");
    if (!serve_secret_equal(a, a))
        fuzz_fail("serve_secret_equal(a, a) is false");
    free(a);
    free(b);
    return 0;
}
