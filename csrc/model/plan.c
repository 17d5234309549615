/* plan.c — how a graph runs for one (batch size, training flag, what to keep, precision):
 * a fixed list of steps with what each output's storage is, decided from the flags each
 * kind's ops table declares (nn/layer.h CD_OP_*), never from the kind. Built once per key
 * and cached (CD_PLAN_CACHE); a change of layers, trainable flags or modes makes new ones.
 *
 * Rules:
 * - Gradients flow through layers with trainable weights and everything above them, and
 *   through the probed layer (g->grad_probe: its output gradient is wanted) and above it.
 * - Keep: every output (CD_KEEP_ALL), or what a backward reads (READS_INPUT: the inputs;
 *   READS_INPUT_TO_TRAIN: the inputs when the layer trains; READS_OUTPUT: the output) plus
 *   the last layer's.
 * - Fused inference block (no gradient through it, nothing else reads its inner outputs,
 *   never for CD_KEEP_ALL): [FUSE_PAD] CONV then the post-ops its readers declare
 *   (cd_post_op), in this order: [NORM in inference mode] [ACT] [ADD whose other input comes
 *   from before the block [ACT]], at least one; in float32 optionally carrying the next
 *   [pad] depthwise conv -> norm -> ReLU as a depthwise tail when the expand output (ending
 *   in a ReLU) would leave the cache (>= CD_DW_TAIL_BYTES per sample).
 * - Trainable block (training forwards for a backward): a trainable CONV (bias or not) then
 *   [NORM in inference mode] [ACT whose derivative is a function of its output], at least
 *   one: backward reads only the conv's input and, with an ACT, the block's output.
 * - bf16 mode: a fused block's output is stored as bfloat16 when only fused inference
 *   blocks read it (as their source or their Add's skip input); a trainable block's output
 *   when only trainable blocks read it (as their source), and then its gradient too when
 *   exactly one does and the block ends in no activation or a ReLU.
 * - Frozen prefix: with more than CD_MICRO_BATCH samples, the leading fused inference
 *   blocks and the layers between them that run sample by sample there (no gradient, not
 *   batch-coupled in their mode: pooling, activations, Add, ...) run in micro-batches of
 *   CD_MICRO_BATCH: one SEGMENT step before them.
 * - Micro-batched training: above the prefix no layer COUPLES_BATCH in training mode and a
 *   CONV gets gradients: a training step runs it CD_TRAIN_MICRO_BATCH samples at a time.
 * - Cache cut (evaluation plans only: training 0, CD_KEEP_LAST): the largest node c in
 *   [1, N-2] that is the last node of a step, with nodes [0, c] holding no weights that
 *   train, none in training mode here or in a training forward when it commits (moving
 *   statistics), and no node above c reading a node below c. Its output for an image is then
 *   fixed while the weights of [0, c] keep their versions: model/features.c caches it and
 *   runs the steps above c on it (exec.c cd_graph_forward_from).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/graph_internal.h"
#include "nn/conv_fused.h"

#define CD_DW_TAIL_BYTES (512 * 1024)

int cd_node_mode(const cd_node *node, int training) {
    int mode = node->mode == CD_MODE_INHERIT ? training : node->mode == CD_MODE_TRAINING;
    if ((cd_node_flags(node) & CD_OP_FROZEN_INFERENCE) && !node->trainable) mode = 0;
    return mode;
}

static int has(const cd_graph *g, int i, unsigned flag) {
    return (cd_node_flags(&g->nodes[i]) & flag) != 0;
}

/* ---- building ---- */

typedef struct {
    const cd_graph *g;
    cd_plan *p;
    int training, keep, n;
} builder;

