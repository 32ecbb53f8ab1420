"""The Gaussian scales of the y coding tables, and the cost of a symbol under them.

The scale table is compressai's: ``levels`` scales spaced evenly in log. The coding
tables themselves are integer and frozen with the weights; these float functions serve
export, training and the encoder's refinement, never parsing.

    >>> [round(v, 2) for v in scale_table()[[0, -1]].tolist()]
    [0.11, 256.0]
    >>> round(float(symbol_bits(torch.tensor(0.0), torch.tensor(1.0))), 3)  # -log2 P(|x| < 1/2)
    1.385
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["scale_table", "symbol_bits"]


def scale_table(levels: int = 64, low: float = 0.11, high: float = 256.0) -> Tensor:
    """compressai's scale table: ``levels`` scales spaced evenly in log between low and high."""
    return torch.exp(torch.linspace(torch.log(torch.tensor(low)), torch.log(torch.tensor(high)), levels))


def symbol_bits(symbol: Tensor, scale: Tensor) -> Tensor:
    """Cost in bits of integer residuals under zero-mean quantised Gaussians of the given
    scales (the y coding tables' shape, without their tails): ``-log2 P(symbol)``, elementwise."""
    normal = torch.distributions.Normal(0.0, 1.0)
    mass = normal.cdf((symbol + 0.5) / scale) - normal.cdf((symbol - 0.5) / scale)
    return -torch.log2(mass.clamp_min(1e-9))
