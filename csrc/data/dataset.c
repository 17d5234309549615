/* dataset.c — a list of image files with labels, decoded once into a bounded uint8 cache
 * (cached, H, W, 3) and a record of the files that could not be decoded. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/dataset.h"

static size_t image_bytes(const cd_dataset *ds) {
    return (size_t)ds->cfg.height * (size_t)ds->cfg.width * 3;
}

cd_status cd_dataset_create(const cd_dataset_config *cfg, const char *const *paths,
                            const int32_t *labels, int64_t n, cd_dataset **out) {
    if (!out) return cd_fail(CD_ERR_VALUE, "dataset: out is NULL");
    *out = NULL;
    if (!cfg || n < 0 || (n > 0 && !paths)) return cd_fail(CD_ERR_VALUE, "dataset: bad arguments");
    if (cfg->height <= 0 || cfg->width <= 0 || cfg->height > 16384 || cfg->width > 16384)
        return cd_fail(CD_ERR_VALUE, "image_size must be in [1, 16384] per side (got %dx%d)",
                       cfg->height, cfg->width);
    if (cfg->interpolation != CD_INTERP_BILINEAR && cfg->interpolation != CD_INTERP_NEAREST)
        return cd_fail(CD_ERR_VALUE, "unknown interpolation %d", (int)cfg->interpolation);
    if (cfg->label_mode != CD_LABELS_NONE) {
        if (!labels && n > 0) return cd_fail(CD_ERR_VALUE, "dataset: labels are NULL");
        if (cfg->num_classes <= 0) return cd_fail(CD_ERR_VALUE, "dataset: num_classes must be > 0");
        for (int64_t i = 0; i < n; i++)
            if (labels[i] < 0 || labels[i] >= cfg->num_classes)
                return cd_fail(CD_ERR_VALUE, "label %d of sample %lld outside [0, %d)", labels[i],
                               (long long)i, cfg->num_classes);
    }
    cd_dataset *ds = cd_calloc(1, sizeof *ds, "dataset");
    if (!ds) return CD_ERR_MEMORY;
    ds->cfg = *cfg;
    ds->n = n;
    pthread_mutex_init(&ds->fail_lock, NULL);
    ds->paths = cd_calloc((size_t)n + 1, sizeof *ds->paths, "dataset paths");
    ds->state = cd_calloc((size_t)n + 1, 1, "dataset states");
    ds->labels = cd_calloc((size_t)n + 1, sizeof *ds->labels, "dataset labels");
    if (!ds->paths || !ds->state || !ds->labels) goto oom;
    for (int64_t i = 0; i < n; i++) {
        if (!paths[i]) {
            cd_dataset_free(ds);
            return cd_fail(CD_ERR_VALUE, "dataset: path %lld is NULL", (long long)i);
        }
        ds->paths[i] = strdup(paths[i]);
        if (!ds->paths[i]) goto oom;
        ds->labels[i] = labels ? labels[i] : 0;
    }
    *out = ds;
    return CD_OK;
oom:
    cd_dataset_free(ds);
    return cd_fail(CD_ERR_MEMORY, "out of memory creating a dataset of %lld files", (long long)n);
}

void cd_dataset_free(cd_dataset *ds) {
    if (!ds) return;
    if (ds->paths)
        for (int64_t i = 0; i < ds->n; i++) free(ds->paths[i]);
    free(ds->paths);
    free(ds->labels);
    free(ds->state);
    free(ds->cache);
    for (int64_t k = 0; k < ds->num_failures; k++) free(ds->failures[k].message);
    free(ds->failures);
    pthread_mutex_destroy(&ds->fail_lock);
    free(ds);
}

static int get_state(const cd_dataset *ds, int64_t i) {
    return __atomic_load_n(&ds->state[i], __ATOMIC_ACQUIRE);
}

static void set_state(cd_dataset *ds, int64_t i, int s) {
    __atomic_store_n(&ds->state[i], (uint8_t)s, __ATOMIC_RELEASE);
}

/* Mark sample i bad once and remember why (message taken from cd_last_error()). */
static void record_failure(cd_dataset *ds, int64_t i) {
    const char *why = cd_last_error();
    pthread_mutex_lock(&ds->fail_lock);
    if (get_state(ds, i) != CD_SAMPLE_BAD) {
        set_state(ds, i, CD_SAMPLE_BAD);
        if (ds->num_failures == ds->failures_cap) {
            int64_t cap = ds->failures_cap ? 2 * ds->failures_cap : 16;
            cd_failure *f = realloc(ds->failures, (size_t)cap * sizeof *f);
            if (f) {
                ds->failures = f;
                ds->failures_cap = cap;
            }
        }
        if (ds->num_failures < ds->failures_cap) {
            size_t len = strlen(ds->paths[i]) + strlen(why) + 3;
            char *m = malloc(len);
            if (m) snprintf(m, len, "%s: %s", ds->paths[i], why);
            ds->failures[ds->num_failures].sample = i;
            ds->failures[ds->num_failures].message = m;
            ds->num_failures++;
        }
    }
    pthread_mutex_unlock(&ds->fail_lock);
}

