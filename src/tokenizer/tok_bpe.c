/*
 * tok_bpe.c - byte-level BPE, the tokenizer family of GPT-2 and LLaMA 3 (and so of
 * bitnet-b1.58-2B-4T). tok_bpe_hf.c loads it from Hugging Face tokenizer.json files.
 *
 * Encoding a run of plain text (tokenizer.c has already cut out the special tokens):
 *   1. a pre-tokenizer regex (PCRE2, Unicode properties) splits it into pre-tokens;
 *      each run of invalid UTF-8 bytes forms a pre-token of its own, so every byte
 *      lands in exactly one;
 *   2. each pre-token's bytes are spelled in the byte-level alphabet (GPT-2's table:
 *      printable bytes stand for themselves, the others for U+0100 upward);
 *   3. with ignore_merges (LLaMA 3) a pre-token that is a whole vocabulary entry is
 *      emitted as is; otherwise BPE starts from one symbol per byte and repeatedly
 *      merges the adjacent pair of lowest rank (leftmost on ties), through a binary heap
 *      of candidate pairs, so a pre-token of n bytes costs O(n log n).
 * The merge table is keyed on (left id, right id), so no strings are built while
 * encoding. All state is read-only after init; the scratch memory belongs to one call,
 * so one tokenizer can encode on several threads at once.
 *
 * The result is the same as Hugging Face tokenizers' BPE model with a ByteLevel
 * pre-tokenizer (tests/test_tok_bpe.c checks it on cases that HF encoded).
 */
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer_internal.h"

/* The pre-tokenizer patterns of LLaMA 3 and GPT-2 (tok_bpe_hf.c has them as Hugging
 * Face spells them), with the character classes that Hugging Face's regex engine
 * (Oniguruma, Unicode 16 tables) gives \s, \p{L} and \p{N}, so that every code
 * point splits alike (checked over all of them against tokenizers 0.22.2):
 * - white space is Unicode's White_Space: PCRE2's \s also takes U+180E MONGOLIAN VOWEL
 *   SEPARATOR, which Oniguruma does not;
 * - the letters and digits assigned in Unicode 15 and 16 (scripts such as Kawi, Garay,
 *   Todhri, CJK extensions H and I) are listed after \p{L} and \p{N}, for PCRE2
 *   builds whose tables are older (10.42 has Unicode 14); with newer tables the ranges
 *   are already inside the properties and change nothing. */
#define BN_BPE_WS "\\x{09}-\\x{0d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}" \
    "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define BN_BPE_L "\\p{L}" \
    "\\x{1c89}-\\x{1c8a}\\x{a7cb}-\\x{a7cd}\\x{a7da}-\\x{a7dc}" \
    "\\x{105c0}-\\x{105f3}\\x{10d4a}-\\x{10d65}\\x{10d6f}-\\x{10d85}" \
    "\\x{10ec2}-\\x{10ec4}\\x{1123f}-\\x{11240}\\x{11380}-\\x{11389}" \
    "\\x{1138b}\\x{1138e}\\x{11390}-\\x{113b5}\\x{113b7}\\x{113d1}\\x{113d3}" \
    "\\x{11bc0}-\\x{11be0}\\x{11f02}\\x{11f04}-\\x{11f10}" \
    "\\x{11f12}-\\x{11f33}\\x{1342f}\\x{13441}-\\x{13446}" \
    "\\x{13460}-\\x{143fa}\\x{16100}-\\x{1611d}\\x{16d40}-\\x{16d6c}" \
    "\\x{18cff}\\x{1b132}\\x{1b155}\\x{1df25}-\\x{1df2a}\\x{1e030}-\\x{1e06d}" \
    "\\x{1e4d0}-\\x{1e4eb}\\x{1e5d0}-\\x{1e5ed}\\x{1e5f0}\\x{2b739}" \
    "\\x{2ebf0}-\\x{2ee5d}\\x{31350}-\\x{323af}"
