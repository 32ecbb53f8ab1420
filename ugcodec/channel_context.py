"""Channel-conditional entropy parameters: the y coding tables (model ids 2 and 3) and the
y means (model id 3) chosen from the hyper-prior *and* the earlier channel slices (after
Minnen & Singh 2020, "Channel-wise autoregressive entropy models").

The latent's M channels are split into ``slices`` equal groups, coded one after the
other. Slice k's parameters are the hyper-prior's (:func:`ugcodec.integer_net.entropy_parameters`)
corrected by a small integer-exact network that sees the hyper-prior indexes of all
channels and what is already decoded of slices 0 … k−1:

* model id 2 (*scales*): the network corrects the table indexes only. The symbols, the
  means and so the pixels are those of the plain hyperprior; only the bits change.
* model id 3 (*means and scales*): it also corrects the means, so the symbols are the
  rounding of a better-predicted residual: fewer bits again, and pixels that differ from
  the plain hyperprior's by a different rounding of the same latent.

Why everything here is integer: a symbol's table and mean lie on the parsing path, so
everything they depend on must be exact; the earlier symbols, the earlier mean
corrections and the hyper-prior indexes are integers, so the corrections are computed by
an :class:`~ugcodec.integer_net.IntegerNetwork` and are the same on every machine.

Arithmetic of slice k (bitstream_spec.md §8.3), with ``B = ACTIVATION_BITS``:

* input, integers, channel-major: the hyper-prior index of all M channels, then for each
  earlier slice its *deviations* ``e`` and their absolute values, where
  ``e = clamp(symbol, ±SYMBOL_CLAMP)`` (model 2) or, in quarter steps of the latent,
  ``e = clamp(4·symbol + floor((mean_delta + 2**(B-3)) / 2**(B-2)), ±DEVIATION_CLAMP)``
  (model 3: ``e ≈ 4·(ŷ − mu_hyper)``);
* ``out = IntegerNetwork(input)`` (``B`` fractional bits): C channels of index delta
  (model 2), or C channels of mean delta then C of index delta (model 3);
* ``index = clamp(hyper_index + floor((index_delta + 2**(B-1)) / 2**B), 0, K)``, K the
  largest table index; ``mu = mu_hyper + mean_delta / 2**B`` (model 3, exact in float64).

Training (``tools/context_model.py``) uses the same inputs in float with the input scales
``INDEX_SCALE`` and ``SYMBOL_SCALE`` / ``DEVIATION_SCALE`` (powers of two, folded into the
first layer's integer weights on export, so the rounding there is the only difference).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .integer_net import ACTIVATION_BITS, EXACT_LIMIT, IntegerConv, IntegerNetwork, has_int8_products

__all__ = [
    "SYMBOL_CLAMP",
    "DEVIATION_CLAMP",
    "mean_shift",
    "IntegerChannelContext",
]

#: Model 2: earlier symbols enter the network clamped to this magnitude.
SYMBOL_CLAMP = 15
#: Model 3: earlier deviations (quarter steps) enter the network clamped to this magnitude.
DEVIATION_CLAMP = 4 * SYMBOL_CLAMP
#: Float inputs of training (powers of two): index * INDEX_SCALE, symbols * SYMBOL_SCALE
#: (model 2), deviations * DEVIATION_SCALE (model 3; the same latent units as model 2's).
INDEX_SCALE = 1.0 / 8.0
SYMBOL_SCALE = 1.0 / 4.0
DEVIATION_SCALE = SYMBOL_SCALE / 4.0


def check_slices(channels: int, slices: int) -> int:
    if slices < 1 or channels % slices:
        raise ValueError(f"{channels} channels cannot be split into {slices} equal slices")
    return channels // slices


def _rounded_shift(value: Tensor, bits: int) -> Tensor:
    """``floor((value + 2**(bits-1)) / 2**bits)``: integer rounding, halves up."""
    return torch.div(value + (1 << (bits - 1)), 1 << bits, rounding_mode="floor")


def mean_shift(mean_delta: Tensor) -> Tensor:
    """A mean correction in latent units: ``mean_delta / 2**ACTIVATION_BITS``, an exact
    float64 (what is added to the hyper-prior's ``mu``)."""
    return mean_delta.to(torch.float64) / float(1 << ACTIVATION_BITS)


def context_input(hyper_index: Tensor, earlier: Tensor) -> Tensor:
    """The integer input of a slice's network.

    Args:
        hyper_index: ``(B, M, H, W)`` hyper-prior table indexes (any integer dtype).
        earlier: ``(B, C·k, H, W)`` the :meth:`~IntegerChannelContext.deviations` of
            the k earlier slices.

    Returns:
        int64 ``(B, M + 2·C·k, H, W)``.
    """
    return torch.cat([hyper_index.to(torch.int64), deviation_input(earlier)], dim=1)


def deviation_input(earlier: Tensor) -> Tensor:
    """The part of a slice's :func:`context_input` after the hyper-prior indexes: the
    deviations ``earlier`` of the earlier slices, then their absolute values (int64)."""
    earlier = earlier.to(torch.int64)
    return torch.cat([earlier, earlier.abs()], dim=1)


class _SharedHyperPart:
    """The slices' first layers split at their hyper-prior inputs (the M indexes that
    every slice's network sees): the products over those, of all slices in one layer,
    and each slice's network that adds them to its own first layer's products over the
    earlier slices' deviations. Only the order of exact integer sums changes, so the
    networks' outputs are bit for bit the same; one wide product costs less than a
    narrower one per slice.

    Args:
        networks: the slices' networks; channels: M.
    """

    def __init__(self, networks: Sequence[IntegerNetwork], channels: int) -> None:
        heads, self.networks, self.offsets = [], [], [0]
        for network in networks:
            head, rest = network.layers[0].split_inputs(channels)
            heads.append(head)
            self.networks.append(IntegerNetwork([rest, *network.layers[1:]]))
            self.offsets.append(self.offsets[-1] + int(head.weight.shape[0]))
        self.head = IntegerConv(torch.cat([head.weight for head in heads]), torch.cat([head.bias for head in heads]),
                                0, False, 1)
        self._head_bands = IntegerNetwork([self.head])  # its bands of rows

    @staticmethod
    def exact(networks: Sequence[IntegerNetwork], largest_input: int) -> bool:
        """Whether every sum of the split form stays below 2**53 for network inputs of
        magnitude at most ``largest_input``: each part's products are exact on their own
        (:meth:`~ugcodec.integer_net.IntegerConv.sums`), and the rest adds the head's to
        its own unscaled ones, so what remains to bound is the whole first layer's sum."""
        x = largest_input << ACTIVATION_BITS
        for network in networks:
            first = network.layers[0]
            bound = x * first.weight.abs().sum(dim=1) + first.bias.abs()
            if int(bound.max()) >= EXACT_LIMIT:
                return False
        return True

    def hyper_sums(self, hyper_index: Tensor) -> Tensor:
        """float64 ``(B, Σ hidden, H, W)``: every slice's first-layer products over the
        hyper-prior indexes, slice k's in rows ``offsets[k]`` … ``offsets[k + 1]``.
        Computed on bands of rows, like the networks: no float copy of the whole input."""
        batch, _, height, width = hyper_index.shape
        out = torch.empty((batch, self.offsets[-1], height, width), dtype=torch.float64, device=hyper_index.device)
        for window, rows, core in self._head_bands.row_bands(height, width):
            x = hyper_index[:, :, window].to(torch.float64) * float(1 << ACTIVATION_BITS)
            out[:, :, rows] = self.head.sums(x)[:, :, core]
        return out


class IntegerChannelContext:
    """The integer-exact channel context that the coder runs.

    Args:
        networks: one :class:`IntegerNetwork` per slice, slice 0 first.
        largest_index: K, the largest y table index.
        means: the networks also correct the means (model id 3), not only the tables.

    Raises:
        ValueError: no network.
    """

    def __init__(self, networks: Sequence[IntegerNetwork], largest_index: int, means: bool = False) -> None:
        if not networks:
            raise ValueError("a channel context needs at least one slice")
        self.networks = list(networks)
        self.largest_index = int(largest_index)
        self.means = bool(means)
        self._shared: Dict[int, Optional[_SharedHyperPart]] = {}  # by M

    @property
    def slices(self) -> int:
        return len(self.networks)

    def slice_channels(self, channels: int) -> int:
        """Channels per slice for a latent of ``channels`` channels.

        Raises:
            ValueError: ``channels`` is not a multiple of the slice count.
        """
        return check_slices(channels, self.slices)

    def check_channels(self, channels: int) -> None:
        """Checks that the networks fit a latent of ``channels`` channels: slice k's first
        layer takes ``channels + 2·C·k`` inputs (3x3 each) and its last gives C outputs
        (2·C with means).

        Raises:
            ValueError: they do not (or the slices do not divide ``channels``).
        """
        per_slice = self.slice_channels(channels)
        wanted_outputs = per_slice * (2 if self.means else 1)
        for k, network in enumerate(self.networks):
            inputs = int(network.layers[0].weight.shape[1])
            outputs = int(network.layers[-1].weight.shape[0]) // network.layers[-1].upscale**2
            if inputs != 9 * (channels + 2 * per_slice * k) or outputs != wanted_outputs:
                raise ValueError(f"slice {k}'s network does not fit {channels} channels in {self.slices} slices")

    def deviations(self, symbols: Tensor, mean_delta: Tensor) -> Tensor:
        """What a decoded slice tells the slices after it (int64, the module docstring's ``e``).

        Args:
            symbols: the slice's symbols; mean_delta: its mean corrections from
                :meth:`slice_parameters` (unused without means).
        """
        symbols = symbols.to(torch.int64)
        if not self.means:
            return symbols.clamp(-SYMBOL_CLAMP, SYMBOL_CLAMP)
        deviation = 4 * symbols + _rounded_shift(mean_delta, ACTIVATION_BITS - 2)
        return deviation.clamp_(-DEVIATION_CLAMP, DEVIATION_CLAMP)

    def _shared_part(self, hyper_index: Tensor) -> Optional[_SharedHyperPart]:
        """The split form of the first layers (:class:`_SharedHyperPart`) where it is
        exact and pays: not where the first layers take int8 products instead."""
        if has_int8_products(hyper_index.device):
            return None
        channels = hyper_index.shape[1]
        if channels not in self._shared:
            largest = max(self.largest_index, DEVIATION_CLAMP if self.means else SYMBOL_CLAMP)
            self.check_channels(channels)
            self._shared[channels] = (_SharedHyperPart(self.networks, channels)
                                      if _SharedHyperPart.exact(self.networks, largest) else None)
        return self._shared[channels]

    def hyper_products(self, hyper_index: Tensor) -> Optional[Tensor]:
        """Every slice's first-layer products over the hyper-prior indexes, computed at
        once for all slices (:meth:`slice_parameters`' ``hyper_sums``): float64
        ``(B, Σ hidden, H, W)``; None where the first layers run whole instead (int8
        products, or sums that could leave the exact range)."""
        shared = self._shared_part(hyper_index)
        return None if shared is None else shared.hyper_sums(hyper_index)

    def slice_parameters(
        self, hyper_index: Tensor, earlier: Tensor, k: int, hyper_sums: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        """The parameters of slice ``k``: ``(mean_delta, index)``, int64 ``(B, C, H, W)``
        each; ``mean_delta`` has ``ACTIVATION_BITS`` fractional bits (zero without means).

        Args:
            hyper_index: ``(B, M, H, W)`` the hyper-prior's indexes of all channels.
            earlier: ``(B, C·k, H, W)`` the :meth:`deviations` of slices 0 … k−1.
            k: the slice.
            hyper_sums: :meth:`hyper_products` of ``hyper_index``, or None to compute
                the slice's whole first layer. The result is the same.

        Raises:
            ValueError: ``earlier`` has the wrong number of channels.
        """
        channels = self.slice_channels(hyper_index.shape[1])
        if earlier.shape[1] != channels * k:
            raise ValueError(f"slice {k} needs {channels * k} earlier channels, not {earlier.shape[1]}")
        batch, _, height, width = hyper_index.shape
        like = dict(dtype=torch.int64, device=hyper_index.device)
        index = torch.empty((batch, channels, height, width), **like)
        # Without means: zero, broadcast (nothing is written into it).
        mean_delta = torch.empty_like(index) if self.means else torch.zeros((), **like).expand_as(index)
        own = hyper_index[:, k * channels : (k + 1) * channels]
        # A band of rows at a time (IntegerNetwork.run_bands): the same integers as the
        # whole latent at once, without its network input and activations in memory.
        shared = None if hyper_sums is None else self._shared_part(hyper_index)
        if shared is None:
            bands = self.networks[k].run_bands(
                lambda window: context_input(hyper_index[:, :, window], earlier[:, :, window]), height, width
            )
        else:
            own_sums = hyper_sums[:, shared.offsets[k] : shared.offsets[k + 1]]
            bands = shared.networks[k].run_bands(
                lambda window: deviation_input(earlier[:, :, window]), height, width,
                partial=lambda window: own_sums[:, :, window],
            )
        for rows, out in bands:
            index_delta = out[:, channels:] if self.means else out
            if self.means:
                mean_delta[:, :, rows] = out[:, :channels]
            index[:, :, rows] = own[:, :, rows].to(torch.int64) + _rounded_shift(index_delta, ACTIVATION_BITS)
        return mean_delta, index.clamp_(0, self.largest_index)

    def encode(self, hyper_index: Tensor, residual: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The encoder's side, slice by slice: what :meth:`slice_parameters` gives the
        decoder, and the symbols that go with it.

        Args:
            hyper_index: ``(B, M, H, W)`` hyper-prior indexes.
            residual: float64 ``y * gain - mu_hyper``, the residual around the
                hyper-prior's means (integer values are fine: they are their own rounding).

        Returns:
            ``(symbols, shift, index)`` ``(B, M, H, W)`` each: int64 symbols
            ``round(residual - shift)``, the float64 :func:`mean_shift` of every latent
            (without means: one zero, broadcast to the shape) and the int64 table indexes.
            The networks run on bands of rows (:meth:`IntegerNetwork.run_bands`).
        """
        channels = self.slice_channels(hyper_index.shape[1])

        def code_slice(k: int, shift: Tensor, index: Tensor) -> Tensor:
            own = residual[:, k * channels : (k + 1) * channels].to(torch.float64)
            return torch.round(own - shift).to(torch.int64)

        return self._run_slices(hyper_index, code_slice)

    def decode(self, hyper_index: Tensor, decode_slice: Callable[[int, Tensor], Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        """The decoder's side: ``decode_slice(k, index)`` returns slice k's symbols, decoded
        with its table indexes. Returns ``(symbols, shift, index)`` as :meth:`encode` does."""
        return self._run_slices(hyper_index, lambda k, shift, index: decode_slice(k, index))

    def _run_slices(
        self, hyper_index: Tensor, slice_symbols: Callable[[int, Tensor, Tensor], Tensor]
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Slices 0 … S−1 in order, each from the deviations of the ones before it;
        ``slice_symbols(k, shift, index)`` gives slice k's symbols."""
        batch, total, height, width = hyper_index.shape
        channels = self.slice_channels(total)
        like = dict(dtype=torch.int64, device=hyper_index.device)
        symbols = torch.empty((batch, total, height, width), **like)
        indexes = torch.empty((batch, total, height, width), **like)
        # Without means every shift is zero: one zero, broadcast, instead of a latent of them.
        shifts = (torch.empty((batch, total, height, width), dtype=torch.float64, device=hyper_index.device)
                  if self.means else torch.zeros((), dtype=torch.float64, device=hyper_index.device).expand_as(symbols))
        # Deviations are clamped to at most DEVIATION_CLAMP: int8 holds them exactly.
        earlier = torch.empty((batch, total - channels, height, width), dtype=torch.int8, device=hyper_index.device)
        hyper_sums = self.hyper_products(hyper_index)
        for k in range(self.slices):
            own = slice(k * channels, (k + 1) * channels)
            mean_delta, index = self.slice_parameters(hyper_index, earlier[:, : k * channels], k, hyper_sums)
            shift = mean_shift(mean_delta) if self.means else shifts[:, own]
            symbol = slice_symbols(k, shift, index)
            if k + 1 < self.slices:
                earlier[:, own] = self.deviations(symbol, mean_delta)
            symbols[:, own] = symbol
            indexes[:, own] = index
            if self.means:
                shifts[:, own] = shift
        return symbols, shifts, indexes

    def state_dict(self) -> Dict[str, Tensor]:
        state = {"largest_index": torch.tensor(self.largest_index, dtype=torch.int64)}
        for k, network in enumerate(self.networks):
            state.update({f"{k}.{name}": value for name, value in network.state_dict().items()})
        return state

    @classmethod
    def from_state_dict(cls, state: Dict[str, Tensor], means: bool = False) -> "IntegerChannelContext":
        """Inverse of :meth:`state_dict`; whether it corrects means is the model id's to say."""
        networks: List[IntegerNetwork] = []
        while f"{len(networks)}.0.weight" in state:
            prefix = f"{len(networks)}."
            networks.append(
                IntegerNetwork.from_state_dict(
                    {name[len(prefix) :]: value for name, value in state.items() if name.startswith(prefix)}
                )
            )
        return cls(networks, int(state["largest_index"]), means)
