"""Mutations of .ugc files for fuzzing the parser and decoder (tests and tools/fuzz.py).

Mutations that only break the CRC test little beyond the checksum, so half of them
re-seal the file: the header CRC and payload CRC are recomputed after the change, and
the parser's deeper checks (fields, sections, entropy decoding) have to hold.
"""
from __future__ import annotations

import random
import struct
import zlib

from ugcodec.container import HEADER_SIZE, TRAILER_SIZE

__all__ = ["mutate", "reseal"]


def reseal(data: bytes) -> bytes:
    """Recomputes both CRCs of a (possibly damaged) file where its layout allows it."""
    data = bytearray(data)
    if len(data) >= HEADER_SIZE:
        struct.pack_into(">I", data, HEADER_SIZE - 4, zlib.crc32(bytes(data[: HEADER_SIZE - 4])))
    if len(data) >= HEADER_SIZE + TRAILER_SIZE:
        payload = bytes(data[HEADER_SIZE:-TRAILER_SIZE])
        struct.pack_into(">I", data, len(data) - TRAILER_SIZE, zlib.crc32(payload))
    return bytes(data)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random mutation: flips, overwrites, insertions, deletions, truncation,
    duplication or rewritten header fields; re-sealed half of the time."""
    data = bytearray(data)
    kind = rng.randrange(7)
    if kind == 0 and data:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1 and data:
        position = rng.randrange(len(data))
        data[position : position + 4] = bytes(rng.randrange(256) for _ in range(4))
    elif kind == 2:
        position = rng.randrange(len(data) + 1)
        data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 3 and data:
        start = rng.randrange(len(data))
        del data[start : start + rng.randint(1, 16)]
    elif kind == 4:
        data = data[: rng.randrange(len(data) + 1)]
    elif kind == 5 and len(data) > HEADER_SIZE + 8:
        start = rng.randrange(HEADER_SIZE, len(data) - 4)
        data[start:start] = data[start : start + rng.randint(4, 32)]
    elif len(data) >= HEADER_SIZE:
        offset, fmt = rng.choice([(4, "B"), (5, "B"), (6, "B"), (7, "B"), (8, ">H"), (10, ">H"), (20, ">I"), (24, ">I")])
        limit = {"B": 255, ">H": 65535, ">I": 2**32 - 1}[fmt]
        value = rng.choice([0, 1, 2, 3, 4, 7, 64, limit, rng.randint(0, limit)])
        struct.pack_into(fmt, data, offset, value)
    data = bytes(data)
    return reseal(data) if rng.random() < 0.5 else data