static void plan_grads_and_keep(builder *b) {
    const cd_graph *g = b->g;
    cd_plan *p = b->p;
    const int fb = b->keep == CD_KEEP_FOR_BACKWARD;
    for (int i = 0; i < g->num_nodes; i++) {
        const cd_node *node = &g->nodes[i];
        p->needs_grad[i] = (unsigned char)(cd_node_trains(node) || i + 1 == p->grad_probe);
        for (int j = 0; j < node->num_inputs; j++)
            if (p->needs_grad[node->inputs[j]]) p->needs_grad[i] = 1;
        p->last_use[i] = i;
        p->keep_out[i] = b->keep == CD_KEEP_ALL;
    }
    for (int i = 0; i < g->num_nodes; i++) {
        const cd_node *node = &g->nodes[i];
        const unsigned f = cd_node_flags(node);
        const int reads_inputs = (f & CD_OP_READS_INPUT) ||
                                 ((f & CD_OP_READS_INPUT_TO_TRAIN) && cd_node_trains(node));
        for (int j = 0; j < node->num_inputs; j++) {
            const int src = node->inputs[j];
            if (i > p->last_use[src]) p->last_use[src] = i;
            if (fb && p->needs_grad[i] && reads_inputs) p->keep_out[src] = 1;
        }
        if (fb && p->needs_grad[i] && (f & CD_OP_READS_OUTPUT)) p->keep_out[i] = 1;
    }
    p->keep_out[g->num_nodes - 1] = 1;
}

/* A chain found after conv c (node indices, -1: absent). */
typedef struct {
    int norm, act, add, act2, skip, last, hard;
} chain_at;

/* Does node j take the chain on from `prev` (its only reader; in an inference block nothing
 * keeps prev: a trainable block's members keep each other's outputs only for their own
 * backwards, which the block replaces), as a post-op of kind `kind`? */
static int continues(const builder *b, int prev, int j, cd_post_kind kind, cd_post_op *op,
                     int train) {
    const cd_graph *g = b->g;
    const cd_plan *p = b->p;
    if (j >= g->num_nodes || (p->keep_out[prev] && !train) || p->last_use[prev] != j) return 0;
    *op = cd_node_post_op(&g->nodes[j]);
    return op->kind == kind;
}

/* Keras's arithmetic hard_sigmoid after node `at` (MobileNetV3's `ReLU(6.0)(x + 3.0) * (1.0 /
 * 6.0)`): at+1 Rescaling(x + 3), at+2 ReLU(6), at+3 Rescaling(x * 1/6), each the only reader
 * of the one before; hard_swish adds at+4, a Multiply of `at` and at+3 (`layers.Multiply()([x,
 * hard_sigmoid(x)])`), then at's only readers are at+1 and at+4. A fused inference block runs
 * either as oneDNN's hardsigmoid / hardswish post-op, x / 6 + 1/2 clipped to [0, 1] (times
 * x): the same function, rounded differently (a few ulps). Returns 2 (hard_swish), 1
 * (hard_sigmoid) or 0. */
static int hard_pattern(const builder *b, int at, int grads) {
    const cd_graph *g = b->g;
    const cd_plan *p = b->p;
    if (at + 3 >= g->num_nodes || p->keep_out[at]) return 0;
    const cd_node *plus3 = &g->nodes[at + 1], *relu6 = &g->nodes[at + 2], *sixth = &g->nodes[at + 3];
    float s, o;
    if (!cd_rescale_of(plus3, &s, &o) || s != 1.f || o != 3.f || plus3->inputs[0] != at) return 0;
    const cd_post_op r = cd_node_post_op(relu6); /* declared as clip(x, 0, 6) */
    if (r.kind != CD_POST_ACT || r.count != 1 || r.eltwise[0].alg != CD_ELTWISE_CLIP ||
        r.eltwise[0].alpha != 0.f || r.eltwise[0].beta != 6.f || relu6->inputs[0] != at + 1)
        return 0;
    if (!cd_rescale_of(sixth, &s, &o) || s != 1.f / 6.f || o != 0.f || sixth->inputs[0] != at + 2)
        return 0;
    for (int k = at + 1; k <= at + 2; k++)
        if (p->keep_out[k] || p->last_use[k] != k + 1) return 0;
    for (int k = at + 1; k <= at + 3; k++)
        if (grads && p->needs_grad[k]) return 0;
    if (p->last_use[at] == at + 1) return 1;
    if (at + 4 >= g->num_nodes || p->last_use[at] != at + 4 || p->keep_out[at + 3] ||
        p->last_use[at + 3] != at + 4 || (grads && p->needs_grad[at + 4]))
        return 0;
    const cd_node *mul = &g->nodes[at + 4]; /* declared as a multiply, of equal shapes */
    if (cd_node_post_op(mul).kind != CD_POST_MUL || mul->num_inputs != 2 ||
        !((mul->inputs[0] == at && mul->inputs[1] == at + 3) ||
          (mul->inputs[0] == at + 3 && mul->inputs[1] == at)) ||
        cd_shape_size(&mul->shape) != cd_shape_size(&g->nodes[at].shape))
        return 0;
    return 2;
}

