/*
 * layers.c - each layer of the training model as a forward and a backward side by
 * side (train.h gives every function's shapes).
 *
 * Plain loops on one thread, every sum in a fixed order: the scalar reference that
 * the fast path (fast.c) is tested against (test_train_threads). Dot products and row sums are accumulated
 * in double and rounded once, so that a result does not depend on the order of a
 * sum; PyTorch's reference (scripts/fixtures/train_ref.py) does the same, which makes
 * the forward agree with it to the last bit nearly everywhere and every quantizer see
 * the same input (docs/TRAINING.md). Backward functions add into their outputs.
 */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "train/train.h"

/* ---------------------------------------------------------------- embedding */

void bn_train_embed_forward(float *h, const int32_t *tokens, const float *embd,
                            int64_t N, int64_t E)
{
    for (int64_t i = 0; i < N; i++)
        memcpy(h + i * E, embd + (int64_t)tokens[i] * E, (size_t)E * sizeof(float));
}

/* Rows of the embedding gather the gradients of every position that read them, in
 * position order. */
void bn_train_embed_backward(float *dembd, const float *dh, const int32_t *tokens,
                             int64_t N, int64_t E)
{
    for (int64_t i = 0; i < N; i++) {
        float *d = dembd + (int64_t)tokens[i] * E;
        const float *g = dh + i * E;
        for (int64_t e = 0; e < E; e++)
            d[e] += g[e];
    }
}

/* ---------------------------------------------------------------- rmsnorm */

/* The engine's arithmetic: den = sqrtf((float)(sum x^2 / n) + eps), y = x / den * w. */
void bn_train_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w,
                              int64_t N, int64_t n, float eps)
{
    for (int64_t t = 0; t < N; t++) {
        const float *xr = x + t * n;
        float *yr = y + t * n;
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)xr[i] * xr[i];
        float den = sqrtf((float)(ss / (double)n) + eps);
        for (int64_t i = 0; i < n; i++)
            yr[i] = xr[i] / den * w[i];
        rstd[t] = 1.0f / den;
    }
}

/* With r = 1 / sqrt(mean(x^2) + eps) and y_i = x_i r w_i:
 *   dx_j = r w_j dy_j - r^3 x_j / n * sum_i w_i dy_i x_i,   dw_i = sum_t dy_i x_i r. */
void bn_train_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x,
                               const float *w, const float *rstd, int64_t N, int64_t n)
{
    for (int64_t t = 0; t < N; t++) {
        const float *xr = x + t * n, *dyr = dy + t * n;
        float *dxr = dx + t * n;
        const double r = rstd[t];
        double dot = 0.0;
        for (int64_t i = 0; i < n; i++)
            dot += (double)w[i] * dyr[i] * xr[i];
        const double c = r * r * r * dot / (double)n;
        for (int64_t i = 0; i < n; i++)
            dxr[i] += (float)(r * w[i] * dyr[i] - c * xr[i]);
    }
    for (int64_t i = 0; i < n; i++) {
        double acc = 0.0;
        for (int64_t t = 0; t < N; t++)
            acc += (double)dy[t * n + i] * x[t * n + i] * rstd[t];
        dw[i] += (float)acc;
    }
}

/* ---------------------------------------------------------------- BitLinear */

/* Lambda 0 multiplies by W itself; otherwise the contract's ternarization
 * (bn_ternarize: g = max(mean|W|, 1e-5), codes = clamp(rint(W / g), -1, 1)) and
 * w_eff = codes * g, or W + lambda (codes * g - W). BN_ERR_NUMERIC when W is not
 * finite. */
bn_status bn_train_linear_prepare(bn_train_linear *lin, float lambda)
{
    const int64_t n = lin->n_out * lin->n_in;
    if (lambda == 0.0f) {
        lin->w_used = lin->w;
        return BN_OK;
    }
    bn_status st = bn_ternarize(lin->w, lin->n_in, lin->n_out, NULL, lin->codes,
                                &lin->scale);
    if (st != BN_OK)
        return st;
    const float g = lin->scale;
    if (lambda == 1.0f) {
        for (int64_t i = 0; i < n; i++)
            lin->w_eff[i] = (float)lin->codes[i] * g;
    } else {
        for (int64_t i = 0; i < n; i++)
            lin->w_eff[i] = lin->w[i] + lambda * ((float)lin->codes[i] * g - lin->w[i]);
    }
    lin->w_used = lin->w_eff;
    return BN_OK;
}

