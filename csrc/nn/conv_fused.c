/* conv_fused.c — Conv2D/DepthwiseConv2D and the post-ops after it (conv_fused.h cd_chain:
 * [BN] [act] [Add [act]]) as one oneDNN convolution, where nobody reads the intermediate
 * outputs (model/plan.c decides): in the frozen part of the network (inference), and for
 * trainable convolutions [under a BN in inference mode] [and an activation] (training steps,
 * below).
 *
 * BN folded into the convolution: s = gamma / sqrt(moving_variance + eps),
 *   kernel'[..., oc] = kernel[..., oc] * s[oc], bias' = beta + (bias - moving_mean) * s;
 * without a BN, s = 1 and bias' = bias (or 0). Activations are eltwise post-ops (ReLU6 a
 * clip to (0, 6), swish, ...: nn/layer.h cd_eltwise), the residual Add a binary-add post-op
 * reading the skip tensor, and a ZeroPadding2D just before the conv extra convolution
 * padding, so the block's output is written once.
 * src (n, ih, iw, ic) NHWC -> dst (n, oh, ow, oc) NHWC; skip (n, oh, ow, oc) NHWC.
 *
 * bf16 mode (catdog.config.set_precision("bf16")): the block computes with bfloat16 source
 * and folded weights (AVX512-BF16 / AMX kernels); each of src, dst and skip is bf16 or f32 as
 * the plan decided for the tensor (bf16 where only fused blocks read it). An f32 source (the
 * input layer, or a layer that ran unfused) is first converted into a block-owned buffer.
 *
 * Depthwise tails (float32): a 1x1 expand block ending in ReLU6 may carry the next
 * [ZeroPadding2D] DepthwiseConv2D 3x3 -> BN -> ReLU6 as oneDNN's depthwise post-op (its own
 * folded weights, f->dw): the expand output (n, h, w, 6c) is never written to memory.
 *
 * Trainable blocks: a trainable convolution under a BN in inference mode (the lab's
 * fine-tuning, base_model(x, training=False)) and/or an activation whose derivative is a
 * function of its output runs the same folded forward each training step (refolded after
 * every optimizer step), and its backward works on the folded weights:
 *   du = dy * f'(y) (ReLU6: 0 < y < 6; from the block's output y) or dy (no activation);
 *   dW' = conv_bwd_weights(x, du), db' = sum(du), dx = conv_bwd_data(du, W');
 * then, once the step's gradients are summed (cd_conv_trainable_finish), with a BN,
 * a = gamma / sqrt(var + eps), W' = W * a, b' = beta + (bias - mean) * a:
 *   dW = dW' * a,  dbias = db' * a,  dbeta = db',
 *   dgamma = (sum_k dW'[k, oc] * W[k, oc] + (bias - mean) * dbeta) / sqrt(var + eps)
 * (sum_k W[k] dW'[k] = sum du * conv(x, W), and the BN's input is z = conv(x, W) + bias, so
 * this is sum du * (z - mean) / sqrt(var + eps), the BN's dgamma). No BN or ReLU pass and no intermediate tensor is kept:
 * x and y are the only activations the backward reads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/runtime.h"
#include "core/vec.h"
#include "nn/conv_fused.h"
#include "nn/eltwise.h"

/* A convolution's kernel and bias with its BN folded in: the folded kernel is computed in
 * Keras layout (w_user) and reordered into the primitive's format (w). */
typedef struct {
    dnnl_memory_t w, bias, w_user;
    dnnl_primitive_t to_w;      /* reorder folded HWIO -> primitive format (NULL: same) */
    float *folded_bias;         /* (oc) */
    float *folded_user;         /* trainable blocks: the folded kernel in Keras layout */
    uint64_t versions[6];       /* the conv's and BN's weight versions it was folded from */
    int valid;
    uint64_t folds;             /* bumped by every fold: the backward's weight copy follows */
} folded_weights;

static void folded_free(folded_weights *k) {
    if (k->to_w) dnnl_primitive_destroy(k->to_w);
    dnnl_memory_t mems[] = {k->w, k->bias, k->w_user};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    free(k->folded_bias);
    free(k->folded_user);
}

/* What a fused state was built for besides batch size and types: the chain's shape. */
typedef struct {
    int padded, has_norm, add;
    cd_post_op act, act2;
} block_key;

static block_key key_of(const cd_chain *c) {
    block_key k;
    memset(&k, 0, sizeof k);
    k.padded = c->zeropad != NULL, k.has_norm = c->norm != NULL, k.add = c->add;
    k.act = c->act, k.act2 = c->act2;
    return k;
}

