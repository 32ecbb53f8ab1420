"""g_s's residual blocks by Winograd convolution, for float32 decoding on CPUs.

A full residual block of g_s is two 3x3 convolutions over N channels, and at half the
image's resolution those two are most of the decoder's arithmetic. NNPACK, which PyTorch
bundles on x86-64 and ARM, computes a 3x3 convolution by Winograd's F(6x6, 3x3): about a
fifth of the multiplications of the direct convolution that oneDNN runs, in float32
throughout, so the result differs from the direct one by float rounding alone (relative
errors near 1e-5, far inside bitstream_spec.md §11's one-level pixel tolerance).

NNPACK works on NCHW tensors while the decoder keeps g_s's activations channels-last (the
layout oneDNN's transposed convolutions and GDNs run fastest in). A whole-tensor layout
change walks memory with a large stride and costs a good part of what Winograd saves, so
:class:`WinogradResidualBlock` converts a few rows at a time, which stays in cache, and
adds the identity before converting back (an addition across layouts is slower than a
copy). Blocks over small grids (below :data:`MIN_AREA` positions) gain nothing from it
and run as before.

Where NNPACK is missing or fails its self-test, :func:`winograd_synthesis` returns g_s
unchanged, so decoding never depends on it.

    >>> import torch
    >>> from ugcodec.models import PreferenceConditionalSynthesis
    >>> g_s = PreferenceConditionalSynthesis(N=8, M=12, embedding_dim=8).eval()
    >>> fast = winograd_synthesis(g_s)
    >>> y_hat, beta = torch.randn(1, 12, 20, 20), torch.tensor([0.0])
    >>> with torch.no_grad():
    ...     exact, winograd = g_s(y_hat, beta), fast(y_hat, beta)
    >>> bool((winograd - exact).abs().max() < 1e-3)
    True
"""
from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import ShiftedResidualBlock

__all__ = ["MIN_AREA", "WinogradResidualBlock", "nnpack_available", "winograd_conv3x3", "winograd_synthesis"]

#: Blocks whose input has fewer positions (height x width) than this run directly: below
#: it, NNPACK's set-up and the layout changes cost more than the multiplications saved.
MIN_AREA = 64 * 64

#: Rows converted between layouts at a time: a band of them stays in the CPU's cache.
_BAND_ROWS = 4


@functools.lru_cache(maxsize=None)
def nnpack_available() -> bool:
    """Whether NNPACK runs here and agrees with the direct convolution on a small probe.

    PyTorch initialises NNPACK in ``torch.backends.nnpack.is_available()``; without that
    call its convolutions fail, so this is asked before the first use.
    """
    try:
        if not torch.backends.nnpack.is_available():
            return False
        generator = torch.Generator().manual_seed(0)
        x = torch.randn((1, 8, 9, 11), generator=generator)
        weight = torch.randn((8, 8, 3, 3), generator=generator)
        bias = torch.randn((8,), generator=generator)
        with torch.no_grad():
            probe = torch._nnpack_spatial_convolution(x, weight, bias, [1, 1])
            direct = F.conv2d(x, weight, bias, padding=1)
        return bool(torch.allclose(probe, direct, rtol=1e-4, atol=1e-4))
    except (RuntimeError, AttributeError):
        return False


def winograd_conv3x3(x: Tensor, convolution: nn.Conv2d) -> Tensor:
    """``convolution(x)`` by NNPACK's Winograd algorithm.

    Args:
        x: float32 ``(B, C, H, W)``, NCHW-contiguous.
        convolution: a 3x3, stride 1, padding 1 convolution with a bias.

    Returns:
        float32 ``(B, O, H, W)``, NCHW-contiguous.

    Raises:
        RuntimeError: NNPACK is not initialised (see :func:`nnpack_available`) or rejects
            the shapes.
    """
    return torch._nnpack_spatial_convolution(x, convolution.weight, convolution.bias, [1, 1])


def _copy_into(x: Tensor, other: Tensor) -> Tensor:
    """``x[:] = other`` a band of rows at a time (the two may differ in layout); returns x."""
    for top in range(0, x.shape[2], _BAND_ROWS):
        x[:, :, top : top + _BAND_ROWS].copy_(other[:, :, top : top + _BAND_ROWS])
    return x


class WinogradResidualBlock(nn.Module):
    """A :class:`~ugcodec.layers.ShiftedResidualBlock` whose two convolutions run by
    :func:`winograd_conv3x3` on float32 inputs of at least :data:`MIN_AREA` positions
    when no gradients are recorded (otherwise the block runs as it is). It shares the
    block's parameters. In inference mode a channels-last input is overwritten with the
    output.

    Args:
        block: the block to run.
    """

    def __init__(self, block: ShiftedResidualBlock) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        small = x.shape[-2] * x.shape[-1] < MIN_AREA
        if small or x.dtype != torch.float32 or torch.is_grad_enabled():
            return self.block(x, embedding)
        block = self.block
        slope = block.activation.negative_slope
        planar = x if x.is_contiguous() else _copy_into(torch.empty(x.shape, dtype=x.dtype), x)
        out = F.leaky_relu_(winograd_conv3x3(planar, block.conv1), slope)
        out.add_(block.shift1(embedding)[:, :, None, None])
        out = F.leaky_relu_(winograd_conv3x3(out, block.conv2), slope)
        out.add_(block.shift2(embedding)[:, :, None, None]).add_(planar)
        if planar is x:
            return out
        # Back to x's channels-last layout. In inference mode x (g_s's intermediate, not
        # kept) takes the sum itself, which saves a tensor of its size.
        total = x if torch.is_inference_mode_enabled() else torch.empty_like(x)
        return _copy_into(total, out)


def winograd_synthesis(g_s: nn.Module) -> nn.Module:
    """``g_s`` (a :class:`~ugcodec.models.PreferenceConditionalSynthesis`) with its full
    residual blocks run by :class:`WinogradResidualBlock`, where NNPACK works; otherwise
    ``g_s`` itself. Bottleneck blocks and machine adapters keep their direct
    convolutions (their 3x3 convolutions are narrow). For inference only.

    Args:
        g_s: the synthesis; left unchanged (the result shares its parameters).

    Returns:
        a module with ``g_s``'s call signature, ``(y_hat, beta) -> image``.
    """
    if not nnpack_available() or not any(isinstance(block, ShiftedResidualBlock) for block in g_s.blocks):
        return g_s
    fast = copy.copy(g_s)  # shallow: the same parameters, its own module lists
    fast._modules = dict(g_s._modules)
    fast.blocks = nn.ModuleList([
        WinogradResidualBlock(block) if isinstance(block, ShiftedResidualBlock) else block for block in g_s.blocks
    ])
    return fast.eval()
