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
cd_status cd_set_num_threads(int n);    /* oneDNN and catdog's own loops (OpenMP) */
int cd_get_num_threads(void);
const char *cd_onednn_version(void);

/* Arithmetic of the Conv -> BN blocks: CD_PRECISION_FP32 (default, exact float32), or
 * CD_PRECISION_BF16: the fused inference blocks below the first trainable layer (and all of
 * them in predict/evaluate) compute on bfloat16 activations and folded weights, keeping
 * bf16 the tensors that only such blocks read; the trainable blocks' convolutions (forward,
 * backward-data, backward-weights) take bfloat16 operands and accumulate in float32. Master
 * weights, weight gradients, the optimizer, the layers that run alone and every output a
 * caller can read stay float32. Needs AVX512-BF16 or AMX (CD_ERR_VALUE elsewhere). Graphs
 * rebuild their primitives at their next run. */
typedef enum { CD_PRECISION_FP32 = 0, CD_PRECISION_BF16 = 1 } cd_precision;
cd_status cd_set_precision(cd_precision p);
cd_precision cd_get_precision(void);
int cd_precision_generation(void); /* bumped by every change */

/* ---- graph: a chain of Keras layers --------------------------------------------------- */
typedef struct cd_graph cd_graph;

/* Dense's output activation (hyperparameter "activation"). */
typedef enum { CD_ACT_NONE = 0, CD_ACT_SOFTMAX = 1, CD_ACT_SIGMOID = 2 } cd_activation;

/* The Activation kind's function (hyperparameter "function"; nn/activation.c defines each as
 * Keras 3 does). */
typedef enum {
    CD_ACTIVATION_LINEAR = 0, CD_ACTIVATION_RELU, CD_ACTIVATION_RELU6, CD_ACTIVATION_SIGMOID,
    CD_ACTIVATION_TANH, CD_ACTIVATION_SOFTMAX, CD_ACTIVATION_SILU, CD_ACTIVATION_HARD_SIGMOID,
    CD_ACTIVATION_HARD_SILU, CD_ACTIVATION_GELU, CD_ACTIVATION_ELU, CD_ACTIVATION_SELU,
    CD_ACTIVATION_SOFTPLUS, CD_ACTIVATION_COUNT
} cd_activation_function;

/* Per-layer override of the call-time `training` flag, as Keras's `model(x, training=False)`
 * sets it for every layer of a nested model. */
typedef enum { CD_MODE_INHERIT = -1, CD_MODE_INFERENCE = 0, CD_MODE_TRAINING = 1 } cd_mode;

cd_status cd_graph_create(cd_graph **out);
void cd_graph_free(cd_graph *g);

/* A named hyperparameter: `count` (1-4) numbers. Integers travel as exact doubles. */
typedef struct {
    const char *key;
    int count;
    double v[4];
} cd_hparam;

/* Append a layer of kind `kind` (its Keras class name, one of cd_layer_kind_name(i)) reading
 * `inputs`; its index goes to *id (0 is the input layer). Each kind reads its own
 * hyperparameters, listed above its build function in csrc/nn/ (e.g. Conv2D: filters, kernel
 * (kh, kw), strides (sh, sw), pad (top, bottom, left, right), use_bias; padding is explicit:
 * the Python side computes "same"/"valid"). An unknown kind or key, a missing key or a bad
 * value is CD_ERR_VALUE naming the layer. */
cd_status cd_graph_add_layer(cd_graph *g, const char *kind, const char *name, int num_inputs,
                             const int *inputs, const cd_hparam *hp, int num_hp, int *id);
/* The registered kinds: i in [0, cd_num_layer_kinds()); NULL out of range. */
int cd_num_layer_kinds(void);
const char *cd_layer_kind_name(int i);

/* ---- layers and weights ---------------------------------------------------------------- */
#define CD_MAX_NAME 128
#define CD_MAX_DIMS 4

