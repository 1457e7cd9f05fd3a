/*
 * tokenizer.c - what both tokenizer families share: the vocabulary, special tokens,
 * encoding around special tokens, and decoding (whole and streaming, holding back
 * incomplete UTF-8). The families (tok_bpe.c, tok_spm.c) turn plain text into ids and
 * ids back into bytes; the loaders (load_gguf.c, load_file.c) build a tokenizer from
 * a file; chat_template.c renders conversations.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* ------------------------------------------------------------------ buffers */

bn_status bn_tok_vec_push(bn_tok_vec *v, bn_token id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        bn_token *grown = bn_malloc(cap * sizeof *grown, "tokenizer");
        if (!grown)
            return bn_error_wrap(BN_OK, "growing a token list");
        if (v->n)
            memcpy(grown, v->v, v->n * sizeof *grown);
        bn_free(v->v);
        v->v = grown;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return BN_OK;
}

bn_status bn_bytes_append(bn_bytes *b, const void *data, size_t n)
{
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n + 1)
            cap *= 2;
        char *grown = bn_malloc(cap, "tokenizer");
        if (!grown)
            return bn_error_wrap(BN_OK, "growing a text buffer");
        if (b->n)
            memcpy(grown, b->p, b->n);
        bn_free(b->p);
        b->p = grown;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return BN_OK;
}

/* ------------------------------------------------------------------ building */

bn_status bn_tok_create(bn_tokenizer_kind kind, int32_t n_vocab, bn_tokenizer **out)
{
    if (n_vocab <= 0)
        return bn_error_set(BN_ERR_FORMAT, "a tokenizer needs a vocabulary (got %d entries)",
                            n_vocab);
    bn_tokenizer *t = bn_calloc(1, sizeof *t, "tokenizer");
    if (!t)
        return bn_error_wrap(BN_OK, "creating a tokenizer");
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->bos = t->eos = t->eot = t->pad = t->unk = -1;
    bn_status st = bn_arena_create((size_t)1 << 20, "tokenizer", &t->arena);
    if (st == BN_OK && !(t->vocab = bn_calloc((size_t)n_vocab, sizeof *t->vocab, "tokenizer")))
        st = bn_last_status();
    if (st == BN_OK)
        st = bn_strmap_create((size_t)n_vocab, &t->piece_to_id);
    if (st != BN_OK) {
        bn_tokenizer_free(t);
        return bn_error_wrap(BN_OK, "creating a tokenizer of %d tokens", n_vocab);
    }
    *out = t;
    return BN_OK;
}

bn_status bn_tok_set_entry(bn_tokenizer *t, bn_token id, const char *text, size_t len,
                           float score, int32_t type)
{
    if (id < 0 || id >= t->n_vocab)
        return bn_error_set(BN_ERR_FORMAT, "token id %d is outside the vocabulary of %d",
                            id, t->n_vocab);
    char *copy = bn_arena_alloc(t->arena, len + 1, 1);
    if (!copy)
        return bn_error_wrap(BN_OK, "storing token %d", id);
    memcpy(copy, text, len);
    copy[len] = '\0';
    t->vocab[id] = (bn_tok_entry){.text = copy, .len = (uint32_t)len, .score = score,
                                  .type = type};
    if (bn_strmap_get(t->piece_to_id, copy, len, -1) >= 0)
        return BN_OK;   /* a duplicate text: the first id keeps the index */
    return bn_strmap_put(t->piece_to_id, copy, len, id, NULL);
}

static const bn_tokenizer *bn_sort_ctx;

/* Longer special texts first, so that the longest match wins. */
static int bn_cmp_special(const void *a, const void *b)
{
    uint32_t la = bn_sort_ctx->vocab[*(const bn_token *)a].len;
    uint32_t lb = bn_sort_ctx->vocab[*(const bn_token *)b].len;
    if (la != lb)
        return la < lb ? 1 : -1;
    return *(const bn_token *)a - *(const bn_token *)b;
}

