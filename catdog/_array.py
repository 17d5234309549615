"""The arrays catdog hands out where Keras hands out tensors: NumPy arrays that also answer
`.numpy()` (the tutorial calls it on dataset batches and on `tf.where`'s result).

`Array` is an ndarray subclass with one extra method; slicing and arithmetic keep the type,
and every NumPy function accepts it. `.numpy()` returns the plain ndarray (a view, no copy)."""
import numpy as np


class Array(np.ndarray):
    def numpy(self) -> np.ndarray:
        return self.view(np.ndarray)


def as_array(x) -> Array:
    """x as an Array (a view when x is already an ndarray)."""
    return np.asarray(x).view(Array)
