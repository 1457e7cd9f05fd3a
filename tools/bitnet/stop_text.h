/*
 * stop_text.h - holding back generated text that could be the start of a stop text,
 * so that a stop text is never printed and everything before it always is.
 */
#ifndef BN_STOP_TEXT_H
#define BN_STOP_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef void (*stop_emit_fn)(const char *text, size_t len, void *user);

typedef struct stop_text {
    const char *const *stops;
    int     n_stops;
    char   *buf;           /* held text */
    size_t  len, cap;
    stop_emit_fn emit;     /* NULL: write to the FILE given to push/flush */
    void   *user;
} stop_text;

void stop_text_init(stop_text *s, const char *const *stops, int n_stops);

/* Adds n bytes of generated text. Emits what can no longer be part of a stop text.
 * Returns true when a stop text is complete: what came before it is emitted, the stop
 * text and anything after it are dropped. */
bool stop_text_push(stop_text *s, const char *text, size_t n, FILE *out);

/* Emits what is held (the text ended without a stop text). */
void stop_text_flush(stop_text *s, FILE *out);

void stop_text_free(stop_text *s);

#endif
