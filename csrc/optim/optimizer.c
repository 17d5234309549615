/* optimizer.c — Keras 3 update rules, applied to every trainable weight after backward.
 * t = iterations + 1 (Keras optimizer.iterations counts applied steps).
 *
 * SGD:     momentum == 0: w -= lr * g
 *          else m = momentum * m - lr * g;  w += nesterov ? momentum * m - lr * g : m
 * Adam:    m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2)
 *          w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
 * RMSprop: v = rho v + (1 - rho) g^2;  centered: a = rho a + (1 - rho) g, den = v - a^2 + eps
 *          else den = v + eps;  inc = lr * g / sqrt(den)
 *          momentum > 0: mo = momentum * mo + inc, w -= mo; else w -= inc
 * State (slot) arrays start at zero (allocated at a weight's first update). The optimizer sees
 * a list of weights (value, grad, slots), never the graph that holds them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "optim/optimizer.h"

/* Elementwise updates, each element on its own: split across threads in fixed chunks they
 * give the same bits for any thread count. The common cases (Adam, plain RMSprop) have
 * branch-free loops the compiler vectorises. */
#define OPT_CHUNK 16384
#define FOR_CHUNKS(n)                                                               \
    _Pragma("omp parallel for schedule(static) if (n > 4 * OPT_CHUNK)")             \
    for (size_t c0 = 0; c0 < (n); c0 += OPT_CHUNK)

static void adam(float *restrict w, float *restrict m, float *restrict v,
                 const float *restrict g, size_t n, float b1, float b2, float eps, float alpha) {
    FOR_CHUNKS(n) {
        const size_t c1 = c0 + OPT_CHUNK < n ? c0 + OPT_CHUNK : n;
        for (size_t i = c0; i < c1; i++) {
            m[i] += (g[i] - m[i]) * (1.f - b1);
            v[i] += (g[i] * g[i] - v[i]) * (1.f - b2);
            w[i] -= alpha * m[i] / (sqrtf(v[i]) + eps);
        }
    }
}

static void rmsprop_plain(float *restrict w, float *restrict v, const float *restrict g,
                          size_t n, float rho, float eps, float lr) {
    FOR_CHUNKS(n) {
        const size_t c1 = c0 + OPT_CHUNK < n ? c0 + OPT_CHUNK : n;
        for (size_t i = c0; i < c1; i++) {
            v[i] = rho * v[i] + (1.f - rho) * g[i] * g[i];
            w[i] -= lr * g[i] / sqrtf(v[i] + eps);
        }
    }
}

/* ---- one family per kind: validate, slots it keeps per weight, update ---- */

static cd_status sgd_validate(const cd_optimizer_config *o) {
    const cd_sgd_config *c = &o->u.sgd;
    if (!(c->momentum >= 0.f && c->momentum <= 1.f))
        return cd_fail(CD_ERR_VALUE, "SGD momentum must be in [0, 1], got %g", (double)c->momentum);
    return CD_OK;
}
static int sgd_slots(const cd_optimizer_config *o) { return o->u.sgd.momentum != 0.f ? 1 : 0; }
/* Each update: w (n) from its gradient g with state slots s, at learning rate lr, step t. */
static void sgd_update(const cd_optimizer_config *o, float *w, const float *g, size_t n,
                       float *const *s, float lr, int64_t t) {
    (void)t;
    const cd_sgd_config *c = &o->u.sgd;
    if (c->momentum == 0.f) {
        for (size_t i = 0; i < n; i++) w[i] -= lr * g[i];
        return;
    }
    float *m = s[0];
    const float mu = c->momentum;
    for (size_t i = 0; i < n; i++) {
        m[i] = mu * m[i] - lr * g[i];
        w[i] += c->nesterov ? mu * m[i] - lr * g[i] : m[i];
    }
}

static cd_status adam_validate(const cd_optimizer_config *o) {
    const cd_adam_config *c = &o->u.adam;
    if (!(c->beta_1 >= 0.f && c->beta_1 < 1.f && c->beta_2 >= 0.f && c->beta_2 < 1.f))
        return cd_fail(CD_ERR_VALUE, "Adam betas must be in [0, 1)");
    if (!(c->epsilon > 0.f)) return cd_fail(CD_ERR_VALUE, "Adam epsilon must be > 0");
    return CD_OK;
}
static int adam_slots(const cd_optimizer_config *o) { return (void)o, 2; }
static void adam_update(const cd_optimizer_config *o, float *w, const float *g, size_t n,
                        float *const *s, float lr, int64_t t) {
    const cd_adam_config *c = &o->u.adam;
    const float alpha =
        lr * sqrtf(1.f - powf(c->beta_2, (float)t)) / (1.f - powf(c->beta_1, (float)t));
    adam(w, s[0], s[1], g, n, c->beta_1, c->beta_2, c->epsilon, alpha);
}

