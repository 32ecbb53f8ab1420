#!/usr/bin/env python3
"""Regenerate the golden test vectors in tests/golden/ from the shipped weights.

    python -m tools.make_golden

Writes golden.ugc (a 96x80 crop of examples/astronaut.png, quality 3), golden.json
(SHA-256 of its z and y symbols, table indexes and exact means, the fingerprint) and the
reference human and machine decodings as PNG. Run it after every change of the shipped
weights, and only then. Vectors of weights that an earlier release shipped (the shipped
summary's ``earlier_releases``) are kept as ``earlier/<release>.ugc`` and ``.json``: the
tests check that the shipped weights decode them to the same symbols or refuse them
naming that release.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys

import numpy as np
from PIL import Image

import ugcodec
from ugcodec.codec import encode_latents
from ugcodec.container import shipping_release

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GOLDEN = os.path.join(ROOT, "tests", "golden")
CROP = (200, 40, 296, 120)  # left, top, right, bottom: the astronaut's face
QUALITY = 3


def symbol_digest(tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(tensor.numpy().astype("<i8")).tobytes()).hexdigest()


def mean_digest(tensor) -> str:
    """The exact float64 means (bitstream_spec.md §8) as little-endian IEEE doubles."""
    return hashlib.sha256(np.ascontiguousarray(tensor.numpy().astype("<f8")).tobytes()).hexdigest()


def keep_earlier_release() -> None:
    """Copies the current golden file and record to ``earlier/<release>.*`` if an earlier
    release shipped the weights that made them."""
    try:
        with open(os.path.join(GOLDEN, "golden.json")) as handle:
            fingerprint = json.load(handle)["fingerprint"]
    except FileNotFoundError:
        return
    release = shipping_release(bytes.fromhex(fingerprint))
    if release is None:
        return
    earlier = os.path.join(GOLDEN, "earlier")
    os.makedirs(earlier, exist_ok=True)
    for suffix in ("ugc", "json"):
        shutil.copyfile(os.path.join(GOLDEN, f"golden.{suffix}"), os.path.join(earlier, f"{release}.{suffix}"))


def main(argv=None) -> int:
    # No options: the parser is there so that --help explains instead of overwriting the vectors.
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    os.makedirs(GOLDEN, exist_ok=True)
    keep_earlier_release()
    source = Image.open(os.path.join(ROOT, "examples", "astronaut.png")).convert("RGB").crop(CROP)
    source.save(os.path.join(GOLDEN, "source.png"))
    data, latents = encode_latents(source, QUALITY, precision="float32")  # the same file on any CPU
    with open(os.path.join(GOLDEN, "golden.ugc"), "wb") as handle:
        handle.write(data)
    parsed = ugcodec.parse_latents(data)
    assert symbol_digest(parsed.y) == symbol_digest(latents.y)
    for preference in ("human", "machine"):
        # The reference decoder of bitstream_spec.md §11: g_s entirely in float32.
        ugcodec.decode(data, preference, precision="float32").save(os.path.join(GOLDEN, f"golden.{preference}.png"))
    record = {
        "quality": QUALITY,
        "size": list(source.size),
        "fingerprint": ugcodec.load_model().fingerprint.hex(),
        "z_shape": list(parsed.z.shape),
        "y_shape": list(parsed.y.shape),
        "z_sha256": symbol_digest(parsed.z),
        "y_sha256": symbol_digest(parsed.y),
        "scale_index_sha256": symbol_digest(parsed.scale_index),
        "mu_sha256": mean_digest(parsed.mu),
        "note": "symbols as little-endian int64, means as little-endian float64, C order; "
        "regenerate with tools/make_golden.py",
    }
    with open(os.path.join(GOLDEN, "golden.json"), "w") as handle:
        json.dump(record, handle, indent=1)
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
