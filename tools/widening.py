"""Function-preserving widening of a trained model's transforms (more channels N).

The shipped transforms sit at their capacity (``benchmarks/capacity.py``), and training a
wider model from scratch takes far longer than these machines allow. Widening keeps what
the trained model knows: every new channel gets fresh weights *into* it (the default
initialisation of a model of the new size) and zero weights *out of it* into the old
channels, and the old channels' GDN ignores the new ones. So the widened model decodes
as the trained one did (up to float summation order: the convolutions add zeros for the
new channels); training then grows the new channels' outgoing weights
from zero (their gradient is not zero: the new channels carry nonzero activations).

What changes at once: the hyper-latent z gains channels (N is also its width). They are
exactly zero at first (h_a's last convolution has zero weights and biases into them),
and their factorized density is a copy of the old channel most sure of zero, so they
cost almost no bits; the old channels' likelihoods are unchanged.

:func:`widen_latent` grows the latent y (M channels) the same way, with one difference:
a new latent channel that g_s ignores only costs bits, so training would silence it
(tools/EXPERIMENTS.md, "Growing the latent"). Its weights into g_s therefore start small
but not zero (``synthesis_scale``), and the hyper-synthesis predicts for it a typical
scale of the old channels instead of a degenerate one. :func:`add_levels` appends
quality levels whose gains continue the trained ones.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from ugcodec._compressai import GDN
from ugcodec.models import UGHyperprior

__all__ = ["add_levels", "widen", "widen_latent"]


@torch.no_grad()
def widen(model: UGHyperprior, channels: int, seed: int = 0) -> UGHyperprior:
    """A copy of ``model`` with ``channels`` instead of ``model.config.N`` channels in
    g_a, h_a, h_s's input, g_s and the hyper-latent, decoding as ``model`` does.

    Args:
        model: the trained model (left unchanged).
        channels: the new N, at least the old one.
        seed: seeds the fresh weights into the new channels.

    Returns:
        A new :class:`UGHyperprior` (same M, levels and preference embedding) in the
        mode ``model`` was in. Its outputs ``x_hat`` and ``likelihoods["y"]`` equal
        ``model``'s up to float summation order; ``likelihoods["z"]`` does on the old
        channels, and the new channels of z are exactly zero.

    Raises:
        ValueError: ``channels`` is smaller than the model's N.
    """
    old_channels = model.config.N
    wide, old_modules = _grown_copy(model, seed, "N", channels)
    for name, module in wide.named_modules():
        if isinstance(module, (GDN, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            _copy_layer(module, old_modules[name])
    # The new channels of z start at exactly zero, as if absent.
    last = wide.h_a[-1]
    last.weight[old_channels:] = 0
    last.bias[old_channels:] = 0
    # Their density: a copy of the old channel most sure of zero, so they cost (almost) no bits.
    likelihood_of_zero, _, _ = model.entropy_bottleneck._likelihood(torch.zeros(old_channels, 1, 1))
    surest = int(torch.argmax(likelihood_of_zero.flatten()))
    old_bottleneck = dict(model.entropy_bottleneck.named_parameters())
    for name, tensor in wide.entropy_bottleneck.named_parameters():
        _copy_tensor(tensor, old_bottleneck[name])
        tensor[old_channels:] = old_bottleneck[name][surest]
    _copy_tensor(wide.log_gain, model.log_gain)
    _copy_tensor(wide.log_inverse_gain, model.log_inverse_gain)
    return wide.train(model.training)


def _grown_copy(model: UGHyperprior, seed: int, size: str, channels: int) -> "tuple[UGHyperprior, dict]":
    """A freshly initialised model of ``model``'s config with ``size`` ("N" or "M") set to
    ``channels``, and ``model``'s modules by name.

    Raises:
        ValueError: ``channels`` is below the model's current ``size``.
    """
    old = getattr(model.config, size)
    if channels < old:
        raise ValueError(f"cannot widen {size}={old} to fewer channels ({channels})")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        grown = UGHyperprior(dataclasses.replace(model.config, **{size: channels}))
    return grown, dict(model.named_modules())


def _copy_tensor(new: Tensor, old: Tensor) -> None:
    """Copies ``old`` into the leading corner of ``new`` (the old channels come first)."""
    new[tuple(slice(0, size) for size in old.shape)] = old


def _copy_layer(new: nn.Module, old: nn.Module) -> None:
    """Copies one layer's trained weights and cuts the old channels off from the new ones."""
    if isinstance(new, GDN):
        _copy_tensor(new.beta, old.beta)
        _copy_tensor(new.gamma, old.gamma)
        # gamma[i, j] weighs input j in the normaliser of output i (a 1x1 convolution).
        cross = new.gamma[: old.gamma.shape[0], old.gamma.shape[1] :]
        cross.copy_(new.gamma_reparam.init(torch.zeros_like(cross)))
        return
    _copy_tensor(new.weight, old.weight)
    if isinstance(new, nn.ConvTranspose2d):  # weight: (in, out, kh, kw)
        new.weight[old.weight.shape[0] :, : old.weight.shape[1]] = 0
    else:  # weight: (out, in, ...)
        new.weight[: old.weight.shape[0], old.weight.shape[1] :] = 0
    if new.bias is not None:
        _copy_tensor(new.bias, old.bias)


