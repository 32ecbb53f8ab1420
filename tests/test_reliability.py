"""Nothing lost, nothing exhausted: outputs never collide or overwrite, reads and decodes
are bounded, image and API inputs fail with clear errors. One section per kind of defect."""
import errno
import io
import os
import pathlib
import signal
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import ugcodec
import ugcodec.codec  # the module, which the package imports lazily
from ugcodec import files
from ugcodec.cli import main
from ugcodec.container import HEADER_SIZE, Container, Header, read_container
from ugcodec.errors import FormatError, ImageError, TooManyPixelsError, UgcError
from ugcodec.image_io import load_image

from conftest import ROOT, make_photo_like

PHOTO = make_photo_like(40, 56, seed=11)


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


def image_bytes(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def bomb(width: int, height: int, model_id: int = 1, fingerprint: bytes = b"\0" * 8) -> bytes:
    """A 36-byte file with empty sections and valid CRCs claiming ``width`` x ``height``."""
    header = Header(model_id=model_id, color_mode=1, quality=1, width=width, height=height,
                    fingerprint=fingerprint, z_length=0, y_length=0)
    return Container(header, b"", b"").to_bytes()


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(PHOTO).save("photo.png")
    return tmp_path


@pytest.fixture(scope="module")
def golden():
    with open(os.path.join(ROOT, "tests", "golden", "golden.ugc"), "rb") as handle:
        return handle.read()


# 1. Output collisions, races, inputs as outputs, multi-input destinations -----------------


def test_folder_mode_refuses_inputs_that_share_an_output_before_any_work(workdir, monkeypatch):
    os.mkdir("src")
    Image.fromarray(PHOTO).save("src/a.png")
    Image.fromarray(PHOTO).save("src/a.jpg")
    Image.fromarray(PHOTO).save("src/b.png")
    result = run("encode", "src", "out")
    assert result.exit_code == 1
    assert "src/a.jpg and src/a.png" in result.output and "overwrite each other" in result.output
    assert not os.path.exists("out")  # refused before any work: not even the folder


def test_two_folders_holding_the_same_name_are_refused(workdir):
    for folder in ("one", "two"):
        os.mkdir(folder)
        Image.fromarray(PHOTO).save(f"{folder}/pic.png")
    result = run("encode", "one", "two", "out")
    assert result.exit_code == 1 and "one/pic.png and two/pic.png" in result.output
    assert not os.path.exists("out")


def test_an_output_created_while_encoding_is_not_overwritten(workdir, monkeypatch):
    """Another process creating the destination between the check and the write (the
    check-then-rename race) makes this run fail; its file stays as it is."""
    real_encode = ugcodec.codec.encode

    def encode_while_someone_writes(*args, **kwargs):
        data = real_encode(*args, **kwargs)
        with open("same.ugc", "wb") as handle:
            handle.write(b"the other run's file")
        return data

    monkeypatch.setattr(ugcodec.codec, "encode", encode_while_someone_writes)
    result = run("encode", "photo.png", "same.ugc")
    assert result.exit_code == 1 and "same.ugc exists" in result.output
    with open("same.ugc", "rb") as handle:
        assert handle.read() == b"the other run's file"
    assert sorted(os.listdir(".")) == ["photo.png", "same.ugc"]


def test_concurrent_exclusive_writers_exactly_one_wins(tmp_path):
    target = str(tmp_path / "out.bin")
    outcomes = []
    barrier = threading.Barrier(8)

    def writer(index):
        barrier.wait()
        try:
            files.write_file(target, bytes([index]) * 1000)
            outcomes.append(index)
        except files.OutputError:
            pass

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 1
    with open(target, "rb") as handle:
        assert handle.read() == bytes([outcomes[0]]) * 1000
    assert os.listdir(tmp_path) == ["out.bin"]


def test_an_input_is_never_an_output_even_with_force(workdir):
    Image.fromarray(PHOTO).save("pic.ugc", format="PNG")  # an image that happens to end in .ugc
    with open("pic.ugc", "rb") as handle:
        before = handle.read()
    result = run("encode", "pic.ugc", "photo.png", ".", "--force")
    assert result.exit_code == 1 and "input file" in result.output
    with open("pic.ugc", "rb") as handle:
        assert handle.read() == before
    assert run("encode", "photo.png", "photo.png", "--force").exit_code == 1
    assert run("decode", "pic.ugc", "pic.ugc", "--force").exit_code == 1


def test_several_inputs_need_a_folder_destination(workdir):
    Image.fromarray(PHOTO).save("second.png")
    result = run("encode", "photo.png", "second.png", "out.ugc")
    assert result.exit_code == 1 and "destination folder" in result.output
    assert not os.path.exists("out.ugc")
    with open("existing.ugc", "wb") as handle:
        handle.write(b"x")
    result = run("encode", "photo.png", "second.png", "existing.ugc")
    assert result.exit_code == 1 and "not a folder" in result.output


# 2. Bounded reads ------------------------------------------------------------------------


class CountingStream(io.RawIOBase):
    """An endless (or long) stream that counts what is read from it."""

    def __init__(self, prefix: bytes = b"", fill: bytes = b"\0"):
        self.prefix, self.fill, self.read_bytes = prefix, fill, 0

    def readable(self):
        return True

    def read(self, size=-1):
        assert size is not None and size >= 0, "an unbounded read"
        head = self.prefix[self.read_bytes : self.read_bytes + size]
        data = head + self.fill * (size - len(head))
        self.read_bytes += len(data)
        return data


def test_reading_stops_after_the_header_of_an_endless_stream():
    stream = CountingStream()
    with pytest.raises(FormatError, match="not a .ugc file"):
        read_container(stream)
    assert stream.read_bytes == HEADER_SIZE


def test_a_valid_header_bounds_the_read_to_its_declared_size(golden):
    stream = CountingStream(prefix=golden, fill=b"\x01")
    with pytest.raises(FormatError, match="unexpected bytes"):
        ugcodec.read_header(stream)
    assert stream.read_bytes == len(golden) + 1
    assert ugcodec.read_header(io.BytesIO(golden)).width == 96


def test_decode_of_dev_zero_is_refused_from_the_header(workdir):
    """`ugc decode - < /dev/zero` and a symlink to /dev/zero: refused after 32 bytes.
    Run as a process with a memory cap, so that an unbounded read fails instead of
    exhausting the machine."""
    if not os.path.exists("/dev/zero"):
        pytest.skip("needs /dev/zero")
    os.symlink("/dev/zero", "zero.ugc")
    cap = "import resource; resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30)); "
    command = cap + "import sys; from ugcodec.cli import main; sys.exit(main())"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for args, stdin in ((["decode", "-", "out.png"], "/dev/zero"), (["info", "zero.ugc"], None)):
        with open(stdin or os.devnull, "rb") as source:
            result = subprocess.run([sys.executable, "-c", command, *args], stdin=source,
                                    capture_output=True, text=True, env=env)
        assert result.returncode == 1, result.stderr
        assert "not a .ugc file" in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists("out.png")


def test_trailing_bytes_are_refused_from_streams_and_paths(workdir, golden):
    with open("long.ugc", "wb") as handle:
        handle.write(golden + b"\0")
    for source in ("long.ugc", pathlib.Path("long.ugc"), io.BytesIO(golden + b"\0"), golden + b"\0"):
        with pytest.raises(FormatError, match="after the end"):
            ugcodec.read_header(source)


def test_sections_larger_than_the_image_can_need_are_refused_from_the_header():
    header = bytearray(bomb(16, 16)[:HEADER_SIZE - 4])
    struct.pack_into(">I", header, 24, 1 << 30)
    header += struct.pack(">I", zlib.crc32(bytes(header)))
    stream = CountingStream(prefix=bytes(header))
    with pytest.raises(FormatError, match="more than a 16x16 image can need"):
        read_container(stream)
    assert stream.read_bytes == HEADER_SIZE


# 3. The pixel limit -----------------------------------------------------------------------


def test_decode_refuses_a_bomb_above_max_pixels_before_any_work(shipped_model):
    data = bomb(7071, 7071, shipped_model.model_id, shipped_model.fingerprint)
    assert len(data) == 36
    with pytest.raises(TooManyPixelsError, match="7071x7071"):
        ugcodec.decode(data, model=shipped_model, max_pixels=10_000_000)
    with pytest.raises(FormatError):  # a TooManyPixelsError is a FormatError for decoders
        ugcodec.parse_latents(data, model=shipped_model, max_pixels=1000)


def test_info_refuses_what_decode_refuses(workdir, shipped_model):
    with open("huge.ugc", "wb") as handle:
        handle.write(bomb(65535, 65535, shipped_model.model_id, shipped_model.fingerprint))
    result = run("info", "huge.ugc")
    assert result.exit_code == 1 and "limit" in result.output
    result = run("decode", "huge.ugc", "huge.png")
    assert result.exit_code == 1 and "limit" in result.output
    with open("other.ugc", "wb") as handle:
        handle.write(bomb(8, 8, shipped_model.model_id, b"\x01" * 8))
    result = run("info", "other.ugc")  # made by other weights: decode would refuse it
    assert result.exit_code == 1 and "weights" in result.output
    assert run("info", "huge.ugc", "--max-pixels", "0").exit_code == 0  # 0 lifts the limit


def test_encode_checks_the_size_from_the_header_before_decoding_pixels(monkeypatch, tiny_model):
    jpeg = image_bytes(Image.new("L", (3000, 2000), 128), "JPEG")
    assert len(jpeg) < 100_000

    def no_pixels(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_pixels)
    with pytest.raises(TooManyPixelsError, match="3000x2000"):
        ugcodec.encode(jpeg, model=tiny_model, max_pixels=5_000_000)
    monkeypatch.undo()
    result = CliRunner().invoke(main, ["encode", "-", "x.ugc", "--max-pixels", "1000"], input=jpeg)
    assert result.exit_code == 1 and "3000x2000" in result.output


def test_max_pixels_none_lifts_the_limit_and_arrays_are_checked_too(tiny_model):
    with pytest.raises(TooManyPixelsError):
        ugcodec.encode(PHOTO, model=tiny_model, max_pixels=100)
    assert ugcodec.encode(PHOTO, model=tiny_model, max_pixels=None)[:4] == b"\x89UGC"


# 4. Image input ---------------------------------------------------------------------------

CORPUS_IMAGES = sorted(pathlib.Path(ROOT, "tests", "fuzz_corpus", "images").glob("*"))


@pytest.mark.parametrize("path", CORPUS_IMAGES, ids=[path.name for path in CORPUS_IMAGES])
def test_fuzzed_images_load_or_raise_one_line_image_errors(path):
    """The corpus holds inputs on which Pillow raised TypeError, NotImplementedError,
    AttributeError ...; each must now be an ImageError of one line (or load)."""
    try:
        pixels, mode = load_image(path.read_bytes(), max_pixels=1 << 16)
    except ImageError as error:
        assert "\n" not in str(error)
    else:
        assert pixels.dtype == np.uint8 and mode in ("L", "RGB")


def test_pillow_failures_do_not_stop_a_folder_run(workdir):
    os.mkdir("photos")
    Image.fromarray(PHOTO).save("photos/good.png")
    with open(os.path.join(ROOT, "tests", "fuzz_corpus", "images", "tiff-typeerror.tif"), "rb") as handle:
        bad = handle.read()
    with open("photos/bad.tif", "wb") as handle:
        handle.write(bad)
    result = run("encode", "photos", "out", "--jobs", "1")
    assert result.exit_code == 1
    assert "encoded 1 of 2 images" in result.output and "photos/bad.tif" in result.output
    assert os.listdir("out") == ["good.ugc"]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_images_are_refused_not_padded(fmt):
    data = image_bytes(Image.fromarray(PHOTO), fmt)
    for cut in range(len(data) // 4, len(data) - 1, max(1, len(data) // 25)):
        with pytest.raises(ImageError):
            load_image(data[:cut])


def _frames(fmt: str, **options) -> bytes:
    frames = [Image.fromarray(PHOTO), Image.fromarray(255 - PHOTO)]
    return image_bytes(frames[0], fmt, save_all=True, append_images=frames[1:], **options)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "TIFF"])
