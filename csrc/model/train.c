/* train.c — compile (loss + fresh optimizer state) and the training / evaluation step:
 * forward -> loss -> backward -> optimizer update, for a batch held in C. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buffers.h"
#include "core/error.h"
#include "model/graph_internal.h"
#include "optim/optimizer.h"

cd_status cd_graph_compile(cd_graph *g, const cd_optimizer_config *opt, cd_loss_kind loss) {
    CD_TRY(cd_optimizer_validate(opt));
    if (!cd_loss_valid(loss)) return cd_fail(CD_ERR_VALUE, "unknown loss %d", (int)loss);
    if (g->num_nodes < 2) return cd_fail(CD_ERR_STATE, "compile needs a graph with layers");
    g->opt = *opt;
    g->loss = loss;
    CD_TRY(cd_optimizer_reset(g));
    g->compiled = 1;
    return CD_OK;
}

cd_status cd_graph_set_accuracy_threshold(cd_graph *g, float threshold) {
    if (!isfinite(threshold)) return cd_fail(CD_ERR_VALUE, "threshold must be finite");
    g->accuracy_threshold = threshold;
    return CD_OK;
}

cd_status cd_graph_set_learning_rate(cd_graph *g, float lr) {
    if (!(lr >= 0.f) || !isfinite(lr))
        return cd_fail(CD_ERR_VALUE, "learning_rate must be finite and >= 0");
    g->opt.learning_rate = lr;
    return CD_OK;
}

/* The model's output as logits: (batch, k). */
static cd_status logits_width(const cd_graph *g, int *k) {
    const cd_node *last = &g->nodes[g->num_nodes - 1];
    if (last->shape.rank != 1)
        return cd_fail(CD_ERR_VALUE, "the model's output '%s' is not (batch, units): add "
                       "GlobalAveragePooling2D and Dense", last->name);
    *k = last->shape.c;
    return CD_OK;
}

int cd_graph_label_width(const cd_graph *g) {
    if (g->num_nodes < 1) return 1;
    return cd_loss_label_width(g->loss, g->nodes[g->num_nodes - 1].shape.c);
}

/* The activation the graph's last layer ends in (its kind's out_activation; none without). */
static cd_activation head_activation(const cd_graph *g) {
    const cd_node *last = &g->nodes[g->num_nodes - 1];
    return g->num_nodes >= 2 && last->ops->out_activation ? last->ops->out_activation(last)
                                                          : CD_ACT_NONE;
}

/* Keras's TensorFlow backend keeps a sigmoid's or softmax's input on its output tensor
 * (_keras_logits) and every crossentropy uses those logits when it finds them, with
 * from_logits True or False: no clipping, exact where probabilities round to 0 or 1. So when
 * the graph's last layer ends in the loss's activation (sigmoid for BCE, softmax for the
 * categorical ones) its step runs with head_logits set (that layer skips the activation,
 * nn/layer.h cd_io.logits); returns the from_logits kind to use and the activation the
 * accuracy applies. */
static cd_loss_kind head_kind(const cd_graph *g, cd_loss_kind kind, cd_activation *act) {
    const cd_activation head = head_activation(g);
    *act = CD_ACT_NONE;
    int binary = kind == CD_LOSS_BCE || kind == CD_LOSS_BCE_LOGITS;
    if (head == CD_ACT_NONE || head != (binary ? CD_ACT_SIGMOID : CD_ACT_SOFTMAX)) return kind;
    *act = head;
    switch (kind) {
    case CD_LOSS_BCE: return CD_LOSS_BCE_LOGITS;
    case CD_LOSS_SPARSE_CE: return CD_LOSS_SPARSE_CE_LOGITS;
    case CD_LOSS_CE: return CD_LOSS_CE_LOGITS;
    default: return kind;
    }
}

static cd_status logits_loss(cd_graph *g, cd_loss_kind kind, cd_activation act,
                             const float *labels, int n, float *loss, double *correct,
                             int want_grad) {
    const float *logits = cd_graph_logits(g);
    int k = 0;
    CD_TRY(logits_width(g, &k));
    if (want_grad && cd_grow_floats(&g->dlogits, &g->dlogits_count, (size_t)n * k, "loss gradient"))
        return CD_ERR_MEMORY;
    CD_TRY(cd_loss(kind, logits, labels, n, k, loss, want_grad ? g->dlogits : NULL));
    if (correct)
        CD_TRY(cd_accuracy(kind, logits, labels, n, k, act, g->accuracy_threshold, correct));
    return CD_OK;
}

