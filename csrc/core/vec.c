/* vec.c — shared elementwise loops (core/vec.h). */
#include "core/vec.h"

#include <math.h>
#include <string.h>

void cd_add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void cd_write_scaled(float *dx, const float *dy, float factor, size_t n, int acc) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dx[i] = acc ? dx[i] + dy[i] * factor : dy[i] * factor;
}

/* One chunk; dx may be dy (in place). A multiply by the mask (as TF's Relu6Grad: a NaN
 * gradient stays NaN) lets the compiler vectorise it branch-free. */
static void relu_grad_chunk(float *out, const float *y, const float *dy, size_t n, float hi,
                            int acc) {
    if (acc)
        for (size_t i = 0; i < n; i++) out[i] += dy[i] * (float)((y[i] > 0.f) & (y[i] < hi));
    else
        for (size_t i = 0; i < n; i++) out[i] = dy[i] * (float)((y[i] > 0.f) & (y[i] < hi));
}

void cd_relu_grad(float *dx, const float *y, const float *dy, size_t n, float max_value, int acc) {
    const size_t chunk = 16384;
    const float hi = max_value > 0.f ? max_value : INFINITY;
    const long chunks = (long)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (chunks > 4)
    for (long c = 0; c < chunks; c++) {
        size_t start = (size_t)c * chunk, len = n - start < chunk ? n - start : chunk;
        relu_grad_chunk(dx + start, y + start, dy + start, len, hi, acc);
    }
}

/* float32 -> bfloat16, round to nearest even; NaN stays NaN (quiet). */
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)(f != f ? (u >> 16) | 0x40u : rounded);
}

static inline float from_bf16(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* One chunk, one loop per type combination so that each vectorises. */
static void grad_to_bf16_chunk(uint16_t *du, const void *dy, int dy_bf16, const void *y, int y_bf16,
                               size_t n, float hi) {
    const float *df = dy, *yf = y;
    const uint16_t *dh = dy, *yh = y;
    if (!y && dy_bf16)
        memcpy(du, dh, n * sizeof *du);
    else if (!y)
        for (size_t i = 0; i < n; i++) du[i] = to_bf16(df[i]);
    else if (dy_bf16 && y_bf16) /* a bf16 dy is masked bit-wise: all ones or zero */
        for (size_t i = 0; i < n; i++) {
            const float v = from_bf16(yh[i]);
            du[i] = dh[i] & (uint16_t)-(int)((v > 0.f) & (v < hi));
        }
    else if (dy_bf16)
        for (size_t i = 0; i < n; i++) du[i] = dh[i] & (uint16_t)-(int)((yf[i] > 0.f) & (yf[i] < hi));
    else if (y_bf16)
        for (size_t i = 0; i < n; i++) {
            const float v = from_bf16(yh[i]);
            du[i] = to_bf16(df[i] * (float)((v > 0.f) & (v < hi)));
        }
    else
        for (size_t i = 0; i < n; i++) du[i] = to_bf16(df[i] * (float)((yf[i] > 0.f) & (yf[i] < hi)));
}

void cd_grad_to_bf16(uint16_t *du, const void *dy, int dy_bf16, const void *y, int y_bf16, size_t n,
                     float max_value) {
    const size_t chunk = 16384;
    const float hi = max_value > 0.f ? max_value : INFINITY;
    const long chunks = (long)((n + chunk - 1) / chunk);
    const size_t dy_size = dy_bf16 ? 2 : 4, y_size = y_bf16 ? 2 : 4;
#pragma omp parallel for schedule(static) if (chunks > 4)
    for (long c = 0; c < chunks; c++) {
        size_t start = (size_t)c * chunk, len = n - start < chunk ? n - start : chunk;
        grad_to_bf16_chunk(du + start, (const char *)dy + start * dy_size, dy_bf16,
                           y ? (const char *)y + start * y_size : NULL, y_bf16, len, hi);
    }
}
