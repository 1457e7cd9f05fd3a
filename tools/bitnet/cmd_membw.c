/*
 * cmd_membw.c - `bitnet membw`: the machine's memory read bandwidth, measured by
 * summing a large buffer on the library's thread pool. Benchmarks report their
 * throughput beside this figure, measured in the same run. Hidden from --help.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>

#include "cli.h"

const char cmd_membw_help[] =
    "usage: bitnet membw [--mib N] [--repeat R] [-t THREADS]\n"
    "\n"
    "Measure memory read bandwidth: sum a buffer of N MiB (default 2048) R times\n"
    "(default 5) on THREADS threads and print the best pass in GB/s (10^9 bytes/s).\n";

typedef struct membw_job {
    const uint64_t *words;
    uint64_t        partial[512];   /* one per chunk; prevents dead-code elimination */
    int64_t         chunk;
} membw_job;

/* Sums words [begin, end): a plain loop that the compiler turns into wide vector
 * adds, so the loads, not the adds, set the pace. */
static void membw_sum(void *ctx, int64_t begin, int64_t end)
{
    membw_job *j = ctx;
    uint64_t s = 0;
    for (int64_t i = begin; i < end; i++)
        s += j->words[i];
    j->partial[(begin / j->chunk) & 511] += s;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cmd_membw(int argc, char **argv)
{
    int64_t mib = 2048, repeat = 5, n;
    for (int i = 1; i < argc; i++) {
        bool v = i + 1 < argc;
        if (cli_is_help(argv[i]))
            return fputs(cmd_membw_help, stdout), 0;
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
    size_t bytes = (size_t)mib << 20;
    uint64_t *words = bn_malloc(bytes, "membw");
    if (!words)
        return cli_fail("membw");
    /* huge pages where the kernel allows them (fewer TLB misses), then touch every page
     * before timing */
    uintptr_t page = 2u << 20, start = ((uintptr_t)words + page - 1) & ~(page - 1);
    if (start < (uintptr_t)words + bytes)
        madvise((void *)start, (uintptr_t)words + bytes - start, MADV_HUGEPAGE);
    memset(words, 1, bytes);
    membw_job *job = calloc(1, sizeof *job);
    job->words = words;
    int64_t n_words = (int64_t)(bytes / 8);
    int threads = bn_get_num_threads();
    job->chunk = n_words / threads + 1;
    double best = 1e30;
    for (int64_t r = 0; r < repeat; r++) {
        double t0 = now_seconds();
        bn_parallel_for(NULL, n_words, job->chunk - 1 > 0 ? job->chunk - 1 : 1, membw_sum, job);
        double dt = now_seconds() - t0;
        best = dt < best ? dt : best;
    }
    uint64_t check = 0;
    for (int i = 0; i < 512; i++)
        check += job->partial[i];
    printf("read bandwidth: %.1f GB/s (%d threads, %lld MiB, best of %lld)%s\n",
           (double)bytes / best / 1e9, threads, (long long)mib, (long long)repeat,
           check == 0 ? " [sum 0]" : "");
    free(job);
    bn_free(words);
    return 0;
}
