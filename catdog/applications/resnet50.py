"""keras.applications.resnet50: ResNet50, preprocess_input, decode_predictions."""
from catdog.applications.resnet import ResNet50, decode_predictions, preprocess_input  # noqa: F401
