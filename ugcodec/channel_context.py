"""Channel-conditional scales: the y coding tables chosen from the hyper-prior *and* the
symbols of earlier channel slices (after Minnen & Singh 2020, scales only).

The latent's M channels are split into ``slices`` equal groups, coded one after the
other. The table index of a symbol in slice k is the hyper-prior's index
(:func:`ugcodec.integer_net.entropy_parameters`) corrected by a small integer-exact
network that sees the hyper-prior indexes of all channels and the symbols of slices
0 … k−1. The symbols themselves, the means and so the pixels are those of the plain
hyperprior: only the tables change, and with them the bits.

Why scales only: a symbol's table lies on the parsing path, so everything it depends on
must be exact; the earlier symbols and the hyper-prior indexes are integers, so the
correction is computed by an :class:`~ugcodec.integer_net.IntegerNetwork` and is the same
on every machine. (Conditioning the means on earlier slices would move them off the
parsing path too, but would change the pixels: a separate, larger step.)

Arithmetic of slice k (bitstream_spec.md §8.3):

* input, integers, channel-major: the hyper-prior index of all M channels, then for each
  earlier slice its symbols clamped to ``±SYMBOL_CLAMP`` and their absolute values;
* ``delta = IntegerNetwork(input)`` (``ACTIVATION_BITS`` fractional bits);
* ``index = clamp(hyper_index + floor((delta + 2**(ACTIVATION_BITS-1)) / 2**ACTIVATION_BITS), 0, K)``
  with K the largest table index.

Training (:class:`ChannelScaleContext`) uses the same inputs in float with the input
scales ``INDEX_SCALE`` and ``SYMBOL_SCALE`` (powers of two, folded into the first layer's
integer weights on export, so the rounding there is the only difference).
"""
from __future__ import annotations

import copy
from typing import Dict, List, Sequence

import torch
from torch import Tensor, nn

from ._compressai import conv3x3
from .integer_net import ACTIVATION_BITS, IntegerNetwork, integerize_network

__all__ = [
    "SYMBOL_CLAMP",
    "ChannelScaleContext",
    "IntegerScaleContext",
    "integerize_scale_context",
]

#: Earlier symbols enter the network clamped to this magnitude.
SYMBOL_CLAMP = 15
#: Float inputs of training: index * INDEX_SCALE, symbols * SYMBOL_SCALE (powers of two).
INDEX_SCALE = 1.0 / 8.0
SYMBOL_SCALE = 1.0 / 4.0


def _check_slices(channels: int, slices: int) -> int:
    if slices < 1 or channels % slices:
        raise ValueError(f"{channels} channels cannot be split into {slices} equal slices")
    return channels // slices


def context_input(hyper_index: Tensor, earlier_symbols: Tensor) -> Tensor:
    """The integer input of a slice's network (see the module docstring).

    Args:
        hyper_index: ``(B, M, H, W)`` hyper-prior table indexes (any integer dtype).
        earlier_symbols: ``(B, C·k, H, W)`` the symbols of the k earlier slices.

    Returns:
        int64 ``(B, M + 2·C·k, H, W)``.
    """
    clamped = earlier_symbols.to(torch.int64).clamp(-SYMBOL_CLAMP, SYMBOL_CLAMP)
    return torch.cat([hyper_index.to(torch.int64), clamped, clamped.abs()], dim=1)


def _round_index(hyper_index: Tensor, delta: Tensor, largest: int) -> Tensor:
    half = 1 << (ACTIVATION_BITS - 1)
    correction = torch.div(delta + half, 1 << ACTIVATION_BITS, rounding_mode="floor")
    return (hyper_index.to(torch.int64) + correction).clamp_(0, largest)


