/* run.c — running a graph: per-batch-size plans, output buffers, forward and backward.
 *
 * Plans: each layer's prepared state (oneDNN primitives) is kept for the last
 * CD_PLAN_SLOTS batch sizes, so an epoch's full batches and its last partial batch both
 * reuse primitives built once.
 * Buffers: an output is kept (own buffer) only when something reads it after the forward:
 * a backward that needs it, get_output (CD_KEEP_ALL), or the loss (last layer). The others
 * live in a few pooled buffers, released after their last reader ran, so the frozen part of
 * the network costs no activation memory.
 * Micro-batches: in training steps, predict and evaluate, the frozen prefix of fused blocks
 * runs CD_MICRO_BATCH samples at a time, so its widest activations (the first blocks at full
 * resolution) need a quarter of the memory at batch 32 and stay in the last-level cache
 * between layers (measured: inference ~15% faster as well).
 * Backward runs only through layers with needs_grad: those with trainable weights and
 * everything above them.
 * Micro-batched training: when every layer above the frozen prefix treats samples
 * independently (BatchNormalization in inference mode, as the lab's base_model(x,
 * training=False)), a training step runs that part forward and backward
 * CD_TRAIN_MICRO_BATCH (16) samples at a time and sums the weight gradients, so it keeps the
 * activations of 16 samples for backward instead of the whole batch's.
 * Trainable blocks: in training forwards, a trainable Conv -> BN (inference mode) -> ReLU6
 * runs as one convolution with BN folded into its weights (conv_fused.c), so backward reads
 * only the conv's input and the block's output (fine-tuning from layer 100 at batch 32 keeps
 * 41 MB; 134 MB layer by layer on the whole batch). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/runtime.h"
#include "model/graph_internal.h"
#include "nn/conv_fused.h"

/* ---- plans --------------------------------------------------------------------------- */

static void release_state(cd_node *node, void *state) {
    if (!state) return;
    node->state = state;
    if (node->ops->release) node->ops->release(node);
    else free(node->state);
    node->state = NULL;
}

/* Drop every node's prepared state (all batch sizes) and fused blocks: the next run rebuilds. */
static void release_plans(cd_graph *g) {
    for (int i = 0; i < g->num_nodes; i++) {
        cd_node *node = &g->nodes[i];
        for (int s = 0; s < CD_PLAN_SLOTS; s++) {
            release_state(node, node->plan_state[s]);
            node->plan_state[s] = NULL;
            node->plan_batch[s] = 0;
        }
        cd_conv_fused_release(node);
        node->state = NULL;
    }
    for (int s = 0; s < CD_PLAN_SLOTS; s++) g->plan_lru[s] = 0;
    g->batch = 0;
}

void cd_graph_release_runtime(cd_graph *g) {
    release_plans(g);
    for (int i = 0; i < g->num_nodes; i++) {
        cd_node *node = &g->nodes[i];
        free(node->own);
        free(node->own_dout);
        node->own = node->own_dout = node->dout = node->out = NULL;
        node->own_cap = node->dout_cap = 0;
    }
    for (int k = 0; k < CD_POOL_SLOTS; k++) cd_drop_floats(&g->pool[k], &g->pool_cap[k]);
    cd_drop_floats(&g->scratch, &g->scratch_count);
    cd_drop_floats(&g->dlogits, &g->dlogits_count);
    cd_drop_floats(&g->grad_spare, &g->grad_spare_count);
    cd_drop_floats(&g->logits_all, &g->logits_all_count);
    cd_drop_floats(&g->probe, &g->probe_count);
    g->have_forward = g->have_backward = 0;
}

/* Make the plan slot for batch n current: reuse it, or rebuild the least recently used. */
static cd_status activate_plan(cd_graph *g, int n) {
    int slot = -1;
    for (int s = 0; s < CD_PLAN_SLOTS; s++)
        if (g->plan_lru[s] == n) slot = s;
    int fresh = slot < 0;
    if (fresh) slot = CD_PLAN_SLOTS - 1; /* evict the oldest */
    /* move slot to the front of the LRU order */
    int held = fresh ? n : g->plan_lru[slot];
    for (int s = slot; s > 0; s--) g->plan_lru[s] = g->plan_lru[s - 1];
    g->plan_lru[0] = held;
    for (int i = 0; i < g->num_nodes; i++) {
        cd_node *node = &g->nodes[i];
        /* node slots follow the same permutation: rotate them identically */
        void *st = node->plan_state[slot];
        int b = node->plan_batch[slot];
        for (int s = slot; s > 0; s--) {
            node->plan_state[s] = node->plan_state[s - 1];
            node->plan_batch[s] = node->plan_batch[s - 1];
        }
        node->plan_state[0] = st;
        node->plan_batch[0] = b;
        if (fresh || node->plan_batch[0] != n) {
            release_state(node, node->plan_state[0]);
            node->plan_state[0] = NULL;
            node->plan_batch[0] = 0;
            if (node->ops->prepare) {
                node->state = NULL;
                cd_status s = node->ops->prepare(g, node, n);
                node->plan_state[0] = node->state;
                if (s != CD_OK) {
                    g->plan_lru[0] = 0;
                    return s;
                }
            }
            node->plan_batch[0] = n;
        }
        node->state = node->plan_state[0];
    }
    return CD_OK;
}

