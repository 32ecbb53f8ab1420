"""The ugc command line, run in-process with click's runner (and once as a real process)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ugcodec.cli import main

from conftest import make_photo_like


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(make_photo_like(48, 70)).save("photo.png")
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def listing(folder):
    return sorted(os.listdir(folder))


def test_encode_decode_info(workdir):
    result = run("encode", "photo.png", "photo.ugc", "--quality", "2")
    assert result.exit_code == 0, result.output
    assert "bpp" in result.output
    assert run("decode", "photo.ugc", "out.png", "--for", "human").exit_code == 0
    assert Image.open("out.png").size == (70, 48)
    # OUT is optional: the name says which preference it is; --preference is an alias.
    assert run("decode", "photo.ugc", "--preference", "machine").exit_code == 0
    assert os.path.exists("photo.machine.png")
    info = run("info", "photo.ugc", "--json")
    fields = json.loads(info.output)
    assert fields["width"] == 70 and fields["height"] == 48 and fields["quality"] == 2
    assert "bits per pixel" in run("info", "photo.ugc").output


@pytest.mark.parametrize(
    "args, message",
    [
        (("encode", "missing.png", "x.ugc"), "no such file"),
        (("encode", "notes.txt", "x.ugc"), "not an image"),
        (("decode", "notes.txt", "x.png"), "not a .ugc file"),
        (("decode", "broken.ugc", "x.png"), "truncated"),
        (("info", "broken.ugc"), "truncated"),
        (("encode", "photo.png", "nowhere/x.ugc"), "no such folder: nowhere"),
        (("encode", "photo.png", "nowhere/"), "no such folder: nowhere/"),
        (("decode", "photo.ugc", "nowhere/x.png"), "no such folder: nowhere"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line_and_no_output(workdir, args, message):
    assert run("encode", "photo.png", "photo.ugc").exit_code == 0
    with open("photo.ugc", "rb") as handle:
        data = handle.read()
    with open("broken.ugc", "wb") as handle:
        handle.write(data[: len(data) // 2])
    with open("notes.txt", "w") as handle:
        handle.write("hello")
    before = listing(workdir)
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ugc: error:") and message in lines[0]
    assert "Traceback" not in result.output
    assert listing(workdir) == before


def test_refuses_to_overwrite_without_force(workdir):
    assert run("encode", "photo.png", "photo.ugc").exit_code == 0
    stamp = os.path.getmtime("photo.ugc")
    result = CliRunner().invoke(main, ["encode", "photo.png", "photo.ugc"])
    assert result.exit_code == 1 and "--force" in result.output
    assert os.path.getmtime("photo.ugc") == stamp
    assert run("encode", "photo.png", "photo.ugc", "--force").exit_code == 0
    result = CliRunner().invoke(main, ["encode", "photo.png", "photo.png", "--force"])
    assert result.exit_code == 1 and "input" in result.output


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_outputs_get_the_usual_permissions_not_private_ones(workdir):
    previous = os.umask(0o022)
    try:
        assert run("encode", "photo.png", "photo.ugc").exit_code == 0
        assert run("decode", "photo.ugc", "out.png").exit_code == 0
        assert oct(os.stat("photo.ugc").st_mode & 0o777) == oct(0o644)
        assert oct(os.stat("out.png").st_mode & 0o777) == oct(0o644)
        # An overwritten file keeps the permissions its owner gave it.
        os.chmod("photo.ugc", 0o640)
        assert run("encode", "photo.png", "photo.ugc", "--force").exit_code == 0
        assert oct(os.stat("photo.ugc").st_mode & 0o777) == oct(0o640)
        os.umask(0o077)
        assert run("encode", "photo.png", "private.ugc").exit_code == 0
        assert oct(os.stat("private.ugc").st_mode & 0o777) == oct(0o600)
    finally:
        os.umask(previous)


def test_help_explains_the_commands():
    for command in ([], ["encode"], ["decode"], ["info"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output
    assert "--for" in run("decode", "--help").output


def test_console_script_runs(workdir):
    completed = subprocess.run(
        [sys.executable, "-m", "ugcodec.cli", "info", "missing.ugc"], capture_output=True, text=True
    )
    assert completed.returncode == 1
    assert completed.stderr.strip() == "ugc: error: no such file: missing.ugc"


def test_stdin_and_stdout(workdir):
    with open("photo.png", "rb") as handle:
        png = handle.read()
    encoded = CliRunner().invoke(main, ["encode", "-", "-"], input=png)
    assert encoded.exit_code == 0
    data = encoded.stdout_bytes
    assert data[:4] == b"\x89UGC"
    decoded = CliRunner().invoke(main, ["decode", "-", "-", "--for", "machine"], input=data)
    assert decoded.exit_code == 0
    assert decoded.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"
    result = CliRunner().invoke(main, ["decode", "-"], input=data)
    assert result.exit_code == 2 and "Missing argument 'DESTINATION'" in result.output


def test_folder_encoding_continues_past_bad_files(workdir):
    os.mkdir("photos")
    for index in range(3):
        Image.fromarray(make_photo_like(40 + index, 50, seed=index)).save(f"photos/p{index}.png")
    with open("photos/broken.png", "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n not really")
    result = CliRunner().invoke(main, ["encode", "photos", "encoded", "--jobs", "2"])
    assert result.exit_code == 1
    assert "encoded 3 of 4 images" in result.output
    assert "broken.png" in result.output
    assert sorted(os.listdir("encoded")) == ["p0.ugc", "p1.ugc", "p2.ugc"]
    again = CliRunner().invoke(main, ["encode", "photos/p*.png", "encoded", "--force", "--jobs", "1"])
    assert again.exit_code == 0 and "encoded 3 of 3" in again.output


def _save_variants(folder):
    """Every kind of input issue 5 names, as files."""
    photo = make_photo_like(40, 56, seed=5)
    rgb = Image.fromarray(photo)
    files = {}

    def save(name, image, **options):
        image.save(os.path.join(folder, name), **options)
        files[name] = os.path.join(folder, name)

    save("palette.png", rgb.convert("P", palette=Image.Palette.ADAPTIVE))
    save("cmyk.jpg", rgb.convert("CMYK"))
    save("sixteen.png", Image.fromarray(photo[:, :, 0].astype(np.uint16) * 257))
    save("one.png", Image.fromarray(photo[:1, :1]))
    save("small.png", Image.fromarray(photo[:5, :9]))
    save("gray.png", rgb.convert("L"))
    save("opaque.png", rgb.convert("RGBA"))
    transparent = rgb.convert("RGBA")
    transparent.putpixel((0, 0), (0, 0, 0, 0))
    save("transparent.png", transparent)
    rgb.save(os.path.join(folder, "full.png"))
    rgb.save(os.path.join(folder, "full.jpg"))
    for name, cut in (("truncated.png", "full.png"), ("truncated.jpg", "full.jpg")):
        with open(os.path.join(folder, cut), "rb") as handle:
            data = handle.read()
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(data[: len(data) // 2])
        files[name] = os.path.join(folder, name)
    with open(os.path.join(folder, "empty.png"), "wb"):
        pass
    files["empty.png"] = os.path.join(folder, "empty.png")
    return files


@pytest.mark.parametrize("name", ["palette.png", "cmyk.jpg", "sixteen.png", "one.png", "small.png", "gray.png", "opaque.png"])
def test_convertible_images_encode(workdir, name):
    files = _save_variants(str(workdir))
    result = CliRunner().invoke(main, ["encode", files[name], "out.ugc"])
    assert result.exit_code == 0, result.output
    assert run("decode", "out.ugc", "out.png").exit_code == 0
    assert Image.open("out.png").size == Image.open(files[name]).size


@pytest.mark.parametrize(
    "name, message",
    [
        ("empty.png", "not an image"),
        ("truncated.png", "cannot read image"),
        ("truncated.jpg", "cannot read image"),
        ("transparent.png", "transparency"),
    ],
)
def test_bad_images_fail_cleanly(workdir, name, message):
    files = _save_variants(str(workdir))
    before = listing(workdir)
    result = CliRunner().invoke(main, ["encode", files[name], "out.ugc"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert listing(workdir) == before


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flags_print_the_version(flag):
    import ugcodec

    result = run(flag)
    assert result.exit_code == 0 and result.output.strip() == f"ugc, version {ugcodec.__version__}"
