"""The demo generators: determinism, session shape, disorder, malformed records, CRM conflicts
and export formats. Pure: no services."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections import defaultdict
from datetime import datetime
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.demo.config import MAX_EVENT_GAP_MS, MIN_EVENT_GAP_MS, DemoConfig
from connectors.demo.entities import NEXT_STATUSES
from connectors.demo.generator import (
    CLICK_MALFORMED_REASONS,
    CRM_MALFORMED_REASONS,
    MAX_OUT_OF_ORDER_MS,
    ClickRecord,
    CrmRow,
    clickstream,
    crm_object_key,
    crm_rows,
    customers,
    order_updates,
    orders,
    render_crm_export,
)
from core.domain import CLICK_EVENT_TYPES, ORDER_STATUSES, SEGMENTS, TIERS

CFG = DemoConfig()
HOUR_MS = 3_600_000
EXPORT_MS = CFG.start_ms + 28 * HOUR_MS  # 2026-01-02T04:00:00Z
EVENT_KEYS = {"event_id", "user_id", "event_type", "page", "event_time", "properties"}


def parse_event(value: bytes) -> dict[str, Any] | None:
    """The test's own oracle of a valid clickstream value (None: not a valid event)."""
    try:
        event = json.loads(value)
    except ValueError:
        return None
    ok = (
        isinstance(event, dict)
        and set(event) == EVENT_KEYS
        and isinstance(event["event_id"], str)
        and type(event["user_id"]) is int
        and event["event_type"] in CLICK_EVENT_TYPES
        and isinstance(event["page"], str)
        and type(event["event_time"]) is int
        and isinstance(event["properties"], dict)
    )
    return event if ok else None


def events_by_user(records: list[ClickRecord]) -> dict[int, list[dict[str, Any]]]:
    """Valid events per user, in EMIT order."""
    users: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.valid:
            event = parse_event(record.value)
            assert event is not None
            users[event["user_id"]].append(event)
    return users


def assert_gap_rule(cfg: DemoConfig, records: list[ClickRecord]) -> int:
    """Every gap of a user's sorted events is inside-session or MORE than the session gap.
    Returns the number of sessions."""
    sessions = 0
    for events in events_by_user(records).values():
        times = sorted(e["event_time"] for e in events)
        sessions += 1
        for earlier, later in itertools.pairwise(times):
            gap = later - earlier
            if gap > cfg.session_gap_ms:
                sessions += 1
            else:
                assert MIN_EVENT_GAP_MS <= gap <= MAX_EVENT_GAP_MS, gap
    return sessions


@pytest.fixture(scope="module")
def records() -> list[ClickRecord]:
    return clickstream(CFG)


# ---- determinism ----


def test_same_seed_same_bytes_other_seed_other_bytes(records: list[ClickRecord]) -> None:
    assert clickstream(DemoConfig()) == records
    other = DemoConfig(seed=7)
    assert [r.value for r in clickstream(other)] != [r.value for r in records]
    people = customers(CFG)
    rows = crm_rows(CFG, people, export_ms=EXPORT_MS)
    other_rows = crm_rows(other, customers(other), export_ms=EXPORT_MS)
    for fmt in ("csv", "jsonl", "parquet"):
        again = render_crm_export(crm_rows(CFG, customers(CFG), export_ms=EXPORT_MS), fmt)
        assert render_crm_export(rows, fmt) == again
        assert render_crm_export(other_rows, fmt) != again
    assert orders(CFG, people) == orders(DemoConfig(), customers(DemoConfig()))


# ---- clickstream ----


def test_sessions_obey_the_gap_rule_and_look_like_shopping(records: list[ClickRecord]) -> None:
    sessions = assert_gap_rule(CFG, records)
    users = events_by_user(records)
    assert len(users) == CFG.click_users
    assert 2.5 <= sessions / len(users) <= 3.5  # mean sessions_per_user = 3
    kinds = [e["event_type"] for events in users.values() for e in events]
    assert kinds.count("page_view") + kinds.count("search") > 0.7 * len(kinds)
    assert kinds.count("purchase") > 0
    for events in users.values():
        ordered = sorted(events, key=lambda e: e["event_time"])
        for before, event in itertools.pairwise(ordered):
            if event["event_type"] == "add_to_cart":
                product = event["properties"]["product_id"]
                assert before["page"] == event["page"] == f"/product/{product}"
            if event["event_type"] == "purchase":
                assert before["page"] == "/checkout"


