"""The package's exception types. Every error a user can cause is a :class:`UgcError`."""
from __future__ import annotations

__all__ = ["UgcError", "FormatError", "ModelMismatchError", "ImageError"]


class UgcError(Exception):
    """Base class: a problem with the caller's input, never a bug in ugcodec."""


class FormatError(UgcError, ValueError):
    """The bytes are not a valid .ugc file (bad magic, version, CRC, truncation, ...)."""


class ModelMismatchError(FormatError):
    """The file was made by other weights than the ones loaded (fingerprint differs)."""


class ImageError(UgcError, ValueError):
    """The input image cannot be encoded (unreadable, unsupported mode, bad size)."""
