/* graph_internal.h — the graph (structure and weights), its plans and its run-time buffers.
 *
 * A graph is a list of layers (nn/layer.h cd_node) in topological order; index 0 is the
 * input layer. A plan (model/plan.c) says how one forward/backward runs: for a (batch size,
 * training flag, what to keep, precision) it fixes the steps, which outputs are kept and
 * how they are stored; plans are cached. The executor (model/exec.c) runs a plan: each node
 * gets its output buffer out (n, shape) NHWC and, when a gradient flows through it, dout of
 * the same shape (model/buffers.c lends them).
 */
#ifndef CD_MODEL_GRAPH_INTERNAL_H
#define CD_MODEL_GRAPH_INTERNAL_H

#include <stdint.h>

#include "catdog.h"
#include "nn/layer.h"

#define CD_STATE_SLOTS 6   /* batch sizes with kernel states kept: full, the micro-batch, and
                              the last partial batches of training, validation and test sets */
#define CD_PLAN_CACHE 8    /* plans kept (batch size, training, keep, precision) */
#define CD_POOL_SLOTS 8    /* reusable buffers for outputs nobody keeps */
#define CD_MICRO_BATCH 8   /* samples per micro-batch of the frozen prefix */
#define CD_TRAIN_MICRO_BATCH 16 /* ... and of the trainable part in micro-batched training */
#define CD_MICRO_STATES 2  /* kernel states a prefix layer keeps for its micro-batch sizes (the
                              micro-batch and a last partial one) */

/* ---- plans (model/plan.c) ---- */
typedef enum {
    CD_STEP_LAYER = 0,     /* one layer's own forward/backward */
    CD_STEP_FUSED = 1,     /* a fused inference block: [pad] conv [BN] [act] [Add [act]]
                              [dw tail] */
    CD_STEP_TRAIN = 2,     /* a trainable block: conv [BN] [act], BN folded, own backward */
    CD_STEP_SEGMENT = 3,   /* the steps after it up to `last` run in micro-batches of `micro` */
} cd_step_kind;

typedef struct {
    cd_step_kind kind;
    int first, last;       /* nodes [first, last] (SEGMENT: the nodes its steps cover) */
    int conv;              /* FUSED/TRAIN: the convolution; -1 otherwise */
    int norm, act, add, act2; /* FUSED/TRAIN: the post-op nodes after it (-1: absent) */
    int skip;              /* with an add: the Add's other input, or -1 */
    int dw;                /* FUSED: the depthwise tail's conv, or -1 */
    int micro;             /* SEGMENT: samples per micro-batch */
    int hard;              /* FUSED: its act is Keras's arithmetic hard_sigmoid (1: nodes act..
                              act + 2) or hard_swish (2: and the Multiply after), else 0 */
} cd_step;

typedef struct {
    /* key */
    int batch, training, keep, precision_generation;
    int grad_probe;               /* g->grad_probe it was built for */
    uint64_t structure_version;
    uint64_t used;                /* LRU clock */
    cd_precision precision;       /* cd_get_precision() when built (fixed by the generation) */
    /* steps in order; every node belongs to exactly one non-SEGMENT step */
    cd_step *steps;
    int num_steps;
    /* per node */
    unsigned char *keep_out;      /* output kept after the forward (backward or get_output) */
    unsigned char *needs_grad;    /* a gradient flows through it in backward */
    unsigned char *training_of;   /* its effective training flag */
    unsigned char *out_bf16;      /* output stored as bfloat16 (only blocks read it) */
    unsigned char *dout_bf16;     /* output gradient stored as bfloat16 (one block reads it) */
    int *last_use;                /* index of the last node reading its output */
    int *step_of;                 /* the step computing it */
    int prefix_last;              /* the micro-batched frozen prefix is nodes [0, p]; 0: none */
    int micro_train;              /* a training step may run the rest in micro-batches */
    int cache_cut;                /* evaluation plans: the node whose output the feature cache
                                     holds (model/features.c); 0: none */
} cd_plan;

/* The plan for this run (built or from the cache); NULL on failure (error set). */
cd_plan *cd_plan_get(cd_graph *g, int n, int training, int keep);
void cd_plan_free_all(cd_graph *g);
/* A readable listing of the plan, one step a line, into buf (truncated to size). */
size_t cd_plan_describe(const cd_graph *g, const cd_plan *p, char *buf, size_t size);
/* Effective training flag: the nested-model override, and CD_OP_FROZEN_INFERENCE. */
int cd_node_mode(const cd_node *node, int training);

/* ---- the feature cache (model/features.c) ---- */
#define CD_FEATURE_CACHE_BYTES ((size_t)512 << 20) /* default bound: past it, no caching */

/* One evaluation epoch's outputs of its plans' cache_cut node, batch by batch, with the
 * labels, valid while its key holds. */
