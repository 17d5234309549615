/* postop.c — activations declared as post-ops (nn/layer.h cd_post_op): which ones a
 * trainable block can take (their derivative is a function of the output), and that
 * derivative, for the block's backward (nn/conv_fused.c). */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/vec.h"
#include "nn/conv_fused.h"

int cd_post_act_relu_like(const cd_post_op *act, float *max_value) {
    if (act->kind != CD_POST_ACT || act->count != 1) return 0;
    const cd_eltwise *e = &act->eltwise[0];
    if (e->alg == CD_ELTWISE_RELU && e->alpha == 0.f) {
        *max_value = 0.f;
        return 1;
    }
    if (e->alg == CD_ELTWISE_CLIP && e->alpha == 0.f && e->beta > 0.f) {
        *max_value = e->beta;
        return 1;
    }
    return 0;
}

static inline float widen(const void *y, int bf16, size_t i) {
    if (!bf16) return ((const float *)y)[i];
    const uint32_t u = (uint32_t)((const uint16_t *)y)[i] << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* du = dy * f'(x), f' from y = f(x):
 *   relu / clip(0, hi)   (0 < y < hi)        logistic   y (1 - y)
 *   tanh                 1 - y^2             elu        y > 0 ? 1 : y + alpha */
cd_status cd_post_act_grad(const cd_post_op *act, float *du, const float *dy, const void *y,
                           int y_bf16, size_t n) {
    float hi;
    if (cd_post_act_relu_like(act, &hi) && !y_bf16) {
        cd_relu_grad(du, y, dy, n, hi, 0);
        return CD_OK;
    }
    if (act->kind != CD_POST_ACT || act->count != 1 || !act->grad_from_output)
        return cd_fail(CD_ERR_STATE, "an activation whose gradient needs its input ended a "
                       "trainable block");
    const cd_eltwise e = act->eltwise[0];
    if (e.alg == CD_ELTWISE_RELU || e.alg == CD_ELTWISE_CLIP) hi = e.alg == CD_ELTWISE_CLIP ? e.beta : INFINITY;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        const float v = widen(y, y_bf16, i);
        float d;
        switch (e.alg) {
        case CD_ELTWISE_LOGISTIC: d = v * (1.f - v); break;
        case CD_ELTWISE_TANH: d = 1.f - v * v; break;
        case CD_ELTWISE_ELU: d = v > 0.f ? 1.f : v + e.alpha; break;
        default: d = (v > 0.f) & (v < hi) ? 1.f : 0.f; break;
        }
        du[i] = dy[i] * d;
    }
    return CD_OK;
}
