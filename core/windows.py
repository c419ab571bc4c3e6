"""Windowed features as tiles: the declaration, the tile layout and the combine rule.

A windowed feature view is declared once (:class:`Aggregations`): the event source, the
measures (count / sum / min / max / last / approx_distinct, each with an optional filter),
the windows and the tile size of each window. Everything else derives from it: the feature list
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
has arrived. With no event in it a count, sum or approx_distinct is 0 and a min, max or last
is None.

**last** is the value of the window's latest event that takes part: a tile holds the value of
its own latest one (a tie in event time goes to the greater value, so the answer never
depends on arrival order), and of the tiles a window covers, which never overlap, the latest
non-empty one answers.

**approx_distinct** counts distinct values of a field with a HyperLogLog sketch of
:data:`SKETCH_REGISTERS` 4-bit registers, stored as :data:`SKETCH_WIDTH` int64 columns of a
tile (a register holds the greatest rank of the values hashed to it; tiles merge by the
register-wise maximum, so the answer is independent of order and of values seen twice). Its
estimate (linear counting below 2.5 x 64 values, HyperLogLog's above) has a standard error of
about 10 % at any count: measured 7-12 % from 2 to 5,000 distinct values (two values that
share a register count once). The job's sketch is a Java aggregate
(flink_jobs/jvm ApproxDistinct) with the same hash as :func:`item_hash`.
"""

from __future__ import annotations

import math
import warnings
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

