/*
 * test_out_file.c - bn_out_file, the writer of every file the library and the program
 * make: the file appears whole at commit and not before, with mode 0666 less the
 * umask; a discard, a failed write (a full disk, played by RLIMIT_FSIZE) or a killed
 * process leaves nothing and an existing file untouched; a missing directory or a
 * non-regular target is an error naming the path; the named-temporary fallback
 * (forced by BITNET_NO_O_TMPFILE=1) is removed by bn_out_file_cleanup_signal, as the
 * program's signal handler calls it; every allocation failure is clean.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"

static char dir[64];

static void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* The names in the test directory, joined by spaces ("" when empty). */
static const char *listing(void)
{
    static char names[1024];
    names[0] = '\0';
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", len ? " " : "", e->d_name);
    }
    if (d)
        closedir(d);
    return names;
}

/* Empties the test directory. */
static void clear_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (d)
        closedir(d);
}

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Whether the file holds exactly `text`. */
static bool holds(const char *path, const char *text)
{
    char buf[256];
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return n == strlen(text) && memcmp(buf, text, n) == 0;
}

static unsigned mode_of(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (unsigned)(sb.st_mode & 0777) : 01000;
}

/* Whether this directory's filesystem has unnamed files (O_TMPFILE). */
static bool have_unnamed(void)
{
#ifdef O_TMPFILE
    int fd = open(dir, O_TMPFILE | O_WRONLY, 0600);
    if (fd >= 0)
        close(fd);
    return fd >= 0;
#else
    return false;
#endif
}

/* Writes `text` to path through bn_out_file and commits. */
static bn_status write_text(const char *path, const char *text)
{
    bn_out_file *f = NULL;
    bn_status st = bn_out_file_open(path, &f);
    if (st == BN_OK)
        st = bn_out_file_write(f, text, strlen(text));
    if (st == BN_OK)
        return bn_out_file_commit(f);
    bn_out_file_discard(f);
    return st;
}

/* A new file: invisible while written, whole at commit, mode from the umask. */
static void test_new_file(bool unnamed)
{
    char p[300];
    path_in(p, sizeof p, "a.bin");
    umask(022);
    bn_out_file *f = NULL;
    CHECK_OK(bn_out_file_open(p, &f));
    if (!f)
        return;
    CHECK_OK(bn_out_file_write(f, "hello ", 6));
    CHECK_OK(bn_out_file_write(f, "world", 5));
    CHECK(bn_out_file_fd(f) >= 0, "a descriptor");
    if (unnamed)
        CHECK(strcmp(listing(), "") == 0, "nothing visible while writing: '%s'", listing());
    CHECK_OK(bn_out_file_commit(f));
    CHECK(holds(p, "hello world"), "content at commit");
    CHECK(strcmp(listing(), "a.bin") == 0, "only the file: '%s'", listing());
    CHECK(mode_of(p) == 0644, "mode %o under umask 022, want 644", mode_of(p));
    unlink(p);
    umask(077);
    CHECK_OK(write_text(p, "private"));
    CHECK(mode_of(p) == 0600, "mode %o under umask 077, want 600", mode_of(p));
    umask(022);
    clear_dir();
}

/* An existing file is replaced at commit (a new inode, in one rename), kept at discard. */
static void test_replace_and_discard(void)
{
    char p[300];
    path_in(p, sizeof p, "a.bin");
    put_file(p, "the user's old file");
    struct stat before, after;
    stat(p, &before);
    bn_out_file *f = NULL;
    CHECK_OK(bn_out_file_open(p, &f));
    if (f) {
        CHECK_OK(bn_out_file_write(f, "half", 4));
        bn_out_file_discard(f);
    }
    CHECK(holds(p, "the user's old file"), "discard leaves the old file");
    CHECK(strcmp(listing(), "a.bin") == 0, "discard leaves nothing else: '%s'", listing());
    CHECK_OK(write_text(p, "new"));
    stat(p, &after);
    CHECK(holds(p, "new"), "commit replaces the old file");
    CHECK(after.st_ino != before.st_ino, "replaced by a rename, not rewritten in place");
    CHECK(strcmp(listing(), "a.bin") == 0, "commit leaves nothing else: '%s'", listing());
    bn_out_file_discard(NULL);
    clear_dir();
}

