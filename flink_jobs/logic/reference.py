"""The reference computation: final feature values from raw topic records, in plain Python.

The oracle for the job's tests and the computation batch backfill reuses. It applies the
same modules as the job (records -> DQ gate, lww, sessions, aggregates, lags) with no
engine and no watermark: every valid record counts, as if all arrived in time, and the
input is bounded (every session closes at the end). A streaming run equals it when no
record was late; late records are the job's DLQ, not part of this result.

Result per view and entity: the row the online store holds after all rows were written
(greatest (event_time, version)); ``_event_time`` is that row's time. Specifics:

- ``customer_profile`` (per-attribute versions): the last-writer-wins winner of each
  attribute; a deleted attribute is None; ``_event_time`` = the latest winner's time.
- ``user_activity``, ``user_lags``: as of the user's latest click (duplicate event_ids
  dropped first, :func:`records.dedup_clicks`).
- ``customer_orders``, ``order_lags``: as of the customer's latest created order.
- ``user_sessions``, ``user_session_counts``: as of the end of the user's latest session
  (the counts exactly over the 24 h before it, not in hour tiles).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.domain import CUSTOMER_ATTRIBUTES
from core.features import (
    CUSTOMER_ORDERS,
    CUSTOMER_PROFILE,
    FEATURE_VIEWS,
    ORDER_LAGS,
    SESSION_GAP_MS,
    USER_ACTIVITY,
    USER_LAGS,
    USER_SESSION_COUNTS,
    USER_SESSIONS,
)
from core.topics import CDC_CUSTOMERS, CDC_ORDERS, CLICKSTREAM, CRM_CUSTOMERS
from flink_jobs.logic.aggregates import rolling_features
from flink_jobs.logic.lags import click_lags, order_lags
from flink_jobs.logic.lww import merge_all
from flink_jobs.logic.records import (
    AttributeUpdate,
    ClickEvent,
    OrderEvent,
    Rejection,
    dedup_clicks,
    parse_cdc_customer,
    parse_cdc_order,
    parse_click,
    parse_crm,
)
from flink_jobs.logic.rows import FeatureRow, FeatureValue, latest_per_entity
from flink_jobs.logic.sessions import session_count_rows, session_rows, sessions_of

EVENT_TIME = "_event_time"
Features = dict[str, dict[int, dict[str, FeatureValue]]]
"""{view name: {entity id: {feature long name: value, "_event_time": ms}}}"""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka record as the job sees it (its coordinates give clickstream versions)."""

    value: bytes | None
    key: bytes | None = None
    partition: int = 0
    offset: int = 0


@dataclass
class Parsed:
    clicks: list[ClickEvent] = field(default_factory=list)
    customer_updates: list[AttributeUpdate] = field(default_factory=list)
    orders: list[OrderEvent] = field(default_factory=list)
    rejections: list[tuple[str, RawRecord, Rejection]] = field(default_factory=list)
    """(topic, record, rejection): what the job sends to the DLQ."""


def parse_all(
    *,
    clickstream: Iterable[RawRecord] = (),
    cdc_customers: Iterable[RawRecord] = (),
    cdc_orders: Iterable[RawRecord] = (),
    crm_customers: Iterable[RawRecord] = (),
) -> Parsed:
    """Every record through the data-quality gate of :mod:`records`."""
    out = Parsed()
    for r in clickstream:
        click = parse_click(r.value, r.partition, r.offset)
        if isinstance(click, Rejection):
            out.rejections.append((CLICKSTREAM, r, click))
        else:
            out.clicks.append(click)
    for topic, records in ((CDC_CUSTOMERS, cdc_customers), (CRM_CUSTOMERS, crm_customers)):
        for r in records:
            updates = (
                parse_cdc_customer(r.key, r.value)
                if topic == CDC_CUSTOMERS
                else (parse_crm(r.value))
            )
            if isinstance(updates, Rejection):
                out.rejections.append((topic, r, updates))
            else:
                out.customer_updates.extend(updates)
    for r in cdc_orders:
        order = parse_cdc_order(r.value)
        if isinstance(order, Rejection):
            out.rejections.append((CDC_ORDERS, r, order))
        elif order is not None:
            out.orders.append(order)
    return out


def feature_rows(
    parsed: Parsed, session_gap_ms: int = SESSION_GAP_MS
) -> dict[str, list[FeatureRow]]:
    """Every row of every view with version scope ``view`` (what the job emits, in order
    of (entity, time)): the offline table's rows."""
    clicks = dedup_clicks(parsed.clicks)
    sessions = sessions_of(clicks, session_gap_ms)
    return {
        USER_ACTIVITY.name: rolling_features(clicks, USER_ACTIVITY),
        CUSTOMER_ORDERS.name: rolling_features(parsed.orders, CUSTOMER_ORDERS),
        USER_SESSIONS.name: session_rows(sessions),
        USER_SESSION_COUNTS.name: session_count_rows(sessions),
        USER_LAGS.name: click_lags(clicks),
        ORDER_LAGS.name: order_lags(parsed.orders),
    }


def profile_features(updates: Iterable[AttributeUpdate]) -> dict[int, dict[str, FeatureValue]]:
    """``customer_profile`` per customer from last-writer-wins over all updates."""
    values: dict[int, dict[str, FeatureValue]] = {}
    times: dict[int, int] = {}
    for (entity, attribute), u in sorted(merge_all(updates).items()):
        values.setdefault(entity, dict.fromkeys(CUSTOMER_ATTRIBUTES))[attribute] = u.value
        times[entity] = max(times.get(entity, 0), u.version.event_time)
    return {entity: {**v, EVENT_TIME: times[entity]} for entity, v in values.items()}


def reference_features(
    *,
    clickstream: Iterable[RawRecord] = (),
    cdc_customers: Iterable[RawRecord] = (),
    cdc_orders: Iterable[RawRecord] = (),
    crm_customers: Iterable[RawRecord] = (),
    session_gap_ms: int = SESSION_GAP_MS,
) -> Features:
    """Final feature values of every view from raw records (see the module docstring).
    Every view of :data:`core.features.FEATURE_VIEWS` is a key, possibly with no entity."""
    parsed = parse_all(
        clickstream=clickstream,
        cdc_customers=cdc_customers,
        cdc_orders=cdc_orders,
        crm_customers=crm_customers,
    )
    return features_of(parsed, session_gap_ms)


def features_of(parsed: Parsed, session_gap_ms: int = SESSION_GAP_MS) -> Features:
    """:func:`reference_features` from already parsed events."""
    out: Features = {CUSTOMER_PROFILE.name: profile_features(parsed.customer_updates)}
    for view_name, rows in feature_rows(parsed, session_gap_ms).items():
        out[view_name] = {
            entity: {**row.values, EVENT_TIME: row.event_time}
            for entity, row in sorted(latest_per_entity(rows).items())
        }
    return {v.name: out[v.name] for v in FEATURE_VIEWS}
