/*
 * cmd_generate.c - `bitnet generate`: continue a prompt, streaming the text as tokens
 * arrive, then report speed and memory on stderr.
 */
#include <stdlib.h>
#include <string.h>

#include "run_common.h"

const char cmd_generate_help[] =
    "usage: bitnet generate [-m MODEL] (-p TEXT | -f FILE) [options]\n"
    "\n"
    "Continue TEXT with the model and print the prompt and the continuation as it is\n"
    "produced. Stops after N tokens, at the model's end-of-text token, at a --stop text,\n"
    "when the context is full, or on Ctrl-C (exit 130). Prompt and generation speed\n"
    "(tokens/s) and memory are printed to stderr at the end.\n"
    "\n"
    "options:\n"
    "  -p, --prompt TEXT    the prompt (special tokens such as <|eot_id|> are parsed)\n"
    "  -f, --file FILE      read the prompt from FILE\n"
    "  -n, --n-predict N    tokens to generate (default 128; -1 = until the end of text or\n"
    "                       a full context)\n"
    "  --no-bos             do not start with BOS even if the model wants it\n"
    "  --no-echo            print only the continuation, not the prompt\n"
    "  --ignore-eos         keep going after an end-of-text token\n"
    "  -h, --help           show this help\n"
    "\n";

/* The text of each token, to stdout as it comes; Ctrl-C, or output that cannot be
 * written, stops after it. */
static bool print_piece(bn_token id, const char *text, size_t len, void *user)
{
    (void)id;
    (void)user;
    if (fwrite(text, 1, len, stdout) != len || !cli_flush_stdout())
        return false;
    return !run_interrupted;
}

/* Why generation stopped, for "stopped at ...". */
static const char *stop_words(bn_stop_reason why)
{
    switch (why) {
    case BN_STOP_EOG:          return "the end-of-text token";
    case BN_STOP_TEXT:         return "a stop text";
    case BN_STOP_MAX_TOKENS:   return "the token limit";
    case BN_STOP_CONTEXT_FULL: return "a full context";
    case BN_STOP_CANCELLED:    return "Ctrl-C";
    }
    return "?";
}

int cmd_generate(int argc, char **argv)
{
    const char *cmd = "generate";
    run_opts o;
    run_opts_init(&o);
    const char *prompt = NULL, *file = NULL;
    int64_t n_predict = 128;
    bool bos = true, echo = true, ignore_eos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = run_parse_opt(cmd, argc, argv, &i, &o, true);
        if (r == 1)
            continue;
        if (r != 0)
            return EXIT_USAGE;
        if (cli_is_help(a)) {
            return cli_help("generate");
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && i + 1 < argc) {
            prompt = argv[++i];
        } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && i + 1 < argc) {
            file = argv[++i];
        } else if ((!strcmp(a, "-n") || !strcmp(a, "--n-predict")) && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], -1, INT32_MAX, &n_predict))
                return cli_usage_error(cmd, "invalid token count '%s'", argv[i]);
        } else if (!strcmp(a, "--no-bos")) {
            bos = false;
        } else if (!strcmp(a, "--no-echo")) {
            echo = false;
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = true;
        } else if (a[0] == '-') {
            return cli_usage_error(cmd, "unknown option '%s' (or it needs a value)", a);
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
    }
    if (!run_model_or_default(cmd, &o))
        return EXIT_USAGE;
    if (!prompt && !file)
        return cli_usage_error(cmd, "no prompt given (-p TEXT or -f FILE)");
    if (prompt && file)
        return cli_usage_error(cmd, "give -p or -f, not both");

    char *text = NULL;
    size_t text_len = 0;
    if (file) {
        if (!(text = run_read_file(cmd, file, &text_len)))
            return 1;
    } else {
        text_len = strlen(prompt);
    }
    const char *ptext = file ? text : prompt;
    if (text_len == 0) {
        fprintf(stderr, "bitnet %s: the prompt is empty\n", cmd);
        free(text);
        return 1;
    }

    int rc = 1;
    bn_model *m = NULL;
    bn_context *c = NULL;
    bn_token *ids = NULL;
    size_t n_ids = 0;
    double load_s = 0;
    if (!run_load(cmd, &o, false, &m, &c, &load_s))
        goto done;
    run_pick_seed(&o);              /* after the load: no seed line on a failure */
    if (!run_tokenize(cmd, m, ptext, text_len, bos, &ids, &n_ids))
        goto done;
    if (n_ids == 0) {
        fprintf(stderr, "bitnet %s: the prompt has no tokens\n", cmd);
        goto done;
    }
    int32_t n_ctx = bn_context_n_ctx(c);
    if ((int64_t)n_ids >= n_ctx) {
        fprintf(stderr, "bitnet %s: the prompt is %zu tokens but the context holds %d "
                "positions (leaving none to generate); use a larger -c or a shorter "
                "prompt\n", cmd, n_ids, n_ctx);
        goto done;
    }
    if (echo && (fwrite(ptext, 1, text_len, stdout) != text_len || !cli_flush_stdout()))
        goto done;                   /* main says why, exit 1 */
    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = (int32_t)n_predict;
    gp.sampling = o.sp;
    gp.stops = o.stops;
    gp.n_stops = o.n_stops;
    gp.ignore_eog = ignore_eos;
    gp.on_token = print_piece;
    bn_generate_result res;
    run_catch_sigint(true);
    bn_status st = bn_generate(c, ids, (int32_t)n_ids, &gp, &res);
    run_catch_sigint(false);
    fputc('\n', stdout);
    cli_flush_stdout();
    if (st != BN_OK) {
        cli_fail(cmd);
        goto done;
    }
    if (ferror(stdout))
        goto done;                   /* the text was lost: main says why, exit 1 */
    fprintf(stderr, "\nstopped at %s\n", stop_words(res.stop));
    fprintf(stderr, "load: %.2f s\n", load_s);
    fprintf(stderr, "prompt: %zu token%s in %.2f s (%.2f tokens/s)\n", n_ids, CLI_S(n_ids),
            res.prompt_seconds,
            res.prompt_seconds > 0 ? (double)n_ids / res.prompt_seconds : 0.0);
    fprintf(stderr, "generation: %d token%s in %.2f s (%.2f tokens/s)\n", res.n_generated,
            CLI_S(res.n_generated),
            res.generate_seconds, res.generate_seconds > 0
            ? (double)res.n_generated / res.generate_seconds : 0.0);
    run_print_memory(m, c);
    rc = res.stop == BN_STOP_CANCELLED ? 130 : 0;   /* Ctrl-C: as a shell reports it */
done:
    bn_free(ids);
    bn_context_free(c);
    bn_model_free(m);
    free(text);
    return rc;
}
