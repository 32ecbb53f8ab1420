#!/usr/bin/env python3
"""An experimental training corpus with photographs of objects, animals and buildings:
a corpus plus the photographs of Debian's ``gcompris-qt-data``.

    python -m tools.prepare_objects --corpus data/corpus --out data/corpus_gc

Why: the standard corpus (``tools/prepare_corpus.py``) is 27 nature wallpapers, and the
machine decoding trained on it helps unseen classifiers on landscapes but not on photos
of objects (tools/EXPERIMENTS.md, "What limits the machine decoding"). The educational suite
GCompris ships, inside Qt resource files (``usr/share/gcompris-qt/rcc/*.rcc``), a few
hundred ordinary photographs for its activities: tools, fish, fruit and household things
(``categorization``), wild and farm animals, musical instruments, monuments, and the
animal photos of ``erase``. This script downloads the package with ``apt-get download``
(``--debs DIR`` takes an already downloaded .deb), reads the resource files
(:func:`read_qt_resources`), keeps the opaque images of :data:`ACTIVITIES` (the suite's
drawings are cut-outs with an alpha channel, and the other activities hold drawings,
paintings and maps), and writes each photograph downscaled as the corpus is
(:func:`downscale_factors`). The ``--corpus`` images are copied alongside, so ``--out``
is a complete corpus for ``tools/train.py``; ``--corpus data/corpus_obj`` adds the
composites of ``tools/prepare_composites.py`` as well.

Like ``prepare_composites.py`` this grows the corpus beyond the two packages of the
shipped corpus (tools/README.md, "Corpus"): it is for experiments, not for shipped
weights. None of the evaluation photos' packages (``benchmarks/photos.py``) is used.
"""
from __future__ import annotations

import argparse
import glob
import io
import json
import os
import shutil
import sys
from typing import Dict, List, Optional, Tuple

from PIL import Image

from tools.debian_packages import read_package_for_command, read_qt_resources  # noqa: F401 (re-exported)
from tools.prepare_corpus import save_downscales

PACKAGE = "gcompris-qt-data"
RESOURCE_FOLDER = "usr/share/gcompris-qt/rcc"
#: The activities whose opaque images are photographs (checked by eye, 2026-11-26, version 3.1).
ACTIVITIES = (
    "categorization",
    "erase",
    "explore_farm_animals",
    "explore_monuments",
    "explore_world_animals",
    "explore_world_music",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
#: Downscales tried, as in the standard corpus; a photo keeps those that leave its short
#: side at least :data:`MIN_SIDE`, or is kept at full size when none does.
FACTORS = (2, 3, 4)
MIN_SIDE = 160
#: Training crops are 128 px: smaller photos are left out.
MIN_CROP = 128


def is_opaque_photo(image: Image.Image) -> bool:
    """True for an image without transparency whose short side is at least :data:`MIN_CROP`."""
    return image.mode in ("RGB", "L", "CMYK", "YCbCr") and min(image.size) >= MIN_CROP


def downscale_factors(size: Tuple[int, int]) -> Tuple[int, ...]:
    """The :data:`FACTORS` that leave the short side of ``size`` at least
    :data:`MIN_SIDE`; ``(1,)`` when none does (small photos are kept as they are)."""
    kept = tuple(factor for factor in FACTORS if min(size) // factor >= MIN_SIDE)
    return kept or (1,)


def load_photos(package_root: str) -> Dict[str, Image.Image]:
    """The photographs of :data:`ACTIVITIES` in an extracted package, by a file-name stem
    (``"<activity>-<image name>"``).

    Raises:
        FileNotFoundError: the package has none of the activities' resource files.
    """
    photos: Dict[str, Image.Image] = {}
    found = 0
    for activity in ACTIVITIES:
        path = os.path.join(package_root, RESOURCE_FOLDER, f"{activity}.rcc")
        if not os.path.exists(path):
            continue
        found += 1
        with open(path, "rb") as handle:
            resources = read_qt_resources(handle.read())
        for resource, blob in sorted(resources.items()):
            if not resource.lower().endswith(IMAGE_SUFFIXES):
                continue
            with Image.open(io.BytesIO(blob)) as image:
                if is_opaque_photo(image):
                    stem = os.path.splitext(os.path.basename(resource))[0]
                    photos[f"{activity}-{stem}"] = image.convert("RGB")
    if not found:
        raise FileNotFoundError(f"none of the {len(ACTIVITIES)} activities' .rcc files in {package_root}")
    return photos


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/corpus", help="corpus to copy alongside (tools/prepare_corpus.py)")
    parser.add_argument("--out", default="data/corpus_gc", help="output folder (default: data/corpus_gc)")
    parser.add_argument("--debs", help=f"folder with an already downloaded {PACKAGE} .deb")
    args = parser.parse_args(argv)

    corpus = sorted(glob.glob(os.path.join(args.corpus, "*.png")))
    if not corpus:
        print(f"no corpus images in {args.corpus} (run tools/prepare_corpus.py first)", file=sys.stderr)
        return 1
    nothing = f"no photograph in {PACKAGE}'s activities {', '.join(ACTIVITIES)}"
    photos = read_package_for_command(PACKAGE, load_photos, args.debs, nothing)
    if photos is None:
        return 1
    os.makedirs(args.out, exist_ok=True)
    manifest = []
    for stem, image in sorted(photos.items()):
        manifest += save_downscales(image, stem, downscale_factors(image.size), args.out, source=stem)
    for path in corpus:
        shutil.copy(path, args.out)
    with open(os.path.join(args.out, "objects_manifest.json"), "w") as handle:
        json.dump({"package": PACKAGE, "activities": list(ACTIVITIES), "photos": len(photos), "images": manifest}, handle, indent=1)
    print(f"{len(photos)} photographs of {PACKAGE} ({len(manifest)} images), plus {len(corpus)} corpus images, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
