/*
 * test_forward.c - the forward pass's own consistency and its errors, on small models
 * this test writes with the GGUF writer:
 *   - a prefill of N tokens gives the same logits as N single-token decodes, as a
 *     prompt split over several batches, and as 1, 2 or 3 threads (bit for bit: every
 *     value is computed by one thread in a fixed order, and a token's computation does
 *     not depend on the batch it is in);
 *   - TQ1_0 and TQ2_0 files of the same weights give identical logits;
 *   - truncating the context and evaluating again reproduces the logits;
 *   - a full context, a bad token, a missing tensor or key, a wrong shape, an unknown
 *     architecture and a truncated file are errors that name the problem;
 *   - every allocation of loading and of context creation can fail cleanly;
 *   - sequences decoded together (bn_decode: prefills joining decodes, rows grouped or
 *     interleaved, steps cut into passes) get exactly the tokens and logits each gets
 *     alone, for 1 to 8 sequences; a refused batch changes nothing; truncating one
 *     sequence leaves the others.
 * Agreement with independent references is test_model_ref's job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"

typedef struct tm_opts {
    const char *arch;
    int   proj_type, embd_type;
    int   E, F, H, HKV, L, V;
    const char *skip_tensor;  /* leave this tensor out */
    const char *skip_key;     /* leave this metadata key out */
    const char *bad_shape;    /* write this tensor with one row too many */
    const char *ffn_act;      /* "<arch>.ffn_activation" value, or NULL */
    const char *rope_scaling; /* "<arch>.rope.scaling.type" value, or NULL */
    uint32_t seed;
    const char *mixed;        /* tensors whose name has this in it get a scale per block of
                               * 256 (1, 1.25, 1.5 times theirs in turn), or NULL */
} tm_opts;

static tm_opts tm_default(int proj_type)
{
    tm_opts o = {"bitnet-b1.58", proj_type, BN_QT_F16, 256, 512, 4, 2, 2, 300,
                 NULL, NULL, NULL, NULL, NULL, 11, NULL};
    return o;
}

static uint32_t rng_state;
static uint32_t rng(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}
static float rng_unit(void) { return (float)(rng() & 0xffff) / 65536.0f; }

static char tmp_dir[] = "/tmp/bn_test_forward_XXXXXX";

/* The writer keeps pointers to tensor data until the file is written. */
static void *held[256];
static int n_held;
static void release_held(void)
{
    for (int i = 0; i < n_held; i++)
        free(held[i]);
    n_held = 0;
}

/* Adds one tensor of n_out rows of n_in (n_out 0: a vector) holding `kind` values:
 * 0 ternary * a random f16-exact scale, 1 norm weights near 1, 2 small embeddings. */
static bool add_tensor(bn_gguf_writer *w, const tm_opts *o, const char *name, int type,
                       int64_t n_in, int64_t n_out, int kind)
{
    if (o->skip_tensor && strcmp(o->skip_tensor, name) == 0)
        return true;
    int64_t rows = n_out ? n_out : 1;
    if (o->bad_shape && strcmp(o->bad_shape, name) == 0)
        rows++;
    float *x = malloc((size_t)(n_in * rows) * sizeof *x);
    float scale = bn_f16_to_f32(bn_f32_to_f16(0.5f + rng_unit()));
    const bool mixed = o->mixed && strstr(name, o->mixed);
    for (int64_t i = 0; i < n_in * rows; i++) {
        if (kind == 0)
            x[i] = (float)((int)(rng() % 3) - 1) * scale *
                   (mixed ? 1.0f + 0.25f * (float)(i / 256 % 3) : 1.0f);
        else if (kind == 1)
            x[i] = 0.9f + 0.2f * rng_unit();
        else
            x[i] = 0.2f * (rng_unit() - 0.5f);
    }
    size_t nb = 0;
    bool ok = bn_qtype_tensor_size(type, n_in, rows, &nb) == BN_OK;
    void *data = ok ? malloc(nb) : NULL;
    ok = data && bn_quantize(type, x, n_in, rows, data, nb) == BN_OK;
    int64_t ne[2] = {n_in, rows};
    ok = ok && bn_gguf_writer_add_tensor(w, name, type, n_out ? 2 : 1, ne, data, nb) == BN_OK;
    free(x);
    if (data && n_held < 256)
        held[n_held++] = data;
    else
        free(data);
    return ok;
}

static bool set_u32(bn_gguf_writer *w, const tm_opts *o, const char *key, uint32_t v)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", o->arch, key);
    if (o->skip_key && strcmp(o->skip_key, key) == 0)
        return true;
    return bn_gguf_writer_set_u32(w, full, v) == BN_OK;
}

/* Writes a model with random weights; true on success. */
static bool write_model(const char *path, const tm_opts *o)
{
    rng_state = o->seed;
    bn_gguf_writer *w = NULL;
    if (bn_gguf_writer_create(&w) != BN_OK)
        return false;
    char key[128];
    bool ok = bn_gguf_writer_set_str(w, "general.architecture", o->arch) == BN_OK;
    ok = ok && set_u32(w, o, "embedding_length", (uint32_t)o->E);
    ok = ok && set_u32(w, o, "feed_forward_length", (uint32_t)o->F);
    ok = ok && set_u32(w, o, "block_count", (uint32_t)o->L);
    ok = ok && set_u32(w, o, "attention.head_count", (uint32_t)o->H);
    ok = ok && set_u32(w, o, "attention.head_count_kv", (uint32_t)o->HKV);
    ok = ok && set_u32(w, o, "context_length", 64);
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", o->arch);
    if (!o->skip_key || strcmp(o->skip_key, "attention.layer_norm_rms_epsilon") != 0)
        ok = ok && bn_gguf_writer_set_f32(w, key, 1e-5f) == BN_OK;
    snprintf(key, sizeof key, "%s.rope.freq_base", o->arch);
    ok = ok && bn_gguf_writer_set_f32(w, key, 500000.0f) == BN_OK;
    if (o->ffn_act) {
        snprintf(key, sizeof key, "%s.ffn_activation", o->arch);
        ok = ok && bn_gguf_writer_set_str(w, key, o->ffn_act) == BN_OK;
    }
    if (o->rope_scaling) {
        snprintf(key, sizeof key, "%s.rope.scaling.type", o->arch);
        ok = ok && bn_gguf_writer_set_str(w, key, o->rope_scaling) == BN_OK;
    }
    int64_t E = o->E, F = o->F, kv = (int64_t)o->E / o->H * o->HKV;
    bool sub = strncmp(o->arch, "bitnet", 6) == 0;
    ok = ok && add_tensor(w, o, "token_embd.weight", o->embd_type, E, o->V, 2);
    char name[96];
    for (int l = 0; ok && l < o->L; l++) {
#define T(suffix, type, nin, nout, kind)                                            \
        snprintf(name, sizeof name, "blk.%d." suffix ".weight", l);                 \
        ok = ok && add_tensor(w, o, name, type, nin, nout, kind);
        T("attn_norm", BN_QT_F32, E, 0, 1)
        T("attn_q", o->proj_type, E, E, 0)
        T("attn_k", o->proj_type, E, kv, 0)
        T("attn_v", o->proj_type, E, kv, 0)
        T("attn_output", o->proj_type, E, E, 0)
        T("ffn_norm", BN_QT_F32, E, 0, 1)
        T("ffn_gate", o->proj_type, E, F, 0)
        T("ffn_up", o->proj_type, E, F, 0)
        T("ffn_down", o->proj_type, F, E, 0)
        if (sub) {
            T("attn_sub_norm", BN_QT_F32, E, 0, 1)
            T("ffn_sub_norm", BN_QT_F32, F, 0, 1)
        }
#undef T
    }
    ok = ok && add_tensor(w, o, "output_norm.weight", BN_QT_F32, E, 0, 1);
    ok = ok && bn_gguf_writer_write(w, path, NULL, NULL) == BN_OK;
    if (!ok)
        fprintf(stderr, "write_model: %s\n", bn_last_error());
    bn_gguf_writer_free(w);
    release_held();
    return ok;
}

