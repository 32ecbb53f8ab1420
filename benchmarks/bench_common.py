"""Helpers shared by the benchmark scripts: codecs, metrics, tables, output files.

Codecs are run in memory: each returns the compressed size in bytes and the decoded
uint8 pixels. ugc runs through :func:`ugcodec.codec.encode_latents`, then
:func:`~ugcodec.codec.parse_latents` once and :func:`~ugcodec.codec.decode_pixels` once per
preference, so one file serves both the human and the machine decoding. Both run in
float32 (the reference decoder's pixels, a float32 encoder's file), so quality figures do
not depend on whether the CPU has AMX; ``benchmarks/precision.py`` measures what
bfloat16 changes.
"""
from __future__ import annotations

import io
import json
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import PIL
from PIL import Image, features

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results")

# compressai (imported by ugcodec) warns about torch.jit.script at import time.
warnings.filterwarnings("ignore", category=FutureWarning)


# --------------------------------------------------------------------------- metrics
def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB over all RGB samples, peak 255."""
    mse = np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    """MS-SSIM (pytorch_msssim, data range 255) of two uint8 HxWx3 images.

    pytorch_msssim needs the shorter side > (win_size - 1) * 16 (160 for the standard
    11-tap window). Smaller images use the largest odd window that fits (at least 3);
    below 33 px it falls back to single-scale SSIM.
    """
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim, ssim as _ssim

    x = torch.from_numpy(np.array(reference)).permute(2, 0, 1)[None].double()
    y = torch.from_numpy(np.array(decoded)).permute(2, 0, 1)[None].double()
    side = min(reference.shape[:2])
    win = 11
    while win > 3 and side <= (win - 1) * 16:
        win -= 2
    with torch.no_grad():
        if side > (win - 1) * 16:
            return float(_ms_ssim(x, y, data_range=255, win_size=win))
        return float(_ssim(x, y, data_range=255, win_size=min(win, side - (1 - side % 2))))


def msssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, ``-10 log10(1 - value)`` (used for BD-rate)."""
    return float(-10.0 * np.log10(max(1.0 - value, 1e-10)))


def command_line(benchmark: str) -> str:
    """The command that ran this benchmark, as reports record it:
    ``python -m benchmarks.<benchmark>`` and its arguments."""
    return " ".join(["python", "-m", f"benchmarks.{benchmark}"] + sys.argv[1:])


def psnr_at(curve: Sequence[dict], bpp: float) -> Optional[float]:
    """PSNR of a rate–distortion curve (dicts with ``bpp`` and ``psnr``) at ``bpp``, linear
    in log-bpp between its points; None outside the curve's range."""
    points = sorted((math.log(p["bpp"]), p["psnr"]) for p in curve)
    if not points or not points[0][0] <= math.log(bpp) <= points[-1][0]:
        return None
    return float(np.interp(math.log(bpp), *zip(*points)))


# --------------------------------------------------------------------------- codecs
@dataclass(frozen=True)
class PillowCodec:
    """A Pillow format and its quality sweep (``settings``, ascending rate)."""

    name: str
    format: str
    settings: Tuple[float, ...]
    setting_name: str
    save_options: Callable[[float], dict]

    def roundtrip(self, image: np.ndarray, setting: float) -> Tuple[int, np.ndarray]:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, self.format, **self.save_options(setting))
        data = buffer.getvalue()
        decoded = Image.open(io.BytesIO(data))
        decoded.load()
        return len(data), np.asarray(decoded.convert("RGB"))


def _jpeg(q: float) -> dict:
    return {"quality": int(q), "subsampling": "4:2:0", "optimize": True}


def _webp(q: float) -> dict:
    return {"quality": int(q), "method": 6}


def _avif(q: float) -> dict:
    return {"quality": int(q), "subsampling": "4:2:0", "speed": 6, "max_threads": 1}


def _jpeg2000(ratio: float) -> dict:
    return {"quality_mode": "rates", "quality_layers": [float(ratio)], "irreversible": True}


