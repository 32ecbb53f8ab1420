"""Shipped weights: load for coding, fingerprint (``tools/export.py`` writes them).

A weights file is a ``torch.save`` dictionary (loaded with ``weights_only=True``):

* ``config``: :class:`ugcodec.models.ModelConfig` as a dict; ``model_id``;
* ``float``: fp16 parameters and buffers of g_a, h_a and g_s (pixels only);
* ``integer_h_s``: the integer-exact hyper-synthesis (:mod:`ugcodec.integer_net`);
* ``gains`` (int64, ``GAIN_BITS`` fractional bits) and ``inverse_gains`` (float32), one
  row per quality level;
* ``scale_thresholds``: int64 thresholds that turn scales into table indexes;
* ``y_tables`` / ``z_tables``: the frozen integer coding tables (one per scale index,
  one per z channel) as ``offsets``, ``lengths`` and concatenated ``frequencies``;
* the latent coder's own entry, if any (:mod:`ugcodec.latent_coders`):
  ``scale_context`` (model id 2) or ``channel_context`` (model id 3), the integer-exact
  channel context that refines the y table indexes (and for model id 3 the means).

The fingerprint (8 bytes, written in every .ugc header) is the start of the SHA-256 of
every entry in a canonical order, so a file made with other weights is refused.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

from .channel_context import IntegerChannelContext
from .container import WeightsSummary, parse_fingerprints
from .entropy_coding import CodingTable
from .errors import UgcError, WeightsError
from .integer_net import IntegerHyperSynthesis, entropy_parameters
from .latent_coders import LATENT_CODERS, HyperpriorCoder, LatentCoder, coder_entries
from .models import ModelConfig, UGHyperprior
from .precision import (DEFAULT_PRECISION, bfloat16_analysis, bfloat16_synthesis, float32_analysis, float32_synthesis,
                        resolve_precision)
from .scratch import ScratchPool

__all__ = [
    "CodecModel",
    "DEFAULT_WEIGHTS",
    "load_model",
    "fingerprint_of",
    "model_from_bundle",
    "read_bundle",
]

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "ugc-hyperprior-pcdm.pt")
WEIGHTS_FORMAT = "ugcodec-weights-1"
#: Parts of the float model that the coder does not use (h_s runs in integers; the
#: entropy models are replaced by frozen tables).
NOT_SHIPPED = ("h_s.", "entropy_bottleneck.", "gaussian_conditional.", "log_gain", "log_inverse_gain")


def _unpack_tables(packed: Dict[str, Tensor]) -> List[CodingTable]:
    frequencies = packed["frequencies"].numpy().astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(packed["lengths"].numpy())])
    return [
        CodingTable(int(offset), frequencies[start:end])
        for offset, start, end in zip(packed["offsets"].tolist(), bounds[:-1], bounds[1:])
    ]


# The fingerprint hashes dtype names as bitstream_spec.md §3.3 spells them; a fixed table
# keeps fingerprints stable even if a future PyTorch prints its dtypes differently.
_DTYPE_NAMES = {
    torch.int16: "torch.int16",
    torch.int32: "torch.int32",
    torch.int64: "torch.int64",
    torch.float16: "torch.float16",
    torch.float32: "torch.float32",
}


def fingerprint_of(bundle: dict) -> bytes:
    """First 8 bytes of the SHA-256 of every entry of a weights bundle, in sorted order
    (bitstream_spec.md §3.3).

    Raises:
        ValueError: a tensor has a dtype the spec does not name.
    """
    digest = hashlib.sha256()

    def visit(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                visit(f"{prefix}/{key}", value[key])
            return
        digest.update(prefix.encode())
        if isinstance(value, Tensor):
            tensor = value.detach().cpu().contiguous()
            if tensor.dtype not in _DTYPE_NAMES:
                raise ValueError(f"{prefix}: dtype {tensor.dtype} has no fingerprint spelling (bitstream_spec.md §3.3)")
            digest.update(f"{_DTYPE_NAMES[tensor.dtype]}{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
        else:
            digest.update(repr(value).encode())

    visit("", bundle)
    return digest.digest()[:8]


@dataclass
class CodecModel:
    """Everything the coder needs, loaded from a weights file.

    Attributes:
        network: the float model (only g_a, h_a, g_s and gains are used).
        hyper_synthesis: integer-exact h_s.
        gains: int64 ``(levels, M)``; inverse_gains: float32 ``(levels, M)``.
        thresholds: int64 scale thresholds; y_tables, z_tables: coding tables.
        fingerprint: 8 bytes; path: where it came from.
        latent_coder: the coder of the y section (:mod:`ugcodec.latent_coders`), whose
            class is the model id's.
        also_decodes: fingerprints of other weights whose files these decode (the
            bundle's ``also_decodes``, bitstream_spec.md §3).
        scratch: the temporaries the encoder and decoder reuse from one file to the next
            (:mod:`ugcodec.scratch`); ``scratch.release()`` frees this thread's.
    """

    network: UGHyperprior
    hyper_synthesis: IntegerHyperSynthesis
    gains: Tensor
    inverse_gains: Tensor
    thresholds: Tensor
    y_tables: List[CodingTable]
    z_tables: List[CodingTable]
    fingerprint: bytes
    path: str
    latent_coder: LatentCoder
    also_decodes: FrozenSet[bytes] = frozenset()
    scratch: ScratchPool = field(default_factory=ScratchPool, init=False, repr=False, compare=False)
    _forms: Dict[str, nn.Module] = field(default_factory=dict, init=False, repr=False, compare=False)

    def analysis(self, precision: str = DEFAULT_PRECISION) -> nn.Module:
        """g_a as the encoder runs it in ``precision`` (:mod:`ugcodec.precision`):
        :func:`~ugcodec.precision.float32_analysis` or its bfloat16 form, built once.

        Raises:
            ValueError: unknown precision.
        """
        return self._transform("g_a", precision, bfloat16_analysis, float32_analysis)

    def synthesis(self, precision: str = DEFAULT_PRECISION) -> nn.Module:
        """g_s as the decoder runs it in ``precision``: its bfloat16 form as
        :meth:`analysis` does g_a, and for float32
        :func:`~ugcodec.precision.float32_synthesis`, built once.

        Raises:
            ValueError: unknown precision.
        """
        return self._transform("g_s", precision, bfloat16_synthesis, float32_synthesis)

    def _transform(
        self,
        name: str,
        precision: str,
        to_bfloat16: Callable[[nn.Module], nn.Module],
        to_float32: Optional[Callable[[nn.Module], nn.Module]] = None,
    ) -> nn.Module:
        """The network's transform ``name`` in ``precision``, its derived forms cached."""
        precision = resolve_precision(precision)
        convert = to_bfloat16 if precision == "bfloat16" else to_float32
        if convert is None:
            return getattr(self.network, name)
        key = f"{name}-{precision}"
        if key not in self._forms:
            self._forms[key] = convert(getattr(self.network, name))
        return self._forms[key]

    @property
    def model_id(self) -> int:
        """The container model id."""
        return self.latent_coder.model_id

    def coder_for(self, model_id: int) -> LatentCoder:
        """The coder of the y section of a file of ``model_id`` that these weights decode
        (:func:`ugcodec.container.check_weights`): their own, or for a plain model id 1
        file of weights they list in ``also_decodes``, the hyperprior's tables alone.

        Raises:
            ValueError: ``model_id`` is neither these weights' nor the plain one.
        """
        if model_id == self.model_id:
            return self.latent_coder
        if model_id == HyperpriorCoder.model_id:
            return HyperpriorCoder(self.y_tables)
        raise ValueError(f"weights of model id {self.model_id} cannot parse model id {model_id}")

    @property
    def summary(self) -> WeightsSummary:
        """What :func:`ugcodec.container.check_weights` needs of these weights."""
        return WeightsSummary(self.model_id, self.fingerprint, self.num_qualities, self.also_decodes)

    @property
    def channel_context(self) -> Optional[IntegerChannelContext]:
        """The channel context of model ids 2 and 3; None for model id 1."""
        return getattr(self.latent_coder, "context", None)

    @property
    def config(self) -> ModelConfig:
        return self.network.config

    @property
    def num_qualities(self) -> int:
        return int(self.gains.shape[0])

    @property
    def qualities(self) -> range:
        """The quality levels, numbered from 1 (lowest rate) as the API, the CLI and the
        container number them; ``qualities[row]`` is the level of a per-level row."""
        return range(1, self.num_qualities + 1)

    def row(self, quality: int) -> int:
        """The row of quality level ``quality`` in the per-level tables (gains, lambdas)."""
        return quality - self.qualities.start

    def gain(self, quality: int) -> Tensor:
        """int64 ``(M,)`` gains of a level, ``GAIN_BITS`` fractional bits."""
        return self.gains[self.row(quality)]

    def inverse_gain(self, quality: int) -> Tensor:
        """float32 ``(M,)`` inverse gains of a level."""
        return self.inverse_gains[self.row(quality)]

    def rate_weight(self, quality: int) -> float:
        """λ of a level: the weight of distortion against bits it was trained with."""
        return float(self.config.lambdas[self.row(quality)])


def read_bundle(path: str) -> dict:
    """The dictionary of a weights file, unchecked beyond its format tag.

    Raises:
        UgcError: the file is missing, unreadable or not ugcodec weights.
    """
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UgcError(f"weights file not found: {path}") from None
    except Exception as error:  # a damaged or foreign file: torch raises many types
        raise UgcError(f"cannot read weights file {path}: {error}") from None
    if not isinstance(bundle, dict) or bundle.get("format") != WEIGHTS_FORMAT:
        raise UgcError(f"{path} is not a ugcodec weights file")
    return bundle


def model_from_bundle(bundle: dict, path: str = "<memory>") -> CodecModel:
    """Builds a :class:`CodecModel` from a weights dictionary (see :func:`load_model`)."""
    # The first load may happen inside the coder's inference mode; tensors made there could
    # never enter autograd, which encoder refinement needs (and the model is cached).
    with torch.inference_mode(False):
        try:
            model = _model_from_bundle(bundle, path)
            with torch.no_grad():
                _check_consistent(model, bundle)
            return model
        except UgcError:
            raise
        except Exception as error:  # missing keys, wrong types or shapes: many exception types
            message = " ".join(str(error).split())[:200]
            raise WeightsError(f"weights file {path} is malformed ({type(error).__name__}: {message})") from None


def _check_consistent(model: "CodecModel", bundle: dict) -> None:
    """Refuses weights whose parts do not fit together, by running the parsing path once
    on a zero hyper-latent (so a bad file fails here, not in the middle of a decode)."""
    config = model.config
    levels = model.num_qualities
    problems = []
    if tuple(model.gains.shape) != (levels, config.M) or tuple(model.inverse_gains.shape) != (levels, config.M):
        problems.append(f"gains must be ({levels}, {config.M})")
    elif not bool(torch.isfinite(model.inverse_gains).all()):
        problems.append("inverse gains must be finite")
    if len(config.lambdas) != levels:
        problems.append("one lambda per quality level")
    if len(model.z_tables) != config.N:
        problems.append(f"{config.N} z tables (one per channel)")
    if model.thresholds.dim() != 1 or len(model.y_tables) != model.thresholds.numel() + 1:
        problems.append("one y table more than scale thresholds")
    if not problems:
        means, scales = model.hyper_synthesis(torch.zeros((1, config.N, 1, 1), dtype=torch.int64))
        if tuple(means.shape) != (1, config.M, 4, 4) or tuple(scales.shape) != (1, config.M, 4, 4):
            problems.append(f"the integer hyper-synthesis must give 2 x {config.M} channels at 4x the size")
        else:
            _, index = entropy_parameters(means, scales, model.gains[0], model.thresholds)
            if model.channel_context is not None:
                _, _, index = model.channel_context.decode(index, lambda k, idx: torch.zeros(idx.shape, dtype=torch.int64))
            if int(index.min()) < 0 or int(index.max()) >= len(model.y_tables):
                problems.append("table indexes outside the y tables")
    if problems:
        raise WeightsError(f"weights file {model.path} is inconsistent: " + "; ".join(problems))


def _latent_coder(bundle: dict, path: str, channels: int) -> LatentCoder:
    """The latent coder of a weights dictionary's model id, with its own entry and no other's."""
    coder = LATENT_CODERS.get(int(bundle["model_id"]))
    if coder is None or any(key in bundle for key in coder_entries() if key != coder.bundle_key):
        raise UgcError(f"weights file {path} has an unknown model id or stray parts")
    if coder.bundle_key is not None and coder.bundle_key not in bundle:
        raise UgcError(f"weights file {path} is model {coder.model_id} but has no channel context")
    try:
        return coder.from_bundle(bundle, _unpack_tables(bundle["y_tables"]), channels)
    except (KeyError, ValueError) as error:
        raise UgcError(f"weights file {path} has an invalid channel context ({error})") from None


def _model_from_bundle(bundle: dict, path: str) -> CodecModel:
    config = ModelConfig.from_dict(bundle["config"])
    network = UGHyperprior(config, coding_only=True)
    state = {name: value.float() if value.is_floating_point() else value for name, value in bundle["float"].items()}
    missing, unexpected = network.load_state_dict(state, strict=False)
    if unexpected or any(not name.startswith(NOT_SHIPPED) for name in missing):
        raise UgcError(f"weights file {path} does not match its model configuration")
    network.eval().requires_grad_(False)
    gains = bundle["gains"].to(torch.int64)
    # mu = means * gain (+ a mean correction * 2**16, model id 3) must stay an exact
    # float64 (below 2**53): means < 2**25 and corrections < 2**25, so gains < 2**27.
    if gains.numel() == 0 or int(gains.min()) < 1 or int(gains.max()) >= 1 << 27:
        raise UgcError(f"weights file {path} has gains outside the exact range")
    latent_coder = _latent_coder(bundle, path, config.M)
    return CodecModel(
        network=network,
        hyper_synthesis=IntegerHyperSynthesis.from_state_dict(bundle["integer_h_s"]),
        gains=gains,
        inverse_gains=bundle["inverse_gains"].float(),
        thresholds=bundle["scale_thresholds"].to(torch.int64),
        y_tables=latent_coder.tables,
        z_tables=_unpack_tables(bundle["z_tables"]),
        fingerprint=fingerprint_of(bundle),
        path=path,
        latent_coder=latent_coder,
        also_decodes=parse_fingerprints(bundle.get("also_decodes", [])),
    )


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> CodecModel:
    return model_from_bundle(read_bundle(path), path)


def load_model(path: Optional[str] = None) -> CodecModel:
    """Loads (once per process, then cached) a weights file; default: the shipped one.

    Raises:
        UgcError: the file is missing, unreadable or not ugcodec weights.
    """
    return _load_cached(os.path.abspath(path or DEFAULT_WEIGHTS))
