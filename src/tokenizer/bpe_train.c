/*
 * bpe_train.c - learns a byte-level BPE tokenizer (LLaMA 3's kind) from text and
 * writes it as a Hugging Face tokenizer.json with its tokenizer_config.json.
 *
 * 1. Counting: the text is split by the LLaMA 3 pre-tokenizer (tok_bpe.c's own split,
 *    so training and encoding see the same pieces) and each distinct pre-token ("word")
 *    is counted once in a hash table. Memory grows with the distinct words, not with
 *    the text: files are read in chunks cut where a pre-token must end (after a line
 *    feed that an ASCII letter or digit follows). A long chunk is cut the same way
 *    into one segment for each thread of the default pool, each counted into a table
 *    of its own, and the tables are added into the trainer's in thread order; the
 *    order of the words plays no part in the result, so it is the same for any number
 *    of threads.
 * 2. Merging: every word starts as one symbol per byte (ids 0..255, the bytes in the
 *    order of GPT-2's byte-level alphabet, as LLaMA 3 numbers them). Each step merges
 *    the adjacent pair with the largest count, summed over words weighted by their
 *    counts; the merged symbol gets the next id. Ties go to the pair with the smaller
 *    left id, then the smaller right id. Each pair keeps the list of words it occurs
 *    in, so a step rewrites only those words and updates the counts of the pairs they
 *    hold; a max-heap holds candidate pairs, with entries made stale by later count
 *    changes recognised when popped and pushed again with the count of the moment.
 *    Training stops at the vocabulary size or when the best pair occurs fewer than
 *    min_count times.
 * 3. Writing: tokens 0..255 the bytes, 256.. the merges in order, then the special
 *    tokens; the pre-tokenizer and decoder are LLaMA 3's, so tok_bpe_hf.c and Hugging
 *    Face tokenizers both load the file and encode alike.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tokenizer/tokenizer_internal.h"

/* The special tokens, after the merges, in this order. */
static const char *const bn_bpe_train_specials[] = {
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eot_id|>",
};
#define BN_BPE_N_SPECIALS 5

/* The chat template written to tokenizer_config.json: LLaMA 3's format. */
static const char bn_bpe_train_chat_template[] =
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
    "message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}";

/* LLaMA 3's pre-tokenizer regex as tokenizer.json spells it (tok_bpe_hf.c recognises
 * exactly this text). */
static const char bn_bpe_train_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* One distinct pre-token. */
typedef struct bn_bt_word {
    uint64_t hash;
    uint64_t count;
    size_t   text;      /* offset of its bytes in tr->t.text */
    uint32_t len;       /* bytes */
    uint32_t n_sym;     /* current symbols (merging shrinks it) */
    size_t   sym;       /* offset of its symbols in tr->syms */
} bn_bt_word;

/* Distinct words and their counts: open addressing on the hash, slots holding a word's
 * index + 1 (0: empty). The trainer has one; counting on several threads gives each
 * thread its own, added into the trainer's afterwards. */
typedef struct bn_bt_table {
    bn_bt_word *words;
    size_t      n_words, cap_words;
    uint32_t   *word_slots;
    size_t      n_word_slots;
    char       *text;               /* the words' bytes, one after another */
    size_t      n_text, cap_text;
    uint64_t    n_pretokens;        /* pieces counted */
} bn_bt_table;

static void bn_bt_table_free(bn_bt_table *t);

/* One adjacent pair of symbols. */
typedef struct bn_bt_pair {
    int32_t  left, right;
    int64_t  count;     /* occurrences, weighted by word counts */
    int32_t *where;     /* words it occurs in (may repeat; may be stale) */
    uint32_t n_where, cap_where;
    int32_t  stamp;     /* the step that last queued it */
} bn_bt_pair;

/* A heap entry: a pair's count when it was queued. */
typedef struct bn_bt_entry {
    int64_t count;
    int32_t left, right;
} bn_bt_entry;

struct bn_bpe_trainer {
    bn_bpe_train_params params;
    bn_pretok *pretok;
    uint16_t   byte_to_cp[256];
    int32_t    byte_id[256];        /* token id of each byte */
    uint8_t    id_byte[256];        /* byte of each of the first 256 ids */

    bn_bt_table t;                  /* the words */
    uint64_t    n_bytes;

    /* merging */
    int32_t    *syms;               /* every word's symbols */
    bn_bt_pair *pairs;
    size_t      n_pairs, cap_pairs;
    uint32_t   *pair_slots;         /* pair index + 1; 0: empty */
    size_t      n_pair_slots;
    bn_bt_entry *heap;
    size_t      n_heap, cap_heap;
    int32_t    *touched;            /* pairs that gained counts in this step */
    size_t      n_touched, cap_touched;

    /* the result: the merges in order, and the tokens: 0..255 the bytes, then each
     * merge's result that is not already a token (two merges can spell one text: "a" +
     * "bc" and "ab" + "c"; the second gets the first's id, as Hugging Face's trainer
     * does) */
    int32_t    *merge_left, *merge_right;
    int32_t     n_merges;
    size_t      cap_merges;
    int32_t     n_tokens;
    uint32_t   *tok_slots;          /* token texts -> id + 1, open addressing */
    size_t      n_tok_slots;
    int64_t     last_count;
    size_t     *tok_off;            /* bytes of each token in tok_bytes */
    uint32_t   *tok_len;
    char       *tok_bytes;
    size_t      n_tok_bytes, cap_tok_bytes;
    bool        trained;
};

/* ------------------------------------------------------------------ small helpers */

