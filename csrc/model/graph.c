/* graph.c — building a graph of Keras layers, shape inference, weights access, and running
 * it forward and backward for a batch. Layer maths lives in csrc/nn/, one file per kind. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/runtime.h"
#include "model/graph_internal.h"

static const char *kind_names[CD_LAYER_KIND_COUNT] = {
    "InputLayer", "Conv2D",  "DepthwiseConv2D",        "BatchNormalization",
    "ReLU",       "ZeroPadding2D", "Add", "GlobalAveragePooling2D", "Dropout", "Dense", "Rescaling"};

/* ---- creation ------------------------------------------------------------------------- */

cd_status cd_graph_create(cd_graph **out) {
    CD_TRY(cd_runtime_init());
    cd_graph *g = calloc(1, sizeof *g);
    if (!g) return cd_fail(CD_ERR_MEMORY, "out of memory creating a graph");
    *out = g;
    return CD_OK;
}

static void free_param(cd_param *p) {
    free(p->value);
    free(p->grad);
    for (int s = 0; s < CD_OPT_SLOTS; s++) free(p->slot[s]);
}

void cd_graph_free(cd_graph *g) {
    if (!g) return;
    cd_graph_release_runtime(g);
    for (int i = 0; i < g->num_nodes; i++)
        for (int k = 0; k < g->nodes[i].num_params; k++) free_param(&g->nodes[i].params[k]);
    free(g->nodes);
    free(g);
}

cd_status cd_node_add_param(cd_node *node, const char *name, int ndim, const int *dims,
                            int can_train) {
    cd_param *p = &node->params[node->num_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->size = 1;
    for (int d = 0; d < ndim; d++) {
        p->dims[d] = dims[d];
        p->size *= (size_t)dims[d];
    }
    p->can_train = can_train;
    p->value = cd_calloc(p->size, sizeof(float), "layer weights");
    if (!p->value) return CD_ERR_MEMORY;
    node->num_params++;
    return CD_OK;
}

/* Append a node after validating name and inputs; fills common fields. */
static cd_status append_node(cd_graph *g, cd_layer_kind kind, const char *name, int num_inputs,
                             const int *inputs, cd_node **out) {
    if (!name || !*name) return cd_fail(CD_ERR_VALUE, "layer name must be a non-empty string");
    if (strlen(name) >= CD_MAX_NAME)
        return cd_fail(CD_ERR_VALUE, "layer name too long (max %d): %s", CD_MAX_NAME - 1, name);
    for (int i = 0; i < g->num_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return cd_fail(CD_ERR_VALUE, "duplicate layer name '%s'", name);
    if (kind != CD_LAYER_INPUT && g->num_nodes == 0)
        return cd_fail(CD_ERR_VALUE, "layer '%s': add an input layer first", name);
    if (kind == CD_LAYER_INPUT && g->num_nodes != 0)
        return cd_fail(CD_ERR_VALUE, "layer '%s': a graph has exactly one input layer", name);
    for (int i = 0; i < num_inputs; i++)
        if (inputs[i] < 0 || inputs[i] >= g->num_nodes)
            return cd_fail(CD_ERR_VALUE, "layer '%s': input index %d out of range [0, %d)", name,
                           inputs[i], g->num_nodes);
    cd_graph_release_runtime(g); /* structure changes invalidate prepared state */
    if (g->num_nodes == g->capacity) {
        int cap = g->capacity ? 2 * g->capacity : 64;
        cd_node *nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) return cd_fail(CD_ERR_MEMORY, "out of memory adding layer '%s'", name);
        g->nodes = nodes;
        g->capacity = cap;
    }
    cd_node *node = &g->nodes[g->num_nodes];
    memset(node, 0, sizeof *node);
    node->kind = kind;
    snprintf(node->name, sizeof node->name, "%s", name);
    node->num_inputs = num_inputs;
    for (int i = 0; i < num_inputs; i++) node->inputs[i] = inputs[i];
    node->rank = 3;
    node->trainable = 1;
    node->mode = CD_MODE_INHERIT;
    *out = node;
    return CD_OK;
}

/* Keep the node only once everything about it validated. */
static cd_status commit_node(cd_graph *g, cd_node *node, int *id, cd_status s) {
    if (s != CD_OK) {
        for (int k = 0; k < node->num_params; k++) free_param(&node->params[k]);
        return s;
    }
    *id = g->num_nodes++;
    return CD_OK;
}

static cd_status require_rank3(const cd_graph *g, int input, const char *name) {
    if (g->nodes[input].rank != 3)
        return cd_fail(CD_ERR_VALUE, "layer '%s' needs a 4-D (N, H, W, C) input; '%s' gives 2-D",
                       name, g->nodes[input].name);
    return CD_OK;
}

cd_status cd_graph_add_input(cd_graph *g, const char *name, int h, int w, int c, int *id) {
    if (h < 1 || w < 1 || c < 1 || h > 16384 || w > 16384 || c > 65536)
        return cd_fail(CD_ERR_VALUE, "input '%s': bad shape (%d, %d, %d)", name ? name : "", h, w, c);
    cd_node *node = NULL;
    CD_TRY(append_node(g, CD_LAYER_INPUT, name, 0, NULL, &node));
    node->h = h, node->w = w, node->c = c;
    node->ops = &cd_input_ops;
    return commit_node(g, node, id, CD_OK);
}

static cd_status add_conv(cd_graph *g, cd_layer_kind kind, const char *name, int input,
                          int filters, int kh, int kw, int sh, int sw, const int pad[4],
                          int use_bias, int *id) {
    cd_node *node = NULL;
    const int in[1] = {input};
    CD_TRY(append_node(g, kind, name, 1, in, &node));
    CD_TRY(require_rank3(g, input, name));
    const cd_node *src = &g->nodes[input];
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || kh > 64 || kw > 64)
        return cd_fail(CD_ERR_VALUE, "layer '%s': bad kernel %dx%d or stride %dx%d", name, kh, kw,
                       sh, sw);
    for (int i = 0; i < 4; i++)
        if (pad[i] < 0 || pad[i] >= 64)
            return cd_fail(CD_ERR_VALUE, "layer '%s': bad padding %d", name, pad[i]);
    int oh = (src->h + pad[0] + pad[1] - kh) / sh + 1;
    int ow = (src->w + pad[2] + pad[3] - kw) / sw + 1;
    if (src->h + pad[0] + pad[1] < kh || src->w + pad[2] + pad[3] < kw || oh < 1 || ow < 1)
        return cd_fail(CD_ERR_VALUE, "layer '%s': input %dx%d too small for kernel %dx%d", name,
                       src->h, src->w, kh, kw);
    node->kh = kh, node->kw = kw, node->stride_h = sh, node->stride_w = sw;
    memcpy(node->pad, pad, sizeof node->pad);
    node->use_bias = use_bias;
    node->h = oh, node->w = ow;
    cd_status s;
    if (kind == CD_LAYER_CONV2D) {
        if (filters < 1 || filters > 65536)
            return cd_fail(CD_ERR_VALUE, "layer '%s': bad filters %d", name, filters);
        node->c = filters;
        const int dims[4] = {kh, kw, src->c, filters}; /* HWIO */
        s = cd_node_add_param(node, "kernel", 4, dims, 1);
    } else {
        node->c = src->c;
        const int dims[4] = {kh, kw, src->c, 1}; /* depth multiplier 1 */
        s = cd_node_add_param(node, "depthwise_kernel", 4, dims, 1);
    }
    if (s == CD_OK && use_bias) {
        const int bdims[1] = {node->c};
        s = cd_node_add_param(node, "bias", 1, bdims, 1);
    }
    node->ops = &cd_conv2d_ops;
    return commit_node(g, node, id, s);
}

