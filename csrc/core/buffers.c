/* buffers.c — growable float buffers (core/buffers.h). */
#include "core/buffers.h"

#include <stdlib.h>

#include "core/error.h"

int cd_grow_floats(float **buf, size_t *cap, size_t count, const char *what) {
    if (*cap >= count) return 0;
    free(*buf);
    *cap = 0;
    *buf = cd_alloc(count, sizeof(float), what);
    if (!*buf) return -1;
    *cap = count;
    return 0;
}

void cd_drop_floats(float **buf, size_t *cap) {
    free(*buf);
    *buf = NULL;
    *cap = 0;
}
