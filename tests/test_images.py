"""What happens to each kind of input image (bad ones give an ImageError with a clear message)."""
import io

import numpy as np
import pytest
from PIL import Image

import ugcodec
from ugcodec.errors import ImageError
from ugcodec.image_io import load_image

from conftest import make_photo_like

PHOTO = make_photo_like(40, 60, seed=3)


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=options.pop("format", "PNG"), **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not an image"),
        (b"plain text, no pixels", "not an image"),
        (png_bytes(Image.fromarray(PHOTO))[:200], "cannot read image"),
        (png_bytes(Image.fromarray(PHOTO), format="JPEG")[:300], "cannot read image"),
    ],
)
def test_unreadable_inputs(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_conversions_keep_what_a_viewer_sees():
    palette = Image.fromarray(PHOTO).convert("P", palette=Image.Palette.ADAPTIVE)
    pixels, mode = load_image(palette)
    assert mode == "RGB" and np.array_equal(pixels, np.asarray(palette.convert("RGB")))
    cmyk = Image.fromarray(PHOTO).convert("CMYK")
    assert load_image(cmyk)[1] == "RGB"
    sixteen = Image.fromarray(PHOTO[:, :, 0].astype(np.uint16) * 257)
    assert sixteen.mode.startswith("I;16")
    pixels, mode = load_image(png_bytes(sixteen))
    assert mode == "L" and np.array_equal(pixels[:, :, 0], PHOTO[:, :, 0])
    one_pixel, mode = load_image(np.array([[[1, 2, 3]]], np.uint8))
    assert one_pixel.shape == (1, 1, 3)


def test_exif_orientation_is_applied():
    image = Image.fromarray(PHOTO)  # 60 wide, 40 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    pixels, _ = load_image(png_bytes(image, format="JPEG", exif=exif.tobytes(), quality=95))
    assert pixels.shape[:2] == (60, 40)


def test_transparent_palette_is_refused():
    palette = Image.fromarray(PHOTO).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = 0
    with pytest.raises(ImageError, match="transparency"):
        load_image(palette)


def test_smaller_than_the_stride_round_trips(tiny_model):
    for size in [(1, 1), (3, 70), (63, 2)]:
        image = make_photo_like(*size, seed=sum(size))
        decoded = ugcodec.decode(ugcodec.encode(image, 1, model=tiny_model), model=tiny_model)
        assert decoded.size == (size[1], size[0])
