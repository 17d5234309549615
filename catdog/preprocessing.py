"""catdog.preprocessing: Keras's `keras.preprocessing` home of image_dataset_from_directory
(the 2020-2021 tutorial imports it from here; catdog.utils has the same function)."""
from catdog.data.directory import image_dataset_from_directory  # noqa: F401

__all__ = ["image_dataset_from_directory"]
