/*
 * context.c - the evaluation context: the KV cache of every sequence and the buffers
 * of one step, allocated once through the backend; the sequences' positions; and the
 * evaluation calls (bn_eval, bn_decode), which check a batch whole, cut it into steps
 * of at most n_batch rows and run the forward pass (forward.c) on each.
 */
#include <assert.h>
#include <string.h>

#include "model/forward.h"

bn_context_params bn_context_default_params(void)
{
    return (bn_context_params){
        .n_ctx = 0, .n_batch = 512, .kv_type = BN_F16, .logits_all = false, .n_seq = 1,
    };
}

/* The context size to use: the caller's, or the model's training context lowered to
 * what fits in half of the available memory. */
static int32_t bn_context_pick_n_ctx(const bn_model_info *in, int32_t n_ctx, int32_t n_seq,
                                     size_t per_pos)
{
    if (n_ctx != 0) {
        if (in->n_ctx_train > 0 && n_ctx > in->n_ctx_train)
            bn_log(BN_LOG_WARN, "a context of %d positions is longer than the %d the model "
                   "was trained on; text beyond that may degrade", n_ctx, in->n_ctx_train);
        return n_ctx;
    }
    n_ctx = in->n_ctx_train > 0 ? in->n_ctx_train : 2048;
    if (n_ctx > 1 << 24)
        n_ctx = 1 << 24;
    const uint64_t avail = bn_mem_available(), per = (uint64_t)per_pos * (uint64_t)n_seq;
    if (avail && (uint64_t)n_ctx * per > avail / 2) {
        int32_t fit = (int32_t)(avail / 2 / per);
        fit = fit < 256 ? 256 : fit;
        if (fit < n_ctx) {
            bn_log(BN_LOG_WARN, "context of %d positions (%.0f MiB of KV cache) does not "
                   "fit in half of the available memory; using %d", n_ctx,
                   (double)n_ctx * (double)per / 1048576.0, fit);
            n_ctx = fit;
        }
    }
    return n_ctx;
}

/* Allocates every buffer of the context through its backend; returns the status. */
static bn_status bn_context_alloc(bn_context *c)
{
    const bn_backend *be = c->be;
    const bn_model *m = c->m;
    const bn_model_info *in = &m->info;
    const int64_t T = c->n_batch, E = in->n_embd, F = in->n_ff, V = in->n_vocab;
    const int64_t KVD = c->kv.dim, max_in = E > F ? E : F;
    bn_fwd_bufs *b = &c->b;
    bn_status st = BN_OK;

    c->kv.k = be->alloc(c->kv.bytes / 2, "kv-cache");
    c->kv.v = be->alloc(c->kv.bytes / 2, "kv-cache");
    if (!c->kv.k || !c->kv.v)
        return bn_error_wrap(BN_OK, "a KV cache of %d sequences of %d positions (%.1f MiB)",
                             c->n_seq, c->n_ctx, (double)c->kv.bytes / 1048576.0);
#define BN_BUF(ptr, type, count)                                                    \
    if (st == BN_OK) {                                                              \
        size_t nb_ = (size_t)(count) * sizeof(type);                                \
        if (!((ptr) = be->alloc(nb_, "context")))                                   \
            st = bn_last_status();                                                  \
        b->bytes += nb_;                                                            \
    }
    BN_BUF(b->h, float, T * E)
    BN_BUF(b->x, float, T * E)
    BN_BUF(b->q, float, T * E)
    BN_BUF(b->k, float, T * KVD)
    BN_BUF(b->v, float, T * KVD)
    BN_BUF(b->a, float, T * E)
    BN_BUF(b->o, float, T * E)
    BN_BUF(b->g, float, T * F)
    BN_BUF(b->u, float, T * F)
    BN_BUF(b->rope, float, T * (m->n_rot / 2) * 2 + 1)
    BN_BUF(b->aq, int8_t, T * max_in)
    BN_BUF(b->as, float, T)
    BN_BUF(b->aqsum, int32_t, T)
    BN_BUF(b->aqbsum, int32_t, T * (max_in / BN_QK_K + 1))
    BN_BUF(b->aqf, float, T * max_in)
    BN_BUF(b->logits, float, (int64_t)c->n_logits * V)
    if (m->output.type == BN_QT_Q8_0 || m->output.type == BN_QT_Q6_K)
        BN_BUF(b->aq8, uint8_t, (int64_t)c->n_logits * (E / 32) *
                                    (int64_t)sizeof(bn_block_q8_0))
#undef BN_BUF
    /* the sequences and the rows of a step (host memory: the forward's bookkeeping) */
    c->n_past = bn_calloc((size_t)c->n_seq, sizeof *c->n_past, "context");
    c->seq_next = bn_calloc((size_t)c->n_seq, sizeof *c->seq_next, "context");
    c->seq_last = bn_calloc((size_t)c->n_seq, sizeof *c->seq_last, "context");
    c->row_pos = bn_calloc((size_t)c->n_batch, sizeof *c->row_pos, "context");
    c->row_seq = bn_calloc((size_t)c->n_batch, sizeof *c->row_seq, "context");
    c->row_want = bn_calloc((size_t)c->n_batch, sizeof *c->row_want, "context");
    c->logits_tok = bn_calloc((size_t)c->n_logits, sizeof *c->logits_tok, "context");
    c->logits_seq = bn_calloc((size_t)c->n_logits, sizeof *c->logits_seq, "context");
    if (st == BN_OK && (!c->n_past || !c->seq_next || !c->seq_last || !c->row_pos ||
                        !c->row_seq || !c->row_want || !c->logits_tok || !c->logits_seq))
        st = bn_last_status();
    if (st == BN_OK)
        st = be->prepare(c);
    return st;
}

