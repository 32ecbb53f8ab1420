"""g_s's residual blocks and upsamplings, and g_a's downsamplings, by Winograd
convolution, for float32 coding on CPUs.

A full residual block of g_s is two 3x3 convolutions over N channels, and at half the
image's resolution those two are most of the decoder's arithmetic. NNPACK, which PyTorch
bundles on x86-64 and ARM, computes a 3x3 convolution by Winograd's F(6x6, 3x3): about a
fifth of the multiplications of the direct convolution that oneDNN runs, in float32
throughout, so the result differs from the direct one by float rounding alone (relative
errors near 1e-5, far inside bitstream_spec.md §11's one-level pixel tolerance).

NNPACK works on NCHW tensors, while a block's input may be channels-last (the layout
oneDNN's transposed convolutions run fastest in, and the decoder's input). A layout change by an
elementwise strided copy walks memory with a large stride and costs a good part of what
Winograd saves; seen as a matrix of positions by channels it is a transpose, which
PyTorch copies block by block in cache, so :class:`WinogradResidualBlock` converts that
way, and adds the identity before converting back (an addition across layouts is slower
than a copy). Blocks over small grids (below :data:`MIN_AREA` positions) gain nothing
from it and run as before.

g_s's upsamplings are 5x5 transposed convolutions of stride 2; by output phase (even or
odd row and column) each is a 3x3 convolution to four times the channels followed by a
pixel shuffle (:func:`subpixel_convolution`), which NNPACK computes in fewer
multiplications than oneDNN's transposed convolution despite the zero taps. With both
kinds of layer on NNPACK, g_s stays NCHW from its first upsampling to its last
(:class:`WinogradUpsampling`), so no layout changes remain between them.

g_a's downsamplings are 5x5 convolutions of stride 2: by input phase each is a 3x3
convolution from four times the channels over the output grid
(:func:`polyphase_convolution`), applied to the input rearranged space-to-depth
(``F.pixel_unshuffle(x, 2)``). :class:`WinogradAnalysis` runs g_a that way, its GDNs
writing their outputs straight into that arrangement
(:meth:`~ugcodec.scratch.ScratchGDN.space_to_depth`), so g_a's convolutions, too, take
a fraction of the direct ones' multiplications. The latent differs from the direct
convolutions' by float rounding, so a symbol may round the other way: the file is as
valid as any other.

Where NNPACK is missing or fails its self-test (:func:`nnpack_available`), the float32
synthesis (:func:`ugcodec.precision.float32_synthesis`) keeps the blocks as they are, so
decoding never depends on it. NNPACK's thread pool is sized once per process, so the
layers also run directly at any other thread count (:func:`winograd_runs_now`).

    >>> import torch
    >>> from ugcodec.layers import ShiftedResidualBlock
    >>> block = ShiftedResidualBlock(8, 4).eval()
    >>> x, embedding = torch.randn(1, 8, 70, 70), torch.randn(1, 4)
    >>> with torch.no_grad():
    ...     exact, winograd = block(x, embedding), WinogradResidualBlock(block)(x, embedding)
    >>> bool((winograd - exact).abs().max() < 1e-3)
    True
"""
from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import GDN, ShiftedResidualBlock
from .scratch import UPSAMPLING_ROLES, ScratchGDN, scratch

__all__ = [
    "MIN_AREA",
    "WinogradAnalysis",
    "WinogradConvolution",
    "WinogradResidualBlock",
    "WinogradUpsampling",
    "nnpack_available",
    "nnpack_threads",
    "polyphase_convolution",
    "subpixel_convolution",
    "winograd_conv3x3",
    "winograd_runs_now",
]

#: Blocks whose input has fewer positions (height x width) than this run directly: below
#: it, NNPACK's set-up and the layout changes cost more than the multiplications saved.
MIN_AREA = 64 * 64


def nnpack_available() -> bool:
    """Whether NNPACK runs here and agrees with the direct convolution on a small probe
    (run once per process).

    PyTorch initialises NNPACK in ``torch.backends.nnpack.is_available()``; without that
    call its convolutions fail, so this is asked before the first use.
    """
    return nnpack_threads() is not None


def winograd_runs_now() -> bool:
    """Whether :class:`WinogradResidualBlock` and :class:`WinogradUpsampling` take
    NNPACK's path at PyTorch's present thread count: only where NNPACK's pool has as many threads, so that a decoder asked
    for one thread uses one, and one asked for more gets them (the direct convolutions
    use them; a smaller pool would leave them idle)."""
    threads = nnpack_threads()
    return threads is not None and threads == torch.get_num_threads()


