/*
 * test_tok_bpe.c - the byte-level BPE tokenizer against Hugging Face tokenizers.
 *
 * With the LLaMA 3 tokenizer.json of ../shared/data (skipped when absent): identical
 * ids on every case of ../shared/data/tokenizer/llama3-cases.json and of
 * tests/fixtures/tokenizer/llama3-cases.json (made by
 * scripts/fixtures/tokenizer/make_llama3_cases.mjs with HF tokenizers 0.22.2), on the
 * whole of tinyshakespeare and on a 1 MB single line (count and hash of the ids);
 * every code point splits as in HF (a sample; all with BITNET_SLOW=1);
 * decode(encode(text)) gives the text back byte for byte; special-token strings are
 * plain text with parse_special off; invalid UTF-8 and NUL bytes encode and decode
 * losslessly; the special ids come from tokenizer_config.json. Prints the encoding
 * speed. Small synthetic tokenizer.json files cover the GPT-2 pre-tokenizer, merges
 * given as pairs, the BOS of a TemplateProcessing, a damaged vocabulary, malformed
 * files and failed allocations.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"
#include "tokenizer/tokenizer_internal.h"

#ifndef BN_SHARED_DATA_DIR
#define BN_SHARED_DATA_DIR "../shared/data"
#endif
#ifndef BN_FIXTURE_DIR
#define BN_FIXTURE_DIR "tests/fixtures"
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Prints text with C escapes for non-printable bytes, at most `max` bytes of it. */
static void print_escaped(const char *text, size_t len, size_t max)
{
    fputc('"', stderr);
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c >= 0x20 && c != 0x7f)
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, len > max ? "\"...(%zu bytes)" : "\"", len);
}

static void print_ids(const char *label, const bn_token *ids, size_t n)
{
    fprintf(stderr, "  %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 64; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}

/* Encodes with the default parameters (special tokens matched, no BOS). */
static bn_status encode(const bn_tokenizer *t, const char *text, size_t len, bn_token **ids,
                        size_t *n)
{
    return bn_tokenize(t, text, len, NULL, ids, n);
}

/* decode(ids) == text, byte for byte. */
static bool decodes_to(const bn_tokenizer *t, const bn_token *ids, size_t n,
                       const char *text, size_t len)
{
    char *back = NULL;
    size_t back_len = 0;
    if (bn_detokenize(t, ids, n, true, &back, &back_len) != BN_OK)
        return false;
    bool same = back_len == len && memcmp(back, text, len) == 0;
    if (!same) {
        fprintf(stderr, "  decoded ");
        print_escaped(back, back_len, 200);
        fprintf(stderr, "\n  expected ");
        print_escaped(text, len, 200);
        fputc('\n', stderr);
    }
    bn_free(back);
    return same;
}

/* 32-bit FNV-1a over each id's 4 little-endian bytes (as the generator computes it). */
static uint32_t fnv1a_ids(const bn_token *ids, size_t n)
{
    uint32_t h = 0x811c9dc5u;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) {
            h ^= ((uint32_t)ids[i] >> (8 * k)) & 0xff;
            h *= 0x01000193u;
        }
    return h;
}

/* ------------------------------------------------------------------ HF cases */

/* Checks every case of a cases file: a JSON array, or an object with "cases". */
static void check_cases_file(const bn_tokenizer *t, const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    CHECK(root != NULL, "%s: %s (line %d)", path, jerr.text, jerr.line);
    if (!root)
        return;
    json_t *cases = json_is_array(root) ? root : json_object_get(root, "cases");
    CHECK(json_array_size(cases) > 0, "%s: no cases", path);
    size_t n_mismatch = 0, n_decode_bad = 0, n_ids_total = 0;
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *jc = json_array_get(cases, c);
        const char *text = json_string_value(json_object_get(jc, "text"));
        size_t len = json_string_length(json_object_get(jc, "text"));
        json_t *jids = json_object_get(jc, "ids");
        if (!text || !json_is_array(jids)) {
            CHECK(false, "%s: case %zu is malformed", path, c);
            continue;
        }
        size_t n_want = json_array_size(jids);
        bn_token *want = malloc((n_want + 1) * sizeof *want);
        for (size_t i = 0; i < n_want; i++)
            want[i] = (bn_token)json_integer_value(json_array_get(jids, i));
        bn_token *ids = NULL;
        size_t n = 0;
        bn_status st = encode(t, text, len, &ids, &n);
        CHECK(st == BN_OK, "%s: case %zu: %s", path, c, bn_last_error());
        if (st == BN_OK) {
            n_ids_total += n;
            bool same = n == n_want && memcmp(ids, want, n * sizeof *ids) == 0;
            if (!same && n_mismatch++ < 20) {
                fprintf(stderr, "%s: case %zu: ids differ for ", path, c);
                print_escaped(text, len, 300);
                fputc('\n', stderr);
                print_ids("Hugging Face", want, n_want);
                print_ids("libbitnet", ids, n);
            }
            const char *dec = json_string_value(json_object_get(jc, "decoded"));
            size_t dec_len = json_string_length(json_object_get(jc, "decoded"));
            if (!decodes_to(t, want, n_want, dec ? dec : text, dec ? dec_len : len))
                fprintf(stderr, "%s: case %zu: decode(HF ids) differs\n", path, c),
                    n_decode_bad++;
            else if (!dec && !decodes_to(t, ids, n, text, len))
                fprintf(stderr, "%s: case %zu: decode(encode(text)) differs\n", path, c),
                    n_decode_bad++;
        }
        bn_free(ids);
        free(want);
    }
    CHECK(n_mismatch == 0, "%s: %zu of %zu cases give other ids than Hugging Face", path,
          n_mismatch, json_array_size(cases));
    CHECK(n_decode_bad == 0, "%s: %zu cases do not decode back", path, n_decode_bad);
    printf("%s: %zu cases (%zu ids), %zu mismatches\n", path, json_array_size(cases),
           n_ids_total, n_mismatch);
    json_decref(root);
}

