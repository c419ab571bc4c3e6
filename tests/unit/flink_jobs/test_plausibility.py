"""Event-time plausibility: the rule (core.events) and the interval literal the job's SQL
bound is written with. The SQL itself is exercised through the real job
(tests/integration/test_feature_job.py, implausible event times)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.events import EVENT_TIME_FLOOR_MS, plausible_event_time
from flink_jobs.config import JobConfig
from flink_jobs.sql import click_ts, day_to_second

HOUR = 3_600_000
INGEST = 1_800_000_000_000


def test_the_bounds_are_inclusive() -> None:
    assert plausible_event_time(EVENT_TIME_FLOOR_MS, INGEST, ahead_ms=HOUR)
    assert not plausible_event_time(EVENT_TIME_FLOOR_MS - 1, INGEST, ahead_ms=HOUR)
    assert plausible_event_time(INGEST + HOUR, INGEST, ahead_ms=HOUR)
    assert not plausible_event_time(INGEST + HOUR + 1, INGEST, ahead_ms=HOUR)
    assert not plausible_event_time(2**63 - 1, INGEST, ahead_ms=HOUR)
    assert not plausible_event_time(-(2**63), INGEST, ahead_ms=HOUR)


@given(st.integers(min_value=0, max_value=100 * 86_400_000 - 1))
def test_day_to_second_spells_the_milliseconds(ms: int) -> None:
    literal = day_to_second(ms)
    m = re.fullmatch(r"INTERVAL '(\d+) (\d\d):(\d\d):(\d\d)\.(\d{3})' DAY TO SECOND\(3\)", literal)
    assert m, literal
    d, h, mi, s, f = (int(x) for x in m.groups())
    assert h < 24 and mi < 60 and s < 60
    assert (((d * 24 + h) * 60 + mi) * 60 + s) * 1000 + f == ms


def test_day_to_second_refuses_what_the_literal_cannot_hold() -> None:
    for ms in (-1, 100 * 86_400_000):
        with pytest.raises(ValueError, match="100 days"):
            day_to_second(ms)


def test_the_rowtime_bounds_come_from_the_configuration() -> None:
    cfg = JobConfig(
        bootstrap="k:1",
        redis_url="redis://r:1",
        lake_bucket="b",
        event_time_floor_ms=1_000_000,
        max_event_time_ahead_ms=90 * 60_000,
    )
    sql = click_ts(cfg)
    assert "INTERVAL '0 01:30:00.001' DAY TO SECOND(3)" in sql  # more than 90 min ahead
    assert "TO_TIMESTAMP_LTZ(999999, 3)" in sql  # below the floor
    assert sql.count("click_time(") == 1  # the value is parsed once