/* The post-ops after conv c: [norm (inference mode)] [act] [add (the other input from before
 * `first`) [act]], each the only reader of the one before. Trainable blocks (train) take
 * [norm] [act whose derivative comes from its output] and need no gradient check on them. */
static chain_at find_chain(const builder *b, int c, int first, int train) {
    const cd_graph *g = b->g;
    const cd_plan *p = b->p;
    const int grads = b->keep == CD_KEEP_FOR_BACKWARD && !train;
    chain_at ch = {-1, -1, -1, -1, -1, c, 0};
    cd_post_op op;
    int at = c;
    if (continues(b, at, at + 1, CD_POST_NORM, &op, train) && g->nodes[at + 1].inputs[0] == at &&
        !cd_node_mode(&g->nodes[at + 1], b->training) && !(grads && p->needs_grad[at + 1]))
        ch.norm = ++at;
    const int hard = train ? 0 : hard_pattern(b, at, grads);
    if (hard) { /* [norm] -> hard_sigmoid / hard_swish: the chain ends with it */
        ch.act = at + 1, ch.hard = hard;
        ch.last = at + (hard == 2 ? 4 : 3);
        return ch;
    }
    if (continues(b, at, at + 1, CD_POST_ACT, &op, train) && !(grads && p->needs_grad[at + 1]) &&
        (!train || op.count == 0 || op.grad_from_output))
        ch.act = ++at;
    /* a Dropout in inference mode (EfficientNet's stochastic depth before its Add) is the
     * identity: the block passes over it, writing what the Dropout would have copied */
    if (!train && continues(b, at, at + 1, CD_POST_DROP, &op, 0) &&
        !cd_node_mode(&g->nodes[at + 1], b->training) && !(grads && p->needs_grad[at + 1]))
        ++at;
    if (!train && continues(b, at, at + 1, CD_POST_ADD, &op, 0) && !(grads && p->needs_grad[at + 1])) {
        const cd_node *add = &g->nodes[at + 1];
        const int other = add->inputs[0] == at ? add->inputs[1] : add->inputs[0];
        if (other < first && (add->inputs[0] == at) != (add->inputs[1] == at)) {
            ch.add = ++at;
            ch.skip = other;
            if (continues(b, at, at + 1, CD_POST_ACT, &op, 0) && !(grads && p->needs_grad[at + 1]))
                ch.act2 = ++at;
        }
    }
    ch.last = at;
    return ch;
}

/* Can conv c (block starting at `first`: c, or the ZeroPadding2D before it) run as one fused
 * inference block with post-ops after it? last < 0: no. */
static chain_at fusion_at(const builder *b, int c, int first) {
    const cd_graph *g = b->g;
    const cd_plan *p = b->p;
    chain_at none = {-1, -1, -1, -1, -1, -1, 0};
    if (b->keep == CD_KEEP_ALL || !has(g, c, CD_OP_CONV)) return none;
    /* gradients only matter to a forward that a backward will follow */
    const int grads = b->keep == CD_KEEP_FOR_BACKWARD;
    if (grads && p->needs_grad[c]) return none;
    chain_at ch = find_chain(b, c, first, 0);
    return ch.last > c ? ch : none;
}

/* Can conv i run as a trainable block in a training forward: conv [norm] [act]? */
static chain_at train_fusion_at(const builder *b, int i) {
    const cd_graph *g = b->g;
    chain_at none = {-1, -1, -1, -1, -1, -1, 0};
    if (b->keep != CD_KEEP_FOR_BACKWARD || !has(g, i, CD_OP_CONV)) return none;
    const cd_node *conv = &g->nodes[i];
    if (!cd_node_trains(conv) || !cd_conv_trainable_fits(conv)) return none;
    chain_at ch = find_chain(b, i, i, 1);
    return ch.last > i ? ch : none;
}

/* Does the fused block c -> [norm] -> act (at `last`) go on into a [pad] depthwise conv ->
 * norm -> act block oneDNN runs as the conv's depthwise post-op (float32 only)? Returns the
 * depthwise conv's index (*dw_chain its chain), or -1. */
