"""CPU speed benchmark: ugc against compressai's mean-scale hyperprior, in the same run.

Three parts:

1. Codec: encode and decode seconds per megapixel (median of ``--runs`` runs after one
   warm-up) of ugc (``ugcodec.encode``; ``ugcodec.decode`` for human and for machine) and
   of compressai's ``mbt2018-mean`` architecture (``compressai.models.MeanScaleHyperprior``)
   built with the loaded ugc model's N and M, random weights (seed 0), ``update()``,
   then its ``compress``/``decompress``. Same photo, same process, same thread count.
   ugc decodes in its default precision (:mod:`ugcodec.precision`); where that is
   bfloat16 (CPUs with AMX), float32 rows and compressai under bfloat16 autocast are
   timed as well.
   Note the compressai model is untrained, so its bitstream size says nothing; only its
   speed is compared. ugc's g_s is larger (preference-conditioned residual blocks) and
   its h_s runs in integer-exact arithmetic.
2. Entropy coder: symbols per second of ``ugcodec.entropy_coding.encode_symbols`` /
   ``decode_symbols`` (constriction ANS, the loaded model's Gaussian y tables) against
   compressai's rANS through ``GaussianConditional.compress``/``decompress`` (its own
   Gaussian tables for the same 64 scales), on the same symbols: ``--symbols`` values
   ``round(N(0, scale))`` with a scale index drawn uniformly per symbol.
3. ``--large``: peak resident memory (``ru_maxrss`` of a child process per run, started
   through a small process of its own, as for ``--memory``) of
   encode and of decode of a ``--large-size`` (default 4000x3000) upscaled photo, for ugc
   and compressai, with the child's resident memory after imports and model loading.
   Identical runs differ by up to a few hundred MiB, so each operation runs
   ``--memory-runs`` times and the highest and lowest peaks are reported.
   ``--memory``: the peak resident memory of whole ``ugc encode`` and ``ugc decode``
   processes (``python -m ugcodec``, start-up and PNG reading/writing included; each
   process's own ``ru_maxrss`` from ``os.wait4``) at each of ``--memory-sizes`` (default
   12 and 48 megapixels), ``--memory-runs`` times each, against the stated bound
   (:func:`memory_bound_mib`), with a verdict per row and the memory per extra pixel
   between the sizes.

4. Breakdown: where one ugc encode and one decode spend their time in process
   (cProfile over ugcodec's functions, torch profiler over operators).
5. Whole processes: ``ugc --version``, ``ugc info``, ``ugc encode``/``decode`` of a small
   image and of the photo, against a minimal script that loads compressai's
   mbt2018-mean (same N/M, from a file) and does the same job (compress, write, read,
   decompress, save PNG), with ``python -X importtime`` totals of the imports.

Parts 1 and 5 run the codecs in turn within each run, so that a busy moment on a
shared machine slows both; the ratios of the fastest runs are reported as well.

Writes ``speed.json`` (and ``speed.md``) under ``--out``.

    python -m benchmarks.speed                       # 768x512, 5 runs, 1 thread
    python -m benchmarks.speed --runs 3 --threads 2 --large
    python -m benchmarks.speed --skip codec,entropy,breakdown,process --memory
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional, Sequence

import numpy as np

from . import bench_common as common
from .photos import load_photos, parse_size

_STRIDE = 64

#: The stated memory bound (README): a whole ``ugc encode`` or ``ugc decode`` process of
#: an image of P pixels peaks at no more than MEMORY_BOUND_BASE + MEMORY_BOUND_PER_PIXEL * P
#: bytes of resident memory.
MEMORY_BOUND_BASE = 1 << 30
MEMORY_BOUND_PER_PIXEL = 150


def memory_bound_mib(pixels: int) -> float:
    """The stated bound on a whole encode or decode process's peak RSS, in MiB."""
    return (MEMORY_BOUND_BASE + MEMORY_BOUND_PER_PIXEL * pixels) / float(1 << 20)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CPU speed of ugc vs compressai (codec, entropy coder, memory).")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement, after one warm-up (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's choice)")
    parser.add_argument("--size", default="768x512", help="test image WxH (the photo is resized/cropped to it)")
    parser.add_argument("--photo", default="rocket", help="which evaluation photo to use (default rocket)")
    parser.add_argument("--quality", type=int, default=None, help="ugc quality level (default: the middle one)")
    parser.add_argument("--weights", default=None, help="ugc weights file (default: the shipped weights)")
    parser.add_argument("--refine", type=int, default=0,
                        help="also time encoding with this many refinement steps (one timed run; default 0: skip)")
    parser.add_argument("--symbols", type=int, default=1_000_000, help="symbols for the entropy-coder test (default 1M)")
    parser.add_argument("--large", action="store_true", help="also measure peak memory on a large image (slow)")
    parser.add_argument("--large-size", default="4000x3000", help="image size for --large (default 4000x3000)")
    parser.add_argument("--memory-runs", type=int, default=2,
                        help="child processes per operation for --large and --memory; the peak RSS of identical runs "
                             "varies by ~100-200 MiB, so the highest and the range are reported (default 2)")
    parser.add_argument("--memory", action="store_true",
                        help="peak RSS of whole `ugc encode` / `ugc decode` processes at --memory-sizes, "
                             "against the stated bound (slow: minutes per size)")
    parser.add_argument("--memory-sizes", default="4000x3000,8000x6000",
                        help="comma-separated WxH sizes for --memory (default 4000x3000,8000x6000)")
    parser.add_argument("--skip", default="",
                        help="comma-separated parts to skip: codec,entropy,breakdown,process")
    parser.add_argument("--process-runs", type=int, default=3,
                        help="runs of each whole-process command (default 3)")
    parser.add_argument("--small-size", default="256x192", help="the whole-process test's small image (default 256x192)")
    parser.add_argument("--out", default=common.DEFAULT_OUT, help="output folder (default: benchmarks/results)")
    # Internal: run one operation in a child process and report its peak memory.
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-dir", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def timed(function: Callable[[], object], runs: int) -> dict:
    """One warm-up call, then ``runs`` timed calls; returns median/min/all in seconds."""
    function()
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "runs": times}


