/* graph_internal.h — what layers and the graph share: nodes, parameters, per-layer ops.
 *
 * A graph is a list of Keras layers in topological order (index 0 is the input layer).
 * Every node owns its output buffer out (n, h, w, c) NHWC float32 and, when a gradient flows
 * through it, dout of the same shape. Parameters are kept in Keras layout (the master copy
 * the optimizer updates); layers that need another layout (oneDNN blocked weights) keep a
 * copy keyed by the parameter's version counter.
 */
#ifndef CD_MODEL_GRAPH_INTERNAL_H
#define CD_MODEL_GRAPH_INTERNAL_H

#include <stdint.h>

#include "catdog.h"

#define CD_MAX_PARAMS 4
#define CD_OPT_SLOTS 3
#define CD_PLAN_SLOTS 6    /* batch sizes with primitives kept: full, the micro-batch, and
                              the last partial batches of training, validation and test sets */
#define CD_POOL_SLOTS 8    /* reusable buffers for outputs nobody keeps */
#define CD_FUSED_CACHE 8   /* fused blocks kept per conv: plan batch sizes and micro-batches */
#define CD_MICRO_BATCH 8   /* samples per micro-batch of the frozen prefix (run.c) */
#define CD_TRAIN_MICRO_BATCH 16 /* ... and of the trainable part in micro-batched training
                                   steps (fewer, larger kernels; its kept activations at 16
                                   samples fit where 8 did before trainable blocks were
                                   fused) */

typedef struct cd_param {
    char name[32];
    int ndim;
    int dims[CD_MAX_DIMS];
    size_t size;
    float *value;                 /* Keras layout, size floats */
    float *grad;                  /* same layout; allocated on first backward that needs it */
    float *slot[CD_OPT_SLOTS];    /* optimizer state (Adam m, v; RMSprop velocity, ...) */
    int can_train;                /* 0 for BN moving statistics */
    uint64_t version;             /* bumped on every write to value */
} cd_param;

typedef struct cd_graph cd_graph;
typedef struct cd_node cd_node;

typedef struct cd_layer_ops {
    /* Build primitives / buffers for batch size n (called when n changes). May be NULL. */
    cd_status (*prepare)(cd_graph *g, cd_node *node, int n);
    /* out = f(inputs). `training` is the effective flag for this layer. */
    cd_status (*forward)(cd_graph *g, cd_node *node, int training);
    /* From node->dout: parameter gradients (if node_trains(node)) and input gradients into
     * dx[i] (NULL when input i needs none); accumulate[i] adds to dx[i] instead of writing. */
    cd_status (*backward)(cd_graph *g, cd_node *node, float *dx[2], const int accumulate[2]);
    /* Free prepared state (primitives, caches). May be NULL. */
    void (*release)(cd_node *node);
    /* Apply state updates a training forward computed (BN moving statistics); run after
     * the loss was checked finite, so a NaN step changes nothing. May be NULL. */
    void (*commit)(cd_node *node);
} cd_layer_ops;

struct cd_node {
    cd_layer_kind kind;
    char name[CD_MAX_NAME];
    int num_inputs, inputs[2];
    int rank;                     /* 3: (h, w, c) per sample; 1: (c) with h = w = 1 */
    int h, w, c;

    /* hyperparameters (meaning depends on kind) */
    int kh, kw, stride_h, stride_w, pad[4], use_bias;
    float epsilon, momentum, max_value, rate, scale, offset;
    cd_activation activation;

    cd_param params[CD_MAX_PARAMS];
    int num_params;
    int trainable;                /* Keras layer.trainable */
    cd_mode mode;                 /* call-time training override (nested model(x, training=...)) */

    /* runtime, valid for the graph's current batch size */
    float *out, *dout;            /* out: own buffer or a pooled one (see run.c) */
    float *own;                   /* this node's dedicated output buffer, own_cap floats */
    float *own_dout;              /* dedicated gradient buffer when the pool is exhausted */
    size_t own_cap, dout_cap;
    int keep;                     /* output kept after the forward (backward or get_output) */
    int last_use;                 /* index of the last node reading this output */
    int pool_slot;                /* pooled buffer in use, or -1 */
    void *plan_state[CD_PLAN_SLOTS]; /* prepared state per batch size (state points at one) */
    int plan_batch[CD_PLAN_SLOTS];
    void *fused_cache[CD_FUSED_CACHE]; /* conv only: fused inference blocks by batch size */
    uint64_t fused_clock;         /* LRU clock of fused_cache */
    int boundary;                 /* micro-batched forward: a full-batch output buffer the
                                     micro-batches write slices of (run.c) */
    float *full_out;              /* micro-batched training: the prefix's full-batch output
                                     each micro-batch of the trainable part reads a slice of */
    int needs_grad;               /* a gradient flows through this node in backward */
    /* the forward's fused blocks (run.c plan_fusions): on a block's first node, the conv's
     * index, CD_FUSE_* tail and last node (-1 elsewhere); in_block: the block's first node */
    int block_conv, block_tail, block_last, in_block;
    int block_train;              /* on a block's first node: a trainable block (conv_fused.c) */
    int block_dw;                 /* on a block's first node: its depthwise tail's conv, or -1 */
    int out_bf16;                 /* output stored as bfloat16 (bf16 mode, only fused blocks read it) */
    int dout_written;             /* during backward: dout holds a value (else first write) */
    int last_training;            /* effective training flag used by the last forward */
    void *state;                  /* per-kind prepared state */
    const cd_layer_ops *ops;
};

