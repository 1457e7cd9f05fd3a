/*
 * cmd_quantize.c - `bitnet quantize IN.gguf OUT.gguf --type TYPE`: convert a model's
 * projection weights to a ternary type (or any type the user names per tensor),
 * keeping every other tensor and all metadata as they are.
 *
 * Each converted tensor goes: source type -> f32 -> (ternary types: BitNet b1.58
 * absmean ternarization, or the tensor's own scale when it is ternary already) ->
 * the target format's reference quantizer. Tensors are converted in parallel on the
 * library's thread pool, one tensor per task, so the output does not depend on the
 * thread count. The output is written through an unnamed file (bn_out_file) that
 * appears at OUT only on success; general.file_type is set to the type written.
 */
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

const char cmd_quantize_help[] =
    "usage: bitnet quantize IN.gguf OUT.gguf --type TYPE [options]\n"
    "\n"
    "Convert the projection weights of a GGUF model (2-D tensors named blk.*.weight,\n"
    "norms excluded) to TYPE; every other tensor (embeddings, output, norms) and all\n"
    "metadata are copied unchanged unless --tensor-type says otherwise. OUT is written\n"
    "to a temporary file first and appears only when everything succeeded.\n"
    "\n"
    "Ternary types (i2_s, tq2_0, tq1_0) use the BitNet b1.58 rule: one absmean scale\n"
    "per tensor, weights rounded to {-1, 0, +1}. A tensor that is ternary already\n"
    "(every non-zero weight of one magnitude) keeps its own scale.\n"
    "\n"
    "options:\n"
    "  --type TYPE              i2_s, tq2_0 or tq1_0 (or f32, f16, bf16, q8_0, q4_0, q6_k)\n"
    "  --tensor-type PAT=TYPE   the type for tensors whose name matches the glob PAT\n"
    "                           (e.g. 'token_embd.weight=q6_k', 'blk.*.ffn_down.weight=f16');\n"
    "                           TYPE 'keep' leaves them as they are; the last match wins\n"
    "  --per-channel            ternary scales per output row instead of per tensor\n"
    "                           (tq2_0 and tq1_0 only; i2_s has one scale per tensor)\n"
    "  --stats                  print the quantization error of each converted tensor\n"
    "                           (MSE, SQNR in dB, zero fraction, scale) and overall\n"
    "  -t, --threads N          threads (default: all CPUs)\n"
    "  -q, --quiet              no progress bar\n"
    "  -h, --help               show this help\n";

#define QZ_KEEP (-1)

typedef struct qz_rule {
    const char *pattern;
    int         type;      /* bn_qtype or QZ_KEEP */
} qz_rule;

typedef struct qz_job {
    const bn_gguf_tensor *src;
    int                   target;      /* QZ_KEEP when copied as is */
    void                 *out;         /* converted bytes (bn_malloc) */
    size_t                out_bytes;
    bool                  was_ternary; /* kept its own scale */
    float                 scale;       /* first ternary scale (for --stats) */
    bn_quant_error        err;
    bn_status             status;
    char                  message[512];
} qz_job;

typedef struct qz_run {
    qz_job          *jobs;
    int64_t          n_jobs;
    bool             per_channel;
    bool             stats;
    bool             progress;
    uint64_t         total_bytes;     /* source bytes of converted tensors */
    _Atomic uint64_t done_bytes;
    pthread_mutex_t  print_lock;
    time_t           started;
    double           convert_seconds; /* wall time of the conversion, not the writing */
} qz_run;

/* Monotonic seconds. */
static double qz_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Whether a tensor is one of the projection weights converted by default. */
static bool qz_is_projection(const bn_gguf_tensor *t)
{
    size_t n = strlen(t->name);
    return t->n_dims == 2 && strncmp(t->name, "blk.", 4) == 0 && n > 7 &&
           strcmp(t->name + n - 7, ".weight") == 0 && !strstr(t->name, "norm");
}

