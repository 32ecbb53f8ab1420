"""Temporaries that coding reuses from tile to tile and from one file to the next.

A freshly allocated tensor of tens of megabytes comes from the operating system as
untouched pages, and filling it costs a page fault per page: for g_s's activations at
half the image's resolution that is a good part of an elementwise layer's time. The
decoder runs the same layers on tile after tile and file after file (and the encoder
its GDNs), so inside :func:`reusing_scratch` the float32 synthesis and analysis take
their temporaries from
:func:`scratch`, which hands out the same storage on every call; outside it,
:func:`scratch` allocates as usual. The layers that use it are done with their scratch
when they return and never call one another, so they all share one storage per role:
the pool holds as many tensors as a layer needs at once, of the largest layer's size.

The storage lives in a :class:`ScratchPool`, one set per thread (threads never share
it). A loaded model keeps one (:attr:`ugcodec.weights.CodecModel.scratch`), which holds
a few tensors of the largest synthesis or analysis tile's size until the model goes or
:meth:`ScratchPool.release` is called.

    >>> with reusing_scratch() as pool:
    ...     first = scratch(0, (1, 2, 3, 4))
    ...     again = scratch(0, (1, 2, 3, 4))
    ...     other = scratch(1, (1, 2, 3, 4))
    >>> first.data_ptr() == again.data_ptr() != other.data_ptr(), pool.nbytes()
    (True, 192)
    >>> scratch(0, (1, 2, 3, 4)).data_ptr() == first.data_ptr()  # outside: new
    False
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import Dict, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import GDN, BottleneckResidualBlock, MachineAdapter

__all__ = [
    "GDN_BAND", "MIN_AREA", "UPSAMPLING_ROLES", "ScratchBottleneckBlock", "ScratchGDN", "ScratchMachineAdapter", "ScratchPool",
    "reusing_scratch", "scratch",
]

#: Roles that :class:`~ugcodec.winograd.WinogradUpsampling` writes g_s's upsampled
#: activations into, which live from one upsampling to the next: no layer takes them for
#: its temporaries (roles 0 and 1). g_a's GDNs write their space-to-depth outputs
#: (:meth:`ScratchGDN.space_to_depth`) into the first: the encoder's and the decoder's
#: transforms never run at once in one thread.
UPSAMPLING_ROLES = (2, 3)

#: Tensors over fewer positions (height x width) than this are allocated as usual: their
#: page faults cost little.
MIN_AREA = 64 * 64

#: Positions per band of rows that a GDN on an NCHW activation squares, normalises and
#: multiplies before going on to the next band: its temporaries of that size (128
#: channels: two of 1 MiB) stay in the processor's cache between the steps, where passes
#: over a whole activation at half the image's resolution would go through memory three
#: times; bands much smaller make matrix products too small for two threads.
GDN_BAND = 2048

_local = threading.local()  # .pool: the pool scratch() draws from in this thread


class ScratchPool:
    """Storage for :func:`scratch` tensors: one set per thread, kept while the pool lives."""

    def __init__(self) -> None:
        self._local = threading.local()

    def buffers(self) -> "Dict[int, Tensor]":
        """This thread's storage, by role."""
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {}
        return buffers

    def nbytes(self) -> int:
        """Bytes of this thread's storage."""
        return sum(tensor.numel() * tensor.element_size() for tensor in self.buffers().values())

    def release(self) -> None:
        """Frees this thread's storage (the next use allocates it again)."""
        self._local.buffers = {}


@contextlib.contextmanager
def reusing_scratch(pool: Optional[ScratchPool] = None) -> Iterator[ScratchPool]:
    """Within the block, :func:`scratch` draws on ``pool`` in this thread. Without one it
    draws on the enclosing block's pool, or else on a new pool dropped at the end.

    Yields:
        the pool in use.
    """
    previous = getattr(_local, "pool", None)
    if pool is None:
        if previous is not None:
            yield previous
            return
        pool = ScratchPool()
    _local.pool = pool
    try:
        yield pool
    finally:
        _local.pool = previous


