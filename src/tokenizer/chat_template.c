/*
 * chat_template.c - renders a conversation as the text a chat model was trained on
 * (bn_chat_format): the LLaMA 3 format and bitnet-b1.58-2B-4T's, named or recognised
 * in the model's tokenizer.chat_template. Only text is built here; tokenizing it is
 * the caller's next step.
 */
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* Bytes of the white-space character (as Python's str.strip and JavaScript's trim both
 * see it) that p[0, n) starts with (from_end: ends with); 0 when it is none. */
static size_t bn_space_len(const unsigned char *p, size_t n, bool from_end)
{
    static const char *const wide[] = {
        "\xc2\xa0", "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82",
        "\xe2\x80\x83", "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87",
        "\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9",
        "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80",
    };
    if (n == 0)
        return 0;
    unsigned char c = from_end ? p[n - 1] : p[0];
    if (c == ' ' || (c >= '\t' && c <= '\r'))
        return 1;
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) {
        size_t k = strlen(wide[i]);
        if (k <= n && memcmp(from_end ? p + n - k : p, wide[i], k) == 0)
            return k;
    }
    return 0;
}

/* Appends s without leading and trailing white space (the templates' `trim`). */
static bn_status bn_append_trimmed(bn_bytes *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), k;
    while ((k = bn_space_len(p, n, false)) > 0) {
        p += k;
        n -= k;
    }
    while ((k = bn_space_len(p, n, true)) > 0)
        n -= k;
    return bn_bytes_append(b, p, n);
}

static bn_status bn_append_str(bn_bytes *b, const char *s)
{
    return bn_bytes_append(b, s, strlen(s));
}

/* The LLaMA 3 format: BOS, then per message a role header, the trimmed content and
 * <|eot_id|>; optionally the assistant header. */
static bn_status bn_chat_llama3(const bn_tokenizer *t, const bn_chat_message *msgs,
                                size_t n, bool add_assistant, bn_bytes *out)
{
    bn_status st = bn_bytes_append(out, "", 0);
    if (st == BN_OK && t->bos >= 0)
        st = bn_bytes_append(out, t->vocab[t->bos].text, t->vocab[t->bos].len);
    for (size_t i = 0; st == BN_OK && i < n; i++) {
        st = bn_append_str(out, "<|start_header_id|>");
        if (st == BN_OK) st = bn_append_str(out, msgs[i].role);
        if (st == BN_OK) st = bn_append_str(out, "<|end_header_id|>\n\n");
        if (st == BN_OK) st = bn_append_trimmed(out, msgs[i].content);
        if (st == BN_OK) st = bn_append_str(out, "<|eot_id|>");
    }
    if (st == BN_OK && add_assistant)
        st = bn_append_str(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return st;
}

/* The bitnet-b1.58-2B-4T format: BOS, then per message "System: ", "User: " or
 * "Assistant: ", the trimmed content and <|eot_id|>; optionally "Assistant:" (as the
 * model's published example prompt ends). */
static bn_status bn_chat_bitnet(const bn_tokenizer *t, const bn_chat_message *msgs,
                                size_t n, bool add_assistant, bn_bytes *out)
{
    bn_status st = bn_bytes_append(out, "", 0);
    if (st == BN_OK && t->bos >= 0)
        st = bn_bytes_append(out, t->vocab[t->bos].text, t->vocab[t->bos].len);
    for (size_t i = 0; st == BN_OK && i < n; i++) {
        const char *r = msgs[i].role;
        st = bn_append_str(out, !strcmp(r, "system") ? "System: "
                                : !strcmp(r, "user") ? "User: " : "Assistant: ");
        if (st == BN_OK) st = bn_append_trimmed(out, msgs[i].content);
        if (st == BN_OK) st = bn_append_str(out, "<|eot_id|>");
    }
    if (st == BN_OK && add_assistant)
        st = bn_append_str(out, "Assistant:");
    return st;
}

bn_status bn_chat_format(const bn_tokenizer *t, const char *template_name,
                         const bn_chat_message *msgs, size_t n_msgs, bool add_assistant,
                         char **text, size_t *len)
{
    const char *name = template_name;
    if (!name) {
        if (!t->chat_template)
            return bn_error_set(BN_ERR_UNSUPPORTED, "the model has no chat template; name "
                                "one (llama3)");
        if (strstr(t->chat_template, "<|start_header_id|>"))
            name = "llama3";
        else if (strstr(t->chat_template, "User: ") &&
                 strstr(t->chat_template, "Assistant: ") &&
                 strstr(t->chat_template, "<|eot_id|>"))
            name = "bitnet";
        else
            return bn_error_set(BN_ERR_UNSUPPORTED, "the model's chat template (\"%.40s...\") "
                                "is not one this version knows; name one (llama3, bitnet)",
                                t->chat_template);
    }
    if (strcmp(name, "llama3") != 0 && strcmp(name, "bitnet") != 0)
        return bn_error_set(BN_ERR_UNSUPPORTED, "unknown chat template '%s' (llama3 and "
                            "bitnet are known)", name);
    for (size_t i = 0; i < n_msgs; i++)
        if (msgs[i].role && strcmp(msgs[i].role, "system") && strcmp(msgs[i].role, "user") &&
            strcmp(msgs[i].role, "assistant") && strcmp(name, "bitnet") == 0)
            return bn_error_set(BN_ERR_INVALID_ARG, "chat message %zu: the bitnet template "
                                "knows the roles system, user and assistant, not '%s'", i,
                                msgs[i].role);
    for (size_t i = 0; i < n_msgs; i++)
        if (!msgs[i].role || !msgs[i].content)
            return bn_error_set(BN_ERR_INVALID_ARG, "chat message %zu has no role or content",
                                i);
    bn_bytes out = {0};
    bn_status st = strcmp(name, "bitnet") == 0
                   ? bn_chat_bitnet(t, msgs, n_msgs, add_assistant, &out)
                   : bn_chat_llama3(t, msgs, n_msgs, add_assistant, &out);
    if (st != BN_OK) {
        bn_free(out.p);
        return bn_error_wrap(BN_OK, "formatting a chat");
    }
    *text = out.p;
    *len = out.n;
    return BN_OK;
}
