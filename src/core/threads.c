/*
 * threads.c - the thread pool: persistent workers, a reusable barrier, parallel_for
 * and the library's default pool.
 *
 * A pool of N threads owns N-1 workers; the thread that calls bn_threadpool_run is
 * thread 0. Work is handed out through a generation counter: the caller stores the
 * task, bumps `work_gen` and runs its own share, each worker wakes on the change,
 * runs its share and counts itself out; the last one bumps `done_gen`. Every wait
 * (for work, for completion, at the barrier) spins briefly on the counter, then
 * sleeps on a condition variable, so short phases stay cheap and idle workers cost
 * nothing. A run allocates nothing.
 *
 * The default pool is created on first use with $BITNET_THREADS or the number of
 * online CPUs threads, and replaced by bn_set_num_threads. Its memory comes from the
 * C library rather than bn_malloc: it lives as long as the process, and counting it
 * would make every leak report after an operation, and every failure-injection loop,
 * see a block that no caller owns. Pools made with bn_threadpool_create use bn_malloc.
 * The default pool is stopped at exit (or when the library is unloaded) and forgotten
 * in the child of a fork(), whose copy has no workers; a program's own pools do not
 * survive a fork either.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

#define BN_TP_MAX_THREADS 512
#define BN_TP_SPIN_ITERS  2000
#define BN_TP_CACHE_LINE  64

/* One worker thread: its index in the pool (1 .. n_threads-1) and its handle. */
typedef struct bn_tp_worker {
    bn_threadpool *pool;
    int            index;
    pthread_t      thread;
} bn_tp_worker;

struct bn_threadpool {
    int             n_threads;
    int             n_started;     /* workers successfully created */
    bool            tracked;       /* memory from bn_malloc (else aligned_alloc) */
    pthread_mutex_t mutex;         /* guards the sleeps on the three conditions */
    pthread_cond_t  cond_work;     /* workers: work_gen changed */
    pthread_cond_t  cond_done;     /* caller: done_gen changed */
    pthread_cond_t  cond_barrier;  /* threads at the barrier: barrier_gen changed */
    pthread_mutex_t run_lock;      /* one run at a time, from any thread */

    /* The task of the current run; written by the caller before work_gen moves. */
    bn_task_fn task_fn;
    void      *task_ctx;

    _Alignas(BN_TP_CACHE_LINE) atomic_uint work_gen;
    atomic_bool stop;
    _Alignas(BN_TP_CACHE_LINE) atomic_int n_running;  /* workers still in the task */
    atomic_uint done_gen;
    _Alignas(BN_TP_CACHE_LINE) atomic_int barrier_count;
    atomic_uint barrier_gen;

    _Alignas(BN_TP_CACHE_LINE) bn_tp_worker workers[];   /* n_threads - 1 */
};

/* The pool whose task the current thread is running (NULL outside any task). Lets a
 * nested bn_parallel_for on the same pool run inline instead of deadlocking. */
static _Thread_local bn_threadpool *tp_current;

/* Tells the CPU that this is a spin-wait loop. */
static inline void tp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Waits while *word == value: spins a little, then sleeps on `cond`. Whoever changes
 * the word must call tp_wake afterwards with the same condition. */
static void tp_wait_while(bn_threadpool *pool, pthread_cond_t *cond,
                          atomic_uint *word, unsigned value)
{
    for (int i = 0; i < BN_TP_SPIN_ITERS; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != value)
            return;
        tp_cpu_relax();
    }
    pthread_mutex_lock(&pool->mutex);
    while (atomic_load_explicit(word, memory_order_acquire) == value)
        pthread_cond_wait(cond, &pool->mutex);
    pthread_mutex_unlock(&pool->mutex);
}

/* Wakes every thread sleeping on `cond`. Taking the mutex orders the wake-up after a
 * sleeper's last check of its word, so no wake-up is lost. */
static void tp_wake(bn_threadpool *pool, pthread_cond_t *cond)
{
    pthread_mutex_lock(&pool->mutex);
    pthread_cond_broadcast(cond);
    pthread_mutex_unlock(&pool->mutex);
}

