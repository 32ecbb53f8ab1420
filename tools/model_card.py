#!/usr/bin/env python3
"""Write the shipped model's card (ugcodec/weights/MODEL_CARD.md) from a template and the facts.

    python -m tools.model_card                       # render the card
    python -m tools.model_card --run runs/cpu_small  # first record the run's training facts

The card is ``tools/model_card_template.md`` (all its prose) with its placeholders filled
from the shipped weights, ``tools/model_card_training.json`` (how they were trained) and
the benchmark reports in ``benchmarks/results/``; each target's verdict is computed from
the reports against :data:`TARGETS`. A report of other weights counts as not measured, so
a card never credits one set of weights with another's figures.

``--adapters-run`` records the facts of a machine-adapter run the same way (after
tools/export_weights.py has shipped base + adapters), and ``--synthesis-run`` those of a
``tools/distill_synthesis`` run whose g_s the shipped weights carry (trained on from the
weights the facts described until then, whose files they decode).

``--run`` reads the training facts from a run folder (its checkpoint's config and steps,
its log's time span) and rewrites the facts file before rendering. Run it right after
tools/export_weights.py: it refuses a run whose checkpoint is no longer the shipped
weights' transforms, since its steps would then describe other weights. A channel context
added later (tools/train_channel_context.py) keeps the facts: they name the transforms.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import sys
from typing import Dict, List, Optional, Tuple

import ugcodec
from benchmarks.report import fingerprint_of, load_report, paired
from ugcodec.weights import CodecModel, fingerprint_of as bundle_fingerprint, read_bundle

from .export import export_adapted_bundle, without_channel_context, without_machine_adapters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
TEMPLATE = os.path.join(ROOT, "tools", "model_card_template.md")
FACTS = os.path.join(ROOT, "tools", "model_card_training.json")
CARD = os.path.join(ROOT, "ugcodec", "weights", "MODEL_CARD.md")

#: The model issue's acceptance targets, which the card checks.
TARGETS = {
    "bd_rate": -50.0,     # BD-rate (PSNR) against JPEG, %, human decoding: at most this
    "best_psnr": 36.0,    # dB, human decoding at the best quality, standard photos: at least
    "decode_ratio": 1.0,  # ugc decode time / compressai mbt2018-mean's: at most
    "weights_mb": 20.0,   # shipped weights file, 10^6 bytes: below
}


def template_section(name: str, **values) -> str:
    """Section ``name`` of the template (the text after its ``<!-- section: name -->``
    marker), its ``{placeholders}`` filled from ``values``.

    Raises:
        KeyError: no such section, or a placeholder without a value.
    """
    with open(TEMPLATE) as handle:
        parts = re.split(r"^<!-- section: (\w+) -->\n", handle.read(), flags=re.MULTILINE)
    sections = dict(zip(parts[1::2], parts[2::2]))
    return sections[name].strip().format(**values)


def transforms_fingerprint(model: CodecModel) -> bytes:
    """The fingerprint of a model's plain-hyperprior weights without machine adapters:
    its own for model id 1; for model ids 2 and 3, that of the weights its channel context
    was trained on; for weights with machine adapters, that of the weights they were added
    to. Both the context and the adapters are added after training
    (``tools/train_channel_context.py``, ``tools/configs/adapter_wide.toml``)."""
    if model.channel_context is None and not model.config.machine_adapter:
        return model.fingerprint
    bundle = without_channel_context(read_bundle(model.path))  # added last, removed first
    return bundle_fingerprint(without_machine_adapters(bundle) or bundle)


def fingerprint_before_context(model: CodecModel) -> bytes:
    """The fingerprint of a model's weights without their channel context (model ids 2
    and 3: the weights the context was added to, which the training facts describe); its
    own for model id 1."""
    if model.channel_context is None:
        return model.fingerprint
    return bundle_fingerprint(without_channel_context(read_bundle(model.path)))


def fingerprint_before_adapters(model: CodecModel) -> Optional[str]:
    """For weights with machine adapters, the fingerprint of the weights they were added
    to (the same files and human decoding), else None."""
    if not model.config.machine_adapter:
        return None
    base = without_machine_adapters(read_bundle(model.path))
    return None if base is None else bundle_fingerprint(base).hex()


def context_lines(model: CodecModel, facts: Optional[dict] = None) -> List[str]:
    """What the card says about a channel context (none for model id 1): the weights it
    was trained on are those the facts' ``channel_context`` names, where g_s trained on
    after it came, else the weights without it."""
    context = model.channel_context
    if context is None:
        return []
    hidden = [int(layer.weight.shape[0]) for layer in context.networks[0].layers[:-1]]
    trained = (facts or {}).get("channel_context")
    training = "" if not trained else template_section(
        "context_training", steps=trained["steps"], init=trained["init"], batch=trained["batch"], crops=trained["crops"],
        corpus_photos=sum(trained["corpus"].values()), corpus_packages=len(trained["corpus"]), lr=trained["lr"],
        weights=trained["weights"], hardware=trained["hardware"], hours=trained["wall_clock_hours"])
    transforms = trained["before"] if trained else transforms_fingerprint(model).hex()
    return [template_section(f"latent_coder_{model.model_id}", slices=context.slices, hidden=hidden,
                             transforms=transforms, training=training)]


# --------------------------------------------------------------------------- facts
def read_facts(path: str, model: CodecModel) -> dict:
    """The training facts at ``path``, if they describe ``model``'s transforms.

    Raises:
        ValueError: they describe other weights (re-record them with ``--run``).
    """
    with open(path) as handle:
        facts = json.load(handle)
    described = fingerprint_before_context(model).hex()  # a context added later keeps the facts
    finetune = facts.get("synthesis_finetune")
    if finetune:
        # After a recorded context, g_s trained on names the weights with the context.
        expected = model.fingerprint.hex() if facts.get("channel_context") else described
        if finetune["weights"] != expected:
            raise ValueError(f"{os.path.relpath(path, ROOT)} describes the synthesis fine-tune of {finetune['weights']}, "
                             f"not the weights {expected}: record it with --synthesis-run RUN")
        return facts  # the weights before it were checked against the facts when it was recorded
    if facts.get("transforms") != transforms_fingerprint(model).hex():
        raise ValueError(f"{os.path.relpath(path, ROOT)} describes the transforms {facts.get('transforms')}, not "
                         f"those of the weights {model.fingerprint.hex()}: record them with --run RUN")
    adapters = facts.get("machine_adapters", {}).get("weights")
    if model.config.machine_adapter and adapters != described:
        raise ValueError(f"{os.path.relpath(path, ROOT)} describes the machine adapters of {adapters}, not those of "
                         f"the weights {described}: record them with --adapters-run RUN")
    return facts


def log_span(log_path: str) -> Tuple[float, int, int]:
    """Wall-clock hours over all resumed segments of a run's log, its first and last step.

    A resumed segment's clock restarts, so a record whose seconds fall below the previous
    one's starts a new segment. A run folder started with ``--init-from`` logs only its own
    steps, so the span says which steps the hours cover.
    """
    with open(log_path) as handle:
        return records_span([json.loads(line) for line in handle])


def records_span(records: List[dict]) -> Tuple[float, int, int]:
    """:func:`log_span` of log records already read (each with ``seconds`` and ``step``)."""
    total, segment_last, first, last = 0.0, 0.0, None, 0
    for record in records:
        if record["seconds"] < segment_last:
            total += segment_last
        segment_last = record["seconds"]
        first = record["step"] if first is None else first
        last = record["step"]
    return round((total + segment_last) / 3600, 2), first or 0, last


def corpus_counts(corpus: str) -> Dict[str, int]:
    """Photos per package of a corpus folder built by tools/prepare_corpus.py (its
    ``manifest.json``: each downscale names its ``package:path`` source)."""
    with open(os.path.join(corpus, "manifest.json")) as handle:
        images = json.load(handle)["images"]
    counts: Dict[str, set] = {}
    for image in images:
        package, _, path = image["source"].partition(":")
        counts.setdefault(package, set()).add(path)
    return {package: len(paths) for package, paths in sorted(counts.items())}


def run_facts(run: str, model: CodecModel, hardware: str) -> dict:
    """The training facts of a run folder (``checkpoint.pt``, ``log.jsonl`` and the
    corpus folder its config names).

    Raises:
        ValueError: the run's checkpoint does not export as the weights' transforms.
    """
    import torch

    from tools.export import export_bundle
    from tools.training import model_from_checkpoint

    state = torch.load(os.path.join(run, "checkpoint.pt"), map_location="cpu", weights_only=False)
    config = state["config"]
    exported = bundle_fingerprint(export_bundle(model_from_checkpoint(state)))
    if exported != transforms_fingerprint(model):
        raise ValueError(f"the run's checkpoint (step {state['step']}) exports as weights {exported.hex()}, not the "
                         f"transforms of {model.fingerprint.hex()}: record the facts right after "
                         "tools/export_weights.py, before training goes on")
    hours, first, last = log_span(os.path.join(run, "log.jsonl"))
    return {
        "transforms": exported.hex(),
        "run": os.path.relpath(run, ROOT),
        "corpus": corpus_counts(config["corpus"]),
        "crop": config["crop"], "batch": config["batch"],
        "crop_weighting": config.get("crop_weighting", "pixel"), "crop_detail": config.get("crop_detail", 0.0),
        "hardware": hardware, "wall_clock_hours": hours, "logged_steps": [first, last],
        "stage1_steps": min(state["step"], config["stage1_steps"]), "lr": config["lr"],
        "lambda_machine_mse": config["lambda_machine_mse"], "lambda_semantic": config["lambda_semantic"],
        "stage2_steps": max(0, state["step"] - config["stage1_steps"]), "stage2_lr": config["stage2_lr"],
        "stage2_lambda_semantic": config.get("stage2_lambda_semantic"),
        "teacher": state.get("teacher", config["teacher"]),
    }


def adapter_facts(run: str, model: CodecModel, hardware: str) -> dict:
    """The training facts of a machine-adapter run folder (``tools/configs/adapter_wide.toml``).

    Raises:
        ValueError: the weights have no adapters, or the run's adapters added to the
            weights before them do not make these weights.
    """
    import torch

    from tools.training import model_from_checkpoint

    base = without_machine_adapters(read_bundle(model.path)) if model.config.machine_adapter else None
    if base is None:
        raise ValueError(f"the weights {model.fingerprint.hex()} have no machine adapters")
    state = torch.load(os.path.join(run, "checkpoint.pt"), map_location="cpu", weights_only=False)
    config = state["config"]
    exported = bundle_fingerprint(export_adapted_bundle(model_from_checkpoint(state), base))
    if exported != model.fingerprint:
        raise ValueError(f"the run's checkpoint (step {state['step']}) adds other adapters ({exported.hex()}) "
                         f"than those of {model.fingerprint.hex()}")
    hours, _, _ = log_span(os.path.join(run, "log.jsonl"))
    return {
        "weights": model.fingerprint.hex(), "before": bundle_fingerprint(base).hex(),
        "run": os.path.relpath(run, ROOT), "width": config["model"].get("adapter_width", 0),
        "steps": state["step"] - config["stage1_steps"], "corpus": corpus_counts(config["corpus"]),
        "crop": config["crop"], "batch": config["batch"], "lr": config["stage2_lr"],
        "lambda_machine_mse": config["lambda_machine_mse"], "lambda_semantic": config["lambda_semantic"],
        "teacher": state.get("teacher", config["teacher"]), "hardware": hardware, "wall_clock_hours": hours,
    }


def adapters_line(facts: dict) -> str:
    """The recipe's line on the machine adapters (the facts' ``machine_adapters``), else nothing."""
    adapters = facts.get("machine_adapters")
    if not adapters:
        return ""
    form = f"a bottleneck of {adapters['width']} channels" if adapters["width"] else "two 3×3 convolutions"
    return "\n" + template_section(
        "machine_adapters", form=form, steps=adapters["steps"], corpus_photos=sum(adapters["corpus"].values()),
        corpus_packages=len(adapters["corpus"]),
        crop=adapters["crop"], batch=adapters["batch"], lr=adapters["lr"],
        lambda_machine_mse=adapters["lambda_machine_mse"], lambda_semantic=adapters["lambda_semantic"],
        teacher=adapters["teacher"], hardware=adapters["hardware"], hours=adapters["wall_clock_hours"],
        before=adapters["before"])


def described_weights(facts: dict) -> str:
    """The fingerprint of the weights that ``facts`` describe as a whole: the last step
    recorded (a synthesis fine-tune, machine adapters, else the trained transforms)."""
    for step in ("synthesis_finetune", "machine_adapters"):
        if facts.get(step):
            return facts[step]["weights"]
    return facts["transforms"]


def synthesis_facts(run: str, model: CodecModel, facts: dict, hardware: str) -> dict:
    """The facts of a ``tools/distill_synthesis`` run whose g_s the weights carry, trained
    from the weights that ``facts`` describe.

    The run's ``checkpoint.pt`` or one of its milestone copies (``checkpoint_STEP.pt``)
    must hold the weights' g_s; the facts count the steps and log up to that one.

    Raises:
        ValueError: no checkpoint of the run holds the weights' g_s (fp16 as exported),
            or the weights do not decode the files of the weights ``facts`` describe.
    """
    import torch

    from tools.distill_synthesis import DEFAULT_QUALITY_WEIGHTS, DistillConfig

    before = described_weights(facts)
    if bytes.fromhex(before) not in model.also_decodes:
        raise ValueError(f"the weights {model.fingerprint.hex()} do not decode the files of {before}, which "
                         f"{os.path.relpath(FACTS, ROOT)} describes")
    shipped = model.network.g_s.state_dict()

    def holds_shipped(state: dict) -> bool:
        return set(state["g_s"]) == set(shipped) and all(
            torch.equal(value.half().float(), shipped[name].float()) for name, value in state["g_s"].items())

    # The run may have gone on after the exported step: its milestone copy is the one.
    paths = [os.path.join(run, "checkpoint.pt")] + sorted(glob.glob(os.path.join(run, "checkpoint_*.pt")))
    states = (torch.load(path, map_location="cpu", weights_only=False) for path in paths if os.path.exists(path))
    state = next((state for state in states if holds_shipped(state)), None)
    if state is None:
        raise ValueError(f"no checkpoint of the run {run} holds the g_s of the weights {model.fingerprint.hex()}: "
                         "it trained another g_s")
    config = DistillConfig.from_dict(state["config"])
    with open(os.path.join(run, "log.jsonl")) as handle:
        # Steps after the shipped one trained a g_s these weights do not carry.
        records = [record for record in map(json.loads, handle) if record.get("step", 0) <= state["step"]]
    pool_seconds = sum(record["seconds"] for record in records if record["phase"] == "pool")
    hours, _, _ = records_span([record for record in records if "step" in record])
    return {
        "weights": model.fingerprint.hex(), "before": before, "run": os.path.relpath(run, ROOT),
        "bottlenecks": list(config.bottlenecks), "steps": state["step"], "pool": config.pool, "crop": config.crop,
        "quality_weights": list(config.quality_weights or DEFAULT_QUALITY_WEIGHTS[: model.num_qualities]),
        "corpus": corpus_counts(config.corpus), "batch": config.batch, "lr": config.lr,
        "teacher_weight": config.teacher_weight, "semantic_weight": config.semantic_weight,
        "semantic_teacher": config.semantic_teacher, "hardware": hardware,
        "wall_clock_hours": round(hours + pool_seconds / 3600, 2),
    }


def synthesis_line(facts: dict) -> str:
    """The recipe's lines on the synthesis fine-tunes (the facts' ``synthesis_finetune``
    and the ``previous`` ones it was trained from, oldest first), else nothing."""
    finetune = facts.get("synthesis_finetune")
    if not finetune:
        return ""
    return synthesis_line({"synthesis_finetune": finetune.get("previous")}) + _synthesis_step_line(finetune)


def _synthesis_step_line(finetune: dict) -> str:
    """The recipe's line on one synthesis fine-tune."""
    if any(finetune["bottlenecks"]):
        widths = ", ".join(f"level {level}: {width}" for level, width in enumerate(finetune["bottlenecks"]) if width)
        blocks = template_section("synthesis_bottlenecks", widths=widths) + " "
    else:
        blocks = ""
    human = "MSE to the photograph" + (
        f" + {finetune['teacher_weight']} × MSE to `{finetune['before']}`'s human decoding" if finetune["teacher_weight"] else "")
    machine = f"MSE to `{finetune['before']}`'s machine decoding" + (
        f" + {finetune['semantic_weight']:g} × (global + local + instance) semantic distance to the photograph "
        f"through the frozen teacher `{finetune['semantic_teacher']}`" if finetune.get("semantic_weight") else "")
    return "\n" + template_section(
        "synthesis_finetune", before=finetune["before"], blocks=blocks, steps=finetune["steps"], machine=machine,
        pool=finetune["pool"], crop=finetune["crop"], corpus_photos=sum(finetune["corpus"].values()),
        corpus_packages=len(finetune["corpus"]), quality_weights=":".join(f"{w:g}" for w in finetune["quality_weights"]),
        batch=finetune["batch"], lr=finetune["lr"], human=human, hardware=finetune["hardware"],
        hours=finetune["wall_clock_hours"])


