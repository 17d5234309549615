/* params.c — how a kind declares its weights at build time: name, Keras dims, whether they
 * train, and the value every element starts at. The graph (model/graph.c) allocates them
 * once the build succeeded; kernels receive them through the node (cd_param.value / grad). */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "nn/layer.h"

cd_status cd_declare_param(cd_node *node, const char *name, int ndim, const int *dims,
                           int can_train, float init) {
    if (node->num_params >= CD_MAX_PARAMS)
        return cd_fail(CD_ERR_STATE, "layer '%s': too many weights", node->name);
    if (ndim < 0 || ndim > CD_MAX_DIMS) /* ndim 0: a scalar (Normalization's count) */
        return cd_fail(CD_ERR_STATE, "layer '%s': weight '%s' of rank %d", node->name, name, ndim);
    cd_param *p = &node->params[node->num_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->size = 1;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 1)
            return cd_fail(CD_ERR_VALUE, "layer '%s': weight '%s' has a dimension of %d",
                           node->name, name, dims[d]);
        p->dims[d] = dims[d];
        p->size *= (size_t)dims[d];
    }
    p->can_train = can_train;
    p->init = init;
    node->num_params++;
    return CD_OK;
}
