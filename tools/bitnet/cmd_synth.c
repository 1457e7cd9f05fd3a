/*
 * cmd_synth.c - `bitnet synth`: writes a synthetic BitNet b1.58 model for tests and
 * benchmarks, since real weights cannot be fetched everywhere. The layout (tensor
 * names, types, shapes, metadata keys) follows microsoft's bitnet-b1.58-2B-4T GGUF;
 * the weights are random: ternary projections with a random scale per tensor, norms
 * around 1, a normal embedding. The metadata has the real keys, types and order (24
 * keys; the tokenizer arrays with their real sizes and made-up contents). The tensor
 * order of microsoft's file is not known; ours is embedding, blocks, output norm.
 * --arch writes the same weights under llama.cpp's arch name `bitnet` (same tensors,
 * `bitnet.` keys) or as `llama` (no sub-norm tensors; still tied embeddings, no
 * output.weight); every other tensor keeps its values whatever the arch, so that one
 * seed gives one model in every arch and type. --ffn-act adds the key
 * <arch>.ffn_activation. --proj-scale shrinks the projections: at the default scale
 * attention scores are in the hundreds and the forward pass amplifies rounding ~1e4
 * times, too much for golden logits (scripts/reference/README.md). Hidden from
 * `bitnet --help`.
 */
#include <errno.h>
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
    "  --arch NAME        bitnet-b1.58 (default; microsoft's 2B-4T file), bitnet (the same\n"
    "                     tensors under llama.cpp's arch name) or llama (no\n"
    "                     attn_sub_norm/ffn_sub_norm tensors); all tied, no output.weight;\n"
    "                     the other tensors are the same for one seed in every arch\n"
    "  --ffn-act NAME     relu2 or silu: write the key <arch>.ffn_activation (none by\n"
    "                     default)\n"
    "  --layers N         override the layer count\n"
    "  --vocab N          override the vocabulary size\n"
    "  --embd N, --ff N   override the embedding / FFN width (multiples of 256)\n"
    "  --heads N          override the query head count (divides --embd)\n"
    "  --heads-kv N       override the KV head count (divides --heads)\n"
    "  --ctx N            override <arch>.context_length\n"
    "  --proj-scale X     multiply each projection's random scale (0.5 to 2) by X\n"
    "                     (default 1; 0.0625 gives attention scores of a real model's\n"
    "                     size, which keeps the forward pass well conditioned)\n"
    "  --type TYPE        projection type: i2_s (default), tq2_0, tq1_0, f16, f32\n"
    "  --embd-type TYPE   token embedding type: f16 (default), f32, q8_0, q6_k\n"
    "  --seed N           random seed (default 1)\n"
    "  -h, --help         show this help\n";

typedef struct synth_shape {
    int64_t n_embd, n_ff, n_head, n_head_kv, n_layer, n_vocab, n_ctx;
} synth_shape;

/* What --arch, --ffn-act and the types choose, besides the shape. */
typedef struct synth_opts {
    const char *arch;      /* general.architecture and the prefix of its keys */
    bool        sub_norms; /* attn_sub_norm / ffn_sub_norm tensors (not in llama) */
    const char *ffn_act;   /* value of <arch>.ffn_activation, or NULL for no key */
    float       proj_scale;/* factor on the projections' random scales */
    bn_qtype    proj, embd;
    uint64_t    seed;
} synth_opts;

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
    bn_qtype type;
    int      n_dims;
    int64_t  ne[2];
    int      kind;       /* 0 ternary projection, 1 norm, 2 embedding */
    float    scale_mul;  /* kind 0: factor on the random scale */
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
        float scale = bn_f16_to_f32(
            bn_f32_to_f16(t->scale_mul * (0.5f + 1.5f * rng_uniform(&s))));
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

/* Appends a tensor description; `slot` (1-based, its place in the bitnet-b1.58 layout)
 * picks its random stream, so that leaving the sub-norms out changes no other tensor. */