# --------------------------------------------------------------------------- targets
def shipped_report(results: str, rel: str, fingerprint: str, same_human: Optional[str] = None) -> Tuple[Optional[dict], str]:
    """``(report, cell)``: the report at ``results/rel`` if it measured ``fingerprint``
    or, for a target of the human decoding only, ``same_human`` (the weights before
    machine adapters were added: :func:`fingerprint_before_adapters`); else None. And the
    card's report cell saying which it is."""
    report = load_report(results, rel)
    if report is None:
        return None, f"no `{rel}`"
    measured = fingerprint_of(report)
    if same_human is not None and measured == same_human:
        return report, f"`{rel}` (of `{measured}`: the same human decoding)"
    if measured not in (None, fingerprint):
        return None, f"`{rel}` measured `{measured}`"
    return report, f"`{rel}`"


def verdict(met: Optional[bool]) -> str:
    return "not measured" if met is None else ("met" if met else "**not met**")


def bd_target(results: str, rel: str, fingerprint: str, same_human: Optional[str] = None) -> Tuple[str, str, str]:
    """(measured, report, verdict) of the human decoding's BD-rate in ``rel``."""
    report, cell = shipped_report(results, rel, fingerprint, same_human)
    bd = (report or {}).get("bd_rate", {}).get("ugc-human", {}).get("psnr", {}).get("bd_rate")
    if bd is None:
        return "–", cell, verdict(None)
    return f"{bd:+.1f} % on {len(report['photos'])} photos", cell, verdict(bd <= TARGETS["bd_rate"])


