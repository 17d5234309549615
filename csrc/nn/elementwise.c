/* elementwise.c — layers that act element by element on (n, h, w, c) or (n, c):
 * InputLayer (identity; the executor copies the batch in), ReLU(max_value), Rescaling,
 * Add, Multiply, the two-input merges (Subtract, Maximum, Minimum, Average), Dropout. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/vec.h"
#include "nn/conv_fused.h"

static size_t count_of(const cd_node *node, const cd_io *io) {
    return (size_t)io->n * cd_node_sample_size(node);
}

/* ---- InputLayer: hyperparameter shape (h, w, c); the executor writes its output ---- */
static cd_status input_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    (void)in;
    int s[3];
    CD_TRY(cd_hp_ints(h, "shape", 3, NULL, s));
    if (s[0] < 1 || s[1] < 1 || s[2] < 1 || s[0] > 16384 || s[1] > 16384 || s[2] > 65536)
        return cd_fail(CD_ERR_VALUE, "input '%s': bad shape (%d, %d, %d)", node->name, s[0], s[1],
                       s[2]);
    node->shape = (cd_shape){3, s[0], s[1], s[2]};
    return CD_OK;
}
static cd_status input_forward(cd_node *node, const cd_io *io) {
    (void)node, (void)io;
    return CD_OK;
}
static cd_status input_backward(cd_node *node, const cd_io *io) {
    (void)node, (void)io;
    return CD_OK;
}
const cd_layer_ops cd_input_ops = {
    .name = "InputLayer", .flags = 0, .min_inputs = 0, .max_inputs = 0, .build = input_build,
    .forward = input_forward, .backward = input_backward,
};

/* Layers whose output has their (first) input's shape. */
static cd_status same_shape(cd_node *node, const cd_shape *in) {
    node->shape = in[0];
    return CD_OK;
}

/* ---- ReLU(max_value): y = min(max(x, 0), max_value); dy passes where 0 < x < max_value
 * (strict on both sides, as tf.nn.relu6's gradient). max_value <= 0 means no upper bound.
 * Backward reads the output (0 < y < max exactly when 0 < x < max), so the input (a BN
 * output) need not be kept for it. */
static cd_status relu_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    cd_relu_hp *hp = node->hp;
    const float none = 0.f;
    CD_TRY(cd_hp_floats(h, "max_value", 1, &none, &hp->max_value));
    if (isnan(hp->max_value)) return cd_fail(CD_ERR_VALUE, "layer '%s': max_value is NaN", node->name);
    return same_shape(node, in); /* max_value <= 0 or inf: no upper clip */
}
static cd_status relu_forward(cd_node *node, const cd_io *io) {
    const float *x = io->in[0];
    float *y = io->out;
    const size_t n = count_of(node, io);
    const float max_value = cd_act_max(node);
    const float hi = max_value > 0.f ? max_value : INFINITY;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float v = x[i] > 0.f ? x[i] : 0.f;
        y[i] = v < hi ? v : hi;
    }
    return CD_OK;
}
static cd_status relu_backward(cd_node *node, const cd_io *io) {
    /* reads the output: see above */
    if (io->dx[0])
        cd_relu_grad(io->dx[0], io->out, io->dout, count_of(node, io), cd_act_max(node), io->acc[0]);
    return CD_OK;
}
/* ReLU(max_value) as a post-op: clip to [0, max], or relu without an upper bound. */
static int relu_post_op(const cd_node *node, cd_post_op *op) {
    const float max_value = cd_act_max(node);
    op->kind = CD_POST_ACT, op->count = 1, op->grad_from_output = 1;
    op->eltwise[0] = max_value > 0.f && isfinite(max_value)
                         ? (cd_eltwise){CD_ELTWISE_CLIP, 0.f, max_value}
                         : (cd_eltwise){CD_ELTWISE_RELU, 0.f, 0.f};
    return 1;
}
const cd_layer_ops cd_relu_ops = {
    .name = "ReLU", .flags = CD_OP_READS_OUTPUT, .min_inputs = 1,
    .max_inputs = 1, .hp_size = sizeof(cd_relu_hp), .build = relu_build,
    .forward = relu_forward, .backward = relu_backward, .post_op = relu_post_op,
};