/* A missing directory and non-regular targets: BN_ERR_IO naming the path. */
static void test_open_errors(void)
{
    char p[300];
    path_in(p, sizeof p, "missing/x.bin");
    bn_out_file *f = NULL;
    CHECK(bn_out_file_open(p, &f) == BN_ERR_IO && f == NULL, "missing directory refused");
    CHECK(strstr(bn_last_error(), p) != NULL, "names the path: %s", bn_last_error());
    CHECK(strstr(bn_last_error(), "No such file or directory") != NULL, "says why: %s",
          bn_last_error());
    CHECK(bn_out_file_open(dir, &f) == BN_ERR_IO && f == NULL, "a directory refused");
    CHECK(strstr(bn_last_error(), "not a regular file") != NULL, "%s", bn_last_error());
    CHECK(bn_out_file_open("/dev/null", &f) == BN_ERR_IO && f == NULL,
          "a device refused");
    CHECK(strstr(bn_last_error(), "/dev/null") != NULL, "%s", bn_last_error());
    CHECK(strcmp(listing(), "") == 0, "nothing created: '%s'", listing());
    if (geteuid() != 0) {
        /* root writes into a read-only directory: only checked for other users */
        char ro[300];
        path_in(ro, sizeof ro, "ro");
        mkdir(ro, 0555);
        path_in(p, sizeof p, "ro/x.bin");
        CHECK(bn_out_file_open(p, &f) == BN_ERR_IO && f == NULL, "read-only directory");
        CHECK(strstr(bn_last_error(), p) != NULL, "names the path: %s", bn_last_error());
        rmdir(ro);
    }
}

/* A write that fails (the file size limit, as a full disk): the status, and a commit
 * that fails and puts nothing in place. */
static void test_write_failure(void)
{
    char p[300];
    path_in(p, sizeof p, "a.bin");
    put_file(p, "the user's old file");
    struct rlimit old, small;
    getrlimit(RLIMIT_FSIZE, &old);
    small = old;
    small.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &small);
    static char block[65536];
    memset(block, 'x', sizeof block);
    bn_out_file *f = NULL;
    CHECK_OK(bn_out_file_open(p, &f));
    if (f) {
        bn_status st = bn_out_file_write(f, block, sizeof block);
        CHECK(st == BN_ERR_IO, "the write fails");
        CHECK(strstr(bn_last_error(), p) && strstr(bn_last_error(), "File too large"),
              "names the path and why: %s", bn_last_error());
        CHECK(bn_out_file_write(f, "x", 1) == BN_ERR_IO, "and stays failed");
        CHECK(bn_out_file_commit(f) == BN_ERR_IO, "commit refuses a failed file");
        CHECK(strstr(bn_last_error(), p) != NULL, "%s", bn_last_error());
    }
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK(holds(p, "the user's old file"), "the old file is untouched");
    CHECK(strcmp(listing(), "a.bin") == 0, "nothing else left: '%s'", listing());
    clear_dir();
}

/* The named temporary: visible while written, removed by the signal-time cleanup,
 * renamed at commit. */
static void test_named_fallback(void)
{
    char p[300];
    path_in(p, sizeof p, "n.bin");
    setenv("BITNET_NO_O_TMPFILE", "1", 1);
    bn_out_file *f = NULL;
    CHECK_OK(bn_out_file_open(p, &f));
    const char *names = listing();
    CHECK(strncmp(names, "n.bin.tmp.", 10) == 0 && strlen(names) == 16,
          "one named temporary beside the target: '%s'", names);
    char temp[300];
    path_in(temp, sizeof temp, names);
    CHECK(mode_of(temp) == 0644, "temporary mode %o under umask 022", mode_of(temp));
    bn_out_file_cleanup_signal();
    CHECK(strcmp(listing(), "") == 0, "cleanup removed it: '%s'", listing());
    bn_out_file_discard(f);
    CHECK_OK(write_text(p, "named"));
    CHECK(holds(p, "named") && mode_of(p) == 0644, "committed through the temporary");
    CHECK(strcmp(listing(), "n.bin") == 0, "only the file: '%s'", listing());
    f = NULL;
    CHECK_OK(bn_out_file_open(p, &f));
    if (f)
        CHECK_OK(bn_out_file_write(f, "half", 4));
    bn_out_file_cleanup_signal();
    bn_out_file_discard(f);
    CHECK(holds(p, "named") && strcmp(listing(), "n.bin") == 0,
          "cleanup keeps an existing target: '%s'", listing());
    /* more files at once than the cleanup table holds: all still work */
    bn_out_file *many[20] = {0};
    for (int i = 0; i < 20; i++) {
        char q[300];
        snprintf(q, sizeof q, "%s/m%d.bin", dir, i);
        CHECK_OK(bn_out_file_open(q, &many[i]));
    }
    for (int i = 0; i < 20; i++)
        bn_out_file_discard(many[i]);
    CHECK(strcmp(listing(), "n.bin") == 0, "all discarded: '%s'", listing());
    unsetenv("BITNET_NO_O_TMPFILE");
    clear_dir();
}

