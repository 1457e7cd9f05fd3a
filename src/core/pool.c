/*
 * pool.c - reusable tensor buffers (bn_pool) and load-time arenas (bn_arena).
 *
 * A pool rounds each request up to a power-of-two size class of at least 64 bytes and
 * keeps released buffers on a free list per class, so a steady loop that allocates and
 * releases the same shapes stops touching the system allocator after its first pass.
 * An arena hands out pieces of large chunks and frees them all at once.
 */
#include <assert.h>
#include <pthread.h>
#include <string.h>

#include "core/internal.h"

#define BN_POOL_MIN_SHIFT 6    /* 64 bytes */
#define BN_POOL_CLASSES   58   /* up to 2^63 bytes */

typedef struct bn_free_node {
    struct bn_free_node *next;
} bn_free_node;

struct bn_pool {
    const char     *tag;
    pthread_mutex_t lock;
    bn_free_node   *free_list[BN_POOL_CLASSES];
    bn_pool_stats   stats;
};

/* The size class of a request: the smallest c with 2^(c+6) >= size. */
static int bn_pool_class(size_t size)
{
    int c = 0;
    while (c < BN_POOL_CLASSES - 1 && ((size_t)1 << (c + BN_POOL_MIN_SHIFT)) < size)
        c++;
    return c;
}

bn_status bn_pool_create(const char *tag, bn_pool **out)
{
    bn_pool *pool = bn_calloc(1, sizeof *pool, "pool");
    if (!pool)
        return bn_error_wrap(BN_ERR_OOM, "creating pool '%s'", tag ? tag : "pool");
    pool->tag = tag ? tag : "pool";
    pthread_mutex_init(&pool->lock, NULL);
    *out = pool;
    return BN_OK;
}

void *bn_pool_alloc(bn_pool *pool, size_t size)
{
    int c = bn_pool_class(size);
    size_t class_size = (size_t)1 << (c + BN_POOL_MIN_SHIFT);
    if (class_size < size) {
        bn_error_set(BN_ERR_OOM, "pool '%s': request of %zu bytes is too large", pool->tag,
                     size);
        return NULL;
    }
    pthread_mutex_lock(&pool->lock);
    bn_free_node *node = pool->free_list[c];
    if (node) {
        pool->free_list[c] = node->next;
        pool->stats.cached_bytes -= class_size;
        pool->stats.n_reused++;
    }
    pthread_mutex_unlock(&pool->lock);
    void *ptr = node;
    if (!ptr) {
        ptr = bn_malloc(class_size, pool->tag);
        if (!ptr)
            return NULL;
    }
    pthread_mutex_lock(&pool->lock);
    pool->stats.n_requests++;
    pool->stats.live_bytes += class_size;
    if (pool->stats.live_bytes > pool->stats.peak_bytes)
        pool->stats.peak_bytes = pool->stats.live_bytes;
    pthread_mutex_unlock(&pool->lock);
    return ptr;
}

void bn_pool_release(bn_pool *pool, void *ptr)
{
    if (!ptr)
        return;
    size_t class_size = bn_mem_size(ptr);
    int c = bn_pool_class(class_size);
    assert(((size_t)1 << (c + BN_POOL_MIN_SHIFT)) == class_size &&
           "bn_pool_release of a buffer not from a pool");
    bn_free_node *node = ptr;
    pthread_mutex_lock(&pool->lock);
    node->next = pool->free_list[c];
    pool->free_list[c] = node;
    pool->stats.live_bytes -= class_size;
    pool->stats.cached_bytes += class_size;
    pthread_mutex_unlock(&pool->lock);
}

void bn_pool_trim(bn_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    for (int c = 0; c < BN_POOL_CLASSES; c++) {
        while (pool->free_list[c]) {
            bn_free_node *node = pool->free_list[c];
            pool->free_list[c] = node->next;
            bn_free(node);
        }
    }
    pool->stats.cached_bytes = 0;
    pthread_mutex_unlock(&pool->lock);
}

