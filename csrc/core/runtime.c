/* runtime.c — one oneDNN CPU engine and in-order stream for the process; thread count. */
#include "core/runtime.h"

#include <oneapi/dnnl/dnnl_version.h>

#include <omp.h>
#include <xmmintrin.h>
#include <pthread.h>
#include <stdio.h>

#include "core/error.h"

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static cd_status init_status = CD_ERR_STATE;
static char init_message[512];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int num_threads;

/* Flush denormals to zero (FTZ) and read them as zero (DAZ) on every thread of catdog's own
 * loops, as TensorFlow does for its kernels: tiny gradients otherwise hit the CPU's slow
 * denormal path (benchmarks/ANALYSIS.md has the measurement). */
static void flush_denormals_everywhere(void) {
#pragma omp parallel
    _mm_setcsr(_mm_getcsr() | 0x8040);
}

static void init_runtime(void) {
    /* Another oneDNN 3.x can be found first at run time (the same soname): its primitives
     * differ in layouts and kernels, so refuse rather than run on untested code. */
    const dnnl_version_t *v = dnnl_version();
    if (v->major != DNNL_VERSION_MAJOR || v->minor != DNNL_VERSION_MINOR) {
        snprintf(init_message, sizeof init_message,
                 "catdog was built against oneDNN %d.%d but loaded oneDNN %d.%d; reinstall "
                 "catdog (`pip install --force-reinstall .`) in this environment",
                 DNNL_VERSION_MAJOR, DNNL_VERSION_MINOR, v->major, v->minor);
        init_status = CD_ERR_RUNTIME;
        return;
    }
    dnnl_status_t s = dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (s != dnnl_success) {
        snprintf(init_message, sizeof init_message,
                 "oneDNN could not create a CPU engine (status %d)",
                 (int)s);
        init_status = CD_ERR_RUNTIME;
        return;
    }
    s = dnnl_stream_create(&stream, engine, dnnl_stream_in_order);
    if (s != dnnl_success) {
        snprintf(init_message, sizeof init_message, "oneDNN could not create a stream (status %d)",
                 (int)s);
        init_status = CD_ERR_RUNTIME;
        return;
    }
    if (num_threads == 0) num_threads = omp_get_max_threads();
    flush_denormals_everywhere();
    init_status = CD_OK;
}

cd_status cd_runtime_init(void) {
    pthread_once(&init_once, init_runtime);
    if (init_status != CD_OK) return cd_fail(init_status, "%s", init_message);
    return CD_OK;
}

dnnl_engine_t cd_engine(void) { return engine; }
dnnl_stream_t cd_stream(void) { return stream; }

cd_status cd_set_num_threads(int n) {
    if (n < 1 || n > 1024) return cd_fail(CD_ERR_VALUE, "threads must be in [1, 1024], got %d", n);
    omp_set_num_threads(n);
    num_threads = n;
    flush_denormals_everywhere();
    return CD_OK;
}

/* OpenMP's thread count is per calling thread; oneDNN (a GNU OpenMP build) reads the caller's.
 * Entry points call this so a model driven from another Python thread uses the same count
 * (same threads => same bits). */
void cd_use_threads_here(void) {
    if (num_threads && omp_get_max_threads() != num_threads) omp_set_num_threads(num_threads);
}

int cd_get_num_threads(void) { return num_threads ? num_threads : omp_get_max_threads(); }

const char *cd_onednn_version(void) {
    static char buf[64];
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, sizeof buf, "%d.%d.%d", v->major, v->minor, v->patch);
    return buf;
}

cd_status cd_dnnl_check(dnnl_status_t s, const char *what, const char *layer) {
    if (s == dnnl_success) return CD_OK;
    if (s == dnnl_out_of_memory)
        return cd_fail(CD_ERR_MEMORY, "oneDNN out of memory in %s (layer %s)", what,
                       layer ? layer : "-");
    if (s == dnnl_unimplemented)
        return cd_fail(CD_ERR_RUNTIME, "oneDNN has no implementation for %s (layer %s)", what,
                       layer ? layer : "-");
    return cd_fail(CD_ERR_RUNTIME, "oneDNN failed in %s (layer %s): status %d", what,
                   layer ? layer : "-", (int)s);
}