def best_psnr_target(results: str, fingerprint: str, same_human: Optional[str] = None) -> Tuple[str, str, str]:
    """(measured, report, verdict) of the best quality's PSNR, human decoding."""
    report, cell = shipped_report(results, "rd.json", fingerprint, same_human)
    curve = (report or {}).get("curves", {}).get("ugc-human")
    if not curve:
        return "–", cell, verdict(None)
    best = max(curve, key=lambda point: point["setting"])
    return f"{best['psnr']:.2f} dB at q{best['setting']}", cell, verdict(best["psnr"] >= TARGETS["best_psnr"])


def lite0_targets(results: str, fingerprint: str) -> Dict[str, str]:
    """The Lite0 rows (pooled and by group) and the paired counts, from the all-photos
    analytics report."""
    report, cell = shipped_report(results, "all/analytics.json", fingerprint)
    values = {"lite0_report": cell, "lite0_all": "–", "lite0_all_verdict": verdict(None), "lite0_groups": "–",
              "lite0_groups_verdict": verdict(None), "lite0_paired": "Not measured for these weights."}
    if report is None or "lite0" not in report.get("classifiers", {}):
        return values
    human = {p["setting"]: p["lite0_top1"] for p in report["curves"]["ugc-human"]}
    machine = {p["setting"]: p["lite0_top1"] for p in report["curves"]["ugc-machine"]}
    above = sum(machine[q] > human[q] for q in human)
    values.update(lite0_all=f"above at {above} of {len(human)} qualities on {len(report['photos'])} photos",
                  lite0_all_verdict=verdict(above == len(human)))
    groups = {group: [row["lite0"] for row in rows] for group, rows in (report.get("machine_vs_human_by_group") or {}).items()}
    if groups:
        counts = {group: sum(c["machine_only"] > c["human_only"] for c in rows) for group, rows in groups.items()}
        values.update(lite0_groups=", ".join(f"{group} {counts[group]} of {len(rows)}" for group, rows in groups.items()),
                      lite0_groups_verdict=verdict(all(counts[group] == len(rows) for group, rows in groups.items())))
    pooled = {f"all {len(report['photos'])} photos": [row["lite0"] for row in report["machine_vs_human"]]}
    values["lite0_paired"] = "\n".join(
        f"- {name} ({rows[0]['crops']} crops): " + ", ".join(f"q{q} {paired(c)}" for q, c in enumerate(rows, 1))
        for name, rows in {**pooled, **groups}.items())
    return values


