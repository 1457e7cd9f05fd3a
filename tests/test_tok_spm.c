/*
 * test_tok_spm.c - the SentencePiece BPE tokenizer (LLaMA 2 vocabulary) against
 * sentencepiece itself, and the tokenizer.model reader against malformed files.
 *
 * - tests/fixtures/tokenizer/llama2-cases.json (scripts/fixtures/make_spm_cases.py,
 *   from sentencepiece's spm_encode): every text must give the same ids (without BOS;
 *   "<s>" in a text is plain text to sentencepiece, so parse_special is off), and
 *   decode back to itself.
 * - When spm_encode is on the PATH, more texts are made here at random and encoded by
 *   it live (else that part prints SKIP and the rest runs).
 * - Bytes sentencepiece cannot take (invalid UTF-8: it turns them into U+FFFD) must
 *   decode back to the same bytes through byte fallback; a 1 MB line must encode
 *   quickly (the rate is printed, not checked).
 * - Small models built here byte by byte exercise what LLaMA's vocabulary lacks
 *   (user-defined pieces, UNUSED merge results split back, no byte fallback: runs of
 *   unknown characters collapse) with ids that spm_encode gave for them (checked live
 *   when it is there), and the reader's errors: truncation at every byte, bad varints
 *   and keys, lengths past the end, model types and normalizers it does not support,
 *   bad pieces; each refusal leaks nothing, and every allocation failure is handled.
 *
 * Needs ../shared/data/tokenizer/llama2/tokenizer.model: skipped (77) without it.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"
#include "tokenizer/tokenizer_internal.h"

#ifndef BN_SHARED_DATA_DIR
#define BN_SHARED_DATA_DIR BN_FIXTURE_DIR "/../../../shared/data"
#endif

#define LLAMA2_MODEL BN_SHARED_DATA_DIR "/tokenizer/llama2/tokenizer.model"
#define CASES_FILE   BN_FIXTURE_DIR "/tokenizer/llama2-cases.json"

/* ------------------------------------------------------------------ helpers */

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 1 << 16;
            unsigned char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *size = n;
    return buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A deterministic generator (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

/* Text of len bytes as a C string literal-ish form for messages (first 60 bytes). */
static const char *show(const char *text, size_t len)
{
    static char buf[300];
    size_t o = 0;
    for (size_t i = 0; i < len && i < 60 && o < sizeof buf - 8; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '\\' && c != 0x7f)
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, sizeof buf - o, "\\x%02x", c);
    }
    if (len > 60)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "...");
    buf[o] = '\0';
    return buf;
}

static const char *show_ids(const bn_token *ids, size_t n)
{
    static char buf[400];
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < sizeof buf - 24; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%d", i ? "," : "", ids[i]);
    if (o >= sizeof buf - 24)
        snprintf(buf + o, sizeof buf - o, "...");
    return buf;
}

/* Tokenizes with the given flags; NULL (and a failed check) on error. */
static bn_token *encode(const bn_tokenizer *t, const char *text, size_t len, bool add_bos,
                        bool parse_special, size_t *n)
{
    bn_tokenize_params p = bn_tokenize_default_params();
    p.add_bos = add_bos;
    p.parse_special = parse_special;
    bn_token *ids = NULL;
    bn_status st = bn_tokenize(t, text, len, &p, &ids, n);
    CHECK(st == BN_OK, "tokenize \"%s\": %s", show(text, len), bn_last_error());
    return st == BN_OK ? ids : NULL;
}

/* True when decoding ids gives exactly text[0, len). */
static bool decodes_to(const bn_tokenizer *t, const bn_token *ids, size_t n,
                       const char *text, size_t len)
{
    char *out = NULL;
    size_t out_len = 0;
    if (bn_detokenize(t, ids, n, false, &out, &out_len) != BN_OK) {
        fprintf(stderr, "detokenize: %s\n", bn_last_error());
        return false;
    }
    bool same = out_len == len && memcmp(out, text, len) == 0;
    if (!same)
        fprintf(stderr, "  decoded \"%s\"\n", show(out, out_len));
    bn_free(out);
    return same;
}

/* True when ids decode to text with each U+2581 as a space (sentencepiece cannot
 * tell that character from the space it stands for). */
static bool decodes_back(const bn_tokenizer *t, const bn_token *ids, size_t n,
                         const char *text, size_t len)
{
    char *spaced = malloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (len - i >= 3 && memcmp(text + i, "\xe2\x96\x81", 3) == 0) {
            spaced[o++] = ' ';
            i += 2;
        } else {
            spaced[o++] = text[i];
        }
    }
    bool same = decodes_to(t, ids, n, spaced, o);
    free(spaced);
    return same;
}

