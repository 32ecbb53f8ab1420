"""Shipped weights: export from a trained model, load for coding, fingerprint.

A weights file is a ``torch.save`` dictionary (loaded with ``weights_only=True``):

* ``config``: :class:`ugcodec.models.ModelConfig` as a dict; ``model_id``;
* ``float``: fp16 parameters and buffers of g_a, h_a and g_s (pixels only);
* ``integer_h_s``: the integer-exact hyper-synthesis (:mod:`ugcodec.integer_net`);
* ``gains`` (int64, ``GAIN_BITS`` fractional bits) and ``inverse_gains`` (float32), one
  row per quality level;
* ``scale_thresholds``: int64 thresholds that turn scales into table indexes;
* ``y_tables`` / ``z_tables``: the frozen integer coding tables (one per scale index,
  one per z channel) as ``offsets``, ``lengths`` and concatenated ``frequencies``;
* ``scale_context`` (model id 2 only) or ``channel_context`` (model id 3 only): the
  integer-exact channel context (:mod:`ugcodec.channel_context`) that refines the y
  table indexes (and for model 3 the means) slice by slice.

The fingerprint (8 bytes, written in every .ugc header) is the start of the SHA-256 of
every entry in a canonical order, so a file made with other weights is refused.
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .channel_context import IntegerChannelContext
from .entropy_coding import CodingTable, quantize_pmf
from .errors import UgcError
from .integer_net import (
    GAIN_BITS,
    IntegerHyperSynthesis,
    integerize_hyper_synthesis,
    scale_thresholds,
)
from .models import ModelConfig, UGHyperprior, scale_table

__all__ = [
    "CodecModel",
    "DEFAULT_WEIGHTS",
    "load_model",
    "export_adapted_bundle",
    "export_bundle",
    "export_weights",
    "fingerprint_of",
    "read_bundle",
    "with_channel_context",
    "write_bundle",
    "HYPERPRIOR_MODEL_ID",
    "CHANNEL_SCALES_MODEL_ID",
    "CHANNEL_CONTEXT_MODEL_ID",
]

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "ugc-hyperprior-pcdm.pt")
WEIGHTS_FORMAT = "ugcodec-weights-1"
#: Container model ids (bitstream_spec.md §2): the plain hyperprior, the same with
#: channel-conditional scales, and with channel-conditional means and scales.
HYPERPRIOR_MODEL_ID = 1
CHANNEL_SCALES_MODEL_ID = 2
CHANNEL_CONTEXT_MODEL_ID = 3
#: The bundle entry that holds the channel context, by model id.
_CONTEXT_KEYS = {CHANNEL_SCALES_MODEL_ID: "scale_context", CHANNEL_CONTEXT_MODEL_ID: "channel_context"}
#: Parts of the float model that the coder does not use (h_s runs in integers; the
#: entropy models are replaced by frozen tables).
_NOT_SHIPPED = ("h_s.", "entropy_bottleneck.", "gaussian_conditional.", "log_gain", "log_inverse_gain")
#: Tail mass outside a y table, per side, in units of the table's scale.
_Y_TABLE_HALF_WIDTH = 6.0
_Z_TABLE_RADIUS = 128
_Z_TABLE_MIN_PROBABILITY = 1e-10


def _pack_tables(tables: Sequence[CodingTable]) -> Dict[str, Tensor]:
    return {
        "offsets": torch.tensor([t.offset for t in tables], dtype=torch.int64),
        "lengths": torch.tensor([t.frequencies.size for t in tables], dtype=torch.int64),
        "frequencies": torch.from_numpy(np.concatenate([t.frequencies for t in tables]).astype(np.int32)),
    }


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


@torch.no_grad()
def _y_tables() -> List[CodingTable]:
    tables = []
    for scale in scale_table().tolist():
        half = int(np.ceil(_Y_TABLE_HALF_WIDTH * scale)) + 1
        values = torch.arange(-half, half + 1, dtype=torch.float64)
        normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64))
        pmf = normal.cdf(values + 0.5) - normal.cdf(values - 0.5)
        tables.append(quantize_pmf(pmf.numpy(), -half))
    return tables


@torch.no_grad()
def _z_tables(model: UGHyperprior) -> List[CodingTable]:
    bottleneck = model.entropy_bottleneck
    channels = model.config.N
    values = torch.arange(-_Z_TABLE_RADIUS, _Z_TABLE_RADIUS + 1, dtype=torch.float32)
    likelihood, _, _ = bottleneck._likelihood(values.repeat(channels, 1, 1))
    tables = []
    for channel in range(channels):
        pmf = likelihood[channel, 0].double().numpy()
        kept = np.flatnonzero(pmf > _Z_TABLE_MIN_PROBABILITY)
        low, high = (int(kept[0]), int(kept[-1])) if kept.size else (_Z_TABLE_RADIUS, _Z_TABLE_RADIUS)
        tables.append(quantize_pmf(pmf[low : high + 1], low - _Z_TABLE_RADIUS))
    return tables


def _float_state(model: UGHyperprior) -> Dict[str, Tensor]:
    # Parameters go to fp16; buffers (e.g. GDN's 2**-36 pedestal, which fp16 would
    # flush to zero) keep their dtype.
    parameters = {name for name, _ in model.named_parameters()}
    return {
        name: value.detach().cpu().to(torch.float16) if name in parameters else value.detach().cpu()
        for name, value in model.state_dict().items()
        if not name.startswith(_NOT_SHIPPED)
    }


def export_adapted_bundle(model: UGHyperprior, base: dict) -> dict:
    """A weights bundle that is ``base`` (a loaded weights file) with the machine
    adapters of ``model`` added: same coding parts, same g_a, h_a and human decoding.

    Raises:
        ValueError: ``model`` has no adapters, or differs from ``base`` anywhere but in
            its adapters (it was not fine-tuned from it).
    """
    if not model.config.machine_adapter:
        raise ValueError("the model has no machine adapters to add")
    float_state = _float_state(model)
    base_float = base["float"]
    adapter_names = {name for name in float_state if name.startswith("g_s.adapters.")}
    if set(float_state) - adapter_names != set(base_float) - adapter_names or any(
        not torch.equal(float_state[name], base_float[name]) for name in set(float_state) - adapter_names
    ):
        raise ValueError("the model differs from the base weights outside its machine adapters")
    return {**base, "config": model.config.to_dict(), "float": float_state}


@torch.no_grad()
def export_bundle(model: UGHyperprior, model_id: int = 1) -> dict:
    """What a weights file holds for a trained model (fp16 parameters, integer
    hyper-synthesis, gains, coding tables); ``fingerprint_of`` of it is the file's
    fingerprint, so a model's fingerprint is known without writing the file."""
    float_state = _float_state(model)
    gains = torch.round(torch.exp(model.log_gain.detach().double()) * float(1 << GAIN_BITS)).to(torch.int64)
    bundle = {
        "format": WEIGHTS_FORMAT,
        "model_id": model_id,
        "config": model.config.to_dict(),
        "float": float_state,
        "integer_h_s": integerize_hyper_synthesis(model.h_s.cpu()).state_dict(),
        "gains": gains,
        "inverse_gains": torch.exp(model.log_inverse_gain.detach().float()).cpu(),
        "scale_thresholds": scale_thresholds(scale_table().tolist()),
        "y_tables": _pack_tables(_y_tables()),
        "z_tables": _pack_tables(_z_tables(model.cpu())),
    }
    return bundle


