/* buffers.h — float buffers that grow to the largest size asked for, then stay. */
#ifndef CD_CORE_BUFFERS_H
#define CD_CORE_BUFFERS_H
#include <stddef.h>

/* Grow *buf to hold at least count floats (*cap: floats it holds; contents not kept):
 * buffers grow to the largest batch, then stay. 0, or -1 out of memory (error set). */
int cd_grow_floats(float **buf, size_t *cap, size_t count, const char *what);
/* Free *buf and mark it empty. */
void cd_drop_floats(float **buf, size_t *cap);
#endif
