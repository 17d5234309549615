/* train.c — compile (loss + fresh optimizer state) and the training / evaluation step:
 * forward -> loss -> backward -> optimizer update, for a batch held in C. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buffers.h"
#include "core/error.h"
#include "model/graph_internal.h"

cd_status cd_optimizer_validate(const cd_optimizer_config *o);
cd_status cd_optimizer_reset(cd_graph *g);
cd_status cd_optimizer_apply(cd_graph *g);

cd_status cd_graph_compile(cd_graph *g, const cd_optimizer_config *opt, cd_loss_kind loss) {
    CD_TRY(cd_optimizer_validate(opt));
    if (loss != CD_LOSS_BCE_LOGITS && loss != CD_LOSS_SPARSE_CE_LOGITS)
        return cd_fail(CD_ERR_VALUE, "unknown loss %d", (int)loss);
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

static cd_status logits_loss(cd_graph *g, const float *labels, int n, float *loss,
                             double *correct, int want_grad) {
    const float *logits = cd_graph_logits(g);
    int k = 0;
    CD_TRY(logits_width(g, &k));
    if (want_grad && cd_grow_floats(&g->dlogits, &g->dlogits_count, (size_t)n * k, "loss gradient"))
        return CD_ERR_MEMORY;
    CD_TRY(cd_loss(g->loss, logits, labels, n, k, loss, want_grad ? g->dlogits : NULL));
    if (correct)
        CD_TRY(cd_accuracy(g->loss, logits, labels, n, k, g->accuracy_threshold, correct));
    return CD_OK;
}

/* A micro-batched step's loss: per micro-batch, the loss gradient of its samples (scaled
 * for the whole batch) and the running loss sum; the logits gather in g->logits_all. */
typedef struct {
    const float *labels;
    int n;
    double total;
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
    return cd_loss_sum(g->loss, logits, ctx->labels + s0, m, k, ctx->n, &ctx->total,
                       g->dlogits);
}

static cd_status check_loss(const cd_graph *g, float loss) {
    if (isfinite(loss)) return CD_OK;
    return cd_fail(CD_ERR_NUMERIC, "loss is %s at training step %lld; weights left as they "
                   "were before this step (lower the learning rate or check the inputs)",
                   isnan(loss) ? "NaN" : "infinite", (long long)g->step + 1);
}

cd_status cd_graph_train_step(cd_graph *g, const float *x, const float *labels, int n,
                              float *loss, double *correct) {
    if (!g->compiled) return cd_fail(CD_ERR_STATE, "call compile() before training");
    micro_loss_ctx ctx = {labels, n, 0.0};
    int micro = 0;
    CD_TRY(cd_graph_train_micro(g, x, n, micro_loss, &ctx, &micro));
    if (micro) {
        *loss = (float)(ctx.total / n);
        CD_TRY(check_loss(g, *loss));
        if (correct)
            CD_TRY(cd_accuracy(g->loss, g->logits_all, labels, n, g->nodes[g->num_nodes - 1].shape.c,
                               g->accuracy_threshold, correct));
    } else {
        CD_TRY(cd_graph_forward_mode(g, x, n, 1, CD_KEEP_FOR_BACKWARD));
        CD_TRY(logits_loss(g, labels, n, loss, correct, 1));
        CD_TRY(check_loss(g, *loss));
        CD_TRY(cd_graph_backward(g, g->dlogits));
    }
    cd_graph_commit(g);
    CD_TRY(cd_optimizer_apply(g));
    g->step++;
    return CD_OK;
}

cd_status cd_graph_eval_step(cd_graph *g, const float *x, const float *labels, int n, float *loss,
                             double *correct) {
    if (!g->compiled) return cd_fail(CD_ERR_STATE, "call compile() before evaluate()");
    CD_TRY(cd_graph_forward_mode(g, x, n, 0, CD_KEEP_LAST));
    cd_graph_commit(g);
    return logits_loss(g, labels, n, loss, correct, 0);
}
