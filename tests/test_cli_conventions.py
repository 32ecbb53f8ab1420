"""The command line's conventions (cwebp / avifenc / cjxl as anchors): --quiet and
--verbose, decode and info over several files and folders, the quality of decoded JPEG
and WebP outputs, usage errors that exit 2 naming the argument, and progress bars that
follow the work to the written output."""
import io
import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from ugcodec import cli
from ugcodec.cli import main

from conftest import ROOT, make_photo_like


@pytest.fixture()
def workdir(tmp_path, monkeypatch, tiny_model):
    """Three photos in photos/, one more as photo.png, and tiny.pt: the tiny model's weights."""
    monkeypatch.chdir(tmp_path)
    os.mkdir("photos")
    for index in range(3):
        Image.fromarray(make_photo_like(40 + index, 56, seed=index)).save(f"photos/p{index}.png")
    Image.fromarray(make_photo_like(48, 70)).save("photo.png")
    os.symlink(tiny_model.path, "tiny.pt")
    return tmp_path


def ugc(*args, **kwargs):
    return CliRunner().invoke(main, [*args], **kwargs)


def coded(*args):
    """Runs ugc with the tiny weights and checks it succeeded."""
    result = ugc(*args, "--weights", "tiny.pt")
    assert result.exit_code == 0, result.output
    return result


def encoded_folder():
    coded("encode", "photos", "coded", "-q", "1", "--quiet")
    return sorted(os.listdir("coded"))


# --quiet and --verbose -------------------------------------------------------------------


def test_quiet_prints_nothing_but_errors(workdir):
    result = coded("encode", "photo.png", "photo.ugc", "--quiet")
    assert result.output == "" and os.path.exists("photo.ugc")
    assert coded("--quiet", "decode", "photo.ugc", "out.png").output == ""
    assert coded("encode", "photos", "coded", "--quiet").output == ""
    failed = ugc("encode", "photo.png", "photo.ugc", "--quiet", "--weights", "tiny.pt")
    assert failed.exit_code == 1 and failed.output.startswith("ugc: error: photo.ugc exists")


def test_default_output_is_one_summary_line(workdir):
    lines = coded("encode", "photo.png", "photo.ugc").output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("photo.ugc: 70x48 RGB") and "bpp" in lines[0]


def test_verbose_prints_the_details_of_every_file(workdir, tiny_model):
    fingerprint = tiny_model.fingerprint.hex()
    line = coded("encode", "photo.png", "photo.ugc", "-v").output.strip()
    assert re.fullmatch(rf"photo\.png \(\d+ bytes\) -> photo\.ugc: 70x48 RGB, quality 3, \d+ bytes, "
                        rf"[\d.]+ bpp, [\d.]+ s, weights {fingerprint}", line), line
    line = coded("--verbose", "decode", "photo.ugc", "out.jpg").output.strip()
    assert re.fullmatch(rf"photo\.ugc \(\d+ bytes, quality 3\) -> out\.jpg: 70x48 RGB JPEG at quality 90, "
                        rf"\d+ bytes, for human, [\d.]+ s, weights {fingerprint}", line), line
    lines = coded("encode", "photos", "coded", "-v").output.splitlines()
    assert sorted(line.split(" ")[0] for line in lines[:-1]) == [f"photos/p{index}.png" for index in range(3)]
    assert lines[-1] == "encoded 3 of 3 images into coded"
    assert "checked against tiny.pt" in coded("info", "photo.ugc", "-v").output


def test_quiet_and_verbose_together_are_a_usage_error(workdir):
    result = ugc("--quiet", "encode", "photo.png", "photo.ugc", "-v")
    assert result.exit_code == 2 and "--quiet and --verbose" in result.output
    assert not os.path.exists("photo.ugc")


# decode and info over several files and folders ------------------------------------------------


def test_decode_a_folder_into_a_folder_and_next_to_the_sources(workdir):
    names = encoded_folder()
    result = coded("decode", "coded", "decoded", "--for", "machine")
    assert result.output.strip() == "decoded 3 of 3 files into decoded"
    assert sorted(os.listdir("decoded")) == [name.replace(".ugc", ".machine.png") for name in names]
    result = coded("decode", "coded/p0.ugc", "coded/p*.ugc")  # a file and a pattern naming it again
    assert result.output.strip() == "decoded 3 of 3 files next to their sources"
    assert os.path.exists("coded/p2.human.png")
    with Image.open("decoded/p1.machine.png") as image:
        assert image.size == (56, 41)


