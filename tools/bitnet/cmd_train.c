/*
 * cmd_train.c - `bitnet train`: quantization-aware training of a BitNet b1.58 model on
 * a text file, with checkpoints, a log (train.csv), a plot (loss.svg) and the trained
 * model exported as model.gguf; and `bitnet export`, a checkpoint to GGUF.
 *
 * The run is deterministic: the seed decides the initial weights and every batch, and a
 * run resumed from a checkpoint continues bit for bit as the uninterrupted run would
 * have (the checkpoint holds the weights, the AdamW moments, the step, the data
 * generator's state and the log).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf.h"
#include "run_common.h"
#include "train/run.h"
#include "train_dist.h"
#include "train_plot.h"

/* The ranks of a data-parallel run (one when not under mpirun); what only informs is
 * printed by rank 0, errors by every rank. */
static train_dist dist = {.rank = 0, .size = 1};
#define INFO(...)                                                                       \
    do {                                                                               \
        if (dist.rank == 0)                                                            \
            fprintf(stderr, __VA_ARGS__);                                              \
    } while (0)

const char cmd_train_help[] =
    "usage: bitnet train --data TRAIN.txt --tokenizer FILE --out DIR [options]\n"
    "       bitnet train --data TRAIN.txt --out DIR --resume CKPT [options]\n"
    "\n"
    "Trains a BitNet b1.58 model (arch bitnet-b1.58: ternary projections, 8-bit\n"
    "activations, relu^2 FFN, sub-norms, tied output) on the text of TRAIN.txt, with the\n"
    "straight-through estimator (docs/TRAINING.md). DIR receives train.csv (a row per\n"
    "step: step,lr,train_loss,val_loss,tokens_per_second,lambda,grad_norm), loss.svg\n"
    "(train and validation loss against step), checkpoints ckpt-STEP.ckpt (every\n"
    "--save-every steps, at the end, and on Ctrl-C) and, at the end, model.gguf (I2_S\n"
    "projections unless --type says otherwise), which generate, chat and perplexity take.\n"
    "The validation loss is computed as 'bitnet perplexity -c CTX' does on the validation\n"
    "text: it is the log of that perplexity. The same seed gives the same weights and\n"
    "losses; a resumed run continues as if it had never stopped.\n"
    "\n"
    "data and output:\n"
    "  --data FILE          the training text (UTF-8), or token shards that 'bitnet\n"
    "                       corpus' wrote (its directory, or one .bin file) with the same\n"
    "                       tokenizer\n"
    "  --val FILE           the validation text (default: the last --val-frac of --data,\n"
    "                       cut at a line start, which training then does not see; for\n"
    "                       a shard directory its val split)\n"
    "  --val-frac X         (default 0.1)\n"
    "  --tokenizer FILE     what 'bitnet tokenize -m' takes: a GGUF model, tokenizer.json\n"
    "                       or tokenizer.model; the vocabulary sets the model's\n"
    "  --out DIR            the run's directory (made when missing)\n"
    "  --resume CKPT        continue the run of a checkpoint: its shape, settings and\n"
    "                       tokenizer; the same --data (and --val) must be given. Options\n"
    "                       that disagree with it are refused, except --steps (a longer\n"
    "                       run: the schedule is stretched) and the options of the run's\n"
    "                       bookkeeping (-t, --eval-every, --save-every, --keep, --type)\n"
    "model:\n"
    "  --dim D              width (default 256)\n"
    "  --layers L           (default 4)\n"
    "  --heads H            attention heads; D / H must be even (default 4)\n"
    "  --kv-heads K         key/value heads, dividing H (default H)\n"
    "  --ffn F              FFN width (default 8 D / 3 rounded up to 128)\n"
    "  --ctx C              positions per training sequence (default 128)\n"
    "  --rope-theta X       (default 10000)\n"
    "optimization:\n"
    "  --batch B            sequences per micro-batch (default 8)\n"
    "  --accum A            micro-batches per step (default 1)\n"
    "  --steps N            optimizer steps (default 1000)\n"
    "  --lr LR              peak learning rate (default 1.5e-3)\n"
    "  --lr-min LR          the end of the cosines (default LR / 10)\n"
    "  --warmup W           linear warm-up steps (default min(100, N / 10))\n"
    "  --schedule S         two-stage (default; the BitNet b1.58 recipe) or cosine\n"
    "  --drop X             two-stage: stage two starts at this fraction of the steps\n"
    "                       (default 0.5)\n"
    "  --lr2 LR             two-stage: the rate stage two starts at (default 0.4 LR)\n"
    "  --wd X               AdamW weight decay of the matrices, stage one (default 0.1;\n"
    "                       two-stage: 0 in stage two)\n"
    "  --beta1 X, --beta2 X AdamW (default 0.9, 0.95)\n"
    "  --clip X             gradient clipping to this global norm; 0: none (default 1)\n"
    "  --mode M             ternary (default: quantization-aware) or float (no\n"
    "                       quantization: a baseline)\n"
    "  --lambda-ramp N      ternary: quantization strength from 0 to 1 over N steps\n"
    "                       (progressive quantization); 0: 1 from the start (default 0)\n"
    "  -s, --seed S         initial weights and batches (default 1)\n"
    "bookkeeping:\n"
    "  --eval-every N       validation every N steps and at the end (default N / 20)\n"
    "  --val-windows N      at most N validation windows (default 64; 0: all)\n"
    "  --save-every N       a checkpoint every N steps (default: at the end and on\n"
    "                       Ctrl-C only)\n"
    "  --keep N             keep the N newest checkpoints (default 2)\n"
    "  -t, --threads N      threads (default: every online CPU, or the global -t);\n"
    "                       the results are the same for any count\n"
    "  --type T             model.gguf's projections: i2_s (default), tq2_0, tq1_0, f16\n"
    "                       (the default of --mode float), f32\n"
    "  -h, --help           show this help\n"
    "\n"
    "Ctrl-C ends the step under way, saves a checkpoint and exits (130); resume with\n"
    "--resume DIR/ckpt-STEP.ckpt.\n"
    "\n"
    "Data parallelism: 'mpirun -np N bitnet train ...' (a build with MPI: 'bitnet info\n"
    "--system' says) splits each micro-batch of --batch sequences (N must divide it)\n"
    "across N processes and averages their gradients, so that N ranks train as one\n"
    "process with the same --batch; rank 0 writes the files.\n"
    "\n";