static void synth_add(synth_tensor *ts, int *n, const char *name, bn_qtype type, int n_dims,
                      int64_t ne0, int64_t ne1, int kind, const synth_opts *o, int slot)
{
    synth_tensor *t = &ts[(*n)++];
    memset(t, 0, sizeof *t);
    t->scale_mul = o->proj_scale;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->kind = kind;
    t->seed = o->seed * 1000003ULL + (uint64_t)slot;
}

/* The tensor list of the model, in the order of microsoft's file. */
static int synth_layout(const synth_shape *sh, const synth_opts *o, synth_tensor *ts)
{
    int n = 0, slot = 0;
    int64_t e = sh->n_embd, kv = sh->n_embd / sh->n_head * sh->n_head_kv;
    synth_add(ts, &n, "token_embd.weight", o->embd, 2, e, sh->n_vocab, 2, o, ++slot);
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
            ++slot;
            if (!o->sub_norms && strstr(parts[p].name, "_sub_norm"))
                continue;
            snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, parts[p].name);
            synth_add(ts, &n, name, parts[p].is_norm ? BN_QT_F32 : o->proj,
                      parts[p].is_norm ? 1 : 2, parts[p].ne0, parts[p].ne1,
                      parts[p].is_norm, o, slot);
        }
    }
    synth_add(ts, &n, "output_norm.weight", BN_QT_F32, 1, e, 1, 1, o, ++slot);
    return n;
}

/* The special tokens at the end of the vocabulary, at LLaMA 3's offsets from the first
 * (<|begin_of_text|> is 128000 in a 128,256-token vocabulary); the rest are reserved. */
static const char *const synth_specials[] = {
    "<|begin_of_text|>", "<|end_of_text|>", NULL, NULL, "<|finetune_right_pad_id|>",
    NULL, "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
    "<|python_tag|>",
};

/* Special tokens of a vocabulary of nv: 256 for a LLaMA 3-sized one, else 16. */
static int64_t synth_n_special(int64_t nv)
{
    return nv >= 4096 ? 256 : 16;
}

/* The UTF-8 form of byte b in the byte-level alphabet of GPT-2 and LLaMA 3: printable
 * bytes stand for themselves, the others for U+0100 upwards in byte order. */
static void synth_byte_char(int b, char out[3])
{
    int cp = b, k = 0;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
        for (int i = 0; i < b; i++)
            k += !((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174);
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = 0;
    }
}

/* A working byte-level BPE vocabulary of nv tokens with nm merges (fewer when the
 * vocabulary cannot hold that many): the 256 byte tokens, then every string of two,
 * three, four... lower-case letters in order, each built by the merge of its first
 * letters and its last one (then its other splits, as extra merges, until nm), then
 * the special tokens. Text of lower-case words and anything else (as single bytes)
 * tokenizes; the ids mean nothing. */
