/*
 * tokenizer_internal.h - the tokenizer object, shared by the files of src/tokenizer/.
 *
 * They form layers; each file calls only into the layers below it, never up:
 *   1. tokenizer.c       the core: buffers, the vocabulary, special tokens, tokenize
 *                        and detokenize, the decoding stream. It reaches a family only
 *                        through t->ops, which the family's init sets.
 *   2. tok_bpe.c         the algorithms: byte-level BPE (LLaMA 3) and SentencePiece
 *      tok_spm.c         BPE (LLaMA 2); each fills the vocabulary core's ops.
 *      chat_template.c   chat formats, on the core alone (BOS text, buffers).
 *   3. tok_bpe_hf.c      the readers of one format each: tokenizer.json,
 *      tok_spm_model.c   tokenizer.model and GGUF metadata; each creates a tokenizer
 *      load_gguf.c       (core), fills its vocabulary and calls a family's init.
 *      bpe_train.c       learns a byte-level BPE tokenizer with tok_bpe.c's pre-tokenizer
 *                        and writes it as a tokenizer.json.
 *   4. load_file.c       tells a file's format by its first bytes and calls its reader.
 * Above them the model (src/model/) uses the public functions of bitnet.h.
 */
#ifndef BN_TOKENIZER_TOKENIZER_INTERNAL_H
#define BN_TOKENIZER_TOKENIZER_INTERNAL_H

#include "core/internal.h"

/* A growable array of token ids (bn_malloc'd). */
typedef struct bn_tok_vec {
    bn_token *v;
    size_t    n, cap;
} bn_tok_vec;

/* A growable byte buffer (bn_malloc'd), kept NUL-terminated. */
typedef struct bn_bytes {
    char  *p;
    size_t n, cap;
} bn_bytes;

bn_status bn_tok_vec_push(bn_tok_vec *v, bn_token id);
bn_status bn_bytes_append(bn_bytes *b, const void *data, size_t n);

/* One vocabulary entry, as stored in the model (text in the arena). */
typedef struct bn_tok_entry {
    const char *text;
    uint32_t    len;
    float       score;
    int32_t     type;      /* bn_token_type */
} bn_tok_entry;

/* What a family provides: the core calls a family through these alone. */
typedef struct bn_tok_ops {
    /* Encode a run of text that holds no special token, appending ids to out.
     * at_start: the run begins the whole text (SPM puts its dummy prefix there). */
    bn_status (*encode)(const bn_tokenizer *t, const char *text, size_t len, bool at_start,
                        bn_tok_vec *out);
    /* Append the bytes that token `id` stands for (BPE: the byte-level alphabet mapped
     * back to bytes; SPM: U+2581 as a space, <0xNN> as that byte). Normal, byte and
     * user-defined tokens only: the core handles control tokens. */
    bn_status (*piece_bytes)(const bn_tokenizer *t, bn_token id, bn_bytes *out);
    /* With add_space_prefix, decoding drops the space that the encoder put before the
     * first word (SPM's dummy prefix), so that the text comes back as it went in. */
    bool drops_space_prefix;
    /* Folds the family's own rules into checksum h (bn_fnv_*); NULL: it has none. */
    uint64_t (*digest)(const bn_tokenizer *t, uint64_t h);
    /* Frees `impl`. */
    void (*free_impl)(void *impl);
} bn_tok_ops;

/* 64-bit FNV-1a, for bn_tokenizer_checksum: bytes, and numbers as 4 or 8 little-endian
 * bytes. */
