"""Evaluation photos for the benchmarks: colour photographs that ship with Python packages.

They load offline and none of them was used in training (training used Debian wallpaper
photos). Sources, in the order :func:`load_photos` returns them:

* scikit-image (``skimage.data``, files inside the package): astronaut, coffee, chelsea,
  rocket, motorcycle (left view of ``stereo_motorcycle``);
* scikit-learn (``sklearn.datasets.load_sample_images``, if scikit-learn is installed):
  china, flower.

``skimage.data`` also holds colour images that are not ordinary photographs (hubble deep
field, retina fundus, immunohistochemistry micrograph, colorwheel, logo) and duplicates
(``cat`` is ``chelsea``); they are left out on purpose.

Run ``python benchmarks/photos.py`` to list the photos and their sizes.
"""
from __future__ import annotations

import argparse
import warnings
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

__all__ = ["PHOTO_NAMES", "load_photos", "fit", "parse_size", "Photo"]

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
) -> List[Photo]:
    """Returns ``[(name, uint8 HxWx3 array), ...]``.

    Args:
        limit: at most this many photos (the first ones of :data:`PHOTO_NAMES`).
        max_size: ``(width, height)`` or ``"768x512"``; see :func:`fit`. None: full size.
        names: only these photos (by name), in this order.
        upscale: enlarge smaller photos to fill ``max_size`` (see :func:`fit`).
        verbose: print a line per photo skipped because its package is missing.
    """
    size = max_size if isinstance(max_size, tuple) or max_size is None else parse_size(max_size)
    sources = dict(_SOURCES)
    wanted = list(names) if names else list(PHOTO_NAMES)
    unknown = [name for name in wanted if name not in sources]
    if unknown:
        raise ValueError(f"unknown photos {unknown}; choose from {', '.join(PHOTO_NAMES)}")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=None, help="at most this many photos")
    parser.add_argument("--max-size", default=None, help="WxH box (or one number for a square), e.g. 768x512")
    args = parser.parse_args()
    photos = load_photos(args.photos, args.max_size, verbose=True)
    print("| photo | width | height | source |")
    print("| --- | ---: | ---: | --- |")
    for name, image in photos:
        source = "scikit-learn" if name in ("china", "flower") else "scikit-image"
        print(f"| {name} | {image.shape[1]} | {image.shape[0]} | {source} |")


if __name__ == "__main__":
    main()