typedef struct {
    int batch;                  /* the batch size it was built for */
    cd_shape in;                /* the block's source shape (one sample) */
    uint64_t used;              /* node->cache_clock at its last use (LRU) */
    block_key key;              /* the chain it runs */
    cd_fused_types types;       /* data types it was built for */
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst, skip;
    folded_weights k;           /* the convolution's */
    folded_weights dw;          /* the depthwise post-op's (blocks with a dw tail) */
    int has_dw;
    dnnl_primitive_t to_src;    /* bf16 compute on an f32 source: convert it first */
    dnnl_memory_t src_user;     /* the f32 source to_src reads */
    void *src_converted;        /* (n, ih, iw, ic) bf16 */
    int train;                  /* built as forward_training: a trainable block */
    /* backward of a trainable block (built at its first backward); f32 throughout */
    dnnl_primitive_desc_t bwd_data_pd, bwd_w_pd;
    dnnl_primitive_t bwd_data, bwd_w;
    dnnl_primitive_t w_to_bwd;       /* folded weights forward -> backward-data format */
    dnnl_primitive_t diff_w_to_user; /* weight gradient -> Keras layout (NULL: same) */
    dnnl_memory_t diff_dst, diff_src, w_bwd, diff_w, diff_w_user, diff_bias;
    uint64_t w_bwd_folds;            /* f->k.folds w_bwd holds (0: none yet) */
    float *dbias;                    /* (oc) sum of du */
    uint16_t *du_bf16;               /* bf16 compute: (n, oh, ow, oc) du rounded to bf16 */
} fused_state;

static void fused_free(fused_state *f) {
    if (!f) return;
    if (f->prim) dnnl_primitive_destroy(f->prim);
    folded_free(&f->k);
    folded_free(&f->dw);
    if (f->to_src) dnnl_primitive_destroy(f->to_src);
    dnnl_primitive_t prims[] = {f->bwd_data, f->bwd_w, f->w_to_bwd, f->diff_w_to_user};
    for (size_t i = 0; i < sizeof prims / sizeof *prims; i++)
        if (prims[i]) dnnl_primitive_destroy(prims[i]);
    dnnl_primitive_desc_t pds[] = {f->pd, f->bwd_data_pd, f->bwd_w_pd};
    for (size_t i = 0; i < sizeof pds / sizeof *pds; i++)
        if (pds[i]) dnnl_primitive_desc_destroy(pds[i]);
    dnnl_memory_t mems[] = {f->src, f->dst, f->skip, f->src_user,
                            f->diff_dst, f->diff_src, f->w_bwd, f->diff_w, f->diff_w_user,
                            f->diff_bias};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    free(f->src_converted);
    free(f->dbias);
    free(f->du_bf16);
    free(f);
}

void cd_conv_fused_release(cd_node *conv) {
    for (int k = 0; k < CD_FUSED_CACHE; k++) {
        fused_free(conv->cache[k]);
        conv->cache[k] = NULL;
    }
}

static dnnl_data_type_t dt(int bf16) { return bf16 ? dnnl_bf16 : dnnl_f32; }

/* An activation's eltwise steps appended to the post-ops (none when it is absent). */
static dnnl_status_t append_act(dnnl_post_ops_t po, const cd_post_op *act) {
    if (act->kind != CD_POST_ACT) return dnnl_success;
    for (int k = 0; k < act->count; k++) {
        const cd_eltwise *e = &act->eltwise[k];
        dnnl_status_t st = dnnl_post_ops_append_eltwise(po, cd_eltwise_dnnl_alg(e->alg), e->alpha, e->beta);
        if (st != dnnl_success) return st;
    }
    return dnnl_success;
}

static int act_steps(const cd_post_op *act) { return act->kind == CD_POST_ACT ? act->count : 0; }

/* The BN's scale a = gamma / sqrt(moving_variance + eps) for channel c (1 without a BN): the
 * fold and the trainable blocks' gradient finish must use the same float. */
static float bn_scale(const cd_node *bn, int c) {
    if (!bn) return 1.f;
    return bn->params[0].value[c] / sqrtf(bn->params[3].value[c] + cd_bn_of(bn)->epsilon);
}

/* Memory for folded weights whose primitive format is w_md (w_user: Keras layout, b_md: the
 * bias), with a reorder between them when they differ. */
static cd_status prepare_folded(folded_weights *k, const_dnnl_memory_desc_t w_md,
                                const_dnnl_memory_desc_t w_user, const_dnnl_memory_desc_t b_md,
                                const cd_param *kernel, int oc, int keep_user, const char *name) {
    CD_DNNL(dnnl_memory_create(&k->bias, b_md, cd_engine(), DNNL_MEMORY_NONE), "memory", name);
    CD_DNNL(dnnl_memory_create(&k->w_user, w_user, cd_engine(), DNNL_MEMORY_NONE), "memory", name);
    CD_DNNL(dnnl_memory_create(&k->w, w_md, cd_engine(), DNNL_MEMORY_ALLOCATE), "memory", name);
    if (!dnnl_memory_desc_equal(w_md, w_user)) CD_TRY(cd_make_reorder(w_user, w_md, &k->to_w, name));
    k->folded_bias = cd_alloc((size_t)oc, sizeof(float), "folded bias");
    if (!k->folded_bias) return CD_ERR_MEMORY;
    if (keep_user && !(k->folded_user = cd_alloc(kernel->size, sizeof(float), "folded weights")))
        return CD_ERR_MEMORY;
    return CD_OK;
}

/* The depthwise tail's geometry as oneDNN's depthwise post-op takes it: 3x3, stride 1 or 2,
 * equal top/left padding, the bottom/right padding implied by the output size. 0: it fits. */
