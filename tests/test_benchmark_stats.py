"""The statistics benchmarks/analytics.py reports (the benchmark itself runs outside CI)."""
import importlib.util
import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture(scope="module")
def analytics():
    sys.path.insert(0, BENCHMARKS)
    try:
        spec = importlib.util.spec_from_file_location("analytics_under_test", os.path.join(BENCHMARKS, "analytics.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(BENCHMARKS)


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
