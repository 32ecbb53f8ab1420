"""Evaluation photos for the unseen-task benchmark (``analytics_tasks.py``): people, faces
and legible text, none of them from a package used in training.

Three kinds, in the order :func:`load_task_photos` returns them:

* **people** (faces, bodies, poses): scikit-image's astronaut; five photographs from
  Debian's ``opencv-doc`` (the footballer, one of the basketball frames, two portraits
  and a person holding a picture frame, from its example data and tutorial pages; left
  out: pictures with boxes or landmarks drawn on them, collages, paintings, renders,
  drawings); the group photograph ``t1.jpg`` of the PyPI source package ``insightface``;
* **scene text**: the six ``scenetext0N.jpg`` photographs of ``opencv-doc``'s text
  module examples (street signs, a shop front, a generator's plate);
* **composited text** (labelled ``text-on-*``): rendered words (Pillow's built-in
  font) drawn onto four photos of the standard set (:mod:`photos`) and two of
  ``opencv-doc`` (building, fruits), because only six real photos with legible text were
  found. They test reading rendered text on
  photographic backgrounds, not scene text.

Every model runs on every photo; each task is scored on the photos where the model
finds something in the original (the report counts them).

``python -m benchmarks.task_photos --fetch`` downloads ``opencv-doc`` (``apt-get
download``) and ``insightface``'s source (``pip download``) once and stores the photos,
shrunk to at most 1024 px on the long side, under ``benchmarks/photos_cache/tasks/``.
The packages are listed in the team's evaluation package list so that the training corpus
avoids them.
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tarfile
import tempfile
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .bench_common import markdown_table

HERE = os.path.dirname(os.path.abspath(__file__))
TASK_CACHE = os.path.join(HERE, "photos_cache", "tasks")
CACHE_LONG_SIDE = 1024
INSIGHTFACE = "insightface==2.1"

#: (name, package, path inside the extracted package)
FETCHED: Sequence[Tuple[str, str, str]] = (
    ("opencv-messi5", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/messi5.jpg"),
    ("opencv-basketball1", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/basketball1.png"),
    ("opencv-portrait1", "opencv-doc", "usr/share/doc/opencv-doc/opencv4/html/227943776_1.jpg"),
    ("opencv-portrait2", "opencv-doc", "usr/share/doc/opencv-doc/opencv4/html/230501201_1.jpg"),
    ("opencv-frame", "opencv-doc", "usr/share/doc/opencv-doc/opencv4/html/Threshold_inRange_Tutorial_Result_input.jpeg"),
    ("insightface-t1", "insightface", "insightface/data/images/t1.jpg"),
) + tuple((f"opencv-scenetext0{i}", "opencv-doc", f"usr/share/doc/opencv-doc/examples/text/scenetext0{i}.jpg")
          for i in range(1, 7))
#: Photos fetched only as backgrounds of :data:`COMPOSITES`.
BACKGROUNDS: Sequence[Tuple[str, str, str]] = (
    ("opencv-building", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/building.jpg"),
    ("opencv-fruits", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/fruits.jpg"),
)

#: Composited text scenes: (name, standard photo, lines of text, style)
COMPOSITES: Sequence[Tuple[str, str, Tuple[str, ...], str]] = (
    ("text-on-coffee", "coffee", ("MORNING BLEND", "Fresh roast daily"), "plate"),
    ("text-on-chelsea", "chelsea", ("Lost cat", "Call 555 0142"), "outline"),
    ("text-on-rocket", "rocket", ("LAUNCH PAD 39", "Authorised staff only"), "plate"),
    ("text-on-motorcycle", "motorcycle", ("GARAGE SALE", "Saturday 9 to 5"), "outline"),
    ("text-on-building", "opencv-building", ("Temple Gardens", "Open every day"), "plate"),
    ("text-on-fruits", "opencv-fruits", ("Spring Market", "Plants and seeds"), "outline"),
)
KINDS = {"people": [n for n, _, _ in FETCHED[:6]], "scene-text": [n for n, _, _ in FETCHED[6:]],
         "composited-text": [n for n, _, _, _ in COMPOSITES]}
TASK_PHOTO_NAMES: Tuple[str, ...] = ("astronaut",) + tuple(KINDS["people"] + KINDS["scene-text"] + KINDS["composited-text"])


def source_of(name: str) -> str:
    """Where a photo comes from (package, and ``composited`` for rendered text)."""
    if name == "astronaut":
        return "scikit-image"
    for photo, package, path in FETCHED:
        if photo == name:
            return f"{package}: {os.path.basename(path)}"
    for photo, base, _, _ in COMPOSITES:
        if photo == name:
            return f"composited: rendered text on {base}"
    raise ValueError(f"unknown task photo {name!r}")


def kind_of(name: str) -> str:
    if name == "astronaut":
        return "people"
    return next(kind for kind, names in KINDS.items() if name in names)


def _save(image: Image.Image, path: str) -> None:
    image = image.convert("RGB")
    scale = CACHE_LONG_SIDE / max(image.size)
    if scale < 1.0:
        image = image.resize((round(image.size[0] * scale), round(image.size[1] * scale)), Image.LANCZOS)
    temporary = os.path.join(os.path.dirname(path), "." + os.path.basename(path))
    image.save(temporary, "PNG")
    os.replace(temporary, path)


def fetch_task_photos(cache: str = TASK_CACHE, verbose: bool = True) -> List[str]:
    """Downloads ``opencv-doc`` (``apt-get download``, ``dpkg -x``) and the ``insightface``
    source package (``pip download --no-deps --no-binary :all:``) and stores each photo of
    :data:`FETCHED` as ``cache/NAME.png``. Photos already there are kept. Returns the paths.

    Raises:
        RuntimeError: a download or extraction failed, or a package lacks a listed photo.
    """
    os.makedirs(cache, exist_ok=True)
    wanted = [entry for entry in tuple(FETCHED) + tuple(BACKGROUNDS) if not os.path.exists(os.path.join(cache, entry[0] + ".png"))]
    with tempfile.TemporaryDirectory() as workdir:
        for package in sorted({package for _, package, _ in wanted}):
            root = os.path.join(workdir, package)
            if package == "insightface":
                command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", workdir,
                           INSIGHTFACE]
            else:
                command = ["apt-get", "download", package]
            if verbose:
                print(f"[task_photos] {' '.join(command[2:] if package == 'insightface' else command)}", flush=True)
            result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()[-500:]}")
            if package == "insightface":
                archives = glob.glob(os.path.join(workdir, "insightface-*.tar.gz"))
                if not archives:
                    raise RuntimeError("pip download left no insightface source archive")
                with tarfile.open(archives[0]) as archive:
                    top = archive.getnames()[0].split("/")[0]
                    members = [m for m in archive.getmembers() if m.name.startswith(f"{top}/insightface/data/images/")]
                    archive.extractall(workdir, members=members, filter="data")
                os.rename(os.path.join(workdir, top), root)
            else:
                debs = sorted(glob.glob(os.path.join(workdir, f"{package}_*.deb")))
                if not debs:
                    raise RuntimeError(f"apt-get download left no .deb of {package}")
                result = subprocess.run(["dpkg", "-x", debs[-1], root], capture_output=True, text=True)
                if result.returncode != 0:
                    raise RuntimeError(f"dpkg -x {debs[-1]} failed: {result.stderr.strip()}")
            for name, owner, path in wanted:
                if owner == package:
                    source = os.path.join(root, path)
                    if not os.path.exists(source):
                        raise RuntimeError(f"{package} has no {path}")
                    with Image.open(source) as image:
                        _save(image, os.path.join(cache, name + ".png"))
    return [os.path.join(cache, name + ".png") for name, _, _ in tuple(FETCHED) + tuple(BACKGROUNDS)]


def composite_text(image: np.ndarray, lines: Sequence[str], style: str) -> np.ndarray:
    """Draws ``lines`` (centred, lower third) onto a copy of ``image`` with Pillow's
    built-in scalable font: ``plate`` dark letters on a light panel, ``outline`` white
    letters with a black outline straight on the photo."""
    picture = Image.fromarray(image).convert("RGB")
    width, height = picture.size
    size = max(12, round(height / 16))
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(picture)
    boxes = [draw.textbbox((0, 0), line, font=font) for line in lines]
    gap = size // 3
    total = sum(b[3] - b[1] for b in boxes) + gap * (len(lines) - 1)
    top = round(height * 0.62) - total // 2
    if style == "plate":
        widest = max(b[2] - b[0] for b in boxes)
        margin = size // 2
        draw.rectangle([(width - widest) // 2 - margin, top - margin, (width + widest) // 2 + margin,
                        top + total + margin], fill=(236, 232, 220))
    for line, box in zip(lines, boxes):
        x = (width - (box[2] - box[0])) // 2 - box[0]
        y = top - box[1]
        if style == "plate":
            draw.text((x, y), line, font=font, fill=(25, 25, 30))
        else:
            draw.text((x, y), line, font=font, fill=(255, 255, 255), stroke_width=max(2, size // 12),
                      stroke_fill=(0, 0, 0))
        top += box[3] - box[1] + gap
    return np.asarray(picture)


def shrink(image: np.ndarray, long_side: Optional[int]) -> np.ndarray:
    """Shrinks (Lanczos) so the long side is at most ``long_side`` (None or 0: unchanged),
    keeping the whole picture (no crop: a crop could cut away the faces or the text)."""
    if not long_side or max(image.shape[:2]) <= long_side:
        return image
    scale = long_side / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def load_task_photos(long_side: Optional[int] = 512, names: Optional[Sequence[str]] = None, limit: Optional[int] = None,
                     cache: str = TASK_CACHE) -> List[Tuple[str, np.ndarray]]:
    """``[(name, uint8 HxWx3)]`` of the task photos (all of :data:`TASK_PHOTO_NAMES`, or
    ``names``), shrunk to at most ``long_side`` px on the long side (composites are drawn
    after shrinking, so their letters have the same size at every ``long_side``).

    Raises:
        ValueError: an unknown name.
        FileNotFoundError: a fetched photo is missing (run ``--fetch``).
    """
    from .photos import load_photos

    wanted = list(names) if names else list(TASK_PHOTO_NAMES)
    unknown = [name for name in wanted if name not in TASK_PHOTO_NAMES]
    if unknown:
        raise ValueError(f"unknown task photos {unknown}; choose from {', '.join(TASK_PHOTO_NAMES)}")
    fetched = {name for name, _, _ in tuple(FETCHED) + tuple(BACKGROUNDS)}
    composites = {name: (base, lines, style) for name, base, lines, style in COMPOSITES}

    def load(name: str) -> np.ndarray:
        if name in fetched:
            path = os.path.join(cache, name + ".png")
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} is missing: fetch the task photos first with "
                                        "'python -m benchmarks.task_photos --fetch'")
            with Image.open(path) as image:
                return shrink(np.asarray(image.convert("RGB")), long_side)
        return shrink(load_photos(names=[name])[0][1], long_side)

    photos = []
    for name in wanted[:limit] if limit else wanted:
        if name in composites:
            base, lines, style = composites[name]
            photo = composite_text(load(base), lines, style)
        else:
            photo = load(name)
        photos.append((name, np.ascontiguousarray(photo)))
    return photos


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Lists (and with --fetch, downloads) the unseen-task evaluation photos.")
    parser.add_argument("--fetch", action="store_true", help="download opencv-doc and insightface's source once")
    parser.add_argument("--cache", default=TASK_CACHE, help=f"folder of the fetched photos (default {TASK_CACHE})")
    parser.add_argument("--long-side", type=int, default=512, help="shrink to at most this long side (0: as cached)")
    parser.add_argument("--save", metavar="DIR", default=None, help="also write the photos as PNG files into DIR")
    args = parser.parse_args(argv)
    try:
        if args.fetch:
            fetch_task_photos(args.cache)
        photos = load_task_photos(args.long_side, cache=args.cache)
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        print(f"task_photos: {error}", file=sys.stderr)
        return 1
    print(markdown_table(["photo", "kind", "width", "height", "source"],
                         [[name, kind_of(name), image.shape[1], image.shape[0], source_of(name)] for name, image in photos],
                         align="llrrl"))
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        for name, image in photos:
            Image.fromarray(image).save(os.path.join(args.save, name + ".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
