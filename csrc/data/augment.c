/* augment.c — Keras's random image layers on one float32 (h, w, 3) image:
 * RandomFlip, RandomRotation, RandomZoom, RandomTranslation (all through the projective
 * transform of TF's ImageProjectiveTransformV3, reproduced with its fill modes and
 * interpolations), RandomContrast and RandomBrightness (colour, below), and Rescaling.
 * Random draws are keyed by (seed, epoch, sample, op). */
#include <math.h>
#include <string.h>
#include <xmmintrin.h> /* SSE: part of every x86-64 target */

#include "core/error.h"
#include "core/rng.h"

#define CD_STREAM_AUGMENT 0x100u

/* TF MapCoordinate<FILL_MODE>: an input coordinate outside [0, len-1] mapped back inside. */
static inline float map_coordinate(float c, int len, cd_fill_mode mode) {
    const float last = (float)(len - 1);
    switch (mode) {
        case CD_FILL_REFLECT:
            if (c < 0) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz2 = 2 * (int64_t)len;
                    if (c < sz2) c = (float)(sz2 * (int64_t)(-c / (float)sz2)) + c;
                    c = (c < (float)-len) ? c + (float)sz2 : -c - 1;
                }
            } else if (c > last) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz2 = 2 * (int64_t)len;
                    c -= (float)(sz2 * (int64_t)(c / (float)sz2));
                    if (c >= (float)len) c = (float)sz2 - c - 1;
                }
            }
            break;
        case CD_FILL_WRAP:
            if (c < 0) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz = len - 1;
                    c += (float)((int64_t)len * ((int64_t)(-c / (float)sz) + 1));
                }
            } else if (c > last) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz = len - 1;
                    c -= (float)((int64_t)len * (int64_t)(c / (float)sz));
                }
            }
            break;
        case CD_FILL_NEAREST: break;
        case CD_FILL_CONSTANT: default: return c;
    }
    return c < 0 ? 0 : (c > last ? last : c);
}

static inline const float *pixel_or_null(const float *src, int h, int w, int64_t y, int64_t x) {
    return (y >= 0 && y < h && x >= 0 && x < w) ? src + ((size_t)y * w + (size_t)x) * 3 : NULL;
}

/* floorf without a libm call (the default x86-64 target has no SSE4.1 round). |v| < 2^31. */
static inline float floor_fast(float v) {
    if (!(v > -1e9f && v < 1e9f)) return floorf(v);
    float t = (float)(int64_t)v;
    return t > v ? t - 1.0f : t;
}

/* One output pixel through TF's general path: fill-mode mapping, then interpolation whose
 * taps outside the image read fill_value. */
static inline void sample_general(const float *src, int h, int w, float xin, float yin,
                                  cd_fill_mode fill, cd_interpolation interp, float fill_value,
                                  float *o) {
    const float x = map_coordinate(xin, w, fill);
    const float y = map_coordinate(yin, h, fill);
    if (!(x > -2.0f && x < (float)w + 1.0f && y > -2.0f && y < (float)h + 1.0f)) { /* or NaN */
        o[0] = o[1] = o[2] = fill_value; /* every tap is outside (constant mode only) */
        return;
    }
    if (interp == CD_INTERP_NEAREST) {
        const float *p = pixel_or_null(src, h, w, (int64_t)roundf(y), (int64_t)roundf(x));
        for (int c = 0; c < 3; c++) o[c] = p ? p[c] : fill_value;
        return;
    }
    const float x0 = floor_fast(x), y0 = floor_fast(y), x1 = x0 + 1, y1 = y0 + 1;
    const float wx0 = x1 - x, wx1 = x - x0, wy0 = y1 - y, wy1 = y - y0;
    const int64_t ix = (int64_t)x0, iy = (int64_t)y0;
    if (fill != CD_FILL_CONSTANT) {
        /* x, y are in [0, len-1]: only the +1 tap can fall outside, at x == len-1 where its
         * weight is 0, so clamping it gives TF's value (0 * fill == 0 * pixel == 0). */
        const int64_t ix1 = ix + 1 < w ? ix + 1 : ix, iy1 = iy + 1 < h ? iy + 1 : iy;
        const float *r0 = src + (size_t)iy * w * 3, *r1 = src + (size_t)iy1 * w * 3;
        for (int c = 0; c < 3; c++) {
            const float top = wx0 * r0[ix * 3 + c] + wx1 * r0[ix1 * 3 + c];
            const float bot = wx0 * r1[ix * 3 + c] + wx1 * r1[ix1 * 3 + c];
            o[c] = wy0 * top + wy1 * bot;
        }
        return;
    }
    const float *p00 = pixel_or_null(src, h, w, iy, ix);
    const float *p01 = pixel_or_null(src, h, w, iy, ix + 1);
    const float *p10 = pixel_or_null(src, h, w, iy + 1, ix);
    const float *p11 = pixel_or_null(src, h, w, iy + 1, ix + 1);
    for (int c = 0; c < 3; c++) {
        const float v00 = p00 ? p00[c] : fill_value, v01 = p01 ? p01[c] : fill_value;
        const float v10 = p10 ? p10[c] : fill_value, v11 = p11 ? p11[c] : fill_value;
        const float top = wx0 * v00 + wx1 * v01;
        const float bot = wx0 * v10 + wx1 * v11;
        o[c] = wy0 * top + wy1 * bot;
    }
}

