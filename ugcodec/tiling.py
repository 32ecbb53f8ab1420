"""Tiles of the latent grid, shared by the transforms and the encoder's refinement.

Large images are transformed in overlapping tiles so memory stays bounded. Each tile
carries a margin at least as wide as the transform's receptive field (g_a: 30 pixels,
g_s: 3.625 latents), so tiled and whole-image results agree to float rounding: no seams.
Small images are a single tile.

g_a's reach, counted backwards from a latent i: each 5x5 stride-2 convolution reads 2
samples either side of twice its output's position, GDN none; so the latent reads
level-3 samples 2i ± 2, level-2 4i ± 6, level-1 8i ± 14 and pixels 16i ± 30: a margin
of 2 latents (32 pixels) holds every sample it reads, at every level.

g_s's reach, counted backwards from a pixel: each 5x5 stride-2 transposed convolution
reaches 1 sample of its input, each residual block 2 samples (two 3x3 convolutions),
GDN none; so 1 → 3 (block) → 3/2 + 1 = 2.5 → 4.5 → 3.25 → 5.25 → 5.25/2 + 1 = 3.625
latents. :func:`synthesis_tiles` (the decoder's) and :func:`analysis_tiles` (the
encoder's) use the smallest whole margin that covers the reach, and as few and as even
tiles as a memory budget allows.

    >>> [tile.core for tile in tiles(3, 5, tile=4, margin=1)]
    [(slice(0, 3, None), slice(0, 4, None)), (slice(0, 3, None), slice(4, 5, None))]
    >>> second = list(tiles(3, 5, tile=4, margin=1))[1]
    >>> second.window, second.core_in_window
    ((slice(0, 3, None), slice(3, 5, None)), (slice(0, 3, None), slice(1, 2, None)))
    >>> second.pixels(40, 70)  # the core's pixels inside a 40x70 image
    (slice(0, 40, None), slice(64, 70, None))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

__all__ = [
    "LATENT_STRIDE",
    "ANALYSIS_AREA",
    "ANALYSIS_REACH_MARGIN",
    "SYNTHESIS_TILE",
    "SYNTHESIS_MARGIN",
    "SYNTHESIS_REACH_MARGIN",
    "SYNTHESIS_AREA",
    "Tile",
    "tiles",
    "analysis_tiles",
    "synthesis_tiles",
]

LATENT_STRIDE = 16  # pixels per latent
ANALYSIS_REACH_MARGIN = 2  # latents: g_a reaches 30 pixels (module docstring)
#: Largest analysis window in latents, margins included (72 x 72: 1152 pixels square):
#: bounds g_a's memory.
ANALYSIS_AREA = 72 * 72
SYNTHESIS_TILE = 32  # latents (512 pixels)
SYNTHESIS_MARGIN = 6  # latents (the encoder's refinement tiles)
SYNTHESIS_REACH_MARGIN = 4  # latents: g_s reaches 3.625 (module docstring)
#: Largest synthesis tile in latents, margins included: bounds g_s's memory.
SYNTHESIS_AREA = (SYNTHESIS_TILE + 2 * SYNTHESIS_MARGIN) ** 2

Window = Tuple[slice, slice]


@dataclass(frozen=True)
class Tile:
    """One tile of a latent grid.

    Attributes:
        window: latent ``(rows, columns)`` the transform sees: the core and its margin,
            clipped to the grid.
        core: latent ``(rows, columns)`` whose results the tile keeps.
    """

    window: Window
    core: Window

    @property
    def window_area(self) -> int:
        """Latent positions in the window (the work a transform does on the tile)."""
        rows, cols = self.window
        return (rows.stop - rows.start) * (cols.stop - cols.start)

    @property
    def core_in_window(self) -> Window:
        """The core, in latents from the window's corner."""
        return tuple(slice(c.start - w.start, c.stop - w.start) for c, w in zip(self.core, self.window))

    def pixels(self, height: int, width: int) -> Window:
        """The core's pixels inside a ``height`` x ``width`` image (possibly empty)."""
        return tuple(
            slice(c.start * LATENT_STRIDE, min(c.stop * LATENT_STRIDE, size)) for c, size in zip(self.core, (height, width))
        )

    def pixels_in_window(self, height: int, width: int) -> Window:
        """:meth:`pixels`, in pixels from the window's corner."""
        return tuple(
            slice(p.start - w.start * LATENT_STRIDE, p.stop - w.start * LATENT_STRIDE)
            for p, w in zip(self.pixels(height, width), self.window)
        )


def tiles(height: int, width: int, tile: int, margin: int) -> Iterator[Tile]:
    """Yields the tiles of ``tile`` x ``tile`` latents and ``margin`` on every side that
    cover a ``height`` x ``width`` latent grid, row by row."""
    corners = [(top, left) for top in range(0, height, tile) for left in range(0, width, tile)]
    for top, left in corners:
        yield Tile(
            window=(slice(max(0, top - margin), min(height, top + tile + margin)),
                    slice(max(0, left - margin), min(width, left + tile + margin))),
            core=(slice(top, min(height, top + tile)), slice(left, min(width, left + tile))),
        )


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


def synthesis_tiles(height: int, width: int) -> Iterator[Tile]:
    """The decoder's tiles of a ``height`` x ``width`` latent grid: the fewest
    (then the least total work) such that each tile with its ``SYNTHESIS_REACH_MARGIN``
    (on the sides that have a neighbour) holds at most ``SYNTHESIS_AREA`` latents.

    Yields :class:`Tile` objects whose windows are the cores plus their margins, clipped
    to the grid. (:mod:`ugcodec.progress` counts the work of an encode or decode, tile by
    tile.)
    """
    return planned_tiles(height, width, SYNTHESIS_AREA, SYNTHESIS_REACH_MARGIN)


def analysis_tiles(height: int, width: int) -> Iterator[Tile]:
    """The encoder's tiles of a ``height`` x ``width`` latent grid, as
    :func:`synthesis_tiles` with ``ANALYSIS_AREA`` and ``ANALYSIS_REACH_MARGIN``."""
    return planned_tiles(height, width, ANALYSIS_AREA, ANALYSIS_REACH_MARGIN)


def planned_tiles(height: int, width: int, area: int, margin: int) -> Iterator[Tile]:
    """The fewest tiles (then the least total work) of a ``height`` x ``width`` latent
    grid such that each with its ``margin`` (on the sides that have a neighbour) holds
    at most ``area`` latents, as even as the grid allows."""
    best = None
    # Every tile height worth trying: from the whole grid down to a few latents.
    for tall in range(min(height, area), 0, -1):
        rows = _fewest_parts(height, tall, margin)
        if rows is None:
            break
        columns = _fewest_parts(width, area // tall, margin)
        if columns is None or rows > height or columns > width:
            continue
        work = (height + 2 * margin * (rows - 1)) * (width + 2 * margin * (columns - 1))
        key = (rows * columns, work)
        if best is None or key < best[0]:
            best = (key, rows, columns)
    _, rows, columns = best if best is not None else (None, height, width)
    corners = [(r, c) for r in _split(height, rows) for c in _split(width, columns)]
    for (top, bottom), (left, right) in corners:
        yield Tile(
            window=(slice(max(0, top - margin), min(height, bottom + margin)),
                    slice(max(0, left - margin), min(width, right + margin))),
            core=(slice(top, bottom), slice(left, right)),
        )