static bn_status synth_tokenizer(bn_gguf_writer *w, int64_t nv, int64_t nm)
{
    int64_t n_special = synth_n_special(nv);
    int64_t n_words = nv - 256 - n_special;   /* merged tokens */
    if (n_words < 0)
        return bn_error_set(BN_ERR_INVALID_ARG, "a vocabulary of %lld is too small",
                            (long long)nv);
    int64_t most = nm > nv ? nm : nv;
    char **strs = malloc((size_t)most * sizeof *strs);
    char *pool = malloc((size_t)nv * 48 + (size_t)most * 24);
    int32_t *types = malloc((size_t)nv * sizeof *types);
    float *scores = calloc((size_t)nv, sizeof *scores);
    int *len = malloc((size_t)(n_words + 1) * sizeof *len);
    bn_status st = strs && pool && types && scores && len ? BN_OK
                   : bn_error_set(BN_ERR_OOM, "out of memory for the vocabulary");
    char *next = pool;
    /* tokens */
    for (int64_t i = 0; st == BN_OK && i < 256; i++) {
        strs[i] = next;
        synth_byte_char((int)i, next);
        next += strlen(next) + 1;
        types[i] = 1;
    }
    int64_t made = 0;
    for (int L = 2; st == BN_OK && made < n_words && L <= 6; L++) {
        int64_t count = 1;
        for (int k = 0; k < L; k++)
            count *= 26;
        for (int64_t v = 0; v < count && made < n_words; v++, made++) {
            char *t = next;
            int64_t x = v;
            for (int k = L - 1; k >= 0; k--) {
                t[k] = (char)('a' + x % 26);
                x /= 26;
            }
            t[L] = 0;
            strs[256 + made] = t;
            len[made] = L;
            types[256 + made] = 1;
            next += L + 1;
        }
    }
    for (int64_t i = 0; st == BN_OK && i < n_special; i++) {
        int64_t id = nv - n_special + i;
        const char *name = i < (int64_t)(sizeof synth_specials / sizeof synth_specials[0])
                           ? synth_specials[i] : NULL;
        strs[id] = next;
        if (name)
            snprintf(next, 48, "%s", name);
        else   /* LLaMA 3 numbers the reserved ones 0, 1 (ids 2, 3), 2 (5), 3.. (11..) */
            snprintf(next, 48, "<|reserved_special_token_%d|>",
                     (int)(i == 5 ? 2 : i < 5 ? i - 2 : i - 8));
        next += strlen(next) + 1;
        types[id] = 3;
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
    /* merges: "prefix last" for every word, then the other splits "head tail" */
    char **merges = strs;   /* reuse the pointer array (the tokens are written) */
    int64_t k = 0;
    for (int64_t i = 0; st == BN_OK && i < made && k < nm; i++, k++) {
        const char *t = pool + (strs[256 + i] - pool);
        int L = len[i];
        char *m = next;
        snprintf(m, 24, "%.*s %s", L - 1, t, t + L - 1);
        merges[k] = m;
        next += strlen(m) + 1;
    }
    for (int split = 1; st == BN_OK && k < nm && split < 6; split++)
        for (int64_t i = 0; i < made && k < nm; i++) {
            int L = len[i];
            if (split >= L - 1)
                continue;
            /* the word's text is the base-26 digits of its index within its length */
            char word[8];
            int64_t first = 0, cnt = 1;
            for (int l = 2; l < L; l++) {
                cnt = 1;
                for (int q = 0; q < l; q++)
                    cnt *= 26;
                first += cnt;
            }
            int64_t x = i - first;
            for (int q = L - 1; q >= 0; q--) {
                word[q] = (char)('a' + x % 26);
                x /= 26;
            }
            word[L] = 0;
            char *m = next;
            snprintf(m, 24, "%.*s %s", split, word, word + split);
            merges[k++] = m;
            next += strlen(m) + 1;
        }
    if (st == BN_OK)
        st = bn_gguf_writer_set_str_array(w, "tokenizer.ggml.merges",
                                          (const char *const *)merges, (uint64_t)k);
    free(strs);
    free(pool);
    free(types);
    free(scores);
    free(len);
    return st;
}

/* Metadata with the keys, types and order of microsoft's 2B-4T file (there is no
 * tokenizer.ggml.pre in it); values are the model's shape or made up. The arch keys
 * take the prefix of --arch; --ffn-act adds <arch>.ffn_activation after them. */
static bn_status synth_metadata(bn_gguf_writer *w, const synth_shape *sh,
                                const synth_opts *o)
{
    const char *a = o->arch;
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
    if (o->ffn_act) {
        snprintf(key, sizeof key, "%s.ffn_activation", a);
        if (st == BN_OK) st = bn_gguf_writer_set_str(w, key, o->ffn_act);
    }
#undef SET_U32
#undef SET_F32
    if (st == BN_OK) st = bn_gguf_writer_set_u32(w, "general.file_type",
                                                 (uint32_t)bn_qtype_file_type(o->proj));
    if (st == BN_OK) st = bn_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    /* the real file has 280,147 merges for its 128,256 tokens */
    int64_t n_merges = sh->n_vocab == 128256 ? 280147 : sh->n_vocab * 2;
    if (st == BN_OK) st = synth_tokenizer(w, sh->n_vocab, n_merges);
    int64_t bos = sh->n_vocab - synth_n_special(sh->n_vocab);
    if (st == BN_OK) st = bn_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id",
                                                 (uint32_t)bos);
    if (st == BN_OK) st = bn_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id",
                                                 (uint32_t)(bos + 1));
    if (st == BN_OK) st = bn_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id",
                                                 (uint32_t)(bos + 1));
    /* the 2B-4T model's turn format: "User: ...<|eot_id|>Assistant: ..." */
    if (st == BN_OK)
        st = bn_gguf_writer_set_str(w, "tokenizer.chat_template",
                                    "{% for message in messages %}{% if loop.first %}"
                                    "{{ bos_token }}{% endif %}{% if message['role'] == "
                                    "'system' %}{{ 'System: ' + message['content'] + "
                                    "'<|eot_id|>' }}{% elif message['role'] == 'user' %}"
                                    "{{ 'User: ' + message['content'] + '<|eot_id|>' }}"
                                    "{% else %}{{ 'Assistant: ' + message['content'] + "
                                    "'<|eot_id|>' }}{% endif %}{% endfor %}"
                                    "{% if add_generation_prompt %}{{ 'Assistant:' }}"
                                    "{% endif %}");
    if (st == BN_OK) st = bn_gguf_writer_set_u32(w, "general.quantization_version", 2);
    return st;
}

