"""Precision benchmark: what running the transforms partly in bfloat16 does to a file.

Decoding: for every photo, quality level and preference (human, machine) it decodes the
same file twice, with ``precision="float32"`` (the reference decoder) and
``precision="bfloat16"`` (:mod:`ugcodec.precision`), and reports:

- the largest absolute difference of a pixel value, and the fraction of values that differ
  (bitstream_spec.md §11 bounds both);
- the PSNR of each decoding against the photo, and their difference.

Encoding: for every photo and level it encodes in both precisions and reports the
fraction of symbols that changed, the size and the PSNR of the human decoding (float32)
of each file, and the BD-rate of the bfloat16 encoder against the float32 one on the
averaged curves.

The times (median over the photos and levels) show what the precision buys on this CPU;
they mean little on CPUs without AMX, where ``"auto"`` keeps float32.

Writes ``precision.json`` and ``precision.md`` under ``--out``.

    python -m benchmarks.precision --threads 1 --out benchmarks/results
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import bench_common as common
from .photos import entries


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="bfloat16 against float32 transforms: pixel differences, symbols, size, PSNR, times.")
    common.add_photo_arguments(parser)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's choice)")
    return parser.parse_args(argv)


def compare(model, image: np.ndarray, quality: int, preference: str) -> dict:
    """Encodes ``image`` at ``quality`` and decodes it for ``preference`` in float32 and in
    bfloat16.

    Returns:
        ``max_difference`` (largest absolute pixel-value difference), ``differing``
        (fraction of values that differ), ``psnr_float32``, ``psnr_bfloat16`` (dB against
        ``image``), ``seconds_float32``, ``seconds_bfloat16`` (the synthesis alone).
    """
    from ugcodec.codec import decode_pixels, encode_latents

    _, latents = encode_latents(image, quality, model)
    decoded, seconds = {}, {}
    for precision in ("float32", "bfloat16"):
        started = time.perf_counter()
        decoded[precision] = decode_pixels(latents, preference, model, precision=precision)
        seconds[precision] = time.perf_counter() - started
    difference = np.abs(decoded["float32"].astype(np.int16) - decoded["bfloat16"].astype(np.int16))
    return {
        "max_difference": int(difference.max(initial=0)),
        "differing": float((difference > 0).mean()),
        "psnr_float32": common.psnr(image, decoded["float32"]),
        "psnr_bfloat16": common.psnr(image, decoded["bfloat16"]),
        "seconds_float32": seconds["float32"],
        "seconds_bfloat16": seconds["bfloat16"],
    }


def compare_encoding(model, image: np.ndarray, quality: int) -> dict:
    """Encodes ``image`` at ``quality`` in float32 and in bfloat16.

    Returns:
        ``symbols_changed`` (fraction of y symbols that differ), ``bytes_float32``,
        ``bytes_bfloat16``, ``psnr_float32``, ``psnr_bfloat16`` (the human decoding of
        each file, in float32, against ``image``), ``seconds_float32``,
        ``seconds_bfloat16`` (the encodings).
    """
    from ugcodec.codec import decode_pixels, encode_latents

    record = {}
    latents = {}
    for precision in ("float32", "bfloat16"):
        started = time.perf_counter()
        data, latents[precision] = encode_latents(image, quality, model, precision=precision)
        record[f"seconds_{precision}"] = time.perf_counter() - started
        record[f"bytes_{precision}"] = len(data)
        record[f"psnr_{precision}"] = common.psnr(image, decode_pixels(latents[precision], "human", model,
                                                                       precision="float32"))
    record["symbols_changed"] = float((latents["float32"].y != latents["bfloat16"].y).double().mean())
    return record


def run(args: argparse.Namespace) -> dict:
    from ugcodec.precision import native_bfloat16

    threads, photos, model = common.photos_and_model(args)
    model.synthesis("bfloat16"), model.analysis("bfloat16")  # built once, outside the timings
    records, encodings = [], []
    started = time.perf_counter()
    for name, image in photos:
        for quality in range(1, model.num_qualities + 1):
            for preference in ("human", "machine"):
                records.append({"photo": name, "quality": quality, "preference": preference,
                                **compare(model, image, quality, preference)})
            pixels = image.shape[0] * image.shape[1]
            encodings.append({"photo": name, "quality": quality, "pixels": pixels,
                              **compare_encoding(model, image, quality)})
        print(f"  {name}: done ({time.perf_counter() - started:.1f} s so far)")
    return {
        **common.report_head("precision", threads, model),
        "native_bfloat16": native_bfloat16(),
        "photo_set": args.photo_set,
        "photos": entries(photos),
        "max_size": args.max_size,
        "records": records,
        "encodings": encodings,
        "encoding_bd_rate": encoding_bd_rate(encodings),
        "seconds": time.perf_counter() - started,
    }


def summary(records: Sequence[dict]) -> dict:
    """Worst case and averages of :func:`compare`'s records."""
    return {
        "max_difference": max(r["max_difference"] for r in records),
        "differing_max": max(r["differing"] for r in records),
        "differing_mean": float(np.mean([r["differing"] for r in records])),
        "psnr_change_mean": float(np.mean([r["psnr_bfloat16"] - r["psnr_float32"] for r in records])),
        "psnr_change_min": min(r["psnr_bfloat16"] - r["psnr_float32"] for r in records),
        "seconds_float32": float(np.median([r["seconds_float32"] for r in records])),
        "seconds_bfloat16": float(np.median([r["seconds_bfloat16"] for r in records])),
    }


