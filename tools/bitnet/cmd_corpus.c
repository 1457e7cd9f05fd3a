/*
 * cmd_corpus.c - `bitnet corpus`: text files in, token shards out (docs/FORMATS.md,
 * "Token shards"), split into training and validation documents by a seeded draw.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

const char cmd_corpus_help[] =
    "usage: bitnet corpus --tokenizer T -o DIR [--val-frac 0.01] [--seed S] FILE...\n"
    "\n"
    "Tokenize text files once into token shards for training: DIR/train-00000.bin,\n"
    "DIR/train-00001.bin, ... and DIR/val-00000.bin, ... (the format is in\n"
    "docs/FORMATS.md). Each shard records the tokenizer's checksum, so a shard is never\n"
    "read with another tokenizer by mistake.\n"
    "\n"
    "Documents are paragraphs: runs of lines separated by blank lines (lines of spaces\n"
    "and tabs only). Each is tokenized on its own, with its line ends, special-token\n"
    "strings as plain text, and stored as BOS, its tokens, EOS (where the tokenizer has\n"
    "them). Whole documents go to the validation split, each with probability\n"
    "--val-frac, drawn from the seed and the document's number (counted from 0 over\n"
    "all FILEs in order): the same files and seed give byte-identical shards.\n"
    "\n"
    "options:\n"
    "  --tokenizer FILE     a tokenizer.json, tokenizer.model or .gguf model\n"
    "  -o, --output DIR     where the shards go (created when missing; shards of an\n"
    "                       earlier run there are replaced)\n"
    "  --val-frac F         the share of documents held out for validation, 0 to 1\n"
    "                       (default 0.01)\n"
    "  --seed S             the seed of the split (default 0)\n"
    "  --shard-tokens N     tokens per shard file at most (default 67108864)\n"
    "  -q, --quiet          no progress line\n"
    "  -h, --help           show this help\n";

/* SplitMix64's output function. */
static uint64_t cp_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Whether document number doc goes to the validation split: a uniform number in [0, 1)
 * from the seed and doc, below val_frac. */
static bool cp_is_val(uint64_t seed, uint64_t doc, double val_frac)
{
    uint64_t z = cp_mix(seed + (doc + 1) * 0x9e3779b97f4a7c15ULL);
    return (double)(z >> 11) * 0x1p-53 < val_frac;
}

typedef struct cp_run {
    const bn_tokenizer *tok;
    bn_shard_writer    *train, *val;
    uint64_t            seed;
    double              val_frac;
    uint64_t            n_docs, n_val_docs, n_tokens, n_val_tokens, n_bytes;
    int32_t            *ids;
    size_t              cap_ids;
    bool                progress;
} cp_run;

/* Tokenizes one document and hands it to its split's writer. */
static bn_status cp_doc(cp_run *run, const char *text, size_t len)
{
    bn_tokenize_params tp = bn_tokenize_default_params();
    tp.parse_special = false;
    bn_token *tokens = NULL;
    size_t n = 0;
    bn_status st = bn_tokenize(run->tok, text, len, &tp, &tokens, &n);
    if (st != BN_OK)
        return st;
    if (n + 2 > run->cap_ids) {
        size_t cap = 2 * (n + 2);
        int32_t *grown = realloc(run->ids, cap * sizeof *grown);
        if (!grown) {
            bn_free(tokens);
            return bn_error_set(BN_ERR_OOM, "out of memory for a document of %zu tokens", n);
        }
        run->ids = grown;
        run->cap_ids = cap;
    }
    size_t k = 0;
    bn_token bos = bn_tokenizer_bos(run->tok), eos = bn_tokenizer_eos(run->tok);
    if (bos >= 0)
        run->ids[k++] = bos;
    memcpy(run->ids + k, tokens, n * sizeof *tokens);
    k += n;
    if (eos >= 0)
        run->ids[k++] = eos;
    bn_free(tokens);
    bool val = cp_is_val(run->seed, run->n_docs, run->val_frac);
    run->n_docs++;
    if (val) {
        run->n_val_docs++;
        run->n_val_tokens += k;
    }
    run->n_tokens += k;
    run->n_bytes += len;
    return bn_shard_writer_add_doc(val ? run->val : run->train, run->ids, k);
}

/* A line of spaces and tabs only (its line end included). */
static bool cp_blank(const char *line, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n", line[i]) || line[i] == '\0')
            return false;
    return true;
}

/* Reads one file paragraph by paragraph. */
static bn_status cp_file(cp_run *run, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return bn_error_set(BN_ERR_IO, "opening %s: %s", path, strerror(errno));
    char *line = NULL, *doc = NULL;
    size_t line_cap = 0, doc_len = 0, doc_cap = 0;
    ssize_t got;
    bn_status st = BN_OK;
    while (st == BN_OK && (got = getline(&line, &line_cap, f)) >= 0) {
        if (cp_blank(line, (size_t)got)) {
            if (doc_len)
                st = cp_doc(run, doc, doc_len);
            doc_len = 0;
            continue;
        }
        if (doc_len + (size_t)got > doc_cap) {
            size_t cap = 2 * (doc_len + (size_t)got);
            char *grown = realloc(doc, cap);
            if (!grown) {
                st = bn_error_set(BN_ERR_OOM, "out of memory for a paragraph of %zu bytes",
                                  doc_len + (size_t)got);
                break;
            }
            doc = grown;
            doc_cap = cap;
        }
        memcpy(doc + doc_len, line, (size_t)got);
        doc_len += (size_t)got;
        if (run->progress && run->n_docs % 1024 == 0) {
            char b[32];
            fprintf(stderr, "\r%s: %s, %llu documents%-20s", path,
                    cli_bytes(run->n_bytes, b, sizeof b), (unsigned long long)run->n_docs, "");
        }
    }
    if (st == BN_OK && ferror(f))
        st = bn_error_set(BN_ERR_IO, "reading %s: %s", path, strerror(errno));
    if (st == BN_OK && doc_len)
        st = cp_doc(run, doc, doc_len);
    free(line);
    free(doc);
    if (f != stdin)
        fclose(f);
    if (st != BN_OK)
        return bn_error_wrap(st, "%s", path);
    return BN_OK;
}

