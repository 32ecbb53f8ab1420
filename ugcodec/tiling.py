"""Tiles of the latent grid, shared by the transforms and the encoder's refinement.

Large images are transformed in overlapping tiles so memory stays bounded. Each tile
carries a margin wider than the transform's receptive field (g_a: < 32 pixels, g_s:
< 4 latents), so tiled and whole-image results agree to float rounding: no seams.
Small images are a single tile.

g_s's reach, counted backwards from a pixel: each 5x5 stride-2 transposed convolution
reaches 1 sample of its input, each residual block 2 samples (two 3x3 convolutions),
GDN none; so 1 → 3 (block) → 3/2 + 1 = 2.5 → 4.5 → 3.25 → 5.25 → 5.25/2 + 1 = 3.625
latents. :func:`synthesis_tiles` (the decoder's) uses the smallest whole margin above
that, and as few and as even tiles as a memory budget allows.
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

__all__ = [
    "LATENT_STRIDE",
    "ANALYSIS_TILE",
    "ANALYSIS_MARGIN",
    "SYNTHESIS_TILE",
    "SYNTHESIS_MARGIN",
    "SYNTHESIS_REACH_MARGIN",
    "SYNTHESIS_AREA",
    "tiles",
    "synthesis_tiles",
]

LATENT_STRIDE = 16  # pixels per latent
ANALYSIS_TILE = 64  # latents (1024 pixels)
ANALYSIS_MARGIN = 4  # latents (64 pixels)
SYNTHESIS_TILE = 32  # latents (512 pixels)
SYNTHESIS_MARGIN = 6  # latents (the encoder's refinement tiles)
SYNTHESIS_REACH_MARGIN = 4  # latents: g_s reaches 3.625 (module docstring)
#: Largest synthesis tile in latents, margins included: bounds g_s's memory.
SYNTHESIS_AREA = (SYNTHESIS_TILE + 2 * SYNTHESIS_MARGIN) ** 2


def tiles(
    height: int, width: int, tile: int, margin: int, progress: Optional[str] = None
) -> Iterator[Tuple[slice, slice, Tuple[int, int]]]:
    """Yields ``(row slice, column slice, (core top, core left))`` covering a latent grid;
    each slice is the core tile plus ``margin`` on every side, clipped to the grid.
    ``progress`` names a progress bar on stderr (shown for several tiles on a terminal)."""
    corners = [(top, left) for top in range(0, height, tile) for left in range(0, width, tile)]
    if progress and len(corners) > 1:
        from tqdm import tqdm

        corners = tqdm(corners, desc=progress, unit="tile", leave=False, disable=None)
    for top, left in corners:
        rows = slice(max(0, top - margin), min(height, top + tile + margin))
        cols = slice(max(0, left - margin), min(width, left + tile + margin))
        yield rows, cols, (top, left)


def _split(size: int, parts: int) -> "list[Tuple[int, int]]":
    """``parts`` contiguous ``(start, stop)`` ranges covering ``size``, lengths within 1."""
    return [(index * size // parts, (index + 1) * size // parts) for index in range(parts)]


def _fewest_parts(size: int, longest: int, margin: int) -> Optional[int]:
    """The fewest parts of ``size`` whose longest, with its margins, is at most ``longest``."""
    if size <= longest:
        return 1
    if -(-size // 2) + margin <= longest:
        return 2
    if longest <= 2 * margin:
        return None
    return max(3, -(-size // (longest - 2 * margin)))


def synthesis_tiles(
    height: int, width: int, progress: Optional[str] = None
) -> Iterator[Tuple[slice, slice, Tuple[int, int], Tuple[int, int]]]:
    """The decoder's tiles of a ``height`` x ``width`` latent grid: the fewest
    (then the least total work) such that each tile with its ``SYNTHESIS_REACH_MARGIN``
    (on the sides that have a neighbour) holds at most ``SYNTHESIS_AREA`` latents.

    Yields ``(row slice, column slice, (core top, core left), (core height, core width))``;
    the slices are the core plus its margins, clipped to the grid. ``progress`` names a
    progress bar on stderr (shown for several tiles on a terminal).
    """
    margin = SYNTHESIS_REACH_MARGIN
    best = None
    # Every tile height worth trying: from the whole grid down to a few latents.
    for tall in range(min(height, SYNTHESIS_AREA), 0, -1):
        rows = _fewest_parts(height, tall, margin)
        if rows is None:
            break
        columns = _fewest_parts(width, SYNTHESIS_AREA // tall, margin)
        if columns is None or rows > height or columns > width:
            continue
        work = (height + 2 * margin * (rows - 1)) * (width + 2 * margin * (columns - 1))
        key = (rows * columns, work)
        if best is None or key < best[0]:
            best = (key, rows, columns)
    _, rows, columns = best if best is not None else (None, height, width)
    corners = [(r, c) for r in _split(height, rows) for c in _split(width, columns)]
    if progress and len(corners) > 1:
        from tqdm import tqdm

        corners = tqdm(corners, desc=progress, unit="tile", leave=False, disable=None)
    for (top, bottom), (left, right) in corners:
        yield (
            slice(max(0, top - margin), min(height, bottom + margin)),
            slice(max(0, left - margin), min(width, right + margin)),
            (top, left),
            (bottom - top, right - left),
        )
