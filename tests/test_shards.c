/*
 * test_shards.c - token shards (docs/FORMATS.md, "Token shards"): the bytes the writer
 * puts on disk against the format written out by hand here; reading back across files,
 * with 2- and 4-byte tokens; and every kind of bad shard refused with a message that
 * names the file and the problem (truncated, foreign, another version, extra bytes,
 * ids outside the vocabulary, a gap in a directory, two tokenizers in one directory).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"

static char dir[256];

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static size_t read_file(const char *name, unsigned char *buf, size_t cap)
{
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void write_file(const char *name, const unsigned char *buf, size_t n)
{
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(buf, 1, n, f);
        fclose(f);
    }
}

/* The 64-byte header as the format describes it. */
static void header(unsigned char *h, uint32_t width, uint32_t n_vocab, uint64_t checksum,
                   uint64_t n_tokens, uint64_t n_docs)
{
    memset(h, 0, 64);
    memcpy(h, "BNTOKSHD", 8);
    uint64_t fields[] = {1, width, n_vocab};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++)
            h[8 + 4 * k + i] = (unsigned char)(fields[k] >> (8 * i));
    uint64_t f64[] = {checksum, n_tokens, n_docs};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 8; i++)
            h[24 + 8 * k + i] = (unsigned char)(f64[k] >> (8 * i));
}

/* Opening must fail with a message holding `want`. */
static void expect_refused(const char *path, const char *split, const char *want)
{
    bn_shards *s = NULL;
    bn_status st = bn_shards_open(path, split, &s);
    CHECK(st != BN_OK && strstr(bn_last_error(), want) && strstr(bn_last_error(), dir),
          "opening %s: status %d, message '%s', wanted '%s'", path, st,
          st ? bn_last_error() : "", want);
    if (st == BN_OK)
        bn_shards_close(s);
}

static void test_write_and_read(void)
{
    /* three documents, 5 tokens a file at most: files of 4 (doc 0 and 1), 5 (doc 2's
     * first 5), 2 (the rest of doc 2) tokens */
    bn_shard_writer_params p = {.dir = dir, .split = "train",
                                .tokenizer_checksum = 0x0123456789abcdefULL,
                                .n_vocab = 700, .max_tokens = 5};
    bn_shard_writer *w = NULL;
    CHECK_OK(bn_shard_writer_create(&p, &w));
    const int32_t d0[] = {695, 1}, d1[] = {695, 699}, d2[] = {1, 2, 3, 4, 5, 6, 300};
    CHECK_OK(bn_shard_writer_add_doc(w, d0, 2));
    CHECK_OK(bn_shard_writer_add_doc(w, d1, 2));
    CHECK_OK(bn_shard_writer_add_doc(w, d2, 7));
    int32_t bad_id = 700;
    CHECK(bn_shard_writer_add_doc(w, &bad_id, 1) == BN_ERR_INVALID_ARG &&
          strstr(bn_last_error(), "token 700 is outside the vocabulary"), "%s", bn_last_error());
    int32_t n_files = 0;
    CHECK_OK(bn_shard_writer_finish(w, &n_files));
    bn_shard_writer_free(w);
    CHECK(n_files == 3, "%d files", n_files);

    unsigned char buf[256], want[256];
    size_t n = read_file("train-00000.bin", buf, sizeof buf);
    header(want, 2, 700, 0x0123456789abcdefULL, 4, 2);
    const unsigned char toks0[] = {0xb7, 0x02, 0x01, 0x00, 0xb7, 0x02, 0xbb, 0x02};
    memcpy(want + 64, toks0, sizeof toks0);
    CHECK(n == 72 && memcmp(buf, want, 72) == 0, "file 0: %zu bytes, not as specified", n);
    n = read_file("train-00001.bin", buf, sizeof buf);
    header(want, 2, 700, 0x0123456789abcdefULL, 5, 1);
    CHECK(n == 74 && memcmp(buf, want, 64) == 0 && buf[64] == 1 && buf[72] == 5,
          "file 1: %zu bytes", n);
    n = read_file("train-00002.bin", buf, sizeof buf);
    header(want, 2, 700, 0x0123456789abcdefULL, 2, 0);
    CHECK(n == 68 && memcmp(buf, want, 64) == 0 && buf[66] == 0x2c && buf[67] == 0x01,
          "file 2: %zu bytes", n);

    bn_shards *s = NULL;
    CHECK_OK(bn_shards_open(dir, "train", &s));
    if (!s)
        return;
    CHECK(bn_shards_n_tokens(s) == 11 && bn_shards_n_docs(s) == 3 &&
          bn_shards_n_files(s) == 3 && bn_shards_n_vocab(s) == 700 &&
          bn_shards_tokenizer_checksum(s) == 0x0123456789abcdefULL, "totals");
    const int32_t all[] = {695, 1, 695, 699, 1, 2, 3, 4, 5, 6, 300};
    for (uint64_t off = 0; off <= 11; off++)
        for (size_t len = 0; off + len <= 11; len++) {
            int32_t got[11] = {0};
            CHECK_OK(bn_shards_read(s, off, len, got));
            CHECK(memcmp(got, all + off, len * sizeof *got) == 0, "[%llu, +%zu)",
                  (unsigned long long)off, len);
        }
    int32_t got[4];
    CHECK(bn_shards_read(s, 9, 3, got) == BN_ERR_INVALID_ARG &&
          strstr(bn_last_error(), "past the end"), "%s", bn_last_error());
    bn_shards_close(s);

    /* one file alone */
    char p0[512];
    path_of(p0, sizeof p0, "train-00002.bin");
    CHECK_OK(bn_shards_open(p0, NULL, &s));
    if (s) {
        CHECK(bn_shards_n_tokens(s) == 2 && bn_shards_read(s, 0, 2, got) == BN_OK &&
              got[0] == 6 && got[1] == 300, "one file");
        bn_shards_close(s);
    }
    /* a second run writing fewer files removes the old third one */
    p.max_tokens = 100;
    CHECK_OK(bn_shard_writer_create(&p, &w));
    CHECK_OK(bn_shard_writer_add_doc(w, d2, 7));
    CHECK_OK(bn_shard_writer_finish(w, &n_files));
    bn_shard_writer_free(w);
    CHECK(n_files == 1 && access(p0, F_OK) != 0, "old shards stay behind");
    CHECK_OK(bn_shards_open(dir, "train", &s));
    if (s) {
        CHECK(bn_shards_n_tokens(s) == 7, "%llu tokens",
              (unsigned long long)bn_shards_n_tokens(s));
        bn_shards_close(s);
    }
}