def test_out_of_order_is_local_and_late_events_exist(records: list[ClickRecord]) -> None:
    out_of_order = 0
    for events in events_by_user(records).values():
        newest = 0
        for event in events:
            if 0 < newest - event["event_time"] <= MAX_OUT_OF_ORDER_MS:
                out_of_order += 1
            newest = max(newest, event["event_time"])
    assert out_of_order > 0
    lags, newest = [], 0
    for record in records:
        if record.valid:
            t = json.loads(record.value)["event_time"]
            lags.append(newest - t)
            newest = max(newest, t)
    assert any(lag > HOUR_MS for lag in lags)  # arrived after events > 1 h newer
    beyond_bound = sum(1 for lag in lags if lag > MAX_OUT_OF_ORDER_MS)
    assert beyond_bound <= 2 * CFG.late_fraction * len(lags)  # only the late ones


def test_malformed_records_are_few_explained_and_invalid(records: list[ClickRecord]) -> None:
    bad = [r for r in records if not r.valid]
    assert abs(len(bad) / len(records) - CFG.malformed_fraction) < 0.002
    assert {r.reason for r in bad} == set(CLICK_MALFORMED_REASONS)
    for record in bad:
        assert parse_event(record.value) is None, record
    for record in records:
        if record.valid:
            event = parse_event(record.value)
            assert event is not None and record.reason is None
            assert record.key == str(event["user_id"]).encode()
    assert records[0].value.startswith(b'{"event_id":"')  # compact JSON, fixed key order


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    users=st.integers(1, 4),
    sessions=st.floats(1, 4),
    events=st.floats(1, 10),
    gap=st.integers(MAX_EVENT_GAP_MS + 1, 4 * HOUR_MS),
    ooo=st.floats(0, 1),
)
def test_property_any_seed_gap_rule_and_determinism(
    seed: int, users: int, sessions: float, events: float, gap: int, ooo: float
) -> None:
    cfg = DemoConfig(
        seed=seed,
        customers=users,
        click_users=users,
        sessions_per_user=sessions,
        events_per_session=events,
        session_gap_ms=gap,
        out_of_order_fraction=ooo,
        malformed_fraction=0.2,
    )
    first = clickstream(cfg)
    assert clickstream(cfg) == first
    assert_gap_rule(cfg, first)
    assert all(r.valid == (r.reason is None) for r in first)


# ---- CRM ----


def _conflict_kinds(cfg: DemoConfig) -> set[str]:
    people = {c.id: c for c in customers(cfg)}
    kinds = set()
    for row in crm_rows(cfg, list(people.values()), export_ms=EXPORT_MS):
        if not row.valid:
            continue
        pg = people[int(row.customer_id)]
        if (row.email, row.segment, row.tier) == (pg.email, pg.segment, pg.tier):
            continue
        at = row.updated_at_ms
        assert at is None or isinstance(at, int)
        if at is None:
            kinds.add("none")
        elif at == pg.updated_at_ms:
            kinds.add("equal")
        else:
            kinds.add("before" if at < pg.updated_at_ms else "after")
    return kinds


def test_crm_conflicts_before_after_and_equal() -> None:
    assert _conflict_kinds(CFG) >= {"before", "after", "equal"}


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_property_equal_timestamp_conflicts_for_50_customers(seed: int) -> None:
    cfg = DemoConfig(seed=seed, customers=50, click_users=50)
    assert "equal" in _conflict_kinds(cfg)


