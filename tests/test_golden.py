"""Golden vectors: a committed .ugc made by the shipped model and what it must decode to."""
import hashlib
import json
import os

import numpy as np
from PIL import Image

import ugcodec

from pixels import assert_pixels_close

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


def digest(tensor, dtype: str = "<i8") -> str:
    return hashlib.sha256(np.ascontiguousarray(tensor.numpy().astype(dtype)).tobytes()).hexdigest()


def load():
    with open(os.path.join(GOLDEN, "golden.ugc"), "rb") as handle:
        data = handle.read()
    with open(os.path.join(GOLDEN, "golden.json")) as handle:
        return data, json.load(handle)


def test_golden_symbols_are_exact(shipped_model):
    data, expected = load()
    assert shipped_model.fingerprint.hex() == expected["fingerprint"], "weights changed: run tools/make_golden.py"
    latents = ugcodec.parse_latents(data, model=shipped_model)
    assert list(latents.y.shape) == expected["y_shape"]
    assert digest(latents.z) == expected["z_sha256"]
    assert digest(latents.scale_index) == expected["scale_index_sha256"]
    assert digest(latents.y) == expected["y_sha256"]
    assert digest(latents.mu, "<f8") == expected["mu_sha256"]


def test_golden_pixels_within_tolerance(shipped_model):
    data, expected = load()
    for preference in ("human", "machine"):
        decoded = np.asarray(ugcodec.decode(data, preference, model=shipped_model))
        reference = np.asarray(Image.open(os.path.join(GOLDEN, f"golden.{preference}.png")))
        assert_pixels_close(decoded, reference)
    human = np.asarray(Image.open(os.path.join(GOLDEN, "golden.human.png")), dtype=int)
    machine = np.asarray(Image.open(os.path.join(GOLDEN, "golden.machine.png")), dtype=int)
    assert (human != machine).any()
