/*
 * test_model_load.c - the progress callback of bn_model_load (bn_model_params.progress)
 * on a model written with `bitnet synth` (the program's path comes in $BITNET), a few
 * MB so that reading it takes several passes:
 *   - read into memory: the first call is (0, size), done never goes down and ends at
 *     the file's size, total is that size in every call, every call is on the loading
 *     thread, and there is more than one pass;
 *   - mapped: one call, (size, size);
 *   - returning false cancels the load in either mode: BN_ERR_IO, "cancelled" and the
 *     path in the message, no model, no memory left behind;
 *   - the loaded model is the same with and without the callback (its output layer's
 *     logits for one token).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"

static char tmp_dir[] = "/tmp/bn_test_model_load_XXXXXX";

/* What the callback saw. */
typedef struct record {
    int n_calls;
    uint64_t first_done, last_done, total;
    bool decreasing;         /* done went down at some call */
    bool total_changed;      /* total differed between calls */
    bool other_thread;       /* a call came from another thread */
    pthread_t loader;
    int cancel_at;           /* return false at this call (1-based), 0: never */
} record;

static bool on_progress(uint64_t done, uint64_t total, void *user)
{
    record *r = user;
    r->n_calls++;
    if (r->n_calls == 1) {
        r->first_done = done;
        r->total = total;
    } else {
        r->decreasing |= done < r->last_done;
        r->total_changed |= total != r->total;
    }
    r->other_thread |= !pthread_equal(pthread_self(), r->loader);
    r->last_done = done;
    return r->cancel_at == 0 || r->n_calls < r->cancel_at;
}

/* Loads `path` in `mode` with the callback; returns the status, the model in *m. */
static bn_status load_with(const char *path, bn_load_mode mode, record *r, bn_model **m)
{
    bn_model_params mp = bn_model_default_params();
    mp.load = mode;
    mp.progress = on_progress;
    mp.progress_user = r;
    r->loader = pthread_self();
    *m = NULL;
    bn_error_clear();
    return bn_model_load(path, &mp, m);
}

/* The logits of token 1 at position 0. */
static bool first_logits(bn_model *m, float *out, int32_t n_vocab)
{
    bn_context *c = NULL;
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 8;
    bn_token t = 1;
    bool ok = bn_context_create(m, &cp, &c) == BN_OK && bn_eval(c, &t, 1) == BN_OK;
    if (ok)
        memcpy(out, bn_get_logits(c, -1), (size_t)n_vocab * sizeof *out);
    bn_context_free(c);
    return ok;
}

static void test_read_in(const char *path, uint64_t size)
{
    record r = {0};
    bn_model *m = NULL;
    CHECK_OK(load_with(path, BN_LOAD_READ, &r, &m));
    bn_model_info info = {0};
    if (m)
        bn_model_get_info(m, &info);
    CHECK(m && info.weights_read, "the model was not read into memory");
    CHECK(r.n_calls >= 3, "%d calls for a %llu-byte file read in passes", r.n_calls,
          (unsigned long long)size);
    CHECK(r.first_done == 0, "the first call says %llu bytes done",
          (unsigned long long)r.first_done);
    CHECK(!r.decreasing, "done went down");
    CHECK(r.total == size && !r.total_changed, "total %llu, the file has %llu",
          (unsigned long long)r.total, (unsigned long long)size);
    CHECK(r.last_done == size, "the last call says %llu of %llu",
          (unsigned long long)r.last_done, (unsigned long long)size);
    CHECK(!r.other_thread, "a call came from another thread than the loader");

    /* the same logits as a load without the callback */
    bn_model *plain = NULL;
    bn_model_params mp = bn_model_default_params();
    mp.load = BN_LOAD_READ;
    CHECK_OK(bn_model_load(path, &mp, &plain));
    if (m && plain) {
        int32_t nv = bn_model_n_vocab(m);
        float *a = malloc((size_t)nv * sizeof *a), *b = malloc((size_t)nv * sizeof *b);
        CHECK(a && b && first_logits(m, a, nv) && first_logits(plain, b, nv),
              "evaluating: %s", bn_last_error());
        CHECK(a && b && memcmp(a, b, (size_t)nv * sizeof *a) == 0,
              "the logits differ with the callback");
        free(a);
        free(b);
    }
    bn_model_free(plain);
    bn_model_free(m);
}

static void test_mapped(const char *path, uint64_t size)
{
    record r = {0};
    bn_model *m = NULL;
    CHECK_OK(load_with(path, BN_LOAD_MMAP, &r, &m));
    bn_model_info info = {0};
    if (m)
        bn_model_get_info(m, &info);
    CHECK(m && !info.weights_read, "the model was not mapped");
    CHECK(r.n_calls == 1 && r.first_done == size && r.total == size,
          "mapped: %d calls, first (%llu, %llu), file %llu bytes", r.n_calls,
          (unsigned long long)r.first_done, (unsigned long long)r.total,
          (unsigned long long)size);
    CHECK(!r.other_thread, "a call came from another thread than the loader");
    bn_model_free(m);
}

/* false from the callback at call `at` cancels the load, leaving nothing behind. */
static void test_cancel(const char *path, bn_load_mode mode, int at)
{
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    record r = {.cancel_at = at};
    bn_model *m = (bn_model *)&r;
    bn_status st = load_with(path, mode, &r, &m);
    bn_mem_get_stats(&after);
    CHECK(st == BN_ERR_IO && m == NULL, "cancel at call %d (mode %d): %s, model %p", at,
          (int)mode, bn_status_str(st), (void *)m);
    CHECK(strstr(bn_last_error(), "cancelled") && strstr(bn_last_error(), path),
          "cancel message: %s", bn_last_error());
    CHECK(r.n_calls == at, "%d calls after cancelling at call %d", r.n_calls, at);
    CHECK(after.live_blocks == before.live_blocks, "%lld blocks left after cancelling",
          (long long)(after.live_blocks - before.live_blocks));
}

int main(void)
{
    const char *bitnet = getenv("BITNET");
    if (!bitnet || access(bitnet, X_OK) != 0)
        check_skip("test_model_load", "$BITNET must name the bitnet program");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    bn_log_set_level(BN_LOG_ERROR);
    char path[256], cmd[1024];
    snprintf(path, sizeof path, "%s/m.gguf", tmp_dir);
    /* an f32 embedding of 8192 x 256: about 9 MB, several passes of 2 MiB or less */
    snprintf(cmd, sizeof cmd, "'%s' synth '%s' --layers 2 --vocab 8192 --embd-type f32 "
             "--seed 3 > /dev/null", bitnet, path);
    struct stat sb;
    if (system(cmd) != 0 || stat(path, &sb) != 0) {
        fprintf(stderr, "could not write the model with %s\n", bitnet);
        return 1;
    }
    uint64_t size = (uint64_t)sb.st_size;
    CHECK(size > (8u << 20), "the model has %llu bytes", (unsigned long long)size);

    test_read_in(path, size);
    test_mapped(path, size);
    test_cancel(path, BN_LOAD_READ, 1);
    test_cancel(path, BN_LOAD_READ, 2);
    test_cancel(path, BN_LOAD_MMAP, 1);

    unlink(path);
    rmdir(tmp_dir);
    return check_summary("test_model_load");
}
