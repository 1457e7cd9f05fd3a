/*
 * test_export_hf.c - bn_export_hf and back: a model written by `bitnet synth` (random
 * ternary projections; the program's path comes in $BITNET) is exported to a Hugging
 * Face folder, the folder is converted back with bn_convert_hf, and the two GGUF files
 * must hold the same tensors, byte for byte (names, types, shapes, data), for I2_S and
 * TQ2_0 projections, the same hyperparameters and the same tokenizer (tokens, types,
 * merges, special ids, chat template). The exported files are checked against the
 * layout itself: model.safetensors read by the safetensors reader holds uint8 [out/4,
 * in] projections whose codes, unpacked as transformers does, times weight_scale give
 * the GGUF's dequantized weights. A llama-arch model is refused with its message, and
 * conversions that fail at each stage (no folder, a shape, the architecture, no
 * tokenizer, an output that cannot be created) say why and leave no block allocated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"
#include "io/safetensors.h"

static char tmp_dir[] = "/tmp/test_export_hf_XXXXXX";

/* The tensors of two GGUF files are the same, byte for byte. */
static void same_tensors(const char *what, const char *a_path, const char *b_path)
{
    bn_gguf *a = NULL, *b = NULL;
    CHECK_OK(bn_gguf_open(a_path, &a));
    CHECK_OK(bn_gguf_open(b_path, &b));
    if (!a || !b) {
        bn_gguf_close(a);
        bn_gguf_close(b);
        return;
    }
    CHECK(bn_gguf_n_tensors(a) == bn_gguf_n_tensors(b), "%s: %lld vs %lld tensors", what,
          (long long)bn_gguf_n_tensors(a), (long long)bn_gguf_n_tensors(b));
    int differ = 0;
    for (int64_t i = 0; i < bn_gguf_n_tensors(a); i++) {
        const bn_gguf_tensor *x = bn_gguf_get_tensor(a, i);
        int64_t j = bn_gguf_find_tensor(b, x->name);
        const bn_gguf_tensor *y = j >= 0 ? bn_gguf_get_tensor(b, j) : NULL;
        bool same = y && x->type == y->type && x->n_dims == y->n_dims &&
                    memcmp(x->ne, y->ne, sizeof x->ne) == 0 && x->nbytes == y->nbytes &&
                    memcmp(x->data, y->data, x->nbytes) == 0;
        if (!same && differ++ < 5)
            fprintf(stderr, "%s: tensor '%s' differs\n", what, x->name);
    }
    CHECK(differ == 0, "%s: %d tensors differ", what, differ);
    static const char *const keys[] = {
        "bitnet-b1.58.embedding_length", "bitnet-b1.58.feed_forward_length",
        "bitnet-b1.58.block_count", "bitnet-b1.58.attention.head_count",
        "bitnet-b1.58.attention.head_count_kv", "bitnet-b1.58.context_length",
        "bitnet-b1.58.rope.freq_base", "bitnet-b1.58.attention.layer_norm_rms_epsilon",
        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
    };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        double va = -1, vb = -2;
        bn_gguf_get_f64(a, keys[k], &va);
        bn_gguf_get_f64(b, keys[k], &vb);
        uint64_t ua = 1, ub = 2;
        if (bn_gguf_get_u64(a, keys[k], &ua) == BN_OK)
            CHECK(bn_gguf_get_u64(b, keys[k], &ub) == BN_OK && ua == ub, "%s: %s %llu vs "
                  "%llu", what, keys[k], (unsigned long long)ua, (unsigned long long)ub);
        else
            CHECK(va == vb, "%s: %s %g vs %g", what, keys[k], va, vb);
    }
    bn_error_clear();
    /* the tokenizer: every token, type and merge, and the chat template */
    bn_tokenizer *ta = NULL, *tb = NULL;
    CHECK_OK(bn_tokenizer_load_gguf(a, &ta));
    CHECK_OK(bn_tokenizer_load_gguf(b, &tb));
    if (ta && tb) {
        CHECK(bn_tokenizer_n_vocab(ta) == bn_tokenizer_n_vocab(tb), "%s: vocab", what);
        int bad = 0;
        for (bn_token id = 0; id < bn_tokenizer_n_vocab(ta); id++) {
            size_t la, lb;
            const char *pa = bn_tokenizer_piece(ta, id, &la);
            const char *pb = bn_tokenizer_piece(tb, id, &lb);
            bad += !pb || la != lb || memcmp(pa, pb, la) != 0 ||
                   bn_tokenizer_token_type(ta, id) != bn_tokenizer_token_type(tb, id);
        }
        CHECK(bad == 0, "%s: %d tokens differ", what, bad);
        CHECK(bn_tokenizer_bos(ta) == bn_tokenizer_bos(tb) &&
              bn_tokenizer_eos(ta) == bn_tokenizer_eos(tb) &&
              bn_tokenizer_wants_bos(ta) == bn_tokenizer_wants_bos(tb), "%s: specials", what);
        const char *text = "the quick brown fox jumps over the lazy dog";
        bn_token *ia = NULL, *ib = NULL;
        size_t na = 0, nb = 0;
        CHECK_OK(bn_tokenize(ta, text, strlen(text), NULL, &ia, &na));
        CHECK_OK(bn_tokenize(tb, text, strlen(text), NULL, &ib, &nb));
        CHECK(na == nb && na > 0 && memcmp(ia, ib, na * sizeof *ia) == 0, "%s: ids of a "
              "text (%zu vs %zu)", what, na, nb);
        bn_free(ia);
        bn_free(ib);
        int64_t ka = bn_gguf_find_kv(a, "tokenizer.chat_template");
        int64_t kb = bn_gguf_find_kv(b, "tokenizer.chat_template");
        CHECK(ka >= 0 && kb >= 0 && strcmp(bn_gguf_kv_value(a, ka).v.str.ptr,
                                           bn_gguf_kv_value(b, kb).v.str.ptr) == 0,
              "%s: chat template", what);
    }
    bn_tokenizer_free(ta);
    bn_tokenizer_free(tb);
    bn_gguf_close(a);
    bn_gguf_close(b);
}

