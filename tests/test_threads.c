/*
 * test_threads.c - the thread pool: every thread runs each task exactly once, the
 * barrier orders phases and can be reused, parallel_for covers [0, n) exactly once
 * with chunks of at least `grain`, results do not depend on the thread count, the
 * default pool follows bn_set_num_threads and $BITNET_THREADS, and creation fails
 * cleanly (bad sizes, injected out-of-memory) without leaking.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"

#define MAX_T 64

static const int pool_sizes[] = {1, 2, 3, 8};
#define N_POOL_SIZES (int)(sizeof pool_sizes / sizeof pool_sizes[0])

/* Sleeps for `us` microseconds. */
static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* The live block count of the tracking allocator. */
static uint64_t live_blocks(void)
{
    bn_mem_stats s;
    bn_mem_get_stats(&s);
    return s.live_blocks;
}

/* ------------------------------------------------------------------ run */

typedef struct run_ctx {
    atomic_int calls[MAX_T];
    atomic_int bad_nth;
    int        expected_nth;
    pthread_t  who[MAX_T];
    int        finished[MAX_T];   /* plain writes: run() must publish them */
} run_ctx;

/* Counts the call for ith, remembers the thread, and finishes late on workers. */
static void run_task(void *arg, int ith, int nth)
{
    run_ctx *c = arg;
    if (nth != c->expected_nth || ith < 0 || ith >= MAX_T) {
        atomic_fetch_add(&c->bad_nth, 1);
        return;
    }
    atomic_fetch_add(&c->calls[ith], 1);
    c->who[ith] = pthread_self();
    if (ith != 0)
        sleep_us(500);   /* the caller must still wait for this one */
    c->finished[ith] = 1;
}

/* run() calls fn once per thread, ith distinct, on distinct threads, caller is 0. */
static void test_run_once_per_thread(void)
{
    for (int s = 0; s < N_POOL_SIZES; s++) {
        int n = pool_sizes[s];
        bn_threadpool *pool = NULL;
        CHECK_OK(bn_threadpool_create(n, &pool));
        if (!pool)
            continue;
        CHECK(bn_threadpool_size(pool) == n, "size %d, expected %d",
              bn_threadpool_size(pool), n);
        for (int rep = 0; rep < 20; rep++) {
            run_ctx c;
            memset(&c, 0, sizeof c);
            c.expected_nth = n;
            bn_threadpool_run(pool, run_task, &c);
            int total = 0, late = 0, dup = 0;
            for (int i = 0; i < MAX_T; i++)
                total += atomic_load(&c.calls[i]);
            for (int i = 0; i < n; i++) {
                CHECK(atomic_load(&c.calls[i]) == 1, "pool %d rep %d: thread %d ran %d times",
                      n, rep, i, atomic_load(&c.calls[i]));
                late += !c.finished[i];
                for (int j = 0; j < i; j++)
                    dup += pthread_equal(c.who[i], c.who[j]) != 0;
            }
            CHECK(total == n, "pool %d: %d calls in all", n, total);
            CHECK(atomic_load(&c.bad_nth) == 0, "pool %d: wrong nth seen", n);
            CHECK(late == 0, "pool %d: run returned before %d threads finished", n, late);
            CHECK(dup == 0, "pool %d: %d pairs of ith shared a thread", n, dup);
            CHECK(pthread_equal(c.who[0], pthread_self()), "ith 0 is not the caller");
        }
        bn_threadpool_free(pool);
    }
}

/* ------------------------------------------------------------------ barrier */

#define BARRIER_ROUNDS 1000

typedef struct barrier_ctx {
    bn_threadpool *pool;
    int            slot[MAX_T];   /* plain ints: only the barrier orders them */
    atomic_int     errors;
} barrier_ctx;

/* Each round: write own slot, barrier, read every slot, barrier. A thread that is
 * late to write (early rounds) must still be seen by all readers. */
static void barrier_task(void *arg, int ith, int nth)
{
    barrier_ctx *c = arg;
    int errors = 0;
    for (int r = 1; r <= BARRIER_ROUNDS; r++) {
        if (r <= 20 && ith == r % nth)
            sleep_us(200);
        c->slot[ith] = r;
        bn_threadpool_barrier(c->pool);
        for (int j = 0; j < nth; j++)
            errors += c->slot[j] != r;
        bn_threadpool_barrier(c->pool);
    }
    atomic_fetch_add(&c->errors, errors);
}

