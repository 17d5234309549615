"""Keras's single-image helpers: ``load_img``, ``img_to_array``, ``array_to_img``, following
keras/src/utils/image_utils.py (Keras 3).

Keras decodes and resizes with Pillow and returns a ``PIL.Image.Image``. catdog does the same
whenever Pillow is installed (Colab and the tutorials have it: the classification tutorial
imports PIL in its first cell): the same library on the same calls, so
``img_to_array(load_img(path, target_size=...))`` is Keras's float32 array bit for bit, and
the image works with ``plt.imshow``, ``.size``, ``.show()`` as in Keras.

Without Pillow (it is not a catdog dependency) catdog decodes with its own stb_image decoder
(catdog._engine, csrc/data/decode.c) and returns a small :class:`Image` with PIL's ``size``
(width, height), ``mode`` and NumPy conversion. Then:

- PNG, BMP and GIF pixels are Pillow's exactly; JPEG pixels differ from Pillow's
  libjpeg-turbo by a few levels (different IDCT and colour rounding: at most 3 of 255 and
  0.14 on average on tests/test_image_utils.py's photos; tests/test_data_keras_match.py
  measures up to 5 on others).
- ``interpolation="nearest"`` (load_img's default) picks Pillow's pixels (its
  ImagingScaleAffine arithmetic, reproduced below); the filtered interpolations
  (bilinear, bicubic, ...), ``color_mode="rgba"`` and 16-bit grayscale PNGs (Pillow keeps
  their 16-bit values, or clips them to 255 for "rgb"; stb keeps the high byte) need Pillow
  and raise ImportError rather than give other pixels. Other 16-bit PNGs come out as their
  high byte, as in Pillow.
"""
from __future__ import annotations

import io
import pathlib

import numpy as np

__all__ = ["load_img", "img_to_array", "array_to_img", "Image"]

# keras/src/utils/image_utils.py's PIL_INTERPOLATION_METHODS
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")

_pil_module = "unset"  # PIL.Image, or None when Pillow is not installed (tests set None)


def _pil():
    global _pil_module
    if _pil_module == "unset":
        try:
            from PIL import Image as pil_image
        except ImportError:
            pil_image = None
        _pil_module = pil_image
    return _pil_module


class Image:
    """What load_img / array_to_img return without Pillow: `pixels` uint8 (h, w, 3) for
    mode "RGB", (h, w, 4) "RGBA", (h, w) "L", or int32 (h, w) "I" (PIL's modes), with PIL's
    ``size`` = (width, height). ``np.asarray(img)`` gives the pixels, as for a PIL image."""

    def __init__(self, pixels: np.ndarray, mode: str):
        self._pixels = pixels
        self.mode = mode

    @property
    def size(self):
        return (int(self._pixels.shape[1]), int(self._pixels.shape[0]))

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def __array__(self, dtype=None, copy=None):
        x = self._pixels
        if dtype is not None:
            return x.astype(dtype)
        return x.copy() if copy else x

    def __repr__(self) -> str:
        return f"<catdog.image_utils.Image mode={self.mode} size={self.size[0]}x{self.size[1]}>"


def _data_format(data_format) -> str:
    if data_format is None:
        return "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError('data_format must be "channels_last" or "channels_first", got '
                         f"{data_format!r}")
    return data_format


# -- array_to_img / img_to_array ----------------------------------------------------------------
def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A 3-D array (height, width, channels) as an image. With `scale`, x - min(x) is divided
    by its max (when not 0) and multiplied by 255, then cast to uint8 (truncating), as Keras.
    3 channels -> "RGB", 4 -> "RGBA", 1 -> "L" (or "I", int32, when a value is above 255)."""
    data_format = _data_format(data_format)
    x = np.asarray(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError("Expected image array to have rank 3 (single image). "
                         f"Got array with shape: {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        x_max = np.max(x)
        if x_max != 0:
            x /= x_max
        x *= 255
    if x.shape[2] == 4:
        pixels, mode = x.astype("uint8"), "RGBA"
    elif x.shape[2] == 3:
        pixels, mode = x.astype("uint8"), "RGB"
    elif x.shape[2] == 1:
        if np.max(x) > 255:  # 32-bit signed integer grayscale image: PIL mode "I"
            pixels, mode = x[:, :, 0].astype("int32"), "I"
        else:
            pixels, mode = x[:, :, 0].astype("uint8"), "L"
    else:
        raise ValueError(f"Unsupported channel number: {x.shape[2]}")
    pil = _pil()
    if pil is not None:
        return pil.fromarray(pixels, mode)
    return Image(np.ascontiguousarray(pixels), mode)


def img_to_array(img, data_format=None, dtype=None):
    """An image (PIL's, catdog's, or any array-like) as a 3-D array, float32 by default:
    (height, width, channels); a single-channel image gets a channels axis of 1."""
    data_format = _data_format(data_format)
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    elif x.ndim == 2:
        if data_format == "channels_first":
            x = x.reshape((1, x.shape[0], x.shape[1]))
        else:
            x = x.reshape((x.shape[0], x.shape[1], 1))
    else:
        raise ValueError(f"Unsupported image shape: {x.shape}")
    return x


# -- load_img -------------------------------------------------------------------------------------
def _read(path) -> bytes:
    """The file's bytes, from the argument types Keras accepts."""
    if isinstance(path, io.BytesIO):
        return path.getvalue()
    if isinstance(path, (pathlib.Path, bytes, str)):
        if isinstance(path, pathlib.Path):
            path = str(path.resolve())
        with open(path, "rb") as f:
            return f.read()
    raise TypeError(f"path should be path-like or io.BytesIO, not {type(path)}")