class IntegerScaleContext:
    """The integer-exact channel context that the coder runs.

    Args:
        networks: one :class:`IntegerNetwork` per slice, slice 0 first.
        largest_index: K, the largest y table index.

    Raises:
        ValueError: no network.
    """

    def __init__(self, networks: Sequence[IntegerNetwork], largest_index: int) -> None:
        if not networks:
            raise ValueError("a channel context needs at least one slice")
        self.networks = list(networks)
        self.largest_index = int(largest_index)

    @property
    def slices(self) -> int:
        return len(self.networks)

    def slice_channels(self, channels: int) -> int:
        """Channels per slice for a latent of ``channels`` channels.

        Raises:
            ValueError: ``channels`` is not a multiple of the slice count.
        """
        return _check_slices(channels, self.slices)

    def check_channels(self, channels: int) -> None:
        """Checks that the networks fit a latent of ``channels`` channels: slice k's first
        layer takes ``channels + 2·C·k`` inputs (3x3 each) and its last gives C outputs.

        Raises:
            ValueError: they do not (or the slices do not divide ``channels``).
        """
        per_slice = self.slice_channels(channels)
        for k, network in enumerate(self.networks):
            inputs = int(network.layers[0].weight.shape[1])
            outputs = int(network.layers[-1].weight.shape[0]) // network.layers[-1].upscale**2
            if inputs != 9 * (channels + 2 * per_slice * k) or outputs != per_slice:
                raise ValueError(f"slice {k}'s network does not fit {channels} channels in {self.slices} slices")

    def slice_index(self, hyper_index: Tensor, earlier_symbols: Tensor, k: int) -> Tensor:
        """The table indexes of slice ``k`` (int64 ``(B, C, H, W)``).

        Args:
            hyper_index: ``(B, M, H, W)`` the hyper-prior's indexes of all channels.
            earlier_symbols: ``(B, C·k, H, W)`` the symbols of slices 0 … k−1.
            k: the slice.
        """
        channels = self.slice_channels(hyper_index.shape[1])
        if earlier_symbols.shape[1] != channels * k:
            raise ValueError(f"slice {k} needs the symbols of {channels * k} channels, not {earlier_symbols.shape[1]}")
        delta = self.networks[k](context_input(hyper_index, earlier_symbols))
        return _round_index(hyper_index[:, k * channels : (k + 1) * channels], delta, self.largest_index)

    def indexes(self, hyper_index: Tensor, symbols: Tensor) -> Tensor:
        """All table indexes at once (the encoder knows every symbol): int64 like ``symbols``."""
        channels = self.slice_channels(hyper_index.shape[1])
        return torch.cat(
            [self.slice_index(hyper_index, symbols[:, : k * channels], k) for k in range(self.slices)], dim=1
        )

    def state_dict(self) -> Dict[str, Tensor]:
        state = {"largest_index": torch.tensor(self.largest_index, dtype=torch.int64)}
        for k, network in enumerate(self.networks):
            state.update({f"{k}.{name}": value for name, value in network.state_dict().items()})
        return state

    @classmethod
    def from_state_dict(cls, state: Dict[str, Tensor]) -> "IntegerScaleContext":
        networks: List[IntegerNetwork] = []
        while f"{len(networks)}.0.weight" in state:
            prefix = f"{len(networks)}."
            networks.append(
                IntegerNetwork.from_state_dict(
                    {name[len(prefix) :]: value for name, value in state.items() if name.startswith(prefix)}
                )
            )
        return cls(networks, int(state["largest_index"]))


class ChannelScaleContext(nn.Module):
    """The float channel context, for training; export it with :func:`integerize_scale_context`.

    Args:
        channels: M, the latent's channels.
        slices: how many equal slices they are coded in.
        largest_index: K, the largest y table index.
        hidden: widths of the two hidden layers of each slice's network.
    """

    def __init__(self, channels: int, slices: int, largest_index: int, hidden: Sequence[int] = (96, 64)) -> None:
        super().__init__()
        per_slice = _check_slices(channels, slices)
        self.channels, self.slices, self.largest_index = channels, slices, int(largest_index)
        self.networks = nn.ModuleList()
        for k in range(slices):
            network = nn.Sequential(
                conv3x3(channels + 2 * per_slice * k, hidden[0]),
                nn.ReLU(),
                conv3x3(hidden[0], hidden[1]),
                nn.ReLU(),
                conv3x3(hidden[1], per_slice),
            )
            # Start as the plain hyperprior: no correction.
            nn.init.zeros_(network[-1].weight)
            nn.init.zeros_(network[-1].bias)
            self.networks.append(network)

    def _scaled_input(self, hyper_index: Tensor, earlier_symbols: Tensor) -> Tensor:
        integers = context_input(hyper_index, earlier_symbols).to(torch.float32)
        scale = torch.full((integers.shape[1],), SYMBOL_SCALE, device=integers.device)
        scale[: self.channels] = INDEX_SCALE
        return integers * scale[None, :, None, None]

    def forward(self, hyper_index: Tensor, symbols: Tensor) -> Tensor:
        """Table index of every symbol, rounded with a straight-through gradient.

        Args:
            hyper_index: ``(B, M, H, W)`` hyper-prior indexes; symbols: ``(B, M, H, W)``.

        Returns:
            float ``(B, M, H, W)``: integer values in ``[0, K]``; the gradient flows as if
            unrounded (and unclamped inside the range).
        """
        per_slice = self.channels // self.slices
        outputs = []
        for k, network in enumerate(self.networks):
            delta = network(self._scaled_input(hyper_index, symbols[:, : k * per_slice]))
            index = hyper_index[:, k * per_slice : (k + 1) * per_slice].float() + delta
            index = index + (torch.floor(index + 0.5) - index).detach()
            outputs.append(index.clamp(0, self.largest_index))
        return torch.cat(outputs, dim=1)


@torch.no_grad()
def integerize_scale_context(context: ChannelScaleContext) -> IntegerScaleContext:
    """Exports a trained :class:`ChannelScaleContext` to integers.

    The input scales are folded into the first layer (exact: powers of two) and the
    output is in index units, so the integer network's output is ``delta`` with
    ``ACTIVATION_BITS`` fractional bits.

    Raises:
        ValueError: weights too large for exact integers.
    """
    networks = []
    for network in context.networks:
        folded = copy.deepcopy(network).to(torch.float64)
        first = folded[0]
        in_scale = torch.full((first.in_channels,), SYMBOL_SCALE, dtype=torch.float64)
        in_scale[: context.channels] = INDEX_SCALE
        folded[0] = nn.Conv2d(first.in_channels, first.out_channels, 3, padding=1).to(torch.float64)
        folded[0].weight.copy_(first.weight.to(torch.float64) * in_scale[None, :, None, None])
        folded[0].bias.copy_(first.bias.to(torch.float64))
        networks.append(IntegerNetwork(integerize_network(folded)))
    return IntegerScaleContext(networks, context.largest_index)
