#!/usr/bin/env python3
"""Write the shipped model's card (ugcodec/weights/MODEL_CARD.md) from the facts.

    python -m tools.model_card --run runs/cpu_small [--results benchmarks/results]
    python -m tools.model_card --from-card ugcodec/weights/MODEL_CARD.md


Takes the training facts from the run (its checkpoint: config, steps, teacher; its
log: wall-clock time, last losses) and the evaluation from the benchmark reports
(rd.md, analytics.md, speed.md written by benchmarks/*.py), so that every figure in the
card comes from a command that was run. Missing reports are named as missing.
Run it right after tools/export_weights.py: it refuses a run whose checkpoint is no
longer the shipped weights (training went on), since its steps and logs would then
describe other weights. ``--from-card`` instead carries the training sections over from
an existing card of the same transforms (e.g. after a channel context was added to them
with tools/train_channel_context.py, or when the run folder is on another machine) and
writes everything else afresh.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import sys


import torch

import ugcodec
from benchmarks.bench_common import psnr_at
from tools.training import model_from_checkpoint
from tools.export import export_bundle
from ugcodec.latent_coders import HyperpriorCoder, coder_entries
from ugcodec.weights import fingerprint_of, read_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BENCHMARKS = {
    "rd": ("Rate–distortion", "python -m benchmarks.rd"),
    "analytics": ("Machine analytics (unseen classifiers)", "python -m benchmarks.analytics"),
    "speed": ("Speed and memory", "python -m benchmarks.speed"),
    "capacity": ("Capacity of the transforms (what limits the top rates)", "python -m benchmarks.capacity --threads 2"),
}


def training_time(log_path: str) -> tuple[float, dict, dict]:
    """Wall-clock seconds over all resumed segments of a run, its first and its last log record.

    A run folder started with ``--init-from`` logs only its own steps: its first record's
    step then lies far past the start, and the seconds cover that run folder alone.
    """
    total, segment_last, first, last = 0.0, 0.0, {}, {}
    with open(log_path) as handle:
        for line in handle:
            record = json.loads(line)
            if record["seconds"] < segment_last:
                total += segment_last
            segment_last = record["seconds"]
            first = first or record
            last = record
    return total + segment_last, first, last


def wall_clock_text(seconds: float, first: dict, last: dict, log_every: int) -> str:
    """The model card's sentence on training time, honest about what the log covers."""
    text = f"Wall-clock {seconds / 3600:.2f} h over all resumed segments"
    if first and first["step"] > log_every:
        text = (f"Wall-clock {seconds / 3600:.2f} h for the steps this run folder logged "
                f"({first['step']} to {last['step']}); the steps before ran in earlier run folders "
                "and reached it through the committed compact checkpoint (`--init-from`), so their "
                "time is not in this log: the config's history lists the rounds")
    return text + ". The machine was shared with development work, so this is not a clean timing."


def stage_records(log_path: str, stage: int) -> list:
    with open(log_path) as handle:
        return [r for r in map(json.loads, handle) if r["stage"] == stage]


WEBP_TIE_DB = 0.01


def webp_line(human: list, webp: list) -> str:
    """The WebP target's line: at how many ugc rates inside WebP's range the human decoding
    beats WebP's PSNR (interpolated at ugc's bpp) by at least ``WEBP_TIE_DB``, with each
    rate's margin; a rate within the tolerance is a tie, not a win. Empty when no ugc rate
    lies inside WebP's range."""
    margins = [(p["setting"], p["psnr"] - theirs) for p in human
               if (theirs := psnr_at(webp, p["bpp"])) is not None]
    if not margins:
        return ""
    better = sum(margin >= WEBP_TIE_DB for _, margin in margins)
    ties = sum(abs(margin) < WEBP_TIE_DB for _, margin in margins)
    listed = ", ".join(f"q{q} {margin:+.2f} dB" for q, margin in margins)
    return (f"- Human decoding better than WebP at equal bpp: at {better} of {len(margins)} ugc rates inside "
            f"WebP's range" + (f", {ties} within {WEBP_TIE_DB} dB" if ties else "")
            + f" (PSNR margin, ugc minus WebP at ugc's bpp: {listed}) (target: most): "
            + ("met." if better * 2 > len(margins) else "not met."))


