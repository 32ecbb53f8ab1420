"""ugcodec: a learned image codec whose one bitstream decodes for humans or machines.

    >>> import numpy as np, ugcodec
    >>> image = np.full((48, 80, 3), 128, np.uint8)    # or a path, file bytes, a PIL image
    >>> data = ugcodec.encode(image, quality=3)          # the bytes of a .ugc file
    >>> ugcodec.read_header(data).width
    80
    >>> ugcodec.decode(data, preference="human").size   # a PIL image
    (80, 48)
    >>> ugcodec.decode(data, preference="machine").mode
    'RGB'
    >>> ugcodec.decode_tensor(data, preference="machine").shape   # float (3, H, W), no PIL
    torch.Size([3, 48, 80])

``ugcodec.encode(image, quality, refine=20)`` spends more time choosing the symbols of the
same format.

Errors a caller can cause are :class:`UgcError` (:class:`FormatError` for bad files,
:class:`ImageError` for bad images).
"""
__version__ = "0.5.0"

from .errors import FormatError, ImageError, ModelMismatchError, TooManyPixelsError, UgcError, WeightsError  # noqa: E402

# The rest is imported on first use, so that ``ugc --version`` or ``ugc info`` (and any
# program that only needs the errors or the header) does not pay for importing torch.
_LAZY = {
    "encode": "codec",
    "decode": "codec",
    "read_header": "codec",
    "parse_latents": "codec",
    "DEFAULT_QUALITY": "codec",
    "Header": "container",
    "MAX_PIXELS": "container",
    "decode_tensor": "pipelines",
    "decode_tensors": "pipelines",
    "load_model": "weights",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "encode",
    "decode",
    "decode_tensor",
    "decode_tensors",
    "read_header",
    "parse_latents",
    "load_model",
    "Header",
    "DEFAULT_QUALITY",
    "UgcError",
    "FormatError",
    "ImageError",
    "ModelMismatchError",
    "TooManyPixelsError",
    "WeightsError",
    "MAX_PIXELS",
]
