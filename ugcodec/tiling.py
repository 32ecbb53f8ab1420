"""Tiles of the latent grid, shared by the transforms and the encoder's refinement.

Large images are transformed in overlapping tiles so memory stays bounded. Each tile
carries a margin wider than the transform's receptive field (g_a: < 32 pixels, g_s:
< 4 latents), so tiled and whole-image results agree to float rounding: no seams.
Small images are a single tile.

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

__all__ = ["LATENT_STRIDE", "ANALYSIS_TILE", "ANALYSIS_MARGIN", "SYNTHESIS_TILE", "SYNTHESIS_MARGIN", "Tile", "tiles"]

LATENT_STRIDE = 16  # pixels per latent
ANALYSIS_TILE = 64  # latents (1024 pixels)
ANALYSIS_MARGIN = 4  # latents (64 pixels)
SYNTHESIS_TILE = 32  # latents (512 pixels)
SYNTHESIS_MARGIN = 6  # latents

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


def tiles(height: int, width: int, tile: int, margin: int, progress: Optional[str] = None) -> Iterator[Tile]:
    """Yields the tiles of ``tile`` x ``tile`` latents and ``margin`` on every side that
    cover a ``height`` x ``width`` latent grid, row by row.
    ``progress`` names a progress bar on stderr (shown for several tiles on a terminal)."""
    corners = [(top, left) for top in range(0, height, tile) for left in range(0, width, tile)]
    if progress and len(corners) > 1:
        from tqdm import tqdm

        corners = tqdm(corners, desc=progress, unit="tile", leave=False, disable=None)
    for top, left in corners:
        yield Tile(
            window=(slice(max(0, top - margin), min(height, top + tile + margin)),
                    slice(max(0, left - margin), min(width, left + tile + margin))),
            core=(slice(top, min(height, top + tile)), slice(left, min(width, left + tile))),
        )