bn_status bn_context_create(const bn_model *m, const bn_context_params *params,
                            bn_context **out)
{
    assert(m && out);
    bn_context_params p = params ? *params : bn_context_default_params();
    const bn_model_info *in = &m->info;
    if (p.n_seq == 0)
        p.n_seq = 1;
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_seq < 0 || p.n_seq > BN_MAX_SEQ ||
        (p.kv_type != BN_F16 && p.kv_type != BN_F32))
        return bn_error_set(BN_ERR_INVALID_ARG, "context: n_ctx %d, n_batch %d, n_seq %d "
                            "(1 to %d) and a KV type of %s are not valid (f16 or f32)",
                            p.n_ctx, p.n_batch, p.n_seq, BN_MAX_SEQ,
                            bn_dtype_name(p.kv_type));
    const int64_t kv_dim = (int64_t)in->n_head_kv * in->head_dim;
    const size_t kv_elt = bn_dtype_size(p.kv_type);
    const size_t per_pos = 2 * (size_t)in->n_layer * (size_t)kv_dim * kv_elt;
    const int32_t n_ctx = bn_context_pick_n_ctx(in, p.n_ctx, p.n_seq, per_pos);
    if ((uint64_t)n_ctx * (uint64_t)p.n_seq > (uint64_t)1 << 24)
        return bn_error_set(BN_ERR_INVALID_ARG, "context: %d sequences of %d positions is "
                            "too many", p.n_seq, n_ctx);
    int32_t n_batch = p.n_batch ? p.n_batch : 512;
    const int32_t max_rows = (int32_t)((int64_t)n_ctx * p.n_seq > INT32_MAX / 2
                                           ? INT32_MAX / 2 : (int64_t)n_ctx * p.n_seq);
    if (n_batch > max_rows)
        n_batch = max_rows;

    bn_context *c = bn_calloc(1, sizeof *c, "context");
    if (!c)
        return bn_error_wrap(BN_OK, "creating a context");
    c->m = m;
    c->be = &bn_backend_cpu;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->n_seq = p.n_seq;
    c->logits_all = p.logits_all;
    c->n_logits = p.logits_all ? n_batch : 1;
    if (c->n_logits < p.n_seq)
        c->n_logits = p.n_seq;
    c->kv = (bn_kv_cache){
        .type = p.kv_type, .elt = kv_elt, .dim = kv_dim, .head_dim = in->head_dim,
        .n_ctx = n_ctx,
        .n_layer = in->n_layer, .n_seq = p.n_seq,
        .bytes = (size_t)n_ctx * (size_t)p.n_seq * per_pos,
    };
    if (bn_context_alloc(c) != BN_OK) {
        bn_context_free(c);
        return bn_error_wrap(BN_OK, "creating a context");
    }
    *out = c;
    return BN_OK;
}

