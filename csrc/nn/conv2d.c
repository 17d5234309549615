/* conv2d.c — Conv2D and DepthwiseConv2D on oneDNN, with Keras's dilation_rate, groups
 * (Conv2D) and depth_multiplier (DepthwiseConv2D).
 *
 * src (n, ih, iw, ic) NHWC -> dst (n, oh, ow, oc) NHWC, explicit padding (top, bottom,
 * left, right). Weights live in Keras layout in the parameter: Conv2D HWIO (kh, kw, ic / g,
 * oc), which for g groups is oneDNN's grouped dims (g, oc / g, ic / g, kh, kw) in tag hwigo
 * (output channel = group * oc / g + o, as TF's grouped convolution); depthwise (kh, kw, c, m)
 * is grouped dims (g = c, m, 1, kh, kw), hwigo (output channel = c * m + j, as
 * tf.nn.depthwise_conv2d). Dilation d is oneDNN's dilate d - 1; the kernel then spans
 * (k - 1) * d + 1 pixels.
 * A dilated, grouped or depth-multiplied convolution runs as a plain layer: its node_flags
 * drop CD_OP_CONV, so the planner never puts it in a fused block (conv_fused.c builds its
 * own primitives for the plain geometry only).
 * oneDNN picks its own weight formats ("any"); we reorder the Keras copy into them when its
 * version changed (after an optimizer step), and reorder weight gradients back to Keras
 * layout. Activations stay NHWC so every other layer reads them directly.
 * Primitives are built once per batch size (prepare); backward ones on first use. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/runtime.h"
#include "core/vec.h"
#include "nn/conv_fused.h"

enum { KERNEL, BIAS };

/* The kind's hyperparameters: the shared struct (conv_fused.h, read by the fused blocks)
 * first, so cd_conv_of(node) reads it; then what only this file uses. */
typedef struct {
    cd_conv_hp base;
    int dilation[2]; /* (h, w), Keras's dilation_rate */
    int groups;      /* Conv2D: groups; DepthwiseConv2D: the channels (one group each) */
} conv_ext_hp;

static const conv_ext_hp *ext_of(const cd_node *node) { return node->hp; }

typedef struct {
    dnnl_memory_desc_t src_md, dst_md, w_user_md, bias_md;
    dnnl_primitive_desc_t fwd_pd, bwd_data_pd, bwd_w_pd;
    dnnl_primitive_t fwd, bwd_data, bwd_w;
    dnnl_memory_t src, dst, w_user, bias, diff_src, diff_dst, diff_w_user, diff_bias;
    dnnl_memory_t w_fwd, w_bwd;          /* weights in the forward / backward-data formats */
    dnnl_primitive_t to_fwd, to_bwd;     /* reorders user -> those formats (NULL if same) */
    dnnl_memory_t diff_w;                /* weight gradient in bwd_w's format */
    dnnl_primitive_t diff_w_to_user;     /* NULL if already Keras layout */
    uint64_t w_fwd_version, w_bwd_version;
    int have_w_fwd, have_w_bwd;
} conv_state;

static void destroy_md(dnnl_memory_desc_t *md) {
    if (*md) dnnl_memory_desc_destroy(*md);
    *md = NULL;
}
static void destroy_mem(dnnl_memory_t *m) {
    if (*m) dnnl_memory_destroy(*m);
    *m = NULL;
}
static void destroy_prim(dnnl_primitive_t *p) {
    if (*p) dnnl_primitive_destroy(*p);
    *p = NULL;
}
static void destroy_pd(dnnl_primitive_desc_t *pd) {
    if (*pd) dnnl_primitive_desc_destroy(*pd);
    *pd = NULL;
}

static void conv_release(cd_node *node) {
    conv_state *s = node->state;
    if (!s) return;
    destroy_prim(&s->fwd), destroy_prim(&s->bwd_data), destroy_prim(&s->bwd_w);
    destroy_prim(&s->to_fwd), destroy_prim(&s->to_bwd), destroy_prim(&s->diff_w_to_user);
    destroy_pd(&s->fwd_pd), destroy_pd(&s->bwd_data_pd), destroy_pd(&s->bwd_w_pd);
    destroy_mem(&s->src), destroy_mem(&s->dst), destroy_mem(&s->w_user), destroy_mem(&s->bias);
    destroy_mem(&s->diff_src), destroy_mem(&s->diff_dst), destroy_mem(&s->diff_w_user);
    destroy_mem(&s->diff_bias), destroy_mem(&s->w_fwd), destroy_mem(&s->w_bwd);
    destroy_mem(&s->diff_w);
    destroy_md(&s->src_md), destroy_md(&s->dst_md), destroy_md(&s->w_user_md);
    destroy_md(&s->bias_md);
    free(s);
    node->state = NULL;
}