#define BN_FNV_START 0xcbf29ce484222325ULL
static inline uint64_t bn_fnv_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}
static inline uint64_t bn_fnv_u32(uint64_t h, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        h = (h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
    return h;
}
static inline uint64_t bn_fnv_u64(uint64_t h, uint64_t v)
{
    return bn_fnv_u32(bn_fnv_u32(h, (uint32_t)v), (uint32_t)(v >> 32));
}

struct bn_tokenizer {
    bn_tokenizer_kind kind;
    int32_t           n_vocab;
    bn_tok_entry     *vocab;          /* n_vocab entries */
    bn_strmap        *piece_to_id;    /* vocabulary text -> id */
    bn_arena         *arena;          /* vocabulary texts and other load-time data */
    bn_token          bos, eos, eot, pad, unk;   /* -1 when absent */
    bool              add_bos;        /* the model wants BOS prepended */
    bool              add_space_prefix; /* SPM: a leading U+2581 before the text */
    bn_token         *specials;       /* control/user-defined ids, longest text first */
    int32_t           n_specials;
    const char       *chat_template;  /* tokenizer.chat_template, or NULL */
    const char       *pre;            /* BPE: the pre-tokenizer's name ("llama3"...) */
    const char      **merges;         /* BPE: the merges in rank order (in the arena), */
    size_t            n_merges;       /* kept to write them to a GGUF file */
    const bn_tok_ops *ops;
    void             *impl;           /* the family's own state */
};

/* Allocates a tokenizer of n_vocab empty entries (ids/limits unset: -1). */
bn_status bn_tok_create(bn_tokenizer_kind kind, int32_t n_vocab, bn_tokenizer **out);

/* Sets entry id (text copied into the arena, indexed in piece_to_id). A text that is
 * already another entry's keeps the first id in the index. */
bn_status bn_tok_set_entry(bn_tokenizer *t, bn_token id, const char *text, size_t len,
                           float score, int32_t type);

/* Called once the vocabulary and the family's state are in place: builds the special
 * token list, finds EOT ("<|eot_id|>", "<|im_end|>", "<end_of_turn>") when unset, and
 * checks the ids. */
bn_status bn_tok_finish(bn_tokenizer *t);

/* The family initialisers: each builds its state (t->impl) and sets t->ops. BPE:
 * merges are "left right" strings in rank order; `pre` names the pre-tokenizer
 * ("llama3" / "llama-bpe", "gpt2"; NULL = llama3); ignore_merges: a pre-token that is a
 * whole vocabulary entry is emitted as is (LLaMA 3). SPM: uses the scores and byte
 * tokens of the vocabulary. */
bn_status bn_tok_bpe_init(bn_tokenizer *t, const char *const *merges,
                          const uint32_t *merge_lens, size_t n_merges, const char *pre,
                          bool ignore_merges);
bn_status bn_tok_spm_init(bn_tokenizer *t);

/* Byte-level BPE's pre-tokenizer alone (tok_bpe.c), for the trainer: the same split
 * that encoding makes. bn_pretok_split calls fn(user, piece, len) for each pre-token of
 * text in order (every byte in exactly one; a run of invalid UTF-8 is a piece of its
 * own) and stops at the first status fn returns that is not BN_OK. */
typedef struct bn_pretok bn_pretok;
typedef bn_status (*bn_pretok_fn)(void *user, const unsigned char *piece, size_t len);
bn_status bn_pretok_create(const char *pre, bn_pretok **out);
bn_status bn_pretok_split(const bn_pretok *p, const char *text, size_t len,
                          bn_pretok_fn fn, void *user);
void bn_pretok_free(bn_pretok *p);

/* GPT-2's byte-level alphabet: the code point that stands for each byte. */
void bn_bpe_byte_alphabet(uint16_t byte_to_cp[256]);

/* The readers of the tokenizer files (load_file.c calls them by the file's contents):
 * a Hugging Face tokenizer.json (tok_bpe_hf.c) and a SentencePiece tokenizer.model
 * (tok_spm_model.c). */
bn_status bn_tok_load_hf_json(const char *path, bn_tokenizer **out);
bn_status bn_tok_load_spm_model(const void *data, size_t size, bn_tokenizer **out);

/* bn_tokenizer_write_gguf for a model of n_vocab (>= the tokenizer's) rows: the ids
 * past the vocabulary are written as user-defined tokens "[PAD<id>]", as llama.cpp
 * does for embeddings padded beyond their tokenizer. */
bn_status bn_tokenizer_write_gguf_padded(const bn_tokenizer *t, int32_t n_vocab,
                                         bn_gguf_writer *w);

#endif
