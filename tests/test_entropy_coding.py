import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import norm

from ugcodec.entropy_coding import (
    PRECISION,
    CodingTable,
    SymbolRangeError,
    decode_symbols,
    encode_symbols,
    quantize_pmf,
)
from ugcodec.errors import FormatError


def gaussian_table(scale: float) -> CodingTable:
    half = int(np.ceil(6 * scale)) + 1
    values = np.arange(-half, half + 1)
    return quantize_pmf(norm.cdf((values + 0.5) / scale) - norm.cdf((values - 0.5) / scale), -half)


TABLES = [gaussian_table(s) for s in (0.11, 0.7, 3.0, 40.0)]


def test_quantized_tables_are_valid_and_close_to_the_pmf():
    for table in TABLES:
        assert table.frequencies.sum() == 1 << PRECISION
        assert table.frequencies.min() >= 1
    wide = TABLES[-1]
    centre = wide.frequencies[-wide.offset] / (1 << PRECISION)
    assert centre == pytest.approx(norm.cdf(0.5 / 40) - norm.cdf(-0.5 / 40), rel=1e-3)


def test_invalid_tables_are_refused():
    with pytest.raises(ValueError):
        CodingTable(0, np.array([1, 2, 3]))
    with pytest.raises(ValueError):
        CodingTable(0, np.array([0, 1 << PRECISION]))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-2000, 2000), st.integers(0, 3)), min_size=0, max_size=300),
)
def test_round_trip_with_escapes(pairs):
    values = np.array([v for v, _ in pairs], dtype=np.int64)
    index = np.array([i for _, i in pairs], dtype=np.int64)
    data = encode_symbols(values, index, TABLES)
    assert len(data) % 4 == 0
    np.testing.assert_array_equal(decode_symbols(data, index, TABLES), values)


def test_shapes_are_kept_and_rates_follow_the_model():
    rng = np.random.default_rng(0)
    index = rng.integers(0, 4, size=(3, 20, 30))
    values = np.round(rng.normal(0, np.array([0.11, 0.7, 3.0, 40.0])[index])).astype(np.int64)
    data = encode_symbols(values, index, TABLES)
    decoded = decode_symbols(data, index, TABLES)
    assert decoded.shape == values.shape
    np.testing.assert_array_equal(decoded, values)
    # The code length stays within 1 % (+ the coder's 64-bit start) of the model's entropy.
    ideal = 0.0
    for table_number, table in enumerate(TABLES):
        chosen = values[index == table_number] - table.offset
        ideal -= np.log2(table.frequencies[chosen] / (1 << PRECISION)).sum()
    assert 8 * len(data) <= ideal * 1.01 + 96


def test_far_values_are_refused_not_clamped():
    with pytest.raises(SymbolRangeError):
        encode_symbols(np.array([10**6]), np.array([0]), TABLES)


def test_truncated_or_extended_streams_raise_format_error():
    rng = np.random.default_rng(1)
    index = rng.integers(0, 4, size=500)
    values = np.round(rng.normal(0, 3, 500)).astype(np.int64)
    data = encode_symbols(values, index, TABLES)
    for broken in (data[:-4], data + b"\x01\x00\x00\x00", data[:-1]):
        with pytest.raises(FormatError):
            decode_symbols(broken, index, TABLES)
