/*
 * tok_bpe_hf.c - loads a byte-level BPE tokenizer from a Hugging Face tokenizer.json
 * (with the tokenizer_config.json next to it, when there is one): the vocabulary and
 * added tokens, the merges, the pre-tokenizer (recognised by its exact regex: LLaMA 3
 * or GPT-2's ByteLevel), BOS / EOS and the chat template. Anything this library would
 * not encode as Hugging Face does (a normalizer, another regex, a prefix space,
 * dropout...) is refused with BN_ERR_UNSUPPORTED naming it; malformed files are
 * BN_ERR_FORMAT naming the file and what is wrong.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "tokenizer/tokenizer_internal.h"

/* LLaMA 3's pre-tokenizer regex as its tokenizer.json spells it (tok_bpe.c compiles
 * an equivalent for PCRE2). */
static const char bn_bpe_hf_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* A malformed-file error; `file` names the file when it is not the tokenizer.json
 * itself (NULL), which the caller's context names. */
static bn_status BN_PRINTF(2, 3) bn_hf_bad(const char *file, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (!file)
        return bn_error_set(BN_ERR_FORMAT, "%s", what);
    return bn_error_set(BN_ERR_FORMAT, "%s: %s", file, what);
}

/* The string member `key` of obj, or NULL. */
static const char *bn_hf_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* Boolean member `key` of obj; `def` when absent or null; -1 when of another type. */
static int bn_hf_flag(const json_t *obj, const char *key, bool def)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return def;
    return json_is_boolean(v) ? json_is_true(v) : -1;
}

/* Recognises the pre-tokenizer: *pre gets "llama3" or "gpt2". Anything else (a
 * normalizer, another regex, a prefix space) is BN_ERR_UNSUPPORTED naming it. */
static bn_status bn_hf_pre(const json_t *root, const char **pre)
{
    const json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm))
        return bn_error_set(BN_ERR_UNSUPPORTED, "normalizer '%s' is not supported with "
                            "byte-level BPE", bn_hf_str(norm, "type") ?
                            bn_hf_str(norm, "type") : "?");
    const json_t *pt = json_object_get(root, "pre_tokenizer");
    const char *type = bn_hf_str(pt, "type");
    if (!type)
        return bn_error_set(BN_ERR_UNSUPPORTED, "a BPE tokenizer without a "
                            "pre_tokenizer is not supported");
    const json_t *byte_level = pt, *split = NULL;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(pt, "pretokenizers");
        if (json_array_size(list) != 2 ||
            !bn_hf_str(json_array_get(list, 0), "type") ||
            strcmp(bn_hf_str(json_array_get(list, 0), "type"), "Split") != 0)
            return bn_error_set(BN_ERR_UNSUPPORTED, "this pre_tokenizer Sequence is not "
                                "supported (Split then ByteLevel is)");
        split = json_array_get(list, 0);
        byte_level = json_array_get(list, 1);
    }
    const char *bl_type = bn_hf_str(byte_level, "type");
    if (!bl_type || strcmp(bl_type, "ByteLevel") != 0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "pre_tokenizer '%s' is not supported "
                            "(byte-level BPE needs ByteLevel)", bl_type ? bl_type : "?");
    int use_regex = bn_hf_flag(byte_level, "use_regex", true);
    int prefix = bn_hf_flag(byte_level, "add_prefix_space", true);
    if (use_regex < 0 || prefix < 0)
        return bn_hf_bad(NULL, "pre_tokenizer ByteLevel: use_regex and add_prefix_space "
                         "must be booleans");
    if (prefix)
        return bn_error_set(BN_ERR_UNSUPPORTED, "ByteLevel add_prefix_space is not "
                            "supported");
    if (!split) {
        if (!use_regex)
            return bn_error_set(BN_ERR_UNSUPPORTED, "ByteLevel without a regex is not "
                                "supported");
        *pre = "gpt2";
        return BN_OK;
    }
    const char *regex = bn_hf_str(json_object_get(split, "pattern"), "Regex");
    const char *behavior = bn_hf_str(split, "behavior");
    int invert = bn_hf_flag(split, "invert", false);
    if (!regex)
        return bn_error_set(BN_ERR_UNSUPPORTED, "a Split pre-tokenizer without a Regex "
                            "pattern is not supported");
    if (strcmp(regex, bn_bpe_hf_llama3) != 0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "pre-tokenizer regex \"%.200s\" is not "
                            "supported (only LLaMA 3's is)", regex);
    if (!behavior || strcmp(behavior, "Isolated") != 0 || invert != 0 || use_regex)
        return bn_error_set(BN_ERR_UNSUPPORTED, "Split behavior '%s' (invert %d) then "
                            "ByteLevel use_regex %d is not supported",
                            behavior ? behavior : "?", invert, use_regex);
    *pre = "llama3";
    return BN_OK;
}

