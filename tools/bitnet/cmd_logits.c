/*
 * cmd_logits.c - `bitnet logits`: the raw logits of a prompt, for conformance checks
 * against other engines and references.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "run_common.h"

const char cmd_logits_help[] =
    "usage: bitnet logits [-m MODEL] (-p TEXT | --tokens 1,2,3) [--all] -o FILE [options]\n"
    "\n"
    "Evaluate the prompt in one batch and write the logits of its last position (of\n"
    "every position with --all) to FILE as raw little-endian float32, n_vocab values per\n"
    "position, positions in order. The file is written whole or not at all. The argmax\n"
    "of the last position is printed on stdout.\n"
    "\n"
    "options:\n"
    "  -p, --prompt TEXT    the prompt, tokenized with the model's tokenizer\n"
    "  --tokens LIST        token ids, separated by commas\n"
    "  --no-bos             with -p: do not start with BOS\n"
    "  --all                logits of every position\n"
    "  --greedy N           also print N greedy continuation ids (one token at a time)\n"
    "  -o, --output FILE    where to write the logits\n"
    "                       ('-': standard output; the printed ids then go to stderr)\n"
    "  -h, --help           show this help\n"
    "\n";

/* Parses "1,2,3" into a new array; false on anything that is not a list of ids. */
static bool parse_ids(const char *s, bn_token **out, size_t *n)
{
    size_t cap = 16, k = 0;
    bn_token *ids = malloc(cap * sizeof *ids);
    const char *p = s;
    while (ids && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            free(ids);
            return false;
        }
        if (k == cap) {
            bn_token *g = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!g)
                free(ids);
            ids = g;
            if (!ids)
                return false;
        }
        ids[k++] = (bn_token)v;
        p = *end ? end + 1 : end;
    }
    if (!ids || k == 0) {
        free(ids);
        return false;
    }
    *out = ids;
    *n = k;
    return true;
}

/* Writes the rows to standard output, checking every write and the flush. */
static bool write_floats_stdout(const char *cmd, const float *const *rows, size_t n_rows,
                                size_t row_len)
{
    bool ok = true;
    for (size_t r = 0; ok && r < n_rows; r++)
        ok = fwrite(rows[r], sizeof(float), row_len, stdout) == row_len;
    if (fflush(stdout) != 0 || !ok) {
        fprintf(stderr, "bitnet %s: cannot write the logits to standard output: %s\n", cmd,
                strerror(errno));
        return false;
    }
    return true;
}

/* Writes the rows to path ("-": standard output), whole or not at all (bn_out_file). */
static bool write_floats(const char *cmd, const char *path, const float *const *rows,
                         size_t n_rows, size_t row_len)
{
    if (strcmp(path, "-") == 0)
        return write_floats_stdout(cmd, rows, n_rows, row_len);
    bn_out_file *f = NULL;
    bn_status st = bn_out_file_open(path, &f);
    for (size_t r = 0; st == BN_OK && r < n_rows; r++)
        st = bn_out_file_write(f, rows[r], row_len * sizeof(float));
    if (st == BN_OK)
        st = bn_out_file_commit(f);
    else
        bn_out_file_discard(f);
    if (st != BN_OK)
        cli_fail(cmd);
    return st == BN_OK;
}

