/*
 * cli.h - what the subcommands of the bitnet program share: the command table entry,
 * usage errors, number parsing and human-readable sizes.
 */
#ifndef BN_CLI_H
#define BN_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bitnet.h"

#define EXIT_USAGE 2

/* "s" unless n is 1: "1 token", "2 tokens" */
#define CLI_S(n) ((n) == 1 ? "" : "s")

#define CLI_HELP_PARTS 6

typedef struct command {
    const char *name;
    const char *summary;
    /* the help text, in parts printed one after the other (the first starts with
     * "usage:"); its option lines ("  -x, --long VALUE   what it does") are also what
     * the argument reader knows of the command's options */
    const char *help[CLI_HELP_PARTS];
    int (*run)(int argc, char **argv);
    bool        hidden;    /* listed apart: a tool for tests and benchmarks */
} command;

/* fflush(stdout), remembering the cause of a failure for the message at exit (a
 * later flush of an emptied buffer succeeds and says nothing); false on failure. */
bool cli_flush_stdout(void);

/* Prints the help of the command `name` to stdout; returns 0. */
int cli_help(const char *name);

/* Prints "bitnet CMD: <message>" and a pointer to the help; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "bitnet CMD: <library error>"; returns 1. */
int cli_fail(const char *cmd);

/* Parses a whole decimal integer in [lo, hi]; false on anything else. */
bool cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);
/* A finite decimal number in [lo, hi] (the whole string). */
bool cli_parse_double(const char *s, double lo, double hi, double *out);

/* "1.19 GB", "512 B": bytes in decimal units into buf; returns buf. */
char *cli_bytes(uint64_t n, char *buf, size_t cap);

/* True when argv[i] is -h or --help. */
bool cli_is_help(const char *arg);

/* Installs the handler for SIGINT, SIGTERM and SIGHUP that removes the named
 * temporaries of files being written and ends the process by the signal; signals
 * ignored at start stay ignored (signals.c). */
void cli_signals_init(void);

int cmd_info(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_membw(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_train_tokenizer(int argc, char **argv);
int cmd_corpus(int argc, char **argv);
int cmd_serve(int argc, char **argv);

extern const char cmd_info_help[];
extern const char cmd_quantize_help[];
extern const char cmd_convert_help[];
extern const char cmd_synth_help[];
extern const char cmd_membw_help[];
extern const char cmd_tokenize_help[];
extern const char cmd_detokenize_help[];
extern const char cmd_generate_help[];
extern const char cmd_batch_help[];
extern const char cmd_chat_help[];
extern const char cmd_chat_commands_help[];
extern const char cmd_perplexity_help[];
extern const char cmd_logits_help[];
extern const char cmd_bench_help[];
extern const char cmd_train_help[];
extern const char cmd_export_help[];
extern const char cmd_train_tokenizer_help[];
extern const char cmd_corpus_help[];
extern const char cmd_serve_help[];

#endif
