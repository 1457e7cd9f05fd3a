/*
 * run_common.c - options, loading and reports shared by the commands that run a model.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "run_common.h"

/* Where the model that ships with the project is looked for (CMakeLists.txt): the
 * source tree, for a program that runs from its build tree; PREFIX/share/bitnet beside
 * an installed program (found from the program's own path, so an installed tree can
 * move), then the data folder the build was configured with. */
#define BITNET_DEFAULT_MODEL_NAME "tiny-en.gguf"
#ifndef BITNET_BUILD_DIR
#define BITNET_BUILD_DIR ""
#endif
#ifndef BITNET_SOURCE_MODELS
#define BITNET_SOURCE_MODELS "models"
#endif
#ifndef BITNET_INSTALLED_MODELS
#define BITNET_INSTALLED_MODELS "/usr/local/share/bitnet"
#endif

/* The folder of the running program (from /proc/self/exe) into buf; false if unknown. */
static bool run_exe_dir(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1)
        return false;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return false;
    *slash = '\0';
    return true;
}

bool run_model_or_default(const char *cmd, run_opts *o)
{
    if (o->model)
        return true;
    const char *env = getenv("BITNET_MODEL");
    if (env && *env) {
        o->model = env;
        fprintf(stderr, "bitnet %s: the model of BITNET_MODEL, %s\n", cmd, env);
        return true;
    }
    static char found[4200];
    char exe[4096], cand[3][4200];
    int n = 0;
    size_t bl = strlen(BITNET_BUILD_DIR);
    if (run_exe_dir(exe, sizeof exe)) {
        if (bl > 0 && !strncmp(exe, BITNET_BUILD_DIR, bl) && (exe[bl] == '/' || !exe[bl]))
            snprintf(cand[n++], sizeof cand[0], "%s/%s", BITNET_SOURCE_MODELS,
                     BITNET_DEFAULT_MODEL_NAME);
        snprintf(cand[n++], sizeof cand[0], "%s/../share/bitnet/%s", exe,
                 BITNET_DEFAULT_MODEL_NAME);
    }
    snprintf(cand[n++], sizeof cand[0], "%s/%s", BITNET_INSTALLED_MODELS,
             BITNET_DEFAULT_MODEL_NAME);
    for (int k = 0; k < n; k++) {
        if (access(cand[k], R_OK) != 0)
            continue;
        if (!realpath(cand[k], found))
            memcpy(found, cand[k], sizeof found);
        o->model = found;
        fprintf(stderr, "bitnet %s: the default model, %s (-m FILE or BITNET_MODEL for "
                "another)\n", cmd, found);
        return true;
    }
    cli_usage_error(cmd, "no model given (-m FILE or BITNET_MODEL), and the model that "
                    "ships with bitnet is not installed (looked for %s)", cand[n - 1]);
    return false;
}

const char run_model_help[] =
    "model options:\n"
    "  -m, --model FILE     the GGUF model (default: $BITNET_MODEL, else the model that\n"
    "                       ships with bitnet, models/" BITNET_DEFAULT_MODEL_NAME ")\n"
    "  -c, --ctx-size N     context positions (default: the model's training context,\n"
    "                       lowered if its KV cache would not fit in half the free memory)\n"
    "  -b, --batch-size N   most tokens evaluated at once (default 512)\n"
    "  --kv TYPE            KV cache type: f16 (default) or f32\n"
    "  --act-quant on|off   8-bit activations for the projections (default: on for\n"
    "                       ternary weights and bitnet archs, off for float llama models)\n"
    "  --ffn-act relu2|silu FFN activation (default: from the architecture; see docs)\n"
    "  --lm-head q8_0       keep a float (f16/f32/bf16) output layer in q8_0, converted\n"
    "                       at load: about half the bytes per token of f16, logits within\n"
    "                       about 1e-3 (default: the file's type)\n"
    "  --keep-tq1           keep tq1_0 projections as stored; by default they are held\n"
    "                       as tq2_0, converted at load: the same codes and logits, 22%\n"
    "                       more memory for them, a decode about twice as fast\n"
    "  --keep-tq2           keep tq2_0 projections as stored; by default those with one\n"
    "                       scale a row (converted BitNet models') are held in i2_s's\n"
    "                       code layout, repacked at load: the same codes and logits, 2%\n"
    "                       less memory, rows read as fast as i2_s's\n"
    "  --mmap, --no-mmap    map the file (its pages shared with the page cache and other\n"
    "                       processes), or read it into memory, in 2 MiB pages where the\n"
    "                       kernel has transparent huge pages, which decodes faster\n"
    "                       (default: read when huge pages are on, the file is 64 MiB or\n"
    "                       more and fits in half the available memory; else map)\n"
    "  -t, --threads N      threads (default: $BITNET_THREADS, else every CPU)\n";

