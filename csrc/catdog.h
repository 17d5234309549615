/* catdog.h — the public C API of the catdog engine.
 *
 * Conventions: every function returns a cd_status; on failure the message is in
 * cd_last_error() (thread-local). Handles are opaque. Activations are float32 NHWC;
 * weights are float32 in Keras's shapes (Conv2D kernel HWIO, DepthwiseConv2D (KH,KW,C,1),
 * Dense (in, units)). Nothing here prints, aborts or exits.
 */
#ifndef CATDOG_H
#define CATDOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CD_OK = 0,
    CD_ERR_VALUE = 1,   /* bad argument: shape, range, name        -> ValueError   */
    CD_ERR_MEMORY = 2,  /* allocation failed                        -> MemoryError  */
    CD_ERR_IO = 3,      /* file missing/unreadable                  -> OSError      */
    CD_ERR_RUNTIME = 4, /* oneDNN or internal failure               -> RuntimeError */
    CD_ERR_NUMERIC = 5, /* NaN/Inf loss                             -> FloatingPointError */
    CD_ERR_STATE = 6,   /* call out of order (e.g. backward first)  -> RuntimeError */
} cd_status;

const char *cd_last_error(void);

/* ---- runtime ------------------------------------------------------------------------ */
cd_status cd_runtime_init(void);        /* oneDNN engine + stream; idempotent */
cd_status cd_set_num_threads(int n);    /* oneDNN (TBB) and catdog's own loops */
int cd_get_num_threads(void);
const char *cd_onednn_version(void);

/* ---- graph: a chain of Keras layers --------------------------------------------------- */
typedef struct cd_graph cd_graph;

typedef enum {
    CD_LAYER_INPUT = 0,
    CD_LAYER_CONV2D,
    CD_LAYER_DEPTHWISE_CONV2D,
    CD_LAYER_BATCHNORM,
    CD_LAYER_RELU,
    CD_LAYER_ZEROPAD,
    CD_LAYER_ADD,
    CD_LAYER_GAP,
    CD_LAYER_DROPOUT,
    CD_LAYER_DENSE,
    CD_LAYER_RESCALE,
    CD_LAYER_KIND_COUNT
} cd_layer_kind;

typedef enum { CD_ACT_NONE = 0, CD_ACT_SOFTMAX = 1, CD_ACT_SIGMOID = 2 } cd_activation;

/* Per-layer override of the call-time `training` flag, as Keras's `model(x, training=False)`
 * sets it for every layer of a nested model. */
typedef enum { CD_MODE_INHERIT = -1, CD_MODE_INFERENCE = 0, CD_MODE_TRAINING = 1 } cd_mode;

cd_status cd_graph_create(cd_graph **out);
void cd_graph_free(cd_graph *g);

/* Builders append one layer and return its index in *id (0 is the input layer).
 * Padding is explicit (top, bottom, left, right); the Python side computes "same"/"valid". */
cd_status cd_graph_add_input(cd_graph *g, const char *name, int h, int w, int c, int *id);
cd_status cd_graph_add_conv2d(cd_graph *g, const char *name, int input, int filters, int kh, int kw,
                              int stride_h, int stride_w, const int pad[4], int use_bias, int *id);
cd_status cd_graph_add_depthwise_conv2d(cd_graph *g, const char *name, int input, int kh, int kw,
                                        int stride_h, int stride_w, const int pad[4], int use_bias,
                                        int *id);
cd_status cd_graph_add_batchnorm(cd_graph *g, const char *name, int input, float epsilon,
                                 float momentum, int *id);
cd_status cd_graph_add_relu(cd_graph *g, const char *name, int input, float max_value, int *id);
cd_status cd_graph_add_zeropad(cd_graph *g, const char *name, int input, const int pad[4], int *id);
cd_status cd_graph_add_add(cd_graph *g, const char *name, int a, int b, int *id);
cd_status cd_graph_add_gap(cd_graph *g, const char *name, int input, int *id);
cd_status cd_graph_add_dropout(cd_graph *g, const char *name, int input, float rate, int *id);
cd_status cd_graph_add_dense(cd_graph *g, const char *name, int input, int units, int use_bias,
                             cd_activation act, int *id);
cd_status cd_graph_add_rescale(cd_graph *g, const char *name, int input, float scale, float offset,
                               int *id);

/* ---- layers and weights ---------------------------------------------------------------- */
#define CD_MAX_NAME 128
#define CD_MAX_DIMS 4

typedef struct {
    const char *name;
    cd_layer_kind kind;
    int num_inputs, inputs[2];
    int out_rank;           /* 3 (H,W,C) or 1 (C) per sample */
    int out_shape[3];
    int num_weights;
    int trainable;
    cd_mode mode;
    int needs_grad;         /* last forward/backward: a gradient flows through this layer */
    int kept;               /* last forward kept this layer's output */
} cd_layer_info;