static int dw_tail_at(const builder *b, int c, int last, chain_at *dw_chain) {
    const cd_graph *g = b->g;
    const cd_plan *p = b->p;
    if (cd_get_precision() == CD_PRECISION_BF16) return -1;
    /* the tail reads the block's activation (a Dropout passed over would look like a pad) */
    if (cd_node_post_op(&g->nodes[last]).kind == CD_POST_DROP) return -1;
    int j = last + 1;
    if (p->keep_out[last] || p->last_use[last] != j || j >= g->num_nodes) return -1;
    const cd_node *zeropad = NULL;
    if (has(g, j, CD_OP_FUSE_PAD)) {
        zeropad = &g->nodes[j];
        if (zeropad->inputs[0] != last || p->keep_out[j] || p->last_use[j] != j + 1 ||
            ++j >= g->num_nodes)
            return -1;
    }
    const cd_node *dw = &g->nodes[j];
    if (!has(g, j, CD_OP_CONV) || dw->inputs[0] != j - 1) return -1;
    chain_at ch = fusion_at(b, j, j);
    if (ch.last < 0 || ch.norm < 0 || ch.act < 0 || ch.add >= 0) return -1;
    /* both activations ReLUs (MobileNetV2's ReLU6), as the tail was measured with */
    cd_dw_tail tail = {(cd_node *)dw, &g->nodes[ch.norm], zeropad, cd_node_post_op(&g->nodes[ch.act])};
    const cd_post_op expand_act = cd_node_post_op(&g->nodes[last]);
    float hi;
    if (!cd_post_act_relu_like(&tail.act, &hi) || !cd_post_act_relu_like(&expand_act, &hi) ||
        !cd_dw_tail_fits(&tail, &g->nodes[c], CD_DW_TAIL_BYTES))
        return -1;
    *dw_chain = ch;
    return j;
}

static cd_step *add_step(cd_plan *p, cd_step_kind kind, int first, int last) {
    cd_step *s = &p->steps[p->num_steps++];
    *s = (cd_step){kind, first, last, -1, -1, -1, -1, -1, -1, -1, 0, 0};
    return s;
}

static void plan_steps(builder *b) {
    const cd_graph *g = b->g;
    cd_plan *p = b->p;
    const int fb = b->keep == CD_KEEP_FOR_BACKWARD;
    p->num_steps = 0;
    add_step(p, CD_STEP_LAYER, 0, 0);
    for (int i = 1; i < g->num_nodes; i++) {
        /* a pad whose only reader is a fusable conv joins the block */
        int c = i;
        if (has(g, i, CD_OP_FUSE_PAD) && i + 1 < g->num_nodes && !p->keep_out[i] &&
            p->last_use[i] == i + 1 && g->nodes[i + 1].inputs[0] == i && has(g, i + 1, CD_OP_CONV) &&
            !(fb && p->needs_grad[i]))
            c = i + 1;
        chain_at ch = fusion_at(b, c, i);
        int train = 0;
        if (ch.last < 0 && (ch = train_fusion_at(b, i)).last >= 0) {
            c = i;
            train = 1;
            /* the norm and an activation read their inputs for their own backward; the block
             * keeps only its source and, when it ends in an activation, its output */
            for (int k = i; k < ch.last; k++) p->keep_out[k] = 0;
            if (ch.act >= 0) p->keep_out[ch.last] = 1;
        }
        if (ch.last < 0) {
            add_step(p, CD_STEP_LAYER, i, i);
            continue;
        }
        int last = ch.last, dw = -1;
        chain_at dw_chain;
        if (!train && ch.act >= 0 && ch.add < 0 && ch.act == last &&
            (dw = dw_tail_at(b, c, last, &dw_chain)) >= 0)
            last = dw_chain.last; /* ... -> [pad] depthwise -> norm -> act */
        cd_step *s = add_step(p, train ? CD_STEP_TRAIN : CD_STEP_FUSED, i, last);
        s->conv = c, s->norm = ch.norm, s->act = ch.act, s->add = ch.add, s->act2 = ch.act2;
        s->skip = ch.skip, s->dw = dw, s->hard = ch.hard;
        i = last;
    }
    for (int k = 0; k < p->num_steps; k++)
        for (int i = p->steps[k].first; i <= p->steps[k].last; i++) p->step_of[i] = k;
}

