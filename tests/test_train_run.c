/*
 * test_train_run.c - what a training run keeps and gives (src/train/: data.c,
 * checkpoint.c, export.c), on a small model with the tokenizer of a model written by
 * `bitnet synth` ($BITNET names the program):
 * - resume: 8 steps straight, and 4 steps + checkpoint + load + 4 steps, give the same
 *   parameters, AdamW moments, losses and data position, bit for bit (ternary mode with
 *   a lambda ramp, two-stage schedule, gradient accumulation);
 * - checkpoints that are truncated, damaged, of another architecture or format version,
 *   or not sealed, are refused with a message that says so;
 * - export: the engine's logits for the exported model (I2_S projections, f32
 *   embedding, f32 KV cache) equal the training forward's in ternary mode: the
 *   log-probabilities of every position within 1e-5 (absolute, in nats; measured
 *   3.7e-7: the engine sums the logits' floats in another order than the training
 *   code's float sums, and attention's in float where training sums in double, but
 *   both compute the same integer dot products of the same int8 activations
 *   and ternary weights, so no quantization decision differs unless an input lies
 *   within rounding of a code boundary, which would show as an error of 1e-3 or more);
 * - sampling: windows start with BOS when the tokenizer wants one, targets follow.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "io/gguf.h"
#include "train/run.h"

static char tmp_dir[] = "/tmp/bitnet-test-train-run-XXXXXX";

static bn_train_config small_config(int32_t n_vocab)
{
    bn_train_config c = bn_train_default_config();
    c.n_embd = 128;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.n_ff = 256;
    c.n_ctx = 16;
    c.n_vocab = n_vocab;
    return c;
}

static bn_train_settings small_settings(int32_t n_vocab)
{
    bn_train_settings s = {0};
    s.cfg = small_config(n_vocab);
    s.batch = 2;
    s.accum = 2;
    s.steps = 8;
    s.lr = (bn_lr_schedule){.lr_max = 3e-3, .lr_min = 3e-4, .warmup = 2, .steps = 8,
                            .kind = BN_LR_TWO_STAGE, .drop_step = 5, .lr_stage2 = 1e-3};
    s.adamw = bn_adamw_default_params();
    s.clip = 1.0;
    s.ternary = true;
    s.lambda_ramp = 3;
    s.seed = 11;
    return s;
}

/* Steps from..to-1 as `bitnet train` takes them; losses[step] recorded. */
static bool run_steps(bn_train_model *m, const bn_train_settings *s,
                      const bn_train_stream *data, bn_token bos, uint64_t *rng,
                      int64_t to, float *losses)
{
    const size_t per = (size_t)s->batch * (size_t)s->cfg.n_ctx;
    int32_t *tk = malloc(2 * per * (size_t)s->accum * sizeof *tk);
    int32_t *tg = tk + per * (size_t)s->accum;
    bn_train_step_params sp = {.adamw = s->adamw, .lr = s->lr, .clip_norm = s->clip,
                               .n_micro = s->accum};
    bool ok = true;
    while (ok && m->step < to) {
        for (int32_t a = 0; a < s->accum; a++)
            bn_train_sample_batch(data, s->batch, s->cfg.n_ctx, bos, rng, tk + a * per,
                                  tg + a * per);
        sp.lambda = bn_lambda_at(s->lambda_ramp, m->step);
        bn_train_step_result res;
        int64_t step = m->step;
        ok = bn_train_step(m, &sp, tk, tg, &res) == BN_OK;
        losses[step] = res.loss;
    }
    free(tk);
    return ok;
}

static void test_sampling(const bn_train_stream *data, bn_token bos)
{
    uint64_t rng = 5;
    int32_t tk[3 * 16], tg[3 * 16];
    bn_train_sample_batch(data, 3, 16, bos, &rng, tk, tg);
    bool ok = true;
    for (int b = 0; b < 3; b++) {
        /* find the window's offset from its targets */
        const int32_t *t = tg + b * 16, *k = tk + b * 16;
        bool found = false;
        for (size_t o = 0; o + 16 <= data->n && !found; o++)
            if (memcmp(data->ids + o, t, 16 * sizeof *t) == 0)
                found = true;
        ok = ok && found && k[0] == bos && memcmp(k + 1, t, 15 * sizeof *t) == 0;
    }
    CHECK(ok, "windows: BOS, then the targets shifted by one, cut from the stream");
    uint64_t rng2 = 5;
    int32_t tk2[3 * 16], tg2[3 * 16];
    bn_train_sample_batch(data, 3, 16, bos, &rng2, tk2, tg2);
    CHECK(rng2 == rng && memcmp(tk, tk2, sizeof tk) == 0 && memcmp(tg, tg2, sizeof tg) == 0,
          "the same generator state draws the same windows");
}