def scratch(role: int, shape: Sequence[int], channels_last: bool = False) -> Tensor:
    """An uninitialised float32 tensor of ``shape`` (4-D when ``channels_last``).

    Inside :func:`reusing_scratch` it is a view of the pool's storage for ``role`` (grown
    when ``shape`` needs more), which every caller's temporaries of that role share: it
    overwrites what the previous call with the same role returned. A caller takes one
    role per temporary it needs at once, is done with them when it returns, and does
    not call another user of scratch while it holds one. Outside, it is a new tensor.

    Args:
        role: which of the caller's simultaneous temporaries (0, 1, ...).
        shape: its shape.
        channels_last: channels-last layout instead of contiguous.

    Returns:
        the tensor, contiguous in the layout asked for.
    """
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    pool: Optional[ScratchPool] = getattr(_local, "pool", None)
    if pool is None:
        return torch.empty(tuple(shape), memory_format=memory_format)
    size = math.prod(shape)
    buffers = pool.buffers()
    storage = buffers.get(role)
    if storage is None or storage.numel() < size:
        storage = buffers[role] = torch.empty(size)
    flat = storage[:size]
    if not channels_last:
        return flat.view(tuple(shape))
    batch, channels, height, width = shape
    return flat.view(batch, height, width, channels).permute(0, 3, 1, 2)