def paired_line(paired: list) -> str:
    """One classifier's paired machine-vs-human counts per quality (analytics.py's
    ``machine_vs_human``) and which differences are significant at 5 %, each test alone
    and after a Bonferroni correction over the qualities (one test per quality is run, so
    an uncorrected p just under 0.05 is expected by chance now and then)."""
    counts = ", ".join(f"q{q} {c['machine_only']}/{c['human_only']} (p={c['p_value']:.2f})" for q, c in paired)
    corrected_level = 0.05 / len(paired)

    def below(level: float) -> list:
        return [f"q{q}, in the {'machine' if c['machine_only'] > c['human_only'] else 'human'} decoding's favour"
                for q, c in paired if c["p_value"] < level]

    uncorrected, corrected = below(0.05), below(corrected_level)
    if not uncorrected:
        verdict = "none below 0.05, so no quality's difference is distinguishable from noise."
    else:
        verdict = (f"below 0.05 at {', '.join(uncorrected)}; after a Bonferroni correction over the "
                   f"{len(paired)} qualities (p < {corrected_level:.4f}): "
                   + (", ".join(corrected) if corrected else "none") + ".")
    return (f"  Paired by crop ({paired[0][1]['crops']} crops), crops only the machine / only the human decoding "
            f"agrees on: {counts}; exact McNemar p-values: {verdict}")


def weights_of(report: dict) -> str | None:
    """The weights fingerprint a benchmark report names in its ``model`` entry, or None."""
    match = re.search(r"fingerprint ([0-9a-f]{16})", report.get("model", ""))
    return match.group(1) if match else None


def read_report(path: str, fingerprint: str | None) -> tuple[dict | None, str | None]:
    """A benchmark report (json) if it exists and measured the weights ``fingerprint``.

    Returns ``(report, None)``; ``(None, None)`` where there is no report; ``(None, why)``
    where it measured other weights, so that a card never credits one set of weights with
    another's figures. A report that names no fingerprint, or ``fingerprint=None``, is
    taken as it is.
    """
    if not os.path.exists(path):
        return None, None
    with open(path) as handle:
        report = json.load(handle)
    if measured_other_weights(report, fingerprint):
        return None, (f"`{os.path.relpath(path, ROOT)}` measured weights {weights_of(report)}, not these: "
                      f"re-run `{report.get('command', '?')}`")
    return report, None


def measured_other_weights(report: dict, fingerprint: str | None) -> bool:
    """Whether ``report`` names weights other than ``fingerprint`` (False for None, or a
    report that names none)."""
    return fingerprint is not None and weights_of(report) not in (None, fingerprint)


def target_lines(results: str, title: str = "Targets", fingerprint: str | None = None) -> list:
    """Issue 3's targets, checked against the benchmark reports (json) in ``results`` that
    measured the weights ``fingerprint`` (any weights where it is None)."""
    lines = [f"## {title}", ""]
    rd_path, analytics_path = (os.path.join(results, f"{name}.json") for name in ("rd", "analytics"))
    stale = []
    rd, why = read_report(rd_path, fingerprint)
    stale += [why] if why else []
    if rd is not None:
        bd = rd["bd_rate"].get("ugc-human", {}).get("psnr", {}).get("bd_rate")
        if bd is not None:
            lines.append(f"- Human decoding, BD-rate (PSNR) against JPEG: {bd:+.1f}% (target: -30% or better): "
                         + ("met." if bd <= -30 else f"not met, {bd + 30:.1f} points short."))
        webp = webp_line(rd["curves"].get("ugc-human", []), rd["curves"].get("webp", []))
        if webp:
            lines.append(webp)
    analytics, why = read_report(analytics_path, fingerprint)
    stale += [why] if why else []
    if analytics is not None:
        human = {p["setting"]: p for p in analytics["curves"].get("ugc-human", [])}
        machine = {p["setting"]: p for p in analytics["curves"].get("ugc-machine", [])}
        for name in analytics.get("classifiers", {}):
            key = f"{name}_top1"
            pairs = [(q, machine[q].get(key), human[q].get(key)) for q in sorted(human) if q in machine]
            pairs = [(q, m, h) for q, m, h in pairs if m is not None and h is not None]
            if not pairs:
                continue
            higher = [q for q, m, h in pairs if m > h]
            detail = ", ".join(f"q{q} {m:.3f} vs {h:.3f}" for q, m, h in pairs)
            if name == "teacher":  # trained against: a diagnostic, never a target
                lines.append(f"- Diagnostic, not a target (the teacher, MobileNetV2, trained the machine decoding): its "
                             f"top-1 agreement is higher for the machine decoding at {len(higher)} of {len(pairs)} "
                             f"qualities (machine vs human: {detail}).")
            else:
                lines.append(f"- Machine decoding, {name} top-1 agreement higher than the human decoding's at every "
                             f"quality: at {len(higher)} of {len(pairs)} ("
                             + ("met" if len(higher) == len(pairs) else "not met") + f"; machine vs human: {detail}).")
            paired = [(row["setting"], row[name]) for row in analytics.get("machine_vs_human", []) if name in row]
            if paired:
                lines.append(paired_line(paired))
    lines += [f"- Not checked for these weights: {why}." for why in stale]
    if len(lines) == 2:
        lines.append("- Not checked: no benchmark reports.")
    return lines + [""]


