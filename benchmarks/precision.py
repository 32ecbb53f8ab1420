"""Precision benchmark: what decoding g_s's residual branches in bfloat16 does to the pixels.

For every photo, quality level and preference (human, machine) it decodes the same file
twice, with ``precision="float32"`` (the reference decoder) and ``precision="bfloat16"``
(:mod:`ugcodec.synthesis`), and reports:

- the largest absolute difference of a pixel value, and the fraction of values that differ
  (bitstream_spec.md §11 bounds both);
- the PSNR of each decoding against the photo, and their difference.

The times of the two decodings (median over the photos and levels) show what the
precision buys on this CPU; they mean little on CPUs without AMX, where ``"auto"`` keeps
float32.

Writes ``precision.json`` and ``precision.md`` under ``--out``.

    python -m benchmarks.precision --threads 1 --out benchmarks/results
"""
from __future__ import annotations

import argparse
import time
from typing import Optional, Sequence

import numpy as np

from . import bench_common as common
from .photos import PHOTO_SETS, describe, entries, load_photos


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="bfloat16 against float32 synthesis: pixel differences and PSNR.")
    parser.add_argument("--photos", type=int, default=None, help="use at most N photos (default: all)")
    parser.add_argument("--photo-set", default="standard", choices=PHOTO_SETS, help="evaluation photos (see photos.py)")
    parser.add_argument("--max-size", default="768x512", help="shrink/center-crop photos to at most WxH ('0': full size)")
    parser.add_argument("--weights", default=None, help="ugc weights file (default: the shipped weights)")
    parser.add_argument("--out", default=common.DEFAULT_OUT, help="output folder (default: benchmarks/results)")
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


def run(args: argparse.Namespace) -> dict:
    from ugcodec.synthesis import native_bfloat16

    threads = common.set_threads(args.threads)
    photos = load_photos(args.photos, args.max_size, verbose=True, photo_set=args.photo_set)
    print(f"Photos ({len(photos)}): {describe(photos)}")
    model = common.load_ugc_model(args.weights)
    print(common.ugc_description(model))
    model.synthesis("bfloat16")  # built once, outside the timings
    records = []
    started = time.perf_counter()
    for name, image in photos:
        for quality in range(1, model.num_qualities + 1):
            for preference in ("human", "machine"):
                records.append({"photo": name, "quality": quality, "preference": preference,
                                **compare(model, image, quality, preference)})
        print(f"  {name}: done ({time.perf_counter() - started:.1f} s so far)")
    return {
        **common.report_head("precision", threads, model),
        "native_bfloat16": native_bfloat16(),
        "photo_set": args.photo_set,
        "photos": entries(photos),
        "max_size": args.max_size,
        "records": records,
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


def report(result: dict) -> str:
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
        f"Photos: {', '.join(p['name'] for p in result['photos'])} ({result['photo_set']} set)",
        f"Model: {result['model']}",
        f"Threads: {result['environment']['torch_threads']}; CPU with AMX (where 'auto' picks bfloat16): "
        f"{'yes' if result['native_bfloat16'] else 'no'}",
        "",
        "Each file decoded with g_s in float32 (the reference) and with its residual branches in bfloat16. "
        "Max: the largest difference of a pixel value; differing: the fraction of values that differ "
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
    ]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    common.run_and_save("precision", parse_args(argv), run, report)


if __name__ == "__main__":
    main()
