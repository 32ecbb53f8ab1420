"""Rate-distortion benchmark: ugc (human and machine decodings) against Pillow's codecs.

For every evaluation photo (see ``photos.py``) and every setting of every codec it
measures bpp (file bytes * 8 / pixels), PSNR (RGB, 8-bit) and MS-SSIM; the curves are
averaged over photos setting by setting, and BD-rates against JPEG are computed on the
averaged curves with the ``bjontegaard`` package (Akima interpolation, over the overlap
of the two curves' quality ranges; negative = fewer bits than JPEG for the same quality).

Writes ``rd.json``, ``rd.md`` and ``rd.png`` under ``--out``.

    python -m benchmarks.rd                              # all photos, 768x512 max
    python -m benchmarks.rd --photos 1 --max-size 256    # a smoke test
"""
from __future__ import annotations

import argparse
import time
import warnings
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
import PIL

from . import bench_common as common
from .photos import PHOTO_SETS, describe, entries, load_photos

ANCHOR = "jpeg"
UGC_CODECS = ("ugc-human", "ugc-machine")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Rate-distortion benchmark (bpp, PSNR, MS-SSIM, BD-rate vs JPEG).")
    parser.add_argument("--photos", type=int, default=None, help="use at most N photos (default: all)")
    parser.add_argument("--photo-set", default="standard", choices=PHOTO_SETS,
                        help="standard (7 photos from Python packages, the default), debian (29 more, fetched once "
                             "with 'python -m benchmarks.photos --fetch') or all (see photos.py)")
    parser.add_argument("--max-size", default="768x512", help="shrink/center-crop photos to at most WxH ('0': full size)")
    parser.add_argument("--weights", default=None, help="ugc weights file (default: the shipped weights)")
    parser.add_argument("--out", default=common.DEFAULT_OUT, help="output folder (default: benchmarks/results)")
    parser.add_argument(
        "--codecs", default="ugc,jpeg,webp,avif,jpeg2000",
        help="comma-separated subset of ugc,jpeg,webp,avif,jpeg2000 (jpeg is needed for BD-rates)",
    )
    parser.add_argument("--ugc-qualities", default=None, help="comma-separated ugc quality levels (default: all)")
    parser.add_argument("--sweep-step", type=int, default=1, help="keep every K-th setting of the Pillow sweeps (faster)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--refine", type=int, default=0,
                        help="ugc encoder refinement steps (ugcodec.encode's refine; default 0: off)")
    parser.add_argument("--reuse-baselines", metavar="REPORT", default=None,
                        help="take the Pillow codecs' records from an earlier rd.json of the same photos and "
                             "Pillow instead of measuring them again (they do not depend on the ugc weights)")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- BD-rate
def _monotone(rate: Sequence[float], dist: Sequence[float]):
    """Sorts points by rate and keeps those whose rate and distortion both increase."""
    points = sorted((r, d) for r, d in zip(rate, dist) if np.isfinite(r) and np.isfinite(d) and r > 0)
    kept: List[tuple] = []
    for r, d in points:
        if not kept or (r > kept[-1][0] and d > kept[-1][1]):
            kept.append((r, d))
    return np.array([p[0] for p in kept]), np.array([p[1] for p in kept])


