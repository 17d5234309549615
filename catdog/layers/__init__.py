"""catdog.layers: the Keras layers the lab uses."""
from catdog.layers.core import (Activation, Add, Average, BatchNormalization,  # noqa: F401
                                Concatenate, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten,
                                GlobalAveragePooling2D, GlobalMaxPooling2D, InputLayer, Layer,
                                Maximum, Minimum, Multiply, ReLU, Reshape, SeparableConv2D,
                                Subtract,
                                ZeroPadding2D, add, average, concatenate, maximum, minimum, multiply,
                                subtract)
from catdog.layers.pooling import AveragePooling2D, MaxPooling2D  # noqa: F401
# augmentation layers run in the C data pipeline during fit; Rescaling runs in the graph
from catdog.layers.preprocessing import (Normalization, RandomBrightness,  # noqa: F401
                                         RandomContrast, RandomFlip, RandomRotation,
                                         RandomTranslation, RandomZoom, Rescaling, Resizing)
# TF 2.3-2.5's names, layers.experimental.preprocessing.* (the 2020-2022 tutorial)
from catdog.layers import experimental  # noqa: E402,F401
