"""ICC profile, EXIF and XMP through the container (format version 2), the API and the CLI."""
from __future__ import annotations

import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import ExifTags, Image, ImageCms

import ugcodec
from ugcodec.cli import main
from ugcodec.codec import encode_latents
from ugcodec.container import HEADER_SIZE, METADATA_VERSION, VERSION, Container
from ugcodec.metadata import Metadata, attach, read_metadata

from conftest import make_photo_like

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/jpeg"/>'
       b"</rdf:RDF></x:xmpmeta>")


def exif_block(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Camera maker"
    exif[ExifTags.Base.Model] = "Model 7"
    exif[ExifTags.Base.Software] = "ugcodec tests"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:05:06 07:08:09"
    return exif


def tags(exif: Image.Exif) -> dict:
    """IFD0 and the Exif IFD, Orientation left out."""
    flat = {tag: value for tag, value in exif.items() if tag not in (ExifTags.Base.Orientation, ExifTags.IFD.Exif)}
    flat.update({("exif", tag): value for tag, value in exif.get_ifd(ExifTags.IFD.Exif).items()})
    return flat


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """photo.jpg: 40 rows x 56 columns stored, EXIF orientation 6 (shown rotated), ICC, EXIF, XMP."""
    monkeypatch.chdir(tmp_path)
    Image.fromarray(make_photo_like(40, 56, seed=5)).save(
        "photo.jpg", quality=95, icc_profile=ICC, exif=exif_block().tobytes(), xmp=XMP
    )
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_jpeg_metadata_survives_encode_and_decode_to_png_jpeg_webp(workdir):
    source_tags = tags(Image.open("photo.jpg").getexif())
    assert run("encode", "photo.jpg", "photo.ugc").exit_code == 0
    data = (workdir / "photo.ugc").read_bytes()
    assert data[4] == METADATA_VERSION
    for name in ("out.png", "out.jpg", "out.webp"):
        assert run("decode", "photo.ugc", name).exit_code == 0
        with Image.open(name) as out:
            assert out.size == (40, 56), "orientation 6 is applied: the stored picture is upright"
            assert out.info["icc_profile"] == ICC, name
            exif = out.getexif()
            assert ExifTags.Base.Orientation not in exif, name
            assert tags(exif) == source_tags, name
            if name != "out.png":
                assert out.info["xmp"] == XMP, name
            else:
                assert out.info["XML:com.adobe.xmp"] == XMP.decode()


def test_orientation_in_xmp_is_removed_too():
    image = Image.fromarray(make_photo_like(16, 24))
    image.info["exif"] = exif_block(8).tobytes()
    image.info["xmp"] = b'<rdf:Description tiff:Orientation="8"/>'
    stored = Metadata.from_pil(image)
    assert b"Orientation" not in stored.xmp
    loaded = Image.Exif()
    loaded.load(stored.exif)
    assert ExifTags.Base.Orientation not in loaded and loaded[ExifTags.Base.Make] == "Camera maker"


def test_strip_and_info(workdir):
    assert run("encode", "photo.jpg", "photo.ugc").exit_code == 0
    listing = run("info", "photo.ugc").output
    assert "icc_profile" in listing and "exif" in listing and "xmp" in listing
    fields = json.loads(run("info", "photo.ugc", "--json").output)
    assert fields["metadata"] == {"icc_profile": len(ICC), "exif": fields["metadata"]["exif"], "xmp": len(XMP)}
    assert fields["format_version"] == 2
    assert fields["file_bytes"] == os.path.getsize("photo.ugc")
    assert run("encode", "photo.jpg", "stripped.ugc", "--strip").exit_code == 0
    stripped = (workdir / "stripped.ugc").read_bytes()
    assert stripped[4] == VERSION and not read_metadata(stripped)
    assert stripped == ugcodec.encode(str(workdir / "photo.jpg"), metadata=False)
    assert "metadata" in run("info", "stripped.ugc").output and "none" in run("info", "stripped.ugc").output
    # Same pixels and symbols with or without metadata: only the block differs.
    full = Container.from_bytes((workdir / "photo.ugc").read_bytes())
    bare = Container.from_bytes(stripped)
    assert (full.z_stream, full.y_stream) == (bare.z_stream, bare.y_stream)


def test_files_without_metadata_are_byte_identical_to_version_1():
    source = os.path.join(GOLDEN, "source.png")
    data = ugcodec.encode(source, quality=3, precision="float32")  # golden.ugc's encoder
    assert data == encode_latents(source, 3, precision="float32")[0]
    with open(os.path.join(GOLDEN, "golden.ugc"), "rb") as handle:
        assert data == handle.read()
    assert attach(data, Metadata()) == data


def test_version_2_container_is_checked_everywhere():
    data = ugcodec.encode(make_photo_like(32, 32))
    meta = Metadata(icc_profile=ICC[:100], exif=exif_block(1).tobytes()[6:], xmp=XMP)
    full = attach(data, meta)
    assert full[4] == METADATA_VERSION and Container.from_bytes(full).metadata == meta
    assert attach(full, Metadata()) == data  # stripping gives version 1 back
    for offset in range(len(full)):
        broken = bytearray(full)
        broken[offset] ^= 0x21
        with pytest.raises(ugcodec.FormatError):
            Container.from_bytes(bytes(broken))


def _with_block(data: bytes, entries: bytes, length=None) -> bytes:
    """A version 2 file with a hand-made metadata block (valid CRCs)."""
    header = bytearray(data[:HEADER_SIZE])
    header[4] = METADATA_VERSION
    header[28:32] = struct.pack(">I", zlib.crc32(bytes(header[:28])))
    block = struct.pack(">I", len(entries) if length is None else length) + entries
    return bytes(header) + block + struct.pack(">I", zlib.crc32(block)) + data[HEADER_SIZE:]


def test_unknown_entries_are_skipped_and_repeated_ones_refused():
    data = ugcodec.encode(make_photo_like(32, 32))
    entry = lambda tag, body: struct.pack(">4sI", tag, len(body)) + body  # noqa: E731
    skipped = _with_block(data, entry(b"FUTR", b"later") + entry(b"ICCP", b"profile"))
    assert Container.from_bytes(skipped).metadata == Metadata(icc_profile=b"profile")
    with pytest.raises(ugcodec.FormatError, match="twice"):
        Container.from_bytes(_with_block(data, entry(b"EXIF", b"MM") + entry(b"EXIF", b"II")))
    with pytest.raises(ugcodec.FormatError, match="past the metadata block"):
        Container.from_bytes(_with_block(data, struct.pack(">4sI", b"XMP ", 50) + b"short"))
    with pytest.raises(ugcodec.FormatError, match="limit"):
        Container.from_bytes(_with_block(data, b"", length=1 << 24))


def test_decode_puts_metadata_in_info():
    image = Image.fromarray(make_photo_like(24, 24))
    data = ugcodec.encode(_with_info(image, icc_profile=ICC))
    decoded = ugcodec.decode(data)
    assert decoded.info["icc_profile"] == ICC
    assert "icc_profile" not in ugcodec.decode(ugcodec.encode(image, metadata=False)).info
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(ugcodec.decode(ugcodec.encode(image))))