/* ---- Rescaling: y = x * scale + offset (preprocess_input is scale 1/127.5, offset -1) ---- */
typedef struct {
    float scale, offset;
} rescale_hp;
static cd_status rescale_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    rescale_hp *hp = node->hp;
    const float zero = 0.f;
    CD_TRY(cd_hp_floats(h, "scale", 1, NULL, &hp->scale));
    CD_TRY(cd_hp_floats(h, "offset", 1, &zero, &hp->offset));
    if (!isfinite(hp->scale) || !isfinite(hp->offset))
        return cd_fail(CD_ERR_VALUE, "layer '%s': scale and offset must be finite", node->name);
    return same_shape(node, in);
}
static cd_status rescale_forward(cd_node *node, const cd_io *io) {
    const rescale_hp *hp = node->hp;
    const float *x = io->in[0];
    float *y = io->out;
    const size_t n = count_of(node, io);
    const float s = hp->scale, o = hp->offset;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * s + o;
    return CD_OK;
}
static cd_status rescale_backward(cd_node *node, const cd_io *io) {
    const rescale_hp *hp = node->hp;
    if (io->dx[0]) cd_write_scaled(io->dx[0], io->dout, hp->scale, count_of(node, io), io->acc[0]);
    return CD_OK;
}
const cd_layer_ops cd_rescale_ops = {
    .name = "Rescaling", .flags = 0, .min_inputs = 1, .max_inputs = 1,
    .hp_size = sizeof(rescale_hp), .build = rescale_build, .forward = rescale_forward,
    .backward = rescale_backward,
};
int cd_rescale_of(const cd_node *node, float *scale, float *offset) {
    if (node->ops != &cd_rescale_ops) return 0;
    const rescale_hp *hp = node->hp;
    *scale = hp->scale, *offset = hp->offset;
    return 1;
}

/* ---- Add: y = x0 + x1 + ... summed left to right (Keras's Add: output = inputs[0], then
 * output + inputs[i]); the gradient goes unchanged to every input. Any number of inputs of
 * one shape. ---- */
static cd_status check_same_shapes(const cd_node *node, const cd_shape *in, const char *what) {
    for (int j = 1; j < node->num_inputs; j++) {
        const cd_shape *x = &in[0], *y = &in[j];
        if (x->h != y->h || x->w != y->w || x->c != y->c)
            return cd_fail(CD_ERR_VALUE, "layer '%s': cannot %s shapes (%d, %d, %d) and "
                           "(%d, %d, %d) (input %d)", node->name, what, x->h, x->w, x->c, y->h,
                           y->w, y->c, j);
    }
    return CD_OK;
}
static cd_status add_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    (void)h;
    CD_TRY(check_same_shapes(node, in, "add"));
    node->shape = in[0];
    for (int j = 1; j < node->num_inputs; j++)
        if (in[j].rank > node->shape.rank) node->shape.rank = in[j].rank;
    return CD_OK;
}
static cd_status add_forward(cd_node *node, const cd_io *io) {
    float *y = io->out;
    const size_t n = count_of(node, io);
    const int k = io->num_inputs;
    const float *a = io->in[0];
    if (k == 1) {
        memcpy(y, a, n * sizeof(float));
        return CD_OK;
    }
    const float *b = io->in[1];
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    for (int j = 2; j < k; j++) {
        const float *c = io->in[j];
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) y[i] += c[i];
    }
    return CD_OK;
}
static cd_status add_backward(cd_node *node, const cd_io *io) {
    for (int j = 0; j < io->num_inputs; j++)
        if (io->dx[j]) cd_write_scaled(io->dx[j], io->dout, 1.f, count_of(node, io), io->acc[j]);
    return CD_OK;
}
/* Of two inputs: a binary-add post-op (the residual Add of a fused block). */
static int add_post_op(const cd_node *node, cd_post_op *op) {
    op->kind = CD_POST_ADD;
    return node->num_inputs == 2;
}
const cd_layer_ops cd_add_ops = {
    .name = "Add", .flags = 0, .min_inputs = 1, .max_inputs = CD_INPUTS_ANY,
    .build = add_build, .forward = add_forward, .backward = add_backward,
    .post_op = add_post_op,
};

/* ---- Multiply: y = a * b, where b has a's shape or is one value per channel (n, 1, 1, c)
 * or (n, c) broadcast over a's positions (a squeeze-and-excite gate), or the other way round.
 * da = dy * b; db = dy * a, summed over the positions b was broadcast to. ---- */
