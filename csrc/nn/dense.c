/* dense.c — Dense(units): x (n, in) @ kernel (in, units) + bias (units), then an optional
 * softmax or sigmoid. Backward: dz from the activation, dkernel = x^T dz, dbias = sum dz,
 * dx = dz kernel^T. The three products are oneDNN matmuls built once per batch size
 * (prepare; the transposes are the same buffers read in "ba" order), deterministic for a
 * thread count; dbias sums the batch in order.
 * With io->logits the activation is skipped (train.c: a crossentropy on a sigmoid/softmax
 * head is computed on its logits, as Keras does); then out and dout are the logits and
 * their gradient. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/runtime.h"
#include "core/vec.h"
#include "nn/layer.h"

enum { KERNEL, BIAS };

/* y (units) in place: softmax (max-shifted, double sum) or sigmoid. */
void cd_activate(cd_activation act, float *y, int units) {
    if (act == CD_ACT_SOFTMAX) {
        float m = y[0];
        for (int u = 1; u < units; u++) m = y[u] > m ? y[u] : m;
        double sum = 0;
        for (int u = 0; u < units; u++) sum += (y[u] = expf(y[u] - m));
        for (int u = 0; u < units; u++) y[u] = (float)(y[u] / sum);
    } else if (act == CD_ACT_SIGMOID) {
        for (int u = 0; u < units; u++) y[u] = 1.0f / (1.0f + expf(-y[u]));
    }
}

typedef struct {
    int use_bias;
    cd_activation activation;
} dense_hp;

/* hyperparameters: units, use_bias, activation (cd_activation); weights kernel (in, units),
 * bias (units) */
static cd_status dense_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    dense_hp *hp = node->hp;
    int units, bias, act;
    const int yes = 1, none = CD_ACT_NONE;
    CD_TRY(cd_hp_ints(h, "units", 1, NULL, &units));
    CD_TRY(cd_hp_ints(h, "use_bias", 1, &yes, &bias));
    CD_TRY(cd_hp_ints(h, "activation", 1, &none, &act));
    if (in[0].rank != 1)
        return cd_fail(CD_ERR_VALUE, "layer '%s': Dense needs a 2-D (N, C) input; add "
                       "GlobalAveragePooling2D before it", node->name);
    if (units < 1 || units > 1 << 20)
        return cd_fail(CD_ERR_VALUE, "layer '%s': bad units %d", node->name, units);
    if (act != CD_ACT_NONE && act != CD_ACT_SOFTMAX && act != CD_ACT_SIGMOID)
        return cd_fail(CD_ERR_VALUE, "layer '%s': unknown activation %d", node->name, act);
    hp->use_bias = bias != 0;
    hp->activation = (cd_activation)act;
    node->shape = (cd_shape){1, 1, 1, units};
    const int kdims[2] = {in[0].c, units};
    CD_TRY(cd_declare_param(node, "kernel", 2, kdims, 1, 0.f));
    if (hp->use_bias) {
        const int bdims[1] = {units};
        CD_TRY(cd_declare_param(node, "bias", 1, bdims, 1, 0.f));
    }
    return CD_OK;
}

/* The matmuls for n samples; memories are bound to the buffers at each call. */
typedef struct {
    dnnl_primitive_t fwd, bwd_w, bwd_d, bwd_d_acc; /* bwd_d_acc: dx += (a sum post-op) */
    dnnl_memory_t x, w, b, y;         /* forward: x (n, in) @ w (in, units) + b -> y */
    dnnl_memory_t xt, dz, dw;         /* dw (in, units) = x^T (in, n; x read as "ba") @ dz */
    dnnl_memory_t wt, dx;             /* dx (n, in) = dz @ w^T (units, in; w read as "ba") */
} dense_state;

static void dense_release(cd_node *node) {
    dense_state *s = node->state;
    if (!s) return;
    dnnl_primitive_t prims[] = {s->fwd, s->bwd_w, s->bwd_d, s->bwd_d_acc};
    for (size_t i = 0; i < sizeof prims / sizeof *prims; i++)
        if (prims[i]) dnnl_primitive_destroy(prims[i]);
    dnnl_memory_t mems[] = {s->x, s->w, s->b, s->y, s->xt, s->dz, s->dw, s->wt, s->dx};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    free(s);
    node->state = NULL;
}