static char *model_path(const char *name)
{
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", tmp_dir, name);
    return p;
}

/* The output layer type and load mode run_logits asks for (bn_model_params). */
static int g_output_type = -1;
static bn_load_mode g_load = BN_LOAD_AUTO;
static bool g_keep_tq1 = false;
static bool g_keep_tq2 = false;

/* Logits of every position of `tokens`: in batches of `batch` (0: all at once) or one
 * token at a time (`batch` 1), with `threads` threads. A new array of n * V floats. */
static float *run_logits(const char *path, const bn_token *tokens, int n, int batch,
                         int threads, bn_dtype kv, bn_act_quant aq)
{
    bn_set_num_threads(threads);
    bn_model_params mp = bn_model_default_params();
    mp.act_quant = aq;
    mp.output_type = g_output_type;
    mp.load = g_load;
    mp.keep_tq1_0 = g_keep_tq1;
    mp.keep_tq2_0 = g_keep_tq2;
    bn_model *m = NULL;
    bn_context *c = NULL;
    CHECK_OK(bn_model_load(path, &mp, &m));
    if (!m)
        return NULL;
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 64;
    cp.kv_type = kv;
    cp.logits_all = true;
    cp.n_batch = batch > 0 ? batch : n;
    CHECK_OK(bn_context_create(m, &cp, &c));
    int V = bn_model_n_vocab(m);
    float *out = calloc((size_t)n * (size_t)V, sizeof *out);
    int step = batch > 0 ? batch : n;
    for (int i = 0; c && i < n; i += step) {
        int k = n - i < step ? n - i : step;
        CHECK_OK(bn_eval(c, tokens + i, k));
        for (int j = 0; j < k; j++) {
            const float *l = bn_get_logits(c, j);
            CHECK(l != NULL, "logits of token %d of the batch", j);
            if (l)
                memcpy(out + (size_t)(i + j) * V, l, (size_t)V * sizeof(float));
        }
    }
    bn_context_free(c);
    bn_model_free(m);
    return out;
}

