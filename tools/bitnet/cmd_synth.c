/*
 * cmd_synth.c - `bitnet synth`: writes a synthetic BitNet b1.58 model for tests and
 * benchmarks, since real weights cannot be fetched everywhere. The layout (tensor
 * names, types, shapes, metadata keys) follows microsoft's bitnet-b1.58-2B-4T GGUF;
 * the weights are random: ternary projections with a random scale per tensor, norms
 * around 1, a normal embedding. The metadata has the real keys, types and order (24
 * keys; the tokenizer arrays with their real sizes and made-up contents). The tensor
 * order of microsoft's file is not known; ours is embedding, blocks, output norm.
 * Hidden from `bitnet --help`.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cmd_synth_help[] =
    "usage: bitnet synth OUT.gguf [options]\n"
    "\n"
    "Write a synthetic BitNet b1.58 model (random weights, the real file layout) for\n"
    "tests and benchmarks.\n"
    "\n"
    "options:\n"
    "  --preset NAME      2b-4t (the shapes of microsoft/bitnet-b1.58-2B-4T: 30 layers,\n"
    "                     2560 wide, FFN 6912, 20/5 heads, vocab 128256) or tiny\n"
    "                     (2 layers, 256 wide, FFN 768, 4/2 heads, vocab 512); default tiny\n"
    "  --layers N         override the layer count\n"
    "  --vocab N          override the vocabulary size\n"
    "  --type TYPE        projection type: i2_s (default), tq2_0, tq1_0, f16, f32\n"
    "  --embd-type TYPE   token embedding type: f16 (default), f32, q8_0, q6_k\n"
    "  --seed N           random seed (default 1)\n"
    "  -h, --help         show this help\n";

typedef struct synth_shape {
    int64_t n_embd, n_ff, n_head, n_head_kv, n_layer, n_vocab, n_ctx;
} synth_shape;

static const synth_shape preset_2b4t = {2560, 6912, 20, 5, 30, 128256, 4096};
static const synth_shape preset_tiny = {256, 768, 4, 2, 2, 512, 1024};

/* splitmix64: a small, good, seedable generator. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float rng_uniform(uint64_t *s)
{
    return (float)((rng_next(s) >> 40) * (1.0 / 16777216.0));
}

/* Box-Muller normal sample. */
static float rng_normal(uint64_t *s)
{
    float u1 = rng_uniform(s), u2 = rng_uniform(s);
    if (u1 < 1e-7f)
        u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

/* One tensor to generate. */
typedef struct synth_tensor {
    char     name[64];
    int      type;
    int      n_dims;
    int64_t  ne[2];
    int      kind;       /* 0 ternary projection, 1 norm, 2 embedding */
    uint64_t seed;
    void    *data;
    size_t   nbytes;
    bn_status status;
    char     message[256];
} synth_tensor;

/* Fills one tensor's f32 values and stores them in its type. */
static bn_status synth_fill(synth_tensor *t)
{
    int64_t n = t->ne[0] * (t->n_dims > 1 ? t->ne[1] : 1);
    int64_t rows = t->n_dims > 1 ? t->ne[1] : 1;
    float *w = malloc((size_t)n * sizeof *w);
    if (!w)
        return bn_error_set(BN_ERR_OOM, "out of memory for %lld values", (long long)n);
    uint64_t s = t->seed;
    if (t->kind == 0) {
        /* a scale that f16 holds exactly, so that formats with f16 block scales
         * (tq1_0, tq2_0) store the same tensor as i2_s's f32 scale */
        float scale = bn_f16_to_f32(bn_f32_to_f16(0.5f + 1.5f * rng_uniform(&s)));
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)((int)(rng_next(&s) % 3) - 1) * scale;
    } else if (t->kind == 1) {
        for (int64_t i = 0; i < n; i++)
            w[i] = 1.0f + 0.1f * rng_normal(&s);
    } else {
        for (int64_t i = 0; i < n; i++)
            w[i] = 0.02f * rng_normal(&s);
    }
    bn_status st = bn_qtype_tensor_size(t->type, t->ne[0], rows, &t->nbytes);
    if (st == BN_OK && !(t->data = bn_malloc(t->nbytes, "synth")))
        st = bn_last_status();
    if (st == BN_OK)
        st = bn_quantize(t->type, w, t->ne[0], rows, t->data, t->nbytes);
    free(w);
    return st;
}

