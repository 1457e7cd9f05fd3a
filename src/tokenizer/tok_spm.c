/*
 * tok_spm.c - SentencePiece BPE (LLaMA 1/2 vocabularies): encoding and the bytes of
 * each token.
 *
 * Encoding follows sentencepiece's bpe_model: spaces become U+2581 ("▁"), a "▁" goes
 * in front when the text starts and the model adds a dummy prefix, the text is split
 * into characters (a user-defined piece found there is one symbol that never merges),
 * then the adjacent pair whose concatenation is a piece with the highest score is
 * merged (ties: the leftmost), until no pair is a piece. Merge results are NORMAL,
 * USER_DEFINED and UNUSED pieces; an UNUSED result is split back into the two halves
 * that formed it at the end. A symbol that is no piece, or is the unknown piece,
 * falls back to its bytes' <0xNN> tokens, or to the unknown token (consecutive ones
 * collapsed) when the model has no byte tokens. Pairs wait in a binary heap; a pair
 * made stale by an earlier merge is noticed by its length and skipped.
 *
 * One deliberate difference: sentencepiece replaces each byte of invalid UTF-8 by
 * U+FFFD before encoding (so the bytes are lost); here such a byte is a symbol of its
 * own and falls back to its <0xNN> token, so that decoding gives the text back.
 *
 * To keep the merge queue small, the text is cut where no piece holds the two
 * characters on either side (most word boundaries); each part merges on its own.
 *
 * The reader of tokenizer.model files is in tok_spm_model.c.
 */
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

#define BN_SPM_SPACE     "\xe2\x96\x81"   /* U+2581, what a space becomes */
#define BN_SPM_SPACE_LEN 3

/* Characters with a small code: ASCII, and "▁" as 128. */
#define BN_SPM_SMALL 129

/* The family's state, built from the vocabulary once. */
typedef struct bn_spm {
    bn_token  byte_ids[256];    /* id of <0xNN> for each byte, -1 when missing */
    bool      byte_fallback;    /* the vocabulary has byte tokens */
    bn_token  unk;              /* the unknown token, -1 when none */
    uint32_t  max_piece_len;    /* longest piece a merge can make, in bytes */
    bool      has_unused;       /* some merge results must be split back */
    uint32_t *user_lens;        /* distinct lengths of user-defined pieces, longest
                                   first (n_user_lens of them) */
    size_t    n_user_lens;
    bn_strmap *bigrams;         /* every two adjacent characters inside a piece a merge
                                   can make (keys in the vocabulary's texts) ... */
    uint8_t   small_bigrams[(BN_SPM_SMALL * BN_SPM_SMALL + 7) / 8];
                                /* ... but as bits for two ASCII or "▁" characters */
} bn_spm;

/* ------------------------------------------------------------------ pieces */

