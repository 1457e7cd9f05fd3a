/*
 * optim.c - the optimizer side of training: gradient norm and clipping, AdamW, the
 * learning-rate schedule, and one whole step with gradient accumulation.
 *
 * The arithmetic follows scripts/fixtures/train_ref.py (and so PyTorch): the
 * hyperparameters are doubles, rounded to float where they meet a float tensor, and
 * every per-element update is float arithmetic in the written order.
 */
#include <math.h>
#include <string.h>

#include "train/train.h"

void bn_train_zero_grad(bn_train_model *m)
{
    memset(m->grads, 0, m->n_params * sizeof(float));
}

double bn_train_grad_norm(const bn_train_model *m)
{
    double ss = 0.0;
    for (size_t i = 0; i < m->n_params; i++)
        ss += (double)m->grads[i] * m->grads[i];
    return sqrt(ss);
}

typedef struct bn_scale_job {
    bn_train_model *m;
    float k;
} bn_scale_job;

BN_TRAIN_CLONES static void bn_scale_range(void *ctx, int64_t lo, int64_t hi)
{
    const bn_scale_job *j = ctx;
    float *restrict g = j->m->grads;
    const float k = j->k;
    for (int64_t i = lo; i < hi; i++)
        g[i] = g[i] * k;
}

double bn_train_clip_grad(bn_train_model *m, double max_norm)
{
    const double norm = bn_train_grad_norm(m);
    if (max_norm <= 0.0)
        return norm;
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float k = (float)coef;
        bn_train_parallel(m, (int64_t)m->n_params, bn_scale_range, &(bn_scale_job){m, k});
    }
    return norm;
}

