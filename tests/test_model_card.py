"""tools/model_card.py: the card is the template filled from the facts and the reports."""
import dataclasses
import json
import re
import shutil

import pytest

import ugcodec
from tools import model_card


@pytest.fixture(scope="module")
def shipped():
    model = ugcodec.load_model()
    return model, model_card.read_facts(model_card.FACTS, model)


@pytest.fixture
def results(tmp_path):
    """A copy of the committed reports to change."""
    folder = tmp_path / "results"
    shutil.copytree(model_card.RESULTS, folder)
    return folder


def edit(path, change):
    report = json.loads(path.read_text())
    change(report)
    path.write_text(json.dumps(report))


def test_committed_card_is_a_fresh_render(shipped):
    with open(model_card.CARD) as handle:
        assert handle.read() == model_card.render(*shipped), \
            "ugcodec/weights/MODEL_CARD.md is stale: run python -m tools.model_card"


def of_shipped(path, model):
    """Makes the report at ``path`` one of ``model``'s weights (its figures unchanged)."""
    edit(path, lambda report: report.update(
        model=re.sub(r"fingerprint [0-9a-f]{16}", f"fingerprint {model.fingerprint.hex()}", report["model"])))


def test_verdicts_follow_the_reports(shipped, results):
    model = shipped[0]

    def better(report):
        report["bd_rate"]["ugc-human"]["psnr"]["bd_rate"] = -52.5
        report["curves"]["ugc-human"][-1]["psnr"] = 36.4

    def worse(report):
        report["bd_rate"]["ugc-human"]["psnr"]["bd_rate"] = -40.6

    for path in (results / "rd.json", results / "all" / "rd.json"):
        of_shipped(path, model)
    edit(results / "rd.json", better)
    edit(results / "all" / "rd.json", worse)
    card = model_card.render(*shipped, str(results))
    assert "| ≤ -50 % | -52.5 % on 7 photos | `rd.json` | met |" in card
    assert f"| ≥ 36 dB | 36.40 dB at q{model.num_qualities} | `rd.json` | met |" in card
    assert "-40.6 % on 36 photos | `all/rd.json` | **not met** |" in card


def test_reports_of_other_weights_are_not_measured(shipped, results):
    edit(results / "all" / "analytics.json",
         lambda report: report.update(model=re.sub(r"fingerprint [0-9a-f]{16}", "fingerprint 0123456789abcdef",
                                                   report["model"])))
    card = model_card.render(*shipped, str(results))
    assert "`all/analytics.json` measured `0123456789abcdef` | not measured |" in card
    paired = card.split("exact McNemar p):")[1].split("## Limitations")[0]
    assert paired.strip() == "Not measured for these weights."  # no paired counts of other weights


def test_lite0_groups_need_every_quality_of_every_group(shipped, results):
    def machine_wins(report):
        for rows in report["machine_vs_human_by_group"].values():
            for row in rows:
                row["lite0"].update(machine_only=9, human_only=1)

    path = results / "all" / "analytics.json"
    of_shipped(path, shipped[0])
    edit(path, machine_wins)
    groups = json.loads(path.read_text())["machine_vs_human_by_group"]
    expected = ", ".join(f"{group} {len(rows)} of {len(rows)}" for group, rows in sorted(groups.items()))
    card = model_card.render(*shipped, str(results))
    assert f"{expected} | `all/analytics.json` | met |" in card


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_speed_target_says_where_ugc_ran_in_bfloat16(shipped, results, precision):
    path, float32 = results / "speed.json", results / "speed-no-amx" / "speed.json"
    of_shipped(path, shipped[0])
    edit(path, lambda report: report["codec"].update(precision=precision, ratio_decode_human=0.8,
                                                     ratio_decode_machine=0.9))
    if float32.exists():
        float32.unlink()
    card = model_card.render(*shipped, str(results))
    note = " (bfloat16 on a CPU with AMX); float32 elsewhere, not measured" if precision == "bfloat16" else ""
    assert f"| human 0.80×, machine 0.90×{note} | `speed.json` | met |" in card
    if precision == "bfloat16":  # the float32 figures of a CPU without AMX count too
        float32.parent.mkdir(exist_ok=True)
        float32.write_text(path.read_text())
        edit(float32, lambda report: report["codec"].update(precision="float32", ratio_decode_human=1.4,
                                                            ratio_decode_machine=1.5))
        card = model_card.render(*shipped, str(results))
        assert ("| human 0.80×, machine 0.90× (bfloat16 on a CPU with AMX); human 1.40×, machine 1.50× (float32, "
                "no AMX) | `speed.json`, `speed-no-amx/speed.json` | **not met** |") in card


