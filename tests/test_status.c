/*
 * test_status.c - statuses, the per-thread error chain and the log sink.
 */
#include <pthread.h>
#include <string.h>

#include "bitnet.h"
#include "check.h"

static void test_chain(void)
{
    bn_error_clear();
    CHECK(bn_last_status() == BN_OK && bn_error_depth() == 0 && bn_last_error()[0] == 0,
          "no error after clear");
    bn_status st = bn_error_set(BN_ERR_FORMAT, "data runs past end of file");
    CHECK(st == BN_ERR_FORMAT, "set returns its status");
    st = bn_error_wrap(BN_OK, "tensor '%s'", "blk.3.ffn_up.weight");
    CHECK(st == BN_ERR_FORMAT, "wrap with BN_OK keeps the status");
    bn_error_wrap(BN_OK, "loading %s", "model.gguf");
    CHECK(strcmp(bn_last_error(), "loading model.gguf: tensor 'blk.3.ffn_up.weight': "
                                  "data runs past end of file") == 0,
          "chain joined outermost first: '%s'", bn_last_error());
    CHECK(bn_error_depth() == 3, "depth 3, got %d", bn_error_depth());
    CHECK(strcmp(bn_error_frame(0), "loading model.gguf") == 0, "frame 0 outermost");
    CHECK(strcmp(bn_error_frame(2), "data runs past end of file") == 0, "frame 2 root");
    CHECK(bn_error_frame(3) == NULL && bn_error_frame(-1) == NULL, "out of range frames");
    CHECK(bn_last_status() == BN_ERR_FORMAT, "status kept");
    bn_error_wrap(BN_ERR_IO, "outer");
    CHECK(bn_last_status() == BN_ERR_IO, "wrap with a status overrides it");
    /* a new error replaces the old chain */
    bn_error_set(BN_ERR_OOM, "fresh");
    CHECK(strcmp(bn_last_error(), "fresh") == 0 && bn_error_depth() == 1, "replaced");
    /* wrap without an error starts one */
    bn_error_clear();
    bn_error_wrap(BN_ERR_SHAPE, "only context");
    CHECK(bn_last_status() == BN_ERR_SHAPE && bn_error_depth() == 1, "wrap starts a chain");
    /* a chain longer than the cap keeps the root cause and marks the loss */
    bn_error_set(BN_ERR_IO, "root");
    for (int i = 0; i < 40; i++)
        bn_error_wrap(BN_OK, "ctx %d", i);
    const char *msg = bn_last_error();
    size_t len = strlen(msg);
    CHECK(len > 6 && strcmp(msg + len - 6, ": root") == 0, "root cause kept: %s", msg);
    CHECK(strncmp(msg, "...: ", 5) == 0, "dropped frames marked: %.40s", msg);
    /* a long message is truncated, not overflowed */
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    bn_error_set(BN_ERR_IO, "%s", big);
    CHECK(strlen(bn_last_error()) < sizeof big && strlen(bn_last_error()) > 100,
          "long message truncated");
    bn_error_clear();
}

static void test_status_names(void)
{
    CHECK(strcmp(bn_status_str(BN_OK), "ok") == 0, "ok");
    CHECK(strcmp(bn_status_str(BN_ERR_OOM), "out of memory") == 0, "oom");
    for (int s = 0; s < BN_STATUS_COUNT; s++)
        CHECK(bn_status_str((bn_status)s)[0] != 0, "status %d named", s);
    CHECK(strcmp(bn_status_str((bn_status)999), "unknown status") == 0, "unknown");
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", BITNET_VERSION_MAJOR, BITNET_VERSION_MINOR,
             BITNET_VERSION_PATCH);
    CHECK(strcmp(bn_version(), want) == 0, "version %s matches header %s", bn_version(),
          want);
}

static void *other_thread(void *arg)
{
    (void)arg;
    CHECK(bn_error_depth() == 0, "a new thread starts without an error");
    bn_error_set(BN_ERR_DEVICE, "from the other thread");
    return NULL;
}

static void test_thread_local(void)
{
    bn_error_set(BN_ERR_IO, "main thread");
    pthread_t th;
    pthread_create(&th, NULL, other_thread, NULL);
    pthread_join(th, NULL);
    CHECK(strcmp(bn_last_error(), "main thread") == 0 && bn_last_status() == BN_ERR_IO,
          "errors are per thread: %s", bn_last_error());
    bn_error_clear();
}

typedef struct captured {
    int          count;
    bn_log_level level;
    char         msg[256];
} captured;

static void capture(bn_log_level level, const char *msg, void *user)
{
    captured *c = user;
    c->count++;
    c->level = level;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static void test_log(void)
{
    captured c = {0};
    bn_log_set(capture, &c);
    CHECK(bn_log_get_level() == BN_LOG_WARN, "default threshold is warn");
    bn_log(BN_LOG_INFO, "dropped %d", 1);
    CHECK(c.count == 0, "info below the threshold is dropped");
    bn_log(BN_LOG_ERROR, "kept %d", 2);
    CHECK(c.count == 1 && c.level == BN_LOG_ERROR && strcmp(c.msg, "kept 2") == 0,
          "error reaches the sink: %s", c.msg);
    bn_log_set_level(BN_LOG_DEBUG);
    bn_log(BN_LOG_DEBUG, "debug");
    CHECK(c.count == 2 && c.level == BN_LOG_DEBUG, "debug passes a debug threshold");
    bn_log_set_level(BN_LOG_NONE);
    bn_log(BN_LOG_ERROR, "silenced");
    CHECK(c.count == 2, "NONE silences everything");
    bn_log_set_level(BN_LOG_WARN);
    bn_log_set(NULL, NULL);
    bn_log(BN_LOG_DEBUG, "to the default sink, below threshold");
    CHECK(c.count == 2, "sink replaced back");
}

int main(void)
{
    test_chain();
    test_status_names();
    test_thread_local();
    test_log();
    return check_summary("test_status");
}
