/* layer.h — what a layer kind is: its description (cd_node: shapes, hyperparameters, weights),
 * the buffers its kernels receive (cd_io), and its ops table (cd_layer_ops), registered once
 * in nn/kinds.c. Kernels see no graph: a node, its prepared state, buffers, shapes and the
 * batch size.
 *
 * Gradient contract (what an optimizer, gradient clipping or a new layer relies on):
 *   - A backward call with cd_io.weight_grads set OVERWRITES the gradients of the trainable
 *     weights it owns (cd_param.grad); it never adds to them. Summing over micro-batches is the executor's job (model/exec.c).
 *   - Input gradients are written or added as cd_io.acc[i] says: acc 0 writes dx[i], acc 1
 *     adds to it (a tensor read by two layers collects both contributions).
 *   - A trainable fused block (nn/conv_fused.c: Conv -> BN in inference mode [-> ReLU])
 *     leaves its kernel's grad holding the folded kernel's gradient dW' and gamma's grad zero
 *     until cd_conv_trainable_finish turns them into dW and dgamma; the executor calls it once
 *     per backward, after the last micro-batch (cd_graph_backward returns finished gradients).
 */
#ifndef CD_NN_LAYER_H
#define CD_NN_LAYER_H

#include <stdint.h>

#include "catdog.h"

#define CD_MAX_PARAMS 4
#define CD_INPUTS_ANY (1 << 16) /* max_inputs of a kind taking any number of inputs */
#define CD_OPT_SLOTS 3
#define CD_FUSED_CACHE 8   /* fused blocks kept per conv: plan batch sizes and micro-batches */

/* Per-sample shape: rank 3 (h, w, c) NHWC, or rank 1 (c) with h = w = 1. */
typedef struct {
    int rank, h, w, c;
} cd_shape;

static inline size_t cd_shape_size(const cd_shape *s) {
    return (size_t)s->h * (size_t)s->w * (size_t)s->c;
}

typedef struct cd_param {
    char name[32];
    int ndim;
    int dims[CD_MAX_DIMS];
    size_t size;
    float *value;                 /* Keras layout, size floats */
    float *grad;                  /* same layout; allocated on first backward that needs it */
    float *slot[CD_OPT_SLOTS];    /* optimizer state (Adam m, v; RMSprop velocity, ...) */
    int can_train;                /* 0 for BN moving statistics */
    float init;                   /* the value every element starts at */
    uint64_t version;             /* bumped on every write to value */
} cd_param;

typedef struct cd_layer_ops cd_layer_ops;

/* One layer: structure and weights. No run-time state but the kernel's own (state, cache). */
typedef struct cd_node {
    const cd_layer_ops *ops;      /* the kind */
    char name[CD_MAX_NAME];
    int num_inputs;
    int *inputs;                  /* num_inputs node indices (the graph owns the array) */
    cd_shape shape;               /* output, per sample */
    void *hp;                     /* the kind's hyperparameters: its own struct (ops->hp_size) */
    cd_param params[CD_MAX_PARAMS];
    int num_params;
    int trainable;                /* Keras layer.trainable */
    cd_mode mode;                 /* call-time training override (nested model(x, training=...)) */
    void *state;                  /* kernel state prepared for the running batch size */
    void *cache[CD_FUSED_CACHE];  /* kernel-owned cache (convolutions: fused blocks) */
    uint64_t cache_clock;
} cd_node;

static inline size_t cd_node_sample_size(const cd_node *node) { return cd_shape_size(&node->shape); }
/* Declare a weight of a node, from its kind's build (nn/params.c): Keras dims, whether it can
 * train, the value its elements start at. The graph allocates it after the build. */
cd_status cd_declare_param(cd_node *node, const char *name, int ndim, const int *dims,
                           int can_train, float init);

/* The buffers of one kernel call: n samples; inputs (n, in_shape[i]); output (n, node shape).
 * Backward also has dout (n, node shape; a kernel may overwrite it) and dx[i] (NULL: input i
 * needs no gradient) with acc[i] (add instead of write). scratch holds n times the graph's
 * largest per-sample tensor. Dropout-like randomness is keyed by (seed, step, index) and the
 * sample's index in its batch (sample_offset + row). logits: the layer skips the activation
 * its output ends in (ops->out_activation), so out and dout are its logits and their
 * gradient (set on the last layer during a step whose loss takes the head's logits). */