def test_a_missing_report_is_named(shipped, results):
    (results / "speed.json").unlink()
    (results / "capacity.json").unlink()
    (results / "all" / "capacity.json").unlink()
    card = model_card.render(*shipped, str(results))
    assert "| – | no `speed.json` | not measured |" in card
    assert "capacity at the top rates is not measured" in card


def test_capacity_names_the_levels_below_webp(shipped, results):
    def level3_short(report):
        report["levels"][2].update(unrounded_psnr=20.0)

    edit(results / "capacity.json", level3_short)
    report = json.loads((results / "capacity.json").read_text())
    fingerprint = re.search(r"fingerprint ([0-9a-f]{16})", report["model"]).group(1)
    line = model_card.capacity_line(str(results), fingerprint)
    assert "(q3 on 7 photos" in line
    top = report["levels"][-1]
    assert f"{report['latent_channels'] - top['channels_in_use']} of {report['latent_channels']} on 7 photos" in line


def test_capacity_names_the_lever_by_the_channels_in_use(results):
    report = json.loads((results / "capacity.json").read_text())
    fingerprint = re.search(r"fingerprint ([0-9a-f]{16})", report["model"]).group(1)
    (results / "all" / "capacity.json").unlink()
    for in_use, lever in ((report["latent_channels"] // 2, "lever is training"), (report["latent_channels"], "Wider")):
        edit(results / "capacity.json", lambda found: found["levels"][-1].update(channels_in_use=in_use))
        assert lever in model_card.capacity_line(str(results), fingerprint)


def test_log_span_adds_resumed_segments(tmp_path):
    log = tmp_path / "log.jsonl"
    with open(log, "w") as handle:
        for step, seconds in [(50, 1800.0), (100, 3600.0), (150, 900.0), (200, 1800.0)]:  # resumed after 100
            handle.write(json.dumps({"step": step, "stage": 1, "seconds": seconds}) + "\n")
    assert model_card.log_span(str(log)) == (1.5, 50, 200)


def test_template_sections_need_every_placeholder():
    assert model_card.template_section("crop_detail", crop_detail=9.5).startswith("; flat crops")
    with pytest.raises(KeyError):  # a placeholder with no value is an error, never left in the card
        model_card.template_section("crop_detail")


def test_a_run_that_is_not_the_shipped_weights_is_refused(tmp_path):
    # A run whose checkpoint exports as other weights (training went on after the export)
    # would put the wrong steps in the card of the shipped weights.
    import torch

    from conftest import TINY_CONFIG
    from ugcodec.models import UGHyperprior

    torch.manual_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"config": {"model": TINY_CONFIG.to_dict()}, "model": UGHyperprior(TINY_CONFIG).state_dict(),
                "step": 5}, run / "checkpoint.pt")
    (run / "log.jsonl").write_text("")
    facts, out = tmp_path / "facts.json", tmp_path / "card.md"
    with pytest.raises(SystemExit) as refused:
        model_card.main(["--run", str(run), "--facts", str(facts), "--out", str(out)])
    assert refused.value.code == 2
    assert not out.exists() and not facts.exists()


def test_corpus_counts_photos_not_downscales(tmp_path):
    images = [{"file": f"{stem}_x{factor}.png", "source": source}
              for stem, source in (("a", "mate-backgrounds:a.jpg"), ("b", "mate-backgrounds:b.jpg"),
                                   ("c", "lomiri-wallpapers-16.04:c.jpg"))
              for factor in (2, 3, 4)]
    (tmp_path / "manifest.json").write_text(json.dumps({"images": images}))
    assert model_card.corpus_counts(str(tmp_path)) == {"lomiri-wallpapers-16.04": 1, "mate-backgrounds": 2}


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """The shipped weights (before any machine adapters of theirs) with adapters added,
    and their facts: what the card of such weights is made from."""
    import torch

    from tools.export import (export_adapted_bundle, strip_machine_adapters, without_channel_context,
                              without_machine_adapters, write_bundle)
    from ugcodec.models import ModelConfig, UGHyperprior
    from ugcodec.weights import fingerprint_of, load_model, read_bundle

    # Adapters go on a plain hyperprior (model id 1): the shipped weights without a context.
    shipped_bundle = without_channel_context(read_bundle(model_card.CARD.replace("MODEL_CARD.md", "ugc-hyperprior-pcdm.pt")))
    # Without adapters: the weights they were added to, or (g_s trained on after they
    # came) the shipped weights stripped of them.
    base = without_machine_adapters(shipped_bundle) or {
        key: value for key, value in strip_machine_adapters(shipped_bundle).items() if key != "also_decodes"}
    config = ModelConfig.from_dict({**base["config"], "machine_adapter": True, "adapter_width": 4})
    network = UGHyperprior(config, coding_only=True)
    network.load_state_dict({name: value.float() for name, value in base["float"].items()}, strict=False)
    with torch.no_grad():
        network.g_s.adapters[0].expand.weight.fill_(0.01)
    path = str(tmp_path_factory.mktemp("adapted") / "adapted.pt")
    write_bundle(export_adapted_bundle(network, base), path)
    model = load_model(path)
    with open(model_card.FACTS) as handle:
        facts = json.load(handle)
    # The facts of weights whose transforms are ``base``'s, with adapters and nothing after.
    facts.pop("synthesis_finetune", None)
    facts["transforms"] = fingerprint_of(base).hex()
    facts["machine_adapters"] = {
        "weights": model.fingerprint.hex(), "before": fingerprint_of(base).hex(), "run": "runs/x", "width": 4,
        "steps": 1000, "corpus": {"gcompris-qt-data": 3}, "crop": 128, "batch": 8, "lr": 2e-4,
        "lambda_machine_mse": 0.5, "lambda_semantic": 300.0, "teacher": "MobileNetV2", "hardware": "2 CPUs",
        "wall_clock_hours": 1.5}
    return model, facts, fingerprint_of(base).hex()