def refinement_target_lines(results: str, fingerprint: str | None = None) -> list:
    """The targets again for each ``results/refine*/`` folder: the same benchmarks run on
    files made with encoder refinement (``rd.py --refine N --out results/refineN``)."""
    found = []
    for folder in glob.glob(os.path.join(results, "refine*")):
        reports = []
        for name in ("rd", "analytics"):
            path = os.path.join(folder, f"{name}.json")
            if os.path.exists(path):
                with open(path) as handle:
                    reports.append(json.load(handle))
        steps = sorted({report.get("ugc_refine") for report in reports} - {None})
        if steps:
            found.append((steps, folder, reports))
    lines = []
    for steps, folder, reports in sorted(found):  # in order of the steps the reports name
        commands = [report["command"] for report in reports]
        noun = "step" if steps == [1] else "steps"
        title = f"Targets with encoder refinement ({', '.join(map(str, steps))} {noun}, `ugc encode --refine N`)"
        section = target_lines(folder, title, fingerprint)
        lines += section[:2] + [f"Commands: {'; '.join(f'`{c}`' for c in commands)}; reports in "
                                f"`benchmarks/results/{os.path.basename(folder)}/`.", ""] + section[2:]
    return lines


def photo_set_target_lines(results: str, fingerprint: str | None = None) -> list:
    """The targets again for each ``results/*/`` folder whose reports ran on another photo
    set than the standard one (``--photo-set all`` or ``debian``), with the paired
    machine-vs-human counts broken down by photo group (``photos.group_of``): a larger set
    says more than the standard set's 84 crops, and the groups say where a difference
    comes from."""
    lines = []
    for folder in sorted(glob.glob(os.path.join(results, "*", ""))):
        path = os.path.join(folder, "analytics.json")
        if not os.path.exists(path):
            continue
        with open(path) as handle:
            report = json.load(handle)
        photo_set = report.get("photo_set", "standard")
        if photo_set == "standard":
            continue
        name = os.path.basename(os.path.normpath(folder))
        commands = [report["command"]]
        if os.path.exists(os.path.join(folder, "rd.json")):
            with open(os.path.join(folder, "rd.json")) as handle:
                commands.insert(0, json.load(handle)["command"])
        section = target_lines(folder, f"Targets on the `{photo_set}` photo set ({len(report['photos'])} photos)",
                               fingerprint)
        lines += section[:2] + [f"Commands: {'; '.join(f'`{c}`' for c in commands)}; reports in "
                                f"`benchmarks/results/{name}/`.", ""] + section[2:-1]
        if measured_other_weights(report, fingerprint):  # target_lines said so; no group figures either
            lines.append("")
            continue
        short_of: dict = {}
        for group, rows in (report.get("machine_vs_human_by_group") or {}).items():
            for classifier in report.get("classifiers", {}):
                paired = [(row["setting"], row[classifier]) for row in rows if classifier in row]
                if not paired:
                    continue
                above = sum(c["machine_only"] > c["human_only"] for _, c in paired)
                lines.append(f"- Group {group}, {classifier}: machine decoding above the human decoding at {above} "
                             f"of {len(paired)} qualities.")
                lines.append(paired_line(paired))
                if above < len(paired):
                    short_of.setdefault(classifier, []).append(f"{group} {above} of {len(paired)}")
        if report.get("machine_vs_human_by_group"):
            for classifier in report.get("classifiers", {}):
                if classifier == "teacher":
                    continue
                lines.append(f"- {classifier}, group by group: " + (
                    "the machine decoding is above the human decoding at every quality in every group."
                    if classifier not in short_of else
                    "not above at every quality in every group (" + ", ".join(short_of[classifier])
                    + "), so a pooled verdict rests on the groups where it is."))
        lines.append("")
    return lines


