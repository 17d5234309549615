/* engine.c — binding for graphs (csrc/model), losses and optimizers: the Graph type.
 * Arrays cross as float32 C-contiguous NumPy arrays; long calls release the GIL; a graph
 * refuses a second call while one is running in another thread. */
#include "binding/common.h"

#include <string.h>

#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL catdog_ARRAY_API
#include <numpy/arrayobject.h>

typedef struct {
    PyObject_HEAD cd_graph *graph;
    int busy;
} GraphObject;

/* ---- helpers ---- */

static int check_graph(GraphObject *self) {
    if (!self->graph) {
        PyErr_SetString(PyExc_RuntimeError, "graph was not created");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this graph is already running a call in another thread");
        return -1;
    }
    return 0;
}

/* A float32, C-contiguous ndarray with `ndim` dims (or -1: any), else a ValueError that says
 * what is wrong. Returns a new reference to the same array. */
static PyArrayObject *float_array(PyObject *obj, int ndim, const char *what) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a numpy.ndarray, got %s", what,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != NPY_FLOAT32) {
        PyErr_Format(PyExc_ValueError, "%s must have dtype float32, got %s", what,
                     PyArray_DESCR(a)->typeobj->tp_name);
        return NULL;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a)) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be C-contiguous (use numpy.ascontiguousarray)", what);
        return NULL;
    }
    if (ndim >= 0 && PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must have %d dimensions, got %d", what, ndim,
                     PyArray_NDIM(a));
        return NULL;
    }
    Py_INCREF(a);
    return a;
}

static PyObject *new_float_array(int ndim, const npy_intp *dims) {
    return PyArray_SimpleNew(ndim, (npy_intp *)dims, NPY_FLOAT32);
}

/* Shape of a layer's output for a batch of n: (n, h, w, c) or (n, c). */
static int output_dims(const cd_graph *g, int layer, int n, npy_intp *dims) {
    cd_layer_info info;
    if (cd_graph_layer_info(g, layer, &info) != CD_OK) return -1;
    dims[0] = n;
    if (info.out_rank == 3) {
        dims[1] = info.out_shape[0], dims[2] = info.out_shape[1], dims[3] = info.out_shape[2];
        return 4;
    }
    dims[1] = info.out_shape[0];
    return 2;
}

/* Checks x against the input layer's (H, W, C); returns the batch size or -1. */
static int check_input_batch(GraphObject *self, PyArrayObject *x) {
    cd_layer_info info;
    cd_status s = cd_graph_layer_info(self->graph, 0, &info);
    if (s != CD_OK) {
        cd_py_raise(s);
        return -1;
    }
    npy_intp *d = PyArray_DIMS(x);
    if (d[1] != info.out_shape[0] || d[2] != info.out_shape[1] || d[3] != info.out_shape[2]) {
        PyErr_Format(PyExc_ValueError,
                     "input batch has shape (%ld, %ld, %ld, %ld) but the model expects "
                     "(batch, %d, %d, %d)",
                     (long)d[0], (long)d[1], (long)d[2], (long)d[3], info.out_shape[0],
                     info.out_shape[1], info.out_shape[2]);
        return -1;
    }
    if (d[0] < 1 || d[0] > 65536) {
        PyErr_Format(PyExc_ValueError, "batch size must be in [1, 65536], got %ld", (long)d[0]);
        return -1;
    }
    return (int)d[0];
}

/* ---- type basics ---- */

static PyObject *Graph_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    GraphObject *self = (GraphObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    cd_status s = cd_graph_create(&self->graph);
    if (s != CD_OK) {
        Py_DECREF(self);
        return cd_py_raise(s);
    }
    return (PyObject *)self;
}

static void Graph_dealloc(GraphObject *self) {
    cd_graph_free(self->graph);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *id_or_raise(cd_status s, int id) {
    if (s != CD_OK) return cd_py_raise(s);
    return PyLong_FromLong(id);
}

/* ---- builders ---- */

static PyObject *add_layer_with(GraphObject *self, const char *kind, const char *name,
                                int num_inputs, const int *inputs, PyObject *kw);

/* add_layer(kind, name, inputs, **hyperparameters) -> index: each value a number (bool, int,
 * float) or a tuple/list of up to 4 (csrc/catdog.h lists each kind's keys). */
static PyObject *Graph_add_layer(GraphObject *self, PyObject *args, PyObject *kw) {
    const char *kind, *name;
    PyObject *inputs_obj;
    if (!PyArg_ParseTuple(args, "ssO", &kind, &name, &inputs_obj) || check_graph(self)) return NULL;
    PyObject *seq = PySequence_Fast(inputs_obj, "inputs must be a sequence of layer indices");
    if (!seq) return NULL;
    const Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    if (count > 1 << 16) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "layer '%s': too many inputs (%zd)", name, count);
        return NULL;
    }
    const int num_inputs = (int)count;
    int *inputs = PyMem_Malloc((size_t)(num_inputs ? num_inputs : 1) * sizeof *inputs);
    if (!inputs) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (int i = 0; i < num_inputs; i++) {
        inputs[i] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (PyErr_Occurred()) {
            Py_DECREF(seq);
            PyMem_Free(inputs);
            return NULL;
        }
    }
    Py_DECREF(seq);
    PyObject *result = add_layer_with(self, kind, name, num_inputs, inputs, kw);
    PyMem_Free(inputs);
    return result;
}

