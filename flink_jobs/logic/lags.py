"""Lag features per entity in event-time order (``user_lags``, ``order_lags``).

For each event of an entity, in (time, version) order: the previous event's value, the
time since it and the delta from it. At the entity's FIRST event all three are None.
Ties: events with equal time are ordered by version (for the clickstream: partition,
offset), so the order, and with it every lag, is total and independent of arrival; the
later of two peers sees the earlier as previous with ``ms_since == 0``. (Flink SQL's
``LAG(x) OVER (PARTITION BY k ORDER BY ts)`` orders peers by arrival instead: a job that
must match this exactly sorts peers by version, or treats peers as arrival-dependent.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from core.features import ORDER_LAGS, USER_LAGS, view
from core.version import Version
from flink_jobs.logic.events import ClickEvent, OrderEvent, order_creations
from flink_jobs.logic.rows import FeatureRow, FeatureValue

E = TypeVar("E")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Lag(Generic[E, T]):
    entity_id: int
    event: E
    time_ms: int
    value: T
    prev_value: T | None
    """None at the entity's first event."""
    ms_since_prev: int | None
    """``time_ms - previous time_ms`` (>= 0); None at the first event."""


def lags(
    events: Iterable[E],
    *,
    entity_of: Callable[[E], int],
    time_of: Callable[[E], int],
    version_of: Callable[[E], Version],
    value_of: Callable[[E], T],
    horizon_ms: int | None = None,
) -> list[Lag[E, T]]:
    """Lags of every event, sorted by (entity, time, version); a previous event more than
    ``horizon_ms`` before counts as none (core.features.Lags.horizon_ms)."""
    ordered = sorted(events, key=lambda e: (entity_of(e), time_of(e), version_of(e)))
    out: list[Lag[E, T]] = []
    prev: E | None = None
    for e in ordered:
        if prev is not None and entity_of(prev) != entity_of(e):
            prev = None
        if prev is not None and horizon_ms is not None and time_of(e) - time_of(prev) > horizon_ms:
            prev = None
        out.append(
            Lag(
                entity_of(e),
                e,
                time_of(e),
                value_of(e),
                value_of(prev) if prev is not None else None,
                time_of(e) - time_of(prev) if prev is not None else None,
            )
        )
        prev = e
    return out


def _horizon(name: str) -> int:
    spec = view(name).lags
    assert spec is not None
    return spec.horizon_ms


def click_lags(events: Iterable[ClickEvent]) -> list[FeatureRow]:
    """``user_lags`` rows, one per click: last_event_type, prev_event_type,
    ms_since_prev_event (None, None at a user's first event)."""
    rows = []
    for lag in lags(
        events,
        entity_of=lambda e: e.user_id,
        time_of=lambda e: e.event_time,
        version_of=lambda e: e.version,
        value_of=lambda e: e.event_type,
        horizon_ms=_horizon(USER_LAGS.name),
    ):
        values: dict[str, FeatureValue] = {
            "last_event_type": lag.value,
            "prev_event_type": lag.prev_value,
            "ms_since_prev_event": lag.ms_since_prev,
        }
        rows.append(
            FeatureRow(USER_LAGS.name, lag.entity_id, lag.time_ms, lag.event.version, values)
        )
    return rows


def order_lags(orders: Iterable[OrderEvent]) -> list[FeatureRow]:
    """``order_lags`` rows, one per created order (op c/r, once per order id, at its
    ``order_time_ms``: :func:`records.order_creations`): last_order_cents, prev_order_cents,
    order_delta_cents (last - prev), ms_since_prev_order (None, None, None at a customer's
    first order). Updates and deletes of orders do not change these features."""
    rows = []
    for lag in lags(
        order_creations(list(orders)),
        entity_of=lambda o: o.customer_id,
        time_of=lambda o: o.order_time_ms,
        version_of=lambda o: o.version,
        value_of=lambda o: o.amount_cents,
        horizon_ms=_horizon(ORDER_LAGS.name),
    ):
        prev = lag.prev_value
        values: dict[str, FeatureValue] = {
            "last_order_cents": lag.value,
            "prev_order_cents": prev,
            "order_delta_cents": lag.value - prev if prev is not None else None,
            "ms_since_prev_order": lag.ms_since_prev,
        }
        row = FeatureRow(ORDER_LAGS.name, lag.entity_id, lag.time_ms, lag.event.row_version, values)
        rows.append(row)
    return rows


def offline_row(row: FeatureRow) -> FeatureRow:
    """A lag row as the offline table holds it (core.features.Lags): the event's own value
    only; the point-in-time join derives the others from the rows before it."""
    spec = view(row.view).lags
    if spec is None:
        raise ValueError(f"feature view {row.view!r} declares no lags")
    return replace(row, values={spec.value: row.values[spec.value]})
