"""CPU speed benchmark: ugc against compressai's mean-scale hyperprior, in the same run.

Three parts:

1. Codec: encode and decode seconds per megapixel (median of ``--runs`` runs after one
   warm-up) of ugc (``ugcodec.encode``; ``ugcodec.decode`` for human and for machine) and
   of compressai's ``mbt2018-mean`` architecture (``compressai.models.MeanScaleHyperprior``)
   built with the loaded ugc model's N and M, random weights (seed 0), ``update()``,
   then its ``compress``/``decompress``. Same photo, same process, same thread count.
   Note the compressai model is untrained, so its bitstream size says nothing; only its
   speed is compared. ugc's g_s is larger (preference-conditioned residual blocks) and
   its h_s runs in integer-exact arithmetic.
2. Entropy coder: symbols per second of ``ugcodec.entropy_coding.encode_symbols`` /
   ``decode_symbols`` (constriction ANS, the loaded model's Gaussian y tables) against
   compressai's rANS through ``GaussianConditional.compress``/``decompress`` (its own
   Gaussian tables for the same 64 scales), on the same symbols: ``--symbols`` values
   ``round(N(0, scale))`` with a scale index drawn uniformly per symbol.
3. ``--large``: peak resident memory (``ru_maxrss`` of a child process per run) of
   encode and of decode of a ``--large-size`` (default 4000x3000) upscaled photo, for ugc
   and compressai, with the child's resident memory after imports and model loading.
   Identical runs differ (ugc decode peaked at 1529 and 1662 MiB in two runs), so each operation
   runs ``--memory-runs`` times and the highest and lowest peaks are reported.

Writes ``speed.json`` (and ``speed.md``) under ``--out``.

    python -m benchmarks.speed                       # 768x512, 5 runs, 1 thread
    python -m benchmarks.speed --runs 3 --threads 2 --large
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
                        help="child processes per operation for --large; the peak RSS of identical runs "
                             "varies by ~100-200 MiB, so the highest and the range are reported (default 2)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: codec,entropy")
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

    megapixels = image.shape[0] * image.shape[1] / 1e6
    data = ugcodec.encode(image, quality, model)
    results = {"image": f"{image.shape[1]}x{image.shape[0]}", "megapixels": megapixels, "rows": []}

    def add(codec: str, operation: str, timing: dict, size: Optional[int]) -> None:
        results["rows"].append({
            "codec": codec, "operation": operation, "seconds": timing["median"],
            "s_per_mpx": timing["median"] / megapixels, "min_s_per_mpx": timing["min"] / megapixels,
            "runs": timing["runs"], "bytes": size,
        })

    add("ugc", "encode", timed(lambda: ugcodec.encode(image, quality, model), runs), len(data))
    add("ugc", "decode (human)", timed(lambda: ugcodec.decode(data, "human", model), runs), len(data))
    add("ugc", "decode (machine)", timed(lambda: ugcodec.decode(data, "machine", model), runs), len(data))
    if refine:
        # Tens of seconds per call: the warm-up plus one timed run.
        outputs = []
        timing = timed(lambda: outputs.append(ugcodec.encode(image, quality, model, refine=refine)), 1)
        add("ugc", f"encode (refine {refine})", timing, len(outputs[-1]))

    network = compressai_model(model.config.N, model.config.M)
    x = _pad(_to_tensor(image))
    with torch.inference_mode():
        compressed = network.compress(x)
        size = sum(len(s[0]) for s in compressed["strings"])

        def encode():
            return network.compress(_pad(_to_tensor(image)))

        def decode():
            pixels = network.decompress(compressed["strings"], compressed["shape"])["x_hat"]
            return pixels[0, :, : image.shape[0], : image.shape[1]].mul(255).round().byte()

        add("compressai mbt2018-mean", "encode", timed(encode, runs), size)
        add("compressai mbt2018-mean", "decode", timed(decode, runs), size)
    by = {(r["codec"], r["operation"]): r["s_per_mpx"] for r in results["rows"]}
    results["ratio_encode"] = by[("ugc", "encode")] / by[("compressai mbt2018-mean", "encode")]
    results["ratio_decode_human"] = by[("ugc", "decode (human)")] / by[("compressai mbt2018-mean", "decode")]
    results["ratio_decode_machine"] = by[("ugc", "decode (machine)")] / by[("compressai mbt2018-mean", "decode")]
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
            command = [sys.executable, os.path.abspath(__file__), "--child", operation, "--child-dir", folder,
                       "--threads", str(args.threads)]
            if args.weights:
                command += ["--weights", args.weights]
            if args.quality:
                command += ["--quality", str(args.quality)]
            runs = []
            for _ in range(max(1, args.memory_runs)):
                completed = subprocess.run(command, capture_output=True, text=True)
                if completed.returncode != 0:
                    runs = [{"operation": operation, "error": completed.stderr.strip().splitlines()[-1:]}]
                    print(f"  {operation}: FAILED\n{completed.stderr}", file=sys.stderr)
                    break
                runs.append(json.loads(completed.stdout.strip().splitlines()[-1]))
                print(f"  {operation}: {runs[-1]['seconds']:.1f} s, peak RSS {runs[-1]['peak_rss_mib']:.0f} MiB")
            if "error" in runs[0]:
                rows.append(runs[0])
                continue
            peaks = [run["peak_rss_mib"] for run in runs]
            rows.append({**max(runs, key=lambda run: run["peak_rss_mib"]), "runs": len(runs),
                         "lowest_peak_rss_mib": min(peaks), "seconds": min(run["seconds"] for run in runs)})
    return {"image": f"{photo.shape[1]}x{photo.shape[0]}", "megapixels": photo.shape[0] * photo.shape[1] / 1e6, "rows": rows}


# --------------------------------------------------------------------------- main
def report(result: dict) -> str:
    lines = [f"Model: {result['model']}", f"Threads: {result['environment']['torch_threads']}, "
             f"runs: {result['runs']} (median after 1 warm-up), CPU: {result['environment']['processor']} "
             f"x{result['environment']['cpu_count']}", ""]
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
        "benchmark": "speed",
        "command": common.command_line("speed"),
        "environment": common.environment(threads),
        "model": common.ugc_description(model),
        "runs": args.runs,
        "quality": quality,
        "photo": args.photo,
    }
    if "codec" not in skip:
        image = load_photos(names=[args.photo], max_size=parse_size(args.size), upscale=True)[0][1]
        print(f"[speed] codec timing on {args.photo} {image.shape[1]}x{image.shape[0]} ...", flush=True)
        result["codec"] = bench_codecs(image, model, quality, args.runs, args.refine)
    if "entropy" not in skip:
        print(f"[speed] entropy coders on {args.symbols:,} symbols ...", flush=True)
        result["entropy"] = bench_entropy(model, args.symbols, args.runs)
    if args.large:
        print(f"[speed] peak memory at {args.large_size} ...", flush=True)
        result["memory"] = bench_memory(args)
    result["seconds"] = time.perf_counter() - started
    common.save_results(args.out, "speed", result, report(result))


if __name__ == "__main__":
    main()
