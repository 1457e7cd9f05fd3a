/*
 * test_tokenizer.c - the parts both tokenizer families share, on the real LLaMA 3
 * tokenizer (../shared/data; skipped visibly without it):
 * - the LLaMA 3 chat format against Hugging Face's Jinja rendering of the model's own
 *   template and HF tokenizers' ids (tests/fixtures/chat-llama3.json, made by
 *   scripts/fixtures/chat/make_chat_cases.mjs);
 * - loading from GGUF metadata: a GGUF built here from tokenizer.json (read with
 *   jansson, not with the code under test) gives HF's ids on the reference cases;
 * - special-token parsing on and off, streaming decoding that never splits a
 *   character, errors, and failure injection.
 */
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "bitnet.h"
#include "check.h"
#include "tokenizer/tokenizer_internal.h"

#ifndef BN_SHARED_DATA_DIR
#error "BN_SHARED_DATA_DIR must be defined by the build"
#endif

static char json_path[512], cases_path[512];

/* True when all of s[0, n) is valid UTF-8. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3
                 : c >= 0xf0 && c < 0xf5 ? 4 : 0;
        if (k == 0 || i + k > n)
            return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
        i += k;
    }
    return true;
}

/* Compares the tokenizer's ids for text with the expected JSON array. */
static bool same_ids(const bn_tokenizer *t, const char *text, size_t len, json_t *want,
                     bool parse_special)
{
    bn_tokenize_params p = bn_tokenize_default_params();
    p.parse_special = parse_special;
    bn_token *ids = NULL;
    size_t n = 0;
    if (bn_tokenize(t, text, len, &p, &ids, &n) != BN_OK)
        return false;
    bool same = n == json_array_size(want);
    for (size_t i = 0; same && i < n; i++)
        same = ids[i] == (bn_token)json_integer_value(json_array_get(want, i));
    bn_free(ids);
    return same;
}

static void test_chat(const bn_tokenizer *t)
{
    json_error_t err;
    json_t *cases = json_load_file(BN_FIXTURE_DIR "/chat-llama3.json", 0, &err);
    CHECK(cases != NULL, "chat fixture: %s", err.text);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        json_t *msgs = json_object_get(c, "messages");
        size_t n = json_array_size(msgs);
        bn_chat_message m[8];
        for (size_t k = 0; k < n && k < 8; k++) {
            m[k].role = json_string_value(json_object_get(json_array_get(msgs, k), "role"));
            m[k].content = json_string_value(json_object_get(json_array_get(msgs, k), "content"));
        }
        char *text = NULL;
        size_t len = 0;
        CHECK_OK(bn_chat_format(t, NULL, m, n, true, &text, &len));
        const char *want = json_string_value(json_object_get(c, "text"));
        CHECK(text && strcmp(text, want) == 0, "chat %zu: text\n got  %s\n want %s", i,
              text ? text : "(none)", want);
        CHECK(text && same_ids(t, text, len, json_object_get(c, "ids"), true),
              "chat %zu: token ids differ from the reference", i);
        bn_free(text);
    }
    json_decref(cases);
    bn_chat_message m = {"user", "hi"};
    char *text = NULL;
    size_t len = 0;
    CHECK(bn_chat_format(t, "chatml", &m, 1, true, &text, &len) == BN_ERR_UNSUPPORTED &&
          strstr(bn_last_error(), "chatml"), "unknown template named: %s", bn_last_error());
    CHECK_OK(bn_chat_format(t, "llama3", &m, 1, false, &text, &len));
    CHECK(text && strcmp(text, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>"
                               "\n\nhi<|eot_id|>") == 0, "no assistant header: %s", text);
    bn_free(text);
    /* bitnet-b1.58-2B-4T's format, as its model card's example prompt shows it:
     * "<|begin_of_text|>User: Hey, are you conscious? Can you talk to me?<|eot_id|>
     * Assistant:" (one line) */
    bn_chat_message conv[3] = {{"system", " Be brief. "}, {"user", "Hey, are you conscious? "
                               "Can you talk to me?"}, {"assistant", "Yes.\n"}};
    text = NULL;
    CHECK_OK(bn_chat_format(t, "bitnet", conv + 1, 1, true, &text, &len));
    CHECK(text && strcmp(text, "<|begin_of_text|>User: Hey, are you conscious? Can you talk "
                               "to me?<|eot_id|>Assistant:") == 0, "bitnet: %s", text);
    bn_free(text);
    text = NULL;
    CHECK_OK(bn_chat_format(t, "bitnet", conv, 3, false, &text, &len));
    CHECK(text && strcmp(text, "<|begin_of_text|>System: Be brief.<|eot_id|>User: Hey, are "
                               "you conscious? Can you talk to me?<|eot_id|>Assistant: "
                               "Yes.<|eot_id|>") == 0, "bitnet, 3 messages: %s", text);
    bn_free(text);
    bn_chat_message tool = {"tool", "x"};
    text = NULL;
    CHECK(bn_chat_format(t, "bitnet", &tool, 1, true, &text, &len) == BN_ERR_INVALID_ARG &&
          text == NULL, "bitnet: unknown role refused");
}

