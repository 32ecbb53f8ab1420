"""Reading images to encode and turning decoded pixels back into images.

The codec codes 8-bit grayscale (``"L"``) or RGB. Other inputs are converted when that
loses nothing a viewer would see (palette, CMYK, YCbCr, opaque alpha), refused otherwise
(visible transparency), with an :class:`ImageError`. Deeper inputs are scaled by their
mode's range, never by their content: 16-bit (``"I;16"``, and ``"I"``, which Pillow uses
for 16-bit files too) by 65535 / 255 = 257, so 65535 is white; 32-bit float (``"F"``) is
taken as 0.0 = black, 1.0 = white, and values outside [0, 1] (or ``"I"`` values outside
0..65535) are refused rather than guessed at. EXIF orientation is applied, so the picture
is coded the way viewers show it.

Reading is bounded: the image's size is checked against the pixel limit from its header,
before Pillow decodes any pixel. A truncated file is refused, never padded; a file of
several frames (animated GIF/PNG/WebP, multi-page TIFF) is refused unless the caller asks
for its first frame. Whatever Pillow raises on a damaged file becomes an
:class:`ImageError` with a one-line message.
"""
from __future__ import annotations

import io
import os
import warnings
from typing import Any, Optional, Tuple, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .container import MAX_PIXELS, MAX_SIDE, check_pixels
from .errors import ImageError

__all__ = ["ImageSource", "ACCEPTED_IMAGES", "LOSSY_FORMATS", "load_image", "array_to_image", "image_file_bytes"]

#: What :func:`load_image` (and so :func:`ugcodec.encode`) accepts.
ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, io.IOBase, Image.Image, np.ndarray, Any]
ACCEPTED_IMAGES = (
    "a path (str or os.PathLike), the bytes of an image file (bytes, bytearray, memoryview), "
    "a binary file object, a PIL image, a uint8 numpy array (H, W), (H, W, 1) or (H, W, 3), "
    "or a uint8 torch tensor (C, H, W) with C = 1 or 3"
)
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La"}
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _is_tensor(source: Any) -> bool:
    return type(source).__module__.startswith("torch") and hasattr(source, "numpy") and hasattr(source, "dim")


