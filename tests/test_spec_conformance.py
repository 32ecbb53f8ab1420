"""bitstream_spec.md conformance: an independent reader written from the spec must parse
the package's files to exactly the same symbols and scale indexes.

The reference (tests/reference_parser.py) shares no code with ugcodec; the expected values
come from the package at run time (never hard-coded), so the test survives new weights.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import reference_parser as ref

import ugcodec
from ugcodec.entropy_coding import CodingTable, encode_symbols
from ugcodec.weights import DEFAULT_WEIGHTS

QUALITIES = (1, 4)


def _image(height: int = 48, width: int = 64, seed: int = 2024) -> np.ndarray:
    """Smooth RGB gradient plus noise, made from a fixed numpy seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([40 + 3 * xx, 200 - 3 * yy, 128 + 60 * np.sin((xx + yy) / 11.0)], axis=2)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def files():
    image = _image()
    model = ugcodec.load_model(DEFAULT_WEIGHTS)
    qualities = [q for q in QUALITIES if q <= model.num_qualities]
    return {q: ugcodec.encode(image, quality=q, model=model) for q in qualities}


def test_grayscale_non_square_grid_matches_the_package():
    """70x130 grayscale: a 2x3 z grid (rows and columns must not be swapped), mode 0."""
    gray = _image(70, 130, seed=11)[:, :, 2]
    model = ugcodec.load_model(DEFAULT_WEIGHTS)
    data = ugcodec.encode(gray, quality=min(2, model.num_qualities), model=model)
    expected = ugcodec.parse_latents(data, model)
    parsed = ref.parse_full(data, DEFAULT_WEIGHTS)
    assert parsed.header.color_mode == 0 and (parsed.header.width, parsed.header.height) == (130, 70)
    assert parsed.z.shape[2:] == (2, 3)
    for name in ("z", "y", "scale_index"):
        np.testing.assert_array_equal(getattr(parsed, name), getattr(expected, name).numpy(), err_msg=name)


@pytest.mark.parametrize("quality", QUALITIES)
def test_reference_parser_matches_the_package(files, quality):
    if quality not in files:
        pytest.skip("the shipped model has fewer quality levels")
    data = files[quality]
    expected = ugcodec.parse_latents(data, ugcodec.load_model(DEFAULT_WEIGHTS))
    parsed = ref.parse_full(data, DEFAULT_WEIGHTS)
    assert parsed.header.quality == quality
    assert (parsed.header.width, parsed.header.height) == (64, 48)
    for name in ("z", "y", "scale_index"):
        mine = getattr(parsed, name)
        theirs = getattr(expected, name).numpy()
        assert mine.dtype == np.int64
        assert mine.shape == theirs.shape, name
        np.testing.assert_array_equal(mine, theirs, err_msg=name)
    # The means are exact dyadic numbers on both sides.
    np.testing.assert_array_equal(parsed.mu, expected.mu.numpy())
    z, y, scale_index = ref.parse(data, DEFAULT_WEIGHTS)
    np.testing.assert_array_equal(y, expected.y.numpy())


def test_flipped_payload_byte_is_rejected(files):
    data = bytearray(next(iter(files.values())))
    data[ref.HEADER_SIZE + 2] ^= 0x01  # inside the z section
    with pytest.raises(ref.ReferenceFormatError, match="payload CRC"):
        ref.parse(bytes(data), DEFAULT_WEIGHTS)
    with pytest.raises(ugcodec.FormatError):
        ugcodec.parse_latents(bytes(data))


def _reseal(data: bytearray) -> bytes:
    """Recomputes the header CRC after editing a header field."""
    data[28:32] = struct.pack(">I", zlib.crc32(bytes(data[:28])))
    return bytes(data)


def test_malformed_containers_are_rejected_like_the_package(files):
    good = next(iter(files.values()))
    cases = {
        "magic": b"\x89UGD" + good[4:],
        "version": _reseal(bytearray(good[:4]) + b"\x03" + bytearray(good[5:])),
        "version 2 without a metadata block": _reseal(bytearray(good[:4]) + b"\x02" + bytearray(good[5:])),
        "header CRC": good[:10] + bytes([good[10] ^ 0x80]) + good[11:],
        "truncated": good[:-1],
        "short header": good[:20],
        "trailing": good + b"\x00",
        "model id": _reseal(bytearray(good[:5]) + b"\x07" + bytearray(good[6:])),
        "colour": _reseal(bytearray(good[:6]) + b"\x05" + bytearray(good[7:])),
        "quality 0": _reseal(bytearray(good[:7]) + b"\x00" + bytearray(good[8:])),
        "quality high": _reseal(bytearray(good[:7]) + b"\xff" + bytearray(good[8:])),
        "zero width": _reseal(bytearray(good[:8]) + b"\x00\x00" + bytearray(good[10:])),
        "fingerprint": _reseal(bytearray(good[:12]) + bytes(8) + bytearray(good[20:])),
        "section length": _reseal(bytearray(good[:20]) + struct.pack(">I", struct.unpack(">I", good[20:24])[0] + 2) + bytearray(good[24:])),
    }
    for name, data in cases.items():
        with pytest.raises(ref.ReferenceFormatError):
            ref.parse(data, DEFAULT_WEIGHTS)
        with pytest.raises(ugcodec.FormatError):
            ugcodec.parse_latents(data)