/* Per row, the contract's activation codes (bn_quantize_act_i8: s = 127 / max|x|,
 * q = clamp(rint(x s), -128, 127)), and x replaced by what the projections multiply:
 * q / s for lambda 1, x + lambda (q / s - x) between. */
void bn_train_input_quantize(bn_train_input *in, int64_t N, int64_t n, float lambda)
{
    if (lambda == 0.0f)
        return;
    for (int64_t t = 0; t < N; t++) {
        float *x = in->x + t * n;
        int8_t *q = in->q + t * n;
        bn_quantize_act_i8(x, n, q, &in->s[t]);
        const float s = in->s[t];
        if (lambda == 1.0f) {
            for (int64_t i = 0; i < n; i++)
                x[i] = (float)q[i] / s;
        } else {
            for (int64_t i = 0; i < n; i++)
                x[i] = x[i] + lambda * ((float)q[i] / s - x[i]);
        }
    }
}

/* Lambda 1: the engine's value, y = (float)(sum codes * q) / s * g, the sum in exact
 * integers (what every kernel of the engine computes for these codes). Otherwise
 * y = x W_used^T, each dot product in double. */
void bn_train_linear_forward(float *y, const bn_train_linear *lin, const bn_train_input *in,
                             int64_t N, float lambda)
{
    const int64_t n_in = lin->n_in, n_out = lin->n_out;
    if (lambda == 1.0f) {
        for (int64_t t = 0; t < N; t++) {
            const int8_t *q = in->q + t * n_in;
            for (int64_t o = 0; o < n_out; o++) {
                const int8_t *c = lin->codes + o * n_in;
                int32_t isum = 0;
                for (int64_t i = 0; i < n_in; i++)
                    isum += (int32_t)c[i] * q[i];
                y[t * n_out + o] = (float)isum / in->s[t] * lin->scale;
            }
        }
        return;
    }
    for (int64_t t = 0; t < N; t++) {
        const float *x = in->x + t * n_in;
        for (int64_t o = 0; o < n_out; o++) {
            const float *w = lin->w_used + o * n_in;
            double acc = 0.0;
            for (int64_t i = 0; i < n_in; i++)
                acc += (double)x[i] * w[i];
            y[t * n_out + o] = (float)acc;
        }
    }
}

/* The straight-through estimator: the quantizers pass gradients as if they were the
 * identity, so the backward is a float linear layer's on the values the forward used,
 * dx = dy W_used and dW = dy^T x_used. */
void bn_train_linear_backward(float *dx, bn_train_linear *lin, const float *dy,
                              const bn_train_input *in, int64_t N, double *acc)
{
    const int64_t n_in = lin->n_in, n_out = lin->n_out;
    for (int64_t t = 0; t < N; t++) {
        const float *dyr = dy + t * n_out;
        for (int64_t i = 0; i < n_in; i++)
            acc[i] = 0.0;
        for (int64_t o = 0; o < n_out; o++) {
            const double d = dyr[o];
            const float *w = lin->w_used + o * n_in;
            for (int64_t i = 0; i < n_in; i++)
                acc[i] += d * w[i];
        }
        float *dxr = dx + t * n_in;
        for (int64_t i = 0; i < n_in; i++)
            dxr[i] += (float)acc[i];
    }
    for (int64_t o = 0; o < n_out; o++) {
        for (int64_t i = 0; i < n_in; i++)
            acc[i] = 0.0;
        for (int64_t t = 0; t < N; t++) {
            const double d = dy[t * n_out + o];
            const float *x = in->x + t * n_in;
            for (int64_t i = 0; i < n_in; i++)
                acc[i] += d * x[i];
        }
        float *dw = lin->dw + o * n_in;
        for (int64_t i = 0; i < n_in; i++)
            dw[i] += (float)acc[i];
    }
}

/* ---------------------------------------------------------------- RoPE */

/* NeoX: x0 = v[i], x1 = v[i + hd/2] -> (x0 c - x1 s, x0 s + x1 c), with c, s the cos
 * and sin of position t's angle i (the engine's arithmetic). */
void bn_train_rope_forward(float *x, const float *rope, int64_t B, int64_t T,
                           int64_t heads, int64_t hd)
{
    const int64_t half = hd / 2;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            const float *cs = rope + t * half * 2;
            for (int64_t h = 0; h < heads; h++) {
                float *v = x + ((b * T + t) * heads + h) * hd;
                for (int64_t i = 0; i < half; i++) {
                    const float x0 = v[i], x1 = v[i + half];
                    const float c = cs[2 * i], s = cs[2 * i + 1];
                    v[i] = x0 * c - x1 * s;
                    v[i + half] = x0 * s + x1 * c;
                }
            }
        }
}

