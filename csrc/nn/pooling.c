/* pooling.c — MaxPooling2D and AveragePooling2D on oneDNN pooling primitives.
 *
 * src (n, ih, iw, c) NHWC -> dst (n, oh, ow, c) NHWC; window (ph, pw), strides (sh, sw),
 * explicit padding (top, bottom, left, right) as Keras's "valid"/"same" give it (the Python
 * side computes it): o = (i + pad_before + pad_after - p) / s + 1.
 *   max:  y = max over the window's input pixels (padding never wins, as TF's SAME);
 *         dx[argmax] += dy (oneDNN records the argmax in a workspace at forward).
 *   avg:  y = mean over the window's input pixels, padding excluded (TF's SAME);
 *         dx[k] += dy / count for each pixel k of the window.
 * Primitives are built once per batch size (prepare); the backward one at first use. The
 * backward reads neither input nor output: the workspace of the last forward on this batch
 * size (max) or nothing (avg). */
#include <stdlib.h>

#include "core/error.h"
#include "core/runtime.h"
#include "core/vec.h"
#include "nn/layer.h"

typedef struct {
    int max;                      /* 1: max pooling, 0: average */
    int pool[2], strides[2], pad[4];
} pool_hp;

typedef struct {
    dnnl_memory_desc_t src_md, dst_md;
    dnnl_primitive_desc_t fwd_pd, bwd_pd;
    dnnl_primitive_t fwd, bwd;
    dnnl_memory_t src, dst, diff_src, diff_dst, workspace;
} pool_state;

static void pool_release(cd_node *node) {
    pool_state *s = node->state;
    if (!s) return;
    if (s->fwd) dnnl_primitive_destroy(s->fwd);
    if (s->bwd) dnnl_primitive_destroy(s->bwd);
    if (s->fwd_pd) dnnl_primitive_desc_destroy(s->fwd_pd);
    if (s->bwd_pd) dnnl_primitive_desc_destroy(s->bwd_pd);
    dnnl_memory_t mems[] = {s->src, s->dst, s->diff_src, s->diff_dst, s->workspace};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    if (s->src_md) dnnl_memory_desc_destroy(s->src_md);
    if (s->dst_md) dnnl_memory_desc_destroy(s->dst_md);
    free(s);
    node->state = NULL;
}

static dnnl_alg_kind_t alg(const pool_hp *hp) {
    return hp->max ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding;
}

static void geometry(const pool_hp *hp, dnnl_dims_t strides, dnnl_dims_t kernel,
                     dnnl_dims_t dilation, dnnl_dims_t pad_l, dnnl_dims_t pad_r) {
    strides[0] = hp->strides[0], strides[1] = hp->strides[1];
    kernel[0] = hp->pool[0], kernel[1] = hp->pool[1];
    dilation[0] = dilation[1] = 0;
    pad_l[0] = hp->pad[0], pad_l[1] = hp->pad[2];
    pad_r[0] = hp->pad[1], pad_r[1] = hp->pad[3];
}

/* Memories (no buffer yet) over the src and dst descriptors: *a on src, *b on dst. */
static cd_status src_dst_memories(const cd_node *node, pool_state *s, dnnl_memory_t *a,
                                  dnnl_memory_t *b) {
    CD_DNNL(dnnl_memory_create(a, s->src_md, cd_engine(), DNNL_MEMORY_NONE), "memory", node->name);
    CD_DNNL(dnnl_memory_create(b, s->dst_md, cd_engine(), DNNL_MEMORY_NONE), "memory", node->name);
    return CD_OK;
}

static cd_status pool_prepare(cd_node *node, const cd_shape *in, int n) {
    const pool_hp *hp = node->hp;
    pool_state *s = calloc(1, sizeof *s);
    if (!s) return cd_fail(CD_ERR_MEMORY, "out of memory preparing '%s'", node->name);
    node->state = s;
    const cd_shape *x = &in[0], *y = &node->shape;
    dnnl_dims_t sd = {n, x->c, x->h, x->w}, dd = {n, y->c, y->h, y->w};
    CD_DNNL(dnnl_memory_desc_create_with_tag(&s->src_md, 4, sd, dnnl_f32, dnnl_nhwc), "descriptor",
            node->name);
    CD_DNNL(dnnl_memory_desc_create_with_tag(&s->dst_md, 4, dd, dnnl_f32, dnnl_nhwc), "descriptor",
            node->name);
    dnnl_dims_t strides, kernel, dilation, pad_l, pad_r;
    geometry(hp, strides, kernel, dilation, pad_l, pad_r);
    dnnl_primitive_attr_t attr;
    CD_TRY(cd_make_attr(&attr));
    /* training: max pooling's backward needs the workspace this forward writes */
    dnnl_status_t st = dnnl_pooling_forward_primitive_desc_create(
        &s->fwd_pd, cd_engine(), dnnl_forward_training, alg(hp), s->src_md, s->dst_md, strides,
        kernel, dilation, pad_l, pad_r, attr);
    dnnl_primitive_attr_destroy(attr);
    CD_DNNL(st, "pooling forward descriptor", node->name);
    CD_DNNL(dnnl_primitive_create(&s->fwd, s->fwd_pd), "pooling forward", node->name);
    CD_TRY(src_dst_memories(node, s, &s->src, &s->dst));
    const_dnnl_memory_desc_t ws = dnnl_primitive_desc_query_md(s->fwd_pd, dnnl_query_workspace_md, 0);
    if (ws && dnnl_memory_desc_get_size(ws) > 0)
        CD_DNNL(dnnl_memory_create(&s->workspace, ws, cd_engine(), DNNL_MEMORY_ALLOCATE),
                "pooling workspace", node->name);
    return CD_OK;
}