def export_weights(model: UGHyperprior, path: str, model_id: int = 1, base: Optional[str] = None) -> bytes:
    """Writes a trained model as a compact weights file; returns its fingerprint.

    Args:
        model: the trained model.
        path: file to write (atomically).
        model_id: container model id.
        base: for a model whose machine adapters were fine-tuned on a weights file
            (``TrainConfig.base_weights``): that file; the new file is it plus the
            adapters (:func:`export_adapted_bundle`).

    Raises:
        ValueError: the model holds a tensor whose dtype the fingerprint cannot spell
            (bitstream_spec.md §3.3), or does not match ``base``; nothing is written then.
        UgcError: ``base`` cannot be read.
    """
    bundle = export_bundle(model, model_id) if base is None else export_adapted_bundle(model, read_bundle(base))
    return write_bundle(bundle, path)


def with_channel_context(base: dict, context: IntegerChannelContext) -> dict:
    """``base`` (a weights bundle of the plain hyperprior) with a channel context added,
    the same transforms: model id 2 (other coding tables per symbol, the same symbols
    and pixels) or, for a context with means, model id 3.

    Raises:
        ValueError: ``base`` already has a context, or its M is not a multiple of the
            context's slices, or the context's largest index is not the last y table.
    """
    if any(key in base for key in _CONTEXT_KEYS.values()) or int(base["model_id"]) != HYPERPRIOR_MODEL_ID:
        raise ValueError("the base weights must be a plain hyperprior (model id 1)")
    context.check_channels(int(base["config"]["M"]))
    if context.largest_index != len(base["y_tables"]["offsets"]) - 1:
        raise ValueError("the context's largest index is not the base's last y table")
    model_id = CHANNEL_CONTEXT_MODEL_ID if context.means else CHANNEL_SCALES_MODEL_ID
    return {**base, "model_id": model_id, _CONTEXT_KEYS[model_id]: context.state_dict()}


