/* error.c — thread-local last-error message and checked allocation. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];

const char *cd_last_error(void) { return last_error; }

cd_status cd_fail(cd_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

static int mul_overflows(size_t a, size_t b) { return b != 0 && a > SIZE_MAX / b; }

void *cd_alloc(size_t count, size_t elem_size, const char *what) {
    if (mul_overflows(count, elem_size)) {
        cd_fail(CD_ERR_MEMORY, "allocation size overflow for %s", what);
        return NULL;
    }
    size_t bytes = count * elem_size;
    /* 64-byte alignment for AVX-512 loads in oneDNN and our loops. */
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        cd_fail(CD_ERR_MEMORY, "out of memory allocating %zu bytes for %s", bytes, what);
        return NULL;
    }
    return p;
}

void *cd_calloc(size_t count, size_t elem_size, const char *what) {
    void *p = cd_alloc(count, elem_size, what);
    if (p) memset(p, 0, count * elem_size);
    return p;
}