static void test_resume(const bn_tokenizer *tok, const bn_train_stream *data, bn_token bos)
{
    bn_train_settings s = small_settings(bn_tokenizer_n_vocab(tok));
    bn_train_model *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(bn_train_model_new(&s.cfg, s.batch, &a));
    CHECK_OK(bn_train_model_new(&s.cfg, s.batch, &b));
    if (!a || !b)
        return;
    bn_train_init_params(a, s.seed);
    bn_train_init_params(b, s.seed);
    float la[8] = {0}, lb[8] = {0};
    uint64_t ra = 99, rb = 99;
    CHECK(run_steps(a, &s, data, bos, &ra, 8, la), "8 steps: %s", bn_last_error());
    CHECK(run_steps(b, &s, data, bos, &rb, 4, lb), "4 steps: %s", bn_last_error());
    char path[512];
    snprintf(path, sizeof path, "%s/resume.ckpt", tmp_dir);
    bn_train_progress p = {.step = b->step, .rng = rb, .seconds = 1.5};
    bn_train_log_row row = {.step = 4, .lr = 1e-3, .train_loss = lb[3], .val_loss = NAN};
    CHECK_OK(bn_train_log_add(&p, &row));
    CHECK_OK(bn_train_ckpt_save(path, &s, &p, tok, b));
    bn_train_progress_free(&p);
    bn_train_settings s2;
    bn_train_progress p2;
    bn_tokenizer *tok2 = NULL;
    CHECK_OK(bn_train_ckpt_load(path, -1, &s2, &p2, &tok2, &c));
    if (!c)
        goto done;
    CHECK(memcmp(&s2.cfg, &s.cfg, sizeof s.cfg) == 0 && s2.batch == s.batch &&
          s2.accum == s.accum && s2.steps == s.steps && s2.lr.kind == s.lr.kind &&
          s2.lr.drop_step == s.lr.drop_step && s2.lr.lr_stage2 == s.lr.lr_stage2 &&
          s2.lr.lr_max == s.lr.lr_max && s2.lr.warmup == s.lr.warmup &&
          s2.adamw.weight_decay == s.adamw.weight_decay && s2.ternary && s2.clip == s.clip &&
          s2.lambda_ramp == s.lambda_ramp && s2.seed == s.seed,
          "the settings come back");
    CHECK(p2.step == 4 && p2.rng == rb && p2.seconds == 1.5 && p2.n_log == 1 &&
          p2.log[0].train_loss == lb[3] && isnan(p2.log[0].val_loss),
          "the progress and the log come back");
    CHECK(tok2 && bn_tokenizer_n_vocab(tok2) == bn_tokenizer_n_vocab(tok),
          "the tokenizer comes back");
    CHECK(run_steps(c, &s2, data, bos, &p2.rng, 8, lb), "4 more steps: %s", bn_last_error());
    CHECK(memcmp(la, lb, sizeof la) == 0, "the losses of steps 5-8 are the same bits");
    CHECK(p2.rng == ra, "the data position is the same");
    CHECK(memcmp(a->params, c->params, a->n_params * sizeof(float)) == 0 &&
          memcmp(a->adam_m, c->adam_m, a->n_params * sizeof(float)) == 0 &&
          memcmp(a->adam_v, c->adam_v, a->n_params * sizeof(float)) == 0 && a->step == c->step,
          "parameters and moments after 8 steps: the same bits, resumed or not");
    bn_train_progress_free(&p2);
done:
    bn_tokenizer_free(tok2);
    bn_train_model_free(a);
    bn_train_model_free(b);
    bn_train_model_free(c);
}

/* Writes bytes to path. */
static void put_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static unsigned char *get_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    *n = fread(buf, 1, (size_t)size, f);
    fclose(f);
    return buf;
}

