/* concatenate.c — Concatenate(axis): any number of inputs joined along one per-sample axis
 * (Keras's Concatenate, keras/src/layers/merging/concatenate.py: equal shapes except along
 * the axis). Hyperparameter "axis": 0 (height), 1 (width) or 2 (channels) of the per-sample
 * NHWC shape (h, w, c); vectors (c) take 2. The Python side maps Keras's axis (1, 2, 3, -1,
 * ...) to it.
 *
 * A sample of input j, seen as (outer, a_j, inner) around the axis (outer = product of the
 * dims before it, inner = after it), is copied to rows [off_j, off_j + a_j) of the output's
 * (outer, sum a_j, inner); the backward copies (or adds) the same slices back. */
#include <string.h>

#include "core/error.h"
#include "nn/layer.h"

typedef struct {
    int axis;
} concat_hp;

/* The per-sample dims (h, w, c) of a shape. */
static void dims_of(const cd_shape *s, int d[3]) { d[0] = s->h, d[1] = s->w, d[2] = s->c; }

static cd_status concat_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    concat_hp *hp = node->hp;
    CD_TRY(cd_hp_ints(h, "axis", 1, NULL, &hp->axis));
    if (hp->axis < 0 || hp->axis > 2)
        return cd_fail(CD_ERR_VALUE, "layer '%s': axis must be 0 (height), 1 (width) or 2 "
                       "(channels) of the sample, got %d", node->name, hp->axis);
    int out[3];
    dims_of(&in[0], out);
    for (int j = 0; j < node->num_inputs; j++) {
        int d[3];
        dims_of(&in[j], d);
        if (in[j].rank != in[0].rank)
            return cd_fail(CD_ERR_VALUE, "layer '%s': a `Concatenate` layer requires inputs with "
                           "matching shapes except for the concatenation axis (input %d has rank "
                           "%d, input 0 rank %d)", node->name, j, in[j].rank + 1, in[0].rank + 1);
        if (in[j].rank == 1 && hp->axis != 2)
            return cd_fail(CD_ERR_VALUE, "layer '%s': vectors concatenate along their last axis",
                           node->name);
        for (int k = 0; k < 3; k++)
            if (k != hp->axis && d[k] != out[k])
                return cd_fail(CD_ERR_VALUE, "layer '%s': a `Concatenate` layer requires inputs "
                               "with matching shapes except for the concatenation axis: input "
                               "%d is (%d, %d, %d), input 0 (%d, %d, %d)", node->name, j, d[0],
                               d[1], d[2], in[0].h, in[0].w, in[0].c);
        if (j) out[hp->axis] += d[hp->axis];
    }
    node->shape = (cd_shape){in[0].rank, out[0], out[1], out[2]};
    return CD_OK;
}

/* outer and inner extents around the axis of a per-sample shape (h, w, c) */
static void around(const cd_shape *s, int axis, size_t *outer, size_t *inner) {
    int d[3];
    dims_of(s, d);
    *outer = 1, *inner = 1;
    for (int k = 0; k < axis; k++) *outer *= (size_t)d[k];
    for (int k = axis + 1; k < 3; k++) *inner *= (size_t)d[k];
}

/* Copy input j's slices to or from the output: forward (to_out) writes y; backward writes or
 * adds dx (acc). */
static void move_slices(const cd_node *node, const cd_io *io, int j, size_t off, int to_out,
                        float *x, float *y, int acc) {
    const int axis = ((const concat_hp *)node->hp)->axis;
    size_t outer, inner;
    around(&io->in_shape[j], axis, &outer, &inner);
    int d[3], od[3];
    dims_of(&io->in_shape[j], d);
    dims_of(&node->shape, od);
    const size_t rows = (size_t)io->n * outer;
    const size_t chunk = (size_t)d[axis] * inner, out_chunk = (size_t)od[axis] * inner;
#pragma omp parallel for schedule(static) if (rows * chunk > 65536)
    for (size_t r = 0; r < rows; r++) {
        float *xs = x + r * chunk, *ys = y + r * out_chunk + off * inner;
        if (to_out) {
            memcpy(ys, xs, chunk * sizeof(float));
        } else if (acc) {
            for (size_t k = 0; k < chunk; k++) xs[k] += ys[k];
        } else {
            memcpy(xs, ys, chunk * sizeof(float));
        }
    }
}

static size_t axis_extent(const cd_shape *s, int axis) {
    int d[3];
    dims_of(s, d);
    return (size_t)d[axis];
}

static cd_status concat_forward(cd_node *node, const cd_io *io) {
    const int axis = ((const concat_hp *)node->hp)->axis;
    size_t off = 0;
    for (int j = 0; j < io->num_inputs; j++) {
        move_slices(node, io, j, off, 1, (float *)io->in[j], io->out, 0);
        off += axis_extent(&io->in_shape[j], axis);
    }
    return CD_OK;
}

static cd_status concat_backward(cd_node *node, const cd_io *io) {
    const int axis = ((const concat_hp *)node->hp)->axis;
    size_t off = 0;
    for (int j = 0; j < io->num_inputs; j++) {
        if (io->dx[j]) move_slices(node, io, j, off, 0, io->dx[j], io->dout, io->acc[j]);
        off += axis_extent(&io->in_shape[j], axis);
    }
    return CD_OK;
}

const cd_layer_ops cd_concatenate_ops = {
    .name = "Concatenate", .flags = 0, .min_inputs = 1, .max_inputs = CD_INPUTS_ANY,
    .hp_size = sizeof(concat_hp), .build = concat_build, .forward = concat_forward,
    .backward = concat_backward,
};
