/*
 * chat.c - the chat session: a conversation kept beside a context. Before each reply
 * the whole conversation is rendered with the chat template and tokenized; the part of
 * it that the KV cache already holds is kept (the cache's token ids are tracked beside
 * it) and only the rest is evaluated. When the conversation outgrows the context, its
 * oldest exchanges are dropped (a system message stays). The reply itself is
 * bn_generate's loop, with a callback that records the reply's text and token ids on
 * the way to the caller's callback.
 */
#include <assert.h>
#include <string.h>

#include "model/generate_internal.h"

struct bn_chat {
    const bn_model     *model;
    bn_context         *ctx;
    const bn_tokenizer *tok;
    char               *template_name;  /* a copy; NULL: the model's template */
    int32_t             n_ctx;
    bn_chat_message    *msgs;           /* [cap] the conversation; a message's role and
                                           content share one block, role first */
    size_t              n_msgs, cap;
    bn_token           *cached;         /* [n_ctx + 1] the ids in the KV cache, n_cached
                                           of them, then a reply's unevaluated last one */
    int32_t             n_cached;
    bn_token           *rendered;       /* [n_rendered] the conversation as the last
                                           prefill tokenized it */
    size_t              n_rendered;
    bool                prefilled;      /* the cache holds `rendered`, the conversation
                                           has not changed since */
    char               *reply;          /* [reply_cap] the reply being generated */
    size_t              reply_len, reply_cap;
};

bn_chat_params bn_chat_default_params(void)
{
    bn_chat_params p = {0};
    return p;
}

/* ------------------------------------------------------------------ messages */

/* A copy of a message in one block: role, NUL, content, NUL. */
static bn_status bn_chat_copy_message(const char *role, const char *content,
                                      bn_chat_message *out)
{
    size_t role_len = strlen(role), content_len = strlen(content);
    char *block = bn_malloc(role_len + content_len + 2, "chat");
    if (!block)
        return bn_error_wrap(BN_OK, "chat: keeping a message of %zu bytes", content_len);
    memcpy(block, role, role_len + 1);
    memcpy(block + role_len + 1, content, content_len + 1);
    out->role = block;
    out->content = block + role_len + 1;
    return BN_OK;
}

static void bn_chat_free_message(bn_chat_message *m)
{
    bn_free((void *)m->role);   /* the block holds the content too */
}

/* Room for n messages in chat->msgs. */
static bn_status bn_chat_reserve(bn_chat *chat, size_t n)
{
    if (n <= chat->cap)
        return BN_OK;
    size_t cap = chat->cap ? chat->cap : 16;
    while (cap < n)
        cap *= 2;
    bn_chat_message *grown = bn_calloc(cap, sizeof *grown, "chat");
    if (!grown)
        return bn_error_wrap(BN_OK, "chat: room for %zu messages", n);
    if (chat->n_msgs)
        memcpy(grown, chat->msgs, chat->n_msgs * sizeof *grown);
    bn_free(chat->msgs);
    chat->msgs = grown;
    chat->cap = cap;
    return BN_OK;
}

size_t bn_chat_n_messages(const bn_chat *chat)
{
    return chat->n_msgs;
}

bn_chat_message bn_chat_get_message(const bn_chat *chat, size_t i)
{
    assert(i < chat->n_msgs);
    return chat->msgs[i];
}

bn_status bn_chat_add_message(bn_chat *chat, const char *role, const char *content)
{
    assert(role && content);
    bn_status st = bn_chat_reserve(chat, chat->n_msgs + 1);
    if (st == BN_OK)
        st = bn_chat_copy_message(role, content, &chat->msgs[chat->n_msgs]);
    if (st != BN_OK)
        return st;
    chat->n_msgs++;
    chat->prefilled = false;
    return BN_OK;
}

void bn_chat_remove_messages(bn_chat *chat, size_t first, size_t count)
{
    assert(first <= chat->n_msgs && count <= chat->n_msgs - first);
    if (count == 0)
        return;
    for (size_t i = first; i < first + count; i++)
        bn_chat_free_message(&chat->msgs[i]);
    memmove(chat->msgs + first, chat->msgs + first + count,
            (chat->n_msgs - first - count) * sizeof *chat->msgs);
    chat->n_msgs -= count;
    chat->prefilled = false;
}

