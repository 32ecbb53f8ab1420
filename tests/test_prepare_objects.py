"""tools/prepare_objects.py on Qt resource files written here and a stand-in gcompris-qt-data."""
import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, build_deb, make_photo_like, needs_dpkg_deb
from tools import prepare_objects



@pytest.fixture(scope="module")
def objects():
    return prepare_objects


def write_qt_resources(files, version=2, compress=()):
    """A compiled Qt resource file (the layout ``rcc`` writes) holding ``files``
    (path -> bytes) in one folder per distinct parent path; paths in ``compress`` are
    stored zlib-compressed. Every file lies one folder below the root, which is all
    these tests need."""
    node_size = 14 if version < 2 else 22
    names = bytearray()
    payload = bytearray()

    def add_name(text):
        offset = len(names)
        encoded = text.encode("utf-16-be")
        names.extend(struct.pack(">HI", len(text), 0) + encoded)
        return offset

    folders = {}
    for path in files:
        folder, _, name = path.strip("/").rpartition("/")
        folders.setdefault(folder, []).append((name, path))
    # Nodes: 0 is the root; then one per folder; then the files, folder by folder.
    folder_names = sorted(folders)
    file_nodes = [entry for folder in folder_names for entry in folders[folder]]
    nodes = [struct.pack(">IHII", 0, 0x02, len(folder_names), 1)]
    first_file = 1 + len(folder_names)
    for folder in folder_names:
        nodes.append(struct.pack(">IHII", add_name(folder), 0x02, len(folders[folder]), first_file))
        first_file += len(folders[folder])
    for name, path in file_nodes:
        blob = files[path]
        flags = 0
        if path in compress:
            blob = struct.pack(">I", len(blob)) + zlib.compress(blob)
            flags = 0x01
        data_offset = len(payload)
        payload.extend(struct.pack(">I", len(blob)) + blob)
        nodes.append(struct.pack(">IHHHI", add_name(name), flags, 0, 0, data_offset))
    tree = b"".join(node + b"\0" * (node_size - len(node)) for node in nodes)
    header_size = 20 if version < 3 else 24
    tree_offset = header_size
    payload_offset = tree_offset + len(tree)
    names_offset = payload_offset + len(payload)
    header = b"qres" + struct.pack(">IIII", version, tree_offset, payload_offset, names_offset)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + tree + bytes(payload) + bytes(names)


def _encoded(image, fmt):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _resources():
    photo = Image.fromarray(make_photo_like(400, 600))
    small = Image.fromarray(make_photo_like(100, 300, seed=1))
    drawing = Image.fromarray(np.dstack([make_photo_like(300, 300, seed=2), np.full((300, 300), 255, np.uint8)]), "RGBA")
    return {
        "/images/hammer.webp": _encoded(photo, "WEBP"),
        "/images/tiny.jpg": _encoded(small, "JPEG"),
        "/images/cartoon.png": _encoded(drawing, "PNG"),
        "/qml/Board.qml": b"import QtQuick 2.12\n",
    }


@pytest.mark.parametrize("version", [1, 2, 3])
def test_qt_resources_are_read_back_with_and_without_compression(objects, version):
    files = _resources()
    data = write_qt_resources(files, version=version, compress={"/images/cartoon.png", "/qml/Board.qml"})
    assert objects.read_qt_resources(data) == files


def test_bad_qt_resource_files_are_refused(objects):
    with pytest.raises(ValueError, match="qres"):
        objects.read_qt_resources(b"PK\x03\x04" + b"\0" * 40)
    data = write_qt_resources({"/txt/a.txt": b"hello"})
    with pytest.raises(ValueError, match="outside|past the end"):
        objects.read_qt_resources(data[:-20])
    zstd = bytearray(data)
    # The file node (the last of the tree) flagged as zstd-compressed.
    tree_offset = struct.unpack(">I", data[8:12])[0]
    flags_at = tree_offset + 2 * 22 + 4
    zstd[flags_at : flags_at + 2] = struct.pack(">H", 0x04)
    with pytest.raises(ValueError, match="zstd"):
        objects.read_qt_resources(bytes(zstd))


def test_downscales_keep_a_short_side_of_at_least_160(objects):
    assert objects.downscale_factors((1920, 1080)) == (2, 3, 4)
    assert objects.downscale_factors((1024, 683)) == (2, 3, 4)
    assert objects.downscale_factors((1024, 600)) == (2, 3)
    assert objects.downscale_factors((320, 213)) == (1,)


@needs_dpkg_deb
def test_the_photographs_become_a_corpus_beside_the_copied_one(tmp_path):
    package = tmp_path / "pkg"
    resources = package / "usr/share/gcompris-qt/rcc"
    resources.mkdir(parents=True)
    (resources / "categorization.rcc").write_bytes(write_qt_resources(_resources(), compress={"/qml/Board.qml"}))
    # An activity of drawings that the script must not read.
    (resources / "lang.rcc").write_bytes(write_qt_resources({"/images/photo.webp": _resources()["/images/hammer.webp"]}))
    debs = tmp_path / "debs"
    build_deb(package, "gcompris-qt-data", debs, version="3.1-2")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    Image.fromarray(make_photo_like(200, 200, seed=5)).save(corpus / "Meadow_x2.png")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "tools.prepare_objects", "--debs", str(debs), "--corpus", str(corpus), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    # The 600x400 photo at /2 (short side 200 >= 160) only; the 300x100 one is too small
    # to crop, the cut-out drawing has an alpha channel, lang is not an object activity.
    assert sorted(os.listdir(out)) == ["Meadow_x2.png", "categorization-hammer_x2.png", "objects_manifest.json"]
    assert Image.open(out / "categorization-hammer_x2.png").size == (300, 200)
    manifest = json.loads((out / "objects_manifest.json").read_text())
    assert manifest["photos"] == 1 and manifest["images"][0]["factor"] == 2

    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "tools.prepare_objects", "--debs", str(empty), "--corpus", str(corpus),
         "--out", str(tmp_path / "none")],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 1 and "no gcompris-qt-data .deb" in result.stderr
    assert not (tmp_path / "none").exists()
