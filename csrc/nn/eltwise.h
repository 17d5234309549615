/* eltwise.h — an elementwise function (nn/layer.h cd_eltwise) over a flat float32 buffer as
 * oneDNN's eltwise primitives, forward and backward from the input: the JIT kernels vectorise
 * exp, erf and tanh, where the plain-C loop calls libm once per element. One state per
 * element count (the kind's prepare makes it for its batch size). */
#ifndef CD_NN_ELTWISE_H
#define CD_NN_ELTWISE_H
#include <stddef.h>

#include <oneapi/dnnl/dnnl.h>

#include "nn/layer.h"

typedef struct {
    dnnl_memory_desc_t md;                 /* (count) float32, dense */
    dnnl_primitive_desc_t fwd_pd, bwd_pd;
    dnnl_primitive_t fwd, bwd;             /* bwd: built at the first backward */
    dnnl_memory_t a, b, c;                 /* memories over md, handles set per call */
    cd_eltwise fn;
} cd_eltwise_prims;

/* oneDNN's algorithm for fn (the definitions in nn/layer.h are oneDNN's). */
dnnl_alg_kind_t cd_eltwise_dnnl_alg(cd_eltwise_alg alg);
/* Build the forward primitive of fn over `count` floats ("layer" names a failure). */
cd_status cd_eltwise_prepare(cd_eltwise_prims *p, cd_eltwise fn, size_t count, const char *layer);
/* y = fn(x), `count` floats as prepared. */
cd_status cd_eltwise_forward(cd_eltwise_prims *p, const float *x, float *y, const char *layer);
/* dx = dy * fn'(x) (dx may not alias x; it may be dy). */
cd_status cd_eltwise_backward(cd_eltwise_prims *p, const float *x, const float *dy, float *dx,
                              const char *layer);
/* Free the primitives and memories (the struct itself is the caller's). */
void cd_eltwise_release(cd_eltwise_prims *p);
#endif
