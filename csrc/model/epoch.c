/* epoch.c — one epoch of training or evaluation driven from C: batches come from the data
 * pipeline's loader (decoded, augmented ahead by its workers) straight into the graph. An
 * evaluation epoch under a nonzero key records the feature cache (model/features.c). */
#include <string.h>

#include "core/error.h"
#include "model/graph_internal.h"

static cd_status run_epoch(cd_graph *g, cd_loader *loader, int train, int *record,
                           cd_progress_fn progress, void *ctx, cd_epoch_stats *stats) {
    memset(stats, 0, sizeof *stats);
    if (!loader) return cd_fail(CD_ERR_VALUE, "no loader");
    /* the steps read n * H * W * C floats per batch: the loader's images must be that size */
    if (g->num_nodes < 1) return cd_fail(CD_ERR_STATE, "the model has no layers");
    int h, w;
    cd_loader_image_shape(loader, &h, &w);
    const cd_shape *in = &g->nodes[0].shape;
    if (h != in->h || w != in->w || in->c != 3)
        return cd_fail(CD_ERR_VALUE, "the dataset's images are (%d, %d, 3) but the model's input "
                       "is (%d, %d, %d)", h, w, in->h, in->w, in->c);
    for (;;) {
        cd_batch b;
        CD_TRY(cd_loader_next(loader, &b));
        if (b.end_of_epoch) break;
        if (b.n == 0) continue; /* every file of this batch failed (on_error warn/skip) */
        if (!b.labels)
            return cd_fail(CD_ERR_VALUE, "the dataset has no labels (label_mode=None): fit and "
                           "evaluate need labels");
        float loss = 0.f;
        double correct = 0;
        if (train) {
            CD_TRY(cd_graph_train_step(g, b.images, b.labels, b.n, &loss, &correct));
        } else {
            if (*record) *record = cd_feature_record_batch(g, b.n);
            CD_TRY(cd_graph_eval_step(g, b.images, b.labels, b.n, &loss, &correct));
            if (*record) cd_feature_record_done(g, b.labels, b.n);
        }
        stats->batches++;
        stats->samples += b.n;
        stats->loss_sum += (double)loss * b.n;
        stats->correct += correct;
        if (progress && progress(ctx, stats)) {
            stats->stopped = 1;
            break;
        }
    }
    return CD_OK;
}

cd_status cd_graph_run_epoch_keyed(cd_graph *g, cd_loader *loader, int train, uint64_t key,
                                   cd_progress_fn progress, void *ctx, cd_epoch_stats *stats) {
    int record = !train && key != 0 && g->features.limit > 0 && loader;
    if (record && loader) cd_feature_record_begin(g, key, cd_loader_num_batches(loader));
    cd_status s = run_epoch(g, loader, train, &record, progress, ctx, stats);
    if (!train && key != 0 && g->features.limit > 0)
        cd_feature_record_end(g, s == CD_OK && record && !stats->stopped);
    return s;
}

cd_status cd_graph_run_epoch(cd_graph *g, cd_loader *loader, int train, cd_progress_fn progress,
                             void *ctx, cd_epoch_stats *stats) {
    return cd_graph_run_epoch_keyed(g, loader, train, 0, progress, ctx, stats);
}
