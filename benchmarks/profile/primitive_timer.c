/* LD_PRELOAD shim: time spent inside oneDNN's dnnl_primitive_execute, per implementation, and
 * the gaps between consecutive calls (catdog's own layers, bookkeeping, the Python call).
 *
 *   bash benchmarks/profile/build.sh        # -> benchmarks/profile/primitive_timer.so
 *   CD_PRIM_TIMER_OUT=t.tsv LD_PRELOAD=benchmarks/profile/primitive_timer.so python ...
 *
 * Counting starts when the file $CD_PRIM_TIMER_ARM exists (a script creates it after its
 * warm-up) or at once when that variable is unset. At exit it writes one row per
 * (primitive kind, implementation, src dims): calls, seconds inside, seconds of the gaps
 * before those calls. Single-threaded callers only (catdog calls oneDNN from the thread
 * that runs the step; oneDNN's own OpenMP workers are inside the timed call). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef dnnl_status_t (*execute_fn)(const_dnnl_primitive_t, dnnl_stream_t, int,
                                    const dnnl_exec_arg_t *);

#define MAX_ROWS 4096
typedef struct {
    const_dnnl_primitive_t prim;
    char what[256];
    long calls;
    double inside, gap_before;
} row;

static row rows[MAX_ROWS];
static int nrows;
static double last_end;
static int armed = -1;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void describe(const_dnnl_primitive_t p, char *out, size_t cap) {
    const_dnnl_primitive_desc_t pd = NULL;
    const char *impl = "?";
    dnnl_primitive_kind_t kind = dnnl_undefined_primitive;
    char dims[96] = "";
    if (dnnl_primitive_get_primitive_desc(p, &pd) == dnnl_success) {
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        dnnl_primitive_desc_query(pd, dnnl_query_primitive_kind, 0, &kind);
        const_dnnl_memory_desc_t md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        if (!md) md = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
        int nd = 0;
        const dnnl_dims_t *d = NULL;
        if (md && dnnl_memory_desc_query(md, dnnl_query_ndims_s32, &nd) == dnnl_success &&
            dnnl_memory_desc_query(md, dnnl_query_dims, &d) == dnnl_success) {
            size_t k = 0;
            for (int i = 0; i < nd && k + 16 < sizeof dims; i++)
                k += (size_t)snprintf(dims + k, sizeof dims - k, i ? "x%lld" : "%lld",
                                      (long long)(*d)[i]);
        }
    }
    snprintf(out, cap, "%s\t%s\t%s", dnnl_prim_kind2str(kind), impl, dims);
}

dnnl_status_t dnnl_primitive_execute(const_dnnl_primitive_t p, dnnl_stream_t s, int nargs,
                                     const dnnl_exec_arg_t *args) {
    static execute_fn real;
    if (!real) real = (execute_fn)dlsym(RTLD_NEXT, "dnnl_primitive_execute");
    if (armed != 1) {
        const char *flag = getenv("CD_PRIM_TIMER_ARM");
        armed = !flag || access(flag, F_OK) == 0;
        if (!armed) return real(p, s, nargs, args);
        last_end = now();
    }
    const double t0 = now();
    const dnnl_status_t st = real(p, s, nargs, args);
    const double t1 = now();
    int i = 0;
    while (i < nrows && rows[i].prim != p) i++;
    if (i == nrows && nrows < MAX_ROWS) {
        rows[i].prim = p;
        describe(p, rows[i].what, sizeof rows[i].what);
        nrows++;
    }
    if (i < nrows) {
        rows[i].calls++;
        rows[i].inside += t1 - t0;
        rows[i].gap_before += t0 - last_end;
    }
    last_end = t1;
    return st;
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("CD_PRIM_TIMER_OUT");
    FILE *f = path ? fopen(path, "w") : stderr;
    if (!f) return;
    fprintf(f, "kind\timpl\tsrc_dims\tcalls\tinside_s\tgap_before_s\n");
    for (int i = 0; i < nrows; i++)
        fprintf(f, "%s\t%ld\t%.6f\t%.6f\n", rows[i].what, rows[i].calls, rows[i].inside,
                rows[i].gap_before);
    if (f != stderr) fclose(f);
}
