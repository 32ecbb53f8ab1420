"""Encoder-side latent refinement: choose better y symbols for the same decoder.

The analysis transform g_a is a fast amortised guess at the latent. With the hyper-latent
z held fixed (so every y symbol's mean and coding table are known exactly), the encoder
can improve that guess by gradient descent on the training objective of one image:

    bits(y) / pixels + lambda_q * 255^2 * (HUMAN_WEIGHT * MSE(x_hat_human, x)
                                           + MACHINE_WEIGHT * MSE(x_hat_machine, x))

with the decoder g_s run exactly as the decoder runs it. The weights are stage-1
training's objective averaged over its two preferences (half the samples human, half
machine at half the weight), the trade-off the analysis transform was trained for: the
encoder never knows which decoding will be asked for. The decodings see the rounded
symbols, with a straight-through gradient. The rate of a residual r is the linear
interpolation between the exact costs of floor(r) and floor(r) + 1 under the symbol's
coding-table Gaussian: exact at the integers, and its slope is the true price of moving
to the next symbol (the Gaussian's bin at the unrounded r would make a new nonzero
symbol look cheaper than it is).

After the gradient steps, the symbols are chosen by greedy rate-distortion rounding
instead of rounding to nearest (as RDOQ does in video coders): symbols move by one where a
first-order estimate (the distortion's gradient, the exact table costs) says the cost
falls, the most promising share first, and a move is kept only if the exact cost falls.
It starts from the refined values rounded or from the analysis transform's own symbols,
whichever costs less, so a tile never ends up costlier than without refinement. What
refinement buys and costs is measured by ``python -m benchmarks.rd --refine N`` and
``python -m benchmarks.speed --refine N`` (benchmarks/README.md).

Any choice of symbols is a valid file: the format and the decoder do not change, and
refinement off (``steps=0``) leaves the bytes as they are. The means and tables are the
latent coder's for the analysis transform's own symbols; with a channel context (model
ids 2 and 3) they depend on earlier slices' symbols, so the coder derives them again from
the refined symbols, as the decoder will.

Images are refined tile by tile (the decoder's synthesis tiles, each with a margin of
fixed latents wider than g_s's reach), so memory stays bounded; the rate term is a sum
over symbols and needs no margin.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .layers import straight_through_round
from .progress import Meter, Progress
from .scales import scale_table, symbol_bits
from .settings import MAX_REFINE_STEPS
from .tiling import SYNTHESIS_MARGIN, SYNTHESIS_TILE, Tile, tiles
from .weights import CodecModel

__all__ = ["HUMAN_WEIGHT", "MACHINE_WEIGHT", "MAX_STEPS", "check_steps", "planned_evaluations", "refine_residuals"]

#: Weights of the human and the machine decoding's squared error (see the module's doc).
HUMAN_WEIGHT = 0.5
MACHINE_WEIGHT = 0.25
#: Upper bound on ``steps``: it bounds the encoder's time.
MAX_STEPS = MAX_REFINE_STEPS
#: Greedy rounding after the gradient steps: at most this many passes, the first of
#: which tries this share of the symbol moves that promise a lower cost.
ROUNDING_PASSES = 8
ROUNDING_SHARE = 0.25
#: Rounding stops when the share tried has been halved below this.
_MIN_ROUNDING_SHARE = 0.01
#: Evaluations of the exact cost in one tile's rounding, at most: its two starts and
#: one per pass.
ROUNDING_EVALUATIONS = 2 + ROUNDING_PASSES


def _grid(height: int, width: int) -> "list[Tile]":
    return list(tiles(height, width, SYNTHESIS_TILE, SYNTHESIS_MARGIN))


def planned_evaluations(height: int, width: int, steps: int) -> int:
    """The most work :func:`refine_residuals` does on a ``height`` x ``width`` latent grid:
    per tile, ``steps`` gradient steps and the rounding's evaluations, each counted as
    the latent positions of the tile's window (0 when ``steps`` is 0). Its ``progress``
    counts in these units."""
    if steps == 0:
        return 0
    return sum(tile.window_area for tile in _grid(height, width)) * (steps + ROUNDING_EVALUATIONS)


def check_steps(steps: int) -> int:
    """Returns ``steps`` as an int. Raises ValueError unless it is an integer in [0, MAX_STEPS]."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise ValueError(f"refinement steps must be an integer, not {steps!r}")
    if not 0 <= int(steps) <= MAX_STEPS:
        raise ValueError(f"refinement steps must be between 0 and {MAX_STEPS}, not {steps}")
    return int(steps)


