/* resizing.c — Keras's Resizing layer (keras/src/layers/preprocessing/image_preprocessing/
 * resizing.py, TF backend keras/src/backend/tensorflow/image.py resize): (n, h, w, c) ->
 * (n, height, width, c) by tf.image.resize with antialias=False, i.e. TF's ResizeBilinear /
 * ResizeNearestNeighbor with half_pixel_centers=True, in float32 and the same arithmetic:
 *   bilinear: in = (o + .5) * (in_size / out_size) - .5; lower = max(floor(in), 0),
 *             upper = min(ceil(in), in_size - 1), lerp = in - floor(in);
 *             top = tl + (tr - tl) * xlerp, bottom likewise, y = top + (bottom - top) * ylerp
 *   nearest:  in = min(floor((o + .5) * scale), in_size - 1)
 * Before resizing, Keras's crop_to_aspect_ratio takes the centred window of the target's
 * aspect ratio (sizes as float32 products truncated to int: catdog.h's cd_crop_box, the data
 * pipeline's, which computes Keras's same box), and
 * pad_to_aspect_ratio pads both sides of the short axis by (padded - size) / 2 (truncated;
 * the padded size is then size + 2 * that) with fill_value: the resize reads that padded
 * image, whose border is fill_value.
 * Backward (TF's ResizeBilinearGrad / ResizeNearestNeighborGrad, then the crop's / pad's):
 * every output's gradient is added to the input pixels it read with the same weights
 * ((1 - ylerp)(1 - xlerp), ...); padding gets none, pixels outside a crop get 0.
 * Hyperparameters: size (height, width), interpolation (catdog.h CD_INTERP_*), crop, pad
 * (0 / 1), fill_value. Per sample: it may join the frozen prefix. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "nn/layer.h"

typedef struct {
    int height, width, interp, crop, pad;
    float fill_value;
    /* the image the resize reads, in input coordinates: rows y0 .. y0 + rh - 1, columns
     * x0 .. x0 + rw - 1 (a crop: inside the input; padding: y0, x0 <= 0, outside = fill) */
    int y0, x0, rh, rw;
} resizing_hp;

typedef struct {
    int lower, upper;
    float lerp;
} axis_weight;

/* Per output coordinate of one axis: the two source indices (region coordinates) and lerp;
 * nearest uses lower only. */
static void axis_weights(int in_size, int out_size, int nearest, axis_weight *wt) {
    const float scale = (float)in_size / (float)out_size;
    for (int i = 0; i < out_size; i++) {
        if (nearest) {
            int v = (int)floorf(((float)i + 0.5f) * scale);
            v = v > in_size - 1 ? in_size - 1 : v;
            wt[i] = (axis_weight){v < 0 ? 0 : v, 0, 0.f};
            continue;
        }
        const float in = ((float)i + 0.5f) * scale - 0.5f, in_f = floorf(in);
        const int lo = (int)in_f, hi = (int)ceilf(in);
        wt[i] = (axis_weight){lo > 0 ? lo : 0, hi < in_size - 1 ? hi : in_size - 1, in - in_f};
    }
}