static int count_diff(const float *a, const float *b, size_t n)
{
    int d = 0;
    for (size_t i = 0; i < n; i++)
        d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

static void test_consistency(void)
{
    const int n = 24;
    bn_token tokens[24];
    for (int i = 0; i < n; i++)
        tokens[i] = (bn_token)((i * 37 + 5) % 300);
    /* H / HKV query heads per kv head: 2 by default; 1 and 8 too, since attention
     * takes the queries of a kv head together (several tokens of one head, or four
     * heads of one token at a time) */
    struct { int type; bn_act_quant aq; bn_dtype kv; const char *file; int H, HKV; } cases[] = {
        {BN_QT_I2_S, BN_ACT_QUANT_AUTO, BN_F16, "c_i2s.gguf", 4, 2},
        {BN_QT_TQ2_0, BN_ACT_QUANT_AUTO, BN_F32, "c_tq2.gguf", 4, 2},
        {BN_QT_F16, BN_ACT_QUANT_OFF, BN_F16, "c_f16.gguf", 4, 2},
        {BN_QT_F32, BN_ACT_QUANT_ON, BN_F32, "c_f32.gguf", 4, 2},
        {BN_QT_I2_S, BN_ACT_QUANT_AUTO, BN_F16, "c_mha.gguf", 4, 4},
        {BN_QT_I2_S, BN_ACT_QUANT_AUTO, BN_F16, "c_gqa8.gguf", 8, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        tm_opts o = tm_default(cases[ci].type);
        o.H = cases[ci].H;
        o.HKV = cases[ci].HKV;
        const char *path = model_path(cases[ci].file);
        CHECK(write_model(path, &o), "writing %s", path);
        size_t total = (size_t)n * 300;
        float *prefill = run_logits(path, tokens, n, 0, 2, cases[ci].kv, cases[ci].aq);
        float *decode = run_logits(path, tokens, n, 1, 2, cases[ci].kv, cases[ci].aq);
        float *split = run_logits(path, tokens, n, 7, 2, cases[ci].kv, cases[ci].aq);
        float *one = run_logits(path, tokens, n, 0, 1, cases[ci].kv, cases[ci].aq);
        float *three = run_logits(path, tokens, n, 0, 3, cases[ci].kv, cases[ci].aq);
        if (!prefill || !decode || !split || !one || !three)
            continue;
        CHECK(count_diff(prefill, decode, total) == 0,
              "%s: prefill vs %d decodes: %d logits differ", cases[ci].file, n,
              count_diff(prefill, decode, total));
        CHECK(count_diff(prefill, split, total) == 0, "%s: batches of 7: %d differ",
              cases[ci].file, count_diff(prefill, split, total));
        CHECK(count_diff(prefill, one, total) == 0, "%s: 1 vs 2 threads: %d differ",
              cases[ci].file, count_diff(prefill, one, total));
        CHECK(count_diff(prefill, three, total) == 0, "%s: 3 vs 2 threads: %d differ",
              cases[ci].file, count_diff(prefill, three, total));
        double mx = 0;
        for (size_t i = 0; i < total; i++)
            mx = fabs(prefill[i]) > mx ? fabs(prefill[i]) : mx;
        CHECK(mx > 1e-3 && mx < 1e3, "%s: logits are of a sane size (max |l| %g)",
              cases[ci].file, mx);
        free(prefill);
        free(decode);
        free(split);
        free(one);
        free(three);
    }
    bn_set_num_threads(0);
}

/* TQ1_0 and TQ2_0 hold the same codes and block scales: identical logits, with the
 * TQ1_0 projections kept (their own kernels, prefill and decode) and held as TQ2_0. */
static void test_tq_same(void)
{
    bn_token tokens[10] = {1, 2, 3, 4, 5, 250, 7, 8, 9, 10};
    tm_opts o1 = tm_default(BN_QT_TQ1_0), o2 = tm_default(BN_QT_TQ2_0);
    const char *p1 = model_path("tq1.gguf"), *p2 = model_path("tq2.gguf");
    CHECK(write_model(p1, &o1) && write_model(p2, &o2), "writing the TQ models");
    float *b = run_logits(p2, tokens, 10, 0, 2, BN_F16, BN_ACT_QUANT_AUTO);
    float *a = run_logits(p1, tokens, 10, 0, 2, BN_F16, BN_ACT_QUANT_AUTO);
    float *ad = run_logits(p1, tokens, 10, 1, 1, BN_F16, BN_ACT_QUANT_AUTO);
    g_keep_tq1 = true;
    float *k = run_logits(p1, tokens, 10, 0, 2, BN_F16, BN_ACT_QUANT_AUTO);
    float *kd = run_logits(p1, tokens, 10, 1, 1, BN_F16, BN_ACT_QUANT_AUTO);
    g_keep_tq1 = false;
    if (a && ad && k && kd && b) {
        CHECK(count_diff(k, b, 10 * 300) == 0 && count_diff(kd, b, 10 * 300) == 0,
              "tq1_0 kept vs tq2_0: %d (prefill) and %d (decode) logits differ",
              count_diff(k, b, 10 * 300), count_diff(kd, b, 10 * 300));
        CHECK(count_diff(a, b, 10 * 300) == 0 && count_diff(ad, b, 10 * 300) == 0,
              "tq1_0 held as tq2_0 vs tq2_0: %d (prefill) and %d (decode) logits differ",
              count_diff(a, b, 10 * 300), count_diff(ad, b, 10 * 300));
    }
    /* what the model says it holds (TQ2_0 kept as TQ2_0: test_tq2_held has the rest) */
    bn_model_params mp = bn_model_default_params();
    mp.keep_tq2_0 = true;
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(p1, &mp, &m));
    if (m) {
        bn_model_info in;
        bn_model_get_info(m, &in);
        /* 66 bytes per 256 weights: rows of E inputs (q, k, v, o, gate, up), of F (down) */
        const uint64_t kv = (uint64_t)o1.E * (uint64_t)o1.HKV / (uint64_t)o1.H;
        const uint64_t want = (uint64_t)o1.L * (((uint64_t)o1.E * 2 + kv * 2 +
                              (uint64_t)o1.F * 2) * (uint64_t)(o1.E / 256 * 66) +
                              (uint64_t)o1.E * (uint64_t)(o1.F / 256 * 66));
        CHECK(in.proj_type == BN_QT_TQ1_0 && in.proj_held_type == BN_QT_TQ2_0 &&
              in.converted_bytes == want, "tq1_0 projections held as tq2_0 (%d, %d), %llu "
              "bytes (%llu expected)", in.proj_type, in.proj_held_type,
              (unsigned long long)in.converted_bytes, (unsigned long long)want);
        bn_model_free(m);
    }
    mp.keep_tq1_0 = true;
    CHECK_OK(bn_model_load(p1, &mp, &m));
    if (m) {
        bn_model_info in;
        bn_model_get_info(m, &in);
        CHECK(in.proj_held_type == BN_QT_TQ1_0 && in.converted_bytes == 0, "kept as tq1_0");
        bn_model_free(m);
    }
    free(a);
    free(ad);
    free(k);
    free(kd);
    free(b);
}

/* The output layer kept in Q8_0 (converted at load from F16): the logits stay close to
 * the F16 layer's (which test_model_ref checks against the reference), differ from
 * them (the conversion happened), and do not depend on batching or threads. */
/* The bytes a model of o's shapes holds for its projections in I2_S's layout: per
 * projection n_out * n_in / 4 bytes of codes, rounded up to 64, and a float a row;
 * those whose name has `skip` in it (NULL: none) not counted. */
static uint64_t held_bytes(const tm_opts *o, const char *skip)
{
    const int64_t kv = (int64_t)o->E / o->H * o->HKV;
    struct { const char *name; int64_t n_in, n_out; } p[7] = {
        {"attn_q", o->E, o->E}, {"attn_k", o->E, kv}, {"attn_v", o->E, kv},
        {"attn_output", o->E, o->E}, {"ffn_gate", o->E, o->F}, {"ffn_up", o->E, o->F},
        {"ffn_down", o->F, o->E}};
    uint64_t total = 0;
    for (int i = 0; i < 7; i++)
        if (!skip || !strstr(p[i].name, skip))
            total += ((uint64_t)(p[i].n_out * p[i].n_in / 4) + 63) / 64 * 64 +
                     (uint64_t)p[i].n_out * 4;
    return total * (uint64_t)o->L;
}

static void expect_held(const char *path, bool keep_tq1, bool keep_tq2, int held_type,
                        uint64_t bytes, const char *what)
{
    bn_model_params mp = bn_model_default_params();
    mp.keep_tq1_0 = keep_tq1;
    mp.keep_tq2_0 = keep_tq2;
    bn_model *m = NULL;
    CHECK_OK(bn_model_load(path, &mp, &m));
    if (!m)
        return;
    bn_model_info in;
    bn_model_get_info(m, &in);
    CHECK(in.proj_held_type == held_type && in.converted_bytes == bytes,
          "%s: held as %d (%d expected), %llu bytes converted (%llu expected)", what,
          in.proj_held_type, held_type, (unsigned long long)in.converted_bytes,
          (unsigned long long)bytes);
    bn_model_free(m);
}

/* TQ2_0 projections with one scale a row held in I2_S's layout (the default) give the
 * logits of the TQ2_0 kernels bit for bit: prefill, decode, other thread counts and
 * batch cuts, and without activation quantization (the rows as floats); rows whose
 * scales differ from the next row's too; projections whose blocks' scales differ
 * within a row stay TQ2_0, beside held ones in the same model; TQ1_0 projections go
 * on to I2_S's layout too. */
static void test_tq2_held(void)
{
    const int n = 12;
    bn_token tokens[12] = {1, 2, 3, 4, 5, 250, 7, 8, 9, 10, 299, 0};
    const size_t total = (size_t)n * 300;
    /* ffn_down's rows are two blocks of 256, which differ; the attention projections'
     * are one block each, so that each row has one scale, though not the next row's */
    const char *mixes[] = {NULL, "ffn_down", "attn"};
    for (int mi = 0; mi < 3; mi++) {
        tm_opts o = tm_default(BN_QT_TQ2_0);
        o.seed = 31 + (uint32_t)mi;
        o.mixed = mixes[mi];
        const char *path = model_path("held.gguf");
        CHECK(write_model(path, &o), "writing %s", path);
        struct { int batch, threads; bn_act_quant aq; } runs[] = {
            {0, 2, BN_ACT_QUANT_AUTO}, {1, 1, BN_ACT_QUANT_AUTO}, {5, 3, BN_ACT_QUANT_AUTO},
            {0, 2, BN_ACT_QUANT_OFF}, {1, 2, BN_ACT_QUANT_OFF}};
        for (size_t ri = 0; ri < sizeof runs / sizeof runs[0]; ri++) {
            g_keep_tq2 = true;
            float *kept = run_logits(path, tokens, n, runs[ri].batch, runs[ri].threads,
                                     BN_F16, runs[ri].aq);
            g_keep_tq2 = false;
            float *hl = run_logits(path, tokens, n, runs[ri].batch, runs[ri].threads,
                                   BN_F16, runs[ri].aq);
            if (kept && hl)
                CHECK(count_diff(kept, hl, total) == 0,
                      "tq2_0 (blocks' scales differ in %s) held vs kept, batch %d, %d "
                      "threads, act quant %d: %d logits differ", mixes[mi] ? mixes[mi] : "none",
                      runs[ri].batch, runs[ri].threads, (int)runs[ri].aq,
                      count_diff(kept, hl, total));
            free(kept);
            free(hl);
        }
        expect_held(path, false, false, BN_QT_I2_S, held_bytes(&o, mi == 1 ? "ffn_down" : NULL),
                    "tq2_0 by default");
        expect_held(path, false, true, BN_QT_TQ2_0, 0, "tq2_0 kept");
    }
    /* TQ1_0: straight to I2_S's layout (no TQ2_0 copy on the way) */
    tm_opts o1 = tm_default(BN_QT_TQ1_0);
    const char *p1 = model_path("held1.gguf");
    CHECK(write_model(p1, &o1), "writing %s", p1);
    expect_held(p1, false, false, BN_QT_I2_S, held_bytes(&o1, NULL), "tq1_0 by default");
    expect_held(p1, true, false, BN_QT_TQ1_0, 0, "tq1_0 kept, tq2_0 not");
    g_keep_tq1 = true;
    float *k1 = run_logits(p1, tokens, n, 0, 2, BN_F16, BN_ACT_QUANT_AUTO);
    g_keep_tq1 = false;
    float *h1 = run_logits(p1, tokens, n, 1, 2, BN_F16, BN_ACT_QUANT_AUTO);
    if (k1 && h1)
        CHECK(count_diff(k1, h1, total) == 0, "tq1_0 kept vs held in i2_s's layout: %d "
              "logits differ", count_diff(k1, h1, total));
    free(k1);
    free(h1);
    /* TQ1_0 with ffn_down's blocks' scales differing: it goes to TQ2_0, the rest to
     * I2_S's layout */
    o1.mixed = "ffn_down";
    o1.seed = 41;
    CHECK(write_model(p1, &o1), "writing %s", p1);
    const uint64_t down_tq2 = (uint64_t)o1.L * (uint64_t)o1.E * (uint64_t)(o1.F / 256 * 66);
    expect_held(p1, false, false, BN_QT_I2_S, held_bytes(&o1, "ffn_down") + down_tq2,
                "tq1_0, ffn_down's scales differing");
    g_keep_tq1 = true;
    k1 = run_logits(p1, tokens, n, 0, 2, BN_F16, BN_ACT_QUANT_AUTO);
    g_keep_tq1 = false;
    h1 = run_logits(p1, tokens, n, 0, 2, BN_F16, BN_ACT_QUANT_AUTO);
    if (k1 && h1)
        CHECK(count_diff(k1, h1, total) == 0, "tq1_0 kept vs held, ffn_down as tq2_0: %d "
              "logits differ", count_diff(k1, h1, total));
    free(k1);
    free(h1);
}

static void test_output_q8_0(void)
{
    const int n = 12;
    bn_token tokens[12];
    for (int i = 0; i < n; i++)
        tokens[i] = (bn_token)((i * 53 + 3) % 300);
    tm_opts o = tm_default(BN_QT_I2_S);
    const char *path = model_path("q8out.gguf");
    CHECK(write_model(path, &o), "writing %s", path);
    size_t total = (size_t)n * 300;
    float *ref = run_logits(path, tokens, n, 0, 2, BN_F32, BN_ACT_QUANT_AUTO);
    g_output_type = BN_QT_Q8_0;
    float *q8 = run_logits(path, tokens, n, 0, 2, BN_F32, BN_ACT_QUANT_AUTO);
    float *q8d = run_logits(path, tokens, n, 1, 1, BN_F32, BN_ACT_QUANT_AUTO);
    /* the file read into memory: the f16 rows the conversion leaves behind are given
     * back to the file's pages, and the token lookups (tied embedding) still see them */
    g_load = BN_LOAD_READ;
    float *q8r = run_logits(path, tokens, n, 0, 2, BN_F32, BN_ACT_QUANT_AUTO);
    g_output_type = -1;
    float *refr = run_logits(path, tokens, n, 0, 2, BN_F32, BN_ACT_QUANT_AUTO);
    g_load = BN_LOAD_AUTO;
    if (ref && refr && q8 && q8r)
        CHECK(count_diff(ref, refr, total) == 0 && count_diff(q8, q8r, total) == 0,
              "read into memory vs mapped: %d and (q8_0 output layer) %d logits differ",
              count_diff(ref, refr, total), count_diff(q8, q8r, total));
    free(refr);
    free(q8r);
    if (ref && q8 && q8d) {
        double mx = 0, dmax = 0;
        for (size_t i = 0; i < total; i++) {
            mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
            dmax = fabs(ref[i] - q8[i]) > dmax ? fabs(ref[i] - q8[i]) : dmax;
        }
        CHECK(dmax > 0 && dmax <= 1e-2 * mx, "q8_0 output layer: max |dlogit| %g of max "
              "|logit| %g", dmax, mx);
        CHECK(count_diff(q8, q8d, total) == 0, "q8_0 output layer: prefill on 2 threads "
              "vs decode on 1: %d differ", count_diff(q8, q8d, total));
    }
    free(ref);
    free(q8);
    free(q8d);
    /* what cannot be converted: a type other than q8_0, an output layer not in float */
    bn_model_params mp = bn_model_default_params();
    bn_model *m = NULL;
    mp.output_type = BN_QT_Q4_0;
    CHECK(bn_model_load(path, &mp, &m) == BN_ERR_UNSUPPORTED && !m, "output type q4_0");
    tm_opts o6 = tm_default(BN_QT_I2_S);
    o6.embd_type = BN_QT_Q6_K;
    const char *p6 = model_path("q6out.gguf");
    CHECK(write_model(p6, &o6), "writing %s", p6);
    /* a Q6_K output layer (read on Q8_0 blocks of its input; its kernel is checked
     * against the dequantizer in test_kernels): batching and threads change nothing */
    float *q6a = run_logits(p6, tokens, n, 0, 2, BN_F32, BN_ACT_QUANT_AUTO);
    float *q6b = run_logits(p6, tokens, n, 1, 1, BN_F32, BN_ACT_QUANT_AUTO);
    if (q6a && q6b)
        CHECK(count_diff(q6a, q6b, total) == 0, "q6_K output layer: prefill on 2 threads "
              "vs decode on 1: %d differ", count_diff(q6a, q6b, total));
    free(q6a);
    free(q6b);
    mp.output_type = BN_QT_Q8_0;
    bn_status st = bn_model_load(p6, &mp, &m);
    CHECK(st == BN_ERR_UNSUPPORTED && !m && strstr(bn_last_error(), "q6_K"),
          "converting a q6_K output layer: %s", bn_last_error());
    bn_model_free(m);
}

static void test_context(void)
{
    tm_opts o = tm_default(BN_QT_I2_S);
    const char *path = model_path("ctx.gguf");
    CHECK(write_model(path, &o), "writing %s", path);
    bn_model *m = NULL;
    bn_context *c = NULL;
    CHECK_OK(bn_model_load(path, NULL, &m));
    if (!m)
        return;
    bn_model_info in;
    bn_model_get_info(m, &in);
    CHECK(in.n_embd == 256 && in.n_ff == 512 && in.n_layer == 2 && in.n_head == 4 &&
          in.n_head_kv == 2 && in.head_dim == 64 && in.n_vocab == 300 &&
          in.n_ctx_train == 64 && in.ffn_act == BN_FFN_ACT_RELU2 && in.act_quant &&
          in.sub_norms && in.tied_output && in.proj_type == BN_QT_I2_S &&
          in.output_type == BN_QT_F16, "model info");
    CHECK(bn_model_tokenizer(m) == NULL, "no tokenizer in this file");
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 16;
    CHECK_OK(bn_context_create(m, &cp, &c));
    if (!c) {
        bn_model_free(m);
        return;
    }
    CHECK(bn_context_n_ctx(c) == 16 && bn_context_n_past(c) == 0, "fresh context");
    CHECK(bn_context_kv_bytes(c) == 2u * 2 * 16 * 128 * 2, "KV bytes %zu",
          bn_context_kv_bytes(c));
    CHECK(bn_get_logits(c, -1) == NULL, "no logits before an evaluation");
    bn_token t[20];
    for (int i = 0; i < 20; i++)
        t[i] = (bn_token)(i * 13 % 300);
    CHECK_OK(bn_eval(c, t, 10));
    float first[300];
    const float *l = bn_get_logits(c, -1);
    CHECK(l && bn_get_logits(c, 9) == l && bn_get_logits(c, 8) == NULL,
          "only the last token's logits are kept");
    if (l)
        memcpy(first, l, sizeof first);
    /* too many tokens: an error, and the context is unchanged */
    CHECK(bn_eval(c, t, 7) == BN_ERR_CONTEXT_FULL, "7 more tokens do not fit");
    CHECK(strstr(bn_last_error(), "6 are left") != NULL, "message: %s", bn_last_error());
    CHECK(bn_context_n_past(c) == 10, "n_past unchanged");
    bn_token bad = 300;
    CHECK(bn_eval(c, &bad, 1) == BN_ERR_INVALID_ARG, "token 300 of 300");
    CHECK(strstr(bn_last_error(), "300") != NULL, "message: %s", bn_last_error());
    CHECK(bn_eval(c, t, 0) == BN_ERR_INVALID_ARG, "no tokens");
    /* go on, then truncate and redo: the same logits */
    CHECK_OK(bn_eval(c, t + 10, 6));
    CHECK(bn_context_n_past(c) == 16, "full");
    bn_context_truncate(c, 9);
    CHECK(bn_context_n_past(c) == 9, "truncated");
    CHECK_OK(bn_eval(c, t + 9, 1));
    l = bn_get_logits(c, -1);
    CHECK(l && memcmp(l, first, sizeof first) == 0, "logits after truncate + redo");
    bn_context_truncate(c, 0);
    CHECK_OK(bn_eval(c, t, 10));
    l = bn_get_logits(c, -1);
    CHECK(l && memcmp(l, first, sizeof first) == 0, "logits after clearing");
    bn_context_free(c);

    /* every allocation of context creation can fail cleanly */
    int failures = 0;
    for (uint64_t k = 1; k < 200; k++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_context *cc = NULL;
        bn_mem_fail_nth(k);
        bn_status st = bn_context_create(m, &cp, &cc);
        bn_mem_fail_nth(0);
        if (st == BN_OK) {
            bn_context_free(cc);
            break;
        }
        failures++;
        bn_mem_get_stats(&after);
        CHECK(st == BN_ERR_OOM && cc == NULL && after.live_blocks == before.live_blocks,
              "context alloc fail #%llu: %s, leaked %lld", (unsigned long long)k,
              bn_status_str(st), (long long)(after.live_blocks - before.live_blocks));
    }
    CHECK(failures > 3, "context creation allocations covered: %d", failures);
    bn_model_free(m);

    failures = 0;
    for (uint64_t k = 1; k < 400; k++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_model *mm = NULL;
        bn_mem_fail_nth(k);
        bn_status st = bn_model_load(path, NULL, &mm);
        bn_mem_fail_nth(0);
        if (st == BN_OK) {
            bn_model_free(mm);
            break;
        }
        failures++;
        bn_mem_get_stats(&after);
        CHECK(st == BN_ERR_OOM && mm == NULL && after.live_blocks == before.live_blocks,
              "model alloc fail #%llu: %s, leaked %lld", (unsigned long long)k,
              bn_status_str(st), (long long)(after.live_blocks - before.live_blocks));
    }
    CHECK(failures > 3, "model load allocations covered: %d", failures);
}

/* A model file with one thing wrong fails to load with `status` and a message that
 * contains `needle`. */
static void expect_load_error(const char *what, const tm_opts *o, bn_status status,
                              const char *needle)
{
    const char *path = model_path("bad.gguf");
    CHECK(write_model(path, o), "writing the model for '%s'", what);
    bn_model *m = NULL;
    bn_status st = bn_model_load(path, NULL, &m);
    CHECK(st == status && m == NULL, "%s: %s (%s), expected %s", what, bn_status_str(st),
          bn_last_error(), bn_status_str(status));
    CHECK(strstr(bn_last_error(), needle) != NULL, "%s: message '%s' names '%s'", what,
          bn_last_error(), needle);
    bn_model_free(m);
}

static void test_bad_models(void)
{
    tm_opts o = tm_default(BN_QT_I2_S);
    o.skip_tensor = "blk.1.ffn_down.weight";
    expect_load_error("missing tensor", &o, BN_ERR_FORMAT, "blk.1.ffn_down.weight");
    o = tm_default(BN_QT_I2_S);
    o.skip_tensor = "blk.0.attn_sub_norm.weight";
    expect_load_error("missing sub-norm", &o, BN_ERR_FORMAT, "blk.0.attn_sub_norm.weight");
    o = tm_default(BN_QT_TQ2_0);
    o.bad_shape = "blk.0.attn_k.weight";
    expect_load_error("wrong shape", &o, BN_ERR_FORMAT, "blk.0.attn_k.weight");
    o = tm_default(BN_QT_I2_S);
    o.skip_key = "block_count";
    expect_load_error("missing key", &o, BN_ERR_FORMAT, "bitnet-b1.58.block_count");
    o = tm_default(BN_QT_I2_S);
    o.skip_key = "attention.layer_norm_rms_epsilon";
    expect_load_error("missing eps", &o, BN_ERR_FORMAT, "layer_norm_rms_epsilon");
    o = tm_default(BN_QT_I2_S);
    o.arch = "gpt-neox";
    expect_load_error("unknown arch", &o, BN_ERR_UNSUPPORTED, "gpt-neox");
    o = tm_default(BN_QT_I2_S);
    o.HKV = 3;
    o.H = 4;
    o.F = 512;
    /* 4 heads cannot share 3 kv heads (the kv tensors are written for 3 * 64) */
    expect_load_error("heads", &o, BN_ERR_FORMAT, "key/value");
    o = tm_default(BN_QT_I2_S);
    o.arch = "bitnet";
    o.ffn_act = "gelu";
    expect_load_error("unknown activation", &o, BN_ERR_UNSUPPORTED, "gelu");

    o = tm_default(BN_QT_I2_S);
    o.arch = "llama";
    o.rope_scaling = "yarn";
    expect_load_error("RoPE scaling", &o, BN_ERR_UNSUPPORTED, "rope.scaling.type");

    /* a truncated file */
    o = tm_default(BN_QT_I2_S);
    const char *path = model_path("trunc.gguf");
    CHECK(write_model(path, &o), "writing");
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK(truncate(path, size - 1000) == 0, "truncate");
    bn_model *m = NULL;
    bn_status st = bn_model_load(path, NULL, &m);
    CHECK(st == BN_ERR_FORMAT && m == NULL, "truncated: %s", bn_last_error());
    CHECK(strstr(bn_last_error(), "trunc.gguf") != NULL, "names the file: %s",
          bn_last_error());
}

/* The activation rule: bitnet-b1.58 -> relu2, bitnet -> the key or silu, llama -> silu;
 * a relu2 and a silu model of the same weights differ. */
static void test_activation_rule(void)
{
    struct { const char *arch, *key; bn_ffn_act want; } cases[] = {
        {"bitnet-b1.58", NULL, BN_FFN_ACT_RELU2},
        {"bitnet-25", NULL, BN_FFN_ACT_RELU2},
        {"bitnet", NULL, BN_FFN_ACT_SILU},
        {"bitnet", "relu2", BN_FFN_ACT_RELU2},
        {"bitnet-b1.58", "silu", BN_FFN_ACT_SILU},
        {"llama", NULL, BN_FFN_ACT_SILU},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tm_opts o = tm_default(BN_QT_I2_S);
        o.arch = cases[i].arch;
        o.ffn_act = cases[i].key;
        const char *path = model_path("act.gguf");
        CHECK(write_model(path, &o), "writing");
        bn_model *m = NULL;
        CHECK_OK(bn_model_load(path, NULL, &m));
        if (!m)
            continue;
        bn_model_info in;
        bn_model_get_info(m, &in);
        CHECK(in.ffn_act == cases[i].want, "%s with key %s: activation %d, want %d",
              cases[i].arch, cases[i].key ? cases[i].key : "(none)", in.ffn_act,
              cases[i].want);
        CHECK(in.sub_norms == (strncmp(cases[i].arch, "bitnet", 6) == 0), "sub-norms");
        bn_model_free(m);
    }
}

/* ------------------------------------------------------ many sequences at once */

#define BT_MAX_SEQ 8
#define BT_GEN 10
#define BT_MAX_PROMPT 24

/* The greedy continuation of one prompt in a context of its own (bn_eval, one
 * sequence): the tokens and the logits each was chosen from. The reference for the
 * batched runs, whose every sequence must get exactly these. */
static int bt_alone(const bn_model *m, const bn_token *prompt, int n_prompt,
                    bn_token *gen, float *gen_logits, int V)
{
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 64;
    bn_context *c = NULL;
    CHECK_OK(bn_context_create(m, &cp, &c));
    if (!c)
        return 0;
    bn_status st = bn_eval(c, prompt, n_prompt);
    for (int k = 0; st == BN_OK && k < BT_GEN; k++) {
        const float *l = bn_get_logits(c, -1);
        memcpy(gen_logits + (size_t)k * V, l, (size_t)V * sizeof(float));
        int best = 0;
        for (int v = 1; v < V; v++)
            best = l[v] > l[best] ? v : best;
        gen[k] = best;
        st = bn_eval(c, &gen[k], 1);
    }
    CHECK(st == BN_OK, "the sequence alone: %s", bn_last_error());
    bn_context_free(c);
    return BT_GEN;
}

/* B sequences with prompts of different lengths decoded together in one context:
 * sequence b's prompt enters at step b (its prefill shares the step with the decodes
 * of those started before), then each step advances every started sequence by its
 * last greedy token. Rows come grouped by sequence, or interleaved one row of each
 * sequence in turn (round robin). Every sequence must get the tokens and, bit for bit,
 * the logits it gets alone. */
static void bt_together(const bn_model *m, int B, bool round_robin, int n_batch,
                        bn_token prompts[][BT_MAX_PROMPT], const int *n_prompt,
                        bn_token ref_gen[][BT_GEN], float *const *ref_logits, int V)
{
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 64;
    cp.n_seq = B;
    cp.n_batch = n_batch;
    bn_context *c = NULL;
    CHECK_OK(bn_context_create(m, &cp, &c));
    if (!c)
        return;
    CHECK(bn_context_n_seq(c) == B, "n_seq %d", bn_context_n_seq(c));
    bn_token gen[BT_MAX_SEQ][BT_GEN];
    int n_gen[BT_MAX_SEQ] = {0};
    bn_token tokens[BT_MAX_SEQ * BT_MAX_PROMPT];
    int32_t seq[BT_MAX_SEQ * BT_MAX_PROMPT];
    int mismatched_logits = 0, mismatched_tokens = 0;
    for (int step = 0; step < B + BT_GEN - 1; step++) {
        /* what each sequence adds at this step */
        const bn_token *add[BT_MAX_SEQ];
        int n_add[BT_MAX_SEQ];
        for (int b = 0; b < B; b++) {
            n_add[b] = 0;
            if (step == b) {
                add[b] = prompts[b];
                n_add[b] = n_prompt[b];
            } else if (step > b && n_gen[b] < BT_GEN) {
                add[b] = &gen[b][n_gen[b] - 1];
                n_add[b] = 1;
            }
        }
        int n = 0, last[BT_MAX_SEQ];
        for (int b = 0; b < B; b++)
            last[b] = -1;
        if (round_robin) {
            for (int k = 0; k < BT_MAX_PROMPT; k++)
                for (int b = 0; b < B; b++)
                    if (k < n_add[b]) {
                        last[b] = n;
                        tokens[n] = add[b][k];
                        seq[n++] = b;
                    }
        } else {
            for (int b = 0; b < B; b++)
                for (int k = 0; k < n_add[b]; k++) {
                    last[b] = n;
                    tokens[n] = add[b][k];
                    seq[n++] = b;
                }
        }
        if (n == 0)
            break;
        bn_batch bt = {.n = n, .tokens = tokens, .seq = seq};
        bn_status st = bn_decode(c, &bt);
        CHECK(st == BN_OK, "B %d step %d: %s", B, step, bn_last_error());
        if (st != BN_OK)
            break;
        for (int b = 0; b < B; b++) {
            if (last[b] < 0)
                continue;
            const float *l = bn_get_logits(c, last[b]);
            CHECK(l != NULL, "B %d step %d: the logits of sequence %d", B, step, b);
            if (!l)
                continue;
            const int k = n_gen[b];
            mismatched_logits += memcmp(l, ref_logits[b] + (size_t)k * V,
                                        (size_t)V * sizeof(float)) != 0;
            int best = 0;
            for (int v = 1; v < V; v++)
                best = l[v] > l[best] ? v : best;
            gen[b][k] = best;
            mismatched_tokens += best != ref_gen[b][k];
            n_gen[b]++;
        }
    }
    for (int b = 0; b < B; b++)
        CHECK(n_gen[b] == BT_GEN && bn_context_seq_n_past(c, b) == n_prompt[b] + BT_GEN - 1,
              "B %d: sequence %d made %d tokens, holds %d positions", B, b, n_gen[b],
              bn_context_seq_n_past(c, b));
    CHECK(mismatched_tokens == 0 && mismatched_logits == 0, "B %d (%s, n_batch %d): %d "
          "tokens and %d logit rows differ from the sequences decoded alone", B,
          round_robin ? "interleaved" : "grouped", n_batch, mismatched_tokens,
          mismatched_logits);
    bn_context_free(c);
}

static void test_batch(void)
{
    const int types[] = {BN_QT_I2_S, BN_QT_TQ2_0};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        tm_opts o = tm_default(types[ti]);
        o.seed = 23 + (uint32_t)ti;
        const char *path = model_path("batch.gguf");
        CHECK(write_model(path, &o), "writing %s", path);
        bn_model *m = NULL;
        CHECK_OK(bn_model_load(path, NULL, &m));
        if (!m)
            return;
        const int V = bn_model_n_vocab(m);
        bn_token prompts[BT_MAX_SEQ][BT_MAX_PROMPT];
        int n_prompt[BT_MAX_SEQ];
        bn_token ref_gen[BT_MAX_SEQ][BT_GEN];
        float *ref_logits[BT_MAX_SEQ];
        for (int b = 0; b < BT_MAX_SEQ; b++) {
            n_prompt[b] = 1 + (b * 7) % BT_MAX_PROMPT;   /* 1, 8, 15, 22, 5, 12, 19, 2 */
            for (int k = 0; k < n_prompt[b]; k++)
                prompts[b][k] = (bn_token)(rng() % (uint32_t)V);
            ref_logits[b] = malloc((size_t)BT_GEN * (size_t)V * sizeof(float));
            bn_set_num_threads(1);
            bt_alone(m, prompts[b], n_prompt[b], ref_gen[b], ref_logits[b], V);
        }
        for (int B = 1; B <= BT_MAX_SEQ; B++) {
            bn_set_num_threads(1 + B % 3);
            bt_together(m, B, false, 512, prompts, n_prompt, ref_gen, ref_logits, V);
            bt_together(m, B, true, 512, prompts, n_prompt, ref_gen, ref_logits, V);
        }
        /* steps cut into several passes of 16 rows, which split prompts */
        bn_set_num_threads(2);
        bt_together(m, BT_MAX_SEQ, true, 16, prompts, n_prompt, ref_gen, ref_logits, V);
        bt_together(m, BT_MAX_SEQ, false, 7, prompts, n_prompt, ref_gen, ref_logits, V);
        for (int b = 0; b < BT_MAX_SEQ; b++)
            free(ref_logits[b]);
        bn_model_free(m);
    }
    bn_set_num_threads(2);
}

