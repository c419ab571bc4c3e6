"""Retrieval: resolve the view and features, read the online store, judge freshness.

Keyword-only functions that know nothing of HTTP; they raise :mod:`feature_api.errors`.
The online store is read through :class:`core.online.AsyncOnlineReader` (the one read of
the key layout), on the serving event loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import redis.exceptions

from core.features import Feature, FeatureView
from core.features import view as lookup_view
from core.online import AsyncOnlineReader
from core.windows import AS_OF_HORIZON_MS
from feature_api.errors import (
    BadAsOf,
    BatchTooLarge,
    StoreUnavailable,
    UnknownFeature,
    UnknownView,
)
from feature_api.freshness import compact_values, row_values, version_fields


def resolve_view(*, name: str, registered: Mapping[str, FeatureView]) -> FeatureView:
    """The declaration in core/features.py (what the feature job computes), else the view as
    last registered (``registered``: the in-memory registry snapshot, so no PostgreSQL
    round trip per request and retrieval keeps working while PostgreSQL is down)."""
    try:
        return lookup_view(name)
    except KeyError:
        pass
    found = registered.get(name)
    if found is None:
        raise UnknownView(f"unknown feature view {name!r}", view=name)
    return found


def resolve_features(*, view: FeatureView, names: Sequence[str] | None) -> tuple[Feature, ...]:
    """The requested features in request order (duplicates once); all when none asked."""
    if not names:
        return view.features
    unknown = [n for n in dict.fromkeys(names) if n not in view.names]
    if unknown:
        raise UnknownFeature(
            f"feature view {view.name!r} has no feature {', '.join(map(repr, unknown))}",
            view=view.name,
            unknown=unknown,
            available=list(view.names),
        )
    return tuple(view.feature(n) for n in dict.fromkeys(names))


@contextmanager
def store_errors() -> Iterator[None]:
    """Redis failures become :class:`StoreUnavailable` (timeouts and refusals alike)."""
    try:
        yield
    except redis.exceptions.TimeoutError as exc:
        raise StoreUnavailable(
            "online store (Redis) did not answer in time", kind="timeout", cause=str(exc)
        ) from exc
    except redis.exceptions.ConnectionError as exc:
        raise StoreUnavailable(
            "online store (Redis) is unreachable", kind="connection", cause=str(exc)
        ) from exc


async def read_features(
    *,
    store: AsyncOnlineReader,
    view: FeatureView,
    features: tuple[Feature, ...],
    entity_ids: Sequence[int],
    now_ms: int,
    max_batch: int,
    as_of: int | None = None,
    compact: bool = False,
) -> list[dict[str, Any]]:
    """Per entity, in ``entity_ids`` order: feature name -> value, status, event time, age
    and source (:func:`feature_api.freshness.row_values`), or with ``compact`` the values
    and their freshness once per version field (:func:`~feature_api.freshness.compact_values`);
    one round trip to Redis. A windowed view is answered live at ``now_ms`` or, given
    ``as_of``, as of that past instant (:func:`check_as_of`)."""
    check_as_of(view=view, as_of=as_of, now_ms=now_ms)
    if len(entity_ids) > max_batch:
        raise BatchTooLarge(
            f"{len(entity_ids)} entity ids asked, at most {max_batch} per request",
            asked=len(entity_ids),
            max_batch=max_batch,
        )
    with store_errors():
        rows: list[dict[str, Any]] = await store.read(
            view, list(entity_ids), now_ms=now_ms, as_of=as_of
        )
    vfields = version_fields(view, features)
    answer = compact_values if compact else row_values
    return [
        answer(view=view, features=features, row=row, now_ms=now_ms, vfields=vfields)
        for row in rows
    ]


async def read_views(
    *,
    store: AsyncOnlineReader,
    wanted: Sequence[tuple[FeatureView, tuple[Feature, ...]]],
    entity_ids: Sequence[int],
    now_ms: int,
) -> list[list[dict[str, Any]]]:
    """Per view of ``wanted``, per entity: :func:`read_features`' answer (values with their
    freshness), all views read in one round trip to Redis (a model's inputs)."""
    with store_errors():
        per_view = await store.read_views([(v, list(entity_ids)) for v, _ in wanted], now_ms=now_ms)
    return [
        [
            row_values(view=view, features=features, row=row, now_ms=now_ms, vfields=vfields)
            for row in rows
        ]
        for (view, features), rows in zip(wanted, per_view, strict=True)
        for vfields in [version_fields(view, features)]
    ]


def check_as_of(*, view: FeatureView, as_of: int | None, now_ms: int) -> None:
    """``as_of`` answers windowed views only (others hold their latest value, not a
    history), within the online horizon: at most ``AS_OF_HORIZON_MS`` back, not ahead."""
    if as_of is None:
        return
    if view.aggregations is None:
        raise BadAsOf(
            f"as_of applies to windowed views; {view.name!r} holds only its latest values "
            "(fix: drop as_of, or build a training set for past values)",
            view=view.name,
        )
    if not now_ms - AS_OF_HORIZON_MS <= as_of <= now_ms:
        raise BadAsOf(
            f"as_of must be within the last {AS_OF_HORIZON_MS // 60_000} minutes (online "
            "horizon) and not in the future (fix: a training set answers older instants)",
            as_of=as_of,
            served_at=now_ms,
            horizon_ms=AS_OF_HORIZON_MS,
        )


async def ping(*, store: AsyncOnlineReader) -> None:
    """Raise :class:`StoreUnavailable` unless Redis answers PING."""
    with store_errors():
        await store.ping()