cd_status cd_graph_add_conv2d(cd_graph *g, const char *name, int input, int filters, int kh,
                              int kw, int sh, int sw, const int pad[4], int use_bias, int *id) {
    return add_conv(g, CD_LAYER_CONV2D, name, input, filters, kh, kw, sh, sw, pad, use_bias, id);
}

cd_status cd_graph_add_depthwise_conv2d(cd_graph *g, const char *name, int input, int kh, int kw,
                                        int sh, int sw, const int pad[4], int use_bias, int *id) {
    return add_conv(g, CD_LAYER_DEPTHWISE_CONV2D, name, input, 0, kh, kw, sh, sw, pad, use_bias,
                    id);
}

static cd_status add_same_shape(cd_graph *g, cd_layer_kind kind, const char *name, int input,
                                const cd_layer_ops *ops, cd_node **out) {
    const int in[1] = {input};
    CD_TRY(append_node(g, kind, name, 1, in, out));
    const cd_node *src = &g->nodes[input];
    (*out)->rank = src->rank;
    (*out)->h = src->h, (*out)->w = src->w, (*out)->c = src->c;
    (*out)->ops = ops;
    return CD_OK;
}

cd_status cd_graph_add_batchnorm(cd_graph *g, const char *name, int input, float epsilon,
                                 float momentum, int *id) {
    cd_node *node = NULL;
    CD_TRY(add_same_shape(g, CD_LAYER_BATCHNORM, name, input, &cd_batchnorm_ops, &node));
    if (!(epsilon > 0.f) || !(momentum >= 0.f && momentum <= 1.f))
        return cd_fail(CD_ERR_VALUE, "layer '%s': need epsilon > 0 and momentum in [0, 1]", name);
    node->epsilon = epsilon, node->momentum = momentum;
    const int dims[1] = {node->c};
    cd_status s = cd_node_add_param(node, "gamma", 1, dims, 1);
    if (s == CD_OK) s = cd_node_add_param(node, "beta", 1, dims, 1);
    if (s == CD_OK) s = cd_node_add_param(node, "moving_mean", 1, dims, 0);
    if (s == CD_OK) s = cd_node_add_param(node, "moving_variance", 1, dims, 0);
    if (s == CD_OK) {
        for (int i = 0; i < node->c; i++) node->params[0].value[i] = 1.f;
        for (int i = 0; i < node->c; i++) node->params[3].value[i] = 1.f;
    }
    return commit_node(g, node, id, s);
}

