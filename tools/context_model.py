"""The float channel context that training fits, and its export to the integer-exact
:class:`ugcodec.channel_context.IntegerChannelContext` that the coder runs."""
from __future__ import annotations

import copy
from typing import Sequence, Tuple

import torch
from torch import Tensor, nn

from ugcodec._compressai import conv3x3
from ugcodec.channel_context import (
    DEVIATION_CLAMP,
    DEVIATION_SCALE,
    INDEX_SCALE,
    SYMBOL_CLAMP,
    SYMBOL_SCALE,
    IntegerChannelContext,
    check_slices,
)
from ugcodec.integer_net import IntegerNetwork, integerize_network
from ugcodec.layers import straight_through_round

__all__ = ["ChannelContext", "integerize_channel_context"]


class ChannelContext(nn.Module):
    """The float channel context, for training; export it with :func:`integerize_channel_context`.

    Args:
        channels: M, the latent's channels.
        slices: how many equal slices they are coded in.
        largest_index: K, the largest y table index.
        hidden: widths of the two hidden layers of each slice's network.
        means: also correct the means (model id 3).
    """

    def __init__(
        self, channels: int, slices: int, largest_index: int, hidden: Sequence[int] = (96, 64), means: bool = False
    ) -> None:
        super().__init__()
        per_slice = check_slices(channels, slices)
        self.channels, self.slices, self.largest_index = channels, slices, int(largest_index)
        self.means = bool(means)
        self.networks = nn.ModuleList()
        for k in range(slices):
            network = nn.Sequential(
                conv3x3(channels + 2 * per_slice * k, hidden[0]),
                nn.ReLU(),
                conv3x3(hidden[0], hidden[1]),
                nn.ReLU(),
                conv3x3(hidden[1], per_slice * (2 if means else 1)),
            )
            # Start as the plain hyperprior: no correction.
            nn.init.zeros_(network[-1].weight)
            nn.init.zeros_(network[-1].bias)
            self.networks.append(network)

    def _input_scales(self, inputs: int, device) -> Tensor:
        scale = torch.full((inputs,), DEVIATION_SCALE if self.means else SYMBOL_SCALE, device=device)
        scale[: self.channels] = INDEX_SCALE
        return scale

    def forward(self, hyper_index: Tensor, residual: Tensor) -> Tuple[Tensor, Tensor]:
        """Mean corrections and table indexes of every latent.

        Args:
            hyper_index: ``(B, M, H, W)`` hyper-prior indexes.
            residual: ``(B, M, H, W)`` ``y * gain - mu_hyper``; without means, its
                rounding is the symbols.

        Returns:
            ``(mean_delta, index)``, float ``(B, M, H, W)`` each: the mean correction in
            latent units (zero without means), and the index, integer values in ``[0, K]``
            whose gradient flows as if unrounded. The deviations passed to later slices
            are rounded as the coder rounds them, with straight-through gradients.
        """
        per_slice = self.channels // self.slices
        mean_deltas, indexes, earlier = [], [], []
        hyper = hyper_index.float()
        for k, network in enumerate(self.networks):
            # The integer input's order: indexes, then all deviations, then their absolute values.
            deviation_so_far = torch.cat(earlier, dim=1) if earlier else hyper[:, :0]
            inputs = torch.cat([hyper, deviation_so_far, deviation_so_far.abs()], dim=1)
            out = network(inputs * self._input_scales(inputs.shape[1], inputs.device)[None, :, None, None])
            own = residual[:, k * per_slice : (k + 1) * per_slice]
            if self.means:
                mean_delta, index_delta = out[:, :per_slice], out[:, per_slice:]
                symbol = straight_through_round(own - mean_delta)
                deviation = straight_through_round(4 * (symbol + mean_delta))
                earlier.append(deviation.clamp(-DEVIATION_CLAMP, DEVIATION_CLAMP))
            else:
                mean_delta, index_delta = torch.zeros_like(out), out
                earlier.append(torch.round(own).clamp(-SYMBOL_CLAMP, SYMBOL_CLAMP))
            index = straight_through_round(hyper[:, k * per_slice : (k + 1) * per_slice] + index_delta)
            mean_deltas.append(mean_delta)
            indexes.append(index.clamp(0, self.largest_index))
        return torch.cat(mean_deltas, dim=1), torch.cat(indexes, dim=1)


@torch.no_grad()
def integerize_channel_context(context: ChannelContext) -> IntegerChannelContext:
    """Exports a trained :class:`ChannelContext` to integers.

    The input scales are folded into the first layer (exact: powers of two) and the
    outputs are in latent and index units, so the integer network's outputs are the
    deltas with ``ACTIVATION_BITS`` fractional bits.

    Raises:
        ValueError: weights too large for exact integers.
    """
    networks = []
    for network in context.networks:
        folded = copy.deepcopy(network).to(torch.float64)
        first = folded[0]
        in_scale = context._input_scales(first.in_channels, "cpu").to(torch.float64)
        folded[0] = nn.Conv2d(first.in_channels, first.out_channels, 3, padding=1).to(torch.float64)
        folded[0].weight.copy_(first.weight.to(torch.float64) * in_scale[None, :, None, None])
        folded[0].bias.copy_(first.bias.to(torch.float64))
        networks.append(IntegerNetwork(integerize_network(folded)))
    return IntegerChannelContext(networks, context.largest_index, context.means)
