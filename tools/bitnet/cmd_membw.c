/*
 * cmd_membw.c - `bitnet membw`: the machine's memory read bandwidth
 * (bn_bench_read_bandwidth: a large buffer summed with the widest loads of the chosen
 * kernel family on the library's thread pool). Benchmarks report their throughput
 * beside this figure, measured in the same run. Hidden from --help.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cmd_membw_help[] =
    "usage: bitnet membw [--mib N] [--repeat R] [-t THREADS]\n"
    "\n"
    "Measure memory read bandwidth: sum a buffer of N MiB (default 2048) R times\n"
    "(default 5) on THREADS threads and print the best pass in GB/s (10^9 bytes/s).\n";

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
    double gbps;
    if (bn_bench_read_bandwidth((size_t)mib << 20, (int)repeat, &gbps) != BN_OK)
        return cli_fail("membw");
    printf("read bandwidth: %.1f GB/s (%d threads, %lld MiB, best of %lld)\n", gbps,
           bn_get_num_threads(), (long long)mib, (long long)repeat);
    return 0;
}