int cmd_logits(int argc, char **argv)
{
    const char *cmd = "logits";
    run_opts o;
    run_opts_init(&o);
    const char *prompt = NULL, *tokens = NULL, *output = NULL;
    bool all = false, bos = true;
    int64_t greedy = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = run_parse_opt(cmd, argc, argv, &i, &o, false);
        if (r == 1)
            continue;
        if (r != 0)
            return EXIT_USAGE;
        if (cli_is_help(a)) {
            return cli_help("logits");
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && i + 1 < argc) {
            prompt = argv[++i];
        } else if (!strcmp(a, "--tokens") && i + 1 < argc) {
            tokens = argv[++i];
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) {
            output = argv[++i];
        } else if (!strcmp(a, "--greedy") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], 0, 1 << 20, &greedy))
                return cli_usage_error(cmd, "invalid count '%s'", argv[i]);
        } else if (!strcmp(a, "--all")) {
            all = true;
        } else if (!strcmp(a, "--no-bos")) {
            bos = false;
        } else if (a[0] == '-') {
            return cli_usage_error(cmd, "unknown option '%s' (or it needs a value)", a);
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
    }
    if (!run_model_or_default(cmd, &o))
        return EXIT_USAGE;
    if (!prompt == !tokens)
        return cli_usage_error(cmd, "give either -p TEXT or --tokens LIST");
    if (!output)
        return cli_usage_error(cmd, "no output file given (-o FILE)");
    if (prompt && !*prompt) {
        fprintf(stderr, "bitnet %s: the prompt is empty\n", cmd);
        return 1;
    }
    bn_token *ids = NULL;
    size_t n = 0;
    if (tokens && !parse_ids(tokens, &ids, &n))
        return cli_usage_error(cmd, "invalid token list '%s' (ids separated by commas)",
                               tokens);

    int rc = 1;
    bn_model *m = NULL;
    bn_context *c = NULL;
    bn_token *tids = NULL;
    const float **rows = NULL;
    if (!run_load(cmd, &o, all, &m, &c, NULL))
        goto done;
    if (prompt) {
        size_t tn = 0;
        if (!run_tokenize(cmd, m, prompt, strlen(prompt), bos, &tids, &tn))
            goto done;
        ids = malloc((tn ? tn : 1) * sizeof *ids);
        if (!ids)
            goto done;
        memcpy(ids, tids, tn * sizeof *ids);
        n = tn;
    }
    if (n == 0) {
        fprintf(stderr, "bitnet %s: the prompt has no tokens\n", cmd);
        goto done;
    }
    if (all && (int64_t)n > bn_context_n_batch(c)) {
        fprintf(stderr, "bitnet %s: --all needs the %zu tokens in one batch; use -b %zu "
                "(and -c at least that)\n", cmd, n, n);
        goto done;
    }
    if (bn_eval(c, ids, (int32_t)n) != BN_OK) {
        cli_fail(cmd);
        goto done;
    }
    size_t n_rows = all ? n : 1;
    rows = malloc(n_rows * sizeof *rows);
    if (!rows)
        goto done;
    for (size_t r = 0; r < n_rows; r++)
        rows[r] = bn_get_logits(c, all ? (int32_t)r : -1);
    int32_t V = bn_model_n_vocab(m);
    const float *last = rows[n_rows - 1];
    int32_t best = 0;
    for (int32_t v = 1; v < V; v++)
        if (last[v] > last[best])
            best = v;
    if (!write_floats(cmd, output, rows, n_rows, (size_t)V))
        goto done;
    /* with the logits on standard output, the ids go to stderr */
    FILE *text = strcmp(output, "-") == 0 ? stderr : stdout;
    fprintf(text, "argmax_last %d\n", best);
    if (greedy > 0) {
        fprintf(text, "greedy");
        bn_token t = best;
        for (int64_t g = 0; g < greedy; g++) {
            fprintf(text, "%s%d", g ? "," : " ", t);
            if (g + 1 == greedy)
                break;
            if (bn_eval(c, &t, 1) != BN_OK) {
                fprintf(text, "\n");
                cli_fail(cmd);
                goto done;
            }
            const float *l = bn_get_logits(c, -1);
            t = 0;
            for (int32_t v = 1; v < V; v++)
                if (l[v] > l[t])
                    t = v;
        }
        fprintf(text, "\n");
    }
    fprintf(stderr, "wrote %zu x %d logits to %s\n", n_rows, V,
            text == stderr ? "standard output" : output);
    rc = 0;
done:
    free(rows);
    bn_free(tids);
    free(ids);
    bn_context_free(c);
    bn_model_free(m);
    return rc;
}
