"""Encoder-side latent refinement (ugcodec.refinement): same format, better symbols."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import ugcodec
from ugcodec.cli import main
from ugcodec.codec import decode_pixels, encode_latents, parse_latents, synthesis_input
from ugcodec.scales import scale_table, symbol_bits
from ugcodec.refinement import HUMAN_WEIGHT, MACHINE_WEIGHT, refine_residuals

from conftest import make_photo_like


def objective(model, image, data, quality):
    """What refinement minimises, measured on the real file: y bits per pixel plus the
    weighted squared errors of both decodings (z's bits do not change)."""
    latents = parse_latents(data, model)
    pixels = image.shape[0] * image.shape[1]
    errors = [
        np.mean((decode_pixels(latents, preference, model).astype(np.float64) - image) ** 2)
        for preference in ("human", "machine")
    ]
    lam = model.config.lambdas[quality - 1]
    return 8 * latents.header.y_length / pixels + lam * (HUMAN_WEIGHT * errors[0] + MACHINE_WEIGHT * errors[1])


def test_refinement_lowers_the_rate_distortion_cost_of_the_real_file(shipped_model):
    image = make_photo_like(96, 128, seed=3)
    plain, plain_latents = encode_latents(image, 4, shipped_model)
    refined, refined_latents = encode_latents(image, 4, shipped_model, refine=15)
    assert refined != plain
    assert torch.equal(refined_latents.z, plain_latents.z)  # only y's symbols are chosen again
    assert objective(shipped_model, image, refined, 4) < 0.98 * objective(shipped_model, image, plain, 4)
    assert np.asarray(ugcodec.decode(refined, "human", model=shipped_model)).shape == image.shape


def test_refinement_is_deterministic_and_off_by_default(tiny_model, photo):
    assert ugcodec.encode(photo, 2, model=tiny_model, refine=0) == ugcodec.encode(photo, 2, model=tiny_model)
    first = ugcodec.encode(photo, 2, model=tiny_model, refine=3)
    assert first == ugcodec.encode(photo, 2, model=tiny_model, refine=3)


def test_refinement_of_several_tiles_keeps_the_input_and_touches_every_tile(tiny_model):
    image = make_photo_like(40, 1100, seed=1)  # latent grid 4 x 72: three 32-wide tiles
    data, latents = encode_latents(image, 3, tiny_model)
    residual = latents.y.to(torch.float64) + 0.25  # off-integer, so any step shows
    before = residual.clone()
    flags = [p.requires_grad for p in tiny_model.network.parameters()]
    refined = refine_residuals(tiny_model, image, residual, latents.mu, latents.scale_index, 3, steps=2)
    assert torch.equal(residual, before)
    assert refined.shape == residual.shape and refined.dtype == torch.float64
    for left in (0, 32, 64):
        assert not torch.equal(refined[..., left : left + 32], before[..., left : left + 32])
    assert flags == [p.requires_grad for p in tiny_model.network.parameters()]  # the model is left as it was


def exact_cost(model, image, residual, mu, scale_index, quality):
    """Refinement's cost of rounding ``residual``, for a model without a channel context
    and an image of one tile: weighted squared errors of both decodings plus y bits per pixel."""
    symbols = torch.round(residual)
    y_hat = synthesis_input(model, symbols, mu, quality)
    height, width = image.shape[:2]
    with torch.no_grad():
        decoded = model.network.g_s(y_hat.expand(2, -1, -1, -1), torch.tensor([0.0, 1.0]))[..., :height, :width]
    target = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    errors = ((decoded - target) ** 2).mean(dim=(1, 2, 3)) * 255.0**2
    bits = symbol_bits(symbols, scale_table()[scale_index]).sum() / (height * width)
    lam = model.config.lambdas[quality - 1]
    return float(lam * (HUMAN_WEIGHT * errors[0] + MACHINE_WEIGHT * errors[1]) + bits)


def test_refinement_never_ends_costlier_than_plain_rounding(tiny_model):
    image = make_photo_like(64, 96, seed=5)
    _, latents = encode_latents(image, 1, tiny_model)
    assert tiny_model.channel_context is None  # so the hyper-prior's tables are the coder's
    residual = latents.y.to(torch.float64)  # plain rounding's symbols
    # One huge step throws every symbol far off (without the plain start, the cost here
    # rose by about 1 %): the rounding must start from the plain symbols.
    refined = refine_residuals(tiny_model, image, residual, latents.mu, latents.scale_index, 1, steps=1, step_size=4.0)
    plain_cost = exact_cost(tiny_model, image, residual, latents.mu, latents.scale_index, 1)
    assert exact_cost(tiny_model, image, refined, latents.mu, latents.scale_index, 1) <= plain_cost + 1e-9


@pytest.mark.parametrize("steps", [-1, 1001, 2.5, True, "20"])
def test_bad_refinement_steps_are_refused(tiny_model, photo, steps):
    with pytest.raises(ValueError, match="refinement steps"):
        ugcodec.encode(photo, 2, model=tiny_model, refine=steps)


def test_cli_refine_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(make_photo_like(48, 70)).save("photo.png")
    runner = CliRunner()
    assert runner.invoke(main, ["encode", "photo.png", "a.ugc", "--refine", "2"]).exit_code == 0
    assert runner.invoke(main, ["decode", "a.ugc", "a.png"]).exit_code == 0
    bad = runner.invoke(main, ["encode", "photo.png", "b.ugc", "--refine", "-3"])
    assert bad.exit_code == 2 and not (tmp_path / "b.ugc").exists()
    assert "--refine" in runner.invoke(main, ["encode", "--help"]).output


def test_rate_distortion_rounding_never_raises_the_exact_cost_and_finds_cheaper_symbols():
    from ugcodec.scales import symbol_bits
    from ugcodec.refinement import _rate_distortion_rounding

    generator = torch.Generator().manual_seed(0)
    target = 3.0 * torch.randn(200, generator=generator)
    scale = torch.full((200,), 2.0)
    pixels = 100

    def distortion(symbols):
        return 0.02 * ((symbols - target) ** 2).sum()

    def cost(symbols):
        return float(distortion(symbols)) + float(symbol_bits(symbols, scale).sum()) / pixels

    # From symbols off by one or two, rounding must move to cheaper ones, never dearer.
    start = torch.round(target) + torch.randint(-2, 3, (200,), generator=generator).float()
    rounded = _rate_distortion_rounding(distortion, (start,), scale, pixels)
    assert torch.equal(rounded, torch.round(rounded)), "symbols stay integers"
    assert cost(rounded) < 0.9 * cost(start)
    # At the exact optimum of a separable cost, every trial costs more and is refused.
    best = torch.stack(
        [torch.round(target) + move for move in (-2.0, -1.0, 0.0, 1.0, 2.0)]
    )
    per_symbol = 0.02 * (best - target) ** 2 + symbol_bits(best, scale) / pixels
    optimum = best.gather(0, per_symbol.argmin(dim=0, keepdim=True))[0]
    assert torch.equal(_rate_distortion_rounding(distortion, (optimum,), scale, pixels), optimum)
    # Given two starts, it starts from the cheaper: the optimum comes back whichever is first.
    assert torch.equal(_rate_distortion_rounding(distortion, (start, optimum), scale, pixels), optimum)
    with pytest.raises(ValueError):
        _rate_distortion_rounding(distortion, (), scale, pixels)