def test_decode_many_keeps_going_past_bad_and_existing_files(workdir):
    encoded_folder()
    with open("coded/p0.ugc", "rb") as handle:
        data = handle.read()
    with open("coded/broken.ugc", "wb") as handle:
        handle.write(data[:-6])
    os.mkdir("decoded")
    with open("decoded/p1.human.png", "wb") as handle:
        handle.write(b"keep me")
    result = ugc("decode", "coded", "decoded", "--weights", "tiny.pt")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "decoded 2 of 4 files into decoded"
    assert lines[1].startswith("ugc: error: coded/broken.ugc: file truncated")
    assert lines[2].startswith("ugc: error: coded/p1.ugc: decoded/p1.human.png exists (use --force")
    with open("decoded/p1.human.png", "rb") as handle:
        assert handle.read() == b"keep me"
    assert sorted(os.listdir("decoded")) == ["p0.human.png", "p1.human.png", "p2.human.png"]
    again = ugc("decode", "coded/p*.ugc", "decoded", "--force", "--weights", "tiny.pt")
    assert again.exit_code == 0 and again.output.strip() == "decoded 3 of 3 files into decoded"


def test_decode_many_refuses_clashing_outputs_and_file_destinations_before_any_work(workdir):
    encoded_folder()
    os.mkdir("other")
    os.link("coded/p0.ugc", "other/p0.ugc")
    result = ugc("decode", "coded", "other", "out", "--weights", "tiny.pt")
    assert result.exit_code == 1 and "coded/p0.ugc and other/p0.ugc" in result.output
    assert not os.path.exists("out")
    result = ugc("decode", "coded", "out.png", "--weights", "tiny.pt")
    assert result.exit_code == 1 and "destination folder" in result.output
    assert not os.path.exists("out.png") and not os.path.exists("coded/p0.human.png")


def test_decode_one_file_into_a_folder(workdir):
    coded("encode", "photo.png", "photo.ugc")
    os.mkdir("out")
    coded("decode", "photo.ugc", "out")
    assert os.listdir("out") == ["photo.human.png"]


def test_info_lists_several_files_and_reports_bad_ones(workdir):
    names = encoded_folder()
    with open("coded/broken.ugc", "wb") as handle:
        handle.write(b"\x89UGC not really")
    result = ugc("info", "coded", "--json", "--weights", "tiny.pt")
    assert result.exit_code == 1
    assert "ugc: error: coded/broken.ugc:" in result.stderr
    fields = json.loads(result.stdout)
    assert [entry["file"] for entry in fields] == [f"coded/{name}" for name in names]
    assert [entry["height"] for entry in fields] == [40, 41, 42]
    text = ugc("info", "coded/p0.ugc", "coded/p1.ugc", "--weights", "tiny.pt")
    assert text.exit_code == 0
    assert text.stdout.startswith("coded/p0.ugc:\n  format version")
    assert "\ncoded/p1.ugc:\n" in text.stdout
    assert text.stderr.strip() == "2 of 2 files checked against tiny.pt"


# The quality of decoded JPEG and WebP outputs -----------------------------------------------


@pytest.mark.parametrize("extension", ["jpg", "webp"])
def test_output_quality_sets_the_lossy_outputs_quality(workdir, extension):
    def decoded(*args):  # the shipped weights: the tiny random ones decode a flat picture
        assert ugc("decode", *args).exit_code == 0

    assert ugc("encode", "photo.png", "photo.ugc").exit_code == 0
    sizes = {}
    for quality in ("10", "95"):
        decoded("photo.ugc", f"q{quality}.{extension}", "--output-quality", quality)
        sizes[quality] = os.path.getsize(f"q{quality}.{extension}")
    assert sizes["10"] < sizes["95"]
    decoded("photo.ugc", f"default.{extension}")
    decoded("photo.ugc", f"ninety.{extension}", "--output-quality", "90")
    with open(f"default.{extension}", "rb") as first, open(f"ninety.{extension}", "rb") as second:
        assert first.read() == second.read()  # the documented default


def test_format_names_the_outputs_of_a_folder(workdir):
    encoded_folder()
    coded("decode", "coded", "decoded", "--format", "webp", "--output-quality", "50")
    assert sorted(os.listdir("decoded")) == [f"p{index}.human.webp" for index in range(3)]
    with Image.open("decoded/p0.human.webp") as image:
        assert image.format == "WEBP"