const char run_sampling_help[] =
    "sampling options (applied in this order; greedy when --temp is 0):\n"
    "  --repeat-penalty X   divide positive / multiply negative logits of recent tokens\n"
    "                       (default 1.0 = off)\n"
    "  --presence-penalty X subtract X from recent tokens' logits (default 0)\n"
    "  --frequency-penalty X subtract X times the count (default 0)\n"
    "  --repeat-last-n N    tokens the penalties look back (default 64, -1 = all)\n"
    "  --top-k N            keep the N most likely tokens (default 40, 0 = off)\n"
    "  --top-p X            keep the most likely tokens up to probability X (0.95)\n"
    "  --min-p X            drop tokens below X times the top probability (0.05)\n"
    "  --temp X             temperature (default 0.8; 0 = greedy)\n"
    "  -s, --seed N         random seed: the same seed gives the same text (default\n"
    "                       and -1: a random one, printed on stderr to repeat the run)\n"
    "  --stop TEXT          stop when the text produces TEXT (repeatable)\n"
    "  -r, --reverse-prompt TEXT  the same as --stop (llama.cpp's name)\n";

void run_opts_init(run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->kv_type = BN_F16;
    o->mp = bn_model_default_params();
    o->sp = bn_sampler_default_params();
}

static bool parse_float(const char *s, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = (float)v;
    return true;
}

#define RUN_USAGE (EXIT_USAGE + 100)

int run_parse_opt(const char *cmd, int argc, char **argv, int *i, run_opts *o,
                  bool sampling)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int64_t n;
#define NEED_VALUE()                                                                \
    do {                                                                            \
        if (!v) {                                                                   \
            cli_usage_error(cmd, "%s needs a value", a);                           \
            return RUN_USAGE;                                                       \
        }                                                                           \
        (*i)++;                                                                     \
    } while (0)
#define BAD_VALUE(what)                                                             \
    do {                                                                            \
        cli_usage_error(cmd, "invalid %s '%s' for %s", what, v, a);               \
        return RUN_USAGE;                                                           \
    } while (0)
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        NEED_VALUE();
        o->model = v;
    } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
        NEED_VALUE();
        if (!cli_parse_int(v, 0, 1 << 24, &n))
            BAD_VALUE("context size");
        o->n_ctx = (int32_t)n;
    } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
        NEED_VALUE();
        if (!cli_parse_int(v, 1, 1 << 16, &n))
            BAD_VALUE("batch size");
        o->n_batch = (int32_t)n;
    } else if (!strcmp(a, "--kv")) {
        NEED_VALUE();
        if (!strcmp(v, "f16"))
            o->kv_type = BN_F16;
        else if (!strcmp(v, "f32"))
            o->kv_type = BN_F32;
        else
            BAD_VALUE("KV cache type (f16 or f32)");
    } else if (!strcmp(a, "--act-quant")) {
        NEED_VALUE();
        if (!strcmp(v, "on"))
            o->mp.act_quant = BN_ACT_QUANT_ON;
        else if (!strcmp(v, "off"))
            o->mp.act_quant = BN_ACT_QUANT_OFF;
        else
            BAD_VALUE("setting (on or off)");
    } else if (!strcmp(a, "--lm-head")) {
        NEED_VALUE();
        if (!strcmp(v, "q8_0"))
            o->mp.output_type = BN_QT_Q8_0;
        else if (!strcmp(v, "keep"))
            o->mp.output_type = -1;
        else
            BAD_VALUE("output layer type (q8_0, or keep for the file's)");
    } else if (!strcmp(a, "--keep-tq1")) {
        o->mp.keep_tq1_0 = true;
    } else if (!strcmp(a, "--keep-tq2")) {
        o->mp.keep_tq2_0 = true;
    } else if (!strcmp(a, "--mmap")) {
        o->mp.load = BN_LOAD_MMAP;
    } else if (!strcmp(a, "--no-mmap")) {
        o->mp.load = BN_LOAD_READ;
    } else if (!strcmp(a, "--ffn-act")) {
        NEED_VALUE();
        if (!strcmp(v, "relu2"))
            o->mp.ffn_act = BN_FFN_ACT_RELU2;
        else if (!strcmp(v, "silu"))
            o->mp.ffn_act = BN_FFN_ACT_SILU;
        else
            BAD_VALUE("activation (relu2 or silu)");
    } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        NEED_VALUE();
        if (!cli_parse_int(v, 1, 512, &n))
            BAD_VALUE("thread count (1 to 512)");
        if (bn_set_num_threads((int)n) != BN_OK) {
            cli_fail(cmd);
            return RUN_USAGE;
        }
    } else if (!sampling) {
        return 0;
    } else if (!strcmp(a, "--temp")) {
        NEED_VALUE();
        if (!parse_float(v, 0.0, 100.0, &o->sp.temp))
            BAD_VALUE("temperature (0 to 100)");
    } else if (!strcmp(a, "--top-k")) {
        NEED_VALUE();
        if (!cli_parse_int(v, 0, INT32_MAX, &n))
            BAD_VALUE("count");
        o->sp.top_k = (int32_t)n;
    } else if (!strcmp(a, "--top-p")) {
        NEED_VALUE();
        if (!parse_float(v, 0.0, 1.0, &o->sp.top_p))
            BAD_VALUE("probability (0 to 1)");
    } else if (!strcmp(a, "--min-p")) {
        NEED_VALUE();
        if (!parse_float(v, 0.0, 1.0, &o->sp.min_p))
            BAD_VALUE("probability (0 to 1)");
    } else if (!strcmp(a, "--repeat-penalty")) {
        NEED_VALUE();
        if (!parse_float(v, 1e-3, 1e3, &o->sp.repeat_penalty))
            BAD_VALUE("penalty (positive)");
    } else if (!strcmp(a, "--presence-penalty")) {
        NEED_VALUE();
        if (!parse_float(v, -1e3, 1e3, &o->sp.presence_penalty))
            BAD_VALUE("penalty");
    } else if (!strcmp(a, "--frequency-penalty")) {
        NEED_VALUE();
        if (!parse_float(v, -1e3, 1e3, &o->sp.frequency_penalty))
            BAD_VALUE("penalty");
    } else if (!strcmp(a, "--repeat-last-n")) {
        NEED_VALUE();
        if (!cli_parse_int(v, -1, INT32_MAX, &n))
            BAD_VALUE("count (-1 or more)");
        o->sp.penalty_last_n = (int32_t)n;
    } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
        NEED_VALUE();
        char *end;
        errno = 0;
        if (!strcmp(v, "-1")) {
            o->seed_given = false;              /* llama.cpp's "random" */
        } else {
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || *v == '-')
                BAD_VALUE("seed (0 or more, or -1 for a random one)");
            o->sp.seed = s;
            o->seed_given = true;
        }
    } else if (!strcmp(a, "--stop") || !strcmp(a, "-r") || !strcmp(a, "--reverse-prompt")) {
        NEED_VALUE();
        if (!*v)
            BAD_VALUE("stop text");
        if (o->n_stops == RUN_MAX_STOPS) {
            cli_usage_error(cmd, "at most %d --stop texts", RUN_MAX_STOPS);
            return RUN_USAGE;
        }
        o->stops[o->n_stops++] = v;
    } else {
        return 0;
    }
