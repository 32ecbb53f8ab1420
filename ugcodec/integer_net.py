"""Integer-exact hyper-synthesis: the part of the decoder that the parser depends on.

Why: the coding tables for y are chosen by a scale index computed from z_hat. If that
computation differs in the last bit between two machines (thread count, CPU, GPU), an
index can cross a table boundary and the rest of the stream decodes to garbage
(compressai issues #279, #309, #320). Following Ballé, Johnston and Minnen (2019,
"Integer networks for data compression with latent-variable models"), this network uses
integer weights and integer activations only, so its output is the same everywhere.

Arithmetic: activations are integers with ``ACTIVATION_BITS`` fractional bits. A layer
computes ``acc = W @ im2col(x) + b`` with integer W (``shift`` fractional bits) and b,
then ``floor(acc / 2**shift)`` (an exact power-of-two rescale), an optional ReLU, a clamp
to ``[-ACTIVATION_LIMIT, ACTIVATION_LIMIT]`` and an optional pixel shuffle. The products
are computed in float64 with integer operands: every partial sum stays below 2**53 (the
exporter checks the bound row by row), so any summation order, BLAS kernel or device
gives the exact integer result. A library convolution is not used: it may pick FFT or
float Winograd algorithms, whose fractions round.

Speed: ``acc`` is computed by an *integer* Winograd F(m×m, 3×3) (Lavin & Gray 2016,
:class:`WinogradForm`) where that is provably exact, and by im2col + matmul elsewhere.
Each m×m block of outputs is ``A^T [U ⊙ V] A`` with ``V = B^T d B`` (integer
combinations of an (m+2)×(m+2) input patch d) and ``U = G' g G'^T``, where ``G' = s·G``
has integer entries, so every value is an integer and the result is ``s²·acc``, brought
back by an exact division before the floor. F(4x4, 3x3) takes 36 products per 16 outputs
where the direct convolution takes 144, F(2x2, 3x3) 16 per 4; but larger blocks grow the
transformed values more. A layer knows, per form, the largest input magnitude for which
every intermediate value (transformed inputs, the matrix products' partial sums, the
output transform's sums) stays below 2**53; an input takes the form with the fewest
multiplications whose limit covers it (:meth:`IntegerConv.winograd_form`), or else the
im2col one. A network's first layer sees small integers (symbols, table indexes,
times ``2**ACTIVATION_BITS``); where its inputs are at most ``SMALL_INPUT_LIMIT`` and it
reduces many inputs to few outputs (the channel contexts' first layers), it multiplies
int8 operands with int32 sums instead
(:meth:`IntegerConv.on_small_integers`), several times faster than float64 on CPUs with
int8 dot-product instructions. Every path gives the exact ``acc``, bit for bit.

Outputs (:meth:`IntegerHyperSynthesis.forward`): integer means and scales with
``ACTIVATION_BITS`` fractional bits. :func:`entropy_parameters` turns them, with the
integer gain of a quality level, into the exact mean and scale index of every latent;
:func:`hyper_parameters` does both for a whole image, a band of rows at a time.

Memory: a network runs on bands of input rows (:meth:`IntegerNetwork.row_bands`), each
widened by the network's reach (:attr:`IntegerNetwork.reach`: the input rows on either
side that one output row depends on), so no activation of the whole image is ever held
in float64. Every output is its own exact dot product of the same integers, and zero
padding at a band's inner edge only reaches rows the band does not keep, so banded and
whole-image results are the same integers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cpu import cpu_supports

__all__ = [
    "ACTIVATION_BITS",
    "ACTIVATION_LIMIT",
    "GAIN_BITS",
    "EXACT_LIMIT",
    "IntegerConv",
    "IntegerNetwork",
    "IntegerHyperSynthesis",
    "WINOGRAD_FORMS",
    "WinogradForm",
    "hyper_parameters",
    "integerize_network",
    "integerize_hyper_synthesis",
    "scale_thresholds",
    "entropy_parameters",
    "has_int8_products",
]

ACTIVATION_BITS = 10
ACTIVATION_LIMIT = (1 << 25) - 1
GAIN_BITS = 16
WEIGHT_LIMIT = (1 << 15) - 1
EXACT_LIMIT = 1 << 53
#: Inputs of a network's first layer up to this magnitude take the int8 path
#: (IntegerConv.on_small_integers): one 7-bit limb each.
SMALL_INPUT_LIMIT = 64
_INT8_TERMS = 1 << 17  # terms of one int8 product sum: 2**17 · 64 · 64 < 2**31
_int8_product = getattr(torch, "_int_mm", None)  # int8 @ int8 -> int32 (private in torch 2.x)
_IM2COL_BUDGET = 1 << 21  # float64 elements of one im2col or Winograd band (16 MiB)
_BAND_BUDGET = 1 << 22  # float64 elements of the largest activation of one band of rows (32 MiB)


@dataclass(frozen=True)
class WinogradForm:
    """An integer Winograd F(m×m, 3×3) (Lavin & Gray 2016): each m×m block of a 3x3
    convolution's outputs is ``A^T [U ⊙ V] A`` with ``V = B^T d B`` for the block's
    (m + 2)×(m + 2) input patch d and ``U = G' g G'^T`` for the kernel g. ``G' = s·G``
    has integer entries, as do ``B^T`` and ``A^T``, so every value is an integer and the
    result is ``s²·acc``, which an exact division brings back to ``acc``.

    Attributes:
        tile: m, outputs per block side.
        kernel: ``G'`` ((m + 2) × 3).
        input: ``B^T`` ((m + 2) × (m + 2)).
        output: ``A^T`` (m × (m + 2)); one column is all ones (the interpolation point
            1), where the bias enters every output's sum once.
        kernel_scale: s.
    """

    tile: int
    kernel: Tuple[Tuple[int, ...], ...]
    input: Tuple[Tuple[int, ...], ...]
    output: Tuple[Tuple[int, ...], ...]
    kernel_scale: int

    @property
    def size(self) -> int:
        """Input patch side, m + 2; the form multiplies ``size²`` products per block."""
        return self.tile + 2

    @property
    def scale(self) -> int:
        """s²: the form yields ``scale · acc``."""
        return self.kernel_scale ** 2

    @property
    def bias_term(self) -> int:
        """Index, among the ``size²`` products, of the one every output sums with weight 1."""
        column = next(i for i in range(self.size) if all(row[i] == 1 for row in self.output))
        return column * self.size + column


#: The integer forms, fewest multiplications per output first: F(4x4, 3x3) takes 36
#: products per 16 outputs, F(3x3, 3x3) 25 per 9, F(2x2, 3x3) 16 per 4 (the direct
#: convolution 9 per output). Larger blocks grow the transformed values more, so each
#: layer knows, per form, the largest input for which it is exact.
WINOGRAD_FORMS = (
    WinogradForm(  # points 0, 1, -1, 2, -2 and infinity
        tile=4,
        kernel=((6, 0, 0), (-4, -4, -4), (-4, 4, -4), (1, 2, 4), (1, -2, 4), (0, 0, 24)),
        input=((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
               (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
        output=((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
        kernel_scale=24,
    ),
    WinogradForm(  # points 0, 1, -1, 2 and infinity
        tile=3,
        kernel=((3, 0, 0), (-3, -3, -3), (-1, 1, -1), (1, 2, 4), (0, 0, 6)),
        input=((2, -1, -2, 1, 0), (0, -2, -1, 1, 0), (0, 2, -3, 1, 0), (0, -1, 0, 1, 0), (0, 2, -1, -2, 1)),
        output=((1, 1, 1, 1, 0), (0, 1, -1, 2, 0), (0, 1, 1, 4, 1)),
        kernel_scale=6,
    ),
    WinogradForm(  # points 0, 1, -1 and infinity
        tile=2,
        kernel=((2, 0, 0), (1, 1, 1), (1, -1, 1), (0, 0, 2)),
        input=((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
        output=((1, 1, 1, 0), (0, 1, -1, -1)),
        kernel_scale=2,
    ),
)
#: A form is taken only where it cuts an input into at least this many blocks: fewer
#: make matrix products too small to run at the BLAS's speed, and a tiny input is not
#: worth a transformed copy of the kernel.
_MIN_WINOGRAD_BLOCKS = 16
_TRANSFORM_MATRICES: Dict[Tuple[int, str, torch.device], Tensor] = {}


@dataclass
class IntegerConv:
    """One 3x3 stride-1 convolution (padding 1) in integer arithmetic.

    Attributes:
        weight: int64 ``(out, in * 9)`` in im2col order (channel-major, then 3x3 raster).
        bias: int64 ``(out,)`` with ``ACTIVATION_BITS + shift`` fractional bits.
        shift: fractional bits of ``weight``.
        relu: apply max(0, .) after rescaling.
        upscale: pixel-shuffle factor applied last (1: none).
    """

    weight: Tensor
    bias: Tensor
    shift: int
    relu: bool
    upscale: int

    def check_exact(self) -> None:
        """Raises ValueError unless every partial sum is provably below 2**53."""
        row_bound = ACTIVATION_LIMIT * self.weight.abs().sum(dim=1) + self.bias.abs()
        largest_weight = int(self.weight.abs().max()) if self.weight.numel() else 0
        if int(row_bound.max()) >= EXACT_LIMIT or largest_weight > WEIGHT_LIMIT:
            raise ValueError("integer layer could overflow the exact float64 range")

    def _operands(self, device: torch.device) -> Tuple[Tensor, Tensor]:
        """float64 weight and bias on ``device`` (converted on each call: the direct
        products run on inputs too small or too large for Winograd, rarely, and a loaded
        model need not keep a float64 copy of every weight for them)."""
        return self.weight.to(device, torch.float64), self.bias.to(device, torch.float64)

    def _winograd_operands(self, device: torch.device, form: WinogradForm) -> Tuple[Tensor, Tensor, int]:
        """``(U, start, limit)`` of ``form``: the transformed kernel ``U`` float64
        ``(size², out, in)``, the products' start ``(size², out, 1)`` (``scale·b`` at the
        term every output sums once), and the largest input magnitude for which the
        form is exact, or -1 where it never is (computed once per form, when first asked)."""
        cache = self.__dict__.setdefault("_winograd", {})
        cached = cache.get(form.tile)
        if cached is None or cached[0].device != device or cached[3] is not self.weight:
            outputs, inputs = self.weight.shape[0], self.weight.shape[1] // 9
            g = self.weight.reshape(outputs, inputs, 3, 3).to(torch.float64)
            kernel = torch.tensor(form.kernel, dtype=torch.float64)
            # |U| <= 24 · 24 · WEIGHT_LIMIT < 2**30, and so is every partial sum: float64 is exact.
            u = torch.einsum("ai,ocij,bj->aboc", kernel, g, kernel).reshape(form.size ** 2, outputs, inputs)
            u = u.contiguous()
            # Bound of every sum, per output channel: |V_ij| <= r_i·r_j·max|x| (r: the row
            # sums of |B^T|), so product sum ij is at most r_i·r_j·max|x|·Σ_c|U_ij|; an
            # output adds them with weights |A_ai·A_bj| (and scale·|b| once). Every partial
            # sum, in any order, is a part of such a sum.
            rows = torch.tensor(form.input, dtype=torch.int64).abs().sum(dim=1)
            sums = torch.linalg.vector_norm(u, ord=1, dim=2).to(torch.int64)  # Σ_c|U|, below 2**41: exact
            magnitude = sums.view(form.size, form.size, outputs) * (rows[:, None] * rows[None, :])[:, :, None]
            weights = torch.tensor(form.output, dtype=torch.int64).abs()
            reach = torch.einsum("xi,yj,ijo->xyo", weights, weights, magnitude).amax(dim=(0, 1))
            room = EXACT_LIMIT - 1 - form.scale * self.bias.abs()
            if int(room.min()) <= 0:
                limit = -1
            else:
                limit = min((int(r) // int(w) for r, w in zip(room.tolist(), reach.tolist()) if w > 0),
                            default=ACTIVATION_LIMIT)
            start = torch.zeros(form.size ** 2, outputs, 1, dtype=torch.float64)
            start[form.bias_term, :, 0] = form.scale * self.bias.to(torch.float64)
            cached = (u.to(device), start.to(device), limit, self.weight)
            cache[form.tile] = cached
        return cached[0], cached[1], cached[2]

    def winograd_form(self, x: Tensor) -> Optional[WinogradForm]:
        """The form of :data:`WINOGRAD_FORMS` that computes this layer on ``x`` with the
        fewest multiplications and exactly (its limit covers ``max|x|``), among those that
        cut ``x`` into at least ``_MIN_WINOGRAD_BLOCKS`` blocks; None where none does (the
        direct products then)."""
        if not x.numel():
            return None
        height, width, magnitude = x.shape[-2], x.shape[-1], None
        for form in WINOGRAD_FORMS:
            if x.shape[0] * -(-height // form.tile) * -(-width // form.tile) < _MIN_WINOGRAD_BLOCKS:
                continue
            limit = self._winograd_operands(x.device, form)[2]
            if limit < ACTIVATION_LIMIT:
                magnitude = _magnitude(x) if magnitude is None else magnitude
                if magnitude > limit:
                    continue
            return form
        return None

    def __call__(self, x: Tensor, partial: Optional[Tensor] = None) -> Tensor:
        """The layer on ``x`` (float64 integers ``(B, in, H, W)``, ``ACTIVATION_BITS``
        fractional bits); returns float64 integers ``(B, out, H·upscale, W·upscale)``.

        ``partial``: float64 integers ``(B, out, H, W)`` added to the products before
        the bias and the rescaling, the :meth:`sums` of the inputs of a layer that this
        one is the rest of (:meth:`split_inputs`); the result is then that whole layer's
        on the joined input, as long as the whole layer's sums stay below 2**53 for that
        input.
        """
        if not x.shape[1]:  # no inputs of its own: the partial sums and the bias only
            out = partial + self.bias.to(partial.device, torch.float64)[None, :, None, None]
            return self._finish(out.mul_(1.0 / float(1 << self.shift)).floor_())
        form = self.winograd_form(x)
        if form is not None:
            out = self._by_winograd(x, form, partial)
        else:
            weight, bias = self._operands(x.device)
            out = self._by_columns(x, weight, bias, partial)
        return self._finish(out)

    def sums(self, x: Tensor) -> Tensor:
        """The exact products ``W @ im2col(x)`` alone: no bias, rescaling, activation or
        clamp; float64 integers ``(B, out, H, W)``. Inputs within a Winograd form's exact
        range take it, others the direct products."""
        form = self.winograd_form(x)
        if form is not None:
            u = self._winograd_operands(x.device, form)[0]
            start = torch.zeros((form.size ** 2, u.shape[1], 1), dtype=torch.float64, device=x.device)
            # scale·acc over scale: an integer quotient, which division gives exactly.
            return self._winograd_sums(x, form, u, start).div_(float(form.scale))
        weight, _ = self._operands(x.device)
        return self._column_sums(x, weight, torch.zeros(weight.shape[0], dtype=torch.float64, device=x.device))

    def split_inputs(self, channels: int) -> "Tuple[IntegerConv, IntegerConv]":
        """``(head, rest)``: the layer's products over its first ``channels`` input
        channels (no bias, shift 0, no activation: use its :meth:`sums`) and the layer
        over the others (this layer's bias, shift, activation and shuffle), so that
        ``rest(x[:, channels:], partial=head.sums(x[:, :channels]))`` is this layer on x.

        Raises:
            ValueError: ``channels`` is not between 0 and the layer's inputs.
        """
        inputs = self.weight.shape[1] // 9
        if not 0 <= channels <= inputs:
            raise ValueError(f"cannot split {inputs} input channels after {channels}")
        head = IntegerConv(self.weight[:, : 9 * channels].clone(), torch.zeros_like(self.bias), 0, False, 1)
        rest = IntegerConv(self.weight[:, 9 * channels :].clone(), self.bias.clone(), self.shift, self.relu, self.upscale)
        return head, rest

    def on_small_integers(self, s: Tensor) -> Optional[Tensor]:
        """What calling the layer on ``s · 2**ACTIVATION_BITS`` gives, for integers ``s``
        with ``|s| <= SMALL_INPUT_LIMIT`` (a network's input: symbols, table indexes), by
        int8 matrix products with int32 sums: the weight is split into 7-bit limbs,
        ``weight = Σ_j limb_j · 128**j``, one product per limb, combined in int64.

        Returns None (the caller then takes the float64 path, which gives the same
        integers) where the input is larger, where this PyTorch has no int8 product on
        ``s``'s device, on a CPU without int8 dot-product instructions (VNNI: there
        PyTorch's int8 product is a scalar fallback, many times slower), or where the limbs' outputs outnumber the layer's inputs
        (``L·out > 9·in``, such as h_s's first layer): there the float64 Winograd path,
        which divides the products by 2.25, is the faster one.

        Exact on every kernel: every operand is at most 64 in magnitude, so no pair of
        products saturates a 16-bit intermediate, even with an unsigned shift of one
        operand by 128, and a sum of ``9·in <= 2**17`` products stays below 2**31.
        """
        batch, channels, height, width = s.shape
        if not has_int8_products(s.device) or not s.numel() or 9 * channels > _INT8_TERMS:
            return None
        limbs, bias = self._int8_operands(s.device)
        outputs = bias.shape[0]
        if limbs.shape[1] > 9 * channels or _magnitude(s) > SMALL_INPUT_LIMIT:
            return None
        # im2col, channels last: each row one position's 3x3 neighbourhood, (ky, kx, c).
        padded = F.pad(s.to(torch.int8), (1, 1, 1, 1)).permute(0, 2, 3, 1).contiguous()
        stride = padded.stride()
        out = torch.empty((batch, outputs, height, width), dtype=torch.int64, device=s.device)
        band = max(1, _IM2COL_BUDGET // max(1, channels * 9 * width))
        try:
            for b in range(batch):
                for top in range(0, height, band):
                    rows = min(band, height - top)
                    columns = padded[b, top:].as_strided(
                        (rows, width, 3, 3, channels), (stride[1], stride[2], stride[1], stride[2], stride[3])
                    ).reshape(rows * width, 9 * channels).contiguous()  # a view of overlapping rows where width is 1
                    # All limbs in one product: (positions, limbs · out).
                    products = _int8_product(columns, limbs).to(torch.int64).view(rows * width, -1, outputs)
                    # weight = Σ_j limb_j · 128**j; the input is s · 2**ACTIVATION_BITS.
                    accumulated = products[:, -1]
                    for j in range(products.shape[1] - 2, -1, -1):
                        accumulated = (accumulated << 7).add_(products[:, j])
                    accumulated = (accumulated << ACTIVATION_BITS).add_(bias) >> self.shift
                    out[b, :, top : top + rows] = accumulated.t().reshape(outputs, rows, width)
        except RuntimeError:  # no int8 kernel for this device or build
            return None
        return self._finish(out.clamp_(-ACTIVATION_LIMIT, ACTIVATION_LIMIT).to(torch.float64))

    def _int8_operands(self, device: torch.device) -> Tuple[Tensor, Tensor]:
        """The weight as int8 limbs of 7 bits, ``weight = Σ_j limb_j · 128**j``, laid out
        for a channels-last im2col: ``(9·in, L·out)``, rows in (ky, kx, c) order, limb j
        in columns ``j·out … (j+1)·out − 1``; and the int64 bias (converted once)."""
        cached = self.__dict__.get("_int8")
        if cached is None or cached[0].device != device or cached[2] is not self.weight:
            outputs, inputs = self.weight.shape[0], self.weight.shape[1] // 9
            rest, limbs = self.weight.clone(), []
            while True:
                limb = (rest + 64).remainder(128) - 64  # balanced: in [-64, 63]
                limbs.append(limb.reshape(outputs, inputs, 3, 3).permute(2, 3, 1, 0).reshape(9 * inputs, outputs))
                rest = (rest - limb) // 128
                if not bool(rest.any()):
                    break
            cached = (torch.cat(limbs, dim=1).to(device, torch.int8).contiguous(), self.bias.to(device), self.weight)
            self.__dict__["_int8"] = cached
        return cached[0], cached[1]

    def _finish(self, out: Tensor) -> Tensor:
        if self.relu:
            out.clamp_(min=0)
        out.clamp_(-ACTIVATION_LIMIT, ACTIVATION_LIMIT)
        if self.upscale > 1:
            out = F.pixel_shuffle(out, self.upscale)
        return out

    def _by_columns(self, x: Tensor, weight: Tensor, bias: Tensor, partial: Optional[Tensor] = None) -> Tensor:
        """``floor((W @ im2col(x) + partial + b) / 2**shift)``, one matrix product per band of rows."""
        out = self._column_sums(x, weight, bias)
        if partial is not None:
            out += partial
        # Multiplying by 2**-shift is exact, like the division.
        return out.mul_(1.0 / float(1 << self.shift)).floor_()

    def _column_sums(self, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """``W @ im2col(x) + b``, one matrix product per band of rows."""
        batch, channels, height, width = x.shape
        padded = F.pad(x, (1, 1, 1, 1))
        stride = padded.stride()
        out = x.new_empty((batch, weight.shape[0], height, width))
        # im2col needs 9x the input's memory, so it is built one band of rows at a time
        # (each output is its own dot product: banding cannot change a single bit).
        band = max(1, _IM2COL_BUDGET // max(1, batch * channels * 9 * width))
        for top in range(0, height, band):
            rows = min(band, height - top)
            # im2col as one strided copy: (batch, channel, ky, kx, row, column).
            columns = padded[:, :, top:].as_strided(
                (batch, channels, 3, 3, rows, width), (stride[0], stride[1], stride[2], stride[3], stride[2], stride[3])
            ).reshape(batch, channels * 9, rows * width)
            if batch == 1:  # the bias starts the sum: one pass fewer (and the bound counts it)
                accumulated = torch.addmm(bias[:, None], weight, columns[0])[None]
            else:
                accumulated = torch.baddbmm(bias[None, :, None], weight.expand(batch, -1, -1), columns)
            out[:, :, top : top + rows] = accumulated.reshape(batch, -1, rows, width)
        return out

    def _by_winograd(self, x: Tensor, form: WinogradForm, partial: Optional[Tensor] = None) -> Tensor:
        """``floor((W @ im2col(x) + partial + b) / 2**shift)`` by ``form``, one band of
        block rows at a time (exact only for inputs within the form's limit)."""
        u, start, _ = self._winograd_operands(x.device, form)
        out = self._winograd_sums(x, form, u, start)
        divisor = form.scale << self.shift
        if partial is not None:  # back to acc + b first (exactly): the partial sums are not scaled
            out = out.div_(float(form.scale)).add_(partial)
            divisor = 1 << self.shift
        # The exact quotient (acc + partial + b) / 2**shift has at most 53 significant bits,
        # so the correctly rounded division gives it, and the floor sees it.
        return out.div_(float(divisor)).floor_()

    def _winograd_sums(self, x: Tensor, form: WinogradForm, u: Tensor, start: Tensor) -> Tensor:
        """``scale · (W @ im2col(x) + b)`` (``start`` holds the ``scale·b``) by ``form``,
        one band of block rows at a time."""
        batch, channels, height, width = x.shape
        outputs, tile, size = u.shape[1], form.tile, form.size
        block_rows, block_cols = -(-height // tile), -(-width // tile)
        # One pixel of zero padding, and more at the far edges up to whole blocks.
        padded = F.pad(x, (1, tile * block_cols + 1 - width, 1, tile * block_rows + 1 - height))
        out = x.new_empty((batch, outputs, tile * block_rows, tile * block_cols))
        band = max(1, _IM2COL_BUDGET // max(1, size * size * batch * max(channels, outputs) * block_cols))
        for top in range(0, block_rows, band):
            rows = min(band, block_rows - top)
            patches = padded[:, :, tile * top : tile * (top + rows) + 2]
            blocks = batch * rows * block_cols
            transformed = _winograd_input(patches, form).view(size * size, channels, blocks)
            products = torch.baddbmm(start, u, transformed)
            _winograd_output(products, form, out[:, :, tile * top : tile * (top + rows)])
        return out[:, :, :height, :width]


def has_int8_products(device: torch.device) -> bool:
    """Whether :meth:`IntegerConv.on_small_integers` may take its int8 path on ``device``:
    this PyTorch has the int8 product, and a CPU has int8 dot-product instructions (VNNI)."""
    return _int8_product is not None and (device.type != "cpu" or cpu_supports("vnni"))


def _magnitude(x: Tensor) -> int:
    """The largest ``|x|`` (one pass, no temporary of x's size)."""
    low, high = torch.aminmax(x)
    return int(max(-float(low), float(high)))


def _winograd_input(patches: Tensor, form: WinogradForm) -> Tensor:
    """``V = B^T d B`` of every ``size`` x ``size`` patch d of ``patches`` (stride
    ``tile``), float64 ``(size², C·B·rows·cols)``: one matrix product by ``B^T ⊗ B^T``,
    whose integer entries keep every sum an exact integer."""
    size, tile = form.size, form.tile
    blocks = patches.unfold(2, size, tile).unfold(3, size, tile)  # (B, C, rows, cols, size, size)
    columns = blocks.permute(4, 5, 1, 0, 2, 3).reshape(size * size, -1)
    return torch.mm(_transform_matrix(form, "input", patches.device), columns)


def _winograd_output(products: Tensor, form: WinogradForm, out: Tensor) -> None:
    """Writes ``A^T M A`` of the products ``(size², O, B·rows·cols)`` (contiguous) into
    ``out`` ``(B, O, tile·rows, tile·cols)``.

    As one matrix product of the products by ``A ⊗ A`` (integer entries): one pass over
    them instead of one per partial sum. Exact: every sum it forms, in any order, is
    bounded like the output itself (:meth:`IntegerConv._winograd_operands`)."""
    batch, outputs, height, width = out.shape
    tile = form.tile
    sums = torch.mm(_transform_matrix(form, "output", products.device), products.reshape(form.size ** 2, -1))
    # out[b, o, tile·r + a, tile·k + c] as [a, c, o, b, r, k].
    blocks = out.view(batch, outputs, height // tile, tile, width // tile, tile).permute(3, 5, 1, 0, 2, 4)
    blocks.copy_(sums.view(tile, tile, outputs, batch, height // tile, width // tile))


def _transform_matrix(form: WinogradForm, which: str, device: torch.device) -> Tensor:
    """``B^T ⊗ B^T`` (``which="input"``, ``(size², size²)``) or ``A^T ⊗ A^T``
    (``"output"``, ``(tile², size²)``), float64: entry ``(a·n + c, i·size + j)`` is
    ``T[a, i] · T[c, j]``."""
    key = (form.tile, which, device)
    matrix = _TRANSFORM_MATRICES.get(key)
    if matrix is None:
        t = torch.tensor(form.input if which == "input" else form.output, dtype=torch.float64)
        matrix = torch.einsum("ai,cj->acij", t, t).reshape(t.shape[0] ** 2, -1).to(device).contiguous()
        _TRANSFORM_MATRICES[key] = matrix
    return matrix


class IntegerNetwork:
    """A stack of :class:`IntegerConv`: integers in, integers out.

    Call it on an integer tensor ``(B, C, H, W)`` (any dtype holding integers, each of
    magnitude at most ``ACTIVATION_LIMIT / 2**ACTIVATION_BITS``); returns the last
    layer's int64 output, with ``ACTIVATION_BITS`` fractional bits.

    Raises:
        ValueError (at construction): a layer could leave the exact float64 range.
    """

    def __init__(self, layers: Sequence[IntegerConv]) -> None:
        self.layers = list(layers)
        for layer in self.layers:
            layer.check_exact()

    @property
    def upscale(self) -> int:
        """Output rows (and columns) per input row: the product of the pixel shuffles."""
        return math.prod(layer.upscale for layer in self.layers)

    @property
    def reach(self) -> int:
        """Input rows on either side of an input row that its outputs depend on: each 3x3
        layer reaches one row of its own input, which is finer than the network's input by
        the shuffles before it; the sum, rounded up."""
        reach, scale = Fraction(0), 1
        for layer in self.layers:
            reach += Fraction(1, scale)
            scale *= layer.upscale
        return math.ceil(reach)

    def band_height(self, width: int) -> int:
        """Input rows per band for inputs ``width`` columns wide: as many as keep the
        largest activation of a band (a layer's input or its output, before the shuffle)
        within ``_BAND_BUDGET`` elements per batch item, and at least one."""
        per_row, scale = 0, 1
        for layer in self.layers:
            channels = max(layer.weight.shape[1] // 9, layer.weight.shape[0])
            per_row = max(per_row, channels * scale * scale * width)
            scale *= layer.upscale
        return max(1, _BAND_BUDGET // max(1, per_row))

    def row_bands(self, height: int, width: int) -> Iterator[Tuple[slice, slice, slice]]:
        """The bands of rows an input of ``height`` x ``width`` is run in.

        Yields ``(window, rows, core)``: the input rows to run (the band and ``reach``
        rows on either side, clipped to the input), the output rows the band gives, and
        where they lie in the window's output.
        """
        band, reach, upscale = self.band_height(width), self.reach, self.upscale
        for top in range(0, height, band):
            bottom = min(height, top + band)
            window = slice(max(0, top - reach), min(height, bottom + reach))
            yield (window, slice(top * upscale, bottom * upscale),
                   slice((top - window.start) * upscale, (bottom - window.start) * upscale))

    def run_bands(
        self,
        read: Callable[[slice], Tensor],
        height: int,
        width: int,
        partial: Optional[Callable[[slice], Tensor]] = None,
    ) -> Iterator[Tuple[slice, Tensor]]:
        """Runs the network on an input of ``height`` x ``width`` that ``read(rows)``
        gives a band of rows of (integers, ``(B, C, rows, width)``).

        ``partial(rows)``: where given, the first layer's partial sums of those rows
        (:meth:`IntegerConv.__call__`), passed to it with the band's input.

        Yields ``(rows, output)``: output rows and their int64 values, bands in order;
        together exactly :meth:`run` of the whole input.
        """
        for window, rows, core in self.row_bands(height, width):
            yield rows, self._run_window(read(window), None if partial is None else partial(window))[:, :, core]

    def run(self, inputs: Tensor) -> Tensor:
        height, width = inputs.shape[-2:]
        if height <= self.band_height(width):
            return self._run_window(inputs)
        out = None
        for rows, band in self.run_bands(lambda window: inputs[:, :, window], height, width):
            if out is None:
                upscale = self.upscale
                out = band.new_empty((*band.shape[:2], height * upscale, width * upscale))
            out[:, :, rows] = band
        return out

    def _run_window(self, inputs: Tensor, partial: Optional[Tensor] = None) -> Tensor:
        x = None if partial is not None else self.layers[0].on_small_integers(inputs)
        rest = self.layers[1:]
        if x is None:
            x = inputs.to(torch.float64) * float(1 << ACTIVATION_BITS)
            x = self.layers[0](x.clamp_(-ACTIVATION_LIMIT, ACTIVATION_LIMIT), partial)
        for layer in rest:
            x = layer(x)
        return x.to(torch.int64)

    __call__ = run

    def state_dict(self) -> Dict[str, Tensor]:
        state: Dict[str, Tensor] = {}
        for index, layer in enumerate(self.layers):
            # |weight| <= WEIGHT_LIMIT < 2**15: int16 storage is lossless and compact.
            state[f"{index}.weight"] = layer.weight.to(torch.int16)
            state[f"{index}.bias"] = layer.bias
            state[f"{index}.meta"] = torch.tensor([layer.shift, int(layer.relu), layer.upscale], dtype=torch.int64)
        return state

    @classmethod
    def from_state_dict(cls, state: Dict[str, Tensor]):
        layers: List[IntegerConv] = []
        index = 0
        while f"{index}.weight" in state:
            shift, relu, upscale = (int(v) for v in state[f"{index}.meta"])
            layers.append(
                IntegerConv(
                    state[f"{index}.weight"].to(torch.int64),
                    state[f"{index}.bias"].to(torch.int64),
                    shift,
                    bool(relu),
                    upscale,
                )
            )
            index += 1
        return cls(layers)


class IntegerHyperSynthesis(IntegerNetwork):
    """h_s as an :class:`IntegerNetwork`; call it on integer z_hat ``(B, N, h, w)``.

    Returns ``(means, scales)``, int64 ``(B, M, 4h, 4w)`` each, with
    ``ACTIVATION_BITS`` fractional bits.
    """

    def forward(self, z_hat: Tensor) -> Tuple[Tensor, Tensor]:
        means, scales = self.run(z_hat).chunk(2, dim=1)
        return means, scales

    __call__ = forward


def _integerize_conv(conv: nn.Conv2d, relu: bool, upscale: int) -> IntegerConv:
    if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1):
        raise ValueError("only 3x3 stride-1 padding-1 convolutions can be made integer")
    weight = conv.weight.detach().to(torch.float64).reshape(conv.out_channels, -1)
    bias = conv.bias.detach().to(torch.float64)
    # Largest power-of-two weight scale that keeps the weights within WEIGHT_LIMIT and
    # every row's worst-case sum within the exact float64 range.
    shift = 30
    while shift > 0:
        w = torch.round(weight * (1 << shift))
        b = torch.round(bias * float(1 << (shift + ACTIVATION_BITS)))
        candidate = IntegerConv(w.to(torch.int64), b.to(torch.int64), shift, relu, upscale)
        try:
            candidate.check_exact()
            return candidate
        except ValueError:
            shift -= 1
    raise ValueError("weights too large to make an integer layer")


def integerize_network(network: nn.Sequential) -> List[IntegerConv]:
    """The :class:`IntegerConv` layers of a float network (the exporter's rounding).

    Accepts a sequence of ``subpel_conv3x3`` (conv + PixelShuffle), ``ReLU`` and
    ``conv3x3`` modules.

    Raises:
        ValueError: another module, or weights too large for exact integers.
    """
    layers: List[IntegerConv] = []
    modules = list(network)
    for position, module in enumerate(modules):
        follows_relu = position + 1 < len(modules) and isinstance(modules[position + 1], nn.ReLU)
        if isinstance(module, nn.Sequential):  # subpel_conv3x3
            conv, shuffle = module[0], module[1]
            # ReLU commutes with the pixel shuffle, so it is applied before it.
            layers.append(_integerize_conv(conv, follows_relu, shuffle.upscale_factor))
        elif isinstance(module, nn.Conv2d):
            layers.append(_integerize_conv(module, follows_relu, 1))
        elif not isinstance(module, nn.ReLU):
            raise ValueError(f"cannot make {type(module).__name__} integer")
    return layers


def integerize_hyper_synthesis(h_s: nn.Sequential) -> IntegerHyperSynthesis:
    """Exports the float h_s of :class:`ugcodec.models.UGHyperprior` to integers."""
    return IntegerHyperSynthesis(integerize_network(h_s))


def hyper_parameters(
    hyper_synthesis: IntegerHyperSynthesis, z_hat: Tensor, gain: Tensor, thresholds: Tensor
) -> Tuple[Tensor, Tensor]:
    """:func:`entropy_parameters` of ``hyper_synthesis(z_hat)``, computed a band of rows
    at a time (the same numbers, without the whole image's means and scales in memory).

    Args:
        z_hat: integer ``(B, N, h, w)``; gain, thresholds: as :func:`entropy_parameters`.

    Returns:
        ``(mu, index)``: float64 and int64 ``(B, M, 4h, 4w)``.
    """
    height, width = z_hat.shape[-2:]
    mu = index = None
    for rows, out in hyper_synthesis.run_bands(lambda window: z_hat[:, :, window], height, width):
        band_mu, band_index = entropy_parameters(*out.chunk(2, dim=1), gain, thresholds)
        if mu is None:
            upscale = hyper_synthesis.upscale
            shape = (band_mu.shape[0], band_mu.shape[1], height * upscale, width * upscale)
            mu, index = band_mu.new_empty(shape), band_index.new_empty(shape)
        mu[:, :, rows] = band_mu
        index[:, :, rows] = band_index
    return mu, index


def scale_thresholds(table: Sequence[float]) -> Tensor:
    """Integer thresholds for :func:`entropy_parameters`: ``floor(s * 2**(ACTIVATION_BITS + GAIN_BITS))``
    for every scale of the table but the last."""
    scaled = torch.tensor(list(table)[:-1], dtype=torch.float64) * float(1 << (ACTIVATION_BITS + GAIN_BITS))
    return torch.floor(scaled).to(torch.int64)


def entropy_parameters(
    means: Tensor, scales: Tensor, gain: Tensor, thresholds: Tensor
) -> Tuple[Tensor, Tensor]:
    """Exact mean and scale index of every latent for one quality level.

    Args:
        means, scales: int64 ``(B, M, H, W)`` from :class:`IntegerHyperSynthesis`.
        gain: int64 ``(M,)``, the level's gain with ``GAIN_BITS`` fractional bits.
        thresholds: int64 from :func:`scale_thresholds`.

    Returns:
        ``(mu, index)``: float64 means of the gained latent (exact dyadic numbers) and
        int64 scale indexes, ``index = #{k : scale * gain > threshold[k]}``.
    """
    gain = gain.to(means.device, torch.int64)[None, :, None, None]
    mu = (means * gain).to(torch.float64) / float(1 << (ACTIVATION_BITS + GAIN_BITS))
    scaled = (scales * gain).contiguous()
    # The count of thresholds below each value, by binary search: exact integer
    # comparisons, without a (..., levels) comparison tensor.
    index = torch.searchsorted(thresholds.to(scaled.device).contiguous(), scaled, right=False)
    return mu, index
