/*
 * cmd_convert.c - `bitnet convert HF_DIR -o OUT.gguf`: a Hugging Face checkpoint
 * folder (config.json, safetensors, tokenizer) to a GGUF model, by the library's
 * bn_convert_hf. Prints the layout it recognised, a progress line while writing, and
 * at the end the tensors, bytes, time and peak memory (the library's heap peak and
 * the process's resident peak).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

const char cmd_convert_help[] =
    "usage: bitnet convert HF_DIR -o OUT.gguf [options]\n"
    "\n"
    "Convert a Hugging Face checkpoint folder to a GGUF model: config.json, the weights\n"
    "(model.safetensors, or the shards model.safetensors.index.json names) and the\n"
    "tokenizer (tokenizer.json with tokenizer_config.json and its chat template, or\n"
    "tokenizer.model). Recognised layouts:\n"
    "  BitNetForCausalLM  microsoft bitnet-b1.58-2B-4T-bf16 (float weights, ternarized\n"
    "                     with one absmean scale per tensor) and bitnet-b1.58-2B-4T\n"
    "                     (packed 2-bit weights + weight_scale); arch bitnet-b1.58\n"
    "  BitnetForCausalLM  1bitLLM bitnet_b1_58-large / -3B (float latent weights,\n"
    "                     ternarized); arch bitnet, SiLU\n"
    "  LlamaForCausalLM   with quantization_config method bitnet (Falcon3-*-1.58bit,\n"
    "                     Llama3-8B-1.58; Llama 3.1 RoPE scaling as rope_freqs.weight);\n"
    "                     arch llama\n"
    "Tensors are converted one at a time as OUT is written, which appears only when\n"
    "everything succeeded.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE  the GGUF file to write (required)\n"
    "  --type TYPE        the projections: i2_s (default), tq2_0, tq1_0, or a float\n"
    "                     type (f16, bf16, f32) holding the ternary values times scale\n"
    "  --lm-head TYPE     the output layer (lm_head; the embedding when they are tied):\n"
    "                     f16 (default), bf16, f32, q8_0, q6_k, q4_0\n"
    "  --embd-type TYPE   the token embedding when not tied: f16 (default), ...\n"
    "  -q, --quiet        no progress line\n"
    "  -h, --help         show this help\n";

typedef struct cv_run {
    bool progress;
    int  last_pct;
} cv_run;

static bool cv_progress(uint64_t done, uint64_t total, void *user)
{
    cv_run *run = user;
    int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (run->progress && pct != run->last_pct) {
        fprintf(stderr, "\rbitnet convert: writing %3d%%", pct);
        fflush(stderr);
        run->last_pct = pct;
    }
    return true;
}

static double cv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parses a type option: writable, and for the output layers not ternary. */
static bool cv_type_arg(const char *val, bool ternary_ok, bn_qtype *out)
{
    bn_qtype t;
    if (!bn_qtype_from_name(val, &t) || !bn_qtype_get(t)->can_write ||
        (!ternary_ok && bn_qtype_get(t)->is_ternary))
        return false;
    *out = t;
    return true;
}

int cmd_convert(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    bn_convert_params p = bn_convert_default_params();
    cv_run run = {.progress = isatty(2), .last_pct = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        if (cli_is_help(a))
            return cli_help("convert");
        if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && v) {
            out = argv[++i];
        } else if (strcmp(a, "--type") == 0 && v) {
            if (!cv_type_arg(argv[++i], true, &p.proj_type))
                return cli_usage_error("convert", "--type %s: not a type this version can "
                                       "write", argv[i]);
        } else if ((strcmp(a, "--lm-head") == 0 || strcmp(a, "--embd-type") == 0) && v) {
            bn_qtype *dst = strcmp(a, "--lm-head") == 0 ? &p.lm_head_type : &p.embd_type;
            if (!cv_type_arg(argv[++i], false, dst))
                return cli_usage_error("convert", "%s %s: not a writable type that is not "
                                       "ternary (the output layer and the embedding are "
                                       "not ternary weights)", a, argv[i]);
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            run.progress = false;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("convert", v || a[1] != '-' ? "unknown option '%s'"
                                   : "option '%s' needs a value", a);
        } else if (dir) {
            return cli_usage_error("convert", "unexpected argument '%s'", a);
        } else {
            dir = a;
        }
    }
    if (!dir)
        return cli_usage_error("convert", "name the Hugging Face model folder");
    if (!out)
        return cli_usage_error("convert", "name the output file: -o OUT.gguf");
    p.progress = cv_progress;
    p.progress_user = &run;
    bn_convert_stats stats;
    double t0 = cv_now();
    bn_status st = bn_convert_hf(dir, out, &p, &stats);
    double secs = cv_now() - t0;
    if (run.progress && run.last_pct >= 0)
        fputc('\n', stderr);
    if (st != BN_OK)
        return cli_fail("convert");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char b1[32], b2[32], b3[32];
    fprintf(stderr, "bitnet convert: %s -> %s as %s (%s)\n", dir, out, stats.arch,
            stats.layout);
    fprintf(stderr, "bitnet convert: %lld tensors, %s of tensor data in %.2f s; peak "
            "memory: %s allocated, %s resident\n", (long long)stats.n_tensors,
            cli_bytes(stats.bytes_written, b1, sizeof b1), secs,
            cli_bytes(stats.peak_heap_bytes, b2, sizeof b2),
            cli_bytes((uint64_t)ru.ru_maxrss * 1024, b3, sizeof b3));
    return 0;
}