#define BN_BPE_N "\\p{N}" \
    "\\x{10d40}-\\x{10d49}\\x{116d0}-\\x{116e3}\\x{11bf0}-\\x{11bf9}" \
    "\\x{11f50}-\\x{11f59}\\x{16130}-\\x{16139}\\x{16d70}-\\x{16d79}" \
    "\\x{1ccf0}-\\x{1ccf9}\\x{1d2c0}-\\x{1d2d3}\\x{1e4f0}-\\x{1e4f9}" \
    "\\x{1e5f1}-\\x{1e5fa}"

static const char bn_bpe_re_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    "|[^\\r\\n" BN_BPE_L BN_BPE_N "]?[" BN_BPE_L "]+"
    "|[" BN_BPE_N "]{1,3}"
    "| ?[^" BN_BPE_WS BN_BPE_L BN_BPE_N "]+[\\r\\n]*"
    "|[" BN_BPE_WS "]*[\\r\\n]+"
    "|[" BN_BPE_WS "]+(?![^" BN_BPE_WS "])"
    "|[" BN_BPE_WS "]+";
/* GPT-2's: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static const char bn_bpe_re_gpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d"
    "| ?[" BN_BPE_L "]+"
    "| ?[" BN_BPE_N "]+"
    "| ?[^" BN_BPE_WS BN_BPE_L BN_BPE_N "]+"
    "|[" BN_BPE_WS "]+(?![^" BN_BPE_WS "])"
    "|[" BN_BPE_WS "]+";

/* The byte-level alphabet reaches U+0143: 188 printable bytes plus 68 others. */
#define BN_BPE_ALPHABET_END 0x144

/* One merge: the pair (left id, right id) becomes `merged` at priority `rank`. */
typedef struct bn_bpe_pair {
    uint64_t key;       /* left << 32 | right; BN_BPE_NO_KEY for an empty slot */
    int32_t  rank;
    int32_t  merged;
} bn_bpe_pair;

#define BN_BPE_NO_KEY UINT64_MAX

typedef struct bn_bpe {
    pcre2_general_context *gctx;       /* PCRE2 allocates through bn_malloc */
    pcre2_code            *re;
    const char            *pre;        /* "llama3" or "gpt2" */
    bool                   ignore_merges;
    bn_bpe_pair           *pairs;      /* open addressing, n_slots a power of two */
    size_t                 n_slots;
    size_t                 n_pairs;
    uint16_t               byte_to_cp[256];               /* byte -> code point */
    int16_t                cp_to_byte[BN_BPE_ALPHABET_END]; /* inverse; -1: none */
    bn_token               byte_id[256];  /* token of each one-byte symbol; -1: none */
} bn_bpe;

/* Scratch memory of one encode call, grown to the longest pre-token seen. */
typedef struct bn_bpe_work {
    char     *spelled;    /* the pre-token in the byte-level alphabet: 2 bytes a byte */
    bn_token *sym;        /* current symbol of each position (symbol starts only) */
    int32_t  *prev, *next;  /* neighbouring symbol starts; -1 at the ends */
    uint64_t *heap;       /* candidate merges: rank << 32 | position, a min-heap */
    size_t    cap;        /* bytes the arrays above are sized for */
    size_t    n_heap;
} bn_bpe_work;

/* ------------------------------------------------------------------ byte table */

/* GPT-2's table: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves; the
 * other 68 get U+0100, U+0101, ... in byte order. */
static void bn_bpe_byte_table(bn_bpe *bpe)
{
    int next_cp = 256;
    for (int i = 0; i < BN_BPE_ALPHABET_END; i++)
        bpe->cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        int cp = printable ? b : next_cp++;
        bpe->byte_to_cp[b] = (uint16_t)cp;
        bpe->cp_to_byte[cp] = (int16_t)b;
    }
}

/* Writes the byte-level spelling of bytes[0, n) to out (room for 2n bytes); returns
 * its length. Every code point of the alphabet is below U+0800: one or two bytes. */
