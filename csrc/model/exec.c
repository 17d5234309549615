/* exec.c — running a plan (model/plan.c) forward and backward. It calls each step's kernels
 * with buffers and shapes; what a step is comes from the plan, never from a layer's kind.
 *
 * Kernel states come from model/states.c, buffers from model/buffers.c. A SEGMENT step runs
 * the frozen prefix CD_MICRO_BATCH samples at a time: outputs read after it get full-batch
 * buffers each micro-batch writes a slice of. Backward runs only through nodes the plan
 * marks needs_grad; weight gradients are overwritten (nn/layer.h). A micro-batched training
 * step runs the rest CD_TRAIN_MICRO_BATCH samples at a time and sums the gradients.
 * The probed node's output gradient (g->grad_probe) is copied to g->probe before its buffer
 * goes back; while g->head_logits is set the last node's kernels get cd_io.logits.
 * Feature cache (model/features.c): while g->tap_node > 0 the output of the step ending at
 * that node is copied out as it is made; cd_graph_forward_from runs a plan from its
 * cache_cut node on, with that node's output given. */
#include <stdlib.h>
#include <string.h>

#include "core/buffers.h"
#include "core/error.h"
#include "core/runtime.h"
#include "core/vec.h"
#include "model/graph_internal.h"
#include "nn/conv_fused.h"

/* Everything a run built: kernel states, plans, buffers. */
void cd_graph_release_runtime(cd_graph *g) {
    cd_release_states(g);
    cd_plan_free_all(g);
    for (int i = 0; i < g->num_nodes; i++) {
        cd_rt *rt = &g->rt[i];
        free(rt->own);
        free(rt->own_dout);
        rt->own = rt->own_dout = rt->dout = rt->out = NULL;
        rt->own_cap = rt->dout_cap = 0;
    }
    for (int k = 0; k < CD_POOL_SLOTS; k++) cd_drop_floats(&g->pool[k], &g->pool_cap[k]);
    cd_drop_floats(&g->scratch, &g->scratch_count);
    cd_drop_floats(&g->dlogits, &g->dlogits_count);
    cd_drop_floats(&g->grad_spare, &g->grad_spare_count);
    cd_drop_floats(&g->logits_all, &g->logits_all_count);
    cd_drop_floats(&g->probe, &g->probe_count);
    cd_feature_cache_free(&g->features);
    g->have_forward = g->have_backward = 0;
}

/* The buffers of node i's kernel call on g->batch samples: its inputs in the graph's io
 * arrays (one call at a time), no input gradients (the backward adds them). */
static cd_io node_io(cd_graph *g, int i) {
    const cd_node *node = &g->nodes[i];
    cd_io io;
    memset(&io, 0, sizeof io);
    io.n = g->batch;
    io.num_inputs = node->num_inputs;
    for (int j = 0; j < node->num_inputs; j++) {
        g->io_in[j] = g->rt[node->inputs[j]].out;
        g->io_shape[j] = g->nodes[node->inputs[j]].shape;
        g->io_dx[j] = NULL;
        g->io_acc[j] = 0;
    }
    io.in = g->io_in, io.in_shape = g->io_shape, io.dx = g->io_dx, io.acc = g->io_acc;
    io.out = g->rt[i].out;
    io.dout = g->rt[i].dout;
    io.scratch = g->scratch;
    io.training = g->plan->training_of[i];
    io.seed = g->seed;
    io.step = g->step;
    io.index = i;
    io.sample_offset = g->sample_offset;
    io.logits = g->head_logits && i == g->num_nodes - 1;
    return io;
}

/* ---- forward ---- */

/* A trainable block's data types (its source is its conv's input), as the plan stores them. */
static cd_fused_types train_types(const cd_graph *g, const cd_step *s) {
    const cd_plan *p = g->plan;
    const int src = g->nodes[s->conv].inputs[0];
    return (cd_fused_types){.compute_bf16 = p->precision == CD_PRECISION_BF16,
                            .src_bf16 = p->out_bf16[src],
                            .dst_bf16 = p->out_bf16[s->last],
                            .dy_bf16 = p->dout_bf16[s->last],
                            .dx_bf16 = p->dout_bf16[src]};
}