static bool same_ids(const bn_token *a, size_t na, const bn_token *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* ------------------------------------------------------------------ the LLaMA 2 model */

static void test_metadata(const bn_tokenizer *t)
{
    CHECK(bn_tokenizer_kind_of(t) == BN_TOKENIZER_SPM, "kind %d",
          (int)bn_tokenizer_kind_of(t));
    CHECK(bn_tokenizer_n_vocab(t) == 32000, "n_vocab %d", bn_tokenizer_n_vocab(t));
    CHECK(bn_tokenizer_bos(t) == 1, "bos %d", bn_tokenizer_bos(t));
    CHECK(bn_tokenizer_eos(t) == 2, "eos %d", bn_tokenizer_eos(t));
    CHECK(t->unk == 0, "unk %d", t->unk);
    CHECK(t->pad == -1, "pad %d", t->pad);
    CHECK(bn_tokenizer_wants_bos(t), "LLaMA adds BOS");
    CHECK(t->add_space_prefix, "LLaMA adds a dummy prefix");
    CHECK(bn_tokenizer_is_eog(t, 2) && !bn_tokenizer_is_eog(t, 1), "EOS ends generation");
    size_t len = 0;
    const char *p = bn_tokenizer_piece(t, 13, &len);
    CHECK(p && len == 6 && memcmp(p, "<0x0A>", 6) == 0, "piece 13 is <0x0A>");
    CHECK(bn_tokenizer_token_type(t, 13) == BN_TOKEN_BYTE, "13 is a byte token");
    CHECK(bn_tokenizer_token_type(t, 0) == BN_TOKEN_UNKNOWN, "0 is unknown");
    CHECK(bn_tokenizer_token_type(t, 1) == BN_TOKEN_CONTROL, "1 is control");
    CHECK(bn_tokenizer_token_type(t, 29871) == BN_TOKEN_NORMAL, "29871 is normal");
    CHECK(bn_tokenizer_find(t, "\xe2\x96\x81the", 6) == 278, "find(\"▁the\") = %d",
          bn_tokenizer_find(t, "\xe2\x96\x81the", 6));
    CHECK(bn_tokenizer_piece(t, 32000, &len) == NULL, "piece past the end");
}

/* Every case of the fixture: same ids as spm_encode, and back to the text. */
static void test_fixture_cases(const bn_tokenizer *t)
{
    json_error_t err;
    json_t *root = json_load_file(CASES_FILE, JSON_ALLOW_NUL, &err);
    CHECK(root && json_is_array(root), "%s: %s (line %d)", CASES_FILE, err.text, err.line);
    if (!root)
        return;
    size_t n_cases = json_array_size(root), mismatches = 0, bad_decodes = 0;
    for (size_t i = 0; i < n_cases; i++) {
        json_t *c = json_array_get(root, i);
        json_t *jt = json_object_get(c, "text"), *jids = json_object_get(c, "ids");
        CHECK(json_is_string(jt) && json_is_array(jids), "case %zu is malformed", i);
        if (!json_is_string(jt) || !json_is_array(jids))
            continue;
        const char *text = json_string_value(jt);
        size_t len = json_string_length(jt), n_want = json_array_size(jids);
        bn_token *want = malloc((n_want + 1) * sizeof *want);
        for (size_t k = 0; k < n_want; k++)
            want[k] = (bn_token)json_integer_value(json_array_get(jids, k));
        size_t n = 0;
        bn_token *ids = encode(t, text, len, false, false, &n);
        if (ids) {
            bool same = same_ids(ids, n, want, n_want);
            mismatches += !same;
            CHECK(same, "case %zu \"%s\":\n   got  %s", i, show(text, len), show_ids(ids, n));
            if (!same)
                fprintf(stderr, "   want %s\n", show_ids(want, n_want));
            bool back = decodes_back(t, ids, n, text, len);
            bad_decodes += !back;
            CHECK(back, "case %zu \"%s\" does not decode back", i, show(text, len));
            /* with BOS: the same ids after it */
            size_t nb = 0;
            bn_token *with_bos = encode(t, text, len, true, false, &nb);
            CHECK(with_bos && nb == n + 1 && with_bos[0] == 1 &&
                  same_ids(with_bos + 1, nb - 1, ids, n), "case %zu with BOS", i);
            bn_free(with_bos);
        }
        bn_free(ids);
        free(want);
    }
    printf("test_tok_spm: %zu fixture cases, %zu id mismatches, %zu decode mismatches\n",
           n_cases, mismatches, bad_decodes);
    CHECK(n_cases >= 500, "only %zu cases", n_cases);
    json_decref(root);
}

/* The tokenizer written as GGUF metadata (bn_tokenizer_write_gguf) and loaded back
 * gives spm_encode's ids on every fixture case, as the tokenizer.model it came from. */
static void test_written_gguf(const bn_tokenizer *from_model)
{
    char path[] = "/tmp/bitnet-test-spm-gguf-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temporary file");
    if (fd < 0)
        return;
    close(fd);
    bn_gguf_writer *w = NULL;
    CHECK_OK(bn_gguf_writer_create(&w));
    CHECK_OK(bn_gguf_writer_set_str(w, "general.architecture", "llama"));
    CHECK_OK(bn_tokenizer_write_gguf(from_model, w));
    CHECK_OK(bn_gguf_writer_write(w, path, NULL, NULL));
    bn_gguf_writer_free(w);
    bn_tokenizer *t = NULL;
    CHECK_OK(bn_tokenizer_load_file(path, &t));
    unlink(path);
    if (!t)
        return;
    CHECK(bn_tokenizer_kind_of(t) == BN_TOKENIZER_SPM && t->n_vocab == 32000 &&
          t->bos == 1 && t->eos == 2 && t->add_bos && t->add_space_prefix,
          "the written GGUF's family, size, special ids and flags");
    test_fixture_cases(t);
    bn_tokenizer_free(t);
}

/* Special tokens in the text, when parsed, are their ids. */
static void test_specials(const bn_tokenizer *t)
{
    const char *text = "<s>Hello</s> world";
    size_t n = 0;
    bn_token *ids = encode(t, text, strlen(text), false, true, &n);
    /* <s>, "Hello" without the dummy prefix (the text did not start with it), </s>,
     * "▁world": the run after a special token gets no prefix */
    bn_token hello = bn_tokenizer_find(t, "Hello", 5);
    bn_token world = bn_tokenizer_find(t, "\xe2\x96\x81world", 8);
    CHECK(ids && n == 4 && ids[0] == 1 && ids[1] == hello && ids[2] == 2 && ids[3] == world,
          "special tokens: %s", ids ? show_ids(ids, n) : "-");
    char *out = NULL;
    size_t out_len = 0;
    CHECK_OK(bn_detokenize(t, ids, n, true, &out, &out_len));
    CHECK(out && strcmp(out, text) == 0, "rendered \"%s\"", out ? out : "");
    bn_free(out);
    CHECK_OK(bn_detokenize(t, ids, n, false, &out, &out_len));
    CHECK(out && strcmp(out, "Hello world") == 0, "without specials \"%s\"", out ? out : "");
    bn_free(out);
    bn_free(ids);
}