bn_adamw_params bn_adamw_default_params(void)
{
    return (bn_adamw_params){.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
}

/* With t = the step counted from 1:
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p = p - lr (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd p)
 * wd only on the tensors whose decay flag is set (the matrices and the embedding). */
/* The per-element constants of one AdamW step. */
typedef struct bn_adamw_job {
    bn_train_model *m;
    float b1, b2, c1, c2, bc1, bc2, eps, wd, rate;
} bn_adamw_job;

/* One tensor's run of n elements: the constants in locals and the arrays restrict, so
 * that the loop vectorizes (with them read through the job, every store to a float
 * array might have changed them; sqrtf vectorizes as optim.c is built without errno for
 * the math functions). DECAY is a constant at each call. */
static inline __attribute__((always_inline)) void
bn_adamw_run(const bn_adamw_job *j, float *restrict w, const float *restrict g,
             float *restrict mm, float *restrict vv, int64_t n, const bool DECAY)
{
    const float b1 = j->b1, b2 = j->b2, c1 = j->c1, c2 = j->c2, bc1 = j->bc1, bc2 = j->bc2;
    const float eps = j->eps, wd = j->wd, rate = j->rate;
    for (int64_t i = 0; i < n; i++) {
        mm[i] = b1 * mm[i] + c1 * g[i];
        vv[i] = b2 * vv[i] + c2 * g[i] * g[i];
        float upd = (mm[i] / bc1) / (sqrtf(vv[i] / bc2) + eps);
        if (DECAY)
            upd = upd + wd * w[i];
        w[i] = w[i] - rate * upd;
    }
}

/* Elements [lo, hi) of the flat arrays, tensor by tensor (each element's update reads
 * only itself, so any split gives the same bits). */
BN_TRAIN_CLONES static void bn_adamw_range(void *ctx, int64_t lo, int64_t hi)
{
    const bn_adamw_job *j = ctx;
    bn_train_model *m = j->m;
    for (int32_t k = 0; k < m->n_tensors; k++) {
        const bn_train_tensor *tn = &m->tensors[k];
        const int64_t t0 = (int64_t)tn->offset, t1 = t0 + tn->rows * tn->cols;
        const int64_t a = lo > t0 ? lo : t0, b = hi < t1 ? hi : t1;
        if (a >= b)
            continue;
        if (tn->decay)
            bn_adamw_run(j, m->params + a, m->grads + a, m->adam_m + a, m->adam_v + a, b - a,
                         true);
        else
            bn_adamw_run(j, m->params + a, m->grads + a, m->adam_m + a, m->adam_v + a, b - a,
                         false);
    }
}

void bn_train_adamw_step(bn_train_model *m, const bn_adamw_params *p, double lr)
{
    const int64_t t = ++m->step;
    bn_adamw_job j = {
        .m = m, .b1 = (float)p->beta1, .b2 = (float)p->beta2,
        .c1 = (float)(1.0 - p->beta1), .c2 = (float)(1.0 - p->beta2),
        .bc1 = (float)(1.0 - pow(p->beta1, (double)t)),
        .bc2 = (float)(1.0 - pow(p->beta2, (double)t)),
        .eps = (float)p->eps, .wd = (float)p->weight_decay, .rate = (float)lr,
    };
    bn_train_parallel(m, (int64_t)m->n_params, bn_adamw_range, &j);
}

/* lr_min + (from - lr_min) (1 + cos(pi r)) / 2 with r = (step - start) / span, held
 * at 1 beyond the span. */
static double bn_cosine(double from, double lr_min, int64_t step, int64_t start,
                        int64_t span)
{
    double ratio = (double)(step - start) / (double)(span > 1 ? span : 1);
    if (ratio > 1.0)
        ratio = 1.0;
    const double coeff = 0.5 * (1.0 + cos(3.14159265358979323846 * ratio));
    return lr_min + coeff * (from - lr_min);
}

double bn_lr_at(const bn_lr_schedule *s, int64_t step)
{
    if (step < s->warmup)
        return s->lr_max * (double)(step + 1) / (double)s->warmup;
    if (s->kind == BN_LR_TWO_STAGE && step >= s->drop_step)
        return bn_cosine(s->lr_stage2, s->lr_min, step, s->drop_step,
                         s->steps - 1 - s->drop_step);
    return bn_cosine(s->lr_max, s->lr_min, step, s->warmup, s->steps - 1 - s->warmup);
}

double bn_wd_at(const bn_lr_schedule *s, int64_t step, double wd)
{
    return s->kind == BN_LR_TWO_STAGE && step >= s->drop_step ? 0.0 : wd;
}

float bn_lambda_at(int64_t ramp, int64_t step)
{
    if (ramp <= 0 || step >= ramp)
        return 1.0f;
    return (float)((double)step / (double)ramp);
}

bn_status bn_train_step(bn_train_model *m, const bn_train_step_params *p,
                        const int32_t *tokens, const int32_t *targets,
                        bn_train_step_result *res)
{
    if (p->n_micro <= 0)
        return bn_error_set(BN_ERR_INVALID_ARG, "train: %d micro-batches per step",
                            p->n_micro);
    const size_t per = (size_t)m->B * (size_t)m->cfg.n_ctx;
    bn_train_zero_grad(m);
    double loss = 0.0;
    for (int32_t i = 0; i < p->n_micro; i++) {
        float l;
        /* the forward's softmax leaves the logits' gradient for this backward's scale */
        m->dl_scale = 1.0f / (float)p->n_micro;
        bn_status st = bn_train_forward(m, tokens + i * per, targets + i * per, p->lambda,
                                        &l);
        m->dl_scale = 0.0f;
        if (st != BN_OK) {
            m->have_forward = false;
            return bn_error_wrap(st, "train step %lld, micro-batch %d",
                                 (long long)m->step, (int)i);
        }
        bn_train_backward(m, 1.0f / (float)p->n_micro);
        loss += l;
    }
    res->loss = (float)(loss / p->n_micro);
    if (p->reduce_grads && !p->reduce_grads(m, p->reduce_user))
        return bn_error_wrap(BN_OK, "train step %lld: combining the gradients",
                             (long long)m->step);
    res->grad_norm = bn_train_clip_grad(m, p->clip_norm);
    res->lr = bn_lr_at(&p->lr, m->step);
    bn_adamw_params adamw = p->adamw;
    adamw.weight_decay = bn_wd_at(&p->lr, m->step, p->adamw.weight_decay);
    bn_train_adamw_step(m, &adamw, res->lr);
    return BN_OK;
}
