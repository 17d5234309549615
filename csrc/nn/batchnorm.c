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
 * are added in chunk order: same bits for any thread count either way. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/graph_internal.h"

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

static cd_status bn_prepare(cd_graph *g, cd_node *node, int n) {
    (void)g, (void)n;
    bn_state *s = calloc(1, sizeof *s);
    if (!s) return cd_fail(CD_ERR_MEMORY, "out of memory preparing '%s'", node->name);
    node->state = s;
    s->mean = cd_alloc((size_t)node->c, sizeof(float), "batchnorm statistics");
    s->inv_std = cd_alloc((size_t)node->c, sizeof(float), "batchnorm statistics");
    s->batch_var = cd_alloc((size_t)node->c, sizeof(float), "batchnorm statistics");
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

static cd_status bn_forward(cd_graph *g, cd_node *node, int training) {
    bn_state *s = node->state;
    const cd_node *src = cd_input_node(g, node, 0);
    const int c = node->c;
    const size_t rows = (size_t)g->batch * node->h * node->w;
    const float *gamma = node->params[GAMMA].value, *beta = node->params[BETA].value;
    const float *mm = node->params[MOVING_MEAN].value, *mv = node->params[MOVING_VAR].value;
    s->pending = 0;
    if (training) {
        batch_moments(src->out, rows, c, s->mean, s->batch_var);
        for (int k = 0; k < c; k++) s->inv_std[k] = 1.0f / sqrtf(s->batch_var[k] + node->epsilon);
        s->pending = 1;
    } else {
        for (int k = 0; k < c; k++) {
            s->mean[k] = mm[k];
            s->inv_std[k] = 1.0f / sqrtf(mv[k] + node->epsilon);
        }
    }
    float scale[c], shift[c];
    for (int k = 0; k < c; k++) {
        scale[k] = gamma[k] * s->inv_std[k];
        shift[k] = beta[k] - s->mean[k] * scale[k];
    }
    const float *x = src->out;
    float *y = node->out;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)c;
        float *yr = y + r * (size_t)c;
        for (int k = 0; k < c; k++) yr[k] = xr[k] * scale[k] + shift[k];
    }
    return CD_OK;
}

static cd_status bn_backward(cd_graph *g, cd_node *node, float *dx[2], const int accumulate[2]) {
    bn_state *s = node->state;
    const cd_node *src = cd_input_node(g, node, 0);
    const int c = node->c;
    const size_t rows = (size_t)g->batch * node->h * node->w;
    const size_t chunks = (rows + BN_CHUNK_ROWS - 1) / BN_CHUNK_ROWS;
    const float *x = src->out, *dy = node->dout;
    const float *gamma = node->params[GAMMA].value;
    const float *mean = s->mean, *inv_std = s->inv_std;
    float *out = dx[0];
    const int acc = accumulate[0];
    /* inference mode: dx needs no sums, so the summing pass writes it too (dy read once) */
    float *inference_dx = out && !node->last_training ? out : NULL;
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
    if (cd_node_trains(node)) {
        memcpy(node->params[GAMMA].grad, dgamma, sizeof dgamma);
        memcpy(node->params[BETA].grad, dbeta, sizeof dbeta);
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
    const float m = node->momentum;
    for (int k = 0; k < node->c; k++) {
        mm[k] = mm[k] * m + s->mean[k] * (1.0f - m);
        mv[k] = mv[k] * m + s->batch_var[k] * (1.0f - m);
    }
    node->params[MOVING_MEAN].version++;
    node->params[MOVING_VAR].version++;
    s->pending = 0;
}

/* A fused inference block computed this BN (conv_fused.c): nothing left to commit. */
void cd_batchnorm_discard(cd_node *node) {
    bn_state *s = node->state;
    if (s) s->pending = 0;
}

const cd_layer_ops cd_batchnorm_ops = {bn_prepare, bn_forward, bn_backward, bn_release, bn_commit};
