/*
 * tok_spm_model.c - the reader of SentencePiece's tokenizer.model files (a protobuf
 * ModelProto, see sentencepiece's sentencepiece_model.proto).
 *
 * A small protobuf reader checks every varint, key and length against the buffer and
 * skips unknown fields of every wire type (groups nest at most 64 deep). Two passes:
 * the first counts the pieces and reads the trainer spec (the model type must be BPE;
 * byte_fallback; BOS, EOS and padding ids) and the normalizer spec (only the identity
 * normalizer: no normalization table, no removal of extra white space, spaces escaped
 * as U+2581, add_dummy_prefix read); the second stores the pieces, checked as
 * sentencepiece checks them (not empty, a known type, one unknown piece, no repeats,
 * all 256 byte pieces with byte_fallback and none without). Errors say what and at
 * which byte.
 */
#include <math.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* The byte value of a byte piece's text, exactly "<0xNN>" with upper-case hex digits
 * as sentencepiece writes them, or -1. */
static int bn_spm_model_byte(const char *text, size_t len)
{
    if (len != 6 || memcmp(text, "<0x", 3) != 0 || text[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = text[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* sentencepiece keeps two namespaces of piece texts: the "normal" pieces (those a
 * merge can make) and the reserved ones (control, unknown, byte). */
static bool bn_spm_model_is_normal(int32_t type)
{
    return type == BN_TOKEN_NORMAL || type == BN_TOKEN_USER_DEFINED ||
           type == BN_TOKEN_UNUSED;
}

/* ------------------------------------------------------------------ protobuf */

/* A bounds-checked protobuf reader over base[pos, end); offsets in messages are from
 * the start of the whole buffer. */
typedef struct bn_pb {
    const unsigned char *base;
    size_t               pos, end;
} bn_pb;

enum { BN_PB_VARINT = 0, BN_PB_I64 = 1, BN_PB_LEN = 2, BN_PB_SGROUP = 3, BN_PB_EGROUP = 4,
       BN_PB_I32 = 5 };

/* Groups nest at most this deep (protobuf's own limit is 100). */
#define BN_PB_MAX_DEPTH 64

static bn_status bn_pb_varint(bn_pb *r, uint64_t *v)
{
    size_t at = r->pos;
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (r->pos >= r->end)
            return bn_error_set(BN_ERR_FORMAT, "a varint at byte %zu runs past the end of "
                                "its message (byte %zu)", at, r->end);
        unsigned char c = r->base[r->pos++];
        if (i == 9 && c > 1)
            return bn_error_set(BN_ERR_FORMAT, "a varint at byte %zu overflows 64 bits", at);
        x |= (uint64_t)(c & 0x7f) << (7 * i);
        if (c < 0x80) {
            *v = x;
            return BN_OK;
        }
    }
    return bn_error_set(BN_ERR_FORMAT, "a varint at byte %zu is longer than 10 bytes", at);
}

/* Reads a field key. */
static bn_status bn_pb_key(bn_pb *r, uint32_t *field, uint32_t *wire)
{
    size_t at = r->pos;
    uint64_t key = 0;
    bn_status st = bn_pb_varint(r, &key);
    if (st != BN_OK)
        return st;
    if (key > UINT32_MAX || (key >> 3) == 0 || (key & 7) > BN_PB_I32)
        return bn_error_set(BN_ERR_FORMAT, "a field key at byte %zu is invalid (field %llu, "
                            "wire type %u)", at, (unsigned long long)(key >> 3),
                            (unsigned)(key & 7));
    *field = (uint32_t)(key >> 3);
    *wire = (uint32_t)(key & 7);
    return BN_OK;
}

/* Takes n bytes: a sub-reader over them. */
static bn_status bn_pb_take(bn_pb *r, uint64_t n, bn_pb *sub, size_t at)
{
    if (n > r->end - r->pos)
        return bn_error_set(BN_ERR_FORMAT, "a field at byte %zu has %llu bytes, past the end "
                            "of its message (%zu bytes left)", at, (unsigned long long)n,
                            r->end - r->pos);
    *sub = (bn_pb){.base = r->base, .pos = r->pos, .end = r->pos + (size_t)n};
    r->pos += (size_t)n;
    return BN_OK;
}

/* A length-delimited value (its length already checked). */
static bn_status bn_pb_len(bn_pb *r, bn_pb *sub)
{
    size_t at = r->pos;
    uint64_t n = 0;
    bn_status st = bn_pb_varint(r, &n);
    return st == BN_OK ? bn_pb_take(r, n, sub, at) : st;
}

/* Skips the value of a field of any wire type (groups up to their end). */
static bn_status bn_pb_skip(bn_pb *r, uint32_t field, uint32_t wire, int depth)
{
    size_t at = r->pos;
    uint64_t v = 0;
    bn_pb sub = {0};
    switch (wire) {
    case BN_PB_VARINT:
        return bn_pb_varint(r, &v);
    case BN_PB_I64:
        return bn_pb_take(r, 8, &sub, at);
    case BN_PB_I32:
        return bn_pb_take(r, 4, &sub, at);
    case BN_PB_LEN:
        return bn_pb_len(r, &sub);
    case BN_PB_SGROUP:
        if (depth >= BN_PB_MAX_DEPTH)
            return bn_error_set(BN_ERR_FORMAT, "groups nest deeper than %d at byte %zu",
                                BN_PB_MAX_DEPTH, at);
        for (;;) {
            uint32_t f = 0, w = 0;
            bn_status st = bn_pb_key(r, &f, &w);
            if (st != BN_OK)
                return st;
            if (w == BN_PB_EGROUP) {
                if (f != field)
                    return bn_error_set(BN_ERR_FORMAT, "group %u ends with the end of "
                                        "group %u at byte %zu", field, f, r->pos);
                return BN_OK;
            }
            st = bn_pb_skip(r, f, w, depth + 1);
            if (st != BN_OK)
                return st;
        }
    default:   /* BN_PB_EGROUP without a start */
        return bn_error_set(BN_ERR_FORMAT, "an end of group %u at byte %zu has no start",
                            field, at);
    }
}

/* Checks a known field's wire type. */
static bn_status bn_pb_expect(const bn_pb *r, const char *name, uint32_t wire,
                              uint32_t expected)
{
    if (wire == expected)
        return BN_OK;
    return bn_error_set(BN_ERR_FORMAT, "field %s before byte %zu has wire type %u, expected "
                        "%u", name, r->pos, wire, expected);
}

/* A varint field. */
static bn_status bn_pb_uint(bn_pb *r, const char *name, uint32_t wire, uint64_t *v)
{
    bn_status st = bn_pb_expect(r, name, wire, BN_PB_VARINT);
    return st == BN_OK ? bn_pb_varint(r, v) : st;
}

/* An int32 field: protobuf keeps the low 32 bits (negatives take 10 bytes). */
static bn_status bn_pb_int32(bn_pb *r, const char *name, uint32_t wire, int32_t *v)
{
    uint64_t x = 0;
    bn_status st = bn_pb_uint(r, name, wire, &x);
    if (st == BN_OK)
        *v = (int32_t)(uint32_t)x;
    return st;
}

static bn_status bn_pb_bool(bn_pb *r, const char *name, uint32_t wire, bool *v)
{
    uint64_t x = 0;
    bn_status st = bn_pb_uint(r, name, wire, &x);
    if (st == BN_OK)
        *v = x != 0;
    return st;
}

/* A string or bytes field: a view into the buffer. */
static bn_status bn_pb_string(bn_pb *r, const char *name, uint32_t wire, const char **s,
                              size_t *len)
{
    bn_pb sub = {0};
    bn_status st = bn_pb_expect(r, name, wire, BN_PB_LEN);
    if (st == BN_OK)
        st = bn_pb_len(r, &sub);
    if (st == BN_OK) {
        *s = (const char *)r->base + sub.pos;
        *len = sub.end - sub.pos;
    }
    return st;
}

static bn_status bn_pb_float(bn_pb *r, const char *name, uint32_t wire, float *v)
{
    size_t at = r->pos;
    bn_pb sub = {0};
    bn_status st = bn_pb_expect(r, name, wire, BN_PB_I32);
    if (st == BN_OK)
        st = bn_pb_take(r, 4, &sub, at);
    if (st == BN_OK) {
        const unsigned char *p = r->base + sub.pos;
        uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                        (uint32_t)p[3] << 24;
        memcpy(v, &bits, 4);
    }
    return st;
}

/* ------------------------------------------------------------------ tokenizer.model */

/* What the loader takes from the trainer and normalizer specs (proto2 defaults). */
typedef struct bn_spm_spec {
    uint64_t    model_type;                /* TrainerSpec.model_type = 3: UNIGRAM */
    int32_t     bos_id, eos_id, pad_id;    /* = 41, 42, 43 (unk_id = 40: the UNKNOWN
                                              piece is what counts) */
    bool        byte_fallback;             /* = 35 */
    bool        treat_whitespace_as_suffix;/* = 24 */
    const char *norm_name;                 /* NormalizerSpec.name = 1 */
    size_t      norm_name_len;
    size_t      charsmap_len;              /* precompiled_charsmap = 2 */
    bool        add_dummy_prefix;          /* = 3 */
    bool        remove_extra_whitespaces;  /* = 4 */
    bool        escape_whitespaces;        /* = 5 */
    size_t      denorm_charsmap_len;       /* ModelProto.denormalizer_spec = 5 */
} bn_spm_spec;

static bn_status bn_spm_read_trainer(bn_pb *r, bn_spm_spec *spec)
{
    while (r->pos < r->end) {
        uint32_t f = 0, w = 0;
        bn_status st = bn_pb_key(r, &f, &w);
        if (st != BN_OK)
            return st;
        switch (f) {
        case 3:  st = bn_pb_uint(r, "trainer_spec.model_type", w, &spec->model_type); break;
        case 24: st = bn_pb_bool(r, "trainer_spec.treat_whitespace_as_suffix", w,
                                 &spec->treat_whitespace_as_suffix); break;
        case 35: st = bn_pb_bool(r, "trainer_spec.byte_fallback", w, &spec->byte_fallback);
                 break;
        case 41: st = bn_pb_int32(r, "trainer_spec.bos_id", w, &spec->bos_id); break;
        case 42: st = bn_pb_int32(r, "trainer_spec.eos_id", w, &spec->eos_id); break;
        case 43: st = bn_pb_int32(r, "trainer_spec.pad_id", w, &spec->pad_id); break;
        default: st = bn_pb_skip(r, f, w, 0); break;
        }
        if (st != BN_OK)
            return st;
    }
    return BN_OK;
}

/* A NormalizerSpec; denorm: it is the denormalizer (only its table matters). */
static bn_status bn_spm_read_normalizer(bn_pb *r, bn_spm_spec *spec, bool denorm)
{
    while (r->pos < r->end) {
        uint32_t f = 0, w = 0;
        const char *s;
        size_t len;
        bn_status st = bn_pb_key(r, &f, &w);
        if (st != BN_OK)
            return st;
        if (f == 2) {
            st = bn_pb_string(r, "normalizer_spec.precompiled_charsmap", w, &s, &len);
            if (st == BN_OK)
                *(denorm ? &spec->denorm_charsmap_len : &spec->charsmap_len) = len;
        } else if (denorm) {
            st = bn_pb_skip(r, f, w, 0);
        } else if (f == 1) {
            st = bn_pb_string(r, "normalizer_spec.name", w, &spec->norm_name,
                              &spec->norm_name_len);
        } else if (f == 3) {
            st = bn_pb_bool(r, "normalizer_spec.add_dummy_prefix", w,
                            &spec->add_dummy_prefix);
        } else if (f == 4) {
            st = bn_pb_bool(r, "normalizer_spec.remove_extra_whitespaces", w,
                            &spec->remove_extra_whitespaces);
        } else if (f == 5) {
            st = bn_pb_bool(r, "normalizer_spec.escape_whitespaces", w,
                            &spec->escape_whitespaces);
        } else {
            st = bn_pb_skip(r, f, w, 0);
        }
        if (st != BN_OK)
            return st;
    }
    return BN_OK;
}

/* First pass over the ModelProto: counts the pieces and reads the specs. */
static bn_status bn_spm_read_specs(bn_pb *r, bn_spm_spec *spec, int64_t *n_pieces)
{
    *n_pieces = 0;
    while (r->pos < r->end) {
        uint32_t f = 0, w = 0;
        bn_pb sub = {0};
        bn_status st = bn_pb_key(r, &f, &w);
        if (st != BN_OK)
            return st;
        if ((f >= 1 && f <= 3) || f == 5) {
            static const char *const names[] = {"", "pieces", "trainer_spec",
                                                "normalizer_spec", "", "denormalizer_spec"};
            st = bn_pb_expect(r, names[f], w, BN_PB_LEN);
            if (st == BN_OK)
                st = bn_pb_len(r, &sub);
            if (st == BN_OK && f == 1)
                ++*n_pieces;
            else if (st == BN_OK && f == 2)
                st = bn_spm_read_trainer(&sub, spec);
            else if (st == BN_OK)
                st = bn_spm_read_normalizer(&sub, spec, f == 5);
        } else {
            st = bn_pb_skip(r, f, w, 0);
        }
        if (st != BN_OK)
            return st;
    }
    return BN_OK;
}

/* Refuses what this reader does not implement. */
static bn_status bn_spm_check_spec(const bn_spm_spec *spec, int64_t n_pieces)
{
    static const char *const types[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
    if (n_pieces == 0)
        return bn_error_set(BN_ERR_FORMAT, "the SentencePiece model has no pieces");
    if (spec->model_type != 2)
        return bn_error_set(BN_ERR_UNSUPPORTED, "SentencePiece model type %s (%llu) is not "
                            "supported: only BPE is",
                            spec->model_type <= 4 ? types[spec->model_type] : "unknown",
                            (unsigned long long)spec->model_type);
    int name_len = (int)(spec->norm_name_len > 64 ? 64 : spec->norm_name_len);
    const char *name = spec->norm_name ? spec->norm_name : "";
    if (spec->charsmap_len > 0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "SentencePiece normalizer '%.*s' (a %zu-byte "
                            "normalization table) is not supported: only identity is",
                            name_len, name, spec->charsmap_len);
    if (spec->denorm_charsmap_len > 0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "a SentencePiece denormalizer (a %zu-byte "
                            "table) is not supported", spec->denorm_charsmap_len);
    if (spec->remove_extra_whitespaces)
        return bn_error_set(BN_ERR_UNSUPPORTED, "SentencePiece normalizer '%.*s' removes "
                            "extra white space: not supported", name_len, name);
    if (!spec->escape_whitespaces)
        return bn_error_set(BN_ERR_UNSUPPORTED, "a SentencePiece model that keeps spaces "
                            "as they are (escape_whitespaces false) is not supported");
    if (spec->treat_whitespace_as_suffix)
        return bn_error_set(BN_ERR_UNSUPPORTED, "a SentencePiece model with white space as "
                            "a suffix is not supported");
    if (n_pieces > INT32_MAX)
        return bn_error_set(BN_ERR_FORMAT, "the SentencePiece model has %lld pieces",
                            (long long)n_pieces);
    int32_t ids[3] = {spec->bos_id, spec->eos_id, spec->pad_id};
    static const char *const what[3] = {"bos_id", "eos_id", "pad_id"};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= n_pieces)
            return bn_error_set(BN_ERR_FORMAT, "SentencePiece trainer_spec.%s %d is outside "
                                "the %lld pieces", what[i], ids[i], (long long)n_pieces);
    return BN_OK;
}

/* What pass two checks across the pieces. */
typedef struct bn_spm_seen {
    bool    byte[256];
    int     n_bytes;
    int32_t unk;                /* the UNKNOWN piece, -1 before it */
} bn_spm_seen;

/* Reads piece number id (a SentencePiece message at r) into t. */
static bn_status bn_spm_read_piece(bn_pb *r, bn_tokenizer *t, int32_t id,
                                   const bn_spm_spec *spec, bn_spm_seen *seen)
{
    size_t at = r->pos;
    const char *text = NULL;
    size_t len = 0;
    float score = 0.0f;
    uint64_t type = BN_TOKEN_NORMAL;
    while (r->pos < r->end) {
        uint32_t f = 0, w = 0;
        bn_status st = bn_pb_key(r, &f, &w);
        if (st == BN_OK) {
            if (f == 1)
                st = bn_pb_string(r, "piece", w, &text, &len);
            else if (f == 2)
                st = bn_pb_float(r, "score", w, &score);
            else if (f == 3)
                st = bn_pb_uint(r, "type", w, &type);
            else
                st = bn_pb_skip(r, f, w, 0);
        }
        if (st != BN_OK)
            return bn_error_wrap(BN_OK, "piece %d at byte %zu", id, at);
    }
    if (len == 0)
        return bn_error_set(BN_ERR_FORMAT, "piece %d at byte %zu is empty", id, at);
    if (type < BN_TOKEN_NORMAL || type > BN_TOKEN_BYTE)
        return bn_error_set(BN_ERR_FORMAT, "piece %d at byte %zu has an unknown type %llu",
                            id, at, (unsigned long long)type);
    if (isnan(score))
        return bn_error_set(BN_ERR_FORMAT, "piece %d at byte %zu has a NaN score", id, at);
    bn_token other = bn_strmap_get(t->piece_to_id, text, len, -1);
    if (other >= 0 && bn_spm_model_is_normal(t->vocab[other].type) ==
                      bn_spm_model_is_normal((int32_t)type))
        return bn_error_set(BN_ERR_FORMAT, "piece %d at byte %zu (\"%.*s\") repeats piece %d",
                            id, at, (int)(len > 32 ? 32 : len), text, other);
    if (type == BN_TOKEN_UNKNOWN) {
        if (seen->unk >= 0)
            return bn_error_set(BN_ERR_FORMAT, "piece %d at byte %zu is a second unknown "
                                "piece (the first is %d)", id, at, seen->unk);
        seen->unk = id;
    }
    if (type == BN_TOKEN_BYTE) {
        int b = bn_spm_model_byte(text, len);
        if (b < 0)
            return bn_error_set(BN_ERR_FORMAT, "byte piece %d at byte %zu (\"%.*s\") is not "
                                "<0xNN>", id, at, (int)(len > 32 ? 32 : len), text);
        if (!spec->byte_fallback)
            return bn_error_set(BN_ERR_FORMAT, "byte piece %d at byte %zu although "
                                "byte_fallback is off", id, at);
        if (!seen->byte[b])
            seen->n_bytes++;
        seen->byte[b] = true;
    }
    return bn_tok_set_entry(t, id, text, len, score, (int32_t)type);
}

/* Second pass: the pieces into t; *unk gets the unknown piece. */
static bn_status bn_spm_read_pieces(bn_pb *r, bn_tokenizer *t, const bn_spm_spec *spec,
                                    bn_token *unk)
{
    bn_spm_seen seen = {.unk = -1};
    int32_t id = 0;
    while (r->pos < r->end) {
        uint32_t f = 0, w = 0;
        bn_pb sub = {0};
        bn_status st = bn_pb_key(r, &f, &w);
        if (st == BN_OK)
            st = f == 1 ? bn_pb_len(r, &sub) : bn_pb_skip(r, f, w, 0);
        if (st == BN_OK && f == 1)
            st = bn_spm_read_piece(&sub, t, id++, spec, &seen);
        if (st != BN_OK)
            return st;
    }
    if (seen.unk < 0)
        return bn_error_set(BN_ERR_FORMAT, "the SentencePiece model has no unknown piece");
    if (spec->byte_fallback && seen.n_bytes != 256)
        return bn_error_set(BN_ERR_FORMAT, "byte_fallback is on but there are %d byte "
                            "pieces, not 256", seen.n_bytes);
    *unk = seen.unk;   /* as sentencepiece: the piece, whatever trainer_spec.unk_id says */
    return BN_OK;
}

bn_status bn_tok_load_spm_model(const void *data, size_t size, bn_tokenizer **out)
{
    bn_spm_spec spec = {
        .model_type = 1, .bos_id = 1, .eos_id = 2, .pad_id = -1,
        .add_dummy_prefix = true, .remove_extra_whitespaces = true,
        .escape_whitespaces = true,
    };
    bn_pb r = {.base = data, .pos = 0, .end = size};
    int64_t n = 0;
    bn_status st = bn_spm_read_specs(&r, &spec, &n);
    if (st == BN_OK)
        st = bn_spm_check_spec(&spec, n);
    if (st != BN_OK)
        return bn_error_wrap(BN_OK, "reading a SentencePiece model of %zu bytes", size);
    bn_tokenizer *t = NULL;
    st = bn_tok_create(BN_TOKENIZER_SPM, (int32_t)n, &t);
    if (st == BN_OK) {
        r = (bn_pb){.base = data, .pos = 0, .end = size};
        st = bn_spm_read_pieces(&r, t, &spec, &t->unk);
    }
    if (st == BN_OK) {
        t->bos = spec.bos_id >= 0 ? spec.bos_id : -1;
        t->eos = spec.eos_id >= 0 ? spec.eos_id : -1;
        t->pad = spec.pad_id >= 0 ? spec.pad_id : -1;
        t->add_bos = true;
        t->add_space_prefix = spec.add_dummy_prefix;
        st = bn_tok_spm_init(t);
    }
    if (st == BN_OK)
        st = bn_tok_finish(t);
    if (st != BN_OK) {
        bn_tokenizer_free(t);
        return bn_error_wrap(BN_OK, "reading a SentencePiece model of %zu bytes", size);
    }
    *out = t;
    return BN_OK;
}
