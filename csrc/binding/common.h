/* common.h — shared by the binding's files: cd_status -> Python exception, array checks. */
#ifndef CD_BINDING_COMMON_H
#define CD_BINDING_COMMON_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "catdog.h"

/* Python 3.9 (the oldest supported) lacks two 3.10 conveniences; same semantics here. */
#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o) { Py_INCREF(o); return o; }
static inline int PyModule_AddObjectRef(PyObject *module, const char *name, PyObject *value) {
    Py_XINCREF(value);
    if (PyModule_AddObject(module, name, value) < 0) { Py_XDECREF(value); return -1; }
    return 0;
}
#endif

/* Raise the Python exception matching `s` with cd_last_error(); returns NULL. */
PyObject *cd_py_raise(cd_status s);

/* Each binding file registers its functions/types on the module; 0 on success. */
int cd_py_register_engine(PyObject *module);
int cd_py_register_data(PyObject *module);
#endif