#undef NEED_VALUE
#undef BAD_VALUE
    return 1;
}

void run_pick_seed(run_opts *o)
{
    if (o->seed_given)
        return;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec ^ (uint32_t)getpid() << 16;
    }
    o->sp.seed = r;
    o->seed_given = true;
    if (o->sp.temp > 0.0f)          /* greedy decoding draws nothing: no seed to tell */
        fprintf(stderr, "seed: %u (--seed %u repeats this run)\n", r, r);
}

double run_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t run_peak_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_maxrss * 1024;
}

const char *run_weights_how(const bn_model_info *in, char *buf, size_t size)
{
    char hb[32];
    if (!in->weights_read)
        snprintf(buf, size, "mapped");
    else if (in->weights_huge_bytes)
        snprintf(buf, size, "read into memory, %s in huge pages",
                 cli_bytes(in->weights_huge_bytes, hb, sizeof hb));
    else
        snprintf(buf, size, "read into memory, no huge pages");
    return buf;
}

/* The progress line of a model load, shown on a terminal for files of more than
 * 256 MiB (a smaller one loads in a blink), rewritten in place as the percentage
 * changes and cleared once the file is in memory. */
typedef struct run_progress {
    const char *name;   /* the file's name, without its folder */
    int percent;        /* the percentage on the line, -1 before the first */
    int width;          /* characters on the line */
} run_progress;

static bool run_progress_line(uint64_t done, uint64_t total, void *user)
{
    run_progress *p = user;
    int percent = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (done < total && percent != p->percent) {
        int w = fprintf(stderr, "\rloading %s: %3d%% (%.0f of %.0f MB)", p->name, percent,
                        (double)done / 1e6, (double)total / 1e6);
        p->width = w > p->width ? w : p->width;
    } else if (done >= total && p->width > 0) {
        fprintf(stderr, "\r%*s\r", p->width, "");
        p->width = 0;
    }
    p->percent = percent;
    fflush(stderr);
    return true;
}

