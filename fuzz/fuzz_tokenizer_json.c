/*
 * fuzz_tokenizer_json.c - a libFuzzer target for the reader of Hugging Face
 * tokenizer.json files and of the tokenizer_config.json read beside them.
 *
 * An input is a tokenizer.json, then optionally a NUL byte (which JSON text cannot
 * hold) and a tokenizer_config.json. The reader takes a path and finds the config by
 * it, so both parts are written to a private folder and the tokenizer.json there is
 * loaded with bn_tok_load_hf_json (what bn_tokenizer_load_file calls for JSON, without
 * its guess of the format, so that every input reaches the JSON reader).
 * fuzz_tok_check.c checks the outcome; the live block count must then be where it was.
 *
 * Built with -DBN_FUZZ_SEED_WRITER instead (no -fsanitize=fuzzer), the file is a small
 * program writing the seed corpus: `fuzz_tokenizer_json_seeds DATA DIR` cuts the LLaMA
 * 3 tokenizer.json and tokenizer_config.json in DATA/tokenizer/llama3 down to the first
 * 512 tokens, the merges among them, six special tokens and a plain added one, and
 * writes three variants: LLaMA 3's pre-tokenizer with the config; merges as pairs with a
 * TemplateProcessing post-processor that adds BOS; GPT-2's pre-tokenizer with a config
 * in the other spellings (tokens as objects, a list of chat templates). Each seed must
 * load. scripts/fuzz.sh builds both and runs the fuzzer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_tok_check.h"
#include "tokenizer/tokenizer_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char bn_fuzz_dir[512], bn_fuzz_json[600], bn_fuzz_config[600];

static void bn_fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_tokenizer_json: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    abort();
}

static void bn_fuzz_cleanup(void)
{
    unlink(bn_fuzz_json);
    unlink(bn_fuzz_config);
    rmdir(bn_fuzz_dir);
}

/* The private folder the inputs are written to, removed at exit. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(bn_fuzz_dir, sizeof bn_fuzz_dir, "%s/bn_fuzz_json_XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(bn_fuzz_dir))
        bn_fuzz_fail("cannot make a folder", bn_fuzz_dir);
    snprintf(bn_fuzz_json, sizeof bn_fuzz_json, "%s/tokenizer.json", bn_fuzz_dir);
    snprintf(bn_fuzz_config, sizeof bn_fuzz_config, "%s/tokenizer_config.json",
             bn_fuzz_dir);
    atexit(bn_fuzz_cleanup);
    bn_fuzz_tok_quiet_log();
    return 0;
}

static void bn_fuzz_write(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    bool bad = !f || (size && fwrite(data, 1, size, f) != size);
    if ((f && fclose(f) != 0) || bad)
        bn_fuzz_fail("cannot write", path);
}

/* Writes the input's parts as tokenizer.json and tokenizer_config.json (no second
 * part: no config file) and loads the first. */
static bn_status bn_fuzz_load(const uint8_t *data, size_t size, bn_tokenizer **t)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t json_size = nul ? (size_t)(nul - data) : size;
    bn_fuzz_write(bn_fuzz_json, data, json_size);
    if (nul)
        bn_fuzz_write(bn_fuzz_config, nul + 1, size - json_size - 1);
    else
        unlink(bn_fuzz_config);
    *t = NULL;
    return bn_tok_load_hf_json(bn_fuzz_json, t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bn_mem_stats before, after;
    bn_mem_get_stats(&before);
    bn_error_clear();
    bn_tokenizer *t = NULL;
    bn_status st = bn_fuzz_load(data, size, &t);
    bn_fuzz_tok_check_load("fuzz_tokenizer_json", BN_TOKENIZER_BPE, st, t, "tokenizer.json");
    bn_mem_get_stats(&after);
    if (after.live_blocks != before.live_blocks)
        bn_fuzz_fail("live blocks differ after the tokenizer is freed: a leak", NULL);
    return 0;
}

#ifdef BN_FUZZ_SEED_WRITER
/* ------------------------------------------------------------------ seeds */

#include <jansson.h>

/* Tokens kept: ids below this; the added tokens kept get the ids from here on. */
#define BN_SEED_KEEP 512

