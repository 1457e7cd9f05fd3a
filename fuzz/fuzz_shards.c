/*
 * fuzz_shards.c - a libFuzzer target for the token shard reader (bn_shards_open and
 * bn_shards_read). Each input is written to a file in a private temporary folder (the
 * reader takes a path) and opened. A refused file must leave a message and no handle.
 * An accepted one must have the size its header gives (64 + width x count), and every
 * token must read back, in one call and in pieces across the whole range, either as an
 * id below the vocabulary size or as BN_ERR_FORMAT; a range past the end must be
 * BN_ERR_INVALID_ARG. The live block count must return to where it was. Any broken
 * promise aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void bn_fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz_shards: %s\n", what);
    abort();
}

static char bn_fuzz_path[300];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!bn_fuzz_path[0]) {
        char dir[] = "/tmp/fuzz_shards.XXXXXX";
        if (!mkdtemp(dir))
            bn_fuzz_fail("cannot make a temporary folder");
        snprintf(bn_fuzz_path, sizeof bn_fuzz_path, "%s/x.bin", dir);
    }
    FILE *f = fopen(bn_fuzz_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        bn_fuzz_fail("cannot write the input");
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    bn_shards *s = NULL;
    bn_status st = bn_shards_open(bn_fuzz_path, NULL, &s);
    if (st != BN_OK) {
        if (s || !bn_last_error()[0])
            bn_fuzz_fail("a refused file left a handle or no message");
    } else {
        uint64_t n = bn_shards_n_tokens(s);
        int32_t n_vocab = bn_shards_n_vocab(s);
        uint32_t width = n_vocab <= 65536 ? 2 : 4;
        if (bn_shards_n_files(s) != 1 || n_vocab <= 0 || 64 + n * width != size)
            bn_fuzz_fail("an accepted file is not the size its header gives");
        int32_t *all = malloc((size_t)(n ? n : 1) * sizeof *all);
        if (!all)
            bn_fuzz_fail("out of memory");
        bn_status whole = bn_shards_read(s, 0, (size_t)n, all);
        if (whole != BN_OK && whole != BN_ERR_FORMAT)
            bn_fuzz_fail("reading the whole file gave neither OK nor FORMAT");
        for (uint64_t i = 0; whole == BN_OK && i < n; i++)
            if (all[i] < 0 || all[i] >= n_vocab)
                bn_fuzz_fail("an id outside the vocabulary read as OK");
        for (uint64_t at = 0; at < n; at += 7) {
            int32_t piece[7];
            size_t k = n - at < 7 ? (size_t)(n - at) : 7;
            bn_status pst = bn_shards_read(s, at, k, piece);
            if (pst == BN_OK && whole == BN_OK && memcmp(piece, all + at, k * sizeof *piece))
                bn_fuzz_fail("a piece reads differently from the whole");
            if (pst != BN_OK && pst != BN_ERR_FORMAT)
                bn_fuzz_fail("a piece gave neither OK nor FORMAT");
        }
        int32_t one;
        if (bn_shards_read(s, n, 1, &one) != BN_ERR_INVALID_ARG)
            bn_fuzz_fail("a read past the end was not refused");
        free(all);
        bn_shards_close(s);
    }
    bn_mem_get_stats(&after);
    if (after.live_blocks != before.live_blocks)
        bn_fuzz_fail("blocks leaked");
    return 0;
}