/* Decode + crop + resize sample i into float (H, W, 3), each value rounded to uint8. */
static cd_status decode_resized(const cd_dataset *ds, int64_t i, float *dst) {
    cd_image img;
    CD_TRY(cd_decode_file(ds->paths[i], ds->cfg.max_pixels, ds->cfg.max_file_bytes, &img));
    int y0 = 0, x0 = 0, ch = img.height, cw = img.width;
    if (ds->cfg.crop_to_aspect_ratio)
        cd_crop_box(img.height, img.width, ds->cfg.height, ds->cfg.width, &y0, &x0, &ch, &cw);
    cd_status s = cd_resize_rgb(img.pixels, img.height, img.width, y0, x0, ch, cw, dst,
                                ds->cfg.height, ds->cfg.width, ds->cfg.interpolation);
    cd_image_free(&img);
    if (s != CD_OK) return s;
    const size_t count = image_bytes(ds);
    for (size_t k = 0; k < count; k++) { /* the cache's rounding, cached or not */
        float v = floorf(dst[k] + 0.5f);
        dst[k] = v < 0 ? 0 : (v > 255 ? 255 : v);
    }
    return CD_OK;
}

static cd_status sample_error(const cd_dataset *ds, int64_t i) {
    for (int64_t k = 0; k < ds->num_failures; k++)
        if (ds->failures[k].sample == i && ds->failures[k].message)
            return cd_fail(CD_ERR_VALUE, "%s", ds->failures[k].message);
    return cd_fail(CD_ERR_VALUE, "%s: could not be decoded", ds->paths[i]);
}

cd_status cd_dataset_load(cd_dataset *ds, int num_threads) {
    if (!ds) return cd_fail(CD_ERR_VALUE, "dataset is NULL");
    if (ds->loaded) return CD_OK;
    const size_t per = image_bytes(ds);
    int64_t cached = ds->cfg.cache_bytes ? (int64_t)(ds->cfg.cache_bytes / per) : 0;
    if (cached > ds->n) cached = ds->n;
    if (cached > 0) {
        ds->cache = cd_alloc((size_t)cached, per, "image cache");
        if (!ds->cache)
            return cd_fail(CD_ERR_MEMORY, "cannot allocate the image cache (%lld images of %zu bytes); "
                           "pass a smaller cache bound or cache=False", (long long)cached, per);
    }
    if (num_threads < 1) num_threads = 1;
    int oom = 0;
#pragma omp parallel num_threads(num_threads)
    {
        float *tmp = cd_alloc(per, sizeof(float), "decode buffer");
        if (!tmp) {
#pragma omp atomic write
            oom = 1;
        }
#pragma omp for schedule(dynamic, 4)
        for (int64_t i = 0; i < ds->n; i++) {
            if (!tmp) continue;
            cd_status s;
            if (i < cached) {
                s = decode_resized(ds, i, tmp);
                if (s == CD_OK) {
                    uint8_t *c = ds->cache + (size_t)i * per;
                    for (size_t k = 0; k < per; k++) c[k] = (uint8_t)tmp[k];
                }
            } else {
                s = cd_check_file_header(ds->paths[i], ds->cfg.max_pixels, ds->cfg.max_file_bytes);
            }
            if (s == CD_OK) set_state(ds, i, CD_SAMPLE_OK);
            else record_failure(ds, i);
        }
        free(tmp);
    }
    if (oom) return cd_fail(CD_ERR_MEMORY, "out of memory allocating decode buffers");
    ds->cached = cached;
    ds->loaded = 1;
    if (ds->cfg.on_error == CD_ON_ERROR_RAISE)
        for (int64_t i = 0; i < ds->n; i++) /* the first bad file in order, whatever the threads */
            if (get_state(ds, i) == CD_SAMPLE_BAD) return sample_error(ds, i);
    return CD_OK;
}

