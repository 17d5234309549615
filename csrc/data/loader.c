/* loader.c — one epoch of batches from a dataset: worker threads (pthreads) fill a ring of
 * `prefetch` batch slots ahead of the consumer. Batch b goes to slot b % prefetch; a worker
 * may fill batch b once batch b - prefetch has been handed back (the consumer's next call).
 * Each slot's buffers are allocated once: images (batch, H, W, 3), labels (batch, width). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/dataset.h"

typedef struct {
    float *images, *labels;
    int64_t *samples;
    int n;
    int64_t batch;       /* batch held in the slot; valid when ready */
    int ready;
    cd_status status;
    char message[1024];
} batch_slot;

struct cd_loader {
    cd_dataset *ds;
    cd_loader_config cfg;
    cd_aug_op *ops;
    int64_t *indices, n, indices_cap, num_batches;
    size_t image_floats;         /* H * W * 3 */
    int label_width;
    int num_slots;
    batch_slot *slots;
    float *sync_scratch;         /* used when num_workers == 0 */
    float **worker_scratch;
    pthread_t *threads;
    int threads_started;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, ready_cv;
    int64_t next_batch;          /* next batch a worker claims */
    int64_t released;            /* batches [0, released) have been given back */
    int64_t handed;              /* batches given to the consumer so far */
    int stop;
};

/* Fill batch b into slot s with `scratch` (H*W*3 floats). Pure function of (loader, b). */
static void fill_batch(cd_loader *l, int64_t b, batch_slot *s, float *scratch) {
    const int64_t start = b * l->cfg.batch_size;
    int64_t end = start + l->cfg.batch_size;
    if (end > l->n) end = l->n;
    int rows = 0;
    s->status = CD_OK;
    for (int64_t k = start; k < end; k++) {
        const int64_t i = l->indices[k];
        float *img = s->images + (size_t)rows * l->image_floats;
        int ok = 0;
        cd_status st = cd_dataset_sample_float(l->ds, i, img, &ok);
        if (st == CD_OK && ok)
            st = cd_augment_image(l->ops, l->cfg.num_ops, l->cfg.training, l->cfg.seed, l->cfg.epoch,
                                  i, img, scratch, l->ds->cfg.height, l->ds->cfg.width);
        if (st != CD_OK) {
            s->status = st;
            snprintf(s->message, sizeof s->message, "%s", cd_last_error());
            break;
        }
        if (!ok) continue; /* bad file skipped (WARN/SKIP): the batch is one row shorter */
        s->samples[rows] = i;
        if (l->label_width > 0) {
            float *lab = s->labels + (size_t)rows * l->label_width;
            const int32_t c = l->ds->labels[i];
            if (l->ds->cfg.label_mode == CD_LABELS_CATEGORICAL) {
                memset(lab, 0, (size_t)l->label_width * sizeof *lab);
                lab[c] = 1.0f;
            } else {
                lab[0] = (float)c;
            }
        }
        rows++;
    }
    s->n = rows;
    s->batch = b;
}