def capacity_limitation(results: str, fingerprint: str | None = None) -> str:
    """The Limitations line on the transforms' capacity, from ``capacity.json`` (standard
    photos) and ``all/capacity.json`` where they measured these weights."""
    measured = []
    for folder in (results, os.path.join(results, "all")):
        report, _ = read_report(os.path.join(folder, "capacity.json"), fingerprint)
        if report is not None:
            measured.append(report)
    if not measured:
        return ("- The transforms' capacity at the top rates is not measured for these weights: "
                "run `python -m benchmarks.capacity`.")
    findings = []
    for report in measured:
        levels = report["levels"]
        short = [level for level in levels
                 if level["webp_psnr"] is not None and level["unrounded_psnr"] < level["webp_psnr"]]
        top = levels[-1]
        findings.append(
            f"on the `{report['photo_set']}` set's {len(report['photos'])} photos, g_s(g_a(x)) reaches {top['unrounded_psnr']:.1f} dB at q{top['quality']}"
            + (f" against WebP's {top['webp_psnr']:.1f} dB at its bpp" if top["webp_psnr"] is not None else "")
            + (f", so {', '.join('q' + str(level['quality']) for level in short)} cannot overtake WebP by "
               "training the entropy model" if short else ", above WebP at every rate")
            + f"; {report['latent_channels'] - top['channels_in_use']} of the {report['latent_channels']} "
            f"latent channels stay unused at q{top['quality']}")
    return ("- The transforms limit the top rates (`benchmarks/capacity.py`): with no quantisation at all, "
            + "; ".join(findings) + ". So more latent channels alone would not help; wider or deeper transforms "
            "(N = 64 here, 128 in the paper's model) are the lever left, at several times the training cost "
            "of this model (tools/EXPERIMENTS.md), so it is a GPU lease's work (`tools/gpu_round.sh`).")


TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_card_template.md")


def template_section(name: str, **values) -> list:
    """The lines of section ``name`` of ``model_card_template.md`` (the text after its
    ``<!-- section: name -->`` marker), its ``{placeholders}`` filled from ``values``.

    Raises:
        KeyError: no such section, or a placeholder without a value.
    """
    with open(TEMPLATE) as handle:
        parts = re.split(r"^<!-- section: (\w+) -->\n", handle.read(), flags=re.MULTILINE)
    sections = dict(zip(parts[1::2], parts[2::2]))
    return sections[name].strip().format(**values).splitlines()


CROP_WEIGHTING_TEXT = {
    "pixel": "images drawn in proportion to their area",
    "image": "every image (each downscale of each photo) drawn equally often",
}


def transforms_fingerprint(model) -> bytes:
    """The fingerprint of a model's plain-hyperprior weights: its own for model id 1; for
    model ids 2 and 3, that of the weights its channel context was trained on (the
    context is added after training, ``tools/train_channel_context.py``)."""
    if model.channel_context is None:
        return model.fingerprint
    bundle = read_bundle(model.path)
    for key in coder_entries():
        bundle.pop(key, None)
    return fingerprint_of({**bundle, "model_id": HyperpriorCoder.model_id})


