/*
 * cmd_bench.c - `bitnet bench`: prompt processing and text generation speed with the
 * definitions of llama.cpp's llama-bench, so figures compare: ppN = one batch of N
 * prompt tokens evaluated from an empty context; tgN = N tokens evaluated one at a time
 * from an empty context. With a depth D (-d), every run first fills the context with D
 * tokens (not timed), as llama-bench's -d does, and the test is named "ppN @ dD".
 * With --parallel B, B sequences run together in one context, as llama.cpp's
 * llama-batched-bench runs them: ppN is one batch of N prompt tokens of each sequence,
 * tgN is N steps that each advance every sequence by one token, and the rate is the
 * aggregate over all sequences (B * N / time).
 * Tokens are random ids (a fixed seed). Each test runs once to warm up, then -r times;
 * the mean and standard deviation of tokens/s are reported.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "run_common.h"

const char cmd_bench_help[] =
    "usage: bitnet bench [-m MODEL] [-p N] [-n N] [-d LIST] [-t LIST] [--parallel LIST]\n"
    "                    [-r N] [-o md|json|csv] [options]\n"
    "\n"
    "Measure prompt processing (ppN: one batch of N tokens) and text generation (tgN:\n"
    "N single-token steps) in tokens/s, as llama.cpp's llama-bench defines them, for\n"
    "each thread count. Prints a markdown table, a JSON array (-o json) or CSV (-o csv).\n"
    "\n"
    "options:\n"
    "  -m, --model FILE     the GGUF model\n"
    "  -p, --n-prompt N     prompt tokens (default 128; 0 skips the pp test)\n"
    "  -n, --n-gen N        generated tokens (default 64; 0 skips the tg test)\n"
    "  -d, --n-depth LIST   context depths, separated by commas (default 0): each run\n"
    "                       first evaluates that many tokens, untimed, so the test\n"
    "                       measures speed with a filled KV cache (\"tg64 @ d1024\")\n"
    "  -t, --threads LIST   thread counts, separated by commas (default: the pool's)\n"
    "  --parallel LIST      numbers of sequences run together, separated by commas\n"
    "                       (default 1): B sequences in one context, each with its own\n"
    "                       KV cache; ppN is one batch of N prompt tokens of every\n"
    "                       sequence, tgN is N steps of one token of every sequence, and\n"
    "                       t/s counts the tokens of all of them (as llama.cpp's\n"
    "                       llama-batched-bench does); the weights are read once a step\n"
    "                       for all B\n"
    "  -r, --repetitions N  measured runs per test (default 3)\n"
    "  --kv TYPE            KV cache type: f16 (default) or f32\n"
    "  --act-quant on|off   as for generate (the weights' handling is on stderr)\n"
    "  --ffn-act relu2|silu as for generate\n"
    "  --lm-head q8_0       as for generate\n"
    "  --keep-tq1           as for generate\n"
    "  --keep-tq2           as for generate\n"
    "  --mmap, --no-mmap    as for generate\n"
    "  -o, --output FORMAT  md (the table, default), json (an array of records with\n"
    "                       llama-bench's fields and ours) or csv (one header line, then\n"
    "                       a line per result with the fields of the JSON records)\n"
    "  --json               the same as -o json\n"
    "  --kernels            measure the kernels instead (no -m needed): the memory read\n"
    "                       bandwidth, each projection kernel's decode rate in GB/s of\n"
    "                       weights read (one token, weights far larger than the caches)\n"
    "                       and prefill rate in GMAC/s (128 tokens) beside the int8\n"
    "                       multiply-add peak of the same run, and the decode and\n"
    "                       prefill limits in tokens/s for the model given with -m\n"
    "                       (its projections as they are held after loading: tq2_0\n"
    "                       with one scale a row as i2_s; default: the 2B-4T shapes,\n"
    "                       i2_s projections, f16 output)\n"
    "  --mib N              weights per decode kernel run and read-bandwidth buffer, in\n"
    "                       MiB (default 512; --kernels only)\n"
    "  -h, --help           show this help\n";

typedef struct bench_result {
    char   test[48];
    int    n_prompt, n_gen, n_depth, threads, n_parallel;
    double mean, stddev;
    double samples[64];
    int    n_samples;
} bench_result;

/* s as a CSV field followed by a comma: quoted when it holds a comma, a quote or a
 * line break, with its quotes doubled (RFC 4180) */