def bd_rate(anchor_rate, anchor_dist, test_rate, test_dist) -> Dict[str, Optional[float]]:
    """BD-rate (%) of test against anchor, and the overlap of their quality ranges."""
    import bjontegaard as bd

    ra, da = _monotone(anchor_rate, anchor_dist)
    rt, dt = _monotone(test_rate, test_dist)
    if len(ra) < 2 or len(rt) < 2:
        return {"bd_rate": None, "overlap": None, "note": "fewer than 2 monotone points"}
    low, high = max(da.min(), dt.min()), min(da.max(), dt.max())
    overlap = max(high - low, 0.0) / (max(da.max(), dt.max()) - min(da.min(), dt.min()))
    if overlap <= 0:
        return {"bd_rate": None, "overlap": 0.0, "note": "quality ranges do not overlap"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = bd.bd_rate(ra, da, rt, dt, method="akima", require_matching_points=False, min_overlap=0)
    return {"bd_rate": float(value), "overlap": float(overlap), "note": ""}


# --------------------------------------------------------------------------- main
def run(args: argparse.Namespace) -> dict:
    threads = common.set_threads(args.threads)
    photos = load_photos(args.photos, args.max_size, verbose=True, photo_set=args.photo_set)
    print(f"Photos ({len(photos)}): {describe(photos)}")
    wanted = [name.strip() for name in args.codecs.split(",") if name.strip()]
    notes: List[str] = []
    pillow, missing = common.available_pillow_codecs([n for n in common.PILLOW_CODECS if n in wanted])
    notes += missing
    unknown = [n for n in wanted if n != "ugc" and n not in common.PILLOW_CODECS]
    if unknown:
        raise SystemExit(f"unknown codecs: {unknown}")
    model = None
    qualities: List[int] = []
    if "ugc" in wanted:
        model = common.load_ugc_model(args.weights)
        qualities = (
            [int(q) for q in args.ugc_qualities.split(",")] if args.ugc_qualities else list(range(1, model.num_qualities + 1))
        )
        print(common.ugc_description(model, args.refine))

    sweeps = {codec.name: codec.settings[:: max(1, args.sweep_step)] for codec in pillow}
    reused: Dict[tuple, dict] = {}
    if args.reuse_baselines and pillow:
        expected = {"photos": entries(photos), "max_size": args.max_size, "pillow": PIL.__version__}
        reused, note = common.load_reusable_records(args.reuse_baselines, expected, sweeps, "rd.py")
        notes.append(note)

    records: List[dict] = []
    started = time.perf_counter()
    for name, image in photos:
        pixels = image.shape[0] * image.shape[1]

        def add(codec: str, setting, size: int, decoded: np.ndarray, seconds: float) -> None:
            records.append({
                "photo": name, "codec": codec, "setting": setting, "bytes": size,
                "bpp": size * 8.0 / pixels, "psnr": common.psnr(image, decoded),
                "ms_ssim": common.ms_ssim(image, decoded), "seconds": seconds,
            })

        for quality in qualities:
            t0 = time.perf_counter()
            size, decoded = common.ugc_roundtrip(image, quality, model, refine=args.refine)
            seconds = time.perf_counter() - t0
            add("ugc-human", quality, size, decoded["human"], seconds)
            add("ugc-machine", quality, size, decoded["machine"], seconds)
        for codec in pillow:
            for setting in sweeps[codec.name]:
                if (name, codec.name, setting) in reused:
                    records.append(reused[(name, codec.name, setting)])
                    continue
                t0 = time.perf_counter()
                size, decoded = codec.roundtrip(image, setting)
                add(codec.name, setting, size, decoded, time.perf_counter() - t0)
        print(f"  {name}: done ({time.perf_counter() - started:.1f} s so far)")

    # Average over photos, setting by setting (only settings every photo has).
    by_key: Dict[tuple, List[dict]] = defaultdict(list)
    for record in records:
        by_key[(record["codec"], record["setting"])].append(record)
    codecs = [c for c in (list(UGC_CODECS) if model else []) + [c.name for c in pillow]]
    curves: Dict[str, List[dict]] = {}
    for codec in codecs:
        points = []
        for (name, setting), group in by_key.items():
            if name != codec or len(group) != len(photos):
                continue
            points.append({
                "setting": setting,
                "bpp": float(np.mean([r["bpp"] for r in group])),
                "psnr": float(np.mean([r["psnr"] for r in group])),
                "ms_ssim": float(np.mean([r["ms_ssim"] for r in group])),
            })
        curves[codec] = sorted(points, key=lambda p: p["bpp"])

    bd: Dict[str, dict] = {}
    if ANCHOR in curves:
        anchor = curves[ANCHOR]
        for codec in codecs:
            if codec == ANCHOR:
                continue
            test = curves[codec]
            bd[codec] = {
                "psnr": bd_rate([p["bpp"] for p in anchor], [p["psnr"] for p in anchor],
                                [p["bpp"] for p in test], [p["psnr"] for p in test]),
                "ms_ssim_db": bd_rate([p["bpp"] for p in anchor], [common.msssim_db(p["ms_ssim"]) for p in anchor],
                                      [p["bpp"] for p in test], [common.msssim_db(p["ms_ssim"]) for p in test]),
            }
    else:
        notes.append("jpeg not run: no BD-rates")

    return {
        **common.report_head("rd", threads, model, args.refine),
        "photo_set": args.photo_set,
        "photos": entries(photos),
        "max_size": args.max_size,
        "anchor": ANCHOR,
        "bd_method": "bjontegaard.bd_rate, akima, averaged curves, MS-SSIM in dB (-10 log10(1 - MS-SSIM))",
        "notes": notes,
        "curves": curves,
        "bd_rate": bd,
        "records": records,
        "seconds": time.perf_counter() - started,
    }


def report(result: dict) -> str:
    lines = [f"Photos: {', '.join(p['name'] + ' ' + str(p['width']) + 'x' + str(p['height']) for p in result['photos'])}"]
    if result["model"]:
        lines.append(f"Model: {result['model']}")
    lines.append("")
    summary = []
    for codec, points in result["curves"].items():
        if not points:
            continue
        entry = result["bd_rate"].get(codec)

        def cell(key: str) -> str:
            if codec == result["anchor"]:
                return "0 (anchor)"
            if not entry or entry[key]["bd_rate"] is None:
                return "n/a" + (f" ({entry[key]['note']})" if entry else "")
            overlap = entry[key]["overlap"]
            return f"{entry[key]['bd_rate']:+.1f}%" + (f" (overlap {overlap:.0%})" if overlap < 0.75 else "")

        summary.append([
            codec, len(points), f"{points[0]['bpp']:.3f}–{points[-1]['bpp']:.3f}", cell("psnr"), cell("ms_ssim_db"),
        ])
    lines.append("BD-rate against JPEG (negative: fewer bits for the same quality):")
    lines.append("")
    lines.append(common.markdown_table(["codec", "points", "bpp range", "BD-rate (PSNR)", "BD-rate (MS-SSIM dB)"], summary))
    lines.append("")
    lines.append(f"Averaged over {len(result['photos'])} photo(s):")
    lines.append("")
    rows = []
    for codec, points in result["curves"].items():
        entry = result["bd_rate"].get(codec)
        bd_psnr = "anchor" if codec == result["anchor"] else (
            f"{entry['psnr']['bd_rate']:+.1f}%" if entry and entry["psnr"]["bd_rate"] is not None else "n/a")
        for index, point in enumerate(points):
            rows.append([
                codec if index == 0 else "", point["setting"], f"{point['bpp']:.4f}", f"{point['psnr']:.2f}",
                f"{point['ms_ssim']:.4f}", bd_psnr if index == 0 else "",
            ])
    lines.append(common.markdown_table(["codec", "setting", "bpp", "PSNR (dB)", "MS-SSIM", "BD-rate (PSNR)"], rows))
    for note in result["notes"]:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    plt = common.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {"ugc-human": "o-", "ugc-machine": "s--"}
    for codec, points in result["curves"].items():
        if not points:
            continue
        bpp = [p["bpp"] for p in points]
        axes[0].plot(bpp, [p["psnr"] for p in points], styles.get(codec, ".-"), label=codec)
        axes[1].plot(bpp, [common.msssim_db(p["ms_ssim"]) for p in points], styles.get(codec, ".-"), label=codec)
    axes[0].set(xlabel="bpp", ylabel="PSNR (dB, RGB)", title="PSNR vs rate")
    axes[1].set(xlabel="bpp", ylabel="MS-SSIM (dB)", title="MS-SSIM vs rate")
    for axis in axes:
        common.finish_axis(axis, 8)
    common.save_figure(figure, path, result, averaged=True)


def main(argv: Optional[Sequence[str]] = None) -> None:
    common.run_and_save("rd", parse_args(argv), run, report, plot)


if __name__ == "__main__":
    main()