/* A token id from JSON: an integer in [0, INT32_MAX). */
static bool bn_hf_id(const json_t *v, bn_token *id)
{
    if (!json_is_integer(v))
        return false;
    json_int_t i = json_integer_value(v);
    if (i < 0 || i >= INT32_MAX)
        return false;
    *id = (bn_token)i;
    return true;
}

/* Checks the vocabulary and added tokens and counts ids: *n_vocab = max id + 1. */
static bn_status bn_hf_count(const json_t *vocab, const json_t *added, int32_t *n_vocab)
{
    size_t n_defined = json_object_size(vocab) + json_array_size(added);
    bn_token max_id = -1;
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach((json_t *)vocab, key, key_len, v) {
        bn_token id;
        if (!bn_hf_id(v, &id))
            return bn_hf_bad(NULL, "model.vocab: the id of \"%.*s\" is not a token id",
                             (int)(key_len > 64 ? 64 : key_len), key);
        max_id = id > max_id ? id : max_id;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        bn_token id;
        if (!bn_hf_id(json_object_get(a, "id"), &id) || !bn_hf_str(a, "content") ||
            json_string_length(json_object_get(a, "content")) == 0)
            return bn_hf_bad(NULL, "added_tokens[%zu] needs an id and a non-empty content", i);
        max_id = id > max_id ? id : max_id;
    }
    if (max_id < 0)
        return bn_hf_bad(NULL, "model.vocab is empty");
    if ((size_t)max_id + 1 > 2 * n_defined + 1024)
        return bn_hf_bad(NULL, "token ids reach %d for only %zu entries", max_id, n_defined);
    *n_vocab = max_id + 1;
    return BN_OK;
}

/* Fills the vocabulary: added tokens (CONTROL when special, else USER_DEFINED), then
 * model.vocab (NORMAL), then "<unused-ID>" (UNUSED) for ids that have neither. */