/* The barrier orders the two phases, round after round. */
static void test_barrier(void)
{
    for (int s = 0; s < N_POOL_SIZES; s++) {
        int n = pool_sizes[s];
        bn_threadpool *pool = NULL;
        CHECK_OK(bn_threadpool_create(n, &pool));
        if (!pool)
            continue;
        barrier_ctx *c = calloc(1, sizeof *c);
        c->pool = pool;
        bn_threadpool_run(pool, barrier_task, c);
        CHECK(atomic_load(&c->errors) == 0, "pool %d: %d stale reads across the barrier",
              n, atomic_load(&c->errors));
        /* and once more, in a second run of the same pool */
        bn_threadpool_run(pool, barrier_task, c);
        CHECK(atomic_load(&c->errors) == 0, "pool %d: second run: %d stale reads",
              n, atomic_load(&c->errors));
        free(c);
        bn_threadpool_free(pool);
    }
}

/* ------------------------------------------------------------------ parallel_for */

typedef struct cover_ctx {
    atomic_uchar *hits;
    atomic_int    n_chunks;
    atomic_llong  min_chunk;
    atomic_int    bad_range;
    int64_t       n;
} cover_ctx;

/* Marks every index of its chunk and records the chunk's size. */
static void cover_range(void *arg, int64_t begin, int64_t end)
{
    cover_ctx *c = arg;
    if (begin < 0 || end > c->n || begin >= end) {
        atomic_fetch_add(&c->bad_range, 1);
        return;
    }
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&c->hits[i], 1);
    atomic_fetch_add(&c->n_chunks, 1);
    long long size = end - begin, cur = atomic_load(&c->min_chunk);
    while (size < cur && !atomic_compare_exchange_weak(&c->min_chunk, &cur, size))
        ;
}

/* Runs one parallel_for over [0, n) and checks exact cover and chunk sizes. */
static void check_cover(bn_threadpool *pool, int nth, int64_t n, int64_t grain)
{
    cover_ctx c;
    memset(&c, 0, sizeof c);
    c.hits = calloc(n > 0 ? (size_t)n : 1, sizeof *c.hits);
    c.n = n;
    atomic_store(&c.min_chunk, (long long)n + 1);
    bn_parallel_for(pool, n, grain, cover_range, &c);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++)
        wrong += atomic_load(&c.hits[i]) != 1;
    int chunks = atomic_load(&c.n_chunks);
    CHECK(wrong == 0, "nth %d n %lld grain %lld: %lld indices not hit exactly once",
          nth, (long long)n, (long long)grain, (long long)wrong);
    CHECK(atomic_load(&c.bad_range) == 0, "n %lld: an empty or out-of-range chunk",
          (long long)n);
    CHECK(n > 0 ? chunks >= 1 && chunks <= nth : chunks == 0,
          "nth %d n %lld grain %lld: %d chunks", nth, (long long)n, (long long)grain,
          chunks);
    int64_t want_min = grain < n ? grain : n;
    CHECK(n == 0 || atomic_load(&c.min_chunk) >= want_min,
          "nth %d n %lld grain %lld: a chunk of %lld", nth, (long long)n,
          (long long)grain, (long long)atomic_load(&c.min_chunk));
    /* enough work for every thread: every thread must get some */
    if (n / grain >= nth)
        CHECK(chunks == nth, "nth %d n %lld grain %lld: only %d chunks", nth,
              (long long)n, (long long)grain, chunks);
    free(c.hits);
}

/* parallel_for covers [0, n) exactly once for many sizes, grains and pools. */
static void test_parallel_for_cover(void)
{
    static const int64_t sizes[] = {0, 1, 2, 7, 8, 9, 1000, 100003};
    static const int64_t grains[] = {1, 3, 64, 1000, 200000};
    static const int threads[] = {1, 2, 3, 7, 8};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        bn_threadpool *pool = NULL;
        CHECK_OK(bn_threadpool_create(threads[t], &pool));
        if (!pool)
            continue;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++)
                check_cover(pool, threads[t], sizes[s], grains[g]);
        bn_threadpool_free(pool);
    }
    /* the default pool (NULL) */
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        check_cover(NULL, bn_get_num_threads(), sizes[s], 5);
}

typedef struct sum_ctx {
    const double *x;
    double       *out;
    int64_t       n;
} sum_ctx;

/* out[i] = a windowed sum of x around i, accumulated in a fixed order. */
static void sum_range(void *arg, int64_t begin, int64_t end)
{
    sum_ctx *c = arg;
    for (int64_t i = begin; i < end; i++) {
        double acc = 0.0;
        for (int64_t k = 0; k < 37; k++)
            acc += c->x[(i * 7 + k * 13) % c->n] / (double)(k + 1);
        c->out[i] = acc;
    }
}