/* dst(y, x) = src(T(x, y)) with T the Keras/TF 8-parameter output->input projective map.
 * Pixels whose taps all fall inside the image take a fast path with the same arithmetic
 * (the fill-mode mapping is the identity there). */
void cd_affine_transform(const float *src, float *dst, int h, int w, const float t[8],
                         cd_fill_mode fill, cd_interpolation interp, float fill_value) {
    const int affine = t[6] == 0 && t[7] == 0; /* proj == 1: x / 1 == x exactly */
    const size_t row = (size_t)w * 3;
    const float xmax = (float)(w - 1), ymax = (float)(h - 1);
    const float *src_end = src + (size_t)h * row;
    /* output in TILE x TILE tiles: a rotated tile reads a compact source patch that stays in
     * L1, where whole output rows would walk source diagonals across the image */
    enum { TILE = 16 };
    for (int ty = 0; ty < h; ty += TILE)
    for (int tx = 0; tx < w; tx += TILE)
    for (int oy = ty; oy < h && oy < ty + TILE; oy++) {
        const float fy = (float)oy;
        for (int ox = tx; ox < w && ox < tx + TILE; ox++) {
            float *o = dst + (size_t)oy * row + (size_t)ox * 3;
            const float fx = (float)ox;
            float xin = t[0] * fx + t[1] * fy + t[2];
            float yin = t[3] * fx + t[4] * fy + t[5];
            if (!affine) {
                const float proj = t[6] * fx + t[7] * fy + 1.f;
                if (proj == 0) {
                    o[0] = o[1] = o[2] = fill_value;
                    continue;
                }
                xin /= proj;
                yin /= proj;
            }
            if (interp == CD_INTERP_BILINEAR && xin >= 0 && yin >= 0 && xin < xmax && yin < ymax) {
                const int ix = (int)xin, iy = (int)yin; /* floor: both >= 0 */
                const float x0 = (float)ix, y0 = (float)iy;
                const float wx0 = (x0 + 1) - xin, wx1 = xin - x0, wy0 = (y0 + 1) - yin, wy1 = yin - y0;
                const float *p = src + (size_t)iy * row + (size_t)ix * 3;
                if (p + row + 7 <= src_end) {
                    /* the 3 channels at once, 4-lane loads (lane 3 unused); the same products
                     * and sums per channel as the scalar code below, so the same bits */
                    const __m128 a = _mm_loadu_ps(p), b = _mm_loadu_ps(p + 3);
                    const __m128 c = _mm_loadu_ps(p + row), d = _mm_loadu_ps(p + row + 3);
                    const __m128 vx0 = _mm_set1_ps(wx0), vx1 = _mm_set1_ps(wx1);
                    const __m128 top = _mm_add_ps(_mm_mul_ps(vx0, a), _mm_mul_ps(vx1, b));
                    const __m128 bot = _mm_add_ps(_mm_mul_ps(vx0, c), _mm_mul_ps(vx1, d));
                    const __m128 v = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(wy0), top),
                                                _mm_mul_ps(_mm_set1_ps(wy1), bot));
                    _mm_storel_pi((__m64 *)o, v);
                    _mm_store_ss(o + 2, _mm_movehl_ps(v, v));
                    continue;
                }
                for (int c = 0; c < 3; c++) { /* the image's last pixels: loads stay inside */
                    const float top = wx0 * p[c] + wx1 * p[3 + c];
                    const float bot = wx0 * p[row + c] + wx1 * p[row + 3 + c];
                    o[c] = wy0 * top + wy1 * bot;
                }
                continue;
            }
            sample_general(src, h, w, xin, yin, fill, interp, fill_value, o);
        }
    }
}

static void flip_horizontal(float *img, int h, int w) {
    for (int y = 0; y < h; y++) {
        float *r = img + (size_t)y * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                float t = r[3 * a + c];
                r[3 * a + c] = r[3 * b + c];
                r[3 * b + c] = t;
            }
    }
}

static void flip_vertical(float *img, int h, int w, float *row_tmp) {
    const size_t row = (size_t)w * 3 * sizeof(float);
    for (int a = 0, b = h - 1; a < b; a++, b--) {
        memcpy(row_tmp, img + (size_t)a * w * 3, row);
        memcpy(img + (size_t)a * w * 3, img + (size_t)b * w * 3, row);
        memcpy(img + (size_t)b * w * 3, row_tmp, row);
    }
}

static inline float uniform_in(uint64_t key, uint64_t counter, float lo, float hi) {
    return lo + (hi - lo) * cd_rng_uniform(key, counter);
}

/* Keras RandomRotation's matrix for angle a (radians) on an (h, w) image. */
static void rotation_matrix(float a, int h, int w, float t[8]) {
    const float c = cosf(a), s = sinf(a), fh = (float)h, fw = (float)w;
    t[0] = c;
    t[1] = -s;
    t[2] = ((fw - 1) - (c * (fw - 1) - s * (fh - 1))) / 2.0f;
    t[3] = s;
    t[4] = c;
    t[5] = ((fh - 1) - (s * (fw - 1) + c * (fh - 1))) / 2.0f;
    t[6] = t[7] = 0;
}