/* The chain of block s as nodes and declarations (conv_fused.h). */
static cd_chain chain_of(cd_graph *g, const cd_step *s) {
    cd_chain ch;
    memset(&ch, 0, sizeof ch);
    ch.zeropad = s->conv != s->first ? &g->nodes[s->first] : NULL;
    ch.norm = s->norm >= 0 ? &g->nodes[s->norm] : NULL;
    if (s->hard) { /* Keras's arithmetic hard_sigmoid / hard_swish as one post-op */
        ch.act.kind = CD_POST_ACT, ch.act.count = 1;
        ch.act.eltwise[0] = (cd_eltwise){s->hard == 2 ? CD_ELTWISE_HARDSWISH : CD_ELTWISE_HARDSIGMOID,
                                         1.f / 6.f, 0.5f};
    } else if (s->act >= 0) {
        ch.act = cd_node_post_op(&g->nodes[s->act]);
    }
    ch.add = s->add >= 0;
    if (s->act2 >= 0) ch.act2 = cd_node_post_op(&g->nodes[s->act2]);
    return ch;
}

/* Run a fused or trainable block (its first node is s->first) on g->batch samples. */
static cd_status run_block(cd_graph *g, const cd_step *s) {
    const int c = s->conv, i = s->first, last = s->last;
    cd_node *conv = &g->nodes[c];
    const cd_chain chain = chain_of(g, s);
    for (int k = i; k < last; k++) {
        g->rt[k].out = NULL;
        g->rt[k].pool_slot = -1;
    }
    CD_TRY(cd_assign_output(g, last));
    if (chain.norm && chain.norm->ops->discard) chain.norm->ops->discard(chain.norm);
    const int src_node = g->nodes[i].inputs[0];
    const cd_shape *in = &g->nodes[src_node].shape;
    const void *src = g->rt[src_node].out;
    void *dst = g->rt[last].out;
    const cd_plan *p = g->plan;
    if (s->kind == CD_STEP_TRAIN)
        return cd_conv_forward_trainable(conv, &chain, train_types(g, s), g->batch, in, src, dst);
    cd_fused_types types = {
        .compute_bf16 = p->precision == CD_PRECISION_BF16,
        .src_bf16 = p->out_bf16[src_node],
        .dst_bf16 = p->out_bf16[last],
        .skip_bf16 = s->skip >= 0 ? p->out_bf16[s->skip] : 0,
    };
    if (s->dw >= 0) { /* [pad] dw -> norm -> act after the block's act */
        cd_node *dw = &g->nodes[s->dw];
        const cd_node *dw_pad = dw->inputs[0] != s->act ? &g->nodes[dw->inputs[0]] : NULL;
        cd_dw_tail tail_dw = {dw, dw + 1, dw_pad, cd_node_post_op(&g->nodes[last])};
        if (dw[1].ops->discard) dw[1].ops->discard(dw + 1);
        return cd_conv_forward_fused(conv, &chain, types, &tail_dw, g->batch, in, src, NULL, dst);
    }
    return cd_conv_forward_fused(conv, &chain, types, NULL, g->batch, in, src,
                                 s->skip >= 0 ? g->rt[s->skip].out : NULL, dst);
}

/* Recording the feature cache: step s's output node is the tapped one: copy its g->batch
 * samples (as stored) to their place in the record. */
static void tap(cd_graph *g, const cd_step *s) {
    if (g->tap_node <= 0 || s->last != g->tap_node) return;
    const size_t bytes = cd_sample_bytes(g, s->last);
    memcpy(g->tap_dst + (size_t)g->tap_offset * bytes, g->rt[s->last].out, (size_t)g->batch * bytes);
}

/* Node i's part of the forward: its step runs at the step's first node; the other nodes of
 * a block only hand their inputs back to the pool. */
static cd_status run_node(cd_graph *g, int i, const float *x) {
    const cd_step *s = &g->plan->steps[g->plan->step_of[i]];
    if (s->first != i) {
        cd_release_inputs(g, i);
        return CD_OK;
    }
    if (s->kind == CD_STEP_FUSED || s->kind == CD_STEP_TRAIN) {
        CD_TRY(run_block(g, s));
        tap(g, s);
        cd_release_inputs(g, i);
        return CD_OK;
    }
    cd_rt *rt = &g->rt[i];
    if (i == 0 && rt->boundary) return CD_OK; /* points into x */
    CD_TRY(cd_assign_output(g, i));
    if (i == 0) {
        memcpy(rt->out, x, (size_t)g->batch * cd_node_sample_size(&g->nodes[0]) * sizeof(float));
    } else {
        cd_io io = node_io(g, i);
        CD_TRY(g->nodes[i].ops->forward(&g->nodes[i], &io));
    }
    tap(g, s);
    cd_release_inputs(g, i);
    return CD_OK;
}