/* Per-index results are bit-identical for 1, 2, 3 and 7 threads and inline. */
static void test_parallel_for_deterministic(void)
{
    const int64_t n = 50021;
    double *x = malloc(n * sizeof *x), *ref = malloc(n * sizeof *ref);
    double *out = malloc(n * sizeof *out);
    for (int64_t i = 0; i < n; i++)
        x[i] = sin((double)i * 0.37) * 1e3 + 1.0 / (double)(i + 1);
    sum_ctx c = {x, ref, n};
    sum_range(&c, 0, n);
    static const int threads[] = {1, 2, 3, 7};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        bn_threadpool *pool = NULL;
        CHECK_OK(bn_threadpool_create(threads[t], &pool));
        if (!pool)
            continue;
        for (int64_t grain = 1; grain <= 4096; grain *= 16) {
            memset(out, 0xff, n * sizeof *out);
            c.out = out;
            bn_parallel_for(pool, n, grain, sum_range, &c);
            CHECK(memcmp(out, ref, n * sizeof *out) == 0,
                  "%d threads, grain %lld: results differ from the serial ones",
                  threads[t], (long long)grain);
        }
        bn_threadpool_free(pool);
    }
    free(x);
    free(ref);
    free(out);
}

typedef struct nested_ctx {
    bn_threadpool *pool;
    atomic_int    *hits;
    int64_t        n;
} nested_ctx;

/* Marks each index of a range. */
static void nested_mark(void *arg, int64_t begin, int64_t end)
{
    nested_ctx *c = arg;
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&c->hits[i], 1);
}

/* Each thread of a run calls parallel_for on its own pool: it must run inline. */
static void nested_task(void *arg, int ith, int nth)
{
    nested_ctx *c = arg;
    (void)nth;
    if (ith == 0)
        bn_parallel_for(c->pool, c->n, 1, nested_mark, c);
}

/* parallel_for inside a task of the same pool completes and covers the range. */
static void test_parallel_for_nested(void)
{
    bn_threadpool *pool = NULL;
    CHECK_OK(bn_threadpool_create(4, &pool));
    if (!pool)
        return;
    atomic_int hits[100];
    memset(hits, 0, sizeof hits);
    nested_ctx c = {pool, hits, 100};
    bn_threadpool_run(pool, nested_task, &c);
    int wrong = 0;
    for (int i = 0; i < 100; i++)
        wrong += atomic_load(&hits[i]) != 1;
    CHECK(wrong == 0, "nested parallel_for: %d indices not hit once", wrong);
    bn_threadpool_free(pool);
}

/* Calls parallel_for on the default pool many times (for a concurrent caller). */
static void *concurrent_caller(void *arg)
{
    atomic_int *failures = arg;
    const int64_t n = 4099;
    atomic_int *hits = calloc(n, sizeof *hits);
    nested_ctx c = {NULL, hits, n};
    for (int rep = 0; rep < 100; rep++) {
        bn_parallel_for(NULL, n, 16, nested_mark, &c);
        for (int64_t i = 0; i < n; i++)
            if (atomic_load(&hits[i]) != rep + 1)
                atomic_fetch_add(failures, 1);
    }
    free(hits);
    return NULL;
}

/* Two program threads using the default pool at once get correct results. */
static void test_parallel_for_concurrent_callers(void)
{
    CHECK_OK(bn_set_num_threads(3));
    atomic_int failures = 0;
    pthread_t a, b;
    pthread_create(&a, NULL, concurrent_caller, &failures);
    pthread_create(&b, NULL, concurrent_caller, &failures);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK(atomic_load(&failures) == 0, "%d wrong hit counts with two callers",
          atomic_load(&failures));
}

/* The child of a fork() can use the default pool although its workers stayed in
 * the parent. */
static void test_fork_child(void)
{
#if defined(__SANITIZE_THREAD__)
    printf("test_threads: note: fork test skipped (ThreadSanitizer cannot follow "
           "threads into a forked child)\n");
    return;
#endif
    CHECK_OK(bn_set_num_threads(3));
    check_cover(NULL, 3, 10007, 7);   /* the parent's pool is up and running */
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        alarm(30);   /* a hang in the child ends as a failure, not a stuck test */
        const int64_t n = 10007;
        atomic_int *hits = calloc(n, sizeof *hits);
        nested_ctx c = {NULL, hits, n};
        bn_parallel_for(NULL, n, 7, nested_mark, &c);
        int wrong = 0;
        for (int64_t i = 0; i < n; i++)
            wrong += atomic_load(&hits[i]) != 1;
        int ok = wrong == 0 && bn_get_num_threads() == 3;
        ok = ok && bn_set_num_threads(1) == BN_OK;   /* no workers left at _exit */
        free(hits);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    CHECK(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "parallel_for in a forked child failed (status 0x%x)", status);
    check_cover(NULL, 3, 10007, 7);   /* and the parent's pool still works */
}