/* A 2-D f32 memory (rows, cols) stored row-major (tag ab) or as its transpose (ba). */
static cd_status mem2d(dnnl_memory_t *m, dnnl_memory_desc_t *md, int64_t rows, int64_t cols,
                       int transposed, const char *name) {
    dnnl_dims_t d = {rows, cols};
    CD_DNNL(dnnl_memory_desc_create_with_tag(md, 2, d, dnnl_f32, transposed ? dnnl_ba : dnnl_ab),
            "descriptor", name);
    CD_DNNL(dnnl_memory_create(m, *md, cd_engine(), DNNL_MEMORY_NONE), "memory", name);
    return CD_OK;
}

/* c = a b (+ bias) (+ c when accumulate: a sum post-op) */
static cd_status matmul(dnnl_primitive_t *p, const_dnnl_memory_desc_t a, const_dnnl_memory_desc_t b,
                        const_dnnl_memory_desc_t bias, const_dnnl_memory_desc_t c, int accumulate,
                        const char *name) {
    dnnl_primitive_attr_t attr;
    CD_TRY(cd_make_attr(&attr));
    dnnl_primitive_desc_t pd = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_status_t st = dnnl_success;
    if (accumulate) {
        st = dnnl_post_ops_create(&po);
        if (st == dnnl_success) st = dnnl_post_ops_append_sum(po, 1.f, 0, dnnl_data_type_undef);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
        if (po) dnnl_post_ops_destroy(po);
    }
    if (st == dnnl_success)
        st = dnnl_matmul_primitive_desc_create(&pd, cd_engine(), a, b, bias, c, attr);
    dnnl_primitive_attr_destroy(attr);
    CD_DNNL(st, "matmul descriptor", name);
    st = dnnl_primitive_create(p, pd);
    dnnl_primitive_desc_destroy(pd);
    CD_DNNL(st, "matmul", name);
    return CD_OK;
}

static cd_status dense_prepare(cd_node *node, const cd_shape *in, int n) {
    const dense_hp *hp = node->hp;
    dense_state *s = calloc(1, sizeof *s);
    if (!s) return cd_fail(CD_ERR_MEMORY, "out of memory preparing '%s'", node->name);
    node->state = s;
    const int64_t k = in[0].c, u = node->shape.c;
    const char *name = node->name;
    dnnl_memory_desc_t x = NULL, w = NULL, b = NULL, y = NULL, xt = NULL, dz = NULL, dw = NULL,
                       wt = NULL, dx = NULL;
    cd_status st = mem2d(&s->x, &x, n, k, 0, name);
    if (st == CD_OK) st = mem2d(&s->w, &w, k, u, 0, name);
    if (st == CD_OK && hp->use_bias) st = mem2d(&s->b, &b, 1, u, 0, name);
    if (st == CD_OK) st = mem2d(&s->y, &y, n, u, 0, name);
    if (st == CD_OK) st = mem2d(&s->xt, &xt, k, n, 1, name);
    if (st == CD_OK) st = mem2d(&s->dz, &dz, n, u, 0, name);
    if (st == CD_OK) st = mem2d(&s->dw, &dw, k, u, 0, name);
    if (st == CD_OK) st = mem2d(&s->wt, &wt, u, k, 1, name);
    if (st == CD_OK) st = mem2d(&s->dx, &dx, n, k, 0, name);
    if (st == CD_OK) st = matmul(&s->fwd, x, w, b, y, 0, name);
    if (st == CD_OK) st = matmul(&s->bwd_w, xt, dz, NULL, dw, 0, name);
    if (st == CD_OK) st = matmul(&s->bwd_d, dz, wt, NULL, dx, 0, name);
    if (st == CD_OK) st = matmul(&s->bwd_d_acc, dz, wt, NULL, dx, 1, name);
    /* the descriptors were copied into the memories and primitives */
    dnnl_memory_desc_t mds[] = {x, w, b, y, xt, dz, dw, wt, dx};
    for (size_t i = 0; i < sizeof mds / sizeof *mds; i++)
        if (mds[i]) dnnl_memory_desc_destroy(mds[i]);
    return st;
}

static cd_status bind(dnnl_memory_t m, const void *p, const char *name) {
    CD_DNNL(dnnl_memory_set_data_handle(m, (void *)p), "memory", name);
    return CD_OK;
}