/* Each node's effective training flag (fused blocks run in inference mode). */
static void plan_modes(builder *b) {
    const cd_graph *g = b->g;
    cd_plan *p = b->p;
    for (int i = 0; i < g->num_nodes; i++)
        p->training_of[i] = p->steps[p->step_of[i]].kind == CD_STEP_LAYER
                                ? (unsigned char)cd_node_mode(&g->nodes[i], b->training) : 0;
}

/* A trainable block ends without an activation or in a ReLU (whose mask a bf16 gradient
 * takes bit-wise); another activation's derivative is taken in float32. */
static int relu_or_none(const cd_graph *g, const cd_step *s) {
    if (s->act < 0) return 1;
    const cd_post_op op = cd_node_post_op(&g->nodes[s->act]);
    float hi;
    return op.count == 0 || cd_post_act_relu_like(&op, &hi);
}

/* bf16 mode: which block outputs are stored as bfloat16 (their readers are all blocks of
 * the same kind that take a bf16 operand there), and which output gradients. */
static void plan_storage(builder *b) {
    const cd_graph *g = b->g;
    cd_plan *p = b->p;
    memset(p->out_bf16, 0, (size_t)g->num_nodes);
    memset(p->dout_bf16, 0, (size_t)g->num_nodes);
    if (cd_get_precision() != CD_PRECISION_BF16) return;
    for (int k = 0; k < p->num_steps; k++) {
        const cd_step *s = &p->steps[k];
        if (s->kind != CD_STEP_FUSED && s->kind != CD_STEP_TRAIN) continue;
        const int out = s->last;
        int readers = 0, block_readers = 0;
        for (int j = out + 1; j < g->num_nodes; j++) {
            const cd_node *r = &g->nodes[j];
            const cd_step *rs = &p->steps[p->step_of[j]];
            for (int q = 0; q < r->num_inputs; q++) {
                if (r->inputs[q] != out) continue;
                readers++;
                if (rs->kind == s->kind && rs->first == j) block_readers++; /* its source */
                else if (s->kind == CD_STEP_FUSED && rs->kind == CD_STEP_FUSED && rs->add == j)
                    block_readers++; /* a fused block's Add skip input */
            }
        }
        if (readers == 0 || readers != block_readers) continue;
        if (s->kind == CD_STEP_FUSED) {
            p->out_bf16[out] = !p->keep_out[out];
        } else {
            /* kept for the backward only: the block's own mask and its reader's
             * backward-weights read it as bf16; with one reader its gradient is written once,
             * by that reader's backward-data, so it is stored as bf16 too */
            p->out_bf16[out] = 1;
            p->dout_bf16[out] = readers == 1 && relu_or_none(g, s);
        }
    }
}

/* The frozen prefix: nodes 1..P that are fused inference blocks or layers running sample by
 * sample here (no gradient through them, not batch-coupled in their mode; layers with
 * per-batch-size states get their own for the micro-batches), with at least one block.
 * Returns P, 0 when there is none. */
static int frozen_prefix(const builder *b) {
    const cd_graph *g = b->g;
    const cd_plan *p = b->p;
    int last = 0, blocks = 0;
    for (int i = 1; i < g->num_nodes; i++) {
        const cd_step *s = &p->steps[p->step_of[i]];
        if (s->kind == CD_STEP_FUSED && s->first == i) {
            i = last = s->last;
            blocks++;
        } else if (s->kind == CD_STEP_LAYER && !p->keep_out[i] &&
                   !(b->keep == CD_KEEP_FOR_BACKWARD && p->needs_grad[i]) &&
                   !(has(g, i, CD_OP_COUPLES_BATCH) && p->training_of[i])) {
            last = i;
        } else {
            break;
        }
    }
    return blocks ? last : 0;
}

/* May the layers from `first` on run a training step in micro-batches? */
static int micro_trainable(const builder *b, int first) {
    const cd_graph *g = b->g;
    int convs = 0;
    for (int i = first; i < g->num_nodes; i++) {
        const cd_node *node = &g->nodes[i];
        if (has(g, i, CD_OP_COUPLES_BATCH) && cd_node_mode(node, 1)) return 0;
        if (has(g, i, CD_OP_CONV) && b->p->needs_grad[i]) convs = 1;
    }
    return convs;
}