/* bn_decode's checks leave the context as it was; truncating one sequence leaves the
 * others alone; the logits flags choose the rows kept. */
static void test_batch_errors(void)
{
    tm_opts o = tm_default(BN_QT_I2_S);
    const char *path = model_path("batch-err.gguf");
    CHECK(write_model(path, &o), "writing %s", path);
    bn_model *m = NULL;
    bn_context *c = NULL, *alone = NULL;
    CHECK_OK(bn_model_load(path, NULL, &m));
    if (!m)
        return;
    bn_context_params cp = bn_context_default_params();
    cp.n_ctx = 8;
    cp.n_seq = 3;
    CHECK_OK(bn_context_create(m, &cp, &c));
    cp.n_seq = 1;
    CHECK_OK(bn_context_create(m, &cp, &alone));
    if (!c || !alone) {
        bn_context_free(c);
        bn_context_free(alone);
        bn_model_free(m);
        return;
    }
    CHECK(bn_context_kv_bytes(c) == 3 * bn_context_kv_bytes(alone),
          "three sequences hold three caches");
    const bn_token tok[6] = {5, 6, 7, 8, 9, 10};
    const int32_t seq[6] = {0, 1, 1, 2, 2, 2};
    bn_batch bt = {.n = 6, .tokens = tok, .seq = seq};
    CHECK_OK(bn_decode(c, &bt));
    CHECK(bn_context_seq_n_past(c, 0) == 1 && bn_context_seq_n_past(c, 1) == 2 &&
          bn_context_seq_n_past(c, 2) == 3 && bn_context_n_past(c) == 1 &&
          bn_context_seq_n_past(c, 3) == -1, "positions per sequence");
    CHECK(bn_get_logits(c, 0) && bn_get_logits(c, 2) && bn_get_logits(c, 5) &&
          !bn_get_logits(c, 1) && !bn_get_logits(c, 3) && !bn_get_logits(c, -2) &&
          bn_get_logits(c, -1) == bn_get_logits(c, 5),
          "by default the last token of each sequence keeps its logits");
    /* the logits of sequence 2's three tokens, alone */
    CHECK_OK(bn_eval(alone, tok + 3, 3));
    float want[300];
    memcpy(want, bn_get_logits(alone, -1), sizeof want);
    CHECK(memcmp(bn_get_logits(c, 5), want, sizeof want) == 0, "sequence 2 as alone");

    const int32_t bad_seq[2] = {0, 3};
    bt = (bn_batch){.n = 2, .tokens = tok, .seq = bad_seq};
    CHECK(bn_decode(c, &bt) == BN_ERR_INVALID_ARG && strstr(bn_last_error(), "sequence 3"),
          "a sequence out of range: %s", bn_last_error());
    const int32_t full_seq[6] = {0, 2, 2, 2, 2, 2};   /* sequence 2: 3 + 5 + ... > 8 */
    bn_token six[6] = {1, 2, 3, 4, 5, 6};
    bt = (bn_batch){.n = 6, .tokens = six, .seq = full_seq};
    CHECK_OK(bn_decode(c, &bt));
    bt.n = 2;
    CHECK(bn_decode(c, &bt) == BN_ERR_CONTEXT_FULL && strstr(bn_last_error(), "sequence 2"),
          "a full sequence: %s", bn_last_error());
    CHECK(bn_context_seq_n_past(c, 0) == 2 && bn_context_seq_n_past(c, 1) == 2 &&
          bn_context_seq_n_past(c, 2) == 8, "a refused batch changes nothing");
    const bool four[4] = {true, true, true, true};
    const int32_t seq01[4] = {0, 0, 1, 1};
    bt = (bn_batch){.n = 4, .tokens = six, .seq = seq01, .logits = four};
    CHECK(bn_decode(c, &bt) == BN_ERR_INVALID_ARG && strstr(bn_last_error(), "at most 3"),
          "more logits rows than kept: %s", bn_last_error());
    const bool two[4] = {true, false, false, true};
    bt.logits = two;
    CHECK_OK(bn_decode(c, &bt));
    CHECK(bn_get_logits(c, 0) && !bn_get_logits(c, 1) && !bn_get_logits(c, 2) &&
          bn_get_logits(c, 3), "the flags choose the rows");

    /* sequence 2 cleared and evaluated again from its start: as alone; sequence 1
     * keeps its positions, and its logits of the last evaluation stay */
    bn_context_seq_truncate(c, 2, 0);
    CHECK(bn_context_seq_n_past(c, 2) == 0 && bn_context_seq_n_past(c, 1) == 4 &&
          bn_get_logits(c, 3) != NULL, "truncating sequence 2 only");
    bn_context_seq_truncate(c, 1, 3);
    CHECK(bn_get_logits(c, 3) == NULL && bn_get_logits(c, 0) != NULL,
          "truncating sequence 1 drops its logits");
    const int32_t seq2[3] = {2, 2, 2};
    bt = (bn_batch){.n = 3, .tokens = tok + 3, .seq = seq2};
    CHECK_OK(bn_decode(c, &bt));
    CHECK(memcmp(bn_get_logits(c, -1), want, sizeof want) == 0,
          "sequence 2 after truncation as alone");
    bn_context_free(c);
    bn_context_free(alone);
    bn_model_free(m);
}

int main(void)
{
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    bn_log_set_level(BN_LOG_ERROR);
    test_consistency();
    test_tq_same();
    test_tq2_held();
    test_output_q8_0();
    test_context();
    test_bad_models();
    test_activation_rule();
    test_batch();
    test_batch_errors();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    CHECK(bn_mem_leak_report() == 0, "no leaks");
    return check_summary("test_forward");
}