@functools.lru_cache(maxsize=None)
def nnpack_threads() -> Optional[int]:
    """How many threads NNPACK's convolutions use in this process, or None where NNPACK
    does not run or disagrees with the direct convolution on a small probe.

    PyTorch makes NNPACK's thread pool at its first convolution, of as many threads as
    it uses itself at that moment, and keeps it: the probe here is ugcodec's first NNPACK
    convolution, and this is the count it saw.
    """
    try:
        if not torch.backends.nnpack.is_available():
            return None
        generator = torch.Generator().manual_seed(0)
        x = torch.randn((1, 8, 9, 11), generator=generator)
        weight = torch.randn((8, 8, 3, 3), generator=generator)
        bias = torch.randn((8,), generator=generator)
        threads = torch.get_num_threads()
        with torch.no_grad():
            probe = torch._nnpack_spatial_convolution(x, weight, bias, [1, 1])
            direct = F.conv2d(x, weight, bias, padding=1)
        return threads if bool(torch.allclose(probe, direct, rtol=1e-4, atol=1e-4)) else None
    except (RuntimeError, AttributeError):
        return None


def _winograd_applies(x: Tensor, min_area: int = MIN_AREA) -> bool:
    """Whether a layer here takes NNPACK's path on ``x``: float32, at least ``min_area``
    positions, no gradients recorded, and :func:`winograd_runs_now`."""
    return (x.shape[-2] * x.shape[-1] >= min_area and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and winograd_runs_now())


def winograd_conv3x3(x: Tensor, convolution: nn.Module) -> Tensor:
    """``convolution(x)`` by NNPACK's Winograd algorithm.

    Args:
        x: float32 ``(B, C, H, W)``, NCHW-contiguous.
        convolution: a 3x3, stride 1, padding 1 convolution with a bias (any module
            with float32 ``weight`` ``(O, C, 3, 3)`` and ``bias`` ``(O,)``).

    Returns:
        float32 ``(B, O, H, W)``, NCHW-contiguous.

    Raises:
        RuntimeError: NNPACK is not initialised (see :func:`nnpack_available`) or rejects
            the shapes.
    """
    return torch._nnpack_spatial_convolution(x, convolution.weight, convolution.bias, [1, 1])


class WinogradConvolution(nn.Module):
    """A 3x3 convolution (stride 1, padding 1, with a bias) that runs by
    :func:`winograd_conv3x3` on float32 NCHW-contiguous inputs of at least
    :data:`MIN_AREA` positions when no gradients are recorded and
    :func:`winograd_runs_now`, and as it is otherwise. It shares the convolution's
    parameters.

    Args:
        convolution: the convolution to run.
    """

    def __init__(self, convolution: nn.Conv2d) -> None:
        super().__init__()
        self.convolution = convolution

    def forward(self, x: Tensor) -> Tensor:
        if not (x.is_contiguous() and _winograd_applies(x)):
            return self.convolution(x)
        return winograd_conv3x3(x, self.convolution)


def _copy_into(x: Tensor, other: Tensor) -> Tensor:
    """``x[:] = other`` where one of the two is NCHW-contiguous and the other channels-last
    (otherwise a plain copy); returns x. Each sample is copied as the transpose of a
    positions-by-channels matrix."""
    channels = x.shape[1]
    if x.is_contiguous():
        for target, source in zip(x, other):
            target.view(channels, -1).copy_(source.permute(1, 2, 0).reshape(-1, channels).t())
    elif x.is_contiguous(memory_format=torch.channels_last):
        for target, source in zip(x, other):
            target.permute(1, 2, 0).view(-1, channels).copy_(source.reshape(channels, -1).t())
    else:
        x.copy_(other)
    return x


class WinogradResidualBlock(nn.Module):
    """A :class:`~ugcodec.layers.ShiftedResidualBlock` whose two convolutions run by
    :func:`winograd_conv3x3` on float32 inputs of at least :data:`MIN_AREA` positions
    when no gradients are recorded and :func:`winograd_runs_now` (otherwise the block
    runs as it is).
    It shares the block's parameters. Its NCHW copy of a channels-last input is a
    :func:`~ugcodec.scratch.scratch` temporary, and in inference mode the input itself
    is overwritten with the output.

    Args:
        block: the block to run.
    """

    def __init__(self, block: ShiftedResidualBlock) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        if not _winograd_applies(x):
            return self.block(x, embedding)
        block = self.block
        slope = block.activation.negative_slope
        planar = x if x.is_contiguous() else _copy_into(scratch(0, x.shape), x)
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


#: For each output phase (even or odd row, or column) of a 5x5 transposed convolution of
#: stride 2 and padding 2, the kernel taps that meet input offsets -1, 0 and +1.
_PHASE_TAPS = ((4, 2, 0), (None, 3, 1))


