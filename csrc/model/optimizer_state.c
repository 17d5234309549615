/* optimizer_state.c — a graph's optimizer: the list of weights it updates (a trainable
 * layer's trainable weights, in graph order), its step count, and its state to save and
 * restore (catdog.h). The update rules are optim/optimizer.c's. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/graph_internal.h"
#include "optim/optimizer.h"

cd_status cd_optimizer_reset(cd_graph *g) {
    for (int i = 0; i < g->num_nodes; i++)
        for (int k = 0; k < g->nodes[i].num_params; k++) cd_optimizer_clear(&g->nodes[i].params[k]);
    g->opt_iterations = 0;
    return CD_OK;
}

cd_status cd_trainable_params(cd_graph *g, cd_param ***out, int *count) {
    if (!g->train_params || g->train_params_version != g->structure_version) {
        int n = 0, layer = 0, w = -1;
        while (cd_next_trainable(g, &layer, &w)) n++;
        cd_param **list = realloc(g->train_params, (size_t)(n ? n : 1) * sizeof *list);
        if (!list) return cd_fail(CD_ERR_MEMORY, "out of memory listing %d weights", n);
        g->train_params = list;
        n = 0, layer = 0, w = -1;
        for (cd_param *p; (p = cd_next_trainable(g, &layer, &w));) list[n++] = p;
        g->num_train_params = n;
        g->train_params_version = g->structure_version;
    }
    *out = g->train_params;
    *count = g->num_train_params;
    return CD_OK;
}

cd_status cd_optimizer_apply(cd_graph *g) {
    cd_param **params;
    int count;
    CD_TRY(cd_trainable_params(g, &params, &count));
    const int64_t t = g->opt_iterations + 1;
    CD_TRY(cd_optimizer_update(&g->opt, params, count, t));
    g->opt_iterations = t;
    return CD_OK;
}

/* ---- the state, to save and restore it (catdog.h) ---- */
int cd_graph_opt_slots(const cd_graph *g) { return g->compiled ? cd_optimizer_slots(&g->opt) : 0; }

static cd_status opt_param(const cd_graph *g, int layer, int w, int slot, size_t n,
                           const cd_param **out) {
    if (!g->compiled) return cd_fail(CD_ERR_STATE, "the graph has no compiled optimizer");
    CD_TRY(cd_check_weight(g, layer, w));
    const cd_node *node = &g->nodes[layer];
    if (slot < 0 || slot >= cd_graph_opt_slots(g))
        return cd_fail(CD_ERR_VALUE, "the optimizer keeps %d slots per weight; %d is out of range",
                       cd_graph_opt_slots(g), slot);
    const cd_param *p = &node->params[w];
    if (n != p->size)
        return cd_fail(CD_ERR_VALUE, "optimizer slot of '%s/%s' has %zu values, not %zu",
                       node->name, p->name, p->size, n);
    *out = p;
    return CD_OK;
}

cd_status cd_graph_get_opt_slot(const cd_graph *g, int layer, int w, int slot, float *dst,
                                size_t n) {
    const cd_param *p;
    CD_TRY(opt_param(g, layer, w, slot, n, &p));
    if (p->slot[slot]) memcpy(dst, p->slot[slot], n * sizeof(float));
    else memset(dst, 0, n * sizeof(float));
    return CD_OK;
}

cd_status cd_graph_set_opt_slot(cd_graph *g, int layer, int w, int slot, const float *src,
                                size_t n) {
    const cd_param *cp;
    CD_TRY(opt_param(g, layer, w, slot, n, &cp));
    cd_param *p = &g->nodes[layer].params[w];
    if (!p->slot[slot]) {
        p->slot[slot] = cd_calloc(p->size, sizeof(float), "optimizer state");
        if (!p->slot[slot]) return CD_ERR_MEMORY;
    }
    memcpy(p->slot[slot], src, n * sizeof(float));
    return CD_OK;
}

int64_t cd_graph_opt_iterations(const cd_graph *g) { return g->opt_iterations; }

cd_status cd_graph_set_opt_iterations(cd_graph *g, int64_t iterations) {
    if (!g->compiled) return cd_fail(CD_ERR_STATE, "the graph has no compiled optimizer");
    if (iterations < 0) return cd_fail(CD_ERR_VALUE, "iterations must be >= 0");
    g->opt_iterations = iterations;
    return CD_OK;
}