#: Where the speed report of a CPU without AMX lies, beside ``speed.json`` (which may have
#: run partly in bfloat16 on a CPU with AMX).
FLOAT32_SPEED = "speed-no-amx/speed.json"


def decode_ratios(report: Optional[dict]) -> Optional[List[float]]:
    """A speed report's decode time ratios ``[human, machine]`` against compressai, or
    None where it has none."""
    codec = (report or {}).get("codec") or {}
    ratios = [codec.get(key) for key in ("ratio_decode_human", "ratio_decode_machine")]
    return None if None in ratios else ratios


def speed_target(results: str, fingerprint: str) -> Tuple[str, str, str]:
    """(measured, report, verdict) of the decode time ratio; both decodings must meet it,
    and on CPUs without AMX too where :data:`FLOAT32_SPEED` measured these weights."""
    report, cell = shipped_report(results, "speed.json", fingerprint)
    ratios = decode_ratios(report)
    if ratios is None:
        return "–", cell, verdict(None)
    precision = report["codec"].get("precision", "float32")
    measured = f"human {ratios[0]:.2f}×, machine {ratios[1]:.2f}×"
    if precision != "float32":
        # Partly in bfloat16 (a CPU with AMX): the figure holds on such CPUs only.
        measured += f" ({precision} on a CPU with AMX)"
        other, other_cell = shipped_report(results, FLOAT32_SPEED, fingerprint)
        other_ratios = decode_ratios(other)
        if other_ratios is None:
            measured += "; float32 elsewhere, not measured"
        else:
            measured += f"; human {other_ratios[0]:.2f}×, machine {other_ratios[1]:.2f}× (float32, no AMX)"
            cell += f", {other_cell}"
            ratios += other_ratios
    return measured, cell, verdict(max(ratios) <= TARGETS["decode_ratio"])


