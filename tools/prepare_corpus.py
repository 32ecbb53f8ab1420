#!/usr/bin/env python3
"""Fetch and prepare the training corpus: real photographs from two Debian packages.

    python tools/prepare_corpus.py --out data/corpus

Downloads ``mate-backgrounds`` and ``lomiri-wallpapers-16.04`` with ``apt-get download``
(no root needed for that), extracts them with ``dpkg -x``, keeps the photographs
(``usr/share/backgrounds/mate/nature/*.jpg`` and the 15 photos at the top of
``usr/share/backgrounds`` from lomiri-wallpapers), and writes each one downscaled by 2,
3 and 4 as PNG (downscaling removes JPEG artefacts, as CLIC-style training does).
The training program takes random crops of these. ``--debs DIR`` uses already
downloaded .deb files instead of fetching them.

Only this corpus is trained on; the evaluation photos (scikit-image, scikit-learn) are not.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

from PIL import Image

PACKAGES = ("mate-backgrounds", "lomiri-wallpapers-16.04")
PHOTO_GLOBS = ("usr/share/backgrounds/mate/nature/*.jpg", "usr/share/backgrounds/*.jpg")
FACTORS = (2, 3, 4)


def fetch_packages(workdir: str) -> list[str]:
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=workdir, check=True)
    return sorted(glob.glob(os.path.join(workdir, "*.deb")))


def extract(debs: list[str], root: str) -> list[str]:
    for deb in debs:
        subprocess.run(["dpkg", "-x", deb, root], check=True)
    photos: list[str] = []
    for pattern in PHOTO_GLOBS:
        photos += sorted(glob.glob(os.path.join(root, pattern)))
    return photos


def save_downscales(image: Image.Image, stem: str, factors: tuple, out: str, source: str) -> list[dict]:
    """Writes ``image`` downscaled by each factor (Lanczos; 1 keeps it as it is) as
    ``out/<stem>_x<factor>.png``, each file complete or absent, and returns the manifest
    entries (file, source, factor, size)."""
    entries = []
    for factor in factors:
        size = (image.width // factor, image.height // factor)
        name = f"{stem}_x{factor}.png"
        scaled = image if factor == 1 else image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        temporary = os.path.join(out, "." + name)
        scaled.save(temporary, format="PNG")
        os.replace(temporary, os.path.join(out, name))
        entries.append({"file": name, "source": source, "factor": factor, "size": list(size)})
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/corpus", help="output folder (default: data/corpus)")
    parser.add_argument("--debs", help="folder with the .deb files already downloaded")
    args = parser.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        debs = sorted(glob.glob(os.path.join(args.debs, "*.deb"))) if args.debs else fetch_packages(workdir)
        if not debs:
            print("no .deb files found", file=sys.stderr)
            return 1
        photos = extract(debs, os.path.join(workdir, "root"))
        manifest = []
        for path in photos:
            with Image.open(path) as image:
                image = image.convert("RGB")
            stem = os.path.splitext(os.path.basename(path))[0]
            manifest += save_downscales(image, stem, FACTORS, args.out, source=os.path.basename(path))
            print(f"{os.path.basename(path)}: {image.width}x{image.height}")
    with open(os.path.join(args.out, "manifest.json"), "w") as handle:
        json.dump({"packages": list(PACKAGES), "photos": len(photos), "images": manifest}, handle, indent=1)
    print(f"{len(photos)} photos, {len(manifest)} images in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
