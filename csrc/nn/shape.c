/* shape.c — layers that move data without arithmetic on it:
 * ZeroPadding2D (n, h, w, c) -> (n, h + top + bottom, w + left + right, c),
 * GlobalAveragePooling2D (n, h, w, c) -> (n, c) or (n, 1, 1, c) (mean over h, w) and
 * GlobalMaxPooling2D likewise (max over h, w), Reshape to (h, w, c) or (c,) and
 * Flatten (n, h, w, c) -> (n, h * w * c) (Keras's order is NHWC memory order: a copy). */
#include <string.h>

#include "core/error.h"
#include "nn/conv_fused.h"

/* ---- ZeroPadding2D: pad = (top, bottom, left, right) ---- */
static cd_status zeropad_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    cd_pad_hp *hp = node->hp;
    CD_TRY(cd_hp_ints(h, "pad", 4, NULL, hp->pad));
    if (in[0].rank != 3)
        return cd_fail(CD_ERR_VALUE, "layer '%s' needs a 4-D (N, H, W, C) input", node->name);
    for (int i = 0; i < 4; i++)
        if (hp->pad[i] < 0 || hp->pad[i] > 4096)
            return cd_fail(CD_ERR_VALUE, "layer '%s': bad padding %d", node->name, hp->pad[i]);
    node->shape = in[0];
    node->shape.h += hp->pad[0] + hp->pad[1];
    node->shape.w += hp->pad[2] + hp->pad[3];
    return CD_OK;
}

static cd_status zeropad_forward(cd_node *node, const cd_io *io) {
    const cd_pad_hp *hp = node->hp;
    const cd_shape *src = &io->in_shape[0], *dst = &node->shape;
    const int c = dst->c, top = hp->pad[0], left = hp->pad[2];
    const size_t row_in = (size_t)src->w * c, row_out = (size_t)dst->w * c;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < io->n; b++) {
        float *y = io->out + (size_t)b * dst->h * row_out;
        const float *x = io->in[0] + (size_t)b * src->h * row_in;
        memset(y, 0, (size_t)dst->h * row_out * sizeof(float));
        for (int i = 0; i < src->h; i++)
            memcpy(y + (size_t)(i + top) * row_out + (size_t)left * c, x + (size_t)i * row_in,
                   row_in * sizeof(float));
    }
    return CD_OK;
}

static cd_status zeropad_backward(cd_node *node, const cd_io *io) {
    if (!io->dx[0]) return CD_OK;
    const cd_pad_hp *hp = node->hp;
    const cd_shape *src = &io->in_shape[0], *dst = &node->shape;
    const int c = dst->c, top = hp->pad[0], left = hp->pad[2];
    const size_t row_in = (size_t)src->w * c, row_out = (size_t)dst->w * c;
    const int a = io->acc[0];
#pragma omp parallel for schedule(static)
    for (int b = 0; b < io->n; b++) {
        const float *dy = io->dout + (size_t)b * dst->h * row_out;
        float *out = io->dx[0] + (size_t)b * src->h * row_in;
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
const cd_layer_ops cd_zeropad_ops = {
    .name = "ZeroPadding2D", .flags = CD_OP_FUSE_PAD, .min_inputs = 1, .max_inputs = 1,
    .hp_size = sizeof(cd_pad_hp), .build = zeropad_build, .forward = zeropad_forward,
    .backward = zeropad_backward,
};

/* ---- GlobalAveragePooling2D(keepdims): (n, c), or (n, 1, 1, c) with keepdims (the same
 * memory: only the rank differs) ---- */
static cd_status gap_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    if (in[0].rank != 3)
        return cd_fail(CD_ERR_VALUE, "layer '%s' needs a 4-D (N, H, W, C) input", node->name);
    const int no = 0;
    int keepdims;
    CD_TRY(cd_hp_ints(h, "keepdims", 1, &no, &keepdims));
    node->shape = (cd_shape){keepdims ? 3 : 1, 1, 1, in[0].c};
    return CD_OK;
}

/* Each channel's sum runs over the positions in order, in double, whatever the split: tasks
 * are (sample, block of GAP_BLOCK channels), so a single image keeps both threads busy. */
#define GAP_BLOCK 64
static cd_status gap_forward(cd_node *node, const cd_io *io) {
    const cd_shape *src = &io->in_shape[0];
    const int c = node->shape.c, blocks = (c + GAP_BLOCK - 1) / GAP_BLOCK;
    const size_t hw = (size_t)src->h * src->w;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)io->n * hw * c > 16384)
    for (int b = 0; b < io->n; b++)
        for (int q = 0; q < blocks; q++) {
            const int k0 = q * GAP_BLOCK, m = c - k0 < GAP_BLOCK ? c - k0 : GAP_BLOCK;
            const float *x = io->in[0] + (size_t)b * hw * c + k0;
            float *y = io->out + (size_t)b * c + k0;
            double acc[GAP_BLOCK];
            for (int k = 0; k < m; k++) acc[k] = 0;
            for (size_t p = 0; p < hw; p++)
                for (int k = 0; k < m; k++) acc[k] += x[p * c + k];
            for (int k = 0; k < m; k++) y[k] = (float)(acc[k] / (double)hw);
        }
    return CD_OK;
}

