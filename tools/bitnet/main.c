/*
 * main.c - the `bitnet` command-line program: parses arguments, dispatches to a
 * subcommand and turns library statuses into messages and exit codes (0 success,
 * 1 failure, 2 bad usage). Everything it computes comes from libbitnet.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet.h"

#define EXIT_USAGE 2

typedef struct command {
    const char *name;
    const char *summary;
    const char *help;
    int (*run)(int argc, char **argv);
} command;

static int cmd_info(int argc, char **argv);
static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const command commands[] = {
    {"info", "describe this machine and build (--system)",
     "usage: bitnet info --system\n"
     "\n"
     "Print what libbitnet sees on this machine: the processor, its logical CPU count,\n"
     "the SIMD features detected at run time, the kernel family chosen, the default\n"
     "thread count and the available devices.\n"
     "\n"
     "options:\n"
     "  --system       describe the machine (the only mode in this version)\n"
     "  -h, --help     show this help\n",
     cmd_info},
    {"help", "show help for a command",
     "usage: bitnet help [COMMAND]\n", cmd_help},
    {"version", "print the version",
     "usage: bitnet version\n", cmd_version},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *out)
{
    fprintf(out,
            "bitnet %s - run, quantize and train 1.58-bit (ternary) neural networks\n"
            "\n"
            "usage: bitnet [GLOBAL OPTIONS] COMMAND [ARGS]\n"
            "\n"
            "commands:\n", bn_version());
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
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
            "  BITNET_KERNELS    force a kernel family: scalar or avx2\n"
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

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "bitnet%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nRun 'bitnet %s%s' for usage.\n", cmd ? "help " : "--help",
            cmd ? cmd : "");
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------ info */

static void print_features(const bn_cpu_info *cpu)
{
    const struct {
        const char *name;
        bool        on;
    } flags[] = {
        {"sse3", cpu->sse3},         {"ssse3", cpu->ssse3},
        {"avx", cpu->avx},           {"avx2", cpu->avx2},
        {"fma", cpu->fma},           {"f16c", cpu->f16c},
        {"avx512f", cpu->avx512f},   {"avx512bw", cpu->avx512bw},
        {"avx512vl", cpu->avx512vl}, {"avx512vnni", cpu->avx512vnni},
        {"avx512vbmi", cpu->avx512vbmi}, {"avx512bf16", cpu->avx512bf16},
        {"avxvnni", cpu->avx_vnni},  {"neon", cpu->neon},
        {"dotprod", cpu->dotprod},
    };
    int shown = 0;
    printf("features:  ");
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (flags[i].on) {
            printf("%s%s", shown ? " " : "", flags[i].name);
            shown++;
        }
    }
    printf("%s\n", shown ? "" : "(none beyond the baseline)");
}

static int info_system(void)
{
    const bn_cpu_info *cpu = bn_cpu_get_info();
    printf("bitnet:    %s\n", bn_version());
    printf("cpu:       %s (%s)\n", cpu->brand[0] ? cpu->brand : "unknown processor",
           cpu->arch);
    printf("cores:     %d logical\n", cpu->n_logical);
    print_features(cpu);
    printf("kernels:   %s\n", bn_kernels_name());
    printf("threads:   %d\n", bn_get_num_threads());
    printf("devices:  ");
    for (int i = 0; i < bn_device_count(); i++)
        printf(" %s", bn_device_name(bn_device_get(i)));
    printf("\n");
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0)
        printf("memory:    %.1f GiB\n", (double)pages * (double)page / (1024.0 * 1024 * 1024));
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    bool system = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--system") == 0)
            system = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return fputs(find_command("info")->help, stdout), 0;
        else if (argv[i][0] == '-')
            return usage_error("info", "unknown option '%s'", argv[i]);
        else
            return usage_error("info", "reading model files ('%s') is not available in "
                               "this version; use --system", argv[i]);
    }
    if (!system)
        return usage_error("info", "%s", "nothing to describe: pass --system");
    return info_system();
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
        return usage_error("help", "unknown command '%s'", argv[1]);
    fputs(c->help, stdout);
    return 0;
}

static int cmd_version(int argc, char **argv)
{
    if (argc > 1)
        return usage_error("version", "unexpected argument '%s'", argv[1]);
    printf("bitnet %s\n", bn_version());
    return 0;
}

/* ------------------------------------------------------------------ main */

/* Parses a thread count 1..512; -1 on anything else. */
static int parse_threads(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 512)
        return -1;
    return (int)v;
}

int main(int argc, char **argv)
{
    int i = 1;
    int threads = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_usage(stdout);
            return 0;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            return cmd_version(1, argv);
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            bn_log_set_level(BN_LOG_INFO);
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            if (i + 1 >= argc)
                return usage_error(NULL, "%s needs a thread count", a);
            if ((threads = parse_threads(argv[++i])) < 0)
                return usage_error(NULL, "invalid thread count '%s' (expected 1 to 512)",
                                   argv[i]);
        } else {
            return usage_error(NULL, "unknown option '%s'", a);
        }
    }
    if (i >= argc) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const command *c = find_command(argv[i]);
    if (!c)
        return usage_error(NULL, "unknown command '%s'", argv[i]);
    if (threads > 0 && bn_set_num_threads(threads) != BN_OK) {
        fprintf(stderr, "bitnet: %s\n", bn_last_error());
        return 1;
    }
    return c->run(argc - i, argv + i);
}