/* The rotation's transpose: (d0 c + d1 s, -d0 s + d1 c). */
void bn_train_rope_backward(float *dx, const float *rope, int64_t B, int64_t T,
                            int64_t heads, int64_t hd)
{
    const int64_t half = hd / 2;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            const float *cs = rope + t * half * 2;
            for (int64_t h = 0; h < heads; h++) {
                float *d = dx + ((b * T + t) * heads + h) * hd;
                for (int64_t i = 0; i < half; i++) {
                    const float d0 = d[i], d1 = d[i + half];
                    const float c = cs[2 * i], s = cs[2 * i + 1];
                    d[i] = d0 * c + d1 * s;
                    d[i + half] = d1 * c - d0 * s;
                }
            }
        }
}

/* ---------------------------------------------------------------- attention */

void bn_train_attention_forward(float *out, float *probs, double *p, const float *q,
                                const float *k, const float *v, int64_t B, int64_t T,
                                int64_t H, int64_t KV, int64_t hd)
{
    const int64_t group = H / KV, E = H * hd, KVD = KV * hd;
    const double inv = 1.0 / sqrt((double)hd);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t kvh = h / group;
            for (int64_t t = 0; t < T; t++) {
                const float *qt = q + (b * T + t) * E + h * hd;
                double mx = -INFINITY;
                for (int64_t s = 0; s <= t; s++) {
                    const float *ks = k + (b * T + s) * KVD + kvh * hd;
                    double dot = 0.0;
                    for (int64_t d = 0; d < hd; d++)
                        dot += (double)qt[d] * ks[d];
                    p[s] = dot * inv;
                    mx = p[s] > mx ? p[s] : mx;
                }
                double sum = 0.0;
                for (int64_t s = 0; s <= t; s++) {
                    p[s] = exp(p[s] - mx);
                    sum += p[s];
                }
                float *pr = probs + ((b * H + h) * T + t) * T;
                for (int64_t s = 0; s < T; s++) {
                    p[s] = s <= t ? p[s] / sum : 0.0;
                    pr[s] = (float)p[s];
                }
                float *o = out + (b * T + t) * E + h * hd;
                for (int64_t d = 0; d < hd; d++) {
                    double acc = 0.0;
                    for (int64_t s = 0; s <= t; s++)
                        acc += p[s] * v[(b * T + s) * KVD + kvh * hd + d];
                    o[d] = (float)acc;
                }
            }
        }
}

/* Per query (b, h, t) with weights p_s over s <= t:
 *   dp_s = dout . v_s;   dv_s += p_s dout;
 *   dscore_s = p_s (dp_s - sum_s' p_s' dp_s');
 *   dq += dscore_s k_s / sqrt(hd);   dk_s += dscore_s q / sqrt(hd).
 * Keys and values of a kv head gather the gradients of every query of its group, in
 * the order (head, position). */
void bn_train_attention_backward(float *dq, float *dk, float *dv, double *dp,
                                 const float *dout, const float *probs, const float *q,
                                 const float *k, const float *v, int64_t B, int64_t T,
                                 int64_t H, int64_t KV, int64_t hd)
{
    const int64_t group = H / KV, E = H * hd, KVD = KV * hd;
    const double inv = 1.0 / sqrt((double)hd);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t kvh = h / group;
            for (int64_t t = 0; t < T; t++) {
                const float *pr = probs + ((b * H + h) * T + t) * T;
                const float *dot = dout + (b * T + t) * E + h * hd;
                const float *qt = q + (b * T + t) * E + h * hd;
                double pdp = 0.0;
                for (int64_t s = 0; s <= t; s++) {
                    const float *vs = v + (b * T + s) * KVD + kvh * hd;
                    float *dvs = dv + (b * T + s) * KVD + kvh * hd;
                    double acc = 0.0;
                    for (int64_t d = 0; d < hd; d++) {
                        acc += (double)dot[d] * vs[d];
                        dvs[d] += pr[s] * dot[d];
                    }
                    dp[s] = acc;
                    pdp += pr[s] * acc;
                }
                float *dqt = dq + (b * T + t) * E + h * hd;
                for (int64_t s = 0; s <= t; s++) {
                    const double ds = pr[s] * (dp[s] - pdp) * inv;
                    float *dks = dk + (b * T + s) * KVD + kvh * hd;
                    for (int64_t d = 0; d < hd; d++)
                        dks[d] += (float)(ds * qt[d]);
                    dp[s] = ds;
                }
                for (int64_t d = 0; d < hd; d++) {
                    double acc = 0.0;
                    for (int64_t s = 0; s <= t; s++)
                        acc += dp[s] * k[(b * T + s) * KVD + kvh * hd + d];
                    dqt[d] += (float)acc;
                }
            }
        }
}

