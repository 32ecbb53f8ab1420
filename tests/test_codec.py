"""End-to-end behaviour of the Python API, on the tiny model and on the shipped one."""
import numpy as np
import pytest
from PIL import Image

import ugcodec
from ugcodec.codec import decode_pixels, encode_latents
from ugcodec.errors import FormatError, ImageError, ModelMismatchError

from conftest import make_photo_like


def test_same_image_gives_identical_bytes(tiny_model, photo):
    first = ugcodec.encode(photo, quality=2, model=tiny_model)
    assert ugcodec.encode(photo, quality=2, model=tiny_model) == first


def test_decoder_recovers_exactly_the_encoders_symbols(tiny_model, photo):
    for quality in (1, 3):
        data, coded = encode_latents(photo, quality, model=tiny_model)
        parsed = ugcodec.parse_latents(data, model=tiny_model)
        assert np.array_equal(parsed.z.numpy(), coded.z.numpy())
        assert np.array_equal(parsed.y.numpy(), coded.y.numpy())
        assert np.array_equal(parsed.scale_index.numpy(), coded.scale_index.numpy())


@pytest.mark.parametrize("size", [(1, 1), (17, 5), (64, 64), (65, 130)])
def test_any_size_round_trips(tiny_model, size):
    height, width = size
    image = make_photo_like(height, width, seed=height)
    decoded = ugcodec.decode(ugcodec.encode(image, 1, model=tiny_model), model=tiny_model)
    assert decoded.size == (width, height) and decoded.mode == "RGB"


def test_grayscale_stays_grayscale(tiny_model):
    gray = make_photo_like(40, 50, channels=1)
    data = ugcodec.encode(gray, 2, model=tiny_model)
    assert ugcodec.read_header(data).mode == "L"
    assert ugcodec.decode(data, model=tiny_model).mode == "L"


def test_bad_arguments(tiny_model, photo):
    with pytest.raises(ValueError):
        ugcodec.encode(photo, quality=0, model=tiny_model)
    with pytest.raises(ValueError):
        ugcodec.encode(photo, quality=99, model=tiny_model)
    data = ugcodec.encode(photo, 1, model=tiny_model)
    with pytest.raises(ValueError):
        ugcodec.decode(data, preference="robot", model=tiny_model)
    with pytest.raises(ImageError):
        ugcodec.encode(b"definitely not an image", model=tiny_model)
    with pytest.raises(ImageError):
        ugcodec.encode(np.zeros((4, 4, 4), np.uint8), model=tiny_model)


def test_transparency_is_refused_and_opaque_alpha_dropped(tiny_model, photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    assert ugcodec.encode(Image.fromarray(rgba, "RGBA"), 1, model=tiny_model) == ugcodec.encode(photo, 1, model=tiny_model)
    rgba[0, 0, 3] = 10
    with pytest.raises(ImageError, match="transparency"):
        ugcodec.encode(Image.fromarray(rgba, "RGBA"), 1, model=tiny_model)


def test_file_from_other_weights_is_refused(tiny_model, shipped_model, photo):
    data = ugcodec.encode(photo, 1, model=tiny_model)
    with pytest.raises(ModelMismatchError):
        ugcodec.decode(data, model=shipped_model)


def test_shipped_model_round_trip_and_two_preferences(shipped_model):
    image = np.asarray(Image.open("examples/astronaut.png").convert("RGB"))[100:228, 150:342]
    data, coded = encode_latents(image, 3, model=shipped_model)
    latents = ugcodec.parse_latents(data, model=shipped_model)
    assert np.array_equal(latents.y.numpy(), coded.y.numpy())
    human = decode_pixels(latents, "human", model=shipped_model)
    machine = decode_pixels(latents, "machine", model=shipped_model)
    assert human.shape == machine.shape == image.shape
    assert np.abs(human.astype(int) - machine.astype(int)).mean() > 0.1, "preferences decode alike"
    mse = np.mean((human.astype(float) - image.astype(float)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 20, "the human decoding is not recognisable"
    blend = decode_pixels(latents, 0.5, model=shipped_model)
    assert blend.shape == image.shape


def test_truncated_shipped_files_raise_format_error(shipped_model):
    image = make_photo_like(30, 40)
    data = ugcodec.encode(image, 1, model=shipped_model)
    for length in range(len(data)):
        with pytest.raises(FormatError):
            ugcodec.decode(data[:length], model=shipped_model)
    for offset in range(0, len(data), 7):
        broken = bytearray(data)
        broken[offset] ^= 0x01
        with pytest.raises(FormatError):
            ugcodec.decode(bytes(broken), model=shipped_model)


def test_tiled_transforms_have_no_seams(tiny_model):
    """Images wider than one tile are transformed in tiles; results match the whole-image
    transforms: g_a exactly (margins exceed its receptive field), pixels within tolerance."""
    import torch

    from ugcodec.codec import _analyze
    from pixels import assert_pixels_close

    image = make_photo_like(70, 1100, seed=11)
    network = tiny_model.network
    with torch.inference_mode():
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        x = torch.nn.functional.pad(x, (0, 1152 - 1100, 0, 128 - 70), mode="replicate")
        assert torch.allclose(_analyze(network.g_a, image), network.g_a(x), atol=1e-5)
        data, latents = encode_latents(image, 2, model=tiny_model)
        tiled = decode_pixels(latents, "machine", model=tiny_model)
        y_hat = (latents.y.double() + latents.mu).float() * tiny_model.inverse_gains[1][None, :, None, None]
        whole = network.g_s(y_hat, torch.tensor([1.0]))[0, :, :70, :1100]
        whole = whole.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert_pixels_close(tiled, whole)


def test_coding_paths_of_the_layers_give_the_training_paths_bits(shipped_model):
    """GDN and the residual blocks reuse their temporaries when no gradient is needed:
    the same operations on the same values, so g_a and g_s give the same bits."""
    import torch

    network = shipped_model.network
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 64, 96, generator=generator)
    y = torch.randn(1, network.config.M, 4, 6, generator=generator)
    for beta in (0.0, 1.0):
        with torch.no_grad():
            coded = network.g_a(x), network.g_s(y, torch.tensor([beta]))
        with torch.enable_grad():
            trained = network.g_a(x.requires_grad_()), network.g_s(y.requires_grad_(), torch.tensor([beta]))
        x, y = x.detach(), y.detach()
        for fast, reference in zip(coded, trained):
            assert torch.equal(fast, reference.detach())
