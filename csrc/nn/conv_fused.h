/* conv_fused.h — the frozen-inference Conv -> BN (-> ReLU | -> Add) block (conv_fused.c). */
#ifndef CD_NN_CONV_FUSED_H
#define CD_NN_CONV_FUSED_H
#include "model/graph_internal.h"

enum { CD_FUSE_NONE = 0, CD_FUSE_BN = 1, CD_FUSE_RELU = 2, CD_FUSE_ADD = 3 };

/* dst = tail(conv(zeropad(src)) folded with bn) (zeropad may be NULL); skip is the Add's other input (CD_FUSE_ADD). *slot
 * holds the fused primitive and folded weights (per batch size; free with
 * cd_conv_fused_release). */
cd_status cd_conv_forward_fused(cd_graph *g, cd_node *conv, const cd_node *zeropad,
                                const cd_node *bn, int tail, float max_value, const float *skip,
                                float *dst, void **slot);
void cd_conv_fused_release(void **slot);
#endif
