"""The pixel tolerance of bitstream_spec.md §11: exact parsing, tolerant pixels."""
import numpy as np

MAX_ABS_DIFFERENCE = 1
MAX_DIFFERING_FRACTION = 0.10


def assert_pixels_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """At most +-1 on at most 10 % of the values (the libjxl conformance pattern)."""
    actual = np.asarray(actual, dtype=np.int16)
    expected = np.asarray(expected, dtype=np.int16)
    assert actual.shape == expected.shape
    difference = np.abs(actual - expected)
    assert difference.max(initial=0) <= MAX_ABS_DIFFERENCE, f"pixels differ by {difference.max()}"
    fraction = float((difference > 0).mean()) if difference.size else 0.0
    assert fraction <= MAX_DIFFERING_FRACTION, f"{fraction:.4%} of pixel values differ"