def test_several_frames_are_refused_unless_the_first_is_asked_for(workdir, fmt):
    data = _frames(fmt)
    with pytest.raises(ImageError, match="2 frames"):
        load_image(data)
    first, _ = load_image(data, first_frame=True)
    single, _ = load_image(image_bytes(Image.open(io.BytesIO(data)).convert("RGB"), "PNG"))
    assert np.array_equal(first, single)
    with open("anim.bin", "wb") as handle:
        handle.write(data)
    assert run("encode", "anim.bin", "a.ugc").exit_code == 1
    assert run("encode", "anim.bin", "a.ugc", "--first-frame").exit_code == 0


def test_sixteen_bit_is_scaled_by_257_whatever_its_content():
    dark = np.full((8, 8), 200, np.uint16)  # all values <= 255: still 16-bit values
    brighter = dark.copy()
    brighter[0, 0] = 256
    dark_pixels, _ = load_image(image_bytes(Image.fromarray(dark)))
    bright_pixels, _ = load_image(image_bytes(Image.fromarray(brighter)))
    assert dark_pixels.max() == 1 and bright_pixels[1:, 1:].max() == 1  # 200 / 257 rounds to 1
    full = load_image(image_bytes(Image.fromarray(np.full((4, 4), 65535, np.uint16))))[0]
    assert full.min() == 255


