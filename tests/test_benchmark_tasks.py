"""The scores, statistics and report of benchmarks/analytics_tasks.py on made-up model
outputs (the task models themselves run outside CI)."""
import json
import os

import numpy as np
import pytest

from benchmarks import analytics_tasks, task_photos as task_photos_module, tasks as tasks_module


@pytest.fixture(scope="module")
def bench():
    return tasks_module, analytics_tasks


@pytest.fixture(scope="module")
def tasks(bench):
    return bench[0]


@pytest.fixture(scope="module")
def runner(bench):
    return bench[1]


BOXES = np.array([[10, 10, 50, 60, 0.9], [100, 20, 140, 70, 0.8]], np.float32)


# --------------------------------------------------------------------------- scores
def test_detection_f1_is_one_on_identical_boxes_and_zero_on_disjoint_ones(tasks):
    assert tasks.detection_f1(BOXES, BOXES.copy()) == 1.0
    assert tasks.detection_f1(BOXES, BOXES + [300, 300, 300, 300, 0]) == 0.0
    assert tasks.detection_f1(BOXES, np.zeros((0, 5))) == 0.0
    assert tasks.detection_f1(np.zeros((0, 5)), np.zeros((0, 5))) is None


def test_detection_f1_counts_misses_and_false_alarms(tasks):
    extra = np.vstack([BOXES, [[200, 200, 220, 230, 0.7]]])
    assert tasks.detection_f1(BOXES, BOXES[:1]) == pytest.approx(2 * 1 / 3)
    assert tasks.detection_f1(BOXES, extra) == pytest.approx(2 * 2 / 5)


def test_boxes_match_at_iou_half_and_one_to_one(tasks):
    reference = np.array([[0, 0, 10, 10]])
    assert tasks.box_iou(reference, np.array([[0, 0, 10, 20]]))[0, 0] == pytest.approx(0.5)
    assert tasks.match_boxes(reference, np.array([[0, 0, 10, 20]])) == [(0, 0)]
    assert tasks.match_boxes(reference, np.array([[0, 0, 10, 21]])) == []
    # Two decoded boxes on one reference: only the better one matches.
    assert tasks.match_boxes(reference, np.array([[0, 0, 10, 12], [0, 0, 10, 10]])) == [(0, 1)]


def test_mask_iou(tasks):
    mask = np.zeros((8, 8), bool)
    mask[:4] = True
    assert tasks.mask_iou(mask, mask.copy()) == 1.0
    assert tasks.mask_iou(mask, ~mask) == 0.0
    half = np.zeros_like(mask)
    half[:2] = True
    assert tasks.mask_iou(mask, half) == pytest.approx(0.5)
    assert tasks.mask_iou(np.zeros_like(mask), np.zeros_like(mask)) is None
    with pytest.raises(ValueError):
        tasks.mask_iou(mask, mask[:4])


def pose(points, visibility=1.0):
    return np.array([[x, y, visibility] for x, y in points], np.float32)


def test_pck_hits_within_a_share_of_the_pose_size(tasks):
    reference = pose([(0, 0), (100, 0), (0, 200), (100, 200)])  # size 200: radius 0.05 * 200 = 10
    assert tasks.pck_hits(reference, reference.copy()).tolist() == [True] * 4
    moved = reference.copy()
    moved[0, 0] += 9.9
    moved[1, 1] += 10.5
    assert tasks.pck_hits(reference, moved).tolist() == [True, False, True, True]
    assert tasks.pck_hits(reference, np.zeros((0, 3))).tolist() == [False] * 4
    hidden = reference.copy()
    hidden[2, 2] = 0.1  # not visible on the original: not scored
    assert len(tasks.pck_hits(hidden, reference)) == 3


@pytest.mark.parametrize("reference, decoded, expected", [
    ("PARKING", "PARKING", 0.0),
    ("PARKING", "PARK1NG", 1 / 7),
    ("kitten", "sitting", 3 / 6),
    ("abc", "", 1.0),
    ("ab", "abcd", 1.0),
])
def test_cer(tasks, reference, decoded, expected):
    assert tasks.cer(reference, decoded) == pytest.approx(expected)


def word(x, text):
    return ((x, 0.0, x + 40.0, 20.0), text)


def test_text_scores_match_words_by_box_then_compare_their_text(tasks):
    reference = [word(0, "DOUBLE"), word(100, "PARKING")]
    same = tasks.text_scores(reference, list(reversed(reference)))
    assert same == {"text_f1": 1.0, "text_cer": 0.0, "words": [True, True]}
    misread = tasks.text_scores(reference, [word(1, "D0UBLE")])  # one letter wrong, one word lost
    assert misread["text_f1"] == pytest.approx(2 / 3)
    assert misread["text_cer"] == pytest.approx((1 + 7) / 13)
    assert misread["words"] == [False, False]
    assert tasks.text_scores([], [word(0, "x")])["text_cer"] is None


