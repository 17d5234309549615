"""The few parts of the TFLite flatbuffer schema catdog writes (schema version 3).

The rule: tensorflow/compiler/mlir/lite/schema/schema.fbs (the file LiteRT's
schema_py_generated.py is generated from). A table's fields are numbered in declaration
order from 0 (deprecated fields keep their number); flatbuffers stores field n at vtable slot
n. Each table below lists only the fields catdog sets, with their numbers from schema.fbs,
and `FIELDS` is the table's field count there (a reader treats a vtable shorter than its own
as "later fields absent", so fewer would also do; the full count keeps the files like TF's).
The enum values are schema.fbs's too. tests/test_lite.py checks every written file by
loading it in LiteRT, so a wrong number here fails there.
"""

# -- enums ---------------------------------------------------------------------------------
# TensorType
FLOAT32, INT32 = 0, 2

# Padding
SAME, VALID = 0, 1

# ActivationFunctionType (the fused activation of CONV_2D, DEPTHWISE_CONV_2D, ...)
ACT_NONE, ACT_RELU, ACT_RELU6 = 0, 1, 3

# BuiltinOperator
ADD = 0
CONCATENATION = 2
AVERAGE_POOL_2D = 1
CONV_2D = 3
DEPTHWISE_CONV_2D = 4
LOGISTIC = 14
FULLY_CONNECTED = 9
MAX_POOL_2D = 17
MUL = 18
RELU = 19
RELU6 = 21
RESHAPE = 22
SOFTMAX = 25
TANH = 28
PAD = 34
MEAN = 40
SUB = 41
REDUCE_MAX = 82
HARD_SWISH = 117

# BuiltinOptions (the union's type tags)
OPT_CONV_2D = 1
OPT_DEPTHWISE_CONV_2D = 2
OPT_POOL_2D = 5
OPT_FULLY_CONNECTED = 8
OPT_CONCATENATION = 10
OPT_SOFTMAX = 9
OPT_ADD = 11
OPT_RESHAPE = 17
OPT_MUL = 21
OPT_PAD = 22
OPT_SUB = 28
OPT_REDUCER = 27

# -- tables: field numbers ----------------------------------------------------------------
class Model:
    FIELDS = 10
    version, operator_codes, subgraphs, description, buffers = 0, 1, 2, 3, 4
    signature_defs = 7


class SubGraph:
    FIELDS = 6
    tensors, inputs, outputs, operators, name = 0, 1, 2, 3, 4


class Tensor:
    FIELDS = 11
    shape, type, buffer, name = 0, 1, 2, 3
    shape_signature = 7


class Buffer:
    FIELDS = 3
    data = 0


class Operator:
    FIELDS = 14
    opcode_index, inputs, outputs, builtin_options_type, builtin_options = 0, 1, 2, 3, 4


class OperatorCode:
    FIELDS = 4
    deprecated_builtin_code, custom_code, version, builtin_code = 0, 1, 2, 3


class SignatureDef:
    FIELDS = 5
    inputs, outputs, signature_key = 0, 1, 2
    subgraph_index = 4  # 3 is deprecated (method_name)


class TensorMap:
    FIELDS = 2
    name, tensor_index = 0, 1


class Conv2DOptions:
    FIELDS = 7
    padding, stride_w, stride_h, fused_activation_function = 0, 1, 2, 3
    dilation_w_factor, dilation_h_factor = 4, 5


class DepthwiseConv2DOptions:
    FIELDS = 7
    padding, stride_w, stride_h, depth_multiplier, fused_activation_function = 0, 1, 2, 3, 4
    dilation_w_factor, dilation_h_factor = 5, 6


class Pool2DOptions:
    FIELDS = 6
    padding, stride_w, stride_h, filter_width, filter_height = 0, 1, 2, 3, 4
    fused_activation_function = 5


class FullyConnectedOptions:
    FIELDS = 6
    fused_activation_function, weights_format, keep_num_dims = 0, 1, 2


class SoftmaxOptions:
    FIELDS = 1
    beta = 0


class ConcatenationOptions:
    FIELDS = 2
    axis, fused_activation_function = 0, 1


class AddOptions:
    FIELDS = 2
    fused_activation_function = 0


class SubOptions:
    FIELDS = 2
    fused_activation_function = 0


class MulOptions:
    FIELDS = 1
    fused_activation_function = 0


class ReshapeOptions:
    FIELDS = 1


class PadOptions:
    FIELDS = 0


class ReducerOptions:
    FIELDS = 1
    keep_dims = 0
