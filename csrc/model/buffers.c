/* buffers.c — where outputs and gradients live during a run. An output is kept (the node's
 * own buffer) only when something reads it after the forward: a backward that needs it,
 * get_output (CD_KEEP_ALL), or the loss (last layer). The others live in a few pooled
 * buffers, released after their last reader ran, so the frozen part of the network costs no
 * activation memory. Gradients borrow the same pool during backward. */
#include <stdlib.h>

#include "core/buffers.h"
#include "core/error.h"
#include "model/graph_internal.h"

/* The smallest free buffer that fits, else a free one grown to fit. Buffers only grow and a
 * run's sequence of requests repeats batch after batch, so after the first pass nothing is
 * allocated, and each buffer is only as large as the largest tensor it ever held (a bf16
 * tensor asks for half its element count). NULL with *slot = -1 when all are live (a wide
 * graph) or memory ran out (*status). */
float *cd_take_pooled(cd_graph *g, size_t count, int *slot, cd_status *status) {
    *slot = -1;
    *status = CD_OK;
    int fit = -1, grow = -1;
    for (int k = 0; k < CD_POOL_SLOTS; k++) {
        if (g->pool_busy[k]) continue;
        if (g->pool_cap[k] >= count) {
            if (fit < 0 || g->pool_cap[k] < g->pool_cap[fit]) fit = k;
        } else if (grow < 0 || g->pool_cap[k] > g->pool_cap[grow]) {
            grow = k; /* the largest that is too small: the least memory thrown away */
        }
    }
    int k = fit >= 0 ? fit : grow;
    if (k < 0) return NULL;
    if (fit < 0) {
        free(g->pool[k]);
        g->pool_cap[k] = 0;
        g->pool[k] = cd_alloc(count, sizeof(float), "activations");
        if (!g->pool[k]) {
            *status = CD_ERR_MEMORY;
            return NULL;
        }
        g->pool_cap[k] = count;
    }
    g->pool_busy[k] = 1;
    *slot = k;
    return g->pool[k];
}

void cd_release_pool(cd_graph *g) {
    for (int k = 0; k < CD_POOL_SLOTS; k++) g->pool_busy[k] = 0;
}

size_t cd_sample_bytes(const cd_graph *g, int i) {
    return cd_node_sample_size(&g->nodes[i]) * (g->plan->out_bf16[i] ? 2 : sizeof(float));
}

size_t cd_output_floats(const cd_graph *g, int i, int n) {
    return ((size_t)n * cd_sample_bytes(g, i) + sizeof(float) - 1) / sizeof(float);
}

cd_status cd_assign_output(cd_graph *g, int i) {
    cd_rt *rt = &g->rt[i];
    rt->pool_slot = -1;
    if (rt->boundary) return CD_OK; /* out already points at this micro-batch's slice */
    const size_t count = cd_output_floats(g, i, g->batch);
    if (!g->plan->keep_out[i]) {
        cd_status s;
        rt->out = cd_take_pooled(g, count, &rt->pool_slot, &s);
        if (s != CD_OK) return s;
        if (rt->out) return CD_OK;
        /* every pooled buffer is live: fall back to a dedicated one */
    }
    if (cd_grow_floats(&rt->own, &rt->own_cap, count, "layer outputs"))
        return cd_fail(CD_ERR_MEMORY, "out of memory for the outputs of layer '%s' (batch %d)",
                       g->nodes[i].name, g->batch);
    rt->out = rt->own;
    return CD_OK;
}

void cd_release_inputs(cd_graph *g, int i) {
    const cd_node *node = &g->nodes[i];
    for (int j = 0; j < node->num_inputs; j++) {
        const int src = node->inputs[j];
        if (g->rt[src].pool_slot >= 0 && g->plan->last_use[src] == i)
            g->pool_busy[g->rt[src].pool_slot] = 0;
    }
}

cd_status cd_take_dout(cd_graph *g, int i) {
    cd_rt *rt = &g->rt[i];
    const size_t count = (size_t)g->batch * cd_node_sample_size(&g->nodes[i]);
    cd_status s;
    rt->dout = cd_take_pooled(g, count, &rt->pool_slot, &s);
    if (s != CD_OK) return s;
    if (rt->dout) return CD_OK;
    /* every pooled buffer is live: a dedicated one */
    if (cd_grow_floats(&rt->own_dout, &rt->dout_cap, count, "gradients")) return CD_ERR_MEMORY;
    rt->dout = rt->own_dout;
    return CD_OK;
}

void cd_give_back_dout(cd_graph *g, int i) {
    cd_rt *rt = &g->rt[i];
    if (rt->pool_slot >= 0) g->pool_busy[rt->pool_slot] = 0;
    rt->pool_slot = -1;
    rt->dout = NULL;
}