def _target(target_size):
    if target_size is None:
        return None
    try:
        h, w = (int(v) for v in target_size)
    except (TypeError, ValueError):
        raise ValueError(f"target_size must be (height, width), got {target_size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"target_size must be positive (height, width), got {target_size!r}")
    return (w, h)  # PIL's (width, height)


def _crop_box(width, height, target_width, target_height):
    """Keras's keep_aspect_ratio box [left, top, right, bottom]: the largest centred crop
    with the target's aspect ratio."""
    crop_height = min(height, (width * target_height) // target_width)
    crop_width = min(width, (height * target_width) // target_height)
    top = (height - crop_height) // 2
    left = (width - crop_width) // 2
    return [left, top, left + crop_width, top + crop_height]


def _nearest_rows(start: float, stop: float, out: int, size: int):
    """Pillow's nearest resize along one axis (src/_imaging.c _resize -> Geometry.c
    ImagingScaleAffine): step = (stop - start) / out in double; the source index of output
    k is (int)(start + step / 2 + step + ... + step), the sum accumulated one step at a time.
    Returns the indices and which of them fall inside the image (Pillow leaves 0 elsewhere)."""
    step = float(np.float32(stop) - np.float32(start)) / out
    pos = float(np.float32(start)) + step * 0.5
    idx = np.empty(out, np.int64)
    for k in range(out):
        idx[k] = -1 if pos < 0.0 else int(pos)
        pos += step
    ok = (idx >= 0) & (idx < size)
    return np.where(ok, idx, 0), ok


def _resize_nearest(pixels: np.ndarray, width: int, height: int, box) -> np.ndarray:
    ys, yok = _nearest_rows(box[1], box[3], height, pixels.shape[0])
    xs, xok = _nearest_rows(box[0], box[2], width, pixels.shape[1])
    out = pixels[ys][:, xs]
    if not (yok.all() and xok.all()):
        out = out * (yok[:, None] & xok[None, :]).reshape(height, width, *([1] * (out.ndim - 2)))
    return np.ascontiguousarray(out.astype(pixels.dtype, copy=False))


def _is_png_gray16(data: bytes) -> bool:
    """A PNG whose IHDR says 16-bit grayscale (colour type 0)."""
    return (data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) > 25
            and data[24] == 16 and data[25] == 0)


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    """Pillow's RGB -> L (Convert.c rgb2l, ITU-R 601-2 in 16-bit fixed point)."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest",
             keep_aspect_ratio=False):
    """Keras's load_img: the image at `path` (a path, str, bytes or io.BytesIO) in
    `color_mode` ("rgb", "grayscale" or "rgba"), resized to `target_size` = (height, width)
    with `interpolation` ("nearest" by default, as Keras) when its size differs; with
    `keep_aspect_ratio` the largest centred crop of the target's aspect ratio is resized.
    Returns a PIL image when Pillow is installed, else a catdog :class:`Image` (module
    docstring: what differs)."""
    if color_mode not in ("grayscale", "rgb", "rgba"):
        raise ValueError('color_mode must be "grayscale", "rgb", or "rgba"')
    size = _target(target_size)
    data = _read(path)
    pil = _pil()
    if pil is not None:
        return _load_with_pil(pil, data, color_mode, size, interpolation, keep_aspect_ratio)

    from catdog import _engine

    if color_mode == "rgba":
        raise ImportError("load_img(color_mode='rgba') needs Pillow (pip install pillow): "
                          "catdog's own decoder keeps RGB only")
    if _is_png_gray16(data):
        raise ImportError("load_img of a 16-bit grayscale PNG needs Pillow (pip install "
                          "pillow): catdog's own decoder keeps 8 bits, Keras's values differ")
    pixels = _engine.decode_image(data)
    mode = "RGB"
    if color_mode == "grayscale":
        pixels, mode = _to_gray(pixels), "L"
    img = Image(pixels, mode)
    if size is None or img.size == size:
        return img
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"Invalid interpolation method {interpolation} specified. Supported "
                         f"methods are {', '.join(INTERPOLATIONS)}")
    if interpolation != "nearest":
        raise ImportError(f"load_img(interpolation={interpolation!r}) needs Pillow (pip install "
                          "pillow); without it catdog resizes with 'nearest' (the default) only")
    width, height = img.size
    box = (_crop_box(width, height, *size) if keep_aspect_ratio else [0, 0, width, height])
    return Image(_resize_nearest(pixels, size[0], size[1], box), mode)


def _load_with_pil(pil_image, data, color_mode, size, interpolation, keep_aspect_ratio):
    """keras/src/utils/image_utils.py load_img, step for step."""
    img = pil_image.open(io.BytesIO(data))
    if color_mode == "grayscale":
        if img.mode not in ("L", "I;16", "I"):
            img = img.convert("L")
    elif color_mode == "rgba":
        if img.mode != "RGBA":
            img = img.convert("RGBA")
    elif img.mode != "RGB":
        img = img.convert("RGB")
    if size is None or img.size == size:
        return img
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"Invalid interpolation method {interpolation} specified. Supported "
                         f"methods are {', '.join(INTERPOLATIONS)}")
    resampling = getattr(pil_image, "Resampling", pil_image)
    resample = getattr(resampling, interpolation.upper())
    if keep_aspect_ratio:
        width, height = img.size
        return img.resize(size, resample, box=_crop_box(width, height, *size))
    return img.resize(size, resample)