/* The name of the widest ISA oneDNN dispatches to, for messages (the enum's values nest:
 * each ISA's bits include those of the ones below it). */
static const char *isa_name(dnnl_cpu_isa_t isa) {
    static const struct { unsigned bits; const char *name; } names[] = {
        {0x1fef, "AMX-FP16"}, {0xfef, "AMX"}, {0x1ef, "AVX512-FP16"}, {0xe7, "AVX512-BF16"},
        {0x67, "AVX512-VNNI"}, {0x27, "AVX-512"}, {0x1f, "AVX2-VNNI-2"}, {0xf, "AVX2-VNNI"},
        {0x7, "AVX2"}, {0x3, "AVX"}, {0x1, "SSE4.1"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (((unsigned)isa & names[i].bits) == names[i].bits) return names[i].name;
    return "baseline";
}

static cd_precision precision = CD_PRECISION_FP32;
static int precision_generation;

cd_status cd_set_precision(cd_precision p) {
    if (p != CD_PRECISION_FP32 && p != CD_PRECISION_BF16)
        return cd_fail(CD_ERR_VALUE, "precision must be fp32 or bf16");
    if (p == CD_PRECISION_BF16) {
        /* bf16 mode runs the frozen part's fused convolutions on bfloat16 tensors; oneDNN has
         * native kernels for that from AVX512-BF16 (and AMX) on. Elsewhere it would emulate
         * them slowly: refuse rather than pretend. */
        dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
        if (((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) !=
            (unsigned)dnnl_cpu_isa_avx512_core_bf16)
            return cd_fail(CD_ERR_VALUE, "bf16 mode needs a CPU with AVX512-BF16 or AMX (oneDNN "
                           "runs %s here); staying in fp32", isa_name(isa));
    }
    if (p != precision) {
        precision = p;
        precision_generation++;
    }
    return CD_OK;
}

cd_precision cd_get_precision(void) { return precision; }
int cd_precision_generation(void) { return precision_generation; }

cd_status cd_execute(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args, const char *what,
                     const char *layer) {
    CD_DNNL(dnnl_primitive_execute(p, cd_stream(), nargs, args), what, layer);
    CD_DNNL(dnnl_stream_wait(cd_stream()), what, layer);
    return CD_OK;
}

cd_status cd_execute_reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to,
                             const char *layer) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return cd_execute(r, 2, args, "reorder", layer);
}

cd_status cd_make_reorder(const_dnnl_memory_desc_t from, const_dnnl_memory_desc_t to,
                          dnnl_primitive_t *reorder, const char *layer) {
    dnnl_primitive_attr_t attr;
    CD_TRY(cd_make_attr(&attr));
    dnnl_primitive_desc_t rpd;
    dnnl_status_t s = dnnl_reorder_primitive_desc_create(&rpd, from, cd_engine(), to, cd_engine(), attr);
    dnnl_primitive_attr_destroy(attr);
    CD_DNNL(s, "reorder", layer);
    s = dnnl_primitive_create(reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    CD_DNNL(s, "reorder", layer);
    return CD_OK;
}

cd_status cd_make_attr(dnnl_primitive_attr_t *attr) {
    CD_DNNL(dnnl_primitive_attr_create(attr), "attr create", NULL);
#if DNNL_VERSION_MAJOR * 100 + DNNL_VERSION_MINOR >= 304
    /* Newer oneDNN may pick atomics-based kernels unless asked not to; 3.2's CPU kernels are
     * run-to-run deterministic for a fixed thread count (tests/test_engine_determinism.py). */
    dnnl_primitive_attr_set_deterministic(*attr, 1);
#endif
    return CD_OK;
}
