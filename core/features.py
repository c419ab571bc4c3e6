"""Entities and feature views: the one declaration the job, the online store, the API and
batch backfill all read (never re-declare a feature list or a TTL elsewhere).

Short names (``short``) are what the online store writes — Redis hashes stay small
(listpack-encoded); long names are what users see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.events import Source
from core.windows import (
    CLICKSTREAM_EVENTS,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    ORDER_EVENTS,
    SESSION_ENDS,
    Aggregations,
    Filter,
    Measure,
    Window,
)

DType = Literal["int64", "float64", "string", "bool"]
DAY_S = 86_400


@dataclass(frozen=True)
class Entity:
    name: str
    short: str
    join_key: str
    description: str


@dataclass(frozen=True)
class Feature:
    name: str
    short: str
    dtype: DType
    description: str = ""


@dataclass(frozen=True)
class Lags:
    """Lag features of an event stream, all derived from the entity's two latest events in
    version order (core/version.py: the version leads with the event time; ties in time are
    ordered by the rest of it, never by arrival). Online, the feature job keeps those two
    events per entity and writes the features; offline, each event is a row holding only
    its own value (``value``) and the point-in-time join derives the rest as of each
    instant from the two latest rows at or before it (batch/point_in_time.py)."""

    value: str
    """Feature: the latest event's value (the event's own field: offline rows carry it)."""
    prev: str
    """Feature: the value of the event before it; None at the entity's first event."""
    since_ms: str
    """Feature: latest event time - the previous event's (>= 0); None at the first event."""
    delta: str | None = None
    """Feature (int64 values only): latest value - previous value; None at the first."""
    horizon_ms: int = 7 * 86_400_000
    """The previous event counts only if at most this long before the latest; else the
    latest is as an entity's first event (``prev``, ``since_ms``, ``delta`` None). Default:
    the 7 days Kafka keeps, so a replay sees every previous event the live job saw; and the
    job keeps an entity's events in state only this long (plus a grace) after its last."""

    @property
    def names(self) -> tuple[str, ...]:
        """The features it names: the view's features, each exactly once."""
        return tuple(n for n in (self.value, self.prev, self.since_ms, self.delta) if n)


@dataclass(frozen=True)
class FeatureView:
    name: str
    short: str
    entity: Entity
    features: tuple[Feature, ...]
    sources: tuple[Source, ...]
    version_scope: Literal["view", "attribute"]
    """``view``: one version for the whole row (aggregates). ``attribute``: last-writer-wins
    per attribute, each with its own version (values merged from several sources)."""
    ttl_s: int = DAY_S
    """Online TTL counted from the value's event_time, not from when it was written."""
    allowed_lateness_ms: int | None = None
    """How far behind its source's newest event time an event may arrive and still count in
    this view (the feature job's watermark bound for it); later ones go to the DLQ as
    ``late``. None: the job's default (``JobConfig.max_out_of_orderness_ms``). Views read
    through one source table (the order views) must agree."""
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """View scope only: features computed by separate operators (e.g. one per window) and
    written independently, each group with its own version field ``<group>@``."""
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aggregations: Aggregations | None = None
    """A windowed view (core.windows): its features are ``<measure>_<window>``, stored as
    tiles and combined as of each read. None: the view stores its values as they are."""
    lags: Lags | None = None
    """A lag view: its features are the :class:`Lags` of its event stream."""

    def __post_init__(self) -> None:
        if self.lags is not None:
            named = self.lags.names
            if sorted(named) != sorted(self.names):
                raise ValueError(
                    f"feature view {self.name!r}: its Lags name {named}, its features are "
                    f"{self.names} (each feature exactly once)"
                )

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"feature view {self.name!r} has no feature {name!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def group(self, name: str) -> tuple[Feature, ...]:
        for group, members in self.groups:
            if group == name:
                return tuple(self.feature(m) for m in members)
        raise KeyError(f"feature view {self.name!r} has no group {name!r}")


CUSTOMER = Entity("customer", "c", "customer_id", "A customer; clickstream user_id is the same id.")


WINDOWS = (
    Window("1h", HOUR_MS, MINUTE_MS),
    Window("24h", DAY_MS, HOUR_MS),
    Window("7d", 7 * DAY_MS, HOUR_MS),
)
"""The rolling windows of the demo views: minute tiles for 1 h, hour tiles for 24 h and 7 d."""


def windowed_features(aggs: Aggregations) -> tuple[Feature, ...]:
    """The features a windowed view declares: one per (measure, window)."""
    return tuple(
        Feature(
            name,
            f"{m.short}{w.name}",
            "int64",
            f"{m.description or m.name} in the last {w.name} (tiles of {w.tile_ms // 1000} s)"
            + (" (approximate: ~10 % standard error)" if m.function == "approx_distinct" else ""),
        )
        for name, m, w in aggs.feature_names()
    )


CLICK_AGGREGATIONS = Aggregations(
    source=CLICKSTREAM_EVENTS,
    measures=(
        Measure("clicks", "c", "count", description="events"),
        Measure(
            "carts",
            "a",
            "count",
            where=Filter("event_type", ("add_to_cart",)),
            description="add_to_cart events",
        ),
        Measure(
            "purchases",
            "p",
            "count",
            where=Filter("event_type", ("purchase",)),
            description="purchase events",
        ),
    ),
    windows=WINDOWS,
)
ORDER_AGGREGATIONS = Aggregations(
    source=ORDER_EVENTS,
    measures=(
        Measure("orders", "o", "count", description="orders created"),
        Measure("spend_cents", "s", "sum", column="amount_cents", description="order amount"),
    ),
    windows=WINDOWS,
)