bn_status bn_chat_set_messages(bn_chat *chat, const bn_chat_message *msgs, size_t n)
{
    /* copies first: msgs may point into the conversation being replaced */
    bn_chat_message *copies = bn_calloc(n ? n : 1, sizeof *copies, "chat");
    if (!copies)
        return bn_error_wrap(BN_OK, "chat: room for %zu messages", n);
    for (size_t i = 0; i < n; i++) {
        assert(msgs[i].role && msgs[i].content);
        if (bn_chat_copy_message(msgs[i].role, msgs[i].content, &copies[i]) != BN_OK) {
            for (size_t k = 0; k < i; k++)
                bn_chat_free_message(&copies[k]);
            bn_free(copies);
            return bn_last_status();
        }
    }
    bn_chat_remove_messages(chat, 0, chat->n_msgs);
    bn_free(chat->msgs);
    chat->msgs = copies;
    chat->cap = n ? n : 1;
    chat->n_msgs = n;
    chat->prefilled = false;
    return BN_OK;
}

/* Index of the first message that may be dropped: 1 after a system message, else 0. */
static size_t bn_chat_first_turn(const bn_chat *chat)
{
    return chat->n_msgs > 0 && strcmp(chat->msgs[0].role, "system") == 0 ? 1 : 0;
}

/* ------------------------------------------------------------------ session */

bn_status bn_chat_create(bn_context *ctx, const bn_chat_params *params, bn_chat **out)
{
    const bn_model *model = bn_context_model(ctx);
    bn_chat_params defaults = bn_chat_default_params();
    const bn_chat_params *p = params ? params : &defaults;
    const bn_tokenizer *tok = bn_model_tokenizer(model);
    if (!tok)
        return bn_error_set(BN_ERR_INVALID_ARG, "chat: the model has no tokenizer");
    /* an unknown template fails here, with bn_chat_format's message */
    char *text = NULL;
    size_t len;
    bn_status st = bn_chat_format(tok, p->template_name, NULL, 0, false, &text, &len);
    if (st != BN_OK)
        return st;
    bn_free(text);
    bn_chat *chat = bn_calloc(1, sizeof *chat, "chat");
    if (!chat)
        return bn_error_wrap(BN_OK, "chat: creating a session");
    chat->model = model;
    chat->ctx = ctx;
    chat->tok = tok;
    chat->n_ctx = bn_context_n_ctx(ctx);
    chat->cached = bn_malloc(((size_t)chat->n_ctx + 1) * sizeof *chat->cached, "chat");
    if (p->template_name) {
        size_t name_len = strlen(p->template_name);
        if ((chat->template_name = bn_malloc(name_len + 1, "chat")))
            memcpy(chat->template_name, p->template_name, name_len + 1);
    }
    if (!chat->cached || (p->template_name && !chat->template_name)) {
        bn_chat_free(chat);
        return bn_error_wrap(BN_OK, "chat: creating a session");
    }
    *out = chat;
    return BN_OK;
}

void bn_chat_free(bn_chat *chat)
{
    if (!chat)
        return;
    bn_chat_remove_messages(chat, 0, chat->n_msgs);
    bn_free(chat->msgs);
    bn_free(chat->cached);
    bn_free(chat->rendered);
    bn_free(chat->reply);
    bn_free(chat->template_name);
    bn_free(chat);
}

/* ------------------------------------------------------------------ prefill */

/* The conversation without messages [first, start) (first: the one after a system
 * message), rendered with the assistant's header and tokenized (the template writes
 * BOS itself) into a new *ids. */
static bn_status bn_chat_render(const bn_chat *chat, size_t start, bn_token **ids,
                                size_t *n)
{
    size_t first = bn_chat_first_turn(chat), n_view = 0;
    bn_chat_message *view = bn_malloc((chat->n_msgs ? chat->n_msgs : 1) * sizeof *view,
                                      "chat");
    if (!view)
        return bn_error_wrap(BN_OK, "chat: rendering %zu messages", chat->n_msgs);
    for (size_t i = 0; i < chat->n_msgs; i++)
        if (i < first || i >= start)
            view[n_view++] = chat->msgs[i];
    char *text = NULL;
    size_t len = 0;
    bn_status st = bn_chat_format(chat->tok, chat->template_name, view, n_view, true,
                                  &text, &len);
    bn_free(view);
    if (st != BN_OK)
        return st;
    bn_tokenize_params tp = bn_tokenize_default_params();
    st = bn_tokenize(chat->tok, text, len, &tp, ids, n);
    bn_free(text);
    return st;
}