def encoding_curves(encodings: Sequence[dict]) -> Dict[str, "tuple[List[float], List[float]]"]:
    """Mean bpp and mean PSNR per level of each precision's files (:func:`compare_encoding`)."""
    curves: Dict[str, "tuple[List[float], List[float]]"] = {"float32": ([], []), "bfloat16": ([], [])}
    for quality in sorted({e["quality"] for e in encodings}):
        chosen = [e for e in encodings if e["quality"] == quality]
        for precision, (rates, psnrs) in curves.items():
            rates.append(float(np.mean([8 * e[f"bytes_{precision}"] / e["pixels"] for e in chosen])))
            psnrs.append(float(np.mean([e[f"psnr_{precision}"] for e in chosen])))
    return curves


def encoding_bd_rate(encodings: Sequence[dict]) -> Optional[float]:
    """BD-rate (%) of the bfloat16 encoder against the float32 one, on averaged curves."""
    from .rd import bd_rate

    curves = encoding_curves(encodings)
    return bd_rate(*curves["float32"], *curves["bfloat16"])["bd_rate"]


def tables(result: dict) -> List[str]:
    """The report's tables and their explanations (also used by ``benchmarks.report``)."""
    levels = sorted({r["quality"] for r in result["records"]})
    rows = []
    for preference in ("human", "machine"):
        for quality in levels:
            chosen = [r for r in result["records"] if r["preference"] == preference and r["quality"] == quality]
            s = summary(chosen)
            rows.append([preference, f"q{quality}", str(s["max_difference"]), f"{s['differing_mean']:.2%}",
                         f"{s['differing_max']:.2%}", f"{s['psnr_change_mean']:+.4f}", f"{s['psnr_change_min']:+.4f}",
                         f"{s['seconds_float32'] * 1000:.0f}", f"{s['seconds_bfloat16'] * 1000:.0f}"])
    overall = summary(result["records"])
    lines = [
        "Decoding: each file decoded with g_s in float32 (the reference) and partly in bfloat16 "
        "(ugcodec.precision). Max: the largest difference of a pixel value; differing: the fraction of values that differ "
        "(mean and worst photo); PSNR change: bfloat16's PSNR against the photo minus float32's (mean, worst); "
        "times: median synthesis per file.",
        "",
        common.markdown_table(
            ["decoding", "level", "max", "differing (mean)", "differing (worst)", "PSNR change (mean)",
             "PSNR change (worst)", "float32 ms", "bfloat16 ms"], rows, "llrrrrrrr"
        ),
        "",
        f"All files: max difference {overall['max_difference']}, at most {overall['differing_max']:.2%} of values "
        f"differing, PSNR change {overall['psnr_change_mean']:+.4f} dB on average "
        f"({overall['psnr_change_min']:+.4f} dB at worst); median synthesis {overall['seconds_float32'] * 1000:.0f} ms "
        f"in float32, {overall['seconds_bfloat16'] * 1000:.0f} ms in bfloat16.",
        "",
    ]
    encodings = result.get("encodings")
    if encodings:
        lines += ["Encoding: each photo encoded in float32 and in bfloat16; both files decoded for humans in "
                  "float32. Symbols changed: the fraction of y symbols that differ; size and PSNR: means over the "
                  "photos; times: median encoding.", ""]
        rows, curves = [], encoding_curves(encodings)
        for index, quality in enumerate(levels):
            chosen = [e for e in encodings if e["quality"] == quality]
            change = np.mean([e["bytes_bfloat16"] / e["bytes_float32"] - 1 for e in chosen])
            rows.append([f"q{quality}", f"{np.mean([e['symbols_changed'] for e in chosen]):.3%}",
                         f"{curves['float32'][0][index]:.4f}", f"{change:+.3%}",
                         f"{np.mean([e['psnr_bfloat16'] - e['psnr_float32'] for e in chosen]):+.4f}",
                         f"{np.median([e['seconds_float32'] for e in chosen]) * 1000:.0f}",
                         f"{np.median([e['seconds_bfloat16'] for e in chosen]) * 1000:.0f}"])
        lines.append(common.markdown_table(["level", "symbols changed", "bpp (float32)", "size change",
                                            "PSNR change", "float32 ms", "bfloat16 ms"], rows, "lrrrrrr"))
        bd = result.get("encoding_bd_rate")
        lines += ["", "BD-rate of the bfloat16 encoder against the float32 one (PSNR, averaged curves): "
                  + ("n/a" if bd is None else f"{bd:+.3f} %") + ".", ""]
    return lines


def report(result: dict) -> str:
    lines = [
        f"Photos: {', '.join(p['name'] for p in result['photos'])} ({result['photo_set']} set)",
        f"Model: {result['model']}",
        f"Threads: {result['environment']['torch_threads']}; CPU with AMX (where 'auto' picks bfloat16): "
        f"{'yes' if result['native_bfloat16'] else 'no'}",
        "",
    ]
    return "\n".join(lines + tables(result)).rstrip() + "\n"


def main(argv: Optional[Sequence[str]] = None) -> None:
    common.run_and_save("precision", parse_args(argv), run, report)


if __name__ == "__main__":
    main()
