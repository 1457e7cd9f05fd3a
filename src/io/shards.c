/*
 * shards.c - token shards: a tokenized corpus in files of token ids, each with a
 * 64-byte header (docs/FORMATS.md, "Token shards"), and a directory of them read as
 * one sequence. Reading maps every file read-only after checking its header and size;
 * writing holds one file's tokens in memory and writes the file whole (bn_out_file).
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"

#define BN_SHARD_MAGIC   "BNTOKSHD"
#define BN_SHARD_VERSION 1u
#define BN_SHARD_HEADER  64u
#define BN_SHARD_MAX_FILES 99999

/* The header, as numbers (on disk: little-endian at fixed offsets, see bn_shard_pack). */
typedef struct bn_shard_header {
    uint32_t version;
    uint32_t width;              /* bytes per token: 2 or 4 */
    uint32_t n_vocab;
    uint64_t tokenizer_checksum;
    uint64_t n_tokens;
    uint64_t n_docs;
} bn_shard_header;

static void bn_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void bn_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t bn_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t bn_get_u64(const unsigned char *p)
{
    return (uint64_t)bn_get_u32(p) | (uint64_t)bn_get_u32(p + 4) << 32;
}

/* Offsets: 0 magic (8 bytes), 8 version, 12 width, 16 n_vocab, 20 zero, 24 tokenizer
 * checksum, 32 n_tokens, 40 n_docs, 48..63 zero. */
static void bn_shard_pack(const bn_shard_header *h, unsigned char out[BN_SHARD_HEADER])
{
    memset(out, 0, BN_SHARD_HEADER);
    memcpy(out, BN_SHARD_MAGIC, 8);
    bn_put_u32(out + 8, h->version);
    bn_put_u32(out + 12, h->width);
    bn_put_u32(out + 16, h->n_vocab);
    bn_put_u64(out + 24, h->tokenizer_checksum);
    bn_put_u64(out + 32, h->n_tokens);
    bn_put_u64(out + 40, h->n_docs);
}

/* ------------------------------------------------------------------ reading */

typedef struct bn_shard_file {
    char                *path;
    const unsigned char *map;       /* the whole file */
    size_t               size;
    bn_shard_header      h;
    uint64_t             first;     /* index of its first token in the sequence */
} bn_shard_file;

struct bn_shards {
    bn_shard_file *files;
    int32_t        n_files;
    uint64_t       n_tokens, n_docs;
};