/* A worker's life: wait for a new generation, run the task, count out; leave on stop.*/
static void *tp_worker_main(void *arg)
{
    bn_tp_worker *self = arg;
    bn_threadpool *pool = self->pool;
    unsigned seen = 0;

    for (;;) {
        tp_wait_while(pool, &pool->cond_work, &pool->work_gen, seen);
        seen = atomic_load_explicit(&pool->work_gen, memory_order_acquire);
        if (atomic_load_explicit(&pool->stop, memory_order_acquire))
            break;
        tp_current = pool;
        pool->task_fn(pool->task_ctx, self->index, pool->n_threads);
        tp_current = NULL;
        if (atomic_fetch_sub_explicit(&pool->n_running, 1, memory_order_acq_rel) == 1) {
            atomic_fetch_add_explicit(&pool->done_gen, 1, memory_order_release);
            tp_wake(pool, &pool->cond_done);
        }
    }
    return NULL;
}

/* Zeroed memory for a pool: tracked (bn_calloc) or from the C library. NULL with
 * BN_ERR_OOM set on failure. */
static bn_threadpool *tp_alloc(size_t nbytes, bool tracked)
{
    if (tracked)
        return bn_calloc(1, nbytes, "threadpool");
    size_t rounded = (nbytes + BN_TP_CACHE_LINE - 1) / BN_TP_CACHE_LINE * BN_TP_CACHE_LINE;
    bn_threadpool *pool = aligned_alloc(BN_TP_CACHE_LINE, rounded);
    if (!pool) {
        bn_error_set(BN_ERR_OOM, "out of memory allocating %zu bytes (tag 'threadpool')",
                     rounded);
        return NULL;
    }
    memset(pool, 0, rounded);
    return pool;
}

/* Releases memory from tp_alloc. */
static void tp_release(bn_threadpool *pool)
{
    if (pool->tracked)
        bn_free(pool);
    else
        free(pool);
}

/* Initialises the mutexes and conditions; on failure destroys what was made. */
static bn_status tp_init_sync(bn_threadpool *pool)
{
    int rc = pthread_mutex_init(&pool->mutex, NULL);
    if (rc != 0)
        goto fail;
    rc = pthread_mutex_init(&pool->run_lock, NULL);
    if (rc != 0)
        goto fail_mutex;
    rc = pthread_cond_init(&pool->cond_work, NULL);
    if (rc != 0)
        goto fail_run_lock;
    rc = pthread_cond_init(&pool->cond_done, NULL);
    if (rc != 0)
        goto fail_cond_work;
    rc = pthread_cond_init(&pool->cond_barrier, NULL);
    if (rc == 0)
        return BN_OK;
    pthread_cond_destroy(&pool->cond_done);
fail_cond_work:
    pthread_cond_destroy(&pool->cond_work);
fail_run_lock:
    pthread_mutex_destroy(&pool->run_lock);
fail_mutex:
    pthread_mutex_destroy(&pool->mutex);
fail:
    return bn_error_set(rc == ENOMEM || rc == EAGAIN ? BN_ERR_OOM : BN_ERR_INTERNAL,
                        "thread pool: initialising a mutex or condition failed "
                        "(error %d)", rc);
}

/* Destroys what tp_init_sync made. */
static void tp_destroy_sync(bn_threadpool *pool)
{
    pthread_cond_destroy(&pool->cond_barrier);
    pthread_cond_destroy(&pool->cond_done);
    pthread_cond_destroy(&pool->cond_work);
    pthread_mutex_destroy(&pool->run_lock);
    pthread_mutex_destroy(&pool->mutex);
}

/* Tells the started workers to leave and joins them. */
static void tp_stop_workers(bn_threadpool *pool)
{
    atomic_store_explicit(&pool->stop, true, memory_order_release);
    atomic_fetch_add_explicit(&pool->work_gen, 1, memory_order_release);
    tp_wake(pool, &pool->cond_work);
    for (int i = 0; i < pool->n_started; i++)
        pthread_join(pool->workers[i].thread, NULL);
    pool->n_started = 0;
}

/* Starts the n_threads-1 workers with every signal blocked, so that asynchronous
 * signals keep going to the program's own threads. On failure the started ones are
 * stopped and joined. */
static bn_status tp_start_workers(bn_threadpool *pool)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (int i = 0; i < pool->n_threads - 1; i++) {
        bn_tp_worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i + 1;
        rc = pthread_create(&w->thread, NULL, tp_worker_main, w);
        if (rc != 0)
            break;
        pool->n_started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        return BN_OK;
    int started = pool->n_started;
    tp_stop_workers(pool);
    return bn_error_set(rc == EAGAIN ? BN_ERR_OOM : BN_ERR_INTERNAL,
                        "thread pool: starting worker %d of %d failed (%s, error %d)",
                        started + 1, pool->n_threads - 1,
                        rc == EAGAIN ? "EAGAIN: out of thread resources" : "pthread_create",
                        rc);
}