const char cmd_export_help[] =
    "usage: bitnet export CKPT OUT.gguf [--type i2_s|tq2_0|tq1_0|f16|f32] [--embd-type T]\n"
    "       bitnet export CKPT_OR_GGUF --hf DIR\n"
    "\n"
    "Writes the model of a training checkpoint (bitnet train) as a GGUF file of arch\n"
    "bitnet-b1.58 with its tokenizer, as 'bitnet train' writes model.gguf: generate,\n"
    "chat, perplexity and info take it. The projections of a ternary run are ternarized\n"
    "as its forward does (one absmean scale per tensor).\n"
    "\n"
    "With --hf, writes a Hugging Face folder instead (config.json, model.safetensors in\n"
    "the BitNetForCausalLM layout of microsoft/bitnet-b1.58-2B-4T, tokenizer.json and\n"
    "tokenizer_config.json) from a checkpoint or a bitnet-b1.58 GGUF model, so that a\n"
    "trained model can be published; 'bitnet convert DIR' reads it back (docs/CONVERT.md).\n"
    "\n"
    "options:\n"
    "  --type T             the projections (default i2_s; f16/f32 hold the ternary\n"
    "                       values times their scale)\n"
    "  --embd-type T        the token embedding, which is the output layer too (default\n"
    "                       f16; f32, bf16, q8_0, q6_k)\n"
    "  --name NAME          general.name (default \"bitnet trained\")\n"
    "  --hf DIR             a Hugging Face folder instead of OUT.gguf (made when missing)\n"
    "  -h, --help           show this help\n"
    "\n";

/* ------------------------------------------------------------------ options */

typedef struct train_opts {
    const char *data, *val, *tokenizer, *out, *resume, *schedule, *mode, *type;
    /* -1 / NAN: not given */
    int64_t dim, layers, heads, kv_heads, ffn, ctx, batch, accum, steps, warmup,
        lambda_ramp, seed, eval_every, val_windows, save_every, keep, threads;
    double lr, lr_min, lr2, drop, wd, beta1, beta2, clip, val_frac, rope_theta;
} train_opts;

typedef enum { O_STR, O_INT, O_DBL } opt_kind;

typedef struct opt_def {
    const char *name, *alt;
    opt_kind kind;
    size_t off;
    double lo, hi;
    const char *what;    /* a value's name in messages */
} opt_def;

#define OS(n, f) {n, NULL, O_STR, offsetof(train_opts, f), 0, 0, NULL}
#define OI(n, f, lo, hi, w) {n, NULL, O_INT, offsetof(train_opts, f), lo, hi, w}
#define OD(n, f, lo, hi, w) {n, NULL, O_DBL, offsetof(train_opts, f), lo, hi, w}
static const opt_def train_defs[] = {
    OS("--data", data), OS("--val", val), OS("--tokenizer", tokenizer), OS("--out", out),
    OS("--resume", resume), OS("--schedule", schedule), OS("--mode", mode),
    OS("--type", type),
    OI("--dim", dim, 2, 1 << 16, "width"), OI("--layers", layers, 1, 1024, "layer count"),
    OI("--heads", heads, 1, 4096, "head count"),
    OI("--kv-heads", kv_heads, 1, 4096, "kv head count"),
    OI("--ffn", ffn, 1, 1 << 18, "FFN width"), OI("--ctx", ctx, 2, 1 << 16, "context"),
    OI("--batch", batch, 1, 1 << 16, "batch"), OI("--accum", accum, 1, 1 << 16,
                                                  "accumulation"),
    OI("--steps", steps, 1, INT32_MAX, "step count"),
    OI("--warmup", warmup, 0, INT32_MAX, "warm-up"),
    OI("--lambda-ramp", lambda_ramp, 0, INT32_MAX, "ramp"),
    OI("--seed", seed, 0, 1e18, "seed"),
    OI("--eval-every", eval_every, 1, INT32_MAX, "interval"),
    OI("--val-windows", val_windows, 0, INT32_MAX, "window count"),
    OI("--save-every", save_every, 1, INT32_MAX, "interval"),
    OI("--keep", keep, 1, 1 << 20, "count"),
    OI("--threads", threads, 1, 512, "thread count"),
    OD("--lr", lr, 1e-12, 10, "learning rate"), OD("--lr-min", lr_min, 0, 10, "learning rate"),
    OD("--lr2", lr2, 0, 10, "learning rate"), OD("--drop", drop, 0, 1, "fraction"),
    OD("--wd", wd, 0, 10, "weight decay"), OD("--beta1", beta1, 0, 0.999999, "beta"),
    OD("--beta2", beta2, 0, 0.999999999, "beta"), OD("--clip", clip, 0, 1e9, "norm"),
    OD("--val-frac", val_frac, 0.001, 0.9, "fraction"),
    OD("--rope-theta", rope_theta, 1, 1e9, "base"),
};
#undef OS
#undef OI
#undef OD

/* 0: go on; -1: --help was asked for (*help_rc: its exit status); else the usage
 * error's exit status. */
