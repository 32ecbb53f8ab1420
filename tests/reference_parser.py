"""Independent reference parser for ``.ugc`` format versions 1 and 2, written from bitstream_spec.md.

It shares no code with the package: no constriction, no ``ugcodec.entropy_coding`` /
``integer_net`` / ``codec`` / ``container``. Everything is plain Python integers and
numpy int64; torch is only used to ``torch.load`` the weights bundle (a dict of tensors),
whose tensors are turned into numpy arrays at once.

Entry points:

* :func:`parse` -> ``(z_symbols, y_symbols, scale_index)``, int64 arrays shaped
  ``(1, N, h, w)``, ``(1, M, 4h, 4w)``, ``(1, M, 4h, 4w)``.
* :func:`parse_full` -> :class:`Parsed` (also the header and the exact means).
* :func:`parse_metadata` -> the metadata entries of a version 2 file, by tag.
* :func:`parse_container`, :func:`decode_section`, :class:`AnsDecoder`,
  :func:`hyper_synthesis`, :func:`entropy_parameters`: the pieces, for unit tests.

Every malformed input raises :class:`ReferenceFormatError` (spec section 10).
"""
from __future__ import annotations

import bisect
import functools
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Sequence, Tuple

import numpy as np

__all__ = [
    "ReferenceFormatError",
    "Header",
    "Table",
    "Weights",
    "AnsDecoder",
    "Parsed",
    "parse_container",
    "parse_metadata",
    "load_weights",
    "fingerprint",
    "decode_section",
    "hyper_synthesis",
    "entropy_parameters",
    "parse",
    "parse_full",
]

# --- constants of format version 1 (spec sections 2, 5, 6, 7) -------------------------
MAGIC = b"\x89UGC"
VERSION = 1
METADATA_VERSION = 2  # version 1 plus a metadata block (spec section 2.2)
METADATA_LIMIT = (1 << 24) - 1
METADATA_TAGS = (b"ICCP", b"EXIF", b"XMP ")
HEADER_SIZE = 32
TRAILER_SIZE = 4
MODEL_IDS = (1, 2, 3)
COLOR_MODES = (0, 1)
STRIDE = 64

PRECISION = 24  # probability precision of the coder and its tables
TOTAL = 1 << PRECISION
WORD_BITS = 32
STATE_LOW = 1 << WORD_BITS  # refill threshold: state < 2**32 pulls one more word
PAYLOAD_BITS = 16

ACTIVATION_BITS = 10
ACTIVATION_LIMIT = (1 << 25) - 1
GAIN_BITS = 16
EXACT_LIMIT = 1 << 53

DEFAULT_WEIGHTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ugcodec", "weights", "ugc-hyperprior-pcdm.pt"
)


class ReferenceFormatError(ValueError):
    """The bytes (or the weights) are not what format version 1 allows."""


# --- container (spec section 2) --------------------------------------------------------
@dataclass(frozen=True)
class Header:
    version: int
    model_id: int
    color_mode: int
    quality: int
    width: int
    height: int
    fingerprint: bytes
    z_length: int
    y_length: int


def _metadata_block(data: bytes) -> Tuple[Dict[bytes, bytes], int]:
    """Spec 2.2: the entries of the metadata block at offset 32 and its size in bytes."""
    if len(data) < HEADER_SIZE + 4:
        raise ReferenceFormatError("truncated metadata")
    (length,) = struct.unpack(">I", data[HEADER_SIZE : HEADER_SIZE + 4])
    if length > METADATA_LIMIT:
        raise ReferenceFormatError("metadata block too large")
    end = HEADER_SIZE + 4 + length
    if len(data) < end + 4:
        raise ReferenceFormatError("truncated metadata")
    (crc,) = struct.unpack(">I", data[end : end + 4])
    if zlib.crc32(data[HEADER_SIZE:end]) != crc:
        raise ReferenceFormatError("metadata CRC mismatch")
    entries: Dict[bytes, bytes] = {}
    i = HEADER_SIZE + 4
    while i < end:
        if end - i < 8:
            raise ReferenceFormatError("metadata entry header cut short")
        tag = data[i : i + 4]
        (size,) = struct.unpack(">I", data[i + 4 : i + 8])
        i += 8
        if i + size > end:
            raise ReferenceFormatError("metadata entry past the block")
        if tag in METADATA_TAGS:
            if tag in entries:
                raise ReferenceFormatError("repeated metadata entry")
            entries[tag] = data[i : i + size]
        i += size
    return entries, 8 + length