/* ------------------------------------------------------------------ default pool */

static atomic_int warn_count;
static char warn_text[512];

/* A log sink that remembers warnings mentioning BITNET_THREADS. */
static void capture_log(bn_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == BN_LOG_WARN && strstr(msg, "BITNET_THREADS")) {
        atomic_fetch_add(&warn_count, 1);
        snprintf(warn_text, sizeof warn_text, "%s", msg);
    }
}

/* The online CPU count as the default pool should see it. */
static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 512 ? 512 : (int)n;
}

/* $BITNET_THREADS (set in main before any use) decides the first default pool. */
static void test_env_first_use(void)
{
    CHECK(bn_get_num_threads() == 3, "BITNET_THREADS=3 but %d threads",
          bn_get_num_threads());
    bn_threadpool *def = bn_default_threadpool();
    CHECK(def != NULL, "no default pool: %s", bn_last_error());
    if (def)
        CHECK(bn_threadpool_size(def) == 3, "default pool has %d threads",
              bn_threadpool_size(def));
    CHECK(bn_default_threadpool() == def, "the default pool changed by itself");
}

/* set/get round trip, 0 reapplies the default, invalid values are ignored. */
static void test_set_num_threads(void)
{
    static const int counts[] = {1, 5, 2, 8, 1};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        CHECK_OK(bn_set_num_threads(counts[i]));
        CHECK(bn_get_num_threads() == counts[i], "set %d, got %d", counts[i],
              bn_get_num_threads());
        bn_threadpool *def = bn_default_threadpool();
        CHECK(def && bn_threadpool_size(def) == counts[i], "default pool size wrong");
    }
    CHECK_OK(bn_set_num_threads(0));
    CHECK(bn_get_num_threads() == 3, "set 0 with BITNET_THREADS=3 gave %d",
          bn_get_num_threads());

    bn_log_set(capture_log, NULL);
    static const char *invalid[] = {"abc", "0", "-2", "513", "3x", "99999999999999999999",
                                     " 4", "99999"};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        setenv("BITNET_THREADS", invalid[i], 1);
        atomic_store(&warn_count, 0);
        CHECK_OK(bn_set_num_threads(0));
        CHECK(bn_get_num_threads() == cpu_count(),
              "BITNET_THREADS='%s': %d threads, expected the CPU count %d", invalid[i],
              bn_get_num_threads(), cpu_count());
        CHECK(atomic_load(&warn_count) == 1, "BITNET_THREADS='%s': %d warnings, "
              "expected 1", invalid[i], atomic_load(&warn_count));
        /* asked again, the same bad value is not logged again */
        for (int k = 0; k < 3; k++) {
            bn_get_num_threads();
            CHECK_OK(bn_set_num_threads(0));
        }
        CHECK(atomic_load(&warn_count) == 1, "BITNET_THREADS='%s' warned %d times",
              invalid[i], atomic_load(&warn_count));
        CHECK(strstr(warn_text, invalid[i]) != NULL, "the warning '%s' misses the value",
              warn_text);
        bn_error_clear();
        CHECK(bn_threads_check_env() == BN_ERR_INVALID_ARG,
              "bn_threads_check_env accepts BITNET_THREADS='%s'", invalid[i]);
        CHECK(strstr(bn_last_error(), "BITNET_THREADS='") && strstr(bn_last_error(),
              invalid[i]), "check message '%s' misses the value", bn_last_error());
    }
    bn_log_set(NULL, NULL);
    static const char *valid[] = {"1", "4", "512", "+7", ""};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        setenv("BITNET_THREADS", valid[i], 1);
        CHECK(bn_threads_check_env() == BN_OK, "bn_threads_check_env refuses '%s': %s",
              valid[i], bn_last_error());
    }
    unsetenv("BITNET_THREADS");
    CHECK(bn_threads_check_env() == BN_OK, "bn_threads_check_env refuses an unset value");
    setenv("BITNET_THREADS", "2", 1);
    CHECK_OK(bn_set_num_threads(0));
    CHECK(bn_get_num_threads() == 2, "BITNET_THREADS=2 gave %d", bn_get_num_threads());
    unsetenv("BITNET_THREADS");
    CHECK_OK(bn_set_num_threads(0));
    CHECK(bn_get_num_threads() == cpu_count(), "unset BITNET_THREADS: %d, expected %d",
          bn_get_num_threads(), cpu_count());

    int before = bn_get_num_threads();
    static const int bad[] = {-1, 513, 100000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bn_error_clear();
        bn_status st = bn_set_num_threads(bad[i]);
        CHECK(st == BN_ERR_INVALID_ARG, "set_num_threads(%d) -> %s", bad[i],
              bn_status_str(st));
        CHECK(bn_last_error()[0] != '\0', "no message for set_num_threads(%d)", bad[i]);
        CHECK(bn_get_num_threads() == before, "a failed set changed the count");
    }
}

