"""Aggregators as objects and rolling event-time windows (``user_activity``,
``customer_orders``).

Window semantics are exactly Flink SQL's
``OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL 'w' PRECEDING AND CURRENT ROW)``:

- the row at time ``t`` aggregates every row of its key with time in ``[t - w, t]``,
  INCLUSIVE at both ends: a row exactly ``w`` earlier counts, one ``w + 1 ms`` earlier
  does not (Flink retracts a row once ``t - row_ts > w``);
- peers (rows with the same ``t``) are all included, whatever their order, and all get the
  same values; rows later than ``t`` are not;
- windows are counted on the event's own time, never on arrival; an empty window gives 0
  (SQL's ``SUM`` gives NULL there: the adapter should ``COALESCE(..., 0)``);
- a measure's ``value_of`` returning None leaves the row out of that measure (SQL NULL,
  ``COUNT(CASE WHEN ... THEN 1 END)``).
Streaming order: rows are fed in ascending time, peers together; Flink drops a row whose
time is <= the last time it already emitted for the key (see :meth:`RollingWindows.is_late`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Generic, TypeVar

from core.features import CUSTOMER_ORDERS, USER_ACTIVITY, FeatureView
from core.version import Version
from flink_jobs.logic.events import ClickEvent, OrderEvent, order_creations
from flink_jobs.logic.rows import FeatureRow, FeatureValue

A = TypeVar("A")
V = TypeVar("V")
R = TypeVar("R")
E = TypeVar("E")

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DEFAULT_WINDOWS_MS: tuple[int, ...] = (HOUR_MS, DAY_MS, 7 * DAY_MS)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": HOUR_MS, "d": DAY_MS}
_WINDOW = re.compile(r"^(\d+)(ms|s|m|h|d)$")


class Aggregator(ABC, Generic[A, V, R]):
    """create / add / result / merge (PyFlink ``AggregateFunction``, quix ``BaseAggregator``),
    plus retract for sliding windows. Accumulators are immutable values: every method
    returns a new one. ``merge`` is associative and ``create()`` its identity, so partial
    aggregates (per partition, per batch) combine into the aggregate over all inputs."""

    @abstractmethod
    def create(self) -> A: ...

    @abstractmethod
    def add(self, acc: A, value: V) -> A: ...

    @abstractmethod
    def retract(self, acc: A, value: V) -> A: ...

    @abstractmethod
    def result(self, acc: A) -> R: ...

    @abstractmethod
    def merge(self, a: A, b: A) -> A: ...

    def over(self, values: Iterable[V]) -> R:
        acc = self.create()
        for v in values:
            acc = self.add(acc, v)
        return self.result(acc)


class CountAggregator(Aggregator[int, object, int]):
    """Counts values (any value; the caller leaves out NULLs)."""

    def create(self) -> int:
        return 0

    def add(self, acc: int, value: object) -> int:
        return acc + 1

    def retract(self, acc: int, value: object) -> int:
        return acc - 1

    def result(self, acc: int) -> int:
        return acc

    def merge(self, a: int, b: int) -> int:
        return a + b


class SumAggregator(Aggregator[int, int, int]):
    """Integer sum (exact: money is in cents); 0 over no values."""

    def create(self) -> int:
        return 0

    def add(self, acc: int, value: int) -> int:
        return acc + value

    def retract(self, acc: int, value: int) -> int:
        return acc - value

    def result(self, acc: int) -> int:
        return acc

    def merge(self, a: int, b: int) -> int:
        return a + b


@dataclass(frozen=True)
class Measure(Generic[E]):
    """What to aggregate: ``value_of(row)`` (None: not counted) through ``aggregator``."""

    name: str
    aggregator: Aggregator[Any, Any, Any]
    value_of: Callable[[E], Any]


def _one(_row: object) -> int:
    return 1


class RollingWindows(Generic[E]):
    """Per-key state of RANGE-interval OVER windows for several widths at once.

    Feed one key's rows with :meth:`emit`, in strictly ascending time, all peers of one
    time in one call. Each window keeps one accumulator per measure: new rows are added,
    rows older than ``t - w`` retracted (Flink's RowTimeRangeBoundedPrecedingFunction), so
    a call costs O(rows entering + rows leaving), not O(window).
    """

    def __init__(
        self,
        windows_ms: Sequence[int] = DEFAULT_WINDOWS_MS,
        measures: Sequence[Measure[E]] = (),
    ) -> None:
        if not windows_ms or any(w < 0 for w in windows_ms):
            raise ValueError(f"windows must be >= 0 ms, got {windows_ms}")
        self.windows_ms = tuple(windows_ms)
        self.measures = tuple(measures) or (Measure("count", CountAggregator(), _one),)
        self._rows: list[tuple[int, tuple[Any, ...]]] = []  # (time, value per measure)
        self._offset = 0  # absolute index of self._rows[0]
        self._first = [0] * len(self.windows_ms)  # absolute index of each window's 1st row
        self._accs = [[m.aggregator.create() for m in self.measures] for _ in self.windows_ms]
        self.last_time: int | None = None

    def is_late(self, time_ms: int) -> bool:
        """A row at or before the last emitted time cannot be added any more."""
        return self.last_time is not None and time_ms <= self.last_time

    def emit(self, time_ms: int, peers: Sequence[E]) -> dict[tuple[str, int], Any]:
        """Add the rows at ``time_ms``; the aggregates over ``[time_ms - w, time_ms]`` keyed
        by (measure name, window ms). Raises ValueError if ``time_ms`` is not after the
        previous call's (a caller bug: peers must come together, in time order)."""
        if self.is_late(time_ms):
            raise ValueError(f"time {time_ms} is not after the last emitted {self.last_time}")
        self.last_time = time_ms
        for row in peers:
            values = tuple(m.value_of(row) for m in self.measures)
            self._rows.append((time_ms, values))
            for accs in self._accs:
                self._fold(accs, values, add=True)
        out: dict[tuple[str, int], Any] = {}
        for i, w in enumerate(self.windows_ms):
            accs = self._accs[i]
            while self._first[i] - self._offset < len(self._rows):
                old_time, old_values = self._rows[self._first[i] - self._offset]
                if old_time >= time_ms - w:
                    break
                self._fold(accs, old_values, add=False)
                self._first[i] += 1
            for m, acc in zip(self.measures, accs, strict=True):
                out[(m.name, w)] = m.aggregator.result(acc)
        self._trim()
        return out

    def _fold(self, accs: list[Any], values: tuple[Any, ...], *, add: bool) -> None:
        for j, (m, v) in enumerate(zip(self.measures, values, strict=True)):
            if v is not None:
                f = m.aggregator.add if add else m.aggregator.retract
                accs[j] = f(accs[j], v)

    def _trim(self) -> None:
        drop = min(self._first) - self._offset
        if drop >= 1024 and drop * 2 >= len(self._rows):
            del self._rows[:drop]
            self._offset += drop


def parse_window(suffix: str) -> int:
    """A window suffix of a feature name ("1h", "24h", "7d", "30m") -> milliseconds."""
    match = _WINDOW.match(suffix)
    if not match:
        raise ValueError(f"not a window suffix: {suffix!r}")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


@dataclass(frozen=True)
class _ViewSpec:
    measures: dict[str, Measure[Any]]
    prepare: Callable[[list[Any]], list[Any]]
    entity_of: Callable[[Any], int]
    time_of: Callable[[Any], int]
    version_of: Callable[[Any], Version]


def _count_type(event_type: str) -> Callable[[ClickEvent], int | None]:
    return lambda e: 1 if e.event_type == event_type else None


_SPECS: dict[str, _ViewSpec] = {
    USER_ACTIVITY.name: _ViewSpec(
        measures={
            "clicks": Measure("clicks", CountAggregator(), _one),
            "carts": Measure("carts", CountAggregator(), _count_type("add_to_cart")),
            "purchases": Measure("purchases", CountAggregator(), _count_type("purchase")),
        },
        prepare=list,
        entity_of=lambda e: e.user_id,
        time_of=lambda e: e.event_time,
        version_of=lambda e: e.version,
    ),
    CUSTOMER_ORDERS.name: _ViewSpec(
        measures={
            "orders": Measure("orders", CountAggregator(), _one),
            "spend_cents": Measure("spend_cents", SumAggregator(), lambda o: o.amount_cents),
        },
        prepare=order_creations,
        entity_of=lambda o: o.customer_id,
        time_of=lambda o: o.order_time_ms,
        version_of=lambda o: o.row_version,
    ),
}


def rolling_features(
    events: Iterable[ClickEvent] | Iterable[OrderEvent], view: FeatureView
) -> list[FeatureRow]:
    """One row per input event of ``view`` (USER_ACTIVITY: clicks = every event, carts =
    add_to_cart, purchases = purchase; CUSTOMER_ORDERS: the create events of
    :func:`records.order_creations`, at their ``order_time_ms``, spend = amount_cents),
    valued over ``[t - w, t]`` per window of the view's feature names, sorted by
    (entity, time, version). Peers get equal values."""
    spec = _SPECS.get(view.name)
    if spec is None:
        raise KeyError(f"no rolling aggregates for feature view {view.name!r}")
    features = [(f.name, *f.name.rsplit("_", 1)) for f in view.features]
    windows = sorted({parse_window(suffix) for _, _, suffix in features})
    used = [spec.measures[m] for m in dict.fromkeys(m for _, m, _ in features)]
    rows = spec.prepare(list(events))
    rows.sort(key=lambda r: (spec.entity_of(r), spec.time_of(r), spec.version_of(r)))
    out: list[FeatureRow] = []
    for entity, of_entity in groupby(rows, key=spec.entity_of):
        state: RollingWindows[Any] = RollingWindows(windows, used)
        for t, same_time in groupby(of_entity, key=spec.time_of):
            peers = list(same_time)
            result = state.emit(t, peers)
            for r in peers:
                values: dict[str, FeatureValue] = {
                    name: result[(measure, parse_window(suffix))]
                    for name, measure, suffix in features
                }
                out.append(FeatureRow(view.name, entity, t, spec.version_of(r), values))
    return out
