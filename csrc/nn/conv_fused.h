/* conv_fused.h — a convolution and the post-ops after it as one oneDNN convolution
 * (conv_fused.c): [ZeroPadding2D] Conv [-> BN] [-> act] [-> Add [-> act]] in the frozen part
 * (inference), and trainable blocks Conv [-> BN in inference mode] [-> act] in training. The
 * plan (model/plan.c) picks the chains from what each kind declares (nn/layer.h cd_post_op)
 * and asks the functions below whether a candidate fits. The kinds a block is made of share
 * their hyperparameter structs here. */
#ifndef CD_NN_CONV_FUSED_H
#define CD_NN_CONV_FUSED_H
#include "nn/layer.h"

/* Conv2D / DepthwiseConv2D (depth multiplier 1) */
typedef struct {
    int depthwise;
    int kh, kw, stride_h, stride_w, pad[4]; /* pad: top, bottom, left, right */
    int use_bias;
} cd_conv_hp;
/* BatchNormalization */
typedef struct {
    float epsilon, momentum;
} cd_bn_hp;
/* ReLU(max_value): max_value <= 0 means no upper bound */
typedef struct {
    float max_value;
} cd_relu_hp;
/* ZeroPadding2D */
typedef struct {
    int pad[4];
} cd_pad_hp;

static inline const cd_conv_hp *cd_conv_of(const cd_node *n) { return n->hp; }
static inline const cd_bn_hp *cd_bn_of(const cd_node *n) { return n->hp; }
static inline float cd_act_max(const cd_node *n) { return ((const cd_relu_hp *)n->hp)->max_value; }

/* The chain a fused block runs after its convolution (model/plan.c found it). */
typedef struct {
    const cd_node *zeropad;       /* folded into the convolution's padding, or NULL */
    cd_node *norm;                /* a BN in inference mode folded into the weights, or NULL */
    cd_post_op act;               /* then this activation (kind CD_POST_NONE: none) */
    int add;                      /* then + skip, a tensor of the output's shape */
    cd_post_op act2;              /* then this activation (after the add only) */
} cd_chain;

/* Data types of a block's tensors (1: bfloat16, 0: float32). compute_bf16: the
 * convolutions run on bf16 operands (bf16 mode); a float32 source is converted. dy_bf16 /
 * dx_bf16 (trainable blocks): the gradients of the block's output and of its source. */
typedef struct {
    int compute_bf16, src_bf16, dst_bf16, skip_bf16, dy_bf16, dx_bf16;
} cd_fused_types;

/* A depthwise tail: the block goes on through [zeropad ->] conv (DepthwiseConv2D 3x3,
 * stride 1 or 2) [-> norm] -> act, run inside the block's convolution as oneDNN's depthwise
 * post-op, so the expand conv's output is never written to memory (MobileNetV2's early
 * blocks, where it is the largest tensor: 80x80x96 per sample at 160x160). */
typedef struct {
    cd_node *conv;
    const cd_node *norm, *zeropad;
    cd_post_op act;
} cd_dw_tail;

/* May this conv head a trainable block (a plain convolution oneDNN's backward takes)? */
int cd_conv_trainable_fits(const cd_node *conv);
/* May dw follow the fused block of `expand` (ending in an activation) as its depthwise tail:
 * expand a 1x1 stride-1 unpadded Conv2D whose output (in float32) is at least min_bytes per
 * sample, dw a depthwise 3x3 whose geometry oneDNN's post-op takes? */
int cd_dw_tail_fits(const cd_dw_tail *dw, const cd_node *expand, size_t min_bytes);
/* Is act a ReLU with an optional upper bound (relu, clip(0, hi))? *max_value = hi (0: none). */
int cd_post_act_relu_like(const cd_post_op *act, float *max_value);
/* du = dy * f'(x) from the activation's output y (f32, or bf16 when y_bf16), for an act with
 * grad_from_output (nn/postop.c). du may be dy. */
cd_status cd_post_act_grad(const cd_post_op *act, float *du, const float *dy, const void *y,
                           int y_bf16, size_t n);

/* dst = chain(conv(zeropad(src))) for n samples (src (n, in) is the block input's output, `in`
 * its shape); skip is the Add's other input (chain->add). src, dst and skip are float32 or
 * bfloat16 as `types` says. With a depthwise tail (dw not NULL; float32 only) dst is the
 * depthwise block's output. The fused primitive and folded weights are cached on the conv
 * node per batch size and chain (CD_FUSED_CACHE of them). */
cd_status cd_conv_forward_fused(cd_node *conv, const cd_chain *chain, cd_fused_types types,
                                const cd_dw_tail *dw, int n, const cd_shape *in, const void *src,
                                const void *skip, void *dst);
/* A trainable block: conv (bias or not, no ZeroPadding2D folded) [-> BN in inference mode]
 * [-> act with grad_from_output] (no add), folded with the current weights: src (n, in) ->
 * dst (n, oh, ow, oc), the block's output y. In float32 compute every tensor is float32. With
 * types.compute_bf16 the convolutions run on bf16 operands: the forward on bf16 x and folded
 * weights, backward-data on bf16 du and weights, backward-weights on bf16 x and du with
 * float32 accumulation into float32 weight gradients; x, y, dy and dx are each bf16 or
 * float32 as `types` says (skip_bf16 must be 0). */
cd_status cd_conv_forward_trainable(cd_node *conv, const cd_chain *chain, cd_fused_types types,
                                    int n, const cd_shape *in, const void *src, void *dst);
/* Its backward from dy (the block output's gradient; overwritten with du in float32 compute):
 * the folded kernel's gradient dW' into the kernel's grad and db' into the bias's (when the
 * conv has one), and when the norm trains dbeta and gamma's grad zeroed; dx (+)= the input
 * gradient (NULL: none needed; scratch: n * input size floats for accumulate, which a bf16 dx
 * does not take). `types` as the forward's. Run cd_conv_trainable_finish once the step's
 * gradients are summed. */
cd_status cd_conv_backward_trainable(cd_node *conv, const cd_chain *chain, int norm_trains,
                                     cd_fused_types types, int n, const cd_shape *in,
                                     const void *src, const void *y, void *dy, void *dx,
                                     int accumulate, float *scratch);
/* With a norm: dW' -> dW = dW' * a, db' -> dbias = db' * a and, when the norm trains, dgamma
 * from dW', W and dbeta (conv_fused.c's header says how). Without one they are final. */
void cd_conv_trainable_finish(cd_node *conv, cd_node *norm, int norm_trains);
/* Free every cached fused state of a conv node. */
void cd_conv_fused_release(cd_node *conv);
#endif