static size_t bn_bpe_spell(const bn_bpe *bpe, const unsigned char *bytes, size_t n,
                           char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned cp = bpe->byte_to_cp[bytes[i]];
        if (cp < 0x80) {
            out[k++] = (char)cp;
        } else {
            out[k++] = (char)(0xc0 | (cp >> 6));
            out[k++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    return k;
}

/* ------------------------------------------------------------------ merge table */

static inline size_t bn_bpe_slot_of(uint64_t key, size_t n_slots)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & (n_slots - 1);
}

/* The merge of (left, right), or NULL. */
static inline const bn_bpe_pair *bn_bpe_find(const bn_bpe *bpe, bn_token left,
                                             bn_token right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = bn_bpe_slot_of(key, bpe->n_slots);; i = (i + 1) & (bpe->n_slots - 1)) {
        const bn_bpe_pair *p = &bpe->pairs[i];
        if (p->key == key)
            return p;
        if (p->key == BN_BPE_NO_KEY)
            return NULL;
    }
}

/* Adds a merge; a pair listed twice keeps the later rank, as Hugging Face does. */
static void bn_bpe_add_pair(bn_bpe *bpe, bn_token left, bn_token right, int32_t rank,
                            bn_token merged)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = bn_bpe_slot_of(key, bpe->n_slots);
    while (bpe->pairs[i].key != BN_BPE_NO_KEY && bpe->pairs[i].key != key)
        i = (i + 1) & (bpe->n_slots - 1);
    if (bpe->pairs[i].key == BN_BPE_NO_KEY)
        bpe->n_pairs++;
    bpe->pairs[i] = (bn_bpe_pair){.key = key, .rank = rank, .merged = merged};
}

/* Reads the merges ("left right", in rank order) into the pair table. A merge whose
 * parts or result are not vocabulary entries can never apply: it is skipped and
 * counted (Hugging Face refuses such a file; llama.cpp ignores them). */
static bn_status bn_bpe_read_merges(bn_bpe *bpe, const bn_tokenizer *t,
                                    const char *const *merges, const uint32_t *merge_lens,
                                    size_t n_merges)
{
    if (n_merges > (size_t)INT32_MAX)
        return bn_error_set(BN_ERR_FORMAT, "%zu merges are too many", n_merges);
    size_t n_slots = 16;
    while (n_slots < 2 * n_merges)
        n_slots *= 2;
    bpe->pairs = bn_malloc(n_slots * sizeof *bpe->pairs, "tokenizer");
    if (!bpe->pairs)
        return bn_error_wrap(BN_OK, "a table of %zu merges", n_merges);
    for (size_t i = 0; i < n_slots; i++)
        bpe->pairs[i].key = BN_BPE_NO_KEY;
    bpe->n_slots = n_slots;

    char *joined = NULL;   /* left + right, for the lookup of the result */
    size_t joined_cap = 0, n_skipped = 0, first_skipped = 0;
    bn_status st = BN_OK;
    for (size_t r = 0; r < n_merges && st == BN_OK; r++) {
        const char *m = merges[r];
        size_t len = merge_lens ? merge_lens[r] : strlen(m);
        const char *space = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
        if (!space || space == m + len - 1) {
            st = bn_error_set(BN_ERR_FORMAT, "merge %zu (\"%.*s\") is not two tokens "
                              "separated by a space", r, (int)(len > 64 ? 64 : len), m);
            break;
        }
        size_t llen = (size_t)(space - m), rlen = len - llen - 1;
        if (len > joined_cap) {
            bn_free(joined);
            joined_cap = len < 256 ? 256 : 2 * len;
            if (!(joined = bn_malloc(joined_cap, "tokenizer"))) {
                st = bn_error_wrap(BN_OK, "reading merge %zu", r);
                break;
            }
        }
        memcpy(joined, m, llen);
        memcpy(joined + llen, space + 1, rlen);
        bn_token left = bn_strmap_get(t->piece_to_id, m, llen, -1);
        bn_token right = bn_strmap_get(t->piece_to_id, space + 1, rlen, -1);
        bn_token merged = bn_strmap_get(t->piece_to_id, joined, llen + rlen, -1);
        if (left < 0 || right < 0 || merged < 0) {
            if (n_skipped++ == 0)
                first_skipped = r;
            continue;
        }
        bn_bpe_add_pair(bpe, left, right, (int32_t)r, merged);
    }
    bn_free(joined);
    size_t first_len = !n_skipped ? 0 : merge_lens ? merge_lens[first_skipped]
                                                   : strlen(merges[first_skipped]);
    if (st == BN_OK && n_skipped)
        bn_log(BN_LOG_WARN, "tokenizer: %zu of %zu merges name tokens that are not in the "
               "vocabulary (the first is %zu: \"%.*s\"); they are ignored", n_skipped,
               n_merges, first_skipped, (int)(first_len > 64 ? 64 : first_len),
               merges[first_skipped]);
    return st;
}

