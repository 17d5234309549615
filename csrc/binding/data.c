/* data.c — binding for the data pipeline (csrc/data). Registers nothing yet. */
#include "binding/common.h"

int cd_py_register_data(PyObject *module) {
    (void)module;
    return 0;
}
