"""tools/prepare_corpus.py on a locally built .deb (the real packages need the archive)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import build_deb, make_photo_like, needs_dpkg_deb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@needs_dpkg_deb
def test_photos_are_extracted_and_downscaled(tmp_path):
    package = tmp_path / "pkg"
    nature = package / "usr/share/backgrounds/mate/nature"
    nature.mkdir(parents=True)
    Image.fromarray(make_photo_like(120, 160)).save(nature / "Meadow.jpg")
    Image.fromarray(make_photo_like(90, 90, seed=2)).save(package / "usr/share/backgrounds/top.jpg")
    debs = tmp_path / "debs"
    build_deb(package, "fake-backgrounds", debs)
    out = tmp_path / "corpus"
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "prepare_corpus.py"), "--debs", str(debs), "--out", str(out)],
        check=True, capture_output=True,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["photos"] == 2 and len(manifest["images"]) == 6
    half = Image.open(out / "Meadow_x2.png")
    assert half.size == (80, 60) and half.mode == "RGB"
    assert Image.open(out / "top_x3.png").size == (30, 30)