def context_lines(model) -> list:
    """What the model card says about a channel context (none for model id 1)."""
    context = model.channel_context
    if context is None:
        return []
    hidden = [int(layer.weight.shape[0]) for layer in context.networks[0].layers[:-1]]
    base = transforms_fingerprint(model).hex()
    if context.means:
        what = (
            f"- Channel-conditional means and scales (model id 3): the y channels are coded in {context.slices} "
            f"slices; each slice's means and coding tables are corrected by an integer-exact network (hidden "
            f"widths {hidden}) from the hyper-prior and what is decoded of the slices before it. The transforms "
            f"are those of the weights {base}, frozen while the context was trained; the pixels differ from "
            "theirs only by the rounding of the latent around the corrected means"
        )
    else:
        what = (
            f"- Channel-conditional scales (model id 2): the y channels are coded in {context.slices} slices; "
            f"each slice's coding tables are corrected by an integer-exact network (hidden widths {hidden}) from "
            "the hyper-prior and the symbols of the slices before it. Symbols and pixels are those of the weights "
            f"{base} it was trained on, with transforms frozen"
        )
    section = "Channel-conditional means and scales" if context.means else "Channel-conditional scales"
    return [what + f" (`tools/train_channel_context.py`, tools/EXPERIMENTS.md \"{section}\")."]


def card_training_lines(path: str, model) -> list:
    """Title, fingerprint line and the training sections (``## Model`` to the line before
    ``## Targets``) for ``model``, carried over from the card at ``path``.

    Raises:
        ValueError: the card describes other transforms (its fingerprint is neither
            the model's nor that of the weights its channel context was trained on), or
            has no such sections.
    """
    with open(path) as handle:
        lines = handle.read().splitlines()
    found = re.search(r"Weights fingerprint `([0-9a-f]{16})`", "\n".join(lines[:5]))
    accepted = {model.fingerprint.hex(), transforms_fingerprint(model).hex()}
    if not found or found.group(1) not in accepted:
        raise ValueError(f"{path} describes weights {found.group(1) if found else '?'}, not these transforms")
    try:
        start = lines.index("## Model")
        end = next(i for i, line in enumerate(lines) if line.startswith("## Targets"))
    except (ValueError, StopIteration):
        raise ValueError(f"{path} has no training sections") from None
    sections = [line for line in lines[start:end] if not line.startswith("- Channel-conditional")]
    while sections and not sections[-1].strip():  # write_card adds the blank line before "## Targets"
        sections.pop()
    model_end = sections.index("", 1)  # the blank line that closes "## Model"
    source = f"weights `{found.group(1)}`" if found.group(1) != model.fingerprint.hex() else "these weights"
    return [
        "# Model card: ugc-hyperprior-pcdm (shipped default weights)",
        "",
        f"Weights fingerprint `{model.fingerprint.hex()}` (written in every .ugc header). Generated by "
        f"`python -m tools.model_card --from-card {os.path.relpath(path, ROOT)}`: the model and training "
        f"sections are carried over from the card of {source}, the rest is measured for these weights.",
        "",
        *sections[:model_end],
        *context_lines(model),
        *sections[model_end:],
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="training run folder (checkpoint.pt, log.jsonl)")
    source.add_argument("--from-card", help="carry the training sections over from this card (see above)")
    parser.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results"))
    parser.add_argument("--hardware", default=f"{platform.processor() or platform.machine()} CPU, "
                        f"{os.cpu_count()} cores, no GPU", help="what the model was trained on")
    parser.add_argument("--out", default=os.path.join(ROOT, "ugcodec", "weights", "MODEL_CARD.md"))
    args = parser.parse_args(argv)
    model = ugcodec.load_model()
    if args.from_card:
        try:
            lines = card_training_lines(args.from_card, model)
        except (OSError, ValueError) as error:
            parser.error(str(error))
    else:
        lines = run_training_lines(args, model, parser)
    write_card(lines, model, args.results, args.out)
    return 0