/* Positions kept free for a reply of up to max_tokens (-1: no limit). */
static int32_t bn_chat_reserve_for(const bn_chat *chat, int32_t max_tokens)
{
    int32_t reserve = max_tokens >= 0 ? max_tokens : chat->n_ctx / 4;
    return reserve > chat->n_ctx / 2 ? chat->n_ctx / 2 : reserve;
}

/* Renders the conversation so that it fits in the context with `reserve` positions to
 * spare, dropping the oldest exchanges when it does not. On failure the conversation is
 * as it was. */
static bn_status bn_chat_fit(bn_chat *chat, int32_t reserve, bn_token **ids, size_t *n,
                             size_t *n_dropped)
{
    size_t first = bn_chat_first_turn(chat), start = first;
    for (;;) {
        bn_status st = bn_chat_render(chat, start, ids, n);
        if (st != BN_OK)
            return st;
        if ((int64_t)*n + reserve <= chat->n_ctx || start + 1 >= chat->n_msgs)
            break;
        /* leave out the oldest message and the replies that followed it */
        start++;
        while (start < chat->n_msgs - 1 && strcmp(chat->msgs[start].role, "user") != 0)
            start++;
        bn_free(*ids);
        *ids = NULL;
    }
    if ((int64_t)*n >= chat->n_ctx) {
        size_t n_tokens = *n;
        bn_free(*ids);
        *ids = NULL;
        const char *with = first ? "system message and the template" : "template";
        return bn_error_set(BN_ERR_CONTEXT_FULL, "the message does not fit: with the %s "
                            "it is %zu tokens, and the context holds %d (leaving none for "
                            "a reply)", with, n_tokens, chat->n_ctx);
    }
    *n_dropped = start - first;
    bn_chat_remove_messages(chat, first, start - first);
    return BN_OK;
}

bn_status bn_chat_prefill(bn_chat *chat, int32_t max_tokens, bn_chat_prefill_info *info)
{
    double t0 = bn_generate_now();
    int32_t reserve = bn_chat_reserve_for(chat, max_tokens);
    bn_token *ids = NULL;
    size_t n = 0, n_dropped = 0;
    chat->prefilled = false;
    bn_status st = bn_chat_fit(chat, reserve, &ids, &n, &n_dropped);
    if (st != BN_OK)
        return st;
    if (n == 0) {
        bn_free(ids);
        return bn_error_set(BN_ERR_INVALID_ARG, "the conversation rendered to no tokens");
    }
    /* what the cache holds: our ids, unless the context was truncated since */
    if (bn_context_n_past(chat->ctx) < chat->n_cached)
        chat->n_cached = bn_context_n_past(chat->ctx);
    int32_t keep = 0;
    while (keep < chat->n_cached && (size_t)keep < n && chat->cached[keep] == ids[keep])
        keep++;
    if ((size_t)keep == n)
        keep--;   /* the reply starts from the logits of the last token: evaluate it */
    bn_context_truncate(chat->ctx, keep);
    chat->n_cached = keep;
    st = bn_eval(chat->ctx, ids + keep, (int32_t)(n - (size_t)keep));
    if (st != BN_OK) {
        bn_free(ids);
        return st;
    }
    memcpy(chat->cached + keep, ids + keep, (n - (size_t)keep) * sizeof *ids);
    chat->n_cached = (int32_t)n;
    bn_free(chat->rendered);
    chat->rendered = ids;
    chat->n_rendered = n;
    chat->prefilled = true;
    if (info) {
        info->n_tokens = (int32_t)n;
        info->n_reused = keep;
        info->n_evaluated = (int32_t)n - keep;
        info->n_reserved = reserve;
        info->n_dropped = n_dropped;
        info->seconds = bn_generate_now() - t0;
    }
    return BN_OK;
}

/* ------------------------------------------------------------------ reply */

/* A reply in progress: the caller's params, and what went wrong in the callback. */
typedef struct bn_chat_turn {
    bn_chat                  *chat;
    const bn_generate_params *params;
    int32_t                   n_ids;    /* reply tokens recorded after the cached ones */
    bn_status                 status;
} bn_chat_turn;

