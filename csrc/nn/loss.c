/* loss.c — the crossentropy losses and the accuracy metrics that go with them, as Keras 3's
 * TensorFlow backend computes them (keras/src/backend/tensorflow/nn.py). Batch mean over n.
 *
 * On logits z (n, k):
 *   BCE_LOGITS, k = 1, labels (n) in [0, 1]:
 *     loss = max(z, 0) - z y + log1p(exp(-|z|));        dz = sigmoid(z) - y
 *   SPARSE_CE_LOGITS, labels (n) class indices:
 *     loss = logsumexp(z) - z[y];                        dz = softmax(z) - onehot(y)
 *   CE_LOGITS, labels (n, k) (one-hot or soft):
 *     loss = sum_j y_j (logsumexp(z) - z_j);             dz = softmax(z) - y
 *     (tf.nn.softmax_cross_entropy_with_logits; its gradient assumes sum_j y_j = 1)
 * On probabilities p (n, k), eps = 1e-7 (keras.config.epsilon()), clip(p) to [eps, 1 - eps]
 * in float32; the clip passes no gradient where it clips (tf.clip_by_value):
 *   BCE, k = 1:  loss = -(y log q + (1 - y) log(1 - q)), q = clip(p)
 *   SPARSE_CE:   loss = log(sum_j q_j) - log q_y,  q = clip(p)
 *                (Keras takes log(clip(p)) as logits of a softmax crossentropy)
 *   CE:          loss = -sum_j y_j log q_j,  q = clip(p / sum_j p_j)
 * A probability loss right after a Dense head with the matching activation (sigmoid for BCE,
 * softmax for the others) is computed on the head's logits instead (train.c), as Keras does.
 *
 * Regression on outputs p (n, k), targets y (n, k), e = p - y, each loss the mean over the k
 * outputs (Keras's mean over the last axis), then over the batch:
 *   MSE:   e^2;                                    de = 2 e / k
 *   MAE:   |e|;                                    de = sign(e) / k   (0 at e = 0, as TF)
 *   HUBER: |e| <= 1 ? e^2 / 2 : |e| - 1/2 (delta 1);  de = clip(e, -1, 1) / k
 *
 * Accuracy on outputs o (n, k), after the head activation `act` when o are a fused head's
 * logits: binary (BCE kinds) (o > threshold) == (y > 0.5); sparse argmax(o) == y;
 * categorical argmax(o) == argmax(y) (first maximum on ties, as argmax). */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "catdog.h"

#define CD_CLIP_EPS 1e-7f

static int is_sparse(cd_loss_kind kind) {
    return kind == CD_LOSS_SPARSE_CE_LOGITS || kind == CD_LOSS_SPARSE_CE;
}

static int is_binary(cd_loss_kind kind) {
    return kind == CD_LOSS_BCE_LOGITS || kind == CD_LOSS_BCE;
}

static int is_regression(cd_loss_kind kind) {
    return kind == CD_LOSS_MSE || kind == CD_LOSS_MAE || kind == CD_LOSS_HUBER;
}

int cd_loss_label_width(cd_loss_kind kind, int k) {
    return kind == CD_LOSS_CE_LOGITS || kind == CD_LOSS_CE || is_regression(kind) ? k : 1;
}

int cd_loss_valid(cd_loss_kind kind) {
    return kind >= CD_LOSS_BCE_LOGITS && kind <= CD_LOSS_HUBER;
}

static cd_status check_labels(cd_loss_kind kind, const float *labels, int n, int k) {
    const int width = cd_loss_label_width(kind, k);
    for (int i = 0; i < n * width; i++) {
        float y = labels[i];
        if (!isfinite(y)) return cd_fail(CD_ERR_VALUE, "label %d is not finite", i / width);
        if (is_sparse(kind) && (y < 0 || y >= k || y != floorf(y)))
            return cd_fail(CD_ERR_VALUE, "label %d = %g is not a class index in [0, %d)", i,
                           (double)y, k);
    }
    return CD_OK;
}

static float clip_prob(float p, int *inside) {
    const float lo = CD_CLIP_EPS, hi = 1.0f - CD_CLIP_EPS;
    *inside = p >= lo && p <= hi;
    return p < lo ? lo : p > hi ? hi : p;
}

/* logsumexp of z (k), max-shifted */
static double logsumexp(const float *z, int k) {
    float m = z[0];
    for (int j = 1; j < k; j++) m = fmaxf(m, z[j]);
    double sum = 0;
    for (int j = 0; j < k; j++) sum += exp((double)z[j] - m);
    return m + log(sum);
}