def timed_together(functions: dict, runs: int) -> dict:
    """Like :func:`timed` for several functions, run in turn within each run (one
    warm-up call each first); returns ``{key: timing}``."""
    for function in functions.values():
        function()
    times = {key: [] for key in functions}
    for _ in range(max(1, runs)):
        for key, function in functions.items():
            start = time.perf_counter()
            function()
            times[key].append(time.perf_counter() - start)
    return {key: {"median": statistics.median(t), "min": min(t), "runs": t} for key, t in times.items()}


def _pad(x, multiple: int = _STRIDE):
    import torch.nn.functional as F

    height, width = x.shape[-2:]
    return F.pad(x, (0, -width % multiple, 0, -height % multiple), mode="replicate")


def compressai_model(N: int, M: int):
    """compressai's mbt2018-mean architecture, random weights (seed 0), tables built."""
    import torch

    from compressai.models import MeanScaleHyperprior

    torch.manual_seed(0)
    network = MeanScaleHyperprior(N, M).eval()
    network.update(force=True)
    return network


def _to_tensor(image: np.ndarray):
    import torch

    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div_(255.0)


# --------------------------------------------------------------------------- part 1
def bench_codecs(image: np.ndarray, model, quality: int, runs: int, refine: int = 0) -> dict:
    import torch

    import ugcodec
    from ugcodec.precision import DEFAULT_PRECISION, resolve_precision

    megapixels = image.shape[0] * image.shape[1] / 1e6
    data = ugcodec.encode(image, quality, model)
    results = {"image": f"{image.shape[1]}x{image.shape[0]}", "megapixels": megapixels, "rows": []}

    def add(codec: str, operation: str, timing: dict, size: Optional[int]) -> None:
        results["rows"].append({
            "codec": codec, "operation": operation, "seconds": timing["median"],
            "s_per_mpx": timing["median"] / megapixels, "min_s_per_mpx": timing["min"] / megapixels,
            "runs": timing["runs"], "bytes": size,
        })

    network = compressai_model(model.config.N, model.config.M)
    with torch.inference_mode():
        compressed = network.compress(_pad(_to_tensor(image)))
    size = sum(len(s[0]) for s in compressed["strings"])

    def cai_encode():
        with torch.inference_mode():
            return network.compress(_pad(_to_tensor(image)))

    def cai_decode():
        with torch.inference_mode():
            pixels = network.decompress(compressed["strings"], compressed["shape"])["x_hat"]
            return pixels[0, :, : image.shape[0], : image.shape[1]].mul(255).round().byte()

    def cai_decode_bfloat16():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return cai_decode()

    # The machine is shared: the operations take turns within each run, so that a busy
    # moment slows both codecs rather than one of them.
    jobs = {
        ("ugc", "encode"): lambda: ugcodec.encode(image, quality, model),
        ("compressai mbt2018-mean", "encode"): cai_encode,
        ("ugc", "decode (human)"): lambda: ugcodec.decode(data, "human", model),
        ("ugc", "decode (machine)"): lambda: ugcodec.decode(data, "machine", model),
        ("compressai mbt2018-mean", "decode"): cai_decode,
    }
    results["precision"] = resolve_precision(DEFAULT_PRECISION)
    if results["precision"] != "float32":
        # What the default precision buys, and compressai given bfloat16 too (all of its
        # g_s under autocast: a context row, its pixels are not within ugc's ±1).
        jobs[("ugc", "decode (human, float32)")] = lambda: ugcodec.decode(data, "human", model, precision="float32")
        jobs[("ugc", "decode (machine, float32)")] = lambda: ugcodec.decode(data, "machine", model, precision="float32")
        jobs[("compressai mbt2018-mean", "decode (bfloat16 autocast)")] = cai_decode_bfloat16
    timings = timed_together(jobs, runs)
    for (codec, operation), timing in timings.items():
        add(codec, operation, timing, len(data) if codec == "ugc" else size)
    if refine:
        # Tens of seconds per call: the warm-up plus one timed run.
        outputs = []
        timing = timed(lambda: outputs.append(ugcodec.encode(image, quality, model, refine=refine)), 1)
        add("ugc", f"encode (refine {refine})", timing, len(outputs[-1]))

    by = {(r["codec"], r["operation"]): r["s_per_mpx"] for r in results["rows"]}
    results["ratio_encode"] = by[("ugc", "encode")] / by[("compressai mbt2018-mean", "encode")]
    results["ratio_decode_human"] = by[("ugc", "decode (human)")] / by[("compressai mbt2018-mean", "decode")]
    results["ratio_decode_machine"] = by[("ugc", "decode (machine)")] / by[("compressai mbt2018-mean", "decode")]
    # Ratios of the fastest runs: the least disturbed by other work on a shared machine.
    best = {(r["codec"], r["operation"]): r["min_s_per_mpx"] for r in results["rows"]}
    results["ratio_min_encode"] = best[("ugc", "encode")] / best[("compressai mbt2018-mean", "encode")]
    results["ratio_min_decode_human"] = best[("ugc", "decode (human)")] / best[("compressai mbt2018-mean", "decode")]
    results["ratio_min_decode_machine"] = best[("ugc", "decode (machine)")] / best[("compressai mbt2018-mean", "decode")]
    results["compressai_note"] = "random weights: its bytes are not a rate result"
    return results


