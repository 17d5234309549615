/* graph.c — a graph's structure and weights: layers appended by kind (their builders live in
 * nn/, registered in nn/kinds.c), shape queries, weights access, trainable/mode flags.
 * Running it is model/plan.c and model/exec.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/runtime.h"
#include "model/graph_internal.h"

/* ---- creation ------------------------------------------------------------------------- */
cd_status cd_graph_create(cd_graph **out) {
    CD_TRY(cd_runtime_init());
    cd_graph *g = calloc(1, sizeof *g);
    if (!g) return cd_fail(CD_ERR_MEMORY, "out of memory creating a graph");
    g->features.limit = CD_FEATURE_CACHE_BYTES;
    *out = g;
    return CD_OK;
}

static void free_param(cd_param *p) {
    free(p->value);
    free(p->grad);
    for (int s = 0; s < CD_OPT_SLOTS; s++) free(p->slot[s]);
}

/* Free what a node owns: weights and hyperparameters (kernel state is the executor's). */
static void free_node(cd_node *node) {
    for (int k = 0; k < node->num_params; k++) free_param(&node->params[k]);
    free(node->hp);
    free(node->inputs);
    node->hp = NULL;
    node->inputs = NULL;
    node->num_params = 0;
}

void cd_graph_free(cd_graph *g) {
    if (!g) return;
    cd_graph_release_runtime(g);
    for (int i = 0; i < g->num_nodes; i++) free_node(&g->nodes[i]);
    free(g->nodes);
    free(g->rt);
    free(g->io_in);
    free(g->io_shape);
    free(g->io_dx);
    free(g->io_acc);
    free(g->train_params);
    free(g);
}

/* The executor's per-call input arrays (cd_io) hold the widest node's inputs. */
static cd_status grow_io(cd_graph *g, int count) {
    const float **in = realloc(g->io_in, (size_t)count * sizeof *in);
    if (in) g->io_in = in;
    cd_shape *shape = in ? realloc(g->io_shape, (size_t)count * sizeof *shape) : NULL;
    if (shape) g->io_shape = shape;
    float **dx = shape ? realloc(g->io_dx, (size_t)count * sizeof *dx) : NULL;
    if (dx) g->io_dx = dx;
    int *acc = dx ? realloc(g->io_acc, (size_t)count * sizeof *acc) : NULL;
    if (!acc) return cd_fail(CD_ERR_MEMORY, "out of memory for a layer of %d inputs", count);
    g->io_acc = acc;
    g->max_inputs = count;
    return CD_OK;
}