bn_status bn_tok_finish(bn_tokenizer *t)
{
    int32_t n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        n += (t->vocab[i].type == BN_TOKEN_CONTROL || t->vocab[i].type == BN_TOKEN_USER_DEFINED)
             && t->vocab[i].len > 0;
    t->specials = bn_arena_alloc(t->arena, (size_t)n * sizeof *t->specials + 1, 8);
    if (!t->specials)
        return bn_error_wrap(BN_OK, "listing special tokens");
    t->n_specials = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if ((t->vocab[i].type == BN_TOKEN_CONTROL || t->vocab[i].type == BN_TOKEN_USER_DEFINED)
            && t->vocab[i].len > 0)
            t->specials[t->n_specials++] = i;
    /* qsort has no context argument in C11; the tokenizer is built by one thread */
    static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&sort_lock);
    bn_sort_ctx = t;
    qsort(t->specials, (size_t)t->n_specials, sizeof *t->specials, bn_cmp_special);
    pthread_mutex_unlock(&sort_lock);
    if (t->eot < 0) {
        const char *names[] = {"<|eot_id|>", "<|im_end|>", "<end_of_turn>"};
        for (size_t i = 0; i < 3 && t->eot < 0; i++)
            t->eot = bn_strmap_get(t->piece_to_id, names[i], strlen(names[i]), -1);
    }
    bn_token *ids[] = {&t->bos, &t->eos, &t->eot, &t->pad, &t->unk};
    const char *what[] = {"BOS", "EOS", "EOT", "padding", "unknown"};
    for (int i = 0; i < 5; i++) {
        if (*ids[i] >= t->n_vocab) {
            bn_log(BN_LOG_WARN, "tokenizer: the %s token id %d is outside the vocabulary "
                   "of %d; ignored", what[i], *ids[i], t->n_vocab);
            *ids[i] = -1;
        }
    }
    return BN_OK;
}

void bn_tokenizer_free(bn_tokenizer *t)
{
    if (!t)
        return;
    if (t->ops && t->ops->free_impl)
        t->ops->free_impl(t->impl);
    bn_strmap_free(t->piece_to_id);
    bn_free(t->vocab);
    bn_arena_free(t->arena);
    bn_free(t);
}

/* ------------------------------------------------------------------ accessors */

bn_tokenizer_kind bn_tokenizer_kind_of(const bn_tokenizer *t) { return t->kind; }
int32_t bn_tokenizer_n_vocab(const bn_tokenizer *t) { return t->n_vocab; }
bn_token bn_tokenizer_bos(const bn_tokenizer *t) { return t->bos; }
bn_token bn_tokenizer_eos(const bn_tokenizer *t) { return t->eos; }
bn_token bn_tokenizer_eot(const bn_tokenizer *t) { return t->eot; }
bool bn_tokenizer_wants_bos(const bn_tokenizer *t) { return t->add_bos && t->bos >= 0; }

uint64_t bn_tokenizer_checksum(const bn_tokenizer *t)
{
    uint64_t h = bn_fnv_u32(BN_FNV_START, (uint32_t)t->kind);
    h = bn_fnv_u32(h, (uint32_t)t->n_vocab);
    for (bn_token id = 0; id < t->n_vocab; id++) {
        const bn_tok_entry *e = &t->vocab[id];
        uint32_t score_bits;
        memcpy(&score_bits, &e->score, sizeof score_bits);
        h = bn_fnv_u32(h, (uint32_t)e->type);
        h = bn_fnv_u32(h, e->len);
        h = bn_fnv_bytes(h, e->text, e->len);
        h = bn_fnv_u32(h, score_bits);
    }
    h = bn_fnv_u32(h, (uint32_t)t->bos);
    h = bn_fnv_u32(h, (uint32_t)t->eos);
    h = bn_fnv_u32(h, t->add_space_prefix);
    if (t->ops && t->ops->digest)
        h = t->ops->digest(t, h);
    return h;
}

bool bn_tokenizer_is_eog(const bn_tokenizer *t, bn_token id)
{
    return id >= 0 && (id == t->eos || id == t->eot);
}

const char *bn_tokenizer_piece(const bn_tokenizer *t, bn_token id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    if (len)
        *len = t->vocab[id].len;
    return t->vocab[id].text;
}

bn_token_type bn_tokenizer_token_type(const bn_tokenizer *t, bn_token id)
{
    if (id < 0 || id >= t->n_vocab)
        return BN_TOKEN_UNUSED;
    return (bn_token_type)t->vocab[id].type;
}

bn_token bn_tokenizer_find(const bn_tokenizer *t, const char *piece, size_t len)
{
    return bn_strmap_get(t->piece_to_id, piece, len, -1);
}