/* The exported q projection of layer 0, unpacked as transformers' unpack_weights does
 * (row r from bits 2 * (r / (out/4)) of packed row r % (out/4), minus 1) and times its
 * weight_scale, equals the GGUF's dequantized tensor. */
static void check_layout(const char *gguf_path, const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    bn_safetensors *s = NULL;
    bn_gguf *g = NULL;
    CHECK_OK(bn_st_open(path, &s));
    CHECK_OK(bn_gguf_open(gguf_path, &g));
    const bn_st_tensor *w = s ? bn_st_find(s, "model.layers.0.self_attn.q_proj.weight") : NULL;
    const bn_st_tensor *sc = s ? bn_st_find(s, "model.layers.0.self_attn.q_proj.weight_scale")
                               : NULL;
    int64_t gi = g ? bn_gguf_find_tensor(g, "blk.0.attn_q.weight") : -1;
    CHECK(w && sc && gi >= 0, "tensors present");
    if (w && sc && gi >= 0) {
        const bn_gguf_tensor *t = bn_gguf_get_tensor(g, gi);
        int64_t in = t->ne[0], out = t->ne[1];
        CHECK(w->dtype == BN_ST_U8 && w->n_dims == 2 && w->shape[0] == out / 4 &&
              w->shape[1] == in && sc->dtype == BN_ST_F32 && sc->numel == 1, "shapes");
        float *ref = malloc((size_t)(in * out) * sizeof *ref), scale = 0;
        CHECK_OK(bn_dequantize((bn_qtype)t->type, t->data, t->nbytes, in, out, ref));
        CHECK_OK(bn_st_to_f32(sc, &scale));
        const unsigned char *p = w->data;
        int bad = 0;
        for (int64_t r = 0; r < out; r++)
            for (int64_t c = 0; c < in; c++) {
                int code = (p[(r % (out / 4)) * in + c] >> (2 * (r / (out / 4)))) & 3;
                bad += (float)(code - 1) * scale != ref[r * in + c];
            }
        CHECK(bad == 0, "%d weights differ from the GGUF's", bad);
        free(ref);
    }
    bn_st_close(s);
    bn_gguf_close(g);
}

/* Writes text to dir/name. */
static void put_file(const char *dir, const char *name, const char *text, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(text, 1, n, f) == n, "writing %s", path);
    if (f)
        fclose(f);
}

/* Conversions that fail at each stage (config, weights, a tensor's shape, the
 * tokenizer, the output path) leave no block allocated. `dir` holds a good export. */