/* The target type of a tensor: the default policy, then the rules in order. */
static int qz_target(const bn_gguf_tensor *t, int def, const qz_rule *rules, int n_rules)
{
    int target = qz_is_projection(t) ? def : QZ_KEEP;
    for (int i = 0; i < n_rules; i++)
        if (fnmatch(rules[i].pattern, t->name, 0) == 0)
            target = rules[i].type;
    return target == t->type ? QZ_KEEP : target;
}

/* Draws "[#####.....]  45%  name" on stderr (a terminal). */
static void qz_progress(qz_run *run, const char *name)
{
    if (!run->progress || run->total_bytes == 0)
        return;
    pthread_mutex_lock(&run->print_lock);
    double frac = (double)atomic_load(&run->done_bytes) / (double)run->total_bytes;
    int filled = (int)(frac * 30.0);
    fprintf(stderr, "\r[");
    for (int i = 0; i < 30; i++)
        fputc(i < filled ? '#' : '.', stderr);
    fprintf(stderr, "] %3d%%  %-40.40s", (int)(frac * 100.0), name);
    fflush(stderr);
    pthread_mutex_unlock(&run->print_lock);
}

/* Replaces w (n_rows x row_len) with its ternary version: q * scale. */
static bn_status qz_ternarize(qz_job *job, bool per_channel, float *w, int64_t row_len,
                              int64_t n_rows)
{
    int64_t n = row_len * n_rows;
    float scale;
    if (!per_channel && bn_ternary_detect(w, n, &scale)) {
        job->was_ternary = true;
        job->scale = scale;
        return BN_OK; /* already sign * scale: keep it exactly */
    }
    bn_ternary_params p = bn_ternary_default_params();
    if (per_channel)
        p.granularity = BN_TERNARY_PER_CHANNEL;
    int64_t ns = bn_ternary_n_scales(&p, row_len, n_rows);
    int8_t *q = malloc((size_t)n);
    float *scales = malloc((size_t)ns * sizeof *scales);
    bn_status st = q && scales ? bn_ternarize(w, row_len, n_rows, &p, q, scales)
                               : bn_error_set(BN_ERR_OOM, "out of memory");
    if (st == BN_OK) {
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)q[i] * scales[per_channel ? i / row_len : 0];
        job->scale = scales[0];
    }
    free(q);
    free(scales);
    return st;
}

/* Converts one tensor; the outcome goes into the job. `w` is scratch room for the
 * tensor as f32, reused from tensor to tensor (fresh pages cost more than the work). */
static bn_status qz_convert(qz_run *run, qz_job *job, float *w)
{
    const bn_gguf_tensor *t = job->src;
    int64_t row_len = t->ne[0], n_rows = t->ne[1] * t->ne[2] * t->ne[3];
    int64_t n = row_len * n_rows;
    const bn_qtype_info *ti = bn_qtype_get(job->target);
    if (!bn_qtype_get(t->type)->can_read)
        return bn_error_set(BN_ERR_UNSUPPORTED, "its type %s cannot be converted",
                            bn_qtype_get(t->type)->name);
    bn_status st = bn_qtype_tensor_size(job->target, row_len, n_rows, &job->out_bytes);
    if (st != BN_OK)
        return st;
    float *orig = run->stats ? malloc((size_t)n * sizeof *orig) : NULL;
    job->out = bn_malloc(job->out_bytes, "quantize");
    if ((run->stats && !orig) || !job->out) {
        free(orig);
        return bn_error_set(BN_ERR_OOM, "out of memory for %lld elements", (long long)n);
    }
    st = bn_dequantize(t->type, t->data, t->nbytes, row_len, n_rows, w);
    for (int64_t i = 0; st == BN_OK && i < n; i++)
        if (!isfinite(w[i]))
            st = bn_error_set(BN_ERR_NUMERIC, "%s at index %lld (row %lld, column %lld)",
                              isnan(w[i]) ? "NaN" : "infinity", (long long)i,
                              (long long)(i / row_len), (long long)(i % row_len));
    if (st == BN_OK && orig)
        memcpy(orig, w, (size_t)n * sizeof *w);
    if (st == BN_OK && ti->is_ternary)
        st = qz_ternarize(job, run->per_channel, w, row_len, n_rows);
    if (st == BN_OK)
        st = bn_quantize(job->target, w, row_len, n_rows, job->out, job->out_bytes);
    if (st == BN_OK && orig) {
        /* the error is measured on what a reader of OUT gets back */
        st = bn_dequantize(job->target, job->out, job->out_bytes, row_len, n_rows, w);
        if (st == BN_OK)
            bn_quant_error_measure(orig, w, n, &job->err);
    }
    free(orig);
    return st;
}