/* A SEGMENT: nodes [0, p] in micro-batches of `micro` samples. Outputs read after the
 * segment (boundary nodes) get full-batch buffers each micro-batch writes a slice of; the
 * input layer is read in place from x. With cut > 0 (cd_graph_forward_from) node cut's
 * output is read from cut_src instead and only nodes (cut, p] run, the same micro-batches
 * on the same kernels. */
static cd_status run_segment(cd_graph *g, const float *x, int cut, const void *cut_src, int p,
                             int micro) {
    const int n = g->batch;
    const cd_plan *plan = g->plan;
    const int from = cut > 0 ? cut + 1 : 0;
    if (micro < 1) /* the loop below would never advance: a planner bug, refused */
        return cd_fail(CD_ERR_STATE, "internal error: a plan segment of %d samples per "
                       "micro-batch", micro);
    cd_rt *input = &g->rt[0];
    /* the input layer is read in place from x unless something after the prefix reads it */
    const int input_in_place = !plan->keep_out[0] && plan->last_use[0] <= p;
    cd_status st = CD_OK;
    for (int k = from; k <= p && st == CD_OK; k++) {
        cd_rt *rt = &g->rt[k];
        /* outputs come from node 0, PREFIX layers and the last node of each block; the nodes
         * inside a block have none, and the plan left them unread from outside */
        rt->boundary = k == 0 || plan->keep_out[k] || plan->last_use[k] > p;
        rt->pool_slot = -1;
        if (!rt->boundary || (k == 0 && input_in_place)) continue;
        if (cd_grow_floats(&rt->own, &rt->own_cap, cd_output_floats(g, k, n), "layer outputs"))
            st = cd_fail(CD_ERR_MEMORY, "out of memory for the outputs of layer '%s' (batch %d)",
                         g->nodes[k].name, n);
    }
    if (st == CD_OK && cut <= 0 && !input_in_place)
        memcpy(input->own, x, (size_t)n * cd_node_sample_size(&g->nodes[0]) * sizeof(float));
    const float *input_full = input_in_place ? x : input->own;
    const size_t cut_bytes = cut > 0 ? cd_sample_bytes(g, cut) : 0;
    const int offset = g->sample_offset; /* a micro-batched training step's own offset */
    for (int s0 = 0; s0 < n && st == CD_OK; s0 += micro) {
        g->batch = n - s0 < micro ? n - s0 : micro;
        g->tap_offset = s0;
        g->sample_offset = offset + s0; /* per-sample randomness keeps the batch's indices */
        if (cut > 0)
            g->rt[cut].out = (float *)((const char *)cut_src + (size_t)s0 * cut_bytes);
        else
            input->out = (float *)(input_full + (size_t)s0 * cd_node_sample_size(&g->nodes[0]));
        for (int k = from > 1 ? from : 1; k <= p; k++) {
            cd_rt *rt = &g->rt[k];
            if (rt->boundary) rt->out = (float *)((char *)rt->own + (size_t)s0 * cd_sample_bytes(g, k));
        }
        for (int i = from; i <= p && st == CD_OK; i++) {
            /* a layer's kernel state is per batch size: its own for the micro-batch */
            const int own = g->nodes[i].ops->prepare && g->batch != n &&
                            plan->steps[plan->step_of[i]].kind == CD_STEP_LAYER;
            if (own && (st = cd_use_micro_state(g, i, g->batch)) != CD_OK) break;
            st = run_node(g, i, x);
            if (own) cd_use_batch_state(g, i);
        }
    }
    g->batch = n;
    g->tap_offset = 0;
    g->sample_offset = offset;
    for (int k = from; k <= p; k++) {
        cd_rt *rt = &g->rt[k];
        if (rt->boundary) rt->out = k == 0 ? (float *)input_full : rt->own;
        rt->boundary = 0;
    }
    if (cut > 0) g->rt[cut].out = (float *)cut_src;
    return st;
}

