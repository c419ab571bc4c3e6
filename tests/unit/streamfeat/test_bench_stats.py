"""streamfeat.bench.stats: nearest-rank percentiles, measurements, Markdown and JSON.

Pure and fast; nothing here measures speed.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamfeat.bench.stats import (
    JSON_FORMAT,
    Measurement,
    format_value,
    from_json,
    percentile,
    render_table,
    summarize,
    to_json,
)

latencies = st.lists(
    st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=300,
)


# ---- percentiles ----


def test_nearest_rank_on_one_to_hundred() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0.5) == 1.0


def test_nearest_rank_picks_an_observed_sample_never_interpolates() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 20.0  # rank ceil(2.0) = 2: the lower middle
    assert percentile(values, 51) == 30.0  # rank ceil(2.04) = 3
    assert percentile(values, 99) == 40.0


def test_rank_products_exact_in_decimal_do_not_step_up() -> None:
    # 0.29 * 100 is 28.999999999999996 in floats; the rank must still be 29.
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 29) == 29.0
    assert percentile([float(v) for v in range(1, 1001)], 99.9) == 999.0


def test_single_sample_is_every_percentile() -> None:
    s = summarize([7.5])
    assert (s.n, s.min, s.p50, s.p90, s.p99, s.max) == (1, 7.5, 7.5, 7.5, 7.5, 7.5)


def test_summarize_does_not_need_sorted_input() -> None:
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.min, s.p50, s.max) == (1.0, 3.0, 5.0)


@pytest.mark.parametrize("p", [0, -1, 100.01])
def test_percentile_outside_range_is_refused(p: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], p)


def test_empty_or_nan_sample_is_refused() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, math.nan])


@given(latencies)
def test_percentiles_are_ordered_and_within_min_max(values: list[float]) -> None:
    s = summarize(values)
    assert min(values) == s.min <= s.p50 <= s.p90 <= s.p99 <= s.max == max(values)
    assert s.n == len(values)
    assert {s.p50, s.p90, s.p99} <= set(values)


@given(latencies, st.floats(min_value=0.001, max_value=100))
def test_percentile_is_nearest_rank(values: list[float], p: float) -> None:
    ordered = sorted(values)
    got = percentile(ordered, p)
    at_or_below = sum(1 for v in ordered if v <= got)
    below = sum(1 for v in ordered if v < got)
    # at least p% of the samples are <= the answer, and fewer than p% are strictly below it
    assert at_or_below * 100 >= p * len(ordered) - 1e-6
    assert below * 100 < p * len(ordered) + 1e-6


# ---- measurements ----


def test_measurement_is_frozen() -> None:
    m = Measurement("redis PING p50", 52.0, "µs")
    with pytest.raises(AttributeError):
        m.value = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": " ", "value": 1.0, "unit": "s"}, ValueError),
        ({"name": "x", "value": 1.0, "unit": ""}, ValueError),
        ({"name": "x", "value": math.inf, "unit": "s"}, ValueError),
        ({"name": "x", "value": math.nan, "unit": "s"}, ValueError),
        ({"name": "x", "value": True, "unit": "s"}, TypeError),
        ({"name": "x", "value": "1", "unit": "s"}, TypeError),
    ],
)
def test_measurement_refuses_bad_fields(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        Measurement(**kwargs)  # type: ignore[arg-type]


# ---- rendering ----


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (0.000123, "0.000123"), (52.345, "52.3"), (99.96, "100"), (1234567.8, "1,234,568")],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


def test_markdown_table_columns_rows_and_escaping() -> None:
    rows = [
        Measurement("kafka produce", 312345.6, "msgs/s", "acks=all", "ingestion"),
        Measurement("odd | name", 1.5, "s", "line one\nline | two"),
    ]
    lines = render_table(rows).splitlines()
    assert lines[0] == "| benchmark | value | unit | detail |"
    assert lines[1].count("|") == 5
    assert lines[2] == "| kafka produce | 312,346 | msgs/s | acks=all; baseline for: ingestion |"
    assert lines[3] == "| odd \\| name | 1.5 | s | line one line \\| two |"
    assert len(lines) == 4


def test_markdown_table_of_nothing_is_a_header() -> None:
    assert render_table([]).splitlines() == [
        "| benchmark | value | unit | detail |",
        "|---|---:|---|---|",
    ]


# ---- JSON ----

measurements = st.builds(
    Measurement,
    name=st.text(min_size=1).filter(str.strip),
    value=st.floats(allow_nan=False, allow_infinity=False),
    unit=st.text(min_size=1).filter(str.strip),
    detail=st.text(),
    baseline_for=st.none() | st.text(),
)


@given(st.lists(measurements, max_size=20))
def test_json_round_trip(rows: list[Measurement]) -> None:
    meta = {"nproc": 2, "loadavg_start": [0.5, 1.0, 1.5]}
    assert from_json(to_json(rows, meta)) == (meta, rows)


def test_json_layout_is_tagged_and_plain() -> None:
    doc = json.loads(to_json([Measurement("a", 1.0, "s")], {"nproc": 2}))
    assert doc == {
        "format": JSON_FORMAT,
        "meta": {"nproc": 2},
        "measurements": [
            {"name": "a", "value": 1.0, "unit": "s", "detail": "", "baseline_for": None}
        ],
    }


def test_json_of_another_layout_is_refused() -> None:
    with pytest.raises(ValueError):
        from_json(json.dumps({"format": "other", "meta": {}, "measurements": []}))
