/*
 * fuzz_tokenizer_model.c - a libFuzzer target for the reader of SentencePiece
 * tokenizer.model files (a protobuf ModelProto).
 *
 * Each input is read with bn_tok_load_spm_model straight from libFuzzer's buffer (of
 * exactly the input's size, so ASan sees any read past it); fuzz_tok_check.c checks the
 * outcome, and the live block count must then be where it was.
 *
 * Built with -DBN_FUZZ_SEED_WRITER instead (no -fsanitize=fuzzer), the file is a small
 * program writing the seed corpus: `fuzz_tokenizer_model_seeds DATA DIR` cuts the
 * LLaMA 2 tokenizer.model in DATA/tokenizer/llama2 down to its first 600 pieces (the
 * unknown and control pieces, the 256 byte pieces, the commonest merges) with its
 * trainer and normalizer specs as they are, and writes three variants: that; one
 * without byte pieces and with byte_fallback off; one with user-defined, unused and
 * control pieces among the merges and no dummy prefix. Each seed must load.
 * scripts/fuzz.sh builds both and runs the fuzzer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_tok_check.h"
#include "tokenizer/tokenizer_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    bn_fuzz_tok_quiet_log();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    bn_error_clear();
    bn_tokenizer *t = NULL;
    bn_status st = bn_tok_load_spm_model(data, size, &t);
    bn_fuzz_tok_check_load("fuzz_tokenizer_model", BN_TOKENIZER_SPM, st, t, "SentencePiece");
    bn_mem_get_stats(&after);
    if (after.live_blocks != before.live_blocks) {
        fprintf(stderr, "fuzz_tokenizer_model: live blocks differ after the tokenizer is "
                "freed: a leak\n");
        abort();
    }
    return 0;
}

#ifdef BN_FUZZ_SEED_WRITER
/* ------------------------------------------------------------------ seeds */

/* Pieces kept from the real model. */
#define BN_SEED_PIECES 600

/* A growing output buffer. */
typedef struct bn_seed_buf {
    uint8_t *p;
    size_t   n, cap;
} bn_seed_buf;