static void plan_segments(builder *b) {
    cd_plan *p = b->p;
    p->prefix_last = b->n > CD_MICRO_BATCH ? frozen_prefix(b) : 0;
    p->micro_train = b->keep == CD_KEEP_FOR_BACKWARD && b->training &&
                     b->n > CD_TRAIN_MICRO_BATCH &&
                     micro_trainable(b, p->prefix_last > 0 ? p->prefix_last + 1 : 0);
    if (p->prefix_last > 0) { /* the segment goes first, before the steps it covers */
        memmove(p->steps + 1, p->steps, (size_t)p->num_steps * sizeof *p->steps);
        p->num_steps++;
        p->steps[0] = (cd_step){CD_STEP_SEGMENT, 0, p->prefix_last, -1, -1, -1, -1, -1, -1, -1,
                                CD_MICRO_BATCH};
        for (int i = 0; i < b->g->num_nodes; i++) p->step_of[i]++;
    }
}

static int cache_cut(const builder *b) {
    const cd_graph *g = b->g;
    const cd_plan *p = b->p;
    if (b->training || b->keep != CD_KEEP_LAST) return 0;
    int best = 0, reach = p->last_use[0]; /* the last reader of any node below c */
    for (int c = 1; c + 1 < g->num_nodes; c++) {
        const cd_node *node = &g->nodes[c];
        if (cd_node_trains(node) || p->training_of[c] || (node->ops->commit && cd_node_mode(node, 1)))
            break;
        if (p->steps[p->step_of[c]].last == c && reach <= c) best = c;
        if (p->last_use[c] > reach) reach = p->last_use[c];
    }
    return best;
}

static void plan_free(cd_plan *p) {
    if (!p) return;
    free(p->steps);
    free(p->keep_out);
    free(p->needs_grad);
    free(p->training_of);
    free(p->out_bf16);
    free(p->dout_bf16);
    free(p->last_use);
    free(p->step_of);
    free(p);
}

static cd_plan *plan_build(const cd_graph *g, int n, int training, int keep) {
    const size_t N = (size_t)g->num_nodes;
    cd_plan *p = calloc(1, sizeof *p);
    if (p) {
        p->steps = calloc(N + 1, sizeof *p->steps);
        p->keep_out = calloc(N, 1), p->needs_grad = calloc(N, 1);
        p->training_of = calloc(N, 1), p->out_bf16 = calloc(N, 1), p->dout_bf16 = calloc(N, 1);
        p->last_use = calloc(N, sizeof(int)), p->step_of = calloc(N, sizeof(int));
    }
    if (!p || !p->steps || !p->keep_out || !p->needs_grad || !p->training_of || !p->out_bf16 ||
        !p->dout_bf16 ||
        !p->last_use || !p->step_of) {
        plan_free(p);
        cd_fail(CD_ERR_MEMORY, "out of memory planning a graph of %zu layers", N);
        return NULL;
    }
    p->batch = n, p->training = training, p->keep = keep;
    p->precision_generation = cd_precision_generation();
    p->precision = cd_get_precision();
    p->grad_probe = g->grad_probe;
    p->structure_version = g->structure_version;
    builder b = {g, p, training, keep, n};
    plan_grads_and_keep(&b);
    plan_steps(&b);
    plan_modes(&b);
    plan_storage(&b);
    plan_segments(&b);
    p->cache_cut = cache_cut(&b);
    return p;
}

cd_plan *cd_plan_get(cd_graph *g, int n, int training, int keep) {
    training = !!training;
    int victim = 0;
    for (int k = 0; k < CD_PLAN_CACHE; k++) {
        cd_plan *p = g->plans[k];
        if (p && p->batch == n && p->training == training && p->keep == keep &&
            p->precision_generation == cd_precision_generation() &&
            p->grad_probe == g->grad_probe && p->structure_version == g->structure_version) {
            p->used = ++g->plan_clock;
            return p;
        }
        if (!p || (g->plans[victim] && p->used < g->plans[victim]->used)) victim = k;
    }
    cd_plan *p = plan_build(g, n, training, keep);
    if (!p) return NULL;
    if (g->plan == g->plans[victim]) g->plan = NULL;
    plan_free(g->plans[victim]);
    g->plans[victim] = p;
    p->used = ++g->plan_clock;
    return p;
}

void cd_plan_free_all(cd_graph *g) {
    for (int k = 0; k < CD_PLAN_CACHE; k++) {
        plan_free(g->plans[k]);
        g->plans[k] = NULL;
    }
    g->plan = NULL;
}