/* The hyperparameters (kw) read into cd_hparam and the layer added. */
static PyObject *add_layer_with(GraphObject *self, const char *kind, const char *name,
                                int num_inputs, const int *inputs, PyObject *kw) {
    cd_hparam hp[32];
    int num_hp = 0;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (kw && PyDict_Next(kw, &pos, &key, &value)) {
        if (num_hp == 32) {
            PyErr_SetString(PyExc_ValueError, "too many hyperparameters");
            return NULL;
        }
        cd_hparam *h = &hp[num_hp++];
        h->key = PyUnicode_AsUTF8(key);
        if (!h->key) return NULL;
        if (PyTuple_Check(value) || PyList_Check(value)) {
            Py_ssize_t k = PySequence_Size(value);
            if (k < 1 || k > 4) {
                PyErr_Format(PyExc_ValueError, "layer '%s': '%s' takes 1 to 4 values", name, h->key);
                return NULL;
            }
            h->count = (int)k;
            for (Py_ssize_t i = 0; i < k; i++) {
                PyObject *item = PySequence_GetItem(value, i);
                h->v[i] = item ? PyFloat_AsDouble(item) : -1;
                Py_XDECREF(item);
                if (PyErr_Occurred()) return NULL;
            }
        } else {
            h->count = 1;
            h->v[0] = PyFloat_AsDouble(value);
            if (PyErr_Occurred()) return NULL;
        }
    }
    int id = -1;
    cd_status st = cd_graph_add_layer(self->graph, kind, name, num_inputs, inputs, hp, num_hp, &id);
    return id_or_raise(st, id);
}

/* ---- queries, weights ---- */

static PyObject *Graph_num_layers(GraphObject *self, PyObject *unused) {
    return PyLong_FromLong(cd_graph_num_layers(self->graph));
}

static PyObject *Graph_layer_info(GraphObject *self, PyObject *arg) {
    int layer = (int)PyLong_AsLong(arg);
    if (PyErr_Occurred()) return NULL;
    cd_layer_info info;
    cd_status s = cd_graph_layer_info(self->graph, layer, &info);
    if (s != CD_OK) return cd_py_raise(s);
    PyObject *shape = info.out_rank == 3
                          ? Py_BuildValue("(iii)", info.out_shape[0], info.out_shape[1],
                                          info.out_shape[2])
                          : Py_BuildValue("(i)", info.out_shape[0]);
    PyObject *inputs = PyTuple_New(info.num_inputs);
    if (!inputs) return NULL;
    for (int j = 0; j < info.num_inputs; j++) {
        PyObject *v = PyLong_FromLong(info.inputs[j]);
        if (!v) {
            Py_DECREF(inputs);
            return NULL;
        }
        PyTuple_SET_ITEM(inputs, j, v);
    }
    return Py_BuildValue("{s:s,s:s,s:N,s:N,s:i,s:O,s:i,s:O,s:O,s:n,s:i}", "name", info.name, "kind",
                         info.kind, "inputs", inputs, "shape", shape, "num_weights",
                         info.num_weights, "trainable", info.trainable ? Py_True : Py_False,
                         "mode", (int)info.mode, "needs_grad",
                         info.needs_grad ? Py_True : Py_False, "kept",
                         info.kept ? Py_True : Py_False, "kept_floats",
                         (Py_ssize_t)info.kept_floats, "fused_into", info.fused_into);
}

static PyObject *Graph_find_layer(GraphObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
    int layer = -1;
    cd_status s = cd_graph_find_layer(self->graph, name, &layer);
    if (s != CD_OK) return cd_py_raise(s);
    return PyLong_FromLong(layer);
}

static PyObject *Graph_weight_info(GraphObject *self, PyObject *args) {
    int layer, w;
    if (!PyArg_ParseTuple(args, "ii", &layer, &w)) return NULL;
    cd_weight_info info;
    cd_status s = cd_graph_weight_info(self->graph, layer, w, &info);
    if (s != CD_OK) return cd_py_raise(s);
    PyObject *shape = PyTuple_New(info.ndim);
    for (int d = 0; d < info.ndim; d++) PyTuple_SET_ITEM(shape, d, PyLong_FromLong(info.dims[d]));
    return Py_BuildValue("(sNO)", info.name, shape, info.trainable ? Py_True : Py_False);
}

/* A float array shaped like weight w of `layer`, holding its value, its gradient or its
 * optimizer slot `slot`. */
typedef enum { READ_VALUE, READ_GRADIENT, READ_OPT_SLOT } weight_read;
static PyObject *read_weight(GraphObject *self, int layer, int w, weight_read what, int slot) {
    cd_weight_info info;
    cd_status s = cd_graph_weight_info(self->graph, layer, w, &info);
    if (s != CD_OK) return cd_py_raise(s);
    npy_intp dims[CD_MAX_DIMS];
    for (int d = 0; d < info.ndim; d++) dims[d] = info.dims[d];
    PyObject *out = new_float_array(info.ndim, dims);
    if (!out) return NULL;
    float *dst = PyArray_DATA((PyArrayObject *)out);
    s = what == READ_VALUE      ? cd_graph_get_weight(self->graph, layer, w, dst, info.size)
        : what == READ_GRADIENT ? cd_graph_get_gradient(self->graph, layer, w, dst, info.size)
                                : cd_graph_get_opt_slot(self->graph, layer, w, slot, dst, info.size);
    if (s != CD_OK) {
        Py_DECREF(out);
        return cd_py_raise(s);
    }
    return out;
}

