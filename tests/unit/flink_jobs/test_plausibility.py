"""Event-time plausibility: the rule (core.events) and the job's Java function that applies
it (PlausibleTime), compared on generated input. The job's use of it is exercised through
the real job (tests/integration/test_feature_job.py, implausible event times)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import EVENT_TIME_FLOOR_MS, plausible_event_time
from flink_jobs.config import JobConfig
from flink_jobs.sql import click_ts
from tests.unit.flink_jobs.jvm_check import JvmCheck

HOUR = 3_600_000
INGEST = 1_800_000_000_000


def test_the_bounds_are_inclusive() -> None:
    assert plausible_event_time(EVENT_TIME_FLOOR_MS, INGEST, ahead_ms=HOUR)
    assert not plausible_event_time(EVENT_TIME_FLOOR_MS - 1, INGEST, ahead_ms=HOUR)
    assert plausible_event_time(INGEST + HOUR, INGEST, ahead_ms=HOUR)
    assert not plausible_event_time(INGEST + HOUR + 1, INGEST, ahead_ms=HOUR)
    assert not plausible_event_time(2**63 - 1, INGEST, ahead_ms=HOUR)
    assert not plausible_event_time(-(2**63), INGEST, ahead_ms=HOUR)


INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
NEAR = st.integers(min_value=-3 * HOUR, max_value=3 * HOUR)


@pytest.fixture(scope="module")
def java_rule() -> Iterator[JvmCheck]:
    check = JvmCheck("--plausible")
    yield check
    check.close()


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(INT64, NEAR.map(lambda d: INGEST + d), st.just(EVENT_TIME_FLOOR_MS)),
    st.one_of(st.just(INGEST), st.just(-1), INT64),
    st.integers(min_value=1, max_value=30 * 86_400_000),
)
def test_the_jobs_java_rule_is_the_python_rule(
    java_rule: JvmCheck, ms: int, ingest: int, ahead: int
) -> None:
    expected = plausible_event_time(ms, ingest, ahead_ms=ahead)
    assert java_rule.ask(f"{ms} {ingest} {EVENT_TIME_FLOOR_MS} {ahead}") == (
        "1" if expected else "0"
    )


def test_the_rowtime_bounds_come_from_the_configuration() -> None:
    cfg = JobConfig(
        bootstrap="k:1",
        redis_url="redis://r:1",
        lake_bucket="b",
        event_time_floor_ms=1_000_000,
        max_event_time_ahead_ms=90 * 60_000,
    )
    sql = click_ts(cfg)
    assert "CAST(1000000 AS BIGINT), CAST(5400000 AS BIGINT)" in sql
    assert sql.count("click_time(") == 1  # the value is parsed once