static void bn_seed_put(bn_seed_buf *b, const void *data, size_t n)
{
    if (b->cap - b->n < n) {
        b->cap = 2 * (b->n + n);
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            fprintf(stderr, "fuzz_tokenizer_model_seeds: out of memory\n");
            exit(1);
        }
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void bn_seed_varint(bn_seed_buf *b, uint64_t v)
{
    uint8_t c[10];
    size_t n = 0;
    do {
        c[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    bn_seed_put(b, c, n);
}

/* A length-delimited field: the bytes of `a` then of `b` (appended fields). */
static void bn_seed_message(bn_seed_buf *out, uint32_t field, const uint8_t *a, size_t na,
                            const bn_seed_buf *b)
{
    bn_seed_varint(out, (uint64_t)field << 3 | 2);
    bn_seed_varint(out, na + b->n);
    bn_seed_put(out, a, na);
    bn_seed_put(out, b->p, b->n);
}

/* One field of the real file, read with every length checked (the reader under test is
 * not trusted to do it). */
typedef struct bn_seed_field {
    uint32_t       field, wire;
    const uint8_t *start, *value, *end;   /* the key, the value's bytes, past them */
    uint64_t       varint;                /* wire type 0 */
} bn_seed_field;

static bool bn_seed_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t c = *(*p)++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (c < 0x80)
            return true;
    }
    return false;
}

/* The field at *p, moving *p past it; false at a malformed one. */
static bool bn_seed_next(const uint8_t **p, const uint8_t *end, bn_seed_field *f)
{
    uint64_t key = 0, n = 0;
    f->start = *p;
    if (!bn_seed_read_varint(p, end, &key))
        return false;
    f->field = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    if (f->wire == 0) {
        if (!bn_seed_read_varint(p, end, &f->varint))
            return false;
        f->value = f->start;
        f->end = *p;
        return true;
    }
    if (f->wire == 2 && !bn_seed_read_varint(p, end, &n))
        return false;
    if (f->wire != 2)
        n = f->wire == 5 ? 4 : f->wire == 1 ? 8 : UINT64_MAX;   /* no groups here */
    if (n > (uint64_t)(end - *p))
        return false;
    f->value = *p;
    *p += n;
    f->end = *p;
    return true;
}

/* The type field of a SentencePiece message (NORMAL when absent). */
static uint64_t bn_seed_piece_type(const bn_seed_field *piece)
{
    const uint8_t *p = piece->value;
    bn_seed_field f;
    uint64_t type = BN_TOKEN_NORMAL;
    while (p < piece->end && bn_seed_next(&p, piece->end, &f))
        if (f.field == 3 && f.wire == 0)
            type = f.varint;
    return type;
}

/* The variants. */
enum { BN_SEED_AS_IS, BN_SEED_NO_BYTES, BN_SEED_TYPES };

/* Copies the model with the first BN_SEED_PIECES pieces, changed as `variant` says. */
static bool bn_seed_cut(const uint8_t *data, size_t size, int variant, bn_seed_buf *out)
{
    const uint8_t *p = data, *end = data + size;
    int n_pieces = 0, n_normal = 0;
    while (p < end) {
        bn_seed_field f;
        if (!bn_seed_next(&p, end, &f))
            return false;
        bn_seed_buf extra = {0};
        if (f.field == 1 && f.wire == 2) {
            if (n_pieces++ >= BN_SEED_PIECES)
                continue;
            uint64_t type = bn_seed_piece_type(&f);
            if (variant == BN_SEED_NO_BYTES && type == BN_TOKEN_BYTE)
                continue;
            /* among the merges: every 40th user-defined, then unused, then control */
            if (variant == BN_SEED_TYPES && type == BN_TOKEN_NORMAL && ++n_normal % 40 == 0) {
                static const uint8_t types[3] = {BN_TOKEN_USER_DEFINED, BN_TOKEN_UNUSED,
                                                 BN_TOKEN_CONTROL};
                bn_seed_varint(&extra, 3 << 3 | 0);
                bn_seed_varint(&extra, types[(n_normal / 40) % 3]);
            }
        } else if (f.field == 2 && f.wire == 2 && variant == BN_SEED_NO_BYTES) {
            bn_seed_varint(&extra, 35 << 3 | 0);   /* trainer_spec.byte_fallback */
            bn_seed_varint(&extra, 0);
        } else if (f.field == 3 && f.wire == 2 && variant == BN_SEED_TYPES) {
            bn_seed_varint(&extra, 3 << 3 | 0);    /* normalizer_spec.add_dummy_prefix */
            bn_seed_varint(&extra, 0);
        }
        if (extra.n)
            bn_seed_message(out, f.field, f.value, (size_t)(f.end - f.value), &extra);
        else
            bn_seed_put(out, f.start, (size_t)(f.end - f.start));
        free(extra.p);
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_tokenizer_model_seeds DATA_DIR OUT_DIR\n");
        return 2;
    }
    bn_fuzz_tok_quiet_log();
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer/llama2/tokenizer.model", argv[1]);
    FILE *f = fopen(path, "rb");
    uint8_t *data = malloc(1 << 21);
    size_t size = f && data ? fread(data, 1, 1 << 21, f) : 0;
    if (f)
        fclose(f);
    if (size == 0 || size == 1 << 21) {
        fprintf(stderr, "fuzz_tokenizer_model_seeds: cannot read %s\n", path);
        return 1;
    }
    static const char *const names[] = {"llama2", "llama2-no-bytes", "llama2-types"};
    int bad = 0;
    for (int v = 0; v < 3; v++) {
        bn_seed_buf out = {0};
        bn_tokenizer *t = NULL;
        bool ok = bn_seed_cut(data, size, v, &out);
        if (ok && bn_tok_load_spm_model(out.p, out.n, &t) != BN_OK) {
            fprintf(stderr, "fuzz_tokenizer_model_seeds: %s does not load: %s\n", names[v],
                    bn_last_error());
            ok = false;
        }
        bn_tokenizer_free(t);
        snprintf(path, sizeof path, "%s/%s", argv[2], names[v]);
        FILE *o = ok ? fopen(path, "wb") : NULL;
        ok = o && fwrite(out.p, 1, out.n, o) == out.n;
        if (o && fclose(o) != 0)
            ok = false;
        printf("fuzz_tokenizer_model_seeds: %s: %zu bytes%s\n", path, out.n,
               ok ? "" : " (FAILED)");
        bad |= !ok;
        free(out.p);
    }
    free(data);
    return bad;
}
#endif