/* Run prim from a (arg_a, memory ma over buffer pa) to b (arg_b, mb over pb), with the
 * workspace when there is one. */
static cd_status execute(const cd_node *node, pool_state *s, dnnl_primitive_t prim, int arg_a,
                         dnnl_memory_t ma, const void *pa, int arg_b, dnnl_memory_t mb, void *pb,
                         const char *what) {
    CD_DNNL(dnnl_memory_set_data_handle(ma, (void *)pa), "memory", node->name);
    CD_DNNL(dnnl_memory_set_data_handle(mb, pb), "memory", node->name);
    dnnl_exec_arg_t args[3] = {{arg_a, ma}, {arg_b, mb}, {DNNL_ARG_WORKSPACE, s->workspace}};
    return cd_execute(prim, s->workspace ? 3 : 2, args, what, node->name);
}

static cd_status pool_forward(cd_node *node, const cd_io *io) {
    pool_state *s = node->state;
    return execute(node, s, s->fwd, DNNL_ARG_SRC, s->src, io->in[0], DNNL_ARG_DST, s->dst,
                   io->out, "pooling forward");
}

static cd_status build_backward(cd_node *node, pool_state *s) {
    const pool_hp *hp = node->hp;
    dnnl_dims_t strides, kernel, dilation, pad_l, pad_r;
    geometry(hp, strides, kernel, dilation, pad_l, pad_r);
    dnnl_primitive_attr_t attr;
    CD_TRY(cd_make_attr(&attr));
    dnnl_status_t st = dnnl_pooling_backward_primitive_desc_create(
        &s->bwd_pd, cd_engine(), alg(hp), s->src_md, s->dst_md, strides, kernel, dilation, pad_l,
        pad_r, s->fwd_pd, attr);
    dnnl_primitive_attr_destroy(attr);
    CD_DNNL(st, "pooling backward descriptor", node->name);
    CD_DNNL(dnnl_primitive_create(&s->bwd, s->bwd_pd), "pooling backward", node->name);
    return src_dst_memories(node, s, &s->diff_src, &s->diff_dst);
}

static cd_status pool_backward(cd_node *node, const cd_io *io) {
    if (!io->dx[0]) return CD_OK;
    pool_state *s = node->state;
    if (!s->bwd) CD_TRY(build_backward(node, s));
    float *target = io->acc[0] ? io->scratch : io->dx[0];
    CD_TRY(execute(node, s, s->bwd, DNNL_ARG_DIFF_DST, s->diff_dst, io->dout, DNNL_ARG_DIFF_SRC,
                   s->diff_src, target, "pooling backward"));
    if (io->acc[0])
        cd_add_inplace(io->dx[0], io->scratch, (size_t)io->n * cd_shape_size(&io->in_shape[0]));
    return CD_OK;
}

/* hyperparameters: pool (ph, pw), strides (sh, sw; default pool), pad (t, b, l, r) */
static cd_status build(cd_node *node, const cd_shape *in, cd_hparams *h, int max) {
    pool_hp *hp = node->hp;
    const int zero4[4] = {0, 0, 0, 0};
    hp->max = max;
    CD_TRY(cd_hp_ints(h, "pool", 2, NULL, hp->pool));
    CD_TRY(cd_hp_ints(h, "strides", 2, hp->pool, hp->strides));
    CD_TRY(cd_hp_ints(h, "pad", 4, zero4, hp->pad));
    const cd_shape *x = &in[0];
    if (x->rank != 3)
        return cd_fail(CD_ERR_VALUE, "layer '%s' needs a 4-D (N, H, W, C) input", node->name);
    const int *p = hp->pool, *s = hp->strides, *pad = hp->pad;
    if (p[0] < 1 || p[1] < 1 || s[0] < 1 || s[1] < 1 || p[0] > 64 || p[1] > 64)
        return cd_fail(CD_ERR_VALUE, "layer '%s': bad pool size %dx%d or strides %dx%d",
                       node->name, p[0], p[1], s[0], s[1]);
    /* padding smaller than the window: no window is all padding (Keras "same" never is) */
    if (pad[0] < 0 || pad[1] < 0 || pad[0] >= p[0] || pad[1] >= p[0] || pad[2] < 0 ||
        pad[3] < 0 || pad[2] >= p[1] || pad[3] >= p[1])
        return cd_fail(CD_ERR_VALUE, "layer '%s': padding (%d, %d, %d, %d) must be smaller than "
                       "the pool size", node->name, pad[0], pad[1], pad[2], pad[3]);
    if (x->h + pad[0] + pad[1] < p[0] || x->w + pad[2] + pad[3] < p[1])
        return cd_fail(CD_ERR_VALUE, "layer '%s': input %dx%d too small for pool size %dx%d",
                       node->name, x->h, x->w, p[0], p[1]);
    node->shape = (cd_shape){3, (x->h + pad[0] + pad[1] - p[0]) / s[0] + 1,
                             (x->w + pad[2] + pad[3] - p[1]) / s[1] + 1, x->c};
    return CD_OK;
}

static cd_status max_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    return build(node, in, h, 1);
}
static cd_status avg_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    return build(node, in, h, 0);
}

const cd_layer_ops cd_max_pooling_ops = {
    .name = "MaxPooling2D", .flags = 0, .min_inputs = 1, .max_inputs = 1,
    .hp_size = sizeof(pool_hp), .build = max_build, .prepare = pool_prepare,
    .forward = pool_forward, .backward = pool_backward, .release = pool_release,
};
const cd_layer_ops cd_average_pooling_ops = {
    .name = "AveragePooling2D", .flags = 0, .min_inputs = 1, .max_inputs = 1,
    .hp_size = sizeof(pool_hp), .build = avg_build, .prepare = pool_prepare,
    .forward = pool_forward, .backward = pool_backward, .release = pool_release,
};