# --------------------------------------------------------------------------- part 2
def bench_entropy(model, count: int, runs: int) -> dict:
    import torch

    from compressai.entropy_models import GaussianConditional

    from ugcodec.entropy_coding import decode_symbols, encode_symbols
    from ugcodec.scales import scale_table

    scales = scale_table()
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(model.y_tables), size=count).astype(np.int64)
    values = np.round(rng.standard_normal(count) * scales.numpy()[index]).astype(np.int64)

    ugc_data = encode_symbols(values, index, model.y_tables)
    assert np.array_equal(decode_symbols(ugc_data, index, model.y_tables), values), "ugc entropy round trip failed"
    ugc_encode = timed(lambda: encode_symbols(values, index, model.y_tables), runs)
    ugc_decode = timed(lambda: decode_symbols(ugc_data, index, model.y_tables), runs)

    conditional = GaussianConditional(scales.tolist())
    conditional.update()
    inputs = torch.from_numpy(values.astype(np.float32)).view(1, 1, -1)
    indexes = torch.from_numpy(index.astype(np.int32)).view(1, 1, -1)
    strings = conditional.compress(inputs, indexes)
    decoded = conditional.decompress(strings, indexes)
    assert torch.equal(decoded.round().to(torch.int64).view(-1), torch.from_numpy(values)), "compressai round trip failed"
    cai_encode = timed(lambda: conditional.compress(inputs, indexes), runs)
    cai_decode = timed(lambda: conditional.decompress(strings, indexes), runs)

    # compressai's C++ coder alone, with the Python lists prepared beforehand.
    from compressai.ans import RansDecoder, RansEncoder

    lists = (
        values.astype(np.int32).tolist(), index.astype(np.int32).tolist(), conditional._quantized_cdf.tolist(),
        conditional._cdf_length.reshape(-1).int().tolist(), conditional._offset.reshape(-1).int().tolist(),
    )
    raw_encode = timed(lambda: RansEncoder().encode_with_indexes(*lists), runs)
    raw_decode = timed(lambda: RansDecoder().decode_with_indexes(strings[0], *lists[1:]), runs)

    def row(name, encode, decode, size):
        return {
            "coder": name, "encode_msym_s": count / encode["median"] / 1e6, "decode_msym_s": count / decode["median"] / 1e6,
            "encode_s": encode["median"], "decode_s": decode["median"], "bits_per_symbol": size * 8.0 / count,
        }

    return {
        "symbols": count,
        "tables": f"{len(model.y_tables)} Gaussian scales {float(scales[0]):.2f}..{float(scales[-1]):.0f}, index uniform",
        "rows": [
            row("ugcodec (constriction ANS, 24-bit)", ugc_encode, ugc_decode, len(ugc_data)),
            row("compressai GaussianConditional (rANS, 16-bit)", cai_encode, cai_decode, len(strings[0])),
            row("compressai RansEncoder/Decoder only (lists ready)", raw_encode, raw_decode, len(strings[0])),
        ],
    }


