"""The statistics benchmarks/analytics.py reports (the benchmark itself runs outside CI)."""
import json

import pytest

from benchmarks import analytics as analytics_module
from benchmarks import bench_common
from tools import model_card as model_card_module


@pytest.fixture(scope="module")
def analytics():
    return analytics_module


@pytest.mark.parametrize("only_a, only_b, expected", [
    (0, 0, 1.0),
    (3, 3, 1.0),                 # 2 * P(X <= 3) > 1 is capped at 1
    (0, 5, 2 / 32),              # 2 * P(X <= 0), X ~ Bin(5, 1/2)
    (9, 1, 2 * (1 + 10) / 1024),  # 2 * P(X <= 1), X ~ Bin(10, 1/2)
    (4, 6, 2 * 386 / 1024),      # 2 * P(X <= 4) = 2 * (1 + 10 + 45 + 120 + 210) / 1024
])
def test_mcnemar_p_is_the_exact_binomial_test(analytics, only_a, only_b, expected):
    assert analytics.mcnemar_p(only_a, only_b) == pytest.approx(expected)
    assert analytics.mcnemar_p(only_b, only_a) == pytest.approx(expected)


def record(codec, photo, setting, hits):
    return {"codec": codec, "photo": photo, "setting": setting,
            "models": {"lite0": {"crops": len(hits), "top1_hits": sum(hits), "top1_per_crop": hits}}}


def test_machine_vs_human_pairs_crops_of_the_same_file(analytics):
    records = [
        record("ugc-human", "a", 1, [1, 1, 0, 0]), record("ugc-machine", "a", 1, [1, 0, 1, 1]),
        record("ugc-human", "b", 1, [0, 1]), record("ugc-machine", "b", 1, [1, 1]),
        record("ugc-human", "a", 2, [1, 1, 1, 1]), record("ugc-machine", "a", 2, [1, 1, 1, 1]),
        record("jpeg", "a", 1, [0, 0, 0, 0]),  # other codecs never enter the pairing
    ]
    rows = analytics.machine_vs_human(records, ["lite0"])
    assert [row["setting"] for row in rows] == [1, 2]
    assert rows[0]["lite0"] == {"crops": 6, "machine_only": 3, "human_only": 1,
                                "p_value": pytest.approx(analytics.mcnemar_p(3, 1))}
    assert rows[1]["lite0"]["machine_only"] == rows[1]["lite0"]["human_only"] == 0
    assert rows[1]["lite0"]["p_value"] == 1.0


@pytest.fixture(scope="module")
def model_card():
    return model_card_module


def _paired(*counts):
    return [(q, {"machine_only": m, "human_only": h, "p_value": p, "crops": 84})
            for q, (m, h, p) in enumerate(counts, start=1)]


def test_model_card_separates_uncorrected_from_corrected_significance(model_card):
    line = model_card.paired_line(_paired((2, 11, 0.02), (5, 5, 1.0), (12, 1, 0.003)))
    assert "below 0.05 at q1, in the human decoding's favour, q3, in the machine decoding's favour" in line
    # 0.05 / 3 qualities: only q3's p = 0.003 survives the correction.
    assert "Bonferroni correction over the 3 qualities (p < 0.0167): q3, in the machine decoding's favour." in line


def test_model_card_says_when_nothing_is_significant(model_card):
    line = model_card.paired_line(_paired((2, 11, 0.02), (5, 5, 1.0), (4, 4, 1.0)))
    assert line.endswith("Bonferroni correction over the 3 qualities (p < 0.0167): none.")
    line = model_card.paired_line(_paired((4, 5, 1.0), (5, 5, 1.0)))
    assert "none below 0.05" in line and "Bonferroni" not in line


def test_model_card_refuses_a_run_that_is_not_the_shipped_weights(model_card, tmp_path):
    # A run whose checkpoint exports as other weights (training went on after the export)
    # would put the wrong steps and logs in the card of the shipped weights.
    import torch

    from conftest import TINY_CONFIG
    from ugcodec.models import UGHyperprior

    torch.manual_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"config": {"model": TINY_CONFIG.to_dict()}, "model": UGHyperprior(TINY_CONFIG).state_dict(),
                "step": 5}, run / "checkpoint.pt")
    (run / "log.jsonl").write_text("")
    out = tmp_path / "card.md"
    with pytest.raises(SystemExit) as refused:
        model_card.main(["--run", str(run), "--out", str(out)])
    assert refused.value.code == 2
    assert not out.exists()


