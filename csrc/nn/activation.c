/* activation.c — Keras's Activation layer (and the activation= of Conv2D, DepthwiseConv2D
 * and Dense, which catdog runs as this kind after the layer's own node): y = f(x) element by
 * element on (n, h, w, c) or (n, c), softmax over the last axis (channels).
 *
 * Hyperparameter "function" (catdog.h CD_ACTIVATION_*). The definitions and gradients are
 * Keras 3's with the TensorFlow backend (keras/src/activations/activations.py and
 * keras/src/backend/tensorflow/nn.py), as TF differentiates them:
 *   relu        max(x, 0)                        dy * (x > 0)
 *   relu6       min(max(x, 0), 6)                dy * (0 < x < 6)
 *   sigmoid     s = 1 / (1 + exp(-x))            dy * s * (1 - s)
 *   tanh        t = tanh(x)                      dy * (1 - t^2)
 *   silu        x * s                            dy * s * (1 + x * (1 - s))    (tf.nn.silu)
 *   hard_sigmoid relu6(x + 3) / 6                dy / 6 * (-3 < x < 3)
 *   hard_silu   x * relu6(x + 3) / 6             dy * (relu6(x + 3) / 6 + x / 6 * (-3 < x < 3))
 *   gelu        x / 2 * (1 + erf(x / sqrt 2))    dy * (Phi(x) + x * phi(x))    (approximate=False)
 *   elu         x > 0 ? x : exp(x) - 1           dy * (x > 0 ? 1 : exp(x))
 *   selu        scale * (x > 0 ? x : alpha * (exp(x) - 1))   dy * scale * (x >= 0 ? 1 : alpha exp(x))
 *   softplus    log(1 + exp(x))                  dy * s
 *   softmax     exp(x - max) / sum               y * (dy - sum(dy * y))  (over channels)
 *   linear      x                                dy
 * The backward reads the input x (every function but softmax, which reads its output).
 * sigmoid, tanh, silu and gelu run as oneDNN's eltwise primitives (the same definitions,
 * nn/eltwise.h), prepared per batch size: their JIT kernels vectorise exp, erf and tanh where
 * the loops below call libm once per element. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/vec.h"
#include "nn/eltwise.h"
#include "nn/layer.h"

typedef struct {
    int function; /* CD_ACTIVATION_* */
} activation_hp;

static const float selu_alpha = 1.67326324f, selu_scale = 1.05070098f;

static cd_status activation_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    activation_hp *hp = node->hp;
    CD_TRY(cd_hp_ints(h, "function", 1, NULL, &hp->function));
    if (hp->function < 0 || hp->function >= CD_ACTIVATION_COUNT)
        return cd_fail(CD_ERR_VALUE, "layer '%s': unknown activation function %d", node->name,
                       hp->function);
    node->shape = in[0];
    return CD_OK;
}

static unsigned activation_flags(const cd_node *node) {
    const activation_hp *hp = node->hp;
    return hp->function == CD_ACTIVATION_SOFTMAX ? CD_OP_READS_OUTPUT : CD_OP_READS_INPUT;
}

static inline float sigmoidf(float x) { return 1.f / (1.f + expf(-x)); }

/* min(max(x, 0), 6) without libm's fminf / fmaxf calls (NaN gives 0, as theirs), so the
 * loops over it vectorise. */
static inline float relu6f(float x) {
    const float v = x > 0.f ? x : 0.f;
    return v < 6.f ? v : 6.f;
}

static inline float apply(int f, float x) {
    switch (f) {
    case CD_ACTIVATION_RELU: return x > 0.f ? x : 0.f;
    case CD_ACTIVATION_RELU6: return relu6f(x);
    case CD_ACTIVATION_SIGMOID: return sigmoidf(x);
    case CD_ACTIVATION_TANH: return tanhf(x);
    case CD_ACTIVATION_SILU: return x * sigmoidf(x);
    case CD_ACTIVATION_HARD_SIGMOID: return relu6f(x + 3.f) / 6.f;
    case CD_ACTIVATION_HARD_SILU: return x * (relu6f(x + 3.f) / 6.f);
    case CD_ACTIVATION_GELU: return 0.5f * x * (1.f + erff(x * (float)M_SQRT1_2));
    case CD_ACTIVATION_ELU: return x > 0.f ? x : expm1f(x);
    case CD_ACTIVATION_SELU: return selu_scale * (x > 0.f ? x : selu_alpha * expm1f(x));
    /* log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)) */
    case CD_ACTIVATION_SOFTPLUS: return fmaxf(x, 0.f) + log1pf(expf(-fabsf(x)));
    default: return x; /* linear */
    }
}

