"""Pure parts of the state benchmark (streamfeat.bench.feature_job_state) and the job's
state-backend options: no stack."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flink_jobs.config import JobConfig
from flink_jobs.logic.events import ClickEvent
from flink_jobs.logic.records import parse_click
from streamfeat.bench.feature_job_data import SCRATCH_IDS
from streamfeat.bench.feature_job_state import DAY_MS, Population, click_stream

END = 1_800_000_000_000


def _cfg(**kw: object) -> JobConfig:
    return JobConfig.model_validate(
        {"bootstrap": "b:9092", "redis_url": "redis://r", "lake_bucket": "lake", **kw}
    )


def test_every_generated_click_passes_the_strict_gate_in_event_time_order() -> None:
    out = list(click_stream(500, 40, end_ms=END, seed=3))
    parsed = [parse_click(value, 0, i) for i, (_, value, _) in enumerate(out)]
    assert all(isinstance(p, ClickEvent) for p in parsed)
    times = [p.event_time for p in parsed if isinstance(p, ClickEvent)]
    assert times == sorted(times) and times[0] >= END - DAY_MS and times[-1] < END
    users = {user for _, _, user in out}
    assert users <= set(SCRATCH_IDS) and len(users) <= 40
    assert all(key == b"%d" % user for key, _, user in out)  # keyed by user: one partition each


def test_the_stream_is_deterministic_per_seed() -> None:
    a = list(click_stream(50, 5, end_ms=END, seed=1))
    assert a == list(click_stream(50, 5, end_ms=END, seed=1))
    assert a != list(click_stream(50, 5, end_ms=END, seed=2))


@given(st.lists(st.integers(0, 30), min_size=1, max_size=200), st.integers(0, 250))
def test_users_in_counts_the_distinct_users_of_the_first_n_events(users: list[int], n: int) -> None:
    first: dict[int, int] = {}
    for i, u in enumerate(users):
        first.setdefault(u, i)
    population = Population(len(users), sorted(first.values()))
    assert population.users_in(n) == len(set(users[:n]))


def test_rocksdb_is_the_default_with_incremental_checkpoints_and_bloom_filters() -> None:
    assert _cfg(state_backend="hashmap").environment_options() == {"state.backend.type": "hashmap"}
    assert _cfg().environment_options() == {
        "state.backend.type": "rocksdb",
        "execution.checkpointing.incremental": "true",
        "state.backend.rocksdb.use-bloom-filter": "true",
        "state.backend.rocksdb.memory.partitioned-index-filters": "true",
    }
    with pytest.raises(ValueError, match="state_backend"):
        _cfg(state_backend="forst")
