/* module.c — the CPython extension catdog._engine: module init, errors, runtime calls.
 * Graph and data types are registered by engine.c and data.c. */
#include "binding/common.h"

#include <string.h>

#define PY_ARRAY_UNIQUE_SYMBOL catdog_ARRAY_API
#include <numpy/arrayobject.h>

PyObject *cd_py_raise(cd_status s) {
    const char *msg = cd_last_error();
    PyObject *type = PyExc_RuntimeError;
    switch (s) {
        case CD_ERR_VALUE: type = PyExc_ValueError; break;
        case CD_ERR_MEMORY: type = PyExc_MemoryError; break;
        case CD_ERR_IO: type = PyExc_OSError; break;
        case CD_ERR_NUMERIC: type = PyExc_FloatingPointError; break;
        default: break;
    }
    PyErr_SetString(type, msg && *msg ? msg : "catdog engine error");
    return NULL;
}

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    cd_status s = cd_runtime_init();
    if (s == CD_OK) s = cd_set_num_threads((int)n);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *unused) {
    return PyLong_FromLong(cd_get_num_threads());
}

static PyObject *py_onednn_version(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(cd_onednn_version());
}

static PyObject *py_init(PyObject *self, PyObject *unused) {
    cd_status s = cd_runtime_init();
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *py_set_precision(PyObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
    cd_precision p;
    if (strcmp(name, "fp32") == 0 || strcmp(name, "float32") == 0) p = CD_PRECISION_FP32;
    else if (strcmp(name, "bf16") == 0 || strcmp(name, "bfloat16") == 0) p = CD_PRECISION_BF16;
    else {
        PyErr_Format(PyExc_ValueError, "precision must be 'fp32' or 'bf16', got '%s'", name);
        return NULL;
    }
    cd_status s = cd_runtime_init();
    if (s == CD_OK) s = cd_set_precision(p);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *py_get_precision(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(cd_get_precision() == CD_PRECISION_BF16 ? "bf16" : "fp32");
}

/* The layer kinds the engine has (nn/kinds.c), by Keras class name. */
static PyObject *py_layer_kinds(PyObject *self, PyObject *unused) {
    const int n = cd_num_layer_kinds();
    PyObject *t = PyTuple_New(n);
    if (!t) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *s = PyUnicode_FromString(cd_layer_kind_name(i));
        if (!s) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

/* catdog.h's codes, exported under their names without the CD_ prefix: the one source the
 * Python side reads them from. */
#define CODE(x) {#x, CD_##x}
static const struct {
    const char *name;
    long value;
} codes[] = {
    CODE(KEEP_ALL),  CODE(KEEP_FOR_BACKWARD), CODE(KEEP_LAST),
    CODE(MODE_INHERIT), CODE(MODE_INFERENCE), CODE(MODE_TRAINING),
    CODE(ACT_NONE), CODE(ACT_SOFTMAX), CODE(ACT_SIGMOID),
    CODE(ACTIVATION_LINEAR), CODE(ACTIVATION_RELU), CODE(ACTIVATION_RELU6),
    CODE(ACTIVATION_SIGMOID), CODE(ACTIVATION_TANH), CODE(ACTIVATION_SOFTMAX),
    CODE(ACTIVATION_SILU), CODE(ACTIVATION_HARD_SIGMOID), CODE(ACTIVATION_HARD_SILU),
    CODE(ACTIVATION_GELU), CODE(ACTIVATION_ELU), CODE(ACTIVATION_SELU), CODE(ACTIVATION_SOFTPLUS),
    CODE(OPT_SGD), CODE(OPT_ADAM), CODE(OPT_RMSPROP),
    CODE(LOSS_BCE_LOGITS), CODE(LOSS_SPARSE_CE_LOGITS), CODE(LOSS_BCE), CODE(LOSS_SPARSE_CE),
    CODE(LOSS_CE_LOGITS), CODE(LOSS_CE), CODE(LOSS_MSE), CODE(LOSS_MAE), CODE(LOSS_HUBER),
    CODE(PRECISION_FP32), CODE(PRECISION_BF16),
};
#undef CODE

static PyMethodDef methods[] = {
    {"layer_kinds", py_layer_kinds, METH_NOARGS, "Keras class names of the engine's layer kinds."},
    {"set_precision", py_set_precision, METH_O, "'fp32' or 'bf16' (convolutions in bfloat16)."},
    {"get_precision", py_get_precision, METH_NOARGS, "Current precision."},
    {"init", py_init, METH_NOARGS, "Create the oneDNN engine and stream (idempotent)."},
    {"set_num_threads", py_set_num_threads, METH_O, "Threads for oneDNN and catdog's loops."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "Current thread count."},
    {"onednn_version", py_onednn_version, METH_NOARGS, "oneDNN version string."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "catdog._engine", "catdog's C engine (oneDNN).", -1, methods,
};

PyMODINIT_FUNC PyInit__engine(void) {
    import_array();
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    if (cd_py_register_engine(m) != 0 || cd_py_register_data(m) != 0) {
        Py_DECREF(m);
        return NULL;
    }
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        if (PyModule_AddIntConstant(m, codes[i].name, codes[i].value) != 0) {
            Py_DECREF(m);
            return NULL;
        }
    return m;
}