def _with_info(image: Image.Image, **info) -> Image.Image:
    copy = image.copy()
    copy.info.update(info)
    return copy


def test_png_input_metadata(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(make_photo_like(24, 32)).save(path, icc_profile=ICC, exif=exif_block(3).tobytes())
    meta = read_metadata(ugcodec.encode(str(path)))
    assert meta.icc_profile == ICC
    exif = Image.Exif()
    exif.load(meta.exif)
    assert exif[ExifTags.Base.Model] == "Model 7" and ExifTags.Base.Orientation not in exif
    buffer = io.BytesIO()
    Image.fromarray(make_photo_like(24, 32)).save(buffer, "PNG")
    assert read_metadata(ugcodec.encode(buffer.getvalue())) == Metadata()


def _reseal_block(data: bytearray) -> bytes:
    """Recomputes the header and metadata CRCs where the (damaged) layout allows it."""
    data[28:32] = struct.pack(">I", zlib.crc32(bytes(data[:28])))
    (length,) = struct.unpack(">I", bytes(data[HEADER_SIZE : HEADER_SIZE + 4]))
    end = HEADER_SIZE + 4 + length
    if end + 4 <= len(data):
        data[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(data[HEADER_SIZE:end])))
    return bytes(data)


def test_mutated_metadata_blocks_fail_cleanly():
    """Random damage inside the block, CRCs recomputed so the entry parser is reached:
    only FormatError (from the container) or Pillow's errors (from the plugin)."""
    import random

    from PIL import UnidentifiedImageError

    import ugcodec.pillow_plugin  # noqa: F401

    data = ugcodec.encode(make_photo_like(16, 16))
    full = attach(data, Metadata(icc_profile=b"p" * 40, exif=b"MM\x00*" + bytes(12), xmp=b"<x/>"))
    block_end = len(full) - len(data) + HEADER_SIZE
    rng = random.Random(11)
    outcomes = set()
    for _ in range(400):
        mutant = bytearray(full)
        for _ in range(rng.randint(1, 4)):
            mutant[rng.randrange(HEADER_SIZE, block_end)] = rng.randrange(256)
        mutant = _reseal_block(mutant)
        try:
            Container.from_bytes(mutant)
            outcomes.add("parsed")
        except ugcodec.FormatError:
            outcomes.add("refused")
        try:
            Image.open(io.BytesIO(mutant)).close()
        except UnidentifiedImageError:
            pass
    assert outcomes == {"parsed", "refused"}
