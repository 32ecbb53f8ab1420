"""Building blocks of the preference-conditional synthesis transform.

The Preference Conditional Decoding Module (PCDM) follows the UG-ICM paper's released
code: a scalar preference beta (0 = human, 1 = machine) is embedded with Fourier features
and a small MLP, and every residual block of g_s adds a per-channel shift computed from
that embedding after each activation. Optionally, a machine adapter after each block
adds a residual that is scaled by beta itself, so the human decoding (beta = 0) is exactly
the decoder without it. Everything else comes from compressai.layers.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _compressai
from ._compressai import conv3x3

__all__ = [
    "BottleneckResidualBlock",
    "FourierPreferenceEmbedding",
    "GDN",
    "MachineAdapter",
    "ShiftedResidualBlock",
    "straight_through_round",
]


def straight_through_round(x: Tensor) -> Tensor:
    """``round(x)`` in the forward pass, the identity's gradient in the backward pass.

    >>> x = torch.tensor([0.4, 1.6], requires_grad=True)
    >>> y = straight_through_round(x)
    >>> y.tolist()
    [0.0, 2.0]
    >>> y.sum().backward(); x.grad.tolist()
    [1.0, 1.0]
    """
    return x + (torch.round(x) - x).detach()


class GDN(_compressai.GDN):
    """compressai's GDN (same parameters, same results). Without gradients (coding) it
    reuses its own temporaries: the same operations on the same values, so the same
    bits, with two image-sized tensors fewer to allocate and fill."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            return super().forward(x)
        channels = x.shape[1]
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(channels, channels, 1, 1)
        norm = F.conv2d(x**2, gamma, beta)
        norm = norm.sqrt_() if self.inverse else norm.rsqrt_()
        return norm.mul_(x)


class FourierPreferenceEmbedding(nn.Module):
    """Embeds a preference beta in [0, 1] as ``[beta, sin(2^k*pi*beta), cos(2^k*pi*beta)]``
    followed by a two-layer MLP.

    Args:
        num_frequencies: number K of octaves in the Fourier features.
        dim: width of the returned embedding.

    Shape:
        beta: ``(B,)``; returns ``(B, dim)``.
    """

    def __init__(self, num_frequencies: int = 4, dim: int = 64) -> None:
        super().__init__()
        self.register_buffer(
            "frequencies",
            math.pi * (2.0 ** torch.arange(num_frequencies, dtype=torch.float32)),
            persistent=False,
        )
        self.mlp = nn.Sequential(
            nn.Linear(1 + 2 * num_frequencies, dim),
            nn.SiLU(),
            nn.Linear(dim, dim),
            nn.SiLU(),
        )
        self.dim = dim

    def forward(self, beta: Tensor) -> Tensor:
        beta = beta.reshape(-1, 1).to(self.frequencies.dtype)
        angles = beta * self.frequencies
        return self.mlp(torch.cat([beta, torch.sin(angles), torch.cos(angles)], dim=1))


class _PreferenceShiftedResidual(nn.Module):
    """``x + last(shift2 + act(second(shift1 + act(first(x)))))``: what both residual
    blocks of g_s share. ``act`` is a LeakyReLU; the shifts are per-channel and computed
    from the preference embedding, and their projections start at zero, so that before
    training both preferences decode alike. Subclasses make their convolutions, then
    call :meth:`_add_shifts`, and say which are ``first``, ``second`` and ``last``."""

    def _add_shifts(self, channels: int, embedding_dim: int) -> None:
        self.activation = nn.LeakyReLU(inplace=False)
        self.shift1 = nn.Linear(embedding_dim, channels)
        self.shift2 = nn.Linear(embedding_dim, channels)
        for projection in (self.shift1, self.shift2):
            nn.init.zeros_(projection.weight)
            nn.init.zeros_(projection.bias)

    def _stages(self) -> "tuple[nn.Module, nn.Module, Optional[nn.Module]]":
        raise NotImplementedError

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        if not torch.is_grad_enabled():  # coding: the branch's own output takes the sum
            return self.branch(x, embedding).add_(x)
        return x + self.branch(x, embedding)

    def branch(self, x: Tensor, embedding: Tensor) -> Tensor:
        """The residual alone, without the identity: in ``x``'s dtype, so that a copy of
        the block in another precision can run it and add it to a wider ``x`` (see
        :mod:`ugcodec.precision`)."""
        first, second, last = self._stages()
        if not torch.is_grad_enabled():  # coding: the same operations, in place
            slope = self.activation.negative_slope
            out = F.leaky_relu_(first(x), slope).add_(self.shift1(embedding)[:, :, None, None])
            out = F.leaky_relu_(second(out), slope).add_(self.shift2(embedding)[:, :, None, None])
            return out if last is None else last(out)
        out = self.activation(first(x)) + self.shift1(embedding)[:, :, None, None]
        out = self.activation(second(out)) + self.shift2(embedding)[:, :, None, None]
        return out if last is None else last(out)


class ShiftedResidualBlock(_PreferenceShiftedResidual):
    """conv3x3 - LeakyReLU - shift - conv3x3 - LeakyReLU - shift, plus the identity.

    The shifts are per-channel and computed from the preference embedding. Their
    projections start at zero so that, before training, both preferences decode alike.
    """

    def __init__(self, channels: int, embedding_dim: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)
        self._add_shifts(channels, embedding_dim)

    def _stages(self) -> "tuple[nn.Module, nn.Module, Optional[nn.Module]]":
        return self.conv1, self.conv2, None


