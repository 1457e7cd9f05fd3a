/*
 * check.h - the small assertion harness every test executable uses.
 *
 * CHECK(cond, ...) records a failure (with file, line and a printf message) and goes
 * on; the test's main ends with `return check_summary("name");`, which prints
 * "name: N passed, M failed" and returns the exit code CTest reads. A test that cannot
 * run here (no GPU, no reference data) calls check_skip(), which exits with 77, the
 * code CTest is told means "skipped".
 */
#ifndef BN_TEST_CHECK_H
#define BN_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_n_passed;
static int check_n_failed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            check_n_passed++;                                                   \
        } else {                                                                \
            check_n_failed++;                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__,    \
                    #cond);                                                     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

/* Status calls that must succeed: on failure print the library's message. */
#define CHECK_OK(call)                                                          \
    do {                                                                        \
        bn_status check_st_ = (call);                                           \
        CHECK(check_st_ == BN_OK, "%s -> %s: %s", #call,                       \
              bn_status_str(check_st_), bn_last_error());                       \
    } while (0)

/* |a - b| <= atol + rtol * |b|, NaNs equal only to NaNs, infinities exactly. */
static inline int check_close(double a, double b, double atol, double rtol)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b))
        return a == b;
    return fabs(a - b) <= atol + rtol * fabs(b);
}

#define CHECK_NEAR(a, b, atol, rtol)                                            \
    do {                                                                        \
        double check_a_ = (a), check_b_ = (b);                                  \
        CHECK(check_close(check_a_, check_b_, (atol), (rtol)),                  \
              "%s = %.9g, expected %s = %.9g", #a, check_a_, #b, check_b_);     \
    } while (0)

static inline int check_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_n_passed, check_n_failed);
    return check_n_failed == 0 && check_n_passed > 0 ? 0 : 1;
}

static inline void check_skip(const char *name, const char *why)
{
    printf("%s: SKIPPED: %s\n", name, why);
    exit(77);
}

#endif
