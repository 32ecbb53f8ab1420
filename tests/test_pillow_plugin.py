"""The Pillow plugin, through Pillow's own Image.open / save (shipped weights, small images)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms, UnidentifiedImageError

import ugcodec
from ugcodec import pillow_plugin
from ugcodec.container import HEADER_SIZE
from tests.conftest import make_photo_like


@pytest.fixture(scope="module")
def photo():
    return Image.fromarray(make_photo_like(40, 56, seed=3))


@pytest.fixture(scope="module")
def ugc_bytes(photo):
    return ugcodec.encode(photo, quality=2)


@pytest.fixture()
def ugc_file(tmp_path, ugc_bytes):
    path = tmp_path / "photo.ugc"
    path.write_bytes(ugc_bytes)
    return path


@pytest.fixture(autouse=True)
def default_registration():
    pillow_plugin.register_ugc_opener()
    yield
    pillow_plugin.register_ugc_opener()


def test_open_reads_the_header_only(tmp_path, ugc_bytes):
    broken = bytearray(ugc_bytes)
    broken[HEADER_SIZE + 5] ^= 0xFF  # inside the z section: only decoding can notice
    path = tmp_path / "broken.ugc"
    path.write_bytes(bytes(broken))
    with Image.open(path) as im:
        assert (im.format, im.size, im.mode) == ("UGC", (56, 40), "RGB")
        assert im.info["quality"] == 2
        assert im.get_format_mimetype() == "image/x-ugc"
        with pytest.raises(OSError, match="checksum") as caught:
            im.load()
        assert isinstance(caught.value.__cause__, ugcodec.FormatError)


def test_load_decodes_for_humans_by_default(ugc_file, ugc_bytes):
    with Image.open(ugc_file) as im:
        assert im.preference == "human"
        pixels = np.asarray(im)
    np.testing.assert_array_equal(pixels, np.asarray(ugcodec.decode(ugc_bytes, "human")))


def test_preference_per_image_and_by_registration(ugc_file, ugc_bytes):
    machine = np.asarray(ugcodec.decode(ugc_bytes, "machine"))
    assert not np.array_equal(machine, np.asarray(ugcodec.decode(ugc_bytes, "human")))
    with Image.open(ugc_file) as im:
        im.preference = "machine"
        np.testing.assert_array_equal(np.asarray(im), machine)
        with pytest.raises(ValueError, match="already decoded"):
            im.preference = "human"
    pillow_plugin.register_ugc_opener(preference="machine")
    with Image.open(ugc_file) as im:
        np.testing.assert_array_equal(np.asarray(im), machine)
    with Image.open(ugc_file) as im, pytest.raises(ValueError):
        im.preference = "robots"
    with pytest.raises(ValueError):
        pillow_plugin.register_ugc_opener(preference=2.0)


def test_save_encodes_with_the_codecs_quality(photo, tmp_path):
    path = tmp_path / "saved.ugc"
    photo.save(path, quality=4)
    data = path.read_bytes()
    assert data == ugcodec.encode(photo, quality=4)
    buffer = io.BytesIO()
    photo.convert("L").save(buffer, format="UGC")
    header = ugcodec.read_header(buffer.getvalue())
    assert (header.quality, header.mode) == (ugcodec.DEFAULT_QUALITY, "L")
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        assert im.mode == "L" and im.size == photo.size
        assert np.asarray(im).shape == (40, 56)


def test_registered_extension_and_mime_type():
    assert Image.registered_extensions()[".ugc"] == "UGC"
    assert Image.MIME["UGC"] == "image/x-ugc"
    assert "UGC" in Image.SAVE


def test_corrupt_headers_raise_pillows_error_with_the_codecs_message(tmp_path, ugc_bytes):
    bad_crc = bytearray(ugc_bytes)
    bad_crc[9] ^= 1  # width: the header CRC no longer matches
    (tmp_path / "crc.ugc").write_bytes(bytes(bad_crc))
    with pytest.raises(UnidentifiedImageError, match="header checksum mismatch"):
        Image.open(tmp_path / "crc.ugc")
    future = bytearray(ugc_bytes)
    future[4] = 9
    with pytest.raises(UnidentifiedImageError, match="unsupported .ugc format version 9"):
        Image.open(io.BytesIO(bytes(future)))
    with pytest.raises(UnidentifiedImageError, match="truncated"):
        Image.open(io.BytesIO(ugc_bytes[:20]))
    with pytest.raises(UnidentifiedImageError, match="cannot identify image file"):
        Image.open(io.BytesIO(b"not an image at all"))


def test_truncated_payload_fails_at_load_and_verify(tmp_path, ugc_bytes):
    path = tmp_path / "short.ugc"
    path.write_bytes(ugc_bytes[:-10])
    with Image.open(path) as im:
        with pytest.raises(OSError, match="truncated"):
            im.load()
    with Image.open(path) as im:
        with pytest.raises(SyntaxError, match="truncated"):
            im.verify()


def test_verify_thumbnail_and_draft(ugc_file):
    with Image.open(ugc_file) as im:
        im.verify()  # a good file passes
    with Image.open(ugc_file) as im:
        assert im.draft("L", (10, 10)) is None
        assert im.mode == "RGB"
        im.thumbnail((16, 16))
        assert max(im.size) == 16 and im.mode == "RGB"


def test_file_from_other_weights_fails_at_load(tiny_model, tmp_path, photo):
    path = tmp_path / "tiny.ugc"
    path.write_bytes(ugcodec.encode(photo, quality=1, model=tiny_model))
    with Image.open(path) as im:
        assert im.size == photo.size
        with pytest.raises(OSError, match="loaded weights"):
            im.load()
    pillow_plugin.register_ugc_opener(weights=tiny_model.path)
    with Image.open(path) as im:
        assert np.asarray(im).shape == (40, 56, 3)


def test_metadata_in_info_and_kept_by_save(tmp_path, photo):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "with_icc.ugc"
    photo.save(path, icc_profile=icc, xmp=b"<x:xmpmeta/>")
    with Image.open(path) as im:
        assert im.info["icc_profile"] == icc and im.info["xmp"] == b"<x:xmpmeta/>"
        im.load()
        assert im.info["icc_profile"] == icc
    photo.save(path, icc_profile=icc, strip=True)
    with Image.open(path) as im:
        assert "icc_profile" not in im.info
    assert path.read_bytes() == ugcodec.encode(photo, quality=ugcodec.DEFAULT_QUALITY)