cd_status cd_loss_sum(cd_loss_kind kind, const float *out, const float *labels, int n, int k,
                      int denominator, double *total, float *dout) {
    if (n < 1 || k < 1) return cd_fail(CD_ERR_VALUE, "empty batch");
    if (!cd_loss_valid(kind)) return cd_fail(CD_ERR_VALUE, "unknown loss %d", (int)kind);
    if (is_binary(kind) && k != 1)
        return cd_fail(CD_ERR_VALUE, "BinaryCrossentropy needs one output per sample, got %d "
                       "(use Dense(1), or a categorical crossentropy)", k);
    CD_TRY(check_labels(kind, labels, n, k));
    const double inv = 1.0 / denominator;
    for (int i = 0; i < n; i++) {
        const float *z = out + (size_t)i * k;
        float *d = dout ? dout + (size_t)i * k : NULL;
        switch (kind) {
        case CD_LOSS_BCE_LOGITS: {
            float zi = z[0], y = labels[i];
            *total += fmaxf(zi, 0.f) - zi * y + log1pf(expf(-fabsf(zi)));
            if (d) d[0] = (1.0f / (1.0f + expf(-zi)) - y) / (float)denominator;
            break;
        }
        case CD_LOSS_BCE: {
            int inside;
            float y = labels[i], q = clip_prob(z[0], &inside);
            *total += -((double)y * logf(q) + (1.0 - y) * logf(1.0f - q));
            if (d) d[0] = inside ? (float)((-(double)y / q + (1.0 - y) / (1.0f - q)) * inv) : 0.f;
            break;
        }
        case CD_LOSS_SPARSE_CE_LOGITS: {
            int y = (int)labels[i];
            double lse = logsumexp(z, k);
            *total += lse - z[y];
            if (d)
                for (int j = 0; j < k; j++) d[j] = (float)((exp((double)z[j] - lse) - (j == y)) * inv);
            break;
        }
        case CD_LOSS_CE_LOGITS: {
            const float *y = labels + (size_t)i * k;
            double lse = logsumexp(z, k);
            for (int j = 0; j < k; j++) *total += (double)y[j] * (lse - z[j]);
            if (d)
                for (int j = 0; j < k; j++) d[j] = (float)((exp((double)z[j] - lse) - y[j]) * inv);
            break;
        }
        case CD_LOSS_SPARSE_CE: {
            /* logits log q: softmax(log q) = q / sum q; d/dq_j = 1/sum q - [j = y] / q_y */
            int y = (int)labels[i], inside;
            double s = 0;
            for (int j = 0; j < k; j++) s += clip_prob(z[j], &inside);
            float qy = clip_prob(z[y], &inside);
            *total += log(s) - logf(qy);
            if (d)
                for (int j = 0; j < k; j++) {
                    float q = clip_prob(z[j], &inside);
                    d[j] = inside ? (float)((1.0 / s - (j == y ? 1.0 / q : 0.0)) * inv) : 0.f;
                }
            break;
        }
        case CD_LOSS_MSE:
        case CD_LOSS_MAE:
        case CD_LOSS_HUBER: {
            const float *y = labels + (size_t)i * k;
            double sum = 0;
            for (int j = 0; j < k; j++) {
                const float e = z[j] - y[j], a = fabsf(e);
                float g;
                if (kind == CD_LOSS_MSE) {
                    sum += (double)e * e;
                    g = 2.f * e;
                } else if (kind == CD_LOSS_MAE) {
                    sum += a;
                    g = (float)((e > 0.f) - (e < 0.f));
                } else {
                    sum += a <= 1.f ? 0.5 * (double)e * e : (double)a - 0.5;
                    g = a <= 1.f ? e : (float)((e > 0.f) - (e < 0.f));
                }
                if (d) d[j] = (float)(g / k * inv);
            }
            *total += sum / k;
            break;
        }
        case CD_LOSS_CE: {
            /* r = p / sum p, q = clip(r): dq_j = -y_j / q_j (0 where clipped),
             * dp_j = (dq_j - sum_i dq_i r_i) / sum p */
            const float *y = labels + (size_t)i * k;
            double s = 0, dot = 0;
            for (int j = 0; j < k; j++) s += z[j];
            for (int j = 0; j < k; j++) {
                int inside;
                float r = (float)(z[j] / s), q = clip_prob(r, &inside);
                *total += -(double)y[j] * logf(q);
                if (d) {
                    d[j] = inside ? -y[j] / q : 0.f;
                    dot += (double)d[j] * r;
                }
            }
            if (d)
                for (int j = 0; j < k; j++) d[j] = (float)((d[j] - dot) / s * inv);
            break;
        }
        }
    }
    return CD_OK;
}

cd_status cd_loss(cd_loss_kind kind, const float *out, const float *labels, int n, int k,
                  float *loss, float *dout) {
    double total = 0;
    CD_TRY(cd_loss_sum(kind, out, labels, n, k, n, &total, dout));
    *loss = (float)(total / n);
    return CD_OK;
}

static int argmax(const float *v, int k) {
    int best = 0;
    for (int j = 1; j < k; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

cd_status cd_accuracy(cd_loss_kind kind, const float *out, const float *labels, int n, int k,
                      cd_activation act, float threshold, double *correct) {
    if (!cd_loss_valid(kind)) return cd_fail(CD_ERR_VALUE, "unknown loss %d", (int)kind);
    float *tmp = NULL;
    if (act != CD_ACT_NONE && !(tmp = malloc((size_t)k * sizeof(float))))
        return cd_fail(CD_ERR_MEMORY, "out of memory for the accuracy of %d classes", k);
    double c = 0;
    for (int i = 0; i < n; i++) {
        const float *o = out + (size_t)i * k;
        if (tmp) {
            for (int j = 0; j < k; j++) tmp[j] = o[j];
            cd_activate(act, tmp, k);
            o = tmp;
        }
        if (is_regression(kind)) continue; /* no accuracy: Python refuses the metric */
        if (is_binary(kind)) c += (o[0] > threshold) == (labels[i] > 0.5f);
        else if (is_sparse(kind)) c += argmax(o, k) == (int)labels[i];
        else c += argmax(o, k) == argmax(labels + (size_t)i * k, k);
    }
    free(tmp);
    *correct = c;
    return CD_OK;
}
