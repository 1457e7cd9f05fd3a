/*
 * stop_text.h - holding back generated text that could be the start of a stop text, so
 * that a stop text is never handed out and everything before it always is.
 *
 * Text goes in piece by piece as tokens are decoded. What comes out of each push is the
 * part that can no longer belong to a stop text; the longest tail that is a proper
 * prefix of some stop text is held until the next piece decides it. When a stop text
 * is complete, what precedes its earliest occurrence comes out and the stop text and
 * anything after it are dropped.
 */
#ifndef BN_MODEL_STOP_TEXT_H
#define BN_MODEL_STOP_TEXT_H

#include "core/internal.h"

typedef struct bn_stop_text {
    const char *const *stops;   /* the caller's strings, none empty */
    int32_t     n_stops;
    char       *buf;            /* [cap] the held text, then the next piece */
    size_t      len, cap;
    size_t      start;          /* buf[0, start) was handed out by the last call */
} bn_stop_text;

/* Prepares a matcher for n_stops strings (which must outlive it). An empty stop text is
 * BN_ERR_INVALID_ARG; no stop texts is allowed (then every piece comes out whole). */
bn_status bn_stop_text_init(bn_stop_text *s, const char *const *stops, int32_t n_stops);

/* Adds n bytes of text. *out / *out_len: the bytes that can no longer be part of a stop
 * text (valid until the next call; *out_len may be 0). *hit: a stop text is complete,
 * *out is what came before it. Fails only when the held text cannot grow (BN_ERR_OOM),
 * with nothing handed out. */
bn_status bn_stop_text_push(bn_stop_text *s, const char *text, size_t n, const char **out,
                            size_t *out_len, bool *hit);

/* The last n bytes of the text: hands out everything up to the earliest stop text, or
 * all that is held and the n bytes when none completes. Valid until the next call;
 * the matcher is empty afterwards. BN_ERR_OOM as for a push. */
bn_status bn_stop_text_finish(bn_stop_text *s, const char *text, size_t n,
                              const char **out, size_t *out_len);

void bn_stop_text_free(bn_stop_text *s);

#endif
