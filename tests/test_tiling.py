"""The decoder's tiles: they cover the latent grid once, respect the memory budget and
leave no seams (g_s's reach is within their margin)."""
import numpy as np
import pytest
import torch

from conftest import make_photo_like
from pixels import assert_pixels_close
from ugcodec import tiling
from ugcodec.codec import decode_pixels, encode_latents


GRIDS = [(1, 1), (32, 48), (8, 84), (44, 44), (45, 45), (64, 64), (72, 72), (73, 72), (69, 194), (188, 250), (7, 3125)]


@pytest.mark.parametrize("height, width", GRIDS)
@pytest.mark.parametrize("plan, area, margin", [
    (tiling.synthesis_tiles, "SYNTHESIS_AREA", "SYNTHESIS_REACH_MARGIN"),
    (tiling.analysis_tiles, "ANALYSIS_AREA", "ANALYSIS_REACH_MARGIN"),
])
def test_tiles_cover_the_grid_once_within_the_budget(height, width, plan, area, margin):
    covered = np.zeros((height, width), dtype=int)
    area, margin = getattr(tiling, area), getattr(tiling, margin)
    for tile in plan(height, width):
        (rows, cols), (core_rows, core_cols) = tile.window, tile.core
        assert (rows.stop - rows.start) * (cols.stop - cols.start) <= area
        covered[core_rows, core_cols] += 1
        # the margin on every side that has a neighbour
        assert rows.start == max(0, core_rows.start - margin)
        assert cols.stop == min(width, core_cols.stop + margin)
    assert (covered == 1).all()


def test_a_grid_within_the_budget_is_one_tile():
    assert len(list(tiling.synthesis_tiles(32, 48))) == 1  # a 768x512 image


def test_small_tiles_decode_without_seams(tiny_model, monkeypatch):
    """A small budget forces many tiles; the pixels match the whole-image g_s."""
    image = make_photo_like(200, 300, seed=5)
    with torch.inference_mode():
        _, latents = encode_latents(image, 2, model=tiny_model)
        y_hat = (latents.y.double() + latents.mu).float() * tiny_model.inverse_gains[1][None, :, None, None]
        whole = tiny_model.network.g_s(y_hat, torch.tensor([0.0]))[0, :, :200, :300]
        whole = whole.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    monkeypatch.setattr(tiling, "SYNTHESIS_AREA", 120)
    assert len(list(tiling.synthesis_tiles(*latents.y.shape[-2:]))) > 4
    assert_pixels_close(decode_pixels(latents, "human", model=tiny_model), whole)


@pytest.mark.parametrize("margin, seams", [(tiling.ANALYSIS_REACH_MARGIN, False), (1, True)])
def test_analysis_margin_covers_g_a_s_reach(tiny_model, monkeypatch, margin, seams):
    """Many small tiles give the whole image's latent with the reach margin, and not
    with one latent less (so the margin is no wider than it must be)."""
    from ugcodec.codec import _analyze

    image = make_photo_like(200, 300, seed=6)
    with torch.inference_mode():
        whole = _analyze(tiny_model.network.g_a, image)
        monkeypatch.setattr(tiling, "ANALYSIS_AREA", 64)
        monkeypatch.setattr(tiling, "ANALYSIS_REACH_MARGIN", margin)
        assert len(list(tiling.analysis_tiles(*whole.shape[-2:]))) > 4
        tiled = _analyze(tiny_model.network.g_a, image)
    assert (not torch.allclose(tiled, whole, atol=1e-4)) == seams