typedef struct {
    int valid;
    uint64_t key;                 /* the caller's (dataset, order, batch size) token */
    uint64_t structure_version, weights_version;
    int precision_generation, threads, loss;
    int num_batches, cap_batches;
    int64_t expect_batches;       /* while recording: the loader's batch count */
    int *n, *cut;                 /* per batch: samples, cut node */
    size_t *at;                   /* per batch: byte offset of its features, float offset of
                                     its labels (at[2k], at[2k + 1]) */
    unsigned char *features;
    size_t feature_bytes, feature_cap;
    float *labels;
    size_t label_count, label_cap;
    size_t limit;                 /* bytes of features + labels allowed */
    int64_t hits, records;        /* epochs replayed / recorded (tests) */
} cd_feature_cache;

/* ---- run-time state per node (model/exec.c, model/buffers.c) ---- */
typedef struct {
    float *out, *dout;            /* out: own buffer, a pooled one, or a slice */
    float *own;                   /* this node's dedicated output buffer, own_cap floats */
    float *own_dout;              /* dedicated gradient buffer when the pool is exhausted */
    size_t own_cap, dout_cap;
    int pool_slot;                /* pooled buffer in use, or -1 */
    int boundary;                 /* micro-batched forward: out is a slice of own */
    float *full_out;              /* micro-batched training: the prefix's full-batch output
                                     each micro-batch of the rest reads a slice of */
    int dout_written;             /* during backward: dout holds a value (else first write) */
    void *state[CD_STATE_SLOTS];  /* kernel state per batch size (node->state points at one) */
    int state_batch[CD_STATE_SLOTS];
    void *micro_state[CD_MICRO_STATES]; /* a prefix layer's states for micro-batch sizes */
    int micro_batch[CD_MICRO_STATES];
} cd_rt;

struct cd_graph {
    cd_node *nodes;
    cd_rt *rt;                    /* per node, same index */
    int num_nodes, capacity;
    int max_inputs;               /* the widest node's inputs: the io arrays below hold it */
    const float **io_in;          /* the running kernel call's cd_io arrays (exec.c) */
    cd_shape *io_shape;
    float **io_dx;
    int *io_acc;
    uint64_t structure_version;   /* bumped by every change of layers, trainable or mode */
    int trainable_dirty;          /* trainable flags changed since the last forward */

    cd_plan *plans[CD_PLAN_CACHE];
    uint64_t plan_clock;
    cd_plan *plan;                /* the last forward's */

    int batch;                    /* batch size the kernel states are prepared for (0: none) */
    int state_lru[CD_STATE_SLOTS];/* batch size held by each state slot, most recent first */
    float *pool[CD_POOL_SLOTS];   /* buffers for outputs not kept: reused along the chain */
    size_t pool_cap[CD_POOL_SLOTS]; /* floats each holds (they grow to the largest tensor held) */
    int pool_busy[CD_POOL_SLOTS];
    int forward_keep;             /* cd_keep of the last forward */
    int precision_generation;     /* cd_precision_generation() the states were built with */
    int have_forward;             /* outputs valid */
    int have_backward;            /* gradients valid */
    float *scratch;               /* largest activation, for accumulate-by-add */
    size_t scratch_count;

    uint64_t seed;
    int64_t step;                 /* training steps taken (dropout key) */
    int sample_offset;            /* first sample of the running micro-batch in its batch */
    float *grad_spare;            /* micro-batched training: the running gradient sums */
    size_t grad_spare_count;
    int defer_finish;             /* micro-batched training: trainable blocks' gradients are
                                     finished once, after the last micro-batch */

    int compiled;
    cd_optimizer_config opt;
    cd_loss_kind loss;
    float accuracy_threshold;     /* BinaryAccuracy threshold on the outputs */
    int head_logits;              /* during a step: the last layer skips its output activation
                                     and emits logits (cd_io.logits; train.c) */
    int grad_probe;               /* 1 + the node whose output gradient backward copies into
                                     probe (cd_graph_output_gradient), 0: none; part of the
                                     plan's key (the node needs a gradient) */
    float *probe;
    size_t probe_count;
    int64_t opt_iterations;       /* Keras optimizer.iterations */
    cd_param **train_params;      /* cd_trainable_params' list, for train_params_version */
    int num_train_params;
    uint64_t train_params_version;
    float *dlogits;
    size_t dlogits_count;
    float *logits_all;            /* micro-batched training: the whole batch's logits */
    size_t logits_all_count;

    int tap_node;                 /* > 0: after the step ending at this node, its output
                                     (g->batch samples) is copied to tap_dst + tap_offset
                                     samples (recording the feature cache) */
    int tap_offset;               /* first sample of the running micro-batch in its batch */
    unsigned char *tap_dst;
    cd_feature_cache features;
};