cd_status cd_graph_add_layer(cd_graph *g, const char *kind, const char *name, int num_inputs,
                             const int *inputs, const cd_hparam *hp, int num_hp, int *id) {
    if (!name || !*name) return cd_fail(CD_ERR_VALUE, "layer name must be a non-empty string");
    if (strlen(name) >= CD_MAX_NAME)
        return cd_fail(CD_ERR_VALUE, "layer name too long (max %d): %s", CD_MAX_NAME - 1, name);
    const cd_layer_ops *ops = kind ? cd_find_kind(kind) : NULL;
    if (!ops) return cd_fail(CD_ERR_VALUE, "layer '%s': unknown layer kind '%s'", name, kind ? kind : "");
    for (int i = 0; i < g->num_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return cd_fail(CD_ERR_VALUE, "duplicate layer name '%s'", name);
    const int is_input = ops->max_inputs == 0;
    if (!is_input && g->num_nodes == 0)
        return cd_fail(CD_ERR_VALUE, "layer '%s': add an input layer first", name);
    if (is_input && g->num_nodes != 0)
        return cd_fail(CD_ERR_VALUE, "layer '%s': a graph has exactly one input layer", name);
    if (num_inputs < ops->min_inputs || num_inputs > ops->max_inputs) {
        if (ops->min_inputs == ops->max_inputs)
            return cd_fail(CD_ERR_VALUE, "layer '%s' (%s) takes %d input%s, got %d", name,
                           ops->name, ops->max_inputs, ops->max_inputs == 1 ? "" : "s", num_inputs);
        if (ops->max_inputs >= CD_INPUTS_ANY)
            return cd_fail(CD_ERR_VALUE, "layer '%s' (%s) takes at least %d inputs, got %d", name,
                           ops->name, ops->min_inputs, num_inputs);
        return cd_fail(CD_ERR_VALUE, "layer '%s' (%s) takes %d to %d inputs, got %d", name,
                       ops->name, ops->min_inputs, ops->max_inputs, num_inputs);
    }
    for (int i = 0; i < num_inputs; i++)
        if (inputs[i] < 0 || inputs[i] >= g->num_nodes)
            return cd_fail(CD_ERR_VALUE, "layer '%s': input index %d out of range [0, %d)", name,
                           inputs[i], g->num_nodes);
    if (num_inputs > 0 && !inputs)
        return cd_fail(CD_ERR_VALUE, "layer '%s': NULL inputs", name);
    if (num_hp < 0 || num_hp > 32 || (num_hp && !hp))
        return cd_fail(CD_ERR_VALUE, "layer '%s': bad hyperparameter list", name);
    cd_graph_release_runtime(g); /* structure changes invalidate prepared state */
    if (g->num_nodes == g->capacity) {
        int cap = g->capacity ? 2 * g->capacity : 64;
        cd_node *nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (nodes) g->nodes = nodes;
        cd_rt *rt = nodes ? realloc(g->rt, (size_t)cap * sizeof *rt) : NULL;
        if (!rt) return cd_fail(CD_ERR_MEMORY, "out of memory adding layer '%s'", name);
        g->rt = rt;
        g->capacity = cap;
    }
    cd_node *node = &g->nodes[g->num_nodes];
    memset(node, 0, sizeof *node);
    memset(&g->rt[g->num_nodes], 0, sizeof g->rt[0]);
    node->ops = ops;
    snprintf(node->name, sizeof node->name, "%s", name);
    node->num_inputs = num_inputs;
    node->trainable = 1;
    node->mode = CD_MODE_INHERIT;
    cd_status s = CD_OK;
    /* inputs and their shapes: one array each, the node keeps the first */
    cd_shape *in = num_inputs ? calloc((size_t)num_inputs, sizeof *in) : NULL;
    node->inputs = num_inputs ? calloc((size_t)num_inputs, sizeof *node->inputs) : NULL;
    if (num_inputs && (!in || !node->inputs))
        s = cd_fail(CD_ERR_MEMORY, "out of memory adding layer '%s'", name);
    for (int i = 0; s == CD_OK && i < num_inputs; i++) {
        node->inputs[i] = inputs[i];
        in[i] = g->nodes[inputs[i]].shape;
    }
    if (s == CD_OK && num_inputs > g->max_inputs && grow_io(g, num_inputs) != CD_OK)
        s = CD_ERR_MEMORY;
    if (s == CD_OK && ops->hp_size && !(node->hp = calloc(1, ops->hp_size)))
        s = cd_fail(CD_ERR_MEMORY, "out of memory adding layer '%s'", name);
    cd_hparams h = {name, hp, num_hp, 0};
    if (s == CD_OK) s = ops->build(node, in, &h);
    free(in);
    for (int k = 0; s == CD_OK && k < node->num_params; k++) { /* the declared weights */
        cd_param *p = &node->params[k];
        if (!(p->value = cd_alloc(p->size, sizeof(float), "layer weights"))) s = CD_ERR_MEMORY;
        for (size_t e = 0; s == CD_OK && e < p->size; e++) p->value[e] = p->init;
    }
    for (int k = 0; s == CD_OK && k < num_hp; k++)
        if (!(h.used & (1u << k)))
            s = cd_fail(CD_ERR_VALUE, "layer '%s' (%s) has no hyperparameter '%s'", name,
                        ops->name, hp[k].key);
    if (s != CD_OK) { /* keep the node only once everything about it validated */
        free_node(node);
        return s;
    }
    g->structure_version++;
    *id = g->num_nodes++;
    return CD_OK;
}

/* ---- queries and weights --------------------------------------------------------------- */

int cd_graph_num_layers(const cd_graph *g) { return g ? g->num_nodes : 0; }

static cd_status check_layer(const cd_graph *g, int layer) {
    if (layer < 0 || layer >= g->num_nodes)
        return cd_fail(CD_ERR_VALUE, "layer index %d out of range [0, %d)", layer, g->num_nodes);
    return CD_OK;
}

cd_status cd_check_weight(const cd_graph *g, int layer, int w) {
    CD_TRY(check_layer(g, layer));
    if (w < 0 || w >= g->nodes[layer].num_params)
        return cd_fail(CD_ERR_VALUE, "layer '%s' has %d weights; index %d is out of range",
                       g->nodes[layer].name, g->nodes[layer].num_params, w);
    return CD_OK;
}

cd_status cd_graph_layer_info(const cd_graph *g, int layer, cd_layer_info *info) {
    CD_TRY(check_layer(g, layer));
    const cd_node *node = &g->nodes[layer];
    info->name = node->name;
    info->kind = node->ops->name;
    info->num_inputs = node->num_inputs;
    info->inputs = node->inputs;
    const cd_shape *sh = &node->shape;
    info->out_rank = sh->rank;
    if (sh->rank == 3) {
        info->out_shape[0] = sh->h, info->out_shape[1] = sh->w, info->out_shape[2] = sh->c;
    } else {
        info->out_shape[0] = sh->c, info->out_shape[1] = info->out_shape[2] = 0;
    }
    info->num_weights = node->num_params;
    info->trainable = node->trainable;
    info->mode = node->mode;
    const cd_plan *p = g->plan;
    info->needs_grad = p ? p->needs_grad[layer] : 0;
    info->kept = g->have_forward && p && p->keep_out[layer];
    info->kept_floats = g->rt[layer].own_cap;
    info->fused_into = -1;
    if (g->have_forward && p) {
        const cd_step *st = &p->steps[p->step_of[layer]];
        if (st->kind == CD_STEP_FUSED || st->kind == CD_STEP_TRAIN) info->fused_into = st->first;
    }
    return CD_OK;
}

cd_status cd_graph_find_layer(const cd_graph *g, const char *name, int *layer) {
    for (int i = 0; i < g->num_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0) {
            *layer = i;
            return CD_OK;
        }
    return cd_fail(CD_ERR_VALUE, "no layer named '%s'", name);
}

cd_status cd_graph_weight_info(const cd_graph *g, int layer, int w, cd_weight_info *info) {
    CD_TRY(cd_check_weight(g, layer, w));
    const cd_param *p = &g->nodes[layer].params[w];
    info->name = p->name;
    info->ndim = p->ndim;
    memcpy(info->dims, p->dims, sizeof info->dims);
    info->size = p->size;
    info->trainable = p->can_train;
    return CD_OK;
}

cd_status cd_graph_get_weight(const cd_graph *g, int layer, int w, float *dst, size_t n) {
    CD_TRY(cd_check_weight(g, layer, w));
    const cd_param *p = &g->nodes[layer].params[w];
    if (n != p->size)
        return cd_fail(CD_ERR_VALUE, "layer '%s' weight '%s' has %zu values, not %zu",
                       g->nodes[layer].name, p->name, p->size, n);
    memcpy(dst, p->value, n * sizeof(float));
    return CD_OK;
}

cd_status cd_graph_set_weight(cd_graph *g, int layer, int w, const float *src, size_t n) {
    CD_TRY(cd_check_weight(g, layer, w));
    cd_param *p = &g->nodes[layer].params[w];
    if (n != p->size)
        return cd_fail(CD_ERR_VALUE, "layer '%s' weight '%s' has %zu values, not %zu",
                       g->nodes[layer].name, p->name, p->size, n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return cd_fail(CD_ERR_VALUE, "layer '%s' weight '%s': value %zu is not finite",
                           g->nodes[layer].name, p->name, i);
    memcpy(p->value, src, n * sizeof(float));
    p->version++;
    g->have_forward = g->have_backward = 0;
    return CD_OK;
}

cd_status cd_graph_set_trainable(cd_graph *g, int layer, int trainable) {
    CD_TRY(check_layer(g, layer));
    if (g->nodes[layer].trainable != !!trainable) {
        g->nodes[layer].trainable = !!trainable;
        g->structure_version++;
        g->trainable_dirty = 1;
        g->have_backward = 0;
    }
    return CD_OK;
}

cd_status cd_graph_set_mode(cd_graph *g, int layer, cd_mode mode) {
    CD_TRY(check_layer(g, layer));
    if (mode != CD_MODE_INHERIT && mode != CD_MODE_INFERENCE && mode != CD_MODE_TRAINING)
        return cd_fail(CD_ERR_VALUE, "bad mode %d", (int)mode);
    if (g->nodes[layer].mode != mode) g->structure_version++;
    g->nodes[layer].mode = mode;
    return CD_OK;
}

cd_status cd_graph_set_seed(cd_graph *g, uint64_t seed) {
    g->seed = seed;
    return CD_OK;
}

int64_t cd_graph_step_count(const cd_graph *g) { return g->step; }

/* ---- trainability ---------------------------------------------------------------------- */

int cd_node_trains(const cd_node *node) {
    if (!node->trainable) return 0;
    for (int k = 0; k < node->num_params; k++)
        if (node->params[k].can_train) return 1;
    return 0;
}

cd_param *cd_next_trainable(cd_graph *g, int *layer, int *w) {
    for (; *layer < g->num_nodes; (*layer)++, *w = -1) {
        cd_node *node = &g->nodes[*layer];
        if (!cd_node_trains(node)) continue;
        while (++*w < node->num_params)
            if (node->params[*w].can_train) return &node->params[*w];
    }
    return NULL;
}