def test_float_images_are_read_as_zero_to_one():
    values = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    pixels, mode = load_image(image_bytes(Image.fromarray(values, "F"), "TIFF"))
    assert mode == "L" and np.array_equal(pixels[:, :, 0], np.round(values * 255).astype(np.uint8))
    with pytest.raises(ImageError, match=r"outside \[0, 1\]"):
        load_image(image_bytes(Image.fromarray(values * 255, "F"), "TIFF"))


# 5. Interrupted writes ----------------------------------------------------------------------


def test_ctrl_c_during_the_write_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(descriptor):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.write_file(str(tmp_path / "out.ugc"), b"data")
    assert os.listdir(tmp_path) == []


def test_sigterm_during_the_write_removes_the_temporary_file(workdir):
    """A real SIGTERM, delivered while the output is being written (after encoding)."""
    script = (
        "import os, signal, sys\n"
        "import ugcodec.files as files\n"
        "real = files.os.fsync\n"
        "def fsync(fd):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    real(fd)\n"
        "files.os.fsync = fsync\n"
        "from ugcodec.cli import main\n"
        "sys.exit(main(['encode', 'photo.png', 'out.ugc']))\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert sorted(os.listdir(".")) == ["photo.png"]


_BLOCKED_WRITER = """
import os, sys
import ugcodec.files as files
real_write = os.write
def write(descriptor, data):
    if len(data) <= 1 << 20:
        return real_write(descriptor, data)
    written = real_write(descriptor, data[: 1 << 20])  # the first MiB reaches the file
    print("writing", flush=True)
    os.read(0, 1)  # and the writer waits here until the test kills it
    return written
files.os.write = write
folder, overwrite = os.path.dirname(sys.argv[1]), sys.argv[2] == "1"
files.write_file(os.path.join(folder, "first.ugc"), b"a small output, complete")  # as in a folder run
files.write_file(sys.argv[1], b"x" * (16 << 20), overwrite=overwrite)
"""


def _unnamed_files_here(folder) -> bool:
    descriptor = files._open_unnamed(str(folder))
    if descriptor is None:
        return False
    os.close(descriptor)
    return True


@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "force"])
def test_sigkill_during_the_write_leaves_nothing(tmp_path, overwrite):
    """A real SIGKILL while a large output is half written: no temporary file remains
    (Linux O_TMPFILE), and an output being replaced keeps its old content."""
    if not _unnamed_files_here(tmp_path):
        pytest.skip("no unnamed temporary files (O_TMPFILE) on this platform or filesystem")
    target = tmp_path / "out.ugc"
    if overwrite:
        target.write_bytes(b"the old file")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen([sys.executable, "-c", _BLOCKED_WRITER, str(target), str(int(overwrite))],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert process.stdout.readline() == b"writing\n"
        process.kill()
    finally:
        process.wait()
        process.stdin.close()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    assert sorted(os.listdir(tmp_path)) == (["first.ugc", "out.ugc"] if overwrite else ["first.ugc"])
    if overwrite:
        assert target.read_bytes() == b"the old file"


def test_outputs_go_through_unnamed_files_where_they_exist(tmp_path, monkeypatch):
    if not _unnamed_files_here(tmp_path):
        pytest.skip("no unnamed temporary files (O_TMPFILE) on this platform or filesystem")

    def must_not_run(*args):
        raise AssertionError("wrote through a named temporary file")

    monkeypatch.setattr(files, "_write_named", must_not_run)
    files.write_file(str(tmp_path / "a"), b"x")
    files.write_file(str(tmp_path / "a"), b"y", overwrite=True)
    with pytest.raises(files.OutputError, match="exists"):
        files.write_file(str(tmp_path / "a"), b"z")
    assert (tmp_path / "a").read_bytes() == b"y" and os.listdir(tmp_path) == ["a"]


def _no_unnamed_files(folder, *args):
    return None


def _unnamed_files_cannot_be_named(descriptor, folder_descriptor, name):
    raise OSError(errno.EXDEV, "Invalid cross-device link")


@pytest.mark.parametrize("refusal", [_no_unnamed_files, _unnamed_files_cannot_be_named], ids=["open", "link"])
def test_without_unnamed_files_a_hidden_temporary_file_does_the_same(tmp_path, monkeypatch, refusal):
    """Other systems and filesystems: the same exclusive creation, replacement and errors."""
    monkeypatch.setattr(files, "_NO_UNNAMED", set())
    monkeypatch.setattr(files, "_open_unnamed" if refusal is _no_unnamed_files else "_name_unnamed", refusal)
    target = str(tmp_path / "out.ugc")
    files.write_file(target, b"first")
    with pytest.raises(files.OutputError, match=r"out.ugc exists \(use --force to overwrite it\)"):
        files.write_file(target, b"second")
    files.write_file(target, b"third", overwrite=True)
    assert (tmp_path / "out.ugc").read_bytes() == b"third" and os.listdir(tmp_path) == ["out.ugc"]
    assert files._NO_UNNAMED == {os.stat(tmp_path).st_dev}  # the refusal is remembered


def test_data_reaches_the_disk_before_the_name(tmp_path, monkeypatch):
    events = []
    real_fsync, real_link, real_replace = files.os.fsync, files.os.link, files.os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(files.os, "link", lambda *a, **k: (events.append("name"), real_link(*a, **k)))
    monkeypatch.setattr(files.os, "replace", lambda *a, **k: (events.append("name"), real_replace(*a, **k)))
    files.write_file(str(tmp_path / "a"), b"x")
    files.write_file(str(tmp_path / "a"), b"y", overwrite=True)
    assert "fsync" in events and events.index("fsync") < events.index("name")
    assert (tmp_path / "a").read_bytes() == b"y"


def test_an_unwritable_destination_is_found_before_the_work(workdir, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("encoded although the output cannot be written")

    monkeypatch.setattr(ugcodec.codec, "encode", must_not_run)
    result = run("encode", "photo.png", "/proc/out.ugc")  # /proc takes no new files, even from root
    assert result.exit_code == 1 and "/proc/out.ugc" in result.output
    result = run("encode", "photo.png", "nowhere/out.ugc")
    assert result.exit_code == 1 and "no such folder: nowhere" in result.output


def test_write_errors_name_the_destination_not_the_temporary_file(tmp_path, monkeypatch):
    def disk_full(descriptor, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "write", disk_full)
    target = str(tmp_path / "out.ugc")
    with pytest.raises(UgcError) as caught:
        files.write_file(target, b"data")
    assert target in str(caught.value) and ".part" not in str(caught.value)
    assert "No space left" in str(caught.value)
    assert os.listdir(tmp_path) == []


# 6. API input types, model argument, weights files ------------------------------------------


def test_encode_accepts_every_documented_input_type(tiny_model, tmp_path):
    png = image_bytes(Image.fromarray(PHOTO))
    path = tmp_path / "photo.png"
    path.write_bytes(png)
    expected = ugcodec.encode(PHOTO, 1, model=tiny_model)
    sources = [str(path), path, png, bytearray(png), memoryview(png), io.BytesIO(png),
               Image.fromarray(PHOTO), torch.from_numpy(PHOTO).permute(2, 0, 1).contiguous()]
    for source in sources:
        assert ugcodec.encode(source, 1, model=tiny_model) == expected, type(source)


@pytest.mark.parametrize("bad", [None, 3.5, ["photo.png"], np.zeros((4, 4, 3), np.float32),
                                 torch.zeros((3, 4, 4))])
def test_encode_of_another_type_is_a_type_error_naming_what_is_accepted(tiny_model, bad):
    with pytest.raises(TypeError, match="PIL image"):
        ugcodec.encode(bad, model=tiny_model)


def test_decode_accepts_bytes_paths_and_file_objects(tiny_model, tmp_path):
    data = ugcodec.encode(PHOTO, 1, model=tiny_model)
    path = tmp_path / "photo.ugc"
    path.write_bytes(data)
    expected = np.asarray(ugcodec.decode(data, model=tiny_model))
    for source in (str(path), path, bytearray(data), memoryview(data), io.BytesIO(data), open(path, "rb")):
        assert np.array_equal(np.asarray(ugcodec.decode(source, model=tiny_model)), expected), type(source)
    for bad in (None, 12, ["photo.ugc"]):
        with pytest.raises(TypeError, match="path"):
            ugcodec.decode(bad, model=tiny_model)
    with pytest.raises(TypeError, match="binary mode"):
        ugcodec.decode(io.StringIO("text"), model=tiny_model)
    with pytest.raises(UgcError, match="no such file"):
        ugcodec.decode(str(tmp_path / "missing.ugc"), model=tiny_model)


def test_model_argument_errors_are_clean(tiny_model):
    data = ugcodec.encode(PHOTO, 1, model=tiny_model)
    with pytest.raises(UgcError, match="weights file not found: .*foo"):
        ugcodec.decode(data, model="foo")
    with pytest.raises(TypeError, match="CodecModel"):
        ugcodec.decode(data, model=42)
    assert ugcodec.decode(data, model=tiny_model.path).size == (56, 40)


def _clone(value):
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    return value.clone() if isinstance(value, torch.Tensor) else value


def _entries(bundle, prefix=()):
    for key, value in bundle.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from _entries(value, prefix + (key,))


def _damage(bundle, rng):
    """One random damage: an entry removed, replaced by a wrong type, a tensor cut,
    lengthened, retyped or with one value changed."""
    path = rng.choice(list(_entries(bundle)))
    parent = bundle
    for key in path[:-1]:
        parent = parent[key]
    value, kind = parent[path[-1]], rng.randrange(5)
    if kind == 0:
        del parent[path[-1]]
    elif kind == 1:
        parent[path[-1]] = rng.choice([None, "x", 3, -1, 2**40, 1.5, [1, 2], {}])
    elif isinstance(value, torch.Tensor) and value.dim() >= 1 and value.numel() > 1:
        if kind == 2:
            parent[path[-1]] = value.flatten()[: rng.randrange(value.numel())]
        elif kind == 3:
            parent[path[-1]] = torch.cat([value, value[:1]])
        else:
            flat = value.flatten().to(torch.float64 if value.is_floating_point() else torch.int64)
            flat[rng.randrange(flat.numel())] = rng.choice([0, -1, 2**31 - 1, 10**6] if not value.is_floating_point()
                                                           else [float("nan"), 1e30, -1.0])
            parent[path[-1]] = flat.reshape(value.shape)


def test_damaged_weights_raise_ugc_errors_never_internal_ones(tmp_path):
    """A small fuzz of the weights loader: every damaged bundle loads into a model that
    codes, or is refused with a UgcError (no KeyError, IndexError, OverflowError ...)."""
    import random

    from conftest import TINY_CONFIG
    from ugcodec.models import UGHyperprior
    from tools.export import export_bundle
    from ugcodec.weights import model_from_bundle

    torch.manual_seed(5)
    base = export_bundle(UGHyperprior(TINY_CONFIG).eval())
    rng = random.Random(28)
    outcomes = {"refused": 0, "loaded": 0}
    for case in range(120):
        bundle = _clone(base)
        for _ in range(rng.randint(1, 2)):
            _damage(bundle, rng)
        try:
            model = model_from_bundle(bundle, f"case {case}")
            ugcodec.decode(ugcodec.encode(PHOTO[:20, :24], 1, model=model), model=model)
            outcomes["loaded"] += 1
        except UgcError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 30 and outcomes["loaded"] > 5, outcomes
    with open(tmp_path / "garbage.pt", "wb") as handle:
        handle.write(b"PK\x03\x04 not a zip")
    with pytest.raises(UgcError, match="cannot read weights"):
        ugcodec.load_model(str(tmp_path / "garbage.pt"))


# 7. The test suite on a fresh machine --------------------------------------------------------


def _imported_modules(path):
    """Top-level modules a file imports, except those inside ``try: ... except ImportError``."""
    import ast

    tree = ast.parse(pathlib.Path(path).read_text())
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(handler.type, ast.Name) and handler.type.id in ("ImportError", "ModuleNotFoundError")
            for handler in node.handlers
        ):
            guarded.update(id(child) for statement in node.body for child in ast.walk(statement))
    names = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_the_test_extra_installs_everything_the_suite_imports():
    """Every third-party module imported by the tests, or by the scripts they load, is in
    install_requires or the [test] extra of setup.cfg (imports guarded by ImportError aside)."""
    import configparser
    import re

    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))

    def names(text):
        return {re.split(r"[<>=!~\[; ]", line.strip())[0].lower().replace("_", "-")
                for line in text.splitlines() if line.strip() and not line.strip().startswith("#")}

    declared = names(config["options"]["install_requires"]) | names(config["options.extras_require"]["test"])
    distribution = {"PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn", "open_clip": "open-clip-torch",
                    "yaml": "pyyaml", "cv2": "opencv-python"}
    local = {"ugcodec", "tools", "benchmarks", "conftest", "tests"} | {
        path.stem for folder in ("tests", "tools", "benchmarks") for path in pathlib.Path(ROOT, folder).glob("*.py")}
    sources = list(pathlib.Path(ROOT, "tests").glob("*.py"))
    for test in sources[:]:
        sources += [pathlib.Path(ROOT, script) for script in re.findall(r"load_script\(\s*\"([^\"]+)\"", test.read_text())]
    sources += [pathlib.Path(ROOT, "benchmarks", "photos.py")]  # loaded through the benchmark tests
    missing = {}
    for source in sources:
        for module in _imported_modules(source) - set(sys.stdlib_module_names) - local:
            name = distribution.get(module, module).lower().replace("_", "-")
            if name not in declared:
                missing.setdefault(name, source.name)
    assert not missing, f"imported by the tests but not installed by pip install -e .[test]: {missing}"


def test_no_test_has_a_timing_deadline():
    """Hypothesis deadlines are timing assertions; under load they fail working code."""
    import re

    offenders = [path.name for path in pathlib.Path(ROOT, "tests").glob("*.py")
                 if re.search(r"deadline\s*=\s*(?!None)", path.read_text())]
    assert offenders == []
