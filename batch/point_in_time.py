"""Point-in-time joins: a spine of (entity, timestamp) rows against the offline feature rows.

The rule, per spine row and requested feature (the offline twin of what the online store
served at that instant):

1. Candidates are the offline rows of the feature's view, the spine row's entity and the
   feature's *slot* (``grp``: the version group of a view that declares groups, e.g. one
   per window; the attribute of an attribute-scoped view such as ``customer_profile``;
   ``''`` otherwise, one row holding the whole view) whose ``event_time`` is at or before
   the spine timestamp. A row with a later event time never contributes: no future value leaks.
2. Among them the row with the greatest ``version`` wins (core/version.py's encoding, whose
   string order is the version order): last-writer-wins, independent of arrival order or
   file order; an equal event time is decided by the rest of the version (source priority,
   source sequence).
3. The winner's value is the feature's value; NULL when the winner lacks it (a view-scoped
   row without the field, an attribute tombstone) or when it is expired at the spine time:
   ``ts - event_time >= ttl`` (feature_api/freshness.py's rule, the instant Redis's own
   expiry would have removed it). No candidate: NULL.

Lag views (core.features.Lags) hold one row per event with its own value: their features
are derived per spine row from the entity's two latest events at or before the spine time
(:func:`lag_columns`), the rule the feature job applies online.

Windowed views (core.windows) are tiles: each offline row of such a view is one value a
tile took (``grp`` its stored field, ``features`` its ``n`` and stored measures, ``version``
its encoded ``n``); the greatest version per tile is its final value. Their features are
computed per spine row by :func:`core.windows.combine` as of the spine time from complete
tiles only -- the code the API runs for ``as_of`` -- so no event after the spine time is ever
counted (:func:`windowed_columns`).

Rows without an entity, event time or version cannot be ordered and are not candidates
(the feature job never writes them; :func:`join` reports how many it ignored).

Vectorised with numpy/pyarrow: per slot, one sort of the rows by (entity, event time,
version rank), a running maximum of the version rank per entity (so "greatest version among
event_time <= ts" holds even if a version disagreed with its row's event time) and one
binary search per spine row. A 100k-row spine joins in well under a second per slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.features import FEATURE_VIEWS, Feature, FeatureView
from core.windows import combine, split_field

COLUMN_SEPARATOR = "__"
"""Output column of a feature: ``<view>__<feature>`` (Feast's full feature names), so two
views may declare the same feature name without a clash."""

ROW_COLUMNS = ("view", "entity_id", "grp", "features", "event_time", "version")
"""Offline columns the join reads (core/offline.py)."""

_ARROW_TYPES = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
}


class TrainingSetError(Exception):
    """A build cannot go on; the message says what failed and how to fix it."""


@dataclass(frozen=True)
class Requested:
    """One requested feature of one view."""

    view: FeatureView
    feature: Feature

    @property
    def column(self) -> str:
        return f"{self.view.name}{COLUMN_SEPARATOR}{self.feature.name}"

    @property
    def ref(self) -> str:
        return f"{self.view.name}:{self.feature.name}"

    @property
    def slot(self) -> str:
        return slot_of(self.view, self.feature)


def slot_of(view: FeatureView, feature: Feature) -> str:
    """The offline ``grp`` whose rows carry ``feature`` (each slot has its own versions)."""
    if view.version_scope == "attribute":
        return feature.name
    for group, members in view.groups:
        if feature.name in members:
            return group
    return ""


def parse_features(
    names: Iterable[str], views: Sequence[FeatureView] = FEATURE_VIEWS
) -> tuple[Requested, ...]:
    """``view`` (all its features) or ``view:feature`` names, comma-separated lists allowed,
    in request order, each feature once. All views must share one entity (the spine's)."""
    by_name = {v.name: v for v in views}
    out: dict[str, Requested] = {}
    for raw in names:
        for name in (n.strip() for n in raw.split(",")):
            if not name:
                continue
            view_name, _, feature_name = name.partition(":")
            view = by_name.get(view_name)
            if view is None:
                raise TrainingSetError(
                    f"unknown feature view {view_name!r} in {name!r}; known views: "
                    f"{', '.join(sorted(by_name))} (fix: name one of them, `view` or "
                    "`view:feature`)"
                )
            if feature_name:
                if feature_name not in view.names:
                    raise TrainingSetError(
                        f"feature view {view.name!r} has no feature {feature_name!r}; its "
                        f"features: {', '.join(view.names)}"
                    )
                features: tuple[Feature, ...] = (view.feature(feature_name),)
            else:
                features = view.features
            for f in features:
                req = Requested(view, f)
                out.setdefault(req.ref, req)
    if not out:
        raise TrainingSetError("no features requested (fix: --features VIEW[:FEATURE] ...)")
    entities = sorted({r.view.entity.name for r in out.values()})
    if len(entities) > 1:
        raise TrainingSetError(
            f"the requested views belong to different entities ({', '.join(entities)}); one "
            "spine has one entity key (fix: build one training set per entity)"
        )
    return tuple(out.values())


@dataclass(frozen=True)
class _Keys:
    """Rows and spine rows on one sortable int64 key per (entity, time): the entity's rank
    times the width of one dense time axis shared by rows and spine, plus the time's rank."""

    row_g: np.ndarray
    """Per row, its entity's index among the rows' distinct entities."""
    row_key: np.ndarray
    spine_g: np.ndarray
    spine_key: np.ndarray
    known: np.ndarray
    """Per spine row, whether its entity has any row."""


def _keys(
    spine_entity: np.ndarray, spine_ts: np.ndarray, entity: np.ndarray, event_time: np.ndarray
) -> _Keys:
    n = len(entity)
    entities = np.unique(entity)
    row_g = np.searchsorted(entities, entity)
    spine_g = np.minimum(np.searchsorted(entities, spine_entity), len(entities) - 1)
    known = entities[spine_g] == spine_entity
    times, inverse = np.unique(np.concatenate([event_time, spine_ts]), return_inverse=True)
    width = np.int64(len(times))
    return _Keys(
        row_g,
        row_g.astype(np.int64) * width + inverse[:n],
        spine_g,
        spine_g.astype(np.int64) * width + inverse[n:],
        known,
    )


def as_of(
    spine_entity: np.ndarray,
    spine_ts: np.ndarray,
    entity: np.ndarray,
    event_time: np.ndarray,
    version: pa.Array,
) -> np.ndarray:
    """Per spine row, the index of the winning row (greatest version among the rows of its
    entity with ``event_time <= ts``), or -1 when there is none. Rows must be of one slot
    and have no nulls."""
    n = len(entity)
    out = np.full(len(spine_entity), -1, dtype=np.int64)
    if n == 0 or len(spine_entity) == 0:
        return out
    k = _keys(spine_entity, spine_ts, entity, event_time)
    rank = np.asarray(
        pc.rank(version, sort_keys="ascending", tiebreaker="first"), dtype=np.int64
    )  # 1..n, distinct
    order = np.lexsort((rank, k.row_key))
    sorted_g = k.row_g[order].astype(np.int64)
    # running max of the rank within each entity: offsetting each entity above all earlier
    # ones lets one global accumulate restart at every entity boundary
    offset = sorted_g * np.int64(n + 1)
    best_rank = np.maximum.accumulate(rank[order] + offset) - offset
    row_of_rank = np.empty(n + 1, dtype=np.int64)
    row_of_rank[rank] = np.arange(n, dtype=np.int64)
    pos = np.searchsorted(k.row_key[order], k.spine_key, side="right") - 1
    safe = np.maximum(pos, 0)
    hit = k.known & (pos >= 0) & (sorted_g[safe] == k.spine_g)
    out[hit] = row_of_rank[best_rank[safe[hit]]]
    return out


def last_two(
    spine_entity: np.ndarray,
    spine_ts: np.ndarray,
    entity: np.ndarray,
    event_time: np.ndarray,
    version: pa.Array,
) -> tuple[np.ndarray, np.ndarray]:
    """Per spine row, the indexes of the latest and the previous event row of its entity at
    or before ``ts`` in (event time, version) order -- core.features.Lags's two events --,
    -1 where there is none. Rows of one version are one event (a replay writes it again):
    counted once."""
    n = len(entity)
    latest = np.full(len(spine_entity), -1, dtype=np.int64)
    prev = latest.copy()
    if n == 0 or len(spine_entity) == 0:
        return latest, prev
    k = _keys(spine_entity, spine_ts, entity, event_time)
    rank = np.asarray(pc.rank(version, sort_keys="ascending", tiebreaker="dense"), dtype=np.int64)
    order = np.lexsort((rank, k.row_key))
    g, r = k.row_g[order], rank[order]
    first = np.ones(n, dtype=bool)  # the first row of each (entity, version)
    first[1:] = (g[1:] != g[:-1]) | (r[1:] != r[:-1])
    order, g = order[first], g[first]
    pos = np.searchsorted(k.row_key[order], k.spine_key, side="right") - 1
    safe = np.maximum(pos, 0)
    hit = k.known & (pos >= 0) & (g[safe] == k.spine_g)
    latest[hit] = order[safe[hit]]
    before = np.maximum(safe - 1, 0)
    has_prev = hit & (safe >= 1) & (g[before] == k.spine_g)
    prev[has_prev] = order[before[has_prev]]
    return latest, prev


def timestamps_ms(column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    """A spine timestamp column as epoch milliseconds: integers are taken as ms, timestamps
    are converted (naive ones are read as UTC)."""
    if pa.types.is_timestamp(column.type):
        column = pc.cast(pc.cast(column, pa.timestamp("ms", column.type.tz)), pa.int64())
    elif pa.types.is_integer(column.type):
        column = pc.cast(column, pa.int64())
    else:
        raise TrainingSetError(
            f"spine column {name!r} is {column.type}; expected epoch milliseconds (integer) "
            "or a timestamp"
        )
    return _no_nulls(column, name)


def entity_ids(column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    if not pa.types.is_integer(column.type):
        raise TrainingSetError(f"spine column {name!r} is {column.type}; expected integer ids")
    return _no_nulls(pc.cast(column, pa.int64()), name)


def spine_keys(
    spine: pa.Table, *, entity_column: str, timestamp_column: str
) -> tuple[np.ndarray, np.ndarray]:
    """(entity ids, timestamps in epoch ms) of a spine, checked: both columns present, of a
    usable type, without nulls."""
    for name in (entity_column, timestamp_column):
        if name not in spine.column_names:
            raise TrainingSetError(
                f"spine has no column {name!r} (columns: {', '.join(spine.column_names)}); "
                "fix: rename it or pass --entity-column/--timestamp-column"
            )
    return (
        entity_ids(spine.column(entity_column), entity_column),
        timestamps_ms(spine.column(timestamp_column), timestamp_column),
    )


def _no_nulls(column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    nulls = column.null_count
    if nulls:
        raise TrainingSetError(f"spine column {name!r} has {nulls} null value(s); drop them")
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def _decode(values: pa.Array, req: Requested) -> pa.Array:
    """Offline text (core.online's encoding: decimal ints, bools '1'/'0') -> the dtype."""
    dtype = req.feature.dtype
    try:
        if dtype == "bool":
            return pc.equal(values, "1")
        return pc.cast(values, _ARROW_TYPES[dtype])
    except pa.ArrowInvalid as exc:
        raise TrainingSetError(
            f"offline values of {req.ref} are not {dtype}: {exc} (fix: check the rows the "
            "feature job wrote for this view)"
        ) from exc


class _MapLookup:
    """Values of one map key at chosen rows. The map is flattened once and every key looked
    up with one vectorised comparison (pyarrow's ``map_lookup`` walks every row per key: on
    150k rows ~4x slower than this for the 1-3 keys a slot has)."""

    def __init__(self, maps: pa.Array) -> None:
        self.rows = len(maps)
        offsets = np.asarray(maps.offsets, dtype=np.int64)  # this slice's, unlike .keys
        start, length = int(offsets[0]), int(offsets[-1] - offsets[0])
        self.keys = maps.keys.slice(start, length)
        self.items = maps.items.slice(start, length)
        self.parent = np.repeat(np.arange(self.rows, dtype=np.int64), np.diff(offsets))

    def take(self, key: str, rows: np.ndarray, valid: np.ndarray) -> pa.Array:
        """The value of ``key`` at each of ``rows`` (NULL where ``valid`` is false, where the
        row lacks the key, or where its value is NULL)."""
        if not self.rows:
            return pa.nulls(len(rows), pa.string())
        hits = np.flatnonzero(np.asarray(pc.fill_null(pc.equal(self.keys, key), False)))
        at = np.full(self.rows, -1, dtype=np.int64)
        at[self.parent[hits[::-1]]] = hits[::-1]  # the first occurrence wins, as map_lookup
        index = at[rows]
        return pc.take(self.items, pa.array(index, mask=~valid | (index < 0)))


@dataclass
class JoinStats:
    rows_read: int = 0
    unordered: int = 0
    """Rows without entity, event time or version: never candidates."""
    found: dict[str, int] = field(default_factory=dict)
    """Per output column: spine rows with a candidate (before the TTL)."""
    expired: dict[str, int] = field(default_factory=dict)


def join(
    spine: pa.Table,
    rows: pa.Table,
    requested: Sequence[Requested],
    *,
    entity_column: str,
    timestamp_column: str,
    stats: JoinStats | None = None,
) -> pa.Table:
    """The spine (every column, in order, one output row per spine row) plus one column per
    requested feature, point-in-time correct (module docstring)."""
    clash = sorted({r.column for r in requested} & set(spine.column_names))
    if clash:
        raise TrainingSetError(f"spine already has column(s) {', '.join(clash)}; rename them")
    spine_entity, spine_ts = spine_keys(
        spine, entity_column=entity_column, timestamp_column=timestamp_column
    )
    stats = stats if stats is not None else JoinStats()
    stats.rows_read = rows.num_rows
    orderable = pc.and_(
        pc.and_(pc.is_valid(rows["entity_id"]), pc.is_valid(rows["event_time"])),
        pc.is_valid(rows["version"]),
    )
    rows = rows.filter(orderable)
    stats.unordered = stats.rows_read - rows.num_rows
    grp = pc.fill_null(rows["grp"], "")  # the job writes '' for ungrouped views

    columns: dict[str, pa.Array] = {}
    slots: dict[tuple[str, str], list[Requested]] = {}
    windowed: dict[str, list[Requested]] = {}
    lagged: dict[str, list[Requested]] = {}
    for req in requested:
        if req.view.aggregations is not None:
            windowed.setdefault(req.view.name, []).append(req)
        elif req.view.lags is not None:
            lagged.setdefault(req.view.name, []).append(req)
        else:
            slots.setdefault((req.view.name, req.slot), []).append(req)
    for view_name, reqs in windowed.items():
        part = rows.filter(pc.equal(rows["view"], view_name))
        for req, values in zip(
            reqs, windowed_columns(spine_entity, spine_ts, part, reqs), strict=True
        ):
            stats.found[req.column] = int(pc.sum(pc.is_valid(values)).as_py() or 0)
            stats.expired[req.column] = 0
            columns[req.column] = values
    for view_name, reqs in lagged.items():
        part = rows.filter(pc.equal(rows["view"], view_name)).combine_chunks()
        columns |= lag_columns(spine_entity, spine_ts, part, reqs, stats)
    for (view_name, slot), reqs in slots.items():
        mask = pc.and_(pc.equal(rows["view"], view_name), pc.equal(grp, slot))
        part = rows.filter(mask).combine_chunks()
        event_time = np.asarray(part["event_time"].to_numpy(), dtype=np.int64)
        winner = as_of(
            spine_entity,
            spine_ts,
            np.asarray(part["entity_id"].to_numpy(), dtype=np.int64),
            event_time,
            part["version"].combine_chunks(),
        )
        missing = winner < 0
        safe = np.where(missing, 0, winner)
        ttl_ms = reqs[0].view.ttl_s * 1000
        alive = ~missing
        if part.num_rows:
            alive &= spine_ts - event_time[safe] < ttl_ms
        lookup = _MapLookup(part["features"].combine_chunks())
        for req in reqs:
            stats.found[req.column] = int((~missing).sum())
            stats.expired[req.column] = int((~missing & ~alive).sum())
            columns[req.column] = _decode(lookup.take(req.feature.name, safe, alive), req)
    out = spine
    for req in requested:
        out = out.append_column(
            pa.field(req.column, _ARROW_TYPES[req.feature.dtype]), columns[req.column]
        )
    return out


def lag_columns(
    spine_entity: np.ndarray,
    spine_ts: np.ndarray,
    rows: pa.Table,
    requested: Sequence[Requested],
    stats: JoinStats,
) -> dict[str, pa.Array]:
    """Features of one lag view (core.features.Lags) per spine row, from the entity's two
    latest event rows at or before its time (:func:`last_two`): the latest one's value, the
    previous one's value, the time between them and (int values) the difference. All NULL
    when the latest event is expired at the spine time (the view's TTL, as a stored row);
    the derived ones NULL at the entity's first event and when the previous event is more
    than the lags' horizon before the latest. An output column name per request."""
    view = requested[0].view
    spec = view.lags
    assert spec is not None
    event_time = np.asarray(rows["event_time"].to_numpy(), dtype=np.int64)
    latest, prev = last_two(
        spine_entity,
        spine_ts,
        np.asarray(rows["entity_id"].to_numpy(), dtype=np.int64),
        event_time,
        rows["version"].combine_chunks(),
    )
    found = latest >= 0
    at, before = np.maximum(latest, 0), np.maximum(prev, 0)
    alive = found.copy()
    if rows.num_rows:
        alive &= spine_ts - event_time[at] < view.ttl_s * 1000
    since = event_time[at] - event_time[before] if rows.num_rows else np.zeros_like(at)
    paired = alive & (prev >= 0) & (since <= spec.horizon_ms)
    lookup = _MapLookup(rows["features"].combine_chunks())
    value = Requested(view, view.feature(spec.value))
    last = _decode(lookup.take(spec.value, at, alive), value)
    previous = _decode(lookup.take(spec.value, before, paired), value)
    derived = {
        spec.value: last,
        spec.prev: previous,
        spec.since_ms: pa.array(since, type=pa.int64(), mask=~paired),
    }
    if spec.delta is not None:
        derived[spec.delta] = pc.cast(pc.subtract(last, previous), pa.int64())
    out: dict[str, pa.Array] = {}
    for req in requested:
        out[req.column] = derived[req.feature.name]
        stats.found[req.column] = int(found.sum())
        stats.expired[req.column] = int((found & ~alive).sum())
    return out


def windowed_columns(
    spine_entity: np.ndarray,
    spine_ts: np.ndarray,
    rows: pa.Table,
    requested: Sequence[Requested],
) -> list[pa.Array]:
    """Features of one windowed view per spine row, as of its time (complete tiles only,
    core.windows.combine): one array per requested feature. Per tile the row with the
    greatest version wins: the job writes every value a tile takes, each with its event
    count as version, and a replay writes them again with the same values."""
    view = requested[0].view
    aggs = view.aggregations
    assert aggs is not None
    names = ["n", *(m.stored_name(part) for m, part in aggs.stored_columns)]
    per_entity: dict[int, dict[int, tuple[str, tuple[int | None, ...]]]] = {}
    for r in rows.select(["entity_id", "grp", "features", "version"]).to_pylist():
        if r["entity_id"] is None or r["version"] is None or not str(r["grp"]).isdigit():
            continue  # not a tile: a row of the per-event layout before tiles
        tiles = per_entity.setdefault(r["entity_id"], {})
        field_ = int(r["grp"])
        held = tiles.get(field_)
        if held is None or r["version"] > held[0]:
            feats = dict(r["features"] or {})
            values = tuple(None if feats.get(k) is None else int(feats[k]) for k in names)
            tiles[field_] = (r["version"], values)
    # per entity and tile size: tile indexes sorted, to pick a spine row's tiles by bisection
    longest = max(w.length_ms for w in aggs.windows)
    index: dict[int, list[tuple[int, np.ndarray, list[int]]]] = {}
    for entity, tiles in per_entity.items():
        by_size: dict[int, list[tuple[int, int]]] = {}
        for field_ in tiles:
            size, i = split_field(aggs, field_)
            by_size.setdefault(size, []).append((i, field_))
        index[entity] = [
            (size, np.array([i for i, _ in sorted(pairs)]), [f for _, f in sorted(pairs)])
            for size, pairs in by_size.items()
        ]
    out: list[list[int | None]] = [[] for _ in requested]
    empty: dict[int, tuple[int | None, ...]] = {}
    for entity, t in zip(spine_entity.tolist(), spine_ts.tolist(), strict=True):
        chosen = empty
        if entity in index:
            tiles = per_entity[entity]
            chosen = {}
            for size, starts, fields in index[entity]:
                lo = np.searchsorted(starts, (t - longest) // size, side="left")
                hi = np.searchsorted(starts, t // size, side="right")
                for f in fields[lo:hi]:
                    chosen[f] = tiles[f][1]
        answer = combine(aggs, chosen, t, open_head=False)
        for k, req in enumerate(requested):
            out[k].append(answer[req.feature.name])
    return [
        pa.array(col, type=_ARROW_TYPES[req.feature.dtype])
        for col, req in zip(out, requested, strict=True)
    ]