/* ------------------------------------------------------------------ errors */

/* Invalid sizes are BN_ERR_INVALID_ARG with a message; *out is not written. */
static void test_invalid_sizes(void)
{
    static const int bad[] = {0, -1, 513, 100000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bn_threadpool *sentinel = (bn_threadpool *)&warn_count, *pool = sentinel;
        bn_error_clear();
        bn_status st = bn_threadpool_create(bad[i], &pool);
        CHECK(st == BN_ERR_INVALID_ARG, "create(%d) -> %s", bad[i], bn_status_str(st));
        CHECK(bn_last_status() == BN_ERR_INVALID_ARG, "last status not set");
        CHECK(bn_last_error()[0] != '\0', "create(%d): empty error message", bad[i]);
        CHECK(pool == sentinel, "create(%d) wrote *out on failure", bad[i]);
    }
}

/* Every allocation of create, made to fail in turn, gives BN_ERR_OOM and no leak. */
static void test_oom_injection(void)
{
    uint64_t base = live_blocks();
    bn_threadpool *pool = NULL;
    int attempt;
    for (attempt = 1; attempt <= 100; attempt++) {
        bn_mem_fail_nth((uint64_t)attempt);
        bn_error_clear();
        bn_status st = bn_threadpool_create(4, &pool);
        if (st == BN_OK)
            break;
        CHECK(st == BN_ERR_OOM, "failing allocation %d: %s (%s)", attempt,
              bn_status_str(st), bn_last_error());
        CHECK(pool == NULL, "failing allocation %d: *out written", attempt);
        CHECK(bn_last_error()[0] != '\0', "failing allocation %d: no message", attempt);
        CHECK(live_blocks() == base, "failing allocation %d: %llu blocks leaked",
              attempt, (unsigned long long)(live_blocks() - base));
    }
    bn_mem_fail_nth(0);
    CHECK(attempt > 1 && attempt <= 100, "create never failed or never succeeded (%d)",
          attempt);
    CHECK(pool != NULL, "no pool after the injection loop");
    if (pool) {
        run_ctx c;
        memset(&c, 0, sizeof c);
        c.expected_nth = 4;
        bn_threadpool_run(pool, run_task, &c);
        CHECK(atomic_load(&c.calls[3]) == 1, "pool made after failures does not run");
        bn_threadpool_free(pool);
    }
    CHECK(live_blocks() == base, "%llu blocks left after freeing the pool",
          (unsigned long long)(live_blocks() - base));
}

/* 200 pools created and freed, some without ever running: no leak, no hang. */
static void test_create_free_cycles(void)
{
    uint64_t base = live_blocks();
    int failures = 0;
    for (int i = 0; i < 200; i++) {
        bn_threadpool *pool = NULL;
        if (bn_threadpool_create(1 + i % 8, &pool) != BN_OK) {
            failures++;
            continue;
        }
        if (i % 2) {
            run_ctx c;
            memset(&c, 0, sizeof c);
            c.expected_nth = 1 + i % 8;
            bn_threadpool_run(pool, run_task, &c);
            failures += atomic_load(&c.calls[i % 8]) != 1;
        }
        bn_threadpool_free(pool);
    }
    bn_threadpool_free(NULL);
    CHECK(failures == 0, "%d of 200 create/run cycles failed", failures);
    CHECK(live_blocks() == base, "%llu blocks leaked over 200 cycles",
          (unsigned long long)(live_blocks() - base));
}

int main(void)
{
    setenv("BITNET_THREADS", "3", 1);   /* before anything touches the default pool */
    test_env_first_use();
    test_run_once_per_thread();
    test_barrier();
    test_parallel_for_cover();
    test_parallel_for_deterministic();
    test_parallel_for_nested();
    test_parallel_for_concurrent_callers();
    test_fork_child();
    test_set_num_threads();
    test_invalid_sizes();
    test_oom_injection();
    test_create_free_cycles();
    return check_summary("test_threads");
}