/* Writes a GGUF holding the tokenizer.json's vocabulary and merges (read with jansson),
 * as a bitnet-b1.58 model without tokenizer.ggml.pre, like microsoft's file. */
static bool write_gguf_from_json(const char *path)
{
    json_error_t err;
    json_t *root = json_load_file(json_path, 0, &err);
    if (!root)
        return false;
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    size_t n = json_object_size(vocab) + json_array_size(added);
    const char **tokens = calloc(n, sizeof *tokens);
    int32_t *types = calloc(n, sizeof *types);
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        tokens[json_integer_value(v)] = key;
        types[json_integer_value(v)] = BN_TOKEN_NORMAL;
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        tokens[id] = json_string_value(json_object_get(v, "content"));
        types[id] = json_is_true(json_object_get(v, "special")) ? BN_TOKEN_CONTROL
                                                                 : BN_TOKEN_USER_DEFINED;
    }
    size_t nm = json_array_size(merges);
    char **ms = calloc(nm, sizeof *ms);
    json_array_foreach(merges, i, v) {
        if (json_is_string(v)) {
            ms[i] = strdup(json_string_value(v));
        } else {
            const char *a = json_string_value(json_array_get(v, 0));
            const char *b = json_string_value(json_array_get(v, 1));
            ms[i] = malloc(strlen(a) + strlen(b) + 2);
            sprintf(ms[i], "%s %s", a, b);
        }
    }
    bn_gguf_writer *w = NULL;
    bool ok = bn_gguf_writer_create(&w) == BN_OK &&
        bn_gguf_writer_set_str(w, "general.architecture", "bitnet-b1.58") == BN_OK &&
        bn_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2") == BN_OK &&
        bn_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", tokens, n) == BN_OK &&
        bn_gguf_writer_set_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, types, n) == BN_OK &&
        bn_gguf_writer_set_str_array(w, "tokenizer.ggml.merges", (const char *const *)ms, nm) == BN_OK &&
        bn_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 128000) == BN_OK &&
        bn_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 128001) == BN_OK &&
        bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true) == BN_OK &&
        bn_gguf_writer_write(w, path, NULL, NULL) == BN_OK;
    bn_gguf_writer_free(w);
    for (i = 0; i < nm; i++)
        free(ms[i]);
    free(ms);
    free(tokens);
    free(types);
    json_decref(root);
    return ok;
}

static void test_gguf_loading(const bn_tokenizer *from_json)
{
    char path[] = "/tmp/bitnet-test-tok-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        close(fd);
    CHECK(fd >= 0 && write_gguf_from_json(path), "writing the tokenizer GGUF");
    bn_tokenizer *t = NULL;
    CHECK_OK(bn_tokenizer_load_file(path, &t));
    unlink(path);
    if (!t)
        return;
    CHECK(bn_tokenizer_kind_of(t) == BN_TOKENIZER_BPE && bn_tokenizer_n_vocab(t) == 128256,
          "gpt2 tokenizer of 128256 tokens");
    CHECK(bn_tokenizer_bos(t) == 128000 && bn_tokenizer_eos(t) == 128001 &&
          bn_tokenizer_eot(t) == 128009 && bn_tokenizer_wants_bos(t), "special ids");
    CHECK(bn_tokenizer_is_eog(t, 128009) && bn_tokenizer_is_eog(t, 128001) &&
          !bn_tokenizer_is_eog(t, 128000), "end-of-generation tokens");
    json_error_t err;
    json_t *cases = json_load_file(cases_path, 0, &err);
    size_t i;
    json_t *c;
    int bad = 0;
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        json_t *ids = json_object_get(c, "ids");
        if (!same_ids(t, text, strlen(text), ids, true)) {
            bad++;
            fprintf(stderr, "gguf tokenizer differs on: %s\n", text);
        }
        CHECK(same_ids(from_json, text, strlen(text), ids, true), "json tokenizer: %s", text);
    }
    CHECK(bad == 0 && i > 10, "GGUF-loaded tokenizer: %d of %zu cases differ", bad, i);
    json_decref(cases);
    bn_tokenizer_free(t);
}