static void test_wide_tokens(void)
{
    bn_shard_writer_params p = {.dir = dir, .split = "wide", .tokenizer_checksum = 7,
                                .n_vocab = 128256};
    bn_shard_writer *w = NULL;
    CHECK_OK(bn_shard_writer_create(&p, &w));
    const int32_t d[] = {128000, 9906, 0, 128255};
    CHECK_OK(bn_shard_writer_add_doc(w, d, 4));
    CHECK_OK(bn_shard_writer_finish(w, NULL));
    bn_shard_writer_free(w);
    unsigned char buf[128], want[64];
    size_t n = read_file("wide-00000.bin", buf, sizeof buf);
    header(want, 4, 128256, 7, 4, 1);
    CHECK(n == 80 && memcmp(buf, want, 64) == 0 && buf[64] == 0x00 && buf[65] == 0xf4 &&
          buf[66] == 0x01 && buf[67] == 0x00, "4-byte tokens: %zu bytes", n);
    bn_shards *s = NULL;
    int32_t got[4] = {0};
    CHECK_OK(bn_shards_open(dir, "wide", &s));
    if (s) {
        CHECK_OK(bn_shards_read(s, 0, 4, got));
        CHECK(memcmp(got, d, sizeof d) == 0, "4-byte tokens read back");
        bn_shards_close(s);
    }
}