/* ------------------------------------------------------------------ byte input */

/* Encodes bytes, checks that no id is special and that decoding gives them back. */
static void check_lossless(const bn_tokenizer *t, const char *label, const char *bytes,
                           size_t len)
{
    bn_token *ids = NULL;
    size_t n = 0;
    bn_tokenize_params p = bn_tokenize_default_params();
    p.parse_special = false;
    bn_status st = bn_tokenize(t, bytes, len, &p, &ids, &n);
    CHECK(st == BN_OK, "%s: %s", label, bn_last_error());
    if (st != BN_OK)
        return;
    bool plain = true;
    for (size_t i = 0; i < n; i++)
        plain = plain && ids[i] >= 0 && ids[i] < 128000;
    CHECK(plain, "%s: a special or out-of-range id", label);
    CHECK(n > 0 || len == 0, "%s: no ids", label);
    CHECK(decodes_to(t, ids, n, bytes, len), "%s: does not decode back", label);
    bn_free(ids);
}

/* Invalid UTF-8, NUL bytes, special-token strings as plain text. */
static void check_bytes(const bn_tokenizer *t)
{
    static const struct { const char *label; const char *s; size_t n; } cases[] = {
        {"lone continuation", "\x80", 1},
        {"0xff 0xfe", "\xff\xfe", 2},
        {"invalid inside a word", "abc\x80" "def", 7},
        {"truncated 2-byte", "\xc3(", 2},
        {"truncated 3-byte at end", "euro \xe2\x82", 7},
        {"overlong slash", "\xc0\xaf", 2},
        {"overlong NUL", "\xc0\x80", 2},
        {"surrogate", "\xed\xa0\x80", 3},
        {"above U+10FFFF", "\xf4\x90\x80\x80", 4},
        {"five-byte form", "\xf8\x88\x80\x80\x80", 5},
        {"NULs", "a\0b\0\0c", 6},
        {"only NUL", "\0", 1},
        {"NUL and spaces", " \0 \0\n\0", 6},
        {"invalid among spaces", "   \xff   \n\xfe\n", 10},
        {"mixed", "caf\xc3\xa9 \xe9t\xe9 \xf0\x9f\x98 \xf0\x9f\x98\x80", 19},
        {"eot as text", "<|eot_id|>", 10},
        {"header as text", "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", 52},
        {"bot as text", "<|begin_of_text|>Hello", 22},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_lossless(t, cases[i].label, cases[i].s, cases[i].n);

    unsigned char all[512];
    for (int i = 0; i < 512; i++)
        all[i] = (unsigned char)(i < 256 ? i : 511 - i);
    check_lossless(t, "all 256 bytes up and down", (const char *)all, sizeof all);

    /* 64 KiB of pseudo-random bytes */
    size_t n_rand = 1 << 16;
    char *rnd = malloc(n_rand);
    uint32_t s = 1;
    for (size_t i = 0; i < n_rand; i++) {
        s = s * 1103515245u + 12345u;
        rnd[i] = (char)(s >> 16);
    }
    check_lossless(t, "random bytes", rnd, n_rand);
    free(rnd);

    /* Bytes that no regex match covers form their own pre-token: the ids around them
     * are those of the valid parts alone. */
    bn_token *a = NULL, *b = NULL, *c = NULL, *ab = NULL;
    size_t na = 0, nb = 0, nc = 0, nab = 0;
    CHECK_OK(encode(t, "Hello", 5, &a, &na));
    CHECK_OK(encode(t, "\xff\xfe", 2, &b, &nb));
    CHECK_OK(encode(t, " world", 6, &c, &nc));
    CHECK_OK(encode(t, "Hello\xff\xfe world", 13, &ab, &nab));
    bool same = a && b && c && ab && nab == na + nb + nc &&
                memcmp(ab, a, na * sizeof *a) == 0 &&
                memcmp(ab + na, b, nb * sizeof *b) == 0 &&
                memcmp(ab + na + nb, c, nc * sizeof *c) == 0;
    CHECK(same, "\"Hello\\xff\\xfe world\" is not Hello + \\xff\\xfe + \" world\"");
    bn_free(a), bn_free(b), bn_free(c), bn_free(ab);

    /* the special ids exist and parse_special decides */
    bn_token *ids = NULL;
    size_t n = 0;
    CHECK_OK(encode(t, "<|eot_id|>", 10, &ids, &n));
    CHECK(ids && n == 1 && ids[0] == 128009, "<|eot_id|> with parse_special: %zu ids, first %d",
          n, ids && n ? ids[0] : -1);
    bn_free(ids);
}

/* ------------------------------------------------------------------ code points */

/* Appends the UTF-8 of code point cp. */
static size_t put_utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Each code point's class as Hugging Face's regex engine sees it: the blocks of the
 * fixture (c "a" c "1" c " " c "  " c "\n" c "." c c "'s" c for every stride-th code
 * point; see the generator)
 * give the same number and hash of ids. Blocks marked slow (every code point) run
 * with BITNET_SLOW=1. */
static void check_codepoints(const bn_tokenizer *t, const json_t *blocks)
{
    bool slow = getenv("BITNET_SLOW") && strcmp(getenv("BITNET_SLOW"), "1") == 0;
    CHECK(json_array_size(blocks) > 0, "the fixture has no code point blocks");
    size_t n_blocks = 0, n_cps = 0;
    for (size_t b = 0; b < json_array_size(blocks); b++) {
        const json_t *blk = json_array_get(blocks, b);
        if (json_is_true(json_object_get(blk, "slow")) && !slow)
            continue;
        uint32_t first = (uint32_t)json_integer_value(json_object_get(blk, "first"));
        uint32_t last = (uint32_t)json_integer_value(json_object_get(blk, "last"));
        uint32_t stride = (uint32_t)json_integer_value(json_object_get(blk, "stride"));
        if (stride == 0 || last < first || last > 0x10ffff) {
            CHECK(false, "code point block %zu is malformed", b);
            continue;
        }
        size_t n_max = (last - first) / stride + 1;
        char *text = malloc(n_max * 48 + 1);
        size_t len = 0;
        for (uint32_t cp = first; cp <= last; cp += stride) {
            if (cp >= 0xd800 && cp <= 0xdfff)
                continue;
            static const char *const after[] = {"a", "1", " ", "  ", "\n", ".", "", "'s", ""};
            char c[4];
            size_t k = put_utf8(cp, c);
            for (int i = 0; i < 9; i++) {
                memcpy(text + len, c, k);
                len += k;
                memcpy(text + len, after[i], strlen(after[i]));
                len += strlen(after[i]);
            }
            n_cps++;
        }
        bn_token *ids = NULL;
        size_t n = 0;
        bn_status st = encode(t, text, len, &ids, &n);
        CHECK(st == BN_OK, "code points U+%04X..U+%04X: %s", first, last, bn_last_error());
        if (st == BN_OK) {
            size_t n_want = (size_t)json_integer_value(json_object_get(blk, "n_ids"));
            uint32_t h_want = (uint32_t)json_integer_value(json_object_get(blk, "fnv1a"));
            CHECK(n == n_want && fnv1a_ids(ids, n) == h_want, "code points U+%04X..U+%04X "
                  "(every %u): %zu ids, Hugging Face %zu (or another hash)", first, last,
                  stride, n, n_want);
            CHECK(decodes_to(t, ids, n, text, len), "code points U+%04X..U+%04X: decode",
                  first, last);
        }
        bn_free(ids);
        free(text);
        n_blocks++;
    }
    printf("code points: %zu blocks, %zu code points%s\n", n_blocks, n_cps,
           slow ? "" : " (BITNET_SLOW=1 checks all of them)");
}

/* ------------------------------------------------------------------ big inputs */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    *len = fread(p, 1, (size_t)n, f);
    fclose(f);
    return p;
}

