/* data.c — binding for the data pipeline (csrc/data): decode/resize/shuffle/augment
 * functions (tests), and the types Dataset and Loader. The engine binding reaches the C
 * handles through capsules: Dataset.capsule() -> "catdog.cd_dataset" (cd_dataset *),
 * Loader.capsule() -> "catdog.cd_loader" (cd_loader *); the pointer lives as long as the
 * Python object, so hold a reference to the object while C uses it. */
#include "binding/common.h"

#include <omp.h>

#define PY_ARRAY_UNIQUE_SYMBOL catdog_ARRAY_API
#define NO_IMPORT_ARRAY
#include <numpy/arrayobject.h>
#include <string.h>

/* ---- argument helpers ---------------------------------------------------------------- */
static int parse_enum(PyObject *obj, const char *what, const char *const *names, int count, int *out) {
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a string", what);
        return 0;
    }
    const char *s = PyUnicode_AsUTF8(obj);
    if (!s) return 0;
    for (int k = 0; k < count; k++)
        if (strcmp(s, names[k]) == 0) {
            *out = k;
            return 1;
        }
    PyErr_Format(PyExc_ValueError, "unknown %s %R", what, obj);
    return 0;
}

static const char *const interp_names[] = {"bilinear", "nearest"};
static const char *const fill_names[] = {"reflect", "wrap", "constant", "nearest"};
static const char *const label_names[] = {"none", "int", "binary", "categorical"};
static const char *const on_error_names[] = {"warn", "skip", "raise"};
static const char *const op_names[] = {"flip",    "rotation", "zoom",      "translation",
                                        "rescale", "contrast", "brightness"};

static int interp_converter(PyObject *o, void *out) { return parse_enum(o, "interpolation", interp_names, 2, out); }
static int fill_converter(PyObject *o, void *out) { return parse_enum(o, "fill_mode", fill_names, 4, out); }

/* (h, w, 3) C-contiguous array of `type`, new reference or NULL. */
static PyArrayObject *image_array(PyObject *obj, int type, int ndim) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(obj, type, ndim, ndim, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!a) return NULL;
    if (PyArray_DIM(a, ndim - 1) != 3 || PyArray_SIZE(a) == 0) {
        PyErr_SetString(PyExc_ValueError, "expected a non-empty array whose last axis is 3 (RGB)");
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

static double dict_float(PyObject *d, const char *key, double dflt, int *err) {
    PyObject *v = PyDict_GetItemString(d, key);
    if (!v) return dflt;
    double x = PyFloat_AsDouble(v);
    if (x == -1.0 && PyErr_Occurred()) *err = 1;
    return x;
}

/* A list of op dicts (catdog.layers.preprocessing's `_cd_op()`) -> malloc'd cd_aug_op array. */
static int parse_ops(PyObject *seq, cd_aug_op **ops, int *num) {
    *ops = NULL;
    *num = 0;
    if (seq == NULL || seq == Py_None) return 1;
    PyObject *fast = PySequence_Fast(seq, "ops must be a sequence of dicts");
    if (!fast) return 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    cd_aug_op *out = n ? PyMem_Calloc((size_t)n, sizeof *out) : NULL;
    if (n && !out) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return 0;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *d = PySequence_Fast_GET_ITEM(fast, k);
        if (!PyDict_Check(d)) {
            PyErr_SetString(PyExc_TypeError, "each op must be a dict");
            goto fail;
        }
        cd_aug_op *op = &out[k];
        int kind = 0, fill = 0, interp = 0, err = 0;
        PyObject *v = PyDict_GetItemString(d, "kind");
        if (!v || !parse_enum(v, "op kind", op_names, 7, &kind)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "op dict needs 'kind'");
            goto fail;
        }
        op->kind = (cd_aug_kind)kind;
        if ((v = PyDict_GetItemString(d, "fill_mode")) && !parse_enum(v, "fill_mode", fill_names, 4, &fill)) goto fail;
        if ((v = PyDict_GetItemString(d, "interpolation")) && !parse_enum(v, "interpolation", interp_names, 2, &interp)) goto fail;
        op->fill_mode = (cd_fill_mode)fill;
        op->interpolation = (cd_interpolation)interp;
        op->horizontal = (int)dict_float(d, "horizontal", 0, &err);
        op->vertical = (int)dict_float(d, "vertical", 0, &err);
        op->lo = (float)dict_float(d, "lo", 0, &err);
        op->hi = (float)dict_float(d, "hi", 0, &err);
        op->lo2 = (float)dict_float(d, "lo2", 0, &err);
        op->hi2 = (float)dict_float(d, "hi2", 0, &err);
        op->has_second = (int)dict_float(d, "has_second", 0, &err);
        op->fill_value = (float)dict_float(d, "fill_value", 0, &err);
        op->scale = (float)dict_float(d, "scale", 1, &err);
        op->offset = (float)dict_float(d, "offset", 0, &err);
        if (err) goto fail;
    }
    Py_DECREF(fast);
    *ops = out;
    *num = (int)n;
    return 1;