static int dw_padding(const cd_dw_tail *dw, const cd_node *in, int *pad_l) {
    const cd_node *c = dw->conv;
    const cd_conv_hp *hp = cd_conv_of(c);
    const cd_pad_hp *zp = dw->zeropad ? dw->zeropad->hp : NULL;
    int pad[4];
    for (int k = 0; k < 4; k++) pad[k] = hp->pad[k] + (zp ? zp->pad[k] : 0);
    const int s = hp->stride_h;
    if (!hp->depthwise || hp->kh != 3 || hp->kw != 3 || s != hp->stride_w || (s != 1 && s != 2) ||
        pad[0] != pad[2])
        return -1;
    *pad_l = pad[0];
    /* the padding oneDNN implies on the bottom/right must be the layer's */
    if ((c->shape.h - 1) * s + 3 - in->shape.h - pad[0] != pad[1] ||
        (c->shape.w - 1) * s + 3 - in->shape.w - pad[2] != pad[3])
        return -1;
    return 0;
}

int cd_dw_tail_fits(const cd_dw_tail *dw, const cd_node *expand, size_t min_bytes) {
    const cd_conv_hp *e = cd_conv_of(expand);
    if (e->depthwise || e->kh != 1 || e->kw != 1 || e->stride_h != 1 || e->stride_w != 1 ||
        e->pad[0] || e->pad[1] || e->pad[2] || e->pad[3])
        return 0;
    if (cd_node_sample_size(expand) * sizeof(float) < min_bytes) return 0;
    int pl;
    return dw_padding(dw, expand, &pl) == 0;
}

int cd_conv_trainable_fits(const cd_node *conv) { (void)conv; return 1; }

