/* optimizer.h — Keras 3's update rules (optim/optimizer.c) on a list of weights: each
 * cd_param's value is updated from its grad, with its slots as the rule's state. */
#ifndef CD_OPTIM_OPTIMIZER_H
#define CD_OPTIM_OPTIMIZER_H
#include <stdint.h>

#include "catdog.h"
#include "nn/layer.h"

/* CD_ERR_VALUE naming the bad setting. */
cd_status cd_optimizer_validate(const cd_optimizer_config *o);
/* State arrays the rule keeps per weight (0 to CD_OPT_SLOTS). */
int cd_optimizer_slots(const cd_optimizer_config *o);
/* Step t (Keras iterations + 1) on each of params[0, count): value and slots from grad; each
 * weight's version is bumped. Slots are allocated, zeroed, at a weight's first update. */
cd_status cd_optimizer_update(const cd_optimizer_config *o, cd_param *const *params, int count,
                              int64_t t);
/* Drop a weight's optimizer state (the next update starts from zero). */
void cd_optimizer_clear(cd_param *p);
#endif
