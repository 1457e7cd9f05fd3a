/*
 * test_gguf.c - GGUF reading and writing: a file with every metadata type and several
 * tensor types round-trips through the writer and the reader unchanged; a rewrite of
 * a read file is byte-identical; typed lookups; failure injection over open and write;
 * a file read into memory (rather than mapped) holds the file's bytes, before and after
 * its pages are given back.
 * Malformed files are covered by test_gguf_bad; other readers by the interop test.
 */
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"
#include "core/internal.h"
#include "io/gguf.h"

static char dir[256];

static void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* Reads a whole file; caller frees. */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)n + 1);
    *len = fread(p, 1, (size_t)n, f);
    fclose(f);
    return p;
}

/* Tensor payloads: contents chosen by index so every byte is checkable. */
static unsigned char payload_f32[4 * 64 * 3], payload_f16[2 * 32 * 2];
static unsigned char payload_q8[34 * 4], payload_tq2[66 * 2], payload_i2s[256 / 4 + 32];

static void fill_payloads(void)
{
    unsigned char *ps[] = {payload_f32, payload_f16, payload_q8, payload_tq2, payload_i2s};
    size_t ns[] = {sizeof payload_f32, sizeof payload_f16, sizeof payload_q8,
                   sizeof payload_tq2, sizeof payload_i2s};
    for (int k = 0; k < 5; k++)
        for (size_t i = 0; i < ns[k]; i++)
            ps[k][i] = (unsigned char)(i * 31 + k * 7 + 1);
}

