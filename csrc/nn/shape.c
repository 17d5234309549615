/* shape.c — layers that move data without arithmetic on it:
 * ZeroPadding2D (n, h, w, c) -> (n, h + top + bottom, w + left + right, c) and
 * GlobalAveragePooling2D (n, h, w, c) -> (n, c) (mean over h, w). */
#include <string.h>

#include "core/error.h"
#include "model/graph_internal.h"

/* ---- ZeroPadding2D: pad = (top, bottom, left, right) ---- */
static cd_status zeropad_forward(cd_graph *g, cd_node *node, int training) {
    (void)training;
    const cd_node *src = cd_input_node(g, node, 0);
    const int c = node->c, top = node->pad[0], left = node->pad[2];
    const size_t row_in = (size_t)src->w * c, row_out = (size_t)node->w * c;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < g->batch; b++) {
        float *y = node->out + (size_t)b * node->h * row_out;
        const float *x = src->out + (size_t)b * src->h * row_in;
        memset(y, 0, (size_t)node->h * row_out * sizeof(float));
        for (int i = 0; i < src->h; i++)
            memcpy(y + (size_t)(i + top) * row_out + (size_t)left * c, x + (size_t)i * row_in,
                   row_in * sizeof(float));
    }
    return CD_OK;
}

static cd_status zeropad_backward(cd_graph *g, cd_node *node, float *dx[2], const int acc[2]) {
    if (!dx[0]) return CD_OK;
    const cd_node *src = cd_input_node(g, node, 0);
    const int c = node->c, top = node->pad[0], left = node->pad[2];
    const size_t row_in = (size_t)src->w * c, row_out = (size_t)node->w * c;
    const int a = acc[0];
#pragma omp parallel for schedule(static)
    for (int b = 0; b < g->batch; b++) {
        const float *dy = node->dout + (size_t)b * node->h * row_out;
        float *out = dx[0] + (size_t)b * src->h * row_in;
        for (int i = 0; i < src->h; i++) {
            const float *d = dy + (size_t)(i + top) * row_out + (size_t)left * c;
            float *o = out + (size_t)i * row_in;
            if (a)
                for (size_t k = 0; k < row_in; k++) o[k] += d[k];
            else
                memcpy(o, d, row_in * sizeof(float));
        }
    }
    return CD_OK;
}
const cd_layer_ops cd_zeropad_ops = {NULL, zeropad_forward, zeropad_backward, NULL};

/* ---- GlobalAveragePooling2D ---- */
static cd_status gap_forward(cd_graph *g, cd_node *node, int training) {
    (void)training;
    const cd_node *src = cd_input_node(g, node, 0);
    const int c = node->c;
    const size_t hw = (size_t)src->h * src->w;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < g->batch; b++) {
        const float *x = src->out + (size_t)b * hw * c;
        float *y = node->out + (size_t)b * c;
        double acc[c];
        for (int k = 0; k < c; k++) acc[k] = 0;
        for (size_t p = 0; p < hw; p++)
            for (int k = 0; k < c; k++) acc[k] += x[p * c + k];
        for (int k = 0; k < c; k++) y[k] = (float)(acc[k] / (double)hw);
    }
    return CD_OK;
}

static cd_status gap_backward(cd_graph *g, cd_node *node, float *dx[2], const int acc[2]) {
    if (!dx[0]) return CD_OK;
    const cd_node *src = cd_input_node(g, node, 0);
    const int c = node->c;
    const size_t hw = (size_t)src->h * src->w;
    const float inv = 1.0f / (float)hw;
    const int a = acc[0];
#pragma omp parallel for schedule(static)
    for (int b = 0; b < g->batch; b++) {
        const float *dy = node->dout + (size_t)b * c;
        float *out = dx[0] + (size_t)b * hw * c;
        for (size_t p = 0; p < hw; p++)
            for (int k = 0; k < c; k++)
                out[p * c + k] = a ? out[p * c + k] + dy[k] * inv : dy[k] * inv;
    }
    return CD_OK;
}
const cd_layer_ops cd_gap_ops = {NULL, gap_forward, gap_backward, NULL};
