/*
 * kernel_choice.c - which kernel family the library runs, chosen once on first use:
 * the fastest one this CPU runs, the scalar one under the build option
 * BITNET_FORCE_SCALAR, or the one the environment variable BITNET_KERNELS names
 * (matched without regard to case).
 *
 * A value of BITNET_KERNELS that names no family of this build, or one this CPU cannot
 * run, is an error: bn_kernels_check_env() returns it, with the valid names, so that a
 * program refuses to start; the library used without that check logs the same message
 * and runs the fastest family (never silently the slowest).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "core/internal.h"

static const bn_kernel_table *bn_kernels_chosen;
static pthread_once_t bn_kernels_once = PTHREAD_ONCE_INIT;

/* "a, b, c": the families of this build, or only those this CPU runs */
static void bn_kernel_names(char *buf, size_t cap, bool runnable_only)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < bn_kernel_family_count; i++) {
        const bn_kernel_table *k = bn_kernel_families[i];
        if (runnable_only && !bn_kernel_family_runs(k))
            continue;
        int w = snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", k->name);
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
}

/* The family $BITNET_KERNELS names (the best one when it is unset or empty). */
static bn_status bn_kernels_from_env(const bn_kernel_table **out)
{
    *out = bn_kernel_family_best();
    const char *want = getenv("BITNET_KERNELS");
    if (!want || !*want)
        return BN_OK;
    char names[256];
    for (int i = 0; i < bn_kernel_family_count; i++) {
        const bn_kernel_table *k = bn_kernel_families[i];
        if (strcasecmp(want, k->name) != 0)
            continue;
        if (!bn_kernel_family_runs(k)) {
            bn_kernel_names(names, sizeof names, true);
            return bn_error_set(BN_ERR_UNSUPPORTED,
                                "BITNET_KERNELS=%s: this CPU cannot run the %s kernels "
                                "(it runs: %s)", want, k->name, names);
        }
        *out = k;
        return BN_OK;
    }
    bn_kernel_names(names, sizeof names, false);
    return bn_error_set(BN_ERR_INVALID_ARG,
                        "BITNET_KERNELS=%s: no such kernel family in this build "
                        "(valid: %s)", want, names);
}

static void bn_kernels_choose(void)
{
    const bn_kernel_table *k;
    if (bn_kernels_from_env(&k) != BN_OK)
        bn_log(BN_LOG_ERROR, "%s; using the %s kernels", bn_last_error(), k->name);
    bn_kernels_chosen = k;
}

const bn_kernel_table *bn_kernels(void)
{
    pthread_once(&bn_kernels_once, bn_kernels_choose);
    return bn_kernels_chosen;
}

const char *bn_kernels_name(void)
{
    return bn_kernels()->name;
}

bn_status bn_kernels_check_env(void)
{
    const bn_kernel_table *k;
    return bn_kernels_from_env(&k);
}
