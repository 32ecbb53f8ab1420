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

Reading is bounded: :func:`read_container` reads the 32-byte header first, checks it
(including the pixel limit), then reads exactly the sizes it declares, and never more than
:func:`max_file_size` of the claimed image allows.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Dict, FrozenSet, Optional, Union

from .errors import FormatError, TooManyPixelsError, UgcError
from .files import read_at_most
from .metadata import METADATA_LIMIT, Metadata

__all__ = [
    "MAGIC",
    "VERSION",
    "METADATA_VERSION",
    "VERSIONS",
    "HEADER_SIZE",
    "COLOR_MODES",
    "MODEL_IDS",
    "PLAIN_MODEL_ID",
    "MAX_PIXELS",
    "Header",
    "Container",
    "check_pixels",
    "max_file_size",
    "read_container",
    "ACCEPTED_FILES",
    "WeightsSummary",
    "check_weights",
    "read_shipped_summary",
    "shipped_weights_summary",
    "shipping_release",
]

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
#: The plain hyperprior's model id, which every weights file can parse (check_weights).
PLAIN_MODEL_ID = 1
MAX_SIDE = 65535
#: Default limit on ``width * height`` for encoding, decoding and ``ugc info``; bounds the
#: memory and time a file (or an image header) can make the codec spend. Every entry
#: point takes a ``max_pixels`` argument (``--max-pixels``) that overrides it.
MAX_PIXELS = 50_000_000
#: The sections of a file may hold at most this many bytes per pixel of the padded image
#: (64-multiple sides), plus :data:`SECTION_SLACK` (bitstream_spec.md §2.1): more than an
#: uncompressed 24-bit image, far more than the coder ever writes.
SECTION_BYTES_PER_PIXEL = 4
SECTION_SLACK = 65536

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
        """The size in bytes of the whole file this header describes (the metadata block's
        size is known once the block is read: ``metadata_bytes``)."""
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
        if HEADER_SIZE + self.z_length + self.y_length + TRAILER_SIZE > max_file_size(self.width, self.height):
            raise FormatError(
                f"sections of {self.z_length + self.y_length} bytes are more than a "
                f"{self.width}x{self.height} image can need"
            )

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


