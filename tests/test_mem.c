/*
 * test_mem.c - the tracking allocator, pools and arenas: alignment, statistics, reuse,
 * failure injection, and the leak report catching a planted leak.
 */
#include <pthread.h>
#include <string.h>

#include "bitnet.h"
#include "check.h"

typedef struct log_lines {
    int  n;
    char lines[16][160];
} log_lines;

static void collect(bn_log_level level, const char *msg, void *user)
{
    log_lines *l = user;
    (void)level;
    if (l->n < 16)
        snprintf(l->lines[l->n], sizeof l->lines[0], "%s", msg);
    l->n++;
}

static void test_malloc_stats(void)
{
    bn_mem_stats s0, s1, t;
    bn_mem_get_stats(&s0);
    size_t sizes[] = {0, 1, 63, 64, 65, 1000, 1 << 20};
    void *p[7];
    for (int i = 0; i < 7; i++) {
        p[i] = bn_malloc(sizes[i], "test.stats");
        CHECK(p[i] != NULL, "malloc %zu", sizes[i]);
        CHECK(((uintptr_t)p[i] % 64) == 0, "64-byte aligned (%zu)", sizes[i]);
        CHECK(bn_mem_size(p[i]) == sizes[i], "size recorded");
        memset(p[i], 0xab, sizes[i]);
    }
    size_t total = 0;
    for (int i = 0; i < 7; i++)
        total += sizes[i];
    bn_mem_get_stats(&s1);
    CHECK(s1.live_bytes - s0.live_bytes == total, "live bytes grew by %zu", total);
    CHECK(s1.live_blocks - s0.live_blocks == 7, "7 live blocks");
    CHECK(s1.n_allocs - s0.n_allocs == 7, "7 allocations counted");
    CHECK(bn_mem_get_tag_stats("test.stats", &t), "tag known");
    CHECK(t.live_bytes == total && t.live_blocks == 7 && t.peak_bytes == total,
          "per-tag stats: %zu bytes, %llu blocks", t.live_bytes,
          (unsigned long long)t.live_blocks);
    for (int i = 0; i < 7; i++)
        bn_free(p[i]);
    CHECK(bn_mem_get_tag_stats("test.stats", &t) && t.live_bytes == 0 &&
          t.live_blocks == 0 && t.peak_bytes == total && t.n_frees == 7,
          "after free: nothing live, peak kept");
    CHECK(!bn_mem_get_tag_stats("never.used", &t), "unknown tag");
    bn_mem_reset_peak();
    CHECK(bn_mem_get_tag_stats("test.stats", &t) && t.peak_bytes == 0 && t.n_allocs == 0,
          "reset peak");
    bn_free(NULL);

    unsigned char *z = bn_calloc(100, 3, "test.calloc");
    int zero = 1;
    for (int i = 0; z && i < 300; i++)
        zero &= z[i] == 0;
    CHECK(z && zero, "calloc zero-fills");
    bn_free(z);
    CHECK(bn_calloc(SIZE_MAX / 2, 4, "test.calloc") == NULL &&
          bn_last_status() == BN_ERR_OOM, "calloc overflow is an OOM error");
    CHECK(bn_malloc(SIZE_MAX - 8, "test.huge") == NULL && bn_last_status() == BN_ERR_OOM,
          "impossible size is an OOM error: %s", bn_last_error());
}

static void test_fail_nth(void)
{
    bn_mem_fail_nth(3);
    void *a = bn_malloc(10, "test.fail"), *b = bn_malloc(10, "test.fail");
    void *c = bn_malloc(10, "test.fail"), *d = bn_malloc(10, "test.fail");
    CHECK(a && b && !c && d, "exactly the third allocation fails");
    CHECK(bn_last_status() == BN_ERR_OOM && strstr(bn_last_error(), "injected"),
          "injected failure reported: %s", bn_last_error());
    bn_free(a);
    bn_free(b);
    bn_free(d);
    bn_mem_fail_nth(1);
    bn_mem_fail_nth(0);
    a = bn_malloc(1, "test.fail");
    CHECK(a != NULL, "0 disables injection");
    bn_free(a);
}

static void test_leak_report(void)
{
    log_lines lines = {0};
    bn_log_set(collect, &lines);
    CHECK(bn_mem_leak_report() == 0, "no live blocks at this point");
    CHECK(lines.n == 0, "nothing reported");
    void *planted = bn_malloc(777, "planted");
    uint64_t n = bn_mem_leak_report();
    CHECK(n == 1, "one leak found, got %llu", (unsigned long long)n);
    CHECK(lines.n >= 1 && strcmp(lines.lines[0], "leak: 777 bytes, tag 'planted'") == 0,
          "leak named: '%s'", lines.lines[0]);
    CHECK(lines.n == 2 && strstr(lines.lines[1], "'planted'") && strstr(lines.lines[1], "777"),
          "summary per tag: '%s'", lines.lines[1]);
    bn_free(planted);
    lines.n = 0;
    CHECK(bn_mem_leak_report() == 0 && lines.n == 0, "clean after the free");
    bn_log_set(NULL, NULL);
}

