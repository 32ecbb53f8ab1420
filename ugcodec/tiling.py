"""Tiles of the latent grid, shared by the transforms and the encoder's refinement.

Large images are transformed in overlapping tiles so memory stays bounded. Each tile
carries a margin wider than the transform's receptive field (g_a: < 32 pixels, g_s:
< 4 latents, measured), so tiled and whole-image results agree to float rounding:
no seams. Small images are a single tile.
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

__all__ = ["LATENT_STRIDE", "ANALYSIS_TILE", "ANALYSIS_MARGIN", "SYNTHESIS_TILE", "SYNTHESIS_MARGIN", "tiles"]

LATENT_STRIDE = 16  # pixels per latent
ANALYSIS_TILE = 64  # latents (1024 pixels)
ANALYSIS_MARGIN = 4  # latents (64 pixels)
SYNTHESIS_TILE = 32  # latents (512 pixels)
SYNTHESIS_MARGIN = 6  # latents


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