/* ---------------------------------------------------------------- squared ReLU */

/* g > 0 ? g : +0 (a NaN g gives +0), as a mask of g's bits: no branch, so that the
 * loops below vectorize. */
static inline float bn_relu(float g)
{
    uint32_t u;
    memcpy(&u, &g, sizeof u);
    u &= 0u - (uint32_t)(g > 0.0f);
    memcpy(&g, &u, sizeof g);
    return g;
}

/* out = r * r * u with r = max(g, 0) (the engine's relu2_mul). */
BN_TRAIN_CLONES void bn_train_relu2_forward(float *restrict out, const float *restrict g,
                                            const float *restrict u, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float r = bn_relu(g[i]);
        out[i] = r * r * u[i];
    }
}

/* dg = dout 2 r u (0 where g <= 0), du = dout r^2. */
BN_TRAIN_CLONES void bn_train_relu2_backward(float *restrict dg, float *restrict du,
                                             const float *restrict dout,
                                             const float *restrict g,
                                             const float *restrict u, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float r = bn_relu(g[i]);
        dg[i] += 2.0f * r * u[i] * dout[i];
        du[i] += r * r * dout[i];
    }
}

/* ---------------------------------------------------------------- residual */

void bn_train_residual_forward(float *h, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        h[i] = a[i] + b[i];
}

/* ---------------------------------------------------------------- output and loss */

/* logits[t, v] = x_t . embd_v in double, rounded; p = softmax in double; the loss of
 * row t is log(sum exp(l - max)) - (l_target - max). */
double bn_train_output_forward(float *probs, const float *x, const float *embd,
                               const int32_t *targets, int64_t N, int64_t E, int64_t V)
{
    double loss = 0.0;
    for (int64_t t = 0; t < N; t++) {
        const float *xr = x + t * E;
        float *pr = probs + t * V;
        float mx = -INFINITY;
        for (int64_t v = 0; v < V; v++) {
            const float *er = embd + v * E;
            double acc = 0.0;
            for (int64_t e = 0; e < E; e++)
                acc += (double)xr[e] * er[e];
            pr[v] = (float)acc;
            mx = pr[v] > mx ? pr[v] : mx;
        }
        double sum = 0.0;
        for (int64_t v = 0; v < V; v++)
            sum += exp((double)pr[v] - mx);
        loss += log(sum) - ((double)pr[targets[t]] - mx);
        for (int64_t v = 0; v < V; v++)
            pr[v] = (float)(exp((double)pr[v] - mx) / sum);
    }
    return loss / (double)N;
}

void bn_train_output_backward(float *dx, float *dembd, float *probs, const float *x,
                              const float *embd, const int32_t *targets, int64_t N,
                              int64_t E, int64_t V, float scale, double *acc)
{
    const double k = (double)scale / (double)N;
    for (int64_t t = 0; t < N; t++) {
        float *pr = probs + t * V;
        for (int64_t v = 0; v < V; v++)
            pr[v] = (float)(((double)pr[v] - (v == targets[t])) * k);
    }
    for (int64_t t = 0; t < N; t++) {     /* dx = dlogits embd */
        const float *dl = probs + t * V;
        for (int64_t e = 0; e < E; e++)
            acc[e] = 0.0;
        for (int64_t v = 0; v < V; v++) {
            const double d = dl[v];
            const float *er = embd + v * E;
            for (int64_t e = 0; e < E; e++)
                acc[e] += d * er[e];
        }
        for (int64_t e = 0; e < E; e++)
            dx[t * E + e] += (float)acc[e];
    }
    for (int64_t v = 0; v < V; v++) {     /* dembd = dlogits^T x */
        for (int64_t e = 0; e < E; e++)
            acc[e] = 0.0;
        for (int64_t t = 0; t < N; t++) {
            const double d = probs[t * V + v];
            const float *xr = x + t * E;
            for (int64_t e = 0; e < E; e++)
                acc[e] += d * xr[e];
        }
        for (int64_t e = 0; e < E; e++)
            dembd[v * E + e] += (float)acc[e];
    }
}