def parse_metadata(data: bytes) -> Dict[bytes, bytes]:
    """The known metadata entries (tag -> bytes) of a whole, valid file; {} for version 1."""
    parse_container(data)
    return _metadata_block(bytes(data))[0] if data[4] == METADATA_VERSION else {}


def parse_container(data: bytes) -> Tuple[Header, bytes, bytes]:
    """Checks the whole file and splits it into (header, z section, y section)."""
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise ReferenceFormatError("wrong magic")
    if len(data) < HEADER_SIZE:
        raise ReferenceFormatError("truncated header")
    version, model_id, color_mode, quality = data[4], data[5], data[6], data[7]
    width, height = struct.unpack(">HH", data[8:12])
    fp = data[12:20]
    z_length, y_length = struct.unpack(">II", data[20:28])
    (header_crc,) = struct.unpack(">I", data[28:32])
    if version not in (VERSION, METADATA_VERSION):
        raise ReferenceFormatError(f"unknown version {version}")
    if zlib.crc32(data[0:28]) != header_crc:
        raise ReferenceFormatError("header CRC mismatch")
    if model_id not in MODEL_IDS:
        raise ReferenceFormatError(f"unknown model id {model_id}")
    if color_mode not in COLOR_MODES:
        raise ReferenceFormatError(f"unknown colour mode {color_mode}")
    if quality == 0:
        raise ReferenceFormatError("quality 0")
    if width == 0 or height == 0:
        raise ReferenceFormatError("zero image size")
    if z_length % 4 or y_length % 4:
        raise ReferenceFormatError("section length not a multiple of 4")
    metadata_size = _metadata_block(data)[1] if version == METADATA_VERSION else 0
    start = HEADER_SIZE + metadata_size
    total = start + z_length + y_length + TRAILER_SIZE
    if len(data) < total:
        raise ReferenceFormatError("truncated payload")
    if len(data) > total:
        raise ReferenceFormatError("trailing bytes")
    payload = data[start : total - TRAILER_SIZE]
    (payload_crc,) = struct.unpack(">I", data[total - TRAILER_SIZE : total])
    if zlib.crc32(payload) != payload_crc:
        raise ReferenceFormatError("payload CRC mismatch")
    header = Header(version, model_id, color_mode, quality, width, height, fp, z_length, y_length)
    return header, payload[:z_length], payload[z_length:]


