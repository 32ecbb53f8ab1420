"""Defaults and bounds of the public API, in a module that needs no torch: the CLI shows
them in its options, and ``ugc --version`` or ``ugc info`` must not pay for torch."""

__all__ = ["DEFAULT_QUALITY", "MAX_REFINE_STEPS"]

#: The quality level used when none is given (levels run from 1 to the weights' count).
DEFAULT_QUALITY = 3

#: The most encoder-refinement steps :func:`ugcodec.encode` accepts per tile.
MAX_REFINE_STEPS = 1000
