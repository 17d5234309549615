/* conv_fused.h — [ZeroPadding2D] Conv -> BN (-> ReLU | -> Add) as one convolution
 * (conv_fused.c): frozen inference blocks, and trainable blocks under a BN in inference mode.
 * The kinds a block is made of share their hyperparameter structs here; the plan
 * (model/plan.c) picks blocks from the kinds' CD_OP_FUSE_* flags and asks the functions
 * below whether a candidate fits. */
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

enum { CD_FUSE_NONE = 0, CD_FUSE_BN = 1, CD_FUSE_RELU = 2, CD_FUSE_ADD = 3 };

/* Data types of a block's tensors (1: bfloat16, 0: float32). compute_bf16: the
 * convolutions run on bf16 operands (bf16 mode); a float32 source is converted. dy_bf16 /
 * dx_bf16 (trainable blocks): the gradients of the block's output and of its source. */
typedef struct {
    int compute_bf16, src_bf16, dst_bf16, skip_bf16, dy_bf16, dx_bf16;
} cd_fused_types;

/* A depthwise tail: the block goes on through [zeropad ->] conv (DepthwiseConv2D 3x3,
 * stride 1 or 2) -> bn -> act (ReLU), run inside the block's convolution as oneDNN's
 * depthwise post-op, so the expand conv's output is never written to memory (MobileNetV2's
 * early blocks, where it is the largest tensor: 80x80x96 per sample at 160x160). */
typedef struct {
    cd_node *conv;
    const cd_node *bn, *zeropad, *act;
} cd_dw_tail;

/* May this conv head a trainable block (no bias: the fold would need one)? */
int cd_conv_trainable_fits(const cd_node *conv);
/* May dw follow the fused block of `expand` (ending in a ReLU) as its depthwise tail: expand
 * a 1x1 stride-1 unpadded Conv2D whose output (in float32) is at least min_bytes per sample,
 * dw a depthwise 3x3 whose geometry oneDNN's post-op takes? */
int cd_dw_tail_fits(const cd_dw_tail *dw, const cd_node *expand, size_t min_bytes);

/* dst = act(conv(zeropad(src)) folded with bn) for n samples (zeropad, act may be NULL;
 * src (n, in) is the block input's output, `in` its shape); skip is the Add's other input
 * (tail CD_FUSE_ADD). src, dst and skip are float32 or bfloat16 as `types` says. With a
 * depthwise tail (dw not NULL; tail CD_FUSE_RELU, float32 only) dst is the depthwise block's
 * output. The fused primitive and folded weights are cached on the conv node per batch size
 * and block shape (CD_FUSED_CACHE of them). */
cd_status cd_conv_forward_fused(cd_node *conv, const cd_node *zeropad, const cd_node *bn,
                                int tail, const cd_node *act, cd_fused_types types,
                                const cd_dw_tail *dw, int n, const cd_shape *in, const void *src,
                                const void *skip, void *dst);
/* A trainable block: conv (no bias, no ZeroPadding2D folded) -> BN in inference mode
 * (-> act, a ReLU, when tail is CD_FUSE_RELU), folded with the current weights: src (n, in)
 * -> dst (n, oh, ow, oc), the block's output y. In float32 compute every tensor is float32.
 * With types.compute_bf16 the convolutions run on bf16 operands: the forward on bf16 x and
 * folded weights, backward-data on bf16 du and weights, backward-weights on bf16 x and du
 * with float32 accumulation into float32 weight gradients; x, y, dy and dx are each bf16 or
 * float32 as `types` says (skip_bf16 must be 0: no Add tail). */
cd_status cd_conv_forward_trainable(cd_node *conv, const cd_node *bn, int tail,
                                    const cd_node *act, cd_fused_types types, int n,
                                    const cd_shape *in, const void *src, void *dst);
/* Its backward from dy (the block output's gradient; overwritten with du in float32 compute):
 * the folded kernel's gradient dW' into the kernel's grad, and when bn_trains dbeta and
 * gamma's grad zeroed, and
 * dx (+)= the input gradient (NULL: none needed; scratch: n * input size floats for
 * accumulate, which a bf16 dx does not take). `types` as the forward's. Run
 * cd_conv_trainable_finish once the step's gradients are summed. */
cd_status cd_conv_backward_trainable(cd_node *conv, cd_node *bn, int bn_trains, int tail,
                                     const cd_node *act, cd_fused_types types, int n,
                                     const cd_shape *in, const void *src, const void *y, void *dy,
                                     void *dx, int accumulate, float *scratch);
/* dW' -> dW = dW' * a and, when the BN trains, dgamma from dW', W and dbeta (conv_fused.c's
 * header says how). */
void cd_conv_trainable_finish(cd_node *conv, cd_node *bn, int bn_trains);
/* Free every cached fused state of a conv node. */
void cd_conv_fused_release(cd_node *conv);
#endif
