/*
 * main.c - the `bitnet` command-line program: parses arguments, dispatches to a
 * subcommand and turns library statuses into messages and exit codes (0 success,
 * 1 failure, 2 bad usage). Everything it computes comes from libbitnet.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "run_common.h"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

/* The help of each command is the concatenation of its parts: the same text for
 * `bitnet help COMMAND` and `bitnet COMMAND --help`. */
static const command commands[] = {
    {"generate", "continue a prompt with a model, streaming the text",
     {cmd_generate_help, run_model_help, "\n", run_sampling_help}, cmd_generate, false},
    {"batch", "a completion for every prompt of a file, many at once",
     {cmd_batch_help, run_model_help, "\n", run_sampling_help}, cmd_batch, false},
    {"chat", "talk with a model through its chat template",
     {cmd_chat_help, cmd_chat_commands_help, "\n", run_model_help, "\n", run_sampling_help},
     cmd_chat, false},
    {"serve", "an HTTP server with OpenAI's API, many requests at once",
     {cmd_serve_help, run_model_help, "\n", run_sampling_help}, cmd_serve, false},
    {"perplexity", "perplexity of a model on a text file",
     {cmd_perplexity_help, run_model_help}, cmd_perplexity, false},
    {"logits", "write a prompt's raw logits (for conformance checks)",
     {cmd_logits_help, run_model_help}, cmd_logits, false},
    {"bench", "prompt and generation speed, as llama-bench measures it",
     {cmd_bench_help}, cmd_bench, false},
    {"info", "describe a GGUF file, or this machine (--system)", {cmd_info_help}, cmd_info,
     false},
    {"train", "train a BitNet b1.58 model on a text file",
     {cmd_train_help}, cmd_train, false},
    {"export", "a training checkpoint as a GGUF model", {cmd_export_help}, cmd_export,
     false},
    {"quantize", "convert a GGUF model's weights to ternary (or other) types",
     {cmd_quantize_help}, cmd_quantize, false},
    {"convert", "convert a Hugging Face checkpoint folder to a GGUF model",
     {cmd_convert_help}, cmd_convert, false},
    {"tokenize", "text to token ids with a model's tokenizer", {cmd_tokenize_help},
     cmd_tokenize, false},
    {"detokenize", "token ids back to text", {cmd_detokenize_help}, cmd_detokenize, false},
    {"train-tokenizer", "learn a byte-level BPE tokenizer from text",
     {cmd_train_tokenizer_help}, cmd_train_tokenizer, false},
    {"corpus", "turn text into token shards for training", {cmd_corpus_help}, cmd_corpus,
     false},
    {"help", "show help for a command",
     {"usage: bitnet help [COMMAND]\n"
      "\n"
      "Without COMMAND, the list of commands and the global options; with one, the\n"
      "same text as 'bitnet COMMAND --help'.\n"}, cmd_help, false},
    {"version", "print the version", {"usage: bitnet version\n"}, cmd_version, false},
    {"synth", "write a synthetic BitNet model with random weights", {cmd_synth_help},
     cmd_synth, true},
    {"membw", "measure memory read bandwidth", {cmd_membw_help}, cmd_membw, true},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *out)
{
    fprintf(out,
            "bitnet %s - run, train and quantize 1.58-bit (ternary) language models\n"
            "\n"
            "usage: bitnet [GLOBAL OPTIONS] COMMAND [ARGS]\n"
            "\n"
            "commands:\n", bn_version());
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!commands[i].hidden)
            fprintf(out, "  %-15s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\ncommands for tests and benchmarks:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].hidden)
            fprintf(out, "  %-15s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "global options:\n"
            "  -t, --threads N   threads for the library's pool (default: $BITNET_THREADS,\n"
            "                    else every online CPU)\n"
            "  -v, --verbose     log informational messages to stderr\n"
            "  -h, --help        show this help\n"
            "  -V, --version     print the version\n"
            "\n"
            "environment:\n"
            "  BITNET_THREADS    default thread count\n"
            "  BITNET_KERNELS    force a kernel family (scalar, avx2, avx512, amx, neon or\n"
            "                    neon-dotprod, in any case); one this build or CPU lacks\n"
            "                    is an error\n"
            "\n"
            "Run 'bitnet help COMMAND' for a command's options.\n");
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bitnet%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'bitnet %s%s' for usage.\n", cmd ? "help " : "--help",
            cmd ? cmd : "");
    return EXIT_USAGE;
}

int cli_fail(const char *cmd)
{
    fprintf(stderr, "bitnet %s: %s\n", cmd, bn_last_error());
    return 1;
}

bool cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool cli_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

char *cli_bytes(uint64_t n, char *buf, size_t cap)
{
    const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1000.0 && u < 4) {
        v /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, cap, "%.2f %s", v, units[u]);
    return buf;
}

bool cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

/* ------------------------------------------------------------------ arguments */

int cli_help(const char *name)
{
    const command *c = find_command(name);
    for (int k = 0; c && k < CLI_HELP_PARTS && c->help[k]; k++)
        fputs(c->help[k], stdout);
    return 0;
}

/* Whether `opt` (such as "--top-k" or "-p") is an option line of c's help, and whether
 * it takes a value there. An option line starts with two spaces and a dash and lists
 * its names separated by ", "; a name followed by one space and a word (N, FILE,
 * on|off) takes that value, one followed by two spaces or more is a flag. */