/* ------------------------------------------------------------------ encoding */

bn_tokenize_params bn_tokenize_default_params(void)
{
    return (bn_tokenize_params){.add_bos = false, .parse_special = true};
}

/* The special token that starts at text[pos], or -1. User-defined tokens always
 * match; control tokens only with parse_special. */
static bn_token bn_match_special(const bn_tokenizer *t, const char *text, size_t len,
                                 size_t pos, bool parse_special)
{
    for (int32_t i = 0; i < t->n_specials; i++) {
        const bn_tok_entry *e = &t->vocab[t->specials[i]];
        if (e->type == BN_TOKEN_CONTROL && !parse_special)
            continue;
        if (e->len <= len - pos && (unsigned char)e->text[0] == (unsigned char)text[pos] &&
            memcmp(text + pos, e->text, e->len) == 0)
            return t->specials[i];
    }
    return -1;
}

/* Encodes text[start, end) of plain text, if not empty. */
static bn_status bn_encode_run(const bn_tokenizer *t, const char *text, size_t start,
                               size_t end, bn_tok_vec *out)
{
    if (end == start)
        return BN_OK;
    return t->ops->encode(t, text + start, end - start, start == 0, out);
}

bn_status bn_tokenize(const bn_tokenizer *t, const char *text, size_t len,
                      const bn_tokenize_params *params, bn_token **ids, size_t *n_ids)
{
    bn_tokenize_params p = params ? *params : bn_tokenize_default_params();
    bn_tok_vec out = {0};
    bn_status st = BN_OK;
    if (p.add_bos) {
        if (t->bos < 0)
            return bn_error_set(BN_ERR_INVALID_ARG, "tokenize: this tokenizer has no BOS");
        st = bn_tok_vec_push(&out, t->bos);
    }
    /* which first bytes can start a special token: skips most positions at once */
    bool first[256] = {false};
    for (int32_t i = 0; i < t->n_specials; i++)
        first[(unsigned char)t->vocab[t->specials[i]].text[0]] = true;
    size_t run = 0;
    for (size_t pos = 0; st == BN_OK && pos < len;) {
        bn_token sp = first[(unsigned char)text[pos]]
                      ? bn_match_special(t, text, len, pos, p.parse_special) : -1;
        if (sp < 0) {
            pos++;
            continue;
        }
        st = bn_encode_run(t, text, run, pos, &out);
        if (st == BN_OK)
            st = bn_tok_vec_push(&out, sp);
        pos += t->vocab[sp].len;
        run = pos;
    }
    if (st == BN_OK)
        st = bn_encode_run(t, text, run, len, &out);
    if (st != BN_OK) {
        bn_free(out.v);
        return bn_error_wrap(BN_OK, "tokenizing %zu bytes", len);
    }
    if (!out.v && !(out.v = bn_malloc(sizeof *out.v, "tokenizer")))
        return bn_error_wrap(BN_OK, "tokenizing");
    *ids = out.v;
    *n_ids = out.n;
    return BN_OK;
}

/* ------------------------------------------------------------------ decoding */

/* Appends the bytes of one token. *first_text: no text has been produced yet (a family
 * whose encoder puts a space before the first word drops it there). */
static bn_status bn_decode_token(const bn_tokenizer *t, bn_token id, bool render_special,
                                 bool *first_text, bn_bytes *out)
{
    if (id < 0 || id >= t->n_vocab)
        return bn_error_set(BN_ERR_INVALID_ARG, "token id %d is outside the vocabulary of "
                            "%d", id, t->n_vocab);
    const bn_tok_entry *e = &t->vocab[id];
    if (e->type == BN_TOKEN_CONTROL || e->type == BN_TOKEN_UNKNOWN ||
        e->type == BN_TOKEN_UNUSED) {
        if (!render_special)
            return BN_OK;
        return bn_bytes_append(out, e->text, e->len);
    }
    size_t before = out->n;
    bn_status st = t->ops->piece_bytes(t, id, out);
    if (st == BN_OK && *first_text && out->n > before) {
        *first_text = false;
        if (t->ops->drops_space_prefix && t->add_space_prefix && out->p[before] == ' ') {
            memmove(out->p + before, out->p + before + 1, out->n - before - 1);
            out->n--;
            out->p[out->n] = '\0';
        }
    }
    return st;
}

