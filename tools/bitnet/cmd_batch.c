/*
 * cmd_batch.c - `bitnet batch`: one completion for each prompt of a file, up to
 * --parallel of them generated together in one context (the library's generator: the
 * weights are read once per step for all of them). Results go to stdout as JSON lines
 * in the prompts' order; a summary with the aggregate speed goes to stderr.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "run_common.h"

const char cmd_batch_help[] =
    "usage: bitnet batch [-m MODEL] -f PROMPTS [--parallel N] [-n N] [options]\n"
    "\n"
    "Generate a completion for every prompt of PROMPTS, up to N at a time in one\n"
    "context: the prompts of new requests and one token of every running generation are\n"
    "evaluated together, so the weights are read from memory once per step for all of\n"
    "them. Each completion is exactly what `bitnet generate --no-echo` prints for that\n"
    "prompt with the same options (seed included). Writes one JSON object per prompt to\n"
    "stdout, in the prompts' order:\n"
    "  {\"index\": 0, \"prompt\": \"...\", \"completion\": \"...\", \"n_prompt\": 5,\n"
    "   \"n_generated\": 32, \"stop\": \"length\"}\n"
    "(stop: \"eos\" end-of-text token, \"stop\" a --stop text, \"length\" -n tokens,\n"
    "\"context\" a full context; a byte that is not valid UTF-8 is written as U+FFFD).\n"
    "Ctrl-C stops (exit 130) after the results finished so far.\n"
    "\n"
    "options:\n"
    "  -f, --file FILE      the prompts: one per line (blank lines are skipped), or with\n"
    "                       --jsonl one JSON object per line with a \"prompt\" string\n"
    "  --jsonl              read FILE as JSON lines (prompts with newlines)\n"
    "  --parallel N         generations at once (default 4, at most 256); each has a\n"
    "                       context of -c positions\n"
    "  -n, --n-predict N    tokens to generate per prompt (default 128; -1 = until the\n"
    "                       end of text or a full context)\n"
    "  --no-bos             do not start with BOS even if the model wants it\n"
    "  --ignore-eos         keep going after an end-of-text token\n"
    "  -h, --help           show this help\n"
    "\n";

/* One prompt and, once generated, its completion. */
typedef struct batch_item {
    char *prompt;              /* owned */
    size_t prompt_len;
    char *text;                /* the completion so far (owned) */
    size_t len, cap;
    bn_generate_result result;
    bool done;
    bool oom;                  /* the completion could not be kept: stopped there */
} batch_item;

/* Appends the generation's text to its item. */
static bool batch_collect(bn_token id, const char *text, size_t len, void *user)
{
    (void)id;
    batch_item *it = user;
    if (it->len + len + 1 > it->cap) {
        size_t cap = (it->len + len + 1) * 2;
        char *p = realloc(it->text, cap);
        if (!p) {
            it->oom = true;
            return false;
        }
        it->text = p;
        it->cap = cap;
    }
    memcpy(it->text + it->len, text, len);
    it->len += len;
    it->text[it->len] = '\0';
    return !run_interrupted;
}

static const char *batch_stop_name(bn_stop_reason why)
{
    switch (why) {
    case BN_STOP_EOG:          return "eos";
    case BN_STOP_TEXT:         return "stop";
    case BN_STOP_MAX_TOKENS:   return "length";
    case BN_STOP_CONTEXT_FULL: return "context";
    case BN_STOP_CANCELLED:    return "cancelled";
    }
    return "?";
}