/* True when `node` has weights that receive gradients (layer trainable, weight trainable). */
int cd_node_trains(const cd_node *node);
/* CD_ERR_VALUE unless `layer` is a node of g and `w` one of its weights (the message names
 * them): every API call taking (layer, weight) indices checks them here. */
cd_status cd_check_weight(const cd_graph *g, int layer, int w);
/* The weights that receive gradients, one by one in graph order (a trainable layer's
 * trainable weights): start with *layer = 0, *w = -1; NULL after the last. */
cd_param *cd_next_trainable(cd_graph *g, int *layer, int *w);

/* ---- the optimizer (model/optimizer_state.c) ---- */
/* The weights the optimizer updates (cd_next_trainable's), listed once per structure. */
cd_status cd_trainable_params(cd_graph *g, cd_param ***out, int *count);
cd_status cd_optimizer_reset(cd_graph *g);
cd_status cd_optimizer_apply(cd_graph *g);

/* ---- kernel states (model/states.c) ---- */
/* Every node's state for batch size n current (node->state), and scratch for n. */
cd_status cd_prepare_states(cd_graph *g, int n);
/* Drop every node's prepared states (all batch sizes) and caches: the next run rebuilds. */
void cd_release_states(cd_graph *g);
/* A layer run by the micro-batched prefix: node i's state for m samples (its own slots), and
 * back to the graph's current batch size's. */
cd_status cd_use_micro_state(cd_graph *g, int i, int m);
void cd_use_batch_state(cd_graph *g, int i);

/* ---- buffers (model/buffers.c) ---- */
/* A free pooled buffer of >= count floats (busy, index in *slot); NULL, *slot -1 when none. */
float *cd_take_pooled(cd_graph *g, size_t count, int *slot, cd_status *status);
void cd_release_pool(cd_graph *g);
/* Floats of storage for n samples of node i's output as the plan stores it. */
size_t cd_output_floats(const cd_graph *g, int i, int n);
/* Bytes of one sample of node i's output as stored (float32, or bfloat16). */
size_t cd_sample_bytes(const cd_graph *g, int i);
/* Node i's output buffer for g->batch samples: pooled unless the plan keeps it. */
cd_status cd_assign_output(cd_graph *g, int i);
/* Node i's pooled inputs whose last reader is node i go back to the pool. */
void cd_release_inputs(cd_graph *g, int i);
/* Gradient buffers: taken at their first writer, given back after the node's backward. */
cd_status cd_take_dout(cd_graph *g, int i);
void cd_give_back_dout(cd_graph *g, int i);

/* ---- execution (model/exec.c) ---- */
/* Forward without committing moving statistics (cd_graph_run_forward commits at once). */
cd_status cd_graph_forward_mode(cd_graph *g, const float *x, int n, int training, int keep);
/* Called after each micro-batch's forward in cd_graph_train_micro: the logits of samples
 * [s0, s0 + m) are the last node's output; write their loss gradient (m rows, scaled for the
 * whole batch) to g->dlogits. */
typedef cd_status (*cd_micro_loss_fn)(cd_graph *g, int s0, int m, void *ctx);
/* A training forward + backward whose trainable part runs CD_TRAIN_MICRO_BATCH samples at a
 * time, weight gradients summed over the micro-batches. *done = 0 (nothing run) when the
 * plan does not allow it: the caller runs the full-batch step. */
cd_status cd_graph_train_micro(cd_graph *g, const float *x, int n, cd_micro_loss_fn loss,
                               void *ctx, int *done);
void cd_graph_release_runtime(cd_graph *g);
/* An evaluation forward of n samples from the plan's cache_cut node on: `src` holds that
 * node's output as the plan stores it; the steps above it run as in a full forward. */
cd_status cd_graph_forward_from(cd_graph *g, int n, int cut, const void *src);
/* An evaluation step on n samples whose cut node's output is `src` (model/train.c). */
cd_status cd_graph_eval_from(cd_graph *g, int n, int cut, const void *src, const float *labels,
                             float *loss, double *correct);
/* Sum of the weight versions of nodes [0, last]. */
uint64_t cd_weights_version(const cd_graph *g, int last);
void cd_feature_cache_free(cd_feature_cache *c);
/* Recording an evaluation epoch under key (model/features.c): begin (the loader's batch
 * count sizes the record); per batch of n, before
 * its step, cd_feature_record_batch (0: recording abandoned, stop calling it) and after it
 * cd_feature_record_done; at the end cd_feature_record_end (complete: every batch ran). */
void cd_feature_record_begin(cd_graph *g, uint64_t key, int64_t batches);
int cd_feature_record_batch(cd_graph *g, int n);
void cd_feature_record_done(cd_graph *g, const float *labels, int n);
void cd_feature_record_end(cd_graph *g, int complete);
void cd_graph_commit(cd_graph *g);
/* The last node's output of the last forward. */
static inline const float *cd_graph_logits(const cd_graph *g) { return g->rt[g->num_nodes - 1].out; }
#endif
