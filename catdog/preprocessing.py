"""catdog.preprocessing: Keras's `keras.preprocessing` home of image_dataset_from_directory
(the 2020-2021 tutorial imports it from here; catdog.utils has the same function) and, as
`catdog.preprocessing.image`, of load_img / img_to_array / array_to_img."""
from types import SimpleNamespace

from catdog.data.directory import image_dataset_from_directory  # noqa: F401
from catdog.image_utils import array_to_img, img_to_array, load_img

# keras.preprocessing.image.load_img / img_to_array / array_to_img
image = SimpleNamespace(load_img=load_img, img_to_array=img_to_array, array_to_img=array_to_img)

__all__ = ["image_dataset_from_directory", "image"]
