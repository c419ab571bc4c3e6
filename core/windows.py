"""Windowed features as tiles: the declaration, the tile layout and the combine rule.

A windowed feature view is declared once (:class:`Aggregations`): the event source, the
measures (count / sum / min / max, each with an optional filter), the windows and the tile
size of each window. Everything else derives from it: the feature list
(``<measure>_<window>``), the feature job's tile queries (flink_jobs.sql), the online store's
tile hash (core.online), the API's answers and the offline point-in-time join (batch/).

**Tiles.** The job keeps, per (entity, tile), the partial aggregate of the events whose event
time falls in the tile: ``n`` (the events counted, the tile's version: it only grows) and one
value per stored measure. A tile is absolute: writing it again (a replay, a restart) writes
the same values, and the online store keeps the tile with the greatest ``n``, so nothing is
counted twice.

**The window at instant t** (:func:`combine`), for a window of length ``W`` with tile size
``T`` and the view's smallest tile size ``S`` (the head):

- body: the complete ``T`` tiles that start at or after ``t - W`` and end at or before the
  start of the ``T`` tile holding ``t``;
- head: the complete ``S`` tiles from the start of the ``T`` tile holding ``t`` up to ``t``;
- live reads (``open_head``) also count the open ``S`` tile holding ``t`` (its events so far).

So a window never counts an event older than ``t - W``; at its tail it may miss up to one
``T`` tile (events in ``[t - W, ceil_T(t - W))``: under 1 minute for 1 h windows on minute
tiles, under 1 hour for 24 h / 7 d windows on hour tiles). As of a past instant (``as_of``,
training sets) the open head tile is not counted: the window ends at the last ``S`` boundary
at or before ``t``, so no event after ``t`` is ever counted (no leakage) and the API and the
offline join compute the same value from the same tiles. A live read counts everything that
has arrived. With no event in it a count or sum is 0 and a min or max is None.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

AggFunction = Literal["count", "sum", "min", "max"]
SLOTS = 8
"""Tile sizes per view at most; a stored tile field is ``tile_index * SLOTS + slot``."""
AS_OF_HORIZON_MS = 3_600_000
"""How far back ``as_of`` may reach online: head tiles are kept this much longer."""
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class EventSource:
    """A stream of valid events the feature job aggregates (its gate and table are the
    job's): the fields a measure or filter may name."""

    name: str
    entity_field: str
    time_field: str
    fields: Mapping[str, Literal["int64", "string"]] = field(default_factory=dict)


CLICKSTREAM_EVENTS = EventSource(
    "clickstream", "user_id", "event_time", {"event_type": "string", "page": "string"}
)
ORDER_EVENTS = EventSource(
    "orders", "customer_id", "order_ms", {"amount_cents": "int64", "order_id": "int64"}
)
SESSION_ENDS = EventSource("sessions", "user_id", "end_ms")
"""The clickstream's sessions, each an event at its end (the job's session windows close
them when the watermark passes their end plus the gap)."""
EVENT_SOURCES = {s.name: s for s in (CLICKSTREAM_EVENTS, ORDER_EVENTS, SESSION_ENDS)}


@dataclass(frozen=True)
class Filter:
    """``field IN values`` (string fields)."""

    field: str
    values: tuple[str, ...]

    def accepts(self, event: Mapping[str, object]) -> bool:
        return event.get(self.field) in self.values


@dataclass(frozen=True)
class Measure:
    name: str
    short: str
    function: AggFunction
    column: str | None = None
    """The summed / compared field (int64); None for a count."""
    where: Filter | None = None
    description: str = ""

    @property
    def plain_count(self) -> bool:
        """Counts every event of the view: its value is the tile's ``n`` (not stored twice)."""
        return self.function == "count" and self.where is None

    def value_of(self, event: Mapping[str, object]) -> int | None:
        """This event's contribution (None: it does not take part)."""
        if self.where is not None and not self.where.accepts(event):
            return None
        if self.function == "count":
            return 1
        raw = event.get(self.column or "")
        return raw if isinstance(raw, int) else None


@dataclass(frozen=True)
class Window:
    name: str
    """Suffix of the feature names (``1h`` -> ``clicks_1h``)."""
    length_ms: int
    tile_ms: int


@dataclass(frozen=True)
class Aggregations:
    """A windowed feature view's declaration (see the module docstring)."""

    source: EventSource
    measures: tuple[Measure, ...]
    windows: tuple[Window, ...]
    where: Filter | None = None
    """Events of the source that take part at all (None: every valid event)."""

    def __post_init__(self) -> None:
        sizes = self.tile_sizes
        if not 0 < len(sizes) <= SLOTS:
            raise ValueError(f"1..{SLOTS} tile sizes per view, got {len(sizes)}")
        for w in self.windows:
            if w.tile_ms <= 0 or w.length_ms % w.tile_ms or w.tile_ms % sizes[0]:
                raise ValueError(
                    f"window {w.name}: its length must be a multiple of its tile and its tile "
                    f"a multiple of the smallest tile ({sizes[0]} ms)"
                )
        for m in self.measures:
            known = self.source.fields
            if m.function != "count" and known.get(m.column or "") != "int64":
                raise ValueError(f"measure {m.name}: {m.column!r} is not an int64 field")
            for flt in (m.where, self.where):
                if flt is not None and known.get(flt.field) != "string":
                    raise ValueError(f"measure {m.name}: filter on unknown field {flt.field!r}")

    @cached_property
    def tile_sizes(self) -> tuple[int, ...]:
        return tuple(sorted({w.tile_ms for w in self.windows}))

    def slot(self, tile_ms: int) -> int:
        return self.tile_sizes.index(tile_ms)

    @cached_property
    def stored(self) -> tuple[Measure, ...]:
        """The measures a tile stores after ``n`` (plain counts are ``n`` itself)."""
        return tuple(m for m in self.measures if not m.plain_count)

    def retention_ms(self, tile_ms: int) -> int:
        """How far behind the newest event a tile of this size is still read: the longest
        window on it, for the head size also the largest tile (the head of every window) and
        the ``as_of`` horizon."""
        span = max((w.length_ms for w in self.windows if w.tile_ms == tile_ms), default=0)
        if tile_ms == self.tile_sizes[0]:
            span = max(span, self.tile_sizes[-1]) + AS_OF_HORIZON_MS
        return span + tile_ms

    @property
    def horizon_ms(self) -> int:
        """After this long without events every window is empty (the key's expiry)."""
        return max(self.retention_ms(s) for s in self.tile_sizes)

    @cached_property
    def columns(self) -> tuple[tuple[int, AggFunction], ...]:
        """Per measure: where a tile holds its value (0: ``n``, for plain counts) and how
        two values merge."""
        stored = {m.name: i for i, m in enumerate(self.stored, start=1)}
        return tuple((0 if m.plain_count else stored[m.name], m.function) for m in self.measures)

    def feature_names(self) -> list[tuple[str, Measure, Window]]:
        return [(f"{m.name}_{w.name}", m, w) for m in self.measures for w in self.windows]


Tile = tuple[int, ...]
"""``(n, *stored measure values)``; a min/max over no event is None."""


def tile_field(aggs: Aggregations, tile_ms: int, event_time: int) -> int:
    """The stored field of the tile of size ``tile_ms`` holding ``event_time`` (an integer:
    Redis keeps it in a listpack as a 4-5 byte integer, not a string)."""
    return (event_time // tile_ms) * SLOTS + aggs.slot(tile_ms)


def split_field(aggs: Aggregations, stored_field: int) -> tuple[int, int]:
    """(tile size in ms, tile index) of a stored field."""
    slot = stored_field % SLOTS
    return aggs.tile_sizes[slot], stored_field // SLOTS


def pack(values: Iterable[int | None]) -> str:
    """A tile's stored value: ``n`` first, then the stored measures, comma-separated (an
    empty part is a min/max over no event). ``n`` alone stays a bare integer."""
    return ",".join("" if v is None else str(v) for v in values)


def unpack(raw: bytes | str) -> tuple[int | None, ...]:
    try:  # the common case: every value present (int() takes the bytes as they are)
        if isinstance(raw, bytes):
            return tuple(map(int, raw.split(b",")))
        return tuple(map(int, raw.split(",")))
    except ValueError:  # a min/max over no event is empty
        text = raw.decode() if isinstance(raw, bytes) else raw
        return tuple(int(p) if p else None for p in text.split(","))


def tiles_of(
    aggs: Aggregations, events: Iterable[Mapping[str, object]]
) -> dict[int, tuple[int | None, ...]]:
    """The tiles of a set of events (the pure twin of the job's tile queries): field ->
    packed values. Order-independent: every measure is commutative."""
    out: dict[int, list[int | None]] = {}
    for e in events:
        if aggs.where is not None and not aggs.where.accepts(e):
            continue
        t = e[aggs.source.time_field]
        assert isinstance(t, int)
        for size in aggs.tile_sizes:
            tile = out.setdefault(tile_field(aggs, size, t), [0] + [None] * len(aggs.stored))
            tile[0] = (tile[0] or 0) + 1
            for i, m in enumerate(aggs.stored, start=1):
                v = m.value_of(e)
                tile[i] = _merge(m.function, tile[i], v)
    return {k: tuple(v) for k, v in out.items()}


def _merge(function: AggFunction, a: int | None, b: int | None) -> int | None:
    if a is None:
        return b if b is not None or function in ("min", "max") else 0
    if b is None:
        return a
    if function in ("count", "sum"):
        return a + b
    return min(a, b) if function == "min" else max(a, b)


def newer(held: Tile | tuple[int | None, ...] | None, incoming: tuple[int | None, ...]) -> bool:
    """Whether ``incoming`` replaces ``held`` (the online store's guard: a greater ``n``)."""
    return held is None or (incoming[0] or 0) > (held[0] or 0)


def combine(
    aggs: Aggregations,
    tiles: Mapping[int, Tile | tuple[int | None, ...] | bytes | str],
    t: int,
    *,
    open_head: bool,
) -> dict[str, int | None]:
    """Every feature of the view at instant ``t`` from its tiles (module docstring): feature
    name -> value. The API (live and ``as_of``) and the offline join both call this.

    ``tiles`` maps stored fields to unpacked values or to the packed text as stored (each
    tile inside a window is unpacked once; the others never are)."""
    return combiner(aggs, t, open_head=open_head)(tiles)


Combiner = Callable[[Mapping[int, "Tile | tuple[int | None, ...] | bytes | str"]], dict]


def combiner(aggs: Aggregations, t: int, *, open_head: bool) -> Combiner:
    """:func:`combine` at one instant, its tile ranges computed once: the read path of a
    batch applies it to every entity."""
    head = aggs.tile_sizes[0]
    head_end = t // head + (1 if open_head else 0)
    # per size slot: (window, first index, end index) of the tiles of that size it counts
    ranges: dict[int, list[tuple[int, int, int]]] = {}
    for wi, w in enumerate(aggs.windows):
        big = w.tile_ms
        first = -((w.length_ms - t) // big)  # ceil((t - W) / big)
        cur_big = t // big
        if big == head:  # body and head are one run of head tiles
            ranges.setdefault(aggs.slot(head), []).append((wi, first, head_end))
        else:
            ranges.setdefault(aggs.slot(big), []).append((wi, first, cur_big))
            ranges.setdefault(aggs.slot(head), []).append((wi, cur_big * big // head, head_end))
    columns = aggs.columns
    nwin = len(aggs.windows)
    names = [
        (f"{m.name}_{w.name}", wi, mi, m.function in ("count", "sum"))
        for mi, m in enumerate(aggs.measures)
        for wi, w in enumerate(aggs.windows)
    ]
    if all(f in ("count", "sum") for _, f in columns):
        return _additive(ranges, columns, names, nwin)

    def apply(tiles: Mapping[int, Tile | tuple[int | None, ...] | bytes | str]) -> dict:
        acc: list[list[Any]] = [[None] * len(columns) for _ in range(nwin)]
        for stored_field, packed in tiles.items():
            hits = ranges.get(stored_field % SLOTS)
            if not hits:
                continue
            index = stored_field // SLOTS
            values: tuple[int | None, ...] | None = None
            for wi, lo, hi in hits:
                if not lo <= index < hi:
                    continue
                if values is None:
                    values = packed if isinstance(packed, tuple) else unpack(packed)
                row = acc[wi]
                for mi, (col, function) in enumerate(columns):
                    v = values[col]
                    if v is None:
                        continue
                    held = row[mi]
                    if held is None:
                        row[mi] = v
                    elif function in ("count", "sum"):
                        row[mi] = held + v
                    else:
                        row[mi] = min(held, v) if function == "min" else max(held, v)
        return _named(acc, names)

    return apply


def _named(acc: list[list[Any]], names: list[tuple[str, int, int, bool]]) -> dict:
    out: dict[str, int | None] = {}
    for name, wi, mi, zero in names:
        v = acc[wi][mi]
        out[name] = 0 if v is None and zero else v
    return out


def _additive(
    ranges: dict[int, list[tuple[int, int, int]]],
    columns: tuple[tuple[int, AggFunction], ...],
    names: list[tuple[str, int, int, bool]],
    nwin: int,
) -> Combiner:
    """The combiner of a view of counts and sums only: per size slot, the window ranges cut
    the tile indexes into segments, each counted by a fixed set of windows; a tile is added
    to its segment (one bisection), and each segment's sum to its windows at the end."""
    cuts: dict[int, list[int]] = {}
    members: dict[tuple[int, int], list[int]] = {}
    for slot, hits in ranges.items():
        bounds = sorted({b for _, lo, hi in hits for b in (lo, hi)})
        cuts[slot] = bounds
        for seg in range(1, len(bounds)):
            lo_b = bounds[seg - 1]
            inside = [wi for wi, lo, hi in hits if lo <= lo_b < hi]
            if inside:
                members[(slot, seg)] = inside
    cols = [c for c, _ in columns]
    width = max(cols) + 1

    def apply(tiles: Mapping[int, Tile | tuple[int | None, ...] | bytes | str]) -> dict:
        sums: dict[tuple[int, int], list[int]] = {}
        for stored_field, packed in tiles.items():
            slot = stored_field % SLOTS
            bounds = cuts.get(slot)
            if bounds is None:
                continue
            key = (slot, bisect_right(bounds, stored_field // SLOTS))
            if key not in members:
                continue
            values = packed if isinstance(packed, tuple) else unpack(packed)
            held = sums.get(key)
            if held is None:
                sums[key] = [v or 0 for v in values[:width]]
            else:
                sums[key] = [a + (v or 0) for a, v in zip(held, values[:width], strict=True)]
        acc: list[list[Any]] = [[None] * len(cols) for _ in range(nwin)]
        for key, total in sums.items():
            picked = [total[c] for c in cols]
            for wi in members[key]:
                row = acc[wi]
                acc[wi] = (
                    picked if row[0] is None else [a + b for a, b in zip(row, picked, strict=True)]
                )
        return _named(acc, names)

    return apply