static void *worker_main(void *arg) {
    void **a = arg;
    cd_loader *l = a[0];
    float *scratch = a[1];
    free(a);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && !(l->next_batch < l->num_batches && l->next_batch < l->released + l->num_slots))
            pthread_cond_wait(&l->work_cv, &l->mu);
        if (l->stop) break;
        const int64_t b = l->next_batch++;
        batch_slot *s = &l->slots[b % l->num_slots];
        pthread_mutex_unlock(&l->mu);
        fill_batch(l, b, s, scratch);
        pthread_mutex_lock(&l->mu);
        s->ready = 1;
        pthread_cond_broadcast(&l->ready_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void stop_workers(cd_loader *l) {
    if (!l->threads_started) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    for (int t = 0; t < l->threads_started; t++) pthread_join(l->threads[t], NULL);
    l->threads_started = 0;
    l->stop = 0;
}

static cd_status start_workers(cd_loader *l) {
    l->next_batch = l->released = l->handed = 0;
    for (int k = 0; k < l->num_slots; k++) l->slots[k].ready = 0;
    for (int t = 0; t < l->cfg.num_workers; t++) {
        void **arg = malloc(2 * sizeof *arg);
        if (!arg) {
            stop_workers(l);
            return cd_fail(CD_ERR_MEMORY, "out of memory starting loader threads");
        }
        arg[0] = l;
        arg[1] = l->worker_scratch[t];
        if (pthread_create(&l->threads[t], NULL, worker_main, arg) != 0) {
            free(arg);
            stop_workers(l);
            return cd_fail(CD_ERR_RUNTIME, "cannot start loader thread %d", t);
        }
        l->threads_started = t + 1;
    }
    return CD_OK;
}

static cd_status set_indices(cd_loader *l, const int64_t *indices, int64_t n) {
    if (n < 0 || (n > 0 && !indices)) return cd_fail(CD_ERR_VALUE, "loader: bad index list");
    for (int64_t k = 0; k < n; k++)
        if (indices[k] < 0 || indices[k] >= l->ds->n)
            return cd_fail(CD_ERR_VALUE, "loader: sample index %lld outside [0, %lld)",
                           (long long)indices[k], (long long)l->ds->n);
    if (n > l->indices_cap) {
        int64_t *p = cd_alloc((size_t)n, sizeof *p, "loader indices");
        if (!p) return CD_ERR_MEMORY;
        free(l->indices);
        l->indices = p;
        l->indices_cap = n;
    }
    if (n > 0) memcpy(l->indices, indices, (size_t)n * sizeof *indices);
    l->n = n;
    l->num_batches = (n + l->cfg.batch_size - 1) / l->cfg.batch_size;
    return CD_OK;
}

void cd_loader_free(cd_loader *l) {
    if (!l) return;
    stop_workers(l);
    if (l->slots)
        for (int k = 0; k < l->num_slots; k++) {
            free(l->slots[k].images);
            free(l->slots[k].labels);
            free(l->slots[k].samples);
        }
    free(l->slots);
    if (l->worker_scratch)
        for (int t = 0; t < l->cfg.num_workers; t++) free(l->worker_scratch[t]);
    free(l->worker_scratch);
    free(l->sync_scratch);
    free(l->threads);
    free(l->indices);
    free(l->ops);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work_cv);
    pthread_cond_destroy(&l->ready_cv);
    free(l);
}

