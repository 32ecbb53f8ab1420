"""benchmarks/capacity.py's measurements (the benchmark itself runs outside CI)."""
import numpy as np
import pytest

import ugcodec
from benchmarks import capacity as capacity_module
from conftest import make_photo_like


@pytest.fixture(scope="module")
def capacity():
    return capacity_module


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def test_unrounded_reconstruction_is_the_coded_decoding_without_rounding(capacity, shipped_model):
    image = make_photo_like(72, 100, seed=5)  # not a multiple of 64: padded, then cropped back
    top = shipped_model.num_qualities
    unrounded = capacity.unrounded_reconstruction(shipped_model, image, top)
    assert unrounded.shape == image.shape and unrounded.dtype == np.uint8
    size, coded, nonzero, positions = capacity.coded_roundtrip(shipped_model, image, top)
    file = ugcodec.encode(image, top, model=shipped_model, precision="float32")
    assert size == len(file) and np.array_equal(coded, np.asarray(ugcodec.decode(file, model=shipped_model, precision="float32")))
    # Rounding only adds error, and at the finest level not much of it.
    assert psnr(image, coded) < psnr(image, unrounded) < psnr(image, coded) + 3.0
    assert np.mean(np.abs(unrounded.astype(np.int16) - coded.astype(np.int16))) < 4.0


def test_a_finer_quantiser_leaves_more_symbols_nonzero(capacity, shipped_model):
    image = make_photo_like(128, 128, seed=6)
    _, _, coarse, positions = capacity.coded_roundtrip(shipped_model, image, 1)
    _, _, fine, _ = capacity.coded_roundtrip(shipped_model, image, shipped_model.num_qualities)
    assert positions == (128 // 16) ** 2
    assert coarse.shape == fine.shape == (shipped_model.config.M,)
    assert 0 < coarse.sum() < fine.sum() and fine.max() <= positions


def test_interpolation_is_linear_in_log_rate_and_refuses_to_extrapolate(capacity):
    curve = [{"bpp": 0.25, "psnr": 28.0}, {"bpp": 1.0, "psnr": 32.0}]
    psnr_at = capacity.common.psnr_at
    assert psnr_at(curve, 0.5) == pytest.approx(30.0)
    assert psnr_at(curve, 0.2) is None and psnr_at(curve, 1.5) is None


def test_report_gives_each_levels_margins_over_webp(capacity):
    common = {"channels_in_use": 90, "nonzero_fraction": 0.25}
    result = {"photos": [{"name": "a"}], "photo_set": "standard", "model": "m", "latent_channels": 128, "levels": [
        {"quality": 1, "bpp": 0.1, "coded_psnr": 27.0, "unrounded_psnr": 30.0, "webp_psnr": None, **common},
        {"quality": 2, "bpp": 0.5, "coded_psnr": 30.0, "unrounded_psnr": 31.0, "webp_psnr": 31.5, **common},
    ]}
    rows = [line for line in capacity.report(result).splitlines() if line.startswith("| q")]
    assert rows[0].endswith("| — | — | — | 90 of 128 | 0.250 |")
    assert rows[1].endswith("| 31.50 | -1.50 | -0.50 | 90 of 128 | 0.250 |")
