/*
 * train_plot.c - the files a training run keeps up to date in its directory:
 * train.csv (one row per step) and loss.svg (train and validation loss against step,
 * with axes, ticks, labels and a legend: a plain SVG any browser shows). Both are
 * written whole through a bn_out_file, so a reader never sees half a file.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_plot.h"

/* A growable text buffer. */
typedef struct tbuf {
    char  *p;
    size_t n, cap;
    bool   failed;
} tbuf;

static void tb_printf(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tb_printf(tbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->failed = true;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + (size_t)k + 1)
            cap *= 2;
        char *grown = realloc(b->p, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
}

/* Writes the buffer to path whole; false with the library's error set. */
static bool tb_write(tbuf *b, const char *path)
{
    if (b->failed) {
        free(b->p);
        bn_error_set(BN_ERR_OOM, "building %s", path);
        return false;
    }
    bn_out_file *f = NULL;
    bn_status st = bn_out_file_open(path, &f);
    if (st == BN_OK)
        st = bn_out_file_write(f, b->p, b->n);
    if (st == BN_OK)
        st = bn_out_file_commit(f);
    else if (f)
        bn_out_file_discard(f);
    free(b->p);
    return st == BN_OK;
}

bool train_write_csv(const char *path, const bn_train_log_row *rows, int64_t n)
{
    tbuf b = {0};
    tb_printf(&b, "step,lr,train_loss,val_loss,tokens_per_second,lambda,grad_norm\n");
    for (int64_t i = 0; i < n; i++) {
        const bn_train_log_row *r = &rows[i];
        tb_printf(&b, "%lld,%.6g,%.6f,", (long long)r->step, r->lr, r->train_loss);
        if (isnan(r->val_loss))
            tb_printf(&b, ",");
        else
            tb_printf(&b, "%.6f,", r->val_loss);
        tb_printf(&b, "%.1f,%.4g,%.6g\n", r->tokens_per_second, r->lambda, r->grad_norm);
    }
    return tb_write(&b, path);
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about `want` ticks. */
static double nice_step(double span, int want)
{
    double raw = span / want, p = pow(10.0, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1.0 : m < 3.5 ? 2.0 : m < 7.5 ? 5.0 : 10.0) * p;
}

bool train_write_svg(const char *path, const bn_train_log_row *rows, int64_t n,
                     const char *title)
{
    const double W = 720, H = 440, L = 70, R = 20, T = 40, B = 60;
    double x0 = 0, x1 = 1, y0 = INFINITY, y1 = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x1 = fmax(x1, (double)rows[i].step);
        double vals[2] = {rows[i].train_loss, rows[i].val_loss};
        for (int k = 0; k < 2; k++)
            if (isfinite(vals[k])) {
                y0 = fmin(y0, vals[k]);
                y1 = fmax(y1, vals[k]);
            }
    }
    if (!isfinite(y0)) {
        y0 = 0;
        y1 = 1;
    }
    if (y1 - y0 < 1e-6)
        y1 = y0 + 1;
    double ys = nice_step(y1 - y0, 6), xs = nice_step(x1 - x0, 8);
    y0 = floor(y0 / ys) * ys;
    y1 = ceil(y1 / ys) * ys;
    x1 = ceil(x1 / xs) * xs;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * (W - L - R))
#define PY(y) (H - B - ((y) - y0) / (y1 - y0) * (H - T - B))
    tbuf b = {0};
    tb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
                  "viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" font-size=\"12\">\n"
                  "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
              W, H, W, H);
    tb_printf(&b, "<text x=\"%g\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", W / 2);
    for (const char *c = title; *c; c++)      /* the title, XML-escaped */
        tb_printf(&b, "%s", *c == '<' ? "&lt;" : *c == '>' ? "&gt;" : *c == '&' ? "&amp;"
                            : (char[2]){*c, 0});
    tb_printf(&b, "</text>\n");
    /* grid, ticks and their labels */
    for (double y = y0; y <= y1 + ys / 2; y += ys)
        tb_printf(&b, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                      "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                  L, PY(y), W - R, PY(y), L - 6, PY(y) + 4, round(y / ys) * ys);
    for (double x = x0; x <= x1 + xs / 2; x += xs)
        tb_printf(&b, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#ddd\"/>"
                      "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%g</text>\n",
                  PX(x), T, PX(x), H - B, PX(x), H - B + 16, x);
    tb_printf(&b, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" "
                  "stroke=\"black\"/>\n", L, T, W - L - R, H - T - B);
    tb_printf(&b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">step</text>\n"
                  "<text x=\"16\" y=\"%g\" text-anchor=\"middle\" "
                  "transform=\"rotate(-90 16 %g)\">loss (nats per token)</text>\n",
              (L + W - R) / 2, H - 20, (T + H - B) / 2, (T + H - B) / 2);
    /* the curves: train loss at every step, validation loss at its evaluations */
    tb_printf(&b, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.2\" "
                  "points=\"");
    for (int64_t i = 0; i < n; i++)
        if (isfinite(rows[i].train_loss))
            tb_printf(&b, "%.1f,%.1f ", PX((double)rows[i].step), PY(rows[i].train_loss));
    tb_printf(&b, "\"/>\n<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" "
                  "points=\"");
    for (int64_t i = 0; i < n; i++)
        if (isfinite(rows[i].val_loss))
            tb_printf(&b, "%.1f,%.1f ", PX((double)rows[i].step), PY(rows[i].val_loss));
    tb_printf(&b, "\"/>\n");
    for (int64_t i = 0; i < n; i++)
        if (isfinite(rows[i].val_loss))
            tb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d62728\"/>\n",
                      PX((double)rows[i].step), PY(rows[i].val_loss));
    /* legend */
    double lx = W - R - 170, ly = T + 12;
    tb_printf(&b, "<rect x=\"%g\" y=\"%g\" width=\"160\" height=\"44\" fill=\"white\" "
                  "stroke=\"#999\"/>\n"
                  "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#1f77b4\" "
                  "stroke-width=\"2\"/><text x=\"%g\" y=\"%g\">train loss</text>\n"
                  "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#d62728\" "
                  "stroke-width=\"2\"/><text x=\"%g\" y=\"%g\">validation loss</text>\n"
                  "</svg>\n",
              lx, ly - 8, lx + 8, ly + 6, lx + 36, ly + 6, lx + 44, ly + 10, lx + 8,
              ly + 26, lx + 36, ly + 26, lx + 44, ly + 30);
#undef PX
#undef PY
    return tb_write(&b, path);
}