def subpixel_convolution(deconv: nn.ConvTranspose2d) -> Tuple[Tensor, Tensor]:
    """The 3x3 convolution (stride 1, padding 1) that computes ``deconv`` by phases.

    Each output pixel of a 5x5 transposed convolution of stride 2 (padding 2, output
    padding 1) sums a 3x3, 3x2, 2x3 or 2x2 neighbourhood of the input, depending on
    whether its row and column are even or odd. Those four sub-kernels, zero-padded to
    3x3, make a convolution from C to 4 O channels over the input grid, and
    ``F.pixel_shuffle(convolution(x), 2)`` equals ``deconv(x)`` to float rounding.

    Args:
        deconv: ``nn.ConvTranspose2d(C, O, 5, stride=2, padding=2, output_padding=1)``
            with a bias (compressai's ``deconv``).

    Returns:
        ``(weight, bias)``: float32 ``(4 O, C, 3, 3)`` and ``(4 O,)``, output channel
        ``4 o + 2 row_phase + column_phase``.

    Raises:
        ValueError: ``deconv`` has another kernel, stride, padding, output padding,
            dilation or groups, or no bias.
    """
    _check_geometry(deconv, nn.ConvTranspose2d, dict(
        kernel_size=(5, 5), stride=(2, 2), padding=(2, 2), output_padding=(1, 1), dilation=(1, 1), groups=1))
    source = deconv.weight.detach().float()  # (C, O, 5, 5)
    channels, outputs = source.shape[:2]
    weight = source.new_zeros(outputs, 2, 2, channels, 3, 3)
    for row_phase, row_taps in enumerate(_PHASE_TAPS):
        for column_phase, column_taps in enumerate(_PHASE_TAPS):
            for row, ky in enumerate(row_taps):
                for column, kx in enumerate(column_taps):
                    if ky is not None and kx is not None:
                        weight[:, row_phase, column_phase, :, row, column] = source[:, :, ky, kx].t()
    bias = deconv.bias.detach().float().repeat_interleave(4)
    return weight.reshape(4 * outputs, channels, 3, 3).contiguous(), bias


class WinogradUpsampling(nn.Module):
    """compressai's 5x5 stride-2 ``deconv`` as the :func:`subpixel_convolution` by
    NNPACK's Winograd algorithm and a pixel shuffle, on float32 inputs when no gradients
    are recorded and :func:`winograd_runs_now` (otherwise the transposed convolution runs
    as it is). The input is made NCHW-contiguous first, and the output is NCHW too, so
    that a synthesis whose upsamplings all run this way keeps NCHW from layer to layer
    and its Winograd residual blocks change no layout.

    Args:
        deconv: the transposed convolution (see :func:`subpixel_convolution`), whose
            weights are read once, here.
        role: the :func:`~ugcodec.scratch.scratch` role the output is written into, or
            None for a new tensor. Unlike a layer's temporaries, this output outlives the
            call (it is the next layers' input), so consecutive upsamplings of a
            synthesis take different roles, which no other layer uses.

    Raises:
        ValueError: as :func:`subpixel_convolution`.
    """

    def __init__(self, deconv: nn.ConvTranspose2d, role: Optional[int] = None) -> None:
        super().__init__()
        weight, bias = subpixel_convolution(deconv)
        self.deconv = deconv
        self.role = role
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if not _winograd_applies(x, min_area=0):
            return self.deconv(x)
        phases = winograd_conv3x3(x.contiguous(), self)  # (B, 4 O, H, W)
        batch, _, height, width = phases.shape
        outputs = self.weight.shape[0] // 4
        shape = (batch, outputs, 2 * height, 2 * width)
        out = torch.empty(shape) if self.role is None else scratch(self.role, shape)
        # (B, O, H, row phase, W, column phase) <- (B, O, row phase, column phase, H, W)
        out.view(batch, outputs, height, 2, width, 2).copy_(
            phases.view(batch, outputs, 2, 2, height, width).permute(0, 1, 4, 2, 5, 3))
        return out


def _check_geometry(layer: nn.Module, kind: type, expected: dict) -> None:
    found = {name: getattr(layer, name, None) for name in expected}
    if not isinstance(layer, kind) or found != expected or layer.bias is None:
        raise ValueError(f"not a 5x5 stride-2 {kind.__name__} with a bias: {found}")


