/* dataset.h — internals of cd_dataset shared by dataset.c and loader.c. */
#ifndef CD_DATA_DATASET_H
#define CD_DATA_DATASET_H
#include <pthread.h>

#include "catdog.h"

enum { CD_SAMPLE_UNKNOWN = 0, CD_SAMPLE_OK = 1, CD_SAMPLE_BAD = 2 };

typedef struct {
    int64_t sample;
    char *message; /* "path: reason" */
} cd_failure;

struct cd_dataset {
    cd_dataset_config cfg;
    int64_t n;
    char **paths;
    int32_t *labels;        /* (n) class index, or NULL */
    uint8_t *state;         /* (n) CD_SAMPLE_* (atomic access) */
    uint8_t *cache;         /* (cached, H, W, 3) */
    int64_t cached;
    int loaded;
    pthread_mutex_t fail_lock;
    cd_failure *failures;
    int64_t num_failures, failures_cap;
};

/* Header check of one file (decode.c). */
cd_status cd_check_file_header(const char *path, size_t max_pixels, size_t max_bytes);

/* Sample i as float (H, W, 3): the uint8-rounded resized pixels, from the cache or decoded
 * now (tmp: H*W*3 floats). *ok = 0 when the sample is bad and the policy skips it; a bad
 * sample under RAISE returns its error. Thread-safe. */
cd_status cd_dataset_sample_float(cd_dataset *ds, int64_t i, float *dst, int *ok);
#endif
