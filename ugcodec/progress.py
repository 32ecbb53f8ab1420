"""Progress of one encode or decode, counted in units of work that follow the real work.

:func:`ugcodec.encode` and :func:`ugcodec.decode` take ``progress``: ``True`` for a bar on
stderr (shown on terminals only), or a callback ``progress(done, total)``. Once the image's
size is known, the whole job is planned in work units (``total`` then stays the same),
and ``done`` grows stage by stage and tile by tile: reading, analysis, refinement steps,
entropy coding; or parsing and synthesis. It reaches ``total`` only when the call is about
to return. The units weigh each stage by its rough relative cost per latent position
(16 x 16 pixels) on a CPU, so that the fraction done follows the time spent.

A caller with work of its own after the codec's (the ``ugc`` command writes the output
file) adds its units to the ``total`` it shows, as :func:`image_write_work` counts them.
No torch here: the command line imports this module before it needs a model.
"""
from __future__ import annotations

import math
import sys
from typing import Callable, Optional, Union

__all__ = [
    "ProgressCallback",
    "Progress",
    "Meter",
    "latent_positions",
    "image_write_work",
    "READ_IMAGE",
    "ANALYSIS",
    "HYPER",
    "ENTROPY_CODING",
    "PARSING",
    "SYNTHESIS",
    "REFINEMENT",
    "WRITE_IMAGE",
]

#: ``callback(done, total)``: units of work done so far, out of ``total``.
ProgressCallback = Callable[[int, int], None]
#: What the codec functions take: a callback, ``True`` (a bar on stderr), or ``False``/None.
Progress = Union[bool, ProgressCallback, None]

# Rough relative cost of each stage per latent position (16 x 16 pixels), on a CPU.
#: Reading and converting the input image.
READ_IMAGE = 1
#: The analysis transform g_a, per latent position of a tile's window (margins included).
ANALYSIS = 14
#: h_a, the integer hyper-synthesis and the exact coding parameters.
HYPER = 4
#: The latent coder: choosing and entropy-coding the symbols.
ENTROPY_CODING = 9
#: Parsing a file: entropy decoding z and y, and the integer hyper-synthesis.
PARSING = 15
#: The synthesis transform g_s, per latent position of a tile's window.
SYNTHESIS = 28
#: One refinement evaluation (both decodings, forward and backward), per latent position
#: of a refinement tile's window.
REFINEMENT = 84
#: Compressing and writing the decoded image file.
WRITE_IMAGE = 7


def latent_positions(width: int, height: int) -> int:
    """Latent positions of a ``width`` x ``height`` image: one per 16 x 16 pixels, rounded up."""
    return math.ceil(width / 16) * math.ceil(height / 16)


def image_write_work(width: int, height: int) -> int:
    """Units of work to compress and write a decoded ``width`` x ``height`` image file."""
    return WRITE_IMAGE * latent_positions(width, height)


class Meter:
    """Counts units done out of a planned total and reports them to a callback.

    Args:
        progress: a :data:`ProgressCallback`, ``True`` for a tqdm bar on stderr (shown on
            terminals only) described by ``description``, or ``False``/None (nothing).
        description: the bar's label.

    Plan the whole job with :meth:`plan` before advancing, so that the total a callback
    sees never changes; :meth:`finish` reports the end, :meth:`close` closes the bar.

    >>> reports = []
    >>> meter = Meter(lambda done, total: reports.append((done, total)))
    >>> meter.plan(10)
    >>> meter.advance(4)
    >>> meter.part(6)(1, 2)  # a sub-task half done: half of its 6 units
    >>> meter.finish()
    >>> reports
    [(4, 10), (7, 10), (10, 10)]
    """

    def __init__(self, progress: Progress = None, description: str = "") -> None:
        self.done = 0
        self.total = 0
        self._bar = None
        self._callback: Optional[ProgressCallback] = None
        if callable(progress):
            self._callback = progress
        elif progress:
            from tqdm import tqdm

            self._bar = tqdm(total=0, desc=description or None, file=sys.stderr, leave=False, disable=None, miniters=1,
                             bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
            self._callback = self._draw

    def _draw(self, done: int, total: int) -> None:
        if self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    @property
    def active(self) -> bool:
        """Whether anything is reported (callers may skip planning work otherwise)."""
        return self._callback is not None

    def plan(self, units: int) -> None:
        """Adds ``units`` of work still to do to the total."""
        self.total += max(0, int(units))

    def advance(self, units: int = 1) -> None:
        """Marks ``units`` more as done (never beyond the total) and reports."""
        self.advance_to(self.done + units)

    def advance_to(self, done: int) -> None:
        """Marks ``done`` units in all as done (never beyond the total, never backwards)."""
        done = min(max(self.done, int(done)), self.total)
        if done == self.done:
            return
        self.done = done
        if self._callback is not None:
            self._callback(self.done, self.total)

    def part(self, units: int) -> ProgressCallback:
        """A callback for a sub-task that fills the next ``units`` of this meter: its
        ``(done, total)`` is scaled into them."""
        start = self.done

        def report(done: int, total: int) -> None:
            if total > 0:
                self.advance_to(start + units * min(done, total) // total)

        return report

    def finish(self) -> None:
        """Reports all planned work as done."""
        self.advance_to(self.total)

    def close(self) -> None:
        """Closes the bar, if any (also after an error, without reporting the end)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