/* Thread-pool task body: converts jobs [begin, end). */
static void qz_task(void *ctx, int64_t begin, int64_t end)
{
    qz_run *run = ctx;
    int64_t most = 0;
    for (int64_t i = begin; i < end; i++) {
        const bn_gguf_tensor *t = run->jobs[i].src;
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        most = run->jobs[i].target != QZ_KEEP && n > most ? n : most;
    }
    float *w = most ? malloc((size_t)most * sizeof *w) : NULL;
    for (int64_t i = begin; i < end; i++) {
        qz_job *job = &run->jobs[i];
        if (job->target == QZ_KEEP)
            continue;
        job->status = w ? qz_convert(run, job, w)
                        : bn_error_set(BN_ERR_OOM, "out of memory for %lld elements",
                                       (long long)most);
        if (job->status != BN_OK)
            snprintf(job->message, sizeof job->message, "%s", bn_last_error());
        atomic_fetch_add(&run->done_bytes, job->src->nbytes);
        qz_progress(run, job->src->name);
    }
    free(w);
}

static void qz_print_stats(const qz_run *run)
{
    double noise = 0, signal_db_weight = 0;
    int64_t total = 0, zeros = 0;
    printf("%-36s %-6s %12s %9s %7s %12s\n", "tensor", "type", "mse", "sqnr_db", "zeros",
           "scale");
    for (int64_t i = 0; i < run->n_jobs; i++) {
        const qz_job *j = &run->jobs[i];
        if (j->target == QZ_KEEP)
            continue;
        printf("%-36s %-6s %12.4e %9.2f %6.1f%% %12.6g%s\n", j->src->name,
               bn_qtype_get(j->target)->name, j->err.mse, j->err.sqnr_db,
               100.0 * j->err.zero_fraction, (double)j->scale,
               j->was_ternary ? "  (ternary already)" : "");
        noise += j->err.mse * (double)j->err.n;
        total += j->err.n;
        zeros += (int64_t)llround(j->err.zero_fraction * (double)j->err.n);
        signal_db_weight += (double)j->err.n * j->err.sqnr_db;
    }
    if (total > 0)
        printf("%-36s %-6s %12.4e %9.2f %6.1f%%\n", "overall", "", noise / (double)total,
               signal_db_weight / (double)total, 100.0 * (double)zeros / (double)total);
}

/* Parses PAT=TYPE into a rule. */
static bool qz_parse_rule(char *arg, qz_rule *rule)
{
    char *eq = strrchr(arg, '=');
    if (!eq || eq == arg || !eq[1])
        return false;
    *eq = '\0';
    rule->pattern = arg;
    if (strcmp(eq + 1, "keep") == 0) {
        rule->type = QZ_KEEP;
        return true;
    }
    bn_qtype t = BN_QT_F32;
    if (!bn_qtype_from_name(eq + 1, &t) || !bn_qtype_get(t)->can_write)
        return false;
    rule->type = (int)t;
    return true;
}

/* Same file (device and inode)? */
static bool qz_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static bool qz_write_progress(uint64_t done, uint64_t total, void *user)
{
    qz_run *run = user;
    if (run->progress && total) {
        fprintf(stderr, "\rwriting %3d%%%-60s", (int)(100.0 * (double)done / (double)total), "");
        fflush(stderr);
    }
    return true;
}

/* general.file_type of the output: the type of --type, else the type holding most
 * of the projection weights written (llama.cpp's "mostly TYPE"); -1 to keep the
 * input's value (no projections, or a type without a number). */