AggFunction = Literal["count", "sum", "min", "max", "last", "approx_distinct"]
SLOTS = 8
"""Tile sizes per view at most; a stored tile field is ``tile_index * SLOTS + slot``."""
AS_OF_HORIZON_MS = 3_600_000
"""How far back ``as_of`` may reach online: head tiles are kept this much longer."""
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SKETCH_REGISTERS = 64
"""Registers of an approx_distinct sketch (4 bits each: ranks up to 15)."""
SKETCH_WIDTH = SKETCH_REGISTERS // 16
"""int64 columns a sketch takes in a tile (16 registers each)."""
_U64 = (1 << 64) - 1


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
    """The summed / compared / latest field (int64), the field whose distinct values an
    approx_distinct counts (any type); None for a count."""
    where: Filter | None = None
    description: str = ""

    @property
    def plain_count(self) -> bool:
        """Counts every event of the view: its value is the tile's ``n`` (not stored twice)."""
        return self.function == "count" and self.where is None

    def stored_name(self, part: int) -> str:
        """The name of its ``part``-th tile column (the job's SQL and the offline rows)."""
        return self.name if part == 0 else f"{self.name}#{part}"

    @property
    def width(self) -> int:
        """The tile columns it stores (a sketch takes :data:`SKETCH_WIDTH`)."""
        return SKETCH_WIDTH if self.function == "approx_distinct" else 1

    def value_of(self, event: Mapping[str, object]) -> int | str | None:
        """This event's contribution (None: it does not take part): 1 for a count, the
        column's value otherwise (an int, or for approx_distinct its text)."""
        if self.where is not None and not self.where.accepts(event):
            return None
        if self.function == "count":
            return 1
        raw = event.get(self.column or "")
        if self.function == "approx_distinct":
            return None if raw is None else str(raw)
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
            if m.function == "approx_distinct":
                if (m.column or "") not in known:
                    raise ValueError(f"measure {m.name}: {m.column!r} is not a field")
            elif m.function != "count" and known.get(m.column or "") != "int64":
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
    def stored_columns(self) -> tuple[tuple[Measure, int], ...]:
        """The tile's columns after ``n``, in order: (measure, part) (part 0 but for a
        sketch's further columns)."""
        return tuple((m, part) for m in self.stored for part in range(m.width))

    @cached_property
    def columns(self) -> tuple[tuple[int, AggFunction], ...]:
        """Per measure: where a tile holds its value (0: ``n``, for plain counts; a sketch's
        first column) and how two values merge."""
        first: dict[str, int] = {}
        for i, (m, _) in enumerate(self.stored_columns, start=1):
            first.setdefault(m.name, i)
        return tuple((0 if m.plain_count else first[m.name], m.function) for m in self.measures)

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
    packed values. Order-independent: every measure is commutative (``last`` keeps the
    value of the greatest (event time, value))."""
    out: dict[int, list[int | None]] = {}
    latest: dict[tuple[int, int], tuple[int, int]] = {}  # (field, column) -> (t, value)
    for e in events:
        if aggs.where is not None and not aggs.where.accepts(e):
            continue
        t = e[aggs.source.time_field]
        assert isinstance(t, int)
        for size in aggs.tile_sizes:
            key = tile_field(aggs, size, t)
            tile = out.setdefault(key, [0, *(_empty(m) for m, _ in aggs.stored_columns)])
            tile[0] = (tile[0] or 0) + 1
            col = 1
            for m in aggs.stored:
                v = m.value_of(e)
                if m.function == "approx_distinct":
                    if v is not None:
                        tile[col : col + m.width] = sketch_add(tile[col : col + m.width], str(v))
                elif m.function == "last":
                    held = latest.get((key, col))
                    if isinstance(v, int) and (held is None or (t, v) > held):
                        latest[(key, col)] = (t, v)
                        tile[col] = v
                elif v is not None:
                    tile[col] = _merge(m.function, tile[col], v)  # type: ignore[arg-type]
                col += m.width
    return {k: tuple(v) for k, v in out.items()}


def _empty(m: Measure) -> int | None:
    """A tile column before any event takes part."""
    return 0 if m.function in ("count", "sum", "approx_distinct") else None


def _merge(function: AggFunction, a: int | None, b: int | None) -> int | None:
    if a is None:
        return b if b is not None or function in ("min", "max") else 0
    if b is None:
        return a
    if function in ("count", "sum"):
        return a + b
    return min(a, b) if function == "min" else max(a, b)


def item_hash(item: str) -> int:
    """The 64-bit hash a sketch files a value under (unsigned): FNV-1a over its UTF-8 bytes,
    then the splitmix64 finalizer (the Java twin: ApproxDistinct.hash)."""
    h = 0xCBF29CE484222325
    for b in item.encode("utf-8", "replace"):
        h = ((h ^ b) * 0x100000001B3) & _U64
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _U64
    return h ^ (h >> 31)


def sketch_add(columns: list[int | None], item: str) -> list[int | None]:
    """The sketch's columns (signed int64, as Flink's BIGINT holds them) with ``item``
    added: register ``h mod 64`` takes the rank of the rest of the hash (its leading
    zeros + 1, at most 15) if greater."""
    h = item_hash(item)
    register, rest = h & (SKETCH_REGISTERS - 1), h >> 6
    rank = min(15, 58 - rest.bit_length() + 1)
    regs = _registers(columns)
    regs[register] = max(regs[register], rank)
    return _columns(regs)


def sketch_of(items: Iterable[str]) -> list[int | None]:
    """The sketch of a set of values (the job's ApproxDistinct over them)."""
    columns: list[int | None] = [0] * SKETCH_WIDTH
    for item in items:
        columns = sketch_add(columns, item)
    return columns


def _registers(columns: Iterable[int | None]) -> list[int]:
    regs = []
    for c in columns:
        u = (c or 0) & _U64
        regs += [(u >> (4 * i)) & 15 for i in range(16)]
    return regs


def _columns(regs: list[int]) -> list[int | None]:
    out: list[int | None] = []
    for c in range(SKETCH_WIDTH):
        u = 0
        for i in range(16):
            u |= regs[c * 16 + i] << (4 * i)
        out.append(u - (1 << 64) if u >> 63 else u)
    return out


def sketch_merge(a: Iterable[int | None], b: Iterable[int | None]) -> list[int | None]:
    """Two sketches' union: the register-wise maximum."""
    return _columns([max(x, y) for x, y in zip(_registers(a), _registers(b), strict=True)])


def sketch_estimate(columns: Iterable[int | None]) -> int:
    """The distinct values a sketch has seen, estimated (HyperLogLog with linear counting
    for small counts; 0 for an empty sketch)."""
    regs = _registers(columns)
    m = len(regs)
    zeros = regs.count(0)
    if zeros == m:
        return 0
    raw = 0.709 * m * m / sum(2.0**-r for r in regs)
    if raw <= 2.5 * m and zeros:
        return round(m * math.log(m / zeros))
    return round(raw)


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


def _ranges(aggs: Aggregations, t: int, open_head: bool) -> dict[int, list[tuple[int, int, int]]]:
    """Per size slot: (window, first index, end index) of the tiles of that size each window
    counts at ``t`` (module docstring)."""
    head = aggs.tile_sizes[0]
    head_end = t // head + (1 if open_head else 0)
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
    return ranges


def _names(aggs: Aggregations) -> list[tuple[str, int, int, bool]]:
    """(feature name, window, measure, 0 when empty) of every feature, in declared order."""
    return [
        (f"{m.name}_{w.name}", wi, mi, m.function in ("count", "sum", "approx_distinct"))
        for mi, m in enumerate(aggs.measures)
        for wi, w in enumerate(aggs.windows)
    ]


def additive(aggs: Aggregations) -> bool:
    """A view of counts and sums only: its windows are sums of tile columns."""
    return all(f in ("count", "sum") for _, f in aggs.columns)


def combiner(aggs: Aggregations, t: int, *, open_head: bool) -> Combiner:
    """:func:`combine` at one instant, its tile ranges computed once: the read path of a
    batch applies it to every entity."""
    ranges = _ranges(aggs, t, open_head)
    columns = aggs.columns
    nwin = len(aggs.windows)
    names = _names(aggs)
    if additive(aggs):
        return _additive(ranges, columns, names, nwin)

    sizes = aggs.tile_sizes
    widths = [m.width for m in aggs.measures]

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
                    held = row[mi]
                    if function == "approx_distinct":
                        part = values[col : col + widths[mi]]
                        row[mi] = list(part) if held is None else sketch_merge(held, part)
                        continue
                    v = values[col]
                    if v is None:
                        continue
                    if function == "last":  # the window's tiles never overlap: latest start
                        start = index * sizes[stored_field % SLOTS]
                        if held is None or start > held[0]:
                            row[mi] = (start, v)
                    elif held is None:
                        row[mi] = v
                    elif function in ("count", "sum"):
                        row[mi] = held + v
                    else:
                        row[mi] = min(held, v) if function == "min" else max(held, v)
        for row in acc:
            for mi, (_, function) in enumerate(columns):
                if row[mi] is not None and function == "last":
                    row[mi] = row[mi][1]
                elif row[mi] is not None and function == "approx_distinct":
                    row[mi] = sketch_estimate(row[mi])  # an empty one: 0 (_named)
        return _named(acc, names)

    return apply


def _named(acc: list[list[Any]], names: list[tuple[str, int, int, bool]]) -> dict:
    out: dict[str, int | None] = {}
    for name, wi, mi, zero in names:
        v = acc[wi][mi]
        out[name] = 0 if v is None and zero else v
    return out


def _segments(
    ranges: dict[int, list[tuple[int, int, int]]],
) -> tuple[dict[int, list[int]], dict[tuple[int, int], list[int]]]:
    """Per size slot the sorted bounds of its windows' ranges (a tile's segment is its
    index's ``bisect_right`` in them), and per (slot, segment) the windows that count it."""
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
    return cuts, members


def _additive(
    ranges: dict[int, list[tuple[int, int, int]]],
    columns: tuple[tuple[int, AggFunction], ...],
    names: list[tuple[str, int, int, bool]],
    nwin: int,
) -> Combiner:
    """The combiner of a view of counts and sums only: per size slot, the window ranges cut
    the tile indexes into segments, each counted by a fixed set of windows; a tile is added
    to its segment (one bisection), and each segment's sum to its windows at the end."""
    cuts, members = _segments(ranges)
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


HashCombiner = Callable[[Sequence[Mapping[bytes, bytes]]], list[dict]]


def hash_combiner(aggs: Aggregations, t: int, *, open_head: bool) -> HashCombiner:
    """:func:`combine` at one instant over many entities' stored hashes at once (field ->
    packed tile as Redis returns them; fields that are not tiles are left out): the batch
    read path (one entity: :func:`combiner`'s loop). A view of counts and sums parses and
    sums every tile of a batch in a few numpy operations (one entity's tiles cost ~0.35 us
    each in Python, ~3.5 ms for a batch of 100 users active 20 h of the week); any other
    view, or a hash with a field that is not a tile or a tile of another width, goes through
    :func:`combiner` entity by entity. Both give the same answer (tested)."""

    def each(raws: Sequence[Mapping[bytes, bytes]]) -> list[dict]:
        one = combiner(aggs, t, open_head=open_head)
        return [one({int(f): v for f, v in raw.items() if f[:1].isdigit()}) for raw in raws]

    if not additive(aggs):
        return each

    def batch(raws: Sequence[Mapping[bytes, bytes]]) -> list[dict]:
        if len(raws) < 2:  # one entity: the plain loop, without numpy's set-up
            return each(raws)
        import numpy as np

        cuts, members = _segments(_ranges(aggs, t, open_head))
        names = _names(aggs)
        cols = [c for c, _ in aggs.columns]
        width = 1 + len(aggs.stored_columns)
        # global segment ids: per slot an offset; membership matrix segment x window
        offsets, total = {}, 0
        for s_, bounds in cuts.items():
            offsets[s_] = total
            total += len(bounds) + 1
        member = np.zeros((total, len(aggs.windows)), dtype=np.int64)
        for (s_, seg), wins in members.items():
            member[offsets[s_] + seg, wins] = 1
        fields: list[bytes] = []
        values: list[bytes] = []
        counts = []
        for raw in raws:
            tiles = dict(raw)
            tiles.pop(b"_t", None)
            fields.extend(tiles)
            values.extend(tiles.values())
            counts.append(len(tiles))
        if not fields or not b"".join(fields).isdigit():
            return each(raws)
        try:
            with warnings.catch_warnings():  # numpy < 3 warns of text it cannot parse
                warnings.simplefilter("error", DeprecationWarning)
                f = np.fromstring(b" ".join(fields), dtype=np.int64, sep=" ")
                v = np.fromstring(b",".join(values), dtype=np.int64, sep=",")
        except (DeprecationWarning, ValueError):
            return each(raws)  # a part that is not an integer: the per-entity path says which
        if v.size != len(values) * width:
            return each(raws)  # an empty part or another width: not this view's tiles
        v = v.reshape(-1, width)
        slot, index = f % SLOTS, f // SLOTS
        segment = np.full(f.size, -1, dtype=np.int64)
        for s_, bounds in cuts.items():
            at = slot == s_
            found = np.searchsorted(np.asarray(bounds, dtype=np.int64), index[at], side="right")
            segment[at] = offsets[s_] + found
        entity = np.repeat(np.arange(len(raws)), counts)
        counted = segment >= 0
        sums = np.zeros((len(raws), total, width), dtype=np.int64)
        np.add.at(sums, (entity[counted], segment[counted]), v[counted])
        per_window = np.einsum("esc,sw->ewc", sums, member).tolist()  # entity, window, column
        return [{name: row[wi][cols[mi]] for name, wi, mi, _ in names} for row in per_window]

    return batch