/* Reads the prompts of a file: lines, or JSON lines with a "prompt" string. */
static bool batch_read(const char *cmd, const char *path, bool jsonl, batch_item **items,
                       size_t *n)
{
    size_t len = 0;
    char *text = run_read_file(cmd, path, &len);
    if (!text)
        return false;
    size_t cap = 16, count = 0, line_no = 0;
    batch_item *it = calloc(cap, sizeof *it);
    bool ok = it != NULL;
    for (char *p = text, *end = text + len; ok && p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        size_t line_len = (size_t)(stop - p);
        line_no++;
        if (line_len && p[line_len - 1] == '\r')
            line_len--;
        size_t blank = 0;
        while (blank < line_len && (p[blank] == ' ' || p[blank] == '\t'))
            blank++;
        if (blank < line_len) {
            char *prompt = NULL;
            size_t prompt_len = 0;
            if (jsonl) {
                json_error_t err;
                json_t *obj = json_loadb(p, line_len, 0, &err);
                json_t *s = obj ? json_object_get(obj, "prompt") : NULL;
                if (!json_is_string(s)) {
                    fprintf(stderr, "bitnet %s: %s:%zu: %s\n", cmd, path, line_no,
                            obj ? "no \"prompt\" string in this object" : err.text);
                    ok = false;
                } else {
                    prompt_len = json_string_length(s);
                    prompt = malloc(prompt_len + 1);
                    if (prompt)
                        memcpy(prompt, json_string_value(s), prompt_len + 1);
                }
                json_decref(obj);
            } else {
                prompt_len = line_len;
                prompt = malloc(line_len + 1);
                if (prompt) {
                    memcpy(prompt, p, line_len);
                    prompt[line_len] = '\0';
                }
            }
            if (ok && !prompt) {
                fprintf(stderr, "bitnet %s: out of memory\n", cmd);
                ok = false;
            }
            if (ok && count == cap) {
                batch_item *grown = realloc(it, 2 * cap * sizeof *it);
                if (!grown) {
                    fprintf(stderr, "bitnet %s: out of memory\n", cmd);
                    free(prompt);
                    ok = false;
                    break;
                }
                memset(grown + cap, 0, cap * sizeof *it);
                it = grown;
                cap *= 2;
            }
            if (ok)
                it[count++] = (batch_item){.prompt = prompt, .prompt_len = prompt_len};
        }
        p = stop + 1;
    }
    free(text);
    if (ok && count == 0) {
        fprintf(stderr, "bitnet %s: %s holds no prompt\n", cmd, path);
        ok = false;
    }
    *items = it;
    *n = count;
    return ok;
}

/* Length of the valid UTF-8 sequence at p (1 to 4 bytes), or 0 when the byte there
 * does not start one (overlong forms, surrogates and values past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    const unsigned char c = p[0];
    size_t n;
    unsigned min;
    unsigned v;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, min = 0x80, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, min = 0x800, v = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, min = 0x10000, v = c & 0x07;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3F);
    }
    return v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) ? 0 : n;
}

/* A JSON string of text: each byte that is not part of valid UTF-8 becomes U+FFFD. */
static json_t *json_text(const char *text, size_t len)
{
    char *buf = malloc(3 * len + 1);
    if (!buf)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq((const unsigned char *)text + i, len - i);
        if (n == 0) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, text + i, n);
            o += n;
            i += n;
        }
    }
    json_t *s = json_stringn(buf, o);
    free(buf);
    return s;
}

/* Writes item i as a JSON line; false on a write error. */
static bool batch_print(size_t i, const batch_item *it)
{
    json_t *o = json_pack("{s:I, s:o, s:o, s:i, s:i, s:s}", "index", (json_int_t)i,
                          "prompt", json_text(it->prompt, it->prompt_len),
                          "completion", json_text(it->text ? it->text : "", it->len),
                          "n_prompt", it->result.n_prompt,
                          "n_generated", it->result.n_generated,
                          "stop", batch_stop_name(it->result.stop));
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII) : NULL;
    bool ok = s && puts(s) >= 0 && cli_flush_stdout();
    free(s);
    json_decref(o);
    return ok;
}