/* ---- printing ---- */

static const char *const step_names[] = {"layer", "fused", "train", "segment"};

/* An activation's name in a plan listing: its first eltwise step's ("relu", "clip", "swish",
 * ...; "linear" for the identity). */
static const char *act_name(const cd_node *node) {
    static const char *const names[] = {"?", "relu", "clip", "logistic", "tanh", "swish", "gelu",
                                        "elu", "linear", "soft_relu", "hardsigmoid", "hardswish"};
    const cd_post_op op = cd_node_post_op(node);
    if (op.count == 0) return "linear";
    const int a = (int)op.eltwise[0].alg;
    return a > 0 && a < (int)(sizeof names / sizeof *names) ? names[a] : "?";
}
static const char *const keep_names[] = {"all", "for_backward", "last"};

size_t cd_plan_describe(const cd_graph *g, const cd_plan *p, char *buf, size_t size) {
    size_t at = 0;
#define PUT(...)                                                                         \
    do {                                                                                 \
        int k_ = snprintf(buf + (at < size ? at : size), at < size ? size - at : 0, __VA_ARGS__); \
        if (k_ > 0) at += (size_t)k_;                                                    \
    } while (0)
    PUT("plan batch=%d training=%d keep=%s precision=%s micro_train=%d cache_cut=%d\n", p->batch,
        p->training, keep_names[p->keep], cd_get_precision() == CD_PRECISION_BF16 ? "bf16" : "fp32",
        p->micro_train, p->cache_cut);
    for (int k = 0; k < p->num_steps; k++) {
        const cd_step *s = &p->steps[k];
        PUT("%s %d-%d", step_names[s->kind], s->first, s->last);
        if (s->kind == CD_STEP_SEGMENT) PUT(" micro=%d", s->micro);
        if (s->kind == CD_STEP_FUSED || s->kind == CD_STEP_TRAIN) {
            /* the post-ops in order, e.g. post=bn+clip, post=bn+add+relu */
            PUT(" conv=%d post=", s->conv);
            const char *sep = "";
            if (s->norm >= 0) {
                PUT("%sbn", sep);
                sep = "+";
            }
            if (s->act >= 0) {
                PUT("%s%s", sep, s->hard ? (s->hard == 2 ? "hard_swish" : "hard_sigmoid")
                                         : act_name(&g->nodes[s->act]));
                sep = "+";
            }
            if (s->add >= 0) {
                PUT("%sadd", sep);
                sep = "+";
            }
            if (s->act2 >= 0) PUT("%s%s", sep, act_name(&g->nodes[s->act2]));
            if (s->dw >= 0) PUT(" dw=%d", s->dw);
            if (s->skip >= 0) PUT(" skip=%d", s->skip);
        }
        if (s->kind == CD_STEP_LAYER) PUT(" %s", g->nodes[s->first].ops->name);
        if (s->kind != CD_STEP_SEGMENT) {
            const int out = s->last;
            PUT(" out=%s%s%s%s", p->out_bf16[out] ? "bf16" : "f32", p->keep_out[out] ? " kept" : "",
                p->needs_grad[out] ? " grad" : "", p->dout_bf16[out] ? "=bf16" : "");
        }
        PUT("\n");
    }
#undef PUT
    return at;
}

cd_status cd_graph_describe_plan(cd_graph *g, int n, int training, cd_keep keep, char *buf,
                                 size_t size, size_t *needed) {
    if (g->num_nodes == 0) return cd_fail(CD_ERR_STATE, "the graph has no layers");
    if (n < 1 || n > 1 << 16) return cd_fail(CD_ERR_VALUE, "batch size must be >= 1, got %d", n);
    if (keep != CD_KEEP_ALL && keep != CD_KEEP_FOR_BACKWARD && keep != CD_KEEP_LAST)
        return cd_fail(CD_ERR_VALUE, "bad keep %d", (int)keep);
    cd_plan *p = plan_build(g, n, !!training, (int)keep); /* not cached: the runs' stay put */
    if (!p) return CD_ERR_MEMORY;
    *needed = cd_plan_describe(g, p, buf, size);
    if (buf && size) buf[*needed < size ? *needed : size - 1] = 0;
    plan_free(p);
    return CD_OK;
}