# Usage errors: exit 2, the argument named ----------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (("encode", "photo.png", "x.ugc", "-q", "4"),  # the tiny weights have 3 levels
         "Invalid value for '-q' / '--quality': 4 is not a level of these weights: use 1 to 3."),
        (("encode", "photo.png", "x.ugc", "--quality", "0"), "Invalid value for '-q' / '--quality'"),
        (("encode", "photo.png", "x.ugc", "-q", "high"), "Invalid value for '-q' / '--quality'"),
        (("encode", "photo.png"), "Missing argument 'DESTINATION'."),
        (("encode",), "Missing argument 'SOURCES...'."),
        (("decode",), "Missing argument 'SOURCES...'."),
        (("info",), "Missing argument 'SOURCES...'."),
        (("decode", "photo.ugc", "x.png", "--for", "robots"), "Invalid value for '--for' / '--preference'"),
        (("decode", "photo.ugc", "x.xyz"), "Invalid value for 'DESTINATION': cannot tell the image format"),
        (("decode", "photo.ugc", "x.png", "--output-quality", "80"),
         "Invalid value for '--output-quality': PNG output is lossless"),
        (("decode", "photo.ugc", "--output-quality", "80"), "Invalid value for '--output-quality'"),
        (("decode", "photo.ugc", "x.jpg", "--output-quality", "101"), "Invalid value for '--output-quality'"),
        (("decode", "photo.ugc", "x.png", "--format", "jpg"), "Invalid value for '--format'"),
        (("decode", "photo.ugc", "x.png", "--format", "gif"), "Invalid value for '--format'"),
        (("encode", "photo.png", "x.ugc", "--refine", "-1"), "Invalid value for '-r' / '--refine'"),
    ],
)
def test_usage_errors_exit_2_and_name_the_argument(workdir, args, message):
    coded("encode", "photo.png", "photo.ugc", "--quiet")
    before = sorted(os.listdir("."))
    result = ugc(*args, "--weights", "tiny.pt")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert sorted(os.listdir(".")) == before


def test_runtime_failures_keep_exit_code_1(workdir):
    result = ugc("decode", "photo.png", "out.png", "--weights", "tiny.pt")
    assert result.exit_code == 1 and result.output.startswith("ugc: error:")


def test_help_documents_the_exit_codes_and_the_new_options():
    for command in ([], ["encode"], ["decode"], ["info"]):
        text = ugc(*command, "--help").output
        assert "Exit status: 0 success; 1 a file failed" in text and "2 usage error" in " ".join(text.split())
        assert "--quiet" in text and "--verbose" in text
    decode_help = ugc("decode", "--help").output
    assert "--output-quality" in decode_help and "[default: 90]" in " ".join(decode_help.split())
    assert "--format" in decode_help


# --threads: how many torch threads, never which symbols ----------------------------------------


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_threads_must_be_a_positive_count(workdir, value):
    coded("encode", "photo.png", "photo.ugc")
    for command in (["encode", "photo.png", "again.ugc"], ["decode", "photo.ugc", "out.png"]):
        result = ugc(*command, "--threads", value, "--weights", "tiny.pt")
        assert result.exit_code == 2 and "Invalid value for '--threads'" in result.output, result.output
    assert not os.path.exists("again.ugc") and not os.path.exists("out.png")


def test_threads_are_refused_with_ray(workdir):
    result = ugc("encode", "photos", "coded", "--ray", "--threads", "2", "--weights", "tiny.pt")
    assert result.exit_code == 2 and "'--threads'" in result.output and "Ray" in result.output


def test_threads_set_the_count_for_the_file_and_the_symbols_stay(workdir, monkeypatch, tiny_model):
    import torch

    import ugcodec
    from ugcodec.codec import torch_threads
    from ugcodec.settings import available_cores

    calls = []
    set_num_threads = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda count: (calls.append(count), set_num_threads(count)))
    before = torch.get_num_threads()
    coded("encode", "photo.png", "photo.ugc")
    assert calls == [available_cores(), before]  # every core by default, then what it was
    for threads in (1, 2):
        calls.clear()
        coded("encode", "photo.png", f"t{threads}.ugc", "--threads", str(threads))
        coded("decode", "photo.ugc", f"t{threads}.png", "--threads", str(threads))
        assert calls == [threads, before] * 2
    assert torch.get_num_threads() == before
    parsed = {}
    for threads in (1, 2):
        with torch_threads(threads):
            parsed[threads] = ugcodec.parse_latents("photo.ugc", model=tiny_model)
    for field in ("z", "y", "scale_index", "mu"):
        assert torch.equal(getattr(parsed[1], field), getattr(parsed[2], field)), field