# --- weights (spec section 3) ----------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """One coding table: value of entry 0 and the cumulative frequencies ``cdf``
    (``len = n + 2`` for ``n`` regular entries plus the escape; ``cdf[0] = 0``,
    ``cdf[-1] = 2**24``)."""

    offset: int
    cdf: Tuple[int, ...]

    @property
    def entries(self) -> int:
        return len(self.cdf) - 1

    @property
    def escape(self) -> int:
        return len(self.cdf) - 2


def _table_from_frequencies(offset: int, frequencies: Sequence[int]) -> Table:
    frequencies = [int(f) for f in frequencies]
    if len(frequencies) < 2 or min(frequencies) < 1 or sum(frequencies) != TOTAL:
        raise ReferenceFormatError("invalid coding table in the weights")
    # What constriction's fast quantisation of the weights (f - 1) yields (spec 5.2):
    # left[i] = floor(sum_{j<i}(f_j - 1) * (2**24 - n) / sum(f - 1)) + i = sum_{j<i} f_j.
    cdf = [0]
    for f in frequencies:
        cdf.append(cdf[-1] + f)
    return Table(int(offset), tuple(cdf))


def _unpack_tables(packed: Dict[str, np.ndarray]) -> List[Table]:
    offsets = packed["offsets"].astype(np.int64)
    lengths = packed["lengths"].astype(np.int64)
    frequencies = packed["frequencies"].astype(np.int64)
    if offsets.shape != lengths.shape or int(lengths.sum()) != frequencies.size:
        raise ReferenceFormatError("inconsistent table arrays in the weights")
    tables, start = [], 0
    for offset, length in zip(offsets.tolist(), lengths.tolist()):
        tables.append(_table_from_frequencies(offset, frequencies[start : start + length].tolist()))
        start += length
    return tables


@dataclass(frozen=True)
class Layer:
    weight: np.ndarray  # int64 (out, in * 9)
    bias: np.ndarray  # int64 (out,)
    shift: int
    relu: bool
    upscale: int


@dataclass(frozen=True)
class Weights:
    model_id: int
    N: int
    M: int
    levels: int
    layers: Tuple[Layer, ...]
    gains: np.ndarray  # int64 (levels, M)
    thresholds: np.ndarray  # int64 (K,)
    y_tables: Tuple[Table, ...]
    z_tables: Tuple[Table, ...]
    fingerprint: bytes
    also_decodes: FrozenSet[bytes]
    # model ids 2 and 3 (spec 3.4, 8.3): one integer network per channel slice, and K
    slice_networks: Tuple[Tuple[Layer, ...], ...] = ()
    largest_index: int = 0


def _is_tensor(value) -> bool:
    return hasattr(value, "numpy") and hasattr(value, "dtype") and hasattr(value, "shape")


def fingerprint(bundle: dict) -> bytes:
    """First 8 bytes of SHA-256 over the bundle's leaves in sorted-key order (spec 3.3)."""
    digest = hashlib.sha256()

    def visit(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                visit(f"{prefix}/{key}", value[key])
            return
        digest.update(prefix.encode("utf-8"))
        if _is_tensor(value):
            array = value.detach().cpu().contiguous()
            digest.update(f"{array.dtype}{tuple(int(s) for s in array.shape)}".encode("utf-8"))
            digest.update(np.ascontiguousarray(array.numpy()).tobytes())
        else:
            digest.update(repr(value).encode("utf-8"))

    visit("", bundle)
    return digest.digest()[:8]


def _np(value) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy())


def _load_layers(state: dict, prefix: str) -> Tuple[Layer, ...]:
    """Integer layers f"{prefix}{l}.weight|bias|meta", l = 0, 1, ... (spec 3.1)."""
    layers = []
    index = 0
    while f"{prefix}{index}.weight" in state:
        weight = _np(state[f"{prefix}{index}.weight"]).astype(np.int64)
        bias = _np(state[f"{prefix}{index}.bias"]).astype(np.int64)
        shift, relu, upscale = (int(v) for v in _np(state[f"{prefix}{index}.meta"]).tolist())
        if weight.ndim != 2 or weight.shape[1] % 9 or bias.shape != (weight.shape[0],):
            raise ReferenceFormatError("bad integer layer shapes")
        if weight.shape[0] % (upscale * upscale) or relu not in (0, 1) or not 0 <= shift < 63:
            raise ReferenceFormatError("bad integer layer meta")
        bound = ACTIVATION_LIMIT * np.abs(weight).sum(axis=1) + np.abs(bias)
        if int(bound.max()) >= EXACT_LIMIT:
            raise ReferenceFormatError("integer layer exceeds the exact range")
        layers.append(Layer(weight, bias, shift, bool(relu), upscale))
        index += 1
    return tuple(layers)


@functools.lru_cache(maxsize=4)
def load_weights(path: str = DEFAULT_WEIGHTS) -> Weights:
    import torch  # only to read the pickle-free tensor bundle

    bundle = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(bundle, dict) or bundle.get("format") != "ugcodec-weights-1":
        raise ReferenceFormatError("not a ugcodec weights bundle")
    layers = _load_layers(bundle["integer_h_s"], "")
    config = bundle["config"]
    gains = _np(bundle["gains"]).astype(np.int64)
    N, M = int(config["N"]), int(config["M"])
    if gains.ndim != 2 or gains.shape[1] != M:
        raise ReferenceFormatError("gains do not match M")
    y_tables = _unpack_tables({k: _np(v) for k, v in bundle["y_tables"].items()})
    z_tables = _unpack_tables({k: _np(v) for k, v in bundle["z_tables"].items()})
    thresholds = _np(bundle["scale_thresholds"]).astype(np.int64)
    if len(z_tables) != N or len(y_tables) != thresholds.size + 1:
        raise ReferenceFormatError("table counts do not match the model")
    model_id = int(bundle["model_id"])
    slice_networks: List[Tuple[Layer, ...]] = []
    largest_index = 0
    if model_id in (2, 3):
        context = bundle["scale_context" if model_id == 2 else "channel_context"]
        while f"{len(slice_networks)}.0.weight" in context:
            slice_networks.append(_load_layers(context, f"{len(slice_networks)}."))
        largest_index = int(_np(context["largest_index"]))
        if not slice_networks or M % len(slice_networks):
            raise ReferenceFormatError("the channel context's slices do not divide M")
    return Weights(
        model_id=model_id,
        N=N,
        M=M,
        levels=int(gains.shape[0]),
        layers=tuple(layers),
        gains=gains,
        thresholds=thresholds,
        y_tables=tuple(y_tables),
        z_tables=tuple(z_tables),
        fingerprint=fingerprint(bundle),
        also_decodes=frozenset(bytes.fromhex(value) for value in bundle.get("also_decodes", [])),
        slice_networks=tuple(slice_networks),
        largest_index=largest_index,
    )