static void synth_task(void *ctx, int64_t begin, int64_t end)
{
    synth_tensor *ts = ctx;
    for (int64_t i = begin; i < end; i++) {
        ts[i].status = synth_fill(&ts[i]);
        if (ts[i].status != BN_OK)
            snprintf(ts[i].message, sizeof ts[i].message, "%s", bn_last_error());
    }
}

/* Appends a tensor description. */
static void synth_add(synth_tensor *ts, int *n, const char *name, int type, int n_dims,
                      int64_t ne0, int64_t ne1, int kind, uint64_t seed)
{
    synth_tensor *t = &ts[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->kind = kind;
    t->seed = seed * 1000003ULL + (uint64_t)*n;
}

/* The tensor list of the model, in the order of microsoft's file. */
static int synth_layout(const synth_shape *sh, int proj, int embd, uint64_t seed,
                        synth_tensor *ts)
{
    int n = 0;
    int64_t e = sh->n_embd, kv = sh->n_embd / sh->n_head * sh->n_head_kv;
    synth_add(ts, &n, "token_embd.weight", embd, 2, e, sh->n_vocab, 2, seed);
    for (int64_t l = 0; l < sh->n_layer; l++) {
        const struct {
            const char *name;
            int         is_norm;
            int64_t     ne0, ne1;
        } parts[] = {
            {"attn_norm", 1, e, 1},       {"attn_q", 0, e, e},
            {"attn_k", 0, e, kv},         {"attn_v", 0, e, kv},
            {"attn_output", 0, e, e},     {"attn_sub_norm", 1, e, 1},
            {"ffn_norm", 1, e, 1},        {"ffn_gate", 0, e, sh->n_ff},
            {"ffn_up", 0, e, sh->n_ff},   {"ffn_down", 0, sh->n_ff, e},
            {"ffn_sub_norm", 1, sh->n_ff, 1},
        };
        for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, parts[p].name);
            synth_add(ts, &n, name, parts[p].is_norm ? BN_QT_F32 : proj,
                      parts[p].is_norm ? 1 : 2, parts[p].ne0, parts[p].ne1,
                      parts[p].is_norm, seed);
        }
    }
    synth_add(ts, &n, "output_norm.weight", BN_QT_F32, 1, e, 1, 1, seed);
    return n;
}

/* general.file_type of a model whose projections are `proj` (llama.cpp's and
 * bitnet.cpp's LLAMA_FTYPE numbers). */
static uint32_t synth_file_type(int proj)
{
    switch (proj) {
    case BN_QT_F32: return 0;
    case BN_QT_F16: return 1;
    case BN_QT_TQ1_0: return 36;
    case BN_QT_TQ2_0: return 37;
    default: return 40; /* bitnet.cpp: MOSTLY_I2_S */
    }
}