/* Encodes a large text, prints the speed, checks the round trip and, when `ref` is
 * given, the count and hash of the ids. */
static void check_big(const bn_tokenizer *t, const char *label, const char *text, size_t len,
                      const json_t *ref)
{
    bn_token *ids = NULL;
    size_t n = 0;
    bn_tokenize_params p = bn_tokenize_default_params();
    p.parse_special = false;
    double t0 = now_s();
    bn_status st = bn_tokenize(t, text, len, &p, &ids, &n);
    double dt = now_s() - t0;
    CHECK(st == BN_OK, "%s: %s", label, bn_last_error());
    if (st != BN_OK)
        return;
    printf("%-34s %8zu bytes -> %7zu ids in %7.1f ms: %6.2f MB/s\n", label, len, n,
           1e3 * dt, (double)len / 1e6 / dt);
    if (ref) {
        size_t n_want = (size_t)json_integer_value(json_object_get(ref, "n_ids"));
        uint32_t h_want = (uint32_t)json_integer_value(json_object_get(ref, "fnv1a"));
        uint32_t h = fnv1a_ids(ids, n);
        CHECK(n == n_want && h == h_want, "%s: %zu ids (hash %u), Hugging Face %zu (hash %u)",
              label, n, h, n_want, h_want);
        const json_t *first = json_object_get(ref, "first");
        for (size_t i = 0; i < json_array_size(first) && i < n; i++)
            CHECK(ids[i] == json_integer_value(json_array_get(first, i)),
                  "%s: id %zu is %d, Hugging Face %lld", label, i, ids[i],
                  (long long)json_integer_value(json_array_get(first, i)));
    }
    CHECK(decodes_to(t, ids, n, text, len), "%s: does not decode back", label);
    bn_free(ids);
}