def refine_residuals(
    model: CodecModel,
    pixels: np.ndarray,
    residual: Tensor,
    mu: Tensor,
    scale_index: Tensor,
    quality: int,
    steps: int,
    step_size: float = 0.1,
    progress: Progress = False,
) -> Tensor:
    """Improves the latent residuals ``y * gain - mu`` that the encoder will round.

    Args:
        model: the weights that will code the file.
        pixels: the uint8 ``(H, W, 3)`` image being coded.
        residual: float64 ``(1, M, h, w)`` residuals from the analysis transform
            (``h, w`` are the padded image's size / 16).
        mu: float64 exact means of the gained latent, same shape, as the latent coder
            chose them for the analysis transform's symbols
            (:meth:`ugcodec.latent_coders.LatentCoder.encode`).
        scale_index: int64 coding-table index of every latent, same shape, likewise.
        quality: level from 1 to ``model.num_qualities``.
        steps: gradient steps per tile; 0 returns ``residual`` unchanged.
        step_size: Adam's initial step, in quantisation steps (it decays linearly to 0).
        progress: ``True`` shows a progress bar on stderr (on terminals); a callable is
            called as ``progress(done, total)``, in the units of
            :func:`planned_evaluations`, after every step and every rounding pass.

    Returns:
        float64 residuals of the same shape; the encoder rounds them to the symbols.

    Raises:
        ValueError: ``steps`` is not an integer in [0, MAX_STEPS].
    """
    steps = check_steps(steps)
    if steps == 0:
        return residual
    network = model.network
    lam = model.rate_weight(quality)
    # Inference tensors (the coder runs under inference_mode) cannot enter autograd: copy.
    with torch.inference_mode(False), torch.enable_grad():
        result = residual.clone()
        mean = mu.to(torch.float32).clone()
        scale = scale_table()[scale_index].clone()
        inverse_gain = model.inverse_gain(quality)[None, :, None, None].clone()
        image = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float().div(255.0)
        grid = _grid(*residual.shape[-2:])
        meter = Meter(progress, "refining")
        meter.plan(planned_evaluations(*residual.shape[-2:], steps))
        requires_grad = [p.requires_grad for p in network.g_s.parameters()]
        network.g_s.requires_grad_(False)
        try:
            for tile in grid:
                start = meter.done
                _refine_tile(network, image, result, mean, scale, inverse_gain, lam, tile, steps, step_size,
                             lambda: meter.advance(tile.window_area))
                # The rounding may stop before its last pass: the tile is done.
                meter.advance_to(start + tile.window_area * (steps + ROUNDING_EVALUATIONS))
            meter.finish()
        finally:
            for parameter, flag in zip(network.g_s.parameters(), requires_grad):
                parameter.requires_grad_(flag)
            meter.close()
    return result.detach()


def _interpolated_bits(residual: Tensor, scale: Tensor) -> Tensor:
    """Sum over symbols of the cost in bits, interpolated linearly between the integers."""
    below = torch.floor(residual).detach()
    cost_below, cost_above = symbol_bits(below, scale), symbol_bits(below + 1.0, scale)
    return (cost_below + (residual - below) * (cost_above - cost_below)).sum()


def _exact_cost(
    distortion: Callable[[Tensor], Tensor], symbols: Tensor, scale: Tensor, pixels: int,
    evaluated: Optional[Callable[[], None]] = None,
) -> "tuple[float, Tensor]":
    """The exact cost ``distortion(symbols) + bits(symbols) / pixels`` of integer-valued
    residuals, and the distortion's gradient with respect to them (then calls ``evaluated``)."""
    symbols = symbols.detach().clone().requires_grad_(True)
    value = distortion(symbols)
    (gradient,) = torch.autograd.grad(value, symbols)
    if evaluated is not None:
        evaluated()
    bits = float(symbol_bits(symbols.detach(), scale).sum())
    return float(value.detach()) + bits / pixels, gradient