static int per_channel(const cd_shape *s, const cd_shape *full) {
    return s->h == 1 && s->w == 1 && s->c == full->c && (full->h > 1 || full->w > 1);
}
static cd_status multiply_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    (void)h;
    const cd_shape *a = &in[0], *b = &in[1];
    const int same = a->h == b->h && a->w == b->w && a->c == b->c;
    if (!same && !per_channel(b, a) && !per_channel(a, b))
        return cd_fail(CD_ERR_VALUE, "layer '%s': cannot multiply shapes (%d, %d, %d) and "
                       "(%d, %d, %d): give equal shapes, or one value per channel", node->name,
                       a->h, a->w, a->c, b->h, b->w, b->c);
    node->shape = per_channel(a, b) ? *b : *a;
    if (same && a->rank != b->rank) node->shape.rank = a->rank > b->rank ? a->rank : b->rank;
    return CD_OK;
}
/* Which input is full-size (f) and which per-channel (g; g == f when both are full). */
static void multiply_roles(const cd_io *io, int *f, int *g) {
    *f = per_channel(&io->in_shape[0], &io->in_shape[1]) ? 1 : 0;
    *g = per_channel(&io->in_shape[1 - *f], &io->in_shape[*f]) ? 1 - *f : *f;
}
static cd_status multiply_forward(cd_node *node, const cd_io *io) {
    int f, g;
    multiply_roles(io, &f, &g);
    const size_t n = count_of(node, io);
    float *y = io->out;
    if (g == f) { /* equal shapes */
        const float *a = io->in[0], *b = io->in[1];
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
        return CD_OK;
    }
    /* rows of c channels: row r is sample r / positions; the channel loop vectorises */
    const size_t c = (size_t)node->shape.c, positions = cd_node_sample_size(node) / c;
    const long rows = (long)(n / c);
    const float *x = io->in[f], *s = io->in[g];
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * c, *gate = s + (size_t)r / positions * c;
        float *yr = y + (size_t)r * c;
        for (size_t k = 0; k < c; k++) yr[k] = xr[k] * gate[k];
    }
    return CD_OK;
}
static cd_status multiply_backward(cd_node *node, const cd_io *io) {
    int f, g;
    multiply_roles(io, &f, &g);
    const size_t n = count_of(node, io);
    const float *dy = io->dout;
    if (g == f) {
        for (int j = 0; j < 2; j++) {
            float *dx = io->dx[j];
            if (!dx) continue;
            const float *o = io->in[1 - j];
            const int acc = io->acc[j];
#pragma omp parallel for schedule(static) if (n > 65536)
            for (size_t i = 0; i < n; i++) dx[i] = acc ? dx[i] + dy[i] * o[i] : dy[i] * o[i];
        }
        return CD_OK;
    }
    const int c = node->shape.c;
    const size_t per_sample = cd_node_sample_size(node), positions = per_sample / (size_t)c;
    const float *x = io->in[f], *s = io->in[g];
    if (io->dx[f]) { /* d full = dy * gate, by rows of c channels as forward */
        float *dx = io->dx[f];
        const int acc = io->acc[f];
        const long rows = (long)(n / (size_t)c);
#pragma omp parallel for schedule(static) if (n > 65536)
        for (long r = 0; r < rows; r++) {
            const float *dyr = dy + (size_t)r * c, *gate = s + (size_t)r / positions * c;
            float *dxr = dx + (size_t)r * c;
            if (acc)
                for (int k = 0; k < c; k++) dxr[k] += dyr[k] * gate[k];
            else
                for (int k = 0; k < c; k++) dxr[k] = dyr[k] * gate[k];
        }
    }
    if (io->dx[g]) { /* d gate = sum over positions of dy * full, in double */
        float *ds = io->dx[g];
        const int acc = io->acc[g];
#pragma omp parallel for schedule(static)
        for (int b = 0; b < io->n; b++) {
            double sum[c];
            for (int k = 0; k < c; k++) sum[k] = 0;
            const size_t at = (size_t)b * per_sample;
            for (size_t p = 0; p < positions; p++)
                for (int k = 0; k < c; k++) sum[k] += (double)dy[at + p * c + k] * x[at + p * c + k];
            for (int k = 0; k < c; k++)
                ds[(size_t)b * c + k] = acc ? ds[(size_t)b * c + k] + (float)sum[k] : (float)sum[k];
        }
    }
    return CD_OK;
}
/* A binary-multiply post-op (the plan does not fuse it yet: it declares what it is). */
static int multiply_post_op(const cd_node *node, cd_post_op *op) {
    (void)node;
    op->kind = CD_POST_MUL;
    return 1;
}
const cd_layer_ops cd_multiply_ops = {
    .name = "Multiply", .flags = CD_OP_READS_INPUT, .min_inputs = 2,
    .max_inputs = 2, .build = multiply_build, .forward = multiply_forward,
    .backward = multiply_backward, .post_op = multiply_post_op,
};

