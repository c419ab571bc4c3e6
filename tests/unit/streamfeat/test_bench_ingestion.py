"""streamfeat.bench.ingestion's pure helpers and the runner's suite selection.

Nothing here touches the stack: the suite tests swap every benchmark for a stub.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.crm.bridge import record_value
from connectors.crm.rows import check_rows, iter_rows
from core.domain import CUSTOMER_SUITE
from core.quality import GreatExpectations, repository_suite
from core.settings import StackSettings
from streamfeat.bench import api, baselines, feature_job, ingestion, runner
from streamfeat.bench.ingestion import CDC_IDS, cdc_event, crm_csv, cycled, lag_rows
from streamfeat.bench.stats import Measurement

INGESTION = ["clickstream_producer", "crm_bridge", "debezium_lag", "kafka_round_trip"]
BASELINES = ["redis_round_trip", "redis_hgetall", "kafka_produce", "kafka_consume"]


@given(st.lists(st.integers(), min_size=1, max_size=20), st.integers(0, 100))
def test_cycled_repeats_in_order(items: list[int], n: int) -> None:
    got = cycled(items, n)
    assert len(got) == n
    assert got == [items[i % len(items)] for i in range(n)]


def test_cycled_refuses_nothing() -> None:
    with pytest.raises(ValueError):
        cycled([], 3)


def test_crm_csv_rows_are_all_valid_so_nothing_reaches_the_dlq() -> None:
    body = crm_csv(2_000, updated_ms=1_780_000_000_000)
    rows = list(iter_rows("csv", lines=iter(body.splitlines())))
    assert [r.row for r in rows] == list(range(1, 2_001))
    checked = check_rows(rows, GreatExpectations(repository_suite(CUSTOMER_SUITE)))
    assert all(c.row is not None for c in checked), [c for c in checked if c.row is None][:3]
    valid = [c.row for c in checked if c.row is not None]
    assert [r.customer_id for r in valid] == list(range(1, 2_001))
    assert sum(r.updated_at_ms is None for r in valid) == 400  # every 5th row
    assert all(r.updated_at_ms is None or r.updated_at_ms <= 1_780_000_000_000 for r in valid)
    value = record_value(valid[0], export_ts=1, object_key="_bench/k.csv", number=1)
    assert json.loads(value)["source"] == "s3_crm"


def test_crm_csv_of_zero_rows_is_just_the_header() -> None:
    assert crm_csv(0, updated_ms=0) == b"customer_id,email,segment,tier,updated_at\n"


def _event(op: str, row_id: int, tx: int = 745) -> bytes:
    row = {"id": row_id, "tier": "gold"}
    return json.dumps(
        {
            "before": row if op in "ud" else None,
            "after": None if op == "d" else row,
            "source": {"txId": tx, "ts_us": 1},
            "op": op,
        }
    ).encode()


@pytest.mark.parametrize("op", ["c", "u", "d"])
def test_cdc_event_of_a_scratch_row(op: str) -> None:
    assert cdc_event(_event(op, CDC_IDS[3], tx=991), CDC_IDS) == (op, 991)


def test_cdc_event_ignores_other_rows_and_tombstones() -> None:
    assert cdc_event(_event("u", 17), CDC_IDS) is None
    assert cdc_event(None, CDC_IDS) is None
    assert cdc_event(b"", CDC_IDS) is None


def test_lag_rows_are_p50_and_p99_with_the_baseline_named() -> None:
    rows = lag_rows("x lag", [float(v) for v in range(1, 101)], "d", "y")
    assert [(m.name, m.value, m.unit, m.baseline_for) for m in rows] == [
        ("x lag p50", 50.0, "ms", "y"),
        ("x lag p99", 99.0, "ms", "y"),
    ]
    assert rows[0].detail.startswith("d; n=100, min=1.0")


def _stub(name: str) -> Callable[..., list[Measurement]]:
    def call(*_args: object, **_kwargs: object) -> list[Measurement]:
        return [Measurement(name, 1.0, "x")]

    return call


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*BASELINES, "flink_sql_blackhole"]:
        monkeypatch.setattr(baselines, name, _stub(name))
    for name in INGESTION:
        monkeypatch.setattr(ingestion, name, _stub(name))
    monkeypatch.setattr(feature_job, "feature_job_bench", _stub("feature_job_bench"))
    monkeypatch.setattr(api, "api_latency", _stub("api_latency"))


def _names(suite: str, tmp_path: Path) -> list[str]:
    settings = StackSettings(home=tmp_path)  # type: ignore[call-arg]
    rows = runner.run_suite(settings, suite, quick=True, progress=lambda _line: None)
    assert rows[0].name == runner.HOST_AT_START
    assert rows[-1].name == runner.HOST_AT_END
    return [m.name for m in rows[1:-1]]


@pytest.mark.usefixtures("stubbed")
def test_suites_run_their_steps_in_order(tmp_path: Path) -> None:
    assert _names("baselines", tmp_path) == [*BASELINES, "flink_sql_blackhole"]
    # alone, the bridge gets its own Kafka produce baseline; in `all` it shares the baselines'
    assert _names("ingestion", tmp_path) == [*INGESTION[:2], "kafka_produce", *INGESTION[2:]]
    assert _names("job", tmp_path) == ["feature_job_bench"]
    assert _names("api", tmp_path) == ["api_latency"]
    assert _names("all", tmp_path) == [
        *BASELINES,
        "flink_sql_blackhole",
        *INGESTION,
        "feature_job_bench",
        "api_latency",
    ]


def test_an_unknown_suite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown suite"):
        runner.run_suite(StackSettings(home=tmp_path), "everything")  # type: ignore[call-arg]