static void test_pool(void)
{
    bn_pool *pool = NULL;
    CHECK_OK(bn_pool_create("test.pool", &pool));
    bn_pool_stats ps;
    void *a = bn_pool_alloc(pool, 100);     /* class 128 */
    void *b = bn_pool_alloc(pool, 128);     /* class 128 */
    void *c = bn_pool_alloc(pool, 1);       /* class 64 */
    CHECK(a && b && c && a != b, "three buffers");
    CHECK((uintptr_t)a % 64 == 0 && (uintptr_t)c % 64 == 0, "aligned");
    CHECK(bn_mem_size(a) == 128 && bn_mem_size(c) == 64, "rounded to size classes");
    bn_pool_get_stats(pool, &ps);
    CHECK(ps.live_bytes == 320 && ps.n_requests == 3 && ps.n_reused == 0, "live 320");
    bn_pool_release(pool, a);
    bn_pool_get_stats(pool, &ps);
    CHECK(ps.live_bytes == 192 && ps.cached_bytes == 128, "released to the cache");
    void *d = bn_pool_alloc(pool, 65);
    CHECK(d == a, "same class reuses the released buffer");
    bn_pool_get_stats(pool, &ps);
    CHECK(ps.n_reused == 1 && ps.cached_bytes == 0 && ps.peak_bytes == 320, "reuse counted");
    void *e = bn_pool_alloc(pool, 3000);    /* class 4096 */
    CHECK(e && bn_mem_size(e) == 4096, "4096 class");
    bn_pool_release(pool, e);
    bn_pool_release(pool, d);
    bn_pool_release(pool, NULL);
    bn_mem_stats t;
    bn_mem_get_tag_stats("test.pool", &t);
    CHECK(t.live_blocks == 4, "cached buffers stay allocated until trimmed");
    bn_pool_trim(pool);
    bn_mem_get_tag_stats("test.pool", &t);
    CHECK(t.live_blocks == 2, "trim frees the cached ones");
    /* a failing pool allocation is a clean OOM */
    bn_mem_fail_nth(1);
    CHECK(bn_pool_alloc(pool, 5000) == NULL && bn_last_status() == BN_ERR_OOM, "pool OOM");
    bn_mem_fail_nth(0);
    /* destroying a pool with a buffer still out: the leak report names the pool tag */
    log_lines lines = {0};
    bn_pool_release(pool, b);
    bn_pool_free(pool);
    bn_log_set(collect, &lines);
    CHECK(bn_mem_leak_report() == 1, "the outstanding buffer is the one leak");
    CHECK(strcmp(lines.lines[0], "leak: 64 bytes, tag 'test.pool'") == 0, "named: %s",
          lines.lines[0]);
    bn_log_set(NULL, NULL);
    bn_free(c);
    bn_mem_fail_nth(1);
    pool = (bn_pool *)1;
    CHECK(bn_pool_create("x", &pool) == BN_ERR_OOM && pool == (bn_pool *)1,
          "pool create OOM leaves output untouched");
    bn_mem_fail_nth(0);
}

static void test_arena(void)
{
    bn_arena *arena = NULL;
    CHECK_OK(bn_arena_create(256, "test.arena", &arena));
    char *a = bn_arena_alloc(arena, 10, 1);
    double *d = bn_arena_alloc(arena, sizeof(double) * 4, 8);
    void *z = bn_arena_alloc(arena, 1, 64);
    CHECK(a && d && z, "arena allocations");
    CHECK((uintptr_t)d % 8 == 0 && (uintptr_t)z % 64 == 0, "alignment honoured");
    CHECK((char *)d >= a + 10, "no overlap");
    CHECK(bn_arena_used(arena) == 10 + 32 + 1, "used counts requested bytes");
    char *s = bn_arena_strdup(arena, "blk.0.attn_q.weight");
    CHECK(s && strcmp(s, "blk.0.attn_q.weight") == 0, "strdup");
    void *big = bn_arena_alloc(arena, 10000, 16);  /* bigger than a chunk */
    CHECK(big != NULL, "oversized request gets its own chunk");
    memset(big, 1, 10000);
    bn_mem_stats t;
    bn_mem_get_tag_stats("test.arena", &t);
    CHECK(t.live_blocks == 2, "two chunks, got %llu", (unsigned long long)t.live_blocks);
    bn_mem_fail_nth(1);
    CHECK(bn_arena_alloc(arena, 100000, 16) == NULL && bn_last_status() == BN_ERR_OOM,
          "arena grow OOM");
    bn_mem_fail_nth(0);
    bn_arena_reset(arena);
    bn_mem_get_tag_stats("test.arena", &t);
    CHECK(t.live_blocks == 1 && bn_arena_used(arena) == 0, "reset keeps one chunk");
    CHECK(bn_arena_alloc(arena, 8, 8) != NULL, "usable after reset");
    bn_arena_free(arena);
    bn_mem_get_tag_stats("test.arena", &t);
    CHECK(t.live_blocks == 0, "arena free releases every chunk");
    for (uint64_t n = 1; n <= 2; n++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_mem_fail_nth(n);
        arena = NULL;
        CHECK(bn_arena_create(0, "test.arena", &arena) == BN_ERR_OOM && arena == NULL,
              "arena create fail #%llu", (unsigned long long)n);
        bn_mem_fail_nth(0);
        bn_mem_get_stats(&after);
        CHECK(after.live_blocks == before.live_blocks, "no leak on arena create failure");
    }
}

static void *churn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        void *p = bn_malloc((size_t)(i % 512), "test.threads");
        if (!p)
            return (void *)1;
        bn_free(p);
    }
    return NULL;
}

static void test_concurrent(void)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, churn, NULL);
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        ok &= r == NULL;
    }
    bn_mem_stats t;
    bn_mem_get_tag_stats("test.threads", &t);
    CHECK(ok && t.n_allocs == 80000 && t.n_frees == 80000 && t.live_blocks == 0,
          "concurrent alloc/free consistent: %llu allocs %llu frees",
          (unsigned long long)t.n_allocs, (unsigned long long)t.n_frees);
}

int main(void)
{
    test_malloc_stats();
    test_fail_nth();
    test_leak_report();
    test_pool();
    test_arena();
    test_concurrent();
    CHECK(bn_mem_leak_report() == 0, "no leaks at the end");
    return check_summary("test_mem");
}