/* Parses a size option's value into *dst; false (after the usage error) when bad. */
static bool synth_size_arg(const char *opt, const char *val, int64_t lo, int64_t hi,
                           int64_t *dst, int *rc)
{
    int64_t n;
    if (!cli_parse_int(val, lo, hi, &n)) {
        *rc = cli_usage_error("synth", "%s: invalid value '%s' (%lld to %lld)", opt, val,
                              (long long)lo, (long long)hi);
        return false;
    }
    *dst = n;
    return true;
}

/* Checks that the shape makes a model: heads divide the width, KV heads the heads,
 * an even head size for RoPE. Returns -1 when it does, else the usage exit code. */
static int synth_check_shape(const synth_shape *sh)
{
    if (sh->n_embd % sh->n_head != 0 || (sh->n_embd / sh->n_head) % 2 != 0)
        return cli_usage_error("synth", "%lld heads do not split width %lld into even "
                               "head sizes", (long long)sh->n_head,
                               (long long)sh->n_embd);
    if (sh->n_head % sh->n_head_kv != 0)
        return cli_usage_error("synth", "%lld KV heads do not divide %lld heads",
                               (long long)sh->n_head_kv, (long long)sh->n_head);
    return -1;
}

/* Parses the options; returns -1 to go on, else an exit code. */
static int synth_args(int argc, char **argv, const char **out, synth_shape *sh,
                      synth_opts *o)
{
    /* the shape overrides apply after --preset, wherever they stand */
    int64_t over[5] = {0, 0, 0, 0, 0};    /* embd, ff, heads, heads-kv, ctx; 0 = none */
    int rc = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        int64_t n;
        bn_qtype t = BN_QT_F32;
        if (cli_is_help(a))
            return cli_help("synth");
        if (strcmp(a, "--preset") == 0 && v) {
            const char *p = argv[++i];
            if (strcmp(p, "2b-4t") == 0) *sh = preset_2b4t;
            else if (strcmp(p, "tiny") == 0) *sh = preset_tiny;
            else return cli_usage_error("synth", "unknown preset '%s' (2b-4t, tiny)", p);
        } else if (strcmp(a, "--arch") == 0 && v) {
            const char *p = argv[++i];
            if (strcmp(p, "bitnet-b1.58") == 0 || strcmp(p, "bitnet") == 0 ||
                strcmp(p, "llama") == 0) {
                o->arch = p;
                o->sub_norms = strcmp(p, "llama") != 0;
            } else {
                return cli_usage_error("synth", "unknown arch '%s' (bitnet-b1.58, "
                                       "bitnet, llama)", p);
            }
        } else if (strcmp(a, "--ffn-act") == 0 && v) {
            const char *p = argv[++i];
            if (strcmp(p, "relu2") != 0 && strcmp(p, "silu") != 0)
                return cli_usage_error("synth", "unknown FFN activation '%s' (relu2, "
                                       "silu)", p);
            o->ffn_act = p;
        } else if (strcmp(a, "--layers") == 0 && v) {
            if (!cli_parse_int(argv[++i], 1, 1000, &n))
                return cli_usage_error("synth", "invalid layer count '%s'", argv[i]);
            sh->n_layer = n;
        } else if (strcmp(a, "--vocab") == 0 && v) {
            if (!cli_parse_int(argv[++i], 257, 1 << 24, &n))
                return cli_usage_error("synth", "invalid vocabulary size '%s' (257 or "
                                       "more)", argv[i]);
            sh->n_vocab = n;
        } else if (strcmp(a, "--embd") == 0 && v) {
            if (!synth_size_arg(a, argv[++i], 256, 1 << 16, &over[0], &rc))
                return rc;
        } else if (strcmp(a, "--ff") == 0 && v) {
            if (!synth_size_arg(a, argv[++i], 256, 1 << 18, &over[1], &rc))
                return rc;
        } else if (strcmp(a, "--heads") == 0 && v) {
            if (!synth_size_arg(a, argv[++i], 1, 1024, &over[2], &rc))
                return rc;
        } else if (strcmp(a, "--heads-kv") == 0 && v) {
            if (!synth_size_arg(a, argv[++i], 1, 1024, &over[3], &rc))
                return rc;
        } else if (strcmp(a, "--ctx") == 0 && v) {
            if (!synth_size_arg(a, argv[++i], 1, 1 << 24, &over[4], &rc))
                return rc;
        } else if (strcmp(a, "--proj-scale") == 0 && v) {
            char *end;
            errno = 0;
            double x = strtod(argv[++i], &end);
            if (errno || end == argv[i] || *end || !(x >= 1e-3 && x <= 1e3))
                return cli_usage_error("synth", "invalid projection scale '%s' (1e-3 to "
                                       "1e3)", argv[i]);
            o->proj_scale = (float)x;
        } else if ((strcmp(a, "--type") == 0 || strcmp(a, "--embd-type") == 0) && v) {
            if (!bn_qtype_from_name(argv[++i], &t) || !bn_qtype_get(t)->can_write)
                return cli_usage_error("synth", "%s: cannot write type '%s'", a, argv[i]);
            *(strcmp(a, "--type") == 0 ? &o->proj : &o->embd) = t;
        } else if (strcmp(a, "--seed") == 0 && v) {
            if (!cli_parse_int(argv[++i], 0, INT64_MAX, &n))
                return cli_usage_error("synth", "invalid seed '%s'", argv[i]);
            o->seed = (uint64_t)n;
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
    if (over[0] && over[0] % 256 != 0)
        return cli_usage_error("synth", "--embd %lld is not a multiple of 256",
                               (long long)over[0]);
    if (over[1] && over[1] % 256 != 0)
        return cli_usage_error("synth", "--ff %lld is not a multiple of 256",
                               (long long)over[1]);
    int64_t *dst[5] = {&sh->n_embd, &sh->n_ff, &sh->n_head, &sh->n_head_kv, &sh->n_ctx};
    for (int k = 0; k < 5; k++)
        if (over[k])
            *dst[k] = over[k];
    return synth_check_shape(sh);
}

int cmd_synth(int argc, char **argv)
{
    const char *out = NULL;
    synth_shape sh = preset_tiny;
    synth_opts o = {"bitnet-b1.58", true, NULL, 1.0f, BN_QT_I2_S, BN_QT_F16, 1};
    int rc = synth_args(argc, argv, &out, &sh, &o);
    if (rc >= 0)
        return rc;
    int max_tensors = (int)(sh.n_layer * 11 + 2);
    synth_tensor *ts = calloc((size_t)max_tensors, sizeof *ts);
    if (!ts) {
        bn_error_set(BN_ERR_OOM, "out of memory for %d tensors", max_tensors);
        return cli_fail("synth");
    }
    int n = synth_layout(&sh, &o, ts);
    bn_parallel_for(NULL, n, 1, synth_task, ts);
    bn_gguf_writer *w = NULL;
    bn_status st = bn_gguf_writer_create(&w);
    if (st == BN_OK)
        st = synth_metadata(w, &sh, &o);
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