static cd_status gap_backward(cd_node *node, const cd_io *io) {
    if (!io->dx[0]) return CD_OK;
    const cd_shape *src = &io->in_shape[0];
    const int c = node->shape.c;
    const size_t hw = (size_t)src->h * src->w;
    const float inv = 1.0f / (float)hw;
    const int a = io->acc[0];
#pragma omp parallel for schedule(static)
    for (int b = 0; b < io->n; b++) {
        const float *dy = io->dout + (size_t)b * c;
        float *out = io->dx[0] + (size_t)b * hw * c;
        for (size_t p = 0; p < hw; p++)
            for (int k = 0; k < c; k++)
                out[p * c + k] = a ? out[p * c + k] + dy[k] * inv : dy[k] * inv;
    }
    return CD_OK;
}
const cd_layer_ops cd_gap_ops = {
    .name = "GlobalAveragePooling2D", .flags = 0, .min_inputs = 1, .max_inputs = 1,
    .build = gap_build, .forward = gap_forward, .backward = gap_backward,
};

/* ---- GlobalMaxPooling2D(keepdims): the gradient is shared equally by the positions that
 * hold the maximum (TF's reduce_max gradient) ---- */
static cd_status gmp_forward(cd_node *node, const cd_io *io) {
    const cd_shape *src = &io->in_shape[0];
    const int c = node->shape.c;
    const size_t hw = (size_t)src->h * src->w;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < io->n; b++) {
        const float *x = io->in[0] + (size_t)b * hw * c;
        float *y = io->out + (size_t)b * c;
        for (int k = 0; k < c; k++) y[k] = x[k];
        for (size_t p = 1; p < hw; p++)
            for (int k = 0; k < c; k++) y[k] = x[p * c + k] > y[k] ? x[p * c + k] : y[k];
    }
    return CD_OK;
}

static cd_status gmp_backward(cd_node *node, const cd_io *io) {
    if (!io->dx[0]) return CD_OK;
    const cd_shape *src = &io->in_shape[0];
    const int c = node->shape.c, a = io->acc[0];
    const size_t hw = (size_t)src->h * src->w;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < io->n; b++) {
        const float *x = io->in[0] + (size_t)b * hw * c, *y = io->out + (size_t)b * c;
        const float *dy = io->dout + (size_t)b * c;
        float *out = io->dx[0] + (size_t)b * hw * c;
        int ties[c];
        for (int k = 0; k < c; k++) ties[k] = 0;
        for (size_t p = 0; p < hw; p++)
            for (int k = 0; k < c; k++) ties[k] += x[p * c + k] == y[k];
        for (size_t p = 0; p < hw; p++)
            for (int k = 0; k < c; k++) {
                const float g = x[p * c + k] == y[k] ? dy[k] / (float)ties[k] : 0.f;
                out[p * c + k] = a ? out[p * c + k] + g : g;
            }
    }
    return CD_OK;
}
const cd_layer_ops cd_gmp_ops = {
    .name = "GlobalMaxPooling2D", .flags = CD_OP_READS_INPUT | CD_OP_READS_OUTPUT,
    .min_inputs = 1, .max_inputs = 1, .build = gap_build, .forward = gmp_forward,
    .backward = gmp_backward,
};

/* ---- Reshape(shape): hyperparameter "shape" (h, w, c), rank 3, or (1, 1, c) with
 * "rank" 1; the values keep their order ---- */
static cd_status reshape_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    int s[3], rank;
    CD_TRY(cd_hp_ints(h, "shape", 3, NULL, s));
    CD_TRY(cd_hp_ints(h, "rank", 1, NULL, &rank));
    if ((rank != 1 && rank != 3) || s[0] < 1 || s[1] < 1 || s[2] < 1 ||
        (size_t)s[0] * (size_t)s[1] * (size_t)s[2] != cd_shape_size(&in[0]) ||
        (rank == 1 && (s[0] != 1 || s[1] != 1)))
        return cd_fail(CD_ERR_VALUE, "layer '%s': cannot reshape %zu values per sample to "
                       "(%d, %d, %d)", node->name, cd_shape_size(&in[0]), s[0], s[1], s[2]);
    node->shape = (cd_shape){rank, s[0], s[1], s[2]};
    return CD_OK;
}

/* ---- Flatten ---- */
static cd_status flatten_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    if (cd_shape_size(&in[0]) > 1u << 30)
        return cd_fail(CD_ERR_VALUE, "layer '%s': %zu values per sample is too many to flatten",
                       node->name, cd_shape_size(&in[0]));
    node->shape = (cd_shape){1, 1, 1, (int)cd_shape_size(&in[0])};
    return (void)h, CD_OK; /* no hyperparameters */
}

static cd_status flatten_forward(cd_node *node, const cd_io *io) {
    memcpy(io->out, io->in[0], (size_t)io->n * cd_node_sample_size(node) * sizeof(float));
    return CD_OK;
}

static cd_status flatten_backward(cd_node *node, const cd_io *io) {
    const size_t n = (size_t)io->n * cd_node_sample_size(node);
    if (!io->dx[0]) return CD_OK;
    if (io->acc[0])
        for (size_t i = 0; i < n; i++) io->dx[0][i] += io->dout[i];
    else
        memcpy(io->dx[0], io->dout, n * sizeof(float));
    return CD_OK;
}
const cd_layer_ops cd_flatten_ops = {
    .name = "Flatten", .flags = 0, .min_inputs = 1, .max_inputs = 1,
    .build = flatten_build, .forward = flatten_forward, .backward = flatten_backward,
};
/* Reshape moves no data either: Flatten's copies */
const cd_layer_ops cd_reshape_ops = {
    .name = "Reshape", .flags = 0, .min_inputs = 1, .max_inputs = 1,
    .build = reshape_build, .forward = flatten_forward, .backward = flatten_backward,
};
