"""Image metadata carried by a .ugc file: ICC profile, EXIF and XMP (bitstream_spec.md §2.2).

A file with metadata is format version 2: the version 1 layout with a CRC-protected
metadata block right after the header. A file without metadata stays version 1, byte for
byte what it would be without this module. The pixels are stored upright (the encoder
applies EXIF orientation), so the stored EXIF and XMP say "no rotation": the orientation
tag is removed, as Pillow's ``ImageOps.exif_transpose`` does.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from typing import IO, Dict, List, Mapping, Optional, Tuple

from .errors import FormatError

__all__ = ["Metadata", "METADATA_LIMIT", "attach", "read_metadata", "save_options"]

#: Largest metadata block (entries, in bytes) a writer may write and a reader accepts.
METADATA_LIMIT = (1 << 24) - 1
_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION = 0x0112
# Section tags in the order writers write them (§2.2); readers skip tags they do not know.
_TAGS: Dict[bytes, str] = {b"ICCP": "icc_profile", b"EXIF": "exif", b"XMP ": "xmp"}
_ENTRY = struct.Struct(">4sI")


@dataclass(frozen=True)
class Metadata:
    """Metadata of one image, as stored (any field may be ``None``).

    Attributes:
        icc_profile: the ICC profile's bytes.
        exif: a TIFF-structured EXIF block (``II*\\0`` or ``MM\\0*``), without the
            ``Exif\\0\\0`` prefix JPEG files put before it.
        xmp: the XMP packet (UTF-8 XML).
    """

    icc_profile: Optional[bytes] = None
    exif: Optional[bytes] = None
    xmp: Optional[bytes] = None

    def __bool__(self) -> bool:
        return any(value for value in (self.icc_profile, self.exif, self.xmp))

    def entries(self) -> List[Tuple[bytes, bytes]]:
        """``(tag, data)`` of each non-empty field, in the order they are written."""
        return [(tag, getattr(self, name)) for tag, name in _TAGS.items() if getattr(self, name)]

    def describe(self) -> Dict[str, int]:
        """What the file carries: ``{"icc_profile": bytes, ...}`` for ``ugc info``."""
        return {_TAGS[tag]: len(data) for tag, data in self.entries()}

    def to_pil_info(self) -> Dict[str, bytes]:
        """The ``Image.info`` entries Pillow's own plugins use for this metadata (EXIF with
        the ``Exif\\0\\0`` prefix, as Pillow's JPEG plugin gives it)."""
        info: Dict[str, bytes] = {}
        if self.icc_profile:
            info["icc_profile"] = self.icc_profile
        if self.exif:
            info["exif"] = _EXIF_PREFIX + self.exif
        if self.xmp:
            info["xmp"] = self.xmp
        return info

    @classmethod
    def from_pil(cls, image, overrides: Optional[Mapping] = None) -> "Metadata":
        """The metadata of a PIL image as the encoder stores it: from ``overrides``
        (``icc_profile``, ``exif``, ``xmp``, e.g. ``Image.save`` arguments), else from
        ``image.info``; orientation removed from EXIF and XMP when the image had one
        (the encoder stores the pixels upright)."""
        from PIL import Image, ImageOps

        info = {key: image.info[key] for key in ("icc_profile", "exif", "xmp", "XML:com.adobe.xmp")
                if image.info.get(key)}
        for key in ("icc_profile", "exif", "xmp"):
            if overrides and overrides.get(key) is not None:
                info[key] = overrides[key]
        if isinstance(info.get("exif"), Image.Exif):
            info["exif"] = info["exif"].tobytes()
        try:
            # A 1x1 stand-in carrying the same info: Pillow reads the orientation from
            # EXIF (or XMP) and exif_transpose removes it from both.
            stand_in = Image.new("L", (1, 1))
            stand_in.info = dict(info)
            if stand_in.getexif().get(_ORIENTATION, 1) != 1:
                info = ImageOps.exif_transpose(stand_in).info
        except Exception:  # malformed EXIF: stored as it came, as load_image ignores it too
            pass
        exif = info.get("exif") or None
        if exif is not None and exif.startswith(_EXIF_PREFIX):
            exif = exif[len(_EXIF_PREFIX):]
        xmp = info.get("xmp") or info.get("XML:com.adobe.xmp") or None
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        return cls(icc_profile=info.get("icc_profile") or None, exif=exif or None, xmp=xmp)

    @classmethod
    def from_source(cls, source) -> "Metadata":
        """The metadata of an encoder input (path, image-file bytes, PIL image; arrays
        have none). Reads headers only; unreadable sources give no metadata."""
        from PIL import Image

        if isinstance(source, Image.Image):
            return cls.from_pil(source)
        if not isinstance(source, (str, os.PathLike, bytes)):
            return cls()
        try:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                return cls.from_pil(image)
        except Exception:  # the encoder itself reports unreadable images
            return cls()

    def pack(self) -> bytes:
        """The metadata block: entry length, entries, CRC-32 (§2.2)."""
        body = b"".join(_ENTRY.pack(tag, len(data)) + data for tag, data in self.entries())
        if len(body) > METADATA_LIMIT:
            raise ValueError(f"metadata takes {len(body)} bytes; a .ugc file holds at most {METADATA_LIMIT}")
        block = struct.pack(">I", len(body)) + body
        return block + struct.pack(">I", zlib.crc32(block))

    @classmethod
    def unpack(cls, data: bytes, offset: int) -> Tuple["Metadata", int]:
        """Parses the metadata block at ``offset``; returns it and the offset after it.

        Raises:
            FormatError: truncated, too large, bad CRC, malformed or repeated entries.
        """
        if len(data) < offset + 4:
            raise FormatError("file truncated inside the metadata block")
        (length,) = struct.unpack_from(">I", data, offset)
        if length > METADATA_LIMIT:
            raise FormatError(f"metadata block of {length} bytes; the limit is {METADATA_LIMIT}")
        end = offset + 4 + length
        if len(data) < end + 4:
            raise FormatError("file truncated inside the metadata block")
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(data[offset:end]) != crc:
            raise FormatError("metadata checksum mismatch: the file is corrupt")
        fields: Dict[str, bytes] = {}
        position = offset + 4
        while position < end:
            if end - position < _ENTRY.size:
                raise FormatError("malformed metadata entry")
            tag, size = _ENTRY.unpack_from(data, position)
            position += _ENTRY.size
            if size > end - position:
                raise FormatError("metadata entry runs past the metadata block")
            name = _TAGS.get(tag)
            if name is not None:
                if name in fields:
                    raise FormatError(f"metadata entry {tag.decode('latin-1')!r} appears twice")
                fields[name] = bytes(data[position : position + size])
            position += size
        return cls(**fields), end + 4