/* Bytes sentencepiece would replace: every byte value, invalid sequences, NUL. */
static void test_raw_bytes(const bn_tokenizer *t)
{
    char all[256 * 2];
    for (int i = 0; i < 256; i++) {
        all[2 * i] = (char)i;
        all[2 * i + 1] = (char)(255 - i);
    }
    const struct { const char *s; size_t len; } cases[] = {
        {all, sizeof all},
        {"\xff", 1}, {"\x80", 1}, {"\xc0\xaf", 2}, {"\xe0\x80\xaf", 3},  /* overlong */
        {"\xed\xa0\x80", 3},              /* a surrogate */
        {"\xf4\x90\x80\x80", 4},          /* past U+10FFFF */
        {"\xe4\xb8", 2},                  /* a cut character */
        {"ab\xe4\xb8 cd", 7}, {"\xe4\xb8\xad\xe4", 4}, {"\0\0\0", 3}, {"a\0 b", 4},
        {" \xff ", 3}, {"\xf0\x9f\x98", 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = 0;
        bn_token *ids = encode(t, cases[c].s, cases[c].len, false, true, &n);
        CHECK(ids && decodes_back(t, ids, n, cases[c].s, cases[c].len),
              "raw bytes \"%s\" do not decode back", show(cases[c].s, cases[c].len));
        /* an invalid byte is its own byte token */
        bn_free(ids);
    }
    size_t n = 0;
    bn_token *ids = encode(t, "\xff", 1, false, false, &n);
    CHECK(ids && n == 2 && ids[0] == 29871 && ids[1] == 3 + 0xff,
          "\\xff -> %s (want 29871,258)", ids ? show_ids(ids, n) : "-");
    bn_free(ids);
    /* random bytes */
    char buf[64];
    for (int r = 0; r < 500; r++) {
        size_t len = 1 + rng_next() % sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(rng_next() & 0xff);
        ids = encode(t, buf, len, false, false, &n);
        CHECK(ids && decodes_back(t, ids, n, buf, len), "random bytes \"%s\"", show(buf, len));
        bn_free(ids);
    }
}

/* Encodes a 1 MB line and prints the rate; it must decode back. */
static void time_line(const bn_tokenizer *t, const char *what, const char *text, size_t len)
{
    size_t n = 0;
    double t0 = now_s();
    bn_token *ids = encode(t, text, len, false, false, &n);
    double dt = now_s() - t0;
    printf("test_tok_spm: 1 MB line of %s: %zu tokens in %.3f s (%.1f MB/s)\n", what, n, dt,
           (double)len / 1e6 / dt);
    CHECK(ids && decodes_back(t, ids, n, text, len), "the 1 MB line of %s", what);
    bn_free(ids);
}

static void test_long_lines(const bn_tokenizer *t)
{
    const size_t size = 1 << 20;
    char *text = malloc(size);
    /* words of several scripts */
    static const char *const words[] = {
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Hello,", "world!",
        "naïve", "café", "日本語", "中文", "한국어", "Привет", "😀", "12345", "x=y+1;",
        "https://example.com", "\t", "don't", "Größe", "ภาษาไทย", "𠀀",
    };
    size_t o = 0;
    while (o < size) {
        const char *w = words[rng_next() % (sizeof words / sizeof words[0])];
        size_t wl = strlen(w);
        if (o + wl + 1 > size)
            break;
        memcpy(text + o, w, wl);
        o += wl;
        text[o++] = rng_next() % 8 ? ' ' : (rng_next() % 2 ? '\n' : ',');
    }
    time_line(t, "mixed words", text, o);
    memset(text, 'a', size);
    time_line(t, "'a'", text, size);
    memset(text, ' ', size);
    time_line(t, "spaces", text, size);
    for (size_t i = 0; i < size; i++)
        text[i] = (char)(rng_next() & 0xff);
    time_line(t, "random bytes", text, size);
    free(text);
}

/* ------------------------------------------------------------------ spm_encode live */

static bool have_spm_encode(void)
{
    return system("command -v spm_encode >/dev/null 2>&1") == 0;
}

/* Runs spm_encode on n texts (one per line, no newline inside); ids[i] gets a
 * malloc'd array. False when it could not run. */
static bool spm_encode_texts(const char *model, char **texts, size_t n, bn_token **ids,
                             size_t *n_ids)
{
    char in[] = "/tmp/bn_spm_inXXXXXX", out[] = "/tmp/bn_spm_outXXXXXX";
    int fd_in = mkstemp(in), fd_out = mkstemp(out);
    if (fd_in < 0 || fd_out < 0) {
        if (fd_in >= 0) {
            close(fd_in);
            unlink(in);
        }
        if (fd_out >= 0) {
            close(fd_out);
            unlink(out);
        }
        return false;
    }
    close(fd_out);
    FILE *f = fdopen(fd_in, "wb");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", texts[i]);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "spm_encode --model '%s' --output_format=id --input %s "
             "--output %s 2>/dev/null", model, in, out);
    bool ok = system(cmd) == 0;
    FILE *g = ok ? fopen(out, "r") : NULL;
    char *line = NULL;
    size_t cap = 0;
    for (size_t i = 0; g && i < n; i++) {
        ssize_t got = getline(&line, &cap, g);
        ids[i] = malloc(((size_t)(got > 0 ? got : 0) / 2 + 2) * sizeof **ids);
        n_ids[i] = 0;
        if (got < 0) {
            ok = false;
            continue;
        }
        for (char *p = line, *end; ; p = end) {
            long v = strtol(p, &end, 10);
            if (end == p)
                break;
            ids[i][n_ids[i]++] = (bn_token)v;
        }
    }
    free(line);
    if (g)
        fclose(g);
    unlink(in);
    unlink(out);
    return ok && g;
}

/* Appends the UTF-8 form of code point cp. */
static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A random valid UTF-8 text without newlines, from a mix of ranges. */
static size_t random_text(char *o, size_t max_chars)
{
    static const uint32_t ranges[][2] = {
        {0x20, 0x7e}, {0x20, 0x7e}, {0x20, 0x7e}, {0x61, 0x7a}, {0x20, 0x20}, {0x09, 0x0d},
        {0xa0, 0x17f}, {0x370, 0x3ff}, {0x400, 0x4ff}, {0x590, 0x5ff}, {0x600, 0x6ff},
        {0x900, 0x97f}, {0xe00, 0xe7f}, {0x300, 0x36f}, {0x2000, 0x206f}, {0x3040, 0x30ff},
        {0x4e00, 0x9fff}, {0xac00, 0xd7a3}, {0x1f300, 0x1f64f}, {0x1f900, 0x1f9ff},
        {0x20000, 0x2a6df}, {0x1d400, 0x1d7ff}, {0xe000, 0xf8ff}, {0xfff0, 0xfffd},
        {0x00, 0x1f}, {0x2580, 0x2582},
    };
    size_t n = 1 + rng_next() % max_chars, len = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t *r = ranges[rng_next() % (sizeof ranges / sizeof ranges[0])];
        uint32_t cp = r[0] + rng_next() % (r[1] - r[0] + 1);
        if (cp == '\n' || cp == 0)   /* one text a line, written as a C string */
            cp = ' ';
        len += put_utf8(o + len, cp);
    }
    o[len] = '\0';
    return len;
}