def test_workers_run_one_thread_each_unless_told(workdir, monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    cli._worker_start("tiny.pt")
    cli._worker_start("tiny.pt", 3)
    assert calls == [1, 3]


def test_api_threads_are_checked_and_restored(tiny_model):
    import numpy as np
    import torch

    import ugcodec

    image = make_photo_like(40, 56)
    before = torch.get_num_threads()
    data = ugcodec.encode(image, 1, tiny_model, threads=1)
    assert torch.get_num_threads() == before
    assert np.array_equal(np.asarray(ugcodec.decode(data, model=tiny_model, threads=2)),
                          np.asarray(ugcodec.decode(data, model=tiny_model, threads=1)))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            ugcodec.encode(image, 1, tiny_model, threads=bad)
        with pytest.raises(ValueError, match="threads"):
            ugcodec.decode(data, model=tiny_model, threads=bad)
    assert torch.get_num_threads() == before


# Progress that reaches its end with the written output -----------------------------------------


class RecordingBar(cli.FileBar):
    """A FileBar that records what the codec reported and where the bar stood when the
    command called it done."""

    def __init__(self, target):
        super().__init__("test", enabled=True, file=io.StringIO())
        self.target = target
        self.reports = []
        self.at_finish = None

    def __call__(self, done, total):
        self.reports.append((done, total))
        super().__call__(done, total)

    def finish(self):
        self.at_finish = (self.bar.n, self.bar.total, os.path.exists(self.target))
        super().finish()


@pytest.mark.parametrize("task", ["encode", "decode"])
def test_one_files_bar_reaches_its_end_only_after_the_output_is_written(workdir, tiny_model, task):
    coded("encode", "photo.png", "photo.ugc")
    if task == "encode":
        bar = RecordingBar("again.ugc")
        options = dict(quality=2, refine=1, max_pixels=None, first_frame=False, strip=False)
        cli._encode_file("photo.png", "again.ugc", tiny_model, False, bar, **options)
    else:
        bar = RecordingBar("out.png")
        options = dict(preference="human", image_format="PNG", output_quality=None, max_pixels=None)
        cli._decode_file("photo.ugc", "out.png", tiny_model, False, bar, **options)
    codec_total = bar.reports[-1][1]
    assert bar.reports[-1][0] == codec_total and len(bar.reports) >= 3
    done, total, written = bar.at_finish
    assert done == codec_total < total and written  # the codec's end is not the bar's end
    assert bar.bar.n == bar.bar.total  # ... which the written output is
    if task == "decode":
        assert total - codec_total == bar.after > 1


def _run_on_a_terminal(args):
    """``python -m ugcodec.cli ARGS`` with stderr on a 120-column pseudo-terminal (where the
    bars show), redrawn at every update; returns the exit code and what the terminal got."""
    import fcntl
    import pty
    import struct
    import termios

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    environment = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                       TQDM_MININTERVAL="0")
    process = subprocess.Popen([sys.executable, "-m", "ugcodec.cli", *args], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=terminal, env=environment)
    os.close(terminal)
    received = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(controller)
    return process.wait(timeout=300), received.decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_bars_show_on_a_terminal_and_advance_through_the_work(workdir):
    coded("encode", "photo.png", "photo.ugc")
    code, shown = _run_on_a_terminal(["decode", "photo.ugc", "out.png", "--weights", "tiny.pt"])
    assert code == 0, shown
    percentages = [int(value) for value in re.findall(r"photo\.ugc:\s+(\d+)%", shown)]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    assert len(set(percentages)) >= 3, shown  # parsing, synthesis, writing
    assert "out.png: 70x48 RGB (human)" in shown
    code, shown = _run_on_a_terminal(["encode", "photos", "coded", "--weights", "tiny.pt", "-j", "1"])
    assert code == 0 and "3/3" in shown and "p2.png" in shown, shown  # files done, and the current one
    code, shown = _run_on_a_terminal(["decode", "photo.ugc", "quiet.png", "--weights", "tiny.pt", "--quiet"])
    assert code == 0 and shown == ""