static cd_status dense_forward(cd_node *node, const cd_io *io) {
    const dense_hp *hp = node->hp;
    dense_state *s = node->state;
    const int units = node->shape.c, n = io->n;
    const cd_activation act = io->logits ? CD_ACT_NONE : hp->activation;
    CD_TRY(bind(s->x, io->in[0], node->name));
    CD_TRY(bind(s->w, node->params[KERNEL].value, node->name));
    CD_TRY(bind(s->y, io->out, node->name));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, s->x}, {DNNL_ARG_WEIGHTS, s->w}, {DNNL_ARG_DST, s->y}};
    int nargs = 3;
    if (hp->use_bias) {
        CD_TRY(bind(s->b, node->params[BIAS].value, node->name));
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, s->b};
    }
    CD_TRY(cd_execute(s->fwd, nargs, args, "dense forward", node->name));
    if (act != CD_ACT_NONE)
        for (int b = 0; b < n; b++) cd_activate(act, io->out + (size_t)b * units, units);
    return CD_OK;
}

static cd_status dense_backward(cd_node *node, const cd_io *io) {
    const dense_hp *hp = node->hp;
    const int units = node->shape.c, n = io->n;
    const float *x = io->in[0];
    /* dz: gradient before the activation, (n, units) */
    float *dz = io->scratch;
    const cd_activation act = io->logits ? CD_ACT_NONE : hp->activation;
    for (int b = 0; b < n; b++) {
        const float *y = io->out + (size_t)b * units, *dy = io->dout + (size_t)b * units;
        float *d = dz + (size_t)b * units;
        if (act == CD_ACT_SOFTMAX) {
            double dot = 0;
            for (int u = 0; u < units; u++) dot += (double)dy[u] * y[u];
            for (int u = 0; u < units; u++) d[u] = y[u] * (dy[u] - (float)dot);
        } else if (act == CD_ACT_SIGMOID) {
            for (int u = 0; u < units; u++) d[u] = dy[u] * y[u] * (1.0f - y[u]);
        } else {
            memcpy(d, dy, (size_t)units * sizeof(float));
        }
    }
    dense_state *s = node->state;
    CD_TRY(bind(s->dz, dz, node->name));
    if (io->weight_grads) { /* dkernel = x^T dz */
        CD_TRY(bind(s->xt, x, node->name));
        CD_TRY(bind(s->dw, node->params[KERNEL].grad, node->name));
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, s->xt}, {DNNL_ARG_WEIGHTS, s->dz},
                                   {DNNL_ARG_DST, s->dw}};
        CD_TRY(cd_execute(s->bwd_w, 3, args, "dense backward weights", node->name));
        if (hp->use_bias) {
            float *db = node->params[BIAS].grad;
            for (int u = 0; u < units; u++) {
                float s = 0.f;
                for (int b = 0; b < n; b++) s += dz[(size_t)b * units + u];
                db[u] = s;
            }
        }
    }
    if (io->dx[0]) { /* dx (+)= dz kernel^T */
        CD_TRY(bind(s->wt, node->params[KERNEL].value, node->name));
        CD_TRY(bind(s->dx, io->dx[0], node->name));
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, s->dz}, {DNNL_ARG_WEIGHTS, s->wt},
                                   {DNNL_ARG_DST, s->dx}};
        CD_TRY(cd_execute(io->acc[0] ? s->bwd_d_acc : s->bwd_d, 3, args, "dense backward data",
                          node->name));
    }
    return CD_OK;
}

/* through softmax/sigmoid the backward reads the layer's own output */
static cd_activation dense_activation(const cd_node *node) {
    return ((const dense_hp *)node->hp)->activation;
}

static unsigned dense_flags(const cd_node *node) {
    const dense_hp *hp = node->hp;
    return CD_OP_READS_INPUT | (hp->activation != CD_ACT_NONE ? CD_OP_READS_OUTPUT : 0);
}

const cd_layer_ops cd_dense_ops = {
    .name = "Dense", .flags = CD_OP_READS_INPUT, .node_flags = dense_flags, .min_inputs = 1,
    .max_inputs = 1, .hp_size = sizeof(dense_hp), .build = dense_build, .prepare = dense_prepare,
    .forward = dense_forward, .backward = dense_backward, .release = dense_release,
    .out_activation = dense_activation,
};
