/*
 * cmd_train_tokenizer.c - `bitnet train-tokenizer`: learns a byte-level BPE tokenizer
 * (LLaMA 3's kind) from text files and writes it as a Hugging Face tokenizer.json.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

const char cmd_train_tokenizer_help[] =
    "usage: bitnet train-tokenizer --vocab N -o tokenizer.json [options] FILE...\n"
    "\n"
    "Learn a byte-level BPE tokenizer, as LLaMA 3 has it, from the text of FILEs (any\n"
    "bytes; - reads standard input) and write it as a Hugging Face tokenizer.json, with\n"
    "a tokenizer_config.json beside it (BOS, EOS and a LLaMA 3 chat template). The\n"
    "result loads in this program (-m tokenizer.json), in Hugging Face tokenizers and in\n"
    "transformers, with the same ids; any bytes round-trip exactly.\n"
    "\n"
    "The text is split by LLaMA 3's pre-tokenizer and every distinct piece is counted;\n"
    "then, starting from the 256 bytes, the most frequent adjacent pair is merged into a\n"
    "new token until the vocabulary is full (ties: the pair of smaller token ids). The\n"
    "vocabulary ends with <|begin_of_text|> (BOS), <|end_of_text|> (EOS),\n"
    "<|start_header_id|>, <|end_header_id|> and <|eot_id|>.\n"
    "\n"
    "options:\n"
    "  --vocab N            tokens in all, special tokens included (at least 261)\n"
    "  -o, --output FILE    the tokenizer.json to write\n"
    "  --min-count N        stop early when the best pair occurs fewer than N times\n"
    "                       (default 2)\n"
    "  --no-config          do not write tokenizer_config.json\n"
    "  -q, --quiet          no progress line\n"
    "  -h, --help           show this help\n"
    "\n"
    "Memory grows with the number of distinct pieces, not with the size of the text;\n"
    "the peak is reported at the end. Pieces are counted on the threads that -t gives\n"
    "(bitnet -t N train-tokenizer ...); the result does not depend on their number.\n";

typedef struct tt_run {
    bool   progress;
    double started;
} tt_run;

static double tt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void tt_progress(void *user, int32_t n_tokens, int32_t n_target, uint64_t n_bytes)
{
    const tt_run *run = user;
    if (!run->progress)
        return;
    char b[32];
    if (n_target == 0)
        fprintf(stderr, "\rcounting: %s read%-30s", cli_bytes(n_bytes, b, sizeof b), "");
    else
        fprintf(stderr, "\rmerging: %d of %d tokens (%.0f s)%-20s", n_tokens, n_target,
                tt_now() - run->started, "");
}

/* Counts standard input, cut into pieces as the trainer's file reader cuts. */
static bn_status tt_add_stdin(bn_bpe_trainer *tr)
{
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    bn_status st = BN_OK;
    while (buf && st == BN_OK) {
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
        size_t cut = 0;
        for (size_t i = n; i-- > 1 && !cut;) {
            unsigned char c = (unsigned char)buf[i];
            if (buf[i - 1] == '\n' && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                       (c >= '0' && c <= '9')))
                cut = i;
        }
        if (cut) {
            st = bn_bpe_trainer_add_text(tr, buf, cut);
            memmove(buf, buf + cut, n - cut);
            n -= cut;
        } else if (n == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown)
                free(buf);
            buf = grown;
        }
    }
    if (!buf || ferror(stdin)) {
        free(buf);
        return bn_error_set(BN_ERR_IO, "reading standard input failed");
    }
    if (st == BN_OK && n)
        st = bn_bpe_trainer_add_text(tr, buf, n);
    free(buf);
    return st;
}