# --------------------------------------------------------------------------- part 3
def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _current_rss_kib() -> Optional[int]:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def child(args: argparse.Namespace) -> None:
    """Runs one operation on the files in ``--child-dir``; prints a JSON line."""
    import torch

    import ugcodec

    common.set_threads(args.threads)
    folder = args.child_dir
    operation = args.child
    image = np.load(os.path.join(folder, "image.npy")) if operation.endswith("encode") else None
    if operation.startswith("ugc"):
        model = ugcodec.load_model(args.weights)
        quality = args.quality or (model.num_qualities + 1) // 2
    else:
        config = common.load_ugc_model(args.weights).config
        network = compressai_model(config.N, config.M)
    baseline_now, baseline_peak = _current_rss_kib(), _rss_kib()
    start = time.perf_counter()
    with torch.inference_mode():
        if operation == "ugc-encode":
            with open(os.path.join(folder, "image.ugc"), "wb") as handle:
                handle.write(ugcodec.encode(image, quality, model))
        elif operation == "ugc-decode":
            with open(os.path.join(folder, "image.ugc"), "rb") as handle:
                ugcodec.decode(handle.read(), "human", model)
        elif operation == "compressai-encode":
            result = network.compress(_pad(_to_tensor(image)))
            with open(os.path.join(folder, "image.cai"), "wb") as handle:
                pickle.dump(result, handle)
        elif operation == "compressai-decode":
            with open(os.path.join(folder, "image.cai"), "rb") as handle:
                result = pickle.load(handle)
            network.decompress(result["strings"], result["shape"])
        else:
            raise SystemExit(f"unknown child operation {operation}")
    seconds = time.perf_counter() - start
    print(json.dumps({
        "operation": operation, "seconds": seconds, "peak_rss_mib": _rss_kib() / 1024,
        "rss_before_mib": (baseline_now or 0) / 1024, "peak_before_mib": baseline_peak / 1024,
    }))


def bench_memory(args: argparse.Namespace) -> dict:
    size = parse_size(args.large_size)
    photo = load_photos(names=[args.photo], max_size=size, upscale=True)[0][1]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ugc-speed-") as folder:
        np.save(os.path.join(folder, "image.npy"), photo)
        for operation in ("ugc-encode", "ugc-decode", "compressai-encode", "compressai-decode"):
            command = [sys.executable, "-m", "benchmarks.speed", "--child", operation, "--child-dir", folder,
                       "--threads", str(args.threads)]
            if args.weights:
                command += ["--weights", args.weights]
            if args.quality:
                command += ["--quality", str(args.quality)]
            runs = []
            for _ in range(max(1, args.memory_runs)):
                measured = _run_measured(command, _environment_of_this_checkout())
                if "error" in measured:
                    runs = [{"operation": operation, "error": measured["error"]}]
                    print(f"  {operation}: FAILED {measured['error']}", file=sys.stderr)
                    break
                # The child's own figures, with its peak as the process alone had it.
                runs.append({**json.loads(measured["last_line"]), "peak_rss_mib": measured["peak_rss_mib"]})
                print(f"  {operation}: {runs[-1]['seconds']:.1f} s, peak RSS {runs[-1]['peak_rss_mib']:.0f} MiB")
            if "error" in runs[0]:
                rows.append(runs[0])
                continue
            peaks = [run["peak_rss_mib"] for run in runs]
            rows.append({**max(runs, key=lambda run: run["peak_rss_mib"]), "runs": len(runs),
                         "lowest_peak_rss_mib": min(peaks), "seconds": min(run["seconds"] for run in runs)})
    return {"image": f"{photo.shape[1]}x{photo.shape[0]}", "megapixels": photo.shape[0] * photo.shape[1] / 1e6, "rows": rows}


#: Runs its arguments as a command and prints that process's own seconds and peak RSS,
#: and the last line the command printed. A small process of its own starts the command:
#: Linux counts in a child's ``ru_maxrss`` the peak of the memory it had before ``exec``,
#: which a child forked (or vforked) straight from this benchmark shares with this
#: process's own peak.
_MEASURE = """
import json, os, subprocess, sys, time
start = time.perf_counter()
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
output = process.stdout.read().decode(errors="replace").strip().splitlines()
_, status, usage = os.wait4(process.pid, 0)
print(json.dumps({"status": os.waitstatus_to_exitcode(status), "seconds": time.perf_counter() - start,
                  "peak_kib": usage.ru_maxrss, "last_line": output[-1] if output else ""}))
"""


def _run_measured(command: Sequence[str], env: Optional[dict] = None) -> dict:
    """Runs ``command`` to its end; returns its seconds, its own peak RSS in MiB
    (``ru_maxrss`` from ``os.wait4``: this process alone, unlike ``RUSAGE_CHILDREN``,
    the largest of every child so far) and the last line it printed (``last_line``), or
    ``{"error": [last line of stderr]}``."""
    with tempfile.TemporaryFile() as errors:
        completed = subprocess.run([sys.executable, "-c", _MEASURE, *command], stdout=subprocess.PIPE,
                                   stderr=errors, env=env, text=True)
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip()
    measured = json.loads(completed.stdout) if completed.returncode == 0 and completed.stdout.strip() else None
    if measured is None or measured["status"] != 0:
        status = measured["status"] if measured else completed.returncode
        return {"error": message.splitlines()[-1:] or [f"exit status {status}"]}
    return {"seconds": measured["seconds"], "peak_rss_mib": measured["peak_kib"] / 1024,  # KiB on Linux
            "last_line": measured["last_line"]}


def _environment_of_this_checkout() -> dict:
    """This process's environment, with ``PYTHONPATH`` led by the folders that hold the
    ``benchmarks`` and ``ugcodec`` packages this benchmark imports, so that child
    processes run the same code whatever is installed."""
    import ugcodec

    env = dict(os.environ)
    roots = [os.path.dirname(os.path.dirname(os.path.abspath(module))) for module in (__file__, ugcodec.__file__)]
    rest = [path for path in env.get("PYTHONPATH", "").split(os.pathsep) if path and path not in roots]
    env["PYTHONPATH"] = os.pathsep.join(list(dict.fromkeys(roots)) + rest)
    return env