static bn_gguf_writer *build_writer(void)
{
    bn_gguf_writer *w = NULL;
    CHECK_OK(bn_gguf_writer_create(&w));
    CHECK_OK(bn_gguf_writer_set_str(w, "general.architecture", "bitnet-b1.58"));
    CHECK_OK(bn_gguf_writer_set_u32(w, "bitnet-b1.58.block_count", 30));
    CHECK_OK(bn_gguf_writer_set_i32(w, "test.i32", -123456));
    CHECK_OK(bn_gguf_writer_set_u64(w, "test.u64", 0x123456789abcdefULL));
    CHECK_OK(bn_gguf_writer_set_f32(w, "test.f32", 1e-5f));
    CHECK_OK(bn_gguf_writer_set_bool(w, "test.bool", true));
    int32_t ints[5] = {1, -2, 3, -4, 5};
    CHECK_OK(bn_gguf_writer_set_array(w, "test.arr_i32", BN_GGUF_INT32, ints, 5));
    float floats[3] = {0.5f, -1.25f, 3e38f};
    CHECK_OK(bn_gguf_writer_set_array(w, "test.arr_f32", BN_GGUF_FLOAT32, floats, 3));
    const char *strs[4] = {"<s>", "", "héllo wörld", "\xe2\x96\x81the"};
    CHECK_OK(bn_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", strs, 4));
    CHECK_OK(bn_gguf_writer_set_u32(w, "test.replaced", 1));
    CHECK_OK(bn_gguf_writer_set_u32(w, "test.replaced", 2)); /* replaces, not duplicates */
    CHECK_OK(bn_gguf_writer_add_tensor(w, "a.f32", BN_QT_F32, 2, (int64_t[]){64, 3},
                                       payload_f32, sizeof payload_f32));
    CHECK_OK(bn_gguf_writer_add_tensor(w, "b.f16", BN_QT_F16, 3, (int64_t[]){32, 1, 2},
                                       payload_f16, sizeof payload_f16));
    CHECK_OK(bn_gguf_writer_add_tensor(w, "c.q8_0", BN_QT_Q8_0, 2, (int64_t[]){64, 2},
                                       payload_q8, sizeof payload_q8));
    CHECK_OK(bn_gguf_writer_add_tensor(w, "d.tq2_0", BN_QT_TQ2_0, 1, (int64_t[]){512},
                                       payload_tq2, sizeof payload_tq2));
    CHECK_OK(bn_gguf_writer_add_tensor(w, "e.i2_s", BN_QT_I2_S, 2, (int64_t[]){128, 2},
                                       payload_i2s, sizeof payload_i2s));
    return w;
}

static void check_read_back(const bn_gguf *g)
{
    CHECK(bn_gguf_version(g) == 3 && bn_gguf_alignment(g) == 32, "v3, alignment 32");
    CHECK(bn_gguf_n_kv(g) == 10, "10 keys, got %lld", (long long)bn_gguf_n_kv(g));
    const char *arch = NULL;
    CHECK_OK(bn_gguf_get_str(g, "general.architecture", &arch));
    CHECK(arch && strcmp(arch, "bitnet-b1.58") == 0, "arch string");
    uint64_t u = 0;
    CHECK_OK(bn_gguf_get_u64(g, "bitnet-b1.58.block_count", &u));
    CHECK(u == 30, "block_count");
    CHECK_OK(bn_gguf_get_u64(g, "test.u64", &u));
    CHECK(u == 0x123456789abcdefULL, "u64");
    CHECK_OK(bn_gguf_get_u64(g, "test.replaced", &u));
    CHECK(u == 2, "replaced value");
    bn_gguf_value v = bn_gguf_kv_value(g, bn_gguf_find_kv(g, "test.i32"));
    CHECK(v.type == BN_GGUF_INT32 && v.v.i64 == -123456, "i32");
    CHECK(bn_gguf_get_u64(g, "test.i32", &u) == BN_ERR_FORMAT, "negative is not a u64");
    double d = 0;
    CHECK_OK(bn_gguf_get_f64(g, "test.f32", &d));
    CHECK(d == (double)1e-5f, "f32 value");
    v = bn_gguf_kv_value(g, bn_gguf_find_kv(g, "test.bool"));
    CHECK(v.type == BN_GGUF_BOOL && v.v.u64 == 1, "bool");
    v = bn_gguf_kv_value(g, bn_gguf_find_kv(g, "test.arr_i32"));
    CHECK(v.type == BN_GGUF_ARRAY && v.v.arr.elem_type == BN_GGUF_INT32 && v.v.arr.n == 5,
          "i32 array");
    bn_gguf_value e = bn_gguf_array_get(g, &v, 3);
    CHECK(e.type == BN_GGUF_INT32 && e.v.i64 == -4, "array element 3");
    CHECK(bn_gguf_array_get(g, &v, 5).type == BN_GGUF_TYPE_COUNT, "past the end");
    v = bn_gguf_kv_value(g, bn_gguf_find_kv(g, "test.arr_f32"));
    CHECK(bn_gguf_array_get(g, &v, 2).v.f64 == (double)3e38f, "f32 array element");
    v = bn_gguf_kv_value(g, bn_gguf_find_kv(g, "tokenizer.ggml.tokens"));
    e = bn_gguf_array_get(g, &v, 2);
    CHECK(e.type == BN_GGUF_STRING && strcmp(e.v.str.ptr, "héllo wörld") == 0 &&
          e.v.str.len == strlen("héllo wörld"), "string array element");
    e = bn_gguf_array_get(g, &v, 1);
    CHECK(e.type == BN_GGUF_STRING && e.v.str.len == 0, "empty string element");
    CHECK(bn_gguf_get_str(g, "missing.key", &arch) == BN_ERR_FORMAT &&
          strstr(bn_last_error(), "missing.key"), "missing key named: %s", bn_last_error());
    CHECK(bn_gguf_get_str(g, "test.u64", &arch) == BN_ERR_FORMAT &&
          strstr(bn_last_error(), "uint64"), "wrong type named: %s", bn_last_error());

    CHECK(bn_gguf_n_tensors(g) == 5, "5 tensors");
    const struct {
        const char *name;
        int type, n_dims;
        int64_t ne0, ne1;
        const unsigned char *data;
        size_t n;
    } want[5] = {
        {"a.f32", BN_QT_F32, 2, 64, 3, payload_f32, sizeof payload_f32},
        {"b.f16", BN_QT_F16, 3, 32, 1, payload_f16, sizeof payload_f16},
        {"c.q8_0", BN_QT_Q8_0, 2, 64, 2, payload_q8, sizeof payload_q8},
        {"d.tq2_0", BN_QT_TQ2_0, 1, 512, 1, payload_tq2, sizeof payload_tq2},
        {"e.i2_s", BN_QT_I2_S, 2, 128, 2, payload_i2s, sizeof payload_i2s},
    };
    for (int i = 0; i < 5; i++) {
        int64_t k = bn_gguf_find_tensor(g, want[i].name);
        const bn_gguf_tensor *t = bn_gguf_get_tensor(g, k);
        CHECK(k == i && t, "tensor %s found in order", want[i].name);
        if (!t)
            continue;
        CHECK(t->type == want[i].type && t->n_dims == want[i].n_dims &&
              t->ne[0] == want[i].ne0 && t->ne[1] == want[i].ne1, "%s header", t->name);
        CHECK(t->nbytes == want[i].n && memcmp(t->data, want[i].data, want[i].n) == 0,
              "%s data identical", t->name);
        CHECK(t->offset % 32 == 0, "%s aligned", t->name);
    }
    CHECK(bn_gguf_find_tensor(g, "nope") == -1 && bn_gguf_get_tensor(g, 9) == NULL, "absent");
}

static void test_round_trip(void)
{
    char p1[300], p2[300];
    path_in(p1, sizeof p1, "one.gguf");
    path_in(p2, sizeof p2, "two.gguf");
    bn_gguf_writer *w = build_writer();
    CHECK_OK(bn_gguf_writer_write(w, p1, NULL, NULL));
    bn_gguf_writer_free(w);
    bn_gguf *g = NULL;
    CHECK_OK(bn_gguf_open(p1, &g));
    if (!g)
        return;
    check_read_back(g);
    /* copy everything into a new file: it must be byte-identical */
    bn_gguf_writer *w2 = NULL;
    CHECK_OK(bn_gguf_writer_create(&w2));
    for (int64_t i = 0; i < bn_gguf_n_kv(g); i++)
        CHECK_OK(bn_gguf_writer_copy_kv(w2, g, i));
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_get_tensor(g, i);
        CHECK_OK(bn_gguf_writer_add_tensor(w2, t->name, t->type, t->n_dims, t->ne, t->data,
                                           t->nbytes));
    }
    CHECK_OK(bn_gguf_writer_write(w2, p2, NULL, NULL));
    bn_gguf_writer_free(w2);
    size_t n1 = 0, n2 = 0;
    unsigned char *b1 = slurp(p1, &n1), *b2 = slurp(p2, &n2);
    CHECK(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0, "rewrite is byte-identical");
    /* the same image parsed from memory */
    bn_gguf *gm = NULL;
    CHECK_OK(bn_gguf_open_memory(b1, n1, &gm));
    if (gm)
        check_read_back(gm);
    bn_gguf_close(gm);
    free(b1);
    free(b2);
    bn_gguf_close(g);
    struct stat sb;
    CHECK(stat(p1, &sb) == 0 && (sb.st_mode & 0044) == 0044,
          "written file readable by others under umask 022 (mode %o)", sb.st_mode & 0777);
}