static void on_term(int sig)
{
    (void)sig;
    bn_out_file_cleanup_signal();
    _exit(3);
}

/* A child killed while writing leaves nothing: by SIGKILL with an unnamed file, by
 * SIGTERM through a handler that calls the cleanup with a named one. */
static void test_killed_writer(bool unnamed)
{
    for (int named = unnamed ? 0 : 1; named < 2; named++) {
        pid_t pid = fork();
        if (pid == 0) {
            char p[300];
            path_in(p, sizeof p, "k.bin");
            if (named) {
                setenv("BITNET_NO_O_TMPFILE", "1", 1);
                signal(SIGTERM, on_term);
            }
            bn_out_file *f = NULL;
            static char block[1 << 20];
            if (bn_out_file_open(p, &f) != BN_OK ||
                bn_out_file_write(f, block, sizeof block) != BN_OK)
                _exit(1);
            raise(named ? SIGTERM : SIGKILL);
            _exit(2);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (named)
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3, "the handler ran (%d)",
                  status);
        else
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "killed (%d)", status);
        CHECK(strcmp(listing(), "") == 0, "%s: nothing left: '%s'",
              named ? "SIGTERM, named" : "SIGKILL, unnamed", listing());
        clear_dir();
    }
}

/* Every allocation of open, write and commit failing in turn: BN_ERR_OOM, no leak,
 * no file. */
static void test_failure_injection(void)
{
    char p[300];
    path_in(p, sizeof p, "fi.bin");
    int failures = 0;
    for (int named = 0; named < 2; named++) {
        if (named)
            setenv("BITNET_NO_O_TMPFILE", "1", 1);
        for (uint64_t n = 1; n < 50; n++) {
            bn_mem_stats before, after;
            bn_mem_get_stats(&before);
            bn_mem_fail_nth(n);
            bn_status st = write_text(p, "data");
            bn_mem_fail_nth(0);
            bn_mem_get_stats(&after);
            CHECK(after.live_blocks == before.live_blocks, "fail #%llu: leaked",
                  (unsigned long long)n);
            if (st == BN_OK) {
                CHECK(holds(p, "data"), "written after %llu failures", (unsigned long long)n);
                break;
            }
            failures++;
            CHECK(st == BN_ERR_OOM && strcmp(listing(), "") == 0, "fail #%llu: %s, '%s'",
                  (unsigned long long)n, bn_last_error(), listing());
        }
        clear_dir();
    }
    unsetenv("BITNET_NO_O_TMPFILE");
    CHECK(failures >= 2, "allocations covered (%d)", failures);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/bitnet-test-out-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    bool unnamed = have_unnamed();
    if (!unnamed)
        printf("test_out_file: %s has no unnamed files: the named fallback only\n", dir);
    bn_mem_stats start, end;
    bn_mem_get_stats(&start);
    test_new_file(unnamed);
    test_replace_and_discard();
    test_open_errors();
    test_write_failure();
    test_named_fallback();
    test_killed_writer(unnamed);
    test_failure_injection();
    bn_mem_get_stats(&end);
    CHECK(end.live_blocks == start.live_blocks, "leaked %lld blocks",
          (long long)(end.live_blocks - start.live_blocks));
    clear_dir();
    rmdir(dir);
    return check_summary("test_out_file");
}
