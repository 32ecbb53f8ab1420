"""The statistics benchmarks/analytics.py reports (the benchmark itself runs outside CI)."""
import json

import pytest

from benchmarks import analytics as analytics_module
from benchmarks import bench_common


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