int cmd_corpus(int argc, char **argv)
{
    const char *tok_path = NULL, *dir = NULL;
    double val_frac = 0.01;
    int64_t seed = 0, shard_tokens = (int64_t)1 << 26;
    cp_run run = {.progress = isatty(2)};
    const char **files = calloc((size_t)argc, sizeof *files);
    int n_files = 0, rc = -1;
    if (!files) {
        fprintf(stderr, "bitnet corpus: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        if (cli_is_help(a))
            rc = cli_help("corpus");
        else if (strcmp(a, "--tokenizer") == 0 && v)
            tok_path = argv[++i];
        else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && v)
            dir = argv[++i];
        else if (strcmp(a, "--val-frac") == 0 && v) {
            char *end;
            val_frac = strtod(argv[++i], &end);
            if (end == argv[i] || *end || !(val_frac >= 0 && val_frac <= 1))
                rc = cli_usage_error("corpus", "--val-frac wants a number from 0 to 1, "
                                     "not '%s'", argv[i]);
        } else if (strcmp(a, "--seed") == 0 && v) {
            if (!cli_parse_int(argv[++i], 0, INT64_MAX, &seed))
                rc = cli_usage_error("corpus", "--seed wants a non-negative integer, not "
                                     "'%s'", argv[i]);
        } else if (strcmp(a, "--shard-tokens") == 0 && v) {
            if (!cli_parse_int(argv[++i], 1, (int64_t)1 << 32, &shard_tokens))
                rc = cli_usage_error("corpus", "--shard-tokens wants an integer from 1 to "
                                     "2^32, not '%s'", argv[i]);
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
            run.progress = false;
        else if (a[0] == '-' && a[1] != '\0')
            rc = cli_usage_error("corpus", "unknown option or missing value '%s'", a);
        else
            files[n_files++] = a;
    }
    if (rc < 0 && !tok_path)
        rc = cli_usage_error("corpus", "name the tokenizer with --tokenizer FILE");
    else if (rc < 0 && !dir)
        rc = cli_usage_error("corpus", "name the output directory with -o DIR");
    else if (rc < 0 && n_files == 0)
        rc = cli_usage_error("corpus", "name the text files to tokenize");
    if (rc >= 0) {
        free(files);
        return rc;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "bitnet corpus: creating %s: %s\n", dir, strerror(errno));
        free(files);
        return 1;
    }
    bn_tokenizer *tok = NULL;
    bn_status st = bn_tokenizer_load_file(tok_path, &tok);
    bn_shard_writer_params wp = {.dir = dir, .max_tokens = (uint64_t)shard_tokens};
    if (st == BN_OK) {
        wp.tokenizer_checksum = bn_tokenizer_checksum(tok);
        wp.n_vocab = bn_tokenizer_n_vocab(tok);
        wp.split = "train";
        st = bn_shard_writer_create(&wp, &run.train);
    }
    if (st == BN_OK) {
        wp.split = "val";
        st = bn_shard_writer_create(&wp, &run.val);
    }
    run.tok = tok;
    run.seed = (uint64_t)seed;
    run.val_frac = val_frac;
    for (int i = 0; i < n_files && st == BN_OK; i++)
        st = cp_file(&run, files[i]);
    int32_t n_train_files = 0, n_val_files = 0;
    if (st == BN_OK && run.n_docs == 0)
        st = bn_error_set(BN_ERR_INVALID_ARG, "the input holds no text: no documents");
    if (st == BN_OK)
        st = bn_shard_writer_finish(run.train, &n_train_files);
    if (st == BN_OK)
        st = bn_shard_writer_finish(run.val, &n_val_files);
    if (run.progress)
        fprintf(stderr, "\r%-70s\r", "");
    bn_shard_writer_free(run.train);
    bn_shard_writer_free(run.val);
    free(run.ids);
    free(files);
    if (st != BN_OK) {
        bn_tokenizer_free(tok);
        return cli_fail("corpus");
    }
    printf("%s: %llu documents, %llu tokens (%.2f bytes a token); train: %llu documents, "
           "%llu tokens in %d file%s; val: %llu documents, %llu tokens in %d file%s; "
           "tokenizer checksum %016llx\n", dir, (unsigned long long)run.n_docs,
           (unsigned long long)run.n_tokens,
           run.n_tokens ? (double)run.n_bytes / (double)run.n_tokens : 0.0,
           (unsigned long long)(run.n_docs - run.n_val_docs),
           (unsigned long long)(run.n_tokens - run.n_val_tokens), (int)n_train_files,
           CLI_S(n_train_files), (unsigned long long)run.n_val_docs,
           (unsigned long long)run.n_val_tokens, (int)n_val_files, CLI_S(n_val_files),
           (unsigned long long)bn_tokenizer_checksum(tok));
    bn_tokenizer_free(tok);
    return cli_flush_stdout() ? 0 : 1;
}
