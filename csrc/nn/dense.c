/* dense.c — Dense(units): x (n, in) @ kernel (in, units) + bias (units), then an optional
 * softmax or sigmoid. Backward: dz from the activation, dkernel = x^T dz, dbias = sum dz,
 * dx = dz kernel^T. Batch sums run in a fixed order (deterministic).
 * With io->logits the activation is skipped (train.c: a crossentropy on a sigmoid/softmax
 * head is computed on its logits, as Keras does); then out and dout are the logits and
 * their gradient. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "nn/layer.h"

enum { KERNEL, BIAS };

/* y (units) in place: softmax (max-shifted, double sum) or sigmoid. */
void cd_activate(cd_activation act, float *y, int units) {
    if (act == CD_ACT_SOFTMAX) {
        float m = y[0];
        for (int u = 1; u < units; u++) m = y[u] > m ? y[u] : m;
        double sum = 0;
        for (int u = 0; u < units; u++) sum += (y[u] = expf(y[u] - m));
        for (int u = 0; u < units; u++) y[u] = (float)(y[u] / sum);
    } else if (act == CD_ACT_SIGMOID) {
        for (int u = 0; u < units; u++) y[u] = 1.0f / (1.0f + expf(-y[u]));
    }
}

typedef struct {
    int use_bias;
    cd_activation activation;
} dense_hp;

/* hyperparameters: units, use_bias, activation (cd_activation); weights kernel (in, units),
 * bias (units) */
static cd_status dense_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    dense_hp *hp = node->hp;
    int units, bias, act;
    const int yes = 1, none = CD_ACT_NONE;
    CD_TRY(cd_hp_ints(h, "units", 1, NULL, &units));
    CD_TRY(cd_hp_ints(h, "use_bias", 1, &yes, &bias));
    CD_TRY(cd_hp_ints(h, "activation", 1, &none, &act));
    if (in[0].rank != 1)
        return cd_fail(CD_ERR_VALUE, "layer '%s': Dense needs a 2-D (N, C) input; add "
                       "GlobalAveragePooling2D before it", node->name);
    if (units < 1 || units > 1 << 20)
        return cd_fail(CD_ERR_VALUE, "layer '%s': bad units %d", node->name, units);
    if (act != CD_ACT_NONE && act != CD_ACT_SOFTMAX && act != CD_ACT_SIGMOID)
        return cd_fail(CD_ERR_VALUE, "layer '%s': unknown activation %d", node->name, act);
    hp->use_bias = bias != 0;
    hp->activation = (cd_activation)act;
    node->shape = (cd_shape){1, 1, 1, units};
    const int kdims[2] = {in[0].c, units};
    CD_TRY(cd_declare_param(node, "kernel", 2, kdims, 1, 0.f));
    if (hp->use_bias) {
        const int bdims[1] = {units};
        CD_TRY(cd_declare_param(node, "bias", 1, bdims, 1, 0.f));
    }
    return CD_OK;
}

static cd_status dense_forward(cd_node *node, const cd_io *io) {
    const dense_hp *hp = node->hp;
    const int in = io->in_shape[0].c, units = node->shape.c, n = io->n;
    const float *w = node->params[KERNEL].value;
    const float *bias = hp->use_bias ? node->params[BIAS].value : NULL;
    const cd_activation act = io->logits ? CD_ACT_NONE : hp->activation;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n; b++) {
        const float *x = io->in[0] + (size_t)b * in;
        float *y = io->out + (size_t)b * units;
        for (int u = 0; u < units; u++) y[u] = bias ? bias[u] : 0.f;
        for (int i = 0; i < in; i++) {
            const float xi = x[i];
            const float *wr = w + (size_t)i * units;
            for (int u = 0; u < units; u++) y[u] += xi * wr[u];
        }
        cd_activate(act, y, units);
    }
    return CD_OK;
}

static cd_status dense_backward(cd_node *node, const cd_io *io) {
    const dense_hp *hp = node->hp;
    const int in = io->in_shape[0].c, units = node->shape.c, n = io->n;
    const float *x = io->in[0];
    /* dz: gradient before the activation, (n, units) */
    float *dz = io->scratch;
    const cd_activation act = io->logits ? CD_ACT_NONE : hp->activation;
    for (int b = 0; b < n; b++) {
        const float *y = io->out + (size_t)b * units, *dy = io->dout + (size_t)b * units;
        float *d = dz + (size_t)b * units;
        if (act == CD_ACT_SOFTMAX) {
            double dot = 0;
            for (int u = 0; u < units; u++) dot += (double)dy[u] * y[u];
            for (int u = 0; u < units; u++) d[u] = y[u] * (dy[u] - (float)dot);
        } else if (act == CD_ACT_SIGMOID) {
            for (int u = 0; u < units; u++) d[u] = dy[u] * y[u] * (1.0f - y[u]);
        } else {
            memcpy(d, dy, (size_t)units * sizeof(float));
        }
    }
    if (io->weight_grads) {
        float *dw = node->params[KERNEL].grad;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < in; i++) {
            float *row = dw + (size_t)i * units;
            for (int u = 0; u < units; u++) row[u] = 0.f;
            for (int b = 0; b < n; b++) {
                const float xi = x[(size_t)b * in + i];
                const float *d = dz + (size_t)b * units;
                for (int u = 0; u < units; u++) row[u] += xi * d[u];
            }
        }
        if (hp->use_bias) {
            float *db = node->params[BIAS].grad;
            for (int u = 0; u < units; u++) {
                float s = 0.f;
                for (int b = 0; b < n; b++) s += dz[(size_t)b * units + u];
                db[u] = s;
            }
        }
    }
    if (io->dx[0]) {
        const float *w = node->params[KERNEL].value;
        const int a = io->acc[0];
#pragma omp parallel for schedule(static)
        for (int b = 0; b < n; b++) {
            const float *d = dz + (size_t)b * units;
            float *o = io->dx[0] + (size_t)b * in;
            for (int i = 0; i < in; i++) {
                const float *wr = w + (size_t)i * units;
                float s = 0.f;
                for (int u = 0; u < units; u++) s += wr[u] * d[u];
                o[i] = a ? o[i] + s : s;
            }
        }
    }
    return CD_OK;
}

/* through softmax/sigmoid the backward reads the layer's own output */
static cd_activation dense_activation(const cd_node *node) {
    return ((const dense_hp *)node->hp)->activation;
}

static unsigned dense_flags(const cd_node *node) {
    const dense_hp *hp = node->hp;
    return CD_OP_READS_INPUT | (hp->activation != CD_ACT_NONE ? CD_OP_READS_OUTPUT : 0);
}

const cd_layer_ops cd_dense_ops = {
    .name = "Dense", .flags = CD_OP_READS_INPUT, .node_flags = dense_flags, .min_inputs = 1,
    .max_inputs = 1, .hp_size = sizeof(dense_hp), .build = dense_build,
    .forward = dense_forward, .backward = dense_backward, .out_activation = dense_activation,
};