static void test_writer_errors(void)
{
    bn_gguf_writer *w = NULL;
    CHECK_OK(bn_gguf_writer_create(&w));
    CHECK(bn_gguf_writer_add_tensor(w, "x", BN_QT_Q8_0, 1, (int64_t[]){33}, payload_q8, 34) ==
          BN_ERR_SHAPE, "row not a multiple of 32");
    CHECK(strstr(bn_last_error(), "33") && strstr(bn_last_error(), "32"), "%s", bn_last_error());
    CHECK(bn_gguf_writer_add_tensor(w, "x", BN_QT_Q8_0, 1, (int64_t[]){32}, payload_q8, 30) ==
          BN_ERR_INVALID_ARG, "byte count must match");
    CHECK(bn_gguf_writer_add_tensor(w, "x", 33, 1, (int64_t[]){32}, payload_q8, 34) ==
          BN_ERR_DTYPE, "unknown type id");
    CHECK(bn_gguf_writer_add_tensor(w, "x", BN_QT_F32, 5, (int64_t[]){1, 1, 1, 1, 1},
                                    payload_f32, 4) == BN_ERR_SHAPE, "5 dims");
    CHECK_OK(bn_gguf_writer_add_tensor(w, "x", BN_QT_F32, 1, (int64_t[]){1}, payload_f32, 4));
    CHECK(bn_gguf_writer_add_tensor(w, "x", BN_QT_F32, 1, (int64_t[]){1}, payload_f32, 4) ==
          BN_ERR_INVALID_ARG, "duplicate name");
    CHECK(bn_gguf_writer_set_u32(w, "", 1) == BN_ERR_INVALID_ARG, "empty key");
    /* a write into a missing directory fails and leaves nothing */
    CHECK(bn_gguf_writer_write(w, "/nonexistent-dir/x.gguf", NULL, NULL) == BN_ERR_IO,
          "unwritable path");
    bn_gguf_writer_free(w);
}

