/* conv_fused.h — Conv -> BN (-> ReLU | -> Add) as one convolution (conv_fused.c): frozen
 * inference blocks, and trainable blocks under a BN in inference mode. */
#ifndef CD_NN_CONV_FUSED_H
#define CD_NN_CONV_FUSED_H
#include "model/graph_internal.h"

enum { CD_FUSE_NONE = 0, CD_FUSE_BN = 1, CD_FUSE_RELU = 2, CD_FUSE_ADD = 3 };

/* Data types of a fused block's tensors (1: bfloat16, 0: float32). compute_bf16: the
 * convolution runs on bf16 source and weights (bf16 mode); a float32 source is converted. */
typedef struct {
    int compute_bf16, src_bf16, dst_bf16, skip_bf16;
} cd_fused_types;

/* A depthwise tail: the block goes on through [zeropad ->] conv (DepthwiseConv2D 3x3,
 * stride 1 or 2) -> bn -> ReLU(max_value), run inside the block's convolution as oneDNN's
 * depthwise post-op, so the expand conv's output is never written to memory (MobileNetV2's
 * early blocks, where it is the largest tensor: 80x80x96 per sample at 160x160). */
typedef struct {
    cd_node *conv;
    const cd_node *bn, *zeropad;
    float max_value;
} cd_dw_tail;
/* Can the depthwise tail follow this 1x1 conv (its geometry fits the post-op)? */
int cd_dw_tail_fits(const cd_dw_tail *dw, const cd_node *expand);

/* dst = tail(conv(zeropad(src)) folded with bn) for g->batch samples (zeropad may be NULL;
 * src is the block's input node's out); skip is the Add's other input (CD_FUSE_ADD). src, dst
 * and skip are float32 or bfloat16 as `types` says. With a depthwise tail (dw not NULL; tail
 * CD_FUSE_RELU, float32 only) dst is the depthwise block's output. The fused primitive and
 * folded weights are cached on the conv node per batch size and block shape (CD_FUSED_CACHE
 * of them). */
cd_status cd_conv_forward_fused(cd_graph *g, cd_node *conv, const cd_node *zeropad,
                                const cd_node *bn, int tail, float max_value, cd_fused_types types,
                                const cd_dw_tail *dw, const void *skip, void *dst);
/* A trainable block (run.c): conv (no bias, no ZeroPadding2D folded) -> BN in inference
 * mode (-> ReLU(max_value) when tail is CD_FUSE_RELU) forward on f32 tensors, folded with
 * the current weights; dst (n, oh, ow, oc) is the block's output y. */
cd_status cd_conv_forward_trainable(cd_graph *g, cd_node *conv, const cd_node *bn, int tail,
                                    float max_value, float *dst);
/* Its backward from dy (the block output's gradient, overwritten with du): the folded
 * kernel's gradient dW' into the kernel's grad, dbeta, gamma's grad zeroed, and dx (+)= the
 * input gradient (NULL: none needed). Run cd_conv_trainable_finish once the step's
 * gradients are summed. */
cd_status cd_conv_backward_trainable(cd_graph *g, cd_node *conv, cd_node *bn, int tail,
                                     float max_value, const float *y, float *dy, float *dx,
                                     int accumulate);
/* dW' -> dW = dW' * a and dgamma from dW', W and dbeta (conv_fused.c's header says how). */
void cd_conv_trainable_finish(cd_node *conv, cd_node *bn);
/* Free every cached fused state of a conv node. */
void cd_conv_fused_release(cd_node *conv);
#endif