# --- ANS decoder: constriction 0.5 DefaultAnsCoder (spec section 6) -----------------------
class AnsDecoder:
    """rANS with a 64-bit state, 32-bit words and 24-bit probabilities, stack order."""

    def __init__(self, section: bytes) -> None:
        if len(section) % 4:
            raise ReferenceFormatError("section is not a whole number of words")
        # Words in file order, little-endian; the decoder pops from the END.
        self.words = [int(w) for w in np.frombuffer(section, dtype="<u4")]
        if not self.words:
            self.state = 0
            return
        first = self.words.pop()
        if first == 0:
            raise ReferenceFormatError("ANS data ends in a zero word")
        state = first
        while self.words:
            state = (state << WORD_BITS) | self.words.pop()
            if state >= STATE_LOW:
                break
        self.state = state

    def decode(self, cdf: Sequence[int]) -> int:
        """One symbol with cumulative table ``cdf`` (``cdf[0] = 0``, ``cdf[-1] = 2**24``)."""
        quantile = self.state & (TOTAL - 1)
        symbol = bisect.bisect_right(cdf, quantile) - 1  # largest i with cdf[i] <= quantile
        left = cdf[symbol]
        probability = cdf[symbol + 1] - left
        self.state = (self.state >> PRECISION) * probability + (quantile - left)
        if self.state < STATE_LOW and self.words:
            self.state = (self.state << WORD_BITS) | self.words.pop()
        return symbol

    def is_empty(self) -> bool:
        return self.state == 0