/* Grows *p (n_used elements of `size` bytes) to hold at least `need`; doubles. */
static bn_status bn_bt_grow(void **p, size_t *cap, size_t n_used, size_t need, size_t size,
                            const char *what)
{
    if (need <= *cap)
        return BN_OK;
    size_t new_cap = *cap ? *cap : 64;
    while (new_cap < need)
        new_cap *= 2;
    void *q = bn_calloc(new_cap, size, "tokenizer training");
    if (!q)
        return bn_error_wrap(BN_OK, "growing the %s to %zu entries", what, new_cap);
    if (*p)
        memcpy(q, *p, n_used * size);
    bn_free(*p);
    *p = q;
    *cap = new_cap;
    return BN_OK;
}

static uint64_t bn_bt_hash(const unsigned char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

bn_bpe_train_params bn_bpe_train_default_params(void)
{
    return (bn_bpe_train_params){.vocab_size = 32000, .min_count = 2};
}

int32_t bn_bpe_train_min_vocab(void)
{
    return 256 + BN_BPE_N_SPECIALS;
}

bn_status bn_bpe_trainer_create(const bn_bpe_train_params *params, bn_bpe_trainer **out)
{
    bn_bpe_train_params p = params ? *params : bn_bpe_train_default_params();
    if (p.vocab_size < bn_bpe_train_min_vocab())
        return bn_error_set(BN_ERR_INVALID_ARG, "a vocabulary of %d tokens is too small: "
                            "byte-level BPE needs at least %d (256 bytes and %d special "
                            "tokens)", p.vocab_size, bn_bpe_train_min_vocab(),
                            BN_BPE_N_SPECIALS);
    if (p.min_count < 1)
        p.min_count = 1;
    bn_bpe_trainer *tr = bn_calloc(1, sizeof *tr, "tokenizer training");
    if (!tr)
        return bn_error_wrap(BN_OK, "creating the tokenizer trainer");
    tr->params = p;
    bn_status st = bn_pretok_create("llama3", &tr->pretok);
    if (st != BN_OK) {
        bn_free(tr);
        return st;
    }
    bn_bpe_byte_alphabet(tr->byte_to_cp);
    /* ids in the order of the alphabet's code points: '!'..'~', then 0xA1.., then the
     * bytes mapped to U+0100 upward */
    int32_t next = 0;
    for (unsigned cp = 0; cp < 0x144; cp++)
        for (int b = 0; b < 256; b++)
            if (tr->byte_to_cp[b] == cp) {
                tr->byte_id[b] = next;
                tr->id_byte[next] = (uint8_t)b;
                next++;
            }
    *out = tr;
    return BN_OK;
}

void bn_bpe_trainer_free(bn_bpe_trainer *tr)
{
    if (!tr)
        return;
    bn_pretok_free(tr->pretok);
    bn_bt_table_free(&tr->t);
    bn_free(tr->syms);
    for (size_t i = 0; i < tr->n_pairs; i++)
        bn_free(tr->pairs[i].where);
    bn_free(tr->pairs);
    bn_free(tr->pair_slots);
    bn_free(tr->heap);
    bn_free(tr->touched);
    bn_free(tr->merge_left);
    bn_free(tr->merge_right);
    bn_free(tr->tok_off);
    bn_free(tr->tok_len);
    bn_free(tr->tok_bytes);
    bn_free(tr->tok_slots);
    bn_free(tr);
}

/* ------------------------------------------------------------------ counting */

static void bn_bt_table_free(bn_bt_table *t)
{
    bn_free(t->words);
    bn_free(t->word_slots);
    bn_free(t->text);
    memset(t, 0, sizeof *t);
}

/* Rebuilds the word slots at twice the size. */
static bn_status bn_bt_rehash_words(bn_bt_table *t)
{
    size_t n_slots = t->n_word_slots ? 2 * t->n_word_slots : 1024;
    uint32_t *slots = bn_calloc(n_slots, sizeof *slots, "tokenizer training");
    if (!slots)
        return bn_error_wrap(BN_OK, "a table of %zu words", n_slots / 2);
    for (size_t w = 0; w < t->n_words; w++) {
        size_t i = t->words[w].hash & (n_slots - 1);
        while (slots[i])
            i = (i + 1) & (n_slots - 1);
        slots[i] = (uint32_t)w + 1;
    }
    bn_free(t->word_slots);
    t->word_slots = slots;
    t->n_word_slots = n_slots;
    return BN_OK;
}

/* Adds `count` occurrences of the word piece[0, len) (hash h) to table t. */
static bn_status bn_bt_table_add(bn_bt_table *t, uint64_t h, const unsigned char *piece,
                                 size_t len, uint64_t count)
{
    if (len > UINT32_MAX / 2)
        return bn_error_set(BN_ERR_INVALID_ARG, "a pre-token of %zu bytes is too long", len);
    if (2 * (t->n_words + 1) > t->n_word_slots) {
        bn_status st = bn_bt_rehash_words(t);
        if (st != BN_OK)
            return st;
    }
    size_t i = h & (t->n_word_slots - 1);
    for (; t->word_slots[i]; i = (i + 1) & (t->n_word_slots - 1)) {
        bn_bt_word *w = &t->words[t->word_slots[i] - 1];
        if (w->hash == h && w->len == len && memcmp(t->text + w->text, piece, len) == 0) {
            w->count += count;
            return BN_OK;
        }
    }
    if (t->n_words >= INT32_MAX - 1)
        return bn_error_set(BN_ERR_INVALID_ARG, "more than %d distinct pre-tokens",
                            INT32_MAX - 1);
    bn_status st = bn_bt_grow((void **)&t->words, &t->cap_words, t->n_words,
                              t->n_words + 1, sizeof *t->words, "word list");
    if (st == BN_OK)
        st = bn_bt_grow((void **)&t->text, &t->cap_text, t->n_text, t->n_text + len, 1,
                        "word text");
    if (st != BN_OK)
        return st;
    memcpy(t->text + t->n_text, piece, len);
    t->words[t->n_words] = (bn_bt_word){.hash = h, .count = count, .text = t->n_text,
                                        .len = (uint32_t)len};
    t->n_text += len;
    t->word_slots[i] = (uint32_t)++t->n_words;
    return BN_OK;
}

/* Counts one pre-token into the table `user`. */
static bn_status bn_bt_count_piece(void *user, const unsigned char *piece, size_t len)
{
    bn_bt_table *t = user;
    t->n_pretokens++;
    return bn_bt_table_add(t, bn_bt_hash(piece, len), piece, len, 1);
}

/* Where the text of buf[0, n) may be cut between two pre-tokens: just after the last
 * line feed that an ASCII letter or digit follows (no pre-token of the LLaMA 3 pattern
 * holds both); 0 when there is none. */
static size_t bn_bt_safe_cut(const char *buf, size_t n)
{
    for (size_t i = n; i-- > 1;) {
        unsigned char c = (unsigned char)buf[i];
        if (buf[i - 1] == '\n' && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                   (c >= '0' && c <= '9')))
            return i;
    }
    return 0;
}

