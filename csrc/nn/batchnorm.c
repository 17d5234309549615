/* batchnorm.c — BatchNormalization over the channel axis of NHWC (rows = n*h*w, c channels).
 *
 * inference: y = (x - moving_mean) * rsqrt(moving_variance + eps) * gamma + beta
 * training:  mean, var = batch moments over rows (biased variance, as Keras normalises);
 *            y = (x - mean) * rsqrt(var + eps) * gamma + beta;
 *            moving_stat = moving_stat * momentum + batch_stat * (1 - momentum)
 * backward (training):  xhat = (x - mean) * inv_std
 *            dbeta = sum(dy), dgamma = sum(dy * xhat)
 *            dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma)
 * backward (inference): dx = dy * gamma * inv_std, with the moving statistics fixed.
 * Forward moments run per channel block on one thread each; backward sums run over fixed
 * chunks of BN_CHUNK_ROWS rows (contiguous reads, all channels at once) whose partial sums
 * are added in chunk order: same bits for any thread count either way.
 *
 * center=False / scale=False (Keras's arguments; InceptionV3's files have no gamma): the node
 * keeps its four weights in the same slots (the fold in conv_fused.c reads them by index), but
 * an absent beta / gamma is fixed at 0 / 1, cannot train (can_train 0, no gradient) and is not
 * one of the Python layer's weights (catdog/layers/core.py maps the present ones). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "nn/conv_fused.h"

enum { GAMMA, BETA, MOVING_MEAN, MOVING_VAR };
#define CH_BLOCK 16
#define BN_CHUNK_ROWS 64

typedef struct {
    float *mean, *inv_std; /* (c) statistics used by the last forward */
    float *batch_var;      /* (c) biased batch variance of the last training forward */
    int pending;           /* moving statistics not yet updated with that batch */
    double *partials;      /* backward: (chunks, 2, c) per-chunk sums of dy * xhat and dy */
    size_t partials_count;
} bn_state;

static void bn_release(cd_node *node) {
    bn_state *s = node->state;
    if (!s) return;
    free(s->mean);
    free(s->inv_std);
    free(s->batch_var);
    free(s->partials);
    free(s);
}

static cd_status bn_prepare(cd_node *node, const cd_shape *in, int n) {
    (void)in, (void)n;
    bn_state *s = calloc(1, sizeof *s);
    if (!s) return cd_fail(CD_ERR_MEMORY, "out of memory preparing '%s'", node->name);
    node->state = s;
    const size_t c = (size_t)node->shape.c;
    s->mean = cd_alloc(c, sizeof(float), "batchnorm statistics");
    s->inv_std = cd_alloc(c, sizeof(float), "batchnorm statistics");
    s->batch_var = cd_alloc(c, sizeof(float), "batchnorm statistics");
    if (!s->mean || !s->inv_std || !s->batch_var) return CD_ERR_MEMORY;
    return CD_OK;
}

/* Per-channel mean and biased variance over rows, double accumulation. */
static void batch_moments(const float *x, size_t rows, int c, float *mean, float *var) {
    int blocks = (c + CH_BLOCK - 1) / CH_BLOCK;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < blocks; b++) {
        int c0 = b * CH_BLOCK, c1 = c0 + CH_BLOCK < c ? c0 + CH_BLOCK : c;
        double sum[CH_BLOCK] = {0}, sq[CH_BLOCK] = {0};
        for (size_t r = 0; r < rows; r++) {
            const float *row = x + r * (size_t)c;
            for (int k = c0; k < c1; k++) sum[k - c0] += row[k];
        }
        for (int k = c0; k < c1; k++) sum[k - c0] /= (double)rows;
        for (size_t r = 0; r < rows; r++) {
            const float *row = x + r * (size_t)c;
            for (int k = c0; k < c1; k++) {
                double d = row[k] - sum[k - c0];
                sq[k - c0] += d * d;
            }
        }
        for (int k = c0; k < c1; k++) {
            mean[k] = (float)sum[k - c0];
            var[k] = (float)(sq[k - c0] / (double)rows);
        }
    }
}