/* Weights descriptor with Keras's layout, or "any" for oneDNN to choose: grouped (5-D,
 * hwigo) for depthwise and grouped convolutions, HWIO otherwise. */
static cd_status weights_md(const cd_node *node, int any, dnnl_memory_desc_t *md) {
    const cd_conv_hp *hp = cd_conv_of(node);
    const int g = ext_of(node)->groups, *k = node->params[KERNEL].dims; /* (kh, kw, i, o) */
    const int ic = hp->depthwise ? 1 : k[2], oc = hp->depthwise ? k[3] : k[3] / g;
    if (hp->depthwise || g > 1) {
        dnnl_dims_t dims = {g, oc, ic, hp->kh, hp->kw};
        CD_DNNL(dnnl_memory_desc_create_with_tag(md, 5, dims, dnnl_f32,
                                                 any ? dnnl_format_tag_any : dnnl_hwigo),
                "weights descriptor", node->name);
    } else {
        dnnl_dims_t dims = {oc, ic, hp->kh, hp->kw};
        CD_DNNL(dnnl_memory_desc_create_with_tag(md, 4, dims, dnnl_f32,
                                                 any ? dnnl_format_tag_any : dnnl_hwio),
                "weights descriptor", node->name);
    }
    return CD_OK;
}

/* Memory in `pd`'s format for `what`; a reorder from/to `user` when formats differ. */
static cd_status make_internal(const cd_node *node, const_dnnl_memory_desc_t md,
                               dnnl_memory_t user, int user_is_src, dnnl_memory_t *mem,
                               dnnl_primitive_t *reorder) {
    const_dnnl_memory_desc_t user_md;
    CD_DNNL(dnnl_memory_get_memory_desc(user, &user_md), "memory desc", node->name);
    *reorder = NULL;
    CD_DNNL(dnnl_memory_create(mem, md, cd_engine(), DNNL_MEMORY_ALLOCATE), "weights buffer",
            node->name);
    if (dnnl_memory_desc_equal(md, user_md)) return CD_OK;
    return user_is_src ? cd_make_reorder(user_md, md, reorder, node->name)
                       : cd_make_reorder(md, user_md, reorder, node->name);
}

static void geometry(const cd_node *node, dnnl_dims_t strides, dnnl_dims_t dilates,
                     dnnl_dims_t pad_l, dnnl_dims_t pad_r) {
    const cd_conv_hp *hp = cd_conv_of(node);
    strides[0] = hp->stride_h, strides[1] = hp->stride_w;
    dilates[0] = ext_of(node)->dilation[0] - 1, dilates[1] = ext_of(node)->dilation[1] - 1;
    pad_l[0] = hp->pad[0], pad_l[1] = hp->pad[2];
    pad_r[0] = hp->pad[1], pad_r[1] = hp->pad[3];
}

static cd_status conv_prepare(cd_node *node, const cd_shape in[], int n) {
    conv_state *s = calloc(1, sizeof *s);
    if (!s) return cd_fail(CD_ERR_MEMORY, "out of memory preparing '%s'", node->name);
    node->state = s;
    const cd_shape *src = &in[0], *dst = &node->shape;
    const int use_bias = cd_conv_of(node)->use_bias;
    dnnl_dims_t src_dims = {n, src->c, src->h, src->w}, dst_dims = {n, dst->c, dst->h, dst->w};
    CD_DNNL(dnnl_memory_desc_create_with_tag(&s->src_md, 4, src_dims, dnnl_f32, dnnl_nhwc),
            "src descriptor", node->name);
    CD_DNNL(dnnl_memory_desc_create_with_tag(&s->dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc),
            "dst descriptor", node->name);
    CD_TRY(weights_md(node, 0, &s->w_user_md));
    if (use_bias) {
        dnnl_dims_t bdims = {dst->c};
        CD_DNNL(dnnl_memory_desc_create_with_tag(&s->bias_md, 1, bdims, dnnl_f32, dnnl_a),
                "bias descriptor", node->name);
    }
    CD_DNNL(dnnl_memory_create(&s->src, s->src_md, cd_engine(), DNNL_MEMORY_NONE), "memory",
            node->name);
    CD_DNNL(dnnl_memory_create(&s->dst, s->dst_md, cd_engine(), DNNL_MEMORY_NONE), "memory",
            node->name);
    CD_DNNL(dnnl_memory_create(&s->w_user, s->w_user_md, cd_engine(), DNNL_MEMORY_NONE), "memory",
            node->name);
    if (use_bias)
        CD_DNNL(dnnl_memory_create(&s->bias, s->bias_md, cd_engine(), DNNL_MEMORY_NONE), "memory",
                node->name);
    return CD_OK;
}

