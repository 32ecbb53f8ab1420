"""Getting one Debian package's files for the data-preparation scripts in tools/."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


def extract_package(package: str, workdir: str, debs: Optional[str] = None) -> str:
    """Extracts ``package`` into ``workdir/root`` and returns that folder.

    Args:
        package: the Debian package name (``"gcompris-qt-data"``).
        workdir: a scratch folder; the download goes there too.
        debs: a folder holding an already downloaded ``<package>_*.deb`` (the newest
            version is taken); None downloads it with ``apt-get download`` (no root needed).

    Raises:
        FileNotFoundError: no ``<package>_*.deb`` in ``debs`` (or after the download).
        subprocess.CalledProcessError: ``apt-get download`` or ``dpkg -x`` failed.
    """
    if debs:
        found = sorted(glob.glob(os.path.join(debs, f"{package}_*.deb")))
    else:
        subprocess.run(["apt-get", "download", package], cwd=workdir, check=True)
        found = sorted(glob.glob(os.path.join(workdir, f"{package}_*.deb")))
    if not found:
        raise FileNotFoundError(f"no {package} .deb" + (f" in {debs}" if debs else ""))
    root = os.path.join(workdir, "root")
    subprocess.run(["dpkg", "-x", found[-1], root], check=True)
    return root


def read_package(package: str, read: Callable[[str], T], debs: Optional[str] = None) -> T:
    """Extracts ``package`` into a temporary folder (see :func:`extract_package`) and
    returns ``read(root)``, which must copy out what it keeps: the folder is deleted after.

    Raises:
        RuntimeError: the package cannot be had or read (``FileNotFoundError``,
            ``ValueError`` or ``subprocess.CalledProcessError`` inside, as the cause).
    """
    try:
        with tempfile.TemporaryDirectory() as workdir:
            return read(extract_package(package, workdir, debs))
    except (FileNotFoundError, ValueError, subprocess.CalledProcessError) as error:
        raise RuntimeError(f"cannot get {package}: {error}") from error


def read_package_for_command(package: str, read: Callable[[str], T], debs: Optional[str], nothing: str) -> Optional[T]:
    """:func:`read_package` for a command line: its error, or ``nothing`` when ``read``
    found nothing, goes to stderr and None is returned (the command then exits 1)."""
    try:
        found = read_package(package, read, debs)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return None
    if not found:
        print(nothing, file=sys.stderr)
        return None
    return found
