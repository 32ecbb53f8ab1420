"""The package's exception types. Every error a user can cause is a :class:`UgcError`."""
from __future__ import annotations

__all__ = ["UgcError", "FormatError", "ModelMismatchError", "ImageError", "TooManyPixelsError", "WeightsError"]


class UgcError(Exception):
    """Base class: a problem with the caller's input, never a bug in ugcodec."""


class FormatError(UgcError, ValueError):
    """The bytes are not a valid .ugc file (bad magic, version, CRC, truncation, ...)."""


class ModelMismatchError(FormatError):
    """The file was made by other weights than the ones loaded (fingerprint differs)."""


class ImageError(UgcError, ValueError):
    """The input image cannot be encoded (unreadable, unsupported mode, bad size)."""


class TooManyPixelsError(FormatError, ImageError):
    """The image (a file's header, or an image to encode) has more pixels than the limit
    (``max_pixels`` / ``--max-pixels``). Both a FormatError and an ImageError, so code
    that catches either for its input keeps working."""


class WeightsError(UgcError, ValueError):
    """A weights file is damaged, incomplete or inconsistent (not ugcodec weights, wrong
    shapes or types, tables that are not valid distributions)."""