/* The forward primitive and its weight copy, built at the first unfused forward: a frozen
 * convolution that always runs inside a fused block (conv_fused.c) never needs them. */
static cd_status build_forward(cd_node *node, conv_state *s) {
    dnnl_memory_desc_t w_any;
    CD_TRY(weights_md(node, 1, &w_any));
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    geometry(node, strides, dilates, pad_l, pad_r);
    dnnl_primitive_attr_t attr;
    CD_TRY(cd_make_attr(&attr));
    dnnl_status_t st = dnnl_convolution_forward_primitive_desc_create(
        &s->fwd_pd, cd_engine(), dnnl_forward_training, dnnl_convolution_direct, s->src_md, w_any,
        s->bias_md, s->dst_md, strides, dilates, pad_l, pad_r, attr);
    dnnl_primitive_attr_destroy(attr);
    dnnl_memory_desc_destroy(w_any);
    CD_DNNL(st, "convolution forward descriptor", node->name);
    CD_DNNL(dnnl_primitive_create(&s->fwd, s->fwd_pd), "convolution forward", node->name);
    const_dnnl_memory_desc_t w_fwd_md =
        dnnl_primitive_desc_query_md(s->fwd_pd, dnnl_query_weights_md, 0);
    CD_DNNL(dnnl_memory_set_data_handle(s->w_user, node->params[KERNEL].value), "memory",
            node->name);
    return make_internal(node, w_fwd_md, s->w_user, 1, &s->w_fwd, &s->to_fwd);
}

/* Bring the oneDNN-format weight copy up to date with the Keras-layout master. */
static cd_status sync_weights(const cd_node *node, dnnl_primitive_t to, dnnl_memory_t internal,
                              dnnl_memory_t user, uint64_t *version, int *have) {
    const cd_param *p = &node->params[KERNEL];
    if (*have && *version == p->version) return CD_OK;
    CD_DNNL(dnnl_memory_set_data_handle(user, p->value), "memory", node->name);
    if (to) {
        CD_TRY(cd_execute_reorder(to, user, internal, node->name));
    } else {
        void *dst;
        CD_DNNL(dnnl_memory_get_data_handle(internal, &dst), "memory", node->name);
        memcpy(dst, p->value, p->size * sizeof(float));
    }
    *version = p->version;
    *have = 1;
    return CD_OK;
}

/* y (n, oh, ow, oc) = conv(x (n, ih, iw, ic), kernel) (+ bias) */
static cd_status conv_forward(cd_node *node, const cd_io *io) {
    conv_state *s = node->state;
    const int use_bias = cd_conv_of(node)->use_bias;
    if (!s->fwd) CD_TRY(build_forward(node, s));
    CD_TRY(sync_weights(node, s->to_fwd, s->w_fwd, s->w_user, &s->w_fwd_version, &s->have_w_fwd));
    CD_DNNL(dnnl_memory_set_data_handle(s->src, (void *)io->in[0]), "memory", node->name);
    CD_DNNL(dnnl_memory_set_data_handle(s->dst, io->out), "memory", node->name);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, s->src}, {DNNL_ARG_WEIGHTS, s->w_fwd},
                               {DNNL_ARG_DST, s->dst}, {DNNL_ARG_BIAS, s->bias}};
    if (use_bias)
        CD_DNNL(dnnl_memory_set_data_handle(s->bias, node->params[BIAS].value), "memory",
                node->name);
    return cd_execute(s->fwd, use_bias ? 4 : 3, args, "convolution forward", node->name);
}

