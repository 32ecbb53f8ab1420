"""Shared fixtures: a tiny random model for unit tests, the shipped model for end-to-end ones."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess

import numpy as np
import pytest
import torch

from ugcodec.models import ModelConfig, UGHyperprior
from tools.export import export_weights
from ugcodec.weights import DEFAULT_WEIGHTS, load_model


@pytest.fixture(autouse=True)
def restore_sigterm_handler():
    """The CLI run in process installs its SIGTERM handler (files.exit_on_sigterm) for
    good; restore pytest's, so that a SIGTERM to the suite still stops it cleanly."""
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)

TINY_CONFIG = ModelConfig(N=8, M=16, lambdas=(0.005, 0.02, 0.05), embedding_dim=8)


def make_photo_like(height: int, width: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """A smooth gradient with edges and noise: compresses like a photo, made offline."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack(
        [
            128 + 100 * np.sin(xx / 9.0 + c) * np.cos(yy / 13.0 - c)
            + 40 * ((xx + 2 * yy + 10 * c) % 37 > 18)
            for c in range(channels)
        ],
        axis=2,
    )
    image = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    return image[:, :, 0] if channels == 1 else image


def write_photos(folder, count: int, height: int, width: int, stem: str = "photo") -> str:
    """Makes ``folder`` (a path) with ``count`` PNGs ``{stem}{index}.png`` of
    :func:`make_photo_like` (seed = index); returns the folder as a string."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for index in range(count):
        Image.fromarray(make_photo_like(height, width, seed=index)).save(os.path.join(folder, f"{stem}{index}.png"))
    return str(folder)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


#: For tests of the data-preparation scripts, which read Debian packages.
needs_dpkg_deb = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def build_deb(root, package: str, folder, version: str = "1.0") -> str:
    """Builds ``folder/<package>_<version>_all.deb`` from the file tree ``root`` (a stand-in
    for a real package, whose files tests cannot download) and returns its path."""
    os.makedirs(os.path.join(root, "DEBIAN"), exist_ok=True)
    with open(os.path.join(root, "DEBIAN", "control"), "w") as handle:
        handle.write(f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
                     "Maintainer: test <t@t>\nDescription: stand-in\n")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{package}_{version}_all.deb")
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(root), path], check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A small randomly initialised model, exported and loaded like shipped weights."""
    torch.manual_seed(1234)
    network = UGHyperprior(TINY_CONFIG).eval()
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    export_weights(network, str(path))
    return load_model(str(path))


@pytest.fixture(scope="session")
def shipped_model():
    return load_model(DEFAULT_WEIGHTS)


@pytest.fixture(scope="session")
def photo():
    return make_photo_like(80, 112, seed=7)


@pytest.fixture()
def base_weights(tmp_path):
    """A weights file of an untrained tiny model (seed 5), to train or distil from."""
    torch.manual_seed(5)
    path = str(tmp_path / "base.pt")
    export_weights(UGHyperprior(TINY_CONFIG).eval(), path)
    return path
