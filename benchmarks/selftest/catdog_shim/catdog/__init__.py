"""NOT catdog. A stand-in that maps the catdog API used by bench_catdog.py onto tf.keras, so
the catdog side of the benchmark can be dry-run before the real engine lands:

    PYTHONPATH=benchmarks/selftest/catdog_shim benchmarks/.venv-tf/bin/python \
        benchmarks/bench_catdog.py --quick --cases 1,2,3,4,5

Its numbers are TensorFlow's, never catdog's; run.py never puts it on the path.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

__version__ = "shim-over-tf-" + tf.__version__
__shim__ = True

Input = tf.keras.Input
Model = tf.keras.Model
Sequential = tf.keras.Sequential
layers = tf.keras.layers
applications = tf.keras.applications
optimizers = tf.keras.optimizers
losses = tf.keras.losses
metrics = tf.keras.metrics
utils = tf.keras.utils


def set_num_threads(n):
    tf.config.threading.set_intra_op_parallelism_threads(int(n))
    tf.config.threading.set_inter_op_parallelism_threads(1)