def max_file_size(width: int, height: int) -> int:
    """The largest .ugc file a ``width`` x ``height`` image may have (bitstream_spec.md §2.1)."""
    padded = -(-width // 64) * 64 * (-(-height // 64) * 64)
    return HEADER_SIZE + TRAILER_SIZE + SECTION_SLACK + SECTION_BYTES_PER_PIXEL * padded


def check_pixels(width: int, height: int, max_pixels: Optional[int], what: str = "file") -> None:
    """Refuses an image of more than ``max_pixels`` pixels (None: no limit).

    Raises:
        TooManyPixelsError: naming the size and the limit.
    """
    if max_pixels is not None and width * height > max_pixels:
        raise TooManyPixelsError(
            f"{what} is {width}x{height} = {width * height} pixels, more than the limit of "
            f"{max_pixels} (raise it with --max-pixels / max_pixels=)"
        )


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
    def from_bytes(cls, data: bytes, max_pixels: Optional[int] = MAX_PIXELS) -> "Container":
        """Parses and verifies a whole file.

        Args:
            data: the file's bytes.
            max_pixels: refuse a file whose image has more pixels (None: no limit).

        Raises:
            FormatError: wrong magic, unknown version, truncated, bad CRC, invalid
                fields or trailing bytes; TooManyPixelsError (a FormatError) above
                ``max_pixels``.
        """
        data = bytes(data)
        header = Header.unpack(data)
        check_pixels(header.width, header.height, max_pixels)
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


#: What :func:`read_container` (and so :func:`ugcodec.decode`) accepts.
ACCEPTED_FILES = "the bytes of a .ugc file (bytes, bytearray, memoryview), a path (str or os.PathLike) or a binary file object"


def read_container(
    source: Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO], max_pixels: Optional[int] = MAX_PIXELS
) -> Container:
    """Reads and verifies one .ugc file, reading no more than its header declares (so a
    ``/dev/zero`` or a huge file named as input costs 32 bytes).

    Args:
        source: the file's bytes, its path, or a binary file object positioned at its
            start (read to its end, which must be the end of the .ugc file).
        max_pixels: refuse a file whose image has more pixels (None: no limit), before
            its sections are read.

    Returns:
        the parsed container.

    Raises:
        TypeError: ``source`` is none of the accepted types.
        FormatError: as :meth:`Container.from_bytes`; TooManyPixelsError above
            ``max_pixels``.
        UgcError: the path cannot be opened (missing, a folder, no permission).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Container.from_bytes(source, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, "rb") as handle:
                return read_container(handle, max_pixels)
        except IsADirectoryError:
            raise UgcError(f"{path} is a folder, not a .ugc file") from None
        except FileNotFoundError:
            raise UgcError(f"no such file: {path}") from None
        except PermissionError:
            raise UgcError(f"cannot read {path}: permission denied") from None
    if not hasattr(source, "read"):
        raise TypeError(f"cannot decode a {type(source).__name__}: give {ACCEPTED_FILES}")
    head = read_at_most(source, HEADER_SIZE)
    header = Header.unpack(head)
    check_pixels(header.width, header.height, max_pixels)
    if header.version == METADATA_VERSION:
        # The block's own length field bounds the read: u32 length, entries, u32 CRC.
        length_field = read_at_most(source, 4)
        if len(length_field) < 4:
            raise FormatError("file truncated inside the metadata block")
        (length,) = struct.unpack(">I", length_field)
        if length > METADATA_LIMIT:
            raise FormatError(f"metadata block of {length} bytes; the limit is {METADATA_LIMIT}")
        head += length_field + read_at_most(source, length + 4)
    rest = header.z_length + header.y_length + TRAILER_SIZE
    body = read_at_most(source, rest + 1)
    if len(body) > rest:
        raise FormatError("unexpected bytes after the end of the stream")
    return Container.from_bytes(head + body, max_pixels)


@dataclass(frozen=True)
class WeightsSummary:
    """What a reader needs to know of weights to tell whether they decode a file.

    ``also_decodes``: fingerprints of earlier weights whose files these weights parse to
    the same symbols (weights that differ from them only in g_s, such as added machine
    adapters, or by an added channel context, whose weights parse those plain model id 1
    files with the hyperprior's own tables), so that such files still decode.
    """

    model_id: int
    fingerprint: bytes
    num_qualities: int
    also_decodes: FrozenSet[bytes] = frozenset()


def check_weights(header: Header, weights: WeightsSummary) -> None:
    """Checks that ``weights`` can decode a file with ``header``.

    Raises:
        ModelMismatchError: another model id or other weights (fingerprint).
        FormatError: a quality level the weights do not have.
    """
    from .errors import ModelMismatchError

    # Every weights file holds a plain hyperprior (model id 1): a channel context only
    # corrects its tables, so weights with one still parse the plain files of the
    # weights they list in also_decodes.
    plain_file = header.model_id == PLAIN_MODEL_ID and header.fingerprint in weights.also_decodes
    other_model = header.model_id != weights.model_id and not plain_file
    if other_model or (header.fingerprint != weights.fingerprint and header.fingerprint not in weights.also_decodes):
        release = shipping_release(header.fingerprint)
        remedy = (
            f"they shipped with ugcodec {release}: decode it with that release "
            f"(pip install 'ugcodec=={release}') or its weights file (--weights)"
            if release
            else "decode it with the weights that made it"
        )
        mismatch = (
            f"file needs model id {header.model_id}; the loaded weights are model {weights.model_id}"
            if other_model
            else f"file was made with weights {header.fingerprint.hex()}, but the loaded weights are "
            f"{weights.fingerprint.hex()}"
        )
        raise ModelMismatchError(f"{mismatch}; {remedy}")
    if header.quality > weights.num_qualities:
        raise FormatError(f"quality {header.quality} is not a level of this model")


#: The shipped weights' summary, written beside them at export (tools/export.py), so that
#: ``ugc info`` checks a file against them without loading torch.
SHIPPED_SUMMARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "ugc-hyperprior-pcdm.json")


def shipped_weights_summary() -> WeightsSummary:
    """The shipped weights' :class:`WeightsSummary`, read from :data:`SHIPPED_SUMMARY`.

    Raises:
        UgcError: the summary file is missing or malformed (a broken installation).
    """
    try:
        data = read_shipped_summary()
        return WeightsSummary(
            int(data["model_id"]),
            bytes.fromhex(data["fingerprint"]),
            int(data["num_qualities"]),
            parse_fingerprints(data.get("also_decodes", [])),
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UgcError(f"cannot read the shipped weights' summary {SHIPPED_SUMMARY}: {error}") from None


def parse_fingerprints(values: object) -> FrozenSet[bytes]:
    """Fingerprints written as 16 hex digits each (a weights file's or the shipped
    summary's ``also_decodes``), as bytes.

    Raises:
        ValueError: ``values`` is not a list, or an entry is not 16 hex digits.
    """
    if not isinstance(values, list):
        raise ValueError("also_decodes must be a list of fingerprints")
    fingerprints = []
    for value in values:
        if not isinstance(value, str) or len(value) != 16:
            raise ValueError(f"not a fingerprint (16 hex digits): {value!r}")
        fingerprints.append(bytes.fromhex(value))
    return frozenset(fingerprints)


def shipping_release(fingerprint: bytes) -> Optional[str]:
    """The ugcodec release whose shipped weights have ``fingerprint``, for weights that
    earlier releases shipped (the summary's ``earlier_releases``), else None. Files keep
    their weights' fingerprint, so this tells a user which release decodes an old file."""
    try:
        release = read_shipped_summary().get("earlier_releases", {}).get(fingerprint.hex())
    except (OSError, ValueError, AttributeError):
        return None
    return release if isinstance(release, str) else None


def read_shipped_summary() -> dict:
    """The parsed :data:`SHIPPED_SUMMARY`: ``model_id``, ``fingerprint`` (hex),
    ``num_qualities``, if earlier releases shipped other weights ``earlier_releases``
    (fingerprint to release), if the weights decode files of others ``also_decodes``
    (hex fingerprints; :class:`WeightsSummary`), and if they are earlier weights with
    machine adapters added ``same_human_decoding_as`` (those weights' fingerprint: same
    files, same human decoding).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not JSON, or holds something other than a JSON object.
    """
    import json

    with open(SHIPPED_SUMMARY) as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