static bn_status bn_chat_reply_append(bn_chat *chat, const char *text, size_t len)
{
    if (len + 1 > chat->reply_cap - chat->reply_len) {
        size_t cap = 2 * (chat->reply_len + len + 1);
        char *grown = bn_malloc(cap, "chat");
        if (!grown)
            return bn_error_wrap(BN_OK, "chat: keeping a reply of %zu bytes",
                                 chat->reply_len + len);
        if (chat->reply_len)
            memcpy(grown, chat->reply, chat->reply_len);
        bn_free(chat->reply);
        chat->reply = grown;
        chat->reply_cap = cap;
    }
    memcpy(chat->reply + chat->reply_len, text, len);
    chat->reply_len += len;
    chat->reply[chat->reply_len] = '\0';
    return BN_OK;
}

/* bn_generate's callback: records the token and its text, then passes them on. */
static bool bn_chat_on_token(bn_token id, const char *text, size_t len, void *user)
{
    bn_chat_turn *turn = user;
    bn_chat *chat = turn->chat;
    if (id >= 0 && chat->n_cached + turn->n_ids <= chat->n_ctx)
        chat->cached[chat->n_cached + turn->n_ids++] = id;
    bool go_on = turn->params->on_token
                 ? turn->params->on_token(id, text, len, turn->params->user) : true;
    if (bn_chat_reply_append(chat, text, len) != BN_OK) {
        turn->status = bn_last_status();
        return false;
    }
    return go_on;
}

/* bn_generate's logits callback: passed on with the caller's user pointer. */
static void bn_chat_on_logits(bn_token id, const float *logits, int32_t n_vocab,
                              const char *piece, size_t piece_len, void *user)
{
    const bn_chat_turn *turn = user;
    turn->params->on_logits(id, logits, n_vocab, piece, piece_len, turn->params->user);
}

bn_status bn_chat_reply(bn_chat *chat, const bn_generate_params *params,
                        bn_generate_result *result)
{
    bn_generate_params defaults = bn_generate_default_params();
    const bn_generate_params *p = params ? params : &defaults;
    bn_chat_prefill_info info = {0};
    if (!chat->prefilled || bn_context_n_past(chat->ctx) != chat->n_cached) {
        bn_status st = bn_chat_prefill(chat, p->max_tokens, &info);
        if (st != BN_OK)
            return st;
    }
    /* the penalties see the conversation; the random sequence restarts from the seed */
    bn_sampler *sampler = p->sampler, *own_sampler = NULL;
    if (sampler) {
        bn_sampler_reset(sampler);
    } else {
        bn_status st = bn_sampler_create(&p->sampling, bn_generate_n_vocab(chat->model),
                                         &own_sampler);
        if (st != BN_OK)
            return bn_error_wrap(BN_OK, "chat: replying");
        sampler = own_sampler;
    }
    for (size_t i = 0; i < chat->n_rendered; i++)
        bn_sampler_accept(sampler, chat->rendered[i]);

    bn_chat_turn turn = {.chat = chat, .params = p, .status = BN_OK};
    bn_generate_params gp = *p;
    gp.sampler = sampler;
    gp.on_token = bn_chat_on_token;
    gp.on_logits = p->on_logits ? bn_chat_on_logits : NULL;
    gp.user = &turn;
    chat->reply_len = 0;
    if (bn_chat_reply_append(chat, "", 0) != BN_OK) {
        bn_sampler_free(own_sampler);
        return bn_last_status();
    }
    bn_generate_result r;
    bn_status st = bn_generate(chat->ctx, NULL, 0, &gp, &r);
    bn_sampler_free(own_sampler);
    /* the reply's tokens but the last are in the cache now */
    int32_t n_past = bn_context_n_past(chat->ctx);
    chat->n_cached = n_past <= chat->n_cached + turn.n_ids ? n_past : chat->n_cached;
    if (st == BN_OK && turn.status != BN_OK)
        st = turn.status;
    if (st != BN_OK && turn.n_ids == 0)
        return st;   /* failed before the first token: no reply to keep */
    bn_status added = bn_chat_add_message(chat, "assistant", chat->reply);
    if (st != BN_OK)
        return st;
    if (added != BN_OK)
        return bn_error_wrap(BN_OK, "chat: the reply is not kept");
    r.n_prompt = info.n_evaluated;
    r.prompt_seconds = info.seconds;
    *result = r;
    return BN_OK;
}