#: Below this share of latent channels in use at the top level, the card says that training,
#: not width, limits the top rates.
IDLE_CHANNELS = 0.75


def capacity_line(results: str, fingerprint: str, same_human: Optional[str] = None) -> str:
    """The Limitations line on the transforms' capacity, from the capacity reports of the
    standard and the all-photos set."""
    found = [report for rel in ("capacity.json", "all/capacity.json")
             if (report := shipped_report(results, rel, fingerprint, same_human)[0]) is not None]
    if not found:
        return template_section("capacity_missing")
    top, short, unused, idle = [], [], [], False
    for report in found:
        photos, level = len(report["photos"]), report["levels"][-1]
        webp = f", WebP {level['webp_psnr']:.1f} dB at that bpp" if level["webp_psnr"] is not None else ""
        top.append(f"{level['unrounded_psnr']:.1f} dB at q{level['quality']} on {photos} photos{webp}")
        short += [f"q{entry['quality']} on {photos} photos" for entry in report["levels"]
                  if entry["webp_psnr"] is not None and entry["unrounded_psnr"] < entry["webp_psnr"]]
        unused.append(f"{report['latent_channels'] - level['channels_in_use']} of {report['latent_channels']} "
                      f"on {photos} photos")
        idle |= level["channels_in_use"] < IDLE_CHANNELS * report["latent_channels"]
    lever = template_section("capacity_lever_train" if idle else "capacity_lever_widen").strip()
    return template_section("capacity", capacity_top="; ".join(top), capacity_short=", ".join(short) or "none",
                            capacity_unused=", ".join(unused), capacity_lever=lever)