def bench_process_memory(args: argparse.Namespace) -> dict:
    """Peak RSS of whole ``ugc encode`` and ``ugc decode`` processes at each of
    ``--memory-sizes``, the stated bound next to each."""
    from PIL import Image

    env = _environment_of_this_checkout()
    if args.threads and args.threads > 0:
        env["OMP_NUM_THREADS"] = str(args.threads)
    ugc = [sys.executable, "-m", "ugcodec"]
    options = ["--max-pixels", "0"] + (["--weights", args.weights] if args.weights else [])
    quality = ["-q", str(args.quality)] if args.quality else []
    rows = []
    for size_text in (part.strip() for part in args.memory_sizes.split(",") if part.strip()):
        photo = load_photos(names=[args.photo], max_size=parse_size(size_text), upscale=True)[0][1]
        pixels = photo.shape[0] * photo.shape[1]
        size = f"{photo.shape[1]}x{photo.shape[0]}"
        with tempfile.TemporaryDirectory(prefix="ugc-memory-") as folder:
            source, coded, decoded = (os.path.join(folder, name) for name in ("photo.png", "photo.ugc", "out.png"))
            Image.fromarray(photo).save(source, compress_level=1)
            del photo
            commands = {
                "encode": ugc + ["encode", source, coded, "-f"] + quality + options,
                "decode": ugc + ["decode", coded, decoded, "-f"] + options,
            }
            for operation, command in commands.items():
                runs = []
                for _ in range(max(1, args.memory_runs)):
                    runs.append(_run_measured(command, env))
                    if "error" in runs[-1]:
                        print(f"  ugc {operation} {size}: FAILED {runs[-1]['error']}", file=sys.stderr)
                        break
                    print(f"  ugc {operation} {size}: {runs[-1]['seconds']:.1f} s, "
                          f"peak RSS {runs[-1]['peak_rss_mib']:.0f} MiB", flush=True)
                row = {"image": size, "pixels": pixels, "operation": operation, "command": " ".join(command),
                       "bound_mib": memory_bound_mib(pixels)}
                if "error" in runs[-1]:
                    rows.append({**row, "error": runs[-1]["error"]})
                    break  # nothing to decode
                peaks = [run["peak_rss_mib"] for run in runs]
                rows.append({**row, "runs": len(runs), "peak_rss_mib": max(peaks), "lowest_peak_rss_mib": min(peaks),
                             "seconds": min(run["seconds"] for run in runs), "met": max(peaks) <= row["bound_mib"]})
    return {
        "bound": {"base_bytes": MEMORY_BOUND_BASE, "bytes_per_pixel": MEMORY_BOUND_PER_PIXEL},
        "rows": rows,
        "per_extra_pixel": _memory_per_extra_pixel(rows),
    }


def _memory_per_extra_pixel(rows: Sequence[dict]) -> dict:
    """Bytes of peak RSS per pixel between the smallest and the largest size, per operation
    (what the memory grows by with the image, start-up and constant buffers left out)."""
    slopes = {}
    for operation in ("encode", "decode"):
        measured = sorted((row for row in rows if row["operation"] == operation and "error" not in row),
                          key=lambda row: row["pixels"])
        if len(measured) >= 2 and measured[-1]["pixels"] > measured[0]["pixels"]:
            small, large = measured[0], measured[-1]
            slopes[operation] = ((large["peak_rss_mib"] - small["peak_rss_mib"]) * (1 << 20)
                                 / (large["pixels"] - small["pixels"]))
    return slopes


# --------------------------------------------------------------------------- part 4
def bench_breakdown(image: np.ndarray, model, quality: int) -> dict:
    """Where one encode and one decode spend their time, in process: the cumulative
    seconds of ugcodec's own functions (cProfile; nested, so they overlap) and torch's
    operators by self time (torch profiler)."""
    import cProfile
    import pstats

    import torch

    import ugcodec

    data = ugcodec.encode(image, quality, model)
    jobs = {
        "encode": lambda: ugcodec.encode(image, quality, model),
        "decode (human)": lambda: ugcodec.decode(data, "human", model),
    }
    package = os.sep + "ugcodec" + os.sep
    result = {}
    for name, job in jobs.items():
        job()  # warm-up
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(job)
        total = time.perf_counter() - start
        functions = []
        for (path, _, function), (_, _, _, cumulative, _) in pstats.Stats(profiler).stats.items():
            if package in path and cumulative >= 0.02 * total:
                functions.append({"function": f"{os.path.basename(path)}:{function}", "seconds": cumulative})
        functions.sort(key=lambda row: -row["seconds"])
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as torch_profile:
            job()
        operators = sorted(torch_profile.key_averages(), key=lambda event: -event.self_cpu_time_total)[:10]
        result[name] = {
            "seconds": total,
            "functions": functions[:16],
            "operators": [{"operator": event.key, "calls": event.count, "seconds": event.self_cpu_time_total / 1e6}
                          for event in operators],
        }
    return result


