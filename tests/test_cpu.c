/*
 * test_cpu.c - bn_cpu_get_info against sources that do not share its code: the
 * kernel's /proc/cpuinfo (its "flags" line on x86, which already drops features the
 * OS does not enable; "Features" on ARM; "model name"), sysconf and uname(2). Where
 * /proc/cpuinfo is missing those comparisons are skipped with a note; the
 * consistency rules between features are checked everywhere.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"

/* The value of the first "key : value" line of /proc/cpuinfo whose key is `key`,
 * copied into buf with surrounding spaces removed; false when absent. */
static bool cpuinfo_field(const char *key, char *buf, size_t cap)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return false;
    static char line[16384];
    bool found = false;
    size_t klen = strlen(key);
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) != 0 || (line[klen] != ' ' && line[klen] != '\t' &&
                                              line[klen] != ':'))
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t len = strcspn(v, "\n");
        while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
            len--;
        if (len >= cap)
            len = cap - 1;
        memcpy(buf, v, len);
        buf[len] = '\0';
        found = true;
    }
    fclose(f);
    return found;
}

/* Whether the space-separated list `flags` contains the word `name`. */
static bool has_word(const char *flags, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = flags; (p = strstr(p, name)) != NULL; p += n) {
        bool starts = p == flags || p[-1] == ' ';
        bool ends = p[n] == ' ' || p[n] == '\0';
        if (starts && ends)
            return true;
    }
    return false;
}

/* Consistency: a feature never appears without what it builds on. */
static void test_consistency(const bn_cpu_info *ci)
{
    CHECK(!ci->avx2 || ci->avx, "avx2 without avx");
    CHECK(!ci->fma || ci->avx, "fma without avx");
    CHECK(!ci->avx512f || ci->avx, "avx512f without avx");
    CHECK(!ci->avx512bw || ci->avx512f, "avx512bw without avx512f");
    CHECK(!ci->avx512vl || ci->avx512f, "avx512vl without avx512f");
    CHECK(!ci->avx512vnni || ci->avx512f, "avx512vnni without avx512f");
    CHECK(!ci->avx512vbmi || ci->avx512f, "avx512vbmi without avx512f");
    CHECK(!ci->avx512bf16 || ci->avx512f, "avx512bf16 without avx512f");
    CHECK(!ci->dotprod || ci->neon, "dotprod without neon");
#if !defined(__x86_64__) && !defined(__i386__)
    CHECK(!ci->sse3 && !ci->avx && !ci->avx2 && !ci->avx512f,
          "x86 features reported on %s", ci->arch);
#endif
#if !defined(__aarch64__)
    CHECK(!ci->neon && !ci->dotprod, "ARM features reported on %s", ci->arch);
#endif
}

#if defined(__x86_64__) || defined(__i386__)
/* x86: every flag equals the kernel's. */
static void test_x86_flags(const bn_cpu_info *ci, const char *flags)
{
    struct { const char *kernel_name; bool ours; } table[] = {
        {"pni", ci->sse3},           {"ssse3", ci->ssse3},
        {"avx", ci->avx},            {"avx2", ci->avx2},
        {"fma", ci->fma},            {"f16c", ci->f16c},
        {"avx512f", ci->avx512f},    {"avx512bw", ci->avx512bw},
        {"avx512vl", ci->avx512vl},  {"avx512_vnni", ci->avx512vnni},
        {"avx512vbmi", ci->avx512vbmi}, {"avx512_bf16", ci->avx512bf16},
        {"avx_vnni", ci->avx_vnni},  {"gfni", ci->gfni},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        bool kernel = has_word(flags, table[i].kernel_name);
        CHECK(kernel == table[i].ours, "flag %s: /proc/cpuinfo says %d, we say %d",
              table[i].kernel_name, kernel, table[i].ours);
    }
}

#endif

#if defined(__aarch64__)
/* aarch64: neon and dotprod equal the kernel's asimd and asimddp. */
static void test_arm_flags(const bn_cpu_info *ci, const char *features)
{
    CHECK(has_word(features, "asimd") == ci->neon, "neon: kernel %d, we %d",
          has_word(features, "asimd"), ci->neon);
    CHECK(has_word(features, "asimddp") == ci->dotprod, "dotprod: kernel %d, we %d",
          has_word(features, "asimddp"), ci->dotprod);
}