class BottleneckResidualBlock(_PreferenceShiftedResidual):
    """conv1x1 (C to h) - LeakyReLU - shift - conv3x3 (h to h) - LeakyReLU - shift -
    conv1x1 (h to C), plus the identity: a cheaper stand-in for
    :class:`ShiftedResidualBlock` with the same interface.

    The full block's two 3x3 convolutions over C channels cost ``18 C^2`` multiply-adds
    per pixel, which at the synthesis's highest resolution dominate decoding; this one
    costs ``2 C h + 9 h^2`` (a few times less for ``h <= C / 2``). The preference enters
    the same way, as per-channel shifts (here of the ``h`` inner channels) after each
    activation; their projections start at zero, so before training both preferences
    decode alike. There is no activation after the last convolution: it only maps the
    inner channels back to the residual.

    Args:
        channels: C, the channels of the input and output.
        width: h, the inner channels.
        embedding_dim: width of the preference embedding.

    Raises:
        ValueError: ``width`` is not positive.

    Shape:
        x: ``(B, C, H, W)``; embedding: ``(B, embedding_dim)``; returns ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, width: int, embedding_dim: int) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"the bottleneck width must be positive, not {width}")
        self.reduce = nn.Conv2d(channels, width, kernel_size=1)
        self.conv = conv3x3(width, width)
        self.expand = nn.Conv2d(width, channels, kernel_size=1)
        self._add_shifts(width, embedding_dim)

    def _stages(self) -> "tuple[nn.Module, nn.Module, Optional[nn.Module]]":
        return self.reduce, self.conv, self.expand


class MachineAdapter(nn.Module):
    """``x + beta * residual(x)``: capacity that only the machine decoding uses.

    The per-channel shifts of :class:`ShiftedResidualBlock` can only move whole channels;
    this block lets beta change the synthesis spatially (texture, edges) as well. It is
    gated by beta itself, so at beta = 0 it returns its input unchanged (and is not
    evaluated), and adding it to trained weights leaves their human decoding exactly as
    it was. Its last convolution starts at zero: a new adapter changes nothing.

    With ``width`` 0 the residual is conv3x3 - LeakyReLU - conv3x3 over the C channels
    (``18 C^2`` multiply-adds per pixel, as much as a residual block of g_s); with
    ``width`` h > 0 it is conv1x1 (C to h) - LeakyReLU - conv3x3 (h to h) - LeakyReLU -
    conv1x1 (h to C), ``2 C h + 9 h^2``, so that the machine decoding costs little more
    than the human one.

    Args:
        channels: C, the channels of the input and output.
        width: h, the inner channels of the bottleneck form; 0 for the full form.

    Raises:
        ValueError: ``width`` is negative.

    Shape:
        x: ``(B, C, H, W)``; gate: ``(B,)`` (beta per sample); returns ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, width: int = 0) -> None:
        super().__init__()
        if width < 0:
            raise ValueError(f"the adapter width must be 0 (full) or positive, not {width}")
        self.activation = nn.LeakyReLU(inplace=False)
        if width:
            self.reduce = nn.Conv2d(channels, width, kernel_size=1)
            self.conv = conv3x3(width, width)
            self.expand = nn.Conv2d(width, channels, kernel_size=1)
            layers = [self.reduce, self.conv, self.expand]
        else:
            self.conv1 = conv3x3(channels, channels)
            self.conv2 = conv3x3(channels, channels)
            layers = [self.conv1, self.conv2]
        self._layers = layers  # the registered convolutions above, in order
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)

    def forward(self, x: Tensor, gate: Tensor) -> Tensor:
        gate = gate.reshape(-1).to(x.dtype)
        if not bool(torch.any(gate != 0)):
            return x
        gate = gate[:, None, None, None]
        if not torch.is_grad_enabled():  # coding: the same operations, in place
            return self.residual(x).mul_(gate).add_(x)
        return x + gate * self.residual(x)

    @property
    def last(self) -> nn.Conv2d:
        """The residual's last convolution (zero at first: the adapter then is the identity)."""
        return self._layers[-1]

    def is_identity(self) -> bool:
        """Whether the adapter returns its input for every gate: its last convolution is
        all zeros."""
        return not (bool(self.last.weight.detach().any()) or bool(self.last.bias.detach().any()))

    def residual(self, x: Tensor) -> Tensor:
        """The residual before the gate, in ``x``'s dtype (see :meth:`_PreferenceShiftedResidual.branch`)."""
        return self.last(self.hidden(x))

    def hidden(self, x: Tensor) -> Tensor:
        """The activations the last convolution of the residual takes: ``(B, h, H, W)``
        for the bottleneck form, ``(B, C, H, W)`` for the full one."""
        hidden = x
        for layer in self._layers[:-1]:
            if torch.is_grad_enabled():
                hidden = self.activation(layer(hidden))
            else:  # coding: in place
                hidden = F.leaky_relu_(layer(hidden), self.activation.negative_slope)
        return hidden