class ScratchGDN(nn.Module):
    """A :class:`~ugcodec.layers.GDN` for coding: without gradients, on a float32
    channels-last or NCHW-contiguous input of at least :data:`MIN_AREA` positions, it
    computes the same function with its two temporaries from :func:`scratch` and writes the result into
    its input, which it returns. Otherwise it runs the GDN as it is. It shares the GDN's
    parameters.

    Args:
        gdn: the GDN to run.
    """

    def __init__(self, gdn: GDN) -> None:
        super().__init__()
        self.gdn = gdn

    def forward(self, x: Tensor) -> Tensor:
        if not _takes_scratch(x):
            return self.gdn(x)
        if not x.is_contiguous():  # channels-last: one pass of each step over the whole
            return x.mul_(self._normalisation(x))
        # NCHW: band by band of rows, so that each band's square and normalisation are
        # still in cache when the next step reads them.
        rows, parameters = _band_rows(x.shape[3]), self._applied_parameters()
        for sample in x:
            for top in range(0, x.shape[2], rows):
                band = sample[:, top : top + rows].flatten(1)  # (C, positions), a view
                band.mul_(self._band_normalisation(band, *parameters))
        return x

    def space_to_depth(self, x: Tensor, role: Optional[int] = None) -> Tensor:
        """``F.pixel_unshuffle(gdn(x), 2)``, the layout in which g_a's next layer takes
        its input (:class:`~ugcodec.winograd.WinogradAnalysis`), with the GDN's last
        product written straight into it instead of into ``x`` and then rearranged.

        Args:
            x: ``(B, C, H, W)``, H and W even.
            role: the :func:`scratch` role of the result (it outlives the call: one that
                no layer takes for its temporaries), or None for a new tensor.

        Returns:
            ``(B, 4 C, H / 2, W / 2)``, NCHW-contiguous. ``x`` may be overwritten
            (a channels-last one takes the GDN in place, then is rearranged).
        """
        if not (_takes_scratch(x) and x.is_contiguous()):
            return F.pixel_unshuffle(self(x), 2)
        batch, channels, height, width = x.shape
        shape = (batch, 4 * channels, height // 2, width // 2)
        out = torch.empty(shape) if role is None else scratch(role, shape)
        # out's channel 4 c + 2 row phase + column phase, seen in x's order:
        # (B, C, row, row phase, column, column phase)
        target = out.view(batch, channels, 2, 2, height // 2, width // 2).permute(0, 1, 4, 2, 5, 3)
        rows, parameters = _band_rows(width, even=True), self._applied_parameters()
        for sample, sample_target in zip(x, target):
            for top in range(0, height, rows):
                band = sample[:, top : top + rows]
                count = band.shape[1]
                norm = self._band_normalisation(band.flatten(1), *parameters)
                grid = (channels, count // 2, 2, width // 2, 2)
                torch.mul(band.view(grid), norm.view(grid), out=sample_target[:, top // 2 : (top + count) // 2])
        return out

    def _applied_parameters(self) -> "tuple[Tensor, Tensor]":
        """The GDN's ``(gamma, beta)`` as it applies them: ``(C, C)`` and ``(C, 1)``."""
        gdn = self.gdn
        channels = gdn.beta.shape[0]
        return gdn.gamma_reparam(gdn.gamma).reshape(channels, channels), gdn.beta_reparam(gdn.beta)[:, None]

    def _normalisation(self, x: Tensor) -> Tensor:
        """What the GDN multiplies ``x`` by, in a :func:`scratch` temporary of role 1 (its
        square takes role 0)."""
        layout = _channels_last(x)
        square = torch.mul(x, x, out=scratch(0, x.shape, layout))
        norm = scratch(1, x.shape, layout)
        gamma, beta = self._applied_parameters()
        _pointwise_into(norm, square, gamma, beta[:, 0])
        return norm.sqrt_() if self.gdn.inverse else norm.rsqrt_()

    def _band_normalisation(self, band: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        """:meth:`_normalisation` of a ``(C, positions)`` matrix (rows may be strided),
        given :meth:`_applied_parameters`, in a :func:`scratch` temporary of role 1 of its shape
        (its square takes role 0)."""
        square = torch.mul(band, band, out=scratch(0, band.shape))
        norm = torch.addmm(beta, gamma, square, out=scratch(1, band.shape))
        return norm.sqrt_() if self.gdn.inverse else norm.rsqrt_()


class ScratchMachineAdapter(nn.Module):
    """A bottleneck :class:`~ugcodec.layers.MachineAdapter` for decoding: without
    gradients, on a float32 channels-last or NCHW-contiguous input of at least
    :data:`MIN_AREA` positions, it computes the same function with its narrow 1x1
    reduction in a :func:`scratch` tensor and its gated expansion added into its input by
    one matrix product, and returns the input. Otherwise (and for the full form) it runs
    the adapter as it is. An adapter whose last convolution is all zeros (the identity:
    weights that keep no adapter at its level) is not run at all. It shares the
    adapter's parameters, and reads them once, here, to tell whether it is the identity.

    Args:
        adapter: the adapter to run.
        convolution: what runs the adapter's inner 3x3 convolution (a module with its
            call signature, e.g. :class:`~ugcodec.winograd.WinogradConvolution`);
            the convolution itself by default.
    """

    def __init__(self, adapter: MachineAdapter, convolution: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.adapter = adapter
        self.convolution = convolution if convolution is not None else getattr(adapter, "conv", None)
        self.identity = adapter.is_identity()

    def forward(self, x: Tensor, gate: Tensor) -> Tensor:
        adapter = self.adapter
        if self.identity and not torch.is_grad_enabled():
            return x
        if not hasattr(adapter, "reduce") or not _takes_scratch(x):  # the full form, or elsewhere
            return adapter(x, gate)
        gates = gate.reshape(-1).to(x.dtype).expand(x.shape[0]).tolist()
        if not any(gates):
            return x
        hidden = self.hidden(x)
        expand = adapter.expand.weight.reshape(adapter.expand.out_channels, -1)
        for sample, value in enumerate(gates):
            if value:  # x += value * expand(hidden), as a product added in place
                target = x[sample : sample + 1]
                _pointwise_into(target, hidden[sample : sample + 1], expand, None, alpha=value)
                target.add_(adapter.expand.bias[:, None, None], alpha=value)
        return x

    def hidden(self, x: Tensor) -> Tensor:
        """:meth:`~ugcodec.layers.MachineAdapter.hidden` of ``x`` (no gradients), in
        ``x``'s layout; for a bottleneck adapter on an input that takes the scratch path,
        the reduction is a :func:`scratch` temporary of role 0, and the result is a new tensor."""
        adapter = self.adapter
        if not hasattr(adapter, "reduce") or not _takes_scratch(x):
            return adapter.hidden(x)
        slope = adapter.activation.negative_slope
        batch, channels, height, width = x.shape
        inner = adapter.reduce.out_channels
        layout = _channels_last(x)
        reduced = scratch(0, (batch, inner, height, width), layout)
        _pointwise_into(reduced, x, adapter.reduce.weight.reshape(inner, channels), adapter.reduce.bias)
        hidden = F.leaky_relu_(self.convolution(F.leaky_relu_(reduced, slope)), slope)
        return hidden.contiguous(memory_format=torch.channels_last if layout else torch.contiguous_format)


class ScratchBottleneckBlock(nn.Module):
    """A :class:`~ugcodec.layers.BottleneckResidualBlock` for decoding: without
    gradients, on a float32 channels-last or NCHW-contiguous input of at least
    :data:`MIN_AREA` positions, it computes the same function with its 1x1 reduction in
    a :func:`scratch` temporary of role 0 and its 1x1 expansion added into its input by
    one matrix product, and returns the input. Otherwise it runs the block as it is. It
    shares the block's parameters.

    The block's narrow inner channels make its 1x1 convolutions matrix products of a
    few dozen rows; as products on the activation's own layout they need no layout
    change and no temporary of the block's full width.

    Args:
        block: the block to run.
        convolution: what runs the block's inner 3x3 convolution (a module with its
            call signature, e.g. :class:`~ugcodec.winograd.WinogradConvolution`);
            the convolution itself by default.

    Shape:
        x: ``(B, C, H, W)``; embedding: ``(B, embedding_dim)``; returns ``(B, C, H, W)``.
    """

    def __init__(self, block: BottleneckResidualBlock, convolution: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.block = block
        self.convolution = convolution if convolution is not None else block.conv

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        block = self.block
        if not _takes_scratch(x):
            return block(x, embedding)
        slope = block.activation.negative_slope
        batch, channels, height, width = x.shape
        inner = block.reduce.out_channels
        layout = _channels_last(x)
        reduced = scratch(0, (batch, inner, height, width), layout)
        _pointwise_into(reduced, x, block.reduce.weight.reshape(inner, channels), block.reduce.bias)
        hidden = F.leaky_relu_(reduced, slope).add_(block.shift1(embedding)[:, :, None, None])
        hidden = F.leaky_relu_(self.convolution(hidden), slope).add_(block.shift2(embedding)[:, :, None, None])
        hidden = hidden.contiguous(memory_format=torch.channels_last if layout else torch.contiguous_format)
        _pointwise_into(x, hidden, block.expand.weight.reshape(channels, inner), None, alpha=1.0)
        return x.add_(block.expand.bias[:, None, None])


def _band_rows(width: int, even: bool = False) -> int:
    """Rows of a ``width``-wide NCHW activation that a GDN takes per band: about
    :data:`GDN_BAND` positions (an even count where ``even``)."""
    rows = max(1, GDN_BAND // max(1, width))
    return max(2, rows - rows % 2) if even else rows


def _takes_scratch(x: Tensor) -> bool:
    """Whether a layer here takes its scratch path on ``x``: float32, channels-last or
    NCHW-contiguous, at least :data:`MIN_AREA` positions, no gradients recorded."""
    return (x.shape[-2] * x.shape[-1] >= MIN_AREA and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)))


def _channels_last(x: Tensor) -> bool:
    """The ``channels_last`` argument of :func:`scratch` for a tensor laid out like ``x``."""
    return not x.is_contiguous()


def _pointwise_into(out: Tensor, x: Tensor, weight: Tensor, bias: Optional[Tensor], alpha: float = 0.0) -> None:
    """A 1x1 convolution as matrix products: ``out = weight @ x + bias`` per position, or
    with ``alpha`` (and no bias) ``out += alpha * weight @ x``. ``x`` and ``out`` are
    ``(B, C, H, W)`` and ``(B, O, H, W)``, both channels-last or both NCHW-contiguous;
    ``weight`` is ``(O, C)``."""
    if not x.is_contiguous():  # channels-last: the (positions x channels) matrices
        matrix, target = _positions_by_channels(x), _positions_by_channels(out)
        if alpha:
            target.addmm_(matrix, weight.t(), alpha=alpha)
        else:
            torch.addmm(bias, matrix, weight.t(), out=target)
        return
    for sample, result in zip(x, out):  # NCHW: each sample a (channels x positions) matrix
        matrix, target = sample.view(sample.shape[0], -1), result.view(result.shape[0], -1)
        if alpha:
            target.addmm_(weight, matrix, alpha=alpha)
        else:
            torch.addmm(bias[:, None], weight, matrix, out=target)


def _positions_by_channels(x: Tensor) -> Tensor:
    """The ``(B*H*W, C)`` view of a channels-last tensor (the same storage)."""
    return x.permute(0, 2, 3, 1).view(-1, x.shape[1])
