/*
 * test_train_sched.c - the training schedules (src/train/optim.c: bn_lr_at, bn_wd_at,
 * bn_lambda_at) against reference values that scripts/fixtures/make_schedule.py
 * computes from their written definitions (tests/fixtures/schedule.bnfx): warm-up,
 * cosine, the two-stage schedule of the BitNet b1.58 recipe with its weight decay off in
 * stage two, and the linear ramp of progressive quantization, over every step of each
 * case and three steps past its end. Both sides evaluate the same double formulas, so
 * the learning rates agree to 1e-12 relative; the weight decays and lambdas exactly
 * (lambda is a float: compared with the reference rounded to float).
 */
#include <math.h>

#include "check.h"
#include "fixture.h"
#include "train/train.h"

int main(void)
{
    fx_file *fx = fx_open("schedule.bnfx");
    CHECK(fx != NULL, "schedule.bnfx");
    if (!fx)
        return check_summary("test_train_sched");
    const int n_cases = (int)fx_at(fx_get(fx, "n_cases"), 0);
    CHECK(n_cases >= 5, "%d cases", n_cases);
    int two_stage = 0;
    for (int k = 0; k < n_cases; k++) {
        char name[64];
        snprintf(name, sizeof name, "case%d.params", k);
        const fx_array *p = fx_get(fx, name);
        snprintf(name, sizeof name, "case%d.lr", k);
        const fx_array *lr = fx_get(fx, name);
        snprintf(name, sizeof name, "case%d.wd", k);
        const fx_array *wd = fx_get(fx, name);
        snprintf(name, sizeof name, "case%d.lambda", k);
        const fx_array *lam = fx_get(fx, name);
        CHECK(p && lr && wd && lam, "case %d present", k);
        if (!p || !lr || !wd || !lam)
            continue;
        bn_lr_schedule s = {
            .lr_max = fx_at(p, 0), .lr_min = fx_at(p, 1), .warmup = (int32_t)fx_at(p, 2),
            .steps = (int32_t)fx_at(p, 3),
            .kind = fx_at(p, 4) == 1 ? BN_LR_TWO_STAGE : BN_LR_COSINE,
            .drop_step = (int32_t)fx_at(p, 5), .lr_stage2 = fx_at(p, 6)};
        two_stage += s.kind == BN_LR_TWO_STAGE;
        const double w = fx_at(p, 7);
        const int64_t ramp = (int64_t)fx_at(p, 8);
        int bad_lr = 0, bad_wd = 0, bad_lambda = 0;
        for (int64_t i = 0; i < (int64_t)s.steps + 3; i++) {
            double want = fx_at(lr, i), got = bn_lr_at(&s, i);
            if (fabs(got - want) > 1e-12 * fabs(want) + 1e-18 && bad_lr++ < 3)
                fprintf(stderr, "case %d step %lld: lr %.17g, reference %.17g\n", k,
                        (long long)i, got, want);
            if (bn_wd_at(&s, i, w) != fx_at(wd, i) && bad_wd++ < 3)
                fprintf(stderr, "case %d step %lld: wd %g, reference %g\n", k,
                        (long long)i, bn_wd_at(&s, i, w), fx_at(wd, i));
            if (bn_lambda_at(ramp, i) != (float)fx_at(lam, i) && bad_lambda++ < 3)
                fprintf(stderr, "case %d step %lld: lambda %.9g, reference %.9g\n", k,
                        (long long)i, bn_lambda_at(ramp, i), fx_at(lam, i));
        }
        CHECK(bad_lr == 0 && bad_wd == 0 && bad_lambda == 0,
              "case %d: %d learning rates, %d weight decays, %d lambdas differ", k, bad_lr,
              bad_wd, bad_lambda);
    }
    CHECK(two_stage >= 2, "two-stage cases covered");
    fx_close(fx);
    return check_summary("test_train_sched");
}