/* ---- Subtract (two inputs), Maximum, Minimum, Average (any number) of tensors of one
 * shape (Keras's merging layers, each folding its op left to right: output = inputs[0], then
 * op(output, inputs[i]); Average divides the sum by the count). Gradients as TF's through
 * that chain: Maximum routes dy to the running winner, which input i displaces only when it
 * is strictly greater (TF's maximum gradient goes to x where x >= y; Minimum: strictly
 * smaller); Average gives dy / count to each. Hyperparameter "op" (merge_op). ---- */
enum merge_op { MERGE_SUBTRACT = 0, MERGE_MAXIMUM, MERGE_MINIMUM, MERGE_AVERAGE, MERGE_COUNT };
typedef struct {
    int op;
} merge_hp;
static cd_status merge_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    merge_hp *hp = node->hp;
    CD_TRY(cd_hp_ints(h, "op", 1, NULL, &hp->op));
    if (hp->op < 0 || hp->op >= MERGE_COUNT)
        return cd_fail(CD_ERR_VALUE, "layer '%s': unknown merge op %d", node->name, hp->op);
    if (hp->op == MERGE_SUBTRACT && node->num_inputs != 2)
        return cd_fail(CD_ERR_VALUE, "A `Subtract` layer should be called on exactly 2 inputs "
                       "(layer '%s' got %d)", node->name, node->num_inputs);
    CD_TRY(check_same_shapes(node, in, "merge"));
    return same_shape(node, in);
}
/* Sample element i: the chain's value, and which input it came from (Maximum/Minimum). */
static float merge_at(int op, const cd_io *io, size_t i, int *winner) {
    float r = io->in[0][i];
    *winner = 0;
    for (int j = 1; j < io->num_inputs; j++) {
        const float v = io->in[j][i];
        if (op == MERGE_SUBTRACT) r -= v;
        else if (op == MERGE_AVERAGE) r += v;
        else if (op == MERGE_MAXIMUM ? v > r : v < r) r = v, *winner = j;
    }
    return op == MERGE_AVERAGE ? r / (float)io->num_inputs : r;
}
static cd_status merge_forward(cd_node *node, const cd_io *io) {
    const int op = ((const merge_hp *)node->hp)->op;
    float *y = io->out;
    const size_t n = count_of(node, io);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        int w;
        y[i] = merge_at(op, io, i, &w);
    }
    return CD_OK;
}
static cd_status merge_backward(cd_node *node, const cd_io *io) {
    const int op = ((const merge_hp *)node->hp)->op;
    const float *dy = io->dout;
    const size_t n = count_of(node, io);
    const float inv = 1.f / (float)io->num_inputs;
    for (int j = 0; j < io->num_inputs; j++) {
        float *dx = io->dx[j];
        if (!dx) continue;
        const int acc = io->acc[j];
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            float g;
            if (op == MERGE_SUBTRACT) {
                g = j ? -dy[i] : dy[i];
            } else if (op == MERGE_AVERAGE) {
                g = dy[i] * inv;
            } else {
                int w;
                merge_at(op, io, i, &w);
                g = w == j ? dy[i] : 0.f;
            }
            dx[i] = acc ? dx[i] + g : g;
        }
    }
    return CD_OK;
}
const cd_layer_ops cd_merge_ops = {
    .name = "Merge", .flags = CD_OP_READS_INPUT, .min_inputs = 1, .max_inputs = CD_INPUTS_ANY,
    .hp_size = sizeof(merge_hp), .build = merge_build, .forward = merge_forward,
    .backward = merge_backward,
};

/* ---- Dropout(rate, noise_shape): in training y = x * keep / (1 - rate), keep = u >= rate
 * with u uniform from the counter RNG keyed by (seed, step, layer index) and the element's
 * index in the batch (a micro-batch starts at io->sample_offset), so backward regenerates the
 * same mask and any thread count or micro-batching gives the same one. Axes where noise_shape
 * is 1 ("shared") take one draw along them (Keras's noise_shape=(None, 1, 1, C): whole
 * channels dropped). ---- */