static bool help_option(const command *c, const char *opt, bool *takes_value)
{
    size_t olen = strlen(opt);
    for (int k = 0; k < CLI_HELP_PARTS && c->help[k]; k++) {
        for (const char *line = c->help[k]; *line; ) {
            const char *end = strchr(line, '\n');
            if (!end)
                end = line + strlen(line);
            if (line[0] == ' ' && line[1] == ' ' && line[2] == '-') {
                bool found = false;
                const char *p = line + 2;
                for (;;) {                                  /* the names of the line */
                    const char *q = p;
                    while (q < end && *q != ' ' && *q != ',')
                        q++;
                    if ((size_t)(q - p) == olen && memcmp(p, opt, olen) == 0)
                        found = true;
                    if (q + 2 < end && q[0] == ',' && q[1] == ' ' && q[2] == '-') {
                        p = q + 2;
                        continue;
                    }
                    *takes_value = q + 1 < end && q[0] == ' ' && q[1] != ' ';
                    break;
                }
                if (found)
                    return true;
            }
            line = *end ? end + 1 : end;
        }
    }
    return false;
}

/* The arguments after the command, as its reader expects them: "--opt=value" of an
 * option that takes a value is split in two, and -v/--verbose (where the command has
 * no option of that name) sets the log level wherever it stands. The value of an
 * option, and everything after "--", is passed on as it is. Returns the new argc. */
static int normalize_args(const command *c, int argc, char **argv, char **out)
{
    int n = 0;
    out[n++] = argv[0];
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        bool value = false;
        if (strcmp(a, "--") == 0) {
            while (i < argc)
                out[n++] = argv[i++];
            break;
        }
        char *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
        if (eq) {
            *eq = '\0';                        /* the arguments are ours to change */
            if (help_option(c, a, &value) && value) {
                out[n++] = a;
                out[n++] = eq + 1;
                continue;
            }
            *eq = '=';
        } else if (help_option(c, a, &value)) {
            out[n++] = a;
            if (value && i + 1 < argc)
                out[n++] = argv[++i];
            continue;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            bn_log_set_level(BN_LOG_INFO);
            continue;
        }
        out[n++] = a;
    }
    out[n] = NULL;
    return n;
}

/* ------------------------------------------------------------------ help, version */

static int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stdout);
        return 0;
    }
    const command *c = find_command(argv[1]);
    if (!c)
        return cli_usage_error("help", "unknown command '%s'", argv[1]);
    return cli_help(c->name);
}

static int cmd_version(int argc, char **argv)
{
    if (argc > 1)
        return cli_usage_error("version", "unexpected argument '%s'", argv[1]);
    printf("bitnet %s\n", bn_version());
    return 0;
}

/* ------------------------------------------------------------------ main */

/* What went to stdout must have arrived: a full disk or a closed pipe is an error,
 * however the command ended (a buffered write fails only at the flush). Returns the
 * exit code: rc, or 1 when it was 0 and the output was lost. */
static int stdout_errno;

bool cli_flush_stdout(void)
{
    if (fflush(stdout) == 0)
        return true;
    if (!stdout_errno)
        stdout_errno = errno;
    return false;
}

static int finish_stdout(const char *cmd, int rc)
{
    errno = 0;
    bool ok = fflush(stdout) == 0 && !ferror(stdout);
    int err = stdout_errno ? stdout_errno : errno;
    if (fclose(stdout) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        fprintf(stderr, "bitnet%s%s: writing standard output: %s\n", cmd ? " " : "",
                cmd ? cmd : "", err ? strerror(err) : "write error");
        if (rc == 0)
            rc = 1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    int i = 1;
    int threads = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_usage(stdout);
            return finish_stdout(NULL, 0);
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            return finish_stdout(NULL, cmd_version(1, argv));
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            bn_log_set_level(BN_LOG_INFO);
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(NULL, "%s needs a thread count", a);
            int64_t n;
            if (!cli_parse_int(argv[++i], 1, 512, &n))
                return cli_usage_error(NULL, "invalid thread count '%s' (expected 1 to 512)",
                                       argv[i]);
            threads = (int)n;
        } else {
            return cli_usage_error(NULL, "unknown option '%s'", a);
        }
    }
    if (i >= argc) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const command *c = find_command(argv[i]);
    if (!c)
        return cli_usage_error(NULL, "unknown command '%s'", argv[i]);
    if (c->run != cmd_help && c->run != cmd_version &&
        (bn_kernels_check_env() != BN_OK || bn_threads_check_env() != BN_OK)) {
        fprintf(stderr, "bitnet: %s\n", bn_last_error());
        return EXIT_USAGE;
    }
    if (threads > 0 && bn_set_num_threads(threads) != BN_OK) {
        fprintf(stderr, "bitnet: %s\n", bn_last_error());
        return 1;
    }
    /* "--opt=value" may become two arguments: at most twice as many */
    char **args = malloc(((size_t)(argc - i) * 2 + 1) * sizeof *args);
    if (!args) {
        fprintf(stderr, "bitnet: out of memory\n");
        return 1;
    }
    cli_signals_init();
    int rc = c->run(normalize_args(c, argc - i, argv + i, args), args);
    free(args);
    return finish_stdout(c->name, rc);
    return rc;
}