static bn_status bn_hf_vocab(bn_tokenizer *t, const json_t *vocab, const json_t *added)
{
    bool *set = bn_calloc((size_t)t->n_vocab, sizeof *set, "tokenizer");
    if (!set)
        return bn_error_wrap(BN_OK, "reading the vocabulary");
    bn_status st = BN_OK;
    for (size_t i = 0; i < json_array_size(added) && st == BN_OK; i++) {
        const json_t *a = json_array_get(added, i);
        const json_t *content = json_object_get(a, "content");
        bn_token id = 0;
        bn_hf_id(json_object_get(a, "id"), &id);   /* checked by bn_hf_count */
        int special = bn_hf_flag(a, "special", false);
        if (set[id] || special < 0)
            st = bn_hf_bad(NULL, "added_tokens[%zu] (id %d): %s", i, id,
                           set[id] ? "the id is used twice" : "special is not a boolean");
        else
            st = bn_tok_set_entry(t, id, json_string_value(content), json_string_length(content),
                                  0.0f, special ? BN_TOKEN_CONTROL : BN_TOKEN_USER_DEFINED);
        set[id] = true;
    }
    const char *key;
    size_t key_len;
    json_t *v;
    bool *in_vocab = st == BN_OK ? bn_calloc((size_t)t->n_vocab, sizeof *in_vocab,
                                             "tokenizer") : NULL;
    if (st == BN_OK && !in_vocab)
        st = bn_error_wrap(BN_OK, "reading the vocabulary");
    json_object_keylen_foreach((json_t *)vocab, key, key_len, v) {
        if (st != BN_OK)
            break;
        bn_token id = (bn_token)json_integer_value(v);
        if (in_vocab[id])
            st = bn_hf_bad(NULL, "model.vocab: id %d is given to two entries (one is \"%.*s\")",
                           id, (int)(key_len > 64 ? 64 : key_len), key);
        else if (!set[id])   /* an added token with the same id keeps its entry */
            st = bn_tok_set_entry(t, id, key, key_len, 0.0f, BN_TOKEN_NORMAL);
        in_vocab[id] = set[id] = true;
    }
    for (bn_token id = 0; id < t->n_vocab && st == BN_OK; id++) {
        if (!set[id]) {
            char text[32];
            int n = snprintf(text, sizeof text, "<unused-%d>", id);
            st = bn_tok_set_entry(t, id, text, (size_t)n, 0.0f, BN_TOKEN_UNUSED);
        }
    }
    bn_free(in_vocab);
    bn_free(set);
    return st;
}

/* model.merges ("a b" strings or [a, b] pairs) into BPE. */
static bn_status bn_hf_merges(bn_tokenizer *t, const json_t *merges, const char *pre,
                              bool ignore_merges)
{
    size_t n = json_array_size(merges), joined_size = 0;
    const char **strs = bn_malloc((n + 1) * sizeof *strs, "tokenizer");
    uint32_t *lens = bn_malloc((n + 1) * sizeof *lens, "tokenizer");
    char *joined = NULL;   /* the [a, b] pairs as "a b" strings */
    bn_status st = strs && lens ? BN_OK : bn_error_wrap(BN_OK, "reading merges");
    for (size_t i = 0; i < n && st == BN_OK; i++) {
        const json_t *m = json_array_get(merges, i);
        if (json_is_array(m) && json_array_size(m) == 2 &&
            json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            const json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
            if (memchr(json_string_value(a), ' ', json_string_length(a)) ||
                memchr(json_string_value(b), ' ', json_string_length(b)))
                st = bn_hf_bad(NULL, "model.merges[%zu]: a part holds a space", i);
            joined_size += json_string_length(a) + json_string_length(b) + 1;
        } else if (!json_is_string(m) || json_string_length(m) > UINT32_MAX) {
            st = bn_hf_bad(NULL, "model.merges[%zu] is neither \"a b\" nor [a, b]", i);
        }
    }
    if (st == BN_OK && joined_size && !(joined = bn_malloc(joined_size, "tokenizer")))
        st = bn_error_wrap(BN_OK, "reading merges");
    size_t at = 0;
    for (size_t i = 0; i < n && st == BN_OK; i++) {
        const json_t *m = json_array_get(merges, i);
        if (json_is_string(m)) {
            strs[i] = json_string_value(m);
            lens[i] = (uint32_t)json_string_length(m);
            continue;
        }
        const json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
        size_t la = json_string_length(a), lb = json_string_length(b);
        strs[i] = joined + at;
        lens[i] = (uint32_t)(la + 1 + lb);
        memcpy(joined + at, json_string_value(a), la);
        joined[at + la] = ' ';
        memcpy(joined + at + la + 1, json_string_value(b), lb);
        at += la + 1 + lb;
    }
    if (st == BN_OK)
        st = bn_tok_bpe_init(t, strs, lens, n, pre, ignore_merges);
    bn_free(joined);
    bn_free(strs);
    bn_free(lens);
    return st;
}

/* The special token that the post_processor's TemplateProcessing puts first in a single
 * sequence (the BOS that Hugging Face adds), or -1. */
