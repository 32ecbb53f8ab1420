"""benchmarks/report.py: the benchmark page and README's results table are the reports'."""
import dataclasses
import json
import os
import re
import shutil

import pytest

from benchmarks import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(path) as handle:
        return handle.read()


def test_committed_pages_are_what_the_committed_reports_give(tmp_path):
    out, readme = tmp_path / "README.md", tmp_path / "top.md"
    shutil.copy(report.README, readme)
    assert report.main(["--out", str(out), "--readme", str(readme)]) == 0
    assert out.read_text() == read(report.OUT), "benchmarks/README.md is stale: run python -m benchmarks.report"
    assert readme.read_text() == read(report.README), "README.md's results are stale: run python -m benchmarks.report"


def test_a_changed_report_changes_the_pages(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(report.RESULTS, results)
    rd = json.loads((results / "rd.json").read_text())
    rd["bd_rate"]["ugc-human"]["psnr"]["bd_rate"] = -77.7
    rd["curves"]["ugc-human"][-1]["psnr"] = 41.23
    rd["command"] = "python -m benchmarks.rd --a-changed-command"
    (results / "rd.json").write_text(json.dumps(rd))
    page = report.render(str(results))
    assert page != read(report.OUT)
    assert "-77.7 %" in page and "41.23" in page and "`python -m benchmarks.rd --a-changed-command`" in page
    block = report.readme_block(str(results))
    assert "-77.7 %" in block and "41.23" in block


def test_every_report_is_headed_by_its_command_and_weights():
    page = read(report.OUT)
    for name in ("rd", "analytics", "speed", "tasks", "capacity"):
        for rel, found in report.find_reports(report.RESULTS, name):
            heading = page.index(f"#### `results/{rel}`")
            assert page.index(f"`{report.runnable_command(found['command'])}`", heading) < page.index("|", heading)
            assert report.fingerprint_of(found) in page[heading: page.index("|", heading)]


def test_readme_block_leaves_out_reports_of_other_weights(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(report.RESULTS, results)
    shipped = report.fingerprint_of(json.loads((results / "rd.json").read_text()))

    def lite0_cells(fingerprint):
        analytics = json.loads((results / "analytics.json").read_text())
        analytics["model"] = analytics["model"].replace(report.fingerprint_of(analytics), fingerprint)
        (results / "analytics.json").write_text(json.dumps(analytics))
        rows = [line for line in report.readme_block(str(results)).splitlines() if line.startswith("| 1 |")]
        return rows[0].rstrip(" |").rsplit("|", 1)[1].strip()

    assert lite0_cells(shipped) != "–"
    assert lite0_cells("0123456789abcdef") == "–"  # Lite0's agreement measured other weights


def test_readme_needs_its_markers():
    assert report.update_readme("a\n<!-- results -->\nold\n<!-- /results -->\nb\n", "new") == (
        "a\n<!-- results -->\nnew\n<!-- /results -->\nb\n")
    with pytest.raises(ValueError):
        report.update_readme("no markers", "new")


def test_reports_of_refinement_come_in_order_of_steps(tmp_path):
    for folder in ("refine20", "refine5", "", "all"):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "rd.json").write_text("{}")
    assert [rel for rel, _ in report.find_reports(str(tmp_path), "rd")] == [
        "rd.json", "all/rd.json", "refine5/rd.json", "refine20/rd.json"]


def test_commands_of_the_script_era_are_shown_as_modules():
    assert report.runnable_command("python benchmarks/rd.py --threads 2 --out benchmarks/results/rd.py.d") == (
        "python -m benchmarks.rd --threads 2 --out benchmarks/results/rd.py.d")
    assert report.runnable_command("python -m benchmarks.speed --large") == "python -m benchmarks.speed --large"


def results_with_shipped_rd(tmp_path):
    """A copy of the committed reports whose rd.json is one of the shipped weights:
    ``(folder, shipped fingerprint, that report)``."""
    results = tmp_path / "results"
    shutil.copytree(report.RESULTS, results)
    shipped = report.shipped_fingerprint()
    rd = json.loads((results / "rd.json").read_text())
    rd["model"] = re.sub(r"fingerprint [0-9a-f]{16}", f"fingerprint {shipped}", rd["model"])
    (results / "rd.json").write_text(json.dumps(rd))
    return results, shipped, rd


def test_reports_of_other_weights_come_last_and_say_so(tmp_path):
    results, shipped, rd = results_with_shipped_rd(tmp_path)
    other = dict(rd, model=rd["model"].replace(shipped, "0123456789abcdef"), command="python -m benchmarks.rd --other")
    (results / "aaa").mkdir()
    (results / "aaa" / "rd.json").write_text(json.dumps(other))  # sorts before the others by name
    page = report.render(str(results))
    ours, theirs = page.index("#### `results/rd.json`"), page.index("#### `results/aaa/rd.json`")
    assert ours < theirs
    note = "*Not the shipped weights:* these figures are of weights that never shipped (`0123456789abcdef`)"
    assert page.index(note, theirs) < page.index("|", theirs)
    assert "*Not the shipped weights:*" not in page[ours: page.index("|", ours)]


def test_reports_of_related_weights_come_after_the_shipped_ones_and_say_so(tmp_path, monkeypatch):
    results, shipped, rd = results_with_shipped_rd(tmp_path)
    summary = report.shipped_weights_summary()
    before, earlier, other = "00112233445566ff", "0123456789abcdef", "fedcba9876543210"
    monkeypatch.setattr(report, "shipped_weights_summary",
                        lambda: dataclasses.replace(summary, also_decodes=frozenset({bytes.fromhex(earlier)})))
    monkeypatch.setattr(report, "read_shipped_summary", lambda: {"same_human_decoding_as": before})
    for folder, fingerprint in (("aaa", other), ("bbb", earlier), ("ccc", before)):  # sort before the shipped one
        (results / folder).mkdir()
        (results / folder / "rd.json").write_text(json.dumps(dict(rd, model=rd["model"].replace(shipped, fingerprint))))
    page = report.render(str(results))
    order = [page.index(f"#### `results/{rel}`") for rel in ("rd.json", "ccc/rd.json", "bbb/rd.json", "aaa/rd.json")]
    assert order == sorted(order)
    assert page.index(f"*The shipped weights before their machine adapters:* these figures are of `{before}`",
                      order[1]) < order[2]
    assert page.index(f"*Earlier weights whose files the shipped ones decode:* these figures are of `{earlier}`", order[2]) < order[3]
    assert "*Not the shipped weights:*" in page[order[3]:]
    assert report.kinship(shipped) == report.SHIPPED and report.kinship(None) == report.OTHER
