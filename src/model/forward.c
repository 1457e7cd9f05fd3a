/*
 * forward.c - the forward pass of one step: the transformer of a BitNet b1.58 (or
 * LLaMA-architecture) model over T rows, each a token of some sequence, as named steps
 * of the context's backend (forward.h says what each step does and its shapes).
 *
 * Per layer, with h the residual stream of the rows ([T, E]):
 *     x = rmsnorm(h) * attn_norm
 *     q, k, v = Wq x, Wk x, Wv x              (one quantization of x for the three)
 *     RoPE on q, k; k, v stored in the cache at their sequences and positions
 *     a = softmax(q k^T / sqrt(head_dim), causal) v      (GQA: head h uses kv h / group)
 *     a = rmsnorm(a) * attn_sub_norm          (bitnet archs)
 *     h = h + Wo a
 *     x = rmsnorm(h) * ffn_norm
 *     f = act(Wgate x) * Wup x                (relu(g)^2 or silu(g))
 *     f = rmsnorm(f) * ffn_sub_norm           (bitnet archs)
 *     h = h + Wdown f
 * logits = output(rmsnorm(h) * output_norm), only for the rows that want them.
 *
 * The projections take all T rows at once, whatever their sequences: a weight row read
 * from memory serves every row of the step. Attention is per sequence. Every value a
 * row gets is the one it gets when evaluated alone.
 */
#include "model/forward.h"

void bn_forward(bn_context *c, const bn_rows *r, int32_t logits0)
{
    const bn_model *m = c->m;
    const bn_model_info *in = &m->info;
    const bn_backend *be = c->be;
    bn_fwd_bufs *b = &c->b;
    const int64_t T = r->T, E = in->n_embd, F = in->n_ff;
    const bool aq = m->act_quant;   /* int8 activations into the projections */
    bn_act act;

    be->embed(m, r, b->h);                                   /* h [T, E] */
    be->rope_angles(m, r, b->rope);                          /* rope [T][n_rot/2][2] */

    for (int64_t il = 0; il < in->n_layer; il++) {
        const bn_layer *ly = &m->layers[il];

        /* attention */
        be->rmsnorm(m, T, E, b->h, ly->attn_norm, b->x);     /* x [T, E] */
        be->quantize(c, T, E, b->x, &act);
        const bn_linear *qkv[3] = {&ly->wq, &ly->wk, &ly->wv};
        float *qkv_out[3] = {b->q, b->k, b->v};              /* [T, E], [T, KVD] x 2 */
        be->project(c, 3, qkv, &act, aq, qkv_out);
        be->rope(m, T, in->n_head, b->rope, b->q);
        be->rope(m, T, in->n_head_kv, b->rope, b->k);
        be->kv_store(c, il, r, b->k, b->v);
        be->attention(c, il, r, b->q, b->a);                 /* a [T, E] */
        const float *att = b->a;
        if (ly->attn_sub_norm) {
            be->rmsnorm(m, T, E, b->a, ly->attn_sub_norm, b->x);
            att = b->x;
        }
        be->quantize(c, T, E, att, &act);
        const bn_linear *wo[1] = {&ly->wo};
        be->project(c, 1, wo, &act, aq, &b->o);              /* o [T, E] */
        be->add(T, E, b->h, b->o);                           /* h += o */

        /* feed-forward */
        be->rmsnorm(m, T, E, b->h, ly->ffn_norm, b->x);      /* x [T, E] */
        be->quantize(c, T, E, b->x, &act);
        const bn_linear *gate_up[2] = {&ly->gate, &ly->up};
        float *gate_up_out[2] = {b->g, b->u};                /* [T, F] x 2 */
        be->project(c, 2, gate_up, &act, aq, gate_up_out);
        be->ffn_act(m, T, F, b->g, b->u);                    /* g = act(g) * u */
        const float *ffn = b->g;
        if (ly->ffn_sub_norm) {
            be->rmsnorm(m, T, F, b->g, ly->ffn_sub_norm, b->u);
            ffn = b->u;
        }
        be->quantize(c, T, F, ffn, &act);
        const bn_linear *down[1] = {&ly->down};
        be->project(c, 1, down, &act, aq, &b->o);            /* o [T, E] */
        be->add(T, E, b->h, b->o);                           /* h += o */
    }

    /* logits of the N rows that want them */
    const int64_t N = r->n_want;
    if (N == 0)
        return;
    be->gather(r, E, b->h, b->a);                            /* a [N, E] */
    be->rmsnorm(m, N, E, b->a, m->output_norm, b->x);        /* x [N, E] */
    const bool oq = m->output.ternary && aq;
    if (oq)
        be->quantize(c, N, E, b->x, &act);
    else
        act = (bn_act){.T = (int32_t)N, .n = E, .x = b->x};
    if (b->aq8) {   /* a Q8_0 or Q6_K output layer reads Q8_0 blocks of its input */
        be->quantize_q8(N, E, b->x, b->aq8);
        act.q8 = b->aq8;
    }
    const bn_linear *out[1] = {&m->output};
    float *logits = b->logits + (size_t)logits0 * (size_t)in->n_vocab;   /* [N, V] */
    be->project(c, 1, out, &act, oq, &logits);
}