static void csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        printf("%s,", s);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    fputs("\",", stdout);
}

static bool parse_list(const char *s, int *out, int *n, int cap, long lo, long hi)
{
    *n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < lo || v > hi || (*end && *end != ',') || *n == cap)
            return false;
        out[(*n)++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return *n > 0;
}

/* The tokens and sequences of bench batches: sequence b reads the random ids from
 * toks + b on, so that the sequences differ. */
typedef struct bench_batch {
    const bn_token *toks;
    bn_token *tok;   /* [B * max(n_prompt, n_depth, 1)] */
    int32_t  *seq;   /* the same */
} bench_batch;

/* Evaluates, for each of B sequences, n tokens from offset `at` of its ids: all in one
 * bn_decode (grouped by sequence), or one bn_decode per sequence when `each`. */
static bool bench_decode(bn_context *c, const bench_batch *bb, int B, int at, int n,
                         bool each)
{
    int k = 0;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < n; i++) {
            bb->tok[k] = bb->toks[b + at + i];
            bb->seq[k++] = b;
        }
        if (each || b == B - 1) {
            bn_batch bt = {.n = k, .tokens = bb->tok, .seq = bb->seq};
            if (bn_decode(c, &bt) != BN_OK)
                return false;
            k = 0;
        }
    }
    return true;
}

/* One test: r timed runs after a warm-up; false on an evaluation error. */
static bool bench_run(bn_context *c, const bench_batch *bb, int B, int n_depth, int n_prompt,
                      int n_gen, int reps, bench_result *res)
{
    res->n_samples = 0;
    for (int rep = -1; rep < reps; rep++) {     /* rep -1: the warm-up */
        for (int b = 0; b < bn_context_n_seq(c); b++)
            bn_context_seq_truncate(c, b, 0);
        if (n_depth > 0 && !bench_decode(c, bb, B, 0, n_depth, true))
            return false;
        double t0 = run_now();
        if (n_prompt > 0) {
            if (!bench_decode(c, bb, B, n_depth, n_prompt, false))
                return false;
        } else {
            for (int i = 0; i < n_gen; i++)
                if (!bench_decode(c, bb, B, n_depth + i, 1, false))
                    return false;
        }
        double dt = run_now() - t0;
        if (rep >= 0 && res->n_samples < 64)
            res->samples[res->n_samples++] = (double)B * (double)(n_prompt + n_gen) / dt;
    }
    double sum = 0, sq = 0;
    for (int i = 0; i < res->n_samples; i++)
        sum += res->samples[i];
    res->mean = sum / res->n_samples;
    for (int i = 0; i < res->n_samples; i++)
        sq += (res->samples[i] - res->mean) * (res->samples[i] - res->mean);
    res->stddev = res->n_samples > 1 ? sqrt(sq / (res->n_samples - 1)) : 0.0;
    return true;
}

/* Bytes of each type read per decoded token: every 2-D weight once (the embedding only
 * through a tied output layer), and the weights of each type (one multiply-add each per
 * token). From the file when there is one, else the 2B-4T shapes with i2_s projections
 * and an f16 output layer. */
#define KB_MAX_TYPES 48
typedef struct kb_model {
    double bytes[KB_MAX_TYPES];
    double weights[KB_MAX_TYPES];
    char   desc[160];
} kb_model;

