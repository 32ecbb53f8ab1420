"""Golden vectors: a committed .ugc made by the shipped model and what it must decode to."""
import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

import ugcodec
from ugcodec.container import read_shipped_summary
from ugcodec.errors import ModelMismatchError

from pixels import assert_pixels_close

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
EARLIER = os.path.join(GOLDEN, "earlier")
EARLIER_RELEASES = sorted(name[: -len(".ugc")] for name in os.listdir(EARLIER) if name.endswith(".ugc"))


def digest(tensor, dtype: str = "<i8") -> str:
    return hashlib.sha256(np.ascontiguousarray(tensor.numpy().astype(dtype)).tobytes()).hexdigest()


def load(folder: str = GOLDEN, name: str = "golden"):
    with open(os.path.join(folder, f"{name}.ugc"), "rb") as handle:
        data = handle.read()
    with open(os.path.join(folder, f"{name}.json")) as handle:
        return data, json.load(handle)


def assert_symbols(latents, expected):
    assert list(latents.y.shape) == expected["y_shape"]
    assert digest(latents.z) == expected["z_sha256"]
    assert digest(latents.scale_index) == expected["scale_index_sha256"]
    assert digest(latents.y) == expected["y_sha256"]
    assert digest(latents.mu, "<f8") == expected["mu_sha256"]


def test_golden_symbols_are_exact(shipped_model):
    data, expected = load()
    assert shipped_model.fingerprint.hex() == expected["fingerprint"], "weights changed: run tools/make_golden.py"
    assert_symbols(ugcodec.parse_latents(data, model=shipped_model), expected)


def test_every_earlier_release_has_its_vectors():
    assert EARLIER_RELEASES == sorted(set(read_shipped_summary()["earlier_releases"].values()))


@pytest.mark.parametrize("release", EARLIER_RELEASES)
def test_files_of_earlier_releases_decode_to_their_symbols_or_name_the_release(shipped_model, release):
    data, expected = load(EARLIER, release)
    assert read_shipped_summary()["earlier_releases"][expected["fingerprint"]] == release
    if bytes.fromhex(expected["fingerprint"]) in shipped_model.also_decodes:
        assert_symbols(ugcodec.parse_latents(data, model=shipped_model), expected)
    else:
        with pytest.raises(ModelMismatchError, match=f"ugcodec {release}"):
            ugcodec.parse_latents(data, model=shipped_model)


def test_golden_pixels_within_tolerance(shipped_model):
    data, expected = load()
    for preference in ("human", "machine"):
        decoded = np.asarray(ugcodec.decode(data, preference, model=shipped_model))
        reference = np.asarray(Image.open(os.path.join(GOLDEN, f"golden.{preference}.png")))
        assert_pixels_close(decoded, reference)
    human = np.asarray(Image.open(os.path.join(GOLDEN, "golden.human.png")), dtype=int)
    machine = np.asarray(Image.open(os.path.join(GOLDEN, "golden.machine.png")), dtype=int)
    assert (human != machine).any()


def test_make_golden_keeps_the_vectors_of_a_release_it_replaces(tmp_path, monkeypatch):
    from tools import make_golden

    monkeypatch.setattr(make_golden, "GOLDEN", str(tmp_path))
    shipped = read_shipped_summary()
    (tmp_path / "golden.ugc").write_bytes(b"old file")
    (tmp_path / "golden.json").write_text(json.dumps({"fingerprint": shipped["fingerprint"]}))
    make_golden.keep_earlier_release()
    assert not (tmp_path / "earlier").exists(), "the shipped weights' own vectors are not an earlier release's"
    fingerprint, release = next(iter(shipped["earlier_releases"].items()))
    (tmp_path / "golden.json").write_text(json.dumps({"fingerprint": fingerprint}))
    make_golden.keep_earlier_release()
    assert (tmp_path / "earlier" / f"{release}.ugc").read_bytes() == b"old file"
    assert json.loads((tmp_path / "earlier" / f"{release}.json").read_text()) == {"fingerprint": fingerprint}