/* Keras RandomContrast (keras/src/layers/preprocessing/image_preprocessing/random_contrast.py):
 * one factor per image, per channel y = (x - mean) * factor + mean with the channel's mean
 * over the image (accumulated in double), clipped to the value range [lo, hi]. */
static void adjust_contrast(float *img, size_t pixels, float factor, float lo, float hi) {
    double sum[3] = {0, 0, 0};
    for (size_t i = 0; i < pixels; i++)
        for (int c = 0; c < 3; c++) sum[c] += img[3 * i + c];
    float mean[3];
    for (int c = 0; c < 3; c++) mean[c] = (float)(sum[c] / (double)pixels);
    for (size_t i = 0; i < pixels; i++)
        for (int c = 0; c < 3; c++) {
            const float v = (img[3 * i + c] - mean[c]) * factor + mean[c];
            img[3 * i + c] = fminf(fmaxf(v, lo), hi);
        }
}

/* Keras RandomBrightness (random_brightness.py): y = x + delta (one delta per image), clipped
 * to the value range [lo, hi]. */
static void adjust_brightness(float *img, size_t count, float delta, float lo, float hi) {
    for (size_t i = 0; i < count; i++) img[i] = fminf(fmaxf(img[i] + delta, lo), hi);
}

static int is_geometric(cd_aug_kind k) {
    return k == CD_AUG_ROTATION || k == CD_AUG_ZOOM || k == CD_AUG_TRANSLATION;
}

cd_status cd_augment_image(const cd_aug_op *ops, int num_ops, int training, uint64_t seed,
                           int64_t epoch, int64_t sample, float *image, float *scratch, int h,
                           int w) {
    if (num_ops < 0 || (num_ops > 0 && !ops) || !image || h <= 0 || w <= 0)
        return cd_fail(CD_ERR_VALUE, "augment: bad arguments");
    float *cur = image, *other = scratch;
    const size_t count = (size_t)h * w * 3;
    for (int k = 0; k < num_ops; k++) {
        const cd_aug_op *op = &ops[k];
        if (op->kind == CD_AUG_RESCALE) {
            for (size_t i = 0; i < count; i++) cur[i] = cur[i] * op->scale + op->offset;
            continue;
        }
        if (!training) continue;
        const uint64_t key = cd_rng_key(seed, (uint64_t)epoch, (uint64_t)sample, CD_STREAM_AUGMENT + k);
        if (op->kind == CD_AUG_FLIP) {
            if (op->horizontal && cd_rng_uniform(key, 0) < 0.5f) flip_horizontal(cur, h, w);
            if (op->vertical && cd_rng_uniform(key, 1) < 0.5f) {
                if (!other) return cd_fail(CD_ERR_VALUE, "augment: scratch buffer needed");
                flip_vertical(cur, h, w, other);
            }
            continue;
        }
        if (op->kind == CD_AUG_CONTRAST) {
            adjust_contrast(cur, (size_t)h * w, uniform_in(key, 0, op->lo, op->hi), op->lo2, op->hi2);
            continue;
        }
        if (op->kind == CD_AUG_BRIGHTNESS) {
            adjust_brightness(cur, count, uniform_in(key, 0, op->lo, op->hi) * op->scale, op->lo2,
                              op->hi2);
            continue;
        }
        if (!is_geometric(op->kind)) return cd_fail(CD_ERR_VALUE, "augment: unknown op kind %d", op->kind);
        if (!other) return cd_fail(CD_ERR_VALUE, "augment: scratch buffer needed");
        float t[8] = {1, 0, 0, 0, 1, 0, 0, 0};
        if (op->kind == CD_AUG_ROTATION) {
            const float a = uniform_in(key, 0, op->lo, op->hi) * 2.0f * (float)M_PI;
            rotation_matrix(a, h, w, t);
        } else if (op->kind == CD_AUG_ZOOM) {
            const float zy = uniform_in(key, 0, 1.0f + op->lo, 1.0f + op->hi);
            const float zx = op->has_second ? uniform_in(key, 1, 1.0f + op->lo2, 1.0f + op->hi2) : zy;
            t[0] = zx;
            t[2] = ((float)w - 1.0f) / 2.0f * (1.0f - zx);
            t[4] = zy;
            t[5] = ((float)h - 1.0f) / 2.0f * (1.0f - zy);
        } else { /* translation */
            const float dy = uniform_in(key, 0, op->lo, op->hi) * (float)h;
            const float dx = uniform_in(key, 1, op->lo2, op->hi2) * (float)w;
            t[2] = -dx;
            t[5] = -dy;
        }
        cd_affine_transform(cur, other, h, w, t, op->fill_mode, op->interpolation, op->fill_value);
        float *swap = cur;
        cur = other;
        other = swap;
    }
    if (cur != image) memcpy(image, cur, count * sizeof(float));
    return CD_OK;
}
