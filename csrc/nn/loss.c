/* loss.c — losses on logits and the accuracy metrics that go with them.
 *
 * BinaryCrossentropy(from_logits=True), logits (n, 1), labels (n) in {0, 1}:
 *   loss = mean(max(z, 0) - z * y + log1p(exp(-|z|)));  dz = (sigmoid(z) - y) / n
 * SparseCategoricalCrossentropy(from_logits=True), logits (n, k), labels (n) class indices:
 *   loss = mean(logsumexp(z) - z[y]);                    dz = (softmax(z) - onehot(y)) / n
 * BinaryAccuracy(threshold) on logits: (z > threshold) == (y > 0.5).
 * SparseCategoricalAccuracy: argmax(z) == y. */
#include <math.h>

#include "core/error.h"
#include "catdog.h"

static cd_status check_labels(cd_loss_kind kind, const float *labels, int n, int k) {
    for (int i = 0; i < n; i++) {
        float y = labels[i];
        if (!isfinite(y)) return cd_fail(CD_ERR_VALUE, "label %d is not finite", i);
        if (kind == CD_LOSS_SPARSE_CE_LOGITS && (y < 0 || y >= k || y != floorf(y)))
            return cd_fail(CD_ERR_VALUE, "label %d = %g is not a class index in [0, %d)", i,
                           (double)y, k);
    }
    return CD_OK;
}

cd_status cd_loss_sum(cd_loss_kind kind, const float *logits, const float *labels, int n, int k,
                      int denominator, double *total, float *dlogits) {
    if (n < 1 || k < 1) return cd_fail(CD_ERR_VALUE, "empty batch");
    CD_TRY(check_labels(kind, labels, n, k));
    if (kind == CD_LOSS_BCE_LOGITS) {
        if (k != 1)
            return cd_fail(CD_ERR_VALUE, "BinaryCrossentropy needs one logit per sample, got %d "
                           "(use Dense(1), or SparseCategoricalCrossentropy)", k);
        for (int i = 0; i < n; i++) {
            float z = logits[i], y = labels[i];
            *total += fmaxf(z, 0.f) - z * y + log1pf(expf(-fabsf(z)));
            if (dlogits) dlogits[i] = (1.0f / (1.0f + expf(-z)) - y) / (float)denominator;
        }
    } else if (kind == CD_LOSS_SPARSE_CE_LOGITS) {
        for (int i = 0; i < n; i++) {
            const float *z = logits + (size_t)i * k;
            int y = (int)labels[i];
            float m = z[0];
            for (int j = 1; j < k; j++) m = fmaxf(m, z[j]);
            double sum = 0;
            for (int j = 0; j < k; j++) sum += exp((double)z[j] - m);
            double lse = m + log(sum);
            *total += lse - z[y];
            if (dlogits)
                for (int j = 0; j < k; j++)
                    dlogits[(size_t)i * k + j] =
                        (float)((exp((double)z[j] - lse) - (j == y)) / denominator);
        }
    } else {
        return cd_fail(CD_ERR_VALUE, "unknown loss %d", (int)kind);
    }
    return CD_OK;
}

cd_status cd_loss(cd_loss_kind kind, const float *logits, const float *labels, int n, int k,
                  float *loss, float *dlogits) {
    double total = 0;
    CD_TRY(cd_loss_sum(kind, logits, labels, n, k, n, &total, dlogits));
    *loss = (float)(total / n);
    return CD_OK;
}

cd_status cd_accuracy(cd_loss_kind kind, const float *logits, const float *labels, int n, int k,
                      float threshold, double *correct) {
    double c = 0;
    for (int i = 0; i < n; i++) {
        if (kind == CD_LOSS_BCE_LOGITS) {
            c += (logits[i] > threshold) == (labels[i] > 0.5f);
        } else {
            const float *z = logits + (size_t)i * k;
            int best = 0;
            for (int j = 1; j < k; j++)
                if (z[j] > z[best]) best = j;
            c += best == (int)labels[i];
        }
    }
    *correct = c;
    return CD_OK;
}