/* Texts shorter than this a thread are counted on one thread. */
#define BN_BT_MIN_SEGMENT ((size_t)1 << 18)

/* Counting a text on the threads of the default pool: thread i counts the segment
 * [cuts[i], cuts[i + 1]) into tables[i]; a failure's message is kept in errors[i],
 * since each thread has its own error chain. */
typedef struct bn_bt_count_job {
    const bn_bpe_trainer *tr;
    const char           *text;
    size_t               *cuts;
    bn_bt_table          *tables;
    bn_status            *status;
    char                (*errors)[256];
} bn_bt_count_job;

static void bn_bt_count_task(void *ctx, int ith, int nth)
{
    (void)nth;
    bn_bt_count_job *job = ctx;
    size_t a = job->cuts[ith], b = job->cuts[ith + 1];
    bn_status st = b > a ? bn_pretok_split(job->tr->pretok, job->text + a, b - a,
                                           bn_bt_count_piece, &job->tables[ith])
                         : BN_OK;
    job->status[ith] = st;
    if (st != BN_OK)
        snprintf(job->errors[ith], sizeof job->errors[ith], "%s", bn_last_error());
}

/* Counts text on every thread of the default pool, each thread a segment cut where
 * pieces end, then adds the threads' tables into the trainer's in thread order. */
static bn_status bn_bt_count_parallel(bn_bpe_trainer *tr, const char *text, size_t len,
                                      bn_threadpool *pool, int nth)
{
    size_t *cuts = bn_calloc((size_t)nth + 1, sizeof *cuts, "tokenizer training");
    bn_bt_table *tables = bn_calloc((size_t)nth, sizeof *tables, "tokenizer training");
    bn_status *status = bn_calloc((size_t)nth, sizeof *status, "tokenizer training");
    char (*errors)[256] = bn_calloc((size_t)nth, sizeof *errors, "tokenizer training");
    bn_status st = cuts && tables && status && errors
                   ? BN_OK : bn_error_wrap(BN_OK, "counting on %d threads", nth);
    if (st == BN_OK) {
        for (int i = 1; i < nth; i++) {
            size_t target = len / (size_t)nth * (size_t)i;
            size_t cut = bn_bt_safe_cut(text + cuts[i - 1], target - cuts[i - 1]);
            cuts[i] = cut ? cuts[i - 1] + cut : cuts[i - 1];   /* none: an empty segment */
        }
        cuts[nth] = len;
        bn_bt_count_job job = {.tr = tr, .text = text, .cuts = cuts, .tables = tables,
                               .status = status, .errors = errors};
        bn_threadpool_run(pool, bn_bt_count_task, &job);
        for (int i = 0; i < nth && st == BN_OK; i++)
            if (status[i] != BN_OK)
                st = bn_error_set(status[i], "%s", errors[i]);
    }
    for (int i = 0; i < nth && st == BN_OK; i++) {
        const bn_bt_table *t = &tables[i];
        for (size_t w = 0; w < t->n_words && st == BN_OK; w++) {
            const bn_bt_word *word = &t->words[w];
            st = bn_bt_table_add(&tr->t, word->hash,
                                 (const unsigned char *)t->text + word->text, word->len,
                                 word->count);
        }
        tr->t.n_pretokens += t->n_pretokens;
    }
    for (int i = 0; tables && i < nth; i++)
        bn_bt_table_free(&tables[i]);
    bn_free(cuts);
    bn_free(tables);
    bn_free(status);
    bn_free(errors);
    return st;
}

bn_status bn_bpe_trainer_add_text(bn_bpe_trainer *tr, const char *text, size_t len)
{
    if (tr->trained)
        return bn_error_set(BN_ERR_INVALID_ARG, "text added after training");
    tr->n_bytes += len;
    if (len >= 2 * BN_BT_MIN_SEGMENT && bn_get_num_threads() > 1) {
        bn_threadpool *pool = bn_default_threadpool();
        if (pool && bn_threadpool_size(pool) > 1)
            return bn_bt_count_parallel(tr, text, len, pool, bn_threadpool_size(pool));
    }
    return bn_pretok_split(tr->pretok, text, len, bn_bt_count_piece, &tr->t);
}