static PyObject *Graph_get_weight(GraphObject *self, PyObject *args) {
    int layer, w;
    if (!PyArg_ParseTuple(args, "ii", &layer, &w) || check_graph(self)) return NULL;
    return read_weight(self, layer, w, READ_VALUE, 0);
}

/* Shape check naming the layer and weight, so a mismatch reads like Keras's. */
static int check_weight_shape(GraphObject *self, int layer, int w, PyArrayObject *a,
                              cd_weight_info *info) {
    cd_status s = cd_graph_weight_info(self->graph, layer, w, info);
    if (s != CD_OK) {
        cd_py_raise(s);
        return -1;
    }
    cd_layer_info li;
    cd_graph_layer_info(self->graph, layer, &li);
    int same = PyArray_NDIM(a) == info->ndim;
    for (int d = 0; same && d < info->ndim; d++) same = PyArray_DIMS(a)[d] == info->dims[d];
    if (!same) {
        char want[96] = "", got[96] = "";
        int o = 0;
        for (int d = 0; d < info->ndim; d++)
            o += snprintf(want + o, sizeof want - o, d ? ", %d" : "%d", info->dims[d]);
        o = 0;
        for (int d = 0; d < PyArray_NDIM(a) && o < (int)sizeof got - 16; d++)
            o += snprintf(got + o, sizeof got - o, d ? ", %ld" : "%ld", (long)PyArray_DIMS(a)[d]);
        PyErr_Format(PyExc_ValueError, "layer '%s' weight '%s' has shape (%s), got (%s)",
                     li.name, info->name, want, got);
        return -1;
    }
    return 0;
}