/* Maps and checks one shard file. */
static bn_status bn_shard_file_open(const char *path, bn_shard_file *f)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bn_error_set(BN_ERR_IO, "opening %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        bn_status st = bn_error_set(BN_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return bn_error_set(BN_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < BN_SHARD_HEADER) {
        close(fd);
        if (size >= 8 && size < BN_SHARD_HEADER) {
            unsigned char head[8];
            FILE *fp = fopen(path, "rb");
            bool ours = fp && fread(head, 1, 8, fp) == 8 && memcmp(head, BN_SHARD_MAGIC, 8) == 0;
            if (fp)
                fclose(fp);
            if (ours)
                return bn_error_set(BN_ERR_FORMAT, "%s: truncated token shard (%zu bytes, "
                                    "shorter than its %u-byte header)", path, size,
                                    BN_SHARD_HEADER);
        }
        return bn_error_set(BN_ERR_FORMAT, "%s: not a token shard (%zu bytes, no "
                            "\"" BN_SHARD_MAGIC "\" header)", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return bn_error_set(BN_ERR_IO, "mapping %s: %s", path, strerror(errno));
    const unsigned char *p = map;
    f->map = p;
    f->size = size;
    bn_shard_header *h = &f->h;
    h->version = bn_get_u32(p + 8);
    h->width = bn_get_u32(p + 12);
    h->n_vocab = bn_get_u32(p + 16);
    h->tokenizer_checksum = bn_get_u64(p + 24);
    h->n_tokens = bn_get_u64(p + 32);
    h->n_docs = bn_get_u64(p + 40);
    if (memcmp(p, BN_SHARD_MAGIC, 8) != 0)
        return bn_error_set(BN_ERR_FORMAT, "%s: not a token shard (no \"" BN_SHARD_MAGIC
                            "\" magic)", path);
    if (h->version != BN_SHARD_VERSION)
        return bn_error_set(BN_ERR_FORMAT, "%s: token shard version %u is not supported "
                            "(%u is)", path, h->version, BN_SHARD_VERSION);
    if (h->width != 2 && h->width != 4)
        return bn_error_set(BN_ERR_FORMAT, "%s: token width %u is not 2 or 4", path,
                            h->width);
    if (h->n_vocab == 0 || h->n_vocab > (uint32_t)INT32_MAX ||
        (h->width == 2 && h->n_vocab > 65536))
        return bn_error_set(BN_ERR_FORMAT, "%s: vocabulary size %u does not fit %u-byte "
                            "tokens", path, h->n_vocab, h->width);
    /* the width is the one the format gives the vocabulary, and the unused fields are
     * zero (what a later version may use is never taken for this one's) */
    if (h->width != (h->n_vocab <= 65536 ? 2u : 4u))
        return bn_error_set(BN_ERR_FORMAT, "%s: %u-byte tokens for a vocabulary of %u "
                            "(the format takes %u)", path, h->width, h->n_vocab,
                            h->n_vocab <= 65536 ? 2u : 4u);
    static const unsigned char zero[16];
    if (memcmp(p + 20, zero, 4) != 0 || memcmp(p + 48, zero, 16) != 0)
        return bn_error_set(BN_ERR_FORMAT, "%s: header bytes 20-23 or 48-63 are not zero",
                            path);
    uint64_t room = (size - BN_SHARD_HEADER) / h->width;
    if (h->n_tokens > room)
        return bn_error_set(BN_ERR_FORMAT, "%s: truncated: the header counts %llu tokens "
                            "but the file holds %llu", path,
                            (unsigned long long)h->n_tokens, (unsigned long long)room);
    uint64_t expect = BN_SHARD_HEADER + h->n_tokens * h->width;
    if (size != expect)
        return bn_error_set(BN_ERR_FORMAT, "%s: has %llu bytes after its %llu tokens",
                            path, (unsigned long long)(size - expect),
                            (unsigned long long)h->n_tokens);
    if (h->n_docs > h->n_tokens)
        return bn_error_set(BN_ERR_FORMAT, "%s: %llu documents in %llu tokens", path,
                            (unsigned long long)h->n_docs, (unsigned long long)h->n_tokens);
    return BN_OK;
}

/* "DIR/SPLIT-NNNNN.bin" (bn_malloc'd), or NULL. */
static char *bn_shard_path(const char *dir, const char *split, int32_t i)
{
    size_t n = strlen(dir) + strlen(split) + 16;
    char *path = bn_malloc(n, "shards");
    if (path)
        snprintf(path, n, "%s/%s-%05d.bin", dir, split, (int)i);
    return path;
}

/* How many files named SPLIT-NNNNN.bin dir holds; -1 when it cannot be read. */
static int32_t bn_shard_count_named(const char *dir, const char *split)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    size_t k = strlen(split);
    int32_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *s = e->d_name;
        if (strlen(s) == k + 10 && strncmp(s, split, k) == 0 && s[k] == '-' &&
            strcmp(s + k + 6, ".bin") == 0 &&
            strspn(s + k + 1, "0123456789") == 5)
            n++;
    }
    closedir(d);
    return n;
}

