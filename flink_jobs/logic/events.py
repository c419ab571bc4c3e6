"""The typed events of the feature job (what :mod:`flink_jobs.logic.records` parses raw
topic records into) and small helpers over them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from core.version import Version

CREATE_OPS: Final = ("c", "r")
"""Debezium ops that create a row: insert (``c``) and snapshot read (``r``)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str
    expectation: str | None = None
    """The failed expectation of the source's suite (core.quality.Rule.label), None when the
    record failed before any (not JSON, not an object)."""


@dataclass(frozen=True, slots=True)
class ClickEvent:
    event_id: str
    user_id: int
    event_type: str
    page: str
    event_time: int
    version: Version


@dataclass(frozen=True, slots=True)
class AttributeUpdate:
    """One attribute of one entity at one version. ``deleted``: a versioned tombstone
    (``value`` is None); it beats older values and loses to newer ones like any value."""

    entity_id: int
    attribute: str
    value: str | None
    version: Version
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A CDC change of one order. For ``op == "d"`` the fields are the row as it was."""

    order_id: int
    customer_id: int
    amount_cents: int
    status: str
    op: str
    event_time: int
    """The commit time (``source.ts_ms``): the time of this change."""
    created_at_ms: int | None
    version: Version

    @property
    def order_time_ms(self) -> int:
        """When the order was created: ``created_at`` if the row has it, else the commit
        time. Order features count an order at this time, not at the CDC event's: a
        snapshot (``op = r``) carries the snapshot's time for every historical order."""
        return self.created_at_ms if self.created_at_ms is not None else self.event_time

    @property
    def row_version(self) -> Version:
        """The version of a feature row computed at ``order_time_ms``: the CDC version with
        the order time in front, so one customer's rows are ordered by version exactly as
        by time (commit times of historical rows can run the other way)."""
        return Version(self.order_time_ms, self.version.priority, self.version.seq)


def dedup_clicks(events: list[ClickEvent]) -> list[ClickEvent]:
    """One event per ``event_id`` (the dedup key of SCHEMAS.md): a producer retry can write
    one event at two offsets; the copy with the least version (first written) is kept, so
    the result does not depend on input order. Output sorted by (event_time, version)."""
    first: dict[str, ClickEvent] = {}
    for e in events:
        kept = first.get(e.event_id)
        if kept is None or e.version < kept.version:
            first[e.event_id] = e
    return sorted(first.values(), key=lambda e: (e.event_time, e.version))


def order_creations(orders: list[OrderEvent]) -> list[OrderEvent]:
    """The events that create orders (op ``c``/``r``), one per ``order_id``: an order seen
    both by the snapshot and as an insert (or redelivered) counts once, as the copy first in
    ``orders``, which is in topic order per order id. Debezium keys each event by the row's
    primary key, so all copies of one order are on one partition, in the order written: the
    original before a redelivery, an insert before a later read of the same row. Which copy
    counts is fixed by the topic, whatever else arrives between them (other orders, other
    partitions), so a replay, a restart or another parallelism counts the same one.
    Sorted by (order_time_ms, version)."""
    first: dict[int, OrderEvent] = {}
    for o in orders:
        if o.op in CREATE_OPS:
            first.setdefault(o.order_id, o)
    return sorted(first.values(), key=lambda o: (o.order_time_ms, o.version))