static cd_status resizing_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    resizing_hp *hp = node->hp;
    int size[2];
    const int zero = 0, bilinear = CD_INTERP_BILINEAR;
    const float fzero = 0.f;
    CD_TRY(cd_hp_ints(h, "size", 2, NULL, size));
    CD_TRY(cd_hp_ints(h, "interpolation", 1, &bilinear, &hp->interp));
    CD_TRY(cd_hp_ints(h, "crop", 1, &zero, &hp->crop));
    CD_TRY(cd_hp_ints(h, "pad", 1, &zero, &hp->pad));
    CD_TRY(cd_hp_floats(h, "fill_value", 1, &fzero, &hp->fill_value));
    const cd_shape *s = &in[0];
    if (s->rank != 3)
        return cd_fail(CD_ERR_VALUE, "layer '%s' resizes (N, H, W, C) images", node->name);
    if (size[0] < 1 || size[1] < 1 || size[0] > 16384 || size[1] > 16384)
        return cd_fail(CD_ERR_VALUE, "layer '%s': bad size (%d, %d)", node->name, size[0], size[1]);
    if (hp->interp != CD_INTERP_BILINEAR && hp->interp != CD_INTERP_NEAREST)
        return cd_fail(CD_ERR_VALUE, "layer '%s': interpolation must be bilinear or nearest",
                       node->name);
    if ((hp->crop != 0 && hp->crop != 1) || (hp->pad != 0 && hp->pad != 1) || (hp->crop && hp->pad))
        return cd_fail(CD_ERR_VALUE, "layer '%s': Only one of `pad_to_aspect_ratio` & "
                       "`crop_to_aspect_ratio` can be `True`.", node->name);
    if (!isfinite(hp->fill_value))
        return cd_fail(CD_ERR_VALUE, "layer '%s': fill_value must be finite", node->name);
    hp->height = size[0], hp->width = size[1];
    hp->y0 = hp->x0 = 0, hp->rh = s->h, hp->rw = s->w;
    if (hp->crop) {
        cd_crop_box(s->h, s->w, hp->height, hp->width, &hp->y0, &hp->x0, &hp->rh, &hp->rw);
    } else if (hp->pad) { /* keras/src/backend/tensorflow/image.py: float32, truncated */
        int ph = (int)((float)((int64_t)s->w * hp->height) / (float)hp->width);
        int pw = (int)((float)((int64_t)s->h * hp->width) / (float)hp->height);
        ph = ph > s->h ? ph : s->h, pw = pw > s->w ? pw : s->w;
        const int top = (int)((float)(ph - s->h) / 2.f), left = (int)((float)(pw - s->w) / 2.f);
        hp->y0 = -top, hp->x0 = -left, hp->rh = s->h + 2 * top, hp->rw = s->w + 2 * left;
    }
    node->shape = (cd_shape){3, hp->height, hp->width, s->c};
    return CD_OK;
}

/* The row / column weights of the resize over the region (region coordinates). */
static cd_status weights(const cd_node *node, axis_weight **yw, axis_weight **xw) {
    const resizing_hp *hp = node->hp;
    *yw = cd_alloc((size_t)hp->height + (size_t)hp->width, sizeof **yw, "resize weights");
    if (!*yw) return CD_ERR_MEMORY;
    *xw = *yw + hp->height;
    const int nearest = hp->interp == CD_INTERP_NEAREST;
    axis_weights(hp->rh, hp->height, nearest, *yw);
    axis_weights(hp->rw, hp->width, nearest, *xw);
    return CD_OK;
}

/* The input pixel at region (ry, rx), or NULL outside the input (padding: fill_value). */
static inline const float *pixel(const float *img, const cd_shape *in, const resizing_hp *hp,
                                 int ry, int rx) {
    const int y = hp->y0 + ry, x = hp->x0 + rx;
    if (y < 0 || x < 0 || y >= in->h || x >= in->w) return NULL;
    return img + ((size_t)y * in->w + x) * (size_t)in->c;
}

