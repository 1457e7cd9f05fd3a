/*
 * out_file.c - writing a file so that it appears whole or not at all, and so that an
 * interrupted process leaves nothing behind.
 *
 * On Linux the bytes go to an unnamed file in the target's directory (O_TMPFILE). It
 * has no name until bn_out_file_commit links it into place after every write and the
 * flush succeeded, so a process killed before that, even by SIGKILL, leaves nothing:
 * the kernel frees the file with its last descriptor. linkat cannot replace a name, so
 * when the target exists the file is linked under a fresh name beside it and renamed
 * over it; that name exists only between the two calls, with SIGINT, SIGTERM and
 * SIGHUP blocked.
 *
 * Where the filesystem has no unnamed files (or not Linux, or BITNET_NO_O_TMPFILE=1 for
 * tests) the bytes go to a named temporary beside the target, PATH.tmp.XXXXXX, renamed
 * over it at the end. Its name sits in a fixed table that bn_out_file_cleanup_signal
 * reads from a signal handler: the program's handlers call it, so a Ctrl-C, SIGTERM or
 * SIGHUP removes the temporary before the process ends. Only SIGKILL can leave one.
 *
 * Either way the file is created with mode 0666 and the process's umask applies, as
 * for any new file.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

struct bn_out_file {
    int   fd;
    char *path;       /* the target */
    char *temp;       /* the named temporary (fallback only), else NULL */
    int   slot;       /* its entry in the cleanup table, or -1 */
    int   write_errno;/* the first failed write's errno, 0 when none */
};

/* ------------------------------------------------------------------ cleanup table */

/* Named temporaries that a signal handler should remove. A slot is claimed with a
 * compare-and-swap (FREE -> FILLING), gets its name, and is then ARMED; the handler
 * unlinks the names of ARMED slots only. Fixed size, so that the handler never follows
 * a pointer that another thread may be freeing. */
enum { BN_SLOT_FREE, BN_SLOT_FILLING, BN_SLOT_ARMED };
#define BN_OUT_SLOTS    16
#define BN_OUT_NAME_MAX 4096

static struct {
    atomic_int state;
    char       name[BN_OUT_NAME_MAX];
} bn_out_slots[BN_OUT_SLOTS];

/* Puts name in a free slot; its index, or -1 when the table is full or the name too
 * long (the temporary then survives a signal: only a warning). */
static int bn_out_slot_arm(const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; n < BN_OUT_NAME_MAX && i < BN_OUT_SLOTS; i++) {
        int expected = BN_SLOT_FREE;
        if (atomic_compare_exchange_strong(&bn_out_slots[i].state, &expected,
                                           BN_SLOT_FILLING)) {
            memcpy(bn_out_slots[i].name, name, n + 1);
            atomic_store(&bn_out_slots[i].state, BN_SLOT_ARMED);
            return i;
        }
    }
    if (n < BN_OUT_NAME_MAX)
        bn_log(BN_LOG_WARN, "%s will not be removed if the program is interrupted (more "
               "than %d files written at once)", name, BN_OUT_SLOTS);
    else
        bn_log(BN_LOG_WARN, "%s will not be removed if the program is interrupted (name "
               "too long)", name);
    return -1;
}

static void bn_out_slot_disarm(int slot)
{
    if (slot >= 0)
        atomic_store(&bn_out_slots[slot].state, BN_SLOT_FREE);
}

void bn_out_file_cleanup_signal(void)
{
    int saved = errno;
    for (int i = 0; i < BN_OUT_SLOTS; i++)
        if (atomic_load(&bn_out_slots[i].state) == BN_SLOT_ARMED)
            unlink(bn_out_slots[i].name);
    errno = saved;
}

/* Blocks the signals the program ends on (SIGINT, SIGTERM, SIGHUP) in this thread,
 * for the instants a name exists that no handler knows of; *old gets the old mask. */
