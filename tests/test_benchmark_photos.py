"""The benchmarks' photo sets (benchmarks/photos.py): the debian set's fetch and loading,
on stand-in packages built here (the real ones are fetched outside CI)."""
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks import photos as photos_module
from conftest import build_deb, needs_dpkg_deb


@pytest.fixture(scope="module")
def photos():
    return photos_module


def _write(path, size, seed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _stand_in_debs(photos, folder):
    """One .deb per package of the debian set, holding every listed photo at a small size
    (wallpapers in two sizes, so the largest must be picked), built with dpkg-deb."""
    for seed, package in enumerate(sorted({package for _, package, _ in photos.DEBIAN_PHOTOS})):
        root = os.path.join(folder, "build", package)
        data = os.path.join(root, photos._DEBIAN_FOLDERS[package])
        for index, (_, owner, entry) in enumerate(photos.DEBIAN_PHOTOS):
            if owner != package:
                continue
            if "." in entry:
                _write(os.path.join(data, entry), (900, 600), seed * 100 + index)
            else:
                _write(os.path.join(data, entry, "contents", "images", "320x200.jpg"), (320, 200), index)
                _write(os.path.join(data, entry, "contents", "images", "1000x500.png"), (1000, 500), index)
        build_deb(root, package, folder)


@needs_dpkg_deb
def test_debian_set_is_fetched_from_the_packages_shrunk_and_loaded(photos, tmp_path):
    debs, cache = str(tmp_path / "debs"), str(tmp_path / "cache")
    os.makedirs(debs)
    _stand_in_debs(photos, debs)
    paths = photos.fetch_debian_photos(cache, debs, verbose=False)
    assert len(paths) == len(photos.DEBIAN_PHOTOS) == 29
    loaded = photos.load_photos(photo_set="debian", cache=cache)
    assert [name for name, _ in loaded] == [name for name, _, _ in photos.DEBIAN_PHOTOS]
    sizes = {name: image.shape[:2] for name, image in loaded}
    assert sizes["opencv-apple"] == (512, 768)  # 900x600 shrunk to a long side of 768
    assert sizes["plasma-Kite"] == (384, 768)  # the wallpaper's largest file (1000x500), shrunk
    every = photos.load_photos(photo_set="all", cache=cache)
    assert [name for name, _ in every][: len(photos.PHOTO_NAMES)] == list(photos.PHOTO_NAMES)
    assert len(every) == len(photos.PHOTO_NAMES) + 29
    # A second fetch keeps what the cache holds (no package needed).
    assert photos.fetch_debian_photos(cache, str(tmp_path / "nowhere"), verbose=False) == paths


def test_debian_set_that_was_not_fetched_says_how_to_fetch_it(photos, tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks.photos --fetch"):
        photos.load_photos(photo_set="debian", cache=str(tmp_path))
    with pytest.raises(ValueError, match="unknown photo set"):
        photos.load_photos(photo_set="imagenet")
    assert photos.main(["--set", "debian", "--cache", str(tmp_path)]) == 1


def test_a_missing_package_file_is_a_clear_error(photos, tmp_path):
    with pytest.raises(RuntimeError, match="no .deb file"):
        photos.fetch_debian_photos(str(tmp_path / "cache"), str(tmp_path), verbose=False)
