/*
 * mem.c - the tracking allocator behind every buffer of the library.
 *
 * Each block carries a 64-byte header (which keeps the payload 64-byte aligned) that
 * links it into one list of live blocks, so that teardown can name every leak by tag
 * and size. Totals are kept overall and per tag. A countdown makes the n-th
 * allocation fail, so tests can walk every error path of a function and prove that it
 * frees what it took.
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define BN_BLOCK_MAGIC 0xb17e7a11u
#define BN_BLOCK_FREED 0xdeadb10cu

typedef struct bn_block {
    struct bn_block *prev, *next;
    const char      *tag;
    size_t           size;
    uint32_t         magic;
    uint32_t         tag_index;
    char             pad[BN_ALIGN - 2 * sizeof(void *) - sizeof(char *) - sizeof(size_t)
                         - 2 * sizeof(uint32_t)];
} bn_block;

_Static_assert(sizeof(bn_block) == BN_ALIGN, "block header must keep 64-byte alignment");

typedef struct bn_tag_entry {
    const char  *tag;
    bn_mem_stats stats;
} bn_tag_entry;

static pthread_mutex_t bn_mem_lock = PTHREAD_MUTEX_INITIALIZER;
static bn_block *bn_live_head;
static bn_mem_stats bn_total;
static bn_tag_entry *bn_tags;       /* plain malloc: the bookkeeping is not tracked */
static uint32_t bn_n_tags, bn_cap_tags;
static uint64_t bn_fail_countdown;  /* 0 = off */

/* Index of `tag` in the tag table, adding it when new; UINT32_MAX if the table cannot
 * grow (the block is then counted in the totals only). Lock held. */
static uint32_t bn_tag_index(const char *tag)
{
    for (uint32_t i = 0; i < bn_n_tags; i++)
        if (bn_tags[i].tag == tag || strcmp(bn_tags[i].tag, tag) == 0)
            return i;
    if (bn_n_tags == bn_cap_tags) {
        uint32_t cap = bn_cap_tags ? 2 * bn_cap_tags : 32;
        bn_tag_entry *grown = realloc(bn_tags, cap * sizeof *grown);
        if (!grown)
            return UINT32_MAX;
        bn_tags = grown;
        bn_cap_tags = cap;
    }
    memset(&bn_tags[bn_n_tags], 0, sizeof bn_tags[0]);
    bn_tags[bn_n_tags].tag = tag;
    return bn_n_tags++;
}

static void bn_stats_add(bn_mem_stats *s, size_t size)
{
    s->live_bytes += size;
    s->live_blocks++;
    s->n_allocs++;
    if (s->live_bytes > s->peak_bytes)
        s->peak_bytes = s->live_bytes;
}

static void bn_stats_sub(bn_mem_stats *s, size_t size)
{
    s->live_bytes -= size;
    s->live_blocks--;
    s->n_frees++;
}

/* True when the failure-injection countdown says this allocation must fail. */
static bool bn_should_fail(void)
{
    if (bn_fail_countdown == 0)
        return false;
    return --bn_fail_countdown == 0;
}

void *bn_malloc(size_t size, const char *tag)
{
    if (!tag)
        tag = "untagged";
    size_t total;
    if (__builtin_add_overflow(size, sizeof(bn_block), &total)) {
        bn_error_set(BN_ERR_OOM, "allocation of %zu bytes (%s) is too large", size, tag);
        return NULL;
    }
    pthread_mutex_lock(&bn_mem_lock);
    bool injected = bn_should_fail();
    void *raw = NULL;
    if (injected || posix_memalign(&raw, BN_ALIGN, total) != 0)
        raw = NULL;
    if (!raw) {
        bn_total.n_failed++;
        pthread_mutex_unlock(&bn_mem_lock);
        bn_error_set(BN_ERR_OOM, "out of memory allocating %zu bytes (%s)%s", size, tag,
                     injected ? " [injected failure]" : "");
        return NULL;
    }
    bn_block *b = raw;
    b->tag = tag;
    b->size = size;
    b->magic = BN_BLOCK_MAGIC;
    b->tag_index = bn_tag_index(tag);
    b->prev = NULL;
    b->next = bn_live_head;
    if (bn_live_head)
        bn_live_head->prev = b;
    bn_live_head = b;
    bn_stats_add(&bn_total, size);
    if (b->tag_index != UINT32_MAX)
        bn_stats_add(&bn_tags[b->tag_index].stats, size);
    pthread_mutex_unlock(&bn_mem_lock);
    return b + 1;
}