static cd_status resizing_forward(cd_node *node, const cd_io *io) {
    const resizing_hp *hp = node->hp;
    const cd_shape *in = &io->in_shape[0];
    axis_weight *yw, *xw;
    CD_TRY(weights(node, &yw, &xw));
    const int c = in->c, H = hp->height, W = hp->width, nearest = hp->interp == CD_INTERP_NEAREST;
    const size_t in_size = cd_shape_size(in), out_size = cd_node_sample_size(node);
#pragma omp parallel for schedule(static) collapse(2) if ((size_t)io->n * out_size > 65536)
    for (int b = 0; b < io->n; b++)
        for (int y = 0; y < H; y++) {
            const float *img = io->in[0] + (size_t)b * in_size;
            float *o = io->out + (size_t)b * out_size + (size_t)y * W * c;
            const float fill = hp->fill_value;
            for (int x = 0; x < W; x++, o += c) {
                if (nearest) {
                    const float *p = pixel(img, in, hp, yw[y].lower, xw[x].lower);
                    for (int k = 0; k < c; k++) o[k] = p ? p[k] : fill;
                    continue;
                }
                const float *tl = pixel(img, in, hp, yw[y].lower, xw[x].lower);
                const float *tr = pixel(img, in, hp, yw[y].lower, xw[x].upper);
                const float *bl = pixel(img, in, hp, yw[y].upper, xw[x].lower);
                const float *br = pixel(img, in, hp, yw[y].upper, xw[x].upper);
                const float xl = xw[x].lerp, yl = yw[y].lerp;
                for (int k = 0; k < c; k++) {
                    const float a = tl ? tl[k] : fill, bb = tr ? tr[k] : fill;
                    const float cc = bl ? bl[k] : fill, d = br ? br[k] : fill;
                    const float top = a + (bb - a) * xl, bottom = cc + (d - cc) * xl;
                    o[k] = top + (bottom - top) * yl;
                }
            }
        }
    free(yw);
    return CD_OK;
}

/* dx (+)= the resize's transpose applied to dy, sample by sample (one thread per sample:
 * every sample's sums run in one order, whatever the thread count). */
static cd_status resizing_backward(cd_node *node, const cd_io *io) {
    float *dx = io->dx[0];
    if (!dx) return CD_OK;
    const resizing_hp *hp = node->hp;
    const cd_shape *in = &io->in_shape[0];
    const size_t in_size = cd_shape_size(in), out_size = cd_node_sample_size(node);
    float *sum = io->acc[0] ? io->scratch : dx; /* scratch holds n samples of the largest */
    axis_weight *yw, *xw;
    CD_TRY(weights(node, &yw, &xw));
    const int c = in->c, H = hp->height, W = hp->width, nearest = hp->interp == CD_INTERP_NEAREST;
#pragma omp parallel for schedule(static) if ((size_t)io->n * out_size > 65536)
    for (int b = 0; b < io->n; b++) {
        float *g = sum + (size_t)b * in_size;
        memset(g, 0, in_size * sizeof(float));
        const float *d = io->dout + (size_t)b * out_size;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++, d += c) {
                float *p[4];
                float wgt[4];
                int m = 0;
                if (nearest) {
                    p[0] = (float *)pixel(g, in, hp, yw[y].lower, xw[x].lower), wgt[0] = 1.f;
                    m = 1;
                } else {
                    const float yl = yw[y].lerp, xl = xw[x].lerp, iy = 1.f - yl, ix = 1.f - xl;
                    p[0] = (float *)pixel(g, in, hp, yw[y].lower, xw[x].lower), wgt[0] = iy * ix;
                    p[1] = (float *)pixel(g, in, hp, yw[y].lower, xw[x].upper), wgt[1] = iy * xl;
                    p[2] = (float *)pixel(g, in, hp, yw[y].upper, xw[x].lower), wgt[2] = yl * ix;
                    p[3] = (float *)pixel(g, in, hp, yw[y].upper, xw[x].upper), wgt[3] = yl * xl;
                    m = 4;
                }
                for (int j = 0; j < m; j++)
                    if (p[j])
                        for (int k = 0; k < c; k++) p[j][k] += d[k] * wgt[j];
            }
    }
    free(yw);
    if (io->acc[0]) {
        const size_t total = (size_t)io->n * in_size;
        for (size_t i = 0; i < total; i++) dx[i] += sum[i];
    }
    return CD_OK;
}

const cd_layer_ops cd_resizing_ops = {
    .name = "Resizing", .flags = 0, .min_inputs = 1, .max_inputs = 1,
    .hp_size = sizeof(resizing_hp), .build = resizing_build, .forward = resizing_forward,
    .backward = resizing_backward,
};