static int parse_train_opts(int argc, char **argv, train_opts *o, int *help_rc)
{
    const char *cmd = "train";
    for (size_t k = 0; k < sizeof train_defs / sizeof train_defs[0]; k++) {
        const opt_def *d = &train_defs[k];
        if (d->kind == O_INT)
            *(int64_t *)((char *)o + d->off) = -1;
        else if (d->kind == O_DBL)
            *(double *)((char *)o + d->off) = NAN;
        else
            *(const char **)((char *)o + d->off) = NULL;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            *help_rc = cli_help("train");
            return -1;
        }
        if (!strcmp(a, "-s"))
            a = "--seed";
        if (!strcmp(a, "-t"))
            a = "--threads";
        const opt_def *d = NULL;
        for (size_t k = 0; k < sizeof train_defs / sizeof train_defs[0] && !d; k++)
            if (!strcmp(a, train_defs[k].name))
                d = &train_defs[k];
        if (!d) {
            if (a[0] == '-')
                return cli_usage_error(cmd, "unknown option '%s'", a);
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
        if (i + 1 >= argc)
            return cli_usage_error(cmd, "%s needs a value", a);
        const char *v = argv[++i];
        void *dst = (char *)o + d->off;
        if (d->kind == O_STR) {
            *(const char **)dst = v;
        } else if (d->kind == O_INT) {
            if (!cli_parse_int(v, (int64_t)d->lo, (int64_t)d->hi, dst))
                return cli_usage_error(cmd, "invalid %s '%s' for %s (a whole number from "
                                       "%.0f to %.0f)", d->what, v, a, d->lo, d->hi);
        } else if (!cli_parse_double(v, d->lo, d->hi, dst)) {
            return cli_usage_error(cmd, "invalid %s '%s' for %s (a number from %g to %g)",
                                   d->what, v, a, d->lo, d->hi);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ files */

/* Reads a text file whole; NULL with a message (an empty file is refused too). */
static char *read_text(const char *what, const char *path, size_t *len)
{
    char *t = run_read_file("train", path, len);
    if (t && *len == 0) {
        fprintf(stderr, "bitnet train: %s %s is empty\n", what, path);
        free(t);
        return NULL;
    }
    return t;
}

/* Makes dir when missing; false with a message. */
static bool make_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return true;
        fprintf(stderr, "bitnet train: --out %s exists and is not a directory\n", dir);
        return false;
    }
    if (mkdir(dir, 0777) != 0) {
        fprintf(stderr, "bitnet train: cannot make directory %s: %s\n", dir,
                strerror(errno));
        return false;
    }
    return true;
}

static void path_in(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static void ckpt_path(char *buf, size_t cap, const char *dir, int64_t step)
{
    snprintf(buf, cap, "%s/ckpt-%06lld.ckpt", dir, (long long)step);
}

/* "1h02m", "3m05s", "12s" */
static const char *fmt_secs(double s, char *buf, size_t cap)
{
    if (!isfinite(s) || s < 0)
        snprintf(buf, cap, "?");
    else if (s >= 3600)
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, cap, "%.0fs", s);
    return buf;
}

/* ------------------------------------------------------------------ the run */

typedef struct train_run {
    train_opts o;
    bn_train_settings s;
    bn_train_progress p;
    bn_tokenizer *tok;
    bn_train_model *m;
    bn_train_stream train;
    bn_train_val val;
    bn_token bos;
    int32_t *tokens, *targets;      /* [accum][batch][ctx] */
    int64_t eval_every, save_every, keep;
    bool tty;
    double step_seconds;            /* this process's training time */
    int64_t steps_here;
} train_run;

/* The settings from the options (a new run): 0, or the exit status of the error. */
static int settings_from_opts(train_run *r)
{
    const train_opts *o = &r->o;
    bn_train_settings *s = &r->s;
    bn_train_config *c = &s->cfg;
    const char *cmd = "train";
    c->n_embd = (int32_t)(o->dim > 0 ? o->dim : 256);
    c->n_layer = (int32_t)(o->layers > 0 ? o->layers : 4);
    c->n_head = (int32_t)(o->heads > 0 ? o->heads : 4);
    c->n_head_kv = (int32_t)(o->kv_heads > 0 ? o->kv_heads : c->n_head);
    c->n_ff = (int32_t)(o->ffn > 0 ? o->ffn : (8 * (int64_t)c->n_embd / 3 + 127) / 128 * 128);
    c->n_ctx = (int32_t)(o->ctx > 0 ? o->ctx : 128);
    c->n_vocab = bn_tokenizer_n_vocab(r->tok);
    c->rms_eps = 1e-5f;
    c->rope_theta = (float)(isnan(o->rope_theta) ? 10000.0 : o->rope_theta);
    if (c->n_embd % c->n_head != 0 || (c->n_embd / c->n_head) % 2 != 0) {
        return cli_usage_error(cmd, "--heads %d does not divide --dim %d into heads of an "
                               "even size", c->n_head, c->n_embd);
    }
    if (c->n_head % c->n_head_kv != 0) {
        return cli_usage_error(cmd, "--kv-heads %d does not divide --heads %d", c->n_head_kv,
                               c->n_head);
    }
    if (bn_train_config_check(c) != BN_OK) {
        fprintf(stderr, "bitnet train: %s\n", bn_last_error());
        return 1;
    }
    s->batch = (int32_t)(o->batch > 0 ? o->batch : 8);
    s->accum = (int32_t)(o->accum > 0 ? o->accum : 1);
    s->steps = (int32_t)(o->steps > 0 ? o->steps : 1000);
    s->ternary = !o->mode || !strcmp(o->mode, "ternary");
    if (o->mode && strcmp(o->mode, "ternary") && strcmp(o->mode, "float")) {
        return cli_usage_error(cmd, "--mode '%s': ternary or float", o->mode);
    }
    const bool cosine = o->schedule && !strcmp(o->schedule, "cosine");
    if (o->schedule && !cosine && strcmp(o->schedule, "two-stage")) {
        return cli_usage_error(cmd, "--schedule '%s': two-stage or cosine", o->schedule);
    }
    bn_lr_schedule *lr = &s->lr;
    lr->kind = cosine ? BN_LR_COSINE : BN_LR_TWO_STAGE;
    lr->steps = s->steps;
    lr->lr_max = isnan(o->lr) ? 1.5e-3 : o->lr;
    lr->lr_min = isnan(o->lr_min) ? lr->lr_max / 10 : o->lr_min;
    lr->lr_stage2 = isnan(o->lr2) ? 0.4 * lr->lr_max : o->lr2;
    lr->warmup = (int32_t)(o->warmup >= 0 ? o->warmup : (s->steps / 10 < 100 ? s->steps / 10
                                                                                 : 100));
    double drop = isnan(o->drop) ? 0.5 : o->drop;
    lr->drop_step = (int32_t)llround(drop * s->steps);
    if (lr->warmup >= s->steps) {
        return cli_usage_error(cmd, "--warmup %d is not shorter than --steps %d", lr->warmup,
                               s->steps);
    }
    if (!cosine && lr->drop_step < lr->warmup) {
        return cli_usage_error(cmd, "stage two (--drop %g: step %d) would start inside the "
                               "warm-up (%d steps)", drop, lr->drop_step, lr->warmup);
    }
    s->adamw = bn_adamw_default_params();
    if (!isnan(o->wd)) s->adamw.weight_decay = o->wd;
    if (!isnan(o->beta1)) s->adamw.beta1 = o->beta1;
    if (!isnan(o->beta2)) s->adamw.beta2 = o->beta2;
    s->clip = isnan(o->clip) ? 1.0 : o->clip;
    s->lambda_ramp = (int32_t)(o->lambda_ramp >= 0 ? o->lambda_ramp : 0);
    if (!s->ternary && o->lambda_ramp > 0) {
        return cli_usage_error(cmd, "--lambda-ramp applies to --mode ternary only");
    }
    s->seed = (uint64_t)(o->seed >= 0 ? o->seed : 1);
    return 0;
}

/* On --resume: every option given must agree with the checkpoint's settings, except
 * --steps. */
static bool check_resume_opts(train_run *r)
{
    const train_opts *o = &r->o;
    bn_train_settings *s = &r->s;
    const bn_train_config *c = &s->cfg;
    struct { const char *name; int64_t given, have; } ints[] = {
        {"--dim", o->dim, c->n_embd}, {"--layers", o->layers, c->n_layer},
        {"--heads", o->heads, c->n_head}, {"--kv-heads", o->kv_heads, c->n_head_kv},
        {"--ffn", o->ffn, c->n_ff}, {"--ctx", o->ctx, c->n_ctx},
        {"--batch", o->batch, s->batch}, {"--accum", o->accum, s->accum},
        {"--warmup", o->warmup, s->lr.warmup},
        {"--lambda-ramp", o->lambda_ramp, s->lambda_ramp},
        {"--seed", o->seed, (int64_t)s->seed},
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
        if (ints[k].given >= 0 && ints[k].given != ints[k].have) {
            fprintf(stderr, "bitnet train: %s %lld disagrees with the checkpoint's %lld "
                    "(a resumed run keeps its settings; leave the option out)\n",
                    ints[k].name, (long long)ints[k].given, (long long)ints[k].have);
            return false;
        }
    struct { const char *name; double given, have; } dbls[] = {
        {"--lr", o->lr, s->lr.lr_max}, {"--lr-min", o->lr_min, s->lr.lr_min},
        {"--lr2", o->lr2, s->lr.lr_stage2}, {"--wd", o->wd, s->adamw.weight_decay},
        {"--beta1", o->beta1, s->adamw.beta1}, {"--beta2", o->beta2, s->adamw.beta2},
        {"--clip", o->clip, s->clip}, {"--rope-theta", o->rope_theta, c->rope_theta},
    };
    for (size_t k = 0; k < sizeof dbls / sizeof dbls[0]; k++)
        if (!isnan(dbls[k].given) && dbls[k].given != dbls[k].have &&
            (float)dbls[k].given != (float)dbls[k].have) {
            fprintf(stderr, "bitnet train: %s %g disagrees with the checkpoint's %g (a "
                    "resumed run keeps its settings; leave the option out)\n",
                    dbls[k].name, dbls[k].given, dbls[k].have);
            return false;
        }
    const char *mode = s->ternary ? "ternary" : "float";
    const char *sched = s->lr.kind == BN_LR_TWO_STAGE ? "two-stage" : "cosine";
    if ((o->mode && strcmp(o->mode, mode)) || (o->schedule && strcmp(o->schedule, sched))) {
        fprintf(stderr, "bitnet train: the checkpoint's run is --mode %s --schedule %s\n",
                mode, sched);
        return false;
    }
    if (!isnan(o->drop) && llround(o->drop * s->steps) != s->lr.drop_step) {
        fprintf(stderr, "bitnet train: --drop %g disagrees with the checkpoint's stage two "
                "at step %d\n", o->drop, s->lr.drop_step);
        return false;
    }
    if (o->steps > 0 && o->steps != s->steps) {
        if (o->steps <= r->p.step) {
            fprintf(stderr, "bitnet train: --steps %lld: the checkpoint is at step %lld "
                    "already\n", (long long)o->steps, (long long)r->p.step);
            return false;
        }
        INFO("bitnet train: --steps %lld instead of the checkpoint's %d: the "
                "schedule is stretched to the new length\n", (long long)o->steps, s->steps);
        if (s->lr.kind == BN_LR_TWO_STAGE)
            s->lr.drop_step = (int32_t)llround((double)s->lr.drop_step / s->steps *
                                               (double)o->steps);
        s->steps = (int32_t)o->steps;
        s->lr.steps = s->steps;
    }
    return true;
}

/* A tokenizer given again on --resume must be the checkpoint's: same size, every
 * vocabulary entry the same. */
static bool same_tokenizer(const bn_tokenizer *a, const bn_tokenizer *b)
{
    if (bn_tokenizer_n_vocab(a) != bn_tokenizer_n_vocab(b) ||
        bn_tokenizer_kind_of(a) != bn_tokenizer_kind_of(b))
        return false;
    for (int32_t i = 0; i < bn_tokenizer_n_vocab(a); i++) {
        size_t la, lb;
        const char *pa = bn_tokenizer_piece(a, i, &la), *pb = bn_tokenizer_piece(b, i, &lb);
        if (la != lb || memcmp(pa, pb, la) != 0)
            return false;
    }
    return true;
}

/* Reads --data and --val (or splits --data), checks them against a resumed run's
 * checksums and tokenizes them. */
/* Whether path holds token shards (bitnet corpus): a directory, or a file that starts
 * with the shard magic. */
static bool is_shards(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return false;
    if (S_ISDIR(st.st_mode))
        return true;
    FILE *f = fopen(path, "rb");
    char magic[8] = {0};
    bool yes = f && fread(magic, 1, 8, f) == 8 && memcmp(magic, "BNTOKSHD", 8) == 0;
    if (f)
        fclose(f);
    return yes;
}

/* The tokens of a split of the shards at path (a directory: its SPLIT-*.bin; a file:
 * itself) as a stream; false with a message. Their tokenizer must be the run's. */
static bool read_shards(train_run *r, const char *path, const char *split,
                        bn_train_stream *out)
{
    struct stat st;
    bool dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    bn_shards *sh = NULL;
    if (bn_shards_open(path, dir ? split : NULL, &sh) != BN_OK) {
        cli_fail("train");
        return false;
    }
    bool ok = false;
    if (bn_shards_tokenizer_checksum(sh) != bn_tokenizer_checksum(r->tok)) {
        fprintf(stderr, "bitnet train: the shards of %s were made with another tokenizer "
                "(checksum %016llx, this one's %016llx)\n", path,
                (unsigned long long)bn_shards_tokenizer_checksum(sh),
                (unsigned long long)bn_tokenizer_checksum(r->tok));
        goto done;
    }
    uint64_t n = bn_shards_n_tokens(sh);
    *out = (bn_train_stream){.ids = bn_malloc((size_t)(n ? n : 1) * sizeof *out->ids,
                                              "train: shards"), .n = (size_t)n};
    if (!out->ids || bn_shards_read(sh, 0, (size_t)n, out->ids) != BN_OK) {
        cli_fail("train");
        bn_train_stream_free(out);
        goto done;
    }
    ok = true;
done:
    bn_shards_close(sh);
    return ok;
}

/* --data given as token shards: the training tokens, and the validation tokens of
 * --val (shards), of the directory's val split, or the last --val-frac of the tokens. */
static bool load_shards(train_run *r, bool resumed)
{
    const int32_t T = r->s.cfg.n_ctx;
    bn_train_stream val = {0};
    if (!read_shards(r, r->o.data, "train", &r->train))
        return false;
    struct stat st;
    bool dir = stat(r->o.data, &st) == 0 && S_ISDIR(st.st_mode);
    bool ok = false;
    if (r->o.val) {
        if (!is_shards(r->o.val)) {
            fprintf(stderr, "bitnet train: --data is token shards, so --val must be too\n");
            goto done;
        }
        if (!read_shards(r, r->o.val, "val", &val))
            goto done;
    } else if (dir) {
        if (!read_shards(r, r->o.data, "val", &val))
            goto done;
    } else {
        double frac = isnan(r->o.val_frac) ? 0.1 : r->o.val_frac;
        size_t cut = (size_t)((1.0 - frac) * (double)r->train.n);
        val.n = r->train.n - cut;
        if (!(val.ids = bn_malloc((val.n ? val.n : 1) * sizeof *val.ids, "train: shards"))) {
            cli_fail("train");
            goto done;
        }
        memcpy(val.ids, r->train.ids + cut, val.n * sizeof *val.ids);
        r->train.n = cut;
    }
    uint64_t dh = bn_seal_hash(r->train.ids, r->train.n * sizeof *r->train.ids);
    uint64_t vh = bn_seal_hash(val.ids, val.n * sizeof *val.ids);
    if (resumed && (dh != r->s.data_hash || vh != r->s.val_hash)) {
        fprintf(stderr, "bitnet train: the %s tokens are not the checkpoint's\n",
                dh != r->s.data_hash ? "training" : "validation");
        goto done;
    }
    r->s.data_hash = dh;
    r->s.data_bytes = r->train.n * sizeof *r->train.ids;
    r->s.val_hash = vh;
    r->s.val_bytes = val.n * sizeof *val.ids;
    r->bos = bn_train_bos(r->tok);
    if (r->train.n < bn_train_min_tokens(T, r->bos)) {
        fprintf(stderr, "bitnet train: the training shards hold %zu tokens, fewer than one "
                "sequence of --ctx %d needs (%zu)\n", r->train.n, T,
                bn_train_min_tokens(T, r->bos));
        goto done;
    }
    int64_t max_w = r->o.val_windows >= 0 ? r->o.val_windows : 64;
    if (bn_train_val_tokens(&val, T, r->bos, max_w, &r->val) != BN_OK) {
        fprintf(stderr, "bitnet train: %s\n", bn_last_error());
        goto done;
    }
    INFO("data: %zu training tokens, %zu validation tokens in %lld window%s of %d (token "
         "shards)\n", r->train.n, r->val.s.n, (long long)r->val.n_windows,
         CLI_S(r->val.n_windows), T);
    ok = true;
done:
    bn_train_stream_free(&val);
    return ok;
}

static bool load_data(train_run *r, bool resumed)
{
    if (is_shards(r->o.data))
        return load_shards(r, resumed);
    size_t len = 0, vlen = 0;
    char *text = read_text("--data", r->o.data, &len), *vtext = NULL;
    if (!text)
        return false;
    bool ok = false;
    size_t train_len = len;
    if (r->o.val) {
        if (!(vtext = read_text("--val", r->o.val, &vlen)))
            goto done;
    } else {
        /* the last val_frac of the text, from a line start */
        double frac = isnan(r->o.val_frac) ? 0.1 : r->o.val_frac;
        size_t cut = (size_t)((1.0 - frac) * (double)len);
        while (cut < len && cut > 0 && text[cut - 1] != '\n')
            cut++;
        if (cut >= len)
            cut = (size_t)((1.0 - frac) * (double)len);
        train_len = cut;
        vtext = text + cut;
        vlen = len - cut;
    }
    uint64_t dh = bn_seal_hash(text, train_len), vh = bn_seal_hash(vtext, vlen);
    if (resumed && (dh != r->s.data_hash || train_len != r->s.data_bytes)) {
        fprintf(stderr, "bitnet train: the training text is not the checkpoint's (%llu "
                "bytes, checksum %016llx; the checkpoint's: %llu bytes, %016llx)\n",
                (unsigned long long)train_len, (unsigned long long)dh,
                (unsigned long long)r->s.data_bytes, (unsigned long long)r->s.data_hash);
        goto done;
    }
    if (resumed && (vh != r->s.val_hash || vlen != r->s.val_bytes)) {
        fprintf(stderr, "bitnet train: the validation text is not the checkpoint's (%llu "
                "bytes; the checkpoint's: %llu bytes)\n", (unsigned long long)vlen,
                (unsigned long long)r->s.val_bytes);
        goto done;
    }
    r->s.data_hash = dh;
    r->s.data_bytes = train_len;
    r->s.val_hash = vh;
    r->s.val_bytes = vlen;
    const int32_t T = r->s.cfg.n_ctx;
    double t0 = run_now();
    if (bn_train_stream_text(r->tok, text, train_len, &r->train) != BN_OK) {
        cli_fail("train");
        goto done;
    }
    r->bos = bn_train_bos(r->tok);
    if (r->train.n < bn_train_min_tokens(T, r->bos)) {
        fprintf(stderr, "bitnet train: the training text is %zu tokens, fewer than one "
                "sequence of --ctx %d needs (%zu)\n", r->train.n, T,
                bn_train_min_tokens(T, r->bos));
        goto done;
    }
    int64_t max_w = r->o.val_windows >= 0 ? r->o.val_windows : 64;
    if (bn_train_val_text(r->tok, vtext, vlen, T, max_w, &r->val) != BN_OK) {
        fprintf(stderr, "bitnet train: %s%s\n", bn_last_error(),
                r->o.val ? "" : " (a larger --val-frac, or --val FILE)");
        goto done;
    }
    INFO("data: %zu training tokens (%.2f bytes a token), %zu validation "
            "tokens in %lld window%s of %d; tokenized in %.1f s\n", r->train.n,
            (double)train_len / (double)r->train.n, r->val.s.n,
            (long long)r->val.n_windows, CLI_S(r->val.n_windows), T, run_now() - t0);
    ok = true;
done:
    free(text);
    if (r->o.val)
        free(vtext);
    return ok;
}

static bool write_log_files(train_run *r)
{
    if (dist.rank != 0)
        return true;
    char path[4096], title[160];
    path_in(path, sizeof path, r->o.out, "train.csv");
    if (!train_write_csv(path, r->p.log, r->p.n_log)) {
        fprintf(stderr, "bitnet train: writing %s: %s\n", path, bn_last_error());
        return false;
    }
    const bn_train_config *c = &r->s.cfg;
    snprintf(title, sizeof title, "%s BitNet b1.58, dim %d, %d layers, ctx %d",
             r->s.ternary ? "ternary" : "float", c->n_embd, c->n_layer, c->n_ctx);
    path_in(path, sizeof path, r->o.out, "loss.svg");
    if (!train_write_svg(path, r->p.log, r->p.n_log, title)) {
        fprintf(stderr, "bitnet train: writing %s: %s\n", path, bn_last_error());
        return false;
    }
    return true;
}

/* Saves a checkpoint of the current step and removes those beyond --keep. */
static bool save_checkpoint(train_run *r)
{
    char path[4096];
    ckpt_path(path, sizeof path, r->o.out, r->p.step);
    bool ok = dist.rank != 0 || bn_train_ckpt_save(path, &r->s, &r->p, r->tok, r->m) == BN_OK;
    if (!ok)
        fprintf(stderr, "%sbitnet train: %s\n", r->tty ? "\n" : "", bn_last_error());
    if (!train_dist_all(&dist, ok))
        return false;
    if (dist.rank != 0)
        return true;
    /* the older ones: the checkpoints of earlier steps beyond the --keep newest */
    DIR *d = opendir(r->o.out);
    int64_t *steps = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        long long st;
        int end = 0;
        if (sscanf(e->d_name, "ckpt-%lld.ckpt%n", &st, &end) != 1 || e->d_name[end] ||
            st >= r->p.step)
            continue;
        if (n == cap) {
            int64_t *grown = realloc(steps, (cap = cap ? 2 * cap : 16) * sizeof *steps);
            if (!grown)
                break;
            steps = grown;
        }
        steps[n++] = st;
    }
    if (d)
        closedir(d);
    /* newest first: keep the first keep - 1 (the one just written is the newest) */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (steps[j] > steps[i]) {
                int64_t t = steps[i];
                steps[i] = steps[j];
                steps[j] = t;
            }
    for (size_t i = (size_t)(r->keep - 1); i < n; i++) {
        ckpt_path(path, sizeof path, r->o.out, steps[i]);
        unlink(path);
    }
    free(steps);
    return write_log_files(r);
}

/* The validation loss now; NAN (with a message) on error. */
static double validate(train_run *r, float lambda)
{
    double loss;
    if (bn_train_val_loss(r->m, &r->val, lambda, &loss) != BN_OK) {
        fprintf(stderr, "%sbitnet train: %s\n", r->tty ? "\n" : "", bn_last_error());
        return NAN;
    }
    return loss;
}

static void progress_line(train_run *r, const bn_train_log_row *row, bool final)
{
    char eta[32];
    double per = r->steps_here ? r->step_seconds / (double)r->steps_here : NAN;
    fmt_secs(per * (double)(r->s.steps - r->p.step), eta, sizeof eta);
    char val[48] = "";
    if (!isnan(row->val_loss))
        snprintf(val, sizeof val, "  val %.4f", row->val_loss);
    char lam[32] = "";
    if (r->s.ternary && r->s.lambda_ramp > 0 && row->lambda < 1.0)
        snprintf(lam, sizeof lam, "  lambda %.2f", row->lambda);
    /* on a terminal one line rewritten in place, kept at evaluations and at the end */
    INFO("%sstep %lld/%d  loss %.4f%s  lr %.2e%s  %.0f tok/s  %s left%s",
            r->tty ? "\r\033[K" : "", (long long)row->step, r->s.steps, row->train_loss,
            val, row->lr, lam, row->tokens_per_second, eta,
            r->tty && !final && isnan(row->val_loss) ? "" : "\n");
}

/* The step's hook: the ranks' gradients averaged. */
static bool reduce_grads(bn_train_model *m, void *user)
{
    (void)user;
    if (train_dist_mean_floats(&dist, m->grads, m->n_params))
        return true;
    bn_error_set(BN_ERR_IO, "MPI_Allreduce of the gradients failed");
    return false;
}

static int train_loop(train_run *r)
{
    /* B: the global batch of a micro-batch, b: this rank's share of it */
    const int32_t B = r->s.batch, T = r->s.cfg.n_ctx, A = r->s.accum, b = r->m->B;
    const size_t per = (size_t)b * (size_t)T, global = (size_t)B * (size_t)T;
    bn_train_step_params sp = {.adamw = r->s.adamw, .lr = r->s.lr, .clip_norm = r->s.clip,
                               .n_micro = A, .reduce_grads = dist.size > 1 ? reduce_grads
                                                                           : NULL};
    run_catch_sigint(true);
    int rc = 0;
    while (r->p.step < r->s.steps) {
        const int64_t step = r->p.step;
        /* every rank draws the whole global batch (the same generator everywhere) and
         * keeps its share of each micro-batch */
        for (int32_t a = 0; a < A; a++)
            bn_train_sample_batch(&r->train, B, T, r->bos, &r->p.rng, r->tokens + a * global,
                                  r->targets + a * global);
        for (int32_t a = 0; dist.size > 1 && a < A; a++) {
            size_t from = a * global + (size_t)dist.rank * per;
            memmove(r->tokens + a * per, r->tokens + from, per * sizeof *r->tokens);
            memmove(r->targets + a * per, r->targets + from, per * sizeof *r->targets);
        }
        sp.lambda = r->s.ternary ? bn_lambda_at(r->s.lambda_ramp, step) : 0.0f;
        bn_train_step_result res;
        double t0 = run_now();
        bool stepped = bn_train_step(r->m, &sp, r->tokens, r->targets, &res) == BN_OK;
        if (!stepped)
            fprintf(stderr, "%sbitnet train: %s\n", r->tty ? "\n" : "", bn_last_error());
        if (!train_dist_all(&dist, stepped)) {
            rc = 1;
            break;
        }
        res.loss = (float)train_dist_mean(&dist, res.loss);
        double dt = run_now() - t0;
        r->step_seconds += dt;
        r->steps_here++;
        r->p.seconds += dt;
        r->p.step = r->m->step;
        bn_train_log_row row = {.step = r->p.step, .lr = res.lr, .lambda = sp.lambda,
                                .train_loss = res.loss, .val_loss = NAN,
                                .grad_norm = res.grad_norm,
                                .tokens_per_second = (double)(global * (size_t)A) / dt};
        if (!isfinite(res.loss)) {
            fprintf(stderr, "%sbitnet train: the loss is %g at step %lld: training "
                    "diverged (a lower --lr, or --clip)\n", r->tty ? "\n" : "", res.loss,
                    (long long)row.step);
            rc = 1;
            break;
        }
        const bool last = r->p.step == r->s.steps;
        if (last || r->p.step % r->eval_every == 0) {
            float lam = r->s.ternary ? bn_lambda_at(r->s.lambda_ramp, r->p.step) : 0.0f;
            row.val_loss = validate(r, lam);
            if (isnan(row.val_loss)) {
                rc = 1;
                break;
            }
        }
        if (bn_train_log_add(&r->p, &row) != BN_OK) {
            rc = cli_fail("train");
            break;
        }
        if (r->tty || !isnan(row.val_loss) || r->p.step % 10 == 0 || last)
            progress_line(r, &row, last);
        if (!isnan(row.val_loss) && !write_log_files(r)) {
            rc = 1;
            break;
        }
        const bool stop = train_dist_any(&dist, run_interrupted);
        if (last || stop || (r->save_every > 0 && r->p.step % r->save_every == 0)) {
            if (!save_checkpoint(r)) {
                rc = 1;
                break;
            }
        }
        if (stop && !last) {
            char path[4096];
            ckpt_path(path, sizeof path, r->o.out, r->p.step);
            INFO("%sinterrupted after step %lld of %d: saved %s; continue with "
                    "--resume %s\n", r->tty ? "\n" : "", (long long)r->p.step, r->s.steps,
                    path, path);
            rc = 130;
            break;
        }
    }
    run_catch_sigint(false);
    return rc;
}

static void train_run_free(train_run *r)
{
    bn_train_model_free(r->m);
    bn_tokenizer_free(r->tok);
    bn_train_stream_free(&r->train);
    bn_train_stream_free(&r->val.s);
    bn_train_progress_free(&r->p);
    free(r->tokens);
}

int cmd_train(int argc, char **argv)
{
    const char *cmd = "train";
    train_run r = {0};
    int help_rc = 0;
    int rc = parse_train_opts(argc, argv, &r.o, &help_rc);
    if (rc == -1)
        return help_rc;
    if (rc)
        return rc;
    const train_opts *o = &r.o;
    if (!o->data)
        return cli_usage_error(cmd, "no training text given (--data FILE)");
    if (!o->out)
        return cli_usage_error(cmd, "no output directory given (--out DIR)");
    if (!o->tokenizer && !o->resume)
        return cli_usage_error(cmd, "no tokenizer given (--tokenizer FILE)");
    /* a float run's projections are float: f16 unless asked otherwise */
    bn_qtype type = o->mode && !strcmp(o->mode, "float") ? BN_QT_F16 : BN_QT_I2_S;
    if (o->type && (!bn_qtype_from_name(o->type, &type) ||
                    !(type == BN_QT_I2_S || type == BN_QT_TQ2_0 || type == BN_QT_TQ1_0 ||
                      type == BN_QT_F16 || type == BN_QT_F32)))
        return cli_usage_error(cmd, "--type '%s': i2_s, tq2_0, tq1_0, f16 or f32", o->type);
    if (o->threads > 0 && bn_set_num_threads((int)o->threads) != BN_OK)
        return cli_fail(cmd);
    r.tty = isatty(2);
    if (!train_dist_init(&argc, &argv, &dist))
        return 1;
    rc = 1;
    if (o->resume) {
        if (bn_train_ckpt_load(o->resume, -1, &r.s, &r.p, &r.tok, &r.m) != BN_OK) {
            cli_fail(cmd);
            goto sync;
        }
        if (!check_resume_opts(&r))
            goto sync;
        if (o->tokenizer) {
            bn_tokenizer *t = NULL;
            if (bn_tokenizer_load_file(o->tokenizer, &t) != BN_OK) {
                cli_fail(cmd);
                goto sync;
            }
            bool same = same_tokenizer(t, r.tok);
            bn_tokenizer_free(t);
            if (!same) {
                fprintf(stderr, "bitnet train: --tokenizer %s is not the checkpoint's "
                        "tokenizer\n", o->tokenizer);
                goto sync;
            }
        }
        INFO("resuming %s at step %lld of %d\n", o->resume, (long long)r.p.step,
                r.s.steps);
    } else {
        if (bn_tokenizer_load_file(o->tokenizer, &r.tok) != BN_OK) {
            cli_fail(cmd);
            goto sync;
        }
        if ((rc = settings_from_opts(&r)) != 0)
            goto sync;
        rc = 1;
    }
    if (bn_train_export_check(&r.s.cfg, type) != BN_OK) {
        fprintf(stderr, "bitnet train: --type %s: %s\n", bn_qtype_get(type)->name,
                bn_last_error());
        goto sync;
    }
    if (r.s.batch % dist.size != 0) {
        fprintf(stderr, "bitnet train: --batch %d does not divide among %d ranks\n",
                r.s.batch, dist.size);
        goto sync;
    }
    if (!load_data(&r, o->resume != NULL))
        goto sync;
    if (dist.rank == 0 && !make_dir(o->out))
        goto sync;
    const int32_t local_batch = r.s.batch / dist.size;
    if (!o->resume) {
        if (bn_train_model_new(&r.s.cfg, local_batch, &r.m) != BN_OK) {
            cli_fail(cmd);
            goto sync;
        }
        bn_train_init_params(r.m, r.s.seed);
        r.p.rng = r.s.seed * 0x9e3779b97f4a7c15ULL + 1;
    } else if (r.m->B != local_batch) {
        /* this rank's share of the checkpoint's batch: the same state, fewer rows */
        bn_train_model *m = NULL;
        if (bn_train_model_new(&r.s.cfg, local_batch, &m) != BN_OK) {
            cli_fail(cmd);
            goto sync;
        }
        memcpy(m->params, r.m->params, r.m->n_params * sizeof(float));
        memcpy(m->adam_m, r.m->adam_m, r.m->n_params * sizeof(float));
        memcpy(m->adam_v, r.m->adam_v, r.m->n_params * sizeof(float));
        m->step = r.m->step;
        bn_train_model_free(r.m);
        r.m = m;
    }
    /* the steps on the library's thread count (-t): the same bits for any count */
    if (bn_train_set_threads(r.m, bn_get_num_threads()) != BN_OK) {
        cli_fail(cmd);
        goto sync;
    }
    const size_t n_tok = (size_t)r.s.accum * (size_t)r.s.batch * (size_t)r.s.cfg.n_ctx;
    if (!(r.tokens = malloc(2 * n_tok * sizeof *r.tokens))) {
        fprintf(stderr, "bitnet train: out of memory\n");
        goto sync;
    }
    r.targets = r.tokens + n_tok;
    /* every rank is ready, or all stop here (the first collective call of the run) */
    if (!train_dist_all(&dist, true))
        goto done;
    r.eval_every = o->eval_every > 0 ? o->eval_every : (r.s.steps / 20 > 0 ? r.s.steps / 20 : 1);
    r.save_every = o->save_every > 0 ? o->save_every : 0;
    r.keep = o->keep > 0 ? o->keep : 2;
    {
        const bn_train_config *c = &r.s.cfg;
        char mem[32];
        size_t n_weights = r.m->n_params;
        INFO("model: %s, dim %d, %d layers, %d heads (%d kv), ffn %d, ctx %d, "
                "vocabulary %d: %.2f M parameters\n", r.s.ternary ? "ternary" : "float",
                c->n_embd, c->n_layer, c->n_head, c->n_head_kv, c->n_ff, c->n_ctx,
                c->n_vocab, (double)n_weights / 1e6);
        INFO("memory: %s in one allocation (weights, gradients, AdamW moments, "
                "activations for a batch of %d x %d%s)\n",
                cli_bytes(r.m->bytes, mem, sizeof mem), local_batch, c->n_ctx,
                dist.size > 1 ? " on each rank" : "");
        if (dist.size > 1)
            INFO("data parallel: %d ranks, %d sequences of each micro-batch on each\n",
                 dist.size, local_batch);
        INFO("training: %d steps of %d x %d x %d tokens, %s schedule, lr %.3g, "
                "seed %llu\n", r.s.steps, r.s.accum, r.s.batch, c->n_ctx,
                r.s.lr.kind == BN_LR_TWO_STAGE ? "two-stage" : "cosine", r.s.lr.lr_max,
                (unsigned long long)r.s.seed);
    }
    rc = train_loop(&r);
    if (rc == 0 && dist.rank == 0) {
        char path[4096];
        path_in(path, sizeof path, o->out, "model.gguf");
        bn_train_export_params ep = bn_train_export_default_params();
        ep.proj_type = type;
        if (bn_train_export(path, r.m, r.s.ternary, r.tok, &ep) != BN_OK) {
            rc = cli_fail(cmd);
            goto done;
        }
        char mem[32];
        INFO("wrote %s; peak memory %s\n", path,
                cli_bytes(run_peak_rss(), mem, sizeof mem));
    }
    goto done;
sync:
    /* a rank that failed before training meets the others at their first collective
     * call, so that all stop */
    train_dist_all(&dist, false);
done:
    train_run_free(&r);
    train_dist_finalize(&dist);
    return rc;
}

/* ------------------------------------------------------------------ export */

/* Whether path is a training checkpoint (a GGUF of arch bitnet-train); false for
 * anything else, which the caller then treats as a model file. */
static bool is_checkpoint(const char *path)
{
    bn_gguf *g = NULL;
    if (bn_gguf_open(path, &g) != BN_OK)
        return false;
    const char *arch = NULL;
    bool yes = bn_gguf_find_kv(g, "general.architecture") >= 0 &&
               bn_gguf_get_str(g, "general.architecture", &arch) == BN_OK &&
               strcmp(arch, "bitnet-train") == 0;
    bn_gguf_close(g);
    return yes;
}

/* A checkpoint's model written as a GGUF file at path; false with a message. */
static bool export_ckpt(const char *in, const char *path, const bn_train_export_params *ep,
                        bool quiet)
{
    bn_train_settings s;
    bn_train_progress p;
    bn_tokenizer *tok = NULL;
    bn_train_model *m = NULL;
    if (bn_train_ckpt_load(in, 1, &s, &p, &tok, &m) != BN_OK) {
        cli_fail("export");
        return false;
    }
    bool ok = bn_train_export(path, m, s.ternary, tok, ep) == BN_OK;
    if (!ok)
        cli_fail("export");
    else if (!quiet)
        fprintf(stderr, "wrote %s: step %lld of a %s run, %s projections\n", path,
                (long long)p.step, s.ternary ? "ternary" : "float",
                bn_qtype_get(ep->proj_type)->name);
    bn_train_model_free(m);
    bn_tokenizer_free(tok);
    bn_train_progress_free(&p);
    return ok;
}

int cmd_export(int argc, char **argv)
{
    const char *cmd = "export";
    const char *in = NULL, *out = NULL, *name = NULL, *hf = NULL;
    bn_qtype type = BN_QT_I2_S, embd = BN_QT_F16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a))
            return cli_help("export");
        if ((!strcmp(a, "--type") || !strcmp(a, "--embd-type")) && i + 1 < argc) {
            bn_qtype *dst = !strcmp(a, "--type") ? &type : &embd;
            if (!bn_qtype_from_name(argv[++i], dst))
                return cli_usage_error(cmd, "unknown type '%s' for %s", argv[i], a);
        } else if (!strcmp(a, "--name") && i + 1 < argc) {
            name = argv[++i];
        } else if (!strcmp(a, "--hf") && i + 1 < argc) {
            hf = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(cmd, "unknown option '%s' (or it needs a value)", a);
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
    }
    if (!in)
        return cli_usage_error(cmd, "no checkpoint given");
    if (hf && out)
        return cli_usage_error(cmd, "--hf DIR writes a folder: no OUT.gguf with it");
    if (!hf && !out)
        return cli_usage_error(cmd, "no output given (OUT.gguf, or --hf DIR)");
    if (!(type == BN_QT_I2_S || type == BN_QT_TQ2_0 || type == BN_QT_TQ1_0 ||
          type == BN_QT_F16 || type == BN_QT_F32))
        return cli_usage_error(cmd, "--type %s: i2_s, tq2_0, tq1_0, f16 or f32",
                               bn_qtype_get(type)->name);
    if (!(embd == BN_QT_F32 || embd == BN_QT_F16 || embd == BN_QT_BF16 ||
          embd == BN_QT_Q8_0 || embd == BN_QT_Q6_K))
        return cli_usage_error(cmd, "--embd-type %s: f32, f16, bf16, q8_0 or q6_k",
                               bn_qtype_get(embd)->name);
    bn_train_export_params ep = {.proj_type = type, .embd_type = embd, .name = name};
    if (!hf)
        return export_ckpt(in, out, &ep, false) ? 0 : 1;
    /* --hf: a checkpoint goes through a GGUF model first (I2_S: one scale per tensor,
     * as the Hugging Face layout holds it), in a temporary file removed afterwards */
    const char *model = in;
    char tmp[] = "/tmp/bitnet-export-XXXXXX";
    char path[64] = "";
    if (is_checkpoint(in)) {
        if (!mkdtemp(tmp)) {
            fprintf(stderr, "bitnet export: a temporary directory: %s\n", strerror(errno));
            return 1;
        }
        snprintf(path, sizeof path, "%s/model.gguf", tmp);
        ep.proj_type = BN_QT_I2_S;
        if (!export_ckpt(in, path, &ep, true)) {
            rmdir(tmp);
            return 1;
        }
        model = path;
    }
    int rc = 0;
    if (bn_export_hf(model, hf, NULL) != BN_OK)
        rc = cli_fail(cmd);
    else
        fprintf(stderr, "wrote %s/: config.json, model.safetensors, tokenizer.json, "
                "tokenizer_config.json\n", hf);
    if (path[0]) {
        unlink(path);
        rmdir(tmp);
    }
    return rc;
}