/* Kernel states for n and the plan for (n, training, keep), made current. */
static cd_status start_run(cd_graph *g, int n, int training, int keep) {
    CD_TRY(cd_prepare_states(g, n));
    cd_plan *p = cd_plan_get(g, n, training, keep);
    if (!p) return CD_ERR_MEMORY;
    g->plan = p;
    g->trainable_dirty = 0;
    return CD_OK;
}

cd_status cd_graph_forward_mode(cd_graph *g, const float *x, int n, int training, int keep) {
    if (g->num_nodes == 0) return cd_fail(CD_ERR_STATE, "the graph has no layers");
    if (n < 1 || n > 1 << 16) return cd_fail(CD_ERR_VALUE, "batch size must be >= 1, got %d", n);
    if (keep != CD_KEEP_ALL && keep != CD_KEEP_FOR_BACKWARD && keep != CD_KEEP_LAST)
        return cd_fail(CD_ERR_VALUE, "keep must be CD_KEEP_ALL, CD_KEEP_FOR_BACKWARD or "
                       "CD_KEEP_LAST, got %d", keep);
    g->have_forward = g->have_backward = 0;
    cd_use_threads_here();
    CD_TRY(start_run(g, n, training, keep));
    cd_release_pool(g);
    int first = 0;
    const cd_step *s0 = &g->plan->steps[0];
    if (s0->kind == CD_STEP_SEGMENT) {
        CD_TRY(run_segment(g, x, 0, NULL, s0->last, s0->micro));
        first = s0->last + 1;
    }
    for (int i = first; i < g->num_nodes; i++) CD_TRY(run_node(g, i, x));
    g->forward_keep = keep;
    g->have_forward = 1;
    return CD_OK;
}

cd_status cd_graph_forward_from(cd_graph *g, int n, int cut, const void *src) {
    g->have_forward = g->have_backward = 0;
    cd_use_threads_here();
    CD_TRY(start_run(g, n, 0, CD_KEEP_LAST));
    if (cut < 1 || g->plan->cache_cut != cut)
        return cd_fail(CD_ERR_STATE, "the plan's cache cut is %d, not %d", g->plan->cache_cut, cut);
    cd_release_pool(g);
    g->rt[cut].out = (float *)src;
    g->rt[cut].pool_slot = -1;
    int first = cut + 1;
    const cd_step *s0 = &g->plan->steps[0];
    if (s0->kind == CD_STEP_SEGMENT && s0->last > cut) {
        CD_TRY(run_segment(g, NULL, cut, src, s0->last, s0->micro));
        first = s0->last + 1;
    }
    for (int i = first; i < g->num_nodes; i++) CD_TRY(run_node(g, i, NULL));
    g->forward_keep = CD_KEEP_LAST;
    g->have_forward = 1;
    return CD_OK;
}

void cd_graph_commit(cd_graph *g) {
    for (int i = 1; i < g->num_nodes; i++)
        if (g->nodes[i].ops->commit) g->nodes[i].ops->commit(&g->nodes[i]);
}

cd_status cd_graph_run_forward(cd_graph *g, const float *x, int n, int training, cd_keep keep) {
    CD_TRY(cd_graph_forward_mode(g, x, n, training, (int)keep));
    cd_graph_commit(g);
    return CD_OK;
}

cd_status cd_graph_forward(cd_graph *g, const float *x, int n, int training) {
    return cd_graph_run_forward(g, x, n, training, CD_KEEP_ALL);
}

cd_status cd_graph_forward_for_backward(cd_graph *g, const float *x, int n, int training) {
    return cd_graph_run_forward(g, x, n, training, CD_KEEP_FOR_BACKWARD);
}

cd_status cd_graph_predict(cd_graph *g, const float *x, int n) {
    return cd_graph_run_forward(g, x, n, 0, CD_KEEP_LAST);
}

