/* rng.h — counter-based random numbers: the value depends only on (key, counter), never on
 * call order or thread, so dropout/shuffle/augmentation are reproducible at any thread count. */
#ifndef CD_CORE_RNG_H
#define CD_CORE_RNG_H
#include <stdint.h>

static inline uint64_t cd_mix64(uint64_t z) { /* splitmix64 finalizer */
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Key from several integers (seed, epoch/step, sample, stream id ...). */
static inline uint64_t cd_rng_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    return cd_mix64(cd_mix64(cd_mix64(seed ^ 0x5ca1ab1eULL) ^ a) ^ (b * 0x9e3779b97f4a7c15ULL) ^ c);
}

static inline uint64_t cd_rng_u64(uint64_t key, uint64_t counter) {
    return cd_mix64(key ^ cd_mix64(counter));
}

/* Uniform in [0, 1) with 24 bits (exactly representable as float). */
static inline float cd_rng_uniform(uint64_t key, uint64_t counter) {
    return (float)(cd_rng_u64(key, counter) >> 40) * (1.0f / 16777216.0f);
}
#endif