/* The tokenizer loaded from tokenizer.json, written as GGUF metadata by
 * bn_tokenizer_write_gguf and loaded back: HF's ids on every reference case, with the
 * chat template and special ids. */
static void test_written_gguf(const bn_tokenizer *from_json)
{
    char path[] = "/tmp/bitnet-test-tokw-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        close(fd);
    CHECK(fd >= 0, "temporary file");
    bn_gguf_writer *w = NULL;
    CHECK_OK(bn_gguf_writer_create(&w));
    CHECK_OK(bn_gguf_writer_set_str(w, "general.architecture", "bitnet-b1.58"));
    CHECK_OK(bn_tokenizer_write_gguf(from_json, w));
    CHECK_OK(bn_gguf_writer_write(w, path, NULL, NULL));
    bn_gguf_writer_free(w);
    bn_tokenizer *t = NULL;
    CHECK_OK(bn_tokenizer_load_file(path, &t));
    unlink(path);
    if (!t)
        return;
    CHECK(bn_tokenizer_kind_of(t) == BN_TOKENIZER_BPE && bn_tokenizer_n_vocab(t) == 128256 &&
          bn_tokenizer_bos(t) == 128000 && bn_tokenizer_eos(t) == 128001 &&
          bn_tokenizer_eot(t) == 128009 &&
          bn_tokenizer_wants_bos(t) == bn_tokenizer_wants_bos(from_json),
          "written GGUF: family, size, special ids");
    const char *a = from_json->chat_template, *b = t->chat_template;
    CHECK(a && b && strcmp(a, b) == 0, "written GGUF: the chat template");
    const char *files[] = {cases_path};
    for (int f = 0; f < 1; f++) {
        json_error_t err;
        json_t *cases = json_load_file(files[f], JSON_ALLOW_NUL, &err);
        CHECK(cases != NULL, "%s: %s", files[f], err.text);
        size_t i;
        json_t *c;
        int bad = 0;
        json_array_foreach(cases, i, c) {
            json_t *jt = json_object_get(c, "text");
            if (!same_ids(t, json_string_value(jt), json_string_length(jt),
                          json_object_get(c, "ids"), true)) {
                if (bad++ < 5)
                    fprintf(stderr, "written GGUF differs on: %s\n", json_string_value(jt));
            }
        }
        CHECK(bad == 0 && i > 10, "written GGUF: %d of %zu cases of %s differ", bad, i,
              files[f]);
        json_decref(cases);
    }
    bn_tokenizer_free(t);
}

static void test_specials(const bn_tokenizer *t)
{
    const char *text = "a<|eot_id|>b";
    bn_token *ids = NULL;
    size_t n = 0;
    CHECK_OK(bn_tokenize(t, text, strlen(text), NULL, &ids, &n));
    CHECK(n == 3 && ids[1] == 128009, "special token parsed by default");
    bn_free(ids);
    bn_tokenize_params p = bn_tokenize_default_params();
    p.parse_special = false;
    p.add_bos = true;
    CHECK_OK(bn_tokenize(t, text, strlen(text), &p, &ids, &n));
    bool plain = n > 3 && ids[0] == 128000;
    for (size_t i = 1; i < n; i++)
        plain = plain && ids[i] < 128000;
    CHECK(plain, "--no-special: the string is plain text, BOS first");
    char *back = NULL;
    size_t len = 0;
    CHECK_OK(bn_detokenize(t, ids, n, false, &back, &len));
    CHECK(back && strcmp(back, text) == 0, "decodes to the text without BOS: %s", back);
    bn_free(back);
    CHECK_OK(bn_detokenize(t, ids, n, true, &back, &len));
    CHECK(back && strncmp(back, "<|begin_of_text|>a<|eot_id|>b", len) == 0,
          "render_special shows BOS: %s", back);
    bn_free(back);
    bn_token bad[2] = {5, 128256};
    CHECK(bn_detokenize(t, bad, 2, true, &back, &len) == BN_ERR_INVALID_ARG &&
          strstr(bn_last_error(), "128256"), "id out of range named: %s", bn_last_error());
    bn_free(ids);
}

