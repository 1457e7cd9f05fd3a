/*
 * log.c - the library's only way to say anything: a replaceable sink with a level
 * threshold. The default sink writes "bitnet: warning: ..." lines to stderr.
 */
#include <stdarg.h>
#include <stdio.h>

#include "core/internal.h"

static void bn_log_default(bn_log_level level, const char *msg, void *user);

static bn_log_fn bn_log_sink = bn_log_default;
static void *bn_log_user;
static _Atomic int bn_log_threshold = BN_LOG_WARN;

/* Writes one line to stderr with the level's name. */
static void bn_log_default(bn_log_level level, const char *msg, void *user)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    (void)user;
    const char *name = (unsigned)level < 4 ? names[level] : "log";
    fprintf(stderr, "bitnet: %s: %s\n", name, msg);
}

void bn_log_set(bn_log_fn fn, void *user)
{
    bn_log_sink = fn ? fn : bn_log_default;
    bn_log_user = fn ? user : NULL;
}

void bn_log_set_level(bn_log_level level)
{
    bn_log_threshold = (int)level;
}

bn_log_level bn_log_get_level(void)
{
    return (bn_log_level)bn_log_threshold;
}

void bn_log(bn_log_level level, const char *fmt, ...)
{
    if ((int)level < bn_log_threshold || level >= BN_LOG_NONE)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bn_log_sink(level, msg, bn_log_user);
}