static void test_refused(void)
{
    unsigned char good[64 + 8];
    header(good, 2, 700, 5, 4, 1);
    memset(good + 64, 0, 8);
    char p[512];

    write_file("trunc.bin", good, sizeof good - 1);
    path_of(p, sizeof p, "trunc.bin");
    expect_refused(p, NULL, "truncated: the header counts 4 tokens but the file holds 3");
    write_file("trunc-head.bin", good, 40);
    path_of(p, sizeof p, "trunc-head.bin");
    expect_refused(p, NULL, "truncated token shard (40 bytes");
    const char text[] = "Just some text that someone named .bin by mistake, long enough.\n";
    write_file("foreign.bin", (const unsigned char *)text, sizeof text - 1);
    path_of(p, sizeof p, "foreign.bin");
    expect_refused(p, NULL, "not a token shard (no \"BNTOKSHD\" magic)");
    write_file("tiny.bin", (const unsigned char *)"GGUF", 4);
    path_of(p, sizeof p, "tiny.bin");
    expect_refused(p, NULL, "not a token shard (4 bytes");
    unsigned char v2[sizeof good];
    memcpy(v2, good, sizeof good);
    v2[8] = 2;
    write_file("v2.bin", v2, sizeof v2);
    path_of(p, sizeof p, "v2.bin");
    expect_refused(p, NULL, "token shard version 2 is not supported");
    unsigned char longer[sizeof good + 3];
    memcpy(longer, good, sizeof good);
    memset(longer + sizeof good, 0, 3);
    write_file("longer.bin", longer, sizeof longer);
    path_of(p, sizeof p, "longer.bin");
    expect_refused(p, NULL, "has 3 bytes after its 4 tokens");
    unsigned char w3[sizeof good];
    memcpy(w3, good, sizeof good);
    w3[12] = 3;
    write_file("w3.bin", w3, sizeof w3);
    path_of(p, sizeof p, "w3.bin");
    expect_refused(p, NULL, "token width 3 is not 2 or 4");
    /* 4-byte tokens for a vocabulary that 2 bytes hold (found by fuzz_shards), and the
     * unused header bytes not zero */
    unsigned char w4[64 + 16];
    header(w4, 4, 62721, 5, 4, 1);
    memset(w4 + 64, 0, 16);
    write_file("w4.bin", w4, sizeof w4);
    path_of(p, sizeof p, "w4.bin");
    expect_refused(p, NULL, "4-byte tokens for a vocabulary of 62721 (the format takes 2)");
    unsigned char rz[sizeof good];
    memcpy(rz, good, sizeof good);
    rz[56] = 8;
    write_file("reserved.bin", rz, sizeof rz);
    path_of(p, sizeof p, "reserved.bin");
    expect_refused(p, NULL, "header bytes 20-23 or 48-63 are not zero");
    memcpy(rz, good, sizeof good);
    rz[21] = 1;
    write_file("reserved2.bin", rz, sizeof rz);
    path_of(p, sizeof p, "reserved2.bin");
    expect_refused(p, NULL, "header bytes 20-23 or 48-63 are not zero");

    /* an id outside the vocabulary: refused when read */
    unsigned char big[sizeof good];
    memcpy(big, good, sizeof good);
    big[66] = 0xbc;   /* token 1 = 700 */
    big[67] = 0x02;
    write_file("bigid.bin", big, sizeof big);
    path_of(p, sizeof p, "bigid.bin");
    bn_shards *s = NULL;
    CHECK_OK(bn_shards_open(p, NULL, &s));
    if (s) {
        int32_t got[4];
        CHECK(bn_shards_read(s, 0, 4, got) == BN_ERR_FORMAT &&
              strstr(bn_last_error(), "token 1 is 700, not below the vocabulary size 700"),
              "%s", bn_last_error());
        bn_shards_close(s);
    }

    /* a directory with a gap, and one with two tokenizers */
    write_file("gap-00000.bin", good, sizeof good);
    write_file("gap-00002.bin", good, sizeof good);
    expect_refused(dir, "gap", "2 gap-NNNNN.bin files, but only 1 are numbered");
    unsigned char other[sizeof good];
    header(other, 2, 700, 6, 4, 1);
    memset(other + 64, 0, 8);
    write_file("mix-00000.bin", good, sizeof good);
    write_file("mix-00001.bin", other, sizeof other);
    expect_refused(dir, "mix", "is not that of");
    expect_refused(dir, "none", "holds no token shards named none-00000.bin");
    expect_refused(dir, NULL, "is a directory: name the split");
    path_of(p, sizeof p, "missing.bin");
    expect_refused(p, NULL, "No such file or directory");
}

int main(void)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/test_shards.XXXXXX", base);
    if (!mkdtemp(dir))
        check_skip("test_shards", "cannot make a temporary folder");
    test_write_and_read();
    test_wide_tokens();
    test_refused();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_shards: could not remove %s\n", dir);
    CHECK(bn_mem_leak_report() == 0, "leaks");
    return check_summary("test_shards");
}
