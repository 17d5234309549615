"""catdog.layers: the Keras layers the lab uses."""
from catdog.layers.core import (Add, BatchNormalization, Conv2D, Dense, DepthwiseConv2D,  # noqa: F401
                                Dropout, GlobalAveragePooling2D, InputLayer, Layer, ReLU,
                                Rescaling, ZeroPadding2D)

try:  # augmentation layers (run by the C data pipeline during fit)
    from catdog.layers.preprocessing import (RandomFlip, RandomRotation,  # noqa: F401
                                             RandomTranslation, RandomZoom)
except ImportError:  # pragma: no cover - only while the data pipeline is absent
    pass