static json_t *bn_seed_load(const char *data_dir, const char *name, size_t flags)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer/llama3/%s", data_dir, name);
    json_error_t err;
    json_t *j = json_load_file(path, flags, &err);
    if (!json_is_object(j)) {
        fprintf(stderr, "fuzz_tokenizer_json_seeds: %s: %s\n", path, j ? "not an object"
                                                                         : err.text);
        exit(1);
    }
    return j;
}

/* The vocabulary entries of ids below BN_SEED_KEEP. */
static json_t *bn_seed_vocab(const json_t *vocab)
{
    json_t *out = json_object();
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach((json_t *)vocab, key, key_len, v) {
        if (json_is_integer(v) && json_integer_value(v) < BN_SEED_KEEP)
            json_object_setn_new(out, key, key_len, json_integer(json_integer_value(v)));
    }
    return out;
}

/* The merges ("a b" strings) whose parts and result are all in vocab, in their order:
 * as strings, or as [a, b] pairs. */
static json_t *bn_seed_merges(const json_t *merges, const json_t *vocab, bool pairs)
{
    json_t *out = json_array();
    char joined[256];
    for (size_t i = 0; i < json_array_size(merges); i++) {
        const char *m = json_string_value(json_array_get(merges, i));
        size_t len = json_string_length(json_array_get(merges, i));
        const char *space = m && len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
        if (!space || len > sizeof joined)
            continue;
        size_t la = (size_t)(space - m), lb = len - la - 1;
        memcpy(joined, m, la);
        memcpy(joined + la, space + 1, lb);
        if (!json_object_getn(vocab, m, la) || !json_object_getn(vocab, space + 1, lb) ||
            !json_object_getn(vocab, joined, la + lb))
            continue;
        if (pairs)
            json_array_append_new(out, json_pack("[s#, s#]", m, (int)la, space + 1, (int)lb));
        else
            json_array_append_new(out, json_stringn(m, len));
    }
    return out;
}

/* Six special tokens of the real file with new ids from BN_SEED_KEEP, and a plain added
 * token. */
static json_t *bn_seed_added(const json_t *added)
{
    static const char *const keep[] = {"<|begin_of_text|>", "<|end_of_text|>",
                                       "<|reserved_special_token_0|>", "<|start_header_id|>",
                                       "<|end_header_id|>", "<|eot_id|>"};
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        const char *content = json_string_value(json_object_get(a, "content"));
        for (size_t k = 0; content && k < sizeof keep / sizeof keep[0]; k++) {
            if (strcmp(content, keep[k]) == 0) {
                json_t *copy = json_deep_copy(a);
                json_object_set_new(copy, "id", json_integer(BN_SEED_KEEP +
                                                             (json_int_t)json_array_size(out)));
                json_array_append_new(out, copy);
            }
        }
    }
    json_array_append_new(out, json_pack("{s:I, s:s, s:b, s:b, s:b, s:b, s:b}", "id",
                                         (json_int_t)(BN_SEED_KEEP + json_array_size(out)),
                                         "content", "\xe2\x82\xac" "uro", "single_word", 0,
                                         "lstrip", 0, "rstrip", 0, "normalized", 0,
                                         "special", 0));
    return out;
}

/* A shallow copy of obj (values shared, members in order) with `key` set to val
 * (taken; NULL: the member dropped). */
static json_t *bn_seed_with(const json_t *obj, const char *key, json_t *val)
{
    json_t *out = json_copy((json_t *)obj);
    if (val)
        json_object_set_new(out, key, val);
    else
        json_object_del(out, key);
    return out;
}

/* Writes JSON, then a NUL and the config when there is one; loads it as the fuzzer
 * does (it must load). */