def test_score_skips_tasks_with_nothing_to_find(tasks):
    mask = np.zeros((10, 10), bool)
    mask[:5] = True
    reference = {"faces": BOXES, "person": mask, "pose": pose([(i * 10, i * 5) for i in range(10)]),
                 "text": [word(0, "SALE")]}
    perfect = tasks.score(reference, reference)
    assert perfect["face_f1"] == perfect["person_iou"] == perfect["pose_pck"] == perfect["text_f1"] == 1.0
    assert perfect["text_cer"] == 0.0 and perfect["faces"] == [True, True] and perfect["words"] == [True]
    empty = {"faces": np.zeros((0, 5)), "person": np.zeros((10, 10), bool), "pose": np.zeros((0, 3)), "text": []}
    nothing = tasks.score(empty, reference)
    assert all(nothing[key] is None for key in ("face_f1", "person_iou", "pose_pck", "text_f1", "text_cer"))
    assert tasks.found(reference) == {"faces": 2, "person_permille": 500, "landmarks": 10, "words": 1}


def test_missing_task_venv_says_how_to_install_it(tasks, tmp_path):
    with pytest.raises(SystemExit, match="install_tasks.sh"):
        tasks.MediapipeModels(str(tmp_path / "no-python"))


# --------------------------------------------------------------------------- statistics and report
def record(photo, codec, setting, bpp, **scores):
    return {"photo": photo, "codec": codec, "setting": setting, "bpp": bpp, "psnr": 30.0, "scores": scores}


def fake_records():
    """Two photos with faces, one with text; the machine decoding finds one more face on
    photo a at quality 1 and reads worse on photo b."""
    records = []
    for photo, scale in (("a", 1.0), ("b", 1.2)):
        for quality, bpp in ((1, 0.2), (2, 0.4)):
            found_h = [True, quality > 1]
            found_m = [True, True] if photo == "a" else found_h
            text = {} if photo == "a" else {"text_f1": 1.0, "text_cer": 0.0, "words": [True]}
            text_m = {} if photo == "a" else {"text_f1": 1.0, "text_cer": 0.5 / quality, "words": [False]}
            records.append(record(photo, "ugc-human", quality, bpp * scale, face_f1=sum(found_h) / 2, faces=found_h,
                                  **text))
            records.append(record(photo, "ugc-machine", quality, bpp * scale, face_f1=sum(found_m) / 2, faces=found_m,
                                  **text_m))
        for setting, bpp, f1 in ((10, 0.1, 0.0), (50, 0.3, 0.5), (90, 1.0, 1.0)):
            text = {} if photo == "a" else {"text_f1": f1, "text_cer": 1.0 - f1, "words": [f1 == 1.0]}
            records.append(record(photo, "jpeg", setting, bpp * scale, face_f1=f1, faces=[f1 > 0, f1 > 0.5], **text))
    return records


def metrics(tasks, *keys):
    return [m for m in tasks.METRICS if m.key in keys]


def test_curves_average_each_metric_over_its_own_photos(tasks, runner):
    curves = runner.aggregate(fake_records(), metrics(tasks, "face_f1", "text_cer"))
    human = curves["face_f1"]["ugc-human"]
    assert [p["setting"] for p in human] == [1, 2]
    assert human[0]["bpp"] == pytest.approx((0.2 + 0.24) / 2) and human[0]["score"] == 0.5 and human[0]["photos"] == 2
    text = curves["text_cer"]["ugc-machine"]  # photo b only
    assert [p["photos"] for p in text] == [1, 1] and text[0]["bpp"] == pytest.approx(0.24)
    assert runner.scored_photos(fake_records(), "text_cer") == ["b"]


def test_matched_bpp_interpolates_in_log_bpp_and_not_outside(tasks, runner):
    points = [{"bpp": 0.1, "score": 0.0}, {"bpp": 0.4, "score": 1.0}]
    assert runner.interpolate(points, 0.2) == pytest.approx(0.5)
    assert runner.interpolate(points, 0.5) is None
    found = runner.matched_bpp(runner.aggregate(fake_records(), metrics(tasks, "face_f1")), metrics(tasks, "face_f1"))
    assert [row["setting"] for row in found["face_f1"]] == [1, 2]
    assert found["face_f1"][0]["ugc-human"] == 0.5


def test_machine_vs_human_pairs_photos_and_objects(tasks, runner):
    paired = runner.machine_vs_human(fake_records(), metrics(tasks, "face_f1", "text_cer"))
    q1 = paired["face_f1"][0]
    assert (q1["better"], q1["worse"], q1["equal"]) == (1, 0, 1)
    assert (q1["machine_only"], q1["human_only"], q1["units"]) == (1, 0, 4)
    assert paired["face_f1"][1]["equal"] == 2
    # Lower CER is better: the machine decoding reads worse on the one text photo.
    text = paired["text_cer"][0]
    assert (text["better"], text["worse"], text["photos"]) == (0, 1, 1)
    assert (text["machine_only"], text["human_only"]) == (0, 1) and text["unit_p_value"] == 1.0