static cd_status bn_forward(cd_node *node, const cd_io *io) {
    bn_state *s = node->state;
    const int c = node->shape.c, training = io->training;
    const float eps = cd_bn_of(node)->epsilon;
    const size_t rows = (size_t)io->n * node->shape.h * node->shape.w;
    const float *gamma = node->params[GAMMA].value, *beta = node->params[BETA].value;
    const float *mm = node->params[MOVING_MEAN].value, *mv = node->params[MOVING_VAR].value;
    s->pending = 0;
    if (training) {
        batch_moments(io->in[0], rows, c, s->mean, s->batch_var);
        for (int k = 0; k < c; k++) s->inv_std[k] = 1.0f / sqrtf(s->batch_var[k] + eps);
        s->pending = 1;
    } else {
        for (int k = 0; k < c; k++) {
            s->mean[k] = mm[k];
            s->inv_std[k] = 1.0f / sqrtf(mv[k] + eps);
        }
    }
    float scale[c], shift[c];
    for (int k = 0; k < c; k++) {
        scale[k] = gamma[k] * s->inv_std[k];
        shift[k] = beta[k] - s->mean[k] * scale[k];
    }
    const float *x = io->in[0];
    float *y = io->out;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)c;
        float *yr = y + r * (size_t)c;
        for (int k = 0; k < c; k++) yr[k] = xr[k] * scale[k] + shift[k];
    }
    return CD_OK;
}

static cd_status bn_backward(cd_node *node, const cd_io *io) {
    bn_state *s = node->state;
    const int c = node->shape.c;
    const size_t rows = (size_t)io->n * node->shape.h * node->shape.w;
    const size_t chunks = (rows + BN_CHUNK_ROWS - 1) / BN_CHUNK_ROWS;
    const float *x = io->in[0], *dy = io->dout;
    const float *gamma = node->params[GAMMA].value;
    const float *mean = s->mean, *inv_std = s->inv_std;
    float *out = io->dx[0];
    const int acc = io->acc[0];
    /* inference mode: dx needs no sums, so the summing pass writes it too (dy read once) */
    float *inference_dx = out && !io->training ? out : NULL;
    float dgamma[c], dbeta[c], scale[c];
    for (int k = 0; k < c; k++) scale[k] = gamma[k] * inv_std[k];
    if (s->partials_count < chunks * 2 * (size_t)c) { /* grows to the largest batch, then stays */
        free(s->partials);
        s->partials_count = 0;
        s->partials = cd_alloc(chunks * 2 * (size_t)c, sizeof(double), "batchnorm gradient sums");
        if (!s->partials) return CD_ERR_MEMORY;
        s->partials_count = chunks * 2 * (size_t)c;
    }
    double *partials = s->partials;
#pragma omp parallel for schedule(static)
    for (size_t ch = 0; ch < chunks; ch++) {
        /* float sums over a chunk's 64 rows (16 lanes wide), double across chunks */
        float sg[c], sb[c];
        for (int k = 0; k < c; k++) sg[k] = sb[k] = 0.f;
        const size_t r1 = (ch + 1) * BN_CHUNK_ROWS < rows ? (ch + 1) * BN_CHUNK_ROWS : rows;
        for (size_t r = ch * BN_CHUNK_ROWS; r < r1; r++) {
            const float *xr = x + r * (size_t)c, *dyr = dy + r * (size_t)c;
            for (int k = 0; k < c; k++) {
                float xhat = (xr[k] - mean[k]) * inv_std[k];
                sg[k] += dyr[k] * xhat;
                sb[k] += dyr[k];
            }
            if (inference_dx) {
                float *o = inference_dx + r * (size_t)c;
                if (acc)
                    for (int k = 0; k < c; k++) o[k] += dyr[k] * scale[k];
                else
                    for (int k = 0; k < c; k++) o[k] = dyr[k] * scale[k];
            }
        }
        double *pg = partials + ch * 2 * (size_t)c, *pb = pg + c;
        for (int k = 0; k < c; k++) pg[k] = sg[k], pb[k] = sb[k];
    }
    for (int k = 0; k < c; k++) {
        double g_sum = 0.0, b_sum = 0.0;
        for (size_t ch = 0; ch < chunks; ch++) {
            g_sum += partials[ch * 2 * (size_t)c + k];
            b_sum += partials[ch * 2 * (size_t)c + c + k];
        }
        dgamma[k] = (float)g_sum, dbeta[k] = (float)b_sum;
    }
    if (io->weight_grads) { /* an absent (fixed) gamma or beta has no gradient */
        if (node->params[GAMMA].can_train) memcpy(node->params[GAMMA].grad, dgamma, sizeof dgamma);
        if (node->params[BETA].can_train) memcpy(node->params[BETA].grad, dbeta, sizeof dbeta);
    }
    if (!out || inference_dx) return CD_OK;
    const float inv_m = 1.0f / (float)rows;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)c, *dyr = dy + r * (size_t)c;
        float *o = out + r * (size_t)c;
        for (int k = 0; k < c; k++) {
            float xhat = (xr[k] - mean[k]) * inv_std[k];
            float v = scale[k] * (dyr[k] - inv_m * dbeta[k] - xhat * inv_m * dgamma[k]);
            o[k] = acc ? o[k] + v : v;
        }
    }
    return CD_OK;
}

