"""Export a trained model to a shipped weights file (the layout :mod:`ugcodec.weights` reads).

The float parameters go to fp16, h_s is integerised, and the coding tables are computed
once here, so that coding never runs float maths on the parsing path.
"""
from __future__ import annotations

import io
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

import ugcodec

from ugcodec.container import SHIPPED_SUMMARY, read_shipped_summary
from ugcodec.files import write_file
from ugcodec.channel_context import IntegerChannelContext
from ugcodec.entropy_coding import CodingTable, quantize_pmf
from ugcodec.integer_net import GAIN_BITS, integerize_hyper_synthesis, scale_thresholds
from ugcodec.models import ModelConfig, UGHyperprior
from ugcodec.scales import scale_table
from ugcodec.latent_coders import ChannelMeansScalesCoder, ChannelScalesCoder, HyperpriorCoder, coder_entries
from ugcodec.weights import DEFAULT_WEIGHTS, NOT_SHIPPED, WEIGHTS_FORMAT, fingerprint_of, read_bundle

__all__ = [
    "export_adapted_bundle",
    "export_analysis_bundle",
    "export_bundle",
    "export_synthesis_bundle",
    "export_weights",
    "save_atomically",
    "with_channel_context",
    "write_bundle",
]

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
        if not name.startswith(NOT_SHIPPED)
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
    return _with_part_of(model, base, "g_s.adapters.", "its machine adapters")


def export_synthesis_bundle(model: UGHyperprior, base: dict) -> dict:
    """A weights bundle that is ``base`` (a loaded weights file) with the synthesis g_s
    of ``model`` (e.g. one with other residual blocks, distilled from the base's by
    :mod:`tools.distill_synthesis`): the same coding parts, g_a and h_a, so the same
    bitstreams, decoded by another g_s.

    Raises:
        ValueError: ``model`` differs from ``base`` outside g_s, or in its sizes.
    """
    base_config = ModelConfig.from_dict(base["config"])
    sizes = ("N", "M", "lambdas", "embedding_dim")
    if any(getattr(model.config, name) != getattr(base_config, name) for name in sizes):
        raise ValueError("the model's sizes differ from the base weights'")
    return _with_part_of(model, base, "g_s.", "g_s")


def export_analysis_bundle(model: UGHyperprior, base: dict) -> dict:
    """A weights bundle that is ``base`` (a loaded weights file) with the analysis g_a of
    ``model`` (e.g. trained on by :mod:`tools.tune_analysis`): the same h_a, coding parts
    and g_s, so it decodes the base's files as the base does.

    Raises:
        ValueError: ``model`` differs from ``base`` outside g_a, or in its sizes.
    """
    return _with_part_of(model, base, "g_a.", "g_a")


def _with_part_of(model: UGHyperprior, base: dict, prefix: str, part: str) -> dict:
    """``base`` with its config and float parameters taken from ``model``, which must
    equal ``base`` in every parameter whose name does not start with ``prefix``
    (``part`` names them in the error). The coding parts stay the base's, so the new
    weights parse the base's files to the same symbols: its ``also_decodes`` lists the
    base's fingerprint (and those the base lists)."""
    float_state = _float_state(model)
    base_float = base["float"]

    def kept(state: Dict[str, Tensor]) -> set:
        return {name for name in state if not name.startswith(prefix)}

    if kept(float_state) != kept(base_float) or any(
        not torch.equal(float_state[name], base_float[name]) for name in kept(float_state)
    ):
        raise ValueError(f"the model differs from the base weights outside {part}")
    also_decodes = sorted({*base.get("also_decodes", []), fingerprint_of(base).hex()})
    return {**base, "config": model.config.to_dict(), "float": float_state, "also_decodes": also_decodes}


def strip_machine_adapters(bundle: dict) -> dict:
    """``bundle`` without its machine adapters: neither their config entries nor their
    parameters; every other entry (``also_decodes`` too) as it is."""
    config = {key: value for key, value in bundle["config"].items() if key not in ("machine_adapter", "adapter_width")}
    return {**bundle, "config": config,
            "float": {name: value for name, value in bundle["float"].items() if not name.startswith("g_s.adapters.")}}


def without_machine_adapters(bundle: dict) -> Optional[dict]:
    """The weights bundle that ``bundle`` added machine adapters to
    (:func:`export_adapted_bundle`), which encodes the same files and decodes them for
    humans to the same pixels; None if ``bundle`` has no adapters or is not such a bundle
    (its base's fingerprint must be one of its ``also_decodes``)."""
    if not bundle["config"].get("machine_adapter", False):
        return None
    return _listed_base(strip_machine_adapters(bundle), list(bundle.get("also_decodes", [])))