/* d f(x) / dx */
static inline float slope(int f, float x) {
    switch (f) {
    case CD_ACTIVATION_RELU: return x > 0.f ? 1.f : 0.f;
    case CD_ACTIVATION_RELU6: return x > 0.f && x < 6.f ? 1.f : 0.f;
    case CD_ACTIVATION_SIGMOID: {
        const float s = sigmoidf(x);
        return s * (1.f - s);
    }
    case CD_ACTIVATION_TANH: {
        const float t = tanhf(x);
        return 1.f - t * t;
    }
    case CD_ACTIVATION_SILU: {
        const float s = sigmoidf(x);
        return s * (1.f + x * (1.f - s));
    }
    case CD_ACTIVATION_HARD_SIGMOID: return x > -3.f && x < 3.f ? 1.f / 6.f : 0.f;
    case CD_ACTIVATION_HARD_SILU:
        return relu6f(x + 3.f) / 6.f + (x > -3.f && x < 3.f ? x / 6.f : 0.f);
    case CD_ACTIVATION_GELU:
        return 0.5f * (1.f + erff(x * (float)M_SQRT1_2)) +
               x * expf(-0.5f * x * x) * 0.3989422804014327f; /* 1 / sqrt(2 pi) */
    case CD_ACTIVATION_ELU: return x > 0.f ? 1.f : expf(x);
    /* TF's SeluGrad picks by the output's sign: y < 0 (x < 0) takes the exponential side */
    case CD_ACTIVATION_SELU: return selu_scale * (x >= 0.f ? 1.f : selu_alpha * expf(x));
    case CD_ACTIVATION_SOFTPLUS: return sigmoidf(x);
    default: return 1.f;
    }
}

/* softmax over the last axis of `rows` rows of c values */
static void softmax_rows(const float *x, float *y, size_t rows, int c) {
#pragma omp parallel for schedule(static) if (rows * (size_t)c > 65536)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)c;
        float *yr = y + r * (size_t)c;
        float m = xr[0], sum = 0.f;
        for (int k = 1; k < c; k++) m = fmaxf(m, xr[k]);
        for (int k = 0; k < c; k++) sum += yr[k] = expf(xr[k] - m);
        for (int k = 0; k < c; k++) yr[k] /= sum;
    }
}

static int activation_post_op(const cd_node *node, cd_post_op *op);

/* The functions run by oneDNN (their libm calls do not vectorise in plain C). Not elu and
 * softplus: oneDNN computes them as exp(x) - 1 and log(1 + exp(x)), which lose the relative
 * accuracy of TF's expm1 / log1p near 0 and for negative x (benchmarks/ANALYSIS.md). */
static int on_onednn(int f) {
    return f == CD_ACTIVATION_SIGMOID || f == CD_ACTIVATION_TANH || f == CD_ACTIVATION_SILU ||
           f == CD_ACTIVATION_GELU;
}

static void activation_release(cd_node *node) {
    cd_eltwise_prims *p = node->state;
    if (!p) return;
    cd_eltwise_release(p);
    free(p);
    node->state = NULL;
}

/* node->state: the eltwise primitives over n samples (NULL for the plain-C functions). */
static cd_status activation_prepare(cd_node *node, const cd_shape *in, int n) {
    (void)in;
    if (!on_onednn(((const activation_hp *)node->hp)->function)) return CD_OK;
    cd_post_op op;
    activation_post_op(node, &op);
    cd_eltwise_prims *p = calloc(1, sizeof *p);
    if (!p) return cd_fail(CD_ERR_MEMORY, "out of memory preparing '%s'", node->name);
    node->state = p;
    return cd_eltwise_prepare(p, op.eltwise[0], (size_t)n * cd_node_sample_size(node), node->name);
}

static cd_status activation_forward(cd_node *node, const cd_io *io) {
    const int f = ((const activation_hp *)node->hp)->function;
    const size_t n = (size_t)io->n * cd_node_sample_size(node);
    if (node->state) return cd_eltwise_forward(node->state, io->in[0], io->out, node->name);
    if (f == CD_ACTIVATION_SOFTMAX) {
        softmax_rows(io->in[0], io->out, n / (size_t)node->shape.c, node->shape.c);
        return CD_OK;
    }
    const float *x = io->in[0];
    float *y = io->out;
    /* one loop per libm-free function, so the switch in apply() folds and the loop vectorises */
#define FORWARD_LOOP(F)                                                       \
    case F: {                                                                 \
        _Pragma("omp parallel for schedule(static) if (n > 65536)")          \
        for (size_t i = 0; i < n; i++) y[i] = apply(F, x[i]);                 \
        return CD_OK;                                                         \
    }
    switch (f) {
        FORWARD_LOOP(CD_ACTIVATION_RELU)
        FORWARD_LOOP(CD_ACTIVATION_RELU6)
        FORWARD_LOOP(CD_ACTIVATION_HARD_SIGMOID)
        FORWARD_LOOP(CD_ACTIVATION_HARD_SILU)
    default: break;
    }
#undef FORWARD_LOOP
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] = apply(f, x[i]);
    return CD_OK;
}