/* A made-up vocabulary (tokens, scores, types) and merges of the given sizes. */
static bn_status synth_tokenizer(bn_gguf_writer *w, int64_t nv, int64_t nm)
{
    int64_t most = nm > nv ? nm : nv;
    char **strs = malloc((size_t)most * sizeof *strs);
    char *pool = malloc((size_t)most * 24);
    int32_t *types = malloc((size_t)nv * sizeof *types);
    float *scores = calloc((size_t)nv, sizeof *scores);
    bn_status st = strs && pool && types && scores ? BN_OK
                   : bn_error_set(BN_ERR_OOM, "out of memory for the vocabulary");
    for (int64_t i = 0; st == BN_OK && i < nv; i++) {
        strs[i] = pool + i * 24;
        snprintf(strs[i], 24, "tok%lld", (long long)i);
        types[i] = i >= nv - 256 ? 3 : 1;  /* the last 256 are control tokens */
    }
    if (st == BN_OK)
        st = bn_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens",
                                          (const char *const *)strs, (uint64_t)nv);
    if (st == BN_OK)
        st = bn_gguf_writer_set_array(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, scores,
                                      (uint64_t)nv);
    if (st == BN_OK)
        st = bn_gguf_writer_set_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types,
                                      (uint64_t)nv);
    for (int64_t i = 0; st == BN_OK && i < nm; i++) {
        strs[i] = pool + i * 24;
        snprintf(strs[i], 24, "t%lld t%lld", (long long)(i % 997), (long long)(i / 997));
    }
    if (st == BN_OK)
        st = bn_gguf_writer_set_str_array(w, "tokenizer.ggml.merges",
                                          (const char *const *)strs, (uint64_t)nm);
    free(strs);
    free(pool);
    free(types);
    free(scores);
    return st;
}

/* Metadata with the keys, types and order of microsoft's 2B-4T file (there is no
 * tokenizer.ggml.pre in it); values are the model's shape or made up. */
static bn_status synth_metadata(bn_gguf_writer *w, const synth_shape *sh, int proj)
{
    const char *a = "bitnet-b1.58";
    char key[96];
    bn_status st = bn_gguf_writer_set_str(w, "general.architecture", a);
#define SET_U32(suffix, v)                                                             \
    do {                                                                               \
        snprintf(key, sizeof key, "%s.%s", a, suffix);                                 \
        if (st == BN_OK) st = bn_gguf_writer_set_u32(w, key, (uint32_t)(v));           \
    } while (0)
#define SET_F32(suffix, v)                                                             \
    do {                                                                               \
        snprintf(key, sizeof key, "%s.%s", a, suffix);                                 \
        if (st == BN_OK) st = bn_gguf_writer_set_f32(w, key, (float)(v));              \
    } while (0)
    if (st == BN_OK) st = bn_gguf_writer_set_str(w, "general.name", "synthetic bitnet2b");
    SET_U32("vocab_size", sh->n_vocab);
    SET_U32("context_length", sh->n_ctx);
    SET_U32("embedding_length", sh->n_embd);
    SET_U32("block_count", sh->n_layer);
    SET_U32("feed_forward_length", sh->n_ff);
    SET_U32("rope.dimension_count", sh->n_embd / sh->n_head);
    SET_U32("attention.head_count", sh->n_head);
    SET_U32("attention.head_count_kv", sh->n_head_kv);
    if (st == BN_OK) st = bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    SET_F32("attention.layer_norm_rms_epsilon", 1e-5);
    SET_F32("rope.freq_base", 500000.0);
#undef SET_U32
#undef SET_F32
    if (st == BN_OK) st = bn_gguf_writer_set_u32(w, "general.file_type", synth_file_type(proj));
    if (st == BN_OK) st = bn_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    /* the real file has 280,147 merges for its 128,256 tokens */
    int64_t n_merges = sh->n_vocab == 128256 ? 280147 : sh->n_vocab * 2;
    if (st == BN_OK) st = synth_tokenizer(w, sh->n_vocab, n_merges);
    if (st == BN_OK) st = bn_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id",
                                                 (uint32_t)(sh->n_vocab - 256));
    if (st == BN_OK) st = bn_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id",
                                                 (uint32_t)(sh->n_vocab - 255));
    if (st == BN_OK) st = bn_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id",
                                                 (uint32_t)(sh->n_vocab - 255));
    if (st == BN_OK)
        st = bn_gguf_writer_set_str(w, "tokenizer.chat_template",
                                    "{% for m in messages %}{{ m['role'] }}: "
                                    "{{ m['content'] }}\n{% endfor %}");
    if (st == BN_OK) st = bn_gguf_writer_set_u32(w, "general.quantization_version", 2);
    return st;
}