/* Creates a pool of n_threads threads whose memory is tracked or not (see the top). */
static bn_status tp_create(int n_threads, bool tracked, bn_threadpool **out)
{
    if (n_threads < 1 || n_threads > BN_TP_MAX_THREADS)
        return bn_error_set(BN_ERR_INVALID_ARG,
                            "bn_threadpool_create: n_threads %d is outside 1..%d",
                            n_threads, BN_TP_MAX_THREADS);
    size_t nbytes = sizeof(bn_threadpool) + (size_t)(n_threads - 1) * sizeof(bn_tp_worker);
    bn_threadpool *pool = tp_alloc(nbytes, tracked);
    if (!pool)
        return bn_error_wrap(BN_OK, "creating a pool of %d threads", n_threads);
    pool->n_threads = n_threads;
    pool->tracked = tracked;
    bn_status st = tp_init_sync(pool);
    if (st == BN_OK) {
        st = tp_start_workers(pool);
        if (st != BN_OK)
            tp_destroy_sync(pool);
    }
    if (st != BN_OK) {
        tp_release(pool);
        return bn_error_wrap(BN_OK, "creating a pool of %d threads", n_threads);
    }
    *out = pool;
    return BN_OK;
}

/* Creates a pool of n_threads threads (1..512) with bn_malloc'd memory. */
bn_status bn_threadpool_create(int n_threads, bn_threadpool **out)
{
    assert(out);
    return tp_create(n_threads, true, out);
}

/* Stops and joins the workers, then frees the pool. NULL is a no-op. */
void bn_threadpool_free(bn_threadpool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->run_lock);   /* let a run from another thread finish */
    tp_stop_workers(pool);
    pthread_mutex_unlock(&pool->run_lock);
    tp_destroy_sync(pool);
    tp_release(pool);
}

/* The number of threads of the pool, the caller's included. */
int bn_threadpool_size(const bn_threadpool *pool)
{
    assert(pool);
    return pool->n_threads;
}

/* Runs fn on every thread of the pool (the caller is thread 0) and returns when all
 * have returned. Runs from different threads are serialised. */
void bn_threadpool_run(bn_threadpool *pool, bn_task_fn fn, void *ctx)
{
    assert(pool && fn);
    assert(tp_current != pool && "bn_threadpool_run is not re-entrant");
    bn_threadpool *outer = tp_current;
    if (pool->n_threads == 1) {
        tp_current = pool;
        fn(ctx, 0, 1);
        tp_current = outer;
        return;
    }
    pthread_mutex_lock(&pool->run_lock);
    pool->task_fn = fn;
    pool->task_ctx = ctx;
    unsigned done_before = atomic_load_explicit(&pool->done_gen, memory_order_relaxed);
    atomic_store_explicit(&pool->n_running, pool->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->work_gen, 1, memory_order_release);
    tp_wake(pool, &pool->cond_work);

    tp_current = pool;
    fn(ctx, 0, pool->n_threads);
    tp_current = outer;

    tp_wait_while(pool, &pool->cond_done, &pool->done_gen, done_before);
    pthread_mutex_unlock(&pool->run_lock);
}

/* Waits until every thread of the pool has arrived. The generation read on arrival
 * lets the barrier be reused at once: the last thread resets the count before it
 * moves the generation on, and nobody can arrive at the next round before that. */
void bn_threadpool_barrier(bn_threadpool *pool)
{
    assert(pool);
    if (pool->n_threads == 1)
        return;
    unsigned gen = atomic_load_explicit(&pool->barrier_gen, memory_order_acquire);
    int arrived = atomic_fetch_add_explicit(&pool->barrier_count, 1,
                                            memory_order_acq_rel) + 1;
    if (arrived == pool->n_threads) {
        atomic_store_explicit(&pool->barrier_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool->barrier_gen, 1, memory_order_release);
        tp_wake(pool, &pool->cond_barrier);
    } else {
        tp_wait_while(pool, &pool->cond_barrier, &pool->barrier_gen, gen);
    }
}

/* ---------------------------------------------------------------- parallel_for */

