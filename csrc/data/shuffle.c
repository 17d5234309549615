/* shuffle.c — the epoch order: a Fisher-Yates permutation whose every draw comes from the
 * counter RNG keyed by (seed, epoch), so Python and C and any thread count agree. */
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

#define CD_STREAM_SHUFFLE 0x5u

cd_status cd_shuffle(uint64_t seed, int64_t epoch, const int64_t *in, int64_t n, int64_t *out) {
    if (n < 0 || (n > 0 && (!in || !out))) return cd_fail(CD_ERR_VALUE, "shuffle: bad arguments");
    if (in != out && n > 0) memmove(out, in, (size_t)n * sizeof *out);
    const uint64_t key = cd_rng_key(seed, (uint64_t)epoch, 0, CD_STREAM_SHUFFLE);
    for (int64_t i = n - 1; i > 0; i--) {
        /* j uniform in [0, i]: high 64 bits of a 64x64 product (bias < 2^-40 here). */
        const uint64_t r = cd_rng_u64(key, (uint64_t)i);
        const int64_t j = (int64_t)(((unsigned __int128)r * (uint64_t)(i + 1)) >> 64);
        const int64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
    return CD_OK;
}