bn_status bn_bpe_trainer_add_file(bn_bpe_trainer *tr, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bn_error_set(BN_ERR_IO, "opening %s: %s", path, strerror(errno));
    int nth = bn_get_num_threads();
    size_t cap = ((size_t)1 << 20) * (size_t)(nth > 1 ? nth : 1), n = 0;   /* 1 MiB a thread */
    char *buf = bn_malloc(cap, "tokenizer training");
    bn_status st = buf ? BN_OK : bn_error_wrap(BN_OK, "reading %s", path);
    while (st == BN_OK) {
        if (n == cap) {                       /* no place to cut: a longer buffer */
            char *bigger = bn_malloc(2 * cap, "tokenizer training");
            if (!bigger) {
                st = bn_error_wrap(BN_OK, "reading %s", path);
                break;
            }
            memcpy(bigger, buf, n);
            bn_free(buf);
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                st = bn_error_set(BN_ERR_IO, "reading %s: %s", path, strerror(errno));
            else if (n > 0)
                st = bn_bpe_trainer_add_text(tr, buf, n);
            break;
        }
        size_t cut = bn_bt_safe_cut(buf, n);
        if (cut == 0)
            continue;
        st = bn_bpe_trainer_add_text(tr, buf, cut);
        memmove(buf, buf + cut, n - cut);
        n -= cut;
        if (tr->params.on_progress && st == BN_OK)
            tr->params.on_progress(tr->params.progress_user, 0, 0, tr->n_bytes);
    }
    bn_free(buf);
    fclose(f);
    if (st != BN_OK)
        return bn_error_wrap(st, "%s", path);
    return BN_OK;
}

/* ------------------------------------------------------------------ pairs */

static size_t bn_bt_pair_slot(int32_t left, int32_t right, size_t n_slots)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 24) & (n_slots - 1);
}

static bn_status bn_bt_rehash_pairs(bn_bpe_trainer *tr)
{
    size_t n_slots = tr->n_pair_slots ? 2 * tr->n_pair_slots : 4096;
    uint32_t *slots = bn_calloc(n_slots, sizeof *slots, "tokenizer training");
    if (!slots)
        return bn_error_wrap(BN_OK, "a table of %zu pairs", n_slots / 2);
    for (size_t p = 0; p < tr->n_pairs; p++) {
        size_t i = bn_bt_pair_slot(tr->pairs[p].left, tr->pairs[p].right, n_slots);
        while (slots[i])
            i = (i + 1) & (n_slots - 1);
        slots[i] = (uint32_t)p + 1;
    }
    bn_free(tr->pair_slots);
    tr->pair_slots = slots;
    tr->n_pair_slots = n_slots;
    return BN_OK;
}

/* The index of pair (left, right), created with count 0 when absent; -1 on OOM. */
static int64_t bn_bt_pair_get(bn_bpe_trainer *tr, int32_t left, int32_t right)
{
    if (2 * (tr->n_pairs + 1) > tr->n_pair_slots && bn_bt_rehash_pairs(tr) != BN_OK)
        return -1;
    size_t i = bn_bt_pair_slot(left, right, tr->n_pair_slots);
    for (; tr->pair_slots[i]; i = (i + 1) & (tr->n_pair_slots - 1)) {
        const bn_bt_pair *p = &tr->pairs[tr->pair_slots[i] - 1];
        if (p->left == left && p->right == right)
            return tr->pair_slots[i] - 1;
    }
    if (bn_bt_grow((void **)&tr->pairs, &tr->cap_pairs, tr->n_pairs, tr->n_pairs + 1,
                   sizeof *tr->pairs, "pair list") != BN_OK)
        return -1;
    tr->pairs[tr->n_pairs] = (bn_bt_pair){.left = left, .right = right, .stamp = -1};
    tr->pair_slots[i] = (uint32_t)++tr->n_pairs;
    return (int64_t)tr->n_pairs - 1;
}

/* Adds delta to the count of pair (left, right); with note_word, records that word w
 * holds it. *index gets the pair's index. */
static bn_status bn_bt_pair_add(bn_bpe_trainer *tr, int32_t left, int32_t right,
                                int64_t delta, int32_t w, bool note_word, int64_t *index)
{
    int64_t pi = bn_bt_pair_get(tr, left, right);
    if (pi < 0)
        return bn_error_wrap(BN_OK, "counting pairs");
    bn_bt_pair *p = &tr->pairs[pi];
    p->count += delta;
    if (note_word && (p->n_where == 0 || p->where[p->n_where - 1] != w)) {
        size_t cap = p->cap_where;
        bn_status st = bn_bt_grow((void **)&p->where, &cap, p->n_where, p->n_where + 1,
                                  sizeof *p->where, "pair's word list");
        if (st != BN_OK)
            return st;
        if (cap > UINT32_MAX)
            return bn_error_set(BN_ERR_OOM, "a pair in more than 2^32 words");
        p->cap_where = (uint32_t)cap;
        p->where[p->n_where++] = w;
    }
    if (index)
        *index = pi;
    return BN_OK;
}

/* ------------------------------------------------------------------ the heap */

/* a comes out before b: larger count, then smaller left id, then smaller right id. */
static bool bn_bt_before(const bn_bt_entry *a, const bn_bt_entry *b)
{
    if (a->count != b->count)
        return a->count > b->count;
    if (a->left != b->left)
        return a->left < b->left;
    return a->right < b->right;
}

static bn_status bn_bt_heap_push(bn_bpe_trainer *tr, bn_bt_entry e)
{
    bn_status st = bn_bt_grow((void **)&tr->heap, &tr->cap_heap, tr->n_heap, tr->n_heap + 1,
                              sizeof *tr->heap, "pair queue");
    if (st != BN_OK)
        return st;
    size_t i = tr->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bn_bt_before(&e, &tr->heap[parent]))
            break;
        tr->heap[i] = tr->heap[parent];
        i = parent;
    }
    tr->heap[i] = e;
    return BN_OK;
}