def _payload_cdf() -> Tuple[int, ...]:
    count = 1 << PAYLOAD_BITS
    frequencies = [TOTAL // count] * (count + 1)
    frequencies[0] -= 1
    frequencies[-1] = 1
    return _table_from_frequencies(0, frequencies).cdf


PAYLOAD_CDF = _payload_cdf()


def decode_section(section: bytes, table_index: np.ndarray, tables: Sequence[Table]) -> np.ndarray:
    """Decodes one entropy-coded section (spec section 5); values shaped like table_index."""
    table_index = np.asarray(table_index, dtype=np.int64)
    flat = table_index.ravel()
    if flat.size and (flat.min() < 0 or flat.max() >= len(tables)):
        raise ReferenceFormatError("table index out of range")
    decoder = AnsDecoder(section)
    values = np.zeros(flat.size, dtype=np.int64)
    escaped: List[int] = []  # positions (in symbol order) that hold an escape
    for k in sorted(set(flat.tolist())):
        table = tables[k]
        cdf = table.cdf
        for position in np.flatnonzero(flat == k).tolist():  # raster order within the group
            entry = decoder.decode(cdf)
            if entry == table.escape:
                escaped.append(position)
            else:
                values[position] = table.offset + entry
    for position in escaped:
        word = decoder.decode(PAYLOAD_CDF)
        if word >= 1 << PAYLOAD_BITS:
            raise ReferenceFormatError("invalid escape payload")
        excess, below = word >> 1, word & 1
        table = tables[int(flat[position])]
        if below:
            values[position] = table.offset - 1 - excess
        else:
            values[position] = table.offset + table.escape + excess  # escape == n
    if not decoder.is_empty():
        raise ReferenceFormatError("data left over after the last symbol")
    return values.reshape(table_index.shape)


# --- integer hyper-synthesis (spec section 7) ---------------------------------------------
def _im2col(x: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (C * 9, H * W): row c * 9 + ky * 3 + kx holds x[c, h + ky - 1, w + kx - 1]
    (zero outside the image), column h * W + w."""
    channels, height, width = x.shape
    padded = np.zeros((channels, height + 2, width + 2), dtype=np.int64)
    padded[:, 1:-1, 1:-1] = x
    columns = np.empty((channels, 9, height * width), dtype=np.int64)
    for ky in range(3):
        for kx in range(3):
            columns[:, ky * 3 + kx] = padded[:, ky : ky + height, kx : kx + width].reshape(channels, -1)
    return columns.reshape(channels * 9, height * width)


def _pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    """(C * r * r, H, W) -> (C, H * r, W * r): out[c, h*r+i, w*r+j] = x[c*r*r + i*r + j, h, w]."""
    channels, height, width = x.shape
    c = channels // (r * r)
    return x.reshape(c, r, r, height, width).transpose(0, 3, 1, 4, 2).reshape(c, height * r, width * r)


def hyper_synthesis(z: np.ndarray, layers: Sequence[Layer]) -> Tuple[np.ndarray, np.ndarray]:
    """z (N, h, w) int64 -> (means, scales) int64 (M, 4h, 4w), ACTIVATION_BITS fraction bits."""
    x = integer_network(z, layers)
    half = x.shape[0] // 2
    return x[:half], x[half:]


def integer_network(inputs: np.ndarray, layers: Sequence[Layer]) -> np.ndarray:
    """Spec 7.1-7.3 on integer inputs (C, H, W): the last layer's int64 output."""
    x = np.clip(np.asarray(inputs, dtype=np.int64) << ACTIVATION_BITS, -ACTIVATION_LIMIT, ACTIVATION_LIMIT)
    for layer in layers:
        channels, height, width = x.shape
        if layer.weight.shape[1] != channels * 9:
            raise ReferenceFormatError("layer input width does not match")
        # int64 is exact: every partial sum is below 2**53 (checked when loading).
        accumulated = layer.weight @ _im2col(x) + layer.bias[:, None]
        out = np.floor_divide(accumulated, 1 << layer.shift)
        if layer.relu:
            out = np.maximum(out, 0)
        out = np.clip(out, -ACTIVATION_LIMIT, ACTIVATION_LIMIT).reshape(-1, height, width)
        if layer.upscale > 1:
            out = _pixel_shuffle(out, layer.upscale)
        x = out
    return x


def entropy_parameters(
    means: np.ndarray, scales: np.ndarray, gain: np.ndarray, thresholds: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """-> (mu float64 exact, scale index int64); index = #{k : scales * gain > thresholds[k]}."""
    gain = np.asarray(gain, dtype=np.int64)[:, None, None]
    numerator = means * gain
    if np.abs(numerator).max(initial=0) >= EXACT_LIMIT:
        raise ReferenceFormatError("mean exceeds the exact float64 range")
    mu = numerator.astype(np.float64) / float(1 << (ACTIVATION_BITS + GAIN_BITS))
    scaled = scales * gain
    thresholds = np.asarray(thresholds, dtype=np.int64)
    if np.all(np.diff(thresholds) >= 0):
        index = np.searchsorted(thresholds, scaled, side="left").astype(np.int64)
    else:
        index = (scaled[..., None] > thresholds).sum(axis=-1).astype(np.int64)
    return mu, index


# --- the whole parse (spec section 8) -----------------------------------------------------
@dataclass
class Parsed:
    header: Header
    z: np.ndarray
    y: np.ndarray
    scale_index: np.ndarray
    mu: np.ndarray


def parse_full(data: bytes, weights_path: str = DEFAULT_WEIGHTS) -> Parsed:
    header, z_section, y_section = parse_container(data)
    weights = load_weights(os.path.abspath(weights_path))
    plain_file = header.model_id == 1 and header.fingerprint in weights.also_decodes  # spec 2.1, check 8
    if header.model_id != weights.model_id and not plain_file:
        raise ReferenceFormatError("model id differs from the weights")
    if header.fingerprint != weights.fingerprint and header.fingerprint not in weights.also_decodes:
        raise ReferenceFormatError("weights fingerprint mismatch")
    if header.quality > weights.levels:
        raise ReferenceFormatError("quality above the model's levels")
    h = -(-header.height // STRIDE)
    w = -(-header.width // STRIDE)
    z_index = np.broadcast_to(np.arange(weights.N, dtype=np.int64)[:, None, None], (weights.N, h, w))
    z = decode_section(z_section, z_index, weights.z_tables)
    means, scales = hyper_synthesis(z, weights.layers)
    if means.shape != (weights.M, 4 * h, 4 * w) or scales.shape != means.shape:
        raise ReferenceFormatError("hyper-synthesis output has the wrong shape")
    mu, scale_index = entropy_parameters(means, scales, weights.gains[header.quality - 1], weights.thresholds)
    if header.model_id == 1:
        y = decode_section(y_section, scale_index, weights.y_tables)
    else:
        y, mean_delta, scale_index = parse_slices(y_section, scale_index, weights)
        if header.model_id == 3:
            # spec 8.3: the corrected mean, from its exact integer numerator
            gain = weights.gains[header.quality - 1].astype(np.int64)[:, None, None]
            numerator = means * gain + (mean_delta << GAIN_BITS)
            if np.abs(numerator).max(initial=0) >= EXACT_LIMIT:
                raise ReferenceFormatError("corrected mean exceeds the exact float64 range")
            mu = numerator.astype(np.float64) / float(1 << (ACTIVATION_BITS + GAIN_BITS))
    return Parsed(header=header, z=z[None], y=y[None], scale_index=scale_index[None], mu=mu[None])


SYMBOL_CLAMP = 15
DEVIATION_CLAMP = 60


def parse_slices(
    section: bytes, hyper_index: np.ndarray, weights: Weights
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spec 8.3: the y section of model id 2 or 3 -> (y, mean_delta, scale_index), int64 (M, 4h, 4w)."""
    slices = len(weights.slice_networks)
    per_slice = weights.M // slices
    if len(section) < 4 * (slices - 1):
        raise ReferenceFormatError("y section too short for its stream lengths")
    streams, position = [], 4 * (slices - 1)
    for k in range(slices - 1):
        length = int.from_bytes(section[4 * k : 4 * k + 4], "big")
        if length % 4 or position + length > len(section):
            raise ReferenceFormatError("invalid stream length")
        streams.append(section[position : position + length])
        position += length
    streams.append(section[position:])
    y = np.zeros(hyper_index.shape, dtype=np.int64)
    scale_index = np.zeros(hyper_index.shape, dtype=np.int64)
    mean_delta = np.zeros(hyper_index.shape, dtype=np.int64)
    e = np.zeros(hyper_index.shape, dtype=np.int64)
    with_means = weights.model_id == 3
    for k, (network, stream) in enumerate(zip(weights.slice_networks, streams)):
        earlier = e[: per_slice * k]
        out = integer_network(np.concatenate([hyper_index, earlier, np.abs(earlier)]), network)
        if out.shape[0] != per_slice * (2 if with_means else 1):
            raise ReferenceFormatError("the channel context's output does not fit its slice")
        md, delta = (out[:per_slice], out[per_slice:]) if with_means else (np.zeros_like(out), out)
        own = slice(per_slice * k, per_slice * (k + 1))
        index = np.clip(hyper_index[own] + ((delta + (1 << (ACTIVATION_BITS - 1))) >> ACTIVATION_BITS), 0, weights.largest_index)
        y[own] = decode_section(stream, index, weights.y_tables)
        scale_index[own] = index
        mean_delta[own] = md
        if with_means:
            e[own] = np.clip(4 * y[own] + ((md + (1 << (ACTIVATION_BITS - 3))) >> (ACTIVATION_BITS - 2)), -DEVIATION_CLAMP, DEVIATION_CLAMP)
        else:
            e[own] = np.clip(y[own], -SYMBOL_CLAMP, SYMBOL_CLAMP)
    return y, mean_delta, scale_index


def parse(data: bytes, weights_path: str = DEFAULT_WEIGHTS) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (z_symbols (1,N,h,w), y_symbols (1,M,4h,4w), scale_index (1,M,4h,4w)), int64."""
    parsed = parse_full(data, weights_path)
    return parsed.z, parsed.y, parsed.scale_index