void *bn_calloc(size_t n, size_t size, const char *tag)
{
    size_t bytes;
    if (bn_mul_overflow_size(n, size, &bytes)) {
        bn_error_set(BN_ERR_OOM, "allocation of %zu x %zu bytes (%s) overflows", n, size,
                     tag ? tag : "untagged");
        return NULL;
    }
    void *p = bn_malloc(bytes, tag);
    if (p)
        memset(p, 0, bytes);
    return p;
}

/* The header of a live block; asserts it is one of ours. */
static bn_block *bn_block_of(const void *ptr)
{
    bn_block *b = (bn_block *)ptr - 1;
    assert(b->magic == BN_BLOCK_MAGIC && "bn_free of a pointer not from bn_malloc");
    return b;
}

void bn_free(void *ptr)
{
    if (!ptr)
        return;
    bn_block *b = bn_block_of(ptr);
    pthread_mutex_lock(&bn_mem_lock);
    if (b->prev)
        b->prev->next = b->next;
    else
        bn_live_head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    bn_stats_sub(&bn_total, b->size);
    if (b->tag_index != UINT32_MAX)
        bn_stats_sub(&bn_tags[b->tag_index].stats, b->size);
    pthread_mutex_unlock(&bn_mem_lock);
    b->magic = BN_BLOCK_FREED;
    free(b);
}

size_t bn_mem_size(const void *ptr)
{
    return bn_block_of(ptr)->size;
}

void bn_mem_get_stats(bn_mem_stats *out)
{
    pthread_mutex_lock(&bn_mem_lock);
    *out = bn_total;
    pthread_mutex_unlock(&bn_mem_lock);
}

bool bn_mem_get_tag_stats(const char *tag, bn_mem_stats *out)
{
    bool found = false;
    pthread_mutex_lock(&bn_mem_lock);
    for (uint32_t i = 0; i < bn_n_tags && !found; i++) {
        if (strcmp(bn_tags[i].tag, tag) == 0) {
            *out = bn_tags[i].stats;
            found = true;
        }
    }
    pthread_mutex_unlock(&bn_mem_lock);
    return found;
}

/* Peak back to live, counters to zero. */
static void bn_stats_reset(bn_mem_stats *s)
{
    s->peak_bytes = s->live_bytes;
    s->n_allocs = s->n_frees = s->n_failed = 0;
}

void bn_mem_reset_peak(void)
{
    pthread_mutex_lock(&bn_mem_lock);
    bn_stats_reset(&bn_total);
    for (uint32_t i = 0; i < bn_n_tags; i++)
        bn_stats_reset(&bn_tags[i].stats);
    pthread_mutex_unlock(&bn_mem_lock);
}

uint64_t bn_mem_leak_report(void)
{
    pthread_mutex_lock(&bn_mem_lock);
    uint64_t n = 0;
    for (bn_block *b = bn_live_head; b; b = b->next, n++)
        bn_log(BN_LOG_WARN, "leak: %zu bytes, tag '%s'", b->size, b->tag);
    for (uint32_t i = 0; i < bn_n_tags; i++) {
        const bn_mem_stats *s = &bn_tags[i].stats;
        if (s->live_blocks)
            bn_log(BN_LOG_WARN, "leak summary: tag '%s': %llu blocks, %zu bytes",
                   bn_tags[i].tag, (unsigned long long)s->live_blocks, s->live_bytes);
    }
    pthread_mutex_unlock(&bn_mem_lock);
    return n;
}

void bn_mem_fail_nth(uint64_t n)
{
    pthread_mutex_lock(&bn_mem_lock);
    bn_fail_countdown = n;
    pthread_mutex_unlock(&bn_mem_lock);
}

/* ------------------------------------------------------------- the machine's memory */

uint64_t bn_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", (unsigned long long *)&kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

void bn_advise_huge(void *p, size_t size)
{
#ifdef MADV_HUGEPAGE
    size_t huge = bn_thp_size();
    if (!huge)
        return;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1);
    uintptr_t b = ((uintptr_t)p + size) & ~(uintptr_t)(huge - 1);
    if (a < b)
        madvise((void *)a, b - a, MADV_HUGEPAGE);
#else
    (void)p;
    (void)size;
#endif
}

size_t bn_thp_size(void)
{
    char line[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f)
        return 0;
    bool on = fgets(line, sizeof line, f) &&
              (strstr(line, "[always]") || strstr(line, "[madvise]"));
    fclose(f);
    if (!on)
        return 0;
    unsigned long long size = 2u << 20;
    f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r");
    if (f) {
        if (fscanf(f, "%llu", &size) != 1 || size < 4096 || (size & (size - 1)))
            size = 2u << 20;
        fclose(f);
    }
    return (size_t)size;
}