int cmd_train_tokenizer(int argc, char **argv)
{
    const char *output = NULL;
    int64_t vocab = -1, min_count = 2;
    bool config = true;
    tt_run run = {.progress = isatty(2)};
    const char **files = calloc((size_t)argc, sizeof *files);
    int n_files = 0;
    if (!files) {
        fprintf(stderr, "bitnet train-tokenizer: out of memory\n");
        return 1;
    }
    int rc = -1;
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        if (cli_is_help(a))
            rc = cli_help("train-tokenizer");
        else if (strcmp(a, "--vocab") == 0 && v) {
            if (!cli_parse_int(argv[++i], 1, INT32_MAX, &vocab))
                rc = cli_usage_error("train-tokenizer", "--vocab wants a positive integer, "
                                     "not '%s'", argv[i]);
        } else if (strcmp(a, "--min-count") == 0 && v) {
            if (!cli_parse_int(argv[++i], 1, INT64_MAX, &min_count))
                rc = cli_usage_error("train-tokenizer", "--min-count wants a positive "
                                     "integer, not '%s'", argv[i]);
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && v)
            output = argv[++i];
        else if (strcmp(a, "--no-config") == 0)
            config = false;
        else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
            run.progress = false;
        else if (a[0] == '-' && a[1] != '\0')
            rc = cli_usage_error("train-tokenizer", "unknown option or missing value '%s'", a);
        else
            files[n_files++] = a;
    }
    if (rc < 0 && vocab < 0)
        rc = cli_usage_error("train-tokenizer", "give the vocabulary size with --vocab N");
    else if (rc < 0 && vocab < bn_bpe_train_min_vocab())
        rc = cli_usage_error("train-tokenizer", "--vocab %lld is too small: byte-level BPE "
                             "needs at least %d tokens (256 bytes and 5 special tokens)",
                             (long long)vocab, bn_bpe_train_min_vocab());
    else if (rc < 0 && !output)
        rc = cli_usage_error("train-tokenizer", "name the output with -o tokenizer.json");
    else if (rc < 0 && n_files == 0)
        rc = cli_usage_error("train-tokenizer", "name the text files to train on");
    if (rc >= 0) {
        free(files);
        return rc;
    }

    /* an output that cannot be written is found before the training, not after */
    bn_out_file *probe = NULL;
    if (bn_out_file_open(output, &probe) != BN_OK) {
        free(files);
        return cli_fail("train-tokenizer");
    }
    bn_out_file_discard(probe);

    run.started = tt_now();
    bn_bpe_train_params p = bn_bpe_train_default_params();
    p.vocab_size = (int32_t)vocab;
    p.min_count = min_count;
    p.on_progress = tt_progress;
    p.progress_user = &run;
    bn_bpe_trainer *tr = NULL;
    bn_status st = bn_bpe_trainer_create(&p, &tr);
    for (int i = 0; i < n_files && st == BN_OK; i++)
        st = strcmp(files[i], "-") == 0 ? tt_add_stdin(tr) : bn_bpe_trainer_add_file(tr, files[i]);
    bn_bpe_train_stats stats = {0};
    if (st == BN_OK) {
        bn_bpe_trainer_stats(tr, &stats);
        if (stats.n_bytes == 0)
            st = bn_error_set(BN_ERR_INVALID_ARG, "the input is empty: no text to train on");
    }
    double counted = tt_now();
    if (st == BN_OK)
        st = bn_bpe_trainer_train(tr);
    double merged = tt_now();
    if (st == BN_OK)
        st = bn_bpe_trainer_save(tr, output, config);
    if (run.progress)
        fprintf(stderr, "\r%-60s\r", "");
    if (st != BN_OK) {
        bn_bpe_trainer_free(tr);
        free(files);
        return cli_fail("train-tokenizer");
    }
    bn_bpe_trainer_stats(tr, &stats);
    bn_bpe_trainer_free(tr);
    free(files);

    bn_mem_stats mem;
    bn_mem_get_stats(&mem);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char b1[32], b2[32], b3[32];
    fprintf(stderr, "bitnet train-tokenizer: %s of text, %llu pieces, %llu distinct; "
            "%d merges, %d tokens (counting %.2f s, merging %.2f s); peak memory %s in "
            "the library, %s resident\n",
            cli_bytes(stats.n_bytes, b1, sizeof b1), (unsigned long long)stats.n_pretokens,
            (unsigned long long)stats.n_words, stats.n_merges, stats.vocab_size,
            counted - run.started, merged - counted, cli_bytes(mem.peak_bytes, b2, sizeof b2),
            cli_bytes((uint64_t)ru.ru_maxrss * 1024, b3, sizeof b3));
    if (stats.vocab_size < vocab)
        fprintf(stderr, "bitnet train-tokenizer: warning: the text has no pair left that "
                "occurs %lld times or more: the vocabulary has %d tokens, not %lld\n",
                (long long)min_count, stats.vocab_size, (long long)vocab);
    printf("wrote %s (%d tokens)%s\n", output, stats.vocab_size,
           config ? " and tokenizer_config.json beside it" : "");
    return cli_flush_stdout() ? 0 : 1;
}
