"""The ``.ugc`` container, format version 1 (bitstream_spec.md describes it byte by byte).

::

    offset size  field
     0      4    magic            b"\\x89UGC"
     4      1    version          1
     5      1    model id         1 = mean-scale hyperprior + PCDM,
                                  2 = the same with channel-conditional scales,
                                  3 = with channel-conditional means and scales
                                  (ugcodec.latent_coders codes y for each)
     6      1    colour mode      0 = grayscale, 1 = RGB
     7      1    quality          1 .. number of levels of the model
     8      2    width            uint16 big-endian, >= 1
    10      2    height           uint16 big-endian, >= 1
    12      8    weights fingerprint
    20      4    z section length uint32 big-endian, bytes, multiple of 4
    24      4    y section length uint32 big-endian, bytes, multiple of 4
    28      4    header CRC32     of bytes 0..27
    32      .    z section, then y section
    end-4   4    payload CRC32    of both sections

All multi-byte integers are big-endian. Nothing may follow the payload CRC.

Format version 2 is the same with a metadata block (ICC profile, EXIF, XMP; see
:mod:`ugcodec.metadata` and bitstream_spec.md §2.2) between the header CRC and the z
section. Writers use version 2 only for files that carry metadata.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Dict

from .errors import FormatError
from .metadata import Metadata

__all__ = ["MAGIC", "VERSION", "METADATA_VERSION", "VERSIONS", "HEADER_SIZE", "COLOR_MODES", "MODEL_IDS", "Header", "Container"]

MAGIC = b"\x89UGC"
VERSION = 1
#: The version of files that carry a metadata block (§2.2); readers know both.
METADATA_VERSION = 2
VERSIONS = (VERSION, METADATA_VERSION)
HEADER_SIZE = 32
TRAILER_SIZE = 4
COLOR_MODES: Dict[int, str] = {0: "L", 1: "RGB"}
MODEL_IDS: Dict[int, str] = {
    1: "mean-scale-hyperprior-pcdm",
    2: "mean-scale-hyperprior-pcdm-channel-scales",
    3: "mean-scale-hyperprior-pcdm-channel-context",
}
MAX_SIDE = 65535

_HEADER = struct.Struct(">4sBBBBHH8sII")
assert _HEADER.size + 4 == HEADER_SIZE


@dataclass(frozen=True)
class Header:
    """The decoded header of a .ugc file (see the module docstring for the layout)."""

    model_id: int
    color_mode: int
    quality: int
    width: int
    height: int
    fingerprint: bytes
    z_length: int
    y_length: int
    version: int = VERSION
    #: Bytes of the metadata block (version 2; 0 for version 1). Not a header field:
    #: :meth:`Container.from_bytes` fills it in so that sizes count the whole file.
    metadata_bytes: int = field(default=0, compare=False)

    @property
    def mode(self) -> str:
        """PIL mode of the decoded image: ``"L"`` or ``"RGB"``."""
        return COLOR_MODES[self.color_mode]

    def to_dict(self) -> dict:
        return {
            "format_version": self.version,
            "model_id": self.model_id,
            "model": MODEL_IDS.get(self.model_id, "unknown"),
            "mode": self.mode,
            "quality": self.quality,
            "width": self.width,
            "height": self.height,
            "weights_fingerprint": self.fingerprint.hex(),
            "z_bytes": self.z_length,
            "y_bytes": self.y_length,
            "file_bytes": self.file_bytes,
            "bits_per_pixel": 8 * self.file_bytes / (self.width * self.height),
        }

    @property
    def file_bytes(self) -> int:
        return HEADER_SIZE + self.metadata_bytes + self.z_length + self.y_length + TRAILER_SIZE

    def validate(self) -> None:
        """Raises FormatError for any field outside what version 1 allows."""
        if self.version not in VERSIONS:
            raise FormatError(f"unsupported .ugc format version {self.version} (this reader knows {VERSION} and {METADATA_VERSION})")
        if self.model_id not in MODEL_IDS:
            raise FormatError(f"unknown model id {self.model_id}")
        if self.color_mode not in COLOR_MODES:
            raise FormatError(f"unknown colour mode {self.color_mode}")
        if self.quality < 1:
            raise FormatError("quality 0 is not valid")
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise FormatError(f"invalid image size {self.width}x{self.height}")
        if len(self.fingerprint) != 8:
            raise FormatError("weights fingerprint must be 8 bytes")
        if self.z_length % 4 or self.y_length % 4:
            raise FormatError("section lengths must be multiples of 4")

    def pack(self) -> bytes:
        self.validate()
        body = _HEADER.pack(
            MAGIC,
            self.version,
            self.model_id,
            self.color_mode,
            self.quality,
            self.width,
            self.height,
            self.fingerprint,
            self.z_length,
            self.y_length,
        )
        return body + struct.pack(">I", zlib.crc32(body))

    @classmethod
    def unpack(cls, data: bytes) -> "Header":
        """Parses and checks the 32-byte header at the start of ``data``.

        Raises:
            FormatError: not a .ugc file, truncated, bad CRC or invalid field.
        """
        if len(data) < 4 or data[:4] != MAGIC:
            raise FormatError("not a .ugc file (wrong magic bytes)")
        if len(data) < HEADER_SIZE:
            raise FormatError(f"file truncated: {len(data)} bytes, the header alone takes {HEADER_SIZE}")
        fields = _HEADER.unpack_from(data)
        (crc,) = struct.unpack_from(">I", data, _HEADER.size)
        if fields[1] not in VERSIONS:
            raise FormatError(f"unsupported .ugc format version {fields[1]} (this reader knows {VERSION} and {METADATA_VERSION})")
        if zlib.crc32(data[: _HEADER.size]) != crc:
            raise FormatError("header checksum mismatch: the file is corrupt")
        header = cls(
            version=fields[1],
            model_id=fields[2],
            color_mode=fields[3],
            quality=fields[4],
            width=fields[5],
            height=fields[6],
            fingerprint=fields[7],
            z_length=fields[8],
            y_length=fields[9],
        )
        header.validate()
        return header


@dataclass(frozen=True)
class Container:
    """A whole .ugc file: header, metadata (version 2) and the two entropy-coded sections."""

    header: Header
    z_stream: bytes = field(repr=False)
    y_stream: bytes = field(repr=False)
    metadata: Metadata = field(default_factory=Metadata, repr=False)

    def to_bytes(self) -> bytes:
        if len(self.z_stream) != self.header.z_length or len(self.y_stream) != self.header.y_length:
            raise ValueError("section lengths disagree with the header")
        if bool(self.metadata) != (self.header.version == METADATA_VERSION):
            raise ValueError(f"a file carries metadata if and only if it is format version {METADATA_VERSION}")
        block = self.metadata.pack() if self.metadata else b""
        payload = self.z_stream + self.y_stream
        return self.header.pack() + block + payload + struct.pack(">I", zlib.crc32(payload))

    @classmethod
    def from_bytes(cls, data: bytes) -> "Container":
        """Parses and verifies a whole file.

        Raises:
            FormatError: wrong magic, unknown version, truncated, bad CRC, invalid
                fields or trailing bytes.
        """
        data = bytes(data)
        header = Header.unpack(data)
        metadata, start = Metadata(), HEADER_SIZE
        if header.version == METADATA_VERSION:
            metadata, start = Metadata.unpack(data, HEADER_SIZE)
            header = replace(header, metadata_bytes=start - HEADER_SIZE)
        expected = header.file_bytes
        if len(data) < expected:
            raise FormatError(f"file truncated: {len(data)} bytes of {expected}")
        if len(data) > expected:
            raise FormatError(f"{len(data) - expected} unexpected bytes after the end of the stream")
        payload = data[start : expected - TRAILER_SIZE]
        (crc,) = struct.unpack_from(">I", data, expected - TRAILER_SIZE)
        if zlib.crc32(payload) != crc:
            raise FormatError("payload checksum mismatch: the file is corrupt")
        return cls(header, payload[: header.z_length], payload[header.z_length :], metadata)