typedef struct {
    int n;
    int num_inputs;
    const float *const *in;       /* num_inputs each: inputs, their shapes, gradients, acc */
    const cd_shape *in_shape;
    float *out;
    float *dout;
    float *const *dx;
    const int *acc;
    float *scratch;
    int training;                 /* effective training flag of this layer */
    uint64_t seed;
    int64_t step;
    int index;                    /* the layer's index in its graph */
    int sample_offset;
    int logits;
    int weight_grads;             /* backward: write the gradients of the node's trainable
                                     weights (the layer trains; cd_param.grad allocated) */
} cd_io;

/* Builder arguments: named hyperparameters (catdog.h cd_hparam), read by the kind's build. */
typedef struct {
    const char *layer;
    const cd_hparam *v;
    int count;
    unsigned used;                /* bit k: v[k] was read */
} cd_hparams;
/* Read `count` values of `key` into out (def: the default when absent; NULL: required).
 * CD_ERR_VALUE naming the layer when absent, the wrong length, or not integers (ints). */
cd_status cd_hp_ints(cd_hparams *h, const char *key, int count, const int *def, int *out);
cd_status cd_hp_floats(cd_hparams *h, const char *key, int count, const float *def, float *out);

/* What a kind declares about itself; plan and execution decide from these, never from the
 * kind. Fusion: a convolution followed by the post-ops its readers declare (post_op below)
 * runs as one convolution (nn/conv_fused.c; model/plan.c says which chains). */
enum {
    CD_OP_READS_INPUT = 1 << 0,       /* backward reads its inputs' values */
    CD_OP_READS_INPUT_TO_TRAIN = 1 << 1, /* ... only when its weights get gradients */
    CD_OP_READS_OUTPUT = 1 << 2,      /* backward reads its own output */
    CD_OP_COUPLES_BATCH = 1 << 3,     /* in training mode samples depend on each other */
    CD_OP_FROZEN_INFERENCE = 1 << 4,  /* a non-trainable layer runs in inference mode (TF2 BN) */
    CD_OP_CONV = 1 << 6,              /* a convolution: heads a fused block; micro-batched
                                         training pays where one trains */
    CD_OP_FUSE_PAD = 1 << 10,         /* folds into the padding of the conv after it */
};

/* Elementwise functions a fused convolution applies as post-ops (oneDNN's eltwise algorithms,
 * named here so that kinds do not depend on the backend): y = f(x; alpha, beta). */
typedef enum {
    CD_ELTWISE_RELU = 1,      /* x > 0 ? x : alpha * x */
    CD_ELTWISE_CLIP,          /* min(max(x, alpha), beta) (gradient where alpha < x < beta) */
    CD_ELTWISE_LOGISTIC,      /* 1 / (1 + exp(-x)) */
    CD_ELTWISE_TANH,
    CD_ELTWISE_SWISH,         /* x / (1 + exp(-alpha * x)) */
    CD_ELTWISE_GELU_ERF,      /* x / 2 * (1 + erf(x / sqrt 2)) */
    CD_ELTWISE_ELU,           /* x > 0 ? x : alpha * (exp(x) - 1) */
    CD_ELTWISE_LINEAR,        /* alpha * x + beta */
    CD_ELTWISE_SOFT_RELU,     /* log(1 + exp(alpha * x)) / alpha */
    CD_ELTWISE_HARDSIGMOID,   /* max(0, min(1, alpha * x + beta)) */
    CD_ELTWISE_HARDSWISH,     /* x * max(0, min(1, alpha * x + beta)) */
} cd_eltwise_alg;

typedef struct {
    cd_eltwise_alg alg;
    float alpha, beta;
} cd_eltwise;

