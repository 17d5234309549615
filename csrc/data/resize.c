/* resize.c — uint8 RGB (sh, sw, 3) -> float32 (dh, dw, 3), bit-for-bit the arithmetic of
 * TensorFlow's ResizeBilinear / ResizeNearestNeighbor with half_pixel_centers=True (what
 * tf.image.resize(method="bilinear"|"nearest", antialias=False) runs), in float32. */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"

typedef struct {
    int lower, upper;
    float lerp;
} axis_weight;

/* TF compute_interpolation_weights with HalfPixelScaler: in = (i + .5) * scale - .5. */
static void bilinear_weights(int in_size, int out_size, axis_weight *wt) {
    const float scale = (float)in_size / (float)out_size;
    for (int i = 0; i < out_size; i++) {
        const float in = ((float)i + 0.5f) * scale - 0.5f;
        const float in_f = floorf(in);
        int lo = (int)in_f, hi = (int)ceilf(in);
        wt[i].lower = lo > 0 ? lo : 0;
        wt[i].upper = hi < in_size - 1 ? hi : in_size - 1;
        wt[i].lerp = in - in_f;
    }
}

/* TF nearest with HalfPixelScalerForNN: floor((i + .5) * scale), clamped to [0, in-1]. */
static int nearest_index(int i, float scale, int in_size) {
    int v = (int)floorf(((float)i + 0.5f) * scale);
    if (v > in_size - 1) v = in_size - 1;
    return v < 0 ? 0 : v;
}

void cd_crop_box(int h, int w, int th, int tw, int *y0, int *x0, int *ch, int *cw) {
    /* Keras smart_resize: float32 products truncated to int32. */
    int crop_h = (int)((float)((int64_t)w * th) / (float)tw);
    int crop_w = (int)((float)((int64_t)h * tw) / (float)th);
    if (crop_h > h) crop_h = h;
    if (crop_w > w) crop_w = w;
    if (crop_h < 1) crop_h = 1;
    if (crop_w < 1) crop_w = 1;
    *ch = crop_h;
    *cw = crop_w;
    *y0 = (int)((float)(h - crop_h) / 2.0f);
    *x0 = (int)((float)(w - crop_w) / 2.0f);
}

cd_status cd_resize_rgb(const uint8_t *src, int sh, int sw, int y0, int x0, int ch, int cw,
                        float *dst, int dh, int dw, cd_interpolation interp) {
    if (!src || !dst || sh <= 0 || sw <= 0 || dh <= 0 || dw <= 0 || ch <= 0 || cw <= 0 || y0 < 0 ||
        x0 < 0 || y0 + ch > sh || x0 + cw > sw)
        return cd_fail(CD_ERR_VALUE, "resize: bad sizes (src %dx%d crop %d,%d %dx%d dst %dx%d)", sh,
                       sw, y0, x0, ch, cw, dh, dw);
    const size_t row = (size_t)sw * 3;
    const uint8_t *base = src + (size_t)y0 * row + (size_t)x0 * 3;

    if (interp == CD_INTERP_NEAREST) {
        const float ys = (float)ch / (float)dh, xs = (float)cw / (float)dw;
        for (int y = 0; y < dh; y++) {
            const uint8_t *r = base + (size_t)nearest_index(y, ys, ch) * row;
            float *o = dst + (size_t)y * dw * 3;
            for (int x = 0; x < dw; x++) {
                const uint8_t *p = r + (size_t)nearest_index(x, xs, cw) * 3;
                o[3 * x] = p[0];
                o[3 * x + 1] = p[1];
                o[3 * x + 2] = p[2];
            }
        }
        return CD_OK;
    }
    if (interp != CD_INTERP_BILINEAR) return cd_fail(CD_ERR_VALUE, "resize: unknown interpolation");

    axis_weight *xw = cd_alloc((size_t)dw + (size_t)dh, sizeof *xw, "resize weights");
    if (!xw) return CD_ERR_MEMORY;
    axis_weight *yw = xw + dw;
    bilinear_weights(cw, dw, xw);
    bilinear_weights(ch, dh, yw);
    for (int y = 0; y < dh; y++) {
        const uint8_t *top = base + (size_t)yw[y].lower * row;
        const uint8_t *bot = base + (size_t)yw[y].upper * row;
        const float yl = yw[y].lerp;
        float *o = dst + (size_t)y * dw * 3;
        for (int x = 0; x < dw; x++) {
            const int l = xw[x].lower * 3, u = xw[x].upper * 3;
            const float xl = xw[x].lerp;
            for (int c = 0; c < 3; c++) {
                const float tl = top[l + c], tr = top[u + c], bl = bot[l + c], br = bot[u + c];
                const float t = tl + (tr - tl) * xl;
                const float b = bl + (br - bl) * xl;
                o[3 * x + c] = t + (b - t) * yl;
            }
        }
    }
    free(xw);
    return CD_OK;
}
