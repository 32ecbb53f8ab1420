"""Widening a trained model to more channels keeps what it decodes, and leaves the new
channels free to learn."""
import dataclasses

import numpy as np
import pytest
import torch

import ugcodec
from ugcodec.models import UGHyperprior
from tools.export import export_weights
from ugcodec.weights import load_model
from tools.widening import add_levels, widen, widen_latent

from conftest import TINY_CONFIG, make_photo_like


def trained_like_model(seed: int = 7) -> UGHyperprior:
    """A tiny model whose every parameter is perturbed, so that no cross term between old
    and new channels is zero by accident (fresh models have zero shifts and a diagonal GDN)."""
    torch.manual_seed(seed)
    model = UGHyperprior(TINY_CONFIG)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("beta", "gamma")):  # GDN parameters: stay valid (non-negative)
                parameter.add_(0.05 * torch.rand_like(parameter))
            else:
                parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
def test_a_widened_model_decodes_as_before(beta):
    model = trained_like_model()
    wide = widen(model, 12)
    assert wide.config == dataclasses.replace(TINY_CONFIG, N=12) and not wide.training
    x = torch.rand(2, 3, 64, 128)
    quality = torch.tensor([0, 2])
    betas = torch.full((2,), beta)
    with torch.no_grad():
        before, after = model(x, quality, betas), wide(x, quality, betas)
    # Equal but for float summation order (the convolutions add zeros for the new channels).
    torch.testing.assert_close(after["x_hat"], before["x_hat"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(after["likelihoods"]["y"], before["likelihoods"]["y"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(after["likelihoods"]["z"][:, :8], before["likelihoods"]["z"], rtol=1e-5, atol=1e-7)
    # The new channels of z are exactly zero, coded with the density of the old channel
    # surest of zero (a trained model has channels that cost nothing; this one has not).
    assert torch.equal(wide.h_a(wide.g_a(x))[:, 8:], torch.zeros(2, 4, 1, 2))
    with torch.no_grad():
        _, zero_likelihoods = model.entropy_bottleneck(torch.zeros(1, 8, 1, 1))
    torch.testing.assert_close(after["likelihoods"]["z"][:, 8:], zero_likelihoods.max().expand(2, 4, 1, 2))


def test_widening_refuses_fewer_channels_and_leaves_the_model_alone():
    model = trained_like_model()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(ValueError, match="fewer"):
        widen(model, 4)
    widen(model, 16)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


def test_the_new_channels_learn():
    wide = widen(trained_like_model(), 12).train()
    optimizer = torch.optim.Adam(wide.parameters(), lr=1e-3)
    x = torch.rand(2, 3, 64, 64)
    out = wide(x, torch.tensor([0, 1]), torch.tensor([0.0, 1.0]))
    loss = torch.mean((out["x_hat"] - x) ** 2)
    loss.backward()
    optimizer.step()
    # Out of the new channels of g_s's last layer (a transposed convolution: in, out, ...).
    assert wide.g_s.up[3].weight[8:].abs().sum() > 0
    assert wide.g_a[6].weight[:, 8:].abs().sum() > 0


def test_a_widened_weights_file_codes_the_same_image(tmp_path):
    model = trained_like_model()
    narrow_path, wide_path = str(tmp_path / "narrow.pt"), str(tmp_path / "wide.pt")
    export_weights(model, narrow_path)
    export_weights(widen(model, 12), wide_path)
    narrow, wide = load_model(narrow_path), load_model(wide_path)
    image = make_photo_like(70, 100)
    narrow_file = ugcodec.encode(image, quality=2, model=narrow)
    wide_file = ugcodec.encode(image, quality=2, model=wide)
    narrow_latents, wide_latents = ugcodec.parse_latents(narrow_file, narrow), ugcodec.parse_latents(wide_file, wide)
    assert torch.equal(wide_latents.z[:, :8], narrow_latents.z) and not wide_latents.z[:, 8:].any()
    assert torch.equal(wide_latents.y, narrow_latents.y)
    for preference in ("human", "machine"):
        a = np.asarray(ugcodec.decode(narrow_file, preference, model=narrow), dtype=np.int16)
        b = np.asarray(ugcodec.decode(wide_file, preference, model=wide), dtype=np.int16)
        # The same latents through the same weights; only float summation order may differ.
        assert np.abs(a - b).max() <= 1 and np.mean(a == b) > 0.999


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_a_latent_widened_without_synthesis_weights_decodes_as_before(beta):
    model = trained_like_model()
    grown = widen_latent(model, TINY_CONFIG.M + 6, synthesis_scale=0.0)
    assert grown.config == dataclasses.replace(TINY_CONFIG, M=TINY_CONFIG.M + 6)
    x = torch.rand(2, 3, 64, 128)
    quality, betas = torch.tensor([0, 2]), torch.full((2,), beta)
    with torch.no_grad():
        before, after = model(x, quality, betas), grown(x, quality, betas)
        z_before, z_after = model.h_a(model.g_a(x)), grown.h_a(grown.g_a(x))
    torch.testing.assert_close(after["x_hat"], before["x_hat"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z_after, z_before, rtol=1e-5, atol=1e-6)
    # The old latent channels cost what they did; the new ones cost bits of their own.
    old = TINY_CONFIG.M
    torch.testing.assert_close(after["likelihoods"]["y"][:, :old], before["likelihoods"]["y"], rtol=1e-5, atol=1e-7)
    assert (after["likelihoods"]["y"][:, old:] < 1).any()


def test_the_new_latent_channels_reach_the_picture_and_learn():
    model = trained_like_model()
    grown = widen_latent(model, TINY_CONFIG.M + 6).train()
    assert grown.g_s.up[0].weight[TINY_CONFIG.M :].abs().sum() > 0
    x = torch.rand(2, 3, 64, 64)
    out = grown(x, torch.tensor([0, 1]), torch.tensor([0.0, 1.0]))
    torch.mean((out["x_hat"] - x) ** 2).backward()
    assert grown.g_a[6].weight.grad[TINY_CONFIG.M :].abs().sum() > 0
    with pytest.raises(ValueError, match="fewer"):
        widen_latent(model, TINY_CONFIG.M - 1)


def test_added_levels_keep_the_old_ones_and_continue_their_gains():
    model = trained_like_model()
    lambdas = tuple(TINY_CONFIG.lambdas) + (4 * TINY_CONFIG.lambdas[-1],)
    grown = add_levels(model, lambdas)
    assert grown.config.lambdas == lambdas
    x = torch.rand(1, 3, 64, 64)
    levels = len(TINY_CONFIG.lambdas)
    with torch.no_grad():
        for level in range(levels):
            q = torch.tensor([level])
            torch.testing.assert_close(grown(x, q, torch.zeros(1))["x_hat"], model(x, q, torch.zeros(1))["x_hat"])
    # Four times lambda: twice the gain (half the quantisation step).
    torch.testing.assert_close(grown.gain(torch.tensor([levels])), 2 * model.gain(torch.tensor([levels - 1])))
    with pytest.raises(ValueError, match="extend"):
        add_levels(model, lambdas[1:])