static void bn_out_block_signals(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void bn_out_restore_signals(const sigset_t *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* ------------------------------------------------------------------ names */

/* "path.tmp.XXXXXX" with six letters or digits, new on every call. Returns a bn_malloc'd
 * string, or NULL (error set). */
static char *bn_out_unique_name(const char *path)
{
    static atomic_uint_fast64_t counter;
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t z = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 ((uint64_t)getpid() << 40) ^ atomic_fetch_add(&counter, 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u; /* splitmix64's finalizer */
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    char *name = bn_malloc(n, "out_file");
    if (!name)
        return NULL;
    int len = snprintf(name, n, "%s.tmp.", path);
    for (int i = 0; i < 6; i++, z /= 36)
        name[len + i] = alphabet[z % 36];
    name[len + 6] = '\0';
    return name;
}

/* The directory part of path ("." when there is none). bn_malloc'd, or NULL. */
static char *bn_out_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = bn_malloc(n + 1, "out_file");
    if (!dir)
        return NULL;
    memcpy(dir, slash ? path : ".", n);
    dir[n] = '\0';
    return dir;
}

/* ------------------------------------------------------------------ opening */

/* Whether to try an unnamed file: not when BITNET_NO_O_TMPFILE asks for named
 * temporaries (for tests), nor when it could not be linked at the end: that goes
 * through /proc/self/fd, or AT_EMPTY_PATH, which needs a privilege root has. */
static bool bn_out_try_unnamed(void)
{
    const char *v = getenv("BITNET_NO_O_TMPFILE");
    if (v && v[0] && strcmp(v, "0") != 0)
        return false;
    return access("/proc/self/fd", F_OK) == 0 || geteuid() == 0;
}

/* Opens the named temporary beside f->path. */
static bn_status bn_out_open_named(bn_out_file *f, const char *dir)
{
    sigset_t old;
    bn_out_block_signals(&old);
    for (int tries = 0; f->fd < 0 && tries < 100; tries++) {
        bn_free(f->temp);
        f->temp = bn_out_unique_name(f->path);
        if (!f->temp)
            break;
        f->fd = open(f->temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (f->fd < 0 && errno != EEXIST)
            break;
    }
    int err = errno;
    if (f->fd >= 0)
        f->slot = bn_out_slot_arm(f->temp);
    bn_out_restore_signals(&old);
    if (f->fd >= 0)
        return BN_OK;
    if (!f->temp)
        return bn_error_wrap(BN_OK, "writing %s", f->path);
    return bn_error_set(BN_ERR_IO, "writing %s: cannot create a file in %s: %s", f->path,
                        dir, strerror(err));
}

bn_status bn_out_file_open(const char *path, bn_out_file **out)
{
    if (!path[0])
        return bn_error_set(BN_ERR_INVALID_ARG, "writing a file: the path is empty");
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return bn_error_set(BN_ERR_IO, "writing %s: it exists and is not a regular file; "
                            "not replacing it", path);
    bn_out_file *f = bn_calloc(1, sizeof *f, "out_file");
    size_t n = strlen(path) + 1;
    char *dir = bn_out_dir_of(path);
    if (f)
        f->path = bn_malloc(n, "out_file");
    if (!f || !f->path || !dir) {
        bn_status st = bn_error_wrap(BN_OK, "writing %s", path);
        if (f)
            bn_free(f->path);
        bn_free(f);
        bn_free(dir);
        return st;
    }
    memcpy(f->path, path, n);
    f->fd = -1;
    f->slot = -1;
    bn_status st = BN_OK;
#ifdef O_TMPFILE
    if (bn_out_try_unnamed()) {
        f->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        /* EISDIR: a kernel older than O_TMPFILE; the others: a filesystem without it */
        if (f->fd < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
            st = bn_error_set(BN_ERR_IO, "writing %s: cannot create a file in %s: %s",
                              path, dir, strerror(errno));
    }
#endif
    if (st == BN_OK && f->fd < 0)
        st = bn_out_open_named(f, dir);
    bn_free(dir);
    if (st != BN_OK) {
        bn_free(f->temp);
        bn_free(f->path);
        bn_free(f);
        return st;
    }
    *out = f;
    return BN_OK;
}

/* ------------------------------------------------------------------ writing */

bn_status bn_out_file_write(bn_out_file *f, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0 && f->write_errno == 0) {
        ssize_t k = write(f->fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            f->write_errno = k < 0 ? errno : EIO;
        else {
            p += k;
            n -= (size_t)k;
        }
    }
    if (f->write_errno)
        return bn_error_set(BN_ERR_IO, "writing %s: %s", f->path, strerror(f->write_errno));
    return BN_OK;
}

int bn_out_file_fd(const bn_out_file *f)
{
    return f->fd;
}

/* Gives f's unnamed file the name `name`: through /proc (any user), else through
 * AT_EMPTY_PATH (needs CAP_DAC_READ_SEARCH). 0, or -1 with errno. */
static int bn_out_link(const bn_out_file *f, const char *name)
{
#ifdef O_TMPFILE
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    if (errno != ENOENT || access("/proc/self/fd", F_OK) == 0)
        return -1; /* a real failure (EEXIST among them), not a missing /proc */
    return linkat(f->fd, "", AT_FDCWD, name, AT_EMPTY_PATH);
#else
    (void)f;
    (void)name;
    errno = ENOTSUP;
    return -1;
#endif
}

/* Frees f's memory (the descriptor is closed by then). */
static void bn_out_free(bn_out_file *f)
{
    bn_free(f->temp);
    bn_free(f->path);
    bn_free(f);
}

/* Commit of an unnamed file: link it at the path; when a file is there, link it beside
 * the path and rename it over. */
static bn_status bn_out_commit_unnamed(bn_out_file *f)
{
    bn_status st = BN_OK;
    sigset_t old;
    bn_out_block_signals(&old);
    char *beside = NULL;
    const char *linked = f->path;
    bool oom = false;
    int rc = bn_out_link(f, f->path);
    for (int tries = 0; rc != 0 && errno == EEXIST && tries < 100; tries++) {
        bn_free(beside);
        linked = beside = bn_out_unique_name(f->path);
        if ((oom = !beside))
            break;
        rc = bn_out_link(f, beside);
    }
    if (rc != 0)
        st = oom ? bn_error_wrap(BN_OK, "writing %s", f->path)
                 : bn_error_set(BN_ERR_IO, "writing %s: linking the finished file: %s",
                                f->path, strerror(errno));
    if (close(f->fd) != 0 && st == BN_OK) {
        st = bn_error_set(BN_ERR_IO, "writing %s: closing: %s", f->path, strerror(errno));
        unlink(linked); /* a name made here: nothing was at it before the link */
    } else if (st == BN_OK && beside && rename(beside, f->path) != 0) {
        st = bn_error_set(BN_ERR_IO, "writing %s: renaming %s over it: %s", f->path, beside,
                          strerror(errno));
        unlink(beside);
    }
    f->fd = -1;
    bn_out_restore_signals(&old);
    bn_free(beside);
    return st;
}

/* Commit of a named temporary: close it and rename it over the path. */
static bn_status bn_out_commit_named(bn_out_file *f)
{
    bn_status st = BN_OK;
    if (close(f->fd) != 0)
        st = bn_error_set(BN_ERR_IO, "writing %s: closing: %s", f->path, strerror(errno));
    f->fd = -1;
    sigset_t old;
    bn_out_block_signals(&old);
    if (st == BN_OK && rename(f->temp, f->path) != 0)
        st = bn_error_set(BN_ERR_IO, "writing %s: renaming %s over it: %s", f->path, f->temp,
                          strerror(errno));
    if (st != BN_OK)
        unlink(f->temp);
    bn_out_slot_disarm(f->slot);
    bn_out_restore_signals(&old);
    return st;
}

bn_status bn_out_file_commit(bn_out_file *f)
{
    if (f->write_errno) {
        bn_status st = bn_error_set(BN_ERR_IO, "writing %s: %s", f->path,
                                    strerror(f->write_errno));
        bn_out_file_discard(f);
        return st;
    }
    /* fsync reports the write-back errors (a full disk under delayed allocation) */
    if (fsync(f->fd) != 0) {
        bn_status st = bn_error_set(BN_ERR_IO, "writing %s: flushing: %s", f->path,
                                    strerror(errno));
        bn_out_file_discard(f);
        return st;
    }
    bn_status st = f->temp ? bn_out_commit_named(f) : bn_out_commit_unnamed(f);
    bn_out_free(f);
    return st;
}

void bn_out_file_discard(bn_out_file *f)
{
    if (!f)
        return;
    sigset_t old;
    bn_out_block_signals(&old);
    if (f->fd >= 0)
        close(f->fd);
    if (f->temp)
        unlink(f->temp);
    bn_out_slot_disarm(f->slot);
    bn_out_restore_signals(&old);
    bn_out_free(f);
}