static bool cancel_after_first(uint64_t done, uint64_t total, void *user)
{
    int *calls = user;
    (void)done;
    (void)total;
    return ++*calls < 2;
}

static void test_cancel_keeps_old_file(void)
{
    char p[300];
    path_in(p, sizeof p, "keep.gguf");
    FILE *f = fopen(p, "wb");
    fputs("the user's old file", f);
    fclose(f);
    bn_gguf_writer *w = build_writer();
    int calls = 0;
    CHECK(bn_gguf_writer_write(w, p, cancel_after_first, &calls) == BN_ERR_IO, "cancelled");
    bn_gguf_writer_free(w);
    size_t n = 0;
    unsigned char *b = slurp(p, &n);
    CHECK(b && n == 19 && memcmp(b, "the user's old file", 19) == 0, "old file untouched");
    free(b);
    /* and no temporary file is left in the directory */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp > /dev/null", dir);
    CHECK(system(cmd) != 0, "no temporary file left");
}

static void test_failure_injection(void)
{
    char p[300];
    path_in(p, sizeof p, "fi.gguf");
    bn_gguf_writer *w = build_writer();
    CHECK_OK(bn_gguf_writer_write(w, p, NULL, NULL));
    bn_gguf_writer_free(w);
    int failures = 0;
    for (uint64_t n = 1; n < 200; n++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_gguf *g = NULL;
        bn_mem_fail_nth(n);
        bn_status st = bn_gguf_open(p, &g);
        bn_mem_fail_nth(0);
        if (st == BN_OK) {
            bn_gguf_close(g);
            break;
        }
        failures++;
        bn_mem_get_stats(&after);
        CHECK(st == BN_ERR_OOM && g == NULL && after.live_blocks == before.live_blocks,
              "open fail #%llu: %s", (unsigned long long)n, bn_last_error());
    }
    CHECK(failures > 0, "open allocations covered");
    failures = 0;
    for (uint64_t n = 1; n < 400; n++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_gguf_writer *w2 = NULL;
        bn_mem_fail_nth(n);
        bn_status st = bn_gguf_writer_create(&w2);
        w2 = st == BN_OK ? w2 : NULL;
        if (st == BN_OK) {
            const char *strs[2] = {"a", "b"};
            st = bn_gguf_writer_set_str(w2, "k1", "v");
            if (st == BN_OK) st = bn_gguf_writer_set_str_array(w2, "k2", strs, 2);
            if (st == BN_OK) st = bn_gguf_writer_add_tensor(w2, "t", BN_QT_F32, 1,
                                                            (int64_t[]){4}, payload_f32, 16);
            if (st == BN_OK) st = bn_gguf_writer_write(w2, p, NULL, NULL);
        }
        bn_mem_fail_nth(0);
        bn_gguf_writer_free(w2);
        if (st == BN_OK)
            break;
        failures++;
        bn_mem_get_stats(&after);
        CHECK(st == BN_ERR_OOM && after.live_blocks == before.live_blocks,
              "writer fail #%llu: %s", (unsigned long long)n, bn_last_error());
    }
    CHECK(failures > 0, "writer allocations covered");
}

/* Open file descriptors of this process. */
static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
}

/* bn_gguf_open_read: the image in memory is the file's bytes (compared with the file
 * read through stdio), the same after bn_gguf_release_pages gives the memory of a range
 * back, and after that of the whole image; the huge-page figure is whole huge pages
 * within the image. */