static int32_t qz_file_type(const qz_run *run, int def)
{
    if (def != QZ_KEEP)
        return bn_qtype_file_type(def);
    int64_t weights[BN_QT_COUNT] = {0};
    int best = -1;
    for (int64_t i = 0; i < run->n_jobs; i++) {
        const bn_gguf_tensor *t = run->jobs[i].src;
        int type = run->jobs[i].target == QZ_KEEP ? t->type : run->jobs[i].target;
        if (!qz_is_projection(t) || type < 0 || type >= BN_QT_COUNT)
            continue;
        weights[type] += t->ne[0] * t->ne[1];
        if (best < 0 || weights[type] > weights[best])
            best = type;
    }
    return best < 0 ? -1 : bn_qtype_file_type(best);
}

/* Builds the writer: all metadata (general.file_type set to what is written), then
 * every tensor in the source order. */
static bn_status qz_build(const bn_gguf *g, const qz_run *run, int def, bn_gguf_writer *w)
{
    bn_status st = BN_OK;
    for (int64_t i = 0; st == BN_OK && i < bn_gguf_n_kv(g); i++)
        st = bn_gguf_writer_copy_kv(w, g, i);
    int32_t file_type = qz_file_type(run, def);
    if (st == BN_OK && file_type >= 0)
        st = bn_gguf_writer_set_u32(w, "general.file_type", (uint32_t)file_type);
    for (int64_t i = 0; st == BN_OK && i < run->n_jobs; i++) {
        const qz_job *j = &run->jobs[i];
        const bn_gguf_tensor *t = j->src;
        if (j->target == QZ_KEEP)
            st = bn_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data,
                                           t->nbytes);
        else
            st = bn_gguf_writer_add_tensor(w, t->name, j->target, t->n_dims, t->ne, j->out,
                                           j->out_bytes);
    }
    return st;
}

/* Converts and writes; returns the exit code. */
static int qz_execute(const char *in, const char *out, int def, qz_rule *rules,
                      int n_rules, qz_run *run)
{
    bn_gguf *g = NULL;
    if (bn_gguf_open(in, &g) != BN_OK)
        return cli_fail("quantize");
    run->n_jobs = bn_gguf_n_tensors(g);
    run->jobs = calloc((size_t)run->n_jobs + 1, sizeof *run->jobs);
    int64_t n_convert = 0;
    for (int64_t i = 0; i < run->n_jobs; i++) {
        run->jobs[i].src = bn_gguf_get_tensor(g, i);
        run->jobs[i].target = qz_target(run->jobs[i].src, def, rules, n_rules);
        if (run->jobs[i].target != QZ_KEEP) {
            run->total_bytes += run->jobs[i].src->nbytes;
            n_convert++;
        }
    }
    double t0 = qz_now();
    bn_parallel_for(NULL, run->n_jobs, 1, qz_task, run);
    run->convert_seconds = qz_now() - t0;
    if (run->progress)
        fputc('\n', stderr);
    int rc = 0;
    for (int64_t i = 0; i < run->n_jobs && rc == 0; i++) {
        if (run->jobs[i].target != QZ_KEEP && run->jobs[i].status != BN_OK) {
            const bn_gguf_tensor *t = run->jobs[i].src;
            char shape[96] = "";
            for (int d = 0, len = 0; d < t->n_dims && len < (int)sizeof shape; d++)
                len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%lld",
                                d ? " x " : "", (long long)t->ne[d]);
            fprintf(stderr, "bitnet quantize: %s: tensor '%s' (%s, %s): %s\n", in, t->name,
                    shape, bn_qtype_get(t->type)->name, run->jobs[i].message);
            rc = 1;
        }
    }
    bn_gguf_writer *w = NULL;
    if (rc == 0 && (bn_gguf_writer_create(&w) != BN_OK || qz_build(g, run, def, w) != BN_OK ||
                    bn_gguf_writer_write(w, out, qz_write_progress, run) != BN_OK))
        rc = cli_fail("quantize");
    if (run->progress && rc == 0)
        fputc('\n', stderr);
    if (rc == 0) {
        if (run->stats)
            qz_print_stats(run);
        char b1[32];
        fprintf(stderr, "bitnet quantize: %lld of %lld tensors converted (%s in %.2f s, "
                "%.2f GB/s on %d threads), wrote %s in %.0f s\n", (long long)n_convert,
                (long long)run->n_jobs, cli_bytes(run->total_bytes, b1, sizeof b1),
                run->convert_seconds, run->convert_seconds > 0
                    ? (double)run->total_bytes / run->convert_seconds / 1e9 : 0.0,
                bn_get_num_threads(), out, difftime(time(NULL), run->started));
    }
    bn_gguf_writer_free(w);
    for (int64_t i = 0; i < run->n_jobs; i++)
        bn_free(run->jobs[i].out);
    free(run->jobs);
    bn_gguf_close(g);
    return rc;
}