static cd_status build_backward_data(cd_node *node, conv_state *s) {
    dnnl_memory_desc_t w_any;
    CD_TRY(weights_md(node, 1, &w_any));
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    geometry(node, strides, dilates, pad_l, pad_r);
    dnnl_primitive_attr_t attr;
    CD_TRY(cd_make_attr(&attr));
    dnnl_status_t st = dnnl_convolution_backward_data_primitive_desc_create(
        &s->bwd_data_pd, cd_engine(), dnnl_convolution_direct, s->src_md, w_any, s->dst_md,
        strides, dilates, pad_l, pad_r, s->fwd_pd, attr);
    dnnl_primitive_attr_destroy(attr);
    dnnl_memory_desc_destroy(w_any);
    CD_DNNL(st, "convolution backward-data descriptor", node->name);
    CD_DNNL(dnnl_primitive_create(&s->bwd_data, s->bwd_data_pd), "convolution backward data",
            node->name);
    CD_DNNL(dnnl_memory_create(&s->diff_src, s->src_md, cd_engine(), DNNL_MEMORY_NONE), "memory",
            node->name);
    if (!s->diff_dst)
        CD_DNNL(dnnl_memory_create(&s->diff_dst, s->dst_md, cd_engine(), DNNL_MEMORY_NONE),
                "memory", node->name);
    const_dnnl_memory_desc_t md = dnnl_primitive_desc_query_md(s->bwd_data_pd, dnnl_query_weights_md, 0);
    return make_internal(node, md, s->w_user, 1, &s->w_bwd, &s->to_bwd);
}

static cd_status build_backward_weights(cd_node *node, conv_state *s) {
    dnnl_memory_desc_t w_any;
    CD_TRY(weights_md(node, 1, &w_any));
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    geometry(node, strides, dilates, pad_l, pad_r);
    dnnl_primitive_attr_t attr;
    CD_TRY(cd_make_attr(&attr));
    dnnl_status_t st = dnnl_convolution_backward_weights_primitive_desc_create(
        &s->bwd_w_pd, cd_engine(), dnnl_convolution_direct, s->src_md, w_any, s->bias_md,
        s->dst_md, strides, dilates, pad_l, pad_r, s->fwd_pd, attr);
    dnnl_primitive_attr_destroy(attr);
    dnnl_memory_desc_destroy(w_any);
    CD_DNNL(st, "convolution backward-weights descriptor", node->name);
    CD_DNNL(dnnl_primitive_create(&s->bwd_w, s->bwd_w_pd), "convolution backward weights",
            node->name);
    if (!s->diff_dst)
        CD_DNNL(dnnl_memory_create(&s->diff_dst, s->dst_md, cd_engine(), DNNL_MEMORY_NONE),
                "memory", node->name);
    CD_DNNL(dnnl_memory_create(&s->diff_w_user, s->w_user_md, cd_engine(), DNNL_MEMORY_NONE),
            "memory", node->name);
    if (cd_conv_of(node)->use_bias)
        CD_DNNL(dnnl_memory_create(&s->diff_bias, s->bias_md, cd_engine(), DNNL_MEMORY_NONE),
                "memory", node->name);
    const_dnnl_memory_desc_t md =
        dnnl_primitive_desc_query_md(s->bwd_w_pd, dnnl_query_diff_weights_md, 0);
    return make_internal(node, md, s->diff_w_user, 0, &s->diff_w, &s->diff_w_to_user);
}

/* dkernel = conv_bwd_weights(x, dy) (dbias = sum dy) when the layer trains; dx (+)=
 * conv_bwd_data(dy, kernel) */
