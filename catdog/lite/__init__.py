"""catdog.lite: the `tf.lite` names the TensorFlow tutorials use, for catdog models.

    converter = catdog.lite.TFLiteConverter.from_keras_model(model)
    tflite_model = converter.convert()            # bytes of a .tflite flatbuffer
    interpreter = catdog.lite.Interpreter(model_content=tflite_model)
    runner = interpreter.get_signature_runner("serving_default")

* TFLiteConverter (catdog/lite/converter.py) writes the model's inference graph as a TFLite
  flatbuffer (float32, TFLite's builtin operators). It needs the `flatbuffers` package.
* Interpreter is LiteRT's own `ai_edge_litert.interpreter.Interpreter` (the interpreter that
  `tf.lite.Interpreter` is being replaced by), handed out as it is: catdog does not run
  .tflite files itself, and nothing in catdog stands in for LiteRT. Both come with
  `pip install catdog[lite]`; without LiteRT, `catdog.lite.Interpreter` raises ImportError
  saying so.
"""
from catdog.lite.converter import TFLiteConverter

__all__ = ["TFLiteConverter", "Interpreter"]

_NO_LITERT = ("catdog.lite.Interpreter is LiteRT's interpreter (the ai-edge-litert package), "
              "which is not installed: pip install catdog[lite]  (or: pip install "
              "ai-edge-litert; it has wheels for Linux and macOS, none for Windows)")


def __getattr__(name):
    # resolved on use, so that `import catdog.lite` and the converter work without LiteRT
    if name == "Interpreter":
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ImportError(_NO_LITERT) from e
        return Interpreter
    raise AttributeError(f"module 'catdog.lite' has no attribute {name!r}")