/* --per-channel needs a target with a scale per block (tq2_0, tq1_0) and none with one
 * scale per tensor (i2_s); otherwise it would be ignored: a usage error, or -1. */
static int qz_check_per_channel(int def, const qz_rule *rules, int n_rules)
{
    bool block_scaled = false;
    for (int i = -1; i < n_rules; i++) {
        int type = i < 0 ? def : rules[i].type;
        if (type == BN_QT_I2_S)
            return cli_usage_error("quantize", "--per-channel: i2_s (%s) holds one scale "
                                   "per tensor; per-channel scales need tq2_0 or tq1_0",
                                   i < 0 ? "--type" : rules[i].pattern);
        block_scaled |= type == BN_QT_TQ2_0 || type == BN_QT_TQ1_0;
    }
    if (!block_scaled)
        return cli_usage_error("quantize", "--per-channel applies to tq2_0 and tq1_0 only, "
                               "and neither --type nor --tensor-type names one");
    return -1;
}

int cmd_quantize(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL};
    int n_paths = 0, def = QZ_KEEP, n_rules = 0;
    qz_rule *rules = calloc((size_t)argc, sizeof *rules);
    qz_run run = {.progress = isatty(2), .started = time(NULL)};
    pthread_mutex_init(&run.print_lock, NULL);
    int rc = -1;
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (cli_is_help(a)) {
            rc = cli_help("quantize");
        } else if (strcmp(a, "--type") == 0 && has_value) {
            bn_qtype t = BN_QT_F32;
            if (!bn_qtype_from_name(argv[++i], &t) || !bn_qtype_get(t)->can_write)
                rc = cli_usage_error("quantize", "--type %s: not a type this version can "
                                     "write", argv[i]);
            def = (int)t;
        } else if (strcmp(a, "--tensor-type") == 0 && has_value) {
            if (!qz_parse_rule(argv[++i], &rules[n_rules++]))
                rc = cli_usage_error("quantize", "--tensor-type wants PATTERN=TYPE with a "
                                     "writable type or 'keep', not '%s'", argv[i]);
        } else if (strcmp(a, "--per-channel") == 0) {
            run.per_channel = true;
        } else if (strcmp(a, "--stats") == 0) {
            run.stats = true;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            run.progress = false;
        } else if ((strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) && has_value) {
            int64_t n;
            if (!cli_parse_int(argv[++i], 1, 512, &n))
                rc = cli_usage_error("quantize", "invalid thread count '%s'", argv[i]);
            else if (bn_set_num_threads((int)n) != BN_OK)
                rc = cli_fail("quantize");
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error("quantize", has_value || a[1] != '-' ?
                                 "unknown option '%s'" : "option '%s' needs a value", a);
        } else if (n_paths < 2) {
            paths[n_paths++] = a;
        } else {
            rc = cli_usage_error("quantize", "unexpected argument '%s'", a);
        }
    }
    if (rc < 0 && n_paths < 2)
        rc = cli_usage_error("quantize", "needs an input and an output file");
    else if (rc < 0 && def == QZ_KEEP && n_rules == 0)
        rc = cli_usage_error("quantize", "say what to convert to: --type TYPE");
    else if (rc < 0 && run.per_channel)
        rc = qz_check_per_channel(def, rules, n_rules);
    if (rc < 0 && qz_same_file(paths[0], paths[1]))
        rc = cli_usage_error("quantize", "the output would overwrite the input '%s'",
                             paths[0]);
    if (rc < 0)
        rc = qz_execute(paths[0], paths[1], def, rules, n_rules, &run);
    pthread_mutex_destroy(&run.print_lock);
    free(rules);
    return rc;
}