_JPEG_Q = (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
_WEBP_Q = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
_AVIF_Q = (10, 20, 30, 40, 50, 60, 70, 80, 90)
_J2K_RATIO = (300, 200, 120, 80, 50, 32, 20, 12, 8)

PILLOW_CODECS: Dict[str, PillowCodec] = {
    "jpeg": PillowCodec("jpeg", "JPEG", _JPEG_Q, "quality", _jpeg),
    "webp": PillowCodec("webp", "WEBP", _WEBP_Q, "quality", _webp),
    "avif": PillowCodec("avif", "AVIF", _AVIF_Q, "quality", _avif),
    "jpeg2000": PillowCodec("jpeg2000", "JPEG2000", _J2K_RATIO, "ratio", _jpeg2000),
}
_FEATURE = {"jpeg": "jpg", "webp": "webp", "avif": "avif", "jpeg2000": "jpg_2000"}


def available_pillow_codecs(names: Sequence[str] = tuple(PILLOW_CODECS)) -> Tuple[List[PillowCodec], List[str]]:
    """The codecs this Pillow can write, and a note for each one it cannot."""
    found, missing = [], []
    for name in names:
        try:
            ok = bool(features.check(_FEATURE[name]))
        except Exception:  # an unknown feature name in an old Pillow
            ok = False
        if ok:
            found.append(PILLOW_CODECS[name])
        else:
            missing.append(f"{name}: not supported by this Pillow ({PIL.__version__}); skipped")
    return found, missing


def add_photo_arguments(parser) -> None:
    """The options of a benchmark that runs one ugc model over a photo set: ``--photos``,
    ``--photo-set``, ``--max-size``, ``--weights`` and ``--out``."""
    from .photos import PHOTO_SETS

    parser.add_argument("--photos", type=int, default=None, help="use at most N photos (default: all)")
    parser.add_argument("--photo-set", default="standard", choices=PHOTO_SETS, help="evaluation photos (see photos.py)")
    parser.add_argument("--max-size", default="768x512", help="shrink/center-crop photos to at most WxH ('0': full size)")
    parser.add_argument("--weights", default=None, help="ugc weights file (default: the shipped weights)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: benchmarks/results)")


def photos_and_model(args) -> "tuple[int, list, object]":
    """The start of a benchmark that runs one ugc model over a photo set (the options of
    :func:`add_photo_arguments` and ``--threads``): sets the threads, loads the photos and
    the model, and says which; returns ``(threads, photos, model)``."""
    from .photos import describe, load_photos

    threads = set_threads(args.threads)
    photos = load_photos(args.photos, args.max_size, verbose=True, photo_set=args.photo_set)
    print(f"Photos ({len(photos)}): {describe(photos)}")
    model = load_ugc_model(args.weights)
    print(ugc_description(model))
    return threads, photos, model


def load_ugc_model(weights: Optional[str]):
    import ugcodec

    return ugcodec.load_model(weights)


def ugc_roundtrip(
    image: np.ndarray, quality: int, model, preferences=("human", "machine"), refine: int = 0
) -> Tuple[int, Dict[str, np.ndarray]]:
    """Encodes once (with ``refine`` encoder refinement steps), parses once, decodes once
    per preference, all in float32; returns (bytes, pixels)."""
    from ugcodec.codec import decode_pixels, encode_latents, parse_latents

    data, _ = encode_latents(image, quality, model, refine=refine, precision="float32")
    latents = parse_latents(data, model)
    return len(data), {pref: decode_pixels(latents, pref, model, precision="float32") for pref in preferences}


def report_head(benchmark: str, threads: Optional[int], model=None, refine: Optional[int] = None) -> dict:
    """The entries every report starts with: ``benchmark``, ``command``, ``environment``,
    ``model`` (:func:`ugc_description`, None without a ugc model) and, where the benchmark
    can refine, ``ugc_refine``."""
    head = {
        "benchmark": benchmark,
        "command": command_line(benchmark),
        "environment": environment(threads),
        "model": ugc_description(model, refine or 0) if model else None,
    }
    if refine is not None:
        head["ugc_refine"] = refine
    return head


def ugc_description(model, refine: int = 0) -> str:
    config = model.config
    return (
        f"ugc weights {os.path.basename(model.path)} (fingerprint {model.fingerprint.hex()}, "
        f"N={config.N}, M={config.M}, {model.num_qualities} qualities)"
        + (f", encoder refinement {refine} step{'s' if refine != 1 else ''}" if refine else "")
    )


# --------------------------------------------------------------------------- misc
def set_threads(threads: int) -> int:
    """Sets torch's intra-op threads (0: leave torch's default); returns the count in use."""
    import torch

    if threads and threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name and, where the file gives them, its family and model numbers
    (``"AMD EPYC (family 23, model 1)"``): what tells speed reports of two machines apart.
    Falls back to :func:`platform.processor` where there is no such file."""
    fields: Dict[str, str] = {}
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


def environment(threads: Optional[int] = None) -> dict:
    import torch

    from ugcodec.precision import native_bfloat16

    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_description(),
        "cpu_count": os.cpu_count(),
        "amx": native_bfloat16(),
        "torch": torch.__version__,
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "pillow": PIL.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        with open("/proc/loadavg") as handle:
            info["loadavg_at_start"] = handle.read().split()[:3]
    except OSError:
        pass
    return info


def reusable_records(report: dict, expected: dict, codecs: Dict[str, Sequence]) -> Dict[tuple, dict]:
    """The Pillow codecs' records of an earlier report (rd.json, analytics.json) that a new
    run may take as they are: they do not depend on the ugc weights.

    ``expected`` holds the new run's ``photos`` (as reports list them: name, width,
    height), ``pillow`` (``PIL.__version__``) and any other report entries that must be
    equal (``max_size``, ...); ``codecs`` maps each Pillow codec name to the settings the
    run sweeps. The report may hold more photos. Returns the records keyed by ``(photo,
    codec, setting)``. Raises ``ValueError`` naming what differs, or which record is missing.
    """
    problems = []
    for key, value in expected.items():
        if key not in ("photos", "pillow") and report.get(key) != value:
            problems.append(f"{key} {report.get(key)!r}, not {value!r}")
    pillow = (report.get("environment") or {}).get("pillow")
    if pillow != expected["pillow"]:
        problems.append(f"pillow {pillow!r}, not {expected['pillow']!r}")
    listed = report.get("photos") or []
    absent = [f"{p['name']} {p['width']}x{p['height']}" for p in expected["photos"] if p not in listed]
    if absent:
        problems.append(f"photos without {', '.join(absent)}")
    if problems:
        raise ValueError("the report measured " + "; ".join(problems))
    records = {(r["photo"], r["codec"], r["setting"]): r for r in report.get("records", []) if r["codec"] in codecs}
    for photo in expected["photos"]:
        for codec, settings in codecs.items():
            for setting in settings:
                if (photo["name"], codec, setting) not in records:
                    raise ValueError(f"the report has no {codec} record at setting {setting} for {photo['name']}")
    return records


def load_reusable_records(path: str, expected: dict, codecs: Dict[str, Sequence], script: str,
                          select: Callable[[dict, dict, Dict[str, Sequence]], Dict[tuple, dict]] = reusable_records
                          ) -> Tuple[Dict[tuple, dict], str]:
    """``select`` (:func:`reusable_records` or a script's stricter version of it) applied to
    the report at ``path``, and the note the new report makes of it; exits with
    ``<script>: cannot reuse ...`` where the report does not fit."""
    with open(path) as handle:
        report = json.load(handle)
    try:
        records = select(report, expected, codecs)
    except ValueError as error:
        raise SystemExit(f"{script}: cannot reuse the baselines of {path}: {error}")
    return records, (f"{', '.join(codecs)} records taken from {path} "
                     f"({(report.get('environment') or {}).get('date', 'undated')}), not measured again")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], align: Optional[str] = None) -> str:
    """A markdown table; ``align`` is one char per column, ``l`` or ``r`` (default: l then r)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(str(h) for h in header) + " |"]
    lines.append("| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |")
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not np.isfinite(value):
            return "n/a" if np.isnan(value) else ("inf" if value > 0 else "-inf")
        return f"{value:.{digits}f}"
    return str(value)


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(payload, handle, indent=1, default=_json_default)
        handle.write("\n")
    os.replace(temporary, path)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def pyplot():
    """matplotlib.pyplot with the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish_axis(axis, legend_size: int) -> None:
    """A report plot's axis: light grid, small legend."""
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=legend_size)