static cd_status build(int n, cd_node *conv, const cd_shape *src, const int pad[4],
                       const block_key *key, cd_fused_types types, int train,
                       const cd_dw_tail *dw, fused_state **out) {
    fused_state *f = calloc(1, sizeof *f);
    if (!f) return cd_fail(CD_ERR_MEMORY, "out of memory fusing '%s'", conv->name);
    *out = f;
    f->batch = n, f->key = *key, f->types = types, f->train = train;
    f->in = *src;
    f->has_dw = dw != NULL;
    /* the convolution's own src/weights type; bias stays f32 */
    const dnnl_data_type_t compute = dt(types.compute_bf16);
    const cd_conv_hp *hp = cd_conv_of(conv);
    const int depthwise = hp->depthwise;
    const int oc = conv->shape.c;
    dnnl_dims_t sd = {n, src->c, src->h, src->w}, dd = {n, oc, conv->shape.h, conv->shape.w};
    dnnl_memory_desc_t src_md = NULL, dst_md = NULL, w_any = NULL, w_user = NULL, b_md = NULL,
                       src_user_md = NULL, skip_md = NULL, dw_user = NULL;
    dnnl_dims_t bd = {oc};
    cd_status st = CD_OK;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
#define TRY_D(call, what)                                                   \
    do {                                                                    \
        st = cd_dnnl_check((call), (what), conv->name);                     \
        if (st != CD_OK) goto done;                                         \
    } while (0)
    TRY_D(dnnl_memory_desc_create_with_tag(&src_md, 4, sd, compute, dnnl_nhwc), "descriptor");
    TRY_D(dnnl_memory_desc_create_with_tag(&src_user_md, 4, sd, dt(types.src_bf16), dnnl_nhwc),
          "descriptor");
    /* with a depthwise tail this is the expand conv's output, which oneDNN never writes: the
     * primitive's destination is the depthwise conv's (queried below) */
    TRY_D(dnnl_memory_desc_create_with_tag(&dst_md, 4, dd, dt(types.dst_bf16), dnnl_nhwc), "descriptor");
    TRY_D(dnnl_memory_desc_create_with_tag(&skip_md, 4, dd, dt(types.skip_bf16), dnnl_nhwc), "descriptor");
    TRY_D(dnnl_memory_desc_create_with_tag(&b_md, 1, bd, dnnl_f32, dnnl_a), "descriptor");
    if (depthwise) {
        dnnl_dims_t wd = {oc, 1, 1, hp->kh, hp->kw};
        TRY_D(dnnl_memory_desc_create_with_tag(&w_any, 5, wd, compute, dnnl_format_tag_any), "descriptor");
        TRY_D(dnnl_memory_desc_create_with_tag(&w_user, 5, wd, dnnl_f32, dnnl_hwigo), "descriptor");
    } else {
        dnnl_dims_t wd = {oc, src->c, hp->kh, hp->kw};
        TRY_D(dnnl_memory_desc_create_with_tag(&w_any, 4, wd, compute, dnnl_format_tag_any), "descriptor");
        TRY_D(dnnl_memory_desc_create_with_tag(&w_user, 4, wd, dnnl_f32, dnnl_hwio), "descriptor");
    }
    st = cd_make_attr(&attr);
    if (st != CD_OK) goto done;
    TRY_D(dnnl_post_ops_create(&po), "post-ops");
    TRY_D(append_act(po, &key->act), "post-ops");
    if (key->add) TRY_D(dnnl_post_ops_append_binary(po, dnnl_binary_add, skip_md), "post-ops");
    TRY_D(append_act(po, &key->act2), "post-ops");
    if (dw) { /* ... -> depthwise 3x3 (its BN folded) -> its activation */
        int dw_pl = 0;
        if (act_steps(&key->act) == 0 || key->add || types.compute_bf16 ||
            dw_padding(dw, conv, &dw_pl)) {
            st = cd_fail(CD_ERR_STATE, "'%s': no depthwise tail for this block", conv->name);
            goto done;
        }
        TRY_D(dnnl_post_ops_append_dw(po, dnnl_f32, dnnl_f32, dnnl_f32, 3,
                                      cd_conv_of(dw->conv)->stride_h, dw_pl),
              "depthwise post-op");
        TRY_D(append_act(po, &dw->act), "post-ops");
        dnnl_dims_t wd = {dw->conv->shape.c, 1, 1, 3, 3};
        TRY_D(dnnl_memory_desc_create_with_tag(&dw_user, 5, wd, dnnl_f32, dnnl_hwigo), "descriptor");
    }
    TRY_D(dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
    dnnl_dims_t strides = {hp->stride_h, hp->stride_w}, dil = {0, 0};
    dnnl_dims_t pl = {pad[0], pad[2]}, pr = {pad[1], pad[3]};
    /* a trainable block's forward is the hint its backward primitives are built from */
    const dnnl_prop_kind_t prop = train ? dnnl_forward_training : dnnl_forward_inference;
    TRY_D(dnnl_convolution_forward_primitive_desc_create(&f->pd, cd_engine(), prop,
                                                         dnnl_convolution_direct, src_md, w_any, b_md,
                                                         dst_md, strides, dil, pl, pr, attr),
          "fused convolution descriptor");
    TRY_D(dnnl_primitive_create(&f->prim, f->pd), "fused convolution");
    TRY_D(dnnl_memory_create(&f->src, src_md, cd_engine(), DNNL_MEMORY_NONE), "memory");
    TRY_D(dnnl_memory_create(&f->dst, dnnl_primitive_desc_query_md(f->pd, dnnl_query_dst_md, 0),
                             cd_engine(), DNNL_MEMORY_NONE),
          "memory");
    TRY_D(dnnl_memory_create(&f->skip, skip_md, cd_engine(), DNNL_MEMORY_NONE), "memory");
    if (types.compute_bf16 && !types.src_bf16) {
        TRY_D(dnnl_memory_create(&f->src_user, src_user_md, cd_engine(), DNNL_MEMORY_NONE), "memory");
        if ((st = cd_make_reorder(src_user_md, src_md, &f->to_src, conv->name)) != CD_OK) goto done;
        f->src_converted = cd_alloc(dnnl_memory_desc_get_size(src_md), 1, "bf16 source");
        if (!f->src_converted) {
            st = CD_ERR_MEMORY;
            goto done;
        }
    }
    st = prepare_folded(&f->k, dnnl_primitive_desc_query_md(f->pd, dnnl_query_weights_md, 0), w_user,
                        b_md, &conv->params[0], oc, train, conv->name);
    if (st == CD_OK && dw) {
        const int arg = DNNL_ARG_ATTR_POST_OP_DW;
        st = prepare_folded(&f->dw,
                            dnnl_primitive_desc_query_md(f->pd, dnnl_query_exec_arg_md, arg | DNNL_ARG_WEIGHTS),
                            dw_user,
                            dnnl_primitive_desc_query_md(f->pd, dnnl_query_exec_arg_md, arg | DNNL_ARG_BIAS),
                            &dw->conv->params[0], dw->conv->shape.c, 0, dw->conv->name);
    }
done:
#undef TRY_D
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    dnnl_memory_desc_t mds[] = {src_md, dst_md, w_any, w_user, b_md, src_user_md, skip_md, dw_user};
    for (size_t i = 0; i < sizeof mds / sizeof *mds; i++)
        if (mds[i]) dnnl_memory_desc_destroy(mds[i]);
    return st;
}

/* Recompute the folded kernel and bias when the conv or BN weights changed. The kernel is
 * folded in Keras layout into a temporary buffer and reordered into the primitive's; only the
 * latter is kept (one copy per cached batch size). A trainable block refolds every step, so
 * it keeps its temporary buffer (k->folded_user) instead of mapping fresh pages each time. */
static cd_status fold(const cd_node *conv, const cd_node *bn, folded_weights *k) {
    const int use_bias = cd_conv_of(conv)->use_bias;
    uint64_t v[6] = {conv->params[0].version, use_bias ? conv->params[1].version : 0, 0, 0, 0, 0};
    for (int q = 0; bn && q < 4; q++) v[2 + q] = bn->params[q].version;
    if (k->valid && memcmp(v, k->versions, sizeof v) == 0) return CD_OK;
    const int oc = conv->shape.c;
    float s[oc];
    for (int c = 0; c < oc; c++) {
        s[c] = bn_scale(bn, c);
        float b = use_bias ? conv->params[1].value[c] : 0.f;
        k->folded_bias[c] = bn ? bn->params[1].value[c] + (b - bn->params[2].value[c]) * s[c] : b;
    }
    /* Keras layouts put the output channel last: HWIO (.., oc) and depthwise (.., c, 1) */
    const float *w = conv->params[0].value;
    const size_t total = conv->params[0].size, rows = total / (size_t)oc;
    float *folded = k->folded_user ? k->folded_user : cd_alloc(total, sizeof(float), "folded weights");
    if (!folded) return CD_ERR_MEMORY;
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < oc; c++) folded[r * oc + c] = w[r * oc + c] * s[c];
    cd_status st = cd_dnnl_check(dnnl_memory_set_data_handle(k->w_user, folded), "memory", conv->name);
    if (st == CD_OK && k->to_w) {
        st = cd_execute_reorder(k->to_w, k->w_user, k->w, conv->name);
    } else if (st == CD_OK) {
        void *dst;
        st = cd_dnnl_check(dnnl_memory_get_data_handle(k->w, &dst), "memory", conv->name);
        if (st == CD_OK) memcpy(dst, folded, total * sizeof(float));
    }
    if (folded != k->folded_user) free(folded);
    if (st != CD_OK) return st;
    memcpy(k->versions, v, sizeof v);
    k->valid = 1;
    k->folds++;
    return CD_OK;
}