static bn_bt_entry bn_bt_heap_pop(bn_bpe_trainer *tr)
{
    bn_bt_entry top = tr->heap[0], last = tr->heap[--tr->n_heap];
    size_t i = 0, n = tr->n_heap;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && bn_bt_before(&tr->heap[child + 1], &tr->heap[child]))
            child++;
        if (!bn_bt_before(&tr->heap[child], &last))
            break;
        tr->heap[i] = tr->heap[child];
        i = child;
    }
    if (n)
        tr->heap[i] = last;
    return top;
}

/* ------------------------------------------------------------------ merging */

/* One symbol per byte for every word; the pairs counted; the heap filled. */
static bn_status bn_bt_start(bn_bpe_trainer *tr)
{
    tr->syms = bn_calloc(tr->t.n_text ? tr->t.n_text : 1, sizeof *tr->syms, "tokenizer training");
    if (!tr->syms)
        return bn_error_wrap(BN_OK, "the symbols of %zu words", tr->t.n_words);
    bn_status st = BN_OK;
    for (size_t w = 0; w < tr->t.n_words && st == BN_OK; w++) {
        bn_bt_word *word = &tr->t.words[w];
        const unsigned char *bytes = (const unsigned char *)tr->t.text + word->text;
        int32_t *sym = tr->syms + word->text;
        word->sym = word->text;
        word->n_sym = word->len;
        for (uint32_t i = 0; i < word->len; i++)
            sym[i] = tr->byte_id[bytes[i]];
        for (uint32_t i = 0; i + 1 < word->len && st == BN_OK; i++)
            st = bn_bt_pair_add(tr, sym[i], sym[i + 1], (int64_t)word->count, (int32_t)w,
                                true, NULL);
    }
    for (size_t p = 0; p < tr->n_pairs && st == BN_OK; p++)
        st = bn_bt_heap_push(tr, (bn_bt_entry){tr->pairs[p].count, tr->pairs[p].left,
                                               tr->pairs[p].right});
    return st;
}

/* Notes that pair pi gained counts in step `step` (queued once after the step). */
static bn_status bn_bt_touch(bn_bpe_trainer *tr, int64_t pi, int32_t step)
{
    if (tr->pairs[pi].stamp == step)
        return BN_OK;
    tr->pairs[pi].stamp = step;
    bn_status st = bn_bt_grow((void **)&tr->touched, &tr->cap_touched, tr->n_touched,
                              tr->n_touched + 1, sizeof *tr->touched, "changed pairs");
    if (st == BN_OK)
        tr->touched[tr->n_touched++] = (int32_t)pi;
    return st;
}

/* Adds (sign +1) or removes (-1) the counts of every adjacent pair of word w; adding
 * records w in the word lists of the pairs that hold `fresh` and queues them. */
static bn_status bn_bt_word_pairs(bn_bpe_trainer *tr, int32_t w, int sign, int32_t fresh,
                                  int32_t step)
{
    const bn_bt_word *word = &tr->t.words[w];
    const int32_t *sym = tr->syms + word->sym;
    int64_t delta = sign * (int64_t)word->count;
    bn_status st = BN_OK;
    for (uint32_t i = 0; i + 1 < word->n_sym && st == BN_OK; i++) {
        bool has_fresh = sign > 0 && (sym[i] == fresh || sym[i + 1] == fresh);
        int64_t pi = -1;
        st = bn_bt_pair_add(tr, sym[i], sym[i + 1], delta, w, has_fresh, &pi);
        if (st == BN_OK && has_fresh)
            st = bn_bt_touch(tr, pi, step);
    }
    return st;
}

/* Merges every (left, right) of word w into `merged`, left to right; true when it held
 * one. */
static bool bn_bt_merge_word(bn_bpe_trainer *tr, int32_t w, int32_t left, int32_t right,
                             int32_t merged)
{
    bn_bt_word *word = &tr->t.words[w];
    int32_t *sym = tr->syms + word->sym;
    uint32_t k = 0;
    bool found = false;
    for (uint32_t i = 0; i < word->n_sym; i++) {
        if (i + 1 < word->n_sym && sym[i] == left && sym[i + 1] == right) {
            sym[k++] = merged;
            i++;
            found = true;
        } else {
            sym[k++] = sym[i];
        }
    }
    word->n_sym = k;
    return found;
}

/* Whether word w holds the pair (left, right). */
static bool bn_bt_word_has(const bn_bpe_trainer *tr, int32_t w, int32_t left, int32_t right)
{
    const bn_bt_word *word = &tr->t.words[w];
    const int32_t *sym = tr->syms + word->sym;
    for (uint32_t i = 0; i + 1 < word->n_sym; i++)
        if (sym[i] == left && sym[i + 1] == right)
            return true;
    return false;
}

/* The slot of the token whose bytes are b[0, len): the slot holding its id + 1, or the
 * empty slot where it would go. */
static size_t bn_bt_tok_slot(const bn_bpe_trainer *tr, const char *b, size_t len)
{
    size_t i = bn_bt_hash((const unsigned char *)b, len) & (tr->n_tok_slots - 1);
    for (; tr->tok_slots[i]; i = (i + 1) & (tr->n_tok_slots - 1)) {
        int32_t id = (int32_t)tr->tok_slots[i] - 1;
        if (tr->tok_len[id] == len && memcmp(tr->tok_bytes + tr->tok_off[id], b, len) == 0)
            break;
    }
    return i;
}