static void check_corpora(const bn_tokenizer *t)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer/llama3-cases.json", BN_FIXTURE_DIR);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    CHECK(root != NULL, "%s: %s (line %d)", path, jerr.text, jerr.line);
    json_t *corpora = json_object_get(root, "corpora");
    CHECK(json_object_get(corpora, "shakespeare") && json_object_get(corpora, "shakespeare_line"),
          "%s: no corpora", path);
    check_codepoints(t, json_object_get(root, "codepoints"));
    size_t len = 0;
    snprintf(path, sizeof path, "%s/corpus/tinyshakespeare.txt", BN_SHARED_DATA_DIR);
    char *text = slurp(path, &len);
    if (text) {
        check_big(t, "tinyshakespeare", text, len, json_object_get(corpora, "shakespeare"));
        /* one 1 MB line: the first 1,000,000 bytes, newlines made spaces */
        size_t n_line = len < 1000000 ? len : 1000000;
        for (size_t i = 0; i < n_line; i++)
            text[i] = text[i] == '\n' ? ' ' : text[i];
        check_big(t, "1 MB single line", text, n_line,
                  json_object_get(corpora, "shakespeare_line"));
        free(text);
    } else {
        printf("test_tok_bpe: no %s: corpus checks skipped\n", path);
    }
    json_decref(root);

    /* pathological single pre-tokens and inputs of 1 MB */
    size_t n = 1 << 20;
    char *big = malloc(n);
    memset(big, 'a', n);
    check_big(t, "1 MB of 'a' (one pre-token)", big, n, NULL);
    memset(big, ' ', n);
    check_big(t, "1 MB of spaces", big, n, NULL);
    for (size_t i = 0; i < n; i++)
        big[i] = "7\n \xe6\x97\xa5"[i % 6];
    check_big(t, "1 MB of digits/newlines/CJK", big, n, NULL);
    uint32_t s = 7;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        big[i] = (char)(s >> 16);
    }
    check_big(t, "1 MB of random bytes", big, n, NULL);
    free(big);
}

/* ------------------------------------------------------------------ LLaMA 3 */