bool run_load_model(const char *cmd, const run_opts *o, bn_model **m)
{
    *m = NULL;
    bn_model_params mp = o->mp;
    const char *slash = strrchr(o->model, '/');
    run_progress progress = {.name = slash ? slash + 1 : o->model, .percent = -1};
    struct stat sb;
    if (isatty(STDERR_FILENO) && stat(o->model, &sb) == 0 && sb.st_size > (256 << 20)) {
        mp.progress = run_progress_line;
        mp.progress_user = &progress;
    }
    bool loaded = bn_model_load(o->model, &mp, m) == BN_OK;
    if (progress.width > 0)   /* a load that failed half way */
        fputc('\n', stderr);
    if (!loaded) {
        cli_fail(cmd);
        return false;
    }
    return true;
}

bool run_load(const char *cmd, const run_opts *o, bool logits_all, bn_model **m,
              bn_context **c, double *load_seconds)
{
    *c = NULL;
    double t0 = run_now();
    if (!run_load_model(cmd, o, m))
        return false;
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = o->n_ctx;
    if (o->n_batch)
        cp.n_batch = o->n_batch;
    cp.kv_type = o->kv_type;
    cp.logits_all = logits_all;
    if (o->n_seq > 0)
        cp.n_seq = o->n_seq;
    if (bn_context_create(*m, &cp, c) != BN_OK) {
        cli_fail(cmd);
        bn_model_free(*m);
        *m = NULL;
        return false;
    }
    if (load_seconds)
        *load_seconds = run_now() - t0;
    bn_model_info in;
    bn_model_get_info(*m, &in);
    const bn_qtype_info *pq = bn_qtype_get(in.proj_type);
    const bn_qtype_info *oq = bn_qtype_get(in.output_type);
    char fs[32], conv[96] = "", held[32] = "";
    if (in.proj_held_type != in.proj_type)
        snprintf(held, sizeof held, " (held as %s)", bn_qtype_get(in.proj_held_type)->name);
    if (in.output_type != in.output_file_type) {
        const bn_qtype_info *fq = bn_qtype_get(in.output_file_type);
        char cb[32];
        snprintf(conv, sizeof conv, " (converted from %s at load: %s)", fq ? fq->name : "?",
                 cli_bytes(in.converted_bytes, cb, sizeof cb));
    }
    char how[96];
    run_weights_how(&in, how, sizeof how);
    bn_log(BN_LOG_INFO, "%s: %s (%s), %d layers, %d wide, %s projections%s, %s output%s, "
           "%s %s, FFN %s, activations %s, context %d, %d threads, %s kernels", o->model,
           in.arch, in.name, in.n_layer, in.n_embd, pq ? pq->name : "?", held,
           oq ? oq->name : "?",
           conv, cli_bytes(in.file_size, fs, sizeof fs), how,
           in.ffn_act == BN_FFN_ACT_RELU2 ? "relu^2" : "silu",
           in.act_quant ? "int8" : "float", bn_context_n_ctx(*c), bn_get_num_threads(),
           bn_kernels_name());
    return true;
}

bool run_tokenize(const char *cmd, const bn_model *m, const char *text, size_t len,
                  bool add_bos, bn_token **ids, size_t *n)
{
    const bn_tokenizer *tok = bn_model_tokenizer(m);
    if (!tok) {
        fprintf(stderr, "bitnet %s: the model has no tokenizer (no tokenizer.ggml.* "
                "metadata); give token ids instead\n", cmd);
        return false;
    }
    bn_tokenize_params tp = bn_tokenize_default_params();
    tp.add_bos = add_bos && bn_tokenizer_wants_bos(tok) && bn_tokenizer_bos(tok) >= 0;
    if (bn_tokenize(tok, text, len, &tp, ids, n) != BN_OK) {
        cli_fail(cmd);
        return false;
    }
    return true;
}

void run_print_memory(const bn_model *m, const bn_context *c)
{
    bn_model_info in;
    bn_model_get_info(m, &in);
    char a[32], b[32], d[32], e[32], f[32], conv[64] = "";
    if (in.converted_bytes)
        snprintf(conv, sizeof conv, ", converted at load %s",
                 cli_bytes(in.converted_bytes, f, sizeof f));
    char how[96];
    fprintf(stderr, "memory: peak RSS %s; model file %s (%s), KV cache %s, buffers %s%s\n",
            cli_bytes(run_peak_rss(), a, sizeof a), cli_bytes(in.file_size, b, sizeof b),
            run_weights_how(&in, how, sizeof how),
            cli_bytes(c ? bn_context_kv_bytes(c) : 0, d, sizeof d),
            cli_bytes(c ? bn_context_buffer_bytes(c) : 0, e, sizeof e), conv);
}

char *run_read_file(const char *cmd, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bitnet %s: cannot open %s: %s\n", cmd, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - 1 - n, f);
        n += k;
        if (k == 0)
            break;
        if (n == cap - 1) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown)
                free(buf);
            buf = grown;
        }
    }
    if (!buf || ferror(f)) {
        fprintf(stderr, "bitnet %s: cannot read %s: %s\n", cmd, path,
                buf ? strerror(errno) : "out of memory");
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}
