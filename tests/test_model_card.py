"""tools/model_card.py: the training-time sentence says what the run folder's log covers."""
import json

import pytest

from tools import model_card


def write_log(path, records):
    with open(path, "w") as handle:
        for step, seconds in records:
            handle.write(json.dumps({"step": step, "stage": 1, "seconds": seconds}) + "\n")


def test_training_time_adds_resumed_segments(tmp_path):
    log = tmp_path / "log.jsonl"
    write_log(log, [(50, 10.0), (100, 20.0), (150, 5.0), (200, 15.0)])  # resumed after step 100
    seconds, first, last = model_card.training_time(str(log))
    assert seconds == 35.0
    assert first["step"] == 50 and last["step"] == 200


def test_wall_clock_from_the_start_covers_every_segment(tmp_path):
    log = tmp_path / "log.jsonl"
    write_log(log, [(50, 1800.0), (100, 3600.0)])
    text = model_card.wall_clock_text(*model_card.training_time(str(log)), log_every=50)
    assert text.startswith("Wall-clock 1.00 h over all resumed segments")


def test_wall_clock_of_a_run_resumed_from_a_compact_checkpoint_says_what_it_leaves_out(tmp_path):
    log = tmp_path / "log.jsonl"
    write_log(log, [(202250, 30.0), (203229, 900.0)])
    text = model_card.wall_clock_text(*model_card.training_time(str(log)), log_every=50)
    assert "over all resumed segments" not in text
    assert "(202250 to 203229)" in text and "--init-from" in text


def write_report(folder, name, fingerprint, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    report = {"command": f"python benchmarks/{name}.py", "model": f"ugc weights w.pt (fingerprint {fingerprint}, N=64)"}
    report.update(fields)
    (folder / f"{name}.json").write_text(json.dumps(report))


RD_CURVES = {"bd_rate": {"ugc-human": {"psnr": {"bd_rate": -35.0}}}, "curves": {}}


def test_targets_use_only_reports_of_the_shipped_weights(tmp_path):
    write_report(tmp_path, "rd", "aaaaaaaaaaaaaaaa", **RD_CURVES)
    lines = model_card.target_lines(str(tmp_path), fingerprint="aaaaaaaaaaaaaaaa")
    assert any("-35.0%" in line and "met." in line for line in lines)

    lines = model_card.target_lines(str(tmp_path), fingerprint="bbbbbbbbbbbbbbbb")
    assert not any("-35.0%" in line for line in lines)
    assert any("Not checked for these weights" in line and "aaaaaaaaaaaaaaaa" in line for line in lines)


def test_refinement_sections_come_in_order_of_steps(tmp_path):
    for steps in (20, 1, 5):
        write_report(tmp_path / f"refine{steps}", "rd", "aaaaaaaaaaaaaaaa", ugc_refine=steps, **RD_CURVES)
    titles = [line for line in model_card.refinement_target_lines(str(tmp_path), "aaaaaaaaaaaaaaaa")
              if line.startswith("## ")]
    assert titles == [f"## Targets with encoder refinement ({n}, `ugc encode --refine N`)"
                      for n in ("1 step", "5 steps", "20 steps")]


def test_a_photo_set_report_of_other_weights_gives_no_figures(tmp_path):
    analytics = {"photo_set": "all", "photos": ["a", "b"], "classifiers": {"lite0": {}},
                 "curves": {"ugc-human": [{"setting": 1, "lite0_top1": 0.3}],
                            "ugc-machine": [{"setting": 1, "lite0_top1": 0.4}]},
                 "machine_vs_human_by_group": {"g": [{"setting": 1, "lite0": {"machine_only": 2, "human_only": 1,
                                                                           "p_value": 1.0, "crops": 3}}]}}
    write_report(tmp_path / "all", "analytics", "aaaaaaaaaaaaaaaa", **analytics)
    fresh = model_card.photo_set_target_lines(str(tmp_path), "aaaaaaaaaaaaaaaa")
    assert any("q1 0.400 vs 0.300" in line for line in fresh)
    stale = model_card.photo_set_target_lines(str(tmp_path), "bbbbbbbbbbbbbbbb")
    assert not any("0.400" in line or line.startswith("- Group") for line in stale)
    assert any("Not checked for these weights" in line for line in stale)


def test_capacity_limitation_names_the_levels_below_webp_from_the_report(tmp_path):
    levels = [{"quality": 1, "unrounded_psnr": 30.0, "webp_psnr": None, "channels_in_use": 80},
              {"quality": 2, "unrounded_psnr": 31.0, "webp_psnr": 30.5, "channels_in_use": 90},
              {"quality": 3, "unrounded_psnr": 31.2, "webp_psnr": 32.0, "channels_in_use": 100}]
    write_report(tmp_path, "capacity", "aaaaaaaaaaaaaaaa", photo_set="standard", photos=["p"] * 7,
                 latent_channels=128, levels=levels)
    line = model_card.capacity_limitation(str(tmp_path), "aaaaaaaaaaaaaaaa")
    assert "so q3 cannot overtake WebP" in line and "28 of the 128 latent channels" in line
    assert "31.2 dB at q3" in line
    assert "not measured" in model_card.capacity_limitation(str(tmp_path), "bbbbbbbbbbbbbbbb")


def test_template_sections_are_filled_from_values():
    lines = model_card.template_section("limitations", capacity_limitation="- CAPACITY FROM THE REPORT")
    assert lines[0] == "## Limitations" and "- CAPACITY FROM THE REPORT" in lines
    model = model_card.template_section("model", N=96, M=160, embedding_dim=32, levels=2, lambdas="0.01, 0.02")
    assert "N = 96, M = 160" in model[1] and "λ = 0.01, 0.02" in model[2]
    with pytest.raises(KeyError):  # a placeholder with no value is an error, never left in the card
        model_card.template_section("limitations")
