"""The transforms as the codec runs them: in float32, or partly in bfloat16.

CPUs with AMX tiles multiply bfloat16 matrices several times faster than float32 ones,
so on such CPUs (``precision="auto"``) the codec runs the bulk of its convolutions in
bfloat16 and the rest in float32:

- decoding (:func:`bfloat16_synthesis`): the residual branches of g_s (the
  preference-shifted residual blocks and the machine adapters), convolutions over N
  channels at up to half the image's resolution, and the largest N-to-N transposed
  convolution (``up[2]``). The identity path the branches add to, the other transposed
  convolutions, the GDNs and the last layer stay float32, so bfloat16's rounding enters
  only as small changes inside g_s, and the pixels stay within bitstream_spec.md §11's
  tolerance of the float32 reference decoder's. (In bfloat16, ``up[0]`` and ``up[1]``
  gain no time and only add differing pixels; the last layer would round the output
  itself.)
- encoding (:func:`bfloat16_analysis`): g_a's convolutions after the first (the first
  sees 3 input channels, where bfloat16 tiles gain nothing); its GDNs stay float32. The
  latent changes slightly, so a few symbols round the other way: the file is as valid
  as any other, but its bytes can differ from a float32 encoder's.

In float32 the GDNs' 1x1 normalisations are matrix products (:func:`float32_analysis`,
:func:`float32_synthesis`); where NNPACK runs, g_s's full residual blocks and
upsamplings and g_a's convolutions run by Winograd convolution (:mod:`ugcodec.winograd`);
g_s's last machine adapter is folded into its last upsampling (:mod:`ugcodec.folding`);
and the GDNs, machine adapters and Winograd layers reuse their temporaries from tile to
tile and file to file (:mod:`ugcodec.scratch`).

The symbols a file decodes to never depend on this: parsing is integer-exact either way.

    >>> import torch
    >>> from ugcodec.models import PreferenceConditionalSynthesis
    >>> g_s = PreferenceConditionalSynthesis(N=8, M=12, embedding_dim=8).eval()
    >>> fast = bfloat16_synthesis(g_s)
    >>> y_hat, beta = torch.randn(1, 12, 2, 3), torch.tensor([0.0])
    >>> with torch.no_grad():
    ...     exact, approximate = g_s(y_hat, beta), fast(y_hat, beta)
    >>> approximate.dtype, approximate.shape == exact.shape
    (torch.float32, True)
    >>> bool((approximate - exact).abs().max() < 0.05)
    True
"""
from __future__ import annotations

import copy
import os

import torch
from torch import Tensor, nn

from .cpu import cpu_supports
from .layers import GDN, BottleneckResidualBlock, MachineAdapter, ShiftedResidualBlock
from .scratch import UPSAMPLING_ROLES, ScratchBottleneckBlock, ScratchGDN, ScratchMachineAdapter
from .folding import FoldedSynthesis, folds
from .winograd import WinogradAnalysis, WinogradConvolution, WinogradResidualBlock, WinogradUpsampling, nnpack_available
from .settings import DEFAULT_PRECISION, PRECISIONS

__all__ = [
    "BFLOAT16_DECONVOLUTIONS", "PRECISIONS", "DEFAULT_PRECISION", "bfloat16_analysis", "bfloat16_synthesis", "float32_analysis", "float32_synthesis", "native_bfloat16", "resolve_precision"
]

def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware tiles (Intel AMX), where
    the bfloat16 convolutions are faster than float32. Elsewhere bfloat16 is emulated and
    slower, so ``"auto"`` keeps float32."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa and isa not in ("ALL", "DEFAULT") and "AMX" not in isa:
        return False  # oneDNN told not to use AMX: bfloat16 would be emulated, very slowly
    return cpu_supports("amx_tile")


