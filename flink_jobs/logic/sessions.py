"""Clickstream sessions per user in event time (the ``user_sessions`` view).

Semantics (the boundary is the contract, tested to the millisecond):

- Each event at time ``t`` opens the window ``[t, t + gap)``; windows of one user MERGE
  when they overlap (share at least one millisecond), as Flink's merging session windows
  do. So two consecutive events ``a <= b`` are in one session iff ``b - a < gap``: an event
  at exactly ``last + gap`` STARTS A NEW session, one at ``last + gap - 1`` joins.
  (Flink's own ``TimeWindow.intersects`` also merges windows that only touch, i.e. it
  joins at exactly ``last + gap``; a Flink job matches this module with a session gap of
  ``gap - 1 ms``.)
- ``start_ms`` / ``end_ms`` are the first / last event times; ``duration_s`` is
  ``(end_ms - start_ms) // 1000``, so a one-event session lasts 0 s.
- Out-of-order events merge into, or bridge, open sessions: the sessions of a set of events
  do not depend on arrival order as long as no event is late.
- A session CLOSES when the watermark reaches ``end_ms + gap - 1`` (its window's max
  timestamp); an event is LATE when the session it would belong to (after merging) could
  already have closed. Late events change nothing and are kept for the DLQ
  (:meth:`Sessionizer.take_late`).
- Equal event times: events are ordered by version inside a session.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.features import DAY_S, SESSION_GAP_MS, USER_SESSION_COUNTS, USER_SESSIONS
from flink_jobs.logic.events import ClickEvent
from flink_jobs.logic.rows import FeatureRow, FeatureValue

PURCHASE = "purchase"
MIN_WATERMARK = -(2**63)
MAX_WATERMARK = 2**63 - 1
DAY_MS = DAY_S * 1000


@dataclass(frozen=True, slots=True)
class Session:
    user_id: int
    start_ms: int
    end_ms: int
    """Time of the last event (not the window end, which is ``end_ms + gap``)."""
    events: tuple[ClickEvent, ...]
    """Sorted by (event_time, version)."""

    @property
    def event_count(self) -> int:
        return len(self.events)

    @property
    def distinct_pages(self) -> int:
        return len({e.page for e in self.events})

    @property
    def converted(self) -> bool:
        """The session has a purchase event."""
        return any(e.event_type == PURCHASE for e in self.events)

    @property
    def duration_s(self) -> int:
        return (self.end_ms - self.start_ms) // 1000


class _Open:
    """A mutable open session. Merging grows one and marks the others ``dead``; every
    growth pushes a new close timer, so timers whose time no longer matches are stale."""

    __slots__ = ("dead", "events", "last", "start", "user_id")

    def __init__(self, user_id: int, events: list[ClickEvent]) -> None:
        self.user_id = user_id
        self.events = events
        self.start = min(e.event_time for e in events)
        self.last = max(e.event_time for e in events)
        self.dead = False

    def freeze(self) -> Session:
        ordered = tuple(sorted(self.events, key=lambda e: (e.event_time, e.version)))
        return Session(self.user_id, self.start, self.last, ordered)


class Sessionizer:
    """Streaming sessionizer for all users (per-user state, one event-time watermark).

    ``out_of_orderness_ms``: when an int ``d``, every :meth:`add` advances the watermark to
    ``max_event_time_seen - d - 1`` (Flink's bounded-out-of-orderness strategy) and returns
    the sessions that closes; when None, only :meth:`close_until` / :meth:`flush` move the
    watermark (the engine's watermark drives it). The watermark never goes back.
    Events are not deduplicated: feed each event once (:func:`records.dedup_clicks`).
    """

    def __init__(
        self, gap_ms: int = SESSION_GAP_MS, *, out_of_orderness_ms: int | None = 0
    ) -> None:
        if gap_ms <= 0:
            raise ValueError(f"session gap must be > 0 ms, got {gap_ms}")
        if out_of_orderness_ms is not None and out_of_orderness_ms < 0:
            raise ValueError(f"out_of_orderness_ms must be >= 0, got {out_of_orderness_ms}")
        self.gap_ms = gap_ms
        self._bound = out_of_orderness_ms
        self._watermark = MIN_WATERMARK
        self._max_seen = MIN_WATERMARK
        self._open: dict[int, list[_Open]] = {}
        self._timers: list[tuple[int, int, _Open]] = []  # (close_at, tiebreak, session)
        self._tiebreak = itertools.count()
        self._late: list[ClickEvent] = []

    @property
    def watermark(self) -> int:
        return self._watermark

    def _overlapping(self, event: ClickEvent) -> list[_Open]:
        t, gap = event.event_time, self.gap_ms
        return [
            s for s in self._open.get(event.user_id, ()) if s.start < t + gap and t < s.last + gap
        ]

    def is_late(self, event: ClickEvent) -> bool:
        """Would :meth:`add` reject this event as late (its merged session closable)?"""
        last = max([event.event_time, *(s.last for s in self._overlapping(event))])
        return last + self.gap_ms - 1 <= self._watermark

    def add(self, event: ClickEvent) -> list[Session]:
        """Add one event; returns the sessions closed by the watermark it advances (always
        ``[]`` when ``out_of_orderness_ms`` is None). A late event is set aside, see
        :meth:`take_late`; it does not advance the watermark either."""
        if self.is_late(event):
            self._late.append(event)
            return []
        hits = self._overlapping(event)
        if hits:  # grow the biggest session in place: O(1) per event in a long session
            merged = max(hits, key=lambda s: len(s.events))
            for s in hits:
                if s is not merged:
                    s.dead = True
                    merged.events.extend(s.events)
            merged.events.append(event)
            merged.start = min(event.event_time, *(s.start for s in hits))
            merged.last = max(event.event_time, *(s.last for s in hits))
            self._open[event.user_id] = [s for s in self._open[event.user_id] if not s.dead]
        else:
            merged = _Open(event.user_id, [event])
            self._open.setdefault(event.user_id, []).append(merged)
        close_at = merged.last + self.gap_ms - 1
        heapq.heappush(self._timers, (close_at, next(self._tiebreak), merged))
        if self._bound is None:
            return []
        self._max_seen = max(self._max_seen, event.event_time)
        return self.close_until(self._max_seen - self._bound - 1)

    def close_until(self, watermark_ms: int) -> list[Session]:
        """Advance the watermark; the sessions it closes, sorted by (end_ms, user_id)."""
        self._watermark = max(self._watermark, watermark_ms)
        closed: list[Session] = []
        while self._timers and self._timers[0][0] <= self._watermark:
            close_at, _, s = heapq.heappop(self._timers)
            if s.dead or close_at != s.last + self.gap_ms - 1:
                continue  # merged away, or a stale timer of a session that grew since
            s.dead = True
            remaining = [o for o in self._open[s.user_id] if not o.dead]
            if remaining:
                self._open[s.user_id] = remaining
            else:
                del self._open[s.user_id]
            closed.append(s.freeze())
        return sorted(closed, key=lambda c: (c.end_ms, c.user_id))

    def flush(self) -> list[Session]:
        """Close every open session (end of a bounded input: Flink's final watermark)."""
        return self.close_until(MAX_WATERMARK)

    def take_late(self) -> list[ClickEvent]:
        """The late events set aside since the last call (for the DLQ), then forget them."""
        late, self._late = self._late, []
        return late

    def open_sessions(self, user_id: int) -> list[Session]:
        return sorted((s.freeze() for s in self._open.get(user_id, ())), key=lambda s: s.start_ms)


def sessions_of(events: Iterable[ClickEvent], gap_ms: int = SESSION_GAP_MS) -> list[Session]:
    """All sessions of a batch of events (any users), sorted by (user_id, start_ms)."""
    sessionizer = Sessionizer(gap_ms, out_of_orderness_ms=None)
    for event in sorted(events, key=lambda e: (e.event_time, e.version)):
        sessionizer.add(event)
    return sorted(sessionizer.flush(), key=lambda s: (s.user_id, s.start_ms))


def session_features(sessions: Iterable[Session], now_ms: int) -> dict[str, FeatureValue]:
    """The ``user_sessions`` features of ONE user as of ``now_ms``, from sessions that
    ended by then (``end_ms <= now_ms``): ``last_session_*`` describe the one with the
    latest end (all None when no session ended yet)."""
    ended = [s for s in sessions if s.end_ms <= now_ms]
    last = max(ended, key=lambda s: (s.end_ms, s.start_ms), default=None)
    values: dict[str, FeatureValue] = {
        "last_session_duration_s": last.duration_s if last else None,
        "last_session_events": last.event_count if last else None,
        "last_session_pages": last.distinct_pages if last else None,
        "last_session_converted": last.converted if last else None,
    }
    return values


def _rows_at_each_end(
    sessions: Iterable[Session],
    view: str,
    values_of: Callable[[list[Session], int], dict[str, FeatureValue]],
) -> list[FeatureRow]:
    """One row of ``view`` per closed session, as of its end (``now = end_ms``, the row's
    event_time; version = the version of its last event; values from the user's sessions),
    sorted by (user_id, end_ms)."""
    by_user: dict[int, list[Session]] = {}
    for s in sessions:
        by_user.setdefault(s.user_id, []).append(s)
    rows: list[FeatureRow] = []
    for user_id in sorted(by_user):
        mine = sorted(by_user[user_id], key=lambda s: s.end_ms)
        for s in mine:
            values = values_of(mine, s.end_ms)
            rows.append(FeatureRow(view, user_id, s.end_ms, s.events[-1].version, values))
    return rows


def session_rows(sessions: Iterable[Session]) -> list[FeatureRow]:
    """One ``user_sessions`` row per closed session, as of its end. The latest row of a
    user is its online value."""
    return _rows_at_each_end(sessions, USER_SESSIONS.name, session_features)


def sessions_24h(sessions: Iterable[Session], now_ms: int) -> int:
    """``user_session_counts``' ``sessions_24h`` of ONE user as of ``now_ms``, exactly:
    sessions with ``end_ms`` in ``(now_ms - 24 h, now_ms]`` (the job's hour tiles may miss
    up to one hour at the window's tail: core.windows)."""
    return sum(1 for s in sessions if now_ms - DAY_MS < s.end_ms <= now_ms)


def session_count_rows(sessions: Iterable[Session]) -> list[FeatureRow]:
    """One ``user_session_counts`` row per closed session, as of its end."""
    return _rows_at_each_end(
        sessions,
        USER_SESSION_COUNTS.name,
        lambda mine, now: {"sessions_24h": sessions_24h(mine, now)},
    )