/* The byte value of a "<0xNN>" text, or -1. */
static int bn_spm_byte_of(const char *text, size_t len)
{
    if (len != 6 || memcmp(text, "<0x", 3) != 0 || text[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = text[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* True for the types a merge may produce (sentencepiece's "normal" pieces). */
static bool bn_spm_mergeable(int32_t type)
{
    return type == BN_TOKEN_NORMAL || type == BN_TOKEN_USER_DEFINED ||
           type == BN_TOKEN_UNUSED;
}

/* Length of the UTF-8 character at p[0, n), as sentencepiece decodes it (no overlong
 * forms, surrogates or code points past U+10FFFF); 0 when the bytes are not one. */
static size_t bn_spm_utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t need = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (need == 0 || n < need)
        return 0;
    uint32_t cp = c & (0x7f >> need);
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[need] || (cp >= 0xd800 && cp < 0xe000) || cp > 0x10ffff)
        return 0;
    return need;
}

/* The small code of the character p[0, len), or -1. */
static int bn_spm_small_code(const char *p, size_t len)
{
    if (len == 1 && (unsigned char)p[0] < 0x80)
        return (unsigned char)p[0];
    if (len == BN_SPM_SPACE_LEN && memcmp(p, BN_SPM_SPACE, BN_SPM_SPACE_LEN) == 0)
        return 128;
    return -1;
}

/* ------------------------------------------------------------------ encoding */

/* One symbol of the text being merged: bytes [start, start + len) of the normalized
 * text; len 0 once merged into its left neighbour. */
typedef struct bn_spm_symbol {
    uint32_t start, len;
    int32_t  prev, next;        /* neighbours, -1 at the ends */
    bn_token id;                /* its piece once merged; -1 not looked up yet */
    bool     frozen;            /* a user-defined piece: never merged */
} bn_spm_symbol;

/* A candidate merge of symbol `left` and its next. Still valid when popped exactly
 * if the two lengths add up to len: a symbol only grows by taking its next, and is
 * emptied when taken. */
typedef struct bn_spm_pair {
    float    score;
    int32_t  left;
    uint32_t len;               /* of the merged piece */
    bn_token id;                /* the merged piece */
} bn_spm_pair;

/* A 4-ary max-heap of pairs (shallower than a binary one, and the children of a node
 * share a cache line): higher score first, then the leftmost. */
typedef struct bn_spm_heap {
    bn_spm_pair *v;
    size_t       n, cap;
} bn_spm_heap;

static bool bn_spm_before(const bn_spm_pair *a, const bn_spm_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static bn_status bn_spm_heap_push(bn_spm_heap *h, bn_spm_pair pair)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 256;
        bn_spm_pair *grown = bn_malloc(cap * sizeof *grown, "tokenizer");
        if (!grown)
            return bn_error_wrap(BN_OK, "growing the merge queue");
        if (h->n)
            memcpy(grown, h->v, h->n * sizeof *grown);
        bn_free(h->v);
        h->v = grown;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && bn_spm_before(&pair, &h->v[(i - 1) / 4])) {
        h->v[i] = h->v[(i - 1) / 4];
        i = (i - 1) / 4;
    }
    h->v[i] = pair;
    return BN_OK;
}

static bn_spm_pair bn_spm_heap_pop(bn_spm_heap *h)
{
    bn_spm_pair top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t first = 4 * i + 1, child = first;
        if (first >= h->n)
            break;
        for (size_t c = first + 1; c < first + 4 && c < h->n; c++)
            if (bn_spm_before(&h->v[c], &h->v[child]))
                child = c;
        if (!bn_spm_before(&h->v[child], &last))
            break;
        h->v[i] = h->v[child];
        i = child;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

/* Everything one encode call works on. */
typedef struct bn_spm_work {
    const bn_tokenizer *t;
    const bn_spm       *spm;
    char               *norm;       /* the normalized text */
    size_t              norm_len;
    bn_spm_symbol      *sym;
    int32_t             n_sym;
    bn_spm_heap         heap;
    bn_strmap          *split;      /* UNUSED merge result -> length of its left half */
    uint32_t           *stack;      /* (start, len) pairs waiting to be emitted */
    size_t              stack_cap;  /* pairs */
    bool                prev_unk;   /* the last symbol gave the unknown token */
} bn_spm_work;

/* Pushes the merge of symbols left and right when their concatenation is a piece a
 * merge may make. */
static bn_status bn_spm_try_pair(bn_spm_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0 || w->sym[left].frozen || w->sym[right].frozen)
        return BN_OK;
    uint32_t len = w->sym[left].len + w->sym[right].len;
    if (len > w->spm->max_piece_len)
        return BN_OK;
    const char *piece = w->norm + w->sym[left].start;
    bn_token id = bn_strmap_get(w->t->piece_to_id, piece, len, -1);
    if (id < 0 || !bn_spm_mergeable(w->t->vocab[id].type))
        return BN_OK;
    bn_status st = bn_spm_heap_push(&w->heap, (bn_spm_pair){
        .score = w->t->vocab[id].score, .left = left, .len = len, .id = id});
    if (st == BN_OK && w->t->vocab[id].type == BN_TOKEN_UNUSED) {
        /* as sentencepiece: the latest pair that could make this text says how to
         * split it back */
        if (!w->split)
            st = bn_strmap_create(64, &w->split);
        if (st == BN_OK)
            st = bn_strmap_put(w->split, piece, len, (int32_t)w->sym[left].len, NULL);
    }
    return st;
}

/* Writes the normalized text: "▁" for each space, a leading "▁" when asked. */
static bn_status bn_spm_normalize(bn_spm_work *w, const char *text, size_t len,
                                  bool prefix)
{
    size_t spaces = prefix;
    for (size_t i = 0; i < len; i++)
        spaces += text[i] == ' ';
    /* each space grows from 1 to 3 bytes; the prefix adds 3 */
    size_t n = len + 2 * spaces + prefix;
    if (n > INT32_MAX)
        return bn_error_set(BN_ERR_INVALID_ARG, "a text of %zu bytes is too long to "
                            "encode at once (2 GiB at most)", len);
    w->norm = bn_malloc(n + 1, "tokenizer");
    if (!w->norm)
        return bn_error_wrap(BN_OK, "normalizing %zu bytes", len);
    char *o = w->norm;
    if (prefix) {
        memcpy(o, BN_SPM_SPACE, BN_SPM_SPACE_LEN);
        o += BN_SPM_SPACE_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(o, BN_SPM_SPACE, BN_SPM_SPACE_LEN);
            o += BN_SPM_SPACE_LEN;
        } else {
            *o++ = text[i];
        }
    }
    *o = '\0';
    w->norm_len = n;
    return BN_OK;
}

/* Length of the user-defined piece at norm[pos], or 0. */
static uint32_t bn_spm_user_piece(const bn_spm_work *w, size_t pos)
{
    for (size_t i = 0; i < w->spm->n_user_lens; i++) {
        uint32_t len = w->spm->user_lens[i];
        if (len > w->norm_len - pos)
            continue;
        bn_token id = bn_strmap_get(w->t->piece_to_id, w->norm + pos, len, -1);
        if (id >= 0 && w->t->vocab[id].type == BN_TOKEN_USER_DEFINED)
            return len;
    }
    return 0;
}

/* Splits the normalized text into symbols: a user-defined piece, a UTF-8 character,
 * or one byte that starts no valid character. */
static bn_status bn_spm_split(bn_spm_work *w)
{
    w->sym = bn_malloc((w->norm_len + 1) * sizeof *w->sym, "tokenizer");
    if (!w->sym)
        return bn_error_wrap(BN_OK, "splitting %zu bytes into characters", w->norm_len);
    const unsigned char *p = (const unsigned char *)w->norm;
    int32_t n = 0;
    for (size_t pos = 0; pos < w->norm_len; n++) {
        uint32_t len = w->spm->n_user_lens ? bn_spm_user_piece(w, pos) : 0;
        bool frozen = len > 0;
        if (!frozen) {
            len = (uint32_t)bn_spm_utf8_len(p + pos, w->norm_len - pos);
            if (len == 0)
                len = 1;
        }
        w->sym[n] = (bn_spm_symbol){.start = (uint32_t)pos, .len = len, .prev = n - 1,
                                    .next = n + 1, .id = -1, .frozen = frozen};
        pos += len;
    }
    w->n_sym = n;
    return BN_OK;
}

/* True when no merge can join symbols i - 1 and i (before any merge): no piece holds
 * their two characters side by side. The text is cut there and each part merged on
 * its own, which gives the same merges as the whole (merges never cross a cut, and
 * within a part they come in the same order) with a small queue. Not with UNUSED
 * pieces: sentencepiece splits those back by what the whole text queued. */
static bool bn_spm_cut_before(const bn_spm_work *w, int32_t i)
{
    const bn_spm_symbol *l = &w->sym[i - 1], *r = &w->sym[i];
    if (l->frozen || r->frozen)
        return true;
    if (w->spm->has_unused || !w->spm->bigrams)
        return false;
    int a = bn_spm_small_code(w->norm + l->start, l->len);
    int b = a >= 0 ? bn_spm_small_code(w->norm + r->start, r->len) : -1;
    if (b >= 0) {
        int bit = a * BN_SPM_SMALL + b;
        return !(w->spm->small_bigrams[bit / 8] >> (bit % 8) & 1);
    }
    return bn_strmap_get(w->spm->bigrams, w->norm + l->start, l->len + r->len, -1) < 0;
}

/* Merges the pairs of symbols [first, end), best first, until none is left. */
static bn_status bn_spm_merge(bn_spm_work *w, int32_t first, int32_t end)
{
    bn_status st = BN_OK;
    w->heap.n = 0;
    for (int32_t i = first + 1; st == BN_OK && i < end; i++)
        st = bn_spm_try_pair(w, i - 1, i);
    while (st == BN_OK && w->heap.n > 0) {
        bn_spm_pair top = bn_spm_heap_pop(&w->heap);
        bn_spm_symbol *l = &w->sym[top.left];
        if (l->len == 0 || l->next < 0)
            continue;
        bn_spm_symbol *r = &w->sym[l->next];
        if (l->len + r->len != top.len)
            continue;   /* one side has changed since the pair was pushed */
        l->len += r->len;
        l->id = top.id;
        l->next = r->next;
        if (r->next >= 0)
            w->sym[r->next].prev = top.left;
        r->len = 0;
        st = bn_spm_try_pair(w, l->prev, top.left);
        if (st == BN_OK)
            st = bn_spm_try_pair(w, top.left, l->next);
    }
    return st;
}

/* Appends the ids of one final symbol: its piece, or its bytes' tokens, or unk (a run
 * of unknown symbols gives one, as in sentencepiece). */
static bn_status bn_spm_emit(bn_spm_work *w, uint32_t start, uint32_t len, bn_token id,
                             bn_tok_vec *out)
{
    const bn_tokenizer *t = w->t;
    if (id < 0)
        id = bn_strmap_get(t->piece_to_id, w->norm + start, len, -1);
    if (id >= 0 && t->vocab[id].type != BN_TOKEN_UNKNOWN) {
        w->prev_unk = false;
        return bn_tok_vec_push(out, id);
    }
    if (w->spm->byte_fallback) {
        bn_status st = BN_OK;
        for (uint32_t i = 0; st == BN_OK && i < len; i++) {
            bn_token b = w->spm->byte_ids[(unsigned char)w->norm[start + i]];
            st = bn_tok_vec_push(out, b >= 0 ? b : w->spm->unk);
        }
        w->prev_unk = false;
        return st;
    }
    if (w->prev_unk)
        return BN_OK;
    w->prev_unk = true;
    return bn_tok_vec_push(out, w->spm->unk);
}

/* The length of the left half that made an UNUSED piece, or 0 to keep it whole. */
static uint32_t bn_spm_split_of(const bn_spm_work *w, uint32_t start, uint32_t len)
{
    if (!w->split)
        return 0;
    bn_token id = bn_strmap_get(w->t->piece_to_id, w->norm + start, len, -1);
    if (id < 0 || w->t->vocab[id].type != BN_TOKEN_UNUSED)
        return 0;
    int32_t left = bn_strmap_get(w->split, w->norm + start, len, -1);
    return left > 0 && (uint32_t)left < len ? (uint32_t)left : 0;
}

/* Appends the ids of the symbols left after merging, from symbol `first` on, splitting
 * UNUSED pieces back into the halves that made them (an explicit stack: a piece can
 * be long). */
static bn_status bn_spm_output(bn_spm_work *w, int32_t first, bn_tok_vec *out)
{
    bn_status st = BN_OK;
    for (int32_t i = first; st == BN_OK && i >= 0; i = w->sym[i].next) {
        uint32_t start = w->sym[i].start, len = w->sym[i].len;
        bn_token id = w->sym[i].id;   /* known for a merged symbol */
        size_t depth = 0;
        for (;;) {
            uint32_t left = bn_spm_split_of(w, start, len);
            if (left > 0) {
                if (depth == w->stack_cap) {
                    size_t cap = depth ? 2 * depth : 32;
                    uint32_t *grown = bn_malloc(cap * 2 * sizeof *grown, "tokenizer");
                    if (!grown)
                        return bn_error_wrap(BN_OK, "splitting unused pieces");
                    if (depth)
                        memcpy(grown, w->stack, depth * 2 * sizeof *grown);
                    bn_free(w->stack);
                    w->stack = grown;
                    w->stack_cap = cap;
                }
                /* the right half waits; the left half goes on at once */
                w->stack[2 * depth] = start + left;
                w->stack[2 * depth + 1] = len - left;
                depth++;
                len = left;
                id = -1;
                continue;
            }
            st = bn_spm_emit(w, start, len, id, out);
            if (st != BN_OK || depth == 0)
                break;
            id = -1;
            depth--;
            start = w->stack[2 * depth];
            len = w->stack[2 * depth + 1];
        }
    }
    return st;
}

/* The family's encode: see the comment at the top. */
static bn_status bn_spm_encode(const bn_tokenizer *t, const char *text, size_t len,
                               bool at_start, bn_tok_vec *out)
{
    if (len == 0)
        return BN_OK;
    bn_spm_work w = {.t = t, .spm = t->impl};
    bn_status st = bn_spm_normalize(&w, text, len, at_start && t->add_space_prefix);
    if (st == BN_OK)
        st = bn_spm_split(&w);
    /* part by part: [first, end) between two cuts */
    for (int32_t first = 0, end; st == BN_OK && first < w.n_sym; first = end) {
        end = first + 1;
        while (end < w.n_sym && !bn_spm_cut_before(&w, end))
            end++;
        w.sym[first].prev = -1;
        w.sym[end - 1].next = -1;
        st = bn_spm_merge(&w, first, end);
        if (st == BN_OK)
            st = bn_spm_output(&w, first, out);
    }
    bn_free(w.norm);
    bn_free(w.sym);
    bn_free(w.heap.v);
    bn_free(w.stack);
    bn_strmap_free(w.split);
    return st;
}

/* ------------------------------------------------------------------ decoding */

/* The bytes of a token: "▁" as a space, <0xNN> as that byte, else its text. */
static bn_status bn_spm_piece_bytes(const bn_tokenizer *t, bn_token id, bn_bytes *out)
{
    if (id < 0 || id >= t->n_vocab)
        return bn_error_set(BN_ERR_INVALID_ARG, "token id %d is outside the vocabulary of "
                            "%d", id, t->n_vocab);
    const bn_tok_entry *e = &t->vocab[id];
    if (e->type == BN_TOKEN_BYTE) {
        int b = bn_spm_byte_of(e->text, e->len);
        if (b >= 0) {
            unsigned char c = (unsigned char)b;
            return bn_bytes_append(out, &c, 1);
        }
    }
    size_t run = 0;
    for (size_t i = 0; i + BN_SPM_SPACE_LEN <= e->len;) {
        if (memcmp(e->text + i, BN_SPM_SPACE, BN_SPM_SPACE_LEN) != 0) {
            i++;
            continue;
        }
        bn_status st = bn_bytes_append(out, e->text + run, i - run);
        if (st == BN_OK)
            st = bn_bytes_append(out, " ", 1);
        if (st != BN_OK)
            return st;
        i += BN_SPM_SPACE_LEN;
        run = i;
    }
    return bn_bytes_append(out, e->text + run, e->len - run);
}

/* ------------------------------------------------------------------ setup */

static void bn_spm_free_impl(void *impl)
{
    bn_spm *spm = impl;
    if (!spm)
        return;
    bn_free(spm->user_lens);
    bn_strmap_free(spm->bigrams);
    bn_free(spm);
}

static const bn_tok_ops bn_spm_ops = {
    .encode = bn_spm_encode,
    .piece_bytes = bn_spm_piece_bytes,
    .drops_space_prefix = true,
    .free_impl = bn_spm_free_impl,
};

/* Fills the distinct lengths of the user-defined pieces, longest first. */
static bn_status bn_spm_user_lengths(const bn_tokenizer *t, bn_spm *spm)
{
    size_t n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        n += t->vocab[i].type == BN_TOKEN_USER_DEFINED && t->vocab[i].len > 0;
    if (n == 0)
        return BN_OK;
    spm->user_lens = bn_malloc(n * sizeof *spm->user_lens, "tokenizer");
    if (!spm->user_lens)
        return bn_error_wrap(BN_OK, "listing user-defined pieces");
    for (int32_t i = 0; i < t->n_vocab; i++) {
        uint32_t len = t->vocab[i].len;
        if (t->vocab[i].type != BN_TOKEN_USER_DEFINED || len == 0)
            continue;
        size_t at = 0;   /* insertion into the sorted, distinct list */
        while (at < spm->n_user_lens && spm->user_lens[at] > len)
            at++;
        if (at < spm->n_user_lens && spm->user_lens[at] == len)
            continue;
        memmove(spm->user_lens + at + 1, spm->user_lens + at,
                (spm->n_user_lens - at) * sizeof *spm->user_lens);
        spm->user_lens[at] = len;
        spm->n_user_lens++;
    }
    return BN_OK;
}

/* Fills the set of adjacent character pairs inside mergeable pieces (split as the
 * encoder splits text). Not needed when UNUSED pieces turn cutting off. */
static bn_status bn_spm_bigrams(const bn_tokenizer *t, bn_spm *spm)
{
    if (spm->has_unused)
        return BN_OK;
    bn_status st = bn_strmap_create(4096, &spm->bigrams);
    for (int32_t i = 0; st == BN_OK && i < t->n_vocab; i++) {
        const bn_tok_entry *e = &t->vocab[i];
        if (!bn_spm_mergeable(e->type))
            continue;
        const unsigned char *p = (const unsigned char *)e->text;
        size_t prev = 0, prev_len = 0;
        for (size_t pos = 0; st == BN_OK && pos < e->len;) {
            size_t len = bn_spm_utf8_len(p + pos, e->len - pos);
            if (len == 0)
                len = 1;
            int a = prev_len ? bn_spm_small_code(e->text + prev, prev_len) : -1;
            int b = a >= 0 ? bn_spm_small_code(e->text + pos, len) : -1;
            if (b >= 0)
                spm->small_bigrams[(a * BN_SPM_SMALL + b) / 8] |=
                    (uint8_t)(1u << ((a * BN_SPM_SMALL + b) % 8));
            else if (prev_len)
                st = bn_strmap_put(spm->bigrams, e->text + prev, prev_len + len, 1, NULL);
            prev = pos;
            prev_len = len;
            pos += len;
        }
    }
    return st;
}

bn_status bn_tok_spm_init(bn_tokenizer *t)
{
    bn_spm *spm = bn_calloc(1, sizeof *spm, "tokenizer");
    if (!spm)
        return bn_error_wrap(BN_OK, "setting up SentencePiece BPE");
    for (int i = 0; i < 256; i++)
        spm->byte_ids[i] = -1;
    spm->unk = t->unk >= 0 && t->unk < t->n_vocab ? t->unk : -1;
    int n_bytes = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const bn_tok_entry *e = &t->vocab[i];
        if (e->type == BN_TOKEN_BYTE) {
            int b = bn_spm_byte_of(e->text, e->len);
            if (b >= 0 && spm->byte_ids[b] < 0) {
                spm->byte_ids[b] = i;
                n_bytes++;
            }
        } else if (e->type == BN_TOKEN_UNKNOWN && spm->unk < 0) {
            spm->unk = i;
        } else if (bn_spm_mergeable(e->type) && e->len > spm->max_piece_len) {
            spm->max_piece_len = e->len;
        }
        spm->has_unused |= e->type == BN_TOKEN_UNUSED;
    }
    spm->byte_fallback = n_bytes > 0;
    bn_status st = bn_spm_user_lengths(t, spm);
    if (st == BN_OK)
        st = bn_spm_bigrams(t, spm);
    if (st == BN_OK && spm->unk < 0 && n_bytes < 256)
        st = bn_error_set(BN_ERR_FORMAT, "a SentencePiece vocabulary needs an unknown token "
                          "or all 256 byte tokens (it has %d byte tokens and no unknown "
                          "token)", n_bytes);
    if (st != BN_OK) {
        bn_spm_free_impl(spm);
        return st;
    }
    t->impl = spm;
    t->ops = &bn_spm_ops;
    return BN_OK;
}
