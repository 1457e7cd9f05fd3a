/*
 * cmd_perplexity.c - `bitnet perplexity`: perplexity of a text over non-overlapping
 * windows, computed and reported the way llama.cpp's perplexity tool does: the text
 * is tokenized with BOS, cut into windows of n_ctx tokens (the first token of each
 * window replaced by BOS when the model uses one), each window evaluated from an empty
 * cache, and only the second half of each window scored (every scored token sees at
 * least n_ctx/2 tokens of context). PPL = exp(mean NLL); its standard error comes from
 * the variance of the NLLs: sqrt(var / (N - 1)) * PPL.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "run_common.h"

const char cmd_perplexity_help[] =
    "usage: bitnet perplexity [-m MODEL] -f FILE [-c CTX] [--chunks N] [options]\n"
    "\n"
    "Perplexity of the model on the text of FILE, over non-overlapping windows of CTX\n"
    "tokens (default 512), scoring the second half of each window, as llama.cpp's\n"
    "perplexity tool does (so figures compare). Prints the running estimate after each\n"
    "window and the final estimate with its standard error. The text needs at least\n"
    "2 x CTX tokens. Ctrl-C stops after the window being evaluated, without a final\n"
    "estimate (exit 130).\n"
    "\n"
    "options:\n"
    "  -f, --file FILE      the text\n"
    "  --chunks N           use at most N windows (default: all)\n"
    "  -h, --help           show this help\n"
    "\n";

int cmd_perplexity(int argc, char **argv)
{
    const char *cmd = "perplexity";
    run_opts o;
    run_opts_init(&o);
    o.n_ctx = 512;
    const char *file = NULL;
    int64_t max_chunks = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = run_parse_opt(cmd, argc, argv, &i, &o, false);
        if (r == 1)
            continue;
        if (r != 0)
            return EXIT_USAGE;
        if (cli_is_help(a)) {
            return cli_help("perplexity");
        } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(a, "--chunks") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], 1, INT32_MAX, &max_chunks))
                return cli_usage_error(cmd, "invalid window count '%s'", argv[i]);
        } else if (a[0] == '-') {
            return cli_usage_error(cmd, "unknown option '%s' (or it needs a value)", a);
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
    }
    if (!run_model_or_default(cmd, &o))
        return EXIT_USAGE;
    if (!file)
        return cli_usage_error(cmd, "no text given (-f FILE)");
    if (o.n_ctx < 8)
        return cli_usage_error(cmd, "the window (-c) must be at least 8 tokens");
    if (o.n_batch)
        return cli_usage_error(cmd, "-b does not apply: each window is one batch");
    o.n_batch = o.n_ctx;

    size_t len = 0;
    char *text = run_read_file(cmd, file, &len);
    if (!text)
        return 1;
    int rc = 1;
    bn_model *m = NULL;
    bn_context *c = NULL;
    bn_token *ids = NULL;
    size_t n = 0;
    if (!run_load(cmd, &o, true, &m, &c, NULL))
        goto done;
    if (!run_tokenize(cmd, m, text, len, true, &ids, &n))
        goto done;
    const int32_t n_ctx = bn_context_n_ctx(c);
    if (n < 2 * (size_t)n_ctx) {
        fprintf(stderr, "bitnet %s: %s is %zu tokens; a window of %d needs at least %d "
                "(use a smaller -c or a longer text)\n", cmd, file, n, n_ctx, 2 * n_ctx);
        goto done;
    }
    const bn_tokenizer *tok = bn_model_tokenizer(m);
    bn_token bos = bn_tokenizer_bos(tok);
    bool use_bos = bn_tokenizer_wants_bos(tok) && bos >= 0;
    int64_t n_chunks = (int64_t)(n / (size_t)n_ctx);
    if (max_chunks > 0 && max_chunks < n_chunks)
        n_chunks = max_chunks;
    const int32_t first = n_ctx / 2;
    const int32_t V = bn_model_n_vocab(m);
    fprintf(stderr, "perplexity: %zu token%s, %lld window%s of %d, scoring %d each\n",
            n, n == 1 ? "" : "s", (long long)n_chunks, n_chunks == 1 ? "" : "s", n_ctx,
            n_ctx - 1 - first);
    double nll = 0.0, nll2 = 0.0, t0 = run_now();
    int64_t count = 0;
    run_catch_sigint(true);
    int64_t ch = 0;
    for (; ch < n_chunks && !run_interrupted; ch++) {
        bn_token *w = ids + ch * n_ctx;
        bn_token saved = w[0];
        if (use_bos)
            w[0] = bos;
        bn_context_truncate(c, 0);
        bn_status st = bn_eval(c, w, n_ctx);
        w[0] = saved;
        if (st != BN_OK) {
            cli_fail(cmd);
            goto done;
        }
        for (int32_t j = first; j < n_ctx - 1; j++) {
            const float *l = bn_get_logits(c, j);
            float mx = l[0];
            for (int32_t v = 1; v < V; v++)
                mx = l[v] > mx ? l[v] : mx;
            double sum = 0.0;
            for (int32_t v = 0; v < V; v++)
                sum += exp((double)(l[v] - mx));
            double x = log(sum) - (double)(l[w[j + 1]] - mx);
            nll += x;
            nll2 += x * x;
            count++;
        }
        if (ch == 0) {
            double per = run_now() - t0;
            fprintf(stderr, "%.2f s per window, about %.1f minutes in all\n", per,
                    per * (double)n_chunks / 60.0);
        }
        printf("[%lld]%.4f,", (long long)ch + 1, exp(nll / (double)count));
        if (!cli_flush_stdout())
            goto done;                   /* main says why, exit 1 */
    }
    run_catch_sigint(false);
    printf("\n");
    double secs = run_now() - t0;
    if (ch < n_chunks) {
        /* a partial run's figure is not the text's perplexity: no "Final estimate" */
        fprintf(stderr, "interrupted after %lld of %lld window%s\n", (long long)ch,
                (long long)n_chunks, n_chunks == 1 ? "" : "s");
        rc = 130;
        goto done;
    }
    double mean = nll / (double)count;
    double var = nll2 / (double)count - mean * mean;
    double ppl = exp(mean);
    if (var > 0.0 && count > 1)
        printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl,
               sqrt(var / (double)(count - 1)) * ppl);
    else
        printf("Final estimate: PPL = %.4f\n", ppl);
    fprintf(stderr, "%lld token%s evaluated in %.2f s (%.2f tokens/s)\n",
            (long long)(ch * n_ctx), CLI_S(ch * n_ctx), secs, secs > 0 ? (double)(ch * n_ctx) / secs : 0.0);
    run_print_memory(m, c);
    rc = 0;
done:
    bn_free(ids);
    bn_context_free(c);
    bn_model_free(m);
    free(text);
    return rc;
}