void bn_context_free(bn_context *c)
{
    if (!c)
        return;
    const bn_backend *be = c->be;
    be->free_state(c);
    be->release(c->kv.k);
    be->release(c->kv.v);
    bn_fwd_bufs *b = &c->b;
    void *bufs[] = {b->h, b->x, b->q, b->k, b->v, b->a, b->o, b->g, b->u, b->rope,
                    b->aq, b->as, b->aqsum, b->aqbsum, b->aqf, b->aq8, b->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->release(bufs[i]);
    void *host[] = {c->n_past, c->seq_next, c->seq_last, c->row_pos, c->row_seq,
                    c->row_want, c->logits_tok, c->logits_seq};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        bn_free(host[i]);
    bn_free(c);
}

int32_t bn_context_n_ctx(const bn_context *c) { assert(c); return c->n_ctx; }
int32_t bn_context_n_batch(const bn_context *c) { assert(c); return c->n_batch; }
int32_t bn_context_n_seq(const bn_context *c) { assert(c); return c->n_seq; }
const bn_model *bn_context_model(const bn_context *c) { assert(c); return c->m; }
int32_t bn_context_n_past(const bn_context *c) { assert(c); return c->n_past[0]; }
size_t bn_context_kv_bytes(const bn_context *c) { assert(c); return c->kv.bytes; }

int32_t bn_context_seq_n_past(const bn_context *c, int32_t seq)
{
    assert(c);
    return seq >= 0 && seq < c->n_seq ? c->n_past[seq] : -1;
}

size_t bn_context_buffer_bytes(const bn_context *c)
{
    assert(c);
    return c->b.bytes + c->be_state_bytes;
}

void bn_context_seq_truncate(bn_context *c, int32_t seq, int32_t n_past)
{
    assert(c);
    if (seq < 0 || seq >= c->n_seq)
        return;
    if (n_past < 0)
        n_past = 0;
    if (n_past >= c->n_past[seq])
        return;
    c->n_past[seq] = n_past;
    for (int32_t j = 0; j < c->logits_valid; j++)   /* its logits are gone with it */
        if (c->logits_seq[j] == seq)
            c->logits_tok[j] = -1;
}

void bn_context_truncate(bn_context *c, int32_t n_past)
{
    bn_context_seq_truncate(c, 0, n_past);
}

/* Which tokens of a batch keep their logits. */
typedef enum bn_want {
    BN_WANT_FLAGS,      /* as batch->logits says */
    BN_WANT_SEQ_LAST,   /* the last token of each sequence in the batch */
    BN_WANT_ALL,
} bn_want;

/* Checks a batch whole (tokens, sequences, room in each sequence, logits rows) before
 * anything changes; counts the logits rows into *n_want. */
static bn_status bn_batch_check(bn_context *c, const bn_batch *bt, bn_want want,
                                int32_t *n_want)
{
    const bn_model_info *in = &c->m->info;
    if (bt->n < 1 || !bt->tokens)
        return bn_error_set(BN_ERR_INVALID_ARG, "evaluate: no tokens given");
    for (int32_t s = 0; s < c->n_seq; s++) {
        c->seq_next[s] = c->n_past[s];
        c->seq_last[s] = -1;
    }
    for (int32_t i = 0; i < bt->n; i++) {
        const int32_t s = bt->seq ? bt->seq[i] : 0;
        if (bt->tokens[i] < 0 || bt->tokens[i] >= in->n_vocab)
            return bn_error_set(BN_ERR_INVALID_ARG, "evaluate: token %d (at %d) is not in "
                                "the vocabulary of %d", bt->tokens[i], i, in->n_vocab);
        if (s < 0 || s >= c->n_seq)
            return bn_error_set(BN_ERR_INVALID_ARG, "evaluate: sequence %d (at %d) is not "
                                "one of the context's %d", s, i, c->n_seq);
        c->seq_next[s]++;
        c->seq_last[s] = i;
    }
    for (int32_t s = 0; s < c->n_seq; s++)
        if (c->seq_next[s] > c->n_ctx) {
            const int32_t n_new = c->seq_next[s] - c->n_past[s];
            if (c->n_seq == 1)
                return bn_error_set(BN_ERR_CONTEXT_FULL, "evaluate: %d tokens do not fit in "
                                    "the context: %d of its %d positions are used, %d are "
                                    "left", n_new, c->n_past[s], c->n_ctx,
                                    c->n_ctx - c->n_past[s]);
            return bn_error_set(BN_ERR_CONTEXT_FULL, "evaluate: %d tokens do not fit in "
                                "sequence %d: %d of its %d positions are used, %d are left",
                                n_new, s, c->n_past[s], c->n_ctx, c->n_ctx - c->n_past[s]);
        }
    int32_t count = 0;
    for (int32_t i = 0; i < bt->n; i++) {
        const int32_t s = bt->seq ? bt->seq[i] : 0;
        count += want == BN_WANT_ALL || (want == BN_WANT_FLAGS && bt->logits[i]) ||
                 (want == BN_WANT_SEQ_LAST && c->seq_last[s] == i);
    }
    if (count > c->n_logits)
        return bn_error_set(BN_ERR_INVALID_ARG, "evaluate: the batch asks for the logits of "
                            "%d tokens; the context keeps at most %d (n_seq, or n_batch with "
                            "logits_all)", count, c->n_logits);
    *n_want = count;
    return BN_OK;
}

/* Evaluates a checked batch in steps of at most n_batch rows. */
static void bn_batch_run(bn_context *c, const bn_batch *bt, bn_want want)
{
    for (int32_t s = 0; s < c->n_seq; s++)
        c->seq_next[s] = c->n_past[s];
    int32_t n_logits = 0;
    for (int32_t done = 0; done < bt->n;) {
        const int32_t T = bt->n - done < c->n_batch ? bt->n - done : c->n_batch;
        bn_rows r = {.T = T, .token = bt->tokens + done, .pos = c->row_pos,
                     .seq = c->row_seq, .want = c->row_want};
        for (int32_t t = 0; t < T; t++) {
            const int32_t i = done + t, s = bt->seq ? bt->seq[i] : 0;
            c->row_seq[t] = s;
            c->row_pos[t] = c->seq_next[s]++;
            c->row_want[t] = want == BN_WANT_ALL || (want == BN_WANT_FLAGS && bt->logits[i]) ||
                             (want == BN_WANT_SEQ_LAST && c->seq_last[s] == i);
            if (c->row_want[t]) {
                c->logits_tok[n_logits + r.n_want] = i;
                c->logits_seq[n_logits + r.n_want] = s;
                r.n_want++;
            }
        }
        bn_forward(c, &r, n_logits);
        n_logits += r.n_want;
        done += T;
    }
    for (int32_t s = 0; s < c->n_seq; s++)
        c->n_past[s] = c->seq_next[s];
    c->last_n = bt->n;
    c->logits_valid = n_logits;
}

/* bn_decode and bn_eval: check, prepare the backend, run. */
static bn_status bn_batch_eval(bn_context *c, const bn_batch *bt, bn_want want)
{
    int32_t n_want = 0;
    bn_status st = bn_batch_check(c, bt, want, &n_want);
    if (st != BN_OK)
        return st;
    st = c->be->prepare(c);
    if (st != BN_OK)
        return bn_error_wrap(st, "evaluate");
    bn_batch_run(c, bt, want);
    return BN_OK;
}

bn_status bn_decode(bn_context *c, const bn_batch *batch)
{
    assert(c && batch);
    return bn_batch_eval(c, batch, batch->logits ? BN_WANT_FLAGS : BN_WANT_SEQ_LAST);
}

bn_status bn_eval(bn_context *c, const bn_token *tokens, int32_t n)
{
    assert(c);
    bn_batch bt = {.n = n, .tokens = tokens};
    return bn_batch_eval(c, &bt, c->logits_all && n <= c->n_batch ? BN_WANT_ALL
                                                                  : BN_WANT_SEQ_LAST);
}

const float *bn_get_logits(const bn_context *c, int32_t i)
{
    assert(c);
    if (i < 0)
        i = c->last_n + i;
    for (int32_t j = 0; j < c->logits_valid; j++)
        if (c->logits_tok[j] == i)
            return c->b.logits + (size_t)j * (size_t)c->m->info.n_vocab;
    return NULL;
}