/* The token spelling left + right: an existing one, or a new one (*id). */
static bn_status bn_bt_add_token(bn_bpe_trainer *tr, int32_t left, int32_t right, int32_t *id)
{
    size_t len = (size_t)tr->tok_len[left] + tr->tok_len[right];
    bn_status st = bn_bt_grow((void **)&tr->tok_bytes, &tr->cap_tok_bytes, tr->n_tok_bytes,
                              tr->n_tok_bytes + len, 1, "token texts");
    if (st != BN_OK)
        return st;
    /* copy through the offsets: tok_bytes may have moved */
    char *b = tr->tok_bytes + tr->n_tok_bytes;
    memcpy(b, tr->tok_bytes + tr->tok_off[left], tr->tok_len[left]);
    memcpy(b + tr->tok_len[left], tr->tok_bytes + tr->tok_off[right], tr->tok_len[right]);
    size_t slot = bn_bt_tok_slot(tr, b, len);
    if (tr->tok_slots[slot]) {
        *id = (int32_t)tr->tok_slots[slot] - 1;
        return BN_OK;
    }
    *id = tr->n_tokens++;
    tr->tok_off[*id] = tr->n_tok_bytes;
    tr->tok_len[*id] = (uint32_t)len;
    tr->n_tok_bytes += len;
    tr->tok_slots[slot] = (uint32_t)*id + 1;
    return BN_OK;
}

/* Merge step `step`: (left, right) becomes token `merged` in every word that holds it. */
static bn_status bn_bt_step(bn_bpe_trainer *tr, int32_t left, int32_t right, int32_t merged,
                            int32_t step)
{
    int64_t pi = bn_bt_pair_get(tr, left, right);
    if (pi < 0)
        return bn_error_wrap(BN_OK, "merging");
    /* the pair's own list does not grow during its step: new pairs all hold `merged` */
    const int32_t *where = tr->pairs[pi].where;
    uint32_t n_where = tr->pairs[pi].n_where;
    tr->n_touched = 0;
    bn_status st = BN_OK;
    for (uint32_t k = 0; k < n_where && st == BN_OK; k++) {
        int32_t w = where[k];
        if (!bn_bt_word_has(tr, w, left, right))
            continue;                          /* listed twice, or merged away since */
        st = bn_bt_word_pairs(tr, w, -1, merged, step);
        if (st == BN_OK) {
            bn_bt_merge_word(tr, w, left, right, merged);
            st = bn_bt_word_pairs(tr, w, +1, merged, step);
        }
    }
    for (size_t k = 0; k < tr->n_touched && st == BN_OK; k++) {
        const bn_bt_pair *p = &tr->pairs[tr->touched[k]];
        if (p->count > 0)
            st = bn_bt_heap_push(tr, (bn_bt_entry){p->count, p->left, p->right});
    }
    /* its words no longer hold it: the list goes */
    bn_bt_pair *done = &tr->pairs[pi];
    bn_free(done->where);
    done->where = NULL;
    done->n_where = done->cap_where = 0;
    return st;
}

bn_status bn_bpe_trainer_train(bn_bpe_trainer *tr)
{
    if (tr->trained)
        return bn_error_set(BN_ERR_INVALID_ARG, "the tokenizer is already trained");
    if (tr->n_bytes == 0)
        return bn_error_set(BN_ERR_INVALID_ARG, "no text to train on (the input is empty)");
    int32_t target = tr->params.vocab_size - BN_BPE_N_SPECIALS;   /* tokens before specials */
    size_t n_tokens = (size_t)tr->params.vocab_size;
    tr->n_tok_slots = 64;
    while (tr->n_tok_slots < 2 * n_tokens)
        tr->n_tok_slots *= 2;
    tr->tok_slots = bn_calloc(tr->n_tok_slots, sizeof *tr->tok_slots, "tokenizer training");
    tr->tok_off = bn_calloc(n_tokens, sizeof *tr->tok_off, "tokenizer training");
    tr->tok_len = bn_calloc(n_tokens, sizeof *tr->tok_len, "tokenizer training");
    bn_status st = tr->tok_slots && tr->tok_off && tr->tok_len
                   ? BN_OK : bn_error_wrap(BN_OK, "tokenizer training");
    if (st == BN_OK)
        st = bn_bt_grow((void **)&tr->tok_bytes, &tr->cap_tok_bytes, 0, 256, 1, "token texts");
    for (int32_t id = 0; id < 256 && st == BN_OK; id++) {
        tr->tok_bytes[id] = (char)tr->id_byte[id];
        tr->tok_off[id] = (size_t)id;
        tr->tok_len[id] = 1;
        tr->tok_slots[bn_bt_tok_slot(tr, tr->tok_bytes + id, 1)] = (uint32_t)id + 1;
    }
    tr->n_tok_bytes = 256;
    tr->n_tokens = 256;
    if (st == BN_OK)
        st = bn_bt_start(tr);
    int32_t n_merges = 0;
    int64_t last = 0;
    while (st == BN_OK && tr->n_tokens < target && tr->n_heap > 0) {
        bn_bt_entry e = bn_bt_heap_pop(tr);
        int64_t pi = bn_bt_pair_get(tr, e.left, e.right);
        if (pi < 0) {
            st = bn_error_wrap(BN_OK, "merging");
            break;
        }
        int64_t count = tr->pairs[pi].count;
        if (count != e.count) {                 /* stale: queue it at today's count */
            if (count > 0)
                st = bn_bt_heap_push(tr, (bn_bt_entry){count, e.left, e.right});
            continue;
        }
        if (count < tr->params.min_count)
            break;
        if (n_merges == INT32_MAX - 1) {
            st = bn_error_set(BN_ERR_INVALID_ARG, "too many merges");
            break;
        }
        size_t cap = tr->cap_merges;
        st = bn_bt_grow((void **)&tr->merge_left, &cap, (size_t)n_merges,
                        (size_t)n_merges + 1, sizeof *tr->merge_left, "merge list");
        if (st == BN_OK)
            st = bn_bt_grow((void **)&tr->merge_right, &tr->cap_merges, (size_t)n_merges,
                            (size_t)n_merges + 1, sizeof *tr->merge_right, "merge list");
        int32_t merged = -1;
        if (st == BN_OK)
            st = bn_bt_add_token(tr, e.left, e.right, &merged);
        if (st == BN_OK)
            st = bn_bt_step(tr, e.left, e.right, merged, n_merges);
        if (st != BN_OK)
            break;
        tr->merge_left[n_merges] = e.left;
        tr->merge_right[n_merges] = e.right;
        n_merges++;
        last = count;
        if (tr->params.on_progress && (tr->n_tokens % 256 == 0 || tr->n_tokens == target))
            tr->params.on_progress(tr->params.progress_user, tr->n_tokens, target, tr->n_bytes);
    }
    tr->n_merges = n_merges;
    tr->last_count = last;
    /* the merge tables are no longer needed: give the memory back */
    for (size_t i = 0; i < tr->n_pairs; i++)
        bn_free(tr->pairs[i].where);
    bn_free(tr->pairs);
    bn_free(tr->pair_slots);
    bn_free(tr->heap);
    bn_free(tr->touched);
    tr->pairs = NULL;
    tr->pair_slots = NULL;
    tr->heap = NULL;
    tr->touched = NULL;
    tr->n_pairs = tr->n_pair_slots = tr->n_heap = tr->cap_pairs = tr->cap_heap = 0;
    tr->n_touched = tr->cap_touched = 0;
    if (st != BN_OK)
        return bn_error_wrap(st, "training the tokenizer");
    tr->trained = true;
    return BN_OK;
}