typedef struct {
    float rate;
    int shared[3]; /* noise_shape: 1 where the mask is shared along h, w, c */
} dropout_hp;
static cd_status dropout_build(cd_node *node, const cd_shape *in, cd_hparams *h) {
    dropout_hp *hp = node->hp;
    const int none[3] = {0, 0, 0};
    CD_TRY(cd_hp_floats(h, "rate", 1, NULL, &hp->rate));
    CD_TRY(cd_hp_ints(h, "shared", 3, none, hp->shared));
    if (!(hp->rate >= 0.f && hp->rate < 1.f))
        return cd_fail(CD_ERR_VALUE, "layer '%s': dropout rate must be in [0, 1), got %g",
                       node->name, (double)hp->rate);
    return same_shape(node, in);
}
/* The mask's index of element i (of the batch from its first sample): its position with the
 * shared axes (noise_shape 1) dropped, so the elements along them share one draw. */
static size_t noise_index(const cd_node *node, const dropout_hp *hp, size_t i) {
    if (!hp->shared[0] && !hp->shared[1] && !hp->shared[2]) return i;
    const cd_shape *s = &node->shape;
    const size_t c = i % (size_t)s->c, x = i / (size_t)s->c % (size_t)s->w;
    const size_t y = i / ((size_t)s->c * s->w) % (size_t)s->h, b = i / cd_shape_size(s);
    const size_t nh = hp->shared[0] ? 1 : (size_t)s->h, nw = hp->shared[1] ? 1 : (size_t)s->w;
    const size_t nc = hp->shared[2] ? 1 : (size_t)s->c;
    return ((b * nh + (hp->shared[0] ? 0 : y)) * nw + (hp->shared[1] ? 0 : x)) * nc +
           (hp->shared[2] ? 0 : c);
}
static uint64_t dropout_key(const cd_io *io) {
    return cd_rng_key(io->seed, (uint64_t)io->step, (uint64_t)io->index, 0xd209ULL);
}
static cd_status dropout_forward(cd_node *node, const cd_io *io) {
    const float rate = ((const dropout_hp *)node->hp)->rate;
    const float *x = io->in[0];
    float *y = io->out;
    const size_t n = count_of(node, io);
    if (!io->training || rate == 0.f) {
        memcpy(y, x, n * sizeof(float));
        return CD_OK;
    }
    const dropout_hp *hp = node->hp;
    const uint64_t key = dropout_key(io);
    const size_t first = (size_t)io->sample_offset * cd_node_sample_size(node);
    const float scale = 1.0f / (1.0f - rate);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        y[i] = cd_rng_uniform(key, noise_index(node, hp, first + i)) >= rate ? x[i] * scale : 0.f;
    return CD_OK;
}
static cd_status dropout_backward(cd_node *node, const cd_io *io) {
    if (!io->dx[0]) return CD_OK;
    const float rate = ((const dropout_hp *)node->hp)->rate;
    const size_t n = count_of(node, io);
    const float *dy = io->dout;
    float *out = io->dx[0];
    const int a = io->acc[0];
    if (!io->training || rate == 0.f) {
        cd_write_scaled(out, dy, 1.f, n, a);
        return CD_OK;
    }
    const dropout_hp *hp = node->hp;
    const uint64_t key = dropout_key(io);
    const size_t first = (size_t)io->sample_offset * cd_node_sample_size(node);
    const float scale = 1.0f / (1.0f - rate);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float v = cd_rng_uniform(key, noise_index(node, hp, first + i)) >= rate ? dy[i] * scale : 0.f;
        out[i] = a ? out[i] + v : v;
    }
    return CD_OK;
}
/* In inference mode a Dropout is the identity: a fused inference block passes over it. */
static int dropout_post_op(const cd_node *node, cd_post_op *op) {
    (void)node;
    op->kind = CD_POST_DROP;
    return 1;
}
const cd_layer_ops cd_dropout_ops = {
    .name = "Dropout", .flags = 0, .min_inputs = 1, .max_inputs = 1,
    .hp_size = sizeof(dropout_hp), .build = dropout_build, .forward = dropout_forward,
    .backward = dropout_backward, .post_op = dropout_post_op,
};
