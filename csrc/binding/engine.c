/* engine.c — binding for graphs (csrc/model), losses and optimizers. */
#include "binding/common.h"

int cd_py_register_engine(PyObject *module) {
    (void)module;
    return 0;
}
