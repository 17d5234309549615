/* features.c — evaluation work done once: the feature cache.
 *
 * An evaluation epoch's images are not augmented and the layers below an evaluation plan's
 * cache_cut node (model/plan.c) hold no weights that train, so that node's output for each
 * image is the same every epoch while nothing below it changes. The first evaluation epoch
 * under a caller's key records it (exec.c's tap copies it out as it is made, batch by batch,
 * in the plan's storage type, with the labels); a later epoch under the same key replays:
 * cd_graph_forward_from runs only the steps above the cut on the held outputs, the same
 * kernels at the same batch and micro-batch sizes on the same values, so the same bits.
 *
 * The record is valid while all of these are unchanged: the key (the caller's token for the
 * dataset, its sample order and batch size), the graph's structure version (layers,
 * trainable, modes), the weight versions of nodes [0, cut] (every write bumps one: set_weight,
 * optimizer steps, moving statistics), the precision generation, the thread count and the
 * loss (its label width). A record larger than the limit (features + labels, bytes;
 * CD_FEATURE_CACHE_BYTES by default, 0: off) is dropped and the epochs run in full.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/graph_internal.h"

uint64_t cd_weights_version(const cd_graph *g, int last) {
    uint64_t v = 0;
    for (int i = 0; i <= last && i < g->num_nodes; i++)
        for (int k = 0; k < g->nodes[i].num_params; k++) v += g->nodes[i].params[k].version;
    return v;
}

void cd_feature_cache_free(cd_feature_cache *c) {
    free(c->n);
    free(c->cut);
    free(c->at);
    free(c->features);
    free(c->labels);
    c->n = c->cut = NULL;
    c->at = NULL;
    c->features = NULL;
    c->labels = NULL;
    c->valid = c->num_batches = c->cap_batches = 0;
    c->feature_bytes = c->feature_cap = c->label_count = c->label_cap = 0;
}

cd_status cd_graph_set_feature_cache_limit(cd_graph *g, size_t bytes) {
    g->features.limit = bytes;
    if (g->features.feature_bytes + g->features.label_count * sizeof(float) > bytes)
        cd_feature_cache_free(&g->features);
    return CD_OK;
}

void cd_graph_feature_cache_info(const cd_graph *g, cd_feature_cache_info *info) {
    const cd_feature_cache *c = &g->features;
    info->valid = c->valid;
    info->cut = c->valid && c->num_batches > 0 ? c->cut[0] : 0;
    info->bytes = c->valid ? c->feature_bytes + c->label_count * sizeof(float) : 0;
    info->limit = c->limit;
    info->hits = c->hits;
    info->records = c->records;
}

static int key_holds(const cd_graph *g, const cd_feature_cache *c, uint64_t key) {
    return c->valid && c->num_batches > 0 && c->key == key &&
           c->structure_version == g->structure_version &&
           c->precision_generation == cd_precision_generation() &&
           c->threads == cd_get_num_threads() && c->loss == (int)g->loss &&
           c->weights_version == cd_weights_version(g, c->cut[0]);
}

cd_status cd_graph_eval_epoch_cached(cd_graph *g, uint64_t key, cd_progress_fn progress,
                                     void *ctx, cd_epoch_stats *stats, int *hit) {
    memset(stats, 0, sizeof *stats);
    *hit = 0;
    cd_feature_cache *c = &g->features;
    if (key == 0 || !key_holds(g, c, key)) return CD_OK;
    *hit = 1;
    c->hits++;
    for (int k = 0; k < c->num_batches; k++) {
        const int n = c->n[k];
        float loss = 0.f;
        double correct = 0;
        CD_TRY(cd_graph_eval_from(g, n, c->cut[k], c->features + c->at[2 * k],
                                  c->labels + c->at[2 * k + 1], &loss, &correct));
        stats->batches++;
        stats->samples += n;
        stats->loss_sum += (double)loss * n;
        stats->correct += correct;
        if (progress && progress(ctx, stats)) {
            stats->stopped = 1;
            break;
        }
    }
    return CD_OK;
}

/* ---- recording (called by model/epoch.c around each evaluation batch) ---- */

