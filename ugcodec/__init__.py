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

from .errors import FormatError, ImageError, ModelMismatchError, TooManyPixelsError, UgcError  # noqa: E402
from .codec import DEFAULT_QUALITY, decode, encode, parse_latents, read_header  # noqa: E402
from .container import MAX_PIXELS, Header  # noqa: E402
from .weights import load_model  # noqa: E402

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
    "TooManyPixelsError",
    "MAX_PIXELS",
]