#endif

/* Whether this runs under valgrind, which answers CPUID with a CPU of its own: told
 * by $BITNET_TEST_UNDER_VALGRIND (scripts/valgrind-tests.sh) or seen in LD_PRELOAD. */
static bool under_valgrind(void)
{
    const char *told = getenv("BITNET_TEST_UNDER_VALGRIND");
    const char *preload = getenv("LD_PRELOAD");
    return (told && *told && strcmp(told, "0") != 0) ||
           (preload && strstr(preload, "vgpreload"));
}

/* Compares with /proc/cpuinfo when it exists. */
static void test_against_proc(const bn_cpu_info *ci)
{
    static char buf[16384];
    if (under_valgrind()) {
        printf("test_cpu: note: under valgrind, whose CPUID is synthetic; "
               "/proc/cpuinfo comparison skipped\n");
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    if (!cpuinfo_field("flags", buf, sizeof buf)) {
        printf("test_cpu: note: no /proc/cpuinfo flags line; feature comparison skipped\n");
        return;
    }
    test_x86_flags(ci, buf);
    if (cpuinfo_field("model name", buf, sizeof buf))
        CHECK(strcmp(buf, ci->brand) == 0, "brand '%s', /proc/cpuinfo model name '%s'",
              ci->brand, buf);
    else
        printf("test_cpu: note: no model name in /proc/cpuinfo; brand not compared\n");
#elif defined(__aarch64__)
    if (!cpuinfo_field("Features", buf, sizeof buf)) {
        printf("test_cpu: note: no /proc/cpuinfo Features line; comparison skipped\n");
        return;
    }
    test_arm_flags(ci, buf);
#else
    (void)buf;
    printf("test_cpu: note: no feature comparison for %s\n", ci->arch);
#endif
}

static const bn_cpu_info *thread_results[8];

/* Records what bn_cpu_get_info returns on another thread. */
static void *get_info_thread(void *arg)
{
    thread_results[(long)arg] = bn_cpu_get_info();
    return NULL;
}

int main(void)
{
    /* first calls race on several threads: all must see one result */
    pthread_t th[8];
    for (long i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, get_info_thread, (void *)i);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    const bn_cpu_info *ci = bn_cpu_get_info();
    CHECK(ci != NULL, "bn_cpu_get_info returned NULL");
    if (!ci)
        return check_summary("test_cpu");
    for (int i = 0; i < 8; i++)
        CHECK(thread_results[i] == ci, "thread %d saw another info block", i);

    printf("test_cpu: %s '%s', %d logical; avx2 %d fma %d f16c %d avx512f %d "
           "avx512bw %d avx512vnni %d avx_vnni %d neon %d dotprod %d\n",
           ci->arch, ci->brand, ci->n_logical, ci->avx2, ci->fma, ci->f16c,
           ci->avx512f, ci->avx512bw, ci->avx512vnni, ci->avx_vnni, ci->neon,
           ci->dotprod);

    long online = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK(ci->n_logical == online, "n_logical %d, sysconf says %ld", ci->n_logical, online);
    CHECK(ci->n_logical >= 1, "n_logical %d", ci->n_logical);

    struct utsname u;
    CHECK(uname(&u) == 0, "uname failed");
    if (strcmp(ci->arch, "x86_64") == 0 || strcmp(ci->arch, "aarch64") == 0)
        CHECK(strcmp(ci->arch, u.machine) == 0, "arch '%s', uname -m '%s'", ci->arch,
              u.machine);
    else
        printf("test_cpu: note: arch '%s' not compared with uname '%s'\n", ci->arch,
               u.machine);
    CHECK(memchr(ci->arch, '\0', sizeof ci->arch) && memchr(ci->brand, '\0',
          sizeof ci->brand), "arch or brand not terminated");
    CHECK(ci->brand[0] != ' ' && (ci->brand[0] == '\0' ||
          ci->brand[strlen(ci->brand) - 1] != ' '), "brand '%s' not trimmed", ci->brand);

    test_consistency(ci);
    test_against_proc(ci);
    return check_summary("test_cpu");
}
