/* kinds.c — the registry of layer kinds: one line per kind (its ops table, in its nn/ file),
 * and the readers a kind's build uses for its hyperparameters. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "nn/layer.h"

/* A new kind: its nn/ file defines `const cd_layer_ops cd_<kind>_ops`; add one line here. */
#define CD_LAYER_KINDS(X)                          \
    X(cd_input_ops)                                \
    X(cd_conv2d_ops)                               \
    X(cd_depthwise_conv2d_ops)                     \
    X(cd_batchnorm_ops)                            \
    X(cd_relu_ops)                                 \
    X(cd_zeropad_ops)                              \
    X(cd_add_ops)                                  \
    X(cd_multiply_ops)                             \
    X(cd_gap_ops)                                  \
    X(cd_dropout_ops)                              \
    X(cd_dense_ops)                                \
    X(cd_rescale_ops)                              \
    X(cd_max_pooling_ops) X(cd_average_pooling_ops) \
    X(cd_activation_ops)                           \
    X(cd_flatten_ops)                              \
    X(cd_reshape_ops)                              \
    X(cd_gmp_ops)                                  \
    X(cd_merge_ops)                                \
    X(cd_concatenate_ops)                          \
    X(cd_normalization_ops)                        \
    X(cd_resizing_ops)                             \
    X(cd_channel_affine_ops)                       \
    /* (the list ends here) */

#define DECLARE(ops) extern const cd_layer_ops ops;
CD_LAYER_KINDS(DECLARE)
#undef DECLARE
#define ENTRY(ops) &ops,
const cd_layer_ops *const cd_layer_kinds[] = {CD_LAYER_KINDS(ENTRY) NULL};
#undef ENTRY

const cd_layer_ops *cd_find_kind(const char *name) {
    for (int i = 0; cd_layer_kinds[i]; i++)
        if (strcmp(cd_layer_kinds[i]->name, name) == 0) return cd_layer_kinds[i];
    return NULL;
}

int cd_num_layer_kinds(void) {
    int n = 0;
    while (cd_layer_kinds[n]) n++;
    return n;
}

const char *cd_layer_kind_name(int i) {
    return i >= 0 && i < cd_num_layer_kinds() ? cd_layer_kinds[i]->name : NULL;
}

/* The entry for key (marked read), NULL when absent; a wrong count is CD_ERR_VALUE. */
static cd_status find(cd_hparams *h, const char *key, int count, const cd_hparam **out) {
    *out = NULL;
    for (int k = 0; k < h->count; k++) {
        if (strcmp(h->v[k].key, key) != 0) continue;
        if (k < 32) h->used |= 1u << k;
        if (h->v[k].count != count)
            return cd_fail(CD_ERR_VALUE, "layer '%s': '%s' takes %d value%s, got %d", h->layer, key,
                           count, count == 1 ? "" : "s", h->v[k].count);
        *out = &h->v[k];
        return CD_OK;
    }
    return CD_OK;
}

cd_status cd_hp_ints(cd_hparams *h, const char *key, int count, const int *def, int *out) {
    const cd_hparam *p;
    CD_TRY(find(h, key, count, &p));
    if (!p && !def) return cd_fail(CD_ERR_VALUE, "layer '%s': '%s' is required", h->layer, key);
    for (int i = 0; i < count; i++) {
        if (!p) {
            out[i] = def[i];
            continue;
        }
        const double v = p->v[i];
        if (!(v == floor(v)) || fabs(v) > 1 << 30)
            return cd_fail(CD_ERR_VALUE, "layer '%s': '%s' must be integers, got %g", h->layer,
                           key, v);
        out[i] = (int)v;
    }
    return CD_OK;
}

cd_status cd_hp_floats(cd_hparams *h, const char *key, int count, const float *def, float *out) {
    const cd_hparam *p;
    CD_TRY(find(h, key, count, &p));
    if (!p && !def) return cd_fail(CD_ERR_VALUE, "layer '%s': '%s' is required", h->layer, key);
    for (int i = 0; i < count; i++) out[i] = p ? (float)p->v[i] : def[i];
    return CD_OK;
}