# --------------------------------------------------------------------------- card
def corpus_phrase(corpus: Dict[str, int]) -> str:
    """``corpus`` (photos per Debian package) as the card names it."""
    names = [f"`{package}` ({count})" for package, count in corpus.items()]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def grown_from_line(grown: Optional[dict]) -> str:
    """The recipe's first line for weights grown from a smaller model's (the facts'
    ``grown_from``: its size, steps, corpus, hardware and hours), else nothing."""
    if not grown:
        return ""
    return template_section("grown_from", N=grown["N"], M=grown["M"], levels=grown["levels"], steps=grown["steps"],
                            corpus_photos=sum(grown["corpus"].values()), corpus=corpus_phrase(grown["corpus"]),
                            hardware=grown["hardware"], hours=grown["wall_clock_hours"]) + "\n"


def render(model: CodecModel, facts: dict, results: str = RESULTS) -> str:
    """The card of ``model``: the template filled from ``facts`` (its training) and the
    reports in ``results``."""
    fingerprint, config = model.fingerprint.hex(), model.config
    before = fingerprint_before_adapters(model)
    weights_mb = os.path.getsize(model.path) / 1e6
    stage2 = facts.get("stage2_lambda_semantic")
    values = dict(
        fingerprint=fingerprint, model_id=model.model_id, N=config.N, M=config.M, embedding_dim=config.embedding_dim,
        levels=model.num_qualities, lambdas=", ".join(str(v) for v in config.lambdas),
        latent_coder="\n".join(context_lines(model, facts)) or template_section("latent_coder_1"),
        corpus_photos=sum(facts["corpus"].values()),
        corpus=corpus_phrase(facts["corpus"]),
        crop=facts["crop"], batch=facts["batch"], crop_weighting=template_section(f"crop_weighting_{facts['crop_weighting']}"),
        crop_detail=template_section("crop_detail", crop_detail=facts["crop_detail"]) if facts["crop_detail"] else "",
        hardware=facts["hardware"], hours=facts["wall_clock_hours"],
        first_step=facts["logged_steps"][0], last_step=facts["logged_steps"][1],
        grown_from=grown_from_line(facts.get("grown_from")),
        steps1=facts["stage1_steps"], lr=facts["lr"], lambda_machine_mse=facts["lambda_machine_mse"],
        decay=f"{facts['lr_decay_steps']} steps" if facts.get("lr_decay_steps") else "10 %",
        lambda_semantic=facts["lambda_semantic"], teacher=facts["teacher"],
        stage2=template_section("stage2", steps2=facts["stage2_steps"], stage2_lr=facts["stage2_lr"],
                                stage2_semantic="λ_s" if stage2 is None else f"λ_s2 = {stage2}")
        if facts["stage2_steps"] else template_section("stage2_none"),
        bd_goal=f"{TARGETS['bd_rate']:+.0f}", psnr_goal=f"{TARGETS['best_psnr']:.0f}",
        speed_goal=f"{TARGETS['decode_ratio']:.1f}", size_goal=f"{TARGETS['weights_mb']:.0f}",
        weights_mb=f"{weights_mb:.1f}", weights_verdict=verdict(weights_mb < TARGETS["weights_mb"]),
        adapters=adapters_line(facts), synthesis=synthesis_line(facts),
        capacity=capacity_line(results, fingerprint, before), **lite0_targets(results, fingerprint),
    )
    for key, (measured, cell, met) in {
        "bd_standard": bd_target(results, "rd.json", fingerprint, before),
        "bd_all": bd_target(results, "all/rd.json", fingerprint, before),
        "best_psnr": best_psnr_target(results, fingerprint, before),
        "decode_ratio": speed_target(results, fingerprint),
    }.items():
        values.update({key: measured, f"{key}_report": cell, f"{key}_verdict": met})
    return template_section("card", **values) + "\n"