def _check_round_trip(rows: list[CrmRow], parsed: list[dict[str, Any]]) -> None:
    assert len(parsed) == len(rows)
    for row, got in zip(rows, parsed, strict=True):
        assert list(got) == ["customer_id", "email", "segment", "tier", "updated_at"]
        if not row.valid:
            assert row.reason in CRM_MALFORMED_REASONS
            continue
        assert int(got["customer_id"]) == row.customer_id
        assert (got["email"], got["segment"], got["tier"]) == (row.email, row.segment, row.tier)
        assert got["segment"] in SEGMENTS and got["tier"] in TIERS
        if row.updated_at_ms is None:
            assert got["updated_at"] in ("", None)
        else:
            text = got["updated_at"]
            assert text.endswith("Z")
            parsed_ms = datetime.fromisoformat(text).timestamp() * 1000
            assert round(parsed_ms) == row.updated_at_ms


def test_every_format_round_trips_and_keeps_malformed_rows() -> None:
    rows = crm_rows(CFG, customers(CFG), export_ms=EXPORT_MS)
    assert {r.reason for r in rows if not r.valid} == set(CRM_MALFORMED_REASONS)
    csv_text = render_crm_export(rows, "csv").decode()
    assert csv_text.startswith("customer_id,email,segment,tier,updated_at\n")
    _check_round_trip(rows, list(csv.DictReader(io.StringIO(csv_text))))
    jsonl = render_crm_export(rows, "jsonl").decode().splitlines()
    _check_round_trip(rows, [json.loads(line) for line in jsonl])
    table = pq.read_table(io.BytesIO(render_crm_export(rows, "parquet")))
    assert all(str(field.type) == "string" for field in table.schema)
    _check_round_trip(rows, table.to_pylist())
    with pytest.raises(ValueError, match="unknown CRM export format"):
        render_crm_export(rows, "xml")  # type: ignore[arg-type]


def test_crm_object_key() -> None:
    key = crm_object_key(CFG.start_ms + 4 * HOUR_MS + 999, "csv")
    assert key == "crm/exports/dt=2026-01-01/customers-20260101T040000Z-0000.csv"
    assert crm_object_key(EXPORT_MS, "parquet", part=3).endswith("20260102T040000Z-0003.parquet")


# ---- customers, orders, updates ----


def test_customers_and_orders_invariants() -> None:
    people = customers(CFG)
    assert [c.id for c in people] == list(range(1, CFG.customers + 1))
    assert len({c.email for c in people}) == len(people)
    by_id = {c.id: c for c in people}
    for c in people:
        assert CFG.start_ms <= c.created_at_ms <= c.updated_at_ms < CFG.start_ms + 24 * HOUR_MS
    bought = orders(CFG, people)
    assert [o.id for o in bought] == list(range(1, len(bought) + 1))
    assert 2.5 <= len(bought) / len(people) <= 3.5
    for o in bought:
        assert o.created_at_ms > by_id[o.customer_id].created_at_ms
        assert o.updated_at_ms >= o.created_at_ms and o.status in ORDER_STATUSES
        assert 0 < o.amount_cents < 5_000_00


def test_order_updates_follow_transitions_and_are_prefix_stable() -> None:
    bought = orders(CFG, customers(CFG))
    start = CFG.start_ms + 30 * 24 * HOUR_MS
    changes = order_updates(CFG, bought, 300, start)
    assert changes[:50] == order_updates(CFG, bought, 50, start)
    state = {o.id: o.status for o in bought}
    times = []
    for kind, row in changes:
        assert row["id"] in state  # never touches a deleted order
        if kind == "update":
            assert row["status"] in NEXT_STATUSES[state[row["id"]]]
            state[row["id"]] = row["status"]
            times.append(row["updated_at_ms"])
        else:
            del state[row["id"]]
    assert times == sorted(times) and len(set(times)) == len(times) and times[0] >= start
    assert 0 < sum(kind == "delete" for kind, _ in changes) < 40


# ---- config ----


def test_config_rejects_unknown_fields_and_inconsistent_values() -> None:
    with pytest.raises(ValidationError):
        DemoConfig(colour="blue")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        DemoConfig(session_gap_ms=MAX_EVENT_GAP_MS)  # a session could end exactly at the gap
    with pytest.raises(ValidationError, match="click_users"):
        DemoConfig(customers=10, click_users=11)
    with pytest.raises(ValidationError):
        CFG.model_copy(update={"seed": 1}).__setattr__("seed", 2)
