/* states.c — kernel states (oneDNN primitives, buffers) per node, kept for the last
 * CD_STATE_SLOTS batch sizes, so an epoch's full batches and its last partial batch both
 * reuse primitives built once; rebuilt when the precision changes. */
#include <stdlib.h>

#include "core/buffers.h"
#include "core/error.h"
#include "core/runtime.h"
#include "model/graph_internal.h"

static void release_state(cd_node *node, void *state) {
    if (!state) return;
    node->state = state;
    if (node->ops->release) node->ops->release(node);
    else free(node->state);
    node->state = NULL;
}

/* Drop every node's prepared state (all batch sizes) and caches: the next run rebuilds. */
void cd_release_states(cd_graph *g) {
    for (int i = 0; i < g->num_nodes; i++) {
        cd_node *node = &g->nodes[i];
        cd_rt *rt = &g->rt[i];
        for (int s = 0; s < CD_STATE_SLOTS; s++) {
            release_state(node, rt->state[s]);
            rt->state[s] = NULL;
            rt->state_batch[s] = 0;
        }
        for (int s = 0; s < CD_MICRO_STATES; s++) {
            release_state(node, rt->micro_state[s]);
            rt->micro_state[s] = NULL;
            rt->micro_batch[s] = 0;
        }
        if (node->ops->release_cache) node->ops->release_cache(node);
        node->state = NULL;
    }
    for (int s = 0; s < CD_STATE_SLOTS; s++) g->state_lru[s] = 0;
    g->batch = 0;
}

/* Node's input shapes into the graph's io array (one prepare at a time). */
static const cd_shape *input_shapes(cd_graph *g, const cd_node *node) {
    for (int j = 0; j < node->num_inputs; j++) g->io_shape[j] = g->nodes[node->inputs[j]].shape;
    return g->io_shape;
}

/* Make the state slot for batch n current: reuse it, or rebuild the least recently used. */
static cd_status activate_states(cd_graph *g, int n) {
    int slot = -1;
    for (int s = 0; s < CD_STATE_SLOTS; s++)
        if (g->state_lru[s] == n) slot = s;
    int fresh = slot < 0;
    if (fresh) slot = CD_STATE_SLOTS - 1; /* evict the oldest */
    /* move slot to the front of the LRU order */
    int held = fresh ? n : g->state_lru[slot];
    for (int s = slot; s > 0; s--) g->state_lru[s] = g->state_lru[s - 1];
    g->state_lru[0] = held;
    for (int i = 0; i < g->num_nodes; i++) {
        cd_node *node = &g->nodes[i];
        cd_rt *rt = &g->rt[i];
        /* node slots follow the same permutation: rotate them identically */
        void *st = rt->state[slot];
        int b = rt->state_batch[slot];
        for (int s = slot; s > 0; s--) {
            rt->state[s] = rt->state[s - 1];
            rt->state_batch[s] = rt->state_batch[s - 1];
        }
        rt->state[0] = st;
        rt->state_batch[0] = b;
        if (fresh || rt->state_batch[0] != n) {
            release_state(node, rt->state[0]);
            rt->state[0] = NULL;
            rt->state_batch[0] = 0;
            if (node->ops->prepare) {
                node->state = NULL;
                cd_status s = node->ops->prepare(node, input_shapes(g, node), n);
                rt->state[0] = node->state;
                if (s != CD_OK) {
                    g->state_lru[0] = 0;
                    return s;
                }
            }
            rt->state_batch[0] = n;
        }
        node->state = rt->state[0];
    }
    return CD_OK;
}

/* Kernel states and scratch for batch size n (graph_internal.h). */
cd_status cd_prepare_states(cd_graph *g, int n) {
    if (g->precision_generation != cd_precision_generation()) { /* fp32 <-> bf16: rebuild */
        cd_release_states(g);
        g->precision_generation = cd_precision_generation();
    }
    if (n != g->batch) {
        size_t largest = 0;
        for (int i = 0; i < g->num_nodes; i++) {
            size_t c = (size_t)n * cd_node_sample_size(&g->nodes[i]);
            if (c > largest) largest = c;
        }
        if (cd_grow_floats(&g->scratch, &g->scratch_count, largest, "scratch")) return CD_ERR_MEMORY;
        g->batch = 0;
        CD_TRY(activate_states(g, n));
        g->batch = n;
    }
    return CD_OK;
}


/* A segment's layer: its state for m samples from the node's own micro-batch slots (built
 * once; the graph's slots stay prepared for the whole batch). */
cd_status cd_use_micro_state(cd_graph *g, int i, int m) {
    cd_node *node = &g->nodes[i];
    cd_rt *rt = &g->rt[i];
    if (!node->ops->prepare) return CD_OK;
    int slot = -1;
    for (int s = 0; s < CD_MICRO_STATES; s++)
        if (rt->micro_batch[s] == m) slot = s;
    if (slot < 0) {
        slot = 0;
        for (int s = 0; s < CD_MICRO_STATES; s++)
            if (rt->micro_batch[s] == 0) slot = s;
        release_state(node, rt->micro_state[slot]);
        rt->micro_state[slot] = NULL;
        rt->micro_batch[slot] = 0;
        node->state = NULL;
        cd_status st = node->ops->prepare(node, input_shapes(g, node), m);
        rt->micro_state[slot] = node->state;
        if (st != CD_OK) return st;
        rt->micro_batch[slot] = m;
    }
    node->state = rt->micro_state[slot];
    return CD_OK;
}

void cd_use_batch_state(cd_graph *g, int i) { g->nodes[i].state = g->rt[i].state[0]; }