void cd_feature_record_begin(cd_graph *g, uint64_t key, int64_t batches) {
    cd_feature_cache *c = &g->features;
    c->expect_batches = batches;
    c->valid = 0;
    c->num_batches = 0;
    c->feature_bytes = c->label_count = 0;
    c->key = key;
    c->structure_version = g->structure_version;
    c->precision_generation = cd_precision_generation();
    c->threads = cd_get_num_threads();
    c->loss = (int)g->loss;
}

static int grow(void **buf, size_t *cap, size_t need, size_t unit) {
    if (need <= *cap) return 0;
    size_t want = *cap ? *cap : need;
    while (want < need) want *= 2;
    void *p = realloc(*buf, want * unit);
    if (!p) return 1;
    *buf = p;
    *cap = want;
    return 0;
}

/* Before batch n's forward: room for its cut output, the tap set. Returns 0 when the record
 * is abandoned (no cut, over the limit, out of memory): the epoch goes on uncached. */
int cd_feature_record_batch(cd_graph *g, int n) {
    cd_feature_cache *c = &g->features;
    g->tap_node = 0;
    cd_plan *p = cd_plan_get(g, n, 0, CD_KEEP_LAST);
    const int cut = p ? p->cache_cut : 0;
    if (cut < 1 || (c->num_batches > 0 && cut != c->cut[0])) return 0;
    const size_t bytes = (size_t)n * cd_node_sample_size(&g->nodes[cut]) * (p->out_bf16[cut] ? 2 : 4);
    const size_t labels = (size_t)n * (size_t)cd_graph_label_width(g);
    const size_t total = c->feature_bytes + bytes + (c->label_count + labels) * sizeof(float);
    if (total > c->limit) return 0;
    /* the first batch sizes the record for the loader's batches (one allocation) */
    const size_t ahead = c->num_batches == 0 && c->expect_batches > 1 ? (size_t)c->expect_batches : 1;
    const size_t room = (bytes + labels * sizeof(float)) * ahead <= c->limit ? ahead : 1;
    if (grow((void **)&c->features, &c->feature_cap, c->feature_bytes + bytes * room, 1) ||
        grow((void **)&c->labels, &c->label_cap, c->label_count + labels * room, sizeof(float)))
        return 0;
    size_t cap_b = (size_t)c->cap_batches;
    if ((size_t)c->num_batches + 1 > cap_b) {
        size_t want = cap_b ? cap_b * 2 : 64;
        int *nn = realloc(c->n, want * sizeof(int));
        if (nn) c->n = nn;
        int *cc = realloc(c->cut, want * sizeof(int));
        if (cc) c->cut = cc;
        size_t *aa = realloc(c->at, 2 * want * sizeof(size_t));
        if (aa) c->at = aa;
        if (!nn || !cc || !aa) return 0;
        c->cap_batches = (int)want;
    }
    const int k = c->num_batches;
    if (k == 0) c->weights_version = cd_weights_version(g, cut);
    c->n[k] = n;
    c->cut[k] = cut;
    c->at[2 * k] = c->feature_bytes;
    c->at[2 * k + 1] = c->label_count;
    g->tap_node = cut;
    g->tap_offset = 0;
    g->tap_dst = c->features + c->feature_bytes;
    return 1;
}

/* After batch k's forward ran (tap filled) on these labels. */
void cd_feature_record_done(cd_graph *g, const float *labels, int n) {
    cd_feature_cache *c = &g->features;
    const int k = c->num_batches;
    const size_t nl = (size_t)n * (size_t)cd_graph_label_width(g);
    memcpy(c->labels + c->label_count, labels, nl * sizeof(float));
    c->label_count += nl;
    c->feature_bytes += (size_t)n * cd_node_sample_size(&g->nodes[c->cut[k]]) *
                        (g->plan->out_bf16[c->cut[k]] ? 2 : 4);
    c->num_batches++;
    g->tap_node = 0;
}

/* The epoch is over: the record becomes valid when every batch was recorded and nothing
 * below the cut changed meanwhile. */
void cd_feature_record_end(cd_graph *g, int complete) {
    cd_feature_cache *c = &g->features;
    g->tap_node = 0;
    if (!complete || c->num_batches == 0) {
        cd_feature_cache_free(c);
        return;
    }
    c->valid = c->weights_version == cd_weights_version(g, c->cut[0]) &&
               c->structure_version == g->structure_version &&
               c->precision_generation == cd_precision_generation();
    if (c->valid) c->records++;
    else cd_feature_cache_free(c);
}