static cd_status activation_backward(cd_node *node, const cd_io *io) {
    float *dx = io->dx[0];
    if (!dx) return CD_OK;
    const int f = ((const activation_hp *)node->hp)->function, acc = io->acc[0];
    const size_t n = (size_t)io->n * cd_node_sample_size(node);
    const float *dy = io->dout;
    if (node->state) { /* accumulate: the gradient into scratch, then added */
        float *target = acc ? io->scratch : dx;
        CD_TRY(cd_eltwise_backward(node->state, io->in[0], dy, target, node->name));
        if (acc) cd_add_inplace(dx, target, n);
        return CD_OK;
    }
    if (f == CD_ACTIVATION_SOFTMAX) {
        const int c = node->shape.c;
        const size_t rows = n / (size_t)c;
        const float *y = io->out;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t r = 0; r < rows; r++) {
            const float *yr = y + r * (size_t)c, *dr = dy + r * (size_t)c;
            float *xr = dx + r * (size_t)c, dot = 0.f;
            for (int k = 0; k < c; k++) dot += dr[k] * yr[k];
            for (int k = 0; k < c; k++) {
                const float g = yr[k] * (dr[k] - dot);
                xr[k] = acc ? xr[k] + g : g;
            }
        }
        return CD_OK;
    }
    const float *x = io->in[0];
#define BACKWARD_LOOP(F)                                                      \
    case F: {                                                                 \
        _Pragma("omp parallel for schedule(static) if (n > 65536)")          \
        for (size_t i = 0; i < n; i++) {                                      \
            const float g = dy[i] * slope(F, x[i]);                           \
            dx[i] = acc ? dx[i] + g : g;                                      \
        }                                                                     \
        return CD_OK;                                                         \
    }
    switch (f) {
        BACKWARD_LOOP(CD_ACTIVATION_RELU)
        BACKWARD_LOOP(CD_ACTIVATION_RELU6)
        BACKWARD_LOOP(CD_ACTIVATION_HARD_SIGMOID)
        BACKWARD_LOOP(CD_ACTIVATION_HARD_SILU)
    default: break;
    }
#undef BACKWARD_LOOP
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        const float g = dy[i] * slope(f, x[i]);
        dx[i] = acc ? dx[i] + g : g;
    }
    return CD_OK;
}

/* Each function but softmax as oneDNN eltwise post-ops (the same definitions as above:
 * hard_sigmoid = clip(x / 6 + 1/2, 0, 1), hard_silu = x times it, selu = scale * elu(alpha)). */
static int activation_post_op(const cd_node *node, cd_post_op *op) {
    const int f = ((const activation_hp *)node->hp)->function;
    op->kind = CD_POST_ACT, op->count = 1, op->grad_from_output = 0;
    cd_eltwise *e = op->eltwise;
    switch (f) {
    case CD_ACTIVATION_LINEAR: op->count = 0; break;
    case CD_ACTIVATION_RELU: e[0] = (cd_eltwise){CD_ELTWISE_RELU, 0.f, 0.f}; op->grad_from_output = 1; break;
    case CD_ACTIVATION_RELU6: e[0] = (cd_eltwise){CD_ELTWISE_CLIP, 0.f, 6.f}; op->grad_from_output = 1; break;
    case CD_ACTIVATION_SIGMOID: e[0] = (cd_eltwise){CD_ELTWISE_LOGISTIC, 0.f, 0.f}; op->grad_from_output = 1; break;
    case CD_ACTIVATION_TANH: e[0] = (cd_eltwise){CD_ELTWISE_TANH, 0.f, 0.f}; op->grad_from_output = 1; break;
    case CD_ACTIVATION_SILU: e[0] = (cd_eltwise){CD_ELTWISE_SWISH, 1.f, 0.f}; break;
    case CD_ACTIVATION_HARD_SIGMOID: e[0] = (cd_eltwise){CD_ELTWISE_HARDSIGMOID, 1.f / 6.f, 0.5f}; break;
    case CD_ACTIVATION_HARD_SILU: e[0] = (cd_eltwise){CD_ELTWISE_HARDSWISH, 1.f / 6.f, 0.5f}; break;
    case CD_ACTIVATION_GELU: e[0] = (cd_eltwise){CD_ELTWISE_GELU_ERF, 0.f, 0.f}; break;
    case CD_ACTIVATION_ELU: e[0] = (cd_eltwise){CD_ELTWISE_ELU, 1.f, 0.f}; op->grad_from_output = 1; break;
    case CD_ACTIVATION_SELU:
        op->count = 2;
        e[0] = (cd_eltwise){CD_ELTWISE_ELU, selu_alpha, 0.f};
        e[1] = (cd_eltwise){CD_ELTWISE_LINEAR, selu_scale, 0.f};
        break;
    case CD_ACTIVATION_SOFTPLUS: e[0] = (cd_eltwise){CD_ELTWISE_SOFT_RELU, 1.f, 0.f}; break;
    default: return 0; /* softmax: over channels, not elementwise */
    }
    return 1;
}

const cd_layer_ops cd_activation_ops = {
    .name = "Activation", .flags = 0, .node_flags = activation_flags, .min_inputs = 1,
    .max_inputs = 1, .hp_size = sizeof(activation_hp), .build = activation_build,
    .prepare = activation_prepare, .forward = activation_forward,
    .backward = activation_backward, .release = activation_release,
    .post_op = activation_post_op,
};
