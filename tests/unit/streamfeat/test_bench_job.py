"""Pure helpers of the feature-job benchmark (streamfeat.bench.feature_job_*): no stack."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.features import CUSTOMER_PROFILE, SESSION_GAP_MS, USER_ACTIVITY, USER_LAGS
from flink_jobs.logic.events import Rejection
from flink_jobs.logic.records import parse_click, parse_crm
from streamfeat.bench import feature_job_flink
from streamfeat.bench.feature_job_data import (
    OFFLINE_SINK,
    ONLINE_SINK,
    PROFILE_BASE,
    SCRATCH_IDS,
    USER_BASE,
    count_sessions,
    crm_record,
    flush_records,
    in_scratch,
    padded,
    scratch_clicks,
    spread,
    vertex_role,
)
from streamfeat.stack.errors import StackError

GAP = 1_000


def test_a_gap_of_exactly_the_session_gap_starts_a_new_session() -> None:
    assert count_sessions([], GAP) == 0
    assert count_sessions([5], GAP) == 1
    assert count_sessions([0, GAP - 1], GAP) == 1
    assert count_sessions([GAP, 0], GAP) == 2  # order does not matter
    assert count_sessions([0, 10, 10 + GAP, 10 + 2 * GAP + 1], GAP) == 3


def _click(user: Any, t: Any, event_type: str = "page_view") -> tuple[bytes, bytes]:
    value = {"event_id": "e", "user_id": user, "event_type": event_type, "page": "/"}
    value |= {"event_time": t, "properties": {}}
    return str(user).encode(), json.dumps(value).encode()


def test_scratch_clicks_drops_malformed_and_possibly_late_records() -> None:
    raw = [
        _click(1, 100_000),
        (b"2", b'{"user_id": 2'),  # broken JSON
        _click(2, 101_000),
        _click(3, "102000"),  # event_time of the wrong type
        _click(1, 95_000),  # within the bound: kept
        _click(2, 91_000),  # exactly the bound behind the newest: could be late, dropped
        _click(2, 101_000 + GAP, "purchase"),
        _click(4, 50, "wishlist_add"),  # unknown event type
    ]
    got = scratch_clicks(raw, user_base=USER_BASE, bound_ms=10_000, gap_ms=GAP)
    assert (got.events, got.malformed, got.late) == (4, 3, 1)
    assert got.last_time == {USER_BASE + 1: 100_000, USER_BASE + 2: 101_000 + GAP}
    assert got.sessions == 2 + 2  # both users' two events are at least GAP apart
    assert got.minute_tiles == 1 + 1  # 95 s and 100 s; 101 s and 102 s: one minute each
    assert got.expected_rows() == len(got.last_time) + got.sessions + got.minute_tiles
    assert got.max_time == 101_000 + GAP
    for key, value in got.records:
        event = parse_click(value, 0, 0)
        assert not isinstance(event, Rejection)
        assert key == str(event.user_id).encode() and event.user_id in SCRATCH_IDS


def test_spread_samples_evenly() -> None:
    assert spread(list(range(10)), 20) == list(range(10))
    assert spread(list(range(1000)), 200) == list(range(0, 1000, 5))
    assert spread([], 5) == []


def test_flush_events_pass_every_session_window_on_every_partition() -> None:
    flush = flush_records(12, after_ms=1_000_000, gap_ms=SESSION_GAP_MS, bound_ms=10_000)
    assert [p for p, _, _ in flush] == list(range(12))
    for _, key, value in flush:
        event = parse_click(value, 0, 0)
        assert not isinstance(event, Rejection)
        assert key == str(USER_BASE).encode() and event.user_id == USER_BASE
        assert event.event_time - 10_000 > 1_000_000 + SESSION_GAP_MS


def test_crm_records_are_valid_and_unique() -> None:
    key, value, email = crm_record(PROFILE_BASE + 7, 7, now_ms=1_780_000_000_000, token="t")
    _, _, other = crm_record(PROFILE_BASE + 8, 8, now_ms=1_780_000_000_000, token="t")
    updates = parse_crm(value)
    assert not isinstance(updates, Rejection)
    assert key == str(PROFILE_BASE + 7).encode() and email != other
    assert {u.attribute: u.value for u in updates}["email"] == email
    assert all(u.version.event_time == 1_780_000_000_000 for u in updates)


@pytest.mark.parametrize(
    ("key", "view", "expected"),
    [
        (b"sf:ua:{c:50000001}", USER_ACTIVITY, True),
        ("sf:cp:{c:51000123}", CUSTOMER_PROFILE, True),
        (b"sf:ua:{c:5000}", USER_ACTIVITY, False),  # a real customer: never touched
        (b"sf:ua:{c:52000000}", USER_ACTIVITY, False),  # past the scratch range
        (b"sf:ua:{c:50000001}", USER_LAGS, False),  # another view's key
        (b"sf:ua:{c:5x}", USER_ACTIVITY, False),
    ],
)
def test_only_scratch_entities_are_recognised(key: bytes | str, view: Any, expected: bool) -> None:
    assert in_scratch(key, view) is expected


@pytest.mark.parametrize(
    ("description", "inputs", "role"),
    [
        (
            "[37]:Deduplicate(keep=[FirstRow], key=[order_id], order=[PROCTIME]) -> "
            "TableSourceScan(table=[[*anonymous_datastream_source$5*]])",
            [],
            "orders: first copy per order id (Deduplicate)",
        ),
        (
            "[20]:WindowAggregate(groupBy=[user_id], window=[SESSION(time_col=[ts]",
            [],
            "session windows",
        ),
        ("online_store[33]: Writer", [], ONLINE_SINK),
        ("online_writes[33]: Writer", [], ONLINE_SINK),
        (
            "StreamingFileWriter<br/>+- PartitionCommitter",
            ["[7]:GlobalWindowAggregate("],
            OFFLINE_SINK,
        ),
        (
            "StreamingFileWriter<br/>+- PartitionCommitter",
            ["[48]:TableSourceScan(...) +- PythonCorrelate"],
            "offline writer (profile)",
        ),
        (
            "StreamingFileWriter<br/>+- end: Writer",
            ["TableSourceScan(...) +- PythonCorrelate"],
            "DLQ writer (profile)",
        ),
        ("StreamingFileWriter<br/>+- end: Writer", ["TableSourceScan"], "DLQ writer"),
        (
            "[45]:GlobalGroupAggregate(groupBy=[entity_id], select=[entity_id, "
            "last_two(last_two$0) AS l]) +- Calc(select=[||(_UTF-16LE'sf:ul:{u:'",
            [],
            "lags (LAST_TWO)",
        ),
        (
            "[38]:GlobalGroupAggregate(groupBy=[entity_id, tile], select=[entity_id, tile",
            [],
            "tiles (both stores)",
        ),
        ("StreamingFileWriter", [], "offline writer (feature rows)"),  # parallelism > 1
        ("StreamingFileWriter -> end: Writer", [], "DLQ writer"),
        (
            "[1]:TableSourceScan(table=[[default_catalog, default_database, clicks_raw, m",
            [],
            "source clicks_raw",
        ),
        (
            "[48]:TableSourceScan(table=[[default_catalog, default_database, crm_raw]]) "
            "+- [50]:PythonCorrelate(invocation=[ingest_profile(",
            [],
            "source crm_raw + ingest_profile (Python)",
        ),
    ],
)
def test_vertex_roles(description: str, inputs: list[str], role: str) -> None:
    assert vertex_role(description, inputs) == role


def test_padding_a_view_scoped_hash_copies_values_only() -> None:
    stored = {"c1h": "3", "a1h": "0", "1h@": "v", "_t": "1"}
    wide = padded(stored, USER_ACTIVITY, 12)
    assert wide is not None
    added = {k: v for k, v in wide.items() if k not in stored}
    assert len(added) == 12 - len(USER_ACTIVITY.features)
    assert all(len(k) == 3 and "@" not in k for k in added)
    assert sorted(added.values()) == ["0", "3", "3"]  # cycled over the present features


def test_padding_an_attribute_scoped_hash_copies_each_version_field_too() -> None:
    stored = {"e": "a@b", "e@": "v1", "s": "smb", "s@": "v2", "t": "gold", "t@": "v3"}
    wide = padded(stored, CUSTOMER_PROFILE, 20)
    assert wide is not None and len(wide) == 40
    assert {k: v for k, v in wide.items() if k in stored} == stored
    for name in (k for k in wide if not k.endswith("@")):
        assert len(name) == 1 and f"{name}@" in wide


def test_nothing_to_pad() -> None:
    assert padded({"_v": "x"}, USER_LAGS, 20) is None  # none of the view's features
    assert padded({"lt": "click"}, USER_LAGS, 3) is None  # already that wide


class _FakeClient:
    def __init__(self, used: int, top: int, slots: int = 1) -> None:
        self.answers: dict[str, Any] = {
            "/overview": {"slots-available": slots},
            "/taskmanagers": {"taskmanagers": [{"id": "tm"}]},
        }
        metrics = [
            {"id": "Status.JVM.Memory.Metaspace.Used", "value": str(used)},
            {"id": "Status.JVM.Memory.Metaspace.Max", "value": str(top)},
        ]
        self.metrics = metrics

    def _get(self, path: str) -> Any:
        return self.metrics if path.startswith("/taskmanagers/tm/") else self.answers[path]


def test_deploying_is_refused_without_metaspace_room_or_a_slot() -> None:
    mib = feature_job_flink.MIB
    ok = _FakeClient(100 * mib, 256 * mib)
    assert feature_job_flink.check_room(ok) == "TaskManager metaspace 100 of 256 MiB"  # type: ignore[arg-type]
    with pytest.raises(StackError, match="metaspace 200 of 256 MiB"):
        feature_job_flink.check_room(_FakeClient(200 * mib, 256 * mib))  # type: ignore[arg-type]
    with pytest.raises(StackError, match="no free task slot"):
        feature_job_flink.check_room(_FakeClient(0, 256 * mib, slots=0))  # type: ignore[arg-type]
