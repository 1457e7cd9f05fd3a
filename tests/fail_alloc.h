/*
 * fail_alloc.h - failure injection over one call: make the n-th allocation fail for
 * n = 1, 2, ... until the call succeeds. Every failure must return BN_ERR_OOM, leave
 * the output tensor NULL and free every block it took; at least one must happen.
 */
#ifndef BN_TEST_FAIL_ALLOC_H
#define BN_TEST_FAIL_ALLOC_H

#include "bitnet.h"
#include "check.h"

#define FAIL_EACH_ALLOC(label, call, outp)                                           \
    do {                                                                             \
        int failures_ = 0;                                                           \
        for (uint64_t n_ = 1; n_ < 200; n_++) {                                      \
            bn_mem_stats before_, after_;                                            \
            bn_mem_get_stats(&before_);                                              \
            *(outp) = NULL;                                                          \
            bn_mem_fail_nth(n_);                                                     \
            bn_status st_ = (call);                                                  \
            bn_mem_fail_nth(0);                                                      \
            if (st_ == BN_OK) {                                                      \
                bn_tensor_free(*(outp));                                             \
                break;                                                               \
            }                                                                        \
            failures_++;                                                             \
            bn_mem_get_stats(&after_);                                               \
            CHECK(st_ == BN_ERR_OOM && *(outp) == NULL &&                            \
                  after_.live_blocks == before_.live_blocks,                         \
                  "%s: fail #%llu -> %s, output %p, leaked %lld blocks", label,      \
                  (unsigned long long)n_, bn_status_str(st_), (void *)*(outp),       \
                  (long long)(after_.live_blocks - before_.live_blocks));            \
        }                                                                            \
        CHECK(failures_ > 0, "%s: no allocation was covered", label);                \
    } while (0)

#endif