static bn_status bn_shards_add(bn_shards *s, char *path)
{
    bn_shard_file *files = bn_calloc((size_t)s->n_files + 1, sizeof *files, "shards");
    if (!files) {
        bn_free(path);
        return bn_error_wrap(BN_OK, "opening shards");
    }
    if (s->n_files)
        memcpy(files, s->files, (size_t)s->n_files * sizeof *files);
    bn_free(s->files);
    s->files = files;
    bn_shard_file *f = &s->files[s->n_files++];
    f->path = path;
    bn_status st = bn_shard_file_open(path, f);
    if (st != BN_OK)
        return st;
    const bn_shard_file *first = &s->files[0];
    if (f != first && (f->h.tokenizer_checksum != first->h.tokenizer_checksum ||
                       f->h.width != first->h.width || f->h.n_vocab != first->h.n_vocab))
        return bn_error_set(BN_ERR_FORMAT, "%s: its tokenizer (checksum %016llx, %u tokens, "
                            "width %u) is not that of %s (%016llx, %u, %u)", path,
                            (unsigned long long)f->h.tokenizer_checksum, f->h.n_vocab,
                            f->h.width, first->path,
                            (unsigned long long)first->h.tokenizer_checksum,
                            first->h.n_vocab, first->h.width);
    f->first = s->n_tokens;
    s->n_tokens += f->h.n_tokens;
    s->n_docs += f->h.n_docs;
    return BN_OK;
}

bn_status bn_shards_open(const char *path, const char *split, bn_shards **out)
{
    bn_shards *s = bn_calloc(1, sizeof *s, "shards");
    if (!s)
        return bn_error_wrap(BN_OK, "opening %s", path);
    struct stat sb;
    bn_status st = BN_OK;
    if (stat(path, &sb) != 0) {
        st = bn_error_set(BN_ERR_IO, "opening %s: %s", path, strerror(errno));
    } else if (!S_ISDIR(sb.st_mode)) {
        size_t n = strlen(path) + 1;
        char *copy = bn_malloc(n, "shards");
        if (copy)
            memcpy(copy, path, n);
        st = copy ? bn_shards_add(s, copy) : bn_error_wrap(BN_OK, "opening %s", path);
    } else if (!split || !*split || strchr(split, '/')) {
        st = bn_error_set(BN_ERR_INVALID_ARG, "%s is a directory: name the split to read "
                          "(train or val)", path);
    } else {
        int32_t named = bn_shard_count_named(path, split);
        for (int32_t i = 0; st == BN_OK && i < BN_SHARD_MAX_FILES; i++) {
            char *p = bn_shard_path(path, split, i);
            if (!p) {
                st = bn_error_wrap(BN_OK, "opening %s", path);
                break;
            }
            if (access(p, F_OK) != 0 && errno == ENOENT) {
                bn_free(p);
                break;
            }
            st = bn_shards_add(s, p);
        }
        if (st == BN_OK && s->n_files == 0)
            st = bn_error_set(BN_ERR_IO, "%s holds no token shards named %s-00000.bin",
                              path, split);
        else if (st == BN_OK && named != s->n_files)
            st = bn_error_set(BN_ERR_FORMAT, "%s: %d %s-NNNNN.bin files, but only %d are "
                              "numbered from 00000 without a gap", path, (int)named, split,
                              (int)s->n_files);
    }
    if (st != BN_OK) {
        bn_shards_close(s);
        return st;
    }
    *out = s;
    return BN_OK;
}

void bn_shards_close(bn_shards *s)
{
    if (!s)
        return;
    for (int32_t i = 0; i < s->n_files; i++) {
        if (s->files[i].map)
            munmap((void *)s->files[i].map, s->files[i].size);
        bn_free(s->files[i].path);
    }
    bn_free(s->files);
    bn_free(s);
}

uint64_t bn_shards_n_tokens(const bn_shards *s) { return s->n_tokens; }
uint64_t bn_shards_n_docs(const bn_shards *s) { return s->n_docs; }
uint64_t bn_shards_tokenizer_checksum(const bn_shards *s)
{
    return s->files[0].h.tokenizer_checksum;
}
int32_t bn_shards_n_vocab(const bn_shards *s) { return (int32_t)s->files[0].h.n_vocab; }
int32_t bn_shards_n_files(const bn_shards *s) { return s->n_files; }