/* The state built for this batch size and block (NULL: none yet). *victim: the entry to
 * replace when there is none (empty, else least recently used). */
static fused_state *find_state(cd_node *conv, int n, const block_key *key, cd_fused_types types,
                               int train, int has_dw, int *victim) {
    *victim = 0;
    for (int k = 0; k < CD_FUSED_CACHE; k++) {
        fused_state *c = conv->cache[k];
        if (c && c->batch == n && memcmp(&c->key, key, sizeof *key) == 0 && c->train == train &&
            c->has_dw == has_dw && memcmp(&c->types, &types, sizeof types) == 0)
            return c;
        fused_state *v = conv->cache[*victim];
        if (v && (!c || c->used < v->used)) *victim = k;
    }
    return NULL;
}

static cd_status forward(cd_node *conv, const cd_chain *chain, cd_fused_types types, int train,
                         const cd_dw_tail *dw, int n, const cd_shape *in, const void *src,
                         const void *skip, void *dst) {
    /* a ZeroPadding2D before the conv becomes extra (asymmetric) convolution padding */
    const cd_pad_hp *zp = chain->zeropad ? chain->zeropad->hp : NULL;
    int pad[4];
    for (int k = 0; k < 4; k++) pad[k] = cd_conv_of(conv)->pad[k] + (zp ? zp->pad[k] : 0);
    /* the state built for this batch size and block shape, else a new one in the least
     * recently used entry */
    const block_key key = key_of(chain);
    int victim;
    fused_state *f = find_state(conv, n, &key, types, train, dw != NULL, &victim);
    if (!f) {
        fused_free(conv->cache[victim]);
        conv->cache[victim] = NULL;
        cd_status s = build(n, conv, in, pad, &key, types, train, dw, &f);
        if (s != CD_OK) {
            fused_free(f);
            return s;
        }
        conv->cache[victim] = f;
    }
    f->used = ++conv->cache_clock;
    CD_TRY(fold(conv, chain->norm, &f->k));
    if (dw) CD_TRY(fold(dw->conv, dw->norm, &f->dw));
    if (f->to_src) { /* f32 source, bf16 compute */
        CD_DNNL(dnnl_memory_set_data_handle(f->src_user, (void *)src), "memory", conv->name);
        CD_DNNL(dnnl_memory_set_data_handle(f->src, f->src_converted), "memory", conv->name);
        CD_TRY(cd_execute_reorder(f->to_src, f->src_user, f->src, conv->name));
    } else {
        CD_DNNL(dnnl_memory_set_data_handle(f->src, (void *)src), "memory", conv->name);
    }
    CD_DNNL(dnnl_memory_set_data_handle(f->dst, dst), "memory", conv->name);
    CD_DNNL(dnnl_memory_set_data_handle(f->k.bias, f->k.folded_bias), "memory", conv->name);
    dnnl_exec_arg_t args[6] = {{DNNL_ARG_SRC, f->src}, {DNNL_ARG_WEIGHTS, f->k.w},
                               {DNNL_ARG_BIAS, f->k.bias}, {DNNL_ARG_DST, f->dst}};
    int nargs = 4;
    if (chain->add) { /* the binary post-op comes after the activation's eltwise steps */
        CD_DNNL(dnnl_memory_set_data_handle(f->skip, (void *)skip), "memory", conv->name);
        args[nargs++] = (dnnl_exec_arg_t){
            DNNL_ARG_ATTR_MULTIPLE_POST_OP(act_steps(&chain->act)) | DNNL_ARG_SRC_1, f->skip};
    }
    if (dw) {
        CD_DNNL(dnnl_memory_set_data_handle(f->dw.bias, f->dw.folded_bias), "memory", conv->name);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS, f->dw.w};
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS, f->dw.bias};
    }
    return cd_execute(f->prim, nargs, args, "fused convolution", conv->name);
}

cd_status cd_conv_forward_fused(cd_node *conv, const cd_chain *chain, cd_fused_types types,
                                const cd_dw_tail *dw, int n, const cd_shape *in, const void *src,
                                const void *skip, void *dst) {
    return forward(conv, chain, types, 0, dw, n, in, src, skip, dst);
}

/* bf16 tensors need bf16 convolutions; a trainable block has no Add, no padding folded, and
 * an activation only when its derivative comes from its output (a bf16 dy only with a ReLU). */