def test_weights_with_adapters_keep_the_human_figures_of_the_weights_before(adapted, results, tmp_path):
    model, facts, before = adapted
    assert model_card.transforms_fingerprint(model).hex() == facts["transforms"]
    assert model_card.fingerprint_before_adapters(model) == before
    for rel in ("rd.json", "all/analytics.json", "speed.json"):
        edit(results / rel, lambda report: report.update(
            model=re.sub(r"fingerprint [0-9a-f]{16}", f"fingerprint {before}", report["model"])))
    card = model_card.render(model, facts, str(results))
    assert f"`rd.json` (of `{before}`: the same human decoding)" in card  # BD-rate and best PSNR: still valid
    assert f"`all/analytics.json` measured `{before}`" in card  # the machine decoding: not measured
    assert f"`speed.json` measured `{before}`" in card
    assert f"- Machine adapters, added to the finished weights (`{before}`): after each level of g_s, a bottleneck of 4 channels" in card
    assert "1000 steps on 3 photographs from 1 Debian and PyPI packages" in card

    path = tmp_path / "facts.json"
    path.write_text(json.dumps({key: value for key, value in facts.items() if key != "machine_adapters"}))
    with pytest.raises(ValueError, match="--adapters-run"):
        model_card.read_facts(str(path), model)


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    """The shipped weights with their g_s trained on (a ``tools/distill_synthesis`` run
    that replaced no block), the run folder, and the committed facts."""
    import torch

    from tools.distill_synthesis import DistillConfig, student_network
    from tools.export import export_synthesis_bundle, write_bundle
    from ugcodec.weights import load_model, read_bundle

    folder = tmp_path_factory.mktemp("fine_tuned")
    shipped = load_model()
    student = student_network(shipped, (0, 0, 0))
    with torch.no_grad():
        student.g_s.up[3].bias.add_(0.01)
    path = str(folder / "fine_tuned.pt")
    write_bundle(export_synthesis_bundle(student, read_bundle(shipped.path)), path)
    corpus = folder / "corpus"
    corpus.mkdir()
    (corpus / "manifest.json").write_text(json.dumps({"images": [{"source": "kphotoalbum:a.jpg"}]}))
    run = folder / "run"
    run.mkdir()
    config = DistillConfig(bottlenecks=(0, 0, 0), base=shipped.path, corpus=str(corpus), steps=40, teacher_weight=0.0)
    torch.save({"config": config.to_dict(), "g_s": student.g_s.state_dict(), "step": 40}, run / "checkpoint.pt")
    records = [{"phase": "pool", "shard": 1, "of": 1, "seconds": 360.0},
               {"phase": "finetune", "step": 20, "seconds": 1800.0}, {"phase": "finetune", "step": 40, "seconds": 3600.0}]
    (run / "log.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    with open(model_card.FACTS) as handle:
        facts = json.load(handle)
    return load_model(path), str(run), facts


def test_a_synthesis_fine_tune_is_recorded_and_described(fine_tuned, shipped, results, tmp_path):
    model, run, facts = fine_tuned
    before = shipped[0].fingerprint.hex()
    recorded = model_card.synthesis_facts(run, model, facts, "2 CPUs")
    assert (recorded["weights"], recorded["before"], recorded["steps"], recorded["corpus"]) == (
        model.fingerprint.hex(), before, 40, {"kphotoalbum": 1})
    assert recorded["wall_clock_hours"] == 1.1  # one hour of steps and six minutes of pool
    facts = {**facts, "synthesis_finetune": recorded}
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(facts))
    assert model_card.read_facts(str(path), model) == facts
    with pytest.raises(ValueError, match="--synthesis-run"):
        model_card.read_facts(str(path), shipped[0])

    for rel in ("rd.json", "all/rd.json"):
        of_shipped(results / rel, shipped[0])
    card = model_card.render(model, facts, str(results))
    assert f"- g_s trained on for the files of `{before}`" in card
    assert "40 steps on a pool of 1024 crops" in card and "human decoding: MSE to the photograph;" in card
    assert f"`rd.json` measured `{before}`" in card, "another g_s: the human figures of the weights before do not count"


