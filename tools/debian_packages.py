"""Getting Debian packages' files for the data-preparation scripts in tools/: extracting a
package, and reading the compiled Qt resource files some packages keep their images in."""
from __future__ import annotations

import glob
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from typing import Callable, Dict, List, Optional, Tuple, TypeVar

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


_QT_MAGIC = b"qres"
_QT_DIRECTORY = 0x02
_QT_ZLIB = 0x01
_QT_ZSTD = 0x04


def read_qt_resources(data: bytes) -> Dict[str, bytes]:
    """Reads a compiled Qt resource file (``rcc`` binary output, format versions 1 to 3).

    The file is a header (``b"qres"``, then big-endian u32 version, tree offset, data
    offset and names offset), a tree of nodes (14 bytes each in version 1, 22 from
    version 2: u32 name offset, u16 flags, then either u32 child count and u32 first
    child index for a directory, or u16 territory, u16 language and u32 data offset for a
    file), a data area (u32 length, then the bytes; zlib-compressed entries begin with
    their u32 uncompressed length) and a names area (u16 length, u32 hash, UTF-16BE).

    Args:
        data: the whole file.

    Returns:
        Every file's contents, uncompressed, by its path (``"/folder/name.webp"``).

    Raises:
        ValueError: not a Qt resource file, an entry outside the file, or an entry
            compressed with zstd (Qt 6's option, which GCompris's files do not use).
    """
    if data[:4] != _QT_MAGIC or len(data) < 20:
        raise ValueError("not a Qt resource file (no 'qres' header)")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    node_size = 14 if version < 2 else 22

    def unpack(fmt: str, offset: int) -> tuple:
        if offset < 0 or offset + struct.calcsize(fmt) > len(data):
            raise ValueError(f"Qt resource entry at {offset} lies outside the {len(data)}-byte file")
        return struct.unpack_from(fmt, data, offset)

    def name(offset: int) -> str:
        (length,) = unpack(">H", names + offset)
        start = names + offset + 6
        if start + 2 * length > len(data):
            raise ValueError(f"Qt resource name at {offset} runs past the end of the file")
        return data[start : start + 2 * length].decode("utf-16-be")

    files: Dict[str, bytes] = {}
    pending: List[Tuple[int, str]] = [(0, "")]
    visited = set()
    while pending:
        index, path = pending.pop()
        if index in visited:
            raise ValueError("Qt resource tree has a cycle")
        visited.add(index)
        node = tree + index * node_size
        name_offset, flags = unpack(">IH", node)
        here = path + "/" + name(name_offset) if index else ""
        if flags & _QT_DIRECTORY:
            count, first = unpack(">II", node + 6)
            pending.extend((child, here) for child in range(first, first + count))
            continue
        (data_offset,) = unpack(">I", node + 10)
        (length,) = unpack(">I", payload + data_offset)
        start = payload + data_offset + 4
        if start + length > len(data):
            raise ValueError(f"Qt resource entry {here!r} runs past the end of the file")
        blob = data[start : start + length]
        if flags & _QT_ZSTD:
            raise ValueError(f"Qt resource entry {here!r} is zstd-compressed, which this reader does not support")
        if flags & _QT_ZLIB:
            blob = zlib.decompress(blob[4:])
        files[here] = blob
    return files