static int bn_seed_save(const char *dir, const char *name, json_t *root, json_t *config)
{
    char *text = json_dumps(root, JSON_COMPACT);
    char *ctext = config ? json_dumps(config, JSON_COMPACT) : NULL;
    size_t n = strlen(text), cn = ctext ? strlen(ctext) : 0;
    uint8_t *buf = malloc(n + 1 + cn);
    memcpy(buf, text, n);
    if (ctext) {
        buf[n] = '\0';
        memcpy(buf + n + 1, ctext, cn);
    }
    size_t size = ctext ? n + 1 + cn : n;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int bad = !f || fwrite(buf, 1, size, f) != size;
    if (f && fclose(f) != 0)
        bad = 1;
    bn_tokenizer *t = NULL;
    if (!bad && bn_fuzz_load(buf, size, &t) != BN_OK) {
        fprintf(stderr, "fuzz_tokenizer_json_seeds: %s does not load: %s\n", name,
                bn_last_error());
        bad = 1;
    }
    bn_tokenizer_free(t);
    printf("fuzz_tokenizer_json_seeds: %s: %zu bytes%s\n", path, size,
           bad ? " (FAILED)" : "");
    free(buf);
    free(text);
    free(ctext);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_tokenizer_json_seeds DATA_DIR OUT_DIR\n");
        return 2;
    }
    LLVMFuzzerInitialize(NULL, NULL);
    json_t *real = bn_seed_load(argv[1], "tokenizer.json", 0);
    json_t *real_config = bn_seed_load(argv[1], "tokenizer_config.json",
                                       JSON_DECODE_INT_AS_REAL);
    const json_t *model = json_object_get(real, "model");
    json_t *vocab = bn_seed_vocab(json_object_get(model, "vocab"));
    const json_t *merges = json_object_get(model, "merges");
    json_t *added = bn_seed_added(json_object_get(real, "added_tokens"));
    int bad = 0;

    /* LLaMA 3 as it is, smaller; the config without its list of added tokens */
    json_t *small = bn_seed_with(model, "vocab", json_incref(vocab));
    json_object_set_new(small, "merges", bn_seed_merges(merges, vocab, false));
    json_t *root = bn_seed_with(real, "model", small);
    json_object_set(root, "added_tokens", added);
    json_t *config = bn_seed_with(real_config, "added_tokens_decoder", NULL);
    bad |= bn_seed_save(argv[2], "llama3", root, config);
    json_decref(config);

    /* merges as pairs; BOS from a TemplateProcessing after the ByteLevel one */
    json_object_set_new(small, "merges", bn_seed_merges(merges, vocab, true));
    json_t *bos = json_pack(
        "{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}}}",
        "type", "TemplateProcessing", "single", "SpecialToken", "id", "<|begin_of_text|>",
        "type_id", 0, "Sequence", "id", "A", "type_id", 0, "special_tokens",
        "<|begin_of_text|>", "id", "<|begin_of_text|>", "ids", BN_SEED_KEEP, "tokens",
        "<|begin_of_text|>");
    json_object_set_new(root, "post_processor",
                        json_pack("{s:s, s:[O, o]}", "type", "Sequence", "processors",
                                  json_object_get(real, "post_processor"), bos));
    bad |= bn_seed_save(argv[2], "llama3-pairs-bos", root, NULL);
    json_decref(root);

    /* GPT-2's pre-tokenizer, every merge applied; a config with tokens as objects and
     * a list of named chat templates */
    small = bn_seed_with(model, "vocab", json_incref(vocab));
    json_object_set_new(small, "merges", bn_seed_merges(merges, vocab, false));
    json_object_set_new(small, "ignore_merges", json_false());
    root = bn_seed_with(real, "model", small);
    json_object_set(root, "added_tokens", added);
    json_object_set_new(root, "pre_tokenizer",
                        json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel",
                                  "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1));
    config = json_pack("{s:{s:s, s:b}, s:s, s:b, s:[{s:s, s:s}, {s:s, s:O}]}", "bos_token",
                       "content", "<|begin_of_text|>", "special", 1, "eos_token",
                       "<|eot_id|>", "add_bos_token", 1, "chat_template", "name",
                       "tool_use", "template", "{{ messages }}", "name", "default",
                       "template", json_object_get(real_config, "chat_template"));
    bad |= bn_seed_save(argv[2], "gpt2", root, config);
    json_decref(root);
    json_decref(config);

    json_decref(added);
    json_decref(vocab);
    json_decref(real_config);
    json_decref(real);
    return bad;
}
#endif
