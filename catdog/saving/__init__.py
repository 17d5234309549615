"""catdog.saving: whole models in and out of catdog.

keras_format.py: Keras 3's `.keras` (model.save / load_model); serialization.py: the model
configs in it (to_json / model_from_json, the layer registry); compile_config.py: compile()'s
arguments in it; safety.py: opening a file from anywhere; onnx_export.py: model.export(...,
format="onnx")."""
from catdog.saving.keras_format import from_json as model_from_json  # noqa: F401
from catdog.saving.keras_format import load_model, save_model  # noqa: F401