def _to_file(source: ImageSource):
    """What Pillow should open: a path or a binary file object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if os.path.isdir(path):
            raise ImageError(f"is a directory: {path}")
        if not os.path.exists(path):
            raise ImageError(f"no such file: {path}")
        return path
    if hasattr(source, "read"):
        return source
    raise TypeError(f"cannot encode a {type(source).__name__}: give {ACCEPTED_IMAGES}")


def _open(source: ImageSource, max_pixels: Optional[int], first_frame: bool) -> Image.Image:
    if isinstance(source, Image.Image):
        check_pixels(*source.size, max_pixels, "image")
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if _is_tensor(source):
        return _from_tensor(source, max_pixels)
    file = _to_file(source)
    try:
        with warnings.catch_warnings():
            # The pixel limit below replaces Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file)
        # The header alone gives the size: refuse before any pixel is decoded.
        check_pixels(*image.size, max_pixels, "image")
        if getattr(image, "n_frames", 1) > 1 and not first_frame:
            raise ImageError(
                f"image has {image.n_frames} frames (animation or pages); .ugc stores one: "
                "use --first-frame (first_frame=True) to encode the first"
            )
        image.load()
    except ImageError:  # ours (the pixel limit, frames), already one line
        raise
    except FileNotFoundError:
        raise ImageError(f"no such file: {source}") from None
    except UnidentifiedImageError:
        raise ImageError("not an image file (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError:
        raise ImageError("image is too large to decode safely") from None
    except MemoryError:
        raise ImageError("not enough memory to decode the image") from None
    except Exception as error:  # Pillow's plugins raise many types on damaged files
        raise ImageError(f"cannot read image: {_one_line(error)}") from None
    return image


def _from_array(array: np.ndarray, max_pixels: Optional[int]) -> Image.Image:
    if array.dtype != np.uint8:
        raise TypeError(f"arrays must be uint8, not {array.dtype}: give {ACCEPTED_IMAGES}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3):
        check_pixels(array.shape[1], array.shape[0], max_pixels, "image")
        return Image.fromarray(np.ascontiguousarray(array), "L" if array.ndim == 2 else "RGB")
    raise ImageError(f"arrays must be (H, W), (H, W, 1) or (H, W, 3), not {array.shape}")


def _from_tensor(tensor: Any, max_pixels: Optional[int]) -> Image.Image:
    import torch

    if tensor.dtype != torch.uint8:
        raise TypeError(f"tensors must be uint8, not {tensor.dtype}: give {ACCEPTED_IMAGES}")
    if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
        raise ImageError(f"tensors must be (C, H, W) with C = 1 or 3, not {tuple(tensor.shape)}")
    array = tensor.detach().cpu().permute(1, 2, 0).numpy()
    return _from_array(array, max_pixels)


def _sixteen_bit_to_eight(image: Image.Image) -> Image.Image:
    wide = np.asarray(image, dtype=np.int64)
    if image.mode == "I" and wide.size and (wide.min() < 0 or wide.max() > 65535):
        raise ImageError("32-bit integer image has values outside 0..65535; save it as 8- or 16-bit")
    return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")


def _float_to_eight(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    if values.size and not (np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0):
        raise ImageError("float image has values outside [0, 1] (0 = black, 1 = white, as ugcodec reads them)")
    return Image.fromarray(np.round(values * 255.0).astype(np.uint8), "L")


def _drop_opaque_alpha(image: Image.Image) -> Image.Image:
    alpha = np.asarray(image.getchannel("A"))
    if alpha.size and alpha.min() < 255:
        raise ImageError(
            "image has transparency, which .ugc does not store: flatten it onto a background first"
        )
    return image.convert("L" if image.mode in ("LA", "La") else "RGB")


def load_image(
    source: ImageSource, max_pixels: Optional[int] = MAX_PIXELS, first_frame: bool = False
) -> Tuple[np.ndarray, str]:
    """Reads an image into an 8-bit array.

    Args:
        source: a path (str or ``os.PathLike``), the bytes of an image file (bytes,
            bytearray, memoryview), a binary file object, a PIL image, a uint8 numpy
            array ``(H, W)`` / ``(H, W, 1)`` / ``(H, W, 3)`` or a uint8 torch tensor
            ``(C, H, W)`` with C = 1 or 3.
        max_pixels: refuse images of more pixels (None: no limit), checked from a file's
            header before its pixels are decoded.
        first_frame: encode the first frame of an animation or multi-page file instead of
            refusing it.

    Returns:
        ``(pixels, mode)``: uint8 ``(H, W, 3)`` (grayscale replicated to three
        channels) and ``"L"`` or ``"RGB"``, the mode the decoder will give back.

    Raises:
        TypeError: ``source`` is none of the accepted types (or an array or tensor that
            is not uint8).
        ImageError: unreadable, truncated, several frames, transparent, empty or too
            large; TooManyPixelsError (an ImageError) above ``max_pixels``.
    """
    image = _open(source, max_pixels, first_frame)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not stop the encode
        pass
    try:
        if image.mode in ("P", "PA"):
            image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
        if image.mode in ("RGBA", "RGBa", "LA", "La"):
            image = _drop_opaque_alpha(image)
        if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
            image = _sixteen_bit_to_eight(image)
        elif image.mode == "F":
            image = _float_to_eight(image)
        mode = "L" if image.mode in _GRAY_MODES else "RGB"
        image = image.convert(mode)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("not enough memory to convert the image") from None
    except Exception as error:  # Pillow cannot convert some exotic modes
        raise ImageError(f"cannot convert image of mode {image.mode}: {_one_line(error)}") from None
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


#: Image formats whose files :func:`image_file_bytes` writes with a quality setting.
LOSSY_FORMATS = ("JPEG", "WEBP")


def image_file_bytes(image: Image.Image, image_format: str, quality: Optional[int] = None) -> bytes:
    """The bytes of an image file of ``image`` in ``image_format`` (a Pillow format name),
    with the ICC profile, EXIF and XMP of ``image.info`` that the format can carry.

    Args:
        image: a decoded image.
        image_format: ``"PNG"``, ``"JPEG"``, ``"WEBP"``, or another format Pillow writes.
        quality: 1 to 100 for JPEG and WebP (default
            :data:`ugcodec.settings.DEFAULT_OUTPUT_QUALITY`); ignored by other formats.

    Raises:
        ValueError: ``quality`` outside 1 to 100.
    """
    from .metadata import save_options
    from .settings import DEFAULT_OUTPUT_QUALITY

    options = save_options(image, image_format)
    if image_format.upper() in LOSSY_FORMATS:
        quality = DEFAULT_OUTPUT_QUALITY if quality is None else quality
        if not 1 <= quality <= 100:
            raise ValueError(f"output quality must be between 1 and 100, not {quality}")
        options["quality"] = quality
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()