static void test_stream(const bn_tokenizer *t)
{
    json_error_t err;
    json_t *cases = json_load_file(cases_path, 0, &err);
    CHECK(json_array_size(cases) > 0, "stream: no cases in %s: %s", cases_path,
          cases ? "not a non-empty array" : err.text);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        CHECK(text != NULL, "stream case %zu has no \"text\" string", i);
        if (!text)
            continue;
        bn_token *ids = NULL;
        size_t n = 0;
        bn_status st = bn_tokenize(t, text, strlen(text), NULL, &ids, &n);
        CHECK(st == BN_OK, "stream case %zu: encoding \"%.40s\" failed: %s: %s", i, text,
              bn_status_str(st), bn_last_error());
        if (st != BN_OK)
            continue;   /* the case failed above; there is nothing to stream */
        bn_detok_stream *s = NULL;
        CHECK_OK(bn_detok_stream_create(t, true, &s));
        char out[4096];
        size_t used = 0;
        bool chunks_valid = true;
        for (size_t k = 0; s && k < n; k++) {
            const char *piece;
            size_t len;
            CHECK_OK(bn_detok_stream_push(s, ids[k], &piece, &len));
            chunks_valid = chunks_valid && valid_utf8((const unsigned char *)piece, len);
            if (used + len < sizeof out) {
                memcpy(out + used, piece, len);
                used += len;
            }
        }
        const char *rest;
        size_t rlen;
        if (s)
            bn_detok_stream_flush(s, &rest, &rlen);
        CHECK(s && rlen == 0, "case %zu: nothing held back at the end", i);
        CHECK(chunks_valid, "case %zu: every streamed chunk is whole UTF-8", i);
        CHECK(used == strlen(text) && memcmp(out, text, used) == 0,
              "case %zu: the stream gives back the text", i);
        bn_detok_stream_free(s);
        bn_free(ids);
    }
    json_decref(cases);
}

static void test_failure_injection(const bn_tokenizer *t)
{
    const char *text = "Hello <|eot_id|> wörld 👍🏽 12345";
    int failures = 0;
    for (uint64_t k = 1; k < 100; k++) {
        bn_mem_stats before, after;
        bn_mem_get_stats(&before);
        bn_token *ids = NULL;
        size_t n = 0;
        bn_mem_fail_nth(k);
        bn_status st = bn_tokenize(t, text, strlen(text), NULL, &ids, &n);
        bn_mem_fail_nth(0);
        if (st == BN_OK) {
            bn_free(ids);
            break;
        }
        failures++;
        bn_mem_get_stats(&after);
        CHECK(st == BN_ERR_OOM && after.live_blocks == before.live_blocks,
              "tokenize fail #%llu: %s", (unsigned long long)k, bn_last_error());
    }
    CHECK(failures > 0, "tokenize allocations covered");
}

int main(void)
{
    snprintf(json_path, sizeof json_path, "%s/tokenizer/llama3/tokenizer.json",
             BN_SHARED_DATA_DIR);
    snprintf(cases_path, sizeof cases_path, "%s/tokenizer/llama3-cases.json",
             BN_SHARED_DATA_DIR);
    if (access(json_path, R_OK) != 0)
        check_skip("test_tokenizer", "needs ../shared/data/tokenizer/llama3 (reference data "
                   "present in CI, not shipped with the project)");
    bn_tokenizer *t = NULL;
    CHECK_OK(bn_tokenizer_load_file(json_path, &t));
    if (t) {
        test_chat(t);
        test_gguf_loading(t);
        test_written_gguf(t);
        test_specials(t);
        test_stream(t);
        test_failure_injection(t);
    }
    bn_tokenizer_free(t);
    CHECK(bn_mem_leak_report() == 0, "no leaks");
    return check_summary("test_tokenizer");
}
