/* common.h — shared by the binding's files: cd_status -> Python exception, array checks. */
#ifndef CD_BINDING_COMMON_H
#define CD_BINDING_COMMON_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "catdog.h"

/* Raise the Python exception matching `s` with cd_last_error(); returns NULL. */
PyObject *cd_py_raise(cd_status s);

/* Each binding file registers its functions/types on the module; 0 on success. */
int cd_py_register_engine(PyObject *module);
int cd_py_register_data(PyObject *module);
#endif