/* Random texts: ours against spm_encode's. */
static void test_live_random(const bn_tokenizer *t)
{
    enum { N = 2000, MAX_CHARS = 60 };
    char **texts = malloc(N * sizeof *texts);
    size_t *lens = malloc(N * sizeof *lens);
    for (size_t i = 0; i < N; i++) {
        texts[i] = malloc(MAX_CHARS * 4 + 1);
        lens[i] = random_text(texts[i], MAX_CHARS);
    }
    bn_token **want = calloc(N, sizeof *want);
    size_t *n_want = calloc(N, sizeof *n_want);
    bool ran = spm_encode_texts(LLAMA2_MODEL, texts, N, want, n_want);
    CHECK(ran, "spm_encode did not run");
    size_t mismatches = 0;
    for (size_t i = 0; ran && i < N; i++) {
        size_t n = 0;
        bn_token *ids = encode(t, texts[i], lens[i], false, false, &n);
        bool same = ids && same_ids(ids, n, want[i], n_want[i]);
        mismatches += !same;
        if (mismatches <= 10) {
            CHECK(same, "random text \"%s\":\n   got  %s", show(texts[i], lens[i]),
                  ids ? show_ids(ids, n) : "-");
            if (!same)
                fprintf(stderr, "   want %s\n", show_ids(want[i], n_want[i]));
        }
        CHECK(ids && decodes_back(t, ids, n, texts[i], lens[i]), "random text %zu", i);
        bn_free(ids);
    }
    CHECK(mismatches == 0, "%zu of %d random texts differ from spm_encode", mismatches, N);
    printf("test_tok_spm: %d random texts against spm_encode live: %zu mismatches\n", N,
           mismatches);
    for (size_t i = 0; i < N; i++) {
        free(texts[i]);
        free(want[i]);
    }
    free(texts);
    free(lens);
    free(want);
    free(n_want);
}

/* ------------------------------------------------------------------ model builder */

/* A growing protobuf image. */
typedef struct pbuf {
    unsigned char *p;
    size_t         n, cap;
} pbuf;