/* A micro-batched step's loss: per micro-batch, the loss gradient of its samples (scaled
 * for the whole batch) and the running loss sum; the logits gather in g->logits_all. */
typedef struct {
    const float *labels;
    int n;
    double total;
    cd_loss_kind kind;
} micro_loss_ctx;

static cd_status micro_loss(cd_graph *g, int s0, int m, void *vctx) {
    micro_loss_ctx *ctx = vctx;
    const float *logits = cd_graph_logits(g);
    int k = 0;
    CD_TRY(logits_width(g, &k));
    if (cd_grow_floats(&g->dlogits, &g->dlogits_count, (size_t)m * k, "loss gradient") ||
        cd_grow_floats(&g->logits_all, &g->logits_all_count, (size_t)ctx->n * k, "logits"))
        return CD_ERR_MEMORY;
    memcpy(g->logits_all + (size_t)s0 * k, logits, (size_t)m * k * sizeof(float));
    return cd_loss_sum(ctx->kind, logits, ctx->labels + (size_t)s0 * cd_loss_label_width(ctx->kind, k),
                       m, k, ctx->n, &ctx->total, g->dlogits);
}

static cd_status check_loss(const cd_graph *g, float loss) {
    if (isfinite(loss)) return CD_OK;
    return cd_fail(CD_ERR_NUMERIC, "loss is %s at training step %lld; weights left as they "
                   "were before this step (lower the learning rate or check the inputs)",
                   isnan(loss) ? "NaN" : "infinite", (long long)g->step + 1);
}

/* After a step on a fused head's logits: the kept output becomes the model's (probabilities)
 * again, so get_output reads what predict would. */
static void outputs_as_model(cd_graph *g, cd_activation act, int n) {
    const int units = g->nodes[g->num_nodes - 1].shape.c;
    float *out = g->rt[g->num_nodes - 1].out;
    if (act == CD_ACT_NONE || !out) return;
    for (int i = 0; i < n; i++) cd_activate(act, out + (size_t)i * units, units);
}

static cd_status train_step(cd_graph *g, const float *x, const float *labels, int n,
                            float *loss, double *correct) {
    cd_activation act;
    cd_loss_kind kind = head_kind(g, g->loss, &act);
    g->head_logits = act != CD_ACT_NONE;
    micro_loss_ctx ctx = {labels, n, 0.0, kind};
    int micro = 0;
    CD_TRY(cd_graph_train_micro(g, x, n, micro_loss, &ctx, &micro));
    if (micro) {
        *loss = (float)(ctx.total / n);
        CD_TRY(check_loss(g, *loss));
        if (correct)
            CD_TRY(cd_accuracy(kind, g->logits_all, labels, n, g->nodes[g->num_nodes - 1].shape.c,
                               act, g->accuracy_threshold, correct));
    } else {
        CD_TRY(cd_graph_forward_mode(g, x, n, 1, CD_KEEP_FOR_BACKWARD));
        CD_TRY(logits_loss(g, kind, act, labels, n, loss, correct, 1));
        CD_TRY(check_loss(g, *loss));
        CD_TRY(cd_graph_backward(g, g->dlogits));
    }
    cd_graph_commit(g);
    CD_TRY(cd_optimizer_apply(g));
    g->step++;
    return CD_OK;
}

cd_status cd_graph_train_step(cd_graph *g, const float *x, const float *labels, int n,
                              float *loss, double *correct) {
    if (!g->compiled) return cd_fail(CD_ERR_STATE, "call compile() before training");
    cd_status s = train_step(g, x, labels, n, loss, correct);
    g->head_logits = 0;
    return s;
}

static cd_status eval_step(cd_graph *g, const float *x, const float *labels, int n, float *loss,
                           double *correct) {
    cd_activation act;
    cd_loss_kind kind = head_kind(g, g->loss, &act);
    g->head_logits = act != CD_ACT_NONE;
    CD_TRY(cd_graph_forward_mode(g, x, n, 0, CD_KEEP_LAST));
    cd_graph_commit(g);
    CD_TRY(logits_loss(g, kind, act, labels, n, loss, correct, 0));
    outputs_as_model(g, act, n);
    return CD_OK;
}