static cd_status conv_backward(cd_node *node, const cd_io *io) {
    conv_state *s = node->state;
    const int use_bias = cd_conv_of(node)->use_bias;
    if (!s->fwd) CD_TRY(build_forward(node, s)); /* the backward descriptors' hint */
    if (io->weight_grads) {
        if (!s->bwd_w) CD_TRY(build_backward_weights(node, s));
        CD_DNNL(dnnl_memory_set_data_handle(s->src, (void *)io->in[0]), "memory", node->name);
        CD_DNNL(dnnl_memory_set_data_handle(s->diff_dst, io->dout), "memory", node->name);
        CD_DNNL(dnnl_memory_set_data_handle(s->diff_w_user, node->params[KERNEL].grad), "memory",
                node->name);
        dnnl_memory_t dw = s->diff_w_to_user ? s->diff_w : s->diff_w_user;
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, s->src},
                                   {DNNL_ARG_DIFF_DST, s->diff_dst},
                                   {DNNL_ARG_DIFF_WEIGHTS, dw},
                                   {DNNL_ARG_DIFF_BIAS, s->diff_bias}};
        if (use_bias)
            CD_DNNL(dnnl_memory_set_data_handle(s->diff_bias, node->params[BIAS].grad), "memory",
                    node->name);
        CD_TRY(cd_execute(s->bwd_w, use_bias ? 4 : 3, args, "convolution backward weights",
                          node->name));
        if (s->diff_w_to_user)
            CD_TRY(cd_execute_reorder(s->diff_w_to_user, s->diff_w, s->diff_w_user, node->name));
    }
    if (!io->dx[0]) return CD_OK;
    if (!s->bwd_data) CD_TRY(build_backward_data(node, s));
    CD_TRY(sync_weights(node, s->to_bwd, s->w_bwd, s->w_user, &s->w_bwd_version, &s->have_w_bwd));
    float *target = io->acc[0] ? io->scratch : io->dx[0];
    CD_DNNL(dnnl_memory_set_data_handle(s->diff_dst, io->dout), "memory", node->name);
    CD_DNNL(dnnl_memory_set_data_handle(s->diff_src, target), "memory", node->name);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, s->diff_dst},
                               {DNNL_ARG_WEIGHTS, s->w_bwd},
                               {DNNL_ARG_DIFF_SRC, s->diff_src}};
    CD_TRY(cd_execute(s->bwd_data, 3, args, "convolution backward data", node->name));
    if (io->acc[0])
        cd_add_inplace(io->dx[0], io->scratch, (size_t)io->n * cd_shape_size(&io->in_shape[0]));
    return CD_OK;
}

/* hyperparameters: filters (Conv2D), kernel (kh, kw), strides (sh, sw), pad (t, b, l, r),
 * use_bias, dilation (dh, dw; default 1), groups (Conv2D; default 1), multiplier
 * (DepthwiseConv2D's depth_multiplier; default 1). Output (oh, ow, oc):
 * o = (i + pad_before + pad_after - ((k - 1) * d + 1)) / stride + 1; oc = filters, or c * m.
 * Keras's rules (keras/src/layers/convolutional/base_conv.py): filters and input channels
 * divisible by groups; no stride > 1 with dilation > 1 (TF has no such kernel). */
