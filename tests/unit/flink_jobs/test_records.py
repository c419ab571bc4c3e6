"""The data-quality gate: typed events or a stable rejection reason, never an exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.crm.bridge import record_value
from connectors.crm.rows import CrmRow
from connectors.demo.clicks import clickstream
from connectors.demo.config import DemoConfig
from core.domain import CUSTOMER_ATTRIBUTES
from core.events import SOURCE_PRIORITY, Source
from core.version import Version, click_version, crm_version
from flink_jobs.logic.records import (
    REASONS,
    AttributeUpdate,
    ClickEvent,
    OrderEvent,
    Rejection,
    parse_cdc_customer,
    parse_cdc_order,
    parse_click,
    parse_crm,
)
from tests.unit.flink_jobs.helpers import T0, click_value, customer_row, envelope, order_row

CDC = SOURCE_PRIORITY[Source.PG_CDC]


def reason(result: object) -> str:
    assert isinstance(result, Rejection), result
    assert result.reason in REASONS
    return result.reason


# --- clickstream --------------------------------------------------------------------------


def test_valid_click() -> None:
    event = parse_click(click_value(), 7, 42)
    assert event == ClickEvent(
        "0b6f0c3e-0000-4000-8000-000000000001",
        17,
        "add_to_cart",
        "/product/123",
        T0 + 5_123,
        click_version(T0 + 5_123, 7, 42),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "empty_value"),
        (b"", "invalid_json"),
        (click_value()[:25], "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (click_value(event_id=...), "missing_field"),
        (click_value(event_id=""), "bad_event_id"),
        (click_value(event_id="e" * 129), "bad_event_id"),
        (click_value(page="/" * 2049), "bad_page"),
        (click_value(event_id=12), "bad_type"),
        (click_value(user_id=...), "missing_field"),
        (click_value(user_id="17"), "bad_user_id"),
        (click_value(user_id=True), "bad_user_id"),
        (click_value(user_id=0), "bad_user_id"),
        (click_value(user_id=-3), "bad_user_id"),
        (click_value(user_id=2**63), "bad_user_id"),
        (click_value(user_id=17.0), "bad_user_id"),
        (click_value(user_id=None), "bad_user_id"),
        (click_value(event_type="wishlist_add"), "unknown_event_type"),
        (click_value(event_type="PageView"), "unknown_event_type"),
        (click_value(event_type=None), "bad_type"),
        (click_value(page=None), "bad_type"),
        (click_value(event_time=...), "missing_field"),
        (click_value(event_time="2026-01-01T00:00:05.123Z"), "bad_event_time"),
        (click_value(event_time=str(T0)), "bad_event_time"),
        (click_value(event_time=None), "bad_event_time"),
        (click_value(event_time=True), "bad_event_time"),
        (click_value(event_time=0), "bad_event_time"),
        (click_value(event_time=-1), "bad_event_time"),
        (click_value(event_time=float(T0)), "bad_event_time"),
        (click_value(properties=[1]), "bad_type"),
    ],
)
def test_malformed_click(value: bytes | None, expected: str) -> None:
    assert reason(parse_click(value, 0, 0)) == expected


def test_properties_are_optional() -> None:
    assert isinstance(parse_click(click_value(properties=...), 0, 0), ClickEvent)
    assert isinstance(parse_click(click_value(properties=None), 0, 0), ClickEvent)


GENERATOR_REASONS = {
    "invalid_json": "invalid_json",
    "missing_user_id": "missing_field",
    "bad_event_time": "bad_event_time",
    "unknown_event_type": "unknown_event_type",
}


def test_the_demo_generator_passes_and_fails_as_labelled() -> None:
    records = clickstream(DemoConfig(click_users=15, malformed_fraction=0.2))
    assert {r.reason for r in records if not r.valid} == set(GENERATOR_REASONS)
    for offset, r in enumerate(records):
        parsed = parse_click(r.value, 3, offset)
        if r.valid:
            assert isinstance(parsed, ClickEvent)
            assert str(parsed.user_id).encode() == r.key
        else:
            assert r.reason is not None
            assert reason(parsed) == GENERATOR_REASONS[r.reason]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["event_id", "user_id", "event_type", "page", "event_time", "properties", "op", "source",
     "before", "after", "id", "email", "segment", "tier", "customer_id", "source_seq"]
)  # fmt: skip


@given(st.binary(max_size=64))
def test_no_bytes_make_a_parser_raise(raw: bytes) -> None:
    for result in (parse_click(raw, 0, 0), parse_cdc_customer(raw, raw), parse_cdc_order(raw)):
        assert isinstance(result, Rejection)
    assert isinstance(parse_crm(raw), Rejection)


@settings(max_examples=60)
@given(st.dictionaries(field_names, json_values, max_size=8), st.data())
def test_no_json_object_makes_a_parser_raise(obj: dict[str, Any], data: st.DataObject) -> None:
    raw = json.dumps(obj).encode()
    parse_click(raw, 0, 0)
    parse_crm(raw)
    source = data.draw(st.dictionaries(st.sampled_from(["ts_ms", "lsn", "sequence"]), json_values))
    for op in ("c", "u", "d", "r"):
        env = json.dumps({"op": op, "source": source, "before": obj, "after": obj}).encode()
        parse_cdc_customer(data.draw(st.none() | st.binary(max_size=12)), env)
        parse_cdc_order(env)


# --- Debezium customers -------------------------------------------------------------------


def test_debezium_update_gives_one_update_per_attribute() -> None:
    value = envelope(
        "customers",
        "u",
        before=customer_row(tier="silver"),
        after=customer_row(tier="gold"),
    )
    updates = parse_cdc_customer(b'{"id":17}', value)
    version = Version(T0 + 5_123, CDC, (24023064, 24023128))
    assert updates == [
        AttributeUpdate(17, "email", "a@example.com", version),
        AttributeUpdate(17, "segment", "smb", version),
        AttributeUpdate(17, "tier", "gold", version),
    ]


def test_first_transaction_without_commit_lsn_uses_the_lsn() -> None:
    value = envelope("customers", "r", before=None, after=customer_row(), commit_lsn=None)
    updates = parse_cdc_customer(None, value)
    assert isinstance(updates, list)
    assert updates[0].version == Version(T0 + 5_123, CDC, (24023128, 24023128))


def test_debezium_delete_gives_versioned_tombstones() -> None:
    value = envelope("customers", "d", before=customer_row(), after=None, lsn=24029000)
    updates = parse_cdc_customer(b'{"id":17}', value)
    version = Version(T0 + 5_123, CDC, (24023064, 24029000))
    assert updates == [AttributeUpdate(17, a, None, version, True) for a in CUSTOMER_ATTRIBUTES]


def test_kafka_tombstone_after_a_delete_is_no_update() -> None:
    assert parse_cdc_customer(b'{"id":17}', None) == []


def _with_source(**changes: Any) -> bytes:
    env = json.loads(envelope("customers", "c", before=None, after=customer_row()))
    env["source"].update(changes)
    return json.dumps(env).encode()


def _upsert(**row: Any) -> bytes:
    return envelope("customers", "u", before=None, after=customer_row(**row))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (None, b"{", "invalid_json"),
        (None, envelope("customers", "t", before=None, after=None), "unknown_op"),
        (None, envelope("orders", "c", before=None, after=customer_row()), "wrong_table"),
        (None, _with_source(ts_ms="1767225605123"), "bad_event_time"),
        (None, _with_source(ts_ms=None), "bad_event_time"),
        (None, _with_source(lsn=-1), "bad_source"),
        (None, _with_source(sequence="not json"), "bad_source"),
        (None, _with_source(sequence='["1"]'), "bad_source"),
        (None, _with_source(sequence=["1", "2"]), "bad_source"),
        # the row a change is about: after (before for a delete), its id by the suite
        (None, envelope("customers", "c", before=None, after=None), "bad_customer_id"),
        (None, envelope("customers", "d", before=None, after=None), "bad_customer_id"),
        (None, envelope("customers", "c", before=None, after={"id": 17}), "invalid_email"),
        (None, envelope("customers", "c", before=None, after=customer_row(0)), "bad_customer_id"),
        (b'{"id":18}', _upsert(), "key_mismatch"),
        (b"17", _upsert(), "invalid_key"),
        (None, _upsert(email="x"), "invalid_email"),
        (None, _upsert(segment="big"), "invalid_segment"),
        (None, _upsert(tier="diamond"), "invalid_tier"),
    ],
)  # fmt: skip
def test_malformed_customer_event(key: bytes | None, value: bytes, expected: str) -> None:
    assert reason(parse_cdc_customer(key, value)) == expected


# --- Debezium orders ----------------------------------------------------------------------


def test_order_insert() -> None:
    order = parse_cdc_order(envelope("orders", "c", before=None, after=order_row()))
    assert order == OrderEvent(
        5,
        17,
        2499,
        "created",
        "c",
        T0 + 5_123,
        T0 + 10 * 3_600_000 + 123,
        Version(T0 + 5_123, CDC, (24023064, 24023128)),
    )
    assert order.order_time_ms == T0 + 10 * 3_600_000 + 123
    assert order.row_version == Version(order.order_time_ms, CDC, (24023064, 24023128))


def test_order_delete_carries_the_old_row_and_tombstone_is_none() -> None:
    order = parse_cdc_order(envelope("orders", "d", before=order_row(status="paid"), after=None))
    assert isinstance(order, OrderEvent)
    assert (order.op, order.status, order.order_id) == ("d", "paid", 5)
    assert parse_cdc_order(None) is None


def test_order_without_created_at_is_timed_by_its_commit() -> None:
    order = parse_cdc_order(envelope("orders", "c", before=None, after=order_row(created_at=None)))
    assert isinstance(order, OrderEvent)
    assert order.created_at_ms is None
    assert order.order_time_ms == T0 + 5_123


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (order_row(order_id=0), "bad_order_id"),
        (order_row(customer_id=-1), "bad_customer_id"),
        (order_row(amount_cents=-5), "bad_amount"),
        (order_row(amount_cents="12.50"), "bad_amount"),
        (order_row(status="lost"), "invalid_status"),
        (order_row(created_at="yesterday"), "bad_created_at"),
        (order_row(created_at="2026-01-01T10:00:00"), "bad_created_at"),  # naive
        (order_row(created_at=1767225605123), "bad_created_at"),
    ],
)
def test_malformed_order(row: dict[str, Any], expected: str) -> None:
    assert reason(parse_cdc_order(envelope("orders", "c", before=None, after=row))) == expected


# --- CRM ----------------------------------------------------------------------------------

KEY = "crm/exports/dt=2026-01-01/customers-20260101T040000Z-0000.csv"


def test_crm_record_from_the_bridge() -> None:
    row = CrmRow(17, "a@example.com", "smb", "gold", T0 + 5_000)
    updates = parse_crm(record_value(row, export_ts=T0 + 4 * 3_600_000, object_key=KEY, number=12))
    version = crm_version(T0 + 5_000, T0 + 4 * 3_600_000, KEY, 12)
    assert updates == [
        AttributeUpdate(17, "email", "a@example.com", version),
        AttributeUpdate(17, "segment", "smb", version),
        AttributeUpdate(17, "tier", "gold", version),
    ]


def test_crm_row_without_updated_at_is_timed_by_the_export() -> None:
    row = CrmRow(17, "a@example.com", "smb", "gold", None)
    updates = parse_crm(record_value(row, export_ts=T0, object_key=KEY, number=1))
    assert isinstance(updates, list)
    assert updates[0].version.event_time == T0


def _crm(**overrides: Any) -> bytes:
    obj: dict[str, Any] = {
        "customer_id": 17, "email": "a@example.com", "segment": "smb", "tier": "gold",
        "updated_at": T0, "event_time": T0, "source": "s3_crm", "source_seq": [T0, KEY, 12],
    }  # fmt: skip
    obj.update(overrides)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "empty_value"),
        (_crm(customer_id="17"), "bad_customer_id"),
        (_crm(tier="diamond"), "invalid_tier"),
        (_crm(email=None), "bad_type"),
        (_crm(event_time=None), "bad_event_time"),
        (_crm(source="pg_cdc"), "bad_source"),
        (_crm(source_seq=[T0, KEY]), "bad_source"),
        (_crm(source_seq=[T0, 3, 12]), "bad_source"),
        (_crm(source_seq=[T0, KEY, -1]), "bad_source"),
    ],
)
def test_malformed_crm(value: bytes | None, expected: str) -> None:
    assert reason(parse_crm(value)) == expected