def run_training_lines(args, model, parser) -> list:
    """Title, fingerprint line and the training sections, from a run folder."""
    state = torch.load(os.path.join(args.run, "checkpoint.pt"), map_location="cpu", weights_only=False)
    config = state["config"]
    run_fingerprint = fingerprint_of(export_bundle(model_from_checkpoint(state)))
    if run_fingerprint != transforms_fingerprint(model):
        parser.error(f"the run's checkpoint (step {state['step']}) exports as weights {run_fingerprint.hex()}, "
                     f"not the shipped {model.fingerprint.hex()}: write the card right after "
                     "tools/export_weights.py, before training goes on")
    seconds, first_log, last = training_time(os.path.join(args.run, "log.jsonl"))
    stage1 = stage_records(os.path.join(args.run, "log.jsonl"), 1)
    stage2 = stage_records(os.path.join(args.run, "log.jsonl"), 2)
    steps1 = min(state["step"], config["stage1_steps"])
    steps2 = max(0, state["step"] - config["stage1_steps"])
    model_cfg = config["model"]
    stage2_weight = config.get("stage2_lambda_semantic")
    stage2_semantic = "λ_s" if stage2_weight is None else f"λ_s2 = {stage2_weight}"
    lines = [
        "# Model card: ugc-hyperprior-pcdm (shipped default weights)",
        "",
        f"Weights fingerprint `{model.fingerprint.hex()}` (written in every .ugc header). "
        f"Generated by `python -m tools.model_card --run {os.path.relpath(args.run, ROOT)}`.",
        "",
        *template_section("model", N=model_cfg["N"], M=model_cfg["M"], embedding_dim=model_cfg["embedding_dim"],
                          levels=len(model_cfg["lambdas"]), lambdas=", ".join(str(v) for v in model_cfg["lambdas"])),
        *context_lines(model),
        "",
        *template_section(
            "training_data", crop=config["crop"], batch=config["batch"],
            crop_weighting=CROP_WEIGHTING_TEXT[config.get("crop_weighting", "pixel")],
            crop_detail=(f"; flat crops drawn less often (kept with probability min(1, detail / "
                         f"{config['crop_detail']}), `tools.training.crop_detail`)"
                         if config.get("crop_detail", 0) > 0 else ""),
        ),
        "",
        *template_section(
            "training", hardware=args.hardware,
            wall_clock=wall_clock_text(seconds, first_log, last, config.get("log_every", 50)),
            steps1=steps1, planned1=config["stage1_steps"], lr=config["lr"],
            lambda_machine_mse=config["lambda_machine_mse"], lambda_semantic=config["lambda_semantic"],
            steps2=steps2, planned2=config["stage2_steps"], stage2_lr=config["stage2_lr"],
            stage2_semantic=stage2_semantic, teacher=state.get("teacher", config["teacher"]),
            last_losses=", ".join(f"{k} {v}" for k, v in last.items() if k not in ("seconds",)),
        ),
    ]
    if stage1:
        first = stage1[0]
        lines.append(f"- First stage-1 log (step {first['step']}): bpp {first['bpp']}, "
                     f"PSNR human {first['psnr_human']} dB, machine {first['psnr_machine']} dB.")
    if stage2:
        # Stage 2 ran once per resumed segment: describe the last one, which made these weights.
        final = [r for r in stage2 if not stage1 or r["step"] > stage1[-1]["step"]] or stage2
        window = max(1, min(4, len(final) // 2))  # single 50-step logs are noisy: average a few
        before = sum(r["semantic_global"] for r in final[:window]) / window
        after = sum(r["semantic_global"] for r in final[-window:]) / window
        lines.append(f"- The final stage 2 (logs from step {final[0]['step']} to {final[-1]['step']}): global semantic "
                     f"distance {before:.4f} in its first {window} logs, {after:.4f} in its last {window} "
                     "(training-batch averages).")
    return lines


def write_card(lines: list, model, results: str, out: str) -> None:
    """Appends the targets, the evaluation and the limitations to ``lines``; writes ``out``."""
    shipped = model.fingerprint.hex()
    lines += ([""] + target_lines(results, fingerprint=shipped) + refinement_target_lines(results, shipped)
              + photo_set_target_lines(results, shipped))
    lines += ["## Evaluation (photos never used in training)", ""]
    for name, (title, command) in BENCHMARKS.items():
        path = os.path.join(results, f"{name}.md")
        lines.append(f"### {title}")
        report, why = read_report(os.path.join(results, f"{name}.json"), shipped)
        if why:
            lines += [f"Not measured for these weights yet: {why}.", ""]
        elif os.path.exists(path):
            command = (report or {}).get("command", command)
            with open(path) as handle:
                lines += [f"Command: `{command}` (report below as it printed).", "", handle.read().strip(), ""]
        else:
            lines += [f"Not measured for these weights yet: run `{command}`.", ""]
    lines += template_section("limitations", capacity_limitation=capacity_limitation(results, shipped))
    with open(out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
