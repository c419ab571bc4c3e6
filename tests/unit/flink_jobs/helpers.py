"""Builders of events and raw records for the feature-logic tests."""

from __future__ import annotations

import itertools
import json
from typing import Any

from core.events import format_iso_ms
from core.version import Version, cdc_version, click_version
from flink_jobs.logic.events import ClickEvent, OrderEvent

T0 = 1_767_225_600_000
"""2026-01-01T00:00:00Z."""
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_offsets = itertools.count(1)


def click(
    user_id: int,
    t: int,
    event_type: str = "page_view",
    page: str = "/",
    *,
    partition: int = 0,
    offset: int | None = None,
    event_id: str | None = None,
) -> ClickEvent:
    offset = next(_offsets) if offset is None else offset
    version = click_version(t, partition, offset)
    return ClickEvent(event_id or f"e-{partition}-{offset}", user_id, event_type, page, t, version)


def click_value(**overrides: Any) -> bytes:
    """A valid clickstream value (SCHEMAS.md), with fields replaced or (value ...) removed."""
    event: dict[str, Any] = {
        "event_id": "0b6f0c3e-0000-4000-8000-000000000001",
        "user_id": 17,
        "event_type": "add_to_cart",
        "page": "/product/123",
        "event_time": T0 + 5_123,
        "properties": {"product_id": 123, "price_cents": 1999},
    }
    for name, value in overrides.items():
        if value is ...:
            del event[name]
        else:
            event[name] = value
    return json.dumps(event).encode()


def source_block(table: str, ts_ms: int, lsn: int, commit_lsn: int | None) -> dict[str, Any]:
    sequence = json.dumps([str(commit_lsn) if commit_lsn is not None else None, str(lsn)])
    return {
        "version": "3.6.1.Final",
        "connector": "postgresql",
        "name": "cdc",
        "ts_ms": ts_ms,
        "snapshot": "false",
        "db": "streamfeat",
        "sequence": sequence,
        "schema": "public",
        "table": table,
        "txId": 745,
        "lsn": lsn,
        "xmin": None,
    }


def envelope(
    table: str,
    op: str,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    ts_ms: int = T0 + 5_123,
    lsn: int = 24023128,
    commit_lsn: int | None = 24023064,
) -> bytes:
    """A Debezium change event without the Connect schema (schemas.enable=false)."""
    value = {
        "before": before,
        "after": after,
        "source": source_block(table, ts_ms, lsn, commit_lsn),
        "op": op,
        "ts_ms": ts_ms + 333,
        "transaction": None,
    }
    return json.dumps(value).encode()


def customer_row(
    customer_id: int = 17,
    email: str = "a@example.com",
    segment: str = "smb",
    tier: str = "gold",
) -> dict[str, Any]:
    return {
        "id": customer_id,
        "email": email,
        "full_name": "Ada Lovelace",
        "segment": segment,
        "tier": tier,
        "country": "GB",
        "created_at": "2025-12-30T09:00:00.000000Z",
        "updated_at": format_iso_ms(T0),
    }


def order_row(
    order_id: Any = 5,
    customer_id: Any = 17,
    amount_cents: Any = 2499,
    status: Any = "created",
    created_at: Any = "2026-01-01T10:00:00.123456Z",
) -> dict[str, Any]:
    """An orders row; any field may be given a wrong value on purpose."""
    return {
        "id": order_id,
        "customer_id": customer_id,
        "status": status,
        "amount_cents": amount_cents,
        "currency": "EUR",
        "created_at": created_at,
        "updated_at": created_at,
    }


def order(
    customer_id: int,
    created_at_ms: int | None,
    amount_cents: int,
    *,
    order_id: int | None = None,
    op: str = "c",
    ts_ms: int | None = None,
    lsn: int | None = None,
) -> OrderEvent:
    lsn = next(_offsets) if lsn is None else lsn
    order_id = lsn if order_id is None else order_id
    ts = ts_ms if ts_ms is not None else (created_at_ms or T0)
    version = cdc_version({"ts_ms": ts, "lsn": lsn, "sequence": json.dumps([str(lsn), str(lsn)])})
    return OrderEvent(
        order_id, customer_id, amount_cents, "created", op, ts, created_at_ms, version
    )


def cdc_v(ts_ms: int, commit_lsn: int, lsn: int) -> Version:
    return cdc_version({"ts_ms": ts_ms, "lsn": lsn, "sequence": json.dumps([commit_lsn, lsn])})