def _rate_distortion_rounding(
    distortion: Callable[[Tensor], Tensor],
    starts: Sequence[Tensor],
    scale: Tensor,
    pixels: int,
    evaluated: Optional[Callable[[], None]] = None,
) -> Tensor:
    """Greedy rounding: from the cheapest of ``starts``, moves integer residuals by one
    while that lowers the exact cost ``distortion(symbols) + bits(symbols) / pixels``.

    Each pass predicts every move's change of cost to first order (the distortion's
    gradient plus the exact change of bits), tries the most promising share of the
    moves that promise a fall together, and keeps them if the cost measured again has
    fallen; otherwise it halves the share.

    Args:
        distortion: differentiable scalar distortion term of a symbol vector.
        starts: one or more candidate starts, integer-valued float residuals (1-D, all
            of the same length); the first of the cheapest is used.
        scale: their coding-table scales.
        pixels: pixel count that the bits are divided by.
        evaluated: called after every evaluation of the exact cost (at most
            ``len(starts) + ROUNDING_PASSES`` of them).

    Returns:
        integer-valued residuals whose cost is at most that of every start.

    Raises:
        ValueError: if ``starts`` is empty.
    """
    if not starts:
        raise ValueError("the rounding needs at least one start")
    measured = [(_exact_cost(distortion, start, scale, pixels, evaluated), start) for start in starts]
    (cost, gradient), symbols = min(measured, key=lambda item: item[0][0])
    share = ROUNDING_SHARE
    for _ in range(ROUNDING_PASSES):
        bits = symbol_bits(symbols, scale)
        best_move = torch.zeros_like(symbols)
        best_change = torch.zeros_like(symbols)
        for move in (-1.0, 1.0):
            change = move * gradient + (symbol_bits(symbols + move, scale) - bits) / pixels
            better = change < best_change
            best_change = torch.where(better, change, best_change)
            best_move = torch.where(better, torch.full_like(symbols, move), best_move)
        promising = int((best_change < 0).sum())
        if promising == 0:
            break
        chosen = torch.argsort(best_change)[: max(1, int(share * promising))]
        trial = symbols.clone()
        trial[chosen] += best_move[chosen]
        trial_cost, trial_gradient = _exact_cost(distortion, trial, scale, pixels, evaluated)
        if trial_cost < cost:
            symbols, cost, gradient = trial, trial_cost, trial_gradient
        else:
            share /= 2
            if share < _MIN_ROUNDING_SHARE:
                break
    return symbols


def _refine_tile(
    network,
    image: Tensor,
    residual: Tensor,
    mean: Tensor,
    scale: Tensor,
    inverse_gain: Tensor,
    lam: float,
    tile: Tile,
    steps: int,
    step_size: float,
    evaluated: Callable[[], None],
) -> None:
    """Refines the residuals of one tile's core in place; the rest of its window (its
    margin) stays fixed. Calls ``evaluated`` after every step and every evaluation of
    the rounding's exact cost."""
    rows, cols = tile.window
    # The distortion is measured on the core's pixels inside the image only. A core always
    # starts inside the image (padding is under 64 pixels, cores start at multiples of
    # 512), so they are never empty.
    target = image[(..., *tile.pixels(*image.shape[-2:]))]
    crop = tile.pixels_in_window(*image.shape[-2:])
    window = residual[:, :, rows, cols].to(torch.float32)
    mask = torch.zeros_like(window, dtype=torch.bool)
    mask[(..., *tile.core_in_window)] = True
    tile_mean, tile_scale = mean[:, :, rows, cols], scale[:, :, rows, cols]
    plain = torch.round(window[mask])  # the default encoder's symbols
    core = window[mask].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([core], lr=step_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    beta = torch.tensor([0.0, 1.0])
    weights = torch.tensor([HUMAN_WEIGHT, MACHINE_WEIGHT])
    core_scale = tile_scale[mask]
    pixels_in_image = target.shape[-2] * target.shape[-1]

    def distortion(core_values: Tensor) -> Tensor:
        """lambda * the weighted squared errors of both decodings, rounding straight-through."""
        values = window.masked_scatter(mask, core_values)
        y_hat = (straight_through_round(values) + tile_mean) * inverse_gain
        x_hat = network.g_s(y_hat.expand(2, -1, -1, -1), beta)[:, :, crop[0], crop[1]]
        squared_error = ((x_hat - target) ** 2).mean(dim=(1, 2, 3)) * 255.0**2
        return lam * (weights * squared_error).sum()

    for _ in range(steps):
        loss = _interpolated_bits(core, core_scale) / pixels_in_image + distortion(core)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        evaluated()
    # A few Adam steps can hand the rounding worse symbols than plain rounding: the
    # rounding starts from whichever costs less exactly.
    symbols = _rate_distortion_rounding(
        distortion, (torch.round(core.detach()), plain), core_scale, pixels_in_image, evaluated
    )
    residual[:, :, rows, cols] = window.masked_scatter(mask, symbols).to(residual.dtype)