/* ------------------------------------------------------------------ BPE of one word */

static void bn_bpe_heap_push(bn_bpe_work *w, uint64_t v)
{
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (w->heap[parent] <= v)
            break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = v;
}

static uint64_t bn_bpe_heap_pop(bn_bpe_work *w)
{
    uint64_t top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && w->heap[child + 1] < w->heap[child])
            child++;
        if (last <= w->heap[child])
            break;
        w->heap[i] = w->heap[child];
        i = child;
    }
    if (n)
        w->heap[i] = last;
    return top;
}

/* Queues the merge of the symbols starting at positions a and b, if there is one. */
static void bn_bpe_queue(const bn_bpe *bpe, bn_bpe_work *w, int32_t a, int32_t b)
{
    const bn_bpe_pair *p = bn_bpe_find(bpe, w->sym[a], w->sym[b]);
    if (p)
        bn_bpe_heap_push(w, (uint64_t)(uint32_t)p->rank << 32 | (uint32_t)a);
}

/* Makes the scratch arrays hold a pre-token of n bytes. */
static bn_status bn_bpe_work_reserve(bn_bpe_work *w, size_t n)
{
    if (n <= w->cap)
        return BN_OK;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n)
        cap *= 2;
    if (cap > (size_t)INT32_MAX / 4)
        return bn_error_set(BN_ERR_INVALID_ARG, "a pre-token of %zu bytes is too long", n);
    bn_free(w->spelled);
    bn_free(w->sym);
    bn_free(w->prev);
    bn_free(w->next);
    bn_free(w->heap);
    w->spelled = bn_malloc(2 * cap, "tokenizer");
    w->sym = bn_malloc(cap * sizeof *w->sym, "tokenizer");
    w->prev = bn_malloc(cap * sizeof *w->prev, "tokenizer");
    w->next = bn_malloc(cap * sizeof *w->next, "tokenizer");
    w->heap = bn_malloc(3 * cap * sizeof *w->heap, "tokenizer");
    w->cap = cap;
    if (!w->spelled || !w->sym || !w->prev || !w->next || !w->heap) {
        w->cap = 0;
        return bn_error_wrap(BN_OK, "scratch memory for a pre-token of %zu bytes", n);
    }
    return BN_OK;
}

static void bn_bpe_work_free(bn_bpe_work *w)
{
    bn_free(w->spelled);
    bn_free(w->sym);
    bn_free(w->prev);
    bn_free(w->next);
    bn_free(w->heap);
}

