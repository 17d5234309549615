/* channel_affine.c — a fixed per-channel map of (n, h, w, c) or (n, c), no weights:
 *   y[..., k] = x[..., source[k]] * scale[k] + offset[k]
 * with `source` a permutation of the c channels (c <= CD_CHANNEL_AFFINE_MAX). It runs what
 * Keras 3 records as operations on tensors (keras/src/ops/numpy.py): the "caffe"
 * preprocess_input of ResNet50 and VGG16, `ops.stack([x[..., i] for i in (2, 1, 0)], -1)`
 * (RGB -> BGR) then `x + mean_tensor` (a constant per channel, identity source); and Keras's
 * Rescaling with one scale per channel (EfficientNet's imagenet stem). The product and the
 * sum round separately in float32, as TF's mul then add (ISO C11: no contraction into an
 * FMA); x * 1 is exact, so a pure reordering or offset rounds once. Backward:
 * dx[..., source[k]] = dy[..., k] * scale[k] (a permutation: no two channels write the same
 * place). Per sample: it may join the frozen prefix. Hyperparameters: "channels" (c, which
 * must be the input's), "source" (c ints), "scale" (c floats, default 1), "offset" (c
 * floats). */
#include "core/error.h"
#include "nn/layer.h"

#define CD_CHANNEL_AFFINE_MAX 8

typedef struct {
    int c, source[CD_CHANNEL_AFFINE_MAX];
    float scale[CD_CHANNEL_AFFINE_MAX], offset[CD_CHANNEL_AFFINE_MAX];
} channel_affine_hp;

static cd_status channel_affine_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    channel_affine_hp *hp = node->hp;
    CD_TRY(cd_hp_ints(h, "channels", 1, NULL, &hp->c));
    if (hp->c != in[0].c || hp->c < 1 || hp->c > CD_CHANNEL_AFFINE_MAX)
        return cd_fail(CD_ERR_VALUE, "layer '%s': a per-channel map of %d channels on an input "
                       "of %d (at most %d)", node->name, hp->c, in[0].c, CD_CHANNEL_AFFINE_MAX);
    CD_TRY(cd_hp_ints(h, "source", hp->c, NULL, hp->source));
    const float ones[CD_CHANNEL_AFFINE_MAX] = {1, 1, 1, 1, 1, 1, 1, 1};
    CD_TRY(cd_hp_floats(h, "scale", hp->c, ones, hp->scale));
    CD_TRY(cd_hp_floats(h, "offset", hp->c, NULL, hp->offset));
    int seen[CD_CHANNEL_AFFINE_MAX] = {0};
    for (int k = 0; k < hp->c; k++) {
        const int s = hp->source[k];
        if (s < 0 || s >= hp->c || seen[s]++)
            return cd_fail(CD_ERR_VALUE, "layer '%s': source channels must be a permutation of "
                           "0..%d", node->name, hp->c - 1);
    }
    node->shape = in[0];
    return CD_OK;
}

static size_t rows_of(const cd_node *node, const cd_io *io) {
    return (size_t)io->n * node->shape.h * node->shape.w;
}

static cd_status channel_affine_forward(cd_node *node, const cd_io *io) {
    const channel_affine_hp *hp = node->hp;
    const int c = hp->c;
    const float *x = io->in[0];
    float *y = io->out;
    const size_t rows = rows_of(node, io);
#pragma omp parallel for schedule(static) if (rows * (size_t)c > 65536)
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < c; k++)
            y[r * c + k] = x[r * c + hp->source[k]] * hp->scale[k] + hp->offset[k];
    return CD_OK;
}

static cd_status channel_affine_backward(cd_node *node, const cd_io *io) {
    float *dx = io->dx[0];
    if (!dx) return CD_OK;
    const channel_affine_hp *hp = node->hp;
    const int c = hp->c, acc = io->acc[0];
    const float *dy = io->dout;
    const size_t rows = rows_of(node, io);
#pragma omp parallel for schedule(static) if (rows * (size_t)c > 65536)
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < c; k++) {
            float *d = &dx[r * c + hp->source[k]];
            const float g = dy[r * c + k] * hp->scale[k];
            *d = acc ? *d + g : g;
        }
    return CD_OK;
}

const cd_layer_ops cd_channel_affine_ops = {
    .name = "ChannelAffine", .flags = 0, .min_inputs = 1, .max_inputs = 1,
    .hp_size = sizeof(channel_affine_hp), .build = channel_affine_build,
    .forward = channel_affine_forward, .backward = channel_affine_backward,
};