/* A parallel_for split: chunk i of n_chunks over [0, n) for each thread i. */
typedef struct bn_tp_range {
    bn_range_fn fn;
    void       *ctx;
    int64_t     n;
    int64_t     n_chunks;
} bn_tp_range;

/* Runs chunk ith of the split, if there is one: [begin, end) with sizes that differ
 * by at most one, the larger ones first. */
static void tp_range_task(void *arg, int ith, int nth)
{
    const bn_tp_range *r = arg;
    (void)nth;
    if (ith >= r->n_chunks)
        return;
    int64_t base = r->n / r->n_chunks, extra = r->n % r->n_chunks;
    int64_t begin = ith * base + (ith < extra ? ith : extra);
    int64_t end = begin + base + (ith < extra ? 1 : 0);
    r->fn(r->ctx, begin, end);
}

/* Runs [0, n) on `pool` in at most pool-size chunks of at least `grain` indices. */
static void tp_parallel_for_on(bn_threadpool *pool, int64_t n, int64_t grain,
                               bn_range_fn fn, void *ctx)
{
    int64_t n_chunks = pool && pool != tp_current ? pool->n_threads : 1;
    if (n / grain < n_chunks)
        n_chunks = n / grain;
    if (n_chunks <= 1) {
        fn(ctx, 0, n);
        return;
    }
    bn_tp_range range = { fn, ctx, n, n_chunks };
    bn_threadpool_run(pool, tp_range_task, &range);
}

/* ---------------------------------------------------------------- default pool */

/* The default pool and its size. The read lock is held while an operation runs on
 * the pool, so that bn_set_num_threads (write lock) never frees it under a caller. */
static pthread_rwlock_t tp_default_lock = PTHREAD_RWLOCK_INITIALIZER;
static bn_threadpool *tp_default;

/* In a child of fork() the default pool's workers do not exist, and the lock may be
 * copied in a held state: drop the pool's memory without joining or destroying
 * anything, and start over with a fresh lock, so that the child can make its own. */
static void tp_default_after_fork(void)
{
    pthread_rwlock_init(&tp_default_lock, NULL);
    if (tp_default)
        tp_release(tp_default);
    tp_default = NULL;
}

/* Registers tp_default_after_fork (once). */
static void tp_register_atfork(void)
{
    pthread_atfork(NULL, NULL, tp_default_after_fork);
}

/* At exit or unload of the library, stops the default pool's workers and frees it:
 * threads left running code of an unloaded library would crash, and leak checkers
 * would report them. Skipped when the pool is in use (exit from inside a task, or
 * while another thread is running on it). */
__attribute__((destructor)) static void tp_default_release(void)
{
    if (tp_current || pthread_rwlock_trywrlock(&tp_default_lock) != 0)
        return;
    bn_threadpool_free(tp_default);
    tp_default = NULL;
    pthread_rwlock_unlock(&tp_default_lock);
}

/* The online CPU count, clamped to 1..512. */
static int tp_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > BN_TP_MAX_THREADS ? BN_TP_MAX_THREADS : (int)n;
}

/* The message for a $BITNET_THREADS that is no thread count. */
#define TP_ENV_BAD "BITNET_THREADS='%.64s' is not an integer in 1..%d"

/* $BITNET_THREADS as a thread count: 0 when it is unset or empty, -1 when it is not an
 * integer in 1..512 (leading blanks included). */
static int tp_env_count(void)
{
    const char *env = getenv("BITNET_THREADS");
    if (!env || !*env)
        return 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(env, &end, 10);
    bool ok = errno == 0 && end != env && *end == '\0' && v >= 1 &&
              v <= BN_TP_MAX_THREADS && !isspace((unsigned char)env[0]);
    return ok ? (int)v : -1;
}

bn_status bn_threads_check_env(void)
{
    if (tp_env_count() >= 0)
        return BN_OK;
    return bn_error_set(BN_ERR_INVALID_ARG, TP_ENV_BAD, getenv("BITNET_THREADS"),
                        BN_TP_MAX_THREADS);
}

/* The default thread count: $BITNET_THREADS when it is an integer in 1..512, else the
 * online CPU count. A bad value is logged once (and again only when it changes): the
 * count is asked for on first use, by every bn_get_num_threads before the pool exists
 * and by bn_set_num_threads(0). */