/* What a node can be as a post-op of the convolution it reads (a kind's post_op): */
typedef enum {
    CD_POST_NONE = 0,
    CD_POST_NORM,             /* a per-channel affine map folded into the convolution's weights
                                 and bias (BatchNormalization in inference mode) */
    CD_POST_ACT,              /* an elementwise activation: `count` eltwise steps in order
                                 (0: identity; SELU is ELU then LINEAR) */
    CD_POST_ADD,              /* + another tensor of the output's shape (a residual Add) */
    CD_POST_MUL,              /* * another tensor (same shape or one value per channel) */
    CD_POST_DROP,             /* the identity in inference mode (Dropout): an inference chain
                                 passes over it, so the Add after it still fuses */
} cd_post_kind;

typedef struct {
    cd_post_kind kind;
    int count;                /* CD_POST_ACT: eltwise steps */
    cd_eltwise eltwise[2];
    int grad_from_output;     /* CD_POST_ACT: its derivative is a function of its output y
                                 (ReLU, clip, sigmoid, tanh, ELU), so a trainable block that
                                 ends in it needs only y for its backward */
} cd_post_op;

struct cd_layer_ops {
    const char *name;             /* Keras class name: the kind's key (cd_graph_add_layer) */
    unsigned flags;               /* CD_OP_* */
    unsigned (*node_flags)(const cd_node *node); /* flags depending on hyperparameters; NULL */
    int min_inputs, max_inputs;
    size_t hp_size;               /* bytes of the kind's hyperparameter struct (node->hp) */
    /* Validate hyperparameters (h) and the inputs' shapes (node->num_inputs of them), set
     * node->shape, declare weights. */
    cd_status (*build)(cd_node *node, const cd_shape *in, cd_hparams *h);
    /* Prepare node->state for batch size n (primitives, buffers). May be NULL. */
    cd_status (*prepare)(cd_node *node, const cd_shape *in, int n);
    /* io->out = f(io->in) */
    cd_status (*forward)(cd_node *node, const cd_io *io);
    /* From io->dout: weight gradients (overwritten, if io->weight_grads) and io->dx. */
    cd_status (*backward)(cd_node *node, const cd_io *io);
    /* Free node->state (primitives, buffers). NULL: free(). */
    void (*release)(cd_node *node);
    /* Free node->cache (states kept across batch sizes). May be NULL. */
    void (*release_cache)(cd_node *node);
    /* Apply state a training forward computed (BN moving statistics); run after the loss was
     * checked finite, so a NaN step changes nothing. May be NULL. */
    void (*commit)(cd_node *node);
    /* A fused block computed this layer: drop what its last forward left to commit. NULL. */
    void (*discard)(cd_node *node);
    /* The activation the layer's output ends in (softmax, sigmoid; CD_ACT_NONE: none), which
     * its kernels skip when cd_io.logits is set. NULL: none. */
    cd_activation (*out_activation)(const cd_node *node);
    /* As what this node can follow a convolution as its post-op (with these hyperparameters
     * and inputs): fills *op and returns 1, or returns 0 (not a post-op). NULL: never. */
    int (*post_op)(const cd_node *node, cd_post_op *op);
};

static inline unsigned cd_node_flags(const cd_node *node) {
    return node->ops->node_flags ? node->ops->node_flags(node) : node->ops->flags;
}

/* 1 with its scale and offset when `node` is a Rescaling (y = x * scale + offset), else 0: the
 * planner reads Keras's arithmetic hard_sigmoid / hard_swish (x + 3, ReLU(6), * 1/6) by it. */
int cd_rescale_of(const cd_node *node, float *scale, float *offset);

/* The node's post-op declaration (kind CD_POST_NONE when it is none). */
static inline cd_post_op cd_node_post_op(const cd_node *node) {
    cd_post_op op = {CD_POST_NONE, 0, {{0, 0.f, 0.f}, {0, 0.f, 0.f}}, 0};
    if (!node->ops->post_op || !node->ops->post_op(node, &op)) op.kind = CD_POST_NONE;
    return op;
}

/* The registered kinds (nn/kinds.c), NULL-terminated; lookup by Keras class name. */
extern const cd_layer_ops *const cd_layer_kinds[];
const cd_layer_ops *cd_find_kind(const char *name);
#endif