cd_status cd_graph_get_output(const cd_graph *g, int layer, float *dst, size_t count) {
    if (layer < 0 || layer >= g->num_nodes)
        return cd_fail(CD_ERR_VALUE, "layer index %d out of range [0, %d)", layer, g->num_nodes);
    if (!g->have_forward) return cd_fail(CD_ERR_STATE, "no forward pass has run yet");
    const cd_node *node = &g->nodes[layer];
    if (!g->plan->keep_out[layer])
        return cd_fail(CD_ERR_STATE, "the output of '%s' was not kept by the last forward pass "
                       "(only cd_graph_forward keeps every layer's output)", node->name);
    size_t expect = (size_t)g->batch * cd_node_sample_size(node);
    if (count != expect)
        return cd_fail(CD_ERR_VALUE, "output of '%s' has %zu values, not %zu", node->name, expect,
                       count);
    if (g->plan->out_bf16[layer]) { /* a trainable block's output kept as bf16 */
        const uint16_t *h = (const uint16_t *)g->rt[layer].out;
        for (size_t k = 0; k < count; k++) {
            const uint32_t u = (uint32_t)h[k] << 16;
            memcpy(dst + k, &u, sizeof u);
        }
        return CD_OK;
    }
    memcpy(dst, g->rt[layer].out, count * sizeof(float));
    return CD_OK;
}

/* ---- backward ---- */

/* The trainable blocks' weight gradients from their folded ones (once the step's are summed). */
static void finish_trainable_blocks(cd_graph *g) {
    const cd_plan *p = g->plan;
    for (int k = 0; k < p->num_steps; k++)
        if (p->steps[k].kind == CD_STEP_TRAIN) {
            const cd_step *s = &p->steps[k];
            cd_node *norm = s->norm >= 0 ? &g->nodes[s->norm] : NULL;
            cd_conv_trainable_finish(&g->nodes[s->conv], norm, norm && cd_node_trains(norm));
        }
}

cd_status cd_graph_backward(cd_graph *g, const float *dy) {
    if (!g->have_forward) return cd_fail(CD_ERR_STATE, "backward needs a forward pass first");
    cd_use_threads_here();
    if (g->forward_keep == CD_KEEP_LAST)
        return cd_fail(CD_ERR_STATE, "the last forward pass was an evaluation; run a training "
                       "or full forward pass before backward");
    if (g->trainable_dirty)
        return cd_fail(CD_ERR_STATE, "trainable flags changed since the forward pass; run "
                       "forward again");
    const cd_plan *p = g->plan;
    const int n = g->batch, L = g->num_nodes - 1;
    if (!p->needs_grad[L]) return cd_fail(CD_ERR_STATE, "nothing in the graph is trainable");
    cd_release_pool(g);
    for (int i = 0; i < g->num_nodes; i++) {
        g->rt[i].dout_written = 0;
        g->rt[i].dout = NULL;
        g->rt[i].pool_slot = -1;
    }
    int layer = 0, w = -1;
    for (cd_param *q; (q = cd_next_trainable(g, &layer, &w));) {
        if (!q->grad) q->grad = cd_calloc(q->size, sizeof(float), "weight gradients");
        if (!q->grad) return CD_ERR_MEMORY;
    }
    CD_TRY(cd_take_dout(g, L));
    memcpy(g->rt[L].dout, dy, (size_t)n * cd_node_sample_size(&g->nodes[L]) * sizeof(float));
    g->rt[L].dout_written = 1;
    for (int i = L; i >= 1; i--) {
        if (!p->needs_grad[i]) continue;
        /* a trainable block runs its backward at its last node, from that node's gradient
         * into its conv's input */
        const cd_step *s = &p->steps[p->step_of[i]];
        const cd_step *block = s->kind == CD_STEP_TRAIN ? s : NULL;
        if (block && i != block->last) continue; /* ran with the block's last node */
        cd_rt *rt = &g->rt[i];
        if (!rt->dout_written) { /* output unused by the loss: zero gradient */
            CD_TRY(cd_take_dout(g, i));
            memset(rt->dout, 0, (size_t)n * cd_node_sample_size(&g->nodes[i]) * sizeof(float));
        }
        /* the probed node's output gradient is complete here (its readers ran); its plan
         * keeps every output (cd_graph_output_gradient), so no block hides the node */
        const size_t count = (size_t)n * cd_node_sample_size(&g->nodes[i]);
        if (i + 1 == g->grad_probe && g->probe_count >= count)
            memcpy(g->probe, rt->dout, count * sizeof(float));
        const int reader = block ? block->conv : i; /* whose inputs get dx */
        const cd_node *rn = &g->nodes[reader];
        cd_io io = node_io(g, reader);
        io.out = rt->out, io.dout = rt->dout;
        io.weight_grads = cd_node_trains(rn);
        for (int j = 0; j < rn->num_inputs; j++) {
            const int src = rn->inputs[j];
            if (!p->needs_grad[src]) continue;
            if (!g->rt[src].dout) CD_TRY(cd_take_dout(g, src));
            g->io_dx[j] = g->rt[src].dout;
            /* add when the gradient holds a value, or an earlier input is the same tensor
             * (x + x): its contribution is written first */
            int acc = g->rt[src].dout_written;
            for (int q = 0; q < j && !acc; q++) acc = rn->inputs[q] == src;
            g->io_acc[j] = acc;
        }
        if (block) {
            cd_node *conv = &g->nodes[reader];
            const cd_chain chain = chain_of(g, block);
            CD_TRY(cd_conv_backward_trainable(conv, &chain, chain.norm && cd_node_trains(chain.norm),
                                              train_types(g, block), n, &io.in_shape[0],
                                              io.in[0], rt->out, rt->dout, io.dx[0], io.acc[0],
                                              g->scratch));
        } else {
            CD_TRY(g->nodes[i].ops->backward(&g->nodes[i], &io));
        }
        for (int j = 0; j < rn->num_inputs; j++)
            if (io.dx[j]) g->rt[rn->inputs[j]].dout_written = 1;
        cd_give_back_dout(g, i);
    }
    if (!g->defer_finish) finish_trainable_blocks(g);
    g->have_backward = 1;
    return CD_OK;
}

