/* error.h — thread-local error messages behind every cd_status. */
#ifndef CD_CORE_ERROR_H
#define CD_CORE_ERROR_H
#include "catdog.h"

/* Record a printf-style message and return `status` (so callers can `return cd_fail(...)`). */
cd_status cd_fail(cd_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checked allocation: NULL plus CD_ERR_MEMORY message on failure or size overflow. */
void *cd_alloc(size_t count, size_t elem_size, const char *what);
void *cd_calloc(size_t count, size_t elem_size, const char *what);

#define CD_TRY(expr)                         \
    do {                                     \
        cd_status cd_try_s_ = (expr);        \
        if (cd_try_s_ != CD_OK) return cd_try_s_; \
    } while (0)

#endif