/* Parses the options; returns -1 to go on, else an exit code. */
static int synth_args(int argc, char **argv, const char **out, synth_shape *sh, int *proj,
                      int *embd, uint64_t *seed)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        int64_t n;
        bn_qtype t = BN_QT_F32;
        if (cli_is_help(a))
            return fputs(cmd_synth_help, stdout), 0;
        if (strcmp(a, "--preset") == 0 && v) {
            const char *p = argv[++i];
            if (strcmp(p, "2b-4t") == 0) *sh = preset_2b4t;
            else if (strcmp(p, "tiny") == 0) *sh = preset_tiny;
            else return cli_usage_error("synth", "unknown preset '%s' (2b-4t, tiny)", p);
        } else if (strcmp(a, "--layers") == 0 && v) {
            if (!cli_parse_int(argv[++i], 1, 1000, &n))
                return cli_usage_error("synth", "invalid layer count '%s'", argv[i]);
            sh->n_layer = n;
        } else if (strcmp(a, "--vocab") == 0 && v) {
            if (!cli_parse_int(argv[++i], 257, 1 << 24, &n))
                return cli_usage_error("synth", "invalid vocabulary size '%s' (257 or "
                                       "more)", argv[i]);
            sh->n_vocab = n;
        } else if ((strcmp(a, "--type") == 0 || strcmp(a, "--embd-type") == 0) && v) {
            if (!bn_qtype_from_name(argv[++i], &t) || !bn_qtype_get(t)->can_write)
                return cli_usage_error("synth", "%s: cannot write type '%s'", a, argv[i]);
            *(strcmp(a, "--type") == 0 ? proj : embd) = (int)t;
        } else if (strcmp(a, "--seed") == 0 && v) {
            if (!cli_parse_int(argv[++i], 0, INT64_MAX, &n))
                return cli_usage_error("synth", "invalid seed '%s'", argv[i]);
            *seed = (uint64_t)n;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("synth", "unknown option or missing value '%s'", a);
        } else if (*out) {
            return cli_usage_error("synth", "unexpected argument '%s'", a);
        } else {
            *out = a;
        }
    }
    if (!*out)
        return cli_usage_error("synth", "name the output file");
    return -1;
}

int cmd_synth(int argc, char **argv)
{
    const char *out = NULL;
    synth_shape sh = preset_tiny;
    int proj = BN_QT_I2_S, embd = BN_QT_F16;
    uint64_t seed = 1;
    int rc = synth_args(argc, argv, &out, &sh, &proj, &embd, &seed);
    if (rc >= 0)
        return rc;
    int max_tensors = (int)(sh.n_layer * 11 + 2);
    synth_tensor *ts = calloc((size_t)max_tensors, sizeof *ts);
    int n = synth_layout(&sh, proj, embd, seed, ts);
    bn_parallel_for(NULL, n, 1, synth_task, ts);
    bn_gguf_writer *w = NULL;
    bn_status st = bn_gguf_writer_create(&w);
    if (st == BN_OK)
        st = synth_metadata(w, &sh, proj);
    for (int i = 0; i < n && st == BN_OK; i++) {
        if (ts[i].status != BN_OK)
            st = bn_error_set(ts[i].status, "tensor '%s': %s", ts[i].name, ts[i].message);
        else
            st = bn_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne,
                                           ts[i].data, ts[i].nbytes);
    }
    if (st == BN_OK)
        st = bn_gguf_writer_write(w, out, NULL, NULL);
    rc = st == BN_OK ? 0 : cli_fail("synth");
    bn_gguf_writer_free(w);
    for (int i = 0; i < n; i++)
        bn_free(ts[i].data);
    free(ts);
    return rc;
}