def test_model_card_counts_a_webp_near_tie_as_a_tie(model_card):
    webp = [{"bpp": 0.2, "psnr": 28.0}, {"bpp": 0.4, "psnr": 30.0}]
    human = [{"setting": 1, "bpp": 0.1, "psnr": 27.0},       # outside WebP's range: not compared
             {"setting": 2, "bpp": 0.2, "psnr": 28.3},
             {"setting": 3, "bpp": 0.4, "psnr": 30.004},     # 0.004 dB: a tie, not a win
             {"setting": 4, "bpp": 0.4, "psnr": 29.5}]
    line = model_card.webp_line(human, webp)
    assert "at 1 of 3 ugc rates inside WebP's range, 1 within 0.01 dB" in line
    assert "q2 +0.30 dB, q3 +0.00 dB, q4 -0.50 dB" in line and line.endswith("not met.")
    assert model_card.webp_line(human[:1], webp) == ""


def test_model_card_checks_the_targets_again_for_each_refinement_report(model_card, tmp_path):
    (tmp_path / "refine7").mkdir()
    (tmp_path / "refine_empty").mkdir()
    curve = [{"setting": q, "bpp": 0.1 * q, "psnr": 27.0 + q} for q in (1, 2, 3)]
    webp = [{"setting": 5, "bpp": 0.05, "psnr": 26.0}, {"setting": 50, "bpp": 0.5, "psnr": 29.0}]  # below ugc
    rd = {"command": "python benchmarks/rd.py --refine 7", "ugc_refine": 7,
          "bd_rate": {"ugc-human": {"psnr": {"bd_rate": -31.5}}}, "curves": {"ugc-human": curve, "webp": webp}}
    (tmp_path / "refine7" / "rd.json").write_text(json.dumps(rd))
    lines = model_card.refinement_target_lines(str(tmp_path))
    assert lines[0] == "## Targets with encoder refinement (7 steps, `ugc encode --refine N`)"
    assert "`python benchmarks/rd.py --refine 7`" in lines[2]
    assert any("-31.5% (target: -30% or better): met." in line for line in lines)
    assert any("at 3 of 3 ugc rates" in line and line.endswith("met.") for line in lines)
    assert model_card.refinement_target_lines(str(tmp_path / "refine_empty")) == []


def test_machine_vs_human_breaks_down_by_photo_group(analytics):
    records = [
        record("ugc-human", "astronaut", 1, [1, 0, 0]), record("ugc-machine", "astronaut", 1, [0, 0, 0]),
        record("ugc-human", "plasma-Kite", 1, [0, 0]), record("ugc-machine", "plasma-Kite", 1, [1, 1]),
        record("ugc-human", "opencv-apple", 1, [0]), record("ugc-machine", "opencv-apple", 1, [1]),
    ]
    every = analytics.machine_vs_human(records, ["lite0"])[0]["lite0"]
    assert (every["machine_only"], every["human_only"], every["crops"]) == (3, 1, 6)
    standard = analytics.machine_vs_human(records, ["lite0"], "standard")[0]["lite0"]
    assert (standard["machine_only"], standard["human_only"], standard["crops"]) == (0, 1, 3)
    plasma = analytics.machine_vs_human(records, ["lite0"], "plasma-workspace-wallpapers")[0]["lite0"]
    assert (plasma["machine_only"], plasma["human_only"], plasma["crops"]) == (2, 0, 2)
    assert analytics.machine_vs_human(records, ["lite0"], "no-such-group") == []


def test_model_card_checks_the_machine_target_again_on_another_photo_set(model_card, tmp_path):
    def curve(values):
        return [{"setting": q, "bpp": 0.1 * q, "psnr": 27.0, "lite0_top1": v, "teacher_top1": v} for q, v in enumerate(values, 1)]

    def paired(machine_only, human_only):
        return {"setting": 1, "lite0": {"crops": 10, "machine_only": machine_only, "human_only": human_only, "p_value": 0.5}}

    report = {
        "command": "python benchmarks/analytics.py --photo-set all", "photo_set": "all",
        "photos": [{"name": "astronaut"}, {"name": "plasma-Kite"}], "classifiers": {"lite0": {}, "teacher": {}},
        "curves": {"ugc-human": curve([0.30, 0.40]), "ugc-machine": curve([0.35, 0.38])},
        "machine_vs_human": [paired(4, 2)],
        "machine_vs_human_by_group": {"standard": [paired(0, 2)], "plasma-workspace-wallpapers": [paired(4, 0)]},
    }
    (tmp_path / "all").mkdir()
    (tmp_path / "all" / "analytics.json").write_text(json.dumps(report))
    (tmp_path / "standard_only").mkdir()
    (tmp_path / "standard_only" / "analytics.json").write_text(json.dumps({**report, "photo_set": "standard"}))
    lines = model_card.photo_set_target_lines(str(tmp_path))
    assert lines[0] == "## Targets on the `all` photo set (2 photos)"
    assert "`python benchmarks/analytics.py --photo-set all`" in lines[2]
    assert any(line.startswith("- Machine decoding, lite0") and "at 1 of 2 (not met" in line for line in lines)
    assert any(line.startswith("- Diagnostic, not a target") for line in lines)  # the teacher is never a target
    assert "- Group standard, lite0: machine decoding above the human decoding at 0 of 1 qualities." in lines
    assert "- Group plasma-workspace-wallpapers, lite0: machine decoding above the human decoding at 1 of 1 qualities." in lines
    assert sum(line.startswith("## ") for line in lines) == 1  # the standard-set folder is not repeated
    assert ("- lite0, group by group: not above at every quality in every group (standard 0 of 1), "
            "so a pooled verdict rests on the groups where it is.") in lines
    assert not any(line.startswith("- teacher, group by group") for line in lines)