static void check_llama3(const char *path)
{
    bn_tokenizer *t = NULL;
    double t0 = now_s();
    bn_status st = bn_tokenizer_load_file(path, &t);
    double dt = now_s() - t0;
    CHECK(st == BN_OK, "loading %s: %s", path, bn_last_error());
    if (st != BN_OK)
        return;
    printf("loaded %s in %.0f ms\n", path, 1e3 * dt);
    CHECK(bn_tokenizer_kind_of(t) == BN_TOKENIZER_BPE, "kind");
    CHECK(bn_tokenizer_n_vocab(t) == 128256, "n_vocab %d", bn_tokenizer_n_vocab(t));
    /* tokenizer_config.json: bos_token <|begin_of_text|>, eos_token <|end_of_text|>, no
     * add_bos_token (and tokenizer.json has no TemplateProcessing) */
    CHECK(bn_tokenizer_bos(t) == 128000, "bos %d", bn_tokenizer_bos(t));
    CHECK(bn_tokenizer_eos(t) == 128001, "eos %d", bn_tokenizer_eos(t));
    CHECK(bn_tokenizer_eot(t) == 128009, "eot %d", bn_tokenizer_eot(t));
    CHECK(!bn_tokenizer_wants_bos(t), "wants_bos");
    CHECK(bn_tokenizer_is_eog(t, 128009) && bn_tokenizer_is_eog(t, 128001), "is_eog");
    CHECK(bn_tokenizer_token_type(t, 128000) == BN_TOKEN_CONTROL, "type of BOS");
    CHECK(bn_tokenizer_token_type(t, 9906) == BN_TOKEN_NORMAL, "type of 'Hello'");
    size_t len = 0;
    const char *piece = bn_tokenizer_piece(t, 220, &len);
    CHECK(piece && len == 2 && memcmp(piece, "\xc4\xa0", 2) == 0, "piece 220 is not 'Ġ'");
    CHECK(bn_tokenizer_find(t, "Hello", 5) == 9906, "find Hello");

    /* the chat template came from tokenizer_config.json */
    bn_chat_message msgs[] = {{"user", "Hi"}};
    char *chat = NULL;
    CHECK_OK(bn_chat_format(t, NULL, msgs, 1, true, &chat, &len));
    bn_free(chat);

    char cases[512];
    snprintf(cases, sizeof cases, "%s/tokenizer/llama3-cases.json", BN_SHARED_DATA_DIR);
    check_cases_file(t, cases);
    snprintf(cases, sizeof cases, "%s/tokenizer/llama3-cases.json", BN_FIXTURE_DIR);
    check_cases_file(t, cases);
    check_bytes(t);
    check_corpora(t);
    bn_tokenizer_free(t);
}

/* ------------------------------------------------------------------ synthetic files */

static char tmpdir[256];

/* GPT-2's byte-level character for byte b, as UTF-8 (written independently of the
 * library's table). */
static int byte_char(int b, char *out)
{
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
        int k = 0;
        for (int x = 0; x < b; x++)
            k += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174);
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

/* Writes a small byte-level tokenizer.json: the 256 byte tokens (ids 0..255, minus
 * `drop_byte` when >= 0), the merges "h e", "l l", "he ll", "hell o", "Ġ w" (ids 256..)
 * as strings or as pairs, `pre` as the pre_tokenizer JSON, an added special <s> (id
 * 300) with a TemplateProcessing that puts it first when `with_template`, and an added
 * plain "€uro" (id 301; € is outside the byte-level alphabet). */
static void write_tiny(const char *name, const char *pre, bool pairs, int drop_byte,
                       bool with_template)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 300, \"content\": \"<s>\","
               " \"special\": true}, {\"id\": 301, \"content\": \"\u20acuro\", \"special\": "
               "false}],\n \"normalizer\": null,\n \"pre_tokenizer\": %s,\n", pre);
    if (with_template)
        fprintf(f, " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
                   "[{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": "
                   "{\"id\": \"A\", \"type_id\": 0}}]},\n");
    fprintf(f, " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"vocab\": {");
    for (int b = 0; b < 256; b++) {
        if (b == drop_byte)
            continue;
        char c[3] = {0};
        byte_char(b, c);
        if (c[0] == '"' || c[0] == '\\')
            fprintf(f, "\"\\%c\": %d, ", c[0], b);
        else
            fprintf(f, "\"%s\": %d, ", c, b);
    }
    fprintf(f, "\"he\": 256, \"ll\": 257, \"hell\": 258, \"hello\": 259, \"\xc4\xa0w\": 260},\n");
    if (pairs)
        fprintf(f, " \"merges\": [[\"h\", \"e\"], [\"l\", \"l\"], [\"he\", \"ll\"], "
                   "[\"hell\", \"o\"], [\"\xc4\xa0\", \"w\"]]}}\n");
    else
        fprintf(f, " \"merges\": [\"h e\", \"l l\", \"he ll\", \"hell o\", \"\xc4\xa0 w\"]}}\n");
    fclose(f);
}