cd_status cd_graph_add_relu(cd_graph *g, const char *name, int input, float max_value, int *id) {
    cd_node *node = NULL;
    CD_TRY(add_same_shape(g, CD_LAYER_RELU, name, input, &cd_relu_ops, &node));
    if (isnan(max_value)) return cd_fail(CD_ERR_VALUE, "layer '%s': max_value is NaN", name);
    node->max_value = max_value; /* <= 0 or inf: no upper clip */
    return commit_node(g, node, id, CD_OK);
}

cd_status cd_graph_add_zeropad(cd_graph *g, const char *name, int input, const int pad[4],
                               int *id) {
    cd_node *node = NULL;
    CD_TRY(add_same_shape(g, CD_LAYER_ZEROPAD, name, input, &cd_zeropad_ops, &node));
    CD_TRY(require_rank3(g, input, name));
    for (int i = 0; i < 4; i++)
        if (pad[i] < 0 || pad[i] > 4096)
            return cd_fail(CD_ERR_VALUE, "layer '%s': bad padding %d", name, pad[i]);
    memcpy(node->pad, pad, sizeof node->pad);
    node->h += pad[0] + pad[1];
    node->w += pad[2] + pad[3];
    return commit_node(g, node, id, CD_OK);
}

cd_status cd_graph_add_add(cd_graph *g, const char *name, int a, int b, int *id) {
    cd_node *node = NULL;
    const int in[2] = {a, b};
    CD_TRY(append_node(g, CD_LAYER_ADD, name, 2, in, &node));
    const cd_node *x = &g->nodes[a], *y = &g->nodes[b];
    if (x->rank != y->rank || x->h != y->h || x->w != y->w || x->c != y->c)
        return cd_fail(CD_ERR_VALUE, "layer '%s': cannot add shapes (%d, %d, %d) of '%s' and "
                       "(%d, %d, %d) of '%s'", name, x->h, x->w, x->c, x->name, y->h, y->w, y->c,
                       y->name);
    node->rank = x->rank, node->h = x->h, node->w = x->w, node->c = x->c;
    node->ops = &cd_add_ops;
    return commit_node(g, node, id, CD_OK);
}

cd_status cd_graph_add_gap(cd_graph *g, const char *name, int input, int *id) {
    cd_node *node = NULL;
    const int in[1] = {input};
    CD_TRY(append_node(g, CD_LAYER_GAP, name, 1, in, &node));
    CD_TRY(require_rank3(g, input, name));
    node->rank = 1, node->h = node->w = 1, node->c = g->nodes[input].c;
    node->ops = &cd_gap_ops;
    return commit_node(g, node, id, CD_OK);
}

cd_status cd_graph_add_dropout(cd_graph *g, const char *name, int input, float rate, int *id) {
    cd_node *node = NULL;
    CD_TRY(add_same_shape(g, CD_LAYER_DROPOUT, name, input, &cd_dropout_ops, &node));
    if (!(rate >= 0.f && rate < 1.f))
        return cd_fail(CD_ERR_VALUE, "layer '%s': dropout rate must be in [0, 1), got %g", name,
                       (double)rate);
    node->rate = rate;
    return commit_node(g, node, id, CD_OK);
}

