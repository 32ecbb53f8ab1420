"""ugcodec: a learned image codec whose one bitstream decodes for humans or machines.

    >>> import ugcodec
    >>> data = ugcodec.encode("photo.png", quality=3)       # bytes of a .ugc file
    >>> better = ugcodec.encode("photo.png", quality=3, refine=20)  # slower encoder, same format
    >>> picture = ugcodec.decode(data, preference="human")    # PIL.Image
    >>> features = ugcodec.decode(data, preference="machine")
    >>> ugcodec.read_header(data).width

Errors a caller can cause are :class:`UgcError` (:class:`FormatError` for bad files,
:class:`ImageError` for bad images).
"""
__version__ = "0.1.0"

from .errors import FormatError, ImageError, ModelMismatchError, UgcError  # noqa: E402

# The rest is imported on first use, so that ``ugc --version`` or ``ugc info`` (and any
# program that only needs the errors or the header) does not pay for importing torch.
_LAZY = {
    "encode": "codec",
    "decode": "codec",
    "read_header": "codec",
    "parse_latents": "codec",
    "DEFAULT_QUALITY": "codec",
    "Header": "container",
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
    "read_header",
    "parse_latents",
    "load_model",
    "Header",
    "DEFAULT_QUALITY",
    "UgcError",
    "FormatError",
    "ImageError",
    "ModelMismatchError",
]
