"""Freshness of one stored feature value: pure functions over a row read from the online store.

A row is what :meth:`core.online.RedisOnlineStore.read` returns: long feature names mapped
to decoded values, plus the version fields as text (``_v``, ``_t``, ``<group>@``,
``<short>@``). Which field carries a feature's event time depends on the view:

- attribute-scoped views: the attribute's own version ``<short>@`` (last-writer-wins per
  attribute, so each attribute has its own event time and its own winning source);
- view-scoped views with groups (one per window): the group's version ``<group>@``;
- other view-scoped views: ``_t`` (the row's event time), the source taken from ``_v``.

Status, with ``age_ms = now_ms - event_time``:

- ``EXPIRED`` when ``age_ms >= ttl`` — the instant Redis's own expiry (``event_time + ttl``,
  PEXPIREAT) would have removed it, whatever Redis still holds (a replayed old event, a key
  written without a TTL). The value is then withheld (``None``), as Feast does for values
  outside their max age; its event time and source are still reported.
- ``PRESENT`` otherwise when the value is there. A value from the future (clock skew
  between producers and this host) is PRESENT with a negative ``age_ms``.
- ``MISSING`` when there is no value: no row, a view-scoped row lacking the feature, or an
  attribute deleted by a versioned tombstone (then ``event_time``/``source`` describe the
  delete, which is itself a versioned fact).

Windowed views (core.windows) are answered as of the read from their tiles, so they never
expire: a count or sum over a window without events is 0 (PRESENT), a min or max MISSING;
``event_time`` is the entity's newest event and ``age_ms`` the time since it (both None for
an entity without any event within the longest window: its counts are 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from core.events import SOURCE_PRIORITY, Source
from core.features import Feature, FeatureView
from core.online import (
    ROW_EVENT_TIME,
    ROW_VERSION,
    attribute_version_field,
    group_version_field,
)
from core.version import decode_event_time, decode_priority

_SOURCE_BY_PRIORITY = {p: s for s, p in SOURCE_PRIORITY.items()}


class Status(StrEnum):
    PRESENT = "PRESENT"
    EXPIRED = "EXPIRED"
    MISSING = "MISSING"


class FeatureState(NamedTuple):
    """Immutable; a named tuple because one is made per feature per entity per request (a
    frozen dataclass's ``__init__`` costs several times more)."""

    name: str
    value: Any
    status: Status
    event_time: int | None
    age_ms: int | None
    source: Source | None


def version_field(view: FeatureView, feature: Feature) -> str:
    """The encoded-version field that dates ``feature`` (``_v`` for plain view scope)."""
    if view.version_scope == "attribute":
        return attribute_version_field(feature)
    for group, members in view.groups:
        if feature.name in members:
            return group_version_field(group)
    return ROW_VERSION


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def source_of(encoded: str | None) -> Source | None:
    """The source whose value won (None when unknown: no version or a foreign priority)."""
    if not encoded:
        return None
    try:
        return _SOURCE_BY_PRIORITY.get(decode_priority(encoded))
    except (ValueError, IndexError):
        return None


def _dated(vfield: str, row: Mapping[str, Any]) -> tuple[int | None, Source | None]:
    """(event time, winning source) of the values ``vfield`` versions."""
    encoded = _text(row.get(vfield))
    event_time = None
    if vfield == ROW_VERSION:
        t = _text(row.get(ROW_EVENT_TIME))
        if t is not None:
            event_time = int(t)
    if event_time is None and encoded:
        event_time = decode_event_time(encoded)
    return event_time, source_of(encoded)


Freshness = tuple[int | None, int | None, Source | None, bool]
"""(event_time, age_ms, source, expired) of the values one version field dates."""


def _freshness(view: FeatureView, vfield: str, row: Mapping[str, Any], now_ms: int) -> Freshness:
    """The freshness of the values ``vfield`` dates; a windowed view's is its newest event
    (``_t``), from its one source, never expired (its windows are combined at the read)."""
    if view.aggregations is not None:
        t = _text(row.get(ROW_EVENT_TIME))
        event_time = None if t is None else int(t)
        source = view.sources[0] if event_time is not None else None
        expired = False
    else:
        event_time, source = _dated(vfield, row)
        expired = event_time is not None and is_expired(
            event_time=event_time, ttl_s=view.ttl_s, now_ms=now_ms
        )
    age_ms = None if event_time is None else now_ms - event_time
    return event_time, age_ms, source, expired


def version_fields(view: FeatureView, features: tuple[Feature, ...]) -> list[str]:
    """Each feature's version field (one shared field for a windowed view: ``_t``)."""
    if view.aggregations is not None:
        return [ROW_EVENT_TIME] * len(features)
    return [version_field(view, f) for f in features]


def is_expired(*, event_time: int, ttl_s: int, now_ms: int) -> bool:
    """Expired exactly when Redis's own TTL (``PEXPIREAT event_time + ttl``) would fire."""
    return now_ms - event_time >= ttl_s * 1000


def feature_state(
    *,
    view: FeatureView,
    feature: Feature,
    row: Mapping[str, Any],
    now_ms: int,
) -> FeatureState:
    """The state of one feature of ``row`` (see the module docstring)."""
    (state,) = row_states(view=view, features=(feature,), row=row, now_ms=now_ms)
    return state


def row_states(
    *,
    view: FeatureView,
    features: tuple[Feature, ...],
    row: Mapping[str, Any],
    now_ms: int,
) -> list[FeatureState]:
    """States of ``features`` in ``row``, as typed tuples (:func:`row_values` decides)."""
    values = row_values(view=view, features=features, row=row, now_ms=now_ms)
    return [FeatureState(name, **state) for name, state in values.items()]


def row_values(
    *,
    view: FeatureView,
    features: tuple[Feature, ...],
    row: Mapping[str, Any],
    now_ms: int,
    vfields: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Feature name -> ``{value, status, event_time, age_ms, source}`` (the API's
    ``FeatureValuePublic``, as plain data for orjson): the serving hot path, one small dict
    per feature per entity and nothing else. ``vfields``: the features' version fields, when
    the caller already knows them (once per request, not per row)."""
    if vfields is None:
        vfields = version_fields(view, features)
    # per version field: every feature it versions shares these
    dated = {vfield: _freshness(view, vfield, row, now_ms) for vfield in set(vfields)}
    out = {}
    for f, vfield in zip(features, vfields, strict=True):
        event_time, age_ms, source, expired = dated[vfield]
        value = row.get(f.name)
        if value is None:
            status = Status.MISSING
        elif expired:
            status, value = Status.EXPIRED, None
        else:
            status = Status.PRESENT
        out[f.name] = {
            "value": value,
            "status": status,  # an enum: orjson writes its value
            "event_time": event_time,
            "age_ms": age_ms,
            "source": source,
        }
    return out


def compact_values(
    *,
    view: FeatureView,
    features: tuple[Feature, ...],
    row: Mapping[str, Any],
    now_ms: int,
    vfields: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The compact answer of one entity: ``values`` in the order of ``features``, and each
    distinct freshness once (``meta``: the indexes of the features it dates, their
    ``event_time``, ``age_ms``, ``source`` and ``expired``) instead of once per feature.

    Agrees with :func:`row_values` feature by feature: a non-null value is PRESENT; a null
    one is EXPIRED (withheld) or MISSING when its meta is expired, else MISSING. One meta
    for a plain or windowed view; for ``customer_profile`` one per distinct version
    (attributes written by one record share it), for a view with groups one per group."""
    if vfields is None:
        vfields = version_fields(view, features)
    values: list[Any] = []
    dated: dict[str, Freshness] = {}
    groups: dict[Freshness, dict[str, Any]] = {}
    for i, (f, vfield) in enumerate(zip(features, vfields, strict=True)):
        key = dated.get(vfield)
        if key is None:
            key = dated[vfield] = _freshness(view, vfield, row, now_ms)
        group = groups.get(key)
        if group is None:
            event_time, age_ms, source, expired = key
            group = groups[key] = {
                "features": [],
                "event_time": event_time,
                "age_ms": age_ms,
                "source": source,
                "expired": expired,
            }
        group["features"].append(i)
        values.append(None if key[3] else row.get(f.name))
    return {"values": values, "meta": list(groups.values())}