def fake_result(tasks, runner):
    keys = ("face_f1", "text_f1", "text_cer")
    records = fake_records()
    chosen = metrics(tasks, *keys)
    curves = runner.aggregate(records, chosen)
    return {
        "command": "python benchmarks/analytics_tasks.py --fake", "seconds": 1.0, "model": "ugc weights fake",
        "environment": {"mediapipe": "0", "easyocr": "0"}, "tasks": ["face", "text"], "metrics": list(keys),
        "long_side": 512, "sweeps": {"jpeg": [10, 50, 90]}, "notes": ["a note"],
        "photos": [{"name": "a", "width": 4, "height": 3, "kind": "people", "source": "made up",
                    "found": {"faces": 2, "words": 0}},
                   {"name": "b", "width": 4, "height": 3, "kind": "composited-text", "source": "made up",
                    "found": {"faces": 2, "words": 1}}],
        "curves": curves, "matched": runner.matched_bpp(curves, chosen),
        "machine_vs_human": runner.machine_vs_human(records, chosen), "records": records,
    }


def test_report_gives_counts_paired_tests_and_codecs_at_ugc_bpp(tasks, runner):
    text = runner.report(fake_result(tasks, runner))
    assert "face 2" in text and "text recognition 1" in text
    # JPEG at 0.22 bpp: between its 0.11 (F1 0) and 0.33 bpp (F1 0.5) points, log(2)/log(3) of the way.
    jpeg = 0.5 * np.log(2) / np.log(3)
    assert f"| 1 | 0.220 | 1 / 0 / 1 (p=1.00) | 1 / 0 of 4 (p=1.00) | 0.500 | 0.750 | {jpeg:.3f} |" in text
    assert "### Text recognition (EasyOCR): character error rate (lower is better), 1 photos" in text
    assert "Note: a note" in text


def test_plots_one_panel_per_metric_and_one_file_per_family(tasks, runner, tmp_path):
    pytest.importorskip("matplotlib")  # a benchmark requirement, not a test one
    result = fake_result(tasks, runner)
    runner.plot(result, str(tmp_path / "tasks.png"))
    paths = runner.plot_families(result, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["tasks_face.png", "tasks_text.png"]
    from PIL import Image

    with Image.open(tmp_path / "tasks.png") as all_panels, Image.open(paths[0]) as one_panel:
        assert all_panels.size[0] > 2.5 * one_panel.size[0]
    json.dumps(result)  # the result is what tasks.json holds


# --------------------------------------------------------------------------- photos
@pytest.fixture(scope="module")
def task_photos():
    return task_photos_module


def test_task_photos_are_named_once_and_have_sources(task_photos):
    names = task_photos.TASK_PHOTO_NAMES
    assert len(names) == len(set(names))
    assert all(task_photos.source_of(name) for name in names)
    assert {task_photos.kind_of(name) for name in names} == {"people", "scene-text", "composited-text"}
    assert all(task_photos.source_of(name).startswith("composited") for name in task_photos.KINDS["composited-text"])


def test_composited_text_changes_only_the_lettered_band(task_photos):
    image = np.full((120, 200, 3), 90, np.uint8)
    for style in ("plate", "outline"):
        lettered = task_photos.composite_text(image, ("SALE", "today"), style)
        changed = np.any(lettered != image, axis=2)
        assert changed.sum() > 200
        assert not changed[:30].any() and lettered.shape == image.shape


def test_shrink_keeps_the_whole_picture(task_photos):
    image = np.zeros((300, 600, 3), np.uint8)
    assert task_photos.shrink(image, 200).shape == (100, 200, 3)
    assert task_photos.shrink(image, 0) is image


def test_missing_fetched_photo_says_how_to_fetch(task_photos, tmp_path):
    with pytest.raises(FileNotFoundError, match="--fetch"):
        task_photos.load_task_photos(names=["opencv-messi5"], cache=str(tmp_path))
    with pytest.raises(ValueError):
        task_photos.load_task_photos(names=["no-such-photo"], cache=str(tmp_path))


def test_merging_runs_on_different_photos_recomputes_the_statistics(tasks, runner):
    whole = fake_result(tasks, runner)
    parts = []
    for photo in ("a", "b"):
        part = dict(whole, photos=[p for p in whole["photos"] if p["name"] == photo],
                    records=[r for r in whole["records"] if r["photo"] == photo], command=f"run {photo}")
        parts.append(part)
    merged = runner.merge(parts)
    assert merged["curves"] == whole["curves"] and merged["machine_vs_human"] == whole["machine_vs_human"]
    assert merged["command"] == "run a; run b" and merged["seconds"] == 2.0 and merged["merged_runs"] == 2
    assert "in 2 runs on parts of the photos" in runner.report(merged)
    with pytest.raises(ValueError, match="share photos"):
        runner.merge([parts[0], parts[0]])
    with pytest.raises(ValueError, match="long_side"):
        runner.merge([parts[0], dict(parts[1], long_side=256)])
