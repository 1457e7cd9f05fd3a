/*
 * status.c - statuses and the per-thread error with its cause chain.
 *
 * A failing function records the root cause with bn_error_set; each caller on the way
 * out may add its context with bn_error_wrap. The chain lives in fixed thread-local
 * storage so that recording an error never allocates (it must work when memory has
 * run out).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

#define BN_ERR_MAX_FRAMES 16
#define BN_ERR_FRAME_LEN  512

typedef struct bn_error_state {
    bn_status status;
    int       depth;                                    /* frames in use */
    bool      dropped;                                  /* frames lost to the cap */
    char      frames[BN_ERR_MAX_FRAMES][BN_ERR_FRAME_LEN]; /* [0] = root cause */
    char      joined[BN_ERR_MAX_FRAMES * BN_ERR_FRAME_LEN + 8];
} bn_error_state;

static _Thread_local bn_error_state bn_err;

static const char *const bn_status_names[BN_STATUS_COUNT] = {
    [BN_OK]              = "ok",
    [BN_ERR_INVALID_ARG] = "invalid argument",
    [BN_ERR_OOM]         = "out of memory",
    [BN_ERR_IO]          = "I/O error",
    [BN_ERR_FORMAT]      = "malformed data",
    [BN_ERR_SHAPE]       = "shape mismatch",
    [BN_ERR_DTYPE]       = "unsupported dtype",
    [BN_ERR_NUMERIC]     = "numerical error",
    [BN_ERR_UNSUPPORTED] = "not supported",
    [BN_ERR_DEVICE]      = "device error",
    [BN_ERR_INTERNAL]    = "internal error",
    [BN_ERR_CONTEXT_FULL] = "context full",
    [BN_ERR_BUSY] = "busy",
};

const char *bn_version(void)
{
    return BITNET_VERSION_STRING;
}

const char *bn_status_str(bn_status status)
{
    if ((unsigned)status >= BN_STATUS_COUNT)
        return "unknown status";
    return bn_status_names[status];
}

/* Push one formatted frame as the new outermost context. */
static void bn_error_push(const char *fmt, va_list ap)
{
    if (bn_err.depth == BN_ERR_MAX_FRAMES) {
        bn_err.dropped = true;
        return;
    }
    vsnprintf(bn_err.frames[bn_err.depth], BN_ERR_FRAME_LEN, fmt, ap);
    bn_err.depth++;
}

bn_status bn_error_set(bn_status status, const char *fmt, ...)
{
    bn_err.status = status;
    bn_err.depth = 0;
    bn_err.dropped = false;
    va_list ap;
    va_start(ap, fmt);
    bn_error_push(fmt, ap);
    va_end(ap);
    return status;
}

bn_status bn_error_wrap(bn_status status, const char *fmt, ...)
{
    if (bn_err.depth == 0)
        bn_err.status = status != BN_OK ? status : BN_ERR_INTERNAL;
    else if (status != BN_OK)
        bn_err.status = status;
    va_list ap;
    va_start(ap, fmt);
    bn_error_push(fmt, ap);
    va_end(ap);
    return bn_err.status;
}

void bn_error_clear(void)
{
    bn_err.status = BN_OK;
    bn_err.depth = 0;
    bn_err.dropped = false;
    bn_err.joined[0] = '\0';
}

bn_status bn_last_status(void)
{
    return bn_err.depth ? bn_err.status : BN_OK;
}

int bn_error_depth(void)
{
    return bn_err.depth;
}

const char *bn_error_frame(int i)
{
    if (i < 0 || i >= bn_err.depth)
        return NULL;
    return bn_err.frames[bn_err.depth - 1 - i];
}

const char *bn_last_error(void)
{
    char *out = bn_err.joined;
    size_t cap = sizeof bn_err.joined, len = 0;
    out[0] = '\0';
    for (int i = 0; i < bn_err.depth; i++) {
        /* outer frames beyond the cap were dropped: mark where they would be */
        const char *sep = i > 0 ? ": " : bn_err.dropped ? "...: " : "";
        int n = snprintf(out + len, cap - len, "%s%s", sep, bn_error_frame(i));
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
    return out;
}