typedef struct {
    const char *name;       /* Keras name: "kernel", "depthwise_kernel", "gamma", "beta",
                               "moving_mean", "moving_variance", "bias" */
    int ndim;
    int dims[CD_MAX_DIMS];
    size_t size;
    int trainable;          /* moving statistics never are */
} cd_weight_info;

int cd_graph_num_layers(const cd_graph *g);
const char *cd_layer_kind_name(cd_layer_kind kind); /* Keras class name */
cd_status cd_graph_layer_info(const cd_graph *g, int layer, cd_layer_info *info);
cd_status cd_graph_find_layer(const cd_graph *g, const char *name, int *layer);
cd_status cd_graph_weight_info(const cd_graph *g, int layer, int w, cd_weight_info *info);
cd_status cd_graph_get_weight(const cd_graph *g, int layer, int w, float *dst, size_t n);
cd_status cd_graph_set_weight(cd_graph *g, int layer, int w, const float *src, size_t n);
cd_status cd_graph_set_trainable(cd_graph *g, int layer, int trainable);
cd_status cd_graph_set_mode(cd_graph *g, int layer, cd_mode mode);
/* Glorot-uniform kernels / zero biases / BN (1,0,0,1), from a seed. */
cd_status cd_graph_init_weights(cd_graph *g, uint64_t seed);

/* ---- execution ------------------------------------------------------------------------ */
/* x: (n, H, W, C) of the input layer. Keeps every layer's output until the next forward. */
cd_status cd_graph_forward(cd_graph *g, const float *x, int n, int training);
/* Inference forward that keeps only the last layer's output (predict): frozen activations
 * share a few pooled buffers. */
cd_status cd_graph_predict(cd_graph *g, const float *x, int n);
/* Output of `layer` from the last forward: n * prod(out_shape) floats. */
cd_status cd_graph_get_output(const cd_graph *g, int layer, float *dst, size_t count);
/* dy: gradient of the loss w.r.t. the last layer's output. Computes weight gradients of
 * trainable layers only, starting at the first layer that has something trainable above. */
cd_status cd_graph_backward(cd_graph *g, const float *dy);
cd_status cd_graph_get_gradient(const cd_graph *g, int layer, int w, float *dst, size_t n);
/* Dropout and other randomness: keyed by (seed, step, sample, element). */
cd_status cd_graph_set_seed(cd_graph *g, uint64_t seed);

/* ---- losses, metrics, optimizers, training --------------------------------------------- */
typedef enum { CD_LOSS_BCE_LOGITS = 0, CD_LOSS_SPARSE_CE_LOGITS = 1 } cd_loss_kind;
typedef enum { CD_OPT_SGD = 0, CD_OPT_ADAM = 1, CD_OPT_RMSPROP = 2 } cd_optimizer_kind;

typedef struct {
    cd_optimizer_kind kind;
    float learning_rate;
    float beta_1, beta_2, epsilon;  /* Adam */
    float rho;                      /* RMSprop */
    float momentum;                 /* SGD, RMSprop */
    int nesterov;                   /* SGD */
    int centered;                   /* RMSprop */
} cd_optimizer_config;

/* Loss value and d(loss)/d(logits) for a batch. logits (n, k); labels (n) float (0/1 for BCE,
 * class index for sparse CE). dlogits may be NULL. */
cd_status cd_loss(cd_loss_kind kind, const float *logits, const float *labels, int n, int k,
                  float *loss, float *dlogits);
/* Number of correct predictions: BCE -> logit > threshold matches label; sparse -> argmax. */
cd_status cd_accuracy(cd_loss_kind kind, const float *logits, const float *labels, int n, int k,
                      float threshold, double *correct);

/* Fresh optimizer state for every trainable weight (Keras: compile() resets it). */
cd_status cd_graph_compile(cd_graph *g, const cd_optimizer_config *opt, cd_loss_kind loss);
cd_status cd_graph_set_learning_rate(cd_graph *g, float lr);
/* BinaryAccuracy: a logit above `threshold` predicts class 1 (default 0). */
cd_status cd_graph_set_accuracy_threshold(cd_graph *g, float threshold);
/* One step: forward(training) -> loss -> backward -> optimizer update. A NaN/Inf loss leaves
 * the weights untouched and returns CD_ERR_NUMERIC naming the step. */
cd_status cd_graph_train_step(cd_graph *g, const float *x, const float *labels, int n,
                              float *loss, double *correct);
/* Inference-mode loss/correct on a batch. */
cd_status cd_graph_eval_step(cd_graph *g, const float *x, const float *labels, int n, float *loss,
                             double *correct);
int64_t cd_graph_step_count(const cd_graph *g);

#ifdef __cplusplus
}
#endif
#endif /* CATDOG_H */
