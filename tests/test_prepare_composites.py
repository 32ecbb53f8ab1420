"""tools/prepare_composites.py on a locally built stand-in of tuxpaint-stamps-default."""
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, build_deb, make_photo_like, needs_dpkg_deb
from tools import prepare_composites



@pytest.fixture(scope="module")
def composites():
    return prepare_composites


def _stamp(size, colours, opaque=1.0, seed=0):
    """An RGBA stamp whose opaque part has about ``colours`` distinct colours."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (colours, 3), dtype=np.uint8)
    pixels = palette[rng.integers(0, colours, (size[1], size[0]))]
    alpha = np.zeros((size[1], size[0]), np.uint8)
    alpha[:, : int(size[0] * opaque)] = 255
    return Image.fromarray(np.dstack([pixels, alpha]), "RGBA")


def test_only_photographic_stamps_are_kept(composites):
    assert composites.is_photographic(_stamp((200, 200), 20000))
    assert not composites.is_photographic(_stamp((200, 200), 500))  # a drawing: few colours
    assert not composites.is_photographic(_stamp((120, 200), 20000))  # too small
    assert not composites.is_photographic(_stamp((200, 200), 20000, opaque=0.1))  # mostly transparent
    assert not composites.is_photographic(_stamp((200, 200), 20000).convert("RGB"))  # no cut-out


def test_a_composite_pastes_stamps_on_a_window_of_the_background(composites):
    background = Image.fromarray(make_photo_like(500, 700))
    stamp = _stamp((300, 300), 20000)
    first = composites.composite(background, [stamp], random.Random(3))
    assert first.size == composites.CANVAS and first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(composites.composite(background, [stamp], random.Random(3))))
    # Some pixels come from the stamp, some from the background.
    pixels = np.asarray(first).reshape(-1, 3)
    from_background = np.isin(pixels.view([("", pixels.dtype)] * 3), np.asarray(background).reshape(-1, 3).view([("", pixels.dtype)] * 3))
    assert 0.05 < from_background.mean() < 0.95
    with pytest.raises(ValueError):
        composites.composite(Image.new("RGB", (300, 300)), [stamp], random.Random(0))
    with pytest.raises(ValueError):
        composites.composite(background, [], random.Random(0))


@needs_dpkg_deb
def test_the_corpus_is_written_from_the_package(composites, tmp_path):
    package = tmp_path / "pkg"
    stamps = package / composites.STAMP_FOLDER / "animals"
    stamps.mkdir(parents=True)
    _stamp((200, 180), 20000, seed=1).save(stamps / "photo.png")
    _stamp((200, 180), 300, seed=2).save(stamps / "drawing.png")
    debs = tmp_path / "debs"
    build_deb(package, composites.PACKAGE, debs)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    Image.fromarray(make_photo_like(400, 600)).save(corpus / "Meadow_x2.png")
    Image.fromarray(make_photo_like(200, 300)).save(corpus / "Meadow_x4.png")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tools.prepare_composites", "--corpus", str(corpus),
               "--out", str(out), "--count", "3", "--debs", str(debs)]
    result = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    assert "3 composites of 1 photographic stamps" in result.stdout
    assert sorted(os.listdir(out)) == ["Meadow_x2.png", "Meadow_x4.png"] + [f"composite_{i:03d}.png" for i in range(3)]
    assert Image.open(out / "composite_000.png").size == composites.CANVAS
    # No package: a clear error, not a traceback.
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = subprocess.run(command[:-1] + [str(empty)], capture_output=True, text=True)
    assert failed.returncode == 1 and "cannot get tuxpaint-stamps-default" in failed.stderr
