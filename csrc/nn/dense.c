/* dense.c — Dense(units): x (n, in) @ kernel (in, units) + bias (units), then an optional
 * softmax or sigmoid. Backward: dz from the activation, dkernel = x^T dz, dbias = sum dz,
 * dx = dz kernel^T. Batch sums run in a fixed order (deterministic).
 * The graph's last Dense skips its activation while g->head_logits is set (train.c: a
 * crossentropy on a sigmoid/softmax head is computed on its logits, as Keras does); then
 * its output and dout are the logits and their gradient. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/graph_internal.h"

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

static cd_activation activation(const cd_graph *g, const cd_node *node) {
    return g->head_logits && node == &g->nodes[g->num_nodes - 1] ? CD_ACT_NONE : node->activation;
}

static cd_status dense_forward(cd_graph *g, cd_node *node, int training) {
    (void)training;
    const cd_node *src = cd_input_node(g, node, 0);
    const int in = src->c, units = node->c, n = g->batch;
    const float *w = node->params[KERNEL].value;
    const float *bias = node->use_bias ? node->params[BIAS].value : NULL;
    const cd_activation act = activation(g, node);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n; b++) {
        const float *x = src->out + (size_t)b * in;
        float *y = node->out + (size_t)b * units;
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

static cd_status dense_backward(cd_graph *g, cd_node *node, float *dx[2], const int acc[2]) {
    const cd_node *src = cd_input_node(g, node, 0);
    const int in = src->c, units = node->c, n = g->batch;
    /* dz: gradient before the activation, (n, units) */
    float *dz = g->scratch;
    const cd_activation act = activation(g, node);
    for (int b = 0; b < n; b++) {
        const float *y = node->out + (size_t)b * units, *dy = node->dout + (size_t)b * units;
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
    if (cd_node_trains(node)) {
        float *dw = node->params[KERNEL].grad;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < in; i++) {
            float *row = dw + (size_t)i * units;
            for (int u = 0; u < units; u++) row[u] = 0.f;
            for (int b = 0; b < n; b++) {
                const float xi = src->out[(size_t)b * in + i];
                const float *d = dz + (size_t)b * units;
                for (int u = 0; u < units; u++) row[u] += xi * d[u];
            }
        }
        if (node->use_bias) {
            float *db = node->params[BIAS].grad;
            for (int u = 0; u < units; u++) {
                float s = 0.f;
                for (int b = 0; b < n; b++) s += dz[(size_t)b * units + u];
                db[u] = s;
            }
        }
    }
    if (dx[0]) {
        const float *w = node->params[KERNEL].value;
        const int a = acc[0];
#pragma omp parallel for schedule(static)
        for (int b = 0; b < n; b++) {
            const float *d = dz + (size_t)b * units;
            float *o = dx[0] + (size_t)b * in;
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

const cd_layer_ops cd_dense_ops = {NULL, dense_forward, dense_backward, NULL};