/* Encodes one pre-token of n >= 1 bytes, appending its ids. */
static bn_status bn_bpe_word(const bn_tokenizer *t, bn_bpe_work *w,
                             const unsigned char *bytes, size_t n, bn_tok_vec *out)
{
    const bn_bpe *bpe = t->impl;
    bn_status st = bn_bpe_work_reserve(w, n);
    if (st != BN_OK)
        return st;
    if (bpe->ignore_merges && n > 1) {
        size_t len = bn_bpe_spell(bpe, bytes, n, w->spelled);
        bn_token id = bn_strmap_get(t->piece_to_id, w->spelled, len, -1);
        if (id >= 0 && t->vocab[id].type != BN_TOKEN_CONTROL &&
            t->vocab[id].type != BN_TOKEN_USER_DEFINED && t->vocab[id].type != BN_TOKEN_UNUSED)
            return bn_tok_vec_push(out, id);
    }
    /* one symbol per byte */
    for (size_t i = 0; i < n; i++) {
        bn_token id = bpe->byte_id[bytes[i]];
        if (id < 0) {
            char spelled[3];
            size_t len = bn_bpe_spell(bpe, &bytes[i], 1, spelled);
            return bn_error_set(BN_ERR_FORMAT, "byte 0x%02x (\"%.*s\" in the byte-level "
                                "alphabet) is not in the vocabulary", bytes[i], (int)len,
                                spelled);
        }
        w->sym[i] = id;
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        bn_bpe_queue(bpe, w, (int32_t)i, (int32_t)i + 1);
    /* merge the lowest-ranked pair (leftmost on ties) until none is left; entries made
     * stale by earlier merges are recognised and dropped */
    while (w->n_heap > 0) {
        uint64_t top = bn_bpe_heap_pop(w);
        int32_t a = (int32_t)(uint32_t)top, rank = (int32_t)(top >> 32);
        int32_t b = w->next[a];
        if (w->sym[a] < 0 || b < 0)
            continue;                                   /* a was absorbed, or is last */
        const bn_bpe_pair *p = bn_bpe_find(bpe, w->sym[a], w->sym[b]);
        if (!p || p->rank != rank)
            continue;                                   /* the pair changed since */
        w->sym[a] = p->merged;
        w->sym[b] = -1;
        w->next[a] = w->next[b];
        if (w->next[a] >= 0)
            w->prev[w->next[a]] = a;
        if (w->prev[a] >= 0)
            bn_bpe_queue(bpe, w, w->prev[a], a);
        if (w->next[a] >= 0)
            bn_bpe_queue(bpe, w, a, w->next[a]);
    }
    for (int32_t i = 0; i >= 0 && st == BN_OK; i = w->next[i])
        st = bn_tok_vec_push(out, w->sym[i]);
    return st;
}

/* ------------------------------------------------------------------ family ops */

/* Length of the UTF-8 character at p[0, n), or 0 when the bytes there are not a valid
 * one (RFC 3629: no overlong forms, surrogates or code points above U+10FFFF), which
 * is exactly what PCRE2 accepts. */
static size_t bn_utf8_char_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    if (c < 0xc2)
        return 0;
    if (c < 0xe0)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c < 0xf0) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
            (c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
            return 0;
        return 3;
    }
    if (c < 0xf5) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
            (p[3] & 0xc0) != 0x80 || (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/* Splits a run of valid UTF-8 with the pre-tokenizer regex and hands each piece to fn
 * (a gap between matches, which these patterns never leave, is a piece too). */
static bn_status bn_bpe_split(const pcre2_code *re, pcre2_match_data *md,
                              const unsigned char *text, size_t len, bn_pretok_fn fn,
                              void *user)
{
    bn_status st = BN_OK;
    size_t done = 0;     /* bytes handed to BPE so far */
    size_t search = 0;   /* where the next match may start (a character boundary) */
    while (done < len && st == BN_OK) {
        size_t start = len, end = len;
        int rc = search < len ? pcre2_match(re, text, len, search, PCRE2_NO_UTF_CHECK,
                                            md, NULL)
                              : PCRE2_ERROR_NOMATCH;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)   /* the interpreter keeps its stack on the heap */
            rc = pcre2_match(re, text, len, search, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                             md, NULL);
        if (rc >= 0) {
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            start = ov[0];
            end = ov[1];
        } else if (rc != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return bn_error_set(rc == PCRE2_ERROR_NOMEMORY ? BN_ERR_OOM : BN_ERR_INTERNAL,
                                "pre-tokenizer regex at byte %zu: %s", search,
                                (const char *)msg);
        }
        if (end == start && start < len) {   /* an empty match: one character further */
            search = start + bn_utf8_char_len(text + start, len - start);
            continue;
        }
        if (start > done)
            st = fn(user, text + done, start - done);
        if (st == BN_OK && end > start)
            st = fn(user, text + start, end - start);
        done = search = end;
    }
    return st;
}