static PyObject *Graph_set_weight(GraphObject *self, PyObject *args) {
    int layer, w;
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "iiO", &layer, &w, &obj) || check_graph(self)) return NULL;
    cd_layer_info li;
    cd_status s = cd_graph_layer_info(self->graph, layer, &li);
    if (s != CD_OK) return cd_py_raise(s);
    char what[200];
    cd_weight_info info;
    s = cd_graph_weight_info(self->graph, layer, w, &info);
    if (s != CD_OK) return cd_py_raise(s);
    snprintf(what, sizeof what, "weight '%s' of layer '%s'", info.name, li.name);
    PyArrayObject *a = float_array(obj, -1, what);
    if (!a) return NULL;
    if (check_weight_shape(self, layer, w, a, &info)) {
        Py_DECREF(a);
        return NULL;
    }
    s = cd_graph_set_weight(self->graph, layer, w, PyArray_DATA(a), info.size);
    Py_DECREF(a);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *Graph_set_trainable(GraphObject *self, PyObject *args) {
    int layer, flag;
    if (!PyArg_ParseTuple(args, "ip", &layer, &flag) || check_graph(self)) return NULL;
    cd_status s = cd_graph_set_trainable(self->graph, layer, flag);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *Graph_set_mode(GraphObject *self, PyObject *args) {
    int layer, mode;
    if (!PyArg_ParseTuple(args, "ii", &layer, &mode) || check_graph(self)) return NULL;
    cd_status s = cd_graph_set_mode(self->graph, layer, (cd_mode)mode);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *Graph_set_seed(GraphObject *self, PyObject *arg) {
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(arg);
    if (PyErr_Occurred() || check_graph(self)) return NULL;
    cd_graph_set_seed(self->graph, seed);
    Py_RETURN_NONE;
}

/* ---- execution ---- */

/* forward(x, training=False, keep=KEEP_ALL): keep is a cd_keep (module constants KEEP_*). */
static PyObject *Graph_forward(GraphObject *self, PyObject *args) {
    PyObject *obj;
    int training = 0, keep = CD_KEEP_ALL;
    if (!PyArg_ParseTuple(args, "O|pi", &obj, &training, &keep) || check_graph(self))
        return NULL;
    if (keep != CD_KEEP_ALL && keep != CD_KEEP_FOR_BACKWARD && keep != CD_KEEP_LAST) {
        PyErr_Format(PyExc_ValueError, "keep must be KEEP_ALL (%d), KEEP_FOR_BACKWARD (%d) or "
                     "KEEP_LAST (%d), got %d", CD_KEEP_ALL, CD_KEEP_FOR_BACKWARD, CD_KEEP_LAST, keep);
        return NULL;
    }
    if (keep == CD_KEEP_LAST && training) {
        PyErr_SetString(PyExc_ValueError, "a lean forward (KEEP_LAST) is inference only");
        return NULL;
    }
    PyArrayObject *x = float_array(obj, 4, "input batch");
    if (!x) return NULL;
    int n = check_input_batch(self, x);
    if (n < 0) {
        Py_DECREF(x);
        return NULL;
    }
    cd_status s;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    s = cd_graph_run_forward(self->graph, PyArray_DATA(x), n, training, (cd_keep)keep);
    Py_END_ALLOW_THREADS self->busy = 0;
    Py_DECREF(x);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

/* describe_plan(n, training, keep) -> str: the steps a forward would run */
static PyObject *Graph_describe_plan(GraphObject *self, PyObject *args) {
    int n, training, keep;
    if (!PyArg_ParseTuple(args, "ipi", &n, &training, &keep) || check_graph(self)) return NULL;
    size_t need = 0;
    cd_status s = cd_graph_describe_plan(self->graph, n, training, (cd_keep)keep, NULL, 0, &need);
    if (s != CD_OK) return cd_py_raise(s);
    char *buf = PyMem_Malloc(need + 1);
    if (!buf) return PyErr_NoMemory();
    s = cd_graph_describe_plan(self->graph, n, training, (cd_keep)keep, buf, need + 1, &need);
    PyObject *out = s == CD_OK ? PyUnicode_FromString(buf) : cd_py_raise(s);
    PyMem_Free(buf);
    return out;
}

static PyObject *Graph_get_output(GraphObject *self, PyObject *args) {
    int layer, n;
    if (!PyArg_ParseTuple(args, "ii", &layer, &n) || check_graph(self)) return NULL;
    npy_intp dims[4];
    int nd = output_dims(self->graph, layer, n, dims);
    if (nd < 0) return cd_py_raise(CD_ERR_VALUE);
    PyObject *out = new_float_array(nd, dims);
    if (!out) return NULL;
    cd_status s = cd_graph_get_output(self->graph, layer, PyArray_DATA((PyArrayObject *)out),
                                      (size_t)PyArray_SIZE((PyArrayObject *)out));
    if (s != CD_OK) {
        Py_DECREF(out);
        return cd_py_raise(s);
    }
    return out;
}

static PyObject *Graph_backward(GraphObject *self, PyObject *args) {
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "O", &obj) || check_graph(self)) return NULL;
    PyArrayObject *dy = float_array(obj, -1, "output gradient");
    if (!dy) return NULL;
    int last = cd_graph_num_layers(self->graph) - 1;
    npy_intp dims[4];
    int nd = output_dims(self->graph, last, (int)PyArray_DIMS(dy)[0], dims);
    int same = nd == PyArray_NDIM(dy);
    for (int d = 0; same && d < nd; d++) same = dims[d] == PyArray_DIMS(dy)[d];
    if (!same) {
        Py_DECREF(dy);
        PyErr_SetString(PyExc_ValueError,
                        "output gradient must have the shape of the last forward's output");
        return NULL;
    }
    cd_status s;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS s = cd_graph_backward(self->graph, PyArray_DATA(dy));
    Py_END_ALLOW_THREADS self->busy = 0;
    Py_DECREF(dy);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *Graph_get_gradient(GraphObject *self, PyObject *args) {
    int layer, w;
    if (!PyArg_ParseTuple(args, "ii", &layer, &w) || check_graph(self)) return NULL;
    return read_weight(self, layer, w, READ_GRADIENT, 0);
}

/* The optimizer's state (catdog.h cd_graph_*_opt_*): slot `s` of layer `layer` weight `w`. */
static PyObject *Graph_get_opt_slot(GraphObject *self, PyObject *args) {
    int layer, w, slot;
    if (!PyArg_ParseTuple(args, "iii", &layer, &w, &slot) || check_graph(self)) return NULL;
    return read_weight(self, layer, w, READ_OPT_SLOT, slot);
}

static PyObject *Graph_set_opt_slot(GraphObject *self, PyObject *args) {
    int layer, w, slot;
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "iiiO", &layer, &w, &slot, &obj) || check_graph(self))
        return NULL;
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(obj, NPY_FLOAT32, 0, 0,
                                                        NPY_ARRAY_IN_ARRAY);
    if (!a) return NULL;
    cd_status s = cd_graph_set_opt_slot(self->graph, layer, w, slot, PyArray_DATA(a),
                                        (size_t)PyArray_SIZE(a));
    Py_DECREF(a);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *Graph_opt_slots(GraphObject *self, PyObject *unused) {
    (void)unused;
    if (check_graph(self)) return NULL;
    return PyLong_FromLong(cd_graph_opt_slots(self->graph));
}

static PyObject *Graph_opt_iterations(GraphObject *self, PyObject *args) {
    long long t = -1;
    if (!PyArg_ParseTuple(args, "|L", &t) || check_graph(self)) return NULL;
    if (t >= 0) {
        cd_status s = cd_graph_set_opt_iterations(self->graph, (int64_t)t);
        if (s != CD_OK) return cd_py_raise(s);
    }
    return PyLong_FromLongLong(cd_graph_opt_iterations(self->graph));
}

/* kwargs[name] as a float (default when absent); -1 with an exception set. */
static int kw_float(PyObject *kw, const char *name, float def, float *out) {
    PyObject *v = kw ? PyDict_GetItemString(kw, name) : NULL;
    *out = def;
    if (!v) return 0;
    double d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) return -1;
    *out = (float)d;
    return 0;
}

static int kw_bool(PyObject *kw, const char *name, int *out) {
    PyObject *v = kw ? PyDict_GetItemString(kw, name) : NULL;
    *out = 0;
    if (!v) return 0;
    int b = PyObject_IsTrue(v);
    if (b < 0) return -1;
    *out = b;
    return 0;
}

/* compile(optimizer kind (OPT_*), learning_rate, loss kind (LOSS_*), **the kind's own
 * hyperparameters with Keras's names and defaults) */