def baseline_report(settings=(10, 20)):
    photos = [{"name": "astronaut", "width": 64, "height": 64}]
    records = [{"photo": "astronaut", "codec": codec, "setting": s, "bpp": 1.0, "psnr": 30.0, "models": {}}
               for codec in ("jpeg", "webp") for s in settings]
    records.append({"photo": "astronaut", "codec": "ugc-human", "setting": 1, "bpp": 0.2, "psnr": 28.0, "models": {}})
    return {"photos": photos, "max_size": "768x512", "crops_per_photo": 12,
            "classifiers": {"lite0": {"weights": "w.pth", "input_size": 224}}, "teacher": "MobileNetV2",
            "environment": {"pillow": "12.0.0"}, "records": records}


def expectation(report, **changes):
    expected = {key: report[key] for key in ("photos", "max_size", "crops_per_photo", "classifiers", "teacher")}
    expected["pillow"] = report["environment"]["pillow"]
    return {**expected, **changes}


def test_baselines_are_reused_only_for_the_same_measurement(analytics):
    report = baseline_report()
    reused = analytics.reusable_baselines(report, expectation(report), {"jpeg": [10, 20], "webp": [20]})
    assert set(reused) == {("astronaut", "jpeg", 10), ("astronaut", "jpeg", 20), ("astronaut", "webp", 10),
                           ("astronaut", "webp", 20)}  # every Pillow record of the report, never ugc's
    for changed in ({"classifiers": {"lite1": {"weights": "x.pth", "input_size": 240}}}, {"pillow": "11.0.0"},
                    {"crops_per_photo": 6}, {"teacher": None},
                    {"photos": [{"name": "astronaut", "width": 32, "height": 32}]}):
        with pytest.raises(ValueError, match=next(iter(changed))):
            analytics.reusable_baselines(report, expectation(report, **changed), {"jpeg": [10]})


def test_baselines_of_a_larger_report_keep_only_this_runs_classifiers(analytics):
    report = baseline_report()
    report["classifiers"]["lite1"] = {"weights": "v.pth", "input_size": 240}
    for record in report["records"]:
        record["models"] = {"lite0": {"top1_hits": 1}, "lite1": {"top1_hits": 2}}
    expected = expectation(report, classifiers={"lite0": report["classifiers"]["lite0"]})
    reused = analytics.reusable_baselines(report, expected, {"jpeg": [10]})
    assert reused[("astronaut", "jpeg", 10)]["models"] == {"lite0": {"top1_hits": 1}}
    assert report["records"][0]["models"]["lite1"] == {"top1_hits": 2}  # the report itself is left alone


def test_baselines_missing_a_setting_are_refused(analytics):
    report = baseline_report(settings=(10,))
    with pytest.raises(ValueError, match="no webp record at setting 20 for astronaut"):
        analytics.reusable_baselines(report, expectation(report), {"jpeg": [10], "webp": [20]})


def test_rd_baselines_come_from_a_report_of_more_photos_at_the_same_size(analytics):
    report = baseline_report()
    report["photos"].append({"name": "coffee", "width": 60, "height": 40})
    expected = {"photos": report["photos"][:1], "max_size": "768x512", "pillow": "12.0.0"}
    reused = bench_common.reusable_records(report, expected, {"webp": [10, 20]})
    assert set(reused) == {("astronaut", "webp", 10), ("astronaut", "webp", 20)}
    with pytest.raises(ValueError, match="max_size '768x512', not '0'"):
        bench_common.reusable_records(report, {**expected, "max_size": "0"}, {"webp": [10]})


def test_report_model_line_names_the_refinement_steps(analytics):
    from types import SimpleNamespace

    model = SimpleNamespace(path="/x/weights.pt", fingerprint=bytes(8), num_qualities=6,
                            config=SimpleNamespace(N=64, M=128))
    describe = analytics.common.ugc_description
    assert "refinement" not in describe(model)
    assert describe(model, refine=1).endswith("encoder refinement 1 step")
    assert describe(model, refine=20).endswith("encoder refinement 20 steps")
