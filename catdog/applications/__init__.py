"""catdog.applications: pretrained architectures (MobileNetV2)."""
from catdog.applications import mobilenet_v2  # noqa: F401
from catdog.applications.mobilenet_v2 import MobileNetV2  # noqa: F401
