"""Defaults and bounds of the public API, in a module that needs no torch: the CLI shows
them in its options, and ``ugc --version`` or ``ugc info`` must not pay for torch."""

import os

__all__ = [
    "DEFAULT_PRECISION", "DEFAULT_QUALITY", "MAX_REFINE_STEPS", "DEFAULT_OUTPUT_QUALITY", "PRECISIONS", "available_cores"
]

#: The quality level used when none is given (levels run from 1 to the weights' count).
DEFAULT_QUALITY = 3

#: What encoding's and decoding's ``precision`` accepts (:mod:`ugcodec.precision`): ``"auto"`` is
#: ``"bfloat16"`` on CPUs with AMX and ``"float32"`` elsewhere.
PRECISIONS = ("auto", "float32", "bfloat16")

#: The precision of the transforms used when none is given.
DEFAULT_PRECISION = "auto"

#: The most encoder-refinement steps :func:`ugcodec.encode` accepts per tile.
MAX_REFINE_STEPS = 1000

#: The JPEG or WebP quality (1-100) of a decoded image written in one of those formats
#: unless told otherwise: high, so that the second lossy step adds little loss.
DEFAULT_OUTPUT_QUALITY = 90


def available_cores() -> int:
    """The CPU cores this process may run on: its affinity mask where the system has one
    (``taskset``, a container's CPU set), else ``os.cpu_count()``; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity masks on this system
        return max(1, os.cpu_count() or 1)
