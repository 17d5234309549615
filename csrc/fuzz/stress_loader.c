/* stress_loader.c — the loader under ThreadSanitizer (or ASan): datasets of the image files
 * given on the command line, cached and uncached, many epochs with 0-4 workers, abandoned
 * epochs and restarts; checks that every worker count gives the same bytes.
 *   bash csrc/fuzz/run_stress.sh   (builds with -fsanitize=thread and runs on the fixtures) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catdog.h"

/* Reads the dataset's failure list while the workers may be adding to it (as Python's
 * failures() does between batches). */
static int run_epoch(const cd_dataset *ds, cd_loader *l, float *sum) {
    cd_batch b;
    int batches = 0;
    while (cd_loader_next(l, &b) == CD_OK && !b.end_of_epoch) {
        for (size_t i = 0; i < (size_t)b.n * 8 * 8 * 3; i += 7) *sum += b.images[i];
        int64_t k = cd_dataset_num_failures(ds), sample;
        const char *message;
        if (k > 0 && cd_dataset_failure(ds, k - 1, &sample, &message) == CD_OK && !message[0])
            return -1;
        batches++;
    }
    return batches;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const int n = argc - 1;
    int32_t *labels = calloc((size_t)n, sizeof *labels);
    int64_t *idx = calloc((size_t)n, sizeof *idx);
    for (int i = 0; i < n; i++) idx[i] = i, labels[i] = i % 2;
    cd_aug_op ops[3] = {{.kind = CD_AUG_FLIP, .horizontal = 1, .vertical = 1},
                        {.kind = CD_AUG_ROTATION, .lo = -0.2f, .hi = 0.2f},
                        {.kind = CD_AUG_ZOOM, .lo = -0.2f, .hi = 0.3f, .fill_mode = CD_FILL_CONSTANT}};
    float ref = 0;
    int failures = 0;
    for (int cached = 0; cached < 2; cached++) {
        cd_dataset_config cfg = {.height = 8, .width = 8, .label_mode = CD_LABELS_BINARY, .num_classes = 2,
                                 .cache_bytes = cached ? 1 << 20 : 0, .on_error = CD_ON_ERROR_SKIP};
        cd_dataset *ds;
        if (cd_dataset_create(&cfg, (const char *const *)argv + 1, labels, n, &ds) != CD_OK ||
            cd_dataset_load(ds, 3) != CD_OK) {
            fprintf(stderr, "dataset: %s\n", cd_last_error());
            return 1;
        }
        for (int workers = 0; workers <= 4; workers++) {
            cd_loader_config lc = {.batch_size = 3, .training = 1, .seed = 5, .epoch = 0,
                                   .num_workers = workers, .prefetch = workers ? 2 : 0, .ops = ops, .num_ops = 3};
            cd_loader *l;
            if (cd_loader_create(ds, idx, n, &lc, &l) != CD_OK) return 1;
            int lh, lw;
            cd_loader_image_shape(l, &lh, &lw);
            if (lh != 8 || lw != 8) failures++;
            for (int epoch = 0; epoch < 6; epoch++) {
                cd_shuffle(5, epoch, idx, n, idx);
                if (cd_loader_restart(l, idx, n, epoch) != CD_OK) return 1;
                if (epoch % 3 == 2) { /* abandon after one batch */
                    cd_batch b;
                    cd_loader_next(l, &b);
                    continue;
                }
                float sum = 0;
                if (run_epoch(ds, l, &sum) < 0) failures++;
                if (epoch == 5) {
                    if (cached == 0 && workers == 0) ref = sum;
                    else if (sum != ref) failures++;
                }
            }
            for (int i = 0; i < n; i++) idx[i] = i;
            cd_loader_free(l);
        }
        cd_dataset_free(ds);
    }
    free(labels);
    free(idx);
    printf("stress_loader: %d files, %s\n", n, failures ? "MISMATCH" : "identical batches for 0-4 workers, cached or not");
    return failures != 0;
}
