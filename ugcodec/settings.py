"""Defaults and bounds of the public API, in a module that needs no torch: the CLI shows
them in its options, and ``ugc --version`` or ``ugc info`` must not pay for torch."""

__all__ = ["DEFAULT_QUALITY", "MAX_REFINE_STEPS", "DEFAULT_OUTPUT_QUALITY"]

#: The quality level used when none is given (levels run from 1 to the weights' count).
DEFAULT_QUALITY = 3

#: The most encoder-refinement steps :func:`ugcodec.encode` accepts per tile.
MAX_REFINE_STEPS = 1000

#: The JPEG or WebP quality (1-100) of a decoded image written in one of those formats
#: unless told otherwise: high, so that the second lossy step adds little loss.
DEFAULT_OUTPUT_QUALITY = 90
