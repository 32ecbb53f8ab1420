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
__version__ = "0.1.0"

from .errors import FormatError, ImageError, ModelMismatchError, TooManyPixelsError, UgcError  # noqa: E402
from .codec import DEFAULT_QUALITY, decode, encode, parse_latents, read_header  # noqa: E402
from .container import MAX_PIXELS, Header  # noqa: E402
from .pipelines import decode_tensor, decode_tensors  # noqa: E402
from .weights import load_model  # noqa: E402

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
    "MAX_PIXELS",
]
