/*
 * ternary.c - the BitNet b1.58 quantizers: absmean ternarization of weights (per
 * tensor, per output channel or per group) and absmax int8 quantization of
 * activations, plus the error measures that `bitnet quantize --stats` reports.
 *
 * These are the scalar references of the numerics contract: every faster version
 * must give the same integers. Rounding is half to even (rintf under the default
 * rounding mode), as torch.round does.
 */
#include <math.h>
#include <string.h>

#include "core/internal.h"

bn_ternary_params bn_ternary_default_params(void)
{
    return (bn_ternary_params){.granularity = BN_TERNARY_PER_TENSOR, .group_size = 0};
}

/* Weights per scale for the params, or 0 when they do not fit the shape. */
static int64_t bn_ternary_group_len(const bn_ternary_params *p, int64_t row_len,
                                    int64_t n_rows)
{
    switch (p->granularity) {
    case BN_TERNARY_PER_TENSOR:
        return row_len * n_rows;
    case BN_TERNARY_PER_CHANNEL:
        return row_len;
    case BN_TERNARY_PER_GROUP:
        if (p->group_size <= 0 || row_len % p->group_size != 0)
            return 0;
        return p->group_size;
    default:
        return 0;
    }
}

int64_t bn_ternary_n_scales(const bn_ternary_params *params, int64_t row_len,
                            int64_t n_rows)
{
    bn_ternary_params p = params ? *params : bn_ternary_default_params();
    if (row_len <= 0 || n_rows <= 0)
        return 0;
    int64_t len = bn_ternary_group_len(&p, row_len, n_rows);
    return len > 0 ? row_len * n_rows / len : 0;
}

/* Ternarizes one group of n weights with its absmean scale. */
static float bn_ternarize_group(const float *restrict w, int64_t n, int8_t *restrict q)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += fabs((double)w[i]);
    double mean = sum / (double)n;
    float g = (float)(mean > 1e-5 ? mean : 1e-5);
    /* rintf(w / g) clamped to [-1, 1] is 1 exactly where w / g > 0.5 (0.5 itself
     * rounds to 0, ties to even; 1.5 and past round to 2 or more, clamped to 1) and -1
     * where w / g < -0.5: two comparisons, which vectorize where rintf and the clamp's
     * branches do not */
    for (int64_t i = 0; i < n; i++) {
        const float r = w[i] / g;
        q[i] = (int8_t)((r > 0.5f) - (r < -0.5f));
    }
    return g;
}

bn_status bn_ternarize(const float *w, int64_t row_len, int64_t n_rows,
                       const bn_ternary_params *params, int8_t *q, float *scales)
{
    bn_ternary_params p = params ? *params : bn_ternary_default_params();
    if (row_len <= 0 || n_rows <= 0)
        return bn_error_set(BN_ERR_SHAPE, "ternarize: shape %lld x %lld is empty",
                            (long long)n_rows, (long long)row_len);
    int64_t len = bn_ternary_group_len(&p, row_len, n_rows);
    if (len == 0)
        return bn_error_set(BN_ERR_INVALID_ARG, "ternarize: group size %lld does not "
                            "divide the row length %lld", (long long)p.group_size,
                            (long long)row_len);
    int64_t n = row_len * n_rows;
    /* any infinity or NaN (all exponent bits set), branch-free; then where */
    uint32_t nonfinite = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &w[i], sizeof u);
        nonfinite |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    for (int64_t i = 0; nonfinite && i < n; i++) {
        if (!isfinite(w[i]))
            return bn_error_set(BN_ERR_NUMERIC, "ternarize: %s at index %lld (row %lld, "
                                "column %lld)", isnan(w[i]) ? "NaN" : "infinity",
                                (long long)i, (long long)(i / row_len),
                                (long long)(i % row_len));
    }
    for (int64_t g = 0; g < n / len; g++)
        scales[g] = bn_ternarize_group(w + g * len, len, q + g * len);
    return BN_OK;
}

bool bn_ternary_detect(const float *w, int64_t n, float *scale)
{
    /* compare magnitudes as bits: branch-free, so the scan runs at memory speed */
    uint32_t mag = 0;
    int64_t i = 0;
    for (; i < n && mag == 0; i++) {
        uint32_t u;
        memcpy(&u, &w[i], 4);
        mag = u & 0x7fffffffu;
    }
    if (mag >= 0x7f800000u)          /* Inf or NaN */
        return false;
    uint32_t bad = 0;
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, &w[i], 4);
        u &= 0x7fffffffu;
        bad |= (uint32_t)(u != 0 && u != mag);
    }
    if (bad)
        return false;
    memcpy(scale, &mag, 4);
    return true;
}

void bn_quantize_act_i8(const float *x, int64_t n, int8_t *q, float *scale)
{
    bn_kernels()->quantize_act_i8(x, n, q, scale);
}

void bn_quant_error_measure(const float *orig, const float *deq, int64_t n,
                            bn_quant_error *out)
{
    double signal = 0.0, noise = 0.0, max_err = 0.0;
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)orig[i] - (double)deq[i];
        signal += (double)orig[i] * orig[i];
        noise += d * d;
        max_err = fabs(d) > max_err ? fabs(d) : max_err;
        zeros += deq[i] == 0.0f;
    }
    out->n = n;
    out->mse = n ? noise / (double)n : 0.0;
    out->sqnr_db = noise == 0.0 ? INFINITY : 10.0 * log10(signal / noise);
    out->zero_fraction = n ? (double)zeros / (double)n : 0.0;
    out->max_abs_error = max_err;
}