@torch.no_grad()
def widen_latent(model: UGHyperprior, channels: int, seed: int = 0, synthesis_scale: float = 0.1) -> UGHyperprior:
    """A copy of ``model`` with ``channels`` instead of ``model.config.M`` latent channels.

    The new channels of y get fresh weights from g_a; h_a ignores them (z is unchanged);
    the hyper-synthesis's hidden layers grow as in :func:`widen`; its outputs for the new
    channels start at mean 0 and the median scale of the old ones; g_s reads them through
    fresh weights scaled by ``synthesis_scale``; their gains are each level's mean gain.

    Args:
        model: the trained model (left unchanged).
        channels: the new M, at least the old one.
        seed: seeds the fresh weights.
        synthesis_scale: factor on g_s's fresh weights from the new channels. With 0, the
            model decodes as ``model`` does (up to float summation order) and the old
            channels' likelihoods are unchanged; above 0 the pixels change by the new
            channels' small contribution.

    Returns:
        A new :class:`UGHyperprior` in the mode ``model`` was in.

    Raises:
        ValueError: ``channels`` is smaller than the model's M.
    """
    old_m = model.config.M
    wide, old_modules = _grown_copy(model, seed, "M", channels)
    for name, module in wide.named_modules():
        if name in ("h_s.4", "g_s.up.0"):
            continue
        if isinstance(module, (GDN, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            _copy_layer(module, old_modules[name])
    # g_s's first layer (ConvTranspose2d, weight (in=M, out=N)): old inputs as trained.
    g_s_in, old_in = wide.g_s.up[0], model.g_s.up[0]
    g_s_in.weight[old_m:] *= synthesis_scale
    g_s_in.weight[:old_m] = old_in.weight
    g_s_in.bias.copy_(old_in.bias)
    # h_s's last convolution: outputs [means (M) | scales (M)] become [means (M') | scales (M')].
    last, old_last = wide.h_s[-1], model.h_s[-1]
    hidden = old_last.weight.shape[1]
    last.weight.zero_()
    last.bias.zero_()
    last.weight[:old_m, :hidden] = old_last.weight[:old_m]
    last.weight[channels : channels + old_m, :hidden] = old_last.weight[old_m:]
    last.bias[:old_m] = old_last.bias[:old_m]
    last.bias[channels : channels + old_m] = old_last.bias[old_m:]
    last.bias[channels + old_m :] = old_last.bias[old_m:].median()
    for name in ("log_gain", "log_inverse_gain"):
        old, new = getattr(model, name), getattr(wide, name)
        new[:, :old_m] = old
        new[:, old_m:] = old.mean(dim=1, keepdim=True)
    return wide.train(model.training)


@torch.no_grad()
def add_levels(model: UGHyperprior, lambdas: "tuple[float, ...]") -> UGHyperprior:
    """A copy of ``model`` with the quality levels ``lambdas``, which must begin with the
    model's own: the old levels keep their gains, each new one continues from the last
    trained gain by the square root of its lambda ratio (quantisation step ~ 1/gain,
    distortion ~ step^2).

    Raises:
        ValueError: ``lambdas`` does not start with the model's levels, or is not increasing.
    """
    old = tuple(model.config.lambdas)
    lambdas = tuple(float(value) for value in lambdas)
    if lambdas[: len(old)] != old or any(b <= a for a, b in zip(lambdas, lambdas[1:])):
        raise ValueError(f"new levels {lambdas} must extend {old} with increasing lambdas")
    grown = UGHyperprior(dataclasses.replace(model.config, lambdas=lambdas))
    state = model.state_dict()
    for name, sign in (("log_gain", 1.0), ("log_inverse_gain", -1.0)):
        rows = [state[name]]
        for value in lambdas[len(old) :]:
            rows.append(state[name][-1:] + sign * 0.5 * torch.log(torch.tensor(value / old[-1])))
        state[name] = torch.cat(rows)
    grown.load_state_dict(state)
    return grown.train(model.training)