static bool kb_model_bytes(const char *path, kb_model *km)
{
    memset(km, 0, sizeof *km);
    if (!path) {
        const int64_t E = 2560, F = 6912, KV = 640, V = 128256, L = 30;
        int64_t per_layer[7] = {E * E, E * KV, E * KV, E * E, E * F, E * F, F * E};
        for (int i = 0; i < 7; i++) {
            km->bytes[BN_QT_I2_S] += (double)L * (double)(per_layer[i] / 4 + 32);
            km->weights[BN_QT_I2_S] += (double)L * (double)per_layer[i];
        }
        km->bytes[BN_QT_F16] = (double)V * (double)E * 2;
        km->weights[BN_QT_F16] = (double)V * (double)E;
        snprintf(km->desc, sizeof km->desc, "2B-4T shapes, i2_s projections, f16 output");
        return true;
    }
    bn_gguf *g;
    if (bn_gguf_open(path, &g) != BN_OK)
        return false;
    bool tied = bn_gguf_find_tensor(g, "output.weight") < 0;
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_get_tensor(g, i);
        if (t->n_dims < 2 || t->type < 0 || t->type >= KB_MAX_TYPES)
            continue;
        if (!tied && !strcmp(t->name, "token_embd.weight"))
            continue;
        km->bytes[t->type] += (double)t->nbytes;
        km->weights[t->type] += (double)t->ne[0] * (double)t->ne[1] * (double)t->ne[2] *
                                (double)t->ne[3];
    }
    bn_gguf_close(g);
    /* projections held in another type at load (TQ1_0 / TQ2_0 with one scale a row in
     * I2_S's layout, other TQ1_0 as TQ2_0) are read as that type: the bytes of the
     * file's projection type counted as the held type's */
    bn_model_params mp = bn_model_default_params();
    mp.load = BN_LOAD_MMAP;
    bn_model *m = NULL;
    if (bn_model_load(path, &mp, &m) != BN_OK)
        return false;
    bn_model_info in;
    bn_model_get_info(m, &in);
    bn_model_free(m);
    const int from = in.proj_type, to = in.proj_held_type;
    if (from != to && from >= 0 && from < KB_MAX_TYPES && to >= 0 && to < KB_MAX_TYPES) {
        const double w = km->weights[from];
        size_t row = 0;
        km->weights[to] += w;
        km->bytes[to] += to == BN_QT_I2_S ? w / 4
                         : bn_qtype_tensor_size(to, 256, 1, &row) == BN_OK ? w / 256 * (double)row
                                                                            : km->bytes[from];
        km->weights[from] = km->bytes[from] = 0;
        snprintf(km->desc, sizeof km->desc, "%s (%s projections held as %s)", path,
                 bn_qtype_get(from)->name, bn_qtype_get(to)->name);
    } else {
        snprintf(km->desc, sizeof km->desc, "%s", path);
    }
    return true;
}