cd_status cd_graph_get_gradient(const cd_graph *g, int layer, int w, float *dst, size_t n) {
    CD_TRY(cd_check_weight(g, layer, w));
    const cd_node *node = &g->nodes[layer];
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

/* ---- micro-batched training ---- */

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
    CD_TRY(start_run(g, n, 1, CD_KEEP_FOR_BACKWARD));
    const cd_plan *P = g->plan;
    const int p = P->prefix_last, first = p > 0 ? p + 1 : 0;
    if (!P->micro_train) return CD_OK;
    *done = 1;
    size_t weights = 0; /* g->grad_spare holds every trainable weight's running sum */
    int layer = 0, w = -1;
    for (cd_param *q; (q = cd_next_trainable(g, &layer, &w));) weights += q->size;
    if (cd_grow_floats(&g->grad_spare, &g->grad_spare_count, weights, "weight gradients"))
        return CD_ERR_MEMORY;
    cd_release_pool(g);
    if (p > 0) CD_TRY(run_segment(g, x, 0, NULL, p, P->steps[0].micro));
    /* the prefix's outputs read above it stay full-batch; each micro-batch reads a slice */
    for (int k = 0; k < first; k++) {
        cd_rt *rt = &g->rt[k];
        rt->full_out = rt->out && (P->keep_out[k] || P->last_use[k] > p) ? rt->out : NULL;
    }
    const size_t in_size = cd_node_sample_size(&g->nodes[0]);
    cd_status st = CD_OK;
    g->defer_finish = 1;
    for (int s0 = 0; s0 < n && st == CD_OK; s0 += CD_TRAIN_MICRO_BATCH) {
        const int m = n - s0 < CD_TRAIN_MICRO_BATCH ? n - s0 : CD_TRAIN_MICRO_BATCH;
        if (m != g->batch && (st = cd_prepare_states(g, m)) != CD_OK) break;
        g->sample_offset = s0;
        for (int k = 0; k < first; k++) {
            cd_rt *rt = &g->rt[k];
            if (rt->full_out)
                rt->out = (float *)((char *)rt->full_out + (size_t)s0 * cd_sample_bytes(g, k));
        }
        cd_release_pool(g);
        for (int i = first; i < g->num_nodes && st == CD_OK; i++)
            st = run_node(g, i, x + (size_t)s0 * in_size);
        if (st != CD_OK) break;
        g->forward_keep = CD_KEEP_FOR_BACKWARD;
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
        cd_rt *rt = &g->rt[k];
        if (rt->full_out) rt->out = rt->full_out;
        rt->full_out = NULL;
    }
    /* outputs now hold the last micro-batch only: no second backward on them */
    g->forward_keep = CD_KEEP_LAST;
    g->have_backward = st == CD_OK;
    return st;
}