static cd_status build_conv(cd_node *node, const cd_shape *in, cd_hparams *h, int depthwise) {
    conv_ext_hp *ext = node->hp;
    cd_conv_hp *hp = &ext->base;
    const cd_shape *src = &in[0];
    const char *name = node->name;
    int k[2], st[2], bias, filters = src->c, groups = 1, multiplier = 1;
    const int one[2] = {1, 1}, zero4[4] = {0, 0, 0, 0}, yes = 1;
    CD_TRY(cd_hp_ints(h, "kernel", 2, NULL, k));
    CD_TRY(cd_hp_ints(h, "strides", 2, one, st));
    CD_TRY(cd_hp_ints(h, "pad", 4, zero4, hp->pad));
    CD_TRY(cd_hp_ints(h, "use_bias", 1, &yes, &bias));
    CD_TRY(cd_hp_ints(h, "dilation", 2, one, ext->dilation));
    if (depthwise) CD_TRY(cd_hp_ints(h, "multiplier", 1, one, &multiplier));
    if (!depthwise) {
        CD_TRY(cd_hp_ints(h, "filters", 1, NULL, &filters));
        CD_TRY(cd_hp_ints(h, "groups", 1, one, &groups));
    }
    if (src->rank != 3)
        return cd_fail(CD_ERR_VALUE, "layer '%s' needs a 4-D (N, H, W, C) input", name);
    const int kh = k[0], kw = k[1], sh = st[0], sw = st[1], dh = ext->dilation[0],
              dw = ext->dilation[1];
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || kh > 64 || kw > 64)
        return cd_fail(CD_ERR_VALUE, "layer '%s': bad kernel %dx%d or stride %dx%d", name, kh, kw,
                       sh, sw);
    if (dh < 1 || dw < 1 || dh > 64 || dw > 64)
        return cd_fail(CD_ERR_VALUE, "layer '%s': bad dilation_rate (%d, %d)", name, dh, dw);
    if ((sh > 1 || sw > 1) && (dh > 1 || dw > 1))
        return cd_fail(CD_ERR_VALUE, "layer '%s': `strides > 1` not supported in conjunction with "
                       "`dilation_rate > 1` (strides (%d, %d), dilation_rate (%d, %d))", name, sh,
                       sw, dh, dw);
    if (multiplier < 1 || multiplier > 65536 || (long)src->c * multiplier > 65536)
        return cd_fail(CD_ERR_VALUE, "layer '%s': bad depth_multiplier %d", name, multiplier);
    if (depthwise) filters = src->c * multiplier;
    if (filters < 1 || filters > 65536)
        return cd_fail(CD_ERR_VALUE, "layer '%s': bad filters %d", name, filters);
    if (groups < 1 || filters % groups || src->c % groups)
        return cd_fail(CD_ERR_VALUE, "layer '%s': groups=%d must divide the filters (%d) and the "
                       "input channels (%d)", name, groups, filters, src->c);
    const int ekh = (kh - 1) * dh + 1, ekw = (kw - 1) * dw + 1; /* the dilated kernel's span */
    const int *pad = hp->pad, max_pad = ekh > ekw ? (ekh > 64 ? ekh : 64) : (ekw > 64 ? ekw : 64);
    for (int i = 0; i < 4; i++)
        if (pad[i] < 0 || pad[i] >= max_pad)
            return cd_fail(CD_ERR_VALUE, "layer '%s': bad padding %d", name, pad[i]);
    int oh = (src->h + pad[0] + pad[1] - ekh) / sh + 1;
    int ow = (src->w + pad[2] + pad[3] - ekw) / sw + 1;
    if (src->h + pad[0] + pad[1] < ekh || src->w + pad[2] + pad[3] < ekw || oh < 1 || ow < 1)
        return cd_fail(CD_ERR_VALUE, "layer '%s': input %dx%d too small for kernel %dx%d", name,
                       src->h, src->w, ekh, ekw);
    hp->depthwise = depthwise;
    hp->kh = kh, hp->kw = kw, hp->stride_h = sh, hp->stride_w = sw;
    hp->use_bias = bias != 0;
    ext->groups = depthwise ? src->c : groups;
    node->shape = (cd_shape){3, oh, ow, filters};
    if (depthwise) {
        const int dims[4] = {kh, kw, src->c, multiplier};
        CD_TRY(cd_declare_param(node, "depthwise_kernel", 4, dims, 1, 0.f));
    } else {
        const int dims[4] = {kh, kw, src->c / groups, filters}; /* HWIO */
        CD_TRY(cd_declare_param(node, "kernel", 4, dims, 1, 0.f));
    }
    if (hp->use_bias) {
        const int bdims[1] = {filters};
        CD_TRY(cd_declare_param(node, "bias", 1, bdims, 1, 0.f));
    }
    return CD_OK;
}

static cd_status conv_build(cd_node *node, const cd_shape in[], cd_hparams *h) {
    return build_conv(node, in, h, 0);
}
static cd_status depthwise_build(cd_node *node, const cd_shape in[], cd_hparams *h) {
    return build_conv(node, in, h, 1);
}

#define CONV_FLAGS (CD_OP_READS_INPUT_TO_TRAIN | CD_OP_CONV)

/* Dilated, grouped or depth-multiplied: a plain layer, never in a fused block (see top). */
static unsigned conv_flags(const cd_node *node) {
    const conv_ext_hp *e = ext_of(node);
    const int plain_geometry = e->dilation[0] == 1 && e->dilation[1] == 1 &&
        (e->base.depthwise ? node->shape.c == e->groups : e->groups == 1);
    return plain_geometry ? CONV_FLAGS : CONV_FLAGS & ~CD_OP_CONV;
}

const cd_layer_ops cd_conv2d_ops = {
    .name = "Conv2D", .flags = CONV_FLAGS, .node_flags = conv_flags, .min_inputs = 1,
    .max_inputs = 1, .hp_size = sizeof(conv_ext_hp), .build = conv_build, .prepare = conv_prepare,
    .forward = conv_forward, .backward = conv_backward, .release = conv_release,
    .release_cache = cd_conv_fused_release,
};
const cd_layer_ops cd_depthwise_conv2d_ops = {
    .name = "DepthwiseConv2D", .flags = CONV_FLAGS, .node_flags = conv_flags, .min_inputs = 1,
    .max_inputs = 1, .hp_size = sizeof(conv_ext_hp), .build = depthwise_build,
    .prepare = conv_prepare, .forward = conv_forward, .backward = conv_backward,
    .release = conv_release, .release_cache = cd_conv_fused_release,
};