bn_status bn_shards_read(const bn_shards *s, uint64_t offset, size_t n, int32_t *out)
{
    if (offset > s->n_tokens || n > s->n_tokens - offset)
        return bn_error_set(BN_ERR_INVALID_ARG, "tokens [%llu, +%zu) are past the end of "
                            "the shards (%llu tokens)", (unsigned long long)offset, n,
                            (unsigned long long)s->n_tokens);
    /* the file that holds offset: the last one that starts at or before it */
    int32_t lo = 0, hi = s->n_files - 1;
    while (lo < hi) {
        int32_t mid = (lo + hi + 1) / 2;
        if (s->files[mid].first <= offset)
            lo = mid;
        else
            hi = mid - 1;
    }
    size_t done = 0;
    for (int32_t i = lo; done < n && i < s->n_files; i++) {
        const bn_shard_file *f = &s->files[i];
        uint64_t at = offset + done - f->first;
        if (at >= f->h.n_tokens)
            continue;                               /* an empty file */
        size_t take = (size_t)(f->h.n_tokens - at < n - done ? f->h.n_tokens - at : n - done);
        const unsigned char *p = f->map + BN_SHARD_HEADER + at * f->h.width;
        for (size_t k = 0; k < take; k++) {
            uint32_t id = f->h.width == 2 ? (uint32_t)p[2 * k] | (uint32_t)p[2 * k + 1] << 8
                                          : bn_get_u32(p + 4 * k);
            if (id >= f->h.n_vocab)
                return bn_error_set(BN_ERR_FORMAT, "%s: token %llu is %u, not below the "
                                    "vocabulary size %u", f->path,
                                    (unsigned long long)(at + k), id, f->h.n_vocab);
            out[done + k] = (int32_t)id;
        }
        done += take;
    }
    assert(done == n);
    return BN_OK;
}

/* ------------------------------------------------------------------ writing */

struct bn_shard_writer {
    char           *dir, *split;
    bn_shard_header h;           /* of the file being filled */
    uint64_t        max_tokens;
    unsigned char  *buf;         /* header + the tokens held (grown up to max_tokens) */
    size_t          cap;         /* bytes of buf */
    int32_t         n_files;
};

bn_status bn_shard_writer_create(const bn_shard_writer_params *params, bn_shard_writer **out)
{
    if (!params->dir || !params->split || !*params->split || strchr(params->split, '/'))
        return bn_error_set(BN_ERR_INVALID_ARG, "a shard writer needs a directory and a "
                            "split name without '/'");
    if (params->n_vocab <= 0)
        return bn_error_set(BN_ERR_INVALID_ARG, "vocabulary size %d", params->n_vocab);
    uint64_t max = params->max_tokens ? params->max_tokens : (uint64_t)1 << 26;
    if (max > ((uint64_t)1 << 32))
        return bn_error_set(BN_ERR_INVALID_ARG, "%llu tokens per shard are too many "
                            "(at most 2^32)", (unsigned long long)max);
    bn_shard_writer *w = bn_calloc(1, sizeof *w, "shards");
    size_t ld = strlen(params->dir) + 1, ls = strlen(params->split) + 1;
    uint32_t width = params->n_vocab <= 65536 ? 2 : 4;
    if (w) {
        w->dir = bn_malloc(ld, "shards");
        w->split = bn_malloc(ls, "shards");
        w->cap = BN_SHARD_HEADER + 4096 * (size_t)width;
        w->buf = bn_malloc(w->cap, "shards");
    }
    if (!w || !w->dir || !w->split || !w->buf) {
        bn_shard_writer_free(w);
        return bn_error_wrap(BN_OK, "a shard writer of %llu tokens a file",
                             (unsigned long long)max);
    }
    memcpy(w->dir, params->dir, ld);
    memcpy(w->split, params->split, ls);
    w->max_tokens = max;
    w->h = (bn_shard_header){.version = BN_SHARD_VERSION, .width = width,
                             .n_vocab = (uint32_t)params->n_vocab,
                             .tokenizer_checksum = params->tokenizer_checksum};
    *out = w;
    return BN_OK;
}

