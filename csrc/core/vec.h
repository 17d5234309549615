/* vec.h — elementwise loops several layers and the executor share (parallel over n). */
#ifndef CD_CORE_VEC_H
#define CD_CORE_VEC_H
#include <stddef.h>
#include <stdint.h>

/* y += x (n floats). */
void cd_add_inplace(float *y, const float *x, size_t n);
/* dx = dy * factor, or dx += dy * factor when acc. */
void cd_write_scaled(float *dx, const float *dy, float factor, size_t n, int acc);
/* dx (+)= dy * (0 < y < max_value) (no upper bound when max_value <= 0): the gradient of
 * ReLU(max_value) from its output y. dx may be dy. */
void cd_relu_grad(float *dx, const float *y, const float *dy, size_t n, float max_value, int acc);
/* du = bf16(dy * (0 < y < max_value)) (no upper bound when max_value <= 0; y NULL: bf16(dy)),
 * rounded to the nearest bfloat16, ties to even, as oneDNN's f32 -> bf16 reorder rounds:
 * a ReLU's gradient from its output, handed to bf16 backward convolutions in one pass. dy and
 * y are each float32, or bfloat16 when dy_bf16 / y_bf16 (a bf16 dy is masked, not rounded). */
void cd_grad_to_bf16(uint16_t *du, const void *dy, int dy_bf16, const void *y, int y_bf16, size_t n,
                     float max_value);
#endif
