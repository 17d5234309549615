/* normalization.c — Keras's Normalization preprocessing layer over the last axis (channels)
 * of (n, h, w, c) or (n, c), as keras/src/layers/preprocessing/normalization.py computes it:
 *   y = (x - mean) / max(sqrt(variance), eps)      (invert 0)
 *   y = mean + x * max(sqrt(variance), eps)        (invert 1)
 * with eps = keras.backend.epsilon() = 1e-7 (a float32 after TF's cast), per channel.
 * Weights (all non-trainable, Keras's order): mean (c), variance (c), count () (Keras keeps it
 * for old saved models; never read). Backward: dx = dy / denom (or dy * denom).
 * Hyperparameters "invert" and "scalar" (0 or 1): scalar is Keras's axis=None, one mean and
 * variance for every element (weights of shape ()). Per sample and cheap: it may join the
 * frozen prefix. */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "nn/layer.h"

enum { MEAN, VARIANCE, COUNT };
static const float keras_epsilon = 1e-7f;

typedef struct {
    int invert, scalar;
} normalization_hp;

static cd_status normalization_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    normalization_hp *hp = node->hp;
    const int no = 0;
    CD_TRY(cd_hp_ints(h, "invert", 1, &no, &hp->invert));
    CD_TRY(cd_hp_ints(h, "scalar", 1, &no, &hp->scalar));
    if ((hp->invert != 0 && hp->invert != 1) || (hp->scalar != 0 && hp->scalar != 1))
        return cd_fail(CD_ERR_VALUE, "layer '%s': invert and scalar are 0 or 1", node->name);
    node->shape = in[0];
    const int dims[1] = {node->shape.c}, rank = hp->scalar ? 0 : 1;
    CD_TRY(cd_declare_param(node, "mean", rank, dims, 0, 0.f));
    CD_TRY(cd_declare_param(node, "variance", rank, dims, 0, 1.f));
    CD_TRY(cd_declare_param(node, "count", 0, dims, 0, 0.f)); /* a scalar, as Keras's */
    return CD_OK;
}

/* Per channel: mean[k] and denom[k] = max(sqrt(variance[k]), eps) (a scalar layer's one
 * value in every channel); a negative variance (which Keras turns into NaN outputs) is
 * refused naming the layer. */
static cd_status denominators(const cd_node *node, float *mean, float *denom) {
    const float *m = node->params[MEAN].value, *var = node->params[VARIANCE].value;
    const int scalar = ((const normalization_hp *)node->hp)->scalar;
    for (int k = 0; k < node->shape.c; k++) {
        const int j = scalar ? 0 : k;
        if (!(var[j] >= 0.f))
            return cd_fail(CD_ERR_VALUE, "layer '%s': variance[%d] = %g is negative", node->name, j,
                           (double)var[j]);
        mean[k] = m[j];
        denom[k] = fmaxf(sqrtf(var[j]), keras_epsilon);
    }
    return CD_OK;
}

static cd_status normalization_forward(cd_node *node, const cd_io *io) {
    const int c = node->shape.c, invert = ((const normalization_hp *)node->hp)->invert;
    float *mean = malloc(2 * (size_t)c * sizeof(float)), *denom = mean + c;
    if (!mean) return cd_fail(CD_ERR_MEMORY, "out of memory in '%s'", node->name);
    cd_status s = denominators(node, mean, denom);
    if (s != CD_OK) {
        free(mean);
        return s;
    }
    const float *x = io->in[0];
    float *y = io->out;
    const size_t rows = (size_t)io->n * node->shape.h * node->shape.w;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > 65536)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)c;
        float *yr = y + r * (size_t)c;
        if (invert)
            for (int k = 0; k < c; k++) yr[k] = mean[k] + xr[k] * denom[k];
        else
            for (int k = 0; k < c; k++) yr[k] = (xr[k] - mean[k]) / denom[k];
    }
    free(mean);
    return CD_OK;
}

static cd_status normalization_backward(cd_node *node, const cd_io *io) {
    float *dx = io->dx[0];
    if (!dx) return CD_OK;
    const int c = node->shape.c, invert = ((const normalization_hp *)node->hp)->invert;
    const int acc = io->acc[0];
    float *mean = malloc(2 * (size_t)c * sizeof(float)), *denom = mean + c;
    if (!mean) return cd_fail(CD_ERR_MEMORY, "out of memory in '%s'", node->name);
    cd_status s = denominators(node, mean, denom);
    if (s != CD_OK) {
        free(mean);
        return s;
    }
    const float *dy = io->dout;
    const size_t rows = (size_t)io->n * node->shape.h * node->shape.w;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > 65536)
    for (size_t r = 0; r < rows; r++) {
        const float *dr = dy + r * (size_t)c;
        float *xr = dx + r * (size_t)c;
        for (int k = 0; k < c; k++) {
            const float g = invert ? dr[k] * denom[k] : dr[k] / denom[k];
            xr[k] = acc ? xr[k] + g : g;
        }
    }
    free(mean);
    return CD_OK;
}

const cd_layer_ops cd_normalization_ops = {
    .name = "Normalization", .flags = 0, .min_inputs = 1, .max_inputs = 1,
    .hp_size = sizeof(normalization_hp), .build = normalization_build,
    .forward = normalization_forward, .backward = normalization_backward,
};
