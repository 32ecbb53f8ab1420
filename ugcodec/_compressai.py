"""The compressai pieces ugcodec builds on, imported in one place.

Why not ``import compressai``: its package ``__init__`` imports every part of it
(datasets, zoo, point-cloud models and through them torch_geometric, torch._dynamo,
scipy, pandas): seconds of start-up for a command that needs a few layers. The coder
needs only ``compressai.layers`` (GDN, conv3x3, subpel_conv3x3) and
``compressai.models.utils`` (conv, deconv), so those submodules are loaded from the
installed package without running the ``__init__`` of ``compressai`` or of
``compressai.models``. The placeholder packages used for that are removed again at
once, so a later ``import compressai`` in the same process (a benchmark, a user's
script) runs the real ``__init__`` and finds these submodules already loaded.

The entropy models (``EntropyBottleneck``, ``GaussianConditional``, which import scipy)
are only needed for training and export: coding uses frozen tables. They are loaded
the same way on first access of ``_compressai.EntropyBottleneck`` or
``_compressai.GaussianConditional``.

compressai 1.2.8 calls ``torch.jit.script`` at import time, which torch 2.14 answers
with a FutureWarning on every run of the CLI; it is noise to a codec's user.
"""
import importlib
import importlib.util
import os
import sys
import types
import warnings
from typing import List

__all__ = ["EntropyBottleneck", "GaussianConditional", "GDN", "conv", "conv3x3", "deconv", "subpel_conv3x3"]

#: Packages whose ``__init__`` is skipped (placeholders stand in while submodules load).
_SKIPPED_INITS = ("compressai", "compressai.models")


def _import_submodules(names: List[str]) -> List[types.ModuleType]:
    """Imports ``names`` (submodules of compressai) without running the package
    ``__init__`` files listed in ``_SKIPPED_INITS``; returns the modules."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if "compressai" in sys.modules:  # imported for real already: nothing to save
            return [importlib.import_module(name) for name in names]
        spec = importlib.util.find_spec("compressai")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("compressai is not installed")
        root = list(spec.submodule_search_locations)[0]
        placeholders = {}
        for package in _SKIPPED_INITS:
            placeholder = types.ModuleType(package)
            placeholder.__path__ = [os.path.join(root, *package.split(".")[1:])]
            placeholder.__package__ = package
            placeholders[package] = placeholder
        try:
            sys.modules.update(placeholders)
            return [importlib.import_module(name) for name in names]
        finally:
            for package, placeholder in placeholders.items():
                if sys.modules.get(package) is placeholder:
                    del sys.modules[package]
            # compressai's __init__ binds its subpackages (layers, ops, entropy_models)
            # as attributes when it runs later, but compressai.models' does not bind
            # models.utils: forget it, so that a later import loads it as a proper
            # attribute of the real compressai.models (this module keeps its own copy).
            for name in [name for name in sys.modules if name.startswith("compressai.models.")]:
                del sys.modules[name]


_layers, _model_utils = _import_submodules(["compressai.layers", "compressai.models.utils"])
GDN = _layers.GDN
conv3x3 = _layers.conv3x3
subpel_conv3x3 = _layers.subpel_conv3x3
conv = _model_utils.conv
deconv = _model_utils.deconv


def __getattr__(name: str):
    if name in ("EntropyBottleneck", "GaussianConditional"):
        (entropy_models,) = _import_submodules(["compressai.entropy_models"])
        value = getattr(entropy_models, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
