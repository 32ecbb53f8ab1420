"""Reading images to encode and turning decoded pixels back into images.

The codec codes 8-bit grayscale (``"L"``) or RGB. Other inputs are converted when that
loses nothing a viewer would see (palette, CMYK, YCbCr, opaque alpha, 16-bit depth is
reduced to 8), refused otherwise (visible transparency), with an :class:`ImageError`.
EXIF orientation is applied, so the picture is coded the way viewers show it.
"""
from __future__ import annotations

import io
import os
import warnings
from typing import Tuple, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .container import MAX_SIDE
from .errors import ImageError

__all__ = ["ImageSource", "load_image", "array_to_image"]

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La"}


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            image.load()
    except FileNotFoundError:
        raise ImageError(f"no such file: {source}") from None
    except IsADirectoryError:
        raise ImageError(f"is a directory: {source}") from None
    except UnidentifiedImageError:
        raise ImageError("not an image file (or a format Pillow cannot read)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image is too large to decode safely") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"cannot read image: {error}") from None
    return image


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        raise ImageError(f"arrays must be uint8, not {array.dtype}")
    if array.ndim == 2:
        return Image.fromarray(array, "L")
    if array.ndim == 3 and array.shape[2] == 3:
        return Image.fromarray(array, "RGB")
    if array.ndim == 3 and array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], "L")
    raise ImageError(f"arrays must be (H, W) or (H, W, 3), not {array.shape}")


def _drop_opaque_alpha(image: Image.Image) -> Image.Image:
    alpha = np.asarray(image.getchannel("A"))
    if alpha.size and alpha.min() < 255:
        raise ImageError(
            "image has transparency, which .ugc does not store: flatten it onto a background first"
        )
    return image.convert("L" if image.mode in ("LA", "La") else "RGB")


def load_image(source: ImageSource) -> Tuple[np.ndarray, str]:
    """Reads an image into an 8-bit array.

    Args:
        source: a path, the bytes of an image file, a PIL image or a uint8 array
            ``(H, W)`` / ``(H, W, 3)``.

    Returns:
        ``(pixels, mode)``: uint8 ``(H, W, 3)`` (grayscale replicated to three
        channels) and ``"L"`` or ``"RGB"``, the mode the decoder will give back.

    Raises:
        ImageError: unreadable, truncated, transparent, empty or too large.
    """
    image = _open(source)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not stop the encode
        pass
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
    if image.mode in ("RGBA", "RGBa", "LA", "La"):
        image = _drop_opaque_alpha(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        wide = np.asarray(image, dtype=np.float64)
        scale = 257.0 if wide.max() > 255 else 1.0
        image = Image.fromarray(np.clip(np.round(wide / scale), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.round(np.asarray(image)), 0, 255).astype(np.uint8), "L")
    mode = "L" if image.mode in _GRAY_MODES else "RGB"
    image = image.convert(mode)
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError("image is empty (0 pixels)")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ImageError(f"image is {width}x{height}; the largest side .ugc stores is {MAX_SIDE}")
    pixels = np.array(image)  # a writable copy: torch refuses read-only buffers
    if mode == "L":
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels), mode


def array_to_image(pixels: np.ndarray, mode: str) -> Image.Image:
    """uint8 ``(H, W, 3)`` decoded pixels to a PIL image of ``mode`` (``"L"`` or ``"RGB"``)."""
    if mode == "L":
        gray = np.round(pixels.astype(np.float32).mean(axis=2)).astype(np.uint8)
        return Image.fromarray(gray, "L")
    return Image.fromarray(pixels, "RGB")