def resolve_precision(precision: str) -> str:
    """``"float32"`` or ``"bfloat16"``: ``precision`` with ``"auto"`` decided for this CPU.

    Raises:
        ValueError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return precision


class _BFloat16Residual(nn.Module):
    """A residual block whose branch runs on a bfloat16 copy; the sum stays float32."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.copy = copy.deepcopy(block).to(torch.bfloat16)

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        branch = self.copy.branch(x.to(torch.bfloat16), embedding.to(torch.bfloat16))
        return branch.to(torch.float32).add_(x)


class _BFloat16Adapter(nn.Module):
    """A machine adapter whose residual runs on a bfloat16 copy; gate and sum stay float32.
    An identity adapter (:meth:`~ugcodec.layers.MachineAdapter.is_identity`) is skipped."""

    def __init__(self, adapter: MachineAdapter) -> None:
        super().__init__()
        self.copy = copy.deepcopy(adapter).to(torch.bfloat16)
        self.identity = adapter.is_identity()

    def forward(self, x: Tensor, gate: Tensor) -> Tensor:
        gate = gate.reshape(-1).to(x.dtype)
        if self.identity or not bool(torch.any(gate != 0)):
            return x
        residual = self.copy.residual(x.to(torch.bfloat16)).to(torch.float32)
        return residual.mul_(gate[:, None, None, None]).add_(x)


class _BFloat16Convolution(nn.Module):
    """A convolution run on a bfloat16 copy of itself, float32 in and out."""

    def __init__(self, convolution: nn.Module) -> None:
        super().__init__()
        self.copy = copy.deepcopy(convolution).to(torch.bfloat16)

    def forward(self, x: Tensor) -> Tensor:
        return self.copy(x.to(torch.bfloat16)).to(torch.float32)


#: The transposed convolutions of g_s (indexes into ``up``) that run in bfloat16.
BFLOAT16_DECONVOLUTIONS = (2,)


def bfloat16_synthesis(g_s: nn.Module) -> nn.Module:
    """A copy of ``g_s`` (a :class:`~ugcodec.models.PreferenceConditionalSynthesis`) whose
    residual blocks and machine adapters compute their branches in bfloat16, as do the
    transposed convolutions :data:`BFLOAT16_DECONVOLUTIONS`; inputs, outputs and
    everything else stay float32. For inference only (no gradients).

    Args:
        g_s: the float32 synthesis; left unchanged.

    Returns:
        a module with ``g_s``'s call signature, ``(y_hat, beta) -> image``.
    """
    fast = copy.deepcopy(g_s)
    for index in BFLOAT16_DECONVOLUTIONS:
        fast.up[index] = _BFloat16Convolution(g_s.up[index])
    fast.blocks = nn.ModuleList([_BFloat16Residual(block) for block in g_s.blocks])
    if g_s.adapters is not None:
        fast.adapters = nn.ModuleList([_BFloat16Adapter(adapter) for adapter in g_s.adapters])
    return fast.eval().requires_grad_(False)