void bn_bpe_trainer_stats(const bn_bpe_trainer *tr, bn_bpe_train_stats *out)
{
    *out = (bn_bpe_train_stats){
        .n_bytes = tr->n_bytes,
        .n_pretokens = tr->t.n_pretokens,
        .n_words = tr->t.n_words,
        .n_merges = tr->n_merges,
        .vocab_size = tr->trained ? tr->n_tokens + BN_BPE_N_SPECIALS : 0,
        .last_count = tr->last_count,
    };
}

/* ------------------------------------------------------------------ writing */

/* Token id's text in the byte-level alphabet, into buf (room for 2 * len + 1). */
static size_t bn_bt_spell(const bn_bpe_trainer *tr, int32_t id, char *buf)
{
    const unsigned char *b = (const unsigned char *)tr->tok_bytes + tr->tok_off[id];
    size_t k = 0;
    for (uint32_t i = 0; i < tr->tok_len[id]; i++) {
        unsigned cp = tr->byte_to_cp[b[i]];
        if (cp < 0x80) {
            buf[k++] = (char)cp;
        } else {
            buf[k++] = (char)(0xc0 | (cp >> 6));
            buf[k++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    buf[k] = '\0';
    return k;
}

/* json_*_set_new that remembers a failure in *ok. */
static void bn_bt_set(json_t *obj, const char *key, json_t *v, bool *ok)
{
    if (!v || json_object_set_new(obj, key, v) != 0)
        *ok = false;
}

static void bn_bt_append(json_t *arr, json_t *v, bool *ok)
{
    if (!v || json_array_append_new(arr, v) != 0)
        *ok = false;
}

/* The tokenizer.json document. */
static json_t *bn_bt_tokenizer_json(const bn_bpe_trainer *tr)
{
    bool ok = true;
    int32_t first_special = tr->n_tokens;
    json_t *root = json_object();
    json_t *added = json_array();
    for (int32_t i = 0; i < BN_BPE_N_SPECIALS && added; i++) {
        json_t *a = json_object();
        if (a) {
            bn_bt_set(a, "id", json_integer(first_special + i), &ok);
            bn_bt_set(a, "content", json_string(bn_bpe_train_specials[i]), &ok);
            bn_bt_set(a, "single_word", json_false(), &ok);
            bn_bt_set(a, "lstrip", json_false(), &ok);
            bn_bt_set(a, "rstrip", json_false(), &ok);
            bn_bt_set(a, "normalized", json_false(), &ok);
            bn_bt_set(a, "special", json_true(), &ok);
        }
        bn_bt_append(added, a, &ok);
    }
    json_t *split = json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex",
                              bn_bpe_train_regex, "behavior", "Isolated", "invert", 0);
    json_t *byte_level = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel",
                                   "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 0);
    json_t *pre = json_pack("{s:s, s:[oo]}", "type", "Sequence", "pretokenizers", split,
                            byte_level);
    json_t *post = json_pack("{s:s, s:[{s:s, s:b, s:b, s:b}, "
                             "{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], "
                             "s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}], "
                             "s:{s:{s:s, s:[i], s:[s]}}}]}",
                             "type", "Sequence", "processors",
                             "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 0,
                             "use_regex", 1,
                             "type", "TemplateProcessing",
                             "single", "SpecialToken", "id", bn_bpe_train_specials[0],
                             "type_id", 0, "Sequence", "id", "A", "type_id", 0,
                             "pair", "SpecialToken", "id", bn_bpe_train_specials[0],
                             "type_id", 0, "Sequence", "id", "A", "type_id", 0,
                             "SpecialToken", "id", bn_bpe_train_specials[0], "type_id", 1,
                             "Sequence", "id", "B", "type_id", 1,
                             "special_tokens", bn_bpe_train_specials[0], "id",
                             bn_bpe_train_specials[0], "ids", first_special, "tokens",
                             bn_bpe_train_specials[0]);
    json_t *decoder = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel",
                                "add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1);
    json_t *vocab = json_object();
    json_t *merges = json_array();
    char *a = bn_malloc(4 * tr->n_tok_bytes + 8, "tokenizer training");   /* any merge */
    if (!a)
        ok = false;
    for (int32_t id = 0; ok && vocab && id < first_special; id++) {
        bn_bt_spell(tr, id, a);
        bn_bt_set(vocab, a, json_integer(id), &ok);
    }
    for (int32_t m = 0; ok && merges && m < tr->n_merges; m++) {
        size_t la = bn_bt_spell(tr, tr->merge_left[m], a);
        a[la] = ' ';
        bn_bt_spell(tr, tr->merge_right[m], a + la + 1);
        bn_bt_append(merges, json_string(a), &ok);
    }
    bn_free(a);
    json_t *model = json_object();
    if (model) {
        bn_bt_set(model, "type", json_string("BPE"), &ok);
        bn_bt_set(model, "dropout", json_null(), &ok);
        bn_bt_set(model, "unk_token", json_null(), &ok);
        bn_bt_set(model, "continuing_subword_prefix", json_null(), &ok);
        bn_bt_set(model, "end_of_word_suffix", json_null(), &ok);
        bn_bt_set(model, "fuse_unk", json_false(), &ok);
        bn_bt_set(model, "byte_fallback", json_false(), &ok);
        bn_bt_set(model, "ignore_merges", json_true(), &ok);
        bn_bt_set(model, "vocab", vocab, &ok);
        bn_bt_set(model, "merges", merges, &ok);
    } else {
        json_decref(vocab);
        json_decref(merges);
    }
    if (root) {
        bn_bt_set(root, "version", json_string("1.0"), &ok);
        bn_bt_set(root, "truncation", json_null(), &ok);
        bn_bt_set(root, "padding", json_null(), &ok);
        bn_bt_set(root, "added_tokens", added, &ok);
        bn_bt_set(root, "normalizer", json_null(), &ok);
        bn_bt_set(root, "pre_tokenizer", pre, &ok);
        bn_bt_set(root, "post_processor", post, &ok);
        bn_bt_set(root, "decoder", decoder, &ok);
        bn_bt_set(root, "model", model, &ok);
    } else {
        json_decref(added);
        json_decref(pre);
        json_decref(post);
        json_decref(decoder);
        json_decref(model);
    }
    if (!ok) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* The tokenizer_config.json document: BOS, EOS and the chat template. */
static json_t *bn_bt_config_json(void)
{
    return json_pack("{s:b, s:b, s:s, s:s, s:s, s:n, s:s, s:i}",
                     "add_bos_token", 1, "add_eos_token", 0,
                     "bos_token", bn_bpe_train_specials[0],
                     "eos_token", bn_bpe_train_specials[1],
                     "chat_template", bn_bpe_train_chat_template,
                     "pad_token",
                     "tokenizer_class", "PreTrainedTokenizerFast",
                     "model_max_length", 131072);
}

/* Formats doc and starts writing it to path: *f holds all of it, to be committed. */
static bn_status bn_bt_write_json(const json_t *doc, const char *path, bn_out_file **f)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text)
        return bn_error_set(BN_ERR_OOM, "writing %s: out of memory formatting the JSON", path);
    *f = NULL;
    bn_status st = bn_out_file_open(path, f);
    if (st == BN_OK)
        st = bn_out_file_write(*f, text, strlen(text));
    if (st == BN_OK)
        st = bn_out_file_write(*f, "\n", 1);
    if (st != BN_OK) {
        bn_out_file_discard(*f);
        *f = NULL;
    }
    free(text);
    return st;
}

bn_status bn_bpe_trainer_save(const bn_bpe_trainer *tr, const char *path, bool with_config)
{
    if (!tr->trained)
        return bn_error_set(BN_ERR_INVALID_ARG, "the tokenizer is not trained yet");
    /* both files are written in full before either is put in place */
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    static const char name[] = "tokenizer_config.json";
    char *cpath = with_config ? bn_malloc(dir_len + sizeof name, "tokenizer training") : NULL;
    if (with_config && !cpath)
        return bn_error_wrap(BN_OK, "writing %s", path);
    if (cpath) {
        memcpy(cpath, path, dir_len);
        memcpy(cpath + dir_len, name, sizeof name);
    }
    json_t *doc = bn_bt_tokenizer_json(tr);
    json_t *config = with_config ? bn_bt_config_json() : NULL;
    bn_out_file *f = NULL, *cf = NULL;
    bn_status st = doc && (config || !with_config)
                   ? BN_OK : bn_error_set(BN_ERR_OOM, "writing %s: out of memory building "
                                          "the JSON", path);
    if (st == BN_OK)
        st = bn_bt_write_json(doc, path, &f);
    if (st == BN_OK && config)
        st = bn_bt_write_json(config, cpath, &cf);
    if (st == BN_OK) {
        st = bn_out_file_commit(f);
        f = NULL;
    }
    if (st == BN_OK && cf) {
        st = bn_out_file_commit(cf);
        cf = NULL;
    }
    bn_out_file_discard(f);
    bn_out_file_discard(cf);
    json_decref(doc);
    json_decref(config);
    bn_free(cpath);
    return st;
}