cd_status cd_graph_eval_step(cd_graph *g, const float *x, const float *labels, int n, float *loss,
                             double *correct) {
    if (!g->compiled) return cd_fail(CD_ERR_STATE, "call compile() before evaluate()");
    cd_status s = eval_step(g, x, labels, n, loss, correct);
    g->head_logits = 0;
    return s;
}

static cd_status eval_from(cd_graph *g, int n, int cut, const void *src, const float *labels,
                           float *loss, double *correct) {
    cd_activation act;
    cd_loss_kind kind = head_kind(g, g->loss, &act);
    g->head_logits = act != CD_ACT_NONE;
    CD_TRY(cd_graph_forward_from(g, n, cut, src));
    cd_graph_commit(g);
    CD_TRY(logits_loss(g, kind, act, labels, n, loss, correct, 0));
    outputs_as_model(g, act, n);
    return CD_OK;
}

cd_status cd_graph_eval_from(cd_graph *g, int n, int cut, const void *src, const float *labels,
                             float *loss, double *correct) {
    if (!g->compiled) return cd_fail(CD_ERR_STATE, "call compile() before evaluate()");
    cd_status s = eval_from(g, n, cut, src, labels, loss, correct);
    g->head_logits = 0;
    return s;
}

static cd_status loss_backward(cd_graph *g, const float *x, const float *labels, int n,
                               int training, cd_loss_kind kind, float *loss) {
    cd_activation act;
    kind = head_kind(g, kind, &act);
    g->head_logits = act != CD_ACT_NONE;
    CD_TRY(cd_graph_forward(g, x, n, training));
    CD_TRY(logits_loss(g, kind, act, labels, n, loss, NULL, 1));
    CD_TRY(cd_graph_backward(g, g->dlogits));
    outputs_as_model(g, act, n);
    return CD_OK;
}

cd_status cd_graph_loss_backward(cd_graph *g, const float *x, const float *labels, int n,
                                 int training, cd_loss_kind kind, float *loss) {
    if (!cd_loss_valid(kind)) return cd_fail(CD_ERR_VALUE, "unknown loss %d", (int)kind);
    if (g->num_nodes < 2) return cd_fail(CD_ERR_STATE, "the graph has no layers");
    cd_status s = loss_backward(g, x, labels, n, training, kind, loss);
    g->head_logits = 0;
    return s;
}

/* Grad-CAM's gradient: the output gradient dy pushed back to `layer` (every output kept,
 * layer by layer; with `logits`, dy is w.r.t. a sigmoid/softmax head's logits). The probe
 * (g->grad_probe, part of the plan's key) marks that node as needing a gradient, so the
 * backward reaches it even below frozen layers, and copies its gradient into g->probe
 * before the buffer is reused (model/exec.c). */
static cd_status output_gradient(cd_graph *g, const float *x, int n, int training, int layer,
                                 int logits, const float *dy, float *dst, size_t count) {
    const cd_node *node = &g->nodes[layer];
    cd_activation act = logits ? head_activation(g) : CD_ACT_NONE;
    g->head_logits = act != CD_ACT_NONE;
    if (count != (size_t)n * cd_node_sample_size(node))
        return cd_fail(CD_ERR_VALUE, "layer '%s': the gradient holds %zu floats, not %zu",
                       node->name, (size_t)n * cd_node_sample_size(node), count);
    if (cd_grow_floats(&g->probe, &g->probe_count, count, "layer gradient")) return CD_ERR_MEMORY;
    g->grad_probe = layer + 1;
    CD_TRY(cd_graph_forward(g, x, n, training));
    CD_TRY(cd_graph_backward(g, dy));
    memcpy(dst, g->probe, count * sizeof(float));
    outputs_as_model(g, act, n);
    return CD_OK;
}

cd_status cd_graph_output_gradient(cd_graph *g, const float *x, int n, int training, int layer,
                                   int logits, const float *dy, float *dst, size_t count) {
    if (layer < 1 || layer >= g->num_nodes - 1)
        return cd_fail(CD_ERR_VALUE, "layer index %d: pick a layer between the input and the "
                       "output (1 .. %d)", layer, g->num_nodes - 2);
    cd_status s = output_gradient(g, x, n, training, layer, logits, dy, dst, count);
    g->grad_probe = 0;
    g->head_logits = 0;
    return s;
}