fail:
    Py_DECREF(fast);
    PyMem_Free(out);
    return 0;
}

/* ---- functions --------------------------------------------------------------------------- */
static PyObject *image_to_array(cd_image *img) {
    npy_intp dims[3] = {img->height, img->width, 3};
    PyObject *arr = PyArray_SimpleNew(3, dims, NPY_UINT8);
    if (arr) memcpy(PyArray_DATA((PyArrayObject *)arr), img->pixels, (size_t)img->height * img->width * 3);
    cd_image_free(img);
    return arr;
}

static PyObject *py_decode_image(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"data", "max_pixels", NULL};
    Py_buffer buf;
    unsigned long long max_pixels = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|K", kwlist, &buf, &max_pixels)) return NULL;
    cd_image img;
    cd_status s;
    Py_BEGIN_ALLOW_THREADS
    s = cd_decode_image(buf.buf, (size_t)buf.len, (size_t)max_pixels, &img);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    if (s != CD_OK) return cd_py_raise(s);
    return image_to_array(&img);
}

static PyObject *py_decode_file(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", "max_pixels", NULL};
    PyObject *path = NULL;
    unsigned long long max_pixels = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|K", kwlist, PyUnicode_FSConverter, &path, &max_pixels)) return NULL;
    cd_image img;
    cd_status s;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    s = cd_decode_file(p, (size_t)max_pixels, 0, &img);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (s != CD_OK) return cd_py_raise(s);
    return image_to_array(&img);
}

static PyObject *py_resize(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"image", "height", "width", "interpolation", "crop_to_aspect_ratio", NULL};
    PyObject *obj;
    int dh, dw, interp = 0, crop = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oii|O&p", kwlist, &obj, &dh, &dw, interp_converter, &interp, &crop)) return NULL;
    if (dh <= 0 || dw <= 0 || dh > 16384 || dw > 16384) {
        PyErr_SetString(PyExc_ValueError, "height and width must be in [1, 16384]");
        return NULL;
    }
    PyArrayObject *src = image_array(obj, NPY_UINT8, 3);
    if (!src) return NULL;
    const int sh = (int)PyArray_DIM(src, 0), sw = (int)PyArray_DIM(src, 1);
    int y0 = 0, x0 = 0, ch = sh, cw = sw;
    if (crop) cd_crop_box(sh, sw, dh, dw, &y0, &x0, &ch, &cw);
    npy_intp dims[3] = {dh, dw, 3};
    PyObject *out = PyArray_SimpleNew(3, dims, NPY_FLOAT32);
    if (!out) {
        Py_DECREF(src);
        return NULL;
    }
    cd_status s = cd_resize_rgb(PyArray_DATA(src), sh, sw, y0, x0, ch, cw, PyArray_DATA((PyArrayObject *)out), dh, dw, (cd_interpolation)interp);
    Py_DECREF(src);
    if (s != CD_OK) {
        Py_DECREF(out);
        return cd_py_raise(s);
    }
    return out;
}

static PyObject *py_shuffle(PyObject *self, PyObject *args) {
    unsigned long long seed;
    long long epoch;
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "KLO", &seed, &epoch, &obj)) return NULL;
    PyArrayObject *in = (PyArrayObject *)PyArray_FROMANY(obj, NPY_INT64, 1, 1, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!in) return NULL;
    npy_intp n = PyArray_DIM(in, 0);
    PyObject *out = PyArray_SimpleNew(1, &n, NPY_INT64);
    cd_status s = out ? cd_shuffle(seed, epoch, PyArray_DATA(in), n, PyArray_DATA((PyArrayObject *)out)) : CD_OK;
    Py_DECREF(in);
    if (!out) return NULL;
    if (s != CD_OK) {
        Py_DECREF(out);
        return cd_py_raise(s);
    }
    return out;
}

