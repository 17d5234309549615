/* runtime.h — the process-wide oneDNN engine and stream, and oneDNN error mapping. */
#ifndef CD_CORE_RUNTIME_H
#define CD_CORE_RUNTIME_H
#include <oneapi/dnnl/dnnl.h>

#include "catdog.h"

dnnl_engine_t cd_engine(void);
dnnl_stream_t cd_stream(void);

/* Turn a oneDNN status into a cd_status with a message naming what failed. */
cd_status cd_dnnl_check(dnnl_status_t s, const char *what, const char *layer);

#define CD_DNNL(call, what, layer)                                  \
    do {                                                            \
        cd_status cd_dnnl_s_ = cd_dnnl_check((call), (what), (layer)); \
        if (cd_dnnl_s_ != CD_OK) return cd_dnnl_s_;                 \
    } while (0)

/* Deterministic primitive attributes (same threads => same bits). Caller destroys. */
cd_status cd_make_attr(dnnl_primitive_attr_t *attr);

/* Execute p on the stream and wait for it ("what" and layer name the failure). */
cd_status cd_execute(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args, const char *what,
                     const char *layer);
/* Execute a reorder primitive from one memory to another. */
cd_status cd_execute_reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to,
                             const char *layer);
/* A reorder primitive between two memory formats. */
cd_status cd_make_reorder(const_dnnl_memory_desc_t from, const_dnnl_memory_desc_t to,
                          dnnl_primitive_t *reorder, const char *layer);

/* Give the calling thread catdog's thread count (OpenMP counts are per thread). */
void cd_use_threads_here(void);
#endif
