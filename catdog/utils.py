"""catdog.utils: Keras's utils the lab uses (``image_dataset_from_directory``)."""
from catdog.data.directory import image_dataset_from_directory  # noqa: F401

__all__ = ["image_dataset_from_directory"]