static int bench_kernels(const char *model, const int *threads, int n_threads, int64_t mib,
                         int reps)
{
    static const int types[] = {BN_QT_I2_S, BN_QT_TQ2_0, BN_QT_TQ1_0, BN_QT_F16,
                                BN_QT_Q8_0, BN_QT_Q6_K};
    const int n_types = (int)(sizeof types / sizeof types[0]);
    kb_model km;
    if (!kb_model_bytes(model, &km))
        return cli_fail("bench");
    double total = 0;
    for (int t = 0; t < KB_MAX_TYPES; t++)
        total += km.bytes[t];
    printf("kernels: %s; model: %s, %.1f MB read per token\n", bn_kernels_name(), km.desc,
           total / 1e6);
    printf("| threads | kernel | decode GB/s | of read bandwidth | prefill GMAC/s "
           "| of int8 peak |\n");
    printf("| ---: | --- | ---: | ---: | ---: | ---: |\n");
    cli_flush_stdout();
    for (int ti = 0; ti < n_threads; ti++) {
        if (bn_set_num_threads(threads[ti]) != BN_OK)
            return cli_fail("bench");
        double bw;
        if (bn_bench_read_bandwidth((size_t)mib << 20, 5, &bw) != BN_OK)
            return cli_fail("bench");
        printf("| %d | (memory read) | %.2f | 1.00 | | |\n", threads[ti], bw);
        /* the prefill's ceiling: the int8 multiply-adds of the kernels, from registers
         * (0 where this family has no probe) */
        double peak = 0;
        /* the amx family's ternary prefill runs on the AMX tiles, beyond the vector
         * units' peak that the probe measures */
        const bool tiles = strcmp(bn_kernels_name(), "amx") == 0;
        if (bn_bench_int8_peak(reps, &peak) == BN_OK)
            printf("| %d | (int8 multiply-add peak%s) | | | %.1f | 1.00 |\n", threads[ti],
                   tiles ? " of the vector units; the prefill uses AMX tiles" : "", peak);
        else if (bn_last_status() != BN_ERR_UNSUPPORTED)
            return cli_fail("bench");
        double gbps[KB_MAX_TYPES] = {0}, gmacs[KB_MAX_TYPES] = {0};
        for (int k = 0; k < n_types; k++) {
            const bn_qtype_info *qi = bn_qtype_get(types[k]);
            size_t row_bytes = 0;
            const int64_t cols = 2560;
            if (bn_qtype_tensor_size(types[k], cols, 1, &row_bytes) != BN_OK)
                return cli_fail("bench");
            int64_t rows = ((int64_t)mib << 20) / (int64_t)row_bytes;
            double dec_s, pre_s;
            size_t wb;
            if (bn_bench_projection(types[k], rows, cols, 1, true, reps, &dec_s, &wb) != BN_OK ||
                bn_bench_projection(types[k], 4096, cols, 128, true, reps, &pre_s, NULL) != BN_OK)
                return cli_fail("bench");
            gbps[types[k]] = (double)wb / dec_s / 1e9;
            const double gmac = gmacs[types[k]] = 4096.0 * cols * 128 / pre_s / 1e9;
            char of_peak[32] = "";
            if (peak > 0 && types[k] != BN_QT_F16)   /* f16 prefill multiplies floats */
                snprintf(of_peak, sizeof of_peak, "%.2f", gmac / peak);
            printf("| %d | %s | %.2f | %.2f | %.1f | %s |\n", threads[ti], qi->name,
                   gbps[types[k]], gbps[types[k]] / bw, gmac, of_peak);
            cli_flush_stdout();
        }
        /* the decode limit, and what the kernels alone allow: each type's bytes at its
         * own rate (types without a kernel here at the read bandwidth) */
        double t_kern = 0;
        for (int t = 0; t < KB_MAX_TYPES; t++)
            if (km.bytes[t] > 0)
                t_kern += km.bytes[t] / ((gbps[t] > 0 ? gbps[t] : bw) * 1e9);
        double limit = bw * 1e9 / total;
        printf("| %d | decode limit of the model | %.2f tok/s | kernels alone: %.2f tok/s "
               "| (%.2f of the limit) | |\n", threads[ti], limit, 1.0 / t_kern,
               1.0 / t_kern / limit);
        /* the prefill limit: the ternary projections' multiply-adds (one per weight per
         * token; the output layer runs for the last token only) at the int8 peak, and
         * what the kernels alone allow, each type's at its own prefill rate */
        double macs = 0, t_pre = 0;
        for (int k = 0; k < n_types; k++) {
            const int t = types[k];
            if (bn_qtype_get(t)->is_ternary && km.weights[t] > 0) {
                macs += km.weights[t];
                t_pre += km.weights[t] / (gmacs[t] * 1e9);
            }
        }
        if (peak > 0 && macs > 0)
            printf("| %d | prefill limit of the model | %.1f tok/s | kernels alone: %.1f "
                   "tok/s | (%.2f of the limit) | |\n", threads[ti], peak * 1e9 / macs,
                   1.0 / t_pre, 1.0 / t_pre / (peak * 1e9 / macs));
        cli_flush_stdout();
    }
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *cmd = "bench";
    run_opts o;
    run_opts_init(&o);
    int64_t n_prompt = 128, n_gen = 64, reps = 3;
    int threads[16], n_threads = 0, depths[16] = {0}, n_depths = 1;
    int parallel[16] = {1}, n_parallels = 1;
    bool parallel_given = false;
    bool json = false, csv = false, kernels = false;
    int64_t mib = 512;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        if (cli_is_help(a)) {
            return cli_help("bench");
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && v) {
            if (!parse_list(argv[++i], threads, &n_threads, 16, 1, 512))
                return cli_usage_error(cmd, "invalid thread list '%s' (e.g. 1,2)", argv[i]);
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) && v) {
            if (!cli_parse_int(argv[++i], 0, 1 << 16, &n_prompt))
                return cli_usage_error(cmd, "invalid prompt size '%s'", argv[i]);
        } else if ((!strcmp(a, "-n") || !strcmp(a, "--n-gen")) && v) {
            if (!cli_parse_int(argv[++i], 0, 1 << 16, &n_gen))
                return cli_usage_error(cmd, "invalid generation size '%s'", argv[i]);
        } else if ((!strcmp(a, "-d") || !strcmp(a, "--n-depth")) && v) {
            if (!parse_list(argv[++i], depths, &n_depths, 16, 0, 1 << 20))
                return cli_usage_error(cmd, "invalid depth list '%s' (e.g. 0,512)", argv[i]);
        } else if (!strcmp(a, "--parallel") && v) {
            if (!parse_list(argv[++i], parallel, &n_parallels, 16, 1, BN_MAX_SEQ))
                return cli_usage_error(cmd, "invalid list of sequence counts '%s' (e.g. "
                                       "1,4,8; each 1 to %d)", argv[i], BN_MAX_SEQ);
            parallel_given = true;
        } else if ((!strcmp(a, "-r") || !strcmp(a, "--repetitions")) && v) {
            if (!cli_parse_int(argv[++i], 1, 64, &reps))
                return cli_usage_error(cmd, "invalid repetition count '%s' (1 to 64)",
                                       argv[i]);
        } else if (!strcmp(a, "--json")) {
            json = true;
            csv = false;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && v) {
            const char *f = argv[++i];
            json = !strcmp(f, "json");
            csv = !strcmp(f, "csv");
            if (!json && !csv && strcmp(f, "md") != 0)
                return cli_usage_error(cmd, "invalid output format '%s' (md, json or csv)", f);
        } else if (!strcmp(a, "--kernels")) {
            kernels = true;
        } else if (!strcmp(a, "--mib") && v) {
            if (!cli_parse_int(argv[++i], 16, 1 << 16, &mib))
                return cli_usage_error(cmd, "invalid size '%s' (16 to 65536 MiB)", argv[i]);
        } else {
            int r = run_parse_opt(cmd, argc, argv, &i, &o, false);
            if (r == 1)
                continue;
            if (r != 0)
                return EXIT_USAGE;
            return cli_usage_error(cmd, a[0] == '-' ? "unknown option '%s' (or it needs a "
                                   "value)" : "unexpected argument '%s'", a);
        }
    }
    if (kernels) {
        if (json || csv)
            return cli_usage_error(cmd, "--kernels prints a table only (no -o json|csv)");
        if (n_threads == 0)
            threads[n_threads++] = bn_get_num_threads();
        return bench_kernels(o.model, threads, n_threads, mib, (int)reps);
    }
    if (!run_model_or_default(cmd, &o))
        return EXIT_USAGE;
    if (o.n_ctx || o.n_batch)
        return cli_usage_error(cmd, "-c and -b do not apply: the context holds -p or -n "
                               "tokens and the prompt is one batch");
    if (n_prompt == 0 && n_gen == 0)
        return cli_usage_error(cmd, "nothing to measure (-p 0 and -n 0)");
    if (n_threads == 0)
        threads[n_threads++] = bn_get_num_threads();

    int rc = 1;
    bn_model *m = NULL;
    bn_context *c = NULL;
    bn_token *toks = NULL;
    bench_batch bb = {0};
    json_t *arr = json ? json_array() : NULL;
    if (!run_load_model(cmd, &o, &m))
        goto done;
    bn_model_info in;
    bn_model_get_info(m, &in);
    int max_depth = 0;
    for (int di = 0; di < n_depths; di++)
        max_depth = depths[di] > max_depth ? depths[di] : max_depth;
    int max_par = 1;
    for (int pi = 0; pi < n_parallels; pi++)
        max_par = parallel[pi] > max_par ? parallel[pi] : max_par;
    int32_t n_tok = (int32_t)(n_prompt > n_gen ? n_prompt : n_gen) + max_depth;
    const int64_t per_seq = n_prompt > max_depth ? n_prompt : (max_depth > 0 ? max_depth : 1);
    toks = malloc((size_t)(n_tok + max_par) * sizeof *toks);
    bb.tok = malloc((size_t)(max_par * per_seq) * sizeof *bb.tok);
    bb.seq = malloc((size_t)(max_par * per_seq) * sizeof *bb.seq);
    bb.toks = toks;
    if (!toks || !bb.tok || !bb.seq) {
        fprintf(stderr, "bitnet %s: out of memory\n", cmd);
        goto done;
    }
    uint64_t s = 1234;
    for (int32_t i = 0; i < n_tok + max_par; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        toks[i] = (bn_token)((s >> 33) % (uint64_t)in.n_vocab);
    }
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = n_tok + 8;
    cp.n_seq = max_par;
    /* the prompts of all sequences are one batch, and so is a step of every sequence's
     * next token; the depth goes in batches of that size, or of up to 512 when that is
     * more */
    int32_t depth_batch = max_depth < 512 ? max_depth : 512;
    cp.n_batch = (int32_t)(n_prompt > 1 ? n_prompt * max_par : max_par);
    if (cp.n_batch < depth_batch)
        cp.n_batch = depth_batch;
    cp.kv_type = o.kv_type;
    if (bn_context_create(m, &cp, &c) != BN_OK) {
        cli_fail(cmd);
        goto done;
    }
    const bn_qtype_info *pq = bn_qtype_get(in.proj_type);
    const bn_qtype_info *oq = bn_qtype_get(in.output_type);
    char size[32], how[96];
    cli_bytes(in.weight_bytes, size, sizeof size);
    fprintf(stderr, "bench: %s: weights %s%s%s\n", o.model,
            run_weights_how(&in, how, sizeof how),
            in.proj_held_type != in.proj_type ? "; projections held as " : "",
            in.proj_held_type != in.proj_type ? bn_qtype_get(in.proj_held_type)->name : "");
    if (csv) {
        printf("model,model_type,model_name,model_size,model_n_params,proj_type,"
               "output_type,use_mmap,weights_huge_bytes,kernels,threads,test,n_prompt,"
               "n_gen,n_depth,n_parallel,avg_ts,stddev_ts\n");
    } else if (!json) {
        printf("| model | size | params | types | kernels | threads |%s test | t/s |\n",
               parallel_given ? " parallel |" : "");
        printf("| --- | ---: | ---: | --- | --- | ---: |%s ---: | ---: |\n",
               parallel_given ? " ---: |" : "");
    }
    for (int ti = 0; ti < n_threads; ti++) {
        if (bn_set_num_threads(threads[ti]) != BN_OK) {
            cli_fail(cmd);
            goto done;
        }
        /* per sequence count, per depth: pp, then tg */
        for (int tc = 0; tc < 2 * n_depths * n_parallels; tc++) {
            const int pi = tc / (2 * n_depths), di = tc / 2 % n_depths, kind = tc % 2;
            int np = kind == 0 ? (int)n_prompt : 0, ng = kind == 1 ? (int)n_gen : 0;
            if (np + ng == 0)
                continue;
            bench_result r;
            memset(&r, 0, sizeof r);
            int len = snprintf(r.test, sizeof r.test, "%s%d", np ? "pp" : "tg", np ? np : ng);
            if (depths[di] > 0)
                snprintf(r.test + len, sizeof r.test - (size_t)len, " @ d%d", depths[di]);
            r.n_prompt = np;
            r.n_gen = ng;
            r.n_depth = depths[di];
            r.threads = threads[ti];
            r.n_parallel = parallel[pi];
            if (!bench_run(c, &bb, r.n_parallel, r.n_depth, np, ng, (int)reps, &r)) {
                cli_fail(cmd);
                goto done;
            }
            if (json) {
                json_t *samples = json_array();
                for (int k = 0; k < r.n_samples; k++)
                    json_array_append_new(samples, json_real(r.samples[k]));
                json_array_append_new(arr, json_pack(
                    "{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:b, s:I, s:s, s:i, s:s, s:i, s:i, "
                    "s:i, s:i, s:f, s:f, s:f, s:f, s:o}",
                    "model", o.model, "model_type", in.arch, "model_name", in.name,
                    "model_size", (json_int_t)in.weight_bytes,
                    "model_n_params", (json_int_t)in.n_params,
                    "proj_type", pq ? pq->name : "?", "output_type", oq ? oq->name : "?",
                    "use_mmap", !in.weights_read,
                    "weights_huge_bytes", (json_int_t)in.weights_huge_bytes,
                    "kernels", bn_kernels_name(), "threads", r.threads, "test", r.test,
                    "n_prompt", r.n_prompt, "n_gen", r.n_gen, "n_depth", r.n_depth,
                    "n_parallel", r.n_parallel,
                    "tokens_per_second", r.mean, "stddev", r.stddev,
                    "avg_ts", r.mean, "stddev_ts", r.stddev, "samples_ts", samples));
            } else if (csv) {
                csv_field(o.model);
                csv_field(in.arch);
                csv_field(in.name);
                printf("%llu,%llu,", (unsigned long long)in.weight_bytes,
                       (unsigned long long)in.n_params);
                csv_field(pq ? pq->name : "?");
                csv_field(oq ? oq->name : "?");
                printf("%s,%llu,", in.weights_read ? "false" : "true",
                       (unsigned long long)in.weights_huge_bytes);
                csv_field(bn_kernels_name());
                printf("%d,", r.threads);
                csv_field(r.test);
                printf("%d,%d,%d,%d,%.6g,%.6g\n", r.n_prompt, r.n_gen, r.n_depth,
                       r.n_parallel, r.mean, r.stddev);
                if (!cli_flush_stdout())
                    goto done;                   /* main says why, exit 1 */
            } else {
                double np_ = (double)in.n_params;
                char par[16] = "";
                if (parallel_given)
                    snprintf(par, sizeof par, " %d |", r.n_parallel);
                printf("| %s | %s | %.2f %s | %s / %s | %s | %d |%s %s | %.2f ± %.2f |\n",
                       *in.name ? in.name : in.arch, size,
                       np_ >= 1e9 ? np_ / 1e9 : np_ / 1e6, np_ >= 1e9 ? "B" : "M",
                       pq ? pq->name : "?", oq ? oq->name : "?", bn_kernels_name(),
                       r.threads, par, r.test, r.mean, r.stddev);
                if (!cli_flush_stdout())
                    goto done;                   /* main says why, exit 1 */
            }
        }
    }
    if (json) {
        char *text = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        if (!text)
            goto done;
        puts(text);
        free(text);
    }
    rc = 0;
done:
    json_decref(arr);
    free(toks);
    free(bb.tok);
    free(bb.seq);
    bn_context_free(c);
    bn_model_free(m);
    return rc;
}