def float32_synthesis(g_s: nn.Module) -> nn.Module:
    """``g_s`` (a :class:`~ugcodec.models.PreferenceConditionalSynthesis`) as the float32
    decoder runs it: its GDNs, machine adapters and bottleneck residual blocks as
    :class:`~ugcodec.scratch.ScratchGDN`, :class:`~ugcodec.scratch.ScratchMachineAdapter`
    and :class:`~ugcodec.scratch.ScratchBottleneckBlock` and, where NNPACK runs, its
    upsamplings as :class:`~ugcodec.winograd.WinogradUpsampling`, its full residual
    blocks as :class:`~ugcodec.winograd.WinogradResidualBlock` and the 3x3 convolutions
    of its bottleneck blocks and adapters as
    :class:`~ugcodec.winograd.WinogradConvolution`. A last adapter of
    the bottleneck form is folded into the last upsampling
    (:class:`~ugcodec.folding.FoldedSynthesis`). The same function to float rounding,
    for inference only; layers inside it overwrite their inputs, never the input of the
    whole.

    Args:
        g_s: the synthesis; left unchanged (the result shares its parameters).

    Returns:
        a module with ``g_s``'s call signature, ``(y_hat, beta) -> image``: the
        synthesis's shallow copy with those layers replaced, or a
        :class:`~ugcodec.folding.FoldedSynthesis` of it.
    """
    fast = copy.copy(g_s)  # shallow: the same parameters, its own module lists
    fast._modules = dict(g_s._modules)
    fast.gdn = nn.ModuleList([ScratchGDN(gdn) for gdn in g_s.gdn])
    winograd = nnpack_available()
    if g_s.adapters is not None:
        fast.adapters = nn.ModuleList([
            ScratchMachineAdapter(adapter, WinogradConvolution(adapter.conv) if winograd and hasattr(adapter, "conv") else None)
            for adapter in g_s.adapters
        ])
    if winograd:
        # Consecutive upsamplings' outputs in alternating scratch roles; the image (the
        # last) in a tensor of its own, since it leaves g_s.
        roles = [UPSAMPLING_ROLES[index % 2] for index in range(len(g_s.up) - 1)] + [None]
        fast.up = nn.ModuleList([WinogradUpsampling(up, role) for up, role in zip(g_s.up, roles)])
    if winograd or any(isinstance(block, BottleneckResidualBlock) for block in g_s.blocks):
        fast.blocks = nn.ModuleList([_float32_block(block, winograd) for block in g_s.blocks])
    return (FoldedSynthesis(fast) if folds(fast) else fast).eval()


def _float32_block(block: nn.Module, winograd: bool) -> nn.Module:
    """One of g_s's residual blocks as :func:`float32_synthesis` runs it (``winograd``:
    NNPACK runs)."""
    if isinstance(block, BottleneckResidualBlock):
        return ScratchBottleneckBlock(block, WinogradConvolution(block.conv) if winograd else None)
    return WinogradResidualBlock(block) if winograd and isinstance(block, ShiftedResidualBlock) else block


def float32_analysis(g_a: nn.Sequential) -> nn.Sequential:
    """``g_a`` (convolutions and GDNs in sequence) as the float32 encoder runs it: its
    GDNs as :class:`~ugcodec.scratch.ScratchGDN`, whose 1x1 normalisation is one matrix
    product where a library convolution may take a slow direct path, and where NNPACK
    runs, its convolutions by Winograd's algorithm on space-to-depth inputs
    (:class:`~ugcodec.winograd.WinogradAnalysis`). The same function to float rounding,
    for inference only; each GDN overwrites its input, which in g_a is always the
    previous convolution's output, never the input of the whole.

    Args:
        g_a: the analysis transform; left unchanged (the result shares its parameters).

    Returns:
        a module with ``g_a``'s call signature, ``x -> y``: a
        :class:`~ugcodec.winograd.WinogradAnalysis` where NNPACK runs, else the sequence
        with its GDNs replaced.
    """
    scratch_form = nn.Sequential(*(ScratchGDN(layer) if isinstance(layer, GDN) else layer for layer in g_a)).eval()
    return WinogradAnalysis(g_a, scratch_form).eval() if nnpack_available() else scratch_form


def bfloat16_analysis(g_a: nn.Sequential) -> nn.Sequential:
    """A copy of ``g_a`` (convolutions and GDNs in sequence) whose convolutions after the
    first run in bfloat16; the GDNs, the first convolution, inputs and outputs stay
    float32. For inference only.

    Args:
        g_a: the float32 analysis transform; left unchanged.

    Returns:
        a module with ``g_a``'s call signature, ``x -> y``.
    """
    layers, seen_convolution = [], False
    for layer in g_a:
        if isinstance(layer, nn.Conv2d) and seen_convolution:
            layers.append(_BFloat16Convolution(layer))
        else:
            layers.append(copy.deepcopy(layer))
        seen_convolution = seen_convolution or isinstance(layer, nn.Conv2d)
    return nn.Sequential(*layers).eval().requires_grad_(False)