static int tp_default_count(void)
{
    static pthread_mutex_t warned_lock = PTHREAD_MUTEX_INITIALIZER;
    static char warned[80];   /* the bad value logged last */
    int n = tp_env_count();
    if (n < 0) {
        const char *env = getenv("BITNET_THREADS");
        pthread_mutex_lock(&warned_lock);
        bool again = strncmp(warned, env, sizeof warned - 1) == 0;
        if (!again)
            snprintf(warned, sizeof warned, "%s", env);
        pthread_mutex_unlock(&warned_lock);
        if (!again)
            bn_log(BN_LOG_WARN, TP_ENV_BAD "; ignoring it", env, BN_TP_MAX_THREADS);
    }
    return n > 0 ? n : tp_cpu_count();
}

/* Replaces the default pool by one of n threads (kept when it already has n).
 * Caller holds the write lock. */
static bn_status tp_default_replace(int n)
{
    static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
    pthread_once(&atfork_once, tp_register_atfork);
    if (tp_default && tp_default->n_threads == n)
        return BN_OK;
    bn_threadpool *fresh = NULL;
    bn_status st = tp_create(n, false, &fresh);
    if (st != BN_OK)
        return bn_error_wrap(BN_OK, "setting the default pool to %d threads", n);
    bn_threadpool_free(tp_default);
    tp_default = fresh;
    return BN_OK;
}

/* The default pool, created on first use; NULL when it cannot be created (the error
 * is left on the calling thread). */
bn_threadpool *bn_default_threadpool(void)
{
    pthread_rwlock_rdlock(&tp_default_lock);
    bn_threadpool *pool = tp_default;
    pthread_rwlock_unlock(&tp_default_lock);
    if (pool)
        return pool;
    pthread_rwlock_wrlock(&tp_default_lock);
    if (!tp_default)
        tp_default_replace(tp_default_count());
    pool = tp_default;
    pthread_rwlock_unlock(&tp_default_lock);
    return pool;
}

/* Sets the default pool's size: n in 1..512, or 0 for the default count. */
bn_status bn_set_num_threads(int n)
{
    if (n < 0 || n > BN_TP_MAX_THREADS)
        return bn_error_set(BN_ERR_INVALID_ARG,
                            "bn_set_num_threads: %d is outside 0..%d", n,
                            BN_TP_MAX_THREADS);
    if (n == 0)
        n = tp_default_count();
    pthread_rwlock_wrlock(&tp_default_lock);
    bn_status st = tp_default_replace(n);
    pthread_rwlock_unlock(&tp_default_lock);
    return st;
}

/* The default pool's thread count (the count it would be created with, if it does
 * not exist yet). */
int bn_get_num_threads(void)
{
    pthread_rwlock_rdlock(&tp_default_lock);
    int n = tp_default ? tp_default->n_threads : 0;
    pthread_rwlock_unlock(&tp_default_lock);
    return n ? n : tp_default_count();
}

/* Splits [0, n) into chunks of at least `grain` and runs them on `pool` (NULL: the
 * default pool, which runs inline if it cannot be created). */
void bn_parallel_for(bn_threadpool *pool, int64_t n, int64_t grain, bn_range_fn fn,
                     void *ctx)
{
    assert(fn && grain >= 1);
    if (n <= 0)
        return;
    if (pool) {
        tp_parallel_for_on(pool, n, grain, fn, ctx);
        return;
    }
    if (n / grain < 2) {   /* one chunk at most: no need to touch the default pool */
        fn(ctx, 0, n);
        return;
    }
    if (!bn_default_threadpool())
        bn_log(BN_LOG_WARN, "no default thread pool (%s); running on one thread",
               bn_last_error());
    pthread_rwlock_rdlock(&tp_default_lock);
    tp_parallel_for_on(tp_default, n, grain, fn, ctx);
    pthread_rwlock_unlock(&tp_default_lock);
}

/* Runs fn on every thread of the default pool (inline on one thread when there is
 * none), holding the pool for the whole run so that bn_set_num_threads waits. */
void bn_run_on_default_pool(bn_task_fn fn, void *ctx)
{
    if (!bn_default_threadpool()) {
        static atomic_int warned;
        if (atomic_exchange(&warned, 1) == 0)
            bn_log(BN_LOG_WARN, "no default thread pool (%s); running on one thread",
                   bn_last_error());
        fn(ctx, 0, 1);
        return;
    }
    pthread_rwlock_rdlock(&tp_default_lock);
    if (tp_default)
        bn_threadpool_run(tp_default, fn, ctx);
    else
        fn(ctx, 0, 1);
    pthread_rwlock_unlock(&tp_default_lock);
}