void bn_pool_get_stats(const bn_pool *pool, bn_pool_stats *out)
{
    pthread_mutex_lock((pthread_mutex_t *)&pool->lock);
    *out = pool->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&pool->lock);
}

void bn_pool_free(bn_pool *pool)
{
    if (!pool)
        return;
    bn_pool_trim(pool);
    pthread_mutex_destroy(&pool->lock);
    bn_free(pool);
}

/* ------------------------------------------------------------------ arena */

typedef struct bn_arena_chunk {
    struct bn_arena_chunk *next;
    size_t                 size;   /* usable bytes after the header */
    size_t                 used;
    char                   pad[BN_ALIGN - sizeof(void *) - 2 * sizeof(size_t)];
} bn_arena_chunk;

_Static_assert(sizeof(bn_arena_chunk) == BN_ALIGN, "chunk header keeps alignment");

struct bn_arena {
    const char     *tag;
    size_t          chunk_size;
    size_t          used;
    bn_arena_chunk *head;    /* current chunk first */
};

/* A new chunk of at least `size` usable bytes, pushed at the head. */
static bn_arena_chunk *bn_arena_grow(bn_arena *arena, size_t size)
{
    size_t total;
    if (__builtin_add_overflow(size, sizeof(bn_arena_chunk), &total)) {
        bn_error_set(BN_ERR_OOM, "arena '%s': request of %zu bytes is too large",
                     arena->tag, size);
        return NULL;
    }
    bn_arena_chunk *chunk = bn_malloc(total, arena->tag);
    if (!chunk)
        return NULL;
    chunk->size = size;
    chunk->used = 0;
    chunk->next = arena->head;
    arena->head = chunk;
    return chunk;
}

bn_status bn_arena_create(size_t chunk_size, const char *tag, bn_arena **out)
{
    bn_arena *arena = bn_calloc(1, sizeof *arena, "arena");
    if (!arena)
        return bn_error_wrap(BN_ERR_OOM, "creating arena");
    arena->tag = tag ? tag : "arena";
    arena->chunk_size = chunk_size ? chunk_size : (size_t)1 << 20;
    if (!bn_arena_grow(arena, arena->chunk_size)) {
        bn_free(arena);
        return bn_error_wrap(BN_ERR_OOM, "creating arena '%s'", tag ? tag : "arena");
    }
    *out = arena;
    return BN_OK;
}

void *bn_arena_alloc(bn_arena *arena, size_t size, size_t align)
{
    if (align == 0)
        align = 16;
    assert(align <= BN_ALIGN && (align & (align - 1)) == 0);
    bn_arena_chunk *chunk = arena->head;
    size_t start = (chunk->used + align - 1) & ~(align - 1);
    if (start > chunk->size || chunk->size - start < size) {
        size_t want = size > arena->chunk_size ? size : arena->chunk_size;
        chunk = bn_arena_grow(arena, want);
        if (!chunk)
            return NULL;
        start = 0;
    }
    chunk->used = start + size;
    arena->used += size;
    return (char *)(chunk + 1) + start;
}

char *bn_arena_strdup(bn_arena *arena, const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = bn_arena_alloc(arena, n, 1);
    if (copy)
        memcpy(copy, s, n);
    return copy;
}

size_t bn_arena_used(const bn_arena *arena)
{
    return arena->used;
}

void bn_arena_reset(bn_arena *arena)
{
    /* keep the oldest chunk (the last in the list), free the rest */
    while (arena->head->next) {
        bn_arena_chunk *chunk = arena->head;
        arena->head = chunk->next;
        bn_free(chunk);
    }
    arena->head->used = 0;
    arena->used = 0;
}

void bn_arena_free(bn_arena *arena)
{
    if (!arena)
        return;
    while (arena->head) {
        bn_arena_chunk *chunk = arena->head;
        arena->head = chunk->next;
        bn_free(chunk);
    }
    bn_free(arena);
}