struct cd_graph {
    cd_node *nodes;
    int num_nodes, capacity;

    int batch;                    /* batch size the nodes are prepared for (0: none) */
    int plan_lru[CD_PLAN_SLOTS];  /* batch size held by each plan slot, most recent first */
    float *pool[CD_POOL_SLOTS];   /* buffers for outputs not kept: reused along the chain */
    size_t pool_cap[CD_POOL_SLOTS]; /* floats each holds (they grow to the largest tensor held) */
    int pool_busy[CD_POOL_SLOTS];
    int forward_kind;             /* CD_KEEP_* of the last forward */
    int precision_generation;     /* cd_precision_generation() the plans were built with */
    int structure_dirty;          /* trainable/mode changed since prepare */
    int have_forward;             /* outputs valid */
    int have_backward;            /* gradients valid */
    float *scratch;               /* largest activation, for accumulate-by-add */
    size_t scratch_count;

    uint64_t seed;
    int64_t step;                 /* training steps taken (dropout key) */
    int sample_offset;            /* first sample of the running micro-batch in its batch
                                     (dropout masks are indexed by sample in the batch) */
    float *grad_spare;            /* micro-batched training: the micro-batches after the first
                                     write weight gradients here, then add them up */
    size_t grad_spare_count;
    int defer_finish;             /* micro-batched training: trainable blocks' gradients are
                                     finished once, after the last micro-batch */

    int compiled;
    cd_optimizer_config opt;
    cd_loss_kind loss;
    float accuracy_threshold;     /* BinaryAccuracy threshold on the outputs */
    int head_logits;              /* during a step: the last Dense emits logits (train.c) */
    int64_t opt_iterations;       /* Keras optimizer.iterations */
    float *dlogits;
    size_t dlogits_count;
    float *logits_all;            /* micro-batched training: the whole batch's logits */
    size_t logits_all_count;
};

/* True when `node` has parameters that receive gradients (layer trainable, weight trainable). */
int cd_node_trains(const cd_node *node);
/* The weights that receive gradients, one by one in graph order (a trainable layer's
 * trainable weights): start with *layer = 0, *w = -1; NULL after the last. */
cd_param *cd_next_trainable(cd_graph *g, int *layer, int *w);
/* Per-sample element count of the node's output. */
static inline size_t cd_node_sample_size(const cd_node *node) {
    return (size_t)node->h * (size_t)node->w * (size_t)node->c;
}
static inline cd_node *cd_input_node(cd_graph *g, const cd_node *node, int i) {
    return &g->nodes[node->inputs[i]];
}
/* Add a parameter to a node (allocates value, zero-filled). */
cd_status cd_node_add_param(cd_node *node, const char *name, int ndim, const int *dims,
                            int can_train);

/* What a forward keeps: every output (tests, get_output), what backward reads (training
 * step: nothing below the first trainable layer), or only the logits (evaluation). */
enum { CD_KEEP_ALL = 0, CD_KEEP_FOR_BACKWARD = 1, CD_KEEP_LAST = 2 };
/* Forward without committing moving statistics (cd_graph_forward commits at once). */
cd_status cd_graph_forward_mode(cd_graph *g, const float *x, int n, int training, int keep);

/* Called after each micro-batch's forward in cd_graph_train_micro: the logits of samples
 * [s0, s0 + m) are the last node's output; write their loss gradient (m rows, scaled for the
 * whole batch) to g->dlogits. */
typedef cd_status (*cd_micro_loss_fn)(cd_graph *g, int s0, int m, void *ctx);
/* A training forward + backward whose trainable part runs CD_TRAIN_MICRO_BATCH samples at a time,
 * weight gradients summed over the micro-batches. *done = 0 (nothing run) when the graph
 * does not allow it: the caller runs the full-batch step. */
cd_status cd_graph_train_micro(cd_graph *g, const float *x, int n, cd_micro_loss_fn loss,
                               void *ctx, int *done);
void cd_graph_release_runtime(cd_graph *g);
void cd_graph_commit(cd_graph *g);

/* Per-kind ops tables (csrc/nn/). */
extern const cd_layer_ops cd_input_ops, cd_conv2d_ops, cd_batchnorm_ops, cd_relu_ops,
    cd_zeropad_ops, cd_add_ops, cd_gap_ops, cd_dropout_ops, cd_dense_ops, cd_rescale_ops;

/* A fused block computed this BatchNormalization: drop any uncommitted statistics. */
void cd_batchnorm_discard(cd_node *node);

/* Grow *buf to hold at least count floats (*cap: floats it holds; contents not kept):
 * buffers grow to the largest batch, then stay. 0, or -1 out of memory (error set). */
int cd_grow_floats(float **buf, size_t *cap, size_t count, const char *what);
/* Free *buf and mark it empty. */
void cd_drop_floats(float **buf, size_t *cap);

/* dx (+)= dy * (0 < y < max_value) (no upper bound when max_value <= 0): the gradient of
 * ReLU(max_value) from its output y. dx may be dy. Parallel. */
void cd_relu_grad(float *dx, const float *y, const float *dy, size_t n, float max_value, int acc);
/* y += x elementwise (n floats), parallel. */
void cd_add_inplace(float *y, const float *x, size_t n);
#endif