/* Loading path fails, with a message containing `want`. */
static void refused(const char *path, const char *want, const char *what)
{
    bn_train_settings s;
    bn_train_progress p;
    bn_tokenizer *t = NULL;
    bn_train_model *m = NULL;
    bn_status st = bn_train_ckpt_load(path, -1, &s, &p, &t, &m);
    CHECK(st != BN_OK && m == NULL && t == NULL && strstr(bn_last_error(), want) &&
          strstr(bn_last_error(), path),
          "%s: refused saying '%s' (got: %s)", what, want, bn_last_error());
}

/* A sealed GGUF with one key changed from what a checkpoint has. */
static void sealed_with(const char *path, const char *arch, uint32_t version)
{
    bn_gguf_writer *w = NULL;
    CHECK_OK(bn_gguf_writer_create(&w));
    CHECK_OK(bn_gguf_writer_set_str(w, "general.architecture", arch));
    CHECK_OK(bn_gguf_writer_set_u32(w, "train.format_version", version));
    CHECK_OK(bn_gguf_writer_write_sealed(w, path, NULL, NULL));
    bn_gguf_writer_free(w);
}

static void test_bad_checkpoints(const bn_tokenizer *tok, const char *model_path)
{
    bn_train_settings s = small_settings(bn_tokenizer_n_vocab(tok));
    bn_train_model *m = NULL;
    CHECK_OK(bn_train_model_new(&s.cfg, 1, &m));
    if (!m)
        return;
    bn_train_init_params(m, 1);
    char good[512], bad[512];
    snprintf(good, sizeof good, "%s/good.ckpt", tmp_dir);
    snprintf(bad, sizeof bad, "%s/bad.ckpt", tmp_dir);
    bn_train_progress p = {0};
    CHECK_OK(bn_train_ckpt_save(good, &s, &p, tok, m));
    bn_train_model_free(m);
    size_t n = 0;
    unsigned char *bytes = get_file(good, &n);
    CHECK(bytes && n > 100000, "checkpoint of %zu bytes", n);
    if (!bytes)
        return;
    put_file(bad, bytes, n - 1000);
    refused(bad, "no checksum at its end", "truncated");
    put_file(bad, bytes, 10);
    refused(bad, "no checksum at its end", "10 bytes");
    put_file(bad, bytes, 0);
    refused(bad, "no checksum at its end", "empty");
    bytes[n / 2] ^= 0x10;
    put_file(bad, bytes, n);
    refused(bad, "checksum mismatch", "one bit flipped in the weights");
    bytes[n / 2] ^= 0x10;
    bytes[40] ^= 0x01;
    put_file(bad, bytes, n);
    refused(bad, "checksum mismatch", "one bit flipped in the header");
    free(bytes);
    refused(model_path, "no checksum at its end", "a model file");
    sealed_with(bad, "bitnet-b1.58", 1);
    refused(bad, "not a training checkpoint", "another architecture");
    sealed_with(bad, "bitnet-train", 2);
    refused(bad, "format version 2", "a later format version");
    sealed_with(bad, "bitnet-train", 1);
    refused(bad, "is missing", "keys missing");
    snprintf(bad, sizeof bad, "%s/none.ckpt", tmp_dir);
    refused(bad, "No such file", "a missing file");
}

