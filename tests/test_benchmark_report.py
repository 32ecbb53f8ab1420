"""benchmarks/report.py: the benchmark page and README's results table are the reports'."""
import json
import os
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
            assert page.index(f"`{found['command']}`", heading) < page.index("|", heading)
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