def read_from_stream(header, stream: IO[bytes]) -> Dict[str, bytes]:
    """The ``Image.info`` entries of the metadata block that follows ``header`` in
    ``stream`` (positioned right after the header); nothing for a version 1 file.

    Raises:
        FormatError: malformed block.
    """
    from .container import METADATA_VERSION

    if header.version != METADATA_VERSION:
        return {}
    start = stream.read(4)
    if len(start) < 4:
        raise FormatError("file truncated inside the metadata block")
    (length,) = struct.unpack(">I", start)
    if length > METADATA_LIMIT:
        raise FormatError(f"metadata block of {length} bytes; the limit is {METADATA_LIMIT}")
    block = start + stream.read(length + 4)
    return Metadata.unpack(block, 0)[0].to_pil_info()


def attach(data: bytes, metadata: Metadata) -> bytes:
    """A .ugc file's bytes with ``metadata`` stored (format version 2), or the bytes
    unchanged (version 1) when there is none to store.

    Raises:
        FormatError: ``data`` is not a valid .ugc file.
    """
    from dataclasses import replace

    from .container import METADATA_VERSION, VERSION, Container

    container = Container.from_bytes(data)
    if not metadata and container.header.version == VERSION:
        return bytes(data)
    version = METADATA_VERSION if metadata else VERSION
    header = replace(container.header, version=version)
    return Container(header, container.z_stream, container.y_stream, metadata).to_bytes()


def read_metadata(data: bytes) -> Metadata:
    """The metadata a .ugc file carries (empty for version 1 files).

    Raises:
        FormatError: not a valid .ugc file.
    """
    from .container import Container

    return Container.from_bytes(data).metadata


def save_options(image, image_format: str) -> Dict[str, object]:
    """``Image.save`` arguments that write ``image.info``'s ICC profile, EXIF and XMP into
    ``image_format``: all three for PNG (XMP as its ``XML:com.adobe.xmp`` text chunk),
    JPEG and WebP, ICC profile and EXIF for TIFF, nothing for other formats."""
    image_format = image_format.upper()
    keys = {"PNG": ("icc_profile", "exif"), "JPEG": ("icc_profile", "exif", "xmp"),
            "WEBP": ("icc_profile", "exif", "xmp"), "TIFF": ("icc_profile", "exif")}.get(image_format, ())
    options: Dict[str, object] = {key: image.info[key] for key in keys if image.info.get(key)}
    xmp = image.info.get("xmp")
    if image_format == "PNG" and xmp:
        from PIL import PngImagePlugin

        text = PngImagePlugin.PngInfo()
        text.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp)
        options["pnginfo"] = text
    return options