cd_status cd_graph_add_dense(cd_graph *g, const char *name, int input, int units, int use_bias,
                             cd_activation act, int *id) {
    cd_node *node = NULL;
    const int in[1] = {input};
    CD_TRY(append_node(g, CD_LAYER_DENSE, name, 1, in, &node));
    if (g->nodes[input].rank != 1)
        return cd_fail(CD_ERR_VALUE, "layer '%s': Dense needs a 2-D (N, C) input; add "
                       "GlobalAveragePooling2D before it", name);
    if (units < 1 || units > 1 << 20)
        return cd_fail(CD_ERR_VALUE, "layer '%s': bad units %d", name, units);
    if (act != CD_ACT_NONE && act != CD_ACT_SOFTMAX && act != CD_ACT_SIGMOID)
        return cd_fail(CD_ERR_VALUE, "layer '%s': unknown activation %d", name, (int)act);
    node->rank = 1, node->h = node->w = 1, node->c = units;
    node->use_bias = use_bias;
    node->activation = act;
    const int kdims[2] = {g->nodes[input].c, units};
    cd_status s = cd_node_add_param(node, "kernel", 2, kdims, 1);
    if (s == CD_OK && use_bias) {
        const int bdims[1] = {units};
        s = cd_node_add_param(node, "bias", 1, bdims, 1);
    }
    node->ops = &cd_dense_ops;
    return commit_node(g, node, id, s);
}

cd_status cd_graph_add_rescale(cd_graph *g, const char *name, int input, float scale,
                               float offset, int *id) {
    cd_node *node = NULL;
    CD_TRY(add_same_shape(g, CD_LAYER_RESCALE, name, input, &cd_rescale_ops, &node));
    if (!isfinite(scale) || !isfinite(offset))
        return cd_fail(CD_ERR_VALUE, "layer '%s': scale and offset must be finite", name);
    node->scale = scale, node->offset = offset;
    return commit_node(g, node, id, CD_OK);
}

/* ---- queries and weights --------------------------------------------------------------- */

int cd_graph_num_layers(const cd_graph *g) { return g ? g->num_nodes : 0; }

static cd_status check_layer(const cd_graph *g, int layer) {
    if (layer < 0 || layer >= g->num_nodes)
        return cd_fail(CD_ERR_VALUE, "layer index %d out of range [0, %d)", layer, g->num_nodes);
    return CD_OK;
}

static cd_status check_weight(const cd_graph *g, int layer, int w) {
    CD_TRY(check_layer(g, layer));
    if (w < 0 || w >= g->nodes[layer].num_params)
        return cd_fail(CD_ERR_VALUE, "layer '%s' has %d weights; index %d is out of range",
                       g->nodes[layer].name, g->nodes[layer].num_params, w);
    return CD_OK;
}

const char *cd_layer_kind_name(cd_layer_kind kind) {
    return kind >= 0 && kind < CD_LAYER_KIND_COUNT ? kind_names[kind] : "?";
}

cd_status cd_graph_layer_info(const cd_graph *g, int layer, cd_layer_info *info) {
    CD_TRY(check_layer(g, layer));
    const cd_node *node = &g->nodes[layer];
    info->name = node->name;
    info->kind = node->kind;
    info->num_inputs = node->num_inputs;
    info->inputs[0] = node->inputs[0], info->inputs[1] = node->inputs[1];
    info->out_rank = node->rank;
    if (node->rank == 3) {
        info->out_shape[0] = node->h, info->out_shape[1] = node->w, info->out_shape[2] = node->c;
    } else {
        info->out_shape[0] = node->c, info->out_shape[1] = info->out_shape[2] = 0;
    }
    info->num_weights = node->num_params;
    info->trainable = node->trainable;
    info->mode = node->mode;
    info->needs_grad = node->needs_grad;
    info->kept = g->have_forward && node->keep;
    info->kept_floats = node->own_cap;
    info->fused_into = g->have_forward ? node->in_block : -1;
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
    CD_TRY(check_weight(g, layer, w));
    const cd_param *p = &g->nodes[layer].params[w];
    info->name = p->name;
    info->ndim = p->ndim;
    memcpy(info->dims, p->dims, sizeof info->dims);
    info->size = p->size;
    info->trainable = p->can_train;
    return CD_OK;
}

cd_status cd_graph_get_weight(const cd_graph *g, int layer, int w, float *dst, size_t n) {
    CD_TRY(check_weight(g, layer, w));
    const cd_param *p = &g->nodes[layer].params[w];
    if (n != p->size)
        return cd_fail(CD_ERR_VALUE, "layer '%s' weight '%s' has %zu values, not %zu",
                       g->nodes[layer].name, p->name, p->size, n);
    memcpy(dst, p->value, n * sizeof(float));
    return CD_OK;
}

cd_status cd_graph_set_weight(cd_graph *g, int layer, int w, const float *src, size_t n) {
    CD_TRY(check_weight(g, layer, w));
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
        g->structure_dirty = 1;
        g->have_backward = 0;
    }
    return CD_OK;
}

cd_status cd_graph_set_mode(cd_graph *g, int layer, cd_mode mode) {
    CD_TRY(check_layer(g, layer));
    if (mode != CD_MODE_INHERIT && mode != CD_MODE_INFERENCE && mode != CD_MODE_TRAINING)
        return cd_fail(CD_ERR_VALUE, "bad mode %d", (int)mode);
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
