"""Progress that follows the real work: planned once, advancing stage by stage and tile by
tile, refinement included, and reaching the end only when the work is done."""
import numpy as np
import pytest

import ugcodec
from ugcodec.progress import Meter, image_write_work, latent_positions
from ugcodec.tiling import synthesis_tiles

from conftest import make_photo_like


class Recorder:
    """A progress callback that keeps every report and what was happening at the time."""

    def __init__(self):
        self.reports = []

    def __call__(self, done, total):
        self.reports.append((done, total))

    def check(self):
        """One total throughout, ``done`` rising, and the end reached by the last report only."""
        assert self.reports, "no progress was reported"
        totals = {total for _, total in self.reports}
        assert len(totals) == 1
        total = totals.pop()
        done = [value for value, _ in self.reports]
        assert done == sorted(done) and len(set(done)) == len(done)
        assert done[-1] == total and all(value < total for value in done[:-1])
        return total


def test_encode_reports_every_stage_and_every_analysis_tile(tiny_model, monkeypatch):
    from ugcodec import tiling

    image = make_photo_like(40, 1100)  # 4 x 72 latents: two analysis tiles of at most 160
    monkeypatch.setattr(tiling, "ANALYSIS_AREA", 160)
    assert len(list(tiling.analysis_tiles(4, 72))) == 2
    record = Recorder()
    data = ugcodec.encode(image, 2, model=tiny_model, progress=record)
    record.check()
    # reading, two tiles, hyper, entropy coding, the end (metadata): one report each
    assert len(record.reports) >= 5
    assert data == ugcodec.encode(image, 2, model=tiny_model)  # progress changes nothing


def test_refinement_steps_are_most_of_a_refined_encode(tiny_model):
    image = make_photo_like(48, 70)
    plain, refined = Recorder(), Recorder()
    ugcodec.encode(image, 2, model=tiny_model, progress=plain)
    ugcodec.encode(image, 2, model=tiny_model, progress=refined, refine=3)
    plain_total, refined_total = plain.check(), refined.check()
    assert refined_total > 10 * plain_total
    # Every step reports: the bar moves through the refinement, not in one jump.
    inside = [done for done, _ in refined.reports if plain_total < done < refined_total - plain_total]
    assert len(inside) >= 3


def test_decode_reports_parsing_and_every_synthesis_tile(tiny_model):
    image = make_photo_like(768, 768)
    data = ugcodec.encode(image, 1, model=tiny_model)
    tile_count = len(list(synthesis_tiles(48, 48)))
    assert tile_count >= 2
    record = Recorder()
    decoded = ugcodec.decode(data, "machine", model=tiny_model, progress=record)
    record.check()
    assert len(record.reports) == 2 + tile_count  # hyper-synthesis, entropy decoding, tiles
    assert np.array_equal(np.asarray(decoded), np.asarray(ugcodec.decode(data, "machine", model=tiny_model)))


def test_a_failed_decode_does_not_report_the_end(tiny_model):
    data = ugcodec.encode(make_photo_like(48, 70), 1, model=tiny_model)
    record = Recorder()
    with pytest.raises(ugcodec.UgcError):
        ugcodec.decode(data[:-5], model=tiny_model, progress=record)
    assert all(done < total for done, total in record.reports)


def test_progress_true_still_runs(tiny_model):
    data = ugcodec.encode(make_photo_like(48, 70), 1, model=tiny_model, progress=True, refine=1)
    assert ugcodec.decode(data, model=tiny_model, progress=True).size == (70, 48)


def test_meter_parts_scale_into_their_share_and_never_overshoot():
    record = Recorder()
    meter = Meter(record)
    meter.plan(100)
    meter.advance(10)
    part = meter.part(50)
    part(1, 4)
    part(3, 4)
    part(9, 4)  # a sub-task that overshoots stays inside its share
    assert meter.done == 60
    meter.advance_to(40)  # never backwards
    meter.advance(1000)
    assert meter.done == 100
    meter.finish()
    record.check()
    assert record.reports == [(10, 100), (22, 100), (47, 100), (60, 100), (100, 100)]


def test_write_work_counts_latent_positions():
    assert latent_positions(70, 48) == 5 * 3
    assert image_write_work(70, 48) > 0 and image_write_work(1400, 960) > image_write_work(70, 48)