/* Splits text into pre-tokens: runs of valid UTF-8 go through the regex; each run of
 * invalid bytes is a pre-token of its own (byte-level BPE encodes any bytes). Matching
 * each valid run as a whole subject is what matching the whole text with
 * PCRE2_MATCH_INVALID_UTF would do (no match crosses an invalid byte, and a lookahead
 * sees none there), but it lets every match skip PCRE2's UTF check, which without JIT
 * rescans the rest of the text on every call. */
static bn_status bn_bpe_split_text(const pcre2_code *re, pcre2_general_context *gctx,
                                   const char *text, size_t len, bn_pretok_fn fn,
                                   void *user)
{
    const unsigned char *bytes = (const unsigned char *)text;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, gctx);
    if (!md)
        return bn_error_wrap(BN_ERR_OOM, "pre-tokenizer match data");
    bn_status st = BN_OK;
    for (size_t i = 0; i < len && st == BN_OK;) {
        size_t start = i;
        for (size_t k; i < len && (k = bn_utf8_char_len(bytes + i, len - i)) > 0;)
            i += k;                                      /* a run of valid characters */
        if (i > start)
            st = bn_bpe_split(re, md, bytes + start, i - start, fn, user);
        start = i;
        while (i < len && bn_utf8_char_len(bytes + i, len - i) == 0)
            i++;                                         /* a run of invalid bytes */
        if (st == BN_OK && i > start)
            st = fn(user, bytes + start, i - start);
    }
    pcre2_match_data_free(md);
    return st;
}

/* What bn_bpe_encode hands to each pre-token. */
typedef struct bn_bpe_encode_job {
    const bn_tokenizer *t;
    bn_bpe_work        *w;
    bn_tok_vec         *out;
} bn_bpe_encode_job;

static bn_status bn_bpe_encode_piece(void *user, const unsigned char *piece, size_t len)
{
    bn_bpe_encode_job *job = user;
    return bn_bpe_word(job->t, job->w, piece, len, job->out);
}

/* Encodes text: pre-tokens, then BPE on each. */
static bn_status bn_bpe_encode(const bn_tokenizer *t, const char *text, size_t len,
                               bool at_start, bn_tok_vec *out)
{
    (void)at_start;
    const bn_bpe *bpe = t->impl;
    bn_bpe_work w = {0};
    bn_bpe_encode_job job = {.t = t, .w = &w, .out = out};
    bn_status st = bn_bpe_split_text(bpe->re, bpe->gctx, text, len, bn_bpe_encode_piece,
                                     &job);
    bn_bpe_work_free(&w);
    return st;
}

/* The bytes of a token: each character of its text mapped back through the byte
 * table. A text with a character outside the alphabet (an added token) is its own
 * UTF-8 bytes, as Hugging Face's ByteLevel decoder has it. */
static bn_status bn_bpe_piece_bytes(const bn_tokenizer *t, bn_token id, bn_bytes *out)
{
    const bn_bpe *bpe = t->impl;
    const unsigned char *s = (const unsigned char *)t->vocab[id].text;
    size_t len = t->vocab[id].len;
    unsigned char buf[256];
    size_t k = 0;
    size_t before = out->n;
    bn_status st = BN_OK;
    for (size_t i = 0; i < len && st == BN_OK;) {
        unsigned cp = BN_BPE_ALPHABET_END;
        if (s[i] < 0x80) {
            cp = s[i];
            i += 1;
        } else if ((s[i] & 0xe0) == 0xc0 && i + 1 < len && (s[i + 1] & 0xc0) == 0x80) {
            cp = (unsigned)(s[i] & 0x1f) << 6 | (s[i + 1] & 0x3f);
            i += 2;
        }
        int b = cp < BN_BPE_ALPHABET_END ? bpe->cp_to_byte[cp] : -1;
        if (b < 0) {                          /* not the byte-level alphabet: raw text */
            out->n = before;
            if (out->p)
                out->p[before] = '\0';
            return bn_bytes_append(out, s, len);
        }
        buf[k++] = (unsigned char)b;
        if (k == sizeof buf) {
            st = bn_bytes_append(out, buf, k);
            k = 0;
        }
    }
    if (st == BN_OK && k)
        st = bn_bytes_append(out, buf, k);
    return st;
}