static PyObject *Graph_compile(GraphObject *self, PyObject *args, PyObject *kw) {
    int kind, loss;
    float lr;
    if (!PyArg_ParseTuple(args, "ifi", &kind, &lr, &loss) || check_graph(self)) return NULL;
    cd_optimizer_config c;
    memset(&c, 0, sizeof c);
    c.kind = (cd_optimizer_kind)kind;
    c.learning_rate = lr;
    static const char *const sgd_keys[] = {"momentum", "nesterov", NULL};
    static const char *const adam_keys[] = {"beta_1", "beta_2", "epsilon", NULL};
    static const char *const rms_keys[] = {"rho", "momentum", "epsilon", "centered", NULL};
    const char *const *keys = NULL;
    int err = 0;
    switch (c.kind) {
        case CD_OPT_SGD:
            keys = sgd_keys;
            err = kw_float(kw, "momentum", 0.f, &c.u.sgd.momentum) ||
                  kw_bool(kw, "nesterov", &c.u.sgd.nesterov);
            break;
        case CD_OPT_ADAM:
            keys = adam_keys;
            err = kw_float(kw, "beta_1", 0.9f, &c.u.adam.beta_1) ||
                  kw_float(kw, "beta_2", 0.999f, &c.u.adam.beta_2) ||
                  kw_float(kw, "epsilon", 1e-7f, &c.u.adam.epsilon);
            break;
        case CD_OPT_RMSPROP:
            keys = rms_keys;
            err = kw_float(kw, "rho", 0.9f, &c.u.rmsprop.rho) ||
                  kw_float(kw, "momentum", 0.f, &c.u.rmsprop.momentum) ||
                  kw_float(kw, "epsilon", 1e-7f, &c.u.rmsprop.epsilon) ||
                  kw_bool(kw, "centered", &c.u.rmsprop.centered);
            break;
        default: break; /* cd_graph_compile names the unknown kind */
    }
    if (err) return NULL;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (keys && kw && PyDict_Next(kw, &pos, &key, &value)) {
        const char *k = PyUnicode_AsUTF8(key);
        if (!k) return NULL;
        int known = 0;
        for (int i = 0; keys[i]; i++) known |= strcmp(keys[i], k) == 0;
        if (!known) {
            PyErr_Format(PyExc_TypeError, "optimizer kind %d has no hyperparameter '%s'", kind, k);
            return NULL;
        }
    }
    cd_status s = cd_graph_compile(self->graph, &c, (cd_loss_kind)loss);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *Graph_set_learning_rate(GraphObject *self, PyObject *arg) {
    double lr = PyFloat_AsDouble(arg);
    if (PyErr_Occurred() || check_graph(self)) return NULL;
    cd_status s = cd_graph_set_learning_rate(self->graph, (float)lr);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *Graph_set_accuracy_threshold(GraphObject *self, PyObject *arg) {
    double t = PyFloat_AsDouble(arg);
    if (PyErr_Occurred() || check_graph(self)) return NULL;
    cd_status s = cd_graph_set_accuracy_threshold(self->graph, (float)t);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

/* The (x, y) pair of a batch call: x a float32 (n, H, W, C) input batch, y any float32 array
 * (labels, an output gradient) named `y_what`. Returns n, or -1 with the exception set and
 * both references released. */
static int batch_pair(GraphObject *self, PyObject *xo, PyObject *yo, const char *y_what,
                      PyArrayObject **x, PyArrayObject **y) {
    *x = float_array(xo, 4, "input batch");
    if (!*x) return -1;
    *y = float_array(yo, -1, y_what);
    if (!*y) {
        Py_DECREF(*x);
        return -1;
    }
    int n = check_input_batch(self, *x);
    if (n < 0) {
        Py_DECREF(*x);
        Py_DECREF(*y);
    }
    return n;
}

/* y must hold `width` values per image of the n in x; else a ValueError, both references
 * released, and -1. */
static int check_label_count(int n, PyArrayObject *x, PyArrayObject *y, int width) {
    if (PyArray_SIZE(y) == (npy_intp)n * width) return 0;
    if (width == 1)
        PyErr_Format(PyExc_ValueError, "got %d images but %ld labels", n, (long)PyArray_SIZE(y));
    else
        PyErr_Format(PyExc_ValueError, "got %d images but %ld label values (the loss takes %d "
                     "per image: one-hot labels, label_mode='categorical')", n,
                     (long)PyArray_SIZE(y), width);
    Py_DECREF(x);
    Py_DECREF(y);
    return -1;
}

static PyObject *run_step(GraphObject *self, PyObject *args, int train) {
    PyObject *xo, *yo;
    if (!PyArg_ParseTuple(args, "OO", &xo, &yo) || check_graph(self)) return NULL;
    PyArrayObject *x, *y;
    int n = batch_pair(self, xo, yo, "labels", &x, &y);
    if (n < 0) return NULL;
    if (check_label_count(n, x, y, cd_graph_label_width(self->graph)) < 0) return NULL;
    float loss = 0.f;
    double correct = 0;
    cd_status s;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS s =
        train ? cd_graph_train_step(self->graph, PyArray_DATA(x), PyArray_DATA(y), n, &loss,
                                    &correct)
              : cd_graph_eval_step(self->graph, PyArray_DATA(x), PyArray_DATA(y), n, &loss,
                                   &correct);
    Py_END_ALLOW_THREADS self->busy = 0;
    Py_DECREF(x);
    Py_DECREF(y);
    if (s != CD_OK) return cd_py_raise(s);
    return Py_BuildValue("(fd)", loss, correct);
}

/* loss_backward(x, labels, loss kind, training) -> loss: gradients of that loss (every output
 * kept), no optimizer update. */
static PyObject *Graph_loss_backward(GraphObject *self, PyObject *args) {
    PyObject *xo, *yo;
    int kind, training = 0;
    if (!PyArg_ParseTuple(args, "OOi|p", &xo, &yo, &kind, &training) || check_graph(self))
        return NULL;
    if (!cd_loss_valid((cd_loss_kind)kind)) {
        PyErr_Format(PyExc_ValueError, "unknown loss %d", kind);
        return NULL;
    }
    PyArrayObject *x, *y;
    int n = batch_pair(self, xo, yo, "labels", &x, &y);
    if (n < 0) return NULL;
    cd_layer_info li;
    int last = cd_graph_num_layers(self->graph) - 1;
    if (cd_graph_layer_info(self->graph, last, &li) == CD_OK &&
        check_label_count(n, x, y, cd_loss_label_width((cd_loss_kind)kind, li.out_shape[0])) < 0)
        return NULL;
    float loss = 0.f;
    cd_status s;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS s = cd_graph_loss_backward(self->graph, PyArray_DATA(x), PyArray_DATA(y),
                                                      n, training, (cd_loss_kind)kind, &loss);
    Py_END_ALLOW_THREADS self->busy = 0;
    Py_DECREF(x);
    Py_DECREF(y);
    if (s != CD_OK) return cd_py_raise(s);
    return PyFloat_FromDouble(loss);
}

/* output_gradient(x, layer, dy, training=False, logits=False) -> d sum(output * dy) / d layer
 * output (logits: output = a sigmoid/softmax head's logits) */
static PyObject *Graph_output_gradient(GraphObject *self, PyObject *args) {
    PyObject *xo, *dyo;
    int layer, training = 0, logits = 0;
    if (!PyArg_ParseTuple(args, "OiO|pp", &xo, &layer, &dyo, &training, &logits) ||
        check_graph(self))
        return NULL;
    PyArrayObject *x, *dy;
    int n = batch_pair(self, xo, dyo, "output gradient", &x, &dy);
    if (n < 0) return NULL;
    npy_intp out_dims[4], dims[4];
    int last = cd_graph_num_layers(self->graph) - 1;
    int out_nd = output_dims(self->graph, last, n, out_dims);
    int same = out_nd == PyArray_NDIM(dy);
    for (int d = 0; same && d < out_nd; d++) same = out_dims[d] == PyArray_DIMS(dy)[d];
    int nd = -1;
    if (!same)
        PyErr_SetString(PyExc_ValueError, "output gradient must have the shape of the output");
    else if ((nd = output_dims(self->graph, layer, n, dims)) < 0)
        PyErr_Format(PyExc_ValueError, "no layer %d", layer);
    PyObject *out = nd > 0 ? new_float_array(nd, dims) : NULL;
    if (!out) {
        Py_DECREF(x);
        Py_DECREF(dy);
        return NULL;
    }
    cd_status s;
    size_t count = (size_t)PyArray_SIZE((PyArrayObject *)out);
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS s = cd_graph_output_gradient(self->graph, PyArray_DATA(x), n, training,
                                                        layer, logits, PyArray_DATA(dy),
                                                        PyArray_DATA((PyArrayObject *)out), count);
    Py_END_ALLOW_THREADS self->busy = 0;
    Py_DECREF(x);
    Py_DECREF(dy);
    if (s != CD_OK) {
        Py_DECREF(out);
        return cd_py_raise(s);
    }
    return out;
}

static PyObject *Graph_train_step(GraphObject *self, PyObject *args) { return run_step(self, args, 1); }
static PyObject *Graph_eval_step(GraphObject *self, PyObject *args) { return run_step(self, args, 0); }

/* ---- a whole epoch: run_epoch(loader, train, callback) ---- */

typedef struct {
    PyObject *callback;   /* callable(batches, samples, loss_sum, correct) -> stop? or None */
    int failed;           /* a Python exception (incl. KeyboardInterrupt) is pending */
} epoch_ctx;

/* Called from C after each batch, without the GIL: take it, report, look for Ctrl-C. */
static int epoch_progress(void *p, const cd_epoch_stats *st) {
    epoch_ctx *ctx = p;
    PyGILState_STATE gil = PyGILState_Ensure();
    int stop = 0;
    if (ctx->callback != Py_None) {
        PyObject *r = PyObject_CallFunction(ctx->callback, "LLdd", (long long)st->batches,
                                            (long long)st->samples, st->loss_sum, st->correct);
        if (!r) {
            ctx->failed = 1;
            stop = 1;
        } else {
            stop = PyObject_IsTrue(r) > 0;
            Py_DECREF(r);
        }
    }
    if (!stop && PyErr_CheckSignals() < 0) {
        ctx->failed = 1;
        stop = 1;
    }
    PyGILState_Release(gil);
    return stop;
}

static PyObject *epoch_stats(const cd_epoch_stats *st) {
    return Py_BuildValue("{s:L,s:L,s:d,s:d,s:O}", "batches", (long long)st->batches, "samples",
                         (long long)st->samples, "loss_sum", st->loss_sum, "correct", st->correct,
                         "stopped", st->stopped ? Py_True : Py_False);
}

static PyObject *Graph_run_epoch(GraphObject *self, PyObject *args) {
    PyObject *loader_obj, *callback = Py_None;
    int train;
    unsigned long long key = 0;
    if (!PyArg_ParseTuple(args, "Op|OK", &loader_obj, &train, &callback, &key) || check_graph(self))
        return NULL;
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback must be callable or None");
        return NULL;
    }
    PyObject *cap = PyObject_CallMethod(loader_obj, "capsule", NULL);
    if (!cap) return NULL;
    cd_loader *loader = PyCapsule_GetPointer(cap, "catdog.cd_loader");
    Py_DECREF(cap);
    if (!loader) return NULL;
    epoch_ctx ctx = {callback, 0};
    cd_epoch_stats st;
    cd_status s;
    Py_INCREF(loader_obj); /* the loader must outlive the call */
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS s = cd_graph_run_epoch_keyed(self->graph, loader, train, (uint64_t)key,
                                                        epoch_progress, &ctx, &st);
    Py_END_ALLOW_THREADS self->busy = 0;
    Py_DECREF(loader_obj);
    if (ctx.failed) return NULL; /* the callback's exception or KeyboardInterrupt */
    if (s != CD_OK) return cd_py_raise(s);
    return epoch_stats(&st);
}

/* eval_cached(key, callback=None) -> stats, or None when no valid record is held */
static PyObject *Graph_eval_cached(GraphObject *self, PyObject *args) {
    PyObject *callback = Py_None;
    unsigned long long key;
    if (!PyArg_ParseTuple(args, "K|O", &key, &callback) || check_graph(self)) return NULL;
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback must be callable or None");
        return NULL;
    }
    epoch_ctx ctx = {callback, 0};
    cd_epoch_stats st;
    cd_status s;
    int hit = 0;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS s = cd_graph_eval_epoch_cached(self->graph, (uint64_t)key, epoch_progress,
                                                          &ctx, &st, &hit);
    Py_END_ALLOW_THREADS self->busy = 0;
    if (ctx.failed) return NULL;
    if (s != CD_OK) return cd_py_raise(s);
    if (!hit) Py_RETURN_NONE;
    return epoch_stats(&st);
}

static PyObject *Graph_set_feature_cache_limit(GraphObject *self, PyObject *arg) {
    unsigned long long bytes = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred() || check_graph(self)) return NULL;
    cd_status s = cd_graph_set_feature_cache_limit(self->graph, (size_t)bytes);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *Graph_feature_cache_info(GraphObject *self, PyObject *unused) {
    if (check_graph(self)) return NULL;
    cd_feature_cache_info i;
    cd_graph_feature_cache_info(self->graph, &i);
    return Py_BuildValue("{s:O,s:i,s:K,s:K,s:L,s:L}", "valid", i.valid ? Py_True : Py_False,
                         "cut", i.cut, "bytes", (unsigned long long)i.bytes, "limit",
                         (unsigned long long)i.limit, "hits", (long long)i.hits, "records",
                         (long long)i.records);
}

static PyObject *Graph_step_count(GraphObject *self, PyObject *unused) {
    return PyLong_FromLongLong(cd_graph_step_count(self->graph));
}

static PyMethodDef Graph_methods[] = {
    {"add_layer", (PyCFunction)(void (*)(void))Graph_add_layer, METH_VARARGS | METH_KEYWORDS,
     "(kind, name, inputs, **hyperparameters) -> layer index (catdog.h lists each kind's)"},
    {"num_layers", (PyCFunction)Graph_num_layers, METH_NOARGS, ""},
    {"layer_info", (PyCFunction)Graph_layer_info, METH_O, "layer index -> dict"},
    {"find_layer", (PyCFunction)Graph_find_layer, METH_O, "name -> layer index"},
    {"weight_info", (PyCFunction)Graph_weight_info, METH_VARARGS, "(layer, w) -> (name, shape, trainable)"},
    {"get_weight", (PyCFunction)Graph_get_weight, METH_VARARGS, "(layer, w) -> copy"},
    {"set_weight", (PyCFunction)Graph_set_weight, METH_VARARGS, "(layer, w, float32 array)"},
    {"set_trainable", (PyCFunction)Graph_set_trainable, METH_VARARGS, "(layer, flag)"},
    {"set_mode", (PyCFunction)Graph_set_mode, METH_VARARGS, "(layer, MODE_*)"},
    {"set_seed", (PyCFunction)Graph_set_seed, METH_O, "seed for dropout"},
    {"forward", (PyCFunction)Graph_forward, METH_VARARGS, "(x float32 NHWC, training=False, keep=KEEP_ALL)"},
    {"describe_plan", (PyCFunction)Graph_describe_plan, METH_VARARGS, "(n, training, keep) -> str"},
    {"get_output", (PyCFunction)Graph_get_output, METH_VARARGS, "(layer, batch) -> array"},
    {"backward", (PyCFunction)Graph_backward, METH_VARARGS, "(d loss / d output)"},
    {"output_gradient", (PyCFunction)Graph_output_gradient, METH_VARARGS,
     "(x, layer, dy, training=False, logits=False) -> d sum(output * dy) / d layer output"},
    {"loss_backward", (PyCFunction)Graph_loss_backward, METH_VARARGS,
     "(x, labels, loss kind, training=False) -> loss; gradients as a training step's"},
    {"get_gradient", (PyCFunction)Graph_get_gradient, METH_VARARGS, "(layer, w) -> array"},
    {"compile", (PyCFunction)(void (*)(void))Graph_compile, METH_VARARGS | METH_KEYWORDS,
     "(optimizer kind OPT_*, learning_rate, loss kind LOSS_*, **the optimizer's hyperparameters)"},
    {"set_learning_rate", (PyCFunction)Graph_set_learning_rate, METH_O, ""},
    {"set_accuracy_threshold", (PyCFunction)Graph_set_accuracy_threshold, METH_O, ""},
    {"train_step", (PyCFunction)Graph_train_step, METH_VARARGS, "(x, labels) -> (loss, correct)"},
    {"eval_step", (PyCFunction)Graph_eval_step, METH_VARARGS, "(x, labels) -> (loss, correct)"},
    {"step_count", (PyCFunction)Graph_step_count, METH_NOARGS, ""},
    {"get_opt_slot", (PyCFunction)Graph_get_opt_slot, METH_VARARGS, "(layer, w, slot) -> array"},
    {"set_opt_slot", (PyCFunction)Graph_set_opt_slot, METH_VARARGS, "(layer, w, slot, array)"},
    {"opt_slots", (PyCFunction)Graph_opt_slots, METH_NOARGS, "slots per trainable weight"},
    {"opt_iterations", (PyCFunction)Graph_opt_iterations, METH_VARARGS,
     "([iterations]) -> Keras optimizer.iterations (sets it when given)"},
    {"run_epoch", (PyCFunction)Graph_run_epoch, METH_VARARGS,
     "(loader, train, callback=None, key=0) -> stats: a whole epoch in C, GIL released; an "
     "evaluation epoch with a nonzero key records the feature cache"},
    {"eval_cached", (PyCFunction)Graph_eval_cached, METH_VARARGS,
     "(key, callback=None) -> stats of an evaluation epoch replayed from the feature cache, or None"},
    {"set_feature_cache_limit", (PyCFunction)Graph_set_feature_cache_limit, METH_O, "(bytes; 0: off)"},
    {"feature_cache_info", (PyCFunction)Graph_feature_cache_info, METH_NOARGS, "-> dict"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GraphType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "catdog._engine.Graph",
    .tp_basicsize = sizeof(GraphObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A chain of Keras layers run by the C engine.",
    .tp_new = Graph_new,
    .tp_dealloc = (destructor)Graph_dealloc,
    .tp_methods = Graph_methods,
};

/* loss(kind, outputs (n, k), labels (n) or (n, k)) -> (loss, doutputs) */
static PyObject *py_loss(PyObject *self, PyObject *args) {
    int kind;
    PyObject *lo, *yo;
    if (!PyArg_ParseTuple(args, "iOO", &kind, &lo, &yo)) return NULL;
    PyArrayObject *z = float_array(lo, 2, "logits");
    if (!z) return NULL;
    PyArrayObject *y = float_array(yo, -1, "labels");
    if (!y) {
        Py_DECREF(z);
        return NULL;
    }
    if (!cd_loss_valid((cd_loss_kind)kind)) {
        Py_DECREF(z), Py_DECREF(y);
        PyErr_Format(PyExc_ValueError, "unknown loss %d", kind);
        return NULL;
    }
    int n = (int)PyArray_DIMS(z)[0], k = (int)PyArray_DIMS(z)[1];
    int width = cd_loss_label_width((cd_loss_kind)kind, k);
    if (PyArray_NDIM(y) < 1 || PyArray_DIMS(y)[0] != n || PyArray_SIZE(y) != (npy_intp)n * width) {
        Py_DECREF(z), Py_DECREF(y);
        PyErr_Format(PyExc_ValueError, "labels must be (%d%s) for %d outputs of %d values", n,
                     width == 1 ? "," : ", k", n, k);
        return NULL;
    }
    PyObject *d = new_float_array(2, PyArray_DIMS(z));
    float loss = 0;
    cd_status s = d ? cd_loss((cd_loss_kind)kind, PyArray_DATA(z), PyArray_DATA(y), n, k, &loss,
                              PyArray_DATA((PyArrayObject *)d))
                    : CD_ERR_MEMORY;
    Py_DECREF(z), Py_DECREF(y);
    if (s != CD_OK) {
        Py_XDECREF(d);
        return cd_py_raise(s);
    }
    return Py_BuildValue("(fN)", loss, d);
}

static PyMethodDef engine_functions[] = {
    {"loss", py_loss, METH_VARARGS, "(kind, logits, labels) -> (loss, dlogits)"},
    {NULL, NULL, 0, NULL},
};

int cd_py_register_engine(PyObject *module) {
    if (PyType_Ready(&GraphType) < 0) return -1;
    Py_INCREF(&GraphType);
    if (PyModule_AddObject(module, "Graph", (PyObject *)&GraphType) < 0) return -1;
    return PyModule_AddFunctions(module, engine_functions);
}