def test_a_fine_tune_of_a_fine_tune_keeps_both_in_the_recipe(fine_tuned, shipped, results):
    model, run, facts = fine_tuned
    recorded = model_card.synthesis_facts(run, model, facts, "2 CPUs")
    earlier = {**recorded, "weights": shipped[0].fingerprint.hex(), "before": "ab" * 8, "steps": 7}
    card = model_card.render(model, {**facts, "synthesis_finetune": {**recorded, "previous": earlier}}, str(results))
    first, second = card.index(f"files of `{'ab' * 8}`"), card.index(f"files of `{shipped[0].fingerprint.hex()}`")
    assert first < second, "oldest first"
    assert "7 steps on a pool" in card and "40 steps on a pool" in card


def test_a_synthesis_fine_tune_must_be_the_shipped_g_s(fine_tuned, shipped):
    model, run, facts = fine_tuned
    with pytest.raises(ValueError, match="trained another g_s"):
        # the weights before, as if they decoded the same files: their g_s is not the run's
        model_card.synthesis_facts(run, dataclasses.replace(shipped[0], also_decodes=model.also_decodes), facts, "x")
    with pytest.raises(ValueError, match="do not decode the files"):
        model_card.synthesis_facts(run, shipped[0], {**facts, "synthesis_finetune": {"weights": "00" * 8}}, "x")


def test_a_synthesis_run_that_went_on_is_recorded_at_the_shipped_step(fine_tuned, tmp_path):
    import shutil

    import torch

    model, run, facts = fine_tuned
    went_on = tmp_path / "run"
    shutil.copytree(run, went_on)
    shipped_step = torch.load(went_on / "checkpoint.pt", weights_only=False)
    (went_on / "checkpoint.pt").rename(went_on / "checkpoint_40.pt")
    later = {**shipped_step, "step": 60, "g_s": {name: value + 0.01 for name, value in shipped_step["g_s"].items()}}
    torch.save(later, went_on / "checkpoint.pt")
    with open(went_on / "log.jsonl", "a") as handle:
        handle.write(json.dumps({"phase": "finetune", "step": 60, "seconds": 5400.0}) + "\n")
    recorded = model_card.synthesis_facts(str(went_on), model, facts, "2 CPUs")
    assert (recorded["steps"], recorded["wall_clock_hours"]) == (40, 1.1)  # step 60's half hour not counted


def test_a_context_and_a_semantic_fine_tune_after_it_are_described(shipped, results):
    model, facts = shipped
    assert model.channel_context is not None, "the shipped weights have a channel context (model id 3)"
    context = {"weights": "cd" * 8, "before": "ef" * 8, "run": "runs/x", "init": "from zero", "steps": 30,
               "batch": 4, "crops": 20, "crop": 256, "corpus": {"kphotoalbum": 2}, "lr": 1e-3,
               "hardware": "2 CPUs", "wall_clock_hours": 0.5}
    finetune = {**facts["synthesis_finetune"], "before": "cd" * 8, "semantic_weight": 2.5,
                "semantic_teacher": "mobilenet_v2", "previous": None}
    card = model_card.render(model, {**facts, "channel_context": context, "synthesis_finetune": finetune}, str(results))
    assert f"The context was trained on the weights `{'ef' * 8}`" in card
    assert f"then 30 steps of batch 4 on the latents of 20 crops (coded once) from 2 photographs from 1 Debian" in card
    assert f"giving `{'cd' * 8}`" in card
    assert f"MSE to `{'cd' * 8}`'s machine decoding + 2.5 × (global + local + instance) semantic distance" in card

    without = {key: value for key, value in facts.items() if key != "channel_context"}
    card = model_card.render(model, {**without, "synthesis_finetune": {**finetune, "semantic_weight": 0.0}}, str(results))
    transforms = model_card.transforms_fingerprint(model).hex()
    assert f"The context was trained on the weights `{transforms}` with their transforms frozen " \
           f"(`tools/train_channel_context.py --means`)." in card, "no recorded context: the weights without it"
    assert "semantic distance to the photograph" not in card