static void bn_bpe_free(void *impl)
{
    bn_bpe *bpe = impl;
    if (!bpe)
        return;
    pcre2_code_free(bpe->re);
    pcre2_general_context_free(bpe->gctx);
    bn_free(bpe->pairs);
    bn_free(bpe);
}

/* The pre-tokenizer, ignore_merges and the merges: each (rank, left, right, result)
 * hashed alone and the hashes summed, so the table's layout does not matter. */
static uint64_t bn_bpe_digest(const bn_tokenizer *t, uint64_t h)
{
    const bn_bpe *bpe = t->impl;
    uint64_t merges = 0;
    for (size_t i = 0; i < bpe->n_slots; i++) {
        const bn_bpe_pair *p = &bpe->pairs[i];
        if (p->key == BN_BPE_NO_KEY)
            continue;
        uint64_t m = bn_fnv_u32(BN_FNV_START, (uint32_t)p->rank);
        m = bn_fnv_u64(m, p->key);
        merges += bn_fnv_u32(m, (uint32_t)p->merged);
    }
    h = bn_fnv_bytes(h, bpe->pre, strlen(bpe->pre));
    h = bn_fnv_u32(h, bpe->ignore_merges);
    h = bn_fnv_u32(h, (uint32_t)bpe->n_pairs);
    return bn_fnv_u64(h, merges);
}

static const bn_tok_ops bn_bpe_ops = {
    .encode = bn_bpe_encode,
    .piece_bytes = bn_bpe_piece_bytes,
    .digest = bn_bpe_digest,
    .free_impl = bn_bpe_free,
};

/* ------------------------------------------------------------------ init */

static void *bn_bpe_pcre_malloc(PCRE2_SIZE size, void *data)
{
    (void)data;
    return bn_malloc(size, "tokenizer regex");
}

static void bn_bpe_pcre_free(void *ptr, void *data)
{
    (void)data;
    bn_free(ptr);
}

/* The pattern of a pre-tokenizer name, or NULL. */
static const char *bn_bpe_pattern(const char *pre)
{
    if (!pre || strcmp(pre, "llama3") == 0 || strcmp(pre, "llama-bpe") == 0)
        return bn_bpe_re_llama3;
    if (strcmp(pre, "gpt2") == 0)
        return bn_bpe_re_gpt2;
    return NULL;
}

/* Compiles the pre-tokenizer regex: UTF-8 with Unicode properties (subjects are
 * valid runs, checked by bn_bpe_encode), JIT-compiled when PCRE2 can. */
static bn_status bn_bpe_compile(const char *pattern, pcre2_general_context **gctx,
                                pcre2_code **re)
{
    *gctx = pcre2_general_context_create(bn_bpe_pcre_malloc, bn_bpe_pcre_free, NULL);
    pcre2_compile_context *cctx = *gctx ? pcre2_compile_context_create(*gctx) : NULL;
    if (!cctx)
        return bn_error_wrap(BN_ERR_OOM, "compiling the pre-tokenizer regex");
    int err = 0;
    PCRE2_SIZE err_at = 0;
    *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP, &err, &err_at, cctx);
    pcre2_compile_context_free(cctx);
    if (!*re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        bool oom = err == PCRE2_ERROR_NOMEMORY || err == PCRE2_ERROR_HEAP_FAILED;
        return bn_error_set(oom ? BN_ERR_OOM : BN_ERR_INTERNAL,
                            "compiling the pre-tokenizer regex at %zu: %s", (size_t)err_at,
                            (const char *)msg);
    }
    /* without JIT (a build or machine without it) pcre2_match interprets: slower, same */
    (void)pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE);
    return BN_OK;
}

/* Copies the merges and the pre-tokenizer's name into the arena, so that the tokenizer
 * can be written to a GGUF file (bn_tok_write_gguf) as it was read. */