def save_figure(figure, path: str, result: dict, averaged: bool = False) -> None:
    """Titles a report's plot with the photos of ``result`` (``averaged``: the curves are
    their averages), lays it out, writes it as PNG and frees it."""
    photos = result["photos"]
    title = f"{len(photos)} photo(s): {', '.join(photo['name'] for photo in photos)}"
    figure.suptitle("Averaged over " + title if averaged else title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot().close(figure)


def save_results(out: str, name: str, result: dict, text: str, plot: Optional[Callable[[dict, str], None]] = None) -> None:
    """Prints the markdown report and writes NAME.json, NAME.md (and NAME.png) under ``out``."""
    print()
    print(text)
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, f"{name}.json"), result)
    with open(os.path.join(out, f"{name}.md"), "w") as handle:
        handle.write(text + "\n")
    written = [f"{name}.json", f"{name}.md"]
    if plot is not None:
        plot(result, os.path.join(out, f"{name}.png"))
        written.append(f"{name}.png")
    print(f"\nWrote {', '.join(written)} in {out} ({result['seconds']:.1f} s)")


def run_and_save(name: str, args, run: Callable[[object], dict], report: Callable[[dict], str],
                 plot: Optional[Callable[[dict, str], None]] = None) -> None:
    """A benchmark's ``main``: ``run(args)`` gives the result, which :func:`save_results`
    writes as ``name`` under ``args.out`` with ``report(result)`` (and ``plot``)."""
    result = run(args)
    save_results(args.out, name, result, report(result), plot)
