"""catdog.applications: Keras's pretrained architectures, built as Keras 3 builds them
(docs/applications.md): MobileNetV2, ResNet50, VGG16, MobileNetV3Small/Large, EfficientNetB0."""
from catdog.applications import imagenet_utils  # noqa: F401
from catdog.applications import (efficientnet, mobilenet_v2, mobilenet_v3, resnet,  # noqa: F401
                                 resnet50, vgg16)
from catdog.applications.efficientnet import EfficientNetB0  # noqa: F401
from catdog.applications.mobilenet_v2 import MobileNetV2  # noqa: F401
from catdog.applications.mobilenet_v3 import MobileNetV3Large, MobileNetV3Small  # noqa: F401
from catdog.applications.resnet import ResNet50  # noqa: F401
from catdog.applications.vgg16 import VGG16  # noqa: F401
