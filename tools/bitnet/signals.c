/*
 * signals.c - what the program does on SIGINT, SIGTERM and SIGHUP.
 *
 * main() installs one handler for the three. By default it removes the named
 * temporaries of files being written (bn_out_file_cleanup_signal: there are none where
 * the library writes through unnamed files) and then ends the process by the same
 * signal, as if there had been no handler. While a command catches SIGINT
 * (run_catch_sigint: generate, chat, batch, perplexity stop their work and go on), a
 * SIGINT only sets run_interrupted. A signal ignored when the program started (nohup,
 * a background job of a shell) stays ignored.
 */
#include <signal.h>
#include <string.h>

#include "run_common.h"

volatile int run_interrupted;

static volatile sig_atomic_t sigint_caught;

/* SIGINT's disposition outside run_catch_sigint: the handler, or what it was at start
 * (SIG_IGN) when it was ignored then, or SIG_DFL before cli_signals_init. */
static struct sigaction sigint_outside;

static void on_signal(int sig)
{
    if (sig == SIGINT && sigint_caught) {
        run_interrupted = 1;
        return;
    }
    bn_out_file_cleanup_signal();
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig); /* delivered when the handler returns: the process ends by it */
}

/* The handler's sigaction: no SA_RESTART, so that a caught SIGINT interrupts a read of
 * standard input (chat's prompt) with EINTR. */
static void handler_action(struct sigaction *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sa_handler = on_signal;
    sigemptyset(&sa->sa_mask);
}

void cli_signals_init(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    handler_action(&sa);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) != 0)
            continue;
        bool ignored = old.sa_handler == SIG_IGN;
        if (!ignored)
            sigaction(sigs[i], &sa, NULL);
        if (sigs[i] == SIGINT)
            sigint_outside = ignored ? old : sa;
    }
}

void run_catch_sigint(bool on)
{
    if (on) {
        struct sigaction sa;
        handler_action(&sa);
        sigint_caught = 1;
        sigaction(SIGINT, &sa, NULL);
    } else {
        if (!sigint_outside.sa_handler)
            sigint_outside.sa_handler = SIG_DFL; /* cli_signals_init was not called */
        sigaction(SIGINT, &sigint_outside, NULL);
        sigint_caught = 0;
    }
    run_interrupted = 0;
}
