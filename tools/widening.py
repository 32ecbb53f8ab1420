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
cost almost no bits; the old channels' likelihoods are unchanged. The latent y (M
channels) is not widened: its new channels would cost bits for any value they took, so
training never uses them (tools/EXPERIMENTS.md, "Growing the latent").
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from ugcodec._compressai import GDN
from ugcodec.models import UGHyperprior

__all__ = ["widen"]


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
    if channels < old_channels:
        raise ValueError(f"cannot widen N={old_channels} to fewer channels ({channels})")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        wide = UGHyperprior(dataclasses.replace(model.config, N=channels))
    old_modules = dict(model.named_modules())
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