# --------------------------------------------------------------------------- part 5
_COMPRESSAI_SCRIPT = """\
# The same job as `ugc encode` / `ugc decode`, done by compressai's mbt2018-mean.
import pickle, sys
import numpy as np, torch
import torch.nn.functional as F
from PIL import Image
from compressai.models import MeanScaleHyperprior

operation, weights, source, destination = sys.argv[1:5]
network = MeanScaleHyperprior.from_state_dict(torch.load(weights, weights_only=True)).eval()
with torch.inference_mode():
    if operation == "encode":
        pixels = np.asarray(Image.open(source).convert("RGB"))
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float().div(255)
        height, width = pixels.shape[:2]
        x = F.pad(x, (0, -width % 64, 0, -height % 64), mode="replicate")
        out = network.compress(x)
        with open(destination, "wb") as handle:
            pickle.dump((height, width, out["strings"], out["shape"]), handle)
    else:
        with open(source, "rb") as handle:
            height, width, strings, shape = pickle.load(handle)
        x_hat = network.decompress(strings, shape)["x_hat"][0, :, :height, :width]
        pixels = x_hat.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(destination)
"""


def _ugc_command() -> list:
    script = os.path.join(os.path.dirname(sys.executable), "ugc")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "ugcodec"]


def _import_breakdown(statement: str, env: dict) -> dict:
    """``python -X importtime -c statement``: the total, and the slowest imports one level
below the top (e.g. torch under ugcodec.codec), in cumulative seconds."""
    completed = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True,
                               text=True, env=env)
    rows = []
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        depth = (len(name) - len(name.lstrip()) - 1) // 2  # one space, then two per level
        if depth <= 1 and cumulative.strip().isdigit():
            rows.append({"module": name.strip(), "depth": depth, "seconds": int(cumulative) / 1e6})
    total = sum(row["seconds"] for row in rows if row["depth"] == 0)
    inner = sorted((row for row in rows if row["depth"] == 1), key=lambda row: -row["seconds"])
    return {"statement": statement, "total_s": total, "top": inner[:8]}


def bench_process(args: argparse.Namespace, model, photo: np.ndarray) -> dict:
    """Whole processes, start-up included: `ugc --version`, `ugc info`, `ugc encode` and
    `ugc decode` of a small image and of the codec-timing photo, against a minimal script
    that loads compressai's mbt2018-mean of the same N/M from a file and does the same
    job (compress, write, read, decompress, save PNG). The runs take turns, as in part 1."""
    from PIL import Image

    env = dict(os.environ)
    if args.threads and args.threads > 0:
        env["OMP_NUM_THREADS"] = str(args.threads)
    ugc = _ugc_command()
    weights = ["--weights", args.weights] if args.weights else []
    quality = ["-q", str(args.quality)] if args.quality else []
    small = parse_size(args.small_size)
    images = {"small": photo[: small[1], : small[0]], "photo": photo}
    with tempfile.TemporaryDirectory(prefix="ugc-process-") as folder:
        def path(name: str) -> str:
            return os.path.join(folder, name)

        network = compressai_model(model.config.N, model.config.M)
        import torch

        torch.save(network.state_dict(), path("mbt2018-mean.pt"))
        with open(path("compressai_codec.py"), "w") as handle:
            handle.write(_COMPRESSAI_SCRIPT)
        commands = {"ugc --version": ugc + ["--version"]}
        for label, pixels in images.items():
            Image.fromarray(pixels).save(path(f"{label}.png"))
            size = f"{pixels.shape[1]}x{pixels.shape[0]}"
            commands[f"ugc encode {size}"] = ugc + ["encode", path(f"{label}.png"), path(f"{label}.ugc"), "-f"] + quality + weights
            commands[f"ugc decode {size}"] = ugc + ["decode", path(f"{label}.ugc"), path(f"{label}.out.png"), "-f"] + weights
            if label == "small":
                commands[f"ugc info {size}"] = ugc + ["info", path(f"{label}.ugc")]
            script = [sys.executable, path("compressai_codec.py")]
            commands[f"compressai encode {size}"] = script + ["encode", path("mbt2018-mean.pt"), path(f"{label}.png"),
                                                              path(f"{label}.cai")]
            commands[f"compressai decode {size}"] = script + ["decode", path("mbt2018-mean.pt"), path(f"{label}.cai"),
                                                              path(f"{label}.cai.png")]
        times = {label: [] for label in commands}
        for _ in range(max(1, args.process_runs)):
            for label, command in commands.items():
                start = time.perf_counter()
                completed = subprocess.run(command, capture_output=True, text=True, env=env)
                elapsed = time.perf_counter() - start
                if completed.returncode != 0:
                    raise SystemExit(f"{label} failed:\n{completed.stderr}")
                times[label].append(elapsed)
                print(f"  {label}: {elapsed:.2f} s", flush=True)
    rows = [{"command": label, "median_s": statistics.median(t), "min_s": min(t), "runs": t} for label, t in times.items()]
    by = {row["command"]: row for row in rows}
    size = f"{photo.shape[1]}x{photo.shape[0]}"
    totals = {}
    for key in ("median_s", "min_s"):
        ugc_total = by[f"ugc encode {size}"][key] + by[f"ugc decode {size}"][key]
        cai_total = by[f"compressai encode {size}"][key] + by[f"compressai decode {size}"][key]
        totals[key] = {"ugc": ugc_total, "compressai": cai_total, "ratio": ugc_total / cai_total}
    return {
        "rows": rows,
        "photo_totals": totals,
        "imports": [
            _import_breakdown("import ugcodec.cli", env),
            _import_breakdown("import ugcodec.codec, ugcodec.weights", env),
            _import_breakdown("import compressai.models", env),
        ],
    }