typedef struct {
    const char *name;
    const char *kind;       /* Keras class name */
    int num_inputs;
    const int *inputs;      /* num_inputs layer indices; valid until the graph changes */
    int out_rank;           /* 3 (H,W,C) or 1 (C) per sample */
    int out_shape[3];
    int num_weights;
    int trainable;
    cd_mode mode;
    int needs_grad;         /* last forward/backward: a gradient flows through this layer */
    int kept;               /* last forward kept this layer's output */
    size_t kept_floats;     /* floats in the layer's dedicated output buffer (0: none) */
    int fused_into;         /* last forward: first layer of the fused block that computed this
                               one (-1: it ran alone) */
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
cd_status cd_graph_layer_info(const cd_graph *g, int layer, cd_layer_info *info);
cd_status cd_graph_find_layer(const cd_graph *g, const char *name, int *layer);
cd_status cd_graph_weight_info(const cd_graph *g, int layer, int w, cd_weight_info *info);
cd_status cd_graph_get_weight(const cd_graph *g, int layer, int w, float *dst, size_t n);
cd_status cd_graph_set_weight(cd_graph *g, int layer, int w, const float *src, size_t n);
cd_status cd_graph_set_trainable(cd_graph *g, int layer, int trainable);
cd_status cd_graph_set_mode(cd_graph *g, int layer, cd_mode mode);

/* ---- execution ------------------------------------------------------------------------ */
/* What a forward keeps after it: every layer's output (run layer by layer: get_output), what
 * a backward reads (the training step's forward: frozen part fused, trainable Conv -> BN ->
 * ReLU6 blocks folded, nothing kept below the first trainable layer), or only the last
 * layer's output (predict, evaluate). */
typedef enum { CD_KEEP_ALL = 0, CD_KEEP_FOR_BACKWARD = 1, CD_KEEP_LAST = 2 } cd_keep;
/* x: (n, H, W, C) of the input layer. Commits training-mode state (BN moving statistics). */
cd_status cd_graph_run_forward(cd_graph *g, const float *x, int n, int training, cd_keep keep);
/* cd_graph_run_forward with CD_KEEP_ALL. */
cd_status cd_graph_forward(cd_graph *g, const float *x, int n, int training);
/* Inference forward that keeps only the last layer's output (predict): frozen activations
 * share a few pooled buffers. */
cd_status cd_graph_predict(cd_graph *g, const float *x, int n);
/* The training step's own forward on the whole batch (frozen part fused, trainable
 * Conv -> BN -> ReLU6 blocks folded, only what backward reads kept): for a backward. */
cd_status cd_graph_forward_for_backward(cd_graph *g, const float *x, int n, int training);
/* A readable listing of the plan a forward (n, training, keep) runs: one step a line
 * (layer | fused | train | segment, its layers, how its output is stored). *needed gets the
 * text's length; buf (size bytes, NUL-terminated) may be NULL to ask for it. */
cd_status cd_graph_describe_plan(cd_graph *g, int n, int training, cd_keep keep, char *buf,
                                 size_t size, size_t *needed);
/* Output of `layer` from the last forward: n * prod(out_shape) floats. */
cd_status cd_graph_get_output(const cd_graph *g, int layer, float *dst, size_t count);
/* dy: gradient of the loss w.r.t. the last layer's output. Computes weight gradients of
 * trainable layers only, starting at the first layer that has something trainable above.
 * Gradients are overwritten, not accumulated (nn/layer.h states the contract). */
cd_status cd_graph_backward(cd_graph *g, const float *dy);
cd_status cd_graph_get_gradient(const cd_graph *g, int layer, int w, float *dst, size_t n);
/* Dropout and other randomness: keyed by (seed, step, sample, element). */
cd_status cd_graph_set_seed(cd_graph *g, uint64_t seed);

/* ---- losses, metrics, optimizers, training --------------------------------------------- */
/* Crossentropies as Keras 3 computes them (formulas in nn/loss.c): on logits, or on
 * probabilities (clipped to [1e-7, 1 - 1e-7]). Labels per sample: one value (0/1 for BCE, a
 * class index for sparse CE) or k (one-hot / soft, categorical CE). The regression losses
 * (mean squared / absolute error, Huber with delta 1) take k targets per sample. */
typedef enum {
    CD_LOSS_BCE_LOGITS = 0,
    CD_LOSS_SPARSE_CE_LOGITS = 1,
    CD_LOSS_BCE = 2,
    CD_LOSS_SPARSE_CE = 3,
    CD_LOSS_CE_LOGITS = 4,
    CD_LOSS_CE = 5,
    CD_LOSS_MSE = 6,
    CD_LOSS_MAE = 7,
    CD_LOSS_HUBER = 8
} cd_loss_kind;
typedef enum { CD_OPT_SGD = 0, CD_OPT_ADAM = 1, CD_OPT_RMSPROP = 2 } cd_optimizer_kind;

/* Each optimizer's own hyperparameters (Keras names and defaults). */
typedef struct { float momentum; int nesterov; } cd_sgd_config;                  /* 0, 0 */
typedef struct { float beta_1, beta_2, epsilon; } cd_adam_config;               /* .9 .999 1e-7 */
typedef struct { float rho, momentum, epsilon; int centered; } cd_rmsprop_config; /* .9 0 1e-7 0 */

typedef struct {
    cd_optimizer_kind kind;
    float learning_rate;
    union {
        cd_sgd_config sgd;
        cd_adam_config adam;
        cd_rmsprop_config rmsprop;
    } u;                            /* the member `kind` names */
} cd_optimizer_config;

/* Loss value and d(loss)/d(outputs) for a batch. outputs (n, k) logits or probabilities;
 * labels (n, cd_loss_label_width(kind, k)) float. doutputs may be NULL. */
cd_status cd_loss(cd_loss_kind kind, const float *logits, const float *labels, int n, int k,
                  float *loss, float *dlogits);
int cd_loss_label_width(cd_loss_kind kind, int k);
int cd_loss_valid(cd_loss_kind kind);
/* The same for part of a batch: adds the n samples' losses to *total and writes their
 * gradients as if the batch had `denominator` samples (the mean's divisor). */
cd_status cd_loss_sum(cd_loss_kind kind, const float *logits, const float *labels, int n, int k,
                      int denominator, double *total, float *dlogits);
/* Number of correct predictions on outputs (n, k), after `act` when they are a head's
 * logits: BCE kinds -> output > threshold matches label; sparse -> argmax == label;
 * categorical -> argmax == argmax(label). */
cd_status cd_accuracy(cd_loss_kind kind, const float *logits, const float *labels, int n, int k,
                      cd_activation act, float threshold, double *correct);
/* y (units) in place through a Dense activation (softmax / sigmoid; none: unchanged). */
void cd_activate(cd_activation act, float *y, int units);

/* Fresh optimizer state for every trainable weight (Keras: compile() resets it). */
cd_status cd_graph_compile(cd_graph *g, const cd_optimizer_config *opt, cd_loss_kind loss);
cd_status cd_graph_set_learning_rate(cd_graph *g, float lr);
/* BinaryAccuracy: an output above `threshold` predicts class 1 (default 0, on logits). */
cd_status cd_graph_set_accuracy_threshold(cd_graph *g, float threshold);
/* One step: forward(training) -> loss -> backward -> optimizer update. A NaN/Inf loss leaves
 * the weights untouched and returns CD_ERR_NUMERIC naming the step. */
cd_status cd_graph_train_step(cd_graph *g, const float *x, const float *labels, int n,
                              float *loss, double *correct);
/* Inference-mode loss/correct on a batch. */
cd_status cd_graph_eval_step(cd_graph *g, const float *x, const float *labels, int n, float *loss,
                             double *correct);
/* Gradient of sum(output * dy) w.r.t. the output of `layer` (between the input and the
 * output) for inputs x (n): a full forward (BN/dropout as `training`), then backward from
 * the output down to that layer, frozen layers included (Grad-CAM). With `logits` and a
 * sigmoid/softmax Dense head, "output" is the head's logits. dy: the output's shape; dst:
 * n * the layer's sample size floats. Trainable weights' gradients change too. */
cd_status cd_graph_output_gradient(cd_graph *g, const float *x, int n, int training, int layer,
                                   int logits, const float *dy, float *dst, size_t count);
/* Label floats per sample the compiled loss takes (1, or the output width for categorical). */
int cd_graph_label_width(const cd_graph *g);
/* Forward (every output kept, training as given), loss `kind` and backward, no update: the
 * gradients of the loss w.r.t. every trainable weight, as a training step computes them. */
cd_status cd_graph_loss_backward(cd_graph *g, const float *x, const float *labels, int n,
                                 int training, cd_loss_kind kind, float *loss);
int64_t cd_graph_step_count(const cd_graph *g);
/* The optimizer's state, to save and restore it (Keras's optimizer variables): the slots the
 * compiled optimizer keeps per trainable weight (SGD: momentum if > 0; Adam: m, v; RMSprop:
 * v, then momentum if > 0, then the mean gradient if centered), each weight's slot `slot` of
 * layer `layer` weight `w` (zeros before its first update), and `iterations` (Keras
 * optimizer.iterations, the t of Adam's bias correction). Setting needs a compiled graph. */
int cd_graph_opt_slots(const cd_graph *g);
cd_status cd_graph_get_opt_slot(const cd_graph *g, int layer, int w, int slot, float *dst,
                                size_t n);
cd_status cd_graph_set_opt_slot(cd_graph *g, int layer, int w, int slot, const float *src,
                                size_t n);
int64_t cd_graph_opt_iterations(const cd_graph *g);
cd_status cd_graph_set_opt_iterations(cd_graph *g, int64_t iterations);


/* ---- data pipeline -------------------------------------------------------------------- */
/* Images are decoded once (stb_image: JPEG, PNG, BMP, GIF first frame -> RGB uint8), resized
 * like tf.image.resize (bilinear: half-pixel centres, no antialias; or nearest) and rounded to
 * uint8 into an optional cache (N, H, W, 3). A loader turns an ordered list of sample indices
 * into batches (float32 images (n, H, W, 3) in [0, 255] after the augmentation ops, float32
 * labels (n, label_width)) produced ahead by worker threads.
 *
 * Determinism: the shuffle is keyed by (seed, epoch); every random draw of an augmentation op
 * by (seed, epoch, sample index, op position). Batches are bit-identical for any number of
 * workers, with or without the cache. */
typedef struct cd_dataset cd_dataset;
typedef struct cd_loader cd_loader;

typedef enum { CD_INTERP_BILINEAR = 0, CD_INTERP_NEAREST = 1 } cd_interpolation;
typedef enum { CD_FILL_REFLECT = 0, CD_FILL_WRAP = 1, CD_FILL_CONSTANT = 2, CD_FILL_NEAREST = 3 } cd_fill_mode;
typedef enum { CD_LABELS_NONE = 0, CD_LABELS_INT = 1, CD_LABELS_BINARY = 2, CD_LABELS_CATEGORICAL = 3 } cd_label_mode;
/* What a file that cannot be decoded does. WARN and SKIP drop it (the caller reports); RAISE
 * makes cd_dataset_load / cd_loader_next fail with CD_ERR_IO or CD_ERR_VALUE naming the file. */
typedef enum { CD_ON_ERROR_WARN = 0, CD_ON_ERROR_SKIP = 1, CD_ON_ERROR_RAISE = 2 } cd_on_error;

#define CD_DEFAULT_MAX_PIXELS ((size_t)1 << 26)     /* 67 M pixels: refuse bigger headers */
#define CD_DEFAULT_MAX_FILE_BYTES ((size_t)1 << 28) /* 256 MiB */

/* One decoded image: RGB uint8 (h, w, 3), owned by the caller (free with cd_image_free). */
typedef struct {
    int height, width;
    uint8_t *pixels;
} cd_image;

/* Decode bytes (JPEG/PNG/BMP/GIF) to RGB. Refuses (CD_ERR_VALUE) unknown or corrupt data and
 * headers above max_pixels (0 = CD_DEFAULT_MAX_PIXELS) before allocating anything big. */
cd_status cd_decode_image(const uint8_t *bytes, size_t size, size_t max_pixels, cd_image *out);
/* Read a regular file (no FIFOs/devices, <= max_bytes; 0 = default) and decode it. */
cd_status cd_decode_file(const char *path, size_t max_pixels, size_t max_bytes, cd_image *out);
void cd_image_free(cd_image *img);

/* Resize uint8 (sh, sw, 3) to float32 (dh, dw, 3) as tf.image.resize does, reading the
 * source rectangle (y0, x0, ch, cw) (Keras crop_to_aspect_ratio; the full image otherwise). */
cd_status cd_resize_rgb(const uint8_t *src, int sh, int sw, int y0, int x0, int ch, int cw,
                        float *dst, int dh, int dw, cd_interpolation interp);
/* Keras smart-resize centre crop for crop_to_aspect_ratio: crop box of (h, w) for (th, tw). */
void cd_crop_box(int h, int w, int th, int tw, int *y0, int *x0, int *ch, int *cw);

/* Permutation of `in` (n sample indices) for (seed, epoch): Fisher-Yates driven by the
 * counter RNG. in == out allowed. */
cd_status cd_shuffle(uint64_t seed, int64_t epoch, const int64_t *in, int64_t n, int64_t *out);

typedef struct {
    int height, width;               /* output image size */
    cd_interpolation interpolation;
    int crop_to_aspect_ratio;
    cd_label_mode label_mode;
    int num_classes;                 /* label width: 1, or num_classes for CATEGORICAL */
    size_t cache_bytes;              /* cache samples [0, k) with k*H*W*3 <= cache_bytes; 0 = off */
    cd_on_error on_error;
    size_t max_pixels, max_file_bytes; /* 0 = defaults above */
} cd_dataset_config;

/* n files (paths are bytes in the OS encoding, copied) with class labels in [0, num_classes)
 * (labels may be NULL for CD_LABELS_NONE). Nothing is read until cd_dataset_load. */
cd_status cd_dataset_create(const cd_dataset_config *cfg, const char *const *paths,
                            const int32_t *labels, int64_t n, cd_dataset **out);
void cd_dataset_free(cd_dataset *ds);
/* Decode every sample once with `num_threads` threads: cached samples are decoded and
 * resized into the cache; the others only have their header checked. Samples that fail are
 * marked bad (WARN/SKIP) or make it fail (RAISE). Call once, before any loader. */
cd_status cd_dataset_load(cd_dataset *ds, int num_threads);
int64_t cd_dataset_size(const cd_dataset *ds);
int64_t cd_dataset_cached_count(const cd_dataset *ds);
int cd_dataset_label_width(const cd_dataset *ds);
void cd_dataset_image_shape(const cd_dataset *ds, int *height, int *width);
/* 1 if sample i decoded (or passed its header check), 0 if it is bad. */
int cd_dataset_sample_ok(const cd_dataset *ds, int64_t i);
/* Failures recorded so far (load and loaders): sample index and message of the k-th. */
int64_t cd_dataset_num_failures(const cd_dataset *ds);
cd_status cd_dataset_failure(const cd_dataset *ds, int64_t k, int64_t *sample, const char **message);
/* The resized uint8 (H, W, 3) pixels of sample i (from the cache, or decoded now). */
cd_status cd_dataset_get_image(cd_dataset *ds, int64_t i, uint8_t *dst);

/* Augmentation and preprocessing ops, applied in order to each float image. Random ops
 * (flip, rotation, zoom, translation, contrast, brightness) run only when the loader's
 * `training` is set;
 * RESCALE always (x * scale + offset: Keras Rescaling, mobilenet_v2 preprocess_input). */
typedef enum { CD_AUG_FLIP = 0, CD_AUG_ROTATION = 1, CD_AUG_ZOOM = 2, CD_AUG_TRANSLATION = 3,
               CD_AUG_RESCALE = 4, CD_AUG_CONTRAST = 5, CD_AUG_BRIGHTNESS = 6 } cd_aug_kind;
typedef struct {
    cd_aug_kind kind;
    int horizontal, vertical;       /* FLIP: each flips with probability 1/2 */
    /* ROTATION: angle uniform in [lo, hi] * 2*pi. ZOOM: height zoom 1 + uniform[lo, hi]
     * (negative = zoom in); TRANSLATION: dy = uniform[lo, hi] * H. */
    float lo, hi;
    /* ZOOM: width zoom 1 + uniform[lo2, hi2] if has_second, else the height zoom.
     * TRANSLATION: dx = uniform[lo2, hi2] * W (has_second must be 1).
     * CONTRAST: factor uniform in [lo, hi], output clipped to [lo2, hi2].
     * BRIGHTNESS: delta uniform in [lo, hi] times scale, output clipped to [lo2, hi2]. */
    float lo2, hi2;
    int has_second;
    cd_fill_mode fill_mode;
    cd_interpolation interpolation;
    float fill_value;
    float scale, offset;            /* RESCALE */
} cd_aug_op;

/* Apply ops to one float (h, w, 3) image in place (scratch: h*w*3 floats), with the random
 * draws of (seed, epoch, sample). Exposed for tests and for callers without a loader. */
cd_status cd_augment_image(const cd_aug_op *ops, int num_ops, int training, uint64_t seed,
                           int64_t epoch, int64_t sample, float *image, float *scratch, int h,
                           int w);
/* Fixed-parameter geometry (tests): Keras's projective transform (8 floats, output->input
 * map) with a fill mode and interpolation, src and dst (h, w, 3) float, distinct. */
void cd_affine_transform(const float *src, float *dst, int h, int w, const float transform[8],
                         cd_fill_mode fill, cd_interpolation interp, float fill_value);

typedef struct {
    int batch_size;
    int training;                  /* random ops active */
    uint64_t seed;
    int64_t epoch;
    int num_workers;               /* 0: batches are made in cd_loader_next's thread */
    int prefetch;                  /* batches made ahead (>= 1; 0 = 2 per worker) */
    const cd_aug_op *ops;          /* copied */
    int num_ops;
} cd_loader_config;

typedef struct {
    const float *images;           /* (n, H, W, 3) */
    const float *labels;           /* (n, label_width); NULL for CD_LABELS_NONE */
    const int64_t *samples;        /* (n) dataset sample index of each row */
    int n;                         /* rows: batch_size, fewer in the last batch, or fewer when
                                      uncached files failed under WARN/SKIP (even 0: skip it) */
    int64_t batch;                 /* batch number in the epoch */
    int end_of_epoch;              /* 1: no batch returned, the epoch is over */
} cd_batch;

/* A loader over `indices` (n sample indices, in the order batches take them: the caller
 * passes cd_shuffle's output to shuffle). Starts the workers. The dataset must outlive it. */
cd_status cd_loader_create(cd_dataset *ds, const int64_t *indices, int64_t n,
                           const cd_loader_config *cfg, cd_loader **out);
int64_t cd_loader_num_batches(const cd_loader *l);
/* The (height, width) of the images in the loader's batches: its dataset's image size. */
void cd_loader_image_shape(const cd_loader *l, int *height, int *width);
/* The next batch, in order; b->end_of_epoch == 1 after the last one. b's buffers stay valid until
 * the next call (they are then reused: no allocation per batch). Safe to call without the
 * GIL; one consumer thread at a time. */
cd_status cd_loader_next(cd_loader *l, cd_batch *b);
/* Start another epoch on the same buffers and threads' settings (stops pending work). */
cd_status cd_loader_restart(cd_loader *l, const int64_t *indices, int64_t n, int64_t epoch);
void cd_loader_free(cd_loader *l);
/* An epoch on the engine side (GIL released; Python hands over the handles as capsules
 * "catdog.cd_dataset" / "catdog.cd_loader", see csrc/binding/data.c):
 *     int64_t *order = ...;  cd_shuffle(seed, epoch, samples, n, order);
 *     cd_loader *l;  CD_TRY(cd_loader_create(ds, order, n, &cfg, &l));
 *     cd_batch b;
 *     while ((s = cd_loader_next(l, &b)) == CD_OK && !b.end_of_epoch)
 *         if (b.n > 0) step(b.images, b.labels, b.n);
 *     cd_loader_free(l);   (or cd_loader_restart for the next epoch) */

/* ---- a whole epoch in C ----------------------------------------------------------------- */
typedef struct {
    int64_t batches, samples;
    double loss_sum;      /* sum over batches of (batch mean loss * batch size) */
    double correct;       /* correct predictions (accuracy metric) */
    int stopped;          /* the progress callback asked to stop at a batch boundary */
} cd_epoch_stats;

/* Called after every batch with the running stats; return nonzero to stop (Ctrl-C). */
typedef int (*cd_progress_fn)(void *ctx, const cd_epoch_stats *stats);

/* Train (train != 0: forward, loss, backward, update per batch) or evaluate every batch the
 * loader yields, without returning to the caller in between. Labels must be one per image. */
cd_status cd_graph_run_epoch(cd_graph *g, cd_loader *loader, int train, cd_progress_fn progress,
                             void *ctx, cd_epoch_stats *stats);

/* ---- evaluation work done once: the feature cache (model/features.c) -------------------- */
/* An evaluation epoch's images are not augmented, so the output of the layers below the
 * first trainable one is the same each epoch. With a nonzero key (the caller's token for the
 * dataset, its sample order and batch size) an evaluation epoch records that output (the
 * evaluation plan's cache cut: the pooled features under a frozen base, the output of the
 * last block below the first trainable one when fine-tuning); cd_graph_eval_epoch_cached
 * replays such a record under the same key and the same structure, weights below the cut,
 * precision, threads and loss, running only the layers above the cut: same bits as the full
 * epoch. *hit = 0: no valid record (nothing ran; run the epoch with the loader). */
cd_status cd_graph_run_epoch_keyed(cd_graph *g, cd_loader *loader, int train, uint64_t key,
                                   cd_progress_fn progress, void *ctx, cd_epoch_stats *stats);
cd_status cd_graph_eval_epoch_cached(cd_graph *g, uint64_t key, cd_progress_fn progress,
                                     void *ctx, cd_epoch_stats *stats, int *hit);
/* Bytes (features + labels) a record may hold; past it epochs run in full. 0: off. */
cd_status cd_graph_set_feature_cache_limit(cd_graph *g, size_t bytes);
typedef struct {
    int valid, cut;       /* a record is held; the node it holds the output of */
    size_t bytes, limit;
    int64_t hits, records; /* epochs replayed / recorded */
} cd_feature_cache_info;
void cd_graph_feature_cache_info(const cd_graph *g, cd_feature_cache_info *info);

#ifdef __cplusplus
}
#endif
#endif /* CATDOG_H */