static cd_status rmsprop_validate(const cd_optimizer_config *o) {
    const cd_rmsprop_config *c = &o->u.rmsprop;
    if (!(c->rho >= 0.f && c->rho < 1.f)) return cd_fail(CD_ERR_VALUE, "RMSprop rho must be in [0, 1)");
    if (!(c->momentum >= 0.f && c->momentum <= 1.f))
        return cd_fail(CD_ERR_VALUE, "RMSprop momentum must be in [0, 1]");
    if (!(c->epsilon > 0.f)) return cd_fail(CD_ERR_VALUE, "RMSprop epsilon must be > 0");
    return CD_OK;
}
static int rmsprop_slots(const cd_optimizer_config *o) {
    return 1 + (o->u.rmsprop.momentum > 0.f) + (o->u.rmsprop.centered != 0);
}
static void rmsprop_update(const cd_optimizer_config *o, float *w, const float *g, size_t n,
                           float *const *s, float lr, int64_t t) {
    (void)t;
    const cd_rmsprop_config *c = &o->u.rmsprop;
    float *v = s[0];
    float *mo = c->momentum > 0.f ? s[1] : NULL;
    float *a = c->centered ? s[c->momentum > 0.f ? 2 : 1] : NULL;
    const float rho = c->rho, eps = c->epsilon;
    if (!mo && !a) { /* the lab's fine-tuning optimizer */
        rmsprop_plain(w, v, g, n, rho, eps, lr);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = rho * v[i] + (1.f - rho) * g[i] * g[i];
        float den = v[i];
        if (a) {
            a[i] = rho * a[i] + (1.f - rho) * g[i];
            den -= a[i] * a[i];
        }
        float inc = lr * g[i] / sqrtf(den + eps);
        if (mo) {
            mo[i] = c->momentum * mo[i] + inc;
            w[i] -= mo[i];
        } else {
            w[i] -= inc;
        }
    }
}

typedef struct {
    cd_optimizer_kind kind;
    cd_status (*validate)(const cd_optimizer_config *o);
    int (*slots)(const cd_optimizer_config *o); /* <= CD_OPT_SLOTS */
    void (*update)(const cd_optimizer_config *o, float *w, const float *g, size_t n,
                   float *const *slots, float lr, int64_t t);
} optimizer_family;

static const optimizer_family families[] = {
    {CD_OPT_SGD, sgd_validate, sgd_slots, sgd_update},
    {CD_OPT_ADAM, adam_validate, adam_slots, adam_update},
    {CD_OPT_RMSPROP, rmsprop_validate, rmsprop_slots, rmsprop_update},
};

static const optimizer_family *family_of(cd_optimizer_kind kind) {
    for (size_t i = 0; i < sizeof families / sizeof *families; i++)
        if (families[i].kind == kind) return &families[i];
    return NULL;
}

cd_status cd_optimizer_validate(const cd_optimizer_config *o) {
    if (!(o->learning_rate >= 0.f) || !isfinite(o->learning_rate))
        return cd_fail(CD_ERR_VALUE, "learning_rate must be finite and >= 0, got %g",
                       (double)o->learning_rate);
    const optimizer_family *f = family_of(o->kind);
    if (!f) return cd_fail(CD_ERR_VALUE, "unknown optimizer kind %d", (int)o->kind);
    return f->validate(o);
}

static cd_status update_param(const cd_optimizer_config *o, cd_param *p, int64_t t) {
    const optimizer_family *f = family_of(o->kind);
    const int nslots = f->slots(o);
    for (int s = 0; s < nslots; s++)
        if (!p->slot[s]) {
            p->slot[s] = cd_calloc(p->size, sizeof(float), "optimizer state");
            if (!p->slot[s]) return CD_ERR_MEMORY;
        }
    f->update(o, p->value, p->grad, p->size, p->slot, o->learning_rate, t);
    p->version++;
    return CD_OK;
}

int cd_optimizer_slots(const cd_optimizer_config *o) {
    const optimizer_family *f = family_of(o->kind);
    return f ? f->slots(o) : 0;
}

cd_status cd_optimizer_update(const cd_optimizer_config *o, cd_param *const *params, int count,
                              int64_t t) {
    for (int k = 0; k < count; k++) CD_TRY(update_param(o, params[k], t));
    return CD_OK;
}

void cd_optimizer_clear(cd_param *p) {
    for (int s = 0; s < CD_OPT_SLOTS; s++) {
        free(p->slot[s]);
        p->slot[s] = NULL;
    }
}
