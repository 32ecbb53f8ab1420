"""What this CPU's instruction set offers the decoder's kernels, as PyTorch reports it."""
from __future__ import annotations

import torch


def cpu_supports(feature: str) -> bool:
    """Whether PyTorch reports ``feature`` for this CPU: ``"amx_tile"`` (Intel AMX,
    bfloat16 matrix tiles) or ``"vnni"`` (int8 dot products).

    Takes the name of a ``torch.cpu._is_<feature>_supported`` probe (private in torch
    2.x); returns False where this PyTorch has no such probe or the probe fails.
    """
    probe = getattr(torch.cpu, f"_is_{feature}_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False