static PyObject *py_affine_transform(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"image", "transform", "fill_mode", "interpolation", "fill_value", NULL};
    PyObject *obj, *tobj;
    int fill = 0, interp = 0;
    float fill_value = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O&O&f", kwlist, &obj, &tobj, fill_converter, &fill, interp_converter, &interp, &fill_value)) return NULL;
    PyArrayObject *src = image_array(obj, NPY_FLOAT32, 3);
    if (!src) return NULL;
    PyArrayObject *t = (PyArrayObject *)PyArray_FROMANY(tobj, NPY_FLOAT32, 1, 1, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!t || PyArray_DIM(t, 0) != 8) {
        if (t) PyErr_SetString(PyExc_ValueError, "transform must have 8 values");
        Py_XDECREF(t);
        Py_DECREF(src);
        return NULL;
    }
    PyObject *out = PyArray_NewLikeArray(src, NPY_CORDER, NULL, 0);
    if (out)
        cd_affine_transform(PyArray_DATA(src), PyArray_DATA((PyArrayObject *)out), (int)PyArray_DIM(src, 0),
                            (int)PyArray_DIM(src, 1), PyArray_DATA(t), (cd_fill_mode)fill, (cd_interpolation)interp, fill_value);
    Py_DECREF(src);
    Py_DECREF(t);
    return out;
}

static PyObject *py_augment(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"images", "ops", "training", "seed", "epoch", "samples", NULL};
    PyObject *obj, *ops_obj, *samples_obj;
    int training;
    unsigned long long seed;
    long long epoch;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOpKLO", kwlist, &obj, &ops_obj, &training, &seed, &epoch, &samples_obj)) return NULL;
    PyArrayObject *in = image_array(obj, NPY_FLOAT32, 4);
    if (!in) return NULL;
    PyArrayObject *samples = (PyArrayObject *)PyArray_FROMANY(samples_obj, NPY_INT64, 1, 1, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    cd_aug_op *ops = NULL;
    int nops = 0;
    PyObject *out = NULL;
    float *scratch = NULL;
    if (!samples || !parse_ops(ops_obj, &ops, &nops)) goto done;
    const npy_intp n = PyArray_DIM(in, 0);
    const int h = (int)PyArray_DIM(in, 1), w = (int)PyArray_DIM(in, 2);
    if (PyArray_DIM(samples, 0) != n) {
        PyErr_SetString(PyExc_ValueError, "samples must have one index per image");
        goto done;
    }
    out = (PyObject *)PyArray_NewCopy(in, NPY_CORDER);
    /* one scratch image per thread: images are augmented in parallel (each image's draws are
     * keyed by its sample index, so the result does not depend on the thread count) */
    const int threads = cd_get_num_threads() > 0 ? cd_get_num_threads() : 1;
    scratch = PyMem_Malloc((size_t)threads * h * w * 3 * sizeof(float));
    if (!out || !scratch) {
        if (!scratch) PyErr_NoMemory();
        Py_CLEAR(out);
        goto done;
    }
    const int64_t *ids = PyArray_DATA(samples);
    float *base = PyArray_DATA((PyArrayObject *)out);
    cd_status s = CD_OK;
    npy_intp failed = -1;
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (npy_intp i = 0; i < n; i++) {
        float *mine = scratch + (size_t)omp_get_thread_num() * h * w * 3;
        if (cd_augment_image(ops, nops, training, seed, epoch, ids[i],
                             base + (size_t)i * h * w * 3, mine, h, w) != CD_OK) {
#pragma omp critical
            if (failed < 0 || i < failed) failed = i;
        }
    }
    if (failed >= 0) /* again on this thread, for its (thread-local) error message */
        s = cd_augment_image(ops, nops, training, seed, epoch, ids[failed],
                             base + (size_t)failed * h * w * 3, scratch, h, w);
    Py_END_ALLOW_THREADS
    if (s != CD_OK) {
        Py_CLEAR(out);
        cd_py_raise(s);
    }
done:
    PyMem_Free(scratch);
    PyMem_Free(ops);
    Py_XDECREF(samples);
    Py_DECREF(in);
    return out;
}