cd_status cd_dataset_sample_float(cd_dataset *ds, int64_t i, float *dst, int *ok) {
    *ok = 0;
    if (i < 0 || i >= ds->n) return cd_fail(CD_ERR_VALUE, "sample %lld outside [0, %lld)", (long long)i, (long long)ds->n);
    if (get_state(ds, i) == CD_SAMPLE_BAD) {
        if (ds->cfg.on_error == CD_ON_ERROR_RAISE) {
            pthread_mutex_lock(&ds->fail_lock);
            cd_status s = sample_error(ds, i);
            pthread_mutex_unlock(&ds->fail_lock);
            return s;
        }
        return CD_OK;
    }
    const size_t per = image_bytes(ds);
    if (i < ds->cached) {
        const uint8_t *c = ds->cache + (size_t)i * per;
        for (size_t k = 0; k < per; k++) dst[k] = (float)c[k];
        *ok = 1;
        return CD_OK;
    }
    cd_status s = decode_resized(ds, i, dst);
    if (s == CD_OK) {
        *ok = 1;
        return CD_OK;
    }
    if (s == CD_ERR_MEMORY) return s;
    record_failure(ds, i);
    if (ds->cfg.on_error == CD_ON_ERROR_RAISE) {
        pthread_mutex_lock(&ds->fail_lock);
        s = sample_error(ds, i);
        pthread_mutex_unlock(&ds->fail_lock);
        return s;
    }
    return CD_OK;
}

int64_t cd_dataset_size(const cd_dataset *ds) { return ds ? ds->n : 0; }
int64_t cd_dataset_cached_count(const cd_dataset *ds) { return ds ? ds->cached : 0; }

int cd_dataset_label_width(const cd_dataset *ds) {
    if (!ds || ds->cfg.label_mode == CD_LABELS_NONE) return 0;
    return ds->cfg.label_mode == CD_LABELS_CATEGORICAL ? ds->cfg.num_classes : 1;
}

void cd_dataset_image_shape(const cd_dataset *ds, int *height, int *width) {
    *height = ds ? ds->cfg.height : 0;
    *width = ds ? ds->cfg.width : 0;
}

int cd_dataset_sample_ok(const cd_dataset *ds, int64_t i) {
    if (!ds || i < 0 || i >= ds->n) return 0;
    return get_state(ds, i) != CD_SAMPLE_BAD;
}

int64_t cd_dataset_num_failures(const cd_dataset *ds) {
    if (!ds) return 0;
    pthread_mutex_lock((pthread_mutex_t *)&ds->fail_lock);
    int64_t n = ds->num_failures;
    pthread_mutex_unlock((pthread_mutex_t *)&ds->fail_lock);
    return n;
}

cd_status cd_dataset_failure(const cd_dataset *ds, int64_t k, int64_t *sample, const char **message) {
    if (!ds || k < 0) return cd_fail(CD_ERR_VALUE, "failure index out of range");
    pthread_mutex_lock((pthread_mutex_t *)&ds->fail_lock);
    cd_status s = CD_OK;
    if (k >= ds->num_failures) {
        s = cd_fail(CD_ERR_VALUE, "failure index out of range");
    } else {
        *sample = ds->failures[k].sample;
        *message = ds->failures[k].message ? ds->failures[k].message : "(no message: out of memory)";
    }
    pthread_mutex_unlock((pthread_mutex_t *)&ds->fail_lock);
    return s;
}

cd_status cd_dataset_get_image(cd_dataset *ds, int64_t i, uint8_t *dst) {
    if (!ds || !dst) return cd_fail(CD_ERR_VALUE, "get_image: NULL argument");
    if (i < 0 || i >= ds->n) return cd_fail(CD_ERR_VALUE, "sample %lld outside [0, %lld)", (long long)i, (long long)ds->n);
    const size_t per = image_bytes(ds);
    if (i < ds->cached && get_state(ds, i) == CD_SAMPLE_OK) {
        memcpy(dst, ds->cache + (size_t)i * per, per);
        return CD_OK;
    }
    float *tmp = cd_alloc(per, sizeof(float), "decode buffer");
    if (!tmp) return CD_ERR_MEMORY;
    cd_status s = decode_resized(ds, i, tmp);
    if (s == CD_OK)
        for (size_t k = 0; k < per; k++) dst[k] = (uint8_t)tmp[k];
    free(tmp);
    return s;
}