static void pb_put(pbuf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) {
            fprintf(stderr, "test_tok_spm: out of memory\n");
            exit(1);
        }
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void pb_varint(pbuf *b, uint64_t v)
{
    unsigned char c[10];
    size_t n = 0;
    do {
        c[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            c[n] |= 0x80;
        n++;
    } while (v);
    pb_put(b, c, n);
}

static void pb_key(pbuf *b, uint32_t field, uint32_t wire) { pb_varint(b, field << 3 | wire); }

static void pb_uint(pbuf *b, uint32_t field, uint64_t v)
{
    pb_key(b, field, 0);
    pb_varint(b, v);
}

static void pb_bytes(pbuf *b, uint32_t field, const void *data, size_t n)
{
    pb_key(b, field, 2);
    pb_varint(b, n);
    pb_put(b, data, n);
}

static void pb_str(pbuf *b, uint32_t field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

static void pb_float(pbuf *b, uint32_t field, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    unsigned char c[4] = {(unsigned char)bits, (unsigned char)(bits >> 8),
                          (unsigned char)(bits >> 16), (unsigned char)(bits >> 24)};
    pb_key(b, field, 5);
    pb_put(b, c, 4);
}

static void pb_msg(pbuf *b, uint32_t field, pbuf *sub)
{
    pb_bytes(b, field, sub->p, sub->n);
    free(sub->p);
    *sub = (pbuf){0};
}

typedef struct mini_piece {
    const char *text;
    float       score;
    int         type;
} mini_piece;

/* The options of a small model; -1: the field is left out. */
typedef struct mini_opts {
    int         model_type;       /* 2 = BPE */
    int         byte_fallback;    /* also adds the 256 byte pieces when 1 */
    int         add_dummy_prefix;
    int         remove_extra_ws;
    const char *norm_name;
    const char *charsmap;
    int         bos_id;
    int         pad_id;
} mini_opts;

static mini_opts mini_defaults(void)
{
    return (mini_opts){.model_type = 2, .byte_fallback = 0, .add_dummy_prefix = 1,
                       .remove_extra_ws = 0, .norm_name = "identity", .charsmap = NULL,
                       .bos_id = 1, .pad_id = -1};
}

/* A vocabulary with what LLaMA's lacks: an UNUSED piece that merges can make, a
 * user-defined piece, and no byte pieces. */
static const mini_piece mini_vocab[] = {
    {"<unk>", 0, BN_TOKEN_UNKNOWN},        /* 0 */
    {"<s>", 0, BN_TOKEN_CONTROL},          /* 1 */
    {"</s>", 0, BN_TOKEN_CONTROL},         /* 2 */
    {"\xe2\x96\x81", -1, BN_TOKEN_NORMAL}, /* 3 ▁ */
    {"a", -2, BN_TOKEN_NORMAL},            /* 4 */
    {"b", -2, BN_TOKEN_NORMAL},            /* 5 */
    {"c", -3, BN_TOKEN_NORMAL},            /* 6 */
    {"ab", -1.5f, BN_TOKEN_NORMAL},        /* 7 */
    {"\xe2\x96\x81" "a", -1, BN_TOKEN_NORMAL},  /* 8 ▁a */
    {"abc", 0, BN_TOKEN_UNUSED},           /* 9 */
    {"bc", -2.5f, BN_TOKEN_NORMAL},        /* 10 */
    {"<sep>", 0, BN_TOKEN_USER_DEFINED},   /* 11 */
    {"\xe2\x96\x81" "ab", -0.5f, BN_TOKEN_NORMAL}, /* 12 ▁ab */
    {"cc", -4, BN_TOKEN_NORMAL},           /* 13 */
    {"\xc3\xa9", -2, BN_TOKEN_NORMAL},     /* 14 é */
    {"s>", -2, BN_TOKEN_NORMAL},           /* 15 */
    {"<", -3, BN_TOKEN_NORMAL},            /* 16 */
    {"ba", -2.5f, BN_TOKEN_NORMAL},        /* 17: ties with bc */
    {"\xe2\x96\x81\xe2\x96\x81", -2, BN_TOKEN_NORMAL},   /* 18 ▁▁ */
    {"cab", -1.5f, BN_TOKEN_NORMAL},       /* 19 */
};
#define MINI_N (sizeof mini_vocab / sizeof mini_vocab[0])

/* Builds a model image; *piece_ends (when not NULL) gets the end offset of each
 * top-level field, n_ends of them. */
static pbuf build_model(const mini_piece *pieces, size_t n, mini_opts o, size_t *ends,
                        size_t *n_ends)
{
    pbuf m = {0}, sub = {0};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        pb_str(&sub, 1, pieces[i].text);
        pb_float(&sub, 2, pieces[i].score);
        if (pieces[i].type != BN_TOKEN_NORMAL)
            pb_uint(&sub, 3, (uint64_t)pieces[i].type);
        pb_msg(&m, 1, &sub);
        if (ends)
            ends[k++] = m.n;
    }
    for (int b = 0; o.byte_fallback == 1 && b < 256; b++) {
        char text[8];
        snprintf(text, sizeof text, "<0x%02X>", b);
        pb_str(&sub, 1, text);
        pb_float(&sub, 2, 0);
        pb_uint(&sub, 3, BN_TOKEN_BYTE);
        pb_msg(&m, 1, &sub);
        if (ends)
            ends[k++] = m.n;
    }
    if (o.model_type >= 0)
        pb_uint(&sub, 3, (uint64_t)o.model_type);
    pb_uint(&sub, 4, n + (o.byte_fallback == 1 ? 256 : 0));
    if (o.byte_fallback >= 0)
        pb_uint(&sub, 35, (uint64_t)o.byte_fallback);
    pb_uint(&sub, 40, 0);
    pb_uint(&sub, 41, (uint64_t)(int64_t)o.bos_id);
    pb_uint(&sub, 42, 2);
    pb_uint(&sub, 43, (uint64_t)(int64_t)o.pad_id);
    pb_msg(&m, 2, &sub);
    if (ends)
        ends[k++] = m.n;
    if (o.norm_name)
        pb_str(&sub, 1, o.norm_name);
    if (o.charsmap)
        pb_str(&sub, 2, o.charsmap);
    if (o.add_dummy_prefix >= 0)
        pb_uint(&sub, 3, (uint64_t)o.add_dummy_prefix);
    if (o.remove_extra_ws >= 0)
        pb_uint(&sub, 4, (uint64_t)o.remove_extra_ws);
    pb_uint(&sub, 5, 1);
    pb_msg(&m, 3, &sub);
    if (ends)
        ends[k++] = m.n;
    if (n_ends)
        *n_ends = k;
    return m;
}

/* Loads an image from a buffer of exactly its size (so tools see reads past it). */
static bn_status load_image(const unsigned char *p, size_t n, bn_tokenizer **t)
{
    unsigned char *copy = malloc(n ? n : 1);
    if (n)
        memcpy(copy, p, n);
    *t = NULL;
    bn_status st = bn_tok_load_spm_model(copy, n, t);
    free(copy);
    return st;
}

/* A load that must fail with `want`, a message containing `needle`, and no leak. */
static void expect_refused(const char *label, const unsigned char *p, size_t n,
                           bn_status want, const char *needle)
{
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    bn_tokenizer *t = NULL;
    bn_status st = load_image(p, n, &t);
    bn_mem_get_stats(&after);
    CHECK(st == want && t == NULL, "%s: %s (%s), want %s", label, bn_status_str(st),
          bn_last_error(), bn_status_str(want));
    CHECK(!needle || strstr(bn_last_error(), needle), "%s: message \"%s\" lacks \"%s\"",
          label, bn_last_error(), needle);
    CHECK(after.live_blocks == before.live_blocks, "%s: leaked %lld blocks", label,
          (long long)(after.live_blocks - before.live_blocks));
    if (st == BN_OK)
        bn_tokenizer_free(t);
}

/* ------------------------------------------------------------------ small models */

/* Ids from the family's encoder directly (the public API splits user-defined pieces
 * out before it, where sentencepiece matches them inside its normalized text). */
static void mini_encode(const bn_tokenizer *t, const char *text, bool at_start,
                        bn_tok_vec *out)
{
    out->n = 0;
    bn_status st = t->ops->encode(t, text, strlen(text), at_start, out);
    CHECK(st == BN_OK, "encode \"%s\": %s", text, bn_last_error());
}

/* Writes the model image to a file, runs spm_encode on the texts and compares. */
static void compare_live(const char *label, const pbuf *img, const bn_tokenizer *t,
                         char **texts, size_t n)
{
    char path[] = "/tmp/bn_spm_miniXXXXXX";
    int fd = mkstemp(path);
    bool written = fd >= 0 && write(fd, img->p, img->n) == (ssize_t)img->n;
    if (fd >= 0)
        close(fd);
    bn_token **want = calloc(n, sizeof *want);
    size_t *n_want = calloc(n, sizeof *n_want);
    bool ran = written && spm_encode_texts(path, texts, n, want, n_want);
    CHECK(ran, "%s: spm_encode did not run", label);
    size_t bad = 0;
    bn_tok_vec v = {0};
    for (size_t i = 0; ran && i < n; i++) {
        mini_encode(t, texts[i], true, &v);
        bool same = same_ids(v.v, v.n, want[i], n_want[i]);
        bad += !same;
        CHECK(same, "%s \"%s\": got %s", label, texts[i], show_ids(v.v, v.n));
        if (!same)
            fprintf(stderr, "   want %s\n", show_ids(want[i], n_want[i]));
    }
    printf("test_tok_spm: %s against spm_encode live: %zu texts, %zu mismatches\n", label,
           n, bad);
    for (size_t i = 0; i < n; i++)
        free(want[i]);
    free(want);
    free(n_want);
    bn_free(v.v);
    unlink(path);
}

/* The small model's behaviour: ids that spm_encode gives for these texts. */
static void test_mini_model(bool live)
{
    pbuf img = build_model(mini_vocab, MINI_N, mini_defaults(), NULL, NULL);
    bn_tokenizer *t = NULL;
    CHECK_OK(load_image(img.p, img.n, &t));
    if (!t) {
        free(img.p);
        return;
    }
    CHECK(t->n_vocab == (int32_t)MINI_N && t->unk == 0 && t->bos == 1 && t->eos == 2 &&
          t->pad == -1, "small model ids");
    static const struct { const char *text; bn_token ids[8]; int n; } cases[] = {
        {"abc", {12, 6}, 2},          /* ▁a, then ▁ab beats bc */
        {"cabcc", {3, 6, 7, 6, 6}, 5},/* abc (UNUSED) beats cab, then is split back */
        {"ba", {3, 17}, 2},
        {"bcba", {3, 10, 17}, 3},     /* equal scores: the leftmost first */
        {"xyz", {3, 0}, 2},           /* a run of unknowns is one <unk> */
        {"axyzb", {8, 0, 5}, 3},
        {"a<sep>b", {8, 11, 5}, 3},   /* a user-defined piece never merges */
        {"<sep>", {3, 11}, 2},
        {"<s>", {3, 16, 15}, 3},      /* control pieces are plain text */
        {"é x é", {3, 14, 3, 0, 3, 14}, 6},
        {"  a", {18, 8}, 2},
    };
    bn_tok_vec v = {0};
    char *texts[sizeof cases / sizeof cases[0]];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mini_encode(t, cases[i].text, true, &v);
        CHECK(same_ids(v.v, v.n, cases[i].ids, (size_t)cases[i].n), "small model \"%s\": %s",
              cases[i].text, show_ids(v.v, v.n));
        texts[i] = (char *)cases[i].text;
    }
    /* the same against spm_encode itself on this model, and on one without the UNUSED
     * piece (where the text is cut into parts that merge on their own) */
    if (live) {
        enum { N_RANDOM = 300 };
        size_t n = sizeof cases / sizeof cases[0];
        char *all[sizeof cases / sizeof cases[0] + N_RANDOM];
        memcpy(all, texts, n * sizeof *all);
        static const char *const bits[] = {"a", "b", "c", " ", "  ", "<sep>", "x", "é",
                                           "<s>", "cab", "abc", "ba", "\t"};
        for (size_t i = 0; i < N_RANDOM; i++) {
            all[n + i] = malloc(128);
            all[n + i][0] = '\0';
            for (uint32_t k = 0, m = 1 + rng_next() % 12; k < m; k++)
                strcat(all[n + i], bits[rng_next() % (sizeof bits / sizeof bits[0])]);
        }
        compare_live("small model", &img, t, all, n + N_RANDOM);
        mini_piece v2[MINI_N];
        memcpy(v2, mini_vocab, sizeof mini_vocab);
        v2[9].type = BN_TOKEN_NORMAL;
        pbuf img2 = build_model(v2, MINI_N, mini_defaults(), NULL, NULL);
        bn_tokenizer *t2 = NULL;
        CHECK_OK(load_image(img2.p, img2.n, &t2));
        if (t2)
            compare_live("small model without UNUSED", &img2, t2, all, n + N_RANDOM);
        bn_tokenizer_free(t2);
        free(img2.p);
        for (size_t i = n; i < n + N_RANDOM; i++)
            free(all[i]);
    }
    /* not at the start: no dummy prefix */
    mini_encode(t, "abc", false, &v);
    CHECK(same_ids(v.v, v.n, (bn_token[]){7, 6}, 2), "\"abc\" inside: %s", show_ids(v.v, v.n));
    mini_encode(t, "", true, &v);
    CHECK(v.n == 0, "empty text gives no ids");
    bn_free(v.v);
    /* decoding: an unknown token is skipped unless rendered */
    char *out = NULL;
    size_t len = 0;
    CHECK_OK(bn_detokenize(t, (bn_token[]){8, 0, 5}, 3, false, &out, &len));
    CHECK(out && strcmp(out, "ab") == 0, "decoded \"%s\"", out ? out : "");
    bn_free(out);
    /* a stream whose first tokens give no bytes (control tokens not rendered): it holds
     * no buffer yet, and must neither move one nor hand anything out */
    bn_detok_stream *s = NULL;
    CHECK_OK(bn_detok_stream_create(t, false, &s));
    const char *piece = NULL;
    size_t piece_len = 1;
    for (int k = 0; s && k < 2; k++) {
        CHECK_OK(bn_detok_stream_push(s, 1 + k, &piece, &piece_len));   /* <s>, </s> */
        CHECK(piece_len == 0, "stream: control token %d gave %zu bytes", 1 + k, piece_len);
    }
    if (s) {
        CHECK_OK(bn_detok_stream_push(s, 8, &piece, &piece_len));   /* ▁a: "a" */
        CHECK(piece_len == 1 && piece[0] == 'a', "stream after control tokens: %zu bytes",
              piece_len);
        bn_detok_stream_flush(s, &piece, &piece_len);
        CHECK(piece_len == 0, "stream: %zu bytes held back", piece_len);
    }
    bn_detok_stream_free(s);
    bn_tokenizer_free(t);

    /* every allocation of a load, and of an encode, failing in turn */
    int failures = 0;
    for (uint64_t k = 1; k < 500; k++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_mem_fail_nth(k);
        bn_status st = load_image(img.p, img.n, &t);
        bn_mem_fail_nth(0);
        if (st == BN_OK) {
            bn_tokenizer_free(t);
            break;
        }
        failures++;
        bn_mem_get_stats(&after);
        CHECK(st == BN_ERR_OOM && t == NULL && after.live_blocks == before.live_blocks,
              "load with allocation %llu failing: %s, leaked %lld", (unsigned long long)k,
              bn_status_str(st), (long long)(after.live_blocks - before.live_blocks));
    }
    CHECK(failures > 3, "only %d allocations in a load", failures);
    CHECK_OK(load_image(img.p, img.n, &t));
    failures = 0;
    for (uint64_t k = 1; t && k < 100; k++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_token *ids = NULL;
        size_t n = 0;
        bn_mem_fail_nth(k);
        bn_status st = bn_tokenize(t, "cabcc abc xyz", 13, NULL, &ids, &n);
        bn_mem_fail_nth(0);
        if (st == BN_OK) {
            bn_free(ids);
            break;
        }
        failures++;
        bn_mem_get_stats(&after);
        CHECK(st == BN_ERR_OOM && after.live_blocks == before.live_blocks,
              "encode with allocation %llu failing: %s, leaked %lld", (unsigned long long)k,
              bn_status_str(st), (long long)(after.live_blocks - before.live_blocks));
    }
    CHECK(failures >= 3, "only %d allocations in an encode", failures);
    bn_tokenizer_free(t);
    free(img.p);
}