static bn_status bn_bpe_keep_merges(bn_tokenizer *t, const char *const *merges,
                                    const uint32_t *merge_lens, size_t n_merges,
                                    const char *pre)
{
    t->merges = bn_arena_alloc(t->arena, (n_merges + 1) * sizeof *t->merges,
                               sizeof(void *));
    t->pre = bn_arena_strdup(t->arena, pre ? pre : "llama3");
    if (!t->merges || !t->pre)
        return bn_error_wrap(BN_OK, "keeping %zu merges", n_merges);
    for (size_t i = 0; i < n_merges; i++) {
        const size_t len = merge_lens ? merge_lens[i] : strlen(merges[i]);
        char *m = bn_arena_alloc(t->arena, len + 1, 1);
        if (!m)
            return bn_error_wrap(BN_OK, "keeping %zu merges", n_merges);
        memcpy(m, merges[i], len);
        m[len] = '\0';
        t->merges[i] = m;
    }
    t->n_merges = n_merges;
    return BN_OK;
}

bn_status bn_tok_bpe_init(bn_tokenizer *t, const char *const *merges,
                          const uint32_t *merge_lens, size_t n_merges, const char *pre,
                          bool ignore_merges)
{
    const char *pattern = bn_bpe_pattern(pre);
    if (!pattern)
        return bn_error_set(BN_ERR_UNSUPPORTED, "BPE pre-tokenizer '%s' is not supported "
                            "(llama3, llama-bpe and gpt2 are)", pre);
    bn_bpe *bpe = bn_calloc(1, sizeof *bpe, "tokenizer");
    if (!bpe)
        return bn_error_wrap(BN_OK, "creating the BPE tokenizer");
    bpe->ignore_merges = ignore_merges;
    bpe->pre = pattern == bn_bpe_re_gpt2 ? "gpt2" : "llama3";
    bn_bpe_byte_table(bpe);
    for (int b = 0; b < 256; b++) {
        unsigned char byte = (unsigned char)b;
        char spelled[3];
        size_t len = bn_bpe_spell(bpe, &byte, 1, spelled);
        bpe->byte_id[b] = bn_strmap_get(t->piece_to_id, spelled, len, -1);
    }
    bn_status st = bn_bpe_read_merges(bpe, t, merges, merge_lens, n_merges);
    if (st == BN_OK)
        st = bn_bpe_compile(pattern, &bpe->gctx, &bpe->re);
    if (st != BN_OK) {
        bn_bpe_free(bpe);
        return bn_error_wrap(BN_OK, "initialising BPE");
    }
    t->impl = bpe;
    t->ops = &bn_bpe_ops;
    return bn_bpe_keep_merges(t, merges, merge_lens, n_merges, pre);
}

/* ------------------------------------------------------------------ the pre-tokenizer alone */

struct bn_pretok {
    pcre2_general_context *gctx;
    pcre2_code            *re;
};

bn_status bn_pretok_create(const char *pre, bn_pretok **out)
{
    const char *pattern = bn_bpe_pattern(pre);
    if (!pattern)
        return bn_error_set(BN_ERR_UNSUPPORTED, "BPE pre-tokenizer '%s' is not supported "
                            "(llama3, llama-bpe and gpt2 are)", pre);
    bn_pretok *p = bn_calloc(1, sizeof *p, "tokenizer");
    if (!p)
        return bn_error_wrap(BN_OK, "creating the pre-tokenizer");
    bn_status st = bn_bpe_compile(pattern, &p->gctx, &p->re);
    if (st != BN_OK) {
        bn_pretok_free(p);
        return st;
    }
    *out = p;
    return BN_OK;
}

bn_status bn_pretok_split(const bn_pretok *p, const char *text, size_t len,
                          bn_pretok_fn fn, void *user)
{
    return bn_bpe_split_text(p->re, p->gctx, text, len, fn, user);
}

void bn_pretok_free(bn_pretok *p)
{
    if (!p)
        return;
    pcre2_code_free(p->re);
    pcre2_general_context_free(p->gctx);
    bn_free(p);
}

void bn_bpe_byte_alphabet(uint16_t byte_to_cp[256])
{
    bn_bpe bpe;
    bn_bpe_byte_table(&bpe);
    memcpy(byte_to_cp, bpe.byte_to_cp, sizeof bpe.byte_to_cp);
}
