"""ugc encode/decode --ray on a real local Ray instance (2 CPUs), against the local path."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'ugcodec[ray]'")
pytest.importorskip("ray.data", reason="Ray Data is missing: pip install 'ugcodec[ray]'")

from ugcodec.cli import main  # noqa: E402

from conftest import ROOT, make_photo_like, write_photos  # noqa: E402

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "images"
    write_photos(folder, 3, 40, 56)
    Image.fromarray(make_photo_like(32, 48, seed=7)).save(folder / "profiled.jpg", quality=95, icc_profile=ICC)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    return folder


def ugc_process(*args):
    """The console command in a fresh process (the local path forks workers, which a
    process running Ray must not do)."""
    environment = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "ugcodec.cli", *args], capture_output=True, text=True,
                          env=environment)


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def files(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_encode_on_ray_matches_the_local_path(local_ray, images, tmp_path):
    local = ugc_process("encode", str(images), str(tmp_path / "local"), "-q", "2", "-j", "2")
    assert local.returncode == 1 and "broken.png" in local.stderr
    (tmp_path / "on_ray").mkdir()
    (tmp_path / "on_ray" / "photo2.ugc").write_bytes(b"older output")
    result = run("encode", str(images), str(tmp_path / "on_ray"), "-q", "2", "--ray", "-j", "2")
    assert result.exit_code == 1, result.output
    assert "encoded 3 of 5 files" in result.output
    assert "broken.png: not an image file" in result.output
    assert "photo2.ugc exists (use --force" in result.output
    assert (tmp_path / "on_ray" / "photo2.ugc").read_bytes() == b"older output"
    result = run("encode", str(images), str(tmp_path / "on_ray"), "-q", "2", "--ray", "-j", "2", "--force")
    assert "encoded 4 of 5 files" in result.output
    expected = files(tmp_path / "local")
    assert sorted(expected) == ["photo0.ugc", "photo1.ugc", "photo2.ugc", "profiled.ugc"]
    assert files(tmp_path / "on_ray") == expected  # byte-identical, and no temporary files left


def test_decode_on_ray_matches_the_local_path(local_ray, images, tmp_path):
    import torch

    coded = tmp_path / "coded"
    assert ugc_process("encode", str(images), str(coded), "-q", "1").returncode == 1
    (coded / "truncated.ugc").write_bytes((coded / "photo0.ugc").read_bytes()[:-8])
    result = run("decode", str(coded), str(tmp_path / "decoded"), "--for", "machine", "--ray")
    assert result.exit_code == 1, result.output
    assert "decoded 4 of 5 files" in result.output and "truncated.ugc: file truncated" in result.output
    on_ray = files(tmp_path / "decoded")
    assert sorted(on_ray) == [f"{stem}.machine.png" for stem in ("photo0", "photo1", "photo2", "profiled")]
    # The local path in a fresh process on one thread, as every Ray actor runs: g_s's
    # float32 algorithms depend on the thread count a process starts its first decoding
    # with (NNPACK's pool is sized once), and pixels may differ in the last bit between
    # them (bitstream_spec.md §11).
    for name, data in on_ray.items():
        stem = name.split(".")[0]
        local = tmp_path / f"local-{stem}.png"
        assert ugc_process("decode", str(coded / f"{stem}.ugc"), str(local), "--for", "machine",
                           "--threads", "1").returncode == 0
        assert local.read_bytes() == data, name
    with Image.open(tmp_path / "decoded" / "profiled.machine.png") as decoded:
        assert decoded.info["icc_profile"] == ICC