static void write_text(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* bn_tok_bpe_init directly: pre-tokenizer names, merges it cannot use. */
static void check_init(void)
{
    bn_tokenizer *t = NULL;
    CHECK_OK(bn_tok_create(BN_TOKENIZER_BPE, 4, &t));
    if (!t)
        return;
    CHECK_OK(bn_tok_set_entry(t, 0, "a", 1, 0.0f, BN_TOKEN_NORMAL));
    CHECK_OK(bn_tok_set_entry(t, 1, "b", 1, 0.0f, BN_TOKEN_NORMAL));
    CHECK_OK(bn_tok_set_entry(t, 2, "ab", 2, 0.0f, BN_TOKEN_NORMAL));
    CHECK_OK(bn_tok_set_entry(t, 3, "<x>", 3, 0.0f, BN_TOKEN_CONTROL));
    const char *merges[] = {"a b", "b c"};   /* "c" is no token: skipped with a warning */
    const uint32_t lens[] = {3, 3};
    bn_status st = bn_tok_bpe_init(t, merges, lens, 2, "qwen2", false);
    CHECK(st == BN_ERR_UNSUPPORTED && strstr(bn_last_error(), "qwen2") && !t->impl,
          "pre-tokenizer qwen2: %s", bn_last_error());
    const char *names[] = {"llama3", "llama-bpe", "gpt2", NULL};
    for (int i = 0; i < 4; i++) {
        bn_log_set_level(BN_LOG_NONE);
        CHECK_OK(bn_tok_bpe_init(t, merges, lens, 2, names[i], i != 2));
        bn_log_set_level(BN_LOG_WARN);
        CHECK_OK(bn_tok_finish(t));
        bn_token *ids = NULL;
        size_t n = 0;
        /* "abba": one pre-token; a+b merge, then b and a stay apart */
        CHECK_OK(encode(t, "abba", 4, &ids, &n));
        CHECK(ids && n == 3 && ids[0] == 2 && ids[1] == 1 && ids[2] == 0, "%s: abba",
              names[i] ? names[i] : "NULL");
        bn_free(ids);
        /* a byte with no token is an error naming it */
        ids = NULL;
        st = encode(t, "abc", 3, &ids, &n);
        CHECK(st == BN_ERR_FORMAT && strstr(bn_last_error(), "0x63") && !ids, "abc: %s",
              bn_last_error());
        t->ops->free_impl(t->impl);
        t->impl = NULL;
        t->ops = NULL;
    }
    const char *bad[] = {"ab"};
    const uint32_t bad_len[] = {2};
    st = bn_tok_bpe_init(t, bad, bad_len, 1, "gpt2", false);
    CHECK(st == BN_ERR_FORMAT && strstr(bn_last_error(), "merge 0"), "merge without a "
          "space: %s", bn_last_error());
    bn_tokenizer_free(t);
}

static const char gpt2_pre[] = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
                               "\"trim_offsets\": true, \"use_regex\": true}";

static void check_tiny(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tiny.json", tmpdir);

    /* GPT-2 pre-tokenizer, merges as pairs, BOS from the template (no config here) */
    write_tiny("tiny.json", gpt2_pre, true, -1, true);
    bn_tokenizer *t = NULL;
    CHECK_OK(bn_tokenizer_load_file(path, &t));
    if (t) {
        CHECK(bn_tokenizer_n_vocab(t) == 302, "tiny n_vocab %d", bn_tokenizer_n_vocab(t));
        CHECK(bn_tokenizer_bos(t) == 300 && bn_tokenizer_wants_bos(t), "tiny bos %d",
              bn_tokenizer_bos(t));
        CHECK(bn_tokenizer_eos(t) == -1, "tiny eos %d", bn_tokenizer_eos(t));
        CHECK(bn_tokenizer_token_type(t, 280) == BN_TOKEN_UNUSED, "unused id type");
        bn_token *ids = NULL;
        size_t n = 0;
        /* "hello" -> h e l l o -> he l l o -> he ll o -> hell o -> hello;
         * " world" -> Ġw o r l d; " hellhello" is one pre-token: Ġ hell hello (the
         * ids of the byte tokens are the bytes) */
        CHECK_OK(encode(t, "hello world hellhello", 21, &ids, &n));
        bn_token expect[] = {259, 260, 'o', 'r', 'l', 'd', ' ', 258, 259};
        CHECK(ids && n == 9 && memcmp(ids, expect, sizeof expect) == 0,
              "tiny: %zu ids: %d %d %d %d %d %d %d %d %d", n, n > 0 ? ids[0] : -1,
              n > 1 ? ids[1] : -1, n > 2 ? ids[2] : -1, n > 3 ? ids[3] : -1,
              n > 4 ? ids[4] : -1, n > 5 ? ids[5] : -1, n > 6 ? ids[6] : -1,
              n > 7 ? ids[7] : -1, n > 8 ? ids[8] : -1);
        CHECK(ids && decodes_to(t, ids, n, "hello world hellhello", 21), "tiny decode");
        bn_free(ids);
        /* "'s" is its own GPT-2 pre-token; "<s>" is special */
        CHECK_OK(encode(t, "<s>it's", 7, &ids, &n));
        bn_token expect2[] = {300, 'i', 't', '\'', 's'};
        CHECK(ids && n == 5 && memcmp(ids, expect2, sizeof expect2) == 0, "tiny <s>it's");
        bn_free(ids);
        /* an added token outside the alphabet decodes to its own text */
        CHECK_OK(encode(t, "a\xe2\x82\xacuro", 7, &ids, &n));
        CHECK(ids && n == 2 && ids[0] == 'a' && ids[1] == 301, "tiny a€uro: %zu ids", n);
        CHECK(ids && decodes_to(t, ids, n, "a\xe2\x82\xacuro", 7), "tiny a€uro decode");
        bn_free(ids);
        bn_tokenizer_free(t);
        t = NULL;
    }

    /* merges as strings and a config: bos/eos/add_bos/chat template from it */
    write_tiny("tiny.json", gpt2_pre, false, -1, false);
    write_text("tokenizer_config.json", "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\":"
               " \"<s>\", \"add_bos_token\": true, \"chat_template\": [{\"name\": \"x\", "
               "\"template\": \"no\"}, {\"name\": \"default\", \"template\": "
               "\"<|start_header_id|>\"}]}");
    CHECK_OK(bn_tokenizer_load_file(path, &t));
    if (t) {
        CHECK(bn_tokenizer_bos(t) == 300 && bn_tokenizer_eos(t) == 300 &&
              bn_tokenizer_wants_bos(t), "tiny config: bos %d eos %d", bn_tokenizer_bos(t),
              bn_tokenizer_eos(t));
        bn_token *ids = NULL;
        size_t n = 0;
        CHECK_OK(encode(t, "hello", 5, &ids, &n));
        CHECK(ids && n == 1 && ids[0] == 259, "tiny string merges: hello");
        bn_free(ids);
        char *chat = NULL;
        size_t len = 0;
        bn_chat_message m = {"user", "x"};
        CHECK_OK(bn_chat_format(t, NULL, &m, 1, false, &chat, &len));
        bn_free(chat);
        bn_tokenizer_free(t);
        t = NULL;
    }
    write_text("tokenizer_config.json", "{\"bos_token\": \"<nope>\"}");
    bn_status st = bn_tokenizer_load_file(path, &t);
    CHECK(st == BN_ERR_FORMAT && strstr(bn_last_error(), "<nope>"), "unknown bos_token: %s",
          bn_last_error());
    write_text("tokenizer_config.json", "{\"bos_token\": ");
    st = bn_tokenizer_load_file(path, &t);
    CHECK(st == BN_ERR_FORMAT && strstr(bn_last_error(), "tokenizer_config.json"),
          "bad config: %s", bn_last_error());
    snprintf(path, sizeof path, "%s/tokenizer_config.json", tmpdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/tiny.json", tmpdir);

    /* a vocabulary without the token of byte 'q': encoding a q fails, naming it */
    write_tiny("tiny.json", gpt2_pre, false, 'q', false);
    CHECK_OK(bn_tokenizer_load_file(path, &t));
    if (t) {
        bn_token *ids = NULL;
        size_t n = 0;
        CHECK_OK(encode(t, "hello", 5, &ids, &n));
        bn_free(ids);
        ids = NULL;
        st = encode(t, "quiet", 5, &ids, &n);
        CHECK(st == BN_ERR_FORMAT && strstr(bn_last_error(), "0x71") && !ids,
              "missing byte: %s", bn_last_error());
        bn_tokenizer_free(t);
        t = NULL;
    }

    /* unsupported pre-tokenizers and models, malformed files */
    static const struct { const char *json; bn_status want; const char *says; } bad[] = {
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", BN_ERR_UNSUPPORTED,
         "WordPiece"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": "
         "\"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}, \"behavior\": \"Isolated\"}, "
         "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}}",
         BN_ERR_UNSUPPORTED, "\\w+"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"Metaspace\"}}", BN_ERR_UNSUPPORTED, "Metaspace"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true}}",
         BN_ERR_UNSUPPORTED, "add_prefix_space"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"normalizer\": {\"type\": \"NFC\"}, \"pre_tokenizer\": {\"type\": "
         "\"ByteLevel\", \"add_prefix_space\": false}}", BN_ERR_UNSUPPORTED, "NFC"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}}",
         BN_ERR_FORMAT, "model.vocab"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}}",
         BN_ERR_FORMAT, "two entries"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 100000000}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}}",
         BN_ERR_FORMAT, "100000000"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"aa\": 1}, \"merges\": "
         "[\"aa\"]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": "
         "false}}", BN_ERR_FORMAT, "merge 0"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}, "
         "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}}",
         BN_ERR_FORMAT, "merges[0]"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"added_tokens\": [{\"id\": 1, \"content\": \"\"}], \"pre_tokenizer\": "
         "{\"type\": \"ByteLevel\", \"add_prefix_space\": false}}", BN_ERR_FORMAT,
         "added_tokens[0]"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}", BN_ERR_FORMAT,
         "model.vocab"},
        {"{\"model\": ", BN_ERR_FORMAT, "line"},
        {"{}", BN_ERR_FORMAT, "model"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text("bad.json", bad[i].json);
        snprintf(path, sizeof path, "%s/bad.json", tmpdir);
        t = NULL;
        st = bn_tokenizer_load_file(path, &t);
        CHECK(st == bad[i].want && t == NULL && strstr(bn_last_error(), bad[i].says) &&
              strstr(bn_last_error(), "bad.json"), "bad file %zu: %s: %s", i,
              bn_status_str(st), bn_last_error());
        bn_tokenizer_free(t);
    }
    unlink(path);

    /* failed allocations while loading, then while encoding: OOM, nothing leaks */
    snprintf(path, sizeof path, "%s/tiny.json", tmpdir);
    write_tiny("tiny.json", gpt2_pre, true, -1, true);
    int failures = 0;
    for (uint64_t k = 1; k < 1000; k++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        t = NULL;
        bn_mem_fail_nth(k);
        st = bn_tokenizer_load_file(path, &t);
        bn_mem_fail_nth(0);
        bn_tokenizer_free(t);
        bn_mem_get_stats(&after);
        CHECK(st == BN_OK || st == BN_ERR_OOM, "load, allocation %llu: %s: %s",
              (unsigned long long)k, bn_status_str(st), bn_last_error());
        CHECK(after.live_blocks == before.live_blocks, "load, allocation %llu: %lld blocks "
              "leak", (unsigned long long)k, (long long)(after.live_blocks - before.live_blocks));
        if (st == BN_OK)
            break;
        failures++;
    }
    CHECK(failures > 5, "only %d failed loads", failures);
    printf("failure injection: %d failed loads", failures);
    t = NULL;
    CHECK_OK(bn_tokenizer_load_file(path, &t));
    failures = 0;
    for (uint64_t k = 1; t && k < 1000; k++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_token *ids = NULL;
        size_t n = 0;
        /* a long word grows the scratch memory; special tokens split the text */
        static const char text[] = "hello world<s>hellohellohellohellohellohellohellohello"
                                   "hellohellohellohellohellohellohellohellohellohello";
        bn_mem_fail_nth(k);
        st = encode(t, text, sizeof text - 1, &ids, &n);
        bn_mem_fail_nth(0);
        bn_free(ids);
        bn_mem_get_stats(&after);
        CHECK(st == BN_OK || st == BN_ERR_OOM, "encode, allocation %llu: %s: %s",
              (unsigned long long)k, bn_status_str(st), bn_last_error());
        CHECK(after.live_blocks == before.live_blocks, "encode, allocation %llu: %lld "
              "blocks leak", (unsigned long long)k,
              (long long)(after.live_blocks - before.live_blocks));
        if (st == BN_OK)
            break;
        failures++;
    }
    CHECK(failures >= 3, "only %d failed encodes", failures);
    printf(", %d failed encodes, no leaks\n", failures);
    bn_tokenizer_free(t);
    unlink(path);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_tok_bpe_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
    bn_mem_stats start, end;
    bn_mem_get_stats(&start);
    check_init();
    check_tiny();

    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer/llama3/tokenizer.json", BN_SHARED_DATA_DIR);
    bool have_llama3 = access(path, R_OK) == 0;
    if (have_llama3)
        check_llama3(path);
    bn_mem_get_stats(&end);
    CHECK(end.live_blocks == start.live_blocks, "%lld blocks leak",
          (long long)(end.live_blocks - start.live_blocks));
    rmdir(tmpdir);
    if (!have_llama3) {
        printf("test_tok_bpe: SKIP: %s is missing (LLaMA 3 conformance not run)\n", path);
        if (check_n_failed == 0)
            check_skip("test_tok_bpe", "no LLaMA 3 tokenizer.json");
    }
    return check_summary("test_tok_bpe");
}