/* ---- Dataset ------------------------------------------------------------------------------ */
typedef struct {
    PyObject_HEAD
    cd_dataset *ds;
} DatasetObject;

static void Dataset_dealloc(DatasetObject *self) {
    cd_dataset_free(self->ds);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Dataset_init(DatasetObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"paths", "labels", "height", "width", "interpolation", "crop_to_aspect_ratio", "label_mode",
                             "num_classes", "cache_bytes", "on_error", "max_pixels", NULL};
    PyObject *paths_obj, *labels_obj, *label_mode_obj, *on_error_obj;
    int h, w, interp = 0, crop = 0, num_classes = 0;
    unsigned long long cache_bytes = 0, max_pixels = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOiiO&pOiKO|K", kwlist, &paths_obj, &labels_obj, &h, &w, interp_converter, &interp,
                                     &crop, &label_mode_obj, &num_classes, &cache_bytes, &on_error_obj, &max_pixels))
        return -1;
    int label_mode, on_error;
    if (!parse_enum(label_mode_obj, "label_mode", label_names, 4, &label_mode)) return -1;
    if (!parse_enum(on_error_obj, "on_error", on_error_names, 3, &on_error)) return -1;
    PyObject *fast = PySequence_Fast(paths_obj, "paths must be a sequence");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **encoded = PyMem_Calloc((size_t)n + 1, sizeof *encoded);
    const char **paths = PyMem_Calloc((size_t)n + 1, sizeof *paths);
    PyArrayObject *labels = NULL;
    int rc = -1;
    if (!encoded || !paths) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(fast, i), &encoded[i])) goto done;
        paths[i] = PyBytes_AS_STRING(encoded[i]);
    }
    if (labels_obj != Py_None) {
        labels = (PyArrayObject *)PyArray_FROMANY(labels_obj, NPY_INT32, 1, 1, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
        if (!labels) goto done;
        if (PyArray_DIM(labels, 0) != n) {
            PyErr_SetString(PyExc_ValueError, "labels must have one entry per path");
            goto done;
        }
    }
    cd_dataset_config cfg = {.height = h, .width = w, .interpolation = (cd_interpolation)interp, .crop_to_aspect_ratio = crop,
                             .label_mode = (cd_label_mode)label_mode, .num_classes = num_classes, .cache_bytes = (size_t)cache_bytes,
                             .on_error = (cd_on_error)on_error, .max_pixels = (size_t)max_pixels};
    cd_dataset *ds = NULL;
    cd_status s = cd_dataset_create(&cfg, paths, labels ? PyArray_DATA(labels) : NULL, n, &ds);
    if (s != CD_OK) {
        cd_py_raise(s);
        goto done;
    }
    cd_dataset_free(self->ds);
    self->ds = ds;
    rc = 0;
done:
    if (encoded)
        for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(encoded[i]);
    PyMem_Free(encoded);
    PyMem_Free(paths);
    Py_XDECREF(labels);
    Py_DECREF(fast);
    return rc;
}

static int dataset_ready(DatasetObject *self) {
    if (self->ds) return 1;
    PyErr_SetString(PyExc_RuntimeError, "Dataset is not initialised");
    return 0;
}