bn_status bn_detokenize(const bn_tokenizer *t, const bn_token *ids, size_t n_ids,
                        bool render_special, char **text, size_t *len)
{
    bn_bytes out = {0};
    bool first_text = true;
    bn_status st = bn_bytes_append(&out, "", 0);
    for (size_t i = 0; st == BN_OK && i < n_ids; i++)
        st = bn_decode_token(t, ids[i], render_special, &first_text, &out);
    if (st != BN_OK) {
        bn_free(out.p);
        return bn_error_wrap(BN_OK, "detokenizing %zu tokens", n_ids);
    }
    *text = out.p;
    *len = out.n;
    return BN_OK;
}

bn_status bn_token_bytes(const bn_tokenizer *t, bn_token id, bool render_special,
                         char **text, size_t *len)
{
    bn_bytes out = {0};
    bool first_text = false;   /* inside a text: SPM's leading space stays */
    bn_status st = bn_bytes_append(&out, "", 0);
    if (st == BN_OK)
        st = bn_decode_token(t, id, render_special, &first_text, &out);
    if (st != BN_OK) {
        bn_free(out.p);
        return bn_error_wrap(BN_OK, "decoding token %d", id);
    }
    *text = out.p;
    *len = out.n;
    return BN_OK;
}

struct bn_detok_stream {
    const bn_tokenizer *t;
    bool                render_special;
    bool                first_text;
    bn_bytes            pending;   /* decoded bytes not handed out yet */
    bn_bytes            ready;     /* what the last push handed out */
};

bn_status bn_detok_stream_create(const bn_tokenizer *t, bool render_special,
                                 bn_detok_stream **out)
{
    bn_detok_stream *s = bn_calloc(1, sizeof *s, "tokenizer");
    if (!s)
        return bn_error_wrap(BN_OK, "creating a decoding stream");
    s->t = t;
    s->render_special = render_special;
    s->first_text = true;
    *out = s;
    return BN_OK;
}

/* Length of the prefix of p[0, n) that ends on a character boundary: a trailing
 * sequence that the next bytes may still complete into a well-formed character is held
 * back; one that can no longer be (a second byte out of its lead's range, as in
 * F4 93) is not, as a UTF-8 decoder replaces it at once. */
static size_t bn_utf8_complete(const unsigned char *p, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = p[n - back];
        if ((c & 0xc0) == 0x80)
            continue;                       /* a continuation byte: look further back */
        size_t need = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 1;
        if (c >= 0xf5 || need == 1 || back >= need)
            return n;                       /* ASCII, an invalid lead, or complete */
        if (back >= 2) {                    /* the second byte's range (Unicode table 3-7) */
            unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
            unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
            if (p[n - back + 1] < lo || p[n - back + 1] > hi)
                return n;
        }
        return n - back;
    }
    return n;
}

bn_status bn_detok_stream_push(bn_detok_stream *s, bn_token id, const char **text,
                               size_t *len)
{
    bn_status st = bn_decode_token(s->t, id, s->render_special, &s->first_text, &s->pending);
    if (st != BN_OK)
        return st;
    size_t n = s->pending.n ? bn_utf8_complete((const unsigned char *)s->pending.p,
                                               s->pending.n) : 0;
    s->ready.n = 0;
    st = bn_bytes_append(&s->ready, s->pending.p, n);
    if (st != BN_OK)
        return st;
    if (n > 0) {   /* pending.p stays NULL while the tokens give no bytes */
        memmove(s->pending.p, s->pending.p + n, s->pending.n - n + 1);   /* and its NUL */
        s->pending.n -= n;
    }
    *text = s->ready.p;
    *len = s->ready.n;
    return BN_OK;
}

void bn_detok_stream_flush(bn_detok_stream *s, const char **text, size_t *len)
{
    s->ready.n = 0;
    if (bn_bytes_append(&s->ready, s->pending.p, s->pending.n) == BN_OK)
        s->pending.n = 0;
    *text = s->ready.p ? s->ready.p : "";
    *len = s->ready.n;
}

void bn_detok_stream_free(bn_detok_stream *s)
{
    if (!s)
        return;
    bn_free(s->pending.p);
    bn_free(s->ready.p);
    bn_free(s);
}