static cd_status check_train_block(const cd_node *conv, const cd_chain *c, cd_fused_types t) {
    float hi;
    if (t.skip_bf16 || (!t.compute_bf16 && (t.src_bf16 || t.dst_bf16 || t.dy_bf16 || t.dx_bf16)))
        return cd_fail(CD_ERR_STATE, "'%s': bf16 tensors in a float32 trainable block", conv->name);
    if (c->add || c->zeropad || c->act2.kind != CD_POST_NONE ||
        (act_steps(&c->act) > 0 && !c->act.grad_from_output) ||
        (t.dy_bf16 && act_steps(&c->act) > 0 && !cd_post_act_relu_like(&c->act, &hi)))
        return cd_fail(CD_ERR_STATE, "'%s': no trainable block for this chain", conv->name);
    return CD_OK;
}

cd_status cd_conv_forward_trainable(cd_node *conv, const cd_chain *chain, cd_fused_types types,
                                    int n, const cd_shape *in, const void *src, void *dst) {
    CD_TRY(check_train_block(conv, chain, types));
    return forward(conv, chain, types, 1, NULL, n, in, src, NULL, dst);
}

/* Where a primitive wants format md and the data lives in `other`: memory in md and a reorder
 * from other into it (into_md), or from it to other; *mem and *reorder stay NULL when the two
 * agree and the primitive uses the data where it is. */
static cd_status copy_in_format(const_dnnl_memory_desc_t md, const_dnnl_memory_desc_t other,
                                int into_md, dnnl_memory_t *mem, dnnl_primitive_t *reorder,
                                const char *name) {
    if (dnnl_memory_desc_equal(md, other)) return CD_OK;
    CD_DNNL(dnnl_memory_create(mem, md, cd_engine(), DNNL_MEMORY_ALLOCATE), "memory", name);
    return into_md ? cd_make_reorder(other, md, reorder, name) : cd_make_reorder(md, other, reorder, name);
}

/* The backward primitives of a trainable block, hinted by its forward; the weight formats
 * are oneDNN's choice, with reorders from the forward's folded copy and to Keras layout.
 * Data types follow the forward's compute type c (f32, or bf16 in bf16 mode):
 *   backward-data:    diff_dst c, weights c (the forward's folded copy) -> diff_src (f32, or
 *                     bf16 where the plan stores the source's gradient so);
 *   backward-weights: src c, diff_dst c -> diff_weights f32, diff_bias f32 (f32 accumulation).
 * The weight gradients, and so the optimizer, never see bf16. */
