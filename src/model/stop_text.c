/*
 * stop_text.c - see stop_text.h. The held text is at most the longest stop text less
 * one byte, so each push looks at that and one piece: matching costs nothing next to a
 * forward pass, and the buffer stops growing after the first few tokens.
 */
#include <string.h>

#include "model/stop_text.h"

bn_status bn_stop_text_init(bn_stop_text *s, const char *const *stops, int32_t n_stops)
{
    memset(s, 0, sizeof *s);
    if (n_stops < 0)
        return bn_error_set(BN_ERR_INVALID_ARG, "stop texts: n_stops is %d", n_stops);
    if (n_stops > 0 && !stops)
        return bn_error_set(BN_ERR_INVALID_ARG, "stop texts: %d without an array",
                            n_stops);
    size_t longest = 0;
    for (int32_t i = 0; i < n_stops; i++) {
        size_t len = stops[i] ? strlen(stops[i]) : 0;
        if (len == 0)
            return bn_error_set(BN_ERR_INVALID_ARG, "stop text %d is empty", i);
        if (len > longest)
            longest = len;
    }
    if (n_stops > 0) {
        /* room for the held text and a long piece, so that growing is rare */
        s->cap = 2 * longest + 256;
        s->buf = bn_malloc(s->cap, "generate");
        if (!s->buf)
            return bn_error_wrap(BN_OK, "stop texts");
    }
    s->stops = stops;
    s->n_stops = n_stops;
    return BN_OK;
}

/* Length of the longest tail of the buffer that is a proper prefix of a stop text. */
static size_t bn_stop_text_partial(const bn_stop_text *s)
{
    size_t keep = 0;
    for (int32_t i = 0; i < s->n_stops; i++) {
        size_t stop_len = strlen(s->stops[i]);
        for (size_t k = stop_len - 1; k > keep; k--)
            if (k <= s->len && memcmp(s->buf + s->len - k, s->stops[i], k) == 0) {
                keep = k;
                break;
            }
    }
    return keep;
}

/* Offset of the earliest complete stop text in the buffer, or s->len when none. */
static size_t bn_stop_text_first(const bn_stop_text *s)
{
    size_t first = s->len;
    for (int32_t i = 0; i < s->n_stops; i++) {
        const char *hit = memmem(s->buf, s->len, s->stops[i], strlen(s->stops[i]));
        if (hit && (size_t)(hit - s->buf) < first)
            first = (size_t)(hit - s->buf);
    }
    return first;
}

bn_status bn_stop_text_push(bn_stop_text *s, const char *text, size_t n, const char **out,
                            size_t *out_len, bool *hit)
{
    *hit = false;
    if (s->n_stops == 0) {
        *out = text;
        *out_len = n;
        return BN_OK;
    }
    /* what the last call handed out goes; the held text moves to the front */
    memmove(s->buf, s->buf + s->start, s->len - s->start);
    s->len -= s->start;
    s->start = 0;
    if (n > s->cap - s->len) {
        size_t cap = 2 * (s->len + n);
        char *grown = bn_malloc(cap, "generate");
        if (!grown)
            return bn_error_wrap(BN_OK, "holding back %zu bytes for the stop texts",
                                 s->len + n);
        memcpy(grown, s->buf, s->len);
        bn_free(s->buf);
        s->buf = grown;
        s->cap = cap;
    }
    if (n)
        memcpy(s->buf + s->len, text, n);
    s->len += n;
    *out = s->buf;
    size_t first = bn_stop_text_first(s);
    if (first < s->len) {
        *out_len = first;
        *hit = true;
        s->len = 0;
        return BN_OK;
    }
    size_t keep = bn_stop_text_partial(s);
    *out_len = s->len - keep;
    s->start = s->len - keep;
    return BN_OK;
}

bn_status bn_stop_text_finish(bn_stop_text *s, const char *text, size_t n,
                              const char **out, size_t *out_len)
{
    bool hit;
    bn_status st = bn_stop_text_push(s, text, n, out, out_len, &hit);
    if (st != BN_OK || hit || s->n_stops == 0)
        return st;
    /* no stop text: the held tail follows what the push handed out */
    *out_len = s->len;
    s->len = s->start = 0;
    return BN_OK;
}

void bn_stop_text_free(bn_stop_text *s)
{
    bn_free(s->buf);
    memset(s, 0, sizeof *s);
}