def _metadata_file(good: bytes, entries: bytes, length=None, crc_delta: int = 0) -> bytes:
    """``good`` made version 2 with a hand-built metadata block (spec 2.2)."""
    header = bytearray(good[: ref.HEADER_SIZE])
    header[4] = 2
    block = struct.pack(">I", len(entries) if length is None else length) + entries
    body = _reseal(header) + block + struct.pack(">I", (zlib.crc32(block) + crc_delta) & 0xFFFFFFFF)
    return body + good[ref.HEADER_SIZE :]


def _entry(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">4sI", tag, len(data)) + data


def test_metadata_block_parses_like_the_package(files):
    from ugcodec.metadata import Metadata, attach

    good = next(iter(files.values()))
    meta = Metadata(icc_profile=b"icc bytes", exif=b"MM\x00*\x00\x00\x00\x08\x00\x00", xmp=b"<x/>")
    data = attach(good, meta)
    assert data[4] == 2
    assert ref.parse_metadata(data) == {b"ICCP": meta.icc_profile, b"EXIF": meta.exif, b"XMP ": meta.xmp}
    expected = ugcodec.parse_latents(data, ugcodec.load_model(DEFAULT_WEIGHTS))
    parsed = ref.parse_full(data, DEFAULT_WEIGHTS)
    for name in ("z", "y", "scale_index"):
        np.testing.assert_array_equal(getattr(parsed, name), getattr(expected, name).numpy(), err_msg=name)
    # Unknown tags are skipped by both readers.
    skipping = _metadata_file(good, _entry(b"NEW!", b"123") + _entry(b"XMP ", b"<x/>"))
    assert ref.parse_metadata(skipping) == {b"XMP ": b"<x/>"}
    assert ugcodec.metadata.read_metadata(skipping) == Metadata(xmp=b"<x/>")
    assert ref.parse_metadata(good) == {}


def test_malformed_metadata_is_rejected_like_the_package(files):
    good = next(iter(files.values()))
    cases = {
        "metadata CRC": _metadata_file(good, _entry(b"ICCP", b"abc"), crc_delta=1),
        "too large": _metadata_file(good, b"", length=1 << 24),
        "length past the file": _metadata_file(good, b"", length=(1 << 24) - 1),
        "entry header cut short": _metadata_file(good, b"ICCP\x00"),
        "entry past the block": _metadata_file(good, struct.pack(">4sI", b"EXIF", 9) + b"1234"),
        "repeated entry": _metadata_file(good, _entry(b"ICCP", b"a") + _entry(b"ICCP", b"b")),
        "truncated block": _metadata_file(good, _entry(b"ICCP", b"abc"))[: ref.HEADER_SIZE + 6],
        "payload CRC": _metadata_file(good, _entry(b"ICCP", b"abc"))[:-1] + bytes([good[-1] ^ 1]),
    }
    for name, data in cases.items():
        with pytest.raises(ref.ReferenceFormatError):
            ref.parse(data, DEFAULT_WEIGHTS)
        with pytest.raises(ugcodec.FormatError):
            ugcodec.parse_latents(data)


def test_escapes_decode_like_the_package():
    """Values far outside their tables go through the escape payload (spec 5.4)."""
    rng = np.random.default_rng(5)
    tables = [
        CodingTable(-2, np.array([1 << 20, 3 << 21, (1 << 24) - (1 << 20) - (3 << 21) - (1 << 16), 1 << 16])),
        CodingTable(5, np.array([(1 << 24) - 1, 1])),
    ]
    reference_tables = [ref._table_from_frequencies(t.offset, t.frequencies.tolist()) for t in tables]
    index = rng.integers(0, 2, size=(3, 7, 9))
    values = rng.integers(-30000, 30000, size=index.shape) // rng.choice([1, 1000], size=index.shape)
    values[0, 0, 0], values[0, 0, 1] = -2 - (1 << 15), 5 + 1 + (1 << 15) - 1  # the extreme escapes
    index[0, 0, :2] = (0, 1)
    data = encode_symbols(values, index, tables)
    np.testing.assert_array_equal(ref.decode_section(data, index, reference_tables), values)
    with pytest.raises(ref.ReferenceFormatError):
        ref.decode_section(data + b"\x01\x00\x00\x00", index, reference_tables)
    with pytest.raises(ref.ReferenceFormatError):
        ref.decode_section(data[:-4] + b"\x00\x00\x00\x00", index, reference_tables)