# --------------------------------------------------------------------------- main
def precision_note(codec: dict) -> Optional[str]:
    """What the rows of a codec block mean: ugc in float32 (a CPU without AMX) or partly
    in bfloat16; None for reports older than the precision field."""
    if "precision" not in codec:
        return None
    if codec["precision"] == "float32":
        return ("ugc ran in float32, its default on a CPU without AMX tiles; on CPUs with AMX the default runs "
                "most of its convolutions in bfloat16 (benchmarks/results/precision).")
    return (f"ugc ran in its default precision, {codec['precision']} for most of its convolutions on this CPU "
            "(AMX); the float32 rows are the reference decoder; compressai's bfloat16 row runs all of its g_s "
            "under autocast, for context.")


def _amx(environment: dict) -> str:
    """The CPU line's word on AMX tiles (absent from reports older than the field)."""
    return "" if "amx" not in environment else (", AMX tiles" if environment["amx"] else ", no AMX tiles")


def report(result: dict) -> str:
    lines = [f"Model: {result['model']}", f"Threads: {result['environment']['torch_threads']}, "
             f"runs: {result['runs']} (median after 1 warm-up), CPU: "
             f"{result['environment'].get('cpu', result['environment']['processor'])} "
             f"x{result['environment']['cpu_count']}" + _amx(result['environment']), ""]
    codec = result.get("codec")
    if codec:
        lines.append(f"Codec speed on {result['photo']} {codec['image']} ({codec['megapixels']:.3f} MP), quality {result['quality']}:")
        lines.append("")
        rows = [[r["codec"], r["operation"], f"{r['s_per_mpx']:.3f}", f"{r['min_s_per_mpx']:.3f}", f"{r['seconds'] * 1000:.0f}"]
                for r in codec["rows"]]
        lines.append(common.markdown_table(["codec", "operation", "s/MP (median)", "s/MP (min)", "ms per image"], rows))
        lines.append("")
        lines.append(f"ugc / compressai time ratio: encode {codec['ratio_encode']:.2f}x, decode human "
                     f"{codec['ratio_decode_human']:.2f}x, decode machine {codec['ratio_decode_machine']:.2f}x "
                     "(> 1: ugc slower)")
        if "ratio_min_encode" in codec:
            lines.append(f"Same, fastest runs: encode {codec['ratio_min_encode']:.2f}x, decode human "
                         f"{codec['ratio_min_decode_human']:.2f}x, decode machine {codec['ratio_min_decode_machine']:.2f}x")
        note = precision_note(codec)
        if note:
            lines.append(note)
        lines.append("")
    breakdown = result.get("breakdown")
    if breakdown:
        for name, part in breakdown.items():
            lines.append(f"Where one ugc {name} spends {part['seconds'] * 1000:.0f} ms (cProfile, cumulative: "
                         "nested functions overlap):")
            lines.append("")
            lines.append(common.markdown_table(["function", "ms"], [[r["function"], f"{r['seconds'] * 1000:.0f}"]
                                                                 for r in part["functions"]]))
            lines.append("")
            lines.append("torch operators by self time (torch profiler):")
            lines.append("")
            lines.append(common.markdown_table(["operator", "calls", "ms"], [
                [r["operator"], r["calls"], f"{r['seconds'] * 1000:.0f}"] for r in part["operators"]]))
            lines.append("")
    process = result.get("process")
    if process:
        lines.append("Whole processes (start-up included; runs take turns; compressai: a minimal script that "
                     "loads mbt2018-mean of the same N/M and does the same job):")
        lines.append("")
        lines.append(common.markdown_table(["command", "s (median)", "s (min)"], [
            [r["command"], f"{r['median_s']:.2f}", f"{r['min_s']:.2f}"] for r in process["rows"]]))
        lines.append("")
        for key, label in (("median_s", "medians"), ("min_s", "fastest runs")):
            total = process["photo_totals"][key]
            lines.append(f"encode + decode of the photo ({label}): ugc {total['ugc']:.2f} s, compressai "
                         f"{total['compressai']:.2f} s, ratio {total['ratio']:.2f}x")
        lines.append("")
        for imports in process["imports"]:
            top = ", ".join(f"{r['module']} {r['seconds'] * 1000:.0f}" for r in imports["top"])
            lines.append(f"`python -X importtime -c \"{imports['statement']}\"`: {imports['total_s']:.2f} s ({top} ms)")
        lines.append("")
    entropy = result.get("entropy")
    if entropy:
        lines.append(f"Entropy coding of {entropy['symbols']:,} symbols ({entropy['tables']}):")
        lines.append("")
        rows = [[r["coder"], f"{r['encode_msym_s']:.2f}", f"{r['decode_msym_s']:.2f}", f"{r['bits_per_symbol']:.4f}"]
                for r in entropy["rows"]]
        lines.append(common.markdown_table(["coder", "encode Msym/s", "decode Msym/s", "bits/symbol"], rows))
        lines.append("")
    memory = result.get("memory")
    if memory:
        lines.append(f"Peak memory, {memory['image']} ({memory['megapixels']:.1f} MP), one child process per run, "
                     "highest peak of the runs (identical runs differ by up to a few hundred MiB):")
        lines.append("")
        rows = []
        for r in memory["rows"]:
            if "error" in r:
                rows.append([r["operation"], "", "failed", "", "", "", " ".join(r["error"])])
            else:
                lowest = r.get("lowest_peak_rss_mib", r["peak_rss_mib"])
                rows.append([r["operation"], r.get("runs", 1), f"{r['peak_rss_mib']:.0f}", f"{lowest:.0f}",
                             f"{r['rss_before_mib']:.0f}", f"{r['peak_rss_mib'] - r['rss_before_mib']:.0f}",
                             f"{r['seconds']:.1f}"])
        lines.append(common.markdown_table(["operation", "runs", "peak RSS MiB (highest)", "peak RSS MiB (lowest)",
                                            "RSS after loading MiB", "increase MiB (highest)", "seconds (fastest)"], rows))
    process_memory = result.get("process_memory")
    if process_memory:
        bound = process_memory["bound"]
        if memory:
            lines.append("")
        lines.append(f"Peak memory of whole processes (`python -m ugcodec encode|decode`, start-up and PNG "
                     f"included, highest of the runs) against the stated bound, "
                     f"{bound['base_bytes'] / (1 << 20):.0f} MiB + {bound['bytes_per_pixel']} bytes per pixel:")
        lines.append("")
        rows = []
        for r in process_memory["rows"]:
            megapixels = f"{r['pixels'] / 1e6:.1f}"
            if "error" in r:
                rows.append([r["image"], megapixels, r["operation"], "", "failed", "", f"{r['bound_mib']:.0f}",
                             " ".join(r["error"]), ""])
            else:
                rows.append([r["image"], megapixels, r["operation"], r["runs"], f"{r['peak_rss_mib']:.0f}",
                             f"{r['lowest_peak_rss_mib']:.0f}", f"{r['bound_mib']:.0f}",
                             "met" if r["met"] else "NOT MET", f"{r['seconds']:.1f}"])
        lines.append(common.markdown_table(["image", "MP", "operation", "runs", "peak RSS MiB (highest)",
                                            "peak RSS MiB (lowest)", "bound MiB", "bound", "seconds (fastest)"], rows))
        slopes = process_memory.get("per_extra_pixel") or {}
        if slopes:
            lines.append("")
            lines.append("Peak RSS per extra pixel between the smallest and the largest image: " + ", ".join(
                f"{operation} {value:.1f} bytes" for operation, value in slopes.items()))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    threads = common.set_threads(args.threads)
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    model = common.load_ugc_model(args.weights)
    quality = args.quality or (model.num_qualities + 1) // 2
    started = time.perf_counter()
    result = {
        **common.report_head("speed", threads, model),
        "runs": args.runs,
        "quality": quality,
        "photo": args.photo,
    }
    if "codec" not in skip:
        image = load_photos(names=[args.photo], max_size=parse_size(args.size), upscale=True)[0][1]
        print(f"[speed] codec timing on {args.photo} {image.shape[1]}x{image.shape[0]} ...", flush=True)
        result["codec"] = bench_codecs(image, model, quality, args.runs, args.refine)
    if "breakdown" not in skip or "process" not in skip:
        image = load_photos(names=[args.photo], max_size=parse_size(args.size), upscale=True)[0][1]
    if "breakdown" not in skip:
        print("[speed] where the time goes (cProfile, torch profiler) ...", flush=True)
        result["breakdown"] = bench_breakdown(image, model, quality)
    if "process" not in skip:
        print(f"[speed] whole processes, {args.process_runs} runs ...", flush=True)
        result["process"] = bench_process(args, model, image)
    if "entropy" not in skip:
        print(f"[speed] entropy coders on {args.symbols:,} symbols ...", flush=True)
        result["entropy"] = bench_entropy(model, args.symbols, args.runs)
    if args.large:
        print(f"[speed] peak memory at {args.large_size} ...", flush=True)
        result["memory"] = bench_memory(args)
    if args.memory:
        print(f"[speed] peak memory of whole processes at {args.memory_sizes} ...", flush=True)
        result["process_memory"] = bench_process_memory(args)
    result["seconds"] = time.perf_counter() - started
    common.save_results(args.out, "speed", result, report(result))


if __name__ == "__main__":
    main()
