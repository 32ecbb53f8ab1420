"""Entropy coding of integer symbols with frozen integer tables and constriction's ANS.

A :class:`CodingTable` describes one discrete distribution in fixed point: the value of
alphabet entry 0 (``offset``) and ``n + 1`` integer frequencies that sum to
``2**PRECISION``, each at least 1. Entries ``0..n-1`` stand for the values
``offset .. offset + n - 1``; entry ``n`` is the *escape*: a value outside that range is
coded as the escape followed, after all regular symbols of the stream, by a payload
``w = 2 * e + s`` in ``[0, 2**16)`` with a uniform table, where ``s`` = 1 below the range
(``e = offset - 1 - value``) and ``s`` = 0 above it (``e = value - (offset + n)``).
Values further out than ``2**15`` past the range cannot be coded (:class:`SymbolRangeError`).

Stream layout (what :func:`encode_symbols` writes and :func:`decode_symbols` reads):
symbols are grouped by table index, groups in ascending index, each group in the order
the symbols appear in the input; then the escape payloads in the same order as their
escapes. The bytes are constriction's ``AnsCoder`` compressed words, little-endian uint32.

The frequencies reach constriction exactly: ``Categorical(frequencies - 1, perfect=False)``
gives each entry ``1 + (frequency - 1)`` of ``2**24`` (constriction's fast quantisation is
exact when the weights are integers that sum to ``2**24 - n``). So the tables alone
define the code; no float maths happens at coding time.

    >>> table = quantize_pmf([0.25, 0.5, 0.25], offset=-1)      # values -1, 0, 1 (+ escape)
    >>> values = np.array([0, 1, -1, 0, 40])                   # 40 is coded by the escape
    >>> data = encode_symbols(values, np.zeros(5, np.int64), [table])
    >>> decode_symbols(data, np.zeros(5, np.int64), [table]).tolist()
    [0, 1, -1, 0, 40]
    >>> split_streams(join_streams([data, b"\\0" * 4]), 2)[0] == data
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import constriction
import numpy as np

from .errors import FormatError

__all__ = [
    "PRECISION",
    "ESCAPE_PAYLOAD_BITS",
    "CodingTable",
    "SymbolRangeError",
    "quantize_pmf",
    "encode_symbols",
    "decode_symbols",
    "join_streams",
    "split_streams",
]

#: Fixed-point precision of constriction's default ANS coder and its categorical models.
PRECISION = 24
#: Escape payloads are uniform over ``2**ESCAPE_PAYLOAD_BITS`` values.
ESCAPE_PAYLOAD_BITS = 16
_TOTAL = 1 << PRECISION


class SymbolRangeError(ValueError):
    """A value lies more than ``2**15`` past its table's range (the encoder refuses it)."""


@dataclass(frozen=True)
class CodingTable:
    """One fixed-point distribution with an escape entry.

    Attributes:
        offset: the value coded by alphabet entry 0.
        frequencies: int64 array of ``n + 1`` entries >= 1 summing to ``2**PRECISION``;
            the last is the escape.
    """

    offset: int
    frequencies: np.ndarray

    def __post_init__(self) -> None:
        frequencies = np.asarray(self.frequencies, dtype=np.int64)
        if frequencies.ndim != 1 or frequencies.size < 2:
            raise ValueError("a coding table needs at least one value and the escape")
        if frequencies.min() < 1 or int(frequencies.sum()) != _TOTAL:
            raise ValueError(f"frequencies must be >= 1 and sum to 2**{PRECISION}")
        object.__setattr__(self, "frequencies", frequencies)

    @property
    def size(self) -> int:
        """Number of regular values (the escape excluded)."""
        return self.frequencies.size - 1

    def model(self) -> "constriction.stream.model.Categorical":
        return constriction.stream.model.Categorical(
            (self.frequencies - 1).astype(np.float64), perfect=False
        )