static cd_status build_backward(cd_node *conv, fused_state *f) {
    const_dnnl_memory_desc_t src_md = dnnl_primitive_desc_query_md(f->pd, dnnl_query_src_md, 0);
    const_dnnl_memory_desc_t b_md = dnnl_primitive_desc_query_md(f->pd, dnnl_query_weights_md, 1);
    const_dnnl_memory_desc_t w_fwd_md = dnnl_primitive_desc_query_md(f->pd, dnnl_query_weights_md, 0);
    const_dnnl_memory_desc_t w_user_md;
    CD_DNNL(dnnl_memory_get_memory_desc(f->k.w_user, &w_user_md), "memory desc", conv->name);
    const dnnl_data_type_t compute = dt(f->types.compute_bf16);
    const cd_conv_hp *hp = cd_conv_of(conv);
    const int n = f->batch, oc = conv->shape.c;
    dnnl_dims_t sd = {n, f->in.c, f->in.h, f->in.w}, dd = {n, oc, conv->shape.h, conv->shape.w};
    dnnl_memory_desc_t w_any = NULL, dw_any = NULL, diff_dst_md = NULL, diff_src_md = NULL;
    cd_status st = CD_OK;
    dnnl_primitive_attr_t attr = NULL;
#define TRY_D(call, what)                                                   \
    do {                                                                    \
        st = cd_dnnl_check((call), (what), conv->name);                     \
        if (st != CD_OK) goto done;                                         \
    } while (0)
    if (hp->depthwise) {
        dnnl_dims_t wd = {oc, 1, 1, hp->kh, hp->kw};
        TRY_D(dnnl_memory_desc_create_with_tag(&w_any, 5, wd, compute, dnnl_format_tag_any), "descriptor");
        TRY_D(dnnl_memory_desc_create_with_tag(&dw_any, 5, wd, dnnl_f32, dnnl_format_tag_any), "descriptor");
    } else {
        dnnl_dims_t wd = {oc, conv->params[0].dims[2], hp->kh, hp->kw};
        TRY_D(dnnl_memory_desc_create_with_tag(&w_any, 4, wd, compute, dnnl_format_tag_any), "descriptor");
        TRY_D(dnnl_memory_desc_create_with_tag(&dw_any, 4, wd, dnnl_f32, dnnl_format_tag_any), "descriptor");
    }
    TRY_D(dnnl_memory_desc_create_with_tag(&diff_dst_md, 4, dd, compute, dnnl_nhwc), "descriptor");
    TRY_D(dnnl_memory_desc_create_with_tag(&diff_src_md, 4, sd, dt(f->types.dx_bf16), dnnl_nhwc),
          "descriptor");
    dnnl_dims_t strides = {hp->stride_h, hp->stride_w}, dil = {0, 0};
    dnnl_dims_t pad_l = {hp->pad[0], hp->pad[2]}, pad_r = {hp->pad[1], hp->pad[3]};
    if ((st = cd_make_attr(&attr)) != CD_OK) goto done;
    TRY_D(dnnl_convolution_backward_data_primitive_desc_create(
              &f->bwd_data_pd, cd_engine(), dnnl_convolution_direct, diff_src_md, w_any, diff_dst_md,
              strides, dil, pad_l, pad_r, f->pd, attr),
          "convolution backward-data descriptor");
    TRY_D(dnnl_convolution_backward_weights_primitive_desc_create(
              &f->bwd_w_pd, cd_engine(), dnnl_convolution_direct, src_md, dw_any, b_md, diff_dst_md,
              strides, dil, pad_l, pad_r, f->pd, attr),
          "convolution backward-weights descriptor");
    TRY_D(dnnl_primitive_create(&f->bwd_data, f->bwd_data_pd), "convolution backward data");
    TRY_D(dnnl_primitive_create(&f->bwd_w, f->bwd_w_pd), "convolution backward weights");
    TRY_D(dnnl_memory_create(&f->diff_dst, diff_dst_md, cd_engine(), DNNL_MEMORY_NONE), "memory");
    TRY_D(dnnl_memory_create(&f->diff_src, diff_src_md, cd_engine(), DNNL_MEMORY_NONE), "memory");
    TRY_D(dnnl_memory_create(&f->diff_bias, b_md, cd_engine(), DNNL_MEMORY_NONE), "memory");
    TRY_D(dnnl_memory_create(&f->diff_w_user, w_user_md, cd_engine(), DNNL_MEMORY_NONE), "memory");
    if (!(f->dbias = cd_alloc((size_t)oc, sizeof(float), "bias gradient"))) {
        st = CD_ERR_MEMORY;
        goto done;
    }
    if (f->types.compute_bf16 && !f->types.dy_bf16 &&
        !(f->du_bf16 = cd_alloc(dnnl_memory_desc_get_size(diff_dst_md), 1, "bf16 gradients"))) {
        st = CD_ERR_MEMORY;
        goto done;
    }
    /* backward-data weights: the forward's folded copy when the formats agree */
    st = copy_in_format(dnnl_primitive_desc_query_md(f->bwd_data_pd, dnnl_query_weights_md, 0),
                        w_fwd_md, 1, &f->w_bwd, &f->w_to_bwd, conv->name);
    /* the weight gradient: straight into the kernel's grad when oneDNN writes Keras layout */
    if (st == CD_OK)
        st = copy_in_format(dnnl_primitive_desc_query_md(f->bwd_w_pd, dnnl_query_diff_weights_md, 0),
                            w_user_md, 0, &f->diff_w, &f->diff_w_to_user, conv->name);
done:
#undef TRY_D
    if (attr) dnnl_primitive_attr_destroy(attr);
    dnnl_memory_desc_t mds[] = {w_any, dw_any, diff_dst_md, diff_src_md};
    for (size_t i = 0; i < sizeof mds / sizeof *mds; i++)
        if (mds[i]) dnnl_memory_desc_destroy(mds[i]);
    return st;
}

enum { BN_GAMMA, BN_BETA, BN_MEAN, BN_VAR };