static void failures_free_everything(const char *dir)
{
    char path[512], cfg[8192];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(cfg, 1, sizeof cfg - 1, f) : 0;
    if (f)
        fclose(f);
    cfg[n] = 0;
    char *at = strstr(cfg, "\"intermediate_size\": 768");
    CHECK(at != NULL, "the config has intermediate_size 768");
    bn_convert_params p = bn_convert_default_params();
    for (int k = 0; k < 5; k++) {
        char target[512];
        snprintf(target, sizeof target, "%s/out.gguf", tmp_dir);
        if (k == 1 && at) {            /* a shape that does not fit the tensors */
            memcpy(at, "\"intermediate_size\": 512", 24);
            put_file(dir, "config.json", cfg, n);
        } else if (k == 2 && at) {     /* an unknown architecture */
            memcpy(at, "\"intermediate_size\": 768", 24);
            char *arch = strstr(cfg, "BitNetForCausalLM");
            if (arch)
                memcpy(arch, "BatNetForCausalLM", 17);
            put_file(dir, "config.json", cfg, n);
        } else if (k == 3) {           /* no tokenizer */
            char *arch = strstr(cfg, "BatNetForCausalLM");
            if (arch)
                memcpy(arch, "BitNetForCausalLM", 17);
            put_file(dir, "config.json", cfg, n);
            snprintf(path, sizeof path, "%s/tokenizer.json", dir);
            char moved[600];
            snprintf(moved, sizeof moved, "%s/tokenizer.json.away", dir);
            rename(path, moved);
        } else if (k == 4) {           /* an output that cannot be written */
            snprintf(path, sizeof path, "%s/tokenizer.json.away", dir);
            char back[600];
            snprintf(back, sizeof back, "%s/tokenizer.json", dir);
            rename(path, back);
            snprintf(target, sizeof target, "/nonexistent-dir/x.gguf");
        }
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_status st = bn_convert_hf(k == 0 ? "/nonexistent-folder" : dir, target, &p, NULL);
        bn_mem_get_stats(&after);
        static const char *const why[] = {
            "no config.json (is it a Hugging Face model folder?)",
            ("tensor 'model.layers.0.mlp.gate_proj.weight' has shape [192, 256], expected "
             "[128, 256]"),
            "config.json: architecture 'BatNetForCausalLM' is not supported",
            "no tokenizer.json or tokenizer.model",
            "writing /nonexistent-dir/x.gguf: cannot create a file in /nonexistent-dir",
        };
        CHECK(st != BN_OK && strstr(bn_last_error(), why[k]), "failure %d: '%s'", k,
              bn_last_error());
        CHECK(after.live_blocks == before.live_blocks, "failure %d (%s): %llu blocks left",
              k, bn_last_error(), (unsigned long long)(after.live_blocks - before.live_blocks));
        struct stat sb;
        CHECK(stat(target, &sb) != 0, "failure %d: no output", k);
    }
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    char again[512];
    snprintf(again, sizeof again, "%s/again.gguf", tmp_dir);
    CHECK_OK(bn_convert_hf(dir, again, &p, NULL));   /* the folder is whole again */
    unlink(again);
    bn_mem_get_stats(&after);
    CHECK(after.live_blocks == before.live_blocks, "success: %llu blocks left",
          (unsigned long long)(after.live_blocks - before.live_blocks));
}

static void round_trip(const char *bitnet, const char *type)
{
    char src[256], dir[256], back[256], cmd[1024];
    snprintf(src, sizeof src, "%s/%s.gguf", tmp_dir, type);
    snprintf(dir, sizeof dir, "%s/hf-%s", tmp_dir, type);
    snprintf(back, sizeof back, "%s/%s-back.gguf", tmp_dir, type);
    snprintf(cmd, sizeof cmd, "'%s' synth '%s' --layers 1 --vocab 1024 --type %s --seed 5 "
             "> /dev/null", bitnet, src, type);
    CHECK(system(cmd) == 0, "synth %s", type);
    CHECK_OK(bn_export_hf(src, dir, NULL));
    if (strcmp(type, "i2_s") == 0)
        check_layout(src, dir);
    bn_convert_params p = bn_convert_default_params();
    bn_qtype_from_name(type, &p.proj_type);
    bn_convert_stats stats;
    CHECK_OK(bn_convert_hf(dir, back, &p, &stats));
    CHECK(strcmp(stats.arch, "bitnet-b1.58") == 0, "arch %s", stats.arch);
    same_tensors(type, src, back);
    if (strcmp(type, "i2_s") == 0)
        failures_free_everything(dir);
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json",
                           "tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        char f[512];
        snprintf(f, sizeof f, "%s/%s", dir, files[i]);
        unlink(f);
    }
    rmdir(dir);
    unlink(src);
    unlink(back);
}

int main(void)
{
    const char *bitnet = getenv("BITNET");
    if (!bitnet || access(bitnet, X_OK) != 0)
        check_skip("test_export_hf", "$BITNET must name the bitnet program");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    bn_log_set_level(BN_LOG_ERROR);
    round_trip(bitnet, "i2_s");
    round_trip(bitnet, "tq2_0");

    char src[256], dir[256], cmd[1024];
    snprintf(src, sizeof src, "%s/llama.gguf", tmp_dir);
    snprintf(dir, sizeof dir, "%s/hf-llama", tmp_dir);
    snprintf(cmd, sizeof cmd, "'%s' synth '%s' --layers 1 --vocab 1024 --arch llama "
             "> /dev/null", bitnet, src);
    CHECK(system(cmd) == 0, "synth llama");
    bn_status st = bn_export_hf(src, dir, NULL);
    char want[1024];
    snprintf(want, sizeof want, "exporting %s to %s: architecture 'llama' has no sub-norms: "
             "only BitNet b1.58 models (bitnet-b1.58, bitnet-25, bitnet) export to "
             "BitNetForCausalLM", src, dir);
    CHECK(st == BN_ERR_UNSUPPORTED && strcmp(bn_last_error(), want) == 0, "llama: '%s'",
          bn_last_error());
    struct stat sb;
    CHECK(stat(dir, &sb) != 0, "nothing written for a refused model");
    unlink(src);
    rmdir(tmp_dir);
    return check_summary("test_export_hf");
}