/* Writes the tokens held as the next file. */
static bn_status bn_shard_writer_flush(bn_shard_writer *w)
{
    if (w->n_files >= BN_SHARD_MAX_FILES)
        return bn_error_set(BN_ERR_INVALID_ARG, "more than %d shard files",
                            BN_SHARD_MAX_FILES);
    char *path = bn_shard_path(w->dir, w->split, w->n_files);
    if (!path)
        return bn_error_wrap(BN_OK, "writing a shard");
    bn_shard_pack(&w->h, w->buf);
    bn_out_file *f = NULL;
    bn_status st = bn_out_file_open(path, &f);
    if (st == BN_OK)
        st = bn_out_file_write(f, w->buf, BN_SHARD_HEADER + w->h.n_tokens * w->h.width);
    if (st == BN_OK)
        st = bn_out_file_commit(f);
    else
        bn_out_file_discard(f);
    bn_free(path);
    if (st != BN_OK)
        return st;
    w->n_files++;
    w->h.n_tokens = 0;
    w->h.n_docs = 0;
    return BN_OK;
}

bn_status bn_shard_writer_add_doc(bn_shard_writer *w, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= w->h.n_vocab)
            return bn_error_set(BN_ERR_INVALID_ARG, "token %d is outside the vocabulary "
                                "(%u tokens)", ids[i], w->h.n_vocab);
    if (w->h.n_tokens > 0 && w->h.n_tokens + n > w->max_tokens) {
        bn_status st = bn_shard_writer_flush(w);
        if (st != BN_OK)
            return st;
    }
    uint64_t fits = w->max_tokens - w->h.n_tokens < n ? w->max_tokens : w->h.n_tokens + n;
    size_t need = BN_SHARD_HEADER + (size_t)fits * w->h.width;
    if (need > w->cap) {
        size_t cap = w->cap;
        while (cap < need)
            cap *= 2;
        unsigned char *bigger = bn_malloc(cap, "shards");
        if (!bigger)
            return bn_error_wrap(BN_OK, "holding %llu tokens", (unsigned long long)fits);
        memcpy(bigger, w->buf, BN_SHARD_HEADER + w->h.n_tokens * w->h.width);
        bn_free(w->buf);
        w->buf = bigger;
        w->cap = cap;
    }
    w->h.n_docs++;
    for (size_t i = 0; i < n; i++) {
        if (w->h.n_tokens == w->max_tokens) {       /* a document longer than a file */
            bn_status st = bn_shard_writer_flush(w);
            if (st != BN_OK)
                return st;
        }
        unsigned char *p = w->buf + BN_SHARD_HEADER + w->h.n_tokens * w->h.width;
        if (w->h.width == 2) {
            p[0] = (unsigned char)ids[i];
            p[1] = (unsigned char)(ids[i] >> 8);
        } else {
            bn_put_u32(p, (uint32_t)ids[i]);
        }
        w->h.n_tokens++;
    }
    return BN_OK;
}

bn_status bn_shard_writer_finish(bn_shard_writer *w, int32_t *n_files)
{
    bn_status st = BN_OK;
    if (w->h.n_tokens > 0 || w->n_files == 0)   /* an empty split is one empty file */
        st = bn_shard_writer_flush(w);
    /* files of an earlier, longer run would read as a continuation: remove them */
    for (int32_t i = w->n_files; st == BN_OK && i < BN_SHARD_MAX_FILES; i++) {
        char *p = bn_shard_path(w->dir, w->split, i);
        if (!p)
            return bn_error_wrap(BN_OK, "removing old shards");
        int rc = unlink(p);
        int err = errno;
        if (rc != 0 && err != ENOENT)
            st = bn_error_set(BN_ERR_IO, "removing the old shard %s: %s", p, strerror(err));
        bn_free(p);
        if (rc != 0)
            break;
    }
    if (n_files)
        *n_files = w->n_files;
    return st;
}

void bn_shard_writer_free(bn_shard_writer *w)
{
    if (!w)
        return;
    bn_free(w->dir);
    bn_free(w->split);
    bn_free(w->buf);
    bn_free(w);
}