/* Which nodes a gradient flows through: those with trainable weights (or the probed node,
 * see cd_graph_output_gradient) and all above them. */
static void mark_needs_grad(cd_graph *g) {
    for (int i = 0; i < g->num_nodes; i++) {
        cd_node *node = &g->nodes[i];
        node->needs_grad = cd_node_trains(node) || i + 1 == g->grad_probe;
        for (int j = 0; j < node->num_inputs; j++)
            if (g->nodes[node->inputs[j]].needs_grad) node->needs_grad = 1;
    }
}

int cd_grow_floats(float **buf, size_t *cap, size_t count, const char *what) {
    if (*cap >= count) return 0;
    free(*buf);
    *cap = 0;
    *buf = cd_alloc(count, sizeof(float), what);
    if (!*buf) return -1;
    *cap = count;
    return 0;
}

void cd_drop_floats(float **buf, size_t *cap) {
    free(*buf);
    *buf = NULL;
    *cap = 0;
}

static cd_status prepare(cd_graph *g, int n) {
    if (g->precision_generation != cd_precision_generation()) { /* fp32 <-> bf16: rebuild */
        release_plans(g);
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
        CD_TRY(activate_plan(g, n));
        g->batch = n;
    }
    if (g->structure_dirty) g->structure_dirty = 0;
    mark_needs_grad(g);
    return CD_OK;
}

/* Does the node's backward read its inputs' values? (ReLU reads its output instead; add,
 * padding, pooling, dropout and rescaling only need shapes; a convolution needs its input
 * for the weight gradient.) */
static int reads_inputs(const cd_node *node) {
    switch (node->kind) {
        case CD_LAYER_BATCHNORM:
        case CD_LAYER_DENSE: return 1;
        case CD_LAYER_CONV2D:
        case CD_LAYER_DEPTHWISE_CONV2D: return cd_node_trains(node);
        default: return 0;
    }
}

/* Does node i's backward read its own output? (ReLU; Dense through softmax/sigmoid.) */
static int reads_own_output(const cd_node *node) {
    return node->kind == CD_LAYER_RELU ||
           (node->kind == CD_LAYER_DENSE && node->activation != CD_ACT_NONE);
}

static void plan_keep(cd_graph *g, int keep_kind) {
    for (int i = 0; i < g->num_nodes; i++) {
        g->nodes[i].last_use = i;
        g->nodes[i].keep = keep_kind == CD_KEEP_ALL;
    }
    for (int i = 0; i < g->num_nodes; i++) {
        cd_node *node = &g->nodes[i];
        for (int j = 0; j < node->num_inputs; j++) {
            cd_node *src = &g->nodes[node->inputs[j]];
            if (i > src->last_use) src->last_use = i;
            if (keep_kind == CD_KEEP_FOR_BACKWARD && node->needs_grad && reads_inputs(node))
                src->keep = 1;
        }
        if (keep_kind == CD_KEEP_FOR_BACKWARD && node->needs_grad && reads_own_output(node))
            node->keep = 1;
    }
    g->nodes[g->num_nodes - 1].keep = 1;
}

/* A free pooled buffer of at least `count` floats (marked busy, index in *slot): the smallest
 * free one that fits, else a free one grown to fit. Buffers only grow and a run's sequence
 * of requests repeats batch after batch, so after the first pass nothing is allocated, and
 * each buffer is only as large as the largest tensor it ever held (a bf16 tensor asks for
 * half its element count). NULL with *slot = -1 when all are live (a wide graph) or memory
 * ran out (*status). */