def polyphase_convolution(conv: nn.Conv2d) -> Tuple[Tensor, Tensor]:
    """The 3x3 convolution (stride 1, padding 1) that computes ``conv`` on its input
    rearranged space-to-depth.

    A 5x5 convolution of stride 2 and padding 2 reads, for output position i, input rows
    2i - 2 ... 2i + 2: of the even rows 2(i - 1), 2i, 2(i + 1) and of the odd rows
    2(i - 1) + 1, 2i + 1. So on ``F.pixel_unshuffle(x, 2)``, whose channel
    ``4 c + 2 row_phase + column_phase`` holds those phases of channel c at half the
    resolution, it is a 3x3 convolution from 4 C channels (the odd phases' taps at
    offset +1 zero), and ``F.conv2d(F.pixel_unshuffle(x, 2), weight, bias, padding=1)``
    equals ``conv(x)`` to float rounding for even H and W.

    Args:
        conv: ``nn.Conv2d(C, O, 5, stride=2, padding=2)`` with a bias (compressai's ``conv``).

    Returns:
        ``(weight, bias)``: float32 ``(O, 4 C, 3, 3)`` and ``(O,)``.

    Raises:
        ValueError: ``conv`` has another kernel, stride, padding, dilation or groups, or
            no bias.
    """
    _check_geometry(conv, nn.Conv2d, dict(kernel_size=(5, 5), stride=(2, 2), padding=(2, 2), dilation=(1, 1), groups=1))
    source = conv.weight.detach().float()  # (O, C, 5, 5)
    outputs, channels = source.shape[:2]
    weight = source.new_zeros(outputs, channels, 2, 2, 3, 3)
    for row_phase in range(2):
        for column_phase in range(2):
            # offset d in -1, 0, +1 of the phase's grid is kernel tap 2 d + phase + 2
            rows = [(d + 1, 2 * d + row_phase + 2) for d in (-1, 0, 1) if 2 * d + row_phase + 2 < 5]
            columns = [(d + 1, 2 * d + column_phase + 2) for d in (-1, 0, 1) if 2 * d + column_phase + 2 < 5]
            for row, ky in rows:
                for column, kx in columns:
                    weight[:, :, row_phase, column_phase, row, column] = source[:, :, ky, kx]
    return weight.reshape(outputs, 4 * channels, 3, 3).contiguous(), conv.bias.detach().float().clone()


class _PolyphaseConvolution(nn.Module):
    """The weights of :func:`polyphase_convolution`, in the form :func:`winograd_conv3x3` takes."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        weight, bias = polyphase_convolution(conv)
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)


class WinogradAnalysis(nn.Module):
    """g_a (compressai's ``conv``, GDN, ``conv``, GDN, ... ``conv``) with each 5x5
    stride-2 convolution as its :func:`polyphase_convolution` by :func:`winograd_conv3x3`
    on the space-to-depth input, which each GDN writes directly
    (:meth:`~ugcodec.scratch.ScratchGDN.space_to_depth`). It runs on float32 inputs whose
    first layer's output has at least :data:`MIN_AREA` positions, when no gradients are
    recorded and :func:`winograd_runs_now`; otherwise ``fallback`` runs. For inference
    only; it never writes into its input.

    Args:
        g_a: the analysis transform, whose weights are read once, here.
        fallback: what runs otherwise (e.g. :func:`~ugcodec.precision.float32_analysis`'s
            form of ``g_a``).

    Raises:
        ValueError: ``g_a`` is not such a sequence.

    Shape:
        x: ``(B, 3, H, W)``, H and W multiples of 2 to the number of convolutions;
        returns ``(B, M, H / 16, W / 16)`` for g_a's four convolutions.
    """

    def __init__(self, g_a: nn.Sequential, fallback: nn.Module) -> None:
        super().__init__()
        layers = list(g_a)
        convolutions, gdns = layers[0::2], layers[1::2]
        if len(layers) % 2 == 0 or not all(isinstance(gdn, GDN) for gdn in gdns):
            raise ValueError("g_a must alternate convolutions and GDNs, starting and ending with a convolution")
        self.fallback = fallback  # first: the parameters are listed in g_a's order
        self.convolutions = nn.ModuleList([_PolyphaseConvolution(conv) for conv in convolutions])
        self.gdns = nn.ModuleList([ScratchGDN(gdn) for gdn in gdns])

    def forward(self, x: Tensor) -> Tensor:
        if not _winograd_applies(x, min_area=4 * MIN_AREA):  # the first layer's output: a quarter
            return self.fallback(x)
        y = winograd_conv3x3(F.pixel_unshuffle(x, 2).contiguous(), self.convolutions[0])
        for gdn, convolution in zip(self.gdns, self.convolutions[1:]):
            y = winograd_conv3x3(gdn.space_to_depth(y, UPSAMPLING_ROLES[0]), convolution)
        return y
