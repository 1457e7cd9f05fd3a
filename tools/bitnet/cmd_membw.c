/*
 * cmd_membw.c - `bitnet membw`: the machine's memory read bandwidth, the best of
 * several ways of reading a large buffer on the library's thread pool
 * (bn_bench_read_methods), each shown. Benchmarks report their throughput beside this
 * figure, measured in the same run. Hidden from --help.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cmd_membw_help[] =
    "usage: bitnet membw [--mib N] [--repeat R] [-t THREADS]\n"
    "\n"
    "Measure memory read bandwidth: sum a buffer of N MiB (default 2048) R times\n"
    "(default 5) on THREADS threads, by each of several read methods (one stream per\n"
    "thread, four streams, the kernels' eight prefetched streams; in huge pages and in\n"
    "4 KiB pages), and print the best pass of the best method in GB/s (10^9 bytes/s),\n"
    "which method that was, and every method's figure below it.\n";

int cmd_membw(int argc, char **argv)
{
    int64_t mib = 2048, repeat = 5, n;
    for (int i = 1; i < argc; i++) {
        bool v = i + 1 < argc;
        if (cli_is_help(argv[i]))
            return cli_help("membw");
        if (strcmp(argv[i], "--mib") == 0 && v && cli_parse_int(argv[i + 1], 1, 1 << 20, &n))
            mib = n, i++;
        else if (strcmp(argv[i], "--repeat") == 0 && v &&
                 cli_parse_int(argv[i + 1], 1, 1000, &n))
            repeat = n, i++;
        else if (strcmp(argv[i], "-t") == 0 && v && cli_parse_int(argv[i + 1], 1, 512, &n)) {
            if (bn_set_num_threads((int)n) != BN_OK)
                return cli_fail("membw");
            i++;
        } else
            return cli_usage_error("membw", "bad argument '%s'", argv[i]);
    }
    bn_read_method m[BN_READ_METHODS];
    int count = 0;
    if (bn_bench_read_methods((size_t)mib << 20, (int)repeat, m, BN_READ_METHODS, &count) !=
        BN_OK)
        return cli_fail("membw");
    int best = 0;
    for (int i = 1; i < count; i++)
        best = m[i].gb_per_s > m[best].gb_per_s ? i : best;
    printf("read bandwidth: %.1f GB/s (%d threads, %lld MiB, best of %lld; %s)\n",
           m[best].gb_per_s, bn_get_num_threads(), (long long)mib, (long long)repeat,
           m[best].name);
    for (int i = 0; i < count; i++)
        printf("  %-40s %6.1f GB/s\n", m[i].name, m[i].gb_per_s);
    return 0;
}