def _uniform_payload_table() -> CodingTable:
    count = 1 << ESCAPE_PAYLOAD_BITS
    frequencies = np.full(count + 1, _TOTAL // count, dtype=np.int64)
    # The payload table has no escape of its own: its last entry gets the least weight.
    frequencies[-1] = 1
    frequencies[0] -= 1
    return CodingTable(0, frequencies)


_PAYLOAD_TABLE = _uniform_payload_table()
_PAYLOAD_MODEL = _PAYLOAD_TABLE.model()


def quantize_pmf(pmf: np.ndarray, offset: int) -> CodingTable:
    """Turns probabilities of the values ``offset .. offset + len(pmf) - 1`` into a table.

    The escape gets the probability mass the pmf misses (at least ``2**-PRECISION``).
    Deterministic, but computed with floats: call it when exporting weights, never when
    coding; coders use the stored integer tables.
    """
    pmf = np.clip(np.asarray(pmf, dtype=np.float64), 0.0, None)
    escape = max(0.0, 1.0 - float(pmf.sum()))
    probabilities = np.append(pmf, escape)
    probabilities /= probabilities.sum()
    frequencies = np.maximum(1, np.floor(probabilities * _TOTAL)).astype(np.int64)
    # Hand the rounding surplus or deficit to the most probable entry.
    frequencies[np.argmax(frequencies)] += _TOTAL - int(frequencies.sum())
    return CodingTable(int(offset), frequencies)


def encode_symbols(values: np.ndarray, table_index: np.ndarray, tables: Sequence[CodingTable]) -> bytes:
    """Codes integer values, each with the table its ``table_index`` names.

    Args:
        values: integer array, any shape.
        table_index: integer array of the same shape, entries in ``[0, len(tables))``.
        tables: the coding tables.

    Returns:
        the compressed bytes (a whole number of little-endian uint32 words).

    Raises:
        SymbolRangeError: a value lies more than ``2**15`` past its table's range.
    """
    values = np.asarray(values, dtype=np.int64).ravel()
    table_index = np.asarray(table_index, dtype=np.int64).ravel()
    order = _grouping_order(table_index, len(tables))
    groups = []  # (alphabet entries, model), in decoding order
    payloads: List[np.ndarray] = []
    sorted_index = table_index[order]
    sorted_values = values[order]
    boundaries = np.flatnonzero(np.diff(sorted_index)) + 1
    for chunk_values, chunk_index in zip(np.split(sorted_values, boundaries), np.split(sorted_index, boundaries)):
        if chunk_values.size == 0:
            continue
        table = tables[int(chunk_index[0])]
        entries = chunk_values - table.offset
        outside = (entries < 0) | (entries >= table.size)
        if outside.any():
            low = entries[outside] < 0
            excess = np.where(low, -1 - entries[outside], entries[outside] - table.size)
            if excess.max() >= 1 << (ESCAPE_PAYLOAD_BITS - 1):
                raise SymbolRangeError("a latent value is too far outside its coding table's range")
            payloads.append(2 * excess + low)
            entries = np.where(outside, table.size, entries)
        groups.append((entries.astype(np.int32), table.model()))
    coder = constriction.stream.stack.AnsCoder()
    if payloads:
        coder.encode_reverse(np.concatenate(payloads).astype(np.int32), _PAYLOAD_MODEL)
    for entries, model in reversed(groups):
        coder.encode_reverse(entries, model)
    return coder.get_compressed().astype("<u4").tobytes()


def decode_symbols(data: bytes, table_index: np.ndarray, tables: Sequence[CodingTable]) -> np.ndarray:
    """Inverse of :func:`encode_symbols`; returns int64 values shaped like ``table_index``.

    Raises:
        FormatError: the bytes are not a whole number of words, or do not decode to
            exactly the expected symbols with nothing left over.
    """
    if len(data) % 4:
        raise FormatError("entropy-coded section is not a whole number of 32-bit words")
    table_index = np.asarray(table_index, dtype=np.int64)
    flat_index = table_index.ravel()
    order = _grouping_order(flat_index, len(tables))
    sorted_index = flat_index[order]
    boundaries = np.flatnonzero(np.diff(sorted_index)) + 1
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        decoded = []
        for chunk_index in np.split(sorted_index, boundaries):
            if chunk_index.size == 0:
                continue
            table = tables[int(chunk_index[0])]
            entries = coder.decode(table.model(), chunk_index.size).astype(np.int64)
            decoded.append((entries, table))
        sorted_values = []
        escapes = []
        for entries, table in decoded:
            escaped = entries == table.size
            escapes.append((escaped, table))
            sorted_values.append(entries + table.offset)
        count = int(sum(int(mask.sum()) for mask, _ in escapes))
        payload = coder.decode(_PAYLOAD_MODEL, count).astype(np.int64) if count else np.zeros(0, np.int64)
        empty = coder.is_empty()
    except (ValueError, RuntimeError, OverflowError) as error:
        raise FormatError(f"entropy-coded section is corrupt ({error})") from None
    if not empty:
        raise FormatError("entropy-coded section has data left over after its last symbol")
    if count and payload.max() >= 1 << ESCAPE_PAYLOAD_BITS:
        raise FormatError("entropy-coded section holds an invalid escape")
    position = 0
    for values, (escaped, table) in zip(sorted_values, escapes):
        number = int(escaped.sum())
        if number:
            words_ = payload[position : position + number]
            position += number
            excess, low = words_ >> 1, words_ & 1
            values[escaped] = np.where(low == 1, table.offset - 1 - excess, table.offset + table.size + excess)
    result = np.empty(flat_index.size, dtype=np.int64)
    if sorted_values:
        result[order] = np.concatenate(sorted_values)
    return result.reshape(table_index.shape)


def _grouping_order(table_index: np.ndarray, tables: int) -> np.ndarray:
    """The stable order that groups symbols by table (the coding order, by table index).

    Indexes that all name one of at most 2**15 tables are sorted as int16, for which
    numpy's stable sort is a radix sort; the order is the same."""
    if table_index.size and tables <= 1 << 15 and 0 <= table_index.min() and table_index.max() < tables:
        table_index = table_index.astype(np.int16)
    return np.argsort(table_index, kind="stable")


def join_streams(streams: Sequence[bytes]) -> bytes:
    """One section from several coded streams, decodable one after the other: the
    byte lengths of all but the last (uint32 big-endian each), then the streams.

    Raises:
        ValueError: no stream, or one that is not a whole number of 32-bit words.
    """
    if not streams or any(len(stream) % 4 for stream in streams):
        raise ValueError("streams must be one or more whole numbers of 32-bit words")
    lengths = b"".join(len(stream).to_bytes(4, "big") for stream in streams[:-1])
    return lengths + b"".join(streams)


def split_streams(section: bytes, count: int) -> List[bytes]:
    """Inverse of :func:`join_streams` for a section of ``count`` streams.

    Raises:
        FormatError: the lengths do not fit the section or are not multiples of 4.
    """
    position = 4 * (count - 1)
    if len(section) < position:
        raise FormatError("entropy-coded section is too short for its stream lengths")
    lengths = [int.from_bytes(section[4 * k : 4 * k + 4], "big") for k in range(count - 1)]
    streams = []
    for length in lengths:
        if length % 4 or position + length > len(section):
            raise FormatError("entropy-coded section has an invalid stream length")
        streams.append(section[position : position + length])
        position += length
    streams.append(section[position:])
    return streams
