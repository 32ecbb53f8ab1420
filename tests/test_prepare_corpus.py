"""tools/prepare_corpus.py: the manifest, selection, downscaling and the compact copy, on
packages built here (the real ones need the package archive)."""
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

import tools.prepare_corpus
from conftest import ROOT, build_deb, make_photo_like, needs_dpkg_deb
from test_prepare_objects import write_qt_resources


@pytest.fixture(scope="module")
def corpus():
    return tools.prepare_corpus


def _jpeg(height, width, seed=0, exif_orientation=None):
    image = Image.fromarray(make_photo_like(height, width, seed=seed))
    buffer = io.BytesIO()
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(buffer, format="JPEG", quality=95, exif=exif)
    else:
        image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _row(package, version, archive, path, data, category="object", licence="CC0-1.0"):
    return {"package": package, "version": version, "archive": archive, "path": path, "licence": licence,
            "category": category, "sha256": hashlib.sha256(data).hexdigest()}


def _write_rows(path, rows, columns=None):
    columns = columns or ["package", "version", "archive", "path", "licence", "category", "sha256", "rotate"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def sources(tmp_path):
    """A stand-in .deb (a wallpaper, a photo inside a Qt resource file) and a stand-in
    wheel, and the manifest rows that select one file of each (plus the files left out)."""
    archives = tmp_path / "archives"
    package = tmp_path / "pkg"
    (package / "usr/share/backgrounds").mkdir(parents=True)
    big = _jpeg(600, 800)  # x2 keeps a 300 px short side: one scale; turned upright by the manifest
    (package / "usr/share/backgrounds/big.jpg").write_bytes(big)
    (package / "usr/share/backgrounds/unlisted.jpg").write_bytes(_jpeg(300, 300, seed=5))
    (package / "usr/share/app/rcc").mkdir(parents=True)
    inner = _jpeg(1100, 1200, seed=1, exif_orientation=6)  # rotated: stored 1200 wide, shown 1100 wide
    (package / "usr/share/app/rcc/animals.rcc").write_bytes(
        write_qt_resources({"/res/fox.jpg": inner, "/res/clipart.jpg": _jpeg(300, 300, seed=2)}))
    build_deb(package, "fake-photos", archives, version="2.0-1")
    wheel_photo = _jpeg(300, 400, seed=3)  # too small for any downscale: kept at full size
    with zipfile.ZipFile(archives / "fakepy-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("fakepy/data/cup.jpg", wheel_photo)
    rows = [
        {**_row("fake-photos", "2.0-1", "fake-photos_2.0-1_all.deb", "usr/share/backgrounds/big.jpg", big, "landscape"), "rotate": "90"},
        _row("fake-photos", "2.0-1", "fake-photos_2.0-1_all.deb", "usr/share/app/rcc/animals.rcc:/res/fox.jpg", inner, "animal"),
        _row("fakepy", "1.0", "fakepy-1.0-py3-none-any.whl", "fakepy/data/cup.jpg", wheel_photo, "object"),
    ]
    return archives, rows


def test_the_repository_manifest_is_valid_and_mostly_not_landscapes(corpus):
    photos = corpus.read_manifest()
    assert photos, "the manifest is empty"
    assert not {p.package for p in photos} & corpus.FORBIDDEN_PACKAGES
    assert all(p.archive.endswith((".deb", ".whl", ".tar.gz", ".zip")) for p in photos)
    landscapes = sum(p.category == "landscape" for p in photos)
    assert landscapes <= len(photos) / 2, f"{landscapes} of {len(photos)} photos are landscapes"


@pytest.mark.parametrize("change, message", [
    ({"category": "cartoon"}, "unknown category"),
    ({"package": "plasma-workspace-wallpapers"}, "reserved for evaluation"),
    ({"package": "lomiri-wallpapers-20.04"}, "reserved for evaluation"),
    ({"sha256": "abc"}, "64 lower-case hex"),
    ({"licence": ""}, "empty licence"),
    ({"rotate": "45"}, "rotate must be 0, 90, 180 or 270"),
])
def test_manifest_rows_are_checked(corpus, tmp_path, change, message):
    row = _row("pkg", "1", "pkg_1_all.deb", "usr/share/a.jpg", b"x")
    path = _write_rows(tmp_path / "m.csv", [{**row, **change}])
    with pytest.raises(corpus.CorpusError, match=message):
        corpus.read_manifest(path)


def test_manifest_needs_every_column_and_distinct_output_names(corpus, tmp_path):
    row = _row("pkg", "1", "pkg_1_all.deb", "usr/share/a.jpg", b"x")
    with pytest.raises(corpus.CorpusError, match="missing column.*sha256"):
        corpus.read_manifest(_write_rows(tmp_path / "a.csv", [row], columns=["package", "version", "archive", "path", "licence", "category"]))
    twice = _write_rows(tmp_path / "b.csv", [row, row])
    with pytest.raises(corpus.CorpusError, match="listed twice"):
        corpus.read_manifest(twice)
    other = {**row, "path": "usr/share/other/a.jpg"}
    with pytest.raises(corpus.CorpusError, match="same output name"):
        corpus.read_manifest(_write_rows(tmp_path / "c.csv", [row, other]))


def test_manifest_round_trip(corpus, tmp_path):
    rows = [_row("pkg", "1:2.0-1", "pkg_1%3a2.0-1_all.deb", "usr/share/a b.jpg", b"x", licence="CC-BY-SA-3.0, GPL-2+"),
            {**_row("pkg", "1:2.0-1", "pkg_1%3a2.0-1_all.deb", "usr/share/c.jpg", b"y"), "rotate": "270"}]
    photos = corpus.read_manifest(_write_rows(tmp_path / "m.csv", rows))
    corpus.write_manifest(photos, str(tmp_path / "again.csv"))
    assert corpus.read_manifest(str(tmp_path / "again.csv")) == photos
    assert photos[0].stem == "pkg-a_b"
    assert [p.rotate for p in photos] == [0, 270]


def test_output_names_keep_the_resource_file(corpus):
    photo = corpus.Photo("gcompris-qt-data", "3", "a.deb", "usr/share/rcc/erase.rcc:/gcompris/horse.webp", "GPL-3+", "animal", "0" * 64)
    assert photo.stem == "gcompris-qt-data-erase-horse"


@pytest.mark.parametrize("size, factors", [
    ((4000, 3000), (2, 3, 4)),
    ((1600, 1200), (2, 3, 4)),
    ((1200, 800), (2, 3)),
    ((800, 600), (2,)),
    ((400, 300), (1,)),
])
def test_downscale_factors_keep_a_crop_sized_short_side(corpus, size, factors):
    assert corpus.downscale_factors(size) == factors
    assert all(min(size) // factor >= corpus.MIN_SIDE for factor in factors if factor > 1)


@needs_dpkg_deb
def test_build_selects_exactly_the_manifest_files(corpus, tmp_path, sources):
    archives, rows = sources
    photos = corpus.read_manifest(_write_rows(tmp_path / "m.csv", rows))
    out = tmp_path / "out"
    manifest = corpus.build(photos, str(out), debs=str(archives), log=lambda _: None)
    files = sorted(os.listdir(out))
    assert files == sorted([
        "fake-photos-big_x2.png",
        "fake-photos-animals-fox_x2.png", "fake-photos-animals-fox_x3.png", "fake-photos-animals-fox_x4.png",
        "fakepy-cup_x1.png", "manifest.json",
    ])
    assert manifest["photos"] == 3 and len(manifest["images"]) == 5
    # Turned 90 degrees clockwise (the photo's top edge becomes its right edge).
    source = Image.open(io.BytesIO(_jpeg(600, 800))).convert("RGB")
    with Image.open(out / "fake-photos-big_x2.png") as turned:
        assert turned.size == (300, 400)
        turned = np.asarray(turned, np.float64)
    clockwise, anticlockwise = (np.asarray(source.transpose(t).resize((300, 400)), np.float64)
                                for t in (Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_90))
    assert np.abs(turned - clockwise).mean() < 0.5 * np.abs(turned - anticlockwise).mean()
    # EXIF orientation 6 is applied: the upright photo is 1100 wide, 1200 high.
    assert Image.open(out / "fake-photos-animals-fox_x4.png").size == (275, 300)
    assert Image.open(out / "fakepy-cup_x1.png").size == (400, 300)
    categories = {e["file"]: e["category"] for e in json.loads((out / "manifest.json").read_text())["images"]}
    assert categories["fake-photos-animals-fox_x3.png"] == "animal"
    assert corpus.check_folder(str(out), manifest) == []
    (out / "fakepy-cup_x1.png").unlink()
    (out / "stray.png").write_bytes((out / "fake-photos-big_x2.png").read_bytes())
    assert corpus.check_folder(str(out), manifest) == ["missing fakepy-cup_x1.png", "not in the manifest: stray.png"]


@needs_dpkg_deb
def test_a_changed_source_file_stops_the_build_or_is_left_out(corpus, tmp_path, sources):
    archives, rows = sources
    rows[0]["sha256"] = "0" * 64
    rows[2]["path"] = "fakepy/data/gone.jpg"
    photos = corpus.read_manifest(_write_rows(tmp_path / "m.csv", rows))
    with pytest.raises(corpus.CorpusError, match="big.jpg has SHA-256"):
        corpus.build(photos, str(tmp_path / "a"), debs=str(archives), log=lambda _: None)
    manifest = corpus.build(photos, str(tmp_path / "b"), debs=str(archives), accept_current=True, log=lambda _: None)
    assert manifest["photos"] == 1 and len(manifest["skipped"]) == 2
    assert {e["source"].split(":", 1)[0] for e in manifest["images"]} == {"fake-photos"}


@needs_dpkg_deb
def test_a_missing_archive_is_named(corpus, tmp_path, sources):
    archives, rows = sources
    rows[0]["archive"] = "fake-photos_1.0-1_all.deb"
    photos = corpus.read_manifest(_write_rows(tmp_path / "m.csv", rows))
    with pytest.raises(corpus.CorpusError, match="fake-photos 2.0-1: fake-photos_1.0-1_all.deb is not in"):
        corpus.build(photos, str(tmp_path / "out"), debs=str(archives), log=lambda _: None)


def test_a_version_gone_from_the_archive_is_reported(corpus, tmp_path, monkeypatch):
    calls = []

    def fake_run(command, cwd):
        calls.append(command)
        if command[:2] == ["apt-cache", "policy"]:
            return subprocess.CompletedProcess(command, 0, "pkg:\n  Installed: (none)\n  Candidate: 2.0-1\n", "")
        if command[-1] == "pkg=2.0-1":
            open(os.path.join(cwd, "pkg_2.0-1_all.deb"), "wb").close()
            return subprocess.CompletedProcess(command, 0, "", "")
        return subprocess.CompletedProcess(command, 100, "", "E: Version '1.0-1' for 'pkg' was not found")

    monkeypatch.setattr(corpus, "_run", fake_run)
    with pytest.raises(corpus.CorpusError, match=r"pkg 1.0-1 is no longer in the package archive \(it has 2.0-1\).*--accept-current-version"):
        corpus.fetch_deb("pkg", "1.0-1", str(tmp_path))
    assert corpus.fetch_deb("pkg", "1.0-1", str(tmp_path), accept_current=True).endswith("pkg_2.0-1_all.deb")
    assert calls[-1] == ["apt-get", "download", "pkg=2.0-1"]


@needs_dpkg_deb
def test_compact_copy_caps_long_sides_to_fit_its_budget(corpus, tmp_path, sources):
    archives, rows = sources
    photos = corpus.read_manifest(_write_rows(tmp_path / "m.csv", rows))
    out, compact = tmp_path / "png", tmp_path / "jpg"
    corpus.build(photos, str(out), debs=str(archives), log=lambda _: None)
    roomy = corpus.write_compact(str(out), str(compact), 10**9, log=lambda _: None)
    assert roomy["long_side_cap"] is None and len(roomy["images"]) == 5
    with Image.open(compact / "fake-photos-animals-fox_x2.jpg") as image:
        assert image.format == "JPEG" and image.size == (550, 600)
    budget = roomy["bytes"] - 1
    tight = corpus.write_compact(str(out), str(compact), budget, caps=(500, 300), log=lambda _: None)
    assert tight["long_side_cap"] in (500, 300) and tight["bytes"] <= budget
    assert max(Image.open(compact / "fake-photos-animals-fox_x2.jpg").size) == tight["long_side_cap"]
    assert corpus.check_folder(str(compact), tight, suffix=".jpg") == []
    # A cap never takes a short side below the training crops' 256 px.
    floor = corpus.write_compact(str(out), str(compact), budget, caps=(100,), log=lambda _: None)
    assert floor["long_side_cap"] == 100 and min(min(e["size"]) for e in floor["images"]) == 256
    with pytest.raises(corpus.CorpusError, match="does not fit"):
        corpus.write_compact(str(out), str(compact), 1000, caps=(300,), log=lambda _: None)


@needs_dpkg_deb
def test_command_line(corpus, tmp_path, sources):
    archives, rows = sources
    manifest = _write_rows(tmp_path / "m.csv", rows)
    script = ["-m", "tools.prepare_corpus"]
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, *script, "--manifest", manifest, "--debs", str(archives), "--out", str(out),
                           "--compact", str(tmp_path / "jpg"), "--compact-mb", "5"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "3 photos, 5 images" in done.stdout and "5 JPEGs" in done.stdout
    listed = subprocess.run([sys.executable, *script, "--manifest", manifest, "--list"], capture_output=True, text=True, cwd=ROOT)
    assert "3 photos" in listed.stdout and "by category: " in listed.stdout
    rows[2]["sha256"] = "f" * 64
    bad = _write_rows(tmp_path / "bad.csv", rows)
    failed = subprocess.run([sys.executable, *script, "--manifest", bad, "--debs", str(archives), "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT)
    assert failed.returncode == 1 and "error: fakepy: fakepy/data/cup.jpg has SHA-256" in failed.stderr