cd_status cd_loader_create(cd_dataset *ds, const int64_t *indices, int64_t n,
                           const cd_loader_config *cfg, cd_loader **out) {
    if (!out) return cd_fail(CD_ERR_VALUE, "loader: out is NULL");
    *out = NULL;
    if (!ds || !cfg) return cd_fail(CD_ERR_VALUE, "loader: NULL dataset or config");
    if (!ds->loaded) return cd_fail(CD_ERR_STATE, "loader: call cd_dataset_load first");
    if (cfg->batch_size <= 0) return cd_fail(CD_ERR_VALUE, "batch_size must be positive (got %d)", cfg->batch_size);
    if (cfg->num_workers < 0 || cfg->num_workers > 256)
        return cd_fail(CD_ERR_VALUE, "num_workers must be in [0, 256] (got %d)", cfg->num_workers);
    if (cfg->num_ops < 0 || (cfg->num_ops > 0 && !cfg->ops)) return cd_fail(CD_ERR_VALUE, "loader: bad ops");
    for (int k = 0; k < cfg->num_ops; k++)
        if ((unsigned)cfg->ops[k].kind > CD_AUG_BRIGHTNESS)
            return cd_fail(CD_ERR_VALUE, "augmentation op %d has unknown kind %d", k, (int)cfg->ops[k].kind);

    cd_loader *l = cd_calloc(1, sizeof *l, "loader");
    if (!l) return CD_ERR_MEMORY;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->ready_cv, NULL);
    l->ds = ds;
    l->cfg = *cfg;
    l->cfg.ops = NULL;
    l->image_floats = (size_t)ds->cfg.height * ds->cfg.width * 3;
    l->label_width = cd_dataset_label_width(ds);
    int prefetch = cfg->prefetch > 0 ? cfg->prefetch : 2 * (cfg->num_workers > 0 ? cfg->num_workers : 1);
    l->num_slots = cfg->num_workers == 0 ? 1 : (prefetch < 1 ? 1 : prefetch);
    cd_status s = CD_OK;
    if (cfg->num_ops > 0) {
        l->ops = cd_alloc((size_t)cfg->num_ops, sizeof *l->ops, "augmentation ops");
        if (!l->ops) { s = CD_ERR_MEMORY; goto fail; }
        memcpy(l->ops, cfg->ops, (size_t)cfg->num_ops * sizeof *l->ops);
    }
    s = set_indices(l, indices, n);
    if (s != CD_OK) goto fail;
    l->slots = cd_calloc((size_t)l->num_slots, sizeof *l->slots, "batch slots");
    if (!l->slots) { s = CD_ERR_MEMORY; goto fail; }
    for (int k = 0; k < l->num_slots; k++) {
        batch_slot *b = &l->slots[k];
        b->images = cd_alloc((size_t)cfg->batch_size, l->image_floats * sizeof(float), "batch images");
        b->labels = cd_alloc((size_t)cfg->batch_size * (l->label_width ? l->label_width : 1), sizeof(float), "batch labels");
        b->samples = cd_alloc((size_t)cfg->batch_size, sizeof(int64_t), "batch samples");
        if (!b->images || !b->labels || !b->samples) { s = CD_ERR_MEMORY; goto fail; }
    }
    l->sync_scratch = cd_alloc(l->image_floats, sizeof(float), "augmentation scratch");
    l->worker_scratch = cd_calloc((size_t)cfg->num_workers + 1, sizeof(float *), "worker scratch");
    l->threads = cd_calloc((size_t)cfg->num_workers + 1, sizeof(pthread_t), "loader threads");
    if (!l->sync_scratch || !l->worker_scratch || !l->threads) { s = CD_ERR_MEMORY; goto fail; }
    for (int t = 0; t < cfg->num_workers; t++) {
        l->worker_scratch[t] = cd_alloc(l->image_floats, sizeof(float), "augmentation scratch");
        if (!l->worker_scratch[t]) { s = CD_ERR_MEMORY; goto fail; }
    }
    s = start_workers(l);
    if (s != CD_OK) goto fail;
    *out = l;
    return CD_OK;
fail:
    cd_loader_free(l);
    return s;
}

int64_t cd_loader_num_batches(const cd_loader *l) { return l ? l->num_batches : 0; }

void cd_loader_image_shape(const cd_loader *l, int *height, int *width) {
    *height = *width = 0;
    if (l) cd_dataset_image_shape(l->ds, height, width);
}

cd_status cd_loader_next(cd_loader *l, cd_batch *out) {
    if (!l || !out) return cd_fail(CD_ERR_VALUE, "loader_next: NULL argument");
    memset(out, 0, sizeof *out);
    const int64_t b = l->handed;
    if (b >= l->num_batches) {
        out->batch = b;
        out->end_of_epoch = 1;
        return CD_OK;
    }
    batch_slot *s;
    if (l->cfg.num_workers == 0) {
        s = &l->slots[0];
        fill_batch(l, b, s, l->sync_scratch);
    } else {
        pthread_mutex_lock(&l->mu);
        l->released = b; /* the previous batch's slot is free again */
        pthread_cond_broadcast(&l->work_cv);
        s = &l->slots[b % l->num_slots];
        while (!(s->ready && s->batch == b)) pthread_cond_wait(&l->ready_cv, &l->mu);
        s->ready = 0;
        pthread_mutex_unlock(&l->mu);
    }
    l->handed = b + 1;
    if (s->status != CD_OK) return cd_fail(s->status, "%s", s->message);
    out->images = s->images;
    out->labels = l->label_width > 0 ? s->labels : NULL;
    out->samples = s->samples;
    out->n = s->n;
    out->batch = b;
    return CD_OK;
}

cd_status cd_loader_restart(cd_loader *l, const int64_t *indices, int64_t n, int64_t epoch) {
    if (!l) return cd_fail(CD_ERR_VALUE, "loader_restart: NULL loader");
    stop_workers(l);
    l->cfg.epoch = epoch;
    cd_status s = set_indices(l, indices, n);
    if (s != CD_OK) {
        l->n = l->num_batches = 0;
        return s;
    }
    return start_workers(l);
}