static void test_read_in(void)
{
    char p[300];
    path_in(p, sizeof p, "big.gguf");
    /* a 5 MiB tensor, so that whole pages and at least one whole 2 MiB page lie in it */
    const int64_t n = (5 << 20) / 4;
    float *big = malloc((size_t)n * sizeof *big);
    for (int64_t i = 0; i < n; i++)
        big[i] = (float)(i % 1000003) * 0.5f - (float)(i % 7);
    bn_gguf_writer *w = build_writer();
    CHECK_OK(bn_gguf_writer_add_tensor(w, "f.big", BN_QT_F32, 2, (int64_t[]){1024, n / 1024},
                                       big, (size_t)n * sizeof *big));
    CHECK_OK(bn_gguf_writer_write(w, p, NULL, NULL));
    bn_gguf_writer_free(w);
    size_t len = 0;
    unsigned char *file = slurp(p, &len);
    int fds = count_fds();
    bn_gguf *g = NULL, *gm = NULL;
    CHECK_OK(bn_gguf_open_read(p, NULL, NULL, &g));
    CHECK_OK(bn_gguf_open(p, &gm));
    if (!g || !gm || !file) {
        bn_gguf_close(g);
        bn_gguf_close(gm);
        free(file);
        free(big);
        return;
    }
    CHECK(bn_gguf_is_read(g) && !bn_gguf_is_read(gm), "read in vs mapped");
    CHECK(bn_gguf_huge_bytes(gm) == 0, "a mapped file has no huge pages of its own");
    size_t huge = bn_thp_size(), hb = (size_t)bn_gguf_huge_bytes(g);
    CHECK(hb <= ((len + (2u << 20)) & ~(size_t)((2u << 20) - 1)) &&
          (hb == 0 || (huge && hb % huge == 0)),
          "huge-page bytes %zu: whole huge pages (%zu) of a %zu-byte image", hb, huge, len);
    const bn_gguf_tensor *t = bn_gguf_get_tensor(g, bn_gguf_find_tensor(g, "f.big"));
    CHECK(t && t->nbytes == (size_t)n * sizeof *big &&
          memcmp(t->data, big, t->nbytes) == 0, "the big tensor's data");
    const unsigned char *image = t ? (const unsigned char *)t->data -
                                     bn_gguf_data_offset(g) - t->offset : NULL;
    CHECK(image && memcmp(image, file, len) == 0, "the image is the file, byte for byte");
    if (image) {
        bn_gguf_release_pages(g, image + 12345, 3u << 20);
        CHECK(memcmp(image, file, len) == 0, "the same after 3 MiB of it were given back");
        bn_gguf_release_pages(g, image, len);
        CHECK(memcmp(image, file, len) == 0, "the same after all of it was given back");
    }
    bn_gguf_close(g);
    bn_gguf_close(gm);
    CHECK(count_fds() == fds, "no file left open (%d before, %d after)", fds, count_fds());
    /* errors as for a mapped file; no descriptor or block left behind by a failure */
    CHECK(bn_gguf_open_read(dir, NULL, NULL, &g) == BN_ERR_IO &&
          strstr(bn_last_error(), "directory"), "a directory: %s", bn_last_error());
    char missing[300];
    path_in(missing, sizeof missing, "missing.gguf");
    CHECK(bn_gguf_open_read(missing, NULL, NULL, &g) == BN_ERR_IO, "a missing file");
    int failures = 0;
    for (uint64_t k = 1; k < 200; k++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        g = NULL;
        bn_mem_fail_nth(k);
        bn_status st = bn_gguf_open_read(p, NULL, NULL, &g);
        bn_mem_fail_nth(0);
        if (st == BN_OK) {
            bn_gguf_close(g);
            break;
        }
        failures++;
        bn_mem_get_stats(&after);
        CHECK(st == BN_ERR_OOM && g == NULL && after.live_blocks == before.live_blocks &&
              count_fds() == fds, "read-in open fail #%llu: %s", (unsigned long long)k,
              bn_last_error());
    }
    CHECK(failures > 0, "read-in open allocations covered");
    free(file);
    free(big);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/bitnet-test-gguf-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    fill_payloads();
    bn_mem_stats start, end;
    bn_mem_get_stats(&start);
    test_round_trip();
    test_writer_errors();
    test_cancel_keeps_old_file();
    test_failure_injection();
    test_read_in();
    bn_mem_get_stats(&end);
    CHECK(end.live_blocks == start.live_blocks, "leaked %lld blocks",
          (long long)(end.live_blocks - start.live_blocks));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary("test_gguf");
}