static bn_token bn_hf_template_bos(const bn_tokenizer *t, const json_t *pp)
{
    const char *type = bn_hf_str(pp, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(pp, "processors");
        for (size_t i = 0; i < json_array_size(list); i++) {
            bn_token id = bn_hf_template_bos(t, json_array_get(list, i));
            if (id >= 0)
                return id;
        }
        return -1;
    }
    if (!type || strcmp(type, "TemplateProcessing") != 0)
        return -1;
    const json_t *first = json_array_get(json_object_get(pp, "single"), 0);
    const char *name = bn_hf_str(json_object_get(first, "SpecialToken"), "id");
    return name ? bn_strmap_get(t->piece_to_id, name, strlen(name), -1) : -1;
}

/* A token named in tokenizer_config.json: a string or {"content": ...}. *id is left
 * alone when the key is absent or null; a text that is no token is an error. */
static bn_status bn_hf_config_token(const char *path, const bn_tokenizer *t,
                                    const json_t *config, const char *key, bn_token *id)
{
    const json_t *v = json_object_get(config, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (!v || json_is_null(v))
        return BN_OK;
    if (!json_is_string(v))
        return bn_hf_bad(path, "%s is not a string", key);
    bn_token found = bn_strmap_get(t->piece_to_id, json_string_value(v),
                                   json_string_length(v), -1);
    if (found < 0)
        return bn_hf_bad(path, "%s \"%.64s\" is not in the vocabulary", key,
                         json_string_value(v));
    *id = found;
    return BN_OK;
}

/* tokenizer_config.json next to the tokenizer.json, if there is one: BOS, EOS, the
 * padding and unknown tokens, add_bos_token and the chat template. */
static bn_status bn_hf_config(const char *path, bn_tokenizer *t)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    static const char name[] = "tokenizer_config.json";
    char *cpath = bn_malloc(dir_len + sizeof name, "tokenizer");
    if (!cpath)
        return bn_error_wrap(BN_OK, "reading its config");
    memcpy(cpath, path, dir_len);
    memcpy(cpath + dir_len, name, sizeof name);
    FILE *f = fopen(cpath, "rb");
    if (!f) {
        bn_status st = errno == ENOENT ? BN_OK
                       : bn_error_set(BN_ERR_IO, "opening %s: %s", cpath, strerror(errno));
        bn_free(cpath);
        return st;
    }
    json_error_t jerr;
    /* reals for integers: these files hold numbers like model_max_length = 1e30 */
    json_t *config = json_loadf(f, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
    fclose(f);
    bn_status st = BN_OK;
    if (!json_is_object(config))
        st = config ? bn_hf_bad(cpath, "not a JSON object")
                    : bn_hf_bad(cpath, "line %d: %s", jerr.line, jerr.text);
    if (st == BN_OK) st = bn_hf_config_token(cpath, t, config, "bos_token", &t->bos);
    if (st == BN_OK) st = bn_hf_config_token(cpath, t, config, "eos_token", &t->eos);
    if (st == BN_OK) st = bn_hf_config_token(cpath, t, config, "pad_token", &t->pad);
    if (st == BN_OK) st = bn_hf_config_token(cpath, t, config, "unk_token", &t->unk);
    int add_bos = st == BN_OK ? bn_hf_flag(config, "add_bos_token", t->add_bos) : 0;
    if (add_bos < 0)
        st = bn_hf_bad(cpath, "add_bos_token is not a boolean");
    t->add_bos = add_bos > 0;
    /* a string, or a list of {"name", "template"}: the one named "default" */
    const json_t *tmpl = st == BN_OK ? json_object_get(config, "chat_template") : NULL;
    for (size_t i = 0; json_is_array(tmpl) && i < json_array_size(tmpl); i++) {
        const char *tname = bn_hf_str(json_array_get(tmpl, i), "name");
        if (tname && strcmp(tname, "default") == 0) {
            tmpl = json_object_get(json_array_get(tmpl, i), "template");
            break;
        }
    }
    if (json_is_string(tmpl) &&
        !(t->chat_template = bn_arena_strdup(t->arena, json_string_value(tmpl))))
        st = bn_error_wrap(BN_OK, "%s: copying the chat template", cpath);
    json_decref(config);
    bn_free(cpath);
    return st;
}

/* Everything after the tokenizer is created: vocabulary, merges, special ids. */
static bn_status bn_hf_fill(const char *path, const json_t *root, const json_t *model,
                            const char *pre, bn_tokenizer *t)
{
    const json_t *added = json_object_get(root, "added_tokens");
    bn_status st = bn_hf_vocab(t, json_object_get(model, "vocab"), added);
    int ignore_merges = bn_hf_flag(model, "ignore_merges", false);
    if (st == BN_OK && ignore_merges < 0)
        st = bn_hf_bad(NULL, "model.ignore_merges is not a boolean");
    if (st == BN_OK)
        st = bn_hf_merges(t, json_object_get(model, "merges"), pre, ignore_merges > 0);
    if (st != BN_OK)
        return st;
    const char *unk = bn_hf_str(model, "unk_token");
    if (unk)
        t->unk = bn_strmap_get(t->piece_to_id, unk, strlen(unk), -1);
    t->bos = bn_hf_template_bos(t, json_object_get(root, "post_processor"));
    t->add_bos = t->bos >= 0;
    st = bn_hf_config(path, t);
    if (st == BN_OK)
        st = bn_tok_finish(t);
    return st;
}

bn_status bn_tok_load_hf_json(const char *path, bn_tokenizer **out)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_cannot_open_file)
            return bn_error_set(BN_ERR_IO, "%s", jerr.text);   /* names the file */
        return bn_error_wrap(bn_hf_bad(NULL, "line %d: %s", jerr.line, jerr.text),
                             "loading the Hugging Face tokenizer %s", path);
    }
    bn_status st = BN_OK;
    const json_t *model = json_object_get(root, "model");
    const char *type = bn_hf_str(model, "type");
    const char *pre = NULL;
    int32_t n_vocab = 0;
    if (!json_is_object(model))
        st = bn_hf_bad(NULL, "no model object");
    else if (type && strcmp(type, "BPE") != 0)
        st = bn_error_set(BN_ERR_UNSUPPORTED, "tokenizer model '%s' is not supported "
                          "(BPE is)", type);
    else if (!json_is_object(json_object_get(model, "vocab")) ||
             !json_is_array(json_object_get(model, "merges")))
        st = bn_hf_bad(NULL, "model.vocab must be an object and model.merges an array");
    else if (json_object_get(root, "added_tokens") &&
             !json_is_array(json_object_get(root, "added_tokens")))
        st = bn_hf_bad(NULL, "added_tokens must be an array");
    const char *prefix = bn_hf_str(model, "continuing_subword_prefix");
    const char *suffix = bn_hf_str(model, "end_of_word_suffix");
    const json_t *dropout = json_object_get(model, "dropout");
    if (st == BN_OK && ((prefix && *prefix) || (suffix && *suffix) ||
                        (json_is_number(dropout) && json_number_value(dropout) > 0)))
        st = bn_error_set(BN_ERR_UNSUPPORTED, "BPE with a subword prefix, word suffix "
                          "or dropout is not supported");
    if (st == BN_OK)
        st = bn_hf_pre(root, &pre);
    if (st == BN_OK)
        st = bn_hf_count(json_object_get(model, "vocab"),
                         json_object_get(root, "added_tokens"), &n_vocab);
    bn_tokenizer *t = NULL;
    if (st == BN_OK)
        st = bn_tok_create(BN_TOKENIZER_BPE, n_vocab, &t);
    if (st == BN_OK)
        st = bn_hf_fill(path, root, model, pre, t);
    json_decref(root);
    if (st != BN_OK) {
        bn_tokenizer_free(t);
        return bn_error_wrap(BN_OK, "loading the Hugging Face tokenizer %s", path);
    }
    *out = t;
    return BN_OK;
}
