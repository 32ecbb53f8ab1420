#!/usr/bin/env python3
"""An experimental training corpus with photographs of objects: the standard corpus plus
composites of cut-out object photos pasted on its backgrounds.

    python -m tools.prepare_composites --corpus data/corpus --out data/corpus_obj

Why: the standard corpus (``tools/prepare_corpus.py``) is 27 nature wallpapers, and the
machine decoding trained on it helps unseen classifiers on landscapes but not on photos
of objects (tools/EXPERIMENTS.md, "What limits the machine decoding"). Debian's
``tuxpaint-stamps-default`` holds some 800 stamps; about a hundred are photographs of
objects and animals cut out with an alpha channel. This script downloads it with
``apt-get download`` (``--debs DIR`` takes an already downloaded .deb), keeps the
photographic stamps (:func:`is_photographic`), and writes ``--count`` composites: a
random 512x384 window of a corpus image with 2 or 3 stamps pasted on it, each scaled to
160-320 px on its long side. The corpus images are copied alongside, so ``--out`` is a
complete corpus for ``python -m tools.train --corpus``.

This grows the corpus beyond the two packages of the shipped corpus (tools/README.md,
"Corpus"): it is for experiments (adapter fine-tuning), not for shipped weights. None
of the evaluation photos' packages (``benchmarks/photos.py``) is used.
"""
from __future__ import annotations

import argparse
import glob
import os
import random
import shutil
import sys
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image

from tools.debian_packages import read_package_for_command

PACKAGE = "tuxpaint-stamps-default"
STAMP_FOLDER = "usr/share/tuxpaint/stamps"
CANVAS = (512, 384)
STAMP_SIDE = (160, 320)
#: A stamp is photographic when its opaque part has more distinct colours than this
#: (drawn stamps, letters and symbols have a few hundred to a few thousand).
MIN_COLOURS = 8000


def is_photographic(stamp: Image.Image) -> bool:
    """True for an RGBA stamp of at least 150 px a side, at least 20 % opaque, whose
    opaque pixels hold more than :data:`MIN_COLOURS` distinct colours."""
    if stamp.mode != "RGBA" or min(stamp.size) < 150:
        return False
    pixels = np.asarray(stamp)
    opaque = pixels[..., 3] > 200
    if opaque.mean() < 0.2:
        return False
    rgb = pixels[opaque][:, :3].astype(np.int64)
    return len(np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])) > MIN_COLOURS


def load_stamps(package_root: str) -> List[Image.Image]:
    """The photographic stamps (see :func:`is_photographic`) of an extracted package."""
    stamps = []
    for path in sorted(glob.glob(os.path.join(package_root, STAMP_FOLDER, "**", "*.png"), recursive=True)):
        with Image.open(path) as image:
            if is_photographic(image):
                stamps.append(image.copy())
    return stamps


def composite(background: Image.Image, stamps: Sequence[Image.Image], rng: random.Random) -> Image.Image:
    """A random :data:`CANVAS` window of ``background`` with 2 or 3 random stamps pasted
    on it (each scaled to :data:`STAMP_SIDE` on its long side, at most a quarter outside).

    Raises:
        ValueError: the background is smaller than the canvas, or there are no stamps.
    """
    width, height = CANVAS
    if background.size[0] < width or background.size[1] < height:
        raise ValueError(f"background {background.size} is smaller than the {width}x{height} canvas")
    if not stamps:
        raise ValueError("no stamps to paste")
    left = rng.randint(0, background.size[0] - width)
    top = rng.randint(0, background.size[1] - height)
    canvas = background.convert("RGB").crop((left, top, left + width, top + height)).convert("RGBA")
    for _ in range(rng.randint(2, 3)):
        stamp = rng.choice(stamps)
        scale = rng.uniform(*STAMP_SIDE) / max(stamp.size)
        stamp = stamp.resize((max(1, round(stamp.size[0] * scale)), max(1, round(stamp.size[1] * scale))), Image.LANCZOS)
        x = rng.randint(-stamp.size[0] // 4, width - 3 * stamp.size[0] // 4)
        y = rng.randint(-stamp.size[1] // 4, height - 3 * stamp.size[1] // 4)
        layer = Image.new("RGBA", CANVAS, (0, 0, 0, 0))
        layer.paste(stamp, (x, y))
        canvas = Image.alpha_composite(canvas, layer)
    return canvas.convert("RGB")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/corpus", help="the standard corpus (tools/prepare_corpus.py)")
    parser.add_argument("--out", default="data/corpus_obj", help="output folder (default: data/corpus_obj)")
    parser.add_argument("--count", type=int, default=100, help="composites to write (default 100)")
    parser.add_argument("--debs", help=f"folder with an already downloaded {PACKAGE} .deb")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    backgrounds = [path for path in sorted(glob.glob(os.path.join(args.corpus, "*_x2.png")))]
    if not backgrounds:
        print(f"no *_x2.png corpus images in {args.corpus} (run tools/prepare_corpus.py first)", file=sys.stderr)
        return 1
    stamps = read_package_for_command(PACKAGE, load_stamps, args.debs, f"no photographic stamp in {PACKAGE}")
    if stamps is None:
        return 1
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    images = []
    for path in backgrounds:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    for index in range(args.count):
        temporary = os.path.join(args.out, f".composite_{index:03d}.png")
        composite(rng.choice(images), stamps, rng).save(temporary)
        os.replace(temporary, os.path.join(args.out, f"composite_{index:03d}.png"))
    for path in sorted(glob.glob(os.path.join(args.corpus, "*.png"))):
        shutil.copy(path, args.out)
    print(f"{args.count} composites of {len(stamps)} photographic stamps, plus the corpus, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