def write_bundle(bundle: dict, path: str) -> bytes:
    """Writes a weights bundle atomically; returns its fingerprint.

    Raises:
        ValueError: the bundle holds a tensor whose dtype the fingerprint cannot spell
            (bitstream_spec.md §3.3); nothing is written then.
    """
    fingerprint = fingerprint_of(bundle)  # before writing: a bundle it refuses is never saved
    buffer = io.BytesIO()
    torch.save(bundle, buffer)
    temporary = path + ".tmp"
    with open(temporary, "wb") as handle:
        handle.write(buffer.getvalue())
    os.replace(temporary, path)
    return fingerprint


@dataclass
class CodecModel:
    """Everything the coder needs, loaded from a weights file.

    Attributes:
        network: the float model (only g_a, h_a, g_s and gains are used).
        hyper_synthesis: integer-exact h_s.
        gains: int64 ``(levels, M)``; inverse_gains: float32 ``(levels, M)``.
        thresholds: int64 scale thresholds; y_tables, z_tables: coding tables.
        fingerprint: 8 bytes; model_id: container model id; path: where it came from.
        channel_context: the channel context of model ids 2 and 3; None for model id 1.
    """

    network: UGHyperprior
    hyper_synthesis: IntegerHyperSynthesis
    gains: Tensor
    inverse_gains: Tensor
    thresholds: Tensor
    y_tables: List[CodingTable]
    z_tables: List[CodingTable]
    fingerprint: bytes
    model_id: int
    path: str
    channel_context: Optional[IntegerChannelContext] = None

    @property
    def config(self) -> ModelConfig:
        return self.network.config

    @property
    def num_qualities(self) -> int:
        return int(self.gains.shape[0])


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
        return _model_from_bundle(bundle, path)


def _model_from_bundle(bundle: dict, path: str) -> CodecModel:
    config = ModelConfig.from_dict(bundle["config"])
    network = UGHyperprior(config, coding_only=True)
    state = {name: value.float() if value.is_floating_point() else value for name, value in bundle["float"].items()}
    missing, unexpected = network.load_state_dict(state, strict=False)
    if unexpected or any(not name.startswith(_NOT_SHIPPED) for name in missing):
        raise UgcError(f"weights file {path} does not match its model configuration")
    network.eval().requires_grad_(False)
    gains = bundle["gains"].to(torch.int64)
    # mu = means * gain (+ a mean correction * 2**16, model id 3) must stay an exact
    # float64 (below 2**53): means < 2**25 and corrections < 2**25, so gains < 2**27.
    if gains.numel() == 0 or int(gains.min()) < 1 or int(gains.max()) >= 1 << 27:
        raise UgcError(f"weights file {path} has gains outside the exact range")
    model_id = int(bundle["model_id"])
    channel_context = None
    wanted_key = _CONTEXT_KEYS.get(model_id)
    if model_id not in (HYPERPRIOR_MODEL_ID, *_CONTEXT_KEYS) or any(
        key in bundle for key in _CONTEXT_KEYS.values() if key != wanted_key
    ):
        raise UgcError(f"weights file {path} has an unknown model id or stray parts")
    if wanted_key is not None:
        if wanted_key not in bundle:
            raise UgcError(f"weights file {path} is model {model_id} but has no channel context")
        try:
            channel_context = IntegerChannelContext.from_state_dict(
                bundle[wanted_key], means=model_id == CHANNEL_CONTEXT_MODEL_ID
            )
            channel_context.check_channels(config.M)
        except (KeyError, ValueError) as error:
            raise UgcError(f"weights file {path} has an invalid channel context ({error})") from None
    return CodecModel(
        network=network,
        hyper_synthesis=IntegerHyperSynthesis.from_state_dict(bundle["integer_h_s"]),
        gains=gains,
        inverse_gains=bundle["inverse_gains"].float(),
        thresholds=bundle["scale_thresholds"].to(torch.int64),
        y_tables=_unpack_tables(bundle["y_tables"]),
        z_tables=_unpack_tables(bundle["z_tables"]),
        fingerprint=fingerprint_of(bundle),
        model_id=model_id,
        path=path,
        channel_context=channel_context,
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
