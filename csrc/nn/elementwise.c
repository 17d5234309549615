/* elementwise.c — layers that act element by element on (n, h, w, c) or (n, c):
 * InputLayer (identity; the graph copies the batch in), ReLU(max_value), Rescaling,
 * Add, Dropout. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "model/graph_internal.h"

static size_t count_of(const cd_graph *g, const cd_node *node) {
    return (size_t)g->batch * cd_node_sample_size(node);
}

/* dx (+)= dy * factor */
static void write_scaled(float *dx, const float *dy, float factor, size_t n, int accumulate) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dx[i] = accumulate ? dx[i] + dy[i] * factor : dy[i] * factor;
}

/* ---- InputLayer ---- */
static cd_status input_forward(cd_graph *g, cd_node *node, int training) {
    (void)g, (void)node, (void)training;
    return CD_OK;
}
static cd_status input_backward(cd_graph *g, cd_node *node, float *dx[2], const int acc[2]) {
    (void)g, (void)node, (void)dx, (void)acc;
    return CD_OK;
}
const cd_layer_ops cd_input_ops = {NULL, input_forward, input_backward, NULL};

/* ---- ReLU(max_value): y = min(max(x, 0), max_value); dy passes where 0 < x < max_value
 * (strict on both sides, as tf.nn.relu6's gradient). max_value <= 0 means no upper bound.
 * Backward reads the output (0 < y < max exactly when 0 < x < max), so the input (a BN
 * output) need not be kept for it. */
static cd_status relu_forward(cd_graph *g, cd_node *node, int training) {
    (void)training;
    const float *x = cd_input_node(g, node, 0)->out;
    float *y = node->out;
    const size_t n = count_of(g, node);
    const float hi = node->max_value > 0.f ? node->max_value : INFINITY;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float v = x[i] > 0.f ? x[i] : 0.f;
        y[i] = v < hi ? v : hi;
    }
    return CD_OK;
}
/* dx (+)= dy * (0 < y < hi) on one chunk; dx may be dy (in place). A multiply by the mask
 * (as TF's Relu6Grad: a NaN gradient stays NaN) lets the compiler vectorise it branch-free. */
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

static cd_status relu_backward(cd_graph *g, cd_node *node, float *dx[2], const int acc[2]) {
    /* reads the output: see above */
    if (dx[0]) cd_relu_grad(dx[0], node->out, node->dout, count_of(g, node), node->max_value, acc[0]);
    return CD_OK;
}
const cd_layer_ops cd_relu_ops = {NULL, relu_forward, relu_backward, NULL};

/* ---- Rescaling: y = x * scale + offset (preprocess_input is scale 1/127.5, offset -1) ---- */
static cd_status rescale_forward(cd_graph *g, cd_node *node, int training) {
    (void)training;
    const float *x = cd_input_node(g, node, 0)->out;
    float *y = node->out;
    const size_t n = count_of(g, node);
    const float s = node->scale, o = node->offset;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * s + o;
    return CD_OK;
}
static cd_status rescale_backward(cd_graph *g, cd_node *node, float *dx[2], const int acc[2]) {
    if (dx[0]) write_scaled(dx[0], node->dout, node->scale, count_of(g, node), acc[0]);
    return CD_OK;
}
const cd_layer_ops cd_rescale_ops = {NULL, rescale_forward, rescale_backward, NULL};

/* ---- Add: y = a + b; the gradient goes unchanged to both inputs ---- */
static cd_status add_forward(cd_graph *g, cd_node *node, int training) {
    (void)training;
    const float *a = cd_input_node(g, node, 0)->out, *b = cd_input_node(g, node, 1)->out;
    float *y = node->out;
    const size_t n = count_of(g, node);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    return CD_OK;
}
static cd_status add_backward(cd_graph *g, cd_node *node, float *dx[2], const int acc[2]) {
    for (int j = 0; j < 2; j++)
        if (dx[j]) write_scaled(dx[j], node->dout, 1.f, count_of(g, node), acc[j]);
    return CD_OK;
}
const cd_layer_ops cd_add_ops = {NULL, add_forward, add_backward, NULL};

/* ---- Dropout(rate): in training y = x * keep / (1 - rate), keep = u >= rate with u uniform
 * from the counter RNG keyed by (seed, step, layer) and the element's index in the batch
 * (a micro-batch starts at g->sample_offset), so backward regenerates the same mask and any
 * thread count or micro-batching gives the same one. ---- */
static uint64_t dropout_key(const cd_graph *g, const cd_node *node) {
    return cd_rng_key(g->seed, (uint64_t)g->step, (uint64_t)(node - g->nodes), 0xd209ULL);
}
static cd_status dropout_forward(cd_graph *g, cd_node *node, int training) {
    const float *x = cd_input_node(g, node, 0)->out;
    float *y = node->out;
    const size_t n = count_of(g, node);
    if (!training || node->rate == 0.f) {
        memcpy(y, x, n * sizeof(float));
        return CD_OK;
    }
    const uint64_t key = dropout_key(g, node);
    const size_t first = (size_t)g->sample_offset * cd_node_sample_size(node);
    const float rate = node->rate, scale = 1.0f / (1.0f - node->rate);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        y[i] = cd_rng_uniform(key, first + i) >= rate ? x[i] * scale : 0.f;
    return CD_OK;
}
static cd_status dropout_backward(cd_graph *g, cd_node *node, float *dx[2], const int acc[2]) {
    if (!dx[0]) return CD_OK;
    const size_t n = count_of(g, node);
    const float *dy = node->dout;
    float *out = dx[0];
    const int a = acc[0];
    if (!node->last_training || node->rate == 0.f) {
        write_scaled(out, dy, 1.f, n, a);
        return CD_OK;
    }
    const uint64_t key = dropout_key(g, node);
    const size_t first = (size_t)g->sample_offset * cd_node_sample_size(node);
    const float rate = node->rate, scale = 1.0f / (1.0f - node->rate);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float v = cd_rng_uniform(key, first + i) >= rate ? dy[i] * scale : 0.f;
        out[i] = a ? out[i] + v : v;
    }
    return CD_OK;
}
const cd_layer_ops cd_dropout_ops = {NULL, dropout_forward, dropout_backward, NULL};