static PyObject *Dataset_load(DatasetObject *self, PyObject *args) {
    int threads = 1;
    if (!PyArg_ParseTuple(args, "|i", &threads) || !dataset_ready(self)) return NULL;
    cd_status s;
    Py_BEGIN_ALLOW_THREADS
    s = cd_dataset_load(self->ds, threads);
    Py_END_ALLOW_THREADS
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *Dataset_failures(DatasetObject *self, PyObject *unused) {
    if (!dataset_ready(self)) return NULL;
    int64_t n = cd_dataset_num_failures(self->ds);
    PyObject *list = PyList_New(0);
    for (int64_t k = 0; list && k < n; k++) {
        int64_t sample;
        const char *msg;
        if (cd_dataset_failure(self->ds, k, &sample, &msg) != CD_OK) break;
        PyObject *item = Py_BuildValue("(LN)", (long long)sample, PyUnicode_DecodeFSDefault(msg));
        if (!item || PyList_Append(list, item) != 0) Py_CLEAR(list);
        Py_XDECREF(item);
    }
    return list;
}

static PyObject *Dataset_ok_mask(DatasetObject *self, PyObject *unused) {
    if (!dataset_ready(self)) return NULL;
    npy_intp n = cd_dataset_size(self->ds);
    PyObject *out = PyArray_SimpleNew(1, &n, NPY_BOOL);
    if (!out) return NULL;
    npy_bool *p = PyArray_DATA((PyArrayObject *)out);
    for (npy_intp i = 0; i < n; i++) p[i] = (npy_bool)cd_dataset_sample_ok(self->ds, i);
    return out;
}

static PyObject *Dataset_get_image(DatasetObject *self, PyObject *arg) {
    if (!dataset_ready(self)) return NULL;
    long long i = PyLong_AsLongLong(arg);
    if (i == -1 && PyErr_Occurred()) return NULL;
    int h, w;
    cd_dataset_image_shape(self->ds, &h, &w);
    npy_intp dims[3] = {h, w, 3};
    PyObject *out = PyArray_SimpleNew(3, dims, NPY_UINT8);
    if (!out) return NULL;
    cd_status s;
    uint8_t *dst = PyArray_DATA((PyArrayObject *)out);
    Py_BEGIN_ALLOW_THREADS
    s = cd_dataset_get_image(self->ds, i, dst);
    Py_END_ALLOW_THREADS
    if (s != CD_OK) {
        Py_DECREF(out);
        return cd_py_raise(s);
    }
    return out;
}

static PyObject *Dataset_capsule(DatasetObject *self, PyObject *unused) {
    if (!dataset_ready(self)) return NULL;
    return PyCapsule_New(self->ds, "catdog.cd_dataset", NULL);
}

static PyObject *Dataset_get_size(DatasetObject *self, void *c) { return PyLong_FromLongLong(self->ds ? cd_dataset_size(self->ds) : 0); }
static PyObject *Dataset_get_cached(DatasetObject *self, void *c) { return PyLong_FromLongLong(self->ds ? cd_dataset_cached_count(self->ds) : 0); }

static PyMethodDef Dataset_methods[] = {
    {"load", (PyCFunction)Dataset_load, METH_VARARGS, "load(num_threads=1): decode every file once (cache or header check)."},
    {"failures", (PyCFunction)Dataset_failures, METH_NOARGS, "[(sample, message)] of files that could not be decoded."},
    {"ok_mask", (PyCFunction)Dataset_ok_mask, METH_NOARGS, "bool array: sample decoded (or header checked)."},
    {"get_image", (PyCFunction)Dataset_get_image, METH_O, "uint8 (H, W, 3) resized pixels of a sample."},
    {"capsule", (PyCFunction)Dataset_capsule, METH_NOARGS, "PyCapsule 'catdog.cd_dataset' holding the cd_dataset *."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Dataset_getset[] = {
    {"size", (getter)Dataset_get_size, NULL, "number of files", NULL},
    {"cached_count", (getter)Dataset_get_cached, NULL, "samples [0, cached_count) live in the uint8 cache", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject DatasetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "catdog._engine.Dataset",
    .tp_basicsize = sizeof(DatasetObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Dataset(paths, labels, height, width, interpolation, crop_to_aspect_ratio, label_mode, num_classes, "
              "cache_bytes, on_error, max_pixels=0): image files decoded once into a uint8 cache (C cd_dataset).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Dataset_init,
    .tp_dealloc = (destructor)Dataset_dealloc,
    .tp_methods = Dataset_methods,
    .tp_getset = Dataset_getset,
};

/* ---- Loader ------------------------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    cd_loader *loader;
    PyObject *dataset; /* keeps the cd_dataset alive */
    int busy;
    int height, width, label_width;
} LoaderObject;

static void Loader_dealloc(LoaderObject *self) {
    if (self->loader) {
        cd_loader *l = self->loader;
        Py_BEGIN_ALLOW_THREADS
        cd_loader_free(l); /* joins worker threads */
        Py_END_ALLOW_THREADS
    }
    Py_XDECREF(self->dataset);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Loader_init(LoaderObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"dataset", "indices", "batch_size", "training", "seed", "epoch", "num_workers", "prefetch", "ops", NULL};
    PyObject *ds_obj, *idx_obj, *ops_obj = Py_None;
    int batch_size, training = 0, workers = 1, prefetch = 0;
    unsigned long long seed = 0;
    long long epoch = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!Oi|pKLiiO", kwlist, &DatasetType, &ds_obj, &idx_obj, &batch_size, &training, &seed,
                                     &epoch, &workers, &prefetch, &ops_obj))
        return -1;
    DatasetObject *dso = (DatasetObject *)ds_obj;
    if (!dataset_ready(dso)) return -1;
    PyArrayObject *idx = (PyArrayObject *)PyArray_FROMANY(idx_obj, NPY_INT64, 1, 1, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!idx) return -1;
    cd_aug_op *ops = NULL;
    int nops = 0;
    if (!parse_ops(ops_obj, &ops, &nops)) {
        Py_DECREF(idx);
        return -1;
    }
    cd_loader_config cfg = {.batch_size = batch_size, .training = training, .seed = seed, .epoch = epoch,
                            .num_workers = workers, .prefetch = prefetch, .ops = ops, .num_ops = nops};
    cd_loader *l = NULL;
    cd_status s;
    const int64_t *ip = PyArray_DATA(idx);
    const int64_t n = PyArray_DIM(idx, 0);
    cd_dataset *ds = dso->ds;
    Py_BEGIN_ALLOW_THREADS
    s = cd_loader_create(ds, ip, n, &cfg, &l);
    Py_END_ALLOW_THREADS
    PyMem_Free(ops);
    Py_DECREF(idx);
    if (s != CD_OK) {
        cd_py_raise(s);
        return -1;
    }
    if (self->loader) cd_loader_free(self->loader);
    self->loader = l;
    Py_XSETREF(self->dataset, Py_NewRef(ds_obj));
    cd_dataset_image_shape(ds, &self->height, &self->width);
    self->label_width = cd_dataset_label_width(ds);
    return 0;
}

static int loader_ready(LoaderObject *self) {
    if (!self->loader) {
        PyErr_SetString(PyExc_RuntimeError, "Loader is not initialised");
        return 0;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Loader is in use by another thread");
        return 0;
    }
    return 1;
}

/* (images float32 (n,H,W,3), labels float32 (n,width) or None, samples int64 (n)), copies. */
static PyObject *Loader_iternext(LoaderObject *self) {
    if (!loader_ready(self)) return NULL;
    cd_batch b;
    cd_status s;
    cd_loader *l = self->loader;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    s = cd_loader_next(l, &b);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (s != CD_OK) return cd_py_raise(s);
    if (b.end_of_epoch) return NULL; /* StopIteration */
    npy_intp idims[4] = {b.n, self->height, self->width, 3};
    npy_intp ldims[2] = {b.n, self->label_width};
    npy_intp sdims[1] = {b.n};
    PyObject *images = PyArray_SimpleNew(4, idims, NPY_FLOAT32);
    PyObject *labels = self->label_width ? PyArray_SimpleNew(2, ldims, NPY_FLOAT32) : Py_NewRef(Py_None);
    PyObject *samples = PyArray_SimpleNew(1, sdims, NPY_INT64);
    if (!images || !labels || !samples) {
        Py_XDECREF(images);
        Py_XDECREF(labels);
        Py_XDECREF(samples);
        return NULL;
    }
    memcpy(PyArray_DATA((PyArrayObject *)images), b.images, (size_t)b.n * self->height * self->width * 3 * sizeof(float));
    if (self->label_width) memcpy(PyArray_DATA((PyArrayObject *)labels), b.labels, (size_t)b.n * self->label_width * sizeof(float));
    memcpy(PyArray_DATA((PyArrayObject *)samples), b.samples, (size_t)b.n * sizeof(int64_t));
    return Py_BuildValue("(NNN)", images, labels, samples);
}

static PyObject *Loader_iter(PyObject *self) { return Py_NewRef(self); }

static PyObject *Loader_restart(LoaderObject *self, PyObject *args) {
    PyObject *idx_obj;
    long long epoch;
    if (!PyArg_ParseTuple(args, "OL", &idx_obj, &epoch) || !loader_ready(self)) return NULL;
    PyArrayObject *idx = (PyArrayObject *)PyArray_FROMANY(idx_obj, NPY_INT64, 1, 1, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!idx) return NULL;
    cd_status s;
    cd_loader *l = self->loader;
    const int64_t *ip = PyArray_DATA(idx);
    const int64_t n = PyArray_DIM(idx, 0);
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    s = cd_loader_restart(l, ip, n, epoch);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    Py_DECREF(idx);
    if (s != CD_OK) return cd_py_raise(s);
    Py_RETURN_NONE;
}

static PyObject *Loader_capsule(LoaderObject *self, PyObject *unused) {
    if (!loader_ready(self)) return NULL;
    return PyCapsule_New(self->loader, "catdog.cd_loader", NULL);
}

static PyObject *Loader_get_num_batches(LoaderObject *self, void *c) {
    return PyLong_FromLongLong(self->loader ? cd_loader_num_batches(self->loader) : 0);
}

static PyMethodDef Loader_methods[] = {
    {"restart", (PyCFunction)Loader_restart, METH_VARARGS, "restart(indices, epoch): another epoch on the same buffers."},
    {"capsule", (PyCFunction)Loader_capsule, METH_NOARGS, "PyCapsule 'catdog.cd_loader' holding the cd_loader *."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Loader_getset[] = {
    {"num_batches", (getter)Loader_get_num_batches, NULL, "batches in this epoch", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LoaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "catdog._engine.Loader",
    .tp_basicsize = sizeof(LoaderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Loader(dataset, indices, batch_size, training=False, seed=0, epoch=0, num_workers=1, prefetch=0, ops=None): "
              "iterates (images, labels, samples) of one epoch; C cd_loader.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Loader_init,
    .tp_dealloc = (destructor)Loader_dealloc,
    .tp_iter = Loader_iter,
    .tp_iternext = (iternextfunc)Loader_iternext,
    .tp_methods = Loader_methods,
    .tp_getset = Loader_getset,
};

static PyMethodDef data_functions[] = {
    {"decode_image", (PyCFunction)(void (*)(void))py_decode_image, METH_VARARGS | METH_KEYWORDS, "decode_image(data, max_pixels=0) -> uint8 (h, w, 3)"},
    {"decode_file", (PyCFunction)(void (*)(void))py_decode_file, METH_VARARGS | METH_KEYWORDS, "decode_file(path, max_pixels=0) -> uint8 (h, w, 3)"},
    {"resize", (PyCFunction)(void (*)(void))py_resize, METH_VARARGS | METH_KEYWORDS,
     "resize(uint8 (h, w, 3), height, width, interpolation='bilinear', crop_to_aspect_ratio=False) -> float32"},
    {"shuffle", (PyCFunction)py_shuffle, METH_VARARGS, "shuffle(seed, epoch, indices) -> permuted int64 copy"},
    {"affine_transform", (PyCFunction)(void (*)(void))py_affine_transform, METH_VARARGS | METH_KEYWORDS,
     "affine_transform(float32 (h, w, 3), transform[8], fill_mode='reflect', interpolation='bilinear', fill_value=0)"},
    {"augment", (PyCFunction)(void (*)(void))py_augment, METH_VARARGS | METH_KEYWORDS,
     "augment(float32 (n, h, w, 3), ops, training, seed, epoch, samples) -> augmented copy"},
    {NULL, NULL, 0, NULL},
};

int cd_py_register_data(PyObject *module) {
    if (PyType_Ready(&DatasetType) < 0 || PyType_Ready(&LoaderType) < 0) return -1;
    if (PyModule_AddObjectRef(module, "Dataset", (PyObject *)&DatasetType) < 0) return -1;
    if (PyModule_AddObjectRef(module, "Loader", (PyObject *)&LoaderType) < 0) return -1;
    for (PyMethodDef *m = data_functions; m->ml_name; m++) {
        PyObject *f = PyCFunction_NewEx(m, NULL, NULL);
        if (!f || PyModule_AddObject(module, m->ml_name, f) < 0) {
            Py_XDECREF(f);
            return -1;
        }
    }
    return 0;
}