def write_facts(path: str, facts: dict) -> None:
    """Writes the training facts file (``--run``, ``--adapters-run``, ``--synthesis-run``)."""
    with open(path, "w") as handle:
        json.dump(facts, handle, indent=1, ensure_ascii=False)
        handle.write("\n")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="record the training facts of this run folder (checkpoint.pt, log.jsonl) first")
    parser.add_argument("--adapters-run", help="record the training facts of the machine adapters' run folder first")
    parser.add_argument("--synthesis-run", help="record the facts of the tools/distill_synthesis run whose g_s the "
                        "weights carry first (trained from the weights the facts describe)")
    parser.add_argument("--hardware", default=f"{platform.processor() or platform.machine()} CPU, "
                        f"{os.cpu_count()} cores, no GPU", help="with --run: what the model was trained on")
    parser.add_argument("--facts", default=FACTS, help="the training facts (default tools/model_card_training.json)")
    parser.add_argument("--results", default=RESULTS, help="the benchmark reports (default benchmarks/results)")
    parser.add_argument("--out", default=CARD, help="the card (default ugcodec/weights/MODEL_CARD.md)")
    args = parser.parse_args(argv)
    model = ugcodec.load_model()
    try:
        if args.run:
            facts = run_facts(args.run, model, args.hardware)
            write_facts(args.facts, facts)
        for key, run, record in (
            ("machine_adapters", args.adapters_run, lambda run, facts: adapter_facts(run, model, args.hardware)),
            ("synthesis_finetune", args.synthesis_run, lambda run, facts: synthesis_facts(run, model, facts, args.hardware)),
        ):
            if run:
                with open(args.facts) as handle:
                    facts = json.load(handle)
                recorded = record(run, facts)
                if key == "synthesis_finetune" and facts.get(key) and facts[key]["weights"] != recorded["weights"]:
                    recorded["previous"] = facts[key]  # trained from its weights: the recipe keeps both
                facts[key] = recorded
                write_facts(args.facts, facts)
        facts = read_facts(args.facts, model)
    except (OSError, ValueError, KeyError) as error:
        parser.error(str(error))
    with open(args.out, "w") as handle:
        handle.write(render(model, facts, args.results))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