def _listed_base(stripped: dict, listed: Sequence[str]) -> Optional[dict]:
    """The bundle that a derived bundle (``stripped``: it without what was added) was made
    from, if it is among ``listed`` (the derived bundle's ``also_decodes``): the base
    listed the others (it decoded older files itself), or none."""
    for candidate in listed:
        for others in (sorted(set(listed) - {candidate}), []):
            base = {**stripped, "also_decodes": others} if others else {
                key: value for key, value in stripped.items() if key != "also_decodes"}
            if fingerprint_of(base).hex() == candidate:
                return base
    return None


@torch.no_grad()
def export_bundle(model: UGHyperprior, model_id: int = HyperpriorCoder.model_id) -> dict:
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


def export_weights(
    model: UGHyperprior, path: str, model_id: int = HyperpriorCoder.model_id, base: Optional[str] = None
) -> bytes:
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
    and pixels) or, for a context with means, model id 3. Its ``also_decodes`` lists
    ``base`` (and those ``base`` lists): the new weights still parse their plain files
    with the hyperprior's tables (bitstream_spec.md §2.1, check 8).

    Raises:
        ValueError: ``base`` already has a context, or its M is not a multiple of the
            context's slices, or the context's largest index is not the last y table.
    """
    if any(key in base for key in coder_entries()) or int(base["model_id"]) != HyperpriorCoder.model_id:
        raise ValueError("the base weights must be a plain hyperprior (model id 1)")
    context.check_channels(int(base["config"]["M"]))
    if context.largest_index != len(base["y_tables"]["offsets"]) - 1:
        raise ValueError("the context's largest index is not the base's last y table")
    coder = ChannelMeansScalesCoder if context.means else ChannelScalesCoder
    also_decodes = sorted({*base.get("also_decodes", []), fingerprint_of(base).hex()})
    return {**base, "model_id": coder.model_id, coder.bundle_key: context.state_dict(), "also_decodes": also_decodes}


def without_channel_context(bundle: dict) -> dict:
    """The plain-hyperprior bundle (model id 1) that :func:`with_channel_context` added
    ``bundle``'s context to; ``bundle`` itself if it has none. (For a context added
    before the exporter listed its base in ``also_decodes``, the bundle without the
    context, ``also_decodes`` as it is.)"""
    if not any(key in bundle for key in coder_entries()):
        return bundle
    plain = {key: value for key, value in bundle.items() if key not in coder_entries()}
    plain["model_id"] = HyperpriorCoder.model_id
    return _listed_base(plain, list(bundle.get("also_decodes", []))) or plain


def write_bundle(bundle: dict, path: str) -> bytes:
    """Writes a weights bundle atomically; returns its fingerprint.

    Raises:
        ValueError: the bundle holds a tensor whose dtype the fingerprint cannot spell
            (bitstream_spec.md §3.3); nothing is written then.
    """
    fingerprint = fingerprint_of(bundle)  # before writing: a bundle it refuses is never saved
    save_atomically(bundle, path)
    if os.path.abspath(path) == os.path.abspath(DEFAULT_WEIGHTS):
        write_shipped_summary(bundle, fingerprint)
    return fingerprint


def write_shipped_summary(bundle: dict, fingerprint: bytes) -> None:
    """Writes the shipped weights' summary (``ugcodec.container.SHIPPED_SUMMARY``), with
    which ``ugc info`` checks files without loading torch."""
    summary = {"model_id": int(bundle["model_id"]), "fingerprint": fingerprint.hex(),
               "num_qualities": len(bundle["config"]["lambdas"])}
    # Files name their weights by fingerprint: keep which release shipped each earlier set,
    # so that decoding an old file tells the user which release decodes it.
    try:
        previous = read_shipped_summary()
    except FileNotFoundError:
        previous = {}
    earlier = dict(previous.get("earlier_releases", {}))
    if previous.get("fingerprint") not in (None, summary["fingerprint"]):
        earlier[previous["fingerprint"]] = ugcodec.__version__
    if earlier:
        summary["earlier_releases"] = earlier
    if bundle.get("also_decodes"):
        summary["also_decodes"] = list(bundle["also_decodes"])
    base = without_machine_adapters(bundle)
    if base is not None:
        summary["same_human_decoding_as"] = fingerprint_of(base).hex()
    write_file(SHIPPED_SUMMARY, (json.dumps(summary, indent=2) + "\n").encode(), overwrite=True)


def save_atomically(state: dict, path: str) -> None:
    """``torch.save`` of ``state`` to ``path`` through :func:`ugcodec.files.write_file`
    (a synced temporary file renamed over it), so that an interrupted save never leaves a
    partial weights file or checkpoint."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_file(path, buffer.getbuffer(), overwrite=True)


