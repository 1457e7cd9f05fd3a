/*
 * train_speed.c - the speed of one training step (bn_train_step: forward, backward,
 * clipping and AdamW over one batch) on a model of a given shape, from random tokens.
 * bench/train.sh runs it beside the PyTorch implementation of the same step
 * (bench/train_torch.py). Not a test: it prints figures.
 *
 *   train_speed [--dim E] [--layers L] [--heads H] [--kv-heads K] [--ffn F] [--ctx T]
 *               [--vocab V] [--batch B] [--threads N] [--mode float|ternary]
 *               [--steps S] [--warmup W]
 *
 * Prints "c <mode> threads N: S s/step, X tokens/s" (tokens = B T per step), timing S
 * steps after W untimed ones, then the kernel family and an FNV-1a hash of the
 * parameters and AdamW moments after the steps (tests/test_train_families.sh compares
 * it across families and thread counts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet.h"
#include "train/train.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int usage(const char *why)
{
    fprintf(stderr, "train_speed: %s\nusage: train_speed [--dim E] [--layers L] [--heads H] "
            "[--kv-heads K] [--ffn F] [--ctx T] [--vocab V] [--batch B] [--threads N] "
            "[--mode float|ternary] [--steps S] [--warmup W]\n", why);
    return 2;
}

int main(int argc, char **argv)
{
    bn_train_config cfg = {.n_embd = 256, .n_layer = 4, .n_head = 4, .n_head_kv = 2,
                           .n_ff = 640, .n_ctx = 128, .n_vocab = 32000, .rms_eps = 1e-5f,
                           .rope_theta = 10000.0f};
    int batch = 8, threads = 1, steps = 3, warmup = 1;
    float lambda = 0.0f;
    const char *mode = "float";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return usage("an option without its value");
        const char *v = argv[++i];
        int n = atoi(v);
        if (strcmp(a, "--mode") == 0) {
            if (strcmp(v, "float") == 0)
                lambda = 0.0f;
            else if (strcmp(v, "ternary") == 0)
                lambda = 1.0f;
            else
                return usage("--mode is float or ternary");
            mode = v;
            continue;
        }
        if (n <= 0 && !(strcmp(a, "--warmup") == 0 && n == 0))
            return usage("a size must be a positive integer");
        if (strcmp(a, "--dim") == 0) cfg.n_embd = n;
        else if (strcmp(a, "--layers") == 0) cfg.n_layer = n;
        else if (strcmp(a, "--heads") == 0) cfg.n_head = n;
        else if (strcmp(a, "--kv-heads") == 0) cfg.n_head_kv = n;
        else if (strcmp(a, "--ffn") == 0) cfg.n_ff = n;
        else if (strcmp(a, "--ctx") == 0) cfg.n_ctx = n;
        else if (strcmp(a, "--vocab") == 0) cfg.n_vocab = n;
        else if (strcmp(a, "--batch") == 0) batch = n;
        else if (strcmp(a, "--threads") == 0) threads = n;
        else if (strcmp(a, "--steps") == 0) steps = n;
        else if (strcmp(a, "--warmup") == 0) warmup = n;
        else return usage("unknown option");
    }
    bn_train_model *m = NULL;
    bn_status st = bn_train_model_new(&cfg, batch, &m);
    if (st == BN_OK)
        st = bn_train_set_threads(m, threads);
    if (st != BN_OK) {
        fprintf(stderr, "train_speed: %s\n", bn_last_error());
        bn_train_model_free(m);
        return 1;
    }
    bn_train_init_params(m, 1);
    const size_t n = (size_t)batch * (size_t)cfg.n_ctx;
    int32_t *tok = malloc(n * sizeof *tok), *tgt = malloc(n * sizeof *tgt);
    if (!tok || !tgt) {
        fprintf(stderr, "train_speed: out of memory\n");
        return 1;
    }
    uint64_t s = 7;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)cfg.n_vocab);
    }
    for (size_t i = 0; i < n; i++)   /* next-token targets within each sequence */
        tgt[i] = (i + 1) % (size_t)cfg.n_ctx ? tok[i + 1] : tok[i];
    bn_train_step_params p = {
        .adamw = bn_adamw_default_params(),
        .lr = {.lr_max = 1e-3, .lr_min = 1e-4, .warmup = 1, .steps = warmup + steps},
        .clip_norm = 1.0, .n_micro = 1, .lambda = lambda,
    };
    double t0 = 0.0;
    float first = 0.0f, last = 0.0f;
    for (int k = 0; k < warmup + steps; k++) {
        if (k == warmup)
            t0 = now();
        bn_train_step_result res;
        st = bn_train_step(m, &p, tok, tgt, &res);
        if (st != BN_OK) {
            fprintf(stderr, "train_speed: %s\n", bn_last_error());
            return 1;
        }
        if (k == 0)
            first = res.loss;
        last = res.loss;
    }
    const double dt = (now() - t0) / steps;
    uint64_t hash = 0xcbf29ce484222325ull;
    const float *arrays[] = {m->params, m->adam_m, m->adam_v};
    for (int a = 0; a < 3; a++) {
        const unsigned char *b = (const unsigned char *)arrays[a];
        for (size_t i = 0; i < m->n_params * sizeof(float); i++)
            hash = (hash ^ b[i]) * 0x100000001b3ull;
    }
    printf("c %s threads %d: %.4f s/step, %.1f tokens/s (loss %.4f -> %.4f, %.0f MB)\n",
           mode, threads, dt, (double)n / dt, (double)first, (double)last,
           (double)m->bytes / 1e6);
    printf("kernels %s, state fnv1a64 %016llx\n", bn_kernels_name(), (unsigned long long)hash);
    bn_train_model_free(m);
    free(tok);
    free(tgt);
    return 0;
}