int cmd_batch(int argc, char **argv)
{
    const char *cmd = "batch";
    run_opts o;
    run_opts_init(&o);
    const char *file = NULL;
    int64_t n_predict = 128, parallel = 4;
    bool bos = true, ignore_eos = false, jsonl = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = run_parse_opt(cmd, argc, argv, &i, &o, true);
        if (r == 1)
            continue;
        if (r != 0)
            return EXIT_USAGE;
        if (cli_is_help(a)) {
            return cli_help("batch");
        } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(a, "--parallel") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], 1, BN_MAX_SEQ, &parallel))
                return cli_usage_error(cmd, "invalid --parallel '%s' (1 to %d)", argv[i],
                                       BN_MAX_SEQ);
        } else if ((!strcmp(a, "-n") || !strcmp(a, "--n-predict")) && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], -1, INT32_MAX, &n_predict))
                return cli_usage_error(cmd, "invalid token count '%s'", argv[i]);
        } else if (!strcmp(a, "--jsonl")) {
            jsonl = true;
        } else if (!strcmp(a, "--no-bos")) {
            bos = false;
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
    if (!file)
        return cli_usage_error(cmd, "no prompts given (-f FILE)");

    batch_item *items = NULL;
    size_t n_items = 0;
    int rc = 1;
    bn_model *m = NULL;
    bn_context *c = NULL;
    bn_generator *gen = NULL;
    size_t *slot_item = NULL;
    if (!batch_read(cmd, file, jsonl, &items, &n_items))
        goto done;
    if ((int64_t)n_items < parallel)
        parallel = (int64_t)n_items;
    o.n_seq = (int32_t)parallel;
    double t_load = 0;
    if (!run_load(cmd, &o, false, &m, &c, &t_load))
        goto done;
    run_pick_seed(&o);              /* after the load: no seed line on a failure */
    if (bn_generator_create(c, &gen) != BN_OK) {
        cli_fail(cmd);
        goto done;
    }
    slot_item = malloc((size_t)parallel * sizeof *slot_item);
    if (!slot_item) {
        fprintf(stderr, "bitnet %s: out of memory\n", cmd);
        goto done;
    }
    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = (int32_t)n_predict;
    gp.sampling = o.sp;
    gp.stops = o.stops;
    gp.n_stops = o.n_stops;
    gp.ignore_eog = ignore_eos;
    gp.on_token = batch_collect;

    size_t next = 0, printed = 0;
    int64_t tokens_in = 0, tokens_out = 0;
    const double t0 = run_now();
    run_catch_sigint(true);
    while (printed < n_items && !run_interrupted) {
        /* new requests into the free sequences */
        while (next < n_items && bn_generator_n_free(gen) > 0) {
            bn_token *ids = NULL;
            size_t n_ids = 0;
            batch_item *it = &items[next];
            if (!run_tokenize(cmd, m, it->prompt, it->prompt_len, bos, &ids, &n_ids))
                goto stop;
            if (n_ids == 0) {
                fprintf(stderr, "bitnet %s: prompt %zu has no tokens\n", cmd, next);
                bn_free(ids);
                goto stop;
            }
            gp.user = it;
            int32_t seq;
            bn_status st = bn_generator_add(gen, ids, (int32_t)n_ids, &gp, &seq);
            bn_free(ids);
            if (st != BN_OK) {
                fprintf(stderr, "bitnet %s: prompt %zu: %s\n", cmd, next, bn_last_error());
                goto stop;
            }
            slot_item[seq] = next++;
        }
        if (bn_generator_step(gen, NULL) != BN_OK) {
            cli_fail(cmd);
            goto stop;
        }
        for (int32_t s = 0; s < (int32_t)parallel; s++) {
            batch_item *it;
            bn_generate_result res;
            if (!bn_generator_done(gen, s, &res))
                continue;
            it = &items[slot_item[s]];
            if (it->oom) {
                fprintf(stderr, "bitnet %s: out of memory keeping completion %zu\n", cmd,
                        slot_item[s]);
                goto stop;
            }
            it->result = res;
            it->done = true;
            tokens_in += res.n_prompt;
            tokens_out += res.n_generated;
            bn_generator_release(gen, s);
        }
        while (printed < n_items && items[printed].done) {   /* in the prompts' order */
            if (!batch_print(printed, &items[printed])) {
                fprintf(stderr, "bitnet %s: writing the results: %s\n", cmd,
                        ferror(stdout) ? "write error" : "out of memory");
                goto stop;
            }
            printed++;
        }
    }
    const double dt = run_now() - t0;
    if (run_interrupted) {
        fprintf(stderr, "bitnet %s: interrupted after %zu of %zu prompt%s\n", cmd, printed,
                n_items, CLI_S(n_items));
        rc = 130;
        goto stop;
    }
    fprintf(stderr, "batch: %zu prompt%s, %d at a time: %lld prompt and %lld generated "
            "tokens in %.2f s: %.2f tokens/s generated (%.2f with the prompts)\n", n_items,
            CLI_S(n_items),
            (int)parallel, (long long)tokens_in, (long long)tokens_out, dt,
            (double)tokens_out / dt, (double)(tokens_in + tokens_out) / dt);
    run_print_memory(m, c);
    rc = 0;
stop:
    run_catch_sigint(false);
done:
    bn_generator_free(gen);
    bn_context_free(c);
    bn_model_free(m);
    free(slot_item);
    for (size_t i = 0; i < n_items; i++) {
        free(items[i].prompt);
        free(items[i].text);
    }
    free(items);
    return rc;
}