/* A byte-fallback model: bytes become <0xNN>, decoding gives them back. */
static void test_mini_bytes(void)
{
    mini_opts o = mini_defaults();
    o.byte_fallback = 1;
    pbuf img = build_model(mini_vocab, MINI_N, o, NULL, NULL);
    bn_tokenizer *t = NULL;
    CHECK_OK(load_image(img.p, img.n, &t));
    free(img.p);
    if (!t)
        return;
    size_t n = 0;
    bn_token *ids = encode(t, "ax\xff", 3, false, true, &n);
    bn_token x = (bn_token)MINI_N + 'x', ff = (bn_token)MINI_N + 0xff;
    CHECK(ids && same_ids(ids, n, (bn_token[]){8, x, ff}, 3), "byte fallback: %s",
          ids ? show_ids(ids, n) : "-");
    CHECK(ids && decodes_to(t, ids, n, "ax\xff", 3), "byte fallback decodes back");
    bn_free(ids);
    bn_tokenizer_free(t);
}

/* ------------------------------------------------------------------ malformed */

static void test_malformed(const unsigned char *llama, size_t llama_size)
{
    size_t ends[MINI_N + 8], n_ends = 0;
    pbuf img = build_model(mini_vocab, MINI_N, mini_defaults(), ends, &n_ends);
    bn_tokenizer *t = NULL;

    /* every strict prefix: inside a field it is malformed; on a field boundary it is a
     * smaller model (no trainer spec: a unigram model, unsupported) */
    for (size_t cut = 0; cut < img.n; cut++) {
        bool boundary = cut == 0;
        for (size_t k = 0; k < n_ends; k++)
            boundary |= ends[k] == cut;
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_status st = load_image(img.p, cut, &t);
        bn_mem_get_stats(&after);
        CHECK(st != BN_OK && t == NULL && (boundary ? st == BN_ERR_UNSUPPORTED ||
                                           st == BN_ERR_FORMAT : st == BN_ERR_FORMAT),
              "prefix of %zu bytes: %s (%s)", cut, bn_status_str(st), bn_last_error());
        CHECK(after.live_blocks == before.live_blocks, "prefix %zu leaked", cut);
        if (st == BN_OK)
            bn_tokenizer_free(t);
    }
    expect_refused("empty", img.p, 0, BN_ERR_FORMAT, "no pieces");
    /* prefixes of the real model, a few hundred cuts */
    for (size_t k = 1; k < 300; k++) {
        size_t cut = llama_size * k / 300 + k % 7;
        bn_status st = load_image(llama, cut, &t);
        CHECK(st == BN_ERR_FORMAT || st == BN_ERR_UNSUPPORTED, "LLaMA prefix %zu: %s", cut,
              bn_status_str(st));
        if (st == BN_OK)
            bn_tokenizer_free(t);
    }

    /* bytes that break the wire format, in front of a good model (or after it) */
    static const struct {
        const char   *label;
        unsigned char b[16];
        size_t        n;
        bool          after;
        const char   *msg;
    } bad[] = {
        {"varint over 64 bits", {0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                 0x02}, 11, false, "overflows"},
        {"11-byte varint", {0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0x01}, 12, false, "overflows"},
        {"varint cut", {0x48, 0xff, 0xff}, 3, true, "runs past the end"},
        {"key cut", {0xc8}, 1, true, "runs past the end"},
        {"field 0", {0x00, 0x00}, 2, false, "key"},
        {"key over 32 bits", {0xf8, 0xff, 0xff, 0xff, 0x7f}, 5, false, "key"},
        {"wire type 6", {0x4e}, 1, false, "wire type 6"},
        {"wire type 7", {0x4f}, 1, false, "wire type 7"},
        {"end group without start", {0x4c}, 1, false, "no start"},
        {"group never ended", {0x33, 0x38, 0x01}, 3, false, "runs past the end"},
        {"group ended by another", {0x33, 0x3c}, 2, false, "ends with"},
        {"length past the end", {0x0a, 0xe8, 0x07, 0x0a}, 4, false, "past the end"},
        {"length of 2^63", {0x22, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
         11, false, "past the end"},
        {"pieces as a varint", {0x08, 0x01}, 2, false, "wire type"},
        {"trainer_spec as fixed32", {0x15, 1, 2, 3, 4}, 5, false, "wire type"},
        {"fixed64 cut", {0x49, 1, 2, 3}, 4, true, "past the end"},
        {"fixed32 cut", {0x4d, 1, 2, 3}, 4, true, "past the end"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pbuf m = {0};
        if (bad[i].after)
            pb_put(&m, img.p, img.n);
        pb_put(&m, bad[i].b, bad[i].n);
        if (!bad[i].after)
            pb_put(&m, img.p, img.n);
        expect_refused(bad[i].label, m.p, m.n, BN_ERR_FORMAT, bad[i].msg);
        free(m.p);
    }
    /* unknown fields of every wire type, and a nested group, are skipped */
    {
        pbuf m = {0};
        pb_uint(&m, 100, 12345);
        pb_key(&m, 101, 1);
        pb_put(&m, "12345678", 8);
        pb_key(&m, 102, 5);
        pb_put(&m, "1234", 4);
        pb_str(&m, 103, "skipped");
        pb_key(&m, 104, 3);       /* group 104 { group 105 { varint } } */
        pb_key(&m, 105, 3);
        pb_uint(&m, 1, 7);
        pb_key(&m, 105, 4);
        pb_key(&m, 104, 4);
        pb_put(&m, img.p, img.n);
        CHECK_OK(load_image(m.p, m.n, &t));
        CHECK(t && t->n_vocab == (int32_t)MINI_N, "unknown fields skipped");
        bn_tokenizer_free(t);
        free(m.p);
    }
    /* groups nested past the limit */
    {
        pbuf m = {0};
        for (int d = 0; d < 100; d++)
            pb_key(&m, 200, 3);
        for (int d = 0; d < 100; d++)
            pb_key(&m, 200, 4);
        pb_put(&m, img.p, img.n);
        expect_refused("deep groups", m.p, m.n, BN_ERR_FORMAT, "nest");
        free(m.p);
    }

    /* models this reader does not support */
    typedef struct opt_case {
        const char *label;
        mini_opts   o;
        bn_status   st;
        const char *msg;
    } opt_case;
    opt_case opts[8];
    size_t n_opts = 0;
    mini_opts o = mini_defaults();
    o.model_type = 1;
    opts[n_opts++] = (opt_case){"unigram", o, BN_ERR_UNSUPPORTED, "UNIGRAM"};
    o = mini_defaults();
    o.model_type = -1;
    opts[n_opts++] = (opt_case){"default model type", o, BN_ERR_UNSUPPORTED, "UNIGRAM"};
    o = mini_defaults();
    o.model_type = 4;
    opts[n_opts++] = (opt_case){"char model", o, BN_ERR_UNSUPPORTED, "CHAR"};
    o = mini_defaults();
    o.norm_name = "nmt_nfkc";
    o.charsmap = "\x01\x02\x03\x04";
    opts[n_opts++] = (opt_case){"nfkc", o, BN_ERR_UNSUPPORTED, "nmt_nfkc"};
    o = mini_defaults();
    o.remove_extra_ws = -1;
    opts[n_opts++] = (opt_case){"remove white space", o, BN_ERR_UNSUPPORTED,
                                       "white space"};
    o = mini_defaults();
    o.bos_id = (int)MINI_N;
    opts[n_opts++] = (opt_case){"bos out of range", o, BN_ERR_FORMAT, "bos_id"};
    o = mini_defaults();
    o.byte_fallback = -1;
    opts[n_opts] = (opt_case){"no byte_fallback", o, BN_OK, NULL};
    for (size_t i = 0; i < n_opts; i++) {
        pbuf m = build_model(mini_vocab, MINI_N, opts[i].o, NULL, NULL);
        expect_refused(opts[i].label, m.p, m.n, opts[i].st, opts[i].msg);
        free(m.p);
    }

    /* bad pieces */
    mini_piece v[MINI_N + 1];
    memcpy(v, mini_vocab, sizeof mini_vocab);
    struct { const char *label; size_t at; mini_piece p; const char *msg; } pieces[] = {
        {"empty piece", 5, {"", 0, BN_TOKEN_NORMAL}, "empty"},
        {"type 7", 5, {"q", 0, 7}, "unknown type"},
        {"type 0", 5, {"q", 0, 0}, "unknown type"},
        {"a second unk", 5, {"<unk2>", 0, BN_TOKEN_UNKNOWN}, "second unknown"},
        {"no unk", 0, {"<notunk>", 0, BN_TOKEN_CONTROL}, "no unknown"},
        {"duplicate", 5, {"a", 0, BN_TOKEN_NORMAL}, "repeats"},
        {"byte piece without byte_fallback", 5, {"<0x41>", 0, BN_TOKEN_BYTE}, "byte_fallback"},
        {"NaN score", 5, {"q", NAN, BN_TOKEN_NORMAL}, "NaN"},
    };
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        memcpy(v, mini_vocab, sizeof mini_vocab);
        v[pieces[i].at] = pieces[i].p;
        pbuf m = build_model(v, MINI_N, mini_defaults(), NULL, NULL);
        expect_refused(pieces[i].label, m.p, m.n, BN_ERR_FORMAT, pieces[i].msg);
        free(m.p);
    }
    /* byte_fallback with a byte piece missing, and a malformed byte piece */
    {
        o = mini_defaults();
        o.byte_fallback = 1;
        pbuf m = build_model(mini_vocab, MINI_N, o, NULL, NULL);
        /* "<0x41>" -> "<0x4G>" and "<0x42>" -> "<0x41>" (a duplicate) */
        unsigned char *p = memmem(m.p, m.n, "<0x41>", 6);
        CHECK(p != NULL, "found <0x41>");
        if (p) {
            p[4] = 'G';
            expect_refused("bad byte piece", m.p, m.n, BN_ERR_FORMAT, "<0xNN>");
            p[4] = 'a';
            expect_refused("lower-case byte piece", m.p, m.n, BN_ERR_FORMAT, "<0xNN>");
            p[4] = '1';
            unsigned char *q = memmem(m.p, m.n, "<0x42>", 6);
            q[4] = '1';
            expect_refused("byte piece twice", m.p, m.n, BN_ERR_FORMAT, "repeats");
        }
        free(m.p);
    }
    /* a score of the wrong wire type */
    {
        pbuf m = {0}, sub = {0};
        pb_str(&sub, 1, "q");
        pb_uint(&sub, 2, 1);
        pb_msg(&m, 1, &sub);
        pb_put(&m, img.p, img.n);
        expect_refused("score as a varint", m.p, m.n, BN_ERR_FORMAT, "score");
        free(m.p);
    }
    /* through the public loader: a file that is none of the three kinds */
    {
        char path[] = "/tmp/bn_spm_badXXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0 && write(fd, "\x0f garbage", 9) == 9, "temporary file");
        if (fd >= 0)
            close(fd);
        bn_status st = bn_tokenizer_load_file(path, &t);
        CHECK(st == BN_ERR_FORMAT && strstr(bn_last_error(), path), "garbage file: %s (%s)",
              bn_status_str(st), bn_last_error());
        unlink(path);
    }
    free(img.p);
}

/* ------------------------------------------------------------------ main */

int main(void)
{
    size_t llama_size = 0;
    unsigned char *llama = read_all(LLAMA2_MODEL, &llama_size);
    if (!llama)
        check_skip("test_tok_spm", "no " LLAMA2_MODEL);

    bn_tokenizer *t = NULL;
    CHECK_OK(bn_tokenizer_load_file(LLAMA2_MODEL, &t));
    if (!t)
        return check_summary("test_tok_spm");
    bn_tokenizer *t2 = NULL;
    CHECK_OK(bn_tok_load_spm_model(llama, llama_size, &t2));
    CHECK(t2 && t2->n_vocab == 32000, "the internal loader on the buffer");
    bn_tokenizer_free(t2);

    test_metadata(t);
    test_fixture_cases(t);
    test_written_gguf(t);
    test_specials(t);
    test_raw_bytes(t);
    test_long_lines(t);
    bool live = have_spm_encode();
    if (live)
        test_live_random(t);
    else
        printf("test_tok_spm: SKIP: spm_encode is not on the PATH: no live comparison "
               "(install Debian's sentencepiece)\n");
    bn_tokenizer_free(t);

    test_mini_model(live);
    test_mini_bytes();
    test_malformed(llama, llama_size);
    free(llama);
    CHECK(bn_mem_leak_report() == 0, "blocks left at the end");
    return check_summary("test_tok_spm");
}
