"""Evaluation photos for the benchmarks, none of them used in training (training used the
Debian wallpaper photos of ``tools/prepare_corpus.py``: mate-backgrounds and
lomiri-wallpapers-16.04). Two sets:

``standard`` (the default): colour photographs that ship with Python packages, so they
load offline. In the order :func:`load_photos` returns them:

* scikit-image (``skimage.data``, files inside the package): astronaut, coffee, chelsea,
  rocket, motorcycle (left view of ``stereo_motorcycle``);
* scikit-learn (``sklearn.datasets.load_sample_images``, if scikit-learn is installed):
  china, flower.

``skimage.data`` also holds colour images that are not ordinary photographs (hubble deep
field, retina fundus, immunohistochemistry micrograph, colorwheel, logo) and duplicates
(``cat`` is ``chelsea``); they are left out on purpose.

``debian``: 29 more photographs from two Debian packages that training never saw, for
benchmarks whose statistics need more than the standard set's seven photos (the machine
analytics: 7 photos give 84 crops). ``python -m benchmarks.photos --fetch`` downloads
them once with ``apt-get download`` (a package registry, reachable where the project
builds) into ``benchmarks/photos_cache/``, shrunk to at most 768 px on the long side:

* ``opencv-doc`` (OpenCV's example data): the 17 ordinary photographs among its images
  (:data:`DEBIAN_PHOTOS` lists them; left out: renders, paintings, charts, text, the
  calibration and stereo series except one view of each, synthetic blur);
* ``plasma-workspace-wallpapers``: the 12 of its wallpapers that are photographs (the
  others are renders or illustrations), each from its largest file.

The photos were checked against the training corpus for near duplicates (grey 24x16
thumbnails, none closer than 0.44 mean absolute z-score difference; two such pairs
looked at: different scenes). ``all`` is both sets.

Run ``python -m benchmarks.photos [--set debian]`` to list the photos and their sizes.
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import warnings
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from .bench_common import markdown_table

__all__ = [
    "PHOTO_NAMES", "PHOTO_SETS", "DEBIAN_PHOTOS", "load_photos", "fetch_debian_photos", "source_of", "group_of",
    "fit", "parse_size", "Photo",
]

Photo = Tuple[str, np.ndarray]
Size = Tuple[int, int]  # (width, height)


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        image = getattr(data, name)()
        return image[0] if isinstance(image, tuple) else image

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        for path, image in zip(bunch.filenames, bunch.images):
            if path.endswith(filename):
                return image
        raise FileNotFoundError(filename)

    return load


_SOURCES: Sequence[Tuple[str, Callable[[], np.ndarray]]] = (
    ("astronaut", _skimage("astronaut")),
    ("coffee", _skimage("coffee")),
    ("chelsea", _skimage("chelsea")),
    ("rocket", _skimage("rocket")),
    ("motorcycle", _skimage("stereo_motorcycle")),
    ("china", _sklearn("china.jpg")),
    ("flower", _sklearn("flower.jpg")),
)
PHOTO_NAMES = tuple(name for name, _ in _SOURCES)

#: The ``debian`` set: (name, package, file or wallpaper folder inside the package's data
#: folder, :data:`_DEBIAN_FOLDERS`). A wallpaper folder's largest image is used.
DEBIAN_PHOTOS: Sequence[Tuple[str, str, str]] = tuple(
    [(f"opencv-{stem}", "opencv-doc", f"{stem}.{ext}") for stem, ext in (
        ("aloeL", "jpg"), ("apple", "jpg"), ("baboon", "jpg"), ("building", "jpg"), ("butterfly", "jpg"),
        ("ela_original", "jpg"), ("fruits", "jpg"), ("graf1", "png"), ("home", "jpg"), ("leuvenA", "jpg"),
        ("messi5", "jpg"), ("orange", "jpg"), ("pca_test1", "jpg"), ("rubberwhale1", "png"),
        ("smarties", "png"), ("squirrel_cls", "jpg"), ("stuff", "jpg"),
    )]
    + [(f"plasma-{folder}", "plasma-workspace-wallpapers", folder) for folder in (
        "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
        "Grey", "Kite", "OneStandsOut", "Path", "Volna", "summer_1am",
    )]
)
_DEBIAN_FOLDERS = {
    "opencv-doc": "usr/share/doc/opencv-doc/examples/data",
    "plasma-workspace-wallpapers": "usr/share/wallpapers",
}
#: Where ``--fetch`` stores the ``debian`` set (one PNG per photo).
DEBIAN_CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "photos_cache")
DEBIAN_LONG_SIDE = 768
PHOTO_SETS = ("standard", "debian", "all")


def _debian_source(name: str, package_root: str, entry: str) -> str:
    """The image file of a :data:`DEBIAN_PHOTOS` entry inside an extracted package."""
    path = os.path.join(package_root, entry)
    if os.path.isfile(path):
        return path
    candidates = glob.glob(os.path.join(path, "contents", "images", "*.jpg")) + glob.glob(
        os.path.join(path, "contents", "images", "*.png")
    )
    if not candidates:
        raise FileNotFoundError(f"no image for {name} under {path}")

    def pixels(candidate: str) -> int:
        with Image.open(candidate) as image:
            return image.size[0] * image.size[1]

    return max(sorted(candidates), key=pixels)


def fetch_debian_photos(cache: str = DEBIAN_CACHE, debs: Optional[str] = None, verbose: bool = True) -> List[str]:
    """Downloads the ``debian`` set's packages (or takes their .deb files from ``debs``),
    extracts them and writes each photo of :data:`DEBIAN_PHOTOS` as ``cache/NAME.png``,
    shrunk (Lanczos) to at most :data:`DEBIAN_LONG_SIDE` px on the long side. Photos
    already in ``cache`` are kept. Returns the PNG paths.

    Raises:
        RuntimeError: ``apt-get download`` or ``dpkg -x`` failed, or a package lacks a
            listed photo.
    """
    os.makedirs(cache, exist_ok=True)
    wanted = [entry for entry in DEBIAN_PHOTOS if not os.path.exists(os.path.join(cache, entry[0] + ".png"))]
    packages = sorted({package for _, package, _ in wanted})
    with tempfile.TemporaryDirectory() as workdir:
        for package in packages:
            if debs:
                found = sorted(glob.glob(os.path.join(debs, f"{package}_*.deb")))
            else:
                if verbose:
                    print(f"[photos] apt-get download {package}", flush=True)
                result = subprocess.run(["apt-get", "download", package], cwd=workdir, capture_output=True, text=True)
                if result.returncode != 0:
                    raise RuntimeError(f"apt-get download {package} failed: {result.stderr.strip()}")
                found = sorted(glob.glob(os.path.join(workdir, f"{package}_*.deb")))
            if not found:
                raise RuntimeError(f"no .deb file of {package}" + (f" in {debs}" if debs else ""))
            root = os.path.join(workdir, package)
            result = subprocess.run(["dpkg", "-x", found[-1], root], capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"dpkg -x {found[-1]} failed: {result.stderr.strip()}")
            for name, owner, entry in wanted:
                if owner != package:
                    continue
                source = _debian_source(name, os.path.join(root, _DEBIAN_FOLDERS[package]), entry)
                with Image.open(source) as image:
                    image = image.convert("RGB")
                    scale = DEBIAN_LONG_SIDE / max(image.size)
                    if scale < 1.0:
                        image = image.resize((round(image.size[0] * scale), round(image.size[1] * scale)), Image.LANCZOS)
                    temporary = os.path.join(cache, f".{name}.png")
                    image.save(temporary)
                    os.replace(temporary, os.path.join(cache, name + ".png"))
    return [os.path.join(cache, name + ".png") for name, _, _ in DEBIAN_PHOTOS]


def _debian(name: str, cache: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        path = os.path.join(cache, name + ".png")
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} is missing: fetch the debian photo set first with 'python -m benchmarks.photos --fetch'"
            )
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    return load


def parse_size(text: Union[str, int, None]) -> Optional[Size]:
    """``"768x512"`` -> (768, 512); ``"256"`` -> (256, 256); ``None``/``""``/``"0"`` -> None."""
    if text is None:
        return None
    if isinstance(text, int):
        return (text, text) if text > 0 else None
    text = text.strip().lower()
    if text in ("", "0", "none", "full"):
        return None
    if "x" in text:
        width, height = (int(part) for part in text.split("x", 1))
    else:
        width = height = int(text)
    if width <= 0 or height <= 0:
        raise ValueError(f"bad size {text!r}")
    return width, height


def fit(image: np.ndarray, size: Optional[Size], upscale: bool = False) -> np.ndarray:
    """Shrinks (Lanczos) then center-crops an image to at most ``size`` = (width, height).

    The box is turned to match the image's orientation (a portrait photo gets a portrait
    box). The image is scaled by the smallest factor that still covers the box, never up
    unless ``upscale``, then cropped to the box: a photo larger than the box comes out at
    exactly the box's size, a smaller one is only cropped where it exceeds the box (or,
    with ``upscale``, enlarged to fill it).
    """
    if size is None:
        return image
    height, width = image.shape[:2]
    box_w, box_h = size
    if (height > width) != (box_h > box_w):
        box_w, box_h = box_h, box_w
    scale = max(box_w / width, box_h / height)
    if scale < 1.0 or (upscale and scale > 1.0):
        new_w, new_h = max(box_w, round(width * scale)), max(box_h, round(height * scale))
        resample = Image.LANCZOS if scale < 1.0 else Image.BICUBIC
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), resample))
        height, width = new_h, new_w
    crop_w, crop_h = min(width, box_w), min(height, box_h)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return np.ascontiguousarray(image[top : top + crop_h, left : left + crop_w])


def load_photos(
    limit: Optional[int] = None,
    max_size: Union[Size, str, int, None] = None,
    names: Optional[Sequence[str]] = None,
    upscale: bool = False,
    verbose: bool = False,
    photo_set: str = "standard",
    cache: str = DEBIAN_CACHE,
) -> List[Photo]:
    """Returns ``[(name, uint8 HxWx3 array), ...]``.

    Args:
        limit: at most this many photos (the first ones of the set).
        max_size: ``(width, height)`` or ``"768x512"``; see :func:`fit`. None: full size.
        names: only these photos (by name, from any set), in this order.
        upscale: enlarge smaller photos to fill ``max_size`` (see :func:`fit`).
        verbose: print a line per photo skipped because its package is missing.
        photo_set: one of :data:`PHOTO_SETS` (ignored when ``names`` is given).
        cache: folder of the ``debian`` set (see :func:`fetch_debian_photos`).

    Raises:
        ValueError: an unknown photo or set.
        FileNotFoundError: a ``debian`` photo that was not fetched.
        RuntimeError: no photo could be loaded, or one is not a colour image.
    """
    size = max_size if isinstance(max_size, tuple) or max_size is None else parse_size(max_size)
    if photo_set not in PHOTO_SETS:
        raise ValueError(f"unknown photo set {photo_set!r}: use one of {', '.join(PHOTO_SETS)}")
    sources = dict(_SOURCES)
    sources.update({name: _debian(name, cache) for name, _, _ in DEBIAN_PHOTOS})
    debian_names = [name for name, _, _ in DEBIAN_PHOTOS]
    default = {"standard": list(PHOTO_NAMES), "debian": debian_names, "all": list(PHOTO_NAMES) + debian_names}
    wanted = list(names) if names else default[photo_set]
    unknown = [name for name in wanted if name not in sources]
    if unknown:
        raise ValueError(f"unknown photos {unknown}; choose from {', '.join(sources)}")
    photos: List[Photo] = []
    for name in wanted:
        if limit is not None and len(photos) >= limit:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image = sources[name]()
        except ImportError as error:
            if verbose:
                print(f"[photos] skipping {name}: {error}")
            continue
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise RuntimeError(f"photo {name} is not uint8 HxWx3 but {image.dtype} {image.shape}")
        photos.append((name, fit(image, size, upscale)))
    if not photos:
        raise RuntimeError("no evaluation photo could be loaded (is scikit-image installed?)")
    return photos


def describe(photos: Sequence[Photo]) -> str:
    """One line: ``astronaut 512x512, coffee 600x400, ...``."""
    return ", ".join(f"{name} {image.shape[1]}x{image.shape[0]}" for name, image in photos)


def entries(photos: Sequence[Photo]) -> List[dict]:
    """The photos as reports list them (``{"name", "width", "height"}`` each): what a later
    run compares to decide whether a report measured the same photos."""
    return [{"name": name, "width": image.shape[1], "height": image.shape[0]} for name, image in photos]


def source_of(name: str) -> str:
    """Where a photo comes from: ``scikit-image``, ``scikit-learn`` or its Debian package."""
    if name in ("china", "flower"):
        return "scikit-learn"
    debian = {photo: package for photo, package, _ in DEBIAN_PHOTOS}
    return debian.get(name, "scikit-image")


def group_of(name: str) -> str:
    """The group a photo's statistics are broken down by: ``standard`` or its Debian package."""
    source = source_of(name)
    return "standard" if source.startswith("scikit") else source


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="photo_set", default="standard", choices=PHOTO_SETS, help="photo set (default standard)")
    parser.add_argument("--fetch", action="store_true", help="download the debian set into --cache (apt-get download), then list it")
    parser.add_argument("--debs", default=None, help="with --fetch: folder of already downloaded .deb files")
    parser.add_argument("--cache", default=DEBIAN_CACHE, help=f"folder of the debian set (default {DEBIAN_CACHE})")
    parser.add_argument("--photos", type=int, default=None, help="at most this many photos")
    parser.add_argument("--max-size", default=None, help="WxH box (or one number for a square), e.g. 768x512")
    args = parser.parse_args(argv)
    try:
        if args.fetch:
            fetch_debian_photos(args.cache, args.debs)
            args.photo_set = "debian" if args.photo_set == "standard" else args.photo_set
        photos = load_photos(args.photos, args.max_size, verbose=True, photo_set=args.photo_set, cache=args.cache)
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        print(f"photos: {error}", file=sys.stderr)
        return 1
    rows = [[name, image.shape[1], image.shape[0], source if source.startswith("scikit") else "Debian " + source]
            for name, image in photos for source in [source_of(name)]]
    print(markdown_table(["photo", "width", "height", "source"], rows, align="lrrl"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
