"""g_s's last machine adapter folded into its last upsampling, for decoding.

The last level's bottleneck adapter adds ``g * (E h + e)`` to the block's output, where
``h`` is the adapter's hidden activations (h channels), ``E`` and ``e`` its 1x1 expansion
back to N channels and ``g`` the gate (beta); only g_s's last transposed convolution
``up`` reads that sum, and ``up`` is linear in its input. So

    up(x + g (E h + e)) = up(x) + g (up o E)(h) + g (up o e)(1),

where ``up o E`` is a transposed convolution of ``up``'s geometry straight from the h
hidden channels to the image's channels, and ``up o e`` one from a single channel of ones
(computed rather than taken as a constant: near the window's border fewer taps land on
it). The expansion to N channels at half the image's resolution, and the reading and
writing of the block's output that it costs, become a convolution to 3 channels whose
output is added to the image. The same function to float rounding.

    >>> import torch
    >>> from ugcodec.models import PreferenceConditionalSynthesis
    >>> g_s = PreferenceConditionalSynthesis(8, 12, 8, machine_adapter=True, adapter_width=4).eval()
    >>> with torch.no_grad():
    ...     _ = g_s.adapters[-1].expand.weight.normal_()
    ...     y_hat, beta = torch.randn(1, 12, 3, 5), torch.tensor([1.0])
    ...     difference = FoldedSynthesis(g_s)(y_hat, beta) - g_s(y_hat, beta)
    >>> bool(difference.abs().max() < 1e-4)
    True
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import MachineAdapter
from .scratch import ScratchMachineAdapter
from .winograd import WinogradUpsampling

__all__ = ["FoldedAdapterUpsampling", "FoldedSynthesis", "folds"]


def folds(g_s: nn.Module) -> bool:
    """Whether :class:`FoldedSynthesis` applies to ``g_s``: it has machine adapters, the
    last of the bottleneck form and not the identity (which needs no fold: it is skipped)."""
    adapters = getattr(g_s, "adapters", None)
    if adapters is None:
        return False
    last = _machine_adapter(adapters[-1])
    return hasattr(last, "expand") and not last.is_identity()


def _machine_adapter(adapter: nn.Module) -> MachineAdapter:
    return adapter.adapter if isinstance(adapter, ScratchMachineAdapter) else adapter


class FoldedAdapterUpsampling(nn.Module):
    """``upsampling(x + g * adapter_residual(x))`` as ``upsampling(x)`` plus the gated
    adapter branch folded into the upsampling (see the module's description). For
    inference only; it shares the adapter's and the upsampling's parameters but for the
    folded weights, which it computes once, here.

    Args:
        adapter: a bottleneck machine adapter, or a :class:`~ugcodec.scratch.ScratchMachineAdapter`
            of one (whose :meth:`~ugcodec.scratch.ScratchMachineAdapter.hidden` then runs).
        deconv: the transposed convolution the adapter's output goes to.
        upsampling: what runs ``deconv`` (e.g. a :class:`~ugcodec.winograd.WinogradUpsampling`
            of it, whose folded branch then runs the same way); ``deconv`` itself by default.

    Raises:
        ValueError: the adapter is of the full form.

    Shape:
        x: ``(B, N, H, W)``; gate: ``(B,)`` or ``(1,)``; returns ``deconv``'s output.
    """

    def __init__(
        self, adapter: nn.Module, deconv: nn.ConvTranspose2d, upsampling: Optional[nn.Module] = None
    ) -> None:
        super().__init__()
        source = _machine_adapter(adapter)
        if not hasattr(source, "expand"):
            raise ValueError("only a bottleneck adapter (with a 1x1 expansion) folds into the upsampling")
        self.adapter = adapter
        self.upsampling = upsampling if upsampling is not None else deconv
        weight = deconv.weight.detach().double()  # (N, O, k, k)
        expand = source.expand.weight.detach().double().flatten(1)  # (N, h)
        branch = nn.ConvTranspose2d(
            expand.shape[1], deconv.out_channels, deconv.kernel_size, deconv.stride, deconv.padding,
            deconv.output_padding,
        ).requires_grad_(False)
        branch.weight.copy_(torch.einsum("nh,nokl->hokl", expand, weight).float())
        branch.bias.zero_()  # up's bias is added once, by the upsampling
        self.branch = WinogradUpsampling(branch) if isinstance(self.upsampling, WinogradUpsampling) else branch
        bias = source.expand.bias.detach().double()
        self.register_buffer(
            "bias_weight", torch.einsum("n,nokl->okl", bias, weight).float()[None], persistent=False
        )

    def forward(self, x: Tensor, gate: Tensor) -> Tensor:
        out = self.upsampling(x)
        gates = gate.reshape(-1).to(out.dtype).expand(x.shape[0]).tolist()
        if not any(gates):
            return out
        branch = self.branch(self.adapter.hidden(x)).add_(self.bias_map(*x.shape[-2:]))
        for sample, value in enumerate(gates):
            if value:
                out[sample].add_(branch[sample], alpha=value)
        return out


    def bias_map(self, height: int, width: int) -> Tensor:
        """``(up o e)(1)`` over a ``height`` x ``width`` input: ``(1, O, H', W')``.

        Which taps of the kernel land inside the input depends on the output's row and
        column separately, so the map is, per output channel, ``R^T K C``: ``R`` (taps
        by output rows) and ``C`` (taps by output columns) mark the taps that land, ``K``
        is the folded kernel. That costs a few multiplications per output pixel, where
        the transposed convolution of a map of ones costs the whole kernel's."""
        deconv = self.branch.deconv if isinstance(self.branch, WinogradUpsampling) else self.branch
        rows, columns = (self._landing_taps(size, axis, deconv) for axis, size in enumerate((height, width)))
        return torch.einsum("ay,oab,bx->oyx", rows, self.bias_weight[0], columns)[None]

    @staticmethod
    def _landing_taps(size: int, axis: int, deconv: nn.ConvTranspose2d) -> Tensor:
        """``(k, size')``: 1 where tap ``t`` of ``deconv``'s kernel along ``axis`` takes an
        input inside ``size`` for that output position, else 0."""
        taps = deconv.kernel_size[axis]
        return F.conv_transpose1d(
            torch.ones((1, 1, size)), torch.eye(taps)[None], None,
            deconv.stride[axis], deconv.padding[axis], deconv.output_padding[axis],
        )[0]


class FoldedSynthesis(nn.Module):
    """A :class:`~ugcodec.models.PreferenceConditionalSynthesis` (or a form of one that
    the decoder runs, with its attributes) whose last machine adapter is folded into its
    last upsampling by :class:`FoldedAdapterUpsampling`. For inference only; it shares
    ``g_s``'s parameters, and the layers it runs are ``g_s``'s own.

    Args:
        g_s: the synthesis, with :func:`folds` true.

    Raises:
        ValueError: :func:`folds` is false for ``g_s``.
    """

    def __init__(self, g_s: nn.Module) -> None:
        super().__init__()
        if not folds(g_s):
            raise ValueError("the synthesis has no bottleneck machine adapter to fold (or its last is the identity)")
        self.g_s = g_s
        last = g_s.up[-1]
        deconv = last.deconv if isinstance(last, WinogradUpsampling) else last
        self.output = FoldedAdapterUpsampling(g_s.adapters[-1], deconv, last)

    def forward(self, y_hat: Tensor, beta: Tensor) -> Tensor:
        g_s = self.g_s
        beta = beta.to(y_hat.device)
        embedding = g_s.preference_embedding(beta, y_hat.shape[0])
        x, last = y_hat, len(g_s.blocks) - 1
        for index in range(len(g_s.blocks)):
            x = g_s.level(index, x, embedding, beta, adapt=index < last)[2]
        return self.output(x, beta)