/* moving_stat = moving_stat * momentum + batch_stat * (1 - momentum) */
static void bn_commit(cd_node *node) {
    bn_state *s = node->state;
    if (!s || !s->pending) return;
    float *mm = node->params[MOVING_MEAN].value, *mv = node->params[MOVING_VAR].value;
    const float m = cd_bn_of(node)->momentum;
    for (int k = 0; k < node->shape.c; k++) {
        mm[k] = mm[k] * m + s->mean[k] * (1.0f - m);
        mv[k] = mv[k] * m + s->batch_var[k] * (1.0f - m);
    }
    node->params[MOVING_MEAN].version++;
    node->params[MOVING_VAR].version++;
    s->pending = 0;
}

/* A fused block computed this BN (conv_fused.c): nothing left to commit. */
static void bn_discard(cd_node *node) {
    bn_state *s = node->state;
    if (s) s->pending = 0;
}

/* hyperparameters: epsilon > 0, momentum in [0, 1], center and scale (0 or 1, default 1);
 * weights gamma (trainable when scale), beta (trainable when center), moving_mean,
 * moving_variance, each (c) */
static cd_status bn_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    cd_bn_hp *hp = node->hp;
    const int yes = 1;
    int center, scale;
    CD_TRY(cd_hp_floats(h, "epsilon", 1, NULL, &hp->epsilon));
    CD_TRY(cd_hp_floats(h, "momentum", 1, NULL, &hp->momentum));
    CD_TRY(cd_hp_ints(h, "center", 1, &yes, &center));
    CD_TRY(cd_hp_ints(h, "scale", 1, &yes, &scale));
    if (!(hp->epsilon > 0.f) || !(hp->momentum >= 0.f && hp->momentum <= 1.f))
        return cd_fail(CD_ERR_VALUE, "layer '%s': need epsilon > 0 and momentum in [0, 1]",
                       node->name);
    if ((center != 0 && center != 1) || (scale != 0 && scale != 1))
        return cd_fail(CD_ERR_VALUE, "layer '%s': center and scale are 0 or 1", node->name);
    node->shape = in[0];
    const int dims[1] = {node->shape.c};
    CD_TRY(cd_declare_param(node, "gamma", 1, dims, scale, 1.f));
    CD_TRY(cd_declare_param(node, "beta", 1, dims, center, 0.f));
    CD_TRY(cd_declare_param(node, "moving_mean", 1, dims, 0, 0.f));
    CD_TRY(cd_declare_param(node, "moving_variance", 1, dims, 0, 1.f));
    return CD_OK;
}

/* In inference mode a per-channel affine map the conv before it folds in (the plan checks
 * the mode). A trainable block's gradient finish (conv_fused.c) computes dgamma from beta's
 * gradient buffer, which a fixed beta (center=False) does not have: such a BN, while it
 * trains, is not folded (fixed beta and frozen, or fixed gamma, still fold). */
static int bn_post_op(const cd_node *node, cd_post_op *op) {
    op->kind = CD_POST_NORM;
    return !(node->trainable && !node->params[BETA].can_train && node->params[GAMMA].can_train);
}

const cd_layer_ops cd_batchnorm_ops = {
    .name = "BatchNormalization", .post_op = bn_post_op,
    .flags = CD_OP_READS_INPUT | CD_OP_COUPLES_BATCH | CD_OP_FROZEN_INFERENCE,
    .min_inputs = 1, .max_inputs = 1, .hp_size = sizeof(cd_bn_hp), .build = bn_build,
    .prepare = bn_prepare, .forward = bn_forward, .backward = bn_backward, .release = bn_release,
    .commit = bn_commit, .discard = bn_discard,
};