SESSION_AGGREGATIONS = Aggregations(
    source=SESSION_ENDS,
    measures=(Measure("sessions", "s", "count", description="sessions ended"),),
    windows=(Window("24h", DAY_MS, HOUR_MS),),
)


CUSTOMER_PROFILE = FeatureView(
    name="customer_profile",
    short="cp",
    entity=CUSTOMER,
    version_scope="attribute",
    sources=(Source.PG_CDC, Source.S3_CRM),
    features=(
        Feature("email", "e", "string"),
        Feature("segment", "s", "string"),
        Feature("tier", "t", "string"),
    ),
    description="Customer attributes from PostgreSQL CDC and CRM exports, merged by "
    "last-writer-wins on (event_time, source priority, source_seq).",
)

USER_ACTIVITY = FeatureView(
    name="user_activity",
    short="ua",
    entity=CUSTOMER,
    version_scope="view",
    sources=(Source.CLICKSTREAM,),
    features=windowed_features(CLICK_AGGREGATIONS),
    aggregations=CLICK_AGGREGATIONS,
    ttl_s=CLICK_AGGREGATIONS.horizon_ms // 1000,
    description="Rolling clickstream counts per user over 1 h, 24 h and 7 d (event time), "
    "as of each read.",
)

CUSTOMER_ORDERS = FeatureView(
    name="customer_orders",
    short="co",
    entity=CUSTOMER,
    version_scope="view",
    sources=(Source.PG_CDC,),
    features=windowed_features(ORDER_AGGREGATIONS),
    aggregations=ORDER_AGGREGATIONS,
    ttl_s=ORDER_AGGREGATIONS.horizon_ms // 1000,
    description="Order count and spend per customer over 1 h, 24 h and 7 d (CDC orders), "
    "as of each read.",
)

USER_SESSIONS = FeatureView(
    name="user_sessions",
    short="us",
    entity=CUSTOMER,
    version_scope="view",
    sources=(Source.CLICKSTREAM,),
    features=(
        Feature("last_session_duration_s", "d", "int64"),
        Feature("last_session_events", "ev", "int64"),
        Feature("last_session_pages", "pg", "int64", "distinct pages in the last session"),
        Feature("last_session_converted", "cv", "bool", "the last session had a purchase"),
    ),
    description="The user's last clickstream session (30-minute inactivity gap, event time).",
)

USER_SESSION_COUNTS = FeatureView(
    name="user_session_counts",
    short="uc",
    entity=CUSTOMER,
    version_scope="view",
    sources=(Source.CLICKSTREAM,),
    features=windowed_features(SESSION_AGGREGATIONS),
    ttl_s=SESSION_AGGREGATIONS.horizon_ms // 1000,
    aggregations=SESSION_AGGREGATIONS,
    description="Clickstream sessions per user that ended in the last 24 h, as of each read "
    "(a session ends at its last event; it is counted once the 30-minute gap closed it).",
)

USER_LAGS = FeatureView(
    name="user_lags",
    short="ul",
    entity=CUSTOMER,
    version_scope="view",
    sources=(Source.CLICKSTREAM,),
    features=(
        Feature("last_event_type", "lt", "string", "type of the user's latest event"),
        Feature("prev_event_type", "pt", "string", "event type before the latest event"),
        Feature("ms_since_prev_event", "dt", "int64", "latest event time - previous one"),
    ),
    description="Clickstream lags: previous value and time since the previous event.",
    lags=Lags("last_event_type", "prev_event_type", "ms_since_prev_event"),
)

ORDER_LAGS = FeatureView(
    name="order_lags",
    short="ol",
    entity=CUSTOMER,
    version_scope="view",
    sources=(Source.PG_CDC,),
    features=(
        Feature("last_order_cents", "la", "int64", "amount of the latest order"),
        Feature("prev_order_cents", "pa", "int64", "amount of the order before it"),
        Feature("order_delta_cents", "da", "int64", "latest amount - previous amount"),
        Feature("ms_since_prev_order", "do", "int64", "latest order time - previous one"),
    ),
    description="Order lags: previous amount, delta from it, time since the previous order.",
    lags=Lags("last_order_cents", "prev_order_cents", "ms_since_prev_order", "order_delta_cents"),
)

FEATURE_VIEWS: tuple[FeatureView, ...] = (
    CUSTOMER_PROFILE,
    USER_ACTIVITY,
    CUSTOMER_ORDERS,
    USER_SESSIONS,
    USER_SESSION_COUNTS,
    USER_LAGS,
    ORDER_LAGS,
)
SESSION_GAP_MS = 30 * 60 * 1000
"""Inactivity gap closing a session (configurable per job run; this is the default)."""


_BY_NAME = {v.name: v for v in FEATURE_VIEWS}


def view(name: str) -> FeatureView:
    """The code-defined view called ``name`` (a dict lookup: the job calls it per row)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature view {name!r}") from None
