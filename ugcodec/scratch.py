"""Temporaries that one decoding reuses from tile to tile.

A freshly allocated tensor of tens of megabytes comes from the operating system as
untouched pages, and filling it costs a page fault per page: for g_s's activations at
half the image's resolution that is a good part of an elementwise layer's time. The
decoder runs the same layers on tile after tile, so inside :func:`reusing_scratch` the
float32 synthesis takes its temporaries from :func:`scratch`, which hands each layer the
same storage on every call; outside it, :func:`scratch` allocates as usual.

The pool belongs to the thread that opened it and is dropped when the ``with`` block
ends, so nothing stays allocated between decodings and threads never share storage.

    >>> with reusing_scratch():
    ...     first = scratch("layer", 0, (1, 2, 3, 4))
    ...     again = scratch("layer", 0, (1, 2, 3, 4))
    ...     other = scratch("layer", 1, (1, 2, 3, 4))
    >>> first.data_ptr() == again.data_ptr() != other.data_ptr()
    True
    >>> scratch("layer", 0, (1, 2, 3, 4)).data_ptr() == first.data_ptr()  # outside: new
    False
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import Dict, Hashable, Iterator, Sequence, Tuple

import torch
from torch import Tensor, nn

from .layers import GDN

__all__ = ["MIN_AREA", "ScratchGDN", "reusing_scratch", "scratch"]

#: Tensors over fewer positions (height x width) than this are allocated as usual: their
#: page faults cost little.
MIN_AREA = 64 * 64

_local = threading.local()


@contextlib.contextmanager
def reusing_scratch() -> Iterator[None]:
    """Within the block, :func:`scratch` reuses storage in this thread (a nested block
    shares the outer one's pool); at its end the storage is released."""
    if getattr(_local, "pool", None) is not None:
        yield
        return
    _local.pool = {}
    try:
        yield
    finally:
        _local.pool = None


def scratch(owner: Hashable, role: int, shape: Sequence[int], channels_last: bool = False) -> Tensor:
    """An uninitialised float32 tensor of ``shape`` (4-D when ``channels_last``).

    Inside :func:`reusing_scratch` it is a view of the storage kept for ``(owner, role)``
    (grown when ``shape`` needs more), so it overwrites what the previous call with the
    same owner and role returned: an owner uses a role for one temporary at a time.
    Outside, it is a new tensor.

    Args:
        owner: whose temporary it is (a layer).
        role: which of the owner's temporaries.
        shape: its shape.
        channels_last: channels-last layout instead of contiguous.

    Returns:
        the tensor, contiguous in the layout asked for.
    """
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    pool: "Dict[Tuple[Hashable, int], Tensor] | None" = getattr(_local, "pool", None)
    if pool is None:
        return torch.empty(tuple(shape), memory_format=memory_format)
    size = math.prod(shape)
    storage = pool.get((owner, role))
    if storage is None or storage.numel() < size:
        storage = pool[(owner, role)] = torch.empty(size)
    flat = storage[:size]
    if not channels_last:
        return flat.view(tuple(shape))
    batch, channels, height, width = shape
    return flat.view(batch, height, width, channels).permute(0, 3, 1, 2)


class ScratchGDN(nn.Module):
    """A :class:`~ugcodec.layers.GDN` for decoding: without gradients, on a float32
    channels-last input of at least :data:`MIN_AREA` positions, it computes the same
    function with its two temporaries from :func:`scratch` and writes the result into
    its input, which it returns. Otherwise it runs the GDN as it is. It shares the GDN's
    parameters.

    Args:
        gdn: the GDN to run.
    """

    def __init__(self, gdn: GDN) -> None:
        super().__init__()
        self.gdn = gdn

    def forward(self, x: Tensor) -> Tensor:
        small = x.shape[-2] * x.shape[-1] < MIN_AREA
        channels_last = x.is_contiguous(memory_format=torch.channels_last)
        if small or x.dtype != torch.float32 or not channels_last or torch.is_grad_enabled():
            return self.gdn(x)
        gdn, channels = self.gdn, x.shape[1]
        square = torch.mul(x, x, out=scratch(self, 0, x.shape, channels_last=True))
        norm = scratch(self, 1, x.shape, channels_last=True)
        # A 1x1 convolution over a channels-last tensor is a matrix product of its
        # (positions x channels) view with the weights: written straight into the scratch.
        gamma = gdn.gamma_reparam(gdn.gamma).reshape(channels, channels)
        torch.addmm(gdn.beta_reparam(gdn.beta), _positions_by_channels(square), gamma.t(),
                    out=_positions_by_channels(norm))
        norm = norm.sqrt_() if gdn.inverse else norm.rsqrt_()
        return x.mul_(norm)


def _positions_by_channels(x: Tensor) -> Tensor:
    """The ``(B*H*W, C)`` view of a channels-last tensor (the same storage)."""
    return x.permute(0, 2, 3, 1).view(-1, x.shape[1])
