/*
 * stop_text.c - see stop_text.h.
 */
#include <stdlib.h>
#include <string.h>

#include "stop_text.h"

void stop_text_init(stop_text *s, const char *const *stops, int n_stops)
{
    memset(s, 0, sizeof *s);
    s->stops = stops;
    s->n_stops = n_stops;
}

static void stop_emit(stop_text *s, const char *text, size_t n, FILE *out)
{
    if (n == 0)
        return;
    if (s->emit)
        s->emit(text, n, s->user);
    else if (out)
        fwrite(text, 1, n, out);
}

/* Length of the longest suffix of buf that is a proper prefix of a stop text. */
static size_t stop_partial(const stop_text *s)
{
    size_t keep = 0;
    for (int i = 0; i < s->n_stops; i++) {
        size_t sl = strlen(s->stops[i]);
        for (size_t k = sl - 1; k > keep; k--)
            if (k <= s->len && memcmp(s->buf + s->len - k, s->stops[i], k) == 0) {
                keep = k;
                break;
            }
    }
    return keep;
}

bool stop_text_push(stop_text *s, const char *text, size_t n, FILE *out)
{
    if (s->n_stops == 0) {
        stop_emit(s, text, n, out);
        return false;
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *b = realloc(s->buf, cap);
        if (!b) {   /* cannot hold text back: emit it all, stop texts unchecked */
            stop_emit(s, s->buf, s->len, out);
            stop_emit(s, text, n, out);
            s->len = 0;
            return false;
        }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, n);
    s->len += n;
    s->buf[s->len] = '\0';
    /* the earliest complete stop text */
    size_t first = s->len;
    for (int i = 0; i < s->n_stops; i++) {
        const char *hit = memmem(s->buf, s->len, s->stops[i], strlen(s->stops[i]));
        if (hit && (size_t)(hit - s->buf) < first)
            first = (size_t)(hit - s->buf);
    }
    if (first < s->len) {
        stop_emit(s, s->buf, first, out);
        s->len = 0;
        return true;
    }
    size_t keep = stop_partial(s);
    stop_emit(s, s->buf, s->len - keep, out);
    memmove(s->buf, s->buf + s->len - keep, keep);
    s->len = keep;
    return false;
}

void stop_text_flush(stop_text *s, FILE *out)
{
    stop_emit(s, s->buf, s->len, out);
    s->len = 0;
}

void stop_text_free(stop_text *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}
