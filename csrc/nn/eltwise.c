/* eltwise.c — nn/eltwise.h: an activation as oneDNN eltwise primitives on a flat buffer.
 * x, y, dy, dx: (count) float32, the layer's (n, h, w, c) or (n, c) tensors read flat (an
 * elementwise function does not care about the shape). */
#include "nn/eltwise.h"

#include "core/error.h"
#include "core/runtime.h"

dnnl_alg_kind_t cd_eltwise_dnnl_alg(cd_eltwise_alg alg) {
    switch (alg) {
    case CD_ELTWISE_RELU: return dnnl_eltwise_relu;
    case CD_ELTWISE_CLIP: return dnnl_eltwise_clip_v2;
    case CD_ELTWISE_LOGISTIC: return dnnl_eltwise_logistic;
    case CD_ELTWISE_TANH: return dnnl_eltwise_tanh;
    case CD_ELTWISE_SWISH: return dnnl_eltwise_swish;
    case CD_ELTWISE_GELU_ERF: return dnnl_eltwise_gelu_erf;
    case CD_ELTWISE_ELU: return dnnl_eltwise_elu;
    case CD_ELTWISE_LINEAR: return dnnl_eltwise_linear;
    case CD_ELTWISE_SOFT_RELU: return dnnl_eltwise_soft_relu;
    case CD_ELTWISE_HARDSIGMOID: return dnnl_eltwise_hardsigmoid;
    case CD_ELTWISE_HARDSWISH: return dnnl_eltwise_hardswish;
    }
    return dnnl_alg_kind_undef;
}

void cd_eltwise_release(cd_eltwise_prims *p) {
    if (p->fwd) dnnl_primitive_destroy(p->fwd);
    if (p->bwd) dnnl_primitive_destroy(p->bwd);
    if (p->fwd_pd) dnnl_primitive_desc_destroy(p->fwd_pd);
    if (p->bwd_pd) dnnl_primitive_desc_destroy(p->bwd_pd);
    dnnl_memory_t mems[] = {p->a, p->b, p->c};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    if (p->md) dnnl_memory_desc_destroy(p->md);
    *p = (cd_eltwise_prims){0};
}

static cd_status memory(dnnl_memory_t *m, const_dnnl_memory_desc_t md, const char *layer) {
    CD_DNNL(dnnl_memory_create(m, md, cd_engine(), DNNL_MEMORY_NONE), "memory", layer);
    return CD_OK;
}

cd_status cd_eltwise_prepare(cd_eltwise_prims *p, cd_eltwise fn, size_t count, const char *layer) {
    *p = (cd_eltwise_prims){0};
    p->fn = fn;
    const dnnl_alg_kind_t alg = cd_eltwise_dnnl_alg(fn.alg);
    if (alg == dnnl_alg_kind_undef)
        return cd_fail(CD_ERR_STATE, "layer '%s': no oneDNN eltwise for function %d", layer, (int)fn.alg);
    dnnl_dims_t dims = {(dnnl_dim_t)count};
    CD_DNNL(dnnl_memory_desc_create_with_tag(&p->md, 1, dims, dnnl_f32, dnnl_a), "descriptor", layer);
    dnnl_primitive_attr_t attr;
    CD_TRY(cd_make_attr(&attr));
    dnnl_status_t st = dnnl_eltwise_forward_primitive_desc_create(
        &p->fwd_pd, cd_engine(), dnnl_forward_training, alg, p->md, p->md, fn.alpha, fn.beta, attr);
    dnnl_primitive_attr_destroy(attr);
    CD_DNNL(st, "eltwise forward descriptor", layer);
    CD_DNNL(dnnl_primitive_create(&p->fwd, p->fwd_pd), "eltwise forward", layer);
    CD_TRY(memory(&p->a, p->md, layer));
    CD_TRY(memory(&p->b, p->md, layer));
    return memory(&p->c, p->md, layer);
}

cd_status cd_eltwise_forward(cd_eltwise_prims *p, const float *x, float *y, const char *layer) {
    CD_DNNL(dnnl_memory_set_data_handle(p->a, (void *)x), "memory", layer);
    CD_DNNL(dnnl_memory_set_data_handle(p->b, y), "memory", layer);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, p->a}, {DNNL_ARG_DST, p->b}};
    return cd_execute(p->fwd, 2, args, "eltwise forward", layer);
}

cd_status cd_eltwise_backward(cd_eltwise_prims *p, const float *x, const float *dy, float *dx,
                              const char *layer) {
    if (!p->bwd) {
        dnnl_primitive_attr_t attr;
        CD_TRY(cd_make_attr(&attr));
        dnnl_status_t st = dnnl_eltwise_backward_primitive_desc_create(
            &p->bwd_pd, cd_engine(), cd_eltwise_dnnl_alg(p->fn.alg), p->md, p->md, p->md,
            p->fn.alpha, p->fn.beta, p->fwd_pd, attr);
        dnnl_primitive_attr_destroy(attr);
        CD_DNNL(st, "eltwise backward descriptor", layer);
        CD_DNNL(dnnl_primitive_create(&p->bwd, p->bwd_pd), "eltwise backward", layer);
    }
    CD_DNNL(dnnl_memory_set_data_handle(p->a, (void *)x), "memory", layer);
    CD_DNNL(dnnl_memory_set_data_handle(p->b, (void *)dy), "memory", layer);
    CD_DNNL(dnnl_memory_set_data_handle(p->c, dx), "memory", layer);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->a}, {DNNL_ARG_DIFF_DST, p->b},
                               {DNNL_ARG_DIFF_SRC, p->c}};
    return cd_execute(p->bwd, 3, args, "eltwise backward", layer);
}