static void test_export_logits(const bn_tokenizer *tok, const bn_train_stream *data,
                               bn_token bos)
{
    bn_train_settings s = small_settings(bn_tokenizer_n_vocab(tok));
    s.accum = 1;
    s.lambda_ramp = 0;
    bn_train_model *m = NULL;
    CHECK_OK(bn_train_model_new(&s.cfg, 1, &m));
    if (!m)
        return;
    bn_train_init_params(m, 7);
    float losses[8];
    uint64_t rng = 3;
    CHECK(run_steps(m, &s, data, bos, &rng, 6, losses), "6 steps: %s", bn_last_error());
    const int32_t T = s.cfg.n_ctx, V = s.cfg.n_vocab;
    int32_t tk[16], tg[16];
    bn_train_sample_batch(data, 1, T, bos, &rng, tk, tg);
    float loss;
    CHECK_OK(bn_train_forward(m, tk, tg, 1.0f, &loss));
    char path[512];
    snprintf(path, sizeof path, "%s/export.gguf", tmp_dir);
    bn_train_export_params ep = bn_train_export_default_params();
    ep.embd_type = BN_QT_F32;
    CHECK_OK(bn_train_export(path, m, true, tok, &ep));
    bn_model *em = NULL;
    bn_context *ctx = NULL;
    CHECK_OK(bn_model_load(path, NULL, &em));
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = T;
    cp.kv_type = BN_F32;
    cp.logits_all = true;
    if (em)
        CHECK_OK(bn_context_create(em, &cp, &ctx));
    if (ctx) {
        bn_model_info info;
        bn_model_get_info(em, &info);
        CHECK(info.proj_type == BN_QT_I2_S && info.act_quant && info.n_layer == 2 &&
              info.n_embd == 128 && info.n_head_kv == 2 && info.tied_output &&
              strcmp(info.arch, "bitnet-b1.58") == 0, "the exported model's shape");
        CHECK_OK(bn_eval(ctx, tk, T));
        double worst = 0.0;
        for (int32_t t = 0; t < T; t++) {
            const float *l = bn_get_logits(ctx, t);
            double mx = l[0], sum = 0.0;
            for (int32_t v = 1; v < V; v++)
                mx = l[v] > mx ? l[v] : mx;
            for (int32_t v = 0; v < V; v++)
                sum += exp((double)l[v] - mx);
            for (int32_t v = 0; v < V; v++) {
                double engine = (double)l[v] - mx - log(sum);
                double train = log((double)m->probs[(size_t)t * V + v]);
                double d = fabs(engine - train);
                worst = d > worst ? d : worst;
            }
        }
        printf("test_train_run: exported model's log-probabilities within %.2e of the "
               "training forward's\n", worst);
        CHECK(worst < 1e-5, "log-probabilities differ by %.3e", worst);
    }
    bn_context_free(ctx);
    bn_model_free(em);
    /* a shape the engine cannot run as I2_S is refused before anything is written */
    s.cfg.n_embd = 64;
    s.cfg.n_ff = 192;
    CHECK(bn_train_export_check(&s.cfg, BN_QT_I2_S) == BN_ERR_SHAPE &&
          strstr(bn_last_error(), "multiple of 128"), "i2_s needs rows of 128");
    CHECK(bn_train_export_check(&s.cfg, BN_QT_F16) == BN_OK, "f16 takes any shape");
    bn_train_model_free(m);
}

int main(void)
{
    const char *bitnet = getenv("BITNET");
    if (!bitnet || access(bitnet, X_OK) != 0)
        check_skip("test_train_run", "$BITNET must name the bitnet program");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    bn_log_set_level(BN_LOG_ERROR);
    char model[512], cmd[1200];
    snprintf(model, sizeof model, "%s/tok.gguf", tmp_dir);
    snprintf(cmd, sizeof cmd, "'%s' synth '%s' --layers 1 --seed 2 > /dev/null", bitnet,
             model);
    bn_tokenizer *tok = NULL;
    CHECK(system(cmd) == 0, "bitnet synth");
    CHECK_OK(bn_tokenizer_load_file(model, &tok));
    if (!tok)
        return check_summary("test_train_run");
    /* a stream of token ids with some structure (a model can learn it) */
    bn_train_stream data = {.n = 4000};
    data.ids = bn_malloc(data.n * sizeof *data.ids, "test");
    const int32_t V = bn_tokenizer_n_vocab(tok);
    for (size_t i = 0; i < data.n; i++)
        data.ids[i] = (bn_token)((i * 7 + (i / 5) * 3) % (size_t)(V - 10));
    bn_token bos = bn_tokenizer_bos(tok);
    CHECK(bos >= 0, "the tokenizer has BOS");
    test_sampling(&data, bos);
    test_resume(tok, &data, bos);
    test_bad_checkpoints(tok, model);
    test_export_logits(tok, &data, bos);
    bn_train_stream_free(&data);
    bn_tokenizer_free(tok);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    CHECK(system(cmd) == 0, "cleaning up");
    CHECK(bn_mem_leak_report() == 0, "no leaks");
    return check_summary("test_train_run");
}