cd_status cd_conv_backward_trainable(cd_node *conv, const cd_chain *chain, int norm_trains,
                                     cd_fused_types types, int n, const cd_shape *in,
                                     const void *src, const void *y, void *dy, void *dx,
                                     int accumulate, float *scratch) {
    CD_TRY(check_train_block(conv, chain, types));
    if (types.dx_bf16 && accumulate)
        return cd_fail(CD_ERR_STATE, "'%s': a bf16 input gradient is written once", conv->name);
    const block_key key = key_of(chain);
    float max_value = 0.f;
    const int has_act = act_steps(&chain->act) > 0;
    const int relu = has_act && cd_post_act_relu_like(&chain->act, &max_value);
    int victim;
    fused_state *f = find_state(conv, n, &key, types, 1, 0, &victim);
    if (!f || !f->k.valid)
        return cd_fail(CD_ERR_STATE, "'%s': backward without the block's training forward", conv->name);
    if (!f->bwd_w) CD_TRY(build_backward(conv, f));
    const size_t out_count = (size_t)n * cd_node_sample_size(conv);
    /* du = dy through the activation: in place (dy is the block output's own gradient
     * buffer), or as bf16 for bf16 convolutions (a ReLU's mask and the rounding in one pass) */
    void *du = dy;
    if (has_act && !relu) /* another activation: its derivative from y, in float32 */
        CD_TRY(cd_post_act_grad(&chain->act, dy, dy, y, types.dst_bf16, out_count));
    if (types.compute_bf16) {
        /* a bf16 dy is masked in place; a float32 one is rounded into the block's buffer */
        if (!types.dy_bf16) du = f->du_bf16;
        if (!types.dy_bf16 || relu)
            cd_grad_to_bf16(du, dy, types.dy_bf16, relu ? y : NULL, types.dst_bf16, out_count,
                            max_value);
    } else if (relu) {
        cd_relu_grad(dy, y, dy, out_count, max_value, 0);
    }
    /* dW' (in Keras layout, into the kernel's gradient) and db' = sum(du); the source as the
     * forward read it (its bf16 copy when it converted one) */
    const void *x = f->to_src ? f->src_converted : src;
    CD_DNNL(dnnl_memory_set_data_handle(f->src, (void *)x), "memory", conv->name);
    CD_DNNL(dnnl_memory_set_data_handle(f->diff_dst, du), "memory", conv->name);
    CD_DNNL(dnnl_memory_set_data_handle(f->diff_w_user, conv->params[0].grad), "memory", conv->name);
    CD_DNNL(dnnl_memory_set_data_handle(f->diff_bias, f->dbias), "memory", conv->name);
    dnnl_exec_arg_t wargs[4] = {{DNNL_ARG_SRC, f->src},
                                {DNNL_ARG_DIFF_DST, f->diff_dst},
                                {DNNL_ARG_DIFF_WEIGHTS, f->diff_w ? f->diff_w : f->diff_w_user},
                                {DNNL_ARG_DIFF_BIAS, f->diff_bias}};
    CD_TRY(cd_execute(f->bwd_w, 4, wargs, "convolution backward weights", conv->name));
    if (f->diff_w_to_user) {
        CD_TRY(cd_execute_reorder(f->diff_w_to_user, f->diff_w, f->diff_w_user, conv->name));
    }
    cd_node *bn = chain->norm;
    if (bn && norm_trains) {
        /* dbeta now; dgamma from the summed dW' in cd_conv_trainable_finish (0 until then, so
         * micro-batches' gradient sums stay 0 + 0) */
        memcpy(bn->params[BN_BETA].grad, f->dbias, (size_t)conv->shape.c * sizeof(float));
        if (bn->params[BN_GAMMA].can_train) /* scale=False: gamma fixed, no gradient */
            memset(bn->params[BN_GAMMA].grad, 0, (size_t)conv->shape.c * sizeof(float));
    }
    if (cd_conv_of(conv)->use_bias) /* db'; the finish scales it with a BN */
        memcpy(conv->params[1].grad, f->dbias, (size_t)conv->shape.c * sizeof(float));
    if (!dx) return CD_OK;
    /* dx = conv_bwd_data(du, W') */
    dnnl_memory_t w = f->k.w;
    if (f->w_to_bwd) {
        if (f->w_bwd_folds != f->k.folds) {
            CD_TRY(cd_execute_reorder(f->w_to_bwd, f->k.w, f->w_bwd, conv->name));
            f->w_bwd_folds = f->k.folds;
        }
        w = f->w_bwd;
    }
    void *target = accumulate ? scratch : dx;
    CD_DNNL(dnnl_memory_set_data_handle(f->diff_src, target), "memory", conv->name);
    dnnl_exec_arg_t dargs[3] = {{DNNL_ARG_DIFF_DST, f->diff_dst},
                                {DNNL_ARG_WEIGHTS, w},
                                {DNNL_ARG_DIFF_SRC, f->diff_src}};
    CD_TRY(cd_execute(f->bwd_data, 3, dargs, "convolution backward data", conv->name));
    if (accumulate) cd_add_inplace((float *)dx, scratch, (size_t)n * cd_shape_size(in));
    return CD_OK;
}

void cd_conv_trainable_finish(cd_node *conv, cd_node *bn, int bn_trains) {
    if (!bn) return; /* W' = W, b' = bias: dW' and db' are the gradients */
    const int oc = conv->shape.c;
    const cd_param *kernel = &conv->params[0];
    float *dbias = cd_conv_of(conv)->use_bias ? conv->params[1].grad : NULL;
    const float *bias = dbias ? conv->params[1].value : NULL;
    const size_t rows = kernel->size / (size_t)oc; /* Keras layouts: output channel last */
    const float *w = kernel->value;
    const float *mean = bn->params[BN_MEAN].value, *var = bn->params[BN_VAR].value;
    float *dw = kernel->grad;
    const int blocks = (oc + 15) / 16;
#pragma omp parallel for schedule(static) if (kernel->size > 65536)
    for (int b = 0; b < blocks; b++) {
        const int c0 = b * 16, c1 = c0 + 16 < oc ? c0 + 16 : oc;
        float a[16];
        double da[16] = {0};
        for (int k = c0; k < c1; k++) a[k - c0] = bn_scale(bn, k);
        for (size_t r = 0; r < rows; r++) {
            const float *wr = w + r * (size_t)oc;
            float *dr = dw + r * (size_t)oc;
            for (int k = c0; k < c1; k++) {
                da[k - c0] += (double)dr[k] * wr[k];
                dr[k] *= a[k - c0];
            }
        }
        if (dbias)
            for (int k = c0; k < c1; k++) dbias[k] *= a[k - c0];
        if (bn_trains && bn->params[BN_GAMMA].can_train) {
            const float *dbeta = bn->params[BN_BETA].grad;
            float *dgamma = bn->params[BN_GAMMA].grad;
            for (int k = c0; k < c1; k++)
                dgamma[k] = (float)((da[k - c0] + ((bias ? (double)bias[k] : 0.0) - mean[k]) *
                                                     (double)dbeta[k]) /
                                    sqrt((double)(var[k] + cd_bn_of(bn)->epsilon)));
        }
    }
}