static float *take_pooled(cd_graph *g, size_t count, int *slot, cd_status *status) {
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

/* Bytes of one sample of the node's output as stored (float32, or bfloat16: out_bf16). */
static size_t sample_bytes(const cd_node *node) {
    return cd_node_sample_size(node) * (node->out_bf16 ? 2 : sizeof(float));
}

/* Floats of storage for n samples of the node's output. */
static size_t output_floats(const cd_node *node, int n) {
    return ((size_t)n * sample_bytes(node) + sizeof(float) - 1) / sizeof(float);
}

static cd_status assign_output(cd_graph *g, cd_node *node) {
    node->pool_slot = -1;
    if (node->boundary) return CD_OK; /* out already points at this micro-batch's slice */
    const size_t count = output_floats(node, g->batch);
    if (!node->keep) {
        cd_status s;
        node->out = take_pooled(g, count, &node->pool_slot, &s);
        if (s != CD_OK) return s;
        if (node->out) return CD_OK;
        /* every pooled buffer is live: fall back to a dedicated one */
    }
    if (cd_grow_floats(&node->own, &node->own_cap, count, "layer outputs"))
        return cd_fail(CD_ERR_MEMORY, "out of memory for the outputs of layer '%s' (batch %d)",
                       node->name, g->batch);
    node->out = node->own;
    return CD_OK;
}

/* Effective training flag: the nested-model override, and the TF2 rule that a
 * non-trainable BatchNormalization always runs in inference mode. */
static int node_mode(const cd_node *node, int training) {
    int mode = node->mode == CD_MODE_INHERIT ? training : node->mode == CD_MODE_TRAINING;
    if (node->kind == CD_LAYER_BATCHNORM && !node->trainable) mode = 0;
    return mode;
}

/* Can conv i run as one fused inference block with the BN after it (and a ReLU or Add)?
 * Only where no gradient flows, BN uses its moving statistics, and nobody else reads the
 * conv's or BN's output. Returns CD_FUSE_* (NONE: run layer by layer). */
static int fusion_at(const cd_graph *g, int i, int training, int keep_kind) {
    if (keep_kind == CD_KEEP_ALL || i + 1 >= g->num_nodes) return CD_FUSE_NONE;
    const cd_node *conv = &g->nodes[i], *bn = &g->nodes[i + 1];
    /* gradients only matter to a forward that a backward will follow */
    const int grads = keep_kind == CD_KEEP_FOR_BACKWARD;
    if (conv->kind != CD_LAYER_CONV2D && conv->kind != CD_LAYER_DEPTHWISE_CONV2D) return CD_FUSE_NONE;
    if ((grads && conv->needs_grad) || conv->keep || conv->last_use != i + 1) return CD_FUSE_NONE;
    if (bn->kind != CD_LAYER_BATCHNORM || bn->inputs[0] != i || (grads && bn->needs_grad) ||
        node_mode(bn, training))
        return CD_FUSE_NONE;
    if (i + 2 >= g->num_nodes || bn->keep || bn->last_use != i + 2) return CD_FUSE_BN;
    const cd_node *t = &g->nodes[i + 2];
    if (grads && t->needs_grad) return CD_FUSE_BN;
    if (t->kind == CD_LAYER_RELU && t->inputs[0] == i + 1) return CD_FUSE_RELU;
    if (t->kind == CD_LAYER_ADD) {
        int other = t->inputs[0] == i + 1 ? t->inputs[1] : t->inputs[1] == i + 1 ? t->inputs[0] : -1;
        if (other >= 0 && other < i) return CD_FUSE_ADD;
    }
    return CD_FUSE_BN;
}

/* Can conv i run as a trainable block (conv_fused.c) in a training forward: a trainable
 * convolution (no bias) read only by a BN in inference mode, the BN read only by a ReLU
 * (tail CD_FUSE_RELU) or by anything (CD_FUSE_BN)? The backward then reads only the conv's
 * input and the block's output. */
static int train_fusion_at(const cd_graph *g, int i, int training, int keep_kind) {
    if (keep_kind != CD_KEEP_FOR_BACKWARD || i + 1 >= g->num_nodes) return CD_FUSE_NONE;
    const cd_node *conv = &g->nodes[i], *bn = &g->nodes[i + 1];
    if (conv->kind != CD_LAYER_CONV2D && conv->kind != CD_LAYER_DEPTHWISE_CONV2D) return CD_FUSE_NONE;
    if (!cd_node_trains(conv) || conv->use_bias || conv->last_use != i + 1) return CD_FUSE_NONE;
    if (bn->kind != CD_LAYER_BATCHNORM || bn->inputs[0] != i || node_mode(bn, training))
        return CD_FUSE_NONE;
    if (i + 2 >= g->num_nodes || bn->keep || bn->last_use != i + 2) return CD_FUSE_BN;
    const cd_node *t = &g->nodes[i + 2];
    return t->kind == CD_LAYER_RELU && t->inputs[0] == i + 1 ? CD_FUSE_RELU : CD_FUSE_BN;
}

/* Does the fused inference block conv c -> BN -> ReLU (its ReLU at `last`) go on into a
 * [ZeroPadding2D] DepthwiseConv2D -> BN -> ReLU block oneDNN can run as the conv's depthwise
 * post-op (conv_fused.h)? Only in float32, for a 1x1 expand conv whose output would leave
 * the cache (>= 512 KiB per sample: MobileNetV2's blocks 1-3 at 160x160; measured there
 * 1.5 -> 1.0 ms per 8 samples for block 1, no gain further down). Returns the depthwise
 * conv's index, or -1. */
static int dw_tail_at(const cd_graph *g, int c, int last, int training, int keep_kind) {
    const cd_node *conv = &g->nodes[c], *relu = &g->nodes[last];
    if (cd_get_precision() == CD_PRECISION_BF16 || conv->kind != CD_LAYER_CONV2D) return -1;
    if (conv->kh != 1 || conv->kw != 1 || conv->stride_h != 1 || conv->stride_w != 1 ||
        conv->pad[0] || conv->pad[1] || conv->pad[2] || conv->pad[3])
        return -1;
    if (cd_node_sample_size(conv) * sizeof(float) < 512 * 1024) return -1;
    int j = last + 1;
    if (relu->keep || relu->last_use != j || j >= g->num_nodes) return -1;
    const cd_node *zeropad = NULL;
    if (g->nodes[j].kind == CD_LAYER_ZEROPAD) {
        zeropad = &g->nodes[j];
        if (zeropad->inputs[0] != last || zeropad->keep || zeropad->last_use != j + 1 ||
            ++j >= g->num_nodes)
            return -1;
    }
    const cd_node *dw = &g->nodes[j];
    if (dw->kind != CD_LAYER_DEPTHWISE_CONV2D || dw->inputs[0] != j - 1) return -1;
    if (fusion_at(g, j, training, keep_kind) != CD_FUSE_RELU) return -1;
    cd_dw_tail tail = {(cd_node *)dw, &g->nodes[j + 1], zeropad, g->nodes[j + 2].max_value};
    return cd_dw_tail_fits(&tail, conv) ? j : -1;
}

static void release_inputs(cd_graph *g, const cd_node *node, int i) {
    for (int j = 0; j < node->num_inputs; j++) {
        cd_node *src = &g->nodes[node->inputs[j]];
        if (src->pool_slot >= 0 && src->last_use == i) g->pool_busy[src->pool_slot] = 0;
    }
}

/* Decide this forward's fused blocks (a block: [ZeroPadding2D] Conv BN [ReLU | Add], see
 * fusion_at; in a training forward also trainable Conv BN [ReLU] blocks, train_fusion_at)
 * and, in bf16 mode, which block outputs are stored as bfloat16: those that only
 * other fused blocks read, as their source or as their Add's skip input. Everything a plain
 * layer, the loss or get_output reads stays float32. */
static void plan_fusions(cd_graph *g, int training, int keep_kind) {
    for (int i = 0; i < g->num_nodes; i++) {
        cd_node *node = &g->nodes[i];
        node->block_last = node->in_block = -1;
        node->block_train = 0;
        node->block_dw = -1;
        node->out_bf16 = 0;
    }
    for (int i = 1; i < g->num_nodes; i++) {
        cd_node *node = &g->nodes[i];
        /* a ZeroPadding2D whose only reader is a fusable conv joins the block */
        int c = i;
        if (node->kind == CD_LAYER_ZEROPAD && i + 1 < g->num_nodes && !node->keep &&
            node->last_use == i + 1 && g->nodes[i + 1].inputs[0] == i &&
            (g->nodes[i + 1].kind == CD_LAYER_DEPTHWISE_CONV2D || g->nodes[i + 1].kind == CD_LAYER_CONV2D) &&
            !(keep_kind == CD_KEEP_FOR_BACKWARD && node->needs_grad))
            c = i + 1;
        int tail = fusion_at(g, c, training, keep_kind);
        if (tail == CD_FUSE_NONE &&
            (tail = train_fusion_at(g, i, training, keep_kind)) != CD_FUSE_NONE) {
            c = i;
            node->block_train = 1;
            /* the BN read the conv's output for its backward; the block keeps neither */
            node->keep = 0;
            if (tail == CD_FUSE_RELU) g->nodes[i + 1].keep = 0;
        }
        if (tail == CD_FUSE_NONE) continue;
        int last = c + (tail == CD_FUSE_BN ? 1 : 2);
        if (tail == CD_FUSE_RELU && !node->block_train &&
            (node->block_dw = dw_tail_at(g, c, last, training, keep_kind)) >= 0)
            last = node->block_dw + 2; /* ... -> [pad] depthwise -> BN -> ReLU */
        node->block_conv = c, node->block_tail = tail, node->block_last = last;
        for (int k = i; k <= last; k++) g->nodes[k].in_block = i;
        i = last;
    }
    if (cd_get_precision() != CD_PRECISION_BF16) return;
    for (int i = 1; i < g->num_nodes; i++) {
        if (g->nodes[i].block_last < 0 || g->nodes[i].block_train) continue; /* f32 blocks */
        cd_node *out = &g->nodes[g->nodes[i].block_last];
        int readers = 0, fused_readers = 0;
        for (int j = g->nodes[i].block_last + 1; j < g->num_nodes; j++) {
            const cd_node *r = &g->nodes[j];
            for (int k = 0; k < r->num_inputs; k++) {
                if (&g->nodes[r->inputs[k]] != out) continue;
                readers++;
                const int start = r->in_block;
                if (start >= 0 && g->nodes[start].block_train) continue; /* reads f32 */
                if (start == j) fused_readers++; /* the block's source */
                else if (start >= 0 && g->nodes[start].block_tail == CD_FUSE_ADD &&
                         g->nodes[start].block_last == j)
                    fused_readers++; /* the block's Add skip input */
            }
        }
        out->out_bf16 = !out->keep && readers > 0 && readers == fused_readers;
    }
}

/* Run node i (or the fused block starting at it) on g->batch samples. */
static cd_status run_node(cd_graph *g, int i, const float *x, int training) {
    cd_node *node = &g->nodes[i];
    if (node->in_block >= 0 && node->in_block != i) {
        /* computed by the fused block that started before it */
        node->last_training = 0;
        release_inputs(g, node, i);
        return CD_OK;
    }
    if (node->block_last >= 0) {
        const int c = node->block_conv, tail = node->block_tail, last = node->block_last;
        cd_node *out = &g->nodes[last], *bn = &g->nodes[c + 1], *conv = &g->nodes[c];
        cd_node *zeropad = c != i ? node : NULL;
        for (int k = i; k < last; k++) {
            g->nodes[k].out = NULL;
            g->nodes[k].pool_slot = -1;
        }
        CD_TRY(assign_output(g, out));
        node->last_training = conv->last_training = bn->last_training = 0;
        cd_batchnorm_discard(bn);
        if (node->block_train) {
            CD_TRY(cd_conv_forward_trainable(g, conv, bn, tail, out->max_value, out->out));
            release_inputs(g, node, i);
            return CD_OK;
        }
        const cd_node *skip = NULL;
        if (tail == CD_FUSE_ADD)
            skip = &g->nodes[out->inputs[0] == c + 1 ? out->inputs[1] : out->inputs[0]];
        cd_fused_types types = {
            .compute_bf16 = cd_get_precision() == CD_PRECISION_BF16,
            .src_bf16 = cd_input_node(g, node, 0)->out_bf16,
            .dst_bf16 = out->out_bf16,
            .skip_bf16 = skip ? skip->out_bf16 : 0,
        };
        if (node->block_dw >= 0) {
            cd_node *dw = &g->nodes[node->block_dw];
            const cd_node *dw_pad = dw->inputs[0] != c + 2 ? &g->nodes[dw->inputs[0]] : NULL;
            cd_dw_tail tail_dw = {dw, dw + 1, dw_pad, out->max_value};
            dw->last_training = dw[1].last_training = 0;
            cd_batchnorm_discard(dw + 1);
            CD_TRY(cd_conv_forward_fused(g, conv, zeropad, bn, tail, g->nodes[c + 2].max_value,
                                         types, &tail_dw, NULL, out->out));
        } else {
            CD_TRY(cd_conv_forward_fused(g, conv, zeropad, bn, tail, out->max_value, types, NULL,
                                         skip ? skip->out : NULL, out->out));
        }
        release_inputs(g, node, i);
        return CD_OK;
    }
    if (i == 0 && node->boundary) return CD_OK; /* points into x */
    CD_TRY(assign_output(g, node));
    if (i == 0) {
        memcpy(node->out, x, (size_t)g->batch * cd_node_sample_size(node) * sizeof(float));
    } else {
        node->last_training = node_mode(node, training);
        CD_TRY(node->ops->forward(g, node, node->last_training));
    }
    release_inputs(g, node, i);
    return CD_OK;
}

/* The frozen prefix a forward can run in micro-batches: nodes 1..P that are fused inference
 * blocks or a Rescaling (preprocess_input), with at least one block. Returns P, 0 when there
 * is none. */
static int frozen_prefix(const cd_graph *g) {
    int p = 0, blocks = 0;
    for (int i = 1; i < g->num_nodes; i++) {
        const cd_node *node = &g->nodes[i];
        if (node->block_last >= 0 && !node->block_train) {
            i = p = node->block_last;
            blocks++;
        } else if (node->kind == CD_LAYER_RESCALE && node->in_block < 0 && !node->keep) {
            p = i;
        } else {
            break;
        }
    }
    return blocks ? p : 0;
}

/* The frozen prefix in micro-batches of CD_MICRO_BATCH samples: its widest activations (the
 * first blocks at full resolution) then take a fraction of the memory. Outputs read after
 * the prefix (boundary nodes) get full-batch buffers each micro-batch writes a slice of;
 * the input layer is read in place from x. Returns the prefix's last node. */
static cd_status run_prefix_micro(cd_graph *g, const float *x, int p, int training) {
    const int n = g->batch;
    cd_node *input = &g->nodes[0];
    /* the input layer is read in place from x unless something after the prefix reads it */
    const int input_in_place = !input->keep && input->last_use <= p;
    cd_status st = CD_OK;
    for (int k = 0; k <= p && st == CD_OK; k++) {
        cd_node *node = &g->nodes[k];
        /* outputs come from node 0, Rescaling and the last node of each block; the nodes
         * inside a block have none, and fusion kept them unread from outside */
        node->boundary = k == 0 || node->keep || node->last_use > p;
        node->pool_slot = -1;
        if (!node->boundary || (k == 0 && input_in_place)) continue;
        if (cd_grow_floats(&node->own, &node->own_cap, output_floats(node, n), "layer outputs"))
            st = cd_fail(CD_ERR_MEMORY, "out of memory for the outputs of layer '%s' (batch %d)",
                         node->name, n);
    }
    if (st == CD_OK && !input_in_place)
        memcpy(input->own, x, (size_t)n * cd_node_sample_size(input) * sizeof(float));
    const float *input_full = input_in_place ? x : input->own;
    for (int s0 = 0; s0 < n && st == CD_OK; s0 += CD_MICRO_BATCH) {
        g->batch = n - s0 < CD_MICRO_BATCH ? n - s0 : CD_MICRO_BATCH;
        input->out = (float *)(input_full + (size_t)s0 * cd_node_sample_size(input));
        for (int k = 1; k <= p; k++) {
            cd_node *node = &g->nodes[k];
            if (node->boundary) node->out = (float *)((char *)node->own + (size_t)s0 * sample_bytes(node));
        }
        for (int i = 0; i <= p && st == CD_OK; i++) st = run_node(g, i, x, training);
    }
    g->batch = n;
    for (int k = 0; k <= p; k++) {
        cd_node *node = &g->nodes[k];
        if (node->boundary) node->out = k == 0 ? (float *)input_full : node->own;
        node->boundary = 0;
    }
    return st;
}

cd_status cd_graph_forward_mode(cd_graph *g, const float *x, int n, int training, int keep_kind) {
    if (g->num_nodes == 0) return cd_fail(CD_ERR_STATE, "the graph has no layers");
    if (n < 1 || n > 1 << 16) return cd_fail(CD_ERR_VALUE, "batch size must be >= 1, got %d", n);
    g->have_forward = g->have_backward = 0;
    cd_use_threads_here();
    CD_TRY(prepare(g, n));
    plan_keep(g, keep_kind);
    plan_fusions(g, training, keep_kind);
    for (int k = 0; k < CD_POOL_SLOTS; k++) g->pool_busy[k] = 0;
    int first = 0;
    const int p = n > CD_MICRO_BATCH ? frozen_prefix(g) : 0;
    if (p > 0) {
        CD_TRY(run_prefix_micro(g, x, p, training));
        first = p + 1;
    }
    for (int i = first; i < g->num_nodes; i++) CD_TRY(run_node(g, i, x, training));
    g->forward_kind = keep_kind;
    g->have_forward = 1;
    return CD_OK;
}

void cd_graph_commit(cd_graph *g) {
    for (int i = 1; i < g->num_nodes; i++)
        if (g->nodes[i].ops->commit) g->nodes[i].ops->commit(&g->nodes[i]);
}

cd_status cd_graph_forward(cd_graph *g, const float *x, int n, int training) {
    CD_TRY(cd_graph_forward_mode(g, x, n, training, CD_KEEP_ALL));
    cd_graph_commit(g);
    return CD_OK;
}

cd_status cd_graph_forward_for_backward(cd_graph *g, const float *x, int n, int training) {
    CD_TRY(cd_graph_forward_mode(g, x, n, training, CD_KEEP_FOR_BACKWARD));
    cd_graph_commit(g);
    return CD_OK;
}

cd_status cd_graph_predict(cd_graph *g, const float *x, int n) {
    CD_TRY(cd_graph_forward_mode(g, x, n, 0, CD_KEEP_LAST));
    cd_graph_commit(g);
    return CD_OK;
}

cd_status cd_graph_get_output(const cd_graph *g, int layer, float *dst, size_t count) {
    if (layer < 0 || layer >= g->num_nodes)
        return cd_fail(CD_ERR_VALUE, "layer index %d out of range [0, %d)", layer, g->num_nodes);
    if (!g->have_forward) return cd_fail(CD_ERR_STATE, "no forward pass has run yet");
    const cd_node *node = &g->nodes[layer];
    if (!node->keep)
        return cd_fail(CD_ERR_STATE, "the output of '%s' was not kept by the last forward pass "
                       "(only cd_graph_forward keeps every layer's output)", node->name);
    size_t expect = (size_t)g->batch * cd_node_sample_size(node);
    if (count != expect)
        return cd_fail(CD_ERR_VALUE, "output of '%s' has %zu values, not %zu", node->name, expect,
                       count);
    memcpy(dst, node->out, count * sizeof(float));
    return CD_OK;
}

void cd_add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* Gradient buffers live in the forward's pooled buffers (all free once the forward is done):
 * a node's dout is taken when its first reader's backward writes it and given back after the
 * node's own backward, so only a few are alive at once. */
static cd_status take_dout(cd_graph *g, cd_node *node) {
    cd_status s;
    node->dout = take_pooled(g, (size_t)g->batch * cd_node_sample_size(node), &node->pool_slot, &s);
    if (s != CD_OK) return s;
    if (node->dout) return CD_OK;
    /* every pooled buffer is live: a dedicated one */
    if (cd_grow_floats(&node->own_dout, &node->dout_cap, (size_t)g->batch * cd_node_sample_size(node),
               "gradients"))
        return CD_ERR_MEMORY;
    node->dout = node->own_dout;
    return CD_OK;
}

static void give_back_dout(cd_graph *g, cd_node *node) {
    if (node->pool_slot >= 0) g->pool_busy[node->pool_slot] = 0;
    node->pool_slot = -1;
    node->dout = NULL;
}

/* The trainable blocks' weight gradients from their folded ones (once the step's are summed). */
static void finish_trainable_blocks(cd_graph *g) {
    for (int i = 1; i < g->num_nodes; i++) {
        const cd_node *node = &g->nodes[i];
        if (node->block_last >= 0 && node->block_train)
            cd_conv_trainable_finish(&g->nodes[node->block_conv], &g->nodes[node->block_conv + 1]);
    }
}

cd_status cd_graph_backward(cd_graph *g, const float *dy) {
    if (!g->have_forward) return cd_fail(CD_ERR_STATE, "backward needs a forward pass first");
    cd_use_threads_here();
    if (g->forward_kind == CD_KEEP_LAST)
        return cd_fail(CD_ERR_STATE, "the last forward pass was an evaluation; run a training "
                       "or full forward pass before backward");
    if (g->structure_dirty)
        return cd_fail(CD_ERR_STATE, "trainable flags changed since the forward pass; run "
                       "forward again");
    int n = g->batch;
    cd_node *last = &g->nodes[g->num_nodes - 1];
    if (!last->needs_grad) return cd_fail(CD_ERR_STATE, "nothing in the graph is trainable");
    for (int k = 0; k < CD_POOL_SLOTS; k++) g->pool_busy[k] = 0;
    for (int i = 0; i < g->num_nodes; i++) {
        cd_node *node = &g->nodes[i];
        node->dout_written = 0;
        node->dout = NULL;
        node->pool_slot = -1;
    }
    int layer = 0, w = -1;
    for (cd_param *p; (p = cd_next_trainable(g, &layer, &w));) {
        if (!p->grad) p->grad = cd_calloc(p->size, sizeof(float), "weight gradients");
        if (!p->grad) return CD_ERR_MEMORY;
    }
    CD_TRY(take_dout(g, last));
    memcpy(last->dout, dy, (size_t)n * cd_node_sample_size(last) * sizeof(float));
    last->dout_written = 1;
    for (int i = g->num_nodes - 1; i >= 1; i--) {
        cd_node *node = &g->nodes[i];
        if (!node->needs_grad) continue;
        /* a trainable block runs its backward at its last node, from that node's gradient
         * into its conv's input */
        const cd_node *block = node->in_block >= 0 && g->nodes[node->in_block].block_train
                                   ? &g->nodes[node->in_block] : NULL;
        if (block && i != block->block_last) continue; /* ran with the block's last node */
        if (!node->dout_written) { /* output unused by the loss: zero gradient */
            CD_TRY(take_dout(g, node));
            memset(node->dout, 0, (size_t)n * cd_node_sample_size(node) * sizeof(float));
        }
        cd_node *reader = block ? &g->nodes[block->block_conv] : node; /* whose inputs get dx */
        float *dx[2] = {NULL, NULL};
        int accumulate[2] = {0, 0};
        for (int j = 0; j < reader->num_inputs; j++) {
            cd_node *src = cd_input_node(g, reader, j);
            if (!src->needs_grad) continue;
            if (!src->dout) CD_TRY(take_dout(g, src));
            dx[j] = src->dout;
            accumulate[j] = src->dout_written;
        }
        if (reader->num_inputs == 2 && dx[0] && dx[0] == dx[1]) accumulate[1] = 1; /* x + x */
        if (block)
            CD_TRY(cd_conv_backward_trainable(g, reader, reader + 1, block->block_tail,
                                              node->max_value, node->out, node->dout, dx[0],
                                              accumulate[0]));
        else
            CD_TRY(node->ops->backward(g, node, dx, accumulate));
        for (int j = 0; j < reader->num_inputs; j++)
            if (dx[j]) cd_input_node(g, reader, j)->dout_written = 1;
        if (i + 1 == g->grad_probe && g->probe_count >= (size_t)n * cd_node_sample_size(node))
            memcpy(g->probe, node->dout, (size_t)n * cd_node_sample_size(node) * sizeof(float));
        give_back_dout(g, node);
    }
    if (!g->defer_finish) finish_trainable_blocks(g);
    g->have_backward = 1;
    return CD_OK;
}

cd_status cd_graph_get_gradient(const cd_graph *g, int layer, int w, float *dst, size_t n) {
    if (layer < 0 || layer >= g->num_nodes)
        return cd_fail(CD_ERR_VALUE, "layer index %d out of range [0, %d)", layer, g->num_nodes);
    const cd_node *node = &g->nodes[layer];
    if (w < 0 || w >= node->num_params)
        return cd_fail(CD_ERR_VALUE, "layer '%s' has %d weights; index %d is out of range",
                       node->name, node->num_params, w);
    const cd_param *p = &node->params[w];
    if (!g->have_backward) return cd_fail(CD_ERR_STATE, "no backward pass has run yet");
    if (!cd_node_trains(node) || !p->can_train || !p->grad)
        return cd_fail(CD_ERR_VALUE, "layer '%s' weight '%s' is not trainable: no gradient",
                       node->name, p->name);
    if (n != p->size)
        return cd_fail(CD_ERR_VALUE, "gradient of '%s/%s' has %zu values, not %zu", node->name,
                       p->name, p->size, n);
    memcpy(dst, p->grad, n * sizeof(float));
    return CD_OK;
}

/* ---- micro-batched training ------------------------------------------------------------ */

/* May the layers from `first` on run a training step in micro-batches? Every one must treat
 * samples independently: a BatchNormalization in training mode (batch statistics) couples
 * them. Worth it only when a trainable convolution is there (the large kept activations);
 * a trainable head alone runs at full batch. */
static int micro_trainable(const cd_graph *g, int first) {
    int convs = 0;
    for (int i = first; i < g->num_nodes; i++) {
        const cd_node *node = &g->nodes[i];
        if (node->kind == CD_LAYER_BATCHNORM && node_mode(node, 1)) return 0;
        if ((node->kind == CD_LAYER_CONV2D || node->kind == CD_LAYER_DEPTHWISE_CONV2D) &&
            node->needs_grad)
            convs = 1;
    }
    return convs;
}

/* Weight gradients summed over micro-batches: before a micro-batch's backward (which writes
 * the gradients afresh) save the running sum in g->grad_spare (save = 1); after it add the
 * sum back (save = 0). a + b == b + a exactly, so the sum is the sequential one. */
static void hold_gradients(cd_graph *g, int save) {
    size_t at = 0;
    int layer = 0, w = -1;
    for (cd_param *p; (p = cd_next_trainable(g, &layer, &w)); at += p->size) {
        if (save) memcpy(g->grad_spare + at, p->grad, p->size * sizeof(float));
        else cd_add_inplace(p->grad, g->grad_spare + at, p->size);
    }
}

cd_status cd_graph_train_micro(cd_graph *g, const float *x, int n, cd_micro_loss_fn loss,
                               void *ctx, int *done) {
    *done = 0;
    if (g->num_nodes == 0) return cd_fail(CD_ERR_STATE, "the graph has no layers");
    if (n <= CD_TRAIN_MICRO_BATCH) return CD_OK;
    g->have_forward = g->have_backward = 0;
    cd_use_threads_here();
    CD_TRY(prepare(g, n));
    plan_keep(g, CD_KEEP_FOR_BACKWARD);
    plan_fusions(g, 1, CD_KEEP_FOR_BACKWARD);
    const int p = frozen_prefix(g), first = p > 0 ? p + 1 : 0;
    if (!micro_trainable(g, first)) return CD_OK;
    *done = 1;
    size_t weights = 0; /* g->grad_spare holds every trainable weight's running sum */
    int layer = 0, w = -1;
    for (cd_param *q; (q = cd_next_trainable(g, &layer, &w));) weights += q->size;
    if (cd_grow_floats(&g->grad_spare, &g->grad_spare_count, weights, "weight gradients"))
        return CD_ERR_MEMORY;
    for (int k = 0; k < CD_POOL_SLOTS; k++) g->pool_busy[k] = 0;
    if (p > 0) CD_TRY(run_prefix_micro(g, x, p, 1));
    /* the prefix's outputs read above it stay full-batch; each micro-batch reads a slice */
    for (int k = 0; k < first; k++) {
        cd_node *node = &g->nodes[k];
        node->full_out = node->out && (node->keep || node->last_use > p) ? node->out : NULL;
    }
    const size_t in_size = cd_node_sample_size(&g->nodes[0]);
    cd_status st = CD_OK;
    g->defer_finish = 1;
    for (int s0 = 0; s0 < n && st == CD_OK; s0 += CD_TRAIN_MICRO_BATCH) {
        const int m = n - s0 < CD_TRAIN_MICRO_BATCH ? n - s0 : CD_TRAIN_MICRO_BATCH;
        if (m != g->batch && (st = prepare(g, m)) != CD_OK) break;
        g->sample_offset = s0;
        for (int k = 0; k < first; k++) {
            cd_node *node = &g->nodes[k];
            if (node->full_out)
                node->out = (float *)((char *)node->full_out + (size_t)s0 * sample_bytes(node));
        }
        for (int k = 0; k < CD_POOL_SLOTS; k++) g->pool_busy[k] = 0;
        for (int i = first; i < g->num_nodes && st == CD_OK; i++)
            st = run_node(g, i, x + (size_t)s0 * in_size, 1);
        if (st != CD_OK) break;
        g->forward_kind = CD_KEEP_FOR_BACKWARD;
        g->have_forward = 1;
        if ((st = loss(g, s0, m, ctx)) != CD_OK) break;
        if (s0 > 0) hold_gradients(g, 1);
        if ((st = cd_graph_backward(g, g->dlogits)) != CD_OK) break;
        if (s0 > 0) hold_gradients(g, 0);
    }
    g->sample_offset = 0;
    g->defer_finish = 0;
    if (st == CD_OK) finish_trainable_blocks(g);
    for (int k = 0; k < first; k++) {
        cd_node *node = &g->nodes[k];
        if (node->full_out) node->out = node->full_out;
        node->full_out = NULL;
    }
    /* outputs now hold the last micro-batch only: no second backward on them */
    g->forward_kind = CD_KEEP_LAST;
    g->have_backward = st == CD_OK;
    return st;
}
