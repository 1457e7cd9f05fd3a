/*
 * run_common.h - what the commands that run a model share (generate, chat, perplexity,
 * logits): the model, context and sampling options, loading with a report, timing and
 * memory figures.
 */
#ifndef BN_RUN_COMMON_H
#define BN_RUN_COMMON_H

#include "cli.h"

#define RUN_MAX_STOPS 16

typedef struct run_opts {
    const char       *model;
    int32_t           n_ctx;       /* 0: the model's */
    int32_t           n_batch;
    int32_t           n_seq;       /* sequences of the context (0: 1) */
    bn_dtype          kv_type;
    bn_model_params   mp;
    bn_sampler_params sp;
    bool              seed_given;  /* --seed N (N >= 0) was given */
    const char       *stops[RUN_MAX_STOPS];
    int               n_stops;
} run_opts;

/* When no -m was given: $BITNET_MODEL, else the model that ships with the project
 * (models/tiny-en.gguf of the source tree for a program run from its build tree, else
 * PREFIX/share/bitnet/tiny-en.gguf beside the installed program, else in the data
 * folder the build was configured with), with a line on stderr saying which. Returns
 * false after a usage error when there is none. */
bool run_model_or_default(const char *cmd, run_opts *o);

/* Defaults: KV f16, n_ctx 0 (the model's), the library's model and sampler defaults. */
void run_opts_init(run_opts *o);

/* Options of every model command (-m, -c, -b, --kv, --act-quant, --ffn-act, -t). */
extern const char run_model_help[];
/* Sampling options (--temp, --top-k, ... --seed, --stop). */
extern const char run_sampling_help[];

/* If argv[*i] is a model option (with `sampling`, or a sampling option), consumes it
 * and its value: returns 1. Returns 0 when it is not one, and EXIT_USAGE + 100 after
 * printing a usage error. */
int run_parse_opt(const char *cmd, int argc, char **argv, int *i, run_opts *o,
                  bool sampling);

/* Loads the model (with a progress line on a terminal for a large file); on failure
 * prints the error and returns false (*m NULL). */
bool run_load_model(const char *cmd, const run_opts *o, bn_model **m);

/* Loads the model and creates a context; with `verbose_load` prints a line about the
 * model to stderr. On failure prints the error and returns false (both NULL). */
bool run_load(const char *cmd, const run_opts *o, bool logits_all, bn_model **m,
              bn_context **c, double *load_seconds);

/* Tokenizes text for the model (BOS when the model wants it, special tokens parsed);
 * prints errors. */
bool run_tokenize(const char *cmd, const bn_model *m, const char *text, size_t len,
                  bool add_bos, bn_token **ids, size_t *n);

/* Without a --seed (or with --seed -1), a random seed for o->sp, printed on stderr
 * when sampling draws from it (temp > 0). Call after the options are read. */
void run_pick_seed(run_opts *o);

/* Monotonic seconds. */
double run_now(void);

/* Peak resident set size of the process in bytes. */
uint64_t run_peak_rss(void);

/* How the model's weights are held, as words: "mapped", "read into memory, 1.1 GiB in
 * huge pages"; returns buf. */
const char *run_weights_how(const bn_model_info *in, char *buf, size_t size);

/* Prints "memory: peak RSS ..., model file ..., KV cache ..., buffers ..." to stderr. */
void run_print_memory(const bn_model *m, const bn_context *c);

/* Reads a whole file (NUL-terminated); NULL with a message on failure. */
char *run_read_file(const char *cmd, const char *path, size_t *len);

/* Set by SIGINT while run_catch_sigint(true) is in force (signals.c). */
extern volatile int run_interrupted;
/* true: a SIGINT sets run_interrupted and the command goes on; false: back to what
 * cli_signals_init set up (remove temporaries, end the process). */
void run_catch_sigint(bool on);

#endif
